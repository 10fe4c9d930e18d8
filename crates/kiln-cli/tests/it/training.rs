//! Checkpoints, exact resume, SIGINT and divergence through the `kiln` binary.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{
    example, kiln, penguins_pipeline, scratch, stderr, train, train_json, visible_entries,
};

fn record(run: &Path) -> Vec<u8> {
    fs_err::read(run.join("bundle/model.mpk")).unwrap()
}

#[test]
fn resume_from_a_checkpoint_gives_byte_identical_weights() {
    let dir = scratch();
    let config = penguins_pipeline(
        dir.path(),
        &[
            ("dropout = 0.0", "dropout = 0.1"),
            ("early_stopping = { patience = 10 }", "checkpoint_every = 1"),
        ],
    );
    let (full, manifest) = train(&config, &dir.path().join("runs"), &[]);
    assert_eq!(manifest["status"]["kind"], "completed");
    let checkpoint = full.join("checkpoints/epoch-0010");
    assert!(
        checkpoint.join("state.mpk").is_file(),
        "checkpoint every epoch"
    );
    let out = dir.path().join("runs").to_str().unwrap().to_owned();
    let (resumed, resumed_manifest) = train_json(&[
        "train",
        "--resume",
        checkpoint.to_str().unwrap(),
        "--out",
        &out,
    ]);
    assert!(
        resumed_manifest["resumed_from"]
            .as_str()
            .unwrap()
            .ends_with("epoch-0010")
    );
    assert!(
        record(&full) == record(&resumed),
        "resumed weights differ from the uninterrupted run"
    );
    assert_eq!(
        fs_err::read(full.join("metrics.jsonl")).unwrap(),
        fs_err::read(resumed.join("metrics.jsonl")).unwrap()
    );
    assert_eq!(manifest["metrics"], resumed_manifest["metrics"]);
}

#[test]
fn sigint_checkpoints_exits_130_and_resumes_exactly() {
    let dir = scratch();
    // Many small epochs so the interrupt lands mid-training.
    let config = penguins_pipeline(
        dir.path(),
        &[
            ("epochs = 40", "epochs = 400"),
            ("batch_size = 32", "batch_size = 8"),
            (
                "early_stopping = { patience = 10 }",
                "checkpoint_every = 50",
            ),
        ],
    );
    let runs = dir.path().join("runs");
    let child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "train",
            config.to_str().unwrap(),
            "--out",
            runs.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training is under way (the first checkpoint exists in the staging directory).
    let started = Instant::now();
    let under_way = || {
        fs_err::read_dir(&runs).ok().is_some_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().join("checkpoints/epoch-0050").exists())
        })
    };
    while !under_way() {
        assert!(
            started.elapsed() < Duration::from_mins(2),
            "training never reached epoch 50"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let message = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(130), "{message}");
    assert!(message.contains("--resume"), "{message}");
    let entries = visible_entries(&runs);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let interrupted = runs.join(&entries[0]);
    let manifest: Value =
        serde_json::from_slice(&fs_err::read(interrupted.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"]["kind"], "interrupted");
    assert!(
        !interrupted.join("bundle").exists(),
        "an interrupted run has no bundle"
    );

    let (resumed, _) = train_json(&[
        "train",
        "--resume",
        interrupted.to_str().unwrap(),
        "--out",
        runs.to_str().unwrap(),
    ]);
    let (uninterrupted, _) = train(&config, &runs, &[]);
    assert!(
        record(&resumed) == record(&uninterrupted),
        "resumed weights differ from the uninterrupted run"
    );
}

#[test]
fn huge_learning_rate_fails_cleanly() {
    let dir = scratch();
    let mut text = fs_err::read_to_string(example("regression.toml")).unwrap();
    text = text.replace(
        "source = \"penguins.csv\"",
        &format!("source = {:?}", example("penguins.csv").to_str().unwrap()),
    );
    text = text.replace("lr = 0.02", "lr = 1e6\noptimizer = \"sgd\"");
    let config = dir.path().join("diverge.toml");
    fs_err::write(&config, text).unwrap();
    let runs = dir.path().join("runs");
    let out = kiln(&[
        "train",
        config.to_str().unwrap(),
        "--out",
        runs.to_str().unwrap(),
    ]);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(
        message.contains("training diverged") && message.contains("epoch 1, step"),
        "{message}"
    );
    assert!(
        !message.contains("panicked") && !message.contains("NaN"),
        "{message}"
    );
    assert_eq!(visible_entries(&runs), Vec::<String>::new());
}

#[test]
fn dry_run_prints_the_model_without_training() {
    let dir = scratch();
    let out = kiln(&[
        "train",
        example("pipeline.toml").to_str().unwrap(),
        "--dry-run",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("parameters 307"), "{text}");
    assert!(text.contains("dense 15→16 relu"), "{text}");
    assert_eq!(
        visible_entries(dir.path()),
        Vec::<String>::new(),
        "a dry run writes nothing"
    );
}
