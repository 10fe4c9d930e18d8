//! Run tracking over a runs directory: list, compare and export to MLflow's file store.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kiln_train::EpochStats;
use serde::Serialize;
use serde_json::Value;

use crate::reproduce::read_manifest;
use crate::run::Manifest;
use crate::{Error, Result};

/// A committed run directory and its manifest.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

impl RunInfo {
    /// Loads the run in `dir`.
    ///
    /// # Errors
    /// A directory without a manifest, or a malformed one, naming it.
    pub fn load(dir: &Path) -> Result<Self> {
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest: read_manifest(dir)?,
        })
    }

    /// The run's name: its directory's.
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    /// The run's epoch history (metrics.jsonl); empty when absent. Undefined values (NaN,
    /// written as null) read as NaN.
    ///
    /// # Errors
    /// A malformed line, naming the file.
    pub fn history(&self) -> Result<Vec<EpochStats>> {
        #[derive(serde::Deserialize)]
        struct Line {
            epoch: usize,
            lr: Option<f64>,
            train_loss: Option<f64>,
            valid_loss: Option<f64>,
            valid_metrics: BTreeMap<String, Option<f64>>,
        }
        let path = self.dir.join("metrics.jsonl");
        let Ok(text) = fs_err::read_to_string(&path) else {
            return Ok(Vec::new());
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let line: Line = serde_json::from_str(line).map_err(|source| Error::Json {
                    path: path.clone(),
                    source,
                })?;
                Ok(EpochStats {
                    epoch: line.epoch,
                    lr: line.lr.unwrap_or(f64::NAN),
                    train_loss: line.train_loss.unwrap_or(f64::NAN),
                    valid_loss: line.valid_loss.unwrap_or(f64::NAN),
                    valid_metrics: line
                        .valid_metrics
                        .into_iter()
                        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
                        .collect(),
                })
            })
            .collect()
    }
}

/// Every run under `runs`, sweep trials in subfolders included, oldest first. Hidden entries
/// (staging directories, the stage cache) are skipped, and so are directories whose manifest
/// does not parse.
///
/// # Errors
/// [`Error::Io`] when `runs` cannot be read.
pub fn list_runs(runs: &Path) -> Result<Vec<RunInfo>> {
    let mut found = Vec::new();
    collect_runs(runs, 0, &mut found)?;
    found.sort_by(|a, b| (a.manifest.started_at, &a.dir).cmp(&(b.manifest.started_at, &b.dir)));
    Ok(found)
}

fn collect_runs(dir: &Path, depth: usize, found: &mut Vec<RunInfo>) -> Result<()> {
    let mut children: Vec<PathBuf> = fs_err::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    children.sort();
    for child in children {
        if child.join("manifest.json").is_file() && child.join("config.json").is_file() {
            if let Ok(run) = RunInfo::load(&child) {
                found.push(run);
            }
        } else if depth < 3 {
            collect_runs(&child, depth + 1, found)?;
        }
    }
    Ok(())
}

/// The config of each run flattened to dotted keys (`train.lr`), for diffs and MLflow params.
pub fn flat_config(manifest: &Manifest) -> BTreeMap<String, String> {
    let mut flat = BTreeMap::new();
    flatten("", &manifest.config, &mut flat);
    flat
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, out);
            }
        }
        Value::Null => {}
        Value::String(text) => {
            out.insert(prefix.to_owned(), text.clone());
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

/// `kiln runs compare`: the config keys that differ, and each metric per run.
#[derive(Debug, Clone, Serialize)]
pub struct RunComparison {
    /// The runs, in the order given (the first is the reference for deltas).
    pub runs: Vec<String>,
    /// Each config key whose value differs between the runs: its value per run (`None`
    /// where a run does not set it).
    pub config_diff: BTreeMap<String, Vec<Option<String>>>,
    /// `split.metric` → value per run (NaN where a run lacks it).
    pub metrics: BTreeMap<String, Vec<f64>>,
    /// Wall seconds of each run.
    pub seconds: Vec<f64>,
}

/// Compares `runs`: config differences and metrics side by side.
///
/// # Panics
/// Never: every metric key is built as `split.metric`.
pub fn compare_runs(runs: &[RunInfo]) -> RunComparison {
    let configs: Vec<BTreeMap<String, String>> =
        runs.iter().map(|r| flat_config(&r.manifest)).collect();
    let keys: BTreeSet<&String> = configs.iter().flat_map(BTreeMap::keys).collect();
    let mut config_diff = BTreeMap::new();
    for key in keys {
        let values: Vec<Option<String>> = configs.iter().map(|c| c.get(key).cloned()).collect();
        if values.iter().any(|v| *v != values[0]) {
            config_diff.insert(key.clone(), values);
        }
    }
    let metric_keys: BTreeSet<String> = runs
        .iter()
        .flat_map(|r| {
            r.manifest
                .metrics
                .iter()
                .flat_map(|(split, m)| m.keys().map(move |k| format!("{split}.{k}")))
        })
        .collect();
    let metrics = metric_keys
        .into_iter()
        .map(|key| {
            let (split, name) = key.split_once('.').expect("split.metric");
            let values = runs
                .iter()
                .map(|r| {
                    r.manifest
                        .metrics
                        .get(split)
                        .and_then(|m| m.get(name))
                        .copied()
                        .unwrap_or(f64::NAN)
                })
                .collect();
            (key, values)
        })
        .collect();
    RunComparison {
        runs: runs.iter().map(RunInfo::name).collect(),
        config_diff,
        metrics,
        seconds: runs
            .iter()
            .map(|r| r.manifest.timings.get("total").copied().unwrap_or(f64::NAN))
            .collect(),
    }
}

/// What `kiln runs export --mlflow` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct MlflowExport {
    /// The store's root.
    pub root: PathBuf,
    /// Experiments written: pipeline name → experiment id.
    pub experiments: BTreeMap<String, String>,
    /// Runs written.
    pub runs: usize,
}

/// MLflow's `RunStatus.FINISHED` and `FAILED`; `SourceType.LOCAL`.
const MLFLOW_FINISHED: u8 = 3;
const MLFLOW_FAILED: u8 = 4;
const MLFLOW_SOURCE_LOCAL: u8 = 4;

/// Writes `runs` in MLflow's file-store layout under `root`, which `mlflow ui
/// --backend-store-uri root` reads: one experiment per pipeline name, a run per kiln run with
/// its config as params (dotted keys), its per-epoch losses and validation metrics as metric
/// histories (step = epoch), its final metrics (`test.accuracy`, step 0), tags, and its
/// manifest, pipeline, epoch log and bundle as artifacts. The store is written beside `root`
/// and renamed into place; an existing `root` is refused.
///
/// # Errors
/// [`kiln_core::Error::AlreadyExists`] when `root` exists; IO errors.
pub fn export_mlflow(runs: &[RunInfo], root: &Path) -> Result<MlflowExport> {
    let staged = kiln_core::fsx::StagedDir::new(root)?;
    // URIs point where the store ends up, not at the staging directory.
    let root_abs = std::path::absolute(root)?;
    let uri = |path: &Path| format!("file://{}", path.display());
    let mut experiments: BTreeMap<String, String> = BTreeMap::new();
    let earliest = runs
        .iter()
        .map(|r| r.manifest.started_at)
        .min()
        .unwrap_or(0);
    write_experiment(
        staged.path(),
        "0",
        "Default",
        &uri(&root_abs.join("0")),
        earliest,
    )?;
    for run in runs {
        let next = (experiments.len() + 1).to_string();
        let id = experiments
            .entry(run.manifest.name.clone())
            .or_insert(next)
            .clone();
        let experiment_dir = staged.path().join(&id);
        if !experiment_dir.join("meta.yaml").is_file() {
            write_experiment(
                staged.path(),
                &id,
                &run.manifest.name,
                &uri(&root_abs.join(&id)),
                run.manifest.started_at,
            )?;
        }
        write_run(run, &experiment_dir, &id, &uri(&root_abs.join(&id)))?;
    }
    staged.commit()?;
    Ok(MlflowExport {
        root: root.to_path_buf(),
        experiments,
        runs: runs.len(),
    })
}

fn write_experiment(root: &Path, id: &str, name: &str, location: &str, time: u64) -> Result<()> {
    let dir = root.join(id);
    fs_err::create_dir_all(&dir)?;
    let meta = format!(
        "artifact_location: {}\ncreation_time: {time}\nexperiment_id: '{id}'\n\
         last_update_time: {time}\nlifecycle_stage: active\nname: {}\n",
        yaml_string(location),
        yaml_string(name)
    );
    fs_err::write(dir.join("meta.yaml"), meta)?;
    Ok(())
}

/// MLflow run ids are 32 hex digits; this one is stable for a run directory, so exporting
/// twice gives the same ids.
fn run_id(run: &RunInfo) -> String {
    let key = format!("{}\n{}", run.dir.display(), run.manifest.config_hash);
    kiln_core::hash::hash_bytes(key.as_bytes())[..32].to_owned()
}

fn write_run(
    run: &RunInfo,
    experiment_dir: &Path,
    experiment_id: &str,
    location: &str,
) -> Result<()> {
    let m = &run.manifest;
    let id = run_id(run);
    let dir = experiment_dir.join(&id);
    let status = match m.status {
        kiln_train::Outcome::Completed | kiln_train::Outcome::EarlyStopped => MLFLOW_FINISHED,
        _ => MLFLOW_FAILED,
    };
    let start = m.started_at;
    let end = m.finished_at.max(start);
    let meta = format!(
        "artifact_uri: {}\nend_time: {end}\nentry_point_name: ''\nexperiment_id: '{experiment_id}'\n\
         lifecycle_stage: active\nrun_id: {id}\nrun_name: {}\nrun_uuid: {id}\nsource_name: ''\n\
         source_type: {MLFLOW_SOURCE_LOCAL}\nsource_version: ''\nstart_time: {start}\nstatus: {status}\n\
         tags: []\nuser_id: kiln\n",
        yaml_string(&format!("{location}/{id}/artifacts")),
        yaml_string(&run.name()),
    );
    fs_err::create_dir_all(&dir)?;
    fs_err::write(dir.join("meta.yaml"), meta)?;

    let params = dir.join("params");
    fs_err::create_dir_all(&params)?;
    for (key, value) in flat_config(m) {
        // MLflow keeps param values up to 6000 characters; a key is a file name.
        if !key.contains('/') && value.len() <= 6000 {
            fs_err::write(params.join(&key), value)?;
        }
    }
    let mut tags = BTreeMap::from([
        ("mlflow.runName".to_owned(), run.name()),
        ("mlflow.user".to_owned(), "kiln".to_owned()),
        ("mlflow.source.type".to_owned(), "LOCAL".to_owned()),
        ("kiln.backend".to_owned(), m.device.backend.to_string()),
        ("kiln.device".to_owned(), m.device.name.clone()),
        ("kiln.version".to_owned(), m.kiln_version.clone()),
        ("kiln.config_hash".to_owned(), m.config_hash.clone()),
        ("kiln.data_blake3".to_owned(), m.data_hash.blake3.clone()),
        ("kiln.run_dir".to_owned(), run.dir.display().to_string()),
    ]);
    if let Some(git) = &m.git {
        tags.insert("mlflow.source.git.commit".into(), git.revision.clone());
    }
    let tags_dir = dir.join("tags");
    fs_err::create_dir_all(&tags_dir)?;
    for (key, value) in tags {
        fs_err::write(tags_dir.join(key), value)?;
    }

    let metrics = dir.join("metrics");
    fs_err::create_dir_all(&metrics)?;
    let history = run.history()?;
    let epochs = history.len().max(1) as u64;
    let mut series: BTreeMap<String, String> = BTreeMap::new();
    for stats in &history {
        // Spread epoch timestamps over the run so MLflow's time axis is meaningful.
        let at = start + (end - start) * stats.epoch as u64 / epochs;
        let mut point = |name: String, value: f64| {
            if value.is_finite() {
                let _ = writeln!(
                    series.entry(name).or_default(),
                    "{at} {value} {}",
                    stats.epoch
                );
            }
        };
        point("train_loss".into(), stats.train_loss);
        point("valid_loss".into(), stats.valid_loss);
        point("lr".into(), stats.lr);
        for (name, &value) in &stats.valid_metrics {
            point(format!("valid_{name}"), value);
        }
    }
    for (split, values) in &m.metrics {
        for (name, &value) in values {
            if value.is_finite() {
                let _ = writeln!(
                    series.entry(format!("{split}.{name}")).or_default(),
                    "{end} {value} 0"
                );
            }
        }
    }
    for (name, lines) in series {
        fs_err::write(metrics.join(name), lines)?;
    }

    let artifacts = dir.join("artifacts");
    fs_err::create_dir_all(&artifacts)?;
    for file in [
        "manifest.json",
        "metrics.jsonl",
        "pipeline.toml",
        "stats.json",
    ] {
        let from = run.dir.join(file);
        if from.is_file() {
            fs_err::copy(&from, artifacts.join(file))?;
        }
    }
    let bundle = run.dir.join("bundle");
    if bundle.is_dir() {
        let to = artifacts.join("bundle");
        fs_err::create_dir_all(&to)?;
        for entry in fs_err::read_dir(&bundle)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                fs_err::copy(entry.path(), to.join(entry.file_name()))?;
            }
        }
    }
    Ok(())
}

/// A YAML scalar for any text: single-quoted, quotes doubled.
fn yaml_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
