//! The stage cache: the outputs of a run's data stages (ingest, validate, split, stats,
//! transform), addressed by a hash of everything that can change them (the stage's inputs'
//! keys, its config, kiln's version).
//!
//! ```text
//! <cache>/<stage>-<key>/   committed by a rename when complete, so readers never see a part
//!   entry.json             stage, key, size
//!   used                   its modification time is the entry's last use (for LRU eviction)
//!   ...                    the stage's outputs
//! ```
//!
//! Entries are immutable once committed: two runs that compute one entry at once both succeed,
//! and the first rename wins. Past the size limit, the least recently used entries go.

use std::fs::FileTimes;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_core::fsx::StagedDir;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::bundle::{read_json, write_json};

/// Default size limit of a cache directory: 4 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 4 << 30;
/// The cache directory's name under a runs directory, where `kiln train` keeps it by default.
pub const CACHE_DIR_NAME: &str = ".kiln-cache";
const ENTRY_FILE: &str = "entry.json";
const USED_FILE: &str = "used";

/// A stage cache directory and its size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// One cached stage output, as `kiln cache ls` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The stage (`ingest`, `validate`, `split`, `stats`, `transform`).
    pub stage: String,
    /// The content key (blake3 of the stage's inputs).
    pub key: String,
    /// Bytes on disk.
    pub bytes: u64,
    /// Seconds since the Unix epoch of its last use.
    #[serde(default)]
    pub last_used: u64,
}

impl StageCache {
    /// A cache in `dir` holding at most `max_bytes` (the entry in use is kept even past it).
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            dir: dir.into(),
            max_bytes,
        }
    }

    /// The default cache of runs written under `runs`: `runs`/[`CACHE_DIR_NAME`], at most
    /// [`DEFAULT_CACHE_BYTES`].
    pub fn in_runs_dir(runs: &Path) -> Self {
        Self::new(runs.join(CACHE_DIR_NAME), DEFAULT_CACHE_BYTES)
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of `stage` given everything its output depends on.
    pub fn key(stage: &str, inputs: &serde_json::Value) -> String {
        let keyed = serde_json::json!({
            "stage": stage,
            "kiln": kiln_core::KILN_VERSION,
            "inputs": inputs,
        });
        kiln_core::hash::hash_bytes(keyed.to_string().as_bytes())
    }

    fn entry_dir(&self, stage: &str, key: &str) -> PathBuf {
        self.dir.join(format!("{stage}-{key}"))
    }

    /// The directory of the cached output of `stage` under `key`, marked as used now; `None`
    /// on a miss.
    pub fn get(&self, stage: &str, key: &str) -> Option<PathBuf> {
        let dir = self.entry_dir(stage, key);
        if !dir.join(ENTRY_FILE).is_file() {
            return None;
        }
        // Best effort: a failed touch only makes the entry look older to eviction.
        let _ = touch(&dir.join(USED_FILE));
        Some(dir)
    }

    /// Drops the entry of `stage` under `key` (one that failed to load).
    pub fn remove(&self, stage: &str, key: &str) {
        // Best effort: a leftover entry fails to load again and is recomputed.
        let _ = fs_err::remove_dir_all(self.entry_dir(stage, key));
    }

    /// Stores the output `write` puts into the directory it is given as the entry of `stage`
    /// under `key`, then evicts least recently used entries past the size limit.
    ///
    /// # Errors
    /// Errors of `write`; IO errors of the cache directory.
    pub fn put(
        &self,
        stage: &str,
        key: &str,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        let target = self.entry_dir(stage, key);
        if target.join(ENTRY_FILE).is_file() {
            return Ok(());
        }
        let staged = match StagedDir::new(&target) {
            Ok(staged) => staged,
            // Another run committed it meanwhile.
            Err(kiln_core::Error::AlreadyExists { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        write(staged.path())?;
        touch(&staged.path().join(USED_FILE))?;
        let entry = CacheEntry {
            stage: stage.to_owned(),
            key: key.to_owned(),
            bytes: dir_bytes(staged.path()),
            last_used: crate::provenance::unix_millis() / 1000,
        };
        write_json(&staged.path().join(ENTRY_FILE), &entry)?;
        match staged.commit() {
            Ok(_) => {}
            // A concurrent run committed the same entry first (the rename then fails on the
            // non-empty target): entries are immutable, so theirs serves.
            Err(_) if target.join(ENTRY_FILE).is_file() => {}
            Err(e) => return Err(e.into()),
        }
        self.evict(&target)
    }

    /// Every committed entry, least recently used first.
    ///
    /// # Errors
    /// IO errors reading the cache directory (a missing one is empty).
    pub fn entries(&self) -> Result<Vec<CacheEntry>> {
        let mut entries = Vec::new();
        let Ok(read) = fs_err::read_dir(&self.dir) else {
            return Ok(entries);
        };
        for dir in read {
            let dir = dir?.path();
            // Staging directories (hidden) and foreign files are not entries.
            let Ok(mut entry) = read_json::<CacheEntry>(&dir.join(ENTRY_FILE)) else {
                continue;
            };
            entry.last_used = fs_err::metadata(dir.join(USED_FILE))
                .and_then(|m| m.modified())
                .map_or(0, |t| {
                    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
                });
            entries.push(entry);
        }
        entries
            .sort_by(|a, b| (a.last_used, &a.stage, &a.key).cmp(&(b.last_used, &b.stage, &b.key)));
        Ok(entries)
    }

    /// Removes every entry; returns how many there were.
    ///
    /// # Errors
    /// IO errors removing them.
    pub fn clear(&self) -> Result<usize> {
        let entries = self.entries()?;
        for entry in &entries {
            fs_err::remove_dir_all(self.entry_dir(&entry.stage, &entry.key))?;
        }
        Ok(entries.len())
    }

    /// Removes least recently used entries until the cache fits its limit, never `keep`.
    fn evict(&self, keep: &Path) -> Result<()> {
        let entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        for entry in entries {
            if total <= self.max_bytes {
                break;
            }
            let dir = self.entry_dir(&entry.stage, &entry.key);
            if dir == keep {
                continue;
            }
            // Another run may evict the same entry at once.
            match fs_err::remove_dir_all(&dir) {
                Ok(()) => total -= entry.bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= entry.bytes,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

fn touch(path: &Path) -> std::io::Result<()> {
    let file = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    file.file()
        .set_times(FileTimes::new().set_modified(SystemTime::now()))
}

fn dir_bytes(dir: &Path) -> u64 {
    fs_err::read_dir(dir).map_or(0, |read| {
        read.filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_bytes(cache: &StageCache, stage: &str, key: &str, bytes: usize) {
        cache
            .put(stage, key, |dir| {
                fs_err::write(dir.join("payload"), vec![7_u8; bytes])?;
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn keys_depend_on_stage_and_inputs() {
        let inputs = serde_json::json!({"data": "abc"});
        assert_eq!(
            StageCache::key("split", &inputs),
            StageCache::key("split", &inputs)
        );
        assert_ne!(
            StageCache::key("split", &inputs),
            StageCache::key("stats", &inputs)
        );
        assert_ne!(
            StageCache::key("split", &inputs),
            StageCache::key("split", &serde_json::json!({"data": "abd"}))
        );
    }

    #[test]
    fn put_then_get_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StageCache::new(dir.path(), DEFAULT_CACHE_BYTES);
        assert!(cache.get("ingest", "k1").is_none());
        put_bytes(&cache, "ingest", "k1", 10);
        let hit = cache.get("ingest", "k1").expect("a hit after put");
        assert_eq!(fs_err::read(hit.join("payload")).unwrap(), vec![7_u8; 10]);
        // A second put of the same entry keeps the first.
        put_bytes(&cache, "ingest", "k1", 99);
        assert_eq!(fs_err::read(hit.join("payload")).unwrap().len(), 10);
        assert_eq!(cache.entries().unwrap().len(), 1);
        assert_eq!(cache.clear().unwrap(), 1);
        assert!(cache.get("ingest", "k1").is_none());
    }

    #[test]
    fn concurrent_puts_of_one_entry_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StageCache::new(dir.path(), DEFAULT_CACHE_BYTES);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| put_bytes(&cache, "split", "same", 64));
            }
        });
        assert_eq!(cache.entries().unwrap().len(), 1);
        let hit = cache.get("split", "same").expect("committed once");
        assert_eq!(fs_err::read(hit.join("payload")).unwrap(), vec![7_u8; 64]);
    }

    #[test]
    fn the_least_recently_used_entries_are_evicted_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StageCache::new(dir.path(), 2_500);
        put_bytes(&cache, "a", "1", 1_000);
        put_bytes(&cache, "a", "2", 1_000);
        // Mark "1" as the older one, whatever the file system's time resolution.
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        fs_err::File::options()
            .write(true)
            .open(dir.path().join("a-1").join(USED_FILE))
            .unwrap()
            .file()
            .set_times(FileTimes::new().set_modified(old))
            .unwrap();
        put_bytes(&cache, "a", "3", 1_000);
        assert!(cache.get("a", "1").is_none(), "the oldest entry is evicted");
        assert!(cache.get("a", "2").is_some());
        assert!(cache.get("a", "3").is_some(), "the new entry stays");
    }
}
