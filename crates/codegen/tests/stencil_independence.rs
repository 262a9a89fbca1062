//! Issue 2, acceptance 5: the same function inside two different modules — different
//! function indices, different globals, different data addresses in `i32.const` operands
//! and in load/store offsets — compiles to byte-identical stencils, and the finalized codes
//! differ exactly where the parameters and immediates differ.

use quickbeam_codegen::*;
use quickbeam_environ::*;

const MODULE_A: &str = r#"
(module
  (global $unused (mut i32) (i32.const 0))
  (global $g (mut i32) (i32.const 5))
  (memory 1)
  (func $other (result i32) i32.const 0)
  (func $callee (param i32) (result i32) local.get 0)
  (func $f (export "f") (param i32) (result i32)
    local.get 0
    i32.const 1024
    i32.add
    i32.load offset=16
    call $callee
    global.get $g
    i32.add
    i32.const 4096
    local.get 0
    i32.store offset=8))
"#;

const MODULE_B: &str = r#"
(module
  (import "env" "h" (func $h))
  (global $g (mut i32) (i32.const 7))
  (memory 2)
  (func $x (result i32) i32.const 1)
  (func $callee (param i32) (result i32) local.get 0)
  (func $y (result i32) i32.const 2)
  (func $f (export "f") (param i32) (result i32)
    local.get 0
    i32.const 2048
    i32.add
    i32.load offset=40
    call $callee
    global.get $g
    i32.add
    i32.const 8192
    local.get 0
    i32.store offset=12))
"#;

struct Compiled {
    env: ModuleEnv,
    funcs: Vec<CompiledFunction>,
    f: usize,
}

fn compile(wat: &str) -> Compiled {
    let bytes = wat::parse_str(wat).unwrap();
    let (env, inputs) = ModuleEnv::parse(&bytes, supported_features()).unwrap();
    let mut c = FunctionCompiler::new();
    let funcs: Vec<_> = inputs.into_iter().map(|i| c.compile(&env, i).unwrap()).collect();
    let f = (env.export("f").unwrap().index - env.num_imported_funcs) as usize;
    Compiled { env, funcs, f }
}

/// Finalizes function `f` of `c` with code laid out at 64-byte strides.
fn finalize_f(c: &Compiled) -> Vec<u8> {
    let offsets = VMOffsets::new(&c.env);
    let code_offsets: Vec<u32> = (0..c.funcs.len() as u32).map(|i| i * 4096).collect();
    let func = &c.funcs[c.f];
    let cx = FinalizeContext {
        offsets: &offsets,
        func_code_offsets: &code_offsets,
        num_imported_funcs: c.env.num_imported_funcs,
        this_offset: code_offsets[c.f],
    };
    let mut out = vec![0; func.stencil.code.len()];
    finalize(&func.stencil, &func.params, &func.consts, &cx, &mut out).unwrap();
    out
}

#[test]
fn same_function_in_two_modules_has_one_stencil() {
    let a = compile(MODULE_A);
    let b = compile(MODULE_B);
    let (fa, fb) = (&a.funcs[a.f], &b.funcs[b.f]);

    // The stencils are identical, byte for byte, with their sites and relocations.
    assert_eq!(fa.stencil, fb.stencil, "stencil depends on the module");
    assert_eq!(fa.slots, fb.slots, "what the code depends on is the same");
    // ... while the parameters and the constants differ.
    assert_ne!(fa.params, fb.params);
    assert_eq!(fa.consts, vec![1024, 16, 4096, 8]);
    assert_eq!(fb.consts, vec![2048, 40, 8192, 12]);
    assert_eq!(fa.params.funcs, vec![a.env.num_imported_funcs + 1]);
    assert_eq!(fb.params.funcs, vec![b.env.num_imported_funcs + 1]);
    assert_ne!(fa.params.funcs, fb.params.funcs, "the callee has different indices");
    assert_eq!((fa.params.globals.clone(), fb.params.globals.clone()), (vec![1], vec![0]));

    // Sites hold no values in the stencil.
    for s in &fa.stencil.const_sites {
        let at = s.offset as usize;
        assert!(fa.stencil.code[at..at + 4].iter().all(|&b| b == 0), "site {s:?} holds a value");
    }

    // The finalized codes differ exactly inside sites and relocations.
    let (ca, cb) = (finalize_f(&a), finalize_f(&b));
    assert_eq!(ca.len(), cb.len());
    let mut patched = vec![false; ca.len()];
    for s in &fa.stencil.const_sites {
        let w = if s.encoding == SiteEncoding::Imm64 { 8 } else { 4 };
        patched[s.offset as usize..s.offset as usize + w].fill(true);
        // Each site holds its own module's constant.
        let va = u32::from_le_bytes(ca[s.offset as usize..s.offset as usize + 4].try_into().unwrap());
        let vb = u32::from_le_bytes(cb[s.offset as usize..s.offset as usize + 4].try_into().unwrap());
        assert_eq!((va as u64, vb as u64), (fa.consts[s.k.index()], fb.consts[s.k.index()]));
    }
    for r in &fa.stencil.relocs {
        patched[r.offset as usize..r.offset as usize + 4].fill(true);
    }
    let differing: Vec<usize> = (0..ca.len()).filter(|&i| ca[i] != cb[i]).collect();
    assert!(!differing.is_empty());
    for &i in &differing {
        assert!(patched[i], "byte {i:#x} differs outside every site and relocation");
    }
    // Every site and relocation whose value differs between the modules shows up.
    let kinds: Vec<_> = fa.stencil.relocs.iter().map(|r| r.kind).collect();
    assert!(kinds.contains(&RelocKind::CallRel32(FuncSlot(0))));
    assert!(kinds.contains(&RelocKind::GlobalOffset(GlobalSlot(0))));
    assert_eq!(fa.stencil.const_sites.len(), 4, "two i32.const operands and two offsets");
}
