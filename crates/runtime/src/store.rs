//! [`VMStore`]: owns every object of one store (instances with their VMContexts,
//! memories, tables, globals, host function contexts) at stable addresses, names them
//! by dense ids, instantiates modules, and calls functions ([`call`]).
//!
//! Invariants:
//! - objects are only freed when the store is dropped, so every raw pointer between them
//!   (VMContext entries, funcrefs in tables, instance pointers) stays valid while Wasm or
//!   a builtin can use it;
//! - compiled code and builtins only run inside [`call`], which holds the exclusive
//!   borrow of the store's owner `S` and lends it to host functions (and to the grow
//!   builtins, which ask [`HostStore::growing`]) through the activation, so at any time
//!   exactly one party touches the objects;
//! - every VMContext of the store holds the store's stack limit and epoch deadline, and
//!   points to its epoch counter and fuel, which live as long as the store.

use crate::host::{HostCallback, HostFuncOwned};
use crate::instance::{CompiledModule, Instance};
use crate::memory::{LinearMemory, MemoryError};
use crate::table::Table;
use crate::traphandlers::{self, CallError};
use crate::vmcontext::{VMContextAlloc, VMFuncRef, VMGlobal};
use quickbeam_environ::*;
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

macro_rules! ids {
    ($($(#[$m:meta])* $name:ident),*) => {$(
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            pub fn index(self) -> usize { self.0 as usize }
        }
    )*};
}

ids!(
    /// A function of a store.
    FuncId,
    /// An instance of a store.
    InstanceId,
    /// A memory of a store.
    MemoryId,
    /// A table of a store.
    TableId,
    /// A global of a store.
    GlobalId
);

/// What a grow request is for: sizes are in bytes for memories, elements for tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrowKind {
    Memory,
    Table,
}

/// The owner of a [`VMStore`]: what host functions receive (the embedder's store type).
pub trait HostStore: 'static {
    fn vm_store(&mut self) -> &mut VMStore;

    /// Asked before compiled code grows a memory or table from `current` to `desired`
    /// (within its `maximum`, the declared one if any): `Ok(false)` refuses the grow
    /// (`memory.grow`/`table.grow` return -1), an error makes the instruction trap with
    /// [`CallError::Host`] carrying it. Not asked for a grow by 0. The default allows
    /// every grow.
    ///
    /// # Errors
    /// The embedder's, to fail the running call.
    fn growing(
        &mut self,
        kind: GrowKind,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, HostError> {
        let _ = (kind, current, desired, maximum);
        Ok(true)
    }
}

/// A heap object with a stable address, owned through a raw pointer so that the raw
/// pointers compiled code and builtins hold to it stay valid (no `Box` uniqueness is
/// asserted when the owner is moved or borrowed).
struct Owned<T>(NonNull<T>);

// SAFETY: `Owned<T>` owns its `T` like a `Box<T>`.
unsafe impl<T: Send> Send for Owned<T> {}
// SAFETY: as for `Box<T>`.
unsafe impl<T: Sync> Sync for Owned<T> {}

impl<T> Owned<T> {
    fn new(v: T) -> Owned<T> {
        Owned(NonNull::from(Box::leak(Box::new(v))))
    }
    fn ptr(&self) -> *mut T {
        self.0.as_ptr()
    }
    fn get(&self) -> &T {
        // SAFETY: the allocation is live until drop; shared access through `&self`.
        unsafe { self.0.as_ref() }
    }
    fn get_mut(&mut self) -> &mut T {
        // SAFETY: the allocation is live; `&mut self` makes this access exclusive among
        // Rust references (raw pointers held by Wasm are unused while we hold it).
        unsafe { self.0.as_mut() }
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: created by `Box::leak` in `new`, freed once here.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// A global's storage and type; `vm` first so a `*mut GlobalEntry` is a `*mut VMGlobal`.
#[repr(C)]
struct GlobalEntry {
    vm: VMGlobal,
    ty: GlobalType,
}

#[derive(Debug)]
enum FuncKind {
    Wasm { instance: InstanceId, index: u32 },
    Host { host: usize },
}

struct FuncEntry {
    funcref: *const VMFuncRef,
    ty: FuncType,
    kind: FuncKind,
}

/// An import, resolved to an object of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportRef {
    Func(FuncId),
    Table(TableId),
    Memory(MemoryId),
    Global(GlobalId),
}

/// Why instantiation failed.
#[derive(Debug, thiserror::Error)]
pub enum InstantiationError {
    /// Import `index` does not match the module's import.
    #[error("{message}")]
    Link { index: usize, message: String },
    /// An object could not be created.
    #[error("{0}")]
    Resource(String),
    /// An active segment was out of bounds (earlier segments' writes remain).
    #[error("{}", .0.message())]
    Trap(TrapCode),
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// All objects of one store (see the module docs).
pub struct VMStore {
    id: u64,
    funcs: Vec<FuncEntry>,
    instances: Vec<Owned<Instance>>,
    memories: Vec<Owned<LinearMemory>>,
    tables: Vec<Owned<Table>>,
    globals: Vec<Owned<GlobalEntry>>,
    host_funcs: Vec<HostFuncOwned>,
    /// VMContext address → instance, for pc-free lookups of callers and funcrefs.
    vmctxs: BTreeMap<usize, InstanceId>,
    /// Host `VMFuncRef` address → function.
    host_funcrefs: HashMap<usize, FuncId>,
    /// The stack limit stored in every VMContext of the store.
    stack_limit: usize,
    /// The epoch counter every VMContext points to (the engine's, once the owner sets it).
    epoch: Arc<AtomicU64>,
    /// The epoch deadline stored in every VMContext of the store.
    epoch_deadline: u64,
    /// The remaining fuel every VMContext points to (negative once exhausted).
    fuel: Owned<i64>,
}

// SAFETY: the raw pointers in a VMStore point to objects the store owns (or to immutable
// code and module data kept alive by `Arc`s), and are only used by whoever has `&mut`
// access to the store; moving the whole store to another thread moves that access.
unsafe impl Send for VMStore {}

impl Default for VMStore {
    fn default() -> Self {
        VMStore::new()
    }
}

impl VMStore {
    pub fn new() -> VMStore {
        VMStore {
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            funcs: Vec::new(),
            instances: Vec::new(),
            memories: Vec::new(),
            tables: Vec::new(),
            globals: Vec::new(),
            host_funcs: Vec::new(),
            vmctxs: BTreeMap::new(),
            host_funcrefs: HashMap::new(),
            stack_limit: usize::MAX,
            epoch: Arc::new(AtomicU64::new(0)),
            epoch_deadline: 0,
            fuel: Owned::new(0),
        }
    }

    // ---- interruption and fuel ----

    /// Points every VMContext of the store at `epoch` (an engine's epoch counter, which
    /// the store keeps alive) instead of the store's own counter.
    pub fn set_epoch_counter(&mut self, epoch: Arc<AtomicU64>) {
        self.epoch = epoch;
        let ptr = self.epoch.as_ptr().cast_const();
        for i in &mut self.instances {
            i.get_mut().vmctx.set_epoch_ptr(ptr);
        }
    }

    /// The current value of the epoch counter.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Code compiled with epoch interruption traps with `Interrupt` at its next check once
    /// the epoch is at or past `deadline` (0 until set: such code traps at once).
    pub fn set_epoch_deadline(&mut self, deadline: u64) {
        self.epoch_deadline = deadline;
        for i in &mut self.instances {
            i.get_mut().vmctx.set_epoch_deadline(deadline);
        }
    }

    pub fn epoch_deadline(&self) -> u64 {
        self.epoch_deadline
    }

    /// Sets the fuel that code compiled with fuel metering may consume (at most
    /// `i64::MAX`).
    pub fn set_fuel(&mut self, fuel: u64) {
        *self.fuel.get_mut() = fuel.min(i64::MAX as u64) as i64;
    }

    /// The fuel left (0 once code ran out).
    pub fn fuel(&self) -> u64 {
        (*self.fuel.get()).max(0) as u64
    }

    // ---- counts (for resource limits) ----

    pub fn num_instances(&self) -> usize {
        self.instances.len()
    }

    pub fn num_memories(&self) -> usize {
        self.memories.len()
    }

    pub fn num_tables(&self) -> usize {
        self.tables.len()
    }

    /// A process-unique id of this store.
    pub fn id(&self) -> u64 {
        self.id
    }

    // ---- functions ----

    /// A host function of type `ty` (signature id `sig`) implemented by `callback`; it
    /// can only be called with this store inside an `S`.
    pub fn new_host_func<S: HostStore>(&mut self, ty: FuncType, sig: u32, callback: HostCallback<S>) -> FuncId {
        let owned = HostFuncOwned::new::<S>(self.id, &ty, sig, callback);
        let funcref = owned.funcref();
        let id = FuncId(self.funcs.len() as u32);
        self.funcs.push(FuncEntry { funcref, ty, kind: FuncKind::Host { host: self.host_funcs.len() } });
        self.host_funcs.push(owned);
        self.host_funcrefs.insert(funcref as usize, id);
        id
    }

    pub fn func_ty(&self, f: FuncId) -> &FuncType {
        &self.funcs[f.index()].ty
    }

    /// The function's raw table value (the address of its `VMFuncRef`).
    pub fn func_to_raw(&self, f: FuncId) -> u64 {
        self.funcs[f.index()].funcref as u64
    }

    /// The function a raw funcref value (non-zero) stands for.
    pub fn func_from_raw(&mut self, raw: u64) -> Option<FuncId> {
        if raw == 0 {
            return None;
        }
        let raw = raw as usize;
        if let Some(f) = self.host_funcrefs.get(&raw) {
            return Some(*f);
        }
        let (_, &inst) = self.vmctxs.range(..=raw).next_back()?;
        let index = self.instances[inst.index()].get().vmctx.funcref_index_of(raw)?;
        Some(self.instance_func(inst, index))
    }

    /// The store id of function `index` of an instance.
    pub fn instance_func(&mut self, inst: InstanceId, index: u32) -> FuncId {
        let instance = self.instances[inst.index()].get();
        if let Some(f) = instance.func_ids[index as usize] {
            return f;
        }
        let funcref = instance.vmctx.funcref_ptr(index);
        let ty = instance.module.env.func_type(index).clone();
        let id = FuncId(self.funcs.len() as u32);
        self.funcs.push(FuncEntry { funcref, ty, kind: FuncKind::Wasm { instance: inst, index } });
        self.instances[inst.index()].get_mut().func_ids[index as usize] = Some(id);
        id
    }

    /// The instance and function index of a Wasm function.
    pub fn func_wasm_location(&self, f: FuncId) -> Option<(InstanceId, u32)> {
        match self.funcs[f.index()].kind {
            FuncKind::Wasm { instance, index } => Some((instance, index)),
            FuncKind::Host { .. } => None,
        }
    }

    pub fn num_funcs(&self) -> usize {
        self.funcs.len()
    }

    // ---- memories ----

    /// # Errors
    /// Unsupported types and failed reservations.
    pub fn new_memory(&mut self, ty: MemoryType) -> Result<MemoryId, MemoryError> {
        let m = LinearMemory::new(ty)?;
        self.memories.push(Owned::new(m));
        Ok(MemoryId(self.memories.len() as u32 - 1))
    }

    pub fn memory(&self, m: MemoryId) -> &LinearMemory {
        self.memories[m.index()].get()
    }

    pub fn memory_mut(&mut self, m: MemoryId) -> &mut LinearMemory {
        self.memories[m.index()].get_mut()
    }

    // ---- tables ----

    /// A table with every element `init`; `None` if its minimum is over the limit.
    pub fn new_table(&mut self, ty: TableType, init: u64) -> Option<TableId> {
        let t = Table::new(ty, init)?;
        self.tables.push(Owned::new(t));
        Some(TableId(self.tables.len() as u32 - 1))
    }

    pub fn table(&self, t: TableId) -> &Table {
        self.tables[t.index()].get()
    }

    pub fn table_mut(&mut self, t: TableId) -> &mut Table {
        self.tables[t.index()].get_mut()
    }

    // ---- globals ----

    pub fn new_global(&mut self, ty: GlobalType, bits: u64) -> GlobalId {
        self.globals.push(Owned::new(GlobalEntry { vm: VMGlobal { bits, _hi: 0 }, ty }));
        GlobalId(self.globals.len() as u32 - 1)
    }

    pub fn global_ty(&self, g: GlobalId) -> GlobalType {
        self.globals[g.index()].get().ty
    }

    pub fn global_get(&self, g: GlobalId) -> u64 {
        self.globals[g.index()].get().vm.bits
    }

    pub fn global_set(&mut self, g: GlobalId, bits: u64) {
        self.globals[g.index()].get_mut().vm.bits = bits;
    }

    // ---- instances ----

    pub fn instance(&self, i: InstanceId) -> &Instance {
        self.instances[i.index()].get()
    }

    pub fn instance_memory(&self, i: InstanceId, index: u32) -> MemoryId {
        self.instance(i).memory_ids[index as usize]
    }

    pub fn instance_table(&self, i: InstanceId, index: u32) -> TableId {
        self.instance(i).table_ids[index as usize]
    }

    pub fn instance_global(&self, i: InstanceId, index: u32) -> GlobalId {
        self.instance(i).global_ids[index as usize]
    }

    /// The instance whose VMContext is at `vmctx`, if any.
    pub fn instance_of_vmctx(&self, vmctx: *mut u8) -> Option<InstanceId> {
        self.vmctxs.get(&(vmctx as usize)).copied()
    }

    /// Checks `imports` against `module`'s imports (spec §4.5.3 import matching).
    fn check_imports(&self, module: &CompiledModule, imports: &[ImportRef]) -> Result<(), InstantiationError> {
        let env = &module.env;
        if imports.len() != env.imports.len() {
            return Err(InstantiationError::Link {
                index: imports.len().min(env.imports.len()),
                message: format!("expected {} imports, found {}", env.imports.len(), imports.len()),
            });
        }
        for (index, (import, given)) in env.imports.iter().zip(imports).enumerate() {
            let mismatch = |message: String| Err(InstantiationError::Link { index, message });
            match (&import.ty, given) {
                (EntityType::Func(t), ImportRef::Func(f)) => {
                    let want = &env.types[*t as usize];
                    let have = self.func_ty(*f);
                    if want != have {
                        return mismatch(format!("function types incompatible: expected {want}, found {have}"));
                    }
                }
                (EntityType::Global(want), ImportRef::Global(g)) => {
                    let have = self.global_ty(*g);
                    if *want != have {
                        return mismatch(format!(
                            "global types incompatible: expected {}, found {}",
                            global_text(*want),
                            global_text(have)
                        ));
                    }
                }
                (EntityType::Table(want), ImportRef::Table(t)) => {
                    let table = self.table(*t);
                    let have = table.ty();
                    if want.element != have.element
                        || !limits_match(want.minimum, want.maximum, table.len(), table.declared_ty().maximum)
                    {
                        return mismatch(format!(
                            "table types incompatible: expected {}, found {}",
                            table_text(*want),
                            table_text(TableType { maximum: table.declared_ty().maximum, ..have })
                        ));
                    }
                }
                (EntityType::Memory(want), ImportRef::Memory(m)) => {
                    let mem = self.memory(*m);
                    let decl = mem.declared_ty();
                    if want.memory64 != decl.memory64
                        || want.shared != decl.shared
                        || !limits_match(want.minimum, want.maximum, mem.pages(), decl.maximum)
                    {
                        return mismatch(format!(
                            "memory types incompatible: expected {}, found {}",
                            limits_text(want.minimum, want.maximum),
                            limits_text(mem.pages(), decl.maximum)
                        ));
                    }
                }
                (want, _) => {
                    let kind = match want {
                        EntityType::Func(_) => "function",
                        EntityType::Table(_) => "table",
                        EntityType::Memory(_) => "memory",
                        EntityType::Global(_) => "global",
                    };
                    let found = match given {
                        ImportRef::Func(_) => "function",
                        ImportRef::Table(_) => "table",
                        ImportRef::Memory(_) => "memory",
                        ImportRef::Global(_) => "global",
                    };
                    return mismatch(format!("expected {kind}, found {found}"));
                }
            }
        }
        Ok(())
    }

    /// Instantiates `module` with `imports` (in import order): creates its memories,
    /// tables and globals, evaluates initializers, and runs active element then data
    /// segments (spec §4.5.4). Does not run the start function.
    ///
    /// # Errors
    /// Link errors, resource failures, and out-of-bounds active segments (the instance
    /// then stays in the store, and earlier segments' writes remain visible).
    pub fn instantiate(
        &mut self,
        module: &Arc<CompiledModule>,
        imports: &[ImportRef],
    ) -> Result<InstanceId, InstantiationError> {
        self.check_imports(module, imports)?;
        let env = &module.env;
        let offsets = VMOffsets::new(env);

        // Memories, tables and globals: imports first, then definitions.
        let (mut memory_ids, mut table_ids, mut global_ids, mut func_ids) =
            (Vec::new(), Vec::new(), Vec::new(), vec![None; env.functions.len()]);
        let mut imported_funcrefs = Vec::new();
        for import in imports {
            match *import {
                ImportRef::Func(f) => {
                    func_ids[imported_funcrefs.len()] = Some(f);
                    // SAFETY: funcrefs of the store's functions are live store objects.
                    imported_funcrefs.push(unsafe { *self.funcs[f.index()].funcref });
                }
                ImportRef::Table(t) => table_ids.push(t),
                ImportRef::Memory(m) => memory_ids.push(m),
                ImportRef::Global(g) => global_ids.push(g),
            }
        }
        for ty in &env.memories[env.num_imported_memories as usize..] {
            let id = self.new_memory(*ty).map_err(|e| InstantiationError::Resource(e.to_string()))?;
            memory_ids.push(id);
        }
        for def in &env.table_defs {
            let id = self.new_table(def.ty, 0).ok_or_else(|| {
                InstantiationError::Resource(format!(
                    "table minimum of {} elements exceeds the limit of {}",
                    def.ty.minimum,
                    crate::table::MAX_TABLE_ELEMENTS
                ))
            })?;
            table_ids.push(id);
        }
        for def in &env.global_defs {
            global_ids.push(self.new_global(def.ty, 0));
        }

        let mut vmctx = VMContextAlloc::new(offsets);
        let memories: Vec<*mut LinearMemory> = memory_ids.iter().map(|m| self.memories[m.index()].ptr()).collect();
        let tables: Vec<*mut Table> = table_ids.iter().map(|t| self.tables[t.index()].ptr()).collect();
        let globals: Vec<*mut VMGlobal> =
            global_ids.iter().map(|g| self.globals[g.index()].ptr().cast::<VMGlobal>()).collect();
        vmctx.set_stack_limit(self.stack_limit);
        vmctx.set_epoch_ptr(self.epoch.as_ptr().cast_const());
        vmctx.set_epoch_deadline(self.epoch_deadline);
        vmctx.set_fuel_ptr(self.fuel.ptr());
        vmctx.set_builtins(crate::builtins::builtins_table());
        if let Some(m) = memories.first() {
            // SAFETY: a live memory of this store.
            vmctx.set_memory0_base(unsafe { (**m).base() });
        }
        let vmctx_ptr = vmctx.as_ptr();
        for (i, f) in imported_funcrefs.iter().enumerate() {
            vmctx.set_funcref(i as u32, *f);
        }
        let code_base = module.code.base();
        for (d, off) in module.func_offsets.iter().enumerate() {
            let index = env.num_imported_funcs + d as u32;
            let sig = module.sig_ids[env.functions[index as usize] as usize];
            // SAFETY: `off` is inside the module's code image (laid out by the compiler).
            let code = unsafe { code_base.add(*off as usize) };
            vmctx.set_funcref(index, VMFuncRef { code, vmctx: vmctx_ptr, sig, _pad: 0 });
        }
        for (i, m) in memories.iter().enumerate() {
            vmctx.set_memory(i as u32, m.cast());
        }
        for (i, t) in tables.iter().enumerate() {
            vmctx.set_table(i as u32, t.cast());
        }
        for (i, g) in globals.iter().enumerate() {
            vmctx.set_global(i as u32, *g);
        }
        for (i, &sig) in module.sig_ids.iter().enumerate() {
            vmctx.set_type_id(i as u32, sig);
        }

        let instance = Owned::new(Instance {
            vmctx,
            module: module.clone(),
            memories,
            tables,
            globals,
            memory_ids,
            table_ids,
            global_ids,
            func_ids,
            dropped_data: vec![false; env.datas.len()],
            elems: Vec::new(),
        });
        let inst_ptr = instance.ptr();
        let id = InstanceId(self.instances.len() as u32);
        self.instances.push(instance);
        self.vmctxs.insert(vmctx_ptr as usize, id);
        let instance = self.instances[id.index()].get_mut();
        instance.vmctx.set_instance(inst_ptr.cast());

        // Globals, in order (an initializer may read earlier globals).
        for (d, def) in env.global_defs.iter().enumerate() {
            let bits = instance.eval(&def.init);
            let g = instance.globals[env.num_imported_globals as usize + d];
            // SAFETY: a live global of this store; no other reference to it exists.
            unsafe { (*g).bits = bits };
        }
        // Table initializers.
        for (d, def) in env.table_defs.iter().enumerate() {
            if let Some(init) = &def.init {
                let v = instance.eval(init);
                let t = instance.table_mut(env.num_imported_tables + d as u32).expect("defined table exists");
                t.elements_mut().fill(v);
            }
        }
        // Element segments: evaluate, then run the active ones in order.
        let elems: Vec<Box<[u64]>> =
            env.elems.iter().map(|e| e.items.iter().map(|i| instance.eval(i)).collect()).collect();
        instance.elems = elems;
        for (i, seg) in env.elems.iter().enumerate() {
            match &seg.mode {
                ElemMode::Passive => continue,
                ElemMode::Declared => {}
                ElemMode::Active { table, offset } => {
                    let at = instance.eval(offset) as u32 as u64;
                    let items = std::mem::take(&mut instance.elems[i]);
                    let t = instance.table_mut(*table).expect("validated table index");
                    let Some(end) = at.checked_add(items.len() as u64).filter(|e| *e <= t.len()) else {
                        return Err(InstantiationError::Trap(TrapCode::TableOutOfBounds));
                    };
                    t.elements_mut()[at as usize..end as usize].copy_from_slice(&items);
                }
            }
            instance.elems[i] = Box::new([]);
        }
        // Data segments.
        for (i, seg) in env.datas.iter().enumerate() {
            if let DataMode::Active { memory, offset } = &seg.mode {
                let at = instance.eval(offset) as u32 as u64;
                let bytes = module.data_segment_bytes(i).ok_or_else(|| {
                    InstantiationError::Resource(format!("data segment {i}: the module's bytes were not kept"))
                })?;
                let m = instance.memory_mut(*memory).expect("validated memory index");
                let Some(end) = at.checked_add(bytes.len() as u64).filter(|e| *e <= m.len() as u64) else {
                    return Err(InstantiationError::Trap(TrapCode::MemoryOutOfBounds));
                };
                m.as_mut_slice()[at as usize..end as usize].copy_from_slice(bytes);
                instance.dropped_data[i] = true;
            }
        }
        Ok(id)
    }

    /// Stores `limit` in every VMContext of the store.
    fn set_stack_limit(&mut self, limit: usize) {
        self.stack_limit = limit;
        for i in &mut self.instances {
            i.get_mut().vmctx.set_stack_limit(limit);
        }
    }
}

fn limits_match(min: u64, max: Option<u64>, have_min: u64, have_max: Option<u64>) -> bool {
    have_min >= min
        && match max {
            None => true,
            Some(max) => have_max.is_some_and(|h| h <= max),
        }
}

fn limits_text(min: u64, max: Option<u64>) -> String {
    match max {
        Some(max) => format!("{min}..{max}"),
        None => format!("{min}.."),
    }
}

fn table_text(t: TableType) -> String {
    format!("{} {}", limits_text(t.minimum, t.maximum), ValType::from(t.element))
}

fn global_text(g: GlobalType) -> String {
    if g.mutable { format!("(mut {})", g.content) } else { g.content.to_string() }
}

/// Calls function `func` of the store inside `store` with the argument area `area`
/// (`A = max(params, results)` slots, param `i` at `area[A-1-i]`, results likewise).
/// Wasm code may use `max_stack` bytes of stack below the outermost entry.
///
/// # Panics
/// If `area` has the wrong size for the function's type.
pub fn call<S: HostStore>(store: &mut S, func: FuncId, area: &mut [u64], max_stack: usize) -> Result<(), CallError> {
    let vm = store.vm_store();
    let entry = &vm.funcs[func.index()];
    assert_eq!(area.len(), entry.ty.arg_area_slots(), "argument area of the wrong size");
    match entry.kind {
        FuncKind::Host { host } => {
            let Some(callback) = vm.host_funcs[host].callback::<S>() else {
                return Err(CallError::Host(Box::new("host function called from another store")));
            };
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(store, None, area))) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(CallError::Host(e)),
                Err(p) => Err(CallError::Panic(p)),
            }
        }
        FuncKind::Wasm { .. } => {
            // SAFETY: the funcref of a store function is a live store object.
            let f = unsafe { *entry.funcref };
            let limit = traphandlers::stack_limit_for_entry(max_stack);
            if vm.stack_limit != limit {
                vm.set_stack_limit(limit);
            }
            let store_ptr: *mut S = store;
            let store_ref =
                traphandlers::StoreRef { ptr: store_ptr.cast(), ty: TypeId::of::<S>(), growing: growing_shim::<S> };
            // SAFETY: `f` is a defined Wasm function of this store (its code follows the
            // ABI and takes `area.len()` slots, checked above against its type); every
            // VMContext of the store has `limit`; `store` is not used until the call
            // returns, host functions and builtins reach it through the activation, and
            // `growing_shim::<S>` matches its type.
            unsafe { traphandlers::enter_wasm(store_ref, f.vmctx, f.code, area, limit) }
        }
    }
}

/// [`HostStore::growing`] of the activation's store.
///
/// # Safety
/// `store` must point to a live `S` that nothing else uses during the call.
unsafe fn growing_shim<S: HostStore>(
    store: *mut (),
    kind: GrowKind,
    current: usize,
    desired: usize,
    maximum: Option<usize>,
) -> Result<bool, HostError> {
    // SAFETY: the caller's promise.
    let store = unsafe { &mut *store.cast::<S>() };
    store.growing(kind, current, desired, maximum)
}

/// A boxed error value, as host callbacks return them.
pub type HostError = Box<dyn Any + Send>;
