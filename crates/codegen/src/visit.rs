//! The Microwasm visitor of the code generator: one short method per operator, each
//! delegating to a typed helper of [`crate::codegen`], [`crate::int`], [`crate::float`]
//! or [`crate::memory`].

use crate::codegen::*;
use crate::float::*;
use crate::int::*;
use crate::masm::{Alu, Cond, Ext, FOp, FSize, RoundMode, Shift, Size, Width};
use quickbeam_environ::*;
use quickbeam_microwasm::*;
use quickbeam_microwasm::Label;

macro_rules! int_binops {
    ($($visit:ident => $helper:ident($($arg:expr),*);)*) => {
        $(fn $visit(&mut self) -> Result<(), CompileError> { self.$helper($($arg),*) })*
    };
}

impl Visitor for CodeGen {
    fn set_srcloc(&mut self, rel: u32) {
        CodeGen::set_srcloc(self, rel)
    }

    // ---- stack ----
    fn visit_pick(&mut self, depth: u32) -> Result<(), CompileError> {
        self.flush_swap()?;
        self.pick(depth)
    }
    fn visit_swap(&mut self, depth: u32) -> Result<(), CompileError> {
        self.swap_deferred(depth)
    }
    fn visit_drop(&mut self) -> Result<(), CompileError> {
        self.drop_after_swap()
    }
    fn visit_zero(&mut self, ty: ValType) -> Result<(), CompileError> {
        self.push(ty, Loc::Const { bits: 0, k: None });
        Ok(())
    }
    fn visit_const(&mut self, k: ConstIdx, value: ConstValue) -> Result<(), CompileError> {
        self.pin(k, crate::stencil::Guard::Any);
        self.push_const(value, Some(k));
        Ok(())
    }
    fn visit_select(&mut self) -> Result<(), CompileError> {
        self.select()
    }

    // ---- control ----
    fn visit_declare(&mut self, label: Label, kind: LabelKind, params: u32, arity: u32) -> Result<(), CompileError> {
        self.declare(label, kind, params, arity);
        Ok(())
    }
    fn visit_bind(&mut self, label: Label) -> Result<(), CompileError> {
        self.bind(label)
    }
    fn visit_br(&mut self, target: Label) -> Result<(), CompileError> {
        self.br(target)
    }
    fn visit_br_if(&mut self, target: Label) -> Result<(), CompileError> {
        self.test_top()?;
        self.br_cond(Cond::Ne, target)
    }
    fn visit_br_unless(&mut self, target: Label) -> Result<(), CompileError> {
        self.test_top()?;
        self.br_cond(Cond::E, target)
    }
    fn visit_br_table(&mut self, targets: BrTargets) -> Result<(), CompileError> {
        let v = self.pop()?;
        let index = self.into_owned_gpr(v)?;
        self.br_table(index, &targets.0)
    }
    fn visit_return(&mut self) -> Result<(), CompileError> {
        self.ret()
    }
    fn visit_unreachable(&mut self) -> Result<(), CompileError> {
        let l = self.trap_label(TrapCode::UnreachableCodeReached);
        self.masm.jmp(l);
        self.set_unreachable();
        Ok(())
    }
    fn visit_call(&mut self, func: FuncSlot, ty: FuncType) -> Result<(), CompileError> {
        self.call_direct(func, &ty)
    }
    fn visit_call_import(&mut self, func: FuncSlot, ty: FuncType) -> Result<(), CompileError> {
        self.call_import(func, &ty)
    }
    fn visit_call_indirect(&mut self, type_slot: TypeSlot, table: TableSlot, ty: FuncType) -> Result<(), CompileError> {
        self.call_indirect(type_slot, table, &ty)
    }

    // ---- globals, references, tables ----
    fn visit_global_get(&mut self, global: GlobalSlot, ty: ValType) -> Result<(), CompileError> {
        self.global_get(global, ty)
    }
    fn visit_global_set(&mut self, global: GlobalSlot, ty: ValType) -> Result<(), CompileError> {
        self.global_set(global, ty)
    }
    fn visit_ref_null(&mut self, ty: RefType) -> Result<(), CompileError> {
        self.push(ty.into(), Loc::Const { bits: 0, k: None });
        Ok(())
    }
    fn visit_ref_is_null(&mut self) -> Result<(), CompileError> {
        self.int_unop_cond(Size::S64)
    }
    fn visit_ref_func(&mut self, func: FuncSlot) -> Result<(), CompileError> {
        self.ref_func(func)
    }
    fn visit_table_get(&mut self, table: TableSlot) -> Result<(), CompileError> {
        self.table_get(table)
    }
    fn visit_table_set(&mut self, table: TableSlot) -> Result<(), CompileError> {
        self.table_set(table)
    }
    fn visit_table_size(&mut self, table: TableSlot) -> Result<(), CompileError> {
        self.table_size(table)
    }
    fn visit_table_grow(&mut self, table: TableSlot) -> Result<(), CompileError> {
        self.table_builtin(Builtin::TableGrow, &[table_idx(table)], 2, Some(ValType::I32), None)
    }
    fn visit_table_fill(&mut self, table: TableSlot) -> Result<(), CompileError> {
        self.table_builtin(Builtin::TableFill, &[table_idx(table)], 3, None, Some(TrapCode::TableOutOfBounds))
    }
    fn visit_table_copy(&mut self, dst: TableSlot, src: TableSlot) -> Result<(), CompileError> {
        self.table_builtin(Builtin::TableCopy, &[table_idx(dst), table_idx(src)], 3, None, Some(TrapCode::TableOutOfBounds))
    }
    fn visit_table_init(&mut self, table: TableSlot, elem: ElemSlot) -> Result<(), CompileError> {
        let e = crate::stencil::RelocKind::ElemIndex(elem);
        self.table_builtin(Builtin::TableInit, &[table_idx(table), e], 3, None, Some(TrapCode::TableOutOfBounds))
    }
    fn visit_elem_drop(&mut self, elem: ElemSlot) -> Result<(), CompileError> {
        self.table_builtin(Builtin::ElemDrop, &[crate::stencil::RelocKind::ElemIndex(elem)], 0, None, None)
    }

    // ---- memory ----
    fn visit_memory_size(&mut self, mem: MemorySlot) -> Result<(), CompileError> {
        self.memory_size(mem)
    }
    fn visit_memory_grow(&mut self, mem: MemorySlot) -> Result<(), CompileError> {
        self.table_builtin(Builtin::MemoryGrow, &[mem_idx(mem)], 1, Some(ValType::I32), None)
    }
    fn visit_memory_fill(&mut self, mem: MemorySlot) -> Result<(), CompileError> {
        self.table_builtin(Builtin::MemoryFill, &[mem_idx(mem)], 3, None, Some(TrapCode::MemoryOutOfBounds))
    }
    fn visit_memory_copy(&mut self, dst: MemorySlot, src: MemorySlot) -> Result<(), CompileError> {
        self.table_builtin(Builtin::MemoryCopy, &[mem_idx(dst), mem_idx(src)], 3, None, Some(TrapCode::MemoryOutOfBounds))
    }
    fn visit_memory_init(&mut self, mem: MemorySlot, data: DataSlot) -> Result<(), CompileError> {
        let d = crate::stencil::RelocKind::DataIndex(data);
        self.table_builtin(Builtin::MemoryInit, &[mem_idx(mem), d], 3, None, Some(TrapCode::MemoryOutOfBounds))
    }
    fn visit_data_drop(&mut self, data: DataSlot) -> Result<(), CompileError> {
        self.table_builtin(Builtin::DataDrop, &[crate::stencil::RelocKind::DataIndex(data)], 0, None, None)
    }
    fn visit_i32_load(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_int(memarg, ValType::I32, Width::B32, Ext::Unsigned)
    }
    fn visit_i64_load(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_int(memarg, ValType::I64, Width::B64, Ext::Unsigned)
    }
    fn visit_f32_load(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_float(memarg, FSize::F32)
    }
    fn visit_f64_load(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_float(memarg, FSize::F64)
    }
    fn visit_i32_load8_s(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_int(memarg, ValType::I32, Width::B8, Ext::Signed)
    }
    fn visit_i32_load8_u(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_int(memarg, ValType::I32, Width::B8, Ext::Unsigned)
    }
    fn visit_i32_load16_s(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_int(memarg, ValType::I32, Width::B16, Ext::Signed)
    }
    fn visit_i32_load16_u(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_int(memarg, ValType::I32, Width::B16, Ext::Unsigned)
    }
    fn visit_i64_load8_s(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_int(memarg, ValType::I64, Width::B8, Ext::Signed)
    }
    fn visit_i64_load8_u(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_int(memarg, ValType::I64, Width::B8, Ext::Unsigned)
    }
    fn visit_i64_load16_s(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_int(memarg, ValType::I64, Width::B16, Ext::Signed)
    }
    fn visit_i64_load16_u(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_int(memarg, ValType::I64, Width::B16, Ext::Unsigned)
    }
    fn visit_i64_load32_s(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_int(memarg, ValType::I64, Width::B32, Ext::Signed)
    }
    fn visit_i64_load32_u(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.load_int(memarg, ValType::I64, Width::B32, Ext::Unsigned)
    }
    fn visit_i32_store(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.store_int(memarg, Width::B32)
    }
    fn visit_i64_store(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.store_int(memarg, Width::B64)
    }
    fn visit_f32_store(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.store_float(memarg, FSize::F32)
    }
    fn visit_f64_store(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.store_float(memarg, FSize::F64)
    }
    fn visit_i32_store8(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.store_int(memarg, Width::B8)
    }
    fn visit_i32_store16(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.store_int(memarg, Width::B16)
    }
    fn visit_i64_store8(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.store_int(memarg, Width::B8)
    }
    fn visit_i64_store16(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.store_int(memarg, Width::B16)
    }
    fn visit_i64_store32(&mut self, memarg: MemArg) -> Result<(), CompileError> {
        self.store_int(memarg, Width::B32)
    }

    int_binops! {
        // ---- integer comparisons ----
        visit_i32_eqz => int_unop_cond(Size::S32);
        visit_i32_eq => int_cmp(Size::S32, Cond::E);
        visit_i32_ne => int_cmp(Size::S32, Cond::Ne);
        visit_i32_lt_s => int_cmp(Size::S32, Cond::L);
        visit_i32_lt_u => int_cmp(Size::S32, Cond::B);
        visit_i32_gt_s => int_cmp(Size::S32, Cond::G);
        visit_i32_gt_u => int_cmp(Size::S32, Cond::A);
        visit_i32_le_s => int_cmp(Size::S32, Cond::Le);
        visit_i32_le_u => int_cmp(Size::S32, Cond::Be);
        visit_i32_ge_s => int_cmp(Size::S32, Cond::Ge);
        visit_i32_ge_u => int_cmp(Size::S32, Cond::Ae);
        visit_i64_eqz => int_unop_cond(Size::S64);
        visit_i64_eq => int_cmp(Size::S64, Cond::E);
        visit_i64_ne => int_cmp(Size::S64, Cond::Ne);
        visit_i64_lt_s => int_cmp(Size::S64, Cond::L);
        visit_i64_lt_u => int_cmp(Size::S64, Cond::B);
        visit_i64_gt_s => int_cmp(Size::S64, Cond::G);
        visit_i64_gt_u => int_cmp(Size::S64, Cond::A);
        visit_i64_le_s => int_cmp(Size::S64, Cond::Le);
        visit_i64_le_u => int_cmp(Size::S64, Cond::Be);
        visit_i64_ge_s => int_cmp(Size::S64, Cond::Ge);
        visit_i64_ge_u => int_cmp(Size::S64, Cond::Ae);
        // ---- float comparisons ----
        visit_f32_eq => float_cmp(FSize::F32, FCmp::Eq);
        visit_f32_ne => float_cmp(FSize::F32, FCmp::Ne);
        visit_f32_lt => float_cmp(FSize::F32, FCmp::Lt);
        visit_f32_gt => float_cmp(FSize::F32, FCmp::Gt);
        visit_f32_le => float_cmp(FSize::F32, FCmp::Le);
        visit_f32_ge => float_cmp(FSize::F32, FCmp::Ge);
        visit_f64_eq => float_cmp(FSize::F64, FCmp::Eq);
        visit_f64_ne => float_cmp(FSize::F64, FCmp::Ne);
        visit_f64_lt => float_cmp(FSize::F64, FCmp::Lt);
        visit_f64_gt => float_cmp(FSize::F64, FCmp::Gt);
        visit_f64_le => float_cmp(FSize::F64, FCmp::Le);
        visit_f64_ge => float_cmp(FSize::F64, FCmp::Ge);
        // ---- integer arithmetic ----
        visit_i32_clz => int_bitcount(Size::S32, BitCount::Clz);
        visit_i32_ctz => int_bitcount(Size::S32, BitCount::Ctz);
        visit_i32_popcnt => int_bitcount(Size::S32, BitCount::Popcnt);
        visit_i32_add => int_alu(Size::S32, Alu::Add);
        visit_i32_sub => int_alu(Size::S32, Alu::Sub);
        visit_i32_mul => int_mul(Size::S32);
        visit_i32_div_s => int_div(Size::S32, DivKind::DivS);
        visit_i32_div_u => int_div(Size::S32, DivKind::DivU);
        visit_i32_rem_s => int_div(Size::S32, DivKind::RemS);
        visit_i32_rem_u => int_div(Size::S32, DivKind::RemU);
        visit_i32_and => int_alu(Size::S32, Alu::And);
        visit_i32_or => int_alu(Size::S32, Alu::Or);
        visit_i32_xor => int_alu(Size::S32, Alu::Xor);
        visit_i32_shl => int_shift(Size::S32, Shift::Shl);
        visit_i32_shr_s => int_shift(Size::S32, Shift::Sar);
        visit_i32_shr_u => int_shift(Size::S32, Shift::Shr);
        visit_i32_rotl => int_shift(Size::S32, Shift::Rol);
        visit_i32_rotr => int_shift(Size::S32, Shift::Ror);
        visit_i64_clz => int_bitcount(Size::S64, BitCount::Clz);
        visit_i64_ctz => int_bitcount(Size::S64, BitCount::Ctz);
        visit_i64_popcnt => int_bitcount(Size::S64, BitCount::Popcnt);
        visit_i64_add => int_alu(Size::S64, Alu::Add);
        visit_i64_sub => int_alu(Size::S64, Alu::Sub);
        visit_i64_mul => int_mul(Size::S64);
        visit_i64_div_s => int_div(Size::S64, DivKind::DivS);
        visit_i64_div_u => int_div(Size::S64, DivKind::DivU);
        visit_i64_rem_s => int_div(Size::S64, DivKind::RemS);
        visit_i64_rem_u => int_div(Size::S64, DivKind::RemU);
        visit_i64_and => int_alu(Size::S64, Alu::And);
        visit_i64_or => int_alu(Size::S64, Alu::Or);
        visit_i64_xor => int_alu(Size::S64, Alu::Xor);
        visit_i64_shl => int_shift(Size::S64, Shift::Shl);
        visit_i64_shr_s => int_shift(Size::S64, Shift::Sar);
        visit_i64_shr_u => int_shift(Size::S64, Shift::Shr);
        visit_i64_rotl => int_shift(Size::S64, Shift::Rol);
        visit_i64_rotr => int_shift(Size::S64, Shift::Ror);
        // ---- float arithmetic ----
        visit_f32_abs => float_sign(FSize::F32, SignOp::Abs);
        visit_f32_neg => float_sign(FSize::F32, SignOp::Neg);
        visit_f32_ceil => float_round(FSize::F32, RoundMode::Ceil);
        visit_f32_floor => float_round(FSize::F32, RoundMode::Floor);
        visit_f32_trunc => float_round(FSize::F32, RoundMode::Trunc);
        visit_f32_nearest => float_round(FSize::F32, RoundMode::Nearest);
        visit_f32_sqrt => float_sqrt(FSize::F32);
        visit_f32_add => float_binop(FSize::F32, FOp::Add);
        visit_f32_sub => float_binop(FSize::F32, FOp::Sub);
        visit_f32_mul => float_binop(FSize::F32, FOp::Mul);
        visit_f32_div => float_binop(FSize::F32, FOp::Div);
        visit_f32_min => float_minmax(FSize::F32, FOp::Min);
        visit_f32_max => float_minmax(FSize::F32, FOp::Max);
        visit_f32_copysign => float_copysign(FSize::F32);
        visit_f64_abs => float_sign(FSize::F64, SignOp::Abs);
        visit_f64_neg => float_sign(FSize::F64, SignOp::Neg);
        visit_f64_ceil => float_round(FSize::F64, RoundMode::Ceil);
        visit_f64_floor => float_round(FSize::F64, RoundMode::Floor);
        visit_f64_trunc => float_round(FSize::F64, RoundMode::Trunc);
        visit_f64_nearest => float_round(FSize::F64, RoundMode::Nearest);
        visit_f64_sqrt => float_sqrt(FSize::F64);
        visit_f64_add => float_binop(FSize::F64, FOp::Add);
        visit_f64_sub => float_binop(FSize::F64, FOp::Sub);
        visit_f64_mul => float_binop(FSize::F64, FOp::Mul);
        visit_f64_div => float_binop(FSize::F64, FOp::Div);
        visit_f64_min => float_minmax(FSize::F64, FOp::Min);
        visit_f64_max => float_minmax(FSize::F64, FOp::Max);
        visit_f64_copysign => float_copysign(FSize::F64);
        // ---- conversions ----
        visit_i32_wrap_i64 => int_wrap();
        visit_i32_trunc_f32_s => trunc(FSize::F32, Size::S32, Ext::Signed, TruncKind::Checked);
        visit_i32_trunc_f32_u => trunc(FSize::F32, Size::S32, Ext::Unsigned, TruncKind::Checked);
        visit_i32_trunc_f64_s => trunc(FSize::F64, Size::S32, Ext::Signed, TruncKind::Checked);
        visit_i32_trunc_f64_u => trunc(FSize::F64, Size::S32, Ext::Unsigned, TruncKind::Checked);
        visit_i64_extend_i32_s => int_extend(ValType::I64, Width::B32, Ext::Signed);
        visit_i64_extend_i32_u => int_extend(ValType::I64, Width::B32, Ext::Unsigned);
        visit_i64_trunc_f32_s => trunc(FSize::F32, Size::S64, Ext::Signed, TruncKind::Checked);
        visit_i64_trunc_f32_u => trunc(FSize::F32, Size::S64, Ext::Unsigned, TruncKind::Checked);
        visit_i64_trunc_f64_s => trunc(FSize::F64, Size::S64, Ext::Signed, TruncKind::Checked);
        visit_i64_trunc_f64_u => trunc(FSize::F64, Size::S64, Ext::Unsigned, TruncKind::Checked);
        visit_f32_convert_i32_s => convert(FSize::F32, Size::S32, Ext::Signed);
        visit_f32_convert_i32_u => convert(FSize::F32, Size::S32, Ext::Unsigned);
        visit_f32_convert_i64_s => convert(FSize::F32, Size::S64, Ext::Signed);
        visit_f32_convert_i64_u => convert(FSize::F32, Size::S64, Ext::Unsigned);
        visit_f32_demote_f64 => float_convert(FSize::F32);
        visit_f64_convert_i32_s => convert(FSize::F64, Size::S32, Ext::Signed);
        visit_f64_convert_i32_u => convert(FSize::F64, Size::S32, Ext::Unsigned);
        visit_f64_convert_i64_s => convert(FSize::F64, Size::S64, Ext::Signed);
        visit_f64_convert_i64_u => convert(FSize::F64, Size::S64, Ext::Unsigned);
        visit_f64_promote_f32 => float_convert(FSize::F64);
        visit_i32_reinterpret_f32 => reinterpret(ValType::I32);
        visit_i64_reinterpret_f64 => reinterpret(ValType::I64);
        visit_f32_reinterpret_i32 => reinterpret(ValType::F32);
        visit_f64_reinterpret_i64 => reinterpret(ValType::F64);
        visit_i32_extend8_s => int_extend(ValType::I32, Width::B8, Ext::Signed);
        visit_i32_extend16_s => int_extend(ValType::I32, Width::B16, Ext::Signed);
        visit_i64_extend8_s => int_extend(ValType::I64, Width::B8, Ext::Signed);
        visit_i64_extend16_s => int_extend(ValType::I64, Width::B16, Ext::Signed);
        visit_i64_extend32_s => int_extend(ValType::I64, Width::B32, Ext::Signed);
        visit_i32_trunc_sat_f32_s => trunc(FSize::F32, Size::S32, Ext::Signed, TruncKind::Saturating);
        visit_i32_trunc_sat_f32_u => trunc(FSize::F32, Size::S32, Ext::Unsigned, TruncKind::Saturating);
        visit_i32_trunc_sat_f64_s => trunc(FSize::F64, Size::S32, Ext::Signed, TruncKind::Saturating);
        visit_i32_trunc_sat_f64_u => trunc(FSize::F64, Size::S32, Ext::Unsigned, TruncKind::Saturating);
        visit_i64_trunc_sat_f32_s => trunc(FSize::F32, Size::S64, Ext::Signed, TruncKind::Saturating);
        visit_i64_trunc_sat_f32_u => trunc(FSize::F32, Size::S64, Ext::Unsigned, TruncKind::Saturating);
        visit_i64_trunc_sat_f64_s => trunc(FSize::F64, Size::S64, Ext::Signed, TruncKind::Saturating);
        visit_i64_trunc_sat_f64_u => trunc(FSize::F64, Size::S64, Ext::Unsigned, TruncKind::Saturating);
    }
}

fn table_idx(t: TableSlot) -> crate::stencil::RelocKind {
    crate::stencil::RelocKind::TableIndex(t)
}

fn mem_idx(m: MemorySlot) -> crate::stencil::RelocKind {
    crate::stencil::RelocKind::MemoryIndex(m)
}
