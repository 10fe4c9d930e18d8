//! Shared fixtures for kiln's benchmarks: fixed seeds, small generated inputs.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use kiln_core::{BackendKind, DeviceInfo, Matrix};
use kiln_models::{ImageShape, ModelKind, ModelSpec};
use kiln_transform::Targets;
use rand::RngExt;

/// Rows per training step in the step benchmark (PyTorch peer uses the same).
pub const BATCH: usize = 256;

/// The models of the step benchmark and its PyTorch peer (`peers/torch_step.py` builds the
/// same shapes), each on 784 inputs (a 28×28 image) and 10 classes: MLPs small, medium and
/// large, and a CNN.
pub fn step_models() -> [(&'static str, ModelSpec); 4] {
    [
        ("mlp_784_128_64_10", mlp(&[128, 64])),
        ("mlp_784_256_128_10", mlp(&[256, 128])),
        ("mlp_784_1024_1024_10", mlp(&[1024, 1024])),
        ("cnn_32_64_128", cnn()),
    ]
}

/// An MLP 784-`hidden`-10.
pub fn mlp(hidden: &[usize]) -> ModelSpec {
    ModelSpec {
        kind: ModelKind::Mlp,
        inputs: 784,
        hidden: hidden.to_vec(),
        outputs: 10,
        ..ModelSpec::default()
    }
}

/// Two convolution blocks (3×3 same-padded convolution with 32 then 64 channels, ReLU, 2×2
/// max-pool) over a 1×28×28 image, a dense layer of 128 and 10 outputs.
pub fn cnn() -> ModelSpec {
    ModelSpec {
        kind: ModelKind::Cnn,
        inputs: 784,
        hidden: vec![128],
        outputs: 10,
        image: Some(ImageShape {
            channels: 1,
            height: 28,
            width: 28,
        }),
        conv: vec![32, 64],
        ..ModelSpec::default()
    }
}

/// Runs `bench` on every backend compiled in; one without a device here is skipped with a
/// line on stderr naming `name`.
pub fn on_every_backend(name: &str, mut bench: impl FnMut(BackendKind) -> kiln_core::Result<()>) {
    for kind in BackendKind::compiled() {
        if let Err(e) = bench(kind) {
            eprintln!("{name}: skipping {kind}: {e}");
        }
    }
}

/// Whether a benchmark on `info` measures a GPU (not a CPU backend, nor lavapipe's emulation).
pub fn is_gpu(info: &DeviceInfo) -> bool {
    info.device_type.ends_with("gpu")
}

/// `rows` seeded MNIST-shaped rows (values in [0, 1)) and labels 0..10.
pub fn mnist_like(rows: usize) -> (Matrix, Targets) {
    let mut rng = kiln_core::rng::stream(0, "bench-batch");
    let x: Vec<f32> = (0..rows * 784).map(|_| rng.random::<f32>()).collect();
    let y: Vec<i64> = (0..rows).map(|_| rng.random_range(0..10)).collect();
    (Matrix::new(x, rows, 784), Targets::Classes(y))
}

/// [`mnist_like`] rows as `count` device batches of `BATCH` rows.
pub fn mnist_like_batches<B: Backend>(
    count: usize,
    device: &B::Device,
) -> Vec<(Tensor<B, 2>, Tensor<B, 1, Int>)> {
    let (x, Targets::Classes(y)) = mnist_like(count * BATCH) else {
        unreachable!("mnist_like gives classes")
    };
    x.data
        .chunks(BATCH * 784)
        .zip(y.chunks(BATCH))
        .map(|(x, y)| {
            (
                Tensor::from_data(TensorData::new(x.to_vec(), [BATCH, 784]), device),
                Tensor::from_data(TensorData::new(y.to_vec(), [BATCH]), device),
            )
        })
        .collect()
}
