//! `xtask guest loadgen`: the packet generator of the guest comparison,
//! run inside the guest (the xtask binary is copied there; it needs
//! nothing but glibc). Unlike `pptp-lab loadgen` it spreads its packets
//! over many sessions, round robin, so that kernel PPTP with 1,000 PPP
//! units is measured with traffic on all of them. It does `--runs` runs
//! and prints one line per run: frames sent, frames that reached the sink
//! interface (its receive counter, read in its namespace; `lab.sh measure`
//! drops them there with a tc filter), each CPU's busy time from
//! `/proc/stat`, each CPU's NET_RX softirqs from `/proc/softirqs`, each
//! CPU's switches into a task and its tasks' run time in nanoseconds from
//! `/proc/schedstat`, and the run time and run count of the daemon's BPF programs
//! (their fds' fdinfo, with `kernel.bpf_stats_enabled` on), all as
//! differences over the run.
//! Doing this in one process keeps the guest quiet between runs (every
//! fork costs a lot under TCG).
//!
//! Frames leave through an AF_PACKET socket (qdisc bypassed, `sendmmsg` in
//! batches of 64) and are pre-built, at least one per session and at least
//! a batch of them; only the GRE sequence number changes per frame.
//!
//! With `--mppe` (client → network, one session) every frame must be
//! encrypted into the session's next coherency count with a new key
//! (stateless MPPE, RFC 3078 section 8.1), as a client sends them: no
//! template serves two frames. xtask has no cipher of its own (the
//! daemon's is in the pptp-daemon library, which xtask does not build),
//! so each run's frames are sent by `pptp-lab mppe-send` with that cipher,
//! and this process takes the same counters around it as around its own
//! runs. With `--pps` (every run of the comparison) `mppe-send` encrypts
//! the run's frames before it starts sending them: the generator's own
//! key changes (as dear as the receiver's) no longer bound the rate it
//! offers.

use std::{
    io,
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// `xtask guest loadgen ...`
#[derive(Debug, clap::Args)]
pub struct LoadgenArgs {
    /// Interface the frames leave from (in the namespace xtask runs in).
    #[arg(long)]
    pub iface: String,
    /// Destination MAC of the frames (the next hop's), aa:bb:cc:dd:ee:ff.
    #[arg(long)]
    pub dst_mac: String,
    /// The sessions: one line "CALL_ID CLIENT_ADDRESS" each (the server's
    /// call ID and the client's tunnel address).
    #[arg(long)]
    pub sessions: PathBuf,
    /// The host on the far side of the server, in every packet.
    #[arg(long)]
    pub lan_host: Ipv4Addr,
    /// up: from the clients (source = the session's address, destination
    /// = the LAN host); down: from the LAN host to each client address.
    #[arg(long)]
    pub dir: Direction,
    /// Up only: wrap in PPP and enhanced GRE from PEER to SERVER with the
    /// session's call ID (without it: plain IPv4, for plain forwarding).
    #[arg(long, value_name = "PEER,SERVER")]
    pub gre: Option<String>,
    /// Size of the inner IPv4 packet.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// First GRE sequence number (above what earlier runs sent); each run
    /// starts 2^22 above the one before.
    #[arg(long, default_value_t = 1 << 16)]
    pub seq_base: u32,
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// The sink: its namespace (a name in /var/run/netns) and interface.
    #[arg(long, value_name = "NS:IFACE")]
    pub sink: String,
    /// The daemon whose BPF programs are timed.
    #[arg(long)]
    pub daemon_pid: Option<u32>,
    /// Offer this many frames a second, in batches of about a
    /// millisecond's worth, instead of as many as the socket takes: every
    /// path then carries the same load, whatever the generator's own cost
    /// on it (see [`pace`]).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub pps: Option<u32>,
    /// Up, with --gre, one session: encrypt every frame with stateless
    /// MPPE from the start key in FILE ("BITS HEX", the key the server
    /// decrypts with), continuing the session's key chain and GRE
    /// sequence numbers from run to run (kept in FILE.state; see
    /// pptp-lab's `SendState`). `pptp-lab mppe-send` (--pptp-lab) sends
    /// the frames.
    #[arg(long, value_name = "FILE", requires = "pptp_lab")]
    pub mppe: Option<PathBuf>,
    /// The pptp-lab binary that sends the frames of --mppe.
    #[arg(long, value_name = "PATH")]
    pub pptp_lab: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Direction {
    Up,
    Down,
}

/// A pre-built frame and where its GRE sequence number goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    bytes: Vec<u8>,
    seq_at: Option<usize>,
}

/// Runs the generator `--runs` times and prints a line per run (see
/// [`Counters::line`]).
pub fn main(args: &LoadgenArgs) -> anyhow::Result<()> {
    let mac = parse_mac(&args.dst_mac)?;
    let text = std::fs::read_to_string(&args.sessions)
        .with_context(|| format!("reading {}", args.sessions.display()))?;
    let sessions = parse_sessions(&text)?;
    let gre = match &args.gre {
        Some(s) => {
            let (a, b) = s.split_once(',').context("--gre is PEER,SERVER")?;
            Some((a.parse()?, b.parse()?))
        }
        None => None,
    };
    let frames = frames(mac, &sessions, args.lan_host, args.dir, gre, args.size);
    let sender = match (&args.mppe, &args.pptp_lab) {
        (Some(key), Some(lab)) => {
            let (Direction::Up, Some(gre), [session]) = (args.dir, gre, &sessions[..]) else {
                bail!("--mppe sends up, with --gre, for one session");
            };
            Some((lab, mppe_send_args(args, key, *session, gre)))
        }
        _ => None,
    };
    let socket = match sender {
        Some(_) => None,
        None => Some(Socket::open(&args.iface)?),
    };
    let (sink_ns, sink_if) = args.sink.split_once(':').context("--sink is NS:IFACE")?;
    let home = std::fs::File::open("/proc/self/ns/net").context("own network namespace")?;
    let sink = std::fs::File::open(format!("/var/run/netns/{sink_ns}"))
        .with_context(|| format!("network namespace {sink_ns}"))?;
    let snapshot = || -> anyhow::Result<Counters> {
        setns(&sink)?;
        let dev = std::fs::read_to_string("/proc/self/net/dev");
        setns(&home)?;
        let delivered = rx_packets(&dev?, sink_if)
            .with_context(|| format!("no {sink_if} in {sink_ns}'s /proc/net/dev"))?;
        let (bpf_ns, bpf_runs) = args.daemon_pid.map_or((0, 0), bpf_stats);
        Ok(Counters {
            delivered,
            busy: busy_jiffies(&std::fs::read_to_string("/proc/stat")?),
            net_rx: net_rx(&std::fs::read_to_string("/proc/softirqs")?),
            sched: schedstat(&std::fs::read_to_string("/proc/schedstat").unwrap_or_default()),
            backlog_drops: backlog_drops(&std::fs::read_to_string("/proc/net/softnet_stat")?),
            bpf_ns,
            bpf_runs,
        })
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    for run in 0..args.runs {
        let before = snapshot()?;
        let seq_base = args.seq_base.wrapping_add(run << 22);
        let (sent, seconds) = match (&socket, &sender) {
            (Some(socket), _) => {
                let started = Instant::now();
                let sent = socket.run(
                    &frames,
                    Duration::from_secs_f64(args.seconds),
                    seq_base,
                    args.pps,
                );
                (sent, started.elapsed().as_secs_f64())
            }
            (None, Some((lab, send_args))) => {
                let out = std::process::Command::new(lab)
                    .args(send_args)
                    .args(["--seq-base", &seq_base.to_string()])
                    .output()
                    .with_context(|| format!("running {}", lab.display()))?;
                anyhow::ensure!(
                    out.status.success(),
                    "pptp-lab mppe-send: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                parse_sent(&String::from_utf8_lossy(&out.stdout))?
            }
            (None, None) => unreachable!("a socket or a sender"),
        };
        // What is still in flight arrives within a few milliseconds.
        std::thread::sleep(Duration::from_millis(50));
        let after = snapshot()?;
        println!("{}", after.line(&before, sent, seconds, hz));
    }
    Ok(())
}

/// The arguments of `pptp-lab mppe-send` for `session`'s frames with
/// the start key in `key` (all but --seq-base, which each run adds: the
/// sender uses it only when it has no state yet).
fn mppe_send_args(
    args: &LoadgenArgs,
    key: &std::path::Path,
    (call_id, client): (u16, Ipv4Addr),
    (peer, server): (Ipv4Addr, Ipv4Addr),
) -> Vec<String> {
    let mut state = key.as_os_str().to_owned();
    state.push(".state");
    let mut v: Vec<String> = [
        "mppe-send",
        "--iface",
        &args.iface,
        "--dst-mac",
        &args.dst_mac,
        "--gre",
        &format!("{peer},{server},{call_id}"),
        "--src",
        &client.to_string(),
        "--dst",
        &args.lan_host.to_string(),
        "--size",
        &args.size.to_string(),
        "--seconds",
        &args.seconds.to_string(),
        "--key",
        &key.to_string_lossy(),
        "--state",
        &state.to_string_lossy(),
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    if let Some(pps) = args.pps {
        v.extend(["--pps".to_owned(), pps.to_string()]);
    }
    v
}

/// Frames sent and seconds from `pptp-lab mppe-send`'s "sent=N
/// seconds=S".
fn parse_sent(out: &str) -> anyhow::Result<(u64, f64)> {
    let get = |key: &str| {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .with_context(|| format!("no {key} in {out:?}"))
    };
    let sent = get("sent")?.parse().context("sent")?;
    let seconds: f64 = get("seconds")?.parse().context("seconds")?;
    anyhow::ensure!(seconds > 0.0, "no duration in {out:?}");
    Ok((sent, seconds))
}

fn setns(ns: &std::fs::File) -> anyhow::Result<()> {
    // SAFETY: a plain syscall on an open namespace fd.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error()).context("setns");
    }
    Ok(())
}

/// Counters read before and after a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Counters {
    /// Packets the sink interface received.
    delivered: u64,
    /// Busy jiffies per CPU (all but idle and iowait).
    busy: Vec<u64>,
    /// NET_RX softirqs per CPU.
    net_rx: Vec<u64>,
    /// Per CPU from /proc/schedstat: switches into a task, and its tasks'
    /// run time in ns (empty without the file).
    sched: Vec<Sched>,
    /// Packets dropped because a CPU's backlog was full, all CPUs.
    backlog_drops: u64,
    /// The daemon's BPF programs: run time (ns) and runs, summed.
    bpf_ns: u64,
    bpf_runs: u64,
}

impl Counters {
    /// `run sent=N seconds=S delivered=N hz=N busy=J,J netrx=N,N
    /// backlog_drops=N bpf_ns=N bpf_runs=N switches=N,N task_ns=N,N`:
    /// differences from `before`.
    fn line(&self, before: &Counters, sent: u64, seconds: f64, hz: i64) -> String {
        let diff = |a: &[u64], b: &[u64]| {
            a.iter()
                .zip(b)
                .map(|(a, b)| a.saturating_sub(*b).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let switches = |s: &[Sched]| s.iter().map(|c| c.switch_ins).collect::<Vec<_>>();
        let task = |s: &[Sched]| s.iter().map(|c| c.task_ns).collect::<Vec<_>>();
        format!(
            "run sent={sent} seconds={seconds:.3} delivered={} hz={hz} busy={} netrx={} backlog_drops={} bpf_ns={} bpf_runs={} switches={} task_ns={}",
            self.delivered.saturating_sub(before.delivered),
            diff(&self.busy, &before.busy),
            diff(&self.net_rx, &before.net_rx),
            self.backlog_drops.saturating_sub(before.backlog_drops),
            self.bpf_ns.saturating_sub(before.bpf_ns),
            self.bpf_runs.saturating_sub(before.bpf_runs),
            diff(&switches(&self.sched), &switches(&before.sched)),
            diff(&task(&self.sched), &task(&before.sched)),
        )
    }
}

/// One CPU's line of /proc/schedstat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sched {
    /// `pcount`: times a task (not the idle task) was switched in. On the
    /// forwarding CPU, which idles between batches of packets, nearly
    /// each is a wake-up of a NAPI thread. Counted without
    /// `kernel.sched_schedstats` (the guest's `sched_goidle` is not).
    switch_ins: u64,
    /// `rq_cpu_time`: run time of the tasks on this CPU in ns, the idle
    /// task's excluded. With threaded NAPI (`lab.sh pin`) that is the
    /// forwarding work, at the scheduler clock's resolution where
    /// /proc/stat counts ticks.
    task_ns: u64,
}

/// The numbers of each `cpuN` line (`cpu0`, `cpu1`, ...; not the `cpu`
/// total) of /proc/stat or /proc/schedstat, after the name.
fn per_cpu(text: &str) -> impl Iterator<Item = Vec<u64>> + '_ {
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap_or(0))
                .collect()
        })
}

/// The `cpuN` lines of /proc/schedstat (version 15: `cpuN yld_count 0
/// sched_count sched_goidle ttwu_count ttwu_local rq_cpu_time run_delay
/// pcount`).
fn schedstat(text: &str) -> Vec<Sched> {
    per_cpu(text)
        .map(|v| Sched {
            switch_ins: v.get(8).copied().unwrap_or(0),
            task_ns: v.get(6).copied().unwrap_or(0),
        })
        .collect()
}

/// Busy jiffies of each `cpuN` line of /proc/stat: user, nice, system,
/// irq, softirq and steal (not idle, not iowait).
fn busy_jiffies(stat: &str) -> Vec<u64> {
    per_cpu(stat)
        .map(|v| [0, 1, 2, 5, 6, 7].iter().filter_map(|i| v.get(*i)).sum())
        .collect()
}

/// The NET_RX line of /proc/softirqs, per CPU.
fn net_rx(softirqs: &str) -> Vec<u64> {
    softirqs
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("NET_RX:"))
        .map(|rest| {
            rest.split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default()
}

/// The second column of /proc/net/softnet_stat (hex: packets dropped at a
/// full backlog), summed over the CPUs.
fn backlog_drops(softnet: &str) -> u64 {
    softnet
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum()
}

/// Received packets of `iface` in a /proc/net/dev text.
fn rx_packets(dev: &str, iface: &str) -> Option<u64> {
    dev.lines().find_map(|l| {
        let (name, rest) = l.split_once(':')?;
        (name.trim() == iface).then(|| rest.split_whitespace().nth(1)?.parse().ok())?
    })
}

/// Run time (ns) and run count summed over the BPF programs that process
/// `pid` holds fds of (each program once).
fn bpf_stats(pid: u32) -> (u64, u64) {
    let mut seen = Vec::new();
    let (mut ns, mut runs) = (0, 0);
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return (0, 0);
    };
    for entry in dir.flatten() {
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        if let Some((id, t, c)) = prog_fdinfo(&info)
            && !seen.contains(&id)
        {
            seen.push(id);
            ns += t;
            runs += c;
        }
    }
    (ns, runs)
}

/// prog_id, run_time_ns and run_cnt of a BPF program fd's fdinfo.
fn prog_fdinfo(info: &str) -> Option<(u64, u64, u64)> {
    let field = |name: &str| {
        info.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().parse().ok())?
        })
    };
    Some((field("prog_id")?, field("run_time_ns")?, field("run_cnt")?))
}

fn parse_mac(s: &str) -> anyhow::Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() != 6 {
        bail!("{s:?} is not a MAC address");
    }
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).with_context(|| format!("{s:?} is not a MAC address"))?;
    }
    Ok(mac)
}

/// "CALL_ID ADDRESS" lines; blank lines are skipped.
fn parse_sessions(text: &str) -> anyhow::Result<Vec<(u16, Ipv4Addr)>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let (Some(call), Some(addr), None) = (words.next(), words.next(), words.next()) else {
            bail!("session line {line:?} is not \"CALL_ID ADDRESS\"");
        };
        out.push((
            call.parse()
                .with_context(|| format!("call ID in {line:?}"))?,
            addr.parse()
                .with_context(|| format!("address in {line:?}"))?,
        ));
    }
    if out.is_empty() {
        bail!("no sessions");
    }
    Ok(out)
}

/// One frame per session.
fn frames(
    mac: [u8; 6],
    sessions: &[(u16, Ipv4Addr)],
    lan_host: Ipv4Addr,
    dir: Direction,
    gre: Option<(Ipv4Addr, Ipv4Addr)>,
    size: usize,
) -> Vec<Frame> {
    sessions
        .iter()
        .map(|&(call_id, client)| match (dir, gre) {
            (Direction::Up, Some((peer, server))) => {
                let inner = ipv4_udp(client, lan_host, 17, size);
                let mut gre = vec![0x30, 0x01, 0x88, 0x0B];
                gre.extend_from_slice(&((inner.len() + 4) as u16).to_be_bytes());
                gre.extend_from_slice(&call_id.to_be_bytes());
                gre.extend_from_slice(&[0, 0, 0, 0]);
                gre.extend_from_slice(&[0xFF, 0x03, 0x00, 0x21]);
                gre.extend_from_slice(&inner);
                let mut outer = ipv4_udp(peer, server, 47, 20 + gre.len());
                outer.truncate(20);
                outer.extend_from_slice(&gre);
                Frame {
                    bytes: ethernet(mac, &outer),
                    seq_at: Some(14 + 20 + 8),
                }
            }
            (Direction::Up, None) => Frame {
                bytes: ethernet(mac, &ipv4_udp(client, lan_host, 17, size)),
                seq_at: None,
            },
            (Direction::Down, _) => Frame {
                bytes: ethernet(mac, &ipv4_udp(lan_host, client, 17, size)),
                seq_at: None,
            },
        })
        .collect()
}

fn checksum(header: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in header.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet of `size` bytes (at least 28) with protocol `proto`;
/// for UDP (17) a header from port 9 to port 9 and no checksum.
fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, size: usize) -> Vec<u8> {
    let size = size.max(28);
    let mut p = vec![0u8; size];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    if proto == 17 {
        p[20..22].copy_from_slice(&9u16.to_be_bytes());
        p[22..24].copy_from_slice(&9u16.to_be_bytes());
        p[24..26].copy_from_slice(&((size - 20) as u16).to_be_bytes());
    }
    p
}

fn ethernet(dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0xbe, 0x02]);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An AF_PACKET socket on one interface.
struct Socket {
    fd: OwnedFd,
    ifindex: i32,
}

impl Socket {
    fn open(iface: &str) -> anyhow::Result<Socket> {
        let name = std::ffi::CString::new(iface)?;
        // SAFETY: plain libc calls; the fd is owned right away.
        unsafe {
            let ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            if ifindex == 0 {
                return Err(io::Error::last_os_error()).context(format!("interface {iface}"));
            }
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error()).context("AF_PACKET socket");
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let one: libc::c_int = 1;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as u32,
            );
            let sndbuf: libc::c_int = 8 << 20;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&sndbuf as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as u32,
            );
            Ok(Socket { fd, ifindex })
        }
    }

    /// Sends the frames round robin for `duration`; returns how many went.
    fn run(&self, sessions: &[Frame], duration: Duration, seq_base: u32, pps: Option<u32>) -> u64 {
        const BATCH: usize = 64;
        // At least a batch of frames, each its own buffer: with fewer
        // sessions than that, each session's frame several times. A
        // session's sequence numbers go up in the order its copies leave.
        let copies = BATCH.div_ceil(sessions.len().max(1));
        let mut frames: Vec<Frame> = (0..copies).flat_map(|_| sessions.iter().cloned()).collect();
        let mut seqs = vec![seq_base; sessions.len()];
        // SAFETY: sockaddr_ll is plain data.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        let mut sent = 0u64;
        let mut offered = 0u64;
        let mut cursor = 0usize;
        let batch = pps.map_or(BATCH, batch_for).min(frames.len());
        let mut iovs: Vec<libc::iovec> = Vec::with_capacity(batch);
        let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(batch);
        let started = Instant::now();
        while started.elapsed() < duration {
            if let Some(pps) = pps
                && let Some(wait) = pace(started.elapsed(), offered, pps)
            {
                std::thread::sleep(wait);
                continue;
            }
            offered += batch as u64;
            iovs.clear();
            msgs.clear();
            for i in 0..batch {
                let t = (cursor + i) % frames.len();
                let f = &mut frames[t];
                if let Some(at) = f.seq_at {
                    let seq = &mut seqs[t % sessions.len()];
                    f.bytes[at..at + 4].copy_from_slice(&seq.to_be_bytes());
                    *seq = seq.wrapping_add(1);
                }
                iovs.push(libc::iovec {
                    iov_base: f.bytes.as_mut_ptr().cast(),
                    iov_len: f.bytes.len(),
                });
            }
            for iov in &mut iovs {
                // SAFETY: mmsghdr is plain data; all-zero is valid.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
                m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                msgs.push(m);
            }
            // SAFETY: msgs and what it points to live across the call.
            let n =
                unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), batch as u32, 0) };
            // Frames that did not go keep the numbers they were given:
            // a gap, which receivers accept.
            cursor = (cursor + batch) % frames.len();
            if n > 0 {
                sent += n as u64;
            } else {
                std::thread::yield_now();
            }
        }
        sent
    }
}

/// Frames per `sendmmsg` when offering `pps` frames a second: about a
/// millisecond's worth, 1 to 64.
fn batch_for(pps: u32) -> usize {
    (pps as usize / 1000).clamp(1, 64)
}

/// How long to wait before the next batch when `offered` frames went out
/// in the `elapsed` time since the start and the rate is `pps`: `None` to
/// send now. The schedule is absolute (frame n is due at n / pps), so a
/// late batch is followed by an early one, never by a lasting shortfall
/// beyond what the socket refused.
fn pace(elapsed: Duration, offered: u64, pps: u32) -> Option<Duration> {
    let due_ns = u128::from(offered) * 1_000_000_000 / u128::from(pps.max(1));
    let due = Duration::from_nanos(u64::try_from(due_ns).unwrap_or(u64::MAX));
    due.checked_sub(elapsed).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_schedule() {
        let ms = Duration::from_millis;
        assert_eq!(batch_for(500), 1);
        assert_eq!(batch_for(8000), 8);
        assert_eq!(batch_for(1_000_000), 64);
        // 8,000 a second: frame 8 is due at 1 ms, frame 80 at 10 ms.
        assert_eq!(pace(ms(0), 0, 8000), None);
        assert_eq!(pace(ms(0), 8, 8000), Some(ms(1)));
        assert_eq!(pace(ms(4), 80, 8000), Some(ms(6)));
        assert_eq!(pace(ms(10), 80, 8000), None);
        // Behind schedule: send at once until caught up.
        assert_eq!(pace(ms(50), 80, 8000), None);
    }

    #[test]
    fn mppe_runs_are_sent_by_pptp_lab() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: LoadgenArgs,
        }
        let base = [
            "loadgen",
            "--iface",
            "gen2",
            "--dst-mac",
            "02:00:00:00:00:01",
            "--sessions",
            "/tmp/s",
            "--lan-host",
            "198.19.7.2",
            "--dir",
            "up",
            "--sink",
            "lan:lan2",
            "--size",
            "1396",
            "--pps",
            "5000",
        ];
        // --mppe needs the sender.
        assert!(Cli::try_parse_from(base.iter().chain(&["--mppe", "/tmp/k"])).is_err());
        let cli = Cli::parse_from(
            base.iter()
                .chain(&["--mppe", "/tmp/k", "--pptp-lab", "/tmp/l"]),
        );
        let v = mppe_send_args(
            &cli.args,
            std::path::Path::new("/tmp/k"),
            (1000, Ipv4Addr::new(198, 19, 16, 10)),
            (Ipv4Addr::new(198, 19, 6, 2), Ipv4Addr::new(198, 19, 6, 1)),
        );
        let joined = v.join(" ");
        assert!(joined.starts_with("mppe-send --iface gen2 --dst-mac 02:00:00:00:00:01 --gre 198.19.6.2,198.19.6.1,1000 --src 198.19.16.10 --dst 198.19.7.2 --size 1396 --seconds 2 "), "{joined}");
        assert!(
            joined.ends_with("--key /tmp/k --state /tmp/k.state --pps 5000"),
            "{joined}"
        );
        assert_eq!(
            parse_sent("sent=1200 seconds=1.502\n").unwrap(),
            (1200, 1.502)
        );
        assert!(parse_sent("sent=1200").is_err());
        assert!(parse_sent("sent=x seconds=1").is_err());
        assert!(parse_sent("sent=1 seconds=0.000").is_err());
    }

    #[test]
    fn sessions_file() {
        let s = parse_sessions("1000 198.19.16.10\n\n1001 198.19.16.11\n").unwrap();
        assert_eq!(
            s,
            vec![
                (1000, Ipv4Addr::new(198, 19, 16, 10)),
                (1001, Ipv4Addr::new(198, 19, 16, 11))
            ]
        );
        assert!(parse_sessions("").is_err());
        assert!(parse_sessions("1000").is_err());
        assert!(parse_sessions("70000 198.19.16.10").is_err());
        assert_eq!(
            parse_mac("02:00:0a:ff:00:01").unwrap(),
            [2, 0, 10, 255, 0, 1]
        );
        assert!(parse_mac("02:00").is_err());
    }

    #[test]
    fn counters_from_proc() {
        let stat = "cpu  10 0 20 300 1 2 3 0 0 0\ncpu0 4 0 10 150 1 1 1 0 0 0\ncpu1 6 0 10 150 0 1 2 0 0 0\nintr 5\n";
        assert_eq!(busy_jiffies(stat), vec![16, 19]);
        let softirqs = "                    CPU0       CPU1\n          HI:          1          0\n      NET_RX:         26         47\n";
        assert_eq!(net_rx(softirqs), vec![26, 47]);
        let dev = "Inter-|   Receive\n face |bytes    packets errs\n  lan0: 1000 17 0 0 0 0 0 0 64 1 0 0 0 0 0 0\n    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(rx_packets(dev, "lan0"), Some(17));
        assert_eq!(rx_packets(dev, "lan"), None);
        let info = "pos:\t0\nflags:\t02000002\nprog_type:\t6\nprog_id:\t41\nrun_time_ns:\t12345\nrun_cnt:\t67\n";
        assert_eq!(prog_fdinfo(info), Some((41, 12345, 67)));
        assert_eq!(prog_fdinfo("pos:\t0\nmap_type:\t1\n"), None);
        let softnet = "00000010 0000000a 00000000\n00000020 00000001 00000000\n";
        assert_eq!(backlog_drops(softnet), 11);
        let sched = "version 15\ntimestamp 4295\ncpu0 0 0 90 40 70 30 123456 789 95\ndomain0 3 1 2\ncpu1 0 0 12 7 9 2 5000 6 11\n";
        assert_eq!(
            schedstat(sched),
            vec![
                Sched {
                    switch_ins: 95,
                    task_ns: 123456
                },
                Sched {
                    switch_ins: 11,
                    task_ns: 5000
                }
            ]
        );
        let before = Counters {
            delivered: 10,
            busy: vec![100, 200],
            net_rx: vec![5, 6],
            sched: vec![
                Sched {
                    switch_ins: 3,
                    task_ns: 1000
                };
                2
            ],
            backlog_drops: 1,
            bpf_ns: 1000,
            bpf_runs: 10,
        };
        let after = Counters {
            delivered: 110,
            busy: vec![150, 290],
            net_rx: vec![5, 16],
            sched: vec![
                Sched {
                    switch_ins: 3,
                    task_ns: 1500,
                },
                Sched {
                    switch_ins: 53,
                    task_ns: 91000,
                },
            ],
            backlog_drops: 4,
            bpf_ns: 5000,
            bpf_runs: 110,
        };
        assert_eq!(
            after.line(&before, 120, 2.0, 100),
            "run sent=120 seconds=2.000 delivered=100 hz=100 busy=50,90 netrx=0,10 backlog_drops=3 bpf_ns=4000 bpf_runs=100 switches=0,50 task_ns=500,90000"
        );
    }

    #[test]
    fn gre_frames_carry_each_sessions_call_id_and_address() {
        let sessions = [
            (1000, Ipv4Addr::new(198, 19, 16, 10)),
            (1001, Ipv4Addr::new(198, 19, 16, 11)),
        ];
        let lan = Ipv4Addr::new(198, 19, 4, 2);
        let gre = (Ipv4Addr::new(198, 19, 1, 2), Ipv4Addr::new(198, 19, 1, 1));
        let f = frames([2; 6], &sessions, lan, Direction::Up, Some(gre), 64);
        assert_eq!(f.len(), 2);
        let b = &f[1].bytes;
        // Ethernet, outer IPv4 (GRE), enhanced GRE with a sequence number,
        // PPP (address, control, IPv4), inner IPv4/UDP of 64 bytes.
        assert_eq!(b.len(), 14 + 20 + 12 + 4 + 64);
        assert_eq!(&b[12..14], &[0x08, 0x00]);
        assert_eq!(b[14 + 9], 47);
        assert_eq!(checksum(&b[14..34]), 0, "outer header checksum");
        assert_eq!(&b[34..38], &[0x30, 0x01, 0x88, 0x0B]);
        assert_eq!(&b[38..40], &68u16.to_be_bytes(), "payload length");
        assert_eq!(&b[40..42], &1001u16.to_be_bytes(), "call ID");
        assert_eq!(f[1].seq_at, Some(42));
        assert_eq!(&b[46..50], &[0xFF, 0x03, 0x00, 0x21]);
        assert_eq!(&b[50 + 12..50 + 16], &[198, 19, 16, 11], "inner source");
        assert_eq!(&b[50 + 16..50 + 20], &[198, 19, 4, 2], "inner destination");
        assert_eq!(checksum(&b[50..70]), 0, "inner header checksum");

        let down = frames([2; 6], &sessions, lan, Direction::Down, None, 1400);
        assert_eq!(down[0].bytes.len(), 14 + 1400);
        assert_eq!(&down[0].bytes[14 + 16..14 + 20], &[198, 19, 16, 10]);
        assert_eq!(down[0].seq_at, None);
    }
}
