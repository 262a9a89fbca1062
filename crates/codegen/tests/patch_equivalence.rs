//! Issue 4, acceptance line 1: invariant I2 (patch equivalence, DESIGN.md §3) as a property
//! test over the real programs, wasm-smith modules and a zoo of every use of a constant.
//!
//! For a function compiled from its body with constants `c` (every `*.const` operand and
//! memarg offset, by `ConstIdx`), the test rewrites the body with other constants `c'`
//! ([`rewrite`]: new LEB128 or IEEE bytes spliced in, every other byte kept) and compiles
//! that body fresh. Then:
//! - if every guard of the original stencil accepts `c'`, the fresh stencil equals the
//!   original one field by field (code, relocations, constant sites, guards, trap sites,
//!   source locations), and finalizing the original stencil with `c'` gives, byte for
//!   byte, the fresh stencil finalized with `c'` — and so does finalizing, from the code
//!   baked with `c` (`bake_constants`, the cache's in-memory form), only what differs;
//! - if a guard rejects `c'`, `finalize` of the original stencil returns `GuardRejected`
//!   for the first rejected constant (the cache then recompiles), and the fresh compile
//!   succeeds.
//!
//! The values of `c'` mix boundary values (0, ±1, 2, powers of two and their neighbours,
//! i32/u32/i64 extremes, 2^31, 2^32), values at and just outside each `Range` guard, the
//! neighbours of `Exact` values, NaNs of both signs and several payloads, ±0.0, ±inf and
//! subnormals for floats, and random bits. Each function gets variants that change one
//! constant (within its guard or not), most constants within their guards, and a quarter
//! of them regardless of their guards ([`VariantKind`]); the zoo ([`ZOO`]) changes each
//! constant alone to each boundary value. Bodies are rebuilt into whole modules
//! ([`module_with_body`]) and parsed again for the wasm-smith modules and a sample of the
//! real programs' variants; the other variants reuse the module's environment and
//! validator resources (the module is the same but for one body, so they are too).
//!
//! With `--nocapture` it prints, per program, the share of constants whose guard is not
//! `Exact` (what a cache can patch), and how many rejected variants compiled to the same
//! code anyway (guards tighter than they need to be).
//!
//! `cargo test` runs a short, deterministic sample: all of Lua, a third of the functions
//! of SQLite, zstd and bzip2, 200 wasm-smith modules. The long run covers every function
//! of every program and of `../shared/corpus`, with 16 variants each, and `N` wasm-smith
//! modules:
//! ```text
//! QUICKBEAM_I2_CASES=3000 cargo test --release -p quickbeam-codegen --test patch_equivalence -- --nocapture
//! ```
//! `QUICKBEAM_I2_SEED=S` shifts every seed, for another sample.

use quickbeam_codegen::*;
use quickbeam_environ::*;
use quickbeam_microwasm::CompileError;
use std::path::PathBuf;
use wasmparser::{BinaryReader, FuncToValidate, FunctionBody, Operator, ValidatorResources, WasmFeatures};

// ---- settings ---------------------------------------------------------------------------

/// How much to test: the default short run, or the long run of `QUICKBEAM_I2_CASES`.
#[derive(Clone, Copy, Debug)]
struct Budget {
    /// Number of wasm-smith modules.
    smith_modules: u64,
    /// Variants per function.
    variants: usize,
    /// Test every function of every program (else a fixed sample of the large ones).
    every_function: bool,
    /// Mixed into every seed.
    seed: u64,
}

fn budget() -> Budget {
    let seed = std::env::var("QUICKBEAM_I2_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    match std::env::var("QUICKBEAM_I2_CASES").ok().and_then(|s| s.parse::<u64>().ok()) {
        Some(n) => Budget { smith_modules: n, variants: 16, every_function: true, seed },
        None => Budget { smith_modules: 200, variants: 6, every_function: false, seed },
    }
}

// ---- a small deterministic PRNG (SplitMix64) ---------------------------------------------

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// True with probability `num/den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

// ---- LEB128 --------------------------------------------------------------------------------

fn read_uleb(b: &[u8]) -> (u64, usize) {
    let (mut v, mut shift, mut i) = (0u64, 0, 0);
    loop {
        let byte = b[i];
        i += 1;
        if shift < 64 {
            v |= ((byte & 0x7f) as u64) << shift;
        }
        shift += 7;
        if byte & 0x80 == 0 {
            return (v, i);
        }
    }
}

fn read_sleb(b: &[u8]) -> (i64, usize) {
    let (mut v, mut shift, mut i) = (0i64, 0, 0);
    loop {
        let byte = b[i];
        i += 1;
        if shift < 64 {
            v |= ((byte & 0x7f) as i64) << shift;
        }
        shift += 7;
        if byte & 0x80 == 0 {
            if shift < 64 && byte & 0x40 != 0 {
                v |= -1i64 << shift;
            }
            return (v, i);
        }
    }
}

fn write_uleb(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn write_sleb(mut v: i64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

// ---- the body rewriter -------------------------------------------------------------------

/// What a constant of a body is: fixes its domain (as `consts` bits) and its encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ImmKind {
    /// `i32.const`: bits are the zero-extended u32; encoded as a signed LEB128 i32.
    I32,
    /// `i64.const`: signed LEB128 i64.
    I64,
    /// `f32.const`: 4 IEEE bytes; bits zero-extended.
    F32,
    /// `f64.const`: 8 IEEE bytes.
    F64,
    /// A memory32 memarg offset: unsigned LEB128 u32.
    Offset,
}

impl ImmKind {
    /// Whether `bits` is a value a constant of this kind can have.
    fn holds(self, bits: u64) -> bool {
        match self {
            ImmKind::I32 | ImmKind::F32 | ImmKind::Offset => bits <= u32::MAX as u64,
            ImmKind::I64 | ImmKind::F64 => true,
        }
    }
}

/// One constant's immediate in a body: its kind and byte range from the body's start.
#[derive(Clone, Copy, Debug)]
struct Imm {
    kind: ImmKind,
    start: usize,
    end: usize,
}

/// Every constant of `body` (which starts at module offset `offset`), in `ConstIdx` order:
/// `*.const` operands and memarg offsets, in body order, dead code included.
fn immediates(body: &[u8], offset: u64) -> Vec<Imm> {
    let fb = FunctionBody::new(BinaryReader::new(body, offset));
    let mut ops = fb.get_operators_reader().expect("operators");
    let mut imms = Vec::new();
    while !ops.eof() {
        let (op, at) = ops.read_with_offset().expect("operator");
        let at = (at - offset) as usize;
        let (kind, start, end) = match op {
            Operator::I32Const { .. } => (ImmKind::I32, at + 1, at + 1 + read_sleb(&body[at + 1..]).1),
            Operator::I64Const { .. } => (ImmKind::I64, at + 1, at + 1 + read_sleb(&body[at + 1..]).1),
            Operator::F32Const { .. } => (ImmKind::F32, at + 1, at + 5),
            Operator::F64Const { .. } => (ImmKind::F64, at + 1, at + 9),
            // The MVP loads and stores (0x28..=0x3e), the only operators with a memarg that
            // Quickbeam's features allow: align flags, a memory index if flag 6 says so,
            // then the offset.
            _ if (0x28..=0x3e).contains(&body[at]) => {
                let mut p = at + 1;
                let (flags, n) = read_uleb(&body[p..]);
                p += n;
                if flags & 0x40 != 0 {
                    p += read_uleb(&body[p..]).1;
                }
                (ImmKind::Offset, p, p + read_uleb(&body[p..]).1)
            }
            _ => continue,
        };
        imms.push(Imm { kind, start, end });
    }
    imms
}

/// The bits (as in `CompiledFunction::consts`) of the constant at `imm`.
fn decode(body: &[u8], imm: Imm) -> u64 {
    let b = &body[imm.start..imm.end];
    match imm.kind {
        ImmKind::I32 => read_sleb(b).0 as i32 as u32 as u64,
        ImmKind::I64 => read_sleb(b).0 as u64,
        ImmKind::F32 => u32::from_le_bytes(b.try_into().unwrap()) as u64,
        ImmKind::F64 => u64::from_le_bytes(b.try_into().unwrap()),
        ImmKind::Offset => read_uleb(b).0,
    }
}

fn encode(kind: ImmKind, bits: u64, out: &mut Vec<u8>) {
    assert!(kind.holds(bits), "{bits:#x} is no {kind:?}");
    match kind {
        ImmKind::I32 => write_sleb(bits as u32 as i32 as i64, out),
        ImmKind::I64 => write_sleb(bits as i64, out),
        ImmKind::F32 => out.extend_from_slice(&(bits as u32).to_le_bytes()),
        ImmKind::F64 => out.extend_from_slice(&bits.to_le_bytes()),
        ImmKind::Offset => write_uleb(bits, out),
    }
}

/// `body` with constant `k` re-encoded as `new[k]` wherever `new[k] != old[k]` (the other
/// constants keep their bytes, padded LEB128s included).
fn rewrite(body: &[u8], imms: &[Imm], old: &[u64], new: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    let mut pos = 0;
    for (k, imm) in imms.iter().enumerate() {
        if old[k] != new[k] {
            out.extend_from_slice(&body[pos..imm.start]);
            encode(imm.kind, new[k], &mut out);
            pos = imm.end;
        }
    }
    out.extend_from_slice(&body[pos..]);
    out
}

/// `module` with the body of its `defined`-th defined function replaced by `body`: the
/// code section is rebuilt, every other section is copied as it is.
fn module_with_body(module: &[u8], defined: usize, body: &[u8]) -> Vec<u8> {
    let mut out = module[..8].to_vec();
    let mut pos = 8;
    while pos < module.len() {
        let id = module[pos];
        let (size, n) = read_uleb(&module[pos + 1..]);
        let start = pos + 1 + n;
        let end = start + size as usize;
        if id != 10 {
            out.extend_from_slice(&module[pos..end]);
            pos = end;
            continue;
        }
        let sec = &module[start..end];
        let (count, mut p) = read_uleb(sec);
        let mut contents = Vec::with_capacity(sec.len() + body.len());
        write_uleb(count, &mut contents);
        for i in 0..count as usize {
            let (len, n) = read_uleb(&sec[p..]);
            let old = &sec[p + n..p + n + len as usize];
            p += n + len as usize;
            let b = if i == defined { body } else { old };
            write_uleb(b.len() as u64, &mut contents);
            contents.extend_from_slice(b);
        }
        out.push(10);
        write_uleb(contents.len() as u64, &mut out);
        out.extend_from_slice(&contents);
        pos = end;
    }
    out
}

// ---- values for c' -----------------------------------------------------------------------

const INT_SPECIALS: &[i64] = &[
    0,
    1,
    2,
    3,
    4,
    5,
    7,
    8,
    15,
    16,
    31,
    32,
    33,
    63,
    64,
    65,
    127,
    128,
    255,
    256,
    4095,
    4096,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    -1,
    -2,
    -128,
    -129,
    i32::MAX as i64,
    i32::MAX as i64 - 1,
    i32::MIN as i64,
    i32::MIN as i64 + 1,
    i32::MIN as i64 - 1,
    1 << 31,
    (1 << 31) + 1,
    u32::MAX as i64,
    u32::MAX as i64 - 1,
    1 << 32,
    (1 << 32) + 1,
    i64::MAX,
    i64::MAX - 1,
    i64::MIN,
    i64::MIN + 1,
];

const F32_SPECIALS: &[u32] = &[
    0x0000_0000, // 0.0
    0x8000_0000, // -0.0
    0x3f80_0000, // 1.0
    0xbf80_0000, // -1.0
    0x3f00_0000, // 0.5
    0x4000_0000, // 2.0
    0x7fc0_0000, // canonical NaN
    0xffc0_0000, // negative NaN
    0x7fc0_0001, // NaN with a payload
    0x7f80_0001, // signalling NaN
    0x7fff_ffff, // largest NaN
    0x7f80_0000, // +inf
    0xff80_0000, // -inf
    0x0000_0001, // smallest subnormal
    0x0080_0000, // smallest normal
    0x7f7f_ffff, // largest finite
    0xff7f_ffff, // most negative finite
    0x4f00_0000, // 2^31
    0xcf00_0000, // -2^31
    0x4f80_0000, // 2^32
    0x5f00_0000, // 2^63
    0xdf00_0000, // -2^63
    0x5f80_0000, // 2^64
    0x3dcc_cccd, // 0.1
];

const F64_SPECIALS: &[u64] = &[
    0x0000_0000_0000_0000, // 0.0
    0x8000_0000_0000_0000, // -0.0
    0x3ff0_0000_0000_0000, // 1.0
    0xbff0_0000_0000_0000, // -1.0
    0x3fe0_0000_0000_0000, // 0.5
    0x4000_0000_0000_0000, // 2.0
    0x7ff8_0000_0000_0000, // canonical NaN
    0xfff8_0000_0000_0000, // negative NaN
    0x7ff8_0000_0000_0001, // NaN with a payload
    0x7ff0_0000_0000_0001, // signalling NaN
    0x7fff_ffff_ffff_ffff, // largest NaN
    0x7ff0_0000_0000_0000, // +inf
    0xfff0_0000_0000_0000, // -inf
    0x0000_0000_0000_0001, // smallest subnormal
    0x0010_0000_0000_0000, // smallest normal
    0x7fef_ffff_ffff_ffff, // largest finite
    0xffef_ffff_ffff_ffff, // most negative finite
    0x41e0_0000_0000_0000, // 2^31
    0xc1e0_0000_0020_0000, // -2^31 - 1
    0x41f0_0000_0000_0000, // 2^32
    0x43e0_0000_0000_0000, // 2^63
    0xc3e0_0000_0000_0000, // -2^63
    0x43f0_0000_0000_0000, // 2^64
    0x3fb9_9999_9999_999a, // 0.1
];

/// The bits of a kind's value for the integer `x` (truncated to 32 bits where the kind is).
fn int_bits(kind: ImmKind, x: i64) -> u64 {
    match kind {
        ImmKind::I32 | ImmKind::Offset | ImmKind::F32 => x as u32 as u64,
        ImmKind::I64 | ImmKind::F64 => x as u64,
    }
}

/// Values of a guard's edges: the bounds of a range and their outside neighbours, the
/// neighbours of an exact value.
fn guard_edges(guard: Guard) -> Vec<i64> {
    match guard {
        Guard::Any => Vec::new(),
        Guard::Range { lo, hi } => {
            let mut v = vec![lo, hi];
            v.extend(lo.checked_sub(1));
            v.extend(hi.checked_add(1));
            v.extend(lo.checked_add(1).filter(|&x| x <= hi));
            v.extend(hi.checked_sub(1).filter(|&x| x >= lo));
            v
        }
        Guard::Exact(v) => vec![(v as i64).wrapping_add(1), (v as i64).wrapping_sub(1), v as i64],
    }
}

/// One value for a constant of `kind` whose value is `orig` and guard `guard`: accepted by
/// the guard or not.
fn arbitrary_value(rng: &mut Rng, kind: ImmKind, orig: u64, guard: Guard) -> u64 {
    loop {
        let v = match rng.below(10) {
            // Boundary values.
            0..=2 => match kind {
                ImmKind::F32 => rng.pick(F32_SPECIALS) as u64,
                ImmKind::F64 => rng.pick(F64_SPECIALS),
                _ => int_bits(kind, rng.pick(INT_SPECIALS)),
            },
            // Powers of two and their neighbours.
            3 => {
                let p = 1i64.wrapping_shl(rng.below(64) as u32);
                int_bits(kind, p.wrapping_add(rng.pick(&[-1i64, 0, 1])).wrapping_mul(rng.pick(&[1i64, -1])))
            }
            // The guard's edges.
            4 | 5 => {
                let edges = guard_edges(guard);
                if edges.is_empty() {
                    continue;
                }
                let e = rng.pick(&edges) as u64;
                if !kind.holds(e) {
                    continue;
                }
                e
            }
            // Near the original value (for floats: one ulp, or the sign flipped).
            6 => match kind {
                ImmKind::F32 => (orig ^ rng.pick(&[1u64, 0x8000_0000])) & 0xffff_ffff,
                ImmKind::F64 => orig ^ rng.pick(&[1u64, 1 << 63]),
                _ => int_bits(kind, (orig as i64).wrapping_add(rng.pick(&[-1i64, 1, 2, -4096, 4096]))),
            },
            // Random bits, of a random width and sign.
            _ => {
                let x = (rng.next() >> rng.below(64)) as i64;
                let x = if rng.chance(1, 3) { x.wrapping_neg() } else { x };
                int_bits(kind, x)
            }
        };
        if kind.holds(v) {
            return v;
        }
    }
}

/// A value other than `orig` that `guard` accepts, if one is easy to find.
fn accepted_value(rng: &mut Rng, kind: ImmKind, orig: u64, guard: Guard) -> Option<u64> {
    if let Guard::Exact(_) = guard {
        return None;
    }
    for _ in 0..32 {
        let v = arbitrary_value(rng, kind, orig, guard);
        if v != orig && guard.accepts(v) {
            return Some(v);
        }
    }
    None
}

/// How one variant of a function's constants is chosen.
#[derive(Clone, Copy, Debug)]
enum VariantKind {
    /// One constant with a non-`Exact` guard changed to a value its guard accepts.
    OneAccepted,
    /// One constant changed to any value.
    OneArbitrary,
    /// One constant (with a `Range` or `Exact` guard if there is one) changed to a value at
    /// its guard's edge.
    OneAtEdge,
    /// Most constants changed, each within its guard.
    ManyAccepted,
    /// A quarter of the constants changed to any values.
    ManyArbitrary,
}

const VARIANT_KINDS: [VariantKind; 6] = [
    VariantKind::ManyAccepted,
    VariantKind::OneAccepted,
    VariantKind::OneArbitrary,
    VariantKind::OneAtEdge,
    VariantKind::ManyArbitrary,
    VariantKind::OneAccepted,
];

/// Constants `c'` for one variant of a function with constants `c`.
fn variant(rng: &mut Rng, vk: VariantKind, imms: &[Imm], c: &[u64], guards: &[Guard]) -> Vec<u64> {
    let mut v = c.to_vec();
    let n = c.len();
    match vk {
        VariantKind::OneAccepted => {
            let open: Vec<usize> = (0..n).filter(|&k| !matches!(guards[k], Guard::Exact(_))).collect();
            if let Some(&k) = open.get(rng.below(open.len().max(1))) {
                if let Some(x) = accepted_value(rng, imms[k].kind, c[k], guards[k]) {
                    v[k] = x;
                }
            }
        }
        VariantKind::OneArbitrary => {
            let k = rng.below(n);
            v[k] = arbitrary_value(rng, imms[k].kind, c[k], guards[k]);
        }
        VariantKind::OneAtEdge => {
            let edged: Vec<usize> = (0..n).filter(|&k| guards[k] != Guard::Any).collect();
            let k = if edged.is_empty() { rng.below(n) } else { rng.pick(&edged) };
            let edges: Vec<u64> = guard_edges(guards[k])
                .into_iter()
                .map(|e| e as u64)
                .filter(|&e| imms[k].kind.holds(e) && e != c[k])
                .collect();
            v[k] = if edges.is_empty() { arbitrary_value(rng, imms[k].kind, c[k], guards[k]) } else { rng.pick(&edges) };
        }
        VariantKind::ManyAccepted => {
            for k in 0..n {
                if rng.chance(3, 4) {
                    if let Some(x) = accepted_value(rng, imms[k].kind, c[k], guards[k]) {
                        v[k] = x;
                    }
                }
            }
        }
        VariantKind::ManyArbitrary => {
            for k in 0..n {
                if rng.chance(1, 4) {
                    v[k] = arbitrary_value(rng, imms[k].kind, c[k], guards[k]);
                }
            }
        }
    }
    v
}

// ---- modules and functions under test ------------------------------------------------------

/// One defined function: its body and what compiling it needs besides the environment.
struct Func<'a> {
    /// Its index among the defined functions.
    defined: usize,
    index: FuncIndex,
    body: &'a [u8],
    /// The body's offset in the module.
    offset: u64,
    ty: u32,
    resources: ValidatorResources,
    features: WasmFeatures,
    imms: Vec<Imm>,
}

impl Func<'_> {
    /// Compiles `body` (this function's body, or a rewrite of it) in `env`.
    fn compile(&self, c: &mut FunctionCompiler, env: &ModuleEnv, body: &[u8]) -> Result<CompiledFunction, CompileError> {
        let input = FunctionInput {
            index: self.index,
            body: FunctionBody::new(BinaryReader::new(body, self.offset)),
            validator: FuncToValidate {
                resources: self.resources.clone(),
                index: self.index,
                ty: self.ty,
                features: self.features,
            },
            unchanged: false,
        };
        c.compile(env, input)
    }
}

/// A parsed module with a finalize context for its functions.
struct Module<'a> {
    name: String,
    bytes: &'a [u8],
    env: ModuleEnv,
    funcs: Vec<Func<'a>>,
    offsets: VMOffsets,
    code_offsets: Vec<u32>,
}

impl<'a> Module<'a> {
    fn parse(name: &str, bytes: &'a [u8]) -> Result<Module<'a>, ModuleError> {
        let (env, inputs) = ModuleEnv::parse(bytes, supported_features())?;
        let funcs: Vec<Func<'a>> = inputs
            .into_iter()
            .enumerate()
            .map(|(defined, input)| {
                let range = input.body.range();
                let body = &bytes[range.start as usize..range.end as usize];
                Func {
                    defined,
                    index: input.index,
                    body,
                    offset: range.start,
                    ty: input.validator.ty,
                    resources: input.validator.resources,
                    features: input.validator.features,
                    imms: immediates(body, range.start),
                }
            })
            .collect();
        let offsets = VMOffsets::new(&env);
        let code_offsets = (0..funcs.len() as u32).map(|i| 0x10_0000 + 0x1000 * i).collect();
        Ok(Module { name: name.to_string(), bytes, env, funcs, offsets, code_offsets })
    }

    fn context(&self, f: &Func<'_>) -> FinalizeContext<'_> {
        FinalizeContext {
            offsets: &self.offsets,
            func_code_offsets: &self.code_offsets,
            num_imported_funcs: self.env.num_imported_funcs,
            this_offset: self.code_offsets[f.defined],
        }
    }

    fn finalize(&self, f: &Func<'_>, compiled: &CompiledFunction, consts: &[u64]) -> Result<Vec<u8>, FinalizeError> {
        let mut out = vec![0; compiled.stencil.code.len()];
        finalize(&compiled.stencil, &compiled.params, consts, &self.context(f), &mut out).map(|()| out)
    }

    /// The cache's in-memory path: the stencil's code baked with the constants it was
    /// compiled with, finalized with `consts` (only the differing sites rewritten).
    fn finalize_from_baked(&self, f: &Func<'_>, compiled: &CompiledFunction, consts: &[u64]) -> Result<Vec<u8>, FinalizeError> {
        let baked = bake_constants(&compiled.stencil, &compiled.consts)?;
        let mut out = vec![0; compiled.stencil.code.len()];
        let s = &compiled.stencil;
        finalize_baked(s, &baked, &compiled.consts, &compiled.params, consts, &self.context(f), &mut out).map(|()| out)
    }

    fn func_label(&self, f: &Func<'_>) -> String {
        format!("{} function {} ({})", self.name, f.index, self.env.func_name(f.index).unwrap_or("?"))
    }
}

// ---- the check -----------------------------------------------------------------------------

/// Counts over one program (or the wasm-smith modules).
#[derive(Default, Debug)]
struct Stats {
    functions: usize,
    /// Functions whose variants were checked.
    sampled: usize,
    /// Functions skipped: not compiled by Quickbeam (`Unsupported`).
    unsupported: usize,
    consts: usize,
    any: usize,
    range: usize,
    exact: usize,
    variants: usize,
    accepted: usize,
    rejected: usize,
    /// Rejected variants whose fresh stencil equals the original but for guards.
    rejected_same_code: usize,
    /// Variants checked through a whole rebuilt module.
    whole_module: usize,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.functions += o.functions;
        self.sampled += o.sampled;
        self.unsupported += o.unsupported;
        self.consts += o.consts;
        self.any += o.any;
        self.range += o.range;
        self.exact += o.exact;
        self.variants += o.variants;
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.rejected_same_code += o.rejected_same_code;
        self.whole_module += o.whole_module;
    }

    fn count_guards(&mut self, guards: &[Guard]) {
        self.consts += guards.len();
        for g in guards {
            match g {
                Guard::Any => self.any += 1,
                Guard::Range { .. } => self.range += 1,
                Guard::Exact(_) => self.exact += 1,
            }
        }
    }

    fn print(&self, name: &str) {
        let pct = |a: usize, b: usize| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
        println!(
            "{name:>14}: {:5} functions ({} unsupported), {:7} constants: not Exact {:5.1}% (Any {:5.1}%, Range {:4.1}%, Exact {:4.1}%); \
             {} functions sampled, {:6} variants: {} accepted, {} rejected ({} of them compiled to the same code), {} through whole modules",
            self.functions,
            self.unsupported,
            self.consts,
            pct(self.any + self.range, self.consts),
            pct(self.any, self.consts),
            pct(self.range, self.consts),
            pct(self.exact, self.consts),
            self.sampled,
            self.variants,
            self.accepted,
            self.rejected,
            self.rejected_same_code,
            self.whole_module,
        );
    }
}

/// The fields in which two stencils differ.
fn stencil_diff(a: &Stencil, b: &Stencil) -> Vec<&'static str> {
    let mut d = Vec::new();
    if a.code != b.code {
        d.push("code");
    }
    if a.relocs != b.relocs {
        d.push("relocs");
    }
    if a.const_sites != b.const_sites {
        d.push("const_sites");
    }
    if a.guards != b.guards {
        d.push("guards");
    }
    if a.trap_sites != b.trap_sites {
        d.push("trap_sites");
    }
    if a.srclocs != b.srclocs {
        d.push("srclocs");
    }
    d
}

/// A report of an I2 violation: what changed, and where the codes part.
fn describe(m: &Module<'_>, f: &Func<'_>, orig: &CompiledFunction, c2: &[u64], fresh: &CompiledFunction, what: &str) -> String {
    let mut s = format!("{}: {what}\n  changed constants:\n", m.func_label(f));
    for k in (0..c2.len()).filter(|&k| c2[k] != orig.consts[k]) {
        s += &format!(
            "    #{k} {:?}: {:#x} -> {:#x}, original guard {:?}, fresh guard {:?}\n",
            f.imms[k].kind, orig.consts[k], c2[k], orig.stencil.guards[k], fresh.stencil.guards.get(k)
        );
    }
    s += &format!("  differing fields: {:?}\n", stencil_diff(&orig.stencil, &fresh.stencil));
    let (da, db) = (disasm::disassemble(&orig.stencil), disasm::disassemble(&fresh.stencil));
    let (la, lb): (Vec<&str>, Vec<&str>) = (da.lines().collect(), db.lines().collect());
    // Branches move when code grows: compare them by mnemonic only.
    fn shape<'s>(l: Option<&&'s str>) -> Option<&'s str> {
        l.map(|&l| {
            let ins = l.split_once(": ").map_or(l, |(_, ins)| ins);
            if ins.starts_with('j') || ins.starts_with("call") { ins.split(' ').next().unwrap_or(ins) } else { l }
        })
    }
    if let Some(i) = (0..la.len().max(lb.len())).find(|&i| shape(la.get(i)) != shape(lb.get(i))) {
        s += "  first differing instructions (original | fresh):\n";
        for j in i.saturating_sub(3)..(i + 6).min(la.len().max(lb.len())) {
            s += &format!("    {:<70} | {}\n", la.get(j).unwrap_or(&""), lb.get(j).unwrap_or(&""));
        }
    }
    s
}

/// Checks I2 for one function with constants `c2`: returns an error report if it fails.
fn check_variant(
    m: &Module<'_>,
    f: &Func<'_>,
    orig: &CompiledFunction,
    c2: &[u64],
    fresh: Result<CompiledFunction, CompileError>,
    stats: &mut Stats,
) -> Result<(), String> {
    let fresh = fresh.map_err(|e| format!("{}: the rewritten body does not compile: {e}", m.func_label(f)))?;
    if fresh.consts != c2 {
        return Err(format!("{}: the rewritten body's constants are {:x?}, not {:x?}", m.func_label(f), fresh.consts, c2));
    }
    if fresh.params != orig.params || fresh.slots != orig.slots {
        return Err(format!("{}: parameters or slots changed with the constants", m.func_label(f)));
    }
    stats.variants += 1;
    let rejected = (0..c2.len()).find(|&k| !orig.stencil.guards[k].accepts(c2[k]));
    match rejected {
        None => {
            stats.accepted += 1;
            if fresh.stencil != orig.stencil {
                return Err(describe(m, f, orig, c2, &fresh, "guards accept c' but the fresh stencil differs"));
            }
            let patched = m.finalize(f, orig, c2).map_err(|e| format!("{}: finalize with accepted c': {e}", m.func_label(f)))?;
            let compiled = m.finalize(f, &fresh, c2).map_err(|e| format!("{}: finalize of the fresh stencil: {e}", m.func_label(f)))?;
            if patched != compiled {
                let at = (0..patched.len()).find(|&i| patched[i] != compiled[i]);
                return Err(describe(m, f, orig, c2, &fresh, &format!("finalized codes differ at byte {at:?}")));
            }
            let from_baked = m.finalize_from_baked(f, orig, c2).map_err(|e| format!("{}: finalize from baked code: {e}", m.func_label(f)))?;
            if from_baked != compiled {
                let at = (0..from_baked.len()).find(|&i| from_baked[i] != compiled[i]);
                return Err(describe(m, f, orig, c2, &fresh, &format!("finalized from baked code, codes differ at byte {at:?}")));
            }
        }
        Some(k) => {
            stats.rejected += 1;
            match m.finalize(f, orig, c2) {
                Err(FinalizeError::GuardRejected(r)) if r as usize == k => {}
                other => {
                    return Err(format!(
                        "{}: guard of #{k} rejects {:#x} but finalize gave {:?}",
                        m.func_label(f),
                        c2[k],
                        other.map(|_| "code")
                    ))
                }
            }
            let same_but_guards = Stencil { guards: orig.stencil.guards.clone(), ..fresh.stencil.clone() } == orig.stencil;
            if same_but_guards {
                stats.rejected_same_code += 1;
            }
        }
    }
    Ok(())
}

/// Compiles every function of `m` (counting its guards) and checks those `sample` selects
/// with `variants` variants each; the variants `whole` selects go through a whole rebuilt,
/// reparsed module.
fn check_module(
    m: &Module<'_>,
    seed: u64,
    variants: usize,
    sample: impl Fn(&Func<'_>) -> bool,
    whole: impl Fn(&Func<'_>, usize) -> bool,
    stats: &mut Stats,
    failures: &mut Vec<String>,
) {
    let mut c = FunctionCompiler::new();
    for f in &m.funcs {
        let orig = match f.compile(&mut c, &m.env, f.body) {
            Ok(o) => o,
            Err(CompileError::Unsupported(_)) => {
                stats.unsupported += 1;
                continue;
            }
            Err(e) => {
                failures.push(format!("{}: does not compile: {e}", m.func_label(f)));
                continue;
            }
        };
        stats.functions += 1;
        // The rewriter sees the translator's constants, in order.
        let decoded: Vec<u64> = f.imms.iter().map(|&i| decode(f.body, i)).collect();
        assert_eq!(decoded, orig.consts, "{}: the rewriter's constants", m.func_label(f));
        assert_eq!(orig.stencil.guards.len(), orig.consts.len(), "{}: one guard per constant", m.func_label(f));
        stats.count_guards(&orig.stencil.guards);
        if orig.consts.is_empty() || !sample(f) {
            continue;
        }
        stats.sampled += 1;
        let mut rng = Rng::new(seed ^ (f.index as u64).wrapping_mul(0x1000_0001));
        let mut seen: Vec<Vec<u64>> = Vec::new();
        for i in 0..variants {
            let vk = VARIANT_KINDS[i % VARIANT_KINDS.len()];
            let c2 = variant(&mut rng, vk, &f.imms, &orig.consts, &orig.stencil.guards);
            if c2 == orig.consts || seen.contains(&c2) {
                continue;
            }
            let body = rewrite(f.body, &f.imms, &orig.consts, &c2);
            let fresh = if whole(f, i) {
                stats.whole_module += 1;
                let bytes = module_with_body(m.bytes, f.defined, &body);
                let m2 = Module::parse(&m.name, &bytes).expect("the rewritten module parses");
                let f2 = &m2.funcs[f.defined];
                assert_eq!(f2.body, &body[..], "the rewritten module holds the rewritten body");
                f2.compile(&mut c, &m2.env, f2.body)
            } else {
                f.compile(&mut c, &m.env, &body)
            };
            if let Err(e) = check_variant(m, f, &orig, &c2, fresh, stats) {
                failures.push(e);
            }
            seen.push(c2);
        }
    }
}

fn report(failures: &[String]) {
    if !failures.is_empty() {
        let shown: Vec<&String> = failures.iter().take(12).collect();
        panic!("{} I2 violations; the first ones:\n{}", failures.len(), shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"));
    }
}

// ---- the real programs -----------------------------------------------------------------------

fn program_paths(all: bool) -> Vec<(String, PathBuf)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut v: Vec<(String, PathBuf)> = ["lua", "sqlite", "zstd", "bzip2"]
        .iter()
        .map(|n| (n.to_string(), root.join("target/fixtures").join(format!("{n}.wasm"))))
        .collect();
    if all {
        v.extend(
            ["coremark", "bz2", "pulldown-cmark"]
                .iter()
                .map(|n| (n.to_string(), root.join("../shared/corpus").join(format!("{n}.wasm")))),
        );
    }
    v.into_iter().filter(|(_, p)| p.exists()).collect()
}

#[test]
fn real_programs_patch_like_fresh_compiles() {
    let b = budget();
    let start = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut total = Stats::default();
    let paths = program_paths(b.every_function);
    assert!(!paths.is_empty(), "no real program found (run fixtures/build.sh)");
    for (name, path) in paths {
        let bytes = std::fs::read(&path).unwrap();
        let m = Module::parse(&name, &bytes).unwrap();
        // Lua entirely; a fixed sample of the larger ones in the short run.
        let every = b.every_function || name == "lua";
        let sample = |f: &Func<'_>| every || Rng::new(f.index as u64 ^ b.seed).next() % 3 == 0;
        let whole = |f: &Func<'_>, i: usize| i == 0 && f.defined % 16 == 0;
        let mut stats = Stats::default();
        check_module(&m, b.seed ^ 0x5eed, b.variants, sample, whole, &mut stats, &mut failures);
        stats.print(&name);
        assert!(stats.accepted > 0 && stats.rejected > 0, "{name}: both outcomes are exercised");
        total.add(&stats);
    }
    total.print("all programs");
    println!("real programs: {:.2} s", start.elapsed().as_secs_f64());
    report(&failures);
}

// ---- wasm-smith modules ------------------------------------------------------------------------

fn smith_config() -> wasm_smith::Config {
    // MVP + sign-ext + sat-float-to-int + multi-value + bulk-memory + reference-types:
    // what `supported_features()` validates; nothing else.
    wasm_smith::Config {
        bulk_memory_enabled: true,
        reference_types_enabled: true,
        multi_value_enabled: true,
        saturating_float_to_int_enabled: true,
        sign_extension_ops_enabled: true,
        simd_enabled: false,
        relaxed_simd_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        exceptions_enabled: false,
        tail_call_enabled: false,
        gc_enabled: false,
        custom_descriptors_enabled: false,
        memory64_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        extended_const_enabled: false,
        compact_imports_enabled: false,
        acquire_release_atomics_enabled: false,
        multibyte_array_access_enabled: false,
        max_memories: 1,
        max_tables: 2,
        min_types: 2,
        min_funcs: 4,
        max_funcs: 12,
        max_imports: 4,
        max_instructions: 1000,
        ..wasm_smith::Config::default()
    }
}

/// wasm-smith module number `i` of the run (deterministic in the seed).
fn smith_module(i: u64, seed: u64) -> Option<Vec<u8>> {
    let mut rng = Rng::new(0x5_1717 ^ seed.wrapping_mul(0x1_0001) ^ i);
    let len = 4096 + rng.below(60 * 1024);
    let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    let mut u = arbitrary::Unstructured::new(&data);
    wasm_smith::Module::new(smith_config(), &mut u).ok().map(|m| m.to_bytes())
}

#[test]
fn wasm_smith_functions_patch_like_fresh_compiles() {
    let b = budget();
    let start = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut stats = Stats::default();
    let (mut modules, mut skipped) = (0, 0);
    for i in 0..b.smith_modules {
        let Some(bytes) = smith_module(i, b.seed) else {
            skipped += 1;
            continue;
        };
        let m = match Module::parse(&format!("smith#{i}"), &bytes) {
            Ok(m) => m,
            Err(e) => {
                // A type or import Quickbeam does not support yet.
                if skipped < 5 {
                    println!("smith#{i} skipped: {e}");
                }
                skipped += 1;
                continue;
            }
        };
        modules += 1;
        check_module(&m, b.seed ^ i, b.variants + 2, |_| true, |_, _| true, &mut stats, &mut failures);
    }
    stats.print("wasm-smith");
    println!("wasm-smith: {modules} modules ({skipped} skipped), {:.2} s", start.elapsed().as_secs_f64());
    assert!(stats.functions > 0 && stats.variants > 0, "wasm-smith made no function to test");
    report(&failures);
}

// ---- the rewriter itself -------------------------------------------------------------------------

#[test]
fn rewriter_changes_exactly_the_constants() {
    let wat = r#"(module (memory 1)
        (func (param i32) (result i64)
          i32.const -5 drop
          f32.const nan:0x200000 drop
          f64.const -0.0 drop
          local.get 0
          i64.load offset=70000
          i64.const 0x7fffffffffff
          i64.add))"#;
    let bytes = wat::parse_str(wat).unwrap();
    let m = Module::parse("rewriter", &bytes).unwrap();
    let f = &m.funcs[0];
    let kinds: Vec<ImmKind> = f.imms.iter().map(|i| i.kind).collect();
    assert_eq!(kinds, [ImmKind::I32, ImmKind::F32, ImmKind::F64, ImmKind::Offset, ImmKind::I64]);
    let c: Vec<u64> = f.imms.iter().map(|&i| decode(f.body, i)).collect();
    assert_eq!(c, [(-5i32) as u32 as u64, 0x7fa0_0000, 1 << 63, 70000, 0x7fff_ffff_ffff]);
    let c2 = [i32::MIN as u32 as u64, 0xffc0_0001, 0x7ff0_0000_0000_0001, u32::MAX as u64, i64::MIN as u64];
    let body = rewrite(f.body, &f.imms, &c, &c2);
    let module = module_with_body(&bytes, 0, &body);
    let m2 = Module::parse("rewritten", &module).unwrap();
    let f2 = &m2.funcs[0];
    assert_eq!(f2.imms.iter().map(|&i| decode(f2.body, i)).collect::<Vec<_>>(), c2);
    let compiled = f2.compile(&mut FunctionCompiler::new(), &m2.env, f2.body).unwrap();
    assert_eq!(compiled.consts, c2);
    // Rewriting with the same constants gives the same bytes back.
    assert_eq!(rewrite(f.body, &f.imms, &c, &c), f.body);
    assert_eq!(module_with_body(&bytes, 0, f.body), bytes);
}

// ---- every use of a constant, at every edge -----------------------------------------------------

/// Every place a constant can reach code in the backend: ALU, compare, multiply, shift and
/// division operands in both positions and both widths, store values of every width,
/// offsets on both sides of 2^31, constant addresses, floats into every float operator
/// and conversion, `select`, `br_if`, `br_table` and `if` conditions, block, loop and `if`
/// results, locals, call arguments, globals and table indices.
const ZOO: &str = r#"
(module
  (type $sig (func (param i32 i64 f32 f64) (result i64)))
  (memory 1)
  (global $g32 (mut i32) (i32.const 0))
  (global $g64 (mut i64) (i64.const 0))
  (global $gf (mut f64) (f64.const 0))
  (table 4 funcref)
  (elem (i32.const 0) $callee)
  (func $callee (type $sig) local.get 1)
  (func $int32 (param $x i32) (result i32) (local $l i32)
    local.get $x i32.const 5 i32.add
    i32.const 7 i32.sub
    i32.const 0xff i32.and
    i32.const 0x100 i32.or
    i32.const -1 i32.xor
    i32.const 3 i32.mul
    i32.const 2 i32.shl
    i32.const 1 i32.shr_s
    i32.const 33 i32.shr_u
    i32.const 5 i32.rotl
    i32.const -5 i32.rotr
    i32.const 10 i32.div_s
    i32.const 10 i32.div_u
    i32.const -1 i32.rem_s
    i32.const 10 i32.rem_u
    local.tee $l
    i32.const 100 i32.lt_s
    local.get $l i32.const 100 i32.gt_u i32.add
    local.get $l i32.const 100 i32.eq i32.add
    local.get $l i32.const 0 i32.ne i32.add
    i32.const 12 local.get $l i32.sub i32.add
    i32.const 12 local.get $l i32.shl i32.add
    i32.const 1000 local.get $l i32.div_s i32.add
    i32.const 7 i32.const 3 i32.add i32.add
    i32.const 0 i32.eqz i32.add
    i32.const 0x80 i32.extend8_s i32.add
    i32.const 0x8000 i32.extend16_s i32.add
    i32.const 16 i32.clz i32.add
    i32.const 16 i32.ctz i32.add
    i32.const 255 i32.popcnt i32.add
    i64.const 0x1_0000_0001 i32.wrap_i64 i32.add)
  (func $int64 (param $x i64) (result i64) (local $l i64)
    local.get $x i64.const 5 i64.add
    i64.const 0x7fffffff i64.sub
    i64.const -0x80000000 i64.and
    i64.const 0x1_0000_0000 i64.or
    i64.const -1 i64.xor
    i64.const 0x123456789 i64.mul
    i64.const 3 i64.mul
    i64.const 2 i64.shl
    i64.const 65 i64.shr_s
    i64.const 1 i64.shr_u
    i64.const 5 i64.rotl
    i64.const 5 i64.rotr
    i64.const 10 i64.div_s
    i64.const 0x1_0000_0000 i64.div_u
    i64.const -1 i64.rem_s
    i64.const 10 i64.rem_u
    local.tee $l
    i64.const 100 i64.lt_s i64.extend_i32_u
    local.get $l i64.const 0x8000_0000 i64.ge_u i64.extend_i32_u i64.add
    local.get $l i64.const -0x8000_0001 i64.eq i64.extend_i32_u i64.add
    local.get $l i64.const 0 i64.ne i64.extend_i32_u i64.add
    i64.const 12 local.get $l i64.sub i64.add
    i64.const 12 local.get $l i64.rotl i64.add
    i64.const 0 i64.eqz i64.extend_i32_u i64.add
    i32.const -7 i64.extend_i32_s i64.add
    i32.const -7 i64.extend_i32_u i64.add
    i64.const 0x80 i64.extend8_s i64.add
    i64.const 0x8000 i64.extend16_s i64.add
    i64.const 0x8000_0000 i64.extend32_s i64.add
    i64.const 1 i64.clz i64.add
    i64.const 1 i64.ctz i64.add
    i64.const -1 i64.popcnt i64.add)
  (func $memory (param $a i32) (result i64)
    local.get $a i32.const 1 i32.store offset=4
    local.get $a i64.const -2 i64.store offset=8
    local.get $a i64.const 0x123456789 i64.store offset=16
    local.get $a i32.const 300 i32.store8 offset=3
    local.get $a i32.const 70000 i32.store16 offset=2
    local.get $a i64.const 5 i64.store8 offset=0x80000000
    local.get $a i64.const 0x1_0000_0005 i64.store16 offset=1
    local.get $a i64.const -5 i64.store32 offset=0x7fffffff
    local.get $a f32.const 1.5 f32.store offset=20
    local.get $a f64.const -2.5 f64.store offset=24
    i32.const 64 i32.const 9 i32.store
    i32.const 64 local.get $a i32.store offset=0xffffffff
    i32.const 64 i64.load offset=4
    local.get $a i64.load offset=0xffffffff i64.add
    local.get $a i64.load8_s offset=1 i64.add
    local.get $a i64.load16_u offset=2 i64.add
    local.get $a i64.load32_s offset=0x80000001 i64.add
    local.get $a i32.load offset=0x7ffffffe i64.extend_i32_u i64.add
    local.get $a i32.load8_u offset=5 i64.extend_i32_u i64.add
    local.get $a i32.load16_s offset=6 i64.extend_i32_u i64.add
    local.get $a f32.load offset=7 i64.trunc_sat_f32_s i64.add
    local.get $a f64.load offset=8 i64.trunc_sat_f64_u i64.add
    i32.const 0 i32.const 1 i32.const 2 memory.fill
    i32.const 0 i32.const 1 i32.const 2 memory.copy
    i32.const 1 memory.grow i64.extend_i32_u i64.add)
  (func $float (param $f f32) (param $d f64) (result f64)
    local.get $f f32.const 1.5 f32.add
    f32.const -0.0 f32.sub
    f32.const 2 f32.mul
    f32.const 3 f32.div
    f32.const nan f32.min
    f32.const 0 f32.max
    f32.const -1 f32.copysign
    f32.const 2 f32.sqrt f32.add
    f32.const 2.5 f32.nearest f32.add
    f32.const -2.5 f32.floor f32.add
    f32.const 2.5 f32.abs f32.add
    f32.const 2.5 f32.neg f32.add
    f64.promote_f32
    local.get $d f64.add
    f64.const 0.5 f64.mul
    f64.const inf f64.min
    f64.const -inf f64.max
    f64.const 2 f64.copysign
    f64.const 9 f64.sqrt f64.sub
    f64.const 1e300 f32.demote_f64 f64.promote_f32 f64.add
    local.get $d f64.const 1 f64.lt f64.convert_i32_u f64.add
    local.get $d f64.const 1 f64.ne f64.convert_i32_s f64.add
    f32.const 1 local.get $f f32.ge f64.convert_i32_s f64.add
    i32.const -1 f64.convert_i32_u f64.add
    i32.const -1 f64.convert_i32_s f64.add
    i64.const -1 f64.convert_i64_u f64.add
    i64.const -1 f64.convert_i64_s f64.add
    i64.const -1 f32.convert_i64_u f64.promote_f32 f64.add
    f32.const 3e9 i32.trunc_f32_u f64.convert_i32_u f64.add
    f64.const -3e9 i32.trunc_sat_f64_s f64.convert_i32_s f64.add
    f64.const 1e19 i64.trunc_f64_u f64.convert_i64_u f64.add
    f32.const -1e19 i64.trunc_sat_f32_s f64.convert_i64_s f64.add
    i32.const 0x3fc00000 f32.reinterpret_i32 f64.promote_f32 f64.add
    i64.const 0x3ff8000000000000 f64.reinterpret_i64 f64.add
    f64.const 1.5 i64.reinterpret_f64 f64.convert_i64_s f64.add
    f32.const 1.5 i32.reinterpret_f32 f64.convert_i32_s f64.add)
  (func $flow (param $x i32) (result i64) (local $l i64) (local $m f32)
    i64.const 42 local.set $l
    f32.const 4.25 local.set $m
    block (result i32)
      i32.const 7
      local.get $x br_if 0
      drop
      i32.const 9
    end
    i64.extend_i32_u
    block (result i64) i64.const 3 i32.const 1 br_if 0 i64.const 1 i64.add end
    i64.add
    loop (result i64)
      local.get $l i64.const 3 i64.add local.set $l
      local.get $l i64.const 100 i64.lt_u br_if 0
      i64.const 17
    end
    i64.add
    i32.const 1 if (result i64) i64.const 5 else i64.const 6 end i64.add
    local.get $x if (result i64 f32) i64.const 5 f32.const 1 else i64.const 6 local.get $m end
    i64.trunc_f32_s i64.add i64.add
    block (result i64) block (result i64) block (result i64)
      i64.const 77 i32.const 1 br_table 0 1 2
    end end end i64.add
    block (result i64) block (result i64)
      i64.const 78 local.get $x br_table 0 1
    end end i64.add
    i64.const 1 i64.const 2 local.get $x select i64.add
    i64.const 1 local.get $l i32.const 0 select i64.add
    f64.const 1 f64.const 2 local.get $x select i64.trunc_sat_f64_s i64.add
    i32.const 1 i64.const 2 f32.const 3 f64.const 4 call $callee i64.add
    local.get $x i64.const 0x1_0000_0000 f32.const nan f64.const -0 i32.const 0 call_indirect (type $sig) i64.add
    i32.const 99 global.set $g32
    i64.const 0x1_0000_0000 global.set $g64
    f64.const 0.25 global.set $gf
    i32.const 2 table.get 0 ref.is_null i64.extend_i32_u i64.add
    i32.const 1 ref.null func i32.const 1 table.fill 0
    local.get $l i64.const 0 i64.gt_s if i64.const 1 return end
    i64.const 0x7fffffffffffffff i64.xor)
)
"#;

/// Values worth trying for a constant: the boundary values of its kind, its guard's
/// edges and its neighbours.
fn edge_values(kind: ImmKind, orig: u64, guard: Guard) -> Vec<u64> {
    let mut v: Vec<u64> = match kind {
        ImmKind::F32 => F32_SPECIALS.iter().map(|&b| b as u64).collect(),
        ImmKind::F64 => F64_SPECIALS.to_vec(),
        _ => INT_SPECIALS.iter().map(|&x| int_bits(kind, x)).collect(),
    };
    v.extend(guard_edges(guard).into_iter().map(|e| e as u64).filter(|&e| kind.holds(e)));
    v.extend([orig.wrapping_add(1), orig.wrapping_sub(1), orig ^ 0x8000_0000].map(|x| int_bits(kind, x as i64)));
    v.sort_unstable();
    v.dedup();
    v.retain(|&x| x != orig);
    v
}

/// Changes every constant of every function of `wat` alone to each of its edge values,
/// then all of them at once within their guards (a few times).
fn check_every_edge(name: &str, wat: &str) -> Stats {
    let bytes = wat::parse_str(wat).unwrap();
    let m = Module::parse(name, &bytes).unwrap();
    let mut c = FunctionCompiler::new();
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    let mut rng = Rng::new(7);
    for f in &m.funcs {
        let orig = f.compile(&mut c, &m.env, f.body).unwrap();
        stats.functions += 1;
        stats.sampled += 1;
        stats.count_guards(&orig.stencil.guards);
        let g = &orig.stencil.guards;
        let mut variants: Vec<Vec<u64>> = Vec::new();
        for k in 0..orig.consts.len() {
            for x in edge_values(f.imms[k].kind, orig.consts[k], g[k]) {
                let mut c2 = orig.consts.clone();
                c2[k] = x;
                variants.push(c2);
            }
        }
        for _ in 0..16 {
            variants.push(variant(&mut rng, VariantKind::ManyAccepted, &f.imms, &orig.consts, g));
        }
        for c2 in variants {
            let body = rewrite(f.body, &f.imms, &orig.consts, &c2);
            let fresh = f.compile(&mut c, &m.env, &body);
            if let Err(e) = check_variant(&m, f, &orig, &c2, fresh, &mut stats) {
                failures.push(e);
            }
        }
    }
    report(&failures);
    stats
}

#[test]
fn every_use_of_a_constant_patches_at_every_edge() {
    let stats = check_every_edge("zoo", ZOO);
    stats.print("zoo");
    // Shift counts were the last `Exact` guards; they are one-byte sites now.
    assert!(stats.consts > 150 && stats.any > 0 && stats.range > 0, "the zoo has its constants: {stats:?}");
    assert!(stats.accepted > 5000 && stats.rejected > 500, "both outcomes are exercised: {stats:?}");
}

// ---- regressions -----------------------------------------------------------------------------------

/// i64 immediates too wide for imm32 in ALU operations, multiplications, compares and
/// stores: on each side of the imm32 range, and between 2^31 and 2^32 (a zero-extending
/// `mov r32, imm32`).
const WIDE_I64: &str = r#"
(module
  (memory 1)
  (func (param $x i64) (param $a i32) (result i64)
    local.get $x i64.const 0x8000_0000 i64.add
    i64.const 0xffff_ffff i64.mul
    i64.const 0x1_0000_0000 i64.and
    i64.const -0x8000_0001 i64.xor
    i64.const 0x7fff_ffff_ffff_ffff i64.sub
    local.get $x i64.const -0x8000_0000_0000_0000 i64.lt_s i64.extend_i32_u i64.add
    local.get $a i64.const 0x8000_0000 i64.store
    local.get $a i64.const 0x1234_5678_9abc i64.store offset=8
    local.get $a i64.const -0x1_0000_0000 i64.store offset=0x80000000))
"#;

/// Wide i64 immediates used to be pinned by `Exact` guards (the value picked the register
/// form over the imm32 one); the register form's constant now goes through a site, and
/// the guard only keeps it out of imm32 range, on its side, in its encoding.
#[test]
fn wide_i64_immediates_patch_within_their_range() {
    let bytes = wat::parse_str(WIDE_I64).unwrap();
    let m = Module::parse("wide", &bytes).unwrap();
    let f = &m.funcs[0];
    let compiled = f.compile(&mut FunctionCompiler::new(), &m.env, f.body).unwrap();
    let u32_range = Guard::Range { lo: 1 << 31, hi: u32::MAX as i64 };
    let above = Guard::Range { lo: 1 << 32, hi: i64::MAX };
    let below = Guard::Range { lo: i64::MIN, hi: i32::MIN as i64 - 1 };
    let offsets = Guard::Range { lo: 0, hi: i32::MAX as i64 };
    let big_offset = Guard::Range { lo: 1 << 31, hi: u32::MAX as i64 };
    assert_eq!(
        compiled.stencil.guards,
        [u32_range, u32_range, above, below, above, below, u32_range, offsets, above, offsets, below, big_offset]
    );
    let stats = check_every_edge("wide", WIDE_I64);
    assert!(stats.accepted > 100 && stats.rejected > 100, "both outcomes are exercised: {stats:?}");
}
