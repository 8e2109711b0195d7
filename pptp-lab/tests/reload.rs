//! Reloading the configuration (SIGHUP) with sessions up, across network
//! namespaces: the real daemon, our client. Live sessions keep passing
//! traffic; new sessions get the new configuration (secrets, limits,
//! DNS); an invalid file changes nothing and the log says why; a key that
//! needs a restart is reported and keeps its old value. Needs root; fails
//! (never skips) without it.

use std::{path::PathBuf, time::Duration};

use pptp_lab::{
    lab::{LAN_HOST, Lab, LabOptions, PASSWORD, Process, SERVER_WAN, Topology, USER},
    radius_lab::{FreeRadius, daemon_radius_config, unused_port},
};
use pptp_netns as netns;

mod common;
use common::bin;

use serde_json::Value;

fn lab(xdp: bool) -> Lab {
    netns::require_root().expect("prerequisite");
    Lab::start(
        bin(),
        &LabOptions {
            xdp,
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A client as `user`/`password` on its own TUN device `tun`. Only the
/// first client (`route`) routes the LAN through its tunnel, so the ones
/// that follow do not take the first session's traffic away.
fn client(lab: &Lab, user: &str, password: &str, tun: &str, route: bool) -> (Process, PathBuf) {
    let mut args = vec![
        "client",
        "--server",
        SERVER_WAN,
        "--user",
        user,
        "--password",
        password,
        "--tun",
        tun,
    ];
    if route {
        args.extend(["--route", "198.18.1.0/24"]);
    }
    let log = lab
        .dir
        .join(format!("client-{}.log", netns::unique_name("c")));
    let process = Process::spawn(&lab.topology.client, tun, bin(), &args, Some(&log))
        .unwrap_or_else(|e| panic!("client: {e}"));
    (process, log)
}

/// The client's first outcome: `Ok(up line)` or `Err(failed/down line)`.
fn outcome(client: &mut Process, lab: &Lab) -> Result<Value, Value> {
    client
        .session_outcome(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()))
}

fn up(client: &mut Process, lab: &Lab) -> Value {
    outcome(client, lab)
        .unwrap_or_else(|line| panic!("client: {line}\ndaemon log:\n{}", lab.daemon_log()))
}

fn refused(client: &mut Process, lab: &Lab) -> Value {
    match outcome(client, lab) {
        Err(line) => line,
        Ok(line) => panic!(
            "the session should have been refused: {line}\ndaemon log:\n{}",
            lab.daemon_log()
        ),
    }
}

fn address(up: &Value) -> String {
    up["address"].as_str().expect("address").to_owned()
}

fn reload(lab: &Lab) -> String {
    lab.reload().unwrap_or_else(|e| panic!("{e}"))
}

/// The session the client reported `up` (its call ID is our peer call ID)
/// is still listed, with its address.
fn still_up(lab: &Lab, up: &Value) {
    let call_id = up["call_id"].as_u64().expect("call_id");
    let sessions = lab.sessions().expect("sessions");
    assert!(
        sessions.iter().any(|s| u64::from(s.peer_call_id) == call_id
            && s.client_addr.map(|a| a.to_string()) == Some(address(up))),
        "session {call_id} is gone: {sessions:?}"
    );
}

fn traffic(lab: &Lab, addr: &str) {
    lab.ping(addr, LAN_HOST, 3)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    lab.tcp_echo(addr, 500_000)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
}

fn counter(lab: &Lab, name: &str) -> u64 {
    lab.stats().expect("stats").get(name).copied().unwrap_or(0)
}

/// A live session on the XDP path keeps passing traffic across reloads
/// that change timers and DNS; a new session gets the new DNS server.
#[test]
fn a_live_session_keeps_passing_traffic_across_a_reload() {
    let lab = lab(true);
    let (mut first, _) = client(&lab, USER, PASSWORD, "pptpc0", true);
    let first_up = up(&mut first, &lab);
    let addr = address(&first_up);
    assert_eq!(first_up["dns"], serde_json::json!([LAN_HOST]));
    traffic(&lab, &addr);

    lab.edit_config(|t| {
        t.replace(
            &format!("dns = [\"{LAN_HOST}\"]"),
            "dns = [\"198.18.1.53\"]",
        )
        .replace("\necho_interval_secs = 5", "\necho_interval_secs = 7")
    })
    .unwrap();
    let line = reload(&lab);
    assert!(
        line.contains("configuration reloaded from")
            && line.contains("control.echo_interval_secs")
            && line.contains("ppp.dns"),
        "{line}"
    );
    // A reload while traffic flows, and another one of the same file.
    traffic(&lab, &addr);
    let line = reload(&lab);
    assert!(line.contains("no setting changed"), "{line}");
    traffic(&lab, &addr);
    still_up(&lab, &first_up);

    let (mut second, _) = client(&lab, USER, PASSWORD, "pptpc1", false);
    let second_up = up(&mut second, &lab);
    assert_eq!(second_up["dns"], serde_json::json!(["198.18.1.53"]));
    traffic(&lab, &addr);
    still_up(&lab, &first_up);
}

/// New secrets: a new user logs in, a removed user's new login fails, the
/// removed user's live session stays and passes traffic.
#[test]
fn new_secrets_apply_to_new_logins_and_live_sessions_stay() {
    let lab = lab(false);
    let (mut alice, _) = client(&lab, USER, PASSWORD, "pptpc0", true);
    let alice_up = up(&mut alice, &lab);
    let addr = address(&alice_up);
    traffic(&lab, &addr);

    // Before the reload carol is unknown.
    let (mut carol, _) = client(&lab, "carol", "carol's secret", "pptpc1", false);
    refused(&mut carol, &lab);
    drop(carol);

    lab.write_secrets("carol\t*\t\"carol's secret\"\t*\n")
        .unwrap();
    let line = reload(&lab);
    assert!(
        line.contains("configuration reloaded from") && line.contains("re-read: 1 entries"),
        "{line}"
    );

    let (mut carol, _) = client(&lab, "carol", "carol's secret", "pptpc1", false);
    up(&mut carol, &lab);
    let (mut again, log) = client(&lab, USER, PASSWORD, "pptpc2", false);
    refused(&mut again, &lab);
    let client_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        client_log.contains("refused with error 691"),
        "alice's new login fails authentication: {client_log}"
    );
    still_up(&lab, &alice_up);
    traffic(&lab, &addr);
}

/// Lowered limits refuse new sessions and end none.
#[test]
fn lowered_limits_refuse_new_sessions_and_keep_live_ones() {
    let lab = lab(false);
    let (mut first, _) = client(&lab, USER, PASSWORD, "pptpc0", true);
    let first_up = up(&mut first, &lab);
    let addr = address(&first_up);
    let (mut second, _) = client(&lab, USER, PASSWORD, "pptpc1", false);
    let second_up = up(&mut second, &lab);

    // One session per user: alice has two and keeps them both.
    lab.edit_config(|t| t.replace("sessions_per_user = 0", "sessions_per_user = 1"))
        .unwrap();
    let line = reload(&lab);
    assert!(line.contains("limits.sessions_per_user"), "{line}");
    let before = counter(&lab, "refused_user_sessions");
    let (mut third, _) = client(&lab, USER, PASSWORD, "pptpc2", false);
    refused(&mut third, &lab);
    drop(third);
    assert_eq!(counter(&lab, "refused_user_sessions"), before + 1);
    still_up(&lab, &first_up);
    still_up(&lab, &second_up);
    traffic(&lab, &addr);

    // Two sessions on the server, both live: a third is refused.
    lab.edit_config(|t| {
        t.replace("sessions_per_user = 1", "sessions_per_user = 0")
            .replace(
                "hostname = \"pptp-lab\"",
                "hostname = \"pptp-lab\"\nmax_sessions = 2",
            )
    })
    .unwrap();
    let line = reload(&lab);
    assert!(
        line.contains("limits.sessions_per_user") && line.contains("server.max_sessions"),
        "{line}"
    );
    let (mut third, _) = client(&lab, USER, PASSWORD, "pptpc2", false);
    refused(&mut third, &lab);
    drop(third);
    assert!(
        counter(&lab, "refused_server_full") >= 1,
        "{:?}",
        lab.stats()
    );
    still_up(&lab, &first_up);
    still_up(&lab, &second_up);
    traffic(&lab, &addr);

    // One ends: room for one again.
    drop(second);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while lab.sessions().expect("sessions").len() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the session did not end"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mut third, _) = client(&lab, USER, PASSWORD, "pptpc2", false);
    up(&mut third, &lab);
}

/// An invalid file changes nothing (not even its valid part) and the log
/// says where and why; new sessions work as before; fixed, it applies.
#[test]
fn an_invalid_configuration_keeps_the_old_one_and_says_why() {
    let lab = lab(false);
    let (mut first, _) = client(&lab, USER, PASSWORD, "pptpc0", true);
    let first_up = up(&mut first, &lab);
    let addr = address(&first_up);

    // A valid change (one session per user) next to an invalid MRU.
    lab.edit_config(|t| {
        t.replace("sessions_per_user = 0", "sessions_per_user = 1")
            .replace("[ppp]\n", "[ppp]\nmru = 10\n")
    })
    .unwrap();
    let line = reload(&lab);
    let file = lab.config_file().display().to_string();
    assert!(
        line.contains("invalid configuration, the old one stays in effect")
            && line.contains(&format!("{file}:"))
            && line.contains("ppp.mru"),
        "the log names the file, the line and the field: {line}"
    );
    // The old limits still apply: alice gets a second session.
    let (mut second, _) = client(&lab, USER, PASSWORD, "pptpc1", false);
    up(&mut second, &lab);
    still_up(&lab, &first_up);
    traffic(&lab, &addr);

    // A syntax error: the same.
    lab.edit_config(|t| t.replace("mru = 10\n", "mru = = 1400\n"))
        .unwrap();
    let line = reload(&lab);
    assert!(
        line.contains("invalid configuration, the old one stays in effect")
            && line.contains(&format!("{file}:")),
        "{line}"
    );

    // Fixed: the valid change applies.
    lab.edit_config(|t| t.replace("mru = = 1400\n", ""))
        .unwrap();
    let line = reload(&lab);
    assert!(
        line.contains("configuration reloaded from") && line.contains("limits.sessions_per_user"),
        "{line}"
    );
    let (mut third, _) = client(&lab, USER, PASSWORD, "pptpc2", false);
    refused(&mut third, &lab);
    still_up(&lab, &first_up);
    traffic(&lab, &addr);
}

/// Keys that need a restart are reported and keep their old value; the
/// rest of the same file applies.
#[test]
fn a_restart_only_key_is_reported_and_keeps_its_old_value() {
    let lab = lab(false);
    let (mut first, _) = client(&lab, USER, PASSWORD, "pptpc0", true);
    let first_up = up(&mut first, &lab);
    let addr = address(&first_up);

    lab.edit_config(|t| {
        t.replace(
            &format!("listen = \"{SERVER_WAN}:1723\""),
            &format!("listen = \"{SERVER_WAN}:1724\""),
        )
        .replace("tun_name = \"pptp0\"", "tun_name = \"pptp9\"")
        .replace("sessions_per_user = 0", "sessions_per_user = 1")
    })
    .unwrap();
    let line = reload(&lab);
    assert!(
        line.contains("applies to new sessions: limits.sessions_per_user")
            && line
                .contains("needs a restart, kept the old value: dataplane.tun_name, server.listen"),
        "{line}"
    );
    let log = lab.daemon_log();
    assert!(
        log.contains("server.listen: needs a restart, kept the old value"),
        "{log}"
    );
    // Still on port 1723 (the client's), with the new per-user limit.
    let (mut second, _) = client(&lab, USER, PASSWORD, "pptpc1", false);
    refused(&mut second, &lab);
    lab.edit_config(|t| t.replace("sessions_per_user = 1", "sessions_per_user = 0"))
        .unwrap();
    reload(&lab);
    let (mut third, _) = client(&lab, USER, PASSWORD, "pptpc2", false);
    up(&mut third, &lab);
    still_up(&lab, &first_up);
    traffic(&lab, &addr);
}

/// A new RADIUS back end on reload: its servers move to a dead address, a
/// new login fails while the live session stays; moved back, logins work
/// again. The accounting task keeps its servers until a restart, and the
/// report says so.
#[test]
fn radius_servers_change_on_reload() {
    netns::require_root().expect("prerequisite");
    let topology = Topology::new().expect("topology");
    let fr = FreeRadius::start(&topology.server).unwrap_or_else(|e| panic!("{e}"));
    let dead = format!(
        "127.0.0.1:{}",
        unused_port(&topology.server).unwrap_or_else(|e| panic!("{e}"))
    );
    let live = fr.auth_address().to_string();
    let lab = Lab::start_in(
        topology,
        bin(),
        &LabOptions {
            xdp: false,
            auth: Some(
                "backend = \"radius\"\nmethods = [\"mschapv2\"]\nfailure_delay_ms = 100".into(),
            ),
            extra: daemon_radius_config(&[fr.auth_address()])
                .replace("timeout_ms = 1000", "timeout_ms = 300")
                .replace("retries = 2", "retries = 1"),
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (mut first, _) = client(&lab, USER, PASSWORD, "pptpc0", true);
    let first_up = up(&mut first, &lab);
    let addr = address(&first_up);

    lab.edit_config(|t| {
        t.replace(
            &format!("address = \"{live}\""),
            &format!("address = \"{dead}\""),
        )
    })
    .unwrap();
    let line = reload(&lab);
    assert!(
        line.contains("applies to new sessions: radius.servers")
            && line.contains("needs a restart, kept the old value: radius.servers (accounting)")
            && line.contains(&format!("RADIUS servers [{dead}]")),
        "{line}"
    );
    let (mut second, _) = client(&lab, USER, PASSWORD, "pptpc1", false);
    refused(&mut second, &lab);
    drop(second);
    still_up(&lab, &first_up);
    traffic(&lab, &addr);

    lab.edit_config(|t| {
        t.replace(
            &format!("address = \"{dead}\""),
            &format!("address = \"{live}\""),
        )
    })
    .unwrap();
    let line = reload(&lab);
    assert!(line.contains(&format!("RADIUS servers [{live}]")), "{line}");
    let (mut third, _) = client(&lab, USER, PASSWORD, "pptpc2", false);
    up(&mut third, &lab);
    still_up(&lab, &first_up);
    assert!(fr.logins_ok(USER) >= 2, "{}", fr.log());
}

/// A new Interim-Update interval applies to the sessions that start after
/// the reload: the new session gets Interim-Updates, the live one (started
/// without) does not.
#[test]
fn a_new_interim_interval_applies_to_new_sessions() {
    netns::require_root().expect("prerequisite");
    let topology = Topology::new().expect("topology");
    let fr = FreeRadius::start(&topology.server).unwrap_or_else(|e| panic!("{e}"));
    let lab = Lab::start_in(
        topology,
        bin(),
        &LabOptions {
            xdp: false,
            auth: Some(
                "backend = \"radius\"\nmethods = [\"mschapv2\"]\nfailure_delay_ms = 100".into(),
            ),
            extra: daemon_radius_config(&[fr.auth_address()]).replacen(
                "dead_time_secs = 30\n",
                "dead_time_secs = 30\naccounting = true\nacct_interim_interval_secs = 0\n",
                1,
            ),
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let start_of = |addr: &str| {
        let record = fr
            .wait_accounting(Duration::from_secs(10), |r| {
                r.status() == Some("Start") && r.get("Framed-IP-Address") == Some(addr)
            })
            .unwrap_or_else(|records| panic!("no Start for {addr}: {records:#?}"));
        record
            .get("Acct-Session-Id")
            .expect("Acct-Session-Id")
            .to_owned()
    };
    let (mut first, _) = client(&lab, USER, PASSWORD, "pptpc0", true);
    let first_id = start_of(&address(&up(&mut first, &lab)));

    lab.edit_config(|t| {
        t.replace(
            "acct_interim_interval_secs = 0",
            "acct_interim_interval_secs = 1",
        )
    })
    .unwrap();
    let line = reload(&lab);
    assert!(line.contains("radius.acct_interim_interval_secs"), "{line}");
    let (mut second, _) = client(&lab, USER, PASSWORD, "pptpc1", false);
    let second_id = start_of(&address(&up(&mut second, &lab)));
    fr.wait_accounting(Duration::from_secs(8), |r| {
        r.status() == Some("Interim-Update") && r.get("Acct-Session-Id") == Some(&second_id)
    })
    .unwrap_or_else(|records| panic!("no Interim-Update of the new session: {records:#?}"));
    // Two more seconds: still none for the session that started before.
    std::thread::sleep(Duration::from_secs(2));
    let old = fr.wait_accounting(Duration::from_millis(200), |r| {
        r.status() == Some("Interim-Update") && r.get("Acct-Session-Id") == Some(&first_id)
    });
    assert!(old.is_err(), "the live session kept its interval: {old:?}");
}

/// A new address pool: the live session keeps its address and its
/// traffic; the next session gets an address from the new pool.
#[test]
fn new_sessions_get_the_new_pool_and_live_ones_keep_theirs() {
    let lab = lab(true);
    let (mut first, _) = client(&lab, USER, PASSWORD, "pptpc0", true);
    let first_up = up(&mut first, &lab);
    let old_addr = address(&first_up);
    assert!(old_addr.starts_with("198.19."), "{old_addr}");
    traffic(&lab, &old_addr);

    let old_pool = format!("pool = [\"{}\"]", pptp_lab::lab::TUNNEL_POOL);
    lab.edit_config(|t| {
        assert!(t.contains(&old_pool), "{t}");
        t.replace(&old_pool, "pool = [\"198.19.150.10-198.19.150.20\"]")
    })
    .unwrap();
    let line = reload(&lab);
    assert!(
        line.contains("configuration reloaded from") && line.contains("ppp.pool"),
        "{line}"
    );
    assert!(!line.contains("needs a restart"), "{line}");
    traffic(&lab, &old_addr);
    still_up(&lab, &first_up);

    let (mut second, _) = client(&lab, USER, PASSWORD, "pptpc1", false);
    let second_up = up(&mut second, &lab);
    let new_addr: std::net::Ipv4Addr = address(&second_up).parse().unwrap();
    let octets = new_addr.octets();
    assert!(
        octets[..3] == [198, 19, 150] && (10..=20).contains(&octets[3]),
        "{new_addr} is not from the new pool"
    );
    still_up(&lab, &first_up);
    traffic(&lab, &old_addr);
}
