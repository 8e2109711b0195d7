//! Against a real FreeRADIUS 3.2 (Debian's `freeradius`), started by the
//! tests themselves in the lab's server namespace ([`FreeRadius`]): first
//! the fixture on its own with radclient, then sessions of our client
//! through the daemon configured with `auth.backend = "radius"`. Needs root
//! and the packages freeradius and freeradius-utils (`cargo xtask setup`);
//! fails (never skips) without them.

use std::{net::SocketAddr, path::Path, time::Duration};

use pptp_daemon::{
    auth::{
        Credentials, MppeMaterial, Rejection, Verdict, Verifier as _, chap, mschap, mschapv2,
        radius::{
            RadiusSettings, RadiusVerifier,
            client::{ClientSettings, Server},
        },
        random,
    },
    mppe::{KeyLength, Role, keys},
};
use pptp_lab::{
    lab::{LAN_HOST, Lab, LabOptions, Process, Topology},
    radius_lab::{
        DISABLED_MESSAGE, DISABLED_PASSWORD, DISABLED_USER, FreeRadius, PASSWORD, Reply, SECRET,
        USER, daemon_radius_config, unused_port,
    },
};
use pptp_netns::{self as netns, Netns};
use serde_json::Value;

mod common;
use common::bin;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn ask(fr: &FreeRadius, code: &str, attributes: &str) -> Reply {
    fr.radclient(code, attributes)
        .unwrap_or_else(|e| panic!("{e}\nFreeRADIUS log:\n{}", fr.log()))
}

/// The fixture alone: PAP, CHAP-MD5, MS-CHAPv1 and MS-CHAPv2 (built with
/// our own RFC 2759 code) accepted for alice with the right password and
/// rejected with a wrong one; the disabled user rejected with its
/// Reply-Message; every reply signed with Message-Authenticator; a request
/// without one dropped; accounting written to the detail file.
#[test]
fn freeradius_fixture_answers_pap_and_mschap() {
    netns::require_root().expect("prerequisite");
    let ns = Netns::new("pxfr").expect("namespace");
    let fr = FreeRadius::start(&ns).unwrap_or_else(|e| panic!("{e}"));
    let signed = |r: &Reply| {
        assert_eq!(
            r.octets("Message-Authenticator").map(|m| m.len()),
            Some(16),
            "{} without Message-Authenticator: {r:?}",
            r.code
        );
    };

    // PAP.
    let r = ask(
        &fr,
        "auth",
        &format!("User-Name = {USER}, User-Password = \"{PASSWORD}\""),
    );
    assert_eq!(r.code, "Access-Accept", "{r:?}");
    signed(&r);
    let r = ask(
        &fr,
        "auth",
        &format!("User-Name = {USER}, User-Password = \"not the password\""),
    );
    assert_eq!(r.code, "Access-Reject", "{r:?}");
    signed(&r);
    let r = ask(
        &fr,
        "auth",
        &format!("User-Name = {DISABLED_USER}, User-Password = \"{DISABLED_PASSWORD}\""),
    );
    assert_eq!(r.code, "Access-Reject", "{r:?}");
    assert_eq!(r.get("Reply-Message"), Some(DISABLED_MESSAGE));
    signed(&r);

    // CHAP-MD5 (radclient turns a cleartext CHAP-Password into
    // CHAP-Challenge and the MD5 response).
    let r = ask(
        &fr,
        "auth",
        &format!("User-Name = {USER}, CHAP-Password = \"{PASSWORD}\""),
    );
    assert_eq!(r.code, "Access-Accept", "{r:?}");
    signed(&r);
    let r = ask(
        &fr,
        "auth",
        &format!("User-Name = {USER}, CHAP-Password = \"wrong\""),
    );
    assert_eq!(r.code, "Access-Reject", "{r:?}");

    // MS-CHAPv1 (radclient builds MS-CHAP-Challenge and MS-CHAP-Response
    // from MS-CHAP-Password): MS-CHAP-MPPE-Keys (RFC 2548 section 2.4.1),
    // 128-bit only (require_strong: Encryption-Types 4).
    let r = ask(
        &fr,
        "auth",
        &format!("User-Name = {USER}, MS-CHAP-Password = \"{PASSWORD}\""),
    );
    assert_eq!(r.code, "Access-Accept", "{r:?}");
    signed(&r);
    let v1_keys = r.octets("MS-CHAP-MPPE-Keys").expect("MS-CHAP-MPPE-Keys");
    assert_eq!(v1_keys.len(), 24, "LM key (8) + NT key (16): {r:?}");
    assert_eq!(
        &v1_keys[8..],
        &mschap::hash_nt_password_hash(&mschap::nt_password_hash(PASSWORD.as_bytes())),
        "the NT part is the hash of the NT password hash (RFC 3079 section 2.4)"
    );
    assert_eq!(r.get("MS-MPPE-Encryption-Types"), Some("4"), "{r:?}");
    let r = ask(
        &fr,
        "auth",
        &format!("User-Name = {USER}, MS-CHAP-Password = \"wrong\""),
    );
    assert_eq!(r.code, "Access-Reject", "{r:?}");
    assert!(
        r.get("MS-CHAP-Error").is_some_and(|e| e.contains("E=691")),
        "{r:?}"
    );

    // MS-CHAPv2, built here from RFC 2759: MS-CHAP2-Success carries our
    // Authenticator Response, MS-MPPE-Send-Key is the server's send key
    // (RFC 3079 section 3.4, server side), Recv-Key the client's.
    let authenticator_challenge: [u8; 16] = *b"radius-lab-chall";
    let peer_challenge: [u8; 16] = *b"our-client-chall";
    let v2_request = |password: &str| {
        let nt_response = mschapv2::generate_nt_response(
            &authenticator_challenge,
            &peer_challenge,
            USER.as_bytes(),
            password.as_bytes(),
        );
        // Ident, Flags, Peer-Challenge, 8 reserved octets, NT-Response (RFC 2548 section 2.3.2).
        let mut response = vec![7u8, 0];
        response.extend_from_slice(&peer_challenge);
        response.extend_from_slice(&[0; 8]);
        response.extend_from_slice(&nt_response);
        (
            format!(
                "User-Name = {USER}, MS-CHAP-Challenge = 0x{}, MS-CHAP2-Response = 0x{}",
                hex(&authenticator_challenge),
                hex(&response)
            ),
            nt_response,
        )
    };
    let (attributes, nt_response) = v2_request(PASSWORD);
    let r = ask(&fr, "auth", &attributes);
    assert_eq!(r.code, "Access-Accept", "{r:?}");
    signed(&r);
    let success = r.octets("MS-CHAP2-Success").expect("MS-CHAP2-Success");
    let expected = mschapv2::generate_authenticator_response(
        PASSWORD.as_bytes(),
        &nt_response,
        &peer_challenge,
        &authenticator_challenge,
        USER.as_bytes(),
    );
    assert_eq!(success[0], 7, "the Ident of our MS-CHAP2-Response");
    assert!(
        String::from_utf8_lossy(&success[1..])
            .to_ascii_lowercase()
            .starts_with(&format!("s={}", hex(&expected))),
        "MS-CHAP2-Success {:?}",
        String::from_utf8_lossy(&success)
    );
    let hash_hash = mschap::hash_nt_password_hash(&mschap::nt_password_hash(PASSWORD.as_bytes()));
    let master = keys::get_master_key(&hash_hash, &nt_response);
    assert_eq!(
        r.octets("MS-MPPE-Send-Key"),
        Some(keys::get_asymmetric_start_key(&master, true, true).to_vec()),
        "Send-Key is the server's send key: {r:?}"
    );
    assert_eq!(
        r.octets("MS-MPPE-Recv-Key"),
        Some(keys::get_asymmetric_start_key(&master, false, true).to_vec()),
        "Recv-Key is the server's receive key: {r:?}"
    );
    let (attributes, _) = v2_request("wrong");
    let r = ask(&fr, "auth", &attributes);
    assert_eq!(r.code, "Access-Reject", "{r:?}");
    signed(&r);
    assert!(
        r.get("MS-CHAP-Error").is_some_and(|e| e.contains("E=691")),
        "{r:?}"
    );

    // No Message-Authenticator in the request: dropped, no answer at all.
    let err = fr
        .radclient_unsigned(
            "auth",
            &format!("User-Name = {USER}, User-Password = \"{PASSWORD}\""),
        )
        .expect_err("an unsigned request must not be answered");
    assert!(err.to_string().contains("no reply"), "{err}");
    assert!(
        fr.log()
            .contains("does not contain required Message-Authenticator"),
        "{}",
        fr.log()
    );

    // Accounting reaches the detail file.
    let r = ask(
        &fr,
        "acct",
        &format!(
            "User-Name = {USER}, Acct-Status-Type = Start, Acct-Session-Id = \"radius-lab-1\", NAS-Identifier = pptp-xdp"
        ),
    );
    assert_eq!(r.code, "Accounting-Response", "{r:?}");
    let detail = std::fs::read_to_string(fr.detail_file()).expect("detail file");
    assert!(
        detail.contains("Acct-Session-Id = \"radius-lab-1\"")
            && detail.contains("Acct-Status-Type = Start"),
        "{detail}"
    );
}

// The daemon's RADIUS Verifier against FreeRADIUS, method by method
// (PAP and CHAP-MD5 included; end to end with our client at the end).

/// The lab's RADIUS settings (as [`daemon_radius_config`] writes them) for
/// `servers`, each with `secret`.
fn verifier(servers: &[SocketAddr], secret: &str) -> RadiusVerifier {
    RadiusVerifier::new(
        RadiusSettings {
            nas_identifier: "pptp-xdp".into(),
            nas_ip_address: None,
            client: ClientSettings {
                servers: servers
                    .iter()
                    .map(|&address| Server {
                        address,
                        secret: secret.as_bytes().to_vec(),
                    })
                    .collect(),
                timeout: Duration::from_millis(1000),
                retries: 2,
                dead_time: Duration::from_secs(30),
            },
        },
        random::os_random(),
    )
}

const CLIENT: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2));

/// `verify` from inside `ns` (the verifier's UDP socket lives there).
fn verify(ns: &Netns, v: &RadiusVerifier, credentials: &Credentials) -> Verdict {
    ns.run(|| v.verify(CLIENT, credentials)).expect("namespace")
}

/// As the daemon asks: for the call with our call ID `call_id`.
fn verify_call(ns: &Netns, v: &RadiusVerifier, call_id: u16, credentials: &Credentials) -> Verdict {
    ns.run(|| v.verify_call(CLIENT, call_id, credentials))
        .expect("namespace")
}

fn pap(user: &str, password: &str) -> Credentials {
    Credentials::Pap {
        user: user.into(),
        password: password.as_bytes().to_vec(),
    }
}

fn chap_md5(password: &str) -> Credentials {
    let challenge = b"sixteen octets!!".to_vec();
    Credentials::ChapMd5 {
        user: USER.into(),
        identifier: 42,
        response: chap::response(42, password.as_bytes(), &challenge),
        challenge,
    }
}

const V1_CHALLENGE: [u8; 8] = *b"v1-chall";

fn mschapv1(password: &str) -> Credentials {
    Credentials::MsChapV1 {
        user: USER.into(),
        challenge: V1_CHALLENGE,
        lm_response: [0; 24],
        nt_response: mschap::nt_challenge_response(&V1_CHALLENGE, password.as_bytes()),
        use_nt_response: true,
    }
}

const V2_AUTHENTICATOR_CHALLENGE: [u8; 16] = *b"authenticator-ch";
const V2_PEER_CHALLENGE: [u8; 16] = *b"the-peer-challng";

fn mschapv2(password: &str) -> Credentials {
    Credentials::MsChapV2 {
        user: USER.into(),
        authenticator_challenge: V2_AUTHENTICATOR_CHALLENGE,
        peer_challenge: V2_PEER_CHALLENGE,
        nt_response: mschapv2::generate_nt_response(
            &V2_AUTHENTICATOR_CHALLENGE,
            &V2_PEER_CHALLENGE,
            USER.as_bytes(),
            password.as_bytes(),
        ),
    }
}

fn accepted(verdict: Verdict, fr: &FreeRadius) -> pptp_daemon::auth::Accepted {
    match verdict {
        Verdict::Accept(a) => a,
        other => panic!("{other:?}\nFreeRADIUS log:\n{}", fr.log()),
    }
}

/// Every method the daemon offers, right and wrong password, through the
/// RADIUS Verifier: PAP, CHAP-MD5, MS-CHAPv1 (128-bit MPPE start key equal
/// to the one the client derives) and MS-CHAPv2 (Authenticator Response
/// and MPPE master keys equal to the client's view, mirrored); a disabled
/// account refused.
#[test]
fn radius_verifier_checks_every_method_against_freeradius() {
    netns::require_root().expect("prerequisite");
    let ns = Netns::new("pxfv").expect("namespace");
    let fr = FreeRadius::start(&ns).unwrap_or_else(|e| panic!("{e}"));
    let v = verifier(&[fr.auth_address()], SECRET);

    let a = accepted(verify_call(&ns, &v, 0x0102, &pap(USER, PASSWORD)), &fr);
    assert_eq!(a.user, USER);
    assert_eq!((a.authenticator_response, &a.mppe), (None, &None));
    // What FreeRADIUS received (its -X log lists every attribute); the
    // Message-Authenticator, or it would have dropped the request.
    let log = fr.log();
    for attribute in [
        "User-Name = \"alice\"",
        "NAS-Identifier = \"pptp-xdp\"",
        "NAS-Port = 258",
        "NAS-Port-Type = Virtual",
        "Service-Type = Framed-User",
        "Framed-Protocol = PPP",
        "Calling-Station-Id = \"198.18.0.2\"",
        "Message-Authenticator = 0x",
    ] {
        assert!(log.contains(attribute), "no {attribute} in:\n{log}");
    }
    assert_eq!(
        verify(&ns, &v, &pap(USER, "wrong")),
        Verdict::Reject(Rejection::BadCredentials)
    );
    assert!(
        matches!(
            verify(&ns, &v, &pap(DISABLED_USER, DISABLED_PASSWORD)),
            Verdict::Reject(_)
        ),
        "a disabled account"
    );

    let a = accepted(verify(&ns, &v, &chap_md5(PASSWORD)), &fr);
    assert_eq!(a.user, USER);
    assert_eq!(
        verify(&ns, &v, &chap_md5("wrong")),
        Verdict::Reject(Rejection::BadCredentials)
    );

    let a = accepted(verify(&ns, &v, &mschapv1(PASSWORD)), &fr);
    let theirs = keys::start_keys(a.mppe.as_ref().expect("MPPE keys"), KeyLength::Bits128);
    let ours = keys::start_keys(
        &keys::mschapv1_material(
            &mschap::lm_password_hash(PASSWORD.as_bytes()),
            &mschap::hash_nt_password_hash(&mschap::nt_password_hash(PASSWORD.as_bytes())),
            &V1_CHALLENGE,
        ),
        KeyLength::Bits128,
    );
    assert_eq!(theirs, ours, "MS-CHAPv1 128-bit start keys");
    assert_eq!(
        verify(&ns, &v, &mschapv1("wrong")),
        Verdict::Reject(Rejection::BadCredentials)
    );

    let credentials = mschapv2(PASSWORD);
    let Credentials::MsChapV2 { nt_response, .. } = &credentials else {
        unreachable!()
    };
    let a = accepted(verify(&ns, &v, &credentials), &fr);
    assert_eq!(
        a.authenticator_response,
        Some(mschapv2::generate_authenticator_response(
            PASSWORD.as_bytes(),
            nt_response,
            &V2_PEER_CHALLENGE,
            &V2_AUTHENTICATOR_CHALLENGE,
            USER.as_bytes(),
        ))
    );
    let hash_hash = mschap::hash_nt_password_hash(&mschap::nt_password_hash(PASSWORD.as_bytes()));
    assert_eq!(
        a.mppe,
        Some(keys::mschapv2_material(
            &hash_hash,
            nt_response,
            Role::Server
        )),
        "the server's view of the MS-CHAPv2 keys"
    );
    let Some(MppeMaterial::V2 {
        master_send_key,
        master_recv_key,
    }) = a.mppe
    else {
        unreachable!()
    };
    assert_eq!(
        keys::mschapv2_material(&hash_hash, nt_response, Role::Client),
        MppeMaterial::V2 {
            master_send_key: master_recv_key,
            master_recv_key: master_send_key,
        },
        "what the server sends with, the client receives with"
    );
    assert_eq!(
        verify(&ns, &v, &mschapv2("wrong")),
        Verdict::Reject(Rejection::BadCredentials)
    );
    assert_eq!(
        v.stats()
            .dropped_no_message_authenticator
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// BlastRADIUS (CVE-2024-3596): FreeRADIUS 3.2.1 as Debian ships it signs
/// no Access-Accept; the verifier drops every such answer and refuses the
/// login as "back end unavailable", never as accepted.
#[test]
fn radius_verifier_refuses_answers_without_message_authenticator() {
    netns::require_root().expect("prerequisite");
    let ns = Netns::new("pxfu").expect("namespace");
    let fr = FreeRadius::start_unsigned(&ns).unwrap_or_else(|e| panic!("{e}"));
    let v = verifier(&[fr.auth_address()], SECRET);
    assert_eq!(
        verify(&ns, &v, &pap(USER, PASSWORD)),
        Verdict::Reject(Rejection::BackendUnavailable)
    );
    assert!(
        fr.logins_ok(USER) >= 1,
        "FreeRADIUS did accept:\n{}",
        fr.log()
    );
    assert!(
        v.stats()
            .dropped_no_message_authenticator
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

/// A wrong shared secret: FreeRADIUS drops our requests (their
/// Message-Authenticator does not verify), so nothing is ever accepted.
#[test]
fn radius_verifier_with_a_wrong_secret_gets_no_answer() {
    netns::require_root().expect("prerequisite");
    let ns = Netns::new("pxfs").expect("namespace");
    let fr = FreeRadius::start(&ns).unwrap_or_else(|e| panic!("{e}"));
    let v = verifier(&[fr.auth_address()], "not the secret");
    assert_eq!(
        verify(&ns, &v, &pap(USER, PASSWORD)),
        Verdict::Reject(Rejection::BackendUnavailable)
    );
    assert_eq!(fr.logins_ok(USER), 0, "{}", fr.log());
}

/// Failover and hold-down: the first server is dead (nothing listens), the
/// second answers; the dead one is marked once and skipped afterwards;
/// with both dead, the back end is unavailable.
#[test]
fn radius_verifier_fails_over_from_a_dead_server() {
    netns::require_root().expect("prerequisite");
    let ns = Netns::new("pxfd").expect("namespace");
    let fr = FreeRadius::start(&ns).unwrap_or_else(|e| panic!("{e}"));
    let dead = SocketAddr::from(([127, 0, 0, 1], unused_port(&ns).expect("a port")));
    let v = verifier(&[dead, fr.auth_address()], SECRET);
    let server_dead = |v: &RadiusVerifier| {
        v.stats()
            .server_dead
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    accepted(verify(&ns, &v, &mschapv2(PASSWORD)), &fr);
    assert_eq!(server_dead(&v), 1);
    accepted(verify(&ns, &v, &pap(USER, PASSWORD)), &fr);
    assert_eq!(
        server_dead(&v),
        1,
        "the dead server is held down, not tried again"
    );
    assert_eq!(fr.logins_ok(USER), 2, "{}", fr.log());

    let nobody = verifier(&[dead], SECRET);
    assert_eq!(
        verify(&ns, &nobody, &pap(USER, PASSWORD)),
        Verdict::Reject(Rejection::BackendUnavailable)
    );
}

/// A lab whose daemon authenticates with RADIUS against `servers` (the
/// real FreeRADIUS among them), `methods` offered in that order.
fn radius_lab(
    topology: Topology,
    servers: &[SocketAddr],
    methods: &str,
    mppe: &'static str,
) -> Lab {
    Lab::start_in(
        topology,
        bin(),
        &LabOptions {
            xdp: false,
            mppe,
            auth: Some(format!(
                "backend = \"radius\"\nmethods = [{methods}]\nfailure_delay_ms = 100"
            )),
            extra: daemon_radius_config(servers),
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The topology with FreeRADIUS already running in its server namespace.
fn topology_with_freeradius() -> (Topology, FreeRadius) {
    netns::require_root().expect("prerequisite");
    let topology = Topology::new().expect("topology");
    let fr = FreeRadius::start(&topology.server).unwrap_or_else(|e| panic!("{e}"));
    (topology, fr)
}

/// Our client as `user`/`password`, and the file it logs to.
fn client_as(
    lab: &Lab,
    user: &str,
    password: &str,
    extra: &[&str],
) -> (Process, std::path::PathBuf) {
    lab.client_logged(user, password, extra)
        .expect("client starts")
}

/// Waits up to 10 s for the client's log (`path`) to show why its
/// authentication failed: a line with "refused with error {code}". The
/// client's JSON "down" line may instead name the Call-Disconnect-Notify
/// that follows the Failure on the wire (whichever the client reads first
/// wins), so the log is the reliable witness.
fn client_refused_with(path: &Path, code: u32) -> Result<(), String> {
    let needle = format!("refused with error {code}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(&needle) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("no \"{needle}\" in the client's log:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads client lines until it is up (`Ok(up line)`) or reports a failure
/// (`Err(line)`).
fn outcome(client: &mut Process, lab: &Lab, fr: &FreeRadius) -> Result<Value, Value> {
    client
        .session_outcome(Duration::from_secs(60))
        .unwrap_or_else(|e| {
            panic!(
                "{e}\ndaemon log:\n{}\nFreeRADIUS log:\n{}",
                lab.daemon_log(),
                fr.log()
            )
        })
}

fn up(client: &mut Process, lab: &Lab, fr: &FreeRadius) -> Value {
    outcome(client, lab, fr).unwrap_or_else(|line| {
        panic!(
            "client: {line}\ndaemon log:\n{}\nFreeRADIUS log:\n{}",
            lab.daemon_log(),
            fr.log()
        )
    })
}

/// Ping and a TCP transfer both ways through an encrypted session: the
/// MPPE keys the daemon took from RADIUS match the ones our client derives
/// from its password, or nothing decrypts.
fn assert_traffic(up: &Value, lab: &Lab, fr: &FreeRadius) {
    assert_eq!(up["mppe"], Value::Bool(true), "{up}");
    let addr = up["address"].as_str().expect("address");
    let logs = || {
        format!(
            "daemon log:\n{}\nFreeRADIUS log:\n{}",
            lab.daemon_log(),
            fr.log()
        )
    };
    lab.ping(addr, LAN_HOST, 3)
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    lab.tcp_echo(addr, 2_000_000)
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
}

#[test]
fn mschapv2_with_mppe_keys_from_radius_passes_ping_and_tcp() {
    let (topology, fr) = topology_with_freeradius();
    let lab = radius_lab(topology, &[fr.auth_address()], "\"mschapv2\"", "require");
    let mut client = lab.client(&["--mppe"]).expect("client");
    let up = up(&mut client, &lab, &fr);
    assert!(fr.logins_ok(USER) >= 1, "{}", fr.log());
    assert_traffic(&up, &lab, &fr);
}

#[test]
fn mschapv1_with_mppe_keys_from_radius_passes_ping_and_tcp() {
    let (topology, fr) = topology_with_freeradius();
    let lab = radius_lab(topology, &[fr.auth_address()], "\"mschap\"", "require");
    let mut client = lab.client(&["--mppe"]).expect("client");
    let up = up(&mut client, &lab, &fr);
    assert!(fr.logins_ok(USER) >= 1, "{}", fr.log());
    assert_traffic(&up, &lab, &fr);
}

/// A wrong password: FreeRADIUS rejects (MS-CHAP-Error E=691 R=1), our
/// client retries as the Failure allows and gives up with error 691; no
/// session is left.
#[test]
fn wrong_password_is_rejected_through_radius_with_error_691() {
    let (topology, fr) = topology_with_freeradius();
    let lab = radius_lab(topology, &[fr.auth_address()], "\"mschapv2\"", "require");
    let (mut client, log) = client_as(&lab, USER, "not the password", &["--mppe"]);
    let line = outcome(&mut client, &lab, &fr)
        .map(|up| panic!("a wrong password got a session: {up}"))
        .unwrap_err();
    client_refused_with(&log, 691)
        .unwrap_or_else(|e| panic!("{line}\n{e}\ndaemon log:\n{}", lab.daemon_log()));
    assert!(
        fr.logins_incorrect(USER) >= 1,
        "the reject came from FreeRADIUS:\n{}",
        fr.log()
    );
    assert!(lab.sessions().expect("sessions").is_empty());
}

/// The disabled user: rejected by FreeRADIUS whatever the password.
#[test]
fn disabled_user_is_rejected_through_radius() {
    let (topology, fr) = topology_with_freeradius();
    let lab = radius_lab(topology, &[fr.auth_address()], "\"mschapv2\"", "allow");
    let (mut client, log) = client_as(&lab, DISABLED_USER, DISABLED_PASSWORD, &[]);
    let line = outcome(&mut client, &lab, &fr)
        .map(|up| panic!("a disabled user got a session: {up}"))
        .unwrap_err();
    client_refused_with(&log, 691)
        .unwrap_or_else(|e| panic!("{line}\n{e}\ndaemon log:\n{}", lab.daemon_log()));
    assert!(fr.logins_incorrect(DISABLED_USER) >= 1, "{}", fr.log());
}

/// A RADIUS server that never answers: a UDP socket on 127.0.0.1 of `ns`
/// that counts the datagrams it receives, until dropped.
struct BlackHole {
    address: SocketAddr,
    received: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl BlackHole {
    fn new(ns: &Netns) -> BlackHole {
        use std::sync::{
            Arc,
            atomic::{AtomicBool, AtomicUsize, Ordering},
        };
        let socket = ns
            .run(|| std::net::UdpSocket::bind(("127.0.0.1", 0)))
            .expect("namespace")
            .expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let address = socket.local_addr().expect("address");
        let received = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, st) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !st.load(Ordering::Relaxed) {
                if socket.recv(&mut buf).is_ok() {
                    r.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        BlackHole {
            address,
            received,
            stop,
        }
    }

    fn received(&self) -> usize {
        self.received.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Two dead servers before the real one: the first has nothing listening
/// on its port (ICMP port unreachable), the second swallows requests and
/// never answers; the daemon fails over through both (trying the silent
/// one `retries + 1` times) to FreeRADIUS, and the session passes traffic.
/// A second session skips the dead ones (held down for `dead_time_secs`).
#[test]
fn dead_first_server_fails_over_to_the_second() {
    let (topology, fr) = topology_with_freeradius();
    let closed = SocketAddr::from((
        [127, 0, 0, 1],
        unused_port(&topology.server).expect("a port"),
    ));
    let silent = BlackHole::new(&topology.server);
    let lab = radius_lab(
        topology,
        &[closed, silent.address, fr.auth_address()],
        "\"mschapv2\"",
        "require",
    );
    let mut client = lab.client(&["--mppe"]).expect("client");
    let up1 = up(&mut client, &lab, &fr);
    assert_eq!(fr.logins_ok(USER), 1, "{}", fr.log());
    assert_eq!(
        silent.received(),
        3,
        "the silent server tried once and retried twice (retries = 2)"
    );
    assert_traffic(&up1, &lab, &fr);
    drop(client);
    let mut second = lab.client(&["--mppe", "--tun", "pptpc1"]).expect("client");
    up(&mut second, &lab, &fr);
    assert_eq!(fr.logins_ok(USER), 2, "{}", fr.log());
    assert_eq!(silent.received(), 3, "held down: not asked again");
}

/// BlastRADIUS end to end: FreeRADIUS as Debian ships it accepts alice but
/// signs no answer; the daemon drops every such Access-Accept, so no
/// session comes up and none is left.
#[test]
fn unsigned_access_accept_gets_no_session() {
    netns::require_root().expect("prerequisite");
    let topology = Topology::new().expect("topology");
    let fr = FreeRadius::start_unsigned(&topology.server).unwrap_or_else(|e| panic!("{e}"));
    let lab = radius_lab(topology, &[fr.auth_address()], "\"mschapv2\"", "require");
    let mut client = lab.client(&["--mppe"]).expect("client");
    let line = outcome(&mut client, &lab, &fr)
        .map(|up| panic!("an unsigned Access-Accept gave a session: {up}"))
        .unwrap_err();
    assert!(
        fr.logins_ok(USER) >= 1,
        "FreeRADIUS did accept ({line}):\n{}",
        fr.log()
    );
    assert!(lab.sessions().expect("sessions").is_empty());
}

/// Ping and a TCP transfer both ways through an unencrypted session (PAP
/// and CHAP-MD5 carry no MPPE keys).
fn assert_plain_traffic(up: &Value, lab: &Lab, fr: &FreeRadius) {
    assert_eq!(up["mppe"], Value::Bool(false), "{up}");
    let addr = up["address"].as_str().expect("address");
    let logs = || {
        format!(
            "daemon log:\n{}\nFreeRADIUS log:\n{}",
            lab.daemon_log(),
            fr.log()
        )
    };
    lab.ping(addr, LAN_HOST, 3)
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    lab.tcp_echo(addr, 2_000_000)
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
}

/// PAP end to end: the daemon asks only for PAP, our client answers with
/// its password in an Authenticate-Request, FreeRADIUS checks the
/// User-Password the daemon hid with the shared secret; the session passes
/// traffic (MPPE "allow": PAP has no keys, so the link stays clear).
#[test]
fn pap_through_radius_passes_ping_and_tcp() {
    let (topology, fr) = topology_with_freeradius();
    let lab = radius_lab(topology, &[fr.auth_address()], "\"pap\"", "allow");
    let (mut client, _log) = client_as(&lab, USER, PASSWORD, &["--auth", "pap"]);
    let up = up(&mut client, &lab, &fr);
    assert_eq!(fr.logins_ok(USER), 1, "{}", fr.log());
    assert!(
        fr.log().contains("User-Password = \""),
        "FreeRADIUS checked a User-Password:\n{}",
        fr.log()
    );
    assert_plain_traffic(&up, &lab, &fr);
}

/// CHAP-MD5 end to end: the daemon's Challenge and our client's MD5
/// response travel to FreeRADIUS as CHAP-Challenge and CHAP-Password; a
/// wrong password is refused by FreeRADIUS and leaves no session.
#[test]
fn chap_md5_through_radius_passes_ping_and_tcp() {
    let (topology, fr) = topology_with_freeradius();
    let lab = radius_lab(topology, &[fr.auth_address()], "\"chap-md5\"", "deny");
    let (mut client, _log) = client_as(&lab, USER, PASSWORD, &["--auth", "chap-md5"]);
    let up1 = up(&mut client, &lab, &fr);
    assert_eq!(fr.logins_ok(USER), 1, "{}", fr.log());
    let log = fr.log();
    assert!(
        log.contains("CHAP-Password = 0x") && log.contains("CHAP-Challenge = 0x"),
        "FreeRADIUS got CHAP-Password and CHAP-Challenge:\n{log}"
    );
    assert_plain_traffic(&up1, &lab, &fr);
    drop(client);

    let (mut wrong, _log) = client_as(
        &lab,
        USER,
        "not the password",
        &["--auth", "chap-md5", "--tun", "pptpc1"],
    );
    let line = outcome(&mut wrong, &lab, &fr)
        .map(|up| panic!("a wrong CHAP-MD5 password got a session: {up}"))
        .unwrap_err();
    assert!(
        fr.logins_incorrect(USER) >= 1,
        "the reject came from FreeRADIUS ({line}):\n{}",
        fr.log()
    );
}
