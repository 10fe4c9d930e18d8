//! Inference on every backend with a device here, the work behind `kiln predict` and
//! `kiln serve`:
//! - `infer/batch`: the forward pass of each step-benchmark model over 4,096 rows, from host
//!   rows to host probabilities (upload, forward, softmax, download); throughput in rows.
//! - `infer/row`: the same for a single row: the latency floor of one unbatched request.
//!
//! Both read the result back to the host, so GPU timings include the transfer and the wait.

use std::hint::black_box;
use std::time::Duration;

use burn::tensor::activation::softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::{is_gpu, mnist_like, on_every_backend, step_models};
use kiln_core::{BackendKind, BackendVisitor, DeviceInfo};

const BATCH_ROWS: usize = 4096;

struct Inference<'a> {
    c: &'a mut Criterion,
}

impl BackendVisitor for Inference<'_> {
    type Output = ();

    fn visit<B: AutodiffBackend>(self, device: B::Device, info: DeviceInfo) {
        type Inner<B> = <B as AutodiffBackend>::InnerBackend;
        let emulated = info.backend == BackendKind::Wgpu && !is_gpu(&info);
        let models = step_models();
        let models = if emulated { &models[..1] } else { &models[..] };
        let (rows, _) = mnist_like(BATCH_ROWS);
        let seconds = Duration::from_secs(if is_gpu(&info) { 2 } else { 3 });
        let predict = |model: &kiln_models::Net<Inner<B>>, values: &[f32], n: usize| {
            let x = Tensor::<Inner<B>, 2>::from_data(
                TensorData::new(values.to_vec(), [n, 784]),
                &device,
            );
            softmax(model.forward(x), 1)
                .into_data()
                .into_vec::<f32>()
                .expect("f32 probabilities")
        };

        let mut group = self.c.benchmark_group("infer/batch");
        group.throughput(Throughput::Elements(BATCH_ROWS as u64));
        group.sample_size(10);
        group.measurement_time(seconds);
        for (name, spec) in models {
            let model = spec.init::<Inner<B>>(0, &device);
            group.bench_function(
                BenchmarkId::new(format!("{name}_rows4096"), info.backend.name()),
                |b| b.iter(|| black_box(predict(&model, &rows.data, BATCH_ROWS))),
            );
        }
        group.finish();

        let mut group = self.c.benchmark_group("infer/row");
        group.throughput(Throughput::Elements(1));
        group.measurement_time(seconds);
        let row = &rows.data[..784];
        for (name, spec) in models {
            let model = spec.init::<Inner<B>>(0, &device);
            group.bench_function(
                BenchmarkId::new(name.to_string(), info.backend.name()),
                |b| {
                    b.iter(|| black_box(predict(&model, row, 1)));
                },
            );
        }
        group.finish();
    }
}

fn inference(c: &mut Criterion) {
    on_every_backend("inference", |kind| {
        kiln_core::dispatch(kind, Inference { c: &mut *c })
    });
}

criterion_group!(benches, inference);
criterion_main!(benches);
