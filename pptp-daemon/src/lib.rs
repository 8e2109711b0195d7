//! pptp-xdp: a PPTP VPN concentrator whose data plane runs in XDP.
//!
//! The binary (`src/main.rs`) is a thin shell over this library, so tests,
//! benchmarks and fuzz targets reach every part directly:
//!
//! - [`config`]: the TOML configuration with its embedded default;
//! - [`dataplane`]: the XDP program's loader and map access;
//! - [`wire`]: codecs of every message of a session;
//! - [`proto`]: the sans-IO state machines (PPP automaton, LCP, IPCP, CCP, control connection, calls);
//! - [`auth`]: CHAP, MS-CHAPv1/v2 and PAP engines and the secrets back end;
//! - [`mppe`]: MPPE keys and cipher;
//! - [`server`]: the tokio glue that runs the daemon;
//! - [`ctl_cli`]: `pptp-daemon ctl`, the operator's commands to a running daemon;
//! - [`client`]: our own PPTP client (`pptp-daemon client`; the tests, lab
//!   and bench of the `pptp-lab` crate drive it).
//!
//! Network namespaces, the lab topology, the bench and the load generator
//! live outside the production binary, in the `pptp-netns` and `pptp-lab`
//! crates.

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod ctl_cli;
pub mod dataplane;
pub mod logsafe;
pub mod mppe;
pub mod proto;
pub mod server;
pub mod wire;
