//! [`Config`] and [`Engine`]: settings shared by every module and store, and the
//! engine-wide signature registry.

use quickbeam_runtime::SignatureRegistry;
use std::sync::Arc;

/// Engine settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) max_wasm_stack: usize,
    pub(crate) features: wasmparser::WasmFeatures,
}

impl Default for Config {
    fn default() -> Self {
        Config { max_wasm_stack: 1 << 20, features: quickbeam_environ::supported_features() }
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
    /// The in-process stencil cache, by exact key (issue 3; first level only).
    pub(crate) stencils: crate::module::StencilCache,
}

impl Engine {
    pub fn new(config: &Config) -> crate::Result<Engine> {
        let settings = format!("features={:?}", config.features);
        Ok(Engine {
            inner: Arc::new(EngineInner {
                config: config.clone(),
                signatures: SignatureRegistry::new(),
                fingerprint: quickbeam_environ::key::EngineFingerprint::new(settings.as_bytes()),
                stencils: Default::default(),
            }),
        })
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
