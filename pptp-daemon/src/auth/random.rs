//! Randomness for challenges and identifiers, given to the engines by
//! their constructors so that tests are deterministic: the operating
//! system's generator for the daemon, a seeded generator for tests.

use std::sync::{Arc, Mutex};

/// Fills a buffer with random octets.
pub type RandomSource = Arc<dyn Fn(&mut [u8]) + Send + Sync>;

/// The operating system's generator (getrandom(2)).
///
/// # Panics
///
/// If the system has no random source at all: no challenge may be sent
/// without one.
pub fn os_random() -> RandomSource {
    Arc::new(|buf: &mut [u8]| {
        getrandom::fill(buf).expect("the operating system random source failed");
    })
}

/// A deterministic generator (SplitMix64) for tests and simulations: the
/// same seed gives the same octets. Not for production challenges.
pub fn seeded_random(seed: u64) -> RandomSource {
    let state = Mutex::new(seed);
    Arc::new(move |buf: &mut [u8]| {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        for chunk in buf.chunks_mut(8) {
            *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_deterministic_and_os_is_not_constant() {
        let (a, b) = (seeded_random(7), seeded_random(7));
        let (mut x, mut y) = ([0u8; 13], [0u8; 13]);
        a(&mut x);
        b(&mut y);
        assert_eq!(x, y);
        a(&mut x);
        assert_ne!(x, y);
        let os = os_random();
        let (mut x, mut y) = ([0u8; 16], [0u8; 16]);
        os(&mut x);
        os(&mut y);
        assert_ne!(x, y);
    }
}
