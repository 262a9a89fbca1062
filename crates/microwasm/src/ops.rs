//! The Microwasm operator table: the one place every operator is listed.
//!
//! Microwasm is Wasm without locals and without structured control (DESIGN.md §2.1):
//! - the value stack holds every local (params first, then declared locals) below the
//!   operands; `local.get n` is `pick d`, `local.set n` is `swap d; drop`, where `d` is
//!   the local's depth from the top (0 = top);
//! - control flow is labels that take the *whole* stack as arguments: a label declared
//!   with `params: p, arity: a` is entered with exactly `p` values on the stack, the top
//!   `a` of which are the block's results (or a loop's parameters). A branch drops the
//!   values between the label's base (`p - a`) and its top `a` arguments;
//! - `return` passes the function's results to its caller.
//!
//! Each line of [`for_each_microwasm_op!`](crate::for_each_microwasm_op) gives the variant, its fields, its visitor
//! method and its text name; the enum [`Op`], the [`Visitor`] trait and the printer are
//! all generated from it. A new operator is one line here.

use quickbeam_environ::*;

/// Calls `$mac` with the whole operator table.
///
/// Each entry is `Variant { field: Type, ... } = visit_method "text";` (fields optional).
#[macro_export]
macro_rules! for_each_microwasm_op {
    ($mac:ident) => {
        $mac! {
            // ---- stack -------------------------------------------------------------
            Pick { depth: u32 } = visit_pick "pick";
            Swap { depth: u32 } = visit_swap "swap";
            Drop = visit_drop "drop";
            Zero { ty: ValType } = visit_zero "zero";
            Const { k: ConstIdx, value: ConstValue } = visit_const "const";
            Select = visit_select "select";
            // ---- control -----------------------------------------------------------
            Declare { label: Label, kind: LabelKind, params: u32, arity: u32 } = visit_declare "declare";
            Bind { label: Label } = visit_bind "label";
            Br { target: Label } = visit_br "br";
            BrIf { target: Label } = visit_br_if "br_if";
            BrUnless { target: Label } = visit_br_unless "br_unless";
            BrTable { targets: BrTargets } = visit_br_table "br_table";
            Return = visit_return "return";
            Unreachable = visit_unreachable "unreachable";
            Call { func: FuncSlot, ty: FuncType } = visit_call "call";
            CallImport { func: FuncSlot, ty: FuncType } = visit_call_import "call_import";
            CallIndirect { type_slot: TypeSlot, table: TableSlot, ty: FuncType } = visit_call_indirect "call_indirect";
            // ---- globals, references, tables ----------------------------------------
            GlobalGet { global: GlobalSlot, ty: ValType } = visit_global_get "global.get";
            GlobalSet { global: GlobalSlot, ty: ValType } = visit_global_set "global.set";
            RefNull { ty: RefType } = visit_ref_null "ref.null";
            RefIsNull = visit_ref_is_null "ref.is_null";
            RefFunc { func: FuncSlot } = visit_ref_func "ref.func";
            TableGet { table: TableSlot } = visit_table_get "table.get";
            TableSet { table: TableSlot } = visit_table_set "table.set";
            TableSize { table: TableSlot } = visit_table_size "table.size";
            TableGrow { table: TableSlot } = visit_table_grow "table.grow";
            TableFill { table: TableSlot } = visit_table_fill "table.fill";
            TableCopy { dst: TableSlot, src: TableSlot } = visit_table_copy "table.copy";
            TableInit { table: TableSlot, elem: ElemSlot } = visit_table_init "table.init";
            ElemDrop { elem: ElemSlot } = visit_elem_drop "elem.drop";
            // ---- memory --------------------------------------------------------------
            MemorySize { mem: MemorySlot } = visit_memory_size "memory.size";
            MemoryGrow { mem: MemorySlot } = visit_memory_grow "memory.grow";
            MemoryFill { mem: MemorySlot } = visit_memory_fill "memory.fill";
            MemoryCopy { dst: MemorySlot, src: MemorySlot } = visit_memory_copy "memory.copy";
            MemoryInit { mem: MemorySlot, data: DataSlot } = visit_memory_init "memory.init";
            DataDrop { data: DataSlot } = visit_data_drop "data.drop";
            I32Load { memarg: MemArg } = visit_i32_load "i32.load";
            I64Load { memarg: MemArg } = visit_i64_load "i64.load";
            F32Load { memarg: MemArg } = visit_f32_load "f32.load";
            F64Load { memarg: MemArg } = visit_f64_load "f64.load";
            I32Load8S { memarg: MemArg } = visit_i32_load8_s "i32.load8_s";
            I32Load8U { memarg: MemArg } = visit_i32_load8_u "i32.load8_u";
            I32Load16S { memarg: MemArg } = visit_i32_load16_s "i32.load16_s";
            I32Load16U { memarg: MemArg } = visit_i32_load16_u "i32.load16_u";
            I64Load8S { memarg: MemArg } = visit_i64_load8_s "i64.load8_s";
            I64Load8U { memarg: MemArg } = visit_i64_load8_u "i64.load8_u";
            I64Load16S { memarg: MemArg } = visit_i64_load16_s "i64.load16_s";
            I64Load16U { memarg: MemArg } = visit_i64_load16_u "i64.load16_u";
            I64Load32S { memarg: MemArg } = visit_i64_load32_s "i64.load32_s";
            I64Load32U { memarg: MemArg } = visit_i64_load32_u "i64.load32_u";
            I32Store { memarg: MemArg } = visit_i32_store "i32.store";
            I64Store { memarg: MemArg } = visit_i64_store "i64.store";
            F32Store { memarg: MemArg } = visit_f32_store "f32.store";
            F64Store { memarg: MemArg } = visit_f64_store "f64.store";
            I32Store8 { memarg: MemArg } = visit_i32_store8 "i32.store8";
            I32Store16 { memarg: MemArg } = visit_i32_store16 "i32.store16";
            I64Store8 { memarg: MemArg } = visit_i64_store8 "i64.store8";
            I64Store16 { memarg: MemArg } = visit_i64_store16 "i64.store16";
            I64Store32 { memarg: MemArg } = visit_i64_store32 "i64.store32";
            // ---- integer comparisons ---------------------------------------------------
            I32Eqz = visit_i32_eqz "i32.eqz";
            I32Eq = visit_i32_eq "i32.eq";
            I32Ne = visit_i32_ne "i32.ne";
            I32LtS = visit_i32_lt_s "i32.lt_s";
            I32LtU = visit_i32_lt_u "i32.lt_u";
            I32GtS = visit_i32_gt_s "i32.gt_s";
            I32GtU = visit_i32_gt_u "i32.gt_u";
            I32LeS = visit_i32_le_s "i32.le_s";
            I32LeU = visit_i32_le_u "i32.le_u";
            I32GeS = visit_i32_ge_s "i32.ge_s";
            I32GeU = visit_i32_ge_u "i32.ge_u";
            I64Eqz = visit_i64_eqz "i64.eqz";
            I64Eq = visit_i64_eq "i64.eq";
            I64Ne = visit_i64_ne "i64.ne";
            I64LtS = visit_i64_lt_s "i64.lt_s";
            I64LtU = visit_i64_lt_u "i64.lt_u";
            I64GtS = visit_i64_gt_s "i64.gt_s";
            I64GtU = visit_i64_gt_u "i64.gt_u";
            I64LeS = visit_i64_le_s "i64.le_s";
            I64LeU = visit_i64_le_u "i64.le_u";
            I64GeS = visit_i64_ge_s "i64.ge_s";
            I64GeU = visit_i64_ge_u "i64.ge_u";
            // ---- float comparisons -------------------------------------------------------
            F32Eq = visit_f32_eq "f32.eq";
            F32Ne = visit_f32_ne "f32.ne";
            F32Lt = visit_f32_lt "f32.lt";
            F32Gt = visit_f32_gt "f32.gt";
            F32Le = visit_f32_le "f32.le";
            F32Ge = visit_f32_ge "f32.ge";
            F64Eq = visit_f64_eq "f64.eq";
            F64Ne = visit_f64_ne "f64.ne";
            F64Lt = visit_f64_lt "f64.lt";
            F64Gt = visit_f64_gt "f64.gt";
            F64Le = visit_f64_le "f64.le";
            F64Ge = visit_f64_ge "f64.ge";
            // ---- integer arithmetic ------------------------------------------------------
            I32Clz = visit_i32_clz "i32.clz";
            I32Ctz = visit_i32_ctz "i32.ctz";
            I32Popcnt = visit_i32_popcnt "i32.popcnt";
            I32Add = visit_i32_add "i32.add";
            I32Sub = visit_i32_sub "i32.sub";
            I32Mul = visit_i32_mul "i32.mul";
            I32DivS = visit_i32_div_s "i32.div_s";
            I32DivU = visit_i32_div_u "i32.div_u";
            I32RemS = visit_i32_rem_s "i32.rem_s";
            I32RemU = visit_i32_rem_u "i32.rem_u";
            I32And = visit_i32_and "i32.and";
            I32Or = visit_i32_or "i32.or";
            I32Xor = visit_i32_xor "i32.xor";
            I32Shl = visit_i32_shl "i32.shl";
            I32ShrS = visit_i32_shr_s "i32.shr_s";
            I32ShrU = visit_i32_shr_u "i32.shr_u";
            I32Rotl = visit_i32_rotl "i32.rotl";
            I32Rotr = visit_i32_rotr "i32.rotr";
            I64Clz = visit_i64_clz "i64.clz";
            I64Ctz = visit_i64_ctz "i64.ctz";
            I64Popcnt = visit_i64_popcnt "i64.popcnt";
            I64Add = visit_i64_add "i64.add";
            I64Sub = visit_i64_sub "i64.sub";
            I64Mul = visit_i64_mul "i64.mul";
            I64DivS = visit_i64_div_s "i64.div_s";
            I64DivU = visit_i64_div_u "i64.div_u";
            I64RemS = visit_i64_rem_s "i64.rem_s";
            I64RemU = visit_i64_rem_u "i64.rem_u";
            I64And = visit_i64_and "i64.and";
            I64Or = visit_i64_or "i64.or";
            I64Xor = visit_i64_xor "i64.xor";
            I64Shl = visit_i64_shl "i64.shl";
            I64ShrS = visit_i64_shr_s "i64.shr_s";
            I64ShrU = visit_i64_shr_u "i64.shr_u";
            I64Rotl = visit_i64_rotl "i64.rotl";
            I64Rotr = visit_i64_rotr "i64.rotr";
            // ---- float arithmetic ----------------------------------------------------------
            F32Abs = visit_f32_abs "f32.abs";
            F32Neg = visit_f32_neg "f32.neg";
            F32Ceil = visit_f32_ceil "f32.ceil";
            F32Floor = visit_f32_floor "f32.floor";
            F32Trunc = visit_f32_trunc "f32.trunc";
            F32Nearest = visit_f32_nearest "f32.nearest";
            F32Sqrt = visit_f32_sqrt "f32.sqrt";
            F32Add = visit_f32_add "f32.add";
            F32Sub = visit_f32_sub "f32.sub";
            F32Mul = visit_f32_mul "f32.mul";
            F32Div = visit_f32_div "f32.div";
            F32Min = visit_f32_min "f32.min";
            F32Max = visit_f32_max "f32.max";
            F32Copysign = visit_f32_copysign "f32.copysign";
            F64Abs = visit_f64_abs "f64.abs";
            F64Neg = visit_f64_neg "f64.neg";
            F64Ceil = visit_f64_ceil "f64.ceil";
            F64Floor = visit_f64_floor "f64.floor";
            F64Trunc = visit_f64_trunc "f64.trunc";
            F64Nearest = visit_f64_nearest "f64.nearest";
            F64Sqrt = visit_f64_sqrt "f64.sqrt";
            F64Add = visit_f64_add "f64.add";
            F64Sub = visit_f64_sub "f64.sub";
            F64Mul = visit_f64_mul "f64.mul";
            F64Div = visit_f64_div "f64.div";
            F64Min = visit_f64_min "f64.min";
            F64Max = visit_f64_max "f64.max";
            F64Copysign = visit_f64_copysign "f64.copysign";
            // ---- conversions -------------------------------------------------------------
            I32WrapI64 = visit_i32_wrap_i64 "i32.wrap_i64";
            I32TruncF32S = visit_i32_trunc_f32_s "i32.trunc_f32_s";
            I32TruncF32U = visit_i32_trunc_f32_u "i32.trunc_f32_u";
            I32TruncF64S = visit_i32_trunc_f64_s "i32.trunc_f64_s";
            I32TruncF64U = visit_i32_trunc_f64_u "i32.trunc_f64_u";
            I64ExtendI32S = visit_i64_extend_i32_s "i64.extend_i32_s";
            I64ExtendI32U = visit_i64_extend_i32_u "i64.extend_i32_u";
            I64TruncF32S = visit_i64_trunc_f32_s "i64.trunc_f32_s";
            I64TruncF32U = visit_i64_trunc_f32_u "i64.trunc_f32_u";
            I64TruncF64S = visit_i64_trunc_f64_s "i64.trunc_f64_s";
            I64TruncF64U = visit_i64_trunc_f64_u "i64.trunc_f64_u";
            F32ConvertI32S = visit_f32_convert_i32_s "f32.convert_i32_s";
            F32ConvertI32U = visit_f32_convert_i32_u "f32.convert_i32_u";
            F32ConvertI64S = visit_f32_convert_i64_s "f32.convert_i64_s";
            F32ConvertI64U = visit_f32_convert_i64_u "f32.convert_i64_u";
            F32DemoteF64 = visit_f32_demote_f64 "f32.demote_f64";
            F64ConvertI32S = visit_f64_convert_i32_s "f64.convert_i32_s";
            F64ConvertI32U = visit_f64_convert_i32_u "f64.convert_i32_u";
            F64ConvertI64S = visit_f64_convert_i64_s "f64.convert_i64_s";
            F64ConvertI64U = visit_f64_convert_i64_u "f64.convert_i64_u";
            F64PromoteF32 = visit_f64_promote_f32 "f64.promote_f32";
            I32ReinterpretF32 = visit_i32_reinterpret_f32 "i32.reinterpret_f32";
            I64ReinterpretF64 = visit_i64_reinterpret_f64 "i64.reinterpret_f64";
            F32ReinterpretI32 = visit_f32_reinterpret_i32 "f32.reinterpret_i32";
            F64ReinterpretI64 = visit_f64_reinterpret_i64 "f64.reinterpret_i64";
            I32Extend8S = visit_i32_extend8_s "i32.extend8_s";
            I32Extend16S = visit_i32_extend16_s "i32.extend16_s";
            I64Extend8S = visit_i64_extend8_s "i64.extend8_s";
            I64Extend16S = visit_i64_extend16_s "i64.extend16_s";
            I64Extend32S = visit_i64_extend32_s "i64.extend32_s";
            I32TruncSatF32S = visit_i32_trunc_sat_f32_s "i32.trunc_sat_f32_s";
            I32TruncSatF32U = visit_i32_trunc_sat_f32_u "i32.trunc_sat_f32_u";
            I32TruncSatF64S = visit_i32_trunc_sat_f64_s "i32.trunc_sat_f64_s";
            I32TruncSatF64U = visit_i32_trunc_sat_f64_u "i32.trunc_sat_f64_u";
            I64TruncSatF32S = visit_i64_trunc_sat_f32_s "i64.trunc_sat_f32_s";
            I64TruncSatF32U = visit_i64_trunc_sat_f32_u "i64.trunc_sat_f32_u";
            I64TruncSatF64S = visit_i64_trunc_sat_f64_s "i64.trunc_sat_f64_s";
            I64TruncSatF64U = visit_i64_trunc_sat_f64_u "i64.trunc_sat_f64_u";
        }
    };
}

/// A label: a point control can branch to. `Label(0)` is reserved (see [`Label::RETURN`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(pub u32);

impl Label {
    /// Not a real label: `return` is its own operator. Kept so label 0 is never a block.
    pub const RETURN: Label = Label(0);
}

/// How a label's calling convention is fixed (DESIGN.md §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LabelKind {
    /// The end of a `block`/`if`: any number of predecessors; the first one to arrive
    /// (a branch or the fallthrough at `label`) fixes a physical convention.
    Block,
    /// A loop header: bound right after its declaration, by the fallthrough, with a
    /// physical convention that back edges must match.
    Loop,
    /// The `else` of an `if`: exactly one predecessor (the `br_unless`), so its
    /// convention is virtual: the stack state at that branch, as it was.
    Else,
}

/// A numeric immediate of a `*.const` operator, with its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConstValue {
    I32(i32),
    I64(i64),
    /// The bits of an `f32`.
    F32(u32),
    /// The bits of an `f64`.
    F64(u64),
}

impl ConstValue {
    pub fn ty(self) -> ValType {
        match self {
            ConstValue::I32(_) => ValType::I32,
            ConstValue::I64(_) => ValType::I64,
            ConstValue::F32(_) => ValType::F32,
            ConstValue::F64(_) => ValType::F64,
        }
    }

    /// The value's bits, zero-extended to 64 (i32 and f32 as their 32-bit patterns).
    pub fn bits(self) -> u64 {
        match self {
            ConstValue::I32(v) => v as u32 as u64,
            ConstValue::I64(v) => v as u64,
            ConstValue::F32(v) => v as u64,
            ConstValue::F64(v) => v,
        }
    }
}

/// A memory access's immediate (spec §2.4.7 memarg), with its static offset's constant
/// index (the offset is a patchable immediate like a `*.const` operand).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemArg {
    /// The static offset in bytes.
    pub offset: u64,
    /// Which constant of the body the offset is.
    pub k: ConstIdx,
    /// log2 of the alignment hint.
    pub align: u8,
    pub memory: MemorySlot,
}

/// `br_table`'s targets: the last one is the default.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrTargets(pub Box<[Label]>);

impl BrTargets {
    pub fn default_target(&self) -> Label {
        *self.0.last().expect("br_table has a default target")
    }

    /// The indexed targets, without the default.
    pub fn cases(&self) -> &[Label] {
        &self.0[..self.0.len() - 1]
    }
}

macro_rules! define_op_enum {
    ($( $op:ident $({ $($field:ident : $ty:ty),* })? = $visit:ident $text:literal; )*) => {
        /// One Microwasm operator (generated from [`for_each_microwasm_op!`](crate::for_each_microwasm_op)).
        #[derive(Clone, Debug, PartialEq)]
        pub enum Op {
            $( $op $({ $($field: $ty),* })?, )*
        }

        /// A consumer of Microwasm, one method per operator (generated from
        /// [`for_each_microwasm_op!`](crate::for_each_microwasm_op)). The backend implements it; so does [`crate::Recorder`].
        pub trait Visitor {
            /// The byte offset, relative to the body's start, of the Wasm operator whose
            /// Microwasm follows (for trap sites and backtraces).
            fn set_srcloc(&mut self, _rel_offset: u32) {}
            $( fn $visit(&mut self $($(, $field: $ty)*)?) -> Result<(), crate::CompileError>; )*
        }

        impl Op {
            /// Hands this operator to `v`.
            pub fn visit<V: Visitor + ?Sized>(self, v: &mut V) -> Result<(), crate::CompileError> {
                match self {
                    $( Op::$op $({ $($field),* })? => v.$visit($($($field),*)?), )*
                }
            }

            /// The operator's name in Microwasm text.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Op::$op { .. } => $text, )*
                }
            }
        }

        impl core::fmt::Display for Op {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self {
                    $( Op::$op $({ $($field),* })? => {
                        f.write_str($text)?;
                        $($( write!(f, " {}", crate::print::Field($field))?; )*)?
                        Ok(())
                    } )*
                }
            }
        }

        /// Records every operator it visits (for printing and tests).
        impl Visitor for crate::Recorder {
            $( fn $visit(&mut self $($(, $field: $ty)*)?) -> Result<(), crate::CompileError> {
                self.ops.push(Op::$op $({ $($field),* })?);
                Ok(())
            } )*
        }
    };
}

for_each_microwasm_op!(define_op_enum);
