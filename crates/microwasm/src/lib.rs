//! Microwasm, Quickbeam's mid-level IR, and the streaming Wasm → Microwasm translator.
//!
//! - [`ops`]: the operator table (one macro) and everything generated from it: [`Op`],
//!   the [`Visitor`] trait the backend implements, and the printer.
//! - [`translate`]: validates each Wasm operator with wasmparser and turns it into
//!   Microwasm on the fly, with zero lookahead, assigning slots and constant indices.
//! - [`CompileError`]: the compile path's typed errors.
//!
//! Invariant: Microwasm names module entities only by slot ([`quickbeam_environ::slots`]);
//! nothing downstream of the translator sees a module index.
#![forbid(unsafe_code)]

pub mod ops;
pub mod print;
pub mod translate;

pub use ops::*;
pub use print::print_ops;
pub use translate::*;

/// Collects the operators it visits.
#[derive(Default, Debug)]
pub struct Recorder {
    pub ops: Vec<Op>,
}

/// Why a function could not be compiled. Never allocates except for validation messages,
/// which come from wasmparser.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// The body is malformed or invalid (message and byte offset from the validator).
    #[error("{0}")]
    Invalid(#[from] quickbeam_environ::ModuleError),
    /// A feature Quickbeam does not compile yet.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// A broken compiler invariant: a bug in Quickbeam.
    #[error("internal compiler error: {0}")]
    Internal(&'static str),
}

impl From<wasmparser::BinaryReaderError> for CompileError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        CompileError::Invalid(e.into())
    }
}
