//! The engine's stencil cache (DESIGN.md §2.2–2.3): where [`Module::new`](crate::Module)
//! gets each function's stencil, parameters and constants, compiling only on a miss.
//!
//! A lookup goes from cheap to dear:
//! 0. the **same function of a recent module** ([`RecentModule`]: the last few modules
//!    this engine compiled, with their bytes): if one has the same module context, the
//!    body at the same function index is compared with this one, byte for byte. A
//!    reload after an edit is mostly such functions, and comparing two code sections
//!    side by side costs less than hashing each body and probing a map. (When the
//!    module's parse reused the last module's, the bodies in the common prefix and
//!    suffix of the two code sections come flagged `unchanged`: they are that module's
//!    without a comparison each, see `ModuleEnv::parse_reusing`);
//! 1. the **exact body** in the in-process map: the raw body, its type and the module
//!    context, compared byte for byte (found by a fast non-cryptographic hash, since
//!    the comparison makes collisions harmless; a warm reload hashes at memory speed
//!    instead of SHA-256's): nothing is decoded;
//! 2. the module's record in the persistent store ([`CacheStore`]), read once per
//!    module under a hash of the whole module (`environ::key::module_key`) when levels 0
//!    and 1 left functions to find: per function an [`ExactRecord`] naming the shape key,
//!    the parameters and the constants;
//! 3. the **shape key** ([`Fingerprinter`]: the body decoded, constants and indices
//!    abstracted) in the in-process map, then in the store: a list of [`Variant`]s, the
//!    first whose guards accept the body's constants serves;
//! 4. a miss compiles (validating the body), adds a variant and records the exact key.
//!
//! A hit by exact key is *reused*: this very body was loaded before. A hit by shape key
//! is *reused* when the variant was compiled with the body's own constants, and
//! *patched* when finalize writes other constants into it.
//!
//! Invariants:
//! - A hit skips validation: both keys cover everything validation depends on, and an
//!   entry is only ever written for a body that validated (I3).
//! - A hit finalizes to the bytes a fresh compile finalizes to (I1, I2); with
//!   [`Config::cache_self_check`](crate::Config::cache_self_check) every hit is compiled
//!   again and compared ([`Lookup::check`]).
//! - The store never fails a compile: a missing, damaged or foreign entry is a miss.
//! - The in-process maps hold at most the configured bytes; past that they start over.
//! - Writes to the store go through one background thread ([`StoreWriter`]), so that
//!   creating files (about 0.1–1 ms each on this machine's file system) is off the
//!   compile's critical path; [`StencilCache::flush`] and dropping the cache wait for
//!   them.

use crate::{Engine, Result};
use quickbeam_cache::{CacheStore, ExactRecord, ModuleRecord, Variant, Variants, MAX_VARIANTS};
use quickbeam_codegen::{bake_constants, CompiledFunction, FunctionCompiler, Stencil};
use quickbeam_environ::key::{Fingerprinter, StencilKey};
use quickbeam_environ::FuncType;
use std::hash::{BuildHasher, Hasher};
use quickbeam_environ::{ParseMemo, DataSegment, FunctionInput, FunctionParameters, ModuleEnv, TrapCode};
use quickbeam_runtime::ModuleBytes;
use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};

/// Where a defined function's code came from when its module was compiled
/// ([`Module::function_sources`](crate::Module::function_sources)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FunctionSource {
    /// A cache hit with the constants the stencil was compiled with.
    Reused,
    /// A cache hit with other constants patched in.
    Patched,
    /// A miss: compiled.
    Compiled,
}

/// A function ready to finalize.
pub(crate) struct Ready {
    pub(crate) variant: Arc<RtVariant>,
    pub(crate) params: FunctionParameters,
    pub(crate) consts: Vec<u64>,
    /// The body's shape key (`None` for a body compiled without a key).
    pub(crate) shape: Option<StencilKey>,
    /// The variant's [`RtVariant::code_len`] and `layout_hash`, copied here: laying
    /// out and building an image over a previous one read them for every function, and
    /// need nothing else of a variant whose code is kept.
    pub(crate) code_len: usize,
    pub(crate) layout_hash: u64,
}

impl Ready {
    pub(crate) fn new(variant: Arc<RtVariant>, params: FunctionParameters, consts: Vec<u64>, shape: Option<StencilKey>) -> Arc<Ready> {
        let (code_len, layout_hash) = (variant.code_len(), variant.layout_hash);
        Arc::new(Ready { variant, params, consts, shape, code_len, layout_hash })
    }

    /// The record of this function in its module's [`ModuleRecord`].
    pub(crate) fn record(&self) -> Option<ExactRecord> {
        Some(ExactRecord { shape: self.shape?, params: self.params.clone(), consts: self.consts.clone() })
    }

    /// Bytes this entry keeps alive in the in-process maps (roughly: the entry, its
    /// key and its vectors; the variant is charged when it is added).
    fn cost(&self) -> usize {
        let p = &self.params;
        let slots = [&p.funcs, &p.globals, &p.tables, &p.types, &p.memories, &p.datas, &p.elems];
        192 + 8 * self.consts.capacity() + slots.iter().map(|v| 4 * v.capacity()).sum::<usize>()
    }
}

/// One variant in process: a stencil, the constants it was compiled with, and its trap
/// sites and source locations in the runtime's form (shared by every module that uses
/// the stencil, so a reload copies none of them).
pub(crate) struct RtVariant {
    pub(crate) stencil: Arc<Stencil>,
    /// The constants it was compiled with.
    pub(crate) consts: Vec<u64>,
    /// The stencil's code with `consts` at its constant sites ([`bake_constants`]):
    /// finalizing with the same constants (a reuse) then writes no constant.
    pub(crate) baked: Box<[u8]>,
    pub(crate) trap_sites: Arc<[(u32, TrapCode)]>,
    pub(crate) srclocs: Arc<[(u32, u32)]>,
    /// [`crate::module::layout_hash`] of the stencil's code: where chunks of the image
    /// layout end.
    pub(crate) layout_hash: u64,
}

impl RtVariant {
    /// The length of its code in bytes (read from `baked`, which has the stencil's
    /// length: no hop to the stencil's allocation, on the paths that visit every
    /// function of a module).
    pub(crate) fn code_len(&self) -> usize {
        self.baked.len()
    }

    fn new(stencil: Arc<Stencil>, consts: Vec<u64>) -> Arc<RtVariant> {
        let trap_sites = stencil.trap_sites.iter().map(|t| (t.offset, t.code)).collect();
        let srclocs = stencil.srclocs.as_slice().into();
        // Constants too few for the sites (never from the compiler): the code as it is,
        // and finalizing writes every site.
        let baked = bake_constants(&stencil, &consts).unwrap_or_else(|_| stencil.code.clone()).into_boxed_slice();
        let layout_hash = crate::module::layout_hash(&stencil.code);
        Arc::new(RtVariant { stencil, consts, baked, trap_sites, srclocs, layout_hash })
    }

    /// Bytes this variant keeps alive: every vector of its stencil (not only the code:
    /// source locations and guards are often larger) and the runtime's copies.
    fn cost(&self) -> usize {
        fn bytes<T>(v: &Vec<T>) -> usize {
            v.capacity() * std::mem::size_of::<T>()
        }
        let s = &*self.stencil;
        256 + bytes(&s.code)
            + self.baked.len()
            + bytes(&s.relocs)
            + bytes(&s.const_sites)
            + bytes(&s.guards)
            + bytes(&s.trap_sites)
            + bytes(&s.srclocs)
            + bytes(&self.consts)
            + std::mem::size_of_val(&*self.trap_sites)
            + std::mem::size_of_val(&*self.srclocs)
    }

    fn accepts(&self, consts: &[u64]) -> bool {
        let guards = &self.stencil.guards;
        guards.len() == consts.len() && guards.iter().zip(consts).all(|(g, &c)| g.accepts(c))
    }

    fn to_entry(&self) -> Variant {
        Variant { stencil: (*self.stencil).clone(), consts: self.consts.clone() }
    }
}

/// What an in-process exact entry is looked up by: a function body, its type and its
/// module's context (the engine is the map's own).
struct ExactKey<'a> {
    ctx: &'a [u8; 32],
    ty: &'a FuncType,
    body: &'a [u8],
    hash: u64,
}

impl<'a> ExactKey<'a> {
    fn new(ctx: &'a [u8; 32], ty: &'a FuncType, body: &'a [u8]) -> ExactKey<'a> {
        let mut h = foldhash::quality::FixedState::with_seed(0x71b3_5e0c_a4d2_9f11).build_hasher();
        h.write(ctx);
        h.write(body);
        ExactKey { ctx, ty, body, hash: h.finish() }
    }

    fn matches(&self, e: &ExactEntry) -> bool {
        *e.body == *self.body && e.ctx == *self.ctx && e.ty == *self.ty
    }
}

/// An exact body and what it finalizes with.
struct ExactEntry {
    ctx: [u8; 32],
    ty: FuncType,
    body: Box<[u8]>,
    ready: Arc<Ready>,
}

#[derive(Default)]
struct Maps {
    /// By [`ExactKey::hash`]; entries are told apart by comparing what they hold.
    exact: HashMap<u64, Vec<ExactEntry>>,
    shapes: HashMap<StencilKey, Vec<Arc<RtVariant>>>,
    /// The last [`RECENT_MODULES`] modules compiled, newest last.
    recent: Vec<Arc<RecentModule>>,
    bytes: usize,
}

/// How many recently compiled modules a cache keeps for lookup level 0.
const RECENT_MODULES: usize = 2;

/// A module compiled recently: its bytes, and per defined function where its body is
/// in them and what it finalizes with. Any function of another module with the same
/// context, the same defined index and the same body bytes finalizes with the same
/// [`Ready`] (the context fixes the function's type and everything else an exact key
/// covers).
pub(crate) struct RecentModule {
    ctx: [u8; 32],
    wasm: Arc<ModuleBytes>,
    readies: Vec<Arc<Ready>>,
    /// What it lends the next module's parse ([`ModuleEnv::parse_reusing`]), with
    /// where its bodies are.
    memo: ParseMemo,
}

impl RecentModule {
    pub(crate) fn new(
        ctx: [u8; 32],
        wasm: Arc<ModuleBytes>,
        readies: Vec<Arc<Ready>>,
        memo: ParseMemo,
    ) -> RecentModule {
        RecentModule { ctx, wasm, readies, memo }
    }

    /// What it lends the next parse, and its module's bytes ([`ModuleEnv::parse_reusing`]).
    pub(crate) fn memo(&self) -> (&ParseMemo, &[u8]) {
        (&self.memo, &self.wasm)
    }

    /// The module's bytes.
    pub(crate) fn wasm(&self) -> &Arc<ModuleBytes> {
        &self.wasm
    }

    /// What defined function `defined` of this module finalizes with.
    pub(crate) fn ready(&self, defined: usize) -> Option<&Arc<Ready>> {
        self.readies.get(defined)
    }

    /// What defined function `defined` of this module finalizes with, if its body is
    /// `body`.
    pub(crate) fn same_body(&self, defined: usize, body: &[u8]) -> Option<&Arc<Ready>> {
        let r = self.memo.body(defined)?;
        let old = self.wasm.get(r.start as usize..r.end as usize)?;
        (old == body).then(|| &self.readies[defined])
    }
}

/// The in-process maps and the persistent store of one [`Engine`].
pub(crate) struct StencilCache {
    maps: Mutex<Maps>,
    limit: usize,
    store: Option<Arc<dyn CacheStore>>,
    writer: Option<StoreWriter>,
}

enum WriteMsg {
    Put(StencilKey, Vec<u8>),
    /// Answered once every earlier put is written.
    Flush(mpsc::Sender<()>),
}

/// A thread that writes entries to the store in the order they were queued.
struct StoreWriter {
    tx: Option<mpsc::Sender<WriteMsg>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StoreWriter {
    fn new(store: Arc<dyn CacheStore>) -> Option<StoreWriter> {
        let (tx, rx) = mpsc::channel::<WriteMsg>();
        let thread = std::thread::Builder::new()
            .name("quickbeam-cache-writer".into())
            .spawn(move || {
                for msg in rx {
                    match msg {
                        WriteMsg::Put(key, value) => store.put(&key.0, &value),
                        WriteMsg::Flush(done) => drop(done.send(())),
                    }
                }
            })
            .ok()?;
        Some(StoreWriter { tx: Some(tx), thread: Some(thread) })
    }

    fn put(&self, key: StencilKey, value: Vec<u8>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(WriteMsg::Put(key, value));
        }
    }

    fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if let Some(tx) = &self.tx {
            if tx.send(WriteMsg::Flush(done)).is_ok() {
                let _ = wait.recv();
            }
        }
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a lookup found (or compiled).
pub(crate) struct Lookup {
    pub(crate) ready: Arc<Ready>,
    pub(crate) source: FunctionSource,
    /// With the self-check on, a fresh compile of a hit, to compare with it.
    pub(crate) check: Option<Box<CompiledFunction>>,
}

/// Per-thread state of a compile: the compiler and the fingerprinter keep their
/// allocations from one function to the next.
pub(crate) struct Workers {
    compiler: FunctionCompiler,
    fingerprinter: Fingerprinter,
}

impl Workers {
    /// Workers compiling for the engine's code settings.
    pub(crate) fn new(engine: &Engine) -> Workers {
        Workers {
            compiler: FunctionCompiler::with_settings(engine.config().codegen),
            fingerprinter: Fingerprinter::default(),
        }
    }
}

impl StencilCache {
    pub(crate) fn new(limit: usize, store: Option<Arc<dyn CacheStore>>) -> StencilCache {
        let writer = store.clone().and_then(StoreWriter::new);
        StencilCache { maps: Mutex::default(), limit, store, writer }
    }

    pub(crate) fn has_store(&self) -> bool {
        self.store.is_some()
    }

    /// Waits until every entry queued for the store so far is written.
    pub(crate) fn flush(&self) {
        if let Some(w) = &self.writer {
            w.flush();
        }
    }

    /// Queues an entry for the store (written on the writer thread, or here if there is
    /// none).
    fn put(&self, key: StencilKey, value: Vec<u8>) {
        match (&self.writer, &self.store) {
            (Some(w), _) => w.put(key, value),
            (None, Some(store)) => store.put(&key.0, &value),
            (None, None) => {}
        }
    }

    /// The most recent module compiled with context `ctx`, if any.
    pub(crate) fn recent(&self, ctx: &[u8; 32]) -> Option<Arc<RecentModule>> {
        self.maps().recent.iter().rev().find(|m| m.ctx == *ctx).cloned()
    }

    /// The module compiled last, whatever its context.
    pub(crate) fn latest(&self) -> Option<Arc<RecentModule>> {
        self.maps().recent.last().cloned()
    }

    /// Remembers a module just compiled for lookup level 0 (charged its bytes and
    /// lists; the oldest of the recent modules is forgotten).
    pub(crate) fn remember(&self, module: RecentModule) {
        let mut maps = self.maps();
        let cost = module.wasm.len() + module.memo.bodies() * 8 + module.memo.len() * std::mem::size_of::<DataSegment>();
        if cost > self.limit / 4 {
            return;
        }
        self.charge(&mut maps, cost);
        if maps.recent.len() >= RECENT_MODULES {
            maps.recent.remove(0);
        }
        maps.recent.push(Arc::new(module));
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        // Every update of the maps is complete before anything can panic, so a poisoned
        // lock still guards consistent maps.
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes room for `cost` more bytes, starting over when the bound is reached.
    fn charge(&self, maps: &mut Maps, cost: usize) {
        if maps.bytes + cost > self.limit {
            *maps = Maps::default();
        }
        maps.bytes += cost;
    }

    fn put_exact(&self, key: &ExactKey<'_>, ready: &Arc<Ready>) {
        let mut maps = self.maps();
        self.charge(&mut maps, ready.cost() + key.body.len() + 96);
        let list = maps.exact.entry(key.hash).or_default();
        if !list.iter().any(|e| key.matches(e)) {
            let (ctx, ty, body) = (*key.ctx, key.ty.clone(), key.body.into());
            list.push(ExactEntry { ctx, ty, body, ready: ready.clone() });
        }
    }

    fn get_exact(&self, key: &ExactKey<'_>) -> Option<Arc<Ready>> {
        let maps = self.maps();
        maps.exact.get(&key.hash)?.iter().find(|e| key.matches(e)).map(|e| e.ready.clone())
    }

    /// The first variant of `shape` whose guards accept `consts`, from the in-process
    /// map or else from the store (whose variants then join the in-process list).
    fn find_variant(&self, shape: &StencilKey, consts: &[u64]) -> Option<Arc<RtVariant>> {
        if let Some(v) = self.maps().shapes.get(shape).and_then(|vs| vs.iter().find(|v| v.accepts(consts)).cloned()) {
            return Some(v);
        }
        let stored = Variants::decode(&self.store.as_ref()?.get(&shape.0)?)?;
        let stored: Vec<_> = stored.variants.into_iter().map(|v| RtVariant::new(Arc::new(v.stencil), v.consts)).collect();
        let mut maps = self.maps();
        let cost: usize = stored.iter().map(|v| v.cost()).sum();
        self.charge(&mut maps, cost);
        let list = maps.shapes.entry(*shape).or_default();
        for v in stored {
            if !list.iter().any(|x| x.stencil == v.stencil) {
                if list.len() >= MAX_VARIANTS {
                    list.remove(0);
                }
                list.push(v);
            }
        }
        list.iter().find(|v| v.accepts(consts)).cloned()
    }

    /// Adds a freshly compiled variant of `shape`, in process and in the store.
    fn add_variant(&self, shape: StencilKey, variant: Arc<RtVariant>) {
        let entry = {
            let mut maps = self.maps();
            self.charge(&mut maps, variant.cost());
            let list = maps.shapes.entry(shape).or_default();
            if list.iter().any(|x| x.stencil == variant.stencil) {
                return;
            }
            if list.len() >= MAX_VARIANTS {
                list.remove(0);
            }
            list.push(variant);
            self.store.as_ref().map(|_| Variants { variants: list.iter().map(|v| v.to_entry()).collect() })
        };
        if let Some(entry) = entry {
            self.put(shape, entry.encode());
        }
    }

    /// The record of the module whose key is `key`, from the store.
    pub(crate) fn module_record(&self, key: &StencilKey) -> Option<ModuleRecord> {
        ModuleRecord::decode(&self.store.as_ref()?.get(&key.0)?)
    }

    /// Writes a module's record (if there is a store).
    pub(crate) fn put_module_record(&self, key: StencilKey, record: &ModuleRecord) {
        if self.store.is_some() {
            self.put(key, record.encode());
        }
    }

    /// Levels 0 and 1 of a lookup (the module docs): what this body finalizes with if
    /// the same body was loaded in process before, without decoding it.
    pub(crate) fn lookup_loaded(
        &self,
        module_ctx: &[u8; 32],
        env: &ModuleEnv,
        index: u32,
        body: &[u8],
        recent: Option<&RecentModule>,
    ) -> Option<Arc<Ready>> {
        // 0. The same function of a recent module with this context.
        let defined = (index - env.num_imported_funcs) as usize;
        if let Some(ready) = recent.and_then(|m| m.same_body(defined, body)) {
            return Some(ready.clone());
        }
        // 1. The exact key, in process.
        self.get_exact(&ExactKey::new(module_ctx, env.func_type(index), body))
    }

    /// A lookup's result for a hit (with the self-check on, compiled again to compare).
    pub(crate) fn hit(
        engine: &Engine,
        env: &ModuleEnv,
        ready: Arc<Ready>,
        source: FunctionSource,
        input: FunctionInput<'_>,
        w: &mut Workers,
    ) -> Result<Lookup> {
        let check = if engine.config().cache_self_check { Some(Box::new(compile(w, env, input)?)) } else { None };
        Ok(Lookup { source, ready, check })
    }

    /// The function `input` of `env`, from the cache or compiled (see the module docs),
    /// for a body [`lookup_loaded`](Self::lookup_loaded) did not find: level 1 is looked
    /// at again (an equal body of the same module may have been compiled since, on
    /// another thread), then levels 2 to 4.
    ///
    /// # Errors
    /// The compile error of an invalid or unsupported body (never a cache error).
    pub(crate) fn lookup(
        &self,
        engine: &Engine,
        module_ctx: &[u8; 32],
        env: &ModuleEnv,
        input: FunctionInput<'_>,
        hint: Option<&ExactRecord>,
        w: &mut Workers,
    ) -> Result<Lookup> {
        let fp = engine.inner.fingerprint.as_bytes();
        let index = input.index;
        let hit = |ready, source, w: &mut Workers, input| Self::hit(engine, env, ready, source, input, w);

        // 1. The exact key, in process.
        let key = ExactKey::new(module_ctx, env.func_type(index), input.body.as_bytes());
        if let Some(ready) = self.get_exact(&key) {
            return hit(ready, FunctionSource::Reused, w, input);
        }
        // 2. The module's record names the shape.
        if let Some(rec) = hint {
            if let Some(v) = self.find_variant(&rec.shape, &rec.consts) {
                let (params, consts) = (rec.params.clone(), rec.consts.clone());
                let ready = Ready::new(v, params, consts, Some(rec.shape));
                self.put_exact(&key, &ready);
                return hit(ready, FunctionSource::Reused, w, input);
            }
        }
        // 3. The shape key. A body the fingerprinter cannot decode (an operator it does
        // not know, or a malformed body) is compiled without the cache; the compiler
        // reports what is wrong.
        let Ok(f) = w.fingerprinter.fingerprint(env, fp, index, &input.body) else {
            let c = compile(w, env, input)?;
            let variant = RtVariant::new(Arc::new(c.stencil), c.consts.clone());
            let ready = Ready::new(variant, c.params, c.consts, None);
            return Ok(Lookup { ready, source: FunctionSource::Compiled, check: None });
        };
        if let Some(v) = self.find_variant(&f.shape, &f.consts) {
            let source = if v.consts == f.consts { FunctionSource::Reused } else { FunctionSource::Patched };
            let ready = Ready::new(v, f.params, f.consts, Some(f.shape));
            self.put_exact(&key, &ready);
            return hit(ready, source, w, input);
        }
        // 4. A miss.
        let c = compile(w, env, input)?;
        let variant = RtVariant::new(Arc::new(c.stencil), c.consts.clone());
        // The key's numbering of slots and constants is the translator's; should they
        // ever disagree, the stencil is used but not cached.
        let agree = c.params == f.params && c.consts == f.consts;
        let shape = agree.then_some(f.shape);
        let ready = Ready::new(variant.clone(), c.params, c.consts, shape);
        if agree {
            self.add_variant(f.shape, variant);
            self.put_exact(&key, &ready);
        } else {
            tracing::warn!(func = index, "stencil key and compiler disagree on slots or constants; not cached");
        }
        Ok(Lookup { ready, source: FunctionSource::Compiled, check: None })
    }

    /// Compiles without looking anything up (the cache is off).
    pub(crate) fn compile_uncached(env: &ModuleEnv, input: FunctionInput<'_>, w: &mut Workers) -> Result<Lookup> {
        let c = compile(w, env, input)?;
        let variant = RtVariant::new(Arc::new(c.stencil), c.consts.clone());
        let ready = Ready::new(variant, c.params, c.consts, None);
        Ok(Lookup { ready, source: FunctionSource::Compiled, check: None })
    }
}

fn compile(w: &mut Workers, env: &ModuleEnv, input: FunctionInput<'_>) -> Result<CompiledFunction> {
    let index = input.index;
    w.compiler.compile(env, input).map_err(|e| {
        let name = env.func_name(index).map(|n| format!(" (`{n}`)")).unwrap_or_default();
        anyhow::anyhow!("failed to compile function {index}{name}: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickbeam_codegen::{Guard, TrapSite};

    /// The in-process bound counts what a variant keeps alive, not only its code: the
    /// differential tests' wasm-smith modules, full of constants and short operators,
    /// kept 5× the 256 MiB bound alive when only `code.len() + 256` was charged.
    #[test]
    fn a_variant_costs_all_its_vectors() {
        let stencil = Stencil {
            code: vec![0x90; 100],
            guards: vec![Guard::Range { lo: 0, hi: 1 }; 1_000],
            trap_sites: vec![TrapSite { offset: 0, code: TrapCode::MemoryOutOfBounds }; 100],
            srclocs: vec![(0, 0); 10_000],
            ..Stencil::default()
        };
        let v = RtVariant::new(Arc::new(stencil), vec![0; 1_000]);
        let s = &v.stencil;
        let heap = s.code.len()
            + std::mem::size_of_val(s.guards.as_slice())
            + std::mem::size_of_val(s.trap_sites.as_slice())
            + 2 * std::mem::size_of_val(s.srclocs.as_slice()) // the stencil's and the runtime's
            + 8 * 1_000;
        assert!(v.cost() >= heap, "cost {} < {heap} bytes on the heap", v.cost());
    }
}
