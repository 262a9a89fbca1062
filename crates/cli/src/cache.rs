//! The compiled-code cache as the command line sees it: which persistent store a
//! command uses (`--cache-dir`, `--no-cache`, `QUICKBEAM_CACHE_DIR`), and `quickbeam
//! cache stats|clear`.
//!
//! The cache never fails a command that runs or compiles code: a directory that cannot
//! be opened is one warning, and the command goes on with the in-process cache only.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use quickbeam::cache::{CacheStats, DiskStore};
use quickbeam::Config;

/// Which persistent store a command uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheChoice {
    /// `--no-cache`: no persistent store (the engine's in-process cache still works
    /// for the life of the command).
    Off,
    /// An on-disk store in this directory (`--cache-dir DIR` or `QUICKBEAM_CACHE_DIR`).
    Dir(PathBuf),
    /// The on-disk store in the user's cache directory ([`DiskStore::default_dir`]).
    Default,
}

impl CacheChoice {
    /// The choice made by the global flags (`dir` is `--cache-dir`, or the environment's
    /// `QUICKBEAM_CACHE_DIR`; an empty value counts as none).
    pub fn from_flags(dir: Option<PathBuf>, no_cache: bool) -> CacheChoice {
        match dir.filter(|d| !d.as_os_str().is_empty()) {
            _ if no_cache => CacheChoice::Off,
            Some(dir) => CacheChoice::Dir(dir),
            None => CacheChoice::Default,
        }
    }

    /// The directory of the on-disk store, if there is one.
    ///
    /// # Errors
    /// With `--no-cache`, or when there is no user cache directory (no home directory).
    pub fn directory(&self) -> Result<PathBuf> {
        match self {
            CacheChoice::Off => Err(anyhow!("`--no-cache` names no cache directory")),
            CacheChoice::Dir(dir) => Ok(dir.clone()),
            CacheChoice::Default => DiskStore::default_dir()
                .ok_or_else(|| anyhow!("there is no user cache directory; use `--cache-dir DIR`")),
        }
    }
}

/// A [`Config`] with the persistent store of `choice`, and the warning to print (once)
/// if that store could not be opened, in which case the config has none.
pub fn config_with_cache(choice: &CacheChoice) -> (Config, Option<String>) {
    let mut config = Config::new();
    config.cache_store(None);
    if *choice == CacheChoice::Off {
        return (config, None);
    }
    let opened = choice.directory().and_then(|dir| config.cache_directory(dir).map(|_| ()));
    match opened {
        Ok(()) => (config, None),
        Err(e) => {
            config.cache_store(None);
            (config, Some(format!("warning: {e:#}; continuing without the on-disk cache")))
        }
    }
}

/// `quickbeam cache stats`: the directory, the number of entries and their size, one
/// `name: value` per line. A directory that does not exist holds nothing (it is not
/// created).
pub fn stats(dir: &Path) -> Result<String> {
    let stats = if dir.exists() { open(dir)?.stats() } else { CacheStats::default() };
    Ok(format!(
        "directory: {}\nentries:   {}\nsize:      {} ({} bytes)\n",
        dir.display(),
        stats.entries,
        human_size(stats.bytes),
        stats.bytes
    ))
}

/// `quickbeam cache clear`: deletes every entry; returns what was deleted, as a line.
pub fn clear(dir: &Path) -> Result<String> {
    if !dir.exists() {
        return Ok(format!("cleared {}: nothing to clear\n", dir.display()));
    }
    let store = open(dir)?;
    let before = store.stats();
    store.clear();
    let after = store.stats();
    if after.entries > 0 {
        return Err(anyhow!("failed to delete {} of {} entries in `{}`", after.entries, before.entries, dir.display()));
    }
    Ok(format!("cleared {}: {} entries, {}\n", dir.display(), before.entries, human_size(before.bytes)))
}

fn open(dir: &Path) -> Result<DiskStore> {
    if !dir.is_dir() {
        return Err(anyhow!("`{}` is not a directory", dir.display()));
    }
    DiskStore::new(dir).map_err(|e| anyhow!("failed to open cache directory `{}`: {e}", dir.display()))
}

/// Bytes in binary units with one decimal (`0 B`, `512 B`, `1.5 KiB`, `3.2 GiB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
    }

    #[test]
    fn flags_choose_the_store() {
        assert_eq!(CacheChoice::from_flags(Some("d".into()), true), CacheChoice::Off);
        assert_eq!(CacheChoice::from_flags(Some("d".into()), false), CacheChoice::Dir("d".into()));
        assert_eq!(CacheChoice::from_flags(Some("".into()), false), CacheChoice::Default);
        assert_eq!(CacheChoice::from_flags(None, false), CacheChoice::Default);
    }

    #[test]
    fn an_unusable_directory_is_a_warning() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let (_, warning) = config_with_cache(&CacheChoice::Dir(file.path().join("sub")));
        let warning = warning.expect("a warning");
        assert!(warning.starts_with("warning: failed to open cache directory"), "{warning}");
        assert!(warning.ends_with("continuing without the on-disk cache"), "{warning}");
        assert_eq!(config_with_cache(&CacheChoice::Off).1, None);
    }
}
