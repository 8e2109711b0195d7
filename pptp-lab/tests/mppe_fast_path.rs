//! Stateless MPPE on the kernel path end to end (issue 14): our client
//! with 128-bit stateless MPPE against the daemon in the lab, under both
//! forwarding modes; pings and a TCP stream pass both ways (our client
//! decrypts and checks every byte echoed back), and the XDP program's
//! counters show that the client's frames were decrypted, and the frames to
//! it encrypted, in the kernel. A stateful MPPE session (which the kernel
//! program does not handle) works the same through the userspace path.
//! Needs root; fails (never skips) without it.

use std::{collections::HashMap, time::Duration};

use pptp_daemon::server::ctl::{DataPath, SessionInfo};
use pptp_lab::lab::{LAN_HOST, Lab, LabOptions};
use pptp_netns as netns;
use serde_json::Value;

mod common;
use common::{bin, wait_up};

/// Pings and a 1 MB TCP echo through one session of our client (our
/// client decrypts and checks every byte echoed back), with the daemon's
/// counters around them and its one session after them.
struct Traffic {
    up: Value,
    before: HashMap<String, u64>,
    after: HashMap<String, u64>,
    session: SessionInfo,
}

impl Traffic {
    /// Our client with `args` up against `lab`, then the traffic.
    fn through(lab: &Lab, args: &[&str]) -> Traffic {
        let mut client = lab.client(args).unwrap();
        let up = wait_up(&mut client, lab, Duration::from_secs(30));
        let addr = up["address"].as_str().expect("address").to_owned();
        let before = lab.stats().unwrap();
        lab.ping(&addr, LAN_HOST, 5)
            .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
        lab.tcp_echo(&addr, 1_000_000)
            .unwrap_or_else(|e| panic!("{e}\n{:?}\n{}", lab.stats(), lab.daemon_log()));
        let after = lab.stats().unwrap();
        let mut sessions = lab.sessions().unwrap();
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        Traffic {
            up,
            before,
            after,
            session: sessions.remove(0),
        }
    }

    /// How much counter `k` grew during the traffic.
    fn delta(&self, k: &str) -> u64 {
        self.after[k] - self.before.get(k).copied().unwrap_or(0)
    }
}

fn decrypted_in_the_kernel(forwarding: &'static str) {
    netns::require_root().expect("prerequisite");
    let lab = Lab::start(
        bin(),
        &LabOptions {
            mppe: "require",
            forwarding,
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let t = Traffic::through(&lab, &["--mppe", "--mppe-bits", "128", "--tun", "mfp0"]);
    let delta = |k: &str| t.delta(k);
    let after = &t.after;
    assert_eq!(t.session.mppe.as_deref(), Some("128-bit stateless"));
    assert_eq!(t.session.path, DataPath::Xdp, "{:?}", t.session);
    // Hundreds of the client's MPPE frames were decrypted and forwarded
    // in the kernel; few went up to userspace.
    assert!(delta("xdp_mppe_decrypted") > 200, "{after:?}");
    assert!(
        delta("xdp_mppe_to_userspace") < delta("xdp_mppe_decrypted") / 10,
        "{after:?}"
    );
    // Most of them with RC4 states the daemon's preparer had ready
    // (`mppe.prepare_ahead`, on by default): the first of a burst may
    // come before the preparer's next pass, a busy moment may outrun it.
    assert!(
        delta("xdp_mppe_rx_prepared") > delta("xdp_mppe_decrypted") / 2,
        "{after:?}"
    );
    // And the echo towards the client was encrypted there, on the chain
    // the daemon shares (the few frames it sent itself: SYNs it clamped).
    assert!(delta("xdp_mppe_encrypted") > 200, "{after:?}");
    // Most with the RC4 states the preparer had ready for the send chain.
    assert!(
        delta("xdp_mppe_tx_prepared") > delta("xdp_mppe_encrypted") / 2,
        "{after:?}"
    );
    assert!(
        delta("xdp_mppe_tx_to_userspace") + delta("userspace_data_tx_packets")
            < delta("xdp_mppe_encrypted") / 10,
        "{after:?}"
    );
    assert_eq!(delta("userspace_mppe_send_lost"), 0, "{after:?}");
}

#[test]
fn stateless_mppe_decrypted_in_the_kernel_stack_forwarding() {
    decrypted_in_the_kernel("stack");
}

#[test]
fn stateless_mppe_decrypted_in_the_kernel_xdp_forwarding() {
    decrypted_in_the_kernel("xdp");
}

/// Stateful MPPE (RFC 3078: a key change every 256 packets, no FLUSHED
/// bit) is not for the kernel program: with the server allowing it
/// (`mppe.stateful = true`) and our client requiring it, the session runs
/// on the userspace path under `xdp` forwarding, and pings and a TCP stream
/// (about 750 frames each way: two key changes, which both ends must make
/// at the same packet) pass both ways without the program touching a
/// frame of it. Fails if the server refuses stateful, if the kernel takes
/// the session's frames, or if either side's stateful cipher is wrong.
#[test]
fn stateful_mppe_runs_on_the_userspace_path() {
    netns::require_root().expect("prerequisite");
    let mut lab = Lab::start(
        bin(),
        &LabOptions {
            mppe: "require",
            forwarding: "xdp",
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    lab.edit_config(|text| {
        assert!(
            text.contains("key_lengths = [128, 40]\n"),
            "the lab's [mppe] table changed: {text}"
        );
        text.replace(
            "key_lengths = [128, 40]\n",
            "key_lengths = [128, 40]\nstateful = true\n",
        )
    })
    .unwrap();
    lab.restart_daemon().unwrap_or_else(|e| panic!("{e}"));
    let t = Traffic::through(&lab, &["--mppe", "--mppe-stateful", "--tun", "mfs0"]);
    assert_eq!(t.up["mppe_stateless"], Value::Bool(false), "{}", t.up);
    let delta = |k: &str| t.delta(k);
    let after = &t.after;
    assert_eq!(t.session.mppe.as_deref(), Some("128-bit stateful"));
    assert_eq!(t.session.path, DataPath::Userspace, "{:?}", t.session);
    // Not one frame of it in the kernel program, all of it in userspace.
    for k in [
        "xdp_mppe_decrypted",
        "xdp_mppe_encrypted",
        "xdp_mppe_to_userspace",
        "xdp_mppe_tx_to_userspace",
    ] {
        assert_eq!(delta(k), 0, "{k}: {after:?}");
    }
    assert!(delta("userspace_data_rx_packets") > 500, "{after:?}");
    assert!(delta("userspace_data_tx_packets") > 500, "{after:?}");
    assert_eq!(delta("userspace_mppe_send_lost"), 0, "{after:?}");
}
