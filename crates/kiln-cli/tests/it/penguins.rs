use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::{example, kiln, scratch, stderr, train};

/// Lines of penguins.csv for the given data rows (0-based), with the header.
fn csv_rows(rows: &[usize]) -> String {
    let text = fs_err::read_to_string(example("penguins.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = format!("{}\n", lines[0]);
    for &r in rows {
        out.push_str(lines[r + 1]);
        out.push('\n');
    }
    out
}

fn test_rows(run_dir: &Path) -> Vec<usize> {
    let splits: Value =
        serde_json::from_slice(&fs_err::read(run_dir.join("splits.json")).unwrap()).unwrap();
    splits["test"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| usize::try_from(v.as_u64().unwrap()).unwrap())
        .collect()
}

/// Parses `kiln predict` output: header and rows of fields (no quoting in penguins).
fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    (
        header,
        lines
            .map(|l| l.split(',').map(String::from).collect())
            .collect(),
    )
}

/// `kiln predict BUNDLE INPUT -o OUTPUT EXTRA..`.
fn predict_with(bundle: &Path, input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "predict",
        bundle.to_str().unwrap(),
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    kiln(&args)
}

fn predict(
    bundle: &Path,
    input: &Path,
    output: &Path,
    backend: &str,
) -> (Vec<String>, Vec<Vec<String>>) {
    let out = predict_with(bundle, input, output, &["--backend", backend]);
    assert!(
        out.status.success(),
        "kiln predict failed: {}",
        stderr(&out)
    );
    parse_csv(&fs_err::read_to_string(output).unwrap())
}

#[test]
fn species_on_ndarray_trains_predicts_and_evaluates_consistently() {
    let dir = scratch();
    let (run_dir, manifest) = train(&example("pipeline.toml"), dir.path(), &[]);
    let accuracy = manifest["metrics"]["test"]["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");
    for key in ["macro_f1", "log_loss"] {
        assert!(
            manifest["metrics"]["test"][key].is_f64(),
            "test {key} reported"
        );
    }

    // The run directory holds what the manifest promises.
    for file in [
        "manifest.json",
        "metrics.jsonl",
        "splits.json",
        "bundle/bundle.json",
        "bundle/model.mpk",
        "bundle/manifest.json",
    ] {
        assert!(run_dir.join(file).is_file(), "{file} missing");
    }
    let epochs = fs_err::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(epochs as u64, manifest["epochs_run"].as_u64().unwrap());
    let data = fs_err::read(example("penguins.csv")).unwrap();
    assert_eq!(
        manifest["data_hash"]["blake3"],
        blake3::hash(&data).to_hex().as_str()
    );
    assert_eq!(manifest["device"]["backend"], "ndarray");
    assert_eq!(manifest["kiln_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest["burn_version"], "0.21.0");
    assert!(manifest["timings"]["train"].as_f64().unwrap() > 0.0);
    assert_eq!(manifest["config_hash"].as_str().unwrap().len(), 64);

    // `kiln predict` on the test rows reproduces the reported accuracy.
    let rows = test_rows(&run_dir);
    let input = dir.path().join("test.csv");
    fs_err::write(&input, csv_rows(&rows)).unwrap();
    let (header, predictions) = predict(
        &run_dir.join("bundle"),
        &input,
        &dir.path().join("p.csv"),
        "ndarray",
    );
    assert_eq!(
        header,
        [
            "predicted_species",
            "prob_Adelie",
            "prob_Chinstrap",
            "prob_Gentoo"
        ]
    );
    assert_eq!(
        predictions.len(),
        rows.len(),
        "one output row per input row"
    );
    let truth: Vec<String> = csv_rows(&rows)
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    let correct = predictions
        .iter()
        .zip(&truth)
        .filter(|(p, t)| p[0] == **t)
        .count();
    #[allow(clippy::cast_precision_loss)]
    let predicted_accuracy = correct as f64 / rows.len() as f64;
    assert!(
        (predicted_accuracy - accuracy).abs() < 1e-12,
        "predict {predicted_accuracy} vs train {accuracy}"
    );
    for p in &predictions {
        let sum: f64 = p[1..].iter().map(|v| v.parse::<f64>().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-5, "probabilities sum to 1");
    }

    // `kiln evaluate` on the same rows gives the same metrics.
    let out = kiln(&[
        "evaluate",
        run_dir.join("bundle").to_str().unwrap(),
        input.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let evaluated: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["accuracy", "macro_f1", "log_loss"] {
        let (a, b) = (
            evaluated["metrics"][key].as_f64().unwrap(),
            manifest["metrics"]["test"][key].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-12, "{key}: evaluate {a} vs train {b}");
    }
}

#[test]
fn same_seed_gives_byte_identical_records_and_metrics() {
    let dir = scratch();
    let (a, manifest_a) = train(&example("pipeline.toml"), dir.path(), &[]);
    let (b, manifest_b) = train(&example("pipeline.toml"), dir.path(), &[]);
    assert_ne!(a, b, "a second run never overwrites the first");
    let read = |p: &Path| fs_err::read(p).unwrap();
    assert!(
        read(&a.join("bundle/model.mpk")) == read(&b.join("bundle/model.mpk")),
        "model records differ"
    );
    assert_eq!(
        read(&a.join("metrics.jsonl")),
        read(&b.join("metrics.jsonl"))
    );
    assert_eq!(manifest_a["metrics"], manifest_b["metrics"]);
    // A different seed changes the weights, so the comparison above can fail.
    let (c, _) = train(&example("pipeline.toml"), dir.path(), &["--seed", "7"]);
    assert!(read(&a.join("bundle/model.mpk")) != read(&c.join("bundle/model.mpk")));
}

#[test]
fn body_mass_regression_reaches_r2_0_80() {
    let dir = scratch();
    let (run_dir, manifest) = train(&example("regression.toml"), dir.path(), &[]);
    let r2 = manifest["metrics"]["test"]["r2"].as_f64().unwrap();
    assert!(r2 >= 0.80, "test R² {r2}");
    assert_eq!(manifest["rows_without_target"], 2);
    // Predictions come back in grams, not standardized units.
    let input = dir.path().join("all.csv");
    fs_err::copy(example("penguins.csv"), &input).unwrap();
    let (header, rows) = predict(
        &run_dir.join("bundle"),
        &input,
        &dir.path().join("p.csv"),
        "ndarray",
    );
    assert_eq!(header, ["predicted_body_mass_g"]);
    assert_eq!(rows.len(), 344);
    let mean: f64 = rows
        .iter()
        .map(|r| r[0].parse::<f64>().unwrap())
        .sum::<f64>()
        / 344.0;
    assert!((3500.0..5000.0).contains(&mean), "mean prediction {mean} g");
}

/// wgpu (lavapipe in CI) trains the same pipeline to the same model as ndarray.
#[test]
fn species_on_wgpu_matches_ndarray() {
    let dir = scratch();
    let pipeline = example("pipeline.toml");
    let out = kiln(&[
        "train",
        pipeline.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
        "--json",
        "--backend",
        "wgpu",
    ]);
    if !out.status.success() {
        let message = stderr(&out);
        assert!(
            message.contains("has no usable device"),
            "wgpu run failed: {message}"
        );
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must have a wgpu adapter (lavapipe): {message}"
        );
        eprintln!("skipping: no wgpu adapter on this machine ({message})");
        return;
    }
    let stdout = String::from_utf8(out.stdout).unwrap();
    let gpu: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let accuracy = gpu["manifest"]["metrics"]["test"]["accuracy"]
        .as_f64()
        .unwrap();
    assert!(accuracy >= 0.95, "wgpu test accuracy {accuracy}");
    let (cpu_run, _) = train(&pipeline, dir.path(), &[]);
    let gpu_run = Path::new(gpu["run_dir"].as_str().unwrap());

    let input = dir.path().join("all.csv");
    fs_err::copy(example("penguins.csv"), &input).unwrap();
    let (_, on_gpu) = predict(
        &gpu_run.join("bundle"),
        &input,
        &dir.path().join("gpu.csv"),
        "wgpu",
    );
    let (_, on_cpu) = predict(
        &cpu_run.join("bundle"),
        &input,
        &dir.path().join("cpu.csv"),
        "ndarray",
    );
    let mut worst = 0.0_f64;
    for (g, c) in on_gpu.iter().zip(&on_cpu) {
        for (pg, pc) in g[1..].iter().zip(&c[1..]) {
            worst = worst.max((pg.parse::<f64>().unwrap() - pc.parse::<f64>().unwrap()).abs());
        }
    }
    assert!(
        worst <= 1e-3,
        "max |Δ probability| between wgpu and ndarray: {worst}"
    );
}

#[test]
fn predict_streams_chunks_to_the_same_output_and_writes_all_or_nothing() {
    let dir = scratch();
    let (run_dir, _) = train(&example("pipeline.toml"), dir.path(), &[]);
    let bundle = run_dir.join("bundle");
    let input = example("penguins.csv");
    let whole = dir.path().join("whole.csv");
    let chunked = dir.path().join("chunked.csv");
    let (_, rows) = predict(&bundle, &input, &whole, "ndarray");
    assert_eq!(rows.len(), 344);
    let out = predict_with(&bundle, &input, &chunked, &["--chunk-rows", "7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // 50 chunks of 7 rows and one of 1: the same bytes as one chunk of all rows.
    assert_eq!(
        fs_err::read(&chunked).unwrap(),
        fs_err::read(&whole).unwrap()
    );

    // A bad cell in a late chunk, after earlier chunks were written: the error names its
    // file line and column, and the output file does not appear at all.
    let mut lines: Vec<String> = fs_err::read_to_string(&input)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let mut fields: Vec<&str> = lines[299].split(',').collect();
    fields[2] = "abc";
    lines[299] = fields.join(",");
    let bad = dir.path().join("bad.csv");
    fs_err::write(&bad, lines.join("\n") + "\n").unwrap();
    let bad_out = dir.path().join("bad-predictions.csv");
    let out = predict_with(&bundle, &bad, &bad_out, &["--chunk-rows", "7"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bad.csv: line 300, column `bill_length_mm`: cannot read `abc"),
        "{}",
        stderr(&out)
    );
    let leftovers: Vec<_> = fs_err::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("bad-predictions"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
