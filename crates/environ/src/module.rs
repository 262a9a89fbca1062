//! [`ModuleEnv`]: a parsed and validated module without its function bodies (spec §2.5).
//!
//! Index spaces follow the spec: in each of the function, table, memory and global
//! spaces, imports come first, then definitions. [`ModuleEnv::parse`] validates every
//! section with wasmparser's `Validator` and hands each function body back together with
//! its `FuncToValidate`, so the translator validates and translates a body in one pass.
//!
//! A reload reuses what it can of the module parsed before ([`ParseMemo`],
//! [`ModuleEnv::parse_reusing`]): when the bytes before the code section are the same
//! (with the same features), those sections are taken as parsed and validated then,
//! and the bodies validate against the same resources; the bodies within the longest
//! common prefix and suffix of the two code sections are found where the previous
//! module's were, shifted, without reading them, and flagged `unchanged`; a data section
//! with the same bytes in the same context, and a name section with the same bytes, are
//! taken as decoded then. None is validated again: the same bytes in the same context
//! are valid again.
//!
//! Invariant: a `ModuleEnv` only exists for a module whose sections (all but the bodies)
//! are valid; every index it stores is in range.

use crate::names::Names;
use crate::types::*;
use smallvec::SmallVec;
use std::ops::Range;
use wasmparser::{BinaryReader, FuncToValidate, FunctionBody, Payload, ValidPayload, Validator, ValidatorResources};

/// An error in a module's bytes: malformed or invalid, with the byte offset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset {offset:#x})")]
pub struct ModuleError {
    pub message: String,
    pub offset: u64,
}

impl From<wasmparser::BinaryReaderError> for ModuleError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        ModuleError { message: e.message().to_string(), offset: e.offset() }
    }
}

impl ModuleError {
    fn unsupported(what: UnsupportedType, offset: u64) -> Self {
        ModuleError { message: what.to_string(), offset }
    }
}

/// A function index in the module's function index space (imports first).
pub type FuncIndex = u32;

/// One instruction of a constant expression (spec §3.3.10), as Quickbeam evaluates it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConstOp {
    I32Const(i32),
    I64Const(i64),
    F32Const(u32),
    F64Const(u64),
    RefNull(RefType),
    RefFunc(FuncIndex),
    GlobalGet(u32),
    I32Add,
    I32Sub,
    I32Mul,
    I64Add,
    I64Sub,
    I64Mul,
}

/// A constant expression: a short stack program (almost always one instruction, kept
/// inline: a module can have a hundred thousand data segments, each with an offset).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConstExpr {
    pub ops: SmallVec<[ConstOp; 2]>,
}

impl ConstExpr {
    fn from_wasmparser(e: &wasmparser::ConstExpr<'_>) -> Result<ConstExpr, ModuleError> {
        let mut ops = SmallVec::new();
        let mut r = e.get_operators_reader();
        while !r.eof() {
            let offset = r.original_position();
            let op = r.read()?;
            use wasmparser::Operator as O;
            ops.push(match op {
                O::I32Const { value } => ConstOp::I32Const(value),
                O::I64Const { value } => ConstOp::I64Const(value),
                O::F32Const { value } => ConstOp::F32Const(value.bits()),
                O::F64Const { value } => ConstOp::F64Const(value.bits()),
                O::RefNull { hty } => ConstOp::RefNull(
                    RefType::from_wasmparser(wasmparser::RefType::new(true, hty).ok_or_else(|| {
                        ModuleError { message: "unsupported heap type".into(), offset }
                    })?)
                    .map_err(|u| ModuleError::unsupported(u, offset))?,
                ),
                O::RefFunc { function_index } => ConstOp::RefFunc(function_index),
                O::GlobalGet { global_index } => ConstOp::GlobalGet(global_index),
                O::I32Add => ConstOp::I32Add,
                O::I32Sub => ConstOp::I32Sub,
                O::I32Mul => ConstOp::I32Mul,
                O::I64Add => ConstOp::I64Add,
                O::I64Sub => ConstOp::I64Sub,
                O::I64Mul => ConstOp::I64Mul,
                O::End => break,
                other => {
                    return Err(ModuleError {
                        message: format!("unsupported constant instruction {other:?}"),
                        offset,
                    })
                }
            });
        }
        Ok(ConstExpr { ops })
    }
}

/// What an import provides (spec §2.5.11).
#[derive(Clone, Debug, PartialEq)]
pub enum EntityType {
    /// A function, by its type index.
    Func(u32),
    Table(TableType),
    Memory(MemoryType),
    Global(GlobalType),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    pub module: String,
    pub name: String,
    pub ty: EntityType,
}

/// What an export names (spec §2.5.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportKind {
    Func,
    Table,
    Memory,
    Global,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    pub name: String,
    pub kind: ExportKind,
    pub index: u32,
}

/// A defined global: its type and initializer.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalDef {
    pub ty: GlobalType,
    pub init: ConstExpr,
}

/// A defined table: its type and the initializer of every element (`ref.null` by default).
#[derive(Clone, Debug, PartialEq)]
pub struct TableDef {
    pub ty: TableType,
    pub init: Option<ConstExpr>,
}

/// How an element segment is used (spec §2.5.7).
#[derive(Clone, Debug, PartialEq)]
pub enum ElemMode {
    Passive,
    Active { table: u32, offset: ConstExpr },
    Declared,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ElemSegment {
    pub ty: RefType,
    pub mode: ElemMode,
    /// Every item as a constant expression (`ref.func i` for function-index lists).
    pub items: Vec<ConstExpr>,
}

/// How a data segment is used (spec §2.5.8).
#[derive(Clone, Debug, PartialEq)]
pub enum DataMode {
    Passive,
    Active { memory: u32, offset: ConstExpr },
}

#[derive(Clone, Debug, PartialEq)]
pub struct DataSegment {
    pub mode: DataMode,
    /// The segment's bytes, as a range of the data section's contents (which are at
    /// [`ModuleEnv::data_section`] in the module: see [`ModuleEnv::data_range`]).
    pub range: Range<usize>,
}

/// What the parse of a later module can reuse of this one's
/// ([`ModuleEnv::parse_reusing`]):
/// - its sections before the code section (`PrefixMemo`): with the same bytes up to
///   the code section and the same features, the same environment and validator
///   resources;
/// - its data section as decoded and validated: with the same section bytes and the
///   same memories, globals and features (all that validating a data segment depends
///   on, spec §3.4.7), the segments are the same and valid, and a module with 98,450
///   data segments (esbuild's) reloads without decoding and validating them again;
/// - its name section: with the same bytes, the same names (decoded at most once);
/// - where its bodies were: with the same prefix, a body in the common prefix or suffix
///   of the two code sections is the same body, found without reading or comparing it
///   body by body.
#[derive(Clone, Debug, Default)]
pub struct ParseMemo {
    /// The sections before the code section, if the module has one and functions.
    prefix: Option<PrefixMemo>,
    /// Where the section's contents were in their module's bytes.
    section: Range<usize>,
    memories: Vec<MemoryType>,
    globals: Vec<GlobalType>,
    num_imported_globals: u32,
    datas: std::sync::Arc<[DataSegment]>,
    names: std::sync::Arc<Names>,
    /// Where each defined function's body is in the module's bytes.
    bodies: Vec<Range<u32>>,
}

/// A module's sections before its code section, as parsed and validated: with the same
/// bytes up to the code section and the same features, a later module has the same
/// [`ModuleEnv`] but for what comes from the code section on, and its bodies validate
/// against the same resources (so the validator need not see those sections again).
#[derive(Clone, Debug)]
struct PrefixMemo {
    /// How many bytes come before the code section's header.
    len: usize,
    features: wasmparser::WasmFeatures,
    env: std::sync::Arc<ModuleEnv>,
    resources: ValidatorResources,
}

impl ParseMemo {
    /// The number of data segments.
    pub fn len(&self) -> usize {
        self.datas.len()
    }

    /// Where defined function `defined`'s body was in its module's bytes.
    pub fn body(&self, defined: usize) -> Option<Range<u32>> {
        self.bodies.get(defined).cloned()
    }

    /// The number of defined functions' bodies.
    pub fn bodies(&self) -> usize {
        self.bodies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.datas.is_empty()
    }
}

/// A parsed, validated module minus its code (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct ModuleEnv {
    /// The type section, in order (function types only).
    pub types: Vec<FuncType>,
    pub imports: Vec<Import>,
    /// The type index of every function, imports first.
    pub functions: Vec<u32>,
    pub num_imported_funcs: u32,
    /// Every table's type, imports first; `table_defs` has the defined ones' initializers.
    pub tables: Vec<TableType>,
    pub num_imported_tables: u32,
    pub table_defs: Vec<TableDef>,
    pub memories: Vec<MemoryType>,
    pub num_imported_memories: u32,
    /// Every global's type, imports first; `global_defs` has the defined ones.
    pub globals: Vec<GlobalType>,
    pub num_imported_globals: u32,
    pub global_defs: Vec<GlobalDef>,
    pub exports: Vec<Export>,
    pub start: Option<FuncIndex>,
    pub elems: Vec<ElemSegment>,
    /// The data segments (shared with the [`ParseMemo`] a later parse may reuse).
    pub datas: std::sync::Arc<[DataSegment]>,
    /// Where the data section's contents are in the module's bytes (empty if none).
    pub data_section: Range<usize>,
    /// Whether the module has a data count section: `memory.init` and `data.drop` are
    /// only valid with one (spec §3.4.10, §5.5.16).
    pub has_data_count: bool,
    /// How many of the module's first bytes hold everything the runtime reads from them
    /// (function bodies, data segments): up to the end of the code or data section,
    /// whichever is last. Custom sections after them (debug info, names, producers) are
    /// not needed.
    pub runtime_len: usize,
    /// How many bytes come before the code section's header (0: no code section).
    prefix_len: usize,
    /// Where the code section's entries (each body with its size, after the count)
    /// are in the module's bytes (empty if none).
    code_entries: Range<usize>,
    /// Whether the name section came before the code section.
    names_in_prefix: bool,
    /// The name section (custom section "name"), decoded on first use.
    pub names: std::sync::Arc<Names>,
    /// Every function that may be referenced by `ref.func` or a table (spec §3.4.10 C.refs).
    pub escaping_funcs: Vec<FuncIndex>,
}

/// The names of name section `c`: `previous`'s, if it had a name section with the same
/// bytes (decoded at most once), else read from `c`.
fn names_of(c: &wasmparser::CustomSectionReader<'_>, previous: Option<&ParseMemo>) -> std::sync::Arc<Names> {
    match previous.map(|memo| &memo.names).filter(|n| n.same_section(c.data())) {
        Some(names) => names.clone(),
        None => std::sync::Arc::new(Names::from_section(c.data(), c.data_offset())),
    }
}

/// Rejects a 32-bit memory's limits encoded in more than 5 LEB128 bytes (spec §5.2.2:
/// "integer representation too long"), which wasmparser reads as 64-bit values and
/// accepts (`binary-leb128.wast`). `section` is the memory section's contents, at
/// module offset `offset`.
fn check_memory_limits_encoding(section: &[u8], offset: u64) -> Result<(), ModuleError> {
    let mut r = wasmparser::BinaryReader::new(section, offset);
    for _ in 0..r.read_var_u32()? {
        let flags = r.read_u8()?;
        let limits = 1 + (flags & 1) as usize;
        for _ in 0..limits {
            if flags & 0x04 != 0 {
                r.read_var_u64()?;
            } else {
                r.read_var_u32()?;
            }
        }
        if flags & 0x08 != 0 {
            r.read_var_u32()?; // custom page size (log2)
        }
    }
    Ok(())
}

/// A function body awaiting translation, with what validates it.
pub struct FunctionInput<'a> {
    /// Its index in the function index space.
    pub index: FuncIndex,
    pub body: FunctionBody<'a>,
    pub validator: FuncToValidate<ValidatorResources>,
    /// Its bytes are those of the same function's body in the module whose
    /// [`ParseMemo`] the parse reused (found in a common prefix or suffix of the two
    /// code sections, without comparing the body).
    pub unchanged: bool,
}

/// The bodies of a code section whose entries are `new` (a range of `bytes`), read
/// with the help of the previous module's: `old` is that module's bytes, its code
/// section's entries and its bodies' ranges. The bodies within the longest common
/// prefix and suffix of the two sections' entries are the previous module's bodies,
/// found where they are now without reading them (`unchanged`); only the ones between
/// are read. `None` when that middle does not read as the bodies the count leaves for
/// it (the full parse then decides, and reports any error).
fn bodies_reusing<'a>(
    bytes: &'a [u8],
    new: Range<usize>,
    (old, old_entries, old_bodies): (&[u8], &Range<usize>, &[Range<u32>]),
    first: u32,
    input: impl Fn(u32, FunctionBody<'a>) -> FunctionInput<'a>,
) -> Option<Vec<FunctionInput<'a>>> {
    let (a, b) = (old.get(old_entries.clone())?, bytes.get(new.clone())?);
    let prefix = common_prefix(a, b);
    let suffix = common_suffix(&a[prefix..], &b[prefix..]);
    let (o, n) = (old_entries.start, new.start);
    // Old body `d`'s entry (its size, then its bytes) starts where `d - 1`'s ends.
    let entry_start = |d: usize| if d == 0 { o } else { old_bodies[d - 1].end as usize };
    let in_prefix = old_bodies.partition_point(|r| r.end as usize - o <= prefix);
    let in_suffix = (in_prefix..old_bodies.len()).find(|&d| entry_start(d) >= old_entries.end - suffix).unwrap_or(old_bodies.len());
    let body_at = |start: usize, end: usize| FunctionBody::new(BinaryReader::new(&bytes[start..end], start as u64));
    let mut bodies = Vec::with_capacity(old_bodies.len());
    for (d, r) in old_bodies[..in_prefix].iter().enumerate() {
        let (start, end) = (r.start as usize - o + n, r.end as usize - o + n);
        bodies.push(FunctionInput { unchanged: true, ..input(first + d as u32, body_at(start, end)) });
    }
    // The changed middle, read as the full parse would.
    let (from, to) = (entry_start(in_prefix) - o + n, new.end - (old_entries.end - entry_start(in_suffix)));
    let mut reader = BinaryReader::new(bytes.get(from..to)?, from as u64);
    for d in in_prefix..in_suffix {
        let body = reader.read_reader().ok()?;
        // wasmparser's limit on a body's size (its `limits` module is private).
        if body.range().end - body.range().start > 7_654_321 {
            return None;
        }
        bodies.push(input(first + d as u32, FunctionBody::new(body)));
    }
    if !reader.eof() {
        return None;
    }
    for (d, r) in old_bodies.iter().enumerate().skip(in_suffix) {
        let shift = |x: u32| x as usize - old_entries.end + new.end;
        bodies.push(FunctionInput { unchanged: true, ..input(first + d as u32, body_at(shift(r.start), shift(r.end))) });
    }
    Some(bodies)
}

/// How many bytes `a` and `b` have in common at their start.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 512;
    let whole = a.chunks(BLOCK).zip(b.chunks(BLOCK)).take_while(|(x, y)| x == y).count() * BLOCK;
    let whole = whole.min(a.len()).min(b.len());
    whole + a[whole..].iter().zip(&b[whole..]).take_while(|(x, y)| x == y).count()
}

/// How many bytes `a` and `b` have in common at their end.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 512;
    let whole = a.rchunks(BLOCK).zip(b.rchunks(BLOCK)).take_while(|(x, y)| x == y).count() * BLOCK;
    let whole = whole.min(a.len()).min(b.len());
    whole + a[..a.len() - whole].iter().rev().zip(b[..b.len() - whole].iter().rev()).take_while(|(x, y)| x == y).count()
}

impl ModuleEnv {
    /// Parses and validates `bytes` (all but the function bodies, which come back as
    /// [`FunctionInput`]s in order).
    ///
    /// # Errors
    /// A [`ModuleError`] with the byte offset of the first malformed or invalid part.
    pub fn parse(
        bytes: &[u8],
        features: wasmparser::WasmFeatures,
    ) -> Result<(ModuleEnv, Vec<FunctionInput<'_>>), ModuleError> {
        ModuleEnv::parse_reusing(bytes, features, None)
    }

    /// [`parse`](Self::parse), reusing `previous`, the data section of an earlier module
    /// (with that module's bytes) parsed with the same `features`, if this module's data
    /// section has the same bytes in the same context (see [`ParseMemo`]).
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn parse_reusing<'a>(
        bytes: &'a [u8],
        features: wasmparser::WasmFeatures,
        previous: Option<(&ParseMemo, &[u8])>,
    ) -> Result<(ModuleEnv, Vec<FunctionInput<'a>>), ModuleError> {
        if let Some(parsed) = previous.and_then(|(memo, old)| ModuleEnv::parse_after_prefix(bytes, features, memo, old)) {
            return parsed;
        }
        let mut validator = Validator::new_with_features(features);
        let mut env = ModuleEnv::default();
        let mut bodies = Vec::new();
        let mut next_defined_func = 0u32;
        let mut escaping = std::collections::BTreeSet::new();
        // The end of the last section (or of the header) so far.
        let mut end = 0;
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            let payload = payload?;
            if let Payload::CodeSectionStart { .. } = &payload {
                (env.prefix_len, env.names_in_prefix) = (end, env.names.has_section());
            }
            end = payload.as_section().map_or(end, |(_, r)| r.end as usize);
            if let Payload::Version { range, .. } = &payload {
                end = range.end as usize;
            }
            if let Payload::MemorySection(r) = &payload {
                let range = r.range();
                let section = bytes.get(range.start as usize..range.end as usize).unwrap_or_default();
                check_memory_limits_encoding(section, range.start)?;
            }
            if let Payload::CodeSectionStart { unchecked_range, size, .. } = &payload {
                // In bounds: the bodies are parsed from the bytes before this returns.
                env.runtime_len = env.runtime_len.max(unchecked_range.end as usize);
                env.code_entries = (unchecked_range.end - u64::from(*size)) as usize..unchecked_range.end as usize;
            }
            if let Payload::DataSection(r) = &payload {
                env.runtime_len = env.runtime_len.max(r.range().end as usize);
                let range = r.range();
                let contents = range.start as usize..range.end as usize;
                if let Some(datas) = previous.and_then(|(memo, old)| env.same_data_section(memo, old, &bytes[contents.clone()])) {
                    // Valid and decoded before, in the same context (see `ParseMemo`).
                    env.datas = datas;
                    env.data_section = contents;
                    continue;
                }
            }
            if let ValidPayload::Func(v, body) = validator.payload(&payload)? {
                let index = env.num_imported_funcs + next_defined_func;
                next_defined_func += 1;
                bodies.push(FunctionInput { index, body, validator: v, unchanged: false });
                continue;
            }
            env.section(payload, &mut escaping, previous.map(|(memo, _)| memo))?;
        }
        env.escaping_funcs = escaping.into_iter().collect();
        Ok((env, bodies))
    }

    /// The parse of a module whose bytes up to its code section are those of the
    /// module `memo` was made of (`old`): the sections before the code section are
    /// taken as parsed and validated then, not read again, and the bodies validate
    /// against that module's resources. `None` when the bytes differ, or when anything
    /// is not as the previous module had it (a body count, a section after the code
    /// that cannot be reused): the full parse then decides, and reports any error.
    fn parse_after_prefix<'a>(
        bytes: &'a [u8],
        features: wasmparser::WasmFeatures,
        memo: &ParseMemo,
        old: &[u8],
    ) -> Option<Result<(ModuleEnv, Vec<FunctionInput<'a>>), ModuleError>> {
        let p = memo.prefix.as_ref()?;
        let same = p.features == features && bytes.get(p.len) == Some(&10) && bytes.get(..p.len)? == old.get(..p.len)?;
        if !same {
            return None;
        }
        let mut env = ModuleEnv { datas: Default::default(), data_section: 0..0, runtime_len: 0, ..(*p.env).clone() };
        if !env.names_in_prefix {
            env.names = Default::default();
        }
        let first = env.num_imported_funcs;
        let defined = env.functions.len() - first as usize;
        let mut bodies = Vec::new();
        let mut parser = wasmparser::Parser::new(0);
        let mut at = 0;
        loop {
            let payload = match parser.parse(bytes.get(at..)?, true) {
                Ok(wasmparser::Chunk::Parsed { consumed, payload }) => {
                    at += consumed;
                    payload
                }
                Ok(wasmparser::Chunk::NeedMoreData(_)) => return None,
                Err(e) => return Some(Err(e.into())),
            };
            match payload {
                // The same bytes as the previous module's, valid there.
                Payload::Version { .. } => {}
                _ if payload.as_section().is_some_and(|(_, r)| r.end as usize <= p.len) => {}
                Payload::CodeSectionStart { count, unchecked_range, size } => {
                    if count as usize != defined || memo.bodies.len() != defined {
                        return None;
                    }
                    env.runtime_len = unchecked_range.end as usize;
                    env.code_entries = (unchecked_range.end - u64::from(size)) as usize..unchecked_range.end as usize;
                    let resources = &p.resources;
                    let input = |index: u32, body| {
                        let ty = env.functions[index as usize];
                        FunctionInput { index, body, validator: FuncToValidate { resources: resources.clone(), index, ty, features }, unchanged: false }
                    };
                    bodies = bodies_reusing(bytes, env.code_entries.clone(), (old, &p.env.code_entries, &memo.bodies), first, input)?;
                    parser.skip_section();
                    at += size as usize;
                }
                Payload::DataSection(r) => {
                    let contents = r.range().start as usize..r.range().end as usize;
                    env.datas = env.same_data_section(memo, old, &bytes[contents.clone()])?;
                    env.runtime_len = env.runtime_len.max(contents.end);
                    env.data_section = contents;
                }
                Payload::CustomSection(c) if c.name() == "name" && !env.names.has_section() => {
                    env.names = names_of(&c, Some(memo));
                }
                Payload::CustomSection(_) => {}
                Payload::End(_) if bodies.len() == defined => return Some(Ok((env, bodies))),
                _ => return None,
            }
        }
    }

    fn section(
        &mut self,
        payload: Payload<'_>,
        escaping: &mut std::collections::BTreeSet<u32>,
        previous: Option<&ParseMemo>,
    ) -> Result<(), ModuleError> {
        match payload {
            Payload::TypeSection(r) => {
                let offset = r.range().start;
                for ty in r.into_iter_err_on_gc_types() {
                    self.types.push(FuncType::from_wasmparser(&ty?).map_err(|u| ModuleError::unsupported(u, offset))?);
                }
            }
            Payload::ImportSection(r) => {
                for imp in r.into_imports_with_offsets() {
                    let (offset, imp) = imp?;
                    let bad = |u| ModuleError::unsupported(u, offset);
                    let ty = match imp.ty {
                        wasmparser::TypeRef::Func(t) | wasmparser::TypeRef::FuncExact(t) => {
                            self.functions.push(t);
                            self.num_imported_funcs += 1;
                            EntityType::Func(t)
                        }
                        wasmparser::TypeRef::Table(t) => {
                            let t = table_type(t).map_err(bad)?;
                            self.tables.push(t);
                            self.num_imported_tables += 1;
                            EntityType::Table(t)
                        }
                        wasmparser::TypeRef::Memory(m) => {
                            let m = memory_type(m);
                            self.memories.push(m);
                            self.num_imported_memories += 1;
                            EntityType::Memory(m)
                        }
                        wasmparser::TypeRef::Global(g) => {
                            let g = global_type(g).map_err(bad)?;
                            self.globals.push(g);
                            self.num_imported_globals += 1;
                            EntityType::Global(g)
                        }
                        wasmparser::TypeRef::Tag(_) => {
                            return Err(bad(UnsupportedType("tag")));
                        }
                    };
                    self.imports.push(Import { module: imp.module.into(), name: imp.name.into(), ty });
                }
            }
            Payload::FunctionSection(r) => {
                for t in r {
                    self.functions.push(t?);
                }
            }
            Payload::TableSection(r) => {
                let offset = r.range().start;
                for t in r {
                    let t = t?;
                    let ty = table_type(t.ty).map_err(|u| ModuleError::unsupported(u, offset))?;
                    let init = match t.init {
                        wasmparser::TableInit::RefNull => None,
                        wasmparser::TableInit::Expr(e) => Some(ConstExpr::from_wasmparser(&e)?),
                    };
                    self.tables.push(ty);
                    self.table_defs.push(TableDef { ty, init });
                }
            }
            Payload::MemorySection(r) => {
                for m in r {
                    self.memories.push(memory_type(m?));
                }
            }
            Payload::GlobalSection(r) => {
                let offset = r.range().start;
                for g in r {
                    let g = g?;
                    let ty = global_type(g.ty).map_err(|u| ModuleError::unsupported(u, offset))?;
                    let init = ConstExpr::from_wasmparser(&g.init_expr)?;
                    note_refs(&init, escaping);
                    self.globals.push(ty);
                    self.global_defs.push(GlobalDef { ty, init });
                }
            }
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e?;
                    let kind = match e.kind {
                        wasmparser::ExternalKind::Func | wasmparser::ExternalKind::FuncExact => {
                            escaping.insert(e.index);
                            ExportKind::Func
                        }
                        wasmparser::ExternalKind::Table => ExportKind::Table,
                        wasmparser::ExternalKind::Memory => ExportKind::Memory,
                        wasmparser::ExternalKind::Global => ExportKind::Global,
                        wasmparser::ExternalKind::Tag => {
                            return Err(ModuleError::unsupported(UnsupportedType("tag"), 0))
                        }
                    };
                    self.exports.push(Export { name: e.name.into(), kind, index: e.index });
                }
            }
            Payload::StartSection { func, .. } => self.start = Some(func),
            Payload::DataCountSection { .. } => self.has_data_count = true,
            Payload::ElementSection(r) => {
                let offset = r.range().start;
                for e in r {
                    let e = e?;
                    let mode = match e.kind {
                        wasmparser::ElementKind::Passive => ElemMode::Passive,
                        wasmparser::ElementKind::Declared => ElemMode::Declared,
                        wasmparser::ElementKind::Active { table_index, offset_expr } => ElemMode::Active {
                            table: table_index.unwrap_or(0),
                            offset: ConstExpr::from_wasmparser(&offset_expr)?,
                        },
                    };
                    let (ty, items) = match e.items {
                        wasmparser::ElementItems::Functions(fs) => {
                            let mut items = Vec::new();
                            for f in fs {
                                items.push(ConstExpr { ops: smallvec::smallvec![ConstOp::RefFunc(f?)] });
                            }
                            (RefType::FuncRef, items)
                        }
                        wasmparser::ElementItems::Expressions(ty, es) => {
                            let ty = RefType::from_wasmparser(ty).map_err(|u| ModuleError::unsupported(u, offset))?;
                            let mut items = Vec::new();
                            for x in es {
                                items.push(ConstExpr::from_wasmparser(&x?)?);
                            }
                            (ty, items)
                        }
                    };
                    for item in &items {
                        note_refs(item, escaping);
                    }
                    self.elems.push(ElemSegment { ty, mode, items });
                }
            }
            Payload::DataSection(r) => {
                let start = r.range().start as usize;
                self.data_section = start..r.range().end as usize;
                let mut datas = Vec::with_capacity(r.count() as usize);
                for d in r {
                    let d = d?;
                    let mode = match d.kind {
                        wasmparser::DataKind::Passive => DataMode::Passive,
                        wasmparser::DataKind::Active { memory_index, offset_expr } => DataMode::Active {
                            memory: memory_index,
                            offset: ConstExpr::from_wasmparser(&offset_expr)?,
                        },
                    };
                    let end = d.range.end as usize - start;
                    datas.push(DataSegment { mode, range: end - d.data.len()..end });
                }
                self.datas = datas.into();
            }
            // The first name section (a module has at most one, spec §7.4.1).
            Payload::CustomSection(c) if c.name() == "name" && !self.names.has_section() => {
                self.names = names_of(&c, previous);
            }
            _ => {}
        }
        Ok(())
    }

    /// Where data segment `index`'s bytes are in the module's bytes.
    pub fn data_range(&self, index: usize) -> Option<Range<usize>> {
        let r = &self.datas.get(index)?.range;
        Some(self.data_section.start + r.start..self.data_section.start + r.end)
    }

    /// What a later parse can reuse of this module ([`ParseMemo`]): this module's
    /// environment, the `features` it was parsed with, the resources its bodies
    /// validate against (any of its [`FunctionInput`]s' `validator.resources`), and
    /// where its bodies are (its inputs' `body.range()`, in order).
    pub fn parse_memo(
        self: &std::sync::Arc<Self>,
        features: wasmparser::WasmFeatures,
        resources: Option<ValidatorResources>,
        bodies: Vec<Range<u32>>,
    ) -> ParseMemo {
        let prefix = resources.filter(|_| self.prefix_len > 0).map(|resources| PrefixMemo {
            len: self.prefix_len,
            features,
            env: self.clone(),
            resources,
        });
        ParseMemo {
            prefix,
            section: self.data_section.clone(),
            memories: self.memories.clone(),
            globals: self.globals.clone(),
            num_imported_globals: self.num_imported_globals,
            datas: self.datas.clone(),
            names: self.names.clone(),
            bodies,
        }
    }

    /// `memo`'s segments, if `contents` (this module's data section) are the bytes of
    /// `memo`'s section (in `old`, its module's bytes) and this module so far has the
    /// memories and globals it had.
    fn same_data_section(&self, memo: &ParseMemo, old: &[u8], contents: &[u8]) -> Option<std::sync::Arc<[DataSegment]>> {
        let same = old.get(memo.section.clone()) == Some(contents)
            && memo.memories == self.memories
            && memo.globals == self.globals
            && memo.num_imported_globals == self.num_imported_globals;
        same.then(|| memo.datas.clone())
    }

    /// The type of function `index`.
    pub fn func_type(&self, index: FuncIndex) -> &FuncType {
        &self.types[self.functions[index as usize] as usize]
    }

    /// Whether function `index` is imported.
    pub fn is_imported_func(&self, index: FuncIndex) -> bool {
        index < self.num_imported_funcs
    }

    /// Number of functions defined (not imported) by the module.
    pub fn num_defined_funcs(&self) -> u32 {
        self.functions.len() as u32 - self.num_imported_funcs
    }

    /// The function's name from the name section, if any.
    pub fn func_name(&self, index: FuncIndex) -> Option<&str> {
        self.names.func(index)
    }

    /// Looks up an export by name.
    pub fn export(&self, name: &str) -> Option<&Export> {
        self.exports.iter().find(|e| e.name == name)
    }
}

fn note_refs(e: &ConstExpr, escaping: &mut std::collections::BTreeSet<u32>) {
    for op in &e.ops {
        if let ConstOp::RefFunc(f) = op {
            escaping.insert(*f);
        }
    }
}

fn table_type(t: wasmparser::TableType) -> Result<TableType, UnsupportedType> {
    if t.table64 {
        return Err(UnsupportedType("table64"));
    }
    Ok(TableType { element: RefType::from_wasmparser(t.element_type)?, minimum: t.initial, maximum: t.maximum })
}

fn memory_type(m: wasmparser::MemoryType) -> MemoryType {
    MemoryType { minimum: m.initial, maximum: m.maximum, memory64: m.memory64, shared: m.shared }
}

fn global_type(g: wasmparser::GlobalType) -> Result<GlobalType, UnsupportedType> {
    Ok(GlobalType { content: ValType::from_wasmparser(g.content_type)?, mutable: g.mutable })
}

/// The byte offset, relative to the body's start, of the `ordinal`-th operator of a
/// function body (`body` is the whole body: locals, then operators). Used to turn a
/// stencil's operator ordinals into module offsets for backtraces; `None` if the body is
/// malformed or shorter.
pub fn operator_offset(body: &[u8], ordinal: u32) -> Option<u32> {
    let fb = wasmparser::FunctionBody::new(wasmparser::BinaryReader::new(body, 0));
    let mut ops = fb.get_operators_reader().ok()?;
    for _ in 0..ordinal {
        ops.read().ok()?;
    }
    Some(ops.original_position() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn memo_of(wasm: &[u8]) -> ParseMemo {
        let features = crate::supported_features();
        let (env, inputs) = ModuleEnv::parse(wasm, features).unwrap();
        let resources = inputs.first().map(|i| i.validator.resources.clone());
        let bodies = inputs.iter().map(|i| i.body.range().start as u32..i.body.range().end as u32).collect();
        Arc::new(env).parse_memo(features, resources, bodies)
    }

    /// What a parse gives, in comparable form: the environment (but the name section's
    /// state) and each body's range, index and type.
    fn summary(parsed: &(ModuleEnv, Vec<FunctionInput<'_>>)) -> String {
        let (env, inputs) = parsed;
        let env = ModuleEnv { names: Default::default(), ..env.clone() };
        let mut names: Vec<_> = parsed.0.names.funcs().map(|(i, n)| (i, n.to_string())).collect();
        names.sort();
        let bodies: Vec<_> = inputs.iter().map(|i| (i.body.range(), i.index, i.validator.index, i.validator.ty)).collect();
        format!("{env:?} {names:?} {bodies:?}")
    }

    const BASE: &str = r#"(module $m (type (func (param i32) (result i32)))
        (import "env" "g" (global i32)) (memory 1) (global (mut i32) (i32.const 5))
        (func $a (export "a") (type 0) local.get 0 call $b)
        (func $b (type 0) local.get 0 global.get 1 i32.add)
        (data (i32.const 8) "hello") (data (global.get 0) "x"))"#;

    /// A module with the bytes of the previous one up to its code section is parsed
    /// without reading those sections again, to the same result as a full parse; its
    /// bodies validate against the previous module's resources.
    #[test]
    fn the_sections_before_the_code_are_reused_when_their_bytes_are_the_same() {
        let features = crate::supported_features();
        let base = wat::parse_str(BASE).unwrap();
        let memo = memo_of(&base);
        assert!(memo.prefix.is_some());
        // Code edited (longer), data the same.
        let edited = wat::parse_str(BASE.replace("global.get 1 i32.add", "global.get 1 i32.add i32.const 3 i32.mul")).unwrap();
        let fast = ModuleEnv::parse_after_prefix(&edited, features, &memo, &base).expect("taken the fast way").unwrap();
        assert_eq!(summary(&fast), summary(&ModuleEnv::parse(&edited, features).unwrap()));
        let (_, inputs) = fast;
        for input in inputs {
            let mut v = input.validator.into_validator(Default::default());
            v.validate(&input.body).unwrap();
        }
        // An invalid body is still found invalid (against the previous resources).
        let invalid = wat::parse_str(BASE.replace("global.get 1 i32.add", "global.get 1 i64.add")).unwrap_or_default();
        if !invalid.is_empty() {
            let (_, inputs) = ModuleEnv::parse_after_prefix(&invalid, features, &memo, &base).unwrap().unwrap();
            let errors = inputs.into_iter().filter(|i| {
                let v = FuncToValidate { resources: i.validator.resources.clone(), ..i.validator };
                v.into_validator(Default::default()).validate(&i.body).is_err()
            });
            assert_eq!(errors.count(), 1);
        }
    }

    /// Anything not as the previous module had it after the prefix takes the full parse:
    /// different bytes before the code, another data section, another body count.
    #[test]
    fn a_different_prefix_or_body_count_takes_the_full_parse() {
        let features = crate::supported_features();
        let base = wat::parse_str(BASE).unwrap();
        let memo = memo_of(&base);
        let other_prefix = wat::parse_str(BASE.replace("(i32.const 5)", "(i32.const 6)")).unwrap();
        assert!(ModuleEnv::parse_after_prefix(&other_prefix, features, &memo, &base).is_none());
        let other_data = wat::parse_str(BASE.replace("hello", "world")).unwrap();
        assert!(ModuleEnv::parse_after_prefix(&other_data, features, &memo, &base).is_none());
        // Both still parse in full, reusing what they can.
        assert!(ModuleEnv::parse_reusing(&other_data, features, Some((&memo, &base))).is_ok());
        // One body dropped from the code section (its count and size patched): the
        // function and code sections disagree, which only the full parse reports.
        let mut fewer = base.clone();
        let code = wasmparser::Parser::new(0)
            .parse_all(&base)
            .find_map(|p| match p.unwrap() {
                Payload::CodeSectionStart { unchecked_range, count, .. } => Some((unchecked_range, count)),
                _ => None,
            })
            .unwrap();
        assert_eq!(code.1, 2);
        let start = code.0.start as usize;
        fewer[start] = 1;
        assert!(ModuleEnv::parse_after_prefix(&fewer, features, &memo, &base).is_none_or(|r| r.is_err()));
        assert!(ModuleEnv::parse_reusing(&fewer, features, Some((&memo, &base))).is_err());
        // Other features.
        let fewer_features = features - wasmparser::WasmFeatures::BULK_MEMORY;
        assert!(ModuleEnv::parse_after_prefix(&base, fewer_features, &memo, &base).is_none());
    }

    /// The bodies in a common prefix and suffix of two code sections are found without
    /// reading them and flagged `unchanged`; only those between are read. Over edits of
    /// one to three of twenty bodies (longer, shorter, the same length, the first and
    /// the last), the parse equals a full one, an unchanged body has the bytes of the
    /// previous module's body at its index, and every body before the first edited and
    /// after the last is unchanged.
    #[test]
    fn bodies_outside_the_edited_ones_are_found_without_reading_them() {
        let features = crate::supported_features();
        // An edit appends instructions, or changes a constant (the same length).
        let module = |extra: &[&str; 20]| {
            let body = |i: usize| match extra[i] {
                "const" => format!("local.get 0 i32.const {} i32.add", 2000 + i),
                extra => format!("local.get 0 i32.const {} i32.add {extra}", 1000 + i),
            };
            let funcs: String = (0..20).map(|i| format!("(func (param i32) (result i32) {})\n", body(i))).collect();
            wat::parse_str(format!("(module {funcs} (memory 1) (data (i32.const 0) \"abc\"))")).unwrap()
        };
        let base = module(&[""; 20]);
        let (_, base_inputs) = ModuleEnv::parse(&base, features).unwrap();
        let memo = memo_of(&base);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let edits = ["i32.const 3 i32.mul", "drop i32.const 7", "i32.eqz", "i32.const 2 i32.add i32.const 9 i32.xor", "const"];
        for case in 0..200 {
            let mut extra = [""; 20];
            let mut edited: Vec<usize> = match case {
                0 => vec![],
                1 => vec![0],
                2 => vec![19],
                _ => (0..1 + next(3)).map(|_| next(20) as usize).collect(),
            };
            for &d in &edited {
                extra[d] = edits[next(edits.len() as u64) as usize];
            }
            edited.sort_unstable();
            let wasm = module(&extra);
            let fast = ModuleEnv::parse_after_prefix(&wasm, features, &memo, &base).expect("taken the fast way").unwrap();
            assert_eq!(summary(&fast), summary(&ModuleEnv::parse(&wasm, features).unwrap()), "edited {edited:?}");
            for (d, input) in fast.1.iter().enumerate() {
                let outside = edited.first().is_none_or(|&f| d < f) || edited.last().is_none_or(|&l| d > l);
                assert!(!outside || input.unchanged, "body {d} (edited {edited:?}) was read again");
                if input.unchanged {
                    assert_eq!(input.body.as_bytes(), base_inputs[d].body.as_bytes(), "body {d} (edited {edited:?})");
                }
            }
        }
    }
}
