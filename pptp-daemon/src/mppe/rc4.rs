//! RC4, the cipher of MPPE (RFC 3078 section 4; keystream as in the test
//! vectors of RFC 6229), written for MPPE's load: stateless MPPE schedules
//! two RC4 keys per packet (RFC 3078 section 7.3: the interim key's, then
//! the frame's), so the key schedule costs more than the keystream of a
//! small packet.
//!
//! Why not the `rc4` crate, which this module replaced: the crate keeps
//! its permutation private, and the XDP program needs it as octets
//! (`pptp_common::maps::MppePrepared`); and the daemon's preparer runs two
//! independent key schedules per prepared state (the frame key's of this
//! position and the interim key's of the change to the next, both depending
//! only on this position's key), which [`Rc4::new_pair`] interleaves step
//! by step so that the CPU overlaps their chains of dependent loads and
//! stores: a state took 1.91 µs with the crate on this project's bench
//! machine and takes 1.28 µs so (`cargo bench -p pptp-daemon --bench
//! mppe`). The key of 8 or 16 octets is repeated over 16 and 16 steps are
//! unrolled with it in registers.
//!
//! Measured and not kept: the permutation in 32-bit words (it spares the
//! swap's byte stores their store forwarding) made a state 1.04 µs natively
//! but 1.6 to 2 times slower than the crate under qemu's TCG, where the
//! guest bench compares with kernel `ppp_mppe`; octets are as fast as the
//! crate or faster in both. The crate stays a test dependency, as the
//! oracle these tests compare with.

use core::fmt;

/// An RC4 state: the permutation and the two indices of the keystream
/// generator.
#[derive(Clone)]
pub struct Rc4 {
    /// The permutation.
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl fmt::Debug for Rc4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The state is key material.
        f.debug_struct("Rc4").finish_non_exhaustive()
    }
}

/// The identity permutation, where every key schedule starts.
fn identity() -> [u8; 256] {
    let mut s = [0u8; 256];
    for (i, x) in s.iter_mut().enumerate() {
        // i < 256.
        *x = i as u8;
    }
    s
}

/// The key repeated over 16 octets, if its length divides 16 (MPPE's keys
/// have 8 or 16): the schedule then reads the same key octet at step `i`
/// as at `i % 16`, which lets it unroll 16 steps with the key in registers.
fn repeat16(key: &[u8]) -> Option<[u8; 16]> {
    if key.is_empty() || 16 % key.len() != 0 {
        return None;
    }
    let mut k = [0u8; 16];
    for chunk in k.chunks_mut(key.len()) {
        chunk.copy_from_slice(key);
    }
    Some(k)
}

/// One step of the key schedule at index `i`.
#[inline(always)]
fn ksa_step(s: &mut [u8; 256], i: usize, j: &mut u8, k: u8) {
    let si = s[i];
    *j = j.wrapping_add(si).wrapping_add(k);
    let jj = usize::from(*j);
    s[i] = s[jj];
    s[jj] = si;
}

/// The key schedule of a key repeated over 16 octets.
fn schedule16(k: &[u8; 16]) -> [u8; 256] {
    let mut s = identity();
    let mut j = 0u8;
    let mut base = 0;
    while base < 256 {
        for (t, &kt) in k.iter().enumerate() {
            ksa_step(&mut s, base + t, &mut j, kt);
        }
        base += 16;
    }
    s
}

/// Two key schedules interleaved step by step: the same results as two
/// calls of [`schedule16`], in about two thirds of their time natively (the
/// CPU overlaps the two chains of dependent loads and stores).
fn schedule16_pair(a: &[u8; 16], b: &[u8; 16]) -> ([u8; 256], [u8; 256]) {
    let mut sa = identity();
    let mut sb = identity();
    let (mut ja, mut jb) = (0u8, 0u8);
    let mut base = 0;
    while base < 256 {
        for (t, (&at, &bt)) in a.iter().zip(b.iter()).enumerate() {
            ksa_step(&mut sa, base + t, &mut ja, at);
            ksa_step(&mut sb, base + t, &mut jb, bt);
        }
        base += 16;
    }
    (sa, sb)
}

/// The key schedule of any key of 1 to 256 octets.
fn schedule_any(key: &[u8]) -> [u8; 256] {
    let mut s = identity();
    let mut j = 0u8;
    for (i, &k) in key.iter().cycle().take(256).enumerate() {
        ksa_step(&mut s, i, &mut j, k);
    }
    s
}

impl Rc4 {
    /// RC4 keyed with `key` (1 to 256 octets; `None` otherwise).
    pub fn new(key: &[u8]) -> Option<Rc4> {
        if key.is_empty() || key.len() > 256 {
            return None;
        }
        let s = match repeat16(key) {
            Some(k) => schedule16(&k),
            None => schedule_any(key),
        };
        Some(Rc4::from_permutation(s))
    }

    /// RC4 keyed with `a` and with `b`, the two key schedules interleaved
    /// where both lengths divide 16 (as MPPE's keys do); `None` where
    /// either key is not 1 to 256 octets.
    pub fn new_pair(a: &[u8], b: &[u8]) -> Option<(Rc4, Rc4)> {
        match (repeat16(a), repeat16(b)) {
            (Some(ka), Some(kb)) => {
                let (sa, sb) = schedule16_pair(&ka, &kb);
                Some((Rc4::from_permutation(sa), Rc4::from_permutation(sb)))
            }
            _ => Some((Rc4::new(a)?, Rc4::new(b)?)),
        }
    }

    fn from_permutation(s: [u8; 256]) -> Rc4 {
        Rc4 { s, i: 0, j: 0 }
    }

    /// The permutation as octets (after the key schedule, before any
    /// keystream, the state the XDP program starts a frame from).
    pub fn permutation(&self) -> [u8; 256] {
        self.s
    }

    /// The next keystream octet.
    #[inline(always)]
    fn next(&mut self) -> u8 {
        self.i = self.i.wrapping_add(1);
        let si = self.s[usize::from(self.i)];
        self.j = self.j.wrapping_add(si);
        let sj = self.s[usize::from(self.j)];
        self.s[usize::from(self.i)] = sj;
        self.s[usize::from(self.j)] = si;
        self.s[usize::from(si.wrapping_add(sj))]
    }

    /// XORs the keystream into `buf` (encrypts or decrypts in place).
    pub fn apply_keystream(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            *b ^= self.next();
        }
    }

    /// Writes `input` XOR the keystream into `output`, as many octets as
    /// the shorter of the two holds (callers pass equal lengths).
    pub fn apply_keystream_b2b(&mut self, input: &[u8], output: &mut [u8]) {
        debug_assert_eq!(input.len(), output.len());
        for (o, &x) in output.iter_mut().zip(input) {
            *o = x ^ self.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use rc4::{KeyInit, StreamCipher};

    use super::*;

    /// The `rc4` crate's keystream for `key` (the oracle).
    fn oracle(key: &[u8], n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        rc4::Rc4::new_from_slice(key)
            .expect("1 to 256 octets")
            .apply_keystream(&mut out);
        out
    }

    fn keystream(mut rc4: Rc4, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        rc4.apply_keystream(&mut out);
        out
    }

    /// Deterministic pseudo-random octets (xorshift).
    fn octets(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn keystream_matches_the_rc4_crate_for_every_key_length() {
        for len in [1usize, 2, 3, 4, 5, 7, 8, 13, 16, 17, 32, 255, 256] {
            for seed in 0..40u64 {
                let key = octets(seed * 1000 + len as u64, len);
                assert_eq!(
                    keystream(Rc4::new(&key).expect("valid length"), 600),
                    oracle(&key, 600),
                    "key {key:02x?}"
                );
            }
        }
    }

    #[test]
    fn interleaved_schedules_equal_two_single_ones() {
        for (la, lb) in [(16, 16), (8, 16), (16, 8), (8, 8), (5, 16), (16, 7)] {
            for seed in 0..50u64 {
                let a = octets(seed + 7, la);
                let b = octets(seed + 9_001, lb);
                let (ra, rb) = Rc4::new_pair(&a, &b).expect("valid lengths");
                assert_eq!(keystream(ra, 300), oracle(&a, 300), "a {a:02x?}");
                assert_eq!(keystream(rb, 300), oracle(&b, 300), "b {b:02x?}");
            }
        }
    }

    #[test]
    fn permutation_is_the_state_after_the_key_schedule() {
        // The permutation after the schedule determines the keystream: a
        // generator started from the octets gives the crate's keystream.
        for seed in 0..50u64 {
            let key = octets(seed, 16);
            let octets = Rc4::new(&key).expect("16 octets").permutation();
            assert_eq!(
                keystream(Rc4::from_permutation(octets), 300),
                oracle(&key, 300)
            );
        }
    }

    #[test]
    fn b2b_equals_in_place() {
        let key = octets(3, 16);
        let input = octets(4, 1400);
        let mut in_place = input.clone();
        Rc4::new(&key).expect("16").apply_keystream(&mut in_place);
        let mut out = vec![0u8; 1400];
        Rc4::new(&key)
            .expect("16")
            .apply_keystream_b2b(&input, &mut out);
        assert_eq!(out, in_place);
        // Split across calls, the keystream continues.
        let mut split = input.clone();
        let mut rc4 = Rc4::new(&key).expect("16");
        rc4.apply_keystream(&mut split[..100]);
        rc4.apply_keystream(&mut split[100..]);
        assert_eq!(split, in_place);
    }

    #[test]
    fn rejects_empty_and_overlong_keys() {
        assert!(Rc4::new(&[]).is_none());
        assert!(Rc4::new(&[0u8; 257]).is_none());
        assert!(Rc4::new_pair(&[], &[1]).is_none());
        assert!(Rc4::new_pair(&[1; 16], &[0u8; 257]).is_none());
    }
}
