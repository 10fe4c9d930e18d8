//! A dense row-major f32 matrix: the hand-off between feature transforms and training.

use serde::{Deserialize, Serialize};

/// Dense row-major `rows × cols` f32 values.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Matrix {
    /// The values, row after row.
    pub data: Vec<f32>,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
}

impl Matrix {
    /// Wraps `data` as `rows × cols`.
    ///
    /// # Panics
    /// When `data.len() != rows * cols` (a caller bug).
    pub fn new(data: Vec<f32>, rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "matrix data must hold rows * cols values"
        );
        Self { data, rows, cols }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows `rows`, in that order.
    ///
    /// # Panics
    /// When a row is out of range (a caller bug).
    #[must_use]
    pub fn take_rows(&self, rows: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(rows.len() * self.cols);
        for &r in rows {
            data.extend_from_slice(self.row(r));
        }
        Matrix::new(data, rows.len(), self.cols)
    }
}
