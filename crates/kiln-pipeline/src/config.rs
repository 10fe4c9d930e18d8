//! The pipeline file: raw serde structs (unknown keys refused), checked into a
//! [`ValidPipelineConfig`] that is the only form the runner accepts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_core::Precision;
use kiln_data::{
    ColumnRole, ColumnSpec, CsvOptions, Format, ReadOptions, SplitFractions, ValidationConfig,
};
use kiln_models::{Activation, EmbeddingSpec, ImageShape, ModelKind, ModelSpec, Norm};
use kiln_train::{GradClip, LossKind, Monitor, OptimizerKind, Schedule, TrainSettings};
use kiln_transform::{FeatureConfig, TargetKind};
use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::drift::DriftConfig;

/// `pipeline.toml` as written (defaults filled in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// `[pipeline]`.
    pub pipeline: PipelineSection,
    /// `[data]`.
    pub data: DataSection,
    /// `[split]`.
    #[serde(default)]
    pub split: SplitSection,
    /// `[validate]`: rules the data must pass before anything is fitted.
    #[serde(default, skip_serializing_if = "is_default")]
    pub validate: ValidationConfig,
    /// `[features]`.
    #[serde(default)]
    pub features: FeatureConfig,
    /// `[model]`.
    #[serde(default)]
    pub model: ModelSection,
    /// `[train]`.
    #[serde(default)]
    pub train: TrainSection,
    /// `[evaluate]`.
    #[serde(default)]
    pub evaluate: EvaluateSection,
    /// `[drift]`: thresholds for `kiln drift` and the server's drift gauges.
    #[serde(default, skip_serializing_if = "is_default")]
    pub drift: DriftConfig,
    /// `[sweep]`: what `kiln sweep` varies; `kiln train` ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<crate::sweep::SweepConfig>,
}

/// `[evaluate]`: what is reported for the valid and test splits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateSection {
    /// Metric names (e.g. `["accuracy", "f1_macro", "roc_auc"]`); every metric of the task
    /// when empty.
    pub metrics: Vec<String>,
}

impl EvaluateSection {
    /// Keeps the chosen metrics of `all` (all of them when none are chosen).
    pub fn select(&self, all: BTreeMap<String, f64>) -> BTreeMap<String, f64> {
        if self.metrics.is_empty() {
            return all;
        }
        all.into_iter()
            .filter(|(name, _)| self.metrics.contains(name))
            .collect()
    }
}

/// `[pipeline]`: identity and seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Names the run directories.
    pub name: String,
    /// Seed of every random stream (split, initialization, data order).
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_seed() -> u64 {
    42
}

/// `[data]`: where the rows come from and what to predict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Data file, relative to the pipeline file.
    pub source: PathBuf,
    /// `csv`, `parquet` or `jsonl`; picked from the file name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Column to predict.
    pub target: String,
    /// Predict whether the (numeric) target is above this value: a boolean classification
    /// target derived from the column, e.g. `arr_delay > 15`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_above: Option<f64>,
    /// Inferred from the target's type when absent.
    #[serde(default)]
    pub task: Option<TargetKind>,
    /// CSV: single-character field delimiter.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// CSV: whether the first line names the columns (else `column_1`, `column_2` …).
    #[serde(default = "default_header", skip_serializing_if = "is_true")]
    pub header: bool,
    /// CSV: quote character.
    #[serde(default = "default_quote", skip_serializing_if = "is_default_quote")]
    pub quote: char,
    /// CSV: lines starting with this character are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<char>,
    /// Cell texts read as missing.
    #[serde(default = "default_missing")]
    pub missing: Vec<String>,
    /// Rows sampled to infer column types.
    #[serde(default = "default_infer_rows")]
    pub infer_rows: usize,
    /// Per-column type and role: `x = "categorical"` or `x = { type = "text", role = "id" }`
    /// (also as `[data.columns.x]` tables). Only `feature` columns are model inputs.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnSpec>,
    /// Columns not read at all (leaks, junk); the same as `role = "ignore"`.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Stream the file in chunks instead of loading it (see `streaming.rs`): `true` always,
    /// `false` never; when absent, when the file's estimated size exceeds
    /// `memory_budget_mib`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<bool>,
    /// Memory for the data in MiB: a file estimated larger streams, and a streaming run sizes
    /// its chunks, shuffle buffer and evaluation samples to fit it (256 when streaming is
    /// forced without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_budget_mib: Option<u64>,
}

fn default_header() -> bool {
    true
}

// Serde's `skip_serializing_if` passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_true(value: &bool) -> bool {
    *value
}

fn default_quote() -> char {
    '"'
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_default_quote(value: &char) -> bool {
    *value == default_quote()
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn default_delimiter() -> char {
    ','
}

fn default_missing() -> Vec<String> {
    CsvOptions::default().missing
}

fn default_infer_rows() -> usize {
    1000
}

/// How rows are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitMethod {
    /// Shuffle and cut.
    Random,
    /// Per class (classification only).
    Stratified,
    /// Whole groups (`[split] group = "column"` or the column with role `group`): no group
    /// has rows in two splits.
    Group,
    /// By time (`[split] time = "column"` or the column with role `time`): train holds the
    /// earliest rows, valid the next, test the latest.
    Time,
}

/// `[split]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitSection {
    /// Stratified for classification, random for regression, when absent.
    pub method: Option<SplitMethod>,
    /// Validation fraction.
    pub valid: f64,
    /// Test fraction.
    pub test: f64,
    /// The group column of a `group` split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The time column of a `time` split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

impl Default for SplitSection {
    fn default() -> Self {
        Self {
            method: None,
            valid: 0.15,
            test: 0.2,
            group: None,
            time: None,
        }
    }
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// `linear` (linear / logistic / softmax regression), `mlp`, `tabular` (embeddings for
    /// categorical columns, then an MLP) or `cnn`.
    pub kind: ModelKind,
    /// Hidden layer widths (not for linear).
    pub hidden: Vec<usize>,
    /// Dropout after hidden layers.
    pub dropout: f64,
    /// `relu`, `gelu`, `silu` or `tanh`.
    pub activation: Activation,
    /// `none`, `batch` or `layer`.
    pub norm: Norm,
    /// Skip connections around hidden layers whose input and output widths agree.
    pub residual: bool,
    /// Embedding width of every categorical column (tabular); fast.ai's rule of thumb,
    /// `min(600, round(1.6 · n^0.56))` for `n` categories, when absent.
    pub embedding_dim: Option<usize>,
    /// Output channels of each convolution block (cnn).
    pub conv: Vec<usize>,
    /// The image the feature columns hold, channel-major: `{ channels, height, width }` (cnn).
    pub image: Option<ImageShape>,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            kind: ModelKind::Mlp,
            hidden: vec![64, 32],
            dropout: 0.0,
            activation: Activation::Relu,
            norm: Norm::None,
            residual: false,
            embedding_dim: None,
            conv: Vec::new(),
            image: None,
        }
    }
}

impl ModelSection {
    /// The architecture for `inputs` feature columns and `outputs` outputs, with an embedding
    /// for each `(column, cardinality)` of `index_columns`.
    pub fn spec(
        &self,
        inputs: usize,
        outputs: usize,
        index_columns: &[(usize, usize)],
    ) -> ModelSpec {
        let conv = if self.kind == ModelKind::Cnn && self.conv.is_empty() {
            vec![16, 32]
        } else {
            self.conv.clone()
        };
        ModelSpec {
            kind: self.kind,
            inputs,
            hidden: self.hidden.clone(),
            outputs,
            dropout: self.dropout,
            activation: self.activation,
            norm: self.norm,
            residual: self.residual,
            embeddings: index_columns
                .iter()
                .map(|&(column, cardinality)| EmbeddingSpec {
                    column,
                    cardinality,
                    dim: self
                        .embedding_dim
                        .unwrap_or_else(|| EmbeddingSpec::default_dim(cardinality)),
                })
                .collect(),
            image: self.image,
            conv,
        }
    }
}

/// Optimizers kiln can train with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerName {
    /// SGD, with `momentum` and `nesterov`.
    Sgd,
    /// Adam (weight decay as an L2 penalty).
    #[default]
    Adam,
    /// AdamW (decoupled weight decay).
    #[serde(rename = "adamw")]
    AdamW,
}

/// `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// The optimizer.
    pub optimizer: OptimizerName,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD Nesterov momentum.
    pub nesterov: bool,
    /// Learning rate.
    pub lr: f64,
    /// Maximum epochs.
    pub epochs: usize,
    /// Rows per batch on each device (a step takes `batch_size × devices` rows).
    pub batch_size: usize,
    /// Data-parallel devices: the CPU shared by every replica on ndarray and flex, GPUs
    /// `0..devices` on wgpu and cuda (the `--devices` flag).
    pub devices: usize,
    /// Weight decay.
    pub weight_decay: f64,
    /// `{ norm = x }` or `{ value = x }`.
    pub grad_clip: Option<GradClip>,
    /// Batches per optimizer step.
    pub grad_accumulation: usize,
    /// Learning-rate schedule, e.g. `{ kind = "cosine", warmup_epochs = 2 }`.
    pub schedule: Schedule,
    /// `cross_entropy`, `binary_cross_entropy`, `mse`, `mae` or `huber`; the task's default when
    /// absent.
    pub loss: Option<LossKind>,
    /// Cross-entropy label smoothing.
    pub label_smoothing: f64,
    /// Cross-entropy weight per class, in class order.
    pub class_weights: Option<Vec<f32>>,
    /// Huber's delta, in standardized target units.
    pub huber_delta: f64,
    /// Model selection and early stopping: `{ metric = "valid_loss", mode = "min", patience = 10 }`.
    pub early_stopping: Monitor,
    /// Checkpoint every this many epochs (and at the end).
    pub checkpoint_every: usize,
    /// The float type of weights, activations, gradients and optimizer state: `f32`, `f16`
    /// (flex, cuda, wgpu adapters with shader-f16) or `bf16` (flex, cuda).
    pub precision: Precision,
}

impl Default for TrainSection {
    fn default() -> Self {
        let t = TrainSettings::default();
        Self {
            optimizer: OptimizerName::Adam,
            momentum: 0.0,
            nesterov: false,
            lr: t.lr,
            epochs: t.epochs,
            batch_size: t.batch_size,
            devices: t.devices,
            weight_decay: t.weight_decay,
            grad_clip: t.grad_clip,
            grad_accumulation: t.grad_accumulation,
            schedule: t.schedule,
            loss: t.loss,
            label_smoothing: t.label_smoothing,
            class_weights: t.class_weights,
            huber_delta: t.huber_delta,
            early_stopping: t.monitor,
            checkpoint_every: t.checkpoint_every,
            precision: Precision::F32,
        }
    }
}

impl TrainSection {
    /// The loop settings, with the pipeline's seed.
    pub fn settings(&self, seed: u64) -> TrainSettings {
        TrainSettings {
            epochs: self.epochs,
            batch_size: self.batch_size,
            devices: self.devices,
            lr: self.lr,
            optimizer: match self.optimizer {
                OptimizerName::Sgd => OptimizerKind::Sgd {
                    momentum: self.momentum,
                    nesterov: self.nesterov,
                },
                OptimizerName::Adam => OptimizerKind::Adam,
                OptimizerName::AdamW => OptimizerKind::AdamW,
            },
            weight_decay: self.weight_decay,
            grad_clip: self.grad_clip,
            grad_accumulation: self.grad_accumulation,
            schedule: self.schedule,
            loss: self.loss,
            label_smoothing: self.label_smoothing,
            class_weights: self.class_weights.clone(),
            huber_delta: self.huber_delta,
            monitor: self.early_stopping.clone(),
            checkpoint_every: self.checkpoint_every,
            seed,
        }
    }

    /// Checks every training rule.
    fn check(
        &self,
        invalid: &dyn Fn(&'static str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let positive = |x: f64| x.is_finite() && x > 0.0;
        let rules: [(bool, &'static str, String); 14] = [
            (
                positive(self.lr),
                "train.lr",
                format!("must be a positive number, got {}", self.lr),
            ),
            (
                self.epochs >= 1,
                "train.epochs",
                "must be at least 1".into(),
            ),
            (
                self.batch_size >= 1,
                "train.batch_size",
                "must be at least 1".into(),
            ),
            (
                self.devices >= 1,
                "train.devices",
                "must be at least 1".into(),
            ),
            (
                self.weight_decay.is_finite() && self.weight_decay >= 0.0,
                "train.weight_decay",
                "must be zero or positive".into(),
            ),
            (
                (0.0..1.0).contains(&self.momentum),
                "train.momentum",
                format!("must be in [0, 1), got {}", self.momentum),
            ),
            (
                !self.nesterov || self.momentum > 0.0,
                "train.nesterov",
                "needs momentum > 0".into(),
            ),
            (
                self.optimizer == OptimizerName::Sgd || (self.momentum == 0.0 && !self.nesterov),
                "train.momentum",
                "applies to the sgd optimizer only".into(),
            ),
            (
                self.grad_accumulation >= 1,
                "train.grad_accumulation",
                "must be at least 1".into(),
            ),
            (
                (0.0..1.0).contains(&self.label_smoothing),
                "train.label_smoothing",
                "must be in [0, 1)".into(),
            ),
            (
                positive(self.huber_delta),
                "train.huber_delta",
                "must be positive".into(),
            ),
            (
                self.checkpoint_every >= 1,
                "train.checkpoint_every",
                "must be at least 1".into(),
            ),
            (
                self.early_stopping.patience != Some(0),
                "train.early_stopping.patience",
                "must be at least 1".into(),
            ),
            (
                self.class_weights
                    .as_ref()
                    .is_none_or(|w| w.iter().all(|&v| v.is_finite() && v > 0.0)),
                "train.class_weights",
                "must all be positive".into(),
            ),
        ];
        if let Some((_, key, reason)) = rules.into_iter().find(|(ok, _, _)| !ok) {
            return Err(invalid(key, reason));
        }
        if let Some(GradClip::Norm(v) | GradClip::Value(v)) = self.grad_clip
            && !positive(v)
        {
            return Err(invalid(
                "train.grad_clip",
                format!("must be positive, got {v}"),
            ));
        }
        let schedule_ok = match self.schedule {
            Schedule::Constant => true,
            Schedule::Step { every, gamma } => every >= 1 && positive(gamma),
            Schedule::Exponential { gamma } => positive(gamma),
            Schedule::Cosine {
                warmup_epochs,
                min_lr,
            } => warmup_epochs < self.epochs && min_lr >= 0.0 && min_lr < self.lr,
            Schedule::Plateau { factor, patience } => factor > 0.0 && factor < 1.0 && patience >= 1,
        };
        if !schedule_ok {
            return Err(invalid(
                "train.schedule",
                format!(
                    "{:?} is out of range (step: every >= 1, gamma > 0; cosine: warmup < epochs, 0 <= min_lr < lr; plateau: 0 < factor < 1, patience >= 1)",
                    self.schedule
                ),
            ));
        }
        Ok(())
    }
}

/// A checked pipeline: paths resolved, every rule satisfied.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPipelineConfig {
    raw: PipelineConfig,
    config_path: PathBuf,
    source: PathBuf,
    fractions: SplitFractions,
    read: ReadOptions,
    split_column: Option<String>,
}

impl ValidPipelineConfig {
    /// The config as parsed, defaults filled in.
    pub fn raw(&self) -> &PipelineConfig {
        &self.raw
    }

    /// The pipeline file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The data file, resolved against the pipeline file's folder.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Checked split fractions.
    pub fn fractions(&self) -> SplitFractions {
        self.fractions
    }

    /// How to read the data file (format, CSV options).
    pub fn read_options(&self) -> &ReadOptions {
        &self.read
    }

    /// The group column of a `group` split, or the time column of a `time` split.
    pub fn split_column(&self) -> Option<&str> {
        self.split_column.as_deref()
    }

    /// The role each column plays: `[data.columns]` roles, `drop`ped columns as `ignore`, the
    /// split's group or time column, and the target.
    pub fn roles(&self) -> BTreeMap<String, ColumnRole> {
        let data = &self.raw.data;
        let mut roles: BTreeMap<String, ColumnRole> = data
            .columns
            .iter()
            .filter_map(|(name, spec)| Some((name.clone(), spec.role()?)))
            .collect();
        for name in &data.drop {
            roles.insert(name.clone(), ColumnRole::Ignore);
        }
        if let Some(column) = &self.split_column {
            let role = if self.raw.split.method == Some(SplitMethod::Group) {
                ColumnRole::Group
            } else {
                ColumnRole::Time
            };
            roles.insert(column.clone(), role);
        }
        roles.insert(data.target.clone(), ColumnRole::Target);
        roles
    }

    /// Reads from `source` instead of `[data] source` (the `--data` flag).
    pub fn set_source(&mut self, source: PathBuf) {
        self.source = source;
    }

    /// Replaces the seed (the `--seed` flag).
    pub fn set_seed(&mut self, seed: u64) {
        self.raw.pipeline.seed = seed;
    }

    /// Replaces `[data] memory_budget_mib` (the `--memory-budget-mib` flag).
    pub fn set_memory_budget_mib(&mut self, mib: u64) {
        self.raw.data.memory_budget_mib = Some(mib);
    }

    /// Replaces `[train] devices` (the `--devices` flag); 0 is refused when training starts.
    pub fn set_devices(&mut self, devices: usize) {
        self.raw.train.devices = devices;
    }
}

impl PipelineConfig {
    /// Reads and checks a pipeline file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, and the line and key where one applies.
    pub fn load(path: &Path) -> Result<ValidPipelineConfig, ConfigError> {
        let text = fs_err::read_to_string(path)?;
        Self::parse(&text, path)?.check(path)
    }

    /// Parses TOML text; `path` is only used in messages.
    ///
    /// # Errors
    /// [`ConfigError::UnknownKey`] (with the closest valid key), [`ConfigError::Toml`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))
    }

    /// Checks every rule; `path` is the pipeline file, against which `data.source` resolves.
    ///
    /// # Errors
    /// One [`ConfigError`] variant per rule.
    pub fn check(self, path: &Path) -> Result<ValidPipelineConfig, ConfigError> {
        let invalid = |key: &'static str, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            reason,
        };
        if self.pipeline.name.trim().is_empty()
            || self.pipeline.name.contains(['/', '\\'])
            || self.pipeline.name.starts_with('.')
        {
            return Err(invalid(
                "pipeline.name",
                "must be non-empty, without slashes, not starting with `.`".into(),
            ));
        }
        let drift = &self.drift;
        if !(drift.psi > 0.0 && drift.ks > 0.0 && drift.ks < 1.0) {
            return Err(invalid(
                "drift",
                "`psi` must be positive and `ks` in (0, 1)".into(),
            ));
        }
        if !(drift.chi2_p_value > 0.0 && drift.chi2_p_value < 1.0) || drift.window == 0 {
            return Err(invalid(
                "drift",
                "`chi2_p_value` must be in (0, 1) and `window` at least 1".into(),
            ));
        }
        let fractions = SplitFractions::new(self.split.valid, self.split.test)
            .map_err(|e| invalid("split", e.to_string()))?;
        if self.split.method == Some(SplitMethod::Stratified)
            && self.data.task == Some(TargetKind::Regression)
        {
            return Err(invalid(
                "split.method",
                "stratified splits need a classification task".into(),
            ));
        }
        let ascii = |key: &'static str, c: char| {
            u8::try_from(c)
                .ok()
                .filter(u8::is_ascii)
                .ok_or_else(|| invalid(key, format!("`{c}` is not a single ASCII character")))
        };
        let delimiter = ascii("data.delimiter", self.data.delimiter)?;
        let quote = ascii("data.quote", self.data.quote)?;
        let comment = self
            .data
            .comment
            .map(|c| ascii("data.comment", c))
            .transpose()?;
        if let Some(above) = self.data.target_above {
            if !above.is_finite() {
                return Err(invalid(
                    "data.target_above",
                    "must be a finite number".into(),
                ));
            }
            if self.data.task == Some(TargetKind::Regression) {
                return Err(invalid(
                    "data.target_above",
                    "makes a classification target; drop `task = \"regression\"`".into(),
                ));
            }
        }
        let split_column = self.split_column(&invalid)?;
        if let Some(column) = &split_column
            && (*column == self.data.target || self.data.drop.contains(column))
        {
            return Err(invalid(
                "split",
                format!("splits on `{column}`, which is the target or dropped"),
            ));
        }
        self.check_roles(&invalid)?;
        if self.data.infer_rows == 0 {
            return Err(invalid("data.infer_rows", "must be at least 1".into()));
        }
        self.train.check(&invalid)?;
        if self.data.drop.contains(&self.data.target) {
            return Err(invalid(
                "data.drop",
                format!("drops the target `{}`", self.data.target),
            ));
        }
        // The feature width is known only after fitting; an image fixes it.
        let inputs = self
            .model
            .image
            .map_or(1, |i| i.channels * i.height * i.width);
        self.model
            .spec(inputs, 1, &[])
            .check()
            .map_err(|e| invalid("model", e.to_string()))?;
        if self.model.embedding_dim == Some(0) {
            return Err(invalid("model.embedding_dim", "must be at least 1".into()));
        }
        let known = kiln_train::metrics::CLASSIFICATION_METRICS
            .iter()
            .chain(&kiln_train::metrics::REGRESSION_METRICS);
        if let Some(unknown) = self
            .evaluate
            .metrics
            .iter()
            .find(|m| !known.clone().any(|k| k == m))
        {
            let names: Vec<String> = known.map(|k| (*k).to_owned()).collect();
            return Err(invalid(
                "evaluate.metrics",
                format!(
                    "unknown metric `{unknown}`{}; known: {}",
                    kiln_core::suggest::closest(unknown, &names)
                        .map_or(String::new(), |s| format!(" (did you mean `{s}`?)")),
                    names.join(", ")
                ),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let source = base.join(&self.data.source);
        let read = ReadOptions {
            format: self.data.format,
            compression: None,
            csv: CsvOptions {
                delimiter,
                has_header: self.data.header,
                missing: self.data.missing.clone(),
                quote,
                comment,
                ..CsvOptions::default()
            },
        };
        Ok(ValidPipelineConfig {
            raw: self,
            config_path: path.to_path_buf(),
            source,
            fractions,
            read,
            split_column,
        })
    }

    /// The column a group or time split keys on: `[split] group`/`time`, else the one column
    /// with that role in `[data.columns]`.
    fn split_column(
        &self,
        invalid: &dyn Fn(&'static str, String) -> ConfigError,
    ) -> Result<Option<String>, ConfigError> {
        let split = &self.split;
        let (key, role, named, other_key, other) = match split.method {
            Some(SplitMethod::Group) => (
                "split.group",
                ColumnRole::Group,
                &split.group,
                "split.time",
                &split.time,
            ),
            Some(SplitMethod::Time) => (
                "split.time",
                ColumnRole::Time,
                &split.time,
                "split.group",
                &split.group,
            ),
            _ => {
                if split.group.is_some() {
                    return Err(invalid("split.group", "needs `method = \"group\"`".into()));
                }
                if split.time.is_some() {
                    return Err(invalid("split.time", "needs `method = \"time\"`".into()));
                }
                return Ok(None);
            }
        };
        if other.is_some() {
            return Err(invalid(
                other_key,
                format!("does not apply to `{key}` splits"),
            ));
        }
        let with_role: Vec<&String> = self
            .data
            .columns
            .iter()
            .filter(|(_, spec)| spec.role() == Some(role))
            .map(|(name, _)| name)
            .collect();
        match (named, with_role.as_slice()) {
            (Some(name), []) => Ok(Some(name.clone())),
            (Some(name), [one]) if *one == name => Ok(Some(name.clone())),
            (None, [one]) => Ok(Some((*one).clone())),
            (None, []) => Err(invalid(
                key,
                format!(
                    "names no column: set `{key} = \"column\"` or give one column `role = \"{}\"`",
                    role.as_str()
                ),
            )),
            _ => Err(invalid(
                key,
                format!(
                    "is ambiguous: `{key}` and the columns with `role = \"{}\"` disagree",
                    role.as_str()
                ),
            )),
        }
    }

    /// Roles must agree with `data.target` and `data.drop`.
    fn check_roles(
        &self,
        invalid: &dyn Fn(&'static str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        for (name, spec) in &self.data.columns {
            let Some(role) = spec.role() else { continue };
            let is_target = *name == self.data.target;
            if is_target != (role == ColumnRole::Target) {
                return Err(invalid(
                    "data.columns",
                    if is_target {
                        format!(
                            "`{name}` is the target; it cannot have role `{}`",
                            role.as_str()
                        )
                    } else {
                        format!(
                            "`{name}` has role `target`, but the target is `{}`",
                            self.data.target
                        )
                    },
                ));
            }
            if self.data.drop.contains(name) && role != ColumnRole::Ignore {
                return Err(invalid(
                    "data.drop",
                    format!("drops `{name}`, which has role `{}`", role.as_str()),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[pipeline]\nname = \"p\"\n[data]\nsource = \"d.csv\"\ntarget = \"y\"\n";

    fn check(extra: &str) -> Result<ValidPipelineConfig, ConfigError> {
        let path = Path::new("dir/pipeline.toml");
        PipelineConfig::parse(&format!("{MINIMAL}{extra}"), path)?.check(path)
    }

    #[test]
    fn drift_thresholds_are_checked() {
        let c = check("[drift]\npsi = 0.1\nwindow = 50\n").unwrap();
        assert_eq!(c.raw().drift.window, 50);
        assert_eq!(
            c.raw().drift.chi2_p_value.to_bits(),
            DriftConfig::default().chi2_p_value.to_bits()
        );
        let err = check("[drift]\nks = 1.5\n").unwrap_err().to_string();
        assert!(err.contains("`drift` `psi` must be positive"), "{err}");
        let err = check("[drift]\nwindow = 0\n").unwrap_err().to_string();
        assert!(err.contains("`window` at least 1"), "{err}");
    }

    #[test]
    fn minimal_config_gets_defaults_and_resolves_source() {
        let c = check("").unwrap();
        assert_eq!(c.source(), Path::new("dir/d.csv"));
        assert_eq!(c.raw().pipeline.seed, 42);
        assert_eq!(c.raw().train, TrainSection::default());
    }

    #[test]
    fn full_train_section_parses() {
        let c = check(concat!(
            "[train]\noptimizer = \"sgd\"\nmomentum = 0.9\nnesterov = true\ngrad_clip = { norm = 1.0 }\n",
            "grad_accumulation = 2\nschedule = { kind = \"cosine\", warmup_epochs = 2 }\nloss = \"cross_entropy\"\n",
            "label_smoothing = 0.1\nearly_stopping = { metric = \"valid_accuracy\", mode = \"max\", patience = 5 }\n",
        ))
        .unwrap();
        let s = c.raw().train.settings(1);
        assert_eq!(
            s.optimizer,
            OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: true
            }
        );
        assert_eq!(s.grad_clip, Some(GradClip::Norm(1.0)));
        assert_eq!(
            s.schedule,
            Schedule::Cosine {
                warmup_epochs: 2,
                min_lr: 0.0
            }
        );
        assert_eq!(s.monitor.patience, Some(5));
    }

    #[test]
    fn unknown_key_is_named_with_a_suggestion() {
        let err = check("[train]\nepoch = 5\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "dir/pipeline.toml: line 7: unknown key `epoch`; did you mean `epochs`?"
        );
        let err = check("[data.columns.x]\ntyp = \"numeric\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "dir/pipeline.toml: line 7: unknown key `typ`; did you mean `type`?"
        );
        let err = check("columns = { x = \"numerc\" }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown variant `numerc`, expected one of `numeric`"),
            "{err}"
        );
        let err = check("[modle]\nkind = \"mlp\"\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "dir/pipeline.toml: line 6: unknown key `modle`; did you mean `model`?"
        );
    }

    #[test]
    fn data_section_reads_format_csv_options_and_column_specs() {
        let c = check(concat!(
            "format = \"parquet\"\nheader = false\nquote = \"'\"\ncomment = \"#\"\n",
            "delimiter = \";\"\ntarget_above = 1.5\n",
            "[data.columns.a]\ntype = \"categorical\"\n[data.columns.b]\nrole = \"id\"\n",
            "[data.columns.y]\ntype = \"numeric\"\nrole = \"target\"\n",
        ))
        .unwrap();
        let read = c.read_options();
        assert_eq!(read.format, Some(Format::Parquet));
        let csv = &read.csv;
        assert_eq!(
            (csv.has_header, csv.quote, csv.comment, csv.delimiter),
            (false, b'\'', Some(b'#'), b';')
        );
        assert_eq!(c.raw().data.target_above, Some(1.5));
        let roles = c.roles();
        assert_eq!(roles["b"], ColumnRole::Id);
        assert_eq!(roles["y"], ColumnRole::Target);
        assert!(!roles.contains_key("a"), "a type alone sets no role");
        // The short form still parses, as a type.
        let c = check("columns = { a = \"categorical\" }\ndrop = [\"z\"]\n").unwrap();
        assert_eq!(
            c.raw().data.columns["a"],
            ColumnSpec::Type(kiln_data::ColumnType::Categorical)
        );
        assert_eq!(c.roles()["z"], ColumnRole::Ignore);
    }

    #[test]
    fn defaults_leave_the_config_json_as_before() {
        // The config hash of existing pipelines must not change with the new keys.
        let json = serde_json::to_value(check("").unwrap().raw()).unwrap();
        let data: Vec<&String> = json["data"].as_object().unwrap().keys().collect();
        assert_eq!(
            data,
            [
                "columns",
                "delimiter",
                "drop",
                "infer_rows",
                "missing",
                "source",
                "target",
                "task"
            ]
        );
        assert!(json.get("validate").is_none());
        let split: Vec<&String> = json["split"].as_object().unwrap().keys().collect();
        assert_eq!(split, ["method", "test", "valid"]);
    }

    #[test]
    fn split_columns_come_from_the_split_or_a_role() {
        let named = check("[split]\nmethod = \"group\"\ngroup = \"g\"\n").unwrap();
        assert_eq!(named.split_column(), Some("g"));
        assert_eq!(named.roles()["g"], ColumnRole::Group);
        let by_role =
            check("columns = { t = { role = \"time\" } }\n[split]\nmethod = \"time\"\n").unwrap();
        assert_eq!(by_role.split_column(), Some("t"));
        assert_eq!(check("").unwrap().split_column(), None);
    }

    #[test]
    fn schema_toml_pastes_into_a_pipeline() {
        use kiln_data::{ColumnSchema, ColumnType, Schema};
        let mut id = ColumnSchema::new("row id", ColumnType::Text);
        id.role = ColumnRole::Id;
        let schema = Schema {
            columns: vec![
                ColumnSchema::new("y", ColumnType::Categorical),
                ColumnSchema::new("x", ColumnType::Numeric),
                ColumnSchema::new("when", ColumnType::Datetime),
                id,
            ],
        };
        let c = check(&schema.to_toml()).unwrap();
        let columns = &c.raw().data.columns;
        for column in &schema.columns {
            assert_eq!(
                columns[&column.name].column_type(),
                Some(column.column_type),
                "{}",
                column.name
            );
        }
        assert_eq!(c.roles()["row id"], ColumnRole::Id);
    }

    #[test]
    fn each_rule_is_enforced() {
        let cases = [
            ("[split]\nvalid = 0.5\ntest = 0.5\n", "split"),
            ("[train]\nlr = 0.0\n", "train.lr"),
            ("[train]\nepochs = 0\n", "train.epochs"),
            ("[train]\nbatch_size = 0\n", "train.batch_size"),
            ("[train]\ndevices = 0\n", "train.devices"),
            ("[train]\nweight_decay = -1.0\n", "train.weight_decay"),
            (
                "[train]\nearly_stopping = { patience = 0 }\n",
                "train.early_stopping.patience",
            ),
            ("[model]\nhidden = [0]\n", "model"),
            ("[model]\nkind = \"linear\"\nhidden = [3]\n", "model"),
            ("[split]\ngroup = \"g\"\n", "split.group"),
            ("[split]\nmethod = \"random\"\ntime = \"t\"\n", "split.time"),
            ("[split]\nmethod = \"group\"\n", "split.group"),
            (
                "[split]\nmethod = \"time\"\ntime = \"t\"\ngroup = \"g\"\n",
                "split.group",
            ),
            ("[split]\nmethod = \"time\"\ntime = \"y\"\n", "split"),
            (
                "columns = { t = { role = \"time\" } }\n[split]\nmethod = \"time\"\ntime = \"u\"\n",
                "split.time",
            ),
            ("columns = { x = { role = \"target\" } }\n", "data.columns"),
            ("columns = { y = { role = \"id\" } }\n", "data.columns"),
            (
                "columns = { x = { role = \"id\" } }\ndrop = [\"x\"]\n",
                "data.drop",
            ),
            ("quote = \"é\"\n", "data.quote"),
            ("comment = \"→\"\n", "data.comment"),
            (
                "target_above = 1.0\ntask = \"regression\"\n",
                "data.target_above",
            ),
            ("[model]\nkind = \"cnn\"\n", "model"),
            ("[model]\nconv = [8]\n", "model"),
            ("[model]\nembedding_dim = 0\n", "model.embedding_dim"),
            ("[evaluate]\nmetrics = [\"acuracy\"]\n", "evaluate.metrics"),
        ];
        for (extra, key) in cases {
            match check(extra) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{extra}"),
                other => panic!("{extra}: expected an invalid `{key}`, got {other:?}"),
            }
        }
        let drop_target = format!("{}drop = [\"y\"]\n", MINIMAL.trim_end().to_owned() + "\n");
        let err = PipelineConfig::parse(&drop_target, Path::new("p.toml"))
            .unwrap()
            .check(Path::new("p.toml"));
        assert!(matches!(
            err,
            Err(ConfigError::Invalid {
                key: "data.drop",
                ..
            })
        ));
        let bad_name = MINIMAL.replace("\"p\"", "\"../x\"");
        let err = PipelineConfig::parse(&bad_name, Path::new("p.toml"))
            .unwrap()
            .check(Path::new("p.toml"));
        assert!(matches!(
            err,
            Err(ConfigError::Invalid {
                key: "pipeline.name",
                ..
            })
        ));
    }
}
