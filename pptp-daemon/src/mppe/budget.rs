//! The rekey budget of an MPPE receiver (issue 14).
//!
//! A stateless receiver changes its key once for every count a packet's
//! coherency count advanced (RFC 3078 section 8.1): one SHA-1 and one RC4
//! key schedule each, about 1.1 µs. Counts are 12 bits and a packet up to
//! 2047 counts ahead is taken as new, so a single forged packet (MPPE has no
//! integrity check: anyone who can spoof the peer's address can send one)
//! costs 2047 key changes, 2.3 ms, before the receiver can tell it is
//! garbage; a thousand a second fill a core.
//!
//! Each receiver therefore has a budget of key changes beyond the first of
//! every packet (which costs what any packet costs): a token bucket of
//! [`REKEY_BURST`] key changes refilled at [`REKEY_RATE`] a second, kept in
//! the GCRA form of [`pptp_common::rate`]. A packet whose extra key changes
//! do not fit is dropped before any key change and counted
//! ([`RekeyBudget::dropped`]). Legitimate loss never comes near it: a lost
//! packet costs one extra key change, so the budget absorbs a burst of 4096
//! lost packets and a sustained loss of 2048 packets a second (20 % of a
//! session at 10,000 packets a second); the count's wrap at 4096 and the
//! FLUSHED bit cost nothing extra. A packet dropped for want of budget only
//! delays the next one: the budget refills, and the burst holds the largest
//! jump (2047) twice over. A flood of maximal jumps is cut to [`REKEY_RATE`]
//! extra key changes a second, about 2.3 ms of CPU a second per session
//! (one maximal jump a second).
//!
//!
//! A real sender does not stop while its receiver refuses: every packet
//! refused for want of budget leaves the receiver one count further
//! behind, and a receiver 2048 counts behind takes the sender's packets
//! for late ones, and 4096 behind, decrypts them with the wrong key for
//! good (the count wrapped under it). An overloaded queue in front of the
//! receiver, dropping most packets, empties the budget that way. So for a
//! stateless receiver's packets that the GRE sequence numbers place in the
//! peer's sequence ([`RekeyBudget::take_catching_up`]; a spoofer who does
//! not see the traffic cannot guess them, and gets the strict budget):
//! - a packet up to [`FREE_EXTRA`] extra key changes ahead never touches
//!   the budget: loss runs of up to 15 packets, however often, cost only
//!   their key changes, as they do in XDP, which takes jumps of up to 8
//!   with no budget at all;
//! - a packet over the budget is taken anyway, catching up, when its extra
//!   key changes are at most [`CATCH_UP_PER_REFUSED`] for each packet
//!   refused in a row before it: a receiver that fell behind by a long
//!   loss run catches up after a third of the run in refused packets.
//!
//! A flood of forged jumps then costs at most 16 key changes per packet
//! received (about 18 µs), and a maximal jump is taken once per 512
//! refused ones. A stateful receiver asks for a reset instead (RFC 3078
//! section 7.2) and keeps the strict budget.
//!
//! Sans-IO: the caller passes the time in ([`RekeyBudget::advance_clock`]).

use std::time::Instant;

use pptp_common::{rate::admit, serial::seq_gt};

/// Extra key changes a receiver may make per second, sustained.
pub const REKEY_RATE: u64 = 2048;

/// Extra key changes a receiver may make at once (two maximal jumps).
pub const REKEY_BURST: u64 = 4096;

/// The time one extra key change takes off the budget, in nanoseconds.
const REKEY_COST_NS: u64 = 1_000_000_000 / REKEY_RATE;

/// Catching up (stateless): a packet over the budget is taken anyway when
/// its extra key changes are at most this many per packet refused in a row
/// before it.
pub const CATCH_UP_PER_REFUSED: u64 = 4;

/// Extra key changes a stateless packet may always need, budget or not.
pub const FREE_EXTRA: u64 = 15;

/// A token bucket of key changes, refilled with the time passed in.
#[derive(Clone, Debug, Default)]
pub struct RekeyBudget {
    /// The first time passed in; times are kept as nanoseconds since.
    epoch: Option<Instant>,
    /// The latest time passed in, in nanoseconds since `epoch`.
    now_ns: u64,
    /// The GCRA theoretical arrival time of the bucket.
    tat: u64,
    /// Packets dropped for want of budget.
    dropped: u64,
    /// Packets refused since the last one taken.
    refused_in_a_row: u64,
    /// The GRE sequence number of the frame of the last evidenced jump
    /// taken beyond the budget (see [`RekeyBudget::take_evidenced`]).
    evidenced_to: Option<u32>,
}

impl RekeyBudget {
    /// A full budget.
    pub fn new() -> Self {
        Self::default()
    }

    /// The time of the packets that follow: the budget refills with the
    /// time passed since the last call. Earlier times are ignored.
    pub fn advance_clock(&mut self, now: Instant) {
        let epoch = *self.epoch.get_or_insert(now);
        let ns = u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX);
        self.now_ns = self.now_ns.max(ns);
    }

    /// Takes `extra` key changes from the budget if they fit, and otherwise
    /// counts a dropped packet and leaves the budget alone.
    pub fn take(&mut self, extra: u16) -> bool {
        self.take_or(extra, false)
    }

    /// [`Self::take`], or, over the budget, takes the packet anyway when it
    /// catches up after packets refused in a row (see the module
    /// documentation).
    pub fn take_catching_up(&mut self, extra: u16) -> bool {
        self.take_or(extra, true)
    }

    fn take_or(&mut self, extra: u16, catch_up: bool) -> bool {
        let extra = u64::from(extra);
        let admitted = extra == 0
            || (extra <= REKEY_BURST
                && match admit(
                    self.tat,
                    self.now_ns,
                    extra * REKEY_COST_NS,
                    (REKEY_BURST - extra) * REKEY_COST_NS,
                ) {
                    Some(tat) => {
                        self.tat = tat;
                        true
                    }
                    None => false,
                })
            || (catch_up
                && (extra <= FREE_EXTRA || extra <= self.refused_in_a_row * CATCH_UP_PER_REFUSED));
        if admitted {
            self.refused_in_a_row = 0;
        } else {
            self.dropped += 1;
            self.refused_in_a_row += 1;
        }
        admitted
    }

    /// For a jump evidenced by sequence numbers (the frame's is `seq`, the
    /// newest one accepted `newest`): takes `extra` key changes from the
    /// budget if they fit, and otherwise takes the jump anyway unless an
    /// earlier jump beyond the budget was taken for a frame that `newest`
    /// has not reached yet. A jump refused here is not counted as dropped:
    /// the packet goes on to be judged by its count alone.
    ///
    /// So a receiver that fell behind by any number of counts (up to the
    /// evidence's bound) catches up at the first frame it sees, and again at
    /// every later one once the peer's frames are accepted, however long an
    /// overload lasts; and a frame that forges the evidence (which needs
    /// the sequence numbers: an on-path attacker) and decrypts to garbage,
    /// so that `newest` does not move, buys at most one such jump until the
    /// peer itself has sent that many frames: the key changes beyond the
    /// budget never outnumber the frames the peer sent.
    pub fn take_evidenced(&mut self, extra: u64, newest: u32, seq: u32) -> bool {
        let fits = extra <= REKEY_BURST
            && admit(
                self.tat,
                self.now_ns,
                extra * REKEY_COST_NS,
                (REKEY_BURST - extra) * REKEY_COST_NS,
            )
            .map(|tat| self.tat = tat)
            .is_some();
        if fits {
            return true;
        }
        let due = self.evidenced_to.is_none_or(|to| !seq_gt(to, newest));
        if due {
            self.evidenced_to = Some(seq);
        }
        due
    }

    /// The extra key changes available now.
    pub fn available(&self) -> u64 {
        let used = self.tat.saturating_sub(self.now_ns) / REKEY_COST_NS;
        REKEY_BURST.saturating_sub(used)
    }

    /// Packets dropped so far for want of budget.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_full_budget_takes_the_burst_then_refuses() {
        let mut b = RekeyBudget::new();
        b.advance_clock(Instant::now());
        assert_eq!(b.available(), REKEY_BURST);
        assert!(b.take(0), "the first key change of a packet is free");
        assert!(b.take(2046));
        assert!(b.take(2046));
        assert_eq!(b.available(), 4);
        assert!(!b.take(5));
        assert_eq!(b.dropped(), 1);
        assert!(b.take(4));
        assert!(!b.take(1));
        assert_eq!(b.dropped(), 2);
        // Never more than the burst at once.
        let mut b = RekeyBudget::new();
        assert!(!b.take(u16::MAX));
        assert_eq!(b.available(), REKEY_BURST);
    }

    #[test]
    fn catching_up_takes_a_jump_after_a_quarter_of_it_in_refused_packets() {
        let mut b = RekeyBudget::new();
        b.advance_clock(Instant::now());
        assert!(b.take(4096));
        // Empty: a jump of 100 extra key changes is refused until 25
        // packets were refused in a row.
        for _ in 0..25 {
            assert!(!b.take_catching_up(100));
        }
        assert!(b.take_catching_up(100), "after 25 refused: 4 × 25 = 100");
        assert_eq!(b.dropped(), 25);
        // Taking it starts the count again; the strict form never catches
        // up; a small jump is always taken.
        assert!(!b.take_catching_up(20));
        for _ in 0..100 {
            assert!(!b.take(20));
        }
        assert!(b.take_catching_up(20), "101 refused in a row");
        assert!(b.take_catching_up(15) && b.take_catching_up(15), "free");
        assert!(!b.take(15), "the strict budget has nothing free");
    }

    #[test]
    fn evidenced_jumps_beyond_the_budget_wait_for_the_peer_to_pass_the_last_one() {
        let t = Instant::now();
        let mut b = RekeyBudget::new();
        b.advance_clock(t);
        assert!(b.take_evidenced(4000, 100, 4101), "within the burst");
        assert!(
            b.take_evidenced(9000, 4101, 13_102),
            "beyond it: the first one"
        );
        // Frames that claim the same or other evidence before the newest
        // accepted reaches 13,102 (forged ones decrypt to garbage, so it
        // does not move): refused, however much time passes.
        assert!(!b.take_evidenced(9000, 4101, 13_102));
        assert!(
            !b.take_evidenced(200, 4101, 4302),
            "the budget is empty too"
        );
        b.advance_clock(t + Duration::from_secs(5));
        assert!(!b.take_evidenced(9000, 13_101, 22_102));
        // The peer's frame at 13,102 was accepted: the next one is due, at
        // once, and across the wrap of the sequence numbers.
        assert!(b.take_evidenced(9000, 13_102, 22_103));
        assert!(b.take_evidenced(9000, 22_103, 31_104));
        let mut b = RekeyBudget::new();
        b.advance_clock(t);
        assert!(b.take(4096));
        assert!(b.take_evidenced(9000, u32::MAX - 10, 8989));
        assert!(!b.take_evidenced(9000, u32::MAX - 10, 8989));
        assert!(b.take_evidenced(9000, 8989, 17_990));
        assert_eq!(b.dropped(), 0);
    }

    #[test]
    fn the_budget_refills_with_time_up_to_the_burst() {
        let t = Instant::now();
        let mut b = RekeyBudget::new();
        b.advance_clock(t);
        assert!(b.take(4096));
        assert_eq!(b.available(), 0);
        // Two seconds: 4096 key changes back.
        b.advance_clock(t + Duration::from_secs(2));
        assert_eq!(b.available(), 4096);
        assert!(b.take(2046));
        // An earlier time changes nothing.
        b.advance_clock(t);
        assert_eq!(b.available(), 4096 - 2046);
        // A long idle time refills no more than the burst.
        b.advance_clock(t + Duration::from_secs(3600));
        assert_eq!(b.available(), REKEY_BURST);
    }
}
