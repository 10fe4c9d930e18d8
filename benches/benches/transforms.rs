//! The dense numeric transform (impute + clip + scale) on the device: burn tensor ops on every
//! backend, and the fused CubeCL kernel on wgpu. Each iteration ends with `B::sync`, so
//! asynchronous backends are timed to completion.
//!
//! ```sh
//! cargo bench -p kiln-benches --bench transforms
//! ```

use std::hint::black_box;

use burn::backend::flex::FlexDevice;
use burn::backend::ndarray::NdArrayDevice;
use burn::backend::wgpu::WgpuDevice;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_core::backend::{FlexBackend, NdArrayBackend, WgpuBackend};
use kiln_transform::{DenseNumeric, DenseNumericOps, FittedColumn, FittedFeatures, FittedNumeric};

const ROWS: usize = 65_536;
const COLS: usize = 32;

/// Fitted parameters for `COLS` columns, every third one clipped.
fn params() -> DenseNumeric {
    let columns = (0..COLS)
        .map(|j| {
            #[allow(clippy::cast_precision_loss)] // Small indices.
            let j_f = j as f64;
            FittedColumn::Numeric(FittedNumeric {
                name: format!("x{j}"),
                fill: j_f,
                missing_indicator: false,
                lower: (j % 3 == 0).then_some(-2.0),
                upper: (j % 3 == 0).then_some(50.0),
                log1p: false,
                power: None,
                center: j_f * 0.5,
                scale: 1.0 + j_f,
                bins: None,
            })
        })
        .collect();
    DenseNumeric::of(&FittedFeatures { columns }).expect("plain numeric columns")
}

/// Raw values with every 17th cell missing.
fn input<B: Backend>(device: &B::Device) -> Tensor<B, 2> {
    #[allow(clippy::cast_precision_loss)] // Small indices.
    let data: Vec<f32> = (0..ROWS * COLS)
        .map(|i| {
            if i % 17 == 0 {
                f32::NAN
            } else {
                (i % 101) as f32 - 20.0
            }
        })
        .collect();
    Tensor::from_data(TensorData::new(data, [ROWS, COLS]), device)
}

fn bench_backend<B: DenseNumericOps>(c: &mut Criterion, name: &str, device: &B::Device) {
    let dense = params();
    let x = input::<B>(device);
    let mut group = c.benchmark_group("transform/dense");
    group.throughput(Throughput::Elements((ROWS * COLS) as u64));
    group.bench_function(BenchmarkId::new("tensor_ops", name), |b| {
        b.iter(|| {
            black_box(dense.reference(x.clone()));
            B::sync(device).expect("device sync");
        });
    });
    group.bench_function(BenchmarkId::new("backend_path", name), |b| {
        b.iter(|| {
            black_box(dense.apply(x.clone()));
            B::sync(device).expect("device sync");
        });
    });
    group.finish();
}

fn dense(c: &mut Criterion) {
    bench_backend::<NdArrayBackend>(c, "ndarray", &NdArrayDevice::Cpu);
    bench_backend::<FlexBackend>(c, "flex", &FlexDevice);
    // On wgpu, `backend_path` is the fused kernel.
    bench_backend::<WgpuBackend>(c, "wgpu", &WgpuDevice::default());
}

criterion_group!(benches, dense);
criterion_main!(benches);
