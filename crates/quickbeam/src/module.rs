//! [`Module`]: a compiled module, ready to instantiate in any store of its engine.

use crate::{Engine, ExternType, Result};
use quickbeam_codegen::{finalize, CompiledFunction, FinalizeContext, FunctionCompiler};
use quickbeam_environ::key::{exact_key, module_context_hash, StencilKey};
use quickbeam_environ::{FunctionInput, ModuleEnv, VMOffsets};
use rayon::prelude::*;
use quickbeam_runtime::{CodeInfo, CodeMemory, CompiledModule, FunctionInfo};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// A compiled WebAssembly module. Cheap to clone.
#[derive(Clone)]
pub struct Module {
    pub(crate) inner: Arc<ModuleInner>,
}

pub(crate) struct ModuleInner {
    pub(crate) engine: Engine,
    pub(crate) compiled: Arc<CompiledModule>,
    pub(crate) report: CompileReport,
}

/// What compiling a module cost and how much of it came from the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CompileReport {
    /// Defined functions.
    pub functions: usize,
    /// Cache hits needing no patch.
    pub reused: usize,
    /// Cache hits with constants patched.
    pub patched: usize,
    /// Functions compiled.
    pub compiled: usize,
    /// Size of the module in bytes.
    pub bytes: usize,
    /// Wall-clock time of [`Module::new`].
    pub seconds: f64,
}

impl Module {
    /// Compiles a module from its binary or text (`.wat`) form.
    ///
    /// # Errors
    /// Malformed or invalid modules (with the byte offset), unsupported features, and
    /// compile errors (with the function index and name).
    pub fn new(engine: &Engine, bytes: impl AsRef<[u8]>) -> Result<Module> {
        let start = Instant::now();
        let bytes = bytes.as_ref();
        let wasm = wat::parse_bytes(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (compiled, mut report) = compile(engine, &wasm)?;
        report.seconds = start.elapsed().as_secs_f64();
        Ok(Module { inner: Arc::new(ModuleInner { engine: engine.clone(), compiled: Arc::new(compiled), report }) })
    }

    /// Compiles the module in a `.wasm` or `.wat` file.
    ///
    /// # Errors
    /// As [`Module::new`], and I/O errors naming the file.
    pub fn from_file(engine: &Engine, path: impl AsRef<Path>) -> Result<Module> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("failed to read `{}`: {e}", path.display()))?;
        Module::new(engine, bytes).map_err(|e| e.context(format!("failed to compile `{}`", path.display())))
    }

    /// The module name of the name section.
    pub fn name(&self) -> Option<&str> {
        self.inner.compiled.env.name.as_deref()
    }

    pub fn imports(&self) -> impl ExactSizeIterator<Item = ImportType<'_>> {
        let env = &self.inner.compiled.env;
        env.imports.iter().map(move |i| ImportType { module: &i.module, name: &i.name, ty: entity_type(env, &i.ty) })
    }

    pub fn exports(&self) -> impl ExactSizeIterator<Item = ExportType<'_>> {
        let env = &self.inner.compiled.env;
        env.exports.iter().map(move |e| ExportType { name: &e.name, ty: export_type(env, e) })
    }

    /// The module's finalized machine code: every defined function, in index order, each
    /// 16-byte aligned, padding filled with `int3` (as wasmtime's `Module::text`).
    pub fn text(&self) -> &[u8] {
        self.inner.compiled.code.bytes()
    }

    /// What compiling this module cost and how much came from the cache.
    pub fn compile_report(&self) -> CompileReport {
        self.inner.report
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("name", &self.name()).finish_non_exhaustive()
    }
}

pub(crate) fn entity_type(env: &ModuleEnv, ty: &quickbeam_environ::EntityType) -> ExternType {
    use quickbeam_environ::EntityType as E;
    match ty {
        E::Func(t) => ExternType::Func(env.types[*t as usize].clone()),
        E::Table(t) => ExternType::Table(*t),
        E::Memory(m) => ExternType::Memory(*m),
        E::Global(g) => ExternType::Global(*g),
    }
}

pub(crate) fn export_type(env: &ModuleEnv, e: &quickbeam_environ::Export) -> ExternType {
    use quickbeam_environ::ExportKind as K;
    let i = e.index as usize;
    match e.kind {
        K::Func => ExternType::Func(env.func_type(e.index).clone()),
        K::Table => ExternType::Table(env.tables[i]),
        K::Memory => ExternType::Memory(env.memories[i]),
        K::Global => ExternType::Global(env.globals[i]),
    }
}

/// One import of a module.
#[derive(Clone, Debug)]
pub struct ImportType<'a> {
    module: &'a str,
    name: &'a str,
    ty: ExternType,
}

impl<'a> ImportType<'a> {
    pub fn module(&self) -> &'a str {
        self.module
    }
    pub fn name(&self) -> &'a str {
        self.name
    }
    pub fn ty(&self) -> ExternType {
        self.ty.clone()
    }
}

/// One export of a module.
#[derive(Clone, Debug)]
pub struct ExportType<'a> {
    name: &'a str,
    ty: ExternType,
}

impl<'a> ExportType<'a> {
    pub fn name(&self) -> &'a str {
        self.name
    }
    pub fn ty(&self) -> ExternType {
        self.ty.clone()
    }
}

/// Code is laid out at this alignment in a module's image.
const FUNCTION_ALIGN: usize = 16;

/// Below this many bytes of function bodies, compiling on one thread is faster than
/// waking the thread pool.
const PARALLEL_THRESHOLD: usize = 64 << 10;

/// The engine's in-process stencil cache: compiled functions by exact key (the raw body,
/// its type, the module context it can see and the engine's settings), so a hit gives
/// the same stencil, parameters and constants a compile would. Bounded in bytes of
/// code: past the bound it starts over (shape keys and variants come with issue 3).
#[derive(Default)]
pub(crate) struct StencilCache {
    map: std::sync::Mutex<(std::collections::HashMap<StencilKey, Arc<CompiledFunction>>, usize)>,
}

/// Bytes of code the in-process cache holds before it starts over.
const STENCIL_CACHE_BYTES: usize = 256 << 20;

impl StencilCache {
    fn get(&self, key: &StencilKey) -> Option<Arc<CompiledFunction>> {
        self.map.lock().ok()?.0.get(key).cloned()
    }

    fn insert(&self, key: StencilKey, f: Arc<CompiledFunction>) {
        if let Ok(mut m) = self.map.lock() {
            if m.1 + f.stencil.code.len() > STENCIL_CACHE_BYTES {
                *m = Default::default();
            }
            m.1 += f.stencil.code.len();
            m.0.insert(key, f);
        }
    }
}

/// Compiles every body not in the engine's cache, in parallel when there is enough code;
/// the result is in function order and independent of the thread count and of the cache
/// (invariants I4, I1), and an error is the one of the lowest function index. Returns
/// the functions and how many came from the cache.
fn compile_functions(
    engine: &Engine,
    env: &ModuleEnv,
    inputs: Vec<FunctionInput<'_>>,
) -> Result<(Vec<(Arc<CompiledFunction>, u32)>, usize)> {
    let cache = &engine.inner.stencils;
    let fp = engine.inner.fingerprint.as_bytes();
    let ctx = module_context_hash(env);
    let compile_one = |compiler: &mut FunctionCompiler, input: FunctionInput<'_>| {
        let index = input.index;
        let body_offset = input.body.range().start as u32;
        let key = exact_key(fp, &ctx, env.func_type(index), input.body.as_bytes());
        if let Some(f) = cache.get(&key) {
            return Ok((f, body_offset, true));
        }
        let f = compiler.compile(env, input).map_err(|e| {
            let name = env.func_name(index).map(|n| format!(" (`{n}`)")).unwrap_or_default();
            anyhow::anyhow!("failed to compile function {index}{name}: {e}")
        })?;
        let f = Arc::new(f);
        cache.insert(key, f.clone());
        Ok((f, body_offset, false))
    };
    let code_bytes: usize = inputs.iter().map(|i| i.body.as_bytes().len()).sum();
    let results: Vec<Result<(Arc<CompiledFunction>, u32, bool)>> =
        if code_bytes < PARALLEL_THRESHOLD || rayon::current_num_threads() <= 1 {
            let mut compiler = FunctionCompiler::new();
            inputs.into_iter().map(|input| compile_one(&mut compiler, input)).collect()
        } else {
            inputs.into_par_iter().map_init(FunctionCompiler::new, |c, input| compile_one(c, input)).collect()
        };
    let mut out = Vec::with_capacity(results.len());
    let mut hits = 0;
    for r in results {
        let (f, off, hit) = r?;
        hits += hit as usize;
        out.push((f, off));
    }
    Ok((out, hits))
}

/// Validates and compiles `wasm`, lays out and finalizes its code, and maps it.
fn compile(engine: &Engine, wasm: &[u8]) -> Result<(CompiledModule, CompileReport)> {
    let (env, inputs) = ModuleEnv::parse(wasm, engine.config().features)?;
    let (funcs, reused) = compile_functions(engine, &env, inputs)?;

    // Layout: every function 16-byte aligned, in index order; padding is int3.
    let mut func_offsets = Vec::with_capacity(funcs.len());
    let mut size = 0usize;
    for (f, _) in &funcs {
        size = size.next_multiple_of(FUNCTION_ALIGN);
        func_offsets.push(u32::try_from(size).map_err(|_| anyhow::anyhow!("module code exceeds 4 GiB"))?);
        size += f.stencil.code.len();
    }
    let mut image = vec![0xccu8; size];
    let offsets = VMOffsets::new(&env);
    let sig_ids: Vec<u32> = env.types.iter().map(|t| engine.signatures().register(t)).collect();
    let mut info = CodeInfo { functions: Vec::with_capacity(funcs.len()), func_names: env.func_names.clone() };
    for (d, ((f, body_offset), &off)) in funcs.iter().zip(&func_offsets).enumerate() {
        let index = env.num_imported_funcs + d as u32;
        let cx = FinalizeContext {
            offsets: &offsets,
            sig_ids: &sig_ids,
            func_code_offsets: &func_offsets,
            num_imported_funcs: env.num_imported_funcs,
            this_offset: off,
        };
        let len = f.stencil.code.len();
        let out = &mut image[off as usize..off as usize + len];
        finalize(&f.stencil, &f.params, &f.consts, &cx, out).map_err(|e| {
            anyhow::anyhow!("internal error: failed to finalize function {index}: {e}")
        })?;
        info.functions.push(FunctionInfo {
            func_index: index,
            start: off,
            len: len as u32,
            body_offset: *body_offset,
            trap_sites: f.stencil.trap_sites.iter().map(|t| (t.offset, t.code)).collect(),
            srclocs: f.stencil.srclocs.clone(),
        });
    }
    let code = CodeMemory::new(&image, info).map_err(|e| anyhow::anyhow!("failed to map code memory: {e}"))?;
    let data = env.datas.iter().map(|d| wasm[d.range.clone()].to_vec().into_boxed_slice()).collect();
    let report = CompileReport {
        functions: funcs.len(),
        reused,
        patched: 0,
        compiled: funcs.len() - reused,
        bytes: wasm.len(),
        seconds: 0.0,
    };
    Ok((CompiledModule { env, code, func_offsets, sig_ids, data }, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(m: &Module) -> Vec<u8> {
        m.inner.compiled.code.bytes().to_vec()
    }

    /// I1 (first level): a module compiled again in the same engine comes entirely from
    /// the in-process cache, and its finalized code is identical to a compile with the
    /// cache cold (a fresh engine).
    #[test]
    fn recompiling_reuses_every_function_with_identical_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/fixtures/lua.wasm");
        let wasm = std::fs::read(path).unwrap_or_else(|_| {
            wat::parse_str("(module (func (export \"f\") (param i32) (result i32) local.get 0 i32.const 5 i32.add) (func (result i64) i64.const 9))").unwrap()
        });
        let engine = Engine::default();
        let first = Module::new(&engine, &wasm).unwrap();
        let r1 = first.compile_report();
        // Identical bodies inside one module may already hit (how many depends on which
        // thread gets there first; the code does not).
        assert_eq!(r1.reused + r1.compiled, r1.functions);
        assert!(r1.compiled > r1.functions / 2);
        let second = Module::new(&engine, &wasm).unwrap();
        let r2 = second.compile_report();
        assert_eq!((r2.reused, r2.compiled, r2.functions), (r1.functions, 0, r1.functions));
        let cold = Module::new(&Engine::default(), &wasm).unwrap();
        assert_eq!(code_of(&second), code_of(&cold), "cached code differs from a cold compile");
        assert_eq!(code_of(&first), code_of(&cold));
    }

    /// A different module reuses what it shares and compiles the rest.
    #[test]
    fn a_changed_function_is_compiled_the_others_reused() {
        let a = "(module (func (export \"f\") (result i32) i32.const 1) (func (export \"g\") (result i32) i32.const 2))";
        let b = "(module (func (export \"f\") (result i32) i32.const 1) (func (export \"g\") (result i32) i32.const 3))";
        let engine = Engine::default();
        Module::new(&engine, a).unwrap();
        let r = Module::new(&engine, b).unwrap().compile_report();
        assert_eq!((r.reused, r.compiled), (1, 1));
    }
}
