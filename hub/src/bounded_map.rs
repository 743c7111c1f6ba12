//! The bounded, sharded map behind the hub's in-process caches (user-agent verdicts, geo records).
//!
//! Keys are `u64`s the caller already made well spread (a keyed hash, or a file offset mixed here), so the map
//! never hashes them again. Sharding keeps lock contention low on the hot path. A shard that fills is emptied:
//! cheaper than tracking recency, and the keys that matter come straight back, so a flood of new keys costs the
//! work the cache would have saved but never memory.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{PoisonError, RwLock};

const SHARDS: usize = 16;

pub struct BoundedMap<V> {
    shards: Box<[RwLock<Shard<V>>]>,
    per_shard: usize,
}

type Shard<V> = HashMap<u64, V, BuildHasherDefault<SpreadU64>>;

impl<V> BoundedMap<V> {
    /// A map holding at most about `entries` values; 0 makes a map that keeps nothing.
    pub fn new(entries: usize) -> Self {
        let per_shard = entries.div_ceil(SHARDS);
        let shards = if per_shard == 0 { 0 } else { SHARDS };
        Self { shards: (0..shards).map(|_| RwLock::new(Shard::default())).collect(), per_shard }
    }

    pub fn is_disabled(&self) -> bool {
        self.shards.is_empty()
    }

    /// The value under `key`, passed to `read` under the shard's read lock.
    pub fn get<T>(&self, key: u64, read: impl FnOnce(&V) -> Option<T>) -> Option<T> {
        let shard = self.shard(key)?.read().unwrap_or_else(PoisonError::into_inner);
        shard.get(&key).and_then(read)
    }

    pub fn insert(&self, key: u64, value: V) {
        let Some(shard) = self.shard(key) else { return };
        let mut shard = shard.write().unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.clear();
        }
        shard.insert(key, value);
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: u64) -> Option<&RwLock<Shard<V>>> {
        // The map takes its bucket from the low bits and its tag from the top seven: the shard takes middle ones.
        (!self.shards.is_empty()).then(|| &self.shards[(key >> 32) as usize % self.shards.len()])
    }
}

/// Spreads a `u64` key over all 64 bits with one multiply and xor-shift (keys that are offsets or small integers
/// differ only in their low bits). Both steps are invertible, so distinct keys stay distinct: a map keyed by
/// `spread(k)` is keyed exactly by `k`.
pub fn spread(key: u64) -> u64 {
    let x = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

/// The map's hasher: keys arrive already spread, so hashing them again would only cost time.
#[derive(Default)]
struct SpreadU64(u64);

impl Hasher for SpreadU64 {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_values_and_stays_bounded() {
        let map = BoundedMap::new(64);
        map.insert(spread(1), "one");
        assert_eq!(map.get(spread(1), |v| Some(*v)), Some("one"));
        assert_eq!(map.get(spread(2), |v| Some(*v)), None);
        for k in 0..10_000 {
            map.insert(spread(k), "many");
        }
        assert!(map.len() <= 64, "{}", map.len());
        assert!(!map.is_empty());
    }

    #[test]
    fn a_zero_sized_map_keeps_nothing() {
        let map = BoundedMap::new(0);
        map.insert(7, ());
        assert!(map.is_disabled());
        assert_eq!(map.len(), 0);
        assert_eq!(map.get(7, |_| Some(())), None);
    }

    #[test]
    fn spread_moves_low_bits_into_the_shard_bits() {
        let shards: std::collections::HashSet<u64> = (0..64u64).map(|k| (spread(k * 8) >> 32) % 16).collect();
        assert!(shards.len() > 8, "{shards:?}");
    }
}
