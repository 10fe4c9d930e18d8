//! CubeCL kernels for kiln's cube backends (wgpu, cuda).
//!
//! [`impute_clip_scale`] is the dense numeric feature path (fill missing values, clip, scale)
//! fused into one pass over the matrix; kiln-transform's tensor-op path is the reference its
//! tests compare against.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod numeric;

pub use numeric::{PARAM_ROWS, impute_clip_scale};
