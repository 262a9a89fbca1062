//! [`MemoryStore`]: the in-process store, bounded in bytes, least recently used out first.
//!
//! Keys are spread over 16 shards by their first byte (keys are hashes, so uniformly), each
//! with its own lock and a sixteenth of the bound, so parallel compile threads rarely
//! contend. Within a shard, every entry carries the tick of its last use and an ordered
//! map from tick to key finds the least recently used one.
//!
//! Invariant: a shard's byte count (values plus a fixed per-entry overhead) never exceeds
//! its bound after a `put` returns.

use crate::{CacheStats, CacheStore};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

/// What an entry costs besides its value (key, tick, map nodes), so that many tiny
/// entries are bounded too.
const ENTRY_OVERHEAD: usize = 96;

/// An in-process [`CacheStore`] holding at most about `max_bytes` of values.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    shard_bound: usize,
}

#[derive(Default)]
struct Shard {
    map: HashMap<[u8; 32], (Arc<[u8]>, u64)>,
    /// Last-use tick → key, oldest first.
    lru: BTreeMap<u64, [u8; 32]>,
    tick: u64,
    bytes: usize,
}

impl MemoryStore {
    /// A store of at most `max_bytes` (values and per-entry overhead).
    pub fn new(max_bytes: usize) -> MemoryStore {
        MemoryStore { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), shard_bound: max_bytes / SHARDS }
    }

    fn shard(&self, key: &[u8; 32]) -> std::sync::MutexGuard<'_, Shard> {
        // A panic while holding the lock leaves a consistent shard (no update is half
        // done across an unwind point), so a poisoned lock is still usable.
        self.shards[key[0] as usize % SHARDS].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value under `key` without copying it.
    pub fn get_shared(&self, key: &[u8; 32]) -> Option<Arc<[u8]>> {
        let mut s = self.shard(key);
        s.tick += 1;
        let tick = s.tick;
        let (value, old) = {
            let (v, t) = s.map.get_mut(key)?;
            (v.clone(), std::mem::replace(t, tick))
        };
        s.lru.remove(&old);
        s.lru.insert(tick, *key);
        Some(value)
    }

    pub fn stats(&self) -> CacheStats {
        let mut st = CacheStats::default();
        for s in self.shards.iter() {
            let s = s.lock().unwrap_or_else(|e| e.into_inner());
            st.entries += s.map.len() as u64;
            st.bytes += s.map.values().map(|(v, _)| v.len() as u64).sum::<u64>();
        }
        st
    }

    pub fn clear(&self) {
        for s in self.shards.iter() {
            *s.lock().unwrap_or_else(|e| e.into_inner()) = Shard::default();
        }
    }
}

impl CacheStore for MemoryStore {
    fn get(&self, key: &[u8; 32]) -> Option<Vec<u8>> {
        self.get_shared(key).map(|v| v.to_vec())
    }

    fn put(&self, key: &[u8; 32], value: &[u8]) {
        let cost = value.len() + ENTRY_OVERHEAD;
        if cost > self.shard_bound {
            return;
        }
        let mut s = self.shard(key);
        s.tick += 1;
        let tick = s.tick;
        if let Some((old, old_tick)) = s.map.insert(*key, (value.into(), tick)) {
            s.lru.remove(&old_tick);
            s.bytes -= old.len() + ENTRY_OVERHEAD;
        }
        s.lru.insert(tick, *key);
        s.bytes += cost;
        while s.bytes > self.shard_bound {
            let Some((_, victim)) = s.lru.pop_first() else { break };
            if let Some((v, _)) = s.map.remove(&victim) {
                s.bytes -= v.len() + ENTRY_OVERHEAD;
            }
        }
    }
}
