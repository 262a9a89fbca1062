//! The reload benchmark (issue 3, acceptance 6; issue 4, acceptance 6; DESIGN.md §9):
//! per module, a cold compile, a warm reload with every function cached (in process, and
//! from disk by a new engine), SHA-256 of the same bytes, and a reload after a
//! one-function edit and after a one-constant edit, as fractions of the cold compile;
//! then the time from a one-constant edit of the largest real program to its run
//! starting again, next to its cold compile.
//!
//! Times are the calling thread's CPU time (user + system, `CLOCK_THREAD_CPUTIME_ID`) by
//! default, best of [`RUNS`]: with one rayon thread `Module::new` runs entirely on the
//! calling thread, and on a shared machine CPU time is what stays comparable from one
//! minute to the next. `QB_BENCH_CLOCK=wall` measures wall-clock time instead.
//!
//! The edits: the real programs' rebuild variants (`target/fixtures/variants/`, see
//! `fixtures/README.md`): `edit` for the function edit and `literal` for the constant
//! edit. Modules without variants get synthesized ones ([`synthesize`]): one `i32.add`
//! flipped to `i32.sub`, and one `i32.const` operand of an `i32.add` changed, in a
//! function of about the module's median body size. An edited module's bytes are copied
//! into a fresh buffer just before its timed `Module::new` (not timed): as in `watch`,
//! which reads the file, then compiles it, the bytes arrive fresh in memory, not left
//! cold by the base module's compile in between.

use anyhow::{bail, Context, Result};
use quickbeam::{CompileReport, Config, Engine, Linker, Module, Store};
use quickbeam_wasi::{add_to_linker, WasiCtx};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmparser::{Operator, Parser, Payload};

use crate::mbps;

/// Runs per figure (best of).
const RUNS: usize = 5;

/// Whether times are wall-clock (`QB_BENCH_CLOCK=wall`) or the thread's CPU time.
fn wall_clock() -> bool {
    std::env::var("QB_BENCH_CLOCK").is_ok_and(|v| v == "wall")
}

/// A point in time of the benchmark's clock.
#[derive(Clone, Copy)]
struct Stamp {
    wall: Instant,
    cpu: Duration,
}

pub(crate) fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID needs nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn now() -> Stamp {
    Stamp { wall: Instant::now(), cpu: thread_cpu_time() }
}

impl Stamp {
    fn elapsed(&self) -> Duration {
        if wall_clock() {
            self.wall.elapsed()
        } else {
            thread_cpu_time().saturating_sub(self.cpu)
        }
    }
}

/// The best time of `runs` calls of `f`.
fn best_of(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t = now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

/// A fresh cache directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<TempDir> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("quickbeam-bench-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An engine with the in-process cache only.
fn memory_engine() -> Result<Engine> {
    Engine::new(&Config::new())
}

/// An engine whose cache is backed by the disk store in `dir`.
fn disk_engine(dir: &TempDir) -> Result<Engine> {
    let mut config = Config::new();
    config.cache_directory(&dir.0)?;
    Engine::new(&config)
}

/// An edited copy of a module and what the edit was.
struct Edit {
    wasm: Vec<u8>,
    what: String,
}

/// The best time of `Module::new(edited)` in an engine (or a new engine on a directory)
/// that has compiled only `base`, and the report of that compile.
fn time_edit(base: &[u8], edit: &Edit, disk: bool) -> Result<(Duration, CompileReport)> {
    let mut best = (Duration::MAX, CompileReport::default());
    for _ in 0..RUNS {
        let dir = TempDir::new("edit")?;
        let engine = if disk { disk_engine(&dir)? } else { memory_engine()? };
        Module::new(&engine, base)?;
        let engine = if disk {
            // Entries reach the store on a background thread.
            engine.flush_cache();
            drop(engine);
            disk_engine(&dir)?
        } else {
            engine
        };
        // The bytes as a read of the file leaves them (see the module docs).
        let wasm = std::hint::black_box(edit.wasm.clone());
        let t = now();
        let m = Module::new(&engine, &wasm)?;
        let d = t.elapsed();
        if d < best.0 {
            best = (d, m.compile_report());
        }
    }
    Ok(best)
}

/// Where the real programs' rebuild variants are, if `file` is one of the real programs.
fn fixture_variant(file: &Path, variant: &str) -> Option<PathBuf> {
    let stem = file.file_stem()?.to_str()?;
    let p = file.parent()?.join("variants").join(format!("{stem}-{variant}.wasm"));
    p.exists().then_some(p)
}

fn label(r: &CompileReport) -> String {
    format!("{}r/{}p/{}c", r.reused, r.patched, r.compiled)
}

pub fn bench_reload(files: &[PathBuf]) -> Result<()> {
    println!(
        "Reload, one thread (RAYON_NUM_THREADS={}), {} time, best of {RUNS}. Budgets (DESIGN.md §9): warm reload in \
         process >= 1 GB/s (close to SHA-256); after a one-function or one-constant edit < 2% of a cold compile.",
        rayon_threads(),
        if wall_clock() { "wall-clock" } else { "thread CPU" }
    );
    println!("cold: Module::new in a fresh engine; warm: every function cached, same engine (mem) or a new engine on the same cache directory (disk).");
    println!(
        "{:<20} {:>9} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "module", "MB", "funcs", "cold MB/s", "mem MB/s", "disk MB/s", "sha MB/s"
    );
    let mut notes = Vec::new();
    // (module, edit, what, cold, [(time, report); mem, disk])
    let mut edit_rows = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let n = bytes.len();
        let mut functions = 0;
        let cold = best_of(RUNS, || {
            functions = Module::new(&memory_engine()?, &bytes)?.compile_report().functions;
            Ok(())
        })?;
        let engine = memory_engine()?;
        Module::new(&engine, &bytes)?;
        let mut warm_report = CompileReport::default();
        let warm = best_of(RUNS, || {
            warm_report = Module::new(&engine, &bytes)?.compile_report();
            Ok(())
        })?;
        if warm_report.compiled != 0 {
            notes.push(format!("{name}: a warm reload in process compiled {} functions", warm_report.compiled));
        }
        let dir = TempDir::new("warm")?;
        let first = disk_engine(&dir)?;
        Module::new(&first, &bytes)?;
        first.flush_cache();
        drop(first);
        let mut disk = Duration::MAX;
        for _ in 0..RUNS {
            let engine = disk_engine(&dir)?;
            let t = now();
            let m = Module::new(&engine, &bytes)?;
            disk = disk.min(t.elapsed());
            if m.compile_report().compiled != 0 {
                notes.push(format!("{name}: a warm reload from disk compiled {} functions", m.compile_report().compiled));
            }
        }
        drop(dir);
        let hash = best_of(RUNS, || {
            std::hint::black_box(sha2::Sha256::digest(&bytes));
            Ok(())
        })?;

        println!(
            "{:<20} {:>9.2} {:>6} {:>9.1} {:>9.0} {:>9.0} {:>9.0}",
            name,
            n as f64 / 1e6,
            functions,
            mbps(n, cold),
            mbps(n, warm),
            mbps(n, disk),
            mbps(n, hash),
        );

        // One-function and one-constant edits (a fixture variant, else synthesized), and
        // the fixtures' added function and added string (shifted indices and data).
        let edits = [
            ("edit", Some(EditKind::Opcode)),
            ("literal", Some(EditKind::Constant)),
            ("addfn", None),
            ("string", None),
        ];
        for (variant, synthesized) in edits {
            let edit = match (fixture_variant(f, variant), synthesized) {
                (Some(p), _) => Edit {
                    wasm: std::fs::read(&p)?,
                    what: format!("fixture variant {}", p.file_name().unwrap().to_string_lossy()),
                },
                (None, Some(kind)) => synthesize(&bytes, kind)?,
                (None, None) => continue,
            };
            let mem = time_edit(&bytes, &edit, false)?;
            let disk = time_edit(&bytes, &edit, true)?;
            let changed = changed_bodies(&bytes, &edit.wasm)?;
            edit_rows.push((name.clone(), variant, edit.what, cold, [mem, disk], changed));
        }
    }
    println!(
        "\nAfter an edit: Module::new of the edited module in an engine (mem) or a new engine on a directory (disk) that \
         compiled only the base; % of the base's cold compile (budget < 2%); r/p/c = reused/patched/compiled."
    );
    println!(
        "changed: the bodies that differ from the base's at the same index, and their share of the code section's \
         bytes (what a one-function edit's reload is proportional to; - when functions were added)."
    );
    println!("{:<20} {:<8} {:>28} {:>28} {:>16}  the edit", "module", "edit", "mem", "disk", "changed");
    for (name, variant, what, cold, times, changed) in edit_rows {
        let cell = |(t, r): (Duration, CompileReport)| {
            format!("{:.2} ms {:>5.1}% {}", t.as_secs_f64() * 1e3, 100.0 * t.as_secs_f64() / cold.as_secs_f64(), label(&r))
        };
        let changed = changed.map_or_else(|| "-".to_string(), |(n, share)| format!("{n}, {:.1}%", 100.0 * share));
        println!("{:<20} {:<8} {:>28} {:>28} {:>16}  {what}", name, variant, cell(times[0]), cell(times[1]), changed);
    }
    for note in notes {
        println!("  {note}");
    }
    hot_reload_to_run()
}

/// How many of `edited`'s function bodies differ from `base`'s at the same index, and
/// their share of `edited`'s body bytes; `None` when the two have different numbers of
/// bodies.
fn changed_bodies(base: &[u8], edited: &[u8]) -> Result<Option<(usize, f64)>> {
    let bodies = |wasm: &[u8]| -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for payload in Parser::new(0).parse_all(wasm) {
            if let Payload::CodeSectionEntry(body) = payload? {
                out.push(body.as_bytes().to_vec());
            }
        }
        Ok(out)
    };
    let (a, b) = (bodies(base)?, bodies(edited)?);
    if a.len() != b.len() {
        return Ok(None);
    }
    let total: usize = b.iter().map(Vec::len).sum();
    let changed: Vec<usize> = a.iter().zip(&b).filter(|(x, y)| x != y).map(|(_, y)| y.len()).collect();
    Ok(Some((changed.len(), changed.iter().sum::<usize>() as f64 / total.max(1) as f64)))
}

fn rayon_threads() -> String {
    std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into())
}

/// A profiling aid: `n` warm reloads of each file in process (every function cached), e.g.
/// under `perf record`.
pub fn warm_loop(files: &[PathBuf], n: usize) -> Result<()> {
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let engine = memory_engine()?;
        Module::new(&engine, &bytes)?;
        let t = now();
        for _ in 0..n {
            Module::new(&engine, &bytes)?;
        }
        let d = t.elapsed() / n as u32;
        println!("{}: {n} warm reloads, {:.2} ms each ({:.0} MB/s)", f.display(), d.as_secs_f64() * 1e3, mbps(bytes.len(), d));
    }
    Ok(())
}

// ---- a one-constant edit of the largest real program, to its run starting again ----------

/// Instantiates a WASI command and looks up `_start`, stopping before calling it: the
/// moment its run would start.
fn ready_to_run(engine: &Engine, linker: &Linker<WasiCtx>, module: &Module) -> Result<()> {
    let wasi = WasiCtx::builder().arg("bench").build();
    let mut store = Store::new(engine, wasi);
    let instance = linker.instantiate(&mut store, module)?;
    let start = instance.get_func(&mut store, "_start").context("no _start")?;
    std::hint::black_box(start);
    Ok(())
}

/// Issue 4, acceptance 6: after a one-constant edit of the largest real program
/// (`sqlite-literal`), the time from the new bytes to its run starting (compile through
/// the warm cache, instantiate, find `_start`), next to its cold compile. Target: >= 50x
/// faster. As in `watch`, the base build has run and its module is dropped when the
/// edited bytes arrive (so the new image can be built over the old one's mapping).
fn hot_reload_to_run() -> Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures");
    let (base_path, edit_path) = (dir.join("sqlite.wasm"), dir.join("variants/sqlite-literal.wasm"));
    if !edit_path.exists() {
        println!("\nhot reload: skipped ({} missing; build it with `bash fixtures/build.sh`)", edit_path.display());
        return Ok(());
    }
    let (base, edited) = (std::fs::read(&base_path)?, std::fs::read(&edit_path)?);
    let mut cold = Duration::MAX;
    let mut cold_to_run = Duration::MAX;
    let mut hot = Duration::MAX;
    let mut hot_compile = Duration::MAX;
    let mut report = CompileReport::default();
    for _ in 0..RUNS {
        // Cold: a fresh engine compiles the edited program and starts it.
        let engine = memory_engine()?;
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker, |cx: &mut WasiCtx| cx)?;
        let t = now();
        let m = Module::new(&engine, &edited)?;
        cold = cold.min(t.elapsed());
        ready_to_run(&engine, &linker, &m)?;
        cold_to_run = cold_to_run.min(t.elapsed());
        drop(m);
        // Hot: the engine that ran the base build gets the edited bytes once the base's
        // run has ended, as in `watch` (which drops a module when its run ends).
        let engine = memory_engine()?;
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker, |cx: &mut WasiCtx| cx)?;
        let m = Module::new(&engine, &base)?;
        ready_to_run(&engine, &linker, &m)?;
        drop(m);
        // The bytes as a read of the file leaves them (see the module docs).
        let edited = std::hint::black_box(edited.clone());
        let t = now();
        let m = Module::new(&engine, &edited)?;
        let c = t.elapsed();
        ready_to_run(&engine, &linker, &m)?;
        let d = t.elapsed();
        if d < hot {
            (hot, hot_compile, report) = (d, c, m.compile_report());
        }
    }
    if report.compiled != 0 || report.patched == 0 {
        bail!("sqlite-literal after sqlite: expected a patch and no compile, got {report:?}");
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\nOne-constant edit of the largest real program (sqlite -> sqlite-literal, {} bytes), to its run starting \
         (compile, instantiate, find _start), best of {RUNS}. Target (issue 4): >= 50x faster than a cold compile.",
        edited.len()
    );
    println!(
        "  cold: compile {:.1} ms, to run start {:.1} ms | after the edit, warm engine: compile {:.2} ms ({}), to run \
         start {:.2} ms | {:.0}x faster than the cold compile, {:.0}x than cold to run start",
        ms(cold),
        ms(cold_to_run),
        ms(hot_compile),
        label(&report),
        ms(hot),
        cold.as_secs_f64() / hot.as_secs_f64(),
        cold_to_run.as_secs_f64() / hot.as_secs_f64()
    );
    Ok(())
}

// ---- synthesized edits ---------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum EditKind {
    /// One `i32.add` becomes `i32.sub`: the function must be compiled again.
    Opcode,
    /// The `i32.const` operand of one `local.get; i32.const; i32.add` changes (bit 0 of
    /// its first LEB128 byte flips, so the encoding keeps its length): the function can
    /// be patched.
    Constant,
}

/// A copy of `wasm` with one edit of `kind` in one function: among the functions with
/// such a site, the one whose body size is closest to the median body size of the module.
fn synthesize(wasm: &[u8], kind: EditKind) -> Result<Edit> {
    let mut sizes = Vec::new();
    let mut names = std::collections::HashMap::new();
    // (body size, function index, byte offset to change, new byte)
    let mut sites: Vec<(usize, u32, usize, u8)> = Vec::new();
    let mut imported = 0u32;
    let mut defined = 0u32;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::ImportSection(r) => {
                for i in r.into_imports() {
                    if matches!(i?.ty, wasmparser::TypeRef::Func(_) | wasmparser::TypeRef::FuncExact(_)) {
                        imported += 1;
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let index = imported + defined;
                defined += 1;
                let size = body.as_bytes().len();
                sizes.push(size);
                let mut ops = body.get_operators_reader()?;
                let mut window: [Option<(Operator, usize)>; 3] = [None, None, None];
                while !ops.eof() {
                    let (op, at) = ops.read_with_offset()?;
                    window = [window[1].take(), window[2].take(), Some((op, at as usize))];
                    let site = match (kind, &window) {
                        (EditKind::Opcode, [_, _, Some((Operator::I32Add, at))]) => Some((*at, 0x6b)),
                        (
                            EditKind::Constant,
                            [Some((Operator::LocalGet { .. }, _)), Some((Operator::I32Const { .. }, at)), Some((Operator::I32Add, _))],
                        ) => Some((at + 1, wasm[at + 1] ^ 1)),
                        _ => None,
                    };
                    if let Some((at, byte)) = site {
                        sites.push((size, index, at, byte));
                        break;
                    }
                }
            }
            Payload::CustomSection(c) => {
                if let wasmparser::KnownCustom::Name(r) = c.as_known() {
                    for n in r.into_iter().flatten() {
                        if let wasmparser::Name::Function(map) = n {
                            for naming in map.into_iter().flatten() {
                                names.insert(naming.index, naming.name.to_string());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    sizes.sort_unstable();
    let median = sizes.get(sizes.len() / 2).copied().unwrap_or(0);
    let Some(&(size, index, at, byte)) = sites.iter().min_by_key(|s| (s.0.abs_diff(median), s.1)) else {
        bail!("no site for a synthesized edit");
    };
    let mut copy = wasm.to_vec();
    let old = copy[at];
    copy[at] = byte;
    let name = names.get(&index).map_or_else(|| format!("function {index}"), |n| format!("function {index} `{n}`"));
    let what = match kind {
        EditKind::Opcode => format!("synthesized: i32.add -> i32.sub at byte {at} of {name} ({size}-byte body; median {median})"),
        EditKind::Constant => format!(
            "synthesized: i32.const operand of an i32.add changed (LEB byte {old:#04x} -> {byte:#04x}) at byte {at} of {name} ({size}-byte body; median {median})"
        ),
    };
    Ok(Edit { wasm: copy, what })
}

/// Which post-MVP features a module needs: validates it with each of Quickbeam's
/// supported features turned off in turn.
pub fn features(files: &[PathBuf]) -> Result<()> {
    use wasmparser::WasmFeatures as F;
    let supported = quickbeam_environ::supported_features();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let valid = wasmparser::Validator::new_with_features(supported).validate_all(&bytes);
        let mut needs = Vec::new();
        for (flag, name) in supported.iter_names().map(|(n, flag)| (flag, n)) {
            if flag == F::FLOATS || !supported.contains(flag) {
                continue;
            }
            if wasmparser::Validator::new_with_features(supported - flag).validate_all(&bytes).is_err() {
                needs.push(name);
            }
        }
        println!(
            "{}: {} bytes; {}; needs, of Quickbeam's features: {}",
            f.display(),
            bytes.len(),
            match valid {
                Ok(_) => "valid with Quickbeam's features".to_string(),
                Err(e) => format!("NOT valid with Quickbeam's features: {e}"),
            },
            if needs.is_empty() { "none (core 1.0)".to_string() } else { needs.join(", ") }
        );
    }
    Ok(())
}

/// A profiling aid: `n` times, a fresh engine compiles `files[0]` (the base), then
/// `files[1]` (an edit of it) is timed, as a reload after an edit in `watch`.
pub fn edit_loop(files: &[PathBuf], n: usize) -> Result<()> {
    let [base, edit] = files else { bail!("edit-loop takes two files: BASE EDITED") };
    let (base, edit) = (std::fs::read(base)?, std::fs::read(edit)?);
    // Two functions, so that a profile tells the base's compile from the edit's.
    #[inline(never)]
    fn base_compile(engine: &Engine, wasm: &[u8]) -> Result<()> {
        Module::new(engine, wasm).map(drop)
    }
    #[inline(never)]
    fn edit_reload(engine: &Engine, wasm: &[u8]) -> Result<()> {
        let m = Module::new(engine, wasm)?;
        std::hint::black_box(m.compile_report().compiled);
        Ok(())
    }
    let mut total = Duration::ZERO;
    for _ in 0..n {
        let engine = memory_engine()?;
        base_compile(&engine, &base)?;
        // The bytes as a read of the file leaves them (see the module docs).
        let edit = std::hint::black_box(edit.clone());
        let t = now();
        edit_reload(&engine, &edit)?;
        total += t.elapsed();
    }
    println!("{}: {n} reloads after the edit, {:.3} ms each", files[1].display(), total.as_secs_f64() * 1e3 / n as f64);
    Ok(())
}

/// A profiling aid: one engine compiles `files[0]` (the base) and `files[1]` (an edit of
/// it) once, then reloads them alternately `n` times, each built over the other's
/// image: every function is cached, so this times what a reload after an edit costs
/// besides compiling the edited functions (parsing, lookups, finalizing the image).
pub fn flip_loop(files: &[PathBuf], n: usize) -> Result<()> {
    let [base, edit] = files else { bail!("flip-loop takes two files: BASE EDITED") };
    let (base, edit) = (std::fs::read(base)?, std::fs::read(edit)?);
    let engine = memory_engine()?;
    Module::new(&engine, &base)?;
    Module::new(&engine, &edit)?;
    let mut total = [Duration::ZERO; 2];
    for _ in 0..n {
        for (i, wasm) in [&base, &edit].into_iter().enumerate() {
            let t = now();
            Module::new(&engine, wasm)?;
            total[i] += t.elapsed();
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / n as f64;
    println!("{n} reloads each way, every function cached: base {:.3} ms, edited {:.3} ms", ms(total[0]), ms(total[1]));
    Ok(())
}
