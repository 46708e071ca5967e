//! `FastHash`: a seeded multiply-rotate hasher for the memory manager's resource names.

use std::hash::{BuildHasher, Hasher};

/// A seeded multiply-rotate hash for resource names: several times cheaper than SipHash on
/// short keys. Names come from the agents of one process, which are not adversaries, and the
/// per-manager random seed keeps collisions from being precomputed.
#[derive(Debug, Clone, Copy)]
pub(super) struct FastHash(u64);

impl Default for FastHash {
    fn default() -> Self {
        FastHash(
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        )
    }
}

impl BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

#[derive(Debug)]
pub(super) struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        // The last 1-7 bytes, read as at most two overlapping words (no copy of a
        // variable length, which would be a call to `memcpy`).
        let rest = chunks.remainder();
        let n = rest.len();
        let word = |i: usize, len: usize| {
            rest[i..i + len]
                .iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | u64::from(b))
        };
        let tail = match n {
            0 => return,
            1..=3 => word(0, 1) | word(n / 2, 1) << 8 | word(n - 1, 1) << 16,
            _ => word(0, 4) | word(n - 4, 4) << 32,
        };
        self.add(tail ^ ((n as u64) << 56));
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
