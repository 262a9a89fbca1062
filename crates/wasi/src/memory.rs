//! Bounds-checked access to a guest's linear memory.
//!
//! Every guest pointer a WASI function receives is untrusted. [`GuestMemory`] wraps the
//! memory's bytes for the duration of one host call and turns every out-of-bounds
//! access into [`Errno::FAULT`]; nothing here panics or reads outside the slice.
//! Multi-byte values are little-endian, as in Wasm. Alignment is not checked.

use crate::errno::Errno;

/// The linear memory of the calling instance, borrowed for one host call.
pub struct GuestMemory<'a> {
    bytes: &'a mut [u8],
}

/// One `iovec`/`ciovec` (8 bytes: `buf: u32`, `buf_len: u32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoVec {
    pub buf: u32,
    pub len: u32,
}

impl<'a> GuestMemory<'a> {
    pub fn new(bytes: &'a mut [u8]) -> GuestMemory<'a> {
        GuestMemory { bytes }
    }

    /// The memory's size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn range(&self, ptr: u32, len: u64) -> Result<core::ops::Range<usize>, Errno> {
        let start = u64::from(ptr);
        let end = start.checked_add(len).ok_or(Errno::FAULT)?;
        if end > self.bytes.len() as u64 {
            return Err(Errno::FAULT);
        }
        Ok(start as usize..end as usize)
    }

    /// `len` bytes at `ptr`.
    pub fn slice(&self, ptr: u32, len: u32) -> Result<&[u8], Errno> {
        let r = self.range(ptr, u64::from(len))?;
        Ok(&self.bytes[r])
    }

    /// `len` writable bytes at `ptr`.
    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> Result<&mut [u8], Errno> {
        let r = self.range(ptr, u64::from(len))?;
        Ok(&mut self.bytes[r])
    }

    fn array<const N: usize>(&self, ptr: u32) -> Result<[u8; N], Errno> {
        let r = self.range(ptr, N as u64)?;
        let mut out = [0; N];
        out.copy_from_slice(&self.bytes[r]);
        Ok(out)
    }

    pub fn read_u8(&self, ptr: u32) -> Result<u8, Errno> {
        Ok(self.array::<1>(ptr)?[0])
    }

    pub fn read_u16(&self, ptr: u32) -> Result<u16, Errno> {
        Ok(u16::from_le_bytes(self.array(ptr)?))
    }

    pub fn read_u32(&self, ptr: u32) -> Result<u32, Errno> {
        Ok(u32::from_le_bytes(self.array(ptr)?))
    }

    pub fn read_u64(&self, ptr: u32) -> Result<u64, Errno> {
        Ok(u64::from_le_bytes(self.array(ptr)?))
    }

    /// Copies `data` to `ptr`.
    pub fn write(&mut self, ptr: u32, data: &[u8]) -> Result<(), Errno> {
        let r = self.range(ptr, data.len() as u64)?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }

    pub fn write_u8(&mut self, ptr: u32, v: u8) -> Result<(), Errno> {
        self.write(ptr, &[v])
    }

    pub fn write_u16(&mut self, ptr: u32, v: u16) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    pub fn write_u32(&mut self, ptr: u32, v: u32) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    pub fn write_u64(&mut self, ptr: u32, v: u64) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    /// A guest string (`path`, `path_len`): must be in bounds ([`Errno::FAULT`]) and UTF-8
    /// ([`Errno::ILSEQ`]).
    pub fn read_str(&self, ptr: u32, len: u32) -> Result<&str, Errno> {
        core::str::from_utf8(self.slice(ptr, len)?).map_err(|_| Errno::ILSEQ)
    }

    /// The `count` iovecs at `ptr`. The buffers they describe are checked when used.
    pub fn read_iovecs(&self, ptr: u32, count: u32) -> Result<Vec<IoVec>, Errno> {
        let table = self.slice(ptr, count.checked_mul(8).ok_or(Errno::FAULT)?)?;
        Ok(table
            .chunks_exact(8)
            .map(|c| IoVec {
                buf: u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                len: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect())
    }

    /// The bytes the `ciovec`s at `ptr` describe, concatenated (what `fd_write` writes).
    pub fn gather(&self, ptr: u32, count: u32) -> Result<Vec<u8>, Errno> {
        let iovs = self.read_iovecs(ptr, count)?;
        let mut out = Vec::new();
        for iov in iovs {
            out.extend_from_slice(self.slice(iov.buf, iov.len)?);
        }
        Ok(out)
    }

    /// Copies `data` into the `iovec`s at `ptr` in order and returns how many bytes fit.
    /// Every iovec is checked before anything is written.
    pub fn scatter(&mut self, ptr: u32, count: u32, data: &[u8]) -> Result<usize, Errno> {
        let iovs = self.read_iovecs(ptr, count)?;
        for iov in &iovs {
            self.range(iov.buf, u64::from(iov.len))?;
        }
        let mut done = 0;
        for iov in iovs {
            if done == data.len() {
                break;
            }
            let n = (iov.len as usize).min(data.len() - done);
            self.write(iov.buf, &data[done..done + n])?;
            done += n;
        }
        Ok(done)
    }

    /// The total length of the `iovec`s at `ptr`, each checked to be in bounds.
    pub fn iovecs_len(&self, ptr: u32, count: u32) -> Result<usize, Errno> {
        let mut total = 0usize;
        for iov in self.read_iovecs(ptr, count)? {
            self.range(iov.buf, u64::from(iov.len))?;
            total = total.saturating_add(iov.len as usize);
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_are_little_endian_and_bounds_checked() {
        let mut bytes = vec![0u8; 16];
        let mut m = GuestMemory::new(&mut bytes);
        m.write_u32(0, 0x0403_0201).unwrap();
        m.write_u64(8, 0x0807_0605_0403_0201).unwrap();
        assert_eq!(m.read_u8(0), Ok(1));
        assert_eq!(m.read_u16(0), Ok(0x0201));
        assert_eq!(m.read_u32(0), Ok(0x0403_0201));
        assert_eq!(m.read_u64(8), Ok(0x0807_0605_0403_0201));
        assert_eq!(m.read_u32(13), Err(Errno::FAULT));
        assert_eq!(m.read_u64(9), Err(Errno::FAULT));
        assert_eq!(m.write_u32(13, 0), Err(Errno::FAULT));
        assert_eq!(m.write_u32(u32::MAX, 0), Err(Errno::FAULT));
        assert_eq!(m.slice(u32::MAX, u32::MAX), Err(Errno::FAULT));
        assert_eq!(m.slice(16, 0), Ok(&[][..]));
        assert_eq!(m.slice(17, 0), Err(Errno::FAULT));
        assert_eq!(bytes[..4], [1, 2, 3, 4]);
    }

    #[test]
    fn strings_must_be_utf8() {
        let mut bytes = b"ok\xff".to_vec();
        let m = GuestMemory::new(&mut bytes);
        assert_eq!(m.read_str(0, 2), Ok("ok"));
        assert_eq!(m.read_str(0, 3), Err(Errno::ILSEQ));
        assert_eq!(m.read_str(2, 5), Err(Errno::FAULT));
    }

    #[test]
    fn gather_and_scatter_follow_the_iovecs() {
        let mut bytes = vec![0u8; 64];
        let mut m = GuestMemory::new(&mut bytes);
        m.write(32, b"hello world").unwrap();
        // Two iovecs: "hello" and " world".
        m.write_u32(0, 32).unwrap();
        m.write_u32(4, 5).unwrap();
        m.write_u32(8, 37).unwrap();
        m.write_u32(12, 6).unwrap();
        assert_eq!(m.gather(0, 2).unwrap(), b"hello world");
        assert_eq!(m.iovecs_len(0, 2), Ok(11));
        assert_eq!(m.scatter(0, 2, b"HELLO").unwrap(), 5);
        assert_eq!(m.gather(0, 2).unwrap(), b"HELLO world");
        assert_eq!(m.scatter(0, 2, b"abcdefghijklmnop").unwrap(), 11);
        assert_eq!(m.gather(0, 2).unwrap(), b"abcdefghijk");
        // A bad buffer pointer faults and writes nothing.
        m.write_u32(12, 1000).unwrap();
        assert_eq!(m.gather(0, 2), Err(Errno::FAULT));
        assert_eq!(m.scatter(0, 2, b"zzzzz"), Err(Errno::FAULT));
        assert_eq!(m.gather(0, 1).unwrap(), b"abcde");
        // A bad iovec table faults.
        assert_eq!(m.read_iovecs(60, 1), Err(Errno::FAULT));
        assert_eq!(m.read_iovecs(0, u32::MAX), Err(Errno::FAULT));
    }
}
