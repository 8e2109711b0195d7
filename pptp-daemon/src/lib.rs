//! pptp-xdp: a PPTP VPN concentrator whose data plane runs in XDP.
//!
//! The binary (`src/main.rs`) is a thin shell over this library, so tests,
//! benchmarks and fuzz targets reach every part directly:
//!
//! - [`config`]: the TOML configuration with its embedded default;
//! - [`dataplane`]: the XDP program's loader and map access;
//! - [`netns`]: network namespaces and veth pairs for tests, the lab and the bench;
//! - [`lab`]: the three-namespace topology of the end-to-end tests, the lab and the bench;
//! - [`radius_lab`]: a real FreeRADIUS for the tests;
//! - [`wire`]: codecs of every message of a session;
//! - [`proto`]: the sans-IO state machines (PPP automaton, LCP, IPCP, CCP, control connection, calls);
//! - [`auth`]: CHAP, MS-CHAPv1/v2 and PAP engines and the secrets back end;
//! - [`mppe`]: MPPE keys and cipher;
//! - [`server`]: the tokio glue that runs the daemon;
//! - [`client`]: our own PPTP client (tests, lab, bench).

pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod dataplane;
pub mod lab;
pub mod logsafe;
pub mod mppe;
pub mod netns;
pub mod proto;
pub mod radius_lab;
pub mod server;
pub mod wire;
