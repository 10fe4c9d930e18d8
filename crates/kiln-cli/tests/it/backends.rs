//! `kiln backends` and `kiln compare-backends`.

use serde_json::Value;

use crate::{example, kiln, scratch, stderr};

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
        ]
    );
    let json = kiln(&["backends", "--json"]);
    let lines: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(lines.as_array().unwrap().len(), 3);
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
