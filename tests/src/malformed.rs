//! Malformed input (DESIGN.md §3 I6): byte strings that are not valid modules, and
//! valid modules damaged in the ways files and tools damage them, for `Module::new`
//! and `quickbeam run` to reject with an error, never a panic or a crash.
//!
//! - [`random_bytes`]: arbitrary bytes, with or without the module header, and
//!   headers followed by random sections with plausible ids and lengths.
//! - [`mutate`]: one to four mutations of a real module: bit flips, interesting bytes,
//!   truncation, insertion, deletion, copying a chunk, and at the section level
//!   (lengths off by a little or a lot, overlong LEB128 lengths, sections dropped,
//!   duplicated or swapped, a LEB128 inside a section made huge).
//! - [`check_module_new`]: `Module::new` inside `catch_unwind`, with wasmparser's
//!   validator (with Quickbeam's features) as a second opinion: accepting a module
//!   the validator rejects is a failure too.

use crate::differential::{panic_message, Rng};
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A section of a module, as the raw bytes delimit it.
#[derive(Clone, Debug)]
pub struct RawSection {
    pub id: u8,
    /// Where the section starts (its id byte).
    pub start: usize,
    /// Where its LEB128 length is.
    pub len_at: Range<usize>,
    /// Its contents.
    pub body: Range<usize>,
}

/// The sections of `wasm` after the 8-byte header, as far as they can be delimited.
pub fn raw_sections(wasm: &[u8]) -> Vec<RawSection> {
    let mut out = Vec::new();
    let mut pos = 8;
    while pos < wasm.len() {
        let start = pos;
        let id = wasm[pos];
        pos += 1;
        let Some((len, n)) = read_leb_u32(&wasm[pos..]) else { break };
        let len_at = pos..pos + n;
        pos += n;
        let Some(end) = pos.checked_add(len as usize).filter(|e| *e <= wasm.len()) else { break };
        out.push(RawSection { id, start, len_at, body: pos..end });
        pos = end;
    }
    out
}

/// Reads an unsigned LEB128 of at most 5 bytes: `(value, bytes read)`.
pub fn read_leb_u32(b: &[u8]) -> Option<(u32, usize)> {
    let mut v: u64 = 0;
    for (i, byte) in b.iter().take(5).enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return u32::try_from(v).ok().map(|v| (v, i + 1));
        }
    }
    None
}

/// `v` as unsigned LEB128, padded to at least `min_len` bytes (an overlong encoding).
pub fn leb_u32(mut v: u32, min_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        out.push(byte | 0x80);
        if v == 0 && out.len() >= min_len {
            break;
        }
    }
    *out.last_mut().expect("one byte at least") &= 0x7f;
    out
}

const HEADER: &[u8] = b"\0asm\x01\0\0\0";

/// Arbitrary bytes: pure noise, noise after a module header, or a header followed by
/// random sections (ids 0..=13 and a few others, lengths right or slightly off).
pub fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let noise = |rng: &mut Rng, n: usize| -> Vec<u8> { (0..n).map(|_| rng.next_u64() as u8).collect() };
    match rng.below(4) {
        0 => {
            let n = rng.below(256) as usize;
            noise(rng, n)
        }
        1 => {
            let mut v = HEADER.to_vec();
            let n = rng.below(512) as usize;
            v.extend(noise(rng, n));
            v
        }
        _ => {
            let mut v = HEADER.to_vec();
            for _ in 0..rng.below(8) {
                let id = if rng.below(8) == 0 { rng.next_u64() as u8 } else { rng.below(14) as u8 };
                let n = rng.below(64) as usize;
                let body: Vec<u8> = if rng.below(2) == 0 {
                    // Small numbers, as counts and indices are.
                    (0..n).map(|_| rng.below(8) as u8).collect()
                } else {
                    noise(rng, n)
                };
                let len = match rng.below(8) {
                    0 => n as u32 + 1,
                    1 => (n as u32).saturating_sub(1),
                    2 => rng.next_u64() as u32,
                    _ => n as u32,
                };
                v.push(id);
                v.extend(leb_u32(len, 1));
                v.extend(body);
            }
            v
        }
    }
}

/// `wasm` with one to four mutations; also says which.
pub fn mutate(wasm: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    let mut v = wasm.to_vec();
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(4) {
        what.push(mutate_once(&mut v, rng));
    }
    (v, what.join(", "))
}

fn mutate_once(v: &mut Vec<u8>, rng: &mut Rng) -> String {
    if v.is_empty() {
        v.push(rng.next_u64() as u8);
        return "one byte".into();
    }
    let at = |rng: &mut Rng, v: &Vec<u8>| rng.below(v.len() as u64) as usize;
    match rng.below(12) {
        0 | 1 => {
            let i = at(rng, v);
            let bit = rng.below(8);
            v[i] ^= 1 << bit;
            format!("bit {bit} of byte {i:#x} flipped")
        }
        2 => {
            let i = at(rng, v);
            const INTERESTING: &[u8] = &[0x00, 0x01, 0x7f, 0x80, 0xff, 0x0b, 0x40, 0x41, 0x60, 0x70, 0x6f];
            let b = INTERESTING[rng.below(INTERESTING.len() as u64) as usize];
            v[i] = b;
            format!("byte {i:#x} set to {b:#04x}")
        }
        3 => {
            let n = at(rng, v);
            v.truncate(n);
            format!("truncated to {n:#x}")
        }
        4 => {
            let i = at(rng, v);
            let n = 1 + rng.below(8) as usize;
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            v.splice(i..i, bytes);
            format!("{n} byte(s) inserted at {i:#x}")
        }
        5 => {
            let i = at(rng, v);
            let n = (1 + rng.below(16) as usize).min(v.len() - i);
            v.drain(i..i + n);
            format!("{n} byte(s) deleted at {i:#x}")
        }
        6 => {
            // Copy a chunk over another place (code and data look like code and data).
            let from = at(rng, v);
            let n = (1 + rng.below(64) as usize).min(v.len() - from);
            let chunk = v[from..from + n].to_vec();
            let to = at(rng, v);
            let end = (to + n).min(v.len());
            v.splice(to..end, chunk);
            format!("{n} byte(s) from {from:#x} copied to {to:#x}")
        }
        _ => mutate_section(v, rng),
    }
}

fn mutate_section(v: &mut Vec<u8>, rng: &mut Rng) -> String {
    let sections = raw_sections(v);
    if sections.is_empty() {
        let i = rng.below(v.len() as u64) as usize;
        v[i] = v[i].wrapping_add(1);
        return format!("byte {i:#x} incremented");
    }
    let s = sections[rng.below(sections.len() as u64) as usize].clone();
    let len = s.body.len() as u32;
    match rng.below(6) {
        0 => {
            let new = match rng.below(6) {
                0 => len.wrapping_add(1),
                1 => len.wrapping_sub(1),
                2 => len.wrapping_add(1 + rng.below(100) as u32),
                3 => len.saturating_sub(1 + rng.below(100) as u32),
                4 => u32::MAX - rng.below(16) as u32,
                _ => 0,
            };
            v.splice(s.len_at.clone(), leb_u32(new, 1));
            format!("length of section {} at {:#x}: {len} -> {new}", s.id, s.start)
        }
        1 => {
            let n = 2 + rng.below(4) as usize;
            v.splice(s.len_at.clone(), leb_u32(len, n));
            format!("length of section {} at {:#x} as a {n}-byte LEB128", s.id, s.start)
        }
        2 => {
            v.drain(s.start..s.body.end);
            format!("section {} at {:#x} dropped", s.id, s.start)
        }
        3 => {
            let copy = v[s.start..s.body.end].to_vec();
            v.splice(s.body.end..s.body.end, copy);
            format!("section {} at {:#x} duplicated", s.id, s.start)
        }
        4 => {
            let t = sections[rng.below(sections.len() as u64) as usize].clone();
            let (a, b) = if s.start <= t.start { (s, t) } else { (t, s) };
            if a.start == b.start {
                return "nothing (a section swapped with itself)".into();
            }
            let mut out = v[..a.start].to_vec();
            out.extend_from_slice(&v[b.start..b.body.end]);
            out.extend_from_slice(&v[a.body.end..b.start]);
            out.extend_from_slice(&v[a.start..a.body.end]);
            out.extend_from_slice(&v[b.body.end..]);
            *v = out;
            format!("sections {} at {:#x} and {} at {:#x} swapped", a.id, a.start, b.id, b.start)
        }
        _ => {
            // A LEB128 inside the section (a count, an index, a size) made huge, the
            // section's length kept right.
            if s.body.is_empty() {
                return "nothing (empty section)".into();
            }
            let i = s.body.start + rng.below(s.body.len() as u64) as usize;
            let huge = [0xffu8, 0xff, 0xff, 0xff, 0x0f];
            let n = read_leb_u32(&v[i..s.body.end]).map_or(1, |(_, n)| n);
            let mut body = v[s.body.start..i].to_vec();
            body.extend_from_slice(&huge);
            body.extend_from_slice(&v[i + n..s.body.end]);
            let mut section = vec![s.id];
            section.extend(leb_u32(body.len() as u32, 1));
            section.extend(body);
            v.splice(s.start..s.body.end, section);
            format!("LEB128 at {i:#x} in section {} set to u32::MAX", s.id)
        }
    }
}

/// What `Module::new` made of some bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Compiled; wasmparser's validator agrees the module is valid.
    Valid,
    /// Rejected with an error (its text, and whether the input was in the binary
    /// format rather than text); wasmparser agrees.
    Rejected { message: String, binary: bool },
    /// Rejected although wasmparser's validator accepts it: Quickbeam is stricter
    /// (an unsupported feature or limit, an overlong LEB128). Counted, not a failure.
    Stricter(String),
    /// A failure: a panic, or a module accepted that the validator rejects.
    Failed(String),
}

/// The validator Quickbeam's `Module::new` should agree with (on the binary form:
/// `Module::new` also reads the text form, as wasmtime does).
pub fn validate(bytes: &[u8]) -> Result<(), String> {
    let wasm = wat::parse_bytes(bytes).map_err(|e| e.to_string())?;
    wasmparser::Validator::new_with_features(quickbeam_environ::supported_features())
        .validate_all(&wasm)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `Module::new(engine, bytes)` must return `Ok` or `Err`, never panic, and agree with
/// the validator where it accepts.
pub fn check_module_new(engine: &quickbeam::Engine, wasm: &[u8]) -> Verdict {
    let result = catch_unwind(AssertUnwindSafe(|| quickbeam::Module::new(engine, wasm).map(|_| ())));
    let valid = catch_unwind(AssertUnwindSafe(|| validate(wasm)));
    match (result, valid) {
        (Err(p), _) => Verdict::Failed(format!("Module::new panicked: {}", panic_message(&*p))),
        (_, Err(p)) => Verdict::Failed(format!("wasmparser's validator panicked: {}", panic_message(&*p))),
        (Ok(Ok(())), Ok(Ok(()))) => Verdict::Valid,
        (Ok(Ok(())), Ok(Err(e))) => {
            Verdict::Failed(format!("Module::new accepted a module the validator rejects: {e}"))
        }
        (Ok(Err(e)), Ok(Err(_))) => Verdict::Rejected { message: format!("{e:#}"), binary: wasm.starts_with(b"\0asm") },
        (Ok(Err(e)), Ok(Ok(()))) => Verdict::Stricter(format!("{e:#}")),
    }
}

/// Counts over a run.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub inputs: u64,
    pub valid: u64,
    pub rejected: u64,
    /// Rejections of binary input whose message gives no byte offset (I6 asks for one
    /// where there is one; text input gets a line and column instead); counted, with
    /// an example, not failures.
    pub without_offset: u64,
    pub example_without_offset: Option<String>,
    pub stricter: u64,
    pub failed: u64,
}

impl Tally {
    pub fn add(&mut self, v: &Verdict) {
        self.inputs += 1;
        match v {
            Verdict::Valid => self.valid += 1,
            Verdict::Rejected { message, binary } => {
                self.rejected += 1;
                if *binary && !message.contains("offset") {
                    self.without_offset += 1;
                    self.example_without_offset.get_or_insert_with(|| message.clone());
                }
            }
            Verdict::Stricter(_) => self.stricter += 1,
            Verdict::Failed(_) => self.failed += 1,
        }
    }

    pub fn merge(&mut self, o: &Tally) {
        self.inputs += o.inputs;
        self.valid += o.valid;
        self.rejected += o.rejected;
        self.without_offset += o.without_offset;
        if self.example_without_offset.is_none() {
            self.example_without_offset = o.example_without_offset.clone();
        }
        self.stricter += o.stricter;
        self.failed += o.failed;
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} inputs: {} valid, {} rejected ({} binary ones without a byte offset), {} rejected by Quickbeam only, {} failed",
            self.inputs, self.valid, self.rejected, self.without_offset, self.stricter, self.failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_judged_by_its_binary_form() {
        let engine = quickbeam::Engine::default();
        assert_eq!(check_module_new(&engine, b"(module (func))"), Verdict::Valid);
        let text = |v| matches!(v, Verdict::Rejected { binary: false, .. });
        assert!(text(check_module_new(&engine, b"(module (func (result i32)))")));
        assert!(text(check_module_new(&engine, b"")));
    }

    #[test]
    fn leb_round_trips() {
        for v in [0, 1, 127, 128, 300, u32::MAX] {
            for min in 1..=5 {
                let b = leb_u32(v, min);
                assert!(b.len() >= min);
                assert_eq!(read_leb_u32(&b), Some((v, b.len())), "{v} {min}");
            }
        }
    }
}
