//! Isolation (DESIGN.md I5) and resource limits: a guest that reads or writes just past
//! its memory, grows it to the store's limit and beyond, calls through a null or
//! wrong-type table entry, indexes a table out of bounds, recurses without end, loops
//! forever under an epoch deadline or runs out of fuel stops with the right trap (or
//! the -1 the spec asks for), and afterwards the host process, the trapping instance,
//! another instance of the same store and an instance of another store all still work,
//! their memories intact.

use quickbeam::*;
use std::time::Duration;

/// Every case runs against this module. Table: 0 null, 1 `$seven` (() -> i32),
/// 2 `$double` (i32 -> i32), 3 null.
const SUBJECT: &str = r#"(module
    (type $v2i (func (result i32)))
    (type $i2i (func (param i32) (result i32)))
    (memory (export "mem") 1)
    (table $t 4 funcref)
    (elem (i32.const 1) $seven $double)
    (func $seven (type $v2i) i32.const 7)
    (func $double (type $i2i) local.get 0 i32.const 2 i32.mul)
    (func (export "ok") (result i32) i32.const 42)
    (func (export "load8") (param i32) (result i32) local.get 0 i32.load8_u)
    (func (export "store8") (param i32 i32) local.get 0 local.get 1 i32.store8)
    (func (export "load64") (param i32) (result i64) local.get 0 i64.load)
    (func (export "store64") (param i32 i64) local.get 0 local.get 1 i64.store)
    (func (export "load32_far") (param i32) (result i32) local.get 0 i32.load offset=0xffff0000)
    (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
    (func (export "size") (result i32) memory.size)
    (func (export "call_v2i") (param i32) (result i32) local.get 0 call_indirect (type $v2i))
    (func (export "table_is_null") (param i32) (result i32) local.get 0 table.get $t ref.is_null)
    (func (export "table_set_null") (param i32) local.get 0 ref.null func table.set $t)
    (func (export "table_grow") (param i32) (result i32) ref.null func local.get 0 table.grow $t)
    (func $recurse (export "recurse") (param i32) (result i32)
        local.get 0 i32.const 1 i32.add call $recurse)
    (func $depth (export "depth") (param i32) (result i32)
        local.get 0 i32.eqz
        if (result i32) i32.const 0
        else local.get 0 i32.const 1 i32.sub call $depth i32.const 1 i32.add end)
    (func (export "spin") (loop $l br $l))
    (func (export "spin_calls") (loop $l call $seven drop br $l))
    ;; Counts to n (n >= 1) in a loop whose header runs n times.
    (func (export "count") (param i32) (result i32) (local i32)
        loop $l
            local.get 1 i32.const 1 i32.add local.set 1
            local.get 1 local.get 0 i32.lt_u br_if $l
        end
        local.get 1))"#;

const PAGE: i32 = 65536;
/// A byte each instance writes into its memory at the start and must find there later.
const MARK_AT: i32 = 100;

struct Host {
    limits: StoreLimits,
}

fn trap_code(e: &Error) -> TrapCode {
    e.downcast_ref::<Trap>().unwrap_or_else(|| panic!("expected a trap, got: {e:#}")).code
}

/// A subject instance, a bystander instance in the same store, and another instance in
/// another store of the same engine.
struct World {
    engine: Engine,
    store: Store<Host>,
    subject: Instance,
    bystander: Instance,
    other_store: Store<Host>,
    other: Instance,
}

impl World {
    fn new(config: &Config) -> World {
        Self::with_limits(config, StoreLimits::default())
    }

    fn with_limits(config: &Config, limits: StoreLimits) -> World {
        let engine = Engine::new(config).unwrap();
        let module = Module::new(&engine, SUBJECT).unwrap();
        let new_store = |limits: StoreLimits| {
            let mut store = Store::new(&engine, Host { limits });
            store.limiter(|h| &mut h.limits);
            // Deadline 0 would interrupt at once; fuel 0 would run out at once.
            store.set_epoch_deadline(1 << 40);
            let _ = store.set_fuel(1 << 40);
            store
        };
        let mut store = new_store(limits);
        let mut other_store = new_store(StoreLimits::default());
        let subject = Instance::new(&mut store, &module, &[]).unwrap();
        let bystander = Instance::new(&mut store, &module, &[]).unwrap();
        let other = Instance::new(&mut other_store, &module, &[]).unwrap();
        let mut w = World { engine, store, subject, bystander, other_store, other };
        for (i, mark) in [(w.subject, 1), (w.bystander, 2)] {
            i.get_memory(&mut w.store, "mem").unwrap().data_mut(&mut w.store)[MARK_AT as usize] = mark;
        }
        w.other.get_memory(&mut w.other_store, "mem").unwrap().data_mut(&mut w.other_store)[MARK_AT as usize] = 3;
        w
    }

    fn f<P: WasmParams, R: WasmResults>(&mut self, name: &str) -> TypedFunc<P, R> {
        self.subject.get_typed_func::<P, R>(&mut self.store, name).unwrap()
    }

    /// Calls the subject's export `name` with `params`, expecting a trap with `code`.
    fn expect_trap(&mut self, name: &str, params: &[Val], code: TrapCode) {
        let f = self.subject.get_func(&mut self.store, name).unwrap();
        let mut results: Vec<Val> = f.ty(&self.store).results().iter().map(|t| Val::default_for(*t)).collect();
        let e = f.call(&mut self.store, params, &mut results).expect_err(name);
        assert_eq!(trap_code(&e), code, "{name}{params:?}: {e:#}");
    }

    /// Everything still works after a trap: the subject, the bystander of the same
    /// store and the other store's instance (calls, loops, memories), and a fresh
    /// instance of a freshly compiled module.
    fn assert_untouched(&mut self) {
        for (in_other, inst, mark) in [(false, self.subject, 1), (false, self.bystander, 2), (true, self.other, 3)] {
            let store = if in_other { &mut self.other_store } else { &mut self.store };
            let ok = inst.get_typed_func::<(), i32>(&mut *store, "ok").unwrap();
            assert_eq!(ok.call(&mut *store, ()).unwrap(), 42);
            let count = inst.get_typed_func::<i32, i32>(&mut *store, "count").unwrap();
            assert_eq!(count.call(&mut *store, 1000).unwrap(), 1000);
            let load8 = inst.get_typed_func::<i32, i32>(&mut *store, "load8").unwrap();
            assert_eq!(load8.call(&mut *store, MARK_AT).unwrap(), mark);
            let depth = inst.get_typed_func::<i32, i32>(&mut *store, "depth").unwrap();
            assert_eq!(depth.call(&mut *store, 500).unwrap(), 500);
        }
        let module = Module::new(&self.engine, r#"(module (func (export "ok") (result i32) i32.const 5))"#).unwrap();
        let mut store = Store::new(&self.engine, ());
        store.set_epoch_deadline(1 << 40);
        let _ = store.set_fuel(1 << 40);
        let i = Instance::new(&mut store, &module, &[]).unwrap();
        assert_eq!(i.get_typed_func::<(), i32>(&mut store, "ok").unwrap().call(&mut store, ()).unwrap(), 5);
    }
}

// ---- memory ----

#[test]
fn access_just_past_the_end_of_memory_traps() {
    let mut w = World::new(&Config::new());
    let load8 = w.f::<i32, i32>("load8");
    let store8 = w.f::<(i32, i32), ()>("store8");
    let load64 = w.f::<i32, i64>("load64");
    let store64 = w.f::<(i32, i64), ()>("store64");
    // The last byte and the last 8 bytes are in bounds.
    store8.call(&mut w.store, (PAGE - 1, 0xab)).unwrap();
    assert_eq!(load8.call(&mut w.store, PAGE - 1).unwrap(), 0xab);
    store64.call(&mut w.store, (PAGE - 8, 0x0102_0304_0506_0708)).unwrap();
    assert_eq!(load64.call(&mut w.store, PAGE - 8).unwrap(), 0x0102_0304_0506_0708);
    // One past the end, and 8-byte accesses straddling it.
    w.expect_trap("load8", &[Val::I32(PAGE)], TrapCode::MemoryOutOfBounds);
    w.expect_trap("store8", &[Val::I32(PAGE), Val::I32(1)], TrapCode::MemoryOutOfBounds);
    for at in PAGE - 7..PAGE {
        w.expect_trap("load64", &[Val::I32(at)], TrapCode::MemoryOutOfBounds);
        w.expect_trap("store64", &[Val::I32(at), Val::I64(-1)], TrapCode::MemoryOutOfBounds);
    }
    // A trapping store writes nothing, not even its in-bounds bytes.
    assert_eq!(load64.call(&mut w.store, PAGE - 8).unwrap(), 0x0102_0304_0506_0708);
    // Far away: the largest index, and a large static offset.
    w.expect_trap("load8", &[Val::I32(-1)], TrapCode::MemoryOutOfBounds);
    w.expect_trap("store64", &[Val::I32(-1), Val::I64(1)], TrapCode::MemoryOutOfBounds);
    w.expect_trap("load32_far", &[Val::I32(0)], TrapCode::MemoryOutOfBounds);
    w.expect_trap("load32_far", &[Val::I32(-1)], TrapCode::MemoryOutOfBounds);
    w.assert_untouched();
    // The other instances' memories never saw the subject's writes.
    let mem = w.bystander.get_memory(&mut w.store, "mem").unwrap();
    assert_eq!(mem.data(&w.store)[PAGE as usize - 8..], [0; 8]);
}

#[test]
fn memory_grows_to_the_store_limit_then_returns_minus_one() {
    let limits = StoreLimitsBuilder::new().memory_size(4 * PAGE as usize).build();
    let mut w = World::with_limits(&Config::new(), limits);
    let grow = w.f::<i32, i32>("grow");
    let size = w.f::<(), i32>("size");
    assert_eq!(grow.call(&mut w.store, 3).unwrap(), 1);
    assert_eq!(size.call(&mut w.store, ()).unwrap(), 4);
    assert_eq!(grow.call(&mut w.store, 1).unwrap(), -1);
    assert_eq!(grow.call(&mut w.store, 65536).unwrap(), -1);
    assert_eq!(grow.call(&mut w.store, 0).unwrap(), 4);
    assert_eq!(size.call(&mut w.store, ()).unwrap(), 4);
    // The grown memory ends where the limit is.
    let store8 = w.f::<(i32, i32), ()>("store8");
    store8.call(&mut w.store, (4 * PAGE - 1, 9)).unwrap();
    w.expect_trap("load8", &[Val::I32(4 * PAGE)], TrapCode::MemoryOutOfBounds);
    // The host's grow obeys the same limit.
    let mem = w.subject.get_memory(&mut w.store, "mem").unwrap();
    let e = mem.grow(&mut w.store, 1).unwrap_err();
    assert!(e.to_string().contains("limits"), "{e:#}");
    assert_eq!(mem.size(&w.store), 4);
    // The bystander may grow to the limit too (the limit is per memory); the other
    // store has no limit.
    let grow_b = w.bystander.get_typed_func::<i32, i32>(&mut w.store, "grow").unwrap();
    assert_eq!(grow_b.call(&mut w.store, 3).unwrap(), 1);
    assert_eq!(grow_b.call(&mut w.store, 1).unwrap(), -1);
    let grow_o = w.other.get_typed_func::<i32, i32>(&mut w.other_store, "grow").unwrap();
    assert_eq!(grow_o.call(&mut w.other_store, 10).unwrap(), 1);
    w.assert_untouched();
}

#[test]
fn a_declared_maximum_is_a_limit_without_a_limiter() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (memory 1 3) (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    assert_eq!(grow.call(&mut store, 3).unwrap(), -1);
    assert_eq!(grow.call(&mut store, 2).unwrap(), 1);
    assert_eq!(grow.call(&mut store, 1).unwrap(), -1);
}

#[test]
fn a_limiter_error_traps_the_grow_and_nothing_grows() {
    let limits = StoreLimitsBuilder::new().memory_size(2 * PAGE as usize).trap_on_grow_failure(true).build();
    let mut w = World::with_limits(&Config::new(), limits);
    let grow = w.f::<i32, i32>("grow");
    assert_eq!(grow.call(&mut w.store, 1).unwrap(), 1);
    let e = grow.call(&mut w.store, 1).unwrap_err();
    assert!(format!("{e:#}").contains("forcing trap when growing memory to 196608 bytes"), "{e:#}");
    assert_eq!(w.f::<(), i32>("size").call(&mut w.store, ()).unwrap(), 2);
    w.assert_untouched();
}

/// A limiter that panics: the panic fails the call, not the host.
#[test]
fn a_panicking_limiter_fails_the_call() {
    struct Panicky;
    impl ResourceLimiter for Panicky {
        fn memory_growing(&mut self, _: usize, desired: usize, _: Option<usize>) -> Result<bool> {
            if desired > 65536 {
                panic!("limiter panicked");
            }
            Ok(true)
        }
        fn table_growing(&mut self, current: usize, _: usize, _: Option<usize>) -> Result<bool> {
            Ok(current == 0)
        }
    }
    let engine = Engine::default();
    let module = Module::new(&engine, SUBJECT).unwrap();
    let mut store = Store::new(&engine, Panicky);
    store.limiter(|p| p as &mut dyn ResourceLimiter);
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    let e = grow.call(&mut store, 1).unwrap_err();
    assert!(format!("{e:#}").contains("limiter panicked"), "{e:#}");
    let table_grow = i.get_typed_func::<i32, i32>(&mut store, "table_grow").unwrap();
    assert_eq!(table_grow.call(&mut store, 1).unwrap(), -1);
    let ok = i.get_typed_func::<(), i32>(&mut store, "ok").unwrap();
    assert_eq!(ok.call(&mut store, ()).unwrap(), 42);
    assert_eq!(i.get_typed_func::<(), i32>(&mut store, "size").unwrap().call(&mut store, ()).unwrap(), 1);
}

#[test]
fn instantiation_beyond_the_limits_fails() {
    let engine = Engine::default();
    let module = Module::new(&engine, SUBJECT).unwrap();
    let new_store = |limits: StoreLimits| {
        let mut store = Store::new(&engine, Host { limits });
        store.limiter(|h| &mut h.limits);
        store
    };
    // Initial memory above the limit.
    let mut store = new_store(StoreLimitsBuilder::new().memory_size(PAGE as usize - 1).build());
    let e = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert!(e.to_string().contains("memory minimum size of 1 pages exceeds memory limits"), "{e:#}");
    let ty = |minimum| MemoryType { minimum, maximum: None, memory64: false, shared: false };
    assert!(Memory::new(&mut store, ty(1)).is_err());
    assert!(Memory::new(&mut store, ty(0)).is_ok());
    // A table larger than the limit.
    let mut store = new_store(StoreLimitsBuilder::new().table_elements(3).build());
    let e = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert!(e.to_string().contains("table minimum size of 4 elements exceeds table limits"), "{e:#}");
    // Too many instances, memories or tables.
    let mut store = new_store(StoreLimitsBuilder::new().instances(2).build());
    Instance::new(&mut store, &module, &[]).unwrap();
    Instance::new(&mut store, &module, &[]).unwrap();
    let e = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert!(e.to_string().contains("instance count too high at 3"), "{e:#}");
    let mut store = new_store(StoreLimitsBuilder::new().memories(1).build());
    Instance::new(&mut store, &module, &[]).unwrap();
    let e = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert!(e.to_string().contains("memory count too high at 2"), "{e:#}");
    let mut store = new_store(StoreLimitsBuilder::new().tables(1).build());
    let ty = TableType { element: RefType::FuncRef, minimum: 1, maximum: None };
    Table::new(&mut store, ty, Val::FuncRef(None)).unwrap();
    let e = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert!(e.to_string().contains("table count too high at 2"), "{e:#}");
}

// ---- tables ----

#[test]
fn indirect_calls_through_null_wrong_type_and_missing_entries_trap() {
    let mut w = World::new(&Config::new());
    let call = w.f::<i32, i32>("call_v2i");
    assert_eq!(call.call(&mut w.store, 1).unwrap(), 7);
    w.expect_trap("call_v2i", &[Val::I32(0)], TrapCode::IndirectCallToNull);
    w.expect_trap("call_v2i", &[Val::I32(3)], TrapCode::IndirectCallToNull);
    w.expect_trap("call_v2i", &[Val::I32(2)], TrapCode::BadSignature);
    w.expect_trap("call_v2i", &[Val::I32(4)], TrapCode::TableOutOfBounds);
    w.expect_trap("call_v2i", &[Val::I32(-1)], TrapCode::TableOutOfBounds);
    w.assert_untouched();
}

#[test]
fn table_get_and_set_out_of_bounds_trap() {
    let mut w = World::new(&Config::new());
    let is_null = w.f::<i32, i32>("table_is_null");
    assert_eq!(is_null.call(&mut w.store, 0).unwrap(), 1);
    assert_eq!(is_null.call(&mut w.store, 3).unwrap(), 1);
    assert_eq!(is_null.call(&mut w.store, 1).unwrap(), 0);
    w.expect_trap("table_is_null", &[Val::I32(4)], TrapCode::TableOutOfBounds);
    w.expect_trap("table_set_null", &[Val::I32(4)], TrapCode::TableOutOfBounds);
    w.expect_trap("table_set_null", &[Val::I32(-1)], TrapCode::TableOutOfBounds);
    // Entry 1 is still `$seven`.
    assert_eq!(w.f::<i32, i32>("call_v2i").call(&mut w.store, 1).unwrap(), 7);
    w.assert_untouched();
}

#[test]
fn table_grows_to_the_store_limit_then_returns_minus_one() {
    let limits = StoreLimitsBuilder::new().table_elements(6).build();
    let mut w = World::with_limits(&Config::new(), limits);
    let grow = w.f::<i32, i32>("table_grow");
    assert_eq!(grow.call(&mut w.store, 2).unwrap(), 4);
    assert_eq!(grow.call(&mut w.store, 1).unwrap(), -1);
    assert_eq!(grow.call(&mut w.store, 0).unwrap(), 6);
    w.expect_trap("table_is_null", &[Val::I32(6)], TrapCode::TableOutOfBounds);
    assert_eq!(w.f::<i32, i32>("table_is_null").call(&mut w.store, 5).unwrap(), 1);
    w.assert_untouched();
}

// ---- stack ----

/// Runs `f` on a thread with a stack far larger than any Wasm stack limit used here.
fn on_large_stack(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        std::thread::Builder::new().stack_size(64 << 20).spawn_scoped(s, f).unwrap().join().unwrap();
    });
}

#[test]
fn endless_recursion_traps_with_stack_overflow_at_every_stack_size() {
    on_large_stack(|| {
        for max in [64 << 10, 256 << 10, 1 << 20, 8 << 20] {
            let mut config = Config::new();
            config.max_wasm_stack(max);
            let mut w = World::new(&config);
            for _ in 0..20 {
                w.expect_trap("recurse", &[Val::I32(0)], TrapCode::StackOverflow);
            }
            // The limit is the configured one: 50,000 frames fit in 8 MiB, not in 64 KiB.
            let depth = w.f::<i32, i32>("depth");
            match depth.call(&mut w.store, 50_000) {
                Ok(n) => {
                    assert_eq!(n, 50_000);
                    assert!(max >= 1 << 20, "50,000 frames fit in {max} bytes?");
                }
                Err(e) => {
                    assert_eq!(trap_code(&e), TrapCode::StackOverflow);
                    assert!(max < 8 << 20, "50,000 frames do not fit in {max} bytes: {e:#}");
                }
            }
            w.assert_untouched();
        }
    });
}

// ---- interruption ----

fn epoch_config() -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true);
    c
}

/// Increments `engine`'s epoch `ticks` times, `every` apart, on another thread.
fn tick(engine: &Engine, ticks: u32, every: Duration) -> std::thread::JoinHandle<()> {
    let engine = engine.clone();
    std::thread::spawn(move || {
        for _ in 0..ticks {
            std::thread::sleep(every);
            engine.increment_epoch();
        }
    })
}

#[test]
fn an_endless_loop_is_interrupted_at_the_epoch_deadline() {
    let mut w = World::new(&epoch_config());
    // The other store's deadline is far away: it keeps running while the subject stops.
    for name in ["spin", "spin_calls"] {
        w.store.set_epoch_deadline(1);
        let t = tick(&w.engine, 1, Duration::from_millis(20));
        w.expect_trap(name, &[], TrapCode::Interrupt);
        t.join().unwrap();
        let e = w.f::<(), ()>(name).call(&mut w.store, ()).unwrap_err();
        assert_eq!(trap_code(&e), TrapCode::Interrupt, "still past the deadline");
        assert!(e.to_string().contains("interrupt"), "{e}");
        w.store.set_epoch_deadline(1 << 40);
    }
    w.assert_untouched();
}

#[test]
fn an_endless_recursion_under_a_deadline_stops_either_way() {
    on_large_stack(|| {
        let mut w = World::new(&epoch_config());
        w.store.set_epoch_deadline(1);
        w.engine.increment_epoch();
        w.expect_trap("recurse", &[Val::I32(0)], TrapCode::Interrupt);
        w.store.set_epoch_deadline(1 << 40);
        w.expect_trap("recurse", &[Val::I32(0)], TrapCode::StackOverflow);
        w.assert_untouched();
    });
}

#[test]
fn the_deadline_starts_at_zero_and_is_relative_to_the_current_epoch() {
    let engine = Engine::new(&epoch_config()).unwrap();
    let module = Module::new(&engine, SUBJECT).unwrap();
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let ok = i.get_typed_func::<(), i32>(&mut store, "ok").unwrap();
    let count = i.get_typed_func::<i32, i32>(&mut store, "count").unwrap();
    assert_eq!(trap_code(&ok.call(&mut store, ()).unwrap_err()), TrapCode::Interrupt);
    for _ in 0..5 {
        engine.increment_epoch();
    }
    store.set_epoch_deadline(2);
    assert_eq!(count.call(&mut store, 100_000).unwrap(), 100_000);
    engine.increment_epoch();
    assert_eq!(ok.call(&mut store, ()).unwrap(), 42);
    engine.increment_epoch();
    assert_eq!(trap_code(&ok.call(&mut store, ()).unwrap_err()), TrapCode::Interrupt);
}

#[test]
fn without_epoch_interruption_the_epoch_changes_nothing() {
    let engine = Engine::default();
    let module = Module::new(&engine, SUBJECT).unwrap();
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    engine.increment_epoch();
    let count = i.get_typed_func::<i32, i32>(&mut store, "count").unwrap();
    assert_eq!(count.call(&mut store, 1000).unwrap(), 1000);
    assert!(store.get_fuel().is_err(), "fuel is not configured");
    assert!(store.set_fuel(1).is_err());
}

#[test]
fn epoch_interruption_is_part_of_the_cache_fingerprint() {
    let plain = Engine::default().cache_fingerprint();
    let epochs = Engine::new(&epoch_config()).unwrap().cache_fingerprint();
    let fuel = Engine::new(Config::new().consume_fuel(true)).unwrap().cache_fingerprint();
    assert_ne!(plain, epochs);
    assert_ne!(plain, fuel);
    assert_ne!(epochs, fuel);
}

// ---- fuel ----

fn fuel_config() -> Config {
    let mut c = Config::new();
    c.consume_fuel(true);
    c
}

#[test]
fn fuel_is_one_unit_per_call_and_loop_iteration() {
    let mut w = World::new(&fuel_config());
    let count = w.f::<i32, i32>("count");
    w.store.set_fuel(100).unwrap();
    assert_eq!(count.call(&mut w.store, 10).unwrap(), 10);
    assert_eq!(w.store.get_fuel().unwrap(), 100 - 11);
    let depth = w.f::<i32, i32>("depth");
    w.store.set_fuel(100).unwrap();
    assert_eq!(depth.call(&mut w.store, 9).unwrap(), 9);
    assert_eq!(w.store.get_fuel().unwrap(), 100 - 10);
    // Exactly enough, then one short.
    w.store.set_fuel(11).unwrap();
    assert_eq!(count.call(&mut w.store, 10).unwrap(), 10);
    assert_eq!(w.store.get_fuel().unwrap(), 0);
    w.store.set_fuel(10).unwrap();
    w.expect_trap("count", &[Val::I32(10)], TrapCode::OutOfFuel);
    assert_eq!(w.store.get_fuel().unwrap(), 0);
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let mut w = World::new(&fuel_config());
    for name in ["spin", "spin_calls"] {
        w.store.set_fuel(100_000).unwrap();
        w.expect_trap(name, &[], TrapCode::OutOfFuel);
        assert_eq!(w.store.get_fuel().unwrap(), 0);
        w.expect_trap("ok", &[], TrapCode::OutOfFuel);
    }
    w.store.set_fuel(1 << 40).unwrap();
    // The other store has its own fuel.
    assert!(w.other_store.get_fuel().unwrap() > 1 << 39);
    w.assert_untouched();
}

/// Fuel and epochs together: whichever runs out first stops the guest.
#[test]
fn fuel_and_epochs_together() {
    let mut config = fuel_config();
    config.epoch_interruption(true);
    let mut w = World::new(&config);
    w.store.set_fuel(1000).unwrap();
    w.expect_trap("spin", &[], TrapCode::OutOfFuel);
    w.store.set_fuel(u64::MAX).unwrap();
    w.store.set_epoch_deadline(1);
    let t = tick(&w.engine, 1, Duration::from_millis(20));
    w.expect_trap("spin", &[], TrapCode::Interrupt);
    t.join().unwrap();
    w.store.set_epoch_deadline(1 << 40);
    w.assert_untouched();
}
