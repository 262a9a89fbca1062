//! Values ([`Val`]), external values ([`Extern`]) and their types ([`ExternType`]).

use crate::{Func, FuncType, Global, GlobalType, Memory, MemoryType, Table, TableType, ValType};

/// A WebAssembly value. Floats are kept as their bits so that NaN payloads survive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val {
    I32(i32),
    I64(i64),
    /// An `f32`, as its bits.
    F32(u32),
    /// An `f64`, as its bits.
    F64(u64),
    FuncRef(Option<Func>),
    /// An `externref`: an opaque host handle, or null.
    ExternRef(Option<u32>),
}

impl Val {
    pub fn ty(&self) -> ValType {
        match self {
            Val::I32(_) => ValType::I32,
            Val::I64(_) => ValType::I64,
            Val::F32(_) => ValType::F32,
            Val::F64(_) => ValType::F64,
            Val::FuncRef(_) => ValType::FuncRef,
            Val::ExternRef(_) => ValType::ExternRef,
        }
    }

    /// The default (zero or null) value of a type.
    pub fn default_for(ty: ValType) -> Val {
        match ty {
            ValType::I32 => Val::I32(0),
            ValType::I64 => Val::I64(0),
            ValType::F32 => Val::F32(0),
            ValType::F64 => Val::F64(0),
            ValType::FuncRef => Val::FuncRef(None),
            ValType::ExternRef => Val::ExternRef(None),
        }
    }

    pub fn i32(&self) -> Option<i32> {
        if let Val::I32(v) = self { Some(*v) } else { None }
    }
    pub fn i64(&self) -> Option<i64> {
        if let Val::I64(v) = self { Some(*v) } else { None }
    }
    pub fn f32(&self) -> Option<f32> {
        if let Val::F32(v) = self { Some(f32::from_bits(*v)) } else { None }
    }
    pub fn f64(&self) -> Option<f64> {
        if let Val::F64(v) = self { Some(f64::from_bits(*v)) } else { None }
    }
    pub fn funcref(&self) -> Option<Option<&Func>> {
        if let Val::FuncRef(v) = self { Some(v.as_ref()) } else { None }
    }
    pub fn externref(&self) -> Option<Option<u32>> {
        if let Val::ExternRef(v) = self { Some(*v) } else { None }
    }

    /// # Panics
    /// If the value is not an `i32`.
    pub fn unwrap_i32(&self) -> i32 {
        self.i32().unwrap_or_else(|| panic!("expected an i32, found {:?}", self))
    }
    /// # Panics
    /// If the value is not an `i64`.
    pub fn unwrap_i64(&self) -> i64 {
        self.i64().unwrap_or_else(|| panic!("expected an i64, found {:?}", self))
    }
    /// # Panics
    /// If the value is not an `f32`.
    pub fn unwrap_f32(&self) -> f32 {
        self.f32().unwrap_or_else(|| panic!("expected an f32, found {:?}", self))
    }
    /// # Panics
    /// If the value is not an `f64`.
    pub fn unwrap_f64(&self) -> f64 {
        self.f64().unwrap_or_else(|| panic!("expected an f64, found {:?}", self))
    }
    /// # Panics
    /// If the value is not a `funcref`.
    pub fn unwrap_funcref(&self) -> Option<&Func> {
        self.funcref().unwrap_or_else(|| panic!("expected a funcref, found {:?}", self))
    }
    /// # Panics
    /// If the value is not an `externref`.
    pub fn unwrap_externref(&self) -> Option<u32> {
        self.externref().unwrap_or_else(|| panic!("expected an externref, found {:?}", self))
    }
}

impl From<i32> for Val {
    fn from(v: i32) -> Val {
        Val::I32(v)
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::I64(v)
    }
}
impl From<f32> for Val {
    fn from(v: f32) -> Val {
        Val::F32(v.to_bits())
    }
}
impl From<f64> for Val {
    fn from(v: f64) -> Val {
        Val::F64(v.to_bits())
    }
}
impl From<Func> for Val {
    fn from(f: Func) -> Val {
        Val::FuncRef(Some(f))
    }
}

/// Something a module can import or export.
#[derive(Clone, Copy, Debug)]
pub enum Extern {
    Func(Func),
    Global(Global),
    Table(Table),
    Memory(Memory),
}

impl Extern {
    pub fn into_func(self) -> Option<Func> {
        if let Extern::Func(f) = self { Some(f) } else { None }
    }
    pub fn into_global(self) -> Option<Global> {
        if let Extern::Global(g) = self { Some(g) } else { None }
    }
    pub fn into_table(self) -> Option<Table> {
        if let Extern::Table(t) = self { Some(t) } else { None }
    }
    pub fn into_memory(self) -> Option<Memory> {
        if let Extern::Memory(m) = self { Some(m) } else { None }
    }

    /// The type of this external value.
    pub fn ty(&self, store: impl crate::AsContext) -> ExternType {
        let store = store.as_context();
        match self {
            Extern::Func(f) => ExternType::Func(f.ty(&store)),
            Extern::Global(g) => ExternType::Global(g.ty(&store)),
            Extern::Table(t) => ExternType::Table(t.ty(&store)),
            Extern::Memory(m) => ExternType::Memory(m.ty(&store)),
        }
    }

}

impl From<Func> for Extern {
    fn from(f: Func) -> Extern {
        Extern::Func(f)
    }
}
impl From<Global> for Extern {
    fn from(g: Global) -> Extern {
        Extern::Global(g)
    }
}
impl From<Table> for Extern {
    fn from(t: Table) -> Extern {
        Extern::Table(t)
    }
}
impl From<Memory> for Extern {
    fn from(m: Memory) -> Extern {
        Extern::Memory(m)
    }
}

/// The type of an import or export.
#[derive(Clone, Debug, PartialEq)]
pub enum ExternType {
    Func(FuncType),
    Global(GlobalType),
    Table(TableType),
    Memory(MemoryType),
}

impl ExternType {
    pub fn func(&self) -> Option<&FuncType> {
        if let ExternType::Func(f) = self { Some(f) } else { None }
    }
    pub fn global(&self) -> Option<&GlobalType> {
        if let ExternType::Global(g) = self { Some(g) } else { None }
    }
    pub fn table(&self) -> Option<&TableType> {
        if let ExternType::Table(t) = self { Some(t) } else { None }
    }
    pub fn memory(&self) -> Option<&MemoryType> {
        if let ExternType::Memory(m) = self { Some(m) } else { None }
    }

}
