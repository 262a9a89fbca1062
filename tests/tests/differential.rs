//! Differential testing against wasmi (see `quickbeam_tests::differential`).
//!
//! `cargo test --release -p quickbeam-tests --test differential -- --nocapture` runs a
//! short run (a few seconds). Settings, from the environment:
//! - `QUICKBEAM_DIFF_CASES=N`: the number of cases (default 1000);
//! - `QUICKBEAM_DIFF_SECONDS=S`: stop after S seconds of wall time, whatever N;
//! - `QUICKBEAM_DIFF_SEED=X`: the run's seed (default fixed, so runs repeat);
//! - `QUICKBEAM_DIFF_THREADS=T`: worker threads (default 1), each with its own engine;
//! - `QUICKBEAM_DIFF_CACHE=0`: Quickbeam's in-process cache off (by default it is on, so
//!   cache hits and constant patching across cases are compared too);
//! - `QUICKBEAM_DIFF_CASE=I`: only case I of the seed (to reproduce a divergence); it
//!   prints both engines' transcripts and writes the module to `target/differential/`.
//!
//! A divergence prints the case's seed and index and writes its module to
//! `target/differential/SEED-INDEX.wasm`; the test fails at the end of the run.

use quickbeam_tests::differential::{self, Tally, TrapKind, Verdict};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEFAULT_SEED: u64 = 0x0d1f_f5ee_d000_0001;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    if let Some(hex) = v.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()
    } else {
        v.replace('_', "").parse().ok()
    }
}

#[test]
fn wasm_smith_modules_agree_with_wasmi() {
    let seed = env_u64("QUICKBEAM_DIFF_SEED").unwrap_or(DEFAULT_SEED);
    let only = env_u64("QUICKBEAM_DIFF_CASE");
    let cases = if only.is_some() { 1 } else { env_u64("QUICKBEAM_DIFF_CASES").unwrap_or(1000) };
    let deadline = env_u64("QUICKBEAM_DIFF_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let threads = env_u64("QUICKBEAM_DIFF_THREADS").unwrap_or(1).max(1);
    let out_dir = quickbeam_tests::workspace_root().join("target/differential");

    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(Mutex::new(Tally::default()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (next, stop, total, failures, out_dir) =
                (next.clone(), stop.clone(), total.clone(), failures.clone(), out_dir.clone());
            std::thread::Builder::new()
                .stack_size(differential::THREAD_STACK)
                .spawn(move || {
                    let engine = differential::Engines::new();
                    let mut tally = Tally::default();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= cases || stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                            break;
                        }
                        let index = only.unwrap_or(n);
                        let data = differential::case_bytes(seed, index);
                        let verdict = match differential::smith_module(&data) {
                            Some((wasm, arg_seed)) => {
                                if only.is_some() {
                                    let _ = std::fs::create_dir_all(&out_dir);
                                    let path = out_dir.join(format!("{seed:#x}-{index}.wasm"));
                                    let _ = std::fs::write(&path, &wasm);
                                    println!("case {index}: {}\n{}", path.display(), differential::explain(&engine, &wasm, arg_seed));
                                }
                                tally.interruptible += u64::from(differential::Engines::interruptible_for(arg_seed));
                                let v = differential::check(&engine, &wasm, arg_seed);
                                if let Verdict::Diverged(why) = &v {
                                    let _ = std::fs::create_dir_all(&out_dir);
                                    let path = out_dir.join(format!("{seed:#x}-{index}.wasm"));
                                    let _ = std::fs::write(&path, &wasm);
                                    let line = format!(
                                        "case {index} (QUICKBEAM_DIFF_SEED={seed:#x} QUICKBEAM_DIFF_CASE={index}, {}): {why}",
                                        path.display()
                                    );
                                    println!("DIVERGENCE {line}");
                                    let mut f = failures.lock().unwrap();
                                    f.push(line);
                                    if f.len() >= 20 {
                                        stop.store(true, Ordering::Relaxed);
                                    }
                                }
                                v
                            }
                            None => Verdict::NoModule,
                        };
                        tally.add(&verdict);
                        if tally.cases % 10_000 == 0 {
                            let mut t = total.lock().unwrap();
                            t.merge(&tally);
                            println!("[{:.0} s] {t}", start.elapsed().as_secs_f64());
                            tally = Tally::default();
                        }
                    }
                    total.lock().unwrap().merge(&tally);
                })
                .expect("spawn worker")
        })
        .collect();
    for w in workers {
        w.join().expect("worker panicked outside a case");
    }
    let total = total.lock().unwrap().clone();
    println!("differential (seed {seed:#x}, {threads} thread(s)): {total} in {:.1} s", start.elapsed().as_secs_f64());
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "{} divergence(s):\n{}", failures.len(), failures.join("\n"));
    assert!(total.agreed > 0 || total.cases == 0, "no case was compared");
}

/// Checks one hand-written module (every export called twice, as for a wasm-smith
/// case) in both engines, with both of Quickbeam's engines; returns the traps seen.
fn agree(wat: &str) -> Vec<TrapKind> {
    let wasm = wat::parse_str(wat).expect("wat");
    let engines = differential::Engines::new();
    let mut traps = Vec::new();
    for arg_seed in [0, 1] {
        let verdict = std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(differential::THREAD_STACK)
                .spawn_scoped(s, || differential::check(&engines, &wasm, arg_seed))
                .expect("spawn")
                .join()
                .expect("no panic")
        });
        assert!(
            matches!(verdict, Verdict::Agree { .. }),
            "{verdict:?}\n{}",
            differential::explain(&engines, &wasm, arg_seed)
        );
        if let Verdict::Agree { traps: t, .. } = verdict {
            traps.extend(t);
        }
    }
    traps
}

/// The reference itself: wasmi 2.0.0 traps here with "integer divide by zero", though
/// the divisor is select(1, 0, 0 == 0) = 1 (wasmi 1.1 and Quickbeam return 0). Found
/// by this test (seed 0xd1ff5eed0000001, case 1433); the reason wasmi is pinned to 1.1.
#[test]
fn reference_select_feeding_div_u() {
    let traps = agree(
        r#"(module
          (global $g (mut i32) (i32.const 5000))
          (func (export "f") (result i32) (local i32)
            global.get $g
            global.set $g
            i32.const 0
            i32.const 0
            local.set 0
            i32.const 1
            local.get 0
            local.get 0
            i32.eqz
            select
            i32.div_u))"#,
    );
    assert!(traps.is_empty(), "{traps:?}");
}

/// wasmi reports bulk table operations out of bounds as table errors, not traps; the
/// comparison counts them as table traps (seed 0x1000000, case 14532, of the first
/// long run).
#[test]
fn bulk_table_operations_out_of_bounds_trap_in_both() {
    let traps = agree(
        r#"(module
          (table $t 2 4 funcref)
          (func (export "copy") (param i32) (table.copy $t $t (local.get 0) (i32.const 0) (i32.const 2)))
          (func (export "fill") (param i32) (table.fill $t (local.get 0) (ref.null func) (i32.const 2)))
          (func (export "init") (param i32) (table.init $t 0 (local.get 0) (i32.const 0) (i32.const 1)))
          (elem func 0))"#,
    );
    assert!(traps.contains(&TrapKind::TableOutOfBounds), "{traps:?}");
}

/// Active segments that do not fit fail the instantiation in both engines.
#[test]
fn segments_out_of_bounds_fail_instantiation_in_both() {
    let traps = agree(r#"(module (table 1 funcref) (func) (elem (i32.const 1) func 0))"#);
    assert_eq!(traps, [TrapKind::TableOutOfBounds; 2]);
    let traps = agree(r#"(module (memory 1 1) (data (i32.const 65535) "ab"))"#);
    assert_eq!(traps, [TrapKind::MemoryOutOfBounds; 2]);
}

/// A float store with a static offset past `i32::MAX` and a constant value: Quickbeam
/// computed the address in `r11` and then loaded the constant through `r11`, so the
/// store went to the constant's bits as an address (here 0: a write inside the memory
/// instead of a trap; other constants, anywhere). Found by the second long run (seed
/// 0x3000000, case 267177).
#[test]
fn float_store_with_a_large_offset_and_a_constant_value() {
    let traps = agree(
        r#"(module
          (memory (export "mem") 1 1)
          (func (export "f64") (param i32) (f64.store offset=3254627983 align=1 (local.get 0) (f64.const 0)))
          (func (export "f32") (param i32) (f32.store offset=2147483648 (local.get 0) (f32.const 1e-45)))
          (func (export "f64_denormal") (param i32)
            (f64.store offset=4294967295 (local.get 0) (f64.const 0x1p-1030))))"#,
    );
    assert_eq!(traps.len(), 12, "every call traps: {traps:?}");
    assert!(traps.iter().all(|t| *t == TrapKind::MemoryOutOfBounds), "{traps:?}");
}
