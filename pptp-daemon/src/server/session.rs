//! One task per call: runs the PPP session (`proto::session`) of the call,
//! frames what it sends, answers its requests (credentials, address), and
//! installs and removes the call's data path as its network goes up and
//! down. Teardown releases the address, the route and the XDP entries.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use pptp_common::maps::{
    SESSION_F_ACFC, SESSION_F_DECAP, SESSION_F_ENCAP, SESSION_F_MSS_CLAMP, SESSION_F_PFC,
    Session as KernelSession,
};
use tokio::sync::{Notify, mpsc};

use super::{Call, CallInput, DataState, Shared, send_control};
use crate::{
    auth::server::{ServerAuthFactory, ServerSettings},
    dataplane::{frame::Framing, mss},
    mppe::{KeyLength, cipher::MppeCipher},
    proto::{
        call::{self, WindowPolicy},
        control::ControlSettings,
        lcp::magic_source,
        session::{NetworkParams, Session, SessionEvent},
    },
};

/// Messages from a session task to its control connection.
#[derive(Debug)]
pub enum ToControl {
    /// The session ended on its own (LCP Terminate, keepalive, failed
    /// authentication): clear the call (Call-Disconnect-Notify).
    Ended { call_id: u16, reason: String },
}

/// How often a call on the XDP path looks for sequence numbers the kernel
/// accepted and nothing acknowledged (the kernel cannot wake the task);
/// calls on the userspace path arm their acknowledgment timer only when
/// an acknowledgment is owed.
const KERNEL_ACK_POLL: Duration = Duration::from_millis(500);

/// Sleeps until `deadline`, or for ever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Runs a call's PPP session to its end.
pub async fn run(
    shared: Arc<Shared>,
    call: Arc<Call>,
    mut input: mpsc::Receiver<CallInput>,
    control: mpsc::Sender<ToControl>,
) {
    let slot = u32::from(call.call_id);
    // The call's GRE sequencer. Like the XDP program, which cannot hold
    // frames back, it sends regardless of the peer's window.
    let own_window =
        ControlSettings::from_config(&shared.config.server, &shared.config.control).receive_window;
    let seq_config = call::Config {
        window_policy: WindowPolicy::Ignore,
        ..call::Config::new(0, own_window)
    };
    let ack_wake = shared
        .seq
        .open(slot, call.peer_call_id, seq_config)
        .unwrap_or_else(|_| Arc::new(Notify::new()));
    let factory = ServerAuthFactory::new(
        ServerSettings::from_config(&shared.config),
        shared.random.clone(),
    );
    let mut seed = [0u8; 8];
    (shared.random)(&mut seed);
    let mut session = Session::server(
        &shared.config,
        Box::new(factory),
        magic_source(u64::from_ne_bytes(seed)),
    );
    let mut task = Task {
        shared: shared.clone(),
        call: call.clone(),
        framing: Framing::default(),
        address: None,
        reason: None,
    };
    session.open(Instant::now());
    let mut next_kernel_poll = tokio::time::Instant::now() + KERNEL_ACK_POLL;
    loop {
        task.drain(&mut session).await;
        if task.reason.is_some() {
            break;
        }
        let on_xdp = call.data().is_some_and(|d| d.xdp);
        let ack_due = shared
            .seq
            .with_sequencer(slot, |s| s.poll_timeout())
            .flatten();
        let deadline = session
            .poll_timeout()
            .into_iter()
            .chain(ack_due)
            .min()
            .map(tokio::time::Instant::from_std)
            .into_iter()
            .chain(on_xdp.then_some(next_kernel_poll))
            .min();
        tokio::select! {
            msg = input.recv() => {
                let now = Instant::now();
                match msg {
                    Some(CallInput::Frame(protocol, payload)) => session.handle_frame(now, protocol, &payload),
                    Some(CallInput::Verdict(v)) => session.handle_verdict(now, v),
                    Some(CallInput::Close(reason)) => session.close(now, reason),
                    Some(CallInput::LowerDown(reason)) => {
                        session.lower_down(now);
                        task.reason.get_or_insert(reason);
                    }
                    Some(CallInput::MppeResetNeeded) => session.send_ccp_reset_request(now),
                    None => {
                        session.lower_down(now);
                        task.reason.get_or_insert_with(|| "control connection gone".into());
                    }
                }
            }
            // The data path armed (or brought forward) the sequencer's
            // acknowledgment timer: compute the deadline again.
            () = ack_wake.notified() => {}
            () = sleep_until(deadline) => {
                let now = Instant::now();
                if session.poll_timeout().is_some_and(|t| t <= now) {
                    session.handle_timeout(now);
                }
                if on_xdp && tokio::time::Instant::now() >= next_kernel_poll {
                    shared.seq.with_sequencer(slot, |s| s.sync(now));
                    next_kernel_poll = tokio::time::Instant::now() + KERNEL_ACK_POLL;
                }
                task.send_owed_ack().await;
            }
        }
    }
    // Whatever the session still had to say (Terminate-Ack and the like).
    task.drain(&mut session).await;
    let reason = task.reason.clone().unwrap_or_default();
    task.teardown().await;
    tracing::info!(peer = %call.peer, call_id = call.call_id, user = ?call.user.lock().unwrap_or_else(|e| e.into_inner()), "session ended: {reason}");
    let _ = control
        .send(ToControl::Ended {
            call_id: call.call_id,
            reason,
        })
        .await;
}

struct Task {
    shared: Arc<Shared>,
    call: Arc<Call>,
    framing: Framing,
    address: Option<Ipv4Addr>,
    /// Set when the session is over.
    reason: Option<String>,
}

impl Task {
    /// Sends what the session queued and acts on its events.
    async fn drain(&mut self, session: &mut Session) {
        loop {
            let mut progressed = false;
            while let Some((protocol, payload)) = session.poll_transmit() {
                send_control(&self.shared, &self.call, self.framing, protocol, &payload).await;
                progressed = true;
            }
            while let Some(event) = session.poll_event() {
                self.event(session, event).await;
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }

    async fn event(&mut self, session: &mut Session, event: SessionEvent) {
        let now = Instant::now();
        match event {
            SessionEvent::LinkUp(link) => {
                self.framing = Framing {
                    acfc: link.send_acfc,
                    pfc: link.send_pfc,
                };
            }
            SessionEvent::Verify(credentials) => {
                let verifier = self.shared.verifier.clone();
                let peer = IpAddr::V4(self.call.peer);
                let input = self.call.input.clone();
                // The back end may block (file read, later RADIUS).
                tokio::spawn(async move {
                    let verdict =
                        tokio::task::spawn_blocking(move || verifier.verify(peer, &credentials))
                            .await
                            .unwrap_or(crate::auth::Verdict::Reject(
                                crate::auth::Rejection::BackendUnavailable,
                            ));
                    let _ = input.send(CallInput::Verdict(verdict)).await;
                });
            }
            SessionEvent::Authenticated(accepted) => {
                tracing::info!(peer = %self.call.peer, call_id = self.call.call_id, user = %accepted.user, "authenticated");
                *self.call.user.lock().unwrap_or_else(|e| e.into_inner()) = Some(accepted.user);
            }
            SessionEvent::AddressRequest {
                user,
                static_address,
            } => {
                let assigned = self
                    .shared
                    .pool
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .allocate(static_address);
                match assigned {
                    Ok(addr) => {
                        self.address = Some(addr);
                        session.handle_address(now, Some(addr));
                    }
                    Err(e) => {
                        tracing::warn!(%user, "no address: {e}");
                        session.handle_address(now, None);
                    }
                }
            }
            SessionEvent::NetworkOpened(params) => self.network_up(&params).await,
            SessionEvent::NetworkDown => self.network_down().await,
            SessionEvent::CcpResetRequest => {
                if let Some(data) = self.call.data()
                    && let Some(enc) = &data.encryptor
                {
                    enc.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .handle_reset_request();
                }
            }
            SessionEvent::Closed { reason } => {
                self.reason.get_or_insert(reason);
            }
        }
    }

    /// IPCP (and CCP) are open: route the client's address here and put the
    /// call on the XDP path when it can go there.
    async fn network_up(&mut self, params: &NetworkParams) {
        let client = params.peer_address;
        let shared = &self.shared;
        let config = &shared.config;
        let (encryptor, decryptor, mppe) = match (&params.mppe, &params.mppe_material) {
            (Some(p), Some(material)) => {
                let cipher = MppeCipher::new(material, *p);
                let bits = match p.key_length {
                    KeyLength::Bits40 => 40,
                    KeyLength::Bits56 => 56,
                    KeyLength::Bits128 => 128,
                };
                let mode = if p.stateless { "stateless" } else { "stateful" };
                (
                    Some(Mutex::new(cipher.encryptor)),
                    Some(Mutex::new(cipher.decryptor)),
                    Some(format!("{bits}-bit {mode}")),
                )
            }
            _ => (None, None, None),
        };
        // The MPPE header and the inner protocol field take 4 bytes of the MRU.
        let overhead = if mppe.is_some() { 4 } else { 0 };
        let mtu = params
            .link
            .peer_mru
            .saturating_sub(overhead)
            .min(config.ppp.mru);
        let mss = config
            .dataplane
            .mss_clamp
            .then(|| mss::mss_for_mtu(mtu.min(params.link.mru)));
        // MPPE sessions stay in userspace: XDP does not do RC4.
        let mut xdp = false;
        if mppe.is_none()
            && let Some(dp) = &shared.xdp
        {
            let mut flags = SESSION_F_DECAP | SESSION_F_ENCAP;
            if self.framing.acfc {
                flags |= SESSION_F_ACFC;
            }
            if self.framing.pfc {
                flags |= SESSION_F_PFC;
            }
            if mss.is_some() {
                flags |= SESSION_F_MSS_CLAMP;
            }
            let kernel = self.kernel_session(client, mtu, flags);
            let state = shared.seq.load(kernel.slot).unwrap_or_default();
            match dp
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .install(&kernel, state)
            {
                Ok(()) => xdp = true,
                Err(e) => tracing::warn!(
                    call_id = self.call.call_id,
                    "session stays on the userspace path: {e}"
                ),
            }
        }
        let data = Arc::new(DataState {
            client,
            framing: self.framing,
            mtu,
            mss,
            encryptor,
            decryptor,
            mppe: mppe.clone(),
            xdp,
        });
        *self.call.data.write().unwrap_or_else(|e| e.into_inner()) = Some(data);
        if let Err(e) = shared
            .routes
            .add(client, shared.tun_index, &shared.tun_name, mtu)
            .await
        {
            tracing::warn!("{e}");
        }
        shared
            .clients
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(client, self.call.clone());
        let path = if xdp { "xdp" } else { "userspace" };
        tracing::info!(
            peer = %self.call.peer,
            call_id = self.call.call_id,
            user = ?params.user,
            %client,
            mtu,
            mppe = mppe.as_deref().unwrap_or("none"),
            path,
            "network up"
        );
    }

    fn kernel_session(&self, client: Ipv4Addr, mtu: u16, flags: u32) -> KernelSession {
        KernelSession {
            peer_addr: self.call.peer.octets(),
            local_addr: self.call.local.octets(),
            client_addr: client.octets(),
            slot: u32::from(self.call.call_id),
            flags,
            call_id: self.call.call_id,
            peer_call_id: self.call.peer_call_id,
            mtu,
            _pad: 0,
        }
    }

    /// Takes the call off the data path (network down or session over).
    async fn network_down(&mut self) {
        let Some(data) = self
            .call
            .data
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let shared = &self.shared;
        if data.xdp
            && let Some(dp) = &shared.xdp
        {
            let kernel = self.kernel_session(data.client, data.mtu, 0);
            let mut dp = dp.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(k) = dp.counters(kernel.slot) {
                use std::sync::atomic::Ordering::Relaxed;
                let c = &self.call.counters;
                c.rx_packets.fetch_add(k.rx_packets, Relaxed);
                c.rx_bytes.fetch_add(k.rx_bytes, Relaxed);
                c.tx_packets.fetch_add(k.tx_packets, Relaxed);
                c.tx_bytes.fetch_add(k.tx_bytes, Relaxed);
            }
            if let Err(e) = dp.remove(&kernel) {
                tracing::warn!(call_id = self.call.call_id, "removing XDP entries: {e}");
            }
        }
        {
            let mut clients = shared.clients.write().unwrap_or_else(|e| e.into_inner());
            if clients
                .get(&data.client)
                .is_some_and(|c| Arc::ptr_eq(c, &self.call))
            {
                clients.remove(&data.client);
            }
        }
        if let Err(e) = shared
            .routes
            .remove(data.client, shared.tun_index, &shared.tun_name)
            .await
        {
            tracing::warn!("{e}");
        }
    }

    /// Everything the call held goes back.
    async fn teardown(&mut self) {
        self.network_down().await;
        if let Some(addr) = self.address.take() {
            self.shared
                .pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .release(addr);
        }
        self.shared
            .calls
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(self.call.peer, self.call.call_id));
    }

    /// The acknowledgment-only frame the call's sequencer has due (RFC
    /// 2637 section 4.4): the peer's data was not acknowledged by anything
    /// we sent within the acknowledgment delay.
    async fn send_owed_ack(&self) {
        let now = Instant::now();
        let Some(Some(header)) = self
            .shared
            .seq
            .with_sequencer(u32::from(self.call.call_id), |s| s.poll_transmit(now))
        else {
            return;
        };
        let mut buf = [0u8; 16];
        if let Ok(n) = header.emit_header(&mut buf) {
            self.shared.send_gre(&self.call, &buf[..n]).await;
        }
    }
}
