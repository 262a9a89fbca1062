//! Real C programs built to wasm32-wasi by `fixtures/build.sh` (SQLite, Lua, zstd,
//! bzip2): each must print exactly what its native build printed and exit with 0.
//!
//! Missing fixtures fail these tests with instructions, unless
//! `QUICKBEAM_SKIP_PROGRAMS=1`.

use quickbeam_tests::programs::{first_difference, fixtures_dir, read_fixture, run_wasi_command};

fn check_program(name: &str) {
    if std::env::var("QUICKBEAM_SKIP_PROGRAMS").is_ok_and(|v| v == "1") {
        println!("skipped {name}: QUICKBEAM_SKIP_PROGRAMS=1");
        return;
    }
    let (wasm, expected) = read_fixture(&fixtures_dir(), name).unwrap_or_else(|e| panic!("{e:#}"));
    let start = std::time::Instant::now();
    let out = run_wasi_command(&wasm, &format!("{name}.wasm"), &[]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    println!("{name}: ran in {:.2?}", start.elapsed());
    if let Some(diff) = first_difference(&expected, &out.stdout) {
        panic!(
            "{name}: stdout differs from {name}.expected at {diff}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(out.exit_code, 0, "{name}: exit status; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sqlite() {
    check_program("sqlite");
}

#[test]
fn lua() {
    check_program("lua");
}

#[test]
fn zstd() {
    check_program("zstd");
}

#[test]
fn bzip2() {
    check_program("bzip2");
}
