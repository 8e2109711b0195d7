//! pptp-xdp: a PPTP VPN concentrator whose data plane runs in XDP.
//!
//! The binary (`src/main.rs`) is a thin shell over this library, so tests,
//! benchmarks and fuzz targets reach every part directly:
//!
//! - [`config`]: the TOML configuration with its embedded default;
//! - [`dataplane`]: the XDP program's loader and map access;
//! - [`netns`]: network namespaces and veth pairs for tests, the lab and the bench;
//! - [`server`]: the tokio glue that runs the daemon.

pub mod cli;
pub mod config;
pub mod dataplane;
pub mod netns;
pub mod server;
