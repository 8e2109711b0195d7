//! `cargo xtask bench`: runs `pptp-lab bench` (packets per second and
//! CPU per packet through every data path, session scale) and the MPPE
//! cipher benchmark, then writes the results as JSON, a Markdown table and
//! an SVG plot under `bench-results/`.

use std::{fmt::Write as _, path::Path, process::Command};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::{setup, util};

pub fn run(
    short: bool,
    (seconds, rounds): (f64, usize),
    scale: usize,
    guest: bool,
) -> anyhow::Result<()> {
    setup::ensure()?;
    util::require_root("the bench (network namespaces, XDP)")?;
    // The "+nft" rows load a ruleset in the lab's server namespace.
    anyhow::ensure!(
        util::output(Command::new("nft").arg("--version")).is_some(),
        "nft (Debian package nftables) is missing: run `cargo xtask setup`"
    );
    let root = util::workspace_root();
    let out_dir = root.join(if short {
        "target/bench-short"
    } else {
        "bench-results"
    });
    std::fs::create_dir_all(&out_dir)?;
    util::step("building pptp-daemon and pptp-lab (release)");
    util::exec(util::cargo().args([
        "build",
        "--release",
        "--package",
        "pptp-daemon",
        "--package",
        "pptp-lab",
    ]))?;
    let bin = root.join("target/release/pptp-daemon");
    let lab = root.join("target/release/pptp-lab");

    util::step("data paths (pptp-lab bench)");
    let json = out_dir.join("datapath.json");
    let mut cmd = Command::new(&lab);
    cmd.arg("--daemon")
        .arg(&bin)
        .args([
            "bench",
            "--seconds",
            &seconds.to_string(),
            "--runs",
            &rounds.to_string(),
            "--scale",
            &scale.to_string(),
            "--json",
        ])
        .arg(&json)
        .stdout(std::process::Stdio::null());
    if short {
        cmd.arg("--short");
    }
    util::exec(&mut cmd)?;
    let datapath: Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;

    util::step("MPPE cipher (cargo bench --bench mppe)");
    let mppe = util::output(
        util::cargo()
            .env("MPPE_BENCH_SECS", if short { "0.05" } else { "1" })
            .args([
                "bench",
                "--quiet",
                "--package",
                "pptp-daemon",
                "--bench",
                "mppe",
            ]),
    )
    .context("running the MPPE benchmark")?;
    print!("{mppe}");

    // A failed guest comparison leaves the host's results standing (they
    // are written below) and fails the run at the end: a bench that lost
    // its comparison with kernel PPTP has not done its job.
    let mut guest_failure = None;
    let guest_figures = if guest && !short {
        util::step("in the qemu guest: kernel PPTP against our paths (a few minutes)");
        match guest_comparison(&bin, &out_dir.join("guest.json")) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("guest comparison failed, left out of the results: {e:#}");
                guest_failure = Some(e);
                None
            }
        }
    } else {
        None
    };

    /// `results.json`: everything one run measured.
    #[derive(serde::Serialize)]
    struct Results<'a> {
        datapath: &'a Value,
        mppe_cipher: Vec<&'a str>,
        guest: Option<&'a Value>,
    }
    let results = Results {
        datapath: &datapath,
        mppe_cipher: mppe.lines().collect(),
        guest: guest_figures.as_ref(),
    };
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    let table = table(&datapath, guest_figures.as_ref());
    std::fs::write(out_dir.join("table.md"), &table)?;
    std::fs::write(out_dir.join("bench.svg"), svg(&datapath)?)?;
    if let Some(g) = &guest_figures {
        std::fs::write(out_dir.join("bench-guest.svg"), guest_svg(g)?)?;
    }
    println!("\n{table}");
    println!("results in {}", out_dir.display());
    match guest_failure {
        Some(e) => Err(
            e.context("the guest comparison failed (the host's results are written, without it)")
        ),
        None => Ok(()),
    }
}

/// The in-guest comparison (kernel PPTP, pptpd, our fast and userspace
/// paths), written to `path` and returned.
fn guest_comparison(daemon: &Path, path: &Path) -> anyhow::Result<Value> {
    let figures = crate::interop::guest_comparison(daemon, &crate::guest::bench::Plan::default())?;
    print!("{}", figures.table());
    let json = figures.json();
    std::fs::write(path, &json)?;
    if !figures.unavailable.is_empty() {
        eprintln!("guest comparison incomplete: {:?}", figures.unavailable);
    }
    Ok(serde_json::from_str(&json)?)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Nanoseconds, or "-" when not measured.
fn ns(v: &Value) -> String {
    let v = f(v);
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "-".to_owned()
    }
}

/// A measurement's forwarding CPU per packet with its spread over the
/// runs: "median (min–max)".
fn fwd_cell(m: &Value) -> String {
    let range = &m["fwd_cpu_ns_range"];
    if f(&m["fwd_cpu_ns_per_packet"]).is_finite() {
        format!(
            "{} ({}–{})",
            ns(&m["fwd_cpu_ns_per_packet"]),
            ns(&range[0]),
            ns(&range[1])
        )
    } else {
        "-".to_owned()
    }
}

/// `a ÷ b` of `key` (a CPU figure with a `<key-without-_per_packet>_range`)
/// as the median ratio and its spread: from the lowest of `a` over the
/// highest of `b` to the highest of `a` over the lowest of `b`.
fn ratio_with_spread(a: &Value, b: &Value, key: &str, range: &str) -> (f64, f64, f64) {
    (
        f(&a[key]) / f(&b[key]),
        f(&a[range][0]) / f(&b[range][1]),
        f(&a[range][1]) / f(&b[range][0]),
    )
}

/// The programs' own cost: "total ns (name ns × runs per packet, ...)".
fn bpf_cell(m: &Value) -> String {
    let programs: Vec<String> = m["bpf_programs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let runs = f(&p["runs_per_packet"]);
            if (runs - 1.0).abs() < 0.05 {
                format!(
                    "{} {}",
                    p["name"].as_str().unwrap_or("?"),
                    ns(&p["ns_per_run"])
                )
            } else {
                format!(
                    "{} {} × {runs:.2}",
                    p["name"].as_str().unwrap_or("?"),
                    ns(&p["ns_per_run"])
                )
            }
        })
        .collect();
    if programs.is_empty() {
        "-".to_owned()
    } else {
        format!("{} ({})", ns(&m["bpf_ns_per_packet"]), programs.join(", "))
    }
}

/// Delivered pps of the measurement matching path/direction/size/sessions.
fn find(d: &Value, path: &str, dir: &str, size: u64, sessions: u64) -> Option<f64> {
    d["measurements"].as_array()?.iter().find_map(|m| {
        (m["path"] == path
            && m["direction"] == dir
            && m["size"] == size
            && m["sessions"] == sessions)
            .then(|| f(&m["delivered_pps"]))
    })
}

/// The measurement matching path/direction/size/sessions.
fn find_row<'a>(
    d: &'a Value,
    path: &str,
    dir: &str,
    size: u64,
    sessions: u64,
) -> Option<&'a Value> {
    d["measurements"].as_array()?.iter().find(|m| {
        m["path"] == path && m["direction"] == dir && m["size"] == size && m["sessions"] == sessions
    })
}

/// A figure with its spread over the runs of one bench run: median,
/// lowest, highest.
type Spread = (f64, f64, f64);

/// Whether a figure and both ends of its spread are numbers (a run that
/// delivered nothing has none).
fn finite((median, lo, hi): Spread) -> bool {
    median.is_finite() && lo.is_finite() && hi.is_finite()
}

/// The ratio of `path` (with `sessions`) over `base` in `figure` for one
/// direction and size, as the bench took it round by round (`ratios`):
/// median, lowest, highest of the rounds' ratios.
fn paired(
    d: &Value,
    (path, sessions): (&str, u64),
    base: &str,
    figure: &str,
    dir: &str,
    size: u64,
) -> Option<Spread> {
    d["ratios"].as_array()?.iter().find_map(|r| {
        (r["path"] == path
            && r["sessions"] == sessions
            && r["base"] == base
            && r["figure"] == figure
            && r["direction"] == dir
            && r["size"] == size)
            .then(|| (f(&r["median"]), f(&r["range"][0]), f(&r["range"][1])))
    })
}

/// What a ratio's figure is called in the tables.
fn figure_name(figure: &str) -> &str {
    match figure {
        "delivered_pps" => "packets/s",
        "host_vcpu_ns" => "vCPU 1 host time/packet",
        _ => "forwarding CPU/packet",
    }
}

/// The figures the README states from a run, by name: the ratios of one
/// path over another, each taken round by round (two measurements
/// seconds apart), with the spread of the rounds' ratios. Absolute figures
/// move with the VM between runs (see [`absolute_figures`]); what the
/// README claims are these.
///
/// A guest comparison's JSON (`guest.json`) has its ratios (each path over
/// kernel PPTP in the same rounds) under `forwarding`.
fn stated_figures(d: &Value) -> Vec<(String, Spread)> {
    [&d["ratios"], &d["forwarding"]["ratios"]]
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|r| {
            let v = (f(&r["median"]), f(&r["range"][0]), f(&r["range"][1]));
            finite(v).then(|| {
                (
                    format!(
                        "{} ÷ {} {} {} B: {}",
                        r["path"].as_str().unwrap_or("?"),
                        r["base"].as_str().unwrap_or("?"),
                        r["direction"].as_str().unwrap_or("?"),
                        r["size"],
                        figure_name(r["figure"].as_str().unwrap_or(""))
                    ),
                    v,
                )
            })
        })
        .collect()
}

/// Each measurement's forwarding CPU per packet, by name, with its spread
/// over the rounds.
fn absolute_figures(d: &Value) -> Vec<(String, Spread)> {
    d["measurements"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let r = &m["fwd_cpu_ns_range"];
            let v = (f(&m["fwd_cpu_ns_per_packet"]), f(&r[0]), f(&r[1]));
            finite(v).then(|| {
                (
                    format!(
                        "{} {} {} B {} sessions: forwarding CPU ns/packet",
                        m["path"].as_str().unwrap_or("?"),
                        m["direction"].as_str().unwrap_or("?"),
                        m["size"],
                        m["sessions"]
                    ),
                    v,
                )
            })
        })
        .collect()
}

/// Every figure of the `earlier` runs (as `figures` names them, and
/// present in all of them) that `later` has too: the earlier medians, the
/// spread over all their rounds (lowest low, highest high), the later
/// median, and whether that lies within the spread.
fn confirmations(
    earlier: &[Value],
    later: &Value,
    figures: fn(&Value) -> Vec<(String, Spread)>,
) -> Vec<Confirmation> {
    let later_figures = figures(later);
    let others: Vec<_> = earlier.iter().skip(1).map(figures).collect();
    let Some(first) = earlier.first() else {
        return Vec::new();
    };
    figures(first)
        .into_iter()
        .filter_map(|(name, (median, lo, hi))| {
            let mut medians = vec![median];
            let (mut lo, mut hi) = (lo, hi);
            for other in &others {
                let (_, (m, l, h)) = other.iter().find(|(n, _)| *n == name)?;
                medians.push(*m);
                lo = lo.min(*l);
                hi = hi.max(*h);
            }
            let (_, (later_median, _, _)) = later_figures.iter().find(|(n, _)| *n == name)?;
            Some(Confirmation {
                within: (lo..=hi).contains(later_median),
                name,
                medians,
                spread: (lo, hi),
                later: *later_median,
            })
        })
        .collect()
}

/// One figure of [`confirmations`].
struct Confirmation {
    name: String,
    /// Each earlier run's median.
    medians: Vec<f64>,
    /// The lowest and highest round over all earlier runs.
    spread: (f64, f64),
    later: f64,
    within: bool,
}

/// `cargo xtask bench-compare EARLIER... LATER`: prints, for every ratio
/// all runs have, the earlier medians and their spread (the lowest and
/// highest round over all earlier runs: what the README states), the later
/// median, and whether that lies within the spread, and fails when one
/// does not; then the same for the absolute figures, for information (they
/// move with the VM between runs, and the README states them as ranges).
pub fn compare(runs: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let read = |p: &Path| -> anyhow::Result<Value> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    };
    let runs = runs
        .iter()
        .map(|p| read(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let Some((later, earlier)) = runs.split_last().filter(|(_, e)| !e.is_empty()) else {
        bail!("bench-compare needs at least two runs: the earlier ones, then the later one");
    };
    let print = |rows: &[Confirmation]| {
        println!("| figure | earlier medians (spread over their rounds) | later median | within |");
        println!("|---|---|---|---|");
        for c in rows {
            let medians: Vec<String> = c.medians.iter().map(|m| format!("{m:.2}")).collect();
            println!(
                "| {} | {} ({:.2}–{:.2}) | {:.2} | {} |",
                c.name,
                medians.join(" / "),
                c.spread.0,
                c.spread.1,
                c.later,
                if c.within { "yes" } else { "**no**" }
            );
        }
        let outside = rows.iter().filter(|c| !c.within).count();
        println!(
            "\n{} figures compared, {outside} outside the earlier spread\n",
            rows.len()
        );
        outside
    };
    println!("Absolute figures (information only):\n");
    print(&confirmations(earlier, later, absolute_figures));
    println!("Ratios (the README's figures):\n");
    let rows = confirmations(earlier, later, stated_figures);
    let outside = print(&rows);
    if rows.is_empty() {
        bail!("the two runs have no ratio in common (runs before per-round ratios have none)");
    }
    if outside > 0 {
        bail!("{outside} of {} ratios not confirmed", rows.len());
    }
    Ok(())
}

/// MPPE on the fast path over the same sessions on the userspace path
/// (issue 14's targets: 3 times the packets per second at 64 B, 1.5 times
/// at 1400 B), per direction and size: packets per second and forwarding
/// CPU per packet, each the fast path's median over the userspace path's
/// (the two labs run one after the other, not in interleaved rounds).
fn mppe_table(t: &mut String, d: &Value) {
    let mut rows = Vec::new();
    for dir in ["encap", "decap"] {
        for size in [64u64, 1396] {
            let (Some(fast), Some(slow)) = (
                find_row(d, "mppe", dir, size, 1),
                find_row(d, "mppe-userspace", dir, size, 1),
            ) else {
                continue;
            };
            let pps = f(&fast["delivered_pps"]) / f(&slow["delivered_pps"]);
            let cpu = f(&slow["fwd_cpu_ns_per_packet"]) / f(&fast["fwd_cpu_ns_per_packet"]);
            rows.push(format!(
                "| {} | {size} B | {:.0} / {:.0} | {pps:.2} | {} / {} | {cpu:.2} |",
                if dir == "decap" {
                    "client → network"
                } else {
                    "network → client"
                },
                f(&fast["delivered_pps"]) / 1000.0,
                f(&slow["delivered_pps"]) / 1000.0,
                fwd_cell(fast),
                fwd_cell(slow),
            ));
        }
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        t,
        "MPPE (stateless 128-bit), the fast path against the userspace path (medians of each lab's rounds; the labs run one after the other):\n"
    );
    let _ = writeln!(
        t,
        "| direction | inner size | kpps fast / userspace | × packets/s | forwarding CPU ns/packet fast / userspace | × less CPU/packet |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(t, "{r}");
    }
    let _ = writeln!(t);
}

/// The forwarding modes side by side with plain forwarding and the XDP
/// routing ceiling, and issue 17's two targets: stack mode's CPU per packet
/// within 1.3 times that of kernel forwarding under the same ruleset, xdp
/// mode's packet rate at least 0.95 of the XDP routing ceiling's.
fn modes_table(t: &mut String, d: &Value) {
    const COLUMNS: [(&str, u64); 7] = [
        ("ip-forward", 0),
        ("ip-forward+nft", 0),
        ("ip-forward+xdp-pass+nft", 0),
        ("stack", 1),
        ("stack+nft", 1),
        ("xdp", 1),
        ("xdp-route", 0),
    ];
    let mut cases: Vec<(String, u64)> = Vec::new();
    for m in d["measurements"].as_array().into_iter().flatten() {
        let case = (
            m["direction"].as_str().unwrap_or("").to_owned(),
            m["size"].as_u64().unwrap_or(0),
        );
        if COLUMNS.iter().any(|(p, _)| m["path"] == *p) && !cases.contains(&case) {
            cases.push(case);
        }
    }
    if cases.is_empty() {
        return;
    }
    let _ = writeln!(
        t,
        "Forwarding modes side by side (delivered kpps, forwarding CPU ns/packet; stack and xdp: one session):\n"
    );
    let _ = writeln!(
        t,
        "| direction | inner size | {} | stack+nft ÷ ip-forward+nft forwarding CPU/packet, median (spread) (target ≤ 1.3) | stack+nft ÷ ip-forward+xdp-pass+nft (an XDP program on s0 and l0 in both) | xdp ÷ xdp-route pps (target ≥ 0.95) |",
        COLUMNS.map(|(p, _)| p).join(" | ")
    );
    let _ = writeln!(t, "|---|---|{}---|---|---|", "---|".repeat(COLUMNS.len()));
    let verdict = |r: f64, ok: bool| {
        if r.is_finite() {
            format!("{r:.2} ({})", if ok { "met" } else { "missed" })
        } else {
            "-".to_owned()
        }
    };
    for (dir, size) in cases {
        let row = |p: &str, n: u64| find_row(d, p, &dir, size, n);
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|(p, n)| {
                row(p, *n).map_or("-".to_owned(), |m| {
                    format!(
                        "{:.0} kpps, {} ns",
                        f(&m["delivered_pps"]) / 1000.0,
                        ns(&m["fwd_cpu_ns_per_packet"]),
                    )
                })
            })
            .collect();
        let ratio = |(a, an): (&str, u64), (b, bn): (&str, u64), key: &str| match (
            row(a, an),
            row(b, bn),
        ) {
            (Some(x), Some(y)) => f(&x[key]) / f(&y[key]),
            _ => f64::NAN,
        };
        let cpu_ratio = |base: &str, target: bool| match (row("stack+nft", 1), row(base, 0)) {
            (Some(a), Some(b)) => {
                let (r, lo, hi) = paired(
                    d,
                    ("stack+nft", 1),
                    base,
                    "fwd_cpu_ns_per_packet",
                    &dir,
                    size,
                )
                .unwrap_or_else(|| {
                    ratio_with_spread(a, b, "fwd_cpu_ns_per_packet", "fwd_cpu_ns_range")
                });
                if target {
                    format!("{} ({lo:.2}–{hi:.2})", verdict(r, r <= 1.3))
                } else if r.is_finite() {
                    format!("{r:.2} ({lo:.2}–{hi:.2})")
                } else {
                    "-".to_owned()
                }
            }
            _ => "-".to_owned(),
        };
        let cpu = cpu_ratio("ip-forward+nft", true);
        let cpu_copy = cpu_ratio("ip-forward+xdp-pass+nft", false);
        let pps = paired(d, ("xdp", 1), "xdp-route", "delivered_pps", &dir, size);
        let pps_cell = match pps {
            Some((r, lo, hi)) => format!("{} ({lo:.2}–{hi:.2})", verdict(r, r >= 0.95)),
            None => {
                let r = ratio(("xdp", 1), ("xdp-route", 0), "delivered_pps");
                verdict(r, r >= 0.95)
            }
        };
        let _ = writeln!(
            t,
            "| {} | {size} B | {} | {cpu} | {cpu_copy} | {} |",
            if dir == "decap" {
                "client → network"
            } else {
                "network → client"
            },
            cells.join(" | "),
            pps_cell
        );
    }
    let _ = writeln!(
        t,
        "\nForwarding CPU: the busy time of the CPU that carries the server's work (see the first table) per delivered packet. A ratio is the median of the rounds' ratios (the paths of a round measured seconds apart), its spread the lowest and highest of them."
    );
    if let Some(note) = d["nft_note"].as_str() {
        let _ = writeln!(t, "\n{note}\n");
    }
    if let Some(rules) = d["nft_ruleset"].as_str() {
        let _ = writeln!(t, "The ruleset (stack mode):\n\n```\n{}```\n", rules);
    }
}

/// Every ratio the bench took round by round, with its spread.
fn ratios_table(t: &mut String, d: &Value) {
    let ratios = d["ratios"].as_array().cloned().unwrap_or_default();
    if ratios.is_empty() {
        return;
    }
    let _ = writeln!(
        t,
        "Paths compared round by round (each ratio from two measurements seconds apart; median and the lowest and highest of the rounds):\n"
    );
    let _ = writeln!(
        t,
        "| ratio | figure | direction | inner size | median (spread) | rounds |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    for r in &ratios {
        let _ = writeln!(
            t,
            "| {} ÷ {} | {} | {} | {} B | {:.2} ({:.2}–{:.2}) | {} |",
            r["path"].as_str().unwrap_or("?"),
            r["base"].as_str().unwrap_or("?"),
            figure_name(r["figure"].as_str().unwrap_or("")),
            if r["direction"] == "decap" {
                "client → network"
            } else {
                "network → client"
            },
            r["size"],
            f(&r["median"]),
            f(&r["range"][0]),
            f(&r["range"][1]),
            r["rounds"]
        );
    }
    let _ = writeln!(t);
}

fn table(d: &Value, guest: Option<&Value>) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Machine: {}; {} s per measurement{}.\n",
        d["machine"].as_str().unwrap_or("?"),
        d["seconds_per_measurement"],
        match d["runs_per_measurement"].as_u64() {
            Some(n) if n > 1 => format!(
                ", figures the median of {n} rounds (min–max in brackets; every path once per round)"
            ),
            _ => String::new(),
        }
    );
    if let Some(note) = d["pinning_note"].as_str() {
        let _ = writeln!(t, "{note}\n");
    }
    let _ = writeln!(
        t,
        "| path | direction | inner size | sessions | delivered kpps | forwarding CPU ns/packet | XDP programs' own ns/packet | machine CPU ns/packet | pps vs IP forwarding | pps vs XDP routing |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|");
    for m in d["measurements"].as_array().into_iter().flatten() {
        let size = m["size"].as_u64().unwrap_or(0);
        let dir = m["direction"].as_str().unwrap_or("");
        let pps = f(&m["delivered_pps"]);
        let ratio = |base: &str| {
            find(d, base, dir, size, 0).map_or("-".to_owned(), |b| format!("{:.2}", pps / b))
        };
        // Rows under the ruleset compare with forwarding under the same one.
        let forward = if m["path"].as_str().unwrap_or("").ends_with("+nft") {
            "ip-forward+nft"
        } else {
            "ip-forward"
        };
        let sessions = m["sessions"].as_u64().unwrap_or(0);
        let _ = writeln!(
            t,
            "| {} | {} | {} B | {} | {:.0} | {} | {} | {:.0} | {} | {} |",
            m["path"].as_str().unwrap_or(""),
            if dir == "decap" {
                "client → network"
            } else {
                "network → client"
            },
            size,
            if sessions == 0 {
                "-".to_owned()
            } else {
                sessions.to_string()
            },
            pps / 1000.0,
            fwd_cell(m),
            bpf_cell(m),
            f(&m["cpu_ns_per_packet"]),
            ratio(forward),
            ratio("xdp-route"),
        );
    }
    let _ = writeln!(t, "\n{}\n", d["mppe_note"].as_str().unwrap_or(""));
    mppe_table(&mut t, d);
    modes_table(&mut t, d);
    ratios_table(&mut t, d);
    let _ = writeln!(
        t,
        "| sessions | setup time | sessions/s | daemon memory per session |"
    );
    let _ = writeln!(t, "|---|---|---|---|");
    for s in d["scale"].as_array().into_iter().flatten() {
        let _ = writeln!(
            t,
            "| {} | {:.1} s | {:.0} | {:.1} KiB |",
            s["sessions"],
            f(&s["setup_seconds"]),
            f(&s["sessions_per_second"]),
            f(&s["bytes_per_session"]) / 1024.0
        );
    }
    if let Some(g) = guest {
        t.push_str(&guest_table(g));
    }
    t
}

/// The guest comparison's part of the Markdown table (`guest.json`):
/// iperf3 through each path, and the forwarding CPU per packet.
pub fn guest_table(g: &Value) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nIn a qemu guest (software emulation, Linux {}, {} vCPUs): iperf3 TCP for {} s each way through each path; only figures from the same guest compare.\n",
        g["guest"]["kernel"].as_str().unwrap_or("?"),
        g["guest"]["cpus"],
        g["seconds"]
    );
    let paths = g["paths"].as_object().filter(|p| !p.is_empty());
    if paths.is_some() {
        let _ = writeln!(
            t,
            "| path | client → network Mbit/s | network → client Mbit/s | vs kernel PPTP (up / down) |"
        );
        let _ = writeln!(t, "|---|---|---|---|");
    }
    let kernel = &g["paths"]["kernel_pptp"];
    for (key, p) in paths.into_iter().flatten() {
        let up = f(&p["up"]["mbit_per_s"]);
        let down = f(&p["down"]["mbit_per_s"]);
        let ku = f(&kernel["up"]["mbit_per_s"]);
        let kd = f(&kernel["down"]["mbit_per_s"]);
        let _ = writeln!(
            t,
            "| {} | {up:.1} | {down:.1} | {:.2} / {:.2} |",
            p["label"].as_str().unwrap_or(key),
            up / ku,
            down / kd
        );
    }
    guest_forwarding_table(&mut t, &g["forwarding"]);
    t
}

/// "median (min–max)" of a `{median, min, max}` object, or "-".
fn spread(v: &Value, scale: f64) -> String {
    let (m, lo, hi) = (f(&v["median"]), f(&v["min"]), f(&v["max"]));
    if m.is_finite() {
        format!("{:.0} ({:.0}–{:.0})", m / scale, lo / scale, hi / scale)
    } else {
        "-".to_owned()
    }
}

/// The guest's forwarding-CPU rows: per path, sessions, size and
/// direction, the delivered rate, the forwarding vCPU's busy time per
/// packet and the BPF programs' own run time, medians with their range.
fn guest_forwarding_table(t: &mut String, fwd: &Value) {
    let rows = fwd["rows"].as_array().map_or(&[][..], |v| &v[..]);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        t,
        "\nForwarding CPU per packet in the same guest, median (min–max) of {} rounds × {} s each{}: {}. Kernel PPTP (on a link of its own) and our daemon are up together; each round measures every path of the phase once, one after the other, and a ratio over kernel PPTP is the median (min–max) of the rounds' ratios. `xtask guest loadgen` sends pre-built frames round robin over the sessions; a tc drop filter on the far veth counts what arrives. BPF ns/run: the daemon's XDP programs' own run time (kernel.bpf_stats_enabled).\n",
        fwd["runs"],
        fwd["seconds_per_run"],
        fwd["offered_pps"]
            .as_u64()
            .map_or(String::new(), |pps| format!(
                ", {pps} packets/s offered to every path"
            )),
        fwd["pinning"].as_str().unwrap_or("?")
    );
    if rows.iter().any(|r| r["no_loss_pps"].is_u64()) {
        let _ = writeln!(
            t,
            "Client → network MPPE: `pptp-lab mppe-send` encrypts every frame into the session's next coherency count with the start key the server decrypts with, all of a run's frames before the run sends them. A search first finds each path's highest rate without loss (at most 1 % lost; as the host bench does, the rate where the generator could send no faster when nothing was lost: the path carries at least that); then the paths compared in the rounds are all offered the lowest of their rates (CPU time per packet falls as the rate rises, so only figures at one rate compare), both shown after the direction.\n"
        );
    } else if rows.iter().any(|r| r["offered_pps"].is_u64()) {
        let _ = writeln!(
            t,
            "Client → network MPPE: `pptp-lab mppe-send` encrypts every frame into the session's next coherency count with the start key the server decrypts with, and each such row is offered the rate its own search for the highest rate without loss found (at most 1 % lost; as the host bench does, the rate where the generator could send no faster when nothing was lost), shown after its direction.\n"
        );
    }
    let _ = writeln!(
        t,
        "| path | sessions | beside kernel PPTP sessions | inner size | direction | delivered kpps | forwarding CPU ns/packet | BPF ns/run | ÷ kernel PPTP | vCPU 1 host ns/packet | ÷ kernel PPTP |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|");
    let ratio = |v: &Value| {
        if v.is_null() {
            "-".to_owned()
        } else {
            format!(
                "{:.2} ({:.2}–{:.2})",
                f(&v["median"]),
                f(&v["min"]),
                f(&v["max"])
            )
        }
    };
    for r in rows {
        let bpf = &r["bpf_ns_per_run"];
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} B | {} | {} | {} | {} | {} | {} | {} |",
            r["label"].as_str().unwrap_or("?"),
            r["sessions"],
            r["beside_kernel_sessions"],
            r["size"],
            match (r["offered_pps"].as_u64(), r["no_loss_pps"].as_u64()) {
                (Some(pps), Some(own)) => format!(
                    "{} (offered {pps}/s; no loss up to {own}/s)",
                    r["direction"].as_str().unwrap_or("?")
                ),
                (Some(pps), None) => format!(
                    "{} (offered {pps}/s)",
                    r["direction"].as_str().unwrap_or("?")
                ),
                _ => r["direction"].as_str().unwrap_or("?").to_owned(),
            },
            match r["stalled_runs"].as_u64() {
                Some(n) if n > 0 => format!(
                    "{}; {n} of {} runs delivered nothing",
                    spread(&r["delivered_pps"], 1000.0),
                    r["runs"]
                ),
                _ => spread(&r["delivered_pps"], 1000.0),
            },
            spread(&r["forwarding_cpu_ns_per_packet"], 1.0),
            if bpf.is_null() {
                "-".to_owned()
            } else {
                spread(bpf, 1.0)
            },
            ratio(&r["forwarding_cpu_over_kernel"]),
            spread(&r["host_vcpu_ns_per_packet"], 1.0),
            ratio(&r["host_vcpu_over_kernel"]),
        );
    }
    let _ = writeln!(
        t,
        "\nvCPU 1 host ns/packet: the host CPU time of the qemu thread of vCPU 1 over the run, per packet delivered; the guest's own accounting also counts the time the host preempts that thread (the guest clock goes on), this does not."
    );
}

/// A grouped bar chart: delivered kpps per path, 64 B and 1400 B, one
/// session, each direction (plotters, SVG backend).
fn svg(d: &Value) -> anyhow::Result<String> {
    let paths = [
        "xdp-route",
        "xdp",
        "stack",
        "ip-forward",
        "stack+nft",
        "ip-forward+nft",
        "userspace",
        "mppe",
    ];
    let labels: [&str; 8] = [
        "XDP routing (ceiling)",
        "pptp-xdp fast path (xdp)",
        "pptp-xdp stack mode",
        "kernel IP forwarding",
        "stack mode + nftables",
        "IP forwarding + nftables",
        "pptp-xdp userspace",
        "pptp-xdp MPPE-128 stateless",
    ];
    let series = [
        ("decap", 64u64),
        ("encap", 64),
        ("decap", 1400),
        ("encap", 1400),
    ];
    // values[path][series]: forwarding CPU ns/packet, median and range.
    let values: Vec<Vec<Option<(f64, f64, f64)>>> = paths
        .iter()
        .map(|p| {
            let sessions = if p.starts_with("xdp-route") || p.starts_with("ip-forward") {
                0
            } else {
                1
            };
            series
                .iter()
                .map(|(dir, size)| {
                    // MPPE's large packets are 1396 bytes: its session MTU.
                    let m = find_row(d, p, dir, *size, sessions).or_else(|| {
                        (*size == 1400).then(|| find_row(d, p, dir, 1396, sessions))?
                    })?;
                    let v = f(&m["fwd_cpu_ns_per_packet"]);
                    let range = &m["fwd_cpu_ns_range"];
                    v.is_finite()
                        .then(|| (v, f(&range[0]).min(v), f(&range[1]).max(v)))
                })
                .collect()
        })
        .collect();
    bar_chart(
        "Forwarding CPU per packet (ns; median, whiskers min–max), one session",
        &labels,
        &values,
        "MPPE: its large packets are 1396 B (the MPPE session MTU)",
    )
}

/// The guest comparison's forwarding CPU per packet (`guest.json`) as the
/// same chart: kernel PPTP with 1, 100 and 1,000 sessions, the fast path,
/// plain forwarding and plain XDP routing, medians with the rounds' lowest and highest. The
/// userspace path (ten times as much) is in the table only.
pub fn guest_svg(g: &Value) -> anyhow::Result<String> {
    let rows = [
        ("kernel_pptp", 1u64, "kernel PPTP, 1 session"),
        ("kernel_pptp", 100, "kernel PPTP, 100 sessions"),
        ("kernel_pptp", 1000, "kernel PPTP, 1,000 sessions"),
        ("ours_xdp", 1, "pptp-xdp fast path (xdp)"),
        ("plain_forwarding", 1, "plain forwarding, no tunnel"),
        ("plain_xdp_routing", 1, "plain XDP routing, no tunnel"),
    ];
    let series = [
        ("client → network", 64u64),
        ("network → client", 64),
        ("client → network", 1400),
        ("network → client", 1400),
    ];
    let all = g["forwarding"]["rows"]
        .as_array()
        .map_or(&[][..], |v| &v[..]);
    let values: Vec<Vec<Option<(f64, f64, f64)>>> = rows
        .iter()
        .map(|(path, sessions, _)| {
            series
                .iter()
                .map(|(dir, size)| {
                    // Kernel PPTP in its own phase; the fast path and plain
                    // forwarding as measured beside one kernel session.
                    let beside = if *path == "kernel_pptp" { *sessions } else { 1 };
                    let r = all.iter().find(|r| {
                        r["path"] == *path
                            && r["sessions"] == *sessions
                            && r["beside_kernel_sessions"] == beside
                            && r["direction"] == *dir
                            && r["size"] == *size
                    })?;
                    let v = &r["forwarding_cpu_ns_per_packet"];
                    let m = f(&v["median"]);
                    m.is_finite()
                        .then(|| (m, f(&v["min"]).min(m), f(&v["max"]).max(m)))
                })
                .collect()
        })
        .collect();
    let labels: Vec<&str> = rows.iter().map(|r| r.2).collect();
    bar_chart(
        &format!(
            "In the qemu guest (TCG): forwarding CPU per packet (ns; median, whiskers min–max of {} rounds)",
            g["forwarding"]["runs"]
        ),
        &labels,
        &values,
        "The userspace path costs ten times as much: see the table",
    )
}

/// A grouped horizontal bar chart (plotters, SVG backend): one row per
/// label, four bars per row (client → network and network → client at
/// 64 and 1400 B), each a median with a whisker from the lowest to the
/// highest; `None` shows as "n/a".
fn bar_chart(
    caption: &str,
    labels: &[&str],
    values: &[Vec<Option<Spread>>],
    note: &str,
) -> anyhow::Result<String> {
    use plotters::prelude::*;

    let series = [
        ("decap", 64u64),
        ("encap", 64),
        ("decap", 1400),
        ("encap", 1400),
    ];
    let colors = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xae, 0xc7, 0xe8),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0xff, 0x98, 0x96),
    ];
    let max = values
        .iter()
        .flatten()
        .flatten()
        .fold(1.0f64, |m, v| m.max(v.2));
    let rows = labels.len();
    // Row i (top to bottom) is centred on y = rows - 1 - i, so the integer
    // ticks of the y axis carry the path names.
    let row_y = |i: usize| (rows - 1 - i) as f64;
    let bar = 0.18;

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (900, 680)).into_drawing_area();
        root.fill(&WHITE)?;
        let (chart_area, note_area) = root.split_vertically(650);
        let mut chart = ChartBuilder::on(&chart_area)
            .caption(caption, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(190)
            .build_cartesian_2d(0.0..max * 1.15, -0.5..(rows as f64 - 0.5))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rows)
            .y_label_formatter(&|y| {
                let i = rows as f64 - 1.0 - y.round();
                if (y - y.round()).abs() < 1e-6 && (0.0..rows as f64).contains(&i) {
                    labels[i as usize].to_owned()
                } else {
                    String::new()
                }
            })
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("nanoseconds of the forwarding CPU per delivered packet (lower is better)")
            .label_style(("sans-serif", 15))
            .draw()?;
        for (j, ((dir, size), color)) in series.iter().zip(colors).enumerate() {
            let offset = 1.5 * bar - j as f64 * bar;
            let bars = values.iter().enumerate().filter_map(|(i, row)| {
                let (v, ..) = row[j]?;
                let y = row_y(i) + offset;
                Some(Rectangle::new(
                    [(0.0, y - bar * 0.45), (v, y + bar * 0.45)],
                    color.filled(),
                ))
            });
            let whiskers = values.iter().enumerate().filter_map(|(i, row)| {
                let (_, lo, hi) = row[j]?;
                let y = row_y(i) + offset;
                Some(PathElement::new(
                    vec![
                        (lo, y - bar * 0.3),
                        (lo, y + bar * 0.3),
                        (lo, y),
                        (hi, y),
                        (hi, y - bar * 0.3),
                        (hi, y + bar * 0.3),
                    ],
                    BLACK,
                ))
            });
            let what = if *dir == "decap" {
                "client → net"
            } else {
                "net → client"
            };
            chart
                .draw_series(bars)?
                .label(format!("{what} {size} B"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
            chart.draw_series(whiskers)?;
            let figures = values.iter().enumerate().map(|(i, row)| {
                let y = row_y(i) + offset;
                match row[j] {
                    Some((v, _, hi)) => Text::new(
                        format!("{v:.0}"),
                        (hi + max * 0.01, y),
                        ("sans-serif", 12).into_font().color(&BLACK),
                    ),
                    None => Text::new(
                        "n/a".to_owned(),
                        (max * 0.01, y),
                        ("sans-serif", 12)
                            .into_font()
                            .color(&RGBColor(128, 128, 128)),
                    ),
                }
            });
            chart.draw_series(figures)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()?;
        note_area.draw(&Text::new(
            note,
            (200, 5),
            ("sans-serif", 14)
                .into_font()
                .color(&RGBColor(128, 128, 128)),
        ))?;
        root.present()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        serde_json::json!({
            "machine": "test", "seconds_per_measurement": 1.0, "mppe_note": "n",
            "measurements": [
                {"path": "xdp", "direction": "decap", "size": 64, "sessions": 1, "delivered_pps": 2000.0, "cpu_ns_per_packet": 10.0, "sent_pps": 1.0,
                 "fwd_cpu_ns_per_packet": 300.0, "fwd_cpu_ns_range": [280.0, 350.0], "bpf_ns_per_packet": 90.0,
                 "bpf_programs": [{"name": "pptp_xdp", "ns_per_run": 60.0, "runs_per_packet": 1.5}]},
                {"path": "ip-forward", "direction": "decap", "size": 64, "sessions": 0, "delivered_pps": 1000.0, "cpu_ns_per_packet": 20.0, "sent_pps": 1.0,
                 "fwd_cpu_ns_per_packet": 900.0, "fwd_cpu_ns_range": [850.0, 1000.0], "bpf_ns_per_packet": 0.0, "bpf_programs": []}
            ],
            "scale": [{"sessions": 10, "setup_seconds": 2.0, "sessions_per_second": 5.0, "bytes_per_session": 2048.0}]
        })
    }

    /// The MPPE table puts the fast path over the userspace path, each
    /// direction and size both labs measured.
    #[test]
    fn the_mppe_table_puts_the_fast_path_over_the_userspace_path() {
        let row = |path: &str, dir: &str, pps: f64, cpu: f64| {
            serde_json::json!({
                "path": path, "direction": dir, "size": 64, "sessions": 1,
                "delivered_pps": pps, "fwd_cpu_ns_per_packet": cpu,
                "fwd_cpu_ns_range": [cpu, cpu],
            })
        };
        let d = serde_json::json!({"measurements": [
            row("mppe", "encap", 300_000.0, 3000.0),
            row("mppe-userspace", "encap", 60_000.0, 15_000.0),
            // No userspace figure for this one: no row.
            row("mppe", "decap", 200_000.0, 4000.0),
        ]});
        let mut t = String::new();
        mppe_table(&mut t, &d);
        let rows: Vec<&str> = t.lines().filter(|l| l.starts_with("| network")).collect();
        assert_eq!(
            rows,
            [
                "| network → client | 64 B | 300 / 60 | 5.00 | 3000 (3000–3000) / 15000 (15000–15000) | 5.00 |"
            ]
        );
        assert!(!t.contains("client → network"), "{t}");
        let mut empty = String::new();
        mppe_table(&mut empty, &serde_json::json!({"measurements": []}));
        assert_eq!(empty, "");
    }

    /// A later run confirms a ratio when its median lies within the
    /// earlier run's spread of per-round ratios; absolute figures are
    /// compared the same way but apart.
    #[test]
    fn a_later_run_confirms_ratios_within_the_earlier_spread() {
        let ratio = |base: &str, median: f64, lo: f64, hi: f64| {
            serde_json::json!({
                "path": "xdp", "sessions": 1, "base": base, "base_sessions": 0,
                "figure": "fwd_cpu_ns_per_packet", "direction": "decap", "size": 64,
                "median": median, "range": [lo, hi], "rounds": 5,
            })
        };
        let row = |median: f64, lo: f64, hi: f64| {
            serde_json::json!({
                "path": "xdp", "direction": "decap", "size": 64, "sessions": 1,
                "fwd_cpu_ns_per_packet": median, "fwd_cpu_ns_range": [lo, hi],
            })
        };
        let earlier = serde_json::json!({
            "measurements": [row(1000.0, 950.0, 1100.0)],
            "ratios": [ratio("xdp-route", 1.10, 1.05, 1.20), ratio("ip-forward", 0.90, 0.88, 0.93)],
        });
        let later = serde_json::json!({
            "measurements": [row(1200.0, 1150.0, 1300.0)],
            "ratios": [ratio("xdp-route", 1.15, 1.0, 1.3), ratio("ip-forward", 0.95, 0.9, 1.0)],
        });
        let rows = confirmations(std::slice::from_ref(&earlier), &later, stated_figures);
        let within = |rows: &[Confirmation], name: &str| {
            rows.iter()
                .find(|r| r.name.starts_with(name))
                .map(|r| r.within)
                .unwrap_or_else(|| panic!("{name} compared"))
        };
        assert_eq!(rows.len(), 2);
        assert!(within(
            &rows,
            "xdp ÷ xdp-route decap 64 B: forwarding CPU/packet"
        ));
        assert!(
            !within(&rows, "xdp ÷ ip-forward decap"),
            "0.95 is above 0.88–0.93"
        );
        let absolute = confirmations(std::slice::from_ref(&earlier), &later, absolute_figures);
        assert_eq!(absolute.len(), 1);
        assert!(!absolute[0].within, "1200 is above 950–1100");
        // Two earlier runs state the spread over all their rounds: 0.95
        // lies within 0.88–0.97 (the second run's highest round).
        let second = serde_json::json!({
            "ratios": [ratio("xdp-route", 1.12, 1.0, 1.15), ratio("ip-forward", 0.93, 0.91, 0.97)],
        });
        let pooled = confirmations(&[earlier.clone(), second], &later, stated_figures);
        assert_eq!(pooled.len(), 2);
        assert!(within(&pooled, "xdp ÷ ip-forward decap"));
        let c = pooled
            .iter()
            .find(|c| c.name.starts_with("xdp ÷ ip-forward"))
            .expect("compared");
        assert_eq!(c.medians, [0.90, 0.93]);
        assert_eq!(c.spread, (0.88, 0.97));
        // A figure one earlier run lacks is not stated.
        let partial = serde_json::json!({"ratios": [ratio("xdp-route", 1.1, 1.0, 1.2)]});
        assert_eq!(
            confirmations(&[earlier, partial], &later, stated_figures).len(),
            1
        );
        // A run without per-round ratios states none.
        assert!(
            stated_figures(&serde_json::json!({"measurements": [row(1.0, 1.0, 1.0)]})).is_empty()
        );
    }

    /// The bench's per-round ratios win over ratios of the medians.
    #[test]
    fn a_guest_run_states_its_ratios_over_kernel_pptp() {
        let guest = |median: f64| {
            serde_json::json!({"forwarding": {"ratios": [
                {"path": "ours_xdp", "sessions": 1, "base": "kernel_pptp_100",
                 "figure": "host_vcpu_ns", "direction": "up", "size": 64,
                 "median": median, "range": [0.3, 0.5], "rounds": 5},
                {"path": "ours_xdp", "sessions": 1, "base": "kernel_pptp_100",
                 "figure": "forwarding_cpu_ns", "direction": "up", "size": 64,
                 "median": 0.4, "range": [0.35, 0.45], "rounds": 5},
            ]}})
        };
        let stated = stated_figures(&guest(0.4));
        assert_eq!(stated.len(), 2);
        assert_eq!(
            stated[0].0,
            "ours_xdp ÷ kernel_pptp_100 up 64 B: vCPU 1 host time/packet"
        );
        assert_eq!(
            stated[1].0,
            "ours_xdp ÷ kernel_pptp_100 up 64 B: forwarding CPU/packet"
        );
        let rows = confirmations(&[guest(0.4)], &guest(0.6), stated_figures);
        assert_eq!(rows.len(), 2);
        assert!(!rows[0].within, "0.6 is above 0.3–0.5");
        assert!(rows[1].within);
    }

    #[test]
    fn modes_table_takes_the_paired_ratios() {
        let row = |path: &str, sessions: u64, pps: f64, ns: f64| {
            serde_json::json!({"path": path, "direction": "decap", "size": 64, "sessions": sessions,
                "delivered_pps": pps, "cpu_ns_per_packet": ns,
                "fwd_cpu_ns_per_packet": ns, "fwd_cpu_ns_range": [ns, ns], "sent_pps": 1.0})
        };
        let ratio = |path: &str, base: &str, figure: &str, median: f64, lo: f64, hi: f64| {
            serde_json::json!({
                "path": path, "sessions": 1, "base": base, "base_sessions": 0, "figure": figure,
                "direction": "decap", "size": 64, "median": median, "range": [lo, hi], "rounds": 5,
            })
        };
        let d = serde_json::json!({
            "machine": "test", "seconds_per_measurement": 1.0, "mppe_note": "n",
            "measurements": [
                row("stack+nft", 1, 200_000.0, 5000.0),
                row("ip-forward+nft", 0, 250_000.0, 4000.0),
                row("xdp", 1, 390_000.0, 2500.0),
                row("xdp-route", 0, 400_000.0, 2400.0),
            ],
            "ratios": [
                ratio("stack+nft", "ip-forward+nft", "fwd_cpu_ns_per_packet", 1.21, 1.18, 1.27),
                ratio("xdp", "xdp-route", "delivered_pps", 0.99, 0.96, 1.02),
            ],
            "scale": []
        });
        let t = table(&d, None);
        assert!(
            t.contains("| 1.21 (met) (1.18–1.27) | - | 0.99 (met) (0.96–1.02) |"),
            "{t}"
        );
        assert!(
            t.contains("| stack+nft ÷ ip-forward+nft | forwarding CPU/packet | client → network | 64 B | 1.21 (1.18–1.27) | 5 |"),
            "{t}"
        );
    }

    #[test]
    fn table_shows_ratios_and_scale() {
        let t = table(&sample(), None);
        assert!(
            t.contains("| xdp | client → network | 64 B | 1 | 2 | 300 (280–350) | 90 (pptp_xdp 60 × 1.50) | 10 | 2.00 | - |"),
            "{t}"
        );
        assert!(
            t.contains("| ip-forward | client → network | 64 B | - | 1 | 900 (850–1000) | - | 20 | 1.00 | - |"),
            "{t}"
        );
        assert!(t.contains("| 10 | 2.0 s | 5 | 2.0 KiB |"), "{t}");
    }

    #[test]
    fn modes_side_by_side_with_the_targets() {
        let row = |path: &str, dir: &str, sessions: u64, pps: f64, ns: f64| {
            serde_json::json!({"path": path, "direction": dir, "size": 64, "sessions": sessions,
                "delivered_pps": pps, "cpu_ns_per_packet": ns + 1000.0,
                "fwd_cpu_ns_per_packet": ns, "fwd_cpu_ns_range": [ns - 100.0, ns + 100.0],
                "sent_pps": 1.0})
        };
        let d = serde_json::json!({
            "machine": "test", "seconds_per_measurement": 1.0, "mppe_note": "n",
            "nft_note": "same rules", "nft_ruleset": "table inet pptp_bench {\n}\n",
            "measurements": [
                row("stack", "decap", 1, 300_000.0, 3000.0),
                row("stack+nft", "decap", 1, 200_000.0, 5000.0),
                row("stack+nft", "encap", 1, 200_000.0, 6000.0),
                row("xdp", "decap", 1, 390_000.0, 2500.0),
                row("xdp", "encap", 1, 300_000.0, 2500.0),
                row("ip-forward+nft", "decap", 0, 250_000.0, 4000.0),
                row("ip-forward+nft", "encap", 0, 250_000.0, 4000.0),
                row("ip-forward+xdp-pass+nft", "decap", 0, 240_000.0, 4500.0),
                row("xdp-route", "decap", 0, 400_000.0, 2400.0),
                row("xdp-route", "encap", 0, 400_000.0, 2400.0),
            ],
            "scale": []
        });
        let t = table(&d, None);
        assert!(
            t.contains("| client → network | 64 B | - | 250 kpps, 4000 ns | 240 kpps, 4500 ns | 300 kpps, 3000 ns | 200 kpps, 5000 ns | 390 kpps, 2500 ns | 400 kpps, 2400 ns | 1.25 (met) (1.20–1.31) | 1.11 (1.07–1.16) | 0.97 (met) |"),
            "{t}"
        );
        assert!(
            t.contains("| network → client | 64 B | - | 250 kpps, 4000 ns | - | - | 200 kpps, 6000 ns | 300 kpps, 2500 ns | 400 kpps, 2400 ns | 1.50 (missed) (1.44–1.56) | - | 0.75 (missed) |"),
            "{t}"
        );
        // Rows under the ruleset compare with forwarding under the same one.
        assert!(
            t.contains(
                "| stack+nft | client → network | 64 B | 1 | 200 | 5000 (4900–5100) | - | 6000 | 0.80 | 0.50 |"
            ),
            "{t}"
        );
        assert!(
            t.contains("same rules") && t.contains("```\ntable inet pptp_bench {\n}\n```"),
            "{t}"
        );
        // Without any of these paths there is no side-by-side table.
        let only_userspace = serde_json::json!({
            "machine": "test", "seconds_per_measurement": 1.0, "mppe_note": "n",
            "measurements": [row("userspace", "decap", 1, 1000.0, 9000.0)], "scale": []
        });
        assert!(!table(&only_userspace, None).contains("side by side"));
    }

    #[test]
    fn guest_forwarding_cpu_in_the_table() {
        let guest = serde_json::json!({
            "seconds": 10, "guest": {"kernel": "6.1", "cpus": 2},
            "paths": {"kernel_pptp": {"label": "kernel PPTP", "up": {"mbit_per_s": 100.0}, "down": {"mbit_per_s": 50.0}}},
            "forwarding": {"runs": 5, "seconds_per_run": 2.0, "pinning": "generator on vCPU 0",
                "rows": [
                    {"path": "kernel_pptp", "label": "kernel PPTP", "sessions": 1000, "size": 64,
                     "beside_kernel_sessions": 1000, "direction": "client → network",
                     "delivered_pps": {"median": 25000.0, "min": 20000.0, "max": 30000.0},
                     "forwarding_cpu_ns_per_packet": {"median": 30000.0, "min": 28000.0, "max": 41000.0},
                     "bpf_ns_per_run": null, "forwarding_cpu_over_kernel": null, "runs": 5, "stalled_runs": 1,
                     "host_vcpu_ns_per_packet": {"median": 20000.0, "min": 19000.0, "max": 26000.0},
                     "host_vcpu_over_kernel": null},
                    {"path": "ours_xdp", "label": "pptp-daemon XDP", "sessions": 1, "size": 1400,
                     "beside_kernel_sessions": 1, "direction": "network → client",
                     "delivered_pps": {"median": 40000.0, "min": 39000.0, "max": 42000.0},
                     "forwarding_cpu_ns_per_packet": {"median": 9000.0, "min": 8000.0, "max": 9500.0},
                     "bpf_ns_per_run": {"median": 600.0, "min": 550.0, "max": 700.0},
                     "forwarding_cpu_over_kernel": {"median": 0.3, "min": 0.25, "max": 0.41},
                     "host_vcpu_ns_per_packet": null, "host_vcpu_over_kernel": null}]}
        });
        let t = table(&sample(), Some(&guest));
        assert!(
            t.contains("| kernel PPTP | 100.0 | 50.0 | 1.00 / 1.00 |"),
            "{t}"
        );
        assert!(
            t.contains("median (min–max) of 5 rounds × 2.0 s each: generator on vCPU 0"),
            "{t}"
        );
        assert!(
            t.contains("| kernel PPTP | 1000 | 1000 | 64 B | client → network | 25 (20–30); 1 of 5 runs delivered nothing | 30000 (28000–41000) | - | - | 20000 (19000–26000) | - |"),
            "{t}"
        );
        assert!(
            t.contains("| pptp-daemon XDP | 1 | 1 | 1400 B | network → client | 40 (39–42) | 9000 (8000–9500) | 600 (550–700) | 0.30 (0.25–0.41) | - | - |"),
            "{t}"
        );
        assert_eq!(
            guest_table(&guest),
            t[t.find("\nIn a qemu guest").unwrap()..]
        );
    }

    #[test]
    fn guest_table_of_the_mppe_phases_alone_shows_each_rows_offered_rate() {
        let g = serde_json::json!({
            "seconds": 2, "paths": {}, "guest": {"kernel": "6.1", "cpus": 2},
            "forwarding": {"runs": 5, "seconds_per_run": 1.5, "pinning": "p", "rows": [
                {"path": "kernel_pptp_mppe", "label": "kernel PPTP + ppp_mppe", "sessions": 1,
                 "beside_kernel_sessions": 1, "size": 1396, "direction": "client → network",
                 "offered_pps": 18750,
                 "delivered_pps": {"median": 17000.0, "min": 16000.0, "max": 18000.0},
                 "forwarding_cpu_ns_per_packet": {"median": 50000.0, "min": 49000.0, "max": 51000.0},
                 "bpf_ns_per_run": null, "forwarding_cpu_over_kernel": null,
                 "host_vcpu_ns_per_packet": null, "host_vcpu_over_kernel": null}]}
        });
        let t = guest_table(&g);
        assert!(!t.contains("| path | client → network Mbit/s"), "{t}");
        assert!(
            t.contains("`pptp-lab mppe-send` encrypts every frame"),
            "{t}"
        );
        assert!(
            t.contains("| kernel PPTP + ppp_mppe | 1 | 1 | 1396 B | client → network (offered 18750/s) | 17 (16–18) | 50000 (49000–51000) |"),
            "{t}"
        );
        // Since both paths are offered the lower of their no-loss rates:
        // each row says its own too.
        let mut g = g;
        g["forwarding"]["rows"][0]["no_loss_pps"] = serde_json::json!(30000);
        let t = guest_table(&g);
        assert!(
            t.contains(
                "then the paths compared in the rounds are all offered the lowest of their rates"
            ),
            "{t}"
        );
        assert!(
            t.contains("| 1396 B | client → network (offered 18750/s; no loss up to 30000/s) | 17 (16–18) |"),
            "{t}"
        );
    }

    #[test]
    fn guest_svg_plots_kernel_pptp_in_its_phase_and_the_fast_path_beside_one_session() {
        let row = |path: &str, sessions: u64, beside: u64, median: f64| {
            serde_json::json!({"path": path, "sessions": sessions, "beside_kernel_sessions": beside,
                "size": 64, "direction": "client → network",
                "forwarding_cpu_ns_per_packet": {"median": median, "min": median - 1.0, "max": median + 1.0}})
        };
        let g = serde_json::json!({"forwarding": {"runs": 5, "rows": [
            row("kernel_pptp", 1, 1, 40000.0),
            row("kernel_pptp", 1000, 1000, 50000.0),
            row("ours_xdp", 1, 1, 12000.0),
            row("ours_xdp", 1, 1000, 99999.0),
        ]}});
        let s = guest_svg(&g).unwrap();
        assert!(s.contains("of 5 rounds"), "{s}");
        for shown in ["40000", "50000", "12000", "kernel PPTP, 1,000 sessions"] {
            assert!(s.contains(shown), "{shown} in {s}");
        }
        assert!(
            !s.contains("99999"),
            "the fast path beside 1,000 sessions is not plotted"
        );
        // Three bars of four series by six rows: the rest are n/a.
        assert_eq!(s.matches("\nn/a\n").count(), 6 * 4 - 3, "{s}");
        assert!(s.contains("plain XDP routing"), "{s}");
    }

    #[test]
    fn svg_has_a_bar_per_measured_value() {
        let s = svg(&sample()).unwrap();
        assert!(
            s.starts_with("<svg") && s.trim_end().ends_with("</svg>"),
            "{s}"
        );
        // Two decap 64 B bars (fast path, IP forwarding) and the legend
        // swatch; a whisker from the lowest to the highest run of each.
        let whiskers = s
            .lines()
            .filter(|l| l.starts_with("<polyline") && l.matches(',').count() == 6)
            .count();
        assert_eq!(whiskers, 2, "{s}");
        assert_eq!(s.matches(r##"fill="#1F77B4""##).count(), 3, "{s}");
        assert_eq!(
            s.matches("\nn/a\n").count(),
            8 * 4 - 2,
            "every other path and size is marked n/a"
        );
        for label in [
            "pptp-xdp fast path",
            "kernel IP forwarding",
            "XDP routing (ceiling)",
            "pptp-xdp stack mode",
            "stack mode + nftables",
            "IP forwarding + nftables",
        ] {
            assert!(s.contains(label), "axis label {label}");
        }
        assert!(s.contains("client → net 64 B"), "legend");
        // The medians (ns) beside the bars, and the MPPE note.
        assert!(s.contains(">\n300\n<") && s.contains(">\n900\n<"), "{s}");
        assert!(s.contains("MPPE: its large packets are 1396 B"), "{s}");
    }
}
