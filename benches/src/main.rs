//! `quickbeam-bench`: measures what DESIGN.md §9 budgets, as ratios against references
//! measured in the same run (SHA-256 of the bytes, wasmparser validation).
//!
//! Usage: `cargo run --release -p quickbeam-benches -- compile [FILE.wasm ...]`
//! (defaults: the real programs in `target/fixtures/`, `../shared/corpus/` and the large
//! modules `benches/fetch-large.sh` puts in `target/bench-modules/`);
//! `... -- reload [FILE.wasm ...]` (cold compile, warm reload in process and from disk,
//! reload after a one-function and a one-constant edit; see `reload.rs`);
//! `... -- run` (the real programs' run time next to their native builds; the native
//! time includes process start-up, a millisecond or so; `run --checks` adds the run
//! time without checks, with epoch interruption checks and with fuel metering, as the
//! thread's CPU time, best of 5 runs interleaved, and the cost of the checks);
//! `... -- features [FILE.wasm ...]` (which post-MVP features a module needs);
//! `... -- run-once FILE.wasm [plain|epochs|fuel]` (one run, for `valgrind` or `perf`).
//! Every figure is the best of several runs, single-threaded (`RAYON_NUM_THREADS=1`
//! unless the environment sets it). See `benches/README.md`.

mod reload;

/// The `quickbeam` binary's allocator, so that figures are what the CLI gets.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result};
use sha2::Digest;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn best_of(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn default_files() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut v = Vec::new();
    for name in ["sqlite", "lua", "zstd", "bzip2"] {
        v.push(root.join("target/fixtures").join(format!("{name}.wasm")));
    }
    for name in ["coremark", "bz2", "pulldown-cmark", "spidermonkey"] {
        v.push(root.join("../shared/corpus").join(format!("{name}.wasm")));
    }
    let large = root.join("target/bench-modules");
    let mut big: Vec<PathBuf> = std::fs::read_dir(&large)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "wasm")).collect())
        .unwrap_or_default();
    if big.is_empty() {
        eprintln!("note: no module over 10 MB in {}: run `bash benches/fetch-large.sh` to add one", large.display());
    }
    big.sort();
    v.extend(big);
    v.into_iter().filter(|p| p.exists()).collect()
}

fn compile_all(bytes: &[u8]) -> Result<usize> {
    let (env, inputs) = quickbeam_environ::ModuleEnv::parse(bytes, quickbeam_environ::supported_features())?;
    let mut c = quickbeam_codegen::FunctionCompiler::new();
    let mut code = 0;
    for input in inputs {
        code += c.compile(&env, input).map_err(|e| anyhow::anyhow!("{e}"))?.stencil.code.len();
    }
    Ok(code)
}

fn bench_compile(files: &[PathBuf]) -> Result<()> {
    println!("Cold compile, one thread (best of 5). Budget (DESIGN.md §9): >= 3x Winch's ~14 MB/s, about 40 MB/s.");
    println!("{:<22} {:>10} {:>12} {:>12} {:>12} {:>9} {:>9}", "module", "bytes", "compile MB/s", "validate MB/s", "sha256 MB/s", "code/wasm", "vs valid.");
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let mut code = 0;
        let t_compile = best_of(5, || {
            code = compile_all(&bytes)?;
            Ok(())
        })?;
        let t_validate = best_of(5, || {
            wasmparser::Validator::new_with_features(quickbeam_environ::supported_features()).validate_all(&bytes)?;
            Ok(())
        })?;
        let t_hash = best_of(5, || {
            std::hint::black_box(sha2::Sha256::digest(&bytes));
            Ok(())
        })?;
        println!(
            "{:<22} {:>10} {:>12.1} {:>12.1} {:>12.1} {:>9.2} {:>8.2}x",
            f.file_name().unwrap().to_string_lossy(),
            bytes.len(),
            mbps(bytes.len(), t_compile),
            mbps(bytes.len(), t_validate),
            mbps(bytes.len(), t_hash),
            code as f64 / bytes.len() as f64,
            t_compile.as_secs_f64() / t_validate.as_secs_f64(),
        );
    }
    Ok(())
}

/// Compiles and runs a WASI command once with captured output; returns (compile, run)
/// in wall-clock time, and the run's CPU time.
fn run_once(bytes: &[u8], config: &quickbeam::Config) -> Result<(Duration, Duration, Duration)> {
    use quickbeam::*;
    use quickbeam_wasi::*;
    let engine = Engine::new(config)?;
    let t = Instant::now();
    let module = Module::new(&engine, bytes)?;
    let compile = t.elapsed();
    let out = OutputBuffer::new();
    let wasi = WasiCtx::builder().arg("bench").stdout_capture(out.clone()).build();
    let mut store = Store::new(&engine, wasi);
    // Checks compiled in (if configured) but never firing.
    store.set_epoch_deadline(u64::MAX);
    let _ = store.set_fuel(u64::MAX);
    let mut linker = Linker::new(&engine);
    add_to_linker(&mut linker, |cx: &mut WasiCtx| cx)?;
    let t = Instant::now();
    let cpu = reload::thread_cpu_time();
    let instance = linker.instantiate(&mut store, &module)?;
    let start = instance.get_func(&mut store, "_start").context("no _start")?;
    match start.call(&mut store, &[], &mut []) {
        Ok(()) => {}
        Err(e) if e.chain().any(|c| c.downcast_ref::<I32Exit>().is_some_and(|x| x.0 == 0)) => {}
        Err(e) => return Err(e),
    }
    Ok((compile, t.elapsed(), reload::thread_cpu_time() - cpu))
}

/// [`run_once`] on a thread with a large stack.
fn run_on_large_stack(bytes: &[u8], config: &quickbeam::Config) -> Result<(Duration, Duration, Duration)> {
    let (b, config) = (bytes.to_vec(), config.clone());
    quickbeam_cli::with_large_stack(move || run_once(&b, &config)).map_err(|p| anyhow::anyhow!("panicked: {p}"))?
}

/// The run's CPU time without checks, with epoch checks and with fuel: best of 5, the
/// three interleaved so that a busy minute of the machine hits all three alike.
fn run_checks(bytes: &[u8]) -> Result<[Duration; 3]> {
    let mut configs = [quickbeam::Config::new(), quickbeam::Config::new(), quickbeam::Config::new()];
    configs[1].epoch_interruption(true);
    configs[2].consume_fuel(true);
    let mut best = [Duration::MAX; 3];
    for _ in 0..5 {
        for (b, config) in best.iter_mut().zip(&configs) {
            *b = (*b).min(run_on_large_stack(bytes, config)?.2);
        }
    }
    Ok(best)
}

/// Run time of the real programs (best of 3), next to their native builds; with
/// `checks`, also with epoch interruption checks and with fuel metering.
fn bench_run(checks: bool) -> Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures");
    println!("Real programs (best of 3; build them with `bash fixtures/build.sh`). Budget (DESIGN.md §9): within 1.3x of Cranelift.");
    print!("{:<10} {:>12} {:>12} {:>12} {:>10}", "program", "compile ms", "run ms", "native ms", "run/native");
    if checks {
        print!(" {:>10} {:>10} {:>8} {:>10} {:>8}", "cpu ms", "epochs ms", "+epochs", "fuel ms", "+fuel");
    }
    println!();
    for name in ["sqlite", "lua", "zstd", "bzip2"] {
        let bytes = std::fs::read(dir.join(format!("{name}.wasm"))).with_context(|| format!("{name}.wasm missing"))?;
        let (mut compile, mut run) = (Duration::MAX, Duration::MAX);
        for _ in 0..3 {
            let (c, r, _) = run_on_large_stack(&bytes, &quickbeam::Config::new())?;
            compile = compile.min(c);
            run = run.min(r);
        }
        let native = best_of(3, || {
            let out = std::process::Command::new(dir.join(format!("{name}.native"))).output()?;
            anyhow::ensure!(out.status.success(), "native {name} failed");
            Ok(())
        })?;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        print!("{:<10} {:>12.1} {:>12.1} {:>12.1} {:>9.2}x", name, ms(compile), ms(run), ms(native), ms(run) / ms(native));
        if checks {
            let [plain, epochs, fuel] = run_checks(&bytes)?;
            let cost = |d: Duration| (ms(d) / ms(plain) - 1.0) * 100.0;
            print!(" {:>10.1} {:>10.1} {:>7.1}% {:>10.1} {:>7.1}%", ms(plain), ms(epochs), cost(epochs), ms(fuel), cost(fuel));
        }
        println!();
    }
    Ok(())
}

/// How many times the profiling loops (`warm-loop`, `edit-loop`, `flip-loop`) repeat:
/// `QUICKBEAM_BENCH_LOOPS`, else `default`.
fn loops(default: usize) -> Result<usize> {
    match std::env::var("QUICKBEAM_BENCH_LOOPS") {
        Ok(n) => n.parse().with_context(|| format!("QUICKBEAM_BENCH_LOOPS={n} is not a count")),
        Err(_) => Ok(default),
    }
}

fn main() -> Result<()> {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // One thread: Module::new compiles large modules on rayon's pool.
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args.split_first().map(|(c, r)| (c.as_str(), r)).unwrap_or(("compile", &[]));
    let files: Vec<PathBuf> = if rest.is_empty() { default_files() } else { rest.iter().map(PathBuf::from).collect() };
    match cmd {
        "compile" => bench_compile(&files),
        "run" => bench_run(rest.iter().any(|a| a == "--checks")),
        "reload" => reload::bench_reload(&files),
        "features" => reload::features(&files),
        "warm-loop" => reload::warm_loop(&files, loops(200)?),
        "edit-loop" => reload::edit_loop(&files, loops(20)?),
        "flip-loop" => reload::flip_loop(&files, loops(200)?),
        "run-once" => {
            let mut config = quickbeam::Config::new();
            match rest.get(1).map(String::as_str) {
                None | Some("plain") => {}
                Some("epochs") => {
                    config.epoch_interruption(true);
                }
                Some("fuel") => {
                    config.consume_fuel(true);
                }
                Some(other) => anyhow::bail!("unknown setting `{other}` (plain, epochs or fuel)"),
            }
            let bytes = std::fs::read(&files[0]).with_context(|| format!("failed to read {}", files[0].display()))?;
            let (compile, run, cpu) = run_on_large_stack(&bytes, &config)?;
            println!("compile {compile:?}, run {run:?} (cpu {cpu:?})");
            Ok(())
        }
        other => anyhow::bail!("unknown benchmark `{other}` (try: compile, run, reload, features, warm-loop, edit-loop, flip-loop, run-once)"),
    }
}
