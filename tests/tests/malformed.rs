//! Malformed input never panics (DESIGN.md §3 I6; helpers in
//! `quickbeam_tests::malformed`).
//!
//! - `arbitrary_bytes`: random byte strings into `Module::new`.
//! - `mutated_modules`: every real module (`target/fixtures/*.wasm`,
//!   `../shared/corpus/*.wasm`) and small wasm-smith modules, mutated, into
//!   `Module::new` (with the in-process cache on, and off); a module Quickbeam accepts
//!   must also pass wasmparser's validator.
//! - `mutated_modules_run`: a sample of them (mostly ones that still validate) run by
//!   `quickbeam run` in a child process, with a timeout (a damaged program may loop):
//!   the child must not panic (status 101 with Quickbeam's panic message) or die of a
//!   signal.
//!
//! `cargo test --release -p quickbeam-tests --test malformed -- --nocapture` is the
//! short run. `QUICKBEAM_MALFORMED_SCALE=K` multiplies every count by K (the long
//! run: K rounds of mutations, each with new wasm-smith modules),
//! `QUICKBEAM_MALFORMED_SECONDS=S` ends each test after S seconds,
//! `QUICKBEAM_MALFORMED_SEED=X` changes the seed. `QUICKBEAM_MALFORMED_CLI=PATH` runs
//! that `quickbeam` binary instead of this test executable as the child.

use quickbeam_tests::differential::{self, Rng};
use quickbeam_tests::malformed::{self, Tally, Verdict};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_SEED: u64 = 0x6d61_6c66_6f72_6d64;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.replace('_', "").parse().ok(),
    }
}

fn seed() -> u64 {
    env_u64("QUICKBEAM_MALFORMED_SEED").unwrap_or(DEFAULT_SEED)
}

fn scale() -> u64 {
    env_u64("QUICKBEAM_MALFORMED_SCALE").unwrap_or(1).max(1)
}

fn deadline() -> Option<Instant> {
    env_u64("QUICKBEAM_MALFORMED_SECONDS").map(|s| Instant::now() + Duration::from_secs(s))
}

fn out_of_time(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Writes a failing input to `target/malformed/NAME` and returns a line for the report.
fn record(name: &str, bytes: &[u8], why: &str) -> String {
    let dir = quickbeam_tests::workspace_root().join("target/malformed");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(name);
    let _ = std::fs::write(&path, bytes);
    let line = format!("{}: {why}", path.display());
    println!("FAILURE {line}");
    line
}

fn engines() -> [quickbeam::Engine; 2] {
    let cached = quickbeam::Engine::new(&quickbeam::Config::new()).expect("engine");
    let uncached = quickbeam::Engine::new(quickbeam::Config::new().cache(false)).expect("engine");
    [cached, uncached]
}

/// Runs `f` on a thread with a large stack (Quickbeam and wasmparser recurse little,
/// but the test harness's 2 MiB is not much).
fn on_big_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(differential::THREAD_STACK)
            .spawn_scoped(s, f)
            .expect("spawn")
            .join()
            .expect("the test itself panicked")
    })
}

#[test]
fn arbitrary_bytes() {
    on_big_stack(|| {
        let (seed, n, deadline) = (seed(), 4000 * scale(), deadline());
        let engines = engines();
        let mut rng = Rng::new(seed);
        let (mut tally, mut failures) = (Tally::default(), Vec::new());
        let start = Instant::now();
        for i in 0..n {
            if out_of_time(deadline) {
                break;
            }
            let bytes = malformed::random_bytes(&mut rng);
            let v = malformed::check_module_new(&engines[(i % 2) as usize], &bytes);
            if let Verdict::Failed(why) = &v {
                failures.push(record(&format!("random-{seed:#x}-{i}.wasm"), &bytes, why));
            }
            tally.add(&v);
        }
        println!("arbitrary bytes (seed {seed:#x}): {tally} in {:.1} s", start.elapsed().as_secs_f64());
        if let Some(e) = &tally.example_without_offset {
            println!("  a rejection without an offset: {e}");
        }
        assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
    });
}

/// The real modules: `(name, bytes)`. Missing directories are skipped (the fixtures
/// need `bash fixtures/build.sh`); say so.
fn real_modules() -> Vec<(String, Vec<u8>)> {
    let root = quickbeam_tests::workspace_root();
    let mut out = Vec::new();
    for dir in [root.join("target/fixtures"), root.join("../shared/corpus")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            println!("note: no {} (skipped)", dir.display());
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        for p in paths {
            if let Ok(bytes) = std::fs::read(&p) {
                out.push((p.file_name().unwrap().to_string_lossy().into_owned(), bytes));
            }
        }
    }
    out
}

/// Small valid modules from wasm-smith (the differential configuration without
/// imports, so that `quickbeam run` can run them).
fn smith_modules(seed: u64, n: u64) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .filter_map(|i| {
            let (wasm, _) = differential::smith_module_without_imports(&differential::case_bytes(seed ^ 0x5eed, i))?;
            Some((format!("smith-{i}"), wasm))
        })
        .collect()
}

/// The mutation corpus of round `round`: `(name, bytes, mutations of it)`, the real
/// modules (large ones get fewer mutations), hello.wat, and 40 wasm-smith modules new
/// in each round.
fn corpus(real: &[(String, Vec<u8>)], seed: u64, round: u64) -> Vec<(String, Vec<u8>, u64)> {
    let mut out = Vec::new();
    for (name, bytes) in real {
        let n = if bytes.len() > 1 << 20 { 6 } else { 30 };
        out.push((name.clone(), bytes.clone(), n));
    }
    let hello = wat::parse_file(quickbeam_tests::workspace_root().join("examples/hello.wat")).expect("hello.wat");
    out.push(("hello.wat".into(), hello, 100));
    for (name, bytes) in smith_modules(seed ^ round.wrapping_mul(0x1_0000_0001), 40) {
        out.push((format!("{name}.{round}"), bytes, 40));
    }
    out
}

/// The mutation generator of module `m` in round `round`.
fn mutation_rng(seed: u64, m: usize, round: u64) -> Rng {
    Rng::new(seed ^ (m as u64).wrapping_mul(0x100_0001) ^ round.wrapping_mul(0x9e37_79b9))
}

#[test]
fn mutated_modules() {
    on_big_stack(|| {
        let (seed, deadline) = (seed(), deadline());
        let engines = engines();
        let real = real_modules();
        let (mut tally, mut failures) = (Tally::default(), Vec::new());
        let mut per_module = std::collections::BTreeMap::<String, (Tally, f64)>::new();
        let start = Instant::now();
        'rounds: for round in 0..scale() {
            for (m, (name, bytes, n)) in corpus(&real, seed, round).into_iter().enumerate() {
                let mut rng = mutation_rng(seed, m, round);
                let mut per = Tally::default();
                let t = Instant::now();
                for i in 0..n {
                    if out_of_time(deadline) {
                        tally.merge(&per);
                        break 'rounds;
                    }
                    let (mutant, what) = malformed::mutate(&bytes, &mut rng);
                    // Mostly the cached engine: its hits skip validation, which the
                    // validator cross-check then covers.
                    let engine = &engines[usize::from(i % 4 == 3)];
                    let v = malformed::check_module_new(engine, &mutant);
                    if let Verdict::Failed(why) = &v {
                        let file = format!("{name}-{seed:#x}-{round}-{i}.wasm");
                        failures.push(record(&file, &mutant, &format!("{what}: {why}")));
                    }
                    per.add(&v);
                }
                if !name.starts_with("smith-") {
                    let e = per_module.entry(name).or_default();
                    e.0.merge(&per);
                    e.1 += t.elapsed().as_secs_f64();
                }
                tally.merge(&per);
            }
        }
        for (name, (t, secs)) in &per_module {
            println!("  {name}: {t} in {secs:.1} s");
        }
        println!("mutated modules (seed {seed:#x}): {tally} in {:.1} s", start.elapsed().as_secs_f64());
        if let Some(e) = &tally.example_without_offset {
            println!("  a rejection without an offset: {e}");
        }
        assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
    });
}

// ---- `quickbeam run` in a child process ----------------------------------------------------

const CHILD_FILE: &str = "QUICKBEAM_MALFORMED_CHILD";
const CHILD_INVOKE: &str = "QUICKBEAM_MALFORMED_CHILD_INVOKE";
const CHILD_ARGS: &str = "QUICKBEAM_MALFORMED_CHILD_ARGS";
const PANIC_MARK: &str = "QUICKBEAM-MALFORMED-CHILD-PANICKED";

/// The child: `quickbeam run` (the CLI's library entry point) on the file in
/// `QUICKBEAM_MALFORMED_CHILD`, exiting with its status. Does nothing in a normal run.
#[test]
fn child_runner() {
    let Some(file) = std::env::var_os(CHILD_FILE) else { return };
    use quickbeam_cli::run::{run, RunEnd, RunOptions};
    let mut config = quickbeam::Config::new();
    config.cache(false);
    let opts = RunOptions {
        file: PathBuf::from(file),
        invoke: std::env::var(CHILD_INVOKE).ok(),
        args: std::env::var(CHILD_ARGS).map(|a| a.split_whitespace().map(String::from).collect()).unwrap_or_default(),
        config,
        ..RunOptions::default()
    };
    let code = match quickbeam_cli::with_large_stack(|| run(&opts)) {
        Ok(RunEnd::Exit(code)) => code,
        Ok(RunEnd::Error(e, code)) => {
            eprintln!("error: {e:#}");
            code
        }
        Err(panic) => {
            eprintln!("{PANIC_MARK}: {panic}");
            101
        }
    };
    std::process::exit(code);
}

/// How a child run ended.
enum ChildEnd {
    Status(i32),
    TimedOut,
    /// A panic (with the tail of stderr) or a signal: a failure.
    Failed(String),
}

fn run_child(file: &Path, invoke: Option<(&str, usize)>, timeout: Duration) -> ChildEnd {
    let mut cmd = match std::env::var_os("QUICKBEAM_MALFORMED_CLI") {
        Some(bin) => {
            let mut c = Command::new(bin);
            c.args(["--no-cache", "run"]);
            if let Some((name, params)) = invoke {
                c.args(["--invoke", name]);
                c.arg(file);
                c.args(std::iter::repeat_n("0", params));
            } else {
                c.arg(file);
            }
            c
        }
        None => {
            let mut c = Command::new(std::env::current_exe().expect("current exe"));
            c.args(["--exact", "child_runner", "--nocapture", "--test-threads=1"]).env(CHILD_FILE, file);
            if let Some((name, params)) = invoke {
                c.env(CHILD_INVOKE, name).env(CHILD_ARGS, vec!["0"; params].join(" "));
            }
            c
        }
    };
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn child");
    // Keep the last 16 KiB of stderr (a damaged program may print without end).
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut tail = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 32 << 10 {
                tail.drain(..tail.len() - (16 << 10));
            }
        }
        String::from_utf8_lossy(&tail).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let tail = reader.join().unwrap_or_default();
    let Some(status) = status else { return ChildEnd::TimedOut };
    if tail.contains(PANIC_MARK) || tail.contains("Quickbeam panicked") {
        let last: String = tail.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        return ChildEnd::Failed(format!("panicked: {last}"));
    }
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ChildEnd::Status(code),
        (None, Some(sig)) => ChildEnd::Failed(format!("killed by signal {sig}")),
        (None, None) => ChildEnd::Failed("no exit status".into()),
    }
}

/// What to run: `_start`, else the first exported function whose parameters are all
/// numbers (called with zeros) and whose name has no NUL.
fn entry(wasm: &[u8]) -> Option<Option<(String, usize)>> {
    use differential::Ty;
    let shape = differential::shape(wasm)?;
    if shape.funcs.iter().any(|(n, _)| n == "_start") {
        return Some(None);
    }
    shape
        .funcs
        .iter()
        // (A name with a NUL cannot be an argument or an environment variable.)
        .find(|(n, ps)| !n.contains('\0') && ps.iter().all(|t| matches!(t, Ty::I32 | Ty::I64 | Ty::F32 | Ty::F64)))
        .map(|(n, ps)| Some((n.clone(), ps.len())))
}

#[test]
fn mutated_modules_run() {
    let (seed, deadline) = (seed(), deadline());
    let timeout = Duration::from_secs(env_u64("QUICKBEAM_MALFORMED_TIMEOUT").unwrap_or(3));
    let dir = std::env::temp_dir().join(format!("quickbeam-malformed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut failures = Vec::new();
    let (mut runs, mut timed_out, mut valid) = (0u64, 0u64, 0u64);
    let mut statuses = std::collections::BTreeMap::<i32, u64>::new();
    let start = Instant::now();
    let real = real_modules();
    'rounds: for round in 0..scale() {
        // The real modules, hello.wat and a few smith modules, two mutants of each,
        // preferring mutants that still validate (they compile and run).
        let corpus = corpus(&real, seed, round);
        let picked =
            corpus.iter().enumerate().filter(|(_, (n, ..))| !n.starts_with("smith-") || n.starts_with("smith-1"));
        for (m, (name, bytes, _)) in picked {
            let mut rng = mutation_rng(seed ^ 0xc11, m, round);
            let mut done = 0;
            for attempt in 0..40 {
                if out_of_time(deadline) {
                    break 'rounds;
                }
                if done == 2 {
                    break;
                }
                let (mutant, what) = malformed::mutate(bytes, &mut rng);
                let validates = malformed::validate(&mutant).is_ok();
                if !validates && attempt % 10 != 9 {
                    continue;
                }
                valid += u64::from(validates);
                done += 1;
                runs += 1;
                let file = dir.join(format!("{name}-{attempt}.wasm"));
                std::fs::write(&file, &mutant).expect("write mutant");
                let invoke = entry(&mutant).flatten();
                match run_child(&file, invoke.as_ref().map(|(n, p)| (n.as_str(), *p)), timeout) {
                    ChildEnd::Status(code) => *statuses.entry(code).or_default() += 1,
                    ChildEnd::TimedOut => timed_out += 1,
                    ChildEnd::Failed(why) => {
                        let name = format!("run-{name}-{seed:#x}-{round}-{attempt}.wasm");
                        failures.push(record(&name, &mutant, &format!("{what}: {why}")))
                    }
                }
                let _ = std::fs::remove_file(&file);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "quickbeam run on mutated modules (seed {seed:#x}): {runs} runs ({valid} of valid modules), exit statuses {statuses:?}, {timed_out} timed out, {} failed, in {:.1} s",
        failures.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}
