//! Compile-time checks that the public API accepts the forms embedders write.
#![allow(dead_code)]

use quickbeam::*;

struct Ctx {
    n: i32,
}

#[derive(Debug)]
struct Exit(i32);
impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}
impl std::error::Error for Exit {}

fn shapes(engine: &Engine, module: &Module) -> Result<()> {
    let mut store = Store::new(engine, Ctx { n: 0 });
    let mut linker: Linker<Ctx> = Linker::new(engine);
    linker.func_wrap("env", "a", |x: i32, y: i64| -> i64 { x as i64 + y })?;
    linker.func_wrap("env", "b", || {})?;
    linker.func_wrap("env", "c", |mut caller: Caller<'_, Ctx>, p: i32| -> Result<i32> {
        caller.data_mut().n += p;
        let mem = caller.get_export("memory").and_then(Extern::into_memory).unwrap();
        let bytes = mem.data(&caller);
        let first = bytes[0] as i32;
        let bytes = mem.data_mut(&mut caller);
        bytes[0] = 1;
        Ok(first)
    })?;
    linker.func_wrap("env", "exit", |code: i32| -> Result<()> { Err(Exit(code).into()) })?;
    linker.func_wrap("env", "pair", |a: f32, b: f64| (b, a, 1i32))?;
    linker.func_new("env", "d", FuncType::new([ValType::I32], [ValType::I32]), |_c, p, r| {
        r[0] = p[0];
        Ok(())
    })?;
    let f = Func::wrap(&mut store, |x: i32| x + 1);
    linker.define(&store, "env", "f", f)?;
    let instance = linker.instantiate(&mut store, module)?;
    let run = instance.get_typed_func::<(i32, i32), i32>(&mut store, "run")?;
    let _r: i32 = run.call(&mut store, (1, 2))?;
    let unit = instance.get_typed_func::<(), ()>(&mut store, "unit")?;
    unit.call(&mut store, ())?;
    let mut results = [Val::I32(0)];
    instance.get_func(&mut store, "run").unwrap().call(&mut store, &[Val::I32(1), Val::I32(2)], &mut results)?;
    let mem = instance.get_memory(&mut store, "memory").unwrap();
    let _len = mem.data(&store).len();
    mem.data_mut(&mut store)[0] = 3;
    let _ = mem.grow(&mut store, 1)?;
    let g = Global::new(&mut store, GlobalType { content: ValType::I32, mutable: true }, Val::I32(1))?;
    g.set(&mut store, Val::I32(2))?;
    let _ = g.get(&mut store);
    if let Err(e) = run.call(&mut store, (0, 0)) {
        if let Some(Exit(_code)) = e.downcast_ref::<Exit>() {}
        if let Some(_t) = e.downcast_ref::<Trap>() {}
    }
    let _ = store.into_data();
    Ok(())
}

fn store_is_send<T: Send>() {}
fn handles_are_send_sync<T: Send + Sync>() {}

#[test]
fn api_types_are_thread_safe() {
    store_is_send::<Store<Ctx>>();
    handles_are_send_sync::<(Engine, Module, Func, Memory, Global, Table, Instance, Linker<Ctx>)>();
}
