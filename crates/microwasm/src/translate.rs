//! Streaming Wasm → Microwasm translation (being written; see the crate docs for the
//! contract).

use crate::{CompileError, Visitor};
use quickbeam_environ::*;

/// What translating one body yields besides the operators it streamed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Translation {
    /// What the code depends on, per slot (part of the stencil key).
    pub slots: SlotEnv,
    /// Which module index each slot stands for in this module.
    pub params: FunctionParameters,
    /// The body's numeric immediates in order (bits; i32/f32 zero-extended), indexed by
    /// [`ConstIdx`]: every `*.const` operand and every memarg offset.
    pub consts: Vec<u64>,
}

/// Translates bodies; keeps its allocations from one function to the next.
#[derive(Default)]
pub struct Translator {
    _private: (),
}

impl Translator {
    pub fn new() -> Translator {
        Translator::default()
    }

    /// Validates and translates one body, streaming Microwasm into `sink`.
    ///
    /// # Errors
    /// [`CompileError::Invalid`] for an invalid body (with its offset),
    /// [`CompileError::Unsupported`] for features not compiled yet, and whatever the
    /// sink returns.
    pub fn translate<V: Visitor>(
        &mut self,
        _env: &ModuleEnv,
        _input: FunctionInput<'_>,
        _sink: &mut V,
    ) -> Result<Translation, CompileError> {
        Err(CompileError::Unsupported("translator not written yet"))
    }
}
