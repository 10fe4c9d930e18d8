//! kiln-data integration tests: every format, every split, statistics, validation and bad input.

mod bad_input;
mod formats;
mod fuzz;
mod splits;
mod stats;
mod validation;

use std::path::{Path, PathBuf};

/// Writes `bytes` to `name` in `dir`.
pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs_err::write(&path, bytes).unwrap();
    path
}

/// The committed fixture `name`.
pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}
