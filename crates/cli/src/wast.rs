//! The `.wast` spec-script runner.
//!
//! Every directive of a script is one counted result (a `module` asserts that the module
//! compiles and instantiates; `assert_*` directives assert what they say). A directive
//! that panics inside the engine is caught and counted as a failure, so one unfinished
//! feature does not hide the rest of a script. Results carry their 1-based line and
//! column so that callers can keep expected-failure lists keyed by `script:line`.
//!
//! Semantics follow the reference interpreter and wasmtime's runner:
//! - `assert_return`: values compare bit for bit; `nan:canonical` / `nan:arithmetic`
//!   follow the spec's NaN classes; `ref.null` / `ref.extern N` / `ref.func` match
//!   references.
//! - `assert_trap` / `assert_exhaustion`: the call (or instantiation) must fail with a
//!   [`Trap`] whose message matches the expected text (one may be a prefix of the other:
//!   the spec writes `uninitialized element 2`), or one of the spec's other wordings for
//!   that trap code (`out of bounds table access` for `TableOutOfBounds`).
//! - `assert_invalid` / `assert_malformed`: encoding the text (for `module quote`) or
//!   compiling the module must fail; the message is not compared.
//! - `assert_unlinkable`: the module must compile and its instantiation must fail.
//!
//! The `spectest` module is the reference interpreter's: `print*` functions (silent
//! here), `global_i32` = 666, `global_i64` = 666, `global_f32` = 666.6,
//! `global_f64` = 666.6, `table` (10..20 funcref) and `memory` (1..2 pages).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use quickbeam::{
    Config, Engine, Extern, FuncType, Global, GlobalType, Instance, Linker, Memory, MemoryType, Module, RefType, Store,
    Table, TableType, Trap, TrapCode, Val, ValType,
};
use wast::core::{AbstractHeapType, HeapType, NanPattern, WastArgCore, WastRetCore};
use wast::parser::{self, ParseBuffer};
use wast::token::Span;
use wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet, Wat};

/// The result of one directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// 1-based line of the directive.
    pub line: usize,
    /// 1-based column of the directive.
    pub col: usize,
    /// `module`, `register`, `invoke`, `assert_return`, `assert_trap`, ...
    pub kind: &'static str,
    /// `None` if it passed, else why it failed.
    pub failure: Option<String>,
}

/// Every directive's result for one script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WastReport {
    /// The script's name as it appears in failure lines.
    pub file: String,
    pub outcomes: Vec<Outcome>,
}

impl WastReport {
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.failure.is_none()).count()
    }

    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }

    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.failure.is_some())
    }

    /// One line per failure: `file:line:col: kind: message` (the message on one line).
    pub fn failure_lines(&self) -> Vec<String> {
        self.failures()
            .map(|o| {
                let msg = o.failure.as_deref().unwrap_or_default().replace('\n', " | ");
                format!("{}:{}:{}: {}: {}", self.file, o.line, o.col, o.kind, msg)
            })
            .collect()
    }
}

/// Reads and runs the script at `path` with an engine made from `config`.
///
/// # Errors
/// Only if the file cannot be read; everything else is a failed outcome.
pub fn run_wast_file(path: &Path, config: &Config) -> Result<WastReport> {
    let text = std::fs::read_to_string(path).with_context(|| format!("failed to read `{}`", path.display()))?;
    Ok(run_wast_text(&path.display().to_string(), &text, config))
}

/// Runs the script `text` (named `file` in the report) with an engine made from `config`.
///
/// Call it on a thread with a large stack (see [`crate::with_large_stack`]) so that
/// `assert_exhaustion` meets the engine's stack limit first.
pub fn run_wast_text(file: &str, text: &str, config: &Config) -> WastReport {
    install_quiet_panic_hook();
    let mut report = WastReport { file: file.to_string(), outcomes: Vec::new() };
    let at = |span: Span| {
        let (line, col) = span.linecol_in(text);
        (line + 1, col + 1)
    };
    let fail_at = |span: Span, kind: &'static str, msg: String| {
        let (line, col) = at(span);
        Outcome { line, col, kind, failure: Some(msg) }
    };

    let mut lexer = wast::lexer::Lexer::new(text);
    lexer.allow_confusing_unicode(true);
    let buf = match ParseBuffer::new_with_lexer(lexer) {
        Ok(buf) => buf,
        Err(e) => {
            report.outcomes.push(fail_at(e.span(), "parse", e.message()));
            return report;
        }
    };
    let script = match parser::parse::<Wast>(&buf) {
        Ok(script) => script,
        Err(e) => {
            report.outcomes.push(fail_at(e.span(), "parse", e.message()));
            return report;
        }
    };

    let mut runner = match Runner::new(config) {
        Ok(r) => r,
        Err(e) => {
            report.outcomes.push(fail_at(Span::from_offset(0), "setup", format!("{e:#}")));
            return report;
        }
    };
    // A `spectest` item the engine cannot create yet is one failure; the script goes on
    // (only modules importing it fail).
    for (name, e) in runner.define_spectest() {
        report.outcomes.push(fail_at(Span::from_offset(0), "setup", format!("spectest `{name}`: {e}")));
    }
    for directive in script.directives {
        let (line, col) = at(directive.span());
        let kind = directive_kind(&directive);
        let failure = match quietly(|| runner.directive(directive)) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(panic) => Some(format!("panicked: {panic}")),
        };
        report.outcomes.push(Outcome { line, col, kind, failure });
    }
    report
}

fn directive_kind(d: &WastDirective<'_>) -> &'static str {
    match d {
        WastDirective::Module(_) => "module",
        WastDirective::ModuleDefinition(_) => "module definition",
        WastDirective::ModuleInstance { .. } => "module instance",
        WastDirective::Register { .. } => "register",
        WastDirective::Invoke(_) => "invoke",
        WastDirective::AssertMalformed { .. } => "assert_malformed",
        WastDirective::AssertInvalid { .. } => "assert_invalid",
        WastDirective::AssertTrap { .. } => "assert_trap",
        WastDirective::AssertReturn { .. } => "assert_return",
        WastDirective::AssertExhaustion { .. } => "assert_exhaustion",
        WastDirective::AssertUnlinkable { .. } => "assert_unlinkable",
        WastDirective::AssertInvalidCustom { .. } => "assert_invalid_custom",
        WastDirective::AssertMalformedCustom { .. } => "assert_malformed_custom",
        WastDirective::AssertException { .. } => "assert_exception",
        WastDirective::AssertSuspension { .. } => "assert_suspension",
        WastDirective::Thread(_) => "thread",
        WastDirective::Wait { .. } => "wait",
    }
}

thread_local! {
    /// Whether panics on this thread are being caught by the runner (and not printed).
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// Where the message and location of a caught panic go.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that stays silent on threads inside [`quietly`] and
/// otherwise defers to the previous hook.
fn install_quiet_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                let msg = crate::panic_message(info.payload());
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{location}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic into `Err(message and location)`.
fn quietly<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    QUIET.with(|q| q.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result.map_err(|payload| {
        LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| crate::panic_message(&*payload))
    })
}

/// The state of one script: its store, the linker with `spectest` and registered
/// instances, and the named instances and module definitions.
struct Runner {
    engine: Engine,
    store: Store<()>,
    linker: Linker<()>,
    current: Option<Instance>,
    instances: HashMap<String, Instance>,
    definitions: HashMap<String, Module>,
    last_definition: Option<Module>,
}

impl Runner {
    fn new(config: &Config) -> Result<Runner> {
        let engine = Engine::new(config)?;
        let store = Store::new(&engine, ());
        let mut linker = Linker::new(&engine);
        linker.allow_shadowing(true);
        Ok(Runner {
            engine,
            store,
            linker,
            current: None,
            instances: HashMap::new(),
            definitions: HashMap::new(),
            last_definition: None,
        })
    }

    /// Runs one directive; `Err` is the failure message.
    fn directive(&mut self, d: WastDirective<'_>) -> Result<(), String> {
        use WastDirective as D;
        let err = |e: anyhow::Error| format!("{e:#}");
        match d {
            D::Module(mut wat) => {
                let name = wat.name().map(|id| id.name().to_string());
                let module = self.compile(&mut wat).map_err(err)?;
                let instance = self.instantiate(&module).map_err(err)?;
                self.current = Some(instance);
                if let Some(name) = name {
                    self.instances.insert(name, instance);
                }
                Ok(())
            }
            D::ModuleDefinition(mut wat) => {
                let name = wat.name().map(|id| id.name().to_string());
                let module = self.compile(&mut wat).map_err(err)?;
                if let Some(name) = name {
                    self.definitions.insert(name, module.clone());
                }
                self.last_definition = Some(module);
                Ok(())
            }
            D::ModuleInstance { instance, module, .. } => {
                let m = match module {
                    Some(id) => self.definitions.get(id.name()).cloned(),
                    None => self.last_definition.clone(),
                }
                .ok_or("no such module definition")?;
                let inst = self.instantiate(&m).map_err(err)?;
                self.current = Some(inst);
                if let Some(id) = instance {
                    self.instances.insert(id.name().to_string(), inst);
                }
                Ok(())
            }
            D::Register { name, module, .. } => {
                let inst = self.instance(module.map(|id| id.name())).map_err(err)?;
                self.linker.instance(&mut self.store, name, inst).map_err(err)?;
                Ok(())
            }
            D::Invoke(invoke) => self.invoke(&invoke).map(drop).map_err(err),
            D::AssertReturn { exec, results, .. } => {
                let got = self.execute(exec).map_err(|e| format!("expected a return, got error: {e:#}"))?;
                check_results(&got, &results)
            }
            D::AssertTrap { exec, message, .. } => match self.execute(exec) {
                Ok(vals) => Err(format!("expected trap `{message}`, got {}", show_vals(&vals))),
                Err(e) => check_trap(&e, message),
            },
            D::AssertExhaustion { call, message, .. } => match self.invoke(&call) {
                Ok(vals) => Err(format!("expected `{message}`, got {}", show_vals(&vals))),
                Err(e) => check_trap(&e, message),
            },
            D::AssertInvalid { mut module, message, .. } => match self.compile(&mut module) {
                Ok(_) => Err(format!("expected an invalid module (`{message}`), but it compiled")),
                Err(_) => Ok(()),
            },
            D::AssertMalformed { mut module, message, .. } => match self.compile(&mut module) {
                Ok(_) => Err(format!("expected a malformed module (`{message}`), but it compiled")),
                Err(_) => Ok(()),
            },
            D::AssertUnlinkable { module, message, .. } => {
                let module = self
                    .compile_wat(module)
                    .map_err(|e| format!("expected a link error (`{message}`), but compiling failed: {e:#}"))?;
                match self.instantiate(&module) {
                    Ok(_) => Err(format!("expected a link error (`{message}`), but it instantiated")),
                    Err(_) => Ok(()),
                }
            }
            other => Err(format!("unsupported directive `{}`", directive_kind(&other))),
        }
    }

    fn compile(&self, wat: &mut QuoteWat<'_>) -> Result<Module> {
        if let QuoteWat::QuoteComponent(..) | QuoteWat::Wat(Wat::Component(_)) = wat {
            bail!("components are not supported");
        }
        let bytes = wat.encode().map_err(|e| anyhow!("failed to encode the module: {}", e.message()))?;
        Module::new(&self.engine, bytes)
    }

    fn compile_wat(&self, mut wat: Wat<'_>) -> Result<Module> {
        if let Wat::Component(_) = wat {
            bail!("components are not supported");
        }
        let bytes = wat.encode().map_err(|e| anyhow!("failed to encode the module: {}", e.message()))?;
        Module::new(&self.engine, bytes)
    }

    fn instantiate(&mut self, module: &Module) -> Result<Instance> {
        self.linker.instantiate(&mut self.store, module)
    }

    fn instance(&self, name: Option<&str>) -> Result<Instance> {
        match name {
            Some(name) => self.instances.get(name).copied().ok_or_else(|| anyhow!("no instance named `{name}`")),
            None => self.current.ok_or_else(|| anyhow!("no module instantiated yet")),
        }
    }

    fn invoke(&mut self, invoke: &WastInvoke<'_>) -> Result<Vec<Val>> {
        let instance = self.instance(invoke.module.map(|id| id.name()))?;
        let func = instance
            .get_func(&mut self.store, invoke.name)
            .ok_or_else(|| anyhow!("no exported function `{}`", invoke.name))?;
        let args = invoke.args.iter().map(arg_val).collect::<Result<Vec<_>>>()?;
        let ty = func.ty(&self.store);
        let mut results: Vec<Val> = ty.results().iter().map(|t| Val::default_for(*t)).collect();
        func.call(&mut self.store, &args, &mut results)?;
        Ok(results)
    }

    fn execute(&mut self, exec: WastExecute<'_>) -> Result<Vec<Val>> {
        match exec {
            WastExecute::Invoke(invoke) => self.invoke(&invoke),
            WastExecute::Wat(wat) => {
                let module = self.compile_wat(wat)?;
                self.instantiate(&module)?;
                Ok(Vec::new())
            }
            WastExecute::Get { module, global, .. } => {
                let instance = self.instance(module.map(|id| id.name()))?;
                let g = instance
                    .get_global(&mut self.store, global)
                    .ok_or_else(|| anyhow!("no exported global `{global}`"))?;
                Ok(vec![g.get(&mut self.store)])
            }
        }
    }
}

impl Runner {
    /// Defines the reference interpreter's `spectest` module; returns the items that
    /// could not be created (with the error or panic message).
    fn define_spectest(&mut self) -> Vec<(&'static str, String)> {
        use ValType::*;
        let mut failed = Vec::new();
        let prints: [(&'static str, &[ValType]); 7] = [
            ("print", &[]),
            ("print_i32", &[I32]),
            ("print_i64", &[I64]),
            ("print_f32", &[F32]),
            ("print_f64", &[F64]),
            ("print_i32_f32", &[I32, F32]),
            ("print_f64_f64", &[F64, F64]),
        ];
        for (name, params) in prints {
            let ty = FuncType::new(params.iter().copied(), []);
            if let Err(e) = self.linker.func_new("spectest", name, ty, |_, _, _| Ok(())) {
                failed.push((name, format!("{e:#}")));
            }
        }
        let globals = [
            ("global_i32", I32, Val::I32(666)),
            ("global_i64", I64, Val::I64(666)),
            ("global_f32", F32, Val::F32(666.6f32.to_bits())),
            ("global_f64", F64, Val::F64(666.6f64.to_bits())),
        ];
        for (name, content, val) in globals {
            let ty = GlobalType { content, mutable: false };
            self.define_spectest_item(name, &mut failed, |store| Global::new(store, ty, val).map(Extern::Global));
        }
        let table_ty = TableType { element: RefType::FuncRef, minimum: 10, maximum: Some(20) };
        self.define_spectest_item("table", &mut failed, |store| {
            Table::new(store, table_ty, Val::FuncRef(None)).map(Extern::Table)
        });
        let memory_ty = MemoryType { minimum: 1, maximum: Some(2), memory64: false, shared: false };
        self.define_spectest_item("memory", &mut failed, |store| Memory::new(store, memory_ty).map(Extern::Memory));
        failed
    }

    fn define_spectest_item(
        &mut self,
        name: &'static str,
        failed: &mut Vec<(&'static str, String)>,
        make: impl FnOnce(&mut Store<()>) -> Result<Extern>,
    ) {
        let store = &mut self.store;
        match quietly(|| make(store)) {
            Ok(Ok(item)) => {
                if let Err(e) = self.linker.define(&self.store, "spectest", name, item) {
                    failed.push((name, format!("{e:#}")));
                }
            }
            Ok(Err(e)) => failed.push((name, format!("{e:#}"))),
            Err(panic) => failed.push((name, format!("panicked: {panic}"))),
        }
    }
}

fn arg_val(arg: &WastArg<'_>) -> Result<Val> {
    let WastArg::Core(core) = arg else { bail!("component values are not supported") };
    Ok(match core {
        WastArgCore::I32(v) => Val::I32(*v),
        WastArgCore::I64(v) => Val::I64(*v),
        WastArgCore::F32(v) => Val::F32(v.bits),
        WastArgCore::F64(v) => Val::F64(v.bits),
        WastArgCore::RefNull(HeapType::Abstract { ty: AbstractHeapType::Func, .. }) => Val::FuncRef(None),
        WastArgCore::RefNull(HeapType::Abstract { ty: AbstractHeapType::Extern, .. }) => Val::ExternRef(None),
        WastArgCore::RefExtern(n) => Val::ExternRef(Some(*n)),
        other => bail!("unsupported argument {other:?}"),
    })
}

fn check_results(got: &[Val], expected: &[WastRet<'_>]) -> Result<(), String> {
    if got.len() != expected.len() {
        return Err(format!("expected {} results, got {}", expected.len(), show_vals(got)));
    }
    for (i, (v, want)) in got.iter().zip(expected).enumerate() {
        let WastRet::Core(want) = want else { return Err("component results are not supported".into()) };
        if !matches_ret(v, want) {
            let which = if got.len() > 1 { format!(" (result {i})") } else { String::new() };
            return Err(format!("expected {}, got {}{which}", show_ret(want), show_val(v)));
        }
    }
    Ok(())
}

fn matches_ret(v: &Val, want: &WastRetCore<'_>) -> bool {
    match (want, v) {
        (WastRetCore::I32(w), Val::I32(g)) => w == g,
        (WastRetCore::I64(w), Val::I64(g)) => w == g,
        (WastRetCore::F32(p), Val::F32(bits)) => match p {
            NanPattern::CanonicalNan => bits & 0x7fff_ffff == 0x7fc0_0000,
            NanPattern::ArithmeticNan => bits & 0x7fc0_0000 == 0x7fc0_0000,
            NanPattern::Value(w) => w.bits == *bits,
        },
        (WastRetCore::F64(p), Val::F64(bits)) => match p {
            NanPattern::CanonicalNan => bits & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000,
            NanPattern::ArithmeticNan => bits & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000,
            NanPattern::Value(w) => w.bits == *bits,
        },
        (WastRetCore::RefNull(ty), Val::FuncRef(None)) => {
            matches!(ty, None | Some(HeapType::Abstract { ty: AbstractHeapType::Func, .. }))
        }
        (WastRetCore::RefNull(ty), Val::ExternRef(None)) => {
            matches!(ty, None | Some(HeapType::Abstract { ty: AbstractHeapType::Extern, .. }))
        }
        (WastRetCore::RefExtern(None), Val::ExternRef(Some(_))) => true,
        (WastRetCore::RefExtern(Some(w)), Val::ExternRef(Some(g))) => w == g,
        (WastRetCore::RefFunc(_), Val::FuncRef(Some(_))) => true,
        (WastRetCore::Either(cases), v) => cases.iter().any(|c| matches_ret(v, c)),
        _ => false,
    }
}

/// Whether `e` is the trap the script expects.
fn check_trap(e: &anyhow::Error, expected: &str) -> Result<(), String> {
    let trap = e.chain().find_map(|c| c.downcast_ref::<Trap>());
    if let Some(trap) = trap {
        let msg = trap.code.message();
        // The spec suffixes some messages (`uninitialized element 2`).
        if expected.starts_with(msg) || msg.starts_with(expected) {
            return Ok(());
        }
        if spec_aliases(trap.code).iter().any(|a| expected.starts_with(a)) {
            return Ok(());
        }
    }
    let text = format!("{e:#}");
    if text.contains(expected) {
        return Ok(());
    }
    Err(format!("expected trap `{expected}`, got error `{text}`"))
}

/// Other messages the spec uses for a trap code, where its wording depends on the
/// instruction (`call_indirect` says `undefined element`, element segments and `table.*`
/// say `out of bounds table access`).
fn spec_aliases(code: TrapCode) -> &'static [&'static str] {
    match code {
        TrapCode::TableOutOfBounds => &["undefined element", "out of bounds table access"],
        TrapCode::Null => &["out of bounds table access", "out of bounds memory access"],
        TrapCode::StackOverflow => &["call stack exhausted", "stack overflow"],
        _ => &[],
    }
}

fn show_vals(vals: &[Val]) -> String {
    if vals.is_empty() {
        return "no results".to_string();
    }
    vals.iter().map(show_val).collect::<Vec<_>>().join(", ")
}

/// A value as `type:value`, floats with their bits.
pub fn show_val(v: &Val) -> String {
    match v {
        Val::I32(x) => format!("i32:{x}"),
        Val::I64(x) => format!("i64:{x}"),
        Val::F32(b) => format!("f32:{} ({b:#010x})", f32::from_bits(*b)),
        Val::F64(b) => format!("f64:{} ({b:#018x})", f64::from_bits(*b)),
        Val::FuncRef(None) => "funcref:null".to_string(),
        Val::FuncRef(Some(_)) => "funcref".to_string(),
        Val::ExternRef(None) => "externref:null".to_string(),
        Val::ExternRef(Some(n)) => format!("externref:{n}"),
    }
}

fn show_ret(r: &WastRetCore<'_>) -> String {
    let nan = |p: &str, kind: &str| format!("{p}:nan:{kind}");
    match r {
        WastRetCore::I32(x) => format!("i32:{x}"),
        WastRetCore::I64(x) => format!("i64:{x}"),
        WastRetCore::F32(NanPattern::CanonicalNan) => nan("f32", "canonical"),
        WastRetCore::F32(NanPattern::ArithmeticNan) => nan("f32", "arithmetic"),
        WastRetCore::F32(NanPattern::Value(f)) => show_val(&Val::F32(f.bits)),
        WastRetCore::F64(NanPattern::CanonicalNan) => nan("f64", "canonical"),
        WastRetCore::F64(NanPattern::ArithmeticNan) => nan("f64", "arithmetic"),
        WastRetCore::F64(NanPattern::Value(f)) => show_val(&Val::F64(f.bits)),
        WastRetCore::RefNull(_) => "ref.null".to_string(),
        WastRetCore::RefExtern(None) => "ref.extern".to_string(),
        WastRetCore::RefExtern(Some(n)) => format!("ref.extern {n}"),
        WastRetCore::RefFunc(_) => "ref.func".to_string(),
        WastRetCore::Either(cases) => {
            let mut s = String::from("either(");
            for (i, c) in cases.iter().enumerate() {
                let _ = write!(s, "{}{}", if i > 0 { " | " } else { "" }, show_ret(c));
            }
            s + ")"
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_patterns() {
        let canonical = WastRetCore::F32(NanPattern::CanonicalNan);
        let arithmetic = WastRetCore::F32(NanPattern::ArithmeticNan);
        assert!(matches_ret(&Val::F32(0x7fc0_0000), &canonical));
        assert!(matches_ret(&Val::F32(0xffc0_0000), &canonical));
        assert!(!matches_ret(&Val::F32(0x7fc0_0001), &canonical));
        assert!(matches_ret(&Val::F32(0x7fc0_0001), &arithmetic));
        assert!(!matches_ret(&Val::F32(0x7f80_0001), &arithmetic));
        assert!(!matches_ret(&Val::F64(0x7ff8_0000_0000_0000), &canonical));
        let canonical64 = WastRetCore::F64(NanPattern::CanonicalNan);
        let arithmetic64 = WastRetCore::F64(NanPattern::ArithmeticNan);
        assert!(matches_ret(&Val::F64(0xfff8_0000_0000_0000), &canonical64));
        assert!(matches_ret(&Val::F64(0x7ff8_0000_0000_0001), &arithmetic64));
        assert!(!matches_ret(&Val::F64(0x7ff0_0000_0000_0001), &arithmetic64));
    }

    #[test]
    fn references() {
        let null = WastRetCore::RefNull(None);
        assert!(matches_ret(&Val::FuncRef(None), &null));
        assert!(matches_ret(&Val::ExternRef(None), &null));
        assert!(!matches_ret(&Val::ExternRef(Some(1)), &null));
        assert!(matches_ret(&Val::ExternRef(Some(1)), &WastRetCore::RefExtern(Some(1))));
        assert!(!matches_ret(&Val::ExternRef(Some(2)), &WastRetCore::RefExtern(Some(1))));
        assert!(!matches_ret(&Val::I32(0), &WastRetCore::RefExtern(None)));
    }

    #[test]
    fn traps_match_by_prefix() {
        let e = anyhow::Error::new(Trap::new(TrapCode::IndirectCallToNull)).context("while calling");
        assert_eq!(check_trap(&e, "uninitialized element 2"), Ok(()));
        assert!(check_trap(&e, "undefined element").is_err());
        let e = anyhow::Error::new(Trap::new(TrapCode::StackOverflow));
        assert_eq!(check_trap(&e, "call stack exhausted"), Ok(()));
        let e = anyhow::Error::new(Trap::new(TrapCode::TableOutOfBounds));
        assert_eq!(check_trap(&e, "out of bounds table access"), Ok(()));
        assert_eq!(check_trap(&e, "undefined element"), Ok(()));
        assert!(check_trap(&e, "out of bounds memory access").is_err());
    }

    #[test]
    fn parse_errors_are_one_failure() {
        let report = run_wast_text("bad.wast", "(module\n  (func (result i32) i32.const))", &Config::new());
        assert_eq!(report.failed(), 1);
        assert_eq!(report.outcomes[0].kind, "parse");
        assert_eq!(report.outcomes[0].line, 2);
        assert!(report.failure_lines()[0].starts_with("bad.wast:2:"), "{:?}", report.failure_lines());
    }

    #[test]
    fn malformed_quote_modules_pass_when_the_text_does_not_parse() {
        // The text does not parse, so this passes before the engine is involved.
        let report = run_wast_text(
            "m.wast",
            "(assert_malformed (module quote \"(func (nop)\") \"unexpected end\")",
            &Config::new(),
        );
        let o = report.outcomes.iter().find(|o| o.kind == "assert_malformed").unwrap();
        assert_eq!((o.line, o.col, &o.failure), (1, 2, &None));
    }
}
