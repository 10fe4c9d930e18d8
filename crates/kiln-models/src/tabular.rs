use std::fmt;

use burn::module::{Module, Param, ParamId};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// One linear layer: linear regression, or logistic/softmax regression for classes.
    Linear,
    /// Multi-layer perceptron with ReLU between layers.
    Mlp,
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Linear => "linear",
            ModelKind::Mlp => "mlp",
        })
    }
}

/// Everything needed to rebuild a model's architecture (saved beside its weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The family.
    pub kind: ModelKind,
    /// Input features.
    pub inputs: usize,
    /// Hidden layer widths (empty for linear).
    pub hidden: Vec<usize>,
    /// Outputs: classes, or 1 for regression.
    pub outputs: usize,
    /// Dropout after each hidden activation.
    pub dropout: f64,
}

/// A feed-forward network over dense tabular features.
#[derive(Module, Debug)]
pub struct TabularNet<B: Backend> {
    layers: Vec<Linear<B>>,
    dropout: Dropout,
}

impl ModelSpec {
    /// Checks the architecture.
    ///
    /// # Errors
    /// [`Error::EmptyLayer`], [`Error::Dropout`], [`Error::HiddenOnLinear`].
    pub fn check(&self) -> Result<()> {
        if let Some(index) = self.hidden.iter().position(|&h| h == 0) {
            return Err(Error::EmptyLayer { index });
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Dropout {
                dropout: self.dropout,
            });
        }
        if self.kind == ModelKind::Linear && !self.hidden.is_empty() {
            return Err(Error::HiddenOnLinear {
                kind: self.kind,
                hidden: self.hidden.clone(),
            });
        }
        Ok(())
    }

    /// Layer widths from input to output.
    fn widths(&self) -> Vec<usize> {
        std::iter::once(self.inputs)
            .chain(self.hidden.iter().copied())
            .chain([self.outputs])
            .collect()
    }

    /// Builds the model with weights drawn from kiln's `seed` stream: burn's default
    /// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for weights and biases, generated on the CPU so
    /// every backend starts from the same values.
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> TabularNet<B> {
        let mut rng = kiln_core::rng::stream(seed, "model-init");
        let widths = self.widths();
        let layers = widths
            .windows(2)
            .zip(0_u64..)
            .map(|(pair, index)| {
                let (fan_in, fan_out) = (pair[0], pair[1]);
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                // Layer widths are small; the bound is an f32 like the weights.
                let bound = (1.0 / (fan_in as f64).sqrt()) as f32;
                let mut uniform = |n: usize| {
                    (0..n)
                        .map(|_| rng.random_range(-bound..bound))
                        .collect::<Vec<f32>>()
                };
                let weight = Tensor::from_data(
                    TensorData::new(uniform(fan_in * fan_out), [fan_in, fan_out]),
                    device,
                );
                let bias = Tensor::from_data(TensorData::new(uniform(fan_out), [fan_out]), device);
                // Ids from positions (burn's are random per process); trainable like
                // `Param::from_tensor`.
                Linear {
                    weight: Param::initialized(ParamId::from(2 * index), weight.require_grad()),
                    bias: Some(Param::initialized(
                        ParamId::from(2 * index + 1),
                        bias.require_grad(),
                    )),
                }
            })
            .collect();
        TabularNet {
            layers,
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.widths().windows(2).map(|p| p[0] * p[1] + p[1]).sum()
    }
}

impl<B: Backend> TabularNet<B> {
    /// Logits (classification) or the standardized value (regression).
    ///
    /// # Shapes
    /// - input: `[batch, inputs]`
    /// - output: `[batch, outputs]`
    pub fn forward(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(input, |x, (i, layer)| {
            let y = layer.forward(x);
            if i == last {
                y
            } else {
                self.dropout.forward(relu(y))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    fn spec(kind: ModelKind, hidden: Vec<usize>) -> ModelSpec {
        ModelSpec {
            kind,
            inputs: 5,
            hidden,
            outputs: 3,
            dropout: 0.0,
        }
    }

    #[test]
    fn init_is_seeded_and_shapes_are_right() {
        let device = burn::backend::ndarray::NdArrayDevice::default();
        let mlp = spec(ModelKind::Mlp, vec![16, 8]);
        let seeded = mlp.init::<NdArray>(1, &device);
        let same_seed = mlp.init::<NdArray>(1, &device);
        let other_seed = mlp.init::<NdArray>(2, &device);
        let input = Tensor::<NdArray, 2>::ones([4, 5], &device);
        let out = seeded.forward(input.clone());
        assert_eq!(out.dims(), [4, 3]);
        assert_eq!(out.to_data(), same_seed.forward(input.clone()).to_data());
        assert_ne!(out.to_data(), other_seed.forward(input).to_data());
        assert_eq!(seeded.num_params(), mlp.num_params());
    }

    #[test]
    fn check_rejects_bad_architectures() {
        assert!(matches!(
            spec(ModelKind::Mlp, vec![4, 0]).check(),
            Err(Error::EmptyLayer { index: 1 })
        ));
        assert!(matches!(
            spec(ModelKind::Linear, vec![4]).check(),
            Err(Error::HiddenOnLinear { .. })
        ));
        let mut s = spec(ModelKind::Mlp, vec![4]);
        s.dropout = 1.0;
        assert!(matches!(s.check(), Err(Error::Dropout { .. })));
    }
}
