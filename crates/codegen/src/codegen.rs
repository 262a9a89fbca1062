//! The code generator's state: the virtual value stack, register allocation, labels and
//! their calling conventions, frames, calls, and constant and relocation sites.
//!
//! # The value stack
//! Every Microwasm stack position `p` has a *home*, an 8-byte frame slot (params: their
//! argument-area slot; see [`quickbeam_environ::abi`]). A value lives as a constant, in a
//! register (possibly shared by several positions: `pick` of a register is free), or in
//! its own position's home (`Loc::Home`). Registers are reference-counted: by stack
//! positions and by the operands an operator has popped and still uses.
//!
//! ```text
//!  [rbp + 16 + 8*(A-1-p)]  home of param p        (A = max(#params, #results))
//!  [rbp + 8]               return address
//!  [rbp]                   caller's rbp
//!  [rbp - 8]               vmctx
//!  [rbp - 16]              scratch slot (parallel moves)
//!  [rbp - 24 - 8*k]        home of position #params + k
//!  rsp = rbp - FRAME       (FRAME patched at the end of the function)
//! ```
//!
//! # Labels
//! A label's convention is where each of its `params` values lives on entry. `Else`
//! labels (one predecessor) keep the exact state of their branch. Other labels get a
//! *physical* convention from their first predecessor: registers, each used once, or
//! homes. Later predecessors move their values there (a parallel move through the scratch
//! register `r11`, `xmm15` and the scratch slot).
//!
//! # Invariants
//! - An i32 in a general-purpose register has its upper 32 bits zero.
//! - A constant with a [`ConstIdx`] reaches code only through a constant site, with the
//!   guard its use allows; the code never depends on its value otherwise (I2).
//! - Module entities reach code only through relocations naming slots (I1, I3).
//! - Between operators, every register's count equals the stack positions using it.

use crate::masm::*;
use crate::stencil::*;
use quickbeam_environ::*;
use quickbeam_microwasm::{CompileError, ConstValue, Label as MLabel, LabelKind};

/// Allocatable general-purpose registers, in preference order (`rax`, `rcx`, `rdx` last:
/// division and shifts want them).
const GPRS: [Gpr; 11] = [RBX, RSI, RDI, R8, R9, 10, 12, 13, RAX, RCX, RDX];
/// Allocatable SSE registers (`xmm15` is scratch).
const XMMS: [Xmm; 15] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];

/// Where a stack value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    /// A constant; `k` is its index among the body's constants, `None` for values the
    /// compiler made up (zeroed locals, `ref.null`).
    Const { bits: u64, k: Option<ConstIdx> },
    Gpr(Gpr),
    Xmm(Xmm),
    /// In its own position's home slot.
    Home,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Value {
    pub ty: ValType,
    pub loc: Loc,
    /// For a value in a register: its home holds the same bits (a local `pick` loaded),
    /// so spilling it or branching to a convention that wants it at home costs nothing.
    pub synced: bool,
}

impl Value {
    pub(crate) fn new(ty: ValType, loc: Loc) -> Value {
        Value { ty, loc, synced: false }
    }
}

/// A popped operand: where its bits are now. `Mem` is a (former) home slot that stays
/// valid until the operator pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opnd {
    Const { bits: u64, k: Option<ConstIdx> },
    Gpr(Gpr),
    Xmm(Xmm),
    Mem(Mem),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Popped {
    pub ty: ValType,
    pub op: Opnd,
}

pub(crate) struct LabelState {
    pub dl: Label,
    pub kind: LabelKind,
    pub params: u32,
    pub arity: u32,
    pub conv: Option<Vec<Value>>,
}

/// A frame-size fixup in this function's own code.
#[derive(Clone, Copy)]
enum FrameFixup {
    /// `sub rsp, FRAME - 8` in the prologue.
    SubRsp(u32),
    /// `lea rsp, [rbp - FRAME]` after calls.
    RestoreRsp(u32),
}

/// Locations a parallel move reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MLoc {
    Gpr(Gpr),
    Xmm(Xmm),
    /// A frame slot by its rbp-relative displacement.
    Slot(i32),
}

#[derive(Clone, Copy, Debug)]
enum MSrc {
    Loc(MLoc),
    Const { bits: u64, k: Option<ConstIdx> },
}

const SCRATCH_SLOT: i32 = -16;

pub struct CodeGen {
    pub(crate) masm: MacroAssembler,
    pub(crate) stack: Vec<Value>,
    gpr_refs: [u16; 16],
    xmm_refs: [u16; 16],
    pub(crate) labels: Vec<Option<LabelState>>,
    pub(crate) reachable: bool,
    nparams: u32,
    area: u32,
    results: Vec<ValType>,
    /// The highest position index (minus params) whose home the frame must hold.
    max_local: u32,
    fixups: Vec<FrameFixup>,
    /// Out-of-line trap stubs: (label, code, srcloc).
    traps: Vec<(Label, TrapCode, u32)>,
    pub(crate) relocs: Vec<Reloc>,
    const_sites: Vec<ConstSite>,
    guards: Vec<Guard>,
    srclocs: Vec<(u32, u32)>,
    srcloc: u32,
    mem_traps: Vec<TrapSite>,
    op_ordinal: u32,
    /// A `swap` waiting for the `drop` that follows it (`local.set`), as a depth.
    pending_swap: Option<u32>,
    settings: crate::CodegenSettings,
}

fn internal(what: &'static str) -> CompileError {
    CompileError::Internal(what)
}

pub(crate) fn fsize(ty: ValType) -> FSize {
    if ty == ValType::F64 {
        FSize::F64
    } else {
        FSize::F32
    }
}

pub(crate) fn isize_of(ty: ValType) -> Size {
    if ty == ValType::I32 {
        Size::S32
    } else {
        Size::S64
    }
}

impl CodeGen {
    /// Starts a function of type `ty`: emits the prologue; the params are the initial stack.
    pub fn new(ty: &FuncType) -> CodeGen {
        Self::with_capacity(ty, 64)
    }

    /// Like [`CodeGen::new`], sized for a body of `body_bytes` bytes of Wasm.
    pub fn with_capacity(ty: &FuncType, body_bytes: usize) -> CodeGen {
        Self::with_settings(ty, body_bytes, crate::CodegenSettings::default())
    }

    /// Like [`CodeGen::with_capacity`], generating code for `settings`.
    pub fn with_settings(ty: &FuncType, body_bytes: usize, settings: crate::CodegenSettings) -> CodeGen {
        let mut cg = CodeGen {
            masm: MacroAssembler::with_capacity(body_bytes * 5 + 64),
            stack: Vec::with_capacity(64),
            gpr_refs: [0; 16],
            xmm_refs: [0; 16],
            labels: Vec::new(),
            reachable: true,
            nparams: ty.params().len() as u32,
            area: ty.arg_area_slots() as u32,
            results: ty.results().to_vec(),
            max_local: 0,
            fixups: Vec::new(),
            traps: Vec::new(),
            relocs: Vec::new(),
            const_sites: Vec::new(),
            guards: Vec::new(),
            srclocs: Vec::new(),
            srcloc: 0,
            mem_traps: Vec::new(),
            op_ordinal: 0,
            pending_swap: None,
            settings,
        };
        for &p in ty.params() {
            cg.stack.push(Value::new(p, Loc::Home));
        }
        cg.masm.prologue_enter();
        let at = cg.masm.sub_rsp_fixup();
        cg.fixups.push(FrameFixup::SubRsp(at));
        let overflow = cg.trap_label(TrapCode::StackOverflow);
        cg.masm.stack_check(VMCTX_STACK_LIMIT as i32, overflow);
        cg.interruption_checks();
        cg.masm.load(MEMBASE, Mem::base(VMCTX, VMCTX_MEMORY0_BASE as i32), Width::B64, Ext::Unsigned, Size::S64);
        cg
    }

    /// The checks of a function entry or loop header that the settings ask for: the
    /// epoch against the store's deadline, and one unit of fuel (`abi.rs`). Uses only
    /// `r11` and the flags; nothing when both settings are off.
    fn interruption_checks(&mut self) {
        if self.settings.epoch_interruption {
            let l = self.trap_label(TrapCode::Interrupt);
            self.masm.epoch_check(VMCTX_EPOCH_PTR as i32, VMCTX_EPOCH_DEADLINE as i32, l);
        }
        if self.settings.consume_fuel {
            let l = self.trap_label(TrapCode::OutOfFuel);
            self.masm.fuel_check(VMCTX_FUEL_PTR as i32, l);
        }
    }

    /// Called before each Wasm operator's code; records its ordinal (see
    /// [`Stencil::srclocs`]). The byte offset is ignored on purpose.
    pub(crate) fn set_srcloc(&mut self, _rel: u32) {
        // The translator emits `swap` only right before `drop`; be safe at boundaries.
        let _ = self.flush_swap();
        #[cfg(debug_assertions)]
        self.check_refs();
        let rel = self.op_ordinal;
        self.op_ordinal += 1;
        self.srcloc = rel;
        let at = self.masm.offset();
        match self.srclocs.last_mut() {
            Some(last) if last.0 == at => last.1 = rel,
            _ => self.srclocs.push((at, rel)),
        }
    }

    /// Checks that every register's count equals its stack uses (between operators).
    #[cfg(debug_assertions)]
    fn check_refs(&self) {
        let mut g = [0u16; 16];
        let mut x = [0u16; 16];
        for v in &self.stack {
            match v.loc {
                Loc::Gpr(r) => g[r as usize] += 1,
                Loc::Xmm(r) => x[r as usize] += 1,
                _ => {}
            }
        }
        assert_eq!(g, self.gpr_refs, "gpr counts after operator #{}", self.op_ordinal);
        assert_eq!(x, self.xmm_refs, "xmm counts after operator #{}", self.op_ordinal);
    }

    /// Finishes the function: trap stubs, frame size, and the stencil.
    pub fn finish(mut self, num_consts: usize) -> Result<Stencil, CompileError> {
        self.flush_swap()?;
        let mut trap_sites = Vec::with_capacity(self.traps.len());
        let traps = std::mem::take(&mut self.traps);
        for (l, code, src) in traps {
            self.masm.bind(l);
            let at = self.masm.ud2();
            trap_sites.push(TrapSite { offset: at, code });
            self.srclocs.push((at, src));
        }
        let frame = (16 + 8 * (self.max_local as i32 + 1) + 15) & !15;
        for f in std::mem::take(&mut self.fixups) {
            match f {
                FrameFixup::SubRsp(at) => self.masm.patch32(at, frame - 8),
                FrameFixup::RestoreRsp(at) => self.masm.patch32(at, -frame),
            }
        }
        let mut code = self.masm.finish().map_err(|_| internal("unresolved label"))?;
        // A stencil holds no values at its sites: finalize writes them (I1).
        for s in &self.const_sites {
            code[s.offset as usize..s.offset as usize + s.encoding.width()].fill(0);
        }
        for r in &self.relocs {
            code[r.offset as usize..r.offset as usize + 4].fill(0);
        }
        let mut guards = self.guards;
        guards.resize(num_consts, Guard::Any);
        // Memory trap sites are recorded as they are emitted; keep the list sorted.
        trap_sites.extend(self.mem_traps.iter().copied());
        trap_sites.sort_by_key(|t| t.offset);
        Ok(Stencil { code, relocs: self.relocs, const_sites: self.const_sites, guards, trap_sites, srclocs: self.srclocs })
    }

    // ---- sites ------------------------------------------------------------------------

    /// Records that constant `k` (if it is a body constant) was written at `offset`.
    pub(crate) fn site(&mut self, k: Option<ConstIdx>, offset: u32, encoding: SiteEncoding, guard: Guard) {
        if let Some(k) = k {
            self.const_sites.push(ConstSite { offset, k, encoding });
            self.pin(k, guard);
        }
    }

    /// Narrows constant `k`'s guard.
    pub(crate) fn pin(&mut self, k: ConstIdx, guard: Guard) {
        if self.guards.len() <= k.index() {
            self.guards.resize(k.index() + 1, Guard::Any);
        }
        self.guards[k.index()] = self.guards[k.index()].meet(guard);
    }

    pub(crate) fn reloc(&mut self, offset: u32, kind: RelocKind) {
        self.relocs.push(Reloc { offset, kind });
    }

    /// A fresh out-of-line `ud2` stub for `code` at the current Wasm operator.
    pub(crate) fn trap_label(&mut self, code: TrapCode) -> Label {
        let l = self.masm.new_label();
        self.traps.push((l, code, self.srcloc));
        l
    }

    /// Records a memory access instruction as a trap site.
    pub(crate) fn mem_trap(&mut self, at: u32) {
        self.mem_traps.push(TrapSite { offset: at, code: TrapCode::MemoryOutOfBounds });
    }

    // ---- homes and frame -----------------------------------------------------------------

    /// The rbp-relative displacement of position `p`'s home.
    pub(crate) fn home_disp(&mut self, p: u32) -> i32 {
        if p < self.nparams {
            16 + 8 * (self.area - 1 - p) as i32
        } else {
            let k = p - self.nparams;
            self.max_local = self.max_local.max(k);
            -24 - 8 * k as i32
        }
    }

    pub(crate) fn home(&mut self, p: u32) -> Mem {
        Mem::base(RBP, self.home_disp(p))
    }

    /// `lea rsp, [rbp - FRAME]`.
    pub(crate) fn restore_rsp(&mut self) {
        let at = self.masm.restore_rsp_fixup();
        self.fixups.push(FrameFixup::RestoreRsp(at));
    }

    // ---- registers -------------------------------------------------------------------------

    fn retain(&mut self, loc: Loc) {
        match loc {
            Loc::Gpr(r) => self.gpr_refs[r as usize] += 1,
            Loc::Xmm(x) => self.xmm_refs[x as usize] += 1,
            _ => {}
        }
    }

    /// Drops one reference held by the current operator.
    pub(crate) fn release(&mut self, op: Opnd) {
        match op {
            Opnd::Gpr(r) => self.gpr_refs[r as usize] -= 1,
            Opnd::Xmm(x) => self.xmm_refs[x as usize] -= 1,
            _ => {}
        }
    }

    /// Whether the current operator holds the only reference to `r`.
    pub(crate) fn is_owned_gpr(&self, r: Gpr) -> bool {
        self.gpr_refs[r as usize] == 1
    }

    pub(crate) fn release_gpr(&mut self, r: Gpr) {
        self.gpr_refs[r as usize] -= 1;
    }

    pub(crate) fn release_xmm(&mut self, x: Xmm) {
        self.xmm_refs[x as usize] -= 1;
    }

    /// Takes register `r` for the current operator (it must be free).
    pub(crate) fn claim_gpr(&mut self, r: Gpr) {
        debug_assert_eq!(self.gpr_refs[r as usize], 0);
        self.gpr_refs[r as usize] = 1;
    }

    /// A free general-purpose register, owned by the current operator; spills if needed.
    pub(crate) fn alloc_gpr(&mut self) -> Result<Gpr, CompileError> {
        if let Some(&r) = GPRS.iter().find(|&&r| self.gpr_refs[r as usize] == 0) {
            self.gpr_refs[r as usize] = 1;
            return Ok(r);
        }
        // Victims: first registers whose every user is synced (free to drop), oldest first.
        let mut dirty = 0u16;
        for v in &self.stack {
            if let (Loc::Gpr(r), false) = (v.loc, v.synced) {
                dirty |= 1 << r;
            }
        }
        for synced_only in [true, false] {
            for i in 0..self.stack.len() {
                if let Loc::Gpr(r) = self.stack[i].loc {
                    if synced_only && dirty & (1 << r) != 0 {
                        continue;
                    }
                    self.spill_reg(Loc::Gpr(r));
                    if self.gpr_refs[r as usize] == 0 {
                        self.gpr_refs[r as usize] = 1;
                        return Ok(r);
                    }
                }
            }
        }
        Err(internal("out of general-purpose registers"))
    }

    /// A free SSE register, owned by the current operator; spills if needed.
    pub(crate) fn alloc_xmm(&mut self) -> Result<Xmm, CompileError> {
        if let Some(&x) = XMMS.iter().find(|&&x| self.xmm_refs[x as usize] == 0) {
            self.xmm_refs[x as usize] = 1;
            return Ok(x);
        }
        for i in 0..self.stack.len() {
            if let Loc::Xmm(x) = self.stack[i].loc {
                self.spill_reg(Loc::Xmm(x));
                if self.xmm_refs[x as usize] == 0 {
                    self.xmm_refs[x as usize] = 1;
                    return Ok(x);
                }
            }
        }
        Err(internal("out of SSE registers"))
    }

    /// Stores every stack position that uses register `reg` to its home.
    fn spill_reg(&mut self, reg: Loc) {
        for p in 0..self.stack.len() {
            if self.stack[p].loc == reg {
                let ty = self.stack[p].ty;
                if !self.stack[p].synced {
                    let m = self.home(p as u32);
                    self.store_loc(ty, reg, m);
                }
                self.stack[p].loc = Loc::Home;
                self.stack[p].synced = false;
                self.release(match reg {
                    Loc::Gpr(r) => Opnd::Gpr(r),
                    Loc::Xmm(x) => Opnd::Xmm(x),
                    _ => unreachable!("spill_reg takes registers"),
                });
            }
        }
    }

    /// Stores a register's full 8 bytes to a slot.
    fn store_loc(&mut self, ty: ValType, reg: Loc, m: Mem) {
        match reg {
            Loc::Gpr(r) => {
                self.masm.store(m, r, Width::B64);
            }
            Loc::Xmm(x) => {
                self.masm.fstore(fsize(ty), m, x);
            }
            _ => {}
        }
        let _ = ty;
    }

    /// Moves stack users of each of `regs` elsewhere (never into another of `regs`) so
    /// the operator can claim them.
    pub(crate) fn evict_gprs(&mut self, regs: &[Gpr]) -> Result<(), CompileError> {
        for &r in regs {
            self.evict_gpr(r, regs)?;
        }
        Ok(())
    }

    fn evict_gpr(&mut self, r: Gpr, keep_free: &[Gpr]) -> Result<(), CompileError> {
        if self.gpr_refs[r as usize] == 0 {
            return Ok(());
        }
        if let Some(&n) = GPRS.iter().find(|&&n| !keep_free.contains(&n) && self.gpr_refs[n as usize] == 0) {
            self.masm.mov_rr(Size::S64, n, r);
            for v in self.stack.iter_mut() {
                if v.loc == Loc::Gpr(r) {
                    v.loc = Loc::Gpr(n);
                }
            }
            self.gpr_refs[n as usize] = self.gpr_refs[r as usize];
            self.gpr_refs[r as usize] = 0;
        } else {
            self.spill_reg(Loc::Gpr(r));
        }
        if self.gpr_refs[r as usize] != 0 {
            return Err(internal("evicted register still held by the operator"));
        }
        Ok(())
    }

    /// Spills every register-held stack value to its home (before calls). Registers the
    /// operator holds keep their values and its references.
    pub(crate) fn spill_all(&mut self) {
        for p in 0..self.stack.len() {
            let v = self.stack[p];
            let (reg, op) = match v.loc {
                Loc::Gpr(r) => (v.loc, Opnd::Gpr(r)),
                Loc::Xmm(x) => (v.loc, Opnd::Xmm(x)),
                _ => continue,
            };
            if !v.synced {
                let m = self.home(p as u32);
                self.store_loc(v.ty, reg, m);
            }
            self.stack[p] = Value::new(v.ty, Loc::Home);
            self.release(op);
        }
    }

    /// Writes every constant among the top `n` values to its home (call arguments).
    pub(crate) fn spill_top_consts(&mut self, n: usize) {
        let h = self.stack.len();
        for p in h - n..h {
            if let Loc::Const { bits, k } = self.stack[p].loc {
                let ty = self.stack[p].ty;
                let d = self.home_disp(p as u32);
                self.emit_move(ty, MSrc::Const { bits, k }, MLoc::Slot(d));
                self.stack[p].loc = Loc::Home;
            }
        }
    }

    // ---- the stack ---------------------------------------------------------------------

    pub(crate) fn push(&mut self, ty: ValType, loc: Loc) {
        if self.pending_swap.is_some() {
            // Only push-only operators get here (every pop refuses a pending swap).
            let _ = self.flush_swap();
        }
        // The operator's reference becomes the stack's.
        self.stack.push(Value::new(ty, loc));
    }

    pub(crate) fn push_const(&mut self, v: ConstValue, k: Option<ConstIdx>) {
        self.stack.push(Value::new(v.ty(), Loc::Const { bits: v.bits(), k }));
    }

    pub(crate) fn pop(&mut self) -> Result<Popped, CompileError> {
        if self.pending_swap.is_some() {
            return Err(internal("swap not followed by drop"));
        }
        let p = self.stack.len().checked_sub(1).ok_or(internal("pop from an empty stack"))?;
        let v = self.stack.pop().ok_or(internal("pop from an empty stack"))?;
        let op = match v.loc {
            Loc::Const { bits, k } => Opnd::Const { bits, k },
            Loc::Gpr(r) => Opnd::Gpr(r),
            Loc::Xmm(x) => Opnd::Xmm(x),
            Loc::Home => Opnd::Mem(self.home(p as u32)),
        };
        Ok(Popped { ty: v.ty, op })
    }

    pub(crate) fn peek(&self, depth: usize) -> Result<Value, CompileError> {
        let h = self.stack.len();
        if depth >= h {
            return Err(internal("stack underflow"));
        }
        Ok(self.stack[h - 1 - depth])
    }

    pub(crate) fn pick(&mut self, depth: u32) -> Result<(), CompileError> {
        let h = self.stack.len();
        let p = h.checked_sub(1 + depth as usize).ok_or(internal("pick below the stack"))?;
        let v = self.stack[p];
        let loc = match v.loc {
            Loc::Home => {
                // Load once and let both positions share the register.
                let m = self.home(p as u32);
                let loc = if v.ty.is_int() {
                    let r = self.alloc_gpr()?;
                    self.load_to_gpr(v.ty, r, m);
                    Loc::Gpr(r)
                } else {
                    let x = self.alloc_xmm()?;
                    self.masm.fload(fsize(v.ty), x, m);
                    Loc::Xmm(x)
                };
                self.stack[p].loc = loc;
                self.stack[p].synced = true;
                self.retain(loc);
                loc
            }
            loc => {
                self.retain(loc);
                loc
            }
        };
        self.stack.push(Value::new(v.ty, loc));
        Ok(())
    }

    /// `swap`: deferred to the next operator, so that `swap; drop` (`local.set`) moves
    /// the top value into the local without saving the value it overwrites.
    pub(crate) fn swap_deferred(&mut self, depth: u32) -> Result<(), CompileError> {
        self.flush_swap()?;
        self.pending_swap = Some(depth);
        Ok(())
    }

    /// Performs a deferred `swap` (any operator but `drop` calls this first).
    #[inline]
    pub(crate) fn flush_swap(&mut self) -> Result<(), CompileError> {
        match self.pending_swap {
            Some(_) => self.flush_swap_slow(),
            None => Ok(()),
        }
    }

    #[cold]
    fn flush_swap_slow(&mut self) -> Result<(), CompileError> {
        match self.pending_swap.take() {
            Some(depth) => self.swap(depth),
            None => Ok(()),
        }
    }

    /// `drop`, fused with a deferred `swap`: the top value replaces position `p`.
    pub(crate) fn drop_after_swap(&mut self) -> Result<(), CompileError> {
        let Some(depth) = self.pending_swap.take() else {
            return self.drop_top();
        };
        let h = self.stack.len();
        let t = h - 1;
        let p = h.checked_sub(1 + depth as usize).ok_or(internal("swap below the stack"))?;
        let (vt, vp) = (self.stack[t], self.stack[p]);
        if vt.loc == Loc::Home {
            let (ht, hp) = (self.home_disp(t as u32), self.home_disp(p as u32));
            self.copy_slot(ht, hp);
        }
        self.release(match vp.loc {
            Loc::Gpr(r) => Opnd::Gpr(r),
            Loc::Xmm(x) => Opnd::Xmm(x),
            _ => Opnd::Const { bits: 0, k: None },
        });
        self.stack[p] = Value { synced: false, ..vt };
        self.stack.pop();
        Ok(())
    }

    pub(crate) fn swap(&mut self, depth: u32) -> Result<(), CompileError> {
        let h = self.stack.len();
        let t = h - 1;
        let p = h.checked_sub(1 + depth as usize).ok_or(internal("swap below the stack"))?;
        let (vt, vp) = (self.stack[t], self.stack[p]);
        let (ht, hp) = (self.home_disp(t as u32), self.home_disp(p as u32));
        match (vt.loc, vp.loc) {
            (Loc::Home, Loc::Home) => {
                self.masm.load(SCRATCH, Mem::base(RBP, ht), Width::B64, Ext::Unsigned, Size::S64);
                self.masm.fload(FSize::F64, XSCRATCH, Mem::base(RBP, hp));
                self.masm.store(Mem::base(RBP, hp), SCRATCH, Width::B64);
                self.masm.fstore(FSize::F64, Mem::base(RBP, ht), XSCRATCH);
            }
            (Loc::Home, _) => self.copy_slot(ht, hp),
            (_, Loc::Home) => self.copy_slot(hp, ht),
            _ => {}
        }
        self.stack[t] = Value { synced: false, ..vp };
        self.stack[p] = Value { synced: false, ..vt };
        Ok(())
    }

    fn copy_slot(&mut self, from: i32, to: i32) {
        self.masm.load(SCRATCH, Mem::base(RBP, from), Width::B64, Ext::Unsigned, Size::S64);
        self.masm.store(Mem::base(RBP, to), SCRATCH, Width::B64);
    }

    pub(crate) fn drop_top(&mut self) -> Result<(), CompileError> {
        let v = self.pop()?;
        self.release(v.op);
        Ok(())
    }

    // ---- operands into registers -----------------------------------------------------------

    fn load_to_gpr(&mut self, ty: ValType, r: Gpr, m: Mem) {
        if ty == ValType::I32 || ty == ValType::F32 {
            self.masm.load(r, m, Width::B32, Ext::Unsigned, Size::S32);
        } else {
            self.masm.load(r, m, Width::B64, Ext::Unsigned, Size::S64);
        }
    }

    /// Writes constant `bits` of type `ty` into `r`, through a site if it is a body constant.
    pub(crate) fn const_to_gpr(&mut self, ty: ValType, r: Gpr, bits: u64, k: Option<ConstIdx>) {
        let wide = !(ty == ValType::I32 || ty == ValType::F32);
        match (wide, k) {
            (false, Some(_)) => {
                let at = self.masm.mov_ri32(r, bits as u32);
                self.site(k, at, SiteEncoding::Imm32, Guard::Any);
            }
            (true, Some(_)) => {
                let at = self.masm.mov_ri64(r, bits);
                self.site(k, at, SiteEncoding::Imm64, Guard::Any);
            }
            (_, None) if bits == 0 => self.masm.zero_r(r),
            (_, None) if bits <= u32::MAX as u64 => {
                self.masm.mov_ri32(r, bits as u32);
            }
            (_, None) => {
                self.masm.mov_ri64(r, bits);
            }
        }
    }

    /// Writes an i64 constant that an imm32 operand cannot hold (`bits` outside
    /// `i32::MIN..=i32::MAX`) into `r`, in the encoding `const_to_gpr` picks for it: a
    /// zero-extending imm32 for `2^31..2^32`, an imm64 otherwise. The guard keeps a body
    /// constant in that encoding and out of imm32 range, where the operator would take its
    /// imm32 form (I2).
    pub(crate) fn wide_const_to_gpr(&mut self, r: Gpr, bits: u64, k: Option<ConstIdx>) {
        const U32: Guard = Guard::Range { lo: i32::MAX as i64 + 1, hi: u32::MAX as i64 };
        const ABOVE_U32: Guard = Guard::Range { lo: u32::MAX as i64 + 1, hi: i64::MAX };
        const BELOW_I32: Guard = Guard::Range { lo: i64::MIN, hi: i32::MIN as i64 - 1 };
        debug_assert!(bits as i64 != bits as i64 as i32 as i64, "an imm32 holds {bits:#x}");
        let v = bits as i64;
        if U32.accepts(bits) {
            let at = self.masm.mov_ri32(r, bits as u32);
            self.site(k, at, SiteEncoding::Imm32, U32);
        } else {
            let at = self.masm.mov_ri64(r, bits);
            self.site(k, at, SiteEncoding::Imm64, if v < 0 { BELOW_I32 } else { ABOVE_U32 });
        }
    }

    /// A register holding the operand that the operator may overwrite (owned).
    pub(crate) fn into_owned_gpr(&mut self, p: Popped) -> Result<Gpr, CompileError> {
        Ok(match p.op {
            Opnd::Gpr(r) if self.gpr_refs[r as usize] == 1 => r,
            Opnd::Gpr(r) => {
                let n = self.alloc_gpr()?;
                self.masm.mov_rr(Size::S64, n, r);
                self.release_gpr(r);
                n
            }
            Opnd::Mem(m) => {
                let n = self.alloc_gpr()?;
                self.load_to_gpr(p.ty, n, m);
                n
            }
            Opnd::Const { bits, k } => {
                let n = self.alloc_gpr()?;
                self.const_to_gpr(p.ty, n, bits, k);
                n
            }
            Opnd::Xmm(x) => {
                let n = self.alloc_gpr()?;
                self.masm.mov_rx(fsize(p.ty), n, x);
                self.release_xmm(x);
                n
            }
        })
    }

    /// A register holding the operand, possibly shared: read it, don't write it. The
    /// operator releases it with [`CodeGen::release_gpr`].
    pub(crate) fn as_gpr(&mut self, p: Popped) -> Result<Gpr, CompileError> {
        match p.op {
            Opnd::Gpr(r) => Ok(r),
            _ => self.into_owned_gpr(p),
        }
    }

    /// An SSE register holding the operand that the operator may overwrite (owned).
    pub(crate) fn into_owned_xmm(&mut self, p: Popped) -> Result<Xmm, CompileError> {
        Ok(match p.op {
            Opnd::Xmm(x) if self.xmm_refs[x as usize] == 1 => x,
            Opnd::Xmm(x) => {
                let n = self.alloc_xmm()?;
                self.masm.fmov_rr(n, x);
                self.release_xmm(x);
                n
            }
            Opnd::Mem(m) => {
                let n = self.alloc_xmm()?;
                self.masm.fload(fsize(p.ty), n, m);
                n
            }
            Opnd::Const { bits, k } => {
                let n = self.alloc_xmm()?;
                self.const_to_xmm(p.ty, n, bits, k);
                n
            }
            Opnd::Gpr(r) => {
                let n = self.alloc_xmm()?;
                self.masm.mov_xr(fsize(p.ty), n, r);
                self.release_gpr(r);
                n
            }
        })
    }

    /// An SSE register holding the operand, possibly shared (read-only).
    pub(crate) fn as_xmm(&mut self, p: Popped) -> Result<Xmm, CompileError> {
        match p.op {
            Opnd::Xmm(x) => Ok(x),
            _ => self.into_owned_xmm(p),
        }
    }

    pub(crate) fn const_to_xmm(&mut self, ty: ValType, x: Xmm, bits: u64, k: Option<ConstIdx>) {
        if k.is_none() && bits == 0 {
            self.masm.xorps(x, x);
            return;
        }
        let fs = fsize(ty);
        self.const_to_gpr(if fs == FSize::F32 { ValType::F32 } else { ValType::F64 }, SCRATCH, bits, k);
        self.masm.mov_xr(fs, x, SCRATCH);
    }

    /// Loads a compiler constant (not a body constant) into `xmm15`.
    pub(crate) fn fconst_scratch(&mut self, fs: FSize, bits: u64) {
        match fs {
            FSize::F32 => {
                self.masm.mov_ri32(SCRATCH, bits as u32);
            }
            FSize::F64 => {
                self.masm.mov_ri64(SCRATCH, bits);
            }
        }
        self.masm.mov_xr(fs, XSCRATCH, SCRATCH);
    }

    // ---- parallel moves --------------------------------------------------------------------

    fn value_src(&mut self, p: u32, v: Value) -> MSrc {
        match v.loc {
            Loc::Const { bits, k } => MSrc::Const { bits, k },
            Loc::Gpr(r) => MSrc::Loc(MLoc::Gpr(r)),
            Loc::Xmm(x) => MSrc::Loc(MLoc::Xmm(x)),
            Loc::Home => MSrc::Loc(MLoc::Slot(self.home_disp(p))),
        }
    }

    fn value_dst(&mut self, p: u32, v: Value) -> Option<MLoc> {
        match v.loc {
            Loc::Gpr(r) => Some(MLoc::Gpr(r)),
            Loc::Xmm(x) => Some(MLoc::Xmm(x)),
            Loc::Home => Some(MLoc::Slot(self.home_disp(p))),
            Loc::Const { .. } => None,
        }
    }

    /// Emits one move of a value of type `ty`.
    fn emit_move(&mut self, ty: ValType, src: MSrc, dst: MLoc) {
        match (src, dst) {
            (MSrc::Loc(s), d) if s == d => {}
            (MSrc::Loc(MLoc::Gpr(s)), MLoc::Gpr(d)) => self.masm.mov_rr(Size::S64, d, s),
            (MSrc::Loc(MLoc::Xmm(s)), MLoc::Xmm(d)) => self.masm.fmov_rr(d, s),
            (MSrc::Loc(MLoc::Gpr(s)), MLoc::Slot(d)) => {
                self.masm.store(Mem::base(RBP, d), s, Width::B64);
            }
            (MSrc::Loc(MLoc::Xmm(s)), MLoc::Slot(d)) => {
                self.masm.fstore(FSize::F64, Mem::base(RBP, d), s);
            }
            (MSrc::Loc(MLoc::Slot(s)), MLoc::Gpr(d)) => self.load_to_gpr(ty, d, Mem::base(RBP, s)),
            (MSrc::Loc(MLoc::Slot(s)), MLoc::Xmm(d)) => {
                self.masm.fload(fsize(ty), d, Mem::base(RBP, s));
            }
            (MSrc::Loc(MLoc::Slot(s)), MLoc::Slot(d)) => self.copy_slot(s, d),
            (MSrc::Const { bits, k }, MLoc::Gpr(d)) => self.const_to_gpr(ty, d, bits, k),
            (MSrc::Const { bits, k }, MLoc::Xmm(d)) => self.const_to_xmm(ty, d, bits, k),
            (MSrc::Const { bits, k }, MLoc::Slot(d)) => {
                if ty == ValType::I32 || ty == ValType::F32 {
                    let at = self.masm.store_imm32(Mem::base(RBP, d), bits as u32 as i32, Size::S32);
                    self.site(k, at, SiteEncoding::Imm32, Guard::Any);
                } else {
                    self.const_to_gpr(ty, SCRATCH, bits, k);
                    self.masm.store(Mem::base(RBP, d), SCRATCH, Width::B64);
                }
            }
            (MSrc::Loc(MLoc::Gpr(_)), MLoc::Xmm(_)) | (MSrc::Loc(MLoc::Xmm(_)), MLoc::Gpr(_)) => {
                unreachable!("moves never cross register classes: a value's type fixes its class")
            }
        }
    }

    /// Emits the parallel move `dst[i] := src[i]` (no register allocation, so it may run
    /// on a conditional branch's taken path).
    fn parallel_move(&mut self, mut moves: Vec<(ValType, MSrc, MLoc)>) {
        moves.retain(|(_, s, d)| !matches!(s, MSrc::Loc(l) if l == d));
        // Constants last: they read nothing another move writes.
        let mut consts: Vec<(ValType, MSrc, MLoc)> = Vec::new();
        moves.retain(|m| {
            if matches!(m.1, MSrc::Const { .. }) {
                consts.push(*m);
                false
            } else {
                true
            }
        });
        while !moves.is_empty() {
            let ready = (0..moves.len()).find(|&i| {
                let d = moves[i].2;
                !moves.iter().enumerate().any(|(j, m)| j != i && matches!(m.1, MSrc::Loc(l) if l == d))
            });
            match ready {
                Some(i) => {
                    let (ty, s, d) = moves.remove(i);
                    self.emit_move(ty, s, d);
                }
                None => {
                    // A cycle: park one source in the scratch slot.
                    let (ty, s, _) = moves[0];
                    self.emit_move(ty, s, MLoc::Slot(SCRATCH_SLOT));
                    moves[0].1 = MSrc::Loc(MLoc::Slot(SCRATCH_SLOT));
                }
            }
        }
        for (ty, s, d) in consts {
            self.emit_move(ty, s, d);
        }
    }

    // ---- labels --------------------------------------------------------------------------------

    pub(crate) fn declare(&mut self, label: MLabel, kind: LabelKind, params: u32, arity: u32) {
        let i = label.0 as usize;
        if self.labels.len() <= i {
            self.labels.resize_with(i + 1, || None);
        }
        let dl = self.masm.new_label();
        self.labels[i] = Some(LabelState { dl, kind, params, arity, conv: None });
    }

    pub(crate) fn label(&mut self, label: MLabel) -> Result<&mut LabelState, CompileError> {
        self.labels
            .get_mut(label.0 as usize)
            .and_then(|l| l.as_mut())
            .ok_or(internal("branch to an undeclared label"))
    }



    /// Plans a branch to `label` from the current state: fixes the label's convention if
    /// this is its first predecessor, and returns the moves that put the label's arguments
    /// there (no-ops left out). Emits nothing.
    fn plan_branch(&mut self, label: MLabel) -> Result<(Label, Vec<(ValType, MSrc, MLoc)>), CompileError> {
        if self.pending_swap.is_some() {
            return Err(internal("swap not followed by drop"));
        }
        let (params, arity, kind, dl, conv) = {
            let l = self.label(label)?;
            (l.params, l.arity, l.kind, l.dl, l.conv.take())
        };
        let h = self.stack.len() as u32;
        if h < params {
            return Err(internal("branch with too few values"));
        }
        let base = params - arity;
        // Stack position of the label's i-th argument.
        let arg_pos = |i: u32| if i < base { i } else { h - arity + (i - base) };
        let conv = match conv {
            Some(c) => c,
            None if kind == LabelKind::Else => (0..params).map(|i| self.stack[arg_pos(i) as usize]).collect(),
            None => {
                let mut used_g = 0u16;
                let mut used_x = 0u16;
                (0..params)
                    .map(|i| {
                        let v = self.stack[arg_pos(i) as usize];
                        let loc = match v.loc {
                            Loc::Gpr(r) if used_g & (1 << r) == 0 => {
                                used_g |= 1 << r;
                                v.loc
                            }
                            Loc::Xmm(x) if used_x & (1 << x) == 0 => {
                                used_x |= 1 << x;
                                v.loc
                            }
                            _ => Loc::Home,
                        };
                        Value::new(v.ty, loc)
                    })
                    .collect()
            }
        };
        let mut moves = Vec::new();
        let mut result = Ok(());
        for i in 0..params {
            let p = arg_pos(i);
            let v = self.stack[p as usize];
            let c = conv[i as usize];
            // Fast path: already in place.
            if v.loc == c.loc && (p == i || !matches!(v.loc, Loc::Home)) {
                continue;
            }
            if v.synced && p == i && c.loc == Loc::Home {
                continue;
            }
            match self.value_dst(i, c) {
                Some(dst) => {
                    let src = self.value_src(p, v);
                    if !matches!(src, MSrc::Loc(l) if l == dst) {
                        moves.push((v.ty, src, dst));
                    }
                }
                None => result = Err(internal("virtual convention does not match its predecessor")),
            }
        }
        self.label(label)?.conv = Some(conv);
        result.map(|()| (dl, moves))
    }

    /// Moves the label's arguments into its convention. Emits no jump.
    fn move_to_label(&mut self, label: MLabel) -> Result<Label, CompileError> {
        let (dl, moves) = self.plan_branch(label)?;
        self.parallel_move(moves);
        Ok(dl)
    }

    /// Unconditional branch.
    pub(crate) fn br(&mut self, label: MLabel) -> Result<(), CompileError> {
        let dl = self.move_to_label(label)?;
        self.masm.jmp(dl);
        self.set_unreachable();
        Ok(())
    }

    /// Branch if `cond` holds (flags already set by the caller).
    pub(crate) fn br_cond(&mut self, cond: Cond, label: MLabel) -> Result<(), CompileError> {
        let (dl, moves) = self.plan_branch(label)?;
        if moves.is_empty() {
            self.masm.jcc(cond, dl);
        } else {
            let skip = self.masm.new_label();
            self.masm.jcc(cond.negate(), skip);
            self.parallel_move(moves);
            self.masm.jmp(dl);
            self.masm.bind(skip);
        }
        Ok(())
    }

    pub(crate) fn set_unreachable(&mut self) {
        self.reachable = false;
        self.stack.clear();
        self.gpr_refs = [0; 16];
        self.xmm_refs = [0; 16];
    }

    /// Makes `conv` the current state.
    fn adopt(&mut self, conv: &[Value]) {
        self.stack.clear();
        self.gpr_refs = [0; 16];
        self.xmm_refs = [0; 16];
        for &v in conv {
            self.retain(v.loc);
            self.stack.push(v);
        }
        self.reachable = true;
    }

    pub(crate) fn bind(&mut self, label: MLabel) -> Result<(), CompileError> {
        let (kind, dl, params, has_conv) = {
            let l = self.label(label)?;
            (l.kind, l.dl, l.params, l.conv.is_some())
        };
        if self.reachable {
            if has_conv || kind == LabelKind::Loop {
                if self.stack.len() as u32 != params {
                    return Err(internal("label reached with the wrong stack height"));
                }
                self.move_to_label(label)?;
                self.adopt_label(label)?;
            }
        } else if has_conv {
            self.adopt_label(label)?;
        }
        self.masm.bind(dl);
        if kind == LabelKind::Loop && self.reachable {
            self.interruption_checks();
        }
        Ok(())
    }

    /// Makes the label's convention the current state.
    fn adopt_label(&mut self, label: MLabel) -> Result<(), CompileError> {
        let conv = self.label(label)?.conv.take().ok_or(internal("label without convention"))?;
        self.adopt(&conv);
        self.label(label)?.conv = Some(conv);
        Ok(())
    }

    /// `br_table`: index in an owned register.
    pub(crate) fn br_table(&mut self, index: Gpr, targets: &[MLabel]) -> Result<(), CompileError> {
        let (cases, default) = targets.split_at(targets.len() - 1);
        let table = self.masm.new_label();
        let default_stub = self.masm.new_label();
        let at = self.masm.alu_ri(Alu::Cmp, Size::S32, index, cases.len() as i32);
        let _ = at;
        self.masm.jcc(Cond::Ae, default_stub);
        self.masm.jump_table(index, table);
        self.release_gpr(index);
        self.masm.align(4);
        self.masm.bind(table);
        let mut stubs: Vec<(MLabel, Label)> = Vec::new();
        for &t in cases {
            let stub = match stubs.iter().find(|s| s.0 == t) {
                Some(s) => s.1,
                None => {
                    let l = self.masm.new_label();
                    stubs.push((t, l));
                    l
                }
            };
            self.masm.jump_table_entry(table, stub);
        }
        stubs.push((default[0], default_stub));
        for (t, stub) in stubs {
            self.masm.bind(stub);
            let dl = self.move_to_label(t)?;
            self.masm.jmp(dl);
        }
        self.set_unreachable();
        Ok(())
    }

    // ---- calls and returns ------------------------------------------------------------------

    /// Moves the results to the argument area and returns.
    pub(crate) fn ret(&mut self) -> Result<(), CompileError> {
        let m = self.results.len() as u32;
        let h = self.stack.len() as u32;
        if h < m {
            return Err(internal("return with too few values"));
        }
        let mut moves = Vec::with_capacity(m as usize);
        for j in 0..m {
            let p = h - m + j;
            let v = self.stack[p as usize];
            let src = self.value_src(p, v);
            let dst = MLoc::Slot(16 + 8 * (self.area - 1 - j) as i32);
            moves.push((v.ty, src, dst));
        }
        self.parallel_move(moves);
        self.masm.epilogue_ret();
        self.set_unreachable();
        Ok(())
    }

    /// Spills everything before a call with signature `ty` (arguments into their homes).
    pub(crate) fn spill_for_call(&mut self, ty: &FuncType) {
        self.spill_all();
        self.spill_top_consts(ty.params().len());
    }

    /// Sets `rsp` to the callee's argument area. The caller then emits the call and
    /// [`Self::after_call`].
    pub(crate) fn set_call_rsp(&mut self, ty: &FuncType) -> Result<(), CompileError> {
        let n = ty.params().len();
        let h = self.stack.len() as u32;
        let a = ty.arg_area_slots() as u32;
        let first = h.checked_sub(n as u32).ok_or(internal("call with too few arguments"))?;
        // Positions first..first+A-1 form the area; its lowest slot is the last one's home.
        let top = first + a.max(1) - 1;
        let d = self.home_disp(top.max(self.nparams));
        let d = if a == 0 { d + 8 } else { d };
        self.masm.set_rsp(d);
        Ok(())
    }

    /// After a call returns: restores `r14`, `r15` and `rsp`, and replaces the arguments by
    /// the results (in their homes).
    pub(crate) fn after_call(&mut self, ty: &FuncType, reload_vmctx: bool) -> Result<(), CompileError> {
        if reload_vmctx {
            self.masm.load(VMCTX, Mem::base(RBP, -8), Width::B64, Ext::Unsigned, Size::S64);
            self.masm.load(MEMBASE, Mem::base(VMCTX, VMCTX_MEMORY0_BASE as i32), Width::B64, Ext::Unsigned, Size::S64);
        }
        self.restore_rsp();
        for _ in 0..ty.params().len() {
            let v = self.pop()?;
            self.release(v.op);
        }
        for &r in ty.results() {
            let p = self.stack.len() as u32;
            self.home_disp(p);
            self.stack.push(Value::new(r, Loc::Home));
        }
        Ok(())
    }

    /// Calls builtin `b` with `args` (already in their ABI registers); the stack must be
    /// spilled. Jumps to a `trap` stub if the builtin returns nonzero and `trap` is given.
    pub(crate) fn call_builtin(&mut self, b: Builtin, trap: Option<TrapCode>) {
        self.masm.mov_rr(Size::S64, RDI, VMCTX);
        self.masm.align_rsp();
        self.masm.load(RAX, Mem::base(VMCTX, VMCTX_BUILTINS as i32), Width::B64, Ext::Unsigned, Size::S64);
        self.masm.call_m(Mem::base(RAX, b.table_offset() as i32));
        self.restore_rsp();
        if let Some(code) = trap {
            self.masm.test_rr(Size::S32, RAX, RAX);
            let l = self.trap_label(code);
            self.masm.jcc(Cond::Ne, l);
        }
    }

    /// Loads a popped operand into a specific (free, unowned) register for a builtin call.
    pub(crate) fn arg_to(&mut self, r: Gpr, p: Popped) {
        match p.op {
            Opnd::Const { bits, k } => self.const_to_gpr(p.ty, r, bits, k),
            Opnd::Mem(m) => self.load_to_gpr(p.ty, r, m),
            Opnd::Gpr(s) => self.masm.mov_rr(Size::S64, r, s),
            Opnd::Xmm(x) => self.masm.mov_rx(fsize(p.ty), r, x),
        }
    }
}
