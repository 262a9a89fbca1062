//! The engine's stencil cache (DESIGN.md §2.2–2.3): where [`Module::new`](crate::Module)
//! gets each function's stencil, parameters and constants, compiling only on a miss.
//!
//! A lookup goes from cheap to dear:
//! 1. the **exact key** (a hash of the raw body, its type, the module context and the
//!    engine) in the in-process map: nothing is decoded;
//! 2. the exact key in the persistent store ([`CacheStore`]): an [`ExactRecord`] names
//!    the shape key, the parameters and the constants;
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

use crate::{Engine, Result};
use quickbeam_cache::{CacheStore, ExactRecord, Variant, Variants, MAX_VARIANTS};
use quickbeam_codegen::{CompiledFunction, FunctionCompiler, Stencil};
use quickbeam_environ::key::{exact_key, Fingerprinter, StencilKey};
use quickbeam_environ::{FunctionInput, FunctionParameters, ModuleEnv};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Where a function's code came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A cache hit with the constants the stencil was compiled with.
    Reused,
    /// A cache hit with other constants patched in.
    Patched,
    /// A miss: compiled.
    Compiled,
}

/// A function ready to finalize.
pub(crate) struct Ready {
    pub(crate) stencil: Arc<Stencil>,
    pub(crate) params: FunctionParameters,
    pub(crate) consts: Vec<u64>,
}

impl Ready {
    /// Bytes this entry keeps alive in the in-process maps (roughly).
    fn cost(&self) -> usize {
        128 + 8 * self.consts.len() + 4 * self.params.funcs.len()
    }
}

/// One variant in process: a stencil and the constants it was compiled with.
struct RtVariant {
    stencil: Arc<Stencil>,
    consts: Vec<u64>,
}

impl RtVariant {
    fn accepts(&self, consts: &[u64]) -> bool {
        let guards = &self.stencil.guards;
        guards.len() == consts.len() && guards.iter().zip(consts).all(|(g, &c)| g.accepts(c))
    }

    fn to_entry(&self) -> Variant {
        Variant { stencil: (*self.stencil).clone(), consts: self.consts.clone() }
    }
}

#[derive(Default)]
struct Maps {
    exact: HashMap<StencilKey, Arc<Ready>>,
    shapes: HashMap<StencilKey, Vec<Arc<RtVariant>>>,
    bytes: usize,
}

/// The in-process maps and the persistent store of one [`Engine`].
pub(crate) struct StencilCache {
    maps: Mutex<Maps>,
    limit: usize,
    store: Option<Arc<dyn CacheStore>>,
}

/// What a lookup found (or compiled).
pub(crate) struct Lookup {
    pub(crate) ready: Arc<Ready>,
    pub(crate) source: Source,
    /// With the self-check on, a fresh compile of a hit, to compare with it.
    pub(crate) check: Option<CompiledFunction>,
}

/// Per-thread state of a compile: the compiler and the fingerprinter keep their
/// allocations from one function to the next.
#[derive(Default)]
pub(crate) struct Workers {
    compiler: FunctionCompiler,
    fingerprinter: Fingerprinter,
}

impl StencilCache {
    pub(crate) fn new(limit: usize, store: Option<Arc<dyn CacheStore>>) -> StencilCache {
        StencilCache { maps: Mutex::default(), limit, store }
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

    fn put_exact(&self, key: StencilKey, ready: &Arc<Ready>) {
        let mut maps = self.maps();
        self.charge(&mut maps, ready.cost());
        maps.exact.insert(key, ready.clone());
    }

    /// The first variant of `shape` whose guards accept `consts`, from the in-process
    /// map or else from the store (whose variants then join the in-process list).
    fn find_variant(&self, shape: &StencilKey, consts: &[u64]) -> Option<Arc<RtVariant>> {
        if let Some(v) = self.maps().shapes.get(shape).and_then(|vs| vs.iter().find(|v| v.accepts(consts)).cloned()) {
            return Some(v);
        }
        let stored = Variants::decode(&self.store.as_ref()?.get(&shape.0)?)?;
        let mut maps = self.maps();
        let cost: usize = stored.variants.iter().map(|v| v.stencil.code.len() + 256).sum();
        self.charge(&mut maps, cost);
        let list = maps.shapes.entry(*shape).or_default();
        for v in stored.variants {
            if !list.iter().any(|x| *x.stencil == v.stencil) {
                if list.len() >= MAX_VARIANTS {
                    list.remove(0);
                }
                list.push(Arc::new(RtVariant { stencil: Arc::new(v.stencil), consts: v.consts }));
            }
        }
        list.iter().find(|v| v.accepts(consts)).cloned()
    }

    /// Adds a freshly compiled variant of `shape`, in process and in the store.
    fn add_variant(&self, shape: StencilKey, variant: Arc<RtVariant>) {
        let entry = {
            let mut maps = self.maps();
            self.charge(&mut maps, variant.stencil.code.len() + 256);
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
        if let (Some(store), Some(entry)) = (&self.store, entry) {
            store.put(&shape.0, &entry.encode());
        }
    }

    fn record_exact(&self, key: StencilKey, shape: StencilKey, ready: &Arc<Ready>) {
        self.put_exact(key, ready);
        if let Some(store) = &self.store {
            let record = ExactRecord { shape, params: ready.params.clone(), consts: ready.consts.clone() };
            store.put(&key.0, &record.encode());
        }
    }

    /// The function `input` of `env`, from the cache or compiled (see the module docs).
    ///
    /// # Errors
    /// The compile error of an invalid or unsupported body (never a cache error).
    pub(crate) fn lookup(
        &self,
        engine: &Engine,
        module_ctx: &[u8; 32],
        env: &ModuleEnv,
        input: FunctionInput<'_>,
        w: &mut Workers,
    ) -> Result<Lookup> {
        let fp = engine.inner.fingerprint.as_bytes();
        let self_check = engine.config().cache_self_check;
        let index = input.index;
        let key = exact_key(fp, module_ctx, env.func_type(index), input.body.as_bytes());
        let hit = |ready: Arc<Ready>, source, w: &mut Workers, input: FunctionInput<'_>| -> Result<Lookup> {
            let check = if self_check { Some(compile(w, env, input)?) } else { None };
            Ok(Lookup { source, ready, check })
        };

        // 1. The exact key, in process.
        let found = self.maps().exact.get(&key).cloned();
        if let Some(ready) = found {
            return hit(ready, Source::Reused, w, input);
        }
        // 2. The exact key in the store: the record names the shape.
        if let Some(store) = &self.store {
            if let Some(rec) = store.get(&key.0).and_then(|b| ExactRecord::decode(&b)) {
                if let Some(v) = self.find_variant(&rec.shape, &rec.consts) {
                    let ready = Arc::new(Ready { stencil: v.stencil.clone(), params: rec.params, consts: rec.consts });
                    self.put_exact(key, &ready);
                    return hit(ready, Source::Reused, w, input);
                }
            }
        }
        // 3. The shape key. A body the fingerprinter cannot decode (an operator it does
        // not know, or a malformed body) is compiled without the cache; the compiler
        // reports what is wrong.
        let Ok(f) = w.fingerprinter.fingerprint(env, fp, index, &input.body) else {
            let c = compile(w, env, input)?;
            let ready = Arc::new(Ready { stencil: Arc::new(c.stencil), params: c.params, consts: c.consts });
            return Ok(Lookup { ready, source: Source::Compiled, check: None });
        };
        if let Some(v) = self.find_variant(&f.shape, &f.consts) {
            let source = if v.consts == f.consts { Source::Reused } else { Source::Patched };
            let ready = Arc::new(Ready { stencil: v.stencil.clone(), params: f.params, consts: f.consts });
            self.record_exact(key, f.shape, &ready);
            return hit(ready, source, w, input);
        }
        // 4. A miss.
        let c = compile(w, env, input)?;
        let stencil = Arc::new(c.stencil);
        let ready = Arc::new(Ready { stencil: stencil.clone(), params: c.params, consts: c.consts });
        // The key's numbering of slots and constants is the translator's; should they
        // ever disagree, the stencil is used but not cached.
        if ready.params == f.params && ready.consts == f.consts {
            self.add_variant(f.shape, Arc::new(RtVariant { stencil, consts: ready.consts.clone() }));
            self.record_exact(key, f.shape, &ready);
        } else {
            tracing::warn!(func = index, "stencil key and compiler disagree on slots or constants; not cached");
        }
        Ok(Lookup { ready, source: Source::Compiled, check: None })
    }

    /// Compiles without looking anything up (the cache is off).
    pub(crate) fn compile_uncached(env: &ModuleEnv, input: FunctionInput<'_>, w: &mut Workers) -> Result<Lookup> {
        let c = compile(w, env, input)?;
        let ready = Arc::new(Ready { stencil: Arc::new(c.stencil), params: c.params, consts: c.consts });
        Ok(Lookup { ready, source: Source::Compiled, check: None })
    }
}

fn compile(w: &mut Workers, env: &ModuleEnv, input: FunctionInput<'_>) -> Result<CompiledFunction> {
    let index = input.index;
    w.compiler.compile(env, input).map_err(|e| {
        let name = env.func_name(index).map(|n| format!(" (`{n}`)")).unwrap_or_default();
        anyhow::anyhow!("failed to compile function {index}{name}: {e}")
    })
}
