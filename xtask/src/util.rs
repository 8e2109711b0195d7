//! Small process helpers.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_owned()
}

/// `cargo` on the toolchain that runs xtask (stable), at the workspace root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// `cargo` on a given rustup toolchain.
pub fn cargo_with(toolchain: &str) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", toolchain, "cargo"]);
    // Let rustup pick the toolchain's own cargo and rustc.
    for var in ["CARGO", "RUSTC", "RUSTUP_TOOLCHAIN", "RUSTC_WRAPPER"] {
        cmd.env_remove(var);
    }
    cmd.current_dir(workspace_root());
    cmd
}

/// Runs a command with inherited stdio; a failure names the command.
pub fn exec(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .stdin(Stdio::inherit())
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Runs a command and returns its stdout, or `None` if it failed or could not start.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Prints a step banner.
pub fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// Fails unless running as root, naming what needs it and the fix.
pub fn require_root(what: &str) -> anyhow::Result<()> {
    let uid = output(Command::new("id").arg("-u")).unwrap_or_default();
    if uid.trim() != "0" {
        bail!("{what} need root: run this command as root (e.g. `sudo -E cargo xtask ...`)");
    }
    Ok(())
}
