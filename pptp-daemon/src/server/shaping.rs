//! Per-session rate limits on a live daemon: the XDP map fields of a
//! session's limit, and [`Shared::set_rate`], which changes the limit of a
//! session whose network is up on both data paths (the CoA-Request of
//! [`super::dae`] and the control socket call it).

use pptp_common::maps::Session as KernelSession;

use crate::proto::concentrator::SessionId;
pub use crate::proto::shaping::{RateLimit, Shaper};

use super::Shared;

/// Why [`Shared::set_rate`] changed nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SetRateError {
    #[error("no such session")]
    NoSession,
    #[error("the session's network is not up yet")]
    NotUp,
    #[error("updating the XDP maps: {0}")]
    Xdp(String),
}

/// A direction's rate as the XDP map holds it: kbit/s, 0 for none.
fn map_kbps(bps: u64) -> u32 {
    if bps == 0 { 0 } else { RateLimit::kbps(bps) }
}

/// Writes `rate` into a session's XDP map entry; its buckets start full.
pub fn set_kernel_rate(kernel: &mut KernelSession, rate: RateLimit, burst_ns: u32) {
    kernel.rate_up_kbps = map_kbps(rate.up_bps);
    kernel.rate_down_kbps = map_kbps(rate.down_bps);
    kernel.rate_burst_ns = burst_ns;
    kernel.rate_tat = 0;
}

impl Shared {
    /// Changes the rate limit of a live session, at once, on the path it
    /// is on: the userspace shaper, and the XDP map entries when the
    /// session is installed there (both buckets start full).
    pub fn set_rate(&self, session: SessionId, rate: RateLimit) -> Result<(), SetRateError> {
        let call = self
            .calls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session.call_id())
            .filter(|c| c.session == session)
            .cloned()
            .ok_or(SetRateError::NoSession)?;
        let data = call.data().ok_or(SetRateError::NotUp)?;
        data.shaper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_limit(rate);
        if data.xdp
            && let Some(xdp) = &self.xdp
        {
            xdp.lock()
                .unwrap_or_else(|e| e.into_inner())
                .set_rate(
                    call.peer.octets(),
                    call.call_id,
                    data.client.octets(),
                    |k| set_kernel_rate(k, rate, self.live().config.shaping.burst_ns()),
                )
                .map_err(|e| SetRateError::Xdp(e.to_string()))?;
        }
        tracing::info!(peer = %call.peer, call_id = call.call_id, %rate, "rate limit changed");
        Ok(())
    }

    /// The rate limit of a live session, if its network is up.
    pub fn rate(&self, session: SessionId) -> Option<RateLimit> {
        let call = self
            .calls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session.call_id())
            .filter(|c| c.session == session)
            .cloned()?;
        let data = call.data()?;
        let limit = data
            .shaper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .limit();
        Some(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_fields_are_kbit_and_zero_for_none() {
        let mut k = KernelSession {
            rate_tat: 77,
            ..KernelSession::default()
        };
        set_kernel_rate(
            &mut k,
            RateLimit {
                up_bps: 4_000_000,
                down_bps: 0,
            },
            100_000_000,
        );
        assert_eq!(
            (
                k.rate_up_kbps,
                k.rate_down_kbps,
                k.rate_burst_ns,
                k.rate_tat
            ),
            (4000, 0, 100_000_000, 0)
        );
    }
}
