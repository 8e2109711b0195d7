//! RADIUS accounting (RFC 2866) against a real FreeRADIUS 3.2, read back
//! from its detail file: Accounting-On at daemon start, Start when a
//! session's network is up, Interim-Update, Stop with the right
//! Acct-Terminate-Cause and non-zero octets and packets from both data
//! paths (XDP and userspace), Accounting-Off at a clean stop. Needs root,
//! the real eBPF build and the packages freeradius and freeradius-utils
//! (`cargo xtask setup`); fails (never skips) without them.

use std::time::Duration;

use pptp_daemon::server::ctl::DataPath;
use pptp_lab::{
    lab::{LAN_HOST, Lab, LabOptions, Process, Topology},
    radius_lab::{FreeRadius, USER, daemon_radius_config},
};
use pptp_netns as netns;

mod common;
use common::{bin, logs, up, wait_record};

/// A lab whose daemon authenticates with RADIUS (MS-CHAPv2, no MPPE so
/// that a session can use the XDP path) and sends accounting to the same
/// FreeRADIUS, Interim-Update every `interim` seconds (0: none).
fn accounting_lab(xdp: bool, interim: u64) -> (Lab, FreeRadius) {
    accounting_lab_with(xdp, interim, "")
}

/// The same, with `more` appended to the configuration (whole tables).
fn accounting_lab_with(xdp: bool, interim: u64, more: &str) -> (Lab, FreeRadius) {
    netns::require_root().expect("prerequisite");
    let topology = Topology::new().expect("topology");
    let fr = FreeRadius::start(&topology.server).unwrap_or_else(|e| panic!("{e}"));
    let extra = daemon_radius_config(&[fr.auth_address()]).replacen(
        "dead_time_secs = 30\n",
        &format!(
            "dead_time_secs = 30\naccounting = true\nacct_interim_interval_secs = {interim}\n"
        ),
        1,
    ) + more;
    let lab = Lab::start_in(
        topology,
        bin(),
        &LabOptions {
            xdp,
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

fn signal(process: &Process, sig: i32) {
    // SAFETY: kill(2) on a child we own.
    unsafe { libc::kill(process.child.id() as i32, sig) };
}

/// Accounting-On at start (with our NAS-Identifier), then a session with
/// traffic ended by the client: Start and Stop for the same
/// Acct-Session-Id with the session's attributes, the Stop with
/// User-Request and the traffic counted both ways; Accounting-Off when
/// the daemon stops.
fn session_is_accounted(xdp: bool, interim: u64) {
    let (mut lab, fr) = accounting_lab(xdp, interim);
    let on = wait_record(&lab, &fr, Duration::from_secs(10), "Accounting-On", |r| {
        r.status() == Some("Accounting-On")
    });
    assert_eq!(on.get("NAS-Identifier"), Some("pptp-xdp"), "{on:?}");
    assert!(on.get("Acct-Session-Id").is_some(), "{on:?}");

    let mut client = lab.client(&[]).expect("client");
    let up = up(&mut client, &lab, &fr);
    let addr = up["address"].as_str().expect("address").to_owned();
    let sessions = lab.sessions().expect("sessions");
    assert_eq!(sessions.len(), 1);
    let want_path = if xdp {
        DataPath::Xdp
    } else {
        DataPath::Userspace
    };
    assert_eq!(sessions[0].path, want_path, "{sessions:?}");
    let call_id = sessions[0].call_id;

    let start = wait_record(&lab, &fr, Duration::from_secs(10), "Start", |r| {
        r.status() == Some("Start")
    });
    let id = start
        .get("Acct-Session-Id")
        .expect("Acct-Session-Id")
        .to_owned();
    assert_eq!(start.get("User-Name"), Some(USER), "{start:?}");
    assert_eq!(start.get("Framed-IP-Address"), Some(addr.as_str()));
    assert_eq!(start.get("NAS-Identifier"), Some("pptp-xdp"));
    assert_eq!(start.number("NAS-Port"), Some(u64::from(call_id)));
    assert_eq!(start.get("NAS-Port-Type"), Some("Virtual"));
    assert_eq!(start.get("Service-Type"), Some("Framed-User"));
    assert_eq!(start.get("Framed-Protocol"), Some("PPP"));
    assert_eq!(start.get("Acct-Authentic"), Some("RADIUS"));
    assert!(
        start
            .get("Calling-Station-Id")
            .is_some_and(|c| c.starts_with("198.18.")),
        "{start:?}"
    );

    lab.ping(&addr, LAN_HOST, 5)
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab, &fr)));
    lab.tcp_echo(&addr, 300_000)
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab, &fr)));

    if interim > 0 {
        let interim = wait_record(
            &lab,
            &fr,
            Duration::from_secs(4 * interim + 5),
            "Interim-Update with traffic",
            |r| {
                r.status() == Some("Interim-Update")
                    && r.get("Acct-Session-Id") == Some(&id)
                    && r.number("Acct-Input-Octets").unwrap_or(0) > 300_000
            },
        );
        assert_eq!(interim.get("User-Name"), Some(USER));
        assert!(interim.number("Acct-Output-Packets").unwrap_or(0) > 0);
    }

    // The client hangs up (Call-Clear-Request, Stop-Control-Connection).
    signal(&client, libc::SIGTERM);
    let stop = wait_record(&lab, &fr, Duration::from_secs(20), "Stop", |r| {
        r.status() == Some("Stop") && r.get("Acct-Session-Id") == Some(&id)
    });
    assert_eq!(
        stop.get("Acct-Terminate-Cause"),
        Some("User-Request"),
        "{stop:?}"
    );
    assert_eq!(stop.get("User-Name"), Some(USER));
    assert_eq!(stop.get("Framed-IP-Address"), Some(addr.as_str()));
    assert!(stop.number("Acct-Session-Time").is_some(), "{stop:?}");
    // A 300 kB echo went both ways through the tunnel.
    for (name, least) in [
        ("Acct-Input-Octets", 300_000),
        ("Acct-Output-Octets", 300_000),
        ("Acct-Input-Packets", 5),
        ("Acct-Output-Packets", 5),
    ] {
        let v = stop.number(name).unwrap_or(0);
        assert!(v >= least, "{name} = {v}, want >= {least}: {stop:?}");
    }
    assert_eq!(stop.number("Acct-Input-Gigawords"), Some(0));
    assert_eq!(stop.number("Acct-Output-Gigawords"), Some(0));
    let stats = lab.stats().expect("stats");
    assert_eq!(stats.get("radius_acct_dropped_queue_full"), Some(&0));
    assert!(stats.get("radius_acct_answered").is_some_and(|&n| n >= 3));

    lab.stop_daemon()
        .unwrap_or_else(|e| panic!("{e}\n{}", fr.log()));
    let off = wait_record(&lab, &fr, Duration::from_secs(5), "Accounting-Off", |r| {
        r.status() == Some("Accounting-Off")
    });
    assert_eq!(off.get("Acct-Session-Id"), on.get("Acct-Session-Id"));
}

#[test]
fn session_on_the_xdp_path_is_accounted_with_xdp_counters() {
    session_is_accounted(true, 0);
}

#[test]
fn session_on_the_userspace_path_is_accounted_with_interim_updates() {
    session_is_accounted(false, 2);
}

/// A client that stops answering is torn down by the keepalive: its Stop
/// says Lost-Carrier.
#[test]
fn keepalive_loss_is_accounted_as_lost_carrier() {
    let (lab, fr) = accounting_lab(true, 0);
    let mut client = lab.client(&[]).expect("client");
    let _ = up(&mut client, &lab, &fr);
    let start = wait_record(&lab, &fr, Duration::from_secs(10), "Start", |r| {
        r.status() == Some("Start")
    });
    let id = start.get("Acct-Session-Id").expect("id").to_owned();
    signal(&client, libc::SIGSTOP);
    let stop = wait_record(&lab, &fr, Duration::from_secs(45), "Stop", |r| {
        r.status() == Some("Stop") && r.get("Acct-Session-Id") == Some(&id)
    });
    assert_eq!(
        stop.get("Acct-Terminate-Cause"),
        Some("Lost-Carrier"),
        "{stop:?}"
    );
    signal(&client, libc::SIGCONT);
}

/// An operator's Disconnect-Request (RFC 5176) ends the session; its Stop
/// says Admin-Reset.
#[test]
fn admin_disconnect_is_accounted_as_admin_reset() {
    const DAE_SECRET: &str = "dae-secret";
    let (lab, fr) = accounting_lab_with(
        true,
        0,
        &format!(
            "\n[radius.dae]\nlisten = \"127.0.0.1:3799\"\nsecret = \"{DAE_SECRET}\"\nclients = [\"127.0.0.1\"]\n"
        ),
    );
    let mut client = lab.client(&["--no-stop"]).expect("client");
    let _ = up(&mut client, &lab, &fr);
    let start = wait_record(&lab, &fr, Duration::from_secs(10), "Start", |r| {
        r.status() == Some("Start")
    });
    let id = start.get("Acct-Session-Id").expect("id").to_owned();
    let reply = pptp_lab::radius_lab::radclient_to(
        &lab.topology.server,
        "127.0.0.1:3799".parse().expect("address"),
        "disconnect",
        DAE_SECRET,
        &format!("Acct-Session-Id = \"{id}\""),
        3,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab, &fr)));
    assert_eq!(
        reply.code,
        "Disconnect-ACK",
        "{reply:?}\n{}",
        logs(&lab, &fr)
    );
    let stop = wait_record(&lab, &fr, Duration::from_secs(20), "Stop", |r| {
        r.status() == Some("Stop") && r.get("Acct-Session-Id") == Some(&id)
    });
    assert_eq!(
        stop.get("Acct-Terminate-Cause"),
        Some("Admin-Reset"),
        "{stop:?}"
    );
}

/// Records are not lost while the accounting server is briefly down
/// (RFC 2866 section 2; Acct-Delay-Time, section 5.2): FreeRADIUS answers
/// the daemon's Accounting-On, then is killed; a session starts and ends
/// while nothing listens on the accounting port, so its Start and Stop
/// wait in the daemon's queue; FreeRADIUS is started again on the same
/// ports and both records arrive, with Acct-Delay-Time > 0 (each was sent
/// again later than it was made), and nothing was dropped.
///
/// The wait fits the queue's bounds (`auth/radius/accounting.rs`): the
/// transmissions of a record are `timeout_ms` (1 s here) apart, doubling
/// each time up to `MAX_BACKOFF` (30 s), and a record is never given up;
/// so a record reaches the restarted server at most 30 s after it is up.
/// Authentication uses the secrets file, so that logins work while the
/// RADIUS server is down.
#[test]
fn records_survive_an_accounting_server_that_is_briefly_down() {
    use pptp_daemon::auth::radius::accounting::MAX_BACKOFF;

    netns::require_root().expect("prerequisite");
    let topology = Topology::new().expect("topology");
    let fr = FreeRadius::start(&topology.server).unwrap_or_else(|e| panic!("{e}"));
    let auth_port = fr.auth_address().port();
    let extra = daemon_radius_config(&[fr.auth_address()]).replacen(
        "dead_time_secs = 30\n",
        "dead_time_secs = 30\naccounting = true\nacct_interim_interval_secs = 0\n",
        1,
    );
    let lab = Lab::start_in(
        topology,
        bin(),
        &LabOptions {
            xdp: false,
            mppe: "allow",
            extra,
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    wait_record(&lab, &fr, Duration::from_secs(10), "Accounting-On", |r| {
        r.status() == Some("Accounting-On")
    });
    let stat = |name: &str| -> u64 {
        *lab.stats()
            .expect("stats")
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in the stats"))
    };
    // The answered Accounting-On has left the queue.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while stat("radius_acct_queued") != 0 {
        assert!(std::time::Instant::now() < deadline, "{}", logs(&lab, &fr));
        std::thread::sleep(Duration::from_millis(50));
    }

    // The accounting server goes away.
    drop(fr);

    let mut client = lab.client(&[]).expect("client");
    let mut up_line = None;
    client
        .wait_for_line(Duration::from_secs(30), |line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            match v["event"].as_str() {
                Some("up") => {
                    up_line = Some(v);
                    true
                }
                Some("failed") | Some("down") => panic!("client: {line}\n{}", lab.daemon_log()),
                _ => false,
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    let addr = up_line.expect("up")["address"]
        .as_str()
        .expect("address")
        .to_owned();
    lab.ping(&addr, LAN_HOST, 3)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    signal(&client, libc::SIGTERM);
    // Start and Stop both wait in the queue, unanswered.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(lab.sessions().expect("sessions").is_empty() && stat("radius_acct_queued") == 2) {
        assert!(
            std::time::Instant::now() < deadline,
            "queued {}, sessions {:?}\n{}",
            stat("radius_acct_queued"),
            lab.sessions(),
            lab.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Back on the same ports, with an empty detail file.
    let fr =
        FreeRadius::start_on(&lab.topology.server, auth_port).unwrap_or_else(|e| panic!("{e}"));
    let within = MAX_BACKOFF + Duration::from_secs(10);
    let start = wait_record(&lab, &fr, within, "the delayed Start", |r| {
        r.status() == Some("Start")
    });
    let id = start
        .get("Acct-Session-Id")
        .expect("Acct-Session-Id")
        .to_owned();
    let stop = wait_record(&lab, &fr, within, "the delayed Stop", |r| {
        r.status() == Some("Stop") && r.get("Acct-Session-Id") == Some(&id)
    });
    assert_eq!(start.get("User-Name"), Some(USER), "{start:?}");
    assert_eq!(start.get("Framed-IP-Address"), Some(addr.as_str()));
    assert_eq!(stop.get("Acct-Terminate-Cause"), Some("User-Request"));
    for record in [&start, &stop] {
        assert!(
            record.number("Acct-Delay-Time").unwrap_or(0) > 0,
            "no Acct-Delay-Time > 0: {record:?}"
        );
    }
    // Both answered: the queue is empty and nothing was dropped.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stat("radius_acct_queued") != 0 {
        assert!(std::time::Instant::now() < deadline, "{}", logs(&lab, &fr));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stat("radius_acct_dropped_queue_full"), 0);
    assert_eq!(stat("radius_acct_dropped_no_task"), 0);
    assert!(stat("radius_acct_answered") >= 3, "On, Start and Stop");
}
