//! WASI preview1 (`wasi_snapshot_preview1`) host functions for Quickbeam.
//!
//! ```ignore
//! let mut linker = Linker::new(&engine);
//! quickbeam_wasi::add_to_linker(&mut linker, |state: &mut MyState| &mut state.wasi)?;
//! let wasi = WasiCtx::builder().arg("prog.wasm").inherit_stdio().build();
//! ```
//!
//! What this crate owns and what always holds:
//! - [`WasiCtx`] (`ctx.rs`) is the whole WASI state of one store: arguments, environment,
//!   descriptors. File system access only goes through preopened `cap_std` directories.
//! - `preview1.rs` lists every preview1 function once ([`for_each_function!`]) and
//!   implements them as `WasiCtx` methods over a bounds-checked [`GuestMemory`]: a bad
//!   guest pointer is `ERRNO_FAULT`, an unimplemented function `ERRNO_NOSYS`; nothing
//!   panics on guest input.
//! - [`add_to_linker`] defines all of them in a [`Linker`]. `proc_exit` ends the guest with
//!   an [`I32Exit`] error, which travels unchanged out of `Func::call`.

mod ctx;
mod errno;
mod memory;
mod preview1;
pub mod types;

use std::sync::Arc;

use quickbeam::{Caller, Extern, FuncType, Linker, Val, ValType};

pub use ctx::{OutputBuffer, WasiCtx, WasiCtxBuilder};
pub use errno::Errno;
pub use memory::{GuestMemory, IoVec};
pub use preview1::Filestat;

/// The import module name of WASI preview1.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// The error `proc_exit(code)` returns to end the guest: the embedder downcasts it and
/// exits with `code` (0 is success).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("exited with status {0}")]
pub struct I32Exit(pub i32);

/// How one preview1 function is served.
#[derive(Clone, Copy)]
enum Handler {
    /// A [`WasiCtx`] method, with the guest's memory.
    Call(fn(&mut WasiCtx, &mut GuestMemory<'_>, &[Val]) -> Result<(), Errno>),
    /// Defined so programs link; always `ERRNO_NOSYS`.
    NoSys,
}

/// One preview1 function: its name, parameter types (the result is one `i32` errno) and
/// handler.
struct Function {
    name: &'static str,
    params: &'static [ValType],
    handler: Handler,
}

/// A parameter type of the witx list: the Wasm type and the host integer it carries.
trait Param {
    const TYPE: ValType;
    type Host;
    fn get(v: Option<&Val>) -> Result<Self::Host, Errno>;
}

impl Param for i32 {
    const TYPE: ValType = ValType::I32;
    type Host = u32;
    fn get(v: Option<&Val>) -> Result<u32, Errno> {
        match v {
            Some(Val::I32(x)) => Ok(*x as u32),
            // The runtime checks arguments against the declared type.
            _ => Err(Errno::INVAL),
        }
    }
}

impl Param for i64 {
    const TYPE: ValType = ValType::I64;
    type Host = u64;
    fn get(v: Option<&Val>) -> Result<u64, Errno> {
        match v {
            Some(Val::I64(x)) => Ok(*x as u64),
            _ => Err(Errno::INVAL),
        }
    }
}

macro_rules! function_table {
    ($( ($kind:ident) $name:ident ( $($arg:ident : $ty:ident),* ); )*) => {
        /// Every preview1 function but `proc_exit`.
        const FUNCTIONS: &[Function] = &[
            $(Function {
                name: stringify!($name),
                params: &[$(<$ty as Param>::TYPE),*],
                handler: function_table!(@handler $kind $name ($($arg : $ty),*)),
            },)*
        ];
    };
    (@handler implemented $name:ident ($($arg:ident : $ty:ident),*)) => {
        Handler::Call(|cx, mem, args| {
            #[allow(unused_mut, unused_variables)]
            let mut args = args.iter();
            $(let $arg = <$ty as Param>::get(args.next())?;)*
            cx.$name(mem, $($arg),*)
        })
    };
    (@handler nosys $name:ident ($($arg:ident : $ty:ident),*)) => {
        Handler::NoSys
    };
}

for_each_function!(function_table);

/// The names of every function this crate defines in `wasi_snapshot_preview1`.
pub fn function_names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|f| f.name).chain(["proc_exit"])
}

/// The names of the functions that are defined but return `ERRNO_NOSYS`.
pub fn unsupported_function_names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().filter(|f| matches!(f.handler, Handler::NoSys)).map(|f| f.name)
}

/// Defines every `wasi_snapshot_preview1` function in `linker`. `get_cx` finds the
/// [`WasiCtx`] in the store's data.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get_cx: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let get_cx = Arc::new(get_cx);
    for f in FUNCTIONS {
        let ty = FuncType::new(f.params.iter().copied(), [ValType::I32]);
        let handler = f.handler;
        let get_cx = get_cx.clone();
        linker.func_new(
            MODULE,
            f.name,
            ty,
            move |mut caller: Caller<'_, T>, params: &[Val], results: &mut [Val]| {
                let errno = match handler {
                    Handler::NoSys => Errno::NOSYS,
                    Handler::Call(call) => with_memory(&mut caller, &*get_cx, |cx, mem| call(cx, mem, params))?,
                };
                results[0] = Val::I32(errno.raw());
                Ok(())
            },
        )?;
    }
    let proc_exit = FuncType::new([ValType::I32], []);
    linker.func_new(
        MODULE,
        "proc_exit",
        proc_exit,
        |_caller: Caller<'_, T>, params: &[Val], _results: &mut [Val]| {
            let code = params.first().and_then(Val::i32).unwrap_or(0);
            Err(I32Exit(code).into())
        },
    )?;
    Ok(())
}

/// Runs `f` with the store's [`WasiCtx`] and the caller's exported `memory`.
///
/// The context is moved out of the store for the call (a placeholder stands in), so
/// that it and the memory can be borrowed at the same time; it is always put back.
fn with_memory<T: 'static>(
    caller: &mut Caller<'_, T>,
    get_cx: &dyn Fn(&mut T) -> &mut WasiCtx,
    f: impl FnOnce(&mut WasiCtx, &mut GuestMemory<'_>) -> Result<(), Errno>,
) -> anyhow::Result<Errno> {
    let memory = match caller.get_export("memory") {
        Some(Extern::Memory(m)) => m,
        _ => anyhow::bail!("WASI: the calling module does not export a memory named `memory`"),
    };
    let mut cx = std::mem::replace(get_cx(caller.data_mut()), WasiCtx::placeholder());
    let result = f(&mut cx, &mut GuestMemory::new(memory.data_mut(&mut *caller)));
    *get_cx(caller.data_mut()) = cx;
    Ok(match result {
        Ok(()) => Errno::SUCCESS,
        Err(e) => e,
    })
}
