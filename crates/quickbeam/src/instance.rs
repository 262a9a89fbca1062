//! [`Instance`]: an instantiated module in a store.

use crate::store::{call_raw, AsContextMut};
use crate::{Extern, Func, Global, Memory, Module, Result, Table, Trap, TypedFunc, WasmParams, WasmResults};
use quickbeam_environ::ExportKind;
use quickbeam_runtime::{ImportRef, InstanceId, InstantiationError};

/// An instance of a module, owned by a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Instance {
    pub(crate) store: u64,
    pub(crate) index: u32,
}

impl Instance {
    /// Instantiates `module` with `imports`, given in the order of the module's imports.
    ///
    /// # Errors
    /// Link errors (count, kind or type of an import), the store's resource limits
    /// (too many instances, memories or tables, or a memory or table larger than the
    /// limiter allows: see [`crate::limits`]), failures of active segments (as
    /// [`Trap`]s), and errors or traps of the start function.
    pub fn new(mut store: impl AsContextMut, module: &Module, imports: &[Extern]) -> Result<Instance> {
        let store = store.as_context_mut().0;
        if !store.engine.same(module.engine()) {
            anyhow::bail!("cross-`Engine` instantiation is not supported: the module was compiled by another engine");
        }
        let env = &module.inner.compiled.env;
        if imports.len() != env.imports.len() {
            anyhow::bail!("expected {} imports, found {}", env.imports.len(), imports.len());
        }
        let mut refs = Vec::with_capacity(imports.len());
        for (ext, import) in imports.iter().zip(&env.imports) {
            let (id, r) = match *ext {
                Extern::Func(f) => (f.store, ImportRef::Func(quickbeam_runtime::FuncId(f.index))),
                Extern::Table(t) => (t.store, ImportRef::Table(quickbeam_runtime::TableId(t.index))),
                Extern::Memory(m) => (m.store, ImportRef::Memory(quickbeam_runtime::MemoryId(m.index))),
                Extern::Global(g) => (g.store, ImportRef::Global(quickbeam_runtime::GlobalId(g.index))),
            };
            if id != store.id() {
                anyhow::bail!("cross-`Store` instantiation: import `{}::{}` belongs to another store", import.module, import.name);
            }
            refs.push(r);
        }
        let defined_memories = &env.memories[env.num_imported_memories as usize..];
        store.check_counts(1, defined_memories.len(), env.table_defs.len())?;
        for ty in defined_memories {
            store.check_new_memory(ty)?;
        }
        for def in &env.table_defs {
            store.check_new_table(&def.ty)?;
        }
        let id = store.vm.instantiate(&module.inner.compiled, &refs).map_err(|e| match e {
            InstantiationError::Link { index, message } => {
                let i = &env.imports[index];
                anyhow::anyhow!("incompatible import type for `{}::{}`: {message}", i.module, i.name)
            }
            InstantiationError::Trap(code) => anyhow::Error::new(Trap::new(code)),
            InstantiationError::Resource(m) => anyhow::anyhow!("failed to instantiate: {m}"),
        })?;
        let instance = Instance { store: store.id(), index: id.0 };
        if let Some(start) = env.start {
            let f = store.vm.instance_func(id, start);
            let f = store.func(f);
            call_raw(store, f, &mut [])?;
        }
        Ok(instance)
    }

    fn id(&self) -> InstanceId {
        InstanceId(self.index)
    }

    pub fn get_export(&self, mut store: impl AsContextMut, name: &str) -> Option<Extern> {
        let store = store.as_context_mut().0;
        store.check(self.store);
        let e = store.vm.instance(self.id()).module().env.export(name)?.clone();
        Some(self.export_extern(store, e.kind, e.index))
    }

    fn export_extern<T>(&self, store: &mut crate::store::StoreInner<T>, kind: ExportKind, index: u32) -> Extern {
        let (sid, id) = (store.id(), self.id());
        match kind {
            ExportKind::Func => Extern::Func(Func { store: sid, index: store.vm.instance_func(id, index).0 }),
            ExportKind::Memory => Extern::Memory(Memory { store: sid, index: store.vm.instance_memory(id, index).0 }),
            ExportKind::Table => Extern::Table(Table { store: sid, index: store.vm.instance_table(id, index).0 }),
            ExportKind::Global => Extern::Global(Global { store: sid, index: store.vm.instance_global(id, index).0 }),
        }
    }

    /// Every export, in the module's order.
    pub fn exports(&self, mut store: impl AsContextMut) -> Vec<(String, Extern)> {
        let store = store.as_context_mut().0;
        store.check(self.store);
        let module = store.vm.instance(self.id()).module().clone();
        module.env.exports.iter().map(|e| (e.name.clone(), self.export_extern(store, e.kind, e.index))).collect()
    }

    pub fn get_func(&self, store: impl AsContextMut, name: &str) -> Option<Func> {
        self.get_export(store, name)?.into_func()
    }

    /// # Errors
    /// If there is no such function export or its type is not `(P) -> R`.
    pub fn get_typed_func<P: WasmParams, R: WasmResults>(
        &self,
        mut store: impl AsContextMut,
        name: &str,
    ) -> Result<TypedFunc<P, R>> {
        let f = self
            .get_func(&mut store, name)
            .ok_or_else(|| anyhow::anyhow!("failed to find function export `{name}`"))?;
        f.typed(&store)
    }

    pub fn get_memory(&self, store: impl AsContextMut, name: &str) -> Option<Memory> {
        self.get_export(store, name)?.into_memory()
    }

    pub fn get_global(&self, store: impl AsContextMut, name: &str) -> Option<Global> {
        self.get_export(store, name)?.into_global()
    }

    pub fn get_table(&self, store: impl AsContextMut, name: &str) -> Option<Table> {
        self.get_export(store, name)?.into_table()
    }
}
