//! Reloading real programs after a rebuild: the stencil cache's acceptance tests
//! (issue 3, acceptance 3–4; issue 4, acceptance 2–4).
//!
//! Each test takes a base build of a real program and a rebuild variant of it
//! (`target/fixtures/variants/<name>-<variant>.wasm`, made by `fixtures/build.sh`; see
//! `fixtures/README.md`: `edit` changes one statement of one function, `addfn` adds a
//! function so that call indices shift in most bodies, `literal` changes one numeric
//! literal, `string` adds a string literal so that data addresses and load/store
//! offsets shift). It compiles the base, then the variant, with a fresh temporary cache
//! directory, two ways: in one engine (the in-process cache) and in a fresh engine on
//! the same directory (the disk store). It checks the variant's [`CompileReport`]
//! against reference counts computed here, independently of the cache, by decoding
//! both builds' bodies with wasmparser and matching them by name ([`Reference`]):
//!
//! - *beyond indices*: the variant's bodies that differ from the base body of the same
//!   name in more than module indices (function, global, type, table, memory, data and
//!   element indices replaced by slots in order of first use, each with what the code
//!   depends on: a callee's type and whether it is imported, a global's type, ...);
//! - *beyond immediates and indices*: bodies that differ in more than that and numeric
//!   immediates (`*.const` operands, load/store offsets).
//!
//! A function the base does not have counts as differing at every level. The stencil
//! key's own fingerprinter ([`quickbeam_environ::key::Fingerprinter`]) is only a cross
//! check of the reference.
//!
//! Every variant compiled through the cache must also run and print its `.expected`
//! (the output of its native build), and its finalized code must equal a compile with
//! the cache off (invariant I1).
//!
//! Figures: `cargo test --release -p quickbeam-tests --test reload -- --nocapture
//! --test-threads 1`. Missing fixtures fail these tests with instructions, unless
//! `QUICKBEAM_SKIP_PROGRAMS=1`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use quickbeam::{CompileReport, Config, Engine, Linker, Module, Store};
use quickbeam_tests::programs::{first_difference, fixtures_dir, tail};
use quickbeam_wasi::{I32Exit, OutputBuffer, WasiCtx};
use wasmparser::{BlockType, FunctionBody, KnownCustom, Name, Operator, Parser, Payload, TypeRef};

// ---- fixtures ------------------------------------------------------------------------------

/// The rebuild variants `fixtures/build.sh` makes: (program, variant).
const VARIANTS: &[(&str, &str)] = &[
    ("sqlite", "edit"),
    ("sqlite", "addfn"),
    ("sqlite", "literal"),
    ("sqlite", "string"),
    ("lua", "edit"),
    ("lua", "addfn"),
    ("lua", "string"),
    ("zstd", "edit"),
    ("zstd", "addfn"),
    ("zstd", "string"),
    ("bzip2", "edit"),
    ("bzip2", "addfn"),
    ("bzip2", "literal"),
    ("bzip2", "string"),
];

/// The programs that have `variant`.
fn programs_with(variant: &str) -> Vec<&'static str> {
    VARIANTS.iter().filter(|(_, v)| *v == variant).map(|(p, _)| *p).collect()
}

/// A build of a real program: its module and what it must print.
struct Build {
    label: String,
    wasm: Vec<u8>,
    expected: Vec<u8>,
}

fn skip_programs() -> bool {
    std::env::var("QUICKBEAM_SKIP_PROGRAMS").is_ok_and(|v| v == "1")
}

/// `target/fixtures/<stem>.wasm` and `.expected`; panics with instructions when missing.
fn load(stem: &str) -> Build {
    let dir = fixtures_dir();
    let read = |ext: &str| {
        let p = dir.join(format!("{stem}.{ext}"));
        std::fs::read(&p).unwrap_or_else(|e| {
            panic!(
                "missing fixture `{}` ({e}): build the real-program fixtures and their rebuild \
                 variants with `bash fixtures/build.sh`, or set QUICKBEAM_SKIP_PROGRAMS=1 to skip \
                 these tests",
                p.display()
            )
        })
    };
    let label = stem.rsplit('/').next().unwrap_or(stem).to_string();
    Build { label, wasm: read("wasm"), expected: read("expected") }
}

fn base(program: &str) -> Build {
    load(program)
}

fn variant(program: &str, variant: &str) -> Build {
    load(&format!("variants/{program}-{variant}"))
}

// ---- engines and cache directories ---------------------------------------------------------

/// A fresh, empty cache directory under the system's temporary directory, removed on drop.
struct CacheDir(PathBuf);

impl CacheDir {
    fn new(tag: &str) -> CacheDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("quickbeam-reload-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        CacheDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for CacheDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An engine whose cache is backed by the disk store in `dir`.
fn engine_on(dir: &CacheDir) -> Engine {
    let mut config = Config::new();
    config.cache_directory(dir.path()).expect("cache directory");
    Engine::new(&config).expect("engine")
}

fn compile(engine: &Engine, build: &Build) -> Module {
    Module::new(engine, &build.wasm).unwrap_or_else(|e| panic!("{}: failed to compile: {e:#}", build.label))
}

/// Where the variant's cache comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    /// The engine that compiled the base compiles the variant.
    InProcess,
    /// A fresh engine on the same cache directory compiles the variant.
    FromDisk,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Via::InProcess => "in process",
            Via::FromDisk => "from disk",
        })
    }
}

/// Compiles `first`, then `second`, with a fresh cache directory, the second by `path`.
/// Returns the directory, the second module, its engine, and what that engine compiled
/// before it. (Bind the directory first, so that it is removed after the engine, whose
/// store writes it in the background, is gone.)
fn compile_after<'a>(first: &'a Build, second: &Build, path: Via) -> (CacheDir, Module, Engine, Vec<&'a Build>) {
    let dir = CacheDir::new(&second.label);
    let engine = engine_on(&dir);
    compile(&engine, first);
    let (engine, before) = match path {
        Via::InProcess => (engine, vec![first]),
        Via::FromDisk => {
            // Entries reach the store on a background thread.
            engine.flush_cache();
            drop(engine);
            (engine_on(&dir), vec![])
        }
    };
    let module = compile(&engine, second);
    (dir, module, engine, before)
}

/// Invariant I1 on a real reload: the code compiled through the cache is the code a
/// compile with the cache off gives, in an engine that compiled the same modules before
/// (signature ids, which `call_indirect` code embeds, are engine-wide and numbered in
/// order of first registration).
fn assert_same_code_as_uncached(module: &Module, build: &Build, before: &[&Build]) {
    let mut config = Config::new();
    config.cache(false);
    let engine = Engine::new(&config).unwrap();
    for b in before {
        compile(&engine, b);
    }
    let cold = compile(&engine, build);
    let (x, y) = (module.text(), cold.text());
    assert!(
        x == y,
        "{}: the code compiled through the cache differs from a compile with the cache off \
         ({} vs {} bytes, first difference at offset {:?})",
        build.label,
        x.len(),
        y.len(),
        x.iter().zip(y).position(|(p, q)| p != q)
    );
}

/// Runs a WASI command compiled in `engine` on a thread with a large stack; returns its
/// exit status and stdout.
fn run(engine: &Engine, module: &Module, label: &str) -> (i32, Vec<u8>) {
    let go = || -> anyhow::Result<(i32, Vec<u8>)> {
        let (stdout, stderr) = (OutputBuffer::new(), OutputBuffer::new());
        let wasi = WasiCtx::builder()
            .arg(format!("{label}.wasm"))
            .stdout_capture(stdout.clone())
            .stderr_capture(stderr.clone())
            .build();
        let mut store = Store::new(engine, wasi);
        let mut linker = Linker::new(engine);
        quickbeam_wasi::add_to_linker(&mut linker, |cx: &mut WasiCtx| cx)?;
        let instance = linker.instantiate(&mut store, module)?;
        let start = instance.get_func(&mut store, "_start").ok_or_else(|| anyhow::anyhow!("no `_start`"))?;
        let code = match start.call(&mut store, &[], &mut []) {
            Ok(()) => 0,
            Err(e) => match e.chain().find_map(|c| c.downcast_ref::<I32Exit>()) {
                Some(exit) => exit.0,
                None => {
                    return Err(e.context(format!(
                        "`_start` failed; stdout ends with:\n{}\nstderr:\n{}",
                        tail(&stdout.contents(), 5),
                        String::from_utf8_lossy(&stderr.contents())
                    )))
                }
            },
        };
        Ok((code, stdout.take()))
    };
    quickbeam_cli::with_large_stack(go)
        .unwrap_or_else(|p| panic!("{label}: Quickbeam panicked: {p}"))
        .unwrap_or_else(|e| panic!("{label}: {e:#}"))
}

fn assert_prints_expected(engine: &Engine, module: &Module, build: &Build, how: &str) {
    let (code, stdout) = run(engine, module, &build.label);
    if let Some(diff) = first_difference(&build.expected, &stdout) {
        panic!("{} ({how}): stdout differs from its .expected at {diff}", build.label);
    }
    assert_eq!(code, 0, "{} ({how}): exit status", build.label);
}

fn report_line(r: &CompileReport) -> String {
    format!(
        "{:>5} functions: {:>5} reused {:>5} patched {:>5} compiled ({:.1} ms)",
        r.functions,
        r.reused,
        r.patched,
        r.compiled,
        r.seconds * 1e3
    )
}

// ---- the reference: bodies compared up to indices and immediates ---------------------------

/// What the bodies of a module can refer to, from its sections.
#[derive(Default)]
struct ModuleInfo {
    types: Vec<wasmparser::FuncType>,
    /// Type index of every function, imports first.
    funcs: Vec<u32>,
    imported_funcs: u32,
    globals: Vec<wasmparser::GlobalType>,
    tables: Vec<wasmparser::TableType>,
    memories: Vec<wasmparser::MemoryType>,
}

/// One defined function, normalized three ways.
struct Body {
    name: String,
    /// The body's bytes (locals and operators) and its type.
    raw: Vec<u8>,
    /// With module indices replaced by first-use slots and what the code depends on.
    up_to_indices: Vec<u8>,
    /// Also with numeric immediates (`*.const` operands, memarg offsets) replaced.
    up_to_immediates_and_indices: Vec<u8>,
}

/// The defined functions of a module, by name.
struct Bodies {
    funcs: Vec<Body>,
    by_name: HashMap<String, Vec<usize>>,
}

/// The kinds of module index a body can name; each has its own slot numbering.
#[derive(Clone, Copy)]
enum Kind {
    Func,
    Global,
    Table,
    Type,
    Memory,
    Data,
    Elem,
}

/// Writes one body's normalized form.
struct Normalizer<'m> {
    m: &'m ModuleInfo,
    abstract_immediates: bool,
    out: Vec<u8>,
    /// Per kind: module index -> slot.
    slots: [HashMap<u32, u32>; 7],
    /// Per slot, in order of first use: its kind, number and what the code depends on.
    slot_env: Vec<u8>,
}

/// A token of the normalized form: length-prefixed, so the encoding is unambiguous.
fn token(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The opcode of an operator's encoding (one byte, or a prefix byte and a LEB128).
fn opcode(raw: &[u8]) -> &[u8] {
    match raw[0] {
        0xFB..=0xFE => {
            let n = raw[1..].iter().position(|b| b & 0x80 == 0).map_or(raw.len(), |i| i + 2);
            &raw[..n]
        }
        _ => &raw[..1],
    }
}

fn memarg(op: &Operator<'_>) -> Option<wasmparser::MemArg> {
    use Operator::*;
    match *op {
        I32Load { memarg }
        | I64Load { memarg }
        | F32Load { memarg }
        | F64Load { memarg }
        | I32Load8S { memarg }
        | I32Load8U { memarg }
        | I32Load16S { memarg }
        | I32Load16U { memarg }
        | I64Load8S { memarg }
        | I64Load8U { memarg }
        | I64Load16S { memarg }
        | I64Load16U { memarg }
        | I64Load32S { memarg }
        | I64Load32U { memarg }
        | I32Store { memarg }
        | I64Store { memarg }
        | F32Store { memarg }
        | F64Store { memarg }
        | I32Store8 { memarg }
        | I32Store16 { memarg }
        | I64Store8 { memarg }
        | I64Store16 { memarg }
        | I64Store32 { memarg } => Some(memarg),
        _ => None,
    }
}

fn func_type_bytes(t: &wasmparser::FuncType) -> Vec<u8> {
    format!("{:?}->{:?}", t.params(), t.results()).into_bytes()
}

impl<'m> Normalizer<'m> {
    fn new(m: &'m ModuleInfo, abstract_immediates: bool) -> Self {
        Normalizer { m, abstract_immediates, out: Vec::new(), slots: Default::default(), slot_env: Vec::new() }
    }

    /// The slot of module index `index` of `kind`, recording at its first use what the
    /// code depends on.
    fn slot(&mut self, kind: Kind, index: u32) -> u32 {
        let map = &mut self.slots[kind as usize];
        let next = map.len() as u32;
        let slot = *map.entry(index).or_insert(next);
        if slot == next {
            let m = self.m;
            let what: Vec<u8> = match kind {
                Kind::Func => {
                    let ty = &m.types[m.funcs[index as usize] as usize];
                    let mut v = func_type_bytes(ty);
                    v.push((index < m.imported_funcs) as u8);
                    v
                }
                Kind::Global => format!("{:?}", m.globals[index as usize]).into_bytes(),
                Kind::Table => format!("{:?}", m.tables[index as usize].element_type).into_bytes(),
                Kind::Type => func_type_bytes(&m.types[index as usize]),
                Kind::Memory => {
                    let t = &m.memories[index as usize];
                    vec![t.memory64 as u8, t.shared as u8]
                }
                Kind::Data | Kind::Elem => Vec::new(),
            };
            token(&mut self.slot_env, &[kind as u8]);
            token(&mut self.slot_env, &what);
        }
        slot
    }

    fn op(&mut self, op: &Operator<'_>, raw: &[u8]) {
        use Operator::*;
        let mut t = opcode(raw).to_vec();
        let slot = |n: &mut Self, t: &mut Vec<u8>, kind: Kind, index: u32| {
            let s = n.slot(kind, index);
            t.extend_from_slice(&s.to_le_bytes());
        };
        match *op {
            Call { function_index } | RefFunc { function_index } => slot(self, &mut t, Kind::Func, function_index),
            CallIndirect { type_index, table_index } => {
                slot(self, &mut t, Kind::Type, type_index);
                slot(self, &mut t, Kind::Table, table_index);
            }
            GlobalGet { global_index } | GlobalSet { global_index } => slot(self, &mut t, Kind::Global, global_index),
            TableGet { table } | TableSet { table } | TableGrow { table } | TableSize { table } | TableFill { table } => {
                slot(self, &mut t, Kind::Table, table)
            }
            TableCopy { dst_table, src_table } => {
                slot(self, &mut t, Kind::Table, dst_table);
                slot(self, &mut t, Kind::Table, src_table);
            }
            TableInit { elem_index, table } => {
                slot(self, &mut t, Kind::Elem, elem_index);
                slot(self, &mut t, Kind::Table, table);
            }
            ElemDrop { elem_index } => slot(self, &mut t, Kind::Elem, elem_index),
            MemoryInit { data_index, mem } => {
                slot(self, &mut t, Kind::Data, data_index);
                slot(self, &mut t, Kind::Memory, mem);
            }
            DataDrop { data_index } => slot(self, &mut t, Kind::Data, data_index),
            MemoryCopy { dst_mem, src_mem } => {
                slot(self, &mut t, Kind::Memory, dst_mem);
                slot(self, &mut t, Kind::Memory, src_mem);
            }
            MemoryFill { mem } | MemorySize { mem } | MemoryGrow { mem } => slot(self, &mut t, Kind::Memory, mem),
            Block { blockty: BlockType::FuncType(i) }
            | Loop { blockty: BlockType::FuncType(i) }
            | If { blockty: BlockType::FuncType(i) } => t.extend(func_type_bytes(&self.m.types[i as usize])),
            I32Const { .. } | I64Const { .. } | F32Const { .. } | F64Const { .. } => {
                if !self.abstract_immediates {
                    t = raw.to_vec();
                }
            }
            _ => match memarg(op) {
                Some(m) => {
                    t.push(m.align);
                    match m.target {
                        wasmparser::MemArgTarget::Memory(mem) => slot(self, &mut t, Kind::Memory, mem),
                        wasmparser::MemArgTarget::Array(ty) => slot(self, &mut t, Kind::Type, ty),
                    }
                    if !self.abstract_immediates {
                        t.extend_from_slice(&m.offset.to_le_bytes());
                    }
                }
                None => t = raw.to_vec(),
            },
        }
        token(&mut self.out, &t);
    }

    /// The normalized form of `body` (of type `ty`).
    fn body(mut self, ty: &wasmparser::FuncType, body: &FunctionBody<'_>) -> Vec<u8> {
        let bytes = body.as_bytes();
        let base = body.range().start;
        token(&mut self.out, &func_type_bytes(ty));
        let mut ops = body.get_operators_reader().expect("operators");
        token(&mut self.out, &bytes[..(ops.original_position() - base) as usize]); // locals
        while !ops.eof() {
            let (op, start) = ops.read_with_offset().expect("operator");
            let end = ops.original_position();
            self.op(&op, &bytes[(start - base) as usize..(end - base) as usize]);
        }
        let env = std::mem::take(&mut self.slot_env);
        token(&mut self.out, &env);
        self.out
    }
}

impl Bodies {
    fn of(wasm: &[u8]) -> Bodies {
        let mut m = ModuleInfo::default();
        let mut code = Vec::new();
        let mut names = HashMap::new();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.expect("a valid module") {
                Payload::TypeSection(r) => {
                    m.types.extend(r.into_iter_err_on_gc_types().map(|t| t.expect("function type")))
                }
                Payload::ImportSection(r) => {
                    for imp in r.into_imports() {
                        match imp.expect("import").ty {
                            TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                                m.funcs.push(t);
                                m.imported_funcs += 1;
                            }
                            TypeRef::Global(g) => m.globals.push(g),
                            TypeRef::Table(t) => m.tables.push(t),
                            TypeRef::Memory(t) => m.memories.push(t),
                            TypeRef::Tag(_) => {}
                        }
                    }
                }
                Payload::FunctionSection(r) => m.funcs.extend(r.into_iter().map(|t| t.expect("function"))),
                Payload::TableSection(r) => m.tables.extend(r.into_iter().map(|t| t.expect("table").ty)),
                Payload::MemorySection(r) => m.memories.extend(r.into_iter().map(|t| t.expect("memory"))),
                Payload::GlobalSection(r) => m.globals.extend(r.into_iter().map(|g| g.expect("global").ty)),
                Payload::CodeSectionEntry(body) => code.push(body),
                Payload::CustomSection(c) => {
                    if let KnownCustom::Name(r) = c.as_known() {
                        for n in r.into_iter().flatten() {
                            if let Name::Function(map) = n {
                                for naming in map.into_iter().flatten() {
                                    names.insert(naming.index, naming.name.to_string());
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let mut funcs = Vec::with_capacity(code.len());
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, body) in code.iter().enumerate() {
            let index = m.imported_funcs + i as u32;
            let ty = &m.types[m.funcs[index as usize] as usize];
            let name = names.get(&index).cloned().unwrap_or_else(|| format!("<function {index}>"));
            let mut raw = func_type_bytes(ty);
            raw.extend_from_slice(body.as_bytes());
            by_name.entry(name.clone()).or_default().push(funcs.len());
            funcs.push(Body {
                name,
                raw,
                up_to_indices: Normalizer::new(&m, false).body(ty, body),
                up_to_immediates_and_indices: Normalizer::new(&m, true).body(ty, body),
            });
        }
        Bodies { funcs, by_name }
    }
}

/// How a variant's bodies differ from the base's (matched by name; a function the base
/// lacks differs at every level).
#[derive(Debug, Default)]
struct Reference {
    functions: usize,
    added: usize,
    raw: usize,
    beyond_indices: usize,
    beyond_immediates_and_indices: usize,
    /// Names of the bodies that differ beyond immediates and indices.
    changed: Vec<String>,
    /// Names of the bodies equal up to immediates and indices but not up to indices.
    constants_only: Vec<String>,
}

impl Reference {
    fn of(base: &Bodies, variant: &Bodies) -> Reference {
        let mut r = Reference { functions: variant.funcs.len(), ..Reference::default() };
        for f in &variant.funcs {
            let Some(candidates) = base.by_name.get(&f.name) else {
                r.added += 1;
                r.raw += 1;
                r.beyond_indices += 1;
                r.beyond_immediates_and_indices += 1;
                r.changed.push(f.name.clone());
                continue;
            };
            let same = |key: fn(&Body) -> &Vec<u8>| candidates.iter().any(|&i| key(&base.funcs[i]) == key(f));
            let raw = !same(|b| &b.raw);
            let indices = !same(|b| &b.up_to_indices);
            let both = !same(|b| &b.up_to_immediates_and_indices);
            r.raw += raw as usize;
            r.beyond_indices += indices as usize;
            r.beyond_immediates_and_indices += both as usize;
            if both {
                r.changed.push(f.name.clone());
            } else if indices {
                r.constants_only.push(f.name.clone());
            }
        }
        r
    }

    fn line(&self) -> String {
        format!(
            "{:>5} functions: {:>5} differ in bytes, {:>4} beyond indices, {:>3} beyond immediates and indices ({} added)",
            self.functions, self.raw, self.beyond_indices, self.beyond_immediates_and_indices, self.added
        )
    }
}

/// Shape keys of a module's defined functions (the stencil key's fingerprinter, as a cross
/// check of the reference), with the constants they abstract.
fn shape_keys(wasm: &[u8]) -> Vec<(String, quickbeam_environ::StencilKey, Vec<u64>)> {
    let (env, inputs) =
        quickbeam_environ::ModuleEnv::parse(wasm, quickbeam_environ::supported_features()).expect("valid module");
    let mut fp = quickbeam_environ::key::Fingerprinter::new();
    inputs
        .iter()
        .map(|input| {
            let f = fp.fingerprint(&env, &[0; 32], input.index, &input.body).expect("fingerprint");
            let name = env.func_name(input.index).map_or_else(|| format!("<function {}>", input.index), str::to_string);
            (name, f.shape, f.consts)
        })
        .collect()
}

/// Cross-checks the reference against shape keys: a body the reference calls equal up to
/// immediates and indices to its base body must have that body's shape key, and a body
/// with the same shape key must be equal up to immediates and indices (else the key
/// misses something the code depends on). Returns a description of any disagreement.
fn cross_check(base: &Build, variant: &Build, reference: &Reference) -> Vec<String> {
    let base_keys: HashMap<String, Vec<quickbeam_environ::StencilKey>> =
        shape_keys(&base.wasm).into_iter().fold(HashMap::new(), |mut m, (n, k, _)| {
            m.entry(n).or_default().push(k);
            m
        });
    let changed: HashSet<&str> = reference.changed.iter().map(String::as_str).collect();
    let mut problems = Vec::new();
    for (name, key, _) in shape_keys(&variant.wasm) {
        let same_key = base_keys.get(&name).is_some_and(|ks| ks.contains(&key));
        let same_ref = !changed.contains(name.as_str());
        if same_key != same_ref {
            problems.push(format!(
                "{name}: reference says {}, shape key says {}",
                if same_ref { "equal" } else { "different" },
                if same_key { "equal" } else { "different" }
            ));
        }
    }
    problems
}

// ---- the variants are what they claim to be ------------------------------------------------

/// The fixtures' rebuild variants change what they say (fixtures/README.md), and the
/// reference agrees with the stencil key's fingerprinter. Prints the reference counts.
#[test]
fn variants_differ_as_described() {
    if skip_programs() {
        return println!("skipped: QUICKBEAM_SKIP_PROGRAMS=1");
    }
    println!("{:<16} {}", "variant", "bodies of the variant that differ from the base build's");
    let mut failures = Vec::new();
    for &(program, kind) in VARIANTS {
        let (b, v) = (base(program), variant(program, kind));
        let r = Reference::of(&Bodies::of(&b.wasm), &Bodies::of(&v.wasm));
        println!("{:<16} {}", v.label, r.line());
        if !r.changed.is_empty() && r.changed.len() <= 3 {
            println!("{:<16}   beyond immediates and indices: {}", "", r.changed.join(", "));
        }
        let n = r.functions;
        let ok = match kind {
            // One function's body changed, nothing moved.
            "edit" => r.added == 0 && r.raw == 1 && r.beyond_indices == 1 && r.beyond_immediates_and_indices == 1,
            // One function added and called: most bodies' call indices shift; only the
            // new function and its caller differ beyond indices.
            "addfn" => r.added == 1 && r.raw > n / 2 && r.beyond_indices <= 2 && r.beyond_immediates_and_indices <= 2,
            // Only constants changed.
            "literal" => r.added == 0 && r.raw >= 1 && r.beyond_immediates_and_indices == 0,
            // Data moved: many bodies' constants and offsets shift; only the function
            // printing the new string differs beyond them.
            "string" => r.added == 0 && r.raw > n / 6 && r.beyond_immediates_and_indices == 1,
            _ => unreachable!(),
        };
        if !ok {
            failures.push(format!("{}: {r:?}", v.label));
        }
        for p in cross_check(&b, &v, &r) {
            failures.push(format!("{}: reference and shape key disagree: {p}", v.label));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- issue 3, acceptance 3: an edited or added function costs only itself ------------------

/// A bound on what a variant may compile, from the reference counts.
type Bound = (fn(&Reference) -> usize, &'static str);

const BEYOND_INDICES: Bound = (|r| r.beyond_indices, "beyond indices");
const BEYOND_IMMEDIATES_AND_INDICES: Bound =
    (|r| r.beyond_immediates_and_indices, "beyond immediates and indices");

/// Compiles each `kind` variant after its base by `path` and checks that it compiles no
/// more functions than each bound allows, that the report adds up, and I1.
fn check_compiled_at_most(kind: &str, path: Via, bounds: &[Bound]) {
    if skip_programs() {
        return println!("skipped: QUICKBEAM_SKIP_PROGRAMS=1");
    }
    let mut failures = Vec::new();
    for program in programs_with(kind) {
        let (b, v) = (base(program), variant(program, kind));
        let reference = Reference::of(&Bodies::of(&b.wasm), &Bodies::of(&v.wasm));
        let (_dir, module, _engine, before) = compile_after(&b, &v, path);
        let r = module.compile_report();
        println!("{:<16} {path:<10} {} | reference: {}", v.label, report_line(&r), reference.line());
        assert_eq!(r.reused + r.patched + r.compiled, r.functions, "{}: report does not add up: {r:?}", v.label);
        assert_eq!(r.functions, reference.functions, "{}: function count", v.label);
        for (bound, name) in bounds {
            if r.compiled > bound(&reference) {
                failures.push(format!(
                    "{} ({path}): compiled {} functions, more than the {} that differ {name}",
                    v.label,
                    r.compiled,
                    bound(&reference)
                ));
            }
        }
        assert_same_code_as_uncached(&module, &v, &before);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Issue 3, acceptance 3a: after a one-function edit, only that function is compiled.
/// (In the `edit` variants the bodies that differ beyond indices and beyond immediates
/// and indices are the same one, so this is also the bound once patching works.)
#[test]
fn edit_compiles_only_the_edited_function_in_process() {
    check_compiled_at_most("edit", Via::InProcess, &[BEYOND_INDICES, BEYOND_IMMEDIATES_AND_INDICES]);
}

#[test]
fn edit_compiles_only_the_edited_function_from_disk() {
    check_compiled_at_most("edit", Via::FromDisk, &[BEYOND_INDICES, BEYOND_IMMEDIATES_AND_INDICES]);
}

/// Issue 3, acceptance 3b: after adding a function, which shifts the call indices of
/// most bodies, only the new function and its caller are compiled: the shifted bodies
/// are served (by shape key; their constants are unchanged, so even exact guards pass).
#[test]
fn addfn_compiles_only_the_new_function_and_its_caller_in_process() {
    check_compiled_at_most("addfn", Via::InProcess, &[BEYOND_INDICES, BEYOND_IMMEDIATES_AND_INDICES]);
}

#[test]
fn addfn_compiles_only_the_new_function_and_its_caller_from_disk() {
    check_compiled_at_most("addfn", Via::FromDisk, &[BEYOND_INDICES, BEYOND_IMMEDIATES_AND_INDICES]);
}

// ---- issue 4, acceptance 2: a changed literal is patched, not compiled ---------------------

/// Prints, for each function whose constants changed, the base stencil's guards on the
/// constants that changed, and whether they accept the new values: the reason if a
/// literal variant compiles anything.
fn explain_constants(b: &Build, v: &Build) {
    let (env, inputs) = quickbeam_environ::ModuleEnv::parse(&b.wasm, quickbeam_environ::supported_features()).unwrap();
    let base_keys = shape_keys(&b.wasm);
    let mut compiler = quickbeam_codegen::FunctionCompiler::new();
    let mut inputs: Vec<_> = inputs.into_iter().map(Some).collect();
    for (name, key, consts) in shape_keys(&v.wasm) {
        let Some(i) = base_keys.iter().position(|(n, k, c)| *n == name && *k == key && *c != consts) else {
            continue;
        };
        let f = compiler.compile(&env, inputs[i].take().unwrap()).expect("base compiles");
        for (k, (&old, &new)) in base_keys[i].2.iter().zip(&consts).enumerate() {
            if old != new {
                let guard = f.stencil.guards[k];
                println!(
                    "{:<16}   {name}: constant #{k} {old:#x} -> {new:#x}, base stencil's guard {guard:?} {}",
                    "",
                    if guard.accepts(new) { "accepts it" } else { "REJECTS it" }
                );
            }
        }
    }
}

/// Issue 4, acceptance 2: a changed numeric literal (one per program, in different
/// functions: sqlite's `main`, bzip2's `round_trip`) is patched into the cached code:
/// nothing is compiled, and the program prints its new output.
fn check_literal(path: Via) {
    if skip_programs() {
        return println!("skipped: QUICKBEAM_SKIP_PROGRAMS=1");
    }
    let mut failures = Vec::new();
    for program in programs_with("literal") {
        let (b, v) = (base(program), variant(program, "literal"));
        let reference = Reference::of(&Bodies::of(&b.wasm), &Bodies::of(&v.wasm));
        let (_dir, module, engine, before) = compile_after(&b, &v, path);
        let r = module.compile_report();
        println!("{:<16} {path:<10} {} | reference: {}", v.label, report_line(&r), reference.line());
        explain_constants(&b, &v);
        assert_prints_expected(&engine, &module, &v, &format!("through the cache, {path}"));
        assert_same_code_as_uncached(&module, &v, &before);
        if r.compiled != 0 || r.patched == 0 {
            failures.push(format!(
                "{} ({path}): {} compiled and {} patched; want 0 compiled and at least 1 patched",
                v.label, r.compiled, r.patched
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn literal_is_patched_not_compiled_in_process() {
    check_literal(Via::InProcess);
}

#[test]
fn literal_is_patched_not_compiled_from_disk() {
    check_literal(Via::FromDisk);
}

// ---- issue 4, acceptance 3: a new string moves data, bodies are patched --------------------

/// Issue 4, acceptance 3: adding a string literal shifts data addresses and load/store
/// offsets in many functions; only the bodies that differ beyond immediates and indices
/// (the one printing the string) are compiled.
#[test]
fn string_compiles_only_what_differs_beyond_immediates_in_process() {
    check_compiled_at_most("string", Via::InProcess, &[BEYOND_IMMEDIATES_AND_INDICES]);
}

#[test]
fn string_compiles_only_what_differs_beyond_immediates_from_disk() {
    check_compiled_at_most("string", Via::FromDisk, &[BEYOND_IMMEDIATES_AND_INDICES]);
}

// ---- issue 3, acceptance 4 / issue 4, acceptance 4: programs share code --------------------

/// Compiles `second` after `first` in one cache: some functions are reused, and at
/// least 90% of those of `second` whose body equals a body of `first` up to immediates
/// and indices (wasi-libc's, mostly) are served from the cache (reused or patched),
/// counted function by function from [`Module::function_sources`].
fn check_shared(first: &str, second: &str, path: Via) {
    if skip_programs() {
        return println!("skipped: QUICKBEAM_SKIP_PROGRAMS=1");
    }
    let (a, b) = (base(first), base(second));
    let (ba, bb) = (Bodies::of(&a.wasm), Bodies::of(&b.wasm));
    let raw: HashSet<&[u8]> = ba.funcs.iter().map(|f| f.raw.as_slice()).collect();
    let by_indices: HashSet<&[u8]> = ba.funcs.iter().map(|f| f.up_to_indices.as_slice()).collect();
    let by_both: HashSet<&[u8]> = ba.funcs.iter().map(|f| f.up_to_immediates_and_indices.as_slice()).collect();
    // (defined-function index, body) of `second`'s bodies equal to one of `first`'s.
    let shared: Vec<(usize, &Body)> =
        bb.funcs.iter().enumerate().filter(|(_, f)| by_both.contains(f.up_to_immediates_and_indices.as_slice())).collect();
    let same_bytes = shared.iter().filter(|(_, f)| raw.contains(f.raw.as_slice())).count();
    let same_up_to_indices = shared.iter().filter(|(_, f)| by_indices.contains(f.up_to_indices.as_slice())).count();

    let (_dir, module, engine, before) = compile_after(&a, &b, path);
    let r = module.compile_report();
    let sources = module.function_sources();
    assert_eq!(sources.len(), r.functions);
    let unserved: Vec<&(usize, &Body)> =
        shared.iter().filter(|(i, _)| sources[*i] == quickbeam::FunctionSource::Compiled).collect();
    let served = shared.len() - unserved.len();
    println!(
        "{second} after {first} ({path}): {}\n  {} of {} functions equal a body of {first} up to immediates and \
         indices ({same_up_to_indices} up to indices, {same_bytes} byte for byte); {served} of them served ({:.1}%)",
        report_line(&r),
        shared.len(),
        r.functions,
        100.0 * served as f64 / shared.len().max(1) as f64,
    );

    // Why a shared body was compiled: its shape key (the fingerprinter's) is not one of
    // `first`'s although the reference finds the bodies equal, or a guard of the stencil
    // rejected its constants (only possible where constants differ from every equal body).
    let first_keys: HashSet<_> = shape_keys(&a.wasm).into_iter().map(|(_, k, _)| k).collect();
    let keys: Vec<quickbeam_environ::StencilKey> = shape_keys(&b.wasm).into_iter().map(|(_, k, _)| k).collect();
    for (i, f) in &unserved {
        let why = if !first_keys.contains(&keys[*i]) {
            "no shape key of the first program"
        } else if by_indices.contains(f.up_to_indices.as_slice()) {
            "same constants as a body of the first program (unexpected)"
        } else {
            "constants rejected by the guards"
        };
        println!("  compiled: {} ({why})", f.name);
    }
    assert_prints_expected(&engine, &module, &b, &format!("after {first}, {path}"));
    assert_same_code_as_uncached(&module, &b, &before);
    assert!(r.reused > 0, "{second} after {first} ({path}): nothing reused: {r:?}");
    assert!(
        served * 10 >= shared.len() * 9,
        "{second} after {first} ({path}): served {served} of the {} functions that equal a body of {first} up \
         to immediates and indices, fewer than 90%",
        shared.len()
    );
}

#[test]
fn lua_after_sqlite_reuses_the_shared_code_in_process() {
    check_shared("sqlite", "lua", Via::InProcess);
}

#[test]
fn lua_after_sqlite_reuses_the_shared_code_from_disk() {
    check_shared("sqlite", "lua", Via::FromDisk);
}

#[test]
fn bzip2_after_zstd_reuses_the_shared_code_in_process() {
    check_shared("zstd", "bzip2", Via::InProcess);
}

#[test]
fn bzip2_after_zstd_reuses_the_shared_code_from_disk() {
    check_shared("zstd", "bzip2", Via::FromDisk);
}

// ---- every variant runs correctly through the cache ----------------------------------------

/// Every variant, compiled after its base through the cache, prints its `.expected` and
/// exits with 0: whatever the cache serves or patches must be right. Runs the module
/// compiled in process; the one compiled by a fresh engine from disk is checked against a
/// compile with the cache off (I1), which the in-process one also equals.
#[test]
fn every_variant_run_through_the_cache_prints_its_expected_output() {
    if skip_programs() {
        return println!("skipped: QUICKBEAM_SKIP_PROGRAMS=1");
    }
    for &(program, kind) in VARIANTS {
        let (b, v) = (base(program), variant(program, kind));
        let (_dir, module, engine, before) = compile_after(&b, &v, Via::InProcess);
        println!("{:<16} {:<10} {}", v.label, Via::InProcess, report_line(&module.compile_report()));
        assert_prints_expected(&engine, &module, &v, "in process");
        assert_same_code_as_uncached(&module, &v, &before);
        let (_dir, module, _engine, before) = compile_after(&b, &v, Via::FromDisk);
        println!("{:<16} {:<10} {}", v.label, Via::FromDisk, report_line(&module.compile_report()));
        assert_same_code_as_uncached(&module, &v, &before);
    }
}
