//! RADIUS reply attributes honoured, against a real FreeRADIUS 3.2: a
//! user's Session-Timeout ends the session (RFC 2865 section 5.27);
//! Acct-Interim-Interval sets the session's Interim-Update interval (RFC
//! 2869 section 5.16) and every Class is echoed in each accounting record
//! (RFC 2865 section 5.25); Framed-MTU caps the session MTU (RFC 2865
//! section 5.12); Idle-Timeout ends a session without traffic (RFC 2865
//! section 5.28), counted on the XDP path. Needs root, the real eBPF build and the packages
//! freeradius and freeradius-utils (`cargo xtask setup`); fails (never
//! skips) without them.

use std::time::{Duration, Instant};

use pptp_lab::{
    lab::{LAN_HOST, Lab, LabOptions},
    radius_lab::{
        ATTR_PASSWORD, DetailRecord, FreeRadius, GOLD_USER, IDLE_USER, SHORT_USER,
        daemon_radius_config,
    },
};
use pptp_netns as netns;

mod common;
use common::{bin, logs, up, wait_record};

/// A lab whose daemon authenticates with RADIUS (MS-CHAPv2) and sends
/// accounting to the same FreeRADIUS, with no configured Interim-Update.
fn lab() -> (Lab, FreeRadius) {
    netns::require_root().expect("prerequisite");
    let topology = netns_topology();
    let fr = FreeRadius::start(&topology.server).unwrap_or_else(|e| panic!("{e}"));
    let extra = daemon_radius_config(&[fr.auth_address()]).replacen(
        "dead_time_secs = 30\n",
        "dead_time_secs = 30\naccounting = true\nacct_interim_interval_secs = 0\n",
        1,
    );
    let lab = Lab::start_in(
        topology,
        bin(),
        &LabOptions {
            xdp: true,
            mppe: "allow",
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

fn netns_topology() -> pptp_lab::lab::Topology {
    pptp_lab::lab::Topology::new().expect("topology")
}

/// The text without ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `Session-Timeout = 3`: the daemon ends the session about 3 s after it
/// is admitted, counts it as a session timeout, and the Stop says
/// Session-Timeout.
#[test]
fn session_timeout_ends_the_session() {
    let (lab, fr) = lab();
    let mut client = lab
        .client_as(SHORT_USER, ATTR_PASSWORD, &["--no-stop"])
        .expect("client");
    let _ = up(&mut client, &lab, &fr);
    let t0 = Instant::now();
    let start = wait_record(&lab, &fr, Duration::from_secs(10), "Start", |r| {
        r.status() == Some("Start")
    });
    let id = start.get("Acct-Session-Id").expect("id").to_owned();
    let stop = wait_record(&lab, &fr, Duration::from_secs(15), "Stop", |r| {
        r.status() == Some("Stop") && r.get("Acct-Session-Id") == Some(&id)
    });
    assert!(
        t0.elapsed() < Duration::from_secs(12),
        "ended after {:?}",
        t0.elapsed()
    );
    assert_eq!(
        stop.get("Acct-Terminate-Cause"),
        Some("Session-Timeout"),
        "{stop:?}"
    );
    assert!(
        stop.number("Acct-Session-Time").is_some_and(|t| t <= 10),
        "{stop:?}"
    );
    let stats = lab.stats().expect("stats");
    assert_eq!(
        stats.get("ended_session_timeout"),
        Some(&1),
        "{stats:?}\n{}",
        logs(&lab, &fr)
    );
    assert!(lab.sessions().expect("sessions").is_empty());
}

/// `Class = "gold"`, `Acct-Interim-Interval = 2` (the configuration has
/// none): Interim-Updates come every 2 s, and Start, every Interim-Update
/// and Stop carry the Class unchanged. `Framed-MTU = 1300`: the session's
/// MTU is at most 1300.
#[test]
fn class_and_interim_interval_are_used_in_accounting() {
    let (lab, fr) = lab();
    let mut client = lab
        .client_as(GOLD_USER, ATTR_PASSWORD, &[])
        .expect("client");
    let _ = up(&mut client, &lab, &fr);
    let start = wait_record(&lab, &fr, Duration::from_secs(10), "Start", |r| {
        r.status() == Some("Start")
    });
    let id = start.get("Acct-Session-Id").expect("id").to_owned();
    // The daemon logs the session's MTU when the network is up.
    let log = strip_ansi(&lab.daemon_log());
    let up_line = log
        .lines()
        .find(|l| l.contains("network up"))
        .unwrap_or_else(|| panic!("{}", logs(&lab, &fr)));
    assert!(up_line.contains("mtu=1300"), "{up_line}");
    // Two Interim-Updates within about 4 s (the default would be none).
    let interim_count = |records: &[DetailRecord]| {
        records
            .iter()
            .filter(|r| {
                r.status() == Some("Interim-Update") && r.get("Acct-Session-Id") == Some(&id)
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while interim_count(&fr.accounting_records()) < 2 {
        assert!(
            Instant::now() < deadline,
            "records: {:#?}\n{}",
            fr.accounting_records(),
            logs(&lab, &fr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: kill(2) on a child we own.
    unsafe { libc::kill(client.child.id() as i32, libc::SIGTERM) };
    wait_record(&lab, &fr, Duration::from_secs(20), "Stop", |r| {
        r.status() == Some("Stop") && r.get("Acct-Session-Id") == Some(&id)
    });
    let records: Vec<_> = fr
        .accounting_records()
        .into_iter()
        .filter(|r| r.get("Acct-Session-Id") == Some(&id))
        .collect();
    assert!(records.len() >= 4, "{records:#?}");
    for r in &records {
        // Class is of type octets: the detail file shows it in hex.
        assert!(
            matches!(r.get("Class"), Some("gold" | "0x676f6c64")),
            "{r:?}"
        );
    }
}

/// `Idle-Timeout = 3`: 6 s of pings keep the session (the XDP counters
/// move), then without traffic it ends about 3 s later, as an idle
/// timeout, and the Stop says Idle-Timeout.
#[test]
fn idle_timeout_ends_a_session_without_traffic() {
    let (lab, fr) = lab();
    let mut client = lab
        .client_as(IDLE_USER, ATTR_PASSWORD, &["--no-stop"])
        .expect("client");
    let up = up(&mut client, &lab, &fr);
    let addr = up["address"].as_str().expect("address").to_owned();
    let start = wait_record(&lab, &fr, Duration::from_secs(10), "Start", |r| {
        r.status() == Some("Start")
    });
    let id = start.get("Acct-Session-Id").expect("id").to_owned();
    // 30 pings 0.2 s apart: longer than the Idle-Timeout.
    lab.ping(&addr, LAN_HOST, 30)
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab, &fr)));
    assert_eq!(
        lab.sessions().expect("sessions").len(),
        1,
        "ended despite traffic\n{}",
        logs(&lab, &fr)
    );
    let idle_from = Instant::now();
    let stop = wait_record(&lab, &fr, Duration::from_secs(15), "Stop", |r| {
        r.status() == Some("Stop") && r.get("Acct-Session-Id") == Some(&id)
    });
    assert!(
        idle_from.elapsed() < Duration::from_secs(10),
        "{:?}",
        idle_from.elapsed()
    );
    assert_eq!(
        stop.get("Acct-Terminate-Cause"),
        Some("Idle-Timeout"),
        "{stop:?}"
    );
    assert!(
        stop.number("Acct-Input-Packets").unwrap_or(0) >= 25,
        "{stop:?}"
    );
    let stats = lab.stats().expect("stats");
    assert_eq!(stats.get("ended_idle_timeout"), Some(&1), "{stats:?}");
}
