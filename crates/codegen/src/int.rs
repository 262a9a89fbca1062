//! Integer operators: ALU ops with constant operands as patchable immediates, compares,
//! shifts, division with its traps, bit counts, extensions, and `select`.

use crate::codegen::*;
use crate::masm::*;
use crate::stencil::{Guard, SiteEncoding};
use quickbeam_environ::*;
use quickbeam_microwasm::CompileError;

/// Division flavours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DivKind {
    DivS,
    DivU,
    RemS,
    RemU,
}

/// Bit-counting operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitCount {
    Clz,
    Ctz,
    Popcnt,
}

fn int_ty(size: Size) -> ValType {
    match size {
        Size::S32 => ValType::I32,
        Size::S64 => ValType::I64,
    }
}

/// The guard an imm32 operand of a `size` operation needs: any i32, or an i64 that
/// survives sign extension from 32 bits.
fn imm32_guard(size: Size) -> Guard {
    match size {
        Size::S32 => Guard::Any,
        Size::S64 => Guard::Range { lo: i32::MIN as i64, hi: i32::MAX as i64 },
    }
}

fn fits_imm32(size: Size, bits: u64) -> bool {
    size == Size::S32 || (bits as i64) == (bits as i64 as i32 as i64)
}

impl CodeGen {
    /// `dst op= rhs` for any operand form of `rhs`; consumes `rhs`.
    fn alu_with(&mut self, op: Alu, size: Size, dst: Gpr, rhs: Popped) -> Result<(), CompileError> {
        match rhs.op {
            Opnd::Const { bits, k } if fits_imm32(size, bits) => {
                let at = self.masm.alu_ri(op, size, dst, bits as u32 as i32);
                self.site(k, at, SiteEncoding::Imm32, imm32_guard(size));
            }
            Opnd::Const { bits, k } => {
                // Too wide for imm32: through r11, guarded out of imm32 range (I2).
                self.wide_const_to_gpr(SCRATCH, bits, k);
                self.masm.alu_rr(op, size, dst, SCRATCH);
            }
            Opnd::Gpr(r) => {
                self.masm.alu_rr(op, size, dst, r);
                self.release_gpr(r);
            }
            Opnd::Mem(m) => self.masm.alu_rm(op, size, dst, m),
            Opnd::Xmm(_) => return Err(CompileError::Internal("integer operand in an SSE register")),
        }
        Ok(())
    }

    pub(crate) fn int_alu(&mut self, size: Size, op: Alu) -> Result<(), CompileError> {
        let rhs = self.pop()?;
        let lhs = self.pop()?;
        let dst = self.into_owned_gpr(lhs)?;
        self.alu_with(op, size, dst, rhs)?;
        self.push(int_ty(size), Loc::Gpr(dst));
        Ok(())
    }

    pub(crate) fn int_mul(&mut self, size: Size) -> Result<(), CompileError> {
        let rhs = self.pop()?;
        let lhs = self.pop()?;
        let dst = self.into_owned_gpr(lhs)?;
        match rhs.op {
            Opnd::Const { bits, k } if fits_imm32(size, bits) => {
                let at = self.masm.imul_ri(size, dst, bits as u32 as i32);
                self.site(k, at, SiteEncoding::Imm32, imm32_guard(size));
            }
            Opnd::Const { bits, k } => {
                self.wide_const_to_gpr(SCRATCH, bits, k);
                self.masm.imul_rr(size, dst, SCRATCH);
            }
            Opnd::Gpr(r) => {
                self.masm.imul_rr(size, dst, r);
                self.release_gpr(r);
            }
            Opnd::Mem(m) => self.masm.imul_rm(size, dst, m),
            Opnd::Xmm(_) => return Err(CompileError::Internal("integer operand in an SSE register")),
        }
        self.push(int_ty(size), Loc::Gpr(dst));
        Ok(())
    }

    /// Compares the top two values and pushes the i32 truth of `cond`.
    pub(crate) fn int_cmp(&mut self, size: Size, cond: Cond) -> Result<(), CompileError> {
        let rhs = self.pop()?;
        let lhs = self.pop()?;
        let a = self.into_owned_gpr(lhs)?;
        self.alu_with(Alu::Cmp, size, a, rhs)?;
        self.masm.setcc(cond, a);
        self.push(ValType::I32, Loc::Gpr(a));
        Ok(())
    }

    /// `eqz` / `ref.is_null`: pushes whether the top value is zero.
    pub(crate) fn int_unop_cond(&mut self, size: Size) -> Result<(), CompileError> {
        let v = self.pop()?;
        let r = self.into_owned_gpr(v)?;
        self.masm.test_rr(size, r, r);
        self.masm.setcc(Cond::E, r);
        self.push(ValType::I32, Loc::Gpr(r));
        Ok(())
    }

    /// Pops an i32 condition and sets the flags to `test cond, cond`.
    pub(crate) fn test_top(&mut self) -> Result<(), CompileError> {
        let c = self.pop()?;
        let r = self.as_gpr(c)?;
        self.masm.test_rr(Size::S32, r, r);
        self.release_gpr(r);
        Ok(())
    }

    pub(crate) fn int_shift(&mut self, size: Size, op: Shift) -> Result<(), CompileError> {
        if let Loc::Const { bits, k } = self.peek(0)?.loc {
            // The count goes into the imm8 modulo the width, as the operator takes it:
            // every count patches (the instruction is the same for all of them).
            self.pop()?;
            let lhs = self.pop()?;
            let dst = self.into_owned_gpr(lhs)?;
            let mask = if size == Size::S32 { 31 } else { 63 };
            let at = self.masm.shift_ri(op, size, dst, (bits & mask) as u8);
            self.site(k, at, SiteEncoding::Imm8Masked(mask as u8), Guard::Any);
            self.push(int_ty(size), Loc::Gpr(dst));
            return Ok(());
        }
        self.evict_gprs(&[RCX])?;
        let count = self.pop()?;
        let lhs = self.pop()?;
        self.claim_gpr(RCX);
        let dst = self.into_owned_gpr(lhs)?;
        self.arg_to(RCX, count);
        self.release(count.op);
        self.masm.shift_cl(op, size, dst);
        self.release_gpr(RCX);
        self.push(int_ty(size), Loc::Gpr(dst));
        Ok(())
    }

    pub(crate) fn int_div(&mut self, size: Size, kind: DivKind) -> Result<(), CompileError> {
        self.evict_gprs(&[RAX, RDX])?;
        let rhs = self.pop()?;
        let lhs = self.pop()?;
        self.claim_gpr(RAX);
        self.claim_gpr(RDX);
        let divisor = self.as_gpr(rhs)?;
        self.arg_to(RAX, lhs);
        self.release(lhs.op);
        let zero = self.trap_label(TrapCode::IntegerDivisionByZero);
        self.masm.test_rr(size, divisor, divisor);
        self.masm.jcc(Cond::E, zero);
        let done = self.masm.new_label();
        match kind {
            DivKind::DivS => {
                let ok = self.masm.new_label();
                self.masm.alu_ri(Alu::Cmp, size, divisor, -1);
                self.masm.jcc(Cond::Ne, ok);
                let overflow = self.trap_label(TrapCode::IntegerOverflow);
                let min = if size == Size::S32 { i32::MIN as u32 as u64 } else { i64::MIN as u64 };
                self.masm.mov_ri64(SCRATCH, min);
                self.masm.alu_rr(Alu::Cmp, size, RAX, SCRATCH);
                self.masm.jcc(Cond::E, overflow);
                self.masm.bind(ok);
                self.masm.div_r(size, Ext::Signed, divisor);
            }
            DivKind::RemS => {
                let ok = self.masm.new_label();
                self.masm.alu_ri(Alu::Cmp, size, divisor, -1);
                self.masm.jcc(Cond::Ne, ok);
                self.masm.zero_r(RDX);
                self.masm.jmp(done);
                self.masm.bind(ok);
                self.masm.div_r(size, Ext::Signed, divisor);
            }
            DivKind::DivU | DivKind::RemU => self.masm.div_r(size, Ext::Unsigned, divisor),
        }
        self.masm.bind(done);
        self.release_gpr(divisor);
        let (result, other) = match kind {
            DivKind::DivS | DivKind::DivU => (RAX, RDX),
            DivKind::RemS | DivKind::RemU => (RDX, RAX),
        };
        self.release_gpr(other);
        self.push(int_ty(size), Loc::Gpr(result));
        Ok(())
    }

    pub(crate) fn int_bitcount(&mut self, size: Size, op: BitCount) -> Result<(), CompileError> {
        let v = self.pop()?;
        let r = self.into_owned_gpr(v)?;
        match op {
            BitCount::Clz => self.masm.lzcnt(size, r, r),
            BitCount::Ctz => self.masm.tzcnt(size, r, r),
            BitCount::Popcnt => self.masm.popcnt(size, r, r),
        }
        self.push(int_ty(size), Loc::Gpr(r));
        Ok(())
    }

    pub(crate) fn int_wrap(&mut self) -> Result<(), CompileError> {
        let v = self.pop()?;
        let r = self.into_owned_gpr(v)?;
        self.masm.mov_rr(Size::S32, r, r);
        self.push(ValType::I32, Loc::Gpr(r));
        Ok(())
    }

    /// Sign-extends the low `from` bytes, or zero-extends an i32 to i64.
    pub(crate) fn int_extend(&mut self, to: ValType, from: Width, ext: Ext) -> Result<(), CompileError> {
        let v = self.pop()?;
        let r = self.into_owned_gpr(v)?;
        match ext {
            Ext::Signed => self.masm.movsx_rr(isize_of(to), r, r, from),
            Ext::Unsigned => self.masm.mov_rr(Size::S32, r, r),
        }
        self.push(to, Loc::Gpr(r));
        Ok(())
    }

    /// Bits of a value reinterpreted as another type of the same width.
    pub(crate) fn reinterpret(&mut self, to: ValType) -> Result<(), CompileError> {
        let v = self.pop()?;
        let p = Popped { ty: to, op: v.op };
        if to.is_int() {
            let r = match v.op {
                Opnd::Xmm(x) => {
                    let r = self.alloc_gpr()?;
                    self.masm.mov_rx(fsize(v.ty), r, x);
                    self.release_xmm(x);
                    r
                }
                _ => self.into_owned_gpr(p)?,
            };
            self.push(to, Loc::Gpr(r));
        } else {
            let x = match v.op {
                Opnd::Gpr(r) => {
                    let x = self.alloc_xmm()?;
                    self.masm.mov_xr(fsize(to), x, r);
                    self.release_gpr(r);
                    x
                }
                _ => self.into_owned_xmm(p)?,
            };
            self.push(to, Loc::Xmm(x));
        }
        Ok(())
    }

    /// `select`: `c ? a : b`.
    pub(crate) fn select(&mut self) -> Result<(), CompileError> {
        let c = self.pop()?;
        let b = self.pop()?;
        let a = self.pop()?;
        let cr = self.as_gpr(c)?;
        if a.ty.is_int() {
            let dst = self.into_owned_gpr(a)?;
            let br = self.as_gpr(b)?;
            self.masm.test_rr(Size::S32, cr, cr);
            self.masm.cmov(Cond::E, Size::S64, dst, br);
            self.release_gpr(br);
            self.release_gpr(cr);
            self.push(a.ty, Loc::Gpr(dst));
        } else {
            let dst = self.into_owned_xmm(a)?;
            let bx = self.as_xmm(b)?;
            let skip = self.masm.new_label();
            self.masm.test_rr(Size::S32, cr, cr);
            self.masm.jcc(Cond::Ne, skip);
            self.masm.fmov_rr(dst, bx);
            self.masm.bind(skip);
            self.release_xmm(bx);
            self.release_gpr(cr);
            self.push(a.ty, Loc::Xmm(dst));
        }
        Ok(())
    }
}
