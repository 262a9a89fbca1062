//! `quickbeam run`: load a module, link WASI, run `_start` or `--invoke` an export.
//!
//! The outcome is an exit status, as a process would have it: the guest's
//! `proc_exit` code, 0 when `_start` returns, [`TRAP_EXIT_CODE`] after a trap (as
//! wasmtime: 128 + SIGABRT), [`TIMEOUT_EXIT_CODE`] when `--timeout` stopped the guest,
//! 1 for any other error.
//!
//! `--timeout`: the engine compiles with epoch interruption checks
//! ([`RunOptions::engine_config`]); the store's deadline is the next epoch, and a timer
//! thread advances the epoch once the duration has passed since the store was made
//! (instantiation and the start function count). The guest then traps with `interrupt`
//! at its next function entry or loop header; one blocked in a host call (reading
//! stdin) stops when the call returns.
//!
//! Loading ([`load`]) and running ([`run_module`]) are separate so that `watch` can keep
//! one engine, and with it the warm in-process cache, across reloads.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use quickbeam::{Config, Engine, Func, Linker, Module, Store, Trap, TrapCode, Val, ValType};
use quickbeam_wasi::{I32Exit, WasiCtx};

/// The exit status after a trap: 128 + SIGABRT, like wasmtime on Unix.
pub const TRAP_EXIT_CODE: i32 = 134;

/// The exit status when `--timeout` stopped the guest: 124, as GNU `timeout` has it.
pub const TIMEOUT_EXIT_CODE: i32 = 124;

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
    /// Stop the guest when it has run this long (`--timeout`).
    pub timeout: Option<Duration>,
}

impl RunOptions {
    /// The engine settings to run with: [`RunOptions::config`], with epoch interruption
    /// on when there is a timeout. [`run_module`] needs an engine made with them.
    pub fn engine_config(&self) -> Config {
        let mut config = self.config.clone();
        if self.timeout.is_some() {
            config.epoch_interruption(true);
        }
        config
    }
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
            let trap = e.chain().find_map(|c| c.downcast_ref::<Trap>()).map(|t| t.code);
            let code = match trap {
                Some(TrapCode::Interrupt) => TIMEOUT_EXIT_CODE,
                Some(_) => TRAP_EXIT_CODE,
                None => 1,
            };
            RunEnd::Error(e, code)
        }
    }
}

fn run_inner(opts: &RunOptions) -> Result<i32> {
    let engine = Engine::new(&opts.engine_config())?;
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
/// is the guest's `argv[0]`; `opts.config` is not used: with a timeout, `engine` must
/// come from [`RunOptions::engine_config`]).
pub fn run_module(engine: &Engine, module: &Module, opts: &RunOptions) -> RunEnd {
    outcome(instantiate_and_run(engine, module, opts))
}

fn is_interrupt(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<Trap>().is_some_and(|t| t.code == TrapCode::Interrupt))
}

/// Advances an engine's epoch once a duration has passed, unless dropped before.
/// Dropping waits for the timer thread, so no late tick can reach a later run.
struct Timer {
    cancel: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Timer {
    fn start(engine: &Engine, after: Duration) -> Timer {
        let (tx, rx) = channel::<()>();
        let engine = engine.clone();
        let thread = std::thread::Builder::new()
            .name("quickbeam-timeout".into())
            .spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(after) {
                    engine.increment_epoch();
                }
            })
            .ok();
        Timer { cancel: Some(tx), thread }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        drop(self.cancel.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Parses a `--timeout` value: a number (decimals allowed) and a unit, `ms`, `s`, `m`
/// or `h` (`500ms`, `1.5s`, `2m`); a bare number is seconds.
///
/// # Errors
/// The message for clap: what is wrong, with examples.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let s = text.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let invalid = |why: &str| format!("invalid duration `{text}`: {why} (e.g. `500ms`, `10s`, `2m`)");
    let n: f64 = number.parse().map_err(|_| invalid("expected a number and a unit"))?;
    let seconds = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(invalid(&format!("unknown unit `{other}`, use ms, s, m or h"))),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid("out of range"))
}

fn instantiate_and_run(engine: &Engine, module: &Module, opts: &RunOptions) -> Result<i32> {
    run_in_store(engine, module, opts).map_err(|e| match opts.timeout {
        Some(t) if is_interrupt(&e) => e.context(format!("timed out: the guest ran longer than --timeout {t:?}")),
        _ => e,
    })
}

fn run_in_store(engine: &Engine, module: &Module, opts: &RunOptions) -> Result<i32> {
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
    // Set before any Wasm runs (a start function counts); the timer ends with the run.
    let _timer = opts.timeout.map(|after| {
        store.set_epoch_deadline(1);
        Timer::start(engine, after)
    });
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
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("1d").unwrap_err().contains("unknown unit `d`"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn values_format_like_wasmtime() {
        assert_eq!(format_val(&Val::I32(-3)), "-3");
        assert_eq!(format_val(&Val::F64(2.5f64.to_bits())), "2.5");
        assert_eq!(format_val(&Val::F32(3.0f32.to_bits())), "3");
        assert_eq!(format_val(&Val::ExternRef(None)), "null");
    }
}
