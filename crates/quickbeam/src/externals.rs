//! [`Memory`], [`Table`] and [`Global`] handles.

use crate::store::{check_val, val_from_raw, val_to_raw, AsContext, AsContextMut, StoreContext, StoreContextMut};
use crate::{GlobalType, MemoryType, Result, TableType, Val};
use quickbeam_runtime::{GlobalId, MemoryId, TableId};

/// A linear memory of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Memory {
    pub(crate) store: u64,
    pub(crate) index: u32,
}

impl Memory {
    /// A new memory owned by the store.
    ///
    /// # Errors
    /// An unsupported type (memory64, shared), the store's resource limits, or an
    /// address-space reservation failure.
    pub fn new(mut store: impl AsContextMut, ty: MemoryType) -> Result<Memory> {
        let store = store.as_context_mut().0;
        store.check_counts(0, 1, 0)?;
        store.check_new_memory(&ty)?;
        let id = store.vm.new_memory(ty)?;
        Ok(Memory { store: store.id(), index: id.0 })
    }

    fn id(&self) -> MemoryId {
        MemoryId(self.index)
    }

    /// The memory's type, with its current size as the minimum.
    pub fn ty(&self, store: impl AsContext) -> MemoryType {
        let store = store.as_context().0;
        store.check(self.store);
        store.vm.memory(self.id()).ty()
    }

    /// The memory's bytes.
    pub fn data<'a, T: 'a>(&self, store: impl Into<StoreContext<'a, T>>) -> &'a [u8] {
        let store = store.into().0;
        store.check(self.store);
        store.vm.memory(self.id()).as_slice()
    }

    /// The memory's bytes, writable.
    pub fn data_mut<'a, T: 'a>(&self, store: impl Into<StoreContextMut<'a, T>>) -> &'a mut [u8] {
        let store = store.into().0;
        store.check(self.store);
        store.vm.memory_mut(self.id()).as_mut_slice()
    }

    /// The size in bytes.
    pub fn data_size(&self, store: impl AsContext) -> usize {
        self.data(store.as_context()).len()
    }

    /// The size in pages.
    pub fn size(&self, store: impl AsContext) -> u64 {
        (self.data_size(store) as u64) / crate::WASM_PAGE_SIZE
    }

    /// Grows by `delta_pages`, returning the old size in pages.
    ///
    /// # Errors
    /// If the memory would exceed its maximum or the store's resource limits (or the
    /// limiter's error).
    pub fn grow(&self, mut store: impl AsContextMut, delta_pages: u64) -> Result<u64> {
        let store = store.as_context_mut().0;
        store.check(self.store);
        let m = store.vm.memory(self.id());
        let (old, declared) = (m.pages(), m.declared_ty().maximum);
        let new = old.checked_add(delta_pages).filter(|n| *n <= m.max_pages());
        if let (Some(new), true) = (new, delta_pages > 0) {
            let bytes = |pages: u64| (pages * crate::WASM_PAGE_SIZE) as usize;
            if let Some(l) = store.limiter() {
                if !l.memory_growing(bytes(old), bytes(new), declared.map(bytes))? {
                    anyhow::bail!("failed to grow memory by `{delta_pages}` pages: the store's limits would be exceeded");
                }
            }
        }
        match store.vm.memory_mut(self.id()).grow(delta_pages)? {
            Some(old) => Ok(old),
            None => anyhow::bail!("failed to grow memory by `{delta_pages}` pages: the maximum would be exceeded"),
        }
    }
}

/// A table of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Table {
    pub(crate) store: u64,
    pub(crate) index: u32,
}

impl Table {
    /// A new table owned by the store, every element `init`.
    ///
    /// # Errors
    /// If `init` does not match the element type, the minimum is too large, or the
    /// store's resource limits would be exceeded.
    pub fn new(mut store: impl AsContextMut, ty: TableType, init: Val) -> Result<Table> {
        let store = store.as_context_mut().0;
        check_val(&init, ty.element.into())?;
        store.check_counts(0, 0, 1)?;
        store.check_new_table(&ty)?;
        let raw = val_to_raw(store, &init)?;
        let Some(id) = store.vm.new_table(ty, raw) else {
            anyhow::bail!("table minimum of {} elements exceeds the limit", ty.minimum);
        };
        Ok(Table { store: store.id(), index: id.0 })
    }

    fn id(&self) -> TableId {
        TableId(self.index)
    }

    /// The table's type, with its current size as the minimum.
    pub fn ty(&self, store: impl AsContext) -> TableType {
        let store = store.as_context().0;
        store.check(self.store);
        store.vm.table(self.id()).ty()
    }

    /// Element `index`, or `None` out of bounds.
    pub fn get(&self, mut store: impl AsContextMut, index: u64) -> Option<Val> {
        let store = store.as_context_mut().0;
        store.check(self.store);
        let t = store.vm.table(self.id());
        let (raw, ty) = (t.get(index)?, t.declared_ty().element);
        Some(val_from_raw(store, ty.into(), raw))
    }

    /// # Errors
    /// Out of bounds, or a value of the wrong type.
    pub fn set(&self, mut store: impl AsContextMut, index: u64, val: Val) -> Result<()> {
        let store = store.as_context_mut().0;
        store.check(self.store);
        check_val(&val, store.vm.table(self.id()).declared_ty().element.into())?;
        let raw = val_to_raw(store, &val)?;
        if !store.vm.table_mut(self.id()).set(index, raw) {
            anyhow::bail!("table index {index} out of bounds");
        }
        Ok(())
    }

    pub fn size(&self, store: impl AsContext) -> u64 {
        let store = store.as_context().0;
        store.check(self.store);
        store.vm.table(self.id()).len()
    }

    /// Grows by `delta` elements set to `init`, returning the old size.
    ///
    /// # Errors
    /// If the table would exceed its maximum or the store's resource limits (or the
    /// limiter's error), or `init` has the wrong type.
    pub fn grow(&self, mut store: impl AsContextMut, delta: u64, init: Val) -> Result<u64> {
        let store = store.as_context_mut().0;
        store.check(self.store);
        check_val(&init, store.vm.table(self.id()).declared_ty().element.into())?;
        let raw = val_to_raw(store, &init)?;
        let t = store.vm.table(self.id());
        let (old, declared) = (t.len(), t.declared_ty().maximum);
        let new = old.checked_add(delta).filter(|n| *n <= t.max());
        if let (Some(new), true) = (new, delta > 0) {
            let n = |e: u64| e as usize;
            if let Some(l) = store.limiter() {
                if !l.table_growing(n(old), n(new), declared.map(n))? {
                    anyhow::bail!("failed to grow table by `{delta}` elements: the store's limits would be exceeded");
                }
            }
        }
        match store.vm.table_mut(self.id()).grow(delta, raw) {
            Some(old) => Ok(old),
            None => anyhow::bail!("failed to grow table by `{delta}` elements"),
        }
    }
}

/// A global of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Global {
    pub(crate) store: u64,
    pub(crate) index: u32,
}

impl Global {
    /// # Errors
    /// If `val` does not match the type.
    pub fn new(mut store: impl AsContextMut, ty: GlobalType, val: Val) -> Result<Global> {
        let store = store.as_context_mut().0;
        check_val(&val, ty.content)?;
        let raw = val_to_raw(store, &val)?;
        let id = store.vm.new_global(ty, raw);
        Ok(Global { store: store.id(), index: id.0 })
    }

    fn id(&self) -> GlobalId {
        GlobalId(self.index)
    }

    pub fn ty(&self, store: impl AsContext) -> GlobalType {
        let store = store.as_context().0;
        store.check(self.store);
        store.vm.global_ty(self.id())
    }

    pub fn get(&self, mut store: impl AsContextMut) -> Val {
        let store = store.as_context_mut().0;
        store.check(self.store);
        let (ty, raw) = (store.vm.global_ty(self.id()), store.vm.global_get(self.id()));
        val_from_raw(store, ty.content, raw)
    }

    /// # Errors
    /// If the global is immutable or `val` has the wrong type.
    pub fn set(&self, mut store: impl AsContextMut, val: Val) -> Result<()> {
        let store = store.as_context_mut().0;
        store.check(self.store);
        let ty = store.vm.global_ty(self.id());
        if !ty.mutable {
            anyhow::bail!("immutable global cannot be set");
        }
        check_val(&val, ty.content)?;
        let raw = val_to_raw(store, &val)?;
        store.vm.global_set(self.id(), raw);
        Ok(())
    }
}
