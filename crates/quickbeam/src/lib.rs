//! Quickbeam: a WebAssembly runtime whose reloads cost almost nothing.
//!
//! The public API has the shape of wasmtime's: an [`Engine`] (settings and the
//! signature registry) compiles [`Module`]s; a [`Store`] owns every instance, memory,
//! table, global and host function created in it; handles ([`Func`], [`Memory`], ...)
//! are `(store id, index)` pairs that are only valid with the store that made them.
//!
//! Errors are [`anyhow::Error`]s. A trap is an error wrapping a [`Trap`] (downcast to
//! inspect it); a host function's error travels unchanged to the caller of
//! [`Func::call`].
//!
//! Bounding guests: [`limits`] (a store's [`ResourceLimiter`], e.g. [`StoreLimits`]:
//! memory and table sizes, counts of instances, memories and tables), epoch
//! interruption ([`Config::epoch_interruption`], [`Engine::increment_epoch`],
//! [`Store::set_epoch_deadline`]), fuel ([`Config::consume_fuel`], [`Store::set_fuel`])
//! and the Wasm stack ([`Config::max_wasm_stack`]).
//!
//! Unsafe code lives in `quickbeam-runtime`; this crate only calls its small audited
//! entry points (entering Wasm, the host-call adapter, builtins).

#![forbid(unsafe_code)]

mod engine;
mod externals;
mod func;
mod instance;
pub mod limits;
mod linker;
mod module;
mod stencil_cache;
mod store;
mod trap;
mod values;

pub use anyhow::{Error, Result};
pub use engine::{Config, Engine, CACHE_SELF_CHECK_ENV};
/// Cache stores: the trait embedders implement, and the in-process and on-disk stores.
pub mod cache {
    pub use quickbeam_cache::{CacheStats, CacheStore, DiskStore, MemoryStore, TieredStore};
}
pub use externals::{Global, Memory, Table};
pub use func::{Func, IntoFunc, TypedFunc, WasmParams, WasmResults, WasmRet, WasmTy};
pub use instance::Instance;
pub use limits::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
pub use linker::Linker;
pub use module::{CompileReport, ExportType, ImportType, Module};
pub use stencil_cache::FunctionSource;
pub use quickbeam_environ::{
    FuncType, GlobalType, MemoryType, RefType, TableType, TrapCode, ValType, WASM_PAGE_SIZE,
};
pub use store::{AsContext, AsContextMut, Caller, Store, StoreContext, StoreContextMut};
pub use trap::{FrameInfo, Trap};
pub use values::{Extern, ExternType, Val};
