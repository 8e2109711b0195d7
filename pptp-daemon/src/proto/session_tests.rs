//! Tests of the session: the seed flow as a transcript, server against
//! client on a simulated clock with loss, duplication and reordering,
//! stubborn and silent peers, phase rules, and a check that no module of
//! the engine imports tokio or reads the clock.

use std::time::Duration;

use super::*;
use crate::proto::test_support::{decode, pkt};
use crate::{
    mppe::KeyLength,
    proto::{ccp::StatefulMode, lcp::magic_source},
    wire::cp::{Code, Packet},
};

const LCP: u16 = ppp_proto::LCP;
const CHAP: u16 = ppp_proto::CHAP;
const IPCP: u16 = ppp_proto::IPCP;
const CCP: u16 = ppp_proto::CCP;
const IPV6CP: u16 = ppp_proto::IPV6CP;

// ---------------------------------------------------------------------
// Fake authentication engines: CHAP-shaped packets (RFC 1994 section 4),
// no cryptography. The real engines live in crate::auth.

fn chap(code: u8, id: u8, body: &[u8]) -> Vec<u8> {
    let len = (4 + body.len()) as u16;
    [&[code, id][..], &len.to_be_bytes(), body].concat()
}

fn material() -> MppeMaterial {
    MppeMaterial::V2 {
        master_send_key: [0x11; 16],
        master_recv_key: [0x22; 16],
    }
}

fn accepted(user: &str) -> Accepted {
    Accepted {
        user: user.into(),
        static_address: None,
        addresses: AddressPolicy::any(),
        authenticator_response: None,
        mppe: Some(material()),
        session: Default::default(),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ServerState {
    Idle,
    Challenged,
    Verifying,
    Done,
}

/// Authenticator: Challenge (retransmitted), Verify, Success or Failure;
/// answers a repeated Response with the same Success.
struct FakeServer {
    method: AuthMethod,
    state: ServerState,
    id: u8,
    deadline: Option<Instant>,
    retries: u32,
    success: Vec<u8>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<AuthEvent>,
}

impl FakeServer {
    fn challenge(&self) -> Vec<u8> {
        chap(1, self.id, &[&[16][..], &[0xc5; 16], b"pptp-xdp"].concat())
    }
}

impl AuthEngine for FakeServer {
    fn method(&self) -> AuthMethod {
        self.method
    }

    fn start(&mut self, now: Instant) {
        self.id = 1;
        self.state = ServerState::Challenged;
        self.out.push_back(self.challenge());
        self.deadline = Some(now + Duration::from_secs(3));
    }

    fn handle_packet(&mut self, _now: Instant, packet: &[u8]) {
        let [2, id, _, _, size, rest @ ..] = packet else {
            return;
        };
        if *id != self.id {
            return;
        }
        match self.state {
            ServerState::Challenged => {
                let name = rest.get(usize::from(*size)..).unwrap_or_default();
                self.events
                    .push_back(AuthEvent::Verify(Credentials::MsChapV2 {
                        user: String::from_utf8_lossy(name).into_owned(),
                        authenticator_challenge: [0xc5; 16],
                        peer_challenge: [0; 16],
                        nt_response: [0; 24],
                    }));
                self.state = ServerState::Verifying;
                self.deadline = None;
            }
            ServerState::Done => self.out.push_back(self.success.clone()),
            _ => {}
        }
    }

    fn handle_verdict(&mut self, _now: Instant, verdict: Verdict) {
        if self.state != ServerState::Verifying {
            return;
        }
        self.state = ServerState::Done;
        match verdict {
            Verdict::Accept(a) => {
                self.success = chap(
                    3,
                    self.id,
                    b"S=0123456789ABCDEF0123456789ABCDEF01234567 M=welcome",
                );
                self.out.push_back(self.success.clone());
                self.events.push_back(AuthEvent::Succeeded(a));
            }
            Verdict::Reject(r) => {
                self.out.push_back(chap(4, self.id, b"E=691 R=0 V=3"));
                self.events.push_back(AuthEvent::Failed {
                    reason: format!("{r:?}"),
                });
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.state != ServerState::Challenged || self.deadline.is_none_or(|d| d > now) {
            return;
        }
        self.retries += 1;
        if self.retries > 10 {
            self.deadline = None;
            self.events.push_back(AuthEvent::Failed {
                reason: "no Response".into(),
            });
        } else {
            self.out.push_back(self.challenge());
            self.deadline = Some(now + Duration::from_secs(3));
        }
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn poll_event(&mut self) -> Option<AuthEvent> {
        self.events.pop_front()
    }
}

/// Peer: answers Challenges (retransmitting its Response until it hears
/// Success or Failure).
struct FakePeer {
    method: AuthMethod,
    response: Option<Vec<u8>>,
    done: bool,
    deadline: Option<Instant>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<AuthEvent>,
}

impl AuthEngine for FakePeer {
    fn method(&self) -> AuthMethod {
        self.method
    }

    fn start(&mut self, _now: Instant) {}

    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        if self.done {
            return;
        }
        match packet {
            [1, id, ..] => {
                let response = chap(2, *id, &[&[49][..], &[0x49; 49], b"alice"].concat());
                self.out.push_back(response.clone());
                self.response = Some(response);
                self.deadline = Some(now + Duration::from_secs(3));
            }
            [3, ..] if self.response.is_some() => {
                self.done = true;
                self.deadline = None;
                self.events
                    .push_back(AuthEvent::Succeeded(accepted("alice")));
            }
            [4, ..] => {
                self.done = true;
                self.deadline = None;
                self.events.push_back(AuthEvent::Failed {
                    reason: "E=691".into(),
                });
            }
            _ => {}
        }
    }

    fn handle_verdict(&mut self, _now: Instant, _verdict: Verdict) {}

    fn handle_timeout(&mut self, now: Instant) {
        if let (Some(r), Some(d)) = (&self.response, self.deadline)
            && d <= now
        {
            self.out.push_back(r.clone());
            self.deadline = Some(now + Duration::from_secs(3));
        }
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn poll_event(&mut self) -> Option<AuthEvent> {
        self.events.pop_front()
    }
}

struct FakeFactory {
    server: bool,
}

impl AuthFactory for FakeFactory {
    fn engine(&mut self, method: AuthMethod) -> Box<dyn AuthEngine> {
        if self.server {
            Box::new(FakeServer {
                method,
                state: ServerState::Idle,
                id: 0,
                deadline: None,
                retries: 0,
                success: Vec::new(),
                out: VecDeque::new(),
                events: VecDeque::new(),
            })
        } else {
            Box::new(FakePeer {
                method,
                response: None,
                done: false,
                deadline: None,
                out: VecDeque::new(),
                events: VecDeque::new(),
            })
        }
    }
}

/// Magic numbers 0x11111111, 0x22222222, ...
fn counting_magic() -> MagicSource {
    let mut n = 0u32;
    Box::new(move || {
        n += 1;
        n.wrapping_mul(0x1111_1111)
    })
}

const DNS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 53);
const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const POOL: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);

/// The daemon's default session (as `Config::default().session_config()`)
/// with a DNS server to hand out.
fn server_config() -> SessionConfig {
    SessionConfig {
        fsm: FsmConfig::default(),
        lcp: LcpPolicy::server(),
        ipcp: IpcpPolicy::Server {
            local_address: LOCAL,
            dns: vec![DNS],
            nbns: Vec::new(),
        },
        ccp: Some(CcpPolicy::default()),
    }
}

fn new_server(config: &SessionConfig) -> Session {
    Session::new(
        config.clone(),
        Box::new(FakeFactory { server: true }),
        counting_magic(),
    )
}

fn new_client(mppe: &CcpPolicy, seed: u64) -> Session {
    Session::new(
        SessionConfig::client(mppe),
        Box::new(FakeFactory { server: false }),
        magic_source(seed),
    )
}

/// Everything the session sent, as (protocol, code, identifier, data).
fn sent(s: &mut Session) -> Vec<(u16, Code, u8, Vec<u8>)> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|(proto, b)| {
            let (code, id, data) = decode(&b);
            (proto, code, id, data)
        })
        .collect()
}

fn events(s: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

// ---------------------------------------------------------------------
// The seed flow, step by step.

#[test]
fn transcript_of_the_seed_flow() {
    use Code::*;
    let t = Instant::now();
    let mut s = new_server(&server_config());

    // The call is up: the server sends its LCP Configure-Request: MRU 1400,
    // Authentication-Protocol CHAP/MS-CHAPv2, Magic-Number, PFC, ACFC.
    s.open(t);
    assert_eq!(s.phase(), Phase::Establish);
    let mru = [0x01, 0x04, 0x05, 0x78];
    let mschapv2 = [0x03, 0x05, 0xc2, 0x23, 0x81];
    let magic = [0x05, 0x06, 0x11, 0x11, 0x11, 0x11];
    let pfc_acfc = [0x07, 0x02, 0x08, 0x02];
    assert_eq!(
        sent(&mut s),
        [(
            LCP,
            ConfigureRequest,
            1,
            [&mru[..], &mschapv2, &magic, &pfc_acfc].concat()
        )]
    );

    // The client's Configure-Request (MRU 1400, Magic-Number, PFC, ACFC)
    // is Acked at once.
    let client_request = [
        0x01, 0x04, 0x05, 0x78, 0x05, 0x06, 0x4d, 0x2f, 0x11, 0x7e, 0x07, 0x02, 0x08, 0x02,
    ];
    s.handle_frame(t, LCP, &pkt(ConfigureRequest, 1, &client_request));
    assert_eq!(
        sent(&mut s),
        [(LCP, ConfigureAck, 1, client_request.to_vec())]
    );

    // The client does not know PFC and ACFC in our request: Configure-Reject.
    // We send the request again without them.
    s.handle_frame(t, LCP, &pkt(ConfigureReject, 1, &pfc_acfc));
    assert_eq!(
        sent(&mut s),
        [(
            LCP,
            ConfigureRequest,
            2,
            [&mru[..], &mschapv2, &magic].concat()
        )]
    );

    // The client Naks MS-CHAPv2, suggesting MS-CHAP (v1); we allow it and adjust.
    let mschapv1 = [0x03, 0x05, 0xc2, 0x23, 0x80];
    s.handle_frame(t, LCP, &pkt(ConfigureNak, 2, &mschapv1));
    let adjusted = [&mru[..], &mschapv1, &magic].concat();
    assert_eq!(sent(&mut s), [(LCP, ConfigureRequest, 3, adjusted.clone())]);

    // Acked: LCP is Opened and authentication starts with a Challenge.
    s.handle_frame(t, LCP, &pkt(ConfigureAck, 3, &adjusted));
    let link = LinkParams {
        mru: 1400,
        peer_mru: 1400,
        send_pfc: true,
        send_acfc: true,
        peer_accm: None,
        auth: Some(AuthMethod::MsChapV1),
        magic: 0x1111_1111,
        peer_magic: 0x4d2f_117e,
    };
    assert_eq!(events(&mut s), [SessionEvent::LinkUp(link.clone())]);
    let out = sent(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].0, out[0].1, out[0].2),
        (CHAP, ConfigureRequest /* CHAP code 1: Challenge */, 1)
    );

    // Set-Link-Info time: the client sends its ACCMs on the control
    // connection now; LCP is Opened and we are authenticating.
    assert_eq!(s.phase(), Phase::Authenticate);
    assert_eq!(s.lcp_state(), State::Opened);
    assert_eq!(s.link(), Some(link.clone()));
    // NCP frames this early are silently discarded (RFC 1661 section 3.5).
    s.handle_frame(
        t,
        IPCP,
        &pkt(ConfigureRequest, 1, &[0x03, 0x06, 0, 0, 0, 0]),
    );
    s.handle_frame(t, IPV6CP, &pkt(ConfigureRequest, 1, &[]));
    assert!(sent(&mut s).is_empty());

    // CHAP Response: the daemon is asked to verify the credentials.
    s.handle_frame(
        t,
        CHAP,
        &chap(2, 1, &[&[49][..], &[0x49; 49], b"alice"].concat()),
    );
    let ev = events(&mut s);
    assert!(
        matches!(&ev[..], [SessionEvent::Verify(c)] if c.user() == "alice"),
        "{ev:?}"
    );
    assert!(sent(&mut s).is_empty());

    // Accepted: Success goes out, the daemon learns the user and is asked
    // for an address; CCP starts, IPCP waits for the address.
    s.handle_verdict(t, Verdict::Accept(accepted("alice")));
    let out = sent(&mut s);
    assert_eq!(
        (out[0].0, out[0].1, out[0].2),
        (CHAP, Code::from(3) /* Success */, 1)
    );
    let hs = [0x12, 0x06, 0x01, 0x00, 0x00, 0x40];
    assert_eq!(out[1..], [(CCP, ConfigureRequest, 1, hs.to_vec())]);
    assert_eq!(
        events(&mut s),
        [
            SessionEvent::Authenticated(accepted("alice")),
            SessionEvent::AddressRequest {
                user: "alice".into(),
                static_address: None,
                addresses: AddressPolicy::any(),
            },
        ]
    );
    assert_eq!(s.phase(), Phase::Network);
    assert_eq!(s.ipcp_state(), State::Initial);

    // The client asks for 0.0.0.0 and a DNS server before the daemon
    // answered: held. Its CCP request (H, S, M, L) is Nak'ed to H+S.
    let ipcp_zero = [0x03, 0x06, 0, 0, 0, 0, 0x81, 0x06, 0, 0, 0, 0];
    s.handle_frame(t, IPCP, &pkt(ConfigureRequest, 1, &ipcp_zero));
    assert!(sent(&mut s).is_empty());
    s.handle_frame(
        t,
        CCP,
        &pkt(ConfigureRequest, 1, &[0x12, 0x06, 0x01, 0x00, 0x00, 0xe0]),
    );
    assert_eq!(sent(&mut s), [(CCP, ConfigureNak, 1, hs.to_vec())]);

    // The daemon assigns 198.19.0.2: IPCP starts with our address and the
    // held request is Nak'ed with the client's address and DNS server.
    s.handle_address(t, Some(POOL));
    let ours = [0x03, 0x06, 198, 19, 0, 1];
    let naked = [0x03, 0x06, 198, 19, 0, 2, 0x81, 0x06, 198, 18, 0, 53];
    assert_eq!(
        sent(&mut s),
        [
            (IPCP, ConfigureRequest, 1, ours.to_vec()),
            (IPCP, ConfigureNak, 1, naked.to_vec())
        ]
    );

    // CCP completes in between.
    s.handle_frame(t, CCP, &pkt(ConfigureAck, 1, &hs));
    s.handle_frame(t, CCP, &pkt(ConfigureRequest, 2, &hs));
    assert_eq!(sent(&mut s), [(CCP, ConfigureAck, 2, hs.to_vec())]);
    assert_eq!(s.ccp_state(), Some(State::Opened));
    assert!(events(&mut s).is_empty(), "the network waits for IPCP");

    // The client re-requests with what we Nak'ed: Acked; it Acks ours.
    s.handle_frame(t, IPCP, &pkt(ConfigureRequest, 2, &naked));
    assert_eq!(sent(&mut s), [(IPCP, ConfigureAck, 2, naked.to_vec())]);
    s.handle_frame(t, IPCP, &pkt(ConfigureAck, 1, &ours));
    let network = NetworkParams {
        local_address: LOCAL,
        peer_address: POOL,
        dns: vec![DNS],
        nbns: vec![],
        link: link.clone(),
        mppe: Some(MppeParams {
            key_length: KeyLength::Bits128,
            stateless: true,
        }),
        mppe_material: Some(material()),
        user: Some("alice".into()),
        auth: Some(AuthMethod::MsChapV1),
    };
    assert_eq!(
        events(&mut s),
        [SessionEvent::NetworkOpened(network.clone())]
    );
    assert_eq!(s.network(), Some(&network));

    // pppd also proposes IPV6CP, which we do not run: Protocol-Reject.
    let ipv6cp = pkt(ConfigureRequest, 1, &[0x01, 0x0a, 0, 0, 0, 0, 0, 0, 0, 1]);
    s.handle_frame(t, IPV6CP, &ipv6cp);
    assert_eq!(
        sent(&mut s),
        [(
            LCP,
            ProtocolReject,
            4,
            [&[0x80, 0x57][..], &ipv6cp].concat()
        )]
    );

    // LCP Echo-Request is answered with our Magic-Number.
    s.handle_frame(t, LCP, &pkt(EchoRequest, 9, &[0x4d, 0x2f, 0x11, 0x7e]));
    assert_eq!(
        sent(&mut s),
        [(LCP, EchoReply, 9, vec![0x11, 0x11, 0x11, 0x11])]
    );

    // The client hangs up.
    s.handle_frame(t, LCP, &pkt(TerminateRequest, 2, b"User request"));
    assert_eq!(sent(&mut s), [(LCP, TerminateAck, 2, vec![])]);
    assert_eq!(events(&mut s), [SessionEvent::NetworkDown]);
    assert_eq!(s.phase(), Phase::Terminate);
    let deadline = s.poll_timeout().unwrap();
    s.handle_timeout(deadline);
    assert_eq!(
        events(&mut s),
        [SessionEvent::Closed {
            reason: EndReason::PeerTerminate,
            detail: "the peer terminated LCP".into()
        }]
    );
    assert_eq!(s.phase(), Phase::Dead);
    assert_eq!(s.poll_timeout(), None);
}

// ---------------------------------------------------------------------
// Server against client on a simulated clock.

/// A simulated GRE path: loss, duplication and reordering (random delay),
/// all from a seeded generator.
struct Net {
    rng: u64,
    loss_per_mille: u64,
    dup_per_mille: u64,
    jitter_ms: u64,
    in_flight: Vec<(Instant, bool, u16, Vec<u8>)>,
    sent: usize,
    /// The client behaves like pppd with require-mppe: IPCP neither goes
    /// out nor comes in until its CCP is Opened.
    client_holds_ipcp_until_ccp: bool,
}

impl Net {
    fn new(seed: u64, loss: u64, dup: u64, jitter_ms: u64) -> Self {
        Net {
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            loss_per_mille: loss,
            dup_per_mille: dup,
            jitter_ms,
            in_flight: Vec::new(),
            sent: 0,
            client_holds_ipcp_until_ccp: false,
        }
    }

    fn clean() -> Self {
        Net::new(1, 0, 0, 0)
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn send(&mut self, now: Instant, to_client: bool, protocol: u16, payload: Vec<u8>) {
        self.sent += 1;
        if self.next() % 1000 < self.loss_per_mille {
            return;
        }
        let copies = if self.next() % 1000 < self.dup_per_mille {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = if self.jitter_ms > 0 {
                self.next() % self.jitter_ms
            } else {
                0
            };
            let at = now + Duration::from_millis(5 + jitter);
            self.in_flight
                .push((at, to_client, protocol, payload.clone()));
        }
    }

    fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.iter().map(|p| p.0).min()
    }

    fn due(&mut self, now: Instant) -> Vec<(bool, u16, Vec<u8>)> {
        let mut due: Vec<_> = Vec::new();
        let mut keep = Vec::new();
        for p in self.in_flight.drain(..) {
            if p.0 <= now {
                due.push(p)
            } else {
                keep.push(p)
            }
        }
        self.in_flight = keep;
        due.sort_by_key(|p| p.0);
        due.into_iter().map(|(_, c, p, b)| (c, p, b)).collect()
    }
}

#[derive(Default, Debug)]
struct Outcome {
    server: Vec<SessionEvent>,
    client: Vec<SessionEvent>,
    elapsed: Duration,
}

/// Runs both sessions until both networks are up, either side is dead, or
/// `limit` of simulated time has passed. The server's daemon accepts
/// "alice" and assigns 198.19.0.2.
fn run(server: &mut Session, client: &mut Session, net: &mut Net, limit: Duration) -> Outcome {
    let start = Instant::now();
    let mut now = start;
    let mut outcome = Outcome::default();
    server.open(now);
    client.open(now);
    loop {
        while let Some((p, b)) = server.poll_transmit() {
            net.send(now, true, p, b);
        }
        while let Some((p, b)) = client.poll_transmit() {
            if !(net.client_holds_ipcp_until_ccp && p == IPCP && !ccp_open(client)) {
                net.send(now, false, p, b);
            }
        }
        let mut acted = false;
        while let Some(e) = server.poll_event() {
            match &e {
                SessionEvent::Verify(c) => {
                    let verdict = if c.user() == "alice" {
                        Verdict::Accept(accepted("alice"))
                    } else {
                        Verdict::Reject(crate::auth::Rejection::BadCredentials)
                    };
                    server.handle_verdict(now, verdict);
                    acted = true;
                }
                SessionEvent::AddressRequest { .. } => {
                    server.handle_address(now, Some(POOL));
                    acted = true;
                }
                _ => {}
            }
            outcome.server.push(e);
        }
        outcome
            .client
            .extend(std::iter::from_fn(|| client.poll_event()));
        if acted {
            continue;
        }
        let both_up =
            server.network().is_some() && client.network().is_some() && net.in_flight.is_empty();
        if both_up || server.phase() == Phase::Dead || client.phase() == Phase::Dead {
            break;
        }
        let Some(next) = [
            net.next_delivery(),
            server.poll_timeout(),
            client.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min() else {
            break;
        };
        now = now.max(next);
        if now - start > limit {
            break;
        }
        for (to_client, p, b) in net.due(now) {
            if to_client {
                if net.client_holds_ipcp_until_ccp && p == IPCP && !ccp_open(client) {
                    continue;
                }
                client.handle_frame(now, p, &b);
            } else {
                server.handle_frame(now, p, &b);
            }
        }
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        }
        if client.poll_timeout().is_some_and(|t| t <= now) {
            client.handle_timeout(now);
        }
    }
    outcome.elapsed = now - start;
    outcome
}

fn ccp_open(session: &Session) -> bool {
    session.ccp_state() == Some(State::Opened)
}

fn assert_consistent(server: &Session, client: &Session) {
    let s = server.network().expect("server network up");
    let c = client.network().expect("client network up");
    assert_eq!((s.local_address, s.peer_address), (LOCAL, POOL));
    assert_eq!((c.local_address, c.peer_address), (POOL, LOCAL));
    assert_eq!(c.dns, [DNS]);
    assert_eq!(s.mppe, c.mppe);
    assert_eq!(s.auth, c.auth);
    assert_eq!(
        (s.link.magic, s.link.peer_magic),
        (c.link.peer_magic, c.link.magic)
    );
    assert_eq!((s.link.mru, s.link.peer_mru), (c.link.peer_mru, c.link.mru));
}

#[test]
fn server_and_client_on_a_clean_path() {
    let mut server = new_server(&server_config());
    let mut client = new_client(&CcpPolicy::default(), 7);
    let outcome = run(
        &mut server,
        &mut client,
        &mut Net::clean(),
        Duration::from_secs(60),
    );
    assert_consistent(&server, &client);
    let s = server.network().unwrap();
    assert_eq!(
        s.mppe,
        Some(MppeParams {
            key_length: KeyLength::Bits128,
            stateless: true
        })
    );
    assert_eq!(s.auth, Some(AuthMethod::MsChapV2));
    assert!(s.link.send_pfc && s.link.send_acfc);
    assert!(
        outcome.elapsed < Duration::from_secs(1),
        "{:?}",
        outcome.elapsed
    );
    let opened = |events: &[SessionEvent]| {
        events
            .iter()
            .filter(|e| matches!(e, SessionEvent::NetworkOpened(_)))
            .count()
    };
    assert_eq!(opened(&outcome.server), 1);
    assert_eq!(opened(&outcome.client), 1);
    assert!(
        outcome
            .client
            .iter()
            .any(|e| matches!(e, SessionEvent::Authenticated(a) if a.user == "alice"))
    );

    // Stateful resynchronisation: our Reset-Request reaches the client.
    let now = Instant::now();
    server.send_ccp_reset_request(now);
    let (p, b) = server.poll_transmit().unwrap();
    assert_eq!((p, b[0]), (CCP, 14));
    client.handle_frame(now, p, &b);
    assert_eq!(events(&mut client), [SessionEvent::CcpResetRequest]);

    // The server shuts down: Terminate-Request with the reason, then Dead.
    server.close(now, EndReason::Shutdown);
    let (p, b) = server.poll_transmit().unwrap();
    assert_eq!((p, b[0]), (LCP, 5));
    assert_eq!(&b[4..], b"closed locally: shutdown");
    client.handle_frame(now, p, &b);
    let (p, b) = client.poll_transmit().unwrap();
    server.handle_frame(now, p, &b);
    assert_eq!(
        events(&mut server),
        [
            SessionEvent::NetworkDown,
            SessionEvent::Closed {
                reason: EndReason::Shutdown,
                detail: "closed locally: shutdown".into()
            }
        ]
    );
}

#[test]
fn server_and_client_with_loss_duplication_and_reordering() {
    for seed in 1..=25 {
        let mut server = new_server(&server_config());
        let mut client = new_client(&CcpPolicy::default(), seed);
        let mut net = Net::new(seed, 200, 100, 400);
        let outcome = run(&mut server, &mut client, &mut net, Duration::from_secs(600));
        assert!(
            server.network().is_some() && client.network().is_some(),
            "seed {seed}: server {:?} client {:?} after {:?}\nserver events {:?}\nclient events {:?}",
            server,
            client,
            outcome.elapsed,
            outcome.server,
            outcome.client
        );
        assert_consistent(&server, &client);
        // Whatever renegotiation loss caused, the events alternate properly.
        let mut up = false;
        for e in &outcome.server {
            match e {
                SessionEvent::NetworkOpened(_) => {
                    assert!(!up, "seed {seed}: opened twice without down");
                    up = true;
                }
                SessionEvent::NetworkDown => {
                    assert!(up, "seed {seed}: down while not up");
                    up = false;
                }
                _ => {}
            }
        }
        assert!(up);
    }
}

#[test]
fn mppe_denied_runs_no_ccp() {
    let mut config = server_config();
    config.ccp = None;
    let mut server = new_server(&config);
    // The client would like MPPE but does not require it: the server
    // Protocol-Rejects its CCP and both go on in the clear.
    let mut client = new_client(&CcpPolicy::default(), 3);
    run(
        &mut server,
        &mut client,
        &mut Net::clean(),
        Duration::from_secs(120),
    );
    assert_consistent(&server, &client);
    assert_eq!(server.network().unwrap().mppe, None);
    assert_eq!(server.network().unwrap().mppe_material, None);
    assert_eq!(server.ccp_state(), None);
}

#[test]
fn a_client_holding_ipcp_until_ccp_opens_is_not_kept_waiting() {
    // pppd with require-mppe discards IPCP until CCP is Opened, so our
    // first IPCP Configure-Request is lost; it goes again as soon as CCP
    // opens, not a restart interval later.
    let config = server_config();
    let mut server = new_server(&config);
    let mut client = new_client(&CcpPolicy::default(), 3);
    let mut net = Net::clean();
    net.client_holds_ipcp_until_ccp = true;
    let outcome = run(&mut server, &mut client, &mut net, Duration::from_secs(120));
    assert_consistent(&server, &client);
    assert!(server.network().unwrap().mppe.is_some());
    // Simulated time: without the immediate retransmission both sides
    // wait for their restart timers.
    let restart = config.fsm.restart_interval;
    assert!(outcome.elapsed < restart, "{:?}", outcome.elapsed);
}

#[test]
fn mppe_required_and_the_client_refuses_ccp() {
    let mut config = server_config();
    config.ccp.as_mut().unwrap().policy = MppePolicy::Require;
    let mut server = new_server(&config);
    let mut client = new_client(
        &CcpPolicy {
            policy: MppePolicy::Deny,
            ..CcpPolicy::default()
        },
        3,
    );
    let outcome = run(
        &mut server,
        &mut client,
        &mut Net::clean(),
        Duration::from_secs(120),
    );
    let reason = outcome.server.iter().find_map(|e| match e {
        SessionEvent::Closed { reason, detail } => Some((*reason, detail.clone())),
        _ => None,
    });
    let (reason, detail) = reason.expect("the server closed the link");
    assert_eq!(reason, EndReason::NegotiationFailed);
    let reason = detail;
    assert!(
        reason.contains("MPPE is required") && reason.contains("Protocol-Reject"),
        "{reason}"
    );
    assert!(
        !outcome
            .server
            .iter()
            .any(|e| matches!(e, SessionEvent::NetworkOpened(_)))
    );
}

#[test]
fn mppe_allowed_and_the_client_rejects_it() {
    let mut server = new_server(&server_config());
    // Our client allows only 40-bit; the server allows only 128: CCP
    // fails, the link goes on without MPPE under `allow`.
    let mut client = new_client(
        &CcpPolicy {
            key_lengths: vec![KeyLength::Bits40],
            ..CcpPolicy::default()
        },
        3,
    );
    run(
        &mut server,
        &mut client,
        &mut Net::clean(),
        Duration::from_secs(120),
    );
    assert_consistent(&server, &client);
    assert_eq!(server.network().unwrap().mppe, None);
}

#[test]
fn wrong_password_closes_the_link() {
    let mut server = new_server(&server_config());
    let mut client = new_client(&CcpPolicy::default(), 3);
    // The daemon rejects everyone but alice; make the client bob.
    struct Bob;
    impl AuthFactory for Bob {
        fn engine(&mut self, method: AuthMethod) -> Box<dyn AuthEngine> {
            struct BobPeer(AuthMethod, VecDeque<Vec<u8>>);
            impl AuthEngine for BobPeer {
                fn method(&self) -> AuthMethod {
                    self.0
                }
                fn start(&mut self, _now: Instant) {}
                fn handle_packet(&mut self, _now: Instant, packet: &[u8]) {
                    if let [1, id, ..] = packet {
                        self.1
                            .push_back(chap(2, *id, &[&[1][..], &[0], b"bob"].concat()));
                    }
                }
                fn handle_verdict(&mut self, _now: Instant, _verdict: Verdict) {}
                fn handle_timeout(&mut self, _now: Instant) {}
                fn poll_transmit(&mut self) -> Option<Vec<u8>> {
                    self.1.pop_front()
                }
                fn poll_timeout(&self) -> Option<Instant> {
                    None
                }
                fn poll_event(&mut self) -> Option<AuthEvent> {
                    None
                }
            }
            Box::new(BobPeer(method, VecDeque::new()))
        }
    }
    client.factory = Box::new(Bob);
    let outcome = run(
        &mut server,
        &mut client,
        &mut Net::clean(),
        Duration::from_secs(120),
    );
    let last = outcome.server.last().unwrap();
    assert_eq!(
        last,
        &SessionEvent::Closed {
            reason: EndReason::AuthFailed,
            detail: "authentication failed: BadCredentials".into()
        }
    );
    assert!(
        !outcome
            .server
            .iter()
            .any(|e| matches!(e, SessionEvent::AddressRequest { .. }))
    );
}

// ---------------------------------------------------------------------
// Peers that never agree or never answer.

/// Runs a server against a scripted LCP peer: `answer` maps each of the
/// server's LCP packets to the peer's replies.
fn scripted(
    server: &mut Session,
    first: Vec<u8>,
    mut answer: impl FnMut(Code, u8, &[u8]) -> Vec<Vec<u8>>,
    limit: Duration,
) -> (Vec<(Code, Vec<u8>)>, Vec<SessionEvent>) {
    let mut now = Instant::now();
    let start = now;
    server.open(now);
    server.handle_frame(now, LCP, &first);
    let mut log = Vec::new();
    let mut events = Vec::new();
    loop {
        let out: Vec<_> = std::iter::from_fn(|| server.poll_transmit()).collect();
        let mut replies = Vec::new();
        for (p, b) in out {
            if p != LCP {
                continue;
            }
            let packet = Packet::new_checked(&b[..]).unwrap();
            log.push((packet.code(), packet.data().to_vec()));
            replies.extend(answer(packet.code(), packet.identifier(), packet.data()));
        }
        events.extend(std::iter::from_fn(|| server.poll_event()));
        if server.phase() == Phase::Dead
            || server.lcp_state() == State::Opened
            || now - start > limit
        {
            break;
        }
        if replies.is_empty() {
            // Nothing to answer: on to the next timer.
            let Some(t) = server.poll_timeout() else {
                break;
            };
            now = t;
        } else {
            // A round trip of 100 ms.
            now += Duration::from_millis(100);
            for r in replies {
                server.handle_frame(now, LCP, &r);
            }
        }
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        }
    }
    (log, events)
}

#[test]
fn a_peer_that_naks_our_mru_forever_converges_through_max_failure() {
    let mut server = new_server(&server_config());
    let peer_request = pkt(
        Code::ConfigureRequest,
        1,
        &[0x05, 0x06, 0xab, 0xcd, 0xef, 0x01],
    );
    let (log, _) = scripted(
        &mut server,
        peer_request,
        |code, id, data| match code {
            // MRU 200 is below what we accept: we keep asking for 1400.
            Code::ConfigureRequest if data.starts_with(&[0x01, 0x04]) => {
                vec![pkt(Code::ConfigureNak, id, &[0x01, 0x04, 0x00, 0xc8])]
            }
            Code::ConfigureRequest => vec![pkt(Code::ConfigureAck, id, data)],
            _ => vec![],
        },
        Duration::from_secs(300),
    );
    let requests: Vec<_> = log
        .iter()
        .filter(|p| p.0 == Code::ConfigureRequest)
        .collect();
    assert_eq!(
        requests.len(),
        7,
        "Max-Failure (5) Naks applied, the sixth counts as a Reject"
    );
    assert!(
        requests[..6]
            .iter()
            .all(|r| r.1.starts_with(&[0x01, 0x04, 0x05, 0x78]))
    );
    assert!(!requests[6].1.starts_with(&[0x01, 0x04]));
    assert_eq!(server.lcp_state(), State::Opened);
    assert_eq!(server.link().unwrap().mru, 1500);
}

#[test]
fn a_peer_whose_requests_we_always_refuse_gets_rejects_after_max_failure() {
    let mut server = new_server(&server_config());
    let mru_100 = [0x01, 0x04, 0x00, 0x64];
    let mut next = 1u8;
    let (log, events) = scripted(
        &mut server,
        pkt(Code::ConfigureRequest, 1, &mru_100),
        |code, id, data| {
            let mut r = Vec::new();
            match code {
                // The peer Acks ours and insists on MRU 100 whatever we say.
                Code::ConfigureRequest => r.push(pkt(Code::ConfigureAck, id, data)),
                Code::ConfigureNak | Code::ConfigureReject => {
                    next = next.wrapping_add(1);
                    r.push(pkt(Code::ConfigureRequest, next, &mru_100));
                }
                Code::TerminateRequest => r.push(pkt(Code::TerminateAck, id, &[])),
                _ => {}
            }
            r
        },
        Duration::from_secs(600),
    );
    let replies: Vec<_> = log
        .iter()
        .filter(|p| matches!(p.0, Code::ConfigureNak | Code::ConfigureReject))
        .map(|p| p.0)
        .take(7)
        .collect();
    assert_eq!(
        replies,
        [
            Code::ConfigureNak,
            Code::ConfigureNak,
            Code::ConfigureNak,
            Code::ConfigureNak,
            Code::ConfigureNak,
            Code::ConfigureReject,
            Code::ConfigureReject
        ]
    );
    // It never converges: the session gives up.
    let closed = events.iter().find_map(|e| match e {
        SessionEvent::Closed { reason, detail } => {
            assert_eq!(*reason, EndReason::NegotiationFailed);
            Some(detail.as_str())
        }
        _ => None,
    });
    assert!(
        closed.is_some_and(|r| r.contains("did not converge")),
        "{closed:?}"
    );
    assert_eq!(server.phase(), Phase::Dead);
}

#[test]
fn a_peer_that_naks_every_auth_method_takes_the_link_down() {
    let mut server = new_server(&server_config());
    let (_, events) = scripted(
        &mut server,
        pkt(Code::ConfigureRequest, 1, &[]),
        |code, id, _| match code {
            // "Use EAP", which we do not know.
            Code::ConfigureRequest => vec![pkt(Code::ConfigureNak, id, &[0x03, 0x04, 0xc2, 0x27])],
            Code::TerminateRequest => vec![pkt(Code::TerminateAck, id, &[])],
            _ => vec![],
        },
        Duration::from_secs(300),
    );
    let Some(SessionEvent::Closed {
        reason: EndReason::NegotiationFailed,
        detail: reason,
    }) = events.last()
    else {
        panic!("{events:?}")
    };
    assert!(
        reason.contains("no authentication method in common"),
        "{reason}"
    );
}

#[test]
fn a_peer_that_never_answers() {
    let mut server = new_server(&server_config());
    let mut now = Instant::now();
    let start = now;
    server.open(now);
    let mut requests = 0;
    while server.phase() != Phase::Dead {
        requests += sent(&mut server)
            .iter()
            .filter(|p| p.1 == Code::ConfigureRequest)
            .count();
        now = server.poll_timeout().expect("a timer runs until Dead");
        server.handle_timeout(now);
    }
    assert_eq!(requests, 10, "Max-Configure");
    assert_eq!(now - start, Duration::from_secs(30));
    assert_eq!(
        events(&mut server),
        [SessionEvent::Closed {
            reason: EndReason::NegotiationFailed,
            detail: "no answer to 10 Configure-Requests".into()
        }]
    );
}

#[test]
fn a_client_that_goes_silent_is_taken_down_by_the_keepalive() {
    let mut server = new_server(&server_config());
    let mut client = new_client(&CcpPolicy::default(), 5);
    run(
        &mut server,
        &mut client,
        &mut Net::clean(),
        Duration::from_secs(60),
    );
    assert!(server.network().is_some());
    events(&mut server);
    while server.phase() != Phase::Dead {
        sent(&mut server);
        let now = server.poll_timeout().unwrap();
        server.handle_timeout(now);
    }
    let ev = events(&mut server);
    assert!(
        matches!(&ev[..], [SessionEvent::NetworkDown, SessionEvent::Closed { reason: EndReason::KeepaliveLost, detail }]
            if detail.contains("no reply to 4 LCP Echo-Requests")),
        "{ev:?}"
    );
}

// ---------------------------------------------------------------------
// Phases and the daemon's answers.

/// A server session driven by hand to the Network phase (address not yet
/// assigned).
fn authenticated_server(config: &SessionConfig) -> (Session, Instant) {
    authenticated_server_as(config, accepted("alice"))
}

/// The same, with the daemon accepting `who` (the fake engine's Response
/// names `who.user`).
fn authenticated_server_as(config: &SessionConfig, who: Accepted) -> (Session, Instant) {
    let t = Instant::now();
    let mut s = new_server(config);
    s.open(t);
    let ours = sent(&mut s).remove(0);
    s.handle_frame(
        t,
        LCP,
        &pkt(Code::ConfigureRequest, 1, &[0x05, 0x06, 1, 2, 3, 4]),
    );
    s.handle_frame(t, LCP, &pkt(Code::ConfigureAck, ours.2, &ours.3));
    assert_eq!(s.phase(), Phase::Authenticate);
    let name = who.user.clone();
    s.handle_frame(
        t,
        CHAP,
        &chap(2, 1, &[&[1][..], &[0], name.as_bytes()].concat()),
    );
    s.handle_verdict(t, Verdict::Accept(who));
    assert_eq!(s.phase(), Phase::Network);
    sent(&mut s);
    events(&mut s);
    (s, t)
}

/// The peer renegotiates LCP (a Configure-Request while Opened, RFC 1661
/// section 5.1) and Acks our new request: LCP is Opened again and a new
/// authentication starts. Returns what the server sent after the Ack.
fn renegotiate_lcp(s: &mut Session, t: Instant, id: u8) -> Vec<(u16, Code, u8, Vec<u8>)> {
    s.handle_frame(
        t,
        LCP,
        &pkt(Code::ConfigureRequest, id, &[0x05, 0x06, 1, 2, 3, 4]),
    );
    let ours = sent(s)
        .into_iter()
        .find(|p| (p.0, p.1) == (LCP, Code::ConfigureRequest))
        .expect("the server sends a new Configure-Request");
    s.handle_frame(t, LCP, &pkt(Code::ConfigureAck, ours.2, &ours.3));
    sent(s)
}

/// The peer Acks the server's Terminate-Request, found in `out` (what the
/// server sent): the session is Dead.
fn terminate_acked(
    s: &mut Session,
    t: Instant,
    out: Vec<(u16, Code, u8, Vec<u8>)>,
) -> Vec<SessionEvent> {
    let terminate = out
        .into_iter()
        .find(|p| (p.0, p.1) == (LCP, Code::TerminateRequest))
        .expect("the server sends Terminate-Request");
    s.handle_frame(t, LCP, &pkt(Code::TerminateAck, terminate.2, &[]));
    assert_eq!(s.phase(), Phase::Dead);
    events(s)
}

// ---------------------------------------------------------------------
// Authentication across LCP renegotiation (issue 15, problem 6), with the
// real server engine for the attempt limit.

/// A server session with the real MS-CHAPv2 engine: `max_attempts`
/// Responses per session, no failure delay.
fn real_engine_server(max_attempts: u32) -> Session {
    use crate::auth::{
        random::seeded_random,
        server::{ServerAuthFactory, ServerSettings},
    };
    let settings = ServerSettings {
        max_attempts,
        failure_delay: Duration::ZERO,
        ..ServerSettings::default()
    };
    Session::new(
        server_config(),
        Box::new(ServerAuthFactory::new(settings, seeded_random(7))),
        counting_magic(),
    )
}

/// LCP Opened by hand; returns the identifier of the first Challenge.
fn open_to_challenge(s: &mut Session, t: Instant) -> u8 {
    s.open(t);
    let ours = sent(s).remove(0);
    s.handle_frame(
        t,
        LCP,
        &pkt(Code::ConfigureRequest, 1, &[0x05, 0x06, 1, 2, 3, 4]),
    );
    s.handle_frame(t, LCP, &pkt(Code::ConfigureAck, ours.2, &ours.3));
    assert!(matches!(&events(s)[..], [SessionEvent::LinkUp(_)]));
    challenge_id(&sent(s))
}

fn challenge_id(out: &[(u16, Code, u8, Vec<u8>)]) -> u8 {
    out.iter()
        .find(|p| (p.0, p.1) == (CHAP, Code::from(1)))
        .map(|p| p.2)
        .expect("a Challenge")
}

/// An MS-CHAPv2 Response (RFC 2759 section 4) of `user` to Challenge `id`.
fn v2_response(id: u8, user: &str) -> Vec<u8> {
    chap(2, id, &[&[49][..], &[0; 49], user.as_bytes()].concat())
}

/// Sends a Response, expects Verify, refuses it; returns what the server
/// sent (the Failure first).
fn refused_attempt(s: &mut Session, t: Instant, id: u8) -> Vec<(u16, Code, u8, Vec<u8>)> {
    s.handle_frame(t, CHAP, &v2_response(id, "alice"));
    assert!(
        matches!(&events(s)[..], [SessionEvent::Verify(c)] if c.user() == "alice"),
        "one Verify per Response"
    );
    s.handle_verdict(t, Verdict::Reject(crate::auth::Rejection::BadCredentials));
    sent(s)
}

/// The text of the CHAP Failure among `out`.
fn failure_text(out: &[(u16, Code, u8, Vec<u8>)]) -> String {
    let failure = out
        .iter()
        .find(|p| (p.0, p.1) == (CHAP, Code::from(4)))
        .expect("a Failure");
    String::from_utf8_lossy(&failure.3).into_owned()
}

#[test]
fn renegotiating_lcp_gives_no_fresh_authentication_attempts() {
    let t = Instant::now();
    let mut s = real_engine_server(3);
    let id = open_to_challenge(&mut s, t);
    // Two wrong Responses: each Failure offers a retry (R=1).
    assert!(failure_text(&refused_attempt(&mut s, t, id)).contains("R=1"));
    let out = refused_attempt(&mut s, t, id.wrapping_add(1));
    assert!(failure_text(&out).contains("R=1"));
    // The peer renegotiates LCP instead of retrying: a new Challenge...
    let id = challenge_id(&renegotiate_lcp(&mut s, t, 2));
    events(&mut s);
    assert_eq!(s.phase(), Phase::Authenticate);
    // ...but its third wrong Response is its last one (R=0), and the
    // session ends.
    let out = refused_attempt(&mut s, t, id);
    assert!(failure_text(&out).contains("R=0"));
    assert_eq!(s.phase(), Phase::Terminate);
    let ev = terminate_acked(&mut s, t, out);
    assert!(
        matches!(&ev[..], [SessionEvent::Closed { reason: EndReason::AuthFailed, detail }]
            if detail.contains("after 3 attempt(s)")),
        "{ev:?}"
    );
}

#[test]
fn a_response_pending_when_lcp_renegotiates_still_counts() {
    let t = Instant::now();
    let mut s = real_engine_server(1);
    let id = open_to_challenge(&mut s, t);
    s.handle_frame(t, CHAP, &v2_response(id, "alice"));
    assert!(matches!(&events(&mut s)[..], [SessionEvent::Verify(_)]));
    // Before the verdict, the peer renegotiates LCP: the one attempt of
    // the session is spent, so no new Challenge goes out.
    let out = renegotiate_lcp(&mut s, t, 2);
    assert!(
        !out.iter().any(|p| p.0 == CHAP),
        "no Challenge after the attempts are spent: {out:?}"
    );
    assert_eq!(s.phase(), Phase::Terminate);
    // The late verdict changes nothing.
    s.handle_verdict(t, Verdict::Accept(accepted("alice")));
    assert!(
        !events(&mut s)
            .iter()
            .any(|e| matches!(e, SessionEvent::Authenticated(_)))
    );
    let ev = terminate_acked(&mut s, t, out);
    assert!(
        matches!(&ev[..], [.., SessionEvent::Closed { reason: EndReason::AuthFailed, detail }]
            if detail.contains("no attempt left")),
        "{ev:?}"
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, SessionEvent::Authenticated(_))),
        "{ev:?}"
    );
}

#[test]
fn re_authentication_as_another_user_ends_the_session() {
    let (mut s, t) = authenticated_server(&server_config());
    s.handle_address(t, Some(POOL));
    sent(&mut s);
    assert!(events(&mut s).is_empty());
    let out = renegotiate_lcp(&mut s, t, 2);
    assert_eq!(challenge_id(&out), 1);
    assert_eq!(s.phase(), Phase::Authenticate);
    s.handle_frame(t, CHAP, &chap(2, 1, &[&[1][..], &[0], b"mallory"].concat()));
    events(&mut s);
    s.handle_verdict(t, Verdict::Accept(accepted("mallory")));
    // Mallory does not get alice's session (nor her address).
    assert_eq!(s.phase(), Phase::Terminate);
    let out = sent(&mut s);
    let ev = terminate_acked(&mut s, t, out);
    assert!(
        matches!(&ev[..], [SessionEvent::Closed { reason: EndReason::AuthFailed, detail }]
            if detail.contains("mallory") && detail.contains("alice")),
        "{ev:?}"
    );
}

#[test]
fn re_authentication_as_the_same_user_keeps_the_session_and_address() {
    let (mut s, t) = authenticated_server(&server_config());
    s.handle_address(t, Some(POOL));
    sent(&mut s);
    renegotiate_lcp(&mut s, t, 2);
    s.handle_frame(t, CHAP, &chap(2, 1, &[&[1][..], &[0], b"alice"].concat()));
    events(&mut s);
    s.handle_verdict(t, Verdict::Accept(accepted("alice")));
    // Authenticated again; no new address is asked for; IPCP restarts
    // with the address the session holds.
    assert_eq!(
        events(&mut s),
        [SessionEvent::Authenticated(accepted("alice"))]
    );
    assert_eq!(s.phase(), Phase::Network);
    s.handle_frame(
        t,
        IPCP,
        &pkt(Code::ConfigureRequest, 7, &[0x03, 0x06, 0, 0, 0, 0]),
    );
    let naks: Vec<_> = sent(&mut s)
        .into_iter()
        .filter(|p| (p.0, p.1) == (IPCP, Code::ConfigureNak))
        .collect();
    assert_eq!(naks[0].3[..6], [0x03, 0x06, 198, 19, 0, 2]);
}

// ---------------------------------------------------------------------
// The chap-secrets address column (issue 15, problem 4).

fn restricted(user: &str) -> Accepted {
    use crate::auth::AddressItem;
    // `!198.19.0.1 198.19.0.0/30` in chap-secrets.
    Accepted {
        addresses: AddressPolicy::list([
            AddressItem::deny(Ipv4Addr::new(198, 19, 0, 1), 32),
            AddressItem::allow(Ipv4Addr::new(198, 19, 0, 0), 30),
        ]),
        ..accepted(user)
    }
}

#[test]
fn the_address_request_carries_the_users_allowed_addresses() {
    let t = Instant::now();
    let mut s = new_server(&server_config());
    s.open(t);
    let ours = sent(&mut s).remove(0);
    s.handle_frame(t, LCP, &pkt(Code::ConfigureRequest, 1, &[]));
    s.handle_frame(t, LCP, &pkt(Code::ConfigureAck, ours.2, &ours.3));
    s.handle_frame(t, CHAP, &chap(2, 1, &[&[1][..], &[0], b"dave"].concat()));
    s.handle_verdict(t, Verdict::Accept(restricted("dave")));
    let request = events(&mut s).into_iter().find_map(|e| match e {
        SessionEvent::AddressRequest { addresses, .. } => Some(addresses),
        _ => None,
    });
    let addresses = request.expect("an AddressRequest");
    let pool: Vec<Ipv4Addr> = (1..=6).map(|i| Ipv4Addr::new(198, 19, 0, i)).collect();
    let usable: Vec<_> = pool.into_iter().filter(|a| addresses.allows(*a)).collect();
    assert_eq!(
        usable,
        [Ipv4Addr::new(198, 19, 0, 2), Ipv4Addr::new(198, 19, 0, 3)]
    );
}

#[test]
fn an_address_the_user_may_not_have_closes_the_session() {
    for refused in [Ipv4Addr::new(198, 19, 0, 1), Ipv4Addr::new(198, 19, 0, 9)] {
        let (mut s, t) = authenticated_server_as(&server_config(), restricted("dave"));
        s.handle_address(t, Some(refused));
        assert_eq!(s.phase(), Phase::Terminate, "{refused}");
        assert!(
            !sent(&mut s).iter().any(|p| p.0 == IPCP),
            "IPCP never offers {refused}"
        );
        s.handle_frame(t, LCP, &pkt(Code::TerminateAck, 2, &[]));
        let ev = events(&mut s);
        assert!(
            matches!(&ev[..], [SessionEvent::Closed { reason: EndReason::NoAddress, detail }]
                if detail.contains(&refused.to_string())),
            "{ev:?}"
        );
    }
}

#[test]
fn ipcp_never_acks_an_address_the_peer_insists_on() {
    let (mut s, t) = authenticated_server_as(&server_config(), restricted("dave"));
    s.handle_address(t, Some(Ipv4Addr::new(198, 19, 0, 2)));
    sent(&mut s);
    // The client insists on 198.19.0.1, which dave may not have.
    let insist = [0x03, 0x06, 198, 19, 0, 1];
    let mut replies = Vec::new();
    for id in 1..=12 {
        s.handle_frame(t, IPCP, &pkt(Code::ConfigureRequest, id, &insist));
        replies.extend(
            sent(&mut s)
                .into_iter()
                .filter(|p| p.0 == IPCP && p.1 != Code::ConfigureRequest),
        );
    }
    assert_eq!(replies.len(), 12);
    for (code, _, data) in replies.iter().map(|p| (p.1, p.2, &p.3)) {
        match code {
            // Nak'ed with the assigned address...
            Code::ConfigureNak => assert_eq!(data[..], [0x03, 0x06, 198, 19, 0, 2]),
            // ...and rejected after Max-Failure; never Acked.
            Code::ConfigureReject => assert_eq!(data[..], insist),
            other => panic!("{other:?}"),
        }
    }
    assert!(replies.iter().any(|p| p.1 == Code::ConfigureNak));
    assert_ne!(s.ipcp_state(), State::Opened);
}

#[test]
fn re_authentication_after_a_reload_that_forbids_the_address_ends_the_session() {
    let (mut s, t) = authenticated_server_as(&server_config(), accepted("dave"));
    s.handle_address(t, Some(Ipv4Addr::new(198, 19, 0, 1)));
    sent(&mut s);
    renegotiate_lcp(&mut s, t, 2);
    s.handle_frame(t, CHAP, &chap(2, 1, &[&[1][..], &[0], b"dave"].concat()));
    events(&mut s);
    // The secrets file now excludes 198.19.0.1 for dave.
    s.handle_verdict(t, Verdict::Accept(restricted("dave")));
    let out = sent(&mut s);
    let ev = terminate_acked(&mut s, t, out);
    assert!(
        matches!(
            &ev[..],
            [SessionEvent::Closed {
                reason: EndReason::NoAddress,
                ..
            }]
        ),
        "{ev:?}"
    );
}

#[test]
fn no_address_closes_the_link() {
    let (mut s, t) = authenticated_server(&server_config());
    s.handle_address(t, None);
    assert_eq!(sent(&mut s)[0].1, Code::TerminateRequest);
    assert_eq!(s.phase(), Phase::Terminate);
    s.handle_frame(t, LCP, &pkt(Code::TerminateAck, 2, &[]));
    assert_eq!(
        events(&mut s),
        [SessionEvent::Closed {
            reason: EndReason::NoAddress,
            detail: "no address available for the client".into()
        }]
    );
}

#[test]
fn unknown_protocols_are_rejected_only_in_the_network_phase() {
    let t = Instant::now();
    let mut s = new_server(&server_config());
    s.open(t);
    sent(&mut s);
    for proto in [IPV6CP, IPCP, CCP, ppp_proto::LQR, 0x0057, 0x8281] {
        s.handle_frame(t, proto, &pkt(Code::ConfigureRequest, 1, &[]));
    }
    assert!(sent(&mut s).is_empty(), "Establish: only LCP");
    let (mut s, t) = authenticated_server(&server_config());
    for proto in [IPV6CP, ppp_proto::LQR, 0x0057, 0x8281] {
        s.handle_frame(t, proto, &pkt(Code::ConfigureRequest, 1, &[]));
        let out = sent(&mut s);
        assert_eq!(out.len(), 1, "{proto:#x}");
        assert_eq!((out[0].0, out[0].1), (LCP, Code::ProtocolReject));
        assert_eq!(out[0].3[..2], proto.to_be_bytes());
    }
    // Data frames are the data plane's; CHAP after success is the engine's.
    s.handle_frame(t, ppp_proto::IPV4, &[0x45, 0, 0, 20]);
    s.handle_frame(t, ppp_proto::COMPRESSED, &[0x90, 0x00]);
    s.handle_frame(t, ppp_proto::PAP, &[1, 1, 0, 4]);
    assert!(sent(&mut s).is_empty());
}

#[test]
fn malformed_frames_never_panic() {
    let (mut s, t) = authenticated_server(&server_config());
    s.handle_address(t, Some(POOL));
    let mut seed = 99u64;
    for _ in 0..2000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 24) as usize;
        let bytes: Vec<u8> = (0..len).map(|i| (seed >> (i % 8 * 8)) as u8).collect();
        let proto = [LCP, IPCP, CCP, CHAP, IPV6CP][(seed % 5) as usize];
        s.handle_frame(t, proto, &bytes);
        sent(&mut s);
    }
}

#[test]
fn lower_layer_down_is_immediate() {
    let (mut s, t) = authenticated_server(&server_config());
    s.lower_down(t);
    assert_eq!(
        events(&mut s),
        [SessionEvent::Closed {
            reason: EndReason::ControlClosed,
            detail: "the lower layer went down".into()
        }]
    );
    assert_eq!(s.phase(), Phase::Dead);
    s.open(t);
    assert_eq!(s.phase(), Phase::Dead, "a session is not reused");
}

#[test]
fn static_address_is_offered_to_the_daemon() {
    let t = Instant::now();
    let mut s = new_server(&server_config());
    s.open(t);
    let ours = sent(&mut s).remove(0);
    s.handle_frame(t, LCP, &pkt(Code::ConfigureRequest, 1, &[]));
    s.handle_frame(t, LCP, &pkt(Code::ConfigureAck, ours.2, &ours.3));
    s.handle_frame(t, CHAP, &chap(2, 1, &[&[1][..], &[0], b"carol"].concat()));
    let mut a = accepted("carol");
    a.static_address = Some(Ipv4Addr::new(198, 19, 7, 7));
    s.handle_verdict(t, Verdict::Accept(a.clone()));
    assert_eq!(
        events(&mut s)[2..],
        [
            SessionEvent::Authenticated(a),
            SessionEvent::AddressRequest {
                user: "carol".into(),
                static_address: Some(Ipv4Addr::new(198, 19, 7, 7)),
                addresses: AddressPolicy::any(),
            }
        ]
    );
}

// ---------------------------------------------------------------------
// The engine never reads the clock and never uses tokio.

#[test]
fn no_module_of_the_engine_reads_the_clock_or_imports_tokio() {
    let sources = [
        ("proto/fsm.rs", include_str!("fsm.rs")),
        ("proto/lcp.rs", include_str!("lcp.rs")),
        ("proto/ipcp.rs", include_str!("ipcp.rs")),
        ("proto/ccp.rs", include_str!("ccp.rs")),
        ("proto/session.rs", include_str!("session.rs")),
        ("wire/cp.rs", include_str!("../wire/cp.rs")),
        ("wire/lcp.rs", include_str!("../wire/lcp.rs")),
        ("wire/ipcp.rs", include_str!("../wire/ipcp.rs")),
        ("wire/ccp.rs", include_str!("../wire/ccp.rs")),
    ];
    // Built from pieces so this file does not match itself.
    let forbidden = [
        ["to", "kio::"].concat(),
        ["use to", "kio"].concat(),
        ["Instant", "::now"].concat(),
        ["System", "Time"].concat(),
        ["thread", "::sleep"].concat(),
        ["std::", "net::Udp"].concat(),
        ["std::", "net::Tcp"].concat(),
    ];
    for (name, text) in sources {
        // Only the code, not the test modules.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for needle in &forbidden {
            assert!(
                !code.contains(needle.as_str()),
                "{name} contains `{needle}`"
            );
        }
    }
}

// ---------------------------------------------------------------------
// MPPE key lengths (issue 14): the server offers every configured one.

fn mppe_policy(policy: MppePolicy, keys: &[KeyLength], stateful: bool) -> CcpPolicy {
    let mode = if stateful {
        StatefulMode::Allowed
    } else {
        StatefulMode::Never
    };
    CcpPolicy::new(policy, keys, mode)
}

fn server_with_mppe(policy: CcpPolicy) -> Session {
    let mut config = server_config();
    config.ccp = Some(policy);
    new_server(&config)
}

#[test]
fn clients_asking_for_one_key_length_get_it() {
    use KeyLength::*;
    for key in [Bits40, Bits56, Bits128] {
        for (server_stateful, client_stateful) in [(false, false), (true, false), (true, true)] {
            let mut server = server_with_mppe(mppe_policy(
                MppePolicy::Require,
                &[Bits128, Bits56, Bits40],
                server_stateful,
            ));
            let mut client = new_client(
                &mppe_policy(MppePolicy::Require, &[key], client_stateful),
                5,
            );
            let outcome = run(
                &mut server,
                &mut client,
                &mut Net::clean(),
                Duration::from_secs(60),
            );
            let case = format!(
                "{key:?}, stateful {server_stateful}/{client_stateful}: {:?}",
                outcome.server
            );
            assert_consistent(&server, &client);
            let s = server.network().expect(&case);
            // Both prefer stateless: stateful only if a peer insists.
            assert_eq!(
                s.mppe,
                Some(MppeParams {
                    key_length: key,
                    stateless: true
                }),
                "{case}"
            );
            assert!(s.mppe_material.is_some(), "{case}");
        }
    }
}

#[test]
fn no_common_key_length_under_require_ends_the_session() {
    use KeyLength::*;
    let mut server = server_with_mppe(mppe_policy(MppePolicy::Require, &[Bits128, Bits56], false));
    let mut client = new_client(&mppe_policy(MppePolicy::Allow, &[Bits40], false), 3);
    let outcome = run(
        &mut server,
        &mut client,
        &mut Net::clean(),
        Duration::from_secs(120),
    );
    let (reason, detail) = outcome
        .server
        .iter()
        .find_map(|e| match e {
            SessionEvent::Closed { reason, detail } => Some((*reason, detail.clone())),
            _ => None,
        })
        .expect("the server closed the link");
    assert_eq!(reason, EndReason::NegotiationFailed);
    assert!(detail.contains("MPPE is required"), "{detail}");
    assert!(
        !outcome
            .server
            .iter()
            .any(|e| matches!(e, SessionEvent::NetworkOpened(_)))
    );
}

#[test]
fn no_common_key_length_under_allow_goes_on_in_the_clear() {
    use KeyLength::*;
    let mut server = server_with_mppe(mppe_policy(MppePolicy::Allow, &[Bits128, Bits56], true));
    let mut client = new_client(&mppe_policy(MppePolicy::Allow, &[Bits40], false), 3);
    run(
        &mut server,
        &mut client,
        &mut Net::clean(),
        Duration::from_secs(120),
    );
    assert_consistent(&server, &client);
    assert_eq!(server.network().unwrap().mppe, None);
    assert_eq!(server.network().unwrap().mppe_material, None);
}
