//! WebAssembly types (spec §2.3): value types, function types, and the types of globals,
//! tables and memories, converted from wasmparser's into small owned forms.
//!
//! Only the types Quickbeam compiles are representable: numeric types and the two
//! reference types of Wasm 2.0 (no SIMD, no typed references).

use core::fmt;
use std::sync::Arc;

/// A value type (spec §2.3.4). Every value occupies one 8-byte slot on the Wasm stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValType {
    I32,
    I64,
    F32,
    F64,
    /// `funcref`: a pointer to a `VMFuncRef`, or 0 for null.
    FuncRef,
    /// `externref`: an opaque 64-bit host handle, or 0 for null.
    ExternRef,
}

impl ValType {
    /// Whether values of this type live in general-purpose registers (else SSE registers).
    pub fn is_int(self) -> bool {
        !matches!(self, ValType::F32 | ValType::F64)
    }

    /// Whether this is a 64-bit integer-class type (i64 and references).
    pub fn is_64(self) -> bool {
        matches!(self, ValType::I64 | ValType::F64 | ValType::FuncRef | ValType::ExternRef)
    }

    /// The one-byte code used in stencil keys (the binary format's type codes).
    pub fn code(self) -> u8 {
        match self {
            ValType::I32 => 0x7f,
            ValType::I64 => 0x7e,
            ValType::F32 => 0x7d,
            ValType::F64 => 0x7c,
            ValType::FuncRef => 0x70,
            ValType::ExternRef => 0x6f,
        }
    }

    /// Converts from wasmparser, failing on types Quickbeam does not support (SIMD, typed refs).
    pub fn from_wasmparser(ty: wasmparser::ValType) -> Result<ValType, UnsupportedType> {
        use wasmparser::ValType as W;
        Ok(match ty {
            W::I32 => ValType::I32,
            W::I64 => ValType::I64,
            W::F32 => ValType::F32,
            W::F64 => ValType::F64,
            W::V128 => return Err(UnsupportedType("v128")),
            W::Ref(r) => RefType::from_wasmparser(r)?.into(),
        })
    }
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
            ValType::FuncRef => "funcref",
            ValType::ExternRef => "externref",
        })
    }
}

/// A type Quickbeam does not support, named as the spec names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported type `{0}`")]
pub struct UnsupportedType(pub &'static str);

/// A reference type (spec §2.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefType {
    FuncRef,
    ExternRef,
}

impl RefType {
    pub fn from_wasmparser(r: wasmparser::RefType) -> Result<RefType, UnsupportedType> {
        if r == wasmparser::RefType::FUNCREF {
            Ok(RefType::FuncRef)
        } else if r == wasmparser::RefType::EXTERNREF {
            Ok(RefType::ExternRef)
        } else {
            Err(UnsupportedType("typed reference"))
        }
    }
}

impl From<RefType> for ValType {
    fn from(r: RefType) -> ValType {
        match r {
            RefType::FuncRef => ValType::FuncRef,
            RefType::ExternRef => ValType::ExternRef,
        }
    }
}

/// A function type (spec §2.3.5). Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FuncType {
    params_results: Arc<[ValType]>,
    len_params: usize,
}

impl FuncType {
    pub fn new(
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
    ) -> FuncType {
        let mut v: Vec<ValType> = params.into_iter().collect();
        let len_params = v.len();
        v.extend(results);
        FuncType { params_results: v.into(), len_params }
    }

    pub fn params(&self) -> &[ValType] {
        &self.params_results[..self.len_params]
    }

    pub fn results(&self) -> &[ValType] {
        &self.params_results[self.len_params..]
    }

    /// Slots of the argument/result area a caller reserves: `max(params, results)`.
    pub fn arg_area_slots(&self) -> usize {
        self.params().len().max(self.results().len())
    }

    pub fn from_wasmparser(f: &wasmparser::FuncType) -> Result<FuncType, UnsupportedType> {
        let params = f.params().iter().map(|t| ValType::from_wasmparser(*t)).collect::<Result<Vec<_>, _>>()?;
        let results = f.results().iter().map(|t| ValType::from_wasmparser(*t)).collect::<Result<Vec<_>, _>>()?;
        Ok(FuncType::new(params, results))
    }
}

impl fmt::Debug for FuncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for FuncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(func")?;
        if !self.params().is_empty() {
            write!(f, " (param")?;
            for p in self.params() {
                write!(f, " {p}")?;
            }
            write!(f, ")")?;
        }
        if !self.results().is_empty() {
            write!(f, " (result")?;
            for r in self.results() {
                write!(f, " {r}")?;
            }
            write!(f, ")")?;
        }
        write!(f, ")")
    }
}

/// A global's type (spec §2.3.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GlobalType {
    pub content: ValType,
    pub mutable: bool,
}

/// A table's type (spec §2.3.9); sizes in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableType {
    pub element: RefType,
    pub minimum: u64,
    pub maximum: Option<u64>,
}

/// A memory's type (spec §2.3.8); sizes in 64 KiB pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemoryType {
    pub minimum: u64,
    pub maximum: Option<u64>,
    pub memory64: bool,
    pub shared: bool,
}

/// The size of a Wasm page in bytes (spec §4.2.8).
pub const WASM_PAGE_SIZE: u64 = 65536;

/// The most pages a 32-bit memory can have (4 GiB).
pub const WASM32_MAX_PAGES: u64 = 65536;
