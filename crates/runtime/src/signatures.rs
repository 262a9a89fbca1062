//! The engine-wide signature registry: interns [`FuncType`]s as `u32` ids that compiled
//! code compares in `call_indirect` and that every `VMFuncRef` carries.
//!
//! Invariant: ids start at 1 and are never reused; 0 is never a valid id, so a zeroed
//! `VMFuncRef` never passes a signature check.

use quickbeam_environ::FuncType;
use std::collections::HashMap;
use std::sync::RwLock;

/// Interns function types as signature ids (see the module docs).
#[derive(Debug, Default)]
pub struct SignatureRegistry {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    ids: HashMap<FuncType, u32>,
    types: Vec<FuncType>,
}

impl SignatureRegistry {
    pub fn new() -> SignatureRegistry {
        SignatureRegistry::default()
    }

    /// The id of `ty`, registering it if it is new.
    pub fn register(&self, ty: &FuncType) -> u32 {
        if let Some(id) = self.inner.read().unwrap_or_else(|e| e.into_inner()).ids.get(ty) {
            return *id;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = inner.ids.get(ty) {
            return *id;
        }
        inner.types.push(ty.clone());
        let id = inner.types.len() as u32;
        inner.ids.insert(ty.clone(), id);
        id
    }

    /// The type of signature `id`, if it was registered.
    pub fn lookup(&self, id: u32) -> Option<FuncType> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.types.get((id as usize).checked_sub(1)?).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickbeam_environ::ValType;

    #[test]
    fn ids_are_interned_from_one() {
        let r = SignatureRegistry::new();
        let a = FuncType::new([ValType::I32], []);
        let b = FuncType::new([], [ValType::I64]);
        assert_eq!(r.register(&a), 1);
        assert_eq!(r.register(&b), 2);
        assert_eq!(r.register(&a.clone()), 1);
        assert_eq!(r.lookup(2), Some(b));
        assert_eq!(r.lookup(0), None);
    }
}
