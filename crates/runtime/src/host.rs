//! Host functions as compiled code sees them: a [`VMHostFuncHeader`] whose `VMFuncRef`
//! has the host adapter as code and the header itself as vmctx, and the Rust side of the
//! adapter, `quickbeam_host_call`.
//!
//! ```text
//!  Wasm: r14 = &header; call quickbeam_host_adapter
//!        └► quickbeam_host_call(&header, area = [rbp+16], caller_fp)
//!             └► header.call = host_shim::<S>: store from the current activation,
//!                catch_unwind(callback(&mut S, caller instance, area)) → 0 or trap code
//! ```
//!
//! Invariant: a header is always the first field of a `HostFuncContext<S>` whose `S`
//! has `TypeId` `header.store_type`; `header.call` is `host_shim::<S>` for that `S`.

use crate::store::{HostStore, InstanceId};
use crate::traphandlers::{current_activation, HostFailure};
use crate::vmcontext::VMFuncRef;
use quickbeam_environ::{FuncType, TrapCode};
use std::any::{Any, TypeId};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// A host function's implementation: reads params from and writes results into the
/// argument area (param `i` at `area[A-1-i]`), or fails with an embedder error.
pub type HostCallback<S> =
    Arc<dyn Fn(&mut S, Option<InstanceId>, &mut [u64]) -> Result<(), Box<dyn Any + Send>> + Send + Sync>;

/// The part of a host function context that compiled code and the adapter see.
#[repr(C)]
pub struct VMHostFuncHeader {
    /// `{ code: host adapter, vmctx: this header, sig }`.
    pub(crate) funcref: VMFuncRef,
    call: unsafe fn(*mut VMHostFuncHeader, *mut u64, *mut u8) -> u32,
    /// The argument area's size in slots.
    pub(crate) slots: usize,
    pub(crate) store_type: TypeId,
    pub(crate) store_id: u64,
}

#[repr(C)]
pub(crate) struct HostFuncContext<S> {
    header: VMHostFuncHeader,
    pub(crate) callback: HostCallback<S>,
}

/// Owns one `HostFuncContext<S>` allocation, type-erased.
pub(crate) struct HostFuncOwned {
    ptr: *mut VMHostFuncHeader,
    drop_fn: unsafe fn(*mut VMHostFuncHeader),
}

impl HostFuncOwned {
    pub(crate) fn new<S: HostStore>(store_id: u64, ty: &FuncType, sig: u32, callback: HostCallback<S>) -> HostFuncOwned {
        let ctx = Box::new(HostFuncContext::<S> {
            header: VMHostFuncHeader {
                funcref: VMFuncRef {
                    code: crate::traphandlers::host_adapter_address(),
                    vmctx: std::ptr::null_mut(),
                    sig,
                    _pad: 0,
                },
                call: host_shim::<S>,
                slots: ty.arg_area_slots(),
                store_type: TypeId::of::<S>(),
                store_id,
            },
            callback,
        });
        let ptr = Box::into_raw(ctx);
        // SAFETY: `ptr` is a fresh, valid allocation; the header is its first field.
        unsafe { (*ptr).header.funcref.vmctx = ptr.cast() };
        HostFuncOwned { ptr: ptr.cast(), drop_fn: drop_ctx::<S> }
    }

    /// The `VMFuncRef` (stable address) of this host function.
    pub(crate) fn funcref(&self) -> *const VMFuncRef {
        // SAFETY: `ptr` is live while `self` is; taking a field's address reads nothing.
        unsafe { &raw const (*self.ptr).funcref }
    }

    /// The callback, if this context was made for store type `S`.
    pub(crate) fn callback<S: HostStore>(&self) -> Option<HostCallback<S>> {
        // SAFETY: `ptr` is live while `self` is.
        let header = unsafe { &*self.ptr };
        if header.store_type != TypeId::of::<S>() {
            return None;
        }
        // SAFETY: the type id matches, so the allocation is a `HostFuncContext<S>`
        // (module invariant).
        Some(unsafe { &*self.ptr.cast::<HostFuncContext<S>>() }.callback.clone())
    }
}

impl Drop for HostFuncOwned {
    fn drop(&mut self) {
        // SAFETY: `drop_fn` was made for this allocation's type; dropped once.
        unsafe { (self.drop_fn)(self.ptr) }
    }
}

/// Frees a `HostFuncContext<S>`.
///
/// # Safety
/// `ptr` must come from `HostFuncOwned::new::<S>` and not be used afterwards.
unsafe fn drop_ctx<S>(ptr: *mut VMHostFuncHeader) {
    // SAFETY: `ptr` came from `Box::into_raw` of a `HostFuncContext<S>` (see `new`).
    drop(unsafe { Box::from_raw(ptr.cast::<HostFuncContext<S>>()) });
}

/// Called by the host adapter with the host function's header, the argument area and
/// the Wasm caller's frame pointer. Returns 0, or a trap code (the adapter then traps).
///
/// # Safety
/// Only the host adapter calls this, with `header` from a host `VMFuncRef`.
pub(crate) unsafe extern "C" fn quickbeam_host_call(header: *mut VMHostFuncHeader, area: *mut u64, caller_fp: usize) -> u32 {
    // The caller is compiled Wasm code, which keeps its vmctx at [rbp - 8] (abi.rs).
    let caller_vmctx = if caller_fp >= 8 {
        // SAFETY: `caller_fp` is the frame pointer of the Wasm function that called the
        // adapter; its frame is live and holds its vmctx at [rbp - 8].
        unsafe { *((caller_fp - 8) as *const *mut u8) }
    } else {
        std::ptr::null_mut()
    };
    // SAFETY: `header` is live (owned by the store the running code belongs to);
    // `call` is the shim matching its type (module invariant).
    unsafe { ((*header).call)(header, area, caller_vmctx) }
}

/// Runs the host function behind `header` with the store of the current activation.
///
/// # Safety
/// `header` must be the header of a live `HostFuncContext<S>` and `area` its caller's
/// argument area of `header.slots` slots; only `quickbeam_host_call` calls this.
unsafe fn host_shim<S: HostStore>(header: *mut VMHostFuncHeader, area: *mut u64, caller_vmctx: *mut u8) -> u32 {
    let act = current_activation();
    if act.is_null() {
        // Unreachable: the adapter only runs under `enter_wasm`. Without an activation
        // there is nowhere to unwind to, so this cannot become a trap.
        eprintln!("quickbeam: host function called with no Wasm activation");
        std::process::abort();
    }
    let fail = |e: Box<dyn Any + Send>| {
        // SAFETY: a non-null current activation is live, and only this thread uses it;
        // no other reference to it exists while we write (nested calls have returned).
        unsafe { (*act).failure = Some(HostFailure::Error(e)) };
        TrapCode::HostError.as_u32()
    };
    // SAFETY: the header is the first field of a `HostFuncContext<S>` (module invariant:
    // `call` is `host_shim::<S>` only for such contexts).
    let ctx = unsafe { &*header.cast::<HostFuncContext<S>>() };
    // SAFETY: reading two fields of the live activation.
    let (store_ptr, store_type) = unsafe { ((*act).store, (*act).store_type) };
    if store_type != TypeId::of::<S>() || store_ptr.is_null() {
        return fail(Box::new("host function called from another store"));
    }
    let callback = ctx.callback.clone();
    let slots = ctx.header.slots;
    let store_id = ctx.header.store_id;
    // SAFETY: the activation's store is an `S` (type id checked above) that `enter_wasm`'s
    // caller lent exclusively to this Wasm execution; Wasm is suspended while we use it.
    let store = unsafe { &mut *store_ptr.cast::<S>() };
    if store.vm_store().id() != store_id {
        return fail(Box::new("host function called from another store"));
    }
    // SAFETY: the adapter passes the caller's argument area, which has `slots` slots
    // (the signature check of the call guarantees the caller reserved them).
    let area = unsafe { std::slice::from_raw_parts_mut(area, slots) };
    let caller = store.vm_store().instance_of_vmctx(caller_vmctx);
    match std::panic::catch_unwind(AssertUnwindSafe(|| callback(store, caller, area))) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => fail(e),
        Err(p) => {
            // SAFETY: as in `fail`.
            unsafe { (*act).failure = Some(HostFailure::Panic(p)) };
            TrapCode::HostError.as_u32()
        }
    }
}
