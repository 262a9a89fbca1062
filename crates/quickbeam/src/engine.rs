//! [`Config`] and [`Engine`]: settings shared by every module and store, the
//! engine-wide signature registry, the engine's stencil cache, and its epoch counter.
//!
//! Invariant: every setting that changes generated code ([`CodegenSettings`]: epoch
//! interruption, fuel) is part of the engine fingerprint, so a cache never serves code
//! compiled for other settings.

use quickbeam_cache::{CacheStore, DiskStore};
use quickbeam_codegen::CodegenSettings;
use quickbeam_runtime::SignatureRegistry;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The environment variable that turns on [`Config::cache_self_check`] when set to
/// anything but empty or `0`.
pub const CACHE_SELF_CHECK_ENV: &str = "QUICKBEAM_CACHE_SELF_CHECK";

/// Engine settings.
#[derive(Clone)]
pub struct Config {
    pub(crate) max_wasm_stack: usize,
    pub(crate) features: wasmparser::WasmFeatures,
    /// The persistent store behind the in-process cache, if any.
    pub(crate) cache_store: Option<Arc<dyn CacheStore>>,
    /// Bytes the in-process stencil cache may hold.
    pub(crate) cache_memory_bytes: usize,
    pub(crate) cache_self_check: bool,
    pub(crate) cache: bool,
    /// Settings that change generated code (part of the engine fingerprint).
    pub(crate) codegen: CodegenSettings,
}

impl Default for Config {
    fn default() -> Self {
        let self_check = std::env::var_os(CACHE_SELF_CHECK_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        Config {
            max_wasm_stack: 1 << 20,
            features: quickbeam_environ::supported_features(),
            cache_store: None,
            cache_memory_bytes: 256 << 20,
            cache_self_check: self_check,
            cache: true,
            codegen: CodegenSettings::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("max_wasm_stack", &self.max_wasm_stack)
            .field("features", &self.features)
            .field("cache", &self.cache)
            .field("cache_store", &self.cache_store.as_ref().map(|_| "..."))
            .field("cache_memory_bytes", &self.cache_memory_bytes)
            .field("cache_self_check", &self.cache_self_check)
            .field("epoch_interruption", &self.codegen.epoch_interruption)
            .field("consume_fuel", &self.codegen.consume_fuel)
            .finish()
    }
}

impl Config {
    pub fn new() -> Self {
        Config::default()
    }

    /// The most stack Wasm code may use, in bytes, counted from the outermost entry
    /// into Wasm (default 1 MiB). The thread running Wasm must have this much stack
    /// left, plus room for host functions, when it enters Wasm.
    pub fn max_wasm_stack(&mut self, bytes: usize) -> &mut Self {
        self.max_wasm_stack = bytes;
        self
    }

    /// Whether compiled code checks the engine's epoch ([`Engine::increment_epoch`])
    /// against the store's deadline ([`Store::set_epoch_deadline`](crate::Store::set_epoch_deadline))
    /// at every function entry and loop header, and traps with
    /// [`TrapCode::Interrupt`](crate::TrapCode) once it is reached (default: off). A
    /// guest in an endless loop can then be stopped from another thread. Each check
    /// costs two loads, a compare and a branch not taken.
    pub fn epoch_interruption(&mut self, on: bool) -> &mut Self {
        self.codegen.epoch_interruption = on;
        self
    }

    /// Whether compiled code consumes fuel ([`Store::set_fuel`](crate::Store::set_fuel)):
    /// one unit at every function entry and every loop iteration, trapping with
    /// [`TrapCode::OutOfFuel`](crate::TrapCode) when none is left (default: off). The
    /// unit is coarse (a call or an iteration, whatever its size) but deterministic.
    pub fn consume_fuel(&mut self, on: bool) -> &mut Self {
        self.codegen.consume_fuel = on;
        self
    }

    pub fn wasm_reference_types(&mut self, on: bool) -> &mut Self {
        self.features.set(wasmparser::WasmFeatures::REFERENCE_TYPES, on);
        self
    }

    pub fn wasm_bulk_memory(&mut self, on: bool) -> &mut Self {
        self.features.set(wasmparser::WasmFeatures::BULK_MEMORY, on);
        self
    }

    pub fn wasm_multi_value(&mut self, on: bool) -> &mut Self {
        self.features.set(wasmparser::WasmFeatures::MULTI_VALUE, on);
        self
    }

    /// Whether compiled functions are cached at all (default on). Off, every function
    /// is validated and compiled, nothing is read or written, and
    /// [`CompileReport::compiled`](crate::CompileReport) counts every function.
    pub fn cache(&mut self, on: bool) -> &mut Self {
        self.cache = on;
        self
    }

    /// A persistent store behind the engine's in-process cache (default: none). Any
    /// [`CacheStore`] will do: a [`DiskStore`], or an embedder's own. Its errors are
    /// misses; it never fails a compile.
    pub fn cache_store(&mut self, store: Option<Arc<dyn CacheStore>>) -> &mut Self {
        self.cache_store = store;
        self
    }

    /// Uses an on-disk store in `dir` (created if needed), shared safely with other
    /// processes using the same directory.
    ///
    /// # Errors
    /// If the directory cannot be created.
    pub fn cache_directory(&mut self, dir: impl Into<PathBuf>) -> crate::Result<&mut Self> {
        let dir = dir.into();
        let store = DiskStore::new(&dir)
            .map_err(|e| anyhow::anyhow!("failed to open cache directory `{}`: {e}", dir.display()))?;
        self.cache_store = Some(Arc::new(store));
        Ok(self)
    }

    /// Uses an on-disk store in the default directory: `$QUICKBEAM_CACHE_DIR` if set,
    /// else `~/.cache/quickbeam/v1` (the platform's user cache directory).
    ///
    /// # Errors
    /// If there is no such directory or it cannot be created.
    pub fn cache_default_directory(&mut self) -> crate::Result<&mut Self> {
        let dir = DiskStore::default_dir().ok_or_else(|| anyhow::anyhow!("no user cache directory"))?;
        self.cache_directory(dir)
    }

    /// Bytes of stencils and records the in-process cache holds (default 256 MiB);
    /// the least recently used go first.
    pub fn cache_memory_limit(&mut self, bytes: usize) -> &mut Self {
        self.cache_memory_bytes = bytes;
        self
    }

    /// Recompiles every function served from the cache and compares the finalized code
    /// with the cached one, failing the compile (with the function's index) on any
    /// difference. A debugging aid that costs a full compile (default: off, or on when
    /// the environment variable `QUICKBEAM_CACHE_SELF_CHECK` is set to anything but
    /// empty or `0`).
    pub fn cache_self_check(&mut self, on: bool) -> &mut Self {
        self.cache_self_check = on;
        self
    }
}

/// A compilation environment: settings and the signature registry. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

pub(crate) struct EngineInner {
    pub(crate) config: Config,
    pub(crate) signatures: SignatureRegistry,
    /// Hash of the compiler version and every setting that changes code (part of keys).
    pub(crate) fingerprint: quickbeam_environ::key::EngineFingerprint,
    /// The stencil cache (in process, and the configured store), unless turned off.
    pub(crate) stencils: Option<crate::stencil_cache::StencilCache>,
    /// The epoch: every store's VMContexts point here (stores keep the `Arc`).
    pub(crate) epoch: Arc<AtomicU64>,
}

impl Engine {
    pub fn new(config: &Config) -> crate::Result<Engine> {
        let settings = format!("features={:?};{}", config.features, config.codegen.fingerprint_text());
        Ok(Engine {
            inner: Arc::new(EngineInner {
                config: config.clone(),
                signatures: SignatureRegistry::new(),
                epoch: Arc::new(AtomicU64::new(0)),
                fingerprint: quickbeam_environ::key::EngineFingerprint::new(settings.as_bytes()),
                stencils: config.cache.then(|| {
                    crate::stencil_cache::StencilCache::new(config.cache_memory_bytes, config.cache_store.clone())
                }),
            }),
        })
    }

    /// A hash of the compiler's version and of every setting of this engine that
    /// changes generated code: part of every stencil key, so code compiled by another
    /// version or with other settings is never served from a cache.
    pub fn cache_fingerprint(&self) -> [u8; 32] {
        self.inner.fingerprint.0
    }

    /// Waits until everything this engine has compiled so far is in its persistent
    /// cache store ([`Config::cache_store`]). Entries are written on a background thread
    /// so that file-system latency stays out of [`Module::new`](crate::Module::new);
    /// dropping the engine (with its last module) waits for them as well. Without a
    /// store, returns at once.
    pub fn flush_cache(&self) {
        if let Some(c) = &self.inner.stencils {
            c.flush();
        }
    }

    /// Advances the epoch by one: code of every store of this engine compiled with
    /// [`Config::epoch_interruption`] traps at its next check if the epoch reached the
    /// store's deadline. Cheap, and safe to call from any thread (a timer thread, a
    /// signal-free watchdog) while guests run.
    pub fn increment_epoch(&self) {
        self.inner.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// The epoch now.
    pub(crate) fn current_epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::Relaxed)
    }

    pub(crate) fn same(&self, other: &Engine) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn signatures(&self) -> &SignatureRegistry {
        &self.inner.signatures
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(&Config::default()).expect("the default configuration is valid")
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}
