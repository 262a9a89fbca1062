//! Quickbeam's backend: Microwasm → x86-64 in one pass, into [`Stencil`]s.
//!
//! - [`stencil`]: the stencil format and [`finalize`].
//! - [`masm`]: the MacroAssembler, the only layer that emits instruction bytes.
//! - [`codegen`]: the code generator's state (value stack, registers, labels, frames);
//!   `visit` (one method per Microwasm operator), `int`, `float` and `memory` hold the
//!   operator helpers.
//!
//! Invariant: no module index, address or constant value is baked into stencil bytes;
//! each goes through a relocation or a constant site. The code depends only on the body,
//! its `SlotEnv` and the [`CodegenSettings`], all of which are part of the stencil key.
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

/// The engine settings that change generated code. Every field must be part of the
/// engine fingerprint ([`CodegenSettings::fingerprint_text`]), so that code compiled with
/// one setting is never served from a cache for another.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CodegenSettings {
    /// Check the engine's epoch against the store's deadline at every function entry and
    /// loop header, trapping with `Interrupt` when it is reached (`abi.rs`).
    pub epoch_interruption: bool,
    /// Charge one unit of fuel at every function entry and loop header, trapping with
    /// `OutOfFuel` when none is left (`abi.rs`).
    pub consume_fuel: bool,
}

impl CodegenSettings {
    /// The settings as text for the engine fingerprint (unambiguous, every field).
    pub fn fingerprint_text(&self) -> String {
        format!("epoch_interruption={};consume_fuel={}", self.epoch_interruption, self.consume_fuel)
    }
}

/// Compiles function bodies; keeps its allocations from one function to the next.
#[derive(Default)]
pub struct FunctionCompiler {
    translator: Translator,
    settings: CodegenSettings,
}

impl FunctionCompiler {
    /// A compiler with the default settings (no interruption checks, no fuel).
    pub fn new() -> FunctionCompiler {
        FunctionCompiler::default()
    }

    /// A compiler generating code for `settings`.
    pub fn with_settings(settings: CodegenSettings) -> FunctionCompiler {
        FunctionCompiler { translator: Translator::default(), settings }
    }

    pub fn settings(&self) -> CodegenSettings {
        self.settings
    }

    /// Validates, translates and compiles one body in a single pass.
    ///
    /// # Errors
    /// The translator's and the backend's [`CompileError`]s.
    pub fn compile(&mut self, env: &ModuleEnv, input: FunctionInput<'_>) -> Result<CompiledFunction, CompileError> {
        let ty = env.func_type(input.index).clone();
        let body_bytes = input.body.as_bytes().len();
        let mut cg = codegen::CodeGen::with_settings(&ty, body_bytes, self.settings);
        let t = self.translator.translate(env, input, &mut cg)?;
        let stencil = cg.finish(t.consts.len())?;
        Ok(CompiledFunction { stencil, params: t.params, consts: t.consts, slots: t.slots })
    }
}
