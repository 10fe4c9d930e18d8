//! Trains a small penguins bundle through `kiln_pipeline::train`, exports it, and runs the
//! example on the directory and on the archive; then the Arrow input's errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use kiln_core::BackendKind;
use kiln_pipeline::arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use kiln_pipeline::{Observer, PipelineConfig, Prediction, Predictor, TrainOptions, train};

const SPECIES: [&str; 3] = ["Adelie", "Chinstrap", "Gentoo"];

fn penguins(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../penguins")
        .join(name)
}

/// A penguins bundle (10 epochs) and its `.kiln` export, made once per test run.
fn bundle() -> &'static (PathBuf, PathBuf) {
    static BUNDLE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("embed-example");
        let _ = fs_err::remove_dir_all(&dir);
        fs_err::create_dir_all(&dir).unwrap();
        let data = penguins("penguins.csv");
        let text = fs_err::read_to_string(penguins("pipeline.toml"))
            .unwrap()
            .replace(
                "source = \"penguins.csv\"",
                &format!("source = {:?}", data.to_str().unwrap()),
            )
            .replace("epochs = 40", "epochs = 10");
        let path = dir.join("pipeline.toml");
        fs_err::write(&path, text).unwrap();
        let config = PipelineConfig::load(&path).unwrap();
        let options = TrainOptions::new(BackendKind::Ndarray, dir.join("runs"));
        let summary = train(&config, &options, Observer::default()).unwrap();
        let archive = dir.join("penguins.kiln");
        kiln_pipeline::export(&summary.run_dir, &archive).unwrap();
        (summary.run_dir.join("bundle"), archive)
    })
}

/// The example's stdout on `path`.
fn run_example(path: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_embed"))
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the example failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_example_predicts_the_same_from_the_directory_and_the_archive() {
    let (dir, archive) = bundle();
    let output = run_example(dir);
    assert_eq!(output, run_example(archive), "directory and archive agree");

    // `SOURCE row N: CLASS NAME=P NAME=P NAME=P`, three rows from JSON then three from Arrow.
    let mut by_source: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (n, line) in output.lines().enumerate() {
        let (head, prediction) = line.split_once(": ").unwrap();
        let (source, row) = head.split_once(" row ").unwrap();
        assert_eq!(row, (n % 3).to_string(), "{line}");
        let mut fields = prediction.split(' ');
        let class = fields.next().unwrap();
        let probabilities: BTreeMap<&str, f64> = fields
            .map(|f| {
                let (name, p) = f.split_once('=').unwrap();
                (name, p.parse().unwrap())
            })
            .collect();
        assert_eq!(
            probabilities.keys().copied().collect::<Vec<_>>(),
            SPECIES,
            "{line}"
        );
        let sum: f64 = probabilities.values().sum();
        assert!(
            (sum - 1.0).abs() < 1e-5,
            "probabilities sum to {sum}: {line}"
        );
        let best = probabilities
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        assert_eq!(*best.0, class, "the class is the most probable: {line}");
        by_source.entry(source).or_default().push(prediction);
    }
    assert_eq!(by_source.len(), 2, "{output}");
    assert_eq!(
        by_source["json"], by_source["arrow"],
        "JSON and Arrow input predict alike"
    );
    // A Torgersen penguin can only be an Adelie; even 10 epochs learn that.
    assert!(by_source["json"][0].starts_with("Adelie "), "{output}");
}

fn text(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn numbers(values: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

/// Two penguins as Arrow columns, with `replace` swapped in for the column of its name and
/// column `without` left out.
fn batch(replace: Option<(&str, &ArrayRef)>, without: Option<&str>) -> RecordBatch {
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("island", text(&[Some("Biscoe"), Some("Torgersen")])),
        ("bill_length_mm", numbers(&[46.1, 39.1])),
        ("bill_depth_mm", numbers(&[13.2, 18.7])),
        ("flipper_length_mm", numbers(&[211.0, 181.0])),
        ("body_mass_g", numbers(&[4500.0, 3750.0])),
        ("sex", text(&[None, Some("male")])),
        ("year", Arc::new(Int64Array::from(vec![2007, 2008]))),
        // Not a schema column: ignored, as a data file's extra columns are.
        ("note", text(&[Some("a"), Some("b")])),
    ];
    let columns = columns
        .into_iter()
        .filter(|(name, _)| Some(*name) != without)
        .map(|(name, array)| match &replace {
            Some((replaced, with)) if *replaced == name => (name, Arc::clone(*with)),
            _ => (name, array),
        });
    RecordBatch::try_from_iter(columns).unwrap()
}

#[test]
fn arrow_input_is_typed_by_the_schema_and_errors_name_column_and_row() {
    let (dir, archive) = bundle();
    let predictor = Predictor::<NdArray>::load(archive, &NdArrayDevice::Cpu).unwrap();
    assert_eq!(predictor.source(), archive.as_path());
    let predictions = predictor.predict_batch(&batch(None, None)).unwrap();
    assert_eq!(predictions.len(), 2);
    for prediction in &predictions {
        let Prediction::Class {
            class,
            probabilities,
        } = prediction
        else {
            panic!("a classifier predicts classes: {prediction:?}")
        };
        assert!(SPECIES.contains(&class.as_str()), "{class}");
        assert_eq!(probabilities.len(), 3);
    }
    // Same predictions as the JSON rows, and from the directory.
    let rows = serde_json::json!([
        {"island": "Biscoe", "bill_length_mm": 46.1, "bill_depth_mm": 13.2,
         "flipper_length_mm": 211, "body_mass_g": 4500, "sex": null, "year": 2007},
        {"island": "Torgersen", "bill_length_mm": 39.1, "bill_depth_mm": 18.7,
         "flipper_length_mm": 181, "body_mass_g": 3750, "sex": "male", "year": 2008},
    ]);
    assert_eq!(
        predictor.predict_json(rows.as_array().unwrap()).unwrap(),
        predictions
    );
    let from_dir = Predictor::<NdArray>::load(dir, &NdArrayDevice::Cpu).unwrap();
    assert_eq!(
        from_dir.predict_batch(&batch(None, None)).unwrap(),
        predictions
    );
    // Numbers given as text, and NaN as a missing value, read as a data file's would.
    let as_text = batch(
        Some(("bill_depth_mm", &text(&[Some("13.2"), Some("18.7")]))),
        None,
    );
    assert_eq!(predictor.predict_batch(&as_text).unwrap(), predictions);
    let with_nan = batch(Some(("bill_length_mm", &numbers(&[f64::NAN, 39.1]))), None);
    assert_eq!(predictor.predict_batch(&with_nan).unwrap().len(), 2);

    let error = |batch: RecordBatch| predictor.predict_batch(&batch).unwrap_err().to_string();
    let e = error(batch(None, Some("flipper_length_mm")));
    assert!(
        e.starts_with("<record batch>: no column `flipper_length_mm`"),
        "a missing feature column is named: {e}"
    );
    let e = error(batch(
        Some(("body_mass_g", &text(&[Some("4500"), Some("heavy")]))),
        None,
    ));
    assert_eq!(
        e,
        "<record batch>: row index 1, column `body_mass_g`: cannot read `heavy` as a number"
    );
    let empty = batch(None, None).slice(0, 0);
    assert!(predictor.predict_batch(&empty).unwrap().is_empty());
}
