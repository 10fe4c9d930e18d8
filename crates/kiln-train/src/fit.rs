use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::nn::loss::{
    BinaryCrossEntropyLoss, BinaryCrossEntropyLossConfig, CrossEntropyLoss, CrossEntropyLossConfig,
    HuberLossConfig, MseLoss, Reduction,
};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use kiln_core::Matrix;
use kiln_models::Net;
use kiln_transform::Targets;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::collective::Collective;
use crate::metrics;
use crate::optim::{AnyOptimizer, GradClip, OptimizerKind, Progress, Schedule};
use crate::{Error, Result};

mod nodes;
mod parallel;
mod stream;

pub use stream::{BatchSource, ShuffleBuffer, StreamedBatch, fit_stream};

/// What is learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Task {
    /// Softmax over `classes` outputs.
    Classification {
        /// Number of classes.
        classes: usize,
    },
    /// One standardized output.
    Regression,
}

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Softmax cross-entropy (classification).
    CrossEntropy,
    /// Binary cross-entropy on one logit, the positive class's (two classes).
    BinaryCrossEntropy,
    /// Mean squared error (regression).
    Mse,
    /// Mean absolute error (regression).
    Mae,
    /// Huber loss with `huber_delta` (regression).
    Huber,
}

impl LossKind {
    /// Whether the loss fits the task.
    pub fn fits(self, task: Task) -> bool {
        matches!(
            (self, task),
            (LossKind::CrossEntropy, Task::Classification { .. })
                | (
                    LossKind::BinaryCrossEntropy,
                    Task::Classification { classes: 2 }
                )
                | (
                    LossKind::Mse | LossKind::Mae | LossKind::Huber,
                    Task::Regression
                )
        )
    }

    /// Model outputs the loss needs for `task`: one logit per class, one for binary
    /// cross-entropy, one value for regression.
    pub fn outputs(self, task: Task) -> usize {
        match (self, task) {
            (LossKind::CrossEntropy, Task::Classification { classes }) => classes,
            _ => 1,
        }
    }

    /// The default loss of a task.
    pub fn default_for(task: Task) -> Self {
        match task {
            Task::Classification { .. } => LossKind::CrossEntropy,
            Task::Regression => LossKind::Mse,
        }
    }
}

/// Whether a smaller or a larger value of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Smaller is better (losses, errors).
    Min,
    /// Larger is better (accuracy, F1, R², AUC).
    Max,
}

impl Mode {
    /// The natural direction of a metric, by name.
    pub fn of(metric: &str) -> Self {
        let lower_is_better = ["loss", "rmse", "mae", "mape", "ece", "error"];
        if lower_is_better.iter().any(|m| metric.contains(m)) {
            Mode::Min
        } else {
            Mode::Max
        }
    }

    fn better(self, candidate: f64, best: f64) -> bool {
        match self {
            Mode::Min => candidate < best,
            Mode::Max => candidate > best,
        }
    }
}

/// Model selection and early stopping: the monitored metric, its direction and patience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    /// `valid_loss`, or `valid_<metric>` for any validation metric (e.g. `valid_accuracy`).
    #[serde(default = "default_monitor")]
    pub metric: String,
    /// Direction; inferred from the name when absent.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Stop after this many epochs without improvement (never when absent).
    #[serde(default)]
    pub patience: Option<usize>,
}

fn default_monitor() -> String {
    "valid_loss".into()
}

impl Default for Monitor {
    fn default() -> Self {
        Self {
            metric: default_monitor(),
            mode: None,
            patience: None,
        }
    }
}

/// Settings of the loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per forward/backward pass on each device: an optimizer step takes
    /// `batch_size × devices` rows, as PyTorch's DDP does.
    pub batch_size: usize,
    /// Data-parallel replicas, one per device (see [`kiln_core::backend::replica_devices`]):
    /// each computes the gradient of its shard of the batch, and the row-weighted sum equals
    /// the gradient of the whole batch.
    pub devices: usize,
    /// Base learning rate.
    pub lr: f64,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// Weight decay (L2 for SGD/Adam, decoupled for AdamW).
    pub weight_decay: f64,
    /// Gradient clipping.
    pub grad_clip: Option<GradClip>,
    /// Batches whose gradients are summed (loss scaled by 1/k) before one optimizer step.
    pub grad_accumulation: usize,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// The loss (the task's default when absent).
    pub loss: Option<LossKind>,
    /// Cross-entropy label smoothing in [0, 1).
    pub label_smoothing: f64,
    /// Cross-entropy weight per class.
    pub class_weights: Option<Vec<f32>>,
    /// Huber's delta (in standardized target units).
    pub huber_delta: f64,
    /// Model selection and early stopping.
    pub monitor: Monitor,
    /// Write a checkpoint every this many epochs (and at the end) when a checkpoint dir is given.
    pub checkpoint_every: usize,
    /// Seed of the data-order and dropout streams.
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 64,
            devices: 1,
            lr: 1e-3,
            optimizer: OptimizerKind::Adam,
            weight_decay: 0.0,
            grad_clip: None,
            grad_accumulation: 1,
            schedule: Schedule::Constant,
            loss: None,
            label_smoothing: 0.0,
            class_weights: None,
            huber_delta: 1.0,
            monitor: Monitor::default(),
            checkpoint_every: 1,
            seed: 42,
        }
    }
}

/// One epoch's record (a line of metrics.jsonl). Deterministic: no timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Loss on the validation rows (the training loss when there are none).
    pub valid_loss: f64,
    /// Further validation metrics.
    pub valid_metrics: BTreeMap<String, f64>,
}

impl EpochStats {
    /// The value of a monitored metric (`valid_loss`, `train_loss` or `valid_<metric>`).
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "valid_loss" => Some(self.valid_loss),
            "train_loss" => Some(self.train_loss),
            _ => name
                .strip_prefix("valid_")
                .and_then(|m| self.valid_metrics.get(m).copied()),
        }
    }
}

/// Live progress within an epoch, for progress bars.
#[derive(Debug, Clone, Copy)]
pub struct StepProgress {
    /// 1-based epoch.
    pub epoch: usize,
    /// Batches done in this epoch.
    pub step: usize,
    /// Batches per epoch.
    pub steps_per_epoch: usize,
}

/// How training ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Outcome {
    /// Every epoch ran.
    Completed,
    /// The monitored metric stopped improving.
    EarlyStopped,
    /// A stop was requested (SIGINT); a checkpoint holds the exact position.
    Interrupted,
    /// The loss became NaN or infinite; the best weights so far are kept.
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        step: usize,
    },
}

/// The outcome of [`fit`].
#[derive(Debug)]
pub struct Trained<B: AutodiffBackend> {
    /// The weights of the best epoch, ready for inference.
    pub model: Net<B::InnerBackend>,
    /// The epoch those weights come from.
    pub best_epoch: usize,
    /// Every epoch completed.
    pub history: Vec<EpochStats>,
    /// How it ended.
    pub outcome: Outcome,
    /// Seconds spent in training steps (validation excluded).
    pub train_seconds: f64,
    /// Training rows processed per second of training steps.
    pub samples_per_second: f64,
    /// Seconds this node spent in the gradient sums of a multi-node run (0 otherwise).
    pub exchange_seconds: f64,
    /// Gradient sums of a multi-node run: one per step.
    pub exchanges: usize,
}

/// Callbacks and controls of a [`fit`] call.
pub struct Hooks<'a> {
    /// After every epoch.
    pub on_epoch: Box<dyn FnMut(&EpochStats) + 'a>,
    /// After every batch.
    pub on_step: Box<dyn FnMut(StepProgress) + 'a>,
    /// When set, the loop finishes the current step, checkpoints and returns `Interrupted`.
    pub stop: Option<&'a AtomicBool>,
    /// Where to write checkpoints (none when absent).
    pub checkpoints: Option<&'a Path>,
    /// A checkpoint to continue from.
    pub resume: Option<&'a Path>,
    /// The other nodes of a multi-node run; the training rows given are this node's shard.
    pub nodes: Option<&'a dyn Collective>,
}

impl Default for Hooks<'_> {
    fn default() -> Self {
        Self {
            on_epoch: Box::new(|_| {}),
            on_step: Box::new(|_| {}),
            stop: None,
            checkpoints: None,
            resume: None,
            nodes: None,
        }
    }
}

/// Targets on the device.
#[derive(Debug, Clone)]
pub enum DeviceTargets<B: Backend> {
    /// Class indices, `[rows]`.
    Classes(Tensor<B, 1, Int>),
    /// Standardized values, `[rows, 1]`.
    Values(Tensor<B, 2>),
}

impl<B: Backend> DeviceTargets<B> {
    /// `y` on `device`, after [`check_targets`].
    fn upload(y: Targets, device: &B::Device) -> Self {
        match y {
            Targets::Classes(c) => {
                let n = c.len();
                DeviceTargets::Classes(Tensor::from_data(TensorData::new(c, [n]), device))
            }
            Targets::Values(v) => {
                let n = v.len();
                DeviceTargets::Values(Tensor::from_data(TensorData::new(v, [n, 1]), device))
            }
        }
    }

    /// The targets of the rows in `index`.
    #[must_use]
    pub fn select(&self, index: Tensor<B, 1, Int>) -> Self {
        match self {
            DeviceTargets::Classes(t) => DeviceTargets::Classes(t.clone().select(0, index)),
            DeviceTargets::Values(t) => DeviceTargets::Values(t.clone().select(0, index)),
        }
    }

    fn to_device(&self, device: &B::Device) -> Self {
        match self {
            DeviceTargets::Classes(t) => DeviceTargets::Classes(t.clone().to_device(device)),
            DeviceTargets::Values(t) => DeviceTargets::Values(t.clone().to_device(device)),
        }
    }
}

/// Classes for classification, values for regression.
///
/// # Errors
/// [`Error::TargetMismatch`] otherwise.
fn check_targets(task: Task, y: &Targets) -> Result<()> {
    match (task, y) {
        (Task::Classification { .. }, Targets::Classes(_))
        | (Task::Regression, Targets::Values(_)) => Ok(()),
        _ => Err(Error::TargetMismatch { task }),
    }
}

/// Host rows `x` and their targets `y` as tensors on `device`: a host-memory device takes
/// the buffers over without a copy.
fn upload<B: Backend>(
    x: Matrix,
    y: Targets,
    device: &B::Device,
) -> (Tensor<B, 2>, DeviceTargets<B>) {
    (
        Tensor::from_data(TensorData::new(x.data, [x.rows, x.cols]), device),
        DeviceTargets::upload(y, device),
    )
}

/// The training rows that each step's batch is cut from.
#[derive(Clone)]
enum TrainRows<'a, B: Backend> {
    /// Read where they are, for a device that computes in host memory (ndarray, flex): a batch
    /// copies its rows into a buffer that its tensor takes over. Uploading the whole matrix
    /// first would copy every row once more per `fit` (for 4,096 MNIST rows, 12.8 MB and
    /// about half of a one-epoch run's time outside its steps), and flex's `select` gathers
    /// more slowly than copying the rows.
    Host { x: &'a Matrix, y: &'a Targets },
    /// Uploaded once to a GPU, where `select` gathers each batch.
    Device {
        x: Tensor<B, 2>,
        targets: DeviceTargets<B>,
    },
}

impl<'a, B: Backend> TrainRows<'a, B> {
    /// The rows `x` and their targets `y` (checked against `task`) for `device`.
    fn new(x: &'a Matrix, y: &'a Targets, task: Task, device: &B::Device) -> Result<Self> {
        check_targets(task, y)?;
        Ok(if kiln_core::backend::in_host_memory(device) {
            TrainRows::Host { x, y }
        } else {
            let (x, targets) = upload(x.clone(), y.clone(), device);
            TrainRows::Device { x, targets }
        })
    }

    /// The rows numbered `rows` and their targets, on `device` (the one these rows are for).
    fn batch(&self, rows: &[usize], device: &B::Device) -> (Tensor<B, 2>, DeviceTargets<B>) {
        match self {
            TrainRows::Host { x, y } => upload(x.take_rows(rows), y.take(rows), device),
            TrainRows::Device { x, targets } => {
                let index: Vec<i64> = rows
                    .iter()
                    .map(|&r| i64::try_from(r).expect("row numbers fit i64"))
                    .collect();
                let index =
                    Tensor::<B, 1, Int>::from_data(TensorData::new(index, [rows.len()]), device);
                (x.clone().select(0, index.clone()), targets.select(index))
            }
        }
    }

    /// The rows numbered `rows` and their targets, copied out of host rows; `None` for device
    /// rows, which `select` gathers in the device's queue. The copy runs beside a step (in
    /// `fit`) and yields to rayon between blocks of rows: a kernel of the step waiting for a
    /// worker gets this one within microseconds, not after the whole batch.
    fn host_batch(&self, rows: &[usize]) -> Option<(Matrix, Targets)> {
        /// About 100 KB of 784 f32 features.
        const BLOCK_ROWS: usize = 32;
        let TrainRows::Host { x, y } = self else {
            return None;
        };
        let mut data = Vec::with_capacity(rows.len() * x.cols);
        for block in rows.chunks(BLOCK_ROWS) {
            for &row in block {
                data.extend_from_slice(x.row(row));
            }
            rayon::yield_now();
        }
        Some((Matrix::new(data, rows.len(), x.cols), y.take(rows)))
    }

    /// These rows for a replica on `device`.
    fn to_device(&self, device: &B::Device) -> Self {
        match self {
            TrainRows::Host { .. } => self.clone(),
            TrainRows::Device { x, targets } => TrainRows::Device {
                x: x.clone().to_device(device),
                targets: targets.to_device(device),
            },
        }
    }
}

/// The loss of `settings` for a task, with burn's loss modules on one device.
#[derive(Debug, Clone)]
struct Objective<B: Backend> {
    kind: LossKind,
    cross_entropy: Option<CrossEntropyLoss<B>>,
    binary_cross_entropy: Option<BinaryCrossEntropyLoss<B>>,
    huber_delta: f32,
}

impl<B: Backend> Objective<B> {
    fn new(settings: &TrainSettings, task: Task, device: &B::Device) -> Result<Self> {
        let kind = settings.loss.unwrap_or_else(|| LossKind::default_for(task));
        if !kind.fits(task) {
            return Err(Error::LossMismatch { loss: kind, task });
        }
        if let (Some(weights), Task::Classification { classes }) = (&settings.class_weights, task)
            && weights.len() != classes
        {
            return Err(Error::ClassWeights {
                classes,
                found: weights.len(),
            });
        }
        #[allow(clippy::cast_possible_truncation)] // burn's smoothing is f32.
        let smoothing = (settings.label_smoothing > 0.0).then_some(settings.label_smoothing as f32);
        let cross_entropy = (kind == LossKind::CrossEntropy).then(|| {
            CrossEntropyLossConfig::new()
                .with_weights(settings.class_weights.clone())
                .with_smoothing(smoothing)
                .init(device)
        });
        let binary_cross_entropy = (kind == LossKind::BinaryCrossEntropy).then(|| {
            BinaryCrossEntropyLossConfig::new()
                .with_weights(settings.class_weights.clone())
                .with_smoothing(smoothing)
                .with_logits(true)
                .init(device)
        });
        #[allow(clippy::cast_possible_truncation)] // Huber's delta is an f32 like the outputs.
        let huber_delta = settings.huber_delta as f32;
        Ok(Self {
            kind,
            cross_entropy,
            binary_cross_entropy,
            huber_delta,
        })
    }

    /// The batch's loss.
    fn loss(&self, output: Tensor<B, 2>, targets: DeviceTargets<B>) -> Tensor<B, 1> {
        match (targets, &self.cross_entropy, &self.binary_cross_entropy) {
            (DeviceTargets::Classes(t), Some(ce), _) => ce.forward(output, t),
            (DeviceTargets::Classes(t), _, Some(bce)) => bce.forward(output.flatten::<1>(0, 1), t),
            (DeviceTargets::Values(t), ..) => match self.kind {
                LossKind::Mae => (output - t).abs().mean().reshape([1]),
                LossKind::Huber => HuberLossConfig::new(self.huber_delta).init().forward(
                    output,
                    t,
                    Reduction::Mean,
                ),
                _ => MseLoss::new().forward(output, t, Reduction::Mean),
            },
            (DeviceTargets::Classes(_), None, None) => {
                unreachable!("Objective::new checked the loss fits the task")
            }
        }
    }

    /// Each row's weight in a batch's loss: weighted cross-entropy divides by the batch's sum
    /// of class weights; every other loss is a plain mean over rows.
    fn row_weights(&self, settings: &TrainSettings, y: &Targets) -> Option<Vec<f64>> {
        match (&settings.class_weights, &self.cross_entropy, y) {
            (Some(weights), Some(_), Targets::Classes(labels)) => Some(
                labels
                    .iter()
                    .map(|&label| {
                        usize::try_from(label)
                            .ok()
                            .and_then(|l| weights.get(l))
                            .map_or(0.0, |&w| f64::from(w))
                    })
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// One training step: forward, loss, backward, optimizer update (after `grad_accumulation`
/// batches). The unit the hot-loop benchmark measures.
pub struct Stepper<B: AutodiffBackend> {
    optim: AnyOptimizer<B, Net<B>>,
    objective: Objective<B>,
    accumulation: usize,
    accumulator: GradientsAccumulator<Net<B>>,
    pending: usize,
}

impl<B: AutodiffBackend> Stepper<B> {
    /// The optimizer and loss of `settings` for `task`.
    ///
    /// # Errors
    /// [`Error::LossMismatch`] when the loss does not fit the task; [`Error::ClassWeights`]
    /// when there is not one class weight per class.
    pub fn new(settings: &TrainSettings, task: Task, device: &B::Device) -> Result<Self> {
        Ok(Self {
            optim: AnyOptimizer::new(
                settings.optimizer,
                settings.weight_decay,
                settings.grad_clip,
            ),
            objective: Objective::new(settings, task, device)?,
            accumulation: settings.grad_accumulation.max(1),
            accumulator: GradientsAccumulator::new(),
            pending: 0,
        })
    }

    /// Runs one batch at learning rate `lr`; returns the (maybe updated) model and the batch's
    /// detached mean loss.
    ///
    /// # Shapes
    /// - x: `[batch, inputs]`; targets: `[batch]` classes or `[batch, 1]` values
    pub fn step(
        &mut self,
        model: Net<B>,
        x: Tensor<B, 2>,
        targets: DeviceTargets<B>,
        lr: f64,
    ) -> (Net<B>, Tensor<B, 1>) {
        let loss = self.objective.loss(model.forward(x), targets);
        let detached = loss.clone().detach();
        if self.accumulation == 1 {
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            return (self.optim.step(lr, model, grads), detached);
        }
        #[allow(clippy::cast_precision_loss)] // Accumulation counts are tiny.
        let scaled = loss.div_scalar(self.accumulation as f64);
        self.accumulator.accumulate(
            &model,
            GradientsParams::from_grads(scaled.backward(), &model),
        );
        self.pending += 1;
        if self.pending == self.accumulation {
            (self.flush(model, lr), detached)
        } else {
            (model, detached)
        }
    }

    /// Adds one batch's gradients, computed in parts (one per replica) from losses already
    /// divided by the accumulation count; steps once `grad_accumulation` batches are in.
    fn add_batch(&mut self, model: Net<B>, parts: Vec<GradientsParams>, lr: f64) -> Net<B> {
        // In replica order, so the sum rounds the same way on every run.
        for grads in parts {
            self.accumulator.accumulate(&model, grads);
        }
        self.pending += 1;
        if self.pending == self.accumulation {
            self.flush(model, lr)
        } else {
            model
        }
    }

    /// Applies gradients still accumulated (at the end of an epoch).
    pub fn flush(&mut self, model: Net<B>, lr: f64) -> Net<B> {
        if self.pending == 0 {
            return model;
        }
        self.pending = 0;
        let grads = self.accumulator.grads();
        self.optim.step(lr, model, grads)
    }
}

/// Everything a checkpoint holds besides the weights and optimizer state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LoopState {
    /// 0-based epoch in progress.
    epoch: usize,
    /// Batches of that epoch already done.
    step_in_epoch: usize,
    /// Optimizer-visible steps so far (for schedules).
    global_step: usize,
    /// Rows per step (`batch_size × devices`) the epoch was cut into; 0 in checkpoints from
    /// before kiln recorded it.
    #[serde(default)]
    batch_rows: usize,
    /// Losses of the epoch's batches so far.
    epoch_losses: Vec<f32>,
    history: Vec<EpochStats>,
    best: Option<(f64, usize)>,
    plateau: Plateau,
    train_seconds: f64,
    samples: usize,
}

impl LoopState {
    /// The next step's learning rate and its seed for the backend RNG (dropout draws from it:
    /// seeding it per step makes any resume point exact).
    fn next_step(&self, settings: &TrainSettings, steps_per_epoch: usize) -> (f64, u64) {
        let lr = settings.schedule.lr(
            settings.lr,
            Progress {
                epoch: self.epoch,
                step: self.global_step,
                steps_per_epoch,
                epochs: settings.epochs,
            },
            self.plateau.decays,
        );
        let seed = settings.seed ^ (self.global_step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (lr, seed)
    }

    /// Counts a step taken and reports it to `hooks`.
    fn count_step(&mut self, hooks: &mut Hooks<'_>, epoch: usize, steps_per_epoch: usize) {
        self.step_in_epoch += 1;
        self.global_step += 1;
        (hooks.on_step)(StepProgress {
            epoch,
            step: self.step_in_epoch,
            steps_per_epoch,
        });
    }

    /// Ends an epoch's steps (all of them, or up to a stop): one device sync reads every
    /// step's loss at once; the time since `started` counts as training.
    fn end_steps<B: Backend>(&mut self, losses: Vec<Tensor<B, 1>>, started: Instant) {
        self.epoch_losses.extend(read_losses(losses));
        self.train_seconds += started.elapsed().as_secs_f64();
    }

    /// The state before the first step.
    fn new(batch_rows: usize) -> Self {
        Self {
            epoch: 0,
            step_in_epoch: 0,
            global_step: 0,
            batch_rows,
            epoch_losses: Vec::new(),
            history: Vec::new(),
            best: None,
            plateau: Plateau::default(),
            train_seconds: 0.0,
            samples: 0,
        }
    }
}

/// Reduce-on-plateau bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
struct Plateau {
    decays: u32,
    best: Option<f64>,
    since: usize,
}

const MODEL_FILE: &str = "model";
const BEST_FILE: &str = "best";
const OPTIM_FILE: &str = "optimizer";
const STATE_FILE: &str = "state.mpk";

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::new()
}

/// Trains `model` on minibatches in a seeded order, validates after every epoch, keeps the
/// weights of the best epoch by `settings.monitor`, stops early on its patience, writes
/// checkpoints and resumes from one exactly (same final weights as an uninterrupted run).
///
/// With `settings.devices` above 1, each step trains data-parallel replicas on the devices
/// [`kiln_core::backend::replica_devices`] gives (see the `parallel` module): every replica
/// takes `batch_size` rows of the step's batch, their gradients are summed weighted by rows,
/// and one optimizer step updates the weights, which equals one device at `batch_size ×
/// devices` rows up to rounding. The returned model is on `device`.
///
/// # Errors
/// [`Error::Diverged`] when the loss is non-finite before any epoch completed (later, the
/// outcome is [`Outcome::Diverged`] with the best weights so far); [`Error::EmptyTrainingSet`];
/// [`Error::TargetMismatch`]; [`Error::LossMismatch`]; [`Error::ClassWeights`];
/// [`Error::UnknownMetric`]; [`Error::Checkpoint`]; [`Error::Devices`] when the backend has
/// fewer devices than `settings.devices` (or it is 0).
///
/// # Panics
/// Only on a backend that returns loss data of another length than asked (a burn bug).
#[allow(clippy::too_many_arguments)]
pub fn fit<B: AutodiffBackend>(
    mut model: Net<B>,
    train: (&Matrix, &Targets),
    valid: (&Matrix, &Targets),
    task: Task,
    settings: &TrainSettings,
    device: &B::Device,
    mut hooks: Hooks<'_>,
) -> Result<Trained<B>> {
    let (x, y) = train;
    if x.rows == 0 {
        return Err(Error::EmptyTrainingSet);
    }
    let devices = kiln_core::backend::replica_devices::<B>(device, settings.devices)?;
    // The first replica holds the weights and the optimizer state, and validates.
    let main = devices[0].clone();
    if main != *device {
        model = model.fork(&main);
    }
    let rows = TrainRows::new(x, y, task, &main)?;
    let mut stepper = Stepper::new(settings, task, &main)?;
    let expected = stepper.objective.kind.outputs(task);
    if model.outputs() != expected {
        return Err(Error::OutputWidth {
            expected,
            found: model.outputs(),
        });
    }
    let replicas = if devices.len() > 1 {
        Some(parallel::Replicas::new(&devices, &rows, y, settings, task)?)
    } else {
        None
    };
    let batch_rows = settings.batch_size.max(1) * devices.len();
    let mut nodes = match hooks.nodes.filter(|c| c.nodes() > 1) {
        Some(_) if hooks.resume.is_some() => {
            return Err(Error::Nodes {
                message: "resuming is not supported across nodes".into(),
            });
        }
        Some(c) => Some(nodes::Nodes::new(
            c,
            &stepper,
            &model,
            (x.rows, y),
            settings,
            task,
        )?),
        None => None,
    };
    let steps_per_epoch = nodes
        .as_ref()
        .map_or(x.rows.div_ceil(batch_rows), |n| n.steps_per_epoch);

    let mut state = LoopState::new(batch_rows);
    let mut best_model: Option<Net<B::InnerBackend>> = None;
    if let Some(dir) = hooks.resume {
        let checkpoint_error = |message: String| Error::Checkpoint {
            path: dir.to_path_buf(),
            message,
        };
        let bytes =
            fs_err::read(dir.join(STATE_FILE)).map_err(|e| checkpoint_error(e.to_string()))?;
        state = rmp_serde::from_slice(&bytes).map_err(|e| checkpoint_error(e.to_string()))?;
        if state.step_in_epoch > 0 && state.batch_rows != 0 && state.batch_rows != batch_rows {
            return Err(checkpoint_error(format!(
                "written mid-epoch at {} rows per step, but batch_size × devices is {batch_rows} \
                 now; resume with the batch_size and devices it was written with",
                state.batch_rows
            )));
        }
        state.batch_rows = batch_rows;
        model = model
            .load_file(dir.join(MODEL_FILE), &recorder(), &main)
            .map_err(|e| checkpoint_error(e.to_string()))?;
        if state.best.is_some() {
            best_model = Some(
                model
                    .valid()
                    .load_file(dir.join(BEST_FILE), &recorder(), &main)
                    .map_err(|e| checkpoint_error(e.to_string()))?,
            );
        }
        stepper.optim = stepper
            .optim
            .load(&dir.join(OPTIM_FILE), &main)
            .map_err(checkpoint_error)?;
    }

    let mut outcome = Outcome::Completed;
    while state.epoch < settings.epochs {
        let epoch = state.epoch + 1;
        let mut order: Vec<usize> = (0..x.rows).collect();
        let stream = match &nodes {
            Some(n) => format!("shuffle/epoch-{epoch}/node-{}", n.rank()),
            None => format!("shuffle/epoch-{epoch}"),
        };
        order.shuffle(&mut kiln_core::rng::stream(settings.seed, &stream));
        let started = Instant::now();
        let mut losses = Vec::with_capacity(steps_per_epoch);
        let mut lr = settings.lr;
        let chunks: Vec<&[usize]> = (state.step_in_epoch..steps_per_epoch)
            .map(|step| {
                // Empty once a node's shard is used up: it still takes part in every sum.
                let start = (step * batch_rows).min(order.len());
                &order[start..(start + batch_rows).min(order.len())]
            })
            .collect();
        let mut interrupted = false;
        // Host rows of the next batch, copied while the step before it ran.
        let mut ahead: Option<(Matrix, Targets)> = None;
        for (index, (step, &chunk)) in (state.step_in_epoch..).zip(&chunks).enumerate() {
            let seed;
            (lr, seed) = state.next_step(settings, steps_per_epoch);
            let (updated, loss) = if let Some(nodes) = &mut nodes {
                nodes.step(
                    &mut stepper,
                    model,
                    (&rows, &main),
                    chunk,
                    lr,
                    seed,
                    (epoch, step + 1),
                )?
            } else if let Some(replicas) = &replicas {
                replicas.step(&mut stepper, model, chunk, lr, seed)
            } else {
                B::seed(&main, seed);
                let (batch, targets) = match ahead.take() {
                    Some((x, y)) => upload(x, y, &main),
                    None => rows.batch(chunk, &main),
                };
                // The next batch's copy waits in rayon's queue beside the step: a worker the
                // step's kernels leave idle takes it, else this thread copies it after the
                // step. A thread of its own would take a core from the step's kernels.
                let following = chunks.get(index + 1);
                let ((updated, loss), copied) = rayon::join(
                    || stepper.step(model, batch, targets, lr),
                    || following.and_then(|next| rows.host_batch(next)),
                );
                ahead = copied;
                (updated, loss)
            };
            model = updated;
            losses.push(loss);
            state.count_step(&mut hooks, epoch, steps_per_epoch);
            // Stop only between optimizer updates: accumulated gradients are not checkpointed.
            let stop = hooks.stop.is_some_and(|s| s.load(Ordering::SeqCst));
            if stop && stepper.pending == 0 && state.step_in_epoch < steps_per_epoch {
                interrupted = true;
                break;
            }
        }
        if interrupted {
            state.end_steps(losses, started);
            outcome = Outcome::Interrupted;
            break;
        }
        model = stepper.flush(model, lr);
        state.end_steps(losses, started);
        if let Some(end) = end_epoch(
            &mut state,
            EpochEnd {
                epoch,
                lr,
                rows: nodes.as_ref().map_or(x.rows, |n| n.total_rows),
                batch_rows,
                train_loss: nodes.as_mut().map(nodes::Nodes::take_epoch_loss),
            },
            &model,
            &mut best_model,
            &stepper,
            (valid, task, &main),
            settings,
            &mut hooks,
        )? {
            outcome = end;
            break;
        }
    }
    if outcome == Outcome::Interrupted
        && state.step_in_epoch > 0
        && let Some(dir) = hooks.checkpoints
    {
        write_checkpoint(dir, &state, &model, best_model.as_ref(), &stepper)?;
    }
    let best_epoch = state.best.map_or(0, |b| b.1);
    let model = best_model.unwrap_or_else(|| model.valid());
    if let Some(nodes) = &nodes {
        nodes.agree_on_weights(&model)?;
    }
    let model = model.to_device(device);
    #[allow(clippy::cast_precision_loss)] // Sample counts are far below 2^52.
    let samples_per_second = state.samples as f64 / state.train_seconds.max(f64::MIN_POSITIVE);
    Ok(Trained {
        model,
        best_epoch,
        history: state.history,
        outcome,
        train_seconds: state.train_seconds,
        samples_per_second,
        exchange_seconds: nodes.as_ref().map_or(0.0, |n| n.exchange_seconds),
        exchanges: nodes.as_ref().map_or(0, |n| n.exchanges),
    })
}

/// Where an epoch's steps ended: what [`end_epoch`] needs besides the loop's state.
#[derive(Clone, Copy)]
struct EpochEnd {
    /// 1-based epoch.
    epoch: usize,
    /// Learning rate at the epoch's last step.
    lr: f64,
    /// Training rows the epoch stepped through.
    rows: usize,
    /// Rows per step.
    batch_rows: usize,
    /// The mean training loss, where the loop summed it exactly (across nodes) rather than
    /// from full steps of `batch_rows`.
    train_loss: Option<f64>,
}

/// The bookkeeping after an epoch's steps, shared by [`fit`] and [`fit_stream`]: divergence,
/// validation, model selection, reduce-on-plateau, early stopping and checkpoints. Returns
/// how training ends when it ends here.
#[allow(clippy::too_many_arguments)]
fn end_epoch<B: AutodiffBackend>(
    state: &mut LoopState,
    end: EpochEnd,
    model: &Net<B>,
    best_model: &mut Option<Net<B::InnerBackend>>,
    stepper: &Stepper<B>,
    valid: ((&Matrix, &Targets), Task, &B::Device),
    settings: &TrainSettings,
    hooks: &mut Hooks<'_>,
) -> Result<Option<Outcome>> {
    let EpochEnd { epoch, lr, .. } = end;
    let mode = settings
        .monitor
        .mode
        .unwrap_or_else(|| Mode::of(&settings.monitor.metric));
    state.samples += end.rows;
    if let Some(step) = state.epoch_losses.iter().position(|l| !l.is_finite()) {
        let loss = state.epoch_losses[step];
        if best_model.is_none() {
            return Err(Error::Diverged {
                epoch,
                step: step + 1,
                loss,
            });
        }
        return Ok(Some(Outcome::Diverged {
            epoch,
            step: step + 1,
        }));
    }
    let train_loss = end
        .train_loss
        .unwrap_or_else(|| weighted_mean_loss(&state.epoch_losses, end.rows, end.batch_rows));
    let inference = model.valid();
    let ((x, y), task, device) = valid;
    let (valid_loss, valid_metrics) = if x.rows == 0 {
        (train_loss, BTreeMap::new())
    } else {
        evaluate_outputs(&predict(&inference, x, task, device), y, task)
    };
    let stats = EpochStats {
        epoch,
        lr,
        train_loss,
        valid_loss,
        valid_metrics,
    };
    let monitored = stats
        .metric(&settings.monitor.metric)
        .ok_or_else(|| Error::UnknownMetric {
            metric: settings.monitor.metric.clone(),
            available: available(&stats),
        })?;
    (hooks.on_epoch)(&stats);
    state.history.push(stats);
    if state
        .best
        .is_none_or(|(value, _)| mode.better(monitored, value))
    {
        state.best = Some((monitored, epoch));
        *best_model = Some(inference);
    }
    if let Schedule::Plateau { patience, .. } = settings.schedule {
        let plateau = &mut state.plateau;
        if plateau.best.is_none_or(|b| valid_loss < b) {
            plateau.best = Some(valid_loss);
            plateau.since = 0;
        } else {
            plateau.since += 1;
            if plateau.since >= patience.max(1) {
                plateau.decays += 1;
                plateau.since = 0;
            }
        }
    }
    state.epoch = epoch;
    state.step_in_epoch = 0;
    state.epoch_losses.clear();
    let best_epoch = state.best.map_or(epoch, |b| b.1);
    let stop_early = settings
        .monitor
        .patience
        .is_some_and(|p| epoch - best_epoch >= p);
    let interrupted = hooks.stop.is_some_and(|s| s.load(Ordering::SeqCst));
    let due = epoch.is_multiple_of(settings.checkpoint_every.max(1)) || epoch == settings.epochs;
    if let Some(dir) = hooks.checkpoints
        && (due || stop_early || interrupted)
    {
        write_checkpoint(dir, state, model, best_model.as_ref(), stepper)?;
    }
    if stop_early {
        return Ok(Some(Outcome::EarlyStopped));
    }
    if interrupted {
        return Ok(Some(Outcome::Interrupted));
    }
    Ok(None)
}

fn available(stats: &EpochStats) -> String {
    ["valid_loss".to_owned(), "train_loss".to_owned()]
        .into_iter()
        .chain(stats.valid_metrics.keys().map(|k| format!("valid_{k}")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_losses<B: Backend>(losses: Vec<Tensor<B, 1>>) -> Vec<f32> {
    if losses.is_empty() {
        return Vec::new();
    }
    Tensor::cat(losses, 0)
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 after convert")
}

/// Checkpoint `epoch-<k>[-step-<s>]/` under `dir`: weights, best weights, optimizer state and
/// loop state, written to a staging name and renamed.
fn write_checkpoint<B: AutodiffBackend>(
    dir: &Path,
    state: &LoopState,
    model: &Net<B>,
    best: Option<&Net<B::InnerBackend>>,
    stepper: &Stepper<B>,
) -> Result<PathBuf> {
    let name = if state.step_in_epoch == 0 {
        format!("epoch-{:04}", state.epoch)
    } else {
        format!("epoch-{:04}-step-{:06}", state.epoch, state.step_in_epoch)
    };
    let target = dir.join(name);
    let error = |message: String| Error::Checkpoint {
        path: target.clone(),
        message,
    };
    let staged = kiln_core::fsx::StagedDir::new(&target).map_err(|e| error(e.to_string()))?;
    model
        .clone()
        .save_file(staged.path().join(MODEL_FILE), &recorder())
        .map_err(|e| error(e.to_string()))?;
    if let Some(best) = best {
        best.clone()
            .save_file(staged.path().join(BEST_FILE), &recorder())
            .map_err(|e| error(e.to_string()))?;
    }
    stepper
        .optim
        .save(&staged.path().join(OPTIM_FILE))
        .map_err(error)?;
    // MessagePack, not JSON: f64 values must round-trip exactly for a bit-exact resume.
    let bytes = rmp_serde::to_vec_named(state).map_err(|e| error(e.to_string()))?;
    fs_err::write(staged.path().join(STATE_FILE), bytes).map_err(|e| error(e.to_string()))?;
    staged.commit().map_err(|e| error(e.to_string()))
}

/// The most advanced checkpoint under `dir` (names sort by epoch, then step).
///
/// # Errors
/// IO errors reading `dir`; [`Error::Checkpoint`] when it holds none.
pub fn latest_checkpoint(dir: &Path) -> Result<PathBuf> {
    let mut names: Vec<String> = fs_err::read_dir(dir)
        .map_err(|e| Error::Checkpoint {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?
        .filter_map(|entry| {
            entry
                .ok()
                .map(|e| e.file_name().to_string_lossy().into_owned())
        })
        .filter(|name| name.starts_with("epoch-"))
        .collect();
    names.sort();
    names
        .pop()
        .map(|name| dir.join(name))
        .ok_or_else(|| Error::Checkpoint {
            path: dir.to_path_buf(),
            message: "no checkpoint in this directory".into(),
        })
}

/// Each step's loss is a batch mean; weight by batch size (the last batch may be short).
#[allow(clippy::cast_precision_loss)] // Row counts are far below 2^52.
fn weighted_mean_loss(losses: &[f32], rows: usize, batch_size: usize) -> f64 {
    let total: f64 = losses
        .iter()
        .enumerate()
        .map(|(i, &l)| f64::from(l) * (batch_size.min(rows - i * batch_size)) as f64)
        .sum();
    total / rows as f64
}

fn evaluate_outputs(out: &Matrix, y: &Targets, task: Task) -> (f64, BTreeMap<String, f64>) {
    match (task, y) {
        (Task::Classification { .. }, Targets::Classes(labels)) => {
            let mut m = metrics::classification(out, labels);
            // Undefined metrics (e.g. ROC-AUC on a one-class split) are NaN: leave them out, so
            // every recorded value is a number that round-trips through JSON.
            m.retain(|_, v| v.is_finite());
            (m["log_loss"], m)
        }
        (_, Targets::Values(values)) => {
            let truth: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
            let predicted: Vec<f64> = out.data.iter().map(|&v| f64::from(v)).collect();
            let m = metrics::regression(&predicted, &truth);
            (
                m["rmse"].powi(2),
                BTreeMap::from([("r2".to_owned(), m["r2"])]),
            )
        }
        (_, Targets::Classes(_)) => unreachable!("fit checked that targets match the task"),
    }
}

/// Model outputs for every row of `x`: class probabilities (`rows × classes`; a one-logit
/// binary model gives `[1 - p, p]`), or the standardized regression value (`rows × 1`). Runs
/// in chunks to bound device memory.
///
/// # Panics
/// When `x.cols` differs from the model's inputs (a caller bug).
pub fn predict<B: Backend>(model: &Net<B>, x: &Matrix, task: Task, device: &B::Device) -> Matrix {
    const CHUNK_ROWS: usize = 8192;
    let outputs = match task {
        Task::Classification { classes } => classes,
        Task::Regression => 1,
    };
    let mut data = Vec::with_capacity(x.rows * outputs);
    for start in (0..x.rows).step_by(CHUNK_ROWS) {
        let rows = CHUNK_ROWS.min(x.rows - start);
        let slice = x.data[start * x.cols..(start + rows) * x.cols].to_vec();
        let out = model.forward(Tensor::from_data(
            TensorData::new(slice, [rows, x.cols]),
            device,
        ));
        let out = match task {
            Task::Classification { .. } if out.dims()[1] == 1 => {
                let positive = sigmoid(out);
                Tensor::cat(vec![positive.clone().neg().add_scalar(1.0), positive], 1)
            }
            Task::Classification { .. } => softmax(out, 1),
            Task::Regression => out,
        };
        data.extend(
            out.into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("f32 after convert"),
        );
    }
    Matrix::new(data, x.rows, outputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::ndarray::NdArrayDevice;
    use burn::backend::{Autodiff, NdArray};
    use kiln_models::{ModelKind, ModelSpec};

    type B = Autodiff<NdArray>;

    fn dev() -> NdArrayDevice {
        NdArrayDevice::default()
    }

    /// Three separable 2-D blobs, 96 rows.
    fn blobs() -> (Matrix, Targets) {
        let mut rng = kiln_core::rng::stream(0, "test-data");
        let mut data = Vec::new();
        let mut labels = Vec::new();
        for i in 0..96_i64 {
            let class = i % 3;
            #[allow(clippy::cast_precision_loss)]
            let center = class as f32 * 3.0;
            data.push(center + rand::RngExt::random_range(&mut rng, -1.0..1.0_f32));
            data.push(-center + rand::RngExt::random_range(&mut rng, -1.0..1.0_f32));
            labels.push(class);
        }
        (Matrix::new(data, 96, 2), Targets::Classes(labels))
    }

    fn spec(dropout: f64) -> ModelSpec {
        ModelSpec {
            kind: ModelKind::Mlp,
            inputs: 2,
            hidden: vec![8],
            outputs: 3,
            dropout,
            ..ModelSpec::default()
        }
    }

    const TASK: Task = Task::Classification { classes: 3 };

    /// `fit` reseeds the backend's process-wide RNG every step (for exact dropout on resume);
    /// tests that train run one at a time so they do not reseed each other's streams.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn run(settings: &TrainSettings, dropout: f64, hooks: Hooks<'_>) -> Trained<B> {
        let (x, y) = blobs();
        fit(
            spec(dropout).init::<B>(7, &dev()),
            (&x, &y),
            (&x, &y),
            TASK,
            settings,
            &dev(),
            hooks,
        )
        .unwrap()
    }

    fn outputs(t: &Trained<B>) -> Matrix {
        predict(&t.model, &blobs().0, TASK, &dev())
    }

    /// A batch copied from host rows is the batch `select` gathers from uploaded rows, for
    /// classes and for regression values, with rows repeated and out of order.
    #[test]
    fn host_batches_are_the_batches_select_gathers_on_the_device() {
        let (x, classes) = blobs();
        let Targets::Classes(labels) = &classes else {
            unreachable!("blobs are classes")
        };
        #[allow(clippy::cast_precision_loss)]
        let values = Targets::Values(
            labels
                .iter()
                .map(|&l| (l as f32).mul_add(0.5, -1.0))
                .collect(),
        );
        let rows = [95, 0, 17, 17, 42, 3];
        for (task, y) in [(TASK, &classes), (Task::Regression, &values)] {
            let host = TrainRows::<'_, B>::new(&x, y, task, &dev()).unwrap();
            assert!(
                matches!(host, TrainRows::Host { .. }),
                "ndarray reads host rows"
            );
            let device: TrainRows<'_, B> = TrainRows::Device {
                x: Tensor::from_data(TensorData::new(x.data.clone(), [x.rows, x.cols]), &dev()),
                targets: DeviceTargets::upload(y.clone(), &dev()),
            };
            let (host_x, host_y) = host.batch(&rows, &dev());
            let (device_x, device_y) = device.batch(&rows, &dev());
            assert_eq!(host_x.dims(), [rows.len(), x.cols]);
            assert_eq!(host_x.into_data(), device_x.into_data());
            match (host_y, device_y) {
                (DeviceTargets::Classes(h), DeviceTargets::Classes(d)) => {
                    assert_eq!(h.into_data(), d.into_data());
                }
                (DeviceTargets::Values(h), DeviceTargets::Values(d)) => {
                    assert_eq!(h.dims(), [rows.len(), 1]);
                    assert_eq!(h.into_data(), d.into_data());
                }
                _ => panic!("targets changed kind"),
            }
        }
        let mismatch = TrainRows::<'_, B>::new(&x, &values, TASK, &dev());
        assert!(matches!(mismatch, Err(Error::TargetMismatch { .. })));
    }

    #[test]
    fn learns_separable_blobs_and_is_deterministic() {
        let _serial = serial();
        let settings = TrainSettings {
            epochs: 30,
            batch_size: 16,
            lr: 0.05,
            ..Default::default()
        };
        let (a, b) = (
            run(&settings, 0.0, Hooks::default()),
            run(&settings, 0.0, Hooks::default()),
        );
        assert!(a.history.last().unwrap().valid_metrics["accuracy"] > 0.95);
        assert_eq!(a.history, b.history);
        assert_eq!(outputs(&a), outputs(&b));
        for row in 0..96 {
            let sum: f32 = outputs(&a).row(row).iter().sum();
            assert!((sum - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn binary_cross_entropy_learns_with_one_logit() {
        let _serial = serial();
        // Classes 0 and 2 of the blobs, relabelled 0 and 1.
        let (x, Targets::Classes(labels)) = blobs() else {
            unreachable!()
        };
        let keep: Vec<usize> = (0..96).filter(|&r| labels[r] != 1).collect();
        let data = keep.iter().flat_map(|&r| x.row(r).to_vec()).collect();
        let x = Matrix::new(data, keep.len(), 2);
        let y = Targets::Classes(keep.iter().map(|&r| labels[r] / 2).collect());
        let task = Task::Classification { classes: 2 };
        let settings = TrainSettings {
            epochs: 20,
            batch_size: 16,
            lr: 0.05,
            loss: Some(LossKind::BinaryCrossEntropy),
            class_weights: Some(vec![1.0, 2.0]),
            ..Default::default()
        };
        let two_outputs = ModelSpec {
            outputs: 2,
            ..spec(0.0)
        };
        let err = fit(
            two_outputs.init::<B>(7, &dev()),
            (&x, &y),
            (&x, &y),
            task,
            &settings,
            &dev(),
            Hooks::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::OutputWidth {
                    expected: 1,
                    found: 2
                }
            ),
            "{err}"
        );
        let one_logit = ModelSpec {
            outputs: 1,
            ..spec(0.0)
        };
        let t = fit(
            one_logit.init::<B>(7, &dev()),
            (&x, &y),
            (&x, &y),
            task,
            &settings,
            &dev(),
            Hooks::default(),
        )
        .unwrap();
        assert!(t.history.last().unwrap().valid_metrics["accuracy"] > 0.95);
        let probs = predict(&t.model, &x, task, &dev());
        assert_eq!(probs.cols, 2);
        for row in 0..x.rows {
            assert!((probs.row(row).iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn every_optimizer_and_schedule_learns() {
        let _serial = serial();
        let cases = [
            (
                OptimizerKind::Sgd {
                    momentum: 0.0,
                    nesterov: false,
                },
                Schedule::Constant,
                0.5,
            ),
            (
                OptimizerKind::Sgd {
                    momentum: 0.9,
                    nesterov: true,
                },
                Schedule::Step {
                    every: 10,
                    gamma: 0.5,
                },
                0.1,
            ),
            (
                OptimizerKind::Adam,
                Schedule::Cosine {
                    warmup_epochs: 2,
                    min_lr: 0.0,
                },
                0.05,
            ),
            (
                OptimizerKind::AdamW,
                Schedule::Exponential { gamma: 0.97 },
                0.05,
            ),
            (
                OptimizerKind::Adam,
                Schedule::Plateau {
                    factor: 0.5,
                    patience: 2,
                },
                0.05,
            ),
        ];
        for (optimizer, schedule, lr) in cases {
            let settings = TrainSettings {
                epochs: 30,
                batch_size: 16,
                lr,
                optimizer,
                schedule,
                weight_decay: 1e-4,
                grad_clip: Some(GradClip::Norm(5.0)),
                ..Default::default()
            };
            let t = run(&settings, 0.0, Hooks::default());
            let accuracy = t.history[t.best_epoch - 1].valid_metrics["accuracy"];
            assert!(
                accuracy > 0.95,
                "{optimizer:?} {schedule:?}: accuracy {accuracy}"
            );
        }
    }

    #[test]
    fn gradient_accumulation_equals_one_large_batch_under_sgd() {
        let _serial = serial();
        let sgd = OptimizerKind::Sgd {
            momentum: 0.0,
            nesterov: false,
        };
        let large = TrainSettings {
            epochs: 3,
            batch_size: 32,
            lr: 0.3,
            optimizer: sgd,
            ..Default::default()
        };
        let accumulated = TrainSettings {
            batch_size: 16,
            grad_accumulation: 2,
            ..large.clone()
        };
        let (a, b) = (
            outputs(&run(&large, 0.0, Hooks::default())),
            outputs(&run(&accumulated, 0.0, Hooks::default())),
        );
        let worst = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-5, "max difference {worst}");
    }

    /// Every float parameter's values (batch-norm running statistics included), in module
    /// order.
    fn values<B2: Backend>(net: &Net<B2>) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl<B: Backend> burn::module::ModuleVisitor<B> for Collect {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
                self.0
                    .extend(param.val().into_data().convert::<f32>().iter::<f32>());
            }
        }
        let mut collect = Collect(Vec::new());
        net.visit(&mut collect);
        collect.0
    }

    fn parameters(t: &Trained<B>) -> Vec<f32> {
        values(&t.model)
    }

    /// Trains with checkpoints in `dir`; returns the outcome and the last epoch's weights.
    fn run_to_the_end(settings: &TrainSettings, dir: &Path) -> (Trained<B>, Vec<f32>) {
        let t = run(
            settings,
            0.0,
            Hooks {
                checkpoints: Some(dir),
                ..Hooks::default()
            },
        );
        let last = dir
            .join(format!("epoch-{:04}", settings.epochs))
            .join(MODEL_FILE);
        let net = spec(0.0)
            .init::<NdArray>(7, &dev())
            .load_file(last, &recorder(), &dev())
            .unwrap();
        (t, values(&net))
    }

    fn max_difference(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max)
    }

    /// Data parallelism is a gradient computed in parts: 2 (or 3) replicas at `b` rows each
    /// train the same weights as one device at `2b` (`3b`), within 1e-5, through uneven last
    /// steps (96 rows at 36 per step leave 24: shards of 18 and 6; at 12 × 3, shards of 12, 12
    /// and none), class-weighted cross-entropy and gradient accumulation.
    #[test]
    fn replicas_train_the_weights_of_one_device_at_the_whole_batch() {
        let _serial = serial();
        let dir = std::env::temp_dir().join(format!("kiln-replicas-{}", std::process::id()));
        let _ = fs_err::remove_dir_all(&dir);
        let sgd = OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: false,
        };
        let base = TrainSettings {
            epochs: 6,
            lr: 0.05,
            ..Default::default()
        };
        let cases = [
            (sgd, 18, 2, 1, None),
            (OptimizerKind::Adam, 18, 2, 1, None),
            (OptimizerKind::Adam, 12, 3, 1, Some(vec![1.0, 2.0, 0.5])),
            (sgd, 8, 2, 2, Some(vec![1.0, 2.0, 0.5])),
        ];
        for (i, (optimizer, batch_size, devices, grad_accumulation, class_weights)) in
            cases.into_iter().enumerate()
        {
            let replicated = TrainSettings {
                batch_size,
                devices,
                optimizer,
                grad_accumulation,
                class_weights,
                ..base.clone()
            };
            let one = TrainSettings {
                batch_size: batch_size * devices,
                devices: 1,
                ..replicated.clone()
            };
            let (a, a_last) = run_to_the_end(&replicated, &dir.join(format!("{i}-replicas")));
            let (b, b_last) = run_to_the_end(&one, &dir.join(format!("{i}-one")));
            let case = format!("{optimizer:?}, {devices} x {batch_size}");
            let worst = max_difference(&a_last, &b_last);
            assert!(worst <= 1e-5, "{case}: max |Δ| {worst}");
            assert_eq!(a.best_epoch, b.best_epoch, "{case}");
            let worst = max_difference(&parameters(&a), &parameters(&b));
            assert!(
                worst <= 1e-5,
                "{case}: best epoch's weights, max |Δ| {worst}"
            );
            assert_eq!(a.history.len(), b.history.len());
            for (x, y) in a.history.iter().zip(&b.history) {
                assert!((x.train_loss - y.train_loss).abs() < 1e-5, "{case}");
                assert!((x.valid_loss - y.valid_loss).abs() < 1e-5, "{case}");
            }
            // Control: one device at the per-replica batch trains other weights.
            let small = TrainSettings {
                devices: 1,
                ..replicated.clone()
            };
            let (_, small_last) = run_to_the_end(&small, &dir.join(format!("{i}-small")));
            let apart = max_difference(&a_last, &small_last);
            assert!(apart > 1e-3, "{case}: {apart}");
        }
        fs_err::remove_dir_all(&dir).unwrap();
    }

    /// The rows of each step and the number of steps: one non-finite target makes the step
    /// that holds its row diverge, and that step is the same for 2 replicas at 16 rows as for
    /// one device at 32 (and not for one device at 16, for most rows).
    #[test]
    fn replicas_step_through_the_rows_of_one_device_at_the_whole_batch() {
        let _serial = serial();
        let (x, _) = blobs();
        let s = ModelSpec {
            outputs: 1,
            ..spec(0.0)
        };
        let train = |devices: usize, batch_size: usize, poisoned: Option<usize>| {
            let mut values = vec![0.5_f32; 96];
            if let Some(row) = poisoned {
                values[row] = f32::INFINITY;
            }
            let y = Targets::Values(values);
            let settings = TrainSettings {
                epochs: 3,
                batch_size,
                devices,
                ..Default::default()
            };
            let mut steps = Vec::new();
            let mut on_step = |p: StepProgress| steps.push((p.epoch, p.step, p.steps_per_epoch));
            let result = fit(
                s.init::<B>(7, &dev()),
                (&x, &y),
                (&x, &y),
                Task::Regression,
                &settings,
                &dev(),
                Hooks {
                    on_step: Box::new(&mut on_step),
                    ..Hooks::default()
                },
            );
            let diverged = match result {
                Err(Error::Diverged { epoch, step, .. }) => Some((epoch, step)),
                Err(e) => panic!("{e}"),
                Ok(_) => None,
            };
            (diverged, steps)
        };
        let (none, steps) = train(2, 16, None);
        assert_eq!(none, None);
        assert_eq!(steps.len(), 3 * 3, "96 rows at 32 a step, 3 epochs");
        assert_eq!(steps, train(1, 32, None).1);
        let mut told_apart = 0;
        for row in (0..96).step_by(7) {
            let (parallel, _) = train(2, 16, Some(row));
            assert!(parallel.is_some(), "row {row}");
            assert_eq!(parallel, train(1, 32, Some(row)).0, "row {row}");
            told_apart += usize::from(parallel != train(1, 16, Some(row)).0);
        }
        assert!(told_apart >= 7, "{told_apart} of 14 rows");
    }

    #[test]
    fn replicas_are_deterministic_with_dropout_and_batch_norm() {
        let _serial = serial();
        let (x, y) = blobs();
        let settings = TrainSettings {
            epochs: 20,
            batch_size: 8,
            devices: 2,
            lr: 0.05,
            ..Default::default()
        };
        let norm = ModelSpec {
            norm: kiln_models::Norm::Batch,
            ..spec(0.2)
        };
        let train = || {
            fit(
                norm.init::<B>(7, &dev()),
                (&x, &y),
                (&x, &y),
                TASK,
                &settings,
                &dev(),
                Hooks::default(),
            )
            .unwrap()
        };
        let (a, b) = (train(), train());
        assert!(a.history[a.best_epoch - 1].valid_metrics["accuracy"] > 0.95);
        assert_eq!(a.history, b.history);
        assert!(parameters(&a) == parameters(&b));
        let err = fit(
            norm.init::<B>(7, &dev()),
            (&x, &y),
            (&x, &y),
            TASK,
            &TrainSettings {
                devices: 0,
                ..settings
            },
            &dev(),
            Hooks::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot train on 0 devices: CPU devices here: 1"
        );
    }

    #[test]
    fn replicas_resume_exactly_and_only_with_the_same_step_rows() {
        let _serial = serial();
        let dir = std::env::temp_dir().join(format!("kiln-resume-replicas-{}", std::process::id()));
        let _ = fs_err::remove_dir_all(&dir);
        let settings = TrainSettings {
            epochs: 3,
            batch_size: 8,
            devices: 2,
            lr: 0.02,
            ..Default::default()
        };
        let full = run(&settings, 0.2, Hooks::default());
        let stop = AtomicBool::new(false);
        let mut on_step = |p: StepProgress| {
            if p.epoch == 2 && p.step == 3 {
                stop.store(true, Ordering::SeqCst);
            }
        };
        let partial = run(
            &settings,
            0.2,
            Hooks {
                on_step: Box::new(&mut on_step),
                stop: Some(&stop),
                checkpoints: Some(&dir),
                ..Hooks::default()
            },
        );
        assert_eq!(partial.outcome, Outcome::Interrupted);
        let checkpoint = latest_checkpoint(&dir).unwrap();
        let resumed = run(
            &settings,
            0.2,
            Hooks {
                resume: Some(&checkpoint),
                ..Hooks::default()
            },
        );
        assert_eq!(full.history, resumed.history);
        assert!(parameters(&full) == parameters(&resumed));
        let (x, y) = blobs();
        let err = fit(
            spec(0.2).init::<B>(7, &dev()),
            (&x, &y),
            (&x, &y),
            TASK,
            &TrainSettings {
                devices: 1,
                ..settings
            },
            &dev(),
            Hooks {
                resume: Some(&checkpoint),
                ..Hooks::default()
            },
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("at 16 rows per step, but batch_size × devices is 8"),
            "{err}"
        );
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn class_weights_need_one_weight_per_class() {
        let settings = TrainSettings {
            class_weights: Some(vec![1.0, 2.0]),
            ..Default::default()
        };
        let err = Stepper::<B>::new(&settings, TASK, &dev()).err().unwrap();
        assert_eq!(
            err.to_string(),
            "2 class weights for 3 classes: give one weight per class"
        );
    }

    #[test]
    fn regression_losses_train() {
        let _serial = serial();
        let (x, _) = blobs();
        let y = Targets::Values(
            x.data
                .chunks(2)
                .map(|r| (-0.5_f32).mul_add(r[1], r[0]))
                .collect(),
        );
        for loss in [LossKind::Mse, LossKind::Mae, LossKind::Huber] {
            let settings = TrainSettings {
                epochs: 40,
                batch_size: 16,
                lr: 0.02,
                loss: Some(loss),
                ..Default::default()
            };
            let s = ModelSpec {
                kind: ModelKind::Linear,
                inputs: 2,
                hidden: vec![],
                outputs: 1,
                ..ModelSpec::default()
            };
            let t = fit(
                s.init::<B>(1, &dev()),
                (&x, &y),
                (&x, &y),
                Task::Regression,
                &settings,
                &dev(),
                Hooks::default(),
            )
            .unwrap();
            let r2 = t.history[t.best_epoch - 1].valid_metrics["r2"];
            assert!(r2 > 0.99, "{loss:?}: r2 {r2}");
        }
        let wrong = TrainSettings {
            loss: Some(LossKind::CrossEntropy),
            ..Default::default()
        };
        let s = ModelSpec {
            kind: ModelKind::Linear,
            inputs: 2,
            hidden: vec![],
            outputs: 1,
            ..ModelSpec::default()
        };
        let err = fit(
            s.init::<B>(1, &dev()),
            (&x, &y),
            (&x, &y),
            Task::Regression,
            &wrong,
            &dev(),
            Hooks::default(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::LossMismatch { .. }), "{err}");
    }

    #[test]
    fn divergence_names_epoch_and_step() {
        let _serial = serial();
        let (x, _) = blobs();
        let y = Targets::Values(vec![f32::INFINITY; 96]);
        let s = ModelSpec {
            outputs: 1,
            ..spec(0.0)
        };
        let settings = TrainSettings {
            epochs: 2,
            batch_size: 32,
            ..Default::default()
        };
        let err = fit(
            s.init::<B>(7, &dev()),
            (&x, &y),
            (&x, &y),
            Task::Regression,
            &settings,
            &dev(),
            Hooks::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Diverged {
                    epoch: 1,
                    step: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn early_stopping_restores_the_best_epoch() {
        let _serial = serial();
        // A learning rate that grows 3x per epoch makes the validation loss rise after a while.
        let settings = TrainSettings {
            epochs: 60,
            batch_size: 32,
            lr: 0.01,
            schedule: Schedule::Exponential { gamma: 3.0 },
            monitor: Monitor {
                patience: Some(3),
                ..Monitor::default()
            },
            ..Default::default()
        };
        let t = run(&settings, 0.0, Hooks::default());
        assert_eq!(t.outcome, Outcome::EarlyStopped);
        assert_eq!(t.history.len(), t.best_epoch + 3);
        let last = t.history.last().unwrap().valid_loss;
        let best = t.history[t.best_epoch - 1].valid_loss;
        assert!(last > best, "validation loss rose: {best} -> {last}");
        // The returned weights are the best epoch's, not the last epoch's.
        let (x, y) = blobs();
        let Targets::Classes(labels) = y else {
            unreachable!()
        };
        let restored =
            metrics::classification(&predict(&t.model, &x, TASK, &dev()), &labels)["log_loss"];
        assert!(
            (restored - best).abs() < 1e-9,
            "restored {restored} vs best {best}"
        );
        // Monitoring a max metric works too, and an unknown metric is an error.
        let by_accuracy = TrainSettings {
            monitor: Monitor {
                metric: "valid_accuracy".into(),
                mode: None,
                patience: Some(3),
            },
            ..settings.clone()
        };
        assert!(run(&by_accuracy, 0.0, Hooks::default()).best_epoch >= 1);
        let (x, y) = blobs();
        let unknown = TrainSettings {
            monitor: Monitor {
                metric: "valid_nope".into(),
                ..Monitor::default()
            },
            ..settings
        };
        let err = fit(
            spec(0.0).init::<B>(7, &dev()),
            (&x, &y),
            (&x, &y),
            TASK,
            &unknown,
            &dev(),
            Hooks::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("valid_accuracy"), "{err}");
    }

    #[test]
    fn resume_from_any_checkpoint_is_bit_exact() {
        let _serial = serial();
        let dir = std::env::temp_dir().join(format!("kiln-resume-{}", std::process::id()));
        let _ = fs_err::remove_dir_all(&dir);
        let settings = TrainSettings {
            epochs: 5,
            batch_size: 16,
            lr: 0.02,
            ..Default::default()
        };
        let full = run(
            &settings,
            0.2,
            Hooks {
                checkpoints: Some(&dir.join("full")),
                ..Hooks::default()
            },
        );

        // Resume from an epoch boundary.
        let from_epoch = run(
            &settings,
            0.2,
            Hooks {
                resume: Some(&dir.join("full/epoch-0002")),
                ..Hooks::default()
            },
        );
        assert_eq!(outputs(&full), outputs(&from_epoch));
        assert_eq!(full.history, from_epoch.history);

        // Interrupt mid-epoch (as SIGINT does), then resume from that checkpoint.
        let stop = AtomicBool::new(false);
        let mut on_step = |p: StepProgress| {
            if p.epoch == 3 && p.step == 2 {
                stop.store(true, Ordering::SeqCst);
            }
        };
        let partial = run(
            &settings,
            0.2,
            Hooks {
                on_step: Box::new(&mut on_step),
                stop: Some(&stop),
                checkpoints: Some(&dir.join("cut")),
                ..Hooks::default()
            },
        );
        assert_eq!(partial.outcome, Outcome::Interrupted);
        let checkpoint = latest_checkpoint(&dir.join("cut")).unwrap();
        assert!(
            checkpoint.ends_with("epoch-0002-step-000002"),
            "{}",
            checkpoint.display()
        );
        let resumed = run(
            &settings,
            0.2,
            Hooks {
                resume: Some(&checkpoint),
                ..Hooks::default()
            },
        );
        assert_eq!(resumed.outcome, Outcome::Completed);
        assert_eq!(outputs(&full), outputs(&resumed));
        assert_eq!(full.history, resumed.history);
        // Byte-identical records.
        let save = |t: &Trained<B>, name: &str| {
            let path = dir.join(name);
            t.model.clone().save_file(&path, &recorder()).unwrap();
            fs_err::read(path.with_extension("mpk")).unwrap()
        };
        assert!(save(&full, "a") == save(&resumed, "b"));
        fs_err::remove_dir_all(&dir).unwrap();
    }

    /// flex runs its products on rayon's threads: a layer of 256 × 512 × 256 (above gemm's
    /// threshold for threads) must still train to the same bits on one thread, on two, and
    /// twice on two, or `kiln reproduce` could not promise exact reruns on flex.
    #[test]
    fn flex_trains_to_the_same_bits_on_one_and_two_threads() {
        use burn::backend::Flex;
        use burn::backend::flex::FlexDevice;
        type F = Autodiff<Flex>;

        let _serial = serial();
        let (rows, inputs) = (512, 512);
        let mut rng = kiln_core::rng::stream(0, "test-data");
        let data = (0..rows * inputs)
            .map(|_| rand::RngExt::random_range(&mut rng, -1.0..1.0_f32))
            .collect();
        let x = Matrix::new(data, rows, inputs);
        let y = Targets::Classes((0..10).cycle().take(rows).collect());
        let no_valid = (
            Matrix::new(Vec::new(), 0, inputs),
            Targets::Classes(Vec::new()),
        );
        let spec = ModelSpec {
            kind: ModelKind::Mlp,
            inputs,
            hidden: vec![256],
            outputs: 10,
            ..ModelSpec::default()
        };
        let settings = TrainSettings {
            epochs: 2,
            batch_size: 256,
            ..Default::default()
        };
        let train_on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let trained = fit(
                    spec.init::<F>(3, &FlexDevice),
                    (&x, &y),
                    (&no_valid.0, &no_valid.1),
                    Task::Classification { classes: 10 },
                    &settings,
                    &FlexDevice,
                    Hooks::default(),
                )
                .unwrap();
                kiln_models::parameter_hash(&trained.model)
            })
        };
        let one = train_on(1);
        assert_eq!(train_on(2), one);
        assert_eq!(train_on(2), one);
        // Training moved the weights, so equal hashes are not those of the initial model.
        assert_ne!(
            kiln_models::parameter_hash(&spec.init::<F>(3, &FlexDevice)),
            one
        );
    }
}
