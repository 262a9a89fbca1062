//! The stencil cache's invariants on the real programs (DESIGN.md §3):
//! - **I1** (cache transparency): every program's finalized code is identical with the
//!   cache off, cold, warmed by a different program, and read back from disk by a new
//!   process (this test binary run again as a child).
//! - **I4** (determinism): compiling on one thread and on the pool gives the same code.
//! - A damaged cache directory (entries truncated, deleted, bytes flipped, garbage files)
//!   gives misses and correct code, never wrong code or a crash; two processes
//!   compiling different programs into one directory at once both succeed.
//!
//! Missing fixtures fail with instructions unless `QUICKBEAM_SKIP_PROGRAMS=1`.

use quickbeam::{Config, Engine, Module};
use quickbeam_tests::programs::{first_difference, fixtures_dir, read_fixture, run_wasi_command_in};
use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAMS: [&str; 4] = ["sqlite", "lua", "zstd", "bzip2"];

/// Set in a child process: the cache directory to read from, and where to write texts.
const CHILD_ENV: &str = "QUICKBEAM_TEST_CACHE_CHILD_DIR";
/// Set in a child process: the programs to compile, comma-separated.
const CHILD_PROGRAMS_ENV: &str = "QUICKBEAM_TEST_CACHE_CHILD_PROGRAMS";

fn skip() -> bool {
    std::env::var("QUICKBEAM_SKIP_PROGRAMS").is_ok_and(|v| v == "1")
}

fn wasm(name: &str) -> Vec<u8> {
    read_fixture(&fixtures_dir(), name).unwrap_or_else(|e| panic!("{e:#}")).0
}

/// A fresh, empty directory under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("quickbeam-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn engine(cache: bool, dir: Option<&Path>) -> Engine {
    let mut c = Config::new();
    c.cache(cache);
    if let Some(d) = dir {
        c.cache_directory(d).unwrap();
    }
    Engine::new(&c).unwrap()
}

/// Where two texts first differ, if they do.
fn text_difference(a: &[u8], b: &[u8]) -> Option<String> {
    if a == b {
        return None;
    }
    let at = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    Some(format!("{} vs {} bytes, first difference at code offset {at:#x}", a.len(), b.len()))
}

/// Runs this test binary again, as a new process, on `test` with `envs` set.
fn child(test: &str, envs: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("failed to start a child test process")
}

/// The child half of [`i1_code_is_the_same_with_the_cache_off_cold_warmed_and_from_disk`]:
/// compiles the programs from the cache directory alone and writes their texts there.
#[test]
fn child_compiles_from_the_cache_directory() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let dir = PathBuf::from(dir);
    let engine = engine(true, Some(&dir));
    for name in std::env::var(CHILD_PROGRAMS_ENV).unwrap().split(',') {
        let m = Module::new(&engine, wasm(name)).unwrap();
        let r = m.compile_report();
        assert_eq!((r.compiled, r.reused), (0, r.functions), "{name}: not every function came from disk: {r:?}");
        std::fs::write(dir.join(format!("{name}.text")), m.text()).unwrap();
    }
}

#[test]
fn i1_code_is_the_same_with_the_cache_off_cold_warmed_and_from_disk() {
    if skip() {
        return;
    }
    let dir = temp_dir("i1");
    let disk = dir.join("cache");
    // Warm the directory (and, for each program, an engine with a different program).
    let warm_disk = engine(true, Some(&disk));
    for name in PROGRAMS {
        Module::new(&warm_disk, wasm(name)).unwrap();
    }
    drop(warm_disk);
    let status = child("child_compiles_from_the_cache_directory", &[
        (CHILD_ENV, disk.to_str().unwrap()),
        (CHILD_PROGRAMS_ENV, &PROGRAMS.join(",")),
    ])
    .wait()
    .unwrap();
    assert!(status.success(), "the child process failed");

    let mut failures = Vec::new();
    for (i, name) in PROGRAMS.iter().enumerate() {
        let bytes = wasm(name);
        let off = Module::new(&engine(false, None), &bytes).unwrap();
        let cold = Module::new(&engine(true, None), &bytes).unwrap();
        let warmed_engine = engine(true, None);
        let other = PROGRAMS[(i + 1) % PROGRAMS.len()];
        Module::new(&warmed_engine, wasm(other)).unwrap();
        let warmed = Module::new(&warmed_engine, &bytes).unwrap();
        let from_disk = std::fs::read(disk.join(format!("{name}.text"))).unwrap();
        let r = warmed.compile_report();
        println!(
            "{name}: {} functions, {} bytes of code; warmed by {other}: {} reused, {} patched, {} compiled",
            r.functions,
            off.text().len(),
            r.reused,
            r.patched,
            r.compiled
        );
        assert!(r.reused > 0, "{name}: nothing reused from {other} (libc is shared)");
        for (how, text) in [("cold", cold.text()), ("warmed", warmed.text()), ("from disk", &from_disk[..])] {
            if let Some(d) = text_difference(off.text(), text) {
                failures.push(format!("{name}: cache off vs {how}: {d}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn i4_one_thread_and_the_pool_give_the_same_code() {
    if skip() {
        return;
    }
    let bytes = wasm("sqlite");
    let pool = Module::new(&engine(false, None), &bytes).unwrap();
    let serial = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| Module::new(&engine(false, None), &bytes).unwrap());
    assert_eq!(text_difference(pool.text(), serial.text()), None);
}

/// Every file of the cache directory damaged in one of several ways: the next compile
/// gets misses, its code is the uncached code, and the program still runs correctly.
#[test]
fn a_damaged_cache_gives_misses_and_correct_code() {
    if skip() {
        return;
    }
    let dir = temp_dir("damaged");
    let name = "lua";
    let (bytes, expected) = read_fixture(&fixtures_dir(), name).unwrap();
    Module::new(&engine(true, Some(&dir)), &bytes).unwrap();
    let mut files = Vec::new();
    for shard in std::fs::read_dir(&dir).unwrap().flatten() {
        if shard.path().is_dir() {
            files.extend(std::fs::read_dir(shard.path()).unwrap().flatten().map(|e| e.path()));
        }
    }
    assert!(files.len() > 100, "expected an entry per key, found {} files", files.len());
    files.sort();
    for (i, f) in files.iter().enumerate() {
        let mut data = std::fs::read(f).unwrap();
        match i % 5 {
            0 => data.truncate(data.len() / 2),
            1 => data.truncate(0),
            2 => {
                let at = (i * 7919) % data.len();
                data[at] ^= 1 << (i % 8);
            }
            3 => {
                std::fs::remove_file(f).unwrap();
                continue;
            }
            _ => {
                // The header of another entry: a well-formed file under the wrong name.
                let other = std::fs::read(&files[(i + 1) % files.len()]).unwrap_or_default();
                data = other;
            }
        }
        std::fs::write(f, data).unwrap();
    }
    std::fs::write(dir.join("ab").join("not-an-entry"), b"garbage").ok();
    let m = Module::new(&engine(true, Some(&dir)), &bytes).unwrap();
    let r = m.compile_report();
    println!("{name} over a damaged cache: {r:?}");
    assert!(r.compiled > 0, "damaged entries must be misses");
    let off = Module::new(&engine(false, None), &bytes).unwrap();
    assert_eq!(text_difference(off.text(), m.text()), None);
    let engine = engine(true, Some(&dir));
    let out = run_wasi_command_in(&engine, &bytes, name, &[]).unwrap();
    assert_eq!(first_difference(&expected, &out.stdout), None);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child half of [`two_processes_share_one_cache_directory`]: compiles and runs one
/// program through the directory.
#[test]
fn child_runs_a_program_through_the_cache_directory() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let name = std::env::var(CHILD_PROGRAMS_ENV).unwrap();
    let (bytes, expected) = read_fixture(&fixtures_dir(), &name).unwrap();
    let engine = engine(true, Some(Path::new(&dir)));
    for _ in 0..3 {
        let out = run_wasi_command_in(&engine, &bytes, &name, &[]).unwrap();
        assert_eq!(first_difference(&expected, &out.stdout), None, "{name}");
    }
}

#[test]
fn two_processes_share_one_cache_directory() {
    if skip() {
        return;
    }
    let dir = temp_dir("shared");
    let d = dir.to_str().unwrap();
    for round in 0..2 {
        let a = child("child_runs_a_program_through_the_cache_directory", &[(CHILD_ENV, d), (CHILD_PROGRAMS_ENV, "sqlite")]);
        let b = child("child_runs_a_program_through_the_cache_directory", &[(CHILD_ENV, d), (CHILD_PROGRAMS_ENV, "zstd")]);
        for (name, mut c) in [("sqlite", a), ("zstd", b)] {
            assert!(c.wait().unwrap().success(), "round {round}: the {name} process failed");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
