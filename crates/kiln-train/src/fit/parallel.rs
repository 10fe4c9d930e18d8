//! Data parallelism over the devices of one backend, in kiln's own loop.
//!
//! Not burn-train's multi-device strategy: it needs burn-train (about 245 CPU-seconds more to
//! build, with burn-flex and its TUI) and its `Learner`, which has no place for kiln's seeded
//! data order, exact mid-epoch resume and one device sync per epoch. Not burn-collective
//! either: on one machine the replicas share an address space, so reducing gradients is moving
//! them to the first device and adding them, which burn's public `GradientsParams::to_device`
//! and `GradientsAccumulator` do.
//!
//! Each step takes the next `batch_size × replicas` rows of the seeded order and cuts them into
//! consecutive shards of `batch_size` rows, shard `k` for replica `k` (an epoch's last step may
//! leave the later replicas fewer rows, or none). Every replica starts the step from the same
//! weights and backpropagates its shard's loss scaled by the shard's share of the batch (its
//! rows, or its summed class weights under weighted cross-entropy), so the replicas' gradients
//! add up to the whole batch's gradient (up to rounding). One optimizer step on the first
//! device updates the weights, which every replica copies at the start of the next step.
//!
//! The replicas after the first run in their own threads. On the CPU backends they share the
//! one CPU device: ndarray's single-threaded kernels then use more cores; flex shares its
//! thread pool.
//!
//! Dropout: replica `k` seeds the backend's process-wide RNG with the step's seed mixed with
//! `k` (replica 0 takes the one-device seed) and runs its forward pass under one lock, so the
//! masks do not depend on thread timing; they differ from a one-device run's masks. Batch
//! norm: each replica normalizes with its own shard's statistics (PyTorch's DDP without
//! SyncBatchNorm), and the running averages follow replica 0's shard (as DDP's default
//! `broadcast_buffers`, which copies rank 0's buffers to every replica each step).

use std::sync::{Mutex, PoisonError};

use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use kiln_models::Net;
use kiln_transform::Targets;

use super::{Objective, Stepper, Task, TrainRows, TrainSettings};
use crate::Result;

/// Held while a replica seeds the backend's process-wide RNG and runs its forward pass.
static RNG: Mutex<()> = Mutex::new(());

/// One replica's device, with every training row and the loss for it.
#[derive(Clone)]
struct Replica<'a, B: AutodiffBackend> {
    device: B::Device,
    rows: TrainRows<'a, B>,
    objective: Objective<B>,
}

/// The replicas of a data-parallel run; the first holds the weights and the optimizer.
pub(super) struct Replicas<'a, B: AutodiffBackend> {
    members: Vec<Replica<'a, B>>,
    /// Rows per shard: `batch_size`.
    shard_rows: usize,
    /// Each training row's weight in its batch's loss, where not all 1.
    row_weights: Option<Vec<f64>>,
    /// Gradient accumulation divides every loss by this.
    accumulation: f64,
}

impl<'a, B: AutodiffBackend> Replicas<'a, B> {
    /// Copies the training rows `rows` (for `devices[0]`; `y` on the host) to every device.
    pub(super) fn new(
        devices: &[B::Device],
        rows: &TrainRows<'a, B>,
        y: &Targets,
        settings: &TrainSettings,
        task: Task,
    ) -> Result<Self> {
        let members = devices
            .iter()
            .map(|device| {
                Ok(Replica {
                    device: device.clone(),
                    rows: rows.to_device(device),
                    objective: Objective::new(settings, task, device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let row_weights = members[0].objective.row_weights(settings, y);
        #[allow(clippy::cast_precision_loss)] // Accumulation counts are tiny.
        let accumulation = settings.grad_accumulation.max(1) as f64;
        Ok(Self {
            members,
            shard_rows: settings.batch_size.max(1),
            row_weights,
            accumulation,
        })
    }

    /// Trains on the rows `batch` (indices into the training rows), one shard per replica, at
    /// learning rate `lr`; returns the (maybe updated) model on the first device and the
    /// batch's detached loss, as [`Stepper::step`] does for one device.
    pub(super) fn step(
        &self,
        stepper: &mut Stepper<B>,
        model: Net<B>,
        batch: &[usize],
        lr: f64,
        seed: u64,
    ) -> (Net<B>, Tensor<B, 1>) {
        #[allow(clippy::cast_precision_loss)] // Row counts are far below 2^52.
        let weight = |rows: &[usize]| -> f64 {
            match &self.row_weights {
                Some(w) => rows.iter().map(|&r| w[r]).sum(),
                None => rows.len() as f64,
            }
        };
        let total = weight(batch);
        let accumulation = self.accumulation;
        let main = &self.members[0].device;
        let shards: Vec<(&[usize], &Replica<B>)> =
            batch.chunks(self.shard_rows).zip(&self.members).collect();
        let (grads, losses): (Vec<_>, Vec<_>) = std::thread::scope(|scope| {
            let others: Vec<_> = shards
                .iter()
                .enumerate()
                .skip(1)
                .map(|(k, &(rows, replica))| {
                    // A copy with its own autodiff graph and its own batch-norm running state.
                    let weights = model.valid();
                    let replica = replica.clone();
                    let share = weight(rows) / total;
                    let seed = seed ^ (k as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    scope.spawn(move || {
                        // `fork`, not the inner module's `to_device`, which drops the
                        // parameters' `require_grad`.
                        let copy = Net::<B>::from_inner(weights).fork(&replica.device);
                        replica.pass(&copy, rows, share, accumulation, seed, main)
                    })
                })
                .collect();
            let (rows, first) = shards[0];
            let first =
                first
                    .clone()
                    .pass(&model, rows, weight(rows) / total, accumulation, seed, main);
            std::iter::once(first)
                .chain(others.into_iter().map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                }))
                .unzip()
        });
        let loss = Tensor::cat(losses, 0).sum();
        (stepper.add_batch(model, grads, lr), loss)
    }
}

impl<B: AutodiffBackend> Replica<'_, B> {
    /// Forward and backward on the training rows `rows` with `model`, the replica's copy of
    /// the weights. Returns the gradients of the loss scaled by `share / accumulation`, and the
    /// detached loss scaled by `share`, both on `main`.
    fn pass(
        self,
        model: &Net<B>,
        rows: &[usize],
        share: f64,
        accumulation: f64,
        seed: u64,
        main: &B::Device,
    ) -> (GradientsParams, Tensor<B, 1>) {
        let (x, targets) = self.rows.batch(rows, &self.device);
        let output = {
            let _rng = RNG.lock().unwrap_or_else(PoisonError::into_inner);
            B::seed(&self.device, seed);
            model.forward(x)
        };
        let loss = self.objective.loss(output, targets);
        let grads = loss.clone().mul_scalar(share / accumulation).backward();
        let grads = GradientsParams::from_grads(grads, model).to_device(main, model);
        (grads, loss.detach().mul_scalar(share).to_device(main))
    }
}
