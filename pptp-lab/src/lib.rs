//! The lab of pptp-xdp, outside the production daemon: the three-namespace
//! topology with the real `pptp-daemon` binary and our client in it, the
//! bench and the load generator, and the XDP programs only they use.
//!
//! - [`lab`]: the topology of the end-to-end tests, `pptp-lab lab` and the bench;
//! - [`bench`]: `pptp-lab bench` and `pptp-lab loadgen`;
//! - [`xdp`]: the lab's own XDP object (pass, sink, routing ceiling);
//! - [`radius_lab`]: a real FreeRADIUS for the tests, configured and started by them;
//! - [`postgres`]: a real PostgreSQL for the tests (the database of FreeRADIUS's sqlippool);
//! - [`cli`]: the command line of the `pptp-lab` binary.
//!
//! Namespaces and veth pairs come from `pptp-netns`; the daemon's client,
//! control socket and data-path types from the `pptp-daemon` library.

pub mod bench;
pub mod cli;
pub mod lab;
pub mod nft;
pub mod postgres;
pub mod radius_lab;
pub mod xdp;

use std::path::{Path, PathBuf};

/// The `pptp-daemon` binary the lab runs (as the daemon and as the client):
/// `explicit` when given, else the one next to the running executable
/// (cargo puts both in the same target folder).
pub fn daemon_binary(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let me = std::env::current_exe().map_err(|e| format!("locating this binary: {e}"))?;
    let sibling = me.with_file_name("pptp-daemon");
    if sibling.is_file() {
        Ok(sibling)
    } else {
        Err(format!(
            "no pptp-daemon next to {}: build it (`cargo build -p pptp-daemon`) or pass --daemon PATH",
            me.display()
        ))
    }
}
