//! The payloads of cache entries: compact, versioned binary encodings of what the cache
//! stores (DESIGN.md §2.2–2.3).
//!
//! - under a **shape key**: [`Variants`], up to [`MAX_VARIANTS`] stencils of one shape,
//!   each with its own guards and the constants it was compiled with; a lookup takes the
//!   first whose guards accept the body's constants;
//! - under an **exact key**: an [`ExactRecord`], the shape key and what finalize applies
//!   (parameters, constants), so that an unchanged body needs no decoding at all;
//! - under a **module key**: a [`ModuleRecord`], the [`ExactRecord`]s of all of a
//!   module's functions in one entry.
//!
//! ```text
//!  payload   = magic:u8 ('V', 'X' or 'M')  version:u8  body
//!  Variants  = n:leb  (stencil consts){n}     consts = list of leb u64
//!  stencil   = code:bytes  relocs  const_sites  guards  trap_sites  srclocs
//!  ExactRecord = shape[32]  params (7 × list of leb)  consts
//!  ModuleRecord = n:leb  ExactRecord{n}
//! ```
//! Integers are unsigned LEB128 (`leb`), signed ones zigzag-encoded first; code offsets
//! in sorted lists are deltas from the previous one (wrapping, so any list round-trips).
//!
//! Invariant: decoding never panics and never allocates more than the input could
//! describe (every element takes at least one byte); any malformed, truncated or
//! trailing input decodes to `None`. A store's checksum catches damage that still
//! decodes.

use quickbeam_codegen::{ConstSite, Guard, Reloc, RelocKind, SiteEncoding, Stencil, TrapSite};
use quickbeam_environ::*;

/// The payload format version; bump it when any encoding here changes.
pub const ENTRY_FORMAT: u8 = 3;

/// At most this many stencils are kept per shape key.
pub const MAX_VARIANTS: usize = 4;

const MAGIC_VARIANTS: u8 = b'V';
const MAGIC_EXACT: u8 = b'X';
const MAGIC_MODULE: u8 = b'M';

/// One stencil of a shape and the constants it was compiled with (so that a hit can
/// tell a reuse, same constants, from a patch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Variant {
    pub stencil: Stencil,
    /// The constants (bits, by `ConstIdx`) of the body the stencil was compiled from.
    pub consts: Vec<u64>,
}

impl Variant {
    /// Whether this variant's guards accept `consts` (bits by `ConstIdx`).
    pub fn accepts(&self, consts: &[u64]) -> bool {
        let guards = &self.stencil.guards;
        guards.len() == consts.len() && guards.iter().zip(consts).all(|(g, &c)| g.accepts(c))
    }
}

/// The stencils compiled for one shape key, most recently added last.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Variants {
    pub variants: Vec<Variant>,
}

impl Variants {
    /// The first variant whose guards accept `consts` (bits by `ConstIdx`).
    pub fn find(&self, consts: &[u64]) -> Option<&Variant> {
        self.variants.iter().find(|v| v.accepts(consts))
    }

    /// Adds a variant, dropping the oldest when there are already [`MAX_VARIANTS`]. A
    /// variant whose stencil equals one already present is not added twice.
    pub fn add(&mut self, variant: Variant) {
        if self.variants.iter().any(|v| v.stencil == variant.stencil) {
            return;
        }
        if self.variants.len() >= MAX_VARIANTS {
            self.variants.remove(0);
        }
        self.variants.push(variant);
    }

    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self.variants.iter().map(|v| v.stencil.code.len() + 2 * v.consts.len() + 16).sum();
        let mut w = Writer::with_capacity(16 + size);
        w.u8(MAGIC_VARIANTS);
        w.u8(ENTRY_FORMAT);
        w.leb(self.variants.len() as u64);
        for v in &self.variants {
            encode_stencil(&mut w, &v.stencil);
            encode_consts(&mut w, &v.consts);
        }
        w.0
    }

    /// `None` if `bytes` are not a well-formed [`Variants`] payload of this version (or
    /// hold more than [`MAX_VARIANTS`] stencils).
    pub fn decode(bytes: &[u8]) -> Option<Variants> {
        let mut r = Reader::new(bytes);
        if r.u8()? != MAGIC_VARIANTS || r.u8()? != ENTRY_FORMAT {
            return None;
        }
        let n = r.count()?;
        if n > MAX_VARIANTS {
            return None;
        }
        let mut variants = Vec::with_capacity(n);
        for _ in 0..n {
            let stencil = decode_stencil(&mut r)?;
            let consts = decode_consts(&mut r)?;
            variants.push(Variant { stencil, consts });
        }
        r.finish()?;
        Some(Variants { variants })
    }
}

/// What an exact key maps to: the body's shape key and what finalize applies to the
/// stencil found under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactRecord {
    pub shape: StencilKey,
    pub params: FunctionParameters,
    pub consts: Vec<u64>,
}

impl ExactRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + 2 * self.consts.len());
        w.u8(MAGIC_EXACT);
        w.u8(ENTRY_FORMAT);
        encode_record(&mut w, self);
        w.0
    }

    /// `None` if `bytes` are not a well-formed [`ExactRecord`] payload of this version.
    pub fn decode(bytes: &[u8]) -> Option<ExactRecord> {
        let mut r = Reader::new(bytes);
        if r.u8()? != MAGIC_EXACT || r.u8()? != ENTRY_FORMAT {
            return None;
        }
        let record = decode_record(&mut r)?;
        r.finish()?;
        Some(record)
    }
}

/// What a whole module's key maps to: an [`ExactRecord`] per defined function, in
/// function order. One entry instead of one per function keeps a cold compile from
/// creating thousands of files; a module that changed misses it and its functions are
/// found by shape key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleRecord {
    pub functions: Vec<ExactRecord>,
}

impl ModuleRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(16 + 64 * self.functions.len());
        w.u8(MAGIC_MODULE);
        w.u8(ENTRY_FORMAT);
        w.leb(self.functions.len() as u64);
        for f in &self.functions {
            encode_record(&mut w, f);
        }
        w.0
    }

    /// `None` if `bytes` are not a well-formed [`ModuleRecord`] payload of this version.
    pub fn decode(bytes: &[u8]) -> Option<ModuleRecord> {
        let mut r = Reader::new(bytes);
        if r.u8()? != MAGIC_MODULE || r.u8()? != ENTRY_FORMAT {
            return None;
        }
        let n = r.count()?;
        let mut functions = Vec::with_capacity(n);
        for _ in 0..n {
            functions.push(decode_record(&mut r)?);
        }
        r.finish()?;
        Some(ModuleRecord { functions })
    }
}

fn encode_record(w: &mut Writer, rec: &ExactRecord) {
    w.bytes_fixed(&rec.shape.0);
    let p = &rec.params;
    for list in [&p.funcs, &p.globals, &p.tables, &p.types, &p.memories, &p.datas, &p.elems] {
        w.leb(list.len() as u64);
        for &i in list {
            w.leb(i as u64);
        }
    }
    encode_consts(w, &rec.consts);
}

fn decode_record(r: &mut Reader<'_>) -> Option<ExactRecord> {
    let shape = StencilKey(r.array::<32>()?);
    let mut lists: [Vec<u32>; 7] = Default::default();
    for list in &mut lists {
        let n = r.count()?;
        list.reserve_exact(n);
        for _ in 0..n {
            list.push(r.u32()?);
        }
    }
    let [funcs, globals, tables, types, memories, datas, elems] = lists;
    let params = FunctionParameters { funcs, globals, tables, types, memories, datas, elems };
    let consts = decode_consts(r)?;
    Some(ExactRecord { shape, params, consts })
}

fn encode_consts(w: &mut Writer, consts: &[u64]) {
    w.leb(consts.len() as u64);
    for &c in consts {
        w.leb(c);
    }
}

fn decode_consts(r: &mut Reader<'_>) -> Option<Vec<u64>> {
    let n = r.count()?;
    let mut consts = Vec::with_capacity(n);
    for _ in 0..n {
        consts.push(r.leb()?);
    }
    Some(consts)
}

// ---- stencils -----------------------------------------------------------------------------

fn encode_stencil(w: &mut Writer, s: &Stencil) {
    w.leb(s.code.len() as u64);
    w.bytes_fixed(&s.code);
    w.leb(s.relocs.len() as u64);
    let mut prev = 0u32;
    for r in &s.relocs {
        w.leb(r.offset.wrapping_sub(prev) as u64);
        prev = r.offset;
        let (tag, slot) = reloc_kind_parts(r.kind);
        w.u8(tag);
        w.leb(slot as u64);
    }
    w.leb(s.const_sites.len() as u64);
    let mut prev = 0u32;
    for c in &s.const_sites {
        w.leb(c.offset.wrapping_sub(prev) as u64);
        prev = c.offset;
        w.leb(c.k.0 as u64);
        w.u8(match c.encoding {
            SiteEncoding::Imm32 => 0,
            SiteEncoding::Imm32Neg => 1,
            SiteEncoding::Imm64 => 2,
            SiteEncoding::Imm8Masked(_) => 3,
        });
        if let SiteEncoding::Imm8Masked(mask) = c.encoding {
            w.u8(mask);
        }
    }
    w.leb(s.guards.len() as u64);
    for g in &s.guards {
        match *g {
            Guard::Any => w.u8(0),
            Guard::Range { lo, hi } => {
                w.u8(1);
                w.leb(zigzag(lo));
                w.leb(zigzag(hi));
            }
            Guard::Exact(v) => {
                w.u8(2);
                w.leb(v);
            }
        }
    }
    w.leb(s.trap_sites.len() as u64);
    let mut prev = 0u32;
    for t in &s.trap_sites {
        w.leb(t.offset.wrapping_sub(prev) as u64);
        prev = t.offset;
        w.leb(t.code.as_u32() as u64);
    }
    w.leb(s.srclocs.len() as u64);
    let mut prev = 0u32;
    for &(offset, ordinal) in &s.srclocs {
        w.leb(offset.wrapping_sub(prev) as u64);
        prev = offset;
        w.leb(ordinal as u64);
    }
}

fn decode_stencil(r: &mut Reader<'_>) -> Option<Stencil> {
    let n = r.count()?;
    let code = r.bytes(n)?.to_vec();
    let n = r.count()?;
    let mut relocs = Vec::with_capacity(n);
    let mut offset = 0u32;
    for _ in 0..n {
        offset = offset.wrapping_add(r.u32()?);
        let tag = r.u8()?;
        let kind = reloc_kind(tag, r.u32()?)?;
        relocs.push(Reloc { offset, kind });
    }
    let n = r.count()?;
    let mut const_sites = Vec::with_capacity(n);
    let mut offset = 0u32;
    for _ in 0..n {
        offset = offset.wrapping_add(r.u32()?);
        let k = ConstIdx(r.u32()?);
        let encoding = match r.u8()? {
            0 => SiteEncoding::Imm32,
            1 => SiteEncoding::Imm32Neg,
            2 => SiteEncoding::Imm64,
            3 => SiteEncoding::Imm8Masked(r.u8()?),
            _ => return None,
        };
        const_sites.push(ConstSite { offset, k, encoding });
    }
    let n = r.count()?;
    let mut guards = Vec::with_capacity(n);
    for _ in 0..n {
        guards.push(match r.u8()? {
            0 => Guard::Any,
            1 => Guard::Range { lo: unzigzag(r.leb()?), hi: unzigzag(r.leb()?) },
            2 => Guard::Exact(r.leb()?),
            _ => return None,
        });
    }
    let n = r.count()?;
    let mut trap_sites = Vec::with_capacity(n);
    let mut offset = 0u32;
    for _ in 0..n {
        offset = offset.wrapping_add(r.u32()?);
        let code = TrapCode::from_u32(r.u32()?)?;
        trap_sites.push(TrapSite { offset, code });
    }
    let n = r.count()?;
    let mut srclocs = Vec::with_capacity(n);
    let mut offset = 0u32;
    for _ in 0..n {
        offset = offset.wrapping_add(r.u32()?);
        srclocs.push((offset, r.u32()?));
    }
    Some(Stencil { code, relocs, const_sites, guards, trap_sites, srclocs })
}

/// A relocation kind as `(tag, slot)`.
fn reloc_kind_parts(k: RelocKind) -> (u8, u32) {
    use RelocKind::*;
    match k {
        CallRel32(s) => (0, s.0),
        FuncRefOffset(s) => (1, s.0),
        TableOffset(s) => (2, s.0),
        MemoryOffset(s) => (3, s.0),
        GlobalOffset(s) => (4, s.0),
        TypeIdOffset(s) => (5, s.0),
        FuncIndex(s) => (6, s.0),
        TableIndex(s) => (7, s.0),
        MemoryIndex(s) => (8, s.0),
        DataIndex(s) => (9, s.0),
        ElemIndex(s) => (10, s.0),
    }
}

fn reloc_kind(tag: u8, slot: u32) -> Option<RelocKind> {
    use RelocKind::*;
    Some(match tag {
        0 => CallRel32(FuncSlot(slot)),
        1 => FuncRefOffset(FuncSlot(slot)),
        2 => TableOffset(TableSlot(slot)),
        3 => MemoryOffset(MemorySlot(slot)),
        4 => GlobalOffset(GlobalSlot(slot)),
        5 => TypeIdOffset(TypeSlot(slot)),
        6 => FuncIndex(FuncSlot(slot)),
        7 => TableIndex(TableSlot(slot)),
        8 => MemoryIndex(MemorySlot(slot)),
        9 => DataIndex(DataSlot(slot)),
        10 => ElemIndex(ElemSlot(slot)),
        _ => return None,
    })
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

// ---- primitive encoding -------------------------------------------------------------------

struct Writer(Vec<u8>);

impl Writer {
    fn with_capacity(n: usize) -> Writer {
        Writer(Vec::with_capacity(n))
    }

    fn u8(&mut self, b: u8) {
        self.0.push(b);
    }

    fn bytes_fixed(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    fn leb(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
}

/// A bounds-checked cursor: every read returns `None` past the end or on malformed data.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    fn u8(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    /// An unsigned LEB128 of at most 64 bits, canonical length (no more than 10 bytes,
    /// no bits beyond 64).
    fn leb(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return None;
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.leb()?).ok()
    }

    /// A count of elements that each take at least one more byte: never more than the
    /// bytes left, so a damaged count cannot make the decoder allocate much.
    fn count(&mut self) -> Option<usize> {
        let n = usize::try_from(self.leb()?).ok()?;
        (n <= self.bytes.len() - self.pos).then_some(n)
    }

    /// Succeeds only at the end of the input.
    fn finish(&self) -> Option<()> {
        (self.pos == self.bytes.len()).then_some(())
    }
}
