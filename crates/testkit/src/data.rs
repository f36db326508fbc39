//! Deterministic pseudo-random test data: the same seed gives the same bytes on every run,
//! so a failure reproduces; different seeds give unrelated bytes.

/// A SplitMix64 generator: small, fast, and good enough to look random to a codec, a
/// parser or a checksum (not for cryptography).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose output is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed.wrapping_add(0x9E37_79B9_7F4A_7C15),
        }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0; the slight modulo bias does not matter for tests).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value");
        self.next_u64() % n
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// `len` pseudo-random bytes fixed by `seed` (the file contents, payloads and garbage of
/// the tests).
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    Rng::new(seed).fill(&mut out);
    out
}

/// A number that differs from run to run (seeded by the OS through std's hasher), for a
/// test that should see a different case each time; print it so a failure reproduces.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// Asserts that two byte strings are equal without printing megabytes when they are not:
/// the failure names both lengths and the first differing offset.
#[track_caller]
pub fn assert_same(label: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{label}: contents differ (got {} bytes, want {}, first difference at {:?})",
            got.len(),
            want.len(),
            first
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        assert_eq!(bytes(1000, 7), bytes(1000, 7));
        assert_ne!(bytes(1000, 7), bytes(1000, 8));
        // A shorter request is a prefix of a longer one with the same seed.
        assert_eq!(bytes(13, 7), bytes(1000, 7)[..13]);
        assert!(bytes(0, 1).is_empty());
    }

    #[test]
    fn the_bytes_are_spread_over_every_value() {
        let data = bytes(1 << 16, 42);
        let mut seen = [0usize; 256];
        for b in &data {
            seen[*b as usize] += 1;
        }
        // 256 expected per value: each one is present, none dominates.
        assert!(seen.iter().all(|&n| n > 128 && n < 512), "{seen:?}");
    }

    #[test]
    fn below_stays_below() {
        let mut rng = Rng::new(3);
        assert!((0..10_000).all(|_| rng.below(300) < 300));
    }

    #[test]
    #[should_panic(expected = "first difference at Some(2)")]
    fn assert_same_names_the_first_difference() {
        assert_same("x", b"abcd", b"abxd");
    }
}
