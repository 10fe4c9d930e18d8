//! Optimizers (burn's SGD, Adam, AdamW) behind one enum, with gradient clipping and
//! accumulation, and kiln's learning-rate schedules.

use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, GradientsParams, Optimizer, Sgd, SgdConfig,
};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

/// Which optimizer updates the weights.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum OptimizerKind {
    /// Stochastic gradient descent, with optional (Nesterov) momentum.
    Sgd {
        /// Momentum factor (0 for none).
        #[serde(default)]
        momentum: f64,
        /// Nesterov momentum (needs `momentum > 0`).
        #[serde(default)]
        nesterov: bool,
    },
    /// Adam, with weight decay as an L2 penalty on the gradient.
    #[default]
    Adam,
    /// AdamW: decoupled weight decay.
    #[serde(rename = "adamw")]
    AdamW,
}

/// Gradient clipping.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GradClip {
    /// Scale each parameter's gradient down to this L2 norm.
    Norm(f64),
    /// Clamp every gradient element to ±value.
    Value(f64),
}

fn with_clip<O, M2, B2>(
    optim: OptimizerAdaptor<O, M2, B2>,
    clipping: Option<&GradientClippingConfig>,
) -> OptimizerAdaptor<O, M2, B2>
where
    O: burn::optim::SimpleOptimizer<B2::InnerBackend>,
    M2: AutodiffModule<B2>,
    B2: AutodiffBackend,
{
    match clipping {
        Some(c) => optim.with_grad_clipping(c.init()),
        None => optim,
    }
}

/// A burn optimizer chosen at run time.
pub(crate) enum AnyOptimizer<B: AutodiffBackend, M: AutodiffModule<B>> {
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, M, B>),
    Adam(OptimizerAdaptor<Adam, M, B>),
    AdamW(OptimizerAdaptor<AdamW, M, B>),
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> AnyOptimizer<B, M> {
    #[allow(clippy::cast_possible_truncation)] // burn's optimizer hyper-parameters are f32.
    pub(crate) fn new(kind: OptimizerKind, weight_decay: f64, clip: Option<GradClip>) -> Self {
        let decay = (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32));
        let clipping = clip.map(|c| match c {
            GradClip::Norm(v) => GradientClippingConfig::Norm(v as f32),
            GradClip::Value(v) => GradientClippingConfig::Value(v as f32),
        });
        let clipping = clipping.as_ref();
        match kind {
            OptimizerKind::Sgd { momentum, nesterov } => {
                // PyTorch's defaults: no dampening (burn's default is 0.1).
                let momentum = (momentum > 0.0).then_some(MomentumConfig {
                    momentum,
                    dampening: 0.0,
                    nesterov,
                });
                AnyOptimizer::Sgd(with_clip(
                    SgdConfig::new()
                        .with_weight_decay(decay)
                        .with_momentum(momentum)
                        .init(),
                    clipping,
                ))
            }
            OptimizerKind::Adam => AnyOptimizer::Adam(with_clip(
                AdamConfig::new().with_weight_decay(decay).init(),
                clipping,
            )),
            OptimizerKind::AdamW => AnyOptimizer::AdamW(with_clip(
                AdamWConfig::new()
                    .with_weight_decay(weight_decay as f32)
                    .init(),
                clipping,
            )),
        }
    }

    pub(crate) fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        match self {
            AnyOptimizer::Sgd(o) => o.step(lr, module, grads),
            AnyOptimizer::Adam(o) => o.step(lr, module, grads),
            AnyOptimizer::AdamW(o) => o.step(lr, module, grads),
        }
    }

    /// Saves the optimizer state (moments, velocities) next to a checkpoint.
    pub(crate) fn save(&self, path: &std::path::Path) -> Result<(), String> {
        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        match self {
            AnyOptimizer::Sgd(o) => recorder.record(o.to_record(), path.to_path_buf()),
            AnyOptimizer::Adam(o) => recorder.record(o.to_record(), path.to_path_buf()),
            AnyOptimizer::AdamW(o) => recorder.record(o.to_record(), path.to_path_buf()),
        }
        .map_err(|e| e.to_string())
    }

    /// Restores the state written by [`AnyOptimizer::save`].
    pub(crate) fn load(self, path: &std::path::Path, device: &B::Device) -> Result<Self, String> {
        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let path = path.to_path_buf();
        Ok(match self {
            AnyOptimizer::Sgd(o) => AnyOptimizer::Sgd(
                o.load_record(recorder.load(path, device).map_err(|e| e.to_string())?),
            ),
            AnyOptimizer::Adam(o) => AnyOptimizer::Adam(
                o.load_record(recorder.load(path, device).map_err(|e| e.to_string())?),
            ),
            AnyOptimizer::AdamW(o) => AnyOptimizer::AdamW(
                o.load_record(recorder.load(path, device).map_err(|e| e.to_string())?),
            ),
        })
    }
}

/// How the learning rate moves over training.
///
/// kiln computes schedules in closed form from the global step (burn's schedulers are
/// stateful counters, compose awkwardly for warm-up + cosine and have no reduce-on-plateau);
/// a closed form also makes resuming from a checkpoint exact by construction.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Schedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// Multiply by `gamma` every epoch.
    Exponential {
        /// Decay factor.
        gamma: f64,
    },
    /// Linear warm-up from 0 over `warmup_epochs`, then cosine decay to `min_lr` at the end.
    Cosine {
        /// Warm-up length in epochs (may be 0).
        #[serde(default)]
        warmup_epochs: usize,
        /// Final learning rate.
        #[serde(default)]
        min_lr: f64,
    },
    /// Multiply by `factor` when the validation loss has not improved for `patience` epochs.
    Plateau {
        /// Decay factor.
        factor: f64,
        /// Epochs without improvement before a decay.
        patience: usize,
    },
}

/// Where training stands, as the schedule sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Progress {
    /// 0-based epoch.
    pub(crate) epoch: usize,
    /// 0-based optimizer step within all training.
    pub(crate) step: usize,
    /// Optimizer steps per epoch.
    pub(crate) steps_per_epoch: usize,
    /// Epochs planned.
    pub(crate) epochs: usize,
}

impl Schedule {
    /// The learning rate at `at`, for base rate `lr`. `plateau_decays` counts the decays
    /// reduce-on-plateau has made so far.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap
    )]
    // Step and epoch counts are far below 2^52 and i32::MAX.
    pub(crate) fn lr(&self, lr: f64, at: Progress, plateau_decays: u32) -> f64 {
        match *self {
            Schedule::Constant => lr,
            Schedule::Step { every, gamma } => lr * gamma.powi((at.epoch / every.max(1)) as i32),
            Schedule::Exponential { gamma } => lr * gamma.powi(at.epoch as i32),
            Schedule::Cosine {
                warmup_epochs,
                min_lr,
            } => {
                let warmup = warmup_epochs * at.steps_per_epoch;
                let total = (at.epochs * at.steps_per_epoch).max(1);
                if at.step < warmup {
                    lr * (at.step + 1) as f64 / warmup as f64
                } else {
                    let span = (total - warmup).max(1) as f64;
                    let t = (at.step - warmup) as f64 / span;
                    (0.5 * (lr - min_lr)).mul_add(1.0 + (std::f64::consts::PI * t).cos(), min_lr)
                }
            }
            Schedule::Plateau { factor, .. } => lr * factor.powi(plateau_decays as i32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: usize, step: usize) -> Progress {
        Progress {
            epoch,
            step,
            steps_per_epoch: 10,
            epochs: 10,
        }
    }

    #[test]
    fn schedules_follow_their_formulas() {
        let step = Schedule::Step {
            every: 3,
            gamma: 0.5,
        };
        assert!((step.lr(1.0, at(2, 29), 0) - 1.0).abs() < 1e-12);
        assert!((step.lr(1.0, at(3, 30), 0) - 0.5).abs() < 1e-12);
        let exp = Schedule::Exponential { gamma: 0.9 };
        assert!((exp.lr(2.0, at(2, 20), 0) - 1.62).abs() < 1e-12);
        let cos = Schedule::Cosine {
            warmup_epochs: 1,
            min_lr: 0.0,
        };
        assert!(
            (cos.lr(1.0, at(0, 0), 0) - 0.1).abs() < 1e-12,
            "warm-up starts small"
        );
        assert!(
            (cos.lr(1.0, at(0, 9), 0) - 1.0).abs() < 1e-12,
            "warm-up ends at the base rate"
        );
        assert!(
            (cos.lr(1.0, at(1, 10), 0) - 1.0).abs() < 1e-12,
            "cosine starts at the base rate"
        );
        assert!(
            (cos.lr(1.0, at(5, 55), 0) - 0.5).abs() < 1e-12,
            "halfway is half"
        );
        assert!(cos.lr(1.0, at(9, 99), 0) < 1e-3, "ends near min_lr");
        let plateau = Schedule::Plateau {
            factor: 0.1,
            patience: 2,
        };
        assert!((plateau.lr(1.0, at(5, 50), 2) - 0.01).abs() < 1e-12);
    }
}
