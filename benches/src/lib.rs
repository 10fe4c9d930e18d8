//! Shared fixtures for kiln's benchmarks: fixed seeds, small generated inputs.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use kiln_models::{ModelKind, ModelSpec};
use rand::RngExt;

/// Rows per training step in the step benchmark (PyTorch peer uses the same).
pub const BATCH: usize = 256;

/// The MLP 784-128-64-10 of the step benchmark and the PyTorch peer.
pub fn mlp_784_128_64_10() -> ModelSpec {
    ModelSpec {
        kind: ModelKind::Mlp,
        inputs: 784,
        hidden: vec![128, 64],
        outputs: 10,
        ..ModelSpec::default()
    }
}

/// A seeded batch of `BATCH` MNIST-shaped rows (values in [0, 1)) and labels 0..10.
pub fn mnist_like_batch<B: Backend>(device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let mut rng = kiln_core::rng::stream(0, "bench-batch");
    let x: Vec<f32> = (0..BATCH * 784).map(|_| rng.random::<f32>()).collect();
    let y: Vec<i64> = (0..BATCH).map(|_| rng.random_range(0..10)).collect();
    (
        Tensor::from_data(TensorData::new(x, [BATCH, 784]), device),
        Tensor::from_data(TensorData::new(y, [BATCH]), device),
    )
}
