//! The library behind the `quickbeam` command, shared with the test suite.
//!
//! - [`run`]: load a `.wasm`/`.wat` file, link WASI, run `_start` or `--invoke` an export.
//! - [`wast`]: the spec-script runner with the `spectest` host module; reports one
//!   result per directive so tests can check expected-failure lists.
//! - [`compile`]: compile into the cache and report what it served (`--report json`).
//! - [`cache`]: which persistent store a command uses (`--cache-dir`, `--no-cache`,
//!   `QUICKBEAM_CACHE_DIR`; an unusable directory is a warning, never an error), and
//!   `cache stats|clear`.
//! - [`watch`]: run, and run again on every change of the file, with one engine (and
//!   so a warm in-process cache) for the whole watch.
//! - [`explain`]: Wasm, Microwasm and x86-64 of each function side by side, with its
//!   stencil keys, constants (guards, sites) and relocations.
//! - [`with_large_stack`]: runs Wasm on a thread whose stack is far larger than Wasm's
//!   own limit, so that the engine's limit, not the host's, decides when a guest
//!   exhausts its stack.

pub mod cache;
pub mod compile;
pub mod explain;
pub mod run;
pub mod wast;
pub mod watch;

/// The exit status after Ctrl-C: 128 + SIGINT, as a shell reports it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The stack of threads that run Wasm (the engine's Wasm stack limit is far smaller).
pub const LARGE_STACK: usize = 64 << 20;

/// Runs `f` on a new thread with a [`LARGE_STACK`] and returns its result. A panic in
/// `f` is returned as `Err` with its message, never propagated.
pub fn with_large_stack<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R, String> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("quickbeam-wasm".into())
            .stack_size(LARGE_STACK)
            .spawn_scoped(s, f)
            .map_err(|e| format!("failed to spawn a thread: {e}"))?;
        handle.join().map_err(|p| panic_message(&*p))
    })
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Parses a `.wat` text into a binary with a one-line error
/// (`expected `)` at hello.wat:3:7`); binaries pass through unchanged.
pub fn wat_to_wasm(path_for_errors: &str, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    if bytes.starts_with(b"\0asm") {
        return Ok(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("input is neither a WebAssembly binary nor UTF-8 text"))?;
    let one_line = |e: ::wast::Error| {
        let (line, col) = e.span().linecol_in(text);
        anyhow::anyhow!("{} at {path_for_errors}:{}:{}", e.message(), line + 1, col + 1)
    };
    let buf = ::wast::parser::ParseBuffer::new(text).map_err(one_line)?;
    let mut wat = ::wast::parser::parse::<::wast::Wat>(&buf).map_err(one_line)?;
    wat.encode().map_err(one_line)
}
