//! [`ModuleEnv`]: a parsed and validated module without its function bodies (spec §2.5).
//!
//! Index spaces follow the spec: in each of the function, table, memory and global
//! spaces, imports come first, then definitions. [`ModuleEnv::parse`] validates every
//! section with wasmparser's `Validator` and hands each function body back together with
//! its `FuncToValidate`, so the translator validates and translates a body in one pass.
//!
//! A data section with the same bytes as one validated before, in the same context
//! ([`ParseMemo`], [`ModuleEnv::parse_reusing`]), is taken as it was decoded then, not
//! validated again.
//!
//! Invariant: a `ModuleEnv` only exists for a module whose sections (all but the bodies)
//! are valid; every index it stores is in range.

use crate::names::Names;
use crate::types::*;
use smallvec::SmallVec;
use std::ops::Range;
use wasmparser::{FuncToValidate, FunctionBody, Payload, ValidPayload, Validator, ValidatorResources};

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
/// - its data section as decoded and validated: with the same section bytes and the
///   same memories, globals and features (all that validating a data segment depends
///   on, spec §3.4.7), the segments are the same and valid, and a module with 98,450
///   data segments (esbuild's) reloads without decoding and validating them again;
/// - its name section: with the same bytes, the same names (decoded at most once).
#[derive(Clone, Debug, Default)]
pub struct ParseMemo {
    /// Where the section's contents were in their module's bytes.
    section: Range<usize>,
    memories: Vec<MemoryType>,
    globals: Vec<GlobalType>,
    num_imported_globals: u32,
    datas: std::sync::Arc<[DataSegment]>,
    names: std::sync::Arc<Names>,
}

impl ParseMemo {
    /// The number of data segments.
    pub fn len(&self) -> usize {
        self.datas.len()
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
    /// The name section (custom section "name"), decoded on first use.
    pub names: std::sync::Arc<Names>,
    /// Every function that may be referenced by `ref.func` or a table (spec §3.4.10 C.refs).
    pub escaping_funcs: Vec<FuncIndex>,
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
        let mut validator = Validator::new_with_features(features);
        let mut env = ModuleEnv::default();
        let mut bodies = Vec::new();
        let mut next_defined_func = 0u32;
        let mut escaping = std::collections::BTreeSet::new();
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            let payload = payload?;
            if let Payload::MemorySection(r) = &payload {
                let range = r.range();
                let section = bytes.get(range.start as usize..range.end as usize).unwrap_or_default();
                check_memory_limits_encoding(section, range.start)?;
            }
            if let Payload::CodeSectionStart { unchecked_range, .. } = &payload {
                // In bounds: the bodies are parsed from the bytes before this returns.
                env.runtime_len = env.runtime_len.max(unchecked_range.end as usize);
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
                bodies.push(FunctionInput { index, body, validator: v });
                continue;
            }
            env.section(payload, &mut escaping, previous.map(|(memo, _)| memo))?;
        }
        env.escaping_funcs = escaping.into_iter().collect();
        Ok((env, bodies))
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
                self.names = match previous.map(|memo| &memo.names).filter(|n| n.same_section(c.data())) {
                    Some(names) => names.clone(),
                    None => std::sync::Arc::new(Names::from_section(c.data(), c.data_offset())),
                };
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

    /// What a later parse can reuse of this module ([`ParseMemo`]).
    pub fn parse_memo(&self) -> ParseMemo {
        ParseMemo {
            section: self.data_section.clone(),
            memories: self.memories.clone(),
            globals: self.globals.clone(),
            num_imported_globals: self.num_imported_globals,
            datas: self.datas.clone(),
            names: self.names.clone(),
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
