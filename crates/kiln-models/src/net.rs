use std::fmt;

use burn::module::{Module, Param, ParamId, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Embedding, LayerNorm, LayerNormConfig,
    Linear, PaddingConfig2d,
};
use burn::tensor::activation::{gelu, relu, silu, tanh};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use kiln_core::rng::ChaCha8Rng;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// One linear layer: linear regression, or logistic/softmax regression for classes.
    Linear,
    /// Multi-layer perceptron.
    #[default]
    Mlp,
    /// A learned embedding per categorical column, concatenated with the other features,
    /// then an MLP.
    Tabular,
    /// Convolution blocks (3×3 convolution, activation, 2×2 max-pool) over an image, then an
    /// MLP.
    Cnn,
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Linear => "linear",
            ModelKind::Mlp => "mlp",
            ModelKind::Tabular => "tabular",
            ModelKind::Cnn => "cnn",
        })
    }
}

/// The nonlinearity after each hidden layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// max(0, x).
    #[default]
    Relu,
    /// Gaussian error linear unit.
    Gelu,
    /// x · sigmoid(x).
    Silu,
    /// Hyperbolic tangent.
    Tanh,
}

impl Activation {
    fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Activation::Relu => relu(x),
            Activation::Gelu => gelu(x),
            Activation::Silu => silu(x),
            Activation::Tanh => tanh(x),
        }
    }
}

/// Normalization after each hidden layer's linear map (before the activation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// None.
    #[default]
    None,
    /// Batch normalization (batch statistics in training, running ones in inference); also
    /// after each convolution of a CNN.
    Batch,
    /// Layer normalization over each row's features (dense layers only).
    Layer,
}

/// One categorical input learned as an embedding (tabular model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingSpec {
    /// Position of the column holding the category index in the input matrix.
    pub column: usize,
    /// Number of distinct indices (categories plus the unknown slot).
    pub cardinality: usize,
    /// Width of the learned vector.
    pub dim: usize,
}

impl EmbeddingSpec {
    /// fast.ai's rule of thumb for the width: `min(600, round(1.6 · n^0.56))`.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    pub fn default_dim(cardinality: usize) -> usize {
        ((1.6 * (cardinality as f64).powf(0.56)).round() as usize).clamp(1, 600)
    }
}

/// The shape of an image input, stored channel-major (`c, y, x`) in the input row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageShape {
    /// Channels (1 for grayscale).
    pub channels: usize,
    /// Rows of pixels.
    pub height: usize,
    /// Columns of pixels.
    pub width: usize,
}

/// Everything needed to rebuild a model's architecture (saved beside its weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The family.
    pub kind: ModelKind,
    /// Input columns.
    pub inputs: usize,
    /// Hidden layer widths (empty for linear).
    pub hidden: Vec<usize>,
    /// Outputs: classes (1 for a binary cross-entropy model), or 1 for regression.
    pub outputs: usize,
    /// Dropout after each hidden activation.
    pub dropout: f64,
    /// Hidden-layer nonlinearity.
    #[serde(default)]
    pub activation: Activation,
    /// Hidden-layer normalization.
    #[serde(default)]
    pub norm: Norm,
    /// Add each hidden layer's input to its output where the widths agree.
    #[serde(default)]
    pub residual: bool,
    /// Categorical inputs learned as embeddings (tabular).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embeddings: Vec<EmbeddingSpec>,
    /// The image the input row holds (cnn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageShape>,
    /// Output channels of each convolution block (cnn).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conv: Vec<usize>,
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            kind: ModelKind::Mlp,
            inputs: 1,
            hidden: Vec::new(),
            outputs: 1,
            dropout: 0.0,
            activation: Activation::Relu,
            norm: Norm::None,
            residual: false,
            embeddings: Vec::new(),
            image: None,
            conv: Vec::new(),
        }
    }
}

/// One row of a model summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerSummary {
    /// What the layer is, e.g. `dense 64→32 relu, batch norm, residual`.
    pub layer: String,
    /// Its output shape per row, e.g. `[32]` or `[16, 14, 14]`.
    pub output: Vec<usize>,
    /// Its trainable parameters.
    pub params: usize,
}

/// kiln's network: an input stage (categorical embeddings, or convolution blocks over an
/// image, or nothing), dense blocks, and a linear head.
#[derive(Module, Debug)]
pub struct Net<B: Backend> {
    embeddings: Vec<Embedding<B>>,
    convs: Vec<ConvBlock<B>>,
    blocks: Vec<DenseBlock<B>>,
    head: Linear<B>,
    dropout: Dropout,
    #[module(skip)]
    layout: Layout,
}

/// The parts of the architecture that are not parameters.
#[derive(Debug, Clone)]
struct Layout {
    activation: Activation,
    image: Option<ImageShape>,
    /// Input columns used as they are (all but the embedding ones).
    dense_columns: Vec<i64>,
    embedding_columns: Vec<usize>,
}

#[derive(Module, Debug)]
struct DenseBlock<B: Backend> {
    linear: Linear<B>,
    batch_norm: Option<BatchNorm<B>>,
    layer_norm: Option<LayerNorm<B>>,
    residual: bool,
}

#[derive(Module, Debug)]
struct ConvBlock<B: Backend> {
    conv: Conv2d<B>,
    batch_norm: Option<BatchNorm<B>>,
    pool: MaxPool2d,
}

impl ModelSpec {
    /// Checks the architecture.
    ///
    /// # Errors
    /// [`Error::EmptyLayer`], [`Error::Dropout`], [`Error::HiddenOnLinear`],
    /// [`Error::Architecture`].
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
        let wrong = |reason: String| Err(Error::Architecture { reason });
        if self.kind != ModelKind::Cnn && (self.image.is_some() || !self.conv.is_empty()) {
            return wrong(format!(
                "`conv` and `image` apply to cnn models, not {}",
                self.kind
            ));
        }
        if self.kind != ModelKind::Tabular && !self.embeddings.is_empty() {
            return wrong(format!(
                "embeddings apply to tabular models, not {}",
                self.kind
            ));
        }
        if let Some(e) = self
            .embeddings
            .iter()
            .find(|e| e.column >= self.inputs || e.cardinality == 0 || e.dim == 0)
        {
            return wrong(format!(
                "embedding {e:?} needs a column below {} and a nonzero cardinality and width",
                self.inputs
            ));
        }
        if self.kind == ModelKind::Cnn {
            let Some(image) = self.image else {
                return wrong("a cnn model needs the image shape".into());
            };
            if self.conv.is_empty() || self.conv.contains(&0) {
                return wrong(format!(
                    "a cnn needs nonzero conv channels, got {:?}",
                    self.conv
                ));
            }
            let pixels = image.channels * image.height * image.width;
            if pixels != self.inputs {
                return wrong(format!(
                    "the image {}×{}×{} has {pixels} values but the input has {} columns",
                    image.channels, image.height, image.width, self.inputs
                ));
            }
            let shrink = 1 << self.conv.len();
            if image.height < shrink || image.width < shrink {
                return wrong(format!(
                    "{} pooling blocks need an image of at least {shrink}×{shrink}",
                    self.conv.len()
                ));
            }
        }
        Ok(())
    }

    /// The layers with their output shapes and parameter counts.
    pub fn summary(&self) -> Vec<LayerSummary> {
        let mut rows = Vec::new();
        let mut width = self.inputs;
        if !self.embeddings.is_empty() {
            width = self.inputs - self.embeddings.len();
            for e in &self.embeddings {
                width += e.dim;
                rows.push(LayerSummary {
                    layer: format!("embedding column {}: {}→{}", e.column, e.cardinality, e.dim),
                    output: vec![e.dim],
                    params: e.cardinality * e.dim,
                });
            }
        }
        if let Some(image) = self.image {
            let (mut channels, mut height, mut w) = (image.channels, image.height, image.width);
            for &out in &self.conv {
                let norm = if self.norm == Norm::Batch { 2 * out } else { 0 };
                (height, w) = (height / 2, w / 2);
                rows.push(LayerSummary {
                    layer: format!(
                        "conv 3×3 {channels}→{out} {}{}, max-pool 2×2",
                        self.activation_name(),
                        if norm > 0 { ", batch norm" } else { "" }
                    ),
                    output: vec![out, height, w],
                    params: channels * out * 9 + out + norm,
                });
                channels = out;
            }
            width = channels * height * w;
        }
        for &out in &self.hidden {
            let norm = if self.norm == Norm::None { 0 } else { 2 * out };
            let residual = self.residual && width == out;
            rows.push(LayerSummary {
                layer: format!(
                    "dense {width}→{out} {}{}{}{}",
                    self.activation_name(),
                    match self.norm {
                        Norm::None => "",
                        Norm::Batch => ", batch norm",
                        Norm::Layer => ", layer norm",
                    },
                    if self.dropout > 0.0 {
                        format!(", dropout {}", self.dropout)
                    } else {
                        String::new()
                    },
                    if residual { ", residual" } else { "" },
                ),
                output: vec![out],
                params: width * out + out + norm,
            });
            width = out;
        }
        rows.push(LayerSummary {
            layer: format!("head {width}→{}", self.outputs),
            output: vec![self.outputs],
            params: width * self.outputs + self.outputs,
        });
        rows
    }

    fn activation_name(&self) -> &'static str {
        match self.activation {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Tanh => "tanh",
        }
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.summary().iter().map(|l| l.params).sum()
    }

    /// Builds the model with weights drawn from kiln's `seed` stream on the CPU, so every
    /// backend starts from the same values: burn's default distributions (`U(±1/√fan_in)` for
    /// linear and convolution weights and biases, `N(0, 1)` for embeddings, ones and zeros for
    /// norms), with parameter ids numbered in construction order.
    ///
    /// # Panics
    /// On a spec that [`ModelSpec::check`] refuses.
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> Net<B> {
        let mut init = Init::<B> {
            rng: kiln_core::rng::stream(seed, "model-init"),
            next_id: 0,
            device,
        };
        let embeddings = self
            .embeddings
            .iter()
            .map(|e| Embedding {
                weight: init.normal([e.cardinality, e.dim]),
            })
            .collect();
        let mut width = self.inputs - self.embeddings.len()
            + self.embeddings.iter().map(|e| e.dim).sum::<usize>();
        let mut convs = Vec::new();
        if let Some(image) = self.image {
            let (mut channels, mut height, mut w) = (image.channels, image.height, image.width);
            for &out in &self.conv {
                convs.push(ConvBlock {
                    conv: init.conv(channels, out),
                    batch_norm: (self.norm == Norm::Batch).then(|| init.batch_norm(out)),
                    pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
                });
                (channels, height, w) = (out, height / 2, w / 2);
            }
            width = channels * height * w;
        }
        let mut blocks = Vec::new();
        for &out in &self.hidden {
            blocks.push(DenseBlock {
                linear: init.linear(width, out),
                batch_norm: (self.norm == Norm::Batch).then(|| init.batch_norm(out)),
                layer_norm: (self.norm == Norm::Layer).then(|| init.layer_norm(out)),
                residual: self.residual && width == out,
            });
            width = out;
        }
        let head = init.linear(width, self.outputs);
        let embedding_columns: Vec<usize> = self.embeddings.iter().map(|e| e.column).collect();
        Net {
            embeddings,
            convs,
            blocks,
            head,
            dropout: DropoutConfig::new(self.dropout).init(),
            layout: Layout {
                activation: self.activation,
                image: self.image,
                dense_columns: (0..self.inputs)
                    .filter(|c| !embedding_columns.contains(c))
                    .map(|c| i64::try_from(c).expect("column counts fit in i64"))
                    .collect(),
                embedding_columns,
            },
        }
    }
}

/// Draws parameters from kiln's stream and numbers their ids.
struct Init<'a, B: Backend> {
    rng: ChaCha8Rng,
    next_id: u64,
    device: &'a B::Device,
}

impl<B: Backend> Init<'_, B> {
    fn id(&mut self) -> ParamId {
        self.next_id += 1;
        ParamId::from(self.next_id - 1)
    }

    fn param<const D: usize>(
        &mut self,
        values: Vec<f32>,
        shape: [usize; D],
    ) -> Param<Tensor<B, D>> {
        let tensor = Tensor::from_data(TensorData::new(values, shape), self.device);
        // Trainable like `Param::from_tensor`, with a positional id.
        Param::initialized(self.id(), tensor.require_grad())
    }

    fn uniform<const D: usize>(&mut self, shape: [usize; D], fan_in: usize) -> Param<Tensor<B, D>> {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        // Fan-ins are small; the bound is an f32 like the weights.
        let bound = (1.0 / (fan_in as f64).sqrt()) as f32;
        let values = (0..shape.iter().product())
            .map(|_| self.rng.random_range(-bound..bound))
            .collect();
        self.param(values, shape)
    }

    fn normal(&mut self, shape: [usize; 2]) -> Param<Tensor<B, 2>> {
        let normal = rand_distr::StandardNormal;
        let values = (0..shape[0] * shape[1])
            .map(|_| self.rng.sample::<f32, _>(normal))
            .collect();
        self.param(values, shape)
    }

    fn constant(&mut self, n: usize, value: f32) -> Param<Tensor<B, 1>> {
        self.param(vec![value; n], [n])
    }

    fn linear(&mut self, fan_in: usize, fan_out: usize) -> Linear<B> {
        Linear {
            weight: self.uniform([fan_in, fan_out], fan_in),
            bias: Some(self.uniform([fan_out], fan_in)),
        }
    }

    fn conv(&mut self, channels_in: usize, channels_out: usize) -> Conv2d<B> {
        let mut conv = Conv2dConfig::new([channels_in, channels_out], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init(self.device);
        conv.weight = self.uniform([channels_out, channels_in, 3, 3], channels_in * 9);
        conv.bias = Some(self.uniform([channels_out], channels_in * 9));
        conv
    }

    fn batch_norm(&mut self, n: usize) -> BatchNorm<B> {
        let mut norm = BatchNormConfig::new(n).init(self.device);
        norm.gamma = self.constant(n, 1.0);
        norm.beta = self.constant(n, 0.0);
        norm.running_mean = RunningState::with_id(self.id(), Tensor::zeros([n], self.device));
        norm.running_var = RunningState::with_id(self.id(), Tensor::ones([n], self.device));
        norm
    }

    fn layer_norm(&mut self, n: usize) -> LayerNorm<B> {
        let mut norm = LayerNormConfig::new(n).init(self.device);
        norm.gamma = self.constant(n, 1.0);
        norm.beta = Some(self.constant(n, 0.0));
        norm
    }
}

impl<B: Backend> DenseBlock<B> {
    fn forward(&self, x: Tensor<B, 2>, activation: Activation, dropout: &Dropout) -> Tensor<B, 2> {
        let mut y = self.linear.forward(x.clone());
        if let Some(norm) = &self.batch_norm {
            y = norm.forward(y);
        }
        if let Some(norm) = &self.layer_norm {
            y = norm.forward(y);
        }
        let y = dropout.forward(activation.apply(y));
        if self.residual { x + y } else { y }
    }
}

impl<B: Backend> ConvBlock<B> {
    fn forward(&self, x: Tensor<B, 4>, activation: Activation) -> Tensor<B, 4> {
        let mut y = self.conv.forward(x);
        if let Some(norm) = &self.batch_norm {
            y = norm.forward(y);
        }
        self.pool.forward(activation.apply(y))
    }
}

impl<B: Backend> Net<B> {
    /// Logits (classification; one logit for a binary cross-entropy model) or the
    /// standardized value (regression).
    ///
    /// # Shapes
    /// - input: `[batch, inputs]`; embedding columns hold category indices `0..cardinality`
    /// - output: `[batch, outputs]`
    pub fn forward(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        let activation = self.layout.activation;
        let x = self
            .blocks
            .iter()
            .fold(self.input_features(input), |x, block| {
                block.forward(x, activation, &self.dropout)
            });
        self.head.forward(x)
    }

    /// Width of the output.
    pub fn outputs(&self) -> usize {
        self.head.weight.dims()[1]
    }

    /// The input stage: convolution blocks over the image, or embeddings concatenated with the
    /// dense columns, or the input as it is.
    fn input_features(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        let [batch, _] = input.dims();
        if let Some(image) = self.layout.image {
            let x = input.reshape([batch, image.channels, image.height, image.width]);
            let x = self
                .convs
                .iter()
                .fold(x, |x, block| block.forward(x, self.layout.activation));
            return x.flatten(1, 3);
        }
        if self.embeddings.is_empty() {
            return input;
        }
        let dense_columns = Tensor::<B, 1, Int>::from_data(
            TensorData::new(
                self.layout.dense_columns.clone(),
                [self.layout.dense_columns.len()],
            ),
            &input.device(),
        );
        let mut parts = vec![input.clone().select(1, dense_columns)];
        for (embedding, &column) in self.embeddings.iter().zip(&self.layout.embedding_columns) {
            // Indices are exact in f32 (cardinalities are far below 2^24).
            let codes = input.clone().narrow(1, column, 1).int();
            let [_, dim] = embedding.weight.dims();
            parts.push(embedding.forward(codes).reshape([batch, dim]));
        }
        Tensor::cat(parts, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::ModuleVisitor;

    fn spec(kind: ModelKind, hidden: Vec<usize>) -> ModelSpec {
        ModelSpec {
            kind,
            inputs: 5,
            hidden,
            outputs: 3,
            ..ModelSpec::default()
        }
    }

    /// Counts elements of parameters that take gradients (running statistics do not).
    struct Trainable(usize);
    impl<B: Backend> ModuleVisitor<B> for Trainable {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if param.is_require_grad() {
                self.0 += param.val().shape().num_elements();
            }
        }
    }

    fn every_variant() -> Vec<ModelSpec> {
        let mut specs = vec![
            spec(ModelKind::Linear, vec![]),
            spec(ModelKind::Mlp, vec![16, 8]),
        ];
        for activation in [Activation::Gelu, Activation::Silu, Activation::Tanh] {
            for norm in [Norm::None, Norm::Batch, Norm::Layer] {
                specs.push(ModelSpec {
                    activation,
                    norm,
                    residual: true,
                    dropout: 0.1,
                    ..spec(ModelKind::Mlp, vec![8, 8, 4])
                });
            }
        }
        specs.push(ModelSpec {
            embeddings: vec![
                EmbeddingSpec {
                    column: 1,
                    cardinality: 4,
                    dim: 3,
                },
                EmbeddingSpec {
                    column: 4,
                    cardinality: 7,
                    dim: 2,
                },
            ],
            ..spec(ModelKind::Tabular, vec![8])
        });
        for norm in [Norm::None, Norm::Batch] {
            specs.push(ModelSpec {
                inputs: 2 * 8 * 6,
                image: Some(ImageShape {
                    channels: 2,
                    height: 8,
                    width: 6,
                }),
                conv: vec![4, 6],
                norm,
                ..spec(ModelKind::Cnn, vec![10])
            });
        }
        specs
    }

    #[test]
    fn every_variant_runs_and_counts_its_parameters() {
        let device = burn::backend::ndarray::NdArrayDevice::default();
        for s in every_variant() {
            s.check().unwrap();
            let model = s.init::<Autodiff<NdArray>>(1, &device);
            // Varied values: identical rows would make batch norm's output constant.
            #[allow(clippy::cast_precision_loss)]
            let values: Vec<f32> = (0..4 * s.inputs)
                .map(|i| (i * 37 % 11) as f32 / 10.0)
                .collect();
            let mut input = Tensor::<Autodiff<NdArray>, 2>::from_data(
                TensorData::new(values, [4, s.inputs]),
                &device,
            );
            if let Some(e) = s.embeddings.first() {
                // Indices, including the last (unknown) slot.
                let codes = Tensor::from_data(
                    TensorData::new(vec![0.0_f32, 1.0, 2.0, 3.0], [4, 1]),
                    &device,
                );
                input = input.slice_assign([0..4, e.column..e.column + 1], codes);
            }
            let out = model.forward(input);
            assert_eq!(out.dims(), [4, 3], "{s:?}");
            let values = out.clone().into_data().to_vec::<f32>().unwrap();
            assert!(values.iter().all(|v| v.is_finite()), "{s:?}");
            let mut trainable = Trainable(0);
            model.visit(&mut trainable);
            assert_eq!(trainable.0, s.num_params(), "{s:?}");
            assert_eq!(s.summary().last().unwrap().output, vec![3]);
            // Gradients reach the first layer.
            let grads = out.sum().backward();
            let first = if let Some(e) = model.embeddings.first() {
                e.weight.grad(&grads).unwrap().abs().sum()
            } else if let Some(c) = model.convs.first() {
                c.conv.weight.grad(&grads).unwrap().abs().sum()
            } else if let Some(b) = model.blocks.first() {
                b.linear.weight.grad(&grads).unwrap().abs().sum()
            } else {
                model.head.weight.grad(&grads).unwrap().abs().sum()
            };
            assert!(first.into_scalar() > 0.0, "{s:?}");
        }
    }

    #[test]
    fn init_is_seeded_and_the_same_on_every_call() {
        let device = burn::backend::ndarray::NdArrayDevice::default();
        for s in every_variant() {
            let input = Tensor::<NdArray, 2>::zeros([2, s.inputs], &device);
            let a = s.init::<NdArray>(1, &device).forward(input.clone());
            let b = s.init::<NdArray>(1, &device).forward(input.clone());
            let c = s.init::<NdArray>(2, &device).forward(input);
            assert_eq!(a.to_data(), b.to_data(), "{s:?}");
            assert_ne!(a.to_data(), c.to_data(), "{s:?}");
        }
    }

    #[test]
    fn residual_applies_only_where_widths_agree() {
        let s = ModelSpec {
            residual: true,
            ..spec(ModelKind::Mlp, vec![5, 8, 8])
        };
        let layers: Vec<String> = s.summary().into_iter().map(|l| l.layer).collect();
        assert!(layers[0].ends_with("residual"), "{layers:?}");
        assert!(!layers[1].ends_with("residual"), "{layers:?}");
        assert!(layers[2].ends_with("residual"), "{layers:?}");
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
        let image = Some(ImageShape {
            channels: 1,
            height: 2,
            width: 2,
        });
        let cases = [
            ModelSpec {
                conv: vec![4],
                ..spec(ModelKind::Mlp, vec![])
            },
            ModelSpec {
                conv: vec![4],
                ..spec(ModelKind::Cnn, vec![])
            },
            ModelSpec {
                inputs: 4,
                image,
                conv: vec![4, 4],
                ..spec(ModelKind::Cnn, vec![])
            },
            ModelSpec {
                embeddings: vec![EmbeddingSpec {
                    column: 5,
                    cardinality: 2,
                    dim: 2,
                }],
                ..spec(ModelKind::Tabular, vec![])
            },
        ];
        for s in cases {
            assert!(
                matches!(s.check(), Err(Error::Architecture { .. })),
                "{s:?}"
            );
        }
    }

    #[test]
    fn embedding_width_follows_the_rule_of_thumb() {
        assert_eq!(EmbeddingSpec::default_dim(2), 2);
        assert_eq!(EmbeddingSpec::default_dim(10), 6);
        assert_eq!(EmbeddingSpec::default_dim(1_000_000), 600);
    }
}
