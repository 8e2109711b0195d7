//! `pptp-lab bench` (behind `cargo xtask bench`): packets per second
//! delivered and CPU time per packet through each data path, measured in
//! the lab topology (see [`crate::lab`]) with our own load generator.
//!
//! The generator pre-builds its frames and sends them in batches with
//! `sendmmsg` on an AF_PACKET socket (queueing discipline bypassed) from the
//! namespace where the traffic starts; an XDP program on the receiving end
//! (`pptp_xdp_sink`) counts what arrives and drops it.
//! The generator is pinned to one CPU ([`GENERATOR_CPU`]) and the server's
//! work to another ([`FORWARDING_CPU`], see [`pin_server`]): the figure
//! that compares paths is the forwarding CPU's busy time per delivered
//! packet (`/proc/stat`'s per-CPU line), with the XDP programs' own time
//! beside it from the kernel's BPF run-time statistics. Every figure is
//! the median of several runs, with the lowest and highest run.
//! Also recorded: the whole machine's busy time per packet (generator
//! included) and "own" CPU time (the scheduler's time of the generator
//! thread, the daemon and ksoftirqd).

use std::{
    collections::HashMap,
    io,
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
    time::{Duration, Instant},
};

use serde::Serialize;

use pptp_daemon::{
    mppe::{KeyLength, cipher::Encryptor, keys::StartKey},
    server::ctl::SessionInfo,
};

use crate::{
    lab::{LAB_LIMITS, LAN_HOST, Lab, LabOptions},
    xdp::{AuxPrograms, PASS_PROGRAM, ROUTE_PROGRAM, SINK_PROGRAM},
};

/// What `pptp-lab bench` is asked to do.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Rounds: every path of the forwarding labs is measured once per
    /// round, the paths a ratio compares next to each other; figures are
    /// the medians over the rounds with the range of the CPU figures, and
    /// each ratio the median of the rounds' ratios (one with --short).
    /// MPPE's measurement runs this often at the rate its search found.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// The smallest run that exercises everything (for the test suite).
    #[arg(long)]
    pub short: bool,
    /// Sessions for the many-sessions scale test (setup time, memory, traffic).
    #[arg(long, default_value_t = 10_000)]
    pub scale: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Only these labs (comma-separated): xdp, stack, userspace (with plain
    /// forwarding and the XDP routing ceiling), mppe, scale. Default: all.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Generators send straight into c0 and h0 instead of through an XDP
    /// relay (`Lab::relay_generators`, the default). Without the relay,
    /// veth copies every socket buffer it hands to an XDP program on s0 or
    /// l0 into a new page first, a cost a NIC driver does not have and that
    /// falls on the XDP paths alone; this flag shows that cost.
    #[arg(long)]
    pub no_relay: bool,
}

/// The labs `--only` chooses from.
const LABS: [&str; 5] = ["xdp", "stack", "userspace", "mppe", "scale"];

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// Data path: "stack" and "xdp" (the daemon's two forwarding modes,
    /// no ruleset), "stack+nft" (stack mode under [`RULESET`]),
    /// "userspace", "mppe" (MPPE on the fast path), "mppe-userspace" (the
    /// same with XDP off), "ip-forward" and "ip-forward+nft" (plain kernel
    /// forwarding without and with [`RULESET`]), "ip-forward+xdp-pass+nft"
    /// (the same with an XDP program passing everything on s0 and l0: what
    /// XDP on veth costs the stack), "xdp-route" (the XDP routing ceiling).
    pub path: String,
    /// "decap" (client to network) or "encap" (network to client).
    pub direction: String,
    /// Size of the inner IPv4 packet.
    pub size: usize,
    /// Sessions the traffic is spread over (0: no tunnel).
    pub sessions: usize,
    pub sent_pps: f64,
    pub delivered_pps: f64,
    /// The share of the frames sent that did not arrive (0 to 1).
    pub loss: f64,
    /// Machine CPU nanoseconds per delivered packet (generator included).
    pub cpu_ns_per_packet: f64,
    /// Lowest and highest `cpu_ns_per_packet` of the runs.
    pub cpu_ns_range: [f64; 2],
    /// The part of it the measured work took: time on the CPU of the
    /// generator thread (with the softirq work done in its context: the
    /// whole path on veth), the daemon's threads and ksoftirqd, without the
    /// other processes of a shared machine.
    pub own_cpu_ns_per_packet: f64,
    /// Lowest and highest `own_cpu_ns_per_packet` of the runs.
    pub own_cpu_ns_range: [f64; 2],
    /// Busy time of the forwarding CPU ([`FORWARDING_CPU`]: the server
    /// namespace's NAPI threads, its softirq work, the daemon) per
    /// delivered packet, from the per-CPU counters of `/proc/stat`
    /// (user + system + irq + softirq); NaN where nothing was pinned.
    pub fwd_cpu_ns_per_packet: f64,
    /// Lowest and highest `fwd_cpu_ns_per_packet` of the runs.
    pub fwd_cpu_ns_range: [f64; 2],
    /// The scheduler's time of the tasks that carry the server's work (its
    /// NAPI threads, the daemon, the forwarding CPU's ksoftirqd) per
    /// delivered packet: the forwarding CPU's work without what other
    /// processes of a shared machine ran on it.
    pub server_tasks_ns_per_packet: f64,
    /// The XDP programs on the server's interfaces, their own time per
    /// delivered packet from the kernel's BPF run-time statistics (all of
    /// them together; 0 where none ran).
    pub bpf_ns_per_packet: f64,
    /// The same per program: name, nanoseconds per run, runs per
    /// delivered packet.
    pub bpf_programs: Vec<ProgramCost>,
    /// Runs measured; every figure is their median.
    pub runs: usize,
}

/// One XDP program's own cost in a measurement (kernel BPF run-time
/// statistics: `run_time_ns` and `run_cnt` over the run).
#[derive(Clone, Debug, Serialize)]
pub struct ProgramCost {
    pub name: String,
    pub ns_per_run: f64,
    pub runs_per_packet: f64,
}

impl Measurement {
    /// The medians of `runs` (of one path, direction, size) and the range
    /// of their CPU figures.
    fn median(mut runs: Vec<Measurement>) -> Option<Measurement> {
        if runs.is_empty() {
            return None;
        }
        fn median(values: &mut [f64]) -> f64 {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        }
        let field = |f: fn(&Measurement) -> f64, runs: &[Measurement]| -> Vec<f64> {
            runs.iter().map(f).collect()
        };
        let range = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            [v[0], v[v.len() - 1]]
        };
        let sent = median(&mut field(|m| m.sent_pps, &runs));
        let delivered = median(&mut field(|m| m.delivered_pps, &runs));
        let loss = median(&mut field(|m| m.loss, &runs));
        let mut cpu = field(|m| m.cpu_ns_per_packet, &runs);
        let mut own = field(|m| m.own_cpu_ns_per_packet, &runs);
        let mut fwd = field(|m| m.fwd_cpu_ns_per_packet, &runs);
        let bpf = median(&mut field(|m| m.bpf_ns_per_packet, &runs));
        let tasks = median(&mut field(|m| m.server_tasks_ns_per_packet, &runs));
        let mut programs: Vec<ProgramCost> = Vec::new();
        for p in runs.iter().flat_map(|m| &m.bpf_programs) {
            if programs.iter().any(|q| q.name == p.name) {
                continue;
            }
            let of = |m: &Measurement, f: fn(&ProgramCost) -> f64| {
                m.bpf_programs
                    .iter()
                    .find(|q| q.name == p.name)
                    .map_or(0.0, f)
            };
            programs.push(ProgramCost {
                name: p.name.clone(),
                ns_per_run: median(
                    &mut runs
                        .iter()
                        .map(|m| of(m, |q| q.ns_per_run))
                        .collect::<Vec<_>>(),
                ),
                runs_per_packet: median(
                    &mut runs
                        .iter()
                        .map(|m| of(m, |q| q.runs_per_packet))
                        .collect::<Vec<_>>(),
                ),
            });
        }
        let n = runs.len();
        let mut m = runs.pop()?;
        m.sent_pps = sent;
        m.delivered_pps = delivered;
        m.loss = loss;
        m.cpu_ns_per_packet = median(&mut cpu);
        m.cpu_ns_range = range(cpu);
        m.own_cpu_ns_per_packet = median(&mut own);
        m.own_cpu_ns_range = range(own);
        m.fwd_cpu_ns_per_packet = median(&mut fwd);
        m.fwd_cpu_ns_range = range(fwd);
        m.bpf_ns_per_packet = bpf;
        m.server_tasks_ns_per_packet = tasks;
        m.bpf_programs = programs;
        m.runs = n;
        Some(m)
    }
}

/// How long each measurement runs, and how often.
#[derive(Clone, Copy, Debug)]
struct Timing {
    seconds: f64,
    runs: usize,
}

/// Session setup at scale.
#[derive(Clone, Debug, Serialize)]
pub struct Scale {
    pub sessions: usize,
    pub setup_seconds: f64,
    pub sessions_per_second: f64,
    pub daemon_rss_kib_before: u64,
    pub daemon_rss_kib_after: u64,
    pub bytes_per_session: f64,
}

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub machine: String,
    pub seconds_per_measurement: f64,
    /// Runs of each measurement (its figures are their medians).
    pub runs_per_measurement: usize,
    pub measurements: Vec<Measurement>,
    pub scale: Vec<Scale>,
    pub mppe_note: String,
    /// Which CPU carries what, and what the forwarding CPU figure counts.
    pub pinning_note: String,
    /// How the "+nft" rows were measured.
    pub nft_note: String,
    /// The ruleset of the "+nft" rows, as loaded for stack mode.
    pub nft_ruleset: String,
    /// The paths compared, each ratio from the figures of one round.
    pub ratios: Vec<Ratio>,
    /// Whether the generators sent through the XDP relay (the default;
    /// `--no-relay` turns it off).
    pub relay: bool,
}

/// One path's figure over another's, taken round by round: the two
/// measurements of a round run seconds apart, so what drifts between
/// rounds (the VM's steal time, the host's frequency) cancels out of the
/// ratio.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// The path over its base ("stack+nft", "ip-forward+nft").
    pub path: String,
    pub sessions: usize,
    pub base: String,
    pub base_sessions: usize,
    /// "fwd_cpu_ns_per_packet" or "delivered_pps".
    pub figure: String,
    pub direction: String,
    pub size: usize,
    /// Median of the rounds' ratios.
    pub median: f64,
    /// Lowest and highest of the rounds' ratios.
    pub range: [f64; 2],
    pub rounds: usize,
}

/// The ratios the bench reports (path, sessions, base, base sessions,
/// figure), each taken round by round.
const RATIOS: [(&str, usize, &str, usize, &str); 6] = [
    // Issue 17's targets: stack mode within 1.3 times kernel forwarding's
    // CPU per packet under the same ruleset, xdp mode at 0.95 or more of
    // the XDP routing ceiling's packet rate.
    ("stack+nft", 1, "ip-forward+nft", 0, "fwd_cpu_ns_per_packet"),
    ("xdp", 1, "xdp-route", 0, "delivered_pps"),
    // The same with an XDP program on s0 and l0 on both sides.
    (
        "stack+nft",
        1,
        "ip-forward+xdp-pass+nft",
        0,
        "fwd_cpu_ns_per_packet",
    ),
    ("xdp", 1, "xdp-route", 0, "fwd_cpu_ns_per_packet"),
    ("stack", 1, "ip-forward", 0, "fwd_cpu_ns_per_packet"),
    ("userspace", 1, "xdp", 1, "fwd_cpu_ns_per_packet"),
];

/// The figure `name` of a measurement (see [`RATIOS`]).
fn figure(m: &Measurement, name: &str) -> f64 {
    match name {
        "delivered_pps" => m.delivered_pps,
        _ => m.fwd_cpu_ns_per_packet,
    }
}

fn median_and_range(mut values: Vec<f64>) -> Option<(f64, [f64; 2])> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let median = *values.get(values.len() / 2)?;
    Some((median, [values[0], values[values.len() - 1]]))
}

/// Every ratio of [`RATIOS`] that `rounds` (the measurements of each
/// round) can give, from the per-round ratios.
fn paired_ratios(rounds: &[Vec<Measurement>]) -> Vec<Ratio> {
    let find = |round: &[Measurement], path: &str, sessions: usize, dir: &str, size: usize| {
        round
            .iter()
            .find(|m| {
                m.path == path && m.sessions == sessions && m.direction == dir && m.size == size
            })
            .cloned()
    };
    let mut cases: Vec<(String, usize)> = Vec::new();
    for m in rounds.iter().flatten() {
        let case = (m.direction.clone(), m.size);
        if !cases.contains(&case) {
            cases.push(case);
        }
    }
    let mut out = Vec::new();
    for (dir, size) in &cases {
        for (path, sessions, base, base_sessions, name) in RATIOS {
            let per_round: Vec<f64> = rounds
                .iter()
                .filter_map(|round| {
                    let a = find(round, path, sessions, dir, *size)?;
                    let b = find(round, base, base_sessions, dir, *size)?;
                    Some(figure(&a, name) / figure(&b, name))
                })
                .collect();
            let rounds = per_round.len();
            if let Some((median, range)) = median_and_range(per_round) {
                out.push(Ratio {
                    path: path.into(),
                    sessions,
                    base: base.into(),
                    base_sessions,
                    figure: name.into(),
                    direction: dir.clone(),
                    size: *size,
                    median,
                    range,
                    rounds,
                });
            }
        }
    }
    out
}

/// Each measurement's median over the rounds (in the order of the first
/// round).
fn medians_of_rounds(rounds: Vec<Vec<Measurement>>) -> Vec<Measurement> {
    let mut by_label: Vec<Vec<Measurement>> = Vec::new();
    for m in rounds.into_iter().flatten() {
        match by_label.iter_mut().find(|runs| {
            let r = &runs[0];
            r.path == m.path
                && r.direction == m.direction
                && r.size == m.size
                && r.sessions == m.sessions
        }) {
            Some(runs) => runs.push(m),
            None => by_label.push(vec![m]),
        }
    }
    by_label
        .into_iter()
        .filter_map(Measurement::median)
        .collect()
}

/// The nftables ruleset of the "+nft" rows, loaded in the server
/// namespace: a forward chain as an operator would write it (established
/// first, then drops that the bench traffic does not match, then new
/// traffic from the clients' side) and masquerade towards the LAN.
/// `INGRESS` is the only difference between the two uses: the tunnel
/// device (pptp0) for stack mode, the WAN link (s0) for plain forwarding.
pub const RULESET: &str = r#"table inet pptp_bench {
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        ct state invalid drop
        ip daddr 198.18.2.0/24 drop comment "a management network"
        tcp dport { 25, 135, 137-139, 445 } drop comment "SMTP and Windows file sharing"
        ip saddr 198.19.0.0/16 ip daddr 198.19.0.0/16 drop comment "client to client"
        iifname "INGRESS" accept
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "l0" masquerade
    }
}
"#;

/// How the "+nft" rows are measured (for the results' note).
const NFT_NOTE: &str = "+nft rows: the same nftables ruleset (nft_ruleset; `table inet`, forward chain with policy drop, conntrack, a masquerade on l0) in the server namespace, the interface the forward chain accepts new traffic from being the only difference (pptp0 for stack+nft, s0 for ip-forward+nft). One UDP flow per size, established before measuring (a burst each way), so both directions are conntrack-established; client → network packets are masqueraded to l0's address, network → client packets are replies to that address and are un-NATed. ip-forward+xdp-pass+nft: the same as ip-forward+nft with an XDP program that passes everything on s0 and l0. stack and xdp rows: no ruleset.";

/// How the work is split between the CPUs (for the results' note).
const PINNING_NOTE: &str = "The generator runs on CPU 0. Everything the server does runs on CPU 1: the NAPI of s0 and l0 in kernel threads (GRO gives a veth NAPI, as a NIC has), with XDP, the stack, nftables and the tunnel pair's NAPI (softirq) in them, the daemon's threads, and the softirq work of the transmit into the far end, where an XDP sink counts and drops (its cost is in every row). Forwarding CPU ns/packet is CPU 1's busy time (user + system + irq + softirq, /proc/stat) per delivered packet; XDP programs' own ns/packet comes from the kernel's BPF run-time statistics (BPF_ENABLE_STATS) for the programs on the server's interfaces, the sink not included, and is part of the forwarding CPU. Machine CPU is both CPUs' busy time, the generator's included.";

/// How the generators' frames reach s0 and l0, by `--no-relay`.
const RELAY_NOTE: [&str; 2] = [
    "The generators send through an XDP relay (g0 -> g1 -> c0 or h0, on CPU 0), so s0 and l0 receive XDP frames as a NIC driver hands them over.",
    "--no-relay: the generators' socket buffers reach s0 and l0 directly, and an XDP program there (every XDP path: stack, xdp, xdp-route, ip-forward+xdp-pass) first copies each into a new page (too little headroom), a cost NIC drivers do not have.",
];

/// The ruleset with `ingress` as the interface new traffic comes from.
pub fn ruleset(ingress: &str) -> String {
    RULESET.replace("INGRESS", ingress)
}

/// `nft` (Debian's nftables package) answers, or an error that says how to
/// install it.
fn require_nft() -> Result<(), String> {
    match std::process::Command::new("nft").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`nft --version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!(
            "nft (Debian package nftables) is missing ({e}): run `cargo xtask setup`"
        )),
    }
}

/// Loads [`RULESET`] (accepting new traffic from `ingress`) in `ns`,
/// through a file in `dir`.
fn load_ruleset(ns: &pptp_netns::Netns, dir: &Path, ingress: &str) -> Result<(), String> {
    let file = dir.join("bench.nft");
    std::fs::write(&file, ruleset(ingress)).map_err(|e| format!("{}: {e}", file.display()))?;
    pptp_netns::run(ns.command("nft").arg("-f").arg(&file)).map_err(|e| {
        format!("loading the bench ruleset: {e} (nft missing? run `cargo xtask setup`)")
    })?;
    Ok(())
}

/// Removes what [`load_ruleset`] loaded.
fn unload_ruleset(ns: &pptp_netns::Netns) -> Result<(), String> {
    pptp_netns::run(
        ns.command("nft")
            .args(["delete", "table", "inet", "pptp_bench"]),
    )
    .map_err(|e| format!("removing the bench ruleset: {e}"))?;
    Ok(())
}

/// A frame template and where to patch a GRE sequence number in it.
struct Template {
    frame: Vec<u8>,
    seq_at: Option<usize>,
    /// MPPE: encrypt the frame from `at` on as it is sent.
    encrypt: Option<Encrypting>,
}

impl Template {
    /// Writes `sending`'s next GRE sequence number into `frame` (a copy of
    /// this template) and encrypts `frame[at..]` into its next coherency
    /// count.
    fn encrypt_into(&self, sending: &mut Sending, at: usize, frame: &mut [u8]) {
        if let Some(seq_at) = self.seq_at {
            frame[seq_at..seq_at + 4].copy_from_slice(&sending.seq.to_be_bytes());
            sending.seq = sending.seq.wrapping_add(1);
        }
        // The frame holds the header's two octets: never short.
        let _ = sending.encryptor.encrypt_in_place(&mut frame[at..]);
    }
}

/// At most this many octets of frames built ahead of a run (see
/// [`Prebuilt`]): the guest that runs `mppe-send` has 1 GiB.
const PREBUILT_OCTETS: usize = 192 << 20;

/// One MPPE template's frames, encrypted before the run that sends them
/// (`pptp-lab mppe-send --pps`): the generator then spends nothing per
/// frame on the cipher while it sends, so what limits the rate is the
/// receiver, not the generator's own key changes (a client's CPU per
/// frame equals a stateless receiver's). Each frame's sending state
/// after it is kept, so the next run continues after the last frame
/// actually sent and no count is skipped for frames built but not sent.
struct Prebuilt {
    octets: Vec<u8>,
    frame_len: usize,
    after: Vec<SendState>,
}

impl Prebuilt {
    /// `count` frames of `template` (an MPPE one) from `sending` on.
    fn build(template: &Template, sending: &mut Sending, count: usize) -> Prebuilt {
        let frame_len = template.frame.len();
        let mut octets = Vec::with_capacity(frame_len * count);
        let mut after = Vec::with_capacity(count);
        for _ in 0..count {
            let start = octets.len();
            octets.extend_from_slice(&template.frame);
            if let Some(e) = &template.encrypt {
                template.encrypt_into(sending, e.at, &mut octets[start..]);
            }
            after.push(SendState::of(sending));
        }
        Prebuilt {
            octets,
            frame_len,
            after,
        }
    }

    /// How many frames to build for `seconds` at `pps` frames a second,
    /// at most [`PREBUILT_OCTETS`] of them.
    fn count(pps: u32, seconds: f64, frame_len: usize) -> usize {
        let wanted = (f64::from(pps) * seconds).ceil() as usize;
        wanted.min(PREBUILT_OCTETS / frame_len.max(1))
    }

    fn len(&self) -> usize {
        self.after.len()
    }

    fn frame(&self, i: usize) -> &[u8] {
        &self.octets[i * self.frame_len..(i + 1) * self.frame_len]
    }

    /// The sending state after the first `sent` frames; None for none.
    fn state_after(&self, sent: usize) -> Option<&SendState> {
        self.after.get(sent.checked_sub(1)?)
    }
}

/// How an MPPE template is encrypted: `frame[at..]` is an MPPE packet
/// whose first two octets (the MPPE header) are to be written and whose
/// rest is the plaintext (PPP protocol and the packet), encrypted with
/// the session's send key into the next coherency count, frame after
/// frame (stateless: a new key for every frame, as a client sends them).
#[derive(Clone)]
struct Encrypting {
    at: usize,
    encryptor: SharedEncryptor,
}

/// A session's sending state: one for all the frames built for the
/// session, so that the MPPE key chain and the GRE sequence numbers go on
/// from measurement to measurement as a client's do (the receiver takes the
/// sequence numbers as evidence of how far the counts moved).
type SharedEncryptor = std::sync::Arc<std::sync::Mutex<Sending>>;

/// See [`SharedEncryptor`].
struct Sending {
    encryptor: Encryptor,
    /// The GRE sequence number of the next frame: well ahead of what the
    /// client sent while negotiating.
    seq: u32,
}

/// First GRE sequence number of the next generator run.
static SEQ_BASE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1 << 16);

/// Sends frames in batches from one interface of the calling thread's
/// namespace.
struct Generator {
    fd: OwnedFd,
    ifindex: i32,
}

impl Generator {
    fn open(iface: &str) -> io::Result<Self> {
        let name = std::ffi::CString::new(iface)?;
        // SAFETY: plain libc calls; the fd is owned right away.
        unsafe {
            let ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            if ifindex == 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let one: libc::c_int = 1;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            );
            let sndbuf: libc::c_int = 8 << 20;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&sndbuf as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            );
            Ok(Self { fd, ifindex })
        }
    }

    /// Sends the templates round-robin for `duration`, patching an
    /// increasing sequence number into GRE frames (per template), at most
    /// `pps` frames per second if given. Returns the frames sent.
    fn run(
        &self,
        templates: &[Template],
        duration: Duration,
        seq_base: u32,
        pps: Option<f64>,
    ) -> u64 {
        const BATCH: usize = 64;
        let len = templates.iter().map(|t| t.frame.len()).max().unwrap_or(0);
        let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; len]).collect();
        let mut lens = [0usize; BATCH];
        let mut seqs = vec![seq_base; templates.len()];
        let addr = self.address();
        let mut sent = 0u64;
        let mut cursor = 0usize;
        // Frames built but not sent yet, at the front of `bufs`: a frame
        // takes its sequence number and coherency count when built, so one
        // the socket refused is sent again, not built anew (a client does
        // not use up counts for frames it never sends).
        let mut ready = 0usize;
        // Encrypted frames still unsent when the time is up go out after
        // it (a few tries): each took a coherency count, and the session's
        // next frame, in the next run, would otherwise be that many counts
        // ahead (a receiver that had lost them).
        let encrypted = templates.iter().any(|t| t.encrypt.is_some());
        let mut drain_tries = 64u32;
        let started = Instant::now();
        loop {
            let over = started.elapsed() >= duration;
            if over && (!encrypted || ready == 0 || drain_tries == 0) {
                break;
            }
            drain_tries -= u32::from(over);
            let fill = if over { 0 } else { BATCH };
            for (i, buf) in bufs.iter_mut().enumerate().take(fill).skip(ready) {
                let t = cursor % templates.len();
                cursor += 1;
                let tpl = &templates[t];
                buf[..tpl.frame.len()].copy_from_slice(&tpl.frame);
                if let Some(e) = &tpl.encrypt {
                    let mut sending = e.encryptor.lock().unwrap_or_else(|p| p.into_inner());
                    tpl.encrypt_into(&mut sending, e.at, &mut buf[..tpl.frame.len()]);
                } else if let Some(at) = tpl.seq_at {
                    buf[at..at + 4].copy_from_slice(&seqs[t].to_be_bytes());
                    seqs[t] = seqs[t].wrapping_add(1);
                }
                lens[i] = tpl.frame.len();
            }
            ready = ready.max(fill);
            let batch: Vec<&[u8]> = bufs
                .iter()
                .zip(lens)
                .take(ready)
                .map(|(b, l)| &b[..l])
                .collect();
            let n = self.send_batch(&batch, &addr);
            if n > 0 {
                sent += n as u64;
                bufs.rotate_left(n);
                lens.rotate_left(n);
                ready -= n;
            } else {
                std::thread::yield_now();
            }
            if let Some(pps) = pps
                && !over
            {
                // Paced: the next batch no earlier than its due time.
                let due = started + Duration::from_secs_f64(sent as f64 / pps);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait.min(duration));
                }
            }
        }
        sent
    }

    /// Sends `frames` in order, in batches, at most `pps` a second if
    /// given, until all are sent or `duration` is over. Returns the frames
    /// sent (a prefix of `frames`).
    fn send_prebuilt(&self, frames: &Prebuilt, duration: Duration, pps: Option<f64>) -> u64 {
        const BATCH: usize = 64;
        let addr = self.address();
        let mut sent = 0usize;
        let started = Instant::now();
        while sent < frames.len() && started.elapsed() < duration {
            let batch: Vec<&[u8]> = (sent..frames.len().min(sent + BATCH))
                .map(|i| frames.frame(i))
                .collect();
            let n = self.send_batch(&batch, &addr);
            if n == 0 {
                std::thread::yield_now();
            }
            sent += n;
            if let Some(pps) = pps {
                let due = started + Duration::from_secs_f64(sent as f64 / pps);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait.min(duration));
                }
            }
        }
        sent as u64
    }

    /// Where the frames go: this interface, the frames' own link header.
    fn address(&self) -> libc::sockaddr_ll {
        // SAFETY: sockaddr_ll is plain data.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        addr
    }

    /// Hands `frames` to the socket in one `sendmmsg`: the number it took
    /// (the first ones), 0 when it took none.
    fn send_batch(&self, frames: &[&[u8]], addr: &libc::sockaddr_ll) -> usize {
        let mut addr = *addr;
        let mut iovs: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                // The kernel only reads a sent buffer.
                iov_base: f.as_ptr().cast_mut().cast(),
                iov_len: f.len(),
            })
            .collect();
        // Every pointer stays valid until sendmmsg returns.
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is plain data; all-zero is valid.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: msgs and what it points to live across the call.
        let n =
            unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as u32, 0) };
        usize::try_from(n).unwrap_or(0)
    }
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

/// An IPv4/UDP packet of `size` bytes in all, port 9 to port 9.
fn udp(src: Ipv4Addr, dst: Ipv4Addr, size: usize) -> Vec<u8> {
    udp_ports((src, 9), (dst, 9), size)
}

/// An IPv4/UDP packet of `size` bytes in all between the given ports
/// (no UDP checksum, which NAT leaves alone).
fn udp_ports((src, sport): (Ipv4Addr, u16), (dst, dport): (Ipv4Addr, u16), size: usize) -> Vec<u8> {
    let size = size.max(28);
    let mut p = vec![0u8; size];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&((size - 20) as u16).to_be_bytes());
    p
}

fn ethernet(dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0xbe, 0x01]);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A GRE data frame from the client side for `session`, inner packet of `size`.
fn gre_frame(server_mac: [u8; 6], session: &SessionInfo, size: usize) -> Template {
    gre_frame_port(server_mac, session, size, 9)
}

/// As [`gre_frame`], the inner packet from and to UDP port `port`.
fn gre_frame_port(server_mac: [u8; 6], session: &SessionInfo, size: usize, port: u16) -> Template {
    let client = session.client_addr.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let inner = udp_ports(
        (client, port),
        (LAN_HOST.parse().expect("constant"), port),
        size,
    );
    let server = crate::lab::SERVER_WAN.parse().expect("constant");
    gre_template(server_mac, (session.peer, server, session.call_id), &inner)
}

/// `inner` in PPP (address and control, protocol IPv4), enhanced GRE with
/// a sequence number and outer IPv4 from `peer` to `server` for the
/// server's `call_id`, in Ethernet towards `mac`.
fn gre_template(mac: [u8; 6], ids: (Ipv4Addr, Ipv4Addr, u16), inner: &[u8]) -> Template {
    gre_ppp_template(mac, ids, &[&[0xFF, 0x03, 0x00, 0x21][..], inner].concat())
}

/// A GRE frame (sequence number, no acknowledgment) carrying the PPP
/// frame `ppp` from `peer` to `server` for call `call_id`.
fn gre_ppp_template(
    mac: [u8; 6],
    (peer, server, call_id): (Ipv4Addr, Ipv4Addr, u16),
    ppp: &[u8],
) -> Template {
    let mut gre = vec![0x30, 0x01, 0x88, 0x0B];
    gre.extend_from_slice(&(ppp.len() as u16).to_be_bytes());
    gre.extend_from_slice(&call_id.to_be_bytes());
    gre.extend_from_slice(&[0, 0, 0, 0]);
    gre.extend_from_slice(ppp);
    let mut outer = udp(peer, server, 20 + gre.len());
    outer.truncate(20);
    outer[9] = 47;
    outer[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(&outer);
    outer[10..12].copy_from_slice(&c.to_be_bytes());
    outer.extend_from_slice(&gre);
    Template {
        frame: ethernet(mac, &outer),
        seq_at: Some(14 + 20 + 8),
        encrypt: None,
    }
}

/// A client's MPPE data frame towards the LAN host (stateless, encrypted
/// as it is sent with `key`, the client's send start key), inner packet of
/// `size` octets.
fn mppe_frame(
    server_mac: [u8; 6],
    session: &SessionInfo,
    encryptor: &SharedEncryptor,
    size: usize,
) -> Template {
    let client = session.client_addr.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let inner = udp(client, LAN_HOST.parse().expect("constant"), size);
    let server = crate::lab::SERVER_WAN.parse().expect("constant");
    mppe_template(
        server_mac,
        (session.peer, server, session.call_id),
        &inner,
        encryptor,
    )
}

/// `inner` as a client's stateless MPPE data frame in GRE from `peer` to
/// `server` for the server's `call_id`, encrypted as it is sent.
fn mppe_template(
    mac: [u8; 6],
    ids: (Ipv4Addr, Ipv4Addr, u16),
    inner: &[u8],
    encryptor: &SharedEncryptor,
) -> Template {
    // PPP address, control and protocol 0x00FD (RFC 1962 compressed
    // datagram), the MPPE header (written when encrypting), then the
    // plaintext: protocol 0x0021 and the packet (RFC 3078 section 3).
    let ppp = [&[0xFF, 0x03, 0x00, 0xFD, 0, 0, 0x00, 0x21][..], inner].concat();
    let mut t = gre_ppp_template(mac, ids, &ppp);
    t.encrypt = Some(Encrypting {
        at: 14 + 20 + 12 + 4,
        encryptor: encryptor.clone(),
    });
    t
}

/// The CPU the generator runs on.
pub const GENERATOR_CPU: usize = 0;
/// The CPU the server's work is pinned to (see [`pin_server`]).
pub const FORWARDING_CPU: usize = 1;

/// Pins task `tid` (0: the calling thread) to `cpu`.
fn set_affinity(tid: i32, cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data, all-zero is the empty set;
    // sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Puts the server's work on [`FORWARDING_CPU`], apart from the generator
/// (on [`GENERATOR_CPU`]): GRO on s0 and l0 (on a veth, that gives it
/// NAPI, as a NIC has), their NAPI in kernel threads, and those threads
/// and the daemon's pinned to the forwarding CPU. A packet the generator
/// sends is queued on s0 or l0 and everything after that (XDP, the stack,
/// the tunnel pair's NAPI, which a redirect or a transmit schedules as a
/// softirq on the same CPU, the daemon, the transmit into the far end and
/// the sink's XDP there) runs on the forwarding CPU. Only the two
/// entry points are threaded: a thread per device would add a context
/// switch at every hop between devices that a NIC-driven server, whose
/// NAPI runs in softirq, does not pay. Done before every run: attaching
/// XDP to a veth recreates its NAPI.
///
/// Returns the tasks that carry the server's work: those pinned and the
/// forwarding CPU's ksoftirqd.
fn pin_server(server: &pptp_netns::Netns, daemon: Option<u32>) -> Result<Vec<i32>, String> {
    const SCRIPT: &str = r#"set -e
for n in s0 l0; do
    ethtool -K "$n" gro on >/dev/null
    echo 1 > "/sys/class/net/$n/threaded"
    echo "$n $(cat "/sys/class/net/$n/threaded")"
done"#;
    let out = server
        .command("sh")
        .args(["-c", SCRIPT])
        .output()
        .map_err(|e| format!("sh in {}: {e}", server.name()))?;
    let listed = String::from_utf8_lossy(&out.stdout);
    for dev in ["s0", "l0"] {
        if !out.status.success() || !listed.lines().any(|l| l == format!("{dev} 1")) {
            return Err(format!(
                "threaded NAPI on {dev} in {}: {}{} (needs ethtool: `cargo xtask setup`)",
                server.name(),
                listed.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let napi_threads = std::fs::read_dir("/proc")
        .map_err(|e| format!("/proc: {e}"))?
        .filter_map(|e| {
            let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            comm.starts_with("napi/").then_some(pid)
        });
    let daemon_threads = daemon.into_iter().flat_map(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .filter_map(|t| t.ok()?.file_name().to_str()?.parse::<i32>().ok())
    });
    let mut tasks = Vec::new();
    for tid in napi_threads.chain(daemon_threads) {
        // A thread may end in between (a NAPI recreated, a worker gone).
        match set_affinity(tid, FORWARDING_CPU) {
            Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                return Err(format!("pinning task {tid} to CPU {FORWARDING_CPU}: {e}"));
            }
            Err(_) => {}
            Ok(()) => tasks.push(tid),
        }
    }
    tasks.extend(ksoftirqd_pids().into_iter().filter_map(|pid| {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == format!("ksoftirqd/{FORWARDING_CPU}")).then_some(pid as i32)
    }));
    Ok(tasks)
}

/// Time on the CPU of tasks `tids` so far (nanoseconds, the scheduler's
/// `schedstat`; softirq work done in a task's context counts as its own).
fn tasks_runtime_ns(tids: &[i32]) -> u64 {
    tids.iter()
        .filter_map(|tid| {
            let stat = std::fs::read_to_string(format!("/proc/{tid}/schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// The IDs of the XDP programs attached to the interfaces of `ns` (as
/// `ip -json -details link show` lists them).
fn xdp_program_ids(ns: &pptp_netns::Netns) -> Result<Vec<u32>, String> {
    let out = ns
        .ip(&["-json", "-details", "link", "show"])
        .map_err(|e| e.to_string())?;
    let links: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("ip -json link show: {e}"))?;
    let mut ids = Vec::new();
    for xdp in links.as_array().into_iter().flatten().map(|l| &l["xdp"]) {
        let attached = xdp["attached"].as_array().cloned().unwrap_or_default();
        for prog in std::iter::once(&xdp["prog"]).chain(attached.iter().map(|a| &a["prog"])) {
            if let Some(id) = prog["id"].as_u64() {
                ids.push(id as u32);
            }
        }
    }
    Ok(ids)
}

/// Run time (ns) and run count of the programs `ids` so far, summed by
/// program name (the kernel counts while [`aya::sys::enable_stats`] is
/// held).
fn bpf_run_time(ids: &[u32]) -> Vec<(String, u64, u64)> {
    let mut by_name: Vec<(String, u64, u64)> = Vec::new();
    for p in aya::programs::loaded_programs().filter_map(Result::ok) {
        if !ids.contains(&p.id()) {
            continue;
        }
        let name = p.name_as_str().unwrap_or("?").to_owned();
        let (ns, runs) = (p.run_time().as_nanos() as u64, p.run_count());
        match by_name.iter_mut().find(|(n, _, _)| *n == name) {
            Some(e) => {
                e.1 += ns;
                e.2 += runs;
            }
            None => by_name.push((name, ns, runs)),
        }
    }
    by_name
}

/// What the daemon's counters of MPPE frames received (`send` false:
/// names containing `mppe` but not `tx` or `encrypt`) or sent (`send`
/// true: those with `tx` or `encrypt`) grew by between `before` and
/// `after`, those that moved, by name: where the frames of an MPPE
/// measurement went (decrypted or encrypted in XDP, from prepared states,
/// to userspace, dropped over the rekey budget).
fn mppe_deltas(before: &HashMap<String, u64>, after: &HashMap<String, u64>, send: bool) -> String {
    let mut moved: Vec<String> = after
        .iter()
        .filter(|(k, _)| k.contains("mppe") && (k.contains("tx") || k.contains("encrypt")) == send)
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| format!("{k} +{d}"))
        })
        .collect();
    moved.sort();
    if moved.is_empty() {
        "none moved".to_owned()
    } else {
        moved.join(", ")
    }
}

/// Busy time of `cpu` so far (jiffies, user + nice + system + irq +
/// softirq, from its line of `/proc/stat`).
fn cpu_busy_jiffies(cpu: usize) -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let tag = format!("cpu{cpu} ");
    let Some(line) = stat.lines().find(|l| l.starts_with(&tag)) else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    [0, 1, 2, 5, 6].iter().filter_map(|i| v.get(*i)).sum()
}

/// The machine's busy time so far (jiffies, from `/proc/stat`).
fn busy_jiffies() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    [0, 1, 2, 5, 6, 7].iter().filter_map(|i| v.get(*i)).sum()
}

/// Time on the CPU so far (nanoseconds, from the scheduler: softirq work
/// done in a task's context counts as the task's) of the tasks that do the
/// measured work but the generator: the daemon's threads and the ksoftirqd
/// threads, which run the softirq work that the generator's own context
/// leaves over.
fn helpers_runtime_ns(daemon: Option<u32>) -> u64 {
    ksoftirqd_pids()
        .into_iter()
        .chain(daemon)
        .map(process_runtime_ns)
        .sum()
}

/// Time on the CPU of every thread of process `pid` so far (nanoseconds).
fn process_runtime_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// The ksoftirqd threads.
fn ksoftirqd_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        comm.starts_with("ksoftirqd/").then_some(pid)
    })
    .collect()
}

/// CPU time of the calling thread so far, in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into `t`, which outlives the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return 0.0;
    }
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// What one generator run gave: frames sent and counted by the sink, the
/// time the generator sent for, the machine's busy CPU seconds.
struct Counted {
    seconds: f64,
    sent: u64,
    delivered: u64,
    elapsed: f64,
    cpu: f64,
    own_cpu: f64,
    /// Busy seconds of [`FORWARDING_CPU`] (NaN: nothing was pinned).
    fwd_cpu: f64,
    /// Seconds on the CPU of the tasks that carry the server's work.
    server_tasks: f64,
    /// Per XDP program name on the server's interfaces: nanoseconds and
    /// runs over the run.
    bpf: Vec<(String, u64, u64)>,
}

impl Counted {
    /// `cpu` seconds in nanoseconds per delivered packet.
    fn per_packet(&self, cpu: f64) -> f64 {
        if self.delivered > 0 {
            cpu * 1e9 / self.delivered as f64
        } else {
            f64::NAN
        }
    }

    fn measurement(&self, label: (&str, &str, usize, usize)) -> Measurement {
        Measurement {
            path: label.0.into(),
            direction: label.1.into(),
            size: label.2,
            sessions: label.3,
            sent_pps: self.sent as f64 / self.seconds,
            delivered_pps: self.delivered as f64 / self.elapsed,
            loss: if self.sent > 0 {
                (1.0 - self.delivered as f64 / self.sent as f64).max(0.0)
            } else {
                f64::NAN
            },
            cpu_ns_per_packet: self.per_packet(self.cpu),
            cpu_ns_range: [self.per_packet(self.cpu); 2],
            own_cpu_ns_per_packet: self.per_packet(self.own_cpu),
            own_cpu_ns_range: [self.per_packet(self.own_cpu); 2],
            fwd_cpu_ns_per_packet: self.per_packet(self.fwd_cpu),
            fwd_cpu_ns_range: [self.per_packet(self.fwd_cpu); 2],
            server_tasks_ns_per_packet: self.per_packet(self.server_tasks),
            bpf_ns_per_packet: self
                .per_packet(self.bpf.iter().map(|(_, ns, _)| *ns as f64 * 1e-9).sum()),
            bpf_programs: self
                .bpf
                .iter()
                .filter(|(_, _, runs)| *runs > 0)
                .map(|(name, ns, runs)| ProgramCost {
                    name: name.clone(),
                    ns_per_run: *ns as f64 / *runs as f64,
                    runs_per_packet: self.per_packet(*runs as f64 * 1e-9),
                })
                .collect(),
            runs: 1,
        }
    }
}

/// Runs the generator on `iface` in `ns` for `seconds`, reading the sink's
/// packet counter (`sink`) before and after.
fn generate_and_count(
    ns: &pptp_netns::Netns,
    iface: &str,
    templates: &[Template],
    seconds: f64,
    (seq_base, pps): (u32, Option<f64>),
    (server, daemon): (Option<&pptp_netns::Netns>, Option<u32>),
    sink: impl Fn() -> Result<u64, String>,
) -> Result<Counted, String> {
    let (tasks, programs) = match server {
        Some(server) => (pin_server(server, daemon)?, xdp_program_ids(server)?),
        None => (Vec::new(), Vec::new()),
    };
    let tasks_before = tasks_runtime_ns(&tasks);
    let before = sink()?;
    let cpu_before = busy_jiffies();
    let fwd_before = cpu_busy_jiffies(FORWARDING_CPU);
    let bpf_before = bpf_run_time(&programs);
    let helpers_before = helpers_runtime_ns(daemon);
    let started = Instant::now();
    let (sent, generator_cpu) = ns
        .run(|| {
            if server.is_some() {
                set_affinity(0, GENERATOR_CPU)?;
            }
            let cpu = thread_cpu_seconds();
            Generator::open(iface)
                .map(|g| g.run(templates, Duration::from_secs_f64(seconds), seq_base, pps))
                .map(|sent| (sent, thread_cpu_seconds() - cpu))
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("generator on {iface} in {}: {e}", ns.name()))?;
    // The packets delivered were sent in this time; the last of them
    // drain in the next 100 ms (dividing by both undercounted the rate).
    let elapsed = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(100));
    let cpu = (busy_jiffies() - cpu_before) as f64 / clock_ticks();
    let own_cpu =
        helpers_runtime_ns(daemon).saturating_sub(helpers_before) as f64 * 1e-9 + generator_cpu;
    let delivered = sink()?.saturating_sub(before);
    let server_tasks = tasks_runtime_ns(&tasks).saturating_sub(tasks_before) as f64 * 1e-9;
    let fwd_cpu = if server.is_some() {
        cpu_busy_jiffies(FORWARDING_CPU).saturating_sub(fwd_before) as f64 / clock_ticks()
    } else {
        f64::NAN
    };
    let bpf = bpf_run_time(&programs)
        .into_iter()
        .map(|(name, ns, runs)| {
            let (ns0, runs0) = bpf_before
                .iter()
                .find(|(n, _, _)| *n == name)
                .map_or((0, 0), |(_, ns, runs)| (*ns, *runs));
            (name, ns.saturating_sub(ns0), runs.saturating_sub(runs0))
        })
        .collect();
    Ok(Counted {
        seconds,
        sent,
        delivered,
        elapsed,
        cpu,
        own_cpu,
        fwd_cpu,
        server_tasks,
        bpf,
    })
}

/// Runs the generator in `from` (interface `iface`) with `templates`, the
/// sink counting on `sink_iface`; returns the measurement.
fn measure(
    lab: &mut Lab,
    from: &str,
    templates: &[Template],
    sink_iface: &str,
    timing: Timing,
    label: (&str, &str, usize, usize),
) -> Result<Measurement, String> {
    measure_at(lab, (from, templates, None), sink_iface, timing, label)
}

/// The highest offered rate that `templates` get through without loss
/// (at most 1 % lost, RFC 2544's throughput with a tolerance), and the
/// measurement at that rate. For paths whose cost per packet grows with
/// loss: a stateless MPPE receiver rekeys once for every frame lost
/// before it, so an overloaded receiver spends its time on the gaps.
/// Doubles the rate from 5,000 frames/s until frames are lost or the
/// generator cannot send faster, then halves the interval until it is at
/// most a sixteenth of the lowest lossy rate (three times until
/// 2026-12-05, which found a faster path to a coarser step). A
/// probe that loses frames is repeated once before the rate counts as
/// lossy, as the guest's search does: on a shared VM one stall of the
/// server's CPU loses frames at any rate, and a search that took it at its
/// word once found 17,000 frames/s for a path that carries 70,000.
fn measure_no_drop(
    lab: &mut Lab,
    from: &str,
    templates: &[Template],
    sink_iface: &str,
    timing: Timing,
    label: (&str, &str, usize, usize),
) -> Result<Measurement, String> {
    let probe = Timing {
        seconds: timing.seconds.min(1.0),
        runs: 1,
    };
    let clean = |m: &Measurement| m.loss <= 0.01;
    // A probe at `rate`, once more if the first lost frames.
    let probe_at = |lab: &mut Lab, rate: f64| -> Result<(Measurement, bool), String> {
        let m = measure_at(lab, (from, templates, Some(rate)), sink_iface, probe, label)?;
        if clean(&m) {
            return Ok((m, true));
        }
        let again = measure_at(lab, (from, templates, Some(rate)), sink_iface, probe, label)?;
        let ok = clean(&again);
        Ok((again, ok))
    };
    // The highest clean rate so far, the lowest lossy one.
    let (mut lo, mut hi) = (0.0f64, None::<f64>);
    let mut rate = 5_000.0;
    loop {
        let (m, ok) = probe_at(lab, rate)?;
        if !ok {
            hi = Some(rate);
            break;
        }
        lo = rate;
        if m.sent_pps < 0.9 * rate || rate >= 4e6 {
            break; // the generator is the limit, and nothing was lost
        }
        rate *= 2.0;
    }
    if let Some(mut hi) = hi {
        let mut halvings = 0;
        while keeps_halving(lo, hi, halvings) {
            halvings += 1;
            let mid = (lo + hi) / 2.0;
            if probe_at(lab, mid)?.1 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    let lo = lo.max(500.0);
    measure_at(lab, (from, templates, Some(lo)), sink_iface, timing, label)
}

/// Whether [`measure_no_drop`] halves the interval between its highest
/// clean rate `lo` and its lowest lossy one `hi` once more, after
/// `halvings`: until the interval is at most a sixteenth of `hi`, at most
/// six times, never below the 500 frames/s it returns at least (the rule
/// of the guest's `NoLossSearch` in xtask).
fn keeps_halving(lo: f64, hi: f64, halvings: u32) -> bool {
    halvings < 6 && hi - lo > hi / 16.0 && (lo + hi) / 2.0 >= 500.0
}

/// [`measure`] with the generator paced at `pps` frames per second.
fn measure_at(
    lab: &mut Lab,
    (from, templates, pps): (&str, &[Template], Option<f64>),
    sink_iface: &str,
    timing: Timing,
    label: (&str, &str, usize, usize),
) -> Result<Measurement, String> {
    lab.set_aux_program(sink_iface, Some(SINK_PROGRAM))?;
    let ns = if from == "c0" {
        &lab.topology.client
    } else {
        &lab.topology.lan
    };
    let counted: Result<Vec<Measurement>, String> = (0..timing.runs)
        .map(|_| {
            // Well ahead of what the sessions exchanged while negotiating,
            // and of every earlier run: the userspace path (like pptp.c)
            // drops frames that are not newer than the last one it saw.
            let seq_base = SEQ_BASE.fetch_add(1 << 24, std::sync::atomic::Ordering::Relaxed);
            generate_and_count(
                ns,
                lab.generator_iface(from),
                templates,
                timing.seconds,
                (seq_base, pps),
                (Some(&lab.topology.server), lab.daemon_pid()),
                || lab.sink_counters().map(|c| c.0),
            )
            .map(|c| c.measurement(label))
        })
        .collect();
    // Back to the pass program (the lab's default far end) for what follows.
    lab.set_aux_program(sink_iface, Some(PASS_PROGRAM))?;
    let m = Measurement::median(counted?).ok_or("no runs")?;
    eprintln!(
        "    {:<14} {:<5} {:>5} B {:>6} sessions: sent {:>9.0} pps, delivered {:>9.0} pps, forwarding CPU {:>6.0} ns/packet ({:.0}–{:.0}; server tasks {:.0}), XDP {:.0} ns/packet",
        m.path,
        m.direction,
        m.size,
        m.sessions,
        m.sent_pps,
        m.delivered_pps,
        m.fwd_cpu_ns_per_packet,
        m.fwd_cpu_ns_range[0],
        m.fwd_cpu_ns_range[1],
        m.server_tasks_ns_per_packet,
        m.bpf_ns_per_packet,
    );
    Ok(m)
}

/// Starts `n` sessions with our client and returns them (as the daemon
/// lists them) with the setup time.
fn sessions(
    lab: &Lab,
    n: usize,
    mppe: bool,
) -> Result<(crate::lab::Process, Vec<SessionInfo>, f64, MppeKeys), String> {
    let count = n.to_string();
    let mut args = vec!["--sessions", count.as_str(), "--parallel", "64"];
    if mppe {
        args.extend(["--mppe", "--report-mppe-keys"]);
    }
    let mut client = lab.client(&args)?;
    let started = Instant::now();
    let mut keys = MppeKeys::new();
    // The server's call ID of every session the client had up.
    let mut up_calls = Vec::new();
    client.wait_for_line(Duration::from_secs(120 + n as u64 / 20), |l| {
        keys.read_up_line(l);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(l)
            && v["event"] == "up"
            && let Some(id) = v["peer_call_id"].as_u64()
        {
            up_calls.push(id);
        }
        l.contains("\"all_up\"")
    })?;
    let setup = started.elapsed().as_secs_f64();
    // The client reports a session up when its IPCP is; the daemon lists
    // it once its own side has finished too (a moment later, at most).
    let listed = Instant::now();
    let list = loop {
        let list = lab.sessions()?;
        if list.len() >= n || listed.elapsed() > Duration::from_secs(10) {
            break list;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if list.len() < n {
        // Which calls the client had up and the daemon does not list, and
        // what the daemon warned about: enough to tell a slow listing from
        // a session that ended.
        let listed: std::collections::HashSet<u64> =
            list.iter().map(|s| u64::from(s.call_id)).collect();
        let missing: Vec<u64> = up_calls
            .iter()
            .copied()
            .filter(|id| !listed.contains(id))
            .take(20)
            .collect();
        let log = lab.daemon_log();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        return Err(format!(
            "{} of {n} sessions up; the daemon does not list these calls the client had up (server call IDs): {missing:?}; the daemon's last warnings:\n{}",
            list.len(),
            warnings[warnings.len().saturating_sub(30)..].join("\n")
        ));
    }
    Ok((client, list, setup, keys))
}

/// The clients' MPPE sending state (from the send keys, which the server
/// decrypts with), by the server's call ID, from the `up` lines of
/// `client --report-mppe-keys`.
struct MppeKeys(Vec<(u16, SharedEncryptor)>);

impl MppeKeys {
    fn new() -> Self {
        MppeKeys(Vec::new())
    }

    fn read_up_line(&mut self, line: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let key = (|| {
            let call = u16::try_from(v["peer_call_id"].as_u64()?).ok()?;
            let bits = KeyLength::from_bits(u16::try_from(v["mppe_bits"].as_u64()?).ok()?)?;
            let key = StartKey::new(&from_hex(v["mppe_keys"]["send"].as_str()?)?, bits)?;
            Some((
                call,
                SharedEncryptor::new(
                    Sending {
                        encryptor: Encryptor::new(&key, true),
                        seq: 1 << 20,
                    }
                    .into(),
                ),
            ))
        })();
        if let (Some("up"), Some(key)) = (v["event"].as_str(), key) {
            self.0.push(key);
        }
    }

    /// The sending state of the client of `session`.
    fn of(&self, session: &SessionInfo) -> Result<&SharedEncryptor, String> {
        self.0
            .iter()
            .find(|(call, _)| *call == session.call_id)
            .map(|(_, key)| key)
            .ok_or_else(|| {
                format!(
                    "the client reported no MPPE keys for call {}",
                    session.call_id
                )
            })
    }
}

/// Sends `decap` from c0 and then `encap` from h0, a burst each (the
/// sinks counting), so that the "+nft" rows measure an established,
/// masqueraded flow; fails unless both bursts arrive.
fn prime(lab: &mut Lab, decap: &[Template], encap: &[Template]) -> Result<(), String> {
    lab.set_aux_program("h0", Some(SINK_PROGRAM))?;
    lab.set_aux_program("c0", Some(SINK_PROGRAM))?;
    let result = prime_bursts(lab, decap, encap);
    lab.set_aux_program("h0", Some(PASS_PROGRAM))?;
    lab.set_aux_program("c0", Some(PASS_PROGRAM))?;
    result
}

fn prime_bursts(lab: &Lab, decap: &[Template], encap: &[Template]) -> Result<(), String> {
    let t = &lab.topology;
    for (ns, from, templates, to) in [
        (&t.client, "c0", decap, "h0 (client → network)"),
        (&t.lan, "h0", encap, "c0 (replies, network → client)"),
    ] {
        let before = lab.sink_counters()?.0;
        let seq_base = SEQ_BASE.fetch_add(1 << 24, std::sync::atomic::Ordering::Relaxed);
        let iface = lab.generator_iface(from);
        ns.run(|| {
            Generator::open(iface)
                .map(|g| g.run(templates, Duration::from_millis(1), seq_base, None))
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("generator on {iface} in {}: {e}", ns.name()))?;
        // At least one frame of the burst arrives within a second (the
        // machine may be busy).
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut after = lab.sink_counters()?.0;
        while after <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            after = lab.sink_counters()?.0;
        }
        if after <= before {
            return Err(format!(
                "priming the +nft flow: nothing reached {to} through the ruleset; server counters: {:?}",
                lab.stats().unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// The "+nft" rows of one size: loads [`RULESET`] (new traffic accepted
/// from `ingress`), establishes the flow, measures `decap` (from c0) and
/// `encap` (from h0), and removes the ruleset again.
fn with_ruleset(
    lab: &mut Lab,
    (path, ingress): (&str, &str),
    (decap, encap): (&[Template], &[Template]),
    (size, sessions): (usize, usize),
    timing: Timing,
) -> Result<Vec<Measurement>, String> {
    load_ruleset(&lab.topology.server, &lab.dir, ingress)?;
    let measured = prime(lab, decap, encap).and_then(|()| {
        Ok(vec![
            measure(
                lab,
                "c0",
                decap,
                "h0",
                timing,
                (path, "decap", size, sessions),
            )?,
            measure(
                lab,
                "h0",
                encap,
                "c0",
                timing,
                (path, "encap", size, sessions),
            )?,
        ])
    });
    let unloaded = unload_ruleset(&lab.topology.server);
    let measured = measured?;
    unloaded?;
    Ok(measured)
}

/// A lab of the interleaved rounds, with its sessions up.
struct RoundLab {
    /// "xdp", "stack" or "userspace" (which also carries plain forwarding
    /// and the XDP routing ceiling).
    path: &'static str,
    lab: Lab,
    _client: crate::lab::Process,
    list: Vec<SessionInfo>,
}

/// One step of a round on one lab: a few measurements of one run each,
/// with what they need around them.
struct Step {
    /// Index of the lab.
    lab: usize,
    /// Where the step comes in a round: the paths a ratio compares next to
    /// each other.
    order: u8,
    /// The XDP program on s0 and l0 during the step (plain forwarding's
    /// rows on the userspace lab: the pass program, the routing ceiling).
    aux: Option<&'static str>,
    /// The ruleset, accepting new traffic from this interface, with the
    /// flow established first: the first measurement's frames (from c0)
    /// and the second's (from h0).
    ruleset: Option<&'static str>,
    runs: Vec<StepRun>,
}

/// One measurement of a [`Step`].
struct StepRun {
    from: &'static str,
    sink: &'static str,
    templates: Vec<Template>,
    label: (&'static str, &'static str, usize, usize),
}

impl Step {
    fn plain(lab: usize, order: u8, runs: Vec<StepRun>) -> Step {
        Step {
            lab,
            order,
            aux: None,
            ruleset: None,
            runs,
        }
    }

    /// Runs the step once (each measurement for `seconds`).
    fn once(&self, lab: &mut Lab, seconds: f64) -> Result<Vec<Measurement>, String> {
        let timing = Timing { seconds, runs: 1 };
        if let Some(program) = self.aux {
            lab.set_aux_program("s0", Some(program))?;
            lab.set_aux_program("l0", Some(program))?;
        }
        let measured = match (self.ruleset, &self.runs[..]) {
            (Some(ingress), [decap, encap]) => with_ruleset(
                lab,
                (decap.label.0, ingress),
                (&decap.templates, &encap.templates),
                (decap.label.2, decap.label.3),
                timing,
            ),
            (Some(_), _) => Err("a ruleset step has a decap and an encap measurement".into()),
            (None, runs) => runs
                .iter()
                .map(|r| measure(lab, r.from, &r.templates, r.sink, timing, r.label))
                .collect(),
        };
        let restored = match self.aux {
            Some(_) => lab
                .set_aux_program("s0", None)
                .and_then(|()| lab.set_aux_program("l0", None)),
            None => Ok(()),
        };
        let measured = measured?;
        restored?;
        Ok(measured)
    }
}

/// The "+nft" rows' network → client measurement: the LAN host's replies
/// to l0's (masqueraded) address on the flow's `port`.
fn nft_reply(
    lan_mac: [u8; 6],
    port: u16,
    label: (&'static str, &'static str, usize, usize),
) -> StepRun {
    StepRun {
        from: "h0",
        sink: "c0",
        templates: vec![from_lan(
            lan_mac,
            (crate::lab::SERVER_LAN.parse().expect("constant"), port),
            label.2,
        )],
        label,
    }
}

/// The steps of one round at inner size `size` over `labs`.
fn round_steps(labs: &[RoundLab], size: usize) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (i, l) in labs.iter().enumerate() {
        let server_mac = l.lab.topology.server.mac("s0").map_err(|e| e.to_string())?;
        let lan_mac = l.lab.topology.server.mac("l0").map_err(|e| e.to_string())?;
        let many = l.list.len();
        let both = |path: &'static str, sessions: &[SessionInfo]| {
            let decap = sessions
                .iter()
                .map(|s| gre_frame(server_mac, s, size))
                .collect();
            let encap = sessions
                .iter()
                .map(|s| {
                    let client = s.client_addr.unwrap_or(Ipv4Addr::UNSPECIFIED);
                    from_lan(lan_mac, (client, 9), size)
                })
                .collect();
            vec![
                StepRun {
                    from: "c0",
                    sink: "h0",
                    templates: decap,
                    label: (path, "decap", size, sessions.len()),
                },
                StepRun {
                    from: "h0",
                    sink: "c0",
                    templates: encap,
                    label: (path, "encap", size, sessions.len()),
                },
            ]
        };
        match l.path {
            "xdp" => {
                steps.push(Step::plain(i, 0, both("xdp", &l.list[..1])));
                steps.push(Step::plain(i, 8, both("xdp", &l.list[..many])));
            }
            "stack" => {
                steps.push(Step::plain(i, 2, both("stack", &l.list[..1])));
                steps.push(Step::plain(i, 9, both("stack", &l.list[..many])));
                // Under the ruleset: a client's flow to the LAN host,
                // masqueraded, and the LAN host's replies to l0's address.
                let port = nft_port(size);
                steps.push(Step {
                    ruleset: Some("pptp0"),
                    ..Step::plain(
                        i,
                        4,
                        vec![
                            StepRun {
                                from: "c0",
                                sink: "h0",
                                templates: vec![gre_frame_port(server_mac, &l.list[0], size, port)],
                                label: ("stack+nft", "decap", size, 1),
                            },
                            nft_reply(lan_mac, port, ("stack+nft", "encap", size, 1)),
                        ],
                    )
                });
            }
            _ => {
                steps.push(Step::plain(i, 7, both("userspace", &l.list[..1])));
                let plain = |path: &'static str| {
                    let packet = |src: &str, dst: &str, mac| Template {
                        frame: ethernet(
                            mac,
                            &udp(
                                src.parse().expect("constant"),
                                dst.parse().expect("constant"),
                                size,
                            ),
                        ),
                        seq_at: None,
                        encrypt: None,
                    };
                    vec![
                        StepRun {
                            from: "c0",
                            sink: "h0",
                            templates: vec![packet(crate::lab::CLIENT_WAN, LAN_HOST, server_mac)],
                            label: (path, "decap", size, 0),
                        },
                        StepRun {
                            from: "h0",
                            sink: "c0",
                            templates: vec![packet(LAN_HOST, crate::lab::CLIENT_WAN, lan_mac)],
                            label: (path, "encap", size, 0),
                        },
                    ]
                };
                steps.push(Step::plain(i, 3, plain("ip-forward")));
                steps.push(Step {
                    aux: Some(ROUTE_PROGRAM),
                    ..Step::plain(i, 1, plain("xdp-route"))
                });
                let port = nft_port(size);
                let nft = |path: &'static str| {
                    vec![
                        StepRun {
                            from: "c0",
                            sink: "h0",
                            templates: vec![Template {
                                frame: ethernet(
                                    server_mac,
                                    &udp_ports(
                                        (crate::lab::CLIENT_WAN.parse().expect("constant"), port),
                                        (LAN_HOST.parse().expect("constant"), port),
                                        size,
                                    ),
                                ),
                                seq_at: None,
                                encrypt: None,
                            }],
                            label: (path, "decap", size, 0),
                        },
                        nft_reply(lan_mac, port, (path, "encap", size, 0)),
                    ]
                };
                steps.push(Step {
                    ruleset: Some("s0"),
                    ..Step::plain(i, 5, nft("ip-forward+nft"))
                });
                // The same with an XDP program passing everything on s0
                // and l0: on veth, XDP copies every frame the stack sends
                // into a new buffer first (too little headroom), a cost
                // that every XDP path pays in this lab and that NIC
                // drivers do not.
                steps.push(Step {
                    ruleset: Some("s0"),
                    aux: Some(PASS_PROGRAM),
                    ..Step::plain(i, 6, nft("ip-forward+xdp-pass+nft"))
                });
            }
        }
    }
    steps.sort_by_key(|s| s.order);
    Ok(steps)
}

/// A UDP packet from the LAN host in Ethernet towards the server's l0.
fn from_lan(lan_mac: [u8; 6], (to, port): (Ipv4Addr, u16), size: usize) -> Template {
    Template {
        frame: ethernet(
            lan_mac,
            &udp_ports(
                (LAN_HOST.parse().expect("constant"), port),
                (to, port),
                size,
            ),
        ),
        seq_at: None,
        encrypt: None,
    }
}

/// The UDP port of the "+nft" flow of `size` (a new flow per size, so that
/// each starts from the same conntrack state).
fn nft_port(size: usize) -> u16 {
    1000 + (size % 60_000) as u16
}

fn lab(
    bin: &Path,
    (xdp, forwarding): (bool, &'static str),
    mppe: &'static str,
    (scale, relay): (usize, bool),
) -> Result<Lab, String> {
    let mut lab = Lab::start(
        bin,
        &LabOptions {
            xdp,
            forwarding,
            mppe,
            // The bench measures the paths, not the per-call admission
            // budget of frames sent up to the daemon (10,000/s by default,
            // which a single generator call would hit on the userspace path).
            // MPPE on the fast path keeps it: what the kernel leaves to
            // userspace (loss runs beyond its catch-up) is bounded by it
            // in a deployment too, and without it an overloaded session
            // moves to userspace, where it decrypts a third as fast.
            limits: if xdp && mppe == "require" {
                LAB_LIMITS.to_owned()
            } else {
                format!("{LAB_LIMITS}userspace_frames_per_call = 0\n")
            },
            ..LabOptions::default()
        },
    )?;
    // Keepalives off, then a restart: the sinks drop what the clients
    // would answer, and a measurement (all its runs) outlasts the 15 s in
    // which the lab's keepalives give a session up. The lab configuration
    // allows 10,000 sessions by default; more needs a larger limit.
    let config = lab.dir.join("pptp.toml");
    let mut text = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
    for (key, off) in [
        (
            "\nlcp_echo_interval_secs = ",
            "\nlcp_echo_interval_secs = 0\n",
        ),
        ("\necho_interval_secs = ", "\necho_interval_secs = 0\n"),
    ] {
        let start = text
            .find(key)
            .ok_or_else(|| format!("the lab configuration has no `{}`", key.trim()))?;
        let end = text[start + 1..]
            .find('\n')
            .map_or(text.len(), |n| start + 1 + n + 1);
        text.replace_range(start..end, off);
    }
    if scale > 9_000 {
        text = text.replace(
            "hostname = \"pptp-lab\"",
            "hostname = \"pptp-lab\"\nmax_sessions = 60000",
        );
    }
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    lab.restart_daemon()?;
    if !xdp {
        lab.set_aux_program("c0", Some(PASS_PROGRAM))?;
        lab.set_aux_program("h0", Some(PASS_PROGRAM))?;
    }
    // The sinks drop ARP too: the server must know its neighbours already.
    let t = &lab.topology;
    for (ns, iface, addr, dev) in [
        (&t.lan, "h0", LAN_HOST, "l0"),
        (&t.client, "c0", crate::lab::CLIENT_WAN, "s0"),
    ] {
        let mac = ns.mac(iface).map_err(|e| e.to_string())?;
        let mac = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        t.server
            .ip(&[
                "neigh",
                "replace",
                addr,
                "lladdr",
                &mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ])
            .map_err(|e| e.to_string())?;
    }
    if relay {
        lab.relay_generators()?;
    }
    Ok(lab)
}

/// Runs every measurement and returns the results.
pub fn run(bin: &Path, args: &BenchArgs) -> Result<Results, String> {
    pptp_netns::require_root().map_err(|e| e.to_string())?;
    require_nft()?;
    if let Some(unknown) = args.only.iter().find(|l| !LABS.contains(&l.as_str())) {
        return Err(format!(
            "--only: no lab `{unknown}` (labs: {})",
            LABS.join(", ")
        ));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus <= FORWARDING_CPU {
        return Err(format!(
            "the bench pins the generator to CPU {GENERATOR_CPU} and the server to CPU {FORWARDING_CPU}; this machine has {cpus} CPU(s) available"
        ));
    }
    // Kernel BPF run-time statistics while this fd is open.
    let _bpf_stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| format!("enabling BPF run-time statistics (BPF_ENABLE_STATS): {e}"))?;
    let chosen = |lab: &str| args.only.is_empty() || args.only.iter().any(|l| l == lab);
    let timing = Timing {
        seconds: if args.short { 0.3 } else { args.seconds },
        runs: if args.short { 1 } else { args.runs.max(1) },
    };
    let sizes: &[usize] = if args.short { &[64] } else { &[64, 1400] };
    let many = if args.short { 10 } else { 100 };
    let mut out = Vec::new();
    let mut scale = Vec::new();

    // The forwarding modes, the userspace path, plain forwarding and the
    // XDP routing ceiling: their labs are up together and the paths are
    // measured in interleaved rounds (every path once per round, the paths
    // that a ratio compares next to each other), so that a ratio's two
    // figures are taken seconds apart and its spread is that of the
    // per-round ratios. The userspace lab also carries plain forwarding
    // and the ceiling (no PPTP program on s0 and l0 there).
    let mut labs: Vec<RoundLab> = Vec::new();
    for (path, mode) in [
        ("xdp", (true, "xdp")),
        ("stack", (true, "stack")),
        ("userspace", (false, "stack")),
    ] {
        if !chosen(path) {
            continue;
        }
        eprintln!("==> {path}: lab with {many} sessions");
        let lab = lab(bin, mode, "deny", (0, !args.no_relay))?;
        let (client, list, _, _) = sessions(&lab, many, false)?;
        labs.push(RoundLab {
            path,
            lab,
            _client: client,
            list,
        });
    }
    let mut ratios = Vec::new();
    for &size in sizes {
        let steps = round_steps(&labs, size)?;
        if steps.is_empty() {
            continue;
        }
        let mut rounds: Vec<Vec<Measurement>> = Vec::new();
        for round in 0..timing.runs {
            eprintln!(
                "==> {size} B: round {} of {} ({} steps)",
                round + 1,
                timing.runs,
                steps.len()
            );
            let mut measured = Vec::new();
            for step in &steps {
                measured.extend(step.once(&mut labs[step.lab].lab, timing.seconds)?);
            }
            rounds.push(measured);
        }
        ratios.extend(paired_ratios(&rounds));
        out.extend(medians_of_rounds(rounds));
    }
    drop(labs);

    // MPPE on labs of its own: its measurement searches the highest rate
    // without loss first. "mppe": the fast path (XDP decrypts and
    // encrypts); "mppe-userspace": the same sessions with XDP off, the
    // reference the fast path is judged against (issue 14: three times the
    // userspace path's packets per second at 64 B, 1.5 times at 1400 B).
    let mppe_labs: &[(&'static str, bool)] = if chosen("mppe") {
        &[("mppe", true), ("mppe-userspace", false)]
    } else {
        &[]
    };
    for &(path, xdp) in mppe_labs {
        eprintln!("==> {path}: lab with {many} sessions");
        let mut lab = lab(bin, (xdp, "stack"), "require", (0, !args.no_relay))?;
        let (client, list, _, keys) = sessions(&lab, many, true)?;
        let server_mac = lab.topology.server.mac("s0").map_err(|e| e.to_string())?;
        let lan_mac = lab.topology.server.mac("l0").map_err(|e| e.to_string())?;
        for &size in sizes {
            // MPPE takes 4 bytes of the 1400-byte MRU (its header and the
            // encrypted protocol field), so the session MTU is 1396.
            let size = size.min(1396);
            let t = [mppe_frame(server_mac, &list[0], keys.of(&list[0])?, size)];
            let before = lab.stats().unwrap_or_default();
            out.push(measure_no_drop(
                &mut lab,
                "c0",
                &t,
                "h0",
                timing,
                (path, "decap", size, 1),
            )?);
            eprintln!(
                "    the daemon's MPPE receive counters over that search and its rounds: {}",
                mppe_deltas(&before, &lab.stats().unwrap_or_default(), false)
            );
            let client = list[0].client_addr.unwrap_or(Ipv4Addr::UNSPECIFIED);
            let t = [from_lan(lan_mac, (client, 9), size)];
            let before = lab.stats().unwrap_or_default();
            out.push(measure(
                &mut lab,
                "h0",
                &t,
                "c0",
                timing,
                (path, "encap", size, 1),
            )?);
            eprintln!(
                "    the daemon's MPPE send counters over its rounds: {}",
                mppe_deltas(&before, &lab.stats().unwrap_or_default(), true)
            );
        }
        drop(client);
    }

    // Session scale: setup time and memory, then traffic over all of them.
    let steps: Vec<usize> = if !chosen("scale") {
        Vec::new()
    } else if args.short {
        vec![20]
    } else {
        vec![1_000, args.scale]
    };
    for n in steps {
        eprintln!("==> scale: {n} sessions");
        let mut lab = lab(bin, (true, "xdp"), "deny", (n, !args.no_relay))?;
        let pid = lab.daemon_pid().unwrap_or(0);
        let before = rss_kib(pid);
        let (client, list, setup, _) = sessions(&lab, n, false)?;
        let after = rss_kib(pid);
        let s = Scale {
            sessions: n,
            setup_seconds: setup,
            sessions_per_second: n as f64 / setup,
            daemon_rss_kib_before: before,
            daemon_rss_kib_after: after,
            bytes_per_session: (after.saturating_sub(before) * 1024) as f64 / n as f64,
        };
        eprintln!(
            "    {n} sessions up in {:.1} s ({:.0}/s); daemon RSS {} -> {} KiB ({:.0} bytes per session)",
            s.setup_seconds, s.sessions_per_second, before, after, s.bytes_per_session
        );
        scale.push(s);
        if n == args.scale || args.short {
            let server_mac = lab.topology.server.mac("s0").map_err(|e| e.to_string())?;
            let t: Vec<Template> = list.iter().map(|s| gre_frame(server_mac, s, 64)).collect();
            out.push(measure(
                &mut lab,
                "c0",
                &t,
                "h0",
                timing,
                ("xdp", "decap", 64, n),
            )?);
        }
        drop(client);
    }

    let machine = format!(
        "{} CPUs, {}, kernel {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l
                .strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()))
            .unwrap_or_default(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    let results = Results {
        machine,
        seconds_per_measurement: timing.seconds,
        runs_per_measurement: timing.runs,
        measurements: out,
        scale,
        mppe_note: "MPPE (stateless, 128-bit): towards the client, the server encrypts; from the client, the generator encrypts each frame with the session's send key (from `client --report-mppe-keys`) into the next coherency count, as a client would, and the server decrypts".into(),
        pinning_note: format!("{PINNING_NOTE} {}", RELAY_NOTE[usize::from(args.no_relay)]),
        nft_note: NFT_NOTE.into(),
        nft_ruleset: ruleset("pptp0"),
        ratios,
        relay: !args.no_relay,
    };
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(results)
}

/// What `pptp-lab loadgen` is asked to do: one measurement between
/// namespaces someone else built (the guest comparison against kernel
/// PPTP uses it, so that every path there sees the same generator).
#[derive(Clone, Debug, clap::Args)]
pub struct LoadgenArgs {
    /// Namespace and interface the frames leave from (NS:IFACE).
    #[arg(long, value_name = "NS:IFACE")]
    pub from: String,
    /// The next hop: its MAC is the frames' destination (NS:IFACE).
    #[arg(long, value_name = "NS:IFACE")]
    pub via: String,
    /// Where an XDP sink counts and drops what arrives (NS:IFACE).
    #[arg(long, value_name = "NS:IFACE")]
    pub sink: String,
    /// Source of the inner IPv4/UDP packet.
    #[arg(long)]
    pub src: Ipv4Addr,
    /// Destination of the inner packet.
    #[arg(long)]
    pub dst: Ipv4Addr,
    /// Wrap the packet in PPP and enhanced GRE towards a server:
    /// PEER,SERVER,CALL_ID (the server's call ID).
    #[arg(long, value_name = "PEER,SERVER,CALL_ID", value_parser = parse_gre)]
    pub gre: Option<(Ipv4Addr, Ipv4Addr, u16)>,
    /// Size of the inner IPv4 packet.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// First GRE sequence number: above what the session used so far and
    /// what earlier runs sent (servers drop frames older than the last).
    #[arg(long, default_value_t = 1 << 16)]
    pub seq_base: u32,
}

fn parse_gre(s: &str) -> Result<(Ipv4Addr, Ipv4Addr, u16), String> {
    let bad = || format!("`{s}` is not PEER,SERVER,CALL_ID (two IPv4 addresses and a number)");
    let mut parts = s.split(',');
    let peer = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let server = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let call = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((peer, server, call))
}

fn ns_iface(s: &str) -> Result<(pptp_netns::Netns, &str), String> {
    let (ns, iface) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not NS:IFACE"))?;
    Ok((
        pptp_netns::Netns::existing(ns).map_err(|e| e.to_string())?,
        iface,
    ))
}

/// Runs one `loadgen` measurement: sent and delivered packets per second
/// and machine CPU per delivered packet.
pub fn loadgen(args: &LoadgenArgs) -> Result<Measurement, String> {
    let (from_ns, from_iface) = ns_iface(&args.from)?;
    let (via_ns, via_iface) = ns_iface(&args.via)?;
    let (sink_ns, sink_iface) = ns_iface(&args.sink)?;
    let mac = via_ns.mac(via_iface).map_err(|e| e.to_string())?;
    let inner = udp(args.src, args.dst, args.size);
    let template = match args.gre {
        Some(gre) => gre_template(mac, gre, &inner),
        None => Template {
            frame: ethernet(mac, &inner),
            seq_at: None,
            encrypt: None,
        },
    };
    let mut dp = AuxPrograms::load().map_err(|e| format!("loading the XDP sink: {e}"))?;
    sink_ns
        .run(|| dp.attach(SINK_PROGRAM, sink_iface))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("attaching the XDP sink to {}: {e}", args.sink))?;
    let counted = generate_and_count(
        &from_ns,
        from_iface,
        &[template],
        args.seconds,
        (args.seq_base, None),
        (None, None),
        || dp.sink_counters().map(|c| c.0).map_err(|e| e.to_string()),
    )?;
    let direction = if args.gre.is_some() { "decap" } else { "encap" };
    Ok(counted.measurement(("loadgen", direction, args.size, 1)))
}

/// Octets from hex digits (two per octet); None if any pair is not hex.
fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

fn to_hex(octets: &[u8]) -> String {
    octets.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `pptp-lab mppe-send` is asked to do: send one session's frames
/// as its client would with stateless MPPE, for the guest comparison's
/// client → network MPPE rows (`xtask guest loadgen --mppe` runs it and
/// counts around it; xtask has no cipher of its own).
#[derive(Clone, Debug, clap::Args)]
pub struct MppeSendArgs {
    /// Interface the frames leave from (in the current namespace).
    #[arg(long)]
    pub iface: String,
    /// Destination MAC of the frames (the next hop's), aa:bb:cc:dd:ee:ff.
    #[arg(long, value_parser = parse_mac)]
    pub dst_mac: [u8; 6],
    /// Outer addresses and the server's call ID: PEER,SERVER,CALL_ID.
    #[arg(long, value_name = "PEER,SERVER,CALL_ID", value_parser = parse_gre)]
    pub gre: (Ipv4Addr, Ipv4Addr, u16),
    /// Source of the inner IPv4/UDP packet (the client's tunnel address).
    #[arg(long)]
    pub src: Ipv4Addr,
    /// Destination of the inner packet.
    #[arg(long)]
    pub dst: Ipv4Addr,
    /// Size of the inner IPv4 packet.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    #[arg(long, default_value_t = 1.5)]
    pub seconds: f64,
    /// The start key the server decrypts with: a file holding "BITS HEX"
    /// (key length in bits, then the start key).
    #[arg(long, value_name = "FILE")]
    pub key: std::path::PathBuf,
    /// Where the session's sending state lives from run to run (see
    /// [`SendState`]): read if present, written after the run. Absent:
    /// the chain starts [`HEAD_START`] key changes in, the GRE sequence
    /// numbers at --seq-base.
    #[arg(long, value_name = "FILE")]
    pub state: std::path::PathBuf,
    /// First GRE sequence number when there is no state yet.
    #[arg(long, default_value_t = 1 << 20)]
    pub seq_base: u32,
    /// Offer this many frames a second instead of as many as the socket
    /// takes.
    #[arg(long)]
    pub pps: Option<u32>,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("`{s}` is not a MAC address");
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

/// The key changes a new chain makes before its first frame: past the
/// counts the real client end may have used (a few pings through the
/// tunnel), so that no frame of the generator's arrives as late or
/// duplicate; a forward jump this small costs a stateless receiver that
/// many key changes once (RFC 3078 section 8.1).
pub const HEAD_START: u64 = 64;

/// A client's stateless MPPE sending state between runs of `pptp-lab
/// mppe-send`: the receiver keeps its key chain and GRE sequence numbers
/// from run to run, so the generator continues both where the last run
/// stopped. The frames a run built but did not send took a count and a
/// sequence number each: the next run's first frame is a small jump
/// ahead, with sequence numbers that agree with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendState {
    /// Key changes since the initial session key (the last frame built).
    pub position: u64,
    /// The session key of that position.
    pub session_key: Vec<u8>,
    /// The GRE sequence number of the next frame.
    pub seq: u32,
}

impl SendState {
    /// "position=N key=HEX seq=N".
    pub fn parse(text: &str) -> Result<SendState, String> {
        let bad = || format!("MPPE send state {text:?} is not \"position=N key=HEX seq=N\"");
        let get = |name: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(bad)
        };
        Ok(SendState {
            position: get("position")?.parse().map_err(|_| bad())?,
            session_key: from_hex(get("key")?).ok_or_else(bad)?,
            seq: get("seq")?.parse().map_err(|_| bad())?,
        })
    }

    pub fn line(&self) -> String {
        format!(
            "position={} key={} seq={}\n",
            self.position,
            to_hex(&self.session_key),
            self.seq
        )
    }

    /// The sending state this describes, from the session's start key.
    fn resume(&self, start: &StartKey) -> Result<Sending, String> {
        let mut encryptor = Encryptor::new(start, true);
        if self.position > 0 {
            encryptor
                .skip_to(
                    self.position + 1,
                    Some((self.position, &self.session_key[..])),
                )
                .map_err(|e| format!("resuming the MPPE send state: {e}"))?;
        }
        Ok(Sending {
            encryptor,
            seq: self.seq,
        })
    }

    fn of(sending: &Sending) -> SendState {
        SendState {
            position: sending.encryptor.position(),
            session_key: sending.encryptor.session_key().to_vec(),
            seq: sending.seq,
        }
    }
}

/// "BITS HEX": a start key of 40, 56 or 128 bits.
pub fn parse_start_key(text: &str) -> Result<StartKey, String> {
    let bad = || format!("{text:?} is not \"BITS HEX\" (40, 56 or 128 bits)");
    let mut words = text.split_whitespace();
    let (Some(bits), Some(hex), None) = (words.next(), words.next(), words.next()) else {
        return Err(bad());
    };
    let bits = KeyLength::from_bits(bits.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    StartKey::new(&from_hex(hex).ok_or_else(bad)?, bits).ok_or_else(bad)
}

/// Runs `pptp-lab mppe-send`: returns the frames sent and the seconds
/// they took.
pub fn mppe_send(args: &MppeSendArgs) -> Result<(u64, f64), String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let start = parse_start_key(&read(&args.key)?)?;
    let state = match std::fs::read_to_string(&args.state) {
        Ok(text) => SendState::parse(&text)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => SendState {
            position: 0,
            session_key: Vec::new(),
            seq: args.seq_base,
        },
        Err(e) => return Err(format!("{}: {e}", args.state.display())),
    };
    let mut sending = state.resume(&start)?;
    if state.position == 0 {
        sending
            .encryptor
            .skip_to(HEAD_START + 1, None)
            .map_err(|e| e.to_string())?;
    }
    let encryptor = SharedEncryptor::new(sending.into());
    let inner = udp(args.src, args.dst, args.size);
    let template = mppe_template(args.dst_mac, args.gre, &inner, &encryptor);
    let generator =
        Generator::open(&args.iface).map_err(|e| format!("AF_PACKET on {}: {e}", args.iface))?;
    let duration = Duration::from_secs_f64(args.seconds);
    let (sent, seconds, after) = match args.pps {
        // Paced: the run's frames are known in advance, built first.
        Some(pps) => {
            let mut sending = encryptor.lock().unwrap_or_else(|p| p.into_inner());
            let count = Prebuilt::count(pps, args.seconds, template.frame.len());
            let frames = Prebuilt::build(&template, &mut sending, count);
            let started = Instant::now();
            let sent = generator.send_prebuilt(&frames, duration, Some(f64::from(pps)));
            let seconds = started.elapsed().as_secs_f64();
            let after = frames.state_after(sent as usize).cloned();
            (sent, seconds, after.unwrap_or(state))
        }
        None => {
            let started = Instant::now();
            let sent = generator.run(&[template], duration, args.seq_base, None);
            let seconds = started.elapsed().as_secs_f64();
            let after = SendState::of(&encryptor.lock().unwrap_or_else(|p| p.into_inner()));
            (sent, seconds, after)
        }
    };
    std::fs::write(&args.state, after.line())
        .map_err(|e| format!("{}: {e}", args.state.display()))?;
    Ok((sent, seconds))
}

#[cfg(test)]
mod tests {
    use pptp_daemon::mppe::cipher::Decryptor;

    use super::*;

    #[test]
    fn the_no_drop_search_halves_to_a_sixteenth_of_the_lossy_rate() {
        // The rates probed for a path that carries `capacity`, first
        // lossy at `hi` above a clean `lo`.
        let halve = |capacity: f64, (mut lo, mut hi): (f64, f64)| {
            let (mut probed, mut halvings) = (Vec::new(), 0);
            while keeps_halving(lo, hi, halvings) {
                halvings += 1;
                let mid = (lo + hi) / 2.0;
                probed.push(mid);
                if mid <= capacity {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            (probed, lo)
        };
        // Lossy first at 160,000 or at 80,000: found to within 5,000
        // either way (three halvings found the first to within 10,000).
        assert_eq!(
            halve(105_000.0, (80_000.0, 160_000.0)),
            (vec![120_000.0, 100_000.0, 110_000.0, 105_000.0], 105_000.0)
        );
        assert_eq!(
            halve(72_000.0, (40_000.0, 80_000.0)),
            (vec![60_000.0, 70_000.0, 75_000.0, 72_500.0], 70_000.0)
        );
        // Lossy from the first probe: not below the floor.
        assert_eq!(
            halve(100.0, (0.0, 5_000.0)),
            (vec![2_500.0, 1_250.0, 625.0], 0.0)
        );
    }

    fn run(delivered: f64, cpu: f64, own: f64) -> Measurement {
        Measurement {
            path: "stack".into(),
            direction: "decap".into(),
            size: 64,
            sessions: 1,
            sent_pps: delivered + 1.0,
            delivered_pps: delivered,
            loss: 1.0 / (delivered + 1.0),
            cpu_ns_per_packet: cpu,
            cpu_ns_range: [cpu; 2],
            own_cpu_ns_per_packet: own,
            own_cpu_ns_range: [own; 2],
            fwd_cpu_ns_per_packet: own / 2.0,
            fwd_cpu_ns_range: [own / 2.0; 2],
            server_tasks_ns_per_packet: own / 3.0,
            bpf_ns_per_packet: own / 10.0,
            bpf_programs: vec![ProgramCost {
                name: "pptp_xdp_stack".into(),
                ns_per_run: own / 10.0,
                runs_per_packet: 1.0,
            }],
            runs: 1,
        }
    }

    #[test]
    fn mppe_send_state_continues_the_key_chain_and_the_sequence() {
        let start = parse_start_key("128 404142434445464748494a4b4c4d4e4f\n").unwrap();
        let frame = |s: &mut Sending| {
            let mut p = vec![0, 0, 0x00, 0x21, 1, 2, 3, 4];
            s.encryptor.encrypt_in_place(&mut p).unwrap();
            s.seq += 1;
            p
        };
        let mut whole = Sending {
            encryptor: Encryptor::new(&start, true),
            seq: 7,
        };
        let expected: Vec<Vec<u8>> = (0..6).map(|_| frame(&mut whole)).collect();
        // Stateless: FLUSHED and encrypted on every frame, counts 0, 1, ...
        assert_eq!(&expected[0][..2], &[0x90, 0x00]);
        assert_eq!(&expected[5][..2], &[0x90, 0x05]);

        let new = SendState {
            position: 0,
            session_key: Vec::new(),
            seq: 7,
        };
        let mut first = new.resume(&start).unwrap();
        let mut got: Vec<Vec<u8>> = (0..2).map(|_| frame(&mut first)).collect();
        let line = SendState::of(&first).line();
        let saved = SendState::parse(&line).unwrap();
        assert_eq!((saved.position, saved.seq), (2, 9), "{line}");
        let mut second = saved.resume(&start).unwrap();
        got.extend((0..4).map(|_| frame(&mut second)));
        assert_eq!(got, expected);
        assert_eq!(second.seq, whole.seq);
        assert_eq!(
            second.encryptor.session_key(),
            whole.encryptor.session_key()
        );
    }

    #[test]
    fn prebuilt_frames_are_a_clients_and_the_next_run_follows_the_last_sent() {
        let start = parse_start_key("128 404142434445464748494a4b4c4d4e4f\n").unwrap();
        let fresh = || Sending {
            encryptor: Encryptor::new(&start, true),
            seq: 100,
        };
        let inner = udp(
            Ipv4Addr::new(198, 18, 5, 2),
            Ipv4Addr::new(198, 18, 7, 2),
            64,
        );
        let ids = (
            Ipv4Addr::new(198, 18, 6, 2),
            Ipv4Addr::new(198, 18, 6, 1),
            7,
        );
        let shared = SharedEncryptor::new(fresh().into());
        let template = mppe_template([2, 0, 0, 0, 0, 1], ids, &inner, &shared);
        let mut sending = fresh();
        let frames = Prebuilt::build(&template, &mut sending, 6);
        assert_eq!(frames.len(), 6);
        // What a stateless receiver takes in order: GRE sequence numbers
        // one apart, counts one apart, the inner packet after decryption.
        let mut rx = Decryptor::new(&start, true);
        for i in 0..6 {
            let f = frames.frame(i);
            assert_eq!(f[..42], template.frame[..42], "headers, frame {i}");
            assert_eq!(f[46..50], template.frame[46..50], "PPP, frame {i}");
            assert_eq!(f[42..46], (100 + i as u32).to_be_bytes(), "frame {i}");
            let mut mppe = f[50..].to_vec();
            assert_eq!(mppe[..2], [0x90, i as u8], "FLUSHED, count {i}");
            assert_ne!(mppe[4..], inner[..], "frame {i} encrypted");
            rx.decrypt_in_place(&mut mppe).unwrap();
            assert_eq!(mppe[2..4], [0x00, 0x21]);
            assert_eq!(mppe[4..], inner[..], "frame {i}");
        }
        // Four of the six sent: the next run's first frame is the fifth,
        // its count and sequence number, none skipped.
        assert!(frames.state_after(0).is_none());
        let after = frames.state_after(4).unwrap();
        let mut resumed = SendState::parse(&after.line())
            .unwrap()
            .resume(&start)
            .unwrap();
        let next = Prebuilt::build(&template, &mut resumed, 2);
        assert_eq!(next.frame(0), frames.frame(4));
        assert_eq!(next.frame(1), frames.frame(5));
        // As many as the run can send, within the memory bound.
        assert_eq!(Prebuilt::count(20_000, 1.5, 1_446), 30_000);
        assert_eq!(
            Prebuilt::count(1_000_000, 10.0, 1_446),
            PREBUILT_OCTETS / 1_446
        );
    }

    #[test]
    fn mppe_send_files_parse() {
        let key = parse_start_key("128 000102030405060708090a0b0c0d0e0f").unwrap();
        assert_eq!(key.length(), KeyLength::Bits128);
        assert_eq!(key.as_bytes()[15], 15);
        assert!(parse_start_key("128 0001").is_err(), "short key");
        assert!(parse_start_key("129 000102030405060708090a0b0c0d0e0f").is_err());
        assert!(parse_start_key("128 00010203040506070809 0a0b0c0d0e0f").is_err());
        assert!(parse_start_key("128 0g0102030405060708090a0b0c0d0e0f").is_err());
        assert!(SendState::parse("position=3 key=0a0b seq=").is_err());
        assert!(SendState::parse("position=3 key=0a0 seq=1").is_err());
        assert_eq!(
            SendState::parse("position=3 key=0a0b seq=4294967295\n").unwrap(),
            SendState {
                position: 3,
                session_key: vec![10, 11],
                seq: u32::MAX
            }
        );
        assert_eq!(parse_mac("02:00:0a:ff:00:01"), Ok([2, 0, 10, 255, 0, 1]));
        assert!(parse_mac("02:00:0a:ff:00").is_err());
    }

    #[test]
    fn runs_reduce_to_medians_and_ranges() {
        let m = Measurement::median(vec![
            run(300.0, 9000.0, 3000.0),
            run(100.0, 3000.0, 1000.0),
            run(200.0, 5000.0, 4000.0),
        ])
        .unwrap();
        assert_eq!(
            (m.sent_pps, m.delivered_pps, m.cpu_ns_per_packet),
            (201.0, 200.0, 5000.0)
        );
        assert_eq!(m.cpu_ns_range, [3000.0, 9000.0]);
        assert_eq!(
            (m.own_cpu_ns_per_packet, m.own_cpu_ns_range),
            (3000.0, [1000.0, 4000.0])
        );
        assert_eq!(
            (m.fwd_cpu_ns_per_packet, m.fwd_cpu_ns_range),
            (1500.0, [500.0, 2000.0])
        );
        assert_eq!(m.bpf_ns_per_packet, 300.0);
        assert_eq!(m.bpf_programs.len(), 1);
        assert_eq!(
            (
                m.bpf_programs[0].ns_per_run,
                m.bpf_programs[0].runs_per_packet
            ),
            (300.0, 1.0)
        );
        assert_eq!((m.runs, m.path.as_str()), (3, "stack"));
        assert!(Measurement::median(Vec::new()).is_none());
    }

    /// A ratio is taken within each round, so a drift that moves both
    /// paths of a round alike leaves it where it was, while the medians
    /// of the paths themselves spread.
    #[test]
    fn ratios_are_taken_round_by_round() {
        let at = |path: &str, sessions: usize, fwd: f64, pps: f64| Measurement {
            path: path.into(),
            sessions,
            fwd_cpu_ns_per_packet: fwd,
            fwd_cpu_ns_range: [fwd; 2],
            delivered_pps: pps,
            ..run(pps, fwd, fwd)
        };
        // The machine gets 50 % slower over the rounds; stack+nft costs
        // 1.2 times ip-forward+nft in each round but the second, where it
        // costs 1.25.
        let rounds: Vec<Vec<Measurement>> = [(1.0, 1.2), (1.2, 1.25), (1.5, 1.2)]
            .into_iter()
            .map(|(slow, r)| {
                vec![
                    at("stack+nft", 1, 1000.0 * slow * r, 1e9 / (1000.0 * slow * r)),
                    at("ip-forward+nft", 0, 1000.0 * slow, 1e9 / (1000.0 * slow)),
                    at("xdp", 1, 500.0 * slow, 2e6 / slow),
                ]
            })
            .collect();
        let ratios = paired_ratios(&rounds);
        assert_eq!(ratios.len(), 1, "{ratios:?}: xdp-route was not measured");
        let r = &ratios[0];
        assert_eq!(
            (r.path.as_str(), r.base.as_str(), r.figure.as_str()),
            ("stack+nft", "ip-forward+nft", "fwd_cpu_ns_per_packet")
        );
        assert_eq!((r.rounds, r.direction.as_str(), r.size), (3, "decap", 64));
        assert!((r.median - 1.2).abs() < 1e-9, "{r:?}");
        assert!(
            (r.range[0] - 1.2).abs() < 1e-9 && (r.range[1] - 1.25).abs() < 1e-9,
            "{r:?}"
        );
        let medians = medians_of_rounds(rounds);
        assert_eq!(medians.len(), 3);
        let forward = medians.iter().find(|m| m.path == "ip-forward+nft").unwrap();
        assert_eq!(
            (
                forward.fwd_cpu_ns_per_packet,
                forward.fwd_cpu_ns_range,
                forward.runs
            ),
            (1200.0, [1000.0, 1500.0], 3)
        );
    }

    #[test]
    fn the_ruleset_differs_only_in_the_ingress_interface() {
        let stack = ruleset("pptp0");
        let forward = ruleset("s0");
        assert!(stack.contains("iifname \"pptp0\" accept"), "{stack}");
        assert!(forward.contains("iifname \"s0\" accept"), "{forward}");
        assert_eq!(stack.replace("pptp0", "s0"), forward);
        assert!(!RULESET.replace("INGRESS", "").contains("pptp0"));
    }

    #[test]
    fn udp_ports_land_in_the_header() {
        let p = udp_ports(
            (Ipv4Addr::new(198, 19, 64, 1), 1064),
            (Ipv4Addr::new(198, 18, 1, 2), 1065),
            64,
        );
        assert_eq!(p.len(), 64);
        assert_eq!(&p[20..24], &[0x04, 0x28, 0x04, 0x29]);
        assert_eq!(&p[24..26], &44u16.to_be_bytes());
        assert_eq!(checksum(&p[..20]), 0, "header checksum");
    }
}
