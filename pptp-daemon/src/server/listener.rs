//! Start-up (credentials, XDP, TUN, GRE socket), the accept loop, signals,
//! and shutdown with the protocol's goodbyes.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot, watch},
    task::JoinSet,
};
use tracing::Instrument as _;

use super::{
    Shared, Stats,
    accounting::{self, AcctHandle},
    control::{self, ConnectionGuard},
    ctl::{self, Mode},
    datapath::{gre_receive, tun_receive},
    ops::{self, Ops},
    registry::{Live, RouteOp, Settings, core_timer, route_worker},
};
use crate::{
    auth::random::os_random,
    cli::{ConfigOrigin, LogLevel},
    config::{Config, ipv4_peer},
    dataplane::{
        Forwarding, TunnelQueues,
        gre_socket::GreSocket,
        tun::{Routes, Tun},
        veth::VethPair,
        xdp::{SeqMap, XdpDataplane, XdpMode, run_logger},
    },
    logsafe::{WarnLimiter, WarnLimits},
    proto::{
        concentrator::Concentrator,
        pool::{AddressPool, named_pools},
    },
};

/// Runs the daemon until SIGINT, SIGTERM or `ctl shutdown` (soft: until
/// the last control connection has ended).
pub async fn run(config: Config, origin: ConfigOrigin, log_level: LogLevel) -> anyhow::Result<()> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;

    // Credentials: the secrets file, or RADIUS.
    let (verifier, secrets) =
        super::reload::start_credentials(&config).context("reading the secrets file")?;

    // Data plane. The programs first: under `stack` forwarding with
    // `tunnel_queues = "per_cpu"` the tunnel pair gets a queue per CPU
    // only once one CPU sends each session's frames. The veth pair lives
    // as long as this function (deleted on every way out).
    let routes = Routes::new().context("opening netlink")?;
    let forwarding = config.forwarding();
    let loaded = match (&config.dataplane.interface, config.xdp_mode()) {
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
        (Some(iface), mode) => match load_xdp(&config, forwarding, log_level) {
            Ok((dp, steered)) => Some((iface, mode, dp, steered)),
            Err(e) => {
                xdp_unavailable(&e);
                None
            }
        },
    };
    let (tun, veth) = match forwarding {
        Forwarding::Xdp => (
            Tun::create(
                &config.dataplane.tun_name,
                Some(config.ppp.local_address),
                config.ppp.mru,
            )
            .context("creating the TUN device")?,
            None,
        ),
        Forwarding::Stack => {
            let cpus = match &loaded {
                Some((.., cpus)) => cpus.as_slice(),
                None => &[],
            };
            let pair = VethPair::create(
                routes.handle(),
                &config.dataplane.tun_name,
                Some(config.ppp.local_address),
                config.ppp.mru,
                cpus,
            )
            .await
            .context("creating the tunnel veth pair")?;
            let tun = Tun::veth(&pair).context("opening the tunnel veth pair")?;
            (tun, Some(pair))
        }
    };
    let mut logger_task = None;
    let xdp = match loaded {
        None => None,
        Some((iface, mode, dp, _)) => match attach_xdp(dp, &config, iface, mode, veth.as_ref()) {
            Ok(mut dp) => {
                if let Some(logger) = dp.take_logger() {
                    logger_task = Some(tokio::spawn(run_logger(logger)));
                }
                set_vlans(&mut dp, &routes).await;
                Some(dp)
            }
            Err(e) => {
                xdp_unavailable(&e);
                None
            }
        },
    };
    let seq = match &xdp {
        Some(dp) => dp.seq().clone(),
        None => Arc::new(SeqMap::heap()),
    };
    // Bound to the control listener's address when it has one: GRE to the
    // host's other addresses is none of the daemon's business.
    let gre_local = match config.server.listen.ip() {
        std::net::IpAddr::V4(a) if !a.is_unspecified() => Some(a),
        _ => None,
    };
    let gre =
        GreSocket::open_on(gre_local).context("opening the raw GRE socket (needs CAP_NET_RAW)")?;
    let random = os_random();
    let mut seed = [0u8; 8];
    random(&mut seed);
    let pool = AddressPool::new(&config.ppp.pool, &[config.ppp.local_address]);
    let core = Concentrator::new(config.limits(), pool, u64::from_ne_bytes(seed))
        .with_named_pools(named_pools(&config.ppp.pools, &[config.ppp.local_address]));
    let (route_tx, route_rx) = mpsc::unbounded_channel();
    let route_task = tokio::spawn(route_worker(
        routes,
        tun.index(),
        tun.name().to_owned(),
        route_rx,
    ));
    let acct_policy = config.accounting_policy();
    let (acct_handle, acct_rx) = match acct_policy {
        Some(_) => {
            let (handle, rx) = AcctHandle::new();
            let stats = handle.stats.clone();
            (Some(handle), Some((stats, rx)))
        }
        None => (None, None),
    };
    let shared = Arc::new(Shared {
        live: RwLock::new(Arc::new(Live {
            settings: Settings::from_config(&config),
            verifier,
            secrets,
            config: config.clone(),
        })),
        origin,
        reload_lock: Mutex::new(()),
        core: Arc::new(Mutex::new(core)),
        gre,
        seq,
        xdp: xdp.map(Mutex::new),
        routes: route_tx,
        tun_index: tun.index(),
        tun_name: tun.name().to_owned(),
        random,
        calls: RwLock::new(HashMap::new()),
        clients: RwLock::new(HashMap::new()),
        stats: Stats::default(),
        warnings: Mutex::new(WarnLimiter::new(WarnLimits::default())),
        boot_secs: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        accounting: acct_handle,
        scripts: super::scripts::Scripts::new(
            &config.scripts,
            tun.name(),
            super::scripts::Daemon::current(),
        ),
    });
    let acct_task = match (acct_policy, acct_rx) {
        (Some(policy), Some((stats, rx))) => Some(tokio::spawn(accounting::run(
            shared.clone(),
            policy,
            stats,
            rx,
        ))),
        _ => None,
    };
    let (tun_rx, tun_tx) = tun.split();

    let mut background = JoinSet::new();
    background.spawn(gre_receive(shared.clone(), tun_tx));
    background.spawn(tun_receive(shared.clone(), tun_rx));
    background.spawn(core_timer(shared.clone()));
    if let Some(dae) = config.radius.dae.clone() {
        let socket = super::dae::bind(&dae)
            .await
            .with_context(|| format!("listening on {} (radius.dae.listen)", dae.listen))?;
        background.spawn(super::dae::run(shared.clone(), socket, dae));
    }
    if let Some(metrics) = super::metrics::bind(&config.metrics)
        .await
        .context("listening for metrics (metrics.listen)")?
    {
        background.spawn(super::metrics::run(
            metrics,
            shared.clone(),
            config.metrics.clone(),
        ));
    }
    let (ctl_shutdown, mut shutdown_requests) = mpsc::unbounded_channel();
    let draining = Arc::new(AtomicBool::new(false));
    {
        let shared = shared.clone();
        let path = config.server.control_socket.clone();
        let ops = Ops {
            shutdown: ctl_shutdown,
            draining: draining.clone(),
        };
        background.spawn(async move {
            let answer = move |req| ops::answer(&shared, &ops, req);
            if let Err(e) = ctl::serve(&path, answer).await {
                tracing::error!("{e}");
            }
        });
    }

    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    // Closed by a soft shutdown: no new control connection is accepted.
    let mut listener = Some(listener);
    tracing::info!(listen = %config.server.listen, tun = %shared.tun_name, "pptp-xdp running");
    if super::notify::enabled() {
        // READY=1 once the control socket takes connections too.
        wait_for_control_socket(&config.server.control_socket).await;
        super::notify::ready("running");
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    loop {
        // A soft shutdown ends when the last session has (control
        // connections left without a call get their Stop below).
        if listener.is_none()
            && (connections.is_empty() || shared.core().counters().live_sessions == 0)
        {
            tracing::info!("soft shutdown: every session has ended");
            break;
        }
        tokio::select! {
            accepted = async {
                match &listener {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            } => match accepted {
                Ok((stream, peer)) => {
                    // A `[::]` listener sees IPv4 clients as v4-mapped.
                    let (Some(source), Some(local)) = (
                        ipv4_peer(peer),
                        stream.local_addr().ok().and_then(ipv4_peer),
                    ) else {
                        tracing::debug!(%peer, "IPv6 control connection refused: PPTP GRE is IPv4 here");
                        continue;
                    };
                    let admitted = shared.core().handle_connect(Instant::now(), source);
                    match admitted {
                        Ok(id) => {
                            let _ = stream.set_nodelay(true);
                            let guard = ConnectionGuard::new(shared.clone(), id);
                            let span = tracing::info_span!("conn", peer = %source);
                            connections.spawn(control::run(shared.clone(), stream, source, local, guard, shutdown_rx.clone()).instrument(span));
                        }
                        // Refused before a byte is read: the socket closes.
                        Err(refusal) => shared.warn_peer(source, format_args!("control connection refused: {refusal}")),
                    }
                }
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            // While draining, look at the sessions again now and then (a
            // session can end while its connection stays).
            _ = tokio::time::sleep(Duration::from_millis(500)), if listener.is_none() => {}
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: reloading");
                super::notify::reloading();
                // Logs its outcome.
                let _ = super::reload(&shared);
                super::notify::ready("running");
            }
            Some(mode) = shutdown_requests.recv() => match mode {
                Mode::Hard => { tracing::info!("shutdown hard (control socket): shutting down"); break; }
                Mode::Soft => {
                    if listener.take().is_some() {
                        draining.store(true, Ordering::Relaxed);
                        tracing::info!(
                            connections = connections.len(),
                            "shutdown soft (control socket): no new connections; waiting for the sessions to end"
                        );
                    }
                }
            },
            _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
        }
    }

    super::notify::stopping();
    // Goodbyes: every connection ends its calls (LCP Terminate,
    // Call-Disconnect-Notify) and sends Stop-Control-Connection-Request.
    drop(listener);
    drop(shutdown_requests);
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
    // Every session has ended and queued its ip-down: let them run.
    if let Some(scripts) = &shared.scripts {
        let within =
            Duration::from_secs(shared.live().config.scripts.timeout_secs.saturating_add(2));
        let left = scripts.drain(within).await;
        if left > 0 {
            tracing::warn!("{left} script run(s) did not finish before shutdown");
        }
    }
    background.abort_all();
    // Every Stop is queued: Accounting-Off after them.
    if let Some(acct) = &shared.accounting {
        acct.off(Duration::from_secs(3)).await;
    }
    if let Some(task) = acct_task {
        task.abort();
    }
    // Every session is gone; the route changes they queued run to the end.
    let (done, flushed) = oneshot::channel();
    if shared.routes.send(RouteOp::Barrier { done }).is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), flushed).await;
    }
    route_task.abort();
    if let Some(task) = logger_task {
        task.abort();
    }
    let _ = std::fs::remove_file(&config.server.control_socket);
    if let Some(xdp) = &shared.xdp {
        xdp.lock()
            .unwrap_or_else(|e| e.into_inner())
            .detach_all()
            .context("detaching XDP")?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Waits (at most 5 s) until the control socket, served by a task of its
/// own, takes connections.
async fn wait_for_control_socket(path: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::net::UnixStream::connect(path).await.is_err() {
        if tokio::time::Instant::now() > deadline {
            tracing::warn!(path = %path.display(), "the control socket is not up; reporting ready anyway");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Frames each CPU map queue holds (`dataplane.steer_sends`): a burst of
/// a NAPI poll's 64 frames from each of dozens of CPUs at once.
const STEER_QUEUE: u32 = 2048;

/// A failed load or attach keeps the daemon up, every session on the
/// userspace path, as with --no-xdp.
fn xdp_unavailable(e: &anyhow::Error) {
    tracing::error!("XDP unavailable, every session uses the userspace data path: {e:#}");
}

/// Loads the XDP programs and, with `dataplane.steer_sends`, steers each
/// session's sends to one CPU: without it, a session's frames arriving on
/// several CPUs (several NIC queues under `xdp` forwarding, the tunnel
/// pair's queues under `stack` with `tunnel_queues = "per_cpu"`) can leave
/// out of order. Returns the CPUs sends are steered among (none when they
/// are not): under `stack`, the tunnel pair gets a queue for each.
fn load_xdp(
    config: &Config,
    forwarding: Forwarding,
    log_level: LogLevel,
) -> anyhow::Result<(XdpDataplane, Vec<u32>)> {
    let mut dp =
        XdpDataplane::load(log_level.as_log_filter()).context("loading the XDP program")?;
    // RC4 states of MPPE receive chains prepared ahead of the program
    // (dataplane::mppe_prep); a thread that sleeps while no chain moves.
    if config.mppe.prepare_ahead {
        dp.start_mppe_preparer(i32::from(config.mppe.prepare_nice))
            .context("starting the MPPE preparer")?;
    }
    // Under `stack` with one tunnel queue, the tunnel program runs on one
    // CPU at a time already: steering would only queue frames to the CPU
    // it ran on first.
    let steer = match forwarding {
        Forwarding::Xdp => true,
        Forwarding::Stack => config.tunnel_queues() == TunnelQueues::PerCpu,
    };
    let mut steered = Vec::new();
    if config.dataplane.steer_sends && steer {
        match dp.steer_sends(forwarding, STEER_QUEUE) {
            Ok(cpus) => {
                tracing::info!(cpus = cpus.len(), "sends steered to one CPU per session");
                steered = cpus;
            }
            Err(e) => tracing::warn!(
                "steering sends to one CPU per session: {e}; {}",
                match forwarding {
                    Forwarding::Xdp =>
                        "a session's frames that arrive on several CPUs may leave out of order",
                    Forwarding::Stack =>
                        "the tunnel pair gets one queue (as tunnel_queues = \"one\")",
                }
            ),
        }
    }
    Ok((dp, steered))
}

/// Attaches the loaded programs: under `forwarding = "xdp"` to the WAN and
/// LAN interfaces; under `stack` (with `veth`, the tunnel device) to the
/// WAN interface (decapsulation into the tunnel device) and the tunnel
/// pair's inject end (encapsulation of what the stack routes out of the
/// tunnel device). LAN interfaces need nothing then.
fn attach_xdp(
    mut dp: XdpDataplane,
    config: &Config,
    iface: &str,
    mode: XdpMode,
    veth: Option<&VethPair>,
) -> anyhow::Result<XdpDataplane> {
    use pptp_common::maps::{TunnelConf, programs};
    let Some(pair) = veth else {
        dp.attach(iface, mode)
            .with_context(|| format!("attaching XDP to {iface}"))?;
        for lan in &config.dataplane.lan_interfaces {
            dp.attach(lan, mode)
                .with_context(|| format!("attaching XDP to {lan}"))?;
        }
        return Ok(dp);
    };
    if !config.dataplane.lan_interfaces.is_empty() {
        tracing::info!(
            "forwarding = \"stack\": dataplane.lan_interfaces need no XDP (the stack routes towards clients), not attached"
        );
    }
    let wan_index = interface_index(iface)?;
    dp.set_tunnel(TunnelConf {
        inject_ifindex: pair.inject_index,
        wan_ifindex: wan_index,
        tunnel_mac: pair.mac,
        inject_mac: pair.inject_mac,
    })
    .context("configuring the tunnel device in the XDP maps")?;
    for (program, dev) in [
        (programs::TUNNEL, pair.inject_name.as_str()),
        (programs::STACK, iface),
    ] {
        dp.attach_program(program, dev, mode)
            .with_context(|| format!("attaching XDP program {program} to {dev}"))?;
    }
    Ok(dp)
}

/// Tells the programs about the namespace's VLAN devices (a FIB lookup may
/// name one as the way to a peer: the programs tag the frame and send it
/// out of the lower device). VLAN devices created later are not known
/// until the next start; a failure leaves frames routed through a VLAN
/// device to be dropped by the redirect, as it is logged here.
async fn set_vlans(dp: &mut XdpDataplane, routes: &Routes) {
    let links = match crate::dataplane::vlan::links(routes.handle()).await {
        Ok(links) => links,
        Err(e) => {
            tracing::error!(
                "listing VLAN devices for XDP: {e}; frames routed through one are dropped"
            );
            return;
        }
    };
    match dp.set_vlans(&links) {
        Ok(0) if links.is_empty() => {}
        Ok(0) => tracing::info!(vlans = links.len(), "XDP sends through VLAN devices tagged"),
        Ok(left) => tracing::warn!(
            vlans = links.len(),
            left_out = left,
            "more VLAN devices than XDP can hold: frames routed through those left out are dropped"
        ),
        Err(e) => tracing::error!("configuring VLAN devices for XDP: {e}"),
    }
}

/// The index of interface `name` in the daemon's namespace.
fn interface_index(name: &str) -> anyhow::Result<u32> {
    let c = std::ffi::CString::new(name).context("interface name")?;
    // SAFETY: a valid NUL-terminated string for the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("interface {name}"));
    }
    Ok(index)
}
