//! Quickbeam's runtime: code memory, VMContext, memories, tables, globals, instances,
//! host-call trampolines and trap handling. All of Quickbeam's `unsafe` code lives here.
//!
//! - [`mmap`]: owned mappings; [`code`]: executable code (W^X) and the pc registry;
//! - [`vmcontext`]: the structures compiled code addresses (layout: `quickbeam_environ::vmoffsets`);
//! - [`memory`] (guard-page linear memories), [`table`], globals in [`vmcontext`];
//! - [`instance`]: compiled modules and instances; [`store`]: the owner of them all,
//!   instantiation and calls; [`builtins`]: runtime functions compiled code calls;
//! - [`traphandlers`]: entry trampoline, activations, signal handlers; [`host`]: host
//!   functions behind the host adapter.
//!
//! Threads: Wasm runs on the caller's stack; the stack limit is `max_stack` bytes below
//! the outermost entry, so the calling thread must have at least that much stack left
//! (plus room for host functions). The CLI runs guests on a thread with a large stack.

pub mod builtins;
pub mod code;
pub mod host;
pub mod instance;
pub mod memory;
pub mod mmap;
pub mod signatures;
pub mod store;
pub mod table;
pub mod traphandlers;
pub mod vmcontext;

pub use code::{CodeInfo, CodeMemory, FrameInfo, FunctionInfo, FunctionSites, ImageContents, ImageWriter, ModuleBytes, SiteTable};
pub use instance::{CompiledModule, Instance};
pub use signatures::SignatureRegistry;
pub use store::{call, FuncId, GlobalId, GrowKind, HostError, HostStore, ImportRef, InstanceId, InstantiationError, MemoryId, TableId, VMStore};
pub use traphandlers::{CallError, StoreRef};
