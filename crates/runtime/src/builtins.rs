//! The builtins table: runtime functions compiled code calls through
//! `[vmctx + VMCTX_BUILTINS]`, in [`Builtin`] order, with the spec's semantics (bulk
//! memory and table instructions, `memory.grow`, `table.grow`, `ref.func`).
//!
//! Convention (SysV, `extern "C"`): `fn(vmctx, args...)`, every argument a `u64`
//! (i32 operands zero-extended; only their low 32 bits are used). Functions that can
//! trap return 0 for success or their one trap code (`MemoryOutOfBounds` for memory
//! builtins, `TableOutOfBounds` for table builtins); nothing is written before the
//! bounds check passes. `memory_grow`/`table_grow` ask the store's resource limiter
//! ([`HostStore::growing`](crate::HostStore::growing)) first, then return the old size,
//! [`GROW_REFUSED`] (-1 in the low 32 bits), or [`GROW_FAILED`] when the limiter failed
//! (its error waits in the activation; the code traps with `HostError`). Invariant:
//! builtins never panic or unwind.

use crate::instance::instance_of;
use crate::store::GrowKind;
use crate::traphandlers::ask_growing;
use crate::vmcontext::VMFuncRef;
use quickbeam_environ::{Builtin, TrapCode, WASM_PAGE_SIZE};

/// What `memory_grow`/`table_grow` return when the grow is refused (-1 as an i32).
pub const GROW_REFUSED: u64 = u32::MAX as u64;
/// What `memory_grow`/`table_grow` return when the resource limiter failed: bit 32 set
/// (compiled code tests the high half, `abi.rs`).
pub const GROW_FAILED: u64 = 1 << 32;

/// The builtins, in [`Builtin`] order.
#[repr(C)]
pub struct VMBuiltins {
    pub memory_grow: unsafe extern "C" fn(*mut u8, u64, u64) -> u64,
    pub memory_fill: unsafe extern "C" fn(*mut u8, u64, u64, u64, u64) -> u32,
    pub memory_copy: unsafe extern "C" fn(*mut u8, u64, u64, u64, u64, u64) -> u32,
    pub memory_init: unsafe extern "C" fn(*mut u8, u64, u64, u64, u64, u64) -> u32,
    pub data_drop: unsafe extern "C" fn(*mut u8, u64) -> u32,
    pub table_grow: unsafe extern "C" fn(*mut u8, u64, u64, u64) -> u64,
    pub table_fill: unsafe extern "C" fn(*mut u8, u64, u64, u64, u64) -> u32,
    pub table_copy: unsafe extern "C" fn(*mut u8, u64, u64, u64, u64, u64) -> u32,
    pub table_init: unsafe extern "C" fn(*mut u8, u64, u64, u64, u64, u64) -> u32,
    pub elem_drop: unsafe extern "C" fn(*mut u8, u64) -> u32,
    pub ref_func: unsafe extern "C" fn(*mut u8, u64) -> *const VMFuncRef,
}

const _: () = {
    assert!(std::mem::size_of::<VMBuiltins>() == Builtin::COUNT * 8);
    assert!(std::mem::offset_of!(VMBuiltins, memory_grow) == Builtin::MemoryGrow as usize * 8);
    assert!(std::mem::offset_of!(VMBuiltins, memory_fill) == Builtin::MemoryFill as usize * 8);
    assert!(std::mem::offset_of!(VMBuiltins, memory_copy) == Builtin::MemoryCopy as usize * 8);
    assert!(std::mem::offset_of!(VMBuiltins, memory_init) == Builtin::MemoryInit as usize * 8);
    assert!(std::mem::offset_of!(VMBuiltins, data_drop) == Builtin::DataDrop as usize * 8);
    assert!(std::mem::offset_of!(VMBuiltins, table_grow) == Builtin::TableGrow as usize * 8);
    assert!(std::mem::offset_of!(VMBuiltins, table_fill) == Builtin::TableFill as usize * 8);
    assert!(std::mem::offset_of!(VMBuiltins, table_copy) == Builtin::TableCopy as usize * 8);
    assert!(std::mem::offset_of!(VMBuiltins, table_init) == Builtin::TableInit as usize * 8);
    assert!(std::mem::offset_of!(VMBuiltins, elem_drop) == Builtin::ElemDrop as usize * 8);
    assert!(std::mem::offset_of!(VMBuiltins, ref_func) == Builtin::RefFunc as usize * 8);
};

/// The table every VMContext's header points to.
pub static BUILTINS: VMBuiltins = VMBuiltins {
    memory_grow,
    memory_fill,
    memory_copy,
    memory_init,
    data_drop,
    table_grow,
    table_fill,
    table_copy,
    table_init,
    elem_drop,
    ref_func,
};

pub fn builtins_table() -> *const usize {
    (&raw const BUILTINS).cast()
}

const MEM_OOB: u32 = TrapCode::MemoryOutOfBounds as u32;
const TABLE_OOB: u32 = TrapCode::TableOutOfBounds as u32;

/// `start..start+len` if it fits in `size`.
fn range(start: u64, len: u64, size: u64) -> Option<std::ops::Range<usize>> {
    let end = start.checked_add(len)?;
    (end <= size).then_some(start as usize..end as usize)
}

fn low32(v: u64) -> u64 {
    v as u32 as u64
}

// SAFETY (for every builtin below): compiled code calls builtins with its own vmctx,
// which belongs to a live instance, while the store is lent to the running Wasm code,
// so `instance_of` may hand out exclusive access to the instance and its store's objects.

/// `memory.grow`: grows memory `mem` by `delta` pages; the old size, or `u64::MAX`.
///
/// # Safety
/// Only compiled code calls this, with its own `vmctx` (see above).
unsafe extern "C" fn memory_grow(vmctx: *mut u8, mem: u64, delta: u64) -> u64 {
    let delta = low32(delta);
    let (old, max, declared) = {
        // SAFETY: see above.
        let inst = unsafe { instance_of(vmctx) };
        let Some(m) = inst.memory_mut(mem as u32) else { return GROW_REFUSED };
        (m.pages(), m.max_pages(), m.declared_ty().maximum)
    };
    if delta == 0 {
        return old;
    }
    let new = old + delta;
    if new > max {
        return GROW_REFUSED;
    }
    let bytes = |pages: u64| (pages * WASM_PAGE_SIZE) as usize;
    // SAFETY: called from compiled code; the instance borrow above has ended (the
    // memory is a separate allocation, which the limiter cannot reach anyway).
    match unsafe { ask_growing(GrowKind::Memory, bytes(old), bytes(new), declared.map(bytes)) } {
        Ok(true) => {}
        Ok(false) => return GROW_REFUSED,
        Err(()) => return GROW_FAILED,
    }
    // SAFETY: see above.
    let inst = unsafe { instance_of(vmctx) };
    match inst.memory_mut(mem as u32).map(|m| m.grow(delta)) {
        Some(Ok(Some(old))) => old,
        _ => GROW_REFUSED,
    }
}

/// `memory.fill`: sets `len` bytes at `dst` of memory `mem` to `val`.
///
/// # Safety
/// Only compiled code calls this, with its own `vmctx` (see above).
unsafe extern "C" fn memory_fill(vmctx: *mut u8, mem: u64, dst: u64, val: u64, len: u64) -> u32 {
    // SAFETY: see above.
    let inst = unsafe { instance_of(vmctx) };
    let Some(m) = inst.memory_mut(mem as u32) else { return MEM_OOB };
    let Some(r) = range(low32(dst), low32(len), m.len() as u64) else { return MEM_OOB };
    m.as_mut_slice()[r].fill(val as u8);
    0
}

/// `memory.copy`: copies `len` bytes from `src` of `src_mem` to `dst` of `dst_mem` (overlap allowed).
///
/// # Safety
/// Only compiled code calls this, with its own `vmctx` (see above).
unsafe extern "C" fn memory_copy(vmctx: *mut u8, dst_mem: u64, src_mem: u64, dst: u64, src: u64, len: u64) -> u32 {
    // SAFETY: see above.
    let inst = unsafe { instance_of(vmctx) };
    let (dst, src, len) = (low32(dst), low32(src), low32(len));
    if dst_mem == src_mem {
        let Some(m) = inst.memory_mut(dst_mem as u32) else { return MEM_OOB };
        let size = m.len() as u64;
        let (Some(d), Some(s)) = (range(dst, len, size), range(src, len, size)) else { return MEM_OOB };
        m.as_mut_slice().copy_within(s, d.start);
        return 0;
    }
    let (Some(&dp), Some(&sp)) = (inst.memories.get(dst_mem as usize), inst.memories.get(src_mem as usize)) else {
        return MEM_OOB;
    };
    if dp == sp {
        // SAFETY: a live memory of the store (imported twice under two indices).
        let m = unsafe { &mut *dp };
        let size = m.len() as u64;
        let (Some(d), Some(s)) = (range(dst, len, size), range(src, len, size)) else { return MEM_OOB };
        m.as_mut_slice().copy_within(s, d.start);
        return 0;
    }
    // SAFETY: `dp != sp`, so these borrows do not alias; both are live store objects.
    let (dm, sm) = unsafe { (&mut *dp, &*sp) };
    let (Some(d), Some(s)) = (range(dst, len, dm.len() as u64), range(src, len, sm.len() as u64)) else {
        return MEM_OOB;
    };
    dm.as_mut_slice()[d].copy_from_slice(&sm.as_slice()[s]);
    0
}

/// `memory.init`: copies `len` bytes from `src` of data segment `data` to `dst` of memory `mem`.
///
/// # Safety
/// Only compiled code calls this, with its own `vmctx` (see above).
unsafe extern "C" fn memory_init(vmctx: *mut u8, mem: u64, data: u64, dst: u64, src: u64, len: u64) -> u32 {
    // SAFETY: see above.
    let inst = unsafe { instance_of(vmctx) };
    let (dst, src, len) = (low32(dst), low32(src), low32(len));
    let Some(&mp) = inst.memories.get(mem as usize) else { return MEM_OOB };
    let Some(bytes) = inst.data_segment(data as u32) else { return MEM_OOB };
    // SAFETY: a live memory of the store; the data bytes are the module's, not memory.
    let m = unsafe { &mut *mp };
    let (Some(s), Some(d)) = (range(src, len, bytes.len() as u64), range(dst, len, m.len() as u64)) else {
        return MEM_OOB;
    };
    m.as_mut_slice()[d].copy_from_slice(&bytes[s]);
    0
}

/// `data.drop`: drops data segment `data`.
///
/// # Safety
/// Only compiled code calls this, with its own `vmctx` (see above).
unsafe extern "C" fn data_drop(vmctx: *mut u8, data: u64) -> u32 {
    // SAFETY: see above.
    let inst = unsafe { instance_of(vmctx) };
    if let Some(d) = inst.dropped_data.get_mut(data as usize) {
        *d = true;
    }
    0
}

/// `table.grow`: grows table `table` by `delta` elements set to `init`; the old size, or `u64::MAX`.
///
/// # Safety
/// Only compiled code calls this, with its own `vmctx` (see above).
unsafe extern "C" fn table_grow(vmctx: *mut u8, table: u64, init: u64, delta: u64) -> u64 {
    let delta = low32(delta);
    let (old, max, declared) = {
        // SAFETY: see above.
        let inst = unsafe { instance_of(vmctx) };
        let Some(t) = inst.table_mut(table as u32) else { return GROW_REFUSED };
        (t.len(), t.max(), t.declared_ty().maximum)
    };
    if delta == 0 {
        return old;
    }
    let new = old + delta;
    if new > max {
        return GROW_REFUSED;
    }
    // SAFETY: as in `memory_grow`.
    match unsafe { ask_growing(GrowKind::Table, old as usize, new as usize, declared.map(|m| m as usize)) } {
        Ok(true) => {}
        Ok(false) => return GROW_REFUSED,
        Err(()) => return GROW_FAILED,
    }
    // SAFETY: see above.
    let inst = unsafe { instance_of(vmctx) };
    inst.table_mut(table as u32).and_then(|t| t.grow(delta, init)).unwrap_or(GROW_REFUSED)
}

/// `table.fill`: sets `len` elements at `dst` of table `table` to `val`.
///
/// # Safety
/// Only compiled code calls this, with its own `vmctx` (see above).
unsafe extern "C" fn table_fill(vmctx: *mut u8, table: u64, dst: u64, val: u64, len: u64) -> u32 {
    // SAFETY: see above.
    let inst = unsafe { instance_of(vmctx) };
    let Some(t) = inst.table_mut(table as u32) else { return TABLE_OOB };
    let Some(r) = range(low32(dst), low32(len), t.len()) else { return TABLE_OOB };
    t.elements_mut()[r].fill(val);
    0
}

/// `table.copy`: copies `len` elements from `src` of `src_table` to `dst` of `dst_table` (overlap allowed).
///
/// # Safety
/// Only compiled code calls this, with its own `vmctx` (see above).
unsafe extern "C" fn table_copy(vmctx: *mut u8, dst_table: u64, src_table: u64, dst: u64, src: u64, len: u64) -> u32 {
    // SAFETY: see above.
    let inst = unsafe { instance_of(vmctx) };
    let (dst, src, len) = (low32(dst), low32(src), low32(len));
    let (Some(&dp), Some(&sp)) = (inst.tables.get(dst_table as usize), inst.tables.get(src_table as usize)) else {
        return TABLE_OOB;
    };
    if dp == sp {
        // SAFETY: a live table of the store.
        let t = unsafe { &mut *dp };
        let (Some(d), Some(s)) = (range(dst, len, t.len()), range(src, len, t.len())) else { return TABLE_OOB };
        t.elements_mut().copy_within(s, d.start);
        return 0;
    }
    // SAFETY: distinct live tables of the store, so the borrows do not alias.
    let (dt, st) = unsafe { (&mut *dp, &*sp) };
    let (Some(d), Some(s)) = (range(dst, len, dt.len()), range(src, len, st.len())) else { return TABLE_OOB };
    dt.elements_mut()[d].copy_from_slice(&st.elements()[s]);
    0
}

/// `table.init`: copies `len` items from `src` of element segment `elem` to `dst` of table `table`.
///
/// # Safety
/// Only compiled code calls this, with its own `vmctx` (see above).
unsafe extern "C" fn table_init(vmctx: *mut u8, table: u64, elem: u64, dst: u64, src: u64, len: u64) -> u32 {
    // SAFETY: see above.
    let inst = unsafe { instance_of(vmctx) };
    let (dst, src, len) = (low32(dst), low32(src), low32(len));
    let Some(&tp) = inst.tables.get(table as usize) else { return TABLE_OOB };
    let Some(items) = inst.elems.get(elem as usize) else { return TABLE_OOB };
    // SAFETY: a live table of the store; the items belong to the instance, not the table.
    let t = unsafe { &mut *tp };
    let (Some(s), Some(d)) = (range(src, len, items.len() as u64), range(dst, len, t.len())) else {
        return TABLE_OOB;
    };
    t.elements_mut()[d].copy_from_slice(&items[s]);
    0
}

/// `elem.drop`: drops element segment `elem`.
///
/// # Safety
/// Only compiled code calls this, with its own `vmctx` (see above).
unsafe extern "C" fn elem_drop(vmctx: *mut u8, elem: u64) -> u32 {
    // SAFETY: see above.
    let inst = unsafe { instance_of(vmctx) };
    if let Some(e) = inst.elems.get_mut(elem as usize) {
        *e = Box::new([]);
    }
    0
}

/// `ref.func`: the address of function `func`'s `VMFuncRef` in this instance's VMContext (null if out of range).
///
/// # Safety
/// Only compiled code calls this, with its own `vmctx` (see above).
unsafe extern "C" fn ref_func(vmctx: *mut u8, func: u64) -> *const VMFuncRef {
    // SAFETY: see above.
    let inst = unsafe { instance_of(vmctx) };
    if func >= inst.vmctx.offsets().num_funcs as u64 {
        return std::ptr::null();
    }
    inst.vmctx.funcref_ptr(func as u32)
}
