//! Stencils: compiled functions that name no module index, address or constant value
//! (DESIGN.md §2.2–2.3), and [`finalize`], which applies one module's parameters.
//!
//! A [`Stencil`]'s code holds zeros at every relocation and constant site. Phases are
//! types: a `Stencil` can only become executable bytes through [`finalize`].
//!
//! Invariant (I2): finalizing a stencil with constants its guards accept gives the bytes
//! a fresh compile with those constants gives.

use quickbeam_environ::*;

/// A compiled function before finalize.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stencil {
    /// Machine code, with zeros at every relocation and constant site.
    pub code: Vec<u8>,
    pub relocs: Vec<Reloc>,
    pub const_sites: Vec<ConstSite>,
    /// One guard per constant of the body, indexed by [`ConstIdx`].
    pub guards: Vec<Guard>,
    /// Instructions that may trap, sorted by code offset.
    pub trap_sites: Vec<TrapSite>,
    /// `(code offset, operator ordinal)` pairs, sorted by code offset: the Wasm operator
    /// (0 = the body's first) whose code starts at each offset. Ordinals, not byte
    /// offsets, because byte offsets move when a constant's LEB128 encoding changes
    /// length; [`quickbeam_environ::operator_offset`] maps an ordinal back to bytes.
    pub srclocs: Vec<(u32, u32)>,
}

/// A place in the code that finalize fills from the module's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reloc {
    /// Offset of the 4-byte field in the function's code.
    pub offset: u32,
    pub kind: RelocKind,
}

/// What a relocation resolves to. All fields are 32 bits wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelocKind {
    /// `call rel32` to a defined function: its code's offset minus the end of the field.
    CallRel32(FuncSlot),
    /// The VMContext offset of a function's `VMFuncRef`.
    FuncRefOffset(FuncSlot),
    /// The VMContext offset of a table's definition pointer.
    TableOffset(TableSlot),
    /// The VMContext offset of a memory's definition pointer.
    MemoryOffset(MemorySlot),
    /// The VMContext offset of a global's storage pointer.
    GlobalOffset(GlobalSlot),
    /// The VMContext offset of a type's engine-wide signature id (a `u32`, for
    /// `call_indirect` checks).
    TypeIdOffset(TypeSlot),
    /// Module indices passed to builtins as immediates.
    FuncIndex(FuncSlot),
    TableIndex(TableSlot),
    MemoryIndex(MemorySlot),
    DataIndex(DataSlot),
    ElemIndex(ElemSlot),
}

/// Where one constant's bits went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConstSite {
    pub offset: u32,
    pub k: ConstIdx,
    pub encoding: SiteEncoding,
}

/// How a constant is written at its site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SiteEncoding {
    /// The low 32 bits, little-endian.
    Imm32,
    /// The low 32 bits of the negated value (for `sub` turned into `add`).
    Imm32Neg,
    /// All 64 bits, little-endian.
    Imm64,
    /// One byte: the value's low bits under this mask (a shift or rotate count, which
    /// the operator takes modulo the operand width, as the instruction does).
    Imm8Masked(u8),
}

impl SiteEncoding {
    /// Bytes the site covers.
    pub fn width(self) -> usize {
        match self {
            SiteEncoding::Imm32 | SiteEncoding::Imm32Neg => 4,
            SiteEncoding::Imm64 => 8,
            SiteEncoding::Imm8Masked(_) => 1,
        }
    }
}

/// Which values of a constant the stencil stays correct for (DESIGN.md §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Guard {
    /// Every value patches correctly.
    Any,
    /// Values in `lo..=hi` (as signed 64-bit) patch correctly.
    Range { lo: i64, hi: i64 },
    /// Only this exact value (bits): the value shaped the code.
    Exact(u64),
}

impl Guard {
    /// Whether the constant `bits` may be patched into a stencil with this guard.
    pub fn accepts(self, bits: u64) -> bool {
        match self {
            Guard::Any => true,
            Guard::Range { lo, hi } => (lo..=hi).contains(&(bits as i64)),
            Guard::Exact(v) => v == bits,
        }
    }

    /// The tightest guard allowing both `self` and `other` uses.
    pub fn meet(self, other: Guard) -> Guard {
        match (self, other) {
            (Guard::Any, g) | (g, Guard::Any) => g,
            (Guard::Exact(v), _) | (_, Guard::Exact(v)) => Guard::Exact(v),
            (Guard::Range { lo: a, hi: b }, Guard::Range { lo: c, hi: d }) => {
                Guard::Range { lo: a.max(c), hi: b.min(d) }
            }
        }
    }
}

/// A trapping instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrapSite {
    pub offset: u32,
    pub code: TrapCode,
}

/// What finalize needs from the module and engine.
pub struct FinalizeContext<'a> {
    pub offsets: &'a VMOffsets,
    /// Offset of every *defined* function's code in the module's code image, by
    /// function index minus the number of imported functions.
    pub func_code_offsets: &'a [u32],
    pub num_imported_funcs: u32,
    /// This function's offset in the code image.
    pub this_offset: u32,
}

/// Why a stencil could not be finalized: the parameters do not fit it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FinalizeError {
    #[error("constant #{0} does not satisfy its guard")]
    GuardRejected(u32),
    #[error("stencil refers to a slot the parameters do not have")]
    MissingParameter,
}

/// Copies `stencil`'s code into `out` (which must be exactly as long), writing every
/// constant from `consts` (bits, by [`ConstIdx`]) and resolving every relocation with
/// `params` and `cx`.
///
/// # Errors
/// [`FinalizeError::GuardRejected`] if a constant fails its guard; nothing is written
/// that could run then.
pub fn finalize(
    stencil: &Stencil,
    params: &FunctionParameters,
    consts: &[u64],
    cx: &FinalizeContext<'_>,
    out: &mut [u8],
) -> Result<(), FinalizeError> {
    for (k, g) in stencil.guards.iter().enumerate() {
        let bits = *consts.get(k).ok_or(FinalizeError::MissingParameter)?;
        if !g.accepts(bits) {
            return Err(FinalizeError::GuardRejected(k as u32));
        }
    }
    finalize_accepted(stencil, params, consts, cx, out)
}

/// [`finalize`] for constants already known to satisfy the stencil's guards (the
/// cache checks them when it picks a variant; a stencil's own constants always do):
/// skips that check (a loop over every constant, on the hot path of a warm reload).
///
/// # Errors
/// [`FinalizeError::MissingParameter`] if `params` or `consts` lack a slot.
pub fn finalize_accepted(
    stencil: &Stencil,
    params: &FunctionParameters,
    consts: &[u64],
    cx: &FinalizeContext<'_>,
    out: &mut [u8],
) -> Result<(), FinalizeError> {
    out.copy_from_slice(&stencil.code);
    write_const_sites(stencil, consts, None, out)?;
    resolve_relocs(stencil, params, cx, out)
}

/// `stencil`'s code with `consts` written at its constant sites (relocations still
/// zero): the form of a variant a cache keeps in memory, so that finalizing it again
/// with the same constants ([`finalize_baked`]) writes none of them.
///
/// # Errors
/// [`FinalizeError::MissingParameter`] if `consts` lacks a constant a site names.
pub fn bake_constants(stencil: &Stencil, consts: &[u64]) -> Result<Vec<u8>, FinalizeError> {
    let mut code = stencil.code.clone();
    write_const_sites(stencil, consts, None, &mut code)?;
    Ok(code)
}

/// [`finalize_accepted`] from `baked`, the stencil's code as [`bake_constants`] returned
/// it for the constants `baked_consts`: only the sites whose constant differs from
/// `baked_consts` are written (none, when the constants are the same), then the
/// relocations. Produces the same bytes as [`finalize_accepted`].
///
/// # Errors
/// [`FinalizeError::MissingParameter`] if `params` or `consts` lack a slot.
pub fn finalize_baked(
    stencil: &Stencil,
    baked: &[u8],
    baked_consts: &[u64],
    params: &FunctionParameters,
    consts: &[u64],
    cx: &FinalizeContext<'_>,
    out: &mut [u8],
) -> Result<(), FinalizeError> {
    out.copy_from_slice(baked);
    if consts != baked_consts {
        let skip = (baked_consts.len() == consts.len()).then_some(baked_consts);
        write_const_sites(stencil, consts, skip, out)?;
    }
    resolve_relocs(stencil, params, cx, out)
}

/// Writes each constant site of `stencil` into `out` from `consts`, except the sites
/// whose constant equals the one in `unchanged` (what `out` already holds there).
fn write_const_sites(stencil: &Stencil, consts: &[u64], unchanged: Option<&[u64]>, out: &mut [u8]) -> Result<(), FinalizeError> {
    for site in &stencil.const_sites {
        let k = site.k.index();
        let bits = *consts.get(k).ok_or(FinalizeError::MissingParameter)?;
        if unchanged.is_some_and(|u| u[k] == bits) {
            continue;
        }
        let at = site.offset as usize;
        match site.encoding {
            SiteEncoding::Imm32 => out[at..at + 4].copy_from_slice(&(bits as u32).to_le_bytes()),
            SiteEncoding::Imm32Neg => out[at..at + 4].copy_from_slice(&(bits as u32).wrapping_neg().to_le_bytes()),
            SiteEncoding::Imm64 => out[at..at + 8].copy_from_slice(&bits.to_le_bytes()),
            SiteEncoding::Imm8Masked(mask) => out[at] = bits as u8 & mask,
        }
    }
    Ok(())
}

/// Writes `stencil`'s relocations into `out`, which holds this function finalized with
/// the same parameters and constants in another [`FinalizeContext`] with the same
/// VMContext layout and the same `this_offset`: what moved since is only other
/// functions (the targets of `call`s), and only relocations depend on them.
///
/// # Errors
/// [`FinalizeError::MissingParameter`] if `params` lacks a slot.
pub fn relocate(stencil: &Stencil, params: &FunctionParameters, cx: &FinalizeContext<'_>, out: &mut [u8]) -> Result<(), FinalizeError> {
    resolve_relocs(stencil, params, cx, out)
}

/// The `call`s of `stencil` to defined functions, with `params`: per call, the offset of
/// its rel32 field in the function's code and the callee's index among the module's
/// defined functions (its function index minus `num_imported_funcs`), in the order of
/// the stencil's relocations. What [`relocate`] writes of them depends only on these
/// and on where the functions are ([`call_rel32`]), so a caller that keeps them can
/// relocate calls without the stencil.
///
/// # Errors
/// [`FinalizeError::MissingParameter`] if `params` lacks a callee's slot or the callee
/// is not a defined function.
pub fn calls<'a>(
    stencil: &'a Stencil,
    params: &'a FunctionParameters,
    num_imported_funcs: u32,
) -> impl Iterator<Item = Result<(u32, u32), FinalizeError>> + 'a {
    stencil.relocs.iter().filter_map(move |r| match r.kind {
        RelocKind::CallRel32(f) => Some(
            params
                .funcs
                .get(f.index())
                .and_then(|func| func.checked_sub(num_imported_funcs))
                .map(|callee| (r.offset, callee))
                .ok_or(FinalizeError::MissingParameter),
        ),
        _ => None,
    })
}

/// The rel32 field of a `call` at `field_offset` in the code of a function at
/// `this_offset` in the image, to code at `target`: the target minus the field's end.
pub fn call_rel32(target: u32, this_offset: u32, field_offset: u32) -> u32 {
    target.wrapping_sub(this_offset.wrapping_add(field_offset + 4))
}

/// Resolves every relocation of `stencil` into `out`.
fn resolve_relocs(stencil: &Stencil, params: &FunctionParameters, cx: &FinalizeContext<'_>, out: &mut [u8]) -> Result<(), FinalizeError> {
    for r in &stencil.relocs {
        let value = resolve(r, params, cx).ok_or(FinalizeError::MissingParameter)?;
        let at = r.offset as usize;
        out[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
    Ok(())
}

fn resolve(r: &Reloc, p: &FunctionParameters, cx: &FinalizeContext<'_>) -> Option<u32> {
    let get = |v: &Vec<u32>, i: usize| v.get(i).copied();
    Some(match r.kind {
        RelocKind::CallRel32(f) => {
            let func = get(&p.funcs, f.index())?;
            let target = *cx.func_code_offsets.get(func.checked_sub(cx.num_imported_funcs)? as usize)?;
            call_rel32(target, cx.this_offset, r.offset)
        }
        RelocKind::FuncRefOffset(f) => cx.offsets.funcref(get(&p.funcs, f.index())?),
        RelocKind::TableOffset(t) => cx.offsets.table(get(&p.tables, t.index())?),
        RelocKind::MemoryOffset(m) => cx.offsets.memory(get(&p.memories, m.index())?),
        RelocKind::GlobalOffset(g) => cx.offsets.global(get(&p.globals, g.index())?),
        RelocKind::TypeIdOffset(t) => cx.offsets.type_id(get(&p.types, t.index())?),
        RelocKind::FuncIndex(f) => get(&p.funcs, f.index())?,
        RelocKind::TableIndex(t) => get(&p.tables, t.index())?,
        RelocKind::MemoryIndex(m) => get(&p.memories, m.index())?,
        RelocKind::DataIndex(d) => get(&p.datas, d.index())?,
        RelocKind::ElemIndex(e) => get(&p.elems, e.index())?,
    })
}
