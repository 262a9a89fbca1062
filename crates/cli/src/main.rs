//! The `quickbeam` command. Argument parsing and reporting only; the work is in the
//! `quickbeam_cli` library (`run`, `wast`, `compile`, `explain`, `watch`, `cache`).
//!
//! Exit statuses: the guest's own for `run`; 134 after a trap; 124 when `--timeout`
//! stopped the guest; 1 for errors (printed as one `error: ...` line, except that a
//! trap adds its backtrace); 2 for usage errors; 130 when `watch` ends with Ctrl-C; 101
//! if Quickbeam itself panicked.
//!
//! The compiled-code cache never fails a command: a cache directory that cannot be
//! opened is one `warning: ...` line on stderr, and the command goes on without it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::{Args, Parser, Subcommand, ValueEnum};
use quickbeam_cli::cache::{config_with_cache, CacheChoice};
use quickbeam_cli::run::{RunEnd, RunOptions};
use quickbeam_cli::wast::run_wast_file;
use quickbeam_cli::with_large_stack;

/// mimalloc rather than the system allocator: compiles are 10–15% faster and reloads
/// 15–20% (compiling makes many small, short-lived allocations; glibc's malloc also
/// sorts the chunks a large compile freed on the first allocation after it). Measured
/// with `quickbeam-bench reload`, see benches/README.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Quickbeam: a WebAssembly runtime whose reloads cost almost nothing.
///
/// Quickbeam compiles with a streaming single-pass compiler and keeps every compiled
/// function as a stencil in a cache; when a rebuilt module changed only a few functions
/// or constants, loading it again reuses or patches cached code instead of compiling.
/// `run`, `compile` and `watch` use an on-disk cache shared by every run (by default in
/// the user's cache directory, e.g. ~/.cache/quickbeam/v1).
#[derive(Parser)]
#[command(name = "quickbeam", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// Directory of the on-disk compiled-code cache [default: the user's cache
    /// directory, e.g. ~/.cache/quickbeam/v1].
    #[arg(long, global = true, value_name = "DIR", env = "QUICKBEAM_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Do not read or write the on-disk cache (functions compiled by this command are
    /// still shared within it, e.g. across the reloads of `watch`).
    #[arg(long, global = true)]
    no_cache: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(RunArgs),
    Wast(WastArgs),
    Compile(CompileArgs),
    Explain(ExplainArgs),
    Watch(WatchArgs),
    Cache(CacheArgs),
}

/// Run a WebAssembly module: a WASI command's `_start`, or one export with `--invoke`
///
/// The guest gets the arguments after FILE (its `argv[0]` is FILE), the environment given
/// with `--env`, the host's stdin/stdout/stderr, and the directories given with `--dir`.
/// Quickbeam exits with the guest's exit status; after a trap it prints the trap and a
/// backtrace and exits with 134; when `--timeout` stops the guest it prints
/// `error: timed out: the guest ran longer than --timeout ...: wasm trap: interrupt`
/// with a backtrace and exits with 124.
///
/// Examples:
///   quickbeam run hello.wat
///   quickbeam run --dir data::/data app.wasm input.txt
///   quickbeam run --invoke add math.wat 1 2
///   quickbeam run --timeout 10s server.wasm
#[derive(Args)]
#[command(verbatim_doc_comment)]
struct RunArgs {
    /// Call this exported function instead of `_start`; ARGS are then its arguments,
    /// parsed by its parameter types, and each result is printed on its own line.
    #[arg(long, value_name = "NAME")]
    invoke: Option<String>,

    #[command(flatten)]
    limits: LimitArgs,

    #[command(flatten)]
    guest: GuestArgs,

    /// The module: a `.wasm` binary or `.wat` text.
    file: PathBuf,

    /// Arguments for the guest program (or values for `--invoke`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// How long the guest may run (`run` and `watch`).
#[derive(Args)]
struct LimitArgs {
    /// Stop the guest once it has run for DURATION (`500ms`, `10s`, `2m`, `1h`): it
    /// traps with `interrupt` at its next call or loop iteration, and Quickbeam exits
    /// with 124. The code is then compiled with interruption checks (2-5% slower on
    /// the real programs; cached apart from code without them).
    #[arg(long, value_name = "DURATION", value_parser = quickbeam_cli::run::parse_duration)]
    timeout: Option<std::time::Duration>,
}

/// What the guest may see of the host (`run` and `watch`).
#[derive(Args)]
struct GuestArgs {
    /// Give the guest a host directory, under the guest path GUEST (default: HOST as
    /// written). Repeatable.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    dirs: Vec<String>,

    /// Set an environment variable for the guest (NAME alone passes the host's value).
    /// Repeatable.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    envs: Vec<String>,
}

/// Run WebAssembly spec test scripts (`.wast`).
///
/// Prints one line per failed directive (`file:line:col: kind: message`) and ends with
/// the line `N passed, M failed`; exits with 1 if anything failed. Scripts never use
/// the on-disk cache.
#[derive(Args)]
struct WastArgs {
    /// The scripts.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Compile a module into the cache and report what the cache served
///
/// Prints one line: `compiled FILE (N bytes) in 1.3 ms: F functions, R reused,
/// P patched, C compiled`, or with `--report json` one JSON object:
///   {"file":"app.wasm","bytes":N,"functions":F,"reused":R,"patched":P,"compiled":C,"seconds":S}
/// where reused = cache hits needing no patch, patched = hits with constants patched
/// into cached code, compiled = misses, and seconds = the time to compile.
///
/// Examples:
///   quickbeam compile app.wasm
///   quickbeam compile --report json app.wasm
#[derive(Args)]
#[command(verbatim_doc_comment)]
struct CompileArgs {
    /// The module: a `.wasm` binary or `.wat` text.
    file: PathBuf,
    /// Print the report in this format instead of a human line.
    #[arg(long, value_enum, value_name = "FORMAT")]
    report: Option<ReportFormat>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    /// One JSON object on one line.
    Json,
}

/// Show what Quickbeam made of each function: Wasm, Microwasm and x86-64 side by side
///
/// For each defined function (or only `--func`):
///   - a header: index, name, type, exports; the exact key (hash of the raw body, the
///     module context it can see and the engine's settings) and the shape key (the body
///     with its constants and module indices abstracted) of the stencil cache;
///   - three columns, one row group per Wasm operator: the operator (module byte offset
///     and text), its Microwasm, and the x86-64 code generated for it (offset in the
///     function and instruction; `; #k` marks where constant k was written, relocations
///     show the slot and what it stands for, `trap:` marks instructions that may trap);
///   - the constants: #k, value, guard (which values can be patched into the cached code:
///     any, a range, or exactly this one) and sites (code offset and encoding);
///   - the relocations: code offset, kind, slot, and what the slot stands for here.
///
/// Nothing is read from or written to the on-disk cache.
///
/// Examples:
///   quickbeam explain app.wat
///   quickbeam explain --func main app.wasm
#[derive(Args)]
#[command(verbatim_doc_comment)]
struct ExplainArgs {
    /// The module: a `.wasm` binary or `.wat` text.
    file: PathBuf,
    /// Only this function: its index (imports count), its name (`$name` or `name`) or
    /// the name it is exported as.
    #[arg(long, value_name = "N|NAME")]
    func: Option<String>,
}

/// Run a module, and run it again on every change of the file, reporting each reload
///
/// Runs FILE as `quickbeam run` does, then waits for FILE to change (written in place,
/// or replaced by a rename as many editors and build tools do), reloads it through the
/// cache and runs it again, printing on stderr:
///   reloaded in 1.3 ms: 1893 functions, 1889 reused, 3 patched, 1 compiled
/// One engine serves the whole watch, so only what changed is compiled. Errors in the
/// module, traps (a `--timeout` too: it applies to each run) and non-zero exit statuses
/// are printed and the watch goes on; a reload
/// waits for the current run to end. Ctrl-C ends the watch, with status 130.
///
/// Examples:
///   quickbeam watch app.wasm
///   quickbeam watch --dir data app.wasm -- input.txt
#[derive(Args)]
#[command(verbatim_doc_comment)]
struct WatchArgs {
    /// Call this exported function instead of `_start`, with ARGS as its arguments.
    #[arg(long, value_name = "NAME")]
    invoke: Option<String>,

    #[command(flatten)]
    limits: LimitArgs,

    #[command(flatten)]
    guest: GuestArgs,

    /// The module: a `.wasm` binary or `.wat` text.
    file: PathBuf,

    /// Arguments for the guest program (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
}

/// Inspect or clear the on-disk compiled-code cache
///
/// The cache is in `--cache-dir`, else `QUICKBEAM_CACHE_DIR`, else the user's cache
/// directory (e.g. ~/.cache/quickbeam/v1). Its size is bounded: the least recently used
/// entries are evicted first.
#[derive(Args)]
struct CacheArgs {
    #[command(subcommand)]
    action: CacheAction,
}

#[derive(Subcommand)]
enum CacheAction {
    /// Print the cache's directory, number of entries and size.
    Stats,
    /// Delete every entry.
    Clear,
}

/// Status when Quickbeam itself panicked.
const EXIT_PANIC: u8 = 101;

/// The message and location of the last panic (printed as one `error:` line).
static PANIC: Mutex<Option<String>> = Mutex::new(None);

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let msg = quickbeam_cli::panic_message(info.payload());
        *PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{msg}{location}"));
    }));
    let cli = Cli::parse();
    let choice = CacheChoice::from_flags(cli.cache_dir.clone(), cli.no_cache);
    match cli.command {
        Command::Run(args) => run(args, &choice),
        Command::Wast(args) => wast(args),
        Command::Compile(args) => compile(args, &choice),
        Command::Explain(args) => explain(args),
        Command::Watch(args) => watch(args, &choice),
        Command::Cache(args) => cache(args, cli.cache_dir),
    }
}

/// An engine configuration with the cache `choice`; prints the warning if the cache
/// directory cannot be used.
fn config(choice: &CacheChoice) -> quickbeam::Config {
    let (config, warning) = config_with_cache(choice);
    if let Some(warning) = warning {
        eprintln!("{warning}");
    }
    config
}

/// Prints `error: ...` (one line) and returns status 1.
fn error(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
    ExitCode::FAILURE
}

fn internal_error(payload_msg: String) -> ExitCode {
    let msg = PANIC.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or(payload_msg);
    eprintln!("error: internal error: Quickbeam panicked: {}", msg.replace('\n', " "));
    ExitCode::from(EXIT_PANIC)
}

fn run_options(
    file: PathBuf,
    args: Vec<String>,
    invoke: Option<String>,
    guest: GuestArgs,
    limits: LimitArgs,
    choice: &CacheChoice,
) -> RunOptions {
    let dirs = guest
        .dirs
        .iter()
        .map(|d| match d.split_once("::") {
            Some((host, guest)) => (PathBuf::from(host), guest.to_string()),
            None => (PathBuf::from(d), d.clone()),
        })
        .collect();
    let envs = guest
        .envs
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), std::env::var(e).unwrap_or_default()),
        })
        .collect();
    RunOptions { file, args, invoke, dirs, envs, config: config(choice), timeout: limits.timeout }
}

fn run(args: RunArgs, choice: &CacheChoice) -> ExitCode {
    let opts = run_options(args.file, args.args, args.invoke, args.guest, args.limits, choice);
    match with_large_stack(|| quickbeam_cli::run::run(&opts)) {
        Ok(RunEnd::Exit(code)) => exit_status(code),
        Ok(RunEnd::Error(e, code)) => {
            eprintln!("error: {e:#}");
            exit_status(code)
        }
        Err(panic) => internal_error(panic),
    }
}

fn compile(args: CompileArgs, choice: &CacheChoice) -> ExitCode {
    let config = config(choice);
    let file = args.file.display().to_string();
    match with_large_stack(|| quickbeam_cli::compile::compile(&config, &args.file)) {
        Ok(Ok(report)) => {
            match args.report {
                Some(ReportFormat::Json) => println!("{}", quickbeam_cli::compile::report_json(&file, &report)),
                None => println!("{}", quickbeam_cli::compile::report_human(&file, &report)),
            }
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => error(&e),
        Err(panic) => internal_error(panic),
    }
}

fn explain(args: ExplainArgs) -> ExitCode {
    match with_large_stack(|| quickbeam_cli::explain::explain(&args.file, args.func.as_deref())) {
        Ok(Ok(text)) => {
            use std::io::Write as _;
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => error(&e),
        Err(panic) => internal_error(panic),
    }
}

fn watch(args: WatchArgs, choice: &CacheChoice) -> ExitCode {
    let opts = run_options(args.file, args.args, args.invoke, args.guest, args.limits, choice);
    if let Err(e) = quickbeam_cli::watch::exit_on_ctrl_c() {
        eprintln!("warning: {e:#}");
    }
    match with_large_stack(|| quickbeam_cli::watch::watch(&opts)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => error(&e),
        Err(panic) => internal_error(panic),
    }
}

fn cache(args: CacheArgs, dir: Option<PathBuf>) -> ExitCode {
    // `--no-cache` does not apply: these commands are about the on-disk cache itself.
    let dir = match CacheChoice::from_flags(dir, false).directory() {
        Ok(dir) => dir,
        Err(e) => return error(&e),
    };
    let result = match args.action {
        CacheAction::Stats => quickbeam_cli::cache::stats(&dir),
        CacheAction::Clear => quickbeam_cli::cache::clear(&dir),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => error(&e),
    }
}

/// A guest's exit status as a process status (statuses outside 0..=255 wrap as on Unix).
fn exit_status(code: i32) -> ExitCode {
    ExitCode::from(code as u8)
}

fn wast(args: WastArgs) -> ExitCode {
    let result = with_large_stack(|| {
        let config = quickbeam::Config::new();
        let (mut passed, mut failed) = (0, 0);
        for file in &args.files {
            match run_wast_file(file, &config) {
                Ok(report) => {
                    for line in report.failure_lines() {
                        println!("{line}");
                    }
                    passed += report.passed();
                    failed += report.failed();
                }
                Err(e) => {
                    println!("error: {e:#}");
                    failed += 1;
                }
            }
        }
        println!("{passed} passed, {failed} failed");
        failed
    });
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(panic) => internal_error(panic),
    }
}
