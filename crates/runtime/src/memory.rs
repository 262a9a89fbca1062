//! [`LinearMemory`]: a 32-bit Wasm memory in a guard-page reservation (DESIGN.md §6).
//!
//! ```text
//!  base                          base + length         base + 8 GiB + 64 KiB
//!   ├── RW: the memory's bytes ───┼── PROT_NONE ... ─────┤
//! ```
//! Every address compiled code can form from a 32-bit index plus a 32-bit static offset
//! plus an access of at most 16 bytes lies inside the reservation, so an out-of-bounds
//! access faults on an inaccessible page and becomes a `MemoryOutOfBounds` trap.
//!
//! Invariants: the base never moves; `def.length` is the accessible size in bytes, a
//! multiple of the Wasm page size, at most `max_pages` pages; bytes past it are
//! inaccessible.

use crate::mmap::Mmap;
use crate::vmcontext::VMMemoryDefinition;
use quickbeam_environ::{MemoryType, WASM32_MAX_PAGES, WASM_PAGE_SIZE};

/// Bytes reserved per 32-bit memory: 4 GiB of index, 4 GiB of static offset, and a page
/// for the access width.
pub const MEMORY_RESERVATION: usize = (8 << 30) + WASM_PAGE_SIZE as usize;

/// Why a memory could not be created or grown.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    #[error("memory minimum of {0} pages exceeds the maximum of {1} pages")]
    TooLarge(u64, u64),
    #[error("failed to reserve memory: {0}")]
    Os(#[from] std::io::Error),
}

/// A linear memory (see the module docs).
#[repr(C)]
#[derive(Debug)]
pub struct LinearMemory {
    /// What compiled code reads; first, so a `*mut LinearMemory` is a definition pointer.
    def: VMMemoryDefinition,
    map: Mmap,
    ty: MemoryType,
    max_pages: u64,
}

// SAFETY: the definition's pointer points into `map`, which this value owns.
unsafe impl Send for LinearMemory {}
// SAFETY: shared access only reads.
unsafe impl Sync for LinearMemory {}

impl LinearMemory {
    /// A memory of type `ty` at its minimum size.
    ///
    /// # Errors
    /// memory64 and shared memories are unsupported; a failed reservation.
    pub fn new(ty: MemoryType) -> Result<LinearMemory, MemoryError> {
        if ty.memory64 {
            return Err(MemoryError::Unsupported("64-bit memories (memory64)"));
        }
        if ty.shared {
            return Err(MemoryError::Unsupported("shared memories (threads)"));
        }
        let max_pages = ty.maximum.unwrap_or(WASM32_MAX_PAGES).min(WASM32_MAX_PAGES);
        if ty.minimum > max_pages {
            return Err(MemoryError::TooLarge(ty.minimum, max_pages));
        }
        let map = Mmap::reserve(MEMORY_RESERVATION)?;
        let mut m = LinearMemory {
            def: VMMemoryDefinition { base: map.as_ptr(), length: 0 },
            map,
            ty,
            max_pages,
        };
        if m.grow(ty.minimum)?.is_none() {
            return Err(MemoryError::TooLarge(ty.minimum, max_pages));
        }
        Ok(m)
    }

    pub fn ty(&self) -> MemoryType {
        MemoryType { minimum: self.pages(), ..self.ty }
    }

    /// The type it was created with.
    pub fn declared_ty(&self) -> MemoryType {
        self.ty
    }

    pub fn max_pages(&self) -> u64 {
        self.max_pages
    }

    /// The size in pages.
    pub fn pages(&self) -> u64 {
        self.def.length / WASM_PAGE_SIZE
    }

    pub fn len(&self) -> usize {
        self.def.length as usize
    }

    pub fn is_empty(&self) -> bool {
        self.def.length == 0
    }

    pub fn base(&self) -> *mut u8 {
        self.def.base
    }

    /// The definition compiled code reads (stable address).
    pub fn definition_ptr(&mut self) -> *mut VMMemoryDefinition {
        &mut self.def
    }

    /// Grows by `delta` pages: `Ok(Some(old pages))`, or `Ok(None)` when the maximum
    /// would be exceeded.
    ///
    /// # Errors
    /// The OS refused to make the pages accessible.
    pub fn grow(&mut self, delta: u64) -> Result<Option<u64>, MemoryError> {
        let old = self.pages();
        let Some(new) = old.checked_add(delta).filter(|n| *n <= self.max_pages) else {
            return Ok(None);
        };
        if delta > 0 {
            let start = old as usize * WASM_PAGE_SIZE as usize;
            let len = delta as usize * WASM_PAGE_SIZE as usize;
            self.map.make_accessible(start, len)?;
            self.def.length = new * WASM_PAGE_SIZE;
        }
        Ok(Some(old))
    }

    /// The memory's bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `length` bytes of the reservation are accessible (module
        // invariant) and owned by this value.
        unsafe { std::slice::from_raw_parts(self.def.base, self.def.length as usize) }
    }

    /// The memory's bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.def.base, self.def.length as usize) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(min: u64, max: Option<u64>) -> MemoryType {
        MemoryType { minimum: min, maximum: max, memory64: false, shared: false }
    }

    #[test]
    fn grows_in_place_up_to_the_maximum() {
        let mut m = LinearMemory::new(ty(1, Some(3))).unwrap();
        let base = m.base();
        assert_eq!(m.len(), 65536);
        m.as_mut_slice()[65535] = 7;
        assert_eq!(m.grow(2).unwrap(), Some(1));
        assert_eq!(m.base(), base);
        assert_eq!(m.pages(), 3);
        assert_eq!(m.as_slice()[65535], 7);
        assert_eq!(m.as_slice()[3 * 65536 - 1], 0);
        assert_eq!(m.grow(1).unwrap(), None);
        assert_eq!(m.grow(0).unwrap(), Some(3));
    }

    #[test]
    fn rejects_unsupported_and_oversized() {
        assert!(matches!(
            LinearMemory::new(MemoryType { memory64: true, ..ty(0, None) }),
            Err(MemoryError::Unsupported(_))
        ));
        assert!(matches!(LinearMemory::new(ty(2, Some(1))), Err(MemoryError::TooLarge(..))));
        let m = LinearMemory::new(ty(0, None)).unwrap();
        assert_eq!(m.max_pages(), 65536);
        assert!(m.is_empty());
    }
}
