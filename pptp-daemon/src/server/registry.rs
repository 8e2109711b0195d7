//! What the daemon's tasks share: the calls by (peer, call ID) and by
//! client address, the data-path counters, and the session list and
//! counters the control socket reports.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use tokio::sync::{mpsc, oneshot};

use super::ctl::{DataPath, Negotiated, SessionInfo, State};
use crate::{
    auth::{Verifier, random::RandomSource, secrets::SecretsFile, server::ServerSettings},
    cli::ConfigOrigin,
    config::Config,
    dataplane::frame::Framing,
    dataplane::{
        gre_socket::GreSocket,
        tun::Routes,
        xdp::{SeqMap, XdpDataplane},
    },
    logsafe::WarnLimiter,
    mppe::cipher::{Decryptor, Encryptor},
    proto::{
        concentrator::{Concentrator, Event as CoreEvent, Refusal, SessionId, SessionState},
        control::ControlSettings,
        end::EndReason,
        session::SessionConfig,
    },
    wire::gre,
};

/// Counters of the userspace data path (the XDP program keeps its own).
#[derive(Default)]
pub struct Stats {
    pub gre_rx: AtomicU64,
    pub gre_malformed: AtomicU64,
    pub gre_unknown_call: AtomicU64,
    pub gre_dropped: AtomicU64,
    pub gre_late: AtomicU64,
    /// MPPE frames dropped over their session's rekey budget (issue 14).
    pub mppe_rekey_dropped: AtomicU64,
    /// MPPE frames to clients not sent: the send chain shared with the
    /// kernel could not be followed (issue 14).
    pub mppe_send_lost: AtomicU64,
    pub spoofed: AtomicU64,
    pub control_queue_full: AtomicU64,
    /// Control frames the GRE receive task handled ahead of the data of
    /// their batch, being behind (issue 17).
    pub gre_control_first: AtomicU64,
    /// Data frames dropped because their worker's queue was full.
    pub worker_queue_full: AtomicU64,
    pub tun_rx: AtomicU64,
    pub tun_no_session: AtomicU64,
    pub tun_too_big: AtomicU64,
    pub gre_tx_errors: AtomicU64,
    /// Dynamic authorization (RFC 5176): datagrams from sources not in
    /// `radius.dae.clients`.
    pub dae_dropped_source: AtomicU64,
    /// ... that failed the checks (authenticators, code, format).
    pub dae_dropped_invalid: AtomicU64,
    /// ... retransmissions answered from the cache.
    pub dae_duplicates: AtomicU64,
    pub dae_acks: AtomicU64,
    pub dae_naks: AtomicU64,
    /// Data over a session's rate limit, dropped: from the client, to it.
    pub rate_dropped_up: AtomicU64,
    pub rate_dropped_down: AtomicU64,
    /// Credentials checks answered by the back end (`ctl stat`).
    pub auth_accepted: AtomicU64,
    pub auth_rejected: AtomicU64,
    /// Data packets and inner bytes on the userspace path, from the
    /// clients (rx) and to them (tx).
    pub data_rx_packets: AtomicU64,
    pub data_rx_bytes: AtomicU64,
    pub data_tx_packets: AtomicU64,
    pub data_tx_bytes: AtomicU64,
    /// The XDP counters of sessions taken off the fast path (the live
    /// ones are in the XDP maps): see `server::metrics`.
    pub xdp_gone: Counters,
    /// Authentication results by method and outcome.
    pub auth: super::metrics::AuthResults,
}

impl Stats {
    pub fn list(&self) -> Vec<(String, u64)> {
        [
            ("userspace_gre_rx", &self.gre_rx),
            ("userspace_gre_malformed", &self.gre_malformed),
            ("userspace_gre_unknown_call", &self.gre_unknown_call),
            ("userspace_gre_dropped", &self.gre_dropped),
            ("userspace_gre_late", &self.gre_late),
            ("userspace_mppe_rekey_dropped", &self.mppe_rekey_dropped),
            ("userspace_mppe_send_lost", &self.mppe_send_lost),
            ("userspace_spoofed", &self.spoofed),
            ("userspace_control_queue_full", &self.control_queue_full),
            ("userspace_gre_control_first", &self.gre_control_first),
            ("userspace_worker_queue_full", &self.worker_queue_full),
            ("userspace_tun_rx", &self.tun_rx),
            ("userspace_tun_no_session", &self.tun_no_session),
            ("userspace_tun_too_big", &self.tun_too_big),
            ("userspace_gre_tx_errors", &self.gre_tx_errors),
            ("dae_dropped_source", &self.dae_dropped_source),
            ("dae_dropped_invalid", &self.dae_dropped_invalid),
            ("dae_duplicates", &self.dae_duplicates),
            ("dae_acks", &self.dae_acks),
            ("dae_naks", &self.dae_naks),
            ("userspace_rate_dropped_up", &self.rate_dropped_up),
            ("userspace_rate_dropped_down", &self.rate_dropped_down),
            ("auth_accepted", &self.auth_accepted),
            ("auth_rejected", &self.auth_rejected),
            ("userspace_data_rx_packets", &self.data_rx_packets),
            ("userspace_data_rx_bytes", &self.data_rx_bytes),
            ("userspace_data_tx_packets", &self.data_tx_packets),
            ("userspace_data_tx_bytes", &self.data_tx_bytes),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.load(Ordering::Relaxed)))
        .collect()
    }
}

/// Traffic counters of one call on the userspace path.
#[derive(Default)]
pub struct Counters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// MPPE frames in a row that decrypted to something other than an
    /// IPv4 packet (see [`super::datapath::MPPE_SYNC_LOST`]).
    pub mppe_undecryptable: AtomicU64,
    /// MPPE frames since the last one delivered that decrypted to
    /// garbage and were not in the peer's GRE sequence (see
    /// [`super::datapath::MPPE_PROBE_EVERY`]).
    pub mppe_out_of_sequence: AtomicU64,
}

/// What the data path needs of a call whose network is up.
pub struct DataState {
    pub client: Ipv4Addr,
    pub framing: Framing,
    /// Largest IPv4 packet the peer accepts (its MRU, less MPPE's 4 bytes).
    pub mtu: u16,
    /// MSS to clamp TCP SYNs to, if clamping is on.
    pub mss: Option<u16>,
    pub encryptor: Option<Mutex<Encryptor>>,
    pub decryptor: Option<Mutex<Decryptor>>,
    /// `"128-bit stateless"` and the like.
    pub mppe: Option<String>,
    /// Installed in the XDP maps.
    pub xdp: bool,
    /// Stateless MPPE received in XDP too: the key chain the userspace
    /// `decryptor` shares with the kernel (issue 14).
    pub mppe_rx: Option<crate::dataplane::mppe_chain::MppeRxSlot>,
    /// Stateless MPPE sent in XDP too: the send chain and coherency counter
    /// the userspace `encryptor` shares with the kernel (issue 14).
    pub mppe_tx: Option<crate::dataplane::mppe_chain::MppeTxSlot>,
    /// The rate limit on the userspace path (the XDP maps hold their own
    /// buckets); [`Shared::set_rate`] changes it.
    pub shaper: Mutex<crate::proto::shaping::Shaper>,
}

/// Frames for a call's session task, from the data path. The peer fills
/// this queue (bounded; what does not fit is dropped and counted), so
/// nothing that must arrive travels on it: see [`Command`].
#[derive(Debug)]
pub enum CallInput {
    /// A PPP control frame: protocol and payload.
    Frame(u16, Vec<u8>),
    /// Stateful MPPE lost packets: send a CCP Reset-Request.
    MppeResetNeeded,
    /// Stateless MPPE frames far ahead of the peer's GRE sequence keep
    /// decrypting to garbage: draw a frame in the sequence with an LCP
    /// Echo-Request (see `datapath::MPPE_PROBE_EVERY`).
    MppeSyncProbe,
}

/// What the daemon itself tells a call's session task: a queue of its own,
/// which the peer cannot fill, so a stop signal or a verdict is never lost
/// behind a flood of the peer's frames. Only the daemon sends on it, a few
/// messages per session at most.
#[derive(Debug)]
pub enum Command {
    /// The answer to the credentials check numbered `request` (a verdict
    /// for an exchange that has since been replaced is dropped).
    Verdict {
        request: u64,
        verdict: Box<crate::auth::Verdict>,
    },
    /// Close the session (LCP Terminate), then end the call.
    Close(EndReason),
    /// The control connection ended the call: the link is gone.
    LowerDown(EndReason),
    /// End at once, without goodbyes (`ctl terminate .. hard`): the task
    /// returns and its guard releases everything; the control connection
    /// closes TCP unless other calls still use it.
    Abort(EndReason),
}

/// One call, shared by its session task, its control connection and the
/// data-path tasks. Its resources are owned by the session task's
/// [`super::session::SessionGuard`], not by this value.
pub struct Call {
    pub peer: Ipv4Addr,
    pub local: Ipv4Addr,
    pub call_id: u16,
    pub peer_call_id: u16,
    /// The concentrator's handle of this session.
    pub session: SessionId,
    pub started: Instant,
    /// Acct-Session-Id (RFC 2866 section 5.5): unique across the daemon's
    /// runs and its sessions; see [`acct_session_id`].
    pub acct_session_id: String,
    /// Frames from the data path (bounded, peer-filled).
    pub input: mpsc::Sender<CallInput>,
    /// Commands from the daemon (never filled by the peer).
    pub commands: mpsc::UnboundedSender<Command>,
    pub data: RwLock<Option<Arc<DataState>>>,
    pub user: Mutex<Option<String>>,
    pub counters: Counters,
    /// What the PPP negotiation agreed, once the network is up (`ctl show`).
    pub negotiated: Mutex<Option<Negotiated>>,
}

impl Call {
    pub fn data(&self) -> Option<Arc<DataState>> {
        self.data.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Tells the session task to close; never lost (see [`Command`]).
    pub fn command(&self, command: Command) {
        // Fails only when the task has ended, which released everything.
        let _ = self.commands.send(command);
    }
}

/// A change to the kernel's routes towards clients. They run in order on
/// one task ([`route_worker`]), so the removal of a route by a session that
/// ended can never overtake the addition by the next owner of the address.
#[derive(Debug)]
pub enum RouteOp {
    Add {
        client: Ipv4Addr,
        mtu: u16,
        done: oneshot::Sender<()>,
    },
    Remove {
        client: Ipv4Addr,
    },
    /// Answered once every change queued before it has run.
    Barrier {
        done: oneshot::Sender<()>,
    },
}

/// Runs the route changes in order.
pub async fn route_worker(
    routes: Routes,
    tun_index: u32,
    tun_name: String,
    mut ops: mpsc::UnboundedReceiver<RouteOp>,
) {
    while let Some(op) = ops.recv().await {
        match op {
            RouteOp::Add { client, mtu, done } => {
                if let Err(e) = routes.add(client, tun_index, &tun_name, mtu).await {
                    tracing::warn!("{e}");
                }
                let _ = done.send(());
            }
            RouteOp::Remove { client } => {
                if let Err(e) = routes.remove(client, tun_index, &tun_name).await {
                    tracing::warn!("{e}");
                }
            }
            RouteOp::Barrier { done } => {
                let _ = done.send(());
            }
        }
    }
}

/// The protocol cores' policies, mapped from the configuration once at
/// start and on every reload ([`super::reload`]), not for every session.
pub struct Settings {
    pub session: SessionConfig,
    pub control: ControlSettings,
    pub auth: ServerSettings,
    /// Our MRU (`ppp.mru`): no session's MTU exceeds it.
    pub mru: u16,
    /// Clamp TCP SYNs' MSS to the session MTU (`dataplane.mss_clamp`).
    pub mss_clamp: bool,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            session: config.session_config(),
            control: config.control_settings(),
            auth: config.server_auth_settings(),
            mru: config.ppp.mru,
            mss_clamp: config.dataplane.mss_clamp,
        }
    }
}

/// The configuration in effect and what is built from it: what a reload
/// replaces, as a whole ([`super::reload`]). A session reads it once, at
/// its start ([`Shared::live`]), so it sees one consistent configuration
/// from its setup to its end, whatever reloads happen meanwhile.
pub struct Live {
    /// The configuration in effect (keys that need a restart keep the
    /// value the daemon started with).
    pub config: Config,
    pub settings: Settings,
    /// The credentials check (source limits around the back end).
    pub verifier: Arc<dyn Verifier>,
    /// The secrets file behind `verifier` under `auth.backend = "secrets"`.
    pub secrets: Option<Arc<SecretsFile>>,
}

/// Everything the tasks share.
pub struct Shared {
    /// The reloadable configuration: read it with [`Shared::live`].
    pub live: RwLock<Arc<Live>>,
    /// Where the configuration comes from, for reloads.
    pub origin: ConfigOrigin,
    /// One reload at a time (SIGHUP and the control socket).
    pub reload_lock: Mutex<()>,
    /// Call IDs, addresses, the session registry and every limit.
    pub core: Arc<Mutex<Concentrator>>,
    pub gre: GreSocket,
    pub seq: Arc<SeqMap>,
    pub xdp: Option<Mutex<XdpDataplane>>,
    pub routes: mpsc::UnboundedSender<RouteOp>,
    pub tun_index: u32,
    pub tun_name: String,
    pub random: RandomSource,
    /// By our call ID (unique daemon-wide): the GRE demultiplexer.
    pub calls: RwLock<HashMap<u16, Arc<Call>>>,
    /// By client address: where packets from the TUN go.
    pub clients: RwLock<HashMap<Ipv4Addr, Arc<Call>>>,
    pub stats: Stats,
    /// Warnings about peers, rate-limited per source.
    pub warnings: Mutex<WarnLimiter>,
    /// When the daemon started, seconds since the epoch (Acct-Session-Id).
    pub boot_secs: u64,
    /// RADIUS accounting, when configured.
    pub accounting: Option<super::accounting::AcctHandle>,
    /// pppd-compatible scripts (`[scripts]`), when any is configured.
    pub scripts: Option<Arc<super::scripts::Scripts>>,
}

impl Shared {
    /// The configuration in effect now (a snapshot: a reload after this
    /// call does not change what it returned).
    pub fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The call with our call ID `call_id` whose peer is `peer`.
    pub fn call(&self, peer: Ipv4Addr, call_id: u16) -> Option<Arc<Call>> {
        self.calls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&call_id)
            .filter(|c| c.peer == peer)
            .cloned()
    }

    /// The concentrator, locked.
    pub fn core(&self) -> std::sync::MutexGuard<'_, Concentrator> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Acts on what the concentrator asks for: sessions it ends (a user's
    /// session replaced, an operator's kill) are told to close.
    pub fn dispatch(&self) {
        let events: Vec<_> = std::iter::from_fn(|| self.core().poll_event()).collect();
        for event in events {
            match event {
                CoreEvent::Terminate { session, reason } => {
                    let call = self
                        .calls
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&session.call_id())
                        .filter(|c| c.session == session)
                        .cloned();
                    if let Some(call) = call {
                        call.command(Command::Close(reason));
                    }
                }
            }
        }
    }

    /// Logs a warning about a peer unless that source has had its share;
    /// suppressed lines are counted and reported with the next one.
    pub fn warn_peer(&self, source: Ipv4Addr, message: std::fmt::Arguments<'_>) {
        let permit = self
            .warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(Instant::now(), IpAddr::V4(source));
        if permit.log {
            if permit.suppressed > 0 {
                tracing::warn!(peer = %source, suppressed = permit.suppressed, "{message}");
            } else {
                tracing::warn!(peer = %source, "{message}");
            }
        }
    }

    pub fn client(&self, addr: Ipv4Addr) -> Option<Arc<Call>> {
        self.clients
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&addr)
            .cloned()
    }

    /// Sends a GRE frame of a call: `buf[begin..end]`.
    pub async fn send_gre(&self, call: &Call, frame: &[u8]) {
        if let Err(e) = self.gre.send(call.local, call.peer, frame).await {
            self.stats.gre_tx_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %call.peer, "GRE send: {e}");
        }
    }

    /// The GRE header for the next frame of a call, from the call's
    /// sequencer (`proto::call`, its numbers shared with the XDP program):
    /// a data frame's next sequence number with the acknowledgment when
    /// one is owed, or (`data` false) an acknowledgment-only frame of the
    /// newest sequence number received.
    pub fn gre_header(&self, call: &Call, data: bool) -> gre::Repr {
        let now = Instant::now();
        let header = self
            .seq
            .with_sequencer(u32::from(call.call_id), |s| {
                if data {
                    // The server's sequencers ignore the peer's window (as
                    // the XDP program must), so this never refuses.
                    s.send_data(0, now).ok()
                } else {
                    s.ack_only()
                }
            })
            .flatten();
        header.unwrap_or_else(|| {
            if data {
                gre::Repr::data(call.peer_call_id, 0, None, 0)
            } else {
                gre::Repr::ack_only(call.peer_call_id, 0)
            }
        })
    }

    pub fn session_info(&self) -> Vec<SessionInfo> {
        let calls: Vec<Arc<Call>> = self
            .calls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let states: Vec<State> = {
            let core = self.core();
            calls
                .iter()
                .map(|c| match core.session(c.session).map(|e| e.state) {
                    Some(SessionState::Starting) => State::Starting,
                    Some(SessionState::Up) => State::Up,
                    Some(SessionState::Ending) | None => State::Ending,
                })
                .collect()
        };
        let mut out: Vec<SessionInfo> = calls
            .iter()
            .zip(states)
            .map(|(c, state)| {
                let data = c.data();
                let mut info = SessionInfo {
                    user: c.user.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                    peer: c.peer,
                    call_id: c.call_id,
                    peer_call_id: c.peer_call_id,
                    client_addr: data.as_ref().map(|d| d.client),
                    uptime_secs: c.started.elapsed().as_secs(),
                    rx_packets: c.counters.rx_packets.load(Ordering::Relaxed),
                    rx_bytes: c.counters.rx_bytes.load(Ordering::Relaxed),
                    tx_packets: c.counters.tx_packets.load(Ordering::Relaxed),
                    tx_bytes: c.counters.tx_bytes.load(Ordering::Relaxed),
                    mppe: data.as_ref().and_then(|d| d.mppe.clone()),
                    path: match &data {
                        None => DataPath::Negotiating,
                        Some(d) if d.xdp => DataPath::Xdp,
                        Some(_) => DataPath::Userspace,
                    },
                    acct_session_id: c.acct_session_id.clone(),
                    state,
                    rate: data
                        .as_ref()
                        .map(|d| d.shaper.lock().unwrap_or_else(|e| e.into_inner()).limit())
                        .filter(|r| !r.is_none())
                        .map(|r| r.to_string()),
                };
                if info.path == DataPath::Xdp
                    && let Some(xdp) = &self.xdp
                    && let Ok(k) = xdp
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .counters(u32::from(c.call_id))
                {
                    info.rx_packets += k.rx_packets;
                    info.rx_bytes += k.rx_bytes;
                    info.tx_packets += k.tx_packets;
                    info.tx_bytes += k.tx_bytes;
                }
                info
            })
            .collect();
        out.sort_by_key(|s| (s.peer, s.call_id));
        out
    }

    pub fn stats_list(&self) -> Vec<(String, u64)> {
        let mut out = self.stats.list();
        let calls = self.calls.read().unwrap_or_else(|e| e.into_inner()).len();
        let clients = self.clients.read().unwrap_or_else(|e| e.into_inner()).len();
        out.push(("calls".into(), calls as u64));
        out.push(("clients_routed".into(), clients as u64));
        {
            let core = self.core();
            let c = core.counters();
            out.push(("pool_in_use".into(), core.addresses_in_use() as u64));
            out.push(("call_ids_live".into(), c.live_sessions as u64));
            out.push(("connections_live".into(), c.live_connections as u64));
            out.push(("starting".into(), c.starting as u64));
            out.push(("connections_accepted".into(), c.connections_accepted));
            out.push(("sessions_started".into(), c.sessions_started));
            for r in Refusal::ALL {
                out.push((format!("refused_{}", r.name()), c.refused(r)));
            }
            for r in EndReason::ALL {
                out.push((format!("ended_{}", r.name()), c.ended(r)));
            }
        }
        if let Some(xdp) = &self.xdp {
            let xdp = xdp.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(stats) = xdp.stats() {
                for s in pptp_common::maps::Stat::ALL {
                    out.push((format!("xdp_{}", s.name()), stats[s as usize]));
                }
            }
            if let Ok((sessions, clients)) = xdp.installed() {
                out.push(("xdp_sessions_installed".into(), sessions as u64));
                out.push(("xdp_clients_installed".into(), clients as u64));
            }
        }
        if let Some(acct) = &self.accounting {
            out.extend(acct.stats.list());
        }
        if let Some(scripts) = &self.scripts {
            out.extend(scripts.stats_list());
        }
        out
    }
}

/// Runs the concentrator's timers (setup deadlines, idle per-source state)
/// and acts on what they end. Wakes at least once a second, so a deadline
/// added after it went to sleep is late by a second at most.
pub async fn core_timer(shared: Arc<Shared>) {
    loop {
        let now = Instant::now();
        let next = shared
            .core()
            .poll_timeout()
            .map_or(now + std::time::Duration::from_secs(1), |t| {
                t.min(now + std::time::Duration::from_secs(1))
            });
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        report_activity(&shared, Instant::now());
        shared.core().handle_timeout(Instant::now());
        shared.dispatch();
    }
}

/// Tells the concentrator the data packet counts (both ways, userspace
/// and XDP) of the sessions it watches for an Idle-Timeout.
fn report_activity(shared: &Shared, now: Instant) {
    let watched = shared.core().idle_watched();
    if watched.is_empty() {
        return;
    }
    let counts: Vec<_> = {
        let calls = shared.calls.read().unwrap_or_else(|e| e.into_inner());
        watched
            .into_iter()
            .filter_map(|id| {
                let call = calls.get(&id.call_id()).filter(|c| c.session == id)?;
                let t = super::accounting::live_totals(shared, call);
                Some((id, t.input_packets + t.output_packets))
            })
            .collect()
    };
    let mut core = shared.core();
    for (id, packets) in counts {
        core.handle_activity(now, id, packets);
    }
}

/// The Acct-Session-Id of a session: the daemon's start time (seconds since
/// the epoch), then the call ID and the concentrator's generation of it,
/// in hex: `5f5e1000-1a2b-00000003`. Unique across restarts (one per
/// second at most) and across the reuse of call IDs.
pub fn acct_session_id(boot_secs: u64, session: SessionId) -> String {
    format!(
        "{boot_secs:08x}-{:04x}-{:08x}",
        session.call_id(),
        session.generation()
    )
}

#[cfg(test)]
impl Shared {
    /// A `Shared` for unit tests: `live` and `core` as given, no XDP, no
    /// accounting, a real raw GRE socket (the tests run as root), a fixed
    /// random source; the route changes the code under test queues arrive
    /// on the returned receiver.
    pub(crate) fn for_tests(
        live: Live,
        origin: ConfigOrigin,
        core: Concentrator,
        scripts: Option<Arc<super::scripts::Scripts>>,
    ) -> (Shared, mpsc::UnboundedReceiver<RouteOp>) {
        let (routes, route_ops) = mpsc::unbounded_channel();
        let shared = Shared {
            live: RwLock::new(Arc::new(live)),
            origin,
            reload_lock: Mutex::new(()),
            core: Arc::new(Mutex::new(core)),
            gre: GreSocket::open().expect(
                "prerequisite: root (CAP_NET_RAW) for a raw GRE socket; run the tests as root",
            ),
            seq: Arc::new(SeqMap::heap()),
            xdp: None,
            routes,
            tun_index: 0,
            tun_name: "none".into(),
            random: crate::auth::random::seeded_random(1),
            calls: RwLock::new(HashMap::new()),
            clients: RwLock::new(HashMap::new()),
            stats: Stats::default(),
            warnings: Mutex::new(WarnLimiter::new(crate::logsafe::WarnLimits::default())),
            boot_secs: 0,
            accounting: None,
            scripts,
        };
        (shared, route_ops)
    }
}
