//! Quickbeam's backend: Microwasm → x86-64 in one pass, into [`Stencil`]s.
//!
//! - [`stencil`]: the stencil format and [`finalize`].
//!
//! Invariant: no module index, address or constant value is baked into stencil bytes;
//! each goes through a relocation or a constant site.
#![forbid(unsafe_code)]

pub mod stencil;

pub use stencil::*;

use quickbeam_environ::{FunctionInput, FunctionParameters, ModuleEnv, SlotEnv};
use quickbeam_microwasm::{CompileError, Translator};

/// One function, compiled: its stencil and what finalize applies to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledFunction {
    pub stencil: Stencil,
    /// Which module index each slot stands for in the module compiled from.
    pub params: FunctionParameters,
    /// The body's constants (bits), by `ConstIdx`.
    pub consts: Vec<u64>,
    /// What the code depends on per slot.
    pub slots: SlotEnv,
}

/// Compiles function bodies; keeps its allocations from one function to the next.
#[derive(Default)]
pub struct FunctionCompiler {
    translator: Translator,
}

impl FunctionCompiler {
    pub fn new() -> FunctionCompiler {
        FunctionCompiler::default()
    }

    /// Validates, translates and compiles one body in a single pass.
    ///
    /// # Errors
    /// The translator's and the backend's [`CompileError`]s.
    pub fn compile(&mut self, env: &ModuleEnv, input: FunctionInput<'_>) -> Result<CompiledFunction, CompileError> {
        let _ = (&mut self.translator, env, input);
        Err(CompileError::Unsupported("backend not written yet"))
    }
}
