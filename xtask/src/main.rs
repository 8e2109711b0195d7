//! Developer commands of pptp-xdp: `cargo xtask <command>`.
//!
//! xtask runs on the machine's stable Rust and depends on nothing of the
//! project, so it builds before the eBPF toolchain exists and installs it.

mod bench;
mod guest;
mod guest_tests;
mod interop;
mod setup;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Developer commands of pptp-xdp")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building and testing need (idempotent): the pinned
    /// nightly with rust-src, bpf-linker, cargo-fuzz and Debian packages.
    Setup,
    /// Build and run pptp-daemon as root on its embedded default
    /// configuration; arguments after `--` go to the daemon.
    Run {
        /// Build in debug mode instead of release.
        #[arg(long)]
        debug: bool,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// The whole test suite: format, lints, unit, integration, eBPF and
    /// network-namespace end-to-end tests, and a short fuzzing run.
    Test {
        /// Skip the short fuzzing run.
        #[arg(long)]
        no_fuzz: bool,
        /// Seconds each fuzz target runs.
        #[arg(long, default_value_t = 10)]
        fuzz_seconds: u64,
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Benchmarks: packets per second and CPU per packet through both
    /// forwarding modes (stack, with and without an nftables ruleset; xdp),
    /// the userspace path, MPPE, plain IP forwarding (with and without the
    /// same ruleset) and plain XDP routing; session setup at scale; the MPPE
    /// cipher; and, in a qemu guest, kernel PPTP against our paths. Writes
    /// bench-results/.
    Bench {
        /// The smallest run that exercises everything (seconds, not minutes).
        #[arg(long)]
        short: bool,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 1.5)]
        seconds: f64,
        /// Rounds: each path measured once per round, its figures the
        /// medians over the rounds, each ratio the median of the rounds'
        /// ratios.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Sessions of the scale test.
        #[arg(long, default_value_t = 10_000)]
        scale: usize,
        /// Leave out the comparison in the qemu guest.
        #[arg(long)]
        no_guest: bool,
    },
    /// Namespaces for clients, the server and a LAN host; the daemon and N
    /// clients; a ping and a TCP transfer through the tunnels, the session
    /// list; then everything torn down. Arguments after `--` go to
    /// `pptp-lab lab` (--clients N, --mppe, --no-xdp, --bytes N).
    Lab {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the fuzz targets (cargo-fuzz, libFuzzer) for a bounded time.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only these targets (default: all).
        targets: Vec<String>,
    },
    /// A Debian guest under qemu with kernel PPTP, pppd, pptpd and
    /// pptp-linux (the host kernel has no PPP): build, boot, exec, bench.
    Guest {
        #[command(subcommand)]
        command: guest::GuestCommand,
    },
    /// pptp-linux + pppd in the guest against our daemon (MS-CHAPv2, with
    /// and without MPPE-128): ping and iperf3 both ways, capture checked by
    /// tshark. `--bench`: our data paths against kernel PPTP in the guest.
    Interop(interop::InteropArgs),
    /// The tests this host's kernel cannot run (VLAN devices), in the qemu
    /// guest; part of `cargo xtask test`.
    GuestTests,
    /// Whether a later bench run confirms earlier ones: every forwarding
    /// CPU figure and every ratio of the README's table, the later median
    /// against the earlier runs' spread (the lowest and highest round of
    /// all of them, as the README states it); bench-results/datapath.json
    /// or guest.json files.
    BenchCompare {
        /// The runs whose figures and spreads are stated, then the run that
        /// should confirm them (last).
        #[arg(num_args = 2.., required = true)]
        runs: Vec<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::setup(),
        Command::Run { debug, args } => run(debug, &args),
        Command::Test {
            no_fuzz,
            fuzz_seconds,
            args,
        } => test(no_fuzz, fuzz_seconds, &args),
        Command::Fuzz { seconds, targets } => fuzz(seconds, &targets),
        Command::Lab { args } => lab(&args),
        Command::Bench {
            short,
            seconds,
            rounds,
            scale,
            no_guest,
        } => bench::run(short, (seconds, rounds), scale, !no_guest),
        Command::BenchCompare { runs } => bench::compare(&runs),
        Command::Guest { command } => guest::main(command),
        Command::Interop(args) => interop::main(args),
        Command::GuestTests => guest_tests::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(debug: bool, args: &[String]) -> anyhow::Result<()> {
    setup::ensure()?;
    util::require_root("the daemon (XDP, TUN, raw GRE socket, port 1723)")?;
    let mut cmd = util::cargo();
    cmd.args(["run", "--package", "pptp-daemon", "--bin", "pptp-daemon"]);
    if !debug {
        cmd.arg("--release");
    }
    cmd.arg("--").args(args);
    util::exec(&mut cmd)
}

fn lab(args: &[String]) -> anyhow::Result<()> {
    setup::ensure()?;
    util::require_root("the lab (network namespaces, XDP)")?;
    util::exec(util::cargo().args([
        "build",
        "--release",
        "--package",
        "pptp-daemon",
        "--package",
        "pptp-lab",
    ]))?;
    let release = util::workspace_root().join("target/release");
    util::exec(
        std::process::Command::new(release.join("pptp-lab"))
            .arg("--daemon")
            .arg(release.join("pptp-daemon"))
            .arg("lab")
            .args(args),
    )
}

fn test(no_fuzz: bool, fuzz_seconds: u64, args: &[String]) -> anyhow::Result<()> {
    setup::ensure()?;
    util::require_root("the eBPF and network-namespace tests")?;
    util::step("cargo fmt --check");
    util::exec(util::cargo().args(["fmt", "--all", "--", "--check"]))?;
    util::step("cargo clippy -D warnings");
    util::exec(util::cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    util::step("cargo test");
    util::exec(util::cargo().arg("test").args(args))?;
    if args.is_empty() {
        // The benchmark harness runs (short mode); speed is not checked here.
        bench::run(true, (0.3, 1), 20, false)?;
        // A real pptp-linux + pppd client in a qemu guest (about a minute
        // once the guest image is cached; building it takes about 7).
        util::step("interop with pptp-linux (cargo xtask interop --short)");
        interop::main(interop::InteropArgs::short())?;
        util::step("tests this host's kernel cannot run, in the guest (cargo xtask guest-tests)");
        guest_tests::run()?;
        if !no_fuzz {
            fuzz(fuzz_seconds, &[])?;
        }
    }
    util::step("all tests passed");
    Ok(())
}

/// The fuzz targets, one per parser family.
const FUZZ_TARGETS: [&str; 4] = ["control_stream", "frame", "cp_packet", "auth_packets"];

fn fuzz(seconds: u64, targets: &[String]) -> anyhow::Result<()> {
    setup::ensure()?;
    let chosen: Vec<&str> = if targets.is_empty() {
        FUZZ_TARGETS.to_vec()
    } else {
        targets.iter().map(String::as_str).collect()
    };
    for target in chosen {
        anyhow::ensure!(
            FUZZ_TARGETS.contains(&target),
            "unknown fuzz target `{target}` (known: {})",
            FUZZ_TARGETS.join(", ")
        );
        util::step(&format!("fuzz {target} for {seconds} s"));
        let root = util::workspace_root();
        let corpus = root.join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let mut cmd = util::cargo_with(setup::TOOLCHAIN);
        cmd.current_dir(root.join("fuzz"))
            // The fuzzers exercise host code only; skip the eBPF build there.
            .env("AYA_BUILD_SKIP", "1")
            .args(["fuzz", "run", target])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=4096",
            ]);
        util::exec(&mut cmd)?;
    }
    Ok(())
}
