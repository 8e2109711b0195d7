//! `pptp-daemon --check-config` and the RADIUS section, in a namespace of
//! its own with a real FreeRADIUS 3.2 (its fixture has `status_server =
//! yes`): every configured authentication and accounting server is asked
//! with Status-Server (RFC 5997) and named in one line; a server that does
//! not answer, one that cannot be reached and an empty secret fail the
//! check with a clear message. Needs root and the packages freeradius and
//! freeradius-utils (`cargo xtask setup`); fails (never skips) without
//! them.

use std::{net::SocketAddr, path::Path, process::Output};

use pptp_lab::radius_lab::{FreeRadius, SECRET, unused_port};
use pptp_netns::{self as netns, Netns};

mod common;
use common::bin;

/// A configuration with RADIUS authentication and accounting against
/// `server` with `secret` (short timeouts: a failing check is quick).
fn config(server: SocketAddr, secret: &str) -> String {
    format!(
        "[auth]\nbackend = \"radius\"\nmethods = [\"mschapv2\"]\n\n\
         [radius]\ntimeout_ms = 500\nretries = 1\n\n\
         [[radius.servers]]\naddress = \"{server}\"\nsecret = \"{secret}\"\n"
    )
}

/// `pptp-daemon --check-config -c <file with text>` inside `ns`.
fn check_config(ns: &Netns, dir: &Path, text: &str) -> (Output, String, String) {
    let file = dir.join(format!("{}.toml", netns::unique_name("check")));
    std::fs::write(&file, text).expect("writing the configuration");
    let output = ns
        .command(bin().to_str().expect("utf-8 path"))
        .args(["--check-config", "-c"])
        .arg(&file)
        .output()
        .expect("running pptp-daemon --check-config");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

/// A temporary folder for the configuration files, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    let dir = std::env::temp_dir().join(netns::unique_name("pxcfg"));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    TempDir(dir)
}

/// FreeRADIUS answers Status-Server on both ports: the check passes and
/// names each server with its round trip.
#[test]
fn check_config_probes_the_running_freeradius() {
    netns::require_root().expect("prerequisite");
    let ns = Netns::new("pxcc").expect("namespace");
    let fr = FreeRadius::start(&ns).unwrap_or_else(|e| panic!("{e}"));
    let dir = temp_dir();
    let (output, stdout, stderr) =
        check_config(&ns, dir.path(), &config(fr.auth_address(), SECRET));
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}\nFreeRADIUS log:\n{}",
        fr.log()
    );
    for (port, address) in [
        ("authentication", fr.auth_address()),
        ("accounting", fr.acct_address()),
    ] {
        let line = format!("# RADIUS {port} server {address} (radius.servers[0]): answered");
        assert!(stdout.contains(&line), "no {line:?} in:\n{stdout}");
    }
    assert!(
        fr.log().contains("Status-Server"),
        "FreeRADIUS saw Status-Server:\n{}",
        fr.log()
    );
}

/// Nothing listens on the configured port: the check fails and names the
/// server, with the hint about a running server and `status_server`.
#[test]
fn check_config_fails_naming_a_server_that_does_not_answer() {
    netns::require_root().expect("prerequisite");
    let ns = Netns::new("pxcn").expect("namespace");
    // FreeRADIUS runs, but on other ports.
    let _fr = FreeRadius::start(&ns).unwrap_or_else(|e| panic!("{e}"));
    let dead = SocketAddr::from(([127, 0, 0, 1], unused_port(&ns).expect("a port")));
    let dir = temp_dir();
    let (output, stdout, stderr) = check_config(&ns, dir.path(), &config(dead, SECRET));
    assert!(
        !output.status.success(),
        "a dead server passed:\n{stdout}\n{stderr}"
    );
    let line = format!("# RADIUS authentication server {dead} (radius.servers[0]): no answer to 2");
    assert!(stdout.contains(&line), "no {line:?} in:\n{stdout}");
    assert!(
        stderr.contains(&format!("not answering: authentication {dead}"))
            && stderr.contains("status_server = yes"),
        "{stderr}"
    );
}

/// No route to the server (a namespace with only loopback): unreachable,
/// with ENETUNREACH named.
#[test]
fn check_config_names_an_unreachable_server() {
    netns::require_root().expect("prerequisite");
    let ns = Netns::new("pxcu").expect("namespace");
    ns.ip(&["link", "set", "lo", "up"]).expect("lo up");
    let nowhere: SocketAddr = "198.18.250.1:1812".parse().unwrap();
    let dir = temp_dir();
    let (output, stdout, stderr) = check_config(&ns, dir.path(), &config(nowhere, SECRET));
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    let line =
        format!("# RADIUS authentication server {nowhere} (radius.servers[0]): unreachable:");
    assert!(
        stdout.contains(&line) && stdout.contains("ENETUNREACH"),
        "no {line:?} with ENETUNREACH in:\n{stdout}"
    );
}

/// An empty secret: refused before any probe, naming the field.
#[test]
fn check_config_refuses_an_empty_secret() {
    netns::require_root().expect("prerequisite");
    let ns = Netns::new("pxce").expect("namespace");
    let dir = temp_dir();
    let server: SocketAddr = "127.0.0.1:1812".parse().unwrap();
    let (output, stdout, stderr) = check_config(&ns, dir.path(), &config(server, ""));
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("radius.servers[0].secret") && stderr.contains("secret is empty"),
        "{stderr}"
    );
    assert!(!stdout.contains("Status-Server"), "{stdout}");

    // The DAE secret likewise.
    let text = format!(
        "{}\n[radius.dae]\nlisten = \"127.0.0.1:3799\"\nsecret = \"\"\nclients = [\"127.0.0.1\"]\n",
        config(server, SECRET)
    );
    let (output, stdout, stderr) = check_config(&ns, dir.path(), &text);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("radius.dae.secret") && stderr.contains("secret is empty"),
        "{stderr}"
    );
}
