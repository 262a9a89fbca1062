//! [`CodeMemory`]: a module's finalized code, executable and never writable (W^X);
//! [`ModuleBytes`], the copy of a module's bytes it keeps; and the process-wide
//! registry that maps a pc to its function and trap site.
//!
//! Invariants:
//! - W^X: a page of the mapping is RW while the image is written into it, then RX;
//!   never both. A fresh image is written whole; an image built over a released one
//!   makes writable only the pages it writes ([`ImageWriter`]);
//! - a `CodeMemory` is in the registry from `new` to drop, so every pc inside live Wasm
//!   code can be looked up; the signal handler looks up without allocating, locking or
//!   waiting, even while other threads register code (see `Registry`);
//! - a dropped `CodeMemory`'s mapping may be kept in a small process-wide pool
//!   ([`POOL_MAX_MAPPINGS`], [`POOL_MAX_BYTES`]) and reused by the next image of about
//!   its size: a reload then writes over pages already present instead of mapping,
//!   faulting in and zeroing new ones. A reused page is made writable (and no longer
//!   executable) before anything is written to it. Every byte of the new image is written, or
//!   kept where the builder described the old image ([`ImageContents`]) and keeps only
//!   bytes the new image has at the same place (or copies old bytes it has elsewhere,
//!   [`ImageWriter::copy_within`]); past the image the mapping is `int3`, or pages never
//!   written (a fresh mapping has room to grow: [`GROWTH_ROOM`]).
//!   So nothing of the old code survives that the new image would not have.

use crate::mmap::Mmap;
use quickbeam_environ::names::Names;
use quickbeam_environ::TrapCode;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::SeqCst};
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// What the runtime knows about one compiled function.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionInfo {
    /// The function's index in its module's function index space.
    pub func_index: u32,
    /// Offset of its code in the module's image.
    pub start: u32,
    pub len: u32,
    /// Module byte offset of its body (locals and operators, after the size).
    pub body_offset: u32,
    /// Length of its body in bytes.
    pub body_len: u32,
}

/// Per function of a [`CodeInfo`] (by position in its `functions`): where the code may
/// trap, and which Wasm operator each instruction belongs to. Whoever compiled the code
/// implements it over what it keeps anyway (Quickbeam: its stencils), so that
/// describing an image copies or clones nothing per function. The signal handler reads
/// it: implementations must not allocate, lock or block.
pub trait FunctionSites: Send + Sync + std::fmt::Debug {
    /// `(code offset within the function, trap code)`, sorted by offset; empty for a
    /// function out of range.
    fn trap_sites(&self, function: usize) -> &[(u32, TrapCode)];
    /// `(code offset within the function, operator ordinal)`, sorted by code offset:
    /// the Wasm operator (0 = the body's first) whose code starts there; empty for a
    /// function out of range.
    fn srclocs(&self, function: usize) -> &[(u32, u32)];
}

/// [`FunctionSites`] held in vectors, one entry per function.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteTable {
    /// Per function: its trap sites.
    pub trap_sites: Vec<Box<[(u32, TrapCode)]>>,
    /// Per function: its source locations.
    pub srclocs: Vec<Box<[(u32, u32)]>>,
}

impl FunctionSites for SiteTable {
    fn trap_sites(&self, function: usize) -> &[(u32, TrapCode)] {
        self.trap_sites.get(function).map_or(&[], |f| f)
    }

    fn srclocs(&self, function: usize) -> &[(u32, u32)] {
        self.srclocs.get(function).map_or(&[], |f| f)
    }
}

/// Everything needed to map a pc in one module's code to Wasm terms.
#[derive(Debug)]
pub struct CodeInfo {
    /// Sorted by `start`, non-overlapping.
    pub functions: Vec<FunctionInfo>,
    /// Trap sites and source locations of `functions`, by position.
    pub sites: Arc<dyn FunctionSites>,
    /// The name section (decoded when a frame first needs a name).
    pub names: Arc<Names>,
    /// The module's bytes, to map operator ordinals to byte offsets when a trap needs
    /// them (rare; bodies are decoded then, not at load). Empty: no offsets.
    pub wasm: Arc<ModuleBytes>,
}

impl Default for CodeInfo {
    fn default() -> CodeInfo {
        CodeInfo {
            functions: Vec::new(),
            sites: Arc::new(SiteTable::default()),
            names: Arc::default(),
            wasm: Arc::default(),
        }
    }
}

/// A Wasm frame, as a pc maps to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    pub func_index: u32,
    pub func_name: Option<String>,
    /// Module byte offset of the instruction the pc belongs to.
    pub module_offset: Option<u32>,
}

impl CodeInfo {
    /// The function containing `offset`, and its position in `functions`.
    fn function_at(&self, offset: u32) -> Option<(usize, &FunctionInfo)> {
        let i = self.functions.partition_point(|f| f.start <= offset).checked_sub(1)?;
        let f = &self.functions[i];
        (offset - f.start < f.len).then_some((i, f))
    }

    /// The trap code of the trap site at exactly `offset` in the image.
    pub fn trap_at(&self, offset: u32) -> Option<TrapCode> {
        let (at, f) = self.function_at(offset)?;
        let rel = offset - f.start;
        let sites = self.sites.trap_sites(at);
        let i = sites.binary_search_by_key(&rel, |s| s.0).ok()?;
        Some(sites[i].1)
    }

    /// The frame of the instruction at `offset` in the image.
    pub fn frame_at(&self, offset: u32) -> Option<FrameInfo> {
        let (at, f) = self.function_at(offset)?;
        let rel = offset - f.start;
        let srclocs = self.sites.srclocs(at);
        let i = srclocs.partition_point(|s| s.0 <= rel);
        let module_offset = i.checked_sub(1).and_then(|i| {
            let body = self.wasm.get(f.body_offset as usize..(f.body_offset + f.body_len) as usize)?;
            Some(f.body_offset + quickbeam_environ::operator_offset(body, srclocs[i].1)?)
        });
        Some(FrameInfo {
            func_index: f.func_index,
            func_name: self.names.func(f.func_index).map(str::to_string),
            module_offset,
        })
    }
}

/// A module's code image, executable (see the module docs).
#[derive(Debug)]
pub struct CodeMemory {
    map: Mmap,
    len: usize,
    info: Arc<CodeInfo>,
    /// What the builder said the image holds; it goes with the mapping into the pool.
    contents: Option<ImageContents>,
    /// Whether it was built over a described image (its `fill` got a description).
    over_previous: bool,
    /// How many bytes of the mapping building it made writable (and then executable).
    made_writable: usize,
}

/// A code image being built ([`CodeMemory::build_reusing`]): all of it is readable;
/// [`writable`](Self::writable) makes the pages of a range writable (and not
/// executable) before handing the range out, so an image built over a previous one
/// changes the protection of only the pages it writes. At the end, every page made
/// writable is made executable again (W^X: never both).
pub struct ImageWriter<'a> {
    map: &'a mut Mmap,
    /// Length of the image (the mapping may be longer).
    len: usize,
    /// Page-aligned ranges of the mapping that are readable and writable, sorted,
    /// disjoint and not adjacent; every other page is readable and executable.
    writable: Vec<Range<usize>>,
}

impl ImageWriter<'_> {
    /// Length of the image in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The image's bytes as they are now.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: every page of the mapping is readable (RW or RX, see `writable`), and
        // `&self` excludes a slice handed out by `writable`.
        unsafe { &self.map.as_slice()[..self.len] }
    }

    /// `range` of the image, writable.
    ///
    /// # Errors
    /// The OS refused the protection change.
    ///
    /// # Panics
    /// If `range` is not inside the image.
    pub fn writable(&mut self, range: Range<usize>) -> std::io::Result<&mut [u8]> {
        assert!(range.start <= range.end && range.end <= self.len, "write out of the code image");
        self.pages_writable(range.clone())?;
        Ok(self.slice_mut(range))
    }

    /// Copies the bytes at `src` to `dest` (the ranges may overlap, as in `memmove`),
    /// making only the destination writable: `src` may lie anywhere in the mapping,
    /// past the image too (a previous, longer image's bytes are still there during
    /// `fill`: see [`CodeMemory::build_reusing`]).
    ///
    /// # Errors
    /// The OS refused the protection change.
    ///
    /// # Panics
    /// If `src` is not inside the mapping or the destination not inside the image.
    pub fn copy_within(&mut self, src: Range<usize>, dest: usize) -> std::io::Result<()> {
        assert!(src.start <= src.end && src.end <= self.map.len(), "copy from outside the code mapping");
        let end = dest.checked_add(src.len()).filter(|&e| e <= self.len).expect("copy out of the code image");
        self.pages_writable(dest..end)?;
        let base = self.map.as_ptr();
        // SAFETY: both ranges are inside the live mapping (checked above); every page
        // of it is readable and the destination's pages are writable (made so just
        // above); `&mut self` excludes any other reference into the mapping; and
        // `ptr::copy` allows the ranges to overlap.
        unsafe { std::ptr::copy(base.add(src.start), base.add(dest), src.len()) };
        Ok(())
    }

    /// Makes the pages holding `range` (inside the mapping) writable.
    fn pages_writable(&mut self, range: Range<usize>) -> std::io::Result<()> {
        if range.is_empty() {
            return Ok(());
        }
        let page = crate::mmap::page_size();
        let want = range.start / page * page..crate::mmap::round_up_to_page(range.end);
        // The writable ranges that overlap or touch `want`: `first..last`.
        let first = self.writable.partition_point(|r| r.end < want.start);
        if self.writable.get(first).is_some_and(|r| r.start <= want.start && want.end <= r.end) {
            // Already writable (the common case once a whole image was made writable).
            return Ok(());
        }
        let mut last = first;
        let mut at = want.start;
        while last < self.writable.len() && self.writable[last].start <= want.end {
            let r = self.writable[last].clone();
            if at < r.start {
                self.open(at, r.start - at)?;
            }
            at = at.max(r.end);
            last += 1;
        }
        if at < want.end {
            self.open(at, want.end - at)?;
        }
        let merged = match &self.writable[first..last] {
            [] => want,
            rs => rs[0].start.min(want.start)..rs[rs.len() - 1].end.max(want.end),
        };
        self.writable.splice(first..last, [merged]);
        Ok(())
    }

    /// Makes `len` bytes at `start` (page-aligned) writable, and faults them in as
    /// written: they were write-protected, so without this the first write to each
    /// page is a fault.
    fn open(&mut self, start: usize, len: usize) -> std::io::Result<()> {
        self.map.make_accessible(start, len)?;
        self.map.populate_for_write(start, len);
        Ok(())
    }

    fn slice_mut(&mut self, range: Range<usize>) -> &mut [u8] {
        debug_assert!(range.is_empty() || self.writable.iter().any(|r| r.start <= range.start && range.end <= r.end));
        // SAFETY: the pages holding `range` are readable and writable (made so by
        // `pages_writable`, which every caller runs first), and `&mut self` makes the
        // slice the only reference into the mapping.
        unsafe { self.map.range_mut(range) }
    }
}

/// A description of what a code image holds, opaque to the runtime: whoever builds an
/// image may attach one ([`CodeMemory::build_reusing`]), and whoever next builds an
/// image in the same (released, pooled) mapping gets it back, so that it can leave in
/// place the bytes that would be written the same.
pub type ImageContents = Arc<dyn std::any::Any + Send + Sync>;

/// One registered code region.
#[derive(Clone, Copy)]
struct Entry {
    start: usize,
    end: usize,
    /// Kept alive by the registering `CodeMemory`'s `Arc` until after it unregisters.
    info: *const CodeInfo,
}

/// The process-wide map from pc ranges to code, readable from signal handlers.
///
/// Readers (the signal handler included) announce themselves in `readers`, then load
/// `snapshot`, an immutable sorted table, and never block. Writers (serialized by
/// `writer`) publish a new table and wait until no reader is active before freeing the
/// old one: a reader that could still see the old table incremented `readers` before
/// the swap (all operations are `SeqCst`), so the writer waits for it.
struct Registry {
    snapshot: AtomicPtr<Vec<Entry>>,
    readers: AtomicUsize,
    writer: Mutex<()>,
}

static REGISTRY: Registry =
    Registry { snapshot: AtomicPtr::new(std::ptr::null_mut()), readers: AtomicUsize::new(0), writer: Mutex::new(()) };

impl Registry {
    /// Runs `f` on the current table (sorted by start; empty if none). Lock-free.
    fn read<R>(&self, f: impl FnOnce(&[Entry]) -> R) -> R {
        self.readers.fetch_add(1, SeqCst);
        let p = self.snapshot.load(SeqCst);
        // SAFETY: a non-null snapshot stays allocated while `readers` counts us: writers
        // free a replaced table only after seeing `readers == 0` (see the type docs).
        let r = f(if p.is_null() { &[] } else { unsafe { &*p } });
        self.readers.fetch_sub(1, SeqCst);
        r
    }

    /// Replaces the table with `edit` applied to a copy of it.
    fn update(&self, edit: impl FnOnce(&mut Vec<Entry>)) {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.snapshot.load(SeqCst);
        // SAFETY: only writers replace or free tables, and we hold the writer lock.
        let mut table = if old.is_null() { Vec::new() } else { unsafe { (*old).clone() } };
        edit(&mut table);
        let new = Box::into_raw(Box::new(table));
        self.snapshot.swap(new, SeqCst);
        if !old.is_null() {
            while self.readers.load(SeqCst) != 0 {
                std::thread::yield_now();
            }
            // SAFETY: `old` came from `Box::into_raw`, is no longer published, and no
            // reader can still hold it (none active since the swap).
            drop(unsafe { Box::from_raw(old) });
        }
    }

    /// The entry containing `pc`.
    fn find(table: &[Entry], pc: usize) -> Option<Entry> {
        let i = table.partition_point(|e| e.start <= pc).checked_sub(1)?;
        let e = table[i];
        (pc < e.end).then_some(e)
    }
}

impl CodeMemory {
    /// Copies `image` into fresh memory, makes it executable and registers it.
    ///
    /// # Errors
    /// The OS refused the mapping or the protection change.
    pub fn new(image: &[u8], info: CodeInfo) -> std::io::Result<CodeMemory> {
        CodeMemory::build(image.len(), |buf| {
            buf.copy_from_slice(image);
            Ok(info)
        })
    }

    /// Maps `len` bytes for `fill` to write the code image into and describe it, then
    /// makes them executable and registers them: an image is written once, in place.
    /// `fill` must write every byte of its slice, whose prior contents are unspecified
    /// (zeroes, or a released image's code when a pooled mapping is reused).
    ///
    /// # Errors
    /// `fill`'s error, or the OS refused the mapping or the protection change.
    pub fn build<E: From<std::io::Error>>(
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<CodeInfo, E>,
    ) -> Result<CodeMemory, E> {
        CodeMemory::build_reusing(len, None, |_| None, |image, _| fill(image.writable(0..len)?))
    }

    /// [`build`](Self::build), tagging the image with `contents`, and taking a released
    /// mapping large enough whose image had a description that `worth` scores, when
    /// there is one (`worth` says whether building over that image is worth it, and how
    /// much: the best scored is taken): `fill` then gets that description, and the image still
    /// holds that image's bytes, up to its length, even past the new image's end until
    /// `fill` returns (else the description is `None` and the bytes are unspecified).
    /// `fill` writes through [`ImageWriter::writable`] and
    /// [`ImageWriter::copy_within`], which make only the pages written writable: bytes
    /// it does not write keep their contents and stay executable. It must leave every
    /// byte of the image as the new image needs it, writing or keeping it; past the
    /// image the mapping is `int3` (or never written) either way.
    ///
    /// # Errors
    /// `fill`'s error, or the OS refused the mapping or the protection change. A
    /// mapping whose fill failed is unmapped, never reused.
    pub fn build_reusing<E: From<std::io::Error>>(
        len: usize,
        contents: Option<ImageContents>,
        worth: impl Fn(&ImageContents) -> Option<usize>,
        fill: impl FnOnce(&mut ImageWriter<'_>, Option<&ImageContents>) -> Result<CodeInfo, E>,
    ) -> Result<CodeMemory, E> {
        let same = contents.as_ref().map(|_| (len, &worth as Worth<'_>));
        let (mut map, previous, old_len, writable) = match take_pooled(len.max(1), same) {
            Some((p, writable)) => (p.map, p.contents, p.image_len, writable),
            None => {
                // Room to grow ([`GROWTH_ROOM`]); pages never written are not faulted in.
                let map = Mmap::with_rw(len.max(1) + len / GROWTH_ROOM)?;
                let all = 0..map.len();
                (map, None, 0, all)
            }
        };
        let mapped = map.len();
        let mut image = ImageWriter { map: &mut map, len, writable: vec![writable] };
        image.writable.retain(|r| !r.is_empty());
        let over_previous = previous.is_some();
        let info = fill(&mut image, previous.as_ref())?;
        // Past the new image: `int3` over whatever the old image had there; past that
        // the mapping was never written, or holds an older image's `int3`. (Nothing to
        // do when the image is as long as the old one: a warm reload changes no page.)
        // The old image's bytes are cleared only now, since `fill` may copy from them
        // (`ImageWriter::copy_within`).
        let stale = len..old_len.max(len).min(mapped);
        if !stale.is_empty() {
            image.pages_writable(stale.clone())?;
            image.slice_mut(stale).fill(0xcc);
        }
        let mut made_writable = 0;
        for r in std::mem::take(&mut image.writable) {
            map.make_executable(r.start, r.len())?;
            made_writable += r.len();
        }

        let info = Arc::new(info);
        let entry = Entry { start: map.as_ptr() as usize, end: map.as_ptr() as usize + len, info: Arc::as_ptr(&info) };
        REGISTRY.update(|t| {
            let i = t.partition_point(|e| e.start < entry.start);
            t.insert(i, entry);
        });
        Ok(CodeMemory { map, len, info, contents, over_previous, made_writable })
    }

    /// Whether this image was built in the mapping of a released image with a
    /// description ([`build_reusing`](Self::build_reusing)).
    pub fn built_over_previous(&self) -> bool {
        self.over_previous
    }

    /// How many bytes (whole pages) of its mapping building this image made writable and
    /// then executable again: all of a fresh mapping; over a previous image, only the
    /// pages written (none when the image is the previous one's).
    pub fn bytes_made_writable(&self) -> usize {
        self.made_writable
    }

    pub fn base(&self) -> *const u8 {
        self.map.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn info(&self) -> &Arc<CodeInfo> {
        &self.info
    }

    /// The code bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the whole mapping is readable (RX) from `new` on.
        unsafe { &self.map.as_slice()[..self.len] }
    }
}

impl Drop for CodeMemory {
    fn drop(&mut self) {
        let start = self.map.as_ptr() as usize;
        REGISTRY.update(|t| t.retain(|e| e.start != start));
        let map = std::mem::replace(&mut self.map, Mmap::empty());
        release_to_pool(Pooled { map, image_len: self.len, contents: self.contents.take() });
    }
}

/// A read-only copy of a module's bytes: below [`ModuleBytes::HEAP_LIMIT`] on the heap,
/// else in its own mapping, taken from the pool of released mappings when one fits (so
/// a reload copies into pages already present instead of faulting in fresh ones) and
/// returned to it on drop.
#[derive(Debug, Default)]
pub struct ModuleBytes {
    map: Option<Mmap>,
    heap: Box<[u8]>,
    len: usize,
}

impl ModuleBytes {
    /// Copies `bytes`.
    ///
    /// # Errors
    /// The OS refused the mapping or the protection change.
    pub fn copy_from(bytes: &[u8]) -> std::io::Result<ModuleBytes> {
        if bytes.len() < Self::HEAP_LIMIT {
            return Ok(ModuleBytes { map: None, heap: bytes.into(), len: bytes.len() });
        }
        let (mut map, old_len) = match take_pooled(bytes.len(), None) {
            Some((p, _)) => (p.map, p.image_len),
            None => (Mmap::with_rw(bytes.len())?, 0),
        };
        // SAFETY: the mapping is readable and writable (fresh, or made so by
        // `take_pooled`) and referenced by nothing else.
        let all = unsafe { map.as_mut_slice() };
        let (head, tail) = all.split_at_mut(bytes.len());
        head.copy_from_slice(bytes);
        // What the mapping held past the copy (pages past that were never written).
        let old = old_len.saturating_sub(bytes.len()).min(tail.len());
        tail[..old].fill(0);
        let mapped = map.len();
        map.make_read_only(0, mapped)?;
        Ok(ModuleBytes { map: Some(map), heap: Box::default(), len: bytes.len() })
    }

    /// Below this many bytes a copy is on the heap: the system calls a mapping costs
    /// would outweigh the copy. (Copying lua's 290 KB module takes 28–36 µs on the heap,
    /// 50–130 µs in a mapping; SQLite's 1.2 MB, 115–330 µs on the heap, where fresh
    /// pages fault in, and 175–200 µs in a mapping: `quickbeam-bench edit-loop`.)
    pub const HEAP_LIMIT: usize = 1 << 20;
}

impl std::ops::Deref for ModuleBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.map {
            // SAFETY: the mapping is readable from `copy_from` until drop.
            Some(map) => unsafe { &map.as_slice()[..self.len] },
            None => &self.heap,
        }
    }
}

impl Drop for ModuleBytes {
    fn drop(&mut self) {
        if let Some(map) = self.map.take() {
            release_to_pool(Pooled { map, image_len: self.len, contents: None });
        }
    }
}

/// A fresh code mapping has room for an image this fraction larger than its first
/// (1/32: 3%), so that the images of later edits that grow the code a little can still
/// be built in it when it is released ([`CodeMemory::build_reusing`]). The room costs
/// address space only: its pages are not written, so not faulted in.
pub const GROWTH_ROOM: usize = 32;

/// At most this many released mappings (code images and module bytes) are kept for
/// reuse.
pub const POOL_MAX_MAPPINGS: usize = 8;
/// At most this many bytes of released mappings are kept for reuse.
pub const POOL_MAX_BYTES: usize = 256 << 20;

/// Released mappings (code images: RX and deregistered; module bytes: read-only),
/// referenced by nothing, newest last.
static POOL: Mutex<Vec<Pooled>> = Mutex::new(Vec::new());

/// Whether an image built over a released one with this description is worth it, and
/// how much (a higher score is better: say, the functions it would keep).
type Worth<'a> = &'a dyn Fn(&ImageContents) -> Option<usize>;

/// A released mapping and what it holds.
struct Pooled {
    map: Mmap,
    /// Length of the image (or bytes) it held.
    image_len: usize,
    /// The description its image was built with, if any.
    contents: Option<ImageContents>,
}

/// Keeps a released mapping for reuse if the pool has room (dropping the oldest
/// mappings to make room); otherwise unmaps it.
fn release_to_pool(p: Pooled) {
    if p.map.is_empty() || p.map.len() > POOL_MAX_BYTES {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    pool.push(p);
    while pool.len() > POOL_MAX_MAPPINGS || pool.iter().map(|p| p.map.len()).sum::<usize>() > POOL_MAX_BYTES {
        pool.remove(0);
    }
}

/// A pooled mapping for `len` bytes: with `same`, among those of at least `len` bytes
/// whose image's description `same`'s function scores, the best scored (the newest of
/// equals): its contents are kept, and so is its protection (whoever builds over it
/// makes writable what it writes). Else the smallest of at least `len` bytes and not
/// much more (at most a quarter more plus 64 KiB, so little memory sits unused in it),
/// for module bytes (no `same`) one without a description, made readable and writable.
/// Also returns the range made writable (all of the mapping, or nothing).
fn take_pooled(len: usize, same: Option<(usize, Worth<'_>)>) -> Option<(Pooled, Range<usize>)> {
    let max = len + len / 4 + (64 << 10);
    let score = |p: &Pooled| {
        let (n, worth) = same?;
        if p.map.len() < n {
            return None;
        }
        worth(p.contents.as_ref()?)
    };
    let (mut p, kept) = {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let best = (0..pool.len()).filter_map(|i| Some((score(&pool[i])?, i))).max().map(|(_, i)| i);
        // Module bytes leave described images to the images built over them.
        let free = |p: &Pooled| same.is_some() || p.contents.is_none();
        let fits = || {
            (0..pool.len()).filter(|&i| (len..=max).contains(&pool[i].map.len()) && free(&pool[i])).min_by_key(|&i| pool[i].map.len())
        };
        let (i, kept) = match best {
            Some(i) => (i, true),
            None => (fits()?, false),
        };
        (pool.remove(i), kept)
    };
    if kept {
        return Some((p, 0..0));
    }
    let mapped = p.map.len();
    // A mapping that cannot be made writable is unmapped (dropped) and not reused.
    p.map.make_accessible(0, mapped).ok()?;
    // The pages of the old image and the new are present but write-protected since
    // their release: without this, the first write to each page is a fault. (Pages past
    // both were never written: left out.)
    let used = crate::mmap::round_up_to_page(len.max(p.image_len)).min(mapped);
    p.map.populate_for_write(0, used);
    p.contents = None;
    Some((p, 0..mapped))
}

/// Whether `pc` is inside registered Wasm code, and if so its trap code, if any. Never
/// allocates, locks or waits: safe to call from a signal handler. `None` = not Wasm code.
pub(crate) fn trap_code_for_pc(pc: usize) -> Option<Option<TrapCode>> {
    REGISTRY.read(|t| {
        let e = Registry::find(t, pc)?;
        // SAFETY: the entry's info outlives its registration (see `Entry`).
        Some(unsafe { &*e.info }.trap_at((pc - e.start) as u32))
    })
}

/// The Wasm frame of `pc`, if it is in registered code.
pub fn frame_for_pc(pc: usize) -> Option<FrameInfo> {
    REGISTRY.read(|t| {
        let e = Registry::find(t, pc)?;
        // SAFETY: the entry's info outlives its registration (see `Entry`).
        unsafe { &*e.info }.frame_at((pc - e.start) as u32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an image of `len` bytes (byte `i` is `byte(i)`) described by `tag`, and
    /// drops it, so that its mapping goes to the pool: returns its base and its
    /// description.
    fn released_image(len: usize, tag: u64, byte: impl Fn(usize) -> u8) -> (usize, ImageContents) {
        let contents: ImageContents = Arc::new(tag);
        let old = CodeMemory::build_reusing(len, Some(contents.clone()), |_| None, |image, previous| {
            assert!(previous.is_none());
            for (i, b) in image.writable(0..len)?.iter_mut().enumerate() {
                *b = byte(i);
            }
            Ok::<_, std::io::Error>(CodeInfo::default())
        })
        .unwrap();
        (old.base() as usize, contents)
    }

    /// Scores only the released image described by `tag`.
    fn described_by(tag: u64) -> impl Fn(&ImageContents) -> Option<usize> {
        move |c| (c.downcast_ref::<u64>() == Some(&tag)).then_some(1)
    }

    /// A mapping released by a dropped image is reused by the next image of about its
    /// size, and nothing of the old code survives in it: the new image, then `int3` to
    /// the end of the mapping. (1 MiB: no other test here builds code that large, so
    /// none can take the released mapping first.)
    #[test]
    fn a_reused_mapping_keeps_nothing_of_the_old_code() {
        let old = CodeMemory::new(&vec![0x90; 1 << 20], CodeInfo::default()).unwrap();
        let base = old.base();
        drop(old);
        let new = CodeMemory::new(&vec![0xc3; (1 << 20) - 5000], CodeInfo::default()).unwrap();
        assert_eq!(new.base(), base, "the released mapping was not reused");
        assert!(new.bytes().iter().all(|&b| b == 0xc3));
        // SAFETY: the whole mapping is readable (RX).
        let all = unsafe { new.map.as_slice() };
        assert!(all.len() >= 1 << 20);
        assert!(all[new.len()..].iter().all(|&b| b == 0xcc || b == 0), "old code left past the image");
        let page = crate::mmap::page_size();
        assert!(all[new.len()..1 << 20].iter().all(|&b| b == 0xcc), "the old image is not int3 past the new");
        assert!(all[(1 << 20) + page..].iter().all(|&b| b == 0), "the room to grow was written");
        assert_eq!(trap_code_for_pc(base as usize + 10), Some(None), "the new image is registered");
    }

    /// An image built over a longer described image it keeps bytes of: `fill` sees the
    /// old bytes, and past the new image the mapping is `int3` again. (1.5 MiB: no
    /// other test here builds code that large.)
    #[test]
    fn an_image_over_a_longer_one_leaves_no_old_code_past_its_end() {
        let len = 3 << 19;
        let (base, contents) = released_image(len, 7, |_| 0x90);
        let new = CodeMemory::build_reusing(len - 5000, Some(contents), described_by(7), |image, previous| {
            assert!(previous.is_some_and(|p| p.downcast_ref::<u64>() == Some(&7)));
            assert!(image.bytes().iter().all(|&b| b == 0x90), "the old image's bytes are kept");
            image.writable(0..100)?.fill(0xc3);
            Ok::<_, std::io::Error>(CodeInfo::default())
        })
        .unwrap();
        assert_eq!(new.base() as usize, base);
        assert!(new.built_over_previous());
        // SAFETY: the whole mapping is readable (RX).
        let all = unsafe { new.map.as_slice() };
        assert!(all[..100].iter().all(|&b| b == 0xc3) && all[100..new.len()].iter().all(|&b| b == 0x90));
        assert!(all[new.len()..].iter().all(|&b| b == 0xcc || b == 0), "old code left past the image");
        assert!(all[new.len()..len].iter().all(|&b| b == 0xcc), "the old image is not int3 past the new");
    }

    /// Building over a described image changes the protection of only the pages
    /// written: writes to separate ranges make their pages writable, touching or
    /// overlapping ones merge, and every byte not written keeps the old image's.
    /// (2.5 MiB: no other test here builds code that large.)
    #[test]
    fn an_image_over_a_previous_one_makes_only_written_pages_writable() {
        let page = crate::mmap::page_size();
        let len = 5 << 19;
        let (_, contents) = released_image(len, 9, |_| 0x90);
        let new = CodeMemory::build_reusing(len, Some(contents), described_by(9), |image, previous| {
            assert!(previous.is_some());
            assert!(image.writable.is_empty(), "nothing is writable before a write");
            image.writable(10..20)?.fill(0xc3);
            image.writable(3 * page + 5..3 * page + 10)?.fill(0xc3);
            assert_eq!(image.writable, [0..page, 3 * page..4 * page]);
            // Touches the first range and overlaps the second: one range.
            image.writable(page + 1..3 * page + 1)?[0] = 0xc3;
            assert_eq!(image.writable, vec![(0..4 * page)]);
            image.writable(len - 1..len)?[0] = 0xc3;
            assert_eq!(image.writable, [0..4 * page, len - page..len]);
            Ok::<_, std::io::Error>(CodeInfo::default())
        })
        .unwrap();
        assert!(new.built_over_previous());
        let b = new.bytes();
        let written = |i: usize| (10..20).contains(&i) || (3 * page + 5..3 * page + 10).contains(&i) || i == page + 1 || i == len - 1;
        assert!(b.iter().enumerate().all(|(i, &x)| x == if written(i) { 0xc3 } else { 0x90 }));
        // W^X: every page of the mapping is executable and none writable again.
        let (start, end) = (new.base() as usize, new.base() as usize + new.map.len());
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mut covered = 0;
        for line in maps.lines() {
            let mut fields = line.split_whitespace();
            let (range, perms) = (fields.next().unwrap(), fields.next().unwrap());
            let (lo, hi) = range.split_once('-').unwrap();
            let (lo, hi) = (usize::from_str_radix(lo, 16).unwrap(), usize::from_str_radix(hi, 16).unwrap());
            if lo < end && start < hi {
                assert_eq!(&perms[..3], "r-x", "{line}");
                covered += hi.min(end) - lo.max(start);
            }
        }
        assert_eq!(covered, end - start);
    }

    /// An image built over a longer one can copy the old bytes past its own end (they
    /// are cleared only after `fill`), and the mapping is `int3` past it afterwards.
    #[test]
    fn a_shorter_image_copies_from_past_its_end_then_clears_it() {
        let (old_len, len) = (7 << 19, 6 << 19);
        let (_, contents) = released_image(old_len, 11, |i| (i % 251) as u8);
        let new = CodeMemory::build_reusing(len, Some(contents), described_by(11), |image, previous| {
            assert!(previous.is_some());
            // The old image's last 1,000 bytes to the new one's end; two overlapping moves.
            image.copy_within(old_len - 1000..old_len, len - 1000)?;
            image.copy_within(100..5000, 40)?;
            image.copy_within(10_000..20_000, 10_300)?;
            Ok::<_, std::io::Error>(CodeInfo::default())
        })
        .unwrap();
        assert!(new.built_over_previous());
        let old_byte = |i: usize| (i % 251) as u8;
        let b = new.bytes();
        assert!((0..1000).all(|i| b[len - 1000 + i] == old_byte(old_len - 1000 + i)));
        assert!((0..4900).all(|i| b[40 + i] == old_byte(100 + i)));
        assert!((0..10_000).all(|i| b[10_300 + i] == old_byte(10_000 + i)));
        assert_eq!(b[5000], old_byte(5000));
        // SAFETY: the whole mapping is readable (RX).
        let past = unsafe { &new.map.as_slice()[len..old_len] };
        assert!(past.iter().all(|&x| x == 0xcc), "the old image's tail is not int3");
    }

    /// A fresh mapping has room to grow: an image a few pages longer is built over the
    /// released one in the same mapping, and keeps its bytes. (3.5 MiB: no other test
    /// here builds code that large.)
    #[test]
    fn an_image_that_grew_a_little_is_built_in_the_released_mapping() {
        let len = 7 << 19;
        let grown = len + 3 * crate::mmap::page_size() + 100;
        let (base, contents) = released_image(len, 13, |_| 0x90);
        let new = CodeMemory::build_reusing(grown, Some(contents), described_by(13), |image, previous| {
            assert!(previous.is_some());
            image.writable(len..grown)?.fill(0xc3);
            Ok::<_, std::io::Error>(CodeInfo::default())
        })
        .unwrap();
        assert_eq!(new.base() as usize, base, "the released mapping was not reused");
        assert!(new.built_over_previous());
        let b = new.bytes();
        assert!(b[..len].iter().all(|&x| x == 0x90) && b[len..].iter().all(|&x| x == 0xc3));
    }

    #[test]
    fn module_bytes_are_a_copy() {
        // On the heap, and in a mapping.
        for n in [100_000u32, 1_100_000] {
            let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let copy = ModuleBytes::copy_from(&bytes).unwrap();
            assert_eq!(&*copy, &bytes[..]);
        }
        assert!(ModuleBytes::copy_from(&[]).unwrap().is_empty());
    }

    #[test]
    fn lookups_by_pc() {
        let info = CodeInfo {
            functions: vec![
                FunctionInfo { func_index: 3, start: 0, len: 16, body_offset: 100, body_len: 6 },
                FunctionInfo { func_index: 4, start: 16, len: 8, body_offset: 200, body_len: 2 },
            ],
            sites: Arc::new(SiteTable {
                trap_sites: vec![[(4, TrapCode::UnreachableCodeReached)].into(), Box::default()],
                srclocs: vec![[(0, 1), (4, 2)].into(), Box::default()],
            }),
            names: Arc::new(Names::from_funcs([(3, "f".to_string())].into_iter().collect())),
            // At 100, a body: no locals, `nop` (101), `i32.const 1` (102), `unreachable`
            // (104), `end` (105).
            wasm: Arc::new(ModuleBytes::copy_from(&[&[0u8; 100][..], &[0x00, 0x01, 0x41, 0x01, 0x00, 0x0b]].concat()).unwrap()),
        };
        let code = CodeMemory::new(&[0xcc; 24], info).unwrap();
        let base = code.base() as usize;
        assert_eq!(trap_code_for_pc(base + 4), Some(Some(TrapCode::UnreachableCodeReached)));
        assert_eq!(trap_code_for_pc(base + 5), Some(None));
        assert_eq!(trap_code_for_pc(base + 24), None);
        let f = frame_for_pc(base + 6).unwrap();
        assert_eq!((f.func_index, f.func_name.as_deref(), f.module_offset), (3, Some("f"), Some(104)));
        let g = frame_for_pc(base + 17).unwrap();
        assert_eq!((g.func_index, g.module_offset), (4, None));
        assert_eq!(code.bytes(), &[0xcc; 24]);
        drop(code);
        assert_eq!(trap_code_for_pc(base + 4), None);
    }
}
