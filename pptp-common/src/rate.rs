//! The per-session rate limit shared by the XDP program and the daemon's
//! userspace data path: a token bucket in its GCRA form (the ATM Forum's
//! Generic Cell Rate Algorithm, virtual scheduling variant, as in RFC 2697's
//! and ITU-T I.371's policers).
//!
//! Instead of a token count and a refill time, a bucket keeps one number,
//! the theoretical arrival time (`tat`, nanoseconds on a monotonic clock):
//! when the flow, sent at exactly the rate, would have sent its last byte.
//! A packet of `cost` nanoseconds (its length at the rate) conforms when
//! `max(tat, now) <= now + tolerance`; it then moves `tat` to
//! `max(tat, now) + cost`. A bucket idle long enough is full (`tat` in the
//! past), and `tolerance` is the burst (tolerance x rate bytes pass back to
//! back). One number makes the update a single compare-and-swap, which
//! several CPUs can run on the same bucket.
//!
//! Packets over the rate are dropped (policing, as accel-ppp's and
//! MikroTik's ingress policers do), never queued.

/// Nanoseconds a packet of `len` bytes takes at `rate_kbps` kbit/s (1000
/// bits per second each); 0 when the rate is 0 (no limit).
#[inline(always)]
pub const fn cost_ns(len: u64, rate_kbps: u32) -> u64 {
    if rate_kbps == 0 {
        return 0;
    }
    // len * 8 bits / (rate_kbps * 1000 bit/s) in ns; at most
    // 65535 * 8e6 < 2^40, no overflow.
    len * 8_000_000 / rate_kbps as u64
}

/// The GCRA decision for a packet of `cost` ns at time `now` on a bucket
/// whose theoretical arrival time is `tat`, with a burst of `tolerance` ns:
/// the new `tat` when the packet conforms, `None` when it is over the rate
/// (and must be dropped, leaving `tat` unchanged).
#[inline(always)]
pub const fn admit(tat: u64, now: u64, cost: u64, tolerance: u64) -> Option<u64> {
    let start = if tat > now { tat } else { now };
    if start - now > tolerance {
        None
    } else {
        Some(start + cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn cost_is_the_time_on_the_wire_at_the_rate() {
        // 1500 bytes at 4 Mbit/s: 3 ms.
        assert_eq!(cost_ns(1500, 4000), 3 * MS);
        // 125 bytes at 1 kbit/s: 1 s.
        assert_eq!(cost_ns(125, 1), 1_000 * MS);
        assert_eq!(cost_ns(1500, 0), 0);
    }

    #[test]
    fn a_burst_of_the_tolerance_passes_then_the_rate_holds() {
        let cost = 3 * MS;
        let tolerance = 10 * MS;
        let now = 1_000 * MS;
        // An idle bucket (tat in the past) takes packets back to back
        // until tat runs tolerance ahead of now: 1 + 10/3 = 4 packets.
        let mut tat = 0;
        let mut passed = 0;
        while let Some(next) = admit(tat, now, cost, tolerance) {
            tat = next;
            passed += 1;
        }
        assert_eq!(passed, 4);
        assert_eq!(tat, now + 12 * MS);
        // Refused packets leave tat alone; 3 ms later exactly one more fits.
        assert_eq!(admit(tat, now, cost, tolerance), None);
        let later = now + 3 * MS;
        tat = admit(tat, later, cost, tolerance).expect("one packet's worth refilled");
        assert_eq!(admit(tat, later, cost, tolerance), None);
    }

    #[test]
    fn a_zero_tolerance_spaces_packets_exactly() {
        let cost = 5;
        let tat = admit(0, 100, cost, 0).unwrap();
        assert_eq!(tat, 105);
        assert_eq!(admit(tat, 104, cost, 0), None);
        assert_eq!(admit(tat, 105, cost, 0), Some(110));
    }
}
