//! `pptp-daemon ctl ...`: the operator's commands to a running daemon over
//! its control socket (as accel-ppp's accel-cmd): `sessions`, `show`,
//! `terminate`, `stat`, `reload`, `shutdown`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::server::{
    ctl::{self, Filter, Mode, Order, Request, Response, Target},
    ctl_view,
};

/// `pptp-daemon ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The daemon's control socket (default: server.control_socket of the configuration).
    #[arg(long, value_name = "PATH", global = true)]
    pub socket: Option<PathBuf>,
    /// The daemon's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// What to ask the daemon.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// List sessions: id, user, addresses, call IDs, state, uptime, path,
    /// MPPE, rate, traffic. Filters (all must hold): sid=, user=, ip=
    /// (tunnel address), peer= (public address), state=starting|up|ending.
    Sessions {
        #[arg(value_name = "FILTER")]
        filters: Vec<Filter>,
        /// Sort by this column (uptime, rx and tx: largest first).
        #[arg(long, value_enum)]
        order: Option<Order>,
    },
    /// Everything known about one session (by session id or tunnel address):
    /// negotiated LCP/IPCP/CCP options, MTU, authentication, RADIUS
    /// attributes, counters, times.
    Show {
        #[arg(value_name = "SESSION")]
        session: String,
    },
    /// End sessions: `all`, a session id, or sid=, user=, ip=, peer=.
    /// soft (default): LCP Terminate-Request, Call-Disconnect-Notify and
    /// Stop-Control-Connection when no other call is left; hard: at once,
    /// TCP closed without goodbyes.
    Terminate {
        #[arg(value_name = "TARGET")]
        target: Target,
        #[arg(value_name = "soft|hard", default_value = "soft")]
        mode: Mode,
    },
    /// Sessions by state, setups and failures, authentication, data-path
    /// counters, memory, uptime.
    Stat,
    /// Reload as SIGHUP does; exits non-zero when the reload failed.
    Reload,
    /// soft (default): accept no new connections, wait for the sessions
    /// to end, then exit; hard: end every session now (as SIGTERM).
    Shutdown {
        #[arg(value_name = "soft|hard", default_value = "soft")]
        mode: Mode,
    },
}

impl CtlCommand {
    /// The request this command sends.
    pub fn request(&self) -> Request {
        match self {
            CtlCommand::Sessions { filters, order } => Request::List {
                filters: filters.clone(),
                order: *order,
            },
            CtlCommand::Show { session } => Request::Show {
                session: session.clone(),
            },
            CtlCommand::Terminate { target, mode } => Request::Terminate {
                target: target.clone(),
                mode: *mode,
            },
            CtlCommand::Stat => Request::Stat,
            CtlCommand::Reload => Request::Reload,
            CtlCommand::Shutdown { mode } => Request::Shutdown { mode: *mode },
        }
    }
}

/// The answer as the operator reads it (`--json`: the daemon's JSON).
pub fn render(response: &Response, json: bool) -> anyhow::Result<String> {
    if let Response::Error { message } = response {
        anyhow::bail!("the daemon answered: {message}");
    }
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(response)?));
    }
    Ok(match response {
        Response::Sessions { sessions } => ctl_view::format_sessions(sessions),
        Response::Stats { counters } => counters
            .iter()
            .map(|(name, value)| format!("{name:<32} {value}\n"))
            .collect(),
        Response::Session { details } => ctl_view::format_details(details),
        Response::Terminated { count } => format!("{count} session(s) terminated\n"),
        Response::Stat { stat } => ctl_view::format_stat(stat),
        Response::Reloaded { outcome } => format!("reloaded: {outcome}\n"),
        Response::ShuttingDown { mode, sessions } => match mode {
            Mode::Soft => format!(
                "shutting down (soft): no new connections; the daemon exits when its {sessions} session(s) have ended\n"
            ),
            Mode::Hard => format!("shutting down (hard): ending {sessions} session(s)\n"),
        },
        Response::Error { .. } => unreachable!("handled above"),
    })
}

/// Sends `request` to the daemon at `socket` and prints its answer; an
/// error answer is an error (the command exits non-zero).
pub fn run(socket: &std::path::Path, request: &Request, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime
        .block_on(ctl::request(socket, request))
        .context("is the daemon running, and may this user use its socket?")?;
    print!("{}", render(&answer, json)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn ctl(args: &[&str]) -> CtlArgs {
        let mut argv = vec!["pptp-daemon", "ctl"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Some(Command::Ctl(c)) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn command_lines_become_requests() {
        let c = ctl(&[
            "sessions",
            "user=alice",
            "peer=198.18.0.2",
            "--order",
            "rx",
            "--json",
            "--socket",
            "/run/x.sock",
        ]);
        assert!(c.json);
        assert_eq!(c.socket, Some(PathBuf::from("/run/x.sock")));
        assert_eq!(
            c.command.request(),
            Request::List {
                filters: vec![
                    Filter::User("alice".into()),
                    Filter::Peer(Ipv4Addr::new(198, 18, 0, 2))
                ],
                order: Some(Order::Rx)
            }
        );
        assert_eq!(
            ctl(&["terminate", "user=bob", "hard"]).command.request(),
            Request::Terminate {
                target: Target::User("bob".into()),
                mode: Mode::Hard
            }
        );
        // Soft unless said otherwise.
        assert_eq!(
            ctl(&["terminate", "all"]).command.request(),
            Request::Terminate {
                target: Target::All,
                mode: Mode::Soft
            }
        );
        assert_eq!(
            ctl(&["shutdown"]).command.request(),
            Request::Shutdown { mode: Mode::Soft }
        );
        assert_eq!(ctl(&["stat"]).command.request(), Request::Stat);
        assert_eq!(ctl(&["reload"]).command.request(), Request::Reload);
        assert_eq!(
            ctl(&["show", "5f5e1000-1267-00000000"]).command.request(),
            Request::Show {
                session: "5f5e1000-1267-00000000".into()
            }
        );
    }

    #[test]
    fn bad_command_lines_are_refused() {
        for args in [
            &["terminate"][..],
            &["terminate", "all", "gently"],
            &["terminate", "state=up"],
            &["sessions", "colour=blue"],
            &["sessions", "--order", "mood"],
            &["shutdown", "later"],
        ] {
            let mut argv = vec!["pptp-daemon", "ctl"];
            argv.extend_from_slice(args);
            assert!(Cli::try_parse_from(&argv).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn errors_fail_and_answers_render() {
        let err = render(
            &Response::Error {
                message: "secrets not reloaded".into(),
            },
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("secrets not reloaded"), "{err}");
        // JSON too fails on an error.
        assert!(
            render(
                &Response::Error {
                    message: "x".into()
                },
                true
            )
            .is_err()
        );
        assert_eq!(
            render(&Response::Terminated { count: 2 }, false).unwrap(),
            "2 session(s) terminated\n"
        );
        let json = render(&Response::Terminated { count: 2 }, true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["result"], "terminated");
        assert_eq!(v["count"], 2);
        assert!(
            render(
                &Response::Reloaded {
                    outcome: "secrets reloaded: 2 entries".into()
                },
                false
            )
            .unwrap()
            .contains("2 entries")
        );
    }
}
