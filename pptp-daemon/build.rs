//! Builds the XDP program (`pptp-ebpf`) with the pinned nightly toolchain and
//! bpf-linker, so the daemon binary embeds it. When either is missing the
//! build stops with a message naming the one command that installs them.

use std::{env, fs, path::PathBuf, process::Command};

/// The nightly toolchain that builds eBPF, shared with xtask.
const TOOLCHAIN: &str = include_str!("../ebpf-toolchain");

fn main() -> anyhow::Result<()> {
    let toolchain = TOOLCHAIN.trim();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=../ebpf-toolchain");
    println!("cargo:rerun-if-changed=../pptp-common/src");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");

    // Escape hatch for tools that only need the host code (fuzzing, docs):
    // the binary then embeds an empty object and refuses to load XDP.
    if env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        fs::write(out_dir.join("pptp-xdp"), [])?;
        return Ok(());
    }

    check_prerequisites(toolchain);

    let ebpf = aya_build::Package {
        name: "pptp-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../pptp-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::Custom(toolchain))
}

/// Fails the build with the fix when the eBPF toolchain is not installed.
fn check_prerequisites(toolchain: &str) {
    const FIX: &str = "run `cargo xtask setup` (it installs both, once)";
    let sysroot = Command::new("rustup")
        .args(["run", toolchain, "rustc", "--print", "sysroot"])
        .output();
    let sysroot = match sysroot {
        Ok(out) if out.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
        Ok(out) => panic!(
            "the eBPF toolchain {toolchain} is not installed ({}): {FIX}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(err) => panic!("rustup is needed to build the eBPF program ({err}): {FIX}"),
    };
    if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        panic!("the rust-src component of {toolchain} is missing: {FIX}");
    }
    let linker_found = env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).any(|dir| dir.join("bpf-linker").is_file()))
        .unwrap_or(false);
    if !linker_found {
        panic!("bpf-linker is not on PATH: {FIX}");
    }
}
