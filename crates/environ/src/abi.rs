//! The calling convention between compiled Wasm code, the runtime's trampolines and
//! builtins. Compiled code and the runtime both follow this text; change both or neither.
//!
//! # Registers
//! - `r14`: the callee's VMContext on entry to every Wasm function. Compiled code keeps
//!   its own VMContext in `r14` and saves it at `[rbp-8]`; after any call it reloads `r14`
//!   (and `r15`) itself, so callees may clobber every register but `rbp`/`rsp`.
//!   The runtime relies on `[rbp-8]` too: the host adapter reads the calling function's
//!   VMContext there to build a `Caller`, so it must hold whenever a function calls out.
//! - `r15`: base of memory 0, loaded from `[r14 + VMCTX_MEMORY0_BASE]` in the prologue.
//! - Every other general-purpose and SSE register is caller-saved.
//!
//! # Arguments and results: the argument area
//! A call with `n` params and `m` results uses an area of `A = max(n, m)` 8-byte slots
//! just above the return address. Param `i` is at `[rbp + 16 + 8*(A-1-i)]` in the
//! callee (param 0 highest), result `j` at `[rbp + 16 + 8*(A-1-j)]` on return. i32 and
//! f32 values use the low 4 bytes of their slot; the high bytes are unspecified.
//!
//! ```text
//!            ┌──────────────────┐ higher addresses
//!            │ param 0/result 0 │ [rbp + 16 + 8*(A-1)]
//!            │       ...        │
//!            │ param A-1 / ...  │ [rbp + 16]
//!            │ return address   │ [rbp + 8]
//!     rbp ─► │ caller's rbp     │ [rbp]
//!            │ vmctx (r14)      │ [rbp - 8]
//!            │ value stack ...  │ [rbp - 16 - 8k]: stack position n+k (n = #params)
//!     rsp ─► └──────────────────┘
//! ```
//!
//! # Entering Wasm from the host
//! The runtime's entry trampoline takes `(vmctx, code, area: *mut u64, A)`: it saves the
//! callee-saved registers, records `rsp` for trap unwinding, copies `area[0..A]` so that
//! `area[s]` lands at `[callee rbp + 16 + 8*s]` (so the host writes param `i` to
//! `area[A-1-i]`), sets `r14 = vmctx`, calls `code`, copies the area back (result `j`
//! in `area[A-1-j]`), and returns 0 — or, after a trap, the trap code.
//!
//! # Host functions
//! A host function's `VMFuncRef` has `code` = the runtime's host adapter and `vmctx` =
//! the host function's context. The adapter passes `(r14, &[rbp+16])` to the runtime,
//! which reads the params from and writes the results into the argument area. A nonzero
//! return is a trap code: the adapter executes `ud2` with the code in `eax`.
//!
//! # Traps
//! Compiled code traps with `ud2` at an out-of-line stub recorded as a trap site, or by a
//! faulting memory access recorded as a trap site. A builtin that can trap returns
//! nonzero in `eax` on failure; each builtin has one trap code (memory builtins
//! `MemoryOutOfBounds`, table builtins `TableOutOfBounds`), so the code tests `eax` and
//! jumps to that code's stub. `memory.grow` and `table.grow` return the old size, or
//! `u32::MAX` (-1) when the grow is refused, in the low 32 bits of `rax`; any of the
//! high 32 bits set means the store's resource limiter failed: the code jumps to a
//! `HostError` stub, and the limiter's error waits in the runtime's thread-local state. The host adapter's own `ud2` means `HostError`; the error
//! itself waits in the runtime's thread-local state. The signal handler maps the faulting
//! pc to its trap code, collects a backtrace by walking `rbp`, and resumes at the entry
//! trampoline's landing, which returns the trap code to the host.
//!
//! # Stack limit
//! The prologue allocates the frame, then traps with `StackOverflow` if `rsp` is below
//! `[r14 + VMCTX_STACK_LIMIT]`.
//!
//! # Interruption and fuel
//! With epoch interruption on (an engine setting), the code checks the epoch after the
//! stack check of every prologue and at every loop header, using only the scratch
//! register `r11`:
//! ```text
//!   mov r11, [r14 + VMCTX_EPOCH_PTR]
//!   mov r11, [r11]                        ; the engine's epoch
//!   cmp r11, [r14 + VMCTX_EPOCH_DEADLINE]
//!   jae interrupt_stub                    ; out of line: ud2, trap code Interrupt
//! ```
//! With fuel metering on, each of those points costs one unit of fuel:
//! ```text
//!   mov r11, [r14 + VMCTX_FUEL_PTR]
//!   sub qword [r11], 1
//!   js out_of_fuel_stub                   ; out of line: ud2, trap code OutOfFuel
//! ```

