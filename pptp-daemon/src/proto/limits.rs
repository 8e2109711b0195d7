//! The concentrator's bounds on what peers may hold: the core's own policy
//! type, which the configuration maps onto once at start and on reload.

use std::time::Duration;

/// What to do when a user already has [`Limits::sessions_per_user`]
/// sessions and authenticates once more (accel-ppp's `single-session`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UserLimitPolicy {
    /// Refuse the new session.
    #[default]
    Deny,
    /// End the user's oldest session and accept the new one.
    Replace,
}

/// Every bound the concentrator enforces. Zero means "no limit" only where
/// a field says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Sessions (calls) on the whole server.
    pub max_sessions: u32,
    /// Calls one control connection may carry at once.
    pub calls_per_connection: u32,
    /// Control connections one source address may hold at once.
    pub connections_per_source: u32,
    /// Control connections and calls not yet up (no network phase yet)
    /// across the server: accel-ppp's `max-starting`.
    pub max_starting: u32,
    /// New control connections one source may open per second (a token
    /// bucket refilled at this rate).
    pub connection_rate_per_source: u32,
    /// Burst size of that bucket.
    pub connection_burst_per_source: u32,
    /// Sessions one user name may hold at once; 0 means no limit.
    pub sessions_per_user: u32,
    /// What a session beyond [`Limits::sessions_per_user`] gets.
    pub over_user_limit: UserLimitPolicy,
    /// Authentication attempts per session, across LCP renegotiations.
    pub auth_attempts: u32,
    /// How long a control connection may take from accept to its first
    /// call, and a call from Outgoing-Call-Request to the network phase.
    pub setup_timeout: Duration,
    /// How long one write to a peer may wait for the peer to read.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
            calls_per_connection: 16,
            connections_per_source: 64,
            max_starting: 512,
            connection_rate_per_source: 20,
            connection_burst_per_source: 40,
            sessions_per_user: 4,
            over_user_limit: UserLimitPolicy::Deny,
            auth_attempts: 3,
            setup_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
        }
    }
}
