//! `kiln train --devices N`: data-parallel replicas (on the CPU, all sharing its one device).

use crate::{penguins_pipeline, scratch, train, train_failure};

#[test]
fn two_devices_train_penguins_like_one_device_at_the_whole_batch() {
    let dir = scratch();
    // 16 rows per device: the 32 rows per step of the one-device example.
    let pipeline = penguins_pipeline(dir.path(), &[("batch_size = 32", "batch_size = 16")]);
    let (_, two) = train(&pipeline, &dir.path().join("two"), &["--devices", "2"]);
    assert_eq!(two["devices"], 2);
    assert_eq!(two["config"]["train"]["devices"], 2);
    let accuracy = two["metrics"]["test"]["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.9, "test accuracy {accuracy}");

    let one_device = penguins_pipeline(dir.path(), &[]);
    let (_, one) = train(&one_device, &dir.path().join("one"), &[]);
    assert_eq!(one["devices"], 1);
    assert_eq!(two["epochs_run"], one["epochs_run"]);
    for split in ["valid", "test"] {
        let (a, b) = (&two["metrics"][split], &one["metrics"][split]);
        assert_eq!(a["accuracy"], b["accuracy"], "{split}");
        let (a, b) = (
            a["log_loss"].as_f64().unwrap(),
            b["log_loss"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-4, "{split} log loss {a} vs {b}");
    }
}

#[test]
fn devices_beyond_the_backend_are_refused() {
    let dir = scratch();
    let pipeline = penguins_pipeline(dir.path(), &[]);
    let out_dir = dir.path().join("runs");
    let (code, message) = train_failure(&pipeline, &out_dir, &["--devices", "0"]);
    assert_eq!(code, Some(2), "{message}");
    assert!(message.contains("--devices"), "{message}");
    let config = penguins_pipeline(
        dir.path(),
        &[("batch_size = 32", "batch_size = 32\ndevices = 0")],
    );
    let (code, message) = train_failure(&config, &out_dir, &[]);
    assert_eq!(code, Some(2), "{message}");
    assert!(message.contains("train.devices"), "{message}");
    // wgpu counts discrete GPUs (lavapipe is none); 64 is more than any machine here has.
    let pipeline = penguins_pipeline(dir.path(), &[]);
    let (code, message) = train_failure(
        &pipeline,
        &out_dir,
        &["--backend", "wgpu", "--devices", "64"],
    );
    assert_eq!(code, Some(2), "{message}");
    assert!(
        message.contains("cannot train on 64 devices: discrete GPUs visible to wgpu here: "),
        "{message}"
    );
    assert!(crate::visible_entries(&dir.path().join("runs")).is_empty());
}
