//! Quickbeam's backend: Microwasm → x86-64 in one pass, into [`Stencil`]s.
//!
//! - [`stencil`]: the stencil format and [`finalize`].
//! - [`masm`]: the MacroAssembler, the only layer that emits instruction bytes.
//! - [`codegen`]: the code generator's state (value stack, registers, labels, frames);
//!   `visit` (one method per Microwasm operator), `int`, `float` and `memory` hold the
//!   operator helpers.
//!
//! Invariant: no module index, address or constant value is baked into stencil bytes;
//! each goes through a relocation or a constant site.
#![forbid(unsafe_code)]

pub mod codegen;
pub mod disasm;
mod float;
mod int;
pub mod masm;
mod memory;
pub mod stencil;
mod visit;

pub use float::{FCmp, SignOp, TruncKind};
pub use int::{BitCount, DivKind};
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
        let ty = env.func_type(input.index).clone();
        let body_bytes = input.body.as_bytes().len();
        let mut cg = codegen::CodeGen::with_capacity(&ty, body_bytes);
        let t = self.translator.translate(env, input, &mut cg)?;
        let stencil = cg.finish(t.consts.len())?;
        Ok(CompiledFunction { stencil, params: t.params, consts: t.consts, slots: t.slots })
    }
}
