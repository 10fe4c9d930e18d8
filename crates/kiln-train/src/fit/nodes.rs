//! Data parallelism across nodes (processes, usually on different machines), in kiln's loop.
//!
//! Each node trains on its own shard of the training rows (the caller picks them, by row hash:
//! [`crate::collective::owns_row`]) and shuffles it with its own seeded stream each epoch.
//! Every step, each node takes its next `batch_size` rows (none once its shard is used up:
//! the shards differ in size, and every node must take part in as many sums as the others),
//! backpropagates the mean loss over them, and scales the gradient by its rows (or, under
//! weighted cross-entropy, its summed class weights). One [`Collective::sum`] adds the scaled
//! gradients of every node together with the weights and the weighted losses; dividing by the
//! summed weight gives the gradient of the mean loss over the step's rows of every node,
//! which is what one process training on all of them would compute. Every node then takes
//! the same optimizer step from the same weights, so the weights stay equal without being
//! sent; [`Nodes::agree_on_weights`] checks that at the end.
//!
//! Dropout: node `r` seeds the backend RNG with the step's seed mixed with `r`.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use kiln_models::Net;
use kiln_transform::Targets;

use super::{Stepper, Task, TrainRows, TrainSettings};
use crate::collective::{Collective, agree};
use crate::{Error, Result};

/// This node's part in a multi-node run.
pub(super) struct Nodes<'a> {
    collective: &'a dyn Collective,
    /// Each local training row's weight in its batch's loss, where not all 1.
    row_weights: Option<Vec<f64>>,
    /// Gradient accumulation divides every loss by this.
    accumulation: f64,
    /// Steps every node takes per epoch: enough for the largest shard.
    pub(super) steps_per_epoch: usize,
    /// Training rows of every node together.
    pub(super) total_rows: usize,
    /// This epoch's summed (loss × weight, weight) over every node.
    epoch_loss: (f64, f64),
    /// Seconds spent in the gradient sums, waiting for the other nodes included.
    pub(super) exchange_seconds: f64,
    /// Gradient sums so far.
    pub(super) exchanges: usize,
}

impl<'a> Nodes<'a> {
    /// Checks that every node trains the same model the same way (settings, task and initial
    /// weights) and learns how many rows each holds.
    ///
    /// # Errors
    /// [`Error::Nodes`] when the nodes disagree, or with data-parallel devices or a resume
    /// (neither is supported across nodes); the collective's errors.
    pub(super) fn new<B: AutodiffBackend>(
        collective: &'a dyn Collective,
        stepper: &Stepper<B>,
        model: &Net<B>,
        (rows, y): (usize, &Targets),
        settings: &TrainSettings,
        task: Task,
    ) -> Result<Self> {
        if settings.devices > 1 {
            return Err(Error::Nodes {
                message: format!(
                    "devices = {} with several nodes: train one device per node",
                    settings.devices
                ),
            });
        }
        let setup = format!("{settings:?}{task:?}{}", kiln_models::parameter_hash(model));
        let fingerprint = head(blake3::hash(setup.as_bytes()).as_bytes());
        let what = format!(
            "node {} of {}: the start of training",
            collective.rank(),
            collective.nodes()
        );
        let rows_per_node = agree(collective, &what, fingerprint, rows)?;
        let largest = rows_per_node.iter().copied().max().unwrap_or(0);
        #[allow(clippy::cast_precision_loss)] // Accumulation counts are tiny.
        let accumulation = settings.grad_accumulation.max(1) as f64;
        Ok(Self {
            collective,
            row_weights: stepper.objective.row_weights(settings, y),
            accumulation,
            steps_per_epoch: largest.div_ceil(settings.batch_size.max(1)),
            total_rows: rows_per_node.iter().sum(),
            epoch_loss: (0.0, 0.0),
            exchange_seconds: 0.0,
            exchanges: 0,
        })
    }

    /// This node.
    pub(super) fn rank(&self) -> usize {
        self.collective.rank()
    }

    /// Trains one step on this node's `rows` (indices into its training rows; maybe none) and
    /// every other node's; returns the updated model and the step's mean loss over all nodes.
    ///
    /// # Errors
    /// The collective's.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn step<B: AutodiffBackend>(
        &mut self,
        stepper: &mut Stepper<B>,
        model: Net<B>,
        (train, device): (&TrainRows<'_, B>, &B::Device),
        rows: &[usize],
        lr: f64,
        seed: u64,
        (epoch, step): (usize, usize),
    ) -> Result<(Net<B>, Tensor<B, 1>)> {
        #[allow(clippy::cast_precision_loss)] // Row counts are far below 2^52.
        let weight = match &self.row_weights {
            Some(w) => rows.iter().map(|&r| w[r]).sum(),
            None => rows.len() as f64,
        };
        let (mut buffer, loss_sum) = if rows.is_empty() {
            (flatten(&model, &GradientsParams::new(), 0.0), 0.0)
        } else {
            B::seed(
                device,
                seed ^ (self.rank() as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9),
            );
            let (x, targets) = train.batch(rows, device);
            let loss = stepper.objective.loss(model.forward(x), targets);
            let grads = GradientsParams::from_grads(loss.clone().backward(), &model);
            let loss: f64 = loss.into_scalar().elem();
            (flatten(&model, &grads, weight), loss * weight)
        };
        // The exchange is in f32, like the gradients.
        #[allow(clippy::cast_possible_truncation)]
        buffer.extend([loss_sum as f32, weight as f32]);
        let what = format!(
            "node {} of {}: the gradient sum of epoch {epoch}, step {step}",
            self.rank(),
            self.collective.nodes()
        );
        let exchange = std::time::Instant::now();
        self.collective.sum(&mut buffer, &what)?;
        self.exchange_seconds += exchange.elapsed().as_secs_f64();
        self.exchanges += 1;
        let total = f64::from(buffer.pop().expect("the weight"));
        let loss_sum = f64::from(buffer.pop().expect("the weighted loss"));
        self.epoch_loss.0 += loss_sum;
        self.epoch_loss.1 += total;
        #[allow(clippy::cast_possible_truncation)]
        let loss = Tensor::from_data(
            TensorData::new(vec![(loss_sum / total.max(f64::MIN_POSITIVE)) as f32], [1]),
            device,
        );
        if total == 0.0 {
            // No node had a row (only possible with zero class weights): nothing to learn.
            return Ok((model, loss));
        }
        #[allow(clippy::cast_possible_truncation)]
        let scale = (1.0 / (total * self.accumulation)) as f32;
        let grads = unflatten(&model, &buffer, scale);
        Ok((stepper.add_batch(model, vec![grads], lr), loss))
    }

    /// The epoch's mean loss over every node's rows; starts the next epoch's sum.
    pub(super) fn take_epoch_loss(&mut self) -> f64 {
        let (sum, weight) = std::mem::take(&mut self.epoch_loss);
        sum / weight.max(f64::MIN_POSITIVE)
    }

    /// Checks that every node ends with the same weights.
    ///
    /// # Errors
    /// [`Error::Nodes`] naming a node whose weights differ from node 0's; the collective's.
    pub(super) fn agree_on_weights<B: Backend>(&self, model: &Net<B>) -> Result<()> {
        let hash = kiln_models::parameter_hash(model);
        let what = format!(
            "node {} of {}: the end of training",
            self.rank(),
            self.collective.nodes()
        );
        agree(
            self.collective,
            &what,
            u64::from_str_radix(&hash[..16], 16).unwrap_or(0),
            0,
        )
        .map(drop)
        .map_err(|e| Error::Nodes {
            message: format!("the nodes' weights diverged ({e})"),
        })
    }
}

fn head(bytes: &[u8; 32]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// Every parameter's gradient × `scale`, in module order, in one host buffer (zeros for a
/// parameter without one). One device read for the whole model.
fn flatten<B: AutodiffBackend>(model: &Net<B>, grads: &GradientsParams, scale: f64) -> Vec<f32> {
    struct Flatten<'g, B: AutodiffBackend> {
        grads: &'g GradientsParams,
        parts: Vec<Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let value = param.val();
            let n = value.shape().num_elements();
            self.parts.push(
                self.grads
                    .get::<B::InnerBackend, D>(param.id)
                    .map_or_else(|| Tensor::zeros([n], &value.device()), |g| g.reshape([n])),
            );
        }
    }
    let mut visitor = Flatten::<B> {
        grads,
        parts: Vec::new(),
    };
    model.visit(&mut visitor);
    Tensor::cat(visitor.parts, 0)
        .mul_scalar(scale)
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 after convert")
}

/// The gradients in `values` (as [`flatten`] lays them out) × `scale`, on the model's device.
fn unflatten<B: AutodiffBackend>(model: &Net<B>, values: &[f32], scale: f32) -> GradientsParams {
    struct Unflatten<'v> {
        values: &'v [f32],
        scale: f32,
        grads: GradientsParams,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Unflatten<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let value = param.val();
            let shape = value.shape();
            let (own, rest) = self.values.split_at(shape.num_elements());
            self.values = rest;
            let data = TensorData::new(own.iter().map(|v| v * self.scale).collect(), shape);
            self.grads
                .register::<B::InnerBackend, D>(param.id, Tensor::from_data(data, &value.device()));
        }
    }
    let mut visitor = Unflatten {
        values,
        scale,
        grads: GradientsParams::new(),
    };
    model.visit(&mut visitor);
    visitor.grads
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, NdArray};
    use kiln_core::Matrix;
    use kiln_models::{ModelKind, ModelSpec};

    use super::*;
    use crate::collective::threads;
    use crate::fit::{Hooks, Trained, fit};

    type B = Autodiff<NdArray>;
    const TASK: Task = Task::Classification { classes: 2 };

    /// Two noisy classes in 3-D, `rows` rows.
    fn data(rows: usize) -> (Matrix, Vec<i64>) {
        let mut rng = kiln_core::rng::stream(3, "nodes-test-data");
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..rows {
            let class = i64::try_from(i % 2).expect("small");
            #[allow(clippy::cast_precision_loss)]
            let center = (class as f32).mul_add(2.0, -1.0);
            for _ in 0..3 {
                x.push(center + rand::RngExt::random_range(&mut rng, -1.5..1.5_f32));
            }
            y.push(class);
        }
        (Matrix::new(x, rows, 3), y)
    }

    fn rows_of(x: &Matrix, y: &[i64], rows: &[usize]) -> (Matrix, Targets) {
        (
            x.take_rows(rows),
            Targets::Classes(rows.iter().map(|&r| y[r]).collect()),
        )
    }

    fn train(
        (x, y): (&Matrix, &Targets),
        settings: &TrainSettings,
        nodes: Option<&dyn Collective>,
    ) -> Result<Trained<B>> {
        let spec = ModelSpec {
            kind: ModelKind::Mlp,
            inputs: 3,
            hidden: vec![6],
            outputs: 2,
            ..ModelSpec::default()
        };
        let device = burn::backend::ndarray::NdArrayDevice::default();
        fit(
            spec.init::<B>(11, &device),
            (x, y),
            (x, y),
            TASK,
            settings,
            &device,
            Hooks {
                nodes,
                ..Hooks::default()
            },
        )
    }

    /// Trains each shard on its own thread-node.
    fn on_nodes(shards: &[(Matrix, Targets)], settings: &TrainSettings) -> Vec<Trained<B>> {
        let group = threads::group(shards.len());
        std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .zip(shards)
                .map(|(node, (x, y))| scope.spawn(move || train((x, y), settings, Some(node))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic").expect("trains"))
                .collect()
        })
    }

    fn weights(trained: &Trained<B>) -> Vec<f32> {
        // Every parameter's value, through the same visitor order as the exchange.
        struct Values<'o>(&'o mut Vec<f32>);
        impl<Bk: Backend> ModuleVisitor<Bk> for Values<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
                self.0
                    .extend(param.val().into_data().convert::<f32>().iter::<f32>());
            }
        }
        let mut out = Vec::new();
        trained.model.visit(&mut Values(&mut out));
        out
    }

    #[test]
    fn uneven_shards_keep_every_node_in_step_with_equal_weights() {
        let (x, y) = data(64);
        let settings = TrainSettings {
            epochs: 6,
            batch_size: 32,
            lr: 0.05,
            ..TrainSettings::default()
        };
        let all: Vec<usize> = (0..64).collect();
        let (even, odd): (Vec<usize>, Vec<usize>) = all.iter().partition(|&&r| r % 3 == 0);
        // Shards of 22 and 42 rows at batch 32: node 0 idles in every epoch's second step.
        let shards = [rows_of(&x, &y, &even), rows_of(&x, &y, &odd)];
        let nodes = on_nodes(&shards, &settings);
        assert_eq!(weights(&nodes[0]), weights(&nodes[1]));
        // Each node validates on its own rows here; the training losses are every node's.
        let losses = |t: &Trained<B>| t.history.iter().map(|e| e.train_loss).collect::<Vec<_>>();
        assert_eq!(losses(&nodes[0]), losses(&nodes[1]));
        assert_eq!(nodes[0].history.len(), 6);
        let (first, last) = (losses(&nodes[0])[0], losses(&nodes[0])[5]);
        assert!(
            last < first * 0.5,
            "the loss fell from {first} to {last} only"
        );
    }

    #[test]
    fn the_summed_gradient_is_the_gradient_of_the_union_of_the_nodes_batches() {
        let (x, y) = data(48);
        let settings = TrainSettings {
            epochs: 4,
            batch_size: 24,
            lr: 0.05,
            ..TrainSettings::default()
        };
        let first: Vec<usize> = (0..24).collect();
        let second: Vec<usize> = (24..48).collect();
        let shards = [rows_of(&x, &y, &first), rows_of(&x, &y, &second)];
        let nodes = on_nodes(&shards, &settings);
        // Each node's shard is one batch: every step covers all 48 rows, as one process does
        // at batch 48.
        let whole = train(
            (&x, &Targets::Classes(y.clone())),
            &TrainSettings {
                batch_size: 48,
                ..settings.clone()
            },
            None,
        )
        .expect("trains");
        let (a, b) = (weights(&nodes[0]), weights(&whole));
        let gap = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(gap < 1e-5, "max |Δweight| {gap}");
        let (l0, l1) = (nodes[0].history[3].train_loss, whole.history[3].train_loss);
        assert!((l0 - l1).abs() < 1e-5, "train loss {l0} vs {l1}");
    }

    #[test]
    fn nodes_that_train_differently_are_refused_at_the_start() {
        let (x, y) = data(32);
        let shard = rows_of(&x, &y, &(0..32).collect::<Vec<_>>());
        let group = threads::group(2);
        let errors: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .enumerate()
                .map(|(rank, node)| {
                    let shard = &shard;
                    scope.spawn(move || {
                        let settings = TrainSettings {
                            epochs: 1,
                            lr: if rank == 0 { 0.1 } else { 0.2 },
                            ..TrainSettings::default()
                        };
                        match train((&shard.0, &shard.1), &settings, Some(node)) {
                            Ok(_) => String::new(),
                            Err(e) => e.to_string(),
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        for error in errors {
            assert!(error.contains("node 1 has another"), "{error}");
        }
    }
}
