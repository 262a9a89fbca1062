//! Drives the code generator with hand-written Microwasm and checks the code it emits.

use quickbeam_codegen::codegen::CodeGen;
use quickbeam_codegen::disasm::disassemble;
use quickbeam_environ::*;
use quickbeam_microwasm::*;

fn gen(ty: FuncType, ops: Vec<Op>, nconsts: usize) -> quickbeam_codegen::Stencil {
    let mut cg = CodeGen::new(&ty);
    for op in ops {
        op.visit(&mut cg).unwrap();
    }
    cg.finish(nconsts).unwrap()
}

#[test]
fn add_two_params() {
    let ty = FuncType::new([ValType::I32, ValType::I32], [ValType::I32]);
    let s = gen(ty, vec![Op::Pick { depth: 1 }, Op::Pick { depth: 1 }, Op::I32Add, Op::Return], 0);
    println!("{}", disassemble(&s));
    assert!(disassemble(&s).contains("add"));
}

#[test]
fn constant_operand_is_a_site() {
    let ty = FuncType::new([ValType::I32], [ValType::I32]);
    let ops = vec![
        Op::Pick { depth: 0 },
        Op::Const { k: ConstIdx(0), value: ConstValue::I32(1234) },
        Op::I32Add,
        Op::Return,
    ];
    let s = gen(ty, ops, 1);
    println!("{}", disassemble(&s));
    assert_eq!(s.const_sites.len(), 1);
    let at = s.const_sites[0].offset as usize;
    assert_eq!(&s.code[at..at + 4], &[0; 4], "a stencil holds no constant values");
    let offsets = VMOffsets { num_funcs: 0, num_tables: 0, num_memories: 0, num_globals: 0, num_types: 0 };
    let cx = quickbeam_codegen::FinalizeContext {
        offsets: &offsets,
        func_code_offsets: &[],
        num_imported_funcs: 0,
        this_offset: 0,
    };
    let mut out = vec![0; s.code.len()];
    quickbeam_codegen::finalize(&s, &FunctionParameters::default(), &[1234], &cx, &mut out).unwrap();
    assert_eq!(&out[at..at + 4], &1234u32.to_le_bytes(), "finalize writes the constant");
}
