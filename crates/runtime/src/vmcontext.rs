//! The data structures compiled code reads and writes, with the layout
//! `quickbeam_environ::vmoffsets` specifies, and [`VMContextAlloc`], an owned VMContext.
//!
//! Invariant: each `#[repr(C)]` type here matches its offsets in `vmoffsets` (checked at
//! compile time below).

use quickbeam_environ::*;
use std::alloc::Layout;
use std::ptr::NonNull;

/// A function reference: what `call_indirect`, imported calls and tables use.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VMFuncRef {
    /// The function's entry point (for host functions, the host adapter).
    pub code: *const u8,
    /// The callee's VMContext (for host functions, its host context).
    pub vmctx: *mut u8,
    /// The engine-wide signature id (never 0 for a real function).
    pub sig: u32,
    pub _pad: u32,
}

impl VMFuncRef {
    pub const NULL: VMFuncRef = VMFuncRef { code: std::ptr::null(), vmctx: std::ptr::null_mut(), sig: 0, _pad: 0 };
}

/// A linear memory as compiled code sees it.
#[repr(C)]
#[derive(Debug)]
pub struct VMMemoryDefinition {
    pub base: *mut u8,
    pub length: u64,
}

/// A table as compiled code sees it: `length` elements of 8 bytes at `base`.
#[repr(C)]
#[derive(Debug)]
pub struct VMTableDefinition {
    pub base: *mut u64,
    pub length: u64,
}

/// A global's storage: the value's bits in the low 8 bytes (i32/f32 in the low 4).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VMGlobal {
    pub bits: u64,
    pub _hi: u64,
}

const _: () = {
    assert!(std::mem::offset_of!(VMFuncRef, code) == FUNCREF_CODE as usize);
    assert!(std::mem::offset_of!(VMFuncRef, vmctx) == FUNCREF_VMCTX as usize);
    assert!(std::mem::offset_of!(VMFuncRef, sig) == FUNCREF_SIG as usize);
    assert!(std::mem::size_of::<VMFuncRef>() == FUNCREF_SIZE as usize);
    assert!(std::mem::offset_of!(VMMemoryDefinition, base) == MEMORY_BASE as usize);
    assert!(std::mem::offset_of!(VMMemoryDefinition, length) == MEMORY_LENGTH as usize);
    assert!(std::mem::offset_of!(VMTableDefinition, base) == TABLE_BASE as usize);
    assert!(std::mem::offset_of!(VMTableDefinition, length) == TABLE_LENGTH as usize);
    assert!(std::mem::size_of::<VMGlobal>() == 16);
};

/// An owned, zero-initialized, 16-byte-aligned VMContext of one module's layout. Its
/// address never changes. Accessors check every offset against the layout, so a wrong
/// index panics instead of writing out of bounds.
#[derive(Debug)]
pub struct VMContextAlloc {
    ptr: NonNull<u8>,
    offsets: VMOffsets,
    layout: Layout,
}

// SAFETY: the allocation is plain memory owned by this value; the raw pointers stored in
// it are only dereferenced by compiled code and by the runtime under the store's rules.
unsafe impl Send for VMContextAlloc {}
// SAFETY: `&VMContextAlloc` only reads through the pointer.
unsafe impl Sync for VMContextAlloc {}

impl VMContextAlloc {
    pub fn new(offsets: VMOffsets) -> VMContextAlloc {
        let size = (offsets.size() as usize).max(VMCTX_HEADER_SIZE as usize);
        let layout = Layout::from_size_align(size, 16).expect("VMContext size overflows");
        // SAFETY: `layout` has a nonzero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        VMContextAlloc { ptr, offsets, layout }
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn offsets(&self) -> &VMOffsets {
        &self.offsets
    }

    pub fn size(&self) -> usize {
        self.layout.size()
    }

    fn write<T: Copy>(&mut self, offset: u32, value: T) {
        let offset = offset as usize;
        assert!(offset + std::mem::size_of::<T>() <= self.layout.size() && offset.is_multiple_of(std::mem::align_of::<T>()));
        // SAFETY: in bounds and aligned (checked above); the allocation is ours.
        unsafe { self.ptr.as_ptr().add(offset).cast::<T>().write(value) }
    }

    fn read<T: Copy>(&self, offset: u32) -> T {
        let offset = offset as usize;
        assert!(offset + std::mem::size_of::<T>() <= self.layout.size() && offset.is_multiple_of(std::mem::align_of::<T>()));
        // SAFETY: in bounds and aligned (checked above); every field is plain data.
        unsafe { self.ptr.as_ptr().add(offset).cast::<T>().read() }
    }

    pub fn set_stack_limit(&mut self, limit: usize) {
        self.write(VMCTX_STACK_LIMIT, limit);
    }

    pub fn stack_limit(&self) -> usize {
        self.read(VMCTX_STACK_LIMIT)
    }

    pub fn set_memory0_base(&mut self, base: *mut u8) {
        self.write(VMCTX_MEMORY0_BASE, base);
    }

    /// The engine's epoch counter (`VMCTX_EPOCH_PTR`): must stay valid while code of
    /// this VMContext can run.
    pub fn set_epoch_ptr(&mut self, epoch: *const u64) {
        self.write(VMCTX_EPOCH_PTR, epoch);
    }

    pub fn set_epoch_deadline(&mut self, deadline: u64) {
        self.write(VMCTX_EPOCH_DEADLINE, deadline);
    }

    pub fn epoch_deadline(&self) -> u64 {
        self.read(VMCTX_EPOCH_DEADLINE)
    }

    /// The store's fuel counter (`VMCTX_FUEL_PTR`): must stay valid while code of this
    /// VMContext can run.
    pub fn set_fuel_ptr(&mut self, fuel: *mut i64) {
        self.write(VMCTX_FUEL_PTR, fuel);
    }

    pub fn set_builtins(&mut self, table: *const usize) {
        self.write(VMCTX_BUILTINS, table);
    }

    pub fn set_instance(&mut self, instance: *mut ()) {
        self.write(VMCTX_INSTANCE, instance);
    }

    /// A pointer to function `index`'s `VMFuncRef` slot.
    pub fn funcref_ptr(&self, index: u32) -> *mut VMFuncRef {
        assert!(index < self.offsets.num_funcs);
        // SAFETY: the slot is inside the allocation (index checked against the layout).
        unsafe { self.ptr.as_ptr().add(self.offsets.funcref(index) as usize).cast() }
    }

    pub fn set_funcref(&mut self, index: u32, f: VMFuncRef) {
        assert!(index < self.offsets.num_funcs);
        self.write(self.offsets.funcref(index), f);
    }

    pub fn funcref(&self, index: u32) -> VMFuncRef {
        assert!(index < self.offsets.num_funcs);
        self.read(self.offsets.funcref(index))
    }

    pub fn set_table(&mut self, index: u32, def: *mut VMTableDefinition) {
        assert!(index < self.offsets.num_tables);
        self.write(self.offsets.table(index), def);
    }

    pub fn set_memory(&mut self, index: u32, def: *mut VMMemoryDefinition) {
        assert!(index < self.offsets.num_memories);
        self.write(self.offsets.memory(index), def);
    }

    pub fn set_global(&mut self, index: u32, g: *mut VMGlobal) {
        assert!(index < self.offsets.num_globals);
        self.write(self.offsets.global(index), g);
    }

    pub fn set_type_id(&mut self, index: u32, sig: u32) {
        assert!(index < self.offsets.num_types);
        self.write(self.offsets.type_id(index), sig);
    }

    /// If `ptr` is the address of one of this VMContext's `VMFuncRef` slots, its
    /// function index.
    pub fn funcref_index_of(&self, ptr: usize) -> Option<u32> {
        let start = self.ptr.as_ptr() as usize + VMCTX_HEADER_SIZE as usize;
        let rel = ptr.checked_sub(start)?;
        let i = rel / FUNCREF_SIZE as usize;
        (rel % FUNCREF_SIZE as usize == 0 && i < self.offsets.num_funcs as usize).then_some(i as u32)
    }
}

impl Drop for VMContextAlloc {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; never freed elsewhere.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
