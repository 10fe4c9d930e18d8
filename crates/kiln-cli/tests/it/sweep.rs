//! `kiln sweep`: determinism, continuing a killed sweep, config errors, halving, best.toml.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{kiln, penguins_pipeline, scratch, stderr, train};

/// A 6-trial grid (2 dropouts × 3 learning rates), 3 folds. Dropout draws from burn's
/// process-wide RNG: the sweep must keep those runs' draws their own at any worker count.
const GRID: &str = r#"
[sweep]
method = "grid"
metric = "log_loss"
folds = 3
[sweep.params]
"model.dropout" = [0.0, 0.2]
"train.lr" = [0.003, 0.01, 0.03]
"#;

/// The penguins species pipeline at `epochs` epochs with `sweep` appended.
fn sweep_pipeline(dir: &Path, epochs: usize, sweep: &str) -> PathBuf {
    let path = penguins_pipeline(dir, &[("epochs = 40", &format!("epochs = {epochs}"))]);
    let text = fs_err::read_to_string(&path).unwrap() + sweep;
    fs_err::write(&path, text).unwrap();
    path
}

fn sweep_dir(out: &Path) -> PathBuf {
    out.join("penguins-species-sweep")
}

/// `kiln sweep PIPELINE --out OUT EXTRA.. --json`: every JSON line; the last is the sweep.
fn sweep(pipeline: &Path, out: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "sweep",
        pipeline.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let output = kiln(&args);
    assert!(
        output.status.success(),
        "kiln sweep failed: {}",
        stderr(&output)
    );
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("sweep --json prints JSON lines"))
        .collect();
    assert_eq!(lines.last().unwrap()["event"], "sweep");
    lines
}

fn leaderboard(out: &Path) -> String {
    fs_err::read_to_string(sweep_dir(out).join("leaderboard.json")).unwrap()
}

fn state(out: &Path) -> Option<Value> {
    let text = fs_err::read_to_string(sweep_dir(out).join("state.json")).ok()?;
    Some(serde_json::from_str(&text).expect("state.json is whole: it is written atomically"))
}

/// Trials with all `folds` runs recorded in a state file.
fn finished_trials(state: &Value, folds: usize) -> usize {
    let runs = state["runs"].as_object().unwrap();
    let trials: BTreeSet<&str> = runs.keys().filter_map(|k| k.split('/').next()).collect();
    trials
        .iter()
        .filter(|t| (0..folds).all(|f| runs.contains_key(&format!("{t}/fold-{f}"))))
        .count()
}

#[test]
fn a_grid_sweep_gives_the_same_leaderboard_twice_and_its_best_pipeline_trains() {
    let dir = scratch();
    let pipeline = sweep_pipeline(dir.path(), 6, GRID);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = sweep(&pipeline, &a, &["--workers", "2"]);
    let summary = first.last().unwrap();
    assert_eq!(summary["runs_ran"], 18);
    assert_eq!(summary["runs_skipped"], 0);
    assert_eq!(summary["trials_ran"], 6);
    assert_eq!(first.iter().filter(|l| l["event"] == "run").count(), 18);
    sweep(&pipeline, &b, &["--workers", "1"]);
    // Relative run paths and no timings: the files are byte-identical, whatever the workers.
    assert_eq!(leaderboard(&a), leaderboard(&b));

    let board: Value = serde_json::from_str(&leaderboard(&a)).unwrap();
    assert_eq!(board, summary["leaderboard"]);
    assert_eq!(
        (board["metric"].as_str(), board["direction"].as_str()),
        (Some("log_loss"), Some("min"))
    );
    let trials = board["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 6);
    let mut combos = BTreeSet::new();
    let mut previous = f64::NEG_INFINITY;
    for (i, t) in trials.iter().enumerate() {
        assert_eq!(t["rank"], i + 1);
        let scores: Vec<f64> = t["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_f64().unwrap())
            .collect();
        assert_eq!(scores.len(), 3);
        let mean = scores.iter().sum::<f64>() / 3.0;
        let std = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
        let got = t["mean"].as_f64().unwrap();
        assert!((got - mean).abs() < 1e-12 && (t["std"].as_f64().unwrap() - std).abs() < 1e-12);
        assert!(got >= previous, "sorted by mean log_loss, lowest first");
        previous = got;
        assert_eq!(t["epochs"], 6);
        combos.insert(t["params"].to_string());
    }
    assert_eq!(combos.len(), 6, "every combination once");

    // Each fold is a normal run: its validation metric is the recorded score, the folds
    // validate on different rows, and all test on the same ones.
    let top = &trials[0];
    let manifests: Vec<Value> = top["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let path = sweep_dir(&a)
                .join(r.as_str().unwrap())
                .join("manifest.json");
            serde_json::from_str(&fs_err::read_to_string(path).unwrap()).unwrap()
        })
        .collect();
    for (m, score) in manifests.iter().zip(top["scores"].as_array().unwrap()) {
        assert_eq!(m["metrics"]["valid"]["log_loss"].as_f64(), score.as_f64());
        // One checkpoint, at the end: the pipeline does not set `checkpoint_every`.
        assert_eq!(m["config"]["train"]["checkpoint_every"], 6);
    }
    let hashes = |split: &str| -> BTreeSet<String> {
        manifests
            .iter()
            .map(|m| m["splits"][split]["hash"].to_string())
            .collect()
    };
    assert_eq!(hashes("valid").len(), 3);
    assert_eq!(hashes("test").len(), 1);

    // best.toml: the top trial's overrides, no [sweep], trains as it is.
    let best = sweep_dir(&a).join("best.toml");
    assert_eq!(
        summary["best"].as_str().map(PathBuf::from),
        Some(best.clone())
    );
    let text = fs_err::read_to_string(&best).unwrap();
    assert!(!text.contains("[sweep"), "{text}");
    let (_, manifest) = train(&best, &dir.path().join("best-run"), &[]);
    let config = &manifest["config"];
    assert_eq!(config["model"]["dropout"], top["params"]["model.dropout"]);
    assert_eq!(config["train"]["lr"], top["params"]["train.lr"]);
    assert_eq!(
        config["train"]["checkpoint_every"], 1,
        "the pipeline's own default"
    );
    assert!(config.get("sweep").is_none());
    assert!(Path::new(manifest["data_path"].as_str().unwrap()).is_absolute());
}

#[test]
fn a_killed_sweep_runs_only_the_remaining_trials_when_run_again() {
    let dir = scratch();
    // Runs long enough (tens of ms) that polling every 5 ms sees 2 trials before a third.
    let pipeline = sweep_pipeline(dir.path(), 20, GRID);
    let reference = dir.path().join("reference");
    sweep(&pipeline, &reference, &["--workers", "2"]);

    let out = dir.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "sweep",
            pipeline.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--workers", "1", "--json"])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if state(&out).is_some_and(|s| finished_trials(&s, 3) >= 2) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it was killed"
        );
        assert!(
            started.elapsed() < Duration::from_mins(5),
            "no 2 trials in 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let recorded = state(&out).unwrap()["runs"].as_object().unwrap().len();
    assert!(
        (6..9).contains(&recorded),
        "{recorded} runs recorded when killed"
    );

    let lines = sweep(&pipeline, &out, &["--workers", "1"]);
    assert_eq!(lines[0]["event"], "start");
    assert_eq!(lines[0]["skipped"], recorded);
    let summary = lines.last().unwrap();
    assert_eq!(summary["trials_ran"], 4);
    assert_eq!(summary["runs_skipped"], recorded);
    assert_eq!(summary["runs_ran"], 18 - recorded);
    assert_eq!(leaderboard(&out), leaderboard(&reference));

    // A third time everything is done: it says so and trains nothing.
    let output = kiln(&[
        "sweep",
        pipeline.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("18 of 18 runs were finished by an earlier sweep: skipped"));
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains("log_loss (mean ± std)"), "{table}");
    assert_eq!(leaderboard(&out), leaderboard(&reference));

    // A changed sweep refuses to continue there.
    let text = fs_err::read_to_string(&pipeline)
        .unwrap()
        .replace("folds = 3", "folds = 2");
    fs_err::write(&pipeline, text).unwrap();
    let output = kiln(&[
        "sweep",
        pipeline.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("holds a sweep of another pipeline"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_sweep_config_exits_2_naming_the_key() {
    let dir = scratch();
    let cases = [
        (
            "[sweep]\ntrails = 3\n",
            "unknown key `trails`; did you mean `trials`?",
        ),
        (
            "[sweep]\n[sweep.params]\n\"model.hiden\" = [[8]]\n",
            "`sweep.params.model.hiden` = [8]: unknown key `hiden`; did you mean `hidden`?",
        ),
        (
            "[sweep]\nmethod = \"random\"\ntrials = 4\n[sweep.params]\n\"train.lr\" = { log_uniform = [0.0, 0.1] }\n",
            "`sweep.params.train.lr` `log_uniform` needs 0 < lo < hi",
        ),
        (
            "[sweep]\nmethod = \"random\"\ntrials = 4\n[sweep.params]\n\"train.lr\" = { log_unifrom = [0.001, 0.1] }\n",
            "`sweep.params.train.lr.log_unifrom` = 0.001: `train.lr` is float, not a table (is `log_unifrom` the distribution `log_uniform`?)",
        ),
        (
            "[sweep]\n[sweep.params]\n\"train.lr\" = { uniform = [0.001, 0.1] }\n",
            "`sweep.params.train.lr` is a distribution; a `grid` sweep needs a list",
        ),
        ("[sweep]\nmethod = \"bayes\"\n", "unknown variant `bayes`"),
    ];
    for (i, (section, needle)) in cases.iter().enumerate() {
        let case = dir.path().join(format!("case-{i}"));
        fs_err::create_dir_all(&case).unwrap();
        let pipeline = sweep_pipeline(&case, 6, section);
        let out = case.join("runs");
        let output = kiln(&[
            "sweep",
            pipeline.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{section}: {}",
            stderr(&output)
        );
        let message = stderr(&output);
        assert!(message.contains(needle), "{section}: {message}");
        assert!(
            message.contains("pipeline.toml"),
            "names the file: {message}"
        );
        assert!(!out.exists(), "nothing runs");
    }
    // `kiln train` accepts a valid [sweep] section and ignores it.
    let pipeline = sweep_pipeline(dir.path(), 6, GRID);
    let output = kiln(&["train", pipeline.to_str().unwrap(), "--dry-run"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn halving_promotes_the_best_trials_of_each_rung() {
    let dir = scratch();
    let pipeline = sweep_pipeline(
        dir.path(),
        6,
        r#"
[sweep]
method = "halving"
trials = 4
eta = 2
min_epochs = 2
folds = 2
metric = "log_loss"
[sweep.params]
"train.lr" = { log_uniform = [0.001, 0.1] }
"#,
    );
    let out = dir.path().join("runs");
    let lines = sweep(&pipeline, &out, &["--workers", "2"]);
    let summary = lines.last().unwrap();
    // 4 trials × 2 folds at 2 epochs, 2 at 4, 1 at 6.
    assert_eq!(summary["runs_ran"], 14);
    let board = &summary["leaderboard"];
    let rungs = board["rungs"].as_array().unwrap();
    let epochs: Vec<u64> = rungs
        .iter()
        .map(|r| r["epochs"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [2, 4, 6]);
    assert_eq!(rungs[0]["trials"], serde_json::json!([0, 1, 2, 3]));

    let state = state(&out).unwrap();
    let mean = |trial: u64, epochs: u64| -> f64 {
        (0..2)
            .map(|f| {
                state["runs"][format!("trial-{trial:03}/epochs-{epochs}/fold-{f}")]["score"]
                    .as_f64()
                    .unwrap()
            })
            .sum::<f64>()
            / 2.0
    };
    for pair in rungs.windows(2) {
        let (rung, next) = (&pair[0], &pair[1]);
        let e = rung["epochs"].as_u64().unwrap();
        let mut ranked: Vec<u64> = rung["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect();
        ranked.sort_by(|&x, &y| mean(x, e).total_cmp(&mean(y, e)));
        let keep = next["trials"].as_array().unwrap().len();
        assert_eq!(keep, (ranked.len() / 2).max(1));
        let mut promoted = ranked[..keep].to_vec();
        promoted.sort_unstable();
        assert_eq!(
            next["trials"],
            serde_json::json!(promoted),
            "the lowest log_loss go on"
        );
    }
    // Ranked by the highest rung reached, then score; lr drawn in range.
    let trials = board["trials"].as_array().unwrap();
    let reached: Vec<u64> = trials
        .iter()
        .map(|t| t["epochs"].as_u64().unwrap())
        .collect();
    assert_eq!(reached, [6, 4, 2, 2]);
    assert_eq!(trials[0]["trial"], rungs[2]["trials"][0]);
    for t in trials {
        let lr = t["params"]["train.lr"].as_f64().unwrap();
        assert!((0.001..=0.1).contains(&lr), "{lr}");
    }
    // A rung-0 run trained for its budget.
    let run = sweep_dir(&out).join(trials[3]["runs"][0].as_str().unwrap());
    let manifest: Value =
        serde_json::from_str(&fs_err::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["config"]["train"]["epochs"], 2);
    assert_eq!(manifest["epochs_run"], 2);
}
