use quickbeam_environ::*;
use quickbeam_microwasm::{Recorder, Translator};

fn corpus() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut v = Vec::new();
    for n in ["sqlite", "lua", "zstd", "bzip2"] {
        v.push(root.join(format!("target/fixtures/{n}.wasm")));
    }
    for n in ["coremark", "bz2", "pulldown-cmark", "spidermonkey"] {
        v.push(std::path::PathBuf::from(format!("/work/shared/corpus/{n}.wasm")));
    }
    v.into_iter().filter(|p| p.exists()).collect()
}

#[test]
fn agrees_with_translator() {
    let engine = EngineFingerprint::new(b"test");
    for path in corpus() {
        let bytes = std::fs::read(&path).unwrap();
        let (env, bodies) = ModuleEnv::parse(&bytes, supported_features()).unwrap();
        let mut fp = Fingerprinter::new();
        let mut tr = Translator::new();
        let (mut ok, mut unsupported) = (0, 0);
        for input in bodies {
            let index = input.index;
            let body = input.body.clone();
            let f = fp.fingerprint(&env, &engine.0, index, &body);
            let mut rec = Recorder::default();
            match tr.translate(&env, input, &mut rec) {
                Ok(t) => {
                    let f = f.unwrap_or_else(|e| panic!("{path:?} func {index}: {e}"));
                    assert_eq!(f.consts, t.consts, "{path:?} func {index}");
                    assert_eq!(f.params, t.params, "{path:?} func {index}");
                    assert_eq!(f.slots, t.slots, "{path:?} func {index}");
                    ok += 1;
                }
                Err(e) => { unsupported += 1; eprintln!("{path:?} func {index}: translator: {e}; fingerprint: {:?}", f.err()); }
            }
        }
        eprintln!("{path:?}: {ok} agree, {unsupported} not translated");
    }
}

/// This thread's time on the CPU (from `/proc/thread-self/schedstat`), so that other
/// processes competing for the cores do not count; wall time where that is unavailable.
fn cpu_seconds() -> f64 {
    match std::fs::read_to_string("/proc/thread-self/schedstat") {
        Ok(s) => s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) as f64 / 1e9,
        Err(_) => {
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
        }
    }
}

/// CPU seconds per call of `f`: the best of 3 rounds, each repeating `f` for at least
/// 0.25 s of CPU time (the clock ticks in milliseconds).
fn per_call(mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = cpu_seconds();
            let (mut calls, mut batch) = (0u32, 1u32);
            while cpu_seconds() - t < 0.25 {
                for _ in 0..batch {
                    f();
                }
                calls += batch;
                batch *= 2;
            }
            (cpu_seconds() - t) / calls as f64
        })
        .fold(f64::MAX, f64::min)
}

#[test]
#[ignore]
fn throughput() {
    let engine = EngineFingerprint::new(b"test");
    for path in corpus() {
        let bytes = std::fs::read(&path).unwrap();
        let (env, bodies) = ModuleEnv::parse(&bytes, supported_features()).unwrap();
        let total: usize = bodies.iter().map(|b| b.body.as_bytes().len()).sum();
        let mut fp = Fingerprinter::new();
        let ctx = module_context_hash(&env);
        let shape = per_call(|| {
            for b in &bodies {
                let _ = std::hint::black_box(fp.fingerprint(&env, &engine.0, b.index, &b.body));
            }
        });
        let exact = per_call(|| {
            for b in &bodies {
                std::hint::black_box(exact_key(&engine.0, &ctx, env.func_type(b.index), b.body.as_bytes()));
            }
        });
        let decode = per_call(|| {
            for b in &bodies {
                let mut r = b.body.get_operators_reader().unwrap();
                while !r.eof() {
                    std::hint::black_box(r.visit_operator(&mut NopVisitor).unwrap());
                }
            }
        });
        let context = per_call(|| {
            std::hint::black_box(module_context_hash(&env));
        });
        let mbs = |s: f64| total as f64 / s / 1e6;
        eprintln!(
            "{:20} {:5} bodies {:8} B: shape {:4.0} MB/s, exact {:5.0} MB/s, module context {:.3} ms; \
             (wasmparser decode alone {:4.0} MB/s)",
            path.file_name().unwrap().to_string_lossy(),
            bodies.len(),
            total,
            mbs(shape),
            mbs(exact),
            context * 1e3,
            mbs(decode)
        );
    }
}

#[test]
fn fast_path_agrees() {
    let engine = EngineFingerprint::new(b"test");
    for path in corpus() {
        let bytes = std::fs::read(&path).unwrap();
        let (env, bodies) = ModuleEnv::parse(&bytes, supported_features()).unwrap();
        let mut a = Fingerprinter::new();
        let mut b = Fingerprinter::without_fast_path();
        for input in &bodies {
            assert_eq!(a.fingerprint(&env, &engine.0, input.index, &input.body), b.fingerprint(&env, &engine.0, input.index, &input.body));
        }
    }
}

/// A `VisitOperator` that does nothing: wasmparser's decoding cost alone.
struct NopVisitor;

macro_rules! nop_visit {
    ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*) )*) => {$(
        fn $visit(&mut self $($(, $arg: $argty)*)?) {
            $($(let _ = $arg;)*)?
        }
    )*};
}

impl<'a> wasmparser::VisitOperator<'a> for NopVisitor {
    type Output = ();
    fn simd_visitor(&mut self) -> Option<&mut dyn wasmparser::VisitSimdOperator<'a, Output = ()>> {
        Some(self)
    }
    wasmparser::for_each_visit_operator!(nop_visit);
}

impl<'a> wasmparser::VisitSimdOperator<'a> for NopVisitor {
    wasmparser::for_each_visit_simd_operator!(nop_visit);
}

/// Fingerprints the largest corpus module for a few seconds (for `perf record`).
#[test]
#[ignore]
fn profile_shape() {
    let engine = EngineFingerprint::new(b"test");
    let path = corpus().into_iter().next().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (env, bodies) = ModuleEnv::parse(&bytes, supported_features()).unwrap();
    let mut fp = Fingerprinter::new();
    let t = std::time::Instant::now();
    while t.elapsed().as_secs_f64() < 4.0 {
        for b in &bodies {
            let _ = std::hint::black_box(fp.fingerprint(&env, &engine.0, b.index, &b.body));
        }
    }
}

#[test]
#[ignore]
fn per_function_overhead() {
    let engine = EngineFingerprint::new(b"test");
    let wasm = wat::parse_str(r#"(module (memory 1) (global (mut i32) (i32.const 0)) (func $f (param i32) (result i32) local.get 0)
       (func (result i32) i32.const 1 call $f global.get 0 i32.add i32.load offset=4))"#).unwrap();
    let (env, bodies) = ModuleEnv::parse(&wasm, supported_features()).unwrap();
    let mut fp = Fingerprinter::new();
    for b in &bodies {
        let t = per_call(|| {
            let _ = std::hint::black_box(fp.fingerprint(&env, &engine.0, b.index, &b.body));
        });
        eprintln!("body of {} bytes: {:.0} ns", b.body.as_bytes().len(), t * 1e9);
    }
    let t = per_call(|| {
        std::hint::black_box(exact_key(&engine.0, &[0; 32], env.func_type(0), bodies[0].body.as_bytes()));
    });
    eprintln!("exact key: {:.0} ns", t * 1e9);
}

#[test]
#[ignore]
fn fast_loop_speed() {
    let engine = EngineFingerprint::new(b"test");
    let mut body = String::new();
    for i in 0..20000 {
        body.push_str(&format!("local.get 0 i32.const {} i32.add i32.load offset=8 local.set 0\n", i % 60));
    }
    let wasm = wat::parse_str(format!("(module (memory 1) (func (param i32) {body}))")).unwrap();
    let (env, bodies) = ModuleEnv::parse(&wasm, supported_features()).unwrap();
    let mut fp = Fingerprinter::new();
    let b = &bodies[0];
    let n = b.body.as_bytes().len();
    let t = per_call(|| {
        let _ = std::hint::black_box(fp.fingerprint(&env, &engine.0, b.index, &b.body));
    });
    let t2 = per_call(|| {
        let mut r = b.body.get_operators_reader().unwrap();
        while !r.eof() {
            std::hint::black_box(r.visit_operator(&mut NopVisitor).unwrap());
        }
    });
    let t3 = per_call(|| {
        std::hint::black_box(exact_key(&engine.0, &[0; 32], env.func_type(0), b.body.as_bytes()));
    });
    eprintln!("{n} bytes, 100000 ops: shape {:.2} ns/op {:.0} MB/s; wasmparser {:.2} ns/op; sha {:.2} ns/op", t * 1e9 / 1e5, n as f64 / t / 1e6, t2 * 1e9 / 1e5, t3 * 1e9 / 1e5);
}
