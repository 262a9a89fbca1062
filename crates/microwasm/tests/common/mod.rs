//! Helpers shared by the translator's tests.
#![allow(dead_code)]

use quickbeam_environ::{supported_features, ModuleEnv};
use quickbeam_microwasm::*;

/// `BLESS=1 cargo test -p quickbeam-microwasm` rewrites every snapshot in place.
///
/// insta reads `INSTA_UPDATE` once, at the first assertion, and caches it; mapping
/// `BLESS=1` to `INSTA_UPDATE=always` before any assertion (every snapshot helper calls
/// this first, and `Once` makes the other test threads wait) makes insta write `.snap`
/// files directly and pass. `INSTA_UPDATE=always` works as well, without this helper.
pub fn bless() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("BLESS").is_some_and(|v| v == "1") {
            std::env::set_var("INSTA_UPDATE", "always");
        }
    });
}

/// One translated function.
pub struct Translated {
    pub index: u32,
    pub ops: Vec<Op>,
    pub translation: Translation,
}

/// Translates every defined function of `wasm` (or stops at the first error).
pub fn translate_module(wasm: &[u8], features: wasmparser::WasmFeatures) -> Result<Vec<Translated>, CompileError> {
    let (env, bodies) = ModuleEnv::parse(wasm, features)?;
    let mut translator = Translator::new();
    let mut out = Vec::new();
    for input in bodies {
        let index = input.index;
        let mut rec = Recorder::default();
        let translation = translator.translate(&env, input, &mut rec)?;
        out.push(Translated { index, ops: rec.ops, translation });
    }
    Ok(out)
}

/// Translates every defined function of a `.wat` module with the supported features.
pub fn translate_wat(wat: &str) -> Result<Vec<Translated>, CompileError> {
    translate_wat_with(wat, supported_features())
}

/// Translates every defined function of a `.wat` module with the given features.
pub fn translate_wat_with(wat: &str, features: wasmparser::WasmFeatures) -> Result<Vec<Translated>, CompileError> {
    let wasm = wat::parse_str(wat).expect("test .wat parses");
    translate_module(&wasm, features)
}

/// The features the tests use for `externref`: wasmparser 0.263 gates it behind
/// `GC_TYPES` as well as `REFERENCE_TYPES`, and `supported_features()` lacks the former.
pub fn features_with_externref() -> wasmparser::WasmFeatures {
    supported_features() | wasmparser::WasmFeatures::GC_TYPES
}

/// The Microwasm text of every defined function of a `.wat` module, with its constants
/// and slot parameters (for snapshots).
pub fn mir(wat: &str) -> String {
    mir_with(wat, supported_features())
}

/// [`mir`] with the given features.
pub fn mir_with(wat: &str, features: wasmparser::WasmFeatures) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for f in translate_wat_with(wat, features).expect("test module translates") {
        writeln!(s, "func {}:", f.index).unwrap();
        s.push_str(&print_ops(&f.ops));
        let t = &f.translation;
        if !t.consts.is_empty() {
            writeln!(s, "  ;; consts {:?}", t.consts).unwrap();
        }
        let p = &t.params;
        for (name, v) in [
            ("funcs", &p.funcs),
            ("globals", &p.globals),
            ("tables", &p.tables),
            ("types", &p.types),
            ("memories", &p.memories),
            ("datas", &p.datas),
            ("elems", &p.elems),
        ] {
            if !v.is_empty() {
                writeln!(s, "  ;; {name} {v:?}").unwrap();
            }
        }
    }
    s
}
