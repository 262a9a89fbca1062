//! Stencil keys (DESIGN.md §2.2, invariant I3): what must keep a key, what must change
//! it, agreement with the translator on every function of the real programs, and that
//! neither bad bytes nor a key collision can smuggle an invalid body past validation.
//!
//! Generators are hand-written over `.wat` text with a small deterministic PRNG, so a
//! failure names its seed; `QB_KEY_CASES=N` runs more cases than the default.

use quickbeam_environ::*;
use quickbeam_microwasm::{Recorder, Translator};
use std::collections::HashMap;
use std::fmt::Write;

// ---- helpers ------------------------------------------------------------------------------

fn engine() -> [u8; 32] {
    EngineFingerprint::new(b"test-settings").0
}

/// One defined function's keys.
#[derive(Debug)]
struct Keys {
    exact: StencilKey,
    fp: Fingerprint,
}

/// The keys of every named defined function of a `.wat` module, by name.
fn keys_of(wat: &str) -> HashMap<String, Keys> {
    keys_with(wat, &engine())
}

fn keys_with(wat: &str, engine: &[u8; 32]) -> HashMap<String, Keys> {
    let wasm = wat::parse_str(wat).unwrap_or_else(|e| panic!("{e}\n{wat}"));
    keys_of_wasm(&wasm, engine)
}

fn keys_of_wasm(wasm: &[u8], engine: &[u8; 32]) -> HashMap<String, Keys> {
    // The features of the translator's externref tests: wasmparser gates `externref`
    // behind GC types as well.
    let features = supported_features() | wasmparser::WasmFeatures::GC_TYPES;
    let (env, bodies) = ModuleEnv::parse(wasm, features).unwrap();
    let ctx = module_context_hash(&env);
    let mut fp = Fingerprinter::new();
    let mut out = HashMap::new();
    for input in bodies {
        let name = env.func_name(input.index).unwrap_or("?").to_string();
        let f = fp.fingerprint(&env, engine, input.index, &input.body).unwrap_or_else(|e| panic!("func {name}: {e}"));
        let exact = exact_key(engine, &ctx, env.func_type(input.index), input.body.as_bytes());
        out.insert(name, Keys { exact, fp: f });
    }
    out
}

/// The real programs: `target/fixtures/*.wasm` (built by `bash fixtures/build.sh`) and
/// the benchmark corpus, those present.
fn corpus() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut v = Vec::new();
    for n in ["sqlite", "lua", "zstd", "bzip2"] {
        v.push(root.join(format!("target/fixtures/{n}.wasm")));
    }
    for n in ["coremark", "bz2", "pulldown-cmark", "spidermonkey"] {
        v.push(root.join(format!("../shared/corpus/{n}.wasm")));
    }
    v.into_iter().filter(|p| p.exists()).collect()
}

/// xorshift64*: deterministic, good enough to pick cases.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn cases(default: u64) -> u64 {
    std::env::var("QB_KEY_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

// ---- hand-written invariance cases ----------------------------------------------------------

/// A module whose function `$subject` calls, reads globals and memory; `{pre_funcs}`,
/// `{pre_globals}` and `{post}` are places for unrelated definitions.
fn subject_module(pre_imports: &str, pre_funcs: &str, pre_globals: &str, consts: (i32, u32), post: &str) -> String {
    format!(
        r#"(module
  (type $sig (func (param i32) (result i32)))
  (import "env" "imp" (func $imp (param i32) (result i32)))
  {pre_imports}
  (memory 1)
  (table 4 funcref)
  {pre_globals}
  (global $g (mut i32) (i32.const 0))
  (global $k i64 (i64.const 7))
  {pre_funcs}
  (func $callee (param i32) (result i32) local.get 0)
  (func $subject (param $x i32) (result i32) (local $y i64)
    global.get $k
    local.set $y
    local.get $x
    i32.const {c}
    i32.add
    call $callee
    call $imp
    i32.load offset={off}
    global.get $g
    i32.add
    local.get $x
    call_indirect (type $sig)
    drop
    i32.const {c}
    call $callee
    global.set $g)
  {post}
  (elem (i32.const 0) func $callee))"#,
        c = consts.0,
        off = consts.1,
    )
}

fn subject(wat: &str) -> Keys {
    keys_of(wat).remove("subject").unwrap()
}

#[test]
fn renumbering_keeps_the_shape_key() {
    let base = subject(&subject_module("", "", "", (5, 16), ""));
    // Callees renumbered: an unrelated function defined before.
    let more_funcs = subject(&subject_module("", "(func $other (result i32) i32.const 1)", "", (5, 16), ""));
    // Imports renumbered too: one more import shifts every defined function.
    let more_imports = subject(&subject_module(r#"(import "env" "x" (func $x))"#, "", "", (5, 16), ""));
    // Globals renumbered.
    let more_globals = subject(&subject_module("", "", "(global $h f64 (f64.const 1))", (5, 16), ""));
    // An unrelated function after: nothing of the subject's moves.
    let after = subject(&subject_module("", "", "", (5, 16), "(func $late (param f32))"));
    for (what, k) in [("funcs", &more_funcs), ("imports", &more_imports), ("globals", &more_globals), ("after", &after)]
    {
        assert_eq!(k.fp.shape, base.fp.shape, "{what}");
        assert_eq!(k.fp.slots, base.fp.slots, "{what}");
        assert_eq!(k.fp.consts, base.fp.consts, "{what}");
    }
    // The parameters say where the slots went.
    assert_eq!(base.fp.params.funcs, vec![1, 0]); // $callee, $imp
    assert_eq!(more_funcs.fp.params.funcs, vec![2, 0]);
    assert_eq!(more_imports.fp.params.funcs, vec![2, 0]);
    assert_eq!(base.fp.params.globals, vec![1, 0]); // $k, $g
    assert_eq!(more_globals.fp.params.globals, vec![2, 1]);
    assert_eq!(after.fp.params, base.fp.params);
    // The exact key sees the module: new indices change it, an addition after does not
    // shift any index but still changes the module context.
    assert_ne!(more_funcs.exact, base.exact);
    assert_ne!(more_globals.exact, base.exact);
    assert_eq!(subject(&subject_module("", "", "", (5, 16), "")).exact, base.exact);
}

#[test]
fn moving_and_reordering_keep_the_shape_key() {
    let a = keys_of(
        r#"(module (memory 1)
  (func $f (param i32) (result i32) local.get 0 i32.load offset=4 call $g)
  (func $g (param i32) (result i32) local.get 0 i32.const 3 i32.mul)
  (func $h (result i32) i32.const 1 call $f call $g))"#,
    );
    let b = keys_of(
        r#"(module (memory 1)
  (func $h (result i32) i32.const 1 call $f call $g)
  (func $g (param i32) (result i32) local.get 0 i32.const 3 i32.mul)
  (func $f (param i32) (result i32) local.get 0 i32.load offset=4 call $g))"#,
    );
    for name in ["f", "g", "h"] {
        assert_eq!(a[name].fp.shape, b[name].fp.shape, "{name}");
        assert_eq!(a[name].fp.consts, b[name].fp.consts, "{name}");
        // The exact key sees the module context, whose function order changed.
        assert_ne!(a[name].exact, b[name].exact, "{name}");
    }
    assert_eq!(a["h"].fp.params.funcs, vec![0, 1]);
    assert_eq!(b["h"].fp.params.funcs, vec![2, 1]);
}

#[test]
fn constants_and_offsets_change_only_consts() {
    let base = subject(&subject_module("", "", "", (5, 16), ""));
    let consts = subject(&subject_module("", "", "", (-100_000, 16), ""));
    let offsets = subject(&subject_module("", "", "", (5, 70_000), ""));
    for k in [&consts, &offsets] {
        assert_eq!(k.fp.shape, base.fp.shape);
        assert_eq!(k.fp.params, base.fp.params);
        assert_ne!(k.exact, base.exact);
    }
    // In body order: i32.const, the load's offset, i32.const again.
    assert_eq!(base.fp.consts, vec![5, 16, 5]);
    assert_eq!(consts.fp.consts, vec![(-100_000i32) as u32 as u64, 16, (-100_000i32) as u32 as u64]);
    assert_eq!(offsets.fp.consts, vec![5, 70_000, 5]);
}

#[test]
fn exact_key_ignores_other_bodies() {
    let a = keys_of(r#"(module (func $f (result i32) i32.const 1) (func $g (result i32) i32.const 2))"#);
    let b = keys_of(
        r#"(module (func $f (result i32) i32.const 1) (func $g (result i32) i32.const 3 i32.const 4 i32.add))"#,
    );
    assert_eq!(a["f"].exact, b["f"].exact);
    assert_ne!(a["g"].exact, b["g"].exact);
    assert_eq!(a["g"].fp.shape.to_string().len(), 64);
}

// ---- what must change the keys ------------------------------------------------------------

/// Asserts that the shape and exact keys of `$f` differ between two modules.
fn assert_changes(what: &str, a: &str, b: &str) {
    let (ka, kb) = (keys_of(a), keys_of(b));
    assert_ne!(ka["f"].fp.shape, kb["f"].fp.shape, "shape key: {what}");
    assert_ne!(ka["f"].exact, kb["f"].exact, "exact key: {what}");
}

#[test]
fn code_changes_change_the_keys() {
    let m = |body: &str| format!("(module (memory 1) (func $f (param i32 i32) (result i32) (local i64) {body}))");
    let cases = [
        ("opcode", "local.get 0 local.get 1 i32.add", "local.get 0 local.get 1 i32.sub"),
        ("local index", "local.get 0 local.get 1 i32.add", "local.get 1 local.get 0 i32.add"),
        ("access width", "local.get 0 i32.load offset=8", "local.get 0 i32.load16_u offset=8"),
        ("alignment", "local.get 0 i32.load offset=8", "local.get 0 i32.load offset=8 align=1"),
        ("sign", "local.get 0 i32.load8_s", "local.get 0 i32.load8_u"),
        (
            "label depth",
            "block block local.get 0 br_if 0 end end local.get 1",
            "block block local.get 0 br_if 1 end end local.get 1",
        ),
        ("a constant's type", "i32.const 1 drop local.get 0", "i64.const 1 drop local.get 0"),
        ("block type", "block (result i32) local.get 0 end", "block (result i64) local.get 0 end"),
    ];
    for (what, a, b) in cases {
        assert_changes(what, &m(a), &m(b));
    }
}

#[test]
fn local_and_function_types_change_the_keys() {
    assert_changes(
        "a local's type",
        "(module (func $f (local i32) local.get 0 drop))",
        "(module (func $f (local f32) local.get 0 drop))",
    );
    assert_changes("a param's type", "(module (func $f (param i32)))", "(module (func $f (param i64)))");
    assert_changes("a result", "(module (func $f unreachable))", "(module (func $f (result i32) unreachable))");
    // Merging adjacent local groups of one type does not change the shape key.
    let a = keys_of("(module (func $f (local i32 i32) (local i64) local.get 1 drop))");
    let b = keys_of("(module (func $f (local i32) (local i32) (local i64) local.get 1 drop))");
    assert_eq!(a["f"].fp.shape, b["f"].fp.shape);
}

/// Changes the body bytes cannot show: only the `SlotEnv` (or the module context) differ.
#[test]
fn what_slots_stand_for_changes_the_keys() {
    let callee = |sig: &str| format!("(module (func $c {sig} unreachable) (func $f call $c))");
    assert_changes("callee signature", &callee("(param)"), &callee("(result i32)"));
    let imported = |imp: bool| {
        if imp {
            r#"(module (import "m" "c" (func $c)) (func $f call $c))"#.to_string()
        } else {
            "(module (func $f call $c) (func $c))".to_string()
        }
    };
    // Body bytes `call 0`... vs `call 1`: compare shapes only (exact keys differ anyway).
    assert_ne!(keys_of(&imported(true))["f"].fp.shape, keys_of(&imported(false))["f"].fp.shape, "imported callee");
    let global = |m: &str| format!("(module (global $g {m} (i32.const 0)) (func $f (result i32) global.get $g))");
    assert_changes("global mutability", &global("i32"), &global("(mut i32)"));
    let gtype = |t: &str| format!("(module (global $g {t} ({t}.const 0)) (func $f global.get $g drop))");
    assert_changes("global type", &gtype("i32"), &gtype("f32"));
    let indirect = |pre: &str, t: &str| {
        format!("(module {pre} (type $t (func {t})) (table 1 funcref) (func $f i32.const 0 call_indirect (type $t)))")
    };
    assert_changes("call_indirect type", &indirect("", ""), &indirect("", "(param i32)"));
    // The type's structure counts, not its index.
    assert_eq!(
        keys_of(&indirect("", "(param i32)"))["f"].fp.shape,
        keys_of(&indirect("(type (func (result f64)))", "(param i32)"))["f"].fp.shape
    );
    let typed_block =
        |t: &str| format!("(module (type $t (func {t})) (func $f (param i32) local.get 0 block (type $t) drop end))");
    assert_changes("block type structure", &typed_block("(param i32)"), &typed_block("(param f32)"));
    let declared = |d: bool| {
        format!(
            "(module (func $c) {} (func $f (result funcref) ref.func $c))",
            if d { "(elem declare func $c)" } else { "(export \"c\" (func $c))" }
        )
    };
    // Both are declared (an export declares too): same shape. The flag itself is checked
    // by the undeclared case in `bad_bodies_have_no_key`.
    assert_eq!(keys_of(&declared(true))["f"].fp.shape, keys_of(&declared(false))["f"].fp.shape);
}

#[test]
fn engine_settings_change_the_keys() {
    let wat = "(module (func $f (result i32) i32.const 1))";
    let a = keys_with(wat, &EngineFingerprint::new(b"bounds-checks=guard").0);
    let b = keys_with(wat, &EngineFingerprint::new(b"bounds-checks=explicit").0);
    assert_ne!(a["f"].fp.shape, b["f"].fp.shape);
    assert_ne!(a["f"].exact, b["f"].exact);
    assert_eq!(EngineFingerprint::new(b"x"), EngineFingerprint::new(b"x"));
}

#[test]
fn the_data_count_section_is_part_of_the_keys() {
    // `data.drop` is valid only with a data count section (which `wat` emits here).
    let wat = "(module (memory 1) (data $d \"x\") (func $f data.drop $d))";
    let wasm = wat::parse_str(wat).unwrap();
    let (mut env, _) = ModuleEnv::parse(&wasm, supported_features()).unwrap();
    assert!(env.has_data_count);
    assert!(keys_of(wat)["f"].fp.slots.data_count_section);
    let with = module_context_hash(&env);
    env.has_data_count = false;
    assert_ne!(with, module_context_hash(&env));
}

#[test]
fn keys_are_stable_across_processes() {
    // Pinned: if this changes, the key's input format or the compiler version changed;
    // bump `COMPILER_VERSION` (old cache entries then miss instead of being misread).
    let wat =
        "(module (memory 1) (func $f (param i32) (result i32) local.get 0 i32.load offset=4 i32.const 9 i32.add))";
    let k = keys_with(wat, &EngineFingerprint::new(b"").0);
    let shape = k["f"].fp.shape.to_string();
    let exact = k["f"].exact.to_string();
    let pinned = (
        "26a9a3abf0db64af03ee3cbd15b54be1c3999c0b19b3db5cece93e74a2f058d5",
        "235ffdf2ec447b33e585b4e70d4cf96019ecda74801280bd7f230ac9691eb4e4",
    );
    if (shape.as_str(), exact.as_str()) != pinned {
        panic!("keys changed: shape {shape}, exact {exact}");
    }
}

// ---- errors -------------------------------------------------------------------------------

#[test]
fn bad_bodies_have_no_key() {
    let wasm = wat::parse_str(
        r#"(module (memory 1) (table 1 funcref) (func $a) (func $b (param i32) (result i32) local.get 0)
             (func $simd (result i32) v128.const i64x2 0 0 i32x4.extract_lane 0)
             (func $undeclared (result funcref) ref.func $a))"#,
    )
    .unwrap();
    let features = supported_features() | wasmparser::WasmFeatures::SIMD;
    let (env, bodies) = ModuleEnv::parse(&wasm, features).unwrap();
    let mut fp = Fingerprinter::new();
    let simd = &bodies[2];
    let e = fp.fingerprint(&env, &engine(), simd.index, &simd.body).unwrap_err();
    assert!(e.message.contains("unsupported operator"), "{e}");
    assert_eq!(e.offset, simd.body.range().start + 1, "{e}");
    // `ref.func` of an undeclared function is invalid: it has a key (the compiler will
    // reject it), but not the key of the declared case.
    let undeclared = fp.fingerprint(&env, &engine(), bodies[3].index, &bodies[3].body).unwrap();
    let declared = keys_of(
        r#"(module (memory 1) (table 1 funcref) (func $a) (func $b (param i32) (result i32) local.get 0)
             (func $simd) (func $undeclared (result funcref) ref.func $a) (elem declare func $a))"#,
    );
    assert_ne!(undeclared.shape, declared["undeclared"].fp.shape);

    // Indices out of range, malformed immediates, trailing bytes, truncation.
    let env2 = {
        let (mut e, _) = ModuleEnv::parse(&wat::parse_str("(module (func))").unwrap(), supported_features()).unwrap();
        e.memories.clear();
        e
    };
    for (what, body) in [
        ("call 7", &[0x00, 0x10, 0x07, 0x0b][..]),
        ("global.get 0", &[0x00, 0x23, 0x00, 0x1a, 0x0b]),
        ("i32.load without a memory", &[0x00, 0x41, 0x00, 0x28, 0x02, 0x00, 0x1a, 0x0b]),
        ("overlong i32.const", &[0x00, 0x41, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x1a, 0x0b]),
        ("i32.const too large", &[0x00, 0x41, 0x80, 0x80, 0x80, 0x80, 0x70, 0x1a, 0x0b]),
        ("bytes after end", &[0x00, 0x0b, 0x01]),
        ("no end", &[0x00, 0x01]),
        ("truncated locals", &[0x01, 0x05]),
        ("memory.size nonzero byte", &[0x00, 0x3f, 0x01, 0x1a, 0x0b]),
    ] {
        assert!(fp.fingerprint_bytes(&env2, &engine(), 0, body, 100).is_err(), "{what}");
    }
    assert!(fp.fingerprint_bytes(&env2, &engine(), 0, &[0x00, 0x0b], 100).is_ok());
    assert!(fp.fingerprint_bytes(&env2, &engine(), 5, &[0x00, 0x0b], 100).is_err(), "function index");
}

/// Arbitrary bytes, truncations and bit flips of real bodies never panic.
#[test]
fn arbitrary_bytes_never_panic() {
    let path = std::path::Path::new("/work/shared/corpus/coremark.wasm");
    let wasm = match std::fs::read(path) {
        Ok(w) => w,
        Err(_) => wat::parse_str(subject_module("", "", "", (1, 2), "")).unwrap(),
    };
    let (env, bodies) = ModuleEnv::parse(&wasm, supported_features()).unwrap();
    let mut fp = Fingerprinter::new();
    let mut slow = Fingerprinter::without_fast_path();
    let mut rng = Rng::new(7);
    let check = |fp: &mut Fingerprinter, slow: &mut Fingerprinter, index: u32, bytes: &[u8]| {
        let a = fp.fingerprint_bytes(&env, &engine(), index, bytes, 0);
        let b = slow.fingerprint_bytes(&env, &engine(), index, bytes, 0);
        assert_eq!(a, b, "fast and general paths disagree on {bytes:02x?}");
    };
    for _ in 0..cases(3000) {
        let input = &bodies[rng.below(bodies.len())];
        let mut bytes = input.body.as_bytes().to_vec();
        match rng.below(3) {
            0 => bytes.truncate(rng.below(bytes.len() + 1)),
            1 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(bytes.len());
                    bytes[i] ^= 1 << rng.below(8);
                }
            }
            _ => {
                bytes = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                if rng.chance(50) {
                    bytes.insert(0, 0);
                }
            }
        }
        check(&mut fp, &mut slow, input.index, &bytes);
    }
}

/// A cache hit skips validation, so a body whose shape key equals a valid body's must
/// be valid. Mutates bytes of coremark's bodies in place (sizes stay); whenever a
/// mutant's shape key equals its original's, the mutant must validate and translate.
#[test]
fn equal_shape_keys_imply_validity() {
    let Ok(wasm) = std::fs::read("/work/shared/corpus/coremark.wasm") else {
        eprintln!("coremark.wasm absent: skipped");
        return;
    };
    let (env, bodies) = ModuleEnv::parse(&wasm, supported_features()).unwrap();
    let mut fp = Fingerprinter::new();
    let originals: Vec<_> = bodies
        .iter()
        .map(|b| {
            let r = b.body.range();
            (
                r.start as usize..r.end as usize,
                b.index,
                fp.fingerprint(&env, &engine(), b.index, &b.body).unwrap().shape,
            )
        })
        .collect();
    drop(bodies);
    let mut rng = Rng::new(11);
    let (mut same_key, mut tried) = (0, 0);
    for _ in 0..cases(1500) {
        let (range, index, shape) = originals[rng.below(originals.len())].clone();
        let mut mutant = wasm.clone();
        let at = range.start + rng.below(range.len());
        // Mostly small value changes (constants, indices), sometimes any byte.
        mutant[at] = if rng.chance(70) { mutant[at] ^ (1 << rng.below(7)) } else { rng.next() as u8 };
        let Ok((menv, mbodies)) = ModuleEnv::parse(&mutant, supported_features()) else { continue };
        let Some(input) = mbodies.into_iter().find(|b| b.index == index) else { continue };
        tried += 1;
        let Ok(f) = fp.fingerprint(&menv, &engine(), index, &input.body) else { continue };
        if f.shape != shape {
            continue;
        }
        same_key += 1;
        let r = Translator::new().translate(&menv, input, &mut Recorder::default());
        assert!(r.is_ok(), "byte {at:#x} mutated: same shape key but {:?}", r.err());
    }
    eprintln!("{tried} mutants parsed, {same_key} kept their shape key (all valid)");
    assert!(same_key > 0, "no mutant kept its key: the test tests nothing");
}

// ---- generated bodies ---------------------------------------------------------------------

/// A generated module: `$subject` plus the entities it may name. Functions and globals
/// are named, so a variant can reorder and pad them while the subject's text stays.
struct Gen {
    /// The subject's instructions, one template instance per entry.
    instrs: Vec<Instr>,
}

#[derive(Clone)]
struct Instr {
    /// Which template; different kinds differ in opcode or in a hashed immediate.
    kind: usize,
    /// The function and global numbers it names (if its template names one).
    f: usize,
    g: usize,
    text: String,
}

impl Instr {
    /// The same instruction with new constants and offsets.
    fn new_constants(&self, rng: &mut Rng) -> Instr {
        if self.kind >= TEMPLATES.len() {
            return self.clone();
        }
        Instr { text: Gen::fill(TEMPLATES[self.kind], self.f, self.g, rng), ..self.clone() }
    }
}

const N_FUNCS: usize = 4;
const N_GLOBALS: usize = 3;

/// Instruction templates; `{c}` is a constant, `{o}` an offset, `{f}`, `{g}` a function
/// or global number. Bodies need not validate (the fingerprinter does not validate),
/// only parse.
const TEMPLATES: &[&str] = &[
    "i32.const {c}",
    "i64.const {c}",
    "f32.const {c}",
    "f64.const {c}",
    "i32.add",
    "i32.sub",
    "i64.mul",
    "f64.div",
    "drop",
    "select",
    "local.get 0",
    "local.get 1",
    "local.set 1",
    "local.tee 2",
    "i32.load offset={o}",
    "i32.load offset={o} align=1",
    "i64.store8 offset={o}",
    "f64.load offset={o}",
    "call $f{f}",
    "global.get $g{g}",
    "global.set $g{g}",
    "call_indirect (type $t{f})",
    "memory.size",
    "memory.grow",
    "memory.fill",
    "memory.copy",
    "br 0",
    "br_if 0",
    "br_table 0 0",
    "ref.func $f{f}",
    "table.get 0",
    "table.size 0",
    "i32.trunc_sat_f32_s",
    "nop",
    "unreachable",
];

impl Gen {
    fn new(rng: &mut Rng) -> Gen {
        let mut instrs = Vec::new();
        let mut depth = 0;
        for _ in 0..1 + rng.below(40) {
            match rng.below(10) {
                0 if depth < 4 => {
                    let k = rng.below(3);
                    let text = ["block", "loop", "if (result i32)"][k].into();
                    instrs.push(Instr { kind: 1000 + k, f: 0, g: 0, text });
                    depth += 1;
                }
                1 if depth > 0 => {
                    instrs.push(Instr { kind: 2000, f: 0, g: 0, text: "end".into() });
                    depth -= 1;
                }
                _ => instrs.push(Gen::instr(rng, None)),
            }
        }
        for _ in 0..depth {
            instrs.push(Instr { kind: 2000, f: 0, g: 0, text: "end".into() });
        }
        Gen { instrs }
    }

    /// A random instance of a random template.
    fn instr(rng: &mut Rng, kind: Option<usize>) -> Instr {
        let kind = kind.unwrap_or_else(|| rng.below(TEMPLATES.len()));
        let (f, g) = (rng.below(N_FUNCS), rng.below(N_GLOBALS));
        Instr { kind, f, g, text: Gen::fill(TEMPLATES[kind], f, g, rng) }
    }

    fn fill(t: &str, f: usize, g: usize, rng: &mut Rng) -> String {
        let c = match rng.below(4) {
            0 => rng.below(64) as i64,
            1 => -(rng.below(1000) as i64),
            2 => rng.next() as i32 as i64,
            _ => rng.next() as i64 >> rng.below(64),
        };
        let c =
            if t.starts_with("f32") || t.starts_with("f64") { format!("{}.5", c % 1_000_000) } else { c.to_string() };
        let c = if t.starts_with("i32") { (c.parse::<i64>().unwrap() as i32).to_string() } else { c };
        t.replace("{c}", &c)
            .replace("{o}", &[0, 8, 1000, 70_000, u32::MAX as usize][rng.below(5)].to_string())
            .replace("{f}", &f.to_string())
            .replace("{g}", &g.to_string())
    }

    /// The module text: `pad` unrelated functions and globals before the named ones,
    /// which appear in the order `perm_f`/`perm_g`; `$f0` is imported if `import_f0`.
    fn module(&self, pad: usize, perm_f: &[usize], perm_g: &[usize], import_f0: bool, instrs: &[Instr]) -> String {
        let sigs = ["(param i32) (result i32)", "(result i64)", "", "(param f64 f64)"];
        let gtys = ["(mut i32)", "i64", "(mut f32)"];
        let ginit = ["i32.const 0", "i64.const 0", "f32.const 0"];
        let mut m = String::from("(module\n");
        for (i, s) in sigs.iter().enumerate() {
            writeln!(m, "  (type $t{i} (func {s}))").unwrap();
        }
        if import_f0 {
            writeln!(m, "  (import \"m\" \"f0\" (func $f0 {}))", sigs[0]).unwrap();
        }
        for p in 0..pad {
            writeln!(m, "  (import \"m\" \"pad{p}\" (func (param f32)))").unwrap();
        }
        m.push_str("  (memory 1)\n  (table 2 funcref)\n");
        for p in 0..pad {
            writeln!(m, "  (global f64 (f64.const {p}))").unwrap();
        }
        for &g in perm_g {
            writeln!(m, "  (global $g{g} {} ({}))", gtys[g], ginit[g]).unwrap();
        }
        for p in 0..pad {
            writeln!(m, "  (func (param i64) i64.const {p} drop)").unwrap();
        }
        for &f in perm_f {
            if f == 0 && import_f0 {
                continue;
            }
            writeln!(m, "  (func $f{f} {} unreachable)", sigs[f]).unwrap();
        }
        writeln!(m, "  (func $subject (param i32 f32) (result i32) (local i64 i32)").unwrap();
        for i in instrs {
            writeln!(m, "    {}", i.text).unwrap();
        }
        m.push_str("  )\n  (elem declare func");
        for f in 0..N_FUNCS {
            write!(m, " $f{f}").unwrap();
        }
        m.push_str("))\n");
        m
    }
}

fn shuffled(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.below(i + 1));
    }
    v
}

/// The module index of every named function and global of a generated module.
fn names(wat: &str) -> (HashMap<u32, String>, HashMap<u32, String>) {
    let wasm = wat::parse_str(wat).unwrap();
    let (env, _) = ModuleEnv::parse(&wasm, supported_features()).unwrap();
    let funcs = env.names.funcs().map(|(i, n)| (i, n.to_string())).collect();
    // Globals: the padding comes first, then `$g{perm}` in order; recover from the text.
    let mut globals = HashMap::new();
    let mut i = 0u32;
    for line in wat.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("(global ") {
            if let Some(name) = rest.strip_prefix('$') {
                globals.insert(i, name.split_whitespace().next().unwrap().to_string());
            }
            i += 1;
        }
    }
    (funcs, globals)
}

/// Renumbering, reordering and padding the module and changing every constant keep the
/// shape key and the slots; the parameters name the same entities; the constants are the
/// new ones. Changing one instruction to another kind changes the key. The fast loop
/// agrees with the general decoder throughout.
#[test]
fn generated_bodies() {
    let n = cases(300);
    for seed in 0..n {
        let mut rng = Rng::new(seed);
        let gen = Gen::new(&mut rng);
        let ident: Vec<usize> = (0..N_FUNCS).collect();
        let identg: Vec<usize> = (0..N_GLOBALS).collect();
        let base_text = gen.module(0, &ident, &identg, false, &gen.instrs);
        let base = subject(&base_text);

        // Renumbered, reordered, padded, constants changed.
        let (pad, pf, pg) = (1 + rng.below(3), shuffled(&mut rng, N_FUNCS), shuffled(&mut rng, N_GLOBALS));
        let new_instrs: Vec<Instr> = gen.instrs.iter().map(|i| i.new_constants(&mut rng)).collect();
        let var_text = gen.module(pad, &pf, &pg, false, &new_instrs);
        let var = subject(&var_text);
        assert_eq!(var.fp.shape, base.fp.shape, "seed {seed}\n{base_text}\n{var_text}");
        assert_eq!(var.fp.slots, base.fp.slots, "seed {seed}");
        let expect_consts =
            keys_of(&gen.module(0, &ident, &identg, false, &new_instrs)).remove("subject").unwrap().fp.consts;
        assert_eq!(var.fp.consts, expect_consts, "seed {seed}");
        let ((bf, bg), (vf, vg)) = (names(&base_text), names(&var_text));
        let by_name = |m: &HashMap<u32, String>, v: &[u32]| v.iter().map(|i| m[i].clone()).collect::<Vec<_>>();
        assert_eq!(by_name(&bf, &base.fp.params.funcs), by_name(&vf, &var.fp.params.funcs), "seed {seed}");
        assert_eq!(by_name(&bg, &base.fp.params.globals), by_name(&vg, &var.fp.params.globals), "seed {seed}");

        // One instruction changed to another kind.
        let plain: Vec<usize> = (0..gen.instrs.len()).filter(|&i| gen.instrs[i].kind < TEMPLATES.len()).collect();
        if !plain.is_empty() {
            let at = plain[rng.below(plain.len())];
            let mut mutated = gen.instrs.clone();
            loop {
                let i = Gen::instr(&mut rng, None);
                if i.kind != mutated[at].kind {
                    mutated[at] = i;
                    break;
                }
            }
            let mut_text = gen.module(0, &ident, &identg, false, &mutated);
            assert_ne!(
                subject(&mut_text).fp.shape,
                base.fp.shape,
                "seed {seed}: {} -> {}",
                gen.instrs[at].text,
                mutated[at].text
            );
        }

        // An imported callee is not a defined one.
        if base.fp.params.funcs.iter().any(|&f| bf[&f] == "f0") {
            let imp = subject(&gen.module(0, &ident, &identg, true, &gen.instrs));
            assert_ne!(imp.fp.shape, base.fp.shape, "seed {seed}");
        }

        // Fast loop and general decoder agree.
        let wasm = wat::parse_str(&var_text).unwrap();
        let (env, bodies) = ModuleEnv::parse(&wasm, supported_features()).unwrap();
        let input = bodies.last().unwrap();
        assert_eq!(
            Fingerprinter::new().fingerprint(&env, &engine(), input.index, &input.body),
            Fingerprinter::without_fast_path().fingerprint(&env, &engine(), input.index, &input.body),
            "seed {seed}"
        );
    }
}

// ---- the real programs --------------------------------------------------------------------

/// For every function of the real programs, the fingerprinter finds the constants, slots
/// and parameters the translator assigns, and the fast loop agrees with the general
/// decoder.
#[test]
fn agrees_with_translator_on_real_programs() {
    let paths = corpus();
    if paths.is_empty() {
        eprintln!("no real programs found: run `bash fixtures/build.sh`");
    }
    for path in paths {
        let bytes = std::fs::read(&path).unwrap();
        let (env, bodies) = ModuleEnv::parse(&bytes, supported_features()).unwrap();
        let mut fp = Fingerprinter::new();
        let mut general = Fingerprinter::without_fast_path();
        let mut tr = Translator::new();
        let (mut agree, mut untranslated) = (0, 0);
        for input in bodies {
            let index = input.index;
            let body = input.body.clone();
            let f = fp.fingerprint(&env, &engine(), index, &body);
            assert_eq!(f, general.fingerprint(&env, &engine(), index, &body), "{path:?} func {index}");
            match tr.translate(&env, input, &mut Recorder::default()) {
                Ok(t) => {
                    let f = f.unwrap_or_else(|e| panic!("{path:?} func {index}: {e}"));
                    assert_eq!(f.consts, t.consts, "{path:?} func {index}");
                    assert_eq!(f.params, t.params, "{path:?} func {index}");
                    assert_eq!(f.slots, t.slots, "{path:?} func {index}");
                    agree += 1;
                }
                Err(_) => untranslated += 1,
            }
        }
        eprintln!("{}: {agree} functions agree, {untranslated} not translated", path.display());
    }
}

// ---- throughput (measured, never asserted) ------------------------------------------------

/// This thread's time on the CPU (from `/proc/thread-self/schedstat`), so that other
/// processes competing for the cores do not count; wall time where that is unavailable.
fn cpu_seconds() -> f64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    match std::fs::read_to_string("/proc/thread-self/schedstat") {
        Ok(s) => s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) as f64 / 1e9,
        Err(_) => START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64(),
    }
}

/// CPU seconds per call of `f`: the best of 3 rounds, each repeating `f` for at least
/// 0.25 s of CPU time (the clock ticks in milliseconds).
fn per_call(mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = cpu_seconds();
            let (mut calls, mut batch) = (0u32, 1u32);
            while cpu_seconds() - t < 0.25 {
                for _ in 0..batch {
                    f();
                }
                calls += batch;
                batch *= 2;
            }
            (cpu_seconds() - t) / calls as f64
        })
        .fold(f64::MAX, f64::min)
}

/// `cargo test --release -p quickbeam-environ --test key -- --ignored --nocapture throughput`
#[test]
#[ignore]
fn throughput() {
    for path in corpus() {
        let bytes = std::fs::read(&path).unwrap();
        let (env, bodies) = ModuleEnv::parse(&bytes, supported_features()).unwrap();
        let total: usize = bodies.iter().map(|b| b.body.as_bytes().len()).sum();
        let mut fp = Fingerprinter::new();
        let ctx = module_context_hash(&env);
        let engine = engine();
        let shape = per_call(|| {
            for b in &bodies {
                let _ = std::hint::black_box(fp.fingerprint(&env, &engine, b.index, &b.body));
            }
        });
        let exact = per_call(|| {
            for b in &bodies {
                std::hint::black_box(exact_key(&engine, &ctx, env.func_type(b.index), b.body.as_bytes()));
            }
        });
        let decode = per_call(|| {
            for b in &bodies {
                let mut r = b.body.get_operators_reader().unwrap();
                while !r.eof() {
                    r.visit_operator(&mut NopVisitor).unwrap();
                }
            }
        });
        let context = per_call(|| {
            std::hint::black_box(module_context_hash(&env));
        });
        let mbs = |s: f64| total as f64 / s / 1e6;
        eprintln!(
            "{:20} {:5} bodies {:8} B: shape {:4.0} MB/s, exact {:5.0} MB/s, module context {:.3} ms \
             (wasmparser decode alone {:4.0} MB/s)",
            path.file_name().unwrap().to_string_lossy(),
            bodies.len(),
            total,
            mbs(shape),
            mbs(exact),
            context * 1e3,
            mbs(decode)
        );
    }

    // A long regular body (every operator on the fast loop) and per-function fixed cost.
    let mut body = String::new();
    for i in 0..20000 {
        writeln!(body, "local.get 0 i32.const {} i32.add i32.load offset=8 local.set 0", i % 60).unwrap();
    }
    let wasm = wat::parse_str(format!("(module (memory 1) (func (param i32) {body}) (func))")).unwrap();
    let (env, bodies) = ModuleEnv::parse(&wasm, supported_features()).unwrap();
    let mut fp = Fingerprinter::new();
    let engine = engine();
    for b in &bodies {
        let n = b.body.as_bytes().len();
        let t = per_call(|| {
            let _ = std::hint::black_box(fp.fingerprint(&env, &engine, b.index, &b.body));
        });
        eprintln!("regular body of {n} bytes: shape key {:.2} µs ({:.0} MB/s)", t * 1e6, n as f64 / t / 1e6);
    }
}

/// Fingerprints the first real program for a few seconds (for `perf record`).
#[test]
#[ignore]
fn profile_shape() {
    let Some(path) = corpus().into_iter().next() else { return };
    let bytes = std::fs::read(&path).unwrap();
    let (env, bodies) = ModuleEnv::parse(&bytes, supported_features()).unwrap();
    let mut fp = Fingerprinter::new();
    let t = std::time::Instant::now();
    while t.elapsed().as_secs_f64() < 4.0 {
        for b in &bodies {
            let _ = std::hint::black_box(fp.fingerprint(&env, &engine(), b.index, &b.body));
        }
    }
}

/// A `VisitOperator` that does nothing: wasmparser's decoding cost alone.
struct NopVisitor;

macro_rules! nop_visit {
    ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*) )*) => {$(
        fn $visit(&mut self $($(, $arg: $argty)*)?) {
            $($(let _ = $arg;)*)?
        }
    )*};
}

impl<'a> wasmparser::VisitOperator<'a> for NopVisitor {
    type Output = ();
    fn simd_visitor(&mut self) -> Option<&mut dyn wasmparser::VisitSimdOperator<'a, Output = ()>> {
        Some(self)
    }
    wasmparser::for_each_visit_operator!(nop_visit);
}

impl<'a> wasmparser::VisitSimdOperator<'a> for NopVisitor {
    wasmparser::for_each_visit_simd_operator!(nop_visit);
}
