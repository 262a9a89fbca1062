//! [`Func`]: Wasm and host functions; [`TypedFunc`]: statically typed calls;
//! [`IntoFunc`]: turning Rust closures into host functions.
//!
//! Every call, host or Wasm, passes values in an argument area of `A = max(params,
//! results)` 8-byte slots, as compiled code does (`quickbeam_environ::abi`): param `i`
//! in slot `A-1-i`, result `j` in slot `A-1-j`.

use crate::store::{AsContext, AsContextMut, Caller};
use crate::{FuncType, Result, Val, ValType};
use std::marker::PhantomData;
use std::sync::Arc;

/// A function of a store: defined by an instance or by the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Func {
    pub(crate) store: u64,
    pub(crate) index: u32,
}

/// A host function over the raw argument area (see the module docs).
pub(crate) type HostFn<T> = Arc<dyn Fn(Caller<'_, T>, &mut [u64]) -> Result<()> + Send + Sync>;

impl Func {
    /// A host function from a Rust closure, optionally taking a [`Caller`] first.
    pub fn wrap<T: 'static, Params, Results>(
        mut store: impl AsContextMut<Data = T>,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Func {
        let (ty, host) = f.into_host();
        crate::store::new_host_func(store.as_context_mut().0, ty, host)
    }

    /// A host function of type `ty` over [`Val`]s.
    pub fn new<T: 'static>(
        mut store: impl AsContextMut<Data = T>,
        ty: FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
    ) -> Func {
        let host = dynamic_host_fn(ty.clone(), f);
        crate::store::new_host_func(store.as_context_mut().0, ty, host)
    }

    /// Calls the function with `params`, writing `results` (whose length must be the
    /// number of results).
    ///
    /// # Errors
    /// A type mismatch, a [`crate::Trap`], or the error a host function returned.
    pub fn call(&self, mut store: impl AsContextMut, params: &[Val], results: &mut [Val]) -> Result<()> {
        crate::store::call_func(store.as_context_mut().0, *self, params, results)
    }

    pub fn ty(&self, store: impl AsContext) -> FuncType {
        store.as_context().0.func_ty(*self).clone()
    }

    /// A statically typed view of this function.
    ///
    /// # Errors
    /// If `P` and `R` do not match the function's type.
    pub fn typed<P: WasmParams, R: WasmResults>(&self, store: impl AsContext) -> Result<TypedFunc<P, R>> {
        let ty = self.ty(&store);
        let (mut want_p, mut want_r) = (Vec::new(), Vec::new());
        P::push_types(&mut want_p);
        R::push_types(&mut want_r);
        if ty.params() != want_p.as_slice() || ty.results() != want_r.as_slice() {
            anyhow::bail!(
                "type mismatch: the function has type {ty}, not {}",
                FuncType::new(want_p, want_r)
            );
        }
        Ok(TypedFunc { func: *self, _marker: PhantomData })
    }
}

/// A function whose parameter and result types are known statically.
pub struct TypedFunc<P, R> {
    func: Func,
    _marker: PhantomData<fn(P) -> R>,
}

impl<P, R> Clone for TypedFunc<P, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P, R> Copy for TypedFunc<P, R> {}

impl<P: WasmParams, R: WasmResults> TypedFunc<P, R> {
    /// # Errors
    /// A [`crate::Trap`], or the error a host function returned.
    pub fn call(&self, mut store: impl AsContextMut, params: P) -> Result<R> {
        let slots = P::COUNT.max(R::COUNT);
        let mut area = [0u64; 16];
        let mut heap;
        let area: &mut [u64] = if slots <= area.len() {
            &mut area[..slots]
        } else {
            heap = vec![0u64; slots];
            &mut heap
        };
        params.store_area(area);
        crate::store::call_raw(store.as_context_mut().0, self.func, area)?;
        Ok(R::load_area(area))
    }

    pub fn func(&self) -> &Func {
        &self.func
    }
}

/// A Rust type that is a Wasm value type.
pub trait WasmTy: Copy + Send + Sync + 'static {
    #[doc(hidden)]
    fn valtype() -> ValType;
    #[doc(hidden)]
    fn into_raw(self) -> u64;
    #[doc(hidden)]
    fn from_raw(raw: u64) -> Self;
}

macro_rules! wasm_ty {
    ($($t:ty => $vt:ident, |$s:ident| $into:expr, |$r:ident| $from:expr;)*) => {$(
        impl WasmTy for $t {
            fn valtype() -> ValType { ValType::$vt }
            fn into_raw(self) -> u64 { let $s = self; $into }
            fn from_raw(raw: u64) -> Self { let $r = raw; $from }
        }
    )*};
}

wasm_ty! {
    i32 => I32, |v| v as u32 as u64, |r| r as u32 as i32;
    u32 => I32, |v| v as u64, |r| r as u32;
    i64 => I64, |v| v as u64, |r| r as i64;
    u64 => I64, |v| v, |r| r;
    f32 => F32, |v| v.to_bits() as u64, |r| f32::from_bits(r as u32);
    f64 => F64, |v| v.to_bits(), |r| f64::from_bits(r);
}

/// Parameter lists: `()`, one [`WasmTy`], or tuples of them.
pub trait WasmParams: Send + Sync + 'static {
    #[doc(hidden)]
    const COUNT: usize;
    #[doc(hidden)]
    fn push_types(out: &mut Vec<ValType>);
    /// Writes param `i` at `area[area.len()-1-i]`.
    #[doc(hidden)]
    fn store_area(self, area: &mut [u64]);
    /// Reads param `i` from `area[area.len()-1-i]`.
    #[doc(hidden)]
    fn load_area(area: &[u64]) -> Self;
}

/// Result lists: `()`, one [`WasmTy`], or tuples of them.
pub trait WasmResults: WasmParams {}
impl<P: WasmParams> WasmResults for P {}

impl<A: WasmTy> WasmParams for A {
    const COUNT: usize = 1;
    fn push_types(out: &mut Vec<ValType>) {
        out.push(A::valtype());
    }
    fn store_area(self, area: &mut [u64]) {
        area[area.len() - 1] = self.into_raw();
    }
    fn load_area(area: &[u64]) -> Self {
        A::from_raw(area[area.len() - 1])
    }
}

macro_rules! wasm_params_tuple {
    ($n:expr; $($t:ident $i:tt),*) => {
        impl<$($t: WasmTy),*> WasmParams for ($($t,)*) {
            const COUNT: usize = $n;
            fn push_types(_out: &mut Vec<ValType>) {
                $(_out.push($t::valtype());)*
            }
            #[allow(unused_variables)]
            fn store_area(self, area: &mut [u64]) {
                let top = area.len();
                $(area[top - 1 - $i] = self.$i.into_raw();)*
            }
            #[allow(unused_variables, clippy::unused_unit)]
            fn load_area(area: &[u64]) -> Self {
                let top = area.len();
                ($($t::from_raw(area[top - 1 - $i]),)*)
            }
        }
    };
}

wasm_params_tuple!(0;);
wasm_params_tuple!(1; A1 0);
wasm_params_tuple!(2; A1 0, A2 1);
wasm_params_tuple!(3; A1 0, A2 1, A3 2);
wasm_params_tuple!(4; A1 0, A2 1, A3 2, A4 3);
wasm_params_tuple!(5; A1 0, A2 1, A3 2, A4 3, A5 4);
wasm_params_tuple!(6; A1 0, A2 1, A3 2, A4 3, A5 4, A6 5);
wasm_params_tuple!(7; A1 0, A2 1, A3 2, A4 3, A5 4, A6 5, A7 6);
wasm_params_tuple!(8; A1 0, A2 1, A3 2, A4 3, A5 4, A6 5, A7 6, A8 7);
wasm_params_tuple!(9; A1 0, A2 1, A3 2, A4 3, A5 4, A6 5, A7 6, A8 7, A9 8);
wasm_params_tuple!(10; A1 0, A2 1, A3 2, A4 3, A5 4, A6 5, A7 6, A8 7, A9 8, A10 9);

/// What a host closure may return: results, or `Result` of results (an `Err` traps the
/// Wasm caller and reaches the host's [`Func::call`] unchanged).
pub trait WasmRet: Send + Sync + 'static {
    #[doc(hidden)]
    type Results: WasmResults;
    #[doc(hidden)]
    fn into_results(self) -> Result<Self::Results>;
}

impl<R: WasmResults> WasmRet for R {
    type Results = R;
    fn into_results(self) -> Result<R> {
        Ok(self)
    }
}

impl<R: WasmResults> WasmRet for Result<R> {
    type Results = R;
    fn into_results(self) -> Result<R> {
        self
    }
}

/// A Rust closure usable as a host function: `Fn(A1, ..., An) -> R` or
/// `Fn(Caller<'_, T>, A1, ..., An) -> R`, where each `Ai` is a [`WasmTy`] and `R` a
/// [`WasmRet`].
pub trait IntoFunc<T, Params, Results>: Send + Sync + 'static {
    #[doc(hidden)]
    fn into_host(self) -> (FuncType, HostFn<T>);
}

macro_rules! into_func {
    ($($a:ident $i:tt),*) => {
        impl<T, F, $($a: WasmTy,)* R> IntoFunc<T, ($($a,)*), R> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
            R: WasmRet,
        {
            fn into_host(self) -> (FuncType, HostFn<T>) {
                let ty = host_ty::<($($a,)*), R::Results>();
                let f: HostFn<T> = Arc::new(move |_caller: Caller<'_, T>, area: &mut [u64]| {
                    let _top = area.len();
                    let r = (self)($($a::from_raw(area[_top - 1 - $i])),*).into_results()?;
                    r.store_area(area);
                    Ok(())
                });
                (ty, f)
            }
        }

        impl<T, F, $($a: WasmTy,)* R> IntoFunc<T, (Caller<'_, T>, $($a,)*), R> for F
        where
            F: Fn(Caller<'_, T>, $($a),*) -> R + Send + Sync + 'static,
            R: WasmRet,
        {
            fn into_host(self) -> (FuncType, HostFn<T>) {
                let ty = host_ty::<($($a,)*), R::Results>();
                let f: HostFn<T> = Arc::new(move |caller: Caller<'_, T>, area: &mut [u64]| {
                    let _top = area.len();
                    let r = (self)(caller, $($a::from_raw(area[_top - 1 - $i])),*).into_results()?;
                    r.store_area(area);
                    Ok(())
                });
                (ty, f)
            }
        }
    };
}

into_func!();
into_func!(A1 0);
into_func!(A1 0, A2 1);
into_func!(A1 0, A2 1, A3 2);
into_func!(A1 0, A2 1, A3 2, A4 3);
into_func!(A1 0, A2 1, A3 2, A4 3, A5 4);
into_func!(A1 0, A2 1, A3 2, A4 3, A5 4, A6 5);
into_func!(A1 0, A2 1, A3 2, A4 3, A5 4, A6 5, A7 6);
into_func!(A1 0, A2 1, A3 2, A4 3, A5 4, A6 5, A7 6, A8 7);
into_func!(A1 0, A2 1, A3 2, A4 3, A5 4, A6 5, A7 6, A8 7, A9 8);
into_func!(A1 0, A2 1, A3 2, A4 3, A5 4, A6 5, A7 6, A8 7, A9 8, A10 9);

fn host_ty<P: WasmParams, R: WasmResults>() -> FuncType {
    let (mut p, mut r) = (Vec::new(), Vec::new());
    P::push_types(&mut p);
    R::push_types(&mut r);
    FuncType::new(p, r)
}

/// Wraps a [`Val`]-based host closure into a raw-area one.
pub(crate) fn dynamic_host_fn<T: 'static>(
    ty: FuncType,
    f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
) -> HostFn<T> {
    Arc::new(move |caller: Caller<'_, T>, area: &mut [u64]| {
        let top = area.len();
        let params: Vec<Val> = ty
            .params()
            .iter()
            .enumerate()
            .map(|(i, t)| crate::store::val_from_raw(&mut *caller.store, *t, area[top - 1 - i]))
            .collect();
        let mut results: Vec<Val> = ty.results().iter().map(|t| Val::default_for(*t)).collect();
        f(Caller { store: &mut *caller.store, caller: caller.caller }, &params, &mut results)?;
        for (j, (v, t)) in results.iter().zip(ty.results()).enumerate() {
            if v.ty() != *t {
                anyhow::bail!("host function returned a {} for result {j} of type {t}", v.ty());
            }
            area[top - 1 - j] = crate::store::val_to_raw(caller.store, v)?;
        }
        Ok(())
    })
}
