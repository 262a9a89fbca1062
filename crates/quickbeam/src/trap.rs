//! [`Trap`]: a WebAssembly trap with its backtrace.

use crate::TrapCode;
use std::fmt;

/// A trap: why Wasm code stopped, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trap {
    pub code: TrapCode,
    /// Innermost frame first.
    pub backtrace: Vec<FrameInfo>,
}

/// One Wasm frame of a trap's backtrace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    /// The function's index in its module's function index space.
    pub func_index: u32,
    /// The function's name from the name section.
    pub func_name: Option<String>,
    /// The byte offset in the module of the instruction executing in this frame.
    pub module_offset: Option<u32>,
}

impl Trap {
    pub fn new(code: TrapCode) -> Trap {
        Trap { code, backtrace: Vec::new() }
    }
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wasm trap: {}", self.code.message())?;
        if !self.backtrace.is_empty() {
            write!(f, "\nwasm backtrace:")?;
            for (i, frame) in self.backtrace.iter().enumerate() {
                write!(f, "\n  {i}: ")?;
                match frame.module_offset {
                    Some(o) => write!(f, "{o:#x} - ")?,
                    None => write!(f, "<unknown> - ")?,
                }
                match &frame.func_name {
                    Some(n) => write!(f, "{n}")?,
                    None => write!(f, "wasm-function[{}]", frame.func_index)?,
                }
            }
        }
        Ok(())
    }
}

impl std::error::Error for Trap {}
