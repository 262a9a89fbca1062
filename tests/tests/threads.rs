//! Several threads using separate engines at once: each must see its own traps and
//! results (the runtime's trap handling and code memory are process-wide resources).

use quickbeam::{Engine, Instance, Module, Store, Trap, TrapCode};

/// A module; `salt` changes a constant so that every round compiles (and maps) new code.
fn wat(salt: usize) -> String {
    format!(
        r#"(module
  (func $boom (export "boom") (drop (i32.const {salt})) unreachable)
  (func (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call 1 (i32.sub (local.get 0) (i32.const 1)))
                     (call 1 (i32.sub (local.get 0) (i32.const 2))))))))"#
    )
}

/// Compiles, instantiates, runs and traps, `rounds` times (a new module each round).
fn worker(id: usize, rounds: usize) {
    let engine = Engine::default();
    for round in 0..rounds {
        let module = Module::new(&engine, wat(id * 1_000_000 + round)).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let fib = instance.get_typed_func::<i32, i32>(&mut store, "fib").unwrap();
        assert_eq!(fib.call(&mut store, 15).unwrap(), 610);
        let boom = instance.get_typed_func::<(), ()>(&mut store, "boom").unwrap();
        let err = boom.call(&mut store, ()).unwrap_err();
        let trap = err.downcast_ref::<Trap>().unwrap_or_else(|| panic!("not a trap: {err:#}"));
        assert_eq!(trap.code, TrapCode::UnreachableCodeReached);
    }
}

#[test]
fn one_thread() {
    worker(0, 50);
}

#[test]
fn four_threads_at_once() {
    std::thread::scope(|s| {
        for t in 1..=4 {
            std::thread::Builder::new().stack_size(8 << 20).spawn_scoped(s, move || worker(t, 1000)).unwrap();
        }
    });
}
