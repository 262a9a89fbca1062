//! Trap codes (Wasm spec §4.4.9 "traps"), shared by the compiler's trap sites and the
//! runtime's `Trap` error. The numeric values are part of the stencil format and of the
//! contract with builtins and host adapters, which return them in `eax` (0 = no trap).

use core::fmt;

/// Why a WebAssembly computation trapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum TrapCode {
    /// `unreachable` was executed.
    UnreachableCodeReached = 1,
    /// A load or store, or a bulk memory operation, went out of bounds.
    MemoryOutOfBounds = 2,
    /// A table access or bulk table operation went out of bounds.
    TableOutOfBounds = 3,
    /// `call_indirect` found a null entry.
    IndirectCallToNull = 4,
    /// `call_indirect` found a function of another type.
    BadSignature = 5,
    /// Integer division or remainder by zero.
    IntegerDivisionByZero = 6,
    /// `INT_MIN / -1` for signed division.
    IntegerOverflow = 7,
    /// A trapping float-to-int conversion of NaN or of an out-of-range value.
    BadConversionToInteger = 8,
    /// The Wasm stack limit was reached.
    StackOverflow = 9,
    /// A host function returned an error; the error itself travels beside the trap.
    HostError = 10,
    /// Execution was interrupted: the store's epoch deadline was reached.
    Interrupt = 11,
    /// Fuel ran out.
    OutOfFuel = 12,
    /// A `table.*`/`memory.*` operation on an element or data segment that was dropped
    /// or is too short (reported as out of bounds by the spec; kept for precise messages).
    Null = 13,
}

impl TrapCode {
    /// The code's numeric value as it travels in `eax` from builtins and adapters.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The trap code for a numeric value, if there is one.
    pub fn from_u32(v: u32) -> Option<TrapCode> {
        use TrapCode::*;
        Some(match v {
            1 => UnreachableCodeReached,
            2 => MemoryOutOfBounds,
            3 => TableOutOfBounds,
            4 => IndirectCallToNull,
            5 => BadSignature,
            6 => IntegerDivisionByZero,
            7 => IntegerOverflow,
            8 => BadConversionToInteger,
            9 => StackOverflow,
            10 => HostError,
            11 => Interrupt,
            12 => OutOfFuel,
            13 => Null,
            _ => return None,
        })
    }

    /// The message the spec test suite uses for this trap (`assert_trap` texts).
    pub fn message(self) -> &'static str {
        use TrapCode::*;
        match self {
            UnreachableCodeReached => "unreachable",
            MemoryOutOfBounds => "out of bounds memory access",
            // Both spec texts: `call_indirect` out of bounds expects "undefined element",
            // table instructions and segments "out of bounds table access".
            TableOutOfBounds => "undefined element: out of bounds table access",
            IndirectCallToNull => "uninitialized element",
            BadSignature => "indirect call type mismatch",
            IntegerDivisionByZero => "integer divide by zero",
            IntegerOverflow => "integer overflow",
            BadConversionToInteger => "invalid conversion to integer",
            StackOverflow => "call stack exhausted",
            HostError => "host function error",
            Interrupt => "interrupt",
            OutOfFuel => "all fuel consumed",
            Null => "null reference",
        }
    }
}

impl fmt::Display for TrapCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}
