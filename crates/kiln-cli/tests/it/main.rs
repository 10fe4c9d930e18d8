//! End-to-end tests of the `kiln` binary on the penguins example.

mod backends;
mod bad_input;
mod data;
mod devices;
mod export;
mod models;
mod nodes;
mod penguins;
mod report;
mod runs;
mod serve;
mod streaming;
mod sweep;
mod training;
mod transforms;

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

/// The species pipeline with `replace` applied, its data path made absolute, written to `dir`.
pub(crate) fn penguins_pipeline(dir: &Path, replace: &[(&str, &str)]) -> PathBuf {
    let mut text = fs_err::read_to_string(example("pipeline.toml")).unwrap();
    let data = example("penguins.csv");
    text = text.replace(
        "source = \"penguins.csv\"",
        &format!("source = {:?}", data.to_str().unwrap()),
    );
    for (from, to) in replace {
        assert!(text.contains(from), "fixture edit `{from}` applies");
        text = text.replace(from, to);
    }
    let path = dir.join("pipeline.toml");
    fs_err::write(&path, text).unwrap();
    path
}

/// A fresh scratch directory, removed on drop.
pub(crate) fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kiln-it-")
        .tempdir()
        .expect("temp dir")
}

/// The arguments `train PIPELINE --out OUT EXTRA..`.
pub(crate) fn train_args<'a>(pipeline: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        pipeline.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

/// `kiln train PIPELINE --out OUT EXTRA.. --json`; panics with kiln's stderr when it fails.
pub(crate) fn train(pipeline: &Path, out: &Path, extra: &[&str]) -> (PathBuf, Value) {
    train_json(&train_args(pipeline, out, extra))
}

/// `kiln train PIPELINE --out OUT EXTRA..`, which should fail: its exit code and stderr.
pub(crate) fn train_failure(pipeline: &Path, out: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let output = kiln(&train_args(pipeline, out, extra));
    (output.status.code(), stderr(&output))
}

/// Runs `kiln ARGS --json` (a train command); returns the run directory and its manifest.
pub(crate) fn train_json(args: &[&str]) -> (PathBuf, Value) {
    let mut args = args.to_vec();
    args.push("--json");
    let output = kiln(&args);
    assert!(
        output.status.success(),
        "kiln train failed: {}",
        stderr(&output)
    );
    // JSON lines: one per epoch, then the run.
    let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
    let last = stdout.lines().last().expect("train --json prints lines");
    let json: Value = serde_json::from_str(last).expect("train --json prints JSON lines");
    assert_eq!(json["event"], "run");
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
