//! RADIUS accounting (RFC 2866): one task owns the queue
//! ([`crate::auth::radius::accounting::Accounting`]) and one UDP socket;
//! sessions and the daemon hand it records through an [`AcctHandle`],
//! whose sends never block (a session guard's `Drop` sends the Stop).
//!
//! - Accounting-On when the task starts, Accounting-Off at a clean stop
//!   ([`AcctHandle::off`]), both with the daemon's Acct-Session-Id.
//! - Start when a session's network is up ([`AcctHandle::start`]),
//!   Interim-Update every `acct_interim_interval_secs`, Stop when the
//!   session ends ([`AcctHandle::stop`]), only for sessions that had a
//!   Start.
//! - Per session, from the RADIUS Access-Accept ([`SessionAttributes`]):
//!   Acct-Interim-Interval replaces the configured interval (RFC 2869
//!   section 5.16 says it should not be below 60 s; we take any value of at
//!   least 1 s as the server gives it, so that the operator's RADIUS
//!   decides, and tests can use short ones); every Class is echoed
//!   unchanged in the Start, each Interim-Update and the Stop (RFC 2865
//!   section 5.25).
//! - Octets and packets: the call's userspace counters plus, while the
//!   call is on the XDP path, the XDP per-session counters (the guard folds
//!   those into the call's before the Stop). Input is what came from the
//!   client.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot},
};

use super::{Call, Shared};
use crate::{
    auth::{
        SessionAttributes,
        radius::{
            accounting::{Accounting, AcctPolicy, Record},
            packet::{RequestAttribute as A, acct, attr},
        },
    },
    config::AuthBackend,
    proto::end::EndReason,
};

/// Counters of the accounting task (`stats`: `radius_acct_*`).
#[derive(Debug, Default)]
pub struct AcctStats {
    pub enqueued: AtomicU64,
    pub answered: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub transmissions: AtomicU64,
    pub retransmissions: AtomicU64,
    pub server_dead: AtomicU64,
    pub bad_responses: AtomicU64,
    /// Records sent after the task was gone (after shutdown).
    pub dropped_no_task: AtomicU64,
    /// Records waiting for an answer now.
    pub queued: AtomicU64,
}

impl AcctStats {
    pub fn list(&self) -> Vec<(String, u64)> {
        [
            ("radius_acct_enqueued", &self.enqueued),
            ("radius_acct_answered", &self.answered),
            ("radius_acct_dropped_queue_full", &self.dropped_queue_full),
            ("radius_acct_transmissions", &self.transmissions),
            ("radius_acct_retransmissions", &self.retransmissions),
            ("radius_acct_server_dead", &self.server_dead),
            ("radius_acct_bad_responses", &self.bad_responses),
            ("radius_acct_dropped_no_task", &self.dropped_no_task),
            ("radius_acct_queued", &self.queued),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.load(Relaxed)))
        .collect()
    }
}

/// Octets and packets of a session; input is from the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub input_octets: u64,
    pub output_octets: u64,
    pub input_packets: u64,
    pub output_packets: u64,
}

enum Msg {
    Start {
        call: Weak<Call>,
        user: Option<String>,
        framed_ip: Ipv4Addr,
        /// Acct-Interim-Interval from the Access-Accept.
        interim: Option<Duration>,
        /// Class attributes from the Access-Accept.
        class: Vec<Vec<u8>>,
        at: Instant,
        timestamp: u32,
    },
    Stop {
        acct_session_id: String,
        reason: EndReason,
        totals: Totals,
        at: Instant,
        timestamp: u32,
    },
    Off {
        done: oneshot::Sender<()>,
    },
}

/// How sessions and the daemon reach the accounting task. Cloneable;
/// every send is non-blocking and never lost silently (a send to a task
/// that is gone is counted as dropped).
#[derive(Clone)]
pub struct AcctHandle {
    tx: mpsc::UnboundedSender<Msg>,
    pub stats: Arc<AcctStats>,
}

/// The task's half of an [`AcctHandle`].
pub struct AcctReceiver(mpsc::UnboundedReceiver<Msg>);

impl AcctHandle {
    pub fn new() -> (AcctHandle, AcctReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            AcctHandle {
                tx,
                stats: Arc::new(AcctStats::default()),
            },
            AcctReceiver(rx),
        )
    }

    fn send(&self, msg: Msg) {
        if self.tx.send(msg).is_err() {
            self.stats.dropped_no_task.fetch_add(1, Relaxed);
        }
    }

    /// The session's network is up with `framed_ip`: Accounting Start.
    /// `session` (from the back end's accept) may set the session's
    /// Interim-Update interval and the Class attributes of its records.
    pub fn start(&self, call: &Arc<Call>, framed_ip: Ipv4Addr, session: &SessionAttributes) {
        let user = call.user.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.send(Msg::Start {
            call: Arc::downgrade(call),
            user,
            framed_ip,
            interim: session.acct_interim_interval,
            class: session.class.clone(),
            at: Instant::now(),
            timestamp: unix_now(),
        });
    }

    /// The session is over (from its guard's `Drop`, after the XDP
    /// counters were folded into the call's): Accounting Stop, if it had a
    /// Start.
    pub fn stop(&self, call: &Call, reason: EndReason) {
        self.send(Msg::Stop {
            acct_session_id: call.acct_session_id.clone(),
            reason,
            totals: userspace_totals(call),
            at: Instant::now(),
            timestamp: unix_now(),
        });
    }

    /// Accounting-Off; resolves when it (and what was queued before it) is
    /// answered or `limit` passes.
    pub async fn off(&self, limit: Duration) {
        let (done, answered) = oneshot::channel();
        self.send(Msg::Off { done });
        if tokio::time::timeout(limit, answered).await.is_err() {
            tracing::warn!("RADIUS accounting: Accounting-Off not answered in {limit:?}");
        }
    }
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

fn userspace_totals(call: &Call) -> Totals {
    let c = &call.counters;
    Totals {
        input_octets: c.rx_bytes.load(Relaxed),
        output_octets: c.tx_bytes.load(Relaxed),
        input_packets: c.rx_packets.load(Relaxed),
        output_packets: c.tx_packets.load(Relaxed),
    }
}

/// A live call's totals: its userspace counters plus its XDP counters
/// while it is on the XDP path (as `Shared::session_info` sums them).
pub(crate) fn live_totals(shared: &Shared, call: &Call) -> Totals {
    let mut t = userspace_totals(call);
    if call.data().is_some_and(|d| d.xdp)
        && let Some(xdp) = &shared.xdp
        && let Ok(k) = xdp
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counters(u32::from(call.call_id))
    {
        t.input_octets += k.rx_bytes;
        t.output_octets += k.tx_bytes;
        t.input_packets += k.rx_packets;
        t.output_packets += k.tx_packets;
    }
    t
}

/// What a Start remembered for the Interim-Updates and the Stop.
struct Started {
    call: Weak<Call>,
    attributes: Vec<A>,
    at: Instant,
    /// This session's Interim-Update interval.
    interval: Option<Duration>,
    next_interim: Option<Instant>,
}

/// A session's Interim-Update interval: the RADIUS Acct-Interim-Interval
/// if given, else the configured one; never below 1 s.
fn interim_interval(
    from_radius: Option<Duration>,
    configured: Option<Duration>,
) -> Option<Duration> {
    from_radius
        .or(configured)
        .map(|i| i.max(Duration::from_secs(1)))
}

/// Class attributes (RFC 2865 section 5.25) as the server sent them, for
/// every accounting record of the session; values that cannot be an
/// attribute (over 253 octets, or empty) are left out.
fn class_attributes(class: &[Vec<u8>]) -> impl Iterator<Item = A> + '_ {
    class
        .iter()
        .filter(|c| (1..=253).contains(&c.len()))
        .map(|c| A::plain(attr::CLASS, c.clone()))
}

/// The daemon's Acct-Session-Id for Accounting-On/Off.
fn daemon_session_id(boot_secs: u64) -> String {
    format!("{boot_secs:08x}")
}

fn usage(totals: Totals, session_time: Duration) -> Vec<A> {
    let low = |v: u64| (v & 0xffff_ffff) as u32;
    let high = |v: u64| (v >> 32) as u32;
    vec![
        A::integer(
            acct::ACCT_SESSION_TIME,
            u32::try_from(session_time.as_secs()).unwrap_or(u32::MAX),
        ),
        A::integer(acct::ACCT_INPUT_OCTETS, low(totals.input_octets)),
        A::integer(acct::ACCT_INPUT_GIGAWORDS, high(totals.input_octets)),
        A::integer(acct::ACCT_OUTPUT_OCTETS, low(totals.output_octets)),
        A::integer(acct::ACCT_OUTPUT_GIGAWORDS, high(totals.output_octets)),
        A::integer(acct::ACCT_INPUT_PACKETS, low(totals.input_packets)),
        A::integer(acct::ACCT_OUTPUT_PACKETS, low(totals.output_packets)),
    ]
}

/// Runs accounting until Accounting-Off is answered (or the task is
/// aborted).
pub async fn run(shared: Arc<Shared>, policy: AcctPolicy, stats: Arc<AcctStats>, rx: AcctReceiver) {
    let mut rx = rx.0;
    let all_v4 = policy.delivery.servers.iter().all(|s| s.address.is_ipv4());
    let bind: SocketAddr = if all_v4 {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("RADIUS accounting off: cannot open a UDP socket: {e}");
            return;
        }
    };
    tracing::info!(
        servers = ?policy.delivery.servers.iter().map(|s| s.address).collect::<Vec<_>>(),
        interim = ?policy.interim_interval,
        "RADIUS accounting on"
    );
    let mut core = Accounting::new(policy.delivery.clone());
    let mut started: HashMap<String, Started> = HashMap::new();
    let mut closing: Option<oneshot::Sender<()>> = None;
    let mut last_overflow_warning: Option<Instant> = None;
    let authentic = match shared.live().config.auth.backend {
        AuthBackend::Radius => acct::AUTHENTIC_RADIUS,
        _ => 2,
    };
    let nas = |attributes: &mut Vec<A>| {
        attributes.push(A::plain(
            attr::NAS_IDENTIFIER,
            policy.nas_identifier.as_bytes(),
        ));
        if let Some(ip) = policy.nas_ip_address {
            attributes.push(A::plain(attr::NAS_IP_ADDRESS, ip.octets()));
        }
    };
    let daemon_record = |status: u32, timestamp: u32| {
        let mut attributes = Vec::new();
        nas(&mut attributes);
        attributes.push(A::plain(
            acct::ACCT_SESSION_ID,
            daemon_session_id(shared.boot_secs),
        ));
        attributes.push(A::integer(acct::EVENT_TIMESTAMP, timestamp));
        Record::new(status, attributes, Instant::now())
    };
    let mut records: Vec<Record> = vec![daemon_record(acct::STATUS_ACCOUNTING_ON, unix_now())];
    let mut buf = vec![0u8; 4096];
    loop {
        let now = Instant::now();
        for record in records.drain(..) {
            if !core.enqueue(record, now)
                && last_overflow_warning
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
            {
                last_overflow_warning = Some(now);
                tracing::warn!(
                    queued = core.len(),
                    dropped = core.counters().dropped_queue_full,
                    "RADIUS accounting queue full: record dropped"
                );
            }
        }
        while let Some(t) = core.poll_transmit() {
            if let Err(e) = socket.send_to(&t.payload, t.destination).await {
                tracing::debug!(server = %t.destination, "RADIUS accounting send: {e}");
            }
        }
        publish(&core, &stats);
        if core.is_empty()
            && let Some(done) = closing.take()
        {
            let _ = done.send(());
            return;
        }
        let interim_due = started.values().filter_map(|s| s.next_interim).min();
        let deadline = core
            .poll_timeout()
            .into_iter()
            .chain(interim_due)
            .min()
            .map(tokio::time::Instant::from_std);
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Start { call, user, framed_ip, interim, class, at, timestamp }) => {
                    let Some(c) = call.upgrade() else { continue };
                    if started.contains_key(&c.acct_session_id) {
                        continue;
                    }
                    let mut attributes = Vec::new();
                    if let Some(user) = user {
                        attributes.push(A::plain(attr::USER_NAME, user.into_bytes()));
                    }
                    nas(&mut attributes);
                    attributes.extend([
                        A::integer(attr::NAS_PORT, u32::from(c.call_id)),
                        A::integer(attr::NAS_PORT_TYPE, attr::NAS_PORT_TYPE_VIRTUAL),
                        A::integer(attr::SERVICE_TYPE, attr::SERVICE_TYPE_FRAMED),
                        A::integer(attr::FRAMED_PROTOCOL, attr::FRAMED_PROTOCOL_PPP),
                        A::plain(attr::CALLING_STATION_ID, c.peer.to_string()),
                        A::plain(attr::FRAMED_IP_ADDRESS, framed_ip.octets()),
                        A::plain(acct::ACCT_SESSION_ID, c.acct_session_id.as_bytes()),
                        A::integer(acct::ACCT_AUTHENTIC, authentic),
                    ]);
                    attributes.extend(class_attributes(&class));
                    // The configured interval in effect now (a reload changes it
                    // for the sessions that start after it).
                    let configured = shared
                        .live()
                        .config
                        .accounting_policy()
                        .and_then(|p| p.interim_interval);
                    let interval = interim_interval(interim, configured);
                    let mut record = attributes.clone();
                    record.push(A::integer(acct::EVENT_TIMESTAMP, timestamp));
                    records.push(Record::new(acct::STATUS_START, record, at));
                    started.insert(c.acct_session_id.clone(), Started {
                        call,
                        attributes,
                        at,
                        interval,
                        next_interim: interval.and_then(|i| at.checked_add(i)),
                    });
                }
                Some(Msg::Stop { acct_session_id, reason, totals, at, timestamp }) => {
                    let Some(s) = started.remove(&acct_session_id) else { continue };
                    let mut record = s.attributes;
                    record.extend(usage(totals, at.saturating_duration_since(s.at)));
                    record.push(A::integer(acct::ACCT_TERMINATE_CAUSE, reason.acct_terminate_cause()));
                    record.push(A::integer(acct::EVENT_TIMESTAMP, timestamp));
                    records.push(Record::new(acct::STATUS_STOP, record, at));
                }
                Some(Msg::Off { done }) => {
                    records.push(daemon_record(acct::STATUS_ACCOUNTING_OFF, unix_now()));
                    closing = Some(done);
                }
                None => return,
            },
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, source)) => core.handle_datagram(source, &buf[..n], Instant::now()),
                Err(e) => tracing::debug!("RADIUS accounting receive: {e}"),
            },
            () = sleep_until(deadline) => {
                let now = Instant::now();
                if core.poll_timeout().is_some_and(|t| t <= now) {
                    core.handle_timeout(now);
                }
                for s in started.values_mut() {
                    if s.next_interim.is_some_and(|t| t <= now) {
                        s.next_interim = s.interval.and_then(|i| now.checked_add(i));
                        let Some(call) = s.call.upgrade() else { continue };
                        let mut record = s.attributes.clone();
                        record.extend(usage(live_totals(&shared, &call), now.saturating_duration_since(s.at)));
                        record.push(A::integer(acct::EVENT_TIMESTAMP, unix_now()));
                        records.push(Record::new(acct::STATUS_INTERIM_UPDATE, record, now));
                    }
                }
            }
        }
    }
}

fn publish(core: &Accounting, stats: &AcctStats) {
    let c = core.counters();
    stats.enqueued.store(c.enqueued, Relaxed);
    stats.answered.store(c.answered, Relaxed);
    stats
        .dropped_queue_full
        .store(c.dropped_queue_full, Relaxed);
    stats.transmissions.store(c.transmissions, Relaxed);
    stats.retransmissions.store(c.retransmissions, Relaxed);
    stats.server_dead.store(c.server_dead, Relaxed);
    stats.bad_responses.store(c.bad_responses, Relaxed);
    stats.queued.store(core.len() as u64, Relaxed);
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radius_interim_interval_overrides_the_configured_one() {
        let secs = Duration::from_secs;
        assert_eq!(
            interim_interval(Some(secs(2)), Some(secs(600))),
            Some(secs(2))
        );
        assert_eq!(interim_interval(Some(secs(2)), None), Some(secs(2)));
        assert_eq!(interim_interval(None, Some(secs(600))), Some(secs(600)));
        assert_eq!(interim_interval(None, None), None);
        // Never below 1 s, whatever the source.
        assert_eq!(
            interim_interval(Some(Duration::from_millis(10)), None),
            Some(secs(1))
        );
    }

    #[test]
    fn class_is_echoed_unchanged() {
        let class = vec![b"gold".to_vec(), vec![0, 0xff], vec![], vec![7; 254]];
        let attrs: Vec<A> = class_attributes(&class).collect();
        assert_eq!(
            attrs,
            [
                A::plain(attr::CLASS, b"gold".to_vec()),
                A::plain(attr::CLASS, vec![0, 0xff]),
            ]
        );
    }
}
