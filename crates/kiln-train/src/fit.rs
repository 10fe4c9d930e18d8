use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig, MseLoss, Reduction};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use kiln_core::Matrix;
use kiln_models::TabularNet;
use kiln_transform::Targets;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::metrics;
use crate::{Error, Result};

/// What is learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Task {
    /// Softmax over `classes` outputs, cross-entropy loss.
    Classification {
        /// Number of classes.
        classes: usize,
    },
    /// One standardized output, mean squared error.
    Regression,
}

/// Settings of the loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per optimizer step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// L2 penalty (0 for none).
    pub weight_decay: f64,
    /// Stop after this many epochs without a better validation loss.
    pub patience: Option<usize>,
    /// Seed of the data-order stream.
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 0.0,
            patience: None,
            seed: 42,
        }
    }
}

/// One epoch's record (a line of metrics.jsonl). Deterministic: no timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Loss on the validation rows (the training loss when there are none).
    pub valid_loss: f64,
    /// Further validation metrics (accuracy for classification).
    pub valid_metrics: BTreeMap<String, f64>,
}

/// The outcome of [`fit`].
#[derive(Debug)]
pub struct Trained<B: AutodiffBackend> {
    /// The weights of the best epoch, ready for inference.
    pub model: TabularNet<B::InnerBackend>,
    /// The epoch those weights come from.
    pub best_epoch: usize,
    /// Every epoch run.
    pub history: Vec<EpochStats>,
    /// Seconds spent in training steps (validation excluded).
    pub train_seconds: f64,
    /// Training rows processed per second of training steps.
    pub samples_per_second: f64,
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
    /// The targets of the rows in `index`.
    #[must_use]
    pub fn select(&self, index: Tensor<B, 1, Int>) -> Self {
        match self {
            DeviceTargets::Classes(t) => DeviceTargets::Classes(t.clone().select(0, index)),
            DeviceTargets::Values(t) => DeviceTargets::Values(t.clone().select(0, index)),
        }
    }
}

/// One optimizer step: forward, loss, backward, Adam update. The unit the hot-loop
/// benchmark measures.
pub struct Stepper<B: AutodiffBackend> {
    optim: OptimizerAdaptor<Adam, TabularNet<B>, B>,
    cross_entropy: CrossEntropyLoss<B>,
    lr: f64,
}

impl<B: AutodiffBackend> Stepper<B> {
    /// Adam with the settings' learning rate and weight decay.
    #[must_use]
    pub fn new(settings: &TrainSettings, device: &B::Device) -> Self {
        #[allow(clippy::cast_possible_truncation)] // burn's penalty is f32.
        let decay = (settings.weight_decay > 0.0)
            .then(|| WeightDecayConfig::new(settings.weight_decay as f32));
        Self {
            optim: AdamConfig::new().with_weight_decay(decay).init(),
            cross_entropy: CrossEntropyLossConfig::new().init(device),
            lr: settings.lr,
        }
    }

    /// Updates `model` on one batch; returns it with the batch's (detached) mean loss.
    ///
    /// # Shapes
    /// - x: `[batch, inputs]`; targets: `[batch]` classes or `[batch, 1]` values
    pub fn step(
        &mut self,
        model: TabularNet<B>,
        x: Tensor<B, 2>,
        targets: DeviceTargets<B>,
    ) -> (TabularNet<B>, Tensor<B, 1>) {
        let output = model.forward(x);
        let loss = match targets {
            DeviceTargets::Classes(t) => self.cross_entropy.forward(output, t),
            DeviceTargets::Values(t) => MseLoss::new().forward(output, t, Reduction::Mean),
        };
        let detached = loss.clone().detach();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        (self.optim.step(self.lr, model, grads), detached)
    }
}

/// Trains `model` with Adam on minibatches in a seeded order, validates after every epoch
/// and keeps the weights of the epoch with the lowest validation loss.
///
/// # Errors
/// [`Error::Diverged`] naming the epoch and step of the first non-finite loss;
/// [`Error::EmptyTrainingSet`]; [`Error::TargetMismatch`].
///
/// # Panics
/// Only on a backend that returns loss data of another length than asked (a burn bug).
pub fn fit<B: AutodiffBackend>(
    mut model: TabularNet<B>,
    train: (&Matrix, &Targets),
    valid: (&Matrix, &Targets),
    task: Task,
    settings: &TrainSettings,
    device: &B::Device,
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<Trained<B>> {
    let (x, y) = train;
    if x.rows == 0 {
        return Err(Error::EmptyTrainingSet);
    }
    let x_all =
        Tensor::<B, 2>::from_data(TensorData::new(x.data.clone(), [x.rows, x.cols]), device);
    let targets = match (task, y) {
        (Task::Classification { .. }, Targets::Classes(c)) => DeviceTargets::Classes(
            Tensor::from_data(TensorData::new(c.clone(), [c.len()]), device),
        ),
        (Task::Regression, Targets::Values(v)) => DeviceTargets::Values(Tensor::from_data(
            TensorData::new(v.clone(), [v.len(), 1]),
            device,
        )),
        _ => return Err(Error::TargetMismatch { task }),
    };
    let mut stepper = Stepper::new(settings, device);

    let batch_size = settings.batch_size.max(1);
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, TabularNet<B::InnerBackend>)> = None;
    let mut train_seconds = 0.0;
    let mut samples = 0_usize;
    for epoch in 1..=settings.epochs {
        let mut order: Vec<i64> = (0..i64::try_from(x.rows).expect("row count fits i64")).collect();
        order.shuffle(&mut kiln_core::rng::stream(
            settings.seed,
            &format!("shuffle/epoch-{epoch}"),
        ));
        let started = Instant::now();
        let mut step_losses = Vec::with_capacity(order.len().div_ceil(batch_size));
        for chunk in order.chunks(batch_size) {
            let index = Tensor::<B, 1, Int>::from_data(
                TensorData::new(chunk.to_vec(), [chunk.len()]),
                device,
            );
            let batch_targets = targets.select(index.clone());
            let (updated, loss) =
                stepper.step(model, x_all.clone().select(0, index), batch_targets);
            model = updated;
            step_losses.push(loss);
        }
        // One device sync per epoch: read every step's loss at once.
        let losses = Tensor::cat(step_losses, 0)
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 after convert");
        train_seconds += started.elapsed().as_secs_f64();
        samples += x.rows;
        if let Some(step) = losses.iter().position(|l| !l.is_finite()) {
            return Err(Error::Diverged {
                epoch,
                step: step + 1,
                loss: losses[step],
            });
        }
        let train_loss = weighted_mean_loss(&losses, x.rows, batch_size);

        let inference = model.valid();
        let (valid_loss, valid_metrics) = if valid.0.rows == 0 {
            (train_loss, BTreeMap::new())
        } else {
            let out = predict(&inference, valid.0, task, device);
            evaluate_outputs(&out, valid.1, task)
        };
        let stats = EpochStats {
            epoch,
            train_loss,
            valid_loss,
            valid_metrics,
        };
        on_epoch(&stats);
        history.push(stats);
        if best.as_ref().is_none_or(|(loss, _, _)| valid_loss < *loss) {
            best = Some((valid_loss, epoch, inference));
        }
        let best_epoch = best.as_ref().map_or(epoch, |b| b.1);
        if settings.patience.is_some_and(|p| epoch - best_epoch >= p) {
            break;
        }
    }
    let (_, best_epoch, model) = best.unwrap_or_else(|| (f64::NAN, 0, model.valid()));
    #[allow(clippy::cast_precision_loss)] // Sample counts are far below 2^52.
    let samples_per_second = samples as f64 / train_seconds.max(f64::MIN_POSITIVE);
    Ok(Trained {
        model,
        best_epoch,
        history,
        train_seconds,
        samples_per_second,
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
            let m = metrics::classification(out, labels);
            (
                m["log_loss"],
                BTreeMap::from([("accuracy".to_owned(), m["accuracy"])]),
            )
        }
        (_, Targets::Values(values)) => {
            let truth: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
            let predicted: Vec<f64> = out.data.iter().map(|&v| f64::from(v)).collect();
            let m = metrics::regression(&predicted, &truth);
            (m["rmse"].powi(2), BTreeMap::new())
        }
        (_, Targets::Classes(_)) => unreachable!("fit checked that targets match the task"),
    }
}

/// Model outputs for every row of `x`: class probabilities (`rows × classes`), or the
/// standardized regression value (`rows × 1`). Runs in chunks to bound device memory.
///
/// # Panics
/// When `x.cols` differs from the model's inputs (a caller bug).
pub fn predict<B: Backend>(
    model: &TabularNet<B>,
    x: &Matrix,
    task: Task,
    device: &B::Device,
) -> Matrix {
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

    fn blobs() -> (Matrix, Targets) {
        let mut rng = kiln_core::rng::stream(0, "test-data");
        let mut data = Vec::new();
        let mut labels = Vec::new();
        for i in 0..90_i64 {
            let class = i % 3;
            #[allow(clippy::cast_precision_loss)]
            let center = class as f32 * 3.0;
            data.push(center + rand::RngExt::random_range(&mut rng, -1.0..1.0_f32));
            data.push(-center + rand::RngExt::random_range(&mut rng, -1.0..1.0_f32));
            labels.push(class);
        }
        (Matrix::new(data, 90, 2), Targets::Classes(labels))
    }

    fn spec() -> ModelSpec {
        ModelSpec {
            kind: ModelKind::Mlp,
            inputs: 2,
            hidden: vec![8],
            outputs: 3,
            dropout: 0.0,
        }
    }

    #[test]
    fn learns_separable_blobs_and_is_deterministic() {
        let (x, y) = blobs();
        let settings = TrainSettings {
            epochs: 30,
            batch_size: 16,
            lr: 0.05,
            ..Default::default()
        };
        let task = Task::Classification { classes: 3 };
        let run = || {
            let model = spec().init::<B>(7, &NdArrayDevice::default());
            fit(
                model,
                (&x, &y),
                (&x, &y),
                task,
                &settings,
                &NdArrayDevice::default(),
                |_| {},
            )
            .unwrap()
        };
        let (a, b) = (run(), run());
        assert!(a.history.last().unwrap().valid_metrics["accuracy"] > 0.95);
        assert_eq!(a.history, b.history);
        let pa = predict(&a.model, &x, task, &NdArrayDevice::default());
        let pb = predict(&b.model, &x, task, &NdArrayDevice::default());
        assert_eq!(pa, pb);
        for row in 0..pa.rows {
            let sum: f32 = pa.row(row).iter().sum();
            assert!((sum - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn divergence_names_epoch_and_step() {
        let (x, _) = blobs();
        let y = Targets::Values(vec![f32::INFINITY; 90]);
        let s = ModelSpec {
            outputs: 1,
            ..spec()
        };
        let model = s.init::<B>(7, &NdArrayDevice::default());
        let settings = TrainSettings {
            epochs: 2,
            batch_size: 30,
            ..Default::default()
        };
        let err = fit(
            model,
            (&x, &y),
            (&x, &y),
            Task::Regression,
            &settings,
            &NdArrayDevice::default(),
            |_| {},
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
    fn patience_stops_early_and_keeps_the_best_epoch() {
        let (x, y) = blobs();
        // A huge learning rate makes validation loss stop improving quickly.
        let settings = TrainSettings {
            epochs: 200,
            batch_size: 90,
            lr: 5.0,
            patience: Some(3),
            ..Default::default()
        };
        let model = spec().init::<B>(7, &NdArrayDevice::default());
        let t = fit(
            model,
            (&x, &y),
            (&x, &y),
            Task::Classification { classes: 3 },
            &settings,
            &NdArrayDevice::default(),
            |_| {},
        )
        .unwrap();
        assert!(t.history.len() < 200);
        assert_eq!(t.history.len(), t.best_epoch + 3);
        let best = t
            .history
            .iter()
            .map(|h| h.valid_loss)
            .fold(f64::INFINITY, f64::min);
        assert!((t.history[t.best_epoch - 1].valid_loss - best).abs() < 1e-12);
    }
}
