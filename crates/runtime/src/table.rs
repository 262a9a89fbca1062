//! [`Table`]: a Wasm table of 8-byte elements (funcref: a `*const VMFuncRef` or 0;
//! externref: a host handle or 0).
//!
//! Invariant: `def.base`/`def.length` always describe `elements` (updated after every
//! reallocation); compiled code reloads them on every access, so the elements may move.

use crate::vmcontext::VMTableDefinition;
use quickbeam_environ::TableType;

/// The most elements a table may have, whatever its type says (a resource limit).
pub const MAX_TABLE_ELEMENTS: u64 = 10_000_000;

/// A table (see the module docs).
#[repr(C)]
#[derive(Debug)]
pub struct Table {
    /// What compiled code reads; first, so a `*mut Table` is a definition pointer.
    def: VMTableDefinition,
    elements: Vec<u64>,
    ty: TableType,
    max: u64,
}

// SAFETY: the definition points into `elements`, which this value owns.
unsafe impl Send for Table {}
// SAFETY: shared access only reads.
unsafe impl Sync for Table {}

impl Table {
    /// A table of type `ty` at its minimum size, every element `init`; `None` if the
    /// minimum exceeds the limits.
    pub fn new(ty: TableType, init: u64) -> Option<Table> {
        let max = ty.maximum.unwrap_or(u32::MAX as u64).min(MAX_TABLE_ELEMENTS);
        if ty.minimum > max {
            return None;
        }
        let mut elements = Vec::new();
        if let Some(m) = ty.maximum.filter(|m| *m <= 4096) {
            elements.reserve_exact(m as usize);
        }
        elements.resize(ty.minimum as usize, init);
        let mut t = Table { def: VMTableDefinition { base: std::ptr::null_mut(), length: 0 }, elements, ty, max };
        t.sync();
        Some(t)
    }

    fn sync(&mut self) {
        self.def.base = self.elements.as_mut_ptr();
        self.def.length = self.elements.len() as u64;
    }

    pub fn ty(&self) -> TableType {
        TableType { minimum: self.len(), ..self.ty }
    }

    pub fn declared_ty(&self) -> TableType {
        self.ty
    }

    /// The most elements it may have (its declared maximum, at most [`MAX_TABLE_ELEMENTS`]).
    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn len(&self) -> u64 {
        self.elements.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    pub fn definition_ptr(&mut self) -> *mut VMTableDefinition {
        &mut self.def
    }

    pub fn get(&self, index: u64) -> Option<u64> {
        self.elements.get(usize::try_from(index).ok()?).copied()
    }

    /// Sets element `index`; `false` if out of bounds.
    pub fn set(&mut self, index: u64, value: u64) -> bool {
        match usize::try_from(index).ok().and_then(|i| self.elements.get_mut(i)) {
            Some(e) => {
                *e = value;
                true
            }
            None => false,
        }
    }

    pub fn elements(&self) -> &[u64] {
        &self.elements
    }

    pub fn elements_mut(&mut self) -> &mut [u64] {
        &mut self.elements
    }

    /// Grows by `delta` elements set to `init`: the old size, or `None` past the maximum.
    pub fn grow(&mut self, delta: u64, init: u64) -> Option<u64> {
        let old = self.len();
        let new = old.checked_add(delta).filter(|n| *n <= self.max)?;
        if self.elements.try_reserve(delta as usize).is_err() {
            return None;
        }
        self.elements.resize(new as usize, init);
        self.sync();
        Some(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickbeam_environ::RefType;

    #[test]
    fn grow_updates_the_definition() {
        let ty = TableType { element: RefType::ExternRef, minimum: 2, maximum: Some(5) };
        let mut t = Table::new(ty, 9).unwrap();
        assert_eq!(t.elements(), &[9, 9]);
        assert_eq!(t.grow(3, 1), Some(2));
        assert_eq!(t.grow(1, 1), None);
        assert_eq!(t.len(), 5);
        // SAFETY: the definition pointer is valid while `t` lives.
        let def = unsafe { &*t.definition_ptr() };
        assert_eq!(def.length, 5);
        assert_eq!(def.base as *const u64, t.elements().as_ptr());
        assert!(t.set(4, 7));
        assert!(!t.set(5, 7));
        assert_eq!(t.get(4), Some(7));
        assert_eq!(t.get(5), None);
    }
}
