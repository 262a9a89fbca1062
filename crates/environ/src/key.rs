//! Stencil keys: what identifies a compiled function in the cache (DESIGN.md §2.2),
//! computed from a body's bytes without validating or compiling it.
//!
//! Two keys per function:
//! - the **exact key** ([`exact_key`]): a hash of the raw body bytes, the function's type,
//!   the engine ([`EngineFingerprint`]) and everything of the module the body's indices
//!   can see ([`module_context_hash`], once per module). Unchanged code costs only hashing.
//! - the **shape key** ([`Fingerprinter::fingerprint`]): a hash of the body with every
//!   numeric immediate (`*.const` operands, memarg offsets) replaced by a placeholder and
//!   every module index replaced by its function-local slot, plus per slot what the code
//!   depends on ([`SlotEnv`]). Its by-products are what finalize applies: the body's
//!   constants in [`ConstIdx`] order and its [`FunctionParameters`], numbered exactly as
//!   the translator numbers them (first use, body order, dead code included).
//!
//! # What the shape key covers
//! The engine fingerprint; the function's own type; the locals (adjacent groups of one
//! type merged); every operator's opcode and its immediates, except that constants and
//! memarg offsets become placeholders and module indices (function, global, table, type,
//! memory, data, element segment) become slot numbers; block types that name a type
//! index contribute that type's structure; `ref.func` contributes whether its function is
//! declared (C.refs, spec §3.4.10), since validity depends on it; then the final
//! [`SlotEnv`]. Local indices, label depths, `br_table` targets, alignments and typed
//! `select` types go in as their bytes. So the key covers everything code generation and
//! validation of the body depend on: equal shape keys imply equal operator sequences up
//! to constants and index renaming, in modules that agree on every referenced entity.
//!
//! # The hash input (version 2: v1 had no data-count flag)
//! All integers little-endian; `leb` is unsigned LEB128; a function type is
//! `leb(#params) codes leb(#results) codes` with [`ValType::code`].
//! ```text
//!  "qb-shape-v2"  engine[32]  functype  #local groups:u32  (count:u64 code)*
//!  operators:  each operator's raw bytes, except
//!     *.const                       opcode only (the constant is a placeholder)
//!     loads, stores                 opcode  align:u8  leb(memory slot)   (no offset)
//!     call, ref.func, global.*,     opcode  leb(slot) ...   (ref.func: + declared:u8)
//!     table.*, memory.*, data.drop, elem.drop, call_indirect (type slot, table slot)
//!     block/loop/if with type index opcode  0x00 functype     (other block types raw)
//!  SlotEnv (see `encode_slot_env`)  len(operators):u64  len(SlotEnv):u64
//! ```
//! The stream is uniquely decodable (each operator's opcode fixes the layout of what
//! follows it; the two lengths at the end split operators from the `SlotEnv`), so equal
//! hashes mean equal inputs. Raw immediates are hashed as they are encoded: a
//! non-canonical LEB128 only makes the key differ from the canonical one's.
//!
//! # Decoding
//! Operators are decoded by a scanner of the binary format written for this purpose
//! rather than by wasmparser's operator reader, which on this machine decodes real
//! bodies at 110–190 MB/s with an empty visitor. The scanner decodes exactly the
//! operators Quickbeam compiles, under [`crate::supported_features`] (no multi-memory, no
//! memory64); any other operator (SIMD, threads, exceptions, tail calls, GC, ...) is an
//! error: such a function has no key and must be compiled without the cache, where the
//! compiler reports the real error. A fast loop handles the common operators (90% of
//! those of real programs) with all state in registers; the general decoder handles the
//! rest and is the reference the tests compare the fast loop against.
//!
//! Immediates that are abstracted (constants, offsets, indices) are decoded exactly as
//! strictly as wasmparser decodes them (same LEB128 length and range rules, the single
//! zero byte of `memory.size`/`memory.grow`), so a malformed body can never share a key
//! with a valid one: a cache hit implies the body is valid, as DESIGN.md §2.2 requires.
//! Index immediates are bounds-checked against the module (out of range is an error).
//!
//! `memory.init`/`data.drop` are only valid in a module with a data count section: the
//! module context hash covers [`ModuleEnv::has_data_count`], and a body that names a data
//! segment has it in its [`SlotEnv`].
//!
//! # The hash: SHA-256, by measurement
//! Measured on this machine (Intel Xeon with SHA-NI, 2 cores, other builds running; best
//! of 7 passes), hashing each function body of the real programs with a 96-byte prefix,
//! as the exact key does (`sha2` 0.10, whose x86-64 backend detects SHA-NI at run time and
//! uses it: forcing its portable code (`force-soft`) drops it to 110–170 MB/s; `blake3`
//! 1.8 with its default SIMD backends):
//!
//! | module | bodies | median body | SHA-256 | BLAKE3 |
//! |---|---|---|---|---|
//! | sqlite.wasm | 1,356 | 330 B | 956–998 MB/s | 768–771 MB/s |
//! | lua.wasm | 643 | 148 B | 804–838 MB/s | 641–654 MB/s |
//! | zstd.wasm | 339 | 703 B | 1,046–1,108 MB/s | 746–863 MB/s |
//! | spidermonkey.wasm | 6,094 | 223 B | 935–941 MB/s | 695–712 MB/s |
//! | bz2.wasm | 32 | 280 B (mean 2.5 KB) | 965–1,175 MB/s | 1,266–1,518 MB/s |
//!
//! Single inputs: 200 B: SHA-256 731 MB/s, BLAKE3 582; 600 B: 978 vs 715; 2 KB: 1,073 vs
//! 753; BLAKE3 only wins from 8 KB (3.3 GB/s vs 1.1). Function bodies are hundreds of
//! bytes, so SHA-256 it is. Command: a scratch crate (`/tmp/hb`, `cargo build --release`)
//! timing `Sha256::digest` and `blake3::hash` over every `CodeSectionEntry` of
//! `target/fixtures/*.wasm` and `/work/shared/corpus/*.wasm`.
//!
//! # Throughput
//! `cargo test --release -p quickbeam-environ --test key -- --ignored --nocapture
//! throughput` (CPU time of the thread, best of 3 rounds of ≥ 0.25 s, same machine, with
//! wasmparser's decode-only speed measured alongside, because this machine's speed
//! varies by up to 1.5× from minute to minute):
//!
//! | module | shape key | exact key | wasmparser decode alone |
//! |---|---|---|---|
//! | sqlite.wasm | 135 MB/s | 964 MB/s | 147 MB/s |
//! | lua.wasm | 150 MB/s | 824 MB/s | 181 MB/s |
//! | zstd.wasm | 242 MB/s | 1,074 MB/s | 160 MB/s |
//! | coremark.wasm | 284 MB/s | 863 MB/s | 188 MB/s |
//! | spidermonkey.wasm | 123 MB/s | 864 MB/s | 125 MB/s |
//!
//! The exact key runs at hashing speed. The shape key (decode, slots, constants, hash)
//! runs at 0.8–1.5× wasmparser's decoding alone: 60% of its time is the fast loop,
//! whose cost is the mispredicted dispatch on irregular operator sequences (on a regular
//! sequence it does 320–430 MB/s), 12% is SHA-256; about 0.3 µs per function is fixed
//! cost (slot allocation, result vectors, hash finalization).

use crate::module::{ModuleEnv, ModuleError};
use crate::slots::*;
use crate::types::*;
use core::fmt;
use sha2::{Digest, Sha256};

/// The compiler's version: part of every key. Change it whenever the code the compiler
/// generates, the stencil format or the key's input format changes.
pub const COMPILER_VERSION: &str = "quickbeam-codegen-0.1.0-format6";

/// A 256-bit cache key (exact or shape).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StencilKey(pub [u8; 32]);

impl fmt::Display for StencilKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for StencilKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StencilKey({self})")
    }
}

/// A hash of the compiler version, the Wasm features bodies are decoded and validated
/// with, and every engine setting that changes code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EngineFingerprint(pub [u8; 32]);

impl EngineFingerprint {
    /// `settings` must encode, unambiguously, every setting that changes generated code
    /// (target CPU features, bounds-check strategy, interruption checks, debug info, ...).
    pub fn new(settings: &[u8]) -> EngineFingerprint {
        let mut h = Sha256::new();
        h.update(b"qb-engine-v1");
        h.update((COMPILER_VERSION.len() as u64).to_le_bytes());
        h.update(COMPILER_VERSION.as_bytes());
        h.update(crate::supported_features().bits().to_le_bytes());
        h.update((settings.len() as u64).to_le_bytes());
        h.update(settings);
        EngineFingerprint(h.finalize().into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The exact key of a body: its raw bytes (locals and operators, as in the code
/// section), its type, the engine and the module context ([`module_context_hash`]).
pub fn exact_key(engine: &[u8; 32], module_ctx: &[u8; 32], func_type: &FuncType, body: &[u8]) -> StencilKey {
    // "qb-exact-v1\0" engine module_ctx #params:u32 #results:u32 codes #body:u64 body,
    // gathered in a stack buffer so that the hasher sees few, large updates.
    let mut h = Sha256::new();
    let mut head = [0u8; 128];
    let mut n = 0;
    let (params, results) = (func_type.params(), func_type.results());
    for part in [
        &b"qb-exact-v1\0"[..],
        engine,
        module_ctx,
        &(params.len() as u32).to_le_bytes(),
        &(results.len() as u32).to_le_bytes(),
    ] {
        head[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    for t in params.iter().chain(results) {
        if n == head.len() {
            h.update(head);
            n = 0;
        }
        head[n] = t.code();
        n += 1;
    }
    h.update(&head[..n]);
    h.update((body.len() as u64).to_le_bytes());
    h.update(body);
    StencilKey(h.finalize().into())
}

/// The key of a whole module's record (the shape, parameters and constants of each of
/// its functions, in the persistent cache): a hash of
/// the engine and the module's bytes. Runs at hashing speed.
pub fn module_key(engine: &[u8; 32], wasm: &[u8]) -> StencilKey {
    let mut h = Sha256::new();
    h.update(b"qb-module-record-v1\0");
    h.update(engine);
    h.update((wasm.len() as u64).to_le_bytes());
    h.update(wasm);
    StencilKey(h.finalize().into())
}

/// A hash of everything of `env` that a body's raw bytes can refer to: all types, every
/// function's type index and whether it is imported, the globals' types, the tables'
/// element types, the memories' index type and sharing, the number of data segments
/// and whether a data count section declared it, the element segments' types, and the functions declared for `ref.func`. Limits of
/// tables and memories are left out: code does not depend on them.
pub fn module_context_hash(env: &ModuleEnv) -> [u8; 32] {
    let mut b = Vec::with_capacity(64 + 4 * env.functions.len() + 8 * env.types.len());
    b.extend_from_slice(b"qb-module-v2");
    push_u32(&mut b, env.types.len() as u32);
    for t in &env.types {
        encode_func_type(&mut b, t);
    }
    push_u32(&mut b, env.functions.len() as u32);
    push_u32(&mut b, env.num_imported_funcs);
    for &t in &env.functions {
        push_u32(&mut b, t);
    }
    push_u32(&mut b, env.globals.len() as u32);
    for g in &env.globals {
        b.extend_from_slice(&[g.content.code(), g.mutable as u8]);
    }
    push_u32(&mut b, env.tables.len() as u32);
    for t in &env.tables {
        b.push(ValType::from(t.element).code());
    }
    push_u32(&mut b, env.memories.len() as u32);
    for m in &env.memories {
        b.extend_from_slice(&[m.memory64 as u8, m.shared as u8]);
    }
    push_u32(&mut b, env.datas.len() as u32);
    b.push(env.has_data_count as u8);
    push_u32(&mut b, env.elems.len() as u32);
    for e in &env.elems {
        b.push(ValType::from(e.ty).code());
    }
    push_u32(&mut b, env.escaping_funcs.len() as u32);
    for &f in &env.escaping_funcs {
        push_u32(&mut b, f);
    }
    Sha256::digest(&b).into()
}

/// A body's shape key and what finalize applies to the stencil it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub shape: StencilKey,
    /// Which module index each slot stands for (as the translator assigns them).
    pub params: FunctionParameters,
    /// The body's numeric immediates (bits; i32/f32 zero-extended), by [`ConstIdx`].
    pub consts: Vec<u64>,
    /// What the code depends on, per slot.
    pub slots: SlotEnv,
}

/// Computes a function's [`Fingerprint`] (shape key). For many functions, reuse one
/// [`Fingerprinter`].
///
/// # Errors
/// See [`Fingerprinter::fingerprint`].
pub fn fingerprint(
    env: &ModuleEnv,
    engine: &[u8; 32],
    func_index: u32,
    body: &wasmparser::FunctionBody<'_>,
) -> Result<Fingerprint, ModuleError> {
    Fingerprinter::new().fingerprint(env, engine, func_index, body)
}

/// Computes shape keys; keeps its buffers from one function to the next.
#[derive(Default)]
pub struct Fingerprinter {
    /// The hash input.
    buf: Out,
    /// The body's constants are `consts[..nconsts]` (the vector only grows, so that the
    /// fast loop can store without a capacity check).
    consts: Vec<u64>,
    nconsts: usize,
    /// Whether [`Scanner::operators`] uses its fast loop (always, except in tests that
    /// compare both paths).
    no_fast_path: bool,
    /// The locals declaration, merged (scratch).
    locals: Vec<(u64, ValTypeByte)>,
    slots: SlotAllocator,
}

impl Fingerprinter {
    pub fn new() -> Fingerprinter {
        Fingerprinter::default()
    }

    /// A fingerprinter that decodes every operator on the general path: the oracle the
    /// tests compare the fast loop against. Same results, slower.
    #[doc(hidden)]
    pub fn without_fast_path() -> Fingerprinter {
        Fingerprinter { no_fast_path: true, ..Fingerprinter::default() }
    }

    /// The [`Fingerprint`] of function `func_index`, whose body is `body`.
    ///
    /// # Errors
    /// A [`ModuleError`] (with the absolute byte offset) if the body is malformed, uses an
    /// operator Quickbeam does not compile, or names an entity the module does not have.
    /// Such a function has no key: compile it without the cache.
    pub fn fingerprint(
        &mut self,
        env: &ModuleEnv,
        engine: &[u8; 32],
        func_index: u32,
        body: &wasmparser::FunctionBody<'_>,
    ) -> Result<Fingerprint, ModuleError> {
        self.fingerprint_bytes(env, engine, func_index, body.as_bytes(), body.range().start)
    }

    /// [`Fingerprinter::fingerprint`] of a body given as its bytes (locals, operators),
    /// which start at offset `base` of the module (for error offsets).
    ///
    /// # Errors
    /// See [`Fingerprinter::fingerprint`].
    pub fn fingerprint_bytes(
        &mut self,
        env: &ModuleEnv,
        engine: &[u8; 32],
        func_index: u32,
        body: &[u8],
        base: u64,
    ) -> Result<Fingerprint, ModuleError> {
        let ty = env
            .functions
            .get(func_index as usize)
            .and_then(|&t| env.types.get(t as usize))
            .ok_or_else(|| err("function index out of range", base))?;
        self.buf.len = 0;
        self.nconsts = 0;
        self.slots.reset();
        self.buf.extend_from_slice(b"qb-shape-v2");
        self.buf.extend_from_slice(engine);
        encode_func_type(&mut self.buf, ty);

        let mut scan = Scanner { env, r: Reader { bytes: body, pos: 0, base }, fp: self };
        scan.locals()?;
        let ops_start = scan.fp.buf.len;
        scan.operators(!scan.fp.no_fast_path)?;
        let ops_len = self.buf.len - ops_start;

        let env_start = self.buf.len;
        encode_slot_env(&mut self.buf, &self.slots.env);
        let env_len = self.buf.len - env_start;
        self.buf.extend_from_slice(&(ops_len as u64).to_le_bytes());
        self.buf.extend_from_slice(&(env_len as u64).to_le_bytes());
        let shape = StencilKey(Sha256::digest(self.buf.as_slice()).into());
        Ok(Fingerprint {
            shape,
            params: std::mem::take(&mut self.slots.params),
            consts: self.consts[..self.nconsts].to_vec(),
            slots: std::mem::take(&mut self.slots.env),
        })
    }
}

// ---- encodings ----------------------------------------------------------------------------

/// Where encodings are written: a `Vec<u8>`, or the fingerprinter's [`Out`].
trait Sink {
    fn push(&mut self, b: u8);
    fn extend_from_slice(&mut self, b: &[u8]);
}

impl Sink for Vec<u8> {
    #[inline(always)]
    fn push(&mut self, b: u8) {
        Vec::push(self, b)
    }
    #[inline(always)]
    fn extend_from_slice(&mut self, b: &[u8]) {
        Vec::extend_from_slice(self, b)
    }
}

/// The shape key's hash input: `bytes[..len]`. `bytes` only grows and is never cleared,
/// so that the fast loop can store into it without a capacity check per operator.
#[derive(Default)]
struct Out {
    bytes: Vec<u8>,
    len: usize,
}

impl Out {
    /// Makes room for `n` more bytes.
    #[inline(always)]
    fn reserve(&mut self, n: usize) {
        if self.bytes.len() < self.len + n {
            self.grow(n);
        }
    }

    #[inline(never)]
    fn grow(&mut self, n: usize) {
        let size = (self.len + n).max(2 * self.bytes.len()).max(1024);
        self.bytes.resize(size, 0);
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Sink for Out {
    #[inline(always)]
    fn push(&mut self, b: u8) {
        self.reserve(1);
        self.bytes[self.len] = b;
        self.len += 1;
    }
    #[inline(always)]
    fn extend_from_slice(&mut self, b: &[u8]) {
        self.reserve(b.len());
        self.bytes[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }
}

#[inline]
fn push_u32(b: &mut impl Sink, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

#[inline]
fn push_leb(b: &mut impl Sink, mut v: u32) {
    while v >= 0x80 {
        b.push(v as u8 | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn encode_func_type(b: &mut impl Sink, t: &FuncType) {
    push_leb(b, t.params().len() as u32);
    for v in t.params() {
        b.push(v.code());
    }
    push_leb(b, t.results().len() as u32);
    for v in t.results() {
        b.push(v.code());
    }
}

/// A stable encoding of a [`SlotEnv`] (never `std::hash`, which may change between
/// Rust versions): per kind, the count, then per slot its fields.
fn encode_slot_env(b: &mut impl Sink, e: &SlotEnv) {
    push_u32(b, e.funcs.len() as u32);
    for f in &e.funcs {
        encode_func_type(b, &f.ty);
        b.push(f.imported as u8);
    }
    push_u32(b, e.globals.len() as u32);
    for g in &e.globals {
        b.extend_from_slice(&[g.content.code(), g.mutable as u8]);
    }
    push_u32(b, e.tables.len() as u32);
    for t in &e.tables {
        b.push(ValType::from(t.element).code());
    }
    push_u32(b, e.types.len() as u32);
    for t in &e.types {
        encode_func_type(b, t);
    }
    push_u32(b, e.memories.len() as u32);
    for m in &e.memories {
        b.extend_from_slice(&[m.memory64 as u8, m.shared as u8]);
    }
    push_u32(b, e.datas);
    b.push(e.data_count_section as u8);
    push_u32(b, e.elems.len() as u32);
    for r in &e.elems {
        b.push(ValType::from(*r).code());
    }
}

// ---- decoding -----------------------------------------------------------------------------

#[cold]
fn err(message: &str, offset: u64) -> ModuleError {
    ModuleError { message: message.to_string(), offset }
}

/// A cursor over a body, decoding as wasmparser's `BinaryReader` does.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The module offset of `bytes[0]`.
    base: u64,
}

impl Reader<'_> {
    #[cold]
    fn error(&self, message: &str, at: usize) -> ModuleError {
        err(message, self.base + at as u64)
    }

    #[cold]
    fn eof_error(&self) -> ModuleError {
        self.error("unexpected end-of-file", self.bytes.len())
    }

    #[inline(always)]
    fn u8(&mut self) -> Result<u8, ModuleError> {
        match self.bytes.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.eof_error()),
        }
    }

    #[inline(always)]
    fn bytes_n<const N: usize>(&mut self) -> Result<[u8; N], ModuleError> {
        match self.bytes.get(self.pos..self.pos + N) {
            Some(s) => {
                self.pos += N;
                Ok(s.try_into().expect("slice of length N"))
            }
            None => Err(self.eof_error()),
        }
    }

    #[inline(always)]
    fn var_u32(&mut self) -> Result<u32, ModuleError> {
        let b = self.u8()?;
        if b & 0x80 == 0 {
            return Ok(b as u32);
        }
        self.var_u32_big(b)
    }

    fn var_u32_big(&mut self, first: u8) -> Result<u32, ModuleError> {
        let mut result = (first & 0x7f) as u32;
        let mut shift = 7;
        loop {
            let b = self.u8()?;
            result |= ((b & 0x7f) as u32) << shift;
            if shift >= 25 && (b >> (32 - shift)) != 0 {
                return Err(self.error("invalid var_u32: integer too large or representation too long", self.pos - 1));
            }
            shift += 7;
            if b & 0x80 == 0 {
                return Ok(result);
            }
        }
    }

    #[inline(always)]
    fn var_i32(&mut self) -> Result<i32, ModuleError> {
        let b = self.u8()?;
        if b & 0x80 == 0 {
            return Ok(((b as i32) << 25) >> 25);
        }
        let mut result = (b & 0x7f) as i32;
        let mut shift = 7;
        loop {
            let b = self.u8()?;
            result |= ((b & 0x7f) as i32) << shift;
            if shift >= 25 {
                let continuation = b & 0x80 != 0;
                let sign_and_unused = (b << 1) as i8 >> (32 - shift);
                if continuation || (sign_and_unused != 0 && sign_and_unused != -1) {
                    return Err(
                        self.error("invalid var_i32: integer too large or representation too long", self.pos - 1)
                    );
                }
                return Ok(result);
            }
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let ashift = 32 - shift;
        Ok((result << ashift) >> ashift)
    }

    fn var_i64(&mut self) -> Result<i64, ModuleError> {
        let mut result: i64 = 0;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            result |= i64::from(b & 0x7f) << shift;
            if shift >= 57 {
                let continuation = b & 0x80 != 0;
                let sign_and_unused = ((b << 1) as i8) >> (64 - shift);
                if continuation || (sign_and_unused != 0 && sign_and_unused != -1) {
                    return Err(
                        self.error("invalid var_i64: integer too large or representation too long", self.pos - 1)
                    );
                }
                return Ok(result);
            }
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let ashift = 64 - shift;
        Ok((result << ashift) >> ashift)
    }

    fn var_s33(&mut self) -> Result<i64, ModuleError> {
        let b = self.u8()?;
        if b & 0x80 == 0 {
            return Ok((((b as i8) << 1) as i64) >> 1);
        }
        let mut result = (b & 0x7f) as i64;
        let mut shift = 7;
        loop {
            let b = self.u8()?;
            result |= ((b & 0x7f) as i64) << shift;
            if shift >= 25 {
                let continuation = b & 0x80 != 0;
                let sign_and_unused = (b << 1) as i8 >> (33 - shift);
                if continuation || (sign_and_unused != 0 && sign_and_unused != -1) {
                    return Err(self.error("invalid var_s33: integer representation too long", self.pos - 1));
                }
            }
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let ashift = 64 - shift;
        Ok((result << ashift) >> ashift)
    }

    /// A value type Quickbeam decodes: one byte (numeric, `v128`, `funcref`, `externref`).
    fn val_type(&mut self) -> Result<ValTypeByte, ModuleError> {
        let at = self.pos;
        match self.u8()? {
            b @ (0x7f | 0x7e | 0x7d | 0x7c | 0x7b | 0x70 | 0x6f) => Ok(ValTypeByte(b)),
            _ => Err(self.error("unsupported value type", at)),
        }
    }
}

/// A value type as its one-byte binary code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ValTypeByte(u8);


/// One body's scan: decodes it and writes the hash input into `fp.buf`, the constants
/// into `fp.consts[..fp.nconsts]`.
struct Scanner<'a, 'f> {
    env: &'a ModuleEnv,
    r: Reader<'a>,
    fp: &'f mut Fingerprinter,
}

impl Scanner<'_, '_> {
    /// The locals declaration, decoded, with adjacent groups of one type merged.
    fn locals(&mut self) -> Result<(), ModuleError> {
        let groups = self.r.var_u32()?;
        let merged = &mut self.fp.locals;
        merged.clear();
        for _ in 0..groups {
            let count = self.r.var_u32()? as u64;
            let ty = self.r.val_type()?;
            match merged.last_mut() {
                Some((n, t)) if *t == ty => *n += count,
                _ if count == 0 => {}
                _ => merged.push((count, ty)),
            }
        }
        let (buf, merged) = (&mut self.fp.buf, &self.fp.locals);
        push_u32(buf, merged.len() as u32);
        for &(n, t) in merged {
            buf.extend_from_slice(&n.to_le_bytes());
            buf.push(t.0);
        }
        Ok(())
    }

    #[inline(always)]
    fn push_const(&mut self, bits: u64) {
        let fp = &mut *self.fp;
        if fp.nconsts == fp.consts.len() {
            fp.consts.push(0);
        }
        fp.consts[fp.nconsts] = bits;
        fp.nconsts += 1;
    }

    /// Copies the raw bytes `from..` up to the reader's position into the hash input.
    #[inline(always)]
    fn raw_from(&mut self, from: usize) {
        Sink::extend_from_slice(&mut self.fp.buf, &self.r.bytes[from..self.r.pos]);
    }

    /// A module index immediate of `kind` (bounds-checked), written as its slot.
    fn index(&mut self, kind: SlotKind) -> Result<(), ModuleError> {
        let at = self.r.pos;
        let index = self.r.var_u32()?;
        self.slot(kind, index, at)
    }

    fn slot(&mut self, kind: SlotKind, index: u32, at: usize) -> Result<(), ModuleError> {
        let env = self.env;
        let len = match kind {
            SlotKind::Func => env.functions.len(),
            SlotKind::Global => env.globals.len(),
            SlotKind::Table => env.tables.len(),
            SlotKind::Type => env.types.len(),
            SlotKind::Memory => env.memories.len(),
            SlotKind::Data => env.datas.len(),
            SlotKind::Elem => env.elems.len(),
        };
        if index as usize >= len {
            return Err(self.r.error(out_of_range(kind), at));
        }
        let slot = self.fp.slots.slot(env, kind, index);
        push_leb(&mut self.fp.buf, slot);
        Ok(())
    }

    /// A memory index immediate (LEB128) of a bulk memory operator: without multi-memory
    /// only memory 0 exists, whose slot is always 0 (see [`Scanner::operators`]).
    fn memory_index(&mut self) -> Result<(), ModuleError> {
        let at = self.r.pos;
        if self.r.var_u32()? != 0 {
            return Err(self.r.error("unsupported: multi-memory", at));
        }
        self.slot(SlotKind::Memory, 0, at)
    }

    /// The single zero byte naming memory 0 (`memory.size`, `memory.grow`).
    fn zero_byte_memory(&mut self) -> Result<(), ModuleError> {
        let at = self.r.pos;
        if self.r.u8()? != 0 {
            return Err(self.r.error("zero byte expected", at));
        }
        self.slot(SlotKind::Memory, 0, at)
    }

    /// A block type: raw if empty or a value type, else `0x00` and the named type's
    /// structure.
    fn block_type(&mut self) -> Result<(), ModuleError> {
        let at = self.r.pos;
        let b = *self.r.bytes.get(at).ok_or_else(|| self.r.eof_error())?;
        if b & 0x80 == 0 && b & 0x40 != 0 {
            if b == 0x40 {
                self.r.pos += 1;
            } else {
                self.r.val_type()?;
            }
            self.raw_from(at);
            return Ok(());
        }
        let index = self.r.var_s33()?;
        let ty = u32::try_from(index)
            .ok()
            .and_then(|i| self.env.types.get(i as usize))
            .ok_or_else(|| self.r.error("type index out of bounds", at))?;
        self.fp.buf.push(0x00);
        encode_func_type(&mut self.fp.buf, ty);
        Ok(())
    }

    /// Every operator up to the body's final `end`.
    ///
    /// [`fast_loop`] decodes the common operators; everything else, and every operator
    /// in the last three bytes of the body, goes through [`Scanner::operator`], which
    /// decodes every operator and writes the same bytes the fast loop would.
    ///
    /// Memory slots: without multi-memory a module has at most one memory, every memory
    /// immediate names memory 0 (others are rejected), so memory 0's slot is always 0;
    /// the fast loop writes that 0 and registers the slot once, at the end.
    fn operators(&mut self, fast: bool) -> Result<(), ModuleError> {
        let bytes = self.r.bytes;
        let n = bytes.len();
        let mut pos = self.r.pos;
        let mut depth: u32 = 1;
        let mut mem_used = false;
        // Every constant takes at least two bytes of the body.
        let max_consts = (n - pos) / 2 + 1;
        if self.fp.consts.len() < max_consts {
            self.fp.consts.resize(max_consts, 0);
        }
        // The fast loop runs while `pos <= fast_end`.
        // (Without a memory, a load is an error, reported at the load by the general
        // decoder.)
        let fast = fast && !self.env.memories.is_empty();
        let fast_end = if fast && n >= 3 { Some(n - 3) } else { None };
        loop {
            if let Some(fast_end) = fast_end.filter(|&e| pos <= e) {
                let fp = &mut *self.fp;
                // The fast loop writes at most as many bytes as it reads, plus a 4-byte
                // store.
                fp.buf.reserve(n - pos + 4);
                let run =
                    fast_loop(bytes, pos, fast_end, &mut fp.buf.bytes, fp.buf.len, &mut fp.consts, fp.nconsts, depth);
                fp.buf.len = run.written;
                fp.nconsts = run.nconsts;
                mem_used |= run.mem_used;
                depth = run.depth;
                pos = run.pos;
            }
            self.r.pos = pos;
            if depth == 0 || self.operator(&mut depth)? {
                break;
            }
            pos = self.r.pos;
        }
        if mem_used {
            if self.env.memories.is_empty() {
                return Err(self.r.error(out_of_range(SlotKind::Memory), self.r.pos));
            }
            self.fp.slots.slot(self.env, SlotKind::Memory, 0);
        }
        if self.r.pos != n {
            return Err(self.r.error("operators remaining after end of function body or expression", self.r.pos));
        }
        Ok(())
    }

    /// Decodes one operator at the reader's position and writes its part of the hash
    /// input; returns whether it was the body's final `end`.
    fn operator(&mut self, depth: &mut u32) -> Result<bool, ModuleError> {
        let at = self.r.pos;
        let op = self.r.u8()?;
        match op {
            // No immediates.
            0x00 | 0x01 | 0x05 | 0x0f | 0x1a | 0x1b | 0x45..=0xc4 | 0xd1 => self.fp.buf.push(op),
            0x0b => {
                self.fp.buf.push(op);
                *depth -= 1;
                return Ok(*depth == 0);
            }
            // block, loop, if
            0x02..=0x04 => {
                *depth += 1;
                self.fp.buf.push(op);
                self.block_type()?;
            }
            // br, br_if, local.get, local.set, local.tee
            0x0c | 0x0d | 0x20..=0x22 => {
                self.r.var_u32()?;
                self.raw_from(at);
            }
            // br_table
            0x0e => {
                let n = self.r.var_u32()?;
                for _ in 0..=n {
                    self.r.var_u32()?;
                }
                self.raw_from(at);
            }
            // call
            0x10 => {
                self.fp.buf.push(op);
                self.index(SlotKind::Func)?;
            }
            // call_indirect: type, table (a LEB128 with reference types)
            0x11 => {
                self.fp.buf.push(op);
                self.index(SlotKind::Type)?;
                self.index(SlotKind::Table)?;
            }
            // select t*
            0x1c => {
                let n = self.r.var_u32()?;
                for _ in 0..n {
                    self.r.val_type()?;
                }
                self.raw_from(at);
            }
            // global.get, global.set
            0x23 | 0x24 => {
                self.fp.buf.push(op);
                self.index(SlotKind::Global)?;
            }
            // table.get, table.set
            0x25 | 0x26 => {
                self.fp.buf.push(op);
                self.index(SlotKind::Table)?;
            }
            // loads and stores: flags (the alignment; any other flag bit is malformed
            // without multi-memory and the in-flight proposals), offset
            0x28..=0x3e => {
                let flags_at = self.r.pos;
                let flags = self.r.var_u32()?;
                if flags >= 1 << 6 {
                    return Err(self.r.error("malformed memop: reserved flags bits set", flags_at));
                }
                let offset = self.r.var_u32()?;
                self.push_const(offset as u64);
                self.fp.buf.extend_from_slice(&[op, flags as u8]);
                self.slot(SlotKind::Memory, 0, flags_at)?;
            }
            // memory.size, memory.grow
            0x3f | 0x40 => {
                self.fp.buf.push(op);
                self.zero_byte_memory()?;
            }
            0x41 => {
                let v = self.r.var_i32()?;
                self.push_const(v as u32 as u64);
                self.fp.buf.push(op);
            }
            0x42 => {
                let v = self.r.var_i64()?;
                self.push_const(v as u64);
                self.fp.buf.push(op);
            }
            0x43 => {
                let v = u32::from_le_bytes(self.r.bytes_n::<4>()?);
                self.push_const(v as u64);
                self.fp.buf.push(op);
            }
            0x44 => {
                let v = u64::from_le_bytes(self.r.bytes_n::<8>()?);
                self.push_const(v);
                self.fp.buf.push(op);
            }
            // ref.null ht: an abstract heap type (one byte)
            0xd0 => {
                let ht = self.r.pos;
                let b = self.r.u8()?;
                if b & 0x80 != 0 || b & 0x40 == 0 {
                    return Err(self.r.error("unsupported heap type", ht));
                }
                self.raw_from(at);
            }
            // ref.func
            0xd2 => {
                self.fp.buf.push(op);
                let fat = self.r.pos;
                let f = self.r.var_u32()?;
                self.slot(SlotKind::Func, f, fat)?;
                let declared = self.env.escaping_funcs.binary_search(&f).is_ok();
                self.fp.buf.push(declared as u8);
            }
            0xfc => self.prefix_fc(at)?,
            _ => return Err(self.r.error("unsupported operator", at)),
        }
        Ok(false)
    }

    /// The `0xfc` operators Quickbeam compiles: saturating truncations, bulk memory and
    /// table operators. The reader is just after the `0xfc` at `at`.
    fn prefix_fc(&mut self, at: usize) -> Result<(), ModuleError> {
        let sub = self.r.var_u32()?;
        self.raw_from(at);
        match sub {
            0..=7 => {}
            // memory.init data mem
            8 => {
                self.index(SlotKind::Data)?;
                self.memory_index()?;
            }
            // data.drop
            9 => self.index(SlotKind::Data)?,
            // memory.copy dst src
            10 => {
                self.memory_index()?;
                self.memory_index()?;
            }
            // memory.fill
            11 => self.memory_index()?,
            // table.init elem table
            12 => {
                self.index(SlotKind::Elem)?;
                self.index(SlotKind::Table)?;
            }
            // elem.drop
            13 => self.index(SlotKind::Elem)?,
            // table.copy dst src
            14 => {
                self.index(SlotKind::Table)?;
                self.index(SlotKind::Table)?;
            }
            // table.grow, table.size, table.fill
            15..=17 => self.index(SlotKind::Table)?,
            _ => return Err(self.r.error("unsupported operator", at)),
        }
        Ok(())
    }
}

/// Where the fast loop stopped.
struct FastRun {
    pos: usize,
    /// The new length of the output.
    written: usize,
    nconsts: usize,
    depth: u32,
    mem_used: bool,
}

/// The fast loop of [`Scanner::operators`]: decodes operators from `pos` while they are
/// the common ones it handles (no immediate; a raw local or label index; `*.const`
/// `i32`/`i64`; loads and stores; `block`/`loop`/`if` with the empty block type) and
/// `pos <= fast_end` (so that the two bytes after an opcode can be read unchecked),
/// writing their hash input to `out[w..]` and their constants to `consts[nconsts..]`.
/// Stops after the body's final `end`, or before an operator it does not handle, or
/// before one whose immediates do not decode (so that [`Scanner::operator`] reports the
/// error). Every operator it handles, `Scanner::operator` decodes to the same bytes.
///
/// All state lives in locals, and the `match` dispatches with branches, which the CPU
/// predicts and so runs ahead along the body (a table-driven, branch-free loop was no
/// faster on real code and 2× slower on regular code: the next position then depends on
/// two loads per operator).
///
/// `out` must have room for `w + (fast_end + 3 - pos) + 4` bytes: no operator here
/// writes more than it reads, plus a 4-byte store. `consts` must have room for a constant
/// per two bytes read.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn fast_loop(
    bytes: &[u8],
    mut pos: usize,
    fast_end: usize,
    out: &mut [u8],
    mut w: usize,
    consts: &mut [u64],
    mut nc: usize,
    mut depth: u32,
) -> FastRun {
    let mut mem_used = false;
    while pos <= fast_end {
        let op = bytes[pos];
        match op {
            0x00 | 0x01 | 0x05 | 0x0f | 0x1a | 0x1b | 0x45..=0xc4 | 0xd1 => {
                out[w] = op;
                w += 1;
                pos += 1;
            }
            0x0b => {
                out[w] = op;
                w += 1;
                pos += 1;
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            // br, br_if, local.get, local.set, local.tee with a one-byte index: raw
            0x0c | 0x0d | 0x20..=0x22 => {
                let b1 = bytes[pos + 1];
                if b1 >= 0x80 {
                    break;
                }
                out[w..w + 2].copy_from_slice(&[op, b1]);
                w += 2;
                pos += 2;
            }
            // block, loop, if with the empty block type: raw
            0x02..=0x04 => {
                if bytes[pos + 1] != 0x40 {
                    break;
                }
                out[w..w + 2].copy_from_slice(&[op, 0x40]);
                w += 2;
                depth += 1;
                pos += 2;
            }
            0x41 => {
                let b1 = bytes[pos + 1];
                let (bits, next) = if b1 < 0x80 {
                    ((((b1 as i32) << 25) >> 25) as u32 as u64, pos + 2)
                } else {
                    let mut r = Reader { bytes, pos: pos + 1, base: 0 };
                    match r.var_i32() {
                        Ok(v) => (v as u32 as u64, r.pos),
                        Err(_) => break,
                    }
                };
                out[w] = op;
                w += 1;
                consts[nc] = bits;
                nc += 1;
                pos = next;
            }
            0x42 => {
                let mut r = Reader { bytes, pos: pos + 1, base: 0 };
                let Ok(v) = r.var_i64() else { break };
                out[w] = op;
                w += 1;
                consts[nc] = v as u64;
                nc += 1;
                pos = r.pos;
            }
            // loads and stores: opcode, alignment, memory slot 0
            0x28..=0x3e => {
                let (b1, b2) = (bytes[pos + 1], bytes[pos + 2]);
                let (flags, offset, next) = if b1 < 0x40 && b2 < 0x80 {
                    (b1, b2 as u32, pos + 3)
                } else {
                    let mut r = Reader { bytes, pos: pos + 1, base: 0 };
                    let Ok(flags) = r.var_u32() else { break };
                    if flags >= 1 << 6 {
                        break;
                    }
                    let Ok(offset) = r.var_u32() else { break };
                    (flags as u8, offset, r.pos)
                };
                out[w..w + 3].copy_from_slice(&[op, flags, 0]);
                w += 3;
                consts[nc] = offset as u64;
                nc += 1;
                mem_used = true;
                pos = next;
            }
            _ => break,
        }
    }
    FastRun { pos, written: w, nconsts: nc, depth, mem_used }
}

fn out_of_range(kind: SlotKind) -> &'static str {
    match kind {
        SlotKind::Func => "function index out of bounds",
        SlotKind::Global => "global index out of bounds",
        SlotKind::Table => "table index out of bounds",
        SlotKind::Type => "type index out of bounds",
        SlotKind::Memory => "memory index out of bounds",
        SlotKind::Data => "data segment index out of bounds",
        SlotKind::Elem => "element segment index out of bounds",
    }
}
