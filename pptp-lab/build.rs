//! Builds the lab's XDP programs (`pptp-lab-ebpf`) with the pinned nightly
//! toolchain and bpf-linker, as pptp-daemon/build.rs builds the daemon's
//! (which runs first, this crate depending on pptp-daemon, and names the
//! fix when either is missing). `AYA_BUILD_SKIP=1` embeds an empty object.

use std::{env, fs, path::PathBuf};

/// The nightly toolchain that builds eBPF, shared with xtask.
const TOOLCHAIN: &str = include_str!("../ebpf-toolchain");

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=../ebpf-toolchain");
    println!("cargo:rerun-if-changed=../pptp-common/src");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        fs::write(out_dir.join("pptp-lab-xdp"), [])?;
        return Ok(());
    }
    let ebpf = aya_build::Package {
        name: "pptp-lab-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../pptp-lab-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::Custom(TOOLCHAIN.trim()))
}
