//! What the integration tests of the lab share: the daemon binary (built
//! on first use) and a raw GRE socket in a namespace.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use pptp_lab::{
    lab::{Lab, PASSWORD, Process, SERVER_WAN, USER},
    radius_lab::{DetailRecord, FreeRadius},
};

use serde_json::Value;

/// The daemon binary. It belongs to another package, so cargo does not
/// build it for these tests: the first call builds it (a no-op when it is
/// fresh) with the cargo and profile that built this test.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_daemon().unwrap_or_else(|e| panic!("building pptp-daemon: {e}")))
}

/// `cargo build -p pptp-daemon --bin pptp-daemon` in this test's profile;
/// returns the executable cargo names.
pub fn build_daemon() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/e2e-<hash>
    let profile = me
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(|p| p.to_str())
        .unwrap_or("debug");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--package",
        "pptp-daemon",
        "--bin",
        "pptp-daemon",
        "--message-format=json-render-diagnostics",
    ]);
    if profile != "debug" {
        cmd.args(["--profile", profile]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("starting cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo build failed ({})", out.status));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["target"]["name"] == "pptp-daemon")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo did not name the pptp-daemon executable".to_owned())
}

/// A raw IPv4 socket for GRE (protocol 47) opened inside `ns`, for sending
/// crafted frames from a test host.
pub fn raw_gre_socket(ns: &pptp_netns::Netns) -> socket2::Socket {
    ns.run(|| {
        socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(47)),
        )
    })
    .expect("entering the namespace")
    .expect("raw GRE socket (needs root)")
}

/// The daemon's and FreeRADIUS's logs, for failure messages.
pub fn logs(lab: &Lab, fr: &FreeRadius) -> String {
    format!(
        "daemon log:\n{}\nFreeRADIUS log:\n{}",
        lab.daemon_log(),
        fr.log()
    )
}

/// The first accounting record in FreeRADIUS's detail file that `matches`,
/// waiting up to `within`; panics naming `what` otherwise.
pub fn wait_record(
    lab: &Lab,
    fr: &FreeRadius,
    within: Duration,
    what: &str,
    matches: impl Fn(&DetailRecord) -> bool,
) -> DetailRecord {
    fr.wait_accounting(within, matches)
        .unwrap_or_else(|records| {
            panic!(
                "no {what} in the detail file; records: {records:#?}\n{}",
                logs(lab, fr)
            )
        })
}

/// Waits for the client's "up" line and returns it; panics on failure.
pub fn up(client: &mut Process, lab: &Lab, fr: &FreeRadius) -> Value {
    let mut up = None;
    client
        .wait_for_line(Duration::from_secs(60), |line| {
            let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            match v["event"].as_str() {
                Some("up") => {
                    up = Some(v);
                    true
                }
                Some("failed") | Some("down") => panic!("client: {line}\n{}", logs(lab, fr)),
                _ => false,
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(lab, fr)));
    up.expect("set when the wait succeeds")
}

/// Waits (at most `timeout`) for the client's "up" line and returns it;
/// panics with the daemon's log when the client fails or goes down.
pub fn wait_up(client: &mut Process, lab: &Lab, timeout: Duration) -> Value {
    let mut up = Value::Null;
    client
        .wait_for_line(timeout, |line| {
            let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            match v["event"].as_str() {
                Some("up") => {
                    up = v;
                    true
                }
                Some("failed") | Some("down") => {
                    panic!("client: {line}\ndaemon log:\n{}", lab.daemon_log())
                }
                _ => false,
            }
        })
        .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()));
    up
}

/// Our client as the lab's user, without the route to the LAN that
/// `Lab::client` adds, with `extra` arguments; its log in the lab's folder.
pub fn client_without_route(lab: &Lab, extra: &[&str]) -> Process {
    let mut args = vec![
        "client",
        "--server",
        SERVER_WAN,
        "--user",
        USER,
        "--password",
        PASSWORD,
    ];
    args.extend_from_slice(extra);
    let log = lab
        .dir
        .join(format!("client-{}.log", pptp_netns::unique_name("c")));
    Process::spawn(
        &lab.topology.client,
        "pptp client",
        bin(),
        &args,
        Some(&log),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}
