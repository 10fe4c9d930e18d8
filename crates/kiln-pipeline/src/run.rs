//! `kiln train`: the whole pipeline, from a checked config to a committed run directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use kiln_core::fsx::StagedDir;
use kiln_core::hash::{FileHash, hash_bytes, hash_indices};
use kiln_core::{BackendKind, BackendVisitor, DeviceInfo, HostInfo, Matrix, Precision};
use kiln_data::{ColumnRef, DatasetStats, Schema, Table};
use kiln_models::{LayerSummary, ModelSpec};
use kiln_train::collective::Collective;
use kiln_train::{EpochStats, Hooks, Outcome, StepProgress, Task, TrainSettings};
use kiln_transform::Targets;
use serde::{Deserialize, Serialize};

use crate::bundle::{BundleSpec, Predictions, Predictor, STATS_FILE, read_json, write_json};
use crate::cache::StageCache;
use crate::config::{SplitMethod, ValidPipelineConfig};
use crate::provenance::{GitRevision, unix_millis};
use crate::stages::{InputFile, Prepared, SPLIT_NAMES, StageRecord, prepare, split_rows};
use crate::{Error, Result};

/// The manifest layout this kiln writes.
pub const MANIFEST_FORMAT: u32 = 2;

/// Flags of `kiln train` that override or complement the pipeline file.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Where to compute.
    pub backend: BackendKind,
    /// Parent of the run directory.
    pub out_dir: PathBuf,
    /// A run directory or checkpoint to continue from.
    pub resume: Option<PathBuf>,
    /// Set (by a SIGINT handler) to stop after the current step with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
    /// Train on one fold of a k-fold cross-validation instead of the configured valid split.
    pub fold: Option<CvFold>,
    /// Where the data stages' outputs are cached (`None`: every stage runs).
    pub cache: Option<StageCache>,
    /// The command line that started the run, for the manifest.
    pub command: Vec<String>,
    /// The other nodes of a multi-node run: this one trains on its shard of the training rows,
    /// and only node 0 evaluates and keeps its run directory (see [`NodeGroup`]).
    pub nodes: Option<NodeGroup>,
}

/// This process's place among the nodes of a multi-node run.
///
/// Every node reads the whole data file and runs the same data stages (identical, and
/// cached), so the transforms are fitted on every training row; each then trains on the
/// training rows it owns by row hash ([`kiln_train::collective::owns_row`]), and the
/// gradients are summed every step ([`kiln_train::fit`]).
#[derive(Clone)]
pub struct NodeGroup(pub Arc<dyn Collective + Send + Sync>);

impl std::fmt::Debug for NodeGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {} of {}", self.0.rank(), self.0.nodes())
    }
}

impl TrainOptions {
    /// Options for a plain run on `backend` under `out_dir`, with the stage cache in
    /// `out_dir`/[`crate::cache::CACHE_DIR_NAME`].
    pub fn new(backend: BackendKind, out_dir: impl Into<PathBuf>) -> Self {
        let out_dir = out_dir.into();
        Self {
            backend,
            cache: Some(StageCache::in_runs_dir(&out_dir)),
            out_dir,
            resume: None,
            stop: None,
            fold: None,
            command: Vec::new(),
            nodes: None,
        }
    }
}

/// Fold `index` of `k` (0-based): the configured train and valid rows are dealt into `k`
/// folds (stratified for classification); this fold validates, the others train. The test
/// rows stay as configured, untouched by every fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CvFold {
    /// Number of folds.
    pub k: usize,
    /// This fold, `0..k`.
    pub index: usize,
}

/// Live callbacks of a run, for progress display.
pub struct Observer<'a> {
    /// After every epoch.
    pub on_epoch: Box<dyn FnMut(&EpochStats) + 'a>,
    /// After every batch.
    pub on_step: Box<dyn FnMut(StepProgress) + 'a>,
}

impl Default for Observer<'_> {
    fn default() -> Self {
        Self {
            on_epoch: Box::new(|_| {}),
            on_step: Box::new(|_| {}),
        }
    }
}

/// Rows and content hash of one split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRecord {
    /// Row count.
    pub rows: usize,
    /// blake3 of the sorted row indices.
    pub hash: String,
}

/// Everything needed to reproduce and judge a run (manifest.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest layout version.
    pub format: u32,
    /// How training ended.
    pub status: Outcome,
    /// The checkpoint this run continued from.
    pub resumed_from: Option<PathBuf>,
    /// kiln's version.
    pub kiln_version: String,
    /// burn's version.
    pub burn_version: String,
    /// Pipeline name.
    pub name: String,
    /// The pipeline file as given.
    pub config_path: PathBuf,
    /// The parsed config with defaults, as JSON.
    pub config: serde_json::Value,
    /// blake3 of that JSON (comments and layout do not change it).
    pub config_hash: String,
    /// The data file.
    pub data_path: PathBuf,
    /// Its hash and size.
    pub data_hash: FileHash,
    /// Rows read, and rows dropped for a missing target.
    pub rows: usize,
    /// Rows without a target, left out.
    pub rows_without_target: usize,
    /// The typed schema.
    pub schema: Schema,
    /// The task.
    pub task: Task,
    /// The seed of every stream.
    pub seed: u64,
    /// Split method used.
    pub split_method: SplitMethod,
    /// Per split: rows and hash.
    pub splits: BTreeMap<String, SplitRecord>,
    /// Where it ran.
    pub device: DeviceInfo,
    /// The float type training and evaluation computed in (`[train] precision`).
    #[serde(default)]
    pub precision: Precision,
    /// Data-parallel devices training ran on (`[train] devices`; 1 before kiln recorded it).
    #[serde(default = "one_device")]
    pub devices: usize,
    /// Nodes (processes) training ran on, each on its shard of the training rows.
    #[serde(default = "one_device")]
    pub nodes: usize,
    /// The machine.
    pub host: HostInfo,
    /// The model.
    pub model: ModelSpec,
    /// Trainable parameters.
    pub parameters: usize,
    /// Epochs run.
    pub epochs_run: usize,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// Training throughput (rows per second of training steps).
    pub samples_per_second: f64,
    /// Wall seconds per stage.
    pub timings: BTreeMap<String, f64>,
    /// Final metrics per split (`valid`, `test`), as chosen in `[evaluate]` (NaN where
    /// undefined, written as null).
    #[serde(deserialize_with = "nullable_metrics")]
    pub metrics: BTreeMap<String, BTreeMap<String, f64>>,
    /// Confusion matrix per split (classification): `[true][predicted]` counts in class order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub confusion: BTreeMap<String, Vec<Vec<usize>>>,
    /// Every file read (the data file, and an IDX labels file beside it) with its hash.
    #[serde(default)]
    pub inputs: Vec<InputFile>,
    /// Each data stage's content key, and whether it came from the stage cache.
    #[serde(default)]
    pub stages: BTreeMap<String, StageRecord>,
    /// The cross-validation fold this run trained on (sweeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<CvFold>,
    /// The seed of every random stream, by stage (all derived from `[pipeline] seed`).
    #[serde(default)]
    pub seeds: BTreeMap<String, u64>,
    /// blake3 of the Cargo.lock kiln was built with (every dependency's exact version).
    #[serde(default)]
    pub cargo_lock: String,
    /// The git revision of the pipeline file's folder, when it is in a git work tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitRevision>,
    /// The command line that started the run.
    #[serde(default)]
    pub command: Vec<String>,
    /// Start and end, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub started_at: u64,
    /// See `started_at`.
    #[serde(default)]
    pub finished_at: u64,
    /// blake3 of the trained parameters' values (f32, in module order): equal exactly when the
    /// weights are, unlike the record file, which also holds parameter ids.
    #[serde(default)]
    pub parameter_hash: String,
    /// How the data streamed, when the run streamed it (`[data] streaming`,
    /// `memory_budget_mib`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<crate::StreamingRecord>,
}

fn one_device() -> usize {
    1
}

/// Reads metrics whose undefined values (NaN, which JSON writes as null) are null.
fn nullable_metrics<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<BTreeMap<String, BTreeMap<String, f64>>, D::Error> {
    let metrics: BTreeMap<String, BTreeMap<String, Option<f64>>> =
        Deserialize::deserialize(deserializer)?;
    Ok(metrics
        .into_iter()
        .map(|(split, values)| {
            let values = values
                .into_iter()
                .map(|(name, value)| (name, value.unwrap_or(f64::NAN)))
                .collect();
            (split, values)
        })
        .collect())
}

/// What `kiln train` reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The committed run directory.
    pub run_dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

/// Runs the pipeline and commits a new run directory under `options.out_dir`.
///
/// # Errors
/// Config, data, transform and training errors; nothing that looks like a finished run is
/// left behind on error. [`Error::Interrupted`] and [`Error::Diverged`] come after a run
/// directory was committed (with its checkpoints, and for divergence the best weights so far).
///
/// # Panics
/// Only if serializing the config to JSON fails, which its types rule out.
pub fn train(
    config: &ValidPipelineConfig,
    options: &TrainOptions,
    observer: Observer<'_>,
) -> Result<RunSummary> {
    let mut timings = BTreeMap::new();
    let started = Instant::now();
    let started_at = unix_millis();
    let mut prepared = match crate::streaming::budget(config)? {
        Some(budget_mib) => {
            if options.fold.is_some() {
                return Err(Error::NotStreamable {
                    option: "sweep folds",
                    reason: "cross-validation folds need every row at once".into(),
                });
            }
            if options.resume.is_some() {
                return Err(Error::NotStreamable {
                    option: "--resume",
                    reason: "a streaming run does not resume; start it again".into(),
                });
            }
            crate::streaming::prepare(config, budget_mib, &mut timings)?
        }
        None => prepare(config, options.fold, options.cache.as_ref(), &mut timings)?,
    };
    let resume = options
        .resume
        .as_deref()
        .map(|r| resume_point(r, prepared.data_hash()))
        .transpose()?;
    let nodes = options
        .nodes
        .as_ref()
        .map(|n| &*n.0 as &dyn Collective)
        .filter(|n| n.nodes() > 1);
    let shard = nodes
        .map(|n| node_shard(config, &prepared, n, options))
        .transpose()?;
    let staged = StagedDir::new(&options.out_dir.join(&config.raw().pipeline.name))?;
    let bundle_dir = staged.path().join("bundle");
    let checkpoints = staged.path().join("checkpoints");
    fs_err::create_dir_all(&checkpoints)?;
    write_json(
        &staged.path().join(CONFIG_SNAPSHOT),
        &resumable_config(config)?,
    )?;
    fs_err::copy(config.config_path(), staged.path().join("pipeline.toml"))?;

    let settings = config.raw().train.settings(config.raw().pipeline.seed);
    let precision = config.raw().train.precision;
    let trained = kiln_core::dispatch_with(
        options.backend,
        precision,
        TrainVisitor {
            prepared: &prepared,
            settings: &settings,
            bundle_dir: &bundle_dir,
            checkpoints: &checkpoints,
            resume: resume.as_deref(),
            stop: options.stop.as_deref(),
            observer,
            nodes,
            shard: shard.as_ref(),
        },
    )??;
    timings.insert("train".into(), trained.train_seconds);
    if nodes.is_some() {
        // Part of `train`: the gradient sums across nodes, waiting for the slowest included.
        timings.insert("allreduce".into(), trained.exchange_seconds);
        #[allow(clippy::cast_precision_loss)] // Step counts are far below 2^52.
        let steps = trained.exchanges.max(1) as f64;
        timings.insert(
            "allreduce_per_step".into(),
            trained.exchange_seconds / steps,
        );
    }
    let mut log = String::new();
    for stats in &trained.history {
        log.push_str(&serde_json::to_string(stats).expect("epoch stats serialize"));
        log.push('\n');
    }
    fs_err::write(staged.path().join("metrics.jsonl"), log)?;

    let mut metrics = BTreeMap::new();
    let mut confusion = BTreeMap::new();
    // Every node holds the same weights: node 0 alone evaluates and keeps the run.
    let writer = nodes.is_none_or(|n| n.rank() == 0);
    if trained.outcome != Outcome::Interrupted && writer {
        let evaluate_started = Instant::now();
        // Evaluated in the precision it trained in: the device keeps its float type.
        let predictor = kiln_core::dispatch_with(
            options.backend,
            precision,
            LoadVisitor { dir: &bundle_dir },
        )??;
        let scored = match &mut prepared.stream {
            Some(stream) => {
                crate::streaming::evaluate(stream, &predictor, config.raw().pipeline.seed)?
            }
            None => SPLIT_NAMES
                .iter()
                .enumerate()
                .skip(1)
                .filter(|&(i, _)| !split_rows(&prepared.split, i).is_empty())
                .map(|(i, name)| {
                    let (x, y, truth) = (&prepared.x[i], &prepared.y[i], &prepared.truth[i]);
                    (*name, predictor.score_encoded(x, y, truth))
                })
                .collect(),
        };
        for (name, scores) in scored {
            metrics.insert(
                name.to_owned(),
                config.raw().evaluate.select(scores.metrics),
            );
            if let Some(matrix) = scores.confusion {
                confusion.insert(name.to_owned(), matrix);
            }
        }
        timings.insert("evaluate".into(), evaluate_started.elapsed().as_secs_f64());
    }

    let raw_config = serde_json::to_value(config.raw()).expect("config serializes");
    let config_hash = hash_bytes(raw_config.to_string().as_bytes());
    let splits: BTreeMap<String, SplitRecord> = match &prepared.stream {
        Some(stream) => stream.splits.clone(),
        None => SPLIT_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let rows = split_rows(&prepared.split, i);
                (
                    (*name).to_owned(),
                    SplitRecord {
                        rows: rows.len(),
                        hash: hash_indices(rows),
                    },
                )
            })
            .collect(),
    };
    timings.insert("total".into(), started.elapsed().as_secs_f64());
    let seed = config.raw().pipeline.seed;
    let seeds = [
        ("split", seed),
        ("cv_folds", seed),
        ("target_encoding", seed),
        ("model_init", settings.seed),
        ("shuffle", settings.seed),
        ("dropout", settings.seed),
    ]
    .into_iter()
    .map(|(stage, seed)| (stage.to_owned(), seed))
    .collect();
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        status: trained.outcome,
        resumed_from: resume.clone(),
        kiln_version: kiln_core::KILN_VERSION.into(),
        burn_version: kiln_core::BURN_VERSION.into(),
        name: config.raw().pipeline.name.clone(),
        config_path: config.config_path().to_path_buf(),
        config: raw_config,
        config_hash,
        data_path: config.source().to_path_buf(),
        data_hash: prepared.data_hash().clone(),
        rows: prepared.rows,
        rows_without_target: prepared.rows_without_target,
        schema: prepared.spec.schema.clone(),
        task: prepared.spec.task(),
        seed: config.raw().pipeline.seed,
        split_method: prepared.split_method,
        splits,
        device: trained.device,
        precision,
        devices: settings.devices,
        nodes: nodes.map_or(1, Collective::nodes),
        host: HostInfo::detect(),
        model: prepared.spec.model.clone(),
        parameters: prepared.spec.model.num_params(),
        epochs_run: trained.history.len(),
        best_epoch: trained.best_epoch,
        samples_per_second: trained.samples_per_second,
        timings,
        metrics,
        confusion,
        inputs: prepared.inputs.clone(),
        stages: prepared.stages.clone(),
        fold: options.fold,
        seeds,
        cargo_lock: kiln_core::cargo_lock_hash(),
        git: GitRevision::of(config.config_path()),
        command: options.command.clone(),
        started_at,
        finished_at: unix_millis(),
        parameter_hash: trained.parameter_hash,
        streaming: prepared.stream.as_ref().map(|s| s.record.clone()),
    };
    if prepared.stream.is_some() {
        // The rows are not listed: each row's split is a hash of the seed and its index.
        write_json(&staged.path().join("splits.json"), &manifest.splits)?;
    } else {
        write_json(&staged.path().join("splits.json"), &prepared.split)?;
    }
    write_json(&staged.path().join("validation.json"), &prepared.report)?;
    write_json(&staged.path().join(STATS_FILE), &prepared.stats)?;
    if trained.outcome != Outcome::Interrupted {
        write_json(&bundle_dir.join("manifest.json"), &manifest)?;
        write_json(&bundle_dir.join(STATS_FILE), &prepared.stats)?;
    }
    write_json(&staged.path().join("manifest.json"), &manifest)?;
    let run_dir = staged.commit_numbered()?;
    match trained.outcome {
        Outcome::Interrupted => Err(Error::Interrupted { run_dir }),
        Outcome::Diverged { epoch, step } => Err(Error::Diverged {
            run_dir,
            epoch,
            step,
        }),
        Outcome::Completed | Outcome::EarlyStopped => Ok(RunSummary { run_dir, manifest }),
    }
}

/// What `kiln train --dry-run` shows: the model that would train, on what.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// The architecture, with input and output widths from the fitted transforms.
    pub model: ModelSpec,
    /// Its layers, output shapes and parameter counts.
    pub layers: Vec<LayerSummary>,
    /// Trainable parameters.
    pub parameters: usize,
    /// The task.
    pub task: Task,
    /// Names of the model's input columns after the transforms.
    pub features: Vec<String>,
    /// Rows per split.
    pub splits: BTreeMap<String, usize>,
}

/// Ingests, splits and fits the transforms, then describes the model without training it.
///
/// # Errors
/// Config, data and transform errors, as [`train`].
pub fn dry_run(config: &ValidPipelineConfig) -> Result<DryRun> {
    let prepared = prepare(config, None, None, &mut BTreeMap::new())?;
    let spec = &prepared.spec;
    Ok(DryRun {
        model: spec.model.clone(),
        layers: spec.model.summary(),
        parameters: spec.model.num_params(),
        task: spec.task(),
        features: spec.features.output_names(),
        splits: SPLIT_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| ((*name).to_owned(), split_rows(&prepared.split, i).len()))
            .collect(),
    })
}

/// The config snapshot a run keeps so `--resume` needs only the run directory.
const CONFIG_SNAPSHOT: &str = "config.json";

/// The config with `data.source` made absolute, so it resolves from anywhere.
fn resumable_config(config: &ValidPipelineConfig) -> Result<crate::PipelineConfig> {
    let mut raw = config.raw().clone();
    raw.data.source = std::path::absolute(config.source())?;
    Ok(raw)
}

/// Loads the config a run was started with, for `kiln train --resume <run>` without a
/// pipeline file.
///
/// # Errors
/// [`Error::BadResume`] when `run` (or the run holding a checkpoint) has no config snapshot.
pub fn resume_config(run: &Path) -> Result<ValidPipelineConfig> {
    let dir = run
        .ancestors()
        .find(|d| d.join(CONFIG_SNAPSHOT).is_file())
        .ok_or_else(|| Error::BadResume {
            path: run.to_path_buf(),
            reason: "not a kiln run or checkpoint".into(),
        })?;
    let raw: crate::PipelineConfig = read_json(&dir.join(CONFIG_SNAPSHOT))?;
    Ok(raw.check(&dir.join("pipeline.toml"))?)
}

/// The checkpoint to resume from: `run` itself, or the latest in `run/checkpoints`. Refuses
/// when the data file changed since that run.
fn resume_point(run: &Path, data_hash: &FileHash) -> Result<PathBuf> {
    let checkpoint = if run.join("state.mpk").is_file() {
        run.to_path_buf()
    } else {
        kiln_train::latest_checkpoint(&run.join("checkpoints")).map_err(|e| Error::BadResume {
            path: run.to_path_buf(),
            reason: e.to_string(),
        })?
    };
    if let Some(manifest_dir) = checkpoint
        .ancestors()
        .find(|d| d.join("manifest.json").is_file())
    {
        // Only the data hash matters here; metrics may hold nulls (undefined values).
        let manifest: serde_json::Value = read_json(&manifest_dir.join("manifest.json"))?;
        let then = manifest["data_hash"]["blake3"].as_str().unwrap_or_default();
        if then != data_hash.blake3 {
            return Err(Error::BadResume {
                path: run.to_path_buf(),
                reason: format!(
                    "the data file changed since that run (blake3 {then} then, {} now)",
                    data_hash.blake3
                ),
            });
        }
    }
    Ok(checkpoint)
}

struct TrainedSummary {
    device: DeviceInfo,
    parameter_hash: String,
    history: Vec<EpochStats>,
    outcome: Outcome,
    best_epoch: usize,
    train_seconds: f64,
    samples_per_second: f64,
    exchange_seconds: f64,
    exchanges: usize,
}

struct TrainVisitor<'a> {
    prepared: &'a Prepared,
    settings: &'a TrainSettings,
    bundle_dir: &'a Path,
    checkpoints: &'a Path,
    resume: Option<&'a Path>,
    stop: Option<&'a AtomicBool>,
    observer: Observer<'a>,
    nodes: Option<&'a dyn Collective>,
    /// This node's training rows, in a multi-node run.
    shard: Option<&'a (Matrix, Targets)>,
}

impl BackendVisitor for TrainVisitor<'_> {
    type Output = Result<TrainedSummary>;

    fn visit<B: AutodiffBackend>(self, device: B::Device, info: DeviceInfo) -> Self::Output {
        let p = self.prepared;
        let model = p.spec.model.init::<B>(self.settings.seed, &device);
        let hooks = Hooks {
            on_epoch: self.observer.on_epoch,
            on_step: self.observer.on_step,
            stop: self.stop,
            checkpoints: Some(self.checkpoints),
            resume: self.resume,
            nodes: self.nodes,
        };
        let trained = match &p.stream {
            Some(stream) => crate::streaming::fit(p, stream, model, self.settings, &device, hooks)?,
            None => kiln_train::fit(
                model,
                self.shard.map_or((&p.x[0], &p.y[0]), |(x, y)| (x, y)),
                (&p.x[1], &p.y[1]),
                p.spec.task(),
                self.settings,
                &device,
                hooks,
            )?,
        };
        if trained.outcome != Outcome::Interrupted {
            fs_err::create_dir_all(self.bundle_dir)?;
            p.spec.save(self.bundle_dir, &trained.model)?;
        }
        Ok(TrainedSummary {
            device: info,
            parameter_hash: kiln_models::parameter_hash(&trained.model),
            history: trained.history,
            outcome: trained.outcome,
            best_epoch: trained.best_epoch,
            train_seconds: trained.train_seconds,
            samples_per_second: trained.samples_per_second,
            exchange_seconds: trained.exchange_seconds,
            exchanges: trained.exchanges,
        })
    }
}

/// Loads a bundle on the dispatched backend (inference needs no autodiff).
pub(crate) struct LoadVisitor<'a> {
    /// A bundle directory or a `.kiln` archive.
    pub(crate) dir: &'a Path,
}

/// How well a model predicts rows with known targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// Every metric of the task, by name (NaN where undefined, e.g. ROC-AUC of one class).
    pub metrics: BTreeMap<String, f64>,
    /// `[true][predicted]` counts in class order (classification).
    pub confusion: Option<Vec<Vec<usize>>>,
}

/// A [`Predictor`] whose backend was chosen at run time.
pub struct AnyPredictor(Box<dyn ErasedPredictor>);

// Send + Sync: a server shares one loaded bundle between its request threads.
pub(crate) trait ErasedPredictor: Send + Sync {
    fn spec(&self) -> &BundleSpec;
    fn dir(&self) -> &Path;
    fn source(&self) -> &Path;
    fn training_stats(&self) -> Result<DatasetStats>;
    fn read(&self, path: &Path) -> Result<Table>;
    fn predict(&self, table: &Table, rows: &[usize]) -> Result<Predictions>;
    fn predict_matrix(&self, x: &Matrix) -> Predictions;
}

impl<B: burn::tensor::backend::Backend> ErasedPredictor for Predictor<B> {
    fn spec(&self) -> &BundleSpec {
        Predictor::spec(self)
    }
    fn dir(&self) -> &Path {
        Predictor::dir(self)
    }
    fn source(&self) -> &Path {
        Predictor::source(self)
    }
    fn training_stats(&self) -> Result<DatasetStats> {
        Predictor::training_stats(self)
    }
    fn read(&self, path: &Path) -> Result<Table> {
        Predictor::read(self, path)
    }
    fn predict(&self, table: &Table, rows: &[usize]) -> Result<Predictions> {
        Predictor::predict(self, table, rows)
    }
    fn predict_matrix(&self, x: &Matrix) -> Predictions {
        Predictor::predict_matrix(self, x)
    }
}

impl BackendVisitor for LoadVisitor<'_> {
    type Output = Result<AnyPredictor>;

    fn visit<B: AutodiffBackend>(self, device: B::Device, _info: DeviceInfo) -> Self::Output {
        Ok(AnyPredictor(Box::new(Predictor::<B::InnerBackend>::load(
            self.dir, &device,
        )?)))
    }
}

impl AnyPredictor {
    /// Loads the bundle at `path` (a bundle directory or a `.kiln` archive) on `backend`.
    ///
    /// # Errors
    /// See [`Predictor::load`]; [`kiln_core::Error::NoDevice`] for an unusable backend.
    pub fn load(path: &Path, backend: BackendKind) -> Result<Self> {
        kiln_core::dispatch(backend, LoadVisitor { dir: path })?
    }

    /// The fitted spec.
    pub fn spec(&self) -> &BundleSpec {
        self.0.spec()
    }

    /// The directory holding the bundle's files; see [`Predictor::dir`].
    pub fn dir(&self) -> &Path {
        self.0.dir()
    }

    /// What was loaded: the bundle directory or the `.kiln` archive.
    pub fn source(&self) -> &Path {
        self.0.source()
    }

    /// Predicts the rows of an Arrow batch; see [`Predictor::predict_batch`].
    ///
    /// # Errors
    /// [`Error::Data`] naming the column, or the row and column of a bad value.
    pub fn predict_batch(
        &self,
        batch: &arrow_array::RecordBatch,
    ) -> Result<Vec<crate::Prediction>> {
        crate::bundle::predict_batch(self.spec(), batch, |table, rows| self.predict(table, rows))
    }

    /// Predicts JSON rows; see [`Predictor::predict_json`].
    ///
    /// # Errors
    /// [`Error::Input`] naming the row and column of a bad value.
    pub fn predict_json(&self, rows: &[serde_json::Value]) -> Result<Vec<crate::Prediction>> {
        let table = self.spec().rows_table(rows)?;
        let all: Vec<usize> = (0..table.n_rows()).collect();
        Ok(self.predict(&table, &all)?.to_rows())
    }

    /// The training rows' statistics; see [`Predictor::training_stats`].
    ///
    /// # Errors
    /// A missing or malformed `stats.json`, naming it.
    pub fn training_stats(&self) -> Result<kiln_data::DatasetStats> {
        self.0.training_stats()
    }

    /// Reads a CSV file with the bundle's schema (the target may be absent).
    ///
    /// # Errors
    /// Data errors naming the file, line and column.
    pub fn read(&self, path: &Path) -> Result<Table> {
        self.0.read(path)
    }

    /// Predicts every row of the data file at `path`, `rows_per_chunk` rows at a time, writing
    /// CSV (as [`crate::write_predictions_csv`]) to `out`; memory holds one chunk of a CSV file,
    /// whatever its size. Returns the number of rows.
    ///
    /// # Errors
    /// Data errors naming the file, line and column; IO errors from `out`. Rows of earlier
    /// chunks are already written when a later chunk fails.
    pub fn predict_file(
        &self,
        path: &Path,
        rows_per_chunk: usize,
        out: impl Write,
    ) -> Result<usize> {
        crate::predict::predict_file(
            self.spec(),
            |table, rows| self.predict(table, rows),
            path,
            rows_per_chunk,
            out,
        )
    }

    /// Predicts `rows` of `table`.
    ///
    /// # Errors
    /// See [`Predictor::predict`].
    pub fn predict(&self, table: &Table, rows: &[usize]) -> Result<Predictions> {
        self.0.predict(table, rows)
    }

    /// Metrics of the predictions for `rows` against their targets (in target units).
    ///
    /// # Errors
    /// A missing or unknown target on one of `rows`, naming its line.
    pub fn score(&self, table: &Table, rows: &[usize]) -> Result<Scores> {
        let target = &self.spec().target;
        let encoded = target.encode(table, rows)?;
        let x = self.spec().features.transform(table, rows)?;
        let truth: Vec<f64> = match (&encoded, table.require(target.name())?) {
            (Targets::Values(_), ColumnRef::Numeric(values)) => {
                rows.iter().map(|&r| values.value(r)).collect()
            }
            _ => Vec::new(),
        };
        Ok(self.score_encoded(&x, &encoded, &truth))
    }

    /// Metrics of the predictions for transformed rows `x` against their encoded targets
    /// `y`; a regression is scored against `truth`, the targets in the file's units (not the
    /// f32 standardized encoding).
    pub(crate) fn score_encoded(&self, x: &Matrix, y: &Targets, truth: &[f64]) -> Scores {
        score_predictions(self.0.predict_matrix(x), y, truth)
    }
}

/// Metrics of `predictions` against the encoded targets `y` (classification) or `truth`, the
/// targets in the file's units (regression).
pub(crate) fn score_predictions(predictions: Predictions, y: &Targets, truth: &[f64]) -> Scores {
    match (predictions, y) {
        (Predictions::Classes { probabilities, .. }, Targets::Classes(labels)) => Scores {
            metrics: kiln_train::metrics::classification(&probabilities, labels),
            confusion: Some(kiln_train::metrics::confusion_matrix(
                &probabilities,
                labels,
            )),
        },
        (Predictions::Values(predicted), Targets::Values(_)) => Scores {
            metrics: kiln_train::metrics::regression(&predicted, truth),
            confusion: None,
        },
        _ => unreachable!("predictions and targets come from one fitted target"),
    }
}

/// This node's shard of the training rows, after checking that every node runs the same
/// pipeline on the same data.
fn node_shard(
    config: &ValidPipelineConfig,
    prepared: &Prepared,
    nodes: &dyn Collective,
    options: &TrainOptions,
) -> Result<(Matrix, Targets)> {
    let refuse = |what: &str| {
        Err(Error::Train(kiln_train::Error::Nodes {
            message: format!("{what} is not supported across nodes"),
        }))
    };
    if prepared.stream.is_some() {
        return refuse("streaming data larger than the memory budget");
    }
    if options.resume.is_some() {
        return refuse("--resume");
    }
    if config.raw().model.norm == kiln_models::Norm::Batch {
        // Each node's running statistics would follow its own shard.
        return refuse("norm = \"batch\"");
    }
    let identity = format!(
        "{}{}",
        serde_json::to_string(config.raw()).expect("config serializes"),
        prepared.data_hash().blake3
    );
    let fingerprint = u64::from_le_bytes(
        blake3::hash(identity.as_bytes()).as_bytes()[..8]
            .try_into()
            .expect("8 bytes"),
    );
    let what = format!(
        "node {} of {}: the start of the run",
        nodes.rank(),
        nodes.nodes()
    );
    kiln_train::collective::agree(nodes, &what, fingerprint, 0)?;
    let (x, y) = (&prepared.x[0], &prepared.y[0]);
    let own: Vec<usize> = split_rows(&prepared.split, 0)
        .iter()
        .enumerate()
        .filter(|&(_, &row)| kiln_train::collective::owns_row(row, nodes.rank(), nodes.nodes()))
        .map(|(i, _)| i)
        .collect();
    let data = own.iter().flat_map(|&i| x.row(i).iter().copied()).collect();
    let targets = match y {
        Targets::Classes(c) => Targets::Classes(own.iter().map(|&i| c[i]).collect()),
        Targets::Values(v) => Targets::Values(own.iter().map(|&i| v[i]).collect()),
    };
    Ok((Matrix::new(data, own.len(), x.cols), targets))
}
