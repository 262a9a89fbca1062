//! The runtime against hand-assembled machine code that follows the ABI
//! (`quickbeam_environ::abi`): entry trampoline, traps (ud2, guard pages, stack
//! overflow), backtraces, host functions, nested activations, builtins, instantiation.

use quickbeam_environ::*;
use quickbeam_runtime::builtins::BUILTINS;
use quickbeam_runtime::*;
use std::any::Any;
use std::sync::Arc;

struct TestStore {
    vm: VMStore,
    calls: Vec<u64>,
}

impl HostStore for TestStore {
    fn vm_store(&mut self) -> &mut VMStore {
        &mut self.vm
    }
}

fn store() -> TestStore {
    TestStore { vm: VMStore::new(), calls: Vec::new() }
}

/// One function's machine code, its trap sites and srclocs.
struct Code<'a> {
    bytes: &'a [u8],
    traps: Vec<(u32, TrapCode)>,
    srclocs: Vec<(u32, u32)>,
}

fn code(bytes: &[u8]) -> Code<'_> {
    Code { bytes, traps: vec![], srclocs: vec![] }
}

/// A compiled module from `wat` whose defined functions are `funcs`, in order.
fn module(wat: &str, funcs: &[Code<'_>]) -> Arc<CompiledModule> {
    static SIGS: std::sync::OnceLock<SignatureRegistry> = std::sync::OnceLock::new();
    let sigs = SIGS.get_or_init(SignatureRegistry::new);
    let wasm = wat::parse_str(wat).unwrap();
    let (env, inputs) = ModuleEnv::parse(&wasm, supported_features()).unwrap();
    assert_eq!(inputs.len(), funcs.len());
    let mut image = Vec::new();
    let mut info = CodeInfo::default();
    let mut sites = quickbeam_runtime::SiteTable::default();
    let mut func_offsets = Vec::new();
    for (f, input) in funcs.iter().zip(&inputs) {
        while image.len() % 16 != 0 {
            image.push(0xcc);
        }
        let start = image.len() as u32;
        func_offsets.push(start);
        image.extend_from_slice(f.bytes);
        info.functions.push(FunctionInfo {
            func_index: input.index,
            start,
            len: f.bytes.len() as u32,
            body_offset: input.body.range().start as u32,
            body_len: input.body.as_bytes().len() as u32,
        });
        sites.trap_sites.push(f.traps.clone().into());
        sites.srclocs.push(f.srclocs.clone().into());
    }
    info.sites = Arc::new(sites);
    info.names = env.names.clone();
    info.wasm = std::sync::Arc::new(quickbeam_runtime::ModuleBytes::copy_from(&wasm).unwrap());
    let sig_ids = env.types.iter().map(|t| sigs.register(t)).collect();
    drop(inputs);
    Arc::new(CompiledModule { code: CodeMemory::new(&image, info).unwrap(), env: Arc::new(env), func_offsets, sig_ids })
}

fn export_func(s: &mut TestStore, inst: InstanceId, name: &str) -> FuncId {
    let e = s.vm.instance(inst).module().env.export(name).unwrap().clone();
    assert_eq!(e.kind, ExportKind::Func);
    s.vm.instance_func(inst, e.index)
}

const STACK: usize = 512 << 10;

// push rbp; mov rbp, rsp; mov eax, [rbp+16]; add eax, eax; mov [rbp+16], eax; pop rbp; ret
const DOUBLE: &[u8] = &[0x55, 0x48, 0x89, 0xe5, 0x8b, 0x45, 0x10, 0x01, 0xc0, 0x89, 0x45, 0x10, 0x5d, 0xc3];

// (p0, p1) -> p0 - p1 (i64): p0 at [rbp+24], p1 at [rbp+16], result at [rbp+24]
const SUB: &[u8] = &[
    0x55, 0x48, 0x89, 0xe5, // push rbp; mov rbp, rsp
    0x48, 0x8b, 0x45, 0x18, // mov rax, [rbp+24]
    0x48, 0x2b, 0x45, 0x10, // sub rax, [rbp+16]
    0x48, 0x89, 0x45, 0x18, // mov [rbp+24], rax
    0x5d, 0xc3, // pop rbp; ret
];

// push rbp; mov rbp, rsp; ud2
const UNREACHABLE: &[u8] = &[0x55, 0x48, 0x89, 0xe5, 0x0f, 0x0b];

#[test]
fn trampoline_passes_arguments_and_results() {
    let m = module(
        r#"(module (func (export "double") (param i32) (result i32) unreachable)
                   (func (export "sub") (param i64 i64) (result i64) unreachable))"#,
        &[code(DOUBLE), code(SUB)],
    );
    let mut s = store();
    let inst = s.vm.instantiate(&m, &[]).unwrap();
    let double = export_func(&mut s, inst, "double");
    let mut area = [21u64];
    call(&mut s, double, &mut area, STACK).unwrap();
    assert_eq!(area[0] as u32, 42);
    let sub = export_func(&mut s, inst, "sub");
    let mut area = [0u64; 2];
    area[1] = 100; // param 0
    area[0] = 58; // param 1
    call(&mut s, sub, &mut area, STACK).unwrap();
    assert_eq!(area[1], 42); // result 0
}

#[test]
fn ud2_at_a_trap_site_is_a_trap_with_a_backtrace() {
    let m = module(
        r#"(module (func $boom (export "boom") unreachable))"#,
        &[Code { bytes: UNREACHABLE, traps: vec![(4, TrapCode::UnreachableCodeReached)], srclocs: vec![(4, 1)] }],
    );
    let mut s = store();
    let inst = s.vm.instantiate(&m, &[]).unwrap();
    let boom = export_func(&mut s, inst, "boom");
    for _ in 0..3 {
        match call(&mut s, boom, &mut [], STACK) {
            Err(CallError::Trap { code, backtrace }) => {
                assert_eq!(code, TrapCode::UnreachableCodeReached);
                assert_eq!(backtrace.len(), 1, "{backtrace:?}");
                assert_eq!(backtrace[0].func_index, 0);
                assert_eq!(backtrace[0].func_name.as_deref(), Some("boom"));
                assert!(backtrace[0].module_offset.is_some());
            }
            other => panic!("expected a trap, got {other:?}"),
        }
    }
    // The process is alive and Wasm still runs.
    let m2 = module(r#"(module (func (export "double") (param i32) (result i32) unreachable))"#, &[code(DOUBLE)]);
    let inst2 = s.vm.instantiate(&m2, &[]).unwrap();
    let double = export_func(&mut s, inst2, "double");
    let mut area = [5u64];
    call(&mut s, double, &mut area, STACK).unwrap();
    assert_eq!(area[0], 10);
}

// push rbp; mov rbp, rsp; mov rax, [r14+8]; mov eax, [rax + 0x20000]; mov [rbp+16], eax; pop rbp; ret
const LOAD_128K: &[u8] = &[
    0x55, 0x48, 0x89, 0xe5, // 0
    0x49, 0x8b, 0x46, 0x08, // 4: mov rax, [r14+8]
    0x8b, 0x80, 0x00, 0x00, 0x02, 0x00, // 8: mov eax, [rax+0x20000]
    0x89, 0x45, 0x10, 0x5d, 0xc3,
];

#[test]
fn guard_page_fault_is_memory_out_of_bounds() {
    let m = module(
        r#"(module (memory 2 3) (func (export "load") (result i32) unreachable))"#,
        &[Code { bytes: LOAD_128K, traps: vec![(8, TrapCode::MemoryOutOfBounds)], srclocs: vec![] }],
    );
    let mut s = store();
    let inst = s.vm.instantiate(&m, &[]).unwrap();
    let load = export_func(&mut s, inst, "load");
    let mut area = [0u64];
    match call(&mut s, load, &mut area, STACK) {
        Err(CallError::Trap { code, .. }) => assert_eq!(code, TrapCode::MemoryOutOfBounds),
        other => panic!("expected a trap, got {other:?}"),
    }
    // Grow to 3 pages: offset 0x20000 is now in bounds.
    let mem = s.vm.instance_memory(inst, 0);
    assert_eq!(s.vm.memory_mut(mem).grow(1).unwrap(), Some(2));
    s.vm.memory_mut(mem).as_mut_slice()[0x20000] = 0x2a;
    call(&mut s, load, &mut area, STACK).unwrap();
    assert_eq!(area[0] as u32, 0x2a);
}

// Infinite recursion with the prologue's stack check (see abi.rs "Stack limit").
const RECURSE: &[u8] = &[
    0x55, // 0: push rbp
    0x48, 0x89, 0xe5, // 1: mov rbp, rsp
    0x49, 0x3b, 0x26, // 4: cmp rsp, [r14]
    0x72, 0x07, // 7: jb 16
    0xe8, 0xf2, 0xff, 0xff, 0xff, // 9: call 0
    0x5d, 0xc3, // 14: pop rbp; ret
    0x0f, 0x0b, // 16: ud2
];

#[test]
fn stack_overflow_is_a_trap_and_the_backtrace_is_bounded() {
    let m = module(
        r#"(module (func (export "recurse") unreachable))"#,
        &[Code { bytes: RECURSE, traps: vec![(16, TrapCode::StackOverflow)], srclocs: vec![] }],
    );
    let mut s = store();
    let inst = s.vm.instantiate(&m, &[]).unwrap();
    let f = export_func(&mut s, inst, "recurse");
    for _ in 0..2 {
        match call(&mut s, f, &mut [], 256 << 10) {
            Err(CallError::Trap { code, backtrace }) => {
                assert_eq!(code, TrapCode::StackOverflow);
                assert!(backtrace.len() > 100 && backtrace.len() <= 256, "{}", backtrace.len());
                assert!(backtrace.iter().all(|f| f.func_index == 0));
            }
            other => panic!("expected a trap, got {other:?}"),
        }
    }
}

// Calls import 0 (funcref at vmctx+64, `VMOffsets::funcref(0)`) with [rbp+16] and returns its result + 1.
const CALL_IMPORT_PLUS_1: &[u8] = &[
    0x55, 0x48, 0x89, 0xe5, // push rbp; mov rbp, rsp
    0x41, 0x56, // push r14          ([rbp-8] = vmctx)
    0x8b, 0x45, 0x10, // mov eax, [rbp+16]
    0x50, // push rax          (the callee's area: 1 slot)
    0x49, 0x8b, 0x46, 0x40, // mov rax, [r14+64]  (funcref.code)
    0x4d, 0x8b, 0x76, 0x48, // mov r14, [r14+72]  (funcref.vmctx)
    0xff, 0xd0, // call rax
    0x58, // pop rax           (result 0)
    0x4c, 0x8b, 0x75, 0xf8, // mov r14, [rbp-8]
    0x83, 0xc0, 0x01, // add eax, 1
    0x89, 0x45, 0x10, // mov [rbp+16], eax
    0x48, 0x89, 0xec, 0x5d, 0xc3, // mov rsp, rbp; pop rbp; ret
];
const _: () = assert!(VMCTX_HEADER_SIZE == 64 && FUNCREF_CODE == 0 && FUNCREF_VMCTX == 8);

fn i32_to_i32() -> FuncType {
    FuncType::new([ValType::I32], [ValType::I32])
}

const CALLER_WAT: &str = r#"(module
    (import "env" "h" (func (param i32) (result i32)))
    (func (export "call_h") (param i32) (result i32) unreachable)
    (func (export "double") (param i32) (result i32) unreachable))"#;

fn host_instance(s: &mut TestStore, callback: quickbeam_runtime::host::HostCallback<TestStore>) -> InstanceId {
    let m = module(CALLER_WAT, &[code(CALL_IMPORT_PLUS_1), code(DOUBLE)]);
    let sig = m.sig_ids[0];
    let h = s.vm.new_host_func::<TestStore>(i32_to_i32(), sig, callback);
    s.vm.instantiate(&m, &[ImportRef::Func(h)]).unwrap()
}

#[test]
fn wasm_calls_a_host_function() {
    let mut s = store();
    let inst = host_instance(
        &mut s,
        Arc::new(|s: &mut TestStore, caller, area: &mut [u64]| {
            assert!(caller.is_some(), "the caller instance is known");
            s.calls.push(area[0]);
            area[0] = (area[0] as u32 * 10) as u64;
            Ok(())
        }),
    );
    let f = export_func(&mut s, inst, "call_h");
    let mut area = [4u64];
    call(&mut s, f, &mut area, STACK).unwrap();
    assert_eq!(area[0] as u32, 41);
    assert_eq!(s.calls, vec![4]);
}

#[test]
fn host_errors_and_panics_come_back_unchanged() {
    let mut s = store();
    let inst = host_instance(
        &mut s,
        Arc::new(|_s: &mut TestStore, _caller, area: &mut [u64]| {
            if area[0] == 1 {
                return Err(Box::new(String::from("exit 1")) as Box<dyn Any + Send>);
            }
            panic!("host panic");
        }),
    );
    let f = export_func(&mut s, inst, "call_h");
    match call(&mut s, f, &mut [1], STACK) {
        Err(CallError::Host(e)) => assert_eq!(e.downcast_ref::<String>().unwrap(), "exit 1"),
        other => panic!("expected a host error, got {other:?}"),
    }
    match call(&mut s, f, &mut [2], STACK) {
        Err(CallError::Panic(p)) => assert_eq!(*p.downcast_ref::<&str>().unwrap(), "host panic"),
        other => panic!("expected a panic, got {other:?}"),
    }
    // Direct host calls behave the same.
    let h = s.vm.instance_func(inst, 0);
    assert!(matches!(call(&mut s, h, &mut [1], STACK), Err(CallError::Host(_))));
}

#[test]
fn nested_activations() {
    let mut s = store();
    // The host function calls back into the instance's "double", and traps on request
    // inside a nested Wasm call.
    let inst = host_instance(
        &mut s,
        Arc::new(|s: &mut TestStore, caller, area: &mut [u64]| {
            let inst = caller.unwrap();
            let double = export_func(s, inst, "double");
            let mut inner = [area[0]];
            call(s, double, &mut inner, STACK).map_err(|e| Box::new(format!("{e:?}")) as Box<dyn Any + Send>)?;
            if area[0] == 7 {
                // A trap in a nested activation returns to this host function only.
                let m = module(r#"(module (func (export "boom") unreachable))"#, &[Code {
                    bytes: UNREACHABLE,
                    traps: vec![(4, TrapCode::UnreachableCodeReached)],
                    srclocs: vec![],
                }]);
                let i = s.vm.instantiate(&m, &[]).unwrap();
                let boom = export_func(s, i, "boom");
                assert!(matches!(call(s, boom, &mut [], STACK), Err(CallError::Trap { .. })));
            }
            area[0] = inner[0];
            Ok(())
        }),
    );
    let f = export_func(&mut s, inst, "call_h");
    let mut area = [5u64];
    call(&mut s, f, &mut area, STACK).unwrap();
    assert_eq!(area[0] as u32, 11);
    let mut area = [7u64];
    call(&mut s, f, &mut area, STACK).unwrap();
    assert_eq!(area[0] as u32, 15);
}

#[test]
fn instantiation_runs_segments_and_initializers() {
    let m = module(
        r#"(module
            (import "env" "g" (global i32))
            (import "env" "t" (table 2 funcref))
            (global $x i32 (global.get 0))
            (global $f funcref (ref.func $double))
            (memory (export "mem") 1)
            (table $own 3 funcref)
            (elem (table 1) (i32.const 1) func $double $double)
            (elem (table 0) (global.get 0) func $double)
            (elem $passive func $double)
            (data (i32.const 8) "hello")
            (data $p "passive")
            (func $double (export "double") (param i32) (result i32) unreachable))"#,
        &[code(DOUBLE)],
    );
    let mut s = store();
    let g = s.vm.new_global(GlobalType { content: ValType::I32, mutable: false }, 1);
    let t = s.vm.new_table(TableType { element: RefType::FuncRef, minimum: 2, maximum: None }, 0).unwrap();
    let inst = s.vm.instantiate(&m, &[ImportRef::Global(g), ImportRef::Table(t)]).unwrap();
    assert_eq!(s.vm.global_get(s.vm.instance_global(inst, 1)), 1);
    let double = export_func(&mut s, inst, "double");
    // Funcrefs in tables map back to the function.
    let raw = s.vm.table(t).get(1).unwrap();
    assert_ne!(raw, 0);
    assert_eq!(s.vm.func_from_raw(raw), Some(double));
    let own = s.vm.instance_table(inst, 1);
    assert_eq!(s.vm.table(own).elements()[0], 0);
    assert_eq!(s.vm.func_from_raw(s.vm.table(own).elements()[1]), Some(double));
    let gf = s.vm.global_get(s.vm.instance_global(inst, 2));
    assert_eq!(s.vm.func_from_raw(gf), Some(double));
    let mem = s.vm.instance_memory(inst, 0);
    assert_eq!(&s.vm.memory(mem).as_slice()[8..13], b"hello");

    // Builtins on this instance.
    let vmctx = s.vm.instance(inst).vmctx_ptr();
    // SAFETY: `vmctx` is a live instance's, and nothing else uses the store meanwhile.
    unsafe {
        assert_eq!((BUILTINS.memory_init)(vmctx, 0, 1, 100, 0, 7), 0);
        assert_eq!(&s.vm.memory(mem).as_slice()[100..107], b"passive");
        assert_eq!((BUILTINS.memory_init)(vmctx, 0, 1, 65530, 0, 7), TrapCode::MemoryOutOfBounds as u32);
        assert_eq!((BUILTINS.memory_init)(vmctx, 0, 0, 0, 0, 1), TrapCode::MemoryOutOfBounds as u32, "active segments are dropped");
        assert_eq!((BUILTINS.data_drop)(vmctx, 1), 0);
        assert_eq!((BUILTINS.memory_init)(vmctx, 0, 1, 100, 0, 1), TrapCode::MemoryOutOfBounds as u32);
        assert_eq!((BUILTINS.memory_init)(vmctx, 0, 1, 100, 0, 0), 0);
        assert_eq!((BUILTINS.memory_fill)(vmctx, 0, 10, 0x41, 3), 0);
        assert_eq!(&s.vm.memory(mem).as_slice()[8..14], b"heAAA\0");
        assert_eq!((BUILTINS.memory_fill)(vmctx, 0, 65536, 0, 0), 0);
        assert_eq!((BUILTINS.memory_fill)(vmctx, 0, 65537, 0, 0), TrapCode::MemoryOutOfBounds as u32);
        assert_eq!((BUILTINS.memory_copy)(vmctx, 0, 0, 9, 8, 5), 0);
        assert_eq!(&s.vm.memory(mem).as_slice()[8..14], b"hheAAA");
        assert_eq!((BUILTINS.memory_grow)(vmctx, 0, 2), 1);
        assert_eq!((BUILTINS.memory_grow)(vmctx, 0, 65536) as u32 as i32, -1);
        assert_eq!(s.vm.memory(mem).pages(), 3);

        assert_eq!((BUILTINS.table_init)(vmctx, 1, 2, 0, 0, 1), 0);
        assert_eq!(s.vm.func_from_raw(s.vm.table(own).elements()[0]), Some(double));
        assert_eq!((BUILTINS.table_init)(vmctx, 1, 2, 2, 0, 2), TrapCode::TableOutOfBounds as u32);
        assert_eq!((BUILTINS.elem_drop)(vmctx, 2), 0);
        assert_eq!((BUILTINS.table_init)(vmctx, 1, 2, 0, 0, 1), TrapCode::TableOutOfBounds as u32);
        assert_eq!((BUILTINS.table_grow)(vmctx, 1, 0, 2), 3);
        assert_eq!(s.vm.table(own).len(), 5);
        assert_eq!((BUILTINS.table_fill)(vmctx, 1, 3, 7, 2), 0);
        assert_eq!(&s.vm.table(own).elements()[3..], &[7, 7]);
        assert_eq!((BUILTINS.table_copy)(vmctx, 1, 1, 0, 3, 2), 0);
        assert_eq!(&s.vm.table(own).elements()[..2], &[7, 7]);
        assert_eq!((BUILTINS.table_copy)(vmctx, 0, 1, 1, 3, 2), TrapCode::TableOutOfBounds as u32);
        let r = (BUILTINS.ref_func)(vmctx, 0);
        assert_eq!(s.vm.func_from_raw(r as u64), Some(double));
    }
}

#[test]
fn failed_segments_keep_earlier_writes() {
    let m = module(
        r#"(module
            (import "env" "mem" (memory 1))
            (data (i32.const 0) "abc")
            (data (i32.const 65535) "xy"))"#,
        &[],
    );
    let mut s = store();
    let mem = s.vm.new_memory(MemoryType { minimum: 1, maximum: None, memory64: false, shared: false }).unwrap();
    match s.vm.instantiate(&m, &[ImportRef::Memory(mem)]) {
        Err(InstantiationError::Trap(TrapCode::MemoryOutOfBounds)) => {}
        other => panic!("expected a trap, got {:?}", other.map(|_| ())),
    }
    assert_eq!(&s.vm.memory(mem).as_slice()[..3], b"abc");
}

#[test]
fn link_errors() {
    let m = module(r#"(module (import "env" "h" (func (param i32) (result i32))) (import "env" "m" (memory 2 4)))"#, &[]);
    let mut s = store();
    let h = s.vm.new_host_func::<TestStore>(FuncType::new([], []), 1, Arc::new(|_: &mut TestStore, _, _: &mut [u64]| Ok(())));
    let small = s.vm.new_memory(MemoryType { minimum: 1, maximum: Some(4), memory64: false, shared: false }).unwrap();
    let unbounded = s.vm.new_memory(MemoryType { minimum: 2, maximum: None, memory64: false, shared: false }).unwrap();
    let ok = s.vm.new_memory(MemoryType { minimum: 3, maximum: Some(3), memory64: false, shared: false }).unwrap();
    let err = |r: Result<InstanceId, InstantiationError>| r.err().unwrap().to_string();
    assert!(err(s.vm.instantiate(&m, &[ImportRef::Func(h)])).contains("expected 2 imports"));
    assert!(err(s.vm.instantiate(&m, &[ImportRef::Func(h), ImportRef::Memory(ok)])).contains("function types incompatible"));
    let h2 = s.vm.new_host_func::<TestStore>(i32_to_i32(), 2, Arc::new(|_: &mut TestStore, _, _: &mut [u64]| Ok(())));
    assert!(err(s.vm.instantiate(&m, &[ImportRef::Func(h2), ImportRef::Memory(small)])).contains("memory types incompatible"));
    assert!(err(s.vm.instantiate(&m, &[ImportRef::Func(h2), ImportRef::Memory(unbounded)])).contains("memory types incompatible"));
    assert!(err(s.vm.instantiate(&m, &[ImportRef::Func(h2), ImportRef::Func(h2)])).contains("expected memory, found function"));
    assert!(s.vm.instantiate(&m, &[ImportRef::Func(h2), ImportRef::Memory(ok)]).is_ok());
}

#[test]
fn stores_can_move_between_threads() {
    let m = module(r#"(module (func (export "double") (param i32) (result i32) unreachable))"#, &[code(DOUBLE)]);
    let mut s = store();
    let inst = s.vm.instantiate(&m, &[]).unwrap();
    let f = export_func(&mut s, inst, "double");
    let mut area = [1u64];
    call(&mut s, f, &mut area, STACK).unwrap();
    let mut s = std::thread::spawn(move || {
        let mut area = [2u64];
        call(&mut s, f, &mut area, STACK).unwrap();
        assert_eq!(area[0], 4);
        s
    })
    .join()
    .unwrap();
    call(&mut s, f, &mut area, STACK).unwrap();
    assert_eq!(area[0], 4);
}

/// Runs this test binary's test `name` in a child process with `QB_CHILD` set, and
/// returns the signal that killed it.
fn child_signal(name: &str) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("QB_CHILD", "1")
        .output()
        .unwrap();
    out.status.signal()
}

fn in_child() -> bool {
    std::env::var_os("QB_CHILD").is_some()
}

#[test]
fn faults_in_host_code_still_crash() {
    if in_child() {
        // Install the handlers by running Wasm once, then fault in plain Rust code.
        let m = module(r#"(module (func (export "double") (param i32) (result i32) unreachable))"#, &[code(DOUBLE)]);
        let mut s = store();
        let inst = s.vm.instantiate(&m, &[]).unwrap();
        let f = export_func(&mut s, inst, "double");
        call(&mut s, f, &mut [1], STACK).unwrap();
        // SAFETY: deliberately not: this child process must die of SIGSEGV.
        unsafe { std::ptr::null::<u8>().read_volatile() };
        return;
    }
    assert_eq!(child_signal("faults_in_host_code_still_crash"), Some(libc::SIGSEGV));
}

#[test]
fn faults_in_wasm_code_without_a_trap_site_crash() {
    if in_child() {
        // The load faults on the guard page, but no trap site covers it.
        let m = module(r#"(module (memory 2 3) (func (export "load") (result i32) unreachable))"#, &[code(LOAD_128K)]);
        let mut s = store();
        let inst = s.vm.instantiate(&m, &[]).unwrap();
        let f = export_func(&mut s, inst, "load");
        let _ = call(&mut s, f, &mut [0], STACK);
        return;
    }
    assert_eq!(child_signal("faults_in_wasm_code_without_a_trap_site_crash"), Some(libc::SIGSEGV));
}

#[test]
fn traps_are_recognized_while_other_threads_register_code() {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                drop(CodeMemory::new(&[0xcc; 64], CodeInfo::default()).unwrap());
            }
        })
    };
    let m = module(
        r#"(module (func (export "boom") unreachable))"#,
        &[Code { bytes: UNREACHABLE, traps: vec![(4, TrapCode::UnreachableCodeReached)], srclocs: vec![] }],
    );
    let mut s = store();
    let inst = s.vm.instantiate(&m, &[]).unwrap();
    let boom = export_func(&mut s, inst, "boom");
    for _ in 0..20_000 {
        assert!(matches!(call(&mut s, boom, &mut [], STACK), Err(CallError::Trap { .. })));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
}
