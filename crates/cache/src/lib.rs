//! Quickbeam's stencil cache stores (DESIGN.md §2.2, "Stores"): small get/put-bytes
//! stores behind one trait, and the format of what is stored in them.
//!
//! - [`CacheStore`]: the trait; embedders may bring their own.
//! - [`MemoryStore`]: in-process, bounded in bytes, least recently used out first.
//! - [`DiskStore`]: a directory shared by processes, atomic writes, checksummed entries,
//!   bounded in bytes.
//! - [`TieredStore`]: a fast store in front of a slower one (memory in front of disk).
//! - [`entry`]: the payloads: [`Variants`] (stencils per shape key) and [`ExactRecord`]
//!   (what an exact key maps to).
//!
//! Invariant: a store never fails a compile and never returns a damaged entry: every
//! error is a miss. Keys are the 32-byte [`quickbeam_environ::StencilKey`]s; exact and
//! shape keys hash differently-tagged inputs, so they share a store without colliding.
#![forbid(unsafe_code)]

pub mod disk;
pub mod entry;
pub mod memory;

pub use disk::DiskStore;
pub use entry::{ExactRecord, ModuleRecord, Variant, Variants, MAX_VARIANTS};
pub use memory::MemoryStore;

/// A key-value store of cache entries. Thread-safe; errors are misses.
pub trait CacheStore: Send + Sync {
    /// The value stored under `key`, if any (and intact).
    fn get(&self, key: &[u8; 32]) -> Option<Vec<u8>>;
    /// Stores `value` under `key`, replacing any previous value. May drop it (a store
    /// is a cache), and does on any error.
    fn put(&self, key: &[u8; 32], value: &[u8]);
}

impl<T: CacheStore + ?Sized> CacheStore for std::sync::Arc<T> {
    fn get(&self, key: &[u8; 32]) -> Option<Vec<u8>> {
        (**self).get(key)
    }
    fn put(&self, key: &[u8; 32], value: &[u8]) {
        (**self).put(key, value)
    }
}

impl<T: CacheStore + ?Sized> CacheStore for Box<T> {
    fn get(&self, key: &[u8; 32]) -> Option<Vec<u8>> {
        (**self).get(key)
    }
    fn put(&self, key: &[u8; 32], value: &[u8]) {
        (**self).put(key, value)
    }
}

/// How much a store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: u64,
    /// Bytes of the entries (values for [`MemoryStore`], files for [`DiskStore`]).
    pub bytes: u64,
}

/// `front` in front of `back`: a get tries `front`, then `back` (copying a hit to
/// `front`); a put goes to both.
pub struct TieredStore<F, B> {
    pub front: F,
    pub back: B,
}

impl<F: CacheStore, B: CacheStore> TieredStore<F, B> {
    pub fn new(front: F, back: B) -> TieredStore<F, B> {
        TieredStore { front, back }
    }
}

impl<F: CacheStore, B: CacheStore> CacheStore for TieredStore<F, B> {
    fn get(&self, key: &[u8; 32]) -> Option<Vec<u8>> {
        if let Some(v) = self.front.get(key) {
            return Some(v);
        }
        let v = self.back.get(key)?;
        self.front.put(key, &v);
        Some(v)
    }

    fn put(&self, key: &[u8; 32], value: &[u8]) {
        self.front.put(key, value);
        self.back.put(key, value);
    }
}
