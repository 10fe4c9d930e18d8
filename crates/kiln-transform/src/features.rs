//! The plan (configured, unfitted) and the fitted transforms of every feature column.

use arrow_array::{Array, Float64Array, StringArray};
use kiln_core::Matrix;
use kiln_data::{ColumnRef, ColumnSchema, ColumnType, Schema, Table};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::categorical::{CategoryEncoding, FitError, FittedCategorical, TargetColumns};
use crate::config::{CategoricalConfig, Encode, FeatureConfig};
use crate::datetime::FittedDatetime;
use crate::numeric::{FittedNumeric, OutOfDomain};
use crate::text::FittedText;
use crate::{Error, FittedTarget, ImageColumnsError, Result};

/// Configured, unfitted transforms. It has no `transform`: only the [`FittedFeatures`] that
/// [`FeaturePlan::fit`] returns can transform, so nothing reaches a model through transforms
/// that did not learn from the train rows.
///
/// ```compile_fail
/// # fn demo(plan: kiln_transform::FeaturePlan, table: &kiln_data::Table) {
/// plan.transform(table, &[0]); // no such method: fit first
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FeaturePlan {
    pub(crate) columns: Vec<ColumnSchema>,
    pub(crate) config: FeatureConfig,
    pub(crate) categorical_as_index: bool,
    pub(crate) image_channels: Option<usize>,
    pub(crate) target: Option<FittedTarget>,
    seed: u64,
}

/// One fitted input column and what it learned from the train rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FittedColumn {
    /// Impute, clip, log1p, Yeo-Johnson, scale or bins.
    Numeric(FittedNumeric),
    /// 0 or 1, one output.
    Boolean {
        /// Column name.
        name: String,
        /// Replaces missing values (the train majority).
        fill: bool,
    },
    /// One-hot, embedding index, ordinal, hashing or target encoding.
    Categorical(FittedCategorical),
    /// Calendar parts.
    Datetime(FittedDatetime),
    /// Hashed n-grams with TF-IDF.
    Text(FittedText),
}

impl FittedColumn {
    /// The input column's name.
    pub fn name(&self) -> &str {
        match self {
            FittedColumn::Numeric(FittedNumeric { name, .. })
            | FittedColumn::Boolean { name, .. }
            | FittedColumn::Categorical(FittedCategorical { name, .. })
            | FittedColumn::Datetime(FittedDatetime { name, .. })
            | FittedColumn::Text(FittedText { name, .. }) => name,
        }
    }

    /// How many output columns it produces.
    pub fn width(&self) -> usize {
        match self {
            FittedColumn::Numeric(n) => n.width(),
            FittedColumn::Boolean { .. } => 1,
            FittedColumn::Categorical(c) => c.width(),
            FittedColumn::Datetime(d) => d.width(),
            FittedColumn::Text(t) => t.width,
        }
    }

    /// Its kind and what it learned, on one line (for `kiln inspect`).
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            FittedColumn::Numeric(n) => ("numeric", n.describe()),
            FittedColumn::Boolean { fill, .. } => ("boolean", format!("fill={fill}")),
            FittedColumn::Categorical(c) => ("categorical", c.describe()),
            FittedColumn::Datetime(d) => {
                let parts: Vec<&str> = d.parts.iter().map(|p| p.as_str()).collect();
                let fill = kiln_data::CivilTime::from_micros(d.fill);
                (
                    "datetime",
                    format!(
                        "parts=[{}] cyclic={} fill={:04}-{:02}-{:02} year_center={:.4} year_scale={:.4}",
                        parts.join(", "),
                        d.cyclic,
                        fill.year,
                        fill.month,
                        fill.day,
                        d.year_center,
                        d.year_scale
                    ),
                )
            }
            FittedColumn::Text(t) => (
                "text",
                format!(
                    "hashed {}..{}-grams into {} buckets, lowercase={}, tfidf={}",
                    t.ngrams[0],
                    t.ngrams[1],
                    t.width,
                    t.lowercase,
                    t.idf.is_some()
                ),
            ),
        }
    }

    /// Names of its output columns.
    pub fn output_names(&self) -> Vec<String> {
        match self {
            FittedColumn::Numeric(n) => {
                let mut names = match &n.bins {
                    Some(edges) => (0..=edges.len())
                        .map(|i| format!("{}[bin{i}]", n.name))
                        .collect(),
                    None => vec![n.name.clone()],
                };
                if n.missing_indicator {
                    names.push(format!("{}[missing]", n.name));
                }
                names
            }
            FittedColumn::Boolean { name, .. } => vec![name.clone()],
            FittedColumn::Categorical(c) => c.output_names(),
            FittedColumn::Datetime(d) => d.output_names(),
            FittedColumn::Text(t) => (0..t.width).map(|i| format!("{}#{i}", t.name)).collect(),
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
            categorical_as_index: false,
            image_channels: None,
            target: None,
            seed: 0,
        }
    }

    /// Encodes one-hot categorical columns as indices for learned embeddings instead.
    #[must_use]
    pub fn categorical_as_index(mut self) -> Self {
        self.categorical_as_index = true;
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

    /// The fitted target, which target encoding needs.
    #[must_use]
    pub fn target(mut self, target: &FittedTarget) -> Self {
        self.target = Some(target.clone());
        self
    }

    /// Seeds the folds that cross-fit target encoding.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Learns every column's parameters from `train_rows` of `table`, and from nothing else.
    ///
    /// # Errors
    /// [`Error::NoTrainingRows`]; [`Error::Data`] when a planned column is not in `table`;
    /// [`Error::ColumnConfig`], [`Error::UnknownColumnConfig`] for bad `[features.columns]`;
    /// [`Error::OutOfDomain`], [`Error::NotInOrder`] for values a transform cannot take.
    pub fn fit(&self, table: &Table, train_rows: &[usize]) -> Result<FittedFeatures> {
        self.fit_with_targets(table, train_rows)
            .map(|(fitted, _)| fitted)
    }

    /// [`FeaturePlan::fit`], also returning the target columns that target encoding used, so
    /// cross-fitting does not derive them again.
    fn fit_with_targets(
        &self,
        table: &Table,
        train_rows: &[usize],
    ) -> Result<(FittedFeatures, Option<TargetColumns>)> {
        if train_rows.is_empty() {
            return Err(Error::NoTrainingRows);
        }
        self.check_overrides()?;
        let targets = self
            .target
            .as_ref()
            .map(|t| target_columns(t, table, train_rows))
            .transpose()?;
        // Columns are independent: fit them in parallel.
        let columns = self
            .columns
            .par_iter()
            .map(|column| self.fit_column(column, table, train_rows, targets.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let mut fitted = FittedFeatures { columns };
        if let Some(channels) = self.image_channels {
            fitted.pool_channels(channels, table, train_rows)?;
        }
        Ok((fitted, targets))
    }

    /// [`FeaturePlan::fit`], and the train rows transformed. Target-encoded columns of the
    /// train rows are cross-fitted: each fold is encoded with means from the other folds, so a
    /// row's own target never reaches its features (the fitted state, from all train rows,
    /// serves every other row).
    ///
    /// # Errors
    /// As [`FeaturePlan::fit`].
    pub fn fit_transform(
        &self,
        table: &Table,
        train_rows: &[usize],
    ) -> Result<(FittedFeatures, Matrix)> {
        let (fitted, targets) = self.fit_with_targets(table, train_rows)?;
        let mut matrix = fitted.transform(table, train_rows)?;
        // Without a target nothing is target-encoded (fit refuses it); one row has no folds.
        if let Some(targets) = targets
            && train_rows.len() >= 2
        {
            self.cross_fit(&fitted, &targets, table, train_rows, &mut matrix)?;
        }
        Ok((fitted, matrix))
    }

    /// Overwrites the target-encoded columns of the train rows' `matrix` with out-of-fold
    /// encodings.
    fn cross_fit(
        &self,
        fitted: &FittedFeatures,
        targets: &TargetColumns,
        table: &Table,
        train_rows: &[usize],
        matrix: &mut Matrix,
    ) -> Result<()> {
        let positions: Vec<usize> = (0..train_rows.len()).collect();
        let mut offset = 0;
        for column in &fitted.columns {
            let width = column.width();
            if let FittedColumn::Categorical(
                c @ FittedCategorical {
                    encoding: CategoryEncoding::Target { .. },
                    ..
                },
            ) = column
            {
                let config = self.categorical_config(&c.name)?;
                let folds = config.folds.clamp(2, train_rows.len());
                let mut rng = kiln_core::rng::stream(self.seed, "target_encoding");
                let ColumnRef::Categorical(values) = table.require(&c.name)? else {
                    unreachable!("target encoding is fitted on categorical columns")
                };
                let filled: Vec<&str> = train_rows
                    .iter()
                    .map(|&r| str_at(values, r).unwrap_or(&c.fill))
                    .collect();
                for fold in kiln_data::k_fold(&positions, folds, &mut rng)? {
                    let subset: Vec<&str> = fold.train.iter().map(|&i| filled[i]).collect();
                    let fold_targets = TargetColumns {
                        outputs: targets.outputs,
                        values: fold
                            .train
                            .iter()
                            .map(|&i| targets.values[i].clone())
                            .collect(),
                    };
                    let (categories, encodings, prior) =
                        crate::categorical::target_means(&subset, &fold_targets, config.smoothing);
                    let fold_fit = FittedCategorical {
                        name: c.name.clone(),
                        fill: c.fill.clone(),
                        encoding: CategoryEncoding::Target {
                            categories,
                            encodings,
                            prior,
                        },
                    };
                    let encoder = fold_fit.encoder();
                    for &i in &fold.valid {
                        let row = &mut matrix.data[i * matrix.cols + offset..][..width];
                        row.fill(0.0);
                        encoder.write(Some(filled[i]), row);
                    }
                }
            }
            offset += width;
        }
        Ok(())
    }

    /// Refuses `[features.columns]` entries that name no planned column.
    pub(crate) fn check_overrides(&self) -> Result<()> {
        let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        match self.config.unused_overrides(&names).first() {
            Some(unused) => Err(Error::UnknownColumnConfig {
                column: (*unused).to_owned(),
                features: names.join(", "),
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn categorical_config(&self, column: &str) -> Result<CategoricalConfig> {
        self.config
            .resolve(column, "categorical", &self.config.categorical)
    }

    fn fit_column(
        &self,
        column: &ColumnSchema,
        table: &Table,
        train_rows: &[usize],
        targets: Option<&TargetColumns>,
    ) -> Result<FittedColumn> {
        let name = column.name.as_str();
        Ok(match (column.column_type, table.require(name)?) {
            (ColumnType::Numeric, ColumnRef::Numeric(values)) => {
                let config = self.config.resolve(name, "numeric", &self.config.numeric)?;
                let present: Vec<f64> = train_rows
                    .iter()
                    .filter_map(|&r| number_at(values, r))
                    .collect();
                let missing = train_rows.len() - present.len();
                let fitted = FittedNumeric::fit(name, &config, &present, missing)
                    .map_err(|e| out_of_domain(table, name, values, train_rows, e))?;
                FittedColumn::Numeric(fitted)
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
                    name: name.to_owned(),
                    fill: trues > falses,
                }
            }
            (ColumnType::Datetime, ColumnRef::Datetime(values)) => {
                let config = self
                    .config
                    .resolve(name, "datetime", &self.config.datetime)?;
                let present: Vec<i64> = train_rows
                    .iter()
                    .filter(|&&r| !values.is_null(r))
                    .map(|&r| values.value(r))
                    .collect();
                FittedColumn::Datetime(FittedDatetime::fit(name, &config, &present))
            }
            (ColumnType::Text, ColumnRef::Text(values)) => {
                let config = self.config.resolve(name, "text", &self.config.text)?;
                let documents: Vec<Option<&str>> =
                    train_rows.iter().map(|&r| str_at(values, r)).collect();
                FittedColumn::Text(FittedText::fit(name, &config, &documents))
            }
            (ColumnType::Categorical, ColumnRef::Categorical(values)) => {
                let config = self.categorical_config(name)?;
                let cells: Vec<Option<&str>> =
                    train_rows.iter().map(|&r| str_at(values, r)).collect();
                let fitted = FittedCategorical::fit(
                    name,
                    &config,
                    &cells,
                    self.categorical_as_index && config.encode == Encode::OneHot,
                    targets,
                )
                .map_err(|e| match e {
                    FitError::NotInOrder { index, value } => Error::NotInOrder {
                        path: table.path().to_path_buf(),
                        line: table.line_of(train_rows[index]),
                        column: name.to_owned(),
                        value,
                    },
                    FitError::NoTarget => Error::NoTarget {
                        column: name.to_owned(),
                    },
                })?;
                FittedColumn::Categorical(fitted)
            }
            (expected, _) => unreachable!(
                "column `{name}` is planned as {expected:?} but the table types it \
                 differently; tables are conformed to the schema first"
            ),
        })
    }
}

/// The first train row whose value is out of the transform's domain, as an error.
fn out_of_domain(
    table: &Table,
    name: &str,
    values: &Float64Array,
    train_rows: &[usize],
    error: OutOfDomain,
) -> Error {
    let row = train_rows
        .iter()
        .copied()
        .find(|&r| number_at(values, r).is_some_and(|v| v <= error.value))
        .unwrap_or(train_rows[0]);
    domain_error(table, name, row, error)
}

pub(crate) fn domain_error(table: &Table, column: &str, row: usize, error: OutOfDomain) -> Error {
    Error::OutOfDomain {
        path: table.path().to_path_buf(),
        line: table.line_of(row),
        column: column.to_owned(),
        value: error.value,
        transform: "log1p",
        domain: "values above -1",
    }
}

/// The cell as a number; `None` when missing or NaN.
pub(crate) fn number_at(values: &Float64Array, row: usize) -> Option<f64> {
    (!values.is_null(row))
        .then(|| values.value(row))
        .filter(|v| !v.is_nan())
}

pub(crate) fn str_at(values: &StringArray, row: usize) -> Option<&str> {
    (!values.is_null(row)).then(|| values.value(row))
}

/// The target as numbers for target encoding: the value for regression, the positive-class
/// indicator for two classes, a one-hot of the class for more.
fn target_columns(
    target: &FittedTarget,
    table: &Table,
    train_rows: &[usize],
) -> Result<TargetColumns> {
    let column = table.require(target.name())?;
    Ok(match target {
        FittedTarget::Regression { .. } => {
            let ColumnRef::Numeric(values) = column else {
                unreachable!("a regression target was fitted on a numeric column")
            };
            TargetColumns {
                outputs: 1,
                values: train_rows
                    .iter()
                    .map(|&r| number_at(values, r).map(|v| vec![v]))
                    .collect(),
            }
        }
        FittedTarget::Classification { classes, .. } => {
            let outputs = if classes.len() == 2 { 1 } else { classes.len() };
            TargetColumns {
                outputs,
                values: train_rows
                    .iter()
                    .map(|&r| {
                        let label = column.text(r)?;
                        let class = classes.iter().position(|c| *c == label)?;
                        Some(if outputs == 1 {
                            vec![if class == 1 { 1.0 } else { 0.0 }]
                        } else {
                            (0..outputs)
                                .map(|k| if k == class { 1.0 } else { 0.0 })
                                .collect()
                        })
                    })
                    .collect(),
            }
        }
    })
}

/// Rows per parallel transform task: enough to amortize the per-task setup, few enough that a
/// block (512 rows × 136 features is 272 KiB) stays in L2 while every column writes into it.
const TRANSFORM_CHUNK_ROWS: usize = 512;

/// Maps `block`'s pages in one system call before it is written. A large output matrix is
/// fresh zeroed memory whose every 4 KiB page otherwise faults on first write: on the 2-core
/// VM those faults were a third of the flights transform, and `MADV_POPULATE_WRITE` maps the
/// same pages in about 40 % less time. Small blocks (a served row, a batch) are not worth the
/// call. A kernel older than 5.14 refuses it, and the pages fault on write as before.
#[cfg(target_os = "linux")]
fn prefault(block: &mut [f32]) {
    const PAGE: usize = 4096;
    const MIN_PAGES: usize = 16;
    let base = block.as_mut_ptr().cast::<u8>();
    let start = base as usize;
    let first = start.next_multiple_of(PAGE);
    let end = (start + std::mem::size_of_val(block)) / PAGE * PAGE;
    if end >= first + MIN_PAGES * PAGE {
        // SAFETY: `first..end` lies inside `block` (so the offset stays in bounds), which this
        // thread borrows mutably; MADV_POPULATE_WRITE only maps the pages, as a write to each
        // would, and leaves their contents unchanged.
        #[allow(unsafe_code)]
        unsafe {
            libc::madvise(
                base.add(first - start).cast(),
                end - first,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn prefault(_block: &mut [f32]) {}

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
            .filter(|c| !matches!(c, FittedColumn::Numeric(n) if n.is_dense()))
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
                let FittedColumn::Numeric(numeric) = column else {
                    unreachable!("checked numeric above")
                };
                let ColumnRef::Numeric(values) = table.require(&numeric.name)? else {
                    unreachable!("tables are conformed to the fitted schema")
                };
                for &r in train_rows {
                    let x = number_at(values, r).unwrap_or(numeric.fill);
                    sum += x;
                    sum_sq += x * x;
                    n += 1.0;
                }
            }
            let mean = sum / n;
            let var = mean.mul_add(-mean, sum_sq / n).max(0.0);
            for column in channel {
                if let FittedColumn::Numeric(numeric) = column {
                    numeric.center = mean;
                    numeric.scale = if var > 0.0 { var.sqrt() } else { 1.0 };
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
            if let FittedColumn::Categorical(FittedCategorical {
                encoding: CategoryEncoding::Index { categories },
                ..
            }) = column
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

    /// A name for every output column (`column`, `column=value`, `column=<other>`,
    /// `column#bucket`, `column.hour_sin` …).
    pub fn output_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .flat_map(FittedColumn::output_names)
            .collect()
    }

    /// Transforms `rows` of `table` into a dense `rows.len() × width()` matrix, in parallel
    /// over blocks of rows.
    ///
    /// # Errors
    /// [`Error::Data`] when a fitted column is not in `table`; [`Error::OutOfDomain`] naming
    /// the line of a value a transform cannot take.
    ///
    /// # Panics
    /// Never: every categorical column has an encoder, and tables are conformed to the fitted
    /// schema before they get here.
    pub fn transform(&self, table: &Table, rows: &[usize]) -> Result<Matrix> {
        let width = self.width();
        let sources = self
            .columns
            .iter()
            .map(|c| table.require(c.name()))
            .collect::<kiln_data::Result<Vec<_>>>()?;
        let encoders: Vec<_> = self
            .columns
            .iter()
            .map(|c| match c {
                FittedColumn::Categorical(c) => Some(c.encoder()),
                _ => None,
            })
            .collect();
        let mut data = vec![0.0_f32; rows.len() * width];
        if width == 0 {
            return Ok(Matrix::new(data, rows.len(), width));
        }
        data.par_chunks_mut(TRANSFORM_CHUNK_ROWS * width)
            .zip(rows.par_chunks(TRANSFORM_CHUNK_ROWS))
            .try_for_each(|(block, block_rows)| {
                prefault(block);
                let mut offset = 0;
                for ((column, source), encoder) in self.columns.iter().zip(&sources).zip(&encoders)
                {
                    let column_width = column.width();
                    // One match per column and block; the loops below run per row.
                    let cells = block_rows.iter().zip(block.chunks_exact_mut(width));
                    let outs = cells.map(|(&r, row)| (r, &mut row[offset..][..column_width]));
                    match (column, source) {
                        (FittedColumn::Numeric(n), ColumnRef::Numeric(v)) => {
                            for (r, out) in outs {
                                n.write(number_at(v, r), out)
                                    .map_err(|e| domain_error(table, &n.name, r, e))?;
                            }
                        }
                        (FittedColumn::Boolean { fill, .. }, ColumnRef::Boolean(v)) => {
                            for (r, out) in outs {
                                let b = if v.is_null(r) { *fill } else { v.value(r) };
                                out[0] = f32::from(u8::from(b));
                            }
                        }
                        (FittedColumn::Categorical(_), ColumnRef::Categorical(v)) => {
                            let encoder = encoder
                                .as_ref()
                                .expect("categorical columns have an encoder");
                            for (r, out) in outs {
                                encoder.write(str_at(v, r), out);
                            }
                        }
                        (FittedColumn::Datetime(d), ColumnRef::Datetime(v)) => {
                            for (r, out) in outs {
                                d.write((!v.is_null(r)).then(|| v.value(r)), out);
                            }
                        }
                        (FittedColumn::Text(t), ColumnRef::Text(v)) => {
                            for (r, out) in outs {
                                t.write(str_at(v, r), out);
                            }
                        }
                        (fitted, _) => unreachable!(
                            "column `{}` was fitted as {fitted:?} but the table types it \
                             differently; tables are conformed to the fitted schema first",
                            fitted.name()
                        ),
                    }
                    offset += column_width;
                }
                Ok::<(), Error>(())
            })?;
        Ok(Matrix::new(data, rows.len(), width))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kiln_data::{CsvOptions, infer_schema, read_csv};
    use std::fmt::Write as _;

    pub(crate) fn table(text: &str) -> Table {
        // A directory per call: tests run in parallel, some on the same text.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
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
        let FittedColumn::Numeric(FittedNumeric {
            fill,
            center,
            scale,
            ..
        }) = fitted.columns[0]
        else {
            panic!()
        };
        assert!((fill - 2.0).abs() < 1e-12, "median of train values 1 and 3");
        assert!((center - 2.0).abs() < 1e-12, "mean of 1, 2 (imputed), 3");
        assert!((scale - (2.0_f64 / 3.0).sqrt()).abs() < 1e-12);
        let FittedColumn::Categorical(FittedCategorical {
            ref fill,
            encoding: CategoryEncoding::OneHot { ref categories, .. },
            ..
        }) = fitted.columns[1]
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
    fn rows_across_many_blocks_transform_as_they_do_alone() {
        // Three and a half parallel blocks, with missing cells, taken in a scrambled order.
        let mut text = String::from("x,c,b\n");
        for i in 0..TRANSFORM_CHUNK_ROWS * 7 / 2 {
            let x = if i % 11 == 0 {
                "NA".to_owned()
            } else {
                (i % 97).to_string()
            };
            let c = ["a", "b", "NA", "c"][i % 4];
            writeln!(text, "{x},{c},{}", i % 3 == 0).unwrap();
        }
        let t = table(&text);
        let plan = FeaturePlan::new(t.schema(), &[], FeatureConfig::default());
        let fitted = plan
            .fit(&t, &(0..t.n_rows()).step_by(2).collect::<Vec<_>>())
            .unwrap();
        let rows: Vec<usize> = (0..t.n_rows()).map(|i| i * 5 % t.n_rows()).collect();
        let batch = fitted.transform(&t, &rows).unwrap();
        for (i, &r) in rows.iter().enumerate() {
            assert_eq!(
                batch.row(i),
                fitted.transform(&t, &[r]).unwrap().row(0),
                "row {r}"
            );
        }
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
                FittedColumn::Numeric(n) => (n.center, n.scale),
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
    fn cross_fitted_target_encoding_never_sees_the_rows_own_target() {
        use std::fmt::Write;
        let mut text = String::from("c,y\n");
        for i in 0..40 {
            writeln!(text, "{},{}", ["a", "b", "c"][i % 3], i % 5).unwrap();
        }
        let encode = |text: &str| {
            let t = table(text);
            let rows: Vec<usize> = (0..40).collect();
            let target = FittedTarget::fit(&t, "y", crate::TargetKind::Regression, &rows).unwrap();
            let config: FeatureConfig =
                serde_json::from_str(r#"{"categorical": {"encode": "target"}}"#).unwrap();
            let plan = FeaturePlan::new(t.schema(), &["y"], config)
                .target(&target)
                .seed(7);
            let (fitted, train) = plan.fit_transform(&t, &rows).unwrap();
            (fitted.transform(&t, &rows).unwrap(), train)
        };
        let (full, cross) = encode(&text);
        assert_ne!(full, cross, "train rows get out-of-fold encodings");
        // Change row 0's target: its own cross-fitted encoding stays, the full fit moves.
        let changed = text.replacen("a,0\n", "a,1000\n", 1);
        let (full_changed, cross_changed) = encode(&changed);
        assert_eq!(cross.row(0), cross_changed.row(0));
        assert_ne!(full.row(0), full_changed.row(0));
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
