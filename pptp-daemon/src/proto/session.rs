//! The PPP phases of one call (RFC 1661 section 3): Dead, Establish (LCP),
//! Authenticate (an [`AuthEngine`]), Network (IPCP and CCP), Terminate, as
//! a sans-IO core for the daemon's tokio glue and for our own client.
//!
//! Inputs: [`Session::open`], [`Session::handle_frame`] for every PPP frame
//! of the call (address/control and protocol already stripped),
//! [`Session::handle_timeout`], [`Session::handle_verdict`] (the answer to
//! [`SessionEvent::Verify`]), [`Session::handle_address`] (the answer to
//! [`SessionEvent::AddressRequest`]), [`Session::close`],
//! [`Session::lower_down`], [`Session::send_ccp_reset_request`].
//! Outputs: [`Session::poll_transmit`] (protocol and payload: the daemon
//! adds the PPP framing, compressing address/control and protocol per
//! [`LinkParams::send_acfc`] / [`LinkParams::send_pfc`] except for LCP
//! packets, which RFC 1661 sections 6.5 and 6.6 keep uncompressed, and the
//! GRE header), [`Session::poll_timeout`], [`Session::poll_event`].
//!
//! How a server session runs:
//! 1. `open`: LCP starts (the PPTP call is the lower layer, already up).
//! 2. LCP Opened: [`SessionEvent::LinkUp`]; the Authenticate phase starts
//!    the engine that [`AuthFactory`] builds for the negotiated method.
//!    Credentials come out as [`SessionEvent::Verify`]; the daemon checks
//!    them (possibly asynchronously) and calls `handle_verdict`.
//! 3. Success: [`SessionEvent::Authenticated`], then
//!    [`SessionEvent::AddressRequest`] with the user's static address from
//!    the secrets file, if any, and the addresses the user may have (the
//!    daemon assigns only one of those; an address the user may not have
//!    closes the session with [`EndReason::NoAddress`]). The Network
//!    phase begins: CCP starts at once (when MPPE is possible), IPCP only
//!    once the daemon has answered with `handle_address`. A client's IPCP
//!    Configure-Request arriving before that is held (the latest one) and
//!    judged when the address is known, so IPCP cannot open, or Nak,
//!    before the daemon answered.
//! 4. IPCP Opened and CCP settled (Opened, or finished under `allow`):
//!    [`SessionEvent::NetworkOpened`] with everything the data plane needs.
//!    If IPCP or CCP renegotiate later, [`SessionEvent::NetworkDown`]
//!    comes first and `NetworkOpened` again when they settle.
//! 5. [`SessionEvent::Closed`] with the typed reason ([`EndReason`]) and
//!    a detail for logs when LCP is finished or the lower layer went down:
//!    the session is Dead and may be dropped.
//!
//! Authentication across LCP renegotiation (RFC 1661 section 3.4: a new
//! LCP negotiation goes through Authenticate again): the Responses checked
//! and not accepted count against the server engine's per-session limit
//! for the whole session, so renegotiating LCP buys no fresh attempts; and
//! once the session has authenticated a user, authenticating as another
//! one ends it ([`EndReason::AuthFailed`]): the address, routes and
//! accounting of a session belong to one user.
//!
//! Frames of protocols that are not allowed in the current phase are
//! silently discarded (RFC 1661 section 3): only LCP in Establish and
//! Terminate; LCP and the authentication protocol in Authenticate. In the
//! Network phase a protocol we do not run (IPV6CP, LQR, CCP under
//! `mppe.policy = "deny"`, IPv6) gets an LCP Protocol-Reject. Data frames
//! (IPv4, MPPE) belong to the data plane and are ignored here.

use std::{collections::VecDeque, fmt, net::Ipv4Addr, time::Instant};

use pptp_common::consts::ppp_proto;

use super::{
    ccp::{Ccp, CcpEvent, CcpPolicy, MppePolicy},
    end::EndReason,
    fsm::{FsmConfig, FsmEvent, State},
    ipcp::{Ipcp, IpcpOptions, IpcpPolicy},
    lcp::{Lcp, LcpEvent, LcpPolicy, LinkParams, MagicSource},
};
use crate::{
    auth::{
        Accepted, AddressPolicy, AuthEngine, AuthEvent, AuthFactory, AuthMethod, Credentials,
        MppeMaterial, Verdict,
    },
    logsafe::Escaped,
    mppe::{MppeParams, Role},
};

/// The link phases of RFC 1661 section 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Dead,
    Establish,
    Authenticate,
    Network,
    Terminate,
}

/// Policies and counters of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub fsm: FsmConfig,
    pub lcp: LcpPolicy,
    pub ipcp: IpcpPolicy,
    /// `None`: MPPE denied, CCP not run.
    pub ccp: Option<CcpPolicy>,
}

impl SessionConfig {
    /// Our client, behaving like a Windows client: LCP as
    /// [`LcpPolicy::client`], IPCP asking for an address and DNS servers,
    /// MPPE per `mppe` (not negotiated at all under [`MppePolicy::Deny`]).
    /// The daemon's sessions come from `Config::session_config`.
    pub fn client(mppe: &CcpPolicy) -> Self {
        SessionConfig {
            fsm: FsmConfig::default(),
            lcp: LcpPolicy::client(),
            ipcp: IpcpPolicy::Client {
                request_dns: true,
                request_nbns: false,
            },
            ccp: (mppe.policy != MppePolicy::Deny).then(|| mppe.clone()),
        }
    }
}

/// Everything the data plane needs once the network is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkParams {
    /// Our address on the link.
    pub local_address: Ipv4Addr,
    /// The peer's address: for the server, the client's assigned address.
    pub peer_address: Ipv4Addr,
    /// Name servers handed out (server) or received (client).
    pub dns: Vec<Ipv4Addr>,
    pub nbns: Vec<Ipv4Addr>,
    /// What LCP agreed: MRUs, PFC/ACFC, magic numbers.
    pub link: LinkParams,
    /// MPPE parameters, `None` when the link is not encrypted.
    pub mppe: Option<MppeParams>,
    /// The key material for MPPE (present when `mppe` is).
    pub mppe_material: Option<MppeMaterial>,
    /// The authenticated user (server) or our own name (client).
    pub user: Option<String>,
    /// The authentication method used, if any.
    pub auth: Option<AuthMethod>,
}

/// What the session reports to the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// LCP is Opened with these parameters; the daemon may switch its
    /// framing to them (ACFC/PFC for non-LCP frames).
    LinkUp(LinkParams),
    /// Server: check these credentials and call [`Session::handle_verdict`].
    Verify(Credentials),
    /// Authentication succeeded (server: the user, static address and MPPE
    /// material; client: our own name and material).
    Authenticated(Accepted),
    /// Server: an address is needed for `user` (its static address from
    /// the secrets file if there is one, else one from the pool that
    /// `addresses` allows); answer with [`Session::handle_address`]. IPCP
    /// waits for it. An address `addresses` does not allow closes the
    /// session ([`EndReason::NoAddress`]).
    AddressRequest {
        user: String,
        static_address: Option<Ipv4Addr>,
        addresses: AddressPolicy,
    },
    /// The network is up.
    NetworkOpened(NetworkParams),
    /// The network went down for renegotiation: stop forwarding until the
    /// next `NetworkOpened`.
    NetworkDown,
    /// The peer's CCP Reset-Request (stateful MPPE): set the flushed bit
    /// on the next encrypted packet.
    CcpResetRequest,
    /// The session is over (Dead phase): why, and a detail for logs.
    Closed { reason: EndReason, detail: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Address {
    Unknown,
    Requested,
    Assigned(Ipv4Addr),
}

/// The PPP control plane of one call, server or client.
pub struct Session {
    settings: SessionConfig,
    phase: Phase,
    lcp: Lcp,
    factory: Box<dyn AuthFactory>,
    auth: Option<Box<dyn AuthEngine>>,
    accepted: Option<Accepted>,
    address: Address,
    ipcp: Ipcp,
    ipcp_started: bool,
    held_ipcp: Option<Vec<u8>>,
    /// The peer sent an IPCP packet in this network phase.
    ipcp_heard: bool,
    ccp: Option<Ccp>,
    mppe_used: bool,
    network: Option<NetworkParams>,
    transmit: VecDeque<(u16, Vec<u8>)>,
    events: VecDeque<SessionEvent>,
    /// Closed once: a session is not reused.
    finished: bool,
    /// Why the session is ending, once known (the first reason wins).
    end: Option<(EndReason, String)>,
    /// Server: Responses sent to the daemon and not accepted, over the
    /// whole session (they survive LCP renegotiation).
    auth_attempts: u32,
    /// The user this session authenticated and what it may use; kept
    /// across LCP renegotiation.
    authenticated: Option<(String, AddressPolicy)>,
    /// The network must be up by then (see [`Session::convergence_limit`]).
    converge_by: Option<Instant>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role())
            .field("phase", &self.phase)
            .field("lcp", &self.lcp.state())
            .field("ipcp", &self.ipcp.state())
            .field("ccp", &self.ccp.as_ref().map(Ccp::state))
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session with explicit settings; `random` provides LCP Magic-Numbers.
    pub fn new(
        settings: SessionConfig,
        factory: Box<dyn AuthFactory>,
        random: MagicSource,
    ) -> Self {
        let lcp = Lcp::new(settings.lcp.clone(), settings.fsm.clone(), random);
        let ipcp = Ipcp::new(
            IpcpOptions::new(settings.ipcp.clone()),
            settings.fsm.clone(),
        );
        Session {
            settings,
            phase: Phase::Dead,
            lcp,
            factory,
            auth: None,
            accepted: None,
            address: Address::Unknown,
            ipcp,
            ipcp_started: false,
            held_ipcp: None,
            ipcp_heard: false,
            ccp: None,
            mppe_used: false,
            network: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            finished: false,
            end: None,
            auth_attempts: 0,
            authenticated: None,
            converge_by: None,
        }
    }

    /// How long negotiation may take from `open` (or from the network going
    /// down) to the network being up: three times Max-Configure restart
    /// intervals (90 s by default). It bounds a peer that keeps answering
    /// but never agrees (RFC 1661 bounds only unanswered requests) and a
    /// stalled authentication.
    pub fn convergence_limit(&self) -> std::time::Duration {
        self.settings.fsm.restart_interval * self.settings.fsm.max_configure.max(1) * 3
    }

    pub fn role(&self) -> Role {
        self.settings.lcp.role
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn lcp_state(&self) -> State {
        self.lcp.state()
    }

    pub fn ipcp_state(&self) -> State {
        self.ipcp.state()
    }

    /// `None` when CCP is not running.
    pub fn ccp_state(&self) -> Option<State> {
        self.ccp.as_ref().map(Ccp::state)
    }

    /// What LCP agreed, while it is Opened.
    pub fn link(&self) -> Option<LinkParams> {
        self.lcp.link()
    }

    /// The network parameters while the network is up.
    pub fn network(&self) -> Option<&NetworkParams> {
        self.network.as_ref()
    }

    /// Starts the link: the PPTP call (the lower layer) is established.
    pub fn open(&mut self, now: Instant) {
        if self.phase != Phase::Dead || self.finished {
            return;
        }
        self.phase = Phase::Establish;
        self.converge_by = Some(now + self.convergence_limit());
        self.lcp.open(now);
        self.lcp.up(now);
        self.pump(now);
    }

    /// Administrative close: LCP Terminate-Request (its text names
    /// `reason`), then Dead with `reason`.
    pub fn close(&mut self, now: Instant, reason: EndReason) {
        if self.phase == Phase::Dead {
            return;
        }
        self.close_link(now, reason, format!("closed locally: {reason}"));
        self.pump(now);
    }

    /// The PPTP call is gone: Dead at once, no goodbye possible. Unless
    /// the session was already ending for a reason of its own, `Closed`
    /// says [`EndReason::ControlClosed`]; the daemon knows the precise
    /// reason (Call-Clear-Request, Stop-Control-Connection, TCP closed,
    /// shutdown) and records that one.
    pub fn lower_down(&mut self, now: Instant) {
        if self.phase == Phase::Dead {
            return;
        }
        self.lcp.down(now);
        self.pump(now);
        self.finish(EndReason::ControlClosed, "the lower layer went down".into());
    }

    /// A PPP frame of this call arrived: `protocol` and the payload after it.
    pub fn handle_frame(&mut self, now: Instant, protocol: u16, payload: &[u8]) {
        use ppp_proto::*;
        let phase = self.phase;
        let auth_protocol = self.auth.as_ref().map(|a| a.ppp_protocol());
        match (protocol, phase) {
            (_, Phase::Dead) => {}
            (LCP, _) => {
                let before = self.lcp.state();
                self.lcp.handle_packet(now, payload);
                // RFC 1661 section 5.5: Terminate-Request while Opened.
                if before == State::Opened
                    && self.lcp.state() == State::Stopping
                    && payload.first() == Some(&u8::from(crate::wire::cp::Code::TerminateRequest))
                {
                    let detail = self
                        .lcp
                        .close_reason()
                        .unwrap_or("the peer terminated LCP")
                        .to_owned();
                    self.end.get_or_insert((EndReason::PeerTerminate, detail));
                }
            }
            (p, Phase::Authenticate | Phase::Network) if Some(p) == auth_protocol => {
                if let Some(engine) = self.auth.as_mut() {
                    engine.handle_packet(now, payload);
                }
            }
            (IPCP, Phase::Network) => {
                self.ipcp_heard = true;
                if self.ipcp_started {
                    self.ipcp.handle_packet(now, payload);
                } else if payload.first() == Some(&1) {
                    // A Configure-Request before the daemon assigned an
                    // address: judged once it has.
                    self.held_ipcp = Some(payload.to_vec());
                }
            }
            (CCP, Phase::Network) if self.ccp.is_some() => {
                if let Some(ccp) = self.ccp.as_mut() {
                    ccp.handle_packet(now, payload);
                }
            }
            (IPV4 | COMPRESSED, _) => {
                tracing::trace!("session: ignoring a data frame of protocol {protocol:#06x}");
            }
            (PAP | CHAP, _) => {
                tracing::debug!(
                    "session: discarding {protocol:#06x}: no such authentication running"
                );
            }
            (_, Phase::Network) => {
                tracing::debug!("session: Protocol-Reject of {protocol:#06x}");
                self.lcp.send_protocol_reject(protocol, payload);
            }
            _ => {
                tracing::debug!("session: discarding {protocol:#06x} in phase {phase:?}");
            }
        }
        self.pump(now);
    }

    /// Some deadline of [`Self::poll_timeout`] may have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Dead {
            return;
        }
        let before = self.lcp.state();
        self.lcp.handle_timeout(now);
        if before == State::Opened && self.lcp.state() == State::Closing {
            // Only the keepalive closes an Opened LCP on a timer.
            let detail = self
                .lcp
                .close_reason()
                .unwrap_or("LCP Echo-Requests unanswered")
                .to_owned();
            self.end.get_or_insert((EndReason::KeepaliveLost, detail));
        }
        if let Some(engine) = self.auth.as_mut()
            && engine.poll_timeout().is_some_and(|t| t <= now)
        {
            engine.handle_timeout(now);
        }
        self.ipcp.handle_timeout(now);
        if let Some(ccp) = self.ccp.as_mut() {
            ccp.handle_timeout(now);
        }
        if self.converge_by.is_some_and(|t| t <= now) && self.phase != Phase::Dead {
            self.converge_by = None;
            let limit = self.convergence_limit().as_secs();
            self.close_link(
                now,
                EndReason::NegotiationFailed,
                format!("negotiation did not converge within {limit} s"),
            );
        }
        self.pump(now);
    }

    /// The daemon's answer to [`SessionEvent::Verify`].
    pub fn handle_verdict(&mut self, now: Instant, verdict: Verdict) {
        if let Some(engine) = self.auth.as_mut() {
            engine.handle_verdict(now, verdict);
        }
        self.pump(now);
    }

    /// Server: the daemon's answer to [`SessionEvent::AddressRequest`];
    /// `None` when no address is available (the link is closed).
    pub fn handle_address(&mut self, now: Instant, address: Option<Ipv4Addr>) {
        if self.role() != Role::Server || self.phase == Phase::Dead {
            return;
        }
        let refused = address.and_then(|a| {
            let (user, policy) = self.authenticated.as_ref()?;
            (!policy.allows(a)).then(|| (a, user.clone()))
        });
        if let Some((a, user)) = refused {
            self.close_link(
                now,
                EndReason::NoAddress,
                format!(
                    "address {a} is not allowed for user {}",
                    Escaped::new(&user)
                ),
            );
            self.pump(now);
            return;
        }
        match address {
            Some(a) => {
                self.address = Address::Assigned(a);
                self.ipcp.proto_mut().set_assigned_address(a);
                if self.phase == Phase::Network && !self.ipcp_started {
                    self.start_ipcp(now);
                }
            }
            None => self.close_link(
                now,
                EndReason::NoAddress,
                "no address available for the client".into(),
            ),
        }
        self.pump(now);
    }

    /// Our MPPE decryptor lost synchronisation (stateful mode): send a CCP
    /// Reset-Request.
    /// The data path lost the peer's stateless MPPE key chain beyond what
    /// it follows and sees no frame in the peer's GRE sequence: draws one
    /// with an LCP Echo-Request (rate-limited, see [`Lcp::probe`]).
    pub fn send_echo_probe(&mut self, now: Instant) {
        self.lcp.probe(now);
        self.pump(now);
    }

    pub fn send_ccp_reset_request(&mut self, now: Instant) {
        if let Some(ccp) = self.ccp.as_mut() {
            ccp.send_reset_request();
        }
        self.pump(now);
    }

    /// The next frame to send: PPP protocol and payload.
    pub fn poll_transmit(&mut self) -> Option<(u16, Vec<u8>)> {
        self.transmit.pop_front()
    }

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Dead {
            return None;
        }
        [
            self.lcp.poll_timeout(),
            self.auth.as_ref().and_then(|a| a.poll_timeout()),
            self.ipcp.poll_timeout(),
            self.ccp.as_ref().and_then(Ccp::poll_timeout),
            self.converge_by,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Closes LCP (Terminate-Request with `detail`); the session ends
    /// with `reason` unless it was already ending for another one.
    fn close_link(&mut self, now: Instant, reason: EndReason, detail: String) {
        tracing::info!("session: closing the link ({reason}): {detail}");
        self.end.get_or_insert((reason, detail.clone()));
        self.lcp.close(now, detail.clone());
        if matches!(self.lcp.state(), State::Initial | State::Closed) {
            // Nothing to terminate (LCP never got going): Dead now.
            self.pump(now);
            self.finish(reason, detail);
        }
    }

    /// Dead: `Closed` with the reason recorded first, else this one.
    fn finish(&mut self, reason: EndReason, detail: String) {
        if self.phase == Phase::Dead {
            return;
        }
        let (reason, detail) = self.end.take().unwrap_or((reason, detail));
        tracing::info!("session: link down ({reason}): {detail}");
        self.phase = Phase::Dead;
        self.finished = true;
        self.auth = None;
        self.network = None;
        self.events
            .push_back(SessionEvent::Closed { reason, detail });
    }

    fn start_ipcp(&mut self, now: Instant) {
        self.ipcp_started = true;
        self.ipcp.open(now);
        self.ipcp.up(now);
        if let Some(held) = self.held_ipcp.take() {
            self.ipcp.handle_packet(now, &held);
        }
    }

    fn enter_network(&mut self, now: Instant) {
        self.phase = Phase::Network;
        if let Some(policy) = self.settings.ccp.clone() {
            let material = self.accepted.as_ref().and_then(|a| a.mppe.as_ref());
            if material.is_some() {
                let ccp = self
                    .ccp
                    .get_or_insert_with(|| Ccp::new(policy.clone(), self.settings.fsm.clone()));
                ccp.open(now);
                ccp.up(now);
            } else if policy.policy == MppePolicy::Require {
                let method = self.lcp.link().and_then(|l| l.auth);
                self.close_link(
                    now,
                    EndReason::NegotiationFailed,
                    format!("MPPE is required but {method:?} authentication yields no MPPE keys"),
                );
                return;
            }
        }
        match (self.role(), self.address) {
            (Role::Server, Address::Assigned(_)) | (Role::Client, _) => self.start_ipcp(now),
            (Role::Server, _) => {}
        }
    }

    fn on_lcp(&mut self, now: Instant, event: LcpEvent) {
        match event {
            LcpEvent::Up(link) => {
                self.events.push_back(SessionEvent::LinkUp(link.clone()));
                if self.phase != Phase::Establish {
                    return;
                }
                match link.auth {
                    Some(method) => {
                        self.phase = Phase::Authenticate;
                        let mut engine = self.factory.engine(method);
                        // Earlier LCP negotiations' attempts still count.
                        engine.resume_attempts(self.auth_attempts);
                        engine.start(now);
                        self.auth = Some(engine);
                    }
                    None if self.role() == Role::Server => self.close_link(
                        now,
                        EndReason::NegotiationFailed,
                        "no authentication protocol was negotiated".into(),
                    ),
                    None => self.enter_network(now),
                }
            }
            LcpEvent::Down => {
                // LCP renegotiates or terminates: the NCPs and the
                // authentication are over.
                self.auth = None;
                self.accepted = None;
                self.ipcp.down(now);
                self.ipcp_heard = false;
                if let Some(ccp) = self.ccp.as_mut() {
                    ccp.down(now);
                }
                if matches!(self.phase, Phase::Authenticate | Phase::Network) {
                    self.phase = Phase::Establish;
                }
            }
            LcpEvent::Finished => {
                // Whatever did not record a reason of its own: LCP could
                // not agree (Max-Configure, Max-Failure, looped back, no
                // authentication method in common, Code-Reject).
                let detail = self.lcp.close_reason().unwrap_or("LCP finished").to_owned();
                self.finish(EndReason::NegotiationFailed, detail);
            }
            LcpEvent::ProtocolRejected(protocol) => match protocol {
                ppp_proto::IPCP => self.ipcp.protocol_rejected_by_peer(now),
                ppp_proto::CCP => {
                    if let Some(ccp) = self.ccp.as_mut() {
                        ccp.protocol_rejected_by_peer(now);
                    }
                }
                ppp_proto::PAP | ppp_proto::CHAP if self.phase == Phase::Authenticate => self
                    .close_link(
                        now,
                        EndReason::NegotiationFailed,
                        "the peer rejected the authentication protocol".into(),
                    ),
                other => tracing::debug!("session: the peer rejected protocol {other:#06x}"),
            },
        }
    }

    fn on_auth(&mut self, now: Instant, event: AuthEvent) {
        match event {
            AuthEvent::Verify(credentials) => {
                self.auth_attempts = self.auth_attempts.saturating_add(1);
                self.events.push_back(SessionEvent::Verify(credentials))
            }
            AuthEvent::Succeeded(accepted) => {
                if self.phase != Phase::Authenticate {
                    return;
                }
                if self.role() == Role::Server {
                    // The accepted Response does not count as a failure.
                    self.auth_attempts = self.auth_attempts.saturating_sub(1);
                    if !self.accept_user(now, &accepted) {
                        return;
                    }
                }
                self.events
                    .push_back(SessionEvent::Authenticated(accepted.clone()));
                if self.role() == Role::Server && !matches!(self.address, Address::Assigned(_)) {
                    self.address = Address::Requested;
                    self.events.push_back(SessionEvent::AddressRequest {
                        user: accepted.user.clone(),
                        static_address: accepted.static_address,
                        addresses: accepted.addresses.clone(),
                    });
                }
                self.accepted = Some(accepted);
                self.enter_network(now);
            }
            AuthEvent::Failed { reason } => self.close_link(
                now,
                EndReason::AuthFailed,
                format!("authentication failed: {reason}"),
            ),
        }
    }

    /// Server, authentication succeeded: the session's user is this one
    /// from now on. `false` (and the link closing) when the session
    /// already belongs to another user, or when the address it holds is
    /// not allowed for the user any more (the secrets file was reloaded).
    fn accept_user(&mut self, now: Instant, accepted: &Accepted) -> bool {
        if let Some((user, _)) = &self.authenticated
            && *user != accepted.user
        {
            let detail = format!(
                "re-authenticated as {} in a session of {}",
                Escaped::new(&accepted.user),
                Escaped::new(user)
            );
            tracing::warn!("session: {detail}");
            self.close_link(now, EndReason::AuthFailed, detail);
            return false;
        }
        self.authenticated = Some((accepted.user.clone(), accepted.addresses.clone()));
        if let Address::Assigned(a) = self.address
            && !accepted.addresses.allows(a)
        {
            self.close_link(
                now,
                EndReason::NoAddress,
                format!(
                    "address {a} is no longer allowed for user {}",
                    Escaped::new(&accepted.user)
                ),
            );
            return false;
        }
        true
    }

    fn on_ipcp(&mut self, now: Instant, event: FsmEvent) {
        match event {
            FsmEvent::Up if self.ipcp.proto().params().is_none() => self.close_link(
                now,
                EndReason::NegotiationFailed,
                "IPCP opened without an address".into(),
            ),
            FsmEvent::Up => {
                // pppd ipcp_up: the address in use must be one the user
                // may have (IPCP only ever Acks the assigned one).
                let peer = self.ipcp.proto().params().map(|p| p.peer_address);
                if let (Some(peer), Some((user, policy))) = (peer, &self.authenticated)
                    && !policy.allows(peer)
                {
                    let detail = format!(
                        "IPCP: address {peer} is not allowed for user {}",
                        Escaped::new(user)
                    );
                    self.close_link(now, EndReason::NoAddress, detail);
                }
            }
            FsmEvent::Finished if self.phase == Phase::Network => {
                let reason = self
                    .ipcp
                    .close_reason()
                    .unwrap_or("IPCP finished")
                    .to_owned();
                self.close_link(
                    now,
                    EndReason::NegotiationFailed,
                    format!("IPCP is down: {reason}"),
                );
            }
            _ => {}
        }
    }

    fn on_ccp(&mut self, now: Instant, event: CcpEvent) {
        match event {
            CcpEvent::Up(_) => {
                self.mppe_used = true;
                if !self.ipcp_heard {
                    // A peer silent on IPCP until now held its NCPs until
                    // CCP opened (pppd with require-mppe) and discarded our
                    // Configure-Request: send it again instead of waiting
                    // for the restart timer.
                    self.ipcp.retransmit_now(now);
                }
            }
            CcpEvent::Down => {}
            CcpEvent::Finished => {
                if self.phase != Phase::Network {
                    return;
                }
                let reason = self
                    .ccp
                    .as_ref()
                    .and_then(Ccp::close_reason)
                    .unwrap_or("CCP finished")
                    .to_owned();
                let required = self
                    .settings
                    .ccp
                    .as_ref()
                    .is_some_and(|p| p.policy == MppePolicy::Require);
                if required {
                    self.close_link(
                        now,
                        EndReason::NegotiationFailed,
                        format!("MPPE is required: {reason}"),
                    );
                } else if self.mppe_used {
                    self.close_link(
                        now,
                        EndReason::NegotiationFailed,
                        format!("MPPE was in use and CCP stopped: {reason}"),
                    );
                } else {
                    tracing::info!("session: going on without MPPE: {reason}");
                }
            }
            CcpEvent::ResetRequest => self.events.push_back(SessionEvent::CcpResetRequest),
            CcpEvent::ResetAck => {}
        }
    }

    /// What the network looks like now, if it is up.
    fn current_network(&self) -> Option<NetworkParams> {
        if self.phase != Phase::Network || self.ipcp.state() != State::Opened {
            return None;
        }
        let ip = self.ipcp.proto().params()?;
        let link = self.lcp.link()?;
        let mppe = match &self.ccp {
            None => None,
            Some(ccp) => match (ccp.params(), ccp.state()) {
                (Some(params), _) => Some(params),
                (None, State::Closed | State::Stopped) if !self.mppe_used => None,
                _ => return None,
            },
        };
        let accepted = self.accepted.as_ref();
        Some(NetworkParams {
            local_address: ip.local_address,
            peer_address: ip.peer_address,
            dns: ip.dns,
            nbns: ip.nbns,
            mppe,
            mppe_material: mppe.and_then(|_| accepted.and_then(|a| a.mppe.clone())),
            user: accepted.map(|a| a.user.clone()),
            auth: link.auth,
            link,
        })
    }

    /// Drains every part's output, reacting to events, until quiet.
    fn pump(&mut self, now: Instant) {
        for _ in 0..64 {
            let mut progress = false;
            while let Some(p) = self.lcp.poll_transmit() {
                self.transmit.push_back((ppp_proto::LCP, p));
            }
            while let Some(event) = self.lcp.poll_event() {
                progress = true;
                self.on_lcp(now, event);
            }
            if let Some(engine) = self.auth.as_mut() {
                let protocol = engine.ppp_protocol();
                while let Some(p) = engine.poll_transmit() {
                    self.transmit.push_back((protocol, p));
                }
                let events: Vec<_> = std::iter::from_fn(|| engine.poll_event()).collect();
                for event in events {
                    progress = true;
                    self.on_auth(now, event);
                }
            }
            while let Some(p) = self.ipcp.poll_transmit() {
                self.transmit.push_back((ppp_proto::IPCP, p));
            }
            while let Some(event) = self.ipcp.poll_event() {
                progress = true;
                self.on_ipcp(now, event);
            }
            if let Some(ccp) = self.ccp.as_mut() {
                while let Some(p) = ccp.poll_transmit() {
                    self.transmit.push_back((ppp_proto::CCP, p));
                }
                let events: Vec<_> = std::iter::from_fn(|| ccp.poll_event()).collect();
                for event in events {
                    progress = true;
                    self.on_ccp(now, event);
                }
            }
            if self.phase != Phase::Dead
                && matches!(self.lcp.state(), State::Closing | State::Stopping)
            {
                self.phase = Phase::Terminate;
            }
            let current = self.current_network();
            if current != self.network && self.phase != Phase::Dead {
                if self.network.is_some() {
                    self.events.push_back(SessionEvent::NetworkDown);
                }
                if let Some(params) = &current {
                    self.events
                        .push_back(SessionEvent::NetworkOpened(params.clone()));
                }
                self.network = current;
            }
            match (&self.network, self.phase) {
                (_, Phase::Dead | Phase::Terminate) | (Some(_), _) => self.converge_by = None,
                (None, _) => {
                    self.converge_by
                        .get_or_insert(now + self.convergence_limit());
                }
            }
            if !progress {
                return;
            }
        }
        tracing::warn!("session: events still pending after 64 rounds");
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
