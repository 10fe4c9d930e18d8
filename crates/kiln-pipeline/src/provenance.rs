//! What a manifest records about where a run came from, beyond the config and the data: the
//! pipeline folder's git revision and the wall-clock times.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The git commit of a pipeline file's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitRevision {
    /// The commit hash of `HEAD`.
    pub revision: String,
    /// Whether tracked files of the folder differ from that commit.
    pub dirty: bool,
}

impl GitRevision {
    /// The revision of the work tree holding `pipeline`; `None` outside one (or without git).
    pub fn of(pipeline: &Path) -> Option<Self> {
        let folder = std::path::absolute(pipeline).ok()?.parent()?.to_path_buf();
        let git = |args: &[&str]| {
            let output = Command::new("git")
                .arg("-C")
                .arg(&folder)
                .args(args)
                .output()
                .ok()?;
            output
                .status
                .success()
                .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        };
        let revision = git(&["rev-parse", "HEAD"])?;
        let changes = git(&["status", "--porcelain", "--untracked-files=no", "--", "."])?;
        Some(Self {
            revision,
            dirty: !changes.is_empty(),
        })
    }
}

/// Milliseconds since the Unix epoch (0 on a clock set before it).
pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_outside_git_has_no_revision() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(GitRevision::of(&dir.path().join("pipeline.toml")), None);
    }

    #[test]
    fn a_git_folder_records_its_head_and_changes() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(["-c", "user.name=kiln", "-c", "user.email=kiln@localhost"])
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(ok, "git {args:?}");
        };
        let pipeline = dir.path().join("pipeline.toml");
        fs_err::write(&pipeline, "[pipeline]\n").unwrap();
        git(&["init", "-q"]);
        git(&["add", "pipeline.toml"]);
        git(&["commit", "-q", "-m", "first"]);
        let clean = GitRevision::of(&pipeline).expect("a work tree");
        assert_eq!(clean.revision.len(), 40);
        assert!(!clean.dirty);
        fs_err::write(&pipeline, "[pipeline]\nname = \"x\"\n").unwrap();
        assert!(GitRevision::of(&pipeline).unwrap().dirty);
    }
}
