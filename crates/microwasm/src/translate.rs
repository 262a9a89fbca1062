//! Streaming Wasm → Microwasm translation: validate each operator, then translate it, in
//! one pass with zero lookahead (DESIGN.md §2.1, STYLE.md §3).
//!
//! [`Translator::translate`] reads a body with wasmparser's `BinaryReader` and hands each
//! operator to `ValidateThenTranslate`, which first runs wasmparser's `FuncValidator` on
//! it and then `FuncTranslator`, which streams Microwasm into the sink. Everything
//! after validation may assume well-typed input: an inconsistency found there is
//! [`CompileError::Internal`].
//!
//! # The value stack
//! The function's params are stack positions `0..n`, its declared locals (each pushed as
//! `zero`) the next ones, and operands live above them. The translator tracks only the
//! height; the local `i` is at depth `height - 1 - i`.
//!
//! # Control
//! Labels are numbered from 1 per function (`Label(0)` is reserved). With `base` the
//! height below a construct's params, `np`/`nr` its param/result counts:
//!
//! ```text
//!  block bt      declare Lend block (base+nr) nr        ... end:  Lend:
//!  loop bt       declare Lh loop (base+np) np; Lh:      ... end:  (nothing)
//!  if bt         declare Le else (base+np) np
//!                declare Lend block (base+nr) nr
//!                br_unless Le                           ... else: [br Lend]; Le:
//!                                                       ... end:  [br Lend; Le:] Lend:
//!  br n          br L(n)              (the function's frame: return)
//!  br_if n       br_if L(n)           (the function's frame: declare Ls else h 0;
//!                                      br_unless Ls; return; Ls:)
//!  br_table      br_table L...        (function-frame targets go to a fresh
//!                                      `declare Lr block nr nr`, bound after the
//!                                      br_table and followed by `return`)
//! ```
//! where `[x]` is emitted only if the fallthrough reaches it.
//!
//! # Dead code
//! After `br`, `br_table`, `return` and `unreachable` the code up to the matching
//! `else`/`end` is validated but emits nothing; blocks opened there are *dead* and emit
//! nothing at all, not even their `end`. The `end` of a live `block`/`if`/`else` always
//! binds its label; the code after it is live iff the fallthrough reached the `end` or a
//! branch targeted the label (every branch to an end label precedes the `end`, so this
//! needs no lookahead). The `else` label of a live `if` is always reachable (from its
//! `br_unless`).
//!
//! # Constants and slots
//! Every `*.const` operand and every memarg offset gets the next [`ConstIdx`], and every
//! module index its slot, in body order *including dead code*: the numbering is a
//! function of the operator sequence alone, so whoever fingerprints a body without
//! translating it (DESIGN.md §2.2) finds the same `consts` and `FunctionParameters`.
//!
//! Invariant: when the translator emits an operator, every enclosing frame is live and
//! the tracked height equals the validator's (checked in debug builds).

use crate::ops::{BrTargets, ConstValue, Label, LabelKind, MemArg};
use crate::{CompileError, Visitor};
use quickbeam_environ::*;
use wasmparser::{
    BlockType, FrameKind, FrameStack, FuncValidator, FuncValidatorAllocations, ValidatorResources,
    VisitOperator, VisitSimdOperator,
};

/// What translating one body yields besides the operators it streamed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Translation {
    /// What the code depends on, per slot (part of the stencil key).
    pub slots: SlotEnv,
    /// Which module index each slot stands for in this module.
    pub params: FunctionParameters,
    /// The body's numeric immediates in order (bits; i32/f32 zero-extended), indexed by
    /// [`ConstIdx`]: every `*.const` operand and every memarg offset.
    pub consts: Vec<u64>,
}

/// Translates bodies; keeps its allocations from one function to the next.
#[derive(Default)]
pub struct Translator {
    validator_allocs: FuncValidatorAllocations,
    control: Vec<Frame>,
    slots: SlotAllocator,
    consts: Vec<u64>,
}

impl Translator {
    pub fn new() -> Translator {
        Translator::default()
    }

    /// Validates and translates one body, streaming Microwasm into `sink`.
    ///
    /// # Errors
    /// [`CompileError::Invalid`] for an invalid body (with its offset),
    /// [`CompileError::Unsupported`] for features not compiled yet, and whatever the
    /// sink returns.
    pub fn translate<V: Visitor>(
        &mut self,
        env: &ModuleEnv,
        input: FunctionInput<'_>,
        sink: &mut V,
    ) -> Result<Translation, CompileError> {
        let allocs = std::mem::take(&mut self.validator_allocs);
        let mut validator = input.validator.into_validator(allocs);
        self.slots.reset();
        self.control.clear();
        self.consts.clear();
        let mut t = FuncTranslator {
            env,
            sink,
            control: &mut self.control,
            slots: &mut self.slots,
            consts: &mut self.consts,
            height: 0,
            reachable: true,
            next_label: 1,
            body_start: input.body.range().start,
        };
        let result = t.run(&mut validator, &input.body);
        self.validator_allocs = validator.into_allocations();
        result?;
        Ok(Translation {
            slots: std::mem::take(&mut self.slots.env),
            params: std::mem::take(&mut self.slots.params),
            // One exact allocation; the scratch vector keeps its capacity.
            consts: self.consts.to_vec(),
        })
    }
}

/// What kind of construct a control frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrameKindTr {
    /// The function body: branching to it returns.
    Function,
    Block,
    Loop,
    /// An `if` before its `else`.
    If,
    /// The `else` half of an `if`.
    Else,
}

/// One entry of the control stack.
#[derive(Clone, Copy, Debug)]
struct Frame {
    kind: FrameKindTr,
    /// Whether the frame was entered in live code (and so declared its labels). Every
    /// frame enclosing live code is live.
    live: bool,
    /// Where a branch to this frame goes: the loop header, or the end label.
    label: Label,
    /// The `else` label of an `if` (unused otherwise).
    else_label: Label,
    /// The stack height below the construct's params.
    base: u32,
    params: u32,
    results: u32,
    /// Whether some branch has targeted the end label (block, if, else).
    targeted: bool,
}

/// The state of one body's translation.
struct FuncTranslator<'t, V> {
    env: &'t ModuleEnv,
    sink: &'t mut V,
    control: &'t mut Vec<Frame>,
    slots: &'t mut SlotAllocator,
    consts: &'t mut Vec<u64>,
    /// The height of the value stack (locals included) while `reachable`.
    height: u32,
    /// Whether the current operator is live (see the module docs on dead code).
    reachable: bool,
    next_label: u32,
    body_start: u64,
}

const UNDERFLOW: CompileError = CompileError::Internal("value stack underflow in the translator");

impl<V: Visitor> FuncTranslator<'_, V> {
    fn run(
        &mut self,
        validator: &mut FuncValidator<ValidatorResources>,
        body: &wasmparser::FunctionBody<'_>,
    ) -> Result<(), CompileError> {
        let func_ty = self
            .env
            .functions
            .get(validator.index() as usize)
            .and_then(|&t| self.env.types.get(t as usize))
            .ok_or(CompileError::Internal("function type out of range"))?;
        self.height = func_ty.params().len() as u32;
        self.control.push(Frame {
            kind: FrameKindTr::Function,
            live: true,
            label: Label::RETURN,
            else_label: Label::RETURN,
            base: 0,
            params: 0,
            results: func_ty.results().len() as u32,
            targeted: false,
        });

        let mut reader = body.get_binary_reader();
        reader.set_features(*validator.features());
        for _ in 0..reader.read_var_u32()? {
            let offset = reader.original_position();
            let count: u32 = reader.read()?;
            let ty: wasmparser::ValType = reader.read()?;
            validator.define_locals(offset, count, ty)?;
            let ty = ValType::from_wasmparser(ty).map_err(|u| CompileError::Unsupported(u.0))?;
            for _ in 0..count {
                self.sink.visit_zero(ty)?;
            }
            self.height += count;
        }

        while !reader.eof() {
            let offset = reader.original_position();
            self.sink.set_srcloc(self.rel(offset));
            reader.visit_operator(&mut ValidateThenTranslate { validator, offset, translator: self })??;
            if cfg!(debug_assertions)
                && self.reachable
                && self.height != validator.len_locals() + validator.operand_stack_height()
            {
                return Err(CompileError::Internal("the translator's stack height disagrees with the validator"));
            }
        }
        let end = reader.original_position();
        reader.finish_expression(&validator.visitor(end))?;
        Ok(())
    }

    fn rel(&self, offset: u64) -> u32 {
        (offset - self.body_start) as u32
    }

    // ---- stack ------------------------------------------------------------------------

    #[inline]
    fn pop(&mut self, n: u32) -> Result<(), CompileError> {
        self.height = self.height.checked_sub(n).ok_or(UNDERFLOW)?;
        Ok(())
    }

    /// An operator that pops `pop` values, pushes `push` and is `emit` in Microwasm.
    #[inline(always)]
    fn op(
        &mut self,
        pop: u32,
        push: u32,
        emit: impl FnOnce(&mut V) -> Result<(), CompileError>,
    ) -> Result<(), CompileError> {
        if !self.reachable {
            return Ok(());
        }
        self.pop(pop)?;
        self.height += push;
        emit(self.sink)
    }

    /// The depth from the top of local `index`.
    #[inline]
    fn local_depth(&self, index: u32) -> Result<u32, CompileError> {
        self.height.checked_sub(index + 1).ok_or(CompileError::Internal("local index above the stack"))
    }

    // ---- immediates and slots -----------------------------------------------------------

    /// A `*.const`: numbered even in dead code (see the module docs).
    fn constant(&mut self, value: ConstValue) -> Result<(), CompileError> {
        let k = ConstIdx(self.consts.len() as u32);
        self.consts.push(value.bits());
        self.op(0, 1, |s| s.visit_const(k, value))
    }

    /// A memarg: its offset numbered and its memory slotted even in dead code.
    fn memarg(&mut self, m: wasmparser::MemArg) -> Result<MemArg, CompileError> {
        let wasmparser::MemArgTarget::Memory(mem) = m.target else {
            return Err(CompileError::Unsupported("gc"));
        };
        if m.ordering.is_some() {
            return Err(CompileError::Unsupported("acquire_release_atomics"));
        }
        let k = ConstIdx(self.consts.len() as u32);
        self.consts.push(m.offset);
        Ok(MemArg { offset: m.offset, k, align: m.align, memory: self.slots.memory(self.env, mem) })
    }

    fn func_type(&self, type_index: u32) -> Result<&FuncType, CompileError> {
        self.env.types.get(type_index as usize).ok_or(CompileError::Internal("type index out of range"))
    }

    // ---- control ------------------------------------------------------------------------

    fn new_label(&mut self) -> Label {
        let l = Label(self.next_label);
        self.next_label += 1;
        l
    }

    /// `(params, results)` of a block type.
    fn block_arity(&self, bt: BlockType) -> Result<(u32, u32), CompileError> {
        Ok(match bt {
            BlockType::Empty => (0, 0),
            BlockType::Type(_) => (0, 1),
            BlockType::FuncType(i) => {
                let t = self.func_type(i)?;
                (t.params().len() as u32, t.results().len() as u32)
            }
        })
    }

    /// Opens a frame; returns its base if it is live.
    fn push_frame(&mut self, kind: FrameKindTr, bt: BlockType) -> Result<Frame, CompileError> {
        let (params, results) = self.block_arity(bt)?;
        let base = if self.reachable { self.height.checked_sub(params).ok_or(UNDERFLOW)? } else { 0 };
        Ok(Frame {
            kind,
            live: self.reachable,
            label: Label::RETURN,
            else_label: Label::RETURN,
            base,
            params,
            results,
            targeted: false,
        })
    }

    /// The frame `depth` levels out (0 = innermost), as a branch names it.
    fn frame_mut(&mut self, depth: u32) -> Result<&mut Frame, CompileError> {
        let i = self.control.len().checked_sub(depth as usize + 1).ok_or(CompileError::Internal("branch depth out of range"))?;
        Ok(&mut self.control[i])
    }

    /// The label a branch to `depth` jumps to (`None` for the function's frame), noting
    /// that the label is targeted.
    fn branch_target(&mut self, depth: u32) -> Result<Option<Label>, CompileError> {
        let f = self.frame_mut(depth)?;
        if !f.live {
            return Err(CompileError::Internal("branch to a dead frame in live code"));
        }
        f.targeted = true;
        Ok(match f.kind {
            FrameKindTr::Function => None,
            _ => Some(f.label),
        })
    }

    fn top_frame(&mut self) -> Result<&mut Frame, CompileError> {
        self.control.last_mut().ok_or(CompileError::Internal("control stack underflow"))
    }

    fn set_dead(&mut self) {
        self.reachable = false;
    }
}

/// Runs the validator on each operator, then the translator (STYLE.md §3).
struct ValidateThenTranslate<'v, 'r, 't, V> {
    validator: &'v mut FuncValidator<ValidatorResources>,
    offset: u64,
    translator: &'r mut FuncTranslator<'t, V>,
}

/// The reader asks for the innermost frame before each operator (to reject operators
/// after the body's `end` and a misplaced `else`). The translator's control stack mirrors
/// the validator's frame for frame as long as every operator so far was valid, which is
/// the only case in which the reader gets here.
impl<V> FrameStack for ValidateThenTranslate<'_, '_, '_, V> {
    #[inline]
    fn current_frame(&self) -> Option<FrameKind> {
        self.translator.control.last().map(|f| match f.kind {
            FrameKindTr::Function | FrameKindTr::Block => FrameKind::Block,
            FrameKindTr::Loop => FrameKind::Loop,
            FrameKindTr::If => FrameKind::If,
            FrameKindTr::Else => FrameKind::Else,
        })
    }
}

macro_rules! validate_then_translate {
    ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*) )*) => {$(
        #[allow(clippy::clone_on_copy)]
        fn $visit(&mut self $($(, $arg: $argty)*)?) -> Self::Output {
            self.validator.visitor(self.offset).$visit($($($arg.clone()),*)?)?;
            self.translator.$visit($($($arg),*)?)
        }
    )*};
}

macro_rules! validate_then_reject {
    ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*) )*) => {$(
        fn $visit(&mut self $($(, $arg: $argty)*)?) -> Self::Output {
            self.validator.simd_visitor(self.offset).$visit($($($arg),*)?)?;
            Err(CompileError::Unsupported(stringify!($proposal)))
        }
    )*};
}

impl<'a, V: Visitor> VisitOperator<'a> for ValidateThenTranslate<'_, '_, '_, V> {
    type Output = Result<(), CompileError>;

    fn simd_visitor(&mut self) -> Option<&mut dyn VisitSimdOperator<'a, Output = Self::Output>> {
        Some(self)
    }

    wasmparser::for_each_visit_operator!(validate_then_translate);
}

impl<'a, V: Visitor> VisitSimdOperator<'a> for ValidateThenTranslate<'_, '_, '_, V> {
    wasmparser::for_each_visit_simd_operator!(validate_then_reject);
}

/// Generates the translator's methods for the operators that need no hand-written
/// code: numeric operators and memory accesses of the proposals Quickbeam compiles map
/// 1:1 to the Microwasm operator of the same name; every operator of the other proposals
/// is `Unsupported`. The remaining operators are written out in the impl below.
macro_rules! translate_simple {
    ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*) )*) => {
        $( translate_simple!(@one $proposal $op $({ $($arg: $argty),* })? => $visit ($($ann)*)); )*
    };
    // Written out below.
    (@one mvp Nop => $visit:ident $ann:tt) => {};
    (@one mvp Unreachable => $visit:ident $ann:tt) => {};
    // Forwarded as they are.
    (@one mvp $op:ident => $visit:ident (arity $pop:literal -> $push:literal)) => {
        translate_simple!(@forward $visit $pop $push);
    };
    (@one sign_extension $op:ident => $visit:ident (arity $pop:literal -> $push:literal)) => {
        translate_simple!(@forward $visit $pop $push);
    };
    (@one saturating_float_to_int $op:ident => $visit:ident (arity $pop:literal -> $push:literal)) => {
        translate_simple!(@forward $visit $pop $push);
    };
    (@one reference_types $op:ident => $visit:ident (arity $pop:literal -> $push:literal)) => {
        translate_simple!(@forward $visit $pop $push);
    };
    (@one mvp $op:ident { memarg: $ty:ty } => $visit:ident (arity memarg $pop:literal -> $push:literal)) => {
        fn $visit(&mut self, memarg: $ty) -> Self::Output {
            let memarg = self.memarg(memarg)?;
            self.op($pop, $push, |s| s.$visit(memarg))
        }
    };
    // Written out below.
    (@one mvp $($rest:tt)*) => {};
    (@one bulk_memory $($rest:tt)*) => {};
    (@one reference_types $($rest:tt)*) => {};
    // Everything else.
    (@one $proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident $ann:tt) => {
        fn $visit(&mut self $($(, $arg: $argty)*)?) -> Self::Output {
            $($(let _ = $arg;)*)?
            Err(CompileError::Unsupported(stringify!($proposal)))
        }
    };
    (@forward $visit:ident $pop:literal $push:literal) => {
        fn $visit(&mut self) -> Self::Output {
            self.op($pop, $push, |s| s.$visit())
        }
    };
}

impl<'a, V: Visitor> VisitOperator<'a> for FuncTranslator<'_, V> {
    type Output = Result<(), CompileError>;

    wasmparser::for_each_visit_operator!(translate_simple);

    // ---- control ------------------------------------------------------------------------

    fn visit_nop(&mut self) -> Self::Output {
        Ok(())
    }

    fn visit_unreachable(&mut self) -> Self::Output {
        self.op(0, 0, |s| s.visit_unreachable())?;
        self.set_dead();
        Ok(())
    }

    fn visit_block(&mut self, blockty: BlockType) -> Self::Output {
        let mut f = self.push_frame(FrameKindTr::Block, blockty)?;
        if f.live {
            f.label = self.new_label();
            self.sink.visit_declare(f.label, LabelKind::Block, f.base + f.results, f.results)?;
        }
        self.control.push(f);
        Ok(())
    }

    fn visit_loop(&mut self, blockty: BlockType) -> Self::Output {
        let mut f = self.push_frame(FrameKindTr::Loop, blockty)?;
        if f.live {
            f.label = self.new_label();
            self.sink.visit_declare(f.label, LabelKind::Loop, f.base + f.params, f.params)?;
            self.sink.visit_bind(f.label)?;
        }
        self.control.push(f);
        Ok(())
    }

    fn visit_if(&mut self, blockty: BlockType) -> Self::Output {
        if self.reachable {
            self.pop(1)?;
        }
        let mut f = self.push_frame(FrameKindTr::If, blockty)?;
        if f.live {
            f.else_label = self.new_label();
            f.label = self.new_label();
            self.sink.visit_declare(f.else_label, LabelKind::Else, f.base + f.params, f.params)?;
            self.sink.visit_declare(f.label, LabelKind::Block, f.base + f.results, f.results)?;
            self.sink.visit_br_unless(f.else_label)?;
        }
        self.control.push(f);
        Ok(())
    }

    fn visit_else(&mut self) -> Self::Output {
        let reachable = self.reachable;
        let f = self.top_frame()?;
        if f.kind != FrameKindTr::If {
            return Err(CompileError::Internal("`else` outside an `if`"));
        }
        f.kind = FrameKindTr::Else;
        if !f.live {
            return Ok(());
        }
        f.targeted |= reachable;
        let f = *f;
        if reachable {
            self.sink.visit_br(f.label)?;
        }
        self.sink.visit_bind(f.else_label)?;
        self.reachable = true;
        self.height = f.base + f.params;
        Ok(())
    }

    fn visit_end(&mut self) -> Self::Output {
        let f = self.control.pop().ok_or(CompileError::Internal("control stack underflow"))?;
        if !f.live {
            return Ok(());
        }
        match f.kind {
            FrameKindTr::Function => {
                if self.reachable {
                    self.sink.visit_return()?;
                }
                self.set_dead();
                return Ok(());
            }
            FrameKindTr::Block | FrameKindTr::Else => {
                self.sink.visit_bind(f.label)?;
                self.reachable |= f.targeted;
            }
            FrameKindTr::Loop => {}
            FrameKindTr::If => {
                // No `else`: the false path passes the params through as results.
                if self.reachable {
                    self.sink.visit_br(f.label)?;
                }
                self.sink.visit_bind(f.else_label)?;
                self.sink.visit_bind(f.label)?;
                self.reachable = true;
            }
        }
        self.height = f.base + f.results;
        Ok(())
    }

    fn visit_br(&mut self, relative_depth: u32) -> Self::Output {
        if !self.reachable {
            return Ok(());
        }
        match self.branch_target(relative_depth)? {
            Some(l) => self.sink.visit_br(l)?,
            None => self.sink.visit_return()?,
        }
        self.set_dead();
        Ok(())
    }

    fn visit_br_if(&mut self, relative_depth: u32) -> Self::Output {
        if !self.reachable {
            return Ok(());
        }
        self.pop(1)?;
        match self.branch_target(relative_depth)? {
            Some(l) => self.sink.visit_br_if(l),
            None => {
                let skip = self.new_label();
                self.sink.visit_declare(skip, LabelKind::Else, self.height, 0)?;
                self.sink.visit_br_unless(skip)?;
                self.sink.visit_return()?;
                self.sink.visit_bind(skip)
            }
        }
    }

    fn visit_br_table(&mut self, targets: wasmparser::BrTable<'a>) -> Self::Output {
        if !self.reachable {
            return Ok(());
        }
        self.pop(1)?;
        let mut labels = Vec::with_capacity(targets.len() as usize + 1);
        let mut ret = None;
        for depth in targets.targets().chain(std::iter::once(Ok(targets.default()))) {
            let label = match self.branch_target(depth?)? {
                Some(l) => l,
                None => *ret.get_or_insert_with(|| self.new_label()),
            };
            labels.push(label);
        }
        if let Some(r) = ret {
            let n = self.control[0].results;
            self.sink.visit_declare(r, LabelKind::Block, n, n)?;
        }
        self.sink.visit_br_table(BrTargets(labels.into_boxed_slice()))?;
        if let Some(r) = ret {
            self.sink.visit_bind(r)?;
            self.sink.visit_return()?;
        }
        self.set_dead();
        Ok(())
    }

    fn visit_return(&mut self) -> Self::Output {
        self.op(0, 0, |s| s.visit_return())?;
        self.set_dead();
        Ok(())
    }

    fn visit_call(&mut self, function_index: u32) -> Self::Output {
        let ty = self
            .env
            .functions
            .get(function_index as usize)
            .and_then(|&t| self.env.types.get(t as usize))
            .ok_or(CompileError::Internal("function index out of range"))?
            .clone();
        let func = self.slots.func(self.env, function_index);
        let (pop, push) = (ty.params().len() as u32, ty.results().len() as u32);
        if self.env.is_imported_func(function_index) {
            self.op(pop, push, |s| s.visit_call_import(func, ty))
        } else {
            self.op(pop, push, |s| s.visit_call(func, ty))
        }
    }

    fn visit_call_indirect(&mut self, type_index: u32, table_index: u32) -> Self::Output {
        let ty = self.func_type(type_index)?.clone();
        let type_slot = self.slots.ty(self.env, type_index);
        let table = self.slots.table(self.env, table_index);
        let (pop, push) = (ty.params().len() as u32 + 1, ty.results().len() as u32);
        self.op(pop, push, |s| s.visit_call_indirect(type_slot, table, ty))
    }

    // ---- locals and globals -------------------------------------------------------------

    fn visit_local_get(&mut self, local_index: u32) -> Self::Output {
        if !self.reachable {
            return Ok(());
        }
        let depth = self.local_depth(local_index)?;
        self.op(0, 1, |s| s.visit_pick(depth))
    }

    fn visit_local_set(&mut self, local_index: u32) -> Self::Output {
        if !self.reachable {
            return Ok(());
        }
        let depth = self.local_depth(local_index)?;
        self.op(1, 0, |s| {
            s.visit_swap(depth)?;
            s.visit_drop()
        })
    }

    fn visit_local_tee(&mut self, local_index: u32) -> Self::Output {
        if !self.reachable {
            return Ok(());
        }
        self.sink.visit_pick(0)?;
        self.height += 1;
        let depth = self.local_depth(local_index)?;
        self.op(1, 0, |s| {
            s.visit_swap(depth)?;
            s.visit_drop()
        })
    }

    fn visit_global_get(&mut self, global_index: u32) -> Self::Output {
        let ty = self.env.globals.get(global_index as usize).ok_or(CompileError::Internal("global index out of range"))?;
        let (ty, global) = (ty.content, self.slots.global(self.env, global_index));
        self.op(0, 1, |s| s.visit_global_get(global, ty))
    }

    fn visit_global_set(&mut self, global_index: u32) -> Self::Output {
        let ty = self.env.globals.get(global_index as usize).ok_or(CompileError::Internal("global index out of range"))?;
        let (ty, global) = (ty.content, self.slots.global(self.env, global_index));
        self.op(1, 0, |s| s.visit_global_set(global, ty))
    }

    // ---- constants ----------------------------------------------------------------------

    fn visit_i32_const(&mut self, value: i32) -> Self::Output {
        self.constant(ConstValue::I32(value))
    }

    fn visit_i64_const(&mut self, value: i64) -> Self::Output {
        self.constant(ConstValue::I64(value))
    }

    fn visit_f32_const(&mut self, value: wasmparser::Ieee32) -> Self::Output {
        self.constant(ConstValue::F32(value.bits()))
    }

    fn visit_f64_const(&mut self, value: wasmparser::Ieee64) -> Self::Output {
        self.constant(ConstValue::F64(value.bits()))
    }

    // ---- memory -------------------------------------------------------------------------

    fn visit_memory_size(&mut self, mem: u32) -> Self::Output {
        let mem = self.slots.memory(self.env, mem);
        self.op(0, 1, |s| s.visit_memory_size(mem))
    }

    fn visit_memory_grow(&mut self, mem: u32) -> Self::Output {
        let mem = self.slots.memory(self.env, mem);
        self.op(1, 1, |s| s.visit_memory_grow(mem))
    }

    fn visit_memory_fill(&mut self, mem: u32) -> Self::Output {
        let mem = self.slots.memory(self.env, mem);
        self.op(3, 0, |s| s.visit_memory_fill(mem))
    }

    fn visit_memory_copy(&mut self, dst_mem: u32, src_mem: u32) -> Self::Output {
        let (dst, src) = (self.slots.memory(self.env, dst_mem), self.slots.memory(self.env, src_mem));
        self.op(3, 0, |s| s.visit_memory_copy(dst, src))
    }

    fn visit_memory_init(&mut self, data_index: u32, mem: u32) -> Self::Output {
        let (mem, data) = (self.slots.memory(self.env, mem), self.slots.data(self.env, data_index));
        self.op(3, 0, |s| s.visit_memory_init(mem, data))
    }

    fn visit_data_drop(&mut self, data_index: u32) -> Self::Output {
        let data = self.slots.data(self.env, data_index);
        self.op(0, 0, |s| s.visit_data_drop(data))
    }

    // ---- references and tables ----------------------------------------------------------

    fn visit_typed_select(&mut self, ty: wasmparser::ValType) -> Self::Output {
        let _ = ty;
        self.op(3, 1, |s| s.visit_select())
    }

    fn visit_typed_select_multi(&mut self, tys: Vec<wasmparser::ValType>) -> Self::Output {
        let _ = tys;
        Err(CompileError::Unsupported("multi-value select"))
    }

    fn visit_ref_null(&mut self, hty: wasmparser::HeapType) -> Self::Output {
        if !self.reachable {
            return Ok(());
        }
        let ty = match wasmparser::RefType::new(true, hty).map(RefType::from_wasmparser) {
            Some(Ok(ty)) => ty,
            _ => return Err(CompileError::Unsupported("typed reference")),
        };
        self.op(0, 1, |s| s.visit_ref_null(ty))
    }

    fn visit_ref_func(&mut self, function_index: u32) -> Self::Output {
        if function_index as usize >= self.env.functions.len() {
            return Err(CompileError::Internal("function index out of range"));
        }
        let func = self.slots.func(self.env, function_index);
        self.op(0, 1, |s| s.visit_ref_func(func))
    }

    fn visit_table_get(&mut self, table: u32) -> Self::Output {
        let table = self.slots.table(self.env, table);
        self.op(1, 1, |s| s.visit_table_get(table))
    }

    fn visit_table_set(&mut self, table: u32) -> Self::Output {
        let table = self.slots.table(self.env, table);
        self.op(2, 0, |s| s.visit_table_set(table))
    }

    fn visit_table_size(&mut self, table: u32) -> Self::Output {
        let table = self.slots.table(self.env, table);
        self.op(0, 1, |s| s.visit_table_size(table))
    }

    fn visit_table_grow(&mut self, table: u32) -> Self::Output {
        let table = self.slots.table(self.env, table);
        self.op(2, 1, |s| s.visit_table_grow(table))
    }

    fn visit_table_fill(&mut self, table: u32) -> Self::Output {
        let table = self.slots.table(self.env, table);
        self.op(3, 0, |s| s.visit_table_fill(table))
    }

    fn visit_table_copy(&mut self, dst_table: u32, src_table: u32) -> Self::Output {
        let (dst, src) = (self.slots.table(self.env, dst_table), self.slots.table(self.env, src_table));
        self.op(3, 0, |s| s.visit_table_copy(dst, src))
    }

    fn visit_table_init(&mut self, elem_index: u32, table: u32) -> Self::Output {
        let (table, elem) = (self.slots.table(self.env, table), self.slots.elem(self.env, elem_index));
        self.op(3, 0, |s| s.visit_table_init(table, elem))
    }

    fn visit_elem_drop(&mut self, elem_index: u32) -> Self::Output {
        let elem = self.slots.elem(self.env, elem_index);
        self.op(0, 0, |s| s.visit_elem_drop(elem))
    }
}

