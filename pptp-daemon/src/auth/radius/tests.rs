//! Tests of the RADIUS back end: published vectors (RFC 2202, RFC 2865
//! section 7.1, RFC 2759 section 9), the RFC 2548 key encryption written
//! out independently here, the verdict mapping, and the client's
//! retransmission, failover and hold-down on a simulated clock.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    sync::Arc,
    time::{Duration, Instant},
};

use md5::{Digest, Md5};

use super::{
    client::{ClientSettings, DropReason, Event, Health, Server, Transaction},
    packet::{
        self, AccessRequest, Code, Packet, RequestAttribute, ResponseError, attr, check_response,
        emit_response, hmac_md5, ms, vendor_value,
    },
    *,
};
use crate::{
    auth::{
        AuthEvent, AuthFactory, AuthMethod, SessionAttributes, mschap, mschapv2,
        peer::{PeerAuthFactory, PeerSettings},
        random::{RandomSource, seeded_random},
        server::{ServerAuthFactory, ServerSettings},
    },
    mppe::{Role, keys::mschapv2_material},
};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn arr16(v: &[u8]) -> [u8; 16] {
    v.try_into().unwrap()
}

// ----- HMAC-MD5 (RFC 2202 section 2) -----

#[test]
fn hmac_md5_rfc2202_vectors() {
    assert_eq!(
        hmac_md5(&[0x0b; 16], b"Hi There").to_vec(),
        hex("9294727a3638bb1c13f48ef8158bfc9d")
    );
    assert_eq!(
        hmac_md5(b"Jefe", b"what do ya want for nothing?").to_vec(),
        hex("750c783e6ab0b503eaa86e310a5db738")
    );
    // A key longer than the block is hashed first (test case 6).
    assert_eq!(
        hmac_md5(
            &[0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )
        .to_vec(),
        hex("6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd")
    );
}

// ----- RFC 2865 section 7.1 -----

const RFC_SECRET: &[u8] = b"xyzzy5461";
const RFC_REQUEST: &str = "01000038 0f403f9473978057bd83d5cb98f4227a 01066e656d6f \
     02120dbe708d93d413ce3196e43f782a0aee 0406c0a80110 050600000003";
const RFC_ACCEPT: &str = "02000026 86fe220e7624ba2a1005f6bf9b55e0b2 060600000001 \
     0f0600000000 0e06c0a80103";

#[test]
fn user_password_hiding_matches_rfc2865_example() {
    let ra = arr16(&hex("0f403f9473978057bd83d5cb98f4227a"));
    let hidden = packet::hide_password(b"arctangent", RFC_SECRET, &ra).unwrap();
    assert_eq!(hidden, hex("0dbe708d93d413ce3196e43f782a0aee"));
    let plain = packet::unhide_password(&hidden, RFC_SECRET, &ra);
    assert_eq!(&plain[..10], b"arctangent");
    assert_eq!(&plain[10..], &[0; 6]);
    // Two blocks: the second is chained on the first ciphertext block.
    let long = packet::hide_password(&[b'x'; 17], RFC_SECRET, &ra).unwrap();
    assert_eq!(long.len(), 32);
    let mut b2 = Md5::new();
    b2.update(RFC_SECRET);
    b2.update(&long[..16]);
    let b2 = b2.finalize();
    assert_eq!(long[16], b'x' ^ b2[0]);
    assert_eq!(long[17], b2[1]);
    assert!(packet::hide_password(&[0; 129], RFC_SECRET, &ra).is_err());
}

#[test]
fn rfc2865_request_parses() {
    let bytes = hex(RFC_REQUEST);
    let p = Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!(p.code(), Code::AccessRequest);
    assert_eq!(p.identifier(), 0);
    assert_eq!(p.length(), 56);
    let attrs: Vec<_> = p.attributes().map(|a| (a.kind, a.value.to_vec())).collect();
    assert_eq!(
        attrs,
        [
            (attr::USER_NAME, b"nemo".to_vec()),
            (attr::USER_PASSWORD, hex("0dbe708d93d413ce3196e43f782a0aee")),
            (attr::NAS_IP_ADDRESS, vec![192, 168, 1, 16]),
            (attr::NAS_PORT, vec![0, 0, 0, 3]),
        ]
    );
}

#[test]
fn rfc2865_accept_has_a_good_response_authenticator_but_is_dropped_without_message_authenticator() {
    let bytes = hex(RFC_ACCEPT);
    let ra = arr16(&hex("0f403f9473978057bd83d5cb98f4227a"));
    // The Response Authenticator is right (the check passes that far) ...
    assert_eq!(
        check_response(&bytes, 0, &ra, RFC_SECRET).unwrap_err(),
        ResponseError::MissingMessageAuthenticator
    );
    // ... and wrong with another secret or another request.
    assert_eq!(
        check_response(&bytes, 0, &ra, b"other").unwrap_err(),
        ResponseError::BadResponseAuthenticator
    );
    assert_eq!(
        check_response(&bytes, 0, &[0; 16], RFC_SECRET).unwrap_err(),
        ResponseError::BadResponseAuthenticator
    );
    assert_eq!(
        check_response(&bytes, 1, &ra, RFC_SECRET).unwrap_err(),
        ResponseError::WrongIdentifier { got: 0, want: 1 }
    );
}

#[test]
fn malformed_packets_are_refused() {
    let ok = hex(RFC_REQUEST);
    assert_eq!(
        Packet::new_checked(&ok[..19]).unwrap_err(),
        packet::Error::Truncated { have: 19 }
    );
    // Length beyond the datagram.
    assert!(matches!(
        Packet::new_checked(&ok[..55]),
        Err(packet::Error::BadLength { length: 56, .. })
    ));
    // Length below the header.
    let mut short = ok.clone();
    short[3] = 19;
    assert!(matches!(
        Packet::new_checked(&short[..]),
        Err(packet::Error::BadLength { .. })
    ));
    // An attribute of length 1, and one running past Length.
    let mut bad = ok.clone();
    bad[21] = 1;
    assert_eq!(
        Packet::new_checked(&bad[..]).unwrap_err(),
        packet::Error::BadAttributeLength {
            offset: 20,
            length: 1
        }
    );
    let mut bad = ok.clone();
    bad[51] = 7;
    assert!(matches!(
        Packet::new_checked(&bad[..]),
        Err(packet::Error::BadAttributeLength { offset: 50, .. })
    ));
    // Octets past Length are padding.
    let mut padded = ok.clone();
    padded.extend_from_slice(&[0xa5; 7]);
    let p = Packet::new_checked(&padded[..]).unwrap();
    assert_eq!(p.as_bytes(), &ok[..]);
    assert_eq!(p.attributes().count(), 4);
}

// ----- requests -----

fn settings(servers: Vec<Server>) -> RadiusSettings {
    RadiusSettings {
        nas_identifier: "pptp-xdp".into(),
        nas_ip_address: Some(Ipv4Addr::new(198, 18, 0, 1)),
        client: ClientSettings {
            servers,
            timeout: Duration::from_secs(1),
            retries: 2,
            dead_time: Duration::from_secs(30),
        },
    }
}

fn server(port: u16, secret: &[u8]) -> Server {
    Server {
        address: SocketAddr::from(([127, 0, 0, 1], port)),
        secret: secret.to_vec(),
    }
}

const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

#[test]
fn pap_request_bytes() {
    let req = access_request(
        &settings(vec![]),
        SOURCE,
        Some(0x1234),
        &Credentials::Pap {
            user: "nemo".into(),
            password: b"arctangent".to_vec(),
        },
    )
    .unwrap();
    let ra = arr16(&hex("0f403f9473978057bd83d5cb98f4227a"));
    let bytes = req.emit(0x2a, &ra, RFC_SECRET).unwrap();
    let mut expected = hex("012a0000 0f403f9473978057bd83d5cb98f4227a");
    expected.extend_from_slice(&[80, 18]);
    expected.extend_from_slice(&[0; 16]); // Message-Authenticator, filled below
    expected.extend_from_slice(&hex("01066e656d6f")); // User-Name "nemo"
    expected.extend_from_slice(&[32, 10]);
    expected.extend_from_slice(b"pptp-xdp"); // NAS-Identifier
    expected.extend_from_slice(&hex("0406c6120001")); // NAS-IP-Address 198.18.0.1
    expected.extend_from_slice(&hex("050600001234")); // NAS-Port: the call ID
    expected.extend_from_slice(&hex("3d0600000005")); // NAS-Port-Type Virtual
    expected.extend_from_slice(&hex("060600000002")); // Service-Type Framed
    expected.extend_from_slice(&hex("070600000001")); // Framed-Protocol PPP
    expected.extend_from_slice(&[31, 13]);
    expected.extend_from_slice(b"203.0.113.9"); // Calling-Station-Id
    expected.extend_from_slice(&hex("02120dbe708d93d413ce3196e43f782a0aee")); // User-Password
    let len = expected.len() as u16;
    expected[2..4].copy_from_slice(&len.to_be_bytes());
    // Message-Authenticator: HMAC-MD5 over the packet with itself zeroed.
    let mac = hmac_md5(RFC_SECRET, &expected);
    expected[22..38].copy_from_slice(&mac);
    assert_eq!(bytes, expected);
}

/// The value of the Microsoft sub-attribute `kind` in an emitted request.
fn ms_value(bytes: &[u8], kind: u8) -> Option<Vec<u8>> {
    let p = Packet::new_checked(bytes).unwrap();
    p.attributes()
        .filter_map(|a| a.vendor())
        .filter(|(v, _)| *v == ms::VENDOR_ID)
        .flat_map(|(_, subs)| subs)
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v.to_vec())
}

fn std_value(bytes: &[u8], kind: u8) -> Option<Vec<u8>> {
    let p = Packet::new_checked(bytes).unwrap();
    p.attributes()
        .find(|a| a.kind == kind)
        .map(|a| a.value.to_vec())
}

#[test]
fn chap_and_ms_chap_requests_carry_rfc2548_attributes() {
    let s = settings(vec![]);
    let ra = [7u8; 16];
    // CHAP-MD5: CHAP-Password = ident + response; CHAP-Challenge.
    let chap = access_request(
        &s,
        SOURCE,
        None,
        &Credentials::ChapMd5 {
            user: "u".into(),
            identifier: 0x33,
            challenge: vec![1, 2, 3, 4],
            response: [0xcc; 16],
        },
    )
    .unwrap()
    .emit(1, &ra, b"s")
    .unwrap();
    let mut pw = vec![0x33];
    pw.extend_from_slice(&[0xcc; 16]);
    assert_eq!(std_value(&chap, attr::CHAP_PASSWORD), Some(pw));
    assert_eq!(
        std_value(&chap, attr::CHAP_CHALLENGE),
        Some(vec![1, 2, 3, 4])
    );
    assert_eq!(std_value(&chap, attr::USER_PASSWORD), None);

    // MS-CHAPv1: MS-CHAP-Challenge (8) and MS-CHAP-Response (50).
    let v1 = access_request(
        &s,
        SOURCE,
        None,
        &Credentials::MsChapV1 {
            user: "u".into(),
            challenge: [9; 8],
            lm_response: [0x11; 24],
            nt_response: [0x22; 24],
            use_nt_response: true,
        },
    )
    .unwrap()
    .emit(1, &ra, b"s")
    .unwrap();
    assert_eq!(ms_value(&v1, ms::CHAP_CHALLENGE), Some(vec![9; 8]));
    let r = ms_value(&v1, ms::CHAP_RESPONSE).unwrap();
    assert_eq!(r.len(), 50);
    assert_eq!(&r[..2], &[0, 1]);
    assert_eq!(&r[2..26], &[0x11; 24]);
    assert_eq!(&r[26..], &[0x22; 24]);

    // MS-CHAPv2: MS-CHAP-Challenge (16) and MS-CHAP2-Response (50).
    let v2 = access_request(
        &s,
        SOURCE,
        None,
        &Credentials::MsChapV2 {
            user: "u".into(),
            authenticator_challenge: [0xaa; 16],
            peer_challenge: [0xbb; 16],
            nt_response: [0xdd; 24],
        },
    )
    .unwrap()
    .emit(1, &ra, b"s")
    .unwrap();
    assert_eq!(ms_value(&v2, ms::CHAP_CHALLENGE), Some(vec![0xaa; 16]));
    let r = ms_value(&v2, ms::CHAP2_RESPONSE).unwrap();
    let mut want = vec![0, 0];
    want.extend_from_slice(&[0xbb; 16]);
    want.extend_from_slice(&[0; 8]);
    want.extend_from_slice(&[0xdd; 24]);
    assert_eq!(r, want);
    // The raw VSA framing: type 26, vendor 311, vendor type 25, length 52.
    let p = Packet::new_checked(&v2[..]).unwrap();
    let vsa = p
        .attributes()
        .filter(|a| a.kind == attr::VENDOR_SPECIFIC)
        .nth(1)
        .unwrap();
    assert_eq!(&vsa.value[..6], &[0, 0, 0x01, 0x37, 25, 52]);
    // Message-Authenticator is first.
    assert_eq!(
        p.attributes().next().unwrap().kind,
        attr::MESSAGE_AUTHENTICATOR
    );

    // Values that do not fit.
    let long = Credentials::Pap {
        user: "x".repeat(254),
        password: Vec::new(),
    };
    assert!(access_request(&s, SOURCE, None, &long).is_none());
}

// ----- responses -----

const RA: [u8; 16] = [
    0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f,
];
const SECRET: &[u8] = b"testing123";

#[test]
fn message_authenticator_is_required_and_checked() {
    let good = emit_response(Code::AccessAccept, 5, &RA, SECRET, &[], true);
    let p = check_response(&good, 5, &RA, SECRET).unwrap();
    assert_eq!(p.code(), Code::AccessAccept);
    // The HMAC is over the response with the Request Authenticator in
    // place and itself zeroed, computed here independently.
    let mut copy = good.clone();
    copy[4..20].copy_from_slice(&RA);
    copy[22..38].fill(0);
    assert_eq!(hmac_md5(SECRET, &copy).to_vec(), good[22..38].to_vec());

    let missing = emit_response(Code::AccessAccept, 5, &RA, SECRET, &[], false);
    assert_eq!(
        check_response(&missing, 5, &RA, SECRET).unwrap_err(),
        ResponseError::MissingMessageAuthenticator
    );
    // A forged Message-Authenticator with a Response Authenticator made to
    // match (what an attacker knowing nothing of the secret cannot do, but
    // the check must not depend on it).
    let mut forged = good.clone();
    forged[22] ^= 1;
    let mut md5 = Md5::new();
    md5.update(&forged[..4]);
    md5.update(RA);
    md5.update(&forged[20..]);
    md5.update(SECRET);
    forged[4..20].copy_from_slice(&md5.finalize());
    assert_eq!(
        check_response(&forged, 5, &RA, SECRET).unwrap_err(),
        ResponseError::BadMessageAuthenticator
    );
    // Tampering anywhere breaks the Response Authenticator.
    let mut tampered = good.clone();
    tampered[22] ^= 1;
    assert_eq!(
        check_response(&tampered, 5, &RA, SECRET).unwrap_err(),
        ResponseError::BadResponseAuthenticator
    );
    // Two Message-Authenticators: refused.
    let twice = emit_response(
        Code::AccessAccept,
        5,
        &RA,
        SECRET,
        &[(attr::MESSAGE_AUTHENTICATOR, vec![0; 16])],
        true,
    );
    assert_eq!(
        check_response(&twice, 5, &RA, SECRET).unwrap_err(),
        ResponseError::MissingMessageAuthenticator
    );
    // A request is not an answer.
    let req = AccessRequest::default().emit(5, &RA, SECRET).unwrap();
    assert_eq!(
        check_response(&req, 5, &RA, SECRET).unwrap_err(),
        ResponseError::UnexpectedCode(Code::AccessRequest)
    );
}

/// RFC 2548 section 2.4.2, written out from the RFC (not with the code
/// under test): P = Key-Length + Key + zero padding to 16; b(1) =
/// MD5(S + R + A), c(i) = p(i) xor b(i), b(i) = MD5(S + c(i-1)).
fn rfc2548_encrypt(key: &[u8], salt: [u8; 2], secret: &[u8], ra: &[u8; 16]) -> Vec<u8> {
    let mut p = vec![key.len() as u8];
    p.extend_from_slice(key);
    while p.len() % 16 != 0 {
        p.push(0);
    }
    let mut out = salt.to_vec();
    let mut prev: Vec<u8> = [&ra[..], &salt[..]].concat();
    for block in p.chunks(16) {
        let b = Md5::new()
            .chain_update(secret)
            .chain_update(&prev)
            .finalize();
        let c: Vec<u8> = block.iter().zip(b.iter()).map(|(x, y)| x ^ y).collect();
        out.extend_from_slice(&c);
        prev = c;
    }
    out
}

#[test]
fn mppe_key_decryption_round_trips_with_the_rfc_algorithm() {
    let key: Vec<u8> = (0u8..32).collect();
    let value = rfc2548_encrypt(&key, [0x85, 0x13], SECRET, &RA);
    assert_eq!(value.len(), 2 + 48);
    assert_eq!(
        packet::decrypt_salted_key(&value, SECRET, &RA).unwrap(),
        key
    );
    // Our encryption (for simulations) is the RFC's.
    assert_eq!(
        packet::encrypt_salted_key(&key, [0x85, 0x13], SECRET, &RA),
        value
    );
    // A 16-octet key: 17 octets of string, two blocks.
    let k16 = [0x5a; 16];
    let v = rfc2548_encrypt(&k16, [0x80, 0x01], SECRET, &RA);
    assert_eq!(
        packet::decrypt_salted_key(&v, SECRET, &RA).unwrap(),
        k16.to_vec()
    );
    // Wrong secret: garbage, usually an impossible length.
    let wrong = packet::decrypt_salted_key(&v, b"nope", &RA);
    assert_ne!(wrong.ok(), Some(k16.to_vec()));
    assert_eq!(
        packet::decrypt_salted_key(
            &[0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            SECRET,
            &RA
        ),
        Err(packet::KeyError::BadSalt)
    );
    assert_eq!(
        packet::decrypt_salted_key(&v[..17], SECRET, &RA),
        Err(packet::KeyError::BadLength { len: 17 })
    );
}

// RFC 2759 section 9.2.
const V2_USER: &str = "User";
const V2_PASSWORD: &[u8] = b"clientPass";
const V2_AUTH_CHALLENGE: &str = "5B5D7C7D7B3F2F3E3C2C602132262628";
const V2_PEER_CHALLENGE: &str = "21402324255E262A28295F2B3A337C7E";
const V2_NT_RESPONSE: &str = "82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF";
const V2_SUCCESS: &[u8] = b"S=407A5589115FD0D6209F510FE9C04566932CDA56";

fn v2_credentials() -> Credentials {
    Credentials::MsChapV2 {
        user: V2_USER.into(),
        authenticator_challenge: arr16(&hex(V2_AUTH_CHALLENGE)),
        peer_challenge: arr16(&hex(V2_PEER_CHALLENGE)),
        nt_response: hex(V2_NT_RESPONSE).try_into().unwrap(),
    }
}

/// An Access-Accept as FreeRADIUS's mschap module sends it for MS-CHAPv2:
/// MS-CHAP2-Success (Ident + S=...), MS-MPPE-Send-Key and -Recv-Key (the
/// server's keys of RFC 3079 section 3), encryption policy and types.
fn v2_accept(extra: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let nt_response: [u8; 24] = hex(V2_NT_RESPONSE).try_into().unwrap();
    let hash_hash = mschap::hash_nt_password_hash(&mschap::nt_password_hash(V2_PASSWORD));
    let crate::auth::MppeMaterial::V2 {
        master_send_key,
        master_recv_key,
    } = mschapv2_material(&hash_hash, &nt_response, Role::Server)
    else {
        unreachable!()
    };
    let mut success = vec![0x17];
    success.extend_from_slice(V2_SUCCESS);
    let mut attrs = vec![
        (
            attr::VENDOR_SPECIFIC,
            vendor_value(ms::VENDOR_ID, ms::CHAP2_SUCCESS, &success),
        ),
        (
            attr::VENDOR_SPECIFIC,
            vendor_value(ms::VENDOR_ID, ms::MPPE_ENCRYPTION_POLICY, &[0, 0, 0, 1]),
        ),
        (
            attr::VENDOR_SPECIFIC,
            vendor_value(
                ms::VENDOR_ID,
                ms::MPPE_SEND_KEY,
                &rfc2548_encrypt(&master_send_key, [0x81, 0x02], SECRET, &RA),
            ),
        ),
        (
            attr::VENDOR_SPECIFIC,
            vendor_value(
                ms::VENDOR_ID,
                ms::MPPE_RECV_KEY,
                &rfc2548_encrypt(&master_recv_key, [0x83, 0x04], SECRET, &RA),
            ),
        ),
    ];
    attrs.extend_from_slice(extra);
    emit_response(Code::AccessAccept, 9, &RA, SECRET, &attrs, true)
}

fn reply_of(bytes: &[u8]) -> Reply {
    let p = check_response(
        bytes,
        Packet::new_checked(bytes).unwrap().identifier(),
        &RA,
        SECRET,
    )
    .unwrap();
    Reply::parse(&p, SECRET, &RA)
}

#[test]
fn ms_chap_v2_accept_gives_the_authenticator_response_and_the_server_keys() {
    let reply = reply_of(&v2_accept(&[]));
    assert!(reply.ignored.is_empty(), "{:?}", reply.ignored);
    let Verdict::Accept(a) = reply.verdict(&v2_credentials()) else {
        panic!("not accepted")
    };
    assert_eq!(a.user, "User");
    assert_eq!(
        a.authenticator_response.unwrap().to_vec(),
        hex("407A5589115FD0D6209F510FE9C04566932CDA56")
    );
    // The same authenticator response our own MS-CHAPv2 code computes.
    let local = mschapv2::generate_authenticator_response(
        V2_PASSWORD,
        &hex(V2_NT_RESPONSE).try_into().unwrap(),
        &arr16(&hex(V2_PEER_CHALLENGE)),
        &arr16(&hex(V2_AUTH_CHALLENGE)),
        V2_USER.as_bytes(),
    );
    assert_eq!(a.authenticator_response, Some(local));
    // Send-Key is the key we (the server) send with: the same material as
    // a local MS-CHAPv2 authentication on the server side.
    let hash_hash = mschap::hash_nt_password_hash(&mschap::nt_password_hash(V2_PASSWORD));
    assert_eq!(
        a.mppe,
        Some(mschapv2_material(
            &hash_hash,
            &hex(V2_NT_RESPONSE).try_into().unwrap(),
            Role::Server
        ))
    );
    assert_eq!(a.static_address, None);
    assert!(a.addresses.is_any());
}

#[test]
fn ms_chap2_success_parsing() {
    // Without the Ident octet, or not S=<40 hex>: an accept we cannot
    // relay, refused (the client could not authenticate us).
    for bad in [
        V2_SUCCESS.to_vec(),
        b"\x01S=407A".to_vec(),
        b"\x01T=407A5589115FD0D6209F510FE9C04566932CDA56".to_vec(),
    ] {
        let bytes = emit_response(
            Code::AccessAccept,
            1,
            &RA,
            SECRET,
            &[(
                attr::VENDOR_SPECIFIC,
                vendor_value(ms::VENDOR_ID, ms::CHAP2_SUCCESS, &bad),
            )],
            true,
        );
        let reply = reply_of(&bytes);
        assert!(reply.bad_success || reply.authenticator_response.is_none());
        assert_eq!(
            reply.verdict(&v2_credentials()),
            Verdict::Reject(Rejection::BackendUnavailable)
        );
    }
    // With " M=..." after it (Windows NPS): fine.
    let mut with_m = vec![1];
    with_m.extend_from_slice(V2_SUCCESS);
    with_m.extend_from_slice(b" M=Welcome");
    let bytes = emit_response(
        Code::AccessAccept,
        1,
        &RA,
        SECRET,
        &[(
            attr::VENDOR_SPECIFIC,
            vendor_value(ms::VENDOR_ID, ms::CHAP2_SUCCESS, &with_m),
        )],
        true,
    );
    assert!(matches!(
        reply_of(&bytes).verdict(&v2_credentials()),
        Verdict::Accept(Accepted {
            authenticator_response: Some(_),
            mppe: None,
            ..
        })
    ));
}

#[test]
fn ms_chap_error_maps_to_the_rejection() {
    for (text, want) in [
        (
            &b"E=691 R=0 C=00000000000000000000000000000000 V=3"[..],
            Rejection::BadCredentials,
        ),
        (b"E=646 R=0 V=3", Rejection::AccountRestricted),
        (b"E=647 R=0 V=3", Rejection::AccountRestricted),
        (b"E=648 R=0 V=3", Rejection::PasswordExpired),
        (b"E=649 R=0 V=3", Rejection::NoDialinPermission),
        (b"E=709 R=0 V=3", Rejection::BadCredentials),
        (b"E=123", Rejection::BadCredentials),
        (b"garbage", Rejection::BadCredentials),
    ] {
        let mut value = vec![0x42];
        value.extend_from_slice(text);
        let bytes = emit_response(
            Code::AccessReject,
            2,
            &RA,
            SECRET,
            &[(
                attr::VENDOR_SPECIFIC,
                vendor_value(ms::VENDOR_ID, ms::CHAP_ERROR, &value),
            )],
            true,
        );
        assert_eq!(
            reply_of(&bytes).verdict(&v2_credentials()),
            Verdict::Reject(want),
            "{}",
            String::from_utf8_lossy(text)
        );
    }
    // A plain reject, and a challenge.
    let plain = emit_response(Code::AccessReject, 2, &RA, SECRET, &[], true);
    assert_eq!(
        reply_of(&plain).verdict(&v2_credentials()),
        Verdict::Reject(Rejection::BadCredentials)
    );
    let challenge = emit_response(Code::AccessChallenge, 2, &RA, SECRET, &[], true);
    assert_eq!(
        reply_of(&challenge).verdict(&v2_credentials()),
        Verdict::Reject(Rejection::BadCredentials)
    );
}

fn pap_accept(attrs: &[(u8, Vec<u8>)]) -> Verdict {
    let pap = Credentials::Pap {
        user: "p".into(),
        password: b"x".to_vec(),
    };
    reply_of(&emit_response(
        Code::AccessAccept,
        3,
        &RA,
        SECRET,
        attrs,
        true,
    ))
    .verdict(&pap)
}

fn session_of(attrs: &[(u8, Vec<u8>)]) -> SessionAttributes {
    match pap_accept(attrs) {
        Verdict::Accept(a) => a.session,
        other => panic!("{other:?}"),
    }
}

/// RFC 2865 sections 5.12, 5.25, 5.27, 5.28, RFC 2869 section 5.16: the
/// attribute bytes become the accept's per-session values.
#[test]
fn session_attributes_from_the_reply() {
    let session = session_of(&[
        (attr::SESSION_TIMEOUT, vec![0, 0, 0x0e, 0x10]),
        (attr::IDLE_TIMEOUT, vec![0, 0, 0x01, 0x2c]),
        (attr::ACCT_INTERIM_INTERVAL, vec![0, 0, 0, 0x3c]),
        (attr::CLASS, b"gold".to_vec()),
        (attr::CLASS, vec![0, 0xff, 7]),
        (attr::FRAMED_MTU, vec![0, 0, 0x05, 0x78]),
    ]);
    assert_eq!(
        session,
        SessionAttributes {
            session_timeout: Some(Duration::from_secs(3600)),
            idle_timeout: Some(Duration::from_secs(300)),
            acct_interim_interval: Some(Duration::from_secs(60)),
            class: vec![b"gold".to_vec(), vec![0, 0xff, 7]],
            framed_mtu: Some(1400),
            framed_pool: None,
            rate: None,
        }
    );
    // Nothing given: nothing set (the configuration applies).
    assert_eq!(session_of(&[]), SessionAttributes::default());
}

/// Rate limits: Filter-Id in accel-ppp's "down/up" kbit/s, and
/// Mikrotik-Rate-Limit (vendor 14988 type 8) "rx/tx", which wins.
#[test]
fn rate_limits_from_the_reply() {
    use crate::proto::shaping::RateLimit;
    let mikrotik = |text: &str| {
        (
            attr::VENDOR_SPECIFIC,
            packet::vendor_value(
                super::mikrotik::VENDOR_ID,
                super::mikrotik::RATE_LIMIT,
                text.as_bytes(),
            ),
        )
    };
    let session = session_of(&[(attr::FILTER_ID, b"8000/2000".to_vec())]);
    assert_eq!(
        session.rate,
        Some(RateLimit {
            up_bps: 2_000_000,
            down_bps: 8_000_000
        })
    );
    let session = session_of(&[(attr::FILTER_ID, b"8000/2000".to_vec()), mikrotik("1M/4M")]);
    assert_eq!(
        session.rate,
        Some(RateLimit {
            up_bps: 1_000_000,
            down_bps: 4_000_000
        })
    );
    // A Filter-Id naming a filter is no rate.
    assert_eq!(
        session_of(&[(attr::FILTER_ID, b"users".to_vec())]).rate,
        None
    );
}

#[test]
fn session_attribute_bounds() {
    // 0 means no limit; a wrong length is ignored.
    let session = session_of(&[
        (attr::SESSION_TIMEOUT, vec![0, 0, 0, 0]),
        (attr::IDLE_TIMEOUT, vec![0, 0, 0, 0]),
        (attr::ACCT_INTERIM_INTERVAL, vec![0, 0, 1]),
        (attr::FRAMED_MTU, vec![0, 0, 0, 63]),
    ]);
    assert_eq!(session, SessionAttributes::default());
    // Absurd values are capped, so `now + timeout` cannot overflow.
    let session = session_of(&[
        (attr::SESSION_TIMEOUT, vec![0xff; 4]),
        (attr::IDLE_TIMEOUT, vec![0xff; 4]),
        (attr::ACCT_INTERIM_INTERVAL, vec![0xff; 4]),
        (attr::FRAMED_MTU, vec![0, 1, 0, 0]),
    ]);
    let cap = Some(Duration::from_secs(u64::from(super::MAX_ATTRIBUTE_SECONDS)));
    assert_eq!(session.session_timeout, cap);
    assert_eq!(session.idle_timeout, cap);
    assert_eq!(session.acct_interim_interval, cap);
    assert_eq!(session.framed_mtu, Some(u16::MAX));
    let t0 = Instant::now();
    assert!(t0.checked_add(session.session_timeout.unwrap()).is_some());
    // The smallest MTU RFC 2865 allows is taken.
    assert_eq!(
        session_of(&[(attr::FRAMED_MTU, vec![0, 0, 0, 64])]).framed_mtu,
        Some(64)
    );
}

#[test]
fn framed_ip_address_and_ignored_attributes() {
    let pap = Credentials::Pap {
        user: "p".into(),
        password: b"x".to_vec(),
    };
    let with_ip = |ip: [u8; 4]| {
        emit_response(
            Code::AccessAccept,
            3,
            &RA,
            SECRET,
            &[
                (attr::FRAMED_IP_ADDRESS, ip.to_vec()),
                (attr::SESSION_TIMEOUT, vec![0, 0, 14, 16]),
                (attr::CLASS, b"c1".to_vec()),
                (attr::PROXY_STATE, b"ps".to_vec()),
                (200, vec![1]),
                (attr::VENDOR_SPECIFIC, vendor_value(9, 1, b"cisco")),
            ],
            true,
        )
    };
    let reply = reply_of(&with_ip([198, 19, 5, 5]));
    assert_eq!(reply.ignored, [(0, 200), (9, 1)]);
    let Verdict::Accept(a) = reply.verdict(&pap) else {
        panic!()
    };
    let ip = Ipv4Addr::new(198, 19, 5, 5);
    assert_eq!(a.static_address, Some(ip));
    assert_eq!(a.addresses, AddressPolicy::only(ip));
    assert_eq!((a.authenticator_response, a.mppe), (None, None));
    for pool in [[255, 255, 255, 254], [255, 255, 255, 255]] {
        let Verdict::Accept(a) = reply_of(&with_ip(pool)).verdict(&pap) else {
            panic!()
        };
        assert_eq!(a.static_address, None);
        assert!(a.addresses.is_any());
    }
}

/// RFC 2869 section 5.18: Framed-Pool names the pool; it is not an
/// ignored attribute. With Framed-IP-Address 255.255.255.254 ("the NAS
/// assigns") the pool still applies; with a real Framed-IP-Address that
/// address is the static one (the concentrator gives it precedence).
#[test]
fn framed_pool_from_the_reply() {
    let reply = reply_of(&emit_response(
        Code::AccessAccept,
        3,
        &RA,
        SECRET,
        &[(attr::FRAMED_POOL, b"gold".to_vec())],
        true,
    ));
    assert!(reply.ignored.is_empty(), "{:?}", reply.ignored);
    assert_eq!(reply.session.framed_pool.as_deref(), Some("gold"));
    assert_eq!(
        session_of(&[(attr::FRAMED_POOL, b"gold".to_vec())]).framed_pool,
        Some("gold".to_owned())
    );
    let pap = Credentials::Pap {
        user: "p".into(),
        password: b"x".to_vec(),
    };
    for (ip, static_address) in [
        ([255, 255, 255, 254], None),
        ([198, 19, 5, 5], Some(Ipv4Addr::new(198, 19, 5, 5))),
    ] {
        let reply = reply_of(&emit_response(
            Code::AccessAccept,
            3,
            &RA,
            SECRET,
            &[
                (attr::FRAMED_IP_ADDRESS, ip.to_vec()),
                (attr::FRAMED_POOL, b"staff".to_vec()),
            ],
            true,
        ));
        let Verdict::Accept(a) = reply.verdict(&pap) else {
            panic!()
        };
        assert_eq!(a.static_address, static_address);
        assert_eq!(a.session.framed_pool.as_deref(), Some("staff"));
    }
    // Bytes that are not UTF-8 keep their place (and match no pool).
    assert_eq!(
        session_of(&[(attr::FRAMED_POOL, vec![b'g', 0xff])]).framed_pool,
        Some("g\u{fffd}".to_owned())
    );
}

#[test]
fn ms_chap_v1_keys_from_ms_chap_mppe_keys() {
    let creds = Credentials::MsChapV1 {
        user: "u".into(),
        challenge: [3; 8],
        lm_response: [0; 24],
        nt_response: [0; 24],
        use_nt_response: true,
    };
    // RFC 2548 section 2.4.1: LM-Key (8), NT-Key (16), 8 octets of
    // padding, hidden as User-Password is (RFC 2865 section 5.2),
    // written out here.
    let mut plain = vec![0x11; 8];
    plain.extend_from_slice(&[0x22; 16]);
    plain.extend_from_slice(&[0; 8]);
    let mut hidden = Vec::new();
    let mut prev = RA.to_vec();
    for block in plain.chunks(16) {
        let b = Md5::new()
            .chain_update(SECRET)
            .chain_update(&prev)
            .finalize();
        let c: Vec<u8> = block.iter().zip(b.iter()).map(|(x, y)| x ^ y).collect();
        hidden.extend_from_slice(&c);
        prev = c;
    }
    let bytes = emit_response(
        Code::AccessAccept,
        4,
        &RA,
        SECRET,
        &[(
            attr::VENDOR_SPECIFIC,
            vendor_value(ms::VENDOR_ID, ms::CHAP_MPPE_KEYS, &hidden),
        )],
        true,
    );
    let Verdict::Accept(a) = reply_of(&bytes).verdict(&creds) else {
        panic!()
    };
    assert_eq!(
        a.mppe,
        Some(MppeMaterial::V1 {
            lm_key: [0x11; 8],
            nt_password_hash_hash: [0x22; 16],
            challenge: [3; 8],
        })
    );
}

// ----- the client on a simulated clock -----

fn client(servers: Vec<Server>) -> Arc<ClientSettings> {
    Arc::new(settings(servers).client)
}

fn pap_request() -> AccessRequest {
    AccessRequest {
        attributes: vec![
            RequestAttribute::plain(attr::USER_NAME, "nemo"),
            RequestAttribute::UserPassword(b"arctangent".to_vec()),
        ],
    }
}

fn random() -> RandomSource {
    seeded_random(42)
}

/// The answer a server would give to `request` (an emitted Access-Request).
fn answer(request: &[u8], secret: &[u8], code: Code, with_ma: bool) -> Vec<u8> {
    let p = Packet::new_checked(request).unwrap();
    emit_response(
        code,
        p.identifier(),
        &p.authenticator(),
        secret,
        &[],
        with_ma,
    )
}

fn events(t: &mut Transaction) -> Vec<Event> {
    std::iter::from_fn(|| t.poll_event()).collect()
}

#[test]
fn retransmits_the_same_datagram_then_fails_over_and_holds_down() {
    let servers = vec![server(1812, b"one"), server(1813, b"two")];
    let settings = client(servers.clone());
    let mut health = Health::new(2);
    let t0 = Instant::now();
    let mut t = Transaction::new(
        settings.clone(),
        pap_request(),
        health.order(t0),
        random(),
        t0,
    );
    let first = t.poll_transmit().unwrap();
    assert_eq!(first.server, 0);
    assert_eq!(first.destination, servers[0].address);
    assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    // Nothing before the deadline.
    t.handle_timeout(t0 + Duration::from_millis(999));
    assert!(t.poll_transmit().is_none());
    // Two retransmissions, byte for byte the same (RFC 5080 section 2.2.1).
    for i in 1..=2 {
        let now = t0 + Duration::from_secs(i);
        t.handle_timeout(now);
        let again = t.poll_transmit().unwrap();
        assert_eq!(again, first, "retransmission {i}");
        assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(1)));
    }
    // Then server 1 is dead; server 2 gets a new packet.
    let t3 = t0 + Duration::from_secs(3);
    t.handle_timeout(t3);
    let evs = events(&mut t);
    assert_eq!(evs, [Event::ServerDead { server: 0 }]);
    for e in &evs {
        health.apply(e, t3, settings.dead_time);
    }
    let second = t.poll_transmit().unwrap();
    assert_eq!((second.server, second.destination), (1, servers[1].address));
    assert_ne!(second.payload[1..20], first.payload[1..20]);
    // Server 2 answers.
    let reply = answer(&second.payload, b"two", Code::AccessAccept, true);
    t.handle_datagram(t3, servers[1].address, &reply);
    let evs = events(&mut t);
    let Event::Answered {
        server: 1,
        response,
        request_authenticator,
    } = &evs[0]
    else {
        panic!("{evs:?}")
    };
    assert_eq!(response, &reply);
    assert_eq!(request_authenticator[..], second.payload[4..20]);
    assert_eq!(t.poll_timeout(), None);
    for e in &evs {
        health.apply(e, t3, settings.dead_time);
    }
    // Held down: the next request skips server 1 ...
    assert_eq!(health.order(t3 + Duration::from_secs(29)), [1]);
    let mut t2 = Transaction::new(
        settings.clone(),
        pap_request(),
        health.order(t3 + Duration::from_secs(29)),
        random(),
        t3,
    );
    assert_eq!(t2.poll_transmit().unwrap().server, 1);
    // ... until dead_time has passed.
    assert_eq!(health.order(t3 + Duration::from_secs(30)), [0, 1]);
    // When all are held down, all are tried in order.
    health.apply(&Event::ServerDead { server: 1 }, t3, settings.dead_time);
    assert_eq!(health.order(t3 + Duration::from_secs(1)), [0, 1]);
    // A server that answers is alive again at once.
    health.apply(
        &Event::Answered {
            server: 0,
            response: Vec::new(),
            request_authenticator: [0; 16],
        },
        t3,
        settings.dead_time,
    );
    assert_eq!(health.order(t3 + Duration::from_secs(1)), [0]);
}

#[test]
fn every_server_silent_is_exhausted() {
    let settings = Arc::new(ClientSettings {
        retries: 0,
        ..(*client(vec![server(1, b"a"), server(2, b"b")])).clone()
    });
    let t0 = Instant::now();
    let mut t = Transaction::new(settings, pap_request(), vec![0, 1], random(), t0);
    assert_eq!(t.poll_transmit().unwrap().server, 0);
    t.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(t.poll_transmit().unwrap().server, 1);
    t.handle_timeout(t0 + Duration::from_secs(2));
    assert!(t.poll_transmit().is_none());
    assert_eq!(
        events(&mut t),
        [
            Event::ServerDead { server: 0 },
            Event::ServerDead { server: 1 },
            Event::Exhausted
        ]
    );
    assert_eq!(t.poll_timeout(), None);
    // No server configured at all.
    let mut none = Transaction::new(client(vec![]), pap_request(), vec![], random(), t0);
    assert_eq!(events(&mut none), [Event::Exhausted]);
}

#[test]
fn bad_answers_are_dropped_and_the_wait_goes_on() {
    let servers = vec![server(1812, SECRET)];
    let t0 = Instant::now();
    let mut t = Transaction::new(
        client(servers.clone()),
        pap_request(),
        vec![0],
        random(),
        t0,
    );
    let sent = t.poll_transmit().unwrap().payload;
    let from = servers[0].address;
    // From elsewhere.
    let good = answer(&sent, SECRET, Code::AccessAccept, true);
    t.handle_datagram(t0, SocketAddr::from(([127, 0, 0, 1], 9)), &good);
    // No Message-Authenticator (BlastRADIUS).
    t.handle_datagram(t0, from, &answer(&sent, SECRET, Code::AccessAccept, false));
    // Wrong secret.
    t.handle_datagram(t0, from, &answer(&sent, b"wrong", Code::AccessAccept, true));
    // Wrong identifier.
    let mut other = sent.clone();
    other[1] = other[1].wrapping_add(1);
    t.handle_datagram(t0, from, &answer(&other, SECRET, Code::AccessAccept, true));
    // Garbage.
    t.handle_datagram(t0, from, &[2, 0, 0]);
    let evs = events(&mut t);
    let reasons: Vec<_> = evs
        .iter()
        .map(|e| match e {
            Event::Dropped { reason, .. } => *reason,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(reasons[0], DropReason::UnexpectedSource);
    assert_eq!(
        reasons[1],
        DropReason::Invalid(ResponseError::MissingMessageAuthenticator)
    );
    assert_eq!(
        reasons[2],
        DropReason::Invalid(ResponseError::BadResponseAuthenticator)
    );
    assert!(matches!(
        reasons[3],
        DropReason::Invalid(ResponseError::WrongIdentifier { .. })
    ));
    assert!(matches!(
        reasons[4],
        DropReason::Invalid(ResponseError::Malformed(_))
    ));
    assert!(t.poll_timeout().is_some());
    // The good one still counts.
    t.handle_datagram(t0, from, &good);
    assert!(matches!(
        events(&mut t)[..],
        [Event::Answered { server: 0, .. }]
    ));
}

// ----- the blocking driver against fake servers on loopback -----

/// A fake RADIUS server on 127.0.0.1 answering `n` requests: it checks
/// the request's Message-Authenticator and the PAP password, then answers
/// Access-Accept or -Reject with a Message-Authenticator.
fn fake_server(secret: &'static [u8], n: usize) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        for _ in 0..n {
            let (len, from) = socket.recv_from(&mut buf).unwrap();
            let req = &buf[..len];
            let p = Packet::new_checked(req).unwrap();
            let ma = p.attributes().next().unwrap();
            assert_eq!(ma.kind, attr::MESSAGE_AUTHENTICATOR);
            let mut zeroed = req.to_vec();
            zeroed[22..38].fill(0);
            assert_eq!(hmac_md5(secret, &zeroed)[..], ma.value[..]);
            let ra = p.authenticator();
            let password = p
                .attributes()
                .find(|a| a.kind == attr::USER_PASSWORD)
                .map(|a| packet::unhide_password(a.value, secret, &ra))
                .unwrap();
            let code = if password.starts_with(b"right\0") {
                Code::AccessAccept
            } else {
                Code::AccessReject
            };
            let out = emit_response(
                code,
                p.identifier(),
                &ra,
                secret,
                &[(attr::FRAMED_IP_ADDRESS, vec![198, 19, 7, 7])],
                true,
            );
            socket.send_to(&out, from).unwrap();
        }
    });
    (address, handle)
}

#[test]
fn verifier_fails_over_from_a_silent_server_over_udp() {
    // A bound socket that never answers, then the fake server.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (address, handle) = fake_server(b"s3cret", 2);
    let mut s = settings(vec![
        Server {
            address: silent.local_addr().unwrap(),
            secret: b"x".to_vec(),
        },
        Server {
            address,
            secret: b"s3cret".to_vec(),
        },
    ]);
    s.client.timeout = Duration::from_millis(50);
    s.client.retries = 1;
    let verifier = RadiusVerifier::new(s, random());
    let ok = verifier.verify(
        SOURCE,
        &Credentials::Pap {
            user: "alice".into(),
            password: b"right".to_vec(),
        },
    );
    let Verdict::Accept(a) = ok else {
        panic!("{ok:?}")
    };
    assert_eq!(a.static_address, Some(Ipv4Addr::new(198, 19, 7, 7)));
    // The silent one is now held down: the second request goes straight
    // to the fake server (which answers only twice, and would otherwise be
    // reached only after the silent one's timeouts).
    let no = verifier.verify(
        SOURCE,
        &Credentials::Pap {
            user: "alice".into(),
            password: b"wrong".to_vec(),
        },
    );
    assert_eq!(no, Verdict::Reject(Rejection::BadCredentials));
    handle.join().unwrap();
    let st = verifier.stats();
    assert_eq!(st.requests.load(Ordering::Relaxed), 2);
    assert_eq!(st.server_dead.load(Ordering::Relaxed), 1);
    assert_eq!(st.accepts.load(Ordering::Relaxed), 1);
    assert_eq!(st.rejects.load(Ordering::Relaxed), 1);
    // Per server (metrics): the silent one timed out once after a
    // retransmission; the other answered both requests at first try.
    let [silent_stats, answering] = &st.servers[..] else {
        panic!("two servers: {:?}", st.servers)
    };
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    assert_eq!(n(&silent_stats.requests), 1);
    assert_eq!(n(&silent_stats.timeouts), 1);
    assert_eq!(n(&silent_stats.retransmissions), 1);
    assert_eq!(n(&silent_stats.answers), 0);
    assert_eq!(silent_stats.rtt.snapshot().1, 0);
    assert_eq!(n(&answering.requests), 2);
    assert_eq!(n(&answering.answers), 2);
    assert_eq!(n(&answering.timeouts), 0);
    assert_eq!(n(&answering.retransmissions), 0);
    let (_, count, buckets) = answering.rtt.snapshot();
    assert_eq!(count, 2);
    assert_eq!(buckets.iter().map(|(_, n)| n).sum::<u64>(), 2);
    // Silent is still silent: it received exactly the 2 datagrams of the
    // first request (1 + retries) and none of the second.
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let mut received = 0;
    while silent.recv_from(&mut buf).is_ok() {
        received += 1;
    }
    assert_eq!(received, 2);
}

#[test]
fn verifier_without_an_answer_is_backend_unavailable() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut s = settings(vec![Server {
        address: silent.local_addr().unwrap(),
        secret: b"x".to_vec(),
    }]);
    s.client.timeout = Duration::from_millis(20);
    s.client.retries = 0;
    let verifier = RadiusVerifier::new(s, random());
    assert_eq!(
        verifier.verify(SOURCE, &v2_credentials()),
        Verdict::Reject(Rejection::BackendUnavailable)
    );
    assert_eq!(verifier.stats().no_answer.load(Ordering::Relaxed), 1);
}

#[test]
fn requests_over_the_in_flight_bound_are_refused_and_types_logged_once() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let verifier = RadiusVerifier::new(
        settings(vec![Server {
            address: silent.local_addr().unwrap(),
            secret: SECRET.to_vec(),
        }]),
        random(),
    );
    verifier.in_flight.store(MAX_IN_FLIGHT, Ordering::SeqCst);
    assert_eq!(
        verifier.verify(SOURCE, &v2_credentials()),
        Verdict::Reject(Rejection::BackendUnavailable)
    );
    assert_eq!(verifier.stats().overloaded.load(Ordering::Relaxed), 1);
    // Nothing was sent, and the count is not leaked.
    silent.set_nonblocking(true).unwrap();
    assert!(silent.recv_from(&mut [0u8; 64]).is_err());
    assert_eq!(verifier.in_flight.load(Ordering::SeqCst), MAX_IN_FLIGHT);

    // Attributes not applied are remembered once per type.
    let accept = v2_accept(&[
        (attr::STATE, b"s".to_vec()),
        (attr::FRAMED_IP_NETMASK, vec![255, 255, 255, 0]),
    ]);
    for _ in 0..3 {
        assert!(matches!(
            verifier.verdict(&v2_credentials(), 0, &accept, &RA),
            Verdict::Accept(_)
        ));
    }
    let logged = verifier.logged.lock().unwrap();
    assert_eq!(logged.len(), 2);
    assert!(logged.contains(&(0, attr::STATE)) && logged.contains(&(0, attr::FRAMED_IP_NETMASK)));
    assert_eq!(verifier.stats().accepts.load(Ordering::Relaxed), 3);
}

// ----- our server engine, verdicts from a simulated RADIUS server, our client -----

/// A RADIUS server for MS-CHAPv2 (what FreeRADIUS's mschap module does):
/// checks the MS-CHAP2-Response against `password`, answers Access-Accept
/// with MS-CHAP2-Success and the server's MPPE keys (RFC 2548 section
/// 2.4.2, encrypted as written out in this file), or Access-Reject with
/// MS-CHAP-Error E=691.
fn mschapv2_server(request: &[u8], secret: &[u8], password: &[u8]) -> Vec<u8> {
    let p = Packet::new_checked(request).unwrap();
    let ra = p.authenticator();
    let user = std_value(request, attr::USER_NAME).unwrap();
    let challenge = arr16(&ms_value(request, ms::CHAP_CHALLENGE).unwrap());
    let response = ms_value(request, ms::CHAP2_RESPONSE).unwrap();
    let peer_challenge = arr16(&response[2..18]);
    let nt_response: [u8; 24] = response[26..50].try_into().unwrap();
    let expected = mschapv2::generate_nt_response(&challenge, &peer_challenge, &user, password);
    if expected != nt_response {
        let mut error = vec![response[0]];
        error.extend_from_slice(b"E=691 R=1 C=00000000000000000000000000000000 V=3");
        return emit_response(
            Code::AccessReject,
            p.identifier(),
            &ra,
            secret,
            &[(
                attr::VENDOR_SPECIFIC,
                vendor_value(ms::VENDOR_ID, ms::CHAP_ERROR, &error),
            )],
            true,
        );
    }
    let auth = mschapv2::generate_authenticator_response(
        password,
        &nt_response,
        &peer_challenge,
        &challenge,
        &user,
    );
    let mut success = vec![response[0]];
    success.extend_from_slice(b"S=");
    for b in auth {
        success.extend_from_slice(format!("{b:02X}").as_bytes());
    }
    let hash_hash = mschap::hash_nt_password_hash(&mschap::nt_password_hash(password));
    let MppeMaterial::V2 {
        master_send_key,
        master_recv_key,
    } = mschapv2_material(&hash_hash, &nt_response, Role::Server)
    else {
        unreachable!()
    };
    emit_response(
        Code::AccessAccept,
        p.identifier(),
        &ra,
        secret,
        &[
            (
                attr::VENDOR_SPECIFIC,
                vendor_value(ms::VENDOR_ID, ms::CHAP2_SUCCESS, &success),
            ),
            (
                attr::VENDOR_SPECIFIC,
                vendor_value(
                    ms::VENDOR_ID,
                    ms::MPPE_SEND_KEY,
                    &rfc2548_encrypt(&master_send_key, [0x80, 0x11], secret, &ra),
                ),
            ),
            (
                attr::VENDOR_SPECIFIC,
                vendor_value(
                    ms::VENDOR_ID,
                    ms::MPPE_RECV_KEY,
                    &rfc2548_encrypt(&master_recv_key, [0x80, 0x22], secret, &ra),
                ),
            ),
        ],
        true,
    )
}

/// Runs our server engine against our peer engine, the server's verdicts
/// coming from `mschapv2_server` through a [`Transaction`] (sans-IO, on a
/// simulated clock). Returns what each side reported.
fn mschapv2_through_radius(peer_password: &str) -> (Vec<AuthEvent>, Vec<AuthEvent>) {
    let radius = server(1812, SECRET);
    let verifier = RadiusVerifier::new(settings(vec![radius.clone()]), seeded_random(3));
    let mut srv = ServerAuthFactory::new(
        ServerSettings {
            failure_delay: Duration::ZERO,
            ..ServerSettings::default()
        },
        seeded_random(4),
    )
    .engine(AuthMethod::MsChapV2);
    let mut peer =
        PeerAuthFactory::new(PeerSettings::new("alice", peer_password), seeded_random(5))
            .engine(AuthMethod::MsChapV2);
    let now = Instant::now();
    srv.start(now);
    peer.start(now);
    let (mut srv_events, mut peer_events) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        while let Some(p) = srv.poll_transmit() {
            peer.handle_packet(now, &p);
        }
        while let Some(p) = peer.poll_transmit() {
            srv.handle_packet(now, &p);
        }
        while let Some(e) = srv.poll_event() {
            if let AuthEvent::Verify(credentials) = &e {
                let mut t = verifier
                    .transaction(SOURCE, None, credentials, now)
                    .unwrap();
                let sent = t.poll_transmit().unwrap();
                let answer = mschapv2_server(&sent.payload, SECRET, b"s3cret");
                t.handle_datagram(now, radius.address, &answer);
                let Some(Event::Answered {
                    server,
                    response,
                    request_authenticator,
                }) = t.poll_event()
                else {
                    panic!("no answer")
                };
                let verdict =
                    verifier.verdict(credentials, server, &response, &request_authenticator);
                srv.handle_verdict(now, verdict);
            }
            srv_events.push(e);
        }
        while let Some(e) = peer.poll_event() {
            peer_events.push(e);
        }
    }
    (srv_events, peer_events)
}

#[test]
fn ms_chap_v2_through_radius_authenticates_both_ends_and_the_keys_pass_traffic() {
    use crate::mppe::{KeyLength, MppeParams, cipher::MppeCipher};
    let (srv, peer) = mschapv2_through_radius("s3cret");
    let Some(AuthEvent::Succeeded(server_side)) = srv.last() else {
        panic!("server: {srv:?}")
    };
    // The peer checked the Authenticator Response relayed from RADIUS
    // (mutual authentication) before reporting success.
    let Some(AuthEvent::Succeeded(client_side)) = peer.last() else {
        panic!("peer: {peer:?}")
    };
    let (Some(server_keys), Some(client_keys)) = (&server_side.mppe, &client_side.mppe) else {
        panic!("no MPPE material")
    };
    // Traffic encrypted with the keys from RADIUS decrypts with the
    // client's own keys, both ways, at every key length.
    for key_length in [KeyLength::Bits128, KeyLength::Bits56, KeyLength::Bits40] {
        let params = MppeParams {
            key_length,
            stateless: true,
        };
        let mut ours = MppeCipher::new(server_keys, params);
        let mut theirs = MppeCipher::new(client_keys, params);
        let plain = b"\x00\x21 an IPv4 packet".to_vec();
        let mut wire = vec![0u8; plain.len() + 2];
        let n = ours.encryptor.encrypt(&plain, &mut wire).unwrap();
        assert_ne!(&wire[2..n], &plain[..]);
        let mut back = vec![0u8; plain.len()];
        let m = theirs.decryptor.decrypt(&wire[..n], &mut back).unwrap();
        assert_eq!(&back[..m], &plain[..], "{key_length:?} server to client");
        let plain = b"\x00\x21 the answer".to_vec();
        let mut wire = vec![0u8; plain.len() + 2];
        let n = theirs.encryptor.encrypt(&plain, &mut wire).unwrap();
        let mut back = vec![0u8; plain.len()];
        let m = ours.decryptor.decrypt(&wire[..n], &mut back).unwrap();
        assert_eq!(&back[..m], &plain[..], "{key_length:?} client to server");
    }
}

#[test]
fn ms_chap_v2_reject_through_radius_fails_the_client() {
    let (srv, peer) = mschapv2_through_radius("wrong");
    // Three attempts (R=1 retries from our engine), then failure on both ends.
    let verifies = srv
        .iter()
        .filter(|e| matches!(e, AuthEvent::Verify(_)))
        .count();
    assert_eq!(verifies, 3, "{srv:?}");
    assert!(
        matches!(srv.last(), Some(AuthEvent::Failed { .. })),
        "{srv:?}"
    );
    assert!(
        matches!(peer.last(), Some(AuthEvent::Failed { .. })),
        "{peer:?}"
    );
}

// ----- against a real server (manual) -----
