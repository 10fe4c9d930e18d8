//! `train/step`: one optimizer step (forward, backward, Adam update) of the MLP
//! 784-128-64-10 at batch 256 (the shape `benches/peers/torch_step.py` runs on PyTorch), on
//! every backend with a device here. Throughput is in samples.

use std::hint::black_box;
use std::time::{Duration, Instant};

use burn::tensor::backend::AutodiffBackend;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::{BATCH, mlp_784_128_64_10, mnist_like_batch};
use kiln_core::{BackendKind, BackendVisitor, DeviceInfo};
use kiln_train::{DeviceTargets, Stepper, Task, TrainSettings};

struct StepBench<'a> {
    c: &'a mut Criterion,
}

impl BackendVisitor for StepBench<'_> {
    type Output = ();

    fn visit<B: AutodiffBackend>(self, device: B::Device, info: DeviceInfo) {
        let (x, y) = mnist_like_batch::<B>(&device);
        let mut model = Some(mlp_784_128_64_10().init::<B>(0, &device));
        let settings = TrainSettings::default();
        let task = Task::Classification { classes: 10 };
        let mut stepper =
            Stepper::<B>::new(&settings, task, &device).expect("cross-entropy fits classification");
        let mut group = self.c.benchmark_group("train/step");
        group.throughput(Throughput::Elements(BATCH as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(if info.backend == BackendKind::Wgpu {
            20
        } else {
            5
        }));
        group.bench_function(
            BenchmarkId::new("mlp_784_128_64_10_b256", info.backend.name()),
            |b| {
                b.iter_custom(|iters| {
                    let started = Instant::now();
                    let mut loss = None;
                    for _ in 0..iters {
                        let (updated, l) = stepper.step(
                            model.take().expect("model is put back"),
                            x.clone(),
                            DeviceTargets::Classes(y.clone()),
                            settings.lr,
                        );
                        model = Some(updated);
                        loss = Some(l);
                    }
                    // Reading the loss waits for the queued work on asynchronous (GPU) backends.
                    black_box(loss.map(burn::Tensor::into_scalar));
                    started.elapsed()
                });
            },
        );
        group.finish();
    }
}

fn train_step(c: &mut Criterion) {
    for kind in BackendKind::ALL {
        let visitor = StepBench { c: &mut *c };
        if let Err(e) = kiln_core::dispatch(kind, visitor) {
            eprintln!("train/step: skipping {kind}: {e}");
        }
    }
}

criterion_group!(benches, train_step);
criterion_main!(benches);
