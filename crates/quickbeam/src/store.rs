//! [`Store`]: owns everything instantiated or created in it; [`AsContext`] and
//! [`AsContextMut`] let APIs take a store, a `&mut Store`, or a [`Caller`].
//!
//! A store also holds what bounds its guests: a resource limiter
//! ([`Store::limiter`], see [`crate::limits`]), an epoch deadline
//! ([`Store::set_epoch_deadline`], with [`Config::epoch_interruption`](crate::Config::epoch_interruption))
//! and fuel ([`Store::set_fuel`], with [`Config::consume_fuel`](crate::Config::consume_fuel)).

use crate::func::HostFn;
use crate::trap::{FrameInfo, Trap};
use crate::{Engine, Extern, Func, FuncType, Result, Val, ValType};
use crate::limits::ResourceLimiter;
use quickbeam_runtime::{CallError, FuncId, GrowKind, HostStore, VMStore};
use std::any::Any;
use std::sync::Arc;

/// All instances, memories, tables, globals and host functions created together, plus
/// the embedder's data `T`.
pub struct Store<T: 'static> {
    pub(crate) inner: StoreInner<T>,
}

/// What [`Store::limiter`] keeps: the embedder's way from `T` to its limiter.
type LimiterFn<T> = Box<dyn (FnMut(&mut T) -> &mut dyn ResourceLimiter) + Send + Sync>;

pub(crate) struct StoreInner<T> {
    pub(crate) vm: VMStore,
    pub(crate) engine: Engine,
    pub(crate) data: T,
    pub(crate) limiter: Option<LimiterFn<T>>,
}

impl<T: 'static> HostStore for StoreInner<T> {
    fn vm_store(&mut self) -> &mut VMStore {
        &mut self.vm
    }

    fn growing(
        &mut self,
        kind: GrowKind,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> std::result::Result<bool, quickbeam_runtime::HostError> {
        let Some(l) = self.limiter() else { return Ok(true) };
        let asked = match kind {
            GrowKind::Memory => l.memory_growing(current, desired, maximum),
            GrowKind::Table => l.table_growing(current, desired, maximum),
        };
        asked.map_err(|e| Box::new(e) as quickbeam_runtime::HostError)
    }
}

impl<T: 'static> Store<T> {
    pub fn new(engine: &Engine, data: T) -> Self {
        let mut vm = VMStore::new();
        vm.set_epoch_counter(engine.inner.epoch.clone());
        Store { inner: StoreInner { vm, engine: engine.clone(), data, limiter: None } }
    }

    /// Makes `limiter` decide how large this store's memories and tables may grow and
    /// how many instances, memories and tables it may hold (see [`crate::limits`]); it
    /// is called with the store's data each time, so the limiter usually lives there:
    ///
    /// ```
    /// use quickbeam::{Engine, Store, StoreLimits, StoreLimitsBuilder};
    /// struct Host { limits: StoreLimits }
    /// let engine = Engine::default();
    /// let limits = StoreLimitsBuilder::new().memory_size(1 << 20).instances(2).build();
    /// let mut store = Store::new(&engine, Host { limits });
    /// store.limiter(|host| &mut host.limits);
    /// ```
    /// Objects created before the call are not checked again.
    pub fn limiter(&mut self, limiter: impl (FnMut(&mut T) -> &mut dyn ResourceLimiter) + Send + Sync + 'static) {
        self.inner.limiter = Some(Box::new(limiter));
    }

    /// Code compiled with [`Config::epoch_interruption`](crate::Config::epoch_interruption)
    /// traps with [`TrapCode::Interrupt`](crate::TrapCode) at its next function entry or
    /// loop header once the engine's epoch ([`Engine::increment_epoch`]) has advanced
    /// `ticks_beyond_current` times from now. The deadline starts at 0: with epoch
    /// interruption on, code traps at once until a deadline is set (as in wasmtime).
    pub fn set_epoch_deadline(&mut self, ticks_beyond_current: u64) {
        self.as_context_mut().set_epoch_deadline(ticks_beyond_current);
    }

    /// Sets the fuel left for code compiled with [`Config::consume_fuel`](crate::Config::consume_fuel):
    /// each function entry and each loop iteration costs one unit, and code traps with
    /// [`TrapCode::OutOfFuel`](crate::TrapCode) when none is left (at most `i64::MAX`).
    ///
    /// # Errors
    /// If the engine does not consume fuel.
    pub fn set_fuel(&mut self, fuel: u64) -> Result<()> {
        self.as_context_mut().set_fuel(fuel)
    }

    /// The fuel left (see [`Store::set_fuel`]).
    ///
    /// # Errors
    /// If the engine does not consume fuel.
    pub fn get_fuel(&self) -> Result<u64> {
        self.as_context().get_fuel()
    }

    pub fn data(&self) -> &T {
        &self.inner.data
    }

    pub fn data_mut(&mut self) -> &mut T {
        &mut self.inner.data
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn into_data(self) -> T {
        self.inner.data
    }
}

/// A shared borrow of a store.
pub struct StoreContext<'a, T>(pub(crate) &'a StoreInner<T>);

/// An exclusive borrow of a store.
pub struct StoreContextMut<'a, T>(pub(crate) &'a mut StoreInner<T>);

impl<T> StoreContext<'_, T> {
    pub fn data(&self) -> &T {
        &self.0.data
    }
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }
    /// See [`Store::get_fuel`].
    ///
    /// # Errors
    /// If the engine does not consume fuel.
    pub fn get_fuel(&self) -> Result<u64> {
        self.0.check_fuel()?;
        Ok(self.0.vm.fuel())
    }
}

impl<T> StoreContextMut<'_, T> {
    pub fn data(&self) -> &T {
        &self.0.data
    }
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.0.data
    }
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }
    /// See [`Store::set_epoch_deadline`].
    pub fn set_epoch_deadline(&mut self, ticks_beyond_current: u64) {
        let deadline = self.0.engine.current_epoch().saturating_add(ticks_beyond_current);
        self.0.vm.set_epoch_deadline(deadline);
    }
    /// See [`Store::set_fuel`].
    ///
    /// # Errors
    /// If the engine does not consume fuel.
    pub fn set_fuel(&mut self, fuel: u64) -> Result<()> {
        self.0.check_fuel()?;
        self.0.vm.set_fuel(fuel);
        Ok(())
    }
    /// See [`Store::get_fuel`].
    ///
    /// # Errors
    /// If the engine does not consume fuel.
    pub fn get_fuel(&self) -> Result<u64> {
        self.0.check_fuel()?;
        Ok(self.0.vm.fuel())
    }
}

/// Something that gives shared access to a store.
pub trait AsContext {
    type Data: 'static;
    fn as_context(&self) -> StoreContext<'_, Self::Data>;
}

/// Something that gives exclusive access to a store.
pub trait AsContextMut: AsContext {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, Self::Data>;
}

impl<T: 'static> AsContext for Store<T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(&self.inner)
    }
}
impl<T: 'static> AsContextMut for Store<T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(&mut self.inner)
    }
}
impl<T: 'static> AsContext for StoreContext<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(self.0)
    }
}
impl<T: 'static> AsContext for StoreContextMut<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(self.0)
    }
}
impl<T: 'static> AsContextMut for StoreContextMut<'_, T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(self.0)
    }
}
impl<T: 'static> AsContext for Caller<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(self.store)
    }
}
impl<T: 'static> AsContextMut for Caller<'_, T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(self.store)
    }
}
impl<S: AsContext + ?Sized> AsContext for &S {
    type Data = S::Data;
    fn as_context(&self) -> StoreContext<'_, S::Data> {
        S::as_context(self)
    }
}
impl<S: AsContext + ?Sized> AsContext for &mut S {
    type Data = S::Data;
    fn as_context(&self) -> StoreContext<'_, S::Data> {
        S::as_context(self)
    }
}
impl<S: AsContextMut + ?Sized> AsContextMut for &mut S {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, S::Data> {
        S::as_context_mut(self)
    }
}

impl<'a, S: AsContext> From<&'a S> for StoreContext<'a, S::Data> {
    fn from(s: &'a S) -> Self {
        s.as_context()
    }
}
impl<'a, S: AsContext> From<&'a mut S> for StoreContext<'a, S::Data> {
    fn from(s: &'a mut S) -> Self {
        S::as_context(s)
    }
}
impl<'a, T> From<StoreContextMut<'a, T>> for StoreContext<'a, T> {
    fn from(s: StoreContextMut<'a, T>) -> Self {
        StoreContext(s.0)
    }
}
impl<'a, S: AsContextMut> From<&'a mut S> for StoreContextMut<'a, S::Data> {
    fn from(s: &'a mut S) -> Self {
        s.as_context_mut()
    }
}

/// The store and calling instance, as a host function sees them.
pub struct Caller<'a, T> {
    pub(crate) store: &'a mut StoreInner<T>,
    /// The instance whose code called the host function, if Wasm called it.
    pub(crate) caller: Option<crate::Instance>,
}

impl<T: 'static> Caller<'_, T> {
    pub fn data(&self) -> &T {
        &self.store.data
    }

    pub fn data_mut(&mut self) -> &mut T {
        &mut self.store.data
    }

    pub fn engine(&self) -> &Engine {
        &self.store.engine
    }

    /// See [`Store::set_epoch_deadline`].
    pub fn set_epoch_deadline(&mut self, ticks_beyond_current: u64) {
        self.as_context_mut().set_epoch_deadline(ticks_beyond_current);
    }

    /// See [`Store::set_fuel`].
    ///
    /// # Errors
    /// If the engine does not consume fuel.
    pub fn set_fuel(&mut self, fuel: u64) -> Result<()> {
        self.as_context_mut().set_fuel(fuel)
    }

    /// See [`Store::get_fuel`].
    ///
    /// # Errors
    /// If the engine does not consume fuel.
    pub fn get_fuel(&self) -> Result<u64> {
        self.as_context().get_fuel()
    }

    /// An export of the calling instance (`None` when the host called the function, or
    /// when the caller has no such export).
    pub fn get_export(&mut self, name: &str) -> Option<Extern> {
        let instance = self.caller?;
        instance.get_export(&mut *self, name)
    }
}

// ---- internal store operations ----

impl<T> StoreInner<T> {
    pub(crate) fn id(&self) -> u64 {
        self.vm.id()
    }

    /// Panics unless a handle of store `id` is used with this store.
    pub(crate) fn check(&self, id: u64) {
        assert!(id == self.vm.id(), "object used with the wrong store");
    }

    pub(crate) fn func_ty(&self, f: Func) -> &FuncType {
        self.check(f.store);
        self.vm.func_ty(FuncId(f.index))
    }

    pub(crate) fn func(&self, id: FuncId) -> Func {
        Func { store: self.vm.id(), index: id.0 }
    }

    /// # Errors
    /// Unless the engine consumes fuel.
    fn check_fuel(&self) -> Result<()> {
        if !self.engine.config().codegen.consume_fuel {
            anyhow::bail!("fuel is not configured in this store: enable `Config::consume_fuel`");
        }
        Ok(())
    }
}

pub(crate) fn new_host_func<T: 'static>(store: &mut StoreInner<T>, ty: FuncType, host: HostFn<T>) -> Func {
    let sig = store.engine.signatures().register(&ty);
    let id = store.vm.id();
    let callback: quickbeam_runtime::host::HostCallback<StoreInner<T>> =
        Arc::new(move |store: &mut StoreInner<T>, caller, area: &mut [u64]| {
            let caller = caller.map(|i| crate::Instance { store: id, index: i.0 });
            host(Caller { store, caller }, area).map_err(|e| Box::new(e) as Box<dyn Any + Send>)
        });
    let f = store.vm.new_host_func::<StoreInner<T>>(ty, sig, callback);
    store.func(f)
}

/// Calls `f` with a `Val` interface.
pub(crate) fn call_func<T: 'static>(
    store: &mut StoreInner<T>,
    f: Func,
    params: &[Val],
    results: &mut [Val],
) -> Result<()> {
    let ty = store.func_ty(f).clone();
    if params.len() != ty.params().len() {
        anyhow::bail!("expected {} arguments, got {}", ty.params().len(), params.len());
    }
    if results.len() != ty.results().len() {
        anyhow::bail!("expected {} results, got {}", ty.results().len(), results.len());
    }
    let slots = ty.arg_area_slots();
    let mut small = [0u64; 16];
    let mut heap = Vec::new();
    let area: &mut [u64] = if slots <= small.len() {
        &mut small[..slots]
    } else {
        heap.resize(slots, 0);
        &mut heap
    };
    for (i, (p, t)) in params.iter().zip(ty.params()).enumerate() {
        if p.ty() != *t {
            anyhow::bail!("argument type mismatch: argument {i} is a {}, the function expects a {t}", p.ty());
        }
        area[slots - 1 - i] = val_to_raw(store, p)?;
    }
    call_raw(store, f, area)?;
    for (j, (r, t)) in results.iter_mut().zip(ty.results()).enumerate() {
        *r = val_from_raw(store, *t, area[slots - 1 - j]);
    }
    Ok(())
}

/// Calls `f` with its argument area (see `func.rs`); the types are the caller's job.
pub(crate) fn call_raw<T: 'static>(store: &mut StoreInner<T>, f: Func, area: &mut [u64]) -> Result<()> {
    store.check(f.store);
    let max_stack = store.engine.config().max_wasm_stack;
    quickbeam_runtime::call(store, FuncId(f.index), area, max_stack).map_err(call_error)
}

/// Converts a runtime call failure to the error [`Func::call`] returns.
pub(crate) fn call_error(e: CallError) -> anyhow::Error {
    match e {
        CallError::Trap { code, backtrace } => anyhow::Error::new(Trap {
            code,
            backtrace: backtrace
                .into_iter()
                .map(|f| FrameInfo { func_index: f.func_index, func_name: f.func_name, module_offset: f.module_offset })
                .collect(),
        }),
        CallError::Host(e) => match e.downcast::<anyhow::Error>() {
            Ok(e) => *e,
            Err(e) => match e.downcast::<&'static str>() {
                Ok(s) => anyhow::anyhow!("{s}"),
                Err(_) => anyhow::anyhow!("host function failed"),
            },
        },
        CallError::Panic(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Box<dyn Any>".to_string());
            anyhow::anyhow!("host function panicked: {msg}")
        }
    }
}

/// A value from its raw slot bits.
pub(crate) fn val_from_raw<T>(store: &mut StoreInner<T>, ty: ValType, raw: u64) -> Val {
    match ty {
        ValType::I32 => Val::I32(raw as u32 as i32),
        ValType::I64 => Val::I64(raw as i64),
        ValType::F32 => Val::F32(raw as u32),
        ValType::F64 => Val::F64(raw),
        ValType::FuncRef => Val::FuncRef(store.vm.func_from_raw(raw).map(|f| store.func(f))),
        ValType::ExternRef => Val::ExternRef(raw.checked_sub(1).map(|h| h as u32)),
    }
}

/// A value's raw slot bits.
///
/// # Errors
/// A function of another store.
pub(crate) fn val_to_raw<T>(store: &StoreInner<T>, v: &Val) -> Result<u64> {
    Ok(match *v {
        Val::I32(x) => x as u32 as u64,
        Val::I64(x) => x as u64,
        Val::F32(b) => b as u64,
        Val::F64(b) => b,
        Val::FuncRef(None) | Val::ExternRef(None) => 0,
        Val::FuncRef(Some(f)) => {
            if f.store != store.id() {
                anyhow::bail!("cross-store value: the function belongs to another store");
            }
            store.vm.func_to_raw(FuncId(f.index))
        }
        Val::ExternRef(Some(h)) => h as u64 + 1,
    })
}

/// Checks that `v` has type `ty`.
pub(crate) fn check_val(v: &Val, ty: ValType) -> Result<()> {
    if v.ty() != ty {
        anyhow::bail!("type mismatch: expected a {ty}, found a {}", v.ty());
    }
    Ok(())
}
