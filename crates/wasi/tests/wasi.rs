//! WASI through the public API with small hand-written modules.

use quickbeam::{Engine, Linker, Module, Store};
use quickbeam_wasi::{Errno, I32Exit, OutputBuffer, WasiCtx};

/// Instantiates `wat` with WASI and calls its export `name` (type `[] -> [i32]` if
/// `returns`, else `[] -> []`); returns the result (or 0) and the captured stdout.
fn call(
    wat: &str,
    name: &str,
    returns: bool,
    cx: impl FnOnce(&mut quickbeam_wasi::WasiCtxBuilder),
) -> anyhow::Result<(i32, String)> {
    let engine = Engine::default();
    let module = Module::new(&engine, wat::parse_str(wat)?)?;
    let out = OutputBuffer::new();
    let mut b = WasiCtx::builder();
    b.stdout_capture(out.clone());
    cx(&mut b);
    let mut store = Store::new(&engine, b.build());
    let mut linker = Linker::new(&engine);
    quickbeam_wasi::add_to_linker(&mut linker, |cx: &mut WasiCtx| cx)?;
    let instance = linker.instantiate(&mut store, &module)?;
    let r = if returns {
        instance.get_typed_func::<(), i32>(&mut store, name)?.call(&mut store, ())?
    } else {
        instance.get_typed_func::<(), ()>(&mut store, name)?.call(&mut store, ())?;
        0
    };
    Ok((r, out.contents_string()))
}

const PRINT_ARGS: &str = r#"(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; argc @0, buf size @4, argv @64, buf @256, iovec @16, nwritten @24
  (func (export "_start") (result i32)
    (drop (call $sizes (i32.const 0) (i32.const 4)))
    (drop (call $get (i32.const 64) (i32.const 256)))
    (i32.store (i32.const 16) (i32.const 256))
    (i32.store (i32.const 20) (i32.load (i32.const 4)))
    (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
    (i32.load (i32.const 0))))"#;

#[test]
fn args_reach_the_guest() {
    let (argc, out) = call(PRINT_ARGS, "_start", true, |b| {
        b.args(["prog.wasm", "one", "two"]);
    })
    .unwrap();
    assert_eq!(argc, 3);
    assert_eq!(out, "prog.wasm\0one\0two\0");
}

#[test]
fn bad_pointers_are_efault_and_unsupported_functions_enosys() {
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "bad_iovec") (result i32)
        (call $write (i32.const 1) (i32.const 0xfffffff0) (i32.const 1) (i32.const 0)))
      (func (export "bad_buffer") (result i32)
        (i32.store (i32.const 0) (i32.const 65530))
        (i32.store (i32.const 4) (i32.const 100))
        (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (func (export "accept") (result i32)
        (call $accept (i32.const 3) (i32.const 0) (i32.const 0))))"#;
    assert_eq!(call(wat, "bad_iovec", true, |_| {}).unwrap().0, Errno::FAULT.raw());
    assert_eq!(call(wat, "bad_buffer", true, |_| {}).unwrap(), (Errno::FAULT.raw(), String::new()));
    assert_eq!(call(wat, "accept", true, |_| {}).unwrap().0, Errno::NOSYS.raw());
}

#[test]
fn proc_exit_is_an_i32exit_error() {
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start") (call $exit (i32.const 3)) unreachable))"#;
    let err = call(wat, "_start", false, |_| {}).unwrap_err();
    assert_eq!(err.chain().find_map(|c| c.downcast_ref::<I32Exit>()), Some(&I32Exit(3)), "{err:#}");
}

#[test]
fn a_module_without_memory_gets_an_error_not_a_panic() {
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (func (export "f") (result i32) (call $write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0))))"#;
    let err = call(wat, "f", true, |_| {}).unwrap_err();
    assert!(format!("{err:#}").contains("does not export a memory"), "{err:#}");
}

/// Every preview1 import with its signature, as wasi-libc's `wasi/api.h` declares them:
/// a module importing all of them must link.
#[test]
fn every_preview1_function_is_defined() {
    let sigs = [
        ("args_get", "i32 i32"),
        ("args_sizes_get", "i32 i32"),
        ("environ_get", "i32 i32"),
        ("environ_sizes_get", "i32 i32"),
        ("clock_res_get", "i32 i32"),
        ("clock_time_get", "i32 i64 i32"),
        ("fd_advise", "i32 i64 i64 i32"),
        ("fd_allocate", "i32 i64 i64"),
        ("fd_close", "i32"),
        ("fd_datasync", "i32"),
        ("fd_fdstat_get", "i32 i32"),
        ("fd_fdstat_set_flags", "i32 i32"),
        ("fd_fdstat_set_rights", "i32 i64 i64"),
        ("fd_filestat_get", "i32 i32"),
        ("fd_filestat_set_size", "i32 i64"),
        ("fd_filestat_set_times", "i32 i64 i64 i32"),
        ("fd_pread", "i32 i32 i32 i64 i32"),
        ("fd_prestat_get", "i32 i32"),
        ("fd_prestat_dir_name", "i32 i32 i32"),
        ("fd_pwrite", "i32 i32 i32 i64 i32"),
        ("fd_read", "i32 i32 i32 i32"),
        ("fd_readdir", "i32 i32 i32 i64 i32"),
        ("fd_renumber", "i32 i32"),
        ("fd_seek", "i32 i64 i32 i32"),
        ("fd_sync", "i32"),
        ("fd_tell", "i32 i32"),
        ("fd_write", "i32 i32 i32 i32"),
        ("path_create_directory", "i32 i32 i32"),
        ("path_filestat_get", "i32 i32 i32 i32 i32"),
        ("path_filestat_set_times", "i32 i32 i32 i32 i64 i64 i32"),
        ("path_link", "i32 i32 i32 i32 i32 i32 i32"),
        ("path_open", "i32 i32 i32 i32 i32 i64 i64 i32 i32"),
        ("path_readlink", "i32 i32 i32 i32 i32 i32"),
        ("path_remove_directory", "i32 i32 i32"),
        ("path_rename", "i32 i32 i32 i32 i32 i32"),
        ("path_symlink", "i32 i32 i32 i32 i32"),
        ("path_unlink_file", "i32 i32 i32"),
        ("poll_oneoff", "i32 i32 i32 i32"),
        ("proc_raise", "i32"),
        ("sched_yield", ""),
        ("random_get", "i32 i32"),
        ("sock_accept", "i32 i32 i32"),
        ("sock_recv", "i32 i32 i32 i32 i32 i32"),
        ("sock_send", "i32 i32 i32 i32 i32"),
        ("sock_shutdown", "i32 i32"),
    ];
    let mut wat = String::from("(module\n");
    for (name, params) in sigs {
        wat += &format!("  (import \"wasi_snapshot_preview1\" \"{name}\" (func (param {params}) (result i32)))\n");
    }
    wat += "  (import \"wasi_snapshot_preview1\" \"proc_exit\" (func (param i32)))\n";
    wat += "  (memory (export \"memory\") 1)\n  (func (export \"f\") (result i32) i32.const 0))";
    let defined: Vec<&str> = quickbeam_wasi::function_names().collect();
    assert_eq!(defined.len(), sigs.len() + 1);
    for (name, _) in sigs {
        assert!(defined.contains(&name), "{name} is not defined");
    }
    assert_eq!(call(&wat, "f", true, |_| {}).unwrap().0, 0);
}
