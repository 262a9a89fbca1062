//! `quickbeam explain`: what Quickbeam made of each function, for people.
//!
//! For each defined function (or the one asked for):
//! - a header: index, name, type, exports, the exact and shape stencil keys (DESIGN.md
//!   §2.2), sizes;
//! - three columns, one row group per Wasm operator: the operator (module byte offset and
//!   text), the Microwasm it became, and the x86-64 code generated for it (offset in the
//!   function, instruction, and what finalize wrote there: constant sites, relocations,
//!   trap sites). Code comes from the module's finalized text, so immediates and
//!   VMContext offsets are the real ones;
//! - the constants table (k, value, guard, sites: offset and encoding) and the
//!   relocations (offset, kind, slot, and what the slot stands for in this module).
//!
//! How the columns line up: the translator announces each Wasm operator to its sink
//! (`Visitor::set_srcloc`) before the operator's Microwasm, and the backend records the
//! code offset at each announcement in the stencil's `srclocs` (by announcement
//! ordinal). A recording sink sees the same announcements, so announcement `n` is the
//! same operator on both sides. Local declarations are announced too; they show as
//! `(local ...)` rows.
//!
//! Keys are computed as the default engine computes them (its settings fingerprint).
//! Nothing here reads or writes the persistent cache.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use iced_x86::{
    Decoder, DecoderOptions, Formatter as _, Instruction, IntelFormatter, Mnemonic, SymbolResolver, SymbolResult,
};
use quickbeam_codegen::{CompiledFunction, FunctionCompiler, Guard, RelocKind, SiteEncoding, Stencil};
use quickbeam_environ::key::{exact_key, module_context_hash, EngineFingerprint, Fingerprinter};
use quickbeam_environ::{supported_features, ExportKind, FunctionParameters, ModuleEnv};
use quickbeam_microwasm::{ConstValue, Op, Translator};

/// Width of the Wasm column.
const WASM_COLUMN: usize = 34;
/// Width of the Microwasm column.
const MICROWASM_COLUMN: usize = 30;
/// Code is laid out at this alignment in a module's text (as `Module::text` documents).
const FUNCTION_ALIGN: usize = 16;

/// Explains the module in `path`: every defined function, or only `func` (an index in
/// the function index space, a name of the name section with or without `$`, or an
/// export name).
///
/// # Errors
/// `failed to read/parse/compile `FILE``, as `run`, and an unknown or imported `func`.
pub fn explain(path: &Path, func: Option<&str>) -> Result<String> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("failed to read `{shown}`"))?;
    let wasm = crate::wat_to_wasm(&shown, &bytes).with_context(|| format!("failed to parse `{shown}`"))?;
    explain_wasm(&wasm, func).with_context(|| format!("failed to explain `{shown}`"))
}

/// [`explain`] of a module's binary.
///
/// # Errors
/// As [`explain`].
pub fn explain_wasm(wasm: &[u8], func: Option<&str>) -> Result<String> {
    let features = supported_features();
    let (env, inputs) = ModuleEnv::parse(wasm, features).map_err(|e| anyhow!("failed to compile: {e}"))?;
    let selected: Vec<u32> = match func {
        Some(which) => vec![select(&env, which)?],
        None => (env.num_imported_funcs..env.functions.len() as u32).collect(),
    };

    // Every function is compiled, selected or not: the layout of the text depends on
    // all of their sizes.
    let mut compiler = FunctionCompiler::new();
    let mut compiled = Vec::with_capacity(inputs.len());
    for input in inputs {
        let index = input.index;
        let f = compiler
            .compile(&env, input)
            .map_err(|e| anyhow!("failed to compile function {index}{}: {e}", name_suffix(&env, index)))?;
        compiled.push(f);
    }
    let text = finalized_text(wasm, &compiled);

    let engine_fp = EngineFingerprint(quickbeam::Engine::new(&quickbeam::Config::new())?.cache_fingerprint());
    let module_ctx = module_context_hash(&env);
    let printed = print_operators(wasm);
    let mut fingerprinter = Fingerprinter::new();
    let mut translator = Translator::new();

    let (_, inputs) = ModuleEnv::parse(wasm, features).map_err(|e| anyhow!("failed to compile: {e}"))?;
    let mut out = String::new();
    if selected.is_empty() {
        out.push_str(";; the module defines no functions\n");
    }
    for input in inputs {
        let index = input.index;
        if !selected.contains(&index) {
            continue;
        }
        let defined = (index - env.num_imported_funcs) as usize;
        let f = &compiled[defined];
        let body = input.body.clone();
        let exact = exact_key(engine_fp.as_bytes(), &module_ctx, env.func_type(index), body.as_bytes());
        let shape = fingerprinter
            .fingerprint(&env, engine_fp.as_bytes(), index, &body)
            .map(|fp| fp.shape.to_string())
            .unwrap_or_else(|e| format!("none ({e})"));
        let mut rec = Marked::default();
        translator
            .translate(&env, input, &mut rec)
            .map_err(|e| anyhow!("failed to translate function {index}{}: {e}", name_suffix(&env, index)))?;
        let code = match &text {
            Some((text, offsets)) => {
                let start = offsets[defined] as usize;
                Code { bytes: &text[start..start + f.stencil.code.len()], finalized: true }
            }
            None => Code { bytes: &f.stencil.code, finalized: false },
        };
        let cx = FunctionView { env: &env, wasm, index, body: &body, f, rec: &rec, code, printed: &printed };
        if !out.is_empty() {
            out.push('\n');
        }
        cx.header(&mut out, &exact.to_string(), &shape);
        cx.columns(&mut out);
        cx.constants(&mut out);
        cx.relocations(&mut out);
    }
    Ok(out)
}

/// The function `which` names.
fn select(env: &ModuleEnv, which: &str) -> Result<u32> {
    let count = env.functions.len() as u32;
    let index = if let Ok(n) = which.parse::<u32>() {
        if n >= count {
            bail!("there is no function {n}: the module has {count} (imports included)");
        }
        n
    } else {
        let name = which.strip_prefix('$').unwrap_or(which);
        let mut by_name: Vec<u32> =
            env.names.funcs().filter(|&(_, n)| n == name).map(|(i, _)| i).collect();
        by_name.sort_unstable();
        match by_name.first() {
            Some(&i) => i,
            None => {
                env.exports.iter().find(|e| e.kind == ExportKind::Func && e.name == which).map(|e| e.index).ok_or_else(
                    || anyhow!("there is no function named `{which}` (in the name section or the exports)"),
                )?
            }
        }
    };
    if env.is_imported_func(index) {
        bail!("function {index}{} is imported: it has no code", name_suffix(env, index));
    }
    Ok(index)
}

/// `` (`name`)`` if the function has a name, else nothing.
fn name_suffix(env: &ModuleEnv, index: u32) -> String {
    env.func_name(index).map(|n| format!(" (`{n}`)")).unwrap_or_default()
}

/// The module's finalized text and each defined function's offset in it, if it
/// compiles as `compiled` (same sizes) in a fresh engine.
fn finalized_text(wasm: &[u8], compiled: &[CompiledFunction]) -> Option<(Vec<u8>, Vec<u32>)> {
    let mut config = quickbeam::Config::new();
    config.cache_store(None);
    let engine = quickbeam::Engine::new(&config).ok()?;
    let module = quickbeam::Module::new(&engine, wasm).ok()?;
    let text = module.text();
    let mut offsets = Vec::with_capacity(compiled.len());
    let mut size = 0usize;
    for f in compiled {
        size = size.next_multiple_of(FUNCTION_ALIGN);
        offsets.push(u32::try_from(size).ok()?);
        size += f.stencil.code.len();
    }
    (size == text.len()).then(|| (text.to_vec(), offsets))
}

/// Each line of the module's text format that starts at a known byte offset, by offset
/// (the first line for each offset). Empty if the printer fails.
fn print_operators(wasm: &[u8]) -> HashMap<u64, String> {
    let mut storage = String::new();
    let mut map = HashMap::new();
    if let Ok(lines) = wasmprinter::Config::new().offsets_and_lines(wasm, &mut storage) {
        for (offset, line) in lines {
            let line = line.trim();
            if let Some(offset) = offset {
                if !line.is_empty() && line != ")" {
                    map.entry(offset).or_insert_with(|| line.to_string());
                }
            }
        }
    }
    map
}

/// Records Microwasm, and where each announced Wasm operator's Microwasm starts.
#[derive(Default)]
struct Marked {
    ops: Vec<Op>,
    /// Per announcement: the operator's byte offset relative to the body, and the
    /// number of operators recorded before it.
    marks: Vec<(u32, usize)>,
}

mod visitor {
    //! [`super::Marked`]'s visitor, generated from the Microwasm operator table.
    #![allow(unused_imports)]
    use quickbeam_environ::*;
    use quickbeam_microwasm::*;

    macro_rules! record_each_op {
        ($( $op:ident $({ $($field:ident : $ty:ty),* })? = $visit:ident $text:literal; )*) => {
            impl Visitor for super::Marked {
                fn set_srcloc(&mut self, rel_offset: u32) {
                    self.marks.push((rel_offset, self.ops.len()));
                }
                $( fn $visit(&mut self $($(, $field: $ty)*)?) -> Result<(), CompileError> {
                    self.ops.push(Op::$op $({ $($field),* })?);
                    Ok(())
                } )*
            }
        };
    }
    quickbeam_microwasm::for_each_microwasm_op!(record_each_op);
}

/// Names the targets of calls to other functions (by address, as decoded).
struct Callees(HashMap<u64, String>);

impl SymbolResolver for Callees {
    fn symbol(
        &mut self,
        instruction: &Instruction,
        _operand: u32,
        _instruction_operand: Option<u32>,
        address: u64,
        _address_size: u32,
    ) -> Option<SymbolResult<'_>> {
        if instruction.mnemonic() != Mnemonic::Call {
            return None;
        }
        self.0.get(&address).map(|name| SymbolResult::with_str(address, name))
    }
}

/// A function's machine code: finalized (from the module's text) or, if the text could
/// not be laid out, the stencil's (zeros at every site).
struct Code<'a> {
    bytes: &'a [u8],
    finalized: bool,
}

/// Everything known about one function.
struct FunctionView<'a> {
    env: &'a ModuleEnv,
    wasm: &'a [u8],
    index: u32,
    body: &'a wasmparser::FunctionBody<'a>,
    f: &'a CompiledFunction,
    rec: &'a Marked,
    code: Code<'a>,
    printed: &'a HashMap<u64, String>,
}

impl FunctionView<'_> {
    fn stencil(&self) -> &Stencil {
        &self.f.stencil
    }

    fn header(&self, out: &mut String, exact: &str, shape: &str) {
        let env = self.env;
        let name = env.func_name(self.index).map(|n| format!(" ${n}")).unwrap_or_default();
        let _ = writeln!(out, ";; function {}{name} {}", self.index, env.func_type(self.index));
        let exports: Vec<String> = env
            .exports
            .iter()
            .filter(|e| e.kind == ExportKind::Func && e.index == self.index)
            .map(|e| format!("{:?}", e.name))
            .collect();
        if !exports.is_empty() {
            let _ = writeln!(out, ";;   exported as {}", exports.join(", "));
        }
        let _ = writeln!(out, ";;   exact key  {exact}");
        let _ = writeln!(out, ";;   shape key  {shape}");
        let range = self.body.range();
        let s = self.stencil();
        let _ = writeln!(
            out,
            ";;   body at {:#x}, {} bytes; code {} bytes{}; {}, {}, {}",
            range.start,
            range.end - range.start,
            s.code.len(),
            if self.code.finalized { "" } else { " (stencil: sites hold zeros)" },
            plural(s.guards.len(), "constant"),
            plural(s.relocs.len(), "relocation"),
            plural(s.trap_sites.len(), "trap site"),
        );
    }

    /// The three columns, one row group per announced Wasm operator.
    fn columns(&self, out: &mut String) {
        let marks = &self.rec.marks;
        let ops = &self.rec.ops;
        // Group g + 1 is announcement g; group 0 is what comes before the first one
        // (the prologue).
        let groups = marks.len() + 1;
        let mut wasm_cells: Vec<Vec<String>> = vec![Vec::new(); groups];
        let mut mw_cells: Vec<Vec<String>> = vec![Vec::new(); groups];

        wasm_cells[0].push("(prologue)".to_string());
        let locals = self.locals_text();
        let body_start = self.body.range().start;
        // Local declarations are not operators: their zeroing is part of the prologue.
        let mut decls: Vec<_> = locals.iter().collect();
        decls.sort();
        for (&rel, text) in decls {
            wasm_cells[0].push(format!("{:#06x}  {text}", body_start + u64::from(rel)));
        }
        for (g, &(rel, first_op)) in marks.iter().enumerate() {
            let abs = body_start + u64::from(rel);
            let text = locals.get(&rel).cloned().unwrap_or_else(|| self.operator_text(abs));
            wasm_cells[g + 1].push(format!("{abs:#06x}  {text}"));
            let end = marks.get(g + 1).map_or(ops.len(), |m| m.1);
            mw_cells[g + 1].extend(ops[first_op..end].iter().map(microwasm_text));
        }
        let first = marks.first().map_or(ops.len(), |m| m.1);
        mw_cells[0].extend(ops[..first].iter().map(microwasm_text));

        // Code whose operator comes before that of the code above it was emitted out of
        // line (trap stubs, at the end of the function): it gets a group of its own.
        let srclocs = &self.stencil().srclocs;
        let mut in_order = Vec::with_capacity(srclocs.len());
        let mut latest = 0;
        for &(_, ordinal) in srclocs {
            in_order.push(ordinal >= latest);
            latest = latest.max(ordinal);
        }
        let out_of_line = groups;
        let mut x86_cells: Vec<Vec<String>> = vec![Vec::new(); groups + 1];
        for (offset, line) in self.disassemble() {
            let i = srclocs.partition_point(|s| s.0 <= offset);
            let group = match i.checked_sub(1) {
                Some(i) if !in_order[i] => out_of_line,
                Some(i) => (srclocs[i].1 as usize + 1).min(groups - 1),
                None => 0,
            };
            x86_cells[group].push(line);
        }
        wasm_cells.push(vec!["(out of line)".to_string()]);
        mw_cells.push(Vec::new());

        let _ = writeln!(out, ";;");
        row(out, [";; wasm", "microwasm", "x86-64"]);
        for g in 0..=groups {
            if (g == 0 || g == out_of_line) && x86_cells[g].is_empty() && mw_cells[g].is_empty() {
                continue;
            }
            let n = wasm_cells[g].len().max(mw_cells[g].len()).max(x86_cells[g].len());
            for r in 0..n {
                let cell = |c: &Vec<String>| c.get(r).cloned().unwrap_or_default();
                row(out, [&cell(&wasm_cells[g]), &cell(&mw_cells[g]), &cell(&x86_cells[g])]);
            }
        }
    }

    /// `(local N × type)` for each local declaration, by offset relative to the body.
    fn locals_text(&self) -> HashMap<u32, String> {
        let mut map = HashMap::new();
        let start = self.body.range().start;
        if let Ok(mut reader) = self.body.get_locals_reader() {
            for _ in 0..reader.get_count() {
                let at = reader.original_position();
                let Ok((count, ty)) = reader.read() else { break };
                let ty = match quickbeam_environ::ValType::from_wasmparser(ty) {
                    Ok(t) => t.to_string(),
                    Err(_) => format!("{ty:?}"),
                };
                map.insert((at - start) as u32, format!("(local {count} × {ty})"));
            }
        }
        map
    }

    /// The text of the Wasm operator at module offset `abs`.
    fn operator_text(&self, abs: u64) -> String {
        if let Some(text) = self.printed.get(&abs) {
            return text.clone();
        }
        let Some(rest) = self.wasm.get(abs as usize..) else { return "?".to_string() };
        let reader = wasmparser::BinaryReader::new(rest, abs);
        let mut ops = wasmparser::OperatorsReader::new(reader);
        match ops.read() {
            Ok(wasmparser::Operator::End) => "end".to_string(),
            Ok(op) => format!("{op:?}"),
            Err(_) => "?".to_string(),
        }
    }

    /// One line per instruction (`offset  instruction  ; notes`), with its offset. Calls
    /// to other functions show the callee's name as their target.
    fn disassemble(&self) -> Vec<(u32, String)> {
        let s = self.stencil();
        let decoder = || Decoder::with_ip(64, self.code.bytes, 0, DecoderOptions::NONE);
        let calls: BTreeMap<u32, RelocKind> =
            s.relocs.iter().filter(|r| matches!(r.kind, RelocKind::CallRel32(_))).map(|r| (r.offset, r.kind)).collect();
        let mut callees = HashMap::new();
        for ins in decoder().iter().filter(|i| i.mnemonic() == Mnemonic::Call) {
            let start = ins.ip() as u32;
            let end = start + ins.len() as u32;
            for (_, kind) in calls.range(start..end) {
                if let RelocKind::CallRel32(f) = *kind {
                    let callee = match self.f.params.funcs.get(f.index()) {
                        Some(&i) => self.env.func_name(i).map_or_else(|| format!("func {i}"), |n| format!("${n}")),
                        None => continue,
                    };
                    callees.insert(ins.near_branch_target(), callee);
                }
            }
        }
        let mut fmt = IntelFormatter::with_options(Some(Box::new(Callees(callees))), None);
        fmt.options_mut().set_hex_prefix("0x");
        fmt.options_mut().set_hex_suffix("");
        fmt.options_mut().set_uppercase_hex(false);
        fmt.options_mut().set_branch_leading_zeros(false);
        fmt.options_mut().set_space_after_operand_separator(true);
        // What finalize wrote, and what may trap, by code offset.
        let mut notes: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for site in &s.const_sites {
            notes.entry(site.offset).or_default().push(format!("#{}", site.k.0));
        }
        for r in &s.relocs {
            let (kind, slot, _) = reloc_parts(r.kind);
            notes.entry(r.offset).or_default().push(format!("{kind} {slot} = {}", self.slot_short(r.kind)));
        }
        for t in &s.trap_sites {
            notes.entry(t.offset).or_default().push(format!("trap: {}", t.code.message()));
        }
        let mut lines = Vec::new();
        let mut text = String::new();
        for ins in decoder().iter() {
            let start = ins.ip() as u32;
            let end = start + ins.len() as u32;
            text.clear();
            fmt.format(&ins, &mut text);
            let mut line = format!("{start:04x}  {text}");
            let mut first = true;
            for note in notes.range(start..end).flat_map(|(_, n)| n) {
                line.push_str(if first { "  ; " } else { ", " });
                line.push_str(note);
                first = false;
            }
            lines.push((start, line));
        }
        lines
    }

    fn constants(&self, out: &mut String) {
        let s = self.stencil();
        let consts = &self.f.consts;
        if consts.is_empty() {
            return;
        }
        // What each constant is, from the Microwasm that uses it.
        let mut what: HashMap<u32, String> = HashMap::new();
        for op in &self.rec.ops {
            if let Op::Const { k, value } = op {
                what.entry(k.0).or_insert_with(|| const_value_text(value));
            } else if let Some((offset, k)) = memarg_of(op) {
                what.entry(k).or_insert_with(|| format!("offset {offset} ({})", op.name()));
            }
        }
        let mut sites_of: Vec<Vec<String>> = vec![Vec::new(); consts.len()];
        for c in &s.const_sites {
            if let Some(sites) = sites_of.get_mut(c.k.index()) {
                sites.push(format!("{:04x} {}", c.offset, encoding_text(c.encoding)));
            }
        }
        let _ = writeln!(out, ";;\n;; constants (#k  value  guard  sites):");
        for (k, (bits, sites)) in consts.iter().zip(sites_of).enumerate() {
            let value = what.get(&(k as u32)).cloned().unwrap_or_else(|| format!("{bits:#x} (in unreachable code)"));
            let guard = s.guards.get(k).copied();
            let sites = match guard {
                _ if !sites.is_empty() => sites.join(", "),
                Some(Guard::Exact(_)) => "none: the value is part of the code".to_string(),
                _ => "none: the code does not use the value".to_string(),
            };
            let guard = guard.map_or_else(|| "?".to_string(), guard_text);
            let _ = writeln!(out, ";;   #{k:<3} {value:<24} {guard:<28} {sites}");
        }
    }

    fn relocations(&self, out: &mut String) {
        let s = self.stencil();
        if s.relocs.is_empty() {
            return;
        }
        let _ = writeln!(out, ";;\n;; relocations (offset  kind  slot = what it stands for in this module):");
        for r in &s.relocs {
            let (kind, slot, _) = reloc_parts(r.kind);
            let _ = writeln!(out, ";;   {:04x}  {kind:<16} {slot:<8} = {}", r.offset, self.slot_long(r.kind));
        }
    }

    /// What a relocation's slot stands for, briefly (`func 2 $pick`, `global 1`).
    fn slot_short(&self, kind: RelocKind) -> String {
        let (_, _, target) = reloc_parts(kind);
        match resolve(&self.f.params, target) {
            None => "?".to_string(),
            Some(i) => match target {
                Target::Func(_) => {
                    let name = self.env.func_name(i).map(|n| format!(" ${n}")).unwrap_or_default();
                    format!("func {i}{name}")
                }
                other => format!("{} {i}", other.noun()),
            },
        }
    }

    /// What a relocation's slot stands for, with its type.
    fn slot_long(&self, kind: RelocKind) -> String {
        let (_, _, target) = reloc_parts(kind);
        let env = self.env;
        let Some(i) = resolve(&self.f.params, target) else {
            return "? (the parameters have no such slot)".to_string();
        };
        let iu = i as usize;
        match target {
            Target::Func(_) => {
                let name = env.func_name(i).map(|n| format!(" ${n}")).unwrap_or_default();
                let imported = if env.is_imported_func(i) { ", imported" } else { "" };
                let ty = env.functions.get(iu).and_then(|&t| env.types.get(t as usize));
                let ty = ty.map(|t| format!(" {t}")).unwrap_or_default();
                format!("function {i}{name}{ty}{imported}")
            }
            Target::Global(_) => match env.globals.get(iu) {
                Some(g) => format!("global {i} ({}{})", if g.mutable { "mut " } else { "" }, g.content),
                None => format!("global {i}"),
            },
            Target::Table(_) => match env.tables.get(iu) {
                Some(t) => format!("table {i} ({})", quickbeam_environ::ValType::from(t.element)),
                None => format!("table {i}"),
            },
            Target::Memory(_) => format!("memory {i}"),
            Target::Type(_) => match env.types.get(iu) {
                Some(t) => format!("type {i} {t}"),
                None => format!("type {i}"),
            },
            Target::Data(_) => format!("data segment {i}"),
            Target::Elem(_) => format!("element segment {i}"),
        }
    }
}

/// A relocation's slot, by kind of module entity.
#[derive(Clone, Copy)]
enum Target {
    Func(usize),
    Global(usize),
    Table(usize),
    Memory(usize),
    Type(usize),
    Data(usize),
    Elem(usize),
}

impl Target {
    fn noun(self) -> &'static str {
        match self {
            Target::Func(_) => "func",
            Target::Global(_) => "global",
            Target::Table(_) => "table",
            Target::Memory(_) => "memory",
            Target::Type(_) => "type",
            Target::Data(_) => "data",
            Target::Elem(_) => "elem",
        }
    }
}

/// The module index a slot stands for.
fn resolve(p: &FunctionParameters, t: Target) -> Option<u32> {
    let (v, i) = match t {
        Target::Func(i) => (&p.funcs, i),
        Target::Global(i) => (&p.globals, i),
        Target::Table(i) => (&p.tables, i),
        Target::Memory(i) => (&p.memories, i),
        Target::Type(i) => (&p.types, i),
        Target::Data(i) => (&p.datas, i),
        Target::Elem(i) => (&p.elems, i),
    };
    v.get(i).copied()
}

/// A relocation's kind (as text), its slot (as Microwasm prints it) and its target.
fn reloc_parts(kind: RelocKind) -> (&'static str, String, Target) {
    use RelocKind as K;
    match kind {
        K::CallRel32(f) => ("call rel32", format!("func{}", f.0), Target::Func(f.index())),
        K::FuncRefOffset(f) => ("funcref offset", format!("func{}", f.0), Target::Func(f.index())),
        K::TableOffset(t) => ("table offset", format!("table{}", t.0), Target::Table(t.index())),
        K::MemoryOffset(m) => ("memory offset", format!("mem{}", m.0), Target::Memory(m.index())),
        K::GlobalOffset(g) => ("global offset", format!("global{}", g.0), Target::Global(g.index())),
        K::TypeIdOffset(t) => ("signature id offset", format!("type{}", t.0), Target::Type(t.index())),
        K::FuncIndex(f) => ("func index", format!("func{}", f.0), Target::Func(f.index())),
        K::TableIndex(t) => ("table index", format!("table{}", t.0), Target::Table(t.index())),
        K::MemoryIndex(m) => ("memory index", format!("mem{}", m.0), Target::Memory(m.index())),
        K::DataIndex(d) => ("data index", format!("data{}", d.0), Target::Data(d.index())),
        K::ElemIndex(e) => ("elem index", format!("elem{}", e.0), Target::Elem(e.index())),
    }
}

/// A Microwasm operator as `print_ops` prints it: labels flush left, others indented.
fn microwasm_text(op: &Op) -> String {
    match op {
        Op::Bind { label } => format!("L{}:", label.0),
        _ => format!("  {op}"),
    }
}

/// The static offset and constant index of a memory access.
fn memarg_of(op: &Op) -> Option<(u64, u32)> {
    use Op::*;
    match op {
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
        | I64Store32 { memarg } => Some((memarg.offset, memarg.k.0)),
        _ => None,
    }
}

fn const_value_text(v: &ConstValue) -> String {
    match *v {
        ConstValue::I32(x) => format!("i32 {x}"),
        ConstValue::I64(x) => format!("i64 {x}"),
        ConstValue::F32(b) => format!("f32 {} ({b:#x})", f32::from_bits(b)),
        ConstValue::F64(b) => format!("f64 {} ({b:#x})", f64::from_bits(b)),
    }
}

fn guard_text(g: Guard) -> String {
    match g {
        Guard::Any => "any".to_string(),
        Guard::Range { lo, hi } => format!("{lo}..={hi}"),
        Guard::Exact(v) => format!("exactly {v:#x}"),
    }
}

fn encoding_text(e: SiteEncoding) -> &'static str {
    match e {
        SiteEncoding::Imm32 => "imm32",
        SiteEncoding::Imm32Neg => "imm32 negated",
        SiteEncoding::Imm64 => "imm64",
        SiteEncoding::Imm8Masked(31) => "imm8 & 31",
        SiteEncoding::Imm8Masked(_) => "imm8 & 63",
    }
}

/// `1 thing`, `2 things`.
fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// One row of the three columns. A cell too wide for its column ends the line; the
/// cells after it continue on the next, in their own columns.
fn row(out: &mut String, cells: [&str; 3]) {
    let starts = [0, WASM_COLUMN, WASM_COLUMN + MICROWASM_COLUMN];
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if cell.is_empty() {
            continue;
        }
        let width = line.chars().count();
        if width > starts[i] || (width == starts[i] && width > 0 && !line.ends_with(' ')) {
            out.push_str(line.trim_end());
            out.push('\n');
            line.clear();
        }
        let width = line.chars().count();
        line.extend(std::iter::repeat_n(' ', starts[i] - width));
        line.push_str(cell);
        line.push(' ');
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_wrap_wide_cells() {
        let mut s = String::new();
        row(&mut s, ["a", "b", "c"]);
        row(&mut s, [&"w".repeat(WASM_COLUMN), "m", "x"]);
        row(&mut s, ["", "", "x"]);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], format!("a{}b{}c", " ".repeat(WASM_COLUMN - 1), " ".repeat(MICROWASM_COLUMN - 1)));
        assert_eq!(lines[1], "w".repeat(WASM_COLUMN));
        assert_eq!(lines[2], format!("{}m{}x", " ".repeat(WASM_COLUMN), " ".repeat(MICROWASM_COLUMN - 1)));
        assert_eq!(lines[3], format!("{}x", " ".repeat(WASM_COLUMN + MICROWASM_COLUMN)));
    }

    #[test]
    fn explains_one_function() {
        let wasm = wat::parse_str(
            r#"(module
                (global $g (mut i32) (i32.const 0))
                (func $helper (param i32) (result i32) local.get 0 i32.const 7 i32.add)
                (func $main (export "main") (result i32)
                  (local i64)
                  i32.const 35 call $helper global.get $g i32.add))"#,
        )
        .unwrap();
        let text = explain_wasm(&wasm, Some("main")).unwrap();
        assert!(text.starts_with(";; function 1 $main (func (result i32))\n"), "{text}");
        assert!(text.contains(";;   exported as \"main\"\n"), "{text}");
        assert!(text.contains("(local 1 × i64)"), "{text}");
        assert!(text.contains("call $helper"), "{text}");
        assert!(text.contains("= function 0 $helper (func (param i32) (result i32))"), "{text}");
        assert!(text.contains("= global 0 (mut i32)"), "{text}");
        assert!(text.contains("#0   i32 35"), "{text}");
        assert_eq!(explain_wasm(&wasm, Some("0")).unwrap(), explain_wasm(&wasm, Some("$helper")).unwrap());
        let all = explain_wasm(&wasm, None).unwrap();
        assert_eq!(all.matches(";; function ").count(), 2);
        assert!(explain_wasm(&wasm, Some("nope")).is_err());
        assert!(explain_wasm(&wasm, Some("2")).is_err());
    }
}
