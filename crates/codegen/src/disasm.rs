//! Disassembly of stencils with `iced-x86`, annotated with relocations, constant sites and
//! trap sites (for `quickbeam explain` and the snapshot tests).

use crate::stencil::*;
use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
use std::fmt::Write;

/// One line per instruction: `offset: bytes  instruction  ; annotations`.
pub fn disassemble(stencil: &Stencil) -> String {
    let code = &stencil.code;
    let mut out = String::new();
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut fmt = IntelFormatter::new();
    fmt.options_mut().set_hex_prefix("0x");
    fmt.options_mut().set_hex_suffix("");
    let mut text = String::new();
    for ins in decoder.iter() {
        let start = ins.ip() as u32;
        let end = start + ins.len() as u32;
        text.clear();
        fmt.format(&ins, &mut text);
        let mut notes = Vec::new();
        for r in stencil.relocs.iter().filter(|r| (start..end).contains(&r.offset)) {
            notes.push(format!("reloc {:?}", r.kind));
        }
        for s in stencil.const_sites.iter().filter(|s| (start..end).contains(&s.offset)) {
            let g = stencil.guards.get(s.k.index()).copied().unwrap_or(Guard::Any);
            notes.push(format!("const #{} {:?} {:?}", s.k.0, s.encoding, g));
        }
        for t in stencil.trap_sites.iter().filter(|t| t.offset == start) {
            notes.push(format!("trap {:?}", t.code));
        }
        let _ = write!(out, "{start:5x}: {text}");
        if !notes.is_empty() {
            let _ = write!(out, "  ; {}", notes.join(", "));
        }
        out.push('\n');
    }
    out
}
