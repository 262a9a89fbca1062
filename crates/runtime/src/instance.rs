//! [`CompiledModule`]: a module's environment and executable code, shared by its
//! instances; [`Instance`]: one instantiation's VMContext and per-instance state (the
//! memories, tables and globals it uses, its element and data segments).
//!
//! Invariants: an instance's VMContext header points back to the instance; every
//! pointer in its VMContext and in `memories`/`tables`/`globals` points to an object
//! owned by the same store, which outlives the instance's use.

use crate::code::CodeMemory;
use crate::memory::LinearMemory;
use crate::store::{FuncId, GlobalId, MemoryId, TableId};
use crate::table::Table;
use crate::vmcontext::{VMContextAlloc, VMGlobal};
use quickbeam_environ::*;
use std::sync::Arc;

/// A compiled module: what instantiation needs.
#[derive(Debug)]
pub struct CompiledModule {
    pub env: std::sync::Arc<ModuleEnv>,
    pub code: CodeMemory,
    /// Offset of each defined function's code in `code` (by index minus imports).
    pub func_offsets: Vec<u32>,
    /// The engine-wide signature id of each type index.
    pub sig_ids: Vec<u32>,
}

impl CompiledModule {
    /// The bytes of data segment `index`: a slice of the module's bytes (kept in the
    /// code's [`CodeInfo::wasm`](crate::CodeInfo)), not a copy. `None` if there is no
    /// such segment or the module's bytes were not kept.
    pub fn data_segment_bytes(&self, index: usize) -> Option<&[u8]> {
        let range = self.env.data_range(index)?;
        self.code.info().wasm.get(range)
    }
}

/// One instantiation (see the module docs).
pub struct Instance {
    pub(crate) vmctx: VMContextAlloc,
    pub(crate) module: Arc<CompiledModule>,
    pub(crate) memories: Vec<*mut LinearMemory>,
    pub(crate) tables: Vec<*mut Table>,
    pub(crate) globals: Vec<*mut VMGlobal>,
    pub(crate) memory_ids: Vec<MemoryId>,
    pub(crate) table_ids: Vec<TableId>,
    pub(crate) global_ids: Vec<GlobalId>,
    /// Store ids of functions, created on first use (imports: at instantiation).
    pub(crate) func_ids: Vec<Option<FuncId>>,
    pub(crate) dropped_data: Vec<bool>,
    /// Each element segment's items as table values; empty once dropped.
    pub(crate) elems: Vec<Box<[u64]>>,
}

impl Instance {
    pub fn module(&self) -> &Arc<CompiledModule> {
        &self.module
    }

    pub fn vmctx_ptr(&self) -> *mut u8 {
        self.vmctx.as_ptr()
    }

    /// A memory of the instance.
    pub(crate) fn memory_mut(&mut self, index: u32) -> Option<&mut LinearMemory> {
        let p = *self.memories.get(index as usize)?;
        // SAFETY: the pointer is to a memory owned by the instance's store (module
        // invariant); `&mut self` stands for exclusive access to the store's objects.
        Some(unsafe { &mut *p })
    }

    pub(crate) fn table_mut(&mut self, index: u32) -> Option<&mut Table> {
        let p = *self.tables.get(index as usize)?;
        // SAFETY: as in `memory_mut`.
        Some(unsafe { &mut *p })
    }

    /// The data segment's bytes (empty once dropped).
    pub(crate) fn data_segment(&self, index: u32) -> Option<&[u8]> {
        let i = index as usize;
        let bytes = self.module.data_segment_bytes(i)?;
        Some(if self.dropped_data[i] { &[] } else { bytes })
    }

    /// Evaluates a constant expression to a raw value.
    pub(crate) fn eval(&self, e: &ConstExpr) -> u64 {
        let mut stack: Vec<u64> = Vec::with_capacity(4);
        for op in &e.ops {
            let v = match *op {
                ConstOp::I32Const(v) => v as u32 as u64,
                ConstOp::I64Const(v) => v as u64,
                ConstOp::F32Const(b) => b as u64,
                ConstOp::F64Const(b) => b,
                ConstOp::RefNull(_) => 0,
                ConstOp::RefFunc(f) => self.vmctx.funcref_ptr(f) as u64,
                ConstOp::GlobalGet(g) => {
                    // SAFETY: global pointers point to live globals of the store.
                    unsafe { (*self.globals[g as usize]).bits }
                }
                ConstOp::I32Add | ConstOp::I32Sub | ConstOp::I32Mul | ConstOp::I64Add | ConstOp::I64Sub | ConstOp::I64Mul => {
                    let b = stack.pop().unwrap_or(0);
                    let a = stack.pop().unwrap_or(0);
                    match *op {
                        ConstOp::I32Add => (a as u32).wrapping_add(b as u32) as u64,
                        ConstOp::I32Sub => (a as u32).wrapping_sub(b as u32) as u64,
                        ConstOp::I32Mul => (a as u32).wrapping_mul(b as u32) as u64,
                        ConstOp::I64Add => a.wrapping_add(b),
                        ConstOp::I64Sub => a.wrapping_sub(b),
                        _ => a.wrapping_mul(b),
                    }
                }
            };
            stack.push(v);
        }
        stack.pop().unwrap_or(0)
    }
}

/// The instance a VMContext belongs to.
///
/// # Safety
/// `vmctx` must be the VMContext of a live instance, and the caller must have the
/// exclusive access to the instance's store that running its code implies.
pub(crate) unsafe fn instance_of<'a>(vmctx: *mut u8) -> &'a mut Instance {
    // SAFETY: the header's instance field points to the owning instance (module
    // invariant); exclusivity is the caller's promise.
    unsafe { &mut *(*(vmctx.add(VMCTX_INSTANCE as usize) as *const *mut Instance)) }
}
