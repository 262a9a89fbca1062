//! The public API end to end, on real modules compiled by the backend.

use quickbeam::*;

fn engine() -> Engine {
    Engine::default()
}

fn instantiate(wat: &str) -> (Store<()>, Instance) {
    let engine = engine();
    let module = Module::new(&engine, wat).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    (store, instance)
}

fn trap_code(e: &Error) -> TrapCode {
    e.downcast_ref::<Trap>().unwrap_or_else(|| panic!("expected a trap, got: {e:?}")).code
}

#[test]
fn add() {
    let (mut store, instance) =
        instantiate(r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#);
    let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add").unwrap();
    assert_eq!(add.call(&mut store, (40, 2)).unwrap(), 42);
    let mut r = [Val::I32(0)];
    instance.get_func(&mut store, "add").unwrap().call(&mut store, &[Val::I32(1), Val::I32(-3)], &mut r).unwrap();
    assert_eq!(r[0], Val::I32(-2));
}

/// A trap's frame names the byte offset of the trapping operator, also after local
/// declarations and constants of several LEB128 lengths.
#[test]
fn a_trap_names_the_offset_of_its_operator() {
    let wat = r#"(module
        (func $f (export "run") (local i32 i64) (local f32)
            i32.const 100000 local.set 0 i64.const 1 local.set 1 nop unreachable))"#;
    let wasm = wat::parse_str(wat).unwrap();
    // The `unreachable` opcode (0x00) right after `nop` (0x01) at the end of the body.
    let at = wasm.windows(3).rposition(|w| w == [0x01, 0x00, 0x0b]).unwrap() as u32 + 1;
    let (mut store, instance) = instantiate(wat);
    let run = instance.get_typed_func::<(), ()>(&mut store, "run").unwrap();
    let e = run.call(&mut store, ()).unwrap_err();
    let trap = e.downcast_ref::<Trap>().unwrap();
    assert_eq!(trap.backtrace[0].module_offset, Some(at), "{trap}");
}

#[test]
fn unreachable_traps_with_backtrace() {
    let (mut store, instance) = instantiate(
        r#"(module
            (func $inner (unreachable))
            (func $outer (export "run") (call $inner)))"#,
    );
    let run = instance.get_typed_func::<(), ()>(&mut store, "run").unwrap();
    let e = run.call(&mut store, ()).unwrap_err();
    assert_eq!(trap_code(&e), TrapCode::UnreachableCodeReached);
    let trap = e.downcast_ref::<Trap>().unwrap();
    let names: Vec<_> = trap.backtrace.iter().map(|f| f.func_name.as_deref()).collect();
    assert_eq!(names, vec![Some("inner"), Some("outer")], "{trap}");
    assert!(trap.backtrace.iter().all(|f| f.module_offset.is_some()), "{trap}");
    let text = trap.to_string();
    assert!(text.contains("unreachable") && text.contains("inner"), "{text}");
}

#[test]
fn memory_access_and_out_of_bounds() {
    let (mut store, instance) = instantiate(
        r#"(module
            (memory (export "mem") 1 2)
            (data (i32.const 16) "\2a\00\00\00")
            (func (export "load") (param i32) (result i32) local.get 0 i32.load)
            (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
            (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
            (func (export "size") (result i32) memory.size))"#,
    );
    let load = instance.get_typed_func::<i32, i32>(&mut store, "load").unwrap();
    let st = instance.get_typed_func::<(i32, i32), ()>(&mut store, "store").unwrap();
    let grow = instance.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    let size = instance.get_typed_func::<(), i32>(&mut store, "size").unwrap();
    assert_eq!(load.call(&mut store, 16).unwrap(), 42);
    st.call(&mut store, (65532, 7)).unwrap();
    assert_eq!(load.call(&mut store, 65532).unwrap(), 7);
    for addr in [65533, 65536, -1, i32::MIN] {
        let e = load.call(&mut store, addr).unwrap_err();
        assert_eq!(trap_code(&e), TrapCode::MemoryOutOfBounds, "load at {addr}");
    }
    assert_eq!(trap_code(&st.call(&mut store, (65536, 1)).unwrap_err()), TrapCode::MemoryOutOfBounds);
    assert_eq!(grow.call(&mut store, 1).unwrap(), 1);
    assert_eq!(grow.call(&mut store, 1).unwrap(), -1);
    assert_eq!(size.call(&mut store, ()).unwrap(), 2);
    assert_eq!(load.call(&mut store, 65536).unwrap(), 0);
    let mem = instance.get_memory(&mut store, "mem").unwrap();
    assert_eq!(mem.size(&store), 2);
    mem.data_mut(&mut store)[100] = 9;
    assert_eq!(load.call(&mut store, 100).unwrap(), 9);
    assert_eq!(mem.grow(&mut store, 0).unwrap(), 2);
    assert!(mem.grow(&mut store, 1).is_err());
}

#[test]
fn integer_traps() {
    let (mut store, instance) = instantiate(
        r#"(module
            (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
            (func (export "trunc") (param f64) (result i32) local.get 0 i32.trunc_f64_s))"#,
    );
    let div = instance.get_typed_func::<(i32, i32), i32>(&mut store, "div").unwrap();
    assert_eq!(div.call(&mut store, (7, 2)).unwrap(), 3);
    assert_eq!(trap_code(&div.call(&mut store, (1, 0)).unwrap_err()), TrapCode::IntegerDivisionByZero);
    assert_eq!(trap_code(&div.call(&mut store, (i32::MIN, -1)).unwrap_err()), TrapCode::IntegerOverflow);
    let trunc = instance.get_typed_func::<f64, i32>(&mut store, "trunc").unwrap();
    assert_eq!(trunc.call(&mut store, -3.9).unwrap(), -3);
    assert_eq!(trap_code(&trunc.call(&mut store, f64::NAN).unwrap_err()), TrapCode::BadConversionToInteger);
}

#[test]
fn stack_overflow_is_a_trap() {
    let (mut store, instance) = instantiate(
        r#"(module (func $f (export "f") (param i32) (result i32) local.get 0 i32.const 1 i32.add call $f))"#,
    );
    let f = instance.get_typed_func::<i32, i32>(&mut store, "f").unwrap();
    for _ in 0..2 {
        let e = f.call(&mut store, 0).unwrap_err();
        assert_eq!(trap_code(&e), TrapCode::StackOverflow);
        let t = e.downcast_ref::<Trap>().unwrap();
        assert!(!t.backtrace.is_empty() && t.backtrace.len() <= 256);
    }
}

struct Ctx {
    log: Vec<i32>,
}

#[derive(Debug)]
struct Exit(i32);
impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit with {}", self.0)
    }
}
impl std::error::Error for Exit {}

const HOST_WAT: &str = r#"(module
    (import "env" "log" (func $log (param i32)))
    (import "env" "exit" (func $exit (param i32)))
    (import "env" "peek" (func $peek (param i32) (result i32)))
    (import "env" "twice" (func $twice (param i64) (result i64)))
    (import "env" "boom" (func $boom))
    (import "env" "swap" (func $swap (param i32 f64) (result f64 i32)))
    (memory (export "memory") 1)
    (data (i32.const 0) "\05")
    (func (export "run") (param i32) (result i32)
        local.get 0 call $log
        i32.const 0 call $peek)
    (func (export "exit") (param i32) local.get 0 call $exit unreachable)
    (func (export "twice") (param i64) (result i64) local.get 0 call $twice i64.const 1 i64.add)
    (func (export "boom") call $boom)
    (func (export "swap") (param i32 f64) (result f64 i32) local.get 0 local.get 1 call $swap)
    (func (export "double") (param i32) (result i32) local.get 0 local.get 0 i32.add))"#;

fn host_linker(engine: &Engine) -> Linker<Ctx> {
    let mut linker = Linker::new(engine);
    linker
        .func_wrap("env", "log", |mut caller: Caller<'_, Ctx>, x: i32| caller.data_mut().log.push(x))
        .unwrap()
        .func_wrap("env", "exit", |code: i32| -> Result<()> { Err(Exit(code).into()) })
        .unwrap()
        .func_wrap("env", "peek", |mut caller: Caller<'_, Ctx>, addr: i32| -> Result<i32> {
            let mem = caller.get_export("memory").and_then(Extern::into_memory).unwrap();
            let v = mem.data(&caller)[addr as usize] as i32;
            // Reenter Wasm from the host.
            let double = caller.get_export("double").and_then(Extern::into_func).unwrap();
            let double = double.typed::<i32, i32>(&caller)?;
            let d = double.call(&mut caller, v)?;
            mem.data_mut(&mut caller)[1] = d as u8;
            Ok(d)
        })
        .unwrap()
        .func_new(
            "env",
            "twice",
            FuncType::new([ValType::I64], [ValType::I64]),
            |_caller, params, results| {
                results[0] = Val::I64(params[0].unwrap_i64() * 2);
                Ok(())
            },
        )
        .unwrap()
        .func_wrap("env", "boom", || -> () { panic!("boom") })
        .unwrap()
        .func_wrap("env", "swap", |a: i32, b: f64| (b, a))
        .unwrap();
    linker
}

#[test]
fn host_functions() {
    let engine = engine();
    let module = Module::new(&engine, HOST_WAT).unwrap();
    let mut store = Store::new(&engine, Ctx { log: vec![] });
    let linker = host_linker(&engine);
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let run = instance.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    assert_eq!(run.call(&mut store, 3).unwrap(), 10);
    assert_eq!(store.data().log, vec![3]);
    let mem = instance.get_memory(&mut store, "memory").unwrap();
    assert_eq!(mem.data(&store)[1], 10);

    let exit = instance.get_typed_func::<i32, ()>(&mut store, "exit").unwrap();
    let e = exit.call(&mut store, 7).unwrap_err();
    assert_eq!(e.downcast_ref::<Exit>().map(|e| e.0), Some(7), "{e:?}");

    let twice = instance.get_typed_func::<i64, i64>(&mut store, "twice").unwrap();
    assert_eq!(twice.call(&mut store, 1 << 40).unwrap(), (1 << 41) + 1);

    let boom = instance.get_typed_func::<(), ()>(&mut store, "boom").unwrap();
    let e = boom.call(&mut store, ()).unwrap_err();
    assert!(e.to_string().contains("panicked: boom"), "{e}");

    let swap = instance.get_typed_func::<(i32, f64), (f64, i32)>(&mut store, "swap").unwrap();
    assert_eq!(swap.call(&mut store, (5, 2.5)).unwrap(), (2.5, 5));

    // Still usable after all that.
    assert_eq!(run.call(&mut store, 4).unwrap(), 10);
    assert_eq!(store.into_data().log, vec![3, 4]);
}

#[test]
fn host_functions_called_directly() {
    let engine = engine();
    let mut store = Store::new(&engine, 5i32);
    let f = Func::wrap(&mut store, |caller: Caller<'_, i32>, x: i32| x + *caller.data());
    assert_eq!(f.typed::<i32, i32>(&store).unwrap().call(&mut store, 1).unwrap(), 6);
    assert!(f.typed::<i64, i32>(&store).is_err());
    let mut r = [Val::I32(0)];
    assert!(f.call(&mut store, &[Val::I64(1)], &mut r).is_err());
    f.call(&mut store, &[Val::I32(2)], &mut r).unwrap();
    assert_eq!(r[0], Val::I32(7));
}

#[test]
fn link_errors_are_clear() {
    let engine = engine();
    let module = Module::new(&engine, HOST_WAT).unwrap();
    let mut store = Store::new(&engine, Ctx { log: vec![] });
    let linker = Linker::new(&engine);
    let e = linker.instantiate(&mut store, &module).unwrap_err();
    assert_eq!(e.to_string(), "unknown import: `env::log` has not been defined");
    let mut linker = host_linker(&engine);
    linker.allow_shadowing(true);
    linker.func_wrap("env", "log", |_: i64| {}).unwrap();
    let e = linker.instantiate(&mut store, &module).unwrap_err();
    assert!(e.to_string().starts_with("incompatible import type for `env::log`"), "{e}");
}

#[test]
fn globals_tables_and_indirect_calls() {
    let engine = engine();
    let module = Module::new(
        &engine,
        r#"(module
            (import "env" "base" (global $base i32))
            (global $counter (export "counter") (mut i32) (global.get $base))
            (table (export "table") 4 funcref)
            (type $t (func (param i32) (result i32)))
            (elem (i32.const 0) $inc $dec)
            (func $inc (param i32) (result i32) local.get 0 i32.const 1 i32.add)
            (func $dec (param i32) (result i32) local.get 0 i32.const 1 i32.sub)
            (func $other (param i64))
            (elem declare func $other)
            (func (export "call") (param i32 i32) (result i32)
                local.get 1 local.get 0 call_indirect (type $t))
            (func (export "bump") (result i32)
                global.get $counter i32.const 1 i32.add global.set $counter global.get $counter))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let base = Global::new(&mut store, GlobalType { content: ValType::I32, mutable: false }, Val::I32(10)).unwrap();
    let instance = Instance::new(&mut store, &module, &[base.into()]).unwrap();
    let call = instance.get_typed_func::<(i32, i32), i32>(&mut store, "call").unwrap();
    assert_eq!(call.call(&mut store, (0, 5)).unwrap(), 6);
    assert_eq!(call.call(&mut store, (1, 5)).unwrap(), 4);
    assert_eq!(trap_code(&call.call(&mut store, (2, 5)).unwrap_err()), TrapCode::IndirectCallToNull);
    assert_eq!(trap_code(&call.call(&mut store, (4, 5)).unwrap_err()), TrapCode::TableOutOfBounds);
    let bump = instance.get_typed_func::<(), i32>(&mut store, "bump").unwrap();
    assert_eq!(bump.call(&mut store, ()).unwrap(), 11);
    let counter = instance.get_global(&mut store, "counter").unwrap();
    assert_eq!(counter.get(&mut store), Val::I32(11));
    counter.set(&mut store, Val::I32(100)).unwrap();
    assert_eq!(bump.call(&mut store, ()).unwrap(), 101);
    assert!(base.set(&mut store, Val::I32(1)).is_err());

    // A host function in the table, and a wrong signature.
    let table = instance.get_table(&mut store, "table").unwrap();
    let triple = Func::wrap(&mut store, |x: i32| x * 3);
    table.set(&mut store, 2, triple.into()).unwrap();
    assert_eq!(call.call(&mut store, (2, 5)).unwrap(), 15);
    let wrong = Func::wrap(&mut store, |x: i64| x);
    table.set(&mut store, 3, wrong.into()).unwrap();
    assert_eq!(trap_code(&call.call(&mut store, (3, 5)).unwrap_err()), TrapCode::BadSignature);
    // Table values round-trip to the same functions.
    assert_eq!(table.get(&mut store, 2), Some(Val::FuncRef(Some(triple))));
    let inc = table.get(&mut store, 0).unwrap();
    let inc = inc.unwrap_funcref().unwrap();
    assert_eq!(inc.typed::<i32, i32>(&store).unwrap().call(&mut store, 1).unwrap(), 2);
    assert_eq!(table.get(&mut store, 4), None);
    assert_eq!(table.grow(&mut store, 2, Val::FuncRef(None)).unwrap(), 4);
    assert_eq!(table.size(&store), 6);
}

#[test]
fn start_function_and_segment_traps() {
    let engine = engine();
    let module = Module::new(
        &engine,
        r#"(module
            (import "env" "mem" (memory 1))
            (global $g (mut i32) (i32.const 0))
            (func $start i32.const 0 i32.const 99 i32.store8)
            (start $start))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let mem = Memory::new(&mut store, MemoryType { minimum: 1, maximum: None, memory64: false, shared: false }).unwrap();
    Instance::new(&mut store, &module, &[mem.into()]).unwrap();
    assert_eq!(mem.data(&store)[0], 99);

    let module = Module::new(
        &engine,
        r#"(module
            (import "env" "mem" (memory 1))
            (data (i32.const 1) "a")
            (data (i32.const 65536) "b"))"#,
    )
    .unwrap();
    let e = Instance::new(&mut store, &module, &[mem.into()]).unwrap_err();
    assert_eq!(trap_code(&e), TrapCode::MemoryOutOfBounds);
    assert_eq!(mem.data(&store)[1], b'a');

    let module = Module::new(&engine, r#"(module (func $s unreachable) (start $s))"#).unwrap();
    let e = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert_eq!(trap_code(&e), TrapCode::UnreachableCodeReached);
}

#[test]
fn bulk_memory_and_table_operations() {
    let (mut store, instance) = instantiate(
        r#"(module
            (memory (export "mem") 1)
            (data $d "hello")
            (table $t 4 funcref)
            (elem $e func $f $f)
            (func $f (result i32) i32.const 7)
            (func (export "init") (param i32 i32 i32) local.get 0 local.get 1 local.get 2 memory.init $d)
            (func (export "drop") data.drop $d)
            (func (export "fill") (param i32 i32 i32) local.get 0 local.get 1 local.get 2 memory.fill)
            (func (export "copy") (param i32 i32 i32) local.get 0 local.get 1 local.get 2 memory.copy)
            (func (export "tinit") (param i32 i32 i32) local.get 0 local.get 1 local.get 2 table.init $t $e)
            (func (export "tcall") (param i32) (result i32) local.get 0 call_indirect (result i32))
            (func (export "tgrow") (param i32) (result i32) ref.null func local.get 0 table.grow $t)
            (func (export "tsize") (result i32) table.size $t))"#,
    );
    let mem = instance.get_memory(&mut store, "mem").unwrap();
    let init = instance.get_typed_func::<(i32, i32, i32), ()>(&mut store, "init").unwrap();
    let fill = instance.get_typed_func::<(i32, i32, i32), ()>(&mut store, "fill").unwrap();
    let copy = instance.get_typed_func::<(i32, i32, i32), ()>(&mut store, "copy").unwrap();
    let drop = instance.get_typed_func::<(), ()>(&mut store, "drop").unwrap();
    init.call(&mut store, (10, 1, 4)).unwrap();
    assert_eq!(&mem.data(&store)[10..14], b"ello");
    assert_eq!(trap_code(&init.call(&mut store, (65534, 0, 5)).unwrap_err()), TrapCode::MemoryOutOfBounds);
    fill.call(&mut store, (20, b'x' as i32, 3)).unwrap();
    assert_eq!(&mem.data(&store)[20..23], b"xxx");
    copy.call(&mut store, (11, 10, 4)).unwrap();
    assert_eq!(&mem.data(&store)[10..15], b"eello");
    assert_eq!(trap_code(&copy.call(&mut store, (0, 65535, 2)).unwrap_err()), TrapCode::MemoryOutOfBounds);
    drop.call(&mut store, ()).unwrap();
    assert_eq!(trap_code(&init.call(&mut store, (0, 0, 1)).unwrap_err()), TrapCode::MemoryOutOfBounds);
    init.call(&mut store, (0, 0, 0)).unwrap();

    let tinit = instance.get_typed_func::<(i32, i32, i32), ()>(&mut store, "tinit").unwrap();
    let tcall = instance.get_typed_func::<i32, i32>(&mut store, "tcall").unwrap();
    let tgrow = instance.get_typed_func::<i32, i32>(&mut store, "tgrow").unwrap();
    let tsize = instance.get_typed_func::<(), i32>(&mut store, "tsize").unwrap();
    tinit.call(&mut store, (2, 0, 2)).unwrap();
    assert_eq!(tcall.call(&mut store, 3).unwrap(), 7);
    assert_eq!(trap_code(&tinit.call(&mut store, (3, 0, 2)).unwrap_err()), TrapCode::TableOutOfBounds);
    assert_eq!(tgrow.call(&mut store, 3).unwrap(), 4);
    assert_eq!(tsize.call(&mut store, ()).unwrap(), 7);
}

#[test]
fn compile_errors_name_the_function_and_offset() {
    let engine = engine();
    let e = Module::new(&engine, &b"\0asm\x01\0\0\0\x01"[..]).unwrap_err();
    assert!(e.to_string().contains("(at offset 0x"), "{e}");
    let e = Module::new(&engine, r#"(module (func $bad (result i32) i64.const 0))"#).unwrap_err();
    let text = format!("{e:#}");
    assert!(text.contains("function 0 (`bad`)") && text.contains("(at offset 0x"), "{text}");
    let e = Module::new(&engine, "(module (memory i64 1))").unwrap_err();
    assert!(e.to_string().contains("offset"), "{e}");
    assert!(Module::new(&engine, "(module (func").is_err());
}

#[test]
fn imports_exports_and_report() {
    let engine = engine();
    let module = Module::new(&engine, HOST_WAT).unwrap();
    assert_eq!(module.imports().len(), 6);
    let first = module.imports().next().unwrap();
    assert_eq!((first.module(), first.name()), ("env", "log"));
    assert_eq!(first.ty(), ExternType::Func(FuncType::new([ValType::I32], [])));
    let names: Vec<_> = module.exports().map(|e| e.name()).collect();
    assert_eq!(names, ["memory", "run", "exit", "twice", "boom", "swap", "double"]);
    let r = module.compile_report();
    assert_eq!((r.functions, r.compiled, r.reused, r.patched), (6, 6, 0, 0));
    assert!(r.bytes > 0 && r.seconds > 0.0);
}

#[test]
fn stores_and_modules_cross_threads() {
    let engine = engine();
    let module = Module::new(&engine, r#"(module (func (export "f") (param i32) (result i32) local.get 0 i32.const 1 i32.add))"#).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (engine, module) = (engine.clone(), module.clone());
            std::thread::spawn(move || {
                let mut store = Store::new(&engine, ());
                let instance = Instance::new(&mut store, &module, &[]).unwrap();
                let f = instance.get_typed_func::<i32, i32>(&mut store, "f").unwrap();
                (0..1000).fold(i, |acc, _| f.call(&mut store, acc).unwrap())
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i as i32 + 1000);
    }
}

#[test]
#[should_panic(expected = "wrong store")]
fn handles_of_another_store_panic() {
    let engine = engine();
    let mut a = Store::new(&engine, ());
    let b = Store::new(&engine, ());
    let g = Global::new(&mut a, GlobalType { content: ValType::I32, mutable: false }, Val::I32(1)).unwrap();
    g.ty(&b);
}

#[test]
fn trap_display_format() {
    let (mut store, instance) = instantiate(
        r#"(module (func $f (export "f") i32.const 0 i32.const 0 i32.div_u drop) (func (export "g") call 0))"#,
    );
    let g = instance.get_typed_func::<(), ()>(&mut store, "g").unwrap();
    let e = g.call(&mut store, ()).unwrap_err();
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "wasm trap: integer divide by zero");
    assert_eq!(lines[1], "wasm backtrace:");
    assert!(lines[2].starts_with("  0: 0x") && lines[2].ends_with(" - f"), "{text}");
    assert!(lines[3].starts_with("  1: 0x") && lines[3].ends_with(" - wasm-function[1]"), "{text}");
}

#[test]
fn host_errors_cross_nested_activations_unchanged() {
    let engine = engine();
    let module = Module::new(
        &engine,
        r#"(module
            (import "env" "outer" (func $outer (param i32)))
            (import "env" "inner" (func $inner (param i32)))
            (func (export "a") (param i32) local.get 0 call $outer)
            (func (export "b") (param i32) local.get 0 call $inner))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap("env", "outer", |mut caller: Caller<'_, ()>, x: i32| -> Result<()> {
            let b = caller.get_export("b").unwrap().into_func().unwrap();
            b.call(&mut caller, &[Val::I32(x)], &mut [])
        })
        .unwrap()
        .func_wrap("env", "inner", |x: i32| -> Result<()> { Err(Exit(x).into()) })
        .unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let a = instance.get_typed_func::<i32, ()>(&mut store, "a").unwrap();
    let e = a.call(&mut store, 3).unwrap_err();
    assert_eq!(e.downcast_ref::<Exit>().map(|e| e.0), Some(3), "{e:?}");
}

#[test]
fn externref_values_round_trip() {
    let (mut store, instance) = instantiate(
        r#"(module
            (table $t (export "t") 2 externref)
            (func (export "id") (param externref) (result externref) local.get 0)
            (func (export "is_null") (param externref) (result i32) local.get 0 ref.is_null))"#,
    );
    let id = instance.get_func(&mut store, "id").unwrap();
    for v in [Val::ExternRef(None), Val::ExternRef(Some(0)), Val::ExternRef(Some(u32::MAX))] {
        let mut r = [Val::I32(0)];
        id.call(&mut store, &[v], &mut r).unwrap();
        assert_eq!(r[0], v);
    }
    let is_null = instance.get_func(&mut store, "is_null").unwrap();
    let mut r = [Val::I32(9)];
    is_null.call(&mut store, &[Val::ExternRef(Some(0))], &mut r).unwrap();
    assert_eq!(r[0], Val::I32(0));
    let t = instance.get_table(&mut store, "t").unwrap();
    t.set(&mut store, 1, Val::ExternRef(Some(5))).unwrap();
    assert_eq!(t.get(&mut store, 1), Some(Val::ExternRef(Some(5))));
    assert!(t.set(&mut store, 0, Val::I32(1)).is_err());
}
