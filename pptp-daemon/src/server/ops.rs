//! The daemon's side of `pptp-daemon ctl`: answers to the control socket's
//! requests (sessions, show, terminate, stat, reload, shutdown) over the
//! shared state. The session list comes from [`Shared::session_info`]; the
//! filters and tables from [`super::ctl_view`].
//!
//! Terminate never releases anything itself: `soft` asks the concentrator
//! to end the sessions (as a RADIUS Disconnect-Request does), which sends
//! each the protocol's goodbyes through [`Command::Close`]; `hard` sends
//! [`Command::Abort`], on which the session task returns at once and its
//! guard releases everything, exactly once, as for any other end.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use tokio::sync::mpsc;

use super::{
    Call, Shared,
    ctl::{
        DataPath, Mode, Request, Response, SessionDetails, SessionInfo, StatReport, StateCounts,
        Target,
    },
    ctl_view,
    registry::Command,
};
use crate::proto::{
    concentrator::{Refusal, SessionState},
    end::EndReason,
};

/// How long `terminate .. hard` waits for the sessions' guards to have
/// released them before it answers.
const HARD_RELEASE_WAIT: Duration = Duration::from_secs(3);

/// What the answers need beyond [`Shared`]: the way to the accept loop.
pub struct Ops {
    /// `shutdown soft|hard` for the accept loop.
    pub shutdown: mpsc::UnboundedSender<Mode>,
    /// Set by the accept loop while a soft shutdown waits for sessions.
    pub draining: Arc<AtomicBool>,
}

/// Answers one request.
pub fn answer(shared: &Shared, ops: &Ops, req: Request) -> Response {
    match req {
        Request::Sessions => Response::Sessions {
            sessions: shared.session_info(),
        },
        Request::Stats => Response::Stats {
            counters: shared.stats_list(),
        },
        Request::List { filters, order } => Response::Sessions {
            sessions: ctl_view::select(shared.session_info(), &filters, order),
        },
        Request::Show { session } => match show(shared, &session) {
            Some(details) => Response::Session {
                details: Box::new(details),
            },
            None => Response::Error {
                message: format!("no session {session:?} (see `ctl sessions`)"),
            },
        },
        Request::Terminate { target, mode } => Response::Terminated {
            count: terminate(shared, &target, mode),
        },
        Request::Stat => Response::Stat {
            stat: Box::new(stat(shared, ops.draining.load(Ordering::Relaxed))),
        },
        Request::Reload => match reload(shared) {
            Ok(outcome) => Response::Reloaded { outcome },
            Err(message) => Response::Error { message },
        },
        Request::Shutdown { mode } => {
            let sessions = shared.calls.read().unwrap_or_else(|e| e.into_inner()).len();
            tracing::info!(?mode, sessions, "shutdown requested on the control socket");
            match ops.shutdown.send(mode) {
                Ok(()) => Response::ShuttingDown { mode, sessions },
                Err(_) => Response::Error {
                    message: "the daemon is already stopping".into(),
                },
            }
        }
    }
}

/// Reloads what can change without a restart and says what changed, or
/// why nothing did (the old state then stays). SIGHUP and `ctl reload`
/// both run it.
pub fn reload(shared: &Shared) -> Result<String, String> {
    // Logs its outcome itself.
    super::reload::reload(shared)
        .map(|report| report.to_string())
        .map_err(|e| e.to_string())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The call behind a listed session.
fn call_of(shared: &Shared, info: &SessionInfo) -> Option<Arc<Call>> {
    shared
        .calls
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&info.call_id)
        .filter(|c| c.acct_session_id == info.acct_session_id)
        .cloned()
}

/// `ctl show`: by session id, or by client address.
fn show(shared: &Shared, session: &str) -> Option<SessionDetails> {
    let by_ip = session.parse::<std::net::Ipv4Addr>().ok();
    let info = shared
        .session_info()
        .into_iter()
        .find(|s| s.acct_session_id == session || (by_ip.is_some() && s.client_addr == by_ip))?;
    let call = call_of(shared, &info)?;
    let now = Instant::now();
    let unix = unix_now();
    let ago = |t: Instant| unix.saturating_sub(now.saturating_duration_since(t).as_secs());
    let (up_since, ending, deadline) = {
        let core = shared.core();
        let e = core.session(call.session);
        (
            e.and_then(|e| e.up_since),
            e.and_then(|e| e.ending),
            e.and_then(|e| e.session_deadline),
        )
    };
    Some(SessionDetails {
        started_unix: ago(call.started),
        up_since_unix: up_since.map(ago),
        ending: ending.map(|r| r.name().to_owned()),
        session_timeout_left_secs: deadline.map(|d| d.saturating_duration_since(now).as_secs()),
        negotiated: call
            .negotiated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        info,
    })
}

/// Ends the sessions `target` names; returns how many were told to end
/// (soft: those not already ending).
pub fn terminate(shared: &Shared, target: &Target, mode: Mode) -> usize {
    let calls: Vec<Arc<Call>> = shared
        .session_info()
        .iter()
        .filter(|s| ctl_view::targeted(s, target))
        .filter_map(|s| call_of(shared, s))
        .collect();
    let count = match mode {
        Mode::Soft => {
            let n = {
                let mut core = shared.core();
                calls
                    .iter()
                    .filter(|c| core.terminate(c.session, EndReason::AdminReset))
                    .count()
            };
            // Each gets Command::Close: LCP Terminate-Request, then the
            // control connection's Call-Disconnect-Notify (and Stop when
            // it has no other call).
            shared.dispatch();
            n
        }
        Mode::Hard => {
            for c in &calls {
                c.command(Command::Abort(EndReason::AdminReset));
            }
            // The guards release within moments: answer once they have,
            // so that the next `sessions` no longer lists them.
            let deadline = Instant::now() + HARD_RELEASE_WAIT;
            while Instant::now() < deadline && calls.iter().any(|c| still_registered(shared, c)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            calls.len()
        }
    };
    tracing::info!(
        ?target,
        ?mode,
        count,
        "terminate requested on the control socket"
    );
    count
}

fn still_registered(shared: &Shared, call: &Arc<Call>) -> bool {
    shared
        .calls
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&call.call_id)
        .is_some_and(|c| Arc::ptr_eq(c, call))
}

/// Resident set size from `/proc/self/statm` (its second field, in pages).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    parse_statm_rss(&statm, page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).unwrap_or(4096)
}

fn parse_statm_rss(statm: &str, page: u64) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page)
}

/// `ctl stat`.
pub fn stat(shared: &Shared, draining: bool) -> StatReport {
    let sessions = shared.session_info();
    let mut counts = StateCounts::default();
    for s in &sessions {
        match s.path {
            DataPath::Xdp => counts.xdp += 1,
            DataPath::Userspace => counts.userspace += 1,
            DataPath::Negotiating => {}
        }
    }
    let now = Instant::now();
    let (c, last_minute) = {
        let mut core = shared.core();
        let last_minute = core.setups_last_minute(now);
        // States from the registry: it also has the sessions whose call
        // is not connected yet (not in the call table).
        counts.starting = 0;
        counts.up = 0;
        counts.ending = 0;
        for (_, e) in core.sessions() {
            match e.state {
                SessionState::Starting => counts.starting += 1,
                SessionState::Up => counts.up += 1,
                SessionState::Ending => counts.ending += 1,
            }
        }
        (core.counters().clone(), last_minute)
    };
    let reasons = |f: &dyn Fn(EndReason) -> u64| {
        EndReason::ALL
            .iter()
            .map(|&r| (r.name().to_owned(), f(r)))
            .collect::<Vec<_>>()
    };
    StatReport {
        uptime_secs: unix_now().saturating_sub(shared.boot_secs),
        rss_bytes: rss_bytes(),
        sessions: counts,
        connections: c.live_connections as u64,
        calls_started: c.sessions_started,
        setups: c.sessions_up,
        setups_last_minute: last_minute,
        setups_per_second: last_minute as f64 / crate::proto::rate_window::WINDOW_SECS as f64,
        setup_failures: reasons(&|r| c.setup_failed(r)),
        ended: reasons(&|r| c.ended(r)),
        refused: Refusal::ALL
            .iter()
            .map(|&r| (r.name().to_owned(), c.refused(r)))
            .collect(),
        auth_accepted: shared.stats.auth_accepted.load(Ordering::Relaxed),
        auth_rejected: shared.stats.auth_rejected.load(Ordering::Relaxed),
        draining,
        counters: shared.stats_list(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_from_statm() {
        assert_eq!(
            parse_statm_rss("5000 1200 300 10 0 900 0\n", 4096),
            Some(1200 * 4096)
        );
        assert_eq!(parse_statm_rss("5000", 4096), None);
        assert_eq!(parse_statm_rss("", 4096), None);
        assert_eq!(parse_statm_rss("1 x 3", 4096), None);
        // Our own process has a resident set.
        assert!(rss_bytes().is_some_and(|b| b > 0));
    }
}
