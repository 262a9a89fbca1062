//! [`Mmap`]: an owned anonymous memory mapping with page-granular protection changes.
//!
//! Invariant: `ptr..ptr+len` is one mapping this value created and unmaps on drop;
//! `len` is a multiple of the page size.

use std::io;
use std::ptr::NonNull;

/// The host's page size.
pub fn page_size() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *SIZE.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize })
}

/// Whether pages written before, write-protected by `mprotect` and made writable again
/// take a fault on their first write. Before Linux 6.0 they do; since (commit
/// 64fe24a3e05e, "mm/mprotect: try avoiding write faults for exclusive anonymous pages
/// when changing protection"), `mprotect` maps a private mapping's exclusive anonymous
/// pages writable at once, and faulting them in beforehand only costs a page walk (20
/// µs per MiB here). Unknown (no `/proc`): assumed so.
pub fn write_faults_after_mprotect() -> bool {
    static FAULTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FAULTS.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let major = release.split('.').next().and_then(|m| m.trim().parse::<u32>().ok());
        major.is_none_or(|major| major < 6)
    })
}

/// Rounds `n` up to a multiple of the page size.
pub fn round_up_to_page(n: usize) -> usize {
    let p = page_size();
    n.checked_add(p - 1).expect("size overflows the address space") & !(p - 1)
}

/// An owned anonymous mapping (see the module docs).
#[derive(Debug)]
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: an `Mmap` is plain owned memory; nothing about it is tied to a thread.
unsafe impl Send for Mmap {}
// SAFETY: shared access only reads the pointer and length.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Reserves `len` bytes (rounded up to pages) of inaccessible address space, without
    /// committing memory.
    pub fn reserve(len: usize) -> io::Result<Mmap> {
        Mmap::map(round_up_to_page(len), libc::PROT_NONE, 0)
    }

    /// Maps `len` bytes (rounded up to pages) readable and writable, zeroed.
    pub fn with_rw(len: usize) -> io::Result<Mmap> {
        // Populated: the caller writes all of it at once (a code image), and one
        // `mmap` that faults every page in is cheaper than a fault per page.
        Mmap::map(round_up_to_page(len), libc::PROT_READ | libc::PROT_WRITE, libc::MAP_POPULATE)
    }

    /// A mapping of no bytes (owns nothing).
    pub fn empty() -> Mmap {
        Mmap { ptr: NonNull::dangling(), len: 0 }
    }

    fn map(len: usize, prot: libc::c_int, flags: libc::c_int) -> io::Result<Mmap> {
        if len == 0 {
            return Ok(Mmap { ptr: NonNull::dangling(), len: 0 });
        }
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing
        // cannot alias any existing Rust object.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | flags,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mmap { ptr: NonNull::new(ptr.cast()).expect("mmap never returns null on success"), len })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn protect(&self, start: usize, len: usize, prot: libc::c_int) -> io::Result<()> {
        assert!(start.is_multiple_of(page_size()) && len.is_multiple_of(page_size()), "unaligned protection change");
        assert!(start.checked_add(len).is_some_and(|end| end <= self.len), "protection change out of the mapping");
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the range is page-aligned and inside this mapping (checked above), which
        // this value owns; callers that remove access go through `&mut self` methods.
        let r = unsafe { libc::mprotect(self.ptr.as_ptr().add(start).cast(), len, prot) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Makes `start..start+len` (page-aligned) readable and writable.
    pub fn make_accessible(&mut self, start: usize, len: usize) -> io::Result<()> {
        self.protect(start, len, libc::PROT_READ | libc::PROT_WRITE)
    }

    /// Makes `start..start+len` (page-aligned) readable only.
    pub fn make_read_only(&mut self, start: usize, len: usize) -> io::Result<()> {
        self.protect(start, len, libc::PROT_READ)
    }

    /// Faults in the pages of `start..start+len` (page-aligned) as written
    /// (`MADV_POPULATE_WRITE`, Linux 5.14+) in one call, instead of a fault per page on
    /// first write, where the kernel needs it ([`write_faults_after_mprotect`]). Best
    /// effort: an older kernel's refusal changes nothing but the speed.
    ///
    /// # Panics
    /// If the range is unaligned or not inside the mapping.
    pub fn populate_for_write(&self, start: usize, len: usize) {
        assert!(start.is_multiple_of(page_size()) && len.is_multiple_of(page_size()), "unaligned range");
        assert!(start.checked_add(len).is_some_and(|end| end <= self.len), "range out of the mapping");
        if len == 0 || !write_faults_after_mprotect() {
            return;
        }
        // SAFETY: the range is inside this mapping (checked above), which this value
        // owns; the advice only faults pages in (it never changes their contents or
        // protection).
        let _ = unsafe { libc::madvise(self.ptr.as_ptr().add(start).cast(), len, libc::MADV_POPULATE_WRITE) };
    }

    /// Makes `start..start+len` (page-aligned) readable and executable, and no longer
    /// writable.
    pub fn make_executable(&mut self, start: usize, len: usize) -> io::Result<()> {
        self.protect(start, len, libc::PROT_READ | libc::PROT_EXEC)
    }

    /// The whole mapping as bytes.
    ///
    /// # Safety
    /// Every byte of the mapping must be readable (none left `PROT_NONE`).
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is live for `&self`; readability is the caller's promise.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The whole mapping as mutable bytes.
    ///
    /// # Safety
    /// Every byte of the mapping must be readable and writable.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is live and uniquely borrowed; access is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// `range` of the mapping as mutable bytes.
    ///
    /// # Safety
    /// Every byte of `range` must be readable and writable.
    ///
    /// # Panics
    /// If `range` is not inside the mapping.
    pub unsafe fn range_mut(&mut self, range: std::ops::Range<usize>) -> &mut [u8] {
        assert!(range.start <= range.end && range.end <= self.len, "range out of the mapping");
        // SAFETY: in bounds (checked above) of a live mapping uniquely borrowed; access
        // is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(range.start), range.len()) }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: this value owns the mapping and nothing borrows it any more.
        let r = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        debug_assert_eq!(r, 0, "munmap failed: {}", io::Error::last_os_error());
    }
}
