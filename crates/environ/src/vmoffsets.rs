//! The `VMContext` layout: what compiled code finds at which offset from `r14`.
//!
//! ```text
//!  r14 ─► +0   stack_limit: usize         lowest rsp a Wasm frame may use
//!         +8   memory0_base: *mut u8      base of memory 0 (never moves: guard-page memories)
//!         +16  builtins: *const usize     table of builtin functions (`Builtin as usize`)
//!         +24  instance: *mut ()          the runtime's instance (opaque to code)
//!         +32  epoch_ptr: *const u64      the engine's epoch counter (never null)
//!         +40  epoch_deadline: u64        the store's deadline: code traps with
//!                                         `Interrupt` once `*epoch_ptr >= deadline`
//!         +48  fuel_ptr: *mut i64         the store's remaining fuel (never null): code
//!                                         subtracts 1 and traps with `OutOfFuel` below 0
//!         +56  reserved
//!         +64  funcrefs[num_funcs]:       VMFuncRef { code, vmctx, sig: u32, pad } (24 bytes)
//!              tables[num_tables]:        *mut VMTableDefinition { base: *mut u64, length: u64 }
//!              memories[num_memories]:    *mut VMMemoryDefinition { base: *mut u8, length: u64 }
//!              globals[num_globals]:      *mut VMGlobal (16 bytes; the value in the low 8)
//!              type_ids[num_types]:       u32, the engine-wide signature id of each type
//! ```
//! Every function, imported or defined, has a `VMFuncRef` in its instance's VMContext;
//! an imported one's is copied from the exporter. Tables hold pointers to `VMFuncRef`s
//! (0 = null) or externref handles. Header offsets are fixed for all modules; the
//! offsets of the arrays depend on the module's counts and are applied at finalize
//! through relocations.
//!
//! The epoch and fuel fields are read only by code compiled with interruption checks
//! or fuel metering (engine settings, so part of the engine fingerprint); the runtime
//! fills them in every VMContext all the same. `epoch_deadline` is a copy of the
//! store's deadline in each of the store's VMContexts (like `stack_limit`); the epoch
//! counter and the fuel are shared, so they are reached through pointers.

use crate::module::ModuleEnv;

pub const VMCTX_STACK_LIMIT: u32 = 0;
pub const VMCTX_MEMORY0_BASE: u32 = 8;
pub const VMCTX_BUILTINS: u32 = 16;
pub const VMCTX_INSTANCE: u32 = 24;
pub const VMCTX_EPOCH_PTR: u32 = 32;
pub const VMCTX_EPOCH_DEADLINE: u32 = 40;
pub const VMCTX_FUEL_PTR: u32 = 48;
pub const VMCTX_HEADER_SIZE: u32 = 64;

/// `VMFuncRef` layout (24 bytes).
pub const FUNCREF_CODE: u32 = 0;
pub const FUNCREF_VMCTX: u32 = 8;
pub const FUNCREF_SIG: u32 = 16;
pub const FUNCREF_SIZE: u32 = 24;

/// `VMTableDefinition` layout: element base pointer, then length in elements.
pub const TABLE_BASE: u32 = 0;
pub const TABLE_LENGTH: u32 = 8;

/// `VMMemoryDefinition` layout: base pointer, then length in bytes.
pub const MEMORY_BASE: u32 = 0;
pub const MEMORY_LENGTH: u32 = 8;

/// The offsets of one module's VMContext arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VMOffsets {
    pub num_funcs: u32,
    pub num_tables: u32,
    pub num_memories: u32,
    pub num_globals: u32,
    pub num_types: u32,
}

impl VMOffsets {
    pub fn new(m: &ModuleEnv) -> VMOffsets {
        VMOffsets {
            num_funcs: m.functions.len() as u32,
            num_tables: m.tables.len() as u32,
            num_memories: m.memories.len() as u32,
            num_globals: m.globals.len() as u32,
            num_types: m.types.len() as u32,
        }
    }

    pub fn funcref(&self, index: u32) -> u32 {
        VMCTX_HEADER_SIZE + index * FUNCREF_SIZE
    }

    pub fn tables_start(&self) -> u32 {
        VMCTX_HEADER_SIZE + self.num_funcs * FUNCREF_SIZE
    }

    pub fn table(&self, index: u32) -> u32 {
        self.tables_start() + index * 8
    }

    pub fn memories_start(&self) -> u32 {
        self.tables_start() + self.num_tables * 8
    }

    pub fn memory(&self, index: u32) -> u32 {
        self.memories_start() + index * 8
    }

    pub fn globals_start(&self) -> u32 {
        self.memories_start() + self.num_memories * 8
    }

    pub fn global(&self, index: u32) -> u32 {
        self.globals_start() + index * 8
    }

    pub fn type_ids_start(&self) -> u32 {
        self.globals_start() + self.num_globals * 8
    }

    /// The offset of type `index`'s signature id (`call_indirect` compares a callee's
    /// `VMFuncRef::sig` with it).
    pub fn type_id(&self, index: u32) -> u32 {
        self.type_ids_start() + index * 4
    }

    /// The VMContext's size in bytes.
    pub fn size(&self) -> u32 {
        self.type_ids_start() + self.num_types * 4
    }
}

/// Runtime functions compiled code calls through the builtins table (SysV ABI:
/// `extern "C" fn(vmctx, args...) -> u64`; `args` are zero-extended to 64 bits).
/// Those that can trap return a [`crate::TrapCode`] value in `eax`, 0 for success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Builtin {
    /// `(mem, delta_pages) -> old_pages, or u32::MAX when refused; bit 32 set when the
    /// store's resource limiter failed (the code then traps with `HostError`)`.
    MemoryGrow = 0,
    /// `(mem, dst, val, len) -> trap`.
    MemoryFill,
    /// `(dst_mem, src_mem, dst, src, len) -> trap`.
    MemoryCopy,
    /// `(mem, data, dst, src, len) -> trap`.
    MemoryInit,
    /// `(data)`.
    DataDrop,
    /// `(table, init, delta) -> old size, or u32::MAX when refused; bit 32 set when the
    /// resource limiter failed (as `MemoryGrow`)`.
    TableGrow,
    /// `(table, dst, val, len) -> trap`.
    TableFill,
    /// `(dst_table, src_table, dst, src, len) -> trap`.
    TableCopy,
    /// `(table, elem, dst, src, len) -> trap`.
    TableInit,
    /// `(elem)`.
    ElemDrop,
    /// `(func_index) -> *const VMFuncRef` for `ref.func` of any function.
    RefFunc,
}

impl Builtin {
    pub const COUNT: usize = 11;

    /// Offset of this builtin's pointer in the builtins table.
    pub fn table_offset(self) -> u32 {
        self as u32 * 8
    }
}
