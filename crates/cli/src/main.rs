//! The `quickbeam` command. Argument parsing and reporting only; the work is in the
//! `quickbeam_cli` library (`run`, `wast`).
//!
//! Exit statuses: the guest's own for `run`; 134 after a trap; 1 for errors (printed
//! as one `error: ...` line, except that a trap adds its backtrace); 2 for usage errors
//! and commands that are not implemented yet; 101 if Quickbeam itself panicked.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::{Args, Parser, Subcommand, ValueEnum};
use quickbeam_cli::run::{RunEnd, RunOptions};
use quickbeam_cli::wast::run_wast_file;
use quickbeam_cli::with_large_stack;

/// Quickbeam: a WebAssembly runtime whose reloads cost almost nothing.
///
/// Quickbeam compiles with a streaming single-pass compiler and keeps every compiled
/// function as a stencil in a cache; when a rebuilt module changed only a few functions
/// or constants, loading it again reuses or patches cached code instead of compiling.
#[derive(Parser)]
#[command(name = "quickbeam", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// Directory of the compiled-code cache [default: the user's cache directory].
    #[arg(long, global = true, value_name = "DIR", env = "QUICKBEAM_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Do not read or write the compiled-code cache.
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
/// The guest gets the arguments after FILE (its argv[0] is FILE), the environment given
/// with `--env`, the host's stdin/stdout/stderr, and the directories given with `--dir`.
/// Quickbeam exits with the guest's exit status; after a trap it prints the trap and a
/// backtrace and exits with 134.
///
/// Examples:
///   quickbeam run hello.wat
///   quickbeam run --dir data::/data app.wasm input.txt
///   quickbeam run --invoke add math.wat 1 2
#[derive(Args)]
#[command(verbatim_doc_comment)]
struct RunArgs {
    /// Call this exported function instead of `_start`; ARGS are then its arguments,
    /// parsed by its parameter types, and each result is printed on its own line.
    #[arg(long, value_name = "NAME")]
    invoke: Option<String>,

    /// Give the guest a host directory, under the guest path GUEST (default: HOST as
    /// written). Repeatable.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    dirs: Vec<String>,

    /// Set an environment variable for the guest (NAME alone passes the host's value).
    /// Repeatable.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    envs: Vec<String>,

    /// The module: a `.wasm` binary or `.wat` text.
    file: PathBuf,

    /// Arguments for the guest program (or values for `--invoke`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Run WebAssembly spec test scripts (`.wast`).
///
/// Prints one line per failed directive (`file:line:col: kind: message`) and ends with
/// the line `N passed, M failed`; exits with 1 if anything failed.
#[derive(Args)]
struct WastArgs {
    /// The scripts.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Compile a module into the cache and report what was reused (not implemented yet).
#[derive(Args)]
struct CompileArgs {
    /// The module: a `.wasm` binary or `.wat` text.
    file: PathBuf,
    /// Print a report: `{"file","bytes","functions","reused","patched","compiled","seconds"}`.
    #[arg(long, value_enum)]
    report: Option<ReportFormat>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Json,
}

/// Show Wasm, Microwasm and x86-64 side by side, with stencil keys, constant sites,
/// guards and relocations (not implemented yet).
#[derive(Args)]
struct ExplainArgs {
    /// The module: a `.wasm` binary or `.wat` text.
    file: PathBuf,
    /// Only this function (index or name).
    #[arg(long, value_name = "N|NAME")]
    func: Option<String>,
}

/// Run a module, and run it again on every change of the file, reporting what each
/// reload reused (not implemented yet).
#[derive(Args)]
struct WatchArgs {
    /// The module: a `.wasm` binary or `.wat` text.
    file: PathBuf,
    /// Arguments for the guest program (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
}

/// Inspect or clear the on-disk compiled-code cache (not implemented yet).
#[derive(Args)]
struct CacheArgs {
    #[command(subcommand)]
    action: CacheAction,
}

#[derive(Subcommand)]
enum CacheAction {
    /// Print the number of entries and their size.
    Stats,
    /// Delete every entry.
    Clear,
}

/// Status for commands that are not implemented yet, and for usage errors.
const EXIT_USAGE: u8 = 2;
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
    // Accepted on every command; the cache does not exist yet.
    let _ = (&cli.cache_dir, cli.no_cache);
    match cli.command {
        Command::Run(args) => run(args),
        Command::Wast(args) => wast(args),
        Command::Compile(_) => not_implemented("compile"),
        Command::Explain(_) => not_implemented("explain"),
        Command::Watch(_) => not_implemented("watch"),
        Command::Cache(_) => not_implemented("cache"),
    }
}

fn not_implemented(command: &str) -> ExitCode {
    eprintln!("error: `quickbeam {command}` is not implemented yet");
    ExitCode::from(EXIT_USAGE)
}

fn internal_error(payload_msg: String) -> ExitCode {
    let msg = PANIC.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or(payload_msg);
    eprintln!("error: internal error: Quickbeam panicked: {}", msg.replace('\n', " "));
    ExitCode::from(EXIT_PANIC)
}

fn run(args: RunArgs) -> ExitCode {
    let dirs = args
        .dirs
        .iter()
        .map(|d| match d.split_once("::") {
            Some((host, guest)) => (PathBuf::from(host), guest.to_string()),
            None => (PathBuf::from(d), d.clone()),
        })
        .collect();
    let envs = args
        .envs
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), std::env::var(e).unwrap_or_default()),
        })
        .collect();
    let opts = RunOptions { file: args.file, args: args.args, invoke: args.invoke, dirs, envs };
    match with_large_stack(|| quickbeam_cli::run::run(&opts)) {
        Ok(RunEnd::Exit(code)) => exit_status(code),
        Ok(RunEnd::Error(e, code)) => {
            eprintln!("error: {e:#}");
            exit_status(code)
        }
        Err(panic) => internal_error(panic),
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
