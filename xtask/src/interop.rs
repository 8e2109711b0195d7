//! `cargo xtask interop`: a PPTP client nobody here wrote (pptp-linux and
//! pppd in the test guest, MS-CHAPv2) against our daemon, and the guest
//! comparison of our data paths with kernel PPTP (`--bench`).
//!
//! The interop run puts our daemon on the host, in the network namespace of
//! the guest's tap, and a LAN host behind it in a namespace of its own:
//!
//! ```text
//!  guest (qemu, TCG)         tap namespace pxg-<pid>-<n>           LAN namespace pxi-<pid>
//!  eth0 198.18.0.2/24 -tap-- pxgtap0 198.18.0.1/24
//!  pppN 198.19.0.x (pppd)    pptp-daemon: XDP on pxgtap0 and
//!                            pxil0, TUN pptp0 198.19.0.1
//!                            pxil0 198.18.1.1/24 ------veth------- pxih0 198.18.1.2/24
//!                                                                  (iperf3 -s, ping)
//! ```
//!
//! The guest dials three times, without MPPE (the session must be on the
//! XDP fast path), with require-mppe-128 and with require-mppe-40
//! nomppe-128 (XDP decrypts what pppd sends, the daemon encrypts what it
//! sends; the daemon offers 128, 56 and 40 bits, and pppd must get 128
//! and 40 respectively); each time the run
//! checks the daemon's session list, pings both ways and runs iperf3 both
//! ways. tcpdump in the guest records its `eth0` the whole time (on the
//! host side of the tap, frames the XDP program forwards in driver mode
//! never show); tshark then decodes the capture on the host and the run
//! fails on malformed frames and on warnings of the tunnel's own protocols
//! (see [`check_capture`]).
//!
//! Everything is torn down on success and failure: the processes started
//! here are killed when their guards drop (and get SIGKILL from the kernel
//! if xtask itself dies: `setpriv --pdeathsig`), the LAN namespace is
//! deleted, and the guest goes with its own guard. What a killed run left
//! behind is removed by the next one.

use std::{
    fmt::Write as _,
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::{
    guest::{
        self, BootOptions, GUEST_SHARE, Guest, HOST_ADDR, Mppe, PPP_SECRET, PPP_USER, PppLink, TAP,
        bench::{Comparison, Plan, Rate},
    },
    setup,
    util::{self, output},
};

/// `cargo xtask interop ...`
#[derive(Debug, clap::Args)]
pub struct InteropArgs {
    /// The smallest meaningful run (for CI): connect without MPPE, ping
    /// both ways, a 1-second iperf3; connect with MPPE-128, then with
    /// MPPE-40 only, ping both ways.
    #[arg(long)]
    pub short: bool,
    /// Seconds of each iperf3 run (full run and --bench).
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// Copy the capture, its tshark decode and the daemon log here.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Instead of the interop run: the guest comparison of kernel PPTP,
    /// our daemon's XDP and userspace paths, and pptpd + pptp-linux, all
    /// inside the guest.
    #[arg(long)]
    pub bench: bool,
    /// Write the figures of --bench as JSON here (implies --bench).
    #[arg(long, value_name = "PATH")]
    pub bench_json: Option<PathBuf>,
    /// Use this pptp-daemon binary instead of building the workspace's.
    #[arg(long, value_name = "PATH")]
    pub daemon: Option<PathBuf>,
    /// --bench: rounds of generator runs (each round measures every path
    /// of a phase once; the median and the range are reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub runs: u32,
    /// --bench: seconds of each generator run.
    #[arg(long, default_value_t = 1.5)]
    pub run_seconds: f64,
    /// --bench: kernel PPTP is measured with these numbers of sessions.
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 100, 1000])]
    pub kernel_sessions: Vec<u32>,
    /// --bench: skip the perf profiles of the forwarding vCPU.
    #[arg(long)]
    pub no_profile: bool,
    /// --bench: offer every path this many packets a second (the same
    /// load for all) instead of as many as the generator sends.
    #[arg(long, value_parser = clap::value_parser!(u32).range(100..=10_000_000))]
    pub pps: Option<u32>,
    /// --bench: only these phases (mppe: the MPPE phases, both
    /// directions, and the topology they need).
    #[arg(long, value_enum)]
    pub only: Option<BenchOnly>,
    /// --bench: start each client → network MPPE search for the highest
    /// rate without loss at this rate (default 5,000, doubling): one above
    /// every path's own shows each path overloaded first, then recovering.
    #[arg(long, value_parser = clap::value_parser!(u32).range(500..=4_000_000))]
    pub mppe_search_from: Option<u32>,
}

/// The phases `interop --bench --only` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchOnly {
    /// MPPE against kernel PPTP with ppp_mppe, both directions.
    Mppe,
}

impl InteropArgs {
    /// `--short` and nothing else, for the test suite.
    pub fn short() -> Self {
        Self {
            short: true,
            seconds: 10,
            keep: None,
            bench: false,
            bench_json: None,
            daemon: None,
            runs: 5,
            run_seconds: 1.5,
            kernel_sessions: vec![1, 100, 1000],
            no_profile: false,
            pps: None,
            only: None,
            mppe_search_from: None,
        }
    }
}

/// Prefix of what an interop run creates on the host (LAN namespace, work
/// folder), followed by xtask's process id.
const PREFIX: &str = "pxi-";
/// The daemon's LAN interface, in the tap namespace.
const SERVER_LAN_IF: &str = "pxil0";
/// The LAN host's interface, in the LAN namespace.
const LAN_HOST_IF: &str = "pxih0";
/// Address of [`SERVER_LAN_IF`].
const SERVER_LAN: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The LAN host: the far end of every ping and iperf3 run.
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// The LAN, routed through the tunnel in the guest.
const LAN_NET: &str = "198.18.1.0/24";
/// The daemon's tunnel address.
const TUNNEL_LOCAL: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The daemon's client pool, and the route the LAN host has to it.
const TUNNEL_POOL: &str = "198.19.0.2-198.19.0.254";
const TUNNEL_NET: &str = "198.19.0.0/24";

/// Host programs the run needs, with their Debian packages.
const HOST_TOOLS: &[(&str, &str)] = &[
    ("iperf3", "iperf3"),
    ("tshark", "tshark"),
    ("ethtool", "ethtool"),
];

/// Runs `cargo xtask interop`.
pub fn main(args: InteropArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    setup::ensure()?;
    util::require_root("the interop run (namespaces, qemu, XDP)")?;
    clean_stale();
    let daemon = match &args.daemon {
        Some(path) => path
            .canonicalize()
            .with_context(|| format!("--daemon {}", path.display()))?,
        None => build_daemon()?,
    };
    if args.bench || args.bench_json.is_some() {
        if args.daemon.is_none() {
            // The generators' relay (`pptp-lab relay`) runs next to it.
            util::step("cargo build --release -p pptp-lab");
            let status = util::cargo()
                .args([
                    "build",
                    "--release",
                    "--package",
                    "pptp-lab",
                    "--bin",
                    "pptp-lab",
                ])
                .status()
                .context("starting cargo")?;
            anyhow::ensure!(status.success(), "building pptp-lab failed ({status})");
        }
        return bench(&daemon, &args, started);
    }
    ensure_host_tools()?;
    let work = WorkDir::create()?;
    let result = interop(&daemon, &args, &work);
    let kept = args
        .keep
        .as_deref()
        .map(|dir| keep_files(&work, dir))
        .transpose();
    match result {
        Ok(report) => {
            kept?;
            print!("{}", report.table());
            eprintln!(
                "interop: {} run passed in {:.0} s (from start, including the build check and the guest boot)",
                if args.short { "short" } else { "full" },
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(err) => {
            // Keep the evidence of a failed run.
            let dir = work.keep();
            Err(err.context(format!(
                "interop failed after {:.0} s; capture and logs kept in {}",
                started.elapsed().as_secs_f64(),
                dir.display()
            )))
        }
    }
}

/// Builds pptp-daemon (release) and returns the path of the
/// daemon's binary.
pub fn build_daemon() -> anyhow::Result<PathBuf> {
    util::step("cargo build --release -p pptp-daemon");
    let out = util::cargo()
        .args([
            "build",
            "--release",
            "--package",
            "pptp-daemon",
            "--bin",
            "pptp-daemon",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("starting cargo")?;
    if !out.status.success() {
        bail!("building pptp-daemon failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines().rev() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let is_daemon = msg
            .get("target")
            .and_then(|t| t.get("name"))
            .and_then(Value::as_str)
            == Some("pptp-daemon");
        if let (true, Some(exe)) = (is_daemon, msg.get("executable").and_then(Value::as_str)) {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo did not name the pptp-daemon executable")
}

fn ensure_host_tools() -> anyhow::Result<()> {
    let mut missing: Vec<&str> = HOST_TOOLS
        .iter()
        .filter(|(tool, _)| output(Command::new("which").arg(tool)).is_none())
        .map(|(_, package)| *package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    util::step(&format!("installing {}", missing.join(" ")));
    let install = || {
        util::exec(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["-q", "-o", "DPkg::Lock::Timeout=600"])
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing),
        )
    };
    if install().is_err() {
        util::exec(Command::new("apt-get").args(["-q", "update"]))?;
        install()?;
    }
    Ok(())
}

/// What one dial-up of the guest gave.
#[derive(Debug, Clone)]
struct Session {
    mppe: Mppe,
    link: PppLink,
    /// The daemon's data path for it ("xdp", "userspace").
    path: String,
    /// The daemon's MPPE description, if any.
    mppe_desc: Option<String>,
    up: Option<Rate>,
    down: Option<Rate>,
    /// Frames the XDP program decapsulated / encapsulated during the session.
    xdp_frames: [u64; 2],
    /// The daemon's per-session counters at hang-up: rx and tx packets.
    packets: [u64; 2],
}

/// Result of a whole interop run.
struct Report {
    short: bool,
    seconds: u32,
    attached: Vec<String>,
    sessions: Vec<Session>,
    capture: CaptureReport,
    /// tcpdump's closing counts (captured, received, dropped).
    tcpdump: Vec<String>,
    guest_kernel: String,
    pptp_linux: String,
    pppd: String,
}

fn interop(daemon: &Path, args: &InteropArgs, work: &WorkDir) -> anyhow::Result<Report> {
    let guest = Guest::boot(&BootOptions::default())?;
    let lan = LanNamespace::create(&guest)?;

    util::step("pptp-daemon on the host side of the tap");
    let socket = work.path().join("ctl.sock");
    let secrets = work.path().join("chap-secrets");
    fs::write(
        &secrets,
        format!("# client\tserver\tsecret\taddresses\n{PPP_USER}\t*\t{PPP_SECRET}\t*\n"),
    )?;
    let config = work.path().join("pptp.toml");
    fs::write(&config, daemon_config(&socket, &secrets))?;
    let log = work.path().join("daemon.log");
    let mut server = Proc::spawn(
        "pptp-daemon",
        guest
            .netns_command("setpriv")
            .args(["--pdeathsig", "KILL"])
            .arg(daemon)
            .arg("--config")
            .arg(&config)
            .args(["--log-level", "debug"]),
        &log,
    )?;
    let ctl = Ctl {
        bin: daemon,
        socket: &socket,
    };
    wait_until(
        Duration::from_secs(30),
        "the daemon's control socket",
        || {
            server.check_alive()?;
            Ok(ctl.sessions().is_ok())
        },
    )
    .with_context(|| format!("the daemon did not start{}", log_tail(&log)))?;
    let attached: Vec<String> = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("XDP program attached") || l.contains("falling back"))
        .map(|l| strip_ansi(l).trim().to_owned())
        .collect();
    for line in &attached {
        eprintln!("daemon: {line}");
    }

    let _iperf = Proc::spawn(
        "iperf3 server",
        lan.command("setpriv").args([
            "--pdeathsig",
            "KILL",
            "iperf3",
            "-s",
            "-B",
            &LAN_HOST.to_string(),
        ]),
        &work.path().join("iperf3-server.log"),
    )?;

    // The capture runs in the guest, on eth0: frames the XDP program
    // handles in driver mode never become socket buffers on the tap, so
    // a capture on the host side of the tap sees only what the daemon's
    // userspace and the host stack send and receive.
    util::step("capture: tcpdump on the guest's eth0");
    guest.lab(&["capture-start", "-", "eth0"], Duration::from_secs(60))?;
    let pcap = work.path().join("interop.pcap");
    let runs: &[Mppe] = &[Mppe::None, Mppe::Required, Mppe::Required40];
    let mut sessions = Vec::new();
    let mut result = Ok(());
    for (unit, &mppe) in (0u32..).zip(runs) {
        let session = dial(&guest, &lan, &ctl, mppe, unit, args);
        result = server
            .check_alive()
            .and(session.map(|s| sessions.push(s)))
            .with_context(|| format!("daemon log{}", log_tail(&log)));
        if result.is_err() {
            break;
        }
    }
    util::step("stopping the capture and the daemon");
    // The capture also serves a failed run; stop it in any case.
    let stopped = guest
        .lab(
            &["capture-stop", &format!("{GUEST_SHARE}/interop.pcap")],
            Duration::from_secs(120),
        )
        .and_then(|counts| {
            fs::rename(guest.share().join("interop.pcap"), &pcap)
                .or_else(|_| fs::copy(guest.share().join("interop.pcap"), &pcap).map(drop))?;
            Ok(counts)
        });
    result?;
    let tcpdump = stopped?;
    let tcpdump: Vec<String> = tcpdump.lines().map(|l| l.trim().to_owned()).collect();
    eprintln!("tcpdump: {}", tcpdump.join(", "));
    let status = server.terminate(Duration::from_secs(20))?;
    if !status.success() {
        bail!(
            "the daemon exited with {status} on SIGTERM{}",
            log_tail(&log)
        );
    }
    let text = strip_ansi(&fs::read_to_string(&log).unwrap_or_default());
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("panicked"))
        .collect();
    if !bad.is_empty() {
        bail!("the daemon logged errors:\n{}", bad.join("\n"));
    }

    util::step("tshark: decoding the capture");
    let capture = check_capture(&pcap, work.path())?;
    print!("{}", capture.summary());
    if !capture.failures.is_empty() {
        bail!(
            "tshark found problems in the capture:\n{}",
            capture.failures.join("\n")
        );
    }

    let version = |cmd: &str| -> String {
        guest
            .exec(cmd)
            .map(|o| format!("{}{}", o.stdout, o.stderr))
            .unwrap_or_default()
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let report = Report {
        short: args.short,
        seconds: args.seconds,
        attached,
        sessions,
        capture,
        tcpdump,
        guest_kernel: version("uname -r"),
        pptp_linux: version("dpkg-query -W -f='${Version}' pptp-linux"),
        pppd: version("dpkg-query -W -f='${Version}' ppp"),
    };
    drop(lan);
    guest.shutdown();
    Ok(report)
}

/// One dial-up from the guest: connect, check the session, ping and
/// iperf3 both ways, hang up.
fn dial(
    guest: &Guest,
    lan: &LanNamespace,
    ctl: &Ctl,
    mppe: Mppe,
    unit: u32,
    args: &InteropArgs,
) -> anyhow::Result<Session> {
    let name = match mppe {
        Mppe::None => "without MPPE",
        Mppe::Required => "with require-mppe-128",
        Mppe::Required40 => "with require-mppe-40 nomppe-128",
    };
    util::step(&format!(
        "pptp-linux + pppd in the guest -> our daemon, MS-CHAPv2, {name}"
    ));
    let stats_before = ctl.stats()?;
    let link = guest.pptp_connect(HOST_ADDR, mppe, unit)?;
    eprintln!(
        "{}: {} -> {} (up in {:.2} s)",
        link.iface,
        link.local,
        link.peer,
        link.setup.as_secs_f64()
    );
    let result = (|| {
        if link.peer != TUNNEL_LOCAL {
            bail!("IPCP gave the peer {}, expected {TUNNEL_LOCAL}", link.peer);
        }
        guest.lab(
            &["route", "-", LAN_NET, &link.iface],
            Duration::from_secs(30),
        )?;

        // The daemon's view of the session.
        let info = wait_for_session(ctl, link.local)?;
        let path = info.get("path").and_then(Value::as_str).unwrap_or_default();
        let mppe_desc = info.get("mppe").and_then(Value::as_str).map(str::to_owned);
        let user = info.get("user").and_then(Value::as_str).unwrap_or_default();
        eprintln!(
            "daemon: session of {user} at {}, path {path}, MPPE {}",
            link.local,
            mppe_desc.as_deref().unwrap_or("none")
        );
        // Stateless MPPE is received and sent in XDP too (issue 14).
        let expected = "xdp";
        if path != expected {
            bail!("the session is on the {path} path, expected {expected}");
        }
        if user != PPP_USER {
            bail!("the session's user is {user:?}, expected {PPP_USER}");
        }
        let expected_mppe = match mppe {
            Mppe::None => None,
            Mppe::Required => Some("128-bit stateless"),
            // The daemon offers 128, 56 and 40; pppd Naks it to 40.
            Mppe::Required40 => Some("40-bit stateless"),
        };
        if mppe_desc.as_deref() != expected_mppe {
            bail!("the session's MPPE is {mppe_desc:?}, expected {name}");
        }

        // Ping both ways.
        util::step(&format!(
            "ping {} <-> {LAN_HOST} through the tunnel",
            link.local
        ));
        guest
            .run_timeout(
                &format!("ping -c 3 -i 0.3 -W 5 {LAN_HOST}"),
                Duration::from_secs(60),
            )
            .context("ping from the guest to the LAN host")?;
        quiet(lan.command("ping").args([
            "-q",
            "-c",
            "3",
            "-i",
            "0.3",
            "-W",
            "5",
            &link.local.to_string(),
        ]))
        .context("ping from the LAN host to the guest")?;

        // iperf3 both ways (the short run: one second, guest to LAN only;
        // none with MPPE).
        let (seconds, directions): (u32, &[&str]) = match (args.short, mppe) {
            (false, _) => (args.seconds, &["up", "down"]),
            (true, Mppe::None) => (1, &["up"]),
            (true, Mppe::Required | Mppe::Required40) => (1, &[]),
        };
        let mut rates = [None, None];
        for (i, dir) in directions.iter().enumerate() {
            let what = if *dir == "up" {
                format!("{} -> {LAN_HOST}", link.local)
            } else {
                format!("{LAN_HOST} -> {}", link.local)
            };
            util::step(&format!("iperf3 {what}, {seconds} s"));
            let out = guest.lab(
                &[
                    "iperf-client",
                    "-",
                    &LAN_HOST.to_string(),
                    &seconds.to_string(),
                    dir,
                ],
                Duration::from_secs(u64::from(seconds) + 90),
            )?;
            let rate = parse_rate(&out)?;
            eprintln!(
                "{what}: {:.1} Mbit/s ({} retransmissions)",
                rate.mbits, rate.retransmits
            );
            if let Some(slot) = rates.get_mut(i) {
                *slot = Some(rate);
            }
        }

        let stats_after = ctl.stats()?;
        let delta = |name: &str| stat(&stats_after, name).saturating_sub(stat(&stats_before, name));
        let xdp_frames = [delta("xdp_gre_decapsulated"), delta("xdp_encapsulated")];
        let decrypted = delta("xdp_mppe_decrypted");
        let encrypted = delta("xdp_mppe_encrypted");
        eprintln!(
            "XDP during the session: {} frames decapsulated ({decrypted} of them decrypted), {} encapsulated ({encrypted} of them encrypted)",
            xdp_frames[0], xdp_frames[1]
        );
        match mppe {
            // Both directions went through the kernel at least for the pings.
            Mppe::None if xdp_frames.iter().any(|&n| n < 3) => {
                bail!("the session is on the XDP path but XDP forwarded {xdp_frames:?} frames")
            }
            // pppd's frames were decrypted in the kernel, and the frames to
            // pppd encrypted there (which ppp_mppe then decrypted: the
            // pings and iperf3 above passed).
            Mppe::Required | Mppe::Required40 if decrypted < 3 || encrypted < 3 => {
                bail!(
                    "an MPPE session: XDP decrypted {decrypted} frames and encrypted {encrypted} (at least 3 each expected)"
                )
            }
            _ => {}
        }
        let info = wait_for_session(ctl, link.local)?;
        let counter = |k: &str| info.get(k).and_then(Value::as_u64).unwrap_or(0);
        let packets = [counter("rx_packets"), counter("tx_packets")];
        if packets.iter().any(|&n| n < 3) {
            bail!("the session's counters did not move: rx/tx packets {packets:?}");
        }
        Ok(Session {
            mppe,
            link: link.clone(),
            path: path.to_owned(),
            mppe_desc,
            up: rates[0],
            down: rates[1],
            xdp_frames,
            packets,
        })
    })();
    // Hang up in any case, then check the daemon let go of the session.
    let hangup = guest.pptp_disconnect(unit);
    let session = result?;
    hangup?;
    wait_until(
        Duration::from_secs(30),
        "the daemon to drop the session",
        || Ok(ctl.sessions()?.is_empty()),
    )?;
    Ok(session)
}

/// The daemon's configuration for the interop run.
fn daemon_config(socket: &Path, secrets: &Path) -> String {
    format!(
        r#"[server]
listen = "{HOST_ADDR}:1723"
hostname = "pptp-interop"
control_socket = "{socket}"

[dataplane]
interface = "{TAP}"
lan_interfaces = ["{SERVER_LAN_IF}"]
xdp_mode = "auto"
tun_name = "pptp0"

[ppp]
local_address = "{TUNNEL_LOCAL}"
pool = ["{TUNNEL_POOL}"]
dns = ["{LAN_HOST}"]

[auth]
secrets = "{secrets}"

[mppe]
policy = "allow"
key_lengths = [128, 56, 40]
"#,
        socket = socket.display(),
        secrets = secrets.display(),
    )
}

/// Waits until the daemon lists a session for `client` that finished
/// negotiating, and returns it.
fn wait_for_session(ctl: &Ctl, client: Ipv4Addr) -> anyhow::Result<Value> {
    let mut found = None;
    wait_until(
        Duration::from_secs(15),
        "the session in `pptp-daemon sessions`",
        || {
            let sessions = ctl.sessions()?;
            if sessions.len() > 1 {
                bail!("the daemon lists {} sessions, expected one", sessions.len());
            }
            found = sessions.into_iter().find(|s| {
                s.get("client_addr").and_then(Value::as_str) == Some(&client.to_string())
                    && s.get("path").and_then(Value::as_str) != Some("negotiating")
            });
            Ok(found.is_some())
        },
    )?;
    found.context("session vanished")
}

fn parse_rate(out: &str) -> anyhow::Result<Rate> {
    let mut words = out.split_whitespace();
    let rate = (|| {
        Some(Rate {
            mbits: words.next()?.parse().ok()?,
            retransmits: words.next()?.parse().ok()?,
        })
    })();
    rate.with_context(|| format!("iperf3 gave {out:?}"))
}

fn stat(stats: &[(String, u64)], name: &str) -> u64 {
    stats.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
}

/// `pptp-daemon sessions|stats --socket S --json`.
struct Ctl<'a> {
    bin: &'a Path,
    socket: &'a Path,
}

impl Ctl<'_> {
    fn query(&self, what: &str) -> anyhow::Result<Value> {
        let out = Command::new(self.bin)
            .arg(what)
            .arg("--socket")
            .arg(self.socket)
            .arg("--json")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "pptp-daemon {what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn sessions(&self) -> anyhow::Result<Vec<Value>> {
        let answer = self.query("sessions")?;
        Ok(answer
            .get("sessions")
            .and_then(Value::as_array)
            .context("no session list in the answer")?
            .to_vec())
    }

    fn stats(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let answer = self.query("stats")?;
        let counters = answer
            .get("counters")
            .and_then(Value::as_array)
            .context("no counters in the answer")?;
        Ok(counters
            .iter()
            .filter_map(|pair| {
                let pair = pair.as_array()?;
                Some((pair.first()?.as_str()?.to_owned(), pair.get(1)?.as_u64()?))
            })
            .collect())
    }
}

/// The LAN host: a namespace joined to the tap namespace by a veth.
struct LanNamespace {
    name: String,
}

impl LanNamespace {
    fn create(guest: &Guest) -> anyhow::Result<LanNamespace> {
        util::step(&format!(
            "LAN host {LAN_HOST} behind {SERVER_LAN} ({SERVER_LAN_IF} in {})",
            guest.netns()
        ));
        let lan = LanNamespace {
            name: format!("{PREFIX}{}", std::process::id()),
        };
        let ns = guest.netns();
        let ip = |args: &[&str]| util::exec(Command::new("ip").args(args));
        ip(&["netns", "add", &lan.name])?;
        ip(&[
            "link",
            "add",
            SERVER_LAN_IF,
            "netns",
            ns,
            "type",
            "veth",
            "peer",
            "name",
            LAN_HOST_IF,
            "netns",
            &lan.name,
        ])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{SERVER_LAN}/24"),
            "dev",
            SERVER_LAN_IF,
        ])?;
        ip(&[
            "-n",
            &lan.name,
            "addr",
            "add",
            &format!("{LAN_HOST}/24"),
            "dev",
            LAN_HOST_IF,
        ])?;
        for (netns, iface) in [
            (ns, "lo"),
            (ns, SERVER_LAN_IF),
            (&lan.name, "lo"),
            (&lan.name, LAN_HOST_IF),
        ] {
            ip(&["-n", netns, "link", "set", iface, "up"])?;
        }
        ip(&[
            "-n",
            &lan.name,
            "route",
            "add",
            TUNNEL_NET,
            "via",
            &SERVER_LAN.to_string(),
        ])?;
        // The daemon's namespace forwards, and decapsulated packets arrive
        // on the tap with sources routed via pptp0: no reverse-path filter.
        let sysctl = |netns: &str, keys: &[String]| {
            util::exec(
                Command::new("ip")
                    .args(["netns", "exec", netns, "sysctl", "-qw"])
                    .args(keys),
            )
        };
        let mut keys = vec!["net.ipv4.ip_forward=1".to_owned()];
        for conf in ["all", "default", TAP, SERVER_LAN_IF] {
            keys.push(format!("net.ipv4.conf.{conf}.rp_filter=0"));
        }
        sysctl(ns, &keys)?;
        // XDP on the tap redirects decapsulated frames into pxil0; a veth
        // takes them only when its peer runs NAPI (an XDP program or GRO).
        // XDP on pxil0 encapsulates what pxih0 sends, so pxih0 must send
        // finished checksums (see pptp_daemon::dataplane::veth::set_tx_checksum).
        quiet(Command::new("ip").args([
            "netns",
            "exec",
            &lan.name,
            "ethtool",
            "-K",
            LAN_HOST_IF,
            "gro",
            "on",
            "tx",
            "off",
        ]))?;
        quiet(
            lan.command("ping")
                .args(["-q", "-c", "1", "-W", "5", &SERVER_LAN.to_string()]),
        )?;
        Ok(lan)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Drop for LanNamespace {
    fn drop(&mut self) {
        delete_netns(&self.name);
    }
}

/// Runs a command with its output captured; a failure shows the output.
fn quiet(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {cmd:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

fn delete_netns(name: &str) {
    for pid in output(Command::new("ip").args(["netns", "pids", name]))
        .unwrap_or_default()
        .split_whitespace()
    {
        let _ = output(Command::new("kill").args(["-KILL", pid]));
    }
    let _ = output(Command::new("ip").args(["netns", "del", name]));
}

/// Removes what interop runs of processes that no longer exist left
/// behind: LAN namespaces (and whatever still runs in them) and folders.
fn clean_stale() {
    let dead = |name: &str| {
        name.strip_prefix(PREFIX)
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    };
    for entry in fs::read_dir("/run/netns").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if dead(&name) {
            delete_netns(&name);
        }
    }
    for entry in fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        if dead(&entry.file_name().to_string_lossy()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The run's folder (`/tmp/pxi-<pid>`): configuration, logs, capture.
/// Removed on drop unless [`WorkDir::keep`] was called.
struct WorkDir {
    path: PathBuf,
    keep: std::cell::Cell<bool>,
}

impl WorkDir {
    fn create() -> anyhow::Result<WorkDir> {
        let path = std::env::temp_dir().join(format!("{PREFIX}{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir {
            path,
            keep: std::cell::Cell::new(false),
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the folder in place; returns its path.
    fn keep(&self) -> &Path {
        self.keep.set(true);
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep.get() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn keep_files(work: &WorkDir, dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in ["interop.pcap", "tshark.txt", "daemon.log", "pptp.toml"] {
        let from = work.path().join(name);
        if from.exists() {
            fs::copy(&from, dir.join(name))
                .with_context(|| format!("copying {}", from.display()))?;
        }
    }
    eprintln!("interop: capture and logs copied to {}", dir.display());
    Ok(())
}

/// A process started here, killed when dropped.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr to `log`.
    fn spawn(name: &str, cmd: &mut Command, log: &Path) -> anyhow::Result<Proc> {
        let file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
        })
    }

    /// Fails if the process has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status})", self.name);
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after `timeout`; returns the exit status.
    fn terminate(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let _ = output(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait()?;
        bail!("{} did not stop within {} s", self.name, timeout.as_secs())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.terminate(Duration::from_secs(5));
    }
}

/// Polls `ready` every 100 ms until it says yes, fails, or time is up.
/// Polls `ready` every 100 ms until it says yes or time is up; an error
/// from `ready` ends the wait at once.
fn wait_until(
    timeout: Duration,
    what: &str,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !ready().with_context(|| format!("waiting for {what}"))? {
        if Instant::now() > deadline {
            bail!("timed out after {} s waiting for {what}", timeout.as_secs());
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn log_tail(path: &Path) -> String {
    let text = strip_ansi(&fs::read_to_string(path).unwrap_or_default());
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines
        .get(lines.len().saturating_sub(40)..)
        .unwrap_or_default();
    format!("\nend of {}:\n{}", path.display(), tail.join("\n"))
}

/// Removes ANSI colour sequences (ESC [ ... m) from log text.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
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

// ---------------------------------------------------------------------------
// The capture check.

/// Protocols (tshark's names in `-z expert`) of the tunnel itself: a
/// warning of one of them fails the run. Warnings of the traffic inside
/// (TCP retransmissions, duplicate acks, window full, previous segment not
/// captured) describe iperf3's congestion control, not the tunnel, and are
/// only listed.
const TUNNEL_PROTOCOLS: &[&str] = &["IPv4", "GRE", "PPTP"];

/// What tshark made of the capture.
struct CaptureReport {
    frames: u64,
    /// Frames per protocol of interest (`frame.protocols` names).
    counts: Vec<(&'static str, u64)>,
    /// Entries of `-z expert` at warning or above: (severity, group,
    /// protocol, summary, count).
    expert: Vec<ExpertEntry>,
    failures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ExpertEntry {
    severity: String,
    group: String,
    protocol: String,
    summary: String,
    count: u64,
}

/// Protocols whose frames the capture must hold (`frame.protocols`
/// names): the control connection, LCP, MS-CHAPv2, IPCP, CCP (MPPE run)
/// and data frames (PPP in enhanced GRE).
const EXPECTED_PROTOCOLS: &[&str] = &["pptp", "gre", "ppp", "lcp", "chap", "ipcp", "ccp"];

/// Decodes the capture with tshark: fails on malformed frames and on any
/// error, and on warnings of the tunnel's own protocols (PPTP, GRE, PPP and
/// its control protocols, outer or inner IPv4 with header checksums
/// checked); counts the frames of each tunnel protocol and checks the
/// negotiation is there. Writes tshark's view to `work/tshark.txt`.
///
/// Why `-z expert` and not one display filter: expert items are not tied to
/// a layer in display filters, so `gre && _ws.expert.severity >= warning`
/// also matches every TCP retransmission inside the tunnel. The expert
/// statistics name the protocol that raised each item.
fn check_capture(pcap: &Path, work: &Path) -> anyhow::Result<CaptureReport> {
    let tshark = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("tshark")
            .args(["-n", "-o", "ip.check_checksum:TRUE"])
            // iperf3's streams are random bytes: left undecoded, so that no
            // heuristic dissector takes them for its protocol (Thrift did,
            // then reported reassembly errors on retransmitted segments).
            .args(["-d", "tcp.port==5201,data", "-r"])
            .arg(pcap)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("starting tshark")?;
        if !out.status.success() {
            bail!(
                "tshark {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let protocols = tshark(&["-T", "fields", "-e", "frame.protocols"])?;
    let mut frames = 0;
    let mut counts: Vec<(&'static str, u64)> = EXPECTED_PROTOCOLS.iter().map(|p| (*p, 0)).collect();
    for line in protocols.lines() {
        frames += 1;
        let layers: Vec<&str> = line.trim().split(':').collect();
        for (name, count) in &mut counts {
            if layers.contains(name) {
                *count += 1;
            }
        }
    }
    let expert_text = tshark(&["-q", "-z", "expert,warn"])?;
    let expert = parse_expert(&expert_text);
    let mut failures = Vec::new();
    for e in &expert {
        let tunnel =
            TUNNEL_PROTOCOLS.contains(&e.protocol.as_str()) || e.protocol.starts_with("PPP");
        if e.severity == "Error" || e.group == "Malformed" || tunnel {
            failures.push(format!(
                "  {} {} {}: {} ({} frames)",
                e.severity, e.group, e.protocol, e.summary, e.count
            ));
        }
    }
    for (name, count) in &counts {
        if *count == 0 {
            failures.push(format!("  no {name} frame in the capture"));
        }
    }
    let mut decode = String::new();
    if !failures.is_empty() {
        // Show the frames concerned.
        decode = tshark(&[
            "-Y",
            "_ws.malformed || _ws.expert.severity >= warning",
            "-V",
        ])
        .unwrap_or_default();
    }
    let tunnel_frames = tshark(&["-Y", "pptp || lcp || chap || ipcp || ccp"]).unwrap_or_default();
    fs::write(
        work.join("tshark.txt"),
        format!(
            "# tshark -z expert,warn\n{expert_text}\n# control frames\n{tunnel_frames}\n{decode}"
        ),
    )?;
    Ok(CaptureReport {
        frames,
        counts,
        expert,
        failures,
    })
}

/// Parses `tshark -q -z expert,...`: sections `Errors (n)`, `Warnings (n)`
/// and so on, each a table `Frequency Group Protocol Summary`.
fn parse_expert(text: &str) -> Vec<ExpertEntry> {
    let mut entries = Vec::new();
    let mut severity = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some((head, _)) = trimmed.split_once(" (") {
            // tshark's section names (epan/expert.c severities).
            let name = match head {
                "Errors" => Some("Error"),
                "Warns" | "Warnings" => Some("Warning"),
                "Notes" => Some("Note"),
                "Chats" => Some("Chat"),
                "Comments" => Some("Comment"),
                _ => None,
            };
            if let Some(name) = name {
                severity = name.to_owned();
                continue;
            }
        }
        let mut words = trimmed.split_whitespace();
        let Some(count) = words.next().and_then(|w| w.parse::<u64>().ok()) else {
            continue;
        };
        // The table's columns are padded with spaces; a summary and some
        // protocol names have spaces too. Columns are separated by at
        // least two spaces.
        let columns: Vec<&str> = trimmed
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if let [_, group, protocol, summary @ ..] = columns.as_slice()
            && !severity.is_empty()
        {
            entries.push(ExpertEntry {
                severity: severity.clone(),
                group: (*group).to_owned(),
                protocol: (*protocol).to_owned(),
                summary: summary.join("  "),
                count,
            });
        }
    }
    entries
}

impl CaptureReport {
    fn summary(&self) -> String {
        let mut s = String::new();
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        let _ = writeln!(
            s,
            "capture: {} frames; frames holding {}",
            self.frames,
            counts.join(", ")
        );
        if self.expert.is_empty() {
            let _ = writeln!(s, "capture: tshark reports no warning or error");
        }
        for e in &self.expert {
            let _ = writeln!(
                s,
                "capture: tshark {} ({} {}): {} x{}",
                e.severity, e.group, e.protocol, e.summary, e.count
            );
        }
        s
    }
}

impl Report {
    fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "\nInterop: pptp-linux {} + pppd {} (guest, Linux {}) -> pptp-daemon (host, namespace of the tap)",
            self.pptp_linux, self.pppd, self.guest_kernel
        );
        for line in &self.attached {
            let _ = writeln!(t, "  {line}");
        }
        let secs = if self.short { 1 } else { self.seconds };
        let _ = writeln!(
            t,
            "  {:<36} {:>7} {:<10} {:>5} {:>18} {:>18} {:>15} {:>17}",
            "session",
            "connect",
            "path",
            "ping",
            format!("up Mbit/s ({secs} s)"),
            "down Mbit/s",
            "XDP decap/encap",
            "daemon rx/tx pkts"
        );
        for s in &self.sessions {
            let rate = |r: Option<Rate>| {
                r.map_or("-".to_owned(), |r| {
                    format!("{:.1} ({} rtx)", r.mbits, r.retransmits)
                })
            };
            let name = match s.mppe {
                Mppe::None => "MS-CHAPv2".to_owned(),
                Mppe::Required | Mppe::Required40 => {
                    format!("MS-CHAPv2 + MPPE {}", s.mppe_desc.as_deref().unwrap_or("?"))
                }
            };
            let _ = writeln!(
                t,
                "  {:<36} {:>6.2}s {:<10} {:>5} {:>18} {:>18} {:>15} {:>17}",
                name,
                s.link.setup.as_secs_f64(),
                s.path,
                "both",
                rate(s.up),
                rate(s.down),
                format!("{}/{}", s.xdp_frames[0], s.xdp_frames[1]),
                format!("{}/{}", s.packets[0], s.packets[1]),
            );
        }
        let _ = writeln!(
            t,
            "  capture (guest eth0): {} frames, no malformed frame, no tunnel-protocol warning; tcpdump: {}",
            self.capture.frames,
            self.tcpdump.join(", ")
        );
        t
    }
}

// ---------------------------------------------------------------------------
// The guest comparison.

/// The guest comparison in a guest of its own (booted here, stopped when
/// done): kernel PPTP, our daemon's XDP and userspace paths (`daemon` is
/// copied into the guest) and pptpd + pptp-linux, iperf3 and the
/// forwarding CPU as `plan` says. See [`guest::bench::daemon_comparison`].
/// Needs root, and `pptp-lab` next to `daemon` (the generators' relay).
pub fn guest_comparison(daemon: &Path, plan: &Plan) -> anyhow::Result<Comparison> {
    let options = BootOptions::default();
    let guest = Guest::boot(&options)?;
    // vCPU 1 forwards (lab.sh pin): a host CPU of its own, so that the
    // host does not take it away while frames arrive.
    let pin = guest
        .pin_on_host(1)
        .context("pinning the guest's vCPU 1 on the host")?;
    let figures = guest::bench::daemon_comparison(&guest, &options, daemon, plan);
    drop(pin);
    guest.shutdown();
    figures
}

fn bench(daemon: &Path, args: &InteropArgs, started: Instant) -> anyhow::Result<()> {
    let plan = Plan {
        iperf_seconds: args.seconds,
        runs: args.runs,
        run_seconds: args.run_seconds,
        kernel_sessions: args.kernel_sessions.clone(),
        profile: !args.no_profile,
        pps: args.pps,
        only_mppe: args.only == Some(BenchOnly::Mppe),
        mppe_search_from: args.mppe_search_from,
    };
    let figures = guest_comparison(daemon, &plan)?;
    print!("{}", figures.table());
    let json: Value = serde_json::from_str(&figures.json())?;
    println!("\n{}", crate::bench::guest_table(&json));
    if let Some(path) = &args.bench_json {
        fs::write(path, figures.json()).with_context(|| format!("writing {}", path.display()))?;
        let svg = path.with_extension("svg");
        fs::write(&svg, crate::bench::guest_svg(&json)?)
            .with_context(|| format!("writing {}", svg.display()))?;
        eprintln!(
            "interop: figures written to {} and {}",
            path.display(),
            svg.display()
        );
    }
    eprintln!(
        "interop: guest comparison done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if !figures.unavailable.is_empty() {
        let missing: Vec<&str> = figures.unavailable.iter().map(|(k, _)| k.label()).collect();
        bail!(
            "the guest comparison is incomplete: {} not measured (see above)",
            missing.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expert_table() {
        let text = "\n=================================\n\
Errors (1)\n=============\n   Frequency      Group           Protocol  Summary\n           1  Malformed               PPTP  Malformed Packet (Exception occurred)\n\n\
Warns (2)\n=============\n   Frequency      Group           Protocol  Summary\n           5   Sequence                TCP  Previous segment(s) not captured (common at capture start)\n           2   Protocol           PPP LCP  Bad length\n\n";
        let e = parse_expert(text);
        assert_eq!(
            e,
            [
                ExpertEntry {
                    severity: "Error".into(),
                    group: "Malformed".into(),
                    protocol: "PPTP".into(),
                    summary: "Malformed Packet (Exception occurred)".into(),
                    count: 1
                },
                ExpertEntry {
                    severity: "Warning".into(),
                    group: "Sequence".into(),
                    protocol: "TCP".into(),
                    summary: "Previous segment(s) not captured (common at capture start)".into(),
                    count: 5
                },
                ExpertEntry {
                    severity: "Warning".into(),
                    group: "Protocol".into(),
                    protocol: "PPP LCP".into(),
                    summary: "Bad length".into(),
                    count: 2
                },
            ]
        );
    }

    #[test]
    fn ansi_colours() {
        assert_eq!(
            strip_ansi("\u{1b}[2mts\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"),
            "ts  INFO x"
        );
    }
}
