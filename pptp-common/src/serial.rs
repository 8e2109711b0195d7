//! Serial-number arithmetic on 32-bit GRE sequence and acknowledgment
//! numbers (RFC 1982 section 3.2 with `SERIAL_BITS = 32`; RFC 2637 section
//! 4.4 numbers GRE packets this way, wrapping from `u32::MAX` to 0).
//!
//! `a` is less than `b` when `b` is less than 2^31 ahead of it, modulo 2^32.
//! Two numbers exactly 2^31 apart are not ordered: RFC 1982 leaves the
//! comparison undefined there, and these functions say neither "before" nor
//! "after". One definition shared by the daemon and the XDP program, so the
//! kernel and userspace agree on which frame is newer.

use core::cmp::Ordering;

/// Half the sequence space: serial order is undefined at this distance.
pub const HALF: u32 = 1 << 31;

/// Compares two sequence numbers in serial-number arithmetic (RFC 1982
/// section 3.2): `None` when they are exactly 2^31 apart.
#[inline]
pub fn seq_cmp(a: u32, b: u32) -> Option<Ordering> {
    match b.wrapping_sub(a) {
        0 => Some(Ordering::Equal),
        HALF => None,
        d if d < HALF => Some(Ordering::Less),
        _ => Some(Ordering::Greater),
    }
}

/// `a` comes before `b` (RFC 1982 section 3.2).
#[inline]
pub fn seq_lt(a: u32, b: u32) -> bool {
    // Same as `seq_cmp(a, b) == Some(Less)`, written without `Option` so
    // the BPF verifier sees two integer comparisons.
    let d = b.wrapping_sub(a);
    d != 0 && d < HALF
}

/// `a` comes after `b` (RFC 1982 section 3.2).
#[inline]
pub fn seq_gt(a: u32, b: u32) -> bool {
    seq_lt(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_order() {
        assert_eq!(seq_cmp(1, 2), Some(Ordering::Less));
        assert_eq!(seq_cmp(2, 1), Some(Ordering::Greater));
        assert_eq!(seq_cmp(5, 5), Some(Ordering::Equal));
        assert!(seq_lt(1, 2) && !seq_lt(2, 1) && !seq_lt(5, 5));
        assert!(seq_gt(2, 1) && !seq_gt(1, 2) && !seq_gt(5, 5));
        assert!(seq_lt(0, HALF - 1) && seq_gt(HALF - 1, 0));
    }

    #[test]
    fn wraps_at_2_pow_32() {
        assert!(seq_lt(u32::MAX, 0));
        assert!(seq_gt(0, u32::MAX));
        assert_eq!(seq_cmp(u32::MAX, 0), Some(Ordering::Less));
        assert!(seq_lt(0xffff_fff0, 0x10));
        assert!(seq_gt(0x10, 0xffff_fff0));
        assert!(seq_lt(HALF + 1, 0));
        assert!(seq_gt(0, HALF + 1));
    }

    #[test]
    fn exactly_2_pow_31_apart_is_unordered() {
        for a in [0, 1, HALF - 1, HALF, u32::MAX] {
            let b = a.wrapping_add(HALF);
            assert_eq!(seq_cmp(a, b), None, "{a:#x}");
            assert_eq!(seq_cmp(b, a), None, "{a:#x}");
            assert!(!seq_lt(a, b) && !seq_gt(a, b) && !seq_lt(b, a) && !seq_gt(b, a));
        }
        assert_eq!(seq_cmp(0, HALF - 1), Some(Ordering::Less));
        assert_eq!(seq_cmp(0, HALF + 1), Some(Ordering::Greater));
    }

    /// `seq_lt`/`seq_gt` agree with `seq_cmp` everywhere around the edges.
    #[test]
    fn predicates_agree_with_cmp() {
        let edges = [
            0,
            1,
            2,
            HALF - 2,
            HALF - 1,
            HALF,
            HALF + 1,
            u32::MAX - 1,
            u32::MAX,
        ];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(seq_lt(a, b), seq_cmp(a, b) == Some(Ordering::Less));
                assert_eq!(seq_gt(a, b), seq_cmp(a, b) == Some(Ordering::Greater));
            }
        }
    }
}
