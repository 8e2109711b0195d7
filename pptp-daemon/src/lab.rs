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
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::netns::{self, Netns, NetnsError};

pub const SERVER_WAN: &str = "198.18.0.1";
pub const CLIENT_WAN: &str = "198.18.0.2";
pub const SERVER_LAN: &str = "198.18.1.1";
pub const LAN_HOST: &str = "198.18.1.2";
pub const TUNNEL_LOCAL: &str = "198.19.0.1";
pub const TUNNEL_POOL: &str = "198.19.0.0/16";

/// The three namespaces, deleted on drop.
pub struct Topology {
    pub client: Netns,
    pub server: Netns,
    pub lan: Netns,
}

impl Topology {
    pub fn new() -> Result<Self, NetnsError> {
        let client = Netns::new("pxcl")?;
        let server = Netns::new("pxsv")?;
        let lan = Netns::new("pxln")?;
        netns::veth(&client, "c0", &server, "s0")?;
        netns::veth(&server, "l0", &lan, "h0")?;
        client.ip(&["addr", "add", &format!("{CLIENT_WAN}/24"), "dev", "c0"])?;
        server.ip(&["addr", "add", &format!("{SERVER_WAN}/24"), "dev", "s0"])?;
        server.ip(&["addr", "add", &format!("{SERVER_LAN}/24"), "dev", "l0"])?;
        lan.ip(&["addr", "add", &format!("{LAN_HOST}/24"), "dev", "h0"])?;
        lan.ip(&["route", "add", TUNNEL_POOL, "via", SERVER_LAN])?;
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

/// A child process that is killed on drop, with its output lines readable.
pub struct Process {
    pub child: Child,
    name: String,
}

impl Process {
    /// Starts `program args` inside `ns`, stdout piped, stderr inherited
    /// (or to a log file when `log` is given).
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
        Ok(Self {
            child: cmd.spawn()?,
            name: name.to_owned(),
        })
    }

    /// Reads stdout lines until one satisfies `pred`, or fails after `timeout`.
    pub fn wait_for_line(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<String, String> {
        let stdout = self.child.stdout.take().ok_or("stdout already taken")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if pred(&line) {
                        // Keep draining in the background so the child never blocks.
                        std::thread::spawn(move || {
                            while rx.recv().is_ok() {}
                            let _ = reader.join();
                        });
                        return Ok(line);
                    }
                    seen.push(line);
                }
                Err(_) => {
                    return Err(format!(
                        "{}: no expected line within {timeout:?}; got: {seen:?}",
                        self.name
                    ));
                }
            }
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
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
