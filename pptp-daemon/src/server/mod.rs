//! The tokio glue that runs the daemon: the data plane (XDP when configured,
//! the TUN device and the raw GRE socket always), the control listener, one
//! task per control connection ([`control`]) and per call ([`session`]), the
//! local control socket ([`ctl`]), and clean shutdown on SIGINT/SIGTERM.
//!
//! The protocol logic lives in the sans-IO cores (`crate::proto`,
//! `crate::auth`); the tasks here only move bytes and timers in and out.

pub mod control;
pub mod ctl;
pub mod session;

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
    task::JoinSet,
};

use crate::{
    auth::{
        Verifier,
        limiter::LimitedVerifier,
        random::{RandomSource, os_random},
        secrets::{SecretsError, SecretsFile},
    },
    cli::LogLevel,
    config::Config,
    dataplane::{
        frame::{self, BUFFER_LEN, Framing, HEADROOM, Received},
        gre_socket::GreSocket,
        mss,
        tun::{Routes, Tun, TunReader, TunWriter},
        xdp::{SeqMap, XdpDataplane, XdpMode, run_logger},
    },
    mppe::cipher::{Decryptor, Encryptor},
    proto::{control::CallIdPool, pool},
    wire::{gre, ppp},
};
use ctl::{DataPath, Request, Response, SessionInfo};

/// Sets up the log: `RUST_LOG` when set, else `level`. Log records of the
/// `log` crate (aya, aya-log) are forwarded too.
pub fn init_tracing(level: LogLevel) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::builder()
        .with_default_directive(level.as_filter().into())
        .from_env_lossy();
    // Logs go to stderr: stdout belongs to command output (the client's
    // JSON lines, `sessions`).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Counters of the userspace data path (the XDP program keeps its own).
#[derive(Default)]
pub struct Stats {
    pub gre_rx: AtomicU64,
    pub gre_malformed: AtomicU64,
    pub gre_unknown_call: AtomicU64,
    pub gre_dropped: AtomicU64,
    pub gre_late: AtomicU64,
    pub spoofed: AtomicU64,
    pub control_queue_full: AtomicU64,
    pub tun_rx: AtomicU64,
    pub tun_no_session: AtomicU64,
    pub tun_too_big: AtomicU64,
    pub gre_tx_errors: AtomicU64,
}

impl Stats {
    fn list(&self) -> Vec<(String, u64)> {
        [
            ("userspace_gre_rx", &self.gre_rx),
            ("userspace_gre_malformed", &self.gre_malformed),
            ("userspace_gre_unknown_call", &self.gre_unknown_call),
            ("userspace_gre_dropped", &self.gre_dropped),
            ("userspace_gre_late", &self.gre_late),
            ("userspace_spoofed", &self.spoofed),
            ("userspace_control_queue_full", &self.control_queue_full),
            ("userspace_tun_rx", &self.tun_rx),
            ("userspace_tun_no_session", &self.tun_no_session),
            ("userspace_tun_too_big", &self.tun_too_big),
            ("userspace_gre_tx_errors", &self.gre_tx_errors),
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
}

/// Inputs of a call's session task.
#[derive(Debug)]
pub enum CallInput {
    /// A PPP control frame: protocol and payload.
    Frame(u16, Vec<u8>),
    /// The answer to a credentials check.
    Verdict(crate::auth::Verdict),
    /// Close the session (LCP Terminate), then end the call.
    Close(String),
    /// The control connection ended the call: the link is gone.
    LowerDown(String),
    /// Stateful MPPE lost packets: send a CCP Reset-Request.
    MppeResetNeeded,
}

/// One call, shared by its session task, its control connection and the
/// data-path tasks.
pub struct Call {
    pub peer: Ipv4Addr,
    pub local: Ipv4Addr,
    pub call_id: u16,
    pub peer_call_id: u16,
    pub started: Instant,
    pub input: mpsc::Sender<CallInput>,
    pub data: RwLock<Option<Arc<DataState>>>,
    pub user: Mutex<Option<String>>,
    pub counters: Counters,
}

impl Call {
    pub fn data(&self) -> Option<Arc<DataState>> {
        self.data.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Everything the tasks share.
pub struct Shared {
    pub config: Config,
    pub verifier: Arc<dyn Verifier>,
    pub call_ids: Arc<Mutex<CallIdPool>>,
    pub pool: Mutex<pool::AddressPool>,
    pub gre: GreSocket,
    pub seq: Arc<SeqMap>,
    pub xdp: Option<Mutex<XdpDataplane>>,
    pub routes: Routes,
    pub tun_index: u32,
    pub tun_name: String,
    pub random: RandomSource,
    /// By (peer address, our call ID): the GRE demultiplexer.
    pub calls: RwLock<HashMap<(Ipv4Addr, u16), Arc<Call>>>,
    /// By client address: where packets from the TUN go.
    pub clients: RwLock<HashMap<Ipv4Addr, Arc<Call>>>,
    pub stats: Stats,
}

impl Shared {
    pub fn call(&self, peer: Ipv4Addr, call_id: u16) -> Option<Arc<Call>> {
        self.calls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(peer, call_id))
            .cloned()
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

    /// The GRE header for the next frame of a call: the next sequence number
    /// (`None` for an ack-only frame) and the latest ack.
    pub fn gre_header(&self, call: &Call, data: bool) -> gre::Repr {
        let slot = u32::from(call.call_id);
        let ack = self.seq.rx_highest(slot).ok().flatten();
        if let Some(ack) = ack {
            let _ = self.seq.set_ack_sent(slot, ack);
        }
        if data {
            let seq = self.seq.next_tx(slot).unwrap_or(0);
            gre::Repr::data(call.peer_call_id, seq, ack, 0)
        } else {
            gre::Repr::ack_only(call.peer_call_id, ack.unwrap_or(0))
        }
    }

    fn session_info(&self) -> Vec<SessionInfo> {
        let calls: Vec<Arc<Call>> = self
            .calls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut out: Vec<SessionInfo> = calls
            .iter()
            .map(|c| {
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

    fn stats_list(&self) -> Vec<(String, u64)> {
        let mut out = self.stats.list();
        let calls = self.calls.read().unwrap_or_else(|e| e.into_inner()).len();
        let clients = self.clients.read().unwrap_or_else(|e| e.into_inner()).len();
        out.push(("calls".into(), calls as u64));
        out.push(("clients_routed".into(), clients as u64));
        out.push((
            "pool_in_use".into(),
            self.pool.lock().unwrap_or_else(|e| e.into_inner()).in_use() as u64,
        ));
        out.push((
            "call_ids_live".into(),
            self.call_ids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .live() as u64,
        ));
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
        out
    }
}

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(config: Config, log_level: LogLevel) -> anyhow::Result<()> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;

    // Credentials.
    let secrets = match SecretsFile::load(&config.auth.secrets, &config.server.hostname) {
        Ok(file) => {
            tracing::info!(path = %config.auth.secrets.display(), entries = file.len(), "secrets loaded");
            file
        }
        Err(SecretsError::Missing { .. }) => {
            tracing::warn!(
                path = %config.auth.secrets.display(),
                "secrets file missing: every authentication will fail until it exists (it is re-read on SIGHUP)"
            );
            SecretsFile::empty(&config.auth.secrets, &config.server.hostname)
        }
        Err(e) => return Err(e).context("reading the secrets file"),
    };
    let secrets = Arc::new(secrets);
    let verifier: Arc<dyn Verifier> = Arc::new(LimitedVerifier::new(
        secrets.clone(),
        config.source_limits(),
    ));

    // Data plane.
    let mut logger_task = None;
    let xdp = match (&config.dataplane.interface, config.xdp_mode()) {
        (_, XdpMode::Off) => {
            tracing::info!("XDP off: every session uses the userspace data path");
            None
        }
        (None, _) => {
            tracing::info!(
                "no dataplane.interface configured: XDP not attached, every session uses the userspace data path"
            );
            None
        }
        (Some(iface), mode) => match attach_xdp(&config, iface, mode, log_level) {
            Ok(mut dp) => {
                if let Some(logger) = dp.take_logger() {
                    logger_task = Some(tokio::spawn(run_logger(logger)));
                }
                Some(dp)
            }
            // A failed load keeps the daemon up, every session on the
            // userspace path, as with --no-xdp.
            Err(e) => {
                tracing::error!(
                    "XDP unavailable, every session uses the userspace data path: {e:#}"
                );
                None
            }
        },
    };
    let seq = match &xdp {
        Some(dp) => dp.seq().clone(),
        None => Arc::new(SeqMap::heap()),
    };
    let tun = Tun::create(
        &config.dataplane.tun_name,
        Some(config.ppp.local_address),
        config.ppp.mru,
    )
    .context("creating the TUN device")?;
    let routes = Routes::new().context("opening netlink")?;
    let gre = GreSocket::open().context("opening the raw GRE socket (needs CAP_NET_RAW)")?;
    let random = os_random();
    let mut seed = [0u8; 8];
    random(&mut seed);
    let shared = Arc::new(Shared {
        verifier,
        call_ids: Arc::new(Mutex::new(CallIdPool::new(
            config.server.max_sessions as usize,
            u64::from_ne_bytes(seed),
        ))),
        pool: Mutex::new(pool::AddressPool::new(
            &config.ppp.pool,
            &[config.ppp.local_address],
        )),
        gre,
        seq,
        xdp: xdp.map(Mutex::new),
        routes,
        tun_index: tun.index(),
        tun_name: tun.name().to_owned(),
        random,
        calls: RwLock::new(HashMap::new()),
        clients: RwLock::new(HashMap::new()),
        stats: Stats::default(),
        config,
    });
    let (tun_rx, tun_tx) = tun.split();

    let mut background = JoinSet::new();
    background.spawn(gre_receive(shared.clone(), tun_tx));
    background.spawn(tun_receive(shared.clone(), tun_rx));
    {
        let shared = shared.clone();
        let path = shared.config.server.control_socket.clone();
        background.spawn(async move {
            let answer = move |req| match req {
                Request::Sessions => Response::Sessions {
                    sessions: shared.session_info(),
                },
                Request::Stats => Response::Stats {
                    counters: shared.stats_list(),
                },
            };
            if let Err(e) = ctl::serve(&path, answer).await {
                tracing::error!("{e}");
            }
        });
    }

    let listener = TcpListener::bind(shared.config.server.listen)
        .await
        .with_context(|| format!("listening on {}", shared.config.server.listen))?;
    tracing::info!(listen = %shared.config.server.listen, tun = %shared.tun_name, "pptp-xdp running");

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, SocketAddr::V4(peer))) => {
                    let local = match stream.local_addr() {
                        Ok(SocketAddr::V4(l)) => *l.ip(),
                        _ => continue,
                    };
                    let _ = stream.set_nodelay(true);
                    connections.spawn(control::run(shared.clone(), stream, *peer.ip(), local, shutdown_rx.clone()));
                }
                Ok((_, peer)) => tracing::debug!(%peer, "IPv6 control connection refused: PPTP GRE is IPv4 here"),
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = sighup.recv() => match secrets.reload() {
                Ok(n) => tracing::info!(entries = n, "secrets reloaded"),
                Err(e) => tracing::warn!("secrets not reloaded, keeping the old ones: {e}"),
            },
            _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
        }
    }

    // Goodbyes: every connection ends its calls (LCP Terminate,
    // Call-Disconnect-Notify) and sends Stop-Control-Connection-Request.
    drop(listener);
    let _ = shutdown_tx.send(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !connections.is_empty() {
        match tokio::time::timeout_at(deadline, connections.join_next()).await {
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(
                    "{} control connection(s) did not finish in time",
                    connections.len()
                );
                connections.abort_all();
                break;
            }
        }
    }
    background.abort_all();
    if let Some(task) = logger_task {
        task.abort();
    }
    let _ = std::fs::remove_file(&shared.config.server.control_socket);
    if let Some(xdp) = &shared.xdp {
        xdp.lock()
            .unwrap_or_else(|e| e.into_inner())
            .detach_all()
            .context("detaching XDP")?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Loads the XDP program and attaches it to the WAN and LAN interfaces.
fn attach_xdp(
    config: &Config,
    iface: &str,
    mode: XdpMode,
    log_level: LogLevel,
) -> anyhow::Result<XdpDataplane> {
    let mut dp =
        XdpDataplane::load(log_level.as_log_filter()).context("loading the XDP program")?;
    dp.attach(iface, mode)
        .with_context(|| format!("attaching XDP to {iface}"))?;
    for lan in &config.dataplane.lan_interfaces {
        dp.attach(lan, mode)
            .with_context(|| format!("attaching XDP to {lan}"))?;
    }
    Ok(dp)
}

/// Receives every GRE frame that reaches userspace: data of sessions on
/// the userspace path (decrypted when MPPE) goes to the TUN device, control
/// frames to their session task.
async fn gre_receive(shared: Arc<Shared>, mut tun: TunWriter) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (src, offset, len) = match shared.gre.recv_range(&mut buf).await {
            Ok((src, _, range)) => (src, range.start, range.len()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                shared.stats.gre_malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) => {
                tracing::warn!("GRE receive: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.stats.gre_rx.fetch_add(1, Ordering::Relaxed);
        let frame_bytes = &buf[offset..offset + len];
        let header = match frame::parse_gre(frame_bytes) {
            Ok(h) => h,
            Err(e) => {
                shared.stats.gre_malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%src, "dropped GRE frame: {e}");
                continue;
            }
        };
        let Some(call) = shared.call(src, header.call_id) else {
            shared
                .stats
                .gre_unknown_call
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%src, call_id = header.call_id, "GRE for an unknown call");
            continue;
        };
        let slot = u32::from(call.call_id);
        let mut in_order = true;
        if let Some(seq) = header.seq {
            let before = shared.seq.rx_highest(slot).ok().flatten();
            in_order = before.is_none_or(|b| (seq.wrapping_sub(b) as i32) > 0);
            let _ = shared.seq.record_rx(slot, seq);
        }
        let start = offset + header.header_len();
        let end = start + usize::from(header.payload_len);
        let data = call.data();
        let opened = {
            let mut decryptor = data
                .as_ref()
                .and_then(|d| d.decryptor.as_ref())
                .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
            frame::open(&mut buf, start, end, decryptor.as_deref_mut())
        };
        match opened {
            Ok(Received::AckOnly) => {}
            Ok(Received::Control {
                protocol,
                start,
                end,
            }) => {
                if call
                    .input
                    .try_send(CallInput::Frame(protocol, buf[start..end].to_vec()))
                    .is_err()
                {
                    shared
                        .stats
                        .control_queue_full
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Received::Ipv4 {
                start,
                end,
                encrypted,
            }) => {
                let Some(data) = data else {
                    shared.stats.gre_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                // Clear data of a userspace-only session must come in
                // order (as in the kernel's PPTP driver); MPPE has its own
                // coherency count, and XDP sessions deliver out of order too.
                if !encrypted && !data.xdp && !in_order {
                    shared.stats.gre_late.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let packet = &mut buf[start..end];
                if packet.len() < 20 || packet[12..16] != data.client.octets() {
                    shared.stats.spoofed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if let Some(m) = data.mss {
                    mss::clamp(packet, m);
                }
                call.counters.rx_packets.fetch_add(1, Ordering::Relaxed);
                call.counters
                    .rx_bytes
                    .fetch_add(packet.len() as u64, Ordering::Relaxed);
                if let Err(e) = tun.send(packet).await {
                    tracing::debug!("TUN write: {e}");
                }
            }
            Err(e) => {
                shared.stats.gre_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %src, call_id = call.call_id, "dropped frame: {e}");
                if let frame::DropReason::Mppe(d) = &e
                    && d.needs_reset_request()
                {
                    let _ = call.input.try_send(CallInput::MppeResetNeeded);
                }
            }
        }
    }
}

/// Reads packets the kernel routed to the TUN device and sends each to its
/// client's session over GRE.
async fn tun_receive(shared: Arc<Shared>, mut tun: TunReader) {
    let mut buf = vec![0u8; BUFFER_LEN];
    loop {
        let n = match tun.recv(&mut buf[HEADROOM..]).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("TUN read: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.stats.tun_rx.fetch_add(1, Ordering::Relaxed);
        let end = HEADROOM + n;
        if n < 20 || buf[HEADROOM] >> 4 != 4 {
            continue; // IPv6 and the like: no IPV6CP here
        }
        let dst = Ipv4Addr::new(
            buf[HEADROOM + 16],
            buf[HEADROOM + 17],
            buf[HEADROOM + 18],
            buf[HEADROOM + 19],
        );
        let Some(call) = shared.client(dst) else {
            shared.stats.tun_no_session.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Some(data) = call.data() else {
            shared.stats.tun_no_session.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if n > usize::from(data.mtu) {
            shared.stats.tun_too_big.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if let Some(m) = data.mss {
            mss::clamp(&mut buf[HEADROOM..end], m);
        }
        let sealed = {
            let mut enc = data
                .encryptor
                .as_ref()
                .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
            frame::seal(&mut buf, HEADROOM, end, enc.as_deref_mut())
        };
        let Ok((start, protocol)) = sealed else {
            continue;
        };
        let header = shared.gre_header(&call, true);
        let Ok(begin) = frame::prepend(&mut buf, start, end, header, data.framing.ppp(protocol))
        else {
            continue;
        };
        call.counters.tx_packets.fetch_add(1, Ordering::Relaxed);
        call.counters
            .tx_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        shared.send_gre(&call, &buf[begin..end]).await;
    }
}

/// Frames a PPP control packet of a call and sends it.
pub async fn send_control(
    shared: &Shared,
    call: &Call,
    framing: Framing,
    protocol: u16,
    payload: &[u8],
) {
    let mut buf = vec![0u8; HEADROOM + payload.len()];
    buf[HEADROOM..].copy_from_slice(payload);
    let header = shared.gre_header(call, true);
    let ppp = framing.ppp(ppp::Protocol::from(protocol));
    match frame::prepend(&mut buf, HEADROOM, HEADROOM + payload.len(), header, ppp) {
        Ok(begin) => shared.send_gre(call, &buf[begin..]).await,
        Err(e) => tracing::warn!(call_id = call.call_id, "cannot frame a PPP packet: {e}"),
    }
}
