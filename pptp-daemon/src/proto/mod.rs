//! Sans-IO protocol state machines: inputs through `handle_*(.., now)`,
//! outputs through `poll_transmit`, `poll_timeout` and `poll_event`. No
//! module here reads the clock, sleeps or touches a socket.
//!
//! - [`fsm`]: the generic RFC 1661 option-negotiation automaton;
//! - [`lcp`], [`ipcp`], [`ccp`]: the three protocols it runs;
//! - [`session`]: PPP phases of one call (Establish, Authenticate, Network, Terminate);
//! - [`control`]: the PPTP control connection (RFC 2637 section 3);
//! - [`call`]: one PPTP call's GRE sequence/acknowledgment state (RFC 2637 section 4.4);
//! - [`end`]: typed reasons a session ends;
//! - [`limits`]: the bounds the concentrator enforces;
//! - [`pool`]: client address pools;
//! - [`rate_window`]: events per second over a sliding minute.

pub mod call;
pub mod ccp;
pub mod concentrator;
pub mod control;
pub mod end;
pub mod fsm;
pub mod ipcp;
pub mod lcp;
pub mod limits;
pub mod pool;
pub mod rate_window;
pub mod session;
#[cfg(test)]
mod test_support;
