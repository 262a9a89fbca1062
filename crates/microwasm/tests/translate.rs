//! Behaviour of the translator beyond the snapshots: constants, slots, errors, and a
//! stack-discipline check over every function of the benchmark corpus.

mod common;

use common::*;
use quickbeam_environ::*;
use quickbeam_microwasm::*;
use std::collections::HashMap;

// ---- constants and slots ------------------------------------------------------------------

#[test]
fn consts_in_body_order() {
    let f = translate_wat(
        r#"
(module
  (memory 1)
  (func (result i32)
    i64.const -2
    f32.const 1.5
    f64.const -0.0
    drop drop drop
    i32.const -1
    i32.load offset=100
    drop
    i32.const 7
    return
    i32.const 9          ;; dead code still takes its index
    i32.load16_s offset=65535))
"#,
    )
    .unwrap();
    let t = &f[0].translation;
    assert_eq!(
        t.consts,
        vec![(-2i64) as u64, 1.5f32.to_bits() as u64, (-0.0f64).to_bits(), 0xffff_ffff, 100, 7, 9, 65535]
    );
    // Each emitted constant and offset names its index.
    let mut ks = Vec::new();
    for op in &f[0].ops {
        match op {
            Op::Const { k, value } => {
                assert_eq!(t.consts[k.index()], value.bits());
                ks.push(k.0);
            }
            Op::I32Load { memarg } => {
                assert_eq!(t.consts[memarg.k.index()], memarg.offset);
                ks.push(memarg.k.0);
            }
            _ => {}
        }
    }
    assert_eq!(ks, vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn func_slots_in_first_use_order() {
    let f = translate_wat(
        r#"
(module
  (import "env" "g" (func $g))
  (func $f1) (func $f2) (func $f3) (func $f4) (func $f5)
  (func
    call 5
    call 3
    call 5
    call 0
    call 3))
"#,
    )
    .unwrap();
    let f = f.last().unwrap();
    let calls: Vec<(&str, u32)> = f
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::Call { func, .. } => Some(("call", func.0)),
            Op::CallImport { func, .. } => Some(("call_import", func.0)),
            _ => None,
        })
        .collect();
    assert_eq!(calls, vec![("call", 0), ("call", 1), ("call", 0), ("call_import", 2), ("call", 1)]);
    assert_eq!(f.translation.params.funcs, vec![5, 3, 0]);
    let imported: Vec<bool> = f.translation.slots.funcs.iter().map(|s| s.imported).collect();
    assert_eq!(imported, vec![false, false, true]);
}

#[test]
fn slots_of_every_kind() {
    let f = translate_wat(
        r#"
(module
  (type $t0 (func))
  (type $t1 (func (param i32)))
  (global $a (mut i32) (i32.const 0))
  (global $b (mut i64) (i64.const 0))
  (memory 1)
  (table $x 1 funcref)
  (table $y 1 funcref)
  (data $d0 "a") (data $d1 "b")
  (elem $e0 func) (elem $e1 func)
  (func
    global.get $b drop
    global.get $a drop
    global.get $b drop
    i32.const 0 i32.const 0 call_indirect $y (type $t1)
    i32.const 0 call_indirect $x (type $t0)
    data.drop $d1
    data.drop $d0
    elem.drop $e1
    table.size $y drop
    table.size $x drop))
"#,
    )
    .unwrap();
    let p = &f[0].translation.params;
    assert_eq!(p.globals, vec![1, 0]);
    assert_eq!(p.types, vec![1, 0]);
    assert_eq!(p.tables, vec![1, 0]);
    assert_eq!(p.datas, vec![1, 0]);
    assert_eq!(p.elems, vec![1]);
    let s = &f[0].translation.slots;
    assert_eq!(s.globals.iter().map(|g| g.content).collect::<Vec<_>>(), vec![ValType::I64, ValType::I32]);
    assert_eq!(s.datas, 2);
}

#[test]
fn slots_reset_between_functions() {
    let f = translate_wat(
        r#"
(module
  (func $a) (func $b)
  (func call $b call $a)
  (func call $a))
"#,
    )
    .unwrap();
    assert_eq!(f[2].translation.params.funcs, vec![1, 0]);
    assert_eq!(f[3].translation.params.funcs, vec![0]);
    assert!(matches!(f[3].ops[0], Op::Call { func: FuncSlot(0), .. }));
}

// ---- errors -------------------------------------------------------------------------------

fn invalid_offset(r: Result<Vec<Translated>, CompileError>) -> (String, u64) {
    match r {
        Err(CompileError::Invalid(e)) => (e.message, e.offset),
        Err(e) => panic!("expected an invalid body, got {e:?}"),
        Ok(_) => panic!("expected an invalid body, got a translation"),
    }
}

#[test]
fn invalid_body_reports_offset() {
    // `i64.const 1; end` in a function returning i32: the mismatch is found at `end`,
    // the module's last byte.
    let wasm = wat::parse_str("(module (func (result i32) i64.const 1))").unwrap();
    let (msg, offset) = invalid_offset(translate_module(&wasm, supported_features()));
    assert!(msg.contains("type mismatch"), "{msg}");
    assert_eq!(offset, wasm.len() as u64 - 1);

    // An out-of-range local: reported at the `local.get` (4 bytes before the end).
    let wasm = wat::parse_str("(module (func local.get 5 drop))").unwrap();
    assert_eq!(&wasm[wasm.len() - 4..], &[0x20, 0x05, 0x1a, 0x0b]);
    let (msg, offset) = invalid_offset(translate_module(&wasm, supported_features()));
    assert!(msg.contains("local"), "{msg}");
    assert_eq!(offset, wasm.len() as u64 - 4);
}

/// A module of one `[] -> []` function with the given body (locals included).
fn module_with_body(body: &[u8]) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    m.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]); // type section
    m.extend_from_slice(&[0x03, 0x02, 0x01, 0x00]); // function section
    m.extend_from_slice(&[0x0a, body.len() as u8 + 2, 0x01, body.len() as u8]); // code section
    m.extend_from_slice(body);
    m
}

#[test]
fn malformed_structure_reports_offset() {
    // The reader asks the translator's control stack for the innermost frame.
    let wasm = module_with_body(&[0x00, 0x0b, 0x01, 0x0b]); // end; nop; end
    let (msg, offset) = invalid_offset(translate_module(&wasm, supported_features()));
    assert!(msg.contains("operators remaining after end"), "{msg}");
    assert_eq!(offset, wasm.len() as u64 - 2);

    let wasm = module_with_body(&[0x00, 0x05, 0x0b]); // else; end
    let (msg, offset) = invalid_offset(translate_module(&wasm, supported_features()));
    assert!(msg.contains("`else` found outside `If` block"), "{msg}");
    // wasmparser reports this one just after the `else` opcode.
    assert_eq!(offset, wasm.len() as u64 - 1);

    let wasm = module_with_body(&[0x00, 0x02, 0x40, 0x0b]); // block; end (no function end)
    let (msg, _) = invalid_offset(translate_module(&wasm, supported_features()));
    assert!(msg.contains("control frames remain"), "{msg}");
}

#[test]
fn translator_is_reusable_after_an_error() {
    let wasm = wat::parse_str("(module (func (result i32) i64.const 1) (func (result i32) i32.const 2))").unwrap();
    let (env, bodies) = ModuleEnv::parse(&wasm, supported_features()).unwrap();
    let mut t = Translator::new();
    let mut bodies = bodies.into_iter();
    let mut rec = Recorder::default();
    assert!(matches!(t.translate(&env, bodies.next().unwrap(), &mut rec), Err(CompileError::Invalid(_))));
    let mut rec = Recorder::default();
    let tr = t.translate(&env, bodies.next().unwrap(), &mut rec).unwrap();
    assert_eq!(tr.consts, vec![2]);
    assert_eq!(print_ops(&rec.ops), "  const #0 i32:2\n  return\n");
}

#[test]
fn unsupported_proposals() {
    use wasmparser::WasmFeatures as F;
    let wasm = wat::parse_str("(module (func return_call 0))").unwrap();
    assert_eq!(
        translate_module(&wasm, supported_features() | F::TAIL_CALL).err(),
        Some(CompileError::Unsupported("tail_call"))
    );
    // Rejected by the validator when the feature is off.
    assert!(matches!(translate_module(&wasm, supported_features()), Err(CompileError::Invalid(_))));

    let wasm = wat::parse_str("(module (func v128.const i32x4 0 0 0 0 drop))").unwrap();
    assert_eq!(translate_module(&wasm, supported_features() | F::SIMD).err(), Some(CompileError::Unsupported("simd")));
    let (msg, _) = invalid_offset(translate_module(&wasm, supported_features()));
    assert!(msg.contains("SIMD"), "{msg}");
}

// ---- stack discipline over the corpus -----------------------------------------------------

/// A sink that stores nothing but simulates the stack height and checks the translator's
/// promises: every operator but `label` is emitted in live code; branches leave at least
/// a label's params; a `br_unless` to an `else` label is its only predecessor and has
/// exactly its params; a reachable fallthrough into a label has exactly its params;
/// loops are bound at their declaration and only branched to backwards; every label is
/// declared once and bound once; constants are numbered in increasing order.
struct Checker {
    height: u32,
    reachable: bool,
    results: u32,
    labels: HashMap<u32, LabelInfo>,
    last_k: Option<u32>,
    /// `(k, bits)` of every constant and offset emitted.
    consts: Vec<(u32, u64)>,
    /// `(slot, type, imported)` of every call emitted.
    calls: Vec<(u32, FuncType, bool)>,
    ops: u64,
}

#[derive(Debug)]
struct LabelInfo {
    kind: LabelKind,
    params: u32,
    arity: u32,
    bound: bool,
    preds: u32,
}

impl Checker {
    fn new(params: u32, results: u32) -> Checker {
        Checker {
            height: params,
            reachable: true,
            results,
            labels: HashMap::new(),
            last_k: None,
            consts: Vec::new(),
            calls: Vec::new(),
            ops: 0,
        }
    }

    fn pop(&mut self, n: u32) {
        assert!(self.height >= n, "pop {n} from height {}", self.height);
        self.height -= n;
    }

    fn constant(&mut self, k: ConstIdx, bits: u64) {
        assert!(self.last_k.is_none_or(|l| k.0 > l), "constant #{} after #{:?}", k.0, self.last_k);
        self.last_k = Some(k.0);
        self.consts.push((k.0, bits));
    }

    /// A branch from the current height to `l`.
    fn branch(&mut self, l: Label, conditional: bool) {
        let h = self.height;
        let info = self.labels.get_mut(&l.0).unwrap_or_else(|| panic!("branch to undeclared L{}", l.0));
        assert!(h >= info.params, "branch to L{} with height {h} < params {}", l.0, info.params);
        assert!(info.arity <= info.params);
        match info.kind {
            LabelKind::Loop => assert!(info.bound, "forward branch to loop L{}", l.0),
            LabelKind::Block => assert!(!info.bound, "backward branch to block L{}", l.0),
            LabelKind::Else => {
                assert!(!info.bound && info.preds == 0 && conditional, "else label L{} needs one br_unless", l.0);
                assert_eq!(h, info.params, "br_unless to else L{}", l.0);
            }
        }
        info.preds += 1;
    }

    fn step(&mut self, op: Op) -> Result<(), CompileError> {
        self.ops += 1;
        if !matches!(op, Op::Bind { .. }) {
            assert!(self.reachable, "{op} emitted in dead code");
        }
        match op {
            Op::Declare { label, kind, params, arity } => {
                assert_ne!(label.0, 0);
                assert!(arity <= params);
                let prev = self.labels.insert(label.0, LabelInfo { kind, params, arity, bound: false, preds: 0 });
                assert!(prev.is_none(), "L{} declared twice", label.0);
            }
            Op::Bind { label } => {
                let h = self.height;
                let reachable = self.reachable;
                let info = self.labels.get_mut(&label.0).unwrap_or_else(|| panic!("bind of undeclared L{}", label.0));
                assert!(!info.bound, "L{} bound twice", label.0);
                if reachable {
                    assert_eq!(h, info.params, "fallthrough into L{}", label.0);
                } else {
                    assert_ne!(info.kind, LabelKind::Loop, "loop L{} bound in dead code", label.0);
                }
                if info.kind == LabelKind::Loop {
                    assert_eq!(info.preds, 0, "loop L{} branched to before its bind", label.0);
                }
                info.bound = true;
                self.reachable = reachable || info.preds > 0;
                self.height = info.params;
            }
            Op::Br { target } => {
                self.branch(target, false);
                self.reachable = false;
            }
            Op::BrIf { target } => {
                self.pop(1);
                self.branch(target, true);
            }
            Op::BrUnless { target } => {
                self.pop(1);
                self.branch(target, true);
            }
            Op::BrTable { targets } => {
                self.pop(1);
                for &t in targets.0.iter() {
                    let h = self.height;
                    let info = self.labels.get_mut(&t.0).unwrap_or_else(|| panic!("br_table to undeclared L{}", t.0));
                    assert_ne!(info.kind, LabelKind::Else);
                    assert!(h >= info.params);
                    info.preds += 1;
                }
                self.reachable = false;
            }
            Op::Return => {
                assert!(self.height >= self.results, "return with height {} < {}", self.height, self.results);
                self.reachable = false;
            }
            Op::Unreachable => self.reachable = false,
            Op::Call { func, ref ty } | Op::CallImport { func, ref ty } => {
                let imported = matches!(op, Op::CallImport { .. });
                let ty = ty.clone();
                self.pop(ty.params().len() as u32);
                self.height += ty.results().len() as u32;
                self.calls.push((func.0, ty, imported));
            }
            Op::CallIndirect { ty, .. } => {
                self.pop(ty.params().len() as u32 + 1);
                self.height += ty.results().len() as u32;
            }
            Op::Pick { depth } | Op::Swap { depth } => {
                assert!(depth < self.height, "{op} at height {}", self.height);
                if matches!(op, Op::Pick { .. }) {
                    self.height += 1;
                }
            }
            Op::Const { k, value } => {
                self.constant(k, value.bits());
                self.height += 1;
            }
            ref other => {
                if let Some(m) = memarg(other) {
                    self.constant(m.k, m.offset);
                }
                let (pop, push) = effect(other);
                self.pop(pop);
                self.height += push;
            }
        }
        Ok(())
    }
}

fn memarg(op: &Op) -> Option<MemArg> {
    use Op::*;
    match *op {
        I32Load { memarg } | I64Load { memarg } | F32Load { memarg } | F64Load { memarg } | I32Load8S { memarg }
        | I32Load8U { memarg } | I32Load16S { memarg } | I32Load16U { memarg } | I64Load8S { memarg }
        | I64Load8U { memarg } | I64Load16S { memarg } | I64Load16U { memarg } | I64Load32S { memarg }
        | I64Load32U { memarg } | I32Store { memarg } | I64Store { memarg } | F32Store { memarg }
        | F64Store { memarg } | I32Store8 { memarg } | I32Store16 { memarg } | I64Store8 { memarg }
        | I64Store16 { memarg } | I64Store32 { memarg } => Some(memarg),
        _ => None,
    }
}

/// `(pops, pushes)` of a non-control operator, worked out independently of the
/// translator (from the Wasm spec's typing of the operator's name).
fn effect(op: &Op) -> (u32, u32) {
    use Op::*;
    match op {
        Zero { .. } | GlobalGet { .. } | RefNull { .. } | RefFunc { .. } | MemorySize { .. } | TableSize { .. } => (0, 1),
        Drop | GlobalSet { .. } => (1, 0),
        Select => (3, 1),
        RefIsNull | TableGet { .. } | MemoryGrow { .. } => (1, 1),
        TableSet { .. } => (2, 0),
        TableGrow { .. } => (2, 1),
        TableFill { .. } | TableCopy { .. } | TableInit { .. } | MemoryFill { .. } | MemoryCopy { .. }
        | MemoryInit { .. } => (3, 0),
        ElemDrop { .. } | DataDrop { .. } => (0, 0),
        _ => {
            let name = op.name();
            let (_, op) = name.split_once('.').unwrap_or_else(|| panic!("no effect known for {name}"));
            const BINARY: &[&str] = &[
                "eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u", "lt", "gt", "le", "ge",
                "add", "sub", "mul", "div_s", "div_u", "rem_s", "rem_u", "and", "or", "xor", "shl", "shr_s", "shr_u",
                "rotl", "rotr", "div", "min", "max", "copysign",
            ];
            if op.starts_with("load") {
                (1, 1)
            } else if op.starts_with("store") {
                (2, 0)
            } else if BINARY.contains(&op) {
                (2, 1)
            } else {
                (1, 1)
            }
        }
    }
}

macro_rules! checker_visitor {
    ($( $op:ident $({ $($field:ident : $ty:ty),* })? = $visit:ident $text:literal; )*) => {
        impl Visitor for Checker {
            $( fn $visit(&mut self $($(, $field: $ty)*)?) -> Result<(), CompileError> {
                self.step(Op::$op $({ $($field),* })?)
            } )*
        }
    };
}
quickbeam_microwasm::for_each_microwasm_op!(checker_visitor);

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir("/work/shared/corpus")
        .expect("the corpus directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.display().to_string(), std::fs::read(&p).unwrap())).collect()
}

#[test]
fn corpus_stack_discipline() {
    let mut translator = Translator::new();
    for (name, bytes) in corpus() {
        let (env, bodies) = ModuleEnv::parse(&bytes, supported_features()).unwrap();
        let (mut funcs, mut ops) = (0, 0u64);
        for input in bodies {
            let index = input.index;
            let ty = env.func_type(index).clone();
            let mut c = Checker::new(ty.params().len() as u32, ty.results().len() as u32);
            let t = translator
                .translate(&env, input, &mut c)
                .unwrap_or_else(|e| panic!("{name}: function {index}: {e}"));
            assert!(!c.reachable, "{name}: function {index} ends reachable");
            for (l, info) in &c.labels {
                assert!(info.bound, "{name}: function {index}: L{l} never bound");
            }
            for &(k, bits) in &c.consts {
                assert_eq!(t.consts[k as usize], bits, "{name}: function {index}: constant #{k}");
            }
            for (slot, ty, imported) in &c.calls {
                let info = &t.slots.funcs[*slot as usize];
                assert_eq!((&info.ty, info.imported), (ty, *imported));
                let callee = t.params.funcs[*slot as usize];
                assert_eq!(env.is_imported_func(callee), *imported);
                assert_eq!(env.func_type(callee), ty);
            }
            funcs += 1;
            ops += c.ops;
        }
        println!("{name}: {funcs} functions, {ops} Microwasm operators");
    }
}

// ---- throughput ---------------------------------------------------------------------------

/// A sink that does nothing, to time the translator alone.
struct Discard;

macro_rules! discard_visitor {
    ($( $op:ident $({ $($field:ident : $ty:ty),* })? = $visit:ident $text:literal; )*) => {
        impl Visitor for Discard {
            $( #[inline]
            fn $visit(&mut self $($(, $field: $ty)*)?) -> Result<(), CompileError> {
                $($( let _ = $field; )*)?
                Ok(())
            } )*
        }
    };
}
quickbeam_microwasm::for_each_microwasm_op!(discard_visitor);

/// Validation + translation throughput on spidermonkey.wasm. Not a timed assertion:
/// `cargo test -p quickbeam-microwasm --release --test translate -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput_spidermonkey() {
    let bytes = std::fs::read("/work/shared/corpus/spidermonkey.wasm").unwrap();
    let mut translator = Translator::new();
    let mut best = f64::INFINITY;
    let mut body_bytes = 0u64;
    for _ in 0..7 {
        let (env, bodies) = ModuleEnv::parse(&bytes, supported_features()).unwrap();
        body_bytes = bodies.iter().map(|b| { let r = b.body.range(); r.end - r.start }).sum();
        let start = std::time::Instant::now();
        for input in bodies {
            translator.translate(&env, input, &mut Discard).unwrap();
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    let mut best_validate = f64::INFINITY;
    let mut allocs = wasmparser::FuncValidatorAllocations::default();
    let validate_runs = if std::env::var_os("QB_SKIP_VALIDATE_ONLY").is_some() { 0 } else { 7 };
    for _ in 0..validate_runs {
        let (_, bodies) = ModuleEnv::parse(&bytes, supported_features()).unwrap();
        let start = std::time::Instant::now();
        for input in bodies {
            let mut v = input.validator.into_validator(allocs);
            v.validate(&input.body).unwrap();
            allocs = v.into_allocations();
        }
        best_validate = best_validate.min(start.elapsed().as_secs_f64());
    }
    let mb = |n: u64| n as f64 / 1e6;
    println!(
        "spidermonkey.wasm: wasmparser validation alone {:.1} ms: {:.0} MB/s of bodies",
        best_validate * 1e3,
        mb(body_bytes) / best_validate
    );
    println!(
        "spidermonkey.wasm: validate+translate {:.1} ms (best of 7): {:.0} MB/s of code section bodies ({:.2} MB), {:.0} MB/s of the file ({:.2} MB)",
        best * 1e3,
        mb(body_bytes) / best,
        mb(body_bytes),
        mb(bytes.len() as u64) / best,
        mb(bytes.len() as u64),
    );
}
