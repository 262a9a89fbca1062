//! `quickbeam run`: load a module, link WASI, run `_start` or `--invoke` an export.
//!
//! The outcome is an exit status, as a process would have it: the guest's
//! `proc_exit` code, 0 when `_start` returns, [`TRAP_EXIT_CODE`] after a trap (as
//! wasmtime: 128 + SIGABRT), 1 for any other error.
//!
//! Loading ([`load`]) and running ([`run_module`]) are separate so that `watch` can keep
//! one engine, and with it the warm in-process cache, across reloads.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use quickbeam::{Config, Engine, Func, Linker, Module, Store, Trap, Val, ValType};
use quickbeam_wasi::{I32Exit, WasiCtx};

/// The exit status after a trap: 128 + SIGABRT, like wasmtime on Unix.
pub const TRAP_EXIT_CODE: i32 = 134;

/// What `quickbeam run` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The `.wasm` or `.wat` file.
    pub file: PathBuf,
    /// Guest arguments after `argv[0]` (the file name), or `--invoke` values.
    pub args: Vec<String>,
    /// The export to call instead of `_start`.
    pub invoke: Option<String>,
    /// Preopened directories: `(host path, guest path)`.
    pub dirs: Vec<(PathBuf, String)>,
    /// Environment variables for the guest.
    pub envs: Vec<(String, String)>,
    /// The engine's settings (the cache store comes from `--cache-dir`/`--no-cache`).
    pub config: Config,
}

/// The store's data: just the WASI context.
pub struct Host {
    pub wasi: WasiCtx,
}

/// How a run ended, for the caller to report.
#[derive(Debug)]
pub enum RunEnd {
    /// The guest finished (`_start` returned, or `proc_exit`) with this status.
    Exit(i32),
    /// An error (a trap is one) to print as `error: {:#}`, and the status to exit with.
    Error(anyhow::Error, i32),
}

/// Runs the module as asked; every failure is a [`RunEnd::Error`].
pub fn run(opts: &RunOptions) -> RunEnd {
    outcome(run_inner(opts))
}

fn outcome(result: Result<i32>) -> RunEnd {
    match result {
        Ok(code) => RunEnd::Exit(code),
        Err(e) => {
            if let Some(exit) = e.chain().find_map(|c| c.downcast_ref::<I32Exit>()) {
                return RunEnd::Exit(exit.0);
            }
            let code = if e.chain().any(|c| c.is::<Trap>()) { TRAP_EXIT_CODE } else { 1 };
            RunEnd::Error(e, code)
        }
    }
}

fn run_inner(opts: &RunOptions) -> Result<i32> {
    let engine = Engine::new(&opts.config)?;
    let module = load(&engine, &opts.file)?;
    instantiate_and_run(&engine, &module, opts)
}

/// Reads, parses and compiles the module in `path`; errors name the file and the step
/// (`failed to read/parse/compile `FILE``).
pub fn load(engine: &Engine, path: &Path) -> Result<Module> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("failed to read `{shown}`"))?;
    let wasm = crate::wat_to_wasm(&shown, &bytes).with_context(|| format!("failed to parse `{shown}`"))?;
    Module::new(engine, &wasm).with_context(|| format!("failed to compile `{shown}`"))
}

/// Runs an already compiled module as `opts` asks (`opts.file` names it in messages and
/// is the guest's `argv[0]`; `opts.config` is not used).
pub fn run_module(engine: &Engine, module: &Module, opts: &RunOptions) -> RunEnd {
    outcome(instantiate_and_run(engine, module, opts))
}

fn instantiate_and_run(engine: &Engine, module: &Module, opts: &RunOptions) -> Result<i32> {
    let shown = opts.file.display().to_string();
    let mut builder = WasiCtx::builder();
    builder.inherit_stdio().arg(&shown).args(if opts.invoke.is_some() { &[][..] } else { &opts.args[..] });
    for (name, value) in &opts.envs {
        builder.env(name, value);
    }
    for (host, guest) in &opts.dirs {
        builder.preopened_dir_path(host, guest.clone())?;
    }
    let mut store = Store::new(engine, Host { wasi: builder.build() });
    let mut linker = Linker::new(engine);
    quickbeam_wasi::add_to_linker(&mut linker, |h: &mut Host| &mut h.wasi)?;
    let instance =
        linker.instantiate(&mut store, module).with_context(|| format!("failed to instantiate `{shown}`"))?;

    match &opts.invoke {
        None => {
            let start = instance.get_func(&mut store, "_start").ok_or_else(|| {
                anyhow!("`{shown}` exports no `_start` function; use `--invoke NAME` to call another export")
            })?;
            start.call(&mut store, &[], &mut []).with_context(|| format!("failed to run `{shown}`"))?;
            Ok(0)
        }
        Some(name) => {
            if let Some(init) = instance.get_func(&mut store, "_initialize") {
                init.call(&mut store, &[], &mut [])
                    .with_context(|| format!("failed to run `_initialize` of `{shown}`"))?;
            }
            let func = instance
                .get_func(&mut store, name)
                .ok_or_else(|| anyhow!("`{shown}` exports no function named `{name}`"))?;
            for line in invoke(&mut store, func, name, &opts.args)? {
                println!("{line}");
            }
            Ok(0)
        }
    }
}

/// Calls `func` with `args` parsed by its parameter types; returns one line per result.
fn invoke(store: &mut Store<Host>, func: Func, name: &str, args: &[String]) -> Result<Vec<String>> {
    let ty = func.ty(&*store);
    if ty.params().len() != args.len() {
        bail!("`{name}` takes {} argument(s) of type {ty}, but {} were given", ty.params().len(), args.len());
    }
    let params = ty
        .params()
        .iter()
        .zip(args)
        .map(|(t, a)| parse_val(*t, a).with_context(|| format!("invalid argument `{a}` for `{name}`")))
        .collect::<Result<Vec<_>>>()?;
    let mut results: Vec<Val> = ty.results().iter().map(|t| Val::default_for(*t)).collect();
    func.call(&mut *store, &params, &mut results).with_context(|| format!("failed to invoke `{name}`"))?;
    Ok(results.iter().map(format_val).collect())
}

/// Parses a command-line value as a Wasm value of type `ty`: integers in decimal (or
/// `0x` hex; negative or unsigned), floats in Rust's syntax (`inf`, `NaN` too).
pub fn parse_val(ty: ValType, s: &str) -> Result<Val> {
    fn int(s: &str) -> Result<i128> {
        let (neg, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let digits = digits.replace('_', "");
        let v = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
            Some(hex) => i128::from_str_radix(hex, 16)?,
            None => digits.parse::<i128>()?,
        };
        Ok(if neg { -v } else { v })
    }
    Ok(match ty {
        ValType::I32 => {
            let v = int(s)?;
            if !(i128::from(i32::MIN)..=i128::from(u32::MAX)).contains(&v) {
                bail!("out of range for i32");
            }
            Val::I32(v as i32)
        }
        ValType::I64 => {
            let v = int(s)?;
            if !(i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(&v) {
                bail!("out of range for i64");
            }
            Val::I64(v as i64)
        }
        ValType::F32 => Val::F32(s.parse::<f32>()?.to_bits()),
        ValType::F64 => Val::F64(s.parse::<f64>()?.to_bits()),
        ValType::FuncRef | ValType::ExternRef => bail!("cannot pass a `{ty}` from the command line"),
    })
}

/// A result as `quickbeam run --invoke` prints it (as wasmtime does).
pub fn format_val(v: &Val) -> String {
    match v {
        Val::I32(x) => x.to_string(),
        Val::I64(x) => x.to_string(),
        Val::F32(b) => f32::from_bits(*b).to_string(),
        Val::F64(b) => f64::from_bits(*b).to_string(),
        Val::FuncRef(None) | Val::ExternRef(None) => "null".to_string(),
        Val::FuncRef(Some(_)) => "<funcref>".to_string(),
        Val::ExternRef(Some(n)) => format!("<externref {n}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_by_type() {
        assert_eq!(parse_val(ValType::I32, "42").unwrap(), Val::I32(42));
        assert_eq!(parse_val(ValType::I32, "-1").unwrap(), Val::I32(-1));
        assert_eq!(parse_val(ValType::I32, "4294967295").unwrap(), Val::I32(-1));
        assert_eq!(parse_val(ValType::I32, "0x10").unwrap(), Val::I32(16));
        assert!(parse_val(ValType::I32, "4294967296").is_err());
        assert!(parse_val(ValType::I32, "x").is_err());
        assert_eq!(parse_val(ValType::I64, "-9223372036854775808").unwrap(), Val::I64(i64::MIN));
        assert_eq!(parse_val(ValType::F32, "1.5").unwrap(), Val::F32(1.5f32.to_bits()));
        assert_eq!(parse_val(ValType::F64, "-inf").unwrap(), Val::F64(f64::NEG_INFINITY.to_bits()));
        assert!(parse_val(ValType::FuncRef, "0").is_err());
    }

    #[test]
    fn values_format_like_wasmtime() {
        assert_eq!(format_val(&Val::I32(-3)), "-3");
        assert_eq!(format_val(&Val::F64(2.5f64.to_bits())), "2.5");
        assert_eq!(format_val(&Val::F32(3.0f32.to_bits())), "3");
        assert_eq!(format_val(&Val::ExternRef(None)), "null");
    }
}
