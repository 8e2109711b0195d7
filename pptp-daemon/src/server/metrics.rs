//! Prometheus metrics: `GET /metrics` on `metrics.listen` (off unless
//! set).
//!
//! Nothing is counted twice: a [`Collector`] reads the daemon's own
//! counters at scrape time (the concentrator's sessions, setups, refusals
//! and endings; the userspace path's [`Stats`]; the XDP program's per-CPU
//! counters, summed; the RADIUS client's and the accounting task's
//! counters) into a [`Snapshot`], which is encoded in the OpenMetrics text
//! format by `prometheus-client` (the Prometheus project's Rust client).
//! The only counters kept for the metrics alone are the authentication
//! results ([`AuthResults`]).
//!
//! The HTTP side is hyper's HTTP/1 server: one request per connection, at
//! most `metrics.max_connections` connections served at once (the others
//! wait in the kernel's backlog), each bounded by
//! `metrics.request_timeout_ms` from accept to the last byte, so a peer
//! on the metrics port cannot hold the daemon or pile up tasks.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Bytes, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use tokio::{net::TcpListener, sync::Semaphore};

use super::{Shared, Stats, accounting::AcctStats, ctl::DataPath};
use crate::{
    auth::{AuthMethod, Rejection, Verdict, radius::RadiusStats},
    config::MetricsConfig,
    proto::{
        concentrator::{Counters as CoreCounters, Refusal, SessionState},
        end::EndReason,
    },
};

/// The content type of the OpenMetrics text format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

// ----- authentication results -----

/// Every method, in label order.
const METHODS: [AuthMethod; 4] = [
    AuthMethod::MsChapV2,
    AuthMethod::MsChapV1,
    AuthMethod::ChapMd5,
    AuthMethod::Pap,
];

/// Outcomes: success, then every [`Rejection`].
const OUTCOMES: [&str; 7] = [
    "success",
    "bad_credentials",
    "account_restricted",
    "password_expired",
    "no_dialin_permission",
    "rate_limited",
    "backend_unavailable",
];

fn method_name(method: AuthMethod) -> &'static str {
    match method {
        AuthMethod::MsChapV2 => "mschapv2",
        AuthMethod::MsChapV1 => "mschap",
        AuthMethod::ChapMd5 => "chap_md5",
        AuthMethod::Pap => "pap",
    }
}

fn outcome_index(verdict: &Verdict) -> usize {
    match verdict {
        Verdict::Accept(_) => 0,
        Verdict::Reject(Rejection::BadCredentials) => 1,
        Verdict::Reject(Rejection::AccountRestricted) => 2,
        Verdict::Reject(Rejection::PasswordExpired) => 3,
        Verdict::Reject(Rejection::NoDialinPermission) => 4,
        Verdict::Reject(Rejection::RateLimited) => 5,
        Verdict::Reject(Rejection::BackendUnavailable) => 6,
    }
}

/// Authentication verdicts as the session saw them (after the
/// concentrator's word on an accept), by method and outcome.
#[derive(Debug, Default)]
pub struct AuthResults {
    counts: [[AtomicU64; OUTCOMES.len()]; METHODS.len()],
}

impl AuthResults {
    pub fn record(&self, method: AuthMethod, verdict: &Verdict) {
        let m = METHODS.iter().position(|&x| x == method).unwrap_or(0);
        self.counts[m][outcome_index(verdict)].fetch_add(1, Relaxed);
    }

    fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::new();
        for (m, method) in METHODS.iter().enumerate() {
            for (o, outcome) in OUTCOMES.iter().enumerate() {
                out.push((
                    method_name(*method),
                    *outcome,
                    self.counts[m][o].load(Relaxed),
                ));
            }
        }
        out
    }
}

// ----- the snapshot -----

const STATES: [(SessionState, &str); 3] = [
    (SessionState::Starting, "starting"),
    (SessionState::Up, "up"),
    (SessionState::Ending, "ending"),
];

const PATHS: [(DataPath, &str); 3] = [
    (DataPath::Xdp, "xdp"),
    (DataPath::Userspace, "userspace"),
    (DataPath::Negotiating, "negotiating"),
];

/// Data counters of one path: packets and inner bytes, from the clients
/// (rx) and to them (tx).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// One RADIUS authentication server's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RadiusServer {
    pub address: String,
    pub requests: u64,
    pub retransmissions: u64,
    pub timeouts: u64,
    pub answers: u64,
    /// Sum (s), count, (upper bound, own count) per bucket.
    pub rtt: (f64, u64, Vec<(f64, u64)>),
}

/// The RADIUS client's totals by name, and its servers' counters.
pub type RadiusCounters = (Vec<(&'static str, u64)>, Vec<RadiusServer>);

/// Everything a scrape reports, read from the daemon's counters.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub uptime: Duration,
    pub start_time_secs: u64,
    /// `[state][path]`, in the order of [`STATES`] and [`PATHS`].
    pub sessions: [[u64; 3]; 3],
    pub core: CoreCounters,
    pub pool_in_use: u64,
    pub userspace: Vec<(&'static str, u64)>,
    pub userspace_traffic: Traffic,
    pub dae: Vec<(&'static str, u64)>,
    pub auth: Vec<(&'static str, &'static str, u64)>,
    /// The XDP program's counters (summed over CPUs), when it runs.
    pub xdp: Option<[u64; pptp_common::maps::Stat::COUNT as usize]>,
    pub xdp_traffic: Traffic,
    pub xdp_sessions_installed: Option<u64>,
    pub radius: Option<RadiusCounters>,
    pub accounting: Option<Vec<(&'static str, u64)>>,
}

/// The userspace path's drops by reason.
fn userspace_drops(s: &Stats) -> Vec<(&'static str, u64)> {
    [
        ("malformed", &s.gre_malformed),
        ("unknown_call", &s.gre_unknown_call),
        ("no_data_path", &s.gre_dropped),
        ("late", &s.gre_late),
        ("spoofed", &s.spoofed),
        ("control_queue_full", &s.control_queue_full),
        ("worker_queue_full", &s.worker_queue_full),
        ("mppe_rekey_budget", &s.mppe_rekey_dropped),
        ("mppe_send_lost", &s.mppe_send_lost),
        ("no_session", &s.tun_no_session),
        ("too_big", &s.tun_too_big),
        ("send_error", &s.gre_tx_errors),
    ]
    .into_iter()
    .map(|(n, v)| (n, v.load(Relaxed)))
    .collect()
}

fn dae_counters(s: &Stats) -> Vec<(&'static str, u64)> {
    [
        ("dropped_source", &s.dae_dropped_source),
        ("dropped_invalid", &s.dae_dropped_invalid),
        ("duplicate", &s.dae_duplicates),
        ("ack", &s.dae_acks),
        ("nak", &s.dae_naks),
    ]
    .into_iter()
    .map(|(n, v)| (n, v.load(Relaxed)))
    .collect()
}

fn userspace_traffic(s: &Stats) -> Traffic {
    Traffic {
        rx_packets: s.data_rx_packets.load(Relaxed),
        rx_bytes: s.data_rx_bytes.load(Relaxed),
        tx_packets: s.data_tx_packets.load(Relaxed),
        tx_bytes: s.data_tx_bytes.load(Relaxed),
    }
}

fn radius_counters(stats: &RadiusStats, addresses: &[SocketAddr]) -> RadiusCounters {
    let totals = [
        ("requests", &stats.requests),
        ("accepts", &stats.accepts),
        ("rejects", &stats.rejects),
        ("challenges", &stats.challenges),
        ("no_answer", &stats.no_answer),
        ("overloaded", &stats.overloaded),
        (
            "dropped_no_message_authenticator",
            &stats.dropped_no_message_authenticator,
        ),
        (
            "dropped_bad_authenticator",
            &stats.dropped_bad_authenticator,
        ),
        ("dropped_other", &stats.dropped_other),
    ]
    .into_iter()
    .map(|(n, v)| (n, v.load(Relaxed)))
    .collect();
    let servers = stats
        .servers
        .iter()
        .zip(addresses)
        .map(|(s, address)| RadiusServer {
            address: address.to_string(),
            requests: s.requests.load(Relaxed),
            retransmissions: s.retransmissions.load(Relaxed),
            timeouts: s.timeouts.load(Relaxed),
            answers: s.answers.load(Relaxed),
            rtt: s.rtt.snapshot(),
        })
        .collect();
    (totals, servers)
}

fn accounting_counters(s: &AcctStats) -> Vec<(&'static str, u64)> {
    [
        ("enqueued", &s.enqueued),
        ("answered", &s.answered),
        ("dropped_queue_full", &s.dropped_queue_full),
        ("dropped_no_task", &s.dropped_no_task),
        ("transmissions", &s.transmissions),
        ("retransmissions", &s.retransmissions),
        ("server_dead", &s.server_dead),
        ("bad_responses", &s.bad_responses),
        ("queued", &s.queued),
    ]
    .into_iter()
    .map(|(n, v)| (n, v.load(Relaxed)))
    .collect()
}

impl Snapshot {
    /// Reads the counters that need no live daemon: everything in `stats`.
    pub fn from_stats(stats: &Stats) -> Snapshot {
        Snapshot {
            userspace: userspace_drops(stats),
            userspace_traffic: userspace_traffic(stats),
            dae: dae_counters(stats),
            auth: stats.auth.snapshot(),
            ..Snapshot::default()
        }
    }

    /// Reads the daemon's counters now.
    pub fn gather(shared: &Shared) -> Snapshot {
        let mut snap = Snapshot::from_stats(&shared.stats);
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        snap.start_time_secs = shared.boot_secs;
        snap.uptime = Duration::from_secs(now_secs.saturating_sub(shared.boot_secs));
        // The concentrator's word on each session's state; the call's
        // data state on its path. One lock at a time.
        let states: Vec<(u16, SessionState)> = {
            let core = shared.core();
            snap.core = core.counters().clone();
            snap.pool_in_use = core.pool().in_use() as u64;
            core.sessions()
                .map(|(id, e)| (id.call_id(), e.state))
                .collect()
        };
        let mut xdp_slots = Vec::new();
        {
            let calls = shared.calls.read().unwrap_or_else(|e| e.into_inner());
            for (call_id, state) in states {
                let path = match calls.get(&call_id).and_then(|c| c.data()) {
                    None => DataPath::Negotiating,
                    Some(d) if d.xdp => {
                        xdp_slots.push(u32::from(call_id));
                        DataPath::Xdp
                    }
                    Some(_) => DataPath::Userspace,
                };
                let s = STATES.iter().position(|(x, _)| *x == state).unwrap_or(0);
                let p = PATHS.iter().position(|(x, _)| *x == path).unwrap_or(0);
                snap.sessions[s][p] += 1;
            }
        }
        // Fast path: the sessions gone from it, plus those on it now.
        let gone = &shared.stats.xdp_gone;
        let mut traffic = Traffic {
            rx_packets: gone.rx_packets.load(Relaxed),
            rx_bytes: gone.rx_bytes.load(Relaxed),
            tx_packets: gone.tx_packets.load(Relaxed),
            tx_bytes: gone.tx_bytes.load(Relaxed),
        };
        if let Some(xdp) = &shared.xdp {
            let xdp = xdp.lock().unwrap_or_else(|e| e.into_inner());
            snap.xdp = xdp.stats().ok();
            snap.xdp_sessions_installed = xdp.installed().ok().map(|(s, _)| s as u64);
            for slot in xdp_slots {
                if let Ok(k) = xdp.counters(slot) {
                    traffic.rx_packets += k.rx_packets;
                    traffic.rx_bytes += k.rx_bytes;
                    traffic.tx_packets += k.tx_packets;
                    traffic.tx_bytes += k.tx_bytes;
                }
            }
        }
        snap.xdp_traffic = traffic;
        // The RADIUS back end in effect (a reload that changes the
        // servers starts a new one, with new counters).
        let live = shared.live();
        snap.radius = live
            .verifier
            .radius()
            .map(|r| radius_counters(r.stats(), &r.server_addresses()));
        snap.accounting = shared
            .accounting
            .as_ref()
            .map(|a| accounting_counters(&a.stats));
        snap
    }

    /// Encodes every metric.
    pub fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge(
            &mut e,
            "pptp_uptime_seconds",
            "Seconds since the daemon started",
            self.uptime.as_secs() as i64,
        )?;
        gauge(
            &mut e,
            "process_start_time_seconds",
            "Start time of the daemon since the epoch, in seconds",
            self.start_time_secs as i64,
        )?;
        let mut sessions = Vec::new();
        for (s, (_, state)) in STATES.iter().enumerate() {
            for (p, (_, path)) in PATHS.iter().enumerate() {
                sessions.push((
                    [("state", *state), ("path", *path)],
                    self.sessions[s][p] as i64,
                ));
            }
        }
        labeled_gauge(
            &mut e,
            "pptp_sessions",
            "Sessions by state and data path",
            &sessions,
        )?;
        gauge(
            &mut e,
            "pptp_control_connections",
            "Control connections open",
            self.core.live_connections as i64,
        )?;
        gauge(
            &mut e,
            "pptp_starting",
            "Connections and sessions in setup (what limits.max_starting bounds)",
            self.core.starting as i64,
        )?;
        gauge(
            &mut e,
            "pptp_pool_addresses_in_use",
            "Client addresses assigned from the pool",
            self.pool_in_use as i64,
        )?;
        counter(
            &mut e,
            "pptp_control_connections_accepted",
            "Control connections accepted",
            self.core.connections_accepted,
        )?;
        counter(
            &mut e,
            "pptp_session_setups",
            "Sessions set up (calls accepted)",
            self.core.sessions_started,
        )?;
        let refusals: Vec<_> = Refusal::ALL
            .iter()
            .map(|r| ([("reason", r.name())], self.core.refused(*r)))
            .collect();
        labeled_counter(
            &mut e,
            "pptp_setup_refusals",
            "Connections and calls refused, by reason",
            &refusals,
        )?;
        let endings: Vec<_> = EndReason::ALL
            .iter()
            .map(|r| ([("reason", r.name())], self.core.ended(*r)))
            .collect();
        labeled_counter(
            &mut e,
            "pptp_session_endings",
            "Sessions ended, by reason",
            &endings,
        )?;
        let auth: Vec<_> = self
            .auth
            .iter()
            .map(|(m, o, v)| ([("method", *m), ("outcome", *o)], *v))
            .collect();
        labeled_counter(
            &mut e,
            "pptp_auth_results",
            "Authentication verdicts by method and outcome (success or the rejection's reason)",
            &auth,
        )?;
        let mut packets = Vec::new();
        let mut bytes = Vec::new();
        for (path, t) in [
            ("xdp", &self.xdp_traffic),
            ("userspace", &self.userspace_traffic),
        ] {
            packets.push(([("path", path), ("direction", "rx")], t.rx_packets));
            packets.push(([("path", path), ("direction", "tx")], t.tx_packets));
            bytes.push(([("path", path), ("direction", "rx")], t.rx_bytes));
            bytes.push(([("path", path), ("direction", "tx")], t.tx_bytes));
        }
        labeled_counter(
            &mut e,
            "pptp_data_packets",
            "Data packets by path, from the clients (rx) and to them (tx)",
            &packets,
        )?;
        labeled_counter(
            &mut e,
            "pptp_data_bytes",
            "Inner bytes of data packets by path, from the clients (rx) and to them (tx)",
            &bytes,
        )?;
        let mut drops: Vec<_> = self
            .userspace
            .iter()
            .map(|(reason, v)| ([("path", "userspace"), ("reason", *reason)], *v))
            .collect();
        if let Some(x) = &self.xdp {
            use pptp_common::maps::Stat;
            drops.push((
                [("path", "xdp"), ("reason", "spoofed")],
                x[Stat::GreSpoofed as usize],
            ));
        }
        labeled_counter(
            &mut e,
            "pptp_data_drops",
            "Data packets dropped, by path and reason",
            &drops,
        )?;
        if let Some(x) = &self.xdp {
            use pptp_common::maps::Stat;
            let frames: Vec<_> = Stat::ALL
                .iter()
                .filter(|s| s.is_verdict())
                .map(|s| ([("result", s.name())], x[*s as usize]))
                .collect();
            labeled_counter(
                &mut e,
                "pptp_xdp_frames",
                "Frames the XDP program handled, by result (per-CPU counters summed)",
                &frames,
            )?;
            let mppe = [
                ([("result", "decrypted")], x[Stat::MppeDecrypted as usize]),
                (
                    [("result", "to_userspace")],
                    x[Stat::MppeToUserspace as usize],
                ),
                ([("result", "encrypted")], x[Stat::MppeEncrypted as usize]),
                (
                    [("result", "tx_to_userspace")],
                    x[Stat::MppeTxToUserspace as usize],
                ),
                (
                    [("result", "decrypted_prepared")],
                    x[Stat::MppeRxPrepared as usize],
                ),
                (
                    [("result", "encrypted_prepared")],
                    x[Stat::MppeTxPrepared as usize],
                ),
                (
                    [("result", "decrypted_walked_from_prepared")],
                    x[Stat::MppeRxWalkedFromPrepared as usize],
                ),
            ];
            labeled_counter(
                &mut e,
                "pptp_xdp_mppe_frames",
                "MPPE frames of sessions with kernel MPPE: decrypted or encrypted in XDP, or left to userspace; decrypted_prepared: decrypted with an RC4 state the daemon prepared (part of decrypted); encrypted_prepared: the same for encrypted (part of encrypted); decrypted_walked_from_prepared: decrypted past the prepared states, the key changes walked from a prepared key instead of the head's (part of decrypted)",
                &mppe,
            )?;
            let reasons = [
                ([("reason", "far")], x[Stat::MppeRxFar as usize]),
                ([("reason", "jump")], x[Stat::MppeRxJump as usize]),
                ([("reason", "key_gone")], x[Stat::MppeRxKeyGone as usize]),
                (
                    [("reason", "not_forwarded")],
                    x[Stat::MppeRxNotForwarded as usize],
                ),
                ([("reason", "raced")], x[Stat::MppeRxRaced as usize]),
            ];
            labeled_counter(
                &mut e,
                "pptp_xdp_mppe_rx_to_userspace_frames",
                "Why MPPE frames the XDP program received went to userspace (part of pptp_xdp_mppe_frames{result=\"to_userspace\"}; the rest are duplicates and headers it does not take): far, further ahead than it follows where the GRE sequence numbers show the jump (the daemon's preparer is told where); jump, the same without that evidence; key_gone, the head's key being rewritten; not_forwarded, not IPv4 after decryption, or a SYN to clamp; raced, the head moved past the frame meanwhile",
                &reasons,
            )?;
            counter(
                &mut e,
                "pptp_xdp_steered_taken_frames",
                "Frames for a client that another CPU steered to the CPU sending its session's frames (pptp_xdp_frames{result=\"encap_steered\"}) and that CPU took from its queue; the difference the queues dropped, full",
                x[Stat::SteeredTaken as usize],
            )?;
            counter(
                &mut e,
                "pptp_xdp_seen_frames",
                "Every frame the XDP program saw",
                x[Stat::Frames as usize],
            )?;
            counter(
                &mut e,
                "pptp_xdp_seen_bytes",
                "Bytes of every frame the XDP program saw",
                x[Stat::Bytes as usize],
            )?;
        }
        if let Some(n) = self.xdp_sessions_installed {
            gauge(
                &mut e,
                "pptp_xdp_sessions_installed",
                "Sessions in the XDP maps",
                n as i64,
            )?;
        }
        let dae: Vec<_> = self
            .dae
            .iter()
            .map(|(r, v)| ([("result", *r)], *v))
            .collect();
        labeled_counter(
            &mut e,
            "pptp_radius_dae_requests",
            "Dynamic authorization (RFC 5176) datagrams, by result",
            &dae,
        )?;
        if let Some((totals, servers)) = &self.radius {
            let totals: Vec<_> = totals.iter().map(|(r, v)| ([("result", *r)], *v)).collect();
            labeled_counter(
                &mut e,
                "pptp_radius_auth",
                "RADIUS authentication: requests, answers by code, failures and dropped responses",
                &totals,
            )?;
            let per = |f: fn(&RadiusServer) -> u64| -> Vec<([(&'static str, &str); 1], u64)> {
                servers
                    .iter()
                    .map(|s| ([("server", s.address.as_str())], f(s)))
                    .collect()
            };
            labeled_counter(
                &mut e,
                "pptp_radius_auth_requests",
                "Access-Requests sent, per server (first transmissions)",
                &per(|s| s.requests),
            )?;
            labeled_counter(
                &mut e,
                "pptp_radius_auth_retransmissions",
                "Access-Request retransmissions, per server",
                &per(|s| s.retransmissions),
            )?;
            labeled_counter(
                &mut e,
                "pptp_radius_auth_timeouts",
                "Access-Requests a server left unanswered after every retransmission",
                &per(|s| s.timeouts),
            )?;
            labeled_counter(
                &mut e,
                "pptp_radius_auth_answers",
                "Access-Requests answered, per server",
                &per(|s| s.answers),
            )?;
            let mut m = e.encode_descriptor(
                "pptp_radius_auth_rtt_seconds",
                "Time from the last transmission of an Access-Request to its answer, per server",
                None,
                MetricType::Histogram,
            )?;
            for s in servers {
                let (sum, count, buckets) = &s.rtt;
                m.encode_family(&[("server", s.address.as_str())])?
                    .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
            }
        }
        if let Some(acct) = &self.accounting {
            let get = |name: &str| acct.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v);
            gauge(
                &mut e,
                "pptp_radius_acct_queue_depth",
                "Accounting records waiting for an answer",
                get("queued") as i64,
            )?;
            labeled_counter(
                &mut e,
                "pptp_radius_acct_dropped",
                "Accounting records dropped, by reason",
                &[
                    ([("reason", "queue_full")], get("dropped_queue_full")),
                    ([("reason", "no_task")], get("dropped_no_task")),
                ],
            )?;
            let rest: Vec<_> = [
                "enqueued",
                "answered",
                "transmissions",
                "retransmissions",
                "server_dead",
                "bad_responses",
            ]
            .into_iter()
            .map(|n| ([("result", n)], get(n)))
            .collect();
            labeled_counter(
                &mut e,
                "pptp_radius_acct",
                "RADIUS accounting records and datagrams",
                &rest,
            )?;
        }
        Ok(())
    }
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Result<(), std::fmt::Error> {
    ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn labeled_gauge<const N: usize>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[([(&str, &str); N], i64)],
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in values {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn labeled_counter<const N: usize>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[([(&str, &str); N], u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in values {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

// ----- the collector and the server -----

/// Reads the daemon's counters at each scrape.
pub struct DaemonCollector {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DaemonCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonCollector").finish_non_exhaustive()
    }
}

impl Collector for DaemonCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        Snapshot::gather(&self.shared).encode(encoder)
    }
}

/// The registry's text (OpenMetrics).
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String fails only if an encoder does, which ours
    // never do; an empty answer would show it.
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        tracing::warn!("metrics: encoding failed");
    }
    out
}

/// Binds `metrics.listen` (`None` when unset).
pub async fn bind(config: &MetricsConfig) -> std::io::Result<Option<TcpListener>> {
    match config.listen {
        Some(addr) => TcpListener::bind(addr).await.map(Some),
        None => Ok(None),
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped, with
/// the bounds of `config` (what the daemon started with).
pub async fn run(listener: TcpListener, shared: Arc<Shared>, config: MetricsConfig) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listen = %addr, "metrics at http://{addr}/metrics");
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(DaemonCollector { shared }));
    serve(listener, Arc::new(registry), &config).await
}

/// The HTTP side: bounded connections, each bounded in time.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, config: &MetricsConfig) {
    let permits = Arc::new(Semaphore::new(config.max_connections as usize));
    let timeout = Duration::from_millis(config.request_timeout_ms);
    loop {
        // Wait for a free slot before accepting: the others wait in the
        // kernel's backlog, not in our memory.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!("metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let registry = registry.clone();
                // Reading the counters takes locks and, with XDP, a map
                // lookup per session: off the runtime's workers.
                async move {
                    let answered = tokio::task::spawn_blocking(move || answer(&req, &registry));
                    Ok::<_, Infallible>(answered.await.unwrap_or_else(|_| {
                        let mut r = Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                        r
                    }))
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            if tokio::time::timeout(timeout, connection).await.is_err() {
                tracing::debug!("metrics connection timed out");
            }
        });
    }
}

fn answer<B>(req: &Request<B>, registry: &Registry) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = content_type.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "only /metrics here\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    reply(StatusCode::OK, CONTENT_TYPE, render(registry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Accepted, AddressPolicy, SessionAttributes, radius::ServerStats};

    /// A collector of a fixed [`Snapshot`].
    #[derive(Debug)]
    struct SnapshotCollector(Snapshot);

    impl Collector for SnapshotCollector {
        fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            self.0.encode(encoder)
        }
    }

    fn text(snapshot: Snapshot) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector(snapshot)));
        render(&registry)
    }

    /// The value of the sample `series` (name and labels, as written).
    fn sample(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
    }

    fn accept() -> Verdict {
        Verdict::Accept(Accepted {
            user: "alice".into(),
            static_address: None,
            addresses: AddressPolicy::default(),
            authenticator_response: None,
            mppe: None,
            session: SessionAttributes::default(),
        })
    }

    #[test]
    fn counters_appear_with_their_labels() {
        let stats = Stats::default();
        stats.gre_late.store(7, Relaxed);
        stats.tun_too_big.store(3, Relaxed);
        stats.data_rx_packets.store(11, Relaxed);
        stats.data_tx_bytes.store(1500, Relaxed);
        stats.dae_acks.store(2, Relaxed);
        stats.auth.record(AuthMethod::MsChapV2, &accept());
        stats.auth.record(AuthMethod::MsChapV2, &accept());
        stats
            .auth
            .record(AuthMethod::Pap, &Verdict::Reject(Rejection::BadCredentials));
        let mut snap = Snapshot::from_stats(&stats);
        snap.uptime = Duration::from_secs(42);
        snap.sessions[1][0] = 5; // up, xdp
        snap.sessions[0][2] = 1; // starting, negotiating
        snap.core.sessions_started = 9;
        snap.core.sessions_ended[EndReason::PeerTerminate.index()] = 4;
        snap.core.refusals[Refusal::ALL[0].index()] = 6;
        let mut x = [0u64; pptp_common::maps::Stat::COUNT as usize];
        x[pptp_common::maps::Stat::GreDecapsulated as usize] = 100;
        x[pptp_common::maps::Stat::GreSpoofed as usize] = 8;
        x[pptp_common::maps::Stat::MppeDecrypted as usize] = 60;
        x[pptp_common::maps::Stat::MppeRxFar as usize] = 12;
        x[pptp_common::maps::Stat::MppeRxKeyGone as usize] = 2;
        snap.xdp = Some(x);
        snap.xdp_traffic.tx_packets = 77;
        let t = text(snap);
        for (series, value) in [
            ("pptp_uptime_seconds", "42"),
            (r#"pptp_sessions{state="up",path="xdp"}"#, "5"),
            (r#"pptp_sessions{state="starting",path="negotiating"}"#, "1"),
            (r#"pptp_sessions{state="up",path="userspace"}"#, "0"),
            ("pptp_session_setups_total", "9"),
            (
                r#"pptp_session_endings_total{reason="peer_terminate"}"#,
                "4",
            ),
            (r#"pptp_session_endings_total{reason="auth_failed"}"#, "0"),
            (
                &format!(
                    r#"pptp_setup_refusals_total{{reason="{}"}}"#,
                    Refusal::ALL[0].name()
                ),
                "6",
            ),
            (
                r#"pptp_auth_results_total{method="mschapv2",outcome="success"}"#,
                "2",
            ),
            (
                r#"pptp_auth_results_total{method="pap",outcome="bad_credentials"}"#,
                "1",
            ),
            (
                r#"pptp_auth_results_total{method="mschapv2",outcome="bad_credentials"}"#,
                "0",
            ),
            (
                r#"pptp_data_packets_total{path="userspace",direction="rx"}"#,
                "11",
            ),
            (
                r#"pptp_data_packets_total{path="xdp",direction="tx"}"#,
                "77",
            ),
            (
                r#"pptp_data_bytes_total{path="userspace",direction="tx"}"#,
                "1500",
            ),
            (
                r#"pptp_data_drops_total{path="userspace",reason="late"}"#,
                "7",
            ),
            (
                r#"pptp_data_drops_total{path="userspace",reason="too_big"}"#,
                "3",
            ),
            (r#"pptp_data_drops_total{path="xdp",reason="spoofed"}"#, "8"),
            (r#"pptp_xdp_frames_total{result="gre_decapsulated"}"#, "100"),
            (r#"pptp_xdp_mppe_frames_total{result="decrypted"}"#, "60"),
            (
                r#"pptp_xdp_mppe_rx_to_userspace_frames_total{reason="far"}"#,
                "12",
            ),
            (
                r#"pptp_xdp_mppe_rx_to_userspace_frames_total{reason="key_gone"}"#,
                "2",
            ),
            (
                r#"pptp_xdp_mppe_rx_to_userspace_frames_total{reason="raced"}"#,
                "0",
            ),
            (r#"pptp_radius_dae_requests_total{result="ack"}"#, "2"),
        ] {
            assert_eq!(
                sample(&t, series).as_deref(),
                Some(value),
                "{series} in:\n{t}"
            );
        }
        // No RADIUS, no accounting: no such series.
        assert!(!t.contains("pptp_radius_auth"), "{t}");
        assert!(!t.contains("pptp_radius_acct"), "{t}");
        // The MPPE counters are not verdicts: not among the frames' results.
        assert!(!t.contains(r#"pptp_xdp_frames_total{result="mppe"#), "{t}");
        assert!(t.ends_with("# EOF\n"), "{t}");
    }

    #[test]
    fn radius_servers_and_accounting_appear_per_server() {
        let stats = RadiusStats {
            servers: vec![ServerStats::default(), ServerStats::default()],
            ..RadiusStats::default()
        };
        stats.requests.store(3, Relaxed);
        stats.no_answer.store(1, Relaxed);
        let [a, b] = &stats.servers[..] else {
            unreachable!()
        };
        a.requests.store(3, Relaxed);
        a.timeouts.store(1, Relaxed);
        a.retransmissions.store(2, Relaxed);
        b.requests.store(2, Relaxed);
        b.answers.store(2, Relaxed);
        b.rtt.observe(Duration::from_millis(3));
        b.rtt.observe(Duration::from_millis(30));
        let addresses: Vec<SocketAddr> = vec![
            "198.18.0.10:1812".parse().unwrap(),
            "198.18.0.11:1812".parse().unwrap(),
        ];
        let acct = AcctStats::default();
        acct.queued.store(12, Relaxed);
        acct.dropped_queue_full.store(5, Relaxed);
        acct.retransmissions.store(4, Relaxed);
        let snap = Snapshot {
            radius: Some(radius_counters(&stats, &addresses)),
            accounting: Some(accounting_counters(&acct)),
            ..Snapshot::default()
        };
        let t = text(snap);
        for (series, value) in [
            (r#"pptp_radius_auth_total{result="requests"}"#, "3"),
            (r#"pptp_radius_auth_total{result="no_answer"}"#, "1"),
            (
                r#"pptp_radius_auth_requests_total{server="198.18.0.10:1812"}"#,
                "3",
            ),
            (
                r#"pptp_radius_auth_timeouts_total{server="198.18.0.10:1812"}"#,
                "1",
            ),
            (
                r#"pptp_radius_auth_retransmissions_total{server="198.18.0.10:1812"}"#,
                "2",
            ),
            (
                r#"pptp_radius_auth_answers_total{server="198.18.0.11:1812"}"#,
                "2",
            ),
            (
                r#"pptp_radius_auth_rtt_seconds_count{server="198.18.0.11:1812"}"#,
                "2",
            ),
            (
                r#"pptp_radius_auth_rtt_seconds_sum{server="198.18.0.11:1812"}"#,
                "0.033",
            ),
            // Cumulative buckets: 3 ms in the 5 ms bucket, 30 ms in 50 ms.
            (
                r#"pptp_radius_auth_rtt_seconds_bucket{le="0.0025",server="198.18.0.11:1812"}"#,
                "0",
            ),
            (
                r#"pptp_radius_auth_rtt_seconds_bucket{le="0.005",server="198.18.0.11:1812"}"#,
                "1",
            ),
            (
                r#"pptp_radius_auth_rtt_seconds_bucket{le="0.05",server="198.18.0.11:1812"}"#,
                "2",
            ),
            (
                r#"pptp_radius_auth_rtt_seconds_bucket{le="+Inf",server="198.18.0.11:1812"}"#,
                "2",
            ),
            (
                r#"pptp_radius_auth_rtt_seconds_count{server="198.18.0.10:1812"}"#,
                "0",
            ),
            ("pptp_radius_acct_queue_depth", "12"),
            (
                r#"pptp_radius_acct_dropped_total{reason="queue_full"}"#,
                "5",
            ),
            (r#"pptp_radius_acct_total{result="retransmissions"}"#, "4"),
        ] {
            assert_eq!(
                sample(&t, series).as_deref(),
                Some(value),
                "{series} in:\n{t}"
            );
        }
    }

    #[test]
    fn only_get_metrics_is_answered() {
        let registry = Registry::default();
        let req = |method: Method, path: &str| {
            Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .unwrap()
        };
        let ok = answer(&req(Method::GET, "/metrics"), &registry);
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[hyper::header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(
            answer(&req(Method::GET, "/"), &registry).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            answer(&req(Method::POST, "/metrics"), &registry).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
