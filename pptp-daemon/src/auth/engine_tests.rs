//! Our peer engines against our server engines, with the secrets file as
//! the verifier, on a simulated clock: every method succeeds, wrong
//! passwords fail with the right Failure (and retries), lost packets are
//! recovered, and the MPPE keys of both ends fit together.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    Accepted, AuthEngine, AuthEvent, AuthFactory, AuthMethod, Credentials, MppeMaterial, Rejection,
    Verdict, Verifier,
    limiter::{LimitedVerifier, SourceLimits},
    peer::{PeerAuthFactory, PeerSettings},
    random::seeded_random,
    secrets::SecretsFile,
    server::{ServerAuthFactory, ServerSettings},
};
use crate::{
    mppe::{KeyLength, MppeParams, cipher::MppeCipher},
    wire::chap::{self as chap_wire, FailureCode, MsChapFailure},
};

const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
const ALL: [AuthMethod; 4] = [
    AuthMethod::MsChapV2,
    AuthMethod::MsChapV1,
    AuthMethod::ChapMd5,
    AuthMethod::Pap,
];

fn secrets() -> Arc<SecretsFile> {
    Arc::new(
        SecretsFile::from_text(
            b"alice pptp-xdp \"correct horse\" 198.19.0.20\n\
              bob   *        b0b             *\n\
              carol *        c               -\n",
            "chap-secrets",
            "pptp-xdp",
        )
        .unwrap(),
    )
}

/// Which packets the link loses: (direction, index of the packet in that
/// direction) -> lost.
type LossFn = Box<dyn FnMut(Direction, usize) -> bool>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    ToPeer,
    ToServer,
}

/// What happened on a simulated link.
struct Outcome {
    server: Vec<AuthEvent>,
    peer: Vec<AuthEvent>,
    /// Every packet sent, with its direction and the simulated time.
    packets: Vec<(Direction, Duration, Vec<u8>)>,
    /// When each Verify was answered.
    verdicts: Vec<Duration>,
}

impl Outcome {
    fn server_final(&self) -> &AuthEvent {
        self.server
            .iter()
            .find(|e| !matches!(e, AuthEvent::Verify(_)))
            .expect("the server engine finished")
    }

    fn peer_final(&self) -> &AuthEvent {
        self.peer.first().expect("the peer engine finished")
    }

    fn sent(&self, dir: Direction) -> impl Iterator<Item = (Duration, &[u8])> {
        self.packets
            .iter()
            .filter(move |(d, ..)| *d == dir)
            .map(|(_, t, p)| (*t, p.as_slice()))
    }

    fn chap(&self, dir: Direction) -> Vec<(Duration, chap_wire::Repr<'_>)> {
        self.sent(dir)
            .map(|(t, p)| {
                (
                    t,
                    chap_wire::Repr::parse(&chap_wire::Packet::new_checked(p).unwrap()).unwrap(),
                )
            })
            .collect()
    }
}

/// Runs both engines until both have finished (or nothing is left to do).
fn run(
    method: AuthMethod,
    server: &mut dyn AuthEngine,
    peer: &mut dyn AuthEngine,
    verifier: &dyn Verifier,
    mut lose: LossFn,
    answer_verify: bool,
) -> Outcome {
    assert_eq!((server.method(), peer.method()), (method, method));
    let t0 = Instant::now();
    let mut now = t0;
    let mut out = Outcome {
        server: Vec::new(),
        peer: Vec::new(),
        packets: Vec::new(),
        verdicts: Vec::new(),
    };
    let mut counts = [0usize; 2];
    server.start(now);
    peer.start(now);
    for _ in 0..10_000 {
        let mut busy = false;
        while let Some(p) = server.poll_transmit() {
            busy = true;
            out.packets.push((Direction::ToPeer, now - t0, p.clone()));
            counts[0] += 1;
            if !lose(Direction::ToPeer, counts[0] - 1) {
                peer.handle_packet(now, &p);
            }
        }
        while let Some(p) = peer.poll_transmit() {
            busy = true;
            out.packets.push((Direction::ToServer, now - t0, p.clone()));
            counts[1] += 1;
            if !lose(Direction::ToServer, counts[1] - 1) {
                server.handle_packet(now, &p);
            }
        }
        while let Some(e) = server.poll_event() {
            busy = true;
            if let AuthEvent::Verify(credentials) = &e
                && answer_verify
            {
                let verdict = verifier.verify(SOURCE, credentials);
                out.verdicts.push(now - t0);
                server.handle_verdict(now, verdict);
            }
            out.server.push(e);
        }
        while let Some(e) = peer.poll_event() {
            busy = true;
            out.peer.push(e);
        }
        if busy {
            continue;
        }
        let next = [server.poll_timeout(), peer.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else {
            break;
        };
        now = now.max(next);
        server.handle_timeout(now);
        peer.handle_timeout(now);
    }
    out
}

fn engines(
    method: AuthMethod,
    user: &str,
    password: &str,
    seed: u64,
) -> (Box<dyn AuthEngine>, Box<dyn AuthEngine>) {
    let mut server = ServerAuthFactory::new(ServerSettings::default(), seeded_random(seed));
    let mut peer = PeerAuthFactory::new(PeerSettings::new(user, password), seeded_random(seed + 1));
    (server.engine(method), peer.engine(method))
}

fn no_loss() -> LossFn {
    Box::new(|_, _| false)
}

fn exchange(method: AuthMethod, user: &str, password: &str) -> Outcome {
    let (mut server, mut peer) = engines(method, user, password, 1);
    run(
        method,
        server.as_mut(),
        peer.as_mut(),
        &secrets(),
        no_loss(),
        true,
    )
}

fn succeeded(event: &AuthEvent) -> &Accepted {
    match event {
        AuthEvent::Succeeded(a) => a,
        other => panic!("expected success, got {other:?}"),
    }
}

fn failed(event: &AuthEvent) -> &str {
    match event {
        AuthEvent::Failed { reason } => reason,
        other => panic!("expected failure, got {other:?}"),
    }
}

#[test]
fn every_method_authenticates_our_peer() {
    for method in ALL {
        let out = exchange(method, "alice", "correct horse");
        let server = succeeded(out.server_final());
        assert_eq!(server.user, "alice", "{method:?}");
        assert_eq!(server.static_address, Some(Ipv4Addr::new(198, 19, 0, 20)));
        let peer = succeeded(out.peer_final());
        assert_eq!(peer.user, "alice");
        assert_eq!(peer.static_address, None);
        assert_eq!(
            server.authenticator_response, peer.authenticator_response,
            "{method:?}"
        );
        assert_eq!(
            server.mppe.is_some(),
            matches!(method, AuthMethod::MsChapV1 | AuthMethod::MsChapV2)
        );
        assert_eq!(
            out.server.len(),
            2,
            "one Verify, one Succeeded: {:?}",
            out.server
        );
        assert_eq!(out.peer.len(), 1);
        // Nothing waits for a timer any more.
        assert!(out.verdicts.len() == 1);
    }
}

#[test]
fn challenges_carry_our_name_and_the_method_s_length() {
    for (method, len) in [
        (AuthMethod::MsChapV2, 16),
        (AuthMethod::MsChapV1, 8),
        (AuthMethod::ChapMd5, 16),
    ] {
        let out = exchange(method, "alice", "correct horse");
        let chap = out.chap(Direction::ToPeer);
        let (_, chap_wire::Repr::Challenge { value, name, .. }) = chap[0] else {
            panic!("first packet is not a Challenge: {:?}", chap[0]);
        };
        assert_eq!((value.len(), name), (len, &b"pptp-xdp"[..]), "{method:?}");
        let (_, chap_wire::Repr::Success { message, .. }) = chap[1] else {
            panic!("second packet is not a Success");
        };
        if method == AuthMethod::MsChapV2 {
            let s = chap_wire::MsChapV2Success::parse(message).unwrap();
            assert_eq!(s.message, Some(&b"Access granted"[..]));
        } else {
            assert_eq!(message, b"Access granted");
        }
        let responses = out.chap(Direction::ToServer);
        let (
            _,
            chap_wire::Repr::Response {
                identifier, name, ..
            },
        ) = responses[0]
        else {
            panic!("not a Response");
        };
        assert_eq!(name, b"alice");
        assert_eq!(identifier, chap[0].1.identifier());
    }
}

#[test]
fn mppe_keys_of_both_ends_fit_together() {
    for method in [AuthMethod::MsChapV2, AuthMethod::MsChapV1] {
        let out = exchange(method, "alice", "correct horse");
        let server = succeeded(out.server_final()).mppe.clone().unwrap();
        let peer = succeeded(out.peer_final()).mppe.clone().unwrap();
        if method == AuthMethod::MsChapV2 {
            let (
                MppeMaterial::V2 {
                    master_send_key: ss,
                    master_recv_key: sr,
                },
                MppeMaterial::V2 {
                    master_send_key: ps,
                    master_recv_key: pr,
                },
            ) = (&server, &peer)
            else {
                panic!("not MS-CHAPv2 material");
            };
            assert_eq!((ss, sr), (pr, ps));
            assert_ne!(ss, sr);
        } else {
            assert_eq!(server, peer);
        }
        for stateless in [true, false] {
            for key_length in [KeyLength::Bits40, KeyLength::Bits128] {
                let params = MppeParams {
                    key_length,
                    stateless,
                };
                let mut s = MppeCipher::new(&server, params);
                let mut p = MppeCipher::new(&peer, params);
                for i in 0..300u16 {
                    let plain = [0x00, 0x21, (i >> 8) as u8, i as u8, 0x45];
                    let mut wire = [0u8; 7];
                    let mut back = [0u8; 5];
                    s.encryptor.encrypt(&plain, &mut wire).unwrap();
                    p.decryptor.decrypt(&wire, &mut back).unwrap();
                    assert_eq!(back, plain);
                    p.encryptor.encrypt(&plain, &mut wire).unwrap();
                    s.decryptor.decrypt(&wire, &mut back).unwrap();
                    assert_eq!(back, plain);
                }
            }
        }
    }
}

#[test]
fn ms_chap_wrong_password_retries_then_fails_with_691() {
    for method in [AuthMethod::MsChapV2, AuthMethod::MsChapV1] {
        let out = exchange(method, "alice", "wrong");
        let reason = failed(out.server_final());
        assert!(
            reason.contains("BadCredentials") && reason.contains("3 attempt"),
            "{reason}"
        );
        assert!(failed(out.peer_final()).contains("error 691"));
        let to_peer = out.chap(Direction::ToPeer);
        let failures: Vec<_> = to_peer
            .iter()
            .filter_map(|(t, r)| match r {
                chap_wire::Repr::Failure {
                    identifier,
                    message,
                } => Some((*t, *identifier, MsChapFailure::parse(message).unwrap())),
                _ => None,
            })
            .collect();
        // max_attempts = 3: R=1, R=1, R=0.
        assert_eq!(failures.len(), 3, "{method:?}");
        let retries: Vec<bool> = failures.iter().map(|f| f.2.retry).collect();
        assert_eq!(retries, [true, true, false]);
        assert!(
            failures
                .iter()
                .all(|f| f.2.error == FailureCode::AuthenticationFailure)
        );
        let v2 = method == AuthMethod::MsChapV2;
        assert!(
            failures
                .iter()
                .all(|f| f.2.version == Some(if v2 { 3 } else { 2 }))
        );
        // Each Failure comes a failure delay after its verdict.
        for ((t, ..), verdict) in failures.iter().zip(&out.verdicts) {
            assert_eq!(*t - *verdict, Duration::from_secs(1));
        }
        // Each retry answers the Failure's challenge with Identifier + 1.
        let responses: Vec<_> = out
            .chap(Direction::ToServer)
            .into_iter()
            .map(|(_, r)| r.identifier())
            .collect();
        assert_eq!(responses.len(), 3);
        assert_eq!(responses[1], failures[0].1.wrapping_add(1));
        assert_eq!(responses[2], failures[1].1.wrapping_add(1));
        let challenges: Vec<_> = failures.iter().map(|f| f.2.challenge).collect();
        assert!(challenges[0].is_some() && challenges[0] != challenges[1]);
        if v2 {
            assert!(
                failures[2].2.challenge.is_some(),
                "MS-CHAPv2: C= MUST be present"
            );
            assert_eq!(failures[0].2.message, Some(&b"Access denied"[..]));
        } else {
            assert_eq!(failures[2].2.challenge, None);
        }
        // Every Verify checked a different challenge.
        let checked: Vec<Vec<u8>> = out
            .server
            .iter()
            .filter_map(|e| match e {
                AuthEvent::Verify(Credentials::MsChapV2 {
                    authenticator_challenge,
                    ..
                }) => Some(authenticator_challenge.to_vec()),
                AuthEvent::Verify(Credentials::MsChapV1 { challenge, .. }) => {
                    Some(challenge.to_vec())
                }
                _ => None,
            })
            .collect();
        assert_eq!(checked.len(), 3);
        assert!(checked[0] != checked[1] && checked[1] != checked[2]);
    }
}

#[test]
fn chap_md5_and_pap_wrong_password_fail_at_once() {
    let out = exchange(AuthMethod::ChapMd5, "alice", "wrong");
    assert!(failed(out.server_final()).contains("1 attempt"));
    assert!(failed(out.peer_final()).contains("refused"));
    let last = out.chap(Direction::ToPeer).pop().unwrap().1;
    assert!(matches!(
        last,
        chap_wire::Repr::Failure {
            message: b"Access denied",
            ..
        }
    ));

    let out = exchange(AuthMethod::Pap, "alice", "wrong");
    failed(out.server_final());
    failed(out.peer_final());
    let (t, nak) = out.sent(Direction::ToPeer).last().unwrap();
    assert_eq!(nak[0], 3, "Authenticate-Nak");
    assert_eq!(t, Duration::from_secs(1), "after the failure delay");

    // Unknown users fail the same way.
    let out = exchange(AuthMethod::MsChapV2, "mallory", "x");
    assert!(failed(out.peer_final()).contains("691"));
}

#[test]
fn no_dialin_permission_is_649_without_retry() {
    let out = exchange(AuthMethod::MsChapV2, "carol", "c");
    failed(out.server_final());
    let (_, chap_wire::Repr::Failure { message, .. }) = out.chap(Direction::ToPeer).pop().unwrap()
    else {
        panic!("no Failure");
    };
    let f = MsChapFailure::parse(message).unwrap();
    assert_eq!((f.error, f.retry), (FailureCode::NoDialinPermission, false));
    assert!(failed(out.peer_final()).contains("error 649"));
}

#[test]
fn a_lost_challenge_is_retransmitted() {
    let (mut server, mut peer) = engines(AuthMethod::MsChapV2, "bob", "b0b", 3);
    let lose: LossFn = Box::new(|dir, i| dir == Direction::ToPeer && i == 0);
    let out = run(
        AuthMethod::MsChapV2,
        server.as_mut(),
        peer.as_mut(),
        &secrets(),
        lose,
        true,
    );
    succeeded(out.server_final());
    succeeded(out.peer_final());
    let challenges: Vec<_> = out
        .chap(Direction::ToPeer)
        .into_iter()
        .filter(|(_, r)| matches!(r, chap_wire::Repr::Challenge { .. }))
        .collect();
    assert_eq!(challenges.len(), 2);
    assert_eq!(challenges[1].0 - challenges[0].0, Duration::from_secs(3));
    assert_eq!(
        challenges[0].1, challenges[1].1,
        "same Identifier and value"
    );
}

#[test]
fn a_lost_success_is_sent_again_for_the_repeated_response() {
    for method in [
        AuthMethod::MsChapV2,
        AuthMethod::MsChapV1,
        AuthMethod::ChapMd5,
    ] {
        let (mut server, mut peer) = engines(method, "bob", "b0b", 4);
        // Packet 0 to the peer is the Challenge, 1 the Success.
        let lose: LossFn = Box::new(|dir, i| dir == Direction::ToPeer && i == 1);
        let out = run(
            method,
            server.as_mut(),
            peer.as_mut(),
            &secrets(),
            lose,
            true,
        );
        succeeded(out.peer_final());
        succeeded(out.server_final());
        let successes = out
            .server
            .iter()
            .filter(|e| matches!(e, AuthEvent::Succeeded(_)))
            .count();
        assert_eq!(successes, 1, "{method:?}");
        let responses = out.chap(Direction::ToServer);
        assert_eq!(responses.len(), 2);
        assert_eq!(
            responses[0].1, responses[1].1,
            "the same Response, repeated"
        );
        let to_peer = out.chap(Direction::ToPeer);
        assert_eq!(to_peer[1].1, to_peer[2].1, "the same Success, repeated");
    }
}

#[test]
fn pap_request_repeated_after_the_ack_gets_an_ack() {
    let (mut server, mut peer) = engines(AuthMethod::Pap, "bob", "b0b", 5);
    let lose: LossFn = Box::new(|dir, i| dir == Direction::ToPeer && i == 0);
    let out = run(
        AuthMethod::Pap,
        server.as_mut(),
        peer.as_mut(),
        &secrets(),
        lose,
        true,
    );
    succeeded(out.peer_final());
    let requests: Vec<_> = out.sent(Direction::ToServer).collect();
    assert_eq!(requests.len(), 2);
    assert_ne!(
        requests[0].1[1], requests[1].1[1],
        "a new Identifier each time"
    );
    let acks: Vec<_> = out.sent(Direction::ToPeer).collect();
    assert_eq!(acks.len(), 2);
    assert_eq!(
        acks[1].1[1], requests[1].1[1],
        "the Ack copies the Identifier"
    );
}

#[test]
fn a_wrong_authenticator_response_fails_the_peer() {
    /// A verifier that accepts but hands out a wrong Authenticator Response.
    struct Liar(Arc<SecretsFile>);
    impl Verifier for Liar {
        fn verify(&self, source: IpAddr, credentials: &Credentials) -> Verdict {
            match self.0.verify(source, credentials) {
                Verdict::Accept(mut a) => {
                    if let Some(r) = a.authenticator_response.as_mut() {
                        r[0] ^= 0x80;
                    }
                    Verdict::Accept(a)
                }
                other => other,
            }
        }
    }
    let (mut server, mut peer) = engines(AuthMethod::MsChapV2, "bob", "b0b", 6);
    let out = run(
        AuthMethod::MsChapV2,
        server.as_mut(),
        peer.as_mut(),
        &Liar(secrets()),
        no_loss(),
        true,
    );
    succeeded(out.server_final());
    assert!(failed(out.peer_final()).contains("mutual authentication"));
}

#[test]
fn a_rate_limited_source_is_refused_without_retry() {
    let limited = LimitedVerifier::new(
        secrets(),
        SourceLimits {
            max_failures: 2,
            window: Duration::from_secs(300),
            max_sources: 16,
        },
    );
    // Three wrong attempts in one session: the third is refused unchecked.
    let (mut server, mut peer) = engines(AuthMethod::MsChapV2, "bob", "wrong", 7);
    let out = run(
        AuthMethod::MsChapV2,
        server.as_mut(),
        peer.as_mut(),
        &limited,
        no_loss(),
        true,
    );
    assert!(failed(out.server_final()).contains("RateLimited"));
    // The right password from the same source now fails too, at once.
    let (mut server, mut peer) = engines(AuthMethod::MsChapV2, "bob", "b0b", 8);
    let out = run(
        AuthMethod::MsChapV2,
        server.as_mut(),
        peer.as_mut(),
        &limited,
        no_loss(),
        true,
    );
    assert!(failed(out.server_final()).contains("RateLimited"));
    let (_, chap_wire::Repr::Failure { message, .. }) = out.chap(Direction::ToPeer).pop().unwrap()
    else {
        panic!("no Failure");
    };
    let f = MsChapFailure::parse(message).unwrap();
    assert_eq!(
        (f.error, f.retry),
        (FailureCode::AuthenticationFailure, false)
    );
}

#[test]
fn silence_and_stuck_back_ends_end_in_failure() {
    // The peer never answers: 10 Challenges, 3 s apart, then Failed.
    let mut factory = ServerAuthFactory::new(ServerSettings::default(), seeded_random(9));
    let mut server = factory.engine(AuthMethod::MsChapV2);
    let t0 = Instant::now();
    server.start(t0);
    let mut sent = 0;
    let mut now = t0;
    while let Some(deadline) = server.poll_timeout() {
        while server.poll_transmit().is_some() {
            sent += 1;
        }
        now = deadline;
        server.handle_timeout(now);
    }
    assert_eq!(sent, 10);
    assert_eq!(now - t0, Duration::from_secs(30));
    assert!(failed(&server.poll_event().unwrap()).contains("no Response"));

    // The verdict never comes: Failure (691, no retry) after 20 s, before
    // the peer gives up on its Response (10 times 3 s).
    let (mut server, mut peer) = engines(AuthMethod::MsChapV2, "bob", "b0b", 10);
    let out = run(
        AuthMethod::MsChapV2,
        server.as_mut(),
        peer.as_mut(),
        &secrets(),
        no_loss(),
        false,
    );
    assert!(failed(out.server_final()).contains("BackendUnavailable"));
    assert!(failed(out.peer_final()).contains("691"));
    let (t, _) = out.chap(Direction::ToPeer).pop().unwrap();
    assert_eq!(t, Duration::from_secs(20));

    // The peer gets no Challenge at all.
    let mut factory = PeerAuthFactory::new(PeerSettings::new("bob", "b0b"), seeded_random(11));
    let mut peer = factory.engine(AuthMethod::ChapMd5);
    peer.start(t0);
    peer.handle_timeout(peer.poll_timeout().unwrap());
    assert!(failed(&peer.poll_event().unwrap()).contains("no Challenge"));
}

#[test]
fn late_verdicts_and_garbage_are_ignored() {
    let (mut server, _) = engines(AuthMethod::MsChapV2, "bob", "b0b", 12);
    let t0 = Instant::now();
    server.handle_verdict(t0, Verdict::Reject(Rejection::BadCredentials));
    server.start(t0);
    for junk in [&[][..], &[2, 0, 0, 4], &[0xff; 64], &[2, 1, 0, 200, 49]] {
        server.handle_packet(t0, junk);
    }
    assert!(server.poll_event().is_none());
    assert_eq!(
        server.poll_transmit().map(|p| p[0]),
        Some(1),
        "only the Challenge"
    );
    assert!(server.poll_transmit().is_none());
}

#[test]
fn engines_do_not_show_passwords() {
    let settings = PeerSettings::new("alice", "correct horse");
    let peer = super::peer::PeerEngine::new(
        AuthMethod::MsChapV2,
        Arc::new(settings.clone()),
        seeded_random(13),
    );
    for shown in [format!("{settings:?}"), format!("{peer:?}")] {
        assert!(
            shown.contains("alice") && !shown.contains("correct horse"),
            "{shown}"
        );
    }
    let out = exchange(AuthMethod::Pap, "alice", "correct horse");
    for e in out.server.iter().chain(&out.peer) {
        assert!(!format!("{e:?}").contains("correct horse"), "{e:?}");
    }
}

/// The per-session limit survives LCP renegotiation: the session hands a
/// new engine the Responses earlier engines had refused.
#[test]
fn resumed_attempts_count_against_the_limit() {
    for method in [AuthMethod::MsChapV2, AuthMethod::MsChapV1] {
        // Two of three used: the first wrong password is the last try (R=0).
        let (mut server, mut peer) = engines(method, "alice", "wrong", 3);
        server.resume_attempts(2);
        let out = run(
            method,
            server.as_mut(),
            peer.as_mut(),
            &secrets(),
            no_loss(),
            true,
        );
        let reason = failed(out.server_final());
        assert!(reason.contains("after 3 attempt(s)"), "{reason}");
        let retries: Vec<bool> = out
            .chap(Direction::ToPeer)
            .iter()
            .filter_map(|(_, r)| match r {
                chap_wire::Repr::Failure { message, .. } => {
                    Some(MsChapFailure::parse(message).unwrap().retry)
                }
                _ => None,
            })
            .collect();
        assert_eq!(retries, [false], "{method:?}");
    }
    // All used: the engine fails at once, without a Challenge to answer.
    for method in ALL {
        let (mut server, _) = engines(method, "alice", "correct horse", 4);
        server.resume_attempts(3);
        server.start(Instant::now());
        assert_eq!(server.poll_transmit(), None, "{method:?}");
        let event = server.poll_event().expect("Failed");
        assert!(failed(&event).contains("no attempt left"), "{method:?}");
        assert_eq!(server.poll_timeout(), None);
    }
    // Once started, an engine keeps its own count.
    let (mut server, _) = engines(AuthMethod::MsChapV2, "alice", "x", 5);
    server.start(Instant::now());
    server.resume_attempts(3);
    assert!(server.poll_event().is_none());
}

/// The verdict carries the address column for the daemon and the session.
#[test]
fn the_verdict_carries_the_address_policy() {
    let out = exchange(AuthMethod::MsChapV2, "alice", "correct horse");
    let alice = succeeded(out.server_final());
    assert!(alice.addresses.allows(Ipv4Addr::new(198, 19, 0, 20)));
    assert!(!alice.addresses.allows(Ipv4Addr::new(198, 19, 0, 21)));
    let out = exchange(AuthMethod::MsChapV2, "bob", "b0b");
    assert!(succeeded(out.server_final()).addresses.is_any());
}

/// A user name crafted to forge log lines comes out escaped in the
/// failure reason that the session logs.
#[test]
fn failure_reasons_escape_the_user_name() {
    let (mut server, mut peer) = engines(AuthMethod::ChapMd5, "eve\nFAKE LOG LINE", "x", 6);
    let out = run(
        AuthMethod::ChapMd5,
        server.as_mut(),
        peer.as_mut(),
        &secrets(),
        no_loss(),
        true,
    );
    let reason = failed(out.server_final());
    assert!(
        reason.contains("eve\\nFAKE LOG LINE") && !reason.contains('\n'),
        "{reason}"
    );
}
