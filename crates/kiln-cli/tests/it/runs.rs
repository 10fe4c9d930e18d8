//! Provenance, `kiln reproduce`, the stage cache and run tracking through the `kiln` binary.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{example, kiln, penguins_pipeline, scratch, stderr, train};

/// The species pipeline, 6 epochs, reading its own copy of the data in `dir` (so a test may
/// change the data), with `replace` applied.
fn quick_pipeline(dir: &Path, replace: &[(&str, &str)]) -> (PathBuf, PathBuf) {
    let data = dir.join("penguins.csv");
    fs_err::copy(example("penguins.csv"), &data).unwrap();
    let mut edits = vec![("epochs = 40", "epochs = 6")];
    edits.extend_from_slice(replace);
    let config = penguins_pipeline(dir, &edits);
    let text = fs_err::read_to_string(&config).unwrap().replace(
        example("penguins.csv").to_str().unwrap(),
        data.to_str().unwrap(),
    );
    fs_err::write(&config, text).unwrap();
    (config, data)
}

fn stage_cached(manifest: &Value) -> Vec<(String, bool)> {
    ["ingest", "validate", "split", "stats", "transform"]
        .iter()
        .map(|s| {
            let cached = manifest["stages"][s]["cached"]
                .as_bool()
                .unwrap_or_else(|| panic!("stage {s} recorded: {}", manifest["stages"]));
            ((*s).to_owned(), cached)
        })
        .collect()
}

fn ran(stages: &[(String, bool)]) -> Vec<&str> {
    stages
        .iter()
        .filter(|(_, cached)| !cached)
        .map(|(s, _)| s.as_str())
        .collect()
}

#[test]
fn the_manifest_records_every_input_of_the_run() {
    let dir = scratch();
    let (config, data) = quick_pipeline(dir.path(), &[]);
    let (_, manifest) = train(&config, &dir.path().join("runs"), &[]);
    let bytes = fs_err::read(&data).unwrap();
    let input = &manifest["inputs"][0];
    assert_eq!(input["path"], data.to_str().unwrap());
    assert_eq!(input["blake3"], blake3::hash(&bytes).to_hex().as_str());
    assert_eq!(input["bytes"], bytes.len());
    let lock =
        fs_err::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock")).unwrap();
    assert_eq!(
        manifest["cargo_lock"],
        blake3::hash(&lock).to_hex().as_str()
    );
    assert_eq!(manifest["format"], 2);
    assert_eq!(manifest["seeds"]["split"], 42);
    assert_eq!(manifest["seeds"]["model_init"], 42);
    assert!(manifest["host"]["threads"].as_u64().unwrap() >= 1);
    assert!(!manifest["host"]["cpu"].as_str().unwrap().is_empty());
    assert_eq!(manifest["parameter_hash"].as_str().unwrap().len(), 64);
    assert!(manifest["finished_at"].as_u64() >= manifest["started_at"].as_u64());
    assert!(
        manifest["command"][1] == "train",
        "the command line is recorded: {}",
        manifest["command"]
    );
    // The scratch folder is no git work tree.
    assert!(manifest.get("git").is_none());
    for stage in [
        "ingest",
        "validate",
        "split",
        "stats",
        "transform",
        "train",
        "evaluate",
    ] {
        assert!(
            manifest["timings"][stage].as_f64().is_some(),
            "timing of {stage}"
        );
    }
    assert_eq!(
        manifest["splits"]["train"]["hash"].as_str().unwrap().len(),
        64
    );
}

#[test]
fn the_stage_cache_reruns_only_the_stages_whose_inputs_changed() {
    let dir = scratch();
    let runs = dir.path().join("runs");
    let (config, data) = quick_pipeline(dir.path(), &[]);
    let (_, fresh) = train(&config, &runs, &[]);
    assert_eq!(
        ran(&stage_cached(&fresh)),
        ["ingest", "validate", "split", "stats", "transform"]
    );

    // Same config again: every stage cached, and the same model bit for bit.
    let (_, again) = train(&config, &runs, &[]);
    assert!(ran(&stage_cached(&again)).is_empty(), "{}", again["stages"]);
    assert_eq!(again["parameter_hash"], fresh["parameter_hash"]);
    assert_eq!(again["metrics"], fresh["metrics"]);

    // Only [model] changed: every data stage is reused.
    let text = fs_err::read_to_string(&config).unwrap();
    fs_err::write(&config, text.replace("hidden = [16]", "hidden = [24]")).unwrap();
    let output = kiln(&[
        "train",
        config.to_str().unwrap(),
        "--out",
        runs.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        summary.contains(
            "stages    ingest cached, validate cached, split cached, stats cached, transform cached"
        ),
        "the summary says what was cached:\n{summary}"
    );
    let (_, model_only) = train(&config, &runs, &[]);
    assert!(ran(&stage_cached(&model_only)).is_empty());
    assert_ne!(model_only["parameter_hash"], fresh["parameter_hash"]);

    // A transform changed: that stage alone re-runs.
    let text = fs_err::read_to_string(&config).unwrap();
    fs_err::write(
        &config,
        text.replace("scale = \"standard\"", "scale = \"robust\""),
    )
    .unwrap();
    let (_, transform) = train(&config, &runs, &[]);
    assert_eq!(ran(&stage_cached(&transform)), ["transform"]);

    // The data changed: everything re-runs.
    let text = fs_err::read_to_string(&data).unwrap();
    fs_err::write(&data, text.replacen("39.1", "39.2", 1)).unwrap();
    let (_, new_data) = train(&config, &runs, &[]);
    assert_eq!(
        ran(&stage_cached(&new_data)),
        ["ingest", "validate", "split", "stats", "transform"]
    );

    // --no-cache runs every stage and matches the cached result exactly.
    let (_, uncached) = train(&config, &runs, &["--no-cache"]);
    assert_eq!(ran(&stage_cached(&uncached)).len(), 5);
    assert_eq!(uncached["parameter_hash"], new_data["parameter_hash"]);

    // `kiln cache ls` lists the entries; `clear` removes them.
    let output = kiln(&["cache", "ls", "--runs", runs.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let entries: Value = serde_json::from_slice(&output.stdout).unwrap();
    let stages: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    // Two data versions × 5 stages, plus the second transform of the first data.
    assert_eq!(stages.len(), 11, "{stages:?}");
    let output = kiln(&["cache", "clear", "--runs", runs.to_str().unwrap()]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("removed 11 entries"));
    let (_, cleared) = train(&config, &runs, &[]);
    assert_eq!(ran(&stage_cached(&cleared)).len(), 5);
}

#[test]
fn reproduce_passes_then_names_the_changed_data_file() {
    let dir = scratch();
    let (config, data) = quick_pipeline(dir.path(), &[]);
    let (run, _) = train(&config, &dir.path().join("runs"), &[]);
    let output = kiln(&["reproduce", run.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["reproduced"], true);
    let checks = report["report"]["checks"].as_array().unwrap();
    assert!(checks.iter().any(|c| c["what"] == "parameter hash"));
    assert!(checks.iter().any(|c| c["what"] == "metric test.accuracy"));

    // One byte of the data changes (a bill length, 39.1 → 39.2).
    let text = fs_err::read_to_string(&data).unwrap();
    fs_err::write(&data, text.replacen("39.1", "39.2", 1)).unwrap();
    let output = kiln(&["reproduce", run.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert!(printed.contains("DIFF"), "{printed}");
    assert!(
        printed.contains(&format!("data file {} changed", data.display())),
        "names the data file: {printed}"
    );
    assert!(stderr(&output).contains("does not reproduce"));
}

#[test]
fn runs_list_show_compare_and_mlflow_export() {
    let dir = scratch();
    let runs = dir.path().join("runs");
    let (config, _) = quick_pipeline(dir.path(), &[]);
    let (first, _) = train(&config, &runs, &[]);
    let text = fs_err::read_to_string(&config).unwrap();
    fs_err::write(&config, text.replace("lr = 0.01", "lr = 0.02")).unwrap();
    let (second, _) = train(&config, &runs, &[]);

    let output = kiln(&["runs", "list", "--runs", runs.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("penguins-species-1") && table.contains("penguins-species-2"),
        "{table}"
    );
    assert!(table.contains("2 runs under"), "{table}");

    let output = kiln(&["runs", "show", first.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(shown.contains("stages    ingest ran"), "{shown}");

    let output = kiln(&[
        "runs",
        "compare",
        first.to_str().unwrap(),
        second.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let comparison: Value = serde_json::from_slice(&output.stdout).unwrap();
    let diff = comparison["config_diff"].as_object().unwrap();
    assert_eq!(
        diff.keys().collect::<Vec<_>>(),
        ["train.lr"],
        "only the rate differs"
    );
    assert_eq!(diff["train.lr"], serde_json::json!(["0.01", "0.02"]));
    assert_eq!(
        comparison["metrics"]["test.accuracy"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let store = dir.path().join("mlruns");
    let output = kiln(&[
        "runs",
        "export",
        "--mlflow",
        store.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let experiment = fs_err::read_to_string(store.join("1/meta.yaml")).unwrap();
    assert!(
        experiment.contains("name: 'penguins-species'"),
        "{experiment}"
    );
    assert!(
        store.join("0/meta.yaml").is_file(),
        "MLflow's Default experiment"
    );
    let mut run_dirs: Vec<PathBuf> = fs_err::read_dir(store.join("1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    run_dirs.sort();
    assert_eq!(run_dirs.len(), 2);
    let mut rates = Vec::new();
    for run in &run_dirs {
        let meta = fs_err::read_to_string(run.join("meta.yaml")).unwrap();
        assert!(meta.contains("status: 3"), "{meta}");
        let id = run.file_name().unwrap().to_str().unwrap();
        assert!(meta.contains(&format!("run_id: {id}")));
        rates.push(fs_err::read_to_string(run.join("params/train.lr")).unwrap());
        let losses = fs_err::read_to_string(run.join("metrics/train_loss")).unwrap();
        let lines: Vec<&str> = losses.lines().collect();
        assert_eq!(lines.len(), 6, "one point per epoch");
        for (i, line) in lines.iter().enumerate() {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 3, "timestamp value step: {line}");
            assert!(fields[1].parse::<f64>().unwrap() > 0.0);
            assert_eq!(fields[2], (i + 1).to_string());
        }
        assert!(run.join("metrics/test.accuracy").is_file());
        assert!(run.join("artifacts/manifest.json").is_file());
        assert!(run.join("artifacts/bundle/model.mpk").is_file());
        assert!(
            fs_err::read_to_string(run.join("tags/mlflow.runName"))
                .unwrap()
                .starts_with("penguins-species-")
        );
    }
    rates.sort();
    assert_eq!(rates, ["0.01", "0.02"]);
    read_back_with_mlflow(&store);
}

/// Reads the store back with MLflow's own client when Python has it (`pip install
/// mlflow-skinny`; CI installs it).
fn read_back_with_mlflow(store: &Path) {
    let script = format!(
        "import mlflow, sys\n\
         c = mlflow.tracking.MlflowClient(tracking_uri='file://{}')\n\
         e = c.get_experiment_by_name('penguins-species')\n\
         runs = c.search_runs([e.experiment_id])\n\
         assert len(runs) == 2, runs\n\
         assert sorted(r.data.params['train.lr'] for r in runs) == ['0.01', '0.02']\n\
         h = c.get_metric_history(runs[0].info.run_id, 'train_loss')\n\
         assert [m.step for m in h] == [1, 2, 3, 4, 5, 6], h\n\
         print('mlflow read', len(runs), 'runs')\n",
        store.display()
    );
    let python = std::env::var("KILN_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_mlflow = std::process::Command::new(&python)
        .args(["-c", "import mlflow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_mlflow {
        eprintln!(
            "mlflow is not installed for {python}: the store's layout is checked, not read back"
        );
        return;
    }
    // MLflow 3 keeps the file store behind an opt-in.
    let output = std::process::Command::new(&python)
        .args(["-c", &script])
        .env("MLFLOW_ALLOW_FILE_STORE", "true")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "mlflow reads the store: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
