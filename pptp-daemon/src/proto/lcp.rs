//! LCP, the Link Control Protocol (RFC 1661 sections 5 and 6), on the
//! generic automaton of [`super::fsm`], with a server policy (the daemon)
//! and a client policy (our own client, behaving like a Windows client),
//! plus the Echo-Request keepalive.
//!
//! Policy, for both ends unless noted:
//! - Maximum-Receive-Unit: we request ours (default 1400, from
//!   `ppp.mru`); the peer's below 576 (the IPv4 datagram every host must
//!   accept) is Nak'ed up to 576, above what we can carry (`max_peer_mru`)
//!   Nak'ed down to it. A Nak of ours between 576 and ours is adopted.
//! - Authentication-Protocol (server): we request the configured methods in
//!   order of preference (MS-CHAPv2 first). On a Nak we move to the method
//!   it suggests if we allow it and have not tried it, else to the next
//!   untried method of our list; when none is left, or the peer rejects
//!   authentication, LCP closes with the reason. The client's own
//!   Authentication-Protocol (asking us to authenticate to it) is rejected.
//!   (Client): the server's method is Acked if we allow it, else Nak'ed
//!   with our preferred one.
//! - Magic-Number: ours is random and non-zero. The peer's equal to ours
//!   (or zero) is Nak'ed with a new random number; equal again
//!   `loopback_limit` times, the link is declared looped back and closed.
//! - PFC, ACFC and ACCM are accepted (ACCM means nothing on PPTP's
//!   synchronous link but clients send it); Quality-Protocol, Callback,
//!   MRRU, every unknown and every malformed option are rejected.
//! - Echo-Request: answered (with our Magic-Number) once Opened, by the
//!   automaton's ser action. With an interval configured we send our own
//!   every interval once Opened; after `echo_failures` unanswered ones in a
//!   row LCP closes ("peer not responding"). An Echo-Request or Echo-Reply
//!   from the peer (not our own looped back) proves it alive.
//! - Protocol-Reject received: catastrophic if it names LCP, else reported
//!   as [`LcpEvent::ProtocolRejected`] for the session to stop that
//!   protocol. Identification and Time-Remaining (RFC 1570) are accepted
//!   and dropped; Discard-Request is dropped; unknown codes get Code-Reject.

use std::{
    collections::VecDeque,
    fmt,
    time::{Duration, Instant},
};

use pptp_common::consts::ppp_proto;

use super::fsm::{CodeOutcome, Fsm, FsmConfig, FsmEvent, Negotiator, State, Verdict};
use crate::{
    auth::AuthMethod,
    mppe::Role,
    wire::{
        cp::{Code, MagicBody, ProtocolReject, RawOption, TimeRemaining},
        lcp::LcpOption,
    },
};

/// The smallest MRU we accept from a peer: every IPv4 host must take
/// 576-byte datagrams (RFC 791), so a link below it would fragment.
pub const MIN_MRU: u16 = 576;

/// The default MRU of RFC 1661 section 6.1, when the option is absent.
pub const DEFAULT_MRU: u16 = 1500;

/// Source of random Magic-Numbers; tests pass a deterministic one.
pub type MagicSource = Box<dyn FnMut() -> u32 + Send>;

/// A deterministic generator (xorshift64*), for tests and for callers that
/// seed it from the operating system once. Magic-Numbers need uniqueness,
/// not secrecy.
pub fn magic_source(seed: u64) -> MagicSource {
    let mut state = seed | 1;
    Box::new(move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    })
}

/// What LCP asks for and accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LcpPolicy {
    /// Server: we require authentication. Client: we authenticate if asked.
    pub role: Role,
    /// Our MRU, requested unless it is the default 1500.
    pub mru: u16,
    /// The largest MRU we let the peer announce (what we can carry).
    pub max_peer_mru: u16,
    /// Server: methods to request, in order of preference. Client: methods
    /// we accept, in order of preference.
    pub auth_methods: Vec<AuthMethod>,
    /// Request Protocol-Field-Compression and Address-and-Control-Field-Compression.
    pub pfc: bool,
    pub acfc: bool,
    /// Request Callback operation 6 (Callback Control Protocol), as
    /// Windows clients do; servers reject it.
    pub callback: bool,
    /// LCP Echo-Request interval; `None` disables our keepalive.
    pub echo_interval: Option<Duration>,
    /// Unanswered Echo-Requests before the link is declared dead.
    pub echo_failures: u32,
    /// How many times the peer may present our own Magic-Number before the
    /// link is declared looped back.
    pub loopback_limit: u32,
}

impl LcpPolicy {
    /// The server's default policy (the configuration's defaults): MRU
    /// 1400, MS-CHAPv2, MS-CHAP and CHAP-MD5 in that order, PFC, ACFC, an
    /// Echo-Request every 30 seconds, down after 4 unanswered.
    pub fn server() -> Self {
        LcpPolicy {
            role: Role::Server,
            mru: 1400,
            max_peer_mru: 1400,
            auth_methods: vec![
                AuthMethod::MsChapV2,
                AuthMethod::MsChapV1,
                AuthMethod::ChapMd5,
            ],
            pfc: true,
            acfc: true,
            callback: false,
            echo_interval: Some(Duration::from_secs(30)),
            echo_failures: 4,
            loopback_limit: 3,
        }
    }

    /// Our client's policy, shaped like a Windows client: MRU 1400, PFC,
    /// ACFC, MS-CHAPv2 preferred, no keepalive of its own.
    pub fn client() -> Self {
        LcpPolicy {
            role: Role::Client,
            mru: 1400,
            max_peer_mru: DEFAULT_MRU,
            auth_methods: vec![AuthMethod::MsChapV2, AuthMethod::MsChapV1],
            pfc: true,
            acfc: true,
            callback: false,
            echo_interval: None,
            echo_failures: 4,
            loopback_limit: 3,
        }
    }
}

/// What LCP agreed, valid once it is Opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkParams {
    /// The largest packet the peer may send us (our MRU as Acked, else 1500).
    pub mru: u16,
    /// The largest packet we may send (the peer's MRU as we Acked it, else 1500).
    pub peer_mru: u16,
    /// We may send compressed protocol fields (we Acked the peer's PFC).
    pub send_pfc: bool,
    /// We may omit address and control fields (we Acked the peer's ACFC).
    pub send_acfc: bool,
    /// The peer's ACCM if it sent one (meaningless on PPTP, reported as seen).
    pub peer_accm: Option<u32>,
    /// Server: the method the client must authenticate with. Client: the
    /// method the server asked us to use. `None`: no authentication.
    pub auth: Option<AuthMethod>,
    /// Our Magic-Number (0: none negotiated).
    pub magic: u32,
    /// The peer's Magic-Number (0: none).
    pub peer_magic: u32,
}

/// What LCP reports to the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LcpEvent {
    /// LCP is Opened (tlu).
    Up(LinkParams),
    /// LCP left the Opened state (tld).
    Down,
    /// LCP is finished (tlf): the link is of no more use. The reason is in
    /// [`Lcp::close_reason`].
    Finished,
    /// The peer rejected one of our protocols with a Protocol-Reject.
    ProtocolRejected(u16),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Ours {
    mru: Option<u16>,
    auth: Option<AuthMethod>,
    magic: Option<u32>,
    pfc: bool,
    acfc: bool,
    callback: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Peer {
    mru: Option<u16>,
    accm: Option<u32>,
    auth: Option<AuthMethod>,
    magic: Option<u32>,
    pfc: bool,
    acfc: bool,
}

/// The LCP side of [`Negotiator`]: options and policy.
pub struct LcpOptions {
    policy: LcpPolicy,
    random: MagicSource,
    ours: Ours,
    acked_ours: Option<Ours>,
    peer: Peer,
    tried_auth: Vec<AuthMethod>,
    loops: u32,
    loop_suspected: bool,
    /// The peer showed signs of life since the keepalive last looked.
    alive: bool,
    /// The peer Code-Rejected Echo-Request: no keepalive.
    echo_rejected: bool,
    events: VecDeque<LcpEvent>,
}

impl fmt::Debug for LcpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LcpOptions")
            .field("policy", &self.policy)
            .field("ours", &self.ours)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl LcpOptions {
    /// Our options are drawn by [`Negotiator::reset`] when the first
    /// Configure-Request goes out.
    fn new(policy: LcpPolicy, random: MagicSource) -> Self {
        LcpOptions {
            policy,
            random,
            ours: Ours::default(),
            acked_ours: None,
            peer: Peer::default(),
            tried_auth: Vec::new(),
            loops: 0,
            loop_suspected: false,
            alive: false,
            echo_rejected: false,
            events: VecDeque::new(),
        }
    }

    /// A random non-zero Magic-Number different from `avoid`.
    fn new_magic(&mut self, avoid: &[u32]) -> u32 {
        for _ in 0..16 {
            let m = (self.random)();
            if m != 0 && !avoid.contains(&m) {
                return m;
            }
        }
        // A broken source: any constant will do that avoids the others.
        (1..).find(|m| !avoid.contains(m)).unwrap_or(1)
    }

    fn our_magic(&self) -> u32 {
        self.ours.magic.unwrap_or(0)
    }

    /// The agreed parameters, once both requests were Acked.
    pub fn link(&self) -> Option<LinkParams> {
        let ours = self.acked_ours.as_ref()?;
        Some(LinkParams {
            mru: ours.mru.unwrap_or(DEFAULT_MRU),
            peer_mru: self.peer.mru.unwrap_or(DEFAULT_MRU),
            send_pfc: self.peer.pfc,
            send_acfc: self.peer.acfc,
            peer_accm: self.peer.accm,
            auth: match self.policy.role {
                Role::Server => ours.auth,
                Role::Client => self.peer.auth,
            },
            magic: ours.magic.unwrap_or(0),
            peer_magic: self.peer.magic.unwrap_or(0),
        })
    }

    fn judge_option(&mut self, option: LcpOption<'_>) -> Result<Verdict, String> {
        Ok(match option {
            LcpOption::MaximumReceiveUnit(mru) if mru < MIN_MRU => {
                Verdict::Nak(MIN_MRU.to_be_bytes().to_vec())
            }
            LcpOption::MaximumReceiveUnit(mru) if mru > self.policy.max_peer_mru => {
                Verdict::Nak(self.policy.max_peer_mru.to_be_bytes().to_vec())
            }
            LcpOption::MaximumReceiveUnit(_) => Verdict::Ack,
            LcpOption::AsyncControlCharacterMap(_) => Verdict::Ack,
            LcpOption::AuthenticationProtocol { .. } => match self.policy.role {
                Role::Server => Verdict::Reject,
                Role::Client => match option.auth_method() {
                    Some(m) if self.policy.auth_methods.contains(&m) => Verdict::Ack,
                    _ => match self.policy.auth_methods.first() {
                        Some(&best) => Verdict::Nak(LcpOption::authentication(best).data_vec()),
                        None => Verdict::Reject,
                    },
                },
            },
            LcpOption::MagicNumber(magic) => {
                let ours = self.our_magic();
                if magic != 0 && magic == ours {
                    self.loops += 1;
                    self.loop_suspected = true;
                    if self.loops >= self.policy.loopback_limit {
                        return Err(format!(
                            "the link is looped back: the peer presented our own Magic-Number {} times",
                            self.loops
                        ));
                    }
                }
                if magic == 0 || magic == ours {
                    Verdict::Nak(self.new_magic(&[ours, magic]).to_be_bytes().to_vec())
                } else {
                    Verdict::Ack
                }
            }
            LcpOption::ProtocolFieldCompression | LcpOption::AddressAndControlFieldCompression => {
                Verdict::Ack
            }
            LcpOption::QualityProtocol { .. }
            | LcpOption::Callback { .. }
            | LcpOption::MultilinkMrru(_)
            | LcpOption::Unknown { .. } => Verdict::Reject,
        })
    }

    /// Server: the next authentication method after a Nak.
    fn next_auth(&mut self, suggested: Option<AuthMethod>) -> Result<AuthMethod, String> {
        if let Some(current) = self.ours.auth
            && !self.tried_auth.contains(&current)
        {
            self.tried_auth.push(current);
        }
        let allowed = &self.policy.auth_methods;
        if let Some(s) = suggested
            && allowed.contains(&s)
            && !self.tried_auth.contains(&s)
        {
            return Ok(s);
        }
        allowed
            .iter()
            .copied()
            .find(|m| !self.tried_auth.contains(m))
            .ok_or_else(|| {
                format!(
                    "no authentication method in common: the peer refused {:?}{}",
                    self.tried_auth,
                    match suggested {
                        Some(s) if !allowed.contains(&s) =>
                            format!(" and asked for {s:?}, which is not enabled"),
                        Some(s) => format!(" and asked for {s:?} again"),
                        None => " and suggested none we know".into(),
                    }
                )
            })
    }
}

impl Negotiator for LcpOptions {
    fn name(&self) -> &'static str {
        "LCP"
    }

    fn reset(&mut self) {
        let magic = self.new_magic(&[]);
        self.ours = Ours {
            mru: (self.policy.mru != DEFAULT_MRU).then_some(self.policy.mru),
            auth: match self.policy.role {
                Role::Server => self.policy.auth_methods.first().copied(),
                Role::Client => None,
            },
            magic: Some(magic),
            pfc: self.policy.pfc,
            acfc: self.policy.acfc,
            callback: self.policy.callback,
        };
        self.acked_ours = None;
        self.peer = Peer::default();
        self.tried_auth.clear();
        self.loops = 0;
        self.loop_suspected = false;
    }

    fn write_request(&mut self, out: &mut Vec<u8>) {
        let ours = &self.ours;
        let mut options = Vec::new();
        if let Some(mru) = ours.mru {
            options.push(LcpOption::MaximumReceiveUnit(mru));
        }
        if let Some(method) = ours.auth {
            options.push(LcpOption::authentication(method));
        }
        if let Some(magic) = ours.magic {
            options.push(LcpOption::MagicNumber(magic));
        }
        if ours.pfc {
            options.push(LcpOption::ProtocolFieldCompression);
        }
        if ours.acfc {
            options.push(LcpOption::AddressAndControlFieldCompression);
        }
        if ours.callback {
            options.push(LcpOption::Callback {
                operation: 6,
                message: &[],
            });
        }
        for option in options {
            if let Err(e) = option.push_to(out) {
                tracing::warn!("LCP: cannot emit {option:?}: {e}");
            }
        }
    }

    fn judge(
        &mut self,
        option: RawOption<'_>,
        _reject_if_disagree: bool,
    ) -> Result<Verdict, String> {
        match LcpOption::parse(option) {
            Ok(parsed) => self.judge_option(parsed),
            Err(e) => {
                tracing::debug!("LCP: rejecting malformed option {}: {e}", option.kind);
                Ok(Verdict::Reject)
            }
        }
    }

    fn peer_request_acked(&mut self, request: &[RawOption<'_>]) {
        let mut peer = Peer::default();
        for option in request.iter().filter_map(|o| LcpOption::parse(*o).ok()) {
            match option {
                LcpOption::MaximumReceiveUnit(mru) => peer.mru = Some(mru),
                LcpOption::AsyncControlCharacterMap(accm) => peer.accm = Some(accm),
                LcpOption::AuthenticationProtocol { .. } => peer.auth = option.auth_method(),
                LcpOption::MagicNumber(magic) => peer.magic = Some(magic),
                LcpOption::ProtocolFieldCompression => peer.pfc = true,
                LcpOption::AddressAndControlFieldCompression => peer.acfc = true,
                _ => {}
            }
        }
        self.peer = peer;
    }

    fn request_acked(&mut self) {
        self.acked_ours = Some(self.ours.clone());
        self.loops = 0;
        self.loop_suspected = false;
    }

    fn handle_nak(&mut self, options: &[RawOption<'_>]) -> Result<(), String> {
        for option in options.iter().filter_map(|o| LcpOption::parse(*o).ok()) {
            match option {
                LcpOption::MaximumReceiveUnit(mru)
                    if (MIN_MRU..=self.policy.mru).contains(&mru) =>
                {
                    self.ours.mru = Some(mru);
                }
                LcpOption::AuthenticationProtocol { .. } if self.ours.auth.is_some() => {
                    let next = self.next_auth(option.auth_method())?;
                    tracing::debug!(
                        "LCP: the peer Nak'ed {:?}; offering {next:?}",
                        self.ours.auth
                    );
                    self.ours.auth = Some(next);
                }
                LcpOption::MagicNumber(nak) if self.ours.magic.is_some() => {
                    let old = self.our_magic();
                    self.ours.magic = Some(self.new_magic(&[old, nak]));
                }
                LcpOption::ProtocolFieldCompression => self.ours.pfc = false,
                LcpOption::AddressAndControlFieldCompression => self.ours.acfc = false,
                LcpOption::Callback { .. } => self.ours.callback = false,
                // Options we did not ask for: we do not add them.
                _ => {}
            }
        }
        Ok(())
    }

    fn handle_reject(&mut self, options: &[RawOption<'_>]) -> Result<(), String> {
        for option in options.iter().filter_map(|o| LcpOption::parse(*o).ok()) {
            match option {
                LcpOption::MaximumReceiveUnit(_) => self.ours.mru = None,
                LcpOption::AuthenticationProtocol { .. } => {
                    return Err(if self.loop_suspected {
                        "the link is looped back: our own Configure-Request came back".into()
                    } else {
                        "the peer refuses to authenticate (Configure-Reject of Authentication-Protocol)".into()
                    });
                }
                LcpOption::MagicNumber(_) => self.ours.magic = None,
                LcpOption::ProtocolFieldCompression => self.ours.pfc = false,
                LcpOption::AddressAndControlFieldCompression => self.ours.acfc = false,
                LcpOption::Callback { .. } => self.ours.callback = false,
                _ => {}
            }
        }
        Ok(())
    }

    fn has_echo(&self) -> bool {
        true
    }

    fn received_echo(&mut self, code: Code, _identifier: u8, data: &[u8]) {
        let Ok(body) = MagicBody::parse(data) else {
            return;
        };
        let ours = self.our_magic();
        match code {
            Code::EchoReply | Code::EchoRequest if ours != 0 && body.magic_number == ours => {
                tracing::debug!("LCP: our own {code:?} came back (looped link?)");
            }
            Code::EchoReply | Code::EchoRequest => self.alive = true,
            _ => {}
        }
    }

    fn echo_reply(&mut self, request: &[u8]) -> Vec<u8> {
        let rest = MagicBody::parse(request)
            .map(|b| b.data)
            .unwrap_or_default();
        MagicBody {
            magic_number: self.acked_ours.as_ref().and_then(|o| o.magic).unwrap_or(0),
            data: rest,
        }
        .to_vec()
    }

    fn has_protocol_reject(&self) -> bool {
        true
    }

    fn protocol_rejected(&mut self, protocol: u16) -> bool {
        if protocol == ppp_proto::LCP {
            return true;
        }
        self.events.push_back(LcpEvent::ProtocolRejected(protocol));
        false
    }

    fn code_rejected(&mut self, code: Code) -> bool {
        if code == Code::EchoRequest {
            tracing::debug!("LCP: the peer Code-Rejected Echo-Request; keepalive off");
            self.echo_rejected = true;
        }
        matches!(u8::from(code), 1..=7)
    }

    fn handle_code(
        &mut self,
        _state: State,
        code: Code,
        _identifier: u8,
        data: &[u8],
    ) -> CodeOutcome {
        match code {
            Code::Identification => {
                let message = MagicBody::parse(data).map(|b| b.data).unwrap_or_default();
                tracing::debug!("LCP Identification: {}", String::from_utf8_lossy(message));
                CodeOutcome::Consumed
            }
            Code::TimeRemaining => {
                if let Ok(t) = TimeRemaining::parse(data) {
                    tracing::debug!("LCP Time-Remaining: {} s", t.seconds_remaining);
                }
                CodeOutcome::Consumed
            }
            _ => CodeOutcome::Unknown,
        }
    }
}

/// LCP with its keepalive: the automaton plus Echo-Request timing.
pub struct Lcp {
    fsm: Fsm<LcpOptions>,
    next_echo: Option<Instant>,
    unanswered: u32,
    /// When [`Lcp::probe`] last sent an Echo-Request.
    last_probe: Option<Instant>,
    events: VecDeque<LcpEvent>,
}

/// Least time between two Echo-Requests of [`Lcp::probe`].
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

impl fmt::Debug for Lcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lcp")
            .field("state", &self.fsm.state())
            .field("options", self.fsm.proto())
            .finish_non_exhaustive()
    }
}

impl Lcp {
    pub fn new(policy: LcpPolicy, config: FsmConfig, random: MagicSource) -> Self {
        Lcp {
            fsm: Fsm::new(LcpOptions::new(policy, random), config),
            next_echo: None,
            unanswered: 0,
            last_probe: None,
            events: VecDeque::new(),
        }
    }

    /// Sends an Echo-Request now, outside the keepalive schedule, to draw
    /// a frame from the peer (its Echo-Reply): at most one per
    /// [`PROBE_INTERVAL`], only while Opened and while the peer has not
    /// rejected Echo-Requests. The reply carries the peer's current GRE
    /// sequence number, which is how a stateless MPPE receiver that lost
    /// the peer's key chain beyond what it follows learns where the peer
    /// is (see `server::datapath`). Keepalive accounting is untouched.
    pub fn probe(&mut self, now: Instant) {
        if self.fsm.state() != State::Opened
            || self.fsm.proto().echo_rejected
            || self
                .last_probe
                .is_some_and(|t| now.saturating_duration_since(t) < PROBE_INTERVAL)
        {
            return;
        }
        self.last_probe = Some(now);
        let magic = self.fsm.proto().link().map_or(0, |l| l.magic);
        self.fsm.send_new(Code::EchoRequest, &magic.to_be_bytes());
        self.pump(now);
    }

    pub fn state(&self) -> State {
        self.fsm.state()
    }

    pub fn policy(&self) -> &LcpPolicy {
        &self.fsm.proto().policy
    }

    /// What LCP agreed, while Opened.
    pub fn link(&self) -> Option<LinkParams> {
        if self.fsm.state() == State::Opened {
            self.fsm.proto().link()
        } else {
            None
        }
    }

    pub fn close_reason(&self) -> Option<&str> {
        self.fsm.close_reason()
    }

    pub fn open(&mut self, now: Instant) {
        self.fsm.open(now);
        self.pump(now);
    }

    pub fn up(&mut self, now: Instant) {
        self.fsm.up(now);
        self.pump(now);
    }

    pub fn down(&mut self, now: Instant) {
        self.fsm.down(now);
        self.pump(now);
    }

    pub fn close(&mut self, now: Instant, reason: impl Into<String>) {
        self.fsm.close(now, reason);
        self.pump(now);
    }

    /// An LCP packet arrived (the PPP payload).
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.fsm.handle_packet(now, packet);
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.fsm.handle_timeout(now);
        if let Some(at) = self.next_echo
            && at <= now
            && self.fsm.state() == State::Opened
        {
            self.keepalive(now);
        }
        self.pump(now);
    }

    fn keepalive(&mut self, now: Instant) {
        let policy = &self.fsm.proto().policy;
        let (interval, failures) = (policy.echo_interval, policy.echo_failures);
        if std::mem::take(&mut self.fsm.proto_mut().alive) {
            self.unanswered = 0;
        }
        if self.fsm.proto().echo_rejected {
            self.next_echo = None;
            return;
        }
        if self.unanswered >= failures {
            self.next_echo = None;
            let reason = format!("peer not responding: no reply to {failures} LCP Echo-Requests");
            tracing::info!("{reason}");
            self.fsm.close(now, reason);
            return;
        }
        let magic = self.fsm.proto().link().map_or(0, |l| l.magic);
        self.fsm.send_new(Code::EchoRequest, &magic.to_be_bytes());
        self.unanswered += 1;
        self.next_echo = interval.map(|i| now + i);
    }

    /// Protocol-Reject a frame of a protocol we do not run (RFC 1661
    /// section 5.7); only while Opened, as the RFC requires.
    pub fn send_protocol_reject(&mut self, protocol: u16, information: &[u8]) {
        if self.fsm.state() != State::Opened {
            return;
        }
        let max = self
            .fsm
            .proto()
            .link()
            .map_or(usize::from(DEFAULT_MRU), |l| usize::from(l.peer_mru));
        let keep = information.len().min(max.saturating_sub(6));
        let body = ProtocolReject {
            protocol,
            information: information.get(..keep).unwrap_or_default(),
        };
        self.fsm.send_new(Code::ProtocolReject, &body.to_vec());
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.fsm.poll_transmit()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let echo = self.next_echo.filter(|_| self.fsm.state() == State::Opened);
        match (self.fsm.poll_timeout(), echo) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_event(&mut self) -> Option<LcpEvent> {
        self.events.pop_front()
    }

    /// Moves the automaton's and the options' events into ours.
    fn pump(&mut self, now: Instant) {
        if std::mem::take(&mut self.fsm.proto_mut().alive) {
            self.unanswered = 0;
        }
        while let Some(e) = self.fsm.proto_mut().events.pop_front() {
            self.events.push_back(e);
        }
        while let Some(event) = self.fsm.poll_event() {
            match event {
                FsmEvent::Up => {
                    let link = self.fsm.proto().link();
                    if let Some(link) = link {
                        self.fsm.set_max_packet_len(usize::from(link.peer_mru));
                        self.unanswered = 0;
                        self.next_echo = self.fsm.proto().policy.echo_interval.map(|i| now + i);
                        self.events.push_back(LcpEvent::Up(link));
                    }
                }
                FsmEvent::Down => {
                    self.next_echo = None;
                    self.events.push_back(LcpEvent::Down);
                }
                FsmEvent::Finished => {
                    self.next_echo = None;
                    self.events.push_back(LcpEvent::Finished);
                }
                FsmEvent::Started => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::test_support::{Sent, drain, pkt};

    fn sent(lcp: &mut Lcp) -> Vec<Sent> {
        drain(|| lcp.poll_transmit())
    }

    fn events(lcp: &mut Lcp) -> Vec<LcpEvent> {
        std::iter::from_fn(|| lcp.poll_event()).collect()
    }

    /// Magic numbers 0x11111111, 0x22222222, ...
    fn counting_magic() -> MagicSource {
        let mut n = 0u32;
        Box::new(move || {
            n += 1;
            n.wrapping_mul(0x1111_1111)
        })
    }

    fn server() -> Lcp {
        Lcp::new(LcpPolicy::server(), FsmConfig::default(), counting_magic())
    }

    fn started(mut lcp: Lcp, now: Instant) -> (Lcp, Vec<(Code, u8, Vec<u8>)>) {
        lcp.open(now);
        lcp.up(now);
        let s = sent(&mut lcp);
        (lcp, s)
    }

    /// The server's first request, written from RFC 1661 section 6: MRU
    /// 1400, CHAP with MS-CHAPv2 (RFC 2759), Magic 0x11111111, PFC, ACFC.
    const SERVER_REQUEST: [u8; 19] = [
        0x01, 0x04, 0x05, 0x78, 0x03, 0x05, 0xc2, 0x23, 0x81, 0x05, 0x06, 0x11, 0x11, 0x11, 0x11,
        0x07, 0x02, 0x08, 0x02,
    ];

    #[test]
    fn server_request_from_default_config() {
        let (_, s) = started(server(), Instant::now());
        assert_eq!(s, [(Code::ConfigureRequest, 1, SERVER_REQUEST.to_vec())]);
    }

    fn judge(lcp: &mut Lcp, options: &[u8]) -> (Code, Vec<u8>) {
        lcp.handle_packet(Instant::now(), &pkt(Code::ConfigureRequest, 0x55, options));
        let s = sent(lcp);
        let reply = s.into_iter().find(|p| p.1 == 0x55).expect("a reply");
        (reply.0, reply.2)
    }

    #[test]
    fn windows_request_minus_callback_is_acked_at_once() {
        let (mut lcp, _) = started(server(), Instant::now());
        let request = [
            0x01, 0x04, 0x05, 0x78, 0x05, 0x06, 0x4d, 0x2f, 0x11, 0x7e, 0x07, 0x02, 0x08, 0x02,
        ];
        assert_eq!(
            judge(&mut lcp, &request),
            (Code::ConfigureAck, request.to_vec())
        );
    }

    #[test]
    fn server_rejects_callback_auth_quality_mrru_unknown_and_malformed() {
        let (mut lcp, _) = started(server(), Instant::now());
        let request = [
            0x01, 0x04, 0x05, 0x78, // MRU fine
            0x03, 0x04, 0xc0, 0x23, // client asks us to PAP to it
            0x04, 0x08, 0xc0, 0x25, 0, 0, 0, 10, // LQR
            0x0d, 0x03, 0x06, // Callback
            0x11, 0x04, 0x05, 0xf4, // MRRU
            0x1f, 0x02, // unknown 31
            0x05, 0x05, 1, 2, 3, // malformed magic
        ];
        assert_eq!(
            judge(&mut lcp, &request),
            (Code::ConfigureReject, request[4..].to_vec())
        );
    }

    #[test]
    fn mru_limits() {
        let (mut lcp, _) = started(server(), Instant::now());
        assert_eq!(
            judge(&mut lcp, &[0x01, 0x04, 0x01, 0x00]),
            (Code::ConfigureNak, vec![0x01, 0x04, 0x02, 0x40])
        );
        assert_eq!(
            judge(&mut lcp, &[0x01, 0x04, 0x05, 0xdc]),
            (Code::ConfigureNak, vec![0x01, 0x04, 0x05, 0x78])
        );
        assert_eq!(
            judge(&mut lcp, &[0x01, 0x04, 0x02, 0x40]).0,
            Code::ConfigureAck
        );
    }

    #[test]
    fn zero_magic_is_naked() {
        let (mut lcp, _) = started(server(), Instant::now());
        let (code, data) = judge(&mut lcp, &[0x05, 0x06, 0, 0, 0, 0]);
        assert_eq!(code, Code::ConfigureNak);
        assert_eq!(data[..2], [0x05, 0x06]);
        assert_ne!(data[2..], [0, 0, 0, 0]);
    }

    #[test]
    fn looped_back_link_is_detected() {
        let now = Instant::now();
        let mut lcp = Lcp::new(LcpPolicy::client(), FsmConfig::default(), counting_magic());
        lcp.open(now);
        lcp.up(now);
        // Every packet comes straight back.
        for _ in 0..20 {
            let out: Vec<_> = std::iter::from_fn(|| lcp.poll_transmit()).collect();
            if out.is_empty() {
                break;
            }
            for p in out {
                lcp.handle_packet(now, &p);
            }
        }
        let reason = lcp.close_reason().unwrap();
        assert!(reason.contains("looped back"), "{reason}");
        assert_ne!(lcp.state(), State::Opened);
    }

    #[test]
    fn looped_back_server_is_diagnosed() {
        let now = Instant::now();
        let (mut lcp, first) = started(server(), now);
        let mut out: Vec<_> = first.into_iter().map(|(c, i, d)| pkt(c, i, &d)).collect();
        for _ in 0..20 {
            for p in std::mem::take(&mut out) {
                lcp.handle_packet(now, &p);
            }
            out = std::iter::from_fn(|| lcp.poll_transmit()).collect();
            if out.is_empty() {
                break;
            }
        }
        assert!(
            lcp.close_reason().unwrap().contains("looped back"),
            "{:?}",
            lcp.close_reason()
        );
    }

    fn nak_auth(lcp: &mut Lcp, id: u8, auth: &[u8]) -> Vec<u8> {
        lcp.handle_packet(Instant::now(), &pkt(Code::ConfigureNak, id, auth));
        let s = sent(lcp);
        assert_eq!(s.len(), 1, "{s:?}");
        s[0].2.clone()
    }

    fn auth_of(request: &[u8]) -> Option<AuthMethod> {
        crate::wire::cp::Options::new(request)
            .filter_map(|o| LcpOption::parse(o.unwrap()).ok())
            .find_map(|o| o.auth_method())
    }

    #[test]
    fn auth_moves_along_the_list_on_naks() {
        let (mut lcp, s) = started(server(), Instant::now());
        assert_eq!(auth_of(&s[0].2), Some(AuthMethod::MsChapV2));
        // Nak suggesting MS-CHAPv1, which we allow: use it.
        let r = nak_auth(&mut lcp, 1, &[0x03, 0x05, 0xc2, 0x23, 0x80]);
        assert_eq!(auth_of(&r), Some(AuthMethod::MsChapV1));
        // Nak suggesting PAP, not enabled: next of our list, CHAP-MD5.
        let r = nak_auth(&mut lcp, 2, &[0x03, 0x04, 0xc0, 0x23]);
        assert_eq!(auth_of(&r), Some(AuthMethod::ChapMd5));
        // Nak suggesting MS-CHAPv2 again: already refused; list exhausted.
        lcp.handle_packet(
            Instant::now(),
            &pkt(Code::ConfigureNak, 3, &[0x03, 0x05, 0xc2, 0x23, 0x81]),
        );
        let s = sent(&mut lcp);
        assert_eq!(s[0].0, Code::TerminateRequest);
        let reason = lcp.close_reason().unwrap();
        assert!(
            reason.contains("no authentication method in common"),
            "{reason}"
        );
        assert_eq!(lcp.state(), State::Closing);
    }

    #[test]
    fn auth_reject_closes() {
        let (mut lcp, _) = started(server(), Instant::now());
        lcp.handle_packet(
            Instant::now(),
            &pkt(Code::ConfigureReject, 1, &[0x03, 0x05, 0xc2, 0x23, 0x81]),
        );
        assert!(
            lcp.close_reason()
                .unwrap()
                .contains("refuses to authenticate")
        );
    }

    #[test]
    fn reject_of_optional_options_resends_without_them() {
        let (mut lcp, s) = started(server(), Instant::now());
        lcp.handle_packet(
            Instant::now(),
            &pkt(Code::ConfigureReject, s[0].1, &[0x07, 0x02, 0x08, 0x02]),
        );
        let s = sent(&mut lcp);
        assert_eq!(s[0].2, SERVER_REQUEST[..15]);
    }

    /// Drives server and client LCPs to Opened by exchanging packets.
    fn open_pair(now: Instant, server: &mut Lcp, client: &mut Lcp) {
        for l in [&mut *server, &mut *client] {
            l.open(now);
            l.up(now);
        }
        for _ in 0..20 {
            let a: Vec<_> = std::iter::from_fn(|| server.poll_transmit()).collect();
            let b: Vec<_> = std::iter::from_fn(|| client.poll_transmit()).collect();
            if a.is_empty() && b.is_empty() {
                break;
            }
            a.iter().for_each(|p| client.handle_packet(now, p));
            b.iter().for_each(|p| server.handle_packet(now, p));
        }
    }

    #[test]
    fn server_and_client_agree() {
        let now = Instant::now();
        let mut s = server();
        let mut policy = LcpPolicy::client();
        policy.callback = true;
        let mut c = Lcp::new(policy, FsmConfig::default(), magic_source(7));
        open_pair(now, &mut s, &mut c);
        let sl = s.link().expect("server opened");
        let cl = c.link().expect("client opened");
        assert_eq!(sl.auth, Some(AuthMethod::MsChapV2));
        assert_eq!(cl.auth, Some(AuthMethod::MsChapV2));
        assert_eq!(
            (sl.mru, sl.peer_mru, cl.mru, cl.peer_mru),
            (1400, 1400, 1400, 1400)
        );
        assert!(sl.send_pfc && sl.send_acfc && cl.send_pfc && cl.send_acfc);
        assert_eq!((sl.magic, sl.peer_magic), (cl.peer_magic, cl.magic));
        assert!(matches!(events(&mut s)[..], [LcpEvent::Up(_)]));
    }

    #[test]
    fn client_naks_a_method_it_does_not_allow() {
        let now = Instant::now();
        let mut s = Lcp::new(
            LcpPolicy {
                auth_methods: vec![AuthMethod::ChapMd5, AuthMethod::MsChapV2],
                ..LcpPolicy::server()
            },
            FsmConfig::default(),
            counting_magic(),
        );
        let mut c = Lcp::new(LcpPolicy::client(), FsmConfig::default(), magic_source(9));
        open_pair(now, &mut s, &mut c);
        assert_eq!(s.link().unwrap().auth, Some(AuthMethod::MsChapV2));
    }

    #[test]
    fn echo_requests_are_answered_with_our_magic() {
        let now = Instant::now();
        let mut s = server();
        let mut c = Lcp::new(LcpPolicy::client(), FsmConfig::default(), magic_source(7));
        open_pair(now, &mut s, &mut c);
        s.handle_packet(
            now,
            &pkt(Code::EchoRequest, 7, &[0xde, 0xad, 0xbe, 0xef, 1, 2]),
        );
        let magic = s.link().unwrap().magic.to_be_bytes();
        assert_eq!(
            sent(&mut s),
            [(Code::EchoReply, 7, [&magic[..], &[1, 2]].concat())]
        );
        // Discard-Request, Identification and Time-Remaining are dropped.
        s.handle_packet(now, &pkt(Code::DiscardRequest, 8, &[0, 0, 0, 0]));
        s.handle_packet(now, &pkt(Code::Identification, 9, b"\0\0\0\0MSRASV5.20"));
        s.handle_packet(
            now,
            &pkt(Code::TimeRemaining, 10, &[0, 0, 0, 0, 0, 0, 0, 60]),
        );
        assert!(sent(&mut s).is_empty());
        // Reset-Request is not an LCP code.
        s.handle_packet(now, &pkt(Code::ResetRequest, 11, &[]));
        assert_eq!(sent(&mut s)[0].0, Code::CodeReject);
    }

    #[test]
    fn keepalive_takes_the_link_down_on_silence() {
        let now = Instant::now();
        let mut s = server();
        let mut c = Lcp::new(LcpPolicy::client(), FsmConfig::default(), magic_source(7));
        open_pair(now, &mut s, &mut c);
        events(&mut s);
        let interval = Duration::from_secs(30);
        assert_eq!(s.poll_timeout(), Some(now + interval));
        // The client answers the first two Echo-Requests.
        let mut t = now;
        for _ in 0..2 {
            t = s.poll_timeout().unwrap();
            s.handle_timeout(t);
            for p in std::iter::from_fn(|| s.poll_transmit()).collect::<Vec<_>>() {
                assert_eq!(p[0], 9, "Echo-Request");
                c.handle_packet(t, &p);
            }
            for p in std::iter::from_fn(|| c.poll_transmit()).collect::<Vec<_>>() {
                s.handle_packet(t, &p);
            }
        }
        // Then silence: four more requests, then down.
        let mut echoes = 0;
        while s.state() == State::Opened {
            t = s.poll_timeout().unwrap();
            s.handle_timeout(t);
            echoes += sent(&mut s)
                .iter()
                .filter(|p| p.0 == Code::EchoRequest)
                .count();
        }
        assert_eq!(echoes, 4);
        assert_eq!(t, now + interval * 7);
        assert!(
            s.close_reason()
                .unwrap()
                .contains("no reply to 4 LCP Echo-Requests")
        );
    }

    /// A probe is an Echo-Request now, at most one a second, only once
    /// the link is open, and it leaves the keepalive schedule alone.
    #[test]
    fn probes_send_an_echo_request_at_most_once_a_second() {
        let now = Instant::now();
        let mut s = server();
        s.probe(now);
        assert!(
            std::iter::from_fn(|| s.poll_transmit()).all(|p| p[0] != 9),
            "no Echo-Request before the link is open"
        );
        let mut c = Lcp::new(LcpPolicy::client(), FsmConfig::default(), magic_source(7));
        open_pair(now, &mut s, &mut c);
        events(&mut s);
        let keepalive = s.poll_timeout();
        let echoes = |s: &mut Lcp| {
            std::iter::from_fn(|| s.poll_transmit())
                .filter(|p| p[0] == 9)
                .count()
        };
        s.probe(now);
        assert_eq!(echoes(&mut s), 1);
        s.probe(now + Duration::from_millis(999));
        assert_eq!(echoes(&mut s), 0, "within the second");
        s.probe(now + PROBE_INTERVAL);
        assert_eq!(echoes(&mut s), 1);
        assert_eq!(
            s.poll_timeout(),
            keepalive,
            "the keepalive schedule is unchanged"
        );
    }

    #[test]
    fn protocol_reject_of_an_ncp_is_reported_and_of_lcp_is_fatal() {
        let now = Instant::now();
        let mut s = server();
        let mut c = Lcp::new(LcpPolicy::client(), FsmConfig::default(), magic_source(7));
        open_pair(now, &mut s, &mut c);
        events(&mut s);
        s.handle_packet(
            now,
            &pkt(Code::ProtocolReject, 3, &[0x80, 0xfd, 1, 1, 0, 4]),
        );
        assert_eq!(events(&mut s), [LcpEvent::ProtocolRejected(0x80fd)]);
        assert_eq!(s.state(), State::Opened);
        // Too short to name a protocol: discarded, no Code-Reject.
        s.handle_packet(now, &pkt(Code::ProtocolReject, 5, &[0x80]));
        assert!(events(&mut s).is_empty());
        assert!(sent(&mut s).is_empty());
        s.handle_packet(now, &pkt(Code::ProtocolReject, 4, &[0xc0, 0x21]));
        assert_eq!(events(&mut s), [LcpEvent::Down]);
        assert_eq!(s.state(), State::Stopping);
    }

    #[test]
    fn we_protocol_reject_only_when_opened_and_cut_to_the_peer_mru() {
        let now = Instant::now();
        let (mut s, _) = started(server(), now);
        s.send_protocol_reject(0x8057, &[1, 2, 3]);
        assert!(sent(&mut s).is_empty(), "not while negotiating");
        let mut c = Lcp::new(LcpPolicy::client(), FsmConfig::default(), magic_source(7));
        let mut s = server();
        open_pair(now, &mut s, &mut c);
        s.send_protocol_reject(0x8057, &[7; 3000]);
        let p = sent(&mut s);
        assert_eq!(p[0].0, Code::ProtocolReject);
        assert_eq!(p[0].2[..2], [0x80, 0x57]);
        assert_eq!(p[0].2.len(), 2 + 1400 - 6);
    }

    #[test]
    fn magic_source_is_deterministic_and_nonzero() {
        let mut a = magic_source(42);
        let mut b = magic_source(42);
        for _ in 0..100 {
            let x = a();
            assert_eq!(x, b());
        }
        let mut opts = LcpOptions::new(LcpPolicy::client(), Box::new(|| 0));
        assert_eq!(
            opts.new_magic(&[1]),
            2,
            "a broken source still yields non-zero numbers"
        );
    }
}
