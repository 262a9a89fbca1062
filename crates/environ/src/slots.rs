//! Function-local slots: how compiled code names module entities (DESIGN.md §2.2).
//!
//! While a body is translated, every module index it uses (callee, global, table, type,
//! memory, data and element segment) gets a slot of its kind, numbered in order of first
//! use. Code and Microwasm name slots only; a stencil's relocations name slots only;
//! [`FunctionParameters`] say which module index each slot stands for in one module, and
//! are applied when the stencil is finalized.
//!
//! [`SlotEnv`] records, per slot, exactly what the code and its validation depend on
//! (a callee's signature and whether it is imported, a global's type, ...): it is part of
//! the stencil key, and two functions whose bodies and `SlotEnv`s agree compile to the
//! same stencil.
//!
//! Invariant: slot numbers are dense and assigned in first-use order, so they depend on
//! the body alone, never on the module's numbering.

use crate::module::ModuleEnv;
use crate::types::*;

macro_rules! slot_newtypes {
    ($($(#[$m:meta])* $name:ident),*) => {$(
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            pub fn index(self) -> usize { self.0 as usize }
        }
    )*};
}

slot_newtypes!(
    /// A callee, by slot.
    FuncSlot,
    /// A global, by slot.
    GlobalSlot,
    /// A table, by slot.
    TableSlot,
    /// A type (for `call_indirect` signature checks), by slot.
    TypeSlot,
    /// A memory, by slot.
    MemorySlot,
    /// A data segment, by slot.
    DataSlot,
    /// An element segment, by slot.
    ElemSlot,
    /// A numeric immediate of the body (`*.const` operand or memarg offset), in body order.
    ConstIdx
);

/// What code may depend on about a callee.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FuncSlotInfo {
    pub ty: FuncType,
    /// Imported callees are called through their `VMFuncRef`; defined ones directly.
    pub imported: bool,
}

/// Per slot, what the function's code and validity depend on (part of its stencil key).
/// Table and memory limits are not recorded (stored as 0 and `None`): code checks table
/// bounds at run time and relies on guard pages for memories.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SlotEnv {
    pub funcs: Vec<FuncSlotInfo>,
    pub globals: Vec<GlobalType>,
    pub tables: Vec<TableType>,
    pub types: Vec<FuncType>,
    pub memories: Vec<MemoryType>,
    /// Data segments carry nothing the code depends on; only their count.
    pub datas: u32,
    /// Whether the module has a data count section (set when a data slot is used:
    /// `memory.init` and `data.drop` are only valid with one).
    pub data_count_section: bool,
    pub elems: Vec<RefType>,
}

/// Which module index each slot stands for in one module (applied by finalize).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FunctionParameters {
    pub funcs: Vec<u32>,
    pub globals: Vec<u32>,
    pub tables: Vec<u32>,
    pub types: Vec<u32>,
    pub memories: Vec<u32>,
    pub datas: Vec<u32>,
    pub elems: Vec<u32>,
}

/// The seven kinds of module index a body can name, each with its own slot numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlotKind {
    Func = 0,
    Global = 1,
    Table = 2,
    Type = 3,
    Memory = 4,
    Data = 5,
    Elem = 6,
}

/// Assigns slots in first-use order while a body is translated or fingerprinted (the
/// translator and the stencil key share it, so they number slots alike). Reusable
/// across functions: [`SlotAllocator::reset`] keeps the allocations.
///
/// Lookups go through a per-kind array indexed by module index whose entries are
/// stamped with the body they belong to, so a repeated index costs one array load and
/// nothing is cleared between bodies. Callers bounds-check indices against the module
/// before asking for their slot.
#[derive(Default)]
pub struct SlotAllocator {
    /// The current body's stamp; never 0 after the first [`SlotAllocator::reset`].
    stamp: u32,
    /// Per kind, by module index: `(stamp, slot)`.
    memo: [Vec<(u32, u32)>; 7],
    /// Slots assigned so far in this body, per kind.
    counts: [u32; 7],
    pub env: SlotEnv,
    pub params: FunctionParameters,
}

impl SlotAllocator {
    /// Starts a new body.
    pub fn reset(&mut self) {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.memo.iter_mut().for_each(Vec::clear);
            self.stamp = 1;
        }
        self.counts = [0; 7];
        self.env = SlotEnv::default();
        self.params = FunctionParameters::default();
    }

    /// The slot of module index `index` of kind `kind`, assigning the next one (and
    /// recording what the code depends on) at its first use in the body.
    #[inline(always)]
    pub fn slot(&mut self, m: &ModuleEnv, kind: SlotKind, index: u32) -> u32 {
        if let Some(&(stamp, slot)) = self.memo[kind as usize].get(index as usize) {
            if stamp == self.stamp {
                return slot;
            }
        }
        self.first_use(m, kind, index)
    }

    #[inline(never)]
    fn first_use(&mut self, m: &ModuleEnv, kind: SlotKind, index: u32) -> u32 {
        let slot = self.counts[kind as usize];
        self.counts[kind as usize] += 1;
        let (p, e) = (&mut self.params, &mut self.env);
        match kind {
            SlotKind::Func => {
                p.funcs.push(index);
                e.funcs.push(FuncSlotInfo { ty: m.func_type(index).clone(), imported: m.is_imported_func(index) });
            }
            SlotKind::Global => {
                p.globals.push(index);
                e.globals.push(m.globals[index as usize]);
            }
            SlotKind::Table => {
                p.tables.push(index);
                // Code checks table bounds at run time: only the element type matters.
                let t = m.tables[index as usize];
                e.tables.push(TableType { minimum: 0, maximum: None, ..t });
            }
            SlotKind::Type => {
                p.types.push(index);
                e.types.push(m.types[index as usize].clone());
            }
            SlotKind::Memory => {
                p.memories.push(index);
                // Guard pages make code independent of a memory's limits.
                let mt = m.memories[index as usize];
                e.memories.push(MemoryType { minimum: 0, maximum: None, ..mt });
            }
            SlotKind::Data => {
                p.datas.push(index);
                e.datas += 1;
                e.data_count_section = m.has_data_count;
            }
            SlotKind::Elem => {
                p.elems.push(index);
                e.elems.push(m.elems[index as usize].ty);
            }
        }
        let memo = &mut self.memo[kind as usize];
        let i = index as usize;
        if memo.len() <= i {
            memo.resize(i + 1, (0, 0));
        }
        memo[i] = (self.stamp, slot);
        slot
    }

    pub fn func(&mut self, m: &ModuleEnv, index: u32) -> FuncSlot {
        FuncSlot(self.slot(m, SlotKind::Func, index))
    }

    pub fn global(&mut self, m: &ModuleEnv, index: u32) -> GlobalSlot {
        GlobalSlot(self.slot(m, SlotKind::Global, index))
    }

    pub fn table(&mut self, m: &ModuleEnv, index: u32) -> TableSlot {
        TableSlot(self.slot(m, SlotKind::Table, index))
    }

    pub fn ty(&mut self, m: &ModuleEnv, index: u32) -> TypeSlot {
        TypeSlot(self.slot(m, SlotKind::Type, index))
    }

    pub fn memory(&mut self, m: &ModuleEnv, index: u32) -> MemorySlot {
        MemorySlot(self.slot(m, SlotKind::Memory, index))
    }

    pub fn data(&mut self, m: &ModuleEnv, index: u32) -> DataSlot {
        DataSlot(self.slot(m, SlotKind::Data, index))
    }

    pub fn elem(&mut self, m: &ModuleEnv, index: u32) -> ElemSlot {
        ElemSlot(self.slot(m, SlotKind::Elem, index))
    }
}
