//! `cargo xtask guest`: a Debian bookworm guest under qemu for what the host
//! kernel cannot do (it has no PPP): kernel PPTP, pppd, pptpd and pptp-linux.
//!
//! The guest runs on qemu's software emulation (TCG, `/dev/kvm` here does
//! not boot a stock Debian kernel), boots from the cached image of
//! [`image`] with a throwaway snapshot of its disk, and talks to the host
//! two ways:
//!
//! - a 9p shared folder (`/mnt/host` in the guest) where a small agent
//!   (`xtask/guest/agent.sh`) runs the command files the host drops
//!   ([`Guest::exec`]);
//! - one virtio NIC on a tap device inside a network namespace this module
//!   creates (`198.18.0.1/24` on the host side, `198.18.0.2/24` on the
//!   guest's `eth0`). The namespace has nothing else: no route to the
//!   outside world.
//!
//! Dropping a [`Guest`] kills qemu and removes the namespace, its tap and
//! the temporary folder; qemu also dies with the thread that booted it.

pub mod bench;
pub mod forwarding;
pub mod image;
pub mod loadgen;

use std::{
    fmt::Write as _,
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Subcommand;

use crate::util::{self, output};

pub use image::Image;

/// Address of the host side of the tap (inside [`Guest::netns`]).
pub const HOST_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Address of the guest's `eth0`.
pub const GUEST_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// Prefix length of the tap link.
pub const LINK_PREFIX: u8 = 24;
/// Name of the tap device in [`Guest::netns`].
pub const TAP: &str = "pxgtap0";
/// Where the shared folder is mounted in the guest.
pub const GUEST_SHARE: &str = "/mnt/host";
/// MS-CHAPv2 user name the guest's pppd clients send (xtask/guest/chap-secrets).
pub const PPP_USER: &str = "pxguser";
/// MS-CHAPv2 password of [`PPP_USER`].
pub const PPP_SECRET: &str = "pxgsecret";

/// Files the host puts in the shared folder at each boot.
const SHARE_FILES: &[(&str, &str)] = &[
    ("agent.sh", include_str!("../guest/agent.sh")),
    ("lab.sh", include_str!("../guest/lab.sh")),
    ("kpptp.py", include_str!("../guest/kpptp.py")),
    ("chap-secrets", include_str!("../guest/chap-secrets")),
    ("pptpd.conf", include_str!("../guest/pptpd.conf")),
    ("pptpd-options", include_str!("../guest/pptpd-options")),
    ("pptp-client", include_str!("../guest/pptp-client")),
];

/// Prefix of everything a guest creates on the host (namespaces, folders).
const PREFIX: &str = "pxg-";
/// Name of the one detached guest of `cargo xtask guest boot`.
const DETACHED: &str = "pxg-guest";
/// Slack on top of a command's own timeout before the agent counts as dead.
const AGENT_SLACK: Duration = Duration::from_secs(20);

/// How to boot a guest.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// Virtual CPUs (TCG threads).
    pub cpus: u32,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// qemu CPU model (`-cpu`).
    pub cpu_model: String,
    /// Give up if the agent has not answered by then.
    pub boot_timeout: Duration,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            cpus: 2,
            memory_mib: 1024,
            cpu_model: "qemu64".to_owned(),
            boot_timeout: Duration::from_secs(300),
        }
    }
}

/// What a command run in the guest gave back.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status (124 when the command's timeout killed it).
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// MPPE choice of a pppd link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mppe {
    /// `nomppe noccp`.
    None,
    /// `require-mppe-128` (stateless, pppd's default).
    Required,
    /// `require-mppe-40` and `nomppe-128`: a peer that accepts only
    /// 40-bit keys (issue 14).
    Required40,
}

impl Mppe {
    fn lab_arg(self) -> &'static str {
        match self {
            Mppe::None => "none",
            Mppe::Required => "mppe",
            Mppe::Required40 => "mppe40",
        }
    }
}

/// A PPP link that came up in the guest.
#[derive(Debug, Clone)]
pub struct PppLink {
    /// The interface, e.g. `ppp0`.
    pub iface: String,
    /// Our address on it (IPCP).
    pub local: Ipv4Addr,
    /// The peer's address (IPCP).
    pub peer: Ipv4Addr,
    /// From starting pppd to IPCP up, measured in the guest.
    pub setup: Duration,
}

/// The qemu process of a guest.
struct Qemu {
    pid: u32,
    /// Present when this process started qemu (not for an attached guest).
    child: Option<Mutex<Child>>,
}

/// The calling thread's host CPUs before [`Guest::pin_on_host`], given
/// back when dropped.
pub struct HostPin {
    original: libc::cpu_set_t,
}

impl Drop for HostPin {
    fn drop(&mut self) {
        // SAFETY: a cpu_set_t we own, for the calling thread (0).
        let rc = unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.original)
        };
        if rc != 0 {
            eprintln!(
                "guest: this thread's host CPUs not restored: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// The host CPUs thread `tid` (0: the calling thread) may run on.
fn affinity(tid: libc::pid_t) -> std::io::Result<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; the kernel fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a cpu_set_t of the size given.
    let rc =
        unsafe { libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc == 0 {
        Ok(set)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Lets thread `tid` (0: the calling thread) run on `cpus` only.
fn set_affinity(tid: libc::pid_t, cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: CPU_SET writes a bit of a cpu_set_t we own; cpu is below
        // CPU_SETSIZE (it came from CPU_ISSET over that range).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a cpu_set_t of the size given.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A running guest. See the module documentation.
pub struct Guest {
    /// Temporary folder: `share/` (the 9p folder), console and qemu logs.
    dir: PathBuf,
    netns: String,
    qemu: Option<Qemu>,
    /// Keep everything running when dropped (`cargo xtask guest boot`).
    detached: bool,
    /// Prefix of command ids, unique per process.
    id_prefix: String,
    next_id: AtomicU64,
}

impl Guest {
    /// Builds the image if needed, then boots a guest and waits for its
    /// agent; its `eth0` has [`GUEST_ADDR`] and answers pings from
    /// [`HOST_ADDR`] in [`Guest::netns`]. Needs root.
    ///
    /// qemu gets SIGKILL when the thread that called this exits (so a
    /// killed xtask leaves no qemu behind): boot from a thread that
    /// outlives the guest, normally the main thread.
    pub fn boot(options: &BootOptions) -> anyhow::Result<Guest> {
        Self::start(options, false)
    }

    fn start(options: &BootOptions, detached: bool) -> anyhow::Result<Guest> {
        util::require_root("the test guest (network namespace, tap, qemu)")?;
        let image = image::ensure()?;
        clean_stale();
        let name = if detached {
            DETACHED.to_owned()
        } else {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            format!(
                "{PREFIX}{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            )
        };
        let mut guest = Guest {
            dir: std::env::temp_dir().join(&name),
            netns: name,
            qemu: None,
            detached: false,
            id_prefix: format!("{}", std::process::id()),
            next_id: AtomicU64::new(0),
        };
        // From here on, dropping `guest` undoes whatever was done.
        let started = Instant::now();
        guest.prepare_share()?;
        guest.create_netns()?;
        util::step(&format!(
            "guest: booting ({} vCPUs on TCG, {} MiB, namespace {})",
            options.cpus, options.memory_mib, guest.netns
        ));
        guest.spawn_qemu(&image, options, detached)?;
        guest.wait_ready(options.boot_timeout)?;
        guest.run_timeout(
            &format!("ip addr add {GUEST_ADDR}/{LINK_PREFIX} dev eth0 && ip link set eth0 up"),
            Duration::from_secs(30),
        )?;
        guest.wait_ping(Duration::from_secs(30))?;
        eprintln!(
            "guest: up in {:.1} s (kernel {}), {GUEST_ADDR} reachable from {HOST_ADDR} in namespace {}",
            started.elapsed().as_secs_f64(),
            fs::read_to_string(guest.share().join("ready"))
                .unwrap_or_default()
                .trim(),
            guest.netns
        );
        guest.detached = detached;
        Ok(guest)
    }

    /// Boots the detached guest of `cargo xtask guest boot`: it keeps
    /// running after this process exits, until `cargo xtask guest stop`.
    pub fn boot_detached(options: &BootOptions) -> anyhow::Result<Guest> {
        if Self::attach().is_ok() {
            bail!("a guest is already running (`cargo xtask guest stop` ends it)");
        }
        // Leftovers of a detached guest that died on its own.
        stop_detached();
        let guest = Self::start(options, true)?;
        let pid = guest.qemu.as_ref().map_or(0, |q| q.pid);
        fs::write(guest.dir.join("state"), format!("{pid}\n"))?;
        Ok(guest)
    }

    /// The detached guest booted by `cargo xtask guest boot`, if running.
    /// Dropping the returned value leaves it running.
    pub fn attach() -> anyhow::Result<Guest> {
        let dir = std::env::temp_dir().join(DETACHED);
        let state = fs::read_to_string(dir.join("state"))
            .context("no guest is running (`cargo xtask guest boot`)")?;
        let pid: u32 = state.trim().parse().context("bad guest state file")?;
        if !is_our_qemu(pid) {
            bail!(
                "the guest (qemu pid {pid}) is no longer running; `cargo xtask guest stop` cleans up"
            );
        }
        Ok(Guest {
            dir,
            netns: DETACHED.to_owned(),
            qemu: Some(Qemu { pid, child: None }),
            detached: true,
            id_prefix: format!("{}", std::process::id()),
            next_id: AtomicU64::new(0),
        })
    }

    /// The host network namespace holding the tap ([`TAP`], [`HOST_ADDR`]).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// `ip netns exec <netns> <program>`: a command that runs in
    /// [`Guest::netns`] (e.g. our daemon, tcpdump on [`TAP`]).
    pub fn netns_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns]).arg(program);
        cmd
    }

    /// The shared folder on the host ([`GUEST_SHARE`] in the guest).
    pub fn share(&self) -> PathBuf {
        self.dir.join("share")
    }

    /// The guest's serial console log.
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    /// Runs a shell command (bash) in the guest, as root in the guest's own
    /// namespace, with a 120 s timeout. Commands run concurrently.
    pub fn exec(&self, command: &str) -> anyhow::Result<Output> {
        self.exec_timeout(command, Duration::from_secs(120))
    }

    /// [`Guest::exec`] with a timeout, after which the command gets
    /// SIGTERM (SIGKILL 5 s later) and the status is 124.
    pub fn exec_timeout(&self, command: &str, timeout: Duration) -> anyhow::Result<Output> {
        let id = format!(
            "{}-{}",
            self.id_prefix,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let cmd_dir = self.share().join("cmd");
        let file = |ext: &str| cmd_dir.join(format!("{id}.{ext}"));
        fs::write(file("cmd"), command)?;
        let secs = timeout.as_secs().max(1);
        fs::write(
            file("sh.tmp"),
            format!("exec timeout -k 5 {secs} bash {GUEST_SHARE}/cmd/{id}.cmd\n"),
        )?;
        fs::rename(file("sh.tmp"), file("sh"))?;
        let deadline = Instant::now() + timeout + AGENT_SLACK;
        let status = loop {
            if let Ok(text) = fs::read_to_string(file("rc")) {
                break text
                    .trim()
                    .parse::<i32>()
                    .with_context(|| format!("bad exit status {text:?}"))?;
            }
            if !self.alive() {
                bail!(
                    "the guest died while running `{command}`{}",
                    self.console_tail()
                );
            }
            if Instant::now() > deadline {
                bail!("the guest agent did not answer `{command}` within {secs} s");
            }
            thread::sleep(Duration::from_millis(50));
        };
        let out = Output {
            status,
            stdout: fs::read_to_string(file("out")).unwrap_or_default(),
            stderr: fs::read_to_string(file("err")).unwrap_or_default(),
        };
        for ext in ["cmd", "run", "out", "err", "rc"] {
            let _ = fs::remove_file(file(ext));
        }
        Ok(out)
    }

    /// Runs a command (120 s timeout) and returns its stdout; a non-zero
    /// status is an error carrying its stderr.
    pub fn run(&self, command: &str) -> anyhow::Result<String> {
        self.run_timeout(command, Duration::from_secs(120))
    }

    /// [`Guest::run`] with a timeout.
    pub fn run_timeout(&self, command: &str, timeout: Duration) -> anyhow::Result<String> {
        let out = self.exec_timeout(command, timeout)?;
        if !out.success() {
            bail!(
                "`{command}` failed in the guest (status {}):\n{}{}",
                out.status,
                out.stdout,
                out.stderr
            );
        }
        Ok(out.stdout)
    }

    /// Runs `xtask/guest/lab.sh` with these arguments (see its header for
    /// the topologies it builds); returns its stdout.
    pub fn lab(&self, args: &[&str], timeout: Duration) -> anyhow::Result<String> {
        self.lab_env(&[], args, timeout)
    }

    /// [`Self::lab`] with environment variables set for lab.sh.
    pub fn lab_env(
        &self,
        env: &[(&str, String)],
        args: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let mut cmd = String::new();
        for (name, value) in env {
            cmd.push_str(&format!("{name}={} ", shell_quote(value)));
        }
        cmd.push_str(&format!("bash {GUEST_SHARE}/lab.sh"));
        for a in args {
            cmd.push(' ');
            cmd.push_str(&shell_quote(a));
        }
        self.run_timeout(&cmd, timeout)
    }

    /// Dials `server` with pptp-linux + pppd (MS-CHAPv2 as [`PPP_USER`])
    /// from the guest's own namespace, so over `eth0` and the tap, and
    /// waits for IPCP; the link is `ppp<unit>`.
    pub fn pptp_connect(&self, server: Ipv4Addr, mppe: Mppe, unit: u32) -> anyhow::Result<PppLink> {
        let out = self.lab(
            &[
                "client-up",
                "-",
                &server.to_string(),
                mppe.lab_arg(),
                &unit.to_string(),
            ],
            Duration::from_secs(60),
        )?;
        parse_link(&out).with_context(|| format!("unexpected client-up output {out:?}"))
    }

    /// Hangs up the link of [`Guest::pptp_connect`] with this unit.
    pub fn pptp_disconnect(&self, unit: u32) -> anyhow::Result<()> {
        self.lab(&["client-down", &unit.to_string()], Duration::from_secs(30))
            .map(drop)
    }

    /// Copies a host file into the shared folder and returns its path in
    /// the guest. An executable's libraries are checked in the guest: the
    /// guest has bookworm's glibc 2.36, so a binary built on a newer glibc
    /// fails here (build it for `x86_64-unknown-linux-musl`, or run it on
    /// the host in [`Guest::netns`] instead).
    pub fn install(&self, host_path: &Path) -> anyhow::Result<String> {
        let name = host_path
            .file_name()
            .with_context(|| format!("{} has no file name", host_path.display()))?;
        let bin = self.share().join("bin");
        fs::create_dir_all(&bin)?;
        fs::copy(host_path, bin.join(name))
            .with_context(|| format!("copying {}", host_path.display()))?;
        let guest_path = format!("{GUEST_SHARE}/bin/{}", name.to_string_lossy());
        let check = self.exec(&format!(
            "if [ -x {p} ]; then ldd {p} 2>&1 || true; fi",
            p = shell_quote(&guest_path)
        ))?;
        if check.stdout.contains("not found") {
            bail!(
                "{} cannot run in the guest:\n{}",
                host_path.display(),
                check.stdout
            );
        }
        Ok(guest_path)
    }

    /// Host nanoseconds the thread of vCPU `cpu` has run and has waited,
    /// runnable, for a host CPU so far (its schedstat's first two fields);
    /// None when qemu or the thread is not found. Unlike the guest's own
    /// accounting the run time does not grow while the host runs
    /// something else (under TCG the guest's clock goes on when its vCPU
    /// thread is preempted, and the guest charges that time to whatever
    /// the vCPU was doing), and an idle vCPU's thread sleeps.
    pub fn vcpu_schedstat(&self, cpu: u32) -> Option<[u64; 2]> {
        let stat = fs::read_to_string(self.vcpu_thread(cpu)?.join("schedstat")).ok()?;
        let mut fields = stat.split_whitespace().map(|f| f.parse().ok());
        Some([fields.next()??, fields.next()??])
    }

    /// The host CPUs the thread of vCPU `cpu` may run on
    /// (`Cpus_allowed_list`, e.g. "1" or "0-1").
    pub fn vcpu_host_cpus(&self, cpu: u32) -> Option<String> {
        let status = fs::read_to_string(self.vcpu_thread(cpu)?.join("status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_owned())
    }

    /// `/proc/PID/task/TID` of qemu's thread for vCPU `cpu`.
    fn vcpu_thread(&self, cpu: u32) -> Option<PathBuf> {
        let name = format!("CPU {cpu}/TCG");
        self.qemu_threads()
            .into_iter()
            .find_map(|(path, comm)| (comm == name).then_some(path))
    }

    /// qemu's threads: `/proc/PID/task/TID` and the thread's name.
    fn qemu_threads(&self) -> Vec<(PathBuf, String)> {
        let Some(qemu) = self.qemu.as_ref() else {
            return Vec::new();
        };
        let Ok(tasks) = fs::read_dir(format!("/proc/{}/task", qemu.pid)) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter_map(|t| {
                let comm = fs::read_to_string(t.path().join("comm")).ok()?;
                Some((t.path(), comm.trim().to_owned()))
            })
            .collect()
    }

    /// Gives the thread of vCPU `forwarding_vcpu` the last host CPU this
    /// process may use, alone among qemu's threads and this process's:
    /// the other vCPUs' threads, qemu's main loop and workers and the
    /// calling thread (and what it starts from now on) get the others.
    /// Under TCG a vCPU is a host thread, and with three or more of them
    /// runnable on two host CPUs the host's scheduler takes the
    /// forwarding vCPU away for a time slice now and then, during which
    /// the frames arriving at its receive rings are lost at any rate
    /// (docs/bench-guest.md, "Where frames are lost"). The calling
    /// thread's own CPUs come back when the guard is dropped (qemu's go
    /// with qemu). Fails with fewer than two usable host CPUs.
    pub fn pin_on_host(&self, forwarding_vcpu: u32) -> anyhow::Result<HostPin> {
        let original = affinity(0).context("this thread's host CPUs")?;
        let usable: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            // SAFETY: CPU_ISSET reads a bit of a cpu_set_t we own.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &original) })
            .collect();
        let Some((&alone, rest)) = usable.split_last().filter(|(_, rest)| !rest.is_empty()) else {
            bail!(
                "pinning the forwarding vCPU needs two usable host CPUs, this process has {usable:?}"
            );
        };
        let forwarding = format!("CPU {forwarding_vcpu}/TCG");
        let threads = self.qemu_threads();
        anyhow::ensure!(
            threads.iter().any(|(_, comm)| *comm == forwarding),
            "no qemu thread {forwarding:?}"
        );
        for (path, comm) in threads {
            let tid: libc::pid_t = path
                .file_name()
                .and_then(|t| t.to_str()?.parse().ok())
                .with_context(|| format!("thread id of {}", path.display()))?;
            let cpus = if comm == forwarding {
                std::slice::from_ref(&alone)
            } else {
                rest
            };
            set_affinity(tid, cpus).with_context(|| format!("qemu thread {comm:?}"))?;
        }
        set_affinity(0, rest).context("this thread")?;
        Ok(HostPin { original })
    }

    /// Stops the guest and removes everything it created (as dropping it
    /// does, also for an attached or detached guest).
    pub fn shutdown(mut self) {
        self.detached = false;
    }

    fn prepare_share(&self) -> anyhow::Result<()> {
        let _ = fs::remove_dir_all(&self.dir);
        let share = self.share();
        fs::create_dir_all(share.join("cmd"))
            .with_context(|| format!("creating {}", share.display()))?;
        for (name, text) in SHARE_FILES {
            fs::write(share.join(name), text)?;
        }
        Ok(())
    }

    fn create_netns(&self) -> anyhow::Result<()> {
        let ns = self.netns.as_str();
        util::exec(Command::new("ip").args(["netns", "add", ns]))?;
        util::exec(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]))?;
        util::exec(
            Command::new("ip").args(["-n", ns, "tuntap", "add", "dev", TAP, "mode", "tap"]),
        )?;
        util::exec(Command::new("ip").args([
            "-n",
            ns,
            "addr",
            "add",
            &format!("{HOST_ADDR}/{LINK_PREFIX}"),
            "dev",
            TAP,
        ]))?;
        util::exec(Command::new("ip").args(["-n", ns, "link", "set", TAP, "up"]))
    }

    fn spawn_qemu(
        &mut self,
        image: &Image,
        options: &BootOptions,
        detached: bool,
    ) -> anyhow::Result<()> {
        let log = fs::File::create(self.dir.join("qemu.log"))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns]);
        if !detached {
            cmd.args(["setpriv", "--pdeathsig", "KILL"]);
        }
        cmd.arg(&image.qemu)
            .env("QEMU_MODULE_DIR", &image.qemu_modules);
        for dir in &image.firmware {
            cmd.arg("-L").arg(dir);
        }
        let share = self.share();
        cmd.args([
            "-accel",
            "tcg",
            "-cpu",
            &options.cpu_model,
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            // Names the vCPU threads "CPU n/TCG": the guest comparison
            // reads their CPU time on the host (Guest::vcpu_schedstat) and
            // pins them there (Guest::pin_on_host).
            "-name",
            "pxg,debug-threads=on",
        ])
        .args([
            "-smp",
            &options.cpus.to_string(),
            "-m",
            &options.memory_mib.to_string(),
        ])
        .arg("-serial")
        .arg(format!("file:{}", self.console_log().display()))
        .arg("-kernel")
        .arg(&image.kernel)
        .arg("-initrd")
        .arg(&image.initrd)
        // init_on_alloc=0: Debian's kernel zeroes every page and slab
        // object it allocates; veth allocates a page per frame where a
        // NIC recycles its pages, and the zeroing (4 KiB per frame under
        // TCG) would weigh on whichever path makes veth allocate
        // (docs/bench-guest.md).
        // clocksource=tsc tsc=reliable: the guest's kernel finds qemu64's
        // TSC unsynchronised and falls back to the emulated HPET, whose
        // every read is a trip through qemu's device model (some 6 µs,
        // against some 20 ns for a TSC on real hardware). The kernel reads
        // the clock a few times each time a CPU goes idle and wakes, and
        // a forwarding CPU that idles between batches of packets paid
        // that per batch, in every path (docs/bench-guest.md). Under TCG
        // the TSC is the host's, monotonic across vCPUs (qemu serialises
        // the reads), so it is reliable here.
        .args([
            "-append",
            "console=ttyS0 root=/dev/vda rw init=/sbin/pxg-init panic=1 net.ifnames=0 loglevel=4 init_on_alloc=0 clocksource=tsc tsc=reliable",
        ])
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=raw,snapshot=on",
            image.disk.display()
        ))
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=host,security_model=none,id=share",
            share.display()
        ))
        .args([
            "-netdev",
            &format!("tap,id=n0,ifname={TAP},script=no,downscript=no"),
        ])
        .args([
            "-device",
            "virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:12:34:56",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
        if detached {
            let pidfile = self.dir.join("qemu.pid");
            cmd.args(["-daemonize", "-pidfile"]).arg(&pidfile);
            let status = cmd.status().context("starting qemu")?;
            if !status.success() {
                bail!("qemu failed to start ({status}){}", self.qemu_log());
            }
            let pid = fs::read_to_string(&pidfile)?
                .trim()
                .parse()
                .context("qemu pid file")?;
            self.qemu = Some(Qemu { pid, child: None });
        } else {
            let child = cmd.spawn().context("starting qemu")?;
            self.qemu = Some(Qemu {
                pid: child.id(),
                child: Some(Mutex::new(child)),
            });
        }
        Ok(())
    }

    fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let ready = self.share().join("ready");
        while !ready.exists() {
            if !self.alive() {
                bail!(
                    "qemu exited during boot{}{}",
                    self.qemu_log(),
                    self.console_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the guest did not boot within {} s{}",
                    timeout.as_secs(),
                    self.console_tail()
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    fn wait_ping(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = output(self.netns_command("ping").args([
                "-c",
                "1",
                "-W",
                "2",
                &GUEST_ADDR.to_string(),
            ]));
            if ok.is_some() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(200));
            if Instant::now() > deadline {
                bail!("the guest does not answer pings on {GUEST_ADDR}");
            }
        }
    }

    fn alive(&self) -> bool {
        match &self.qemu {
            Some(Qemu {
                child: Some(child), ..
            }) => {
                let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
                matches!(child.try_wait(), Ok(None))
            }
            Some(Qemu { pid, child: None }) => is_our_qemu(*pid),
            None => false,
        }
    }

    fn qemu_log(&self) -> String {
        let text = fs::read_to_string(self.dir.join("qemu.log")).unwrap_or_default();
        if text.trim().is_empty() {
            String::new()
        } else {
            format!("\nqemu: {}", text.trim())
        }
    }

    fn console_tail(&self) -> String {
        let text = fs::read_to_string(self.console_log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines
            .get(lines.len().saturating_sub(25)..)
            .unwrap_or_default();
        format!(
            "\nend of the guest console ({}):\n{}",
            self.console_log().display(),
            tail.join("\n")
        )
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if let Some(qemu) = self.qemu.take() {
            match qemu.child {
                Some(child) => {
                    let mut child = child.into_inner().unwrap_or_else(|e| e.into_inner());
                    let _ = child.kill();
                    let _ = child.wait();
                }
                None => kill_qemu(qemu.pid),
            }
        }
        remove_netns(&self.netns);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Whether `pid` is a live qemu started from the guest cache.
fn is_our_qemu(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name in parentheses; Z is a zombie.
    let running = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    running && cmdline.contains("qemu-system-x86_64") && cmdline.contains("pptp-xdp/guest")
}

fn kill_qemu(pid: u32) {
    if !is_our_qemu(pid) {
        return;
    }
    let _ = output(Command::new("kill").args(["-KILL", &pid.to_string()]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_our_qemu(pid) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
}

fn remove_netns(name: &str) {
    // qemu is gone, so the tap is only ours; remove it, then the namespace.
    let _ = output(Command::new("ip").args(["-n", name, "link", "del", TAP]));
    let _ = output(Command::new("ip").args(["netns", "del", name]));
}

/// Removes what guests of processes that no longer exist left behind
/// (namespaces and folders named `pxg-<pid>-<n>`, and their qemu).
fn clean_stale() {
    let dead = |name: &str| -> bool {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            return false;
        };
        let Some((pid, n)) = rest.split_once('-') else {
            return false;
        };
        pid.parse::<u32>().is_ok()
            && n.parse::<u64>().is_ok()
            && !Path::new(&format!("/proc/{pid}")).exists()
    };
    for entry in fs::read_dir("/run/netns").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if dead(&name) {
            for pid in output(Command::new("ip").args(["netns", "pids", &name]))
                .unwrap_or_default()
                .split_whitespace()
            {
                if let Ok(pid) = pid.parse() {
                    kill_qemu(pid);
                }
            }
            remove_netns(&name);
        }
    }
    for entry in fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if dead(&name) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Stops the detached guest and removes its leftovers, if any.
fn stop_detached() -> bool {
    let dir = std::env::temp_dir().join(DETACHED);
    let pid = fs::read_to_string(dir.join("state"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let existed = dir.exists() || Path::new("/run/netns").join(DETACHED).exists();
    if let Some(pid) = pid {
        kill_qemu(pid);
    }
    // A qemu that died before writing the state file is still in the namespace.
    for pid in output(Command::new("ip").args(["netns", "pids", DETACHED]))
        .unwrap_or_default()
        .split_whitespace()
    {
        if let Ok(pid) = pid.parse() {
            kill_qemu(pid);
        }
    }
    remove_netns(DETACHED);
    let _ = fs::remove_dir_all(&dir);
    existed
}

fn parse_link(out: &str) -> Option<PppLink> {
    let line = out.lines().rev().find(|l| l.starts_with("ppp"))?;
    let mut words = line.split_whitespace();
    Some(PppLink {
        iface: words.next()?.to_owned(),
        local: words.next()?.parse().ok()?,
        peer: words.next()?.parse().ok()?,
        setup: Duration::from_secs_f64(words.next()?.parse().ok()?),
    })
}

/// Quotes a word for bash.
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `cargo xtask guest ...`
#[derive(Subcommand)]
pub enum GuestCommand {
    /// Build the cached guest (qemu from bookworm, a debootstrapped bookworm
    /// with kernel PPTP, pppd, pptpd, pptp-linux, iperf3): only what is
    /// missing or out of date.
    Build {
        /// Rebuild everything.
        #[arg(long)]
        force: bool,
    },
    /// Boot a guest that keeps running in the background; `guest exec`
    /// runs commands in it, `guest stop` ends it.
    Boot {
        #[arg(long, default_value_t = 2)]
        cpus: u32,
        #[arg(long, default_value_t = 1024)]
        memory_mib: u32,
        /// qemu CPU model.
        #[arg(long, default_value = "qemu64")]
        cpu_model: String,
    },
    /// Dial a PPTP server from the guest of `guest boot` (pptp-linux + pppd,
    /// MS-CHAPv2 as pxguser/pxgsecret) over the tap, e.g. a daemon run with
    /// `ip netns exec pxg-guest ...`; prints the link once IPCP is up.
    Connect {
        /// The server's address (default: the host side of the tap).
        #[arg(long, default_value_t = HOST_ADDR)]
        server: Ipv4Addr,
        /// Require MPPE-128 (stateless).
        #[arg(long)]
        mppe: bool,
        /// PPP unit number of the link (`ppp<unit>` in the guest).
        #[arg(long, default_value_t = 0)]
        unit: u32,
    },
    /// Hang up a link of `guest connect`.
    Disconnect {
        #[arg(long, default_value_t = 0)]
        unit: u32,
    },
    /// Copy a host program into the guest of `guest boot` and run it there
    /// (it must run on the guest's glibc 2.36, or be static).
    RunHost {
        /// Seconds before the program is killed.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        program: PathBuf,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run a shell command in the guest of `guest boot` and print its output.
    Exec {
        /// Seconds before the command is killed.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// The command (joined with spaces, run by bash).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Stop the guest of `guest boot` and remove its namespace and files
    /// (and what guests of killed xtask runs left behind).
    Stop,
    /// The guest comparison's packet generator, run inside the guest by
    /// `lab.sh measure` (see guest/loadgen.rs).
    #[command(hide = true)]
    Loadgen(loadgen::LoadgenArgs),
    /// Throughput baseline in a fresh guest: plain veth, kernel PPTP
    /// (AF_PPPOX on both ends) and pptpd + pptp-linux (with and without
    /// MPPE), TCP with iperf3.
    KernelPptpBench {
        /// Seconds of each iperf3 run.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// Runs a `cargo xtask guest` command.
pub fn main(command: GuestCommand) -> anyhow::Result<()> {
    match command {
        GuestCommand::Build { force } => {
            let started = Instant::now();
            let image = image::build(force)?;
            eprintln!(
                "guest: image {} ({:.0} s)",
                image.disk.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        GuestCommand::Boot {
            cpus,
            memory_mib,
            cpu_model,
        } => {
            let options = BootOptions {
                cpus,
                memory_mib,
                cpu_model,
                ..BootOptions::default()
            };
            let guest = Guest::boot_detached(&options)?;
            let mut msg = String::new();
            let _ = writeln!(
                msg,
                "guest: running in the background (namespace {})",
                guest.netns()
            );
            let _ = writeln!(msg, "  cargo xtask guest exec -- uname -a");
            let _ = writeln!(
                msg,
                "  cargo xtask guest connect [--mppe]   (dials {HOST_ADDR} as {PPP_USER}/{PPP_SECRET})"
            );
            let _ = writeln!(msg, "  ip netns exec {} ping {GUEST_ADDR}", guest.netns());
            let _ = write!(msg, "  cargo xtask guest stop");
            eprintln!("{msg}");
            Ok(())
        }
        GuestCommand::Exec { timeout, command } => {
            let guest = Guest::attach()?;
            let out = guest.exec_timeout(&command.join(" "), Duration::from_secs(timeout))?;
            print_output(&out)
        }
        GuestCommand::Connect { server, mppe, unit } => {
            let guest = Guest::attach()?;
            let mppe = if mppe { Mppe::Required } else { Mppe::None };
            let link = guest.pptp_connect(server, mppe, unit)?;
            println!(
                "{}: {} -> {} (up in {:.2} s)",
                link.iface,
                link.local,
                link.peer,
                link.setup.as_secs_f64()
            );
            Ok(())
        }
        GuestCommand::Disconnect { unit } => Guest::attach()?.pptp_disconnect(unit),
        GuestCommand::RunHost {
            timeout,
            program,
            args,
        } => {
            let guest = Guest::attach()?;
            let path = guest.install(&program)?;
            let mut cmd = shell_quote(&path);
            for a in &args {
                cmd.push(' ');
                cmd.push_str(&shell_quote(a));
            }
            print_output(&guest.exec_timeout(&cmd, Duration::from_secs(timeout))?)
        }
        GuestCommand::Stop => {
            util::require_root("stopping the test guest")?;
            clean_stale();
            if stop_detached() {
                eprintln!("guest: stopped");
            } else {
                eprintln!("guest: none was running");
            }
            Ok(())
        }
        GuestCommand::Loadgen(args) => loadgen::main(&args),
        GuestCommand::KernelPptpBench { seconds, json } => {
            let options = BootOptions::default();
            let guest = Guest::boot(&options)?;
            let figures = bench::kernel_pptp(&guest, &options, seconds)?;
            guest.shutdown();
            print!("{}", figures.table());
            if let Some(path) = json {
                fs::write(&path, figures.json())
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("guest: figures written to {}", path.display());
            }
            Ok(())
        }
    }
}

fn print_output(out: &Output) -> anyhow::Result<()> {
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    if !out.success() {
        bail!("the command exited with status {}", out.status);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("198.18.0.1"), "198.18.0.1");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    /// A stand-in for qemu: a process whose threads are named as qemu's
    /// (its main thread, "CPU 0/TCG", "CPU 1/TCG"), which the test's
    /// [`Guest`] kills when dropped.
    fn fake_qemu() -> Guest {
        let script = "import ctypes, threading, time\n\
                      libc = ctypes.CDLL(None)\n\
                      def vcpu(name):\n\
                      \x20   libc.prctl(15, name.encode(), 0, 0, 0)\n\
                      \x20   time.sleep(60)\n\
                      for n in ('CPU 0/TCG', 'CPU 1/TCG'):\n\
                      \x20   threading.Thread(target=vcpu, args=(n,), daemon=True).start()\n\
                      print('up', flush=True)\n\
                      time.sleep(60)\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (cargo xtask setup installs it)");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "up");
        let dir = std::env::temp_dir().join(format!("pxg-pin-test-{}", std::process::id()));
        Guest {
            dir,
            netns: format!("pxg-pin-test-{}-none", std::process::id()),
            qemu: Some(Qemu {
                pid: child.id(),
                child: Some(Mutex::new(child)),
            }),
            detached: false,
            id_prefix: String::new(),
            next_id: AtomicU64::new(0),
        }
    }

    fn cpus_of(set: &libc::cpu_set_t) -> Vec<usize> {
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: reads a bit of a set we own.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, set) })
            .collect()
    }

    #[test]
    fn the_forwarding_vcpu_gets_a_host_cpu_of_its_own() {
        let before = affinity(0).unwrap();
        let usable = cpus_of(&before);
        let guest = fake_qemu();
        let Some((&alone, rest)) = usable.split_last().filter(|(_, r)| !r.is_empty()) else {
            // One usable CPU: refused, with the reason.
            let err = guest.pin_on_host(1).err().expect("refused").to_string();
            assert!(err.contains("two usable host CPUs"), "{err}");
            return;
        };
        let allowed = |cpu: u32| -> Vec<usize> {
            let path = guest.vcpu_thread(cpu).expect("the vCPU's thread");
            let tid: libc::pid_t = path.file_name().unwrap().to_str().unwrap().parse().unwrap();
            cpus_of(&affinity(tid).unwrap())
        };
        assert_eq!(
            guest.vcpu_host_cpus(1).as_deref(),
            Some(guest.vcpu_host_cpus(0).unwrap().as_str())
        );
        let pin = guest.pin_on_host(1).unwrap();
        assert_eq!(allowed(1), vec![alone]);
        assert_eq!(allowed(0), rest.to_vec());
        assert_eq!(guest.vcpu_host_cpus(1), Some(alone.to_string()));
        let main = guest.qemu.as_ref().unwrap().pid as libc::pid_t;
        assert_eq!(
            cpus_of(&affinity(main).unwrap()),
            rest.to_vec(),
            "qemu's main loop"
        );
        assert_eq!(
            cpus_of(&affinity(0).unwrap()),
            rest.to_vec(),
            "the calling thread"
        );
        assert!(guest.pin_on_host(7).is_err(), "no thread CPU 7/TCG");
        drop(pin);
        assert_eq!(cpus_of(&affinity(0).unwrap()), usable, "given back");
    }

    #[test]
    fn link_line() {
        let link = parse_link("noise\nppp3 198.19.2.2 198.19.2.1 1.50\n").unwrap();
        assert_eq!(link.iface, "ppp3");
        assert_eq!(link.local, Ipv4Addr::new(198, 19, 2, 2));
        assert_eq!(link.peer, Ipv4Addr::new(198, 19, 2, 1));
        assert_eq!(link.setup, Duration::from_millis(1500));
        assert!(parse_link("ppp3 nonsense").is_none());
    }
}
