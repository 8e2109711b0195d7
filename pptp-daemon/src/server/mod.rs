//! The tokio glue that runs the daemon: the data plane (XDP when configured,
//! the TUN device and the raw GRE socket always), the control listener, one
//! task per control connection ([`control`]) and per call ([`session`]), the
//! local control socket ([`ctl`]), and clean shutdown on SIGINT/SIGTERM.
//!
//! - [`registry`]: what the tasks share (calls, clients, counters);
//! - [`datapath`]: the userspace data path (GRE socket and TUN device);
//! - [`reload`]: a new configuration without dropping a session;
//! - [`listener`]: start-up, the accept loop and shutdown (hard, or soft:
//!   stop accepting and wait for the sessions to end);
//! - [`ops`]: the answers to `pptp-daemon ctl` ([`ctl`], [`ctl_view`]).
//!
//! The protocol logic lives in the sans-IO cores (`crate::proto`,
//! `crate::auth`); the tasks here only move bytes and timers in and out.

pub mod accounting;
pub mod control;
pub mod ctl;
pub mod ctl_view;
pub mod dae;
pub mod datapath;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod radius_check;
pub mod registry;
pub mod reload;
pub mod scripts;
pub mod session;
pub mod shaping;

use crate::cli::LogLevel;

pub use datapath::send_control;
pub use listener::run;
pub use ops::reload;
pub use registry::{Call, CallInput, Counters, DataState, Shared, Stats};

/// Sets up the log as text lines: see [`logging::init`] (which also
/// takes the format, and whose level [`logging::set_level`] changes).
pub fn init_tracing(level: LogLevel) {
    logging::init(level, crate::config::LogFormat::Text);
}
