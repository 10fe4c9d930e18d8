use arrow_array::Array;
use kiln_data::{ColumnRef, ColumnType, Table};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// One of a finite set of classes.
    Classification,
    /// A real number.
    Regression,
}

impl TargetKind {
    /// The natural task for a column type: numeric columns regress, others classify.
    pub fn infer(column_type: ColumnType) -> Self {
        match column_type {
            ColumnType::Numeric | ColumnType::Datetime => TargetKind::Regression,
            ColumnType::Categorical | ColumnType::Boolean | ColumnType::Text => {
                TargetKind::Classification
            }
        }
    }
}

/// The fitted target encoding: label indices for classes, a standardized value for regression
/// (inverted on predict).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FittedTarget {
    /// Classes in label-index order.
    Classification {
        /// Target column.
        name: String,
        /// The classes, sorted (numerically when all are numbers).
        classes: Vec<String>,
    },
    /// `y' = (y - mean) / std`.
    Regression {
        /// Target column.
        name: String,
        /// Train mean.
        mean: f64,
        /// Train standard deviation (1 for a constant target).
        std: f64,
    },
}

/// Encoded targets for a set of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Targets {
    /// Class indices.
    Classes(Vec<i64>),
    /// Standardized values.
    Values(Vec<f32>),
}

impl Targets {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(v) => v.len(),
            Targets::Values(v) => v.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The targets of `rows`, in that order.
    ///
    /// # Panics
    /// When a row is out of range (a caller bug).
    #[must_use]
    pub fn take(&self, rows: &[usize]) -> Targets {
        match self {
            Targets::Classes(v) => Targets::Classes(rows.iter().map(|&r| v[r]).collect()),
            Targets::Values(v) => Targets::Values(rows.iter().map(|&r| v[r]).collect()),
        }
    }
}

impl FittedTarget {
    /// Learns the encoding from `train_rows` (which must all have a target).
    ///
    /// # Errors
    /// [`Error::TargetType`] for a non-numeric regression target; [`Error::Data`] when the
    /// column is missing; [`Error::NoTrainingRows`].
    pub fn fit(table: &Table, name: &str, kind: TargetKind, train_rows: &[usize]) -> Result<Self> {
        if train_rows.is_empty() {
            return Err(Error::NoTrainingRows);
        }
        let column = table.require(name)?;
        Ok(match kind {
            TargetKind::Classification => {
                let mut classes: Vec<String> =
                    train_rows.iter().filter_map(|&r| column.text(r)).collect();
                classes.sort_unstable();
                classes.dedup();
                FittedTarget::classes(name, classes, matches!(column, ColumnRef::Numeric(_)))
            }
            TargetKind::Regression => {
                let ColumnRef::Numeric(values) = column else {
                    return Err(Error::TargetType {
                        column: name.to_owned(),
                        found: table
                            .schema()
                            .column(name)
                            .map_or(ColumnType::Categorical, |c| c.column_type),
                        task: "regression",
                    });
                };
                let present: Vec<f64> = train_rows
                    .iter()
                    .filter(|&&r| !values.is_null(r))
                    .map(|&r| values.value(r))
                    .collect();
                let (mean, var) = crate::numeric::mean_variance(&present);
                FittedTarget::regression(name, mean, var)
            }
        })
    }

    /// A classification target over the distinct, sorted `classes`, ordered numerically when
    /// the column is numeric.
    pub(crate) fn classes(name: &str, mut classes: Vec<String>, numeric: bool) -> Self {
        if numeric {
            classes.sort_by(|a, b| {
                let (x, y): (f64, f64) = (a.parse().unwrap_or(0.0), b.parse().unwrap_or(0.0));
                x.total_cmp(&y)
            });
        }
        FittedTarget::Classification {
            name: name.to_owned(),
            classes,
        }
    }

    /// A regression target of the train mean and population variance.
    pub(crate) fn regression(name: &str, mean: f64, var: f64) -> Self {
        FittedTarget::Regression {
            name: name.to_owned(),
            mean,
            std: if var > 0.0 { var.sqrt() } else { 1.0 },
        }
    }

    /// The target column's name.
    pub fn name(&self) -> &str {
        match self {
            FittedTarget::Classification { name, .. } | FittedTarget::Regression { name, .. } => {
                name
            }
        }
    }

    /// Encodes the targets of `rows`.
    ///
    /// # Errors
    /// [`Error::MissingTarget`] or [`Error::UnknownClass`], naming the line.
    ///
    /// # Panics
    /// Never: class indices are below `classes.len()`, which fits an `i64`.
    pub fn encode(&self, table: &Table, rows: &[usize]) -> Result<Targets> {
        let column = table.require(self.name())?;
        let missing = |r: usize| Error::MissingTarget {
            path: table.path().to_path_buf(),
            line: table.line_of(r),
            column: self.name().to_owned(),
        };
        match self {
            FittedTarget::Classification { classes, name } => rows
                .iter()
                .map(|&r| {
                    let label = column.text(r).ok_or_else(|| missing(r))?;
                    let index = classes.iter().position(|c| *c == label).ok_or_else(|| {
                        Error::UnknownClass {
                            path: table.path().to_path_buf(),
                            line: table.line_of(r),
                            column: name.clone(),
                            value: label.clone(),
                            known: classes.join(", "),
                        }
                    })?;
                    Ok(i64::try_from(index).expect("class count fits i64"))
                })
                .collect::<Result<_>>()
                .map(Targets::Classes),
            FittedTarget::Regression { mean, std, .. } => {
                let ColumnRef::Numeric(values) = column else {
                    unreachable!("a regression target was fitted on a numeric column")
                };
                rows.iter()
                    .map(|&r| {
                        if values.is_null(r) {
                            return Err(missing(r));
                        }
                        #[allow(clippy::cast_possible_truncation)] // Model targets are f32.
                        Ok(((values.value(r) - mean) / std) as f32)
                    })
                    .collect::<Result<_>>()
                    .map(Targets::Values)
            }
        }
    }

    /// Maps a standardized regression output back to the target's units.
    pub fn decode_value(&self, standardized: f32) -> f64 {
        match self {
            FittedTarget::Regression { mean, std, .. } => {
                f64::from(standardized).mul_add(*std, *mean)
            }
            FittedTarget::Classification { .. } => f64::from(standardized),
        }
    }
}
