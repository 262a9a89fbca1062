//! [`Module`]: a compiled module, ready to instantiate in any store of its engine.

use crate::{Engine, ExternType, Result};
use quickbeam_codegen::{finalize, CompiledFunction, FinalizeContext, FunctionCompiler};
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

/// Compiles every body, in parallel when there is enough code; the result is in
/// function order and independent of the thread count (invariant I4), and an error is
/// the one of the lowest function index.
fn compile_functions(env: &ModuleEnv, inputs: Vec<FunctionInput<'_>>) -> Result<Vec<(CompiledFunction, u32)>> {
    let compile_one = |compiler: &mut FunctionCompiler, input: FunctionInput<'_>| {
        let index = input.index;
        let body_offset = input.body.range().start as u32;
        compiler.compile(env, input).map(|f| (f, body_offset)).map_err(|e| {
            let name = env.func_name(index).map(|n| format!(" (`{n}`)")).unwrap_or_default();
            anyhow::anyhow!("failed to compile function {index}{name}: {e}")
        })
    };
    let code_bytes: usize = inputs.iter().map(|i| i.body.as_bytes().len()).sum();
    if code_bytes < PARALLEL_THRESHOLD || rayon::current_num_threads() <= 1 {
        let mut compiler = FunctionCompiler::new();
        return inputs.into_iter().map(|input| compile_one(&mut compiler, input)).collect();
    }
    let results: Vec<Result<(CompiledFunction, u32)>> =
        inputs.into_par_iter().map_init(FunctionCompiler::new, |c, input| compile_one(c, input)).collect();
    results.into_iter().collect()
}

/// Validates and compiles `wasm`, lays out and finalizes its code, and maps it.
fn compile(engine: &Engine, wasm: &[u8]) -> Result<(CompiledModule, CompileReport)> {
    let (env, inputs) = ModuleEnv::parse(wasm, engine.config().features)?;
    let funcs = compile_functions(&env, inputs)?;

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
        reused: 0,
        patched: 0,
        compiled: funcs.len(),
        bytes: wasm.len(),
        seconds: 0.0,
    };
    Ok((CompiledModule { env, code, func_offsets, sig_ids, data }, report))
}
