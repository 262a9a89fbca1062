//! [`DiskStore`]: a persistent store under one directory, shared safely by concurrent
//! threads and processes.
//!
//! # Layout
//! ```text
//!  <dir>/ab/abcdef0123...(64 hex digits).entry     one entry per key, sharded by prefix
//!  <dir>/ab/.tmp-<pid>-<n>-<key prefix>            an entry being written
//!
//!  entry file = header (60 bytes) + payload
//!    0  magic     8   "qbcache\0"
//!    8  version   4   u32 LE, DISK_FORMAT
//!   12  key      32   the full key
//!   44  length    8   u64 LE, payload bytes
//!   52  checksum  8   the first 8 bytes of SHA-256(payload)
//! ```
//!
//! # Invariants
//! - **No torn entries.** An entry is written to a temporary file in its shard directory
//!   and renamed over the final name (atomic on POSIX file systems): readers, in this or
//!   another process, see the old file or the new one, never a mix.
//! - **Damage is a miss.** A read checks every header field against the file and the
//!   key, and the checksum against the payload; any mismatch (truncated, flipped bytes,
//!   another key's file, another format version) returns `None` and deletes the file.
//!   An I/O error is a miss; a failed write leaves no entry. The store never fails a
//!   compile.
//! - **Bounded size.** The store tracks its total size in memory (scanning the directory
//!   at the first write, then every [`RESCAN_EVERY`] writes, since other processes write
//!   too); when the total exceeds the bound it deletes the least recently used entries
//!   (by modification time, which a read refreshes when it is older than
//!   [`TOUCH_AFTER`]) down to 90% of the bound.

use crate::{CacheStats, CacheStore};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The on-disk entry format version (the header's `version`).
pub const DISK_FORMAT: u32 = 1;

const MAGIC: &[u8; 8] = b"qbcache\0";
const HEADER: usize = 60;

/// The default size bound of a [`DiskStore`].
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// A read refreshes an entry's modification time (its age for eviction) when it is
/// older than this: at most one extra system call per entry and interval.
pub const TOUCH_AFTER: Duration = Duration::from_secs(600);

/// The store rescans its directory after this many writes (a power of two).
pub const RESCAN_EVERY: u64 = 1024;

/// Temporary files older than this are left over by a crashed writer and deleted.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// A [`CacheStore`] in a directory (see the module docs).
pub struct DiskStore {
    dir: PathBuf,
    max_bytes: u64,
    sync: bool,
    /// Estimated bytes of all entries; meaningful once `scanned`.
    total: AtomicU64,
    scanned: AtomicBool,
    puts: AtomicU64,
    temp_counter: AtomicU64,
    /// Held by the one thread scanning or evicting.
    maintenance: Mutex<()>,
}

impl DiskStore {
    /// A store in `dir` (created if needed), bounded to [`DEFAULT_MAX_BYTES`].
    ///
    /// # Errors
    /// If the directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<DiskStore> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(DiskStore {
            dir,
            max_bytes: DEFAULT_MAX_BYTES,
            sync: false,
            total: AtomicU64::new(0),
            scanned: AtomicBool::new(false),
            puts: AtomicU64::new(0),
            temp_counter: AtomicU64::new(0),
            maintenance: Mutex::new(()),
        })
    }

    /// A store in [`DiskStore::default_dir`].
    ///
    /// # Errors
    /// If there is no default directory or it cannot be created.
    pub fn open_default() -> std::io::Result<DiskStore> {
        let dir = DiskStore::default_dir()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no user cache directory"))?;
        DiskStore::new(dir)
    }

    /// `$QUICKBEAM_CACHE_DIR` if set and not empty, else `<user cache dir>/quickbeam/v1`
    /// (`~/.cache/quickbeam/v1` on Linux).
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("QUICKBEAM_CACHE_DIR").filter(|d| !d.is_empty()) {
            return Some(d.into());
        }
        directories::BaseDirs::new().map(|b| b.cache_dir().join("quickbeam").join("v1"))
    }

    /// Bounds the store to about `max_bytes` of entry files.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> DiskStore {
        self.max_bytes = max_bytes;
        self
    }

    /// Whether a write waits for the entry to reach the disk (`fsync`) before it becomes
    /// visible. Off by default: a crash may then lose recent entries, or leave one whose
    /// checksum fails (a miss), never a wrong one.
    pub fn with_sync(mut self, sync: bool) -> DiskStore {
        self.sync = sync;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry file of `key`.
    pub fn entry_path(&self, key: &[u8; 32]) -> PathBuf {
        let hex = hex(key);
        self.dir.join(&hex[..2]).join(format!("{hex}.entry"))
    }

    /// Counts the entries on disk (a directory scan).
    pub fn stats(&self) -> CacheStats {
        let files = self.scan();
        CacheStats { entries: files.len() as u64, bytes: files.iter().map(|f| f.size).sum() }
    }

    /// Deletes every entry (and every temporary file) of the directory.
    pub fn clear(&self) {
        let _guard = self.maintenance.lock().unwrap_or_else(|e| e.into_inner());
        for_each_shard_file(&self.dir, |path, name, _| {
            if name.ends_with(".entry") || name.starts_with(".tmp-") {
                let _ = fs::remove_file(path);
            }
        });
        self.total.store(0, Ordering::Relaxed);
    }

    fn read_entry(&self, key: &[u8; 32], path: &Path) -> Option<Vec<u8>> {
        let f = File::open(path).ok()?;
        let meta = f.metadata().ok()?;
        let len = usize::try_from(meta.len()).ok()?;
        if len < HEADER || len as u64 > self.max_bytes.max(1 << 20) {
            drop(f);
            let _ = fs::remove_file(path);
            return None;
        }
        let mut bytes = Vec::with_capacity(len);
        (&f).take(len as u64 + 1).read_to_end(&mut bytes).ok()?;
        let Some(payload) = check_entry(key, &bytes) else {
            let _ = fs::remove_file(path);
            return None;
        };
        if let Ok(modified) = meta.modified() {
            if SystemTime::now().duration_since(modified).is_ok_and(|age| age > TOUCH_AFTER) {
                let _ = f.set_modified(SystemTime::now());
            }
        }
        bytes.drain(..HEADER);
        debug_assert_eq!(bytes.len(), payload);
        Some(bytes)
    }

    fn write_entry(&self, key: &[u8; 32], value: &[u8]) -> std::io::Result<u64> {
        let path = self.entry_path(key);
        let shard = path.parent().expect("entry paths have a shard directory");
        fs::create_dir_all(shard)?;
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = shard.join(format!(".tmp-{}-{n}-{}", std::process::id(), &hex(key)[..16]));
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(&header(key, value))?;
            f.write_all(value)?;
            if self.sync {
                f.sync_all()?;
            }
            drop(f);
            fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| (HEADER + value.len()) as u64)
    }

    /// Every entry file with its size and modification time; deletes temporary files
    /// left over by crashed writers on the way.
    fn scan(&self) -> Vec<EntryFile> {
        let mut files = Vec::new();
        let now = SystemTime::now();
        for_each_shard_file(&self.dir, |path, name, meta| {
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if name.ends_with(".entry") {
                files.push(EntryFile { path: path.to_path_buf(), size: meta.len(), modified });
            } else if name.starts_with(".tmp-") && now.duration_since(modified).is_ok_and(|a| a > STALE_TEMP) {
                let _ = fs::remove_file(path);
            }
        });
        files
    }

    /// Rescans when due and evicts the least recently used entries while over the bound.
    fn maintain(&self, added: u64) {
        let total = self.total.fetch_add(added, Ordering::Relaxed) + added;
        let puts = self.puts.fetch_add(1, Ordering::Relaxed) + 1;
        let due = !self.scanned.load(Ordering::Relaxed) || puts & (RESCAN_EVERY - 1) == 0 || total > self.max_bytes;
        if !due {
            return;
        }
        // One maintainer at a time; the others go on (the bound is approximate).
        let Ok(_guard) = self.maintenance.try_lock() else { return };
        let mut files = self.scan();
        let mut total: u64 = files.iter().map(|f| f.size).sum();
        if total > self.max_bytes {
            files.sort_by_key(|f| f.modified);
            let low_water = self.max_bytes / 10 * 9;
            for f in &files {
                if total <= low_water {
                    break;
                }
                if fs::remove_file(&f.path).is_ok() {
                    total -= f.size;
                }
            }
        }
        self.total.store(total, Ordering::Relaxed);
        self.scanned.store(true, Ordering::Relaxed);
    }
}

impl CacheStore for DiskStore {
    fn get(&self, key: &[u8; 32]) -> Option<Vec<u8>> {
        self.read_entry(key, &self.entry_path(key))
    }

    fn put(&self, key: &[u8; 32], value: &[u8]) {
        if (HEADER + value.len()) as u64 > self.max_bytes / 2 {
            return;
        }
        if let Ok(size) = self.write_entry(key, value) {
            self.maintain(size);
        }
    }
}

struct EntryFile {
    path: PathBuf,
    size: u64,
    modified: SystemTime,
}

/// Calls `f(path, file name, metadata)` for every file of every shard directory.
fn for_each_shard_file(dir: &Path, mut f: impl FnMut(&Path, &str, &fs::Metadata)) {
    let Ok(shards) = fs::read_dir(dir) else { return };
    for shard in shards.flatten() {
        let name = shard.file_name();
        let is_shard = name.len() == 2 && name.to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()));
        if !is_shard {
            continue;
        }
        let Ok(files) = fs::read_dir(shard.path()) else { continue };
        for file in files.flatten() {
            let (Ok(meta), Some(name)) = (file.metadata(), file.file_name().to_str().map(str::to_owned)) else {
                continue;
            };
            if meta.is_file() {
                f(&file.path(), &name, &meta);
            }
        }
    }
}

fn header(key: &[u8; 32], value: &[u8]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&DISK_FORMAT.to_le_bytes());
    h[12..44].copy_from_slice(key);
    h[44..52].copy_from_slice(&(value.len() as u64).to_le_bytes());
    h[52..60].copy_from_slice(&checksum(value));
    h
}

fn checksum(payload: &[u8]) -> [u8; 8] {
    let d = Sha256::digest(payload);
    d[..8].try_into().expect("8 of 32 bytes")
}

/// The payload length if `bytes` are a sound entry file for `key`.
fn check_entry(key: &[u8; 32], bytes: &[u8]) -> Option<usize> {
    let (h, payload) = bytes.split_at_checked(HEADER)?;
    let len = u64::from_le_bytes(h[44..52].try_into().ok()?);
    let sound = &h[0..8] == MAGIC
        && h[8..12] == DISK_FORMAT.to_le_bytes()
        && &h[12..44] == key
        && len == payload.len() as u64
        && h[52..60] == checksum(payload);
    sound.then_some(payload.len())
}

fn hex(key: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    for b in key {
        s.push(char::from_digit((b >> 4) as u32, 16).expect("a nibble"));
        s.push(char::from_digit((b & 15) as u32, 16).expect("a nibble"));
    }
    s
}
