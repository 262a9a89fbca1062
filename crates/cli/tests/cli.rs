//! End-to-end tests of the `quickbeam` binary: exit statuses and the exact shape of
//! what it prints.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Runs the binary in `dir`, with a cache directory of its own (never the user's).
fn quickbeam(args: &[&str], dir: &Path) -> Output {
    let cache = tempfile::tempdir().unwrap();
    quickbeam_with_cache(args, dir, cache.path())
}

/// Runs the binary in `dir` with `QUICKBEAM_CACHE_DIR=cache`.
fn quickbeam_with_cache(args: &[&str], dir: &Path, cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quickbeam"))
        .args(args)
        .current_dir(dir)
        .env("QUICKBEAM_CACHE_DIR", cache)
        .output()
        .expect("failed to start the quickbeam binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A temporary directory holding `files`.
fn files(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

/// Asserts that stderr is exactly one line starting with `prefix`.
fn assert_one_error_line(o: &Output, prefix: &str) {
    let err = stderr(o);
    assert!(err.starts_with(prefix), "stderr should start with {prefix:?}:\n{err}");
    assert_eq!(err.lines().count(), 1, "stderr should be one line:\n{err}");
    assert!(err.ends_with('\n'));
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn hello_world() {
    let o = quickbeam(&["run", "examples/hello.wat"], &workspace_root());
    assert_eq!(stderr(&o), "");
    assert_eq!(stdout(&o), "Hello from Quickbeam!\n");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn missing_file() {
    let dir = files(&[]);
    let o = quickbeam(&["run", "missing.wasm"], dir.path());
    assert_eq!(stderr(&o), "error: failed to read `missing.wasm`: No such file or directory (os error 2)\n");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn truncated_module() {
    let wasm = wat::parse_str("(module (func (export \"f\") (result i32) i32.const 7))").unwrap();
    let dir = files(&[("trunc.wasm", &wasm[..wasm.len() - 3])]);
    let o = quickbeam(&["run", "trunc.wasm"], dir.path());
    assert_one_error_line(&o, "error: failed to compile `trunc.wasm`: ");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn invalid_module() {
    let dir = files(&[("invalid.wat", b"(module (func (result i32) i64.const 1))")]);
    let o = quickbeam(&["run", "invalid.wat"], dir.path());
    assert_one_error_line(&o, "error: failed to compile `invalid.wat`: ");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn unparsable_text() {
    let dir = files(&[("bad.wat", b"(module\n  (func (result i32) i32.const))")]);
    let o = quickbeam(&["run", "bad.wat"], dir.path());
    assert_one_error_line(&o, "error: failed to parse `bad.wat`: ");
    assert!(stderr(&o).contains("bad.wat:2:"), "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn missing_import() {
    let dir = files(&[("import.wat", b"(module (import \"env\" \"missing\" (func)) (func (export \"_start\")))")]);
    let o = quickbeam(&["run", "import.wat"], dir.path());
    assert_eq!(
        stderr(&o),
        "error: failed to instantiate `import.wat`: unknown import: `env::missing` has not been defined\n"
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn trap_prints_message_and_backtrace() {
    let dir = files(&[("trap.wat", b"(module (func $boom unreachable) (func (export \"_start\") call $boom))")]);
    let o = quickbeam(&["run", "trap.wat"], dir.path());
    let err = stderr(&o);
    assert!(err.starts_with("error: failed to run `trap.wat`: "), "{err}");
    assert!(err.contains("wasm trap: unreachable"), "{err}");
    assert!(
        err.lines().any(|l| l.contains("boom") && !l.starts_with("error")),
        "no backtrace line naming `boom`:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(134));
}

/// Issue 5, acceptance 3: `run --timeout 1s` on a module that loops forever ends
/// with the interruption message, a backtrace into the loop, and status 124.
#[test]
fn timeout_interrupts_an_endless_loop() {
    let dir = files(&[(
        "spin.wat",
        b"(module (func $spin (loop $l br $l)) (func (export \"_start\") call $spin))",
    )]);
    let start = Instant::now();
    let o = quickbeam(&["run", "--timeout", "1s", "spin.wat"], dir.path());
    let took = start.elapsed();
    let err = stderr(&o);
    assert!(
        err.starts_with("error: timed out: the guest ran longer than --timeout 1s: failed to run `spin.wat`: "),
        "{err}"
    );
    assert!(err.contains("wasm trap: interrupt"), "{err}");
    assert!(err.lines().any(|l| l.contains("spin") && !l.starts_with("error")), "no backtrace into `spin`:\n{err}");
    assert_eq!(o.status.code(), Some(124), "{err}");
    // Not a speed assertion: a guard against a timeout that never fires.
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(60), "{took:?}");
    eprintln!("`run --timeout 1s` on an endless loop took {took:?}");
}

/// A guest that finishes in time is not affected by `--timeout`, and a timer of a
/// finished run does not hold the process.
#[test]
fn timeout_leaves_a_guest_that_finishes_alone() {
    let start = Instant::now();
    let o = quickbeam(&["run", "--timeout", "10m", "examples/hello.wat"], &workspace_root());
    assert_eq!(stderr(&o), "");
    assert_eq!(stdout(&o), "Hello from Quickbeam!\n");
    assert_eq!(o.status.code(), Some(0));
    assert!(start.elapsed() < Duration::from_secs(60));
    let o = quickbeam(&["run", "--timeout", "10 parsecs", "examples/hello.wat"], &workspace_root());
    assert!(stderr(&o).contains("invalid duration `10 parsecs`: unknown unit `parsecs`"), "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn proc_exit_sets_the_exit_status() {
    let dir = files(&[(
        "exit.wat",
        b"(module
            (import \"wasi_snapshot_preview1\" \"proc_exit\" (func $exit (param i32)))
            (memory (export \"memory\") 1)
            (func (export \"_start\") (call $exit (i32.const 7)) unreachable))",
    )]);
    let o = quickbeam(&["run", "exit.wat"], dir.path());
    assert_eq!(stderr(&o), "");
    assert_eq!(o.status.code(), Some(7));
}

/// Prints the argument buffer, then the environment buffer (NUL-separated).
const PRINT_ARGS_AND_ENV: &[u8] = br#"(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $env_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $print (param $buf i32) (param $len i32)
    (i32.store (i32.const 16) (local.get $buf))
    (i32.store (i32.const 20) (local.get $len))
    (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))))
  (func (export "_start")
    (drop (call $args_sizes (i32.const 0) (i32.const 4)))
    (drop (call $args_get (i32.const 1024) (i32.const 4096)))
    (call $print (i32.const 4096) (i32.load (i32.const 4)))
    (drop (call $env_sizes (i32.const 0) (i32.const 4)))
    (drop (call $env_get (i32.const 1024) (i32.const 8192)))
    (call $print (i32.const 8192) (i32.load (i32.const 4)))))"#;

#[test]
fn arguments_and_environment_reach_the_guest() {
    let dir = files(&[("args.wat", PRINT_ARGS_AND_ENV)]);
    let o = quickbeam(&["run", "--env", "A=1", "--env", "B=x y", "args.wat", "one", "--two"], dir.path());
    assert_eq!(stderr(&o), "");
    assert_eq!(stdout(&o), "args.wat\0one\0--two\0A=1\0B=x y\0");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn preopened_directories_are_readable() {
    // Opens `hello.txt` below fd 3 (the first preopen), reads it and prints it.
    let cat: &[u8] = br#"(module
      (import "wasi_snapshot_preview1" "path_open"
        (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 64) "hello.txt")
      (func (export "_start") (result)
        (if (call $open (i32.const 3) (i32.const 1) (i32.const 64) (i32.const 9) (i32.const 0)
                        (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 0))
          (then unreachable))
        (i32.store (i32.const 16) (i32.const 1024))
        (i32.store (i32.const 20) (i32.const 100))
        (drop (call $read (i32.load (i32.const 0)) (i32.const 16) (i32.const 1) (i32.const 24)))
        (i32.store (i32.const 20) (i32.load (i32.const 24)))
        (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))"#;
    let dir = files(&[("cat.wat", cat)]);
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/hello.txt"), "from the host\n").unwrap();
    let o = quickbeam(&["run", "--dir", "data::/data", "cat.wat"], dir.path());
    assert_eq!((stdout(&o).as_str(), stderr(&o).as_str(), o.status.code()), ("from the host\n", "", Some(0)));
    // Without the directory, the guest has no fd 3 and traps.
    let o = quickbeam(&["run", "cat.wat"], dir.path());
    assert_eq!(o.status.code(), Some(134));
}

#[test]
fn missing_preopen_directory_is_one_error_line() {
    let dir = files(&[("args.wat", PRINT_ARGS_AND_ENV)]);
    let o = quickbeam(&["run", "--dir", "nope::/data", "args.wat"], dir.path());
    assert_one_error_line(&o, "error: failed to open directory `nope`: ");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn invoke_with_arguments() {
    let dir = files(&[(
        "math.wat",
        b"(module
            (func (export \"add\") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
            (func (export \"half\") (param f64) (result f64) (f64.mul (local.get 0) (f64.const 0.5)))
            (func (export \"pair\") (param i64) (result i64 i32) (local.get 0) (i32.const -1)))",
    )]);
    let o = quickbeam(&["run", "--invoke", "add", "math.wat", "40", "2"], dir.path());
    assert_eq!((stdout(&o).as_str(), stderr(&o).as_str(), o.status.code()), ("42\n", "", Some(0)));
    let o = quickbeam(&["run", "--invoke", "half", "math.wat", "3"], dir.path());
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("1.5\n", Some(0)));
    let o = quickbeam(&["run", "--invoke", "pair", "math.wat", "-5"], dir.path());
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("-5\n-1\n", Some(0)));
    let o = quickbeam(&["run", "--invoke", "add", "math.wat", "1"], dir.path());
    assert_one_error_line(&o, "error: `add` takes 2 argument(s)");
    let o = quickbeam(&["run", "--invoke", "add", "math.wat", "1", "x"], dir.path());
    assert_one_error_line(&o, "error: invalid argument `x` for `add`: ");
    let o = quickbeam(&["run", "--invoke", "nope", "math.wat"], dir.path());
    assert_one_error_line(&o, "error: `math.wat` exports no function named `nope`");
}

#[test]
fn wast_counts_directives() {
    let dir = files(&[(
        "tiny.wast",
        b"(module
  (func (export \"add\") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))
(assert_return (invoke \"add\" (i32.const 1) (i32.const 2)) (i32.const 3))
(assert_return (invoke \"add\" (i32.const 2) (i32.const 2)) (i32.const 5))
(assert_invalid (module (func (result i32) (i64.const 0))) \"type mismatch\")
(assert_malformed (module quote \"(func\") \"unexpected end\")
",
    )]);
    let o = quickbeam(&["wast", "tiny.wast"], dir.path());
    let out = stdout(&o);
    assert_eq!(
        out,
        "tiny.wast:4:2: assert_return: expected i32:5, got i32:4\n4 passed, 1 failed\n",
        "stderr: {}",
        stderr(&o)
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn help_lists_every_command() {
    let o = quickbeam(&["--help"], &workspace_root());
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for cmd in ["run", "wast", "compile", "explain", "watch", "cache", "--cache-dir", "--no-cache"] {
        assert!(out.contains(cmd), "--help lacks {cmd}:\n{out}");
    }
    for cmd in ["run", "wast", "compile", "explain", "watch", "cache"] {
        let o = quickbeam(&[cmd, "--help"], &workspace_root());
        assert_eq!(o.status.code(), Some(0), "{cmd} --help");
        assert!(!stdout(&o).contains("not implemented"), "{cmd} --help:\n{}", stdout(&o));
    }
}

// ---- compile and the cache ------------------------------------------------------------

/// Two functions: `$value` returns a constant, `_start` exits with it.
fn exit_with(value: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $value (result i32) {value})
  (func (export "_start") (call $exit (call $value)) unreachable))"#
    )
}

/// The JSON report of `compile --report json`, checked for its shape.
fn json_report(o: &Output) -> serde_json::Value {
    assert_eq!((stderr(o).as_str(), o.status.code()), ("", Some(0)));
    let out = stdout(o);
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let mut expected = ["file", "bytes", "functions", "reused", "patched", "compiled", "seconds"];
    expected.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, expected, "{out}");
    assert!(v["seconds"].as_f64().is_some_and(|s| s >= 0.0), "{out}");
    let n = |k: &str| v[k].as_u64().unwrap();
    assert_eq!(n("reused") + n("patched") + n("compiled"), n("functions"), "{out}");
    v
}

#[test]
fn compile_reports_what_the_cache_served() {
    let text = exit_with("i32.const 7");
    let dir = files(&[("app.wat", text.as_bytes())]);
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let o = quickbeam(&["--cache-dir", cache_arg, "compile", "--report", "json", "app.wat"], dir.path());
    let v = json_report(&o);
    assert_eq!(v["file"], "app.wat");
    assert_eq!(v["bytes"].as_u64().unwrap() as usize, wat::parse_str(&text).unwrap().len());
    assert_eq!((v["functions"].as_u64(), v["compiled"].as_u64()), (Some(2), Some(2)));

    // A second process finds everything in the on-disk cache.
    let o = quickbeam(&["--cache-dir", cache_arg, "compile", "--report", "json", "app.wat"], dir.path());
    let v = json_report(&o);
    assert_eq!((v["functions"].as_u64(), v["reused"].as_u64()), (Some(2), Some(2)), "{v}");

    // QUICKBEAM_CACHE_DIR is the same cache; the human line has the same numbers.
    let o = quickbeam_with_cache(&["compile", "app.wat"], dir.path(), &cache);
    let out = stdout(&o);
    assert!(out.starts_with("compiled app.wat ("), "{out}");
    assert!(out.ends_with(" ms: 2 functions, 2 reused, 0 patched, 0 compiled\n"), "{out}");

    // Without the on-disk cache, everything is compiled and nothing is written.
    let empty = dir.path().join("empty");
    let o = quickbeam_with_cache(&["--no-cache", "compile", "--report", "json", "app.wat"], dir.path(), &empty);
    let v = json_report(&o);
    assert_eq!(v["compiled"].as_u64(), Some(2), "{v}");
    assert!(!empty.exists());
}

#[test]
fn compile_errors_are_run_errors() {
    let dir = files(&[("invalid.wat", b"(module (func (result i32) i64.const 1))")]);
    let o = quickbeam(&["compile", "--report", "json", "invalid.wat"], dir.path());
    assert_one_error_line(&o, "error: failed to compile `invalid.wat`: ");
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("", Some(1)));
    let o = quickbeam(&["compile", "missing.wasm"], dir.path());
    assert_eq!(stderr(&o), "error: failed to read `missing.wasm`: No such file or directory (os error 2)\n");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn an_unusable_cache_directory_is_one_warning() {
    let dir = files(&[("exit.wat", exit_with("i32.const 3").as_bytes()), ("file", b"")]);
    for args in [&["--cache-dir", "file/sub", "run", "exit.wat"][..], &["--cache-dir", "file", "run", "exit.wat"]] {
        let o = quickbeam(args, dir.path());
        let err = stderr(&o);
        assert!(err.starts_with("warning: failed to open cache directory `file"), "{err}");
        assert!(err.ends_with("; continuing without the on-disk cache\n"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(o.status.code(), Some(3));
    }
}

#[test]
fn cache_stats_and_clear() {
    let dir = files(&[("app.wat", exit_with("i32.const 7").as_bytes())]);
    let cache = dir.path().join("cache");
    let stats = |o: &Output| -> (String, u64, u64) {
        assert_eq!((stderr(o).as_str(), o.status.code()), ("", Some(0)));
        let out = stdout(o);
        let field = |name: &str| {
            let line = out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}:\n{out}"));
            line[name.len()..].trim().to_string()
        };
        let entries = field("entries:").parse().unwrap();
        let size = field("size:");
        let bytes = size.rsplit_once('(').unwrap().1.trim_end_matches(" bytes)").parse().unwrap();
        (field("directory:"), entries, bytes)
    };
    // Nothing yet, and asking does not create the directory.
    let o = quickbeam_with_cache(&["cache", "stats"], dir.path(), &cache);
    assert_eq!(stats(&o), (cache.display().to_string(), 0, 0));
    assert!(!cache.exists());

    let o = quickbeam_with_cache(&["compile", "app.wat"], dir.path(), &cache);
    assert_eq!(o.status.code(), Some(0));
    let o = quickbeam_with_cache(&["cache", "stats"], dir.path(), &cache);
    let (_, entries, bytes) = stats(&o);
    assert!(entries > 0 && bytes > 0, "{}", stdout(&o));
    // --cache-dir wins over the environment.
    let other = dir.path().join("other");
    let o = quickbeam_with_cache(&["--cache-dir", cache.to_str().unwrap(), "cache", "stats"], dir.path(), &other);
    assert_eq!(stats(&o).1, entries);

    let o = quickbeam_with_cache(&["cache", "clear"], dir.path(), &cache);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with(&format!("cleared {}: {entries} entries", cache.display())), "{}", stdout(&o));
    let o = quickbeam_with_cache(&["cache", "stats"], dir.path(), &cache);
    assert_eq!(stats(&o).1, 0);
}

// ---- explain ------------------------------------------------------------------------------

const EXPLAIN_ME: &[u8] = br#"(module
  (global $g (mut i32) (i32.const 0))
  (memory 1)
  (func $helper (param i32) (result i32) local.get 0 i32.const 7 i32.add)
  (func $main (export "main") (result i32)
    i32.const 35
    call $helper
    global.get $g
    i32.add
    i32.load offset=16))"#;

#[test]
fn explain_shows_wasm_microwasm_and_code_with_keys_constants_and_relocations() {
    let dir = files(&[("m.wat", EXPLAIN_ME)]);
    let o = quickbeam(&["explain", "--func", "main", "m.wat"], dir.path());
    assert_eq!((stderr(&o).as_str(), o.status.code()), ("", Some(0)));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], ";; function 1 $main (func (result i32))", "{out}");
    assert_eq!(lines[1], ";;   exported as \"main\"", "{out}");
    let hex64 = |l: &str, prefix: &str| {
        let key = l.strip_prefix(prefix).unwrap_or_else(|| panic!("{l:?} lacks {prefix:?}"));
        assert!(key.len() == 64 && key.chars().all(|c| c.is_ascii_hexdigit()), "{l}");
    };
    hex64(lines[2], ";;   exact key  ");
    hex64(lines[3], ";;   shape key  ");
    assert!(lines[4].starts_with(";;   body at 0x"), "{out}");
    assert!(out.contains(";; wasm") && out.contains("microwasm") && out.contains("x86-64"), "{out}");
    // Each operator is on a row with its module offset, its Microwasm beside it.
    let row = |wasm: &str, mw: &str| {
        assert!(
            lines.iter().any(|l| l.starts_with("0x") && l.contains(wasm) && l.contains(mw)),
            "no row with {wasm:?} and {mw:?}:\n{out}"
        )
    };
    row("i32.const 35", "const #0 i32:35");
    row("call $helper", "call func0");
    row("global.get $g", "global.get global0");
    row("i32.load offset=16", "i32.load mem0 offset=16 #1");
    assert!(lines.iter().any(|l| l.contains("call $helper") && l.contains("; call rel32 func0")), "{out}");
    assert!(lines.iter().any(|l| l.contains("ret")), "{out}");
    // Constants and relocations, with what each slot stands for.
    assert!(out.contains(";; constants (#k  value  guard  sites):"), "{out}");
    assert!(lines.iter().any(|l| l.starts_with(";;   #0   i32 35 ")), "{out}");
    assert!(lines.iter().any(|l| l.starts_with(";;   #1   offset 16 (i32.load) ")), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("call rel32") && l.ends_with("= function 0 $helper (func (param i32) (result i32))")),
        "{out}"
    );
    assert!(lines.iter().any(|l| l.contains("global offset") && l.ends_with("= global 0 (mut i32)")), "{out}");

    // Every function by default; by index or `$name` the same as by export name.
    let all = stdout(&quickbeam(&["explain", "m.wat"], dir.path()));
    assert_eq!(all.matches(";; function ").count(), 2);
    let by_index = stdout(&quickbeam(&["explain", "--func", "1", "m.wat"], dir.path()));
    let by_name = stdout(&quickbeam(&["explain", "--func", "$main", "m.wat"], dir.path()));
    assert_eq!((&by_index, &by_name), (&out, &out));
}

#[test]
fn explain_errors_are_one_line() {
    let dir = files(&[("m.wat", EXPLAIN_ME), ("bad.wat", b"(module (func (result i32) i64.const 1))")]);
    let o = quickbeam(&["explain", "--func", "nope", "m.wat"], dir.path());
    assert_one_error_line(&o, "error: failed to explain `m.wat`: there is no function named `nope`");
    assert_eq!(o.status.code(), Some(1));
    let o = quickbeam(&["explain", "--func", "9", "m.wat"], dir.path());
    assert_one_error_line(&o, "error: failed to explain `m.wat`: there is no function 9");
    let o = quickbeam(&["explain", "bad.wat"], dir.path());
    assert_one_error_line(&o, "error: failed to explain `bad.wat`: failed to compile function 0");
    let o = quickbeam(&["explain", "missing.wat"], dir.path());
    assert_one_error_line(&o, "error: failed to read `missing.wat`");
}

// ---- watch ---------------------------------------------------------------------------------

/// A `quickbeam watch` process whose output is read line by line; killed when dropped.
struct Watch {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Everything read so far (for failure messages).
    seen: Vec<String>,
}

/// How long to wait for the watch to react.
const WATCH_TIMEOUT: Duration = Duration::from_secs(30);

impl Watch {
    fn start(args: &[&str], dir: &Path) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quickbeam"))
            .args(args)
            .current_dir(dir)
            .env("QUICKBEAM_CACHE_DIR", dir.join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("failed to start the quickbeam binary");
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().unwrap()));
        let stderr = lines(Box::new(child.stderr.take().unwrap()));
        Watch { child, stdout, stderr, seen: Vec::new() }
    }

    /// The next line of stderr (`err`) or stdout that starts with `prefix`; fails the test
    /// after a timeout.
    fn expect(&mut self, err: bool, prefix: &str) -> String {
        let deadline = Instant::now() + WATCH_TIMEOUT;
        loop {
            let rx = if err { &self.stderr } else { &self.stdout };
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(format!("{}{line}", if err { "stderr: " } else { "stdout: " }));
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line starting with {prefix:?} in time; seen:\n{}", self.seen.join("\n"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("output ended before a line starting with {prefix:?}; seen:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    /// The next `reloaded in X ms: ...` line's counts: (functions, reused, patched, compiled).
    fn reload(&mut self) -> (u64, u64, u64, u64) {
        let line = self.expect(true, "reloaded in ");
        counts_of(&line)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The counts of `... ms: N functions, R reused, P patched, C compiled`, checked for shape.
fn counts_of(line: &str) -> (u64, u64, u64, u64) {
    let (time, counts) = line.split_once(" ms: ").unwrap_or_else(|| panic!("{line}"));
    let ms = time.rsplit(' ').next().unwrap();
    assert!(ms.parse::<f64>().is_ok() && ms.split_once('.').is_some_and(|(_, d)| d.len() == 1), "{line}");
    let n: Vec<u64> = counts.split(", ").map(|c| c.split(' ').next().unwrap().parse().unwrap()).collect();
    let words: Vec<&str> = counts.split(", ").map(|c| c.split_once(' ').unwrap().1).collect();
    assert_eq!(words, ["functions", "reused", "patched", "compiled"], "{line}");
    assert_eq!(n[1] + n[2] + n[3], n[0], "{line}");
    (n[0], n[1], n[2], n[3])
}

/// Prints the 4-byte string at `$pick()` (the data holds "one\ntwo\nsix\n" at 100).
fn printer(pick: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "one\ntwo\nsix\n")
  (func $pick (result i32) {pick})
  (func (export "_start")
    (i32.store (i32.const 0) (call $pick))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    )
}

#[test]
fn watch_reloads_on_every_change() {
    let dir = files(&[("app.wat", printer("i32.const 100").as_bytes())]);
    let file = dir.path().join("app.wat");
    let mut w = Watch::start(&["watch", "app.wat"], dir.path());
    assert_eq!(w.expect(true, ""), "watching app.wat (Ctrl-C to stop)");
    let first = w.expect(true, "loaded in ");
    assert_eq!(counts_of(&first).0, 2);
    assert_eq!(w.expect(false, ""), "one");

    // Written in place: one constant of `$pick` changed; `_start` is reused.
    std::fs::write(&file, printer("i32.const 104")).unwrap();
    let (functions, reused, _, _) = w.reload();
    assert_eq!((functions, reused), (2, 1));
    assert_eq!(w.expect(false, ""), "two");

    // Written elsewhere and renamed over the file, as editors do: `$pick` changed shape.
    let tmp = dir.path().join(".app.wat.tmp");
    std::fs::write(&tmp, printer("(i32.add (i32.const 100) (i32.const 8))")).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let (functions, reused, _, _) = w.reload();
    assert_eq!((functions, reused), (2, 1));
    assert_eq!(w.expect(false, ""), "six");

    // An invalid module is reported and the watch goes on.
    std::fs::write(&file, "(module (func (result i32) i64.const 1))").unwrap();
    let err = w.expect(true, "error: ");
    assert!(err.starts_with("error: failed to compile `app.wat`: "), "{err}");

    // Back to the first version: all of it is still in the engine's cache.
    std::fs::write(&file, printer("i32.const 100")).unwrap();
    assert_eq!(w.reload(), (2, 2, 0, 0));
    assert_eq!(w.expect(false, ""), "one");
}

#[test]
fn watch_reports_traps_and_exit_statuses_and_ends_on_ctrl_c() {
    let dir = files(&[("app.wat", exit_with("i32.const 0").as_bytes())]);
    let file = dir.path().join("app.wat");
    let mut w = Watch::start(&["watch", "app.wat"], dir.path());
    w.expect(true, "loaded in ");

    std::fs::write(&file, exit_with("i32.const 3")).unwrap();
    w.reload();
    assert_eq!(w.expect(true, "`app.wat`"), "`app.wat` exited with status 3");

    std::fs::write(&file, exit_with("unreachable")).unwrap();
    w.reload();
    let err = w.expect(true, "error: ");
    assert!(err.starts_with("error: failed to run `app.wat`: ") && err.contains("unreachable"), "{err}");

    std::fs::write(&file, exit_with("i32.const 0")).unwrap();
    w.reload();

    // SAFETY: sends SIGINT to the child we started (it is still running: not waited for).
    let rc = unsafe { libc::kill(w.child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + WATCH_TIMEOUT;
    let status = loop {
        if let Some(status) = w.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the watch did not end on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
}

#[test]
fn watch_of_a_missing_file_is_an_error() {
    let dir = files(&[]);
    let o = quickbeam(&["watch", "missing.wat"], dir.path());
    assert_eq!(stderr(&o), "error: failed to read `missing.wat`: No such file or directory (os error 2)\n");
    assert_eq!(o.status.code(), Some(1));
}
