//! Unit tests of the preview1 methods against a plain byte buffer as guest memory.

use super::*;
use crate::ctx::OutputBuffer;

const MEM: usize = 64 * 1024;

struct Guest {
    cx: WasiCtx,
    mem: Vec<u8>,
}

impl Guest {
    fn new(cx: WasiCtx) -> Guest {
        Guest { cx, mem: vec![0; MEM] }
    }

    fn m(&mut self) -> (&mut WasiCtx, GuestMemory<'_>) {
        (&mut self.cx, GuestMemory::new(&mut self.mem))
    }

    fn put(&mut self, ptr: u32, bytes: &[u8]) {
        self.mem[ptr as usize..ptr as usize + bytes.len()].copy_from_slice(bytes);
    }

    fn u32_at(&self, ptr: u32) -> u32 {
        u32::from_le_bytes(self.mem[ptr as usize..ptr as usize + 4].try_into().unwrap())
    }

    fn u64_at(&self, ptr: u32) -> u64 {
        u64::from_le_bytes(self.mem[ptr as usize..ptr as usize + 8].try_into().unwrap())
    }

    /// One iovec at 0x100 for `len` bytes at `buf`.
    fn iov(&mut self, buf: u32, len: u32) -> u32 {
        self.put(0x100, &buf.to_le_bytes());
        self.put(0x104, &len.to_le_bytes());
        0x100
    }

    fn write_str(&mut self, fd: u32, s: &str) -> Result<u32> {
        self.put(0x1000, s.as_bytes());
        let iov = self.iov(0x1000, s.len() as u32);
        let (cx, mut mem) = self.m();
        cx.fd_write(&mut mem, fd, iov, 1, 0x200)?;
        Ok(self.u32_at(0x200))
    }

    fn read(&mut self, fd: u32, len: u32) -> Result<Vec<u8>> {
        let iov = self.iov(0x2000, len);
        let (cx, mut mem) = self.m();
        cx.fd_read(&mut mem, fd, iov, 1, 0x200)?;
        let n = self.u32_at(0x200) as usize;
        Ok(self.mem[0x2000..0x2000 + n].to_vec())
    }

    fn open(&mut self, dirfd: u32, path: &str, oflags: u16, rights: u64, fdflags: u16) -> Result<u32> {
        self.put(0x3000, path.as_bytes());
        let (cx, mut mem) = self.m();
        cx.path_open(&mut mem, dirfd, 1, 0x3000, path.len() as u32, oflags.into(), rights, 0, fdflags.into(), 0x204)?;
        Ok(self.u32_at(0x204))
    }

    fn path_op(&mut self, path: &str, op: fn(&mut WasiCtx, &mut GuestMemory<'_>, u32, u32, u32) -> Result) -> Result {
        self.put(0x3000, path.as_bytes());
        let (cx, mut mem) = self.m();
        op(cx, &mut mem, 3, 0x3000, path.len() as u32)
    }
}

#[test]
fn args_and_environ() {
    let mut g = Guest::new(WasiCtx::builder().args(["prog", "a b"]).env("K", "V").env("X", "").build());
    let (cx, mut mem) = g.m();
    cx.args_sizes_get(&mut mem, 0, 4).unwrap();
    cx.args_get(&mut mem, 16, 64).unwrap();
    cx.environ_sizes_get(&mut mem, 8, 12).unwrap();
    cx.environ_get(&mut mem, 32, 128).unwrap();
    assert_eq!((g.u32_at(0), g.u32_at(4)), (2, 9));
    assert_eq!((g.u32_at(16), g.u32_at(20)), (64, 69));
    assert_eq!(&g.mem[64..73], b"prog\0a b\0");
    assert_eq!((g.u32_at(8), g.u32_at(12)), (2, 7));
    assert_eq!(&g.mem[128..135], b"K=V\0X=\0");
    // Pointers out of bounds fault.
    let (cx, mut mem) = g.m();
    assert_eq!(cx.args_get(&mut mem, MEM as u32 - 4, 64), Err(Errno::FAULT));
    assert_eq!(cx.args_get(&mut mem, 16, MEM as u32 - 3), Err(Errno::FAULT));
    assert_eq!(cx.args_sizes_get(&mut mem, u32::MAX, 0), Err(Errno::FAULT));
}

#[test]
fn stdio_capture_and_stdin_bytes() {
    let out = OutputBuffer::new();
    let err = OutputBuffer::new();
    let mut g = Guest::new(
        WasiCtx::builder().stdout_capture(out.clone()).stderr_capture(err.clone()).stdin_bytes(&b"input!"[..]).build(),
    );
    assert_eq!(g.write_str(1, "hello "), Ok(6));
    assert_eq!(g.write_str(1, "world\n"), Ok(6));
    assert_eq!(g.write_str(2, "oops"), Ok(4));
    assert_eq!(out.contents_string(), "hello world\n");
    assert_eq!(err.contents(), b"oops");
    assert_eq!(g.read(0, 4).unwrap(), b"inpu");
    assert_eq!(g.read(0, 100).unwrap(), b"t!");
    assert_eq!(g.read(0, 100).unwrap(), b"");
    // Bad descriptors and bad pointers.
    assert_eq!(g.write_str(0, "x"), Err(Errno::BADF));
    assert_eq!(g.write_str(9, "x"), Err(Errno::BADF));
    let (cx, mut mem) = g.m();
    assert_eq!(cx.fd_write(&mut mem, 1, MEM as u32, 1, 0x200), Err(Errno::FAULT));
    assert_eq!(cx.fd_write(&mut mem, 1, 0x100, 1, MEM as u32), Err(Errno::FAULT));
    // Stdio cannot seek.
    assert_eq!(cx.fd_seek(&mut mem, 1, 0, 0, 0x300), Err(Errno::SPIPE));
    assert_eq!(cx.fd_tell(&mut mem, 1, 0x300), Err(Errno::SPIPE));
    // fdstat of a captured stream: not a terminal, no seek rights.
    cx.fd_fdstat_get(&mut mem, 1, 0x400).unwrap();
    assert_eq!(g.mem[0x400], filetype::UNKNOWN);
    assert_eq!(g.u64_at(0x408) & (rights::FD_SEEK | rights::FD_TELL), 0);
    assert_eq!(out.take(), b"hello world\n");
    assert!(out.contents().is_empty());
}

#[test]
fn no_preopens_means_badf_at_3() {
    let mut g = Guest::new(WasiCtx::builder().build());
    let (cx, mut mem) = g.m();
    assert_eq!(cx.fd_prestat_get(&mut mem, 3, 0), Err(Errno::BADF));
    assert_eq!(cx.fd_prestat_get(&mut mem, 1, 0), Err(Errno::BADF));
    assert_eq!(cx.fd_close(&mut mem, 3), Err(Errno::BADF));
    assert_eq!(cx.fd_close(&mut mem, 2), Ok(()));
    assert_eq!(cx.fd_close(&mut mem, 2), Err(Errno::BADF));
}

#[test]
fn files_in_a_preopened_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("existing.txt"), b"0123456789").unwrap();
    let mut b = WasiCtx::builder();
    b.preopened_dir_path(tmp.path(), "/sandbox").unwrap();
    let mut g = Guest::new(b.build());

    // The preopen: prestat (tag 0, name length) and its name.
    let (cx, mut mem) = g.m();
    cx.fd_prestat_get(&mut mem, 3, 0x10).unwrap();
    assert_eq!(g.mem[0x10], 0);
    assert_eq!(g.u32_at(0x14), 8);
    let (cx, mut mem) = g.m();
    assert_eq!(cx.fd_prestat_dir_name(&mut mem, 3, 0x20, 7), Err(Errno::NAMETOOLONG));
    cx.fd_prestat_dir_name(&mut mem, 3, 0x20, 8).unwrap();
    assert_eq!(&g.mem[0x20..0x28], b"/sandbox");
    assert_eq!(cx_fdstat_type(&mut g, 3), filetype::DIRECTORY);

    // Read, seek, tell, pread.
    let fd = g.open(3, "existing.txt", 0, rights::FD_READ | rights::FD_SEEK, 0).unwrap();
    assert_eq!(fd, 4);
    assert_eq!(cx_fdstat_type(&mut g, fd), filetype::REGULAR_FILE);
    assert_eq!(g.read(fd, 4).unwrap(), b"0123");
    let (cx, mut mem) = g.m();
    cx.fd_tell(&mut mem, fd, 0x300).unwrap();
    assert_eq!(g.u64_at(0x300), 4);
    let (cx, mut mem) = g.m();
    cx.fd_seek(&mut mem, fd, (-2i64) as u64, whence::END.into(), 0x300).unwrap();
    assert_eq!(g.u64_at(0x300), 8);
    assert_eq!(g.read(fd, 100).unwrap(), b"89");
    let (cx, mut mem) = g.m();
    assert_eq!(cx.fd_seek(&mut mem, fd, (-1i64) as u64, whence::SET.into(), 0x300), Err(Errno::INVAL));
    assert_eq!(cx.fd_seek(&mut mem, fd, 0, 7, 0x300), Err(Errno::INVAL));
    let iov = g.iov(0x2000, 3);
    let (cx, mut mem) = g.m();
    cx.fd_pread(&mut mem, fd, iov, 1, 5, 0x200).unwrap();
    assert_eq!(&g.mem[0x2000..0x2003], b"567");
    let (cx, mut mem) = g.m();
    cx.fd_filestat_get(&mut mem, fd, 0x500).unwrap();
    assert_eq!(g.mem[0x500 + 16], filetype::REGULAR_FILE);
    assert_eq!(g.u64_at(0x500 + 32), 10);
    assert_eq!(g.u64_at(0x500 + 24), 1);
    let (cx, mut mem) = g.m();
    cx.fd_close(&mut mem, fd).unwrap();

    // Create, write, append.
    let fd = g.open(3, "new.txt", oflags::CREAT | oflags::EXCL, rights::FD_WRITE, 0).unwrap();
    assert_eq!(g.write_str(fd, "abc"), Ok(3));
    assert_eq!(g.open(3, "new.txt", oflags::CREAT | oflags::EXCL, rights::FD_WRITE, 0), Err(Errno::EXIST));
    let fd2 = g.open(3, "new.txt", 0, rights::FD_WRITE, fdflags::APPEND).unwrap();
    assert_eq!(g.write_str(fd2, "def"), Ok(3));
    let (cx, mut mem) = g.m();
    cx.fd_fdstat_get(&mut mem, fd2, 0x400).unwrap();
    assert_eq!(u16::from_le_bytes([g.mem[0x402], g.mem[0x403]]), fdflags::APPEND);
    assert_eq!(std::fs::read(tmp.path().join("new.txt")).unwrap(), b"abcdef");
    let fd3 = g.open(3, "new.txt", oflags::TRUNC, rights::FD_WRITE, 0).unwrap();
    assert_eq!(std::fs::read(tmp.path().join("new.txt")).unwrap(), b"");
    for fd in [fd, fd2, fd3] {
        let (cx, mut mem) = g.m();
        cx.fd_close(&mut mem, fd).unwrap();
    }
    assert_eq!(g.open(3, "missing.txt", 0, rights::FD_READ, 0), Err(Errno::NOENT));

    // Directories: create, stat, open, list, remove.
    g.path_op("sub", WasiCtx::path_create_directory).unwrap();
    assert_eq!(g.path_op("sub", WasiCtx::path_create_directory), Err(Errno::EXIST));
    assert!(tmp.path().join("sub").is_dir());
    g.put(0x3000, b"sub");
    let (cx, mut mem) = g.m();
    cx.path_filestat_get(&mut mem, 3, lookupflags::SYMLINK_FOLLOW, 0x3000, 3, 0x500).unwrap();
    assert_eq!(g.mem[0x500 + 16], filetype::DIRECTORY);
    let sub = g.open(3, "sub", oflags::DIRECTORY, rights::FD_READDIR, 0).unwrap();
    assert_eq!(g.open(3, "existing.txt", oflags::DIRECTORY, 0, 0), Err(Errno::NOTDIR));
    let f = g.open(sub, "inner", oflags::CREAT, rights::FD_WRITE, 0).unwrap();
    let (cx, mut mem) = g.m();
    cx.fd_close(&mut mem, f).unwrap();
    assert!(tmp.path().join("sub/inner").is_file());
    let (cx, mut mem) = g.m();
    cx.fd_readdir(&mut mem, 3, 0x4000, 4096, 0, 0x200).unwrap();
    let used = g.u32_at(0x200);
    let names = dirent_names(&g.mem[0x4000..0x4000 + used as usize]);
    assert_eq!(names, [".", "..", "existing.txt", "new.txt", "sub"]);
    // A small buffer is filled completely; the cookie resumes after the last full entry.
    let (cx, mut mem) = g.m();
    cx.fd_readdir(&mut mem, 3, 0x4000, 30, 2, 0x200).unwrap();
    assert_eq!(g.u32_at(0x200), 30);
    assert_eq!(g.u64_at(0x4000), 3);
    assert_eq!(g.mem[0x4000 + 24..0x4000 + 30], *b"existi");
    assert_eq!(g.path_op("sub", WasiCtx::path_remove_directory), Err(Errno::NOTEMPTY));

    // Rename and unlink.
    g.put(0x3000, b"new.txt");
    g.put(0x3100, b"sub/renamed.txt");
    let (cx, mut mem) = g.m();
    cx.path_rename(&mut mem, 3, 0x3000, 7, 3, 0x3100, 15).unwrap();
    assert!(tmp.path().join("sub/renamed.txt").is_file());
    g.path_op("sub/renamed.txt", WasiCtx::path_unlink_file).unwrap();
    g.path_op("sub/inner", WasiCtx::path_unlink_file).unwrap();
    g.path_op("sub", WasiCtx::path_remove_directory).unwrap();
    assert!(!tmp.path().join("sub").exists());
    assert_eq!(g.path_op("sub", WasiCtx::path_unlink_file), Err(Errno::NOENT));
}

#[test]
fn paths_cannot_escape_the_preopen() {
    let outer = tempfile::tempdir().unwrap();
    std::fs::create_dir(outer.path().join("inner")).unwrap();
    std::fs::write(outer.path().join("secret"), b"no").unwrap();
    let mut b = WasiCtx::builder();
    b.preopened_dir_path(outer.path().join("inner"), ".").unwrap();
    let mut g = Guest::new(b.build());
    for path in ["../secret", "/etc/passwd", "a/../../secret"] {
        let e = g.open(3, path, 0, rights::FD_READ, 0).unwrap_err();
        assert!(matches!(e, Errno::NOTCAPABLE | Errno::PERM | Errno::NOENT), "{path}: {e:?}");
    }
    assert!(g.path_op("../escaped", WasiCtx::path_create_directory).is_err());
    assert!(!outer.path().join("escaped").exists());
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("../secret", outer.path().join("inner/link")).unwrap();
        assert!(g.open(3, "link", 0, rights::FD_READ, 0).is_err());
    }
}

#[test]
fn clocks_random_yield_and_poll() {
    let mut g = Guest::new(WasiCtx::builder().build());
    let (cx, mut mem) = g.m();
    cx.clock_time_get(&mut mem, clockid::REALTIME, 0, 0).unwrap();
    cx.clock_time_get(&mut mem, clockid::MONOTONIC, 0, 8).unwrap();
    cx.clock_res_get(&mut mem, clockid::MONOTONIC, 16).unwrap();
    assert_eq!(cx.clock_time_get(&mut mem, 99, 0, 0), Err(Errno::INVAL));
    assert_eq!(cx.clock_time_get(&mut mem, clockid::REALTIME, 0, MEM as u32 - 7), Err(Errno::FAULT));
    cx.sched_yield(&mut mem).unwrap();
    cx.random_get(&mut mem, 0x100, 64).unwrap();
    assert_eq!(cx.random_get(&mut mem, MEM as u32 - 8, 64), Err(Errno::FAULT));
    assert!(g.u64_at(0) > 1_600_000_000_000_000_000);
    assert!(g.u64_at(8) > 0);
    assert_eq!(g.u64_at(16), 1);
    assert!(g.mem[0x100..0x140].iter().any(|&b| b != 0));

    // A 2 ms relative clock subscription.
    g.put(0x1000, &7u64.to_le_bytes());
    g.mem[0x1008] = event::CLOCK;
    g.put(0x1010, &clockid::MONOTONIC.to_le_bytes());
    g.put(0x1018, &2_000_000u64.to_le_bytes());
    let t = Instant::now();
    let (cx, mut mem) = g.m();
    cx.poll_oneoff(&mut mem, 0x1000, 0x2000, 1, 0x200).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(2));
    assert_eq!(g.u32_at(0x200), 1);
    assert_eq!(g.u64_at(0x2000), 7);
    assert_eq!(g.mem[0x200a], event::CLOCK);
    let (cx, mut mem) = g.m();
    assert_eq!(cx.poll_oneoff(&mut mem, 0x1000, 0x2000, 0, 0x200), Err(Errno::INVAL));
}

fn cx_fdstat_type(g: &mut Guest, fd: u32) -> u8 {
    let (cx, mut mem) = g.m();
    cx.fd_fdstat_get(&mut mem, fd, 0x400).unwrap();
    g.mem[0x400]
}

fn dirent_names(mut buf: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    while buf.len() >= 24 {
        let len = u32::from_le_bytes(buf[16..20].try_into().unwrap()) as usize;
        names.push(String::from_utf8(buf[24..24 + len].to_vec()).unwrap());
        buf = &buf[24 + len..];
    }
    names
}
