//! Running spec scripts in parallel through the CLI's `.wast` runner.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use quickbeam::Config;
use quickbeam_cli::wast::{run_wast_text, WastReport};

/// The engine settings for the WebAssembly 1.0 scripts: post-MVP proposals that the
/// 1.0 scripts contradict are off (multi-value, reference types, bulk memory).
pub fn wasm_v1_config() -> Config {
    let mut c = Config::new();
    c.wasm_multi_value(false).wasm_reference_types(false).wasm_bulk_memory(false);
    c
}

/// Runs `(name, text)` scripts on `threads` workers (each with a large stack) and
/// returns their reports in the input's order.
pub fn run_scripts(scripts: &[(String, &str)], config: &Config, threads: usize) -> Vec<WastReport> {
    let next = AtomicUsize::new(0);
    let reports: Mutex<Vec<Option<WastReport>>> = Mutex::new(vec![None; scripts.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            let worker = || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((name, text)) = scripts.get(i) else { break };
                let report = run_wast_text(name, text, config);
                reports.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(report);
            };
            std::thread::Builder::new()
                .stack_size(quickbeam_cli::LARGE_STACK)
                .spawn_scoped(s, worker)
                .expect("failed to spawn a spec worker thread");
        }
    });
    reports
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(scripts)
        .map(|(r, (name, _))| {
            // A worker died (the runner catches panics, so only on a crash of the thread).
            r.unwrap_or_else(|| WastReport {
                file: name.clone(),
                outcomes: vec![quickbeam_cli::wast::Outcome {
                    line: 1,
                    col: 1,
                    kind: "script",
                    failure: Some("the script's worker thread died".into()),
                }],
            })
        })
        .collect()
}

/// The failures of some reports keyed by `script:line` (several directives on one line
/// share a key; their messages are joined).
pub fn failures_by_line(reports: &[WastReport]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for r in reports {
        for o in r.failures() {
            let key = format!("{}:{}", r.file, o.line);
            let msg = format!("{}: {}", o.kind, o.failure.as_deref().unwrap_or_default().replace('\n', " | "));
            out.entry(key).and_modify(|m| m.push_str(&format!("; {msg}"))).or_insert(msg);
        }
    }
    out
}

/// How many worker threads to use: `QUICKBEAM_TEST_THREADS`, else 1 (the whole
/// wasm-v1 suite takes about a second in a release build).
pub fn worker_threads() -> usize {
    std::env::var("QUICKBEAM_TEST_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
}
