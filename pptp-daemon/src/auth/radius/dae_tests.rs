//! Dynamic authorization: requests captured from FreeRADIUS's radclient
//! (exact bytes), the decision rules of RFC 5176 section 3, the answers'
//! authenticators, and the duplicate cache on a simulated clock.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

use super::*;
use crate::proto::concentrator::SessionId;

const SECRET: &[u8] = b"testing123";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `echo 'User-Name = "alice", Acct-Session-Id = "5f5e1000-1a2b-00000003"'
/// | radclient 127.0.0.1:3799 disconnect testing123` (FreeRADIUS 3.2),
/// as it went on the wire: no Message-Authenticator.
fn radclient_disconnect() -> Vec<u8> {
    unhex(
        "28640033b4b63b8c1a626f4d3d1abc39cebcd03e0107616c6963652c18356635\
         65313030302d316132622d3030303030303033",
    )
}

/// `echo 'Framed-IP-Address = 198.19.0.2, Session-Timeout = 2,
/// Message-Authenticator = 0x00' | radclient .. coa testing123`.
fn radclient_coa() -> Vec<u8> {
    unhex(
        "2bf500329072a7b3a30a1a7b3f3b3e002ce9fb720806c61300021b0600000002\
         5012209c452bf938bd25394ce295d34adad5",
    )
}

fn us() -> NasIdentity {
    NasIdentity {
        nas_identifier: "pptp-xdp".into(),
        nas_ip_address: None,
    }
}

fn sessions() -> Vec<DaeSession> {
    vec![
        DaeSession {
            id: SessionId::for_tests(0x1a2b, 3),
            acct_session_id: "5f5e1000-1a2b-00000003".into(),
            user: Some("alice".into()),
            address: Some(Ipv4Addr::new(198, 19, 0, 2)),
        },
        DaeSession {
            id: SessionId::for_tests(0x0101, 1),
            acct_session_id: "5f5e1000-0101-00000001".into(),
            user: Some("alice".into()),
            address: Some(Ipv4Addr::new(198, 19, 0, 3)),
        },
        DaeSession {
            id: SessionId::for_tests(0x0202, 1),
            acct_session_id: "5f5e1000-0202-00000001".into(),
            user: Some("bob".into()),
            address: None,
        },
    ]
}

fn source() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

#[test]
fn radclient_disconnect_request_parses_with_its_request_authenticator() {
    let req = parse_request(&radclient_disconnect(), SECRET).unwrap();
    assert_eq!(req.kind, Kind::Disconnect);
    assert_eq!(req.identifier, 0x64);
    assert_eq!(req.user_name.as_deref(), Some("alice"));
    assert_eq!(
        req.acct_session_id.as_deref(),
        Some("5f5e1000-1a2b-00000003")
    );
    assert!(!req.message_authenticator, "accepted without one");
    assert_eq!(
        parse_request(&radclient_disconnect(), b"testing124"),
        Err(DropReason::BadRequestAuthenticator)
    );
    // One bit flipped anywhere in the attributes.
    let mut bad = radclient_disconnect();
    bad[30] ^= 1;
    assert_eq!(
        parse_request(&bad, SECRET),
        Err(DropReason::BadRequestAuthenticator)
    );
}

#[test]
fn radclient_coa_request_parses_with_its_message_authenticator() {
    let req = parse_request(&radclient_coa(), SECRET).unwrap();
    assert_eq!(req.kind, Kind::Coa);
    assert_eq!(req.identifier, 0xf5);
    assert!(req.message_authenticator);
    assert_eq!(req.framed_ip_address, Some(Ipv4Addr::new(198, 19, 0, 2)));
    assert_eq!(req.session_timeout, Some(2));
    // A Message-Authenticator that does not verify, with a Request
    // Authenticator recomputed over it (so only the HMAC is wrong).
    let mut bad = radclient_coa();
    let ma = bad.len() - 16;
    bad[ma] ^= 1;
    bad[4..20].fill(0);
    let mut md5 = Md5::new();
    md5.update(&bad);
    md5.update(SECRET);
    let auth: [u8; 16] = md5.finalize().into();
    bad[4..20].copy_from_slice(&auth);
    assert_eq!(
        parse_request(&bad, SECRET),
        Err(DropReason::BadMessageAuthenticator)
    );
}

#[test]
fn our_request_builder_matches_radclient_byte_for_byte() {
    let built = emit_request(
        code::DISCONNECT_REQUEST,
        0x64,
        SECRET,
        &[
            (attr::USER_NAME, b"alice".to_vec()),
            (
                dae_attr::ACCT_SESSION_ID,
                b"5f5e1000-1a2b-00000003".to_vec(),
            ),
        ],
        false,
    );
    assert_eq!(built, radclient_disconnect());
    let built = emit_request(
        code::COA_REQUEST,
        0xf5,
        SECRET,
        &[
            (attr::FRAMED_IP_ADDRESS, vec![198, 19, 0, 2]),
            (attr::SESSION_TIMEOUT, 2u32.to_be_bytes().to_vec()),
        ],
        true,
    );
    // radclient puts the Message-Authenticator last, we first: same
    // contents, checked by parsing.
    let req = parse_request(&built, SECRET).unwrap();
    assert!(req.message_authenticator);
    assert_eq!(req.session_timeout, Some(2));
}

#[test]
fn other_codes_and_malformed_packets_are_dropped() {
    let access = emit_request(1, 1, SECRET, &[], false);
    assert_eq!(
        parse_request(&access, SECRET),
        Err(DropReason::UnexpectedCode(1))
    );
    assert!(matches!(
        parse_request(&radclient_disconnect()[..19], SECRET),
        Err(DropReason::Malformed(_))
    ));
}

fn decide_on(attributes: &[(u8, Vec<u8>)], coa: bool) -> Decision {
    let code = if coa {
        code::COA_REQUEST
    } else {
        code::DISCONNECT_REQUEST
    };
    let req = parse_request(&emit_request(code, 7, SECRET, attributes, true), SECRET).unwrap();
    decide(&req, &us(), &sessions())
}

fn nak(cause: u32) -> Decision {
    Decision {
        error_cause: Some(cause),
        action: Action::None,
    }
}

#[test]
fn disconnect_matches_by_acct_session_id_user_name_or_address() {
    let ids = sessions().into_iter().map(|s| s.id).collect::<Vec<_>>();
    let by_sid = decide_on(
        &[(
            dae_attr::ACCT_SESSION_ID,
            b"5f5e1000-0101-00000001".to_vec(),
        )],
        false,
    );
    assert_eq!(by_sid.error_cause, None);
    assert_eq!(by_sid.action, Action::Disconnect(vec![ids[1]]));
    // Every session of the user.
    let mut by_user = match decide_on(&[(attr::USER_NAME, b"alice".to_vec())], false).action {
        Action::Disconnect(v) => v,
        other => panic!("{other:?}"),
    };
    by_user.sort_by_key(|s| s.call_id());
    assert_eq!(by_user, vec![ids[1], ids[0]]);
    assert_eq!(
        decide_on(&[(attr::FRAMED_IP_ADDRESS, vec![198, 19, 0, 3])], false).action,
        Action::Disconnect(vec![ids[1]])
    );
    // Every identification attribute present must match.
    assert_eq!(
        decide_on(
            &[
                (attr::USER_NAME, b"bob".to_vec()),
                (attr::FRAMED_IP_ADDRESS, vec![198, 19, 0, 3]),
            ],
            false
        ),
        nak(error_cause::SESSION_CONTEXT_NOT_FOUND)
    );
    // Our NAS-Identifier is fine.
    assert_eq!(
        decide_on(
            &[
                (attr::NAS_IDENTIFIER, b"pptp-xdp".to_vec()),
                (attr::USER_NAME, b"bob".to_vec()),
            ],
            false
        )
        .action,
        Action::Disconnect(vec![ids[2]])
    );
}

#[test]
fn naks_carry_the_error_cause_rfc_5176_names() {
    assert_eq!(
        decide_on(&[(dae_attr::ACCT_SESSION_ID, b"nope".to_vec())], false),
        nak(error_cause::SESSION_CONTEXT_NOT_FOUND)
    );
    assert_eq!(
        decide_on(
            &[
                (attr::NAS_IDENTIFIER, b"another-nas".to_vec()),
                (attr::USER_NAME, b"alice".to_vec()),
            ],
            false
        ),
        nak(error_cause::NAS_IDENTIFICATION_MISMATCH)
    );
    // Filter-Id (11) naming a filter, not a rate: not something we can change.
    assert_eq!(
        decide_on(
            &[(attr::USER_NAME, b"alice".to_vec()), (11, b"gold".to_vec())],
            true
        ),
        nak(error_cause::UNSUPPORTED_ATTRIBUTE)
    );
    // Service-Type Authorize-Only (17): unsupported service.
    assert_eq!(
        decide_on(
            &[
                (attr::USER_NAME, b"alice".to_vec()),
                (attr::SERVICE_TYPE, 17u32.to_be_bytes().to_vec()),
            ],
            false
        ),
        nak(error_cause::UNSUPPORTED_SERVICE)
    );
    assert_eq!(
        decide_on(&[(attr::FRAMED_IP_ADDRESS, vec![1, 2, 3])], false),
        nak(error_cause::INVALID_REQUEST)
    );
    assert_eq!(
        decide_on(&[(attr::NAS_IDENTIFIER, b"pptp-xdp".to_vec())], false),
        nak(error_cause::MISSING_ATTRIBUTE)
    );
    // Session-Timeout in a Disconnect-Request is not ours to read.
    assert_eq!(
        decide_on(
            &[
                (attr::USER_NAME, b"alice".to_vec()),
                (attr::SESSION_TIMEOUT, 5u32.to_be_bytes().to_vec()),
            ],
            false
        ),
        nak(error_cause::UNSUPPORTED_ATTRIBUTE)
    );
    // NAS-IP-Address is checked only when we have one.
    let req = parse_request(
        &emit_request(
            code::DISCONNECT_REQUEST,
            1,
            SECRET,
            &[
                (attr::NAS_IP_ADDRESS, vec![198, 18, 0, 9]),
                (attr::USER_NAME, b"bob".to_vec()),
            ],
            false,
        ),
        SECRET,
    )
    .unwrap();
    assert_eq!(decide(&req, &us(), &sessions()).error_cause, None);
    let ours = NasIdentity {
        nas_ip_address: Some(Ipv4Addr::new(198, 18, 0, 1)),
        ..us()
    };
    assert_eq!(
        decide(&req, &ours, &sessions()),
        nak(error_cause::NAS_IDENTIFICATION_MISMATCH)
    );
}

#[test]
fn coa_session_timeout_applies_to_the_matched_sessions() {
    let ids = sessions().into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        decide_on(
            &[
                (attr::USER_NAME, b"bob".to_vec()),
                (attr::SESSION_TIMEOUT, 2u32.to_be_bytes().to_vec()),
            ],
            true
        ),
        Decision {
            error_cause: None,
            action: Action::Change {
                sessions: vec![ids[2]],
                session_timeout: Some(Some(Duration::from_secs(2))),
                rate: None,
            },
        }
    );
    // Zero lifts the limit.
    assert_eq!(
        decide_on(
            &[
                (attr::USER_NAME, b"bob".to_vec()),
                (attr::SESSION_TIMEOUT, 0u32.to_be_bytes().to_vec()),
            ],
            true
        )
        .action,
        Action::Change {
            sessions: vec![ids[2]],
            session_timeout: Some(None),
            rate: None,
        }
    );
    assert_eq!(
        decide_on(
            &[
                (attr::USER_NAME, b"carol".to_vec()),
                (attr::SESSION_TIMEOUT, 2u32.to_be_bytes().to_vec()),
            ],
            true
        ),
        nak(error_cause::SESSION_CONTEXT_NOT_FOUND)
    );
}

/// A CoA's Mikrotik-Rate-Limit ("rx/tx") or Filter-Id (accel-ppp's
/// "down/up" kbit/s) changes the matched sessions' rate; MikroTik's wins;
/// a malformed Mikrotik-Rate-Limit is an Invalid-Request, another vendor's
/// attribute unsupported.
#[test]
fn coa_rate_limit_applies_to_the_matched_sessions() {
    use crate::auth::radius::{mikrotik, packet::vendor_value};
    let ids = sessions().into_iter().map(|s| s.id).collect::<Vec<_>>();
    let bob = (attr::USER_NAME, b"bob".to_vec());
    let mikrotik = |t: &str| {
        (
            attr::VENDOR_SPECIFIC,
            vendor_value(mikrotik::VENDOR_ID, mikrotik::RATE_LIMIT, t.as_bytes()),
        )
    };
    let change = |up_bps, down_bps| Action::Change {
        sessions: vec![ids[2]],
        session_timeout: None,
        rate: Some(RateLimit { up_bps, down_bps }),
    };
    assert_eq!(
        decide_on(&[bob.clone(), mikrotik("2M/8M")], true).action,
        change(2_000_000, 8_000_000)
    );
    assert_eq!(
        decide_on(
            &[bob.clone(), (attr::FILTER_ID, b"8000/2000".to_vec())],
            true
        )
        .action,
        change(2_000_000, 8_000_000)
    );
    assert_eq!(
        decide_on(
            &[
                bob.clone(),
                (attr::FILTER_ID, b"1/1".to_vec()),
                mikrotik("3M/4M")
            ],
            true
        )
        .action,
        change(3_000_000, 4_000_000)
    );
    assert_eq!(
        decide_on(&[bob.clone(), mikrotik("fast")], true),
        nak(error_cause::INVALID_REQUEST)
    );

    let other_vendor = (attr::VENDOR_SPECIFIC, vendor_value(9, 1, b"x"));
    assert_eq!(
        decide_on(&[bob, other_vendor], true),
        nak(error_cause::UNSUPPORTED_ATTRIBUTE)
    );
}

/// Checks an answer as radclient does: Response Authenticator
/// MD5(Code + Identifier + Length + Request Authenticator + Attributes +
/// Secret), and the Message-Authenticator over the answer with the
/// Request Authenticator in place.
fn check_answer(answer: &[u8], request: &[u8]) {
    let mut copy = answer.to_vec();
    copy[4..20].copy_from_slice(&request[4..20]);
    let mut md5 = Md5::new();
    md5.update(&copy);
    md5.update(SECRET);
    let auth: [u8; 16] = md5.finalize().into();
    assert_eq!(answer[4..20], auth, "Response Authenticator");
    assert_eq!(&answer[20..22], &[attr::MESSAGE_AUTHENTICATOR, 18]);
    copy[22..38].fill(0);
    assert_eq!(
        answer[22..38],
        hmac_md5(SECRET, &copy),
        "Message-Authenticator"
    );
}

#[test]
fn answers_are_signed_and_carry_error_cause_and_proxy_state() {
    let mut dae = Dae::new(SECRET, us());
    let t = Instant::now();
    let request = radclient_disconnect();
    let Outcome::Answer {
        decision, response, ..
    } = dae.handle_datagram(t, source(), &request, sessions)
    else {
        panic!("answered")
    };
    assert_eq!(
        decision.action,
        Action::Disconnect(vec![SessionId::for_tests(0x1a2b, 3)])
    );
    // Disconnect-ACK, same identifier, 38 octets: header and
    // Message-Authenticator only.
    assert_eq!(&response[..4], &[41, 0x64, 0, 38]);
    check_answer(&response, &request);

    let request = emit_request(
        code::COA_REQUEST,
        9,
        SECRET,
        &[
            (attr::PROXY_STATE, b"ps1".to_vec()),
            (dae_attr::ACCT_SESSION_ID, b"gone".to_vec()),
        ],
        false,
    );
    let Outcome::Answer { response, .. } = dae.handle_datagram(t, source(), &request, sessions)
    else {
        panic!("answered")
    };
    check_answer(&response, &request);
    // CoA-NAK: Message-Authenticator, Error-Cause 503, Proxy-State.
    assert_eq!(&response[..4], &[45, 9, 0, 49]);
    assert_eq!(&response[38..44], &[101, 6, 0, 0, 0x01, 0xf7]);
    assert_eq!(&response[44..], &[33, 5, b'p', b's', b'1']);
}

#[test]
fn duplicates_get_the_same_answer_without_acting_again() {
    let mut dae = Dae::new(SECRET, us());
    let t = Instant::now();
    let request = radclient_disconnect();
    let first = match dae.handle_datagram(t, source(), &request, sessions) {
        Outcome::Answer { response, .. } => response,
        other => panic!("{other:?}"),
    };
    // The retransmission: the cached answer; the sessions are not even
    // looked at.
    let again = dae.handle_datagram(t + Duration::from_secs(4), source(), &request, || {
        panic!("a duplicate must not be decided again")
    });
    assert_eq!(again, Outcome::Duplicate(first.clone()));
    // From another port of the client: a new request.
    let other: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    assert!(matches!(
        dae.handle_datagram(t + Duration::from_secs(4), other, &request, sessions),
        Outcome::Answer { .. }
    ));
    // After the window: a new request again.
    assert!(matches!(
        dae.handle_datagram(t + DUPLICATE_WINDOW, source(), &request, sessions),
        Outcome::Answer { .. }
    ));
    // A wrong secret is never cached.
    let mut wrong = Dae::new(b"other".to_vec(), us());
    assert_eq!(
        wrong.handle_datagram(t, source(), &request, sessions),
        Outcome::Drop(DropReason::BadRequestAuthenticator)
    );
    assert_eq!(wrong.cached(), 0);
}

#[test]
fn the_duplicate_cache_is_bounded() {
    let mut dae = Dae::new(SECRET, us());
    let t = Instant::now();
    for i in 0..(MAX_CACHED + 100) {
        let port = 1024 + u16::try_from(i / 256).unwrap();
        let from = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let request = emit_request(
            code::DISCONNECT_REQUEST,
            (i % 256) as u8,
            SECRET,
            &[(attr::USER_NAME, b"carol".to_vec())],
            false,
        );
        dae.handle_datagram(t, from, &request, sessions);
        assert!(dae.cached() <= MAX_CACHED);
    }
    assert_eq!(dae.cached(), MAX_CACHED);
    // And everything expires.
    dae.handle_datagram(t + DUPLICATE_WINDOW, source(), &[0; 3], sessions);
    assert_eq!(dae.cached(), 0);
}
