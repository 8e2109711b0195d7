//! Our own PPTP client, for the tests, the lab and the bench. It behaves
//! as a Windows client does: one control connection per call,
//! Start-Control-Connection, Outgoing-Call, Set-Link-Info, then PPP with
//! MS-CHAPv2 (checking the server's Authenticator Response) and, when asked,
//! stateless 128-bit MPPE. Many sessions run in one process, over one raw
//! GRE socket and one TUN device that carries every assigned address.
//!
//! Sessions that share a call ID (`--same-call-id`, to test a server
//! against clients behind a NAT that does not rewrite call IDs) cannot be
//! told apart by the GRE key of what the server sends. Each such session
//! starts its own GRE sequence numbers at a different offset, so the
//! server's acknowledgment tells whose frame it is; frames without one go
//! to the session negotiating (they negotiate one after the other), and
//! clear data to the session whose address it is for. This is a test mode,
//! not something a real client does.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddrV4},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde::Serialize;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    signal::unix::{SignalKind, signal},
    sync::{Semaphore, mpsc, watch},
    task::JoinSet,
};

use crate::{
    auth::{
        AuthMethod,
        peer::{PeerAuthFactory, PeerSettings},
        random::os_random,
    },
    dataplane::{
        frame::{self, BUFFER_LEN, Framing, HEADROOM, Received},
        gre_socket::GreSocket,
        tun::{Routes, Tun, TunReader, TunWriter},
    },
    mppe::{
        KeyLength,
        cipher::{Decryptor, Encryptor, MppeCipher},
        keys::{StartKeys, start_keys},
    },
    proto::{
        call::{self, Sequencer, WindowPolicy},
        ccp::{CcpPolicy, MppePolicy, StatefulMode},
        control::{ControlConnection, ControlEvent, ControlSettings},
        lcp::magic_source,
        session::{Session, SessionConfig, SessionEvent},
    },
    wire::{gre, ipv4, ppp, pptp::StopReason},
};

/// What the client is asked to do.
#[derive(Clone, Debug, clap::Args)]
pub struct ClientArgs {
    /// The server's address.
    #[arg(long)]
    pub server: Ipv4Addr,
    /// The server's control port.
    #[arg(long, default_value_t = pptp_common::consts::PPTP_PORT)]
    pub port: u16,
    /// User name (MS-CHAPv2 and whatever else the server asks for).
    #[arg(long)]
    pub user: String,
    /// Password.
    #[arg(long)]
    pub password: String,
    /// Number of sessions to open, each on its own control connection.
    #[arg(long, default_value_t = 1)]
    pub sessions: usize,
    /// Require stateless MPPE, 128-bit unless `--mppe-bits` says
    /// otherwise (what Windows negotiates by default).
    #[arg(long)]
    pub mppe: bool,
    /// With `--mppe`: the MPPE key lengths we accept (40, 56, 128), all
    /// offered to the server, which picks one.
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = [128u16],
        requires = "mppe",
        value_parser = parse_mppe_bits
    )]
    pub mppe_bits: Vec<u16>,
    /// With `--mppe`: put each session's MPPE start keys (RFC 3079
    /// MasterSendKey and MasterReceiveKey, hex) in its `up` line, for a
    /// load generator that builds encrypted frames or a capture to decrypt
    /// (like SSLKEYLOGFILE). It discloses the session's keys: test
    /// accounts only.
    #[arg(long, requires = "mppe")]
    pub report_mppe_keys: bool,
    /// With `--mppe`: require stateful MPPE instead (RFC 3078: one key
    /// change every 256 packets, CCP Reset-Request on loss), as clients
    /// without a stateless mode ask for; a server must allow it
    /// (`mppe.stateful`). Tests a server's stateful path.
    #[arg(long, requires = "mppe")]
    pub mppe_stateful: bool,
    /// TUN device carrying the sessions' traffic.
    #[arg(long, default_value = "pptpc0")]
    pub tun: String,
    /// Networks to route through the tunnels once the first session is up.
    #[arg(long = "route", value_name = "CIDR")]
    pub routes: Vec<String>,
    /// Every session uses call ID 1 (a server test: clients behind a NAT
    /// that does not rewrite call IDs).
    #[arg(long)]
    pub same_call_id: bool,
    /// Sessions negotiating at the same time.
    #[arg(long, default_value_t = 32)]
    pub parallel: usize,
    /// End each call with Call-Clear-Request and close TCP without
    /// Stop-Control-Connection, as pptp-linux does (default: Stop, as Windows).
    #[arg(long)]
    pub no_stop: bool,
    /// Exit after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Authentication methods we accept, in order of preference (the
    /// server's request for another one is Nak'ed with the first).
    #[arg(
        long = "auth",
        value_enum,
        value_delimiter = ',',
        default_values = ["mschapv2", "mschap"]
    )]
    pub auth: Vec<ClientAuthMethod>,
}

/// `--mppe-bits`: 40, 56 or 128.
fn parse_mppe_bits(s: &str) -> Result<u16, String> {
    s.parse()
        .ok()
        .filter(|b| KeyLength::from_bits(*b).is_some())
        .ok_or_else(|| format!("{s:?}: MPPE key lengths are 40, 56 and 128 bits"))
}

/// `--auth`: a method our client accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuthMethod {
    Mschapv2,
    Mschap,
    ChapMd5,
    Pap,
}

impl From<ClientAuthMethod> for AuthMethod {
    fn from(m: ClientAuthMethod) -> AuthMethod {
        match m {
            ClientAuthMethod::Mschapv2 => AuthMethod::MsChapV2,
            ClientAuthMethod::Mschap => AuthMethod::MsChapV1,
            ClientAuthMethod::ChapMd5 => AuthMethod::ChapMd5,
            ClientAuthMethod::Pap => AuthMethod::Pap,
        }
    }
}

/// One line of the client's standard output (JSON).
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Report {
    Up {
        index: usize,
        address: Ipv4Addr,
        server_address: Ipv4Addr,
        call_id: u16,
        peer_call_id: u16,
        mppe: bool,
        /// The negotiated MPPE key length, in bits.
        #[serde(skip_serializing_if = "Option::is_none")]
        mppe_bits: Option<u16>,
        /// The negotiated MPPE mode: stateless (H bit) or stateful.
        #[serde(skip_serializing_if = "Option::is_none")]
        mppe_stateless: Option<bool>,
        /// With `--report-mppe-keys`: our start keys, hex.
        #[serde(skip_serializing_if = "Option::is_none")]
        mppe_keys: Option<ReportedKeys>,
        dns: Vec<Ipv4Addr>,
        setup_ms: u128,
    },
    AllUp {
        sessions: usize,
        setup_ms: u128,
    },
    Down {
        index: usize,
        reason: String,
    },
    Failed {
        index: usize,
        reason: String,
    },
}

/// A session's MPPE start keys as `--report-mppe-keys` prints them.
#[derive(Debug, Serialize)]
struct ReportedKeys {
    /// What we encrypt with (the server's receive key).
    send: String,
    /// What we decrypt with (the server's send key).
    receive: String,
}

impl ReportedKeys {
    fn new(keys: &StartKeys) -> ReportedKeys {
        let hex = |k: &[u8]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
        ReportedKeys {
            send: hex(keys.send.as_bytes()),
            receive: hex(keys.recv.as_bytes()),
        }
    }
}

fn report(r: &Report) {
    if let Ok(line) = serde_json::to_string(r) {
        println!("{line}");
    }
}

struct DataState {
    address: Ipv4Addr,
    framing: Framing,
    encryptor: Option<Mutex<Encryptor>>,
    decryptor: Option<Mutex<Decryptor>>,
}

enum Input {
    Frame(u16, Vec<u8>),
    MppeResetNeeded,
}

struct ClientCall {
    /// First GRE sequence number we send (distinct per session).
    initial_seq: u32,
    server: Ipv4Addr,
    local: Ipv4Addr,
    peer_call_id: std::sync::atomic::AtomicU16,
    input: mpsc::Sender<Input>,
    seq: Mutex<Sequencer>,
    data: RwLock<Option<Arc<DataState>>>,
    negotiating: AtomicBool,
}

impl ClientCall {
    fn data(&self) -> Option<Arc<DataState>> {
        self.data.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct Shared {
    args: ClientArgs,
    gre: GreSocket,
    routes: Routes,
    tun_index: u32,
    by_call: RwLock<HashMap<u16, Vec<Arc<ClientCall>>>>,
    by_address: RwLock<HashMap<Ipv4Addr, Arc<ClientCall>>>,
    routes_added: AtomicBool,
    up: AtomicU64,
}

impl Shared {
    async fn send(&self, call: &ClientCall, frame: &[u8]) {
        if let Err(e) = self.gre.send(call.local, call.server, frame).await {
            tracing::debug!("GRE send: {e}");
        }
    }

    /// Frames and sends one PPP packet of a call.
    async fn send_ppp(&self, call: &ClientCall, framing: Framing, protocol: u16, payload: &[u8]) {
        let mut buf = vec![0u8; HEADROOM + payload.len()];
        buf[HEADROOM..].copy_from_slice(payload);
        let header = {
            let mut seq = call.seq.lock().unwrap_or_else(|e| e.into_inner());
            seq.send_data(0, Instant::now())
                .unwrap_or_else(|_| gre::Repr::data(seq.peer_call_id(), seq.next_seq(), None, 0))
        };
        let ppp = framing.ppp(ppp::Protocol::from(protocol));
        if let Ok(begin) = frame::prepend(&mut buf, HEADROOM, HEADROOM + payload.len(), header, ppp)
        {
            self.send(call, &buf[begin..]).await;
        }
    }
}

/// Runs the client until every session has ended, the duration is over, or
/// SIGINT/SIGTERM.
pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let tun = Tun::create(&args.tun, None, 1400).context("creating the client TUN device")?;
    let routes = Routes::new().context("opening netlink")?;
    let gre = GreSocket::open().context("opening the raw GRE socket (needs CAP_NET_RAW)")?;
    let shared = Arc::new(Shared {
        gre,
        routes,
        tun_index: tun.index(),
        by_call: RwLock::new(HashMap::new()),
        by_address: RwLock::new(HashMap::new()),
        routes_added: AtomicBool::new(false),
        up: AtomicU64::new(0),
        args: args.clone(),
    });
    let (tun_rx, tun_tx) = tun.split();
    let mut background = JoinSet::new();
    background.spawn(gre_receive(shared.clone(), tun_tx));
    background.spawn(tun_receive(shared.clone(), tun_rx));

    let (stop_tx, stop_rx) = watch::channel(false);
    // Sessions sharing a call ID negotiate one at a time.
    let parallel = if args.same_call_id {
        1
    } else {
        args.parallel.max(1)
    };
    let gate = Arc::new(Semaphore::new(parallel));
    let started = Instant::now();
    let mut sessions = JoinSet::new();
    // Call IDs from a random base, as real clients pick them: two client
    // processes in one namespace see each other's GRE frames.
    let mut base = [0u8; 2];
    os_random()(&mut base);
    let base = u16::from_ne_bytes(base);
    for index in 0..args.sessions {
        let call_id = if args.same_call_id {
            1
        } else {
            call_id_of(base, index)
        };
        sessions.spawn(session(
            shared.clone(),
            index,
            call_id,
            gate.clone(),
            stop_rx.clone(),
            started,
        ));
    }

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let until = args
        .duration
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut stopping = false;
    loop {
        tokio::select! {
            done = sessions.join_next() => {
                if done.is_none() {
                    break;
                }
            }
            _ = sigint.recv(), if !stopping => { stopping = true; let _ = stop_tx.send(true); }
            _ = sigterm.recv(), if !stopping => { stopping = true; let _ = stop_tx.send(true); }
            _ = async { match until { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } }, if !stopping => {
                stopping = true;
                let _ = stop_tx.send(true);
            }
        }
    }
    background.abort_all();
    Ok(())
}

/// One session: control connection, call, PPP, until stopped or ended.
async fn session(
    shared: Arc<Shared>,
    index: usize,
    call_id: u16,
    gate: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    started: Instant,
) {
    let permit = gate.acquire_owned().await.ok();
    let args = &shared.args;
    let server = SocketAddrV4::new(args.server, args.port);
    let mut stream = match TcpStream::connect(server).await {
        Ok(s) => s,
        Err(e) => {
            report(&Report::Failed {
                index,
                reason: format!("connect {server}: {e}"),
            });
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(std::net::SocketAddr::V4(a)) => *a.ip(),
        _ => return,
    };
    let now = Instant::now();
    let mut control = ControlConnection::client(ControlSettings::default(), now);
    let _ = control.open_call(now, call_id);

    let (input_tx, mut input_rx) = mpsc::channel(256);
    let initial_seq = if args.same_call_id {
        (index as u32) << SEQ_SPACE_BITS
    } else {
        0
    };
    let call = Arc::new(ClientCall {
        initial_seq,
        server: args.server,
        local,
        peer_call_id: std::sync::atomic::AtomicU16::new(0),
        input: input_tx,
        seq: Mutex::new(Sequencer::new(0, sequencer_config(0, initial_seq))),
        data: RwLock::new(None),
        negotiating: AtomicBool::new(true),
    });
    shared
        .by_call
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(call_id)
        .or_default()
        .push(call.clone());

    let key_lengths: Vec<KeyLength> = args
        .mppe_bits
        .iter()
        .filter_map(|b| KeyLength::from_bits(*b))
        .collect();
    let mppe = CcpPolicy::new(
        if args.mppe {
            MppePolicy::Require
        } else {
            MppePolicy::Deny
        },
        &key_lengths,
        if args.mppe_stateful {
            StatefulMode::Required
        } else {
            StatefulMode::Never
        },
    );
    let factory = PeerAuthFactory::new(
        PeerSettings::new(args.user.clone(), args.password.clone()),
        os_random(),
    );
    let mut seed = [0u8; 8];
    os_random()(&mut seed);
    let mut ppp: Option<Session> = None;
    let mut early: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut framing = Framing::default();
    let mut address = None;
    // Whether this session has counted towards `all_up` (see `count_up`).
    let mut counted = false;
    let mut permit = permit;
    let mut buf = vec![0u8; 4096];
    let mut reason = String::new();
    let mut eof = false;
    let mut stopping = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));

    loop {
        while let Some(bytes) = control.poll_transmit() {
            if stream.write_all(&bytes).await.is_err() {
                control.handle_eof(Instant::now());
            }
        }
        while let Some(event) = control.poll_event() {
            match event {
                ControlEvent::CallConnected(info) => {
                    call.peer_call_id
                        .store(info.peer_call_id, Ordering::Relaxed);
                    *call.seq.lock().unwrap_or_else(|e| e.into_inner()) = Sequencer::new(
                        info.peer_call_id,
                        sequencer_config(info.peer_receive_window, initial_seq),
                    );
                    let mut config = SessionConfig::client(&mppe);
                    config.lcp.auth_methods = args.auth.iter().map(|&m| m.into()).collect();
                    let mut s = Session::new(
                        config,
                        Box::new(factory.clone()),
                        magic_source(u64::from_ne_bytes(seed)),
                    );
                    s.open(Instant::now());
                    for (protocol, payload) in early.drain(..) {
                        s.handle_frame(Instant::now(), protocol, &payload);
                    }
                    ppp = Some(s);
                }
                ControlEvent::CallFailed { reason: r, .. } => {
                    reason = format!("call failed: {r:?}")
                }
                ControlEvent::CallEnded { reason: r, .. } => {
                    if let Some(s) = ppp.as_mut() {
                        s.lower_down(Instant::now());
                    }
                    if reason.is_empty() {
                        reason = format!("call ended: {r:?}");
                    }
                    if args.no_stop && stopping {
                        // pptp-linux: no Stop-Control-Connection, just close TCP.
                        eof = true;
                    } else {
                        control.close(Instant::now(), StopReason::None);
                    }
                }
                ControlEvent::Closed(r) if reason.is_empty() => {
                    reason = format!("control connection closed: {r}");
                }
                _ => {}
            }
        }
        if let Some(s) = ppp.as_mut() {
            while let Some((protocol, payload)) = s.poll_transmit() {
                shared.send_ppp(&call, framing, protocol, &payload).await;
            }
            while let Some(event) = s.poll_event() {
                match event {
                    SessionEvent::LinkUp(link) => {
                        framing = Framing {
                            acfc: link.send_acfc,
                            pfc: link.send_pfc,
                        };
                    }
                    SessionEvent::NetworkOpened(params) => {
                        let addr = params.local_address;
                        let (encryptor, decryptor) = match (&params.mppe, &params.mppe_material) {
                            (Some(p), Some(m)) => {
                                let c = MppeCipher::new(m, *p);
                                (Some(Mutex::new(c.encryptor)), Some(Mutex::new(c.decryptor)))
                            }
                            _ => (None, None),
                        };
                        let mppe_on = encryptor.is_some();
                        *call.data.write().unwrap_or_else(|e| e.into_inner()) =
                            Some(Arc::new(DataState {
                                address: addr,
                                framing,
                                encryptor,
                                decryptor,
                            }));
                        shared
                            .by_address
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(addr, call.clone());
                        if let Err(e) = shared.routes.add_address(addr, shared.tun_index).await {
                            tracing::warn!("adding {addr} to the TUN device: {e}");
                        }
                        address = Some(addr);
                        if !shared.routes_added.swap(true, Ordering::AcqRel) {
                            for r in &args.routes {
                                if let Err(e) = shared.routes.add_cidr(r, shared.tun_index).await {
                                    tracing::warn!("route {r}: {e}");
                                }
                            }
                        }
                        call.negotiating.store(false, Ordering::Release);
                        permit.take();
                        report(&Report::Up {
                            index,
                            address: addr,
                            server_address: params.peer_address,
                            call_id,
                            peer_call_id: call.peer_call_id.load(Ordering::Relaxed),
                            mppe: mppe_on,
                            mppe_bits: params.mppe.map(|p| p.key_length.bits()),
                            mppe_stateless: params.mppe.map(|p| p.stateless),
                            mppe_keys: match (&params.mppe, &params.mppe_material) {
                                (Some(p), Some(m)) if args.report_mppe_keys => {
                                    Some(ReportedKeys::new(&start_keys(m, p.key_length)))
                                }
                                _ => None,
                            },
                            dns: params.dns.clone(),
                            setup_ms: started.elapsed().as_millis(),
                        });
                        if count_up(&mut counted, &shared.up, args.sessions) {
                            report(&Report::AllUp {
                                sessions: args.sessions,
                                setup_ms: started.elapsed().as_millis(),
                            });
                        }
                    }
                    SessionEvent::NetworkDown => {
                        *call.data.write().unwrap_or_else(|e| e.into_inner()) = None;
                    }
                    SessionEvent::CcpResetRequest => {
                        if let Some(d) = call.data()
                            && let Some(e) = &d.encryptor
                        {
                            e.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .handle_reset_request();
                        }
                    }
                    SessionEvent::Closed { reason: r, detail } => {
                        if reason.is_empty() {
                            reason = format!("{r}: {detail}");
                        }
                        // The PPP session is over: hang up the call.
                        let _ = control.clear_call(Instant::now(), call_id);
                    }
                    SessionEvent::Verify(_)
                    | SessionEvent::Authenticated(_)
                    | SessionEvent::AddressRequest { .. } => {}
                }
            }
        }
        if control.is_closed() || (eof && stopping) {
            break;
        }
        let timeout = control
            .poll_timeout()
            .into_iter()
            .chain(ppp.as_ref().and_then(Session::poll_timeout))
            .min()
            .map(tokio::time::Instant::from_std);
        tokio::select! {
            r = stream.read(&mut buf), if !eof => {
                let now = Instant::now();
                match r {
                    Ok(0) | Err(_) => { eof = true; control.handle_eof(now); }
                    Ok(n) => control.handle_bytes(now, &buf[..n]),
                }
            }
            Some(input) = input_rx.recv() => {
                match (ppp.as_mut(), input) {
                    (Some(s), Input::Frame(protocol, payload)) => s.handle_frame(Instant::now(), protocol, &payload),
                    (Some(s), Input::MppeResetNeeded) => s.send_ccp_reset_request(Instant::now()),
                    // The server's first LCP frame can overtake its
                    // Outgoing-Call-Reply: keep it for the session.
                    (None, Input::Frame(protocol, payload)) if early.len() < 16 => early.push((protocol, payload)),
                    (None, _) => {}
                }
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                let now = Instant::now();
                match ppp.as_mut() {
                    // LCP Terminate first; Closed then hangs up the call.
                    Some(s) => s.close(now, crate::proto::end::EndReason::Shutdown),
                    None => control.close(now, StopReason::None),
                }
            }
            _ = async { match timeout { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                let now = Instant::now();
                control.handle_timeout(now);
                if let Some(s) = ppp.as_mut() {
                    s.handle_timeout(now);
                }
            }
            _ = tick.tick() => {
                // Owed acknowledgments leave on their own.
                let ack = call.seq.lock().unwrap_or_else(|e| e.into_inner()).poll_transmit(Instant::now());
                if let Some(header) = ack {
                    let mut b = [0u8; 16];
                    if let Ok(n) = header.emit_header(&mut b) {
                        shared.send(&call, &b[..n]).await;
                    }
                }
            }
        }
    }
    drop(permit);
    if let Some(addr) = address {
        shared
            .by_address
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
        let _ = shared.routes.remove_address(addr, shared.tun_index).await;
    }
    if let Some(group) = shared
        .by_call
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(&call_id)
    {
        group.retain(|c| !Arc::ptr_eq(c, &call));
    }
    let _ = stream.shutdown().await;
    report(&Report::Down { index, reason });
}

/// Sequence numbers each session may use before its space meets the next
/// session's (2^20 frames): `index << SEQ_SPACE_BITS` is where it starts.
const SEQ_SPACE_BITS: u32 = 20;

/// Session `index`'s call ID counting up from `base`: every value but 0
/// (reserved), so 65,535 sessions get distinct IDs whatever the base. (It
/// was `base + index` with 0 raised to 1, which gave two sessions call ID
/// 1 whenever the count passed 65,535 to 0: in about one 10,000-session run
/// in six, and then the two sessions' GRE frames reached the wrong session
/// and one of them never came up.)
fn call_id_of(base: u16, index: usize) -> u16 {
    let id = (usize::from(base) + index) % usize::from(u16::MAX);
    u16::try_from(id).unwrap_or(0) + 1
}

/// Counts a session's network coming up towards `all_up` once: an IPCP that
/// opens again (RFC 1661 section 4.1: a Configure-Request in Opened, which
/// a server sends when our Configure-Ack was lost, restarts the
/// negotiation) is the same session. Counting it twice reported every
/// session up while the last one was still negotiating (a 10,000-session
/// bench saw 9,999 listed). True when this one completes `sessions`.
fn count_up(counted: &mut bool, up: &AtomicU64, sessions: usize) -> bool {
    if std::mem::replace(counted, true) {
        return false;
    }
    up.fetch_add(1, Ordering::AcqRel) + 1 == sessions as u64
}

fn sequencer_config(peer_window: u16, initial_seq: u32) -> call::Config {
    let mut c = call::Config::new(peer_window, 64);
    c.initial_seq = initial_seq;
    // Like the kernel: the peer's window is advice, not a limit.
    c.window_policy = WindowPolicy::Ignore;
    c
}

/// Which call a frame from the server belongs to.
fn route_frame(
    shared: &Shared,
    header: &gre::Repr,
    buf: &[u8],
    start: usize,
    end: usize,
) -> Option<Arc<ClientCall>> {
    let by_call = shared.by_call.read().unwrap_or_else(|e| e.into_inner());
    let group = by_call.get(&header.call_id)?;
    if group.len() == 1 {
        return group.first().cloned();
    }
    // The acknowledgment names one of our sequence spaces.
    if let Some(ack) = header.ack
        && let Some(call) = group
            .iter()
            .find(|c| ack.wrapping_sub(c.initial_seq) < (1 << SEQ_SPACE_BITS))
    {
        return Some(call.clone());
    }
    // Sessions sharing a call ID: a clear IPv4 frame goes to the owner of
    // its destination address, anything else to the one negotiating.
    if let Ok(packet) = ppp::Packet::new_checked(&buf[start..end])
        && packet.protocol_number() == 0x0021
        && let Ok(inner) = ipv4::Packet::new_checked(packet.payload())
    {
        let dst = inner.dst_addr();
        if let Some(call) = group
            .iter()
            .find(|c| c.data().is_some_and(|d| d.address == dst))
        {
            return Some(call.clone());
        }
    }
    group
        .iter()
        .find(|c| c.negotiating.load(Ordering::Acquire))
        .or_else(|| group.first())
        .cloned()
}

async fn gre_receive(shared: Arc<Shared>, mut tun: TunWriter) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((src, _, range)) = shared.gre.recv_range(&mut buf).await else {
            continue;
        };
        if src != shared.args.server {
            continue;
        }
        let Ok(header) = frame::parse_gre(&buf[range.clone()]) else {
            continue;
        };
        let start = range.start + header.header_len();
        let end = start + usize::from(header.payload_len);
        let Some(call) = route_frame(&shared, &header, &buf, start, end) else {
            continue;
        };
        // Classified now, recorded only once the frame opened (module
        // documentation of `proto::call`).
        let verdict = call
            .seq
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .classify(&header);
        let data = call.data();
        let opened = {
            let mut dec = data
                .as_ref()
                .and_then(|d| d.decryptor.as_ref())
                .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
            if let Some(d) = dec.as_deref_mut() {
                d.advance_clock(Instant::now());
            }
            frame::open(&mut buf, start, end, dec.as_deref_mut())
        };
        if opened.is_ok() {
            call.seq
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .accept(&header, Instant::now());
        }
        match opened {
            Ok(Received::Control {
                protocol,
                start,
                end,
            }) => {
                let _ = call
                    .input
                    .try_send(Input::Frame(protocol, buf[start..end].to_vec()));
            }
            Ok(Received::Ipv4 { start, end, .. }) => {
                if verdict.deliver() && data.is_some() {
                    let _ = tun.send(&buf[start..end]).await;
                }
            }
            Ok(Received::AckOnly) => {}
            Err(frame::DropReason::Mppe(e)) if e.needs_reset_request() => {
                let _ = call.input.try_send(Input::MppeResetNeeded);
            }
            Err(e) => tracing::debug!("dropped frame: {e}"),
        }
    }
}

async fn tun_receive(shared: Arc<Shared>, mut tun: TunReader) {
    let mut buf = vec![0u8; BUFFER_LEN];
    loop {
        let Ok(n) = tun.recv(&mut buf[HEADROOM..]).await else {
            continue;
        };
        let end = HEADROOM + n;
        let Ok(packet) = ipv4::Packet::new_checked(&buf[HEADROOM..end]) else {
            continue;
        };
        let src = packet.src_addr();
        let Some(call) = shared
            .by_address
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&src)
            .cloned()
        else {
            continue;
        };
        let Some(data) = call.data() else { continue };
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
        let header = {
            let mut seq = call.seq.lock().unwrap_or_else(|e| e.into_inner());
            match seq.send_data(0, Instant::now()) {
                Ok(h) => h,
                Err(_) => continue,
            }
        };
        if let Ok(begin) = frame::prepend(&mut buf, start, end, header, data.framing.ppp(protocol))
        {
            shared.send(&call, &buf[begin..end]).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Call IDs from any base: never 0, distinct over 65,535 sessions,
    /// across the wrap too.
    #[test]
    fn call_ids_never_repeat_across_the_wrap() {
        for base in [0u16, 1, 55_536, 65_534, u16::MAX] {
            let ids: std::collections::HashSet<u16> = (0..usize::from(u16::MAX))
                .map(|i| call_id_of(base, i))
                .collect();
            assert_eq!(ids.len(), usize::from(u16::MAX), "base {base}");
            assert!(!ids.contains(&0), "base {base}");
        }
        assert_eq!(call_id_of(65_534, 0), 65_535);
        assert_eq!(call_id_of(65_534, 1), 1);
    }

    /// A session whose network opens twice counts once: `all_up` waits for
    /// every session.
    #[test]
    fn a_session_that_opens_again_counts_once_towards_all_up() {
        let up = AtomicU64::new(0);
        let (mut a, mut b) = (false, false);
        assert!(!count_up(&mut a, &up, 2));
        // Session a's IPCP opens again: not the second session.
        assert!(!count_up(&mut a, &up, 2));
        assert_eq!(up.load(Ordering::Acquire), 1);
        assert!(count_up(&mut b, &up, 2));
        assert!(!count_up(&mut b, &up, 2));
        assert_eq!(up.load(Ordering::Acquire), 2);
    }
}
