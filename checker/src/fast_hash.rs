//! A hasher for the integer keys the checker hashes millions of times (values, processes,
//! symbols): one multiply per word and a final mix, instead of SipHash. Keys come from the
//! history being checked, not from an adversary on the network, so resistance to crafted
//! collisions is not worth SipHash's cost here.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Multiply-rotate hashing of integer words, finished with MurmurHash3's fmix64.
#[derive(Clone, Copy, Default)]
pub struct IntHasher(u64);

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        z = (z ^ (z >> 33)).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        z ^ (z >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(23) ^ n).wrapping_mul(K);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }
}

pub type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;
pub type IntSet<K> = HashSet<K, BuildHasherDefault<IntHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_small_keys_spread_over_buckets() {
        let hash = |v: Option<i64>| {
            let mut h = IntHasher::default();
            std::hash::Hash::hash(&v, &mut h);
            h.finish()
        };
        assert_ne!(hash(None), hash(Some(0)));
        let low_bits: IntSet<u64> = (0..1024).map(|v| hash(Some(v)) & 1023).collect();
        // A poor hash of consecutive integers would leave most of the 1024 buckets empty.
        assert!(low_bits.len() > 550, "{}", low_bits.len());
    }
}
