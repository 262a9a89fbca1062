//! The stores: round trips, bounds and eviction order, damaged files as misses, and
//! concurrent writers and readers (threads, and processes: this test binary re-runs
//! itself as workers) that never see a torn entry.

use quickbeam_cache::disk::{DISK_FORMAT, TOUCH_AFTER};
use quickbeam_cache::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "quickbeam-cache-test-{name}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key(i: u64) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&i.to_le_bytes());
    k[8..16].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    k[31] = 0xa5;
    k
}

/// A value that checks itself: `[key index, writer, sequence, length]` then a pattern
/// derived from all four, so any mix of two values or a truncation is detected.
fn value(k: u64, writer: u64, seq: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(32));
    for x in [k, writer, seq, len as u64] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    let mut s = k ^ (writer << 20) ^ (seq << 40) ^ len as u64;
    while v.len() < len.max(32) {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        v.push((s >> 56) as u8);
    }
    v
}

/// Checks a value made by [`value`] for key `k`; returns its writer and sequence.
fn check_value(k: u64, v: &[u8]) -> (u64, u64) {
    assert!(v.len() >= 32, "short value: {} bytes", v.len());
    let field = |i: usize| u64::from_le_bytes(v[i * 8..i * 8 + 8].try_into().unwrap());
    let (vk, writer, seq, len) = (field(0), field(1), field(2), field(3) as usize);
    assert_eq!(vk, k, "a value of another key");
    assert_eq!(v, value(k, writer, seq, len).as_slice(), "torn or mixed value");
    (writer, seq)
}

// ---- MemoryStore --------------------------------------------------------------------------

#[test]
fn memory_round_trip_and_bound() {
    let m = MemoryStore::new(64 * 1024);
    m.put(&key(1), b"one");
    assert_eq!(m.get(&key(1)).as_deref(), Some(&b"one"[..]));
    m.put(&key(1), b"uno");
    assert_eq!(m.get(&key(1)).as_deref(), Some(&b"uno"[..]));
    assert_eq!(m.get(&key(2)), None);
    for i in 0..1000 {
        m.put(&key(i), &value(i, 0, 0, 500));
        assert!(m.stats().bytes <= 64 * 1024);
    }
    let s = m.stats();
    assert!(s.entries > 50 && s.bytes <= 64 * 1024, "{s:?}");
    // Too big for the store: dropped.
    m.put(&key(5000), &vec![0; 64 * 1024]);
    assert_eq!(m.get(&key(5000)), None);
    m.clear();
    assert_eq!(m.stats(), CacheStats::default());
}

#[test]
fn memory_evicts_least_recently_used() {
    // 16 shards of 1,000 bytes: three 200-byte values (plus overhead) fit in one.
    let m = MemoryStore::new(16 * 1000);
    let same_shard = |i: u8| {
        let mut k = [i; 32];
        k[0] = 0;
        k
    };
    let (a, b, c, d) = (same_shard(1), same_shard(2), same_shard(3), same_shard(4));
    m.put(&a, &[1; 200]);
    m.put(&b, &[2; 200]);
    m.put(&c, &[3; 200]);
    assert!(m.get(&a).is_some());
    m.put(&d, &[4; 200]);
    assert!(m.get(&b).is_none(), "b was least recently used");
    for k in [a, c, d] {
        assert!(m.get(&k).is_some());
    }
}

#[test]
fn memory_is_thread_safe() {
    let m = Arc::new(MemoryStore::new(1 << 20));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..2000u64 {
                    let k = i % 64;
                    m.put(&key(k), &value(k, t, i, 100 + (i as usize % 300)));
                    if let Some(v) = m.get(&key((i * 7) % 64)) {
                        check_value((i * 7) % 64, &v);
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert!(m.stats().entries <= 64);
}

// ---- DiskStore ----------------------------------------------------------------------------

#[test]
fn disk_round_trip() {
    let dir = TempDir::new("round-trip");
    let d = DiskStore::new(&dir.0).unwrap();
    assert_eq!(d.get(&key(1)), None);
    d.put(&key(1), b"hello");
    assert_eq!(d.get(&key(1)).as_deref(), Some(&b"hello"[..]));
    d.put(&key(1), b"");
    assert_eq!(d.get(&key(1)).as_deref(), Some(&b""[..]));
    let big = value(2, 0, 0, 300_000);
    d.put(&key(2), &big);
    assert_eq!(d.get(&key(2)), Some(big));
    // Sharded by the key's first byte, named by the whole key.
    let path = d.entry_path(&key(1));
    assert!(path.exists());
    assert_eq!(path.parent().unwrap().file_name().unwrap().to_str().unwrap(), "01");
    assert!(path.file_name().unwrap().to_str().unwrap().ends_with(".entry"));
    // A second store on the same directory (another process, later) sees them.
    let d2 = DiskStore::new(&dir.0).unwrap();
    assert_eq!(d2.get(&key(1)).as_deref(), Some(&b""[..]));
    assert_eq!(d2.stats().entries, 2);
    d2.clear();
    assert_eq!(d.get(&key(2)), None);
    assert_eq!(d.stats(), CacheStats::default());
}

/// Every kind of damage is a miss, and the damaged file is deleted.
#[test]
fn damaged_disk_entries_are_misses() {
    let dir = TempDir::new("damaged");
    let d = DiskStore::new(&dir.0).unwrap();
    let v = value(7, 0, 0, 1000);
    type Damage = Box<dyn Fn(&Path)>;
    let damages: Vec<(&str, Damage)> = vec![
        ("deleted", Box::new(|p| std::fs::remove_file(p).unwrap())),
        ("empty", Box::new(|p| std::fs::write(p, b"").unwrap())),
        ("truncated header", Box::new(|p| truncate(p, 30))),
        ("truncated payload", Box::new(|p| truncate(p, 60 + 500))),
        ("one byte short", Box::new(|p| truncate(p, 60 + 999))),
        ("a byte longer", Box::new(|p| append(p, &[0]))),
        ("payload byte flipped", Box::new(|p| flip(p, 60 + 123))),
        ("last byte flipped", Box::new(|p| flip(p, 60 + 999))),
        ("magic flipped", Box::new(|p| flip(p, 2))),
        ("key flipped", Box::new(|p| flip(p, 12 + 5))),
        ("length flipped", Box::new(|p| flip(p, 44))),
        ("checksum flipped", Box::new(|p| flip(p, 55))),
        ("other version", Box::new(|p| patch(p, 8, &(DISK_FORMAT + 1).to_le_bytes()))),
        ("garbage", Box::new(|p| std::fs::write(p, vec![0x5a; 2000]).unwrap())),
    ];
    for (what, damage) in damages {
        d.put(&key(7), &v);
        assert_eq!(d.get(&key(7)).as_deref(), Some(v.as_slice()), "{what}: before");
        let path = d.entry_path(&key(7));
        damage(&path);
        assert_eq!(d.get(&key(7)), None, "{what}");
        assert!(!path.exists(), "{what}: the damaged file is deleted");
        // And the next write repairs it.
        d.put(&key(7), &v);
        assert_eq!(d.get(&key(7)).as_deref(), Some(v.as_slice()), "{what}: after");
    }
    // Another key's intact file under this key's name.
    d.put(&key(8), b"eight");
    std::fs::copy(d.entry_path(&key(8)), d.entry_path(&key(7))).unwrap();
    assert_eq!(d.get(&key(7)), None, "another key's entry");
    assert_eq!(d.get(&key(8)).as_deref(), Some(&b"eight"[..]));
}

fn truncate(p: &Path, len: u64) {
    std::fs::OpenOptions::new().write(true).open(p).unwrap().set_len(len).unwrap();
}

fn append(p: &Path, bytes: &[u8]) {
    let mut v = std::fs::read(p).unwrap();
    v.extend_from_slice(bytes);
    std::fs::write(p, v).unwrap();
}

fn flip(p: &Path, at: usize) {
    let mut v = std::fs::read(p).unwrap();
    v[at] ^= 0x10;
    std::fs::write(p, v).unwrap();
}

fn patch(p: &Path, at: usize, bytes: &[u8]) {
    let mut v = std::fs::read(p).unwrap();
    v[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(p, v).unwrap();
}

fn set_age(p: &Path, age: Duration) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

#[test]
fn disk_eviction_keeps_the_bound_and_the_recently_used() {
    let dir = TempDir::new("eviction");
    let bound = 40_000; // about 37 entries of 1,000 bytes (plus a 60-byte header)
    let d = DiskStore::new(&dir.0).unwrap().with_max_bytes(bound);
    for i in 0..20 {
        d.put(&key(i), &value(i, 0, 0, 1000));
    }
    // Ages, oldest first: 9, 8, ..., 0 (older than `TOUCH_AFTER`), then 10, 11, ..., 19.
    // (File times tick coarsely, so they are set explicitly.) Reading entry 3 makes it
    // the most recently used of the twenty.
    for i in 0..10 {
        set_age(&d.entry_path(&key(i)), TOUCH_AFTER * 2 + Duration::from_secs(i));
    }
    for i in 10..20 {
        set_age(&d.entry_path(&key(i)), Duration::from_secs(100 - i));
    }
    assert!(d.get(&key(3)).is_some());
    for i in 20..48 {
        d.put(&key(i), &value(i, 0, 0, 1000));
        assert!(d.stats().bytes <= bound, "after put {i}: {:?}", d.stats());
    }
    // 48 entries do not fit: the ten oldest went, then the next oldest.
    let present: Vec<u64> = (0..48).filter(|&i| d.entry_path(&key(i)).exists()).collect();
    for i in (0..10).filter(|&i| i != 3) {
        assert!(!present.contains(&i), "old entry {i} is evicted first: {present:?}");
    }
    assert!(!present.contains(&10), "then the oldest unread one: {present:?}");
    for i in [3, 19, 20, 47] {
        assert!(present.contains(&i), "entry {i} is recent: {present:?}");
    }
    for i in 48..100 {
        d.put(&key(i), &value(i, 0, 0, 1000));
        assert!(d.stats().bytes <= bound, "after put {i}: {:?}", d.stats());
    }
    let s = d.stats();
    assert!(s.entries >= 30, "evicts down to 90% of the bound only: {s:?}");
    assert!(d.get(&key(99)).is_some(), "the newest entry stays");
    // An entry bigger than half the bound is not stored.
    d.put(&key(1000), &vec![0; bound as usize]);
    assert!(d.get(&key(1000)).is_none());
}

#[test]
fn stale_temporary_files_are_removed() {
    let dir = TempDir::new("temp");
    let d = DiskStore::new(&dir.0).unwrap();
    d.put(&key(1), b"x");
    let shard = d.entry_path(&key(1)).parent().unwrap().to_path_buf();
    let (stale, fresh) = (shard.join(".tmp-1-1-0000"), shard.join(".tmp-1-2-0000"));
    std::fs::write(&stale, b"partial").unwrap();
    std::fs::write(&fresh, b"partial").unwrap();
    set_age(&stale, Duration::from_secs(7200));
    assert_eq!(d.stats().entries, 1, "temporary files are not entries");
    assert!(!stale.exists() && fresh.exists(), "only a crashed writer's old file goes");
}

#[test]
fn default_dir_honors_the_environment() {
    std::env::set_var("QUICKBEAM_CACHE_DIR", "/some/where");
    assert_eq!(DiskStore::default_dir(), Some(PathBuf::from("/some/where")));
    std::env::set_var("QUICKBEAM_CACHE_DIR", "");
    let d = DiskStore::default_dir();
    std::env::remove_var("QUICKBEAM_CACHE_DIR");
    if let Some(d) = d {
        assert!(d.ends_with("quickbeam/v1"), "{d:?}");
    }
}

#[test]
fn tiered_store_promotes_hits() {
    let dir = TempDir::new("tiered");
    let t = TieredStore::new(MemoryStore::new(1 << 20), DiskStore::new(&dir.0).unwrap());
    t.put(&key(1), b"both");
    assert_eq!(t.front.get(&key(1)).as_deref(), Some(&b"both"[..]));
    t.back.put(&key(2), b"disk only");
    assert_eq!(t.front.get(&key(2)), None);
    assert_eq!(t.get(&key(2)).as_deref(), Some(&b"disk only"[..]));
    assert_eq!(t.front.get(&key(2)).as_deref(), Some(&b"disk only"[..]));
    // A store behind a trait object.
    let s: Arc<dyn CacheStore> = Arc::new(t);
    assert!(s.get(&key(1)).is_some());
}

// ---- concurrency --------------------------------------------------------------------------

const KEYS: u64 = 8;

/// Writes and reads the keys `0..KEYS` of `dir` for `duration`, as `writer`, checking every
/// value read; once every key has been written (by anyone), every read must hit.
fn hammer(dir: &Path, writer: u64, duration: Duration, populated: &AtomicBool) -> (u64, u64) {
    let d = DiskStore::new(dir).unwrap();
    let (mut reads, mut writes) = (0, 0);
    let start = Instant::now();
    let mut seq = 0;
    while start.elapsed() < duration {
        seq += 1;
        let k = (seq * 5 + writer) % KEYS;
        if seq % 3 == 0 {
            // Sizes from one page to a few hundred KB, so writes take a while.
            let len = [100, 5000, 70_000, 300_000][(seq as usize / 3) % 4];
            d.put(&key(k), &value(k, writer, seq, len));
            writes += 1;
        } else {
            match d.get(&key(k)) {
                Some(v) => {
                    check_value(k, &v);
                    reads += 1;
                }
                None => assert!(!populated.load(Ordering::Relaxed), "a miss after every key was written"),
            }
        }
    }
    (reads, writes)
}

fn populate(dir: &Path) {
    let d = DiskStore::new(dir).unwrap();
    for k in 0..KEYS {
        d.put(&key(k), &value(k, 99, 0, 1000));
    }
}

#[test]
fn concurrent_threads_never_see_torn_entries() {
    let dir = TempDir::new("threads");
    populate(&dir.0);
    let populated = Arc::new(AtomicBool::new(true));
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let (dir, populated) = (dir.0.clone(), populated.clone());
            std::thread::spawn(move || hammer(&dir, w, Duration::from_millis(1500), &populated))
        })
        .collect();
    let (mut reads, mut writes) = (0, 0);
    for t in threads {
        let (r, w) = t.join().unwrap();
        reads += r;
        writes += w;
    }
    eprintln!("4 threads: {reads} checked reads, {writes} writes");
    assert!(reads > 100 && writes > 50);
}

/// Worker processes: this same test binary, running [`disk_process_worker`].
#[test]
fn concurrent_processes_never_see_torn_entries() {
    let dir = TempDir::new("processes");
    populate(&dir.0);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|w| {
            std::process::Command::new(&exe)
                .args(["--ignored", "--exact", "disk_process_worker", "--nocapture", "--test-threads=1"])
                .env("QB_CACHE_WORKER_DIR", &dir.0)
                .env("QB_CACHE_WORKER_ID", (10 + w).to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // This process reads and writes too.
    let (reads, _) = hammer(&dir.0, 1, Duration::from_millis(1500), &AtomicBool::new(true));
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "worker failed:\n{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
        assert!(stderr.contains("worker done"), "the worker did not run:\n{stderr}");
    }
    assert!(reads > 50);
    // All that remains is intact.
    let d = DiskStore::new(&dir.0).unwrap();
    for k in 0..KEYS {
        check_value(k, &d.get(&key(k)).unwrap());
    }
}

/// Run by [`concurrent_processes_never_see_torn_entries`] in child processes.
#[test]
#[ignore]
fn disk_process_worker() {
    let Some(dir) = std::env::var_os("QB_CACHE_WORKER_DIR") else { return };
    let writer: u64 = std::env::var("QB_CACHE_WORKER_ID").unwrap().parse().unwrap();
    let (reads, writes) = hammer(Path::new(&dir), writer, Duration::from_millis(1500), &AtomicBool::new(true));
    eprintln!("worker done: {reads} checked reads, {writes} writes");
}
