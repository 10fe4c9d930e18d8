//! A content hash of a model's parameter values, for provenance and `kiln reproduce`.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::Net;

struct ParameterHasher(blake3::Hasher);

impl<B: Backend> ModuleVisitor<B> for ParameterHasher {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        for dim in tensor.dims() {
            self.0.update(&(dim as u64).to_le_bytes());
        }
        // f32 whatever the training precision: the bundle stores f32.
        for value in tensor.into_data().convert::<f32>().iter::<f32>() {
            self.0.update(&value.to_le_bytes());
        }
    }
}

/// blake3 of every float parameter's shape and f32 values, in module order. Two models have
/// the same hash exactly when their weights are equal, whatever their parameter ids (which a
/// record file also holds, and which differ between processes).
pub fn parameter_hash<B: Backend>(net: &Net<B>) -> String {
    let mut hasher = ParameterHasher(blake3::Hasher::new());
    net.visit(&mut hasher);
    hasher.0.finalize().to_hex().to_string()
}
