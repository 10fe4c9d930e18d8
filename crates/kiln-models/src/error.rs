/// Errors building models.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A layer with no units.
    #[error("model layer {index} has zero units")]
    EmptyLayer {
        /// 0-based position in `hidden`.
        index: usize,
    },
    /// Dropout outside [0, 1).
    #[error("dropout must be in [0, 1), got {dropout}")]
    Dropout {
        /// The value given.
        dropout: f64,
    },
    /// A linear model given hidden layers.
    #[error("a {kind} model has no hidden layers, but hidden = {hidden:?} was given")]
    HiddenOnLinear {
        /// The model kind.
        kind: ModelKind,
        /// The layers given.
        hidden: Vec<usize>,
    },
    /// Parts of the spec that do not fit together.
    #[error("model: {reason}")]
    Architecture {
        /// What is wrong.
        reason: String,
    },
}

use crate::ModelKind;

/// Result with kiln-models' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
