//! Quickbeam's environment: what the compiler and the runtime both need to know about a
//! module, and nothing that generates code.
//!
//! - [`types`]: value, function, global, table and memory types (Wasm spec §2.3).
//! - [`module`]: [`ModuleEnv`], the parsed and validated module minus its function bodies,
//!   with the index spaces of §2.5 (imports first in every space).
//! - [`slots`]: function-local slots, the only way compiled code names a module entity;
//!   [`FunctionParameters`] map slots back to module indices when a stencil is finalized.
//! - [`vmoffsets`]: the layout of the `VMContext` that compiled code addresses through `r14`.
//! - [`trap`]: trap codes shared by trap sites and the runtime's `Trap` error.
//!
//! Invariant: nothing here depends on the code generator or on raw memory.
#![forbid(unsafe_code)]

pub mod abi;
pub mod key;
pub mod module;
pub mod names;
pub mod slots;
pub mod trap;
pub mod types;
pub mod vmoffsets;

pub use key::*;
pub use module::*;
pub use slots::*;
pub use trap::TrapCode;
pub use types::*;
pub use vmoffsets::*;

/// Engine-wide WebAssembly features Quickbeam compiles (a subset of wasmparser's).
pub fn supported_features() -> wasmparser::WasmFeatures {
    use wasmparser::WasmFeatures as F;
    F::MUTABLE_GLOBAL
        | F::SATURATING_FLOAT_TO_INT
        | F::SIGN_EXTENSION
        | F::MULTI_VALUE
        | F::BULK_MEMORY
        | F::REFERENCE_TYPES
        | F::FLOATS
        // wasmparser requires it for `externref` in signatures, locals and tables.
        | F::GC_TYPES
}
