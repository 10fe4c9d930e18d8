//! `kiln backends` and `kiln compare-backends`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::{example, kiln, penguins_pipeline, scratch, stderr, train, train_failure};

#[test]
fn backends_lists_every_compiled_backend() {
    let output = kiln(&["backends"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    // Snapshot with the machine-specific parts filtered: the wgpu adapter's type and name.
    let filtered: Vec<String> = text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                ["backend", "type", "device"] => line.to_owned(),
                ["wgpu", ..] => "wgpu <type> <device>".to_owned(),
                ["cuda", "unavailable", reason @ ..] if !cfg!(feature = "cuda") => {
                    format!("cuda unavailable {}", reason.join(" "))
                }
                ["cuda", ..] => "cuda <type> <device>".to_owned(),
                [backend, kind, ..] => format!("{backend} {kind} <device>"),
                _ => panic!("unexpected line {line:?}"),
            }
        })
        .collect();
    assert_eq!(
        filtered,
        [
            "backend   type            device",
            "ndarray cpu <device>",
            "flex cpu <device>",
            "wgpu <type> <device>",
            if cfg!(feature = "cuda") {
                "cuda <type> <device>"
            } else {
                "cuda unavailable not compiled in (build with --features cuda)"
            },
        ]
    );
    let json = kiln(&["backends", "--json"]);
    let lines: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(lines.as_array().unwrap().len(), 4);
    assert_eq!(lines[0]["device"]["Ok"]["device_type"], "cpu");
}

#[test]
fn compare_backends_agrees_within_tolerance_on_penguins() {
    let out = scratch();
    let pipeline = example("pipeline.toml");
    let output = kiln(&[
        "compare-backends",
        pipeline.to_str().unwrap(),
        "--backends",
        "ndarray,flex,wgpu",
        "--out",
        out.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let runs = report["runs"].as_array().unwrap();
    let names: Vec<&str> = runs
        .iter()
        .map(|r| r["backend"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ndarray", "flex", "wgpu"]);
    assert_eq!(runs[0]["max_abs_diff"], 0.0);
    for run in &runs[1..] {
        // Same initial weights on every backend: predictions stay close.
        let diff = run["max_abs_diff"].as_f64().unwrap();
        assert!(diff < 0.05, "{}: max |Δp| {diff}", run["backend"]);
        assert!(run["timings"]["train"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(report["failures"], serde_json::json!([]));

    // A zero tolerance turns float-level differences (wgpu's kernels sum in another order)
    // into a failing exit code.
    let strict = kiln(&[
        "compare-backends",
        pipeline.to_str().unwrap(),
        "--backends",
        "ndarray,wgpu",
        "--tolerance",
        "0",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(strict.status.code(), Some(1), "{}", stderr(&strict));
    assert!(
        stderr(&strict).contains("backends disagree"),
        "{}",
        stderr(&strict)
    );
}

#[test]
fn unavailable_backends_fail_clearly_and_list_the_usable_ones() {
    let dir = scratch();
    let pipeline = example("pipeline.toml");
    let args = |backend| {
        vec![
            "train".to_owned(),
            pipeline.to_str().unwrap().to_owned(),
            "--out".to_owned(),
            dir.path().to_str().unwrap().to_owned(),
            "--backend".to_owned(),
            backend,
        ]
    };
    if !cfg!(feature = "cuda") {
        let out = kiln(
            &args("cuda".into())
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let message = stderr(&out);
        assert!(
            message.contains("backend `cuda` is not compiled into this build")
                && message.contains("--features cuda")
                && message.contains("usable here: ndarray, flex"),
            "{message}"
        );
    }
    // No Vulkan driver: the loader is pointed at a manifest that does not exist.
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args("wgpu".into()))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("backend `wgpu` has no usable device")
            && message.contains("usable here: ndarray, flex"),
        "{message}"
    );
    let unknown = kiln(
        &args("tpu".into())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(
        stderr(&unknown).contains("expected one of: ndarray, flex, wgpu, cuda, auto"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn auto_picks_a_gpu_when_there_is_one_else_a_cpu_backend() {
    let listed: Value = serde_json::from_slice(&kiln(&["backends", "--json"]).stdout).unwrap();
    let gpu = listed.as_array().unwrap().iter().find(|line| {
        line["device"]["Ok"]["device_type"]
            .as_str()
            .is_some_and(|t| t.ends_with("gpu"))
    });
    let dir = scratch();
    let (_, manifest) = train(
        &example("pipeline.toml"),
        dir.path(),
        &["--backend", "auto"],
    );
    let chosen = manifest["device"]["backend"].as_str().unwrap();
    match gpu {
        Some(line) => assert_eq!(chosen, line["backend"], "a GPU is here"),
        // lavapipe (wgpu on the CPU) is not a GPU: a CPU backend is faster.
        None => assert!(["ndarray", "flex"].contains(&chosen), "{chosen}"),
    }
}

#[test]
fn bf16_trains_on_flex_and_is_refused_on_ndarray() {
    let dir = scratch();
    let pipeline = penguins_pipeline(
        dir.path(),
        &[("[train]\n", "[train]\nprecision = \"bf16\"\n")],
    );
    let (run_dir, manifest) = train(&pipeline, dir.path(), &["--backend", "flex"]);
    let accuracy = manifest["metrics"]["test"]["accuracy"].as_f64().unwrap();
    // bf16 keeps 8 bits of mantissa: penguins still separate (f32 reaches ~0.99).
    assert!(accuracy >= 0.9, "bf16 test accuracy {accuracy}");
    assert_eq!(manifest["precision"], "bf16");
    let snapshot = fs_err::read_to_string(run_dir.join("pipeline.toml")).unwrap();
    assert!(snapshot.contains("precision = \"bf16\""), "{snapshot}");
    // Weights are trained in bf16: they differ from the f32 run's.
    let f32_dir = scratch();
    let (f32_run, f32_manifest) = train(
        &example("pipeline.toml"),
        f32_dir.path(),
        &["--backend", "flex"],
    );
    assert_eq!(f32_manifest["precision"], "f32");
    let weights = |run: &Path| fs_err::read(run.join("bundle/model.mpk")).unwrap();
    assert_ne!(weights(&run_dir), weights(&f32_run));

    let (code, message) = train_failure(&pipeline, dir.path(), &[]);
    assert_eq!(code, Some(2), "{message}");
    assert!(
        message.contains("precision `bf16` is not available on backend `ndarray`"),
        "{message}"
    );
}
