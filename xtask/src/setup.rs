//! `cargo xtask setup`: everything building and testing need, installed
//! idempotently. Other commands call [`ensure`], which runs the setup only
//! when something is missing, so a newcomer never needs a manual step.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::util::{self, output};

/// The nightly toolchain that builds the eBPF program (shared with
/// pptp-daemon's build.rs through the file `ebpf-toolchain`).
pub const TOOLCHAIN: &str = include_str!("../../ebpf-toolchain").trim_ascii();

/// bpf-linker release line known to work with that toolchain's LLVM.
const BPF_LINKER_VERSION: &str = "0.13";

/// Debian packages the test suite uses: iproute2 (namespaces, veth),
/// ping, tshark and scapy (independent dissectors in the oracle tests),
/// iperf3 and ethtool (interop with pptp-linux in the guest), freeradius
/// and freeradius-utils (radclient: the RADIUS tests' real server),
/// postgresql and freeradius-postgresql (the database of the shared
/// sqlippool address pool and FreeRADIUS's driver for it).
/// systemd (only its `systemd-analyze verify` for the unit file; on a
/// Debian host it is there already), procps (pgrep in the scripts test),
/// nftables (`nft`: the operator's firewall and NAT in the netfilter tests).
const DEBIAN_PACKAGES: &[&str] = &[
    "iproute2",
    "iputils-ping",
    "tshark",
    "python3-scapy",
    "iperf3",
    "ethtool",
    "freeradius",
    "freeradius-utils",
    "postgresql",
    "freeradius-postgresql",
    "systemd",
    "procps",
    "nftables",
];

/// What is missing, each with a short name.
fn missing() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if toolchain_sysroot().is_none_or(|s| !s.join("lib/rustlib/src/rust/library/core").is_dir()) {
        missing.push("toolchain");
    }
    if !bpf_linker_ok() {
        missing.push("bpf-linker");
    }
    if output(Command::new("cargo").args(["fuzz", "--version"])).is_none() {
        missing.push("cargo-fuzz");
    }
    if !missing_packages().is_empty() {
        missing.push("debian-packages");
    }
    missing
}

/// Runs the setup if anything is missing.
pub fn ensure() -> anyhow::Result<()> {
    let missing = missing();
    if missing.is_empty() {
        return Ok(());
    }
    util::step(&format!("setup needed ({} missing)", missing.join(", ")));
    setup()
}

/// Installs everything that is missing; does nothing when all is there.
pub fn setup() -> anyhow::Result<()> {
    install_toolchain()?;
    install_bpf_linker()?;
    install_cargo_fuzz()?;
    install_packages()?;
    let still = missing();
    if !still.is_empty() {
        bail!("setup finished but {} still missing", still.join(", "));
    }
    eprintln!(
        "setup: complete (eBPF toolchain {TOOLCHAIN}, bpf-linker {BPF_LINKER_VERSION}, cargo-fuzz, Debian packages)"
    );
    Ok(())
}

fn toolchain_sysroot() -> Option<PathBuf> {
    let out =
        output(Command::new("rustup").args(["run", TOOLCHAIN, "rustc", "--print", "sysroot"]))?;
    Some(PathBuf::from(out.trim()))
}

fn install_toolchain() -> anyhow::Result<()> {
    if toolchain_sysroot().is_some_and(|s| s.join("lib/rustlib/src/rust/library/core").is_dir()) {
        return Ok(());
    }
    util::step(&format!(
        "installing the eBPF toolchain {TOOLCHAIN} with rust-src"
    ));
    util::exec(Command::new("rustup").args([
        "toolchain",
        "install",
        TOOLCHAIN,
        "--profile",
        "minimal",
        "--component",
        "rust-src",
    ]))
    .context("rustup is needed (https://rustup.rs)")
}

fn bpf_linker_ok() -> bool {
    output(Command::new("bpf-linker").arg("--version")).is_some_and(|v| {
        v.split_whitespace()
            .nth(1)
            .is_some_and(|ver| ver.starts_with(BPF_LINKER_VERSION))
    })
}

/// The toolchain's own libLLVM (`libLLVM.so.<major>.<minor>-rust-...`).
fn toolchain_llvm(sysroot: &Path) -> anyhow::Result<(PathBuf, String)> {
    let lib = sysroot.join("lib");
    for entry in std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix("libLLVM.so.")
            && name.contains("-rust-")
        {
            let major = rest.split('.').next().unwrap_or_default().to_owned();
            if !major.is_empty() && major.chars().all(|c| c.is_ascii_digit()) {
                return Ok((lib.join(&name), major));
            }
        }
    }
    bail!("no libLLVM.so.<version>-rust-* in {}", lib.display())
}

/// bpf-linker built against the nightly's own LLVM: a prefix folder whose
/// lib/ links to that libLLVM (kept outside target/, since bpf-linker loads
/// LLVM from it at run time), then `cargo install` with the matching feature.
fn install_bpf_linker() -> anyhow::Result<()> {
    if bpf_linker_ok() {
        return Ok(());
    }
    let sysroot = toolchain_sysroot().context("the eBPF toolchain is not installed")?;
    let (llvm, major) = toolchain_llvm(&sysroot)?;
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let prefix = PathBuf::from(home).join(format!(".local/share/pptp-xdp/llvm-{TOOLCHAIN}"));
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib)?;
    let file_name = llvm.file_name().context("libLLVM path")?.to_owned();
    for link in [PathBuf::from("libLLVM.so"), PathBuf::from(&file_name)] {
        let link = lib.join(link);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&llvm, &link)
            .with_context(|| format!("linking {} to {}", link.display(), llvm.display()))?;
    }
    util::step(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against LLVM {major} of {TOOLCHAIN} (a few minutes)"
    ));
    util::exec(
        Command::new("cargo")
            .env("LLVM_PREFIX", &prefix)
            .args(["install", "bpf-linker", "--force", "--version"])
            .arg(format!("~{BPF_LINKER_VERSION}"))
            .args(["--no-default-features", "--features"])
            .arg(format!("llvm-{major}")),
    )
}

fn install_cargo_fuzz() -> anyhow::Result<()> {
    if output(Command::new("cargo").args(["fuzz", "--version"])).is_some() {
        return Ok(());
    }
    util::step("installing cargo-fuzz");
    util::exec(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

fn missing_packages() -> Vec<&'static str> {
    DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_none_or(|s| !s.contains("install ok installed"))
        })
        .collect()
}

fn install_packages() -> anyhow::Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    util::require_root("installing Debian packages")?;
    util::step(&format!(
        "installing Debian packages: {}",
        missing.join(" ")
    ));
    util::exec(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["update", "-q"]),
    )?;
    util::exec(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
    )
}
