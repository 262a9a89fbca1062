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
use std::collections::HashMap;

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

/// Assigns slots in first-use order while a body is translated. Reusable across
/// functions: [`SlotAllocator::reset`] keeps the allocations.
#[derive(Default)]
pub struct SlotAllocator {
    maps: [HashMap<u32, u32>; 7],
    pub env: SlotEnv,
    pub params: FunctionParameters,
}

impl SlotAllocator {
    pub fn reset(&mut self) {
        for m in &mut self.maps {
            m.clear();
        }
        self.env = SlotEnv::default();
        self.params = FunctionParameters::default();
    }

    fn slot(&mut self, kind: usize, index: u32) -> (u32, bool) {
        let next = self.maps[kind].len() as u32;
        let slot = *self.maps[kind].entry(index).or_insert(next);
        (slot, slot == next)
    }

    pub fn func(&mut self, m: &ModuleEnv, index: u32) -> FuncSlot {
        let (s, new) = self.slot(0, index);
        if new {
            self.params.funcs.push(index);
            self.env.funcs.push(FuncSlotInfo { ty: m.func_type(index).clone(), imported: m.is_imported_func(index) });
        }
        FuncSlot(s)
    }

    pub fn global(&mut self, m: &ModuleEnv, index: u32) -> GlobalSlot {
        let (s, new) = self.slot(1, index);
        if new {
            self.params.globals.push(index);
            self.env.globals.push(m.globals[index as usize]);
        }
        GlobalSlot(s)
    }

    pub fn table(&mut self, m: &ModuleEnv, index: u32) -> TableSlot {
        let (s, new) = self.slot(2, index);
        if new {
            self.params.tables.push(index);
            // Code checks table bounds at run time: only the element type matters.
            let t = m.tables[index as usize];
            self.env.tables.push(TableType { minimum: 0, maximum: None, ..t });
        }
        TableSlot(s)
    }

    pub fn ty(&mut self, m: &ModuleEnv, index: u32) -> TypeSlot {
        let (s, new) = self.slot(3, index);
        if new {
            self.params.types.push(index);
            self.env.types.push(m.types[index as usize].clone());
        }
        TypeSlot(s)
    }

    pub fn memory(&mut self, m: &ModuleEnv, index: u32) -> MemorySlot {
        let (s, new) = self.slot(4, index);
        if new {
            self.params.memories.push(index);
            // Guard pages make code independent of a memory's limits.
            let mt = m.memories[index as usize];
            self.env.memories.push(MemoryType { minimum: 0, maximum: None, ..mt });
        }
        MemorySlot(s)
    }

    pub fn data(&mut self, index: u32) -> DataSlot {
        let (s, new) = self.slot(5, index);
        if new {
            self.params.datas.push(index);
            self.env.datas += 1;
        }
        DataSlot(s)
    }

    pub fn elem(&mut self, m: &ModuleEnv, index: u32) -> ElemSlot {
        let (s, new) = self.slot(6, index);
        if new {
            self.params.elems.push(index);
            self.env.elems.push(m.elems[index as usize].ty);
        }
        ElemSlot(s)
    }
}
