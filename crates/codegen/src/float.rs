//! Float operators and conversions, with the Wasm semantics x86 does not give for free:
//! NaN-propagating `min`/`max` with signed zeros, trapping and saturating truncation,
//! and unsigned conversions.

use crate::codegen::*;
use crate::masm::*;
use quickbeam_environ::*;
use quickbeam_microwasm::CompileError;

/// Float comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FCmp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

/// Sign-bit operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignOp {
    Abs,
    Neg,
}

/// Float-to-int truncation flavours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TruncKind {
    /// Traps on NaN and out-of-range values.
    Checked,
    /// Saturates; NaN becomes 0.
    Saturating,
}

fn fty(fs: FSize) -> ValType {
    match fs {
        FSize::F32 => ValType::F32,
        FSize::F64 => ValType::F64,
    }
}

fn ity(size: Size) -> ValType {
    match size {
        Size::S32 => ValType::I32,
        Size::S64 => ValType::I64,
    }
}

/// Bits of the float `v` in precision `fs`.
fn fbits(fs: FSize, v: f64) -> u64 {
    match fs {
        FSize::F32 => (v as f32).to_bits() as u64,
        FSize::F64 => v.to_bits(),
    }
}

fn sign_mask(fs: FSize) -> u64 {
    match fs {
        FSize::F32 => 0x8000_0000,
        FSize::F64 => 0x8000_0000_0000_0000,
    }
}

impl CodeGen {
    pub(crate) fn float_binop(&mut self, fs: FSize, op: FOp) -> Result<(), CompileError> {
        let rhs = self.pop()?;
        let lhs = self.pop()?;
        let dst = self.into_owned_xmm(lhs)?;
        let src = self.as_xmm(rhs)?;
        self.masm.fop_rr(op, fs, dst, src);
        self.release_xmm(src);
        self.push(fty(fs), Loc::Xmm(dst));
        Ok(())
    }

    pub(crate) fn float_sqrt(&mut self, fs: FSize) -> Result<(), CompileError> {
        let v = self.pop()?;
        let x = self.into_owned_xmm(v)?;
        self.masm.fop_rr(FOp::Sqrt, fs, x, x);
        self.push(fty(fs), Loc::Xmm(x));
        Ok(())
    }

    pub(crate) fn float_round(&mut self, fs: FSize, mode: RoundMode) -> Result<(), CompileError> {
        let v = self.pop()?;
        let x = self.into_owned_xmm(v)?;
        self.masm.round(fs, x, x, mode);
        self.push(fty(fs), Loc::Xmm(x));
        Ok(())
    }

    pub(crate) fn float_sign(&mut self, fs: FSize, op: SignOp) -> Result<(), CompileError> {
        let v = self.pop()?;
        let x = self.into_owned_xmm(v)?;
        match op {
            SignOp::Neg => {
                self.fconst_scratch(fs, sign_mask(fs));
                self.masm.xorps(x, XSCRATCH);
            }
            SignOp::Abs => {
                self.fconst_scratch(fs, !sign_mask(fs) & if fs == FSize::F32 { 0xffff_ffff } else { u64::MAX });
                self.masm.andps(x, XSCRATCH);
            }
        }
        self.push(fty(fs), Loc::Xmm(x));
        Ok(())
    }

    pub(crate) fn float_copysign(&mut self, fs: FSize) -> Result<(), CompileError> {
        let rhs = self.pop()?;
        let lhs = self.pop()?;
        let dst = self.into_owned_xmm(lhs)?;
        let sign = self.into_owned_xmm(rhs)?;
        self.fconst_scratch(fs, sign_mask(fs));
        self.masm.andps(sign, XSCRATCH);
        self.masm.andnps(XSCRATCH, dst);
        self.masm.orps(XSCRATCH, sign);
        self.masm.fmov_rr(dst, XSCRATCH);
        self.release_xmm(sign);
        self.push(fty(fs), Loc::Xmm(dst));
        Ok(())
    }

    /// Wasm `min`/`max`: NaN if either is NaN; `min(-0, +0) = -0`, `max(-0, +0) = +0`.
    pub(crate) fn float_minmax(&mut self, fs: FSize, op: FOp) -> Result<(), CompileError> {
        let rhs = self.pop()?;
        let lhs = self.pop()?;
        let dst = self.into_owned_xmm(lhs)?;
        let src = self.as_xmm(rhs)?;
        let (nan, equal, done) = (self.masm.new_label(), self.masm.new_label(), self.masm.new_label());
        self.masm.ucomi(fs, dst, src);
        self.masm.jcc(Cond::P, nan);
        self.masm.jcc(Cond::E, equal);
        self.masm.fop_rr(op, fs, dst, src);
        self.masm.jmp(done);
        self.masm.bind(equal);
        // Equal values, or zeros of either sign: merge the sign bits.
        if op == FOp::Min {
            self.masm.orps(dst, src);
        } else {
            self.masm.andps(dst, src);
        }
        self.masm.jmp(done);
        self.masm.bind(nan);
        self.masm.fop_rr(FOp::Add, fs, dst, src);
        self.masm.bind(done);
        self.release_xmm(src);
        self.push(fty(fs), Loc::Xmm(dst));
        Ok(())
    }

    pub(crate) fn float_cmp(&mut self, fs: FSize, cmp: FCmp) -> Result<(), CompileError> {
        let rhs = self.pop()?;
        let lhs = self.pop()?;
        let a = self.as_xmm(lhs)?;
        let b = self.as_xmm(rhs)?;
        let dst = self.alloc_gpr()?;
        match cmp {
            FCmp::Eq => {
                self.masm.ucomi(fs, a, b);
                self.masm.setcc(Cond::E, dst);
                self.masm.setcc(Cond::Np, SCRATCH);
                self.masm.alu_rr(Alu::And, Size::S32, dst, SCRATCH);
            }
            FCmp::Ne => {
                self.masm.ucomi(fs, a, b);
                self.masm.setcc(Cond::Ne, dst);
                self.masm.setcc(Cond::P, SCRATCH);
                self.masm.alu_rr(Alu::Or, Size::S32, dst, SCRATCH);
            }
            FCmp::Gt => {
                self.masm.ucomi(fs, a, b);
                self.masm.setcc(Cond::A, dst);
            }
            FCmp::Ge => {
                self.masm.ucomi(fs, a, b);
                self.masm.setcc(Cond::Ae, dst);
            }
            FCmp::Lt => {
                self.masm.ucomi(fs, b, a);
                self.masm.setcc(Cond::A, dst);
            }
            FCmp::Le => {
                self.masm.ucomi(fs, b, a);
                self.masm.setcc(Cond::Ae, dst);
            }
        }
        self.release_xmm(a);
        self.release_xmm(b);
        self.push(ValType::I32, Loc::Gpr(dst));
        Ok(())
    }

    /// `f32.demote_f64` / `f64.promote_f32`.
    pub(crate) fn float_convert(&mut self, to: FSize) -> Result<(), CompileError> {
        let v = self.pop()?;
        let x = self.into_owned_xmm(v)?;
        self.masm.cvt_float(to, x, x);
        self.push(fty(to), Loc::Xmm(x));
        Ok(())
    }

    /// `fN.convert_iM_{s,u}`.
    pub(crate) fn convert(&mut self, fs: FSize, size: Size, ext: Ext) -> Result<(), CompileError> {
        let v = self.pop()?;
        let r = self.as_gpr(v)?;
        let x = self.alloc_xmm()?;
        // Registers are allocated before any branch: allocation may spill.
        let t = if (size, ext) == (Size::S64, Ext::Unsigned) { Some(self.alloc_gpr()?) } else { None };
        match (size, ext) {
            (Size::S32, Ext::Signed) => self.masm.cvt_int_to_float(fs, Size::S32, x, r),
            // A u32 is zero-extended in its register: convert it as an i64.
            (Size::S32, Ext::Unsigned) | (Size::S64, Ext::Signed) => self.masm.cvt_int_to_float(fs, Size::S64, x, r),
            (Size::S64, Ext::Unsigned) => {
                let (big, done) = (self.masm.new_label(), self.masm.new_label());
                self.masm.test_rr(Size::S64, r, r);
                self.masm.jcc(Cond::S, big);
                self.masm.cvt_int_to_float(fs, Size::S64, x, r);
                self.masm.jmp(done);
                self.masm.bind(big);
                // Halve with the low bit kept sticky, convert, double.
                let t = t.ok_or(CompileError::Internal("no temporary for u64 conversion"))?;
                self.masm.mov_rr(Size::S64, SCRATCH, r);
                self.masm.shift_ri(Shift::Shr, Size::S64, SCRATCH, 1);
                self.masm.mov_rr(Size::S64, t, r);
                self.masm.alu_ri(Alu::And, Size::S64, t, 1);
                self.masm.alu_rr(Alu::Or, Size::S64, SCRATCH, t);
                self.release_gpr(t);
                self.masm.cvt_int_to_float(fs, Size::S64, x, SCRATCH);
                self.masm.fop_rr(FOp::Add, fs, x, x);
                self.masm.bind(done);
            }
        }
        self.release_gpr(r);
        self.push(fty(fs), Loc::Xmm(x));
        Ok(())
    }

    /// `iM.trunc[_sat]_fN_{s,u}`.
    pub(crate) fn trunc(&mut self, fs: FSize, size: Size, ext: Ext, kind: TruncKind) -> Result<(), CompileError> {
        let v = self.pop()?;
        let x = self.as_xmm(v)?;
        let dst = self.alloc_gpr()?;
        match ext {
            Ext::Signed => self.trunc_signed(fs, size, kind, x, dst),
            Ext::Unsigned => self.trunc_unsigned(fs, size, kind, x, dst),
        }
        self.release_xmm(x);
        self.push(ity(size), Loc::Gpr(dst));
        Ok(())
    }

    /// Compares `x` with the float constant `v` (in `xmm15`).
    fn ucomi_const(&mut self, fs: FSize, x: Xmm, v: f64) {
        self.fconst_scratch(fs, fbits(fs, v));
        self.masm.ucomi(fs, x, XSCRATCH);
    }

    fn trunc_signed(&mut self, fs: FSize, size: Size, kind: TruncKind, x: Xmm, dst: Gpr) {
        let done = self.masm.new_label();
        self.masm.cvt_float_to_int(fs, size, dst, x);
        // The "integer indefinite" result (MIN) is the only one that needs a second look.
        let min = if size == Size::S32 { i32::MIN as u32 as u64 } else { i64::MIN as u64 };
        self.masm.mov_ri64(SCRATCH, min);
        self.masm.alu_rr(Alu::Cmp, size, dst, SCRATCH);
        self.masm.jcc(Cond::Ne, done);
        match kind {
            TruncKind::Checked => {
                self.masm.ucomi(fs, x, x);
                let bad = self.trap_label(TrapCode::BadConversionToInteger);
                self.masm.jcc(Cond::P, bad);
                let overflow = self.trap_label(TrapCode::IntegerOverflow);
                // In range iff x > MIN - 1 (exactly representable in f64 for i32).
                let lower = if size == Size::S32 { i32::MIN as f64 - 1.0 } else { i64::MIN as f64 };
                if size == Size::S32 && fs == FSize::F64 {
                    self.ucomi_const(fs, x, lower);
                    self.masm.jcc(Cond::Be, overflow);
                } else {
                    // f32 cannot hold MIN - 1; MIN itself is the only valid input here.
                    self.ucomi_const(fs, x, if size == Size::S32 { i32::MIN as f64 } else { lower });
                    self.masm.jcc(Cond::B, overflow);
                }
                self.ucomi_const(fs, x, 0.0);
                self.masm.jcc(Cond::Ae, overflow);
            }
            TruncKind::Saturating => {
                let nan = self.masm.new_label();
                self.masm.ucomi(fs, x, x);
                self.masm.jcc(Cond::P, nan);
                self.ucomi_const(fs, x, 0.0);
                self.masm.jcc(Cond::B, done);
                let max = if size == Size::S32 { i32::MAX as u64 } else { i64::MAX as u64 };
                self.masm.mov_ri64(dst, max);
                self.masm.jmp(done);
                self.masm.bind(nan);
                self.masm.zero_r(dst);
            }
        }
        self.masm.bind(done);
    }

    fn trunc_unsigned(&mut self, fs: FSize, size: Size, kind: TruncKind, x: Xmm, dst: Gpr) {
        let done = self.masm.new_label();
        let limit = if size == Size::S32 { 4294967296.0 } else { 18446744073709551616.0 };
        let (low, high) = match kind {
            TruncKind::Checked => {
                let bad = self.trap_label(TrapCode::BadConversionToInteger);
                let overflow = self.trap_label(TrapCode::IntegerOverflow);
                self.masm.ucomi(fs, x, x);
                self.masm.jcc(Cond::P, bad);
                self.ucomi_const(fs, x, -1.0);
                self.masm.jcc(Cond::Be, overflow);
                (overflow, overflow)
            }
            TruncKind::Saturating => {
                let (zero, max) = (self.masm.new_label(), self.masm.new_label());
                self.masm.ucomi(fs, x, x);
                self.masm.jcc(Cond::P, zero);
                self.ucomi_const(fs, x, 0.0);
                self.masm.jcc(Cond::Be, zero);
                (zero, max)
            }
        };
        self.ucomi_const(fs, x, limit);
        self.masm.jcc(Cond::Ae, high);
        match size {
            Size::S32 => {
                self.masm.cvt_float_to_int(fs, Size::S64, dst, x);
                self.masm.mov_rr(Size::S32, dst, dst);
            }
            Size::S64 => {
                let big = self.masm.new_label();
                self.ucomi_const(fs, x, 9223372036854775808.0);
                self.masm.jcc(Cond::Ae, big);
                self.masm.cvt_float_to_int(fs, Size::S64, dst, x);
                self.masm.jmp(done);
                self.masm.bind(big);
                // x - 2^63 fits; add 2^63 back as the top bit.
                self.masm.fmov_rr(XSCRATCH, x);
                self.fconst_sub_2_63(fs);
                self.masm.cvt_float_to_int(fs, Size::S64, dst, XSCRATCH);
                self.masm.mov_ri64(SCRATCH, 1 << 63);
                self.masm.alu_rr(Alu::Xor, Size::S64, dst, SCRATCH);
            }
        }
        self.masm.jmp(done);
        if kind == TruncKind::Saturating {
            self.masm.bind(low);
            self.masm.zero_r(dst);
            self.masm.jmp(done);
            self.masm.bind(high);
            let max = if size == Size::S32 { u32::MAX as u64 } else { u64::MAX };
            self.masm.mov_ri64(dst, max);
        }
        self.masm.bind(done);
    }

    /// `xmm15 -= 2^63` (xmm15 holds a copy of the input).
    fn fconst_sub_2_63(&mut self, fs: FSize) {
        // Build 2^63 in a GPR-backed temporary register without disturbing xmm15.
        let bits = fbits(fs, 9223372036854775808.0);
        self.masm.mov_ri64(SCRATCH, bits);
        // Use the stack scratch slot to hold the constant as a memory operand.
        self.masm.store(Mem::base(RBP, -16), SCRATCH, Width::B64);
        self.masm.fsub_m(fs, XSCRATCH, Mem::base(RBP, -16));
    }
}
