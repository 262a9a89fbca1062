//! Memory, global, table and call operators: everything that addresses the VMContext,
//! linear memory, or another function.
//!
//! Loads and stores use guard pages: `[r15 + addr + offset]` with the static offset as a
//! patchable disp32 (offsets up to `i32::MAX`; larger ones go through `r11`), and the
//! access itself recorded as a `MemoryOutOfBounds` trap site.

use crate::codegen::*;
use crate::masm::*;
use crate::stencil::{Guard, RelocKind, SiteEncoding};
use quickbeam_environ::*;
use quickbeam_microwasm::{CompileError, MemArg};

/// How a memory access's static offset reached the code.
#[derive(Clone, Copy)]
struct Addr {
    mem: Mem,
    /// The address register (held by the operator).
    reg: Gpr,
    /// The body constant of the offset, when it is the access's disp32.
    disp_k: Option<ConstIdx>,
}

const DISP_GUARD: Guard = Guard::Range { lo: 0, hi: i32::MAX as i64 };

impl CodeGen {
    /// Pops an address and forms the memory operand for `memarg`.
    fn address(&mut self, memarg: MemArg) -> Result<Addr, CompileError> {
        let a = self.pop()?;
        let reg = self.as_gpr(a)?;
        if memarg.offset <= i32::MAX as u64 {
            return Ok(Addr { mem: Mem::indexed(MEMBASE, reg, memarg.offset as i32), reg, disp_k: Some(memarg.k) });
        }
        let at = self.masm.mov_ri64(SCRATCH, memarg.offset);
        self.site(Some(memarg.k), at, SiteEncoding::Imm64, Guard::Range { lo: i32::MAX as i64 + 1, hi: u32::MAX as i64 });
        self.masm.alu_rr(Alu::Add, Size::S64, SCRATCH, reg);
        Ok(Addr { mem: Mem::indexed(MEMBASE, SCRATCH, 0), reg, disp_k: None })
    }

    /// Records the access at `at` and its disp32 at `disp`.
    fn access_sites(&mut self, addr: Addr, at: u32, disp: u32) {
        self.mem_trap(at);
        self.site(addr.disp_k, disp, SiteEncoding::Imm32, DISP_GUARD);
    }

    pub(crate) fn load_int(&mut self, memarg: MemArg, ty: ValType, width: Width, ext: Ext) -> Result<(), CompileError> {
        let addr = self.address(memarg)?;
        let dst = if self.is_owned_gpr(addr.reg) { addr.reg } else { self.alloc_gpr()? };
        let (at, disp) = self.masm.load(dst, addr.mem, width, ext, isize_of(ty));
        self.access_sites(addr, at, disp);
        if dst != addr.reg {
            self.release_gpr(addr.reg);
        }
        self.push(ty, Loc::Gpr(dst));
        Ok(())
    }

    pub(crate) fn load_float(&mut self, memarg: MemArg, fs: FSize) -> Result<(), CompileError> {
        let addr = self.address(memarg)?;
        let dst = self.alloc_xmm()?;
        let (at, disp) = self.masm.fload(fs, dst, addr.mem);
        self.access_sites(addr, at, disp);
        self.release_gpr(addr.reg);
        self.push(if fs == FSize::F32 { ValType::F32 } else { ValType::F64 }, Loc::Xmm(dst));
        Ok(())
    }

    pub(crate) fn store_int(&mut self, memarg: MemArg, width: Width) -> Result<(), CompileError> {
        let v = self.pop()?;
        let addr = self.address(memarg)?;
        match v.op {
            Opnd::Const { bits, k }
                if width == Width::B32 || (width == Width::B64 && (bits as i64) == (bits as i64 as i32 as i64)) =>
            {
                let at = self.masm.offset();
                let size = if width == Width::B32 { Size::S32 } else { Size::S64 };
                let imm = self.masm.store_imm32(addr.mem, bits as u32 as i32, size);
                self.access_sites(addr, at, imm - 4);
                let guard = if size == Size::S32 { Guard::Any } else { Guard::Range { lo: i32::MIN as i64, hi: i32::MAX as i64 } };
                self.site(k, imm, SiteEncoding::Imm32, guard);
            }
            Opnd::Const { bits, k } if width == Width::B64 => {
                // Too wide for the imm32 form, which a fitting value would take: through a
                // register, guarded out of imm32 range (I2).
                let vr = self.alloc_gpr()?;
                self.wide_const_to_gpr(vr, bits, k);
                let (at, disp) = self.masm.store(addr.mem, vr, width);
                self.access_sites(addr, at, disp);
                self.release_gpr(vr);
            }
            _ => {
                let vr = self.as_gpr(v)?;
                let (at, disp) = self.masm.store(addr.mem, vr, width);
                self.access_sites(addr, at, disp);
                self.release_gpr(vr);
            }
        }
        self.release_gpr(addr.reg);
        Ok(())
    }

    pub(crate) fn store_float(&mut self, memarg: MemArg, fs: FSize) -> Result<(), CompileError> {
        let v = self.pop()?;
        // The value first: a constant goes to its SSE register through `r11`, which holds
        // the address of an offset past `i32::MAX` once `address` returns.
        let vx = self.as_xmm(v)?;
        let addr = self.address(memarg)?;
        let (at, disp) = self.masm.fstore(fs, addr.mem, vx);
        self.access_sites(addr, at, disp);
        self.release_xmm(vx);
        self.release_gpr(addr.reg);
        Ok(())
    }

    /// `mov r11, [r14 + <offset of kind>]`: a VMContext pointer into `r11`.
    fn vmctx_ptr(&mut self, kind: RelocKind) {
        let (_, disp) = self.masm.load(SCRATCH, Mem::base(VMCTX, 0), Width::B64, Ext::Unsigned, Size::S64);
        self.reloc(disp, kind);
    }

    pub(crate) fn global_get(&mut self, g: GlobalSlot, ty: ValType) -> Result<(), CompileError> {
        self.vmctx_ptr(RelocKind::GlobalOffset(g));
        let m = Mem::base(SCRATCH, 0);
        if ty.is_int() {
            let dst = self.alloc_gpr()?;
            let width = if ty == ValType::I32 { Width::B32 } else { Width::B64 };
            self.masm.load(dst, m, width, Ext::Unsigned, isize_of(ty));
            self.push(ty, Loc::Gpr(dst));
        } else {
            let dst = self.alloc_xmm()?;
            self.masm.fload(fsize(ty), dst, m);
            self.push(ty, Loc::Xmm(dst));
        }
        Ok(())
    }

    pub(crate) fn global_set(&mut self, g: GlobalSlot, ty: ValType) -> Result<(), CompileError> {
        let v = self.pop()?;
        if ty.is_int() {
            let vr = self.as_gpr(v)?;
            self.vmctx_ptr(RelocKind::GlobalOffset(g));
            let width = if ty == ValType::I32 { Width::B32 } else { Width::B64 };
            self.masm.store(Mem::base(SCRATCH, 0), vr, width);
            self.release_gpr(vr);
        } else {
            let vx = self.as_xmm(v)?;
            self.vmctx_ptr(RelocKind::GlobalOffset(g));
            self.masm.fstore(fsize(ty), Mem::base(SCRATCH, 0), vx);
            self.release_xmm(vx);
        }
        Ok(())
    }

    pub(crate) fn memory_size(&mut self, mem: MemorySlot) -> Result<(), CompileError> {
        self.vmctx_ptr(RelocKind::MemoryOffset(mem));
        let dst = self.alloc_gpr()?;
        self.masm.load(dst, Mem::base(SCRATCH, MEMORY_LENGTH as i32), Width::B64, Ext::Unsigned, Size::S64);
        self.masm.shift_ri(Shift::Shr, Size::S64, dst, 16);
        self.push(ValType::I32, Loc::Gpr(dst));
        Ok(())
    }

    pub(crate) fn ref_func(&mut self, f: FuncSlot) -> Result<(), CompileError> {
        let dst = self.alloc_gpr()?;
        let disp = self.masm.lea(dst, Mem::base(VMCTX, 0));
        self.reloc(disp, RelocKind::FuncRefOffset(f));
        self.push(ValType::FuncRef, Loc::Gpr(dst));
        Ok(())
    }

    /// Pops an index, bounds-checks it against table `t`, and leaves the element's
    /// address in the returned (owned) register.
    fn table_elem_addr(&mut self, t: TableSlot) -> Result<Gpr, CompileError> {
        let i = self.pop()?;
        let r = self.into_owned_gpr(i)?;
        self.elem_addr(r, t);
        Ok(r)
    }

    /// Bounds-checks the index in `r` against table `t` (trapping `TableOutOfBounds`) and
    /// turns it into the element's address.
    fn elem_addr(&mut self, r: Gpr, t: TableSlot) {
        self.vmctx_ptr(RelocKind::TableOffset(t));
        self.masm.alu_rm(Alu::Cmp, Size::S64, r, Mem::base(SCRATCH, TABLE_LENGTH as i32));
        let oob = self.trap_label(TrapCode::TableOutOfBounds);
        self.masm.jcc(Cond::Ae, oob);
        self.masm.shift_ri(Shift::Shl, Size::S64, r, 3);
        self.masm.alu_rm(Alu::Add, Size::S64, r, Mem::base(SCRATCH, TABLE_BASE as i32));
    }

    pub(crate) fn table_get(&mut self, t: TableSlot) -> Result<(), CompileError> {
        let ty = self.table_elem_ty(t);
        let r = self.table_elem_addr(t)?;
        self.masm.load(r, Mem::base(r, 0), Width::B64, Ext::Unsigned, Size::S64);
        self.push(ty, Loc::Gpr(r));
        Ok(())
    }

    pub(crate) fn table_set(&mut self, t: TableSlot) -> Result<(), CompileError> {
        let v = self.pop()?;
        let vr = self.as_gpr(v)?;
        let r = self.table_elem_addr(t)?;
        self.masm.store(Mem::base(r, 0), vr, Width::B64);
        self.release_gpr(r);
        self.release_gpr(vr);
        Ok(())
    }

    pub(crate) fn table_size(&mut self, t: TableSlot) -> Result<(), CompileError> {
        self.vmctx_ptr(RelocKind::TableOffset(t));
        let dst = self.alloc_gpr()?;
        self.masm.load(dst, Mem::base(SCRATCH, TABLE_LENGTH as i32), Width::B32, Ext::Unsigned, Size::S32);
        self.push(ValType::I32, Loc::Gpr(dst));
        Ok(())
    }

    /// The stack type of a table element. Both reference types are 64-bit integers to the
    /// code generator, so the exact one does not change code.
    fn table_elem_ty(&self, _t: TableSlot) -> ValType {
        ValType::FuncRef
    }

    /// Calls a builtin with `imms` (module indices by relocation) then `nargs` stack
    /// values as arguments; pushes its result if it has one.
    pub(crate) fn table_builtin(
        &mut self,
        b: Builtin,
        imms: &[RelocKind],
        nargs: usize,
        result: Option<ValType>,
        trap: Option<TrapCode>,
    ) -> Result<(), CompileError> {
        const ARGS: [Gpr; 5] = [RSI, RDX, RCX, R8, R9];
        self.spill_all();
        let mut vals = Vec::with_capacity(nargs);
        for _ in 0..nargs {
            vals.push(self.pop()?);
        }
        vals.reverse();
        let mut regs = ARGS.iter();
        for &kind in imms {
            let r = *regs.next().ok_or(CompileError::Internal("too many builtin arguments"))?;
            let at = self.masm.mov_ri32(r, 0);
            self.reloc(at, kind);
        }
        for v in vals {
            let r = *regs.next().ok_or(CompileError::Internal("too many builtin arguments"))?;
            self.arg_to(r, v);
        }
        self.call_builtin(b, trap);
        if matches!(b, Builtin::MemoryGrow | Builtin::TableGrow) {
            // The store's resource limiter failed (`abi.rs`, "Traps").
            let l = self.trap_label(TrapCode::HostError);
            self.masm.jump_if_high32(RAX, l);
        }
        if let Some(ty) = result {
            self.claim_gpr(RAX);
            if ty == ValType::I32 {
                self.masm.mov_rr(Size::S32, RAX, RAX);
            }
            self.push(ty, Loc::Gpr(RAX));
        }
        Ok(())
    }

    pub(crate) fn call_direct(&mut self, f: FuncSlot, ty: &FuncType) -> Result<(), CompileError> {
        self.spill_for_call(ty);
        self.set_call_rsp(ty)?;
        let at = self.masm.call_rel32();
        self.reloc(at, RelocKind::CallRel32(f));
        self.after_call(ty, false)
    }

    pub(crate) fn call_import(&mut self, f: FuncSlot, ty: &FuncType) -> Result<(), CompileError> {
        self.spill_for_call(ty);
        let disp = self.masm.lea(SCRATCH, Mem::base(VMCTX, 0));
        self.reloc(disp, RelocKind::FuncRefOffset(f));
        self.call_funcref(ty)
    }

    /// Calls the `VMFuncRef` in `r11`.
    fn call_funcref(&mut self, ty: &FuncType) -> Result<(), CompileError> {
        self.masm.load(VMCTX, Mem::base(SCRATCH, FUNCREF_VMCTX as i32), Width::B64, Ext::Unsigned, Size::S64);
        self.set_call_rsp(ty)?;
        self.masm.call_m(Mem::base(SCRATCH, FUNCREF_CODE as i32));
        self.after_call(ty, true)
    }

    pub(crate) fn call_indirect(&mut self, ts: TypeSlot, t: TableSlot, ty: &FuncType) -> Result<(), CompileError> {
        let i = self.pop()?;
        let r = self.into_owned_gpr(i)?;
        self.spill_for_call(ty);
        self.elem_addr(r, t);
        self.masm.load(SCRATCH, Mem::base(r, 0), Width::B64, Ext::Unsigned, Size::S64);
        self.masm.test_rr(Size::S64, SCRATCH, SCRATCH);
        let null = self.trap_label(TrapCode::IndirectCallToNull);
        self.masm.jcc(Cond::E, null);
        // The expected signature id comes from the VMContext, so that the code does not
        // depend on the engine's numbering of signatures (I1).
        let (_, disp) = self.masm.load(r, Mem::base(VMCTX, 0), Width::B32, Ext::Unsigned, Size::S32);
        self.reloc(disp, RelocKind::TypeIdOffset(ts));
        self.masm.cmp_mr32(Mem::base(SCRATCH, FUNCREF_SIG as i32), r);
        self.release_gpr(r);
        let bad = self.trap_label(TrapCode::BadSignature);
        self.masm.jcc(Cond::Ne, bad);
        self.call_funcref(ty)
    }
}
