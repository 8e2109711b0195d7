//! Why a session ended: one typed reason for every way a call can end,
//! counted per reason by the concentrator and mapped to RADIUS
//! Acct-Terminate-Cause (RFC 2866 section 5.10).

use std::fmt;

/// Why a session (one PPTP call and its PPP link) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndReason {
    /// The peer sent Call-Clear-Request (RFC 2637 section 2.12).
    CallCleared,
    /// The peer sent Stop-Control-Connection-Request (RFC 2637 section 2.3).
    ControlStopped,
    /// The peer closed TCP (pptp-linux does after Call-Clear-Request).
    ControlClosed,
    /// The control connection's Echo-Requests went unanswered (RFC 2637 section 2.5).
    ControlEchoTimeout,
    /// The peer did not read what we wrote within the write time limit.
    WriteTimeout,
    /// The control connection carried bytes that cannot be parsed.
    ControlMalformed,
    /// The peer sent LCP Terminate-Request (RFC 1661 section 5.5).
    PeerTerminate,
    /// LCP Echo-Requests went unanswered.
    KeepaliveLost,
    /// Authentication failed for good (attempts exhausted, rejected).
    AuthFailed,
    /// LCP, IPCP or CCP did not converge, or a required option was refused.
    NegotiationFailed,
    /// A phase (control setup, call setup, PPP negotiation) took too long.
    SetupTimeout,
    /// No address could be assigned (pool exhausted, address not allowed).
    NoAddress,
    /// Another session of the same user replaced this one (`single-session = "replace"`).
    Replaced,
    /// An operator ended it (control socket, RADIUS Disconnect-Request).
    AdminReset,
    /// The session reached its time limit.
    SessionTimeout,
    /// The session was idle too long.
    IdleTimeout,
    /// The daemon is shutting down.
    Shutdown,
    /// The session's task ended without a reason (a panic, a bug).
    TaskFailed,
    /// Stateless MPPE lost its key chain: the peer's frames no longer
    /// decrypt (it sent 4096 or more in a row that never arrived, so the
    /// 12-bit coherency count wrapped; RFC 3078 has no way back). pppd ends
    /// the link the same way ("lost compression sync").
    MppeSyncLost,
}

impl EndReason {
    /// Every reason, for counters.
    pub const ALL: [EndReason; 19] = [
        EndReason::CallCleared,
        EndReason::ControlStopped,
        EndReason::ControlClosed,
        EndReason::ControlEchoTimeout,
        EndReason::WriteTimeout,
        EndReason::ControlMalformed,
        EndReason::PeerTerminate,
        EndReason::KeepaliveLost,
        EndReason::AuthFailed,
        EndReason::NegotiationFailed,
        EndReason::SetupTimeout,
        EndReason::NoAddress,
        EndReason::Replaced,
        EndReason::AdminReset,
        EndReason::SessionTimeout,
        EndReason::IdleTimeout,
        EndReason::Shutdown,
        EndReason::TaskFailed,
        EndReason::MppeSyncLost,
    ];

    /// A stable snake_case name for counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            EndReason::CallCleared => "call_cleared",
            EndReason::ControlStopped => "control_stopped",
            EndReason::ControlClosed => "control_closed",
            EndReason::ControlEchoTimeout => "control_echo_timeout",
            EndReason::WriteTimeout => "write_timeout",
            EndReason::ControlMalformed => "control_malformed",
            EndReason::PeerTerminate => "peer_terminate",
            EndReason::KeepaliveLost => "keepalive_lost",
            EndReason::AuthFailed => "auth_failed",
            EndReason::NegotiationFailed => "negotiation_failed",
            EndReason::SetupTimeout => "setup_timeout",
            EndReason::NoAddress => "no_address",
            EndReason::Replaced => "replaced",
            EndReason::AdminReset => "admin_reset",
            EndReason::SessionTimeout => "session_timeout",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::Shutdown => "shutdown",
            EndReason::TaskFailed => "task_failed",
            EndReason::MppeSyncLost => "mppe_sync_lost",
        }
    }

    /// Index into [`EndReason::ALL`].
    pub fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|r| *r == self)
            .expect("ALL lists every reason")
    }

    /// RADIUS Acct-Terminate-Cause (RFC 2866 section 5.10).
    pub fn acct_terminate_cause(self) -> u32 {
        match self {
            // User Request: the user ended the session.
            EndReason::CallCleared | EndReason::ControlStopped | EndReason::PeerTerminate => 1,
            // Lost Carrier: the link went away under us.
            EndReason::ControlClosed
            | EndReason::ControlEchoTimeout
            | EndReason::WriteTimeout
            | EndReason::KeepaliveLost => 2,
            EndReason::IdleTimeout => 4,
            EndReason::SessionTimeout => 5,
            EndReason::AdminReset => 6,
            // Port Preempted: another session of the user took its place.
            EndReason::Replaced => 7,
            // Port Error: the link's encryption lost step.
            EndReason::MppeSyncLost => 8,
            // NAS Error.
            EndReason::TaskFailed => 9,
            // NAS Request: the NAS ended it for its own reasons.
            EndReason::SetupTimeout | EndReason::NoAddress => 10,
            // NAS Reboot.
            EndReason::Shutdown => 11,
            // Service Unavailable: negotiation could not agree on a service.
            EndReason::NegotiationFailed | EndReason::ControlMalformed => 15,
            // User Error: bad credentials.
            EndReason::AuthFailed => 17,
        }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexes_match() {
        let mut names: Vec<_> = EndReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EndReason::ALL.len());
        for (i, r) in EndReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn terminate_causes_follow_rfc_2866() {
        assert_eq!(EndReason::CallCleared.acct_terminate_cause(), 1);
        assert_eq!(EndReason::KeepaliveLost.acct_terminate_cause(), 2);
        assert_eq!(EndReason::AdminReset.acct_terminate_cause(), 6);
        assert_eq!(EndReason::Shutdown.acct_terminate_cause(), 11);
    }
}
