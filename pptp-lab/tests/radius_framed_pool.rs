//! RADIUS Framed-Pool (RFC 2869 section 5.18) against a real FreeRADIUS
//! 3.2: a user whose Access-Accept names a pool of `[ppp.pools]` gets an
//! address from it and passes traffic; a user whose Access-Accept names a
//! pool the daemon does not have is refused (no address), with a warning
//! that names the pool. Needs root and the packages freeradius and
//! freeradius-utils (`cargo xtask setup`); fails (never skips) without
//! them.

use std::{net::Ipv4Addr, time::Duration};

use pptp_lab::{
    lab::{LAN_HOST, Lab, LabOptions, Topology},
    radius_lab::{ATTR_PASSWORD, FreeRadius, NO_POOL_USER, POOL_USER, daemon_radius_config},
};
use pptp_netns as netns;
use serde_json::Value;

mod common;
use common::{bin, logs, up};

/// The named pool "gold" of the daemon (inside the lab's routed
/// 198.19.0.0/16, outside its default pool 198.19.64.0/18).
const GOLD: &str = "198.19.10.0/24";

/// A lab whose daemon authenticates with RADIUS (MS-CHAPv2, MPPE
/// required) and has the named pool "gold".
fn lab() -> (Lab, FreeRadius) {
    netns::require_root().expect("prerequisite");
    let topology = Topology::new().expect("topology");
    let fr = FreeRadius::start(&topology.server).unwrap_or_else(|e| panic!("{e}"));
    let extra = format!(
        "{}\n[ppp.pools]\ngold = [\"{GOLD}\"]\n",
        daemon_radius_config(&[fr.auth_address()])
    );
    let lab = Lab::start_in(
        topology,
        bin(),
        &LabOptions {
            xdp: false,
            mppe: "require",
            auth: Some(
                "backend = \"radius\"\nmethods = [\"mschapv2\"]\nfailure_delay_ms = 100".into(),
            ),
            extra,
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (lab, fr)
}

fn in_gold(addr: Ipv4Addr) -> bool {
    let first = u32::from(Ipv4Addr::new(198, 19, 10, 0));
    (first..first + 256).contains(&u32::from(addr))
}

/// `Framed-Pool = "gold"`: the address comes from `[ppp.pools] gold`, the
/// session passes ping and TCP, and the address goes back when it ends.
#[test]
fn framed_pool_assigns_from_the_named_pool() {
    let (lab, fr) = lab();
    let mut client = lab
        .client_as(POOL_USER, ATTR_PASSWORD, &["--mppe"])
        .expect("client");
    let up = up(&mut client, &lab, &fr);
    let addr: Ipv4Addr = up["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {up}"));
    assert!(
        in_gold(addr),
        "{addr} is not from the gold pool {GOLD}\n{}",
        logs(&lab, &fr)
    );
    assert!(
        fr.log().contains("Framed-Pool = \"gold\""),
        "FreeRADIUS sent Framed-Pool:\n{}",
        fr.log()
    );
    let sessions = lab.sessions().expect("sessions");
    assert_eq!(sessions.len(), 1);
    assert_eq!(up["mppe"], Value::Bool(true), "{up}");
    lab.ping(&addr.to_string(), LAN_HOST, 3)
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab, &fr)));
    lab.tcp_echo(&addr.to_string(), 1_000_000)
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab, &fr)));
    assert_eq!(lab.stats().expect("stats")["pool_in_use"], 1);

    drop(client);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while lab.stats().expect("stats")["pool_in_use"] != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the address was not released\n{}",
            logs(&lab, &fr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `Framed-Pool = "nosuch"`: FreeRADIUS accepts, but the daemon has no
/// such pool: the session is refused for want of an address (never served
/// from the default pool), the warning names the pool, nothing is left.
#[test]
fn framed_pool_naming_an_unknown_pool_is_refused() {
    let (lab, fr) = lab();
    let mut client = lab
        .client_as(NO_POOL_USER, ATTR_PASSWORD, &["--mppe"])
        .expect("client");
    let mut outcome = None;
    client
        .wait_for_line(Duration::from_secs(60), |line| {
            let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            match v["event"].as_str() {
                Some("up") | Some("failed") | Some("down") => {
                    outcome = Some(v);
                    true
                }
                _ => false,
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab, &fr)));
    let outcome = outcome.expect("set when the wait succeeds");
    assert_ne!(
        outcome["event"],
        "up",
        "an unknown Framed-Pool got a session: {outcome}\n{}",
        logs(&lab, &fr)
    );
    assert!(
        fr.logins_ok(NO_POOL_USER) >= 1,
        "FreeRADIUS accepted the user:\n{}",
        fr.log()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = lab.daemon_log();
        if log.contains("no address pool named \\\"nosuch\\\"")
            || log.contains("no address pool named \"nosuch\"")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no warning naming the pool:\n{}",
            logs(&lab, &fr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = lab.stats().expect("stats");
        if stats["ended_no_address"] >= 1 && lab.sessions().expect("sessions").is_empty() {
            assert_eq!(stats["pool_in_use"], 0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session did not end for want of an address: {stats:?}\n{}",
            logs(&lab, &fr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
