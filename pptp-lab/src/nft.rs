//! nftables and reverse-path filtering in a lab namespace, for the tests
//! that check what of an operator's network policy each forwarding mode
//! keeps (issue 17, docs/netfilter.md): load a ruleset with Debian's `nft`,
//! read its named counters, set or read `rp_filter` on every interface and
//! count what it dropped.
//!
//! Everything happens inside one namespace; the ruleset goes away with it.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use pptp_netns::{Netns, NetnsError};

/// Why a namespace's nftables or sysctls could not be set or read.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("nft not found: run `cargo xtask setup` (installs Debian's nftables)")]
    NotFound,
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("`{command}` gave unexpected output: {why}")]
    Output { command: String, why: String },
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("{path}: {source}")]
    Sysctl {
        path: String,
        source: std::io::Error,
    },
}

/// The `nft` binary (Debian puts it in /usr/sbin, which a test's PATH may
/// lack).
pub fn nft_binary() -> Result<PathBuf, NftError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nft"))
        .find(|p| p.is_file())
        .ok_or(NftError::NotFound)
}

/// Runs `nft ARGS` inside `ns` with `stdin` as its input; its stdout.
fn nft(ns: &Netns, args: &[&str], stdin: Option<&str>) -> Result<String, NftError> {
    let bin = nft_binary()?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns.name()])
        .arg(&bin)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let command = format!("nft {} (in {})", args.join(" "), ns.name());
    let failed = |e: std::io::Error| NftError::Command {
        command: command.clone(),
        stderr: e.to_string(),
    };
    let mut child = cmd.spawn().map_err(failed)?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes()).map_err(failed)?;
    }
    let out = child.wait_with_output().map_err(failed)?;
    if !out.status.success() {
        return Err(NftError::Command {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Loads `ruleset` (nft syntax, as in /etc/nftables.conf) into `ns`
/// atomically with `nft -f -`.
pub fn load(ns: &Netns, ruleset: &str) -> Result<(), NftError> {
    nft(ns, &["-f", "-"], Some(ruleset)).map(drop)
}

/// The whole ruleset of `ns` with counters (`nft list ruleset`), for
/// failure messages.
pub fn ruleset(ns: &Netns) -> Result<String, NftError> {
    nft(ns, &["list", "ruleset"], None)
}

/// What a named counter has counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// The named counter `name` of table `family table` in `ns`
/// (`nft -j list counter`).
pub fn counter(ns: &Netns, family: &str, table: &str, name: &str) -> Result<Counter, NftError> {
    let args = ["-j", "list", "counter", family, table, name];
    let text = nft(ns, &args, None)?;
    let bad = |why: &str| NftError::Output {
        command: format!("nft {}", args.join(" ")),
        why: format!("{why}: {text}"),
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad("not JSON"))?;
    let found = json["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|item| item.get("counter"))
        .ok_or_else(|| bad("no counter object"))?;
    let field = |key: &str| found[key].as_u64().ok_or_else(|| bad(key));
    Ok(Counter {
        packets: field("packets")?,
        bytes: field("bytes")?,
    })
}

const CONF: &str = "/proc/sys/net/ipv4/conf";

/// Sets `net.ipv4.conf.*.rp_filter` to `value` (0 off, 1 strict, 2 loose)
/// for `all`, `default` and every interface that exists in `ns` now.
/// Interfaces created later take `default`'s value, but the daemon's
/// devices may be created by means that do not: call it again once they
/// exist.
pub fn set_rp_filter(ns: &Netns, value: u8) -> Result<(), NftError> {
    ns.run(|| -> Result<(), NftError> {
        for name in conf_entries()? {
            let path = Path::new(CONF).join(&name).join("rp_filter");
            std::fs::write(&path, format!("{value}\n")).map_err(|source| NftError::Sysctl {
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(())
    })?
}

/// `rp_filter` of `all`, `default` and every interface of `ns`, by name.
pub fn rp_filter(ns: &Netns) -> Result<Vec<(String, u8)>, NftError> {
    ns.run(|| -> Result<Vec<(String, u8)>, NftError> {
        let mut out = Vec::new();
        for name in conf_entries()? {
            let path = Path::new(CONF).join(&name).join("rp_filter");
            let text = std::fs::read_to_string(&path).map_err(|source| NftError::Sysctl {
                path: path.display().to_string(),
                source,
            })?;
            let value = text.trim().parse().map_err(|_| NftError::Output {
                command: format!("reading {}", path.display()),
                why: format!("not a number: {text:?}"),
            })?;
            out.push((name, value));
        }
        Ok(out)
    })?
}

/// Packets the reverse-path filter of `ns` has dropped since the namespace
/// was made (`IPReversePathFilter` of `TcpExt` in /proc/net/netstat, as
/// `nstat` shows it).
pub fn rp_filter_drops(ns: &Netns) -> Result<u64, NftError> {
    // /proc/self/net is the main thread's namespace; this thread's is
    // under thread-self.
    const NETSTAT: &str = "/proc/thread-self/net/netstat";
    let text = ns
        .run(|| std::fs::read_to_string(NETSTAT))?
        .map_err(|source| NftError::Sysctl {
            path: NETSTAT.to_owned(),
            source,
        })?;
    let mut tcp_ext = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (tcp_ext.next(), tcp_ext.next());
    names
        .zip(values)
        .and_then(|(names, values)| {
            names
                .split_whitespace()
                .zip(values.split_whitespace())
                .find(|(name, _)| *name == "IPReversePathFilter")
                .and_then(|(_, value)| value.parse().ok())
        })
        .ok_or_else(|| NftError::Output {
            command: format!("reading {NETSTAT}"),
            why: "no TcpExt IPReversePathFilter".to_owned(),
        })
}

/// The entries of /proc/sys/net/ipv4/conf as the calling thread's
/// namespace sees them: `all`, `default` and one per interface.
fn conf_entries() -> Result<Vec<String>, NftError> {
    let dir = std::fs::read_dir(CONF).map_err(|source| NftError::Sysctl {
        path: CONF.to_owned(),
        source,
    })?;
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}
