//! Training on data larger than the memory budget: the run streams the file in chunks.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{kiln, scratch, stderr, train, train_failure};

/// A learnable binary target over four numeric columns (some missing) and a category.
fn generate(path: &Path, rows: usize, bad_row: Option<usize>) {
    let mut text = String::from("x1,x2,x3,x4,c,y\n");
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // The top 32 bits, exactly as f64: uniform in [-1, 1).
        f64::from((state >> 32) as u32).mul_add(2.0 / 4_294_967_296.0, -1.0)
    };
    for i in 0..rows {
        let (x1, x2, x3, x4) = (uniform(), uniform(), uniform(), uniform());
        let c = ["a", "b", "c"][i % 3];
        let score =
            2.0f64.mul_add(x1, (-1.5f64).mul_add(x2, x3)) + if c == "a" { 0.8 } else { -0.4 };
        let y = if score > 0.0 { "pos" } else { "neg" };
        let x4 = if i % 11 == 0 {
            "NA".to_owned()
        } else {
            format!("{x4:.5}")
        };
        let x1 = if bad_row == Some(i) {
            "oops".to_owned()
        } else {
            format!("{x1:.5}")
        };
        writeln!(text, "{x1},{x2:.5},{x3:.5},{x4},{c},{y}").unwrap();
    }
    fs_err::write(path, text).unwrap();
}

/// The CSV file `csv` written by [`generate`] as typed Parquet (`NA` as null), in row groups of
/// 7,000 rows so that chunks cross them.
fn to_parquet(csv: &Path, out: &Path) {
    use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
    let text = fs_err::read_to_string(csv).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let mut columns: Vec<(&str, ArrayRef)> = (0..4)
        .map(|c| {
            let values: Float64Array = rows.iter().map(|r| r[c].parse().ok()).collect();
            (["x1", "x2", "x3", "x4"][c], Arc::new(values) as ArrayRef)
        })
        .collect();
    for (c, name) in [(4, "c"), (5, "y")] {
        let values: StringArray = rows.iter().map(|r| Some(r[c])).collect();
        columns.push((name, Arc::new(values)));
    }
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(7_000))
        .build();
    let file = fs_err::File::create(out).unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn pipeline(dir: &Path, data: &Path, data_extra: &str) -> PathBuf {
    let data = data.display();
    let text = format!(
        r#"[pipeline]
name = "stream"
seed = 7

[data]
source = "{data}"
target = "y"
{data_extra}

[split]
valid = 0.1
test = 0.2

[features]
numeric = {{ impute = "mean", scale = "standard" }}

[model]
kind = "linear"
hidden = []

[train]
epochs = 3
batch_size = 256
lr = 0.05
optimizer = "adam"
"#
    );
    let path = dir.join("pipeline.toml");
    fs_err::write(&path, text).unwrap();
    path
}

#[test]
fn a_file_over_the_budget_streams_learns_and_reruns_exactly() {
    let dir = scratch();
    let data = dir.path().join("big.csv");
    generate(&data, 60_000, None);
    // 2 MiB: the ~2.7 MB file is over it, so the run streams without being told to.
    let config = pipeline(dir.path(), &data, "");
    let out = dir.path().join("runs");
    let (run, manifest) = train(&config, &out, &["--memory-budget-mib", "2"]);
    let streaming = &manifest["streaming"];
    assert_eq!(streaming["memory_budget_mib"], 2, "{manifest}");
    assert!(streaming["chunk_rows"].as_u64().unwrap() < 60_000 / 10);
    assert_eq!(
        manifest["splits"]["train"]["rows"].as_u64().unwrap()
            + manifest["splits"]["valid"]["rows"].as_u64().unwrap()
            + manifest["splits"]["test"]["rows"].as_u64().unwrap(),
        60_000
    );
    let accuracy = manifest["metrics"]["test"]["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.9, "the model learned: accuracy {accuracy}");
    // A budget this small caps the rows the final metrics score (a uniform sample past it).
    let scored = streaming["scored_rows"]["test"].as_u64().unwrap();
    let test_rows = manifest["splits"]["test"]["rows"].as_u64().unwrap();
    assert!(
        (1000..=test_rows).contains(&scored),
        "{scored} of {test_rows}"
    );

    let (_, again) = train(&config, &out, &["--memory-budget-mib", "2"]);
    assert_eq!(again["parameter_hash"], manifest["parameter_hash"]);
    assert_eq!(again["metrics"], manifest["metrics"]);
    assert_eq!(again["splits"], manifest["splits"]);

    // The bundle serves as any other.
    let predictions = dir.path().join("predictions.csv");
    let bundle = run.join("bundle");
    let output = kiln(&[
        "predict",
        bundle.to_str().unwrap(),
        data.to_str().unwrap(),
        "-o",
        predictions.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = fs_err::read_to_string(&predictions)
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 60_001);

    // Without a budget the same pipeline loads the file, as before.
    let (_, loaded) = train(&config, &out, &[]);
    assert!(loaded.get("streaming").is_none(), "{loaded}");
}

#[test]
fn a_parquet_file_streams_and_trains_the_model_its_csv_twin_trains() {
    let dir = scratch();
    let csv = dir.path().join("big.csv");
    generate(&csv, 60_000, None);
    let parquet = dir.path().join("big.parquet");
    to_parquet(&csv, &parquet);
    let out = dir.path().join("runs");
    let config = pipeline(dir.path(), &csv, "streaming = true\nmemory_budget_mib = 2");
    let (run, from_csv) = train(&config, &out, &[]);
    // The footer's uncompressed size (~2.6 MB) is over the budget: the run streams untold.
    let config = pipeline(dir.path(), &parquet, "");
    let (_, from_parquet) = train(&config, &out, &["--memory-budget-mib", "2"]);
    let streaming = &from_parquet["streaming"];
    assert!(
        streaming["estimated_bytes"].as_u64().unwrap() > 2 << 20,
        "{streaming}"
    );
    assert_eq!(streaming["chunk_rows"], from_csv["streaming"]["chunk_rows"]);
    // The same rows, split alike and shuffled alike, train the same weights.
    assert_eq!(from_parquet["splits"], from_csv["splits"]);
    assert_eq!(from_parquet["parameter_hash"], from_csv["parameter_hash"]);
    assert_eq!(from_parquet["metrics"], from_csv["metrics"]);

    // Batch scoring streams Parquet too, chunk by chunk, to the predictions of the CSV.
    let bundle = run.join("bundle");
    let predict = |data: &Path, chunk_rows: &str| {
        let predictions = dir.path().join("predictions.csv");
        let output = kiln(&[
            "predict",
            bundle.to_str().unwrap(),
            data.to_str().unwrap(),
            "--chunk-rows",
            chunk_rows,
            "-o",
            predictions.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        fs_err::read_to_string(&predictions).unwrap()
    };
    assert_eq!(predict(&parquet, "4096"), predict(&csv, "65536"));
}

#[test]
fn a_bad_value_deep_in_a_streamed_file_names_its_line_and_column() {
    let dir = scratch();
    let data = dir.path().join("bad.csv");
    generate(&data, 50_000, Some(45_000));
    let config = pipeline(dir.path(), &data, "streaming = true\nmemory_budget_mib = 1");
    let (code, message) = train_failure(&config, dir.path(), &[]);
    assert_eq!(code, Some(2), "{message}");
    assert!(message.contains("bad.csv"), "{message}");
    assert!(
        message.contains("45002"),
        "line of data row 45000: {message}"
    );
    assert!(message.contains("x1"), "{message}");
}

#[test]
fn splits_that_need_every_row_are_refused_when_streaming() {
    let dir = scratch();
    let data = dir.path().join("d.csv");
    generate(&data, 2_000, None);
    let config = pipeline(dir.path(), &data, "streaming = true");
    let text = fs_err::read_to_string(&config).unwrap();
    fs_err::write(
        &config,
        text.replace("[split]\n", "[split]\nmethod = \"stratified\"\n"),
    )
    .unwrap();
    let (code, message) = train_failure(&config, dir.path(), &[]);
    assert_eq!(code, Some(2), "{message}");
    assert!(message.contains("split.method"), "{message}");
}
