//! The systemd integration: the unit file passes `systemd-analyze verify`,
//! the daemon speaks the readiness protocol (sd_notify(3)) to a socket of
//! ours the way systemd's `Type=notify` expects, and it runs with only the
//! capabilities the unit leaves it. Needs root, `systemd-analyze` (package
//! `systemd`) and `setpriv` (package `util-linux`); fails (never skips)
//! without them (`cargo xtask setup`).

use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use pptp_daemon::server::ctl::{self, DataPath, Request, Response};
use pptp_lab::lab::{LAN_HOST, Lab, LabOptions, Topology};
use pptp_netns as netns;

mod common;
use common::bin;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd/pptp-xdp.service")
}

/// A scratch folder removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pxsd-{}", netns::unique_name(name)));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `systemd-analyze verify` on `unit`; its complaints about that file.
fn verify(unit: &Path) -> (bool, Vec<String>) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(unit)
        .output()
        .expect("prerequisite: systemd-analyze (package systemd; `cargo xtask setup`)");
    let name = unit.file_name().unwrap().to_string_lossy().into_owned();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let complaints = text
        .lines()
        .filter(|l| l.contains(&name))
        .map(str::to_owned)
        .collect();
    (out.status.success(), complaints)
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let text = std::fs::read_to_string(unit_path()).expect("contrib/systemd/pptp-xdp.service");
    for key in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "RuntimeDirectory=pptp-xdp",
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_BPF CAP_PERFMON",
    ] {
        assert!(text.contains(key), "the unit lacks {key}");
    }
    // verify checks that ExecStart's program exists: point it at the
    // binary under test, nothing else changes.
    let dir = Scratch::new("unit");
    let unit = dir.0.join("pptp-xdp.service");
    std::fs::write(
        &unit,
        text.replace("/usr/sbin/pptp-daemon", &bin().display().to_string()),
    )
    .unwrap();
    let (ok, complaints) = verify(&unit);
    assert!(ok && complaints.is_empty(), "{complaints:#?}");
    // The checker does see mistakes in such a file.
    std::fs::write(
        &unit,
        text.replace("/usr/sbin/pptp-daemon", &bin().display().to_string())
            .replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"),
    )
    .unwrap();
    let (_, complaints) = verify(&unit);
    assert!(
        complaints.iter().any(|l| l.contains("NoNewPrivilege")),
        "{complaints:#?}"
    );
}

/// The daemon, started by hand (not through the lab, to give it
/// NOTIFY_SOCKET), killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn signal(daemon: &Daemon, signal: i32) {
    // SAFETY: kill with the pid of a child we own.
    unsafe { libc::kill(daemon.0.id() as i32, signal) };
}

/// The next notification datagram, as its `KEY=value` lines.
fn next_message(socket: &UnixDatagram, log: &Path) -> Vec<String> {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).unwrap_or_else(|e| {
        panic!(
            "no notification: {e}; daemon log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn control_answers(socket: &Path) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    matches!(
        runtime.block_on(ctl::request(socket, &Request::Sessions)),
        Ok(Response::Sessions { .. })
    )
}

#[test]
fn the_daemon_notifies_ready_reloading_and_stopping() {
    netns::require_root().expect("prerequisite");
    let topology = Topology::new().unwrap_or_else(|e| panic!("{e}"));
    let dir = Scratch::new("notify");
    let secrets = dir.0.join("chap-secrets");
    std::fs::write(&secrets, "alice * secret *\n").unwrap();
    let control = dir.0.join("ctl.sock");
    let config = dir.0.join("pptp.toml");
    std::fs::write(
        &config,
        topology.server_config(&secrets, &control, false, "allow", "stack"),
    )
    .unwrap();
    let log = dir.0.join("daemon.log");
    let notify = dir.0.join("notify.sock");
    let socket = UnixDatagram::bind(&notify).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let daemon = Daemon(
        Command::new("ip")
            .args(["netns", "exec", topology.server.name()])
            .arg(bin())
            .args(["--config", &config.display().to_string()])
            .env("NOTIFY_SOCKET", &notify)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting the daemon"),
    );
    // READY=1 first, and by then the control socket answers.
    let ready = next_message(&socket, &log);
    assert!(ready.iter().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        control_answers(&control),
        "READY=1 before the control socket answers"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // SIGHUP: RELOADING=1 (with the time, for systemd 253+), then READY=1.
    signal(&daemon, libc::SIGHUP);
    let reloading = next_message(&socket, &log);
    assert!(
        reloading.iter().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    assert!(
        reloading.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    let ready = next_message(&socket, &log);
    assert!(ready.iter().any(|l| l == "READY=1"), "{ready:?}");
    // SIGTERM: STOPPING=1, then a clean exit.
    let mut daemon = daemon;
    signal(&daemon, libc::SIGTERM);
    let stopping = next_message(&socket, &log);
    assert!(stopping.iter().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "{status}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// The daemon started by the lab through `setpriv` with the bounding set
/// `caps` (as `CapabilityBoundingSet=` leaves root), one session of the
/// lab's client up and pinging; returns the lab and the session's path.
fn session_with_caps(dir: &Scratch, caps: &str) -> (Lab, DataPath) {
    use std::os::unix::fs::PermissionsExt as _;
    netns::require_root().expect("prerequisite");
    let wrapper = dir.0.join("with-caps");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec setpriv --bounding-set -all,{caps} -- {} \"$@\"\n",
            bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let lab = Lab::start(&wrapper, &LabOptions::default())
        .unwrap_or_else(|e| panic!("{e} (setpriv: package util-linux, `cargo xtask setup`)"));
    let mut client = lab.client(&[]).unwrap();
    let line = client
        .wait_for_line(Duration::from_secs(60), |l| {
            l.contains("\"up\"") || l.contains("\"failed\"")
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    assert!(line.contains("\"up\""), "{line}\n{}", lab.daemon_log());
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = v["address"].as_str().unwrap().to_owned();
    lab.ping(&addr, LAN_HOST, 3)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    let path = lab.sessions().unwrap()[0].path;
    drop(client);
    (lab, path)
}

/// The bounding set of a running process (`CapBnd` of /proc/PID/status).
fn bounding_set(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_owned();
    u64::from_str_radix(&hex, 16).unwrap()
}

// Capability numbers (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The unit's capability set is enough: with only those (`ip netns exec`
/// execs the wrapper, which execs setpriv, which execs the daemon: the
/// lab's daemon process id is the daemon's), sessions come up on the XDP
/// path.
#[test]
fn the_daemon_runs_with_the_units_capabilities_only() {
    let dir = Scratch::new("caps");
    let (lab, path) = session_with_caps(&dir, "+net_admin,+net_raw,+bpf,+perfmon");
    let want = [CAP_NET_ADMIN, CAP_NET_RAW, CAP_PERFMON, CAP_BPF]
        .iter()
        .fold(0u64, |m, c| m | 1 << c);
    assert_eq!(bounding_set(lab.daemon_pid().unwrap()), want);
    assert_eq!(path, DataPath::Xdp, "{}", lab.daemon_log());
}

/// Why the unit keeps CAP_PERFMON: without it the verifier refuses the
/// XDP program's pointer arithmetic on packet data, and every session
/// falls back to the userspace path.
#[test]
fn without_cap_perfmon_the_xdp_program_is_refused() {
    let dir = Scratch::new("noperf");
    let (lab, path) = session_with_caps(&dir, "+net_admin,+net_raw,+bpf");
    assert_eq!(path, DataPath::Userspace);
    let log = lab.daemon_log();
    assert!(
        log.contains("XDP unavailable") && log.contains("pointer arithmetic"),
        "{log}"
    );
}
