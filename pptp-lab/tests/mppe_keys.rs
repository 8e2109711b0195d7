//! MPPE key lengths end to end (issue 14): the daemon configured with
//! `key_lengths = [128, 56, 40]` offers all three in its CCP
//! Configure-Request, and clients accepting only one of them each get a
//! working session with that key length. Needs root; fails (never skips)
//! without it.

use std::time::{Duration, Instant};

use pptp_lab::lab::{LAN_HOST, Lab, LabOptions};
use pptp_netns as netns;
use serde_json::Value;

mod common;
use common::{bin, wait_up};

/// The lab with `mppe.policy = "require"` and every key length allowed.
fn lab_with_every_key_length() -> Lab {
    netns::require_root().expect("prerequisite");
    let mut lab = Lab::start(
        bin(),
        &LabOptions {
            mppe: "require",
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    lab.edit_config(|text| {
        assert!(
            text.contains("key_lengths = [128, 40]"),
            "the lab's [mppe] table changed: {text}"
        );
        text.replace("key_lengths = [128, 40]", "key_lengths = [128, 56, 40]")
    })
    .unwrap();
    lab.restart_daemon().unwrap_or_else(|e| panic!("{e}"));
    lab
}

/// Waits until the daemon holds no session any more.
fn wait_no_sessions(lab: &Lab) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab.sessions().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "sessions left: {:?}",
            lab.sessions()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn clients_accepting_one_key_length_each_get_it() {
    let lab = lab_with_every_key_length();
    for bits in ["40", "56", "128"] {
        let tun = format!("mk{bits}");
        let mut client = lab
            .client(&["--mppe", "--mppe-bits", bits, "--tun", &tun])
            .unwrap();
        let up = wait_up(&mut client, &lab, Duration::from_secs(30));
        assert_eq!(up["mppe"], Value::Bool(true), "{up}");
        assert_eq!(up["mppe_bits"].to_string(), bits, "{up}");
        let addr = up["address"].as_str().expect("address").to_owned();
        lab.ping(&addr, LAN_HOST, 3)
            .unwrap_or_else(|e| panic!("{bits}-bit: {e}\n{}", lab.daemon_log()));
        let sessions = lab.sessions().unwrap();
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        let want = format!("{bits}-bit stateless");
        assert_eq!(sessions[0].mppe.as_deref(), Some(want.as_str()));
        // The pings went through the MPPE session both ways.
        assert!(
            sessions[0].rx_packets >= 3 && sessions[0].tx_packets >= 3,
            "{:?}",
            sessions[0]
        );
        client.terminate(Duration::from_secs(10));
        wait_no_sessions(&lab);
    }
    // A client accepting all three gets the strongest.
    let mut client = lab
        .client(&["--mppe", "--mppe-bits", "40,56,128", "--tun", "mkall"])
        .unwrap();
    let up = wait_up(&mut client, &lab, Duration::from_secs(30));
    assert_eq!(up["mppe_bits"].to_string(), "128", "{up}");
}
