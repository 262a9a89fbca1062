//! Resource limits of a store, in wasmtime's shape: the [`ResourceLimiter`] trait a
//! store consults ([`Store::limiter`](crate::Store::limiter)), and [`StoreLimits`], a
//! ready-made limiter built with [`StoreLimitsBuilder`].
//!
//! What is asked, and when:
//! - `memory_growing(current, desired, maximum)` (bytes) before a memory is created
//!   (`current` = 0, at instantiation and by [`Memory::new`](crate::Memory::new)) and
//!   before it grows by `memory.grow` or [`Memory::grow`](crate::Memory::grow);
//! - `table_growing(current, desired, maximum)` (elements) likewise for tables;
//! - `instances()`, `memories()`, `tables()`: the most of each the store may hold,
//!   counted over everything created in it (host-created memories and tables too),
//!   checked before an instantiation or creation would exceed them.
//!
//! A refused grow fails the way the spec says it may: `memory.grow` and `table.grow`
//! return -1, and the host APIs return an error. A refused creation fails the
//! instantiation (or `Memory::new`/`Table::new`) with an error. An *error* from the
//! limiter makes the growing instruction trap: the call into Wasm fails with that error.
//! Grows beyond a declared maximum fail without asking; a grow by 0 asks nothing.

use crate::store::StoreInner;
use crate::{MemoryType, Result, TableType, WASM_PAGE_SIZE};

/// The default for [`ResourceLimiter::instances`].
pub const DEFAULT_INSTANCE_LIMIT: usize = 10_000;
/// The default for [`ResourceLimiter::tables`].
pub const DEFAULT_TABLE_LIMIT: usize = 10_000;
/// The default for [`ResourceLimiter::memories`].
pub const DEFAULT_MEMORY_LIMIT: usize = 10_000;

/// Decides how large a store's memories and tables may grow and how many instances,
/// memories and tables it may hold (see the module docs).
pub trait ResourceLimiter {
    /// Whether a memory may grow from `current` to `desired` bytes (`maximum`: its
    /// declared maximum, if any). `Ok(false)` refuses the grow; an error traps.
    ///
    /// # Errors
    /// To make the growing instruction trap (or the host call fail) with this error.
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool>;

    /// Whether a table may grow from `current` to `desired` elements. As
    /// [`ResourceLimiter::memory_growing`].
    ///
    /// # Errors
    /// To make the growing instruction trap (or the host call fail) with this error.
    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool>;

    /// The most instances the store may hold.
    fn instances(&self) -> usize {
        DEFAULT_INSTANCE_LIMIT
    }

    /// The most tables the store may hold.
    fn tables(&self) -> usize {
        DEFAULT_TABLE_LIMIT
    }

    /// The most memories the store may hold.
    fn memories(&self) -> usize {
        DEFAULT_MEMORY_LIMIT
    }
}

/// A [`ResourceLimiter`] with fixed limits: the size of each memory (bytes) and of each
/// table (elements), and the number of instances, memories and tables.
#[derive(Clone, Debug)]
pub struct StoreLimits {
    memory_size: Option<usize>,
    table_elements: Option<usize>,
    instances: usize,
    tables: usize,
    memories: usize,
    trap_on_grow_failure: bool,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            memory_size: None,
            table_elements: None,
            instances: DEFAULT_INSTANCE_LIMIT,
            tables: DEFAULT_TABLE_LIMIT,
            memories: DEFAULT_MEMORY_LIMIT,
            trap_on_grow_failure: false,
        }
    }
}

impl ResourceLimiter for StoreLimits {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        let allow = self.memory_size.is_none_or(|limit| desired <= limit);
        if !allow && self.trap_on_grow_failure {
            anyhow::bail!("forcing trap when growing memory to {desired} bytes");
        }
        Ok(allow)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        let allow = self.table_elements.is_none_or(|limit| desired <= limit);
        if !allow && self.trap_on_grow_failure {
            anyhow::bail!("forcing trap when growing table to {desired} elements");
        }
        Ok(allow)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

/// Builds [`StoreLimits`]; every limit not set is unlimited (counts: the defaults).
#[derive(Clone, Debug, Default)]
pub struct StoreLimitsBuilder(StoreLimits);

impl StoreLimitsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The most bytes each linear memory may have.
    pub fn memory_size(mut self, bytes: usize) -> Self {
        self.0.memory_size = Some(bytes);
        self
    }

    /// The most elements each table may have.
    pub fn table_elements(mut self, elements: usize) -> Self {
        self.0.table_elements = Some(elements);
        self
    }

    /// The most instances the store may hold.
    pub fn instances(mut self, n: usize) -> Self {
        self.0.instances = n;
        self
    }

    /// The most tables the store may hold.
    pub fn tables(mut self, n: usize) -> Self {
        self.0.tables = n;
        self
    }

    /// The most memories the store may hold.
    pub fn memories(mut self, n: usize) -> Self {
        self.0.memories = n;
        self
    }

    /// Whether a grow past a limit traps (an error from the limiter) instead of
    /// returning -1 (default: false, as the spec's `memory.grow` does).
    pub fn trap_on_grow_failure(mut self, trap: bool) -> Self {
        self.0.trap_on_grow_failure = trap;
        self
    }

    pub fn build(self) -> StoreLimits {
        self.0
    }
}

// ---- the store's side ----

impl<T> StoreInner<T> {
    /// The store's limiter, if one is set.
    pub(crate) fn limiter(&mut self) -> Option<&mut dyn ResourceLimiter> {
        let f = self.limiter.as_mut()?;
        Some(f(&mut self.data))
    }

    /// Checks that `instances` more instances, `memories` more memories and `tables`
    /// more tables fit the limiter's counts.
    ///
    /// # Errors
    /// `resource limit exceeded: ... count too high at N`.
    pub(crate) fn check_counts(&mut self, instances: usize, memories: usize, tables: usize) -> Result<()> {
        let have = (self.vm.num_instances(), self.vm.num_memories(), self.vm.num_tables());
        let Some(l) = self.limiter() else { return Ok(()) };
        for (what, have, more, max) in [
            ("instance", have.0, instances, l.instances()),
            ("memory", have.1, memories, l.memories()),
            ("table", have.2, tables, l.tables()),
        ] {
            if more > 0 && have + more > max {
                anyhow::bail!("resource limit exceeded: {what} count too high at {}", have + more);
            }
        }
        Ok(())
    }

    /// Asks the limiter whether a memory of type `ty` may be created.
    ///
    /// # Errors
    /// A refusal (`memory minimum size of N pages exceeds memory limits`) or the
    /// limiter's error.
    pub(crate) fn check_new_memory(&mut self, ty: &MemoryType) -> Result<()> {
        let Some(l) = self.limiter() else { return Ok(()) };
        let bytes = |pages: u64| usize::try_from(pages.saturating_mul(WASM_PAGE_SIZE)).unwrap_or(usize::MAX);
        if !l.memory_growing(0, bytes(ty.minimum), ty.maximum.map(bytes))? {
            anyhow::bail!("memory minimum size of {} pages exceeds memory limits", ty.minimum);
        }
        Ok(())
    }

    /// Asks the limiter whether a table of type `ty` may be created.
    ///
    /// # Errors
    /// A refusal (`table minimum size of N elements exceeds table limits`) or the
    /// limiter's error.
    pub(crate) fn check_new_table(&mut self, ty: &TableType) -> Result<()> {
        let Some(l) = self.limiter() else { return Ok(()) };
        let n = |e: u64| usize::try_from(e).unwrap_or(usize::MAX);
        if !l.table_growing(0, n(ty.minimum), ty.maximum.map(n))? {
            anyhow::bail!("table minimum size of {} elements exceeds table limits", ty.minimum);
        }
        Ok(())
    }
}
