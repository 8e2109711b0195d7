//! The test topology shared by the end-to-end tests, `cargo xtask lab` and
//! the bench: three network namespaces joined by veth pairs, addresses from
//! 198.18.0.0/15 only.
//!
//! ```text
//!  client ns            server ns                      lan ns
//!  c0 198.18.0.2/24 --- s0 198.18.0.1/24   l0 198.18.1.1/24 --- h0 198.18.1.2/24
//!  (pptp clients)       (pptp-daemon, XDP on s0 and l0)          (a LAN host)
//! ```
//!
//! Tunnel addresses come from the daemon's pool (198.19.0.0/16 in the lab
//! configuration). The LAN host routes 198.19.0.0/16 via the server.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use pptp_daemon::server::ctl::{self, Request, Response, SessionInfo};
use pptp_netns::{self as netns, Netns, NetnsError};

use crate::xdp::{AuxPrograms, PASS_PROGRAM};

pub const SERVER_WAN: &str = "198.18.0.1";
pub const CLIENT_WAN: &str = "198.18.0.2";
pub const SERVER_LAN: &str = "198.18.1.1";
pub const LAN_HOST: &str = "198.18.1.2";
pub const TUNNEL_LOCAL: &str = "198.19.0.1";
/// Routed to the server from the LAN host.
pub const TUNNEL_NET: &str = "198.19.0.0/16";
/// The daemon's pool (room for 16382 sessions).
pub const TUNNEL_POOL: &str = "198.19.64.0/18";

/// The three namespaces, deleted on drop.
pub struct Topology {
    pub client: Netns,
    pub server: Netns,
    pub lan: Netns,
}

impl Topology {
    pub fn new() -> Result<Self, NetnsError> {
        Self::with_lan_queues(1)
    }

    /// [`Topology::new`] with `queues` queues on the LAN link (l0 and h0):
    /// the LAN host's flows spread over that many receive queues of l0,
    /// whose XDP then runs on several CPUs at once, as on a multi-queue
    /// NIC.
    pub fn with_lan_queues(queues: u32) -> Result<Self, NetnsError> {
        let client = Netns::new("pxcl")?;
        let server = Netns::new("pxsv")?;
        let lan = Netns::new("pxln")?;
        netns::veth(&client, "c0", &server, "s0")?;
        if queues == 1 {
            netns::veth(&server, "l0", &lan, "h0")?;
        } else {
            netns::veth_queues(&server, "l0", &lan, "h0", queues)?;
        }
        client.ip(&["addr", "add", &format!("{CLIENT_WAN}/24"), "dev", "c0"])?;
        server.ip(&["addr", "add", &format!("{SERVER_WAN}/24"), "dev", "s0"])?;
        server.ip(&["addr", "add", &format!("{SERVER_LAN}/24"), "dev", "l0"])?;
        lan.ip(&["addr", "add", &format!("{LAN_HOST}/24"), "dev", "h0"])?;
        lan.ip(&["route", "add", TUNNEL_NET, "via", SERVER_LAN])?;
        for ns in [&client, &server, &lan] {
            // Decapsulated packets enter the server from s0 with client
            // sources that route via pptp0: no reverse-path filtering.
            let _ = netns::run(
                ns.command("sysctl")
                    .args(["-qw", "net.ipv4.conf.all.rp_filter=0"]),
            );
            let _ = netns::run(
                ns.command("sysctl")
                    .args(["-qw", "net.ipv4.conf.default.rp_filter=0"]),
            );
        }
        netns::run(
            server
                .command("sysctl")
                .args(["-qw", "net.ipv4.ip_forward=1"]),
        )?;
        // Finished checksums on what the hosts send (see set_tx_checksum).
        for (ns, iface) in [
            (&client, "c0"),
            (&lan, "h0"),
            (&server, "s0"),
            (&server, "l0"),
        ] {
            ns.run(|| pptp_daemon::dataplane::veth::set_tx_checksum(iface, false))?
                .map_err(|e| NetnsError::Command {
                    command: format!("ETHTOOL_STXCSUM off on {iface}"),
                    stderr: e.to_string(),
                })?;
        }
        Ok(Self {
            client,
            server,
            lan,
        })
    }

    /// The daemon configuration for the lab: WAN s0 (XDP there and on l0),
    /// the pool, `secrets` as the chap-secrets file.
    pub fn server_config(
        &self,
        secrets: &Path,
        control_socket: &Path,
        xdp: bool,
        mppe: &str,
        forwarding: &str,
    ) -> String {
        format!(
            r#"[server]
listen = "{SERVER_WAN}:1723"
hostname = "pptp-lab"
control_socket = "{sock}"

[dataplane]
interface = "s0"
lan_interfaces = ["l0"]
xdp_mode = "{mode}"
forwarding = "{forwarding}"
tun_name = "pptp0"

[ppp]
local_address = "{TUNNEL_LOCAL}"
pool = ["{TUNNEL_POOL}"]
dns = ["{LAN_HOST}"]
lcp_echo_interval_secs = 5
lcp_echo_failures = 3

[auth]
secrets = "{secrets}"
failure_delay_ms = 100

[mppe]
policy = "{mppe}"
key_lengths = [128, 40]

[control]
echo_interval_secs = 5
echo_failures = 3
"#,
            sock = control_socket.display(),
            secrets = secrets.display(),
            mode = if xdp { "driver" } else { "off" },
        )
    }
}

/// Waits until the file `log` contains `ready` (a server fixture's
/// "ready" line), polling every 50 ms; `Err` says why not: `child`
/// exited, or `timeout` passed.
pub fn wait_for_log(
    child: &mut Child,
    log: &Path,
    ready: &str,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read(log).unwrap_or_default();
        if String::from_utf8_lossy(&text).contains(ready) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}"));
        }
        if Instant::now() > deadline {
            return Err(format!("not ready within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process that is killed on drop, with its output lines readable.
pub struct Process {
    pub child: Child,
    name: String,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Process {
    /// Starts `program args` inside `ns`, stdout read line by line in the
    /// background, stderr to a log file when `log` is given.
    pub fn spawn(
        ns: &Netns,
        name: &str,
        program: &Path,
        args: &[&str],
        log: Option<&Path>,
    ) -> std::io::Result<Self> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name()])
            .arg(program)
            .args(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        if let Some(log) = log {
            cmd.stderr(std::fs::File::create(log)?);
        }
        let mut child = cmd.spawn()?;
        let (tx, lines) = std::sync::mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Self {
            child,
            name: name.to_owned(),
            lines,
        })
    }

    /// Reads stdout lines until one satisfies `pred`, or fails after `timeout`.
    pub fn wait_for_line(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if pred(&line) {
                        return Ok(line);
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let tail: Vec<_> = seen.iter().rev().take(5).rev().collect();
                    return Err(format!(
                        "{}: no expected line within {timeout:?}; last lines: {tail:?}",
                        self.name
                    ));
                }
            }
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    /// Reads our client's JSON lines until its session is up (`Ok(Ok(up
    /// line))`) or it reports a failure (`Ok(Err(failed or down line))`);
    /// `Err` when neither comes within `within`.
    pub fn session_outcome(
        &mut self,
        within: Duration,
    ) -> Result<Result<serde_json::Value, serde_json::Value>, String> {
        let mut result = None;
        self.wait_for_line(within, |line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            match v["event"].as_str() {
                Some("up") => result = Some(Ok(v)),
                Some("failed") | Some("down") => result = Some(Err(v)),
                _ => return false,
            }
            true
        })?;
        result.ok_or_else(|| "no outcome line".to_owned())
    }

    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: kill with a pid we own.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running lab: the topology, the daemon in the server namespace, and a
/// scratch folder with its configuration, secrets and log.
pub struct Lab {
    pub topology: Topology,
    pub dir: std::path::PathBuf,
    pub socket: std::path::PathBuf,
    pub log: std::path::PathBuf,
    bin: std::path::PathBuf,
    daemon: Option<Process>,
    /// The lab's XDP programs: pass on the far ends of s0 and l0, the
    /// bench's sink and routing ceiling.
    aux: Option<AuxPrograms>,
    /// The generators' relays (see [`Lab::relay_generators`]), if any.
    relays: Vec<AuxPrograms>,
}

/// The veth a generator sends on once [`Lab::relay_generators`] gave it a
/// relay, and the relay's end of that pair.
pub const RELAY_SENDER: &str = "g0";
pub const RELAY_RECEIVER: &str = "g1";

/// The lab's test user.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse";

/// How the lab daemon runs.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// XDP on s0 and l0, or every session in userspace.
    pub xdp: bool,
    /// `mppe.policy`: "require", "allow" or "deny".
    pub mppe: &'static str,
    /// `dataplane.forwarding`: "stack" (the default) or "xdp".
    pub forwarding: &'static str,
    /// More keys of the `[dataplane]` table, one `key = value` a line.
    pub dataplane: &'static str,
    /// Appended to the configuration (extra keys of existing tables are
    /// not allowed by TOML; use it for whole tables).
    pub extra: String,
    /// The WAN interface the configuration names (a missing one tests the
    /// fallback when XDP cannot be attached).
    pub wan: &'static str,
    /// The body of the `[limits]` table: [`LAB_LIMITS`] by default, room
    /// for thousands of sessions from the one client address of the lab.
    pub limits: String,
    /// The body of the `[auth]` table in place of the lab's (the
    /// chap-secrets file below, `failure_delay_ms = 100`); TOML allows one
    /// `[auth]` table only, so other back ends (RADIUS) replace it here.
    pub auth: Option<String>,
}

/// `[limits]` of the lab: every session comes from one address (the
/// client namespace), one control connection each, and one user.
pub const LAB_LIMITS: &str = "connections_per_source = 65535\n\
     connection_rate_per_source = 100000\n\
     connection_burst_per_source = 100000\n\
     max_starting = 10000\n\
     sessions_per_user = 0\n";

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            xdp: true,
            mppe: "allow",
            forwarding: "stack",
            dataplane: "",
            extra: String::new(),
            wan: "s0",
            limits: LAB_LIMITS.to_owned(),
            auth: None,
        }
    }
}

impl Lab {
    /// Builds the topology and starts `bin` (pptp-daemon) in it, waiting
    /// until its control socket answers.
    pub fn start(bin: &Path, options: &LabOptions) -> Result<Self, String> {
        let topology = Topology::new().map_err(|e| e.to_string())?;
        Self::start_in(topology, bin, options)
    }

    /// As [`Lab::start`], in a topology made beforehand (so that something
    /// the daemon needs from its start, such as a RADIUS server in the
    /// server namespace, runs first).
    pub fn start_in(topology: Topology, bin: &Path, options: &LabOptions) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("pptp-lab-{}", topology.server.name()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let secrets = dir.join("chap-secrets");
        std::fs::write(
            &secrets,
            format!(
                "# client\tserver\tsecret\t\taddresses\n{USER}\t*\t\"{PASSWORD}\"\t*\nbob\t*\tbobsecret\t198.19.200.7\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let socket = dir.join("ctl.sock");
        let config = dir.join("pptp.toml");
        let mut text = topology
            .server_config(
                &secrets,
                &socket,
                options.xdp,
                options.mppe,
                options.forwarding,
            )
            .replace(
                "interface = \"s0\"",
                &format!("interface = \"{}\"", options.wan),
            )
            .replace(
                "tun_name = \"pptp0\"\n",
                &format!("tun_name = \"pptp0\"\n{}", options.dataplane),
            );
        if let Some(auth) = &options.auth {
            let start = text
                .find("[auth]\n")
                .ok_or("the lab configuration has no [auth] table")?;
            let end = text[start..]
                .find("\n\n")
                .map_or(text.len(), |n| start + n + 2);
            text.replace_range(start..end, &format!("[auth]\n{auth}\n\n"));
        }
        text.push_str(&format!("\n[limits]\n{}\n", options.limits));
        text.push_str(&options.extra);
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let log = dir.join("daemon.log");
        let mut lab = Lab {
            topology,
            dir,
            socket,
            log,
            bin: bin.to_owned(),
            daemon: None,
            aux: None,
            relays: Vec::new(),
        };
        lab.aux = Some(AuxPrograms::load().map_err(|e| e.to_string())?);
        if options.xdp {
            // Frames redirected into a veth need XDP on its far end.
            lab.attach_pass_programs()?;
        }
        let daemon = Process::spawn(
            &lab.topology.server,
            "pptp-daemon",
            bin,
            &[
                "--config",
                &config.display().to_string(),
                "--log-level",
                "debug",
            ],
            Some(&lab.log),
        )
        .map_err(|e| e.to_string())?;
        lab.daemon = Some(daemon);
        let deadline = Instant::now() + Duration::from_secs(20);
        while lab.sessions().is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "the daemon did not come up; log:\n{}",
                    lab.daemon_log()
                ));
            }
            if let Some(d) = lab.daemon.as_mut()
                && let Ok(Some(status)) = d.child.try_wait()
            {
                return Err(format!(
                    "the daemon exited ({status}); log:\n{}",
                    lab.daemon_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(lab)
    }

    /// Gives the generators of c0 and h0 a relay each: a veth pair
    /// ([`RELAY_SENDER`] to [`RELAY_RECEIVER`]) in the client's and the
    /// LAN host's namespace, with `pptp_xdp_relay` on the receiving end
    /// redirecting every frame into c0 (h0). s0 and l0 then receive the
    /// generators' frames as XDP frames, the way a NIC driver hands them
    /// over: an XDP program there runs on them in place, and the stack
    /// builds its buffer around them. Sent as socket buffers straight from
    /// c0 (h0), they arrive with too little headroom for XDP, and veth
    /// copies each into a new page before the server's XDP program runs: a
    /// cost no NIC has, which the stack's paths (no XDP program on s0 and
    /// l0) never pay. The copy moves to the relay, on the generator's CPU.
    /// [`Lab::generator_iface`] names the interface to send on.
    pub fn relay_generators(&mut self) -> Result<(), String> {
        let t = &self.topology;
        for (ns, target) in [(&t.client, "c0"), (&t.lan, "h0")] {
            netns::veth(ns, RELAY_SENDER, ns, RELAY_RECEIVER).map_err(|e| e.to_string())?;
            // No TSO on the sender: veth would hand its frames to the
            // backlog, past the relay's XDP (checksum offload off takes
            // TSO with it).
            ns.run(|| pptp_daemon::dataplane::veth::set_tx_checksum(RELAY_SENDER, false))
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("checksum offload off on {RELAY_SENDER}: {e}"))?;
            let index = ns.ifindex(target).map_err(|e| e.to_string())?;
            let relay = ns
                .run(|| AuxPrograms::relay(RELAY_RECEIVER, index))
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("relay {RELAY_RECEIVER} -> {target} in {}: {e}", ns.name()))?;
            self.relays.push(relay);
        }
        Ok(())
    }

    /// The interface a generator sends on to reach the server through
    /// `iface` (c0 or h0): its relay's sender once
    /// [`Lab::relay_generators`] made one, else `iface` itself.
    pub fn generator_iface<'a>(&self, iface: &'a str) -> &'a str {
        if self.relays.is_empty() {
            iface
        } else {
            RELAY_SENDER
        }
    }

    /// The pass-everything XDP program on c0 and h0 (veth peers of s0 and
    /// l0), attached for as long as the lab lives.
    fn attach_pass_programs(&mut self) -> Result<(), String> {
        let Some(mut dp) = self.aux.take() else {
            return Err("no auxiliary XDP object loaded".into());
        };
        self.topology
            .client
            .run(|| dp.attach(PASS_PROGRAM, "c0"))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.topology
            .lan
            .run(|| dp.attach(PASS_PROGRAM, "h0"))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.aux = Some(dp);
        Ok(())
    }

    /// Replaces whatever auxiliary program runs on `iface` (c0, h0 or s0)
    /// with `program` (see [`crate::xdp`]), or with nothing.
    pub fn set_aux_program(
        &mut self,
        iface: &str,
        program: Option<&'static str>,
    ) -> Result<(), String> {
        let ns = match iface {
            "c0" => &self.topology.client,
            "h0" => &self.topology.lan,
            _ => &self.topology.server,
        };
        let dp = self.aux.as_mut().ok_or("no auxiliary XDP object loaded")?;
        dp.detach(iface).map_err(|e| e.to_string())?;
        if let Some(program) = program {
            ns.run(|| dp.attach(program, iface))
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Frames counted by the sink programs so far (packets, bytes).
    pub fn sink_counters(&self) -> Result<(u64, u64), String> {
        self.aux
            .as_ref()
            .ok_or("no auxiliary XDP object loaded")?
            .sink_counters()
            .map_err(|e| e.to_string())
    }

    /// The daemon's log so far.
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts our client in the client namespace with extra arguments.
    pub fn client(&self, extra: &[&str]) -> Result<Process, String> {
        self.client_as(USER, PASSWORD, extra)
    }

    /// Starts our client as `user` with `password`, with extra arguments.
    pub fn client_as(&self, user: &str, password: &str, extra: &[&str]) -> Result<Process, String> {
        self.client_logged(user, password, extra)
            .map(|(client, _)| client)
    }

    /// As [`Lab::client_as`], also returning the file the client logs to
    /// (where it says why its authentication failed).
    pub fn client_logged(
        &self,
        user: &str,
        password: &str,
        extra: &[&str],
    ) -> Result<(Process, std::path::PathBuf), String> {
        let mut args = vec![
            "client",
            "--server",
            SERVER_WAN,
            "--user",
            user,
            "--password",
            password,
            "--route",
            "198.18.1.0/24",
        ];
        args.extend_from_slice(extra);
        let log = self
            .dir
            .join(format!("client-{}.log", netns::unique_name("c")));
        let client = Process::spawn(
            &self.topology.client,
            "pptp client",
            &self.bin,
            &args,
            Some(&log),
        )
        .map_err(|e| e.to_string())?;
        Ok((client, log))
    }

    /// The daemon's session list.
    pub fn sessions(&self) -> Result<Vec<SessionInfo>, String> {
        match self.ctl(Request::Sessions)? {
            Response::Sessions { sessions } => Ok(sessions),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// The daemon's counters.
    pub fn stats(&self) -> Result<HashMap<String, u64>, String> {
        match self.ctl(Request::Stats)? {
            Response::Stats { counters } => Ok(counters.into_iter().collect()),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    fn ctl(&self, req: Request) -> Result<Response, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime
            .block_on(ctl::request(&self.socket, &req))
            .map_err(|e| e.to_string())
    }

    /// Pings `to` from the client namespace with source `from`.
    pub fn ping(&self, from: &str, to: &str, count: u32) -> Result<(), String> {
        let out = self
            .topology
            .client
            .command("ping")
            .args([
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                "-W",
                "2",
                "-I",
                from,
                to,
            ])
            .output()
            .map_err(|e| format!("ping: {e} (install iputils-ping: `cargo xtask setup`)"))?;
        if !out.status.success() {
            return Err(format!(
                "ping {from} -> {to} failed:\n{}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        Ok(())
    }

    /// Sends `bytes` over TCP from `from` (in the client namespace) to the
    /// LAN host, which echoes them back; checks every byte both ways.
    pub fn tcp_echo(&self, from: &str, bytes: usize) -> Result<Duration, String> {
        use std::{
            io::{Read as _, Write as _},
            net::{SocketAddr, TcpListener, TcpStream},
        };
        let listener = self
            .topology
            .lan
            .run(|| TcpListener::bind((LAN_HOST, 0)))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let echo = std::thread::spawn(move || -> std::io::Result<usize> {
            let (mut s, _) = listener.accept()?;
            s.set_read_timeout(Some(Duration::from_secs(20)))?;
            let mut buf = vec![0u8; 65536];
            let mut total = 0;
            loop {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Ok(total);
                }
                s.write_all(&buf[..n])?;
                total += n;
            }
        });
        let from: std::net::Ipv4Addr = from.parse().map_err(|e| format!("{e}"))?;
        let started = Instant::now();
        let result = self
            .topology
            .client
            .run(|| -> std::io::Result<()> {
                let sock =
                    socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
                sock.bind(&SocketAddr::from((from, 0)).into())?;
                sock.connect_timeout(
                    &SocketAddr::from((
                        LAN_HOST.parse::<std::net::Ipv4Addr>().expect("constant"),
                        port,
                    ))
                    .into(),
                    Duration::from_secs(10),
                )?;
                let mut stream: TcpStream = sock.into();
                stream.set_read_timeout(Some(Duration::from_secs(20)))?;
                let data: Vec<u8> = (0..bytes).map(|i| (i * 7 + i / 251) as u8).collect();
                let mut writer = stream.try_clone()?;
                let sender = std::thread::spawn(move || -> std::io::Result<()> {
                    writer.write_all(&data)?;
                    writer.shutdown(std::net::Shutdown::Write)
                });
                let mut back = Vec::with_capacity(bytes);
                stream.read_to_end(&mut back)?;
                sender
                    .join()
                    .map_err(|_| std::io::Error::other("sender panicked"))??;
                let expected: Vec<u8> = (0..bytes).map(|i| (i * 7 + i / 251) as u8).collect();
                if back != expected {
                    return Err(std::io::Error::other(format!(
                        "echo differs: sent {} bytes, got {}",
                        bytes,
                        back.len()
                    )));
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        result.map_err(|e| format!("TCP transfer from {from}: {e}"))?;
        let echoed = echo
            .join()
            .map_err(|_| "echo server panicked".to_owned())?
            .map_err(|e| format!("echo server: {e}"))?;
        if echoed != bytes {
            return Err(format!("echo server saw {echoed} bytes, expected {bytes}"));
        }
        Ok(started.elapsed())
    }

    /// Process id of the daemon.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(|d| d.child.id())
    }

    /// Open file descriptors of the daemon (sockets, the TUN device, maps).
    pub fn daemon_fds(&self) -> usize {
        self.daemon_pid()
            .and_then(|pid| std::fs::read_dir(format!("/proc/{pid}/fd")).ok())
            .map_or(0, |d| d.count())
    }

    /// Kills the daemon with SIGKILL (no goodbyes, no cleanup of its own).
    pub fn kill_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
    }

    /// Starts the daemon again on the same configuration.
    pub fn restart_daemon(&mut self) -> Result<(), String> {
        self.kill_daemon();
        let config = self.dir.join("pptp.toml");
        let daemon = Process::spawn(
            &self.topology.server,
            "pptp-daemon",
            &self.bin,
            &[
                "--config",
                &config.display().to_string(),
                "--log-level",
                "debug",
            ],
            Some(&self.log),
        )
        .map_err(|e| e.to_string())?;
        self.daemon = Some(daemon);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.sessions().is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "the daemon did not come up again; log:\n{}",
                    self.daemon_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Waits up to `timeout` for the daemon to exit on its own (`ctl
    /// shutdown`); its exit status, or `None` while it still runs.
    pub fn wait_daemon_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let d = self.daemon.as_mut()?;
        loop {
            if let Ok(Some(status)) = d.child.try_wait() {
                self.daemon = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the daemon with SIGTERM; returns whether it exited cleanly.
    pub fn stop_daemon(&mut self) -> Result<(), String> {
        let Some(mut d) = self.daemon.take() else {
            return Ok(());
        };
        match d.terminate(Duration::from_secs(15)) {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(format!(
                "daemon exited with {status}; log:\n{}",
                self.daemon_log()
            )),
            None => Err(format!("daemon did not stop; log:\n{}", self.daemon_log())),
        }
    }
}

/// Log lines that end a reload: the report, or why nothing changed.
const RELOAD_OUTCOMES: [&str; 3] = [
    "configuration reloaded from",
    "invalid configuration, the old one stays in effect",
    "secrets file not loaded, the old configuration stays in effect",
];

impl Lab {
    /// The daemon's configuration file.
    pub fn config_file(&self) -> std::path::PathBuf {
        self.dir.join("pptp.toml")
    }

    /// Rewrites the daemon's configuration file with `edit` (which gets the
    /// current text). Takes effect on [`Lab::reload`].
    pub fn edit_config(&self, edit: impl FnOnce(String) -> String) -> Result<(), String> {
        let path = self.config_file();
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        std::fs::write(&path, edit(text)).map_err(|e| e.to_string())
    }

    /// Replaces the chap-secrets file. Takes effect on [`Lab::reload`].
    pub fn write_secrets(&self, text: &str) -> Result<(), String> {
        std::fs::write(self.dir.join("chap-secrets"), text).map_err(|e| e.to_string())
    }

    /// Sends the daemon SIGHUP and waits (10 s at most) for the log line
    /// that says how the reload ended, which it returns.
    pub fn reload(&self) -> Result<String, String> {
        let outcomes = |log: &str| -> Vec<String> {
            log.lines()
                .filter(|l| RELOAD_OUTCOMES.iter().any(|o| l.contains(o)))
                .map(str::to_owned)
                .collect()
        };
        let before = outcomes(&self.daemon_log()).len();
        let pid = self.daemon_pid().ok_or("the daemon is not running")?;
        // SAFETY: kill with the pid of our own child.
        if unsafe { libc::kill(pid as i32, libc::SIGHUP) } != 0 {
            return Err(format!("SIGHUP: {}", std::io::Error::last_os_error()));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = outcomes(&self.daemon_log()).get(before) {
                return Ok(line.clone());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no reload outcome in the log within 10 s; log:\n{}",
                    self.daemon_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.terminate(Duration::from_secs(10));
        }
        if std::env::var_os("PPTP_LAB_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What `pptp-lab lab` (behind `cargo xtask lab`) does.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// Sessions to open (one client process, one control connection each).
    #[arg(long, default_value_t = 3)]
    pub clients: usize,
    /// Encrypt the sessions with MPPE (stateless: encrypted and decrypted
    /// in XDP; with --no-xdp in userspace).
    #[arg(long)]
    pub mppe: bool,
    /// Run the daemon with XDP off.
    #[arg(long)]
    pub no_xdp: bool,
    /// Bytes of the TCP transfer through the first session.
    #[arg(long, default_value_t = 20_000_000)]
    pub bytes: usize,
}

/// Builds the lab, starts the daemon and the clients, shows a ping through
/// every tunnel, a TCP transfer and the session list, and tears it all down.
pub fn demo(bin: &Path, args: &DemoArgs) -> Result<(), String> {
    netns::require_root().map_err(|e| e.to_string())?;
    let step = |s: &str| println!("\n==> {s}");
    step(&format!(
        "namespaces {} (clients), {} (server), {} (LAN host); daemon with XDP {}",
        "c0 198.18.0.2",
        "s0 198.18.0.1 / l0 198.18.1.1",
        "h0 198.18.1.2",
        if args.no_xdp { "off" } else { "on s0 and l0" }
    ));
    let lab = Lab::start(
        bin,
        &LabOptions {
            xdp: !args.no_xdp,
            mppe: if args.mppe { "require" } else { "allow" },
            ..LabOptions::default()
        },
    )?;
    let sessions = args.clients.max(1).to_string();
    let mut extra = vec!["--sessions", sessions.as_str()];
    if args.mppe {
        extra.push("--mppe");
    }
    step(&format!(
        "{} client session(s) connecting (MS-CHAPv2{})",
        args.clients,
        if args.mppe {
            ", MPPE-128 stateless"
        } else {
            ""
        }
    ));
    let mut client = lab.client(&extra)?;
    let mut addresses = Vec::new();
    client.wait_for_line(Duration::from_secs(60 + args.clients as u64), |line| {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        match v["event"].as_str() {
            Some("up") => {
                println!(
                    "    session {} up: address {}, setup {} ms",
                    v["index"], v["address"], v["setup_ms"]
                );
                if let Some(a) = v["address"].as_str() {
                    addresses.push(a.to_owned());
                }
                false
            }
            Some("all_up") => true,
            _ => false,
        }
    })?;
    step(&format!("ping {LAN_HOST} through every tunnel"));
    for a in &addresses {
        lab.ping(a, LAN_HOST, 2)?;
        println!("    from {a}: ok");
    }
    step(&format!(
        "TCP transfer of {} bytes each way through the first tunnel",
        args.bytes
    ));
    let took = lab.tcp_echo(&addresses[0], args.bytes)?;
    let mbits = (args.bytes as f64 * 8.0 * 2.0) / took.as_secs_f64() / 1e6;
    println!("    echoed in {took:.2?} ({mbits:.0} Mbit/s both directions together)");
    step("pptp-daemon sessions");
    print!("{}", ctl::format_sessions(&lab.sessions()?));
    step("data-path counters (pptp-daemon stats)");
    let stats = lab.stats()?;
    let mut keys: Vec<_> = stats.keys().collect();
    keys.sort();
    for k in keys {
        if stats[k] != 0 {
            println!("    {k:<32} {}", stats[k]);
        }
    }
    step("tearing down");
    drop(client);
    drop(lab);
    println!("    done: namespaces, links and XDP programs removed");
    Ok(())
}
