//! kiln's models, generic over the burn backend.
//!
//! Parameters are initialized by kiln from its own seeded stream on the CPU and then moved to
//! the device, with parameter ids derived from their position. So the same seed gives the same
//! starting weights on every backend (which is what lets backends be compared), and two runs
//! give byte-identical records (burn's own ids are random per process).
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::module::Module;
//! use kiln_models::{ModelKind, ModelSpec};
//!
//! let spec = ModelSpec { kind: ModelKind::Mlp, inputs: 4, hidden: vec![8], outputs: 3, ..ModelSpec::default() };
//! let model = spec.init::<NdArray>(42, &Default::default());
//! assert_eq!(model.num_params(), 4 * 8 + 8 + 8 * 3 + 3);
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod hash;
mod net;

pub use error::{Error, Result};
pub use hash::parameter_hash;
pub use net::{
    Activation, EmbeddingSpec, ImageShape, LayerSummary, ModelKind, ModelSpec, Net, Norm,
};
