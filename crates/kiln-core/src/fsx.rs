//! Atomic output: write to a temporary path, rename when complete.
//!
//! An interrupted run leaves only a dot-prefixed staging directory behind, never a directory
//! that looks complete, and a finished output is never overwritten.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A directory being written under a hidden staging name, renamed into place by
/// [`StagedDir::commit`]. Dropped without commit, it removes itself.
#[derive(Debug)]
pub struct StagedDir {
    staging: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Starts writing `target`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when `target` exists; IO errors creating the staging directory.
    pub fn new(target: &Path) -> Result<Self> {
        if target.exists() {
            return Err(Error::AlreadyExists {
                path: target.to_path_buf(),
            });
        }
        fs_err::create_dir_all(target.parent().unwrap_or(Path::new(".")))?;
        let staging = staging_path(target);
        if staging.exists() {
            fs_err::remove_dir_all(&staging)?;
        }
        fs_err::create_dir_all(&staging)?;
        Ok(Self {
            staging,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// Where to write the contents now.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The final path, valid once committed.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the staging directory into place.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if something appeared at the target meanwhile; IO errors.
    pub fn commit(mut self) -> Result<PathBuf> {
        if self.target.exists() {
            return Err(Error::AlreadyExists {
                path: self.target.clone(),
            });
        }
        fs_err::rename(&self.staging, &self.target)?;
        self.committed = true;
        Ok(self.target.clone())
    }

    /// Renames the staging directory to the first free `<target>-<n>`, n = 1, 2, …, so
    /// concurrent runs of one pipeline never collide nor overwrite each other.
    ///
    /// # Errors
    /// IO errors other than a lost race for a name.
    pub fn commit_numbered(mut self) -> Result<PathBuf> {
        let stem = self
            .target
            .file_name()
            .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
        for n in 1.. {
            let candidate = self.target.with_file_name(format!("{stem}-{n}"));
            if candidate.exists() {
                continue;
            }
            match fs_err::rename(&self.staging, &candidate) {
                Ok(()) => {
                    self.committed = true;
                    return Ok(candidate);
                }
                // Another run took the name between the check and the rename (a non-empty
                // directory cannot be replaced): try the next one.
                Err(_) if candidate.exists() => {}
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("some run number is free")
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: a leftover hidden staging dir never looks like a finished output.
            let _ = fs_err::remove_dir_all(&self.staging);
        }
    }
}

/// The hidden name `target` is written under until it is complete: beside it (so the final
/// rename stays on one file system), unique to this process and call (threads of one process,
/// e.g. sweep trials, may stage the same target at once).
fn staging_path(target: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = target
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy());
    let call = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    target
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!(".{name}.partial-{}-{call}", std::process::id()))
}

/// A file written under a hidden temporary name in its directory and renamed into place by
/// [`AtomicFile::commit`], for output streamed in pieces. Dropped without commit (an error or
/// an interrupt midway), it removes itself: the target never holds a partial file.
#[derive(Debug)]
pub struct AtomicFile {
    staging: PathBuf,
    target: PathBuf,
    file: Option<std::io::BufWriter<fs_err::File>>,
}

impl AtomicFile {
    /// Starts writing `path`.
    ///
    /// # Errors
    /// IO errors creating the temporary file, naming it.
    pub fn create(path: &Path) -> Result<Self> {
        let staging = staging_path(path);
        let file = fs_err::File::create(&staging)?;
        Ok(Self {
            staging,
            target: path.to_path_buf(),
            file: Some(std::io::BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// Flushes the file and renames it into place, replacing what was there.
    ///
    /// # Errors
    /// IO errors flushing or renaming.
    pub fn commit(mut self) -> Result<()> {
        if let Some(file) = self.file.take() {
            file.into_inner()
                .map_err(std::io::IntoInnerError::into_error)?;
        }
        fs_err::rename(&self.staging, &self.target)?;
        Ok(())
    }

    fn file(&mut self) -> &mut std::io::BufWriter<fs_err::File> {
        self.file
            .as_mut()
            .expect("only commit takes the file, and it consumes self")
    }
}

impl std::io::Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Best effort, as for a staged directory: never leave a partial file behind.
            let _ = fs_err::remove_file(&self.staging);
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
///
/// # Errors
/// IO errors, naming the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-fsx-{name}-{}", std::process::id()));
        let _ = fs_err::remove_dir_all(&dir);
        fs_err::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn commit_renames_and_never_overwrites() {
        let dir = scratch("commit");
        let target = dir.join("run");
        let staged = StagedDir::new(&target).unwrap();
        fs_err::write(staged.path().join("a"), b"1").unwrap();
        assert!(!target.exists());
        staged.commit().unwrap();
        assert_eq!(fs_err::read(target.join("a")).unwrap(), b"1");
        assert!(matches!(
            StagedDir::new(&target),
            Err(Error::AlreadyExists { .. })
        ));
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn numbered_commits_take_the_next_free_number() {
        let dir = scratch("numbered");
        let base = dir.join("run");
        let first = StagedDir::new(&base).unwrap().commit_numbered().unwrap();
        let second = StagedDir::new(&base).unwrap().commit_numbered().unwrap();
        assert_eq!(first, dir.join("run-1"));
        assert_eq!(second, dir.join("run-2"));
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn threads_staging_and_committing_one_name_at_once_keep_their_own_contents() {
        let dir = scratch("threads");
        let base = dir.join("run");
        let barrier = std::sync::Barrier::new(8);
        let committed: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (base, barrier) = (&base, &barrier);
                    s.spawn(move || {
                        let staged = StagedDir::new(base).unwrap();
                        fs_err::write(staged.path().join("id"), i.to_string()).unwrap();
                        // All eight are staged before any commits: a shared staging path would
                        // mix or lose their contents.
                        barrier.wait();
                        staged.commit_numbered().unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, path) in committed.iter().enumerate() {
            assert_eq!(
                fs_err::read_to_string(path.join("id")).unwrap(),
                i.to_string()
            );
        }
        let mut names: Vec<String> = fs_err::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let expected: Vec<String> = (1..=8).map(|n| format!("run-{n}")).collect();
        assert_eq!(names, expected, "eight numbers, no staging left behind");
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dropped_stage_leaves_nothing() {
        let dir = scratch("drop");
        let target = dir.join("run");
        {
            let staged = StagedDir::new(&target).unwrap();
            fs_err::write(staged.path().join("a"), b"1").unwrap();
        }
        assert_eq!(fs_err::read_dir(&dir).unwrap().count(), 0);
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_atomic_file_appears_whole_on_commit_and_not_at_all_when_dropped() {
        use std::io::Write;
        let dir = scratch("atomic");
        let target = dir.join("out.csv");
        fs_err::write(&target, b"old").unwrap();
        {
            let mut file = AtomicFile::create(&target).unwrap();
            file.write_all(b"half").unwrap();
        }
        assert_eq!(fs_err::read(&target).unwrap(), b"old");
        assert_eq!(fs_err::read_dir(&dir).unwrap().count(), 1);
        let mut file = AtomicFile::create(&target).unwrap();
        file.write_all(b"new, ").unwrap();
        assert_eq!(fs_err::read(&target).unwrap(), b"old");
        file.write_all(b"whole").unwrap();
        file.commit().unwrap();
        assert_eq!(fs_err::read(&target).unwrap(), b"new, whole");
        assert_eq!(fs_err::read_dir(&dir).unwrap().count(), 1);
        fs_err::remove_dir_all(&dir).unwrap();
    }
}
