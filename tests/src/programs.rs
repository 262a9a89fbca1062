//! Running WASI commands with captured output, through the public API.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use quickbeam::{Config, Engine, Linker, Module, Store};
use quickbeam_wasi::{I32Exit, OutputBuffer, WasiCtx};

/// What a WASI command did.
#[derive(Debug)]
pub struct ProgramOutput {
    /// The `proc_exit` status, or 0 if `_start` returned.
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Where `fixtures/build.sh` puts the real programs.
pub fn fixtures_dir() -> PathBuf {
    crate::workspace_root().join("target/fixtures")
}

/// Runs the WASI command in `wasm` (argv = `argv0` then `args`, empty stdin, no
/// directories) on a thread with a large stack. `Err` for compile, link and trap errors.
pub fn run_wasi_command(wasm: &[u8], argv0: &str, args: &[&str]) -> Result<ProgramOutput> {
    run_wasi_command_in(&Engine::new(&Config::new())?, wasm, argv0, args)
}

/// [`run_wasi_command`] with the given engine (and so its cache).
pub fn run_wasi_command_in(engine: &Engine, wasm: &[u8], argv0: &str, args: &[&str]) -> Result<ProgramOutput> {
    quickbeam_cli::with_large_stack(|| run_on_this_thread(engine, wasm, argv0, args))
        .map_err(|panic| anyhow!("Quickbeam panicked: {panic}"))?
}

fn run_on_this_thread(engine: &Engine, wasm: &[u8], argv0: &str, args: &[&str]) -> Result<ProgramOutput> {
    let engine = engine.clone();
    let module = Module::new(&engine, wasm).context("failed to compile")?;
    let (stdout, stderr) = (OutputBuffer::new(), OutputBuffer::new());
    let wasi =
        WasiCtx::builder().arg(argv0).args(args).stdout_capture(stdout.clone()).stderr_capture(stderr.clone()).build();
    let mut store = Store::new(&engine, wasi);
    let mut linker = Linker::new(&engine);
    quickbeam_wasi::add_to_linker(&mut linker, |cx: &mut WasiCtx| cx)?;
    let instance = linker.instantiate(&mut store, &module).context("failed to instantiate")?;
    let start = instance.get_func(&mut store, "_start").ok_or_else(|| anyhow!("no `_start` export"))?;
    let exit_code = match start.call(&mut store, &[], &mut []) {
        Ok(()) => 0,
        Err(e) => match e.chain().find_map(|c| c.downcast_ref::<I32Exit>()) {
            Some(exit) => exit.0,
            None => {
                return Err(
                    e.context(format!("`_start` failed; stdout so far ends with:\n{}", tail(&stdout.contents(), 5)))
                )
            }
        },
    };
    Ok(ProgramOutput { exit_code, stdout: stdout.take(), stderr: stderr.take() })
}

/// The last `n` lines of some output.
pub fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Where two outputs first differ, for a readable assertion message.
pub fn first_difference(expected: &[u8], actual: &[u8]) -> Option<String> {
    if expected == actual {
        return None;
    }
    let (e, a) = (String::from_utf8_lossy(expected), String::from_utf8_lossy(actual));
    let (el, al): (Vec<&str>, Vec<&str>) = (e.lines().collect(), a.lines().collect());
    for i in 0..el.len().max(al.len()) {
        let (x, y) = (el.get(i), al.get(i));
        if x != y {
            return Some(format!(
                "line {}:\n  expected: {}\n  actual:   {}\n({} expected lines, {} actual)",
                i + 1,
                x.map_or("<end of output>".to_string(), |s| format!("{s:?}")),
                y.map_or("<end of output>".to_string(), |s| format!("{s:?}")),
                el.len(),
                al.len()
            ));
        }
    }
    Some(format!(
        "the outputs differ only in line endings or a final newline ({} vs {} bytes)",
        expected.len(),
        actual.len()
    ))
}

/// Reads `<dir>/<name>.wasm` and `<dir>/<name>.expected`, with a message saying how to
/// build them when they are missing.
pub fn read_fixture(dir: &Path, name: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let wasm = dir.join(format!("{name}.wasm"));
    let expected = dir.join(format!("{name}.expected"));
    let read = |p: &Path| {
        std::fs::read(p).with_context(|| {
            format!(
                "missing fixture `{}`: build the real-program fixtures with `bash fixtures/build.sh` \
                 (installs clang, lld and wasi-libc on Debian if needed), or set \
                 QUICKBEAM_SKIP_PROGRAMS=1 to skip these tests",
                p.display()
            )
        })
    };
    Ok((read(&wasm)?, read(&expected)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_first_differing_line() {
        assert_eq!(first_difference(b"a\nb\n", b"a\nb\n"), None);
        let d = first_difference(b"a\nb\n", b"a\nc\n").unwrap();
        assert!(d.starts_with("line 2:"), "{d}");
        let d = first_difference(b"a\nb\n", b"a\n").unwrap();
        assert!(d.contains("<end of output>"), "{d}");
        assert!(first_difference(b"a\n", b"a").unwrap().contains("final newline"));
        assert_eq!(tail(b"1\n2\n3\n", 2), "2\n3");
    }
}
