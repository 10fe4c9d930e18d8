//! The dense numeric path (impute, clip, scale) on the device: tensor ops on any backend, one
//! fused CubeCL kernel on the cube backends. [`DenseNumericOps`] picks the implementation by
//! backend type, so callers write `params.apply(x)` and get the kernel on wgpu.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use kiln_core::Matrix;
use kiln_core::backend::{FlexBackend, NdArrayBackend, WgpuBackend};
use kiln_data::{ColumnRef, Table};
use kiln_kernels::PARAM_ROWS;

use crate::{FittedColumn, FittedFeatures, Result};

/// The fitted parameters of numeric columns that are only imputed, clipped and scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseNumeric {
    columns: Vec<String>,
    /// `PARAM_ROWS × columns`: fill, lower, upper, center, scale.
    params: Vec<f32>,
}

impl DenseNumeric {
    /// The dense parameters of `features`, or `None` when a column is not a plain numeric one
    /// (other types, log1p, power, bins or a missing indicator).
    pub fn of(features: &FittedFeatures) -> Option<Self> {
        let numeric: Vec<_> = features
            .columns
            .iter()
            .map(|c| match c {
                FittedColumn::Numeric(n) if n.is_dense() => Some(n),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let d = numeric.len();
        let mut params = vec![0.0_f32; PARAM_ROWS * d];
        #[allow(clippy::cast_possible_truncation)] // The device path runs in f32.
        for (j, n) in numeric.iter().enumerate() {
            params[j] = n.fill as f32;
            params[d + j] = n.lower.map_or(f32::NEG_INFINITY, |v| v as f32);
            params[2 * d + j] = n.upper.map_or(f32::INFINITY, |v| v as f32);
            params[3 * d + j] = n.center as f32;
            params[4 * d + j] = n.scale as f32;
        }
        Some(Self {
            columns: numeric.iter().map(|n| n.name.clone()).collect(),
            params,
        })
    }

    /// The input columns, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The raw values of `rows` as f32, NaN where missing: the input of [`DenseNumeric::apply`].
    ///
    /// # Errors
    /// [`crate::Error::Data`] when a column is not in `table`.
    pub fn raw(&self, table: &Table, rows: &[usize]) -> Result<Matrix> {
        let d = self.columns.len();
        let mut data = vec![f32::NAN; rows.len() * d];
        for (j, name) in self.columns.iter().enumerate() {
            let ColumnRef::Numeric(values) = table.require(name)? else {
                unreachable!("dense columns were fitted as numeric")
            };
            for (i, &r) in rows.iter().enumerate() {
                if !arrow_array::Array::is_null(values, r) {
                    #[allow(clippy::cast_possible_truncation)] // The device path runs in f32.
                    let v = values.value(r) as f32;
                    data[i * d + j] = v;
                }
            }
        }
        Ok(Matrix::new(data, rows.len(), d))
    }

    fn param_rows<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(self.params.clone(), [PARAM_ROWS, self.columns.len()]),
            device,
        )
    }

    /// The reference: burn tensor ops on any backend.
    pub fn reference<B: Backend>(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, d] = x.dims();
        let params = self.param_rows::<B>(&x.device());
        let row = |i: usize| params.clone().slice([i..i + 1, 0..d]).expand([n, d]);
        let missing = x.clone().is_nan();
        x.mask_where(missing, row(0))
            .max_pair(row(1))
            .min_pair(row(2))
            .sub(row(3))
            .div(row(4))
    }

    /// The transform on `B`'s fastest path.
    pub fn apply<B: DenseNumericOps>(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        B::impute_clip_scale(self, x)
    }
}

/// Backends' implementation of the dense numeric path.
pub trait DenseNumericOps: Backend {
    /// `(clamp(isnan(x) ? fill : x, lower, upper) - center) / scale` per column.
    fn impute_clip_scale(params: &DenseNumeric, x: Tensor<Self, 2>) -> Tensor<Self, 2>;
}

impl DenseNumericOps for NdArrayBackend {
    fn impute_clip_scale(params: &DenseNumeric, x: Tensor<Self, 2>) -> Tensor<Self, 2> {
        params.reference(x)
    }
}

impl DenseNumericOps for FlexBackend {
    fn impute_clip_scale(params: &DenseNumeric, x: Tensor<Self, 2>) -> Tensor<Self, 2> {
        params.reference(x)
    }
}

/// One fused kernel instead of the reference's nine tensor ops (and their intermediates).
impl DenseNumericOps for WgpuBackend {
    fn impute_clip_scale(params: &DenseNumeric, x: Tensor<Self, 2>) -> Tensor<Self, 2> {
        let p = params.param_rows::<Self>(&x.device());
        let out = kiln_kernels::impute_clip_scale(
            x.into_primitive().tensor(),
            p.into_primitive().tensor(),
        );
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }
}
