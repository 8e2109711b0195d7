//! The guest comparison's forwarding-CPU figures: what one packet costs
//! the CPU that forwards it, per path, session count, size and direction.
//!
//! The generator and the sinks run on vCPU 0, the server namespace's
//! device queues (threaded NAPI), softirq, XDP and our daemon on vCPU 1
//! (`lab.sh pin`); `xtask guest loadgen` (guest/loadgen.rs) prints a line
//! per run with the counters' differences, which [`Run::parse`] turns into
//! per-packet figures. Each figure is the median of the runs, with the
//! lowest and highest.
//!
//! The runs are taken in rounds: kernel PPTP (on its own link, see
//! xtask/guest/lab.sh) and our daemon are up at the same time, and each
//! round measures every path of the phase once, one after the other. Run
//! `i` of every figure of a phase belongs to round `i`, so a ratio of two
//! paths is taken round by round ([`ratios`]): two measurements seconds
//! apart, which a slow change of the host's load moves alike.

use anyhow::Context as _;
use serde::Serialize;

use super::bench::PathKind;

/// How the CPUs are split, for the table and the JSON.
pub const PINNING: &str = "generator and sinks on vCPU 0; the server namespace's device queues \
     (threaded NAPI), softirq, XDP and pptp-daemon on vCPU 1; forwarding CPU = vCPU 1's busy time \
     (user + system + irq + softirq, /proc/stat) per delivered packet";

/// Which way the packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to network: GRE in, decapsulated, forwarded to the LAN.
    Up,
    /// Network to client: encapsulated towards the client.
    Down,
}

impl Dir {
    pub fn arg(self) -> &'static str {
        match self {
            Dir::Up => "up",
            Dir::Down => "down",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Dir::Up => "client → network",
            Dir::Down => "network → client",
        }
    }
}

/// One generator run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    pub sent_pps: f64,
    pub delivered_pps: f64,
    /// vCPU 1's busy time per delivered packet.
    pub forwarding_cpu_ns: f64,
    /// vCPU 0's (generator and sinks) per delivered packet.
    pub generator_cpu_ns: f64,
    /// The daemon's BPF programs: run time per run (NaN without runs).
    pub bpf_ns: f64,
    /// BPF program runs per delivered packet.
    pub bpf_runs_per_packet: f64,
    /// vCPU 1's share of the NET_RX softirqs (NaN without any).
    pub net_rx_on_forwarding_cpu: f64,
    /// Packets dropped at a full CPU backlog, per packet sent.
    pub backlog_drops: f64,
    /// Host CPU time of vCPU 1's qemu thread over the run (its setup
    /// included: vCPU 1 idles then) per delivered packet; NaN until the
    /// caller sets it (the guest cannot see it).
    pub host_cpu_ns: f64,
    /// Milliseconds vCPU 1's qemu thread waited, runnable, for a host CPU
    /// over the run (its setup included); NaN until the caller sets it.
    pub host_wait_ms: f64,
    /// vCPU 1's switches into a task per delivered packet: on a CPU that
    /// idles between batches of packets, nearly each is a wake-up of a
    /// NAPI thread, whose cost (idle exit, a context switch, timer and
    /// clock work) every path pays per batch, not per packet (NaN when
    /// the generator did not report them).
    pub switches: f64,
    /// The run time of vCPU 1's tasks (threaded NAPI, the daemon) per
    /// delivered packet, from the scheduler's clock: the forwarding CPU
    /// without the tick resolution of /proc/stat and without the idle
    /// task's share of waking up (NaN when not reported).
    pub task_ns: f64,
}

impl Run {
    /// Less than 1 % of what was sent arrived: the path stopped delivering
    /// (seen with kernel PPTP only, see docs/bench-guest.md). Such a run
    /// is left out of the medians and counted.
    pub fn stalled(&self) -> bool {
        self.delivered_pps < self.sent_pps * 0.01
    }

    /// The `run ...` lines of `xtask guest loadgen`.
    pub fn parse(out: &str) -> anyhow::Result<Vec<Run>> {
        let runs: Vec<Run> = out
            .lines()
            .filter(|l| l.starts_with("run "))
            .map(Run::parse_line)
            .collect::<anyhow::Result<_>>()?;
        anyhow::ensure!(!runs.is_empty(), "the generator gave no runs: {out:?}");
        Ok(runs)
    }

    fn parse_line(line: &str) -> anyhow::Result<Run> {
        let get = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                .with_context(|| format!("no {key} in {line:?}"))
        };
        let num = |key: &str| -> anyhow::Result<f64> {
            get(key)?
                .parse::<f64>()
                .with_context(|| format!("{key} in {line:?}"))
        };
        let list = |key: &str| -> anyhow::Result<Vec<f64>> {
            get(key)?
                .split(',')
                .map(|x| {
                    x.parse::<f64>()
                        .with_context(|| format!("{key} in {line:?}"))
                })
                .collect()
        };
        let (sent, seconds, delivered, hz) =
            (num("sent")?, num("seconds")?, num("delivered")?, num("hz")?);
        let busy = list("busy")?;
        let net_rx = list("netrx")?;
        let (bpf_ns, bpf_runs) = (num("bpf_ns")?, num("bpf_runs")?);
        let backlog_drops = num("backlog_drops")?;
        // Later additions to the line: NaN when absent.
        let cpu1 = |key: &str| -> anyhow::Result<f64> {
            if get(key).is_err() {
                return Ok(f64::NAN);
            }
            Ok(list(key)?.get(1).copied().unwrap_or(f64::NAN))
        };
        let (switches, task_ns) = (cpu1("switches")?, cpu1("task_ns")?);
        anyhow::ensure!(
            busy.len() >= 2 && seconds > 0.0 && hz > 0.0,
            "{line:?}: two CPUs and a duration expected"
        );
        let per_packet = |jiffies: f64| {
            if delivered > 0.0 {
                jiffies / hz * 1e9 / delivered
            } else {
                f64::NAN
            }
        };
        let per_delivered = |x: f64| {
            if delivered > 0.0 {
                x / delivered
            } else {
                f64::NAN
            }
        };
        let rx_total: f64 = net_rx.iter().sum();
        Ok(Run {
            sent_pps: sent / seconds,
            delivered_pps: delivered / seconds,
            forwarding_cpu_ns: per_packet(busy[1]),
            generator_cpu_ns: per_packet(busy[0]),
            bpf_ns: if bpf_runs > 0.0 {
                bpf_ns / bpf_runs
            } else {
                f64::NAN
            },
            bpf_runs_per_packet: if delivered > 0.0 && bpf_runs > 0.0 {
                bpf_runs / delivered
            } else {
                f64::NAN
            },
            net_rx_on_forwarding_cpu: if rx_total > 0.0 {
                net_rx.get(1).copied().unwrap_or(0.0) / rx_total
            } else {
                f64::NAN
            },
            backlog_drops: if sent > 0.0 {
                backlog_drops / sent
            } else {
                f64::NAN
            },
            host_cpu_ns: f64::NAN,
            host_wait_ms: f64::NAN,
            switches: per_delivered(switches),
            task_ns: per_delivered(task_ns),
        })
    }
}

/// Median, lowest and highest of a figure's runs (NaN when no run had it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Spread {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    pub fn is_finite(&self) -> bool {
        self.median.is_finite()
    }

    /// "median (min–max)" with `digits` decimals, or "-".
    pub fn show(&self, digits: usize) -> String {
        if self.is_finite() {
            format!(
                "{:.d$} ({:.d$}–{:.d$})",
                self.median,
                self.min,
                self.max,
                d = digits
            )
        } else {
            "-".to_owned()
        }
    }

    /// Rounded to `digits` decimals for the JSON; None when not measured.
    fn json(&self, digits: i32) -> Option<Spread> {
        let scale = 10f64.powi(digits);
        let r = |x: f64| (x * scale).round() / scale;
        self.is_finite().then(|| Spread {
            median: r(self.median),
            min: r(self.min),
            max: r(self.max),
        })
    }
}

/// The runs of one path, session count, size and direction, in round
/// order.
#[derive(Debug, Clone)]
pub struct Figure {
    pub kind: PathKind,
    pub sessions: u32,
    /// The phase: how many kernel PPTP sessions were up (and measured in
    /// the same rounds) while this was measured.
    pub beside: u32,
    pub size: usize,
    pub dir: Dir,
    pub runs: Vec<Run>,
    /// Runs with the kernel's BPF run-time statistics on, after the rounds
    /// (the rounds run without: the statistics cost every program run two
    /// clock reads, which only the XDP paths would pay).
    pub bpf_runs: Vec<Run>,
    /// Runs that delivered nothing ([`Run::stalled`]) and were repeated at
    /// once, the repeat taking their place in [`Self::runs`]: a failure of
    /// the sink's side of the guest, not of the path (docs/bench-guest.md).
    pub repeated_stalls: usize,
    /// When every run of this figure was offered a rate that was not the
    /// comparison's (`--pps`, or as many as the generator sends): that
    /// rate, and the highest rate without loss a search found for this
    /// path first (client → network MPPE: the rate is the lowest of the
    /// compared paths' no-loss rates; see `bench::common_rate`).
    pub offered: Option<(u32, u32)>,
    /// Times this path's session passed no traffic after a run that
    /// delivered nothing and was brought up again (kernel PPTP only; the
    /// no-loss search's restarts included): `bench::NoLossSearch`.
    pub session_restarts: u32,
}

impl Figure {
    /// The rate every run was offered, when it was the figure's own.
    pub fn offered_pps(&self) -> Option<u32> {
        self.offered.map(|(pps, _)| pps)
    }

    /// Over the runs that delivered (see [`Run::stalled`]).
    fn spread(&self, f: impl Fn(&Run) -> f64) -> Spread {
        Spread::of(self.runs.iter().filter(|r| !r.stalled()).map(f))
    }

    /// Runs in which (almost) nothing arrived.
    pub fn stalled_runs(&self) -> usize {
        self.runs.iter().filter(|r| r.stalled()).count()
    }

    pub fn host_ns(&self) -> Spread {
        self.spread(|r| r.host_cpu_ns)
    }

    pub fn delivered_pps(&self) -> Spread {
        self.spread(|r| r.delivered_pps)
    }

    pub fn forwarding_cpu_ns(&self) -> Spread {
        self.spread(|r| r.forwarding_cpu_ns)
    }

    pub fn bpf_ns(&self) -> Spread {
        Spread::of(self.bpf_runs.iter().map(|r| r.bpf_ns))
    }
}

/// The drop counters that moved during a `lab.sh measure` (its "drops:"
/// line, after the runs: "NS:DEV:COUNTER=N ...", or "none"), which say
/// where a lossy run lost its frames: before the server (the relay's
/// redirect into srv's full receive ring, cli0's
/// `tx_queue_0_xdp_xmit_errors`), in it, or after it (the server's into
/// the sink's, srv1's). `None` from a lab.sh without that line.
pub fn drops(out: &str) -> Option<&str> {
    out.lines()
        .rev()
        .find_map(|l| l.strip_prefix("drops:"))
        .map(str::trim)
}

/// Row name of a path in the forwarding table: the generator stands in for
/// the client, so the client end does not matter.
pub fn label(kind: PathKind) -> &'static str {
    match kind {
        PathKind::Plain => "plain forwarding, no tunnel",
        PathKind::PlainXdp => "plain XDP routing, no tunnel",
        PathKind::Kernel => "kernel PPTP",
        PathKind::OursXdp | PathKind::OursXdpOurClient => "pptp-daemon XDP",
        PathKind::OursUserspace | PathKind::OursUserspaceOurClient => "pptp-daemon userspace",
        PathKind::Pptpd => "pptpd",
        PathKind::KernelMppe => "kernel PPTP + ppp_mppe",
        PathKind::OursXdpMppe => "pptp-daemon XDP, MPPE",
        PathKind::OursUserspaceMppe => "pptp-daemon userspace, MPPE",
    }
}

/// Which per-packet figure a ratio is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// vCPU 1's busy time in the guest's accounting.
    ForwardingCpu,
    /// The host CPU time of vCPU 1's thread.
    HostVcpu,
}

impl Measure {
    fn of(self, run: &Run) -> f64 {
        match self {
            Measure::ForwardingCpu => run.forwarding_cpu_ns,
            Measure::HostVcpu => run.host_cpu_ns,
        }
    }

    /// The `figure` of a ratio in the JSON (see xtask's bench-compare).
    pub fn key(self) -> &'static str {
        match self {
            Measure::ForwardingCpu => "forwarding_cpu_ns",
            Measure::HostVcpu => "host_vcpu_ns",
        }
    }
}

/// A path over kernel PPTP (with ppp_mppe for the MPPE paths) in the same
/// phase, size and direction.
#[derive(Debug, Clone, Copy)]
pub struct Ratio {
    pub kind: PathKind,
    /// The kernel PPTP path (see [`PathKind::kernel_base`]).
    pub base: PathKind,
    pub sessions: u32,
    /// Kernel PPTP's session count (the phase).
    pub kernel_sessions: u32,
    pub size: usize,
    pub dir: Dir,
    pub measure: Measure,
    /// Over the rounds in which both delivered.
    pub spread: Spread,
    pub rounds: usize,
}

/// Kernel PPTP's figure of `fig`'s phase, size and direction (with
/// ppp_mppe for an MPPE path).
fn kernel_of<'a>(all: &'a [Figure], fig: &Figure) -> Option<&'a Figure> {
    all.iter().find(|k| {
        k.kind == fig.kind.kernel_base()
            && k.sessions == fig.beside
            && k.beside == fig.beside
            && k.size == fig.size
            && k.dir == fig.dir
    })
}

/// `fig` over kernel PPTP of its phase, round by round.
pub fn over_kernel(all: &[Figure], fig: &Figure, measure: Measure) -> Option<Ratio> {
    if fig.kind == fig.kind.kernel_base() {
        return None;
    }
    let kernel = kernel_of(all, fig)?;
    let per_round: Vec<f64> = fig
        .runs
        .iter()
        .zip(&kernel.runs)
        .filter(|(a, b)| !a.stalled() && !b.stalled())
        .map(|(a, b)| measure.of(a) / measure.of(b))
        .filter(|r| r.is_finite())
        .collect();
    (!per_round.is_empty()).then(|| Ratio {
        kind: fig.kind,
        base: kernel.kind,
        sessions: fig.sessions,
        kernel_sessions: kernel.sessions,
        size: fig.size,
        dir: fig.dir,
        measure,
        rounds: per_round.len(),
        spread: Spread::of(per_round),
    })
}

/// Every path over kernel PPTP of its phase, both measures.
pub fn ratios(all: &[Figure]) -> Vec<Ratio> {
    all.iter()
        .flat_map(|f| {
            [Measure::ForwardingCpu, Measure::HostVcpu]
                .into_iter()
                .filter_map(move |m| over_kernel(all, f, m))
        })
        .collect()
}

/// The figures as text: one line per figure.
pub fn table(all: &[Figure], runs: u32, seconds: f64, offered_pps: Option<u32>) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let offered = offered_pps.map_or(String::new(), |pps| {
        format!(", {pps} packets/s offered to every path")
    });
    let _ = writeln!(
        t,
        "\nForwarding CPU per packet, median (min–max) of {runs} rounds × {seconds} s{offered} (BPF ns/run: a separate run with the kernel's BPF statistics on); {PINNING}"
    );
    let _ = writeln!(
        t,
        "  {:<30} {:>8} {:>6} {:>6} {:<17} {:>22} {:>24} {:>20} {:>18} {:>24} {:>18} {:>22} {:>24}",
        "path",
        "sessions",
        "beside",
        "size",
        "direction",
        "delivered pps",
        "forwarding CPU ns/pkt",
        "BPF ns/run",
        "x kernel",
        "host ns/pkt",
        "x kernel",
        "switches/pkt",
        "task ns/pkt"
    );
    let ratio = |r: Option<Ratio>| r.map_or("-".to_owned(), |r| r.spread.show(2));
    for f in all {
        let _ = writeln!(
            t,
            "  {:<30} {:>8} {:>6} {:>4} B {:<17} {:>22} {:>24} {:>20} {:>18} {:>24} {:>18} {:>22} {:>24}{}",
            label(f.kind),
            f.sessions,
            f.beside,
            f.size,
            f.dir.label(),
            f.delivered_pps().show(0),
            f.forwarding_cpu_ns().show(0),
            f.bpf_ns().show(0),
            ratio(over_kernel(all, f, Measure::ForwardingCpu)),
            f.host_ns().show(0),
            ratio(over_kernel(all, f, Measure::HostVcpu)),
            f.spread(|r| r.switches).show(2),
            f.spread(|r| r.task_ns).show(0),
            match (f.stalled_runs(), f.repeated_stalls) {
                (0, 0) => String::new(),
                (0, r) => format!("  ({r} stalled runs repeated)"),
                (n, r) => format!(
                    "  ({n} of {} runs delivered nothing; {r} stalled runs repeated)",
                    f.runs.len()
                ),
            } + &match f.session_restarts {
                0 => String::new(),
                n => format!("  (its session died and was brought up again {n} times)"),
            } + &f.offered.map_or(String::new(), |(pps, own)| {
                format!(
                    "  (offered {pps} packets/s, the lowest of the compared paths' no-loss rates; its own {own})"
                )
            }),
        );
    }
    let _ = writeln!(
        t,
        "  beside: kernel PPTP's session count in the rounds that measured the row; x kernel: \
         over kernel PPTP in the same rounds, median (min–max) of the rounds' ratios; host \
         ns/pkt: host CPU time of vCPU 1's qemu thread per delivered packet (not inflated when \
         the host preempts the vCPU, which the guest's own figures are); switches/pkt: vCPU 1's \
         switches into a task per delivered packet (nearly each a NAPI thread's wake-up, a cost \
         every path pays per batch of packets); task ns/pkt: run time of vCPU 1's tasks (threaded NAPI, the daemon) \
         per delivered packet, from the scheduler clock (/proc/schedstat)"
    );
    t
}

/// The most frames one generator run may send: the step between the
/// first GRE sequence numbers of consecutive runs (1.4 million packets a
/// second for 1.5 s; the guest's generator sends some 40,000).
pub const SEQ_STEP: u32 = 1 << 21;

/// The first GRE sequence number (RFC 2637 section 4.4) of generator run
/// `run` (1, 2, ...). The numbers increase from run to run both as plain
/// numbers, as kernel PPTP compares them (pptp.c drops a frame numbered
/// below the last one it took), and in serial arithmetic from a session's
/// own first numbers (RFC 1982, as our daemon's userspace path judges
/// them: less than 2^31 ahead). The bases used to cycle through 60 values
/// 2^26 apart: from the 32nd run on, the userspace path took the
/// generator's frames for old ones, and once the cycle wrapped kernel PPTP
/// did; those runs delivered nothing.
pub fn seq_base(run: u32) -> anyhow::Result<u32> {
    anyhow::ensure!(
        (1..(1 << 31) / SEQ_STEP).contains(&run),
        "generator run {run}: GRE sequence numbers would reach 2^31 (at most {} runs)",
        (1u32 << 31) / SEQ_STEP - 1
    );
    Ok(run * SEQ_STEP)
}

/// The "forwarding" member of the guest JSON.
#[derive(Serialize)]
pub struct Json {
    runs: u32,
    seconds_per_run: f64,
    pinning: &'static str,
    /// The generator's fixed offered rate (`--pps`); absent: as many as
    /// it sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    offered_pps: Option<u32>,
    rows: Vec<RowJson>,
    /// Every path over kernel PPTP measured in the same rounds, in the
    /// form of the host bench's `ratios` (xtask bench-compare reads both).
    ratios: Vec<RatioJson>,
}

#[derive(Serialize)]
struct RowJson {
    path: &'static str,
    label: &'static str,
    sessions: u32,
    /// Kernel PPTP's session count in the rounds that measured this row.
    beside_kernel_sessions: u32,
    size: usize,
    direction: &'static str,
    runs: usize,
    /// Runs in which less than 1 % of what was sent arrived; left out of
    /// the figures and the ratios.
    stalled_runs: usize,
    /// Runs that delivered nothing and were repeated at once (the repeat
    /// is among `runs`).
    repeated_stalls: usize,
    sent_pps: Option<Spread>,
    delivered_pps: Option<Spread>,
    forwarding_cpu_ns_per_packet: Option<Spread>,
    generator_cpu_ns_per_packet: Option<Spread>,
    bpf_ns_per_run: Option<Spread>,
    bpf_runs_per_packet: Option<Spread>,
    net_rx_on_forwarding_cpu: Option<Spread>,
    /// Packets dropped at a full CPU backlog, per packet sent.
    backlog_drops_per_packet: Option<Spread>,
    /// Host CPU time of vCPU 1's thread per delivered packet.
    host_vcpu_ns_per_packet: Option<Spread>,
    /// vCPU 1's switches into a task per delivered packet (see
    /// [`Run::switches`]).
    forwarding_switches_per_packet: Option<Spread>,
    /// vCPU 1's task run time per delivered packet ([`Run::task_ns`]).
    forwarding_task_ns_per_packet: Option<Spread>,
    /// The rate this row's runs were offered, when it was its own: the
    /// lowest of the compared paths' highest rates without loss (client
    /// → network MPPE).
    #[serde(skip_serializing_if = "Option::is_none")]
    offered_pps: Option<u32>,
    /// This path's own highest rate without loss, with `offered_pps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    no_loss_pps: Option<u32>,
    /// Times the path's session died and was brought up again, in the
    /// no-loss search and the rounds (kernel PPTP).
    session_restarts: u32,
    /// Over kernel PPTP in the same rounds (the rounds' ratios).
    forwarding_cpu_over_kernel: Option<Spread>,
    host_vcpu_over_kernel: Option<Spread>,
}

#[derive(Serialize)]
struct RatioJson {
    path: &'static str,
    sessions: u32,
    base: String,
    figure: &'static str,
    direction: &'static str,
    size: usize,
    median: f64,
    range: [f64; 2],
    rounds: usize,
}

pub fn json(all: &[Figure], runs: u32, seconds: f64, offered_pps: Option<u32>) -> Json {
    let ratio = |f: &Figure, m| over_kernel(all, f, m).and_then(|r| r.spread.json(3));
    Json {
        runs,
        seconds_per_run: seconds,
        pinning: PINNING,
        offered_pps,
        rows: all
            .iter()
            .map(|f| RowJson {
                path: key(f.kind),
                label: label(f.kind),
                sessions: f.sessions,
                beside_kernel_sessions: f.beside,
                size: f.size,
                direction: f.dir.label(),
                runs: f.runs.len(),
                stalled_runs: f.stalled_runs(),
                repeated_stalls: f.repeated_stalls,
                sent_pps: f.spread(|r| r.sent_pps).json(0),
                delivered_pps: f.delivered_pps().json(0),
                forwarding_cpu_ns_per_packet: f.forwarding_cpu_ns().json(0),
                generator_cpu_ns_per_packet: f.spread(|r| r.generator_cpu_ns).json(0),
                bpf_ns_per_run: f.bpf_ns().json(1),
                bpf_runs_per_packet: Spread::of(f.bpf_runs.iter().map(|r| r.bpf_runs_per_packet))
                    .json(2),
                net_rx_on_forwarding_cpu: f.spread(|r| r.net_rx_on_forwarding_cpu).json(3),
                backlog_drops_per_packet: f.spread(|r| r.backlog_drops).json(3),
                host_vcpu_ns_per_packet: f.host_ns().json(0),
                forwarding_switches_per_packet: f.spread(|r| r.switches).json(3),
                forwarding_task_ns_per_packet: f.spread(|r| r.task_ns).json(0),
                offered_pps: f.offered_pps(),
                no_loss_pps: f.offered.map(|(_, own)| own),
                session_restarts: f.session_restarts,
                forwarding_cpu_over_kernel: ratio(f, Measure::ForwardingCpu),
                host_vcpu_over_kernel: ratio(f, Measure::HostVcpu),
            })
            .collect(),
        ratios: ratios(all)
            .into_iter()
            .filter_map(|r| {
                let s = r.spread.json(3)?;
                Some(RatioJson {
                    path: key(r.kind),
                    sessions: r.sessions,
                    base: format!("{}_{}", key(r.base), r.kernel_sessions),
                    figure: r.measure.key(),
                    direction: r.dir.arg(),
                    size: r.size,
                    median: s.median,
                    range: [s.min, s.max],
                    rounds: r.rounds,
                })
            })
            .collect(),
    }
}

/// JSON key of a path in the forwarding rows.
fn key(kind: PathKind) -> &'static str {
    match kind {
        PathKind::OursXdp | PathKind::OursXdpOurClient => "ours_xdp",
        PathKind::OursUserspace | PathKind::OursUserspaceOurClient => "ours_userspace",
        other => other.key(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drops_line_of_a_measure_says_where_frames_were_lost() {
        let out = "run sent=200 seconds=2.000 delivered=100 hz=100 busy=150,50 netrx=0,30 backlog_drops=20 bpf_ns=0 bpf_runs=0\n\
                   drops: cli:cli0:tx_queue_0_xdp_xmit_errors=97 srv:srv1:tx_queue_0_xdp_xmit_errors=3\n";
        assert_eq!(
            drops(out),
            Some("cli:cli0:tx_queue_0_xdp_xmit_errors=97 srv:srv1:tx_queue_0_xdp_xmit_errors=3")
        );
        assert_eq!(drops("run sent=1\ndrops: none\n"), Some("none"));
        assert_eq!(drops("run sent=1\n"), None);
    }

    #[test]
    fn runs_from_the_generator() {
        let out = "noise\nrun sent=200 seconds=2.000 delivered=100 hz=100 busy=150,50 netrx=0,30 backlog_drops=20 bpf_ns=4000 bpf_runs=100 switches=9,25 task_ns=7,400000\n\
                   run sent=200 seconds=2.000 delivered=0 hz=100 busy=150,50 netrx=0,0 backlog_drops=0 bpf_ns=0 bpf_runs=0\n";
        let runs = Run::parse(out).unwrap();
        let r = runs[0];
        assert_eq!((r.sent_pps, r.delivered_pps), (100.0, 50.0));
        // 50 jiffies of 10 ms over 100 packets.
        assert_eq!(r.forwarding_cpu_ns, 5_000_000.0);
        assert_eq!(r.generator_cpu_ns, 15_000_000.0);
        assert_eq!((r.bpf_ns, r.bpf_runs_per_packet), (40.0, 1.0));
        assert_eq!(r.net_rx_on_forwarding_cpu, 1.0);
        assert_eq!(r.backlog_drops, 0.1);
        // vCPU 1's: a wake-up per 4 packets, 4 µs of its tasks per packet.
        assert_eq!((r.switches, r.task_ns), (0.25, 4000.0));
        let r = runs[1];
        assert!(
            r.switches.is_nan()
                && r.task_ns.is_nan()
                && r.forwarding_cpu_ns.is_nan()
                && r.bpf_ns.is_nan()
                && r.net_rx_on_forwarding_cpu.is_nan()
        );
        assert!(Run::parse("Error: no such namespace").is_err());
        assert!(
            Run::parse(
                "run sent=1 seconds=1 delivered=1 hz=100 busy=1 netrx=1 bpf_ns=0 bpf_runs=0"
            )
            .is_err()
        );
    }

    #[test]
    fn medians_and_ranges() {
        let s = Spread::of([5.0, 1.0, f64::NAN, 9.0, 3.0, 7.0]);
        assert_eq!((s.median, s.min, s.max), (5.0, 1.0, 9.0));
        assert_eq!(Spread::of([4.0, 1.0]).median, 2.5);
        assert!(!Spread::of([f64::NAN]).is_finite());
        assert_eq!(s.show(0), "5 (1–9)");
        assert_eq!(Spread::of([]).show(0), "-");
    }

    fn run(delivered_pps: f64, cpu: f64, bpf: f64) -> Run {
        Run {
            sent_pps: delivered_pps,
            delivered_pps,
            forwarding_cpu_ns: cpu,
            generator_cpu_ns: 1.0,
            bpf_ns: bpf,
            bpf_runs_per_packet: if bpf.is_nan() { f64::NAN } else { 1.0 },
            net_rx_on_forwarding_cpu: 1.0,
            backlog_drops: 0.0,
            host_cpu_ns: cpu / 2.0,
            host_wait_ms: f64::NAN,
            switches: f64::NAN,
            task_ns: f64::NAN,
        }
    }

    fn figure(kind: PathKind, sessions: u32, beside: u32, cpu: [f64; 3], bpf: f64) -> Figure {
        Figure {
            kind,
            sessions,
            beside,
            size: 64,
            dir: Dir::Up,
            runs: cpu.iter().map(|&c| run(700.0, c, f64::NAN)).collect(),
            bpf_runs: vec![run(700.0, 1.0, bpf)],
            repeated_stalls: 0,
            offered: None,
            session_restarts: 0,
        }
    }

    #[test]
    fn generator_runs_number_their_frames_upwards_and_never_wrap() {
        let bases: Vec<u32> = (1..1024).map(|r| seq_base(r).unwrap()).collect();
        assert!(bases.windows(2).all(|w| w[1] - w[0] == SEQ_STEP));
        // Ahead of a session's own first numbers in serial arithmetic too.
        assert!(bases.iter().all(|b| (SEQ_STEP..1 << 31).contains(b)));
        assert!(seq_base(0).is_err());
        assert!(seq_base(1024).is_err());
    }

    #[test]
    fn runs_that_delivered_nothing_are_counted_not_averaged() {
        let mut k = figure(PathKind::Kernel, 1, 1, [30000.0, 1e9, 36000.0], f64::NAN);
        k.runs[1].delivered_pps = 1.0;
        assert_eq!(k.stalled_runs(), 1);
        assert_eq!(k.forwarding_cpu_ns().show(0), "33000 (30000–36000)");
        assert_eq!(k.host_ns().show(0), "16500 (15000–18000)");
        // The stalled round is left out of the ratios too.
        let x = figure(PathKind::OursXdp, 1, 1, [6000.0, 1.0, 12000.0], 400.0);
        let all = vec![k, x];
        let r = over_kernel(&all, &all[1], Measure::ForwardingCpu).unwrap();
        assert_eq!(r.rounds, 2);
        assert_eq!(r.spread.show(2), "0.27 (0.20–0.33)");
        let mut all = all;
        all[1].repeated_stalls = 2;
        let t = table(&all, 3, 2.0, None);
        assert!(
            t.contains("(1 of 3 runs delivered nothing; 0 stalled runs repeated)"),
            "{t}"
        );
        assert!(t.contains("  (2 stalled runs repeated)"), "{t}");
        let json = serde_json::to_value(json(&all, 3, 2.0, None)).unwrap();
        assert_eq!(json["rows"][0]["stalled_runs"], 1);
        assert_eq!(json["rows"][1]["repeated_stalls"], 2);
        assert_eq!(json["rows"][0]["runs"], 3);
        assert_eq!(json["ratios"][0]["rounds"], 2);
    }

    /// An MPPE path goes over kernel PPTP with ppp_mppe of its phase,
    /// never over clear kernel PPTP measured beside the same session count.
    #[test]
    fn mppe_paths_go_over_kernel_pptp_with_ppp_mppe() {
        let all = vec![
            figure(
                PathKind::Kernel,
                1,
                1,
                [10000.0, 10000.0, 10000.0],
                f64::NAN,
            ),
            figure(PathKind::OursXdp, 1, 1, [2000.0, 2000.0, 2000.0], 400.0),
            figure(
                PathKind::KernelMppe,
                1,
                1,
                [40000.0, 20000.0, 40000.0],
                f64::NAN,
            ),
            figure(
                PathKind::OursXdpMppe,
                1,
                1,
                [8000.0, 8000.0, 12000.0],
                3000.0,
            ),
            figure(
                PathKind::OursUserspaceMppe,
                1,
                1,
                [80000.0, 80000.0, 80000.0],
                f64::NAN,
            ),
        ];
        let r = over_kernel(&all, &all[3], Measure::ForwardingCpu).unwrap();
        assert_eq!(r.base, PathKind::KernelMppe);
        assert_eq!(
            (r.spread.median, r.spread.min, r.spread.max),
            (0.3, 0.2, 0.4)
        );
        assert_eq!(
            over_kernel(&all, &all[1], Measure::ForwardingCpu)
                .unwrap()
                .base,
            PathKind::Kernel
        );
        assert!(over_kernel(&all, &all[2], Measure::ForwardingCpu).is_none());
        let json = serde_json::to_value(json(&all, 3, 2.0, None)).unwrap();
        let bases: Vec<(&str, &str)> = json["ratios"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["figure"] == "forwarding_cpu_ns")
            .map(|r| (r["path"].as_str().unwrap(), r["base"].as_str().unwrap()))
            .collect();
        assert_eq!(
            bases,
            [
                ("ours_xdp", "kernel_pptp_1"),
                ("ours_xdp_mppe", "kernel_pptp_mppe_1"),
                ("ours_userspace_mppe", "kernel_pptp_mppe_1"),
            ]
        );
        assert_eq!(json["rows"][2]["path"], "kernel_pptp_mppe");
    }

    #[test]
    fn ratios_are_taken_round_by_round_within_a_phase() {
        let all = vec![
            figure(
                PathKind::Kernel,
                1,
                1,
                [30000.0, 24000.0, 36000.0],
                f64::NAN,
            ),
            figure(PathKind::OursXdp, 1, 1, [6000.0, 12000.0, 9000.0], 450.0),
            figure(
                PathKind::Kernel,
                1000,
                1000,
                [40000.0, 40000.0, 45000.0],
                f64::NAN,
            ),
            figure(PathKind::OursXdp, 1, 1000, [8000.0, 10000.0, 9000.0], 450.0),
        ];
        // Round by round: 0.2, 0.5, 0.25, not the ratio of the medians
        // (9000 / 30000).
        let r = over_kernel(&all, &all[1], Measure::ForwardingCpu).unwrap();
        assert_eq!(
            (r.spread.median, r.spread.min, r.spread.max),
            (0.25, 0.2, 0.5)
        );
        assert_eq!(r.kernel_sessions, 1);
        // The same path measured beside 1,000 kernel sessions goes over those.
        let r = over_kernel(&all, &all[3], Measure::HostVcpu).unwrap();
        assert_eq!(
            (r.spread.median, r.spread.min, r.spread.max),
            (0.2, 0.2, 0.25)
        );
        assert_eq!(r.kernel_sessions, 1000);
        assert!(over_kernel(&all, &all[0], Measure::ForwardingCpu).is_none());
        assert_eq!(ratios(&all).len(), 4);

        let t = table(&all, 3, 2.0, None);
        assert!(t.contains("median (min–max) of 3 rounds × 2 s"), "{t}");
        let ours = t.lines().find(|l| l.contains("pptp-daemon XDP")).unwrap();
        for cell in [
            "9000 (6000–12000)",
            "450 (450–450)",
            "0.25 (0.20–0.50)",
            "client → network",
            "4500 (3000–6000)",
        ] {
            assert!(ours.contains(cell), "{cell} in {ours}");
        }

        let json = serde_json::to_value(json(&all, 3, 2.0, None)).unwrap();
        assert_eq!(json["runs"], 3);
        assert_eq!(json["seconds_per_run"], 2.0);
        assert!(json.get("offered_pps").is_none());
        let rows = json["rows"].as_array().unwrap();
        assert_eq!(rows[2]["sessions"], 1000);
        assert_eq!(rows[3]["beside_kernel_sessions"], 1000);
        assert_eq!(rows[1]["path"], "ours_xdp");
        assert_eq!(rows[1]["forwarding_cpu_ns_per_packet"]["median"], 9000.0);
        assert_eq!(rows[1]["bpf_ns_per_run"]["median"], 450.0);
        assert_eq!(rows[1]["forwarding_cpu_over_kernel"]["median"], 0.25);
        assert_eq!(rows[1]["host_vcpu_ns_per_packet"]["max"], 6000.0);
        assert_eq!(rows[0]["bpf_ns_per_run"], serde_json::Value::Null);
        assert_eq!(
            rows[0]["forwarding_cpu_over_kernel"],
            serde_json::Value::Null
        );
        let ratio = &json["ratios"][3];
        assert_eq!(ratio["path"], "ours_xdp");
        assert_eq!(ratio["base"], "kernel_pptp_1000");
        assert_eq!(ratio["figure"], "host_vcpu_ns");
        assert_eq!(ratio["direction"], "up");
        assert_eq!(ratio["size"], 64);
        assert_eq!(ratio["median"], 0.2);
        assert_eq!(ratio["range"], serde_json::json!([0.2, 0.25]));
    }
}
