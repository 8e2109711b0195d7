//! Dynamic authorization (RFC 5176) against the real daemon: FreeRADIUS's
//! radclient, in the server namespace, sends Disconnect-Requests and
//! CoA-Requests to the daemon's `[radius.dae]` listener while our client
//! holds a session. The daemon authenticates from its secrets file here:
//! dynamic authorization does not depend on the back end. Needs root and
//! radclient (freeradius-utils, `cargo xtask setup`); fails (never skips)
//! without them.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use pptp_lab::{
    lab::{Lab, LabOptions, Process, SERVER_WAN},
    radius_lab::{Reply, radclient_to},
};
use pptp_netns as netns;
use serde_json::Value;

mod common;
use common::bin;

const DAE_SECRET: &str = "coa-secret";

/// The daemon listens on every address of the server namespace and allows
/// 127.0.0.1 only, so radclient reaches it as an allowed client through
/// 127.0.0.1 and as a stranger through the WAN address.
fn dae_address() -> SocketAddr {
    "127.0.0.1:3799".parse().unwrap()
}

fn dae_wan_address() -> SocketAddr {
    format!("{SERVER_WAN}:3799").parse().unwrap()
}

fn lab() -> Lab {
    netns::require_root().expect("prerequisite");
    Lab::start(
        bin(),
        &LabOptions {
            extra: format!(
                "\n[radius.dae]\nlisten = \"0.0.0.0:3799\"\nsecret = \"{DAE_SECRET}\"\nclients = [\"127.0.0.1\"]\n"
            ),
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn wait_up(client: &mut Process, lab: &Lab) -> Value {
    let line = client
        .wait_for_line(Duration::from_secs(60), |l| {
            l.contains("\"up\"") || l.contains("\"failed\"") || l.contains("\"down\"")
        })
        .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()));
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "up", "{v}\ndaemon log:\n{}", lab.daemon_log());
    v
}

fn wait_down(client: &mut Process, lab: &Lab) {
    client
        .wait_for_line(Duration::from_secs(20), |l| l.contains("\"down\""))
        .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()));
}

fn send(lab: &Lab, code: &str, secret: &str, attributes: &str) -> Reply {
    radclient_to(
        &lab.topology.server,
        dae_address(),
        code,
        secret,
        attributes,
        3,
    )
    .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()))
}

/// Waits until the daemon has no session left and its pool is empty.
fn wait_released(lab: &Lab) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = lab.stats().unwrap();
        if lab.sessions().unwrap().is_empty() && stats["pool_in_use"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {:?}, pool_in_use {}\ndaemon log:\n{}",
            lab.sessions(),
            stats["pool_in_use"],
            lab.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stat(lab: &Lab, name: &str) -> u64 {
    lab.stats().unwrap()[name]
}

#[test]
fn disconnect_request_by_acct_session_id_or_user_name_ends_the_session() {
    let lab = lab();

    // An unknown Acct-Session-Id: Disconnect-NAK, Error-Cause 503.
    let r = send(
        &lab,
        "disconnect",
        DAE_SECRET,
        "Acct-Session-Id = \"00000000-0000-00000000\"",
    );
    assert_eq!(r.code, "Disconnect-NAK", "{r:?}");
    let cause = r.get("Error-Cause").unwrap_or_default();
    assert!(
        cause == "Session-Context-Not-Found" || cause == "503",
        "{r:?}"
    );
    // A wrong secret: no answer at all.
    assert!(
        radclient_to(
            &lab.topology.server,
            dae_address(),
            "disconnect",
            "not-the-secret",
            "User-Name = \"alice\"",
            1,
        )
        .is_err()
    );
    assert_eq!(stat(&lab, "dae_dropped_invalid"), 1);
    // The right secret from a source not in `clients`: dropped, counted.
    assert!(
        radclient_to(
            &lab.topology.server,
            dae_wan_address(),
            "disconnect",
            DAE_SECRET,
            "User-Name = \"alice\"",
            1,
        )
        .is_err()
    );
    assert_eq!(stat(&lab, "dae_dropped_source"), 1);

    // By Acct-Session-Id, taken from the daemon.
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab);
    let sessions = lab.sessions().unwrap();
    assert_eq!(sessions.len(), 1);
    let sid = sessions[0].acct_session_id.clone();
    assert!(!sid.is_empty(), "{sessions:?}");
    assert_eq!(stat(&lab, "pool_in_use"), 1);
    let r = send(
        &lab,
        "disconnect",
        DAE_SECRET,
        &format!("Acct-Session-Id = \"{sid}\", NAS-Identifier = \"pptp-xdp\""),
    );
    assert_eq!(r.code, "Disconnect-ACK", "{r:?}");
    wait_down(&mut client, &lab);
    wait_released(&lab);
    assert_eq!(stat(&lab, "ended_admin_reset"), 1);

    // By User-Name.
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab);
    // Another NAS's name: NAK 403, the session stays.
    let r = send(
        &lab,
        "disconnect",
        DAE_SECRET,
        "User-Name = \"alice\", NAS-Identifier = \"another-nas\"",
    );
    assert_eq!(r.code, "Disconnect-NAK", "{r:?}");
    let cause = r.get("Error-Cause").unwrap_or_default();
    assert!(
        cause == "NAS-Identification-Mismatch" || cause == "403",
        "{r:?}"
    );
    assert_eq!(lab.sessions().unwrap().len(), 1);
    let r = send(&lab, "disconnect", DAE_SECRET, "User-Name = \"alice\"");
    assert_eq!(r.code, "Disconnect-ACK", "{r:?}");
    wait_down(&mut client, &lab);
    wait_released(&lab);
    assert_eq!(stat(&lab, "ended_admin_reset"), 2);
    assert_eq!(stat(&lab, "dae_acks"), 2);
    assert_eq!(stat(&lab, "dae_naks"), 2);
}

#[test]
fn coa_session_timeout_ends_the_session() {
    let lab = lab();
    let mut client = lab.client(&[]).unwrap();
    let up = wait_up(&mut client, &lab);
    let address = up["address"].as_str().expect("address").to_owned();
    // No such session: CoA-NAK 503.
    let r = send(
        &lab,
        "coa",
        DAE_SECRET,
        "User-Name = \"nobody\", Session-Timeout = 2",
    );
    assert_eq!(r.code, "CoA-NAK", "{r:?}");
    // By Framed-IP-Address, signed with a Message-Authenticator.
    let asked = Instant::now();
    let r = send(
        &lab,
        "coa",
        DAE_SECRET,
        &format!(
            "Framed-IP-Address = {address}, Session-Timeout = 2, Message-Authenticator = 0x00"
        ),
    );
    assert_eq!(r.code, "CoA-ACK", "{r:?}");
    wait_down(&mut client, &lab);
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "ended after {took:?}"
    );
    wait_released(&lab);
    assert_eq!(stat(&lab, "ended_session_timeout"), 1);
    assert_eq!(stat(&lab, "ended_admin_reset"), 0);
}
