//! The functions of `wasi_snapshot_preview1`, as methods on [`WasiCtx`] that see the
//! guest's memory through a bounds-checked [`GuestMemory`].
//!
//! [`for_each_function!`] is the one list of every preview1 import with its Wasm
//! signature; the linker glue and the tests derive everything from it. An entry marked
//! `nosys` is defined (so real programs link) and returns `ERRNO_NOSYS`; every other entry
//! calls the method of the same name below. `proc_exit` is not in the list: it returns no
//! errno and ends the guest with an [`I32Exit`](crate::I32Exit) error instead.
//!
//! Methods take guest pointers and sizes as `u32` and 64-bit values as `u64`, exactly as
//! the witx declares them, and return `Err(errno)` on failure; they never panic.
// The methods take the witx parameters one for one.
#![allow(clippy::too_many_arguments)]

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::ctx::{Descriptor, Input, OpenDir, OpenFile, WasiCtx};
use crate::errno::Errno;
use crate::memory::GuestMemory;
use crate::types::{clockid, event, fdflags, filetype, layout, lookupflags, oflags, rights, whence};

/// Calls `$mac!` with every preview1 function but `proc_exit`:
/// `(implemented | nosys) name(arg: i32 | i64, ...);`, all returning an `i32` errno.
#[macro_export]
#[doc(hidden)]
macro_rules! for_each_function {
    ($mac:ident) => {
        $mac! {
            (implemented) args_get(argv: i32, argv_buf: i32);
            (implemented) args_sizes_get(argc_out: i32, argv_buf_size_out: i32);
            (implemented) environ_get(environ: i32, environ_buf: i32);
            (implemented) environ_sizes_get(count_out: i32, buf_size_out: i32);
            (implemented) clock_res_get(id: i32, resolution_out: i32);
            (implemented) clock_time_get(id: i32, precision: i64, time_out: i32);
            (implemented) fd_advise(fd: i32, offset: i64, len: i64, advice: i32);
            (implemented) fd_allocate(fd: i32, offset: i64, len: i64);
            (implemented) fd_close(fd: i32);
            (implemented) fd_datasync(fd: i32);
            (implemented) fd_fdstat_get(fd: i32, fdstat_out: i32);
            (nosys) fd_fdstat_set_flags(fd: i32, flags: i32);
            (nosys) fd_fdstat_set_rights(fd: i32, rights_base: i64, rights_inheriting: i64);
            (implemented) fd_filestat_get(fd: i32, filestat_out: i32);
            (implemented) fd_filestat_set_size(fd: i32, size: i64);
            (implemented) fd_filestat_set_times(fd: i32, atim: i64, mtim: i64, fst_flags: i32);
            (implemented) fd_pread(fd: i32, iovs: i32, iovs_len: i32, offset: i64, nread_out: i32);
            (implemented) fd_prestat_get(fd: i32, prestat_out: i32);
            (implemented) fd_prestat_dir_name(fd: i32, path: i32, path_len: i32);
            (implemented) fd_pwrite(fd: i32, iovs: i32, iovs_len: i32, offset: i64, nwritten_out: i32);
            (implemented) fd_read(fd: i32, iovs: i32, iovs_len: i32, nread_out: i32);
            (implemented) fd_readdir(fd: i32, buf: i32, buf_len: i32, cookie: i64, bufused_out: i32);
            (implemented) fd_renumber(fd: i32, to: i32);
            (implemented) fd_seek(fd: i32, offset: i64, whence: i32, newoffset_out: i32);
            (implemented) fd_sync(fd: i32);
            (implemented) fd_tell(fd: i32, offset_out: i32);
            (implemented) fd_write(fd: i32, iovs: i32, iovs_len: i32, nwritten_out: i32);
            (implemented) path_create_directory(fd: i32, path: i32, path_len: i32);
            (implemented) path_filestat_get(fd: i32, flags: i32, path: i32, path_len: i32, filestat_out: i32);
            (implemented) path_filestat_set_times(fd: i32, flags: i32, path: i32, path_len: i32, atim: i64, mtim: i64, fst_flags: i32);
            (implemented) path_link(old_fd: i32, old_flags: i32, old_path: i32, old_path_len: i32, new_fd: i32, new_path: i32, new_path_len: i32);
            (implemented) path_open(fd: i32, dirflags: i32, path: i32, path_len: i32, oflags: i32, rights_base: i64, rights_inheriting: i64, fdflags: i32, fd_out: i32);
            (implemented) path_readlink(fd: i32, path: i32, path_len: i32, buf: i32, buf_len: i32, bufused_out: i32);
            (implemented) path_remove_directory(fd: i32, path: i32, path_len: i32);
            (implemented) path_rename(fd: i32, old_path: i32, old_path_len: i32, new_fd: i32, new_path: i32, new_path_len: i32);
            (implemented) path_symlink(old_path: i32, old_path_len: i32, fd: i32, new_path: i32, new_path_len: i32);
            (implemented) path_unlink_file(fd: i32, path: i32, path_len: i32);
            (implemented) poll_oneoff(subscriptions: i32, events: i32, nsubscriptions: i32, nevents_out: i32);
            (nosys) proc_raise(signal: i32);
            (implemented) sched_yield();
            (implemented) random_get(buf: i32, buf_len: i32);
            (nosys) sock_accept(fd: i32, flags: i32, fd_out: i32);
            (nosys) sock_recv(fd: i32, ri_data: i32, ri_data_len: i32, ri_flags: i32, ro_datalen_out: i32, ro_flags_out: i32);
            (nosys) sock_send(fd: i32, si_data: i32, si_data_len: i32, si_flags: i32, so_datalen_out: i32);
            (nosys) sock_shutdown(fd: i32, how: i32);
        }
    };
}

type Result<T = ()> = core::result::Result<T, Errno>;

/// The most bytes one `fd_read`/`fd_pread` moves (a short read is always allowed).
const MAX_READ: usize = 16 << 20;

/// The fields of `$filestat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filestat {
    pub dev: u64,
    pub ino: u64,
    pub filetype: u8,
    pub nlink: u64,
    pub size: u64,
    pub atim: u64,
    pub mtim: u64,
    pub ctim: u64,
}

impl Filestat {
    /// Writes the 64-byte `$filestat` at `ptr`.
    pub fn write(&self, mem: &mut GuestMemory<'_>, ptr: u32) -> Result {
        let mut b = [0u8; layout::FILESTAT_SIZE as usize];
        b[0..8].copy_from_slice(&self.dev.to_le_bytes());
        b[8..16].copy_from_slice(&self.ino.to_le_bytes());
        b[16] = self.filetype;
        b[24..32].copy_from_slice(&self.nlink.to_le_bytes());
        b[32..40].copy_from_slice(&self.size.to_le_bytes());
        b[40..48].copy_from_slice(&self.atim.to_le_bytes());
        b[48..56].copy_from_slice(&self.mtim.to_le_bytes());
        b[56..64].copy_from_slice(&self.ctim.to_le_bytes());
        mem.write(ptr, &b)
    }

    fn of_std(m: &std::fs::Metadata) -> Filestat {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Filestat {
                dev: m.dev(),
                ino: m.ino(),
                filetype: filetype_of_std(m.file_type()),
                nlink: m.nlink(),
                size: m.size(),
                atim: nanos(m.atime(), m.atime_nsec()),
                mtim: nanos(m.mtime(), m.mtime_nsec()),
                ctim: nanos(m.ctime(), m.ctime_nsec()),
            }
        }
        #[cfg(not(unix))]
        {
            Filestat { filetype: filetype_of_std(m.file_type()), size: m.len(), ..Filestat::default() }
        }
    }

    fn of_cap(m: &cap_std::fs::Metadata) -> Filestat {
        #[cfg(unix)]
        {
            use cap_std::fs::MetadataExt;
            Filestat {
                dev: m.dev(),
                ino: m.ino(),
                filetype: filetype_of_cap(m.file_type()),
                nlink: m.nlink(),
                size: m.size(),
                atim: nanos(m.atime(), m.atime_nsec()),
                mtim: nanos(m.mtime(), m.mtime_nsec()),
                ctim: nanos(m.ctime(), m.ctime_nsec()),
            }
        }
        #[cfg(not(unix))]
        {
            Filestat { filetype: filetype_of_cap(m.file_type()), size: m.len(), ..Filestat::default() }
        }
    }
}

/// Seconds and nanoseconds since the epoch as a `$timestamp` (0 before 1970).
fn nanos(secs: i64, nsec: i64) -> u64 {
    u64::try_from(secs).unwrap_or(0).saturating_mul(1_000_000_000).saturating_add(u64::try_from(nsec).unwrap_or(0))
}

fn filetype_of_std(t: std::fs::FileType) -> u8 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_block_device() {
            return filetype::BLOCK_DEVICE;
        }
        if t.is_char_device() {
            return filetype::CHARACTER_DEVICE;
        }
        if t.is_socket() {
            return filetype::SOCKET_STREAM;
        }
    }
    if t.is_dir() {
        filetype::DIRECTORY
    } else if t.is_file() {
        filetype::REGULAR_FILE
    } else if t.is_symlink() {
        filetype::SYMBOLIC_LINK
    } else {
        filetype::UNKNOWN
    }
}

fn filetype_of_cap(t: cap_std::fs::FileType) -> u8 {
    if t.is_dir() {
        filetype::DIRECTORY
    } else if t.is_file() {
        filetype::REGULAR_FILE
    } else if t.is_symlink() {
        filetype::SYMBOLIC_LINK
    } else {
        filetype::UNKNOWN
    }
}

/// The process-wide origin of the monotonic clock.
fn monotonic_origin() -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// The current time of a clock in nanoseconds.
fn clock_now(id: u32) -> Result<u64> {
    match id {
        clockid::REALTIME => {
            let d = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| Errno::OVERFLOW)?;
            u64::try_from(d.as_nanos()).map_err(|_| Errno::OVERFLOW)
        }
        // Offset by one second so that no reading is ever 0.
        clockid::MONOTONIC => {
            let d = monotonic_origin().elapsed() + Duration::from_secs(1);
            u64::try_from(d.as_nanos()).map_err(|_| Errno::OVERFLOW)
        }
        // CPU-time clocks are not supported (as in wasmtime).
        clockid::PROCESS_CPUTIME_ID | clockid::THREAD_CPUTIME_ID => Err(Errno::BADF),
        _ => Err(Errno::INVAL),
    }
}

/// Writes a list of NUL-terminated strings (`args_get`, `environ_get`): the pointers to
/// `ptrs`, the bytes to `buf`.
fn write_strings(mem: &mut GuestMemory<'_>, strings: &[Vec<u8>], ptrs: u32, buf: u32) -> Result {
    let mut p = ptrs;
    let mut b = buf;
    for s in strings {
        mem.write_u32(p, b)?;
        mem.write(b, s)?;
        let end = b.checked_add(u32::try_from(s.len()).map_err(|_| Errno::FAULT)?).ok_or(Errno::FAULT)?;
        mem.write_u8(end, 0)?;
        b = end.checked_add(1).ok_or(Errno::FAULT)?;
        p = p.checked_add(4).ok_or(Errno::FAULT)?;
    }
    Ok(())
}

/// `(count, total bytes including NULs)` of a string list.
fn string_sizes(strings: &[Vec<u8>]) -> Result<(u32, u32)> {
    let count = u32::try_from(strings.len()).map_err(|_| Errno::OVERFLOW)?;
    let bytes: usize = strings.iter().map(|s| s.len() + 1).sum();
    Ok((count, u32::try_from(bytes).map_err(|_| Errno::OVERFLOW)?))
}

impl WasiCtx {
    fn dir(&self, fd: u32) -> Result<&cap_std::fs::Dir> {
        match self.get(fd)? {
            Descriptor::Dir(d) => Ok(&d.dir),
            _ => Err(Errno::NOTDIR),
        }
    }

    fn file(&mut self, fd: u32) -> Result<&mut std::fs::File> {
        match self.get_mut(fd)? {
            Descriptor::File(f) => Ok(&mut f.file),
            Descriptor::Dir(_) => Err(Errno::ISDIR),
            Descriptor::Stdin(_) | Descriptor::Output(_) => Err(Errno::SPIPE),
        }
    }

    pub fn args_get(&mut self, mem: &mut GuestMemory<'_>, argv: u32, argv_buf: u32) -> Result {
        write_strings(mem, &self.args, argv, argv_buf)
    }

    pub fn args_sizes_get(&mut self, mem: &mut GuestMemory<'_>, argc_out: u32, buf_size_out: u32) -> Result {
        let (count, bytes) = string_sizes(&self.args)?;
        mem.write_u32(argc_out, count)?;
        mem.write_u32(buf_size_out, bytes)
    }

    pub fn environ_get(&mut self, mem: &mut GuestMemory<'_>, environ: u32, environ_buf: u32) -> Result {
        write_strings(mem, &self.env, environ, environ_buf)
    }

    pub fn environ_sizes_get(&mut self, mem: &mut GuestMemory<'_>, count_out: u32, buf_size_out: u32) -> Result {
        let (count, bytes) = string_sizes(&self.env)?;
        mem.write_u32(count_out, count)?;
        mem.write_u32(buf_size_out, bytes)
    }

    pub fn clock_res_get(&mut self, mem: &mut GuestMemory<'_>, id: u32, resolution_out: u32) -> Result {
        let res = match id {
            clockid::REALTIME | clockid::MONOTONIC => 1,
            clockid::PROCESS_CPUTIME_ID | clockid::THREAD_CPUTIME_ID => return Err(Errno::BADF),
            _ => return Err(Errno::INVAL),
        };
        mem.write_u64(resolution_out, res)
    }

    pub fn clock_time_get(&mut self, mem: &mut GuestMemory<'_>, id: u32, _precision: u64, time_out: u32) -> Result {
        let now = clock_now(id)?;
        mem.write_u64(time_out, now)
    }

    pub fn fd_advise(&mut self, _mem: &mut GuestMemory<'_>, fd: u32, _offset: u64, _len: u64, advice: u32) -> Result {
        self.file(fd)?;
        // normal, sequential, random, willneed, dontneed, noreuse: advice only.
        if advice > 5 {
            return Err(Errno::INVAL);
        }
        Ok(())
    }

    pub fn fd_allocate(&mut self, _mem: &mut GuestMemory<'_>, fd: u32, offset: u64, len: u64) -> Result {
        let file = self.file(fd)?;
        let end = offset.checked_add(len).ok_or(Errno::FBIG)?;
        if end > file.metadata()?.len() {
            file.set_len(end)?;
        }
        Ok(())
    }

    pub fn fd_close(&mut self, _mem: &mut GuestMemory<'_>, fd: u32) -> Result {
        let slot = self.fds.get_mut(fd as usize).ok_or(Errno::BADF)?;
        slot.take().map(drop).ok_or(Errno::BADF)
    }

    pub fn fd_datasync(&mut self, _mem: &mut GuestMemory<'_>, fd: u32) -> Result {
        match self.get_mut(fd)? {
            Descriptor::File(f) => Ok(f.file.sync_data()?),
            Descriptor::Dir(_) => Ok(()),
            Descriptor::Stdin(_) | Descriptor::Output(_) => Err(Errno::INVAL),
        }
    }

    pub fn fd_sync(&mut self, _mem: &mut GuestMemory<'_>, fd: u32) -> Result {
        match self.get_mut(fd)? {
            Descriptor::File(f) => Ok(f.file.sync_all()?),
            Descriptor::Dir(_) => Ok(()),
            Descriptor::Stdin(_) | Descriptor::Output(_) => Err(Errno::INVAL),
        }
    }

    pub fn fd_fdstat_get(&mut self, mem: &mut GuestMemory<'_>, fd: u32, fdstat_out: u32) -> Result {
        use std::io::IsTerminal;
        let stdio_type = |terminal: bool| if terminal { filetype::CHARACTER_DEVICE } else { filetype::UNKNOWN };
        let (ty, flags, base, inheriting) = match self.get(fd)? {
            Descriptor::Stdin(input) => {
                let terminal = matches!(input, Input::Inherit) && std::io::stdin().is_terminal();
                (stdio_type(terminal), 0, rights::STDIO, 0)
            }
            Descriptor::Output(out) => (stdio_type(out.is_terminal()), 0, rights::STDIO, 0),
            Descriptor::File(f) => (filetype_of_std(f.file.metadata()?.file_type()), f.flags, rights::ALL, 0),
            Descriptor::Dir(_) => (filetype::DIRECTORY, 0, rights::ALL, rights::ALL),
        };
        let mut b = [0u8; layout::FDSTAT_SIZE as usize];
        b[0] = ty;
        b[2..4].copy_from_slice(&flags.to_le_bytes());
        b[8..16].copy_from_slice(&base.to_le_bytes());
        b[16..24].copy_from_slice(&inheriting.to_le_bytes());
        mem.write(fdstat_out, &b)
    }

    pub fn fd_filestat_get(&mut self, mem: &mut GuestMemory<'_>, fd: u32, filestat_out: u32) -> Result {
        let stat = match self.get(fd)? {
            Descriptor::File(f) => Filestat::of_std(&f.file.metadata()?),
            Descriptor::Dir(d) => Filestat::of_cap(&d.dir.dir_metadata()?),
            Descriptor::Stdin(_) => Filestat { filetype: filetype::CHARACTER_DEVICE, ..Filestat::default() },
            Descriptor::Output(_) => Filestat { filetype: filetype::CHARACTER_DEVICE, ..Filestat::default() },
        };
        stat.write(mem, filestat_out)
    }

    pub fn fd_filestat_set_size(&mut self, _mem: &mut GuestMemory<'_>, fd: u32, size: u64) -> Result {
        Ok(self.file(fd)?.set_len(size)?)
    }

    pub fn fd_filestat_set_times(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: u32,
        atim: u64,
        mtim: u64,
        fst_flags: u32,
    ) -> Result {
        let times = file_times(atim, mtim, fst_flags)?;
        Ok(self.file(fd)?.set_times(times)?)
    }

    pub fn fd_pread(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        offset: u64,
        nread_out: u32,
    ) -> Result {
        let want = mem.iovecs_len(iovs, iovs_len)?.min(MAX_READ);
        mem.slice(nread_out, 4)?;
        let file = self.file(fd)?;
        let mut buf = vec![0u8; want];
        let n = read_at(file, &mut buf, offset)?;
        let n = mem.scatter(iovs, iovs_len, &buf[..n])?;
        mem.write_u32(nread_out, n as u32)
    }

    pub fn fd_pwrite(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        offset: u64,
        nwritten_out: u32,
    ) -> Result {
        let data = mem.gather(iovs, iovs_len)?;
        mem.slice(nwritten_out, 4)?;
        let file = self.file(fd)?;
        write_all_at(file, &data, offset)?;
        mem.write_u32(nwritten_out, data.len() as u32)
    }

    pub fn fd_prestat_get(&mut self, mem: &mut GuestMemory<'_>, fd: u32, prestat_out: u32) -> Result {
        let name = match self.get(fd)? {
            Descriptor::Dir(OpenDir { preopen: Some(name), .. }) => name,
            _ => return Err(Errno::BADF),
        };
        let mut b = [0u8; layout::PRESTAT_SIZE as usize];
        // Tag 0: `preopentype::dir`.
        b[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
        mem.write(prestat_out, &b)
    }

    pub fn fd_prestat_dir_name(&mut self, mem: &mut GuestMemory<'_>, fd: u32, path: u32, path_len: u32) -> Result {
        let name = match self.get(fd)? {
            Descriptor::Dir(OpenDir { preopen: Some(name), .. }) => name,
            _ => return Err(Errno::BADF),
        };
        if (path_len as usize) < name.len() {
            return Err(Errno::NAMETOOLONG);
        }
        mem.write(path, name.as_bytes())
    }

    pub fn fd_read(&mut self, mem: &mut GuestMemory<'_>, fd: u32, iovs: u32, iovs_len: u32, nread_out: u32) -> Result {
        let want = mem.iovecs_len(iovs, iovs_len)?.min(MAX_READ);
        mem.slice(nread_out, 4)?;
        let mut buf = vec![0u8; want];
        let n = match self.get_mut(fd)? {
            Descriptor::Stdin(Input::Empty) => 0,
            Descriptor::Stdin(Input::Inherit) => std::io::stdin().read(&mut buf)?,
            Descriptor::Stdin(Input::Bytes(cursor)) => cursor.read(&mut buf)?,
            Descriptor::File(f) => f.file.read(&mut buf)?,
            Descriptor::Dir(_) => return Err(Errno::ISDIR),
            Descriptor::Output(_) => return Err(Errno::BADF),
        };
        let n = mem.scatter(iovs, iovs_len, &buf[..n])?;
        mem.write_u32(nread_out, n as u32)
    }

    pub fn fd_write(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        nwritten_out: u32,
    ) -> Result {
        let data = mem.gather(iovs, iovs_len)?;
        mem.slice(nwritten_out, 4)?;
        match self.get_mut(fd)? {
            Descriptor::Output(out) => out.write_all(&data)?,
            Descriptor::File(f) => f.file.write_all(&data)?,
            Descriptor::Dir(_) => return Err(Errno::ISDIR),
            Descriptor::Stdin(_) => return Err(Errno::BADF),
        }
        mem.write_u32(nwritten_out, data.len() as u32)
    }

    pub fn fd_readdir(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        buf: u32,
        buf_len: u32,
        cookie: u64,
        bufused_out: u32,
    ) -> Result {
        mem.slice(buf, buf_len)?;
        mem.slice(bufused_out, 4)?;
        let dir = self.dir(fd).map_err(|_| Errno::BADF)?;
        let entries = dir_entries(dir)?;
        // Each entry: the 24-byte `$dirent` then the name. The last one may be cut off at
        // `buf_len`; `bufused == buf_len` tells the guest to ask again.
        let mut out = Vec::new();
        let start = usize::try_from(cookie).unwrap_or(usize::MAX);
        for (i, (name, ino, ty)) in entries.iter().enumerate().skip(start) {
            if out.len() >= buf_len as usize {
                break;
            }
            let mut header = [0u8; layout::DIRENT_SIZE as usize];
            header[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            header[8..16].copy_from_slice(&ino.to_le_bytes());
            header[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
            header[20] = *ty;
            out.extend_from_slice(&header);
            out.extend_from_slice(name);
        }
        out.truncate(buf_len as usize);
        mem.write(buf, &out)?;
        mem.write_u32(bufused_out, out.len() as u32)
    }

    pub fn fd_renumber(&mut self, _mem: &mut GuestMemory<'_>, fd: u32, to: u32) -> Result {
        self.get(fd)?;
        self.get(to)?;
        if fd != to {
            let d = self.fds[fd as usize].take();
            self.fds[to as usize] = d;
        }
        Ok(())
    }

    pub fn fd_seek(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        offset: u64,
        whence: u32,
        newoffset_out: u32,
    ) -> Result {
        let offset = offset as i64;
        let pos = match u8::try_from(whence) {
            Ok(whence::SET) => SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::INVAL)?),
            Ok(whence::CUR) => SeekFrom::Current(offset),
            Ok(whence::END) => SeekFrom::End(offset),
            _ => return Err(Errno::INVAL),
        };
        mem.slice(newoffset_out, 8)?;
        let new = self.file(fd)?.seek(pos)?;
        mem.write_u64(newoffset_out, new)
    }

    pub fn fd_tell(&mut self, mem: &mut GuestMemory<'_>, fd: u32, offset_out: u32) -> Result {
        mem.slice(offset_out, 8)?;
        let pos = self.file(fd)?.stream_position()?;
        mem.write_u64(offset_out, pos)
    }

    pub fn path_create_directory(&mut self, mem: &mut GuestMemory<'_>, fd: u32, path: u32, path_len: u32) -> Result {
        let path = mem.read_str(path, path_len)?;
        Ok(self.dir(fd)?.create_dir(path)?)
    }

    pub fn path_filestat_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        flags: u32,
        path: u32,
        path_len: u32,
        filestat_out: u32,
    ) -> Result {
        let path = mem.read_str(path, path_len)?.to_owned();
        let dir = self.dir(fd)?;
        let meta =
            if flags & lookupflags::SYMLINK_FOLLOW != 0 { dir.metadata(&path)? } else { dir.symlink_metadata(&path)? };
        Filestat::of_cap(&meta).write(mem, filestat_out)
    }

    /// Sets times through a descriptor opened for the purpose; symbolic links are followed
    /// whatever `flags` says.
    pub fn path_filestat_set_times(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        _flags: u32,
        path: u32,
        path_len: u32,
        atim: u64,
        mtim: u64,
        fst_flags: u32,
    ) -> Result {
        let times = file_times(atim, mtim, fst_flags)?;
        let path = mem.read_str(path, path_len)?;
        let file = self.dir(fd)?.open(path)?.into_std();
        Ok(file.set_times(times)?)
    }

    pub fn path_link(
        &mut self,
        mem: &mut GuestMemory<'_>,
        old_fd: u32,
        _old_flags: u32,
        old_path: u32,
        old_path_len: u32,
        new_fd: u32,
        new_path: u32,
        new_path_len: u32,
    ) -> Result {
        let old_path = mem.read_str(old_path, old_path_len)?;
        let new_path = mem.read_str(new_path, new_path_len)?;
        Ok(self.dir(old_fd)?.hard_link(old_path, self.dir(new_fd)?, new_path)?)
    }

    /// Opens a file or directory below the directory `fd`. Access follows the requested
    /// rights (read unless only write rights are asked for). Symbolic links are followed
    /// inside the sandbox whatever `dirflags` says.
    pub fn path_open(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        _dirflags: u32,
        path: u32,
        path_len: u32,
        oflags: u32,
        rights_base: u64,
        _rights_inheriting: u64,
        fdflags: u32,
        fd_out: u32,
    ) -> Result {
        let path = mem.read_str(path, path_len)?.to_owned();
        mem.slice(fd_out, 4)?;
        let oflags = u16::try_from(oflags).map_err(|_| Errno::INVAL)?;
        let fdflags = u16::try_from(fdflags).map_err(|_| Errno::INVAL)?;
        let dir = self.dir(fd)?;
        let descriptor = if oflags & oflags::DIRECTORY != 0 {
            if oflags & (oflags::CREAT | oflags::TRUNC) != 0 {
                return Err(Errno::INVAL);
            }
            Descriptor::Dir(OpenDir { dir: dir.open_dir(&path)?, preopen: None })
        } else {
            let write = rights_base & (rights::FD_WRITE | rights::FD_ALLOCATE | rights::FD_FILESTAT_SET_SIZE) != 0
                || oflags & (oflags::CREAT | oflags::TRUNC) != 0
                || fdflags & fdflags::APPEND != 0;
            let read = rights_base & (rights::FD_READ | rights::FD_READDIR) != 0 || !write;
            let mut opts = cap_std::fs::OpenOptions::new();
            opts.read(read).write(write);
            if fdflags & fdflags::APPEND != 0 {
                opts.append(true);
            }
            if oflags & oflags::CREAT != 0 {
                if oflags & oflags::EXCL != 0 {
                    opts.create_new(true);
                } else {
                    opts.create(true);
                }
            }
            if oflags & oflags::TRUNC != 0 {
                opts.truncate(true);
            }
            let file = dir.open_with(&path, &opts)?.into_std();
            if !write && file.metadata()?.is_dir() {
                // `open(dir, O_RDONLY)` without `O_DIRECTORY`: still a directory.
                Descriptor::Dir(OpenDir { dir: cap_std::fs::Dir::from_std_file(file), preopen: None })
            } else {
                Descriptor::File(OpenFile { file, flags: fdflags & fdflags::APPEND })
            }
        };
        let new_fd = self.insert(descriptor)?;
        mem.write_u32(fd_out, new_fd)
    }

    pub fn path_readlink(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        path: u32,
        path_len: u32,
        buf: u32,
        buf_len: u32,
        bufused_out: u32,
    ) -> Result {
        let path = mem.read_str(path, path_len)?;
        let target = self.dir(fd)?.read_link_contents(path)?;
        let bytes = path_bytes(target.as_os_str());
        let n = bytes.len().min(buf_len as usize);
        mem.write(buf, &bytes[..n])?;
        mem.write_u32(bufused_out, n as u32)
    }

    pub fn path_remove_directory(&mut self, mem: &mut GuestMemory<'_>, fd: u32, path: u32, path_len: u32) -> Result {
        let path = mem.read_str(path, path_len)?;
        Ok(self.dir(fd)?.remove_dir(path)?)
    }

    pub fn path_rename(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        old_path: u32,
        old_path_len: u32,
        new_fd: u32,
        new_path: u32,
        new_path_len: u32,
    ) -> Result {
        let old_path = mem.read_str(old_path, old_path_len)?;
        let new_path = mem.read_str(new_path, new_path_len)?;
        Ok(self.dir(fd)?.rename(old_path, self.dir(new_fd)?, new_path)?)
    }

    pub fn path_symlink(
        &mut self,
        mem: &mut GuestMemory<'_>,
        old_path: u32,
        old_path_len: u32,
        fd: u32,
        new_path: u32,
        new_path_len: u32,
    ) -> Result {
        let old_path = mem.read_str(old_path, old_path_len)?;
        let new_path = mem.read_str(new_path, new_path_len)?;
        #[cfg(unix)]
        {
            Ok(self.dir(fd)?.symlink(old_path, new_path)?)
        }
        #[cfg(not(unix))]
        {
            let _ = (fd, old_path, new_path);
            Err(Errno::NOSYS)
        }
    }

    pub fn path_unlink_file(&mut self, mem: &mut GuestMemory<'_>, fd: u32, path: u32, path_len: u32) -> Result {
        let path = mem.read_str(path, path_len)?;
        Ok(self.dir(fd)?.remove_file(path)?)
    }

    /// Clock subscriptions sleep until the earliest deadline; descriptor subscriptions
    /// are reported ready at once (reads and writes never block for long here).
    pub fn poll_oneoff(
        &mut self,
        mem: &mut GuestMemory<'_>,
        subscriptions: u32,
        events: u32,
        nsubscriptions: u32,
        nevents_out: u32,
    ) -> Result {
        if nsubscriptions == 0 {
            return Err(Errno::INVAL);
        }
        let size = nsubscriptions.checked_mul(layout::SUBSCRIPTION_SIZE).ok_or(Errno::FAULT)?;
        mem.slice(subscriptions, size)?;
        mem.slice(events, nsubscriptions.checked_mul(layout::EVENT_SIZE).ok_or(Errno::FAULT)?)?;
        mem.slice(nevents_out, 4)?;

        struct Sub {
            userdata: u64,
            tag: u8,
            fd: u32,
            deadline_ns: u64,
            clock_error: Option<Errno>,
        }
        let mut subs = Vec::with_capacity(nsubscriptions as usize);
        for i in 0..nsubscriptions {
            let s = subscriptions + i * layout::SUBSCRIPTION_SIZE;
            let userdata = mem.read_u64(s)?;
            let tag = mem.read_u8(s + 8)?;
            let mut sub = Sub { userdata, tag, fd: 0, deadline_ns: 0, clock_error: None };
            match tag {
                event::CLOCK => {
                    let id = mem.read_u32(s + 16)?;
                    let timeout = mem.read_u64(s + 24)?;
                    let flags = mem.read_u16(s + 40)?;
                    match clock_now(id) {
                        Ok(now) => {
                            sub.deadline_ns = if flags & event::SUBSCRIPTION_CLOCK_ABSTIME != 0 {
                                timeout.saturating_sub(now)
                            } else {
                                timeout
                            }
                        }
                        Err(e) => sub.clock_error = Some(e),
                    }
                }
                event::FD_READ | event::FD_WRITE => sub.fd = mem.read_u32(s + 16)?,
                _ => return Err(Errno::INVAL),
            }
            subs.push(sub);
        }

        let any_ready_now = subs.iter().any(|s| s.tag != event::CLOCK || s.clock_error.is_some());
        let wait_ns = if any_ready_now { 0 } else { subs.iter().map(|s| s.deadline_ns).min().unwrap_or(0) };
        if wait_ns > 0 {
            std::thread::sleep(Duration::from_nanos(wait_ns));
        }

        let mut n = 0u32;
        for s in &subs {
            let (error, nbytes) = match s.tag {
                event::CLOCK => match s.clock_error {
                    Some(e) => (e, 0),
                    None if s.deadline_ns <= wait_ns => (Errno::SUCCESS, 0),
                    None => continue,
                },
                _ => match self.get(s.fd) {
                    Ok(Descriptor::File(f)) if s.tag == event::FD_READ => {
                        let len = f.file.metadata().map(|m| m.len()).unwrap_or(0);
                        let pos = (&f.file).stream_position().unwrap_or(len);
                        (Errno::SUCCESS, len.saturating_sub(pos))
                    }
                    Ok(_) => (Errno::SUCCESS, 0),
                    Err(e) => (e, 0),
                },
            };
            let e = events + n * layout::EVENT_SIZE;
            let mut b = [0u8; layout::EVENT_SIZE as usize];
            b[0..8].copy_from_slice(&s.userdata.to_le_bytes());
            b[8..10].copy_from_slice(&error.0.to_le_bytes());
            b[10] = s.tag;
            b[16..24].copy_from_slice(&nbytes.to_le_bytes());
            mem.write(e, &b)?;
            n += 1;
        }
        mem.write_u32(nevents_out, n)
    }

    pub fn sched_yield(&mut self, _mem: &mut GuestMemory<'_>) -> Result {
        std::thread::yield_now();
        Ok(())
    }

    pub fn random_get(&mut self, mem: &mut GuestMemory<'_>, buf: u32, buf_len: u32) -> Result {
        getrandom::fill(mem.slice_mut(buf, buf_len)?).map_err(|_| Errno::IO)
    }
}

/// `std` file times from `fd_filestat_set_times` arguments (`$fstflags`).
fn file_times(atim: u64, mtim: u64, fst_flags: u32) -> Result<std::fs::FileTimes> {
    const ATIM: u32 = 1;
    const ATIM_NOW: u32 = 2;
    const MTIM: u32 = 4;
    const MTIM_NOW: u32 = 8;
    if fst_flags & !(ATIM | ATIM_NOW | MTIM | MTIM_NOW) != 0
        || fst_flags & (ATIM | ATIM_NOW) == ATIM | ATIM_NOW
        || fst_flags & (MTIM | MTIM_NOW) == MTIM | MTIM_NOW
    {
        return Err(Errno::INVAL);
    }
    let mut times = std::fs::FileTimes::new();
    let now = SystemTime::now();
    if fst_flags & ATIM != 0 {
        times = times.set_accessed(UNIX_EPOCH + Duration::from_nanos(atim));
    } else if fst_flags & ATIM_NOW != 0 {
        times = times.set_accessed(now);
    }
    if fst_flags & MTIM != 0 {
        times = times.set_modified(UNIX_EPOCH + Duration::from_nanos(mtim));
    } else if fst_flags & MTIM_NOW != 0 {
        times = times.set_modified(now);
    }
    Ok(times)
}

/// The entries of a directory for `fd_readdir`: `.`, `..`, then the rest sorted by name
/// (so that cookies, which are indices, stay meaningful between calls).
fn dir_entries(dir: &cap_std::fs::Dir) -> Result<Vec<(Vec<u8>, u64, u8)>> {
    #[cfg(unix)]
    use std::os::unix::fs::DirEntryExt;
    let self_ino = Filestat::of_cap(&dir.dir_metadata()?).ino;
    let mut rest = Vec::new();
    for entry in dir.entries()? {
        let entry = entry?;
        let ty = entry.file_type().map(filetype_of_cap).unwrap_or(filetype::UNKNOWN);
        #[cfg(unix)]
        let ino = entry.ino();
        #[cfg(not(unix))]
        let ino = 0;
        rest.push((path_bytes(&entry.file_name()), ino, ty));
    }
    rest.sort();
    let mut all = vec![(b".".to_vec(), self_ino, filetype::DIRECTORY), (b"..".to_vec(), 0, filetype::DIRECTORY)];
    all.extend(rest);
    Ok(all)
}

fn path_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        s.as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        s.to_string_lossy().into_owned().into_bytes()
    }
}

fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        let _ = (file, buf, offset);
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

fn write_all_at(file: &std::fs::File, data: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, data, offset)
    }
    #[cfg(not(unix))]
    {
        let _ = (file, data, offset);
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

#[cfg(test)]
#[path = "preview1_tests.rs"]
mod tests;
