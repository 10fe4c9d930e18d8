//! kiln's training loop and metrics.
//!
//! kiln runs its own loop rather than burn-train's `Learner`: it needs a data order drawn from
//! kiln's seeded streams (burn's DataLoader ordering changes with worker threads), checkpoints
//! that resume bit-exactly mid-epoch, one device sync per epoch rather than per step, and no
//! dependency on burn-train's TUI/flex stack.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use kiln_core::Matrix;
//! use kiln_models::{ModelKind, ModelSpec};
//! use kiln_train::{Hooks, Task, TrainSettings, fit};
//! use kiln_transform::Targets;
//!
//! let x = Matrix::new(vec![-1.0, -0.5, 0.5, 1.0], 4, 1);
//! let y = Targets::Classes(vec![0, 0, 1, 1]);
//! let spec = ModelSpec { kind: ModelKind::Linear, inputs: 1, hidden: vec![], outputs: 2, ..ModelSpec::default() };
//! let device = Default::default();
//! let model = spec.init::<Autodiff<NdArray>>(0, &device);
//! let settings = TrainSettings { epochs: 50, batch_size: 2, lr: 0.1, ..TrainSettings::default() };
//! let task = Task::Classification { classes: 2 };
//! let trained = fit(model, (&x, &y), (&x, &y), task, &settings, &device, Hooks::default())?;
//! assert_eq!(trained.history.last().unwrap().valid_metrics["accuracy"], 1.0);
//! # Ok::<(), kiln_train::Error>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod collective;
mod error;
mod fit;
pub mod metrics;
#[cfg(feature = "mpi")]
pub mod mpi;
mod optim;

pub use error::{Error, Result};
pub use fit::{
    BatchSource, DeviceTargets, EpochStats, Hooks, LossKind, Mode, Monitor, Outcome, ShuffleBuffer,
    StepProgress, Stepper, StreamedBatch, Task, TrainSettings, Trained, fit, fit_stream,
    latest_checkpoint, predict,
};
pub use optim::{GradClip, OptimizerKind, Schedule};
