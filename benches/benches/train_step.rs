//! The training hot loop on every backend with a device here:
//! - `train/step`: one optimizer step (forward, backward, Adam update) at batch 256 of the MLPs
//!   784-128-64-10, 784-256-128-10 and 784-1024-1024-10 and a small CNN (the shapes
//!   `benches/peers/torch_step.py` runs on PyTorch); throughput in samples. The steps take the
//!   16 batches of an epoch in turn, already on the device: one batch over and over would stay
//!   in cache, which no epoch's batches do. Each step ends by reading the loss, which waits
//!   for the device: GPU timings include the synchronization.
//! - `train/epoch`: `kiln_train::fit` for one epoch of 16 such steps over 4,096 rows plus
//!   validation on 512 rows (and `_no_valid`, without it): everything the loop adds around
//!   the step (rows to tensors, shuffling, validation, metrics, progress). The model is built
//!   outside the timing.
//! - `train/epoch_outside`: the epoch's time beyond the same 16 steps run bare and, with
//!   validation, beyond the bare forward pass over the 512 validation rows too (each epoch
//!   paired with a run of that work): rows to tensors, shuffling, outputs to the host,
//!   metrics, history. `compare.py` reports it as a share of the epoch.
//! - `train/valid_forward`: that bare forward pass alone, already on the device (the compute
//!   a validation pass cannot skip).
//! - `matmul/4096`: one 4096×4096 by 4096×4096 f32 product (CPU backends and real GPUs), for
//!   GFLOP/s against numpy's sgemm and PyTorch's CUDA product.
//!
//! Everything runs on the bench's main thread made a worker of rayon's global pool, as
//! `kiln` runs its commands (`kiln_core::backend::join_compute_pool`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::{BATCH, is_gpu, mnist_like, mnist_like_batches, on_every_backend, step_models};
use kiln_core::{BackendKind, BackendVisitor, DeviceInfo, Matrix};
use kiln_models::ModelSpec;
use kiln_train::{DeviceTargets, Hooks, Stepper, Task, TrainSettings};
use kiln_transform::Targets;

/// Steps of an epoch, in both benchmarks.
const EPOCH_STEPS: usize = 16;
/// Rows of the epoch benchmark.
const EPOCH_ROWS: usize = EPOCH_STEPS * BATCH;
const VALID_ROWS: usize = 512;
const MATMUL: usize = 4096;
/// Steps before the step benchmark starts again from a fresh model.
const RESTART: usize = 64;

struct HotLoop<'a> {
    c: &'a mut Criterion,
}

impl BackendVisitor for HotLoop<'_> {
    type Output = ();

    fn visit<B: AutodiffBackend>(self, device: B::Device, info: DeviceInfo) {
        let task = Task::Classification { classes: 10 };
        let settings = TrainSettings {
            epochs: 1,
            batch_size: BATCH,
            ..TrainSettings::default()
        };
        // lavapipe emulates a GPU on the CPU: it checks the path, it says nothing about speed,
        // so it runs the smallest model only.
        let emulated = info.backend == BackendKind::Wgpu && !is_gpu(&info);
        // A GPU step takes about a millisecond: two seconds hold thousands of them.
        let seconds = match (emulated, is_gpu(&info)) {
            (true, _) => 20,
            (false, true) => 2,
            (false, false) => 5,
        };
        let batches = mnist_like_batches::<B>(EPOCH_STEPS, &device);
        // An untrained model and optimizer.
        let fresh = |spec: &ModelSpec| {
            let stepper = Stepper::<B>::new(&settings, task, &device)
                .expect("cross-entropy fits classification");
            (spec.init::<B>(0, &device), stepper)
        };
        let mut group = self.c.benchmark_group("train/step");
        group.throughput(Throughput::Elements(BATCH as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(seconds));
        let models = step_models();
        for (name, spec) in if emulated { &models[..1] } else { &models[..] } {
            let (model, mut stepper) = fresh(spec);
            let mut model = Some(model);
            let mut steps_on_model = 0;
            group.bench_function(
                BenchmarkId::new(format!("{name}_b256"), info.backend.name()),
                |b| {
                    b.iter_custom(|iters| {
                        let mut elapsed = Duration::ZERO;
                        for _ in 0..iters {
                            // A fresh model every RESTART steps: thousands of steps on the
                            // same rows drive the loss to zero and the arithmetic into
                            // subnormals, which no real run sees (PyTorch's peer restarts
                            // alike).
                            if steps_on_model == RESTART {
                                let (new_model, new_stepper) = fresh(spec);
                                (model, stepper) = (Some(new_model), new_stepper);
                                steps_on_model = 0;
                            }
                            let (x, y) = &batches[steps_on_model % EPOCH_STEPS];
                            let started = Instant::now();
                            let (updated, loss) = stepper.step(
                                model.take().expect("model is put back"),
                                x.clone(),
                                DeviceTargets::Classes(y.clone()),
                                settings.lr,
                            );
                            // Reading the loss waits for queued work on asynchronous backends.
                            black_box(loss.into_scalar());
                            elapsed += started.elapsed();
                            model = Some(updated);
                            steps_on_model += 1;
                        }
                        elapsed
                    });
                },
            );
        }
        group.finish();

        let (train_x, train_y) = mnist_like(EPOCH_ROWS);
        let (valid_x, valid_y) = mnist_like(VALID_ROWS);
        let no_valid = (
            Matrix::new(Vec::new(), 0, train_x.cols),
            Targets::Classes(Vec::new()),
        );
        let (name, spec) = &models[0];
        let epoch = |valid: (&Matrix, &Targets)| {
            let model = spec.init::<B>(0, &device);
            let started = Instant::now();
            let trained = kiln_train::fit(
                model,
                (&train_x, &train_y),
                valid,
                task,
                &settings,
                &device,
                Hooks::default(),
            )
            .expect("the benchmark trains");
            black_box(trained.history);
            started.elapsed()
        };
        // The epoch's 16 steps alone, from a fresh model as `fit`'s are (its first step costs
        // more: the optimizer's state is created).
        let bare_steps = || {
            let (mut model, mut stepper) = fresh(spec);
            let started = Instant::now();
            for (x, y) in &batches {
                let loss;
                (model, loss) = stepper.step(
                    model,
                    x.clone(),
                    DeviceTargets::Classes(y.clone()),
                    settings.lr,
                );
                black_box(loss.into_scalar());
            }
            started.elapsed()
        };
        // The validation rows' forward pass alone, already on the device, as the steps above.
        let valid_rows = Tensor::<B::InnerBackend, 2>::from_data(
            TensorData::new(valid_x.data.clone(), [valid_x.rows, valid_x.cols]),
            &device,
        );
        let bare_forward = || {
            let model = spec.init::<B::InnerBackend>(0, &device);
            let started = Instant::now();
            let outputs = black_box(model.forward(valid_rows.clone()));
            B::InnerBackend::sync(&device).expect("the device finishes");
            let elapsed = started.elapsed();
            drop(outputs);
            elapsed
        };
        // With the validation pass, and without; beside each, the bare work its epoch is
        // paired with. Beyond that work an epoch's time is the loop's own: rows to tensors,
        // shuffling, outputs to the host, metrics, history. The model is built outside the
        // timing, as a run builds it once, not per epoch.
        let bare_with_valid = || bare_steps() + bare_forward();
        let runs = [
            (
                "",
                (&valid_x, &valid_y),
                &bare_with_valid as &dyn Fn() -> Duration,
            ),
            ("_no_valid", (&no_valid.0, &no_valid.1), &bare_steps),
        ];
        let mut group = self.c.benchmark_group("train/epoch");
        group.throughput(Throughput::Elements(EPOCH_ROWS as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(seconds * 2));
        for (suffix, valid, _) in runs {
            group.bench_function(
                BenchmarkId::new(format!("{name}_b256{suffix}"), info.backend.name()),
                |b| b.iter_custom(|iters| (0..iters).map(|_| epoch(valid)).sum()),
            );
        }
        group.finish();
        let mut group = self.c.benchmark_group("train/valid_forward");
        group.throughput(Throughput::Elements(VALID_ROWS as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(seconds));
        group.bench_function(
            BenchmarkId::new(format!("{name}_r{VALID_ROWS}"), info.backend.name()),
            |b| b.iter_custom(|iters| (0..iters).map(|_| bare_forward()).sum()),
        );
        group.finish();
        // The epoch's time beyond its bare work, each epoch paired with a run of that work
        // just before it: on a shared machine the speed drifts by more than the share sought
        // between two benchmarks, even seconds apart. A sample whose epochs took no longer than
        // that work (noise) counts as 1 ns, as criterion refuses zero: it cannot move the
        // median unless most samples are there, and then the figure reads as nothing.
        let mut group = self.c.benchmark_group("train/epoch_outside");
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(seconds * 4));
        for (suffix, valid, bare) in runs {
            group.bench_function(
                BenchmarkId::new(format!("{name}_b256{suffix}"), info.backend.name()),
                |b| {
                    b.iter_custom(|iters| {
                        let (mut work, mut epochs) = (Duration::ZERO, Duration::ZERO);
                        for _ in 0..iters {
                            work += bare();
                            epochs += epoch(valid);
                        }
                        epochs.saturating_sub(work).max(Duration::from_nanos(1))
                    });
                },
            );
        }
        group.finish();

        if emulated {
            return; // A 4096² product on lavapipe says nothing about a GPU.
        }
        let mut rng = kiln_core::rng::stream(0, "bench-matmul");
        let mut square = || {
            let values: Vec<f32> = (0..MATMUL * MATMUL)
                .map(|_| rand::RngExt::random::<f32>(&mut rng))
                .collect();
            Tensor::<B::InnerBackend, 2>::from_data(
                TensorData::new(values, [MATMUL, MATMUL]),
                &device,
            )
        };
        let (a, b) = (square(), square());
        let mut group = self.c.benchmark_group("matmul");
        // Throughput in flops: 2·n³ per product.
        group.throughput(Throughput::Elements(2 * (MATMUL as u64).pow(3)));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(if is_gpu(&info) { 3 } else { 20 }));
        group.bench_function(BenchmarkId::new("4096", info.backend.name()), |bench| {
            bench.iter(|| {
                let product = black_box(a.clone().matmul(b.clone()));
                // Waits for the product without copying it back (which a GPU would pay for).
                B::InnerBackend::sync(&device).expect("the device finishes");
                product
            });
        });
        group.finish();
    }
}

fn hot_loop(c: &mut Criterion) {
    // As the kiln binary trains: on a thread of rayon's pool, where the CPU kernels run in place.
    kiln_core::backend::join_compute_pool();
    on_every_backend("train_step", |kind| {
        kiln_core::dispatch(kind, HotLoop { c: &mut *c })
    });
}

criterion_group!(benches, hot_loop);
criterion_main!(benches);
