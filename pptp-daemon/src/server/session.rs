//! One task per call: runs the PPP session (`proto::session`) of the call,
//! frames what it sends, answers its requests (credentials, address), and
//! installs and removes the call's data path as its network goes up and
//! down.
//!
//! Ownership: the control connection creates a [`SessionGuard`] when the
//! concentrator has given the call its ID, and moves it into the session
//! task. The guard owns the call's resources; its `Drop` releases them
//! exactly once (data path, call table, then call ID and address through
//! `Concentrator::release`), so a task that returns, is aborted or panics
//! leaves nothing behind.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use pptp_common::maps::{
    SESSION_F_ACFC, SESSION_F_DECAP, SESSION_F_ENCAP, SESSION_F_MPPE_RX, SESSION_F_MPPE_TX,
    SESSION_F_MSS_CLAMP, SESSION_F_PFC, Session as KernelSession,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::Instrument as _;

use super::{
    Call, CallInput, DataState, Shared,
    ctl::Negotiated,
    registry::{Command, Live, RouteOp},
    scripts::{SessionFacts, SessionScripts},
    send_control, shaping,
};
use crate::{
    auth::{Accepted, AuthMethod, Rejection, Verdict, server::ServerAuthFactory},
    dataplane::{frame::Framing, mss},
    logsafe::Escaped,
    mppe::{KeyLength, cipher::MppeCipher},
    proto::{
        call::{self, WindowPolicy},
        end::EndReason,
        lcp::magic_source,
        session::{NetworkParams, Session, SessionEvent},
    },
};

/// Messages from a session task to its control connection.
#[derive(Debug)]
pub enum ToControl {
    /// The session ended on its own (LCP Terminate, keepalive, failed
    /// authentication): clear the call (Call-Disconnect-Notify).
    Ended { call_id: u16, reason: EndReason },
    /// The session was aborted ([`Command::Abort`]): no goodbyes. Sent
    /// before its `Ended`.
    Aborted { call_id: u16 },
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

/// Owns everything one session holds: its entry in the call table, its
/// data path (XDP entries, client route, TUN lookup) and, through the
/// concentrator, its call ID and address. Dropping it releases all of it,
/// exactly once, whichever way the session ends: a normal return, an
/// aborted task, a panic in the task, or a daemon shutdown.
pub struct SessionGuard {
    shared: Arc<Shared>,
    call: Arc<Call>,
    control: mpsc::UnboundedSender<ToControl>,
    /// Woken when the data path arms the call's acknowledgment timer.
    ack_wake: Arc<Notify>,
    /// Why the session ended; unset means its task died without saying.
    reason: Option<EndReason>,
    /// The session's pppd-compatible scripts: `Drop` runs the `ip-down`
    /// its network owes.
    scripts: SessionScripts,
}

impl SessionGuard {
    /// Registers `call` in the call table; from now on the guard owns it.
    pub fn register(
        shared: Arc<Shared>,
        call: Arc<Call>,
        control: mpsc::UnboundedSender<ToControl>,
    ) -> Self {
        // The call's GRE sequencer, open before the Outgoing-Call-Reply
        // goes out: the peer's first frames may overtake this task. Like
        // the XDP program, which cannot hold frames back, it sends
        // regardless of the peer's window.
        let own_window = shared.live().settings.control.receive_window;
        let seq_config = call::Config {
            window_policy: WindowPolicy::Ignore,
            ..call::Config::new(0, own_window)
        };
        let ack_wake = shared
            .seq
            .open(u32::from(call.call_id), call.peer_call_id, seq_config)
            .unwrap_or_else(|_| Arc::new(Notify::new()));
        // Known to the XDP program before the peer can send: GRE for calls
        // it does not hold is dropped in the kernel.
        if let Some(dp) = &shared.xdp {
            let buckets = shared.live().config.limits.call_buckets();
            if let Err(e) = dp.lock().unwrap_or_else(|e| e.into_inner()).register_call(
                call.peer.octets(),
                call.call_id,
                buckets,
            ) {
                tracing::warn!(call_id = call.call_id, "registering the call in XDP: {e}");
            }
        }
        shared
            .calls
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(call.call_id, call.clone());
        let scripts = SessionScripts::new(shared.scripts.clone());
        Self {
            shared,
            call,
            control,
            ack_wake,
            reason: None,
            scripts,
        }
    }

    fn end(&mut self, reason: EndReason) {
        self.reason.get_or_insert(reason);
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let reason = self.reason.unwrap_or(EndReason::TaskFailed);
        // The data path first, so that no packet reaches this session once
        // its address can belong to another one.
        take_data_path(&self.shared, &self.call);
        if let Some(dp) = &self.shared.xdp
            && let Err(e) = dp
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .unregister_call(self.call.peer.octets(), self.call.call_id)
        {
            tracing::warn!(
                call_id = self.call.call_id,
                "unregistering the call in XDP: {e}"
            );
        }
        // Its sequencer, before the call ID can be given out again.
        let _ = self.shared.seq.close(u32::from(self.call.call_id));
        // ip-down, if the network came up, with the final counters.
        self.scripts.down(|| final_bytes(&self.call));
        // Accounting Stop, with the XDP counters now folded into the call's
        // (sent only if the session had a Start; never blocks).
        if let Some(acct) = &self.shared.accounting {
            acct.stop(&self.call, reason);
        }
        {
            let mut calls = self.shared.calls.write().unwrap_or_else(|e| e.into_inner());
            if calls
                .get(&self.call.call_id)
                .is_some_and(|c| Arc::ptr_eq(c, &self.call))
            {
                calls.remove(&self.call.call_id);
            }
        }
        let released = self
            .shared
            .core()
            .release(Instant::now(), self.call.session, reason);
        self.shared.dispatch();
        let user = self
            .call
            .user
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if released.is_some() {
            tracing::info!(
                peer = %self.call.peer,
                call_id = self.call.call_id,
                user = %Escaped::new(user.as_deref().unwrap_or("-")),
                %reason,
                "session ended"
            );
        }
        let _ = self.control.send(ToControl::Ended {
            call_id: self.call.call_id,
            reason,
        });
    }
}

/// Runs a call's PPP session to its end; `guard` releases what it held.
/// Its log lines carry the session's `sid` (Acct-Session-Id) and, once
/// authenticated, its `user` (the `session` span, see `server::logging`).
pub async fn run(
    guard: SessionGuard,
    input: mpsc::Receiver<CallInput>,
    commands: mpsc::UnboundedReceiver<Command>,
) {
    let span = tracing::info_span!(
        "session",
        sid = %guard.call.acct_session_id,
        user = tracing::field::Empty
    );
    run_session(guard, input, commands).instrument(span).await
}

async fn run_session(
    mut guard: SessionGuard,
    mut input: mpsc::Receiver<CallInput>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let shared = guard.shared.clone();
    let call = guard.call.clone();
    let slot = u32::from(call.call_id);
    let ack_wake = guard.ack_wake.clone();
    // The configuration this session runs with, from setup to end: a
    // reload applies to the sessions that start after it.
    let live = shared.live();
    let factory = ServerAuthFactory::new(live.settings.auth.clone(), shared.random.clone());
    let mut seed = [0u8; 8];
    (shared.random)(&mut seed);
    let mut session = Session::new(
        live.settings.session.clone(),
        Box::new(factory),
        magic_source(u64::from_ne_bytes(seed)),
    );
    let mut task = Task {
        shared: shared.clone(),
        live,
        call: call.clone(),
        framing: Framing::default(),
        accepted: None,
        verify_method: None,
        verify_request: 0,
        closing: None,
        reason: None,
        scripts: guard.scripts.clone(),
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
            // The daemon's commands before the peer's frames: a flood of
            // frames never delays a stop or a verdict.
            biased;
            cmd = commands.recv() => {
                let now = Instant::now();
                match cmd {
                    Some(Command::Verdict { request, verdict }) => {
                        if request == task.verify_request {
                            task.verdict(&mut session, now, *verdict);
                        } else {
                            tracing::debug!(peer = %call.peer, call_id = call.call_id, "stale verdict dropped");
                        }
                    }
                    Some(Command::Close(reason)) => {
                        task.closing.get_or_insert(reason);
                        session.close(now, reason);
                    }
                    Some(Command::LowerDown(reason)) => {
                        session.lower_down(now);
                        // Why we were closing wins over the link going
                        // away under the close (the peer's Call-Clear
                        // after our LCP Terminate-Request).
                        task.reason.get_or_insert(task.closing.unwrap_or(reason));
                    }
                    Some(Command::Abort(reason)) => {
                        // No goodbyes: nothing more is sent; the guard
                        // releases everything as the task returns.
                        let _ = guard.control.send(ToControl::Aborted { call_id: call.call_id });
                        guard.end(reason);
                        return;
                    }
                    // Every sender is gone: the control connection ended.
                    None => {
                        session.lower_down(now);
                        task.reason.get_or_insert(EndReason::ControlClosed);
                    }
                }
            }
            msg = input.recv() => {
                let now = Instant::now();
                match msg {
                    Some(CallInput::Frame(protocol, payload)) => session.handle_frame(now, protocol, &payload),
                    Some(CallInput::MppeResetNeeded) => session.send_ccp_reset_request(now),
                    Some(CallInput::MppeSyncProbe) => session.send_echo_probe(now),
                    None => {
                        session.lower_down(now);
                        task.reason.get_or_insert(EndReason::ControlClosed);
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
    guard.end(task.reason.unwrap_or(EndReason::TaskFailed));
    // Dropping the guard releases everything.
}

struct Task {
    shared: Arc<Shared>,
    /// The configuration snapshot taken at the session's start.
    live: Arc<Live>,
    call: Arc<Call>,
    framing: Framing,
    /// The verdict that authenticated the session.
    accepted: Option<Accepted>,
    /// The method of the latest credentials check (for the metrics).
    verify_method: Option<AuthMethod>,
    /// Number of the latest credentials check asked for.
    verify_request: u64,
    /// Why we closed the session, if we did (it wins over what LCP says).
    closing: Option<EndReason>,
    /// Set when the session is over.
    reason: Option<EndReason>,
    /// The session's scripts (shared with its guard).
    scripts: SessionScripts,
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

    /// A verdict from the back end; the concentrator has the last word on
    /// an acceptance (sessions per user, no change of user).
    fn verdict(&mut self, session: &mut Session, now: Instant, verdict: Verdict) {
        let counter = match &verdict {
            Verdict::Accept(_) => &self.shared.stats.auth_accepted,
            Verdict::Reject(_) => &self.shared.stats.auth_rejected,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let verdict = match verdict {
            Verdict::Accept(accepted) => {
                let admitted = {
                    let mut core = self.shared.core();
                    let admitted =
                        core.handle_authenticated(now, self.call.session, &accepted.user);
                    // RADIUS Session-Timeout (RFC 2865 section 5.27): the
                    // session ends that long after it is admitted.
                    if admitted.is_ok() {
                        if let Some(timeout) = accepted.session.session_timeout {
                            core.set_session_deadline(
                                now,
                                self.call.session,
                                now.checked_add(timeout),
                            );
                        }
                        // RADIUS Idle-Timeout (RFC 2865 section 5.28): the
                        // core timer feeds the session's packet counts.
                        if let Some(timeout) = accepted.session.idle_timeout {
                            core.set_idle_timeout(now, self.call.session, Some(timeout));
                        }
                    }
                    admitted
                };
                self.shared.dispatch();
                match admitted {
                    Ok(()) => {
                        self.accepted = Some(accepted.clone());
                        Verdict::Accept(accepted)
                    }
                    Err(refusal) => {
                        self.shared.warn_peer(
                            self.call.peer,
                            format_args!(
                                "user {} refused: {refusal}",
                                Escaped::new(&accepted.user)
                            ),
                        );
                        Verdict::Reject(Rejection::AccountRestricted)
                    }
                }
            }
            reject => reject,
        };
        if let Some(method) = self.verify_method {
            self.shared.stats.auth.record(method, &verdict);
        }
        session.handle_verdict(now, verdict);
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
                let verifier = self.live.verifier.clone();
                let peer = IpAddr::V4(self.call.peer);
                let call_id = self.call.call_id;
                let commands = self.call.commands.clone();
                // Only the answer to the latest request counts.
                self.verify_method = Some(credentials.method());
                self.verify_request += 1;
                let request = self.verify_request;
                // The back end may block (file read, later RADIUS): it runs
                // off this task, and a slow one holds no other session.
                tokio::spawn(async move {
                    let verdict = tokio::task::spawn_blocking(move || {
                        verifier.verify_call(peer, call_id, &credentials)
                    })
                    .await
                    .unwrap_or(Verdict::Reject(Rejection::BackendUnavailable));
                    let _ = commands.send(Command::Verdict {
                        request,
                        verdict: Box::new(verdict),
                    });
                });
            }
            SessionEvent::Authenticated(accepted) => {
                tracing::Span::current().record(
                    "user",
                    tracing::field::display(Escaped::new(&accepted.user)),
                );
                tracing::info!(peer = %self.call.peer, call_id = self.call.call_id, user = %Escaped::new(&accepted.user), "authenticated");
                *self.call.user.lock().unwrap_or_else(|e| e.into_inner()) = Some(accepted.user);
            }
            SessionEvent::AddressRequest {
                user,
                static_address,
                ..
            } => {
                let allowed = self.accepted.as_ref().map(|a| a.addresses.clone());
                let pool = self
                    .accepted
                    .as_ref()
                    .and_then(|a| a.session.framed_pool.clone());
                let assigned = self.shared.core().allocate_address(
                    self.call.session,
                    static_address,
                    pool.as_deref(),
                    &|addr| allowed.as_ref().is_none_or(|rule| rule.allows(addr)),
                );
                match assigned {
                    Ok(addr) => {
                        session.handle_address(now, Some(addr));
                    }
                    Err(e) => {
                        self.shared.warn_peer(
                            self.call.peer,
                            format_args!("no address for user {}: {e}", Escaped::new(&user)),
                        );
                        self.closing.get_or_insert(EndReason::NoAddress);
                        session.handle_address(now, None);
                    }
                }
            }
            SessionEvent::NetworkOpened(params) => self.network_up(&params).await,
            SessionEvent::NetworkDown => {
                take_data_path(&self.shared, &self.call);
                self.scripts.down(|| final_bytes(&self.call));
            }
            SessionEvent::CcpResetRequest => {
                if let Some(data) = self.call.data()
                    && let Some(enc) = &data.encryptor
                {
                    enc.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .handle_reset_request();
                }
            }
            SessionEvent::Closed { reason, detail } => {
                let reason = self.closing.unwrap_or(reason);
                tracing::debug!(peer = %self.call.peer, call_id = self.call.call_id, %reason, "link closed: {detail}");
                self.reason.get_or_insert(reason);
            }
        }
    }

    /// IPCP (and CCP) are open: route the client's address here and put the
    /// call on the XDP path when it can go there.
    async fn network_up(&mut self, params: &NetworkParams) {
        let client = params.peer_address;
        let facts = SessionFacts {
            session_id: self.call.acct_session_id.clone(),
            call_id: self.call.call_id,
            peer_call_id: self.call.peer_call_id,
            user: params.user.clone().unwrap_or_default(),
            peer: self.call.peer,
            server: self.call.local,
            local: params.local_address,
            remote: client,
        };
        // ip-pre-up: before anything routes to the client (waited for).
        self.scripts.pre_up(&facts).await;
        let shared = &self.shared;
        let settings = &self.live.settings;
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
        let framed_mtu = self.accepted.as_ref().and_then(|a| a.session.framed_mtu);
        let mtu = session_mtu(
            params.link.peer_mru,
            mppe.is_some(),
            settings.mru,
            framed_mtu,
        );
        let mss = settings
            .mss_clamp
            .then(|| mss::mss_for_mtu(mtu.min(params.link.mru)));
        // The rate limit: RADIUS's, else the configuration's for the user.
        let rate = self
            .accepted
            .as_ref()
            .and_then(|a| a.session.rate)
            .unwrap_or_else(|| {
                let user = self.accepted.as_ref().map_or("", |a| a.user.as_str());
                self.live.config.shaping.rate_for(user)
            });
        let burst_ns = self.live.config.shaping.burst_ns();
        // Stateless MPPE is received and sent in XDP (issue 14), each key
        // chain shared with the session's userspace cipher; stateful MPPE
        // stays in userspace.
        let kernel_mppe = match (&params.mppe, &params.mppe_material) {
            (Some(p), Some(material)) if p.stateless => {
                Some(crate::mppe::keys::start_keys(material, p.key_length))
            }
            _ => None,
        };
        let mut xdp = false;
        let mut mppe_rx = None;
        let mut mppe_tx = None;
        if (mppe.is_none() || kernel_mppe.is_some())
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
            let mut kernel = kernel_session(&self.call, client, mtu, flags);
            shaping::set_kernel_rate(&mut kernel, rate, burst_ns);
            let state = shared.seq.load(kernel.slot).unwrap_or_default();
            let mut dp = dp.lock().unwrap_or_else(|e| e.into_inner());
            let installed = match (&kernel_mppe, &encryptor) {
                (Some(start), Some(enc)) => {
                    kernel.flags |= SESSION_F_MPPE_RX | SESSION_F_MPPE_TX;
                    let enc = enc.lock().unwrap_or_else(|e| e.into_inner());
                    dp.install_mppe_rx(kernel.slot, &start.recv)
                        .and_then(|()| dp.mppe_rx().slot(kernel.slot))
                        .map(|slot| mppe_rx = Some(slot))
                        .and_then(|()| {
                            dp.install_mppe_tx(
                                kernel.slot,
                                &start.send,
                                enc.position(),
                                enc.session_key(),
                            )
                        })
                        .and_then(|()| dp.mppe_tx().slot(kernel.slot))
                        .map(|slot| mppe_tx = Some(slot))
                }
                _ => Ok(()),
            }
            .and_then(|()| dp.install(&kernel, state));
            match installed {
                Ok(()) => xdp = true,
                Err(e) => {
                    // (The MPPE key chains are not shared then: whatever
                    // of them was installed goes, with its prepared row.)
                    if kernel_mppe.is_some() {
                        for removed in [
                            dp.remove_mppe_rx(kernel.slot),
                            dp.remove_mppe_tx(kernel.slot),
                        ] {
                            if let Err(e) = removed {
                                tracing::warn!(
                                    call_id = self.call.call_id,
                                    "removing the MPPE key chains: {e}"
                                );
                            }
                        }
                    }
                    mppe_rx = None;
                    mppe_tx = None;
                    tracing::warn!(
                        call_id = self.call.call_id,
                        "session stays on the userspace path: {e}"
                    );
                }
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
            mppe_rx,
            mppe_tx,
            shaper: Mutex::new(shaping::Shaper::new(rate, burst_ns, Instant::now())),
        });
        *self.call.data.write().unwrap_or_else(|e| e.into_inner()) = Some(data);
        // Its data may now go up past the XDP program (issue 17).
        if let Some(dp) = &shared.xdp {
            let buckets = self.live.config.limits.call_buckets().network_up();
            if let Err(e) = dp.lock().unwrap_or_else(|e| e.into_inner()).register_call(
                self.call.peer.octets(),
                self.call.call_id,
                buckets,
            ) {
                tracing::warn!(
                    call_id = self.call.call_id,
                    "opening the call's data in XDP: {e}"
                );
            }
        }
        *self
            .call
            .negotiated
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(negotiated(
            params,
            self.accepted.as_ref(),
            mppe.clone(),
            mtu,
            mss,
        ));
        let (done, added) = oneshot::channel();
        if shared
            .routes
            .send(RouteOp::Add { client, mtu, done })
            .is_ok()
        {
            let _ = added.await;
        }
        shared
            .core()
            .handle_network_up(Instant::now(), self.call.session);
        shared
            .clients
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(client, self.call.clone());
        if let Some(acct) = &shared.accounting {
            let attributes = self
                .accepted
                .as_ref()
                .map(|a| a.session.clone())
                .unwrap_or_default();
            acct.start(&self.call, client, &attributes);
        }
        let path = if xdp { "xdp" } else { "userspace" };
        tracing::info!(
            peer = %self.call.peer,
            call_id = self.call.call_id,
            user = %Escaped::new(params.user.as_deref().unwrap_or("-")),
            %client,
            mtu,
            mppe = mppe.as_deref().unwrap_or("none"),
            path,
            %rate,
            "network up"
        );
        self.scripts.up(facts);
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

/// Bytes sent to and received from the client so far (`BYTES_SENT`,
/// `BYTES_RCVD`): the call's counters, which include the XDP path's once
/// the data path is taken down.
fn final_bytes(call: &Call) -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (
        call.counters.tx_bytes.load(Relaxed),
        call.counters.rx_bytes.load(Relaxed),
    )
}

/// What `ctl show` reports of a session whose network came up.
fn negotiated(
    params: &NetworkParams,
    accepted: Option<&Accepted>,
    mppe: Option<String>,
    mtu: u16,
    mss_clamp: Option<u16>,
) -> Negotiated {
    use crate::auth::AuthMethod;
    let link = &params.link;
    let attributes = accepted.map(|a| &a.session);
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
    Negotiated {
        mru: link.mru,
        peer_mru: link.peer_mru,
        pfc: link.send_pfc,
        acfc: link.send_acfc,
        peer_accm: link.peer_accm,
        magic: link.magic,
        peer_magic: link.peer_magic,
        auth: params.auth.or(link.auth).map(|m| {
            match m {
                AuthMethod::MsChapV2 => "MS-CHAPv2",
                AuthMethod::MsChapV1 => "MS-CHAP",
                AuthMethod::ChapMd5 => "CHAP-MD5",
                AuthMethod::Pap => "PAP",
            }
            .to_owned()
        }),
        local_address: Some(params.local_address),
        client_address: Some(params.peer_address),
        dns: params.dns.clone(),
        nbns: params.nbns.clone(),
        mppe,
        mtu,
        mss_clamp,
        session_timeout_secs: secs(attributes.and_then(|a| a.session_timeout)),
        idle_timeout_secs: secs(attributes.and_then(|a| a.idle_timeout)),
        acct_interim_secs: secs(attributes.and_then(|a| a.acct_interim_interval)),
        framed_mtu: attributes.and_then(|a| a.framed_mtu),
        class: attributes.map_or_else(Vec::new, |a| {
            a.class
                .iter()
                .map(|c| c.iter().map(|b| format!("{b:02x}")).collect())
                .collect()
        }),
    }
}

/// The session's MTU: what the peer can receive (its MRU, less 4 bytes
/// of MPPE header and inner protocol field when encrypted), at most our
/// configured MRU and, if the back end gave one, its Framed-MTU (RFC 2865
/// section 5.12).
fn session_mtu(peer_mru: u16, mppe: bool, mru: u16, framed_mtu: Option<u16>) -> u16 {
    let overhead = if mppe { 4 } else { 0 };
    peer_mru
        .saturating_sub(overhead)
        .min(mru)
        .min(framed_mtu.unwrap_or(u16::MAX))
}

fn kernel_session(call: &Call, client: Ipv4Addr, mtu: u16, flags: u32) -> KernelSession {
    KernelSession {
        peer_addr: call.peer.octets(),
        local_addr: call.local.octets(),
        client_addr: client.octets(),
        slot: u32::from(call.call_id),
        flags,
        call_id: call.call_id,
        peer_call_id: call.peer_call_id,
        mtu,
        ..KernelSession::default()
    }
}

/// Takes the call off the data path (network down or session over): XDP
/// entries (their counters folded into the call's), the TUN lookup and the
/// client route. Synchronous, so a guard's drop can run it; the route
/// removal is queued in order with every other route change.
fn take_data_path(shared: &Shared, call: &Arc<Call>) {
    let Some(data) = call.data.write().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    if data.xdp
        && let Some(dp) = &shared.xdp
    {
        let kernel = kernel_session(call, data.client, data.mtu, 0);
        let mut dp = dp.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(k) = dp.counters(kernel.slot) {
            use std::sync::atomic::Ordering::Relaxed;
            let c = &call.counters;
            c.rx_packets.fetch_add(k.rx_packets, Relaxed);
            c.rx_bytes.fetch_add(k.rx_bytes, Relaxed);
            c.tx_packets.fetch_add(k.tx_packets, Relaxed);
            c.tx_bytes.fetch_add(k.tx_bytes, Relaxed);
            let gone = &shared.stats.xdp_gone;
            gone.rx_packets.fetch_add(k.rx_packets, Relaxed);
            gone.rx_bytes.fetch_add(k.rx_bytes, Relaxed);
            gone.tx_packets.fetch_add(k.tx_packets, Relaxed);
            gone.tx_bytes.fetch_add(k.tx_bytes, Relaxed);
        }
        if let Err(e) = dp.remove(&kernel) {
            tracing::warn!(call_id = call.call_id, "removing XDP entries: {e}");
        }
        if data.mppe_rx.is_some()
            && let Err(e) = dp.remove_mppe_rx(kernel.slot)
        {
            tracing::warn!(call_id = call.call_id, "clearing the MPPE key chain: {e}");
        }
        if data.mppe_tx.is_some()
            && let Err(e) = dp.remove_mppe_tx(kernel.slot)
        {
            tracing::warn!(call_id = call.call_id, "clearing the MPPE send chain: {e}");
        }
    }
    {
        let mut clients = shared.clients.write().unwrap_or_else(|e| e.into_inner());
        if clients
            .get(&data.client)
            .is_some_and(|c| Arc::ptr_eq(c, call))
        {
            clients.remove(&data.client);
        }
    }
    let _ = shared.routes.send(RouteOp::Remove {
        client: data.client,
    });
}

#[cfg(test)]
pub(crate) mod tests {
    //! The guard's promise, on a real runtime: whichever way a session task
    //! ends (it returns, it is aborted, it panics), everything the session
    //! held is released exactly once. Needs root (a raw GRE socket).

    use std::{
        net::Ipv4Addr,
        sync::{Arc, Mutex, RwLock},
        time::Instant,
    };

    use tokio::sync::mpsc;

    use super::*;
    use crate::{
        auth::{Credentials, Verdict, Verifier},
        config::Config,
        dataplane::frame::Framing,
        proto::{concentrator::Concentrator, limits::Limits, pool::AddressPool},
        server::{Counters, DataState, registry::Settings},
    };

    struct RefuseAll;
    impl Verifier for RefuseAll {
        fn verify(&self, _: std::net::IpAddr, _: &Credentials) -> Verdict {
            Verdict::Reject(Rejection::BadCredentials)
        }
    }

    /// A `Shared` for unit tests, on the default configuration.
    pub(crate) fn shared() -> (Arc<Shared>, mpsc::UnboundedReceiver<RouteOp>) {
        shared_with(Config::default())
    }

    fn shared_with(config: Config) -> (Arc<Shared>, mpsc::UnboundedReceiver<RouteOp>) {
        let pool = AddressPool::new(&config.ppp.pool, &[config.ppp.local_address]);
        let core = Concentrator::new(Limits::default(), pool, 7);
        let scripts = crate::server::scripts::Scripts::new(
            &config.scripts,
            "pptp0",
            crate::server::scripts::Daemon::current(),
        );
        let live = Live {
            settings: Settings::from_config(&config),
            verifier: Arc::new(RefuseAll),
            secrets: None,
            config,
        };
        let (shared, route_ops) =
            Shared::for_tests(live, crate::cli::ConfigOrigin::default(), core, scripts);
        (Arc::new(shared), route_ops)
    }

    /// A session as far as the network phase: a call ID, an address, a
    /// route, a TUN lookup entry; returns its guard and what the control
    /// connection will hear.
    fn session_up(
        shared: &Arc<Shared>,
        source: Ipv4Addr,
    ) -> (SessionGuard, mpsc::UnboundedReceiver<ToControl>, Ipv4Addr) {
        let now = Instant::now();
        let (conn, id, addr) = {
            let mut core = shared.core();
            let conn = core.handle_connect(now, source).expect("admitted");
            let id = core.allocate_call(now, conn, 9).expect("call");
            core.handle_authenticated(now, id, "alice").expect("user");
            let addr = core
                .allocate_address(id, None, None, &|_| true)
                .expect("address");
            core.handle_network_up(now, id);
            (conn, id, addr)
        };
        let _ = conn;
        let (input, _) = mpsc::channel(4);
        let (commands, _) = mpsc::unbounded_channel();
        let call = Arc::new(Call {
            peer: source,
            local: Ipv4Addr::new(198, 18, 0, 1),
            call_id: id.call_id(),
            peer_call_id: 9,
            session: id,
            started: now,
            acct_session_id: crate::server::registry::acct_session_id(0, id),
            input,
            commands,
            data: RwLock::new(Some(Arc::new(DataState {
                client: addr,
                framing: Framing::default(),
                mtu: 1400,
                mss: None,
                encryptor: None,
                decryptor: None,
                mppe: None,
                xdp: false,
                mppe_rx: None,
                mppe_tx: None,
                shaper: Mutex::new(shaping::Shaper::new(Default::default(), 0, Instant::now())),
            }))),
            user: Mutex::new(Some("alice".into())),
            counters: Counters::default(),
            negotiated: Mutex::new(None),
        });
        shared.clients.write().unwrap().insert(addr, call.clone());
        let (to_control, from_sessions) = mpsc::unbounded_channel();
        let guard = SessionGuard::register(shared.clone(), call, to_control);
        (guard, from_sessions, addr)
    }

    fn assert_released(
        shared: &Shared,
        route_ops: &mut mpsc::UnboundedReceiver<RouteOp>,
        from_sessions: &mut mpsc::UnboundedReceiver<ToControl>,
        addr: Ipv4Addr,
        reason: EndReason,
    ) {
        let core = shared.core();
        assert_eq!(core.sessions().count(), 0, "registry entry left");
        assert_eq!(core.pool().in_use(), 0, "address left");
        assert_eq!(core.live_call_ids(), 0, "call ID left");
        assert_eq!(core.counters().ended(reason), 1, "counted once as {reason}");
        assert_eq!(core.counters().ended_total(), 1);
        drop(core);
        assert!(
            (0..=u16::MAX).all(|id| shared.seq.with_sequencer(u32::from(id), |_| ()).is_none()),
            "sequencer slot left open"
        );
        assert!(
            shared.calls.read().unwrap().is_empty(),
            "call table entry left"
        );
        assert!(shared.clients.read().unwrap().is_empty(), "TUN lookup left");
        match route_ops.try_recv() {
            Ok(RouteOp::Remove { client }) => assert_eq!(client, addr),
            other => panic!("no route removal: {other:?}"),
        }
        assert!(route_ops.try_recv().is_err(), "one route removal only");
        match from_sessions.try_recv() {
            Ok(ToControl::Ended { reason: r, .. }) => assert_eq!(r, reason),
            other => panic!("the control connection was not told: {other:?}"),
        }
        assert!(from_sessions.try_recv().is_err());
    }

    #[test]
    fn framed_mtu_caps_the_session_mtu() {
        use super::session_mtu;
        assert_eq!(session_mtu(1500, false, 1400, None), 1400);
        assert_eq!(session_mtu(1500, false, 1400, Some(1300)), 1300);
        assert_eq!(session_mtu(1300, true, 1400, None), 1296);
        assert_eq!(session_mtu(1300, true, 1400, Some(1298)), 1296);
        // Framed-MTU never raises it.
        assert_eq!(session_mtu(1500, false, 1400, Some(1500)), 1400);
    }

    #[tokio::test]
    async fn a_panicking_session_task_releases_everything_once() {
        let (shared, mut route_ops) = shared();
        let (guard, mut from_sessions, addr) = session_up(&shared, Ipv4Addr::new(198, 18, 0, 2));
        let task = tokio::spawn(async move {
            let _guard = guard;
            panic!("a bug in the session task");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_released(
            &shared,
            &mut route_ops,
            &mut from_sessions,
            addr,
            EndReason::TaskFailed,
        );
    }

    #[tokio::test]
    async fn an_aborted_session_task_releases_everything_once() {
        let (shared, mut route_ops) = shared();
        let (guard, mut from_sessions, addr) = session_up(&shared, Ipv4Addr::new(198, 18, 0, 3));
        let task = tokio::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_released(
            &shared,
            &mut route_ops,
            &mut from_sessions,
            addr,
            EndReason::TaskFailed,
        );
    }

    #[tokio::test]
    async fn a_session_that_ends_normally_releases_with_its_reason() {
        let (shared, mut route_ops) = shared();
        let (mut guard, mut from_sessions, addr) =
            session_up(&shared, Ipv4Addr::new(198, 18, 0, 4));
        guard.end(EndReason::CallCleared);
        // A later reason does not replace the first.
        guard.end(EndReason::Shutdown);
        drop(guard);
        assert_released(
            &shared,
            &mut route_ops,
            &mut from_sessions,
            addr,
            EndReason::CallCleared,
        );
    }

    /// `ip-down` hangs on the guard: a session task that is aborted after
    /// its network came up still runs it, once, with its counters.
    #[tokio::test]
    async fn an_aborted_session_runs_ip_down_once() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("pptp-session-ipdown-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let script = dir.join("ip-down");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$1 $5 $PEERNAME $BYTES_SENT $BYTES_RCVD\" >> {}\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut config = Config::default();
        config.scripts.ip_down = Some(script);
        let (shared, _route_ops) = shared_with(config);
        let (guard, _from_sessions, addr) = session_up(&shared, Ipv4Addr::new(198, 18, 0, 5));
        guard
            .call
            .counters
            .tx_bytes
            .store(300, std::sync::atomic::Ordering::Relaxed);
        guard
            .call
            .counters
            .rx_bytes
            .store(200, std::sync::atomic::Ordering::Relaxed);
        guard.scripts.up(SessionFacts {
            session_id: guard.call.acct_session_id.clone(),
            call_id: guard.call.call_id,
            peer_call_id: guard.call.peer_call_id,
            user: "alice".into(),
            peer: guard.call.peer,
            server: guard.call.local,
            local: Ipv4Addr::new(198, 19, 0, 1),
            remote: addr,
        });
        let task = tokio::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        let scripts = shared.scripts.as_ref().expect("configured");
        assert_eq!(scripts.drain(std::time::Duration::from_secs(10)).await, 0);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(text, format!("pptp0 {addr} alice 300 200\n"));
    }
}
