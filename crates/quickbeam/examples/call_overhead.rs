//! Measures the cost of calls across the host/Wasm boundary:
//! `cargo run --release -p quickbeam --example call_overhead`.
use quickbeam::*;
use std::time::Instant;

fn main() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (import "env" "h" (func $h (param i32) (result i32)))
            (func (export "id") (param i32) (result i32) local.get 0)
            (func (export "loop") (param i32) (result i32) (local i32)
                (loop $l
                    local.get 1 call $h local.set 1
                    local.get 0 i32.const 1 i32.sub local.tee 0
                    br_if $l)
                local.get 1))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.func_wrap("env", "h", |x: i32| x + 1)?;
    let instance = linker.instantiate(&mut store, &module)?;
    let id = instance.get_typed_func::<i32, i32>(&mut store, "id")?;
    let n = 1_000_000;
    let t = Instant::now();
    let mut acc = 0;
    for i in 0..n {
        acc ^= id.call(&mut store, i)?;
    }
    println!("host -> wasm (TypedFunc): {:.1} ns/call ({acc})", t.elapsed().as_nanos() as f64 / n as f64);
    let f = instance.get_func(&mut store, "id").unwrap();
    let t = Instant::now();
    let mut r = [Val::I32(0)];
    for i in 0..n {
        f.call(&mut store, &[Val::I32(i)], &mut r)?;
    }
    println!("host -> wasm (Func::call): {:.1} ns/call", t.elapsed().as_nanos() as f64 / n as f64);
    let lp = instance.get_typed_func::<i32, i32>(&mut store, "loop")?;
    let t = Instant::now();
    let r = lp.call(&mut store, n)?;
    println!("wasm -> host: {:.1} ns/call ({r})", t.elapsed().as_nanos() as f64 / n as f64);
    Ok(())
}
