//! [`Linker`]: defines imports by name and instantiates modules with them.

use crate::store::{AsContext, AsContextMut, Caller};
use crate::{Engine, Extern, FuncType, Instance, IntoFunc, Module, Result, Val};
use std::collections::HashMap;

/// A set of named definitions (host functions, or externals of a store) that resolves
/// a module's imports.
pub struct Linker<T> {
    engine: Engine,
    defs: HashMap<(String, String), Definition<T>>,
    allow_shadowing: bool,
}

enum Definition<T> {
    /// A store's external.
    Extern(Extern),
    /// A host function, materialized in each store that instantiates with it.
    HostFunc(FuncType, crate::func::HostFn<T>),
}

impl<T> Clone for Definition<T> {
    fn clone(&self) -> Self {
        match self {
            Definition::Extern(e) => Definition::Extern(*e),
            Definition::HostFunc(ty, f) => Definition::HostFunc(ty.clone(), f.clone()),
        }
    }
}

impl<T: 'static> Linker<T> {
    pub fn new(engine: &Engine) -> Self {
        Linker { engine: engine.clone(), defs: HashMap::new(), allow_shadowing: false }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether a later definition may replace an earlier one of the same name.
    pub fn allow_shadowing(&mut self, allow: bool) -> &mut Self {
        self.allow_shadowing = allow;
        self
    }

    fn insert(&mut self, module: &str, name: &str, def: Definition<T>) -> Result<&mut Self> {
        let key = (module.to_string(), name.to_string());
        if !self.allow_shadowing && self.defs.contains_key(&key) {
            anyhow::bail!("import of `{module}::{name}` defined twice");
        }
        self.defs.insert(key, def);
        Ok(self)
    }

    /// Defines a host function from a Rust closure.
    ///
    /// # Errors
    /// If the name is already defined (and shadowing is off).
    pub fn func_wrap<Params, Results>(
        &mut self,
        module: &str,
        name: &str,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Result<&mut Self> {
        let (ty, host) = f.into_host();
        self.insert(module, name, Definition::HostFunc(ty, host))
    }

    /// Defines a host function over [`Val`]s.
    ///
    /// # Errors
    /// If the name is already defined (and shadowing is off).
    pub fn func_new(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
    ) -> Result<&mut Self> {
        let host = crate::func::dynamic_host_fn(ty.clone(), f);
        self.insert(module, name, Definition::HostFunc(ty, host))
    }

    /// Defines an external of a store.
    ///
    /// # Errors
    /// If the name is already defined (and shadowing is off).
    pub fn define(
        &mut self,
        store: impl AsContext<Data = T>,
        module: &str,
        name: &str,
        item: impl Into<Extern>,
    ) -> Result<&mut Self> {
        let _ = store.as_context();
        self.insert(module, name, Definition::Extern(item.into()))
    }

    /// Defines every export of `instance` under `module_name`.
    ///
    /// # Errors
    /// If a name is already defined (and shadowing is off).
    pub fn instance(
        &mut self,
        mut store: impl AsContextMut<Data = T>,
        module_name: &str,
        instance: Instance,
    ) -> Result<&mut Self> {
        for (name, ext) in instance.exports(&mut store) {
            self.insert(module_name, &name, Definition::Extern(ext))?;
        }
        Ok(self)
    }

    /// Instantiates `module`, resolving its imports by name.
    ///
    /// # Errors
    /// "unknown import: `m::n` has not been defined", incompatible import types, and
    /// every error of [`Instance::new`].
    pub fn instantiate(&self, mut store: impl AsContextMut<Data = T>, module: &Module) -> Result<Instance> {
        let mut imports = Vec::with_capacity(module.imports().len());
        for import in module.imports() {
            let ext = self.resolve(&mut store, import.module(), import.name()).ok_or_else(|| {
                anyhow::anyhow!("unknown import: `{}::{}` has not been defined", import.module(), import.name())
            })?;
            imports.push(ext);
        }
        Instance::new(store, module, &imports)
    }

    /// The definition of `module::name`, as an external of `store`.
    pub fn get(&self, mut store: impl AsContextMut<Data = T>, module: &str, name: &str) -> Option<Extern> {
        self.resolve(&mut store, module, name)
    }

    fn resolve(&self, store: &mut impl AsContextMut<Data = T>, module: &str, name: &str) -> Option<Extern> {
        match self.defs.get(&(module.to_string(), name.to_string()))? {
            Definition::Extern(e) => Some(*e),
            Definition::HostFunc(ty, f) => {
                let func = crate::store::new_host_func(store.as_context_mut().0, ty.clone(), f.clone());
                Some(Extern::Func(func))
            }
        }
    }
}
