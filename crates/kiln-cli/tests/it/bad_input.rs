//! Each bad input gets a short error naming the file (and line and column where they apply),
//! exit code 2, and no run directory that looks complete.

use std::path::Path;

use crate::{example, scratch, train_failure, visible_entries};

const PIPELINE: &str = r#"[pipeline]
name = "bad"
[data]
source = "data.csv"
target = "species"
infer_rows = 5
[model]
hidden = [4]
[train]
epochs = 2
"#;

/// Writes `pipeline` and `data` (when given) into `dir`, runs `kiln train`, and checks the
/// exit code, that stderr contains every `expected` piece, and that no run was committed.
fn fails_cleanly(
    dir: &Path,
    pipeline: &str,
    data: Option<&str>,
    extra: &[&str],
    expected: &[&str],
) {
    let config = dir.join("pipeline.toml");
    fs_err::write(&config, pipeline).unwrap();
    if let Some(data) = data {
        fs_err::write(dir.join("data.csv"), data).unwrap();
    }
    let out_dir = dir.join("runs");
    let (code, message) = train_failure(&config, &out_dir, extra);
    assert_eq!(code, Some(2), "exit code; stderr: {message}");
    for piece in expected {
        assert!(message.contains(piece), "stderr lacks `{piece}`: {message}");
    }
    assert!(message.lines().count() <= 3, "short error: {message}");
    assert!(!message.contains("panicked"), "{message}");
    assert_eq!(
        visible_entries(&out_dir),
        Vec::<String>::new(),
        "no run directory"
    );
}

fn penguins() -> String {
    fs_err::read_to_string(example("penguins.csv")).unwrap()
}

#[test]
fn missing_data_file() {
    let dir = scratch();
    fails_cleanly(
        dir.path(),
        PIPELINE,
        None,
        &[],
        &["data.csv", "No such file"],
    );
}

#[test]
fn target_not_in_data() {
    let dir = scratch();
    let pipeline = PIPELINE.replace("target = \"species\"", "target = \"specie\"");
    fails_cleanly(
        dir.path(),
        &pipeline,
        Some(&penguins()),
        &[],
        &["data.csv", "no column `specie`", "did you mean `species`?"],
    );
}

#[test]
fn ragged_row() {
    let dir = scratch();
    let mut lines: Vec<String> = penguins().lines().map(String::from).collect();
    lines[3] = "Adelie,Torgersen,40.3,18".into();
    fails_cleanly(
        dir.path(),
        PIPELINE,
        Some(&(lines.join("\n") + "\n")),
        &[],
        &["data.csv: line 4", "expected 8 fields", "found 4"],
    );
}

#[test]
fn non_numeric_value_in_numeric_column() {
    let dir = scratch();
    let mut lines: Vec<String> = penguins().lines().map(String::from).collect();
    // Past the 5 rows used for inference, so the column is inferred numeric.
    let mut fields: Vec<&str> = lines[19].split(',').collect();
    fields[2] = "abc";
    lines[19] = fields.join(",");
    fails_cleanly(
        dir.path(),
        PIPELINE,
        Some(&(lines.join("\n") + "\n")),
        &[],
        &[
            "data.csv: line 20, column `bill_length_mm`: cannot read `abc",
            "as a number",
        ],
    );
}

#[test]
fn empty_file() {
    let dir = scratch();
    fails_cleanly(dir.path(), PIPELINE, Some(""), &[], &["data.csv", "empty"]);
}

#[test]
fn unknown_backend() {
    let dir = scratch();
    fails_cleanly(
        dir.path(),
        PIPELINE,
        Some(&penguins()),
        &["--backend", "tpu"],
        &["tpu", "ndarray, flex, wgpu"],
    );
}

#[test]
fn unknown_key_in_pipeline() {
    let dir = scratch();
    let pipeline = PIPELINE.replace("epochs = 2", "epoch = 2");
    fails_cleanly(
        dir.path(),
        &pipeline,
        Some(&penguins()),
        &[],
        &["pipeline.toml: line 10: unknown key `epoch`; did you mean `epochs`?"],
    );
}
