//! The model zoo on real data: accuracy floors, model summaries, metric selection, BCE.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{kiln, scratch, stderr, train};

fn examples(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(path)
}

fn test_metric(manifest: &Value, name: &str) -> f64 {
    manifest["metrics"]["test"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no test {name} in {:#}", manifest["metrics"]))
}

#[test]
fn digits_mlp_reaches_096_and_reports_the_chosen_metrics() {
    let out = scratch();
    let (_, manifest) = train(&examples("digits/pipeline.toml"), out.path(), &[]);
    let accuracy = test_metric(&manifest, "accuracy");
    assert!(accuracy >= 0.96, "digits MLP test accuracy {accuracy}");
    // `[evaluate] metrics` picks what is reported, for valid and test alike.
    for split in ["valid", "test"] {
        let names: Vec<&String> = manifest["metrics"][split]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(
            names,
            [
                "accuracy",
                "balanced_accuracy",
                "ece",
                "f1_macro",
                "log_loss",
                "roc_auc"
            ]
        );
    }
    let confusion = manifest["confusion"]["test"].as_array().unwrap();
    assert_eq!(confusion.len(), 10);
    let total: u64 = confusion
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, manifest["splits"]["test"]["rows"].as_u64().unwrap());
}

#[test]
fn mnist_cnn_reaches_095_from_idx_files() {
    let out = scratch();
    // flex: burn-ndarray's convolutions are an order of magnitude slower on the CPU.
    let (_, manifest) = train(
        &examples("mnist/pipeline.toml"),
        out.path(),
        &["--backend", "flex"],
    );
    assert_eq!(manifest["rows"], 5000);
    assert_eq!(manifest["model"]["kind"], "cnn");
    let accuracy = test_metric(&manifest, "accuracy");
    assert!(accuracy >= 0.95, "MNIST CNN test accuracy {accuracy}");
}

#[test]
fn penguins_tabular_model_reaches_095_with_embeddings() {
    let out = scratch();
    let (run_dir, manifest) = train(&examples("penguins/tabular.toml"), out.path(), &[]);
    let accuracy = test_metric(&manifest, "accuracy");
    assert!(
        accuracy >= 0.95,
        "penguins tabular test accuracy {accuracy}"
    );
    // island, sex and year are learned as embeddings, not one-hot columns.
    let embedded: Vec<u64> = manifest["model"]["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cardinality"].as_u64().unwrap())
        .collect();
    assert_eq!(
        embedded,
        [4, 3, 4],
        "island (3 + unknown), sex (2 + unknown), year (3 + unknown)"
    );
    // The bundle predicts with the same index encoding.
    let data = examples("penguins/penguins.csv");
    let evaluated = kiln(&[
        "evaluate",
        run_dir.join("bundle").to_str().unwrap(),
        data.to_str().unwrap(),
        "--json",
    ]);
    assert!(evaluated.status.success(), "{}", stderr(&evaluated));
    let report: Value = serde_json::from_slice(&evaluated.stdout).unwrap();
    assert!(report["metrics"]["accuracy"].as_f64().unwrap() > 0.95);
}

#[test]
fn dry_run_prints_every_layer_with_its_parameters() {
    let output = kiln(&[
        "train",
        examples("digits/cnn.toml").to_str().unwrap(),
        "--dry-run",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    let layers = plan["layers"].as_array().unwrap();
    let outputs: Vec<&Value> = layers.iter().map(|l| &l["output"]).collect();
    assert_eq!(
        outputs,
        [
            &serde_json::json!([16, 4, 4]),
            &serde_json::json!([32, 2, 2]),
            &serde_json::json!([64]),
            &serde_json::json!([10])
        ]
    );
    let sum: u64 = layers.iter().map(|l| l["params"].as_u64().unwrap()).sum();
    // conv 1→16 (+ batch norm), conv 16→32 (+ batch norm), dense 128→64 (+ batch norm), head.
    let expected =
        (9 * 16 + 16 + 32) + (16 * 32 * 9 + 32 + 64) + (128 * 64 + 64 + 128) + (64 * 10 + 10);
    assert_eq!(sum, expected);
    assert_eq!(plan["parameters"], expected);
    let text = kiln(&[
        "train",
        examples("digits/cnn.toml").to_str().unwrap(),
        "--dry-run",
    ]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("conv 3×3 16→32 relu, batch norm, max-pool 2×2"),
        "{text}"
    );
    assert!(text.contains(&format!("parameters {expected}")), "{text}");
}

#[test]
fn binary_cross_entropy_trains_one_logit_on_penguin_sex() {
    let out = scratch();
    let pipeline = out.path().join("sex.toml");
    let data = examples("penguins/penguins.csv");
    fs_err::write(
        &pipeline,
        format!(
            "[pipeline]\nname = \"sex\"\n[data]\nsource = {:?}\ntarget = \"sex\"\n\
             [model]\nhidden = [16]\n[train]\nloss = \"binary_cross_entropy\"\nepochs = 60\nlr = 0.01\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let (_, manifest) = train(&pipeline, out.path(), &[]);
    assert_eq!(manifest["model"]["outputs"], 1);
    let accuracy = test_metric(&manifest, "accuracy");
    assert!(accuracy > 0.8, "penguin sex from measurements: {accuracy}");
    assert!(test_metric(&manifest, "roc_auc") > 0.9);
}

#[test]
fn a_metric_of_the_other_task_is_refused_before_training() {
    let out = scratch();
    let pipeline = out.path().join("p.toml");
    let data = examples("penguins/penguins.csv");
    fs_err::write(
        &pipeline,
        format!(
            "[pipeline]\nname = \"p\"\n[data]\nsource = {:?}\ntarget = \"species\"\n[evaluate]\nmetrics = [\"rmse\"]\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let output = kiln(&[
        "train",
        pipeline.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("`rmse` is not a metric of this task"),
        "{}",
        stderr(&output)
    );
}
