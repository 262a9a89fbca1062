//! Entering Wasm and getting out again: the entry trampoline, the trap landing, the host
//! adapter, the per-thread chain of activations, and the signal handlers that turn
//! faults in Wasm code into traps (DESIGN.md §6, `quickbeam_environ::abi`).
//!
//! ```text
//!  host (Rust)            quickbeam_enter                        Wasm
//!  enter_wasm ──────────► push rbx rbp r12-r15                   
//!   (Activation on         *jmp = rsp ─────────────┐ rbp = rsp    
//!    the Rust stack,       push area, slots        │              
//!    pushed on the         copy area to [rsp..]    │              
//!    thread's chain)       r14 = vmctx; call code ─┼───────────► fault / ud2
//!                                                  │                 │ SIGSEGV/SIGILL/...
//!                          copy results back       │             trap_handler:
//!  ◄────────────── eax=0   pop; ret                │              pc → trap code,
//!                                                  │              walk rbp chain → pcs,
//!  ◄────── eax=trap code   quickbeam_trap_landing ◄┘ rsp = *jmp    rip = landing, rax = code
//!                          pop r15-r12 rbp rbx; ret
//! ```
//!
//! Invariants:
//! - an `Activation` is on the thread's chain exactly while its `quickbeam_enter` runs;
//!   the handler only redirects a fault whose pc is in registered Wasm code (or the host
//!   adapter's `ud2`) while an activation is active, and unwinds to the innermost one;
//! - the handler never allocates, locks, or unwinds: it writes into the activation's
//!   preallocated buffer and edits the interrupted context;
//! - Rust frames are never unwound across Wasm frames: host functions run under
//!   `catch_unwind` and report failures through the activation.

use crate::code::{self, FrameInfo};
use crate::mmap::Mmap;
use crate::store::{GrowKind, HostError};
use quickbeam_environ::TrapCode;
use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell, UnsafeCell};
use std::mem::MaybeUninit;
use std::ptr;

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("quickbeam-runtime supports x86-64 Linux only");

/// The most frames a trap's backtrace records.
pub const MAX_BACKTRACE: usize = 256;

/// Why a call into Wasm (or a host function) did not return normally.
#[derive(Debug)]
pub enum CallError {
    /// Wasm code trapped.
    Trap { code: TrapCode, backtrace: Vec<FrameInfo> },
    /// A host function returned this error.
    Host(Box<dyn Any + Send>),
    /// A host function panicked with this payload.
    Panic(Box<dyn Any + Send>),
}

/// How a host function failed, waiting in its activation until the trap lands.
pub(crate) enum HostFailure {
    Error(Box<dyn Any + Send>),
    Panic(Box<dyn Any + Send>),
}

/// One entry into Wasm, on the Rust stack of [`enter_wasm`].
#[repr(C)]
pub(crate) struct Activation {
    /// The trampoline's rsp after saving callee-saved registers: where traps land.
    jmp: usize,
    /// The stack limit of this entry (inherited from the outermost one).
    pub(crate) stack_limit: usize,
    prev: *mut Activation,
    /// The store the Wasm code belongs to (`*mut S` for `store_type` S).
    pub(crate) store: *mut (),
    pub(crate) store_type: TypeId,
    /// `S::growing` for that `S`.
    growing: GrowingFn,
    trap_code: u32,
    /// `pcs[..num_pcs]` is initialized (by the signal handler).
    num_pcs: usize,
    pcs: [MaybeUninit<usize>; MAX_BACKTRACE],
    pub(crate) failure: Option<HostFailure>,
}

thread_local! {
    /// The innermost activation of this thread (null when no Wasm runs).
    static CURRENT: Cell<*mut Activation> = const { Cell::new(ptr::null_mut()) };
    static ALT_STACK: RefCell<Option<AltStack>> = const { RefCell::new(None) };
    /// Whether `init_thread` already ran on this thread.
    static THREAD_READY: Cell<bool> = const { Cell::new(false) };
}

/// [`HostStore::growing`](crate::HostStore::growing) of a type-erased store.
pub type GrowingFn = unsafe fn(*mut (), GrowKind, usize, usize, Option<usize>) -> Result<bool, HostError>;

/// The store an entry into Wasm lends to the code (and so to host functions and
/// builtins): a `*mut S`, `S`'s type id, and `S::growing`.
#[derive(Clone, Copy)]
pub struct StoreRef {
    pub ptr: *mut (),
    pub ty: TypeId,
    pub growing: GrowingFn,
}

/// Asks the store of the current activation whether a memory or table may grow
/// ([`HostStore::growing`](crate::HostStore::growing)). `Ok(true)` with no activation
/// or store. On an error or a panic of the embedder's code, records it as the
/// activation's failure (the code then traps with `HostError`) and returns `Err(())`.
///
/// # Safety
/// Only builtins called by compiled code call this: the activation's store is lent to
/// the running Wasm code, and no reference into the store (outside its separately
/// allocated objects) is live.
pub(crate) unsafe fn ask_growing(kind: GrowKind, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool, ()> {
    let act = current_activation();
    if act.is_null() {
        return Ok(true);
    }
    // SAFETY: a non-null current activation is live and only this thread uses it.
    let (store, growing) = unsafe { ((*act).store, (*act).growing) };
    if store.is_null() {
        return Ok(true);
    }
    // SAFETY: `growing` was made for the store's type by `store::call`; Wasm is
    // suspended in this builtin, so nothing else uses the store (the caller's promise).
    let asked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        growing(store, kind, current, desired, maximum)
    }));
    let failure = match asked {
        Ok(Ok(allowed)) => return Ok(allowed),
        Ok(Err(e)) => HostFailure::Error(e),
        Err(p) => HostFailure::Panic(p),
    };
    // SAFETY: as above; the embedder's code has returned, no other reference exists.
    unsafe { (*act).failure = Some(failure) };
    Err(())
}

/// The innermost activation of this thread, or null.
pub(crate) fn current_activation() -> *mut Activation {
    CURRENT.with(|c| c.get())
}

unsafe extern "C" {
    fn quickbeam_enter(vmctx: *mut u8, code: *const u8, area: *mut u64, slots: usize, jmp: *mut usize) -> u32;
    fn quickbeam_trap_landing();
    fn quickbeam_host_adapter();
    fn quickbeam_host_adapter_trap();
}

/// The address of the host adapter: the `code` of every host function's `VMFuncRef`.
pub fn host_adapter_address() -> *const u8 {
    quickbeam_host_adapter as *const u8
}

core::arch::global_asm!(
    ".text",
    // quickbeam_enter(rdi = vmctx, rsi = code, rdx = area, rcx = slots, r8 = jmp) -> eax
    ".globl quickbeam_enter",
    ".hidden quickbeam_enter",
    ".type quickbeam_enter, @function",
    ".p2align 4",
    "quickbeam_enter:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov [r8], rsp",
    "mov rbp, rsp",
    "push rdx",              // [rbp - 8]: area
    "push rcx",              // [rbp - 16]: slots
    "mov r14, rdi",
    "mov rax, rsi",
    // Reserve (slots | 1) * 8 bytes: rsp is 8 mod 16 here, so it is 16-aligned at the call.
    "mov r9, rcx",
    "or r9, 1",
    "shl r9, 3",
    "sub rsp, r9",
    // area[0..slots] -> [rsp + 8*s] (a loop: `rep movsq` costs more for a few slots)
    "xor r10d, r10d",
    "test rcx, rcx",
    "jz .Lqb_enter_call",
    ".Lqb_enter_copy_in:",
    "mov r11, [rdx + 8*r10]",
    "mov [rsp + 8*r10], r11",
    "inc r10",
    "cmp r10, rcx",
    "jb .Lqb_enter_copy_in",
    ".Lqb_enter_call:",
    "call rax",
    // [rsp + 8*s] -> area[0..slots]
    "mov rdx, [rbp - 8]",
    "mov rcx, [rbp - 16]",
    "xor r10d, r10d",
    "test rcx, rcx",
    "jz .Lqb_enter_done",
    ".Lqb_enter_copy_out:",
    "mov r11, [rsp + 8*r10]",
    "mov [rdx + 8*r10], r11",
    "inc r10",
    "cmp r10, rcx",
    "jb .Lqb_enter_copy_out",
    ".Lqb_enter_done:",
    "mov rsp, rbp",
    "xor eax, eax",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    ".size quickbeam_enter, . - quickbeam_enter",
    // The signal handler resumes here with rsp = *jmp and eax = the trap code.
    ".globl quickbeam_trap_landing",
    ".hidden quickbeam_trap_landing",
    ".type quickbeam_trap_landing, @function",
    ".p2align 4",
    "quickbeam_trap_landing:",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    ".size quickbeam_trap_landing, . - quickbeam_trap_landing",
    // Host functions: r14 = host context, args at [rbp + 16] (see abi.rs).
    ".globl quickbeam_host_adapter",
    ".hidden quickbeam_host_adapter",
    ".type quickbeam_host_adapter, @function",
    ".p2align 4",
    "quickbeam_host_adapter:",
    "push rbp",
    "mov rbp, rsp",
    "and rsp, -16",
    "mov rdi, r14",
    "lea rsi, [rbp + 16]",
    "mov rdx, [rbp]",        // the Wasm caller's frame pointer: its vmctx is at [rdx - 8]
    "call {host_call}",
    "test eax, eax",
    "jnz quickbeam_host_adapter_trap",
    "mov rsp, rbp",
    "pop rbp",
    "ret",
    ".globl quickbeam_host_adapter_trap",
    ".hidden quickbeam_host_adapter_trap",
    "quickbeam_host_adapter_trap:",
    "ud2",                   // eax = trap code; the handler unwinds to the activation
    ".size quickbeam_host_adapter, . - quickbeam_host_adapter",
    host_call = sym crate::host::quickbeam_host_call,
);

/// The stack limit for an entry into Wasm now: the current activation's if Wasm is
/// already running on this thread, else `max_stack` bytes below the current stack
/// pointer (rounded up to 4 KiB, so repeated entries from nearby depths agree).
pub fn stack_limit_for_entry(max_stack: usize) -> usize {
    let act = current_activation();
    if !act.is_null() {
        // SAFETY: a non-null current activation is live (it is popped before its frame ends).
        return unsafe { (*act).stack_limit };
    }
    let marker = 0u8;
    let sp = std::ptr::addr_of!(marker) as usize;
    (sp.saturating_sub(max_stack) + 4095) & !4095
}

/// Calls compiled code: `code` with VMContext `vmctx` and argument area `area` (param
/// `i` in `area[A-1-i]`, results likewise), as the outermost or a nested activation.
///
/// # Safety
/// `code` must be the entry of a function that follows the ABI (`quickbeam_environ::abi`)
/// and takes an area of `area.len()` slots; `vmctx` must be the VMContext it expects,
/// with `stack_limit` already stored in every VMContext the call may reach; `store.ptr`
/// must be null or point to an `S` with `TypeId::of::<S>() == store.ty` and
/// `store.growing` made for `S`, that nothing else uses until this returns (host
/// functions and builtins reached from the code borrow it).
pub unsafe fn enter_wasm(
    store: StoreRef,
    vmctx: *mut u8,
    code: *const u8,
    area: &mut [u64],
    stack_limit: usize,
) -> Result<(), CallError> {
    init_thread();
    let mut act = Activation {
        jmp: 0,
        stack_limit,
        prev: current_activation(),
        store: store.ptr,
        store_type: store.ty,
        growing: store.growing,
        trap_code: 0,
        num_pcs: 0,
        pcs: [const { MaybeUninit::uninit() }; MAX_BACKTRACE],
        failure: None,
    };
    let act_ptr: *mut Activation = &mut act;
    CURRENT.with(|c| c.set(act_ptr));
    // SAFETY: the caller guarantees `code`/`vmctx`/`area` follow the ABI; `jmp` points
    // into the live activation. Everything Wasm or the handler touches of `act` goes
    // through `act_ptr`, which stays valid until we pop it below.
    let rc = unsafe { quickbeam_enter(vmctx, code, area.as_mut_ptr(), area.len(), &raw mut (*act_ptr).jmp) };
    // SAFETY: `act_ptr` points to `act`, alive in this frame; no one else uses it now.
    let act = unsafe { &mut *act_ptr };
    CURRENT.with(|c| c.set(act.prev));
    if rc == 0 {
        return Ok(());
    }
    match act.failure.take() {
        Some(HostFailure::Error(e)) => Err(CallError::Host(e)),
        Some(HostFailure::Panic(p)) => Err(CallError::Panic(p)),
        None => {
            let code = TrapCode::from_u32(rc).unwrap_or(TrapCode::UnreachableCodeReached);
            let backtrace = act.pcs[..act.num_pcs]
                .iter()
                .enumerate()
                .filter_map(|(i, pc)| {
                    // SAFETY: the handler initialized `pcs[..num_pcs]`.
                    let pc = unsafe { pc.assume_init() };
                    // Frames above the first hold return addresses: look up the call.
                    code::frame_for_pc(if i == 0 { pc } else { pc.wrapping_sub(1) })
                })
                .collect();
            Err(CallError::Trap { code, backtrace })
        }
    }
}

// ---- signals ----

const SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// The handlers that were installed before ours, to chain to.
struct PrevHandlers(UnsafeCell<[libc::sigaction; 4]>);
// SAFETY: written once inside `Once::call_once` before our handlers are installed, and
// only read afterwards.
unsafe impl Sync for PrevHandlers {}

static PREV: PrevHandlers = PrevHandlers(UnsafeCell::new(
    // SAFETY: `sigaction` is plain data for which all-zero bytes are valid (SIG_DFL).
    unsafe { std::mem::zeroed() },
));

/// Installs the process-wide signal handlers (once) and this thread's alternate signal
/// stack (once per thread).
pub fn init_thread() {
    if THREAD_READY.with(|r| r.get()) {
        return;
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (i, &sig) in SIGNALS.iter().enumerate() {
            // SAFETY: `sa` is fully initialized before use; PREV is written only here,
            // before any handler of ours can run and read it.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = trap_handler as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
                libc::sigemptyset(&mut sa.sa_mask);
                let prev = (*PREV.0.get()).as_mut_ptr().add(i);
                if libc::sigaction(sig, &sa, prev) != 0 {
                    panic!("failed to install the trap handler: {}", std::io::Error::last_os_error());
                }
            }
        }
    });
    ALT_STACK.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            if s.is_none() {
                *s = AltStack::install();
            }
        }
    });
    THREAD_READY.with(|r| r.set(true));
}

/// Size of the alternate signal stack we install when the thread's is missing or small.
const ALT_STACK_SIZE: usize = 64 << 10;

/// This thread's alternate signal stack, if we had to install one.
struct AltStack {
    map: Mmap,
}

impl AltStack {
    fn install() -> Option<AltStack> {
        // SAFETY: querying the current alternate stack writes only to `old`.
        let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: a null new stack only queries.
        unsafe { libc::sigaltstack(ptr::null(), &mut old) };
        if old.ss_flags & libc::SS_DISABLE == 0 && old.ss_size >= ALT_STACK_SIZE {
            return None;
        }
        let page = crate::mmap::page_size();
        let mut map = Mmap::reserve(ALT_STACK_SIZE + page).ok()?;
        // The lowest page stays inaccessible: a guard against overflowing the handler.
        map.make_accessible(page, ALT_STACK_SIZE).ok()?;
        let st = libc::stack_t {
            // SAFETY: `page` is inside the mapping.
            ss_sp: unsafe { map.as_ptr().add(page) }.cast(),
            ss_flags: 0,
            ss_size: ALT_STACK_SIZE,
        };
        // SAFETY: `st` describes accessible memory owned by the returned value, which
        // lives in a thread-local until the thread exits (when Drop uninstalls it).
        if unsafe { libc::sigaltstack(&st, ptr::null_mut()) } != 0 {
            return None;
        }
        Some(AltStack { map })
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let mut cur: libc::stack_t = libc::stack_t { ss_sp: ptr::null_mut(), ss_flags: 0, ss_size: 0 };
        // SAFETY: querying writes only to `cur`.
        unsafe { libc::sigaltstack(ptr::null(), &mut cur) };
        let ours = self.map.as_ptr() as usize + crate::mmap::page_size();
        if cur.ss_sp as usize == ours {
            let off = libc::stack_t { ss_sp: ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
            // SAFETY: disabling the alternate stack before unmapping it; no handler runs
            // on it now (we are in a thread-local destructor, not a handler).
            unsafe { libc::sigaltstack(&off, ptr::null_mut()) };
        }
    }
}

/// The trap code for a fault at `pc` with register state `gregs`, if it is a trap.
fn trap_code_at(pc: usize, gregs: &[libc::greg_t]) -> Option<TrapCode> {
    if pc == quickbeam_host_adapter_trap as *const () as usize {
        let rax = gregs[libc::REG_RAX as usize] as u32;
        return Some(TrapCode::from_u32(rax).unwrap_or(TrapCode::HostError));
    }
    code::trap_code_for_pc(pc)?
}

/// The SIGSEGV/SIGBUS/SIGILL/SIGFPE handler: a fault at a trap site of Wasm code (or
/// the host adapter's `ud2`) while an activation is live resumes at the trap landing;
/// anything else goes to the previous handler.
///
/// # Safety
/// Only the kernel calls this, as an `SA_SIGINFO` handler.
unsafe extern "C" fn trap_handler(signum: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let act = current_activation();
    if !act.is_null() && !ctx.is_null() {
        // SAFETY: the kernel passes a valid ucontext for SA_SIGINFO handlers.
        let uc = unsafe { &mut *ctx.cast::<libc::ucontext_t>() };
        let gregs = &mut uc.uc_mcontext.gregs;
        let pc = gregs[libc::REG_RIP as usize] as usize;
        if let Some(code) = trap_code_at(pc, gregs) {
            // SAFETY: a non-null current activation is live: its `enter_wasm` frame is
            // below us on this thread's stack, and only this thread touches it.
            let act = unsafe { &mut *act };
            let sp = gregs[libc::REG_RSP as usize] as usize;
            let fp = gregs[libc::REG_RBP as usize] as usize;
            // SAFETY: the walk only reads words inside [sp, jmp), this thread's live stack.
            unsafe { record_backtrace(act, pc, fp, sp) };
            act.trap_code = code.as_u32();
            gregs[libc::REG_RIP as usize] = quickbeam_trap_landing as *const () as usize as libc::greg_t;
            gregs[libc::REG_RSP as usize] = act.jmp as libc::greg_t;
            gregs[libc::REG_RAX as usize] = code.as_u32() as libc::greg_t;
            return;
        }
    }
    // SAFETY: forwarding the kernel's arguments unchanged.
    unsafe { chain(signum, info, ctx) }
}

/// Records `pc` and the return addresses of the rbp chain from `fp`, while frames stay
/// between the fault's `sp` and the activation's entry.
///
/// # Safety
/// `sp..act.jmp` must be this thread's live stack.
unsafe fn record_backtrace(act: &mut Activation, pc: usize, mut fp: usize, sp: usize) {
    let mut n = 0;
    act.pcs[n].write(pc);
    n += 1;
    while n < MAX_BACKTRACE && fp >= sp && fp + 16 <= act.jmp && fp.is_multiple_of(8) {
        // SAFETY: `fp..fp+16` is inside `sp..jmp` (checked), the caller's promise.
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        act.pcs[n].write(ret);
        n += 1;
        if next <= fp {
            break;
        }
        fp = next;
    }
    act.num_pcs = n;
}

/// Passes a signal that is not a Wasm trap to the handler installed before ours.
///
/// # Safety
/// Only from `trap_handler`, with the kernel's arguments.
unsafe fn chain(signum: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let Some(i) = SIGNALS.iter().position(|s| *s == signum) else { return };
    // SAFETY: PREV is read-only once handlers are installed (see `PrevHandlers`).
    let prev = unsafe { &(*PREV.0.get())[i] };
    let handler = prev.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Restore the previous disposition and return: the faulting instruction runs
        // again and gets the default treatment (usually: the process dies with `signum`).
        // SAFETY: `prev` is a valid sigaction saved by the kernel.
        unsafe { libc::sigaction(signum, prev, ptr::null_mut()) };
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: an SA_SIGINFO handler has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(signum, info, ctx);
    } else {
        // SAFETY: a plain handler has this signature.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(signum);
    }
}
