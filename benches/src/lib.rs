//! Shared fixtures for kiln's benchmarks: fixed seeds, small generated inputs.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use kiln_core::Matrix;
use kiln_models::{ModelKind, ModelSpec};
use kiln_transform::Targets;
use rand::RngExt;

/// Rows per training step in the step benchmark (PyTorch peer uses the same).
pub const BATCH: usize = 256;

/// The MLPs of the step benchmark and the PyTorch peer: name and hidden widths, 784 inputs and
/// 10 outputs.
pub const MLPS: [(&str, [usize; 2]); 2] = [
    ("mlp_784_128_64_10", [128, 64]),
    ("mlp_784_256_128_10", [256, 128]),
];

/// An MLP 784-`hidden`-10.
pub fn mlp(hidden: [usize; 2]) -> ModelSpec {
    ModelSpec {
        kind: ModelKind::Mlp,
        inputs: 784,
        hidden: hidden.to_vec(),
        outputs: 10,
        ..ModelSpec::default()
    }
}

/// `rows` seeded MNIST-shaped rows (values in [0, 1)) and labels 0..10.
pub fn mnist_like(rows: usize) -> (Matrix, Targets) {
    let mut rng = kiln_core::rng::stream(0, "bench-batch");
    let x: Vec<f32> = (0..rows * 784).map(|_| rng.random::<f32>()).collect();
    let y: Vec<i64> = (0..rows).map(|_| rng.random_range(0..10)).collect();
    (Matrix::new(x, rows, 784), Targets::Classes(y))
}

/// [`mnist_like`] rows as one device batch of `BATCH` rows.
pub fn mnist_like_batch<B: Backend>(device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let (x, Targets::Classes(y)) = mnist_like(BATCH) else {
        unreachable!("mnist_like gives classes")
    };
    (
        Tensor::from_data(TensorData::new(x.data, [BATCH, 784]), device),
        Tensor::from_data(TensorData::new(y, [BATCH]), device),
    )
}
