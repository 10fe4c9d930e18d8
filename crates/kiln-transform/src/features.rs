use std::collections::BTreeMap;

use arrow_array::Array;
use kiln_core::Matrix;
use kiln_data::{ColumnRef, ColumnSchema, ColumnType, Schema, Table};
use serde::{Deserialize, Serialize};

use crate::{Error, ImageColumnsError, Result};

/// How numeric gaps are filled (from the train rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impute {
    /// The train median.
    #[default]
    Median,
    /// The train mean.
    Mean,
}

/// How numeric columns are scaled (with train statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Subtract the mean, divide by the (population) standard deviation.
    #[default]
    Standard,
    /// Leave values as they are.
    None,
}

/// Transforms for numeric columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NumericConfig {
    /// Gap filling.
    pub impute: Impute,
    /// Scaling.
    pub scale: Scale,
}

/// Transforms for categorical columns: most-frequent imputation, then one-hot encoding with a
/// final "unknown" slot for values not seen (often enough) in training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CategoricalConfig {
    /// Values seen fewer times than this in the train rows go to the unknown slot.
    pub min_frequency: usize,
}

impl Default for CategoricalConfig {
    fn default() -> Self {
        Self { min_frequency: 1 }
    }
}

/// How a categorical column reaches the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoricalEncoding {
    /// One 0/1 column per category, plus the unknown slot.
    #[default]
    OneHot,
    /// One column holding the category's index (the unknown slot is the last index), for a
    /// model that learns an embedding per column.
    Index,
}

/// Per-type transform settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureConfig {
    /// Numeric columns.
    pub numeric: NumericConfig,
    /// Categorical columns.
    pub categorical: CategoricalConfig,
}

/// Configured, unfitted transforms. It cannot transform: [`FeaturePlan::fit`] on the train
/// rows returns the [`FittedFeatures`] that can.
#[derive(Debug, Clone)]
pub struct FeaturePlan {
    columns: Vec<ColumnSchema>,
    config: FeatureConfig,
    categorical_encoding: CategoricalEncoding,
    image_channels: Option<usize>,
}

/// One fitted input column and what it learned from the train rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FittedColumn {
    /// `(value or fill - center) / scale`, one output.
    Numeric {
        /// Column name.
        name: String,
        /// Replaces missing values.
        fill: f64,
        /// Subtracted (the train mean; 0 without scaling).
        center: f64,
        /// Divides (the train std; 1 without scaling or for a constant column).
        scale: f64,
    },
    /// 0 or 1, one output.
    Boolean {
        /// Column name.
        name: String,
        /// Replaces missing values (the train majority).
        fill: bool,
    },
    /// One-hot over `categories` plus a last slot for anything else, or the index of that
    /// slot.
    Categorical {
        /// Column name.
        name: String,
        /// Replaces missing values (the train mode).
        fill: String,
        /// Known categories, sorted.
        categories: Vec<String>,
        /// One-hot or index.
        #[serde(default)]
        encoding: CategoricalEncoding,
    },
}

impl FittedColumn {
    /// The input column's name.
    pub fn name(&self) -> &str {
        match self {
            FittedColumn::Numeric { name, .. }
            | FittedColumn::Boolean { name, .. }
            | FittedColumn::Categorical { name, .. } => name,
        }
    }

    /// How many output columns it produces.
    pub fn width(&self) -> usize {
        match self {
            FittedColumn::Categorical {
                categories,
                encoding: CategoricalEncoding::OneHot,
                ..
            } => categories.len() + 1,
            FittedColumn::Numeric { .. }
            | FittedColumn::Boolean { .. }
            | FittedColumn::Categorical {
                encoding: CategoricalEncoding::Index,
                ..
            } => 1,
        }
    }
}

/// Fitted transforms: turn table rows into dense model inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedFeatures {
    /// The input columns in output order.
    pub columns: Vec<FittedColumn>,
}

impl FeaturePlan {
    /// Plans transforms for every schema column except `exclude` (the target, ids …).
    pub fn new(schema: &Schema, exclude: &[&str], config: FeatureConfig) -> Self {
        let columns = schema
            .columns
            .iter()
            .filter(|c| !exclude.contains(&c.name.as_str()))
            .cloned()
            .collect();
        Self {
            columns,
            config,
            categorical_encoding: CategoricalEncoding::OneHot,
            image_channels: None,
        }
    }

    /// Encodes categorical columns as indices for learned embeddings instead of one-hot.
    #[must_use]
    pub fn categorical_as_index(mut self) -> Self {
        self.categorical_encoding = CategoricalEncoding::Index;
        self
    }

    /// Treats the numeric features as the pixels of an image with `channels` channels, stored
    /// channel-major: each channel is standardized with one mean and standard deviation over
    /// all its pixels in the train rows (per-pixel statistics would blow up rare border
    /// pixels).
    #[must_use]
    pub fn image(mut self, channels: usize) -> Self {
        self.image_channels = Some(channels);
        self
    }

    /// Learns every column's parameters from `train_rows` of `table`, and from nothing else.
    ///
    /// # Errors
    /// [`Error::NoTrainingRows`]; [`Error::Data`] when a planned column is not in `table`.
    pub fn fit(&self, table: &Table, train_rows: &[usize]) -> Result<FittedFeatures> {
        if train_rows.is_empty() {
            return Err(Error::NoTrainingRows);
        }
        let columns = self
            .columns
            .iter()
            .map(|column| {
                let name = column.name.clone();
                Ok(match (column.column_type, table.require(&column.name)?) {
                    (ColumnType::Numeric, ColumnRef::Numeric(values)) => {
                        let present: Vec<f64> = train_rows
                            .iter()
                            .filter(|&&r| !values.is_null(r))
                            .map(|&r| values.value(r))
                            .collect();
                        let fill = match self.config.numeric.impute {
                            Impute::Median => median(present.clone()),
                            Impute::Mean => mean(&present),
                        };
                        let filled: Vec<f64> = train_rows
                            .iter()
                            .map(|&r| {
                                if values.is_null(r) {
                                    fill
                                } else {
                                    values.value(r)
                                }
                            })
                            .collect();
                        let (center, scale) = match self.config.numeric.scale {
                            Scale::Standard => {
                                let m = mean(&filled);
                                let var = mean(
                                    &filled.iter().map(|v| (v - m).powi(2)).collect::<Vec<_>>(),
                                );
                                (m, if var > 0.0 { var.sqrt() } else { 1.0 })
                            }
                            Scale::None => (0.0, 1.0),
                        };
                        FittedColumn::Numeric {
                            name,
                            fill,
                            center,
                            scale,
                        }
                    }
                    (ColumnType::Boolean, ColumnRef::Boolean(values)) => {
                        let trues = train_rows
                            .iter()
                            .filter(|&&r| !values.is_null(r) && values.value(r))
                            .count();
                        let falses = train_rows
                            .iter()
                            .filter(|&&r| !values.is_null(r) && !values.value(r))
                            .count();
                        FittedColumn::Boolean {
                            name,
                            fill: trues > falses,
                        }
                    }
                    (_, values) => {
                        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                        for &r in train_rows {
                            if let Some(v) = values.text(r) {
                                *counts.entry(v).or_default() += 1;
                            }
                        }
                        // Most frequent; ties go to the first in sorted order (BTreeMap order).
                        let fill = counts
                            .iter()
                            .fold(None::<(&String, usize)>, |best, (v, &n)| match best {
                                Some((_, m)) if m >= n => best,
                                _ => Some((v, n)),
                            })
                            .map(|(v, _)| v.clone())
                            .unwrap_or_default();
                        let categories = counts
                            .into_iter()
                            .filter(|(_, n)| *n >= self.config.categorical.min_frequency)
                            .map(|(v, _)| v)
                            .collect();
                        FittedColumn::Categorical {
                            name,
                            fill,
                            categories,
                            encoding: self.categorical_encoding,
                        }
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut fitted = FittedFeatures { columns };
        if let Some(channels) = self.image_channels {
            fitted.pool_channels(channels, table, train_rows)?;
        }
        Ok(fitted)
    }
}

impl FittedFeatures {
    /// Gives every pixel column of a channel the channel's train mean and standard deviation.
    fn pool_channels(
        &mut self,
        channels: usize,
        table: &Table,
        train_rows: &[usize],
    ) -> Result<()> {
        let non_numeric: Vec<String> = self
            .columns
            .iter()
            .filter(|c| !matches!(c, FittedColumn::Numeric { .. }))
            .map(|c| c.name().to_owned())
            .collect();
        let pixels = self.columns.len();
        if !non_numeric.is_empty() || channels == 0 || !pixels.is_multiple_of(channels) {
            return Err(ImageColumnsError {
                channels,
                columns: pixels - non_numeric.len(),
                non_numeric,
            }
            .into());
        }
        let per_channel = pixels / channels;
        for channel in self.columns.chunks_mut(per_channel) {
            let (mut sum, mut sum_sq, mut n) = (0.0_f64, 0.0_f64, 0.0_f64);
            for column in channel.iter() {
                let FittedColumn::Numeric { name, fill, .. } = column else {
                    unreachable!("checked numeric above")
                };
                let ColumnRef::Numeric(values) = table.require(name)? else {
                    unreachable!("tables are conformed to the fitted schema")
                };
                for &r in train_rows {
                    let x = if values.is_null(r) {
                        *fill
                    } else {
                        values.value(r)
                    };
                    sum += x;
                    sum_sq += x * x;
                    n += 1.0;
                }
            }
            let mean = sum / n;
            let var = mean.mul_add(-mean, sum_sq / n).max(0.0);
            for column in channel {
                if let FittedColumn::Numeric { center, scale, .. } = column {
                    *center = mean;
                    *scale = if var > 0.0 { var.sqrt() } else { 1.0 };
                }
            }
        }
        Ok(())
    }

    /// Positions and cardinalities (categories plus the unknown slot) of the output columns
    /// that hold category indices.
    pub fn index_columns(&self) -> Vec<(usize, usize)> {
        let mut offset = 0;
        let mut found = Vec::new();
        for column in &self.columns {
            if let FittedColumn::Categorical {
                categories,
                encoding: CategoricalEncoding::Index,
                ..
            } = column
            {
                found.push((offset, categories.len() + 1));
            }
            offset += column.width();
        }
        found
    }

    /// Number of output columns.
    pub fn width(&self) -> usize {
        self.columns.iter().map(FittedColumn::width).sum()
    }

    /// A name for every output column (`column` or `column=value`, `column=<other>`).
    pub fn output_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .flat_map(|c| match c {
                FittedColumn::Categorical {
                    name,
                    categories,
                    encoding: CategoricalEncoding::OneHot,
                    ..
                } => categories
                    .iter()
                    .map(|v| format!("{name}={v}"))
                    .chain(std::iter::once(format!("{name}=<other>")))
                    .collect(),
                _ => vec![c.name().to_owned()],
            })
            .collect()
    }

    /// Transforms `rows` of `table` into a dense `rows.len() × width()` matrix.
    ///
    /// # Errors
    /// [`Error::Data`] when a fitted column is not in `table`.
    pub fn transform(&self, table: &Table, rows: &[usize]) -> Result<Matrix> {
        let width = self.width();
        let mut data = vec![0.0_f32; rows.len() * width];
        let mut offset = 0;
        for column in &self.columns {
            let values = table.require(column.name())?;
            #[allow(clippy::cast_possible_truncation)] // Features are f32 on every backend.
            for (out_row, &r) in rows.iter().enumerate() {
                let out = &mut data[out_row * width + offset..];
                match (column, values) {
                    (
                        FittedColumn::Numeric {
                            fill,
                            center,
                            scale,
                            ..
                        },
                        ColumnRef::Numeric(v),
                    ) => {
                        let x = if v.is_null(r) { *fill } else { v.value(r) };
                        out[0] = ((x - center) / scale) as f32;
                    }
                    (FittedColumn::Boolean { fill, .. }, ColumnRef::Boolean(v)) => {
                        let b = if v.is_null(r) { *fill } else { v.value(r) };
                        out[0] = f32::from(u8::from(b));
                    }
                    (
                        FittedColumn::Categorical {
                            fill,
                            categories,
                            encoding,
                            ..
                        },
                        v,
                    ) => {
                        let text = v.text(r);
                        let value = text.as_deref().unwrap_or(fill);
                        let slot = categories
                            .binary_search_by(|c| c.as_str().cmp(value))
                            .unwrap_or(categories.len());
                        match encoding {
                            CategoricalEncoding::OneHot => out[slot] = 1.0,
                            #[allow(clippy::cast_precision_loss)]
                            // Exact: category counts are far below 2^24.
                            CategoricalEncoding::Index => out[0] = slot as f32,
                        }
                    }
                    (fitted, _) => unreachable!(
                        "column `{}` was fitted as {fitted:?} but the table types it differently; \
                         tables are conformed to the fitted schema first",
                        fitted.name()
                    ),
                }
            }
            offset += column.width();
        }
        Ok(Matrix::new(data, rows.len(), width))
    }
}

#[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        f64::midpoint(values[mid - 1], values[mid])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_data::{CsvOptions, infer_schema, read_csv};

    fn table(text: &str) -> Table {
        let dir = std::env::temp_dir().join(format!("kiln-transform-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.csv", blake3::hash(text.as_bytes()).to_hex()));
        fs_err::write(&path, text).unwrap();
        let raw = read_csv(&path, &CsvOptions::default()).unwrap();
        let schema = infer_schema(&raw, 1000, &std::collections::BTreeMap::new()).unwrap();
        raw.conform(&schema, &[]).unwrap()
    }

    #[test]
    fn fit_sees_train_rows_only() {
        // Rows 0..3 train; rows 3..5 hold extreme values and a new category that must not leak.
        let t = table("x,c,b\n1,a,true\nNA,a,false\n3,b,true\n1000,z,false\n2000,z,false\n");
        let plan = FeaturePlan::new(t.schema(), &[], FeatureConfig::default());
        let fitted = plan.fit(&t, &[0, 1, 2]).unwrap();
        let FittedColumn::Numeric {
            fill,
            center,
            scale,
            ..
        } = fitted.columns[0]
        else {
            panic!()
        };
        assert!((fill - 2.0).abs() < 1e-12, "median of train values 1 and 3");
        assert!((center - 2.0).abs() < 1e-12, "mean of 1, 2 (imputed), 3");
        assert!((scale - (2.0_f64 / 3.0).sqrt()).abs() < 1e-12);
        let FittedColumn::Categorical {
            ref fill,
            ref categories,
            ..
        } = fitted.columns[1]
        else {
            panic!()
        };
        assert_eq!(categories, &["a", "b"]);
        assert_eq!(fill, "a");
        assert_eq!(
            fitted.columns[2],
            FittedColumn::Boolean {
                name: "b".into(),
                fill: true
            }
        );
        // A fit on all rows would differ: the test above can fail.
        let leaky = plan.fit(&t, &[0, 1, 2, 3, 4]).unwrap();
        assert_ne!(leaky, fitted);
    }

    #[test]
    fn transform_one_hots_with_unknown_slot() {
        let t = table("x,c\n1,a\n3,b\nNA,z\n");
        let fitted = FeaturePlan::new(t.schema(), &[], FeatureConfig::default())
            .fit(&t, &[0, 1])
            .unwrap();
        assert_eq!(fitted.width(), 4);
        assert_eq!(fitted.output_names(), ["x", "c=a", "c=b", "c=<other>"]);
        let m = fitted.transform(&t, &[0, 1, 2]).unwrap();
        assert_eq!(m.row(0), [-1.0, 1.0, 0.0, 0.0]);
        assert_eq!(m.row(1), [1.0, 0.0, 1.0, 0.0]);
        assert_eq!(
            m.row(2),
            [0.0, 0.0, 0.0, 1.0],
            "missing x -> median, unseen z -> other"
        );
    }

    #[test]
    fn index_encoding_gives_slot_numbers() {
        let t = table("x,c\n1,a\n3,b\nNA,z\n");
        let fitted = FeaturePlan::new(t.schema(), &[], FeatureConfig::default())
            .categorical_as_index()
            .fit(&t, &[0, 1])
            .unwrap();
        assert_eq!(fitted.width(), 2);
        assert_eq!(fitted.output_names(), ["x", "c"]);
        assert_eq!(fitted.index_columns(), [(1, 3)]);
        let m = fitted.transform(&t, &[0, 1, 2]).unwrap();
        assert_eq!(m.row(0), [-1.0, 0.0]);
        assert_eq!(m.row(1), [1.0, 1.0]);
        assert_eq!(m.row(2), [0.0, 2.0], "unseen z -> the unknown slot");
    }

    #[test]
    fn image_channels_share_train_statistics() {
        // Two channels of two pixels; row 2 is not a train row.
        let t = table("a,b,c,d\n0,2,10,10\n2,4,30,30\n100,100,100,100\n");
        let fitted = FeaturePlan::new(t.schema(), &[], FeatureConfig::default())
            .image(2)
            .fit(&t, &[0, 1])
            .unwrap();
        let stats: Vec<(f64, f64)> = fitted
            .columns
            .iter()
            .map(|c| match c {
                FittedColumn::Numeric { center, scale, .. } => (*center, *scale),
                _ => panic!(),
            })
            .collect();
        // Channel 1: values 0, 2, 2, 4 → mean 2, std √2; channel 2: 10, 10, 30, 30 → 20, 10.
        assert_eq!(stats[0], stats[1]);
        assert!((stats[0].0 - 2.0).abs() < 1e-12 && (stats[0].1 - 2_f64.sqrt()).abs() < 1e-12);
        assert_eq!(stats[2], (20.0, 10.0));
        assert_eq!(stats[3], (20.0, 10.0));
        let err = FeaturePlan::new(t.schema(), &[], FeatureConfig::default())
            .image(3)
            .fit(&t, &[0, 1])
            .unwrap_err();
        assert!(err.to_string().contains("multiple of 3"), "{err}");
    }

    #[test]
    fn fitted_state_round_trips_through_json() {
        let t = table("x,c\n1,a\n3,b\n");
        let fitted = FeaturePlan::new(t.schema(), &[], FeatureConfig::default())
            .fit(&t, &[0, 1])
            .unwrap();
        let json = serde_json::to_string(&fitted).unwrap();
        let back: FittedFeatures = serde_json::from_str(&json).unwrap();
        assert_eq!(back, fitted);
        assert_eq!(
            back.transform(&t, &[0, 1]).unwrap(),
            fitted.transform(&t, &[0, 1]).unwrap()
        );
    }
}
