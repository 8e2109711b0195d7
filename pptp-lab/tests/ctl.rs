//! `pptp-daemon ctl` against the real daemon in the lab's namespaces: the
//! command-line client (the same binary) talks to the daemon's control
//! socket, our PPTP client makes real sessions. Needs root; fails (never
//! skips) without it.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

use pptp_lab::lab::{LAN_HOST, Lab, LabOptions, Process};
use pptp_netns as netns;
use serde_json::Value;

mod common;
use common::bin;

fn lab(options: LabOptions) -> Lab {
    netns::require_root().expect("prerequisite");
    Lab::start(bin(), &options).unwrap_or_else(|e| panic!("{e}"))
}

/// `pptp-daemon ctl --socket <lab's> args...`.
fn ctl_output(lab: &Lab, args: &[&str]) -> Output {
    std::process::Command::new(bin())
        .arg("ctl")
        .arg("--socket")
        .arg(&lab.socket)
        .args(args)
        .output()
        .expect("running pptp-daemon ctl")
}

/// `ctl args...`, which must succeed; its standard output.
fn ctl(lab: &Lab, args: &[&str]) -> String {
    let out = ctl_output(lab, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ctl {args:?} failed ({}): {}{}\ndaemon log:\n{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr),
        lab.daemon_log()
    );
    stdout
}

/// `ctl args... --json`, parsed.
fn ctl_json(lab: &Lab, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = ctl(lab, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The sessions `ctl sessions FILTERS --json` lists.
fn sessions(lab: &Lab, filters: &[&str]) -> Vec<Value> {
    let mut args = vec!["sessions"];
    args.extend_from_slice(filters);
    let v = ctl_json(lab, &args);
    assert_eq!(v["result"], "sessions", "{v}");
    v["sessions"].as_array().cloned().unwrap_or_default()
}

/// Waits for the client's "up" line; its JSON.
fn wait_up(client: &mut Process, lab: &Lab) -> Value {
    let mut up = None;
    client
        .wait_for_line(Duration::from_secs(60), |line| {
            let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            match v["event"].as_str() {
                Some("up") => {
                    up = Some(v);
                    true
                }
                Some("failed") | Some("down") => {
                    panic!("client: {line}\ndaemon log:\n{}", lab.daemon_log())
                }
                _ => false,
            }
        })
        .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()));
    up.expect("set when the wait succeeds")
}

/// Waits for `n` "up" lines of one client process (`--sessions n`).
fn wait_all_up(client: &mut Process, lab: &Lab) {
    client
        .wait_for_line(Duration::from_secs(90), |line| {
            if line.contains("\"failed\"") || line.contains("\"down\"") {
                panic!("client: {line}\ndaemon log:\n{}", lab.daemon_log());
            }
            line.contains("\"all_up\"")
        })
        .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()));
}

/// Reads client lines until an event of `kind` ("down", "failed"); its JSON.
fn wait_event(client: &mut Process, lab: &Lab, kind: &str, within: Duration) -> Value {
    let needle = format!("\"{kind}\"");
    let line = client
        .wait_for_line(within, |l| l.contains(&needle))
        .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()));
    serde_json::from_str(&line).unwrap()
}

fn address(up: &Value) -> String {
    up["address"].as_str().expect("address").to_owned()
}

/// Polls `cond` for up to `within`.
fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(process: &Process, sig: i32) {
    // SAFETY: kill(2) on a child we own.
    unsafe { libc::kill(process.child.id() as i32, sig) };
}

/// Nothing of any session is left: call table, addresses, routes, map
/// entries.
fn assert_released(lab: &Lab) {
    let clean = eventually(Duration::from_secs(10), || {
        let stats = lab.stats().unwrap();
        [
            "calls",
            "clients_routed",
            "pool_in_use",
            "call_ids_live",
            "xdp_sessions_installed",
            "xdp_clients_installed",
        ]
        .iter()
        .all(|k| stats.get(*k).copied().unwrap_or(0) == 0)
    });
    assert!(
        clean,
        "left behind: {:?}\ndaemon log:\n{}",
        lab.stats(),
        lab.daemon_log()
    );
}

/// A log without its colours (`key=value` fields are then contiguous).
fn plain_log(log: String) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every client log of the lab (our client's stderr).
fn client_logs(lab: &Lab) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(&lab.dir).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("client-") {
            out.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    out
}

fn counter(stat: &Value, list: &str, name: &str) -> u64 {
    stat[list]
        .as_array()
        .and_then(|l| l.iter().find(|e| e[0] == name))
        .and_then(|e| e[1].as_u64())
        .unwrap_or_else(|| panic!("{list}.{name} missing in {stat}"))
}

#[test]
fn sessions_lists_filters_orders_and_shows_two_sessions() {
    let lab = lab(LabOptions::default());
    let mut alice = lab.client(&[]).unwrap();
    let alice_up = wait_up(&mut alice, &lab);
    // Traffic through alice's session before a second client process
    // takes the lab's route to the LAN to its own TUN device.
    lab.ping(&address(&alice_up), LAN_HOST, 2).unwrap();
    // Uptimes a second apart at least, for --order uptime.
    std::thread::sleep(Duration::from_millis(1100));
    // A second client process needs a TUN device of its own.
    let mut bob = lab
        .client_as("bob", "bobsecret", &["--mppe", "--tun", "pptpc1"])
        .unwrap();
    let bob_up = wait_up(&mut bob, &lab);
    let (alice_ip, bob_ip) = (address(&alice_up), address(&bob_up));
    assert_eq!(bob_ip, "198.19.200.7", "bob's static address");

    // The table: both sessions, every column.
    let table = ctl(&lab, &["sessions"]);
    for needle in [
        "SID",
        "USER",
        "IP",
        "PEER",
        "CALLS",
        "STATE",
        "UPTIME",
        "PATH",
        "MPPE",
        "RATE",
        "RX BYTES",
        "TX BYTES",
        "RX PKTS",
        "TX PKTS",
        "alice",
        "bob",
        &alice_ip,
        &bob_ip,
        "198.18.0.2",
        "up",
        "xdp",
        "128-bit",
        "2 session(s)",
    ] {
        assert!(table.contains(needle), "{needle} missing in\n{table}");
    }
    // JSON, and the filters.
    let all = sessions(&lab, &[]);
    assert_eq!(all.len(), 2, "{all:?}");
    let only = |filters: &[&str]| -> Vec<String> {
        sessions(&lab, filters)
            .iter()
            .map(|s| s["user"].as_str().unwrap_or("-").to_owned())
            .collect()
    };
    assert_eq!(only(&["user=bob"]), ["bob"]);
    assert_eq!(only(&[&format!("ip={alice_ip}")]), ["alice"]);
    assert_eq!(only(&["peer=198.18.0.2"]).len(), 2);
    assert!(only(&["peer=198.18.0.99"]).is_empty());
    assert_eq!(only(&["state=up"]).len(), 2);
    assert!(only(&["state=ending"]).is_empty());
    assert_eq!(only(&["user=alice", "state=up"]), ["alice"]);
    assert_eq!(only(&["--order", "user"]), ["alice", "bob"]);
    // Bob's session is the younger one.
    assert_eq!(only(&["--order", "uptime"]), ["alice", "bob"]);
    let bad = ctl_output(&lab, &["sessions", "colour=blue"]);
    assert!(!bad.status.success());

    // show: by session id, everything negotiated.
    let bob_sid = sessions(&lab, &["user=bob"])[0]["acct_session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = ctl(&lab, &["show", &bob_sid]);
    for needle in [
        bob_sid.as_str(),
        "bob",
        "MS-CHAPv2",
        "lcp:",
        "mru",
        "magic",
        "ipcp:",
        "198.19.200.7",
        "dns 198.18.1.2",
        "mppe 128-bit",
        "mtu:",
        // Stateless MPPE is received on the XDP path (issue 14).
        "xdp",
    ] {
        assert!(shown.contains(needle), "{needle} missing in\n{shown}");
    }
    let details = ctl_json(&lab, &["show", &alice_ip]);
    assert_eq!(details["details"]["info"]["user"], "alice", "{details}");
    assert_eq!(
        details["details"]["negotiated"]["client_address"], alice_ip,
        "{details}"
    );
    assert!(details["details"]["negotiated"]["mtu"].as_u64().unwrap() > 1000);
    let missing = ctl_output(&lab, &["show", "no-such-session"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no session"));

    // stat: two sessions up, two setups, and a failed one.
    let mut wrong = lab
        .client_as("alice", "wrong password", &["--tun", "pptpc2"])
        .unwrap();
    wait_event(&mut wrong, &lab, "down", Duration::from_secs(30));
    assert!(
        eventually(Duration::from_secs(10), || counter(
            &ctl_json(&lab, &["stat"])["stat"],
            "setup_failures",
            "auth_failed"
        ) == 1),
        "{}",
        lab.daemon_log()
    );
    let stat = ctl_json(&lab, &["stat"]);
    let s = &stat["stat"];
    assert_eq!(s["sessions"]["up"], 2, "{stat}");
    // Both on the XDP path: bob's stateless MPPE too (issue 14).
    assert_eq!(s["sessions"]["xdp"], 2, "{stat}");
    assert_eq!(s["sessions"]["userspace"], 0, "{stat}");
    assert_eq!(s["setups"], 2, "{stat}");
    assert_eq!(s["setups_last_minute"], 2, "{stat}");
    assert!(s["setups_per_second"].as_f64().unwrap() > 0.0, "{stat}");
    assert_eq!(s["auth_accepted"], 2, "{stat}");
    assert!(s["auth_rejected"].as_u64().unwrap() >= 1, "{stat}");
    assert_eq!(counter(s, "setup_failures", "auth_failed"), 1, "{stat}");
    assert!(s["rss_bytes"].as_u64().unwrap() > 1 << 20, "{stat}");
    assert!(counter(s, "counters", "xdp_gre_decapsulated") > 0, "{stat}");
    assert!(counter(s, "counters", "userspace_gre_rx") > 0, "{stat}");
    let text = ctl(&lab, &["stat"]);
    for needle in [
        "uptime:",
        "memory (rss):",
        "up 2",
        "auth_failed",
        "counters:",
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    // The old commands still answer.
    let old = std::process::Command::new(bin())
        .args(["sessions", "--socket"])
        .arg(&lab.socket)
        .output()
        .unwrap();
    assert!(old.status.success());
    assert!(String::from_utf8_lossy(&old.stdout).contains("2 session(s)"));
}

#[test]
fn terminate_soft_says_goodbye_and_frees_everything() {
    let lab = lab(LabOptions::default());
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab);
    let out = ctl(&lab, &["terminate", "user=alice", "soft"]);
    assert_eq!(out.trim(), "1 session(s) terminated");
    // The client heard LCP Terminate-Request (its PPP session ended as
    // terminated by the peer), then Call-Disconnect-Notify.
    let down = wait_event(&mut client, &lab, "down", Duration::from_secs(20));
    let reason = down["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("PeerDisconnected") || reason.contains("peer_terminate"),
        "{down}"
    );
    let client_log = client_logs(&lab);
    assert!(
        client_log.contains("link down (peer_terminate)"),
        "{client_log}"
    );
    assert_released(&lab);
    assert!(sessions(&lab, &[]).is_empty());
    // The daemon cleared the call (Call-Disconnect-Notify) and, with no
    // call left, stopped the control connection (its Stop was answered).
    let log = plain_log(lab.daemon_log());
    assert!(log.contains("clearing call"), "{log}");
    assert!(
        log.contains("no call left after an administrative reset"),
        "{log}"
    );
    assert!(log.contains("reason=admin_reset"), "{log}");
    let stat = ctl_json(&lab, &["stat"]);
    assert_eq!(counter(&stat["stat"], "ended", "admin_reset"), 1, "{stat}");
    // Nothing left to terminate.
    assert_eq!(
        ctl(&lab, &["terminate", "user=alice"]).trim(),
        "0 session(s) terminated"
    );
}

#[test]
fn terminate_hard_releases_at_once_and_the_address_is_reusable() {
    let lab = lab(LabOptions::default());
    let mut bob = lab.client_as("bob", "bobsecret", &[]).unwrap();
    let up = wait_up(&mut bob, &lab);
    assert_eq!(address(&up), "198.19.200.7");
    let out = ctl(&lab, &["terminate", "ip=198.19.200.7", "hard"]);
    assert_eq!(out.trim(), "1 session(s) terminated");
    // Released before the answer: the very next listing is empty.
    assert!(sessions(&lab, &[]).is_empty());
    assert_released(&lab);
    // No goodbyes: the client saw TCP close under it.
    let down = wait_event(&mut bob, &lab, "down", Duration::from_secs(20));
    let reason = down["reason"].as_str().unwrap_or("");
    assert!(
        !reason.contains("terminate") && !reason.contains("PeerDisconnected"),
        "{down}"
    );
    assert!(
        lab.daemon_log()
            .contains("closing the control connection without goodbyes"),
        "{}",
        lab.daemon_log()
    );
    // Bob's static address is free again.
    drop(bob);
    let mut again = lab
        .client_as("bob", "bobsecret", &["--tun", "pptpc1"])
        .unwrap();
    let up = wait_up(&mut again, &lab);
    assert_eq!(address(&up), "198.19.200.7");
    lab.ping("198.19.200.7", LAN_HOST, 2).unwrap();
}

#[test]
fn terminate_all_ends_every_session() {
    let lab = lab(LabOptions::default());
    let mut client = lab.client(&["--sessions", "3"]).unwrap();
    wait_all_up(&mut client, &lab);
    assert_eq!(sessions(&lab, &[]).len(), 3);
    let v = ctl_json(&lab, &["terminate", "all"]);
    assert_eq!(v["count"], 3, "{v}");
    assert!(eventually(Duration::from_secs(20), || sessions(&lab, &[]).is_empty()));
    assert_released(&lab);
    // A target is required: no argument is not "all".
    assert!(!ctl_output(&lab, &["terminate"]).status.success());
}

#[test]
fn reload_answers_with_its_outcome() {
    let lab = lab(LabOptions::default());
    let out = ctl(&lab, &["reload"]);
    assert!(
        out.contains("reloaded") && out.contains("2 entries"),
        "{out}"
    );
    // A third user appears with the reload.
    let secrets = lab.dir.join("chap-secrets");
    let mut text = std::fs::read_to_string(&secrets).unwrap();
    text.push_str("carol\t*\tcarolsecret\t*\n");
    std::fs::write(&secrets, &text).unwrap();
    assert!(ctl(&lab, &["reload"]).contains("3 entries"));
    let mut carol = lab.client_as("carol", "carolsecret", &[]).unwrap();
    wait_up(&mut carol, &lab);
    // A broken reload is an error, and the old secrets stay.
    std::fs::remove_file(&secrets).unwrap();
    let failed = ctl_output(&lab, &["reload"]);
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("secrets file not loaded, the old configuration stays in effect"),
        "{err}"
    );
    let mut alice = lab.client(&["--tun", "pptpc1"]).unwrap();
    wait_up(&mut alice, &lab);
    assert!(
        lab.daemon_log()
            .contains("the old configuration stays in effect")
    );
}

#[test]
fn shutdown_soft_waits_for_the_last_session() {
    let mut lab = lab(LabOptions::default());
    let mut client = lab.client(&[]).unwrap();
    let addr = address(&wait_up(&mut client, &lab));
    let out = ctl(&lab, &["shutdown", "soft"]);
    assert!(out.contains("soft"), "{out}");
    // New connections are refused ...
    let mut late = lab
        .client_as("bob", "bobsecret", &["--tun", "pptpc1"])
        .unwrap();
    let failed = wait_event(&mut late, &lab, "failed", Duration::from_secs(20));
    assert!(
        failed["reason"].as_str().unwrap_or("").contains("connect"),
        "{failed}"
    );
    // ... the live session keeps passing traffic, the daemon keeps running
    // and answers on its socket.
    lab.ping(&addr, LAN_HOST, 3).unwrap();
    lab.tcp_echo(&addr, 200_000).unwrap();
    assert!(lab.wait_daemon_exit(Duration::from_secs(1)).is_none());
    let stat = ctl_json(&lab, &["stat"]);
    assert_eq!(stat["stat"]["draining"], true, "{stat}");
    assert_eq!(sessions(&lab, &[]).len(), 1);
    // The client hangs up: the daemon exits, cleanly.
    signal(&client, libc::SIGTERM);
    wait_event(&mut client, &lab, "down", Duration::from_secs(20));
    let status = lab.wait_daemon_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        lab.daemon_log()
    );
    let log = lab.daemon_log();
    assert!(
        log.contains("soft shutdown: every session has ended") && log.contains("stopped"),
        "{log}"
    );
    assert!(!lab.socket.exists());
}

#[test]
fn shutdown_hard_ends_the_sessions_and_exits() {
    let mut lab = lab(LabOptions::default());
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab);
    let v = ctl_json(&lab, &["shutdown", "hard"]);
    assert_eq!(v["result"], "shutting_down", "{v}");
    assert_eq!(v["sessions"], 1, "{v}");
    let down = wait_event(&mut client, &lab, "down", Duration::from_secs(20));
    assert!(!down["reason"].as_str().unwrap_or("").is_empty(), "{down}");
    let status = lab.wait_daemon_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        lab.daemon_log()
    );
}

#[test]
fn a_soft_shutdown_turns_hard_on_request() {
    let mut lab = lab(LabOptions::default());
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab);
    ctl(&lab, &["shutdown", "soft"]);
    assert!(lab.wait_daemon_exit(Duration::from_secs(1)).is_none());
    ctl(&lab, &["shutdown", "hard"]);
    wait_event(&mut client, &lab, "down", Duration::from_secs(20));
    let status = lab.wait_daemon_exit(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// Runs `ctl sessions` as the user nobody.
fn ctl_as_nobody(bin: &Path, socket: &Path) -> Output {
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin)
        .arg("ctl")
        .arg("--socket")
        .arg(socket)
        .arg("sessions")
        .output()
        .expect("setpriv (util-linux) runs: install it with `cargo xtask setup`")
}

#[test]
fn other_users_are_refused() {
    let lab = lab(LabOptions::default());
    // A copy of the binary nobody may run (the build folder may be closed
    // to it).
    let dir = std::env::temp_dir().join(format!("pptp-ctl-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join("pptp-daemon");
    std::fs::copy(bin(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mode = std::fs::metadata(&lab.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    std::fs::set_permissions(&lab.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The file mode keeps nobody out ...
    let out = ctl_as_nobody(&copy, &lab.socket);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ermission denied"),
        "{out:?}"
    );
    // ... and with the file opened up, the peer credentials still do.
    std::fs::set_permissions(&lab.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = ctl_as_nobody(&copy, &lab.socket);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only root and the daemon's user"), "{err}");
    assert!(
        eventually(Duration::from_secs(5), || lab
            .daemon_log()
            .contains("control socket: client refused")),
        "{}",
        lab.daemon_log()
    );
    assert!(plain_log(lab.daemon_log()).contains("uid=Some(65534)"));
    // Root still gets its answer.
    assert!(ctl(&lab, &["sessions"]).contains("0 session(s)"));
}

#[test]
fn sigterm_during_a_soft_shutdown_turns_it_hard() {
    let mut lab = lab(LabOptions::default());
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab);
    ctl(&lab, &["shutdown", "soft"]);
    assert!(lab.wait_daemon_exit(Duration::from_secs(1)).is_none());
    // SIGTERM: the goodbyes, then a clean exit.
    lab.stop_daemon().unwrap();
    let down = wait_event(&mut client, &lab, "down", Duration::from_secs(20));
    assert!(!down["reason"].as_str().unwrap_or("").is_empty(), "{down}");
    let log = plain_log(lab.daemon_log());
    assert!(log.contains("SIGTERM: shutting down"), "{log}");
}

/// `ctl rate` changes a live session's rate limit (the userspace shaper
/// and the XDP entries, as a CoA does): `sessions` shows the new one;
/// `none` lifts it; a malformed rate is refused and changes nothing.
#[test]
fn rate_changes_a_live_sessions_limit() {
    let lab = lab(LabOptions::default());
    let mut client = lab.client(&[]).unwrap();
    let up = wait_up(&mut client, &lab);
    let ip = address(&up);
    let rate_of = |lab: &Lab| sessions(lab, &[&format!("ip={ip}")])[0]["rate"].clone();
    assert_eq!(rate_of(&lab), Value::Null, "no limit configured");

    let v = ctl_json(&lab, &["rate", &format!("ip={ip}"), "1M/2M"]);
    assert_eq!(
        (v["count"].as_u64(), v["rate"].as_str()),
        (Some(1), Some("1M/2M")),
        "{v}"
    );
    assert_eq!(rate_of(&lab), "1M/2M");
    // Traffic still passes under the limit.
    lab.ping(&ip, LAN_HOST, 2).unwrap();

    let bad = ctl_output(&lab, &["rate", "all", "fast"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("fast"),
        "{bad:?}"
    );
    assert_eq!(rate_of(&lab), "1M/2M", "a refused rate changes nothing");

    let v = ctl_json(&lab, &["rate", "all", "none"]);
    assert_eq!(v["count"], 1, "{v}");
    assert_eq!(rate_of(&lab), Value::Null);
}
