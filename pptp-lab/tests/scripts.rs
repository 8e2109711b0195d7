//! pppd-compatible scripts (`[scripts]`) against the real daemon: scripts
//! that record their arguments and environment run for a real session of
//! our client in the lab; `ip-down` runs exactly once however the session
//! ends (the client hangs up, the client dies, the daemon stops); a script
//! that hangs is killed after the timeout while the session carries on; a
//! failing script is logged. Needs root; fails (never skips) without it.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use pptp_lab::lab::{CLIENT_WAN, LAN_HOST, Lab, LabOptions, Process, TUNNEL_LOCAL};
use pptp_netns as netns;
use serde_json::Value;

mod common;
use common::bin;

/// A scratch folder for the scripts and what they record, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pxscripts-{}", netns::unique_name(name)));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn records(&self) -> PathBuf {
        self.0.join("records")
    }

    /// Writes an executable `name` running `body` (after recording).
    fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.0.join(name);
        // One line per run: the script's name, its arguments, then the
        // variables pppd and we set; the whole environment to <name>.env.
        let text = format!(
            "#!/bin/sh\n\
             printf 'kind=%s\\targs=%s\\tPEERNAME=%s\\tIPLOCAL=%s\\tIPREMOTE=%s\\tIFNAME=%s\\tDEVICE=%s\\tSPEED=%s\\t\
PPPD_PID=%s\\tORIG_UID=%s\\tPPPLOGNAME=%s\\tCALLING_SID=%s\\tCALLED_SID=%s\\tPPTP_SESSION_ID=%s\\t\
PPTP_CALL_ID=%s\\tCONNECT_TIME=%s\\tBYTES_SENT=%s\\tBYTES_RCVD=%s\\n' \
             {name} \"$*\" \"$PEERNAME\" \"$IPLOCAL\" \"$IPREMOTE\" \"$IFNAME\" \"$DEVICE\" \"$SPEED\" \
             \"$PPPD_PID\" \"$ORIG_UID\" \"$PPPLOGNAME\" \"$CALLING_SID\" \"$CALLED_SID\" \"$PPTP_SESSION_ID\" \
             \"$PPTP_CALL_ID\" \"${{CONNECT_TIME-unset}}\" \"${{BYTES_SENT-unset}}\" \"${{BYTES_RCVD-unset}}\" >> {records}\n\
             env > {dir}/{name}.env\n\
             {body}\n",
            records = self.records().display(),
            dir = self.0.display(),
        );
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// The runs recorded so far, in order.
    fn runs(&self) -> Vec<HashMap<String, String>> {
        std::fs::read_to_string(self.records())
            .unwrap_or_default()
            .lines()
            .map(|line| {
                line.split('\t')
                    .filter_map(|f| f.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .collect()
    }

    fn runs_of(&self, kind: &str) -> Vec<HashMap<String, String>> {
        self.runs()
            .into_iter()
            .filter(|r| r["kind"] == kind)
            .collect()
    }

    /// Waits until `kind` has run `count` times; returns its runs.
    fn wait_runs(&self, lab: &Lab, kind: &str, count: usize) -> Vec<HashMap<String, String>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let runs = self.runs_of(kind);
            if runs.len() >= count {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "{kind} ran {} times, expected {count}; runs: {:?}\ndaemon log:\n{}",
                runs.len(),
                self.runs(),
                lab.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A lab with `[scripts]` `table` appended.
fn lab(table: String) -> Lab {
    netns::require_root().expect("prerequisite");
    Lab::start(
        bin(),
        &LabOptions {
            xdp: false,
            extra: format!("\n[scripts]\n{table}"),
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The recording scripts of `dir` for all three hooks.
fn all_three(dir: &Scratch, extra: &str) -> String {
    format!(
        "ip_pre_up = \"{}\"\nip_up = \"{}\"\nip_down = \"{}\"\n{extra}",
        dir.script("ip-pre-up", "").display(),
        dir.script("ip-up", "").display(),
        dir.script("ip-down", "").display(),
    )
}

fn wait_up(client: &mut Process, lab: &Lab) -> String {
    let line = client
        .wait_for_line(Duration::from_secs(60), |l| {
            l.contains("\"up\"") || l.contains("\"failed\"") || l.contains("\"down\"")
        })
        .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()));
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "up", "{v}\ndaemon log:\n{}", lab.daemon_log());
    v["address"].as_str().expect("address").to_owned()
}

fn signal(client: &Process, signal: i32) {
    // SAFETY: kill with the pid of a child we own.
    unsafe { libc::kill(client.child.id() as i32, signal) };
}

/// Waits until the daemon has no session left.
fn wait_no_sessions(lab: &Lab) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab.sessions().map(|s| s.is_empty()).unwrap_or(false) {
        assert!(
            Instant::now() < deadline,
            "sessions left:\n{}",
            lab.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The log without its colours (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
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

/// Checks an `ip-up`/`ip-down` record against pppd's conventions and the
/// session.
fn assert_pppd_conventions(run: &HashMap<String, String>, lab: &Lab, addr: &str, session: &str) {
    assert_eq!(
        run["args"],
        format!("pptp0 pptp 115200 {TUNNEL_LOCAL} {addr} {CLIENT_WAN}"),
        "interface tty speed local remote ipparam"
    );
    assert_eq!(run["PEERNAME"], pptp_lab::lab::USER);
    assert_eq!(run["IPLOCAL"], TUNNEL_LOCAL);
    assert_eq!(run["IPREMOTE"], addr);
    assert_eq!(run["IFNAME"], "pptp0");
    assert_eq!(run["DEVICE"], "pptp");
    assert_eq!(run["SPEED"], "115200");
    assert_eq!(run["ORIG_UID"], "0");
    assert_eq!(run["PPPLOGNAME"], "root");
    assert_eq!(
        run["PPPD_PID"],
        lab.daemon_pid().expect("running").to_string()
    );
    assert_eq!(run["CALLING_SID"], CLIENT_WAN);
    assert_eq!(run["CALLED_SID"], pptp_lab::lab::SERVER_WAN);
    assert_eq!(run["PPTP_SESSION_ID"], session);
}

#[test]
fn ip_up_and_ip_down_run_with_pppds_arguments_for_a_real_session() {
    let dir = Scratch::new("hangup");
    let lab = lab(all_three(&dir, ""));
    let mut client = lab.client(&[]).unwrap();
    let addr = wait_up(&mut client, &lab);
    let sessions = lab.sessions().unwrap();
    let session = sessions[0].acct_session_id.clone();
    let up = dir.wait_runs(&lab, "ip-up", 1);
    assert_pppd_conventions(&up[0], &lab, &addr, &session);
    assert_eq!(up[0]["CONNECT_TIME"], "unset", "ip-up has no counters");
    // ip-pre-up ran first, with the same arguments.
    let runs = dir.runs();
    assert_eq!(runs[0]["kind"], "ip-pre-up", "{runs:?}");
    assert_pppd_conventions(&runs[0], &lab, &addr, &session);
    // Nothing of the daemon's environment leaks through.
    let env = std::fs::read_to_string(dir.0.join("ip-up.env")).unwrap();
    assert!(
        !env.contains("RUST_LOG=") && !env.contains("HOME="),
        "{env}"
    );
    lab.ping(&addr, LAN_HOST, 3)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    // The client hangs up.
    signal(&client, libc::SIGTERM);
    let down = dir.wait_runs(&lab, "ip-down", 1);
    assert_pppd_conventions(&down[0], &lab, &addr, &session);
    let sent: u64 = down[0]["BYTES_SENT"].parse().unwrap();
    let rcvd: u64 = down[0]["BYTES_RCVD"].parse().unwrap();
    assert!(sent >= 3 * 84 && rcvd >= 3 * 84, "{:?}", down[0]);
    assert!(down[0]["CONNECT_TIME"].parse::<u64>().is_ok());
    wait_no_sessions(&lab);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(dir.runs_of("ip-down").len(), 1, "ip-down once");
    assert_eq!(dir.runs_of("ip-up").len(), 1);
}

#[test]
fn ip_down_runs_once_when_the_client_dies() {
    let dir = Scratch::new("kill");
    let lab = lab(all_three(&dir, ""));
    let mut client = lab.client(&[]).unwrap();
    let addr = wait_up(&mut client, &lab);
    dir.wait_runs(&lab, "ip-up", 1);
    // No Call-Clear, no Stop-Control-Connection: the kernel closes its
    // TCP connection.
    signal(&client, libc::SIGKILL);
    let down = dir.wait_runs(&lab, "ip-down", 1);
    assert_eq!(down[0]["IPREMOTE"], addr);
    wait_no_sessions(&lab);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(dir.runs_of("ip-down").len(), 1, "ip-down once");
}

#[test]
fn ip_down_runs_before_the_daemon_exits() {
    let dir = Scratch::new("stop");
    // ip-down takes a while: the daemon still waits for it.
    let table = format!(
        "ip_up = \"{}\"\nip_down = \"{}\"\n",
        dir.script("ip-up", "").display(),
        dir.script("ip-down", "sleep 1").display(),
    );
    let mut lab = lab(table);
    let mut client = lab.client(&["--sessions", "2"]).unwrap();
    wait_up(&mut client, &lab);
    dir.wait_runs(&lab, "ip-up", 2);
    let pid = lab.daemon_pid().unwrap().to_string();
    lab.stop_daemon()
        .unwrap_or_else(|e| panic!("{e}\nruns: {:?}", dir.runs()));
    let down = dir.runs_of("ip-down");
    assert_eq!(down.len(), 2, "one ip-down per session: {:?}", dir.runs());
    assert!(down.iter().all(|r| r["PPPD_PID"] == pid));
    assert_ne!(down[0]["IPREMOTE"], down[1]["IPREMOTE"]);
    assert!(
        !lab.daemon_log().contains("did not finish before shutdown"),
        "{}",
        lab.daemon_log()
    );
}

#[test]
fn a_hanging_ip_up_is_killed_and_the_session_carries_on() {
    let dir = Scratch::new("hang");
    let table = format!(
        "ip_up = \"{}\"\nip_down = \"{}\"\ntimeout_secs = 2\n",
        dir.script("ip-up", "sleep 601").display(),
        dir.script("ip-down", "").display(),
    );
    let lab = lab(table);
    let mut client = lab.client(&[]).unwrap();
    let addr = wait_up(&mut client, &lab);
    dir.wait_runs(&lab, "ip-up", 1);
    // The session does not wait for ip-up.
    lab.ping(&addr, LAN_HOST, 2)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.stats().unwrap().get("scripts_timed_out") != Some(&1) {
        assert!(Instant::now() < deadline, "{}", lab.daemon_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = lab.daemon_log();
    assert!(
        log.contains("script timed out after 2 s") && log.contains("ip-up"),
        "{log}"
    );
    // No `sleep 601` left in the server namespace's processes.
    let sleepers = std::process::Command::new("pgrep")
        .args(["-f", "sleep 601"])
        .output()
        .expect("pgrep (procps)");
    assert!(
        sleepers.stdout.is_empty(),
        "the script's process survived: {}",
        String::from_utf8_lossy(&sleepers.stdout)
    );
    lab.ping(&addr, LAN_HOST, 2)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    assert_eq!(lab.sessions().unwrap().len(), 1);
    signal(&client, libc::SIGTERM);
    dir.wait_runs(&lab, "ip-down", 1);
}

#[test]
fn a_failing_script_is_logged_with_the_session_and_user() {
    let dir = Scratch::new("fail");
    let table = format!(
        "ip_up = \"{}\"\n",
        dir.script("ip-up", "echo 'no route\tto nowhere' >&2; exit 3")
            .display(),
    );
    let lab = lab(table);
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab);
    dir.wait_runs(&lab, "ip-up", 1);
    let session = lab.sessions().unwrap()[0].acct_session_id.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = strip_ansi(&lab.daemon_log());
        if let Some(line) = log.lines().find(|l| l.contains("script failed")) {
            assert!(line.contains("exit status 3"), "{line}");
            assert!(line.contains(&session), "{line}");
            assert!(line.contains("user=alice"), "{line}");
            // The tab is escaped: one line per run in the log.
            assert!(line.contains("no route\\tto nowhere"), "{line}");
            break;
        }
        assert!(Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lab.stats().unwrap()["scripts_failed"], 1);
    assert_eq!(lab.sessions().unwrap().len(), 1, "the session stays up");
}
