//! A minimal executor for the backend's tests, without the runtime: an executable code
//! buffer, an entry trampoline that follows `quickbeam_environ::abi`, and a VMContext
//! with memory, globals and tables initialised from constant expressions. Traps are not
//! handled (they need the runtime's signal handlers): tests only run non-trapping code.
#![allow(dead_code)]

use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi};
use quickbeam_codegen::*;
use quickbeam_environ::*;
use std::cell::Cell;

thread_local! {
    /// The memory the builtins act on: (base, length, capacity).
    static MEM: Cell<(*mut u8, usize, usize)> = const { Cell::new((std::ptr::null_mut(), 0, 0)) };
    static MEMDEF: Cell<*mut u64> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn b_grow(_vm: *mut u8, _mem: u64, delta: u64) -> u64 {
    let (base, len, cap) = MEM.with(|m| m.get());
    let new = len as u64 + (delta as u32 as u64) * 65536;
    if new > cap as u64 {
        return u32::MAX as u64;
    }
    MEM.with(|m| m.set((base, new as usize, cap)));
    // SAFETY: MEMDEF points at the live memory definition of the running test module.
    unsafe { *MEMDEF.with(|d| d.get()).add(1) = new };
    (len / 65536) as u64
}
extern "C" fn b_fill(_vm: *mut u8, _mem: u64, dst: u64, val: u64, n: u64) -> u64 {
    let (base, len, _) = MEM.with(|m| m.get());
    let (d, n) = (dst as u32 as usize, n as u32 as usize);
    if d + n > len {
        return 1;
    }
    // SAFETY: bounds checked against the live memory above.
    unsafe { std::ptr::write_bytes(base.add(d), val as u8, n) };
    0
}
extern "C" fn b_copy(_vm: *mut u8, _a: u64, _b: u64, dst: u64, src: u64, n: u64) -> u64 {
    let (base, len, _) = MEM.with(|m| m.get());
    let (d, s, n) = (dst as u32 as usize, src as u32 as usize, n as u32 as usize);
    if d + n > len || s + n > len {
        return 1;
    }
    // SAFETY: bounds checked against the live memory above.
    unsafe { std::ptr::copy(base.add(s), base.add(d), n) };
    0
}
extern "C" fn b_other() -> u64 {
    0
}

fn builtins() -> &'static [usize] {
    static B: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    B.get_or_init(|| {
        let mut v = vec![b_other as *const () as usize; Builtin::COUNT];
        v[Builtin::MemoryGrow as usize] = b_grow as *const () as usize;
        v[Builtin::MemoryFill as usize] = b_fill as *const () as usize;
        v[Builtin::MemoryCopy as usize] = b_copy as *const () as usize;
        v
    })
}

pub struct Jit {
    buf: dynasmrt::ExecutableBuffer,
    pub env: ModuleEnv,
    offsets: Vec<u32>,
    vmctx: Vec<u64>,
    _mem: Vec<u8>,
    _memdef: Box<[u64; 2]>,
    _globals: Vec<[u64; 2]>,
    _tables: Vec<(Vec<u64>, Box<[u64; 2]>)>,
}

fn eval(ops: &[ConstOp], vmctx: &[u64], vmo: &VMOffsets, globals: &[[u64; 2]]) -> Option<u64> {
    let mut st: Vec<u64> = Vec::new();
    for op in ops {
        let v = match *op {
            ConstOp::I32Const(v) => v as u32 as u64,
            ConstOp::I64Const(v) => v as u64,
            ConstOp::F32Const(v) => v as u64,
            ConstOp::F64Const(v) => v,
            ConstOp::RefNull(_) => 0,
            ConstOp::RefFunc(f) => vmctx.as_ptr() as u64 + vmo.funcref(f) as u64,
            ConstOp::GlobalGet(g) => globals.get(g as usize)?[0],
            _ => return None,
        };
        st.push(v);
    }
    st.pop()
}

impl Jit {
    /// Compiles and instantiates `wat` (text), panicking on errors.
    pub fn from_wat(wat: &str) -> Jit {
        Jit::new(&wat::parse_str(wat).unwrap()).unwrap()
    }

    /// Calls export `name` with raw argument bits; returns raw result bits.
    pub fn call_export(&mut self, name: &str, args: &[u64]) -> Vec<u64> {
        let index = self.env.export(name).unwrap_or_else(|| panic!("no export {name}")).index;
        self.call(index, args)
    }

    pub fn new(bytes: &[u8]) -> Result<Jit, String> {
        let (env, inputs) = ModuleEnv::parse(bytes, supported_features()).map_err(|e| e.to_string())?;
        if !env.imports.is_empty() {
            return Err("imports".into());
        }
        let mut c = FunctionCompiler::new();
        let mut funcs = Vec::new();
        for i in inputs {
            funcs.push(c.compile(&env, i).map_err(|e| format!("compile: {e}"))?);
        }
        let mut offsets = Vec::new();
        let mut at = 256u32;
        for f in &funcs {
            offsets.push(at);
            at = (at + f.stencil.code.len() as u32 + 15) & !15;
        }
        let vmo = VMOffsets::new(&env);
        let sig_ids: Vec<u32> = (0..env.types.len()).map(|i| {
            // Structural signature ids: equal types share an id.
            env.types.iter().position(|t| *t == env.types[i]).unwrap() as u32 + 1
        }).collect();
        let mut buf = dynasmrt::mmap::MutableBuffer::new(at as usize + 64).map_err(|e| e.to_string())?;
        buf.set_len(at as usize);
        let mut a = dynasmrt::x64::Assembler::new().unwrap();
        dynasm!(a ; .arch x64
            ; push rbp ; mov rbp, rsp
            ; push rbx ; push r12 ; push r13 ; push r14 ; push r15 ; sub rsp, 24
            ; mov r12, rdx ; mov r13, rcx ; mov [rbp - 48], rdx ; mov [rbp - 56], rcx
            ; lea rax, [rcx * 8 + 15] ; and rax, -16 ; sub rsp, rax
            ; xor eax, eax
            ; ->copy_in: ; cmp rax, r13 ; jae ->go ; mov r8, [r12 + rax * 8] ; mov [rsp + rax * 8], r8 ; inc rax ; jmp ->copy_in
            ; ->go: ; mov r14, rdi ; call rsi
            ; mov r12, [rbp - 48] ; mov r13, [rbp - 56]
            ; xor eax, eax
            ; ->copy_out: ; cmp rax, r13 ; jae ->out ; mov r8, [rsp + rax * 8] ; mov [r12 + rax * 8], r8 ; inc rax ; jmp ->copy_out
            ; ->out: ; lea rsp, [rbp - 40] ; pop r15 ; pop r14 ; pop r13 ; pop r12 ; pop rbx ; pop rbp ; ret
        );
        let tramp = a.finalize().unwrap();
        buf[..tramp.len()].copy_from_slice(&tramp);
        for (i, f) in funcs.iter().enumerate() {
            let cx = FinalizeContext { offsets: &vmo, func_code_offsets: &offsets, num_imported_funcs: 0, this_offset: offsets[i] };
            let o = offsets[i] as usize;
            finalize(&f.stencil, &f.params, &f.consts, &cx, &mut buf[o..o + f.stencil.code.len()]).map_err(|e| e.to_string())?;
        }
        let buf = buf.make_exec().map_err(|e| e.to_string())?;
        let mut vmctx = vec![0u64; vmo.size() as usize / 8 + 1];
        let vptr = vmctx.as_mut_ptr() as u64;
        for i in 0..funcs.len() {
            let f = vmo.funcref(i as u32) as usize / 8;
            vmctx[f] = buf.ptr(dynasmrt::AssemblyOffset(offsets[i] as usize)) as u64;
            vmctx[f + 1] = vptr;
            vmctx[f + 2] = sig_ids[env.functions[i] as usize] as u64;
        }
        for (t, &sig) in sig_ids.iter().enumerate() {
            let at = vmo.type_id(t as u32) as usize;
            let word = &mut vmctx[at / 8];
            let shift = (at % 8) * 8;
            *word = (*word & !(0xffff_ffffu64 << shift)) | (u64::from(sig) << shift);
        }
        vmctx[2] = builtins().as_ptr() as u64;
        // Memory: capacity for 64 pages more than the minimum, plus slack for the tail.
        let pages = env.memories.first().map(|m| m.minimum as usize).unwrap_or(0);
        let max = env.memories.first().and_then(|m| m.maximum).unwrap_or(1024).min(1024) as usize;
        let cap = max.max(pages) * 65536;
        let mut mem = vec![0u8; cap + 16];
        let mut memdef = Box::new([mem.as_mut_ptr() as u64, (pages * 65536) as u64]);
        vmctx[1] = mem.as_mut_ptr() as u64;
        if !env.memories.is_empty() {
            vmctx[vmo.memory(0) as usize / 8] = memdef.as_mut_ptr() as u64;
        }
        MEM.with(|m| m.set((mem.as_mut_ptr(), pages * 65536, cap)));
        MEMDEF.with(|d| d.set(memdef.as_mut_ptr()));
        let mut globals: Vec<[u64; 2]> = vec![[0; 2]; env.globals.len()];
        for (g, def) in env.global_defs.iter().enumerate() {
            globals[g][0] = eval(&def.init.ops, &vmctx, &vmo, &globals).ok_or("global init")?;
        }
        for g in 0..env.globals.len() {
            vmctx[vmo.global(g as u32) as usize / 8] = globals[g].as_mut_ptr() as u64;
        }
        let mut tables = Vec::new();
        for t in &env.tables {
            let mut elems = vec![0u64; t.minimum as usize];
            let def = Box::new([elems.as_mut_ptr() as u64, t.minimum]);
            tables.push((std::mem::take(&mut elems), def));
        }
        for (i, (elems, def)) in tables.iter_mut().enumerate() {
            def[0] = elems.as_mut_ptr() as u64;
            vmctx[vmo.table(i as u32) as usize / 8] = def.as_mut_ptr() as u64;
        }
        for e in &env.elems {
            if let ElemMode::Active { table, offset } = &e.mode {
                let off = eval(&offset.ops, &vmctx, &vmo, &globals).ok_or("elem offset")? as usize;
                for (j, item) in e.items.iter().enumerate() {
                    let v = eval(&item.ops, &vmctx, &vmo, &globals).ok_or("elem item")?;
                    *tables[*table as usize].0.get_mut(off + j).ok_or("elem out of bounds")? = v;
                }
            }
        }
        for (i, d) in env.datas.iter().enumerate() {
            if let DataMode::Active { offset, .. } = &d.mode {
                let off = eval(&offset.ops, &vmctx, &vmo, &globals).ok_or("data offset")? as usize;
                let data = &bytes[env.data_range(i).ok_or("data range")?];
                if off + data.len() > pages * 65536 {
                    return Err("data out of bounds".into());
                }
                mem[off..off + data.len()].copy_from_slice(data);
            }
        }
        let mut jit = Jit { buf, env, offsets, vmctx, _mem: mem, _memdef: memdef, _globals: globals, _tables: tables };
        if let Some(start) = jit.env.start {
            jit.call(start, &[]);
        }
        Ok(jit)
    }

    pub fn call(&mut self, index: u32, args: &[u64]) -> Vec<u64> {
        let ty = self.env.func_type(index).clone();
        let a = ty.arg_area_slots();
        let mut area = vec![0u64; a];
        for (i, &v) in args.iter().enumerate() {
            area[a - 1 - i] = v;
        }
        let code = self.buf.ptr(dynasmrt::AssemblyOffset(self.offsets[index as usize] as usize));
        // SAFETY: offset 0 holds the trampoline assembled in `new` with this signature.
        let entry: extern "sysv64" fn(*mut u64, *const u8, *mut u64, usize) =
            unsafe { std::mem::transmute(self.buf.ptr(dynasmrt::AssemblyOffset(0))) };
        entry(self.vmctx.as_mut_ptr(), code, area.as_mut_ptr(), a);
        (0..ty.results().len()).map(|j| area[a - 1 - j]).collect()
    }
}

