//! End-to-end tests of the `kiln` binary on the penguins example.

mod bad_input;
mod penguins;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `kiln` with `args`.
pub(crate) fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("the kiln binary runs")
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub(crate) fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/penguins")
        .join(name)
}

/// A fresh scratch directory, removed on drop.
pub(crate) fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kiln-it-")
        .tempdir()
        .expect("temp dir")
}

/// `kiln train --json`; panics with kiln's stderr when it fails.
pub(crate) fn train(pipeline: &Path, out: &Path, extra: &[&str]) -> (PathBuf, Value) {
    let mut args = vec![
        "train",
        pipeline.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let output = kiln(&args);
    assert!(
        output.status.success(),
        "kiln train failed: {}",
        stderr(&output)
    );
    let json: Value = serde_json::from_slice(&output.stdout).expect("train --json prints JSON");
    let run_dir = PathBuf::from(json["run_dir"].as_str().unwrap());
    (run_dir, json["manifest"].clone())
}

/// Entries of `dir` whose names do not start with a dot (staging dirs are hidden).
pub(crate) fn visible_entries(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}
