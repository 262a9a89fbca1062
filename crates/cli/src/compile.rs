//! `quickbeam compile`: compile a module into the cache and report what the cache
//! served (DESIGN.md §7), as one human line or one JSON object.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use quickbeam::{CompileReport, Config, Engine};

/// Compiles the module in `path` with `config` (whose cache store receives what was
/// compiled) and returns its report. Errors are `run`'s: `failed to read/parse/compile`.
pub fn compile(config: &Config, path: &Path) -> Result<CompileReport> {
    let engine = Engine::new(config)?;
    Ok(crate::run::load(&engine, path)?.compile_report())
}

/// The report as one JSON object (no newline):
/// `{"file":…,"bytes":N,"functions":N,"reused":N,"patched":N,"compiled":N,"seconds":F}`.
pub fn report_json(file: &str, r: &CompileReport) -> String {
    let mut s = String::from("{\"file\":");
    json_string(&mut s, file);
    let _ = write!(
        s,
        ",\"bytes\":{},\"functions\":{},\"reused\":{},\"patched\":{},\"compiled\":{},\"seconds\":{}}}",
        r.bytes,
        r.functions,
        r.reused,
        r.patched,
        r.compiled,
        json_number(r.seconds)
    );
    s
}

/// `N functions, R reused, P patched, C compiled`: the counts of a report, as `compile`
/// and `watch` print them.
pub fn counts(r: &CompileReport) -> String {
    format!("{} functions, {} reused, {} patched, {} compiled", r.functions, r.reused, r.patched, r.compiled)
}

/// Milliseconds with one decimal (`1.3`).
pub fn millis(seconds: f64) -> String {
    format!("{:.1}", seconds * 1e3)
}

/// The report as one human line (no newline):
/// `compiled app.wasm (1234 bytes) in 1.3 ms: 5 functions, 0 reused, 0 patched, 5 compiled`.
pub fn report_human(file: &str, r: &CompileReport) -> String {
    format!("compiled {file} ({} bytes) in {} ms: {}", r.bytes, millis(r.seconds), counts(r))
}

/// Appends `text` as a JSON string literal.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number for a duration in seconds (finite; never in exponent form).
fn json_number(x: f64) -> String {
    if x.is_finite() {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        "0.0".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn json_report_has_every_field() {
        let r = CompileReport { functions: 3, reused: 1, patched: 0, compiled: 2, bytes: 99, seconds: 0.25 };
        assert_eq!(
            report_json("x \"y\".wasm", &r),
            r#"{"file":"x \"y\".wasm","bytes":99,"functions":3,"reused":1,"patched":0,"compiled":2,"seconds":0.25}"#
        );
        let r = CompileReport { seconds: 0.0000001, ..r };
        assert!(report_json("f", &r).ends_with(r#""seconds":0.0000001}"#), "{}", report_json("f", &r));
        let r = CompileReport { seconds: 1.0, ..r };
        assert!(report_json("f", &r).ends_with(r#""seconds":1.0}"#));
    }

    #[test]
    fn human_report() {
        let r = CompileReport { functions: 3, reused: 1, patched: 0, compiled: 2, bytes: 99, seconds: 0.0013 };
        assert_eq!(
            report_human("a.wat", &r),
            "compiled a.wat (99 bytes) in 1.3 ms: 3 functions, 1 reused, 0 patched, 2 compiled"
        );
    }
}
