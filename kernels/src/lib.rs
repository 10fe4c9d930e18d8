//! CubeCL kernels for kiln's cube backends (wgpu, cuda).
//!
//! Empty for now: the fused feature-transform kernel (impute + scale + clip) lands with the
//! transforms work, together with the tensor-op reference path its tests compare against.
#![cfg_attr(docsrs, feature(doc_cfg))]
