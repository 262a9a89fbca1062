//! The MacroAssembler: the only place that emits x86-64 instruction bytes.
//!
//! Operations are named by operand form (`add_rr`, `add_ri`, `mov_rm`) and take kinds
//! ([`Size`], [`Cond`]) instead of booleans. Everything above this layer is semantic.
//!
//! Sites: operations that take a patchable immediate or a relocated field return or
//! record the field's code offset. `dynasmrt` encodes every immediate and displacement
//! that is a runtime value with 32 bits (and `mov r64, imm64` with 64), so a site's
//! width never depends on its value: the stencil stays patchable (STYLE.md §9).
//!
//! Registers: `r14` holds the VMContext, `r15` memory 0's base, `r11` and `xmm15` are
//! scratch registers this layer and the code generator may clobber at any time.

use dynasmrt::{dynasm, x64::X64Relocation, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

/// A general-purpose register number (0 = rax ... 15 = r15).
pub type Gpr = u8;
/// An SSE register number (0 = xmm0 ... 15 = xmm15).
pub type Xmm = u8;

pub const RAX: Gpr = 0;
pub const RCX: Gpr = 1;
pub const RDX: Gpr = 2;
pub const RBX: Gpr = 3;
pub const RSP: Gpr = 4;
pub const RBP: Gpr = 5;
pub const RSI: Gpr = 6;
pub const RDI: Gpr = 7;
pub const R8: Gpr = 8;
pub const R9: Gpr = 9;
pub const R11: Gpr = 11;
pub const R14: Gpr = 14;
pub const R15: Gpr = 15;
/// Scratch registers.
pub const SCRATCH: Gpr = R11;
pub const XSCRATCH: Xmm = 15;
/// The VMContext register.
pub const VMCTX: Gpr = R14;
/// Memory 0's base register.
pub const MEMBASE: Gpr = R15;

/// Operand size of an integer operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    S32,
    S64,
}

/// Width and extension of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    B8,
    B16,
    B32,
    B64,
}

/// Signedness of an extension, division or comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ext {
    Signed,
    Unsigned,
}

/// Float precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FSize {
    F32,
    F64,
}

/// x86 condition codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    E,
    Ne,
    L,
    Le,
    G,
    Ge,
    B,
    Be,
    A,
    Ae,
    P,
    Np,
    S,
    Ns,
}

impl Cond {
    pub fn negate(self) -> Cond {
        use Cond::*;
        match self {
            E => Ne,
            Ne => E,
            L => Ge,
            Le => G,
            G => Le,
            Ge => L,
            B => Ae,
            Be => A,
            A => Be,
            Ae => B,
            P => Np,
            Np => P,
            S => Ns,
            Ns => S,
        }
    }
}

/// A memory operand `[base + index + disp]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mem {
    pub base: Gpr,
    pub index: Option<Gpr>,
    pub disp: i32,
}

impl Mem {
    pub fn base(base: Gpr, disp: i32) -> Mem {
        Mem { base, index: None, disp }
    }
    pub fn indexed(base: Gpr, index: Gpr, disp: i32) -> Mem {
        Mem { base, index: Some(index), disp }
    }
}

/// Binary integer ALU operations with `rr`, `ri` and `rm` forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alu {
    Add,
    Sub,
    And,
    Or,
    Xor,
    Cmp,
}

/// Shifts and rotates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    Shl,
    Shr,
    Sar,
    Rol,
    Ror,
}

/// Scalar SSE arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FOp {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
    Sqrt,
}

/// `roundss`/`roundsd` modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundMode {
    Nearest = 0,
    Floor = 1,
    Ceil = 2,
    Trunc = 3,
}

pub type Label = DynamicLabel;

/// Assembles one function. Offsets are bytes from the function's start.
pub struct MacroAssembler {
    a: VecAssembler<X64Relocation>,
    /// Jump-table entries to fill at [`MacroAssembler::finish`]: (offset, table, target).
    table_entries: Vec<(u32, Label, Label)>,
}

macro_rules! rr {
    ($a:expr, $size:expr, $op:ident, $d:expr, $s:expr) => {
        match $size {
            Size::S32 => dynasm!($a ; .arch x64 ; $op Rd($d), Rd($s)),
            Size::S64 => dynasm!($a ; .arch x64 ; $op Rq($d), Rq($s)),
        }
    };
}

macro_rules! ri {
    ($a:expr, $size:expr, $op:ident, $d:expr, $i:expr) => {
        match $size {
            Size::S32 => dynasm!($a ; .arch x64 ; $op Rd($d), DWORD $i),
            Size::S64 => dynasm!($a ; .arch x64 ; $op Rq($d), DWORD $i),
        }
    };
}

macro_rules! rcl {
    ($a:expr, $size:expr, $op:ident, $d:expr) => {
        match $size {
            Size::S32 => dynasm!($a ; .arch x64 ; $op Rd($d), cl),
            Size::S64 => dynasm!($a ; .arch x64 ; $op Rq($d), cl),
        }
    };
}

macro_rules! rib {
    ($a:expr, $size:expr, $op:ident, $d:expr, $i:expr) => {
        match $size {
            Size::S32 => dynasm!($a ; .arch x64 ; $op Rd($d), BYTE $i),
            Size::S64 => dynasm!($a ; .arch x64 ; $op Rq($d), BYTE $i),
        }
    };
}

macro_rules! with_mem {
    ($a:expr, $m:expr, $($body:tt)*) => {{
        let m: Mem = $m;
        match m.index {
            None => { let (b, d) = (m.base, m.disp); dynasm!($a ; .arch x64 ; $($body)* [Rq(b) + d]) }
            Some(i) => { let (b, d) = (m.base, m.disp); dynasm!($a ; .arch x64 ; $($body)* [Rq(b) + Rq(i) + d]) }
        }
    }};
}

macro_rules! with_mem_src {
    ($a:expr, $m:expr, $op:ident $rk:ident($r:expr), $($size:ident)?) => {{
        let m: Mem = $m;
        match m.index {
            None => { let (b, d) = (m.base, m.disp); dynasm!($a ; .arch x64 ; $op $rk($r), $($size)? [Rq(b) + d]) }
            Some(i) => { let (b, d) = (m.base, m.disp); dynasm!($a ; .arch x64 ; $op $rk($r), $($size)? [Rq(b) + Rq(i) + d]) }
        }
    }};
}

macro_rules! with_mem_dst {
    ($a:expr, $m:expr, [$($head:tt)*], [$($tail:tt)*]) => {{
        let m: Mem = $m;
        match m.index {
            None => { let (b, d) = (m.base, m.disp); dynasm!($a ; .arch x64 ; $($head)* [Rq(b) + d], $($tail)*) }
            Some(i) => { let (b, d) = (m.base, m.disp); dynasm!($a ; .arch x64 ; $($head)* [Rq(b) + Rq(i) + d], $($tail)*) }
        }
    }};
}

impl Default for MacroAssembler {
    fn default() -> Self {
        Self::new()
    }
}

impl MacroAssembler {
    pub fn new() -> MacroAssembler {
        Self::with_capacity(256)
    }

    /// An assembler with room for about `bytes` of code (no reallocation in the common case).
    pub fn with_capacity(bytes: usize) -> MacroAssembler {
        let labels = bytes / 16 + 8;
        MacroAssembler {
            a: VecAssembler::new_with_capacity(0, bytes, 0, 0, labels, 0, labels * 2),
            table_entries: Vec::new(),
        }
    }

    /// The current code offset.
    pub fn offset(&self) -> u32 {
        self.a.offset().0 as u32
    }

    pub fn new_label(&mut self) -> Label {
        self.a.new_dynamic_label()
    }

    pub fn bind(&mut self, l: Label) {
        dynasm!(self.a ; .arch x64 ; =>l);
    }

    /// Finishes the function; returns its code.
    pub fn finish(self) -> Result<Vec<u8>, dynasmrt::DynasmError> {
        let entries: Vec<(u32, i32)> = self
            .table_entries
            .iter()
            .map(|&(at, table, target)| {
                let t = self.a.labels().resolve_dynamic(table)?.0 as i64;
                let l = self.a.labels().resolve_dynamic(target)?.0 as i64;
                Ok((at, (l - t) as i32))
            })
            .collect::<Result<_, dynasmrt::DynasmError>>()?;
        let mut code = self.a.finalize()?;
        for (at, v) in entries {
            code[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
        }
        Ok(code)
    }

    /// The offset a bound label resolved to.
    pub fn label_offset(&self, l: Label) -> Option<u32> {
        self.a.labels().resolve_dynamic(l).ok().map(|o| o.0 as u32)
    }

    /// Offset of the last 4 bytes emitted (the imm32/disp32/rel32 of the last instruction).
    fn last32(&self) -> u32 {
        self.offset() - 4
    }

    // ---- frame --------------------------------------------------------------------

    /// `push rbp; mov rbp, rsp; push r14`.
    pub fn prologue_enter(&mut self) {
        dynasm!(self.a ; .arch x64 ; push rbp ; mov rbp, rsp ; push r14);
    }

    /// `sub rsp, imm32`: returns the imm32's offset (patched with the frame size later).
    pub fn sub_rsp_fixup(&mut self) -> u32 {
        dynasm!(self.a ; .arch x64 ; sub rsp, DWORD 0x7fff_0000u32 as i32);
        self.last32()
    }

    /// `lea rsp, [rbp - imm32]`: returns the disp32's offset (patched with -frame size).
    pub fn restore_rsp_fixup(&mut self) -> u32 {
        let d = 0x7fff_0000u32 as i32;
        dynasm!(self.a ; .arch x64 ; lea rsp, [rbp + d]);
        self.last32()
    }

    /// `lea rsp, [rbp + disp]`.
    pub fn set_rsp(&mut self, disp: i32) {
        dynasm!(self.a ; .arch x64 ; lea rsp, [rbp + disp]);
    }

    /// `and rsp, -16`.
    pub fn align_rsp(&mut self) {
        dynasm!(self.a ; .arch x64 ; and rsp, -16);
    }

    /// `cmp rsp, [r14 + off]; jb label`.
    pub fn stack_check(&mut self, limit_off: i32, trap: Label) {
        dynasm!(self.a ; .arch x64 ; cmp rsp, [r14 + limit_off] ; jb =>trap);
    }

    /// Epoch check (`abi.rs`, "Interruption and fuel"): `mov r11, [r14 + ptr_off];
    /// mov r11, [r11]; cmp r11, [r14 + deadline_off]; jae label`. Clobbers `r11` and
    /// flags. The VMContext header's own offsets get the short (disp8) encodings.
    pub fn epoch_check(&mut self, ptr_off: i32, deadline_off: i32, trap: Label) {
        match (ptr_off, deadline_off) {
            (0x20, 0x28) => dynasm!(self.a ; .arch x64
                ; mov r11, QWORD [r14 + 0x20]
                ; mov r11, QWORD [r11]
                ; cmp r11, QWORD [r14 + 0x28]
                ; jae =>trap),
            _ => dynasm!(self.a ; .arch x64
                ; mov r11, QWORD [r14 + ptr_off]
                ; mov r11, QWORD [r11]
                ; cmp r11, QWORD [r14 + deadline_off]
                ; jae =>trap),
        }
    }

    /// Fuel check: `mov r11, [r14 + ptr_off]; sub qword [r11], 1; js label`. Clobbers
    /// `r11` and flags. As [`Self::epoch_check`], disp8 for the header's offset.
    pub fn fuel_check(&mut self, ptr_off: i32, trap: Label) {
        match ptr_off {
            0x30 => dynasm!(self.a ; .arch x64 ; mov r11, QWORD [r14 + 0x30] ; sub QWORD [r11], 1 ; js =>trap),
            _ => dynasm!(self.a ; .arch x64 ; mov r11, QWORD [r14 + ptr_off] ; sub QWORD [r11], 1 ; js =>trap),
        }
    }

    /// `mov r11, src; shr r11, 32; jnz label`: jumps if any of `src`'s high 32 bits is set.
    pub fn jump_if_high32(&mut self, src: Gpr, l: Label) {
        dynasm!(self.a ; .arch x64 ; mov r11, Rq(src) ; shr r11, 32 ; jnz =>l);
    }

    /// `mov rsp, rbp; pop rbp; ret`.
    pub fn epilogue_ret(&mut self) {
        dynasm!(self.a ; .arch x64 ; mov rsp, rbp ; pop rbp ; ret);
    }

    /// Overwrites the 4 bytes at `at` (a fixup inside this function's own code).
    pub fn patch32(&mut self, at: u32, value: i32) {
        let mut m = self.a.alter();
        m.goto(dynasmrt::AssemblyOffset(at as usize));
        m.push_i32(value);
    }

    // ---- moves ----------------------------------------------------------------------

    pub fn mov_rr(&mut self, size: Size, dst: Gpr, src: Gpr) {
        rr!(self.a, size, mov, dst, src);
    }

    /// `mov r32, imm32` (zero-extends). Returns the imm32's offset.
    pub fn mov_ri32(&mut self, dst: Gpr, imm: u32) -> u32 {
        let i = imm as i32;
        dynasm!(self.a ; .arch x64 ; mov Rd(dst), DWORD i);
        self.last32()
    }

    /// `mov r64, imm32` sign-extended. Returns the imm32's offset.
    pub fn mov_ri32_sx(&mut self, dst: Gpr, imm: i32) -> u32 {
        dynasm!(self.a ; .arch x64 ; mov Rq(dst), DWORD imm);
        self.last32()
    }

    /// `mov r64, imm64`. Returns the imm64's offset.
    pub fn mov_ri64(&mut self, dst: Gpr, imm: u64) -> u32 {
        let i = imm as i64;
        dynasm!(self.a ; .arch x64 ; mov Rq(dst), QWORD i);
        self.offset() - 8
    }

    /// `xor r32, r32`.
    pub fn zero_r(&mut self, dst: Gpr) {
        dynasm!(self.a ; .arch x64 ; xor Rd(dst), Rd(dst));
    }

    /// Load with zero or sign extension into a 32- or 64-bit register. Returns the
    /// instruction's offset (for trap sites) and the disp32's offset.
    pub fn load(&mut self, dst: Gpr, m: Mem, width: Width, ext: Ext, size: Size) -> (u32, u32) {
        let at = self.offset();
        match (width, ext, size) {
            (Width::B8, Ext::Unsigned, _) => with_mem_src!(self.a, m, movzx Rd(dst), BYTE),
            (Width::B8, Ext::Signed, Size::S32) => with_mem_src!(self.a, m, movsx Rd(dst), BYTE),
            (Width::B8, Ext::Signed, Size::S64) => with_mem_src!(self.a, m, movsx Rq(dst), BYTE),
            (Width::B16, Ext::Unsigned, _) => with_mem_src!(self.a, m, movzx Rd(dst), WORD),
            (Width::B16, Ext::Signed, Size::S32) => with_mem_src!(self.a, m, movsx Rd(dst), WORD),
            (Width::B16, Ext::Signed, Size::S64) => with_mem_src!(self.a, m, movsx Rq(dst), WORD),
            (Width::B32, Ext::Signed, Size::S64) => with_mem_src!(self.a, m, movsxd Rq(dst), DWORD),
            (Width::B32, _, _) => with_mem_src!(self.a, m, mov Rd(dst), DWORD),
            (Width::B64, _, _) => with_mem_src!(self.a, m, mov Rq(dst), QWORD),
        }
        (at, self.last32())
    }

    /// Store the low `width` bytes of `src`. Returns the instruction's and the disp32's offsets.
    pub fn store(&mut self, m: Mem, src: Gpr, width: Width) -> (u32, u32) {
        let at = self.offset();
        match width {
            Width::B8 => with_mem_dst!(self.a, m, [mov BYTE], [Rb(src)]),
            Width::B16 => with_mem_dst!(self.a, m, [mov WORD], [Rw(src)]),
            Width::B32 => with_mem_dst!(self.a, m, [mov DWORD], [Rd(src)]),
            Width::B64 => with_mem_dst!(self.a, m, [mov QWORD], [Rq(src)]),
        }
        (at, self.last32())
    }

    /// `mov dword/qword [m], imm32` (qword sign-extends). Returns the imm32's offset.
    pub fn store_imm32(&mut self, m: Mem, imm: i32, size: Size) -> u32 {
        match (size, m.index) {
            (Size::S32, None) => { let (b, d) = (m.base, m.disp); dynasm!(self.a ; .arch x64 ; mov DWORD [Rq(b) + d], imm) }
            (Size::S64, None) => { let (b, d) = (m.base, m.disp); dynasm!(self.a ; .arch x64 ; mov QWORD [Rq(b) + d], imm) }
            (Size::S32, Some(i)) => { let (b, d) = (m.base, m.disp); dynasm!(self.a ; .arch x64 ; mov DWORD [Rq(b) + Rq(i) + d], imm) }
            (Size::S64, Some(i)) => { let (b, d) = (m.base, m.disp); dynasm!(self.a ; .arch x64 ; mov QWORD [Rq(b) + Rq(i) + d], imm) }
        }
        self.last32()
    }

    /// `cmp dword [m], imm32`. Returns the imm32's offset.
    pub fn cmp_mi32(&mut self, m: Mem, imm: i32) -> u32 {
        match m.index {
            None => { let (b, d) = (m.base, m.disp); dynasm!(self.a ; .arch x64 ; cmp DWORD [Rq(b) + d], DWORD imm) }
            Some(i) => { let (b, d) = (m.base, m.disp); dynasm!(self.a ; .arch x64 ; cmp DWORD [Rq(b) + Rq(i) + d], DWORD imm) }
        }
        self.last32()
    }

    /// `cmp dword [m], r32`.
    pub fn cmp_mr32(&mut self, m: Mem, r: Gpr) {
        with_mem_dst!(self.a, m, [cmp DWORD], [Rd(r)]);
    }

    /// `lea r64, [m]`. Returns the disp32's offset.
    pub fn lea(&mut self, dst: Gpr, m: Mem) -> u32 {
        with_mem_src!(self.a, m, lea Rq(dst),);
        self.last32()
    }

    // ---- integer arithmetic ------------------------------------------------------------

    pub fn alu_rr(&mut self, op: Alu, size: Size, dst: Gpr, src: Gpr) {
        match op {
            Alu::Add => rr!(self.a, size, add, dst, src),
            Alu::Sub => rr!(self.a, size, sub, dst, src),
            Alu::And => rr!(self.a, size, and, dst, src),
            Alu::Or => rr!(self.a, size, or, dst, src),
            Alu::Xor => rr!(self.a, size, xor, dst, src),
            Alu::Cmp => rr!(self.a, size, cmp, dst, src),
        }
    }

    /// `op dst, imm32` (sign-extended for 64-bit). Returns the imm32's offset.
    pub fn alu_ri(&mut self, op: Alu, size: Size, dst: Gpr, imm: i32) -> u32 {
        match op {
            Alu::Add => ri!(self.a, size, add, dst, imm),
            Alu::Sub => ri!(self.a, size, sub, dst, imm),
            Alu::And => ri!(self.a, size, and, dst, imm),
            Alu::Or => ri!(self.a, size, or, dst, imm),
            Alu::Xor => ri!(self.a, size, xor, dst, imm),
            Alu::Cmp => ri!(self.a, size, cmp, dst, imm),
        }
        self.last32()
    }

    /// `op dst, [m]`.
    pub fn alu_rm(&mut self, op: Alu, size: Size, dst: Gpr, m: Mem) {
        match (op, size) {
            (Alu::Add, Size::S32) => with_mem_src!(self.a, m, add Rd(dst), DWORD),
            (Alu::Add, Size::S64) => with_mem_src!(self.a, m, add Rq(dst), QWORD),
            (Alu::Sub, Size::S32) => with_mem_src!(self.a, m, sub Rd(dst), DWORD),
            (Alu::Sub, Size::S64) => with_mem_src!(self.a, m, sub Rq(dst), QWORD),
            (Alu::And, Size::S32) => with_mem_src!(self.a, m, and Rd(dst), DWORD),
            (Alu::And, Size::S64) => with_mem_src!(self.a, m, and Rq(dst), QWORD),
            (Alu::Or, Size::S32) => with_mem_src!(self.a, m, or Rd(dst), DWORD),
            (Alu::Or, Size::S64) => with_mem_src!(self.a, m, or Rq(dst), QWORD),
            (Alu::Xor, Size::S32) => with_mem_src!(self.a, m, xor Rd(dst), DWORD),
            (Alu::Xor, Size::S64) => with_mem_src!(self.a, m, xor Rq(dst), QWORD),
            (Alu::Cmp, Size::S32) => with_mem_src!(self.a, m, cmp Rd(dst), DWORD),
            (Alu::Cmp, Size::S64) => with_mem_src!(self.a, m, cmp Rq(dst), QWORD),
        }
    }

    pub fn test_rr(&mut self, size: Size, a: Gpr, b: Gpr) {
        rr!(self.a, size, test, a, b);
    }

    pub fn imul_rr(&mut self, size: Size, dst: Gpr, src: Gpr) {
        rr!(self.a, size, imul, dst, src);
    }

    pub fn imul_rm(&mut self, size: Size, dst: Gpr, m: Mem) {
        match size {
            Size::S32 => with_mem_src!(self.a, m, imul Rd(dst), DWORD),
            Size::S64 => with_mem_src!(self.a, m, imul Rq(dst), QWORD),
        }
    }

    /// `imul dst, dst, imm32`. Returns the imm32's offset.
    pub fn imul_ri(&mut self, size: Size, dst: Gpr, imm: i32) -> u32 {
        match size {
            Size::S32 => dynasm!(self.a ; .arch x64 ; imul Rd(dst), Rd(dst), DWORD imm),
            Size::S64 => dynasm!(self.a ; .arch x64 ; imul Rq(dst), Rq(dst), DWORD imm),
        }
        self.last32()
    }

    /// `cdq`/`cqo` then `idiv`/`div src` (operands in rdx:rax).
    pub fn div_r(&mut self, size: Size, ext: Ext, src: Gpr) {
        match (size, ext) {
            (Size::S32, Ext::Signed) => dynasm!(self.a ; .arch x64 ; cdq ; idiv Rd(src)),
            (Size::S64, Ext::Signed) => dynasm!(self.a ; .arch x64 ; cqo ; idiv Rq(src)),
            (Size::S32, Ext::Unsigned) => dynasm!(self.a ; .arch x64 ; xor edx, edx ; div Rd(src)),
            (Size::S64, Ext::Unsigned) => dynasm!(self.a ; .arch x64 ; xor edx, edx ; div Rq(src)),
        }
    }

    /// Shift or rotate `dst` by `cl`.
    pub fn shift_cl(&mut self, op: Shift, size: Size, dst: Gpr) {
        match op {
            Shift::Shl => rcl!(self.a, size, shl, dst),
            Shift::Shr => rcl!(self.a, size, shr, dst),
            Shift::Sar => rcl!(self.a, size, sar, dst),
            Shift::Rol => rcl!(self.a, size, rol, dst),
            Shift::Ror => rcl!(self.a, size, ror, dst),
        }
    }

    /// Shift or rotate `dst` by an immediate (masked to the operand width by the caller).
    /// `op r, imm8` (always the imm8 form, also for a count of 1). Returns the imm8's
    /// offset.
    pub fn shift_ri(&mut self, op: Shift, size: Size, dst: Gpr, imm: u8) -> u32 {
        let i = imm as i8;
        match op {
            Shift::Shl => rib!(self.a, size, shl, dst, i),
            Shift::Shr => rib!(self.a, size, shr, dst, i),
            Shift::Sar => rib!(self.a, size, sar, dst, i),
            Shift::Rol => rib!(self.a, size, rol, dst, i),
            Shift::Ror => rib!(self.a, size, ror, dst, i),
        }
        self.offset() - 1
    }

    pub fn lzcnt(&mut self, size: Size, dst: Gpr, src: Gpr) {
        rr!(self.a, size, lzcnt, dst, src);
    }

    pub fn tzcnt(&mut self, size: Size, dst: Gpr, src: Gpr) {
        rr!(self.a, size, tzcnt, dst, src);
    }

    pub fn popcnt(&mut self, size: Size, dst: Gpr, src: Gpr) {
        rr!(self.a, size, popcnt, dst, src);
    }

    pub fn neg(&mut self, size: Size, dst: Gpr) {
        match size {
            Size::S32 => dynasm!(self.a ; .arch x64 ; neg Rd(dst)),
            Size::S64 => dynasm!(self.a ; .arch x64 ; neg Rq(dst)),
        }
    }

    /// Sign-extend the low `from` bytes of `src` into `dst`.
    pub fn movsx_rr(&mut self, size: Size, dst: Gpr, src: Gpr, from: Width) {
        match (from, size) {
            (Width::B8, Size::S32) => dynasm!(self.a ; .arch x64 ; movsx Rd(dst), Rb(src)),
            (Width::B8, Size::S64) => dynasm!(self.a ; .arch x64 ; movsx Rq(dst), Rb(src)),
            (Width::B16, Size::S32) => dynasm!(self.a ; .arch x64 ; movsx Rd(dst), Rw(src)),
            (Width::B16, Size::S64) => dynasm!(self.a ; .arch x64 ; movsx Rq(dst), Rw(src)),
            (Width::B32, _) => dynasm!(self.a ; .arch x64 ; movsxd Rq(dst), Rd(src)),
            (Width::B64, _) => self.mov_rr(Size::S64, dst, src),
        }
    }

    /// `setcc dst8; movzx dst32, dst8`.
    pub fn setcc(&mut self, cond: Cond, dst: Gpr) {
        macro_rules! set { ($($c:ident => $i:ident),*) => { match cond { $(Cond::$c => dynasm!(self.a ; .arch x64 ; $i Rb(dst)),)* } } }
        set!(E => sete, Ne => setne, L => setl, Le => setle, G => setg, Ge => setge, B => setb, Be => setbe, A => seta, Ae => setae, P => setp, Np => setnp, S => sets, Ns => setns);
        dynasm!(self.a ; .arch x64 ; movzx Rd(dst), Rb(dst));
    }

    /// `cmovcc dst, src`.
    pub fn cmov(&mut self, cond: Cond, size: Size, dst: Gpr, src: Gpr) {
        macro_rules! cm { ($($c:ident => $i:ident),*) => { match cond { $(Cond::$c => rr!(self.a, size, $i, dst, src),)* } } }
        cm!(E => cmove, Ne => cmovne, L => cmovl, Le => cmovle, G => cmovg, Ge => cmovge, B => cmovb, Be => cmovbe, A => cmova, Ae => cmovae, P => cmovp, Np => cmovnp, S => cmovs, Ns => cmovns);
    }

    // ---- control --------------------------------------------------------------------

    pub fn jmp(&mut self, l: Label) {
        dynasm!(self.a ; .arch x64 ; jmp =>l);
    }

    pub fn jcc(&mut self, cond: Cond, l: Label) {
        macro_rules! j { ($($c:ident => $i:ident),*) => { match cond { $(Cond::$c => dynasm!(self.a ; .arch x64 ; $i =>l),)* } } }
        j!(E => je, Ne => jne, L => jl, Le => jle, G => jg, Ge => jge, B => jb, Be => jbe, A => ja, Ae => jae, P => jp, Np => jnp, S => js, Ns => jns);
    }

    /// `call rel32` with a zero displacement. Returns the rel32's offset.
    pub fn call_rel32(&mut self) -> u32 {
        dynasm!(self.a ; .arch x64 ; call DWORD 0);
        self.last32()
    }

    /// `call [m]`.
    pub fn call_m(&mut self, m: Mem) {
        with_mem!(self.a, m, call QWORD);
    }

    /// `ud2`. Returns its offset (a trap site).
    pub fn ud2(&mut self) -> u32 {
        let at = self.offset();
        dynasm!(self.a ; .arch x64 ; ud2);
        at
    }

    /// Emits a `br_table` jump: `index` (zero-extended, already clamped) selects one of
    /// the 4-byte entries of the table at `table`; each entry is (target - table).
    pub fn jump_table(&mut self, index: Gpr, table: Label) {
        dynasm!(self.a ; .arch x64
            ; lea r11, [=>table]
            ; movsxd Rq(index), DWORD [r11 + Rq(index) * 4]
            ; add Rq(index), r11
            ; jmp Rq(index)
        );
    }

    /// Emits one 4-byte jump-table entry: `target - table`.
    pub fn jump_table_entry(&mut self, table: Label, target: Label) {
        let at = self.offset();
        dynasm!(self.a ; .arch x64 ; .i32 0);
        self.table_entries.push((at, table, target));
    }

    pub fn align(&mut self, to: usize) {
        dynasm!(self.a ; .arch x64 ; .align to);
    }

    // ---- SSE ----------------------------------------------------------------------------

    pub fn fload(&mut self, fs: FSize, dst: Xmm, m: Mem) -> (u32, u32) {
        let at = self.offset();
        match fs {
            FSize::F32 => with_mem_src!(self.a, m, movss Rx(dst), DWORD),
            FSize::F64 => with_mem_src!(self.a, m, movsd Rx(dst), QWORD),
        }
        (at, self.last32())
    }

    pub fn fstore(&mut self, fs: FSize, m: Mem, src: Xmm) -> (u32, u32) {
        let at = self.offset();
        match (fs, m.index) {
            (FSize::F32, None) => { let (b, d) = (m.base, m.disp); dynasm!(self.a ; .arch x64 ; movss DWORD [Rq(b) + d], Rx(src)) }
            (FSize::F64, None) => { let (b, d) = (m.base, m.disp); dynasm!(self.a ; .arch x64 ; movsd QWORD [Rq(b) + d], Rx(src)) }
            (FSize::F32, Some(i)) => { let (b, d) = (m.base, m.disp); dynasm!(self.a ; .arch x64 ; movss DWORD [Rq(b) + Rq(i) + d], Rx(src)) }
            (FSize::F64, Some(i)) => { let (b, d) = (m.base, m.disp); dynasm!(self.a ; .arch x64 ; movsd QWORD [Rq(b) + Rq(i) + d], Rx(src)) }
        }
        (at, self.last32())
    }

    /// `movaps dst, src` (copies the whole register).
    pub fn fmov_rr(&mut self, dst: Xmm, src: Xmm) {
        dynasm!(self.a ; .arch x64 ; movaps Rx(dst), Rx(src));
    }

    /// `movd/movq xmm, gpr`.
    pub fn mov_xr(&mut self, fs: FSize, dst: Xmm, src: Gpr) {
        match fs {
            FSize::F32 => dynasm!(self.a ; .arch x64 ; movd Rx(dst), Rd(src)),
            FSize::F64 => dynasm!(self.a ; .arch x64 ; movq Rx(dst), Rq(src)),
        }
    }

    /// `movd/movq gpr, xmm`.
    pub fn mov_rx(&mut self, fs: FSize, dst: Gpr, src: Xmm) {
        match fs {
            FSize::F32 => dynasm!(self.a ; .arch x64 ; movd Rd(dst), Rx(src)),
            FSize::F64 => dynasm!(self.a ; .arch x64 ; movq Rq(dst), Rx(src)),
        }
    }

    pub fn fop_rr(&mut self, op: FOp, fs: FSize, dst: Xmm, src: Xmm) {
        macro_rules! f { ($($o:ident => $s:ident $d:ident),*) => { match (op, fs) { $((FOp::$o, FSize::F32) => dynasm!(self.a ; .arch x64 ; $s Rx(dst), Rx(src)), (FOp::$o, FSize::F64) => dynasm!(self.a ; .arch x64 ; $d Rx(dst), Rx(src)),)* } } }
        f!(Add => addss addsd, Sub => subss subsd, Mul => mulss mulsd, Div => divss divsd, Min => minss minsd, Max => maxss maxsd, Sqrt => sqrtss sqrtsd);
    }

    /// `subss/subsd dst, [m]`.
    pub fn fsub_m(&mut self, fs: FSize, dst: Xmm, m: Mem) {
        match fs {
            FSize::F32 => with_mem_src!(self.a, m, subss Rx(dst), DWORD),
            FSize::F64 => with_mem_src!(self.a, m, subsd Rx(dst), QWORD),
        }
    }

    /// `ucomiss/ucomisd a, b`.
    pub fn ucomi(&mut self, fs: FSize, a: Xmm, b: Xmm) {
        match fs {
            FSize::F32 => dynasm!(self.a ; .arch x64 ; ucomiss Rx(a), Rx(b)),
            FSize::F64 => dynasm!(self.a ; .arch x64 ; ucomisd Rx(a), Rx(b)),
        }
    }

    pub fn round(&mut self, fs: FSize, dst: Xmm, src: Xmm, mode: RoundMode) {
        let m = mode as i8;
        match fs {
            FSize::F32 => dynasm!(self.a ; .arch x64 ; roundss Rx(dst), Rx(src), m),
            FSize::F64 => dynasm!(self.a ; .arch x64 ; roundsd Rx(dst), Rx(src), m),
        }
    }

    /// Bitwise `andps`/`orps`/`xorps`/`andnps` on whole registers.
    pub fn andps(&mut self, dst: Xmm, src: Xmm) {
        dynasm!(self.a ; .arch x64 ; andps Rx(dst), Rx(src));
    }
    pub fn orps(&mut self, dst: Xmm, src: Xmm) {
        dynasm!(self.a ; .arch x64 ; orps Rx(dst), Rx(src));
    }
    pub fn xorps(&mut self, dst: Xmm, src: Xmm) {
        dynasm!(self.a ; .arch x64 ; xorps Rx(dst), Rx(src));
    }
    pub fn andnps(&mut self, dst: Xmm, src: Xmm) {
        dynasm!(self.a ; .arch x64 ; andnps Rx(dst), Rx(src));
    }

    /// `cvtsi2ss/sd dst, src` from a 32- or 64-bit signed integer.
    pub fn cvt_int_to_float(&mut self, fs: FSize, size: Size, dst: Xmm, src: Gpr) {
        // Clear dst first: cvtsi2s* only writes the low lane (avoids a false dependency).
        dynasm!(self.a ; .arch x64 ; xorps Rx(dst), Rx(dst));
        match (fs, size) {
            (FSize::F32, Size::S32) => dynasm!(self.a ; .arch x64 ; cvtsi2ss Rx(dst), Rd(src)),
            (FSize::F32, Size::S64) => dynasm!(self.a ; .arch x64 ; cvtsi2ss Rx(dst), Rq(src)),
            (FSize::F64, Size::S32) => dynasm!(self.a ; .arch x64 ; cvtsi2sd Rx(dst), Rd(src)),
            (FSize::F64, Size::S64) => dynasm!(self.a ; .arch x64 ; cvtsi2sd Rx(dst), Rq(src)),
        }
    }

    /// `cvttss2si/cvttsd2si dst, src` to a 32- or 64-bit signed integer.
    pub fn cvt_float_to_int(&mut self, fs: FSize, size: Size, dst: Gpr, src: Xmm) {
        match (fs, size) {
            (FSize::F32, Size::S32) => dynasm!(self.a ; .arch x64 ; cvttss2si Rd(dst), Rx(src)),
            (FSize::F32, Size::S64) => dynasm!(self.a ; .arch x64 ; cvttss2si Rq(dst), Rx(src)),
            (FSize::F64, Size::S32) => dynasm!(self.a ; .arch x64 ; cvttsd2si Rd(dst), Rx(src)),
            (FSize::F64, Size::S64) => dynasm!(self.a ; .arch x64 ; cvttsd2si Rq(dst), Rx(src)),
        }
    }

    /// `cvtss2sd` (promote) or `cvtsd2ss` (demote).
    pub fn cvt_float(&mut self, to: FSize, dst: Xmm, src: Xmm) {
        match to {
            FSize::F64 => dynasm!(self.a ; .arch x64 ; cvtss2sd Rx(dst), Rx(src)),
            FSize::F32 => dynasm!(self.a ; .arch x64 ; cvtsd2ss Rx(dst), Rx(src)),
        }
    }
}

