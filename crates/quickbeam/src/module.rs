//! [`Module`]: a compiled module, ready to instantiate in any store of its engine.
//!
//! Compiling parses the module, gets each function from the engine's stencil cache or
//! compiles it ([`compile_functions`]), lays the functions out in index order (16-byte
//! aligned, `int3` between, with a little slack per function and per chunk of
//! functions, see [`layout`]) and finalizes them straight into the code mapping. The
//! layout depends only on the module and its functions' stencil code, so a module's
//! code is the same whatever the cache held (I1); when the mapping is a released one
//! that held an earlier build of the module, functions whose bytes would not change
//! are left in place, and only the pages written are made writable ([`ImageLayout`]).

use crate::{Engine, ExternType, Result};
use quickbeam_codegen::{call_rel32, finalize, finalize_baked, relocate, CompiledFunction, FinalizeContext, FinalizeError};
use crate::stencil_cache::{FunctionSource, Lookup, Ready, RecentModule, StencilCache, Workers};
use quickbeam_cache::ModuleRecord;
use quickbeam_environ::key::{module_context_hash, module_key};
use quickbeam_environ::{FunctionInput, ModuleEnv, TrapCode, VMOffsets};
use rayon::prelude::*;
use quickbeam_runtime::{CodeInfo, CodeMemory, CompiledModule, FunctionInfo, FunctionSites, ImageContents, ModuleBytes};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};
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
    /// Per defined function, where its code came from.
    pub(crate) sources: Box<[FunctionSource]>,
    /// How its code image was written.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) writes: ImageWrites,
}

/// What compiling a module cost and how much of it came from the engine's stencil
/// cache (DESIGN.md §2.2–2.3). `reused + patched + compiled == functions`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CompileReport {
    /// Defined functions.
    pub functions: usize,
    /// Cache hits needing no patch: the same body was loaded before (exact key), or a
    /// body of the same shape with the same constants (renumbered or moved code).
    pub reused: usize,
    /// Cache hits with constants patched: a body of the same shape was compiled with
    /// other constants, whose stencil's guards accept these.
    pub patched: usize,
    /// Misses: functions validated and compiled.
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
        let (compiled, mut report, sources, writes) = compile(engine, &wasm)?;
        report.seconds = start.elapsed().as_secs_f64();
        let inner = ModuleInner { engine: engine.clone(), compiled: Arc::new(compiled), report, sources, writes };
        Ok(Module { inner: Arc::new(inner) })
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
        self.inner.compiled.env.names.module()
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
    /// 16-byte aligned, padding (and the layout's slack) filled with `int3` (as
    /// wasmtime's `Module::text`).
    pub fn text(&self) -> &[u8] {
        self.inner.compiled.code.bytes()
    }

    /// What compiling this module cost and how much came from the cache.
    pub fn compile_report(&self) -> CompileReport {
        self.inner.report
    }

    /// Where each defined function's code came from, indexed by defined-function index
    /// (funcidx minus the number of imported functions); its counts are
    /// [`compile_report`](Self::compile_report)'s.
    pub fn function_sources(&self) -> &[FunctionSource] {
        &self.inner.sources
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

/// A chunk of the image layout ends after a function whose name's hash (else its
/// code's [`layout_hash`]) is a multiple of this: chunks have this many functions on
/// average.
const CHUNK_FUNCTIONS: u64 = 32;

/// A chunk ends after this many functions at the latest.
const MAX_CHUNK_FUNCTIONS: usize = 4 * CHUNK_FUNCTIONS as usize;

/// Lays out the functions of a module, in index order, each [`FUNCTION_ALIGN`]ed:
/// given each one's code length in bytes and its name's hash (else its code's
/// [`layout_hash`]), returns each one's offset and the image's size in bytes.
///
/// Each function's code takes a slot a little larger ([`slot_size`]), and functions are
/// packed into chunks, each chunk's size rounded up to one of a few sizes (steps of 1/32
/// to 1/16, at least 1 KiB, see [`chunk_capacity`]): 4–7% more code bytes (the real
/// programs and the corpus). So an edit that changes one function's code size within
/// its slot moves nothing, and one within its chunk's slack moves only the functions
/// after it in its chunk: later chunks stay where they were, and a reload can keep
/// their code ([`ImageLayout`]). A chunk ends after a function chosen by a hash of its
/// name (content-defined, as in rsync's or backup tools' chunking), so editing a
/// function moves no boundary, and adding or removing one changes only its own
/// chunk's. Functions without a name are chosen by their code's [`layout_hash`] instead
/// (an edit of such a function may then split or merge its chunk, and move the chunks
/// after it). The layout depends only on the module and the stencils' code, so it is
/// the same whatever the cache held (I1).
///
/// # Errors
/// The code exceeds 4 GiB.
fn layout(functions: impl ExactSizeIterator<Item = (usize, u64)>) -> Result<(Vec<u32>, usize)> {
    let mut offsets = Vec::with_capacity(functions.len());
    let (mut chunk_start, mut end, mut in_chunk) = (0usize, 0usize, 0usize);
    let last = functions.len().wrapping_sub(1);
    for (d, (len, hash)) in functions.enumerate() {
        offsets.push(u32::try_from(end).map_err(|_| anyhow::anyhow!("module code exceeds 4 GiB"))?);
        end += slot_size(len);
        in_chunk += 1;
        if d == last || hash % CHUNK_FUNCTIONS == 0 || in_chunk == MAX_CHUNK_FUNCTIONS {
            end = chunk_start + chunk_capacity(end - chunk_start);
            (chunk_start, in_chunk) = (end, 0);
        }
    }
    u32::try_from(end).map_err(|_| anyhow::anyhow!("module code exceeds 4 GiB"))?;
    Ok((offsets, end))
}

/// The size in bytes a chunk of `used` bytes of code takes: `used` rounded up to a
/// multiple of 1/32 of the next power of two, and at least of [`MIN_CHUNK_STEP`].
fn chunk_capacity(used: usize) -> usize {
    let step = (used.next_power_of_two() / 32).max(MIN_CHUNK_STEP);
    used.next_multiple_of(step)
}

/// The smallest step a chunk's size is rounded up to, in bytes. A chunk under 32 KiB
/// would otherwise get a step of a few hundred bytes, and a function's growth by a
/// statement or two would overflow it (and move every later chunk) about half the time.
/// Measured on the real programs' layouts by growing each function in turn by 128
/// bytes: with a 64-byte minimum, lua's image moves past the edited chunk in 12% of the
/// edits and bzip2's in 30%; with 1 KiB, in 6% and none; the images are 0.1–0.5% larger.
const MIN_CHUNK_STEP: usize = 1024;

/// The size in bytes a function of `len` bytes of code takes in its chunk: `len`
/// rounded up to a multiple of 1/32 of the next power of two, and of
/// [`FUNCTION_ALIGN`]. (So a function of a few KiB can grow by a few dozen bytes, a
/// statement or two, without moving the functions after it.)
fn slot_size(len: usize) -> usize {
    len.next_multiple_of((len.next_power_of_two() / 32).max(FUNCTION_ALIGN))
}

/// A hash of a stencil's code for [`layout`] to choose chunk boundaries by, for
/// functions without a name: of its length and up to 64 bytes at each end. Stencil
/// code holds no patchable constant and no index (those are written when finalizing),
/// so patching or renumbering a function does not change it.
pub(crate) fn layout_hash(code: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    let ends = (&code[..code.len().min(64)], &code[code.len().saturating_sub(64)..]);
    foldhash::fast::FixedState::with_seed(0).hash_one((code.len(), ends))
}

/// What building an image over a previous one writes of a function.
#[derive(Clone, Copy, PartialEq)]
enum Write {
    /// Its bytes are in place.
    Nothing,
    /// Its bytes are in place but for its relocations (a callee moved, or its
    /// parameters changed). `calls_only`: only its calls (the same `Ready`, so the
    /// previous image's [`CallTable`] has them).
    Relocations { calls_only: bool },
    /// Its bytes are in the previous image at offset `from`: copied from there with the
    /// functions next to it that moved as far, then relocated (`calls_only` as above).
    Moved { from: u32, calls_only: bool },
    /// Finalized from its stencil.
    All,
}

/// How a code image was written, function by function ([`Write`]): for tracing and
/// tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ImageWrites {
    /// Whether the image was built over a previous one of the same context.
    pub(crate) over_previous: bool,
    pub(crate) kept: usize,
    pub(crate) relocated: usize,
    pub(crate) moved: usize,
    pub(crate) written: usize,
}

impl ImageWrites {
    fn of(over_previous: bool, plan: &[Write]) -> ImageWrites {
        let mut w = ImageWrites { over_previous, ..ImageWrites::default() };
        for p in plan {
            *match p {
                Write::Nothing => &mut w.kept,
                Write::Relocations { .. } => &mut w.relocated,
                Write::Moved { .. } => &mut w.moved,
                Write::All => &mut w.written,
            } += 1;
        }
        w
    }
}

/// The copies that bring the functions [`Write::Moved`] to their new offsets: per run of
/// consecutive functions moved by the same distance (with the int3 gaps between them,
/// the same in both images), its bytes in the previous image and where they go. In an
/// order in which no copy overwrites bytes a later one reads: both layouts keep the
/// functions in index order, so a run moved up can only overwrite the old bytes of runs
/// after it, and one moved down only those of runs before it; runs moved up are copied
/// last first, then runs moved down first first.
fn moved_runs(plan: &[Write], offsets: &[u32], lens: impl Fn(usize) -> usize) -> Vec<(Range<usize>, usize)> {
    let mut runs: Vec<(Range<usize>, usize)> = Vec::new();
    let mut previous: Option<(usize, i64)> = None;
    for (d, w) in plan.iter().enumerate() {
        let Write::Moved { from, .. } = *w else {
            previous = None;
            continue;
        };
        let (from, to) = (from as usize, offsets[d] as usize);
        let shift = to as i64 - from as i64;
        match (previous, runs.last_mut()) {
            (Some((p, s)), Some(run)) if p + 1 == d && s == shift => run.0.end = from + lens(d),
            _ => runs.push((from..from + lens(d), to)),
        }
        previous = Some((d, shift));
    }
    let (mut up, down): (Vec<_>, Vec<_>) = runs.into_iter().partition(|(src, to)| *to > src.start);
    up.reverse();
    up.extend(down);
    up
}

/// An image built over a previous one with more functions to write than this is made
/// writable all at once (two system calls) rather than function by function (two each).
const MAX_SEPARATE_WRITES: usize = 32;

/// Below this many bytes of function bodies, compiling on one thread is faster than
/// waking the thread pool.
const PARALLEL_THRESHOLD: usize = 64 << 10;

/// Gets every function from the engine's cache or compiles it, in parallel when there
/// is enough code; the result is in function order and independent of the thread count
/// and of the cache (invariants I4, I1), and an error is the one of the lowest function
/// index.
fn compile_functions(
    engine: &Engine,
    wasm: &[u8],
    copy: &Arc<ModuleBytes>,
    env: &Arc<ModuleEnv>,
    inputs: Vec<FunctionInput<'_>>,
    (ctx, recent): ([u8; 32], Option<Arc<RecentModule>>),
) -> Result<Vec<(Lookup, Range<u32>)>> {
    let cache = engine.inner.stencils.as_ref();
    // What the bodies validate against, for the next module's parse.
    let resources = inputs.first().map(|i| i.validator.resources.clone());
    // The same bytes as the recent module: every function is found at level 0 (without
    // comparing bodies one by one).
    let same_module = recent.as_ref().filter(|r| Arc::ptr_eq(r.wasm(), copy));
    let first = env.num_imported_funcs;
    let count = inputs.len();
    let body_range = |input: &FunctionInput<'_>| {
        let r = input.body.range();
        r.start as u32..r.end as u32
    };
    // Bodies loaded before in process are found on this thread (a comparison and at
    // most a map probe each: cheaper than waking the pool); the rest are looked up and
    // compiled in parallel when there is enough of them.
    let mut w = Workers::new(engine);
    let mut funcs: Vec<Option<(Lookup, Range<u32>)>> = Vec::with_capacity(inputs.len());
    let mut rest = Vec::new();
    for input in inputs {
        let loaded = match (same_module, &recent) {
            (Some(r), _) => r.ready((input.index - first) as usize).cloned(),
            // The parse found it the same as in the recent module (see `compile`).
            (None, Some(r)) if input.unchanged => r.ready((input.index - first) as usize).cloned(),
            (None, _) => cache.and_then(|c| c.lookup_loaded(&ctx, env, input.index, input.body.as_bytes(), recent.as_deref())),
        };
        match loaded {
            Some(ready) => {
                let body = body_range(&input);
                let found = StencilCache::hit(engine, env, ready, FunctionSource::Reused, input, &mut w)?;
                funcs.push(Some((found, body)));
            }
            None => {
                funcs.push(None);
                rest.push(input);
            }
        }
    }
    // With a persistent store, and functions left to find: the module's record, if this
    // very module was compiled before (with a record per function, in order). (A reload
    // served entirely in process skips hashing the module for its key.)
    let key = cache
        .filter(|c| c.has_store() && !rest.is_empty())
        .map(|_| module_key(engine.inner.fingerprint.as_bytes(), wasm));
    let record = cache.zip(key.as_ref()).and_then(|(c, k)| c.module_record(k));
    let record = record.filter(|r| r.functions.len() == count);
    let one = |w: &mut Workers, input: FunctionInput<'_>| {
        let body = body_range(&input);
        let hint = record.as_ref().map(|r| &r.functions[(input.index - first) as usize]);
        let found = match cache {
            Some(cache) => cache.lookup(engine, &ctx, env, input, hint, w)?,
            None => StencilCache::compile_uncached(env, input, w)?,
        };
        Ok((found, body))
    };
    let code_bytes: usize = rest.iter().map(|i| i.body.as_bytes().len()).sum();
    let looked_up: Vec<(Lookup, Range<u32>)> = if code_bytes < PARALLEL_THRESHOLD || rayon::current_num_threads() <= 1 {
        rest.into_iter().map(|input| one(&mut w, input)).collect::<Result<_>>()?
    } else {
        let results: Vec<Result<(Lookup, Range<u32>)>> =
            rest.into_par_iter().map_init(|| Workers::new(engine), |w, input| one(w, input)).collect();
        results.into_iter().collect::<Result<_>>()?
    };
    let mut looked_up = looked_up.into_iter();
    // Each `None` was pushed with one input of `rest`, looked up in order.
    let funcs: Vec<(Lookup, Range<u32>)> = funcs
        .into_iter()
        .map(|f| f.or_else(|| looked_up.next()).ok_or_else(|| anyhow::anyhow!("internal error: a function was not looked up")))
        .collect::<Result<_>>()?;
    if let (Some(cache), Some(key), None) = (cache, key, &record) {
        let functions: Option<Vec<_>> = funcs.iter().map(|(f, _)| f.ready.record()).collect();
        if let Some(functions) = functions {
            cache.put_module_record(key, &ModuleRecord { functions });
        }
    }
    if let Some(cache) = cache {
        let bodies = funcs.iter().map(|(_, body)| body.clone()).collect();
        let readies = funcs.iter().map(|(f, _)| f.ready.clone()).collect();
        let memo = env.parse_memo(engine.config().features, resources, bodies);
        cache.remember(RecentModule::new(ctx, copy.clone(), readies, memo));
    }
    Ok(funcs)
}

/// Validates and compiles `wasm`, lays out and finalizes its code, and maps it.
fn compile(engine: &Engine, wasm: &[u8]) -> Result<(CompiledModule, CompileReport, Box<[FunctionSource]>, ImageWrites)> {
    let t0 = Instant::now();
    let cache = engine.inner.stencils.as_ref();
    // What the module compiled last lends this one's parse where their bytes are the
    // same (the sections before the code, the bodies in a common prefix and suffix of
    // the code, the data and name sections: `ParseMemo`).
    let latest = cache.and_then(|c| c.latest());
    let (env, mut inputs) = ModuleEnv::parse_reusing(wasm, engine.config().features, latest.as_ref().map(|m| m.memo()))?;
    let env = Arc::new(env);
    let ctx = module_context_hash(&env);
    let recent = cache.and_then(|c| c.recent(&ctx));
    // Bodies the parse found unchanged are the latest module's: they name the recent
    // module's functions only if that is the latest.
    let lent = latest.as_ref().zip(recent.as_ref()).is_some_and(|(l, r)| Arc::ptr_eq(l, r));
    if !lent {
        inputs.iter_mut().for_each(|i| i.unchanged = false);
    }
    // The module's bytes up to its code and data (custom sections after them, such as
    // debug info, are not needed), kept for data segments, backtraces (trap offsets) and
    // lookup level 0 of the next compile: those of the recent module if they are the
    // same (a reload of an unchanged module), else a copy. (Some bodies unchanged and
    // some not: the bytes differ.)
    let kept = &wasm[..env.runtime_len.min(wasm.len())];
    let differs = inputs.iter().any(|i| i.unchanged) && inputs.iter().any(|i| !i.unchanged);
    let copy = match recent.as_ref().filter(|r| !differs && ***r.wasm() == *kept) {
        Some(r) => r.wasm().clone(),
        None => Arc::new(ModuleBytes::copy_from(kept)?),
    };
    let t1 = Instant::now();
    let funcs = compile_functions(engine, wasm, &copy, &env, inputs, (ctx, recent))?;
    let t2 = Instant::now();

    let names = env.names.func_name_hashes(env.num_imported_funcs, funcs.len());
    let (func_offsets, size) = layout(funcs.iter().zip(names.iter()).map(|((f, _), name)| {
        (f.ready.code_len, name.unwrap_or(f.ready.layout_hash))
    }))?;
    let offsets = VMOffsets::new(&env);
    let sig_ids: Vec<u32> = env.types.iter().map(|t| engine.signatures().register(t)).collect();
    let mut report = CompileReport { functions: funcs.len(), bytes: wasm.len(), ..CompileReport::default() };
    // Finalize straight into the code mapping (no intermediate image to copy). When
    // the mapping held an image of this module (an earlier build), every function
    // whose finalized bytes would be the same is left as it is, and one that only
    // calls functions that moved is relocated (see `ImageLayout`).
    let readies: Vec<Arc<Ready>> = funcs.iter().map(|(f, _)| f.ready.clone()).collect();
    let layout = Arc::new(ImageLayout {
        offsets,
        num_imported_funcs: env.num_imported_funcs,
        func_offsets: func_offsets.clone(),
        readies,
        size,
        calls: OnceLock::new(),
    });
    let contents: Option<ImageContents> = engine.inner.stencils.is_some().then(|| layout.clone() as ImageContents);
    let worth = |c: &ImageContents| c.downcast_ref::<ImageLayout>().and_then(|p| p.worth_building_over(&layout));
    let mut writes = ImageWrites::default();
    let writes_ = &mut writes;
    let code = CodeMemory::build_reusing(size, contents, worth, |image, previous| -> Result<CodeInfo> {
        let previous = previous
            .and_then(|p| p.downcast_ref::<ImageLayout>())
            .filter(|p| p.same_context(&layout))
            .and_then(|p| Some((p, p.calls.get()?)));
        let cx_of = |off: u32| FinalizeContext {
            offsets: &offsets,
            func_code_offsets: &func_offsets,
            num_imported_funcs: env.num_imported_funcs,
            this_offset: off,
        };
        // Per function: whether its bytes are kept as they are, relocated (kept, but a
        // function it calls moved), copied from elsewhere, or written.
        let plan: Vec<Write> = match previous {
            None => vec![Write::All; funcs.len()],
            Some((p, old_calls)) => {
                // Whether every function is where it was: then no call moved.
                let nothing_moved = p.func_offsets == func_offsets;
                let calls_moved = |d: usize| {
                    !nothing_moved && old_calls.of(d).iter().any(|&(_, c)| p.func_offsets.get(c as usize) != func_offsets.get(c as usize))
                };
                (0..funcs.len())
                    .map(|d| {
                        let (off, f) = (func_offsets[d], &layout.readies[d]);
                        match p.had(d, f) {
                            None => Write::All,
                            Some((from, true)) if from == off && !calls_moved(d) => Write::Nothing,
                            Some((from, calls_only)) if from == off => Write::Relocations { calls_only },
                            Some((from, calls_only)) => Write::Moved { from, calls_only },
                        }
                    })
                    .collect()
            }
        };
        let previous = previous.map(|(p, _)| p);
        let old_calls = previous.and_then(|p| p.calls.get());
        *writes_ = ImageWrites::of(previous.is_some(), &plan);
        tracing::debug!(writes = ?*writes_, "code image");
        // What is written is made writable: function by function (its pages only), or,
        // with many to write, all at once.
        if funcs.len() - writes_.kept > MAX_SEPARATE_WRITES {
            image.writable(0..size)?;
        }
        // Functions that moved are copied first, before anything is written over the
        // previous image's bytes.
        let len_before = |d: usize| previous.map_or(0, |p| p.readies[d].code_len);
        for (src, to) in moved_runs(&plan, &func_offsets, len_before) {
            image.copy_within(src, to)?;
        }
        let mut info = CodeInfo {
            functions: Vec::with_capacity(funcs.len()),
            sites: layout.clone(),
            names: env.names.clone(),
            wasm: copy,
        };
        // This image's calls, for the next one built over it.
        let mut calls = CallTable { starts: Vec::with_capacity(funcs.len() + 1), sites: Vec::new() };
        let mut end = 0;
        for (d, ((found, body), &off)) in funcs.iter().zip(&func_offsets).enumerate() {
            let f = &found.ready;
            let v = &f.variant;
            // Padding between functions (and at the end of a chunk) is int3 (already,
            // where the previous image had the same gap, or it was copied with a run
            // of moved functions).
            let copied = d > 0
                && matches!((plan[d - 1], plan[d]), (Write::Moved { from: a, .. }, Write::Moved { from: b, .. })
                    if b.wrapping_sub(a) == off.wrapping_sub(func_offsets[d - 1]));
            if !copied && !previous.is_some_and(|p| p.same_gap_before(d, end, off)) {
                image.writable(end..off as usize)?.fill(0xcc);
            }
            end = off as usize + f.code_len;
            let index = env.num_imported_funcs + d as u32;
            let cx = cx_of(off);
            let code = off as usize..end;
            // Lookups only hand out variants whose guards accept these constants.
            debug_assert!(v.stencil.guards.iter().zip(&f.consts).all(|(g, &c)| g.accepts(c)));
            let internal = |e: FinalizeError| anyhow::anyhow!("internal error: failed to finalize function {index}: {e}");
            // The same `Ready` as in the previous image: the same calls.
            let same_calls = old_calls.filter(|_| {
                matches!(plan[d], Write::Nothing | Write::Relocations { calls_only: true } | Write::Moved { calls_only: true, .. })
            });
            calls.starts.push(calls.sites.len() as u32);
            match same_calls {
                Some(old) => calls.sites.extend_from_slice(old.of(d)),
                None => {
                    for call in quickbeam_codegen::calls(&v.stencil, &f.params, env.num_imported_funcs) {
                        calls.sites.push(call.map_err(internal)?);
                    }
                }
            }
            let finalized = match plan[d] {
                Write::Nothing => Ok(()),
                Write::Relocations { calls_only: true } | Write::Moved { calls_only: true, .. } => {
                    relocate_calls(calls.of(d), off, &func_offsets, image.writable(code.clone())?)
                }
                Write::Relocations { calls_only: false } | Write::Moved { calls_only: false, .. } => {
                    relocate(&v.stencil, &f.params, &cx, image.writable(code.clone())?)
                }
                Write::All => finalize_baked(&v.stencil, &v.baked, &v.consts, &f.params, &f.consts, &cx, image.writable(code.clone())?),
            };
            finalized.map_err(internal)?;
            let len = code.len();
            if let Some(fresh) = &found.check {
                self_check(index, found.source, fresh, &image.bytes()[code], &cx)?;
            }
            match found.source {
                FunctionSource::Reused => report.reused += 1,
                FunctionSource::Patched => report.patched += 1,
                FunctionSource::Compiled => report.compiled += 1,
            }
            info.functions.push(FunctionInfo {
                func_index: index,
                start: off,
                len: len as u32,
                body_offset: body.start,
                body_len: body.end - body.start,
            });
        }
        // The last chunk's slack.
        if !previous.is_some_and(|p| p.same_gap_before(funcs.len(), end, size as u32)) {
            image.writable(end..size)?.fill(0xcc);
        }
        calls.starts.push(calls.sites.len() as u32);
        // Set once: `layout` is this build's own.
        let _ = layout.calls.set(calls);
        Ok(info)
    })?;
    let t3 = Instant::now();
    tracing::debug!(parse = ?(t1 - t0), functions = ?(t2 - t1), finalize = ?(t3 - t2), "compiled a module");
    let sources = funcs.iter().map(|(found, _)| found.source).collect();
    Ok((CompiledModule { env, code, func_offsets, sig_ids }, report, sources, writes))
}

/// What a code image holds, for the next image built in its mapping
/// ([`CodeMemory::build_reusing`]): a function's finalized bytes depend only on its
/// [`Ready`] (stencil, baked constants, parameters, constants) and the
/// [`FinalizeContext`] (the VMContext layout, the import count, its own offset, and the
/// offsets of the functions it calls, which only its relocations depend on). So in a
/// mapping that held an image with the same context, a function at the same index and
/// offset with the very same `Ready` (the same `Arc`: held here, so never a freed one's
/// address reused) already has its bytes but for calls to functions that moved; one
/// with the same variant and constants has them but for its relocations, there or at
/// its old offset ([`Write`]). It also holds the image's trap sites and source
/// locations ([`FunctionSites`], the variants').
struct ImageLayout {
    offsets: VMOffsets,
    num_imported_funcs: u32,
    func_offsets: Vec<u32>,
    readies: Vec<Arc<Ready>>,
    /// The image's size in bytes.
    size: usize,
    /// Its calls, set once the image is built (an image whose build failed is never
    /// built over).
    calls: OnceLock<CallTable>,
}

/// The calls between a module's defined functions in its code image
/// ([`quickbeam_codegen::calls`]): function `d`'s are `sites[starts[d]..starts[d + 1]]`,
/// each the offset of its rel32 field in the function's code and the callee's defined
/// index. Kept with the image, so that the next image built over it finds which
/// functions' calls a move changed, and relocates them, in a pass over this table
/// rather than a visit to every function's stencil and parameters (memory a reload
/// otherwise does not touch).
struct CallTable {
    /// `functions + 1` indices into `sites`.
    starts: Vec<u32>,
    sites: Vec<(u32, u32)>,
}

impl CallTable {
    /// Function `d`'s calls.
    fn of(&self, d: usize) -> &[(u32, u32)] {
        &self.sites[self.starts[d] as usize..self.starts.get(d + 1).map_or(self.sites.len(), |&e| e as usize)]
    }
}

/// Writes the rel32 field of each of `calls` (of a function at `this_offset`, whose
/// code is `out`), to where the callee is in `func_offsets`.
fn relocate_calls(calls: &[(u32, u32)], this_offset: u32, func_offsets: &[u32], out: &mut [u8]) -> Result<(), FinalizeError> {
    for &(site, callee) in calls {
        let target = *func_offsets.get(callee as usize).ok_or(FinalizeError::MissingParameter)?;
        let at = site as usize;
        out.get_mut(at..at + 4)
            .ok_or(FinalizeError::MissingParameter)?
            .copy_from_slice(&call_rel32(target, this_offset, site).to_le_bytes());
    }
    Ok(())
}

impl std::fmt::Debug for ImageLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageLayout").field("functions", &self.readies.len()).field("size", &self.size).finish_non_exhaustive()
    }
}

/// The image's trap sites and source locations are its stencils'.
impl FunctionSites for ImageLayout {
    fn trap_sites(&self, function: usize) -> &[(u32, TrapCode)] {
        self.readies.get(function).map_or(&[], |r| &r.variant.trap_sites)
    }

    fn srclocs(&self, function: usize) -> &[(u32, u32)] {
        self.readies.get(function).map_or(&[], |r| &r.variant.srclocs)
    }
}

impl ImageLayout {
    /// Whether `other` finalizes with the same VMContext layout and imports as this.
    fn same_context(&self, other: &ImageLayout) -> bool {
        self.offsets == other.offsets && self.num_imported_funcs == other.num_imported_funcs
    }

    /// Whether this image has `ready`'s function `d` at offset `off`.
    fn holds(&self, d: usize, off: u32, ready: &Arc<Ready>) -> bool {
        self.func_offsets.get(d) == Some(&off) && Arc::ptr_eq(&self.readies[d], ready)
    }

    /// Where this image has function `d` finalized from `ready`'s code, but for its
    /// relocations: its offset, and whether it is the very same `Ready` (else its
    /// parameters changed, but not its variant or constants). `None` if its code
    /// differs.
    fn had(&self, d: usize, ready: &Arc<Ready>) -> Option<(u32, bool)> {
        let (old, &from) = (self.readies.get(d)?, self.func_offsets.get(d)?);
        if Arc::ptr_eq(old, ready) {
            return Some((from, true));
        }
        (Arc::ptr_eq(&old.variant, &ready.variant) && old.consts == ready.consts).then_some((from, false))
    }

    /// Whether this image has the same int3 gap `end..off` before function `d`: function
    /// `d` starts at `off` (or, for `d` = the number of functions, the image ends
    /// there) and the one before it ends at `end`.
    fn same_gap_before(&self, d: usize, end: usize, off: u32) -> bool {
        let start = if d == self.func_offsets.len() { u32::try_from(self.size).ok() } else { self.func_offsets.get(d).copied() };
        if start != Some(off) {
            return false;
        }
        let prev_end = match d.checked_sub(1) {
            None => 0,
            Some(p) => self.func_offsets[p] as usize + self.readies[p].code_len,
        };
        prev_end == end
    }

    /// Whether to build image `other` over this one, and how many of its functions that
    /// keeps: with the same context, and if this one is not much larger (at most twice,
    /// so little memory sits unused). Even when most functions moved, that is faster than
    /// a fresh mapping: the pages are present, and the functions before the first change
    /// are kept (lua's `edit` fixture moves 620 of 643 functions: 0.63–0.84 ms against
    /// 0.96–1.17 ms in a fresh mapping, `quickbeam-bench edit-loop`). Of two released
    /// images (say, of two builds a watch alternates between), the one that keeps more
    /// is taken.
    fn worth_building_over(&self, other: &ImageLayout) -> Option<usize> {
        let fits = self.same_context(other) && self.size <= 2 * other.size + (64 << 10);
        fits.then(|| (0..other.readies.len()).filter(|&d| self.holds(d, other.func_offsets[d], &other.readies[d])).count())
    }
}

/// The cache self-check: the code served from the cache (`cached`, finalized) must equal
/// a fresh compile of the same body finalized in the same place.
fn self_check(index: u32, source: FunctionSource, fresh: &CompiledFunction, cached: &[u8], cx: &FinalizeContext<'_>) -> Result<()> {
    let mut code = vec![0u8; fresh.stencil.code.len()];
    let finalized = finalize(&fresh.stencil, &fresh.params, &fresh.consts, cx, &mut code);
    let differs = match finalized {
        Err(_) => Some(0),
        Ok(()) if code.len() != cached.len() => Some(code.len().min(cached.len())),
        Ok(()) => code.iter().zip(cached).position(|(a, b)| a != b),
    };
    match differs {
        None => Ok(()),
        Some(at) => Err(anyhow::anyhow!(
            "cache self-check failed: function {index} ({source:?} from the cache) differs from a fresh compile \
             at code offset {at:#x} ({} cached bytes, {} fresh)",
            cached.len(),
            code.len()
        )),
    }
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
        assert_eq!(r1.reused + r1.patched + r1.compiled, r1.functions);
        assert!(r1.compiled > r1.functions / 2);
        let second = Module::new(&engine, &wasm).unwrap();
        let r2 = second.compile_report();
        assert_eq!((r2.reused, r2.patched, r2.compiled), (r1.functions, 0, 0));
        let cold = Module::new(&Engine::default(), &wasm).unwrap();
        assert_eq!(code_of(&second), code_of(&cold), "cached code differs from a cold compile");
        assert_eq!(code_of(&first), code_of(&cold));
    }

    /// An image finalized over the previous one (its mapping released and reused) leaves
    /// the unchanged functions' bytes in place, relocates those that call functions that
    /// moved, copies those that moved (and relocates them), and rewrites the others.
    /// Edits here change a constant (same layout) or the size of `$b` (so `$z` moves, and
    /// `$a1`–`$a3`, which call `$z`, are relocated): the code always equals a cold
    /// compile's and computes the new result. Only the pages written change protection:
    /// none when the same bytes are reloaded.
    /// (`$c` makes the code about 300 KB, so that the other tests' modules, which run at
    /// the same time, do not fit the released mapping.)
    #[test]
    fn an_image_built_over_the_previous_one_equals_a_cold_compile() {
        let wat = |k: i32, m: usize| {
            let adds = "local.get 0 i32.const 3 i32.add local.set 0 ".repeat(20_000);
            let incs = "i32.const 1 i32.add ".repeat(m);
            let a = |n: u32| format!("(func $a{n} (param i32) (result i32) local.get 0 call $z)");
            format!(
                "(module (func $c (param i32) (result i32) {adds} local.get 0)
                         (func $y (param i32) (result i32) local.get 0)
                         {} {} {}
                         (func $b (param i32) (result i32) local.get 0 {incs})
                         (func $z (param i32) (result i32) local.get 0 call $y i32.const 7 i32.add)
                         (func (export \"f\") (result i32)
                           i32.const {k} call $c call $a1 call $a2 call $a3 call $b))",
                a(1),
                a(2),
                a(3)
            )
        };
        let engine = Engine::default();
        let mut over_previous = 0;
        let edits = [(5, 1), (6, 1), (6, 3), (6, 40), (1000, 40), (-1, 2)];
        for (k, m) in edits {
            let m_ = Module::new(&engine, wat(k, m)).unwrap();
            over_previous += usize::from(m_.inner.compiled.code.built_over_previous());
            let w = m_.inner.writes;
            if (k, m) == (6, 40) && w.over_previous {
                // `$b` grew past its slot: it is written; `$z` is copied to its new
                // offset and relocated (its call to `$y`); `$a1`–`$a3` (which call `$z`)
                // are relocated; `$c`, `$y` and the export (which starts a chunk) kept.
                let expected = ImageWrites { over_previous: true, kept: 3, relocated: 3, moved: 1, written: 1 };
                assert_eq!(w, expected);
            }
            let cold = Module::new(&Engine::default(), wat(k, m)).unwrap();
            let (a, b) = (code_of(&m_), code_of(&cold));
            let first_difference = a.iter().zip(&b).position(|(x, y)| x != y);
            assert!(a == b, "k = {k}, m = {m}: code differs from a cold compile at {first_difference:?} ({} and {} bytes)", a.len(), b.len());
            let mut store = crate::Store::new(&engine, ());
            let i = crate::Instance::new(&mut store, &m_, &[]).unwrap();
            let f = i.get_typed_func::<(), i32>(&mut store, "f").unwrap();
            assert_eq!(f.call(&mut store, ()).unwrap(), k + 60_000 + 21 + m as i32, "k = {k}, m = {m}");
            // Only the pages written change protection: a one-constant edit's (the
            // export's, at most two pages), and none for a warm reload of the same bytes.
            let page = quickbeam_runtime::mmap::page_size();
            let made_writable = m_.inner.compiled.code.bytes_made_writable();
            if (k, m) == (6, 1) && w.over_previous {
                assert!(made_writable <= 2 * page, "a one-constant edit made {made_writable} bytes writable");
            }
            drop((store, m_));
            let again = Module::new(&engine, wat(k, m)).unwrap();
            if again.inner.compiled.code.built_over_previous() {
                assert_eq!(again.inner.compiled.code.bytes_made_writable(), 0, "k = {k}, m = {m}: a warm reload changed pages");
            }
        }
        let reloads = edits.len() - 1;
        assert!(over_previous >= reloads - 1, "only {over_previous} of {reloads} reloads were built over the previous image");
    }

    /// Copying the runs of moved functions in `moved_runs`' order brings every moved
    /// function's bytes to its new offset, whichever way each run moved (no copy
    /// overwrites bytes a later one reads).
    #[test]
    fn moved_functions_are_copied_in_an_order_that_overwrites_nothing_still_to_copy() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..2000 {
            let n = 1 + next(12) as usize;
            let lens: Vec<usize> = (0..n).map(|_| 1 + next(40) as usize).collect();
            // Two layouts in index order with random gaps; some functions rewritten.
            let offsets = |lens: &[usize], next: &mut dyn FnMut(u64) -> u64| {
                let mut at = 0;
                lens.iter().map(|l| { at += next(30) as usize; let o = at; at += l; o as u32 }).collect::<Vec<u32>>()
            };
            let (old, new) = (offsets(&lens, &mut next), offsets(&lens, &mut next));
            let plan: Vec<Write> = (0..n)
                .map(|d| match (next(4), old[d] == new[d]) {
                    (0, _) => Write::All,
                    (_, true) => Write::Nothing,
                    (_, false) => Write::Moved { from: old[d], calls_only: true },
                })
                .collect();
            let end = |o: &[u32]| o[n - 1] as usize + lens[n - 1];
            let mut image = vec![0u8; end(&old).max(end(&new))];
            for d in 0..n {
                image[old[d] as usize..][..lens[d]].fill(d as u8 + 1);
            }
            for (src, to) in moved_runs(&plan, &new, |d| lens[d]) {
                image.copy_within(src, to);
            }
            for d in (0..n).filter(|&d| plan[d] != Write::All) {
                assert!(image[new[d] as usize..][..lens[d]].iter().all(|&b| b == d as u8 + 1), "function {d}: {old:?} -> {new:?}");
            }
        }
    }

    /// The layout keeps functions where they were across edits: a function that grows
    /// within its slot moves nothing; one that grows past it moves only the rest of its
    /// chunk (until the chunk's slack is used up); a function added moves only its own
    /// chunk's (boundaries come from names, which an edit keeps).
    #[test]
    fn the_layout_moves_only_the_rest_of_an_edited_functions_chunk() {
        // 300 functions of 100 to 3,000 bytes; a boundary after every 20th.
        let funcs: Vec<(usize, u64)> =
            (0..300u64).map(|i| (100 + (i as usize * 7919) % 2900, if i % 20 == 19 { 0 } else { 32 * i + 1 })).collect();
        let (base, size) = layout(funcs.iter().copied()).unwrap();
        assert!(base.iter().all(|o| o % FUNCTION_ALIGN as u32 == 0));
        assert!(base.windows(2).zip(&funcs).all(|(w, f)| w[1] - w[0] >= f.0 as u32), "functions overlap");
        let code: usize = funcs.iter().map(|f| f.0).sum();
        assert!(size >= code && size <= code + code / 10, "{size} bytes for {code} bytes of code");
        let edited = |d: usize, len: usize| {
            let mut f = funcs.clone();
            f[d].0 = len;
            layout(f.into_iter()).unwrap()
        };
        // Function 45 (in the chunk of 40..60) grows within its slot: nothing moves.
        let within = slot_size(funcs[45].0);
        assert_eq!(edited(45, within), (base.clone(), size));
        // Past its slot by a little: 46..60 move, nothing else.
        let (moved, moved_size) = edited(45, within + 1);
        assert_eq!(moved_size, size);
        let differ: Vec<usize> = (0..300).filter(|&d| moved[d] != base[d]).collect();
        assert_eq!(differ, (46..60).collect::<Vec<_>>());
        // A function added at 45 (a new name, not a boundary): 45.. of that chunk move,
        // and later chunks are where they were, one index on.
        let mut added = funcs.clone();
        added.insert(45, (64, 12345));
        let (grown, _) = layout(added.into_iter()).unwrap();
        assert_eq!(grown[..45], base[..45]);
        assert_eq!(grown[61..], base[60..]);
    }

    /// A data section with the bytes of the last module's is not decoded or validated
    /// again when the context it depends on is the same: its segments are still found
    /// where this module has them (the section moved: the code before it grew). When
    /// the memories or globals differ, it is validated again, and here rejected.
    #[test]
    fn a_data_section_is_reused_only_in_the_same_context() {
        let engine = Engine::default();
        let run = |wat: &str| {
            let m = Module::new(&engine, wat)?;
            let mut store = crate::Store::new(&engine, ());
            let i = crate::Instance::new(&mut store, &m, &[])?;
            let f = i.get_typed_func::<(), i32>(&mut store, "f")?;
            Ok::<_, anyhow::Error>((f.call(&mut store, ())?, m.inner.compiled.env.datas.clone()))
        };
        let module = |extra: &str| {
            format!(
                r#"(module (memory 1) (func (export "f") (result i32) i32.const 4 i32.load {extra})
                           (data (i32.const 0) "abcd") (data (i32.const 4) "\2a\00\00\00"))"#
            )
        };
        let (v, first) = run(&module("")).unwrap();
        assert_eq!(v, 42);
        let (v, second) = run(&module("i32.const 1000 i32.add")).unwrap();
        assert_eq!(v, 1042, "the segments' bytes are read where this module has them");
        assert!(Arc::ptr_eq(&first, &second), "the segments were decoded again");

        // `global.get` of an imported immutable global is a constant expression; of a
        // defined mutable one it is not: the same data section is invalid there.
        let valid = r#"(module (global (import "m" "g") i32) (memory 1) (data (global.get 0) "a"))"#;
        let invalid = r#"(module (global (mut i32) (i32.const 0)) (memory 1) (data (global.get 0) "a"))"#;
        Module::new(&engine, valid).unwrap();
        let e = Module::new(&engine, invalid).unwrap_err().to_string();
        assert!(e.contains("constant expression") || e.contains("immutable"), "{e}");
        // No memory at all.
        Module::new(&engine, r#"(module (memory 1) (data (i32.const 0) "a"))"#).unwrap();
        let e = Module::new(&engine, r#"(module (data (i32.const 0) "a"))"#).unwrap_err().to_string();
        assert!(e.contains("memory"), "{e}");
    }

    /// The module's bytes are kept only up to its code and data sections: a custom
    /// section after them (debug info) is not copied, and data segments and trap
    /// offsets still come from the kept bytes.
    #[test]
    fn custom_sections_after_code_and_data_are_not_kept() {
        let dbg = "x".repeat(100_000);
        let wat = format!(
            r#"(module (memory 1) (func (export "f") (result i32) i32.const 0 i32.load)
                       (func (export "t") unreachable)
                       (data (i32.const 0) "\07\00\00\00")
                       (@custom "debug" (after data) "{dbg}"))"#
        );
        let wasm = wat::parse_str(&wat).unwrap();
        let engine = Engine::default();
        let m = Module::new(&engine, &wasm).unwrap();
        let kept = m.inner.compiled.code.info().wasm.len();
        assert!(kept < 200 && wasm.len() > 100_000, "kept {kept} of {} bytes", wasm.len());
        let mut store = crate::Store::new(&engine, ());
        let i = crate::Instance::new(&mut store, &m, &[]).unwrap();
        assert_eq!(i.get_typed_func::<(), i32>(&mut store, "f").unwrap().call(&mut store, ()).unwrap(), 7);
        let e = i.get_typed_func::<(), ()>(&mut store, "t").unwrap().call(&mut store, ()).unwrap_err();
        let unreachable = wasm.windows(4).position(|w| w == [0x03, 0x00, 0x00, 0x0b]).unwrap() + 2;
        assert!(format!("{e:?}").contains(&format!("{unreachable:#x}")), "{e:?} lacks offset {unreachable:#x}");
    }

    /// A different module reuses what it shares, patches what differs only in
    /// constants, and compiles the rest.
    #[test]
    fn a_changed_constant_is_patched_a_changed_opcode_compiled() {
        let module = |k: i32, op: &str| {
            format!(
                "(module (func (export \"f\") (result i32) i32.const 1)
                         (func (export \"g\") (result i32) i32.const {k})
                         (func (export \"h\") (param i32) (result i32) local.get 0 i32.const 7 {op}))"
            )
        };
        let engine = Engine::default();
        // `f` and `g` share a shape: the second of them is a patch already.
        let r = Module::new(&engine, module(2, "i32.add")).unwrap().compile_report();
        assert_eq!((r.reused, r.patched, r.compiled), (0, 1, 2));
        let r = Module::new(&engine, module(3, "i32.add")).unwrap().compile_report();
        assert_eq!((r.reused, r.patched, r.compiled), (2, 1, 0));
        let r = Module::new(&engine, module(3, "i32.sub")).unwrap().compile_report();
        assert_eq!((r.reused, r.patched, r.compiled), (2, 0, 1));
        // The patched code computes with the new constant.
        let m = Module::new(&engine, module(-5, "i32.add")).unwrap();
        let mut store = crate::Store::new(&engine, ());
        let i = crate::Instance::new(&mut store, &m, &[]).unwrap();
        let g = i.get_typed_func::<(), i32>(&mut store, "g").unwrap();
        assert_eq!(g.call(&mut store, ()).unwrap(), -5);
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("quickbeam-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// A new engine on the same cache directory finds every function on disk, and the
    /// code is the code of a compile without the cache (I1, from disk).
    #[test]
    fn a_new_engine_reads_every_function_from_disk() {
        let wat = "(module (memory 1) (global $g (mut i32) (i32.const 0))
                   (func $a (export \"a\") (param i32) (result i32) local.get 0 i32.load offset=8 global.get $g i32.add call $b)
                   (func $b (param i32) (result i32) local.get 0 i32.const 3 i32.shl))";
        let dir = temp_dir("disk-reload");
        let engine = |cache: bool| {
            let mut c = crate::Config::new();
            c.cache(cache);
            if cache {
                c.cache_directory(&dir).unwrap();
            }
            Engine::new(&c).unwrap()
        };
        let first = Module::new(&engine(true), wat).unwrap();
        assert_eq!(first.compile_report().compiled, 2);
        first.engine().flush_cache();
        let second = Module::new(&engine(true), wat).unwrap();
        let r = second.compile_report();
        assert_eq!((r.reused, r.patched, r.compiled), (2, 0, 0));
        let off = Module::new(&engine(false), wat).unwrap();
        assert_eq!(off.compile_report().compiled, 2);
        assert_eq!(second.text(), off.text());
        assert_eq!(first.text(), off.text());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// With the self-check on, hits are compiled again and compared (and agree).
    #[test]
    fn the_self_check_compiles_hits_again() {
        let mut c = crate::Config::new();
        c.cache_self_check(true);
        let engine = Engine::new(&c).unwrap();
        let m = |k: u32| format!("(module (memory 1) (func (param i32) (result i32) local.get 0 i32.load offset={k}))");
        Module::new(&engine, m(4)).unwrap();
        let r = Module::new(&engine, m(4)).unwrap().compile_report();
        assert_eq!((r.reused, r.compiled), (1, 0));
        let r = Module::new(&engine, m(4000)).unwrap().compile_report();
        assert_eq!((r.patched, r.compiled), (1, 0));
    }
}
