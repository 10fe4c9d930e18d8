//! Column statistics in one streaming pass over typed tables: counts, moments, extremes,
//! approximate quantiles, histograms and the most frequent values. Serializable, for
//! `stats.json` and later drift checks.
//!
//! Quantiles come from a DDSketch (`sketches-ddsketch`) with relative accuracy
//! [`QUANTILE_RELATIVE_ERROR`]: the reported q-quantile is within 1% (relative) of the exact
//! value at rank ⌊q·(n−1)⌋ of the sorted non-missing values, for values whose magnitudes span
//! less than about 10^17 (and values within 1e-9 of zero read as zero). Histograms are exact:
//! equal-width bins whose width doubles as the range grows, so no second pass is needed.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

use arrow_array::Array;

use crate::datetime::format_datetime;
use crate::{ColumnRef, ColumnType, Result, Schema, Table};

/// The sketch's relative accuracy: each quantile is within this fraction of a true value.
pub const QUANTILE_RELATIVE_ERROR: f64 = 0.01;

/// Distinct values counted per column before new ones are no longer tracked (bounds memory on
/// free-text columns); past it, `top` counts only values seen before the cap.
pub const MAX_TRACKED_VALUES: usize = 100_000;

/// What to compute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsOptions {
    /// Quantiles to report, each in [0, 1].
    pub quantiles: Vec<f64>,
    /// Histogram bins for numeric columns (at least 2).
    pub histogram_bins: usize,
    /// How many of the most frequent values to report for non-numeric columns.
    pub top_k: usize,
}

impl Default for StatsOptions {
    fn default() -> Self {
        Self {
            quantiles: vec![0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99],
            histogram_bins: 20,
            top_k: 10,
        }
    }
}

/// Statistics of a whole table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetStats {
    /// Rows seen.
    pub rows: usize,
    /// One entry per schema column, in order.
    pub columns: Vec<ColumnStats>,
}

impl DatasetStats {
    /// The statistics of column `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnStats> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Statistics of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// Column name.
    pub name: String,
    /// Column type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Non-missing values.
    pub count: usize,
    /// Missing values.
    pub missing: usize,
    /// The type-specific part.
    pub summary: Summary,
}

/// Type-specific statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Summary {
    /// Numbers (and datetimes, as microseconds since the epoch).
    Numeric(NumericStats),
    /// Labels, booleans and text.
    Categorical(CategoricalStats),
}

/// Statistics of a numeric column; `None` when it has no finite value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericStats {
    /// Infinite values (left out of every other statistic).
    pub infinite: usize,
    /// Mean of the finite values.
    pub mean: Option<f64>,
    /// Population standard deviation of the finite values.
    pub std: Option<f64>,
    /// Smallest finite value.
    pub min: Option<f64>,
    /// Largest finite value.
    pub max: Option<f64>,
    /// `min` as an ISO-8601 timestamp, for datetime columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_time: Option<String>,
    /// `max` as an ISO-8601 timestamp, for datetime columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time: Option<String>,
    /// Approximate quantiles, see the module docs for the error bound.
    pub quantiles: Vec<Quantile>,
    /// Exact counts in equal-width bins.
    pub histogram: Histogram,
}

/// One approximate quantile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    /// The quantile, in [0, 1].
    pub q: f64,
    /// Its value.
    pub value: f64,
}

/// Equal-width histogram: bin `i` counts values in `[edges[i], edges[i + 1])` (the last bin
/// also holds its upper edge).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Histogram {
    /// Bin edges, one more than the bins.
    pub edges: Vec<f64>,
    /// Values per bin.
    pub counts: Vec<u64>,
}

/// Statistics of a categorical, boolean or text column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalStats {
    /// Distinct values (a lower bound when `capped`).
    pub distinct: usize,
    /// Whether more than [`MAX_TRACKED_VALUES`] distinct values were seen.
    pub capped: bool,
    /// The most frequent values with their counts, most frequent first (ties by value).
    pub top: Vec<ValueCount>,
    /// Mean length in characters.
    pub mean_length: Option<f64>,
}

/// A value and how often it occurs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueCount {
    /// The value as text.
    pub value: String,
    /// Its count.
    pub count: usize,
}

/// Computes [`DatasetStats`] of `table` in one pass.
///
/// # Errors
/// Never for a table conformed by [`RawTable::conform`](crate::RawTable::conform); see
/// [`StatsAccumulator::update`].
pub fn compute_stats(table: &Table, options: &StatsOptions) -> Result<DatasetStats> {
    let mut stats = StatsAccumulator::new(table.schema(), options.clone());
    stats.update(table)?;
    Ok(stats.finish())
}

/// Computes [`DatasetStats`] of only `rows` of `table`, in one pass: the training split's
/// statistics, which drift checks compare new data against.
///
/// # Errors
/// As [`compute_stats`].
///
/// # Panics
/// When a row is out of bounds (a caller bug).
pub fn compute_stats_of(
    table: &Table,
    rows: &[usize],
    options: &StatsOptions,
) -> Result<DatasetStats> {
    let mut stats = StatsAccumulator::new(table.schema(), options.clone());
    stats.update_rows(table, rows)?;
    Ok(stats.finish())
}

/// Statistics accumulated over tables (chunks of one dataset) that share a schema.
#[derive(Debug)]
pub struct StatsAccumulator {
    options: StatsOptions,
    rows: usize,
    columns: Vec<(String, ColumnType, Accumulator)>,
}

#[derive(Debug)]
enum Accumulator {
    Numeric(Box<NumericAcc>),
    Categorical(CategoricalAcc),
}

impl StatsAccumulator {
    /// An empty accumulator for `schema`'s columns.
    pub fn new(schema: &Schema, options: StatsOptions) -> Self {
        let columns = schema
            .columns
            .iter()
            .map(|c| {
                let acc = match c.column_type {
                    ColumnType::Numeric | ColumnType::Datetime => {
                        Accumulator::Numeric(Box::new(NumericAcc::new(options.histogram_bins)))
                    }
                    ColumnType::Categorical | ColumnType::Boolean | ColumnType::Text => {
                        Accumulator::Categorical(CategoricalAcc::default())
                    }
                };
                (c.name.clone(), c.column_type, acc)
            })
            .collect();
        Self {
            options,
            rows: 0,
            columns,
        }
    }

    /// Adds the rows of `table`.
    ///
    /// # Errors
    /// [`Error::MissingColumn`](crate::Error::MissingColumn) when `table` lacks a column.
    pub fn update(&mut self, table: &Table) -> Result<()> {
        self.add_rows(table, &(0..table.n_rows()))
    }

    /// Adds only `rows` of `table` (e.g. the training split).
    ///
    /// # Errors
    /// As [`StatsAccumulator::update`].
    ///
    /// # Panics
    /// When a row is out of bounds (a caller bug).
    pub fn update_rows(&mut self, table: &Table, rows: &[usize]) -> Result<()> {
        self.add_rows(table, &rows.iter().copied())
    }

    fn add_rows(
        &mut self,
        table: &Table,
        rows: &(impl ExactSizeIterator<Item = usize> + Clone),
    ) -> Result<()> {
        self.rows += rows.len();
        for (name, _, acc) in &mut self.columns {
            let column = table.require(name)?;
            match (acc, column) {
                (Accumulator::Numeric(acc), ColumnRef::Numeric(values)) => {
                    for r in rows.clone() {
                        acc.add(values.is_valid(r).then(|| values.value(r)));
                    }
                }
                (Accumulator::Numeric(acc), ColumnRef::Datetime(values)) => {
                    for r in rows.clone() {
                        #[allow(clippy::cast_precision_loss)]
                        // Microsecond timestamps below 2^53 (±285 years from 1970) are exact.
                        acc.add(values.is_valid(r).then(|| values.value(r) as f64));
                    }
                }
                (Accumulator::Categorical(acc), column) => {
                    for r in rows.clone() {
                        acc.add(column.text(r).as_deref());
                    }
                }
                (Accumulator::Numeric(acc), column) => {
                    // A table typed differently from the schema: count presence only.
                    for r in rows.clone() {
                        acc.missing += usize::from(column.is_null(r));
                    }
                }
            }
        }
        Ok(())
    }

    /// The statistics.
    pub fn finish(self) -> DatasetStats {
        let options = &self.options;
        let columns = self
            .columns
            .into_iter()
            .map(|(name, column_type, acc)| {
                let (count, missing, summary) = match acc {
                    Accumulator::Numeric(acc) => {
                        let (count, missing) = (acc.moments.count + acc.infinite, acc.missing);
                        let mut stats = acc.finish(options);
                        if column_type == ColumnType::Datetime {
                            stats.min_time = stats.min.map(datetime_text);
                            stats.max_time = stats.max.map(datetime_text);
                        }
                        (count, missing, Summary::Numeric(stats))
                    }
                    Accumulator::Categorical(acc) => {
                        let (count, missing) = (acc.count, acc.missing);
                        (count, missing, Summary::Categorical(acc.finish(options)))
                    }
                };
                ColumnStats {
                    name,
                    column_type,
                    count,
                    missing,
                    summary,
                }
            })
            .collect();
        DatasetStats {
            rows: self.rows,
            columns,
        }
    }
}

fn datetime_text(micros: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    // The value came from an i64 timestamp, so it converts back exactly.
    format_datetime(micros as i64)
}

/// A quantile sketch with relative accuracy [`QUANTILE_RELATIVE_ERROR`]: what the statistics
/// use, and what streaming transform fits use to agree with them.
pub fn quantile_sketch() -> DDSketch {
    DDSketch::new(Config::new(QUANTILE_RELATIVE_ERROR, 2048, 1e-9))
}

/// `sketch`'s `q`-quantile, clamped to the values it saw; `None` when it saw none. The estimate
/// may fall past the extremes (by its relative error); the true quantile cannot, so clamping
/// only brings it closer.
pub fn sketch_quantile(sketch: &DDSketch, q: f64) -> Option<f64> {
    let (lo, hi) = (sketch.min()?, sketch.max()?);
    Some(sketch.quantile(q).ok()??.clamp(lo, hi))
}

/// Count, mean, population variance (Welford's one-pass update), minimum and maximum of a
/// stream of values.
#[derive(Debug, Clone, Copy)]
pub struct Moments {
    /// Values added.
    pub count: usize,
    /// Their mean (0 for none).
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    m2: f64,
    /// The smallest value (+∞ for none).
    pub min: f64,
    /// The largest value (−∞ for none).
    pub max: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Self {
            count: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Moments {
    /// Adds `x`.
    pub fn add(&mut self, x: f64) {
        self.count += 1;
        #[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
        let n = self.count as f64;
        let delta = x - self.mean;
        self.mean += delta / n;
        self.m2 = delta.mul_add(x - self.mean, self.m2);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    /// The population variance (0 for none).
    pub fn variance(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
        let n = self.count.max(1) as f64;
        self.m2 / n
    }

    /// (min, max), or (0, 0) for no values.
    pub fn range(&self) -> (f64, f64) {
        if self.count == 0 {
            (0.0, 0.0)
        } else {
            (self.min, self.max)
        }
    }
}

struct NumericAcc {
    moments: Moments,
    missing: usize,
    infinite: usize,
    sketch: DDSketch,
    histogram: GrowingHistogram,
}

impl std::fmt::Debug for NumericAcc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumericAcc")
            .field("moments", &self.moments)
            .field("missing", &self.missing)
            .finish_non_exhaustive()
    }
}

impl NumericAcc {
    fn new(bins: usize) -> Self {
        Self {
            moments: Moments::default(),
            missing: 0,
            infinite: 0,
            sketch: quantile_sketch(),
            histogram: GrowingHistogram::new(bins.max(2)),
        }
    }

    fn add(&mut self, value: Option<f64>) {
        match value {
            None => self.missing += 1,
            Some(v) if v.is_nan() => self.missing += 1,
            Some(v) if v.is_infinite() => self.infinite += 1,
            Some(v) => {
                self.moments.add(v);
                self.sketch.add(v);
                self.histogram.add(v);
            }
        }
    }

    fn finish(self, options: &StatsOptions) -> NumericStats {
        let m = self.moments;
        let any = m.count > 0;
        let quantiles = options
            .quantiles
            .iter()
            .filter_map(|&q| {
                let value = sketch_quantile(&self.sketch, q)?;
                Some(Quantile { q, value })
            })
            .collect();
        NumericStats {
            infinite: self.infinite,
            mean: any.then_some(m.mean),
            std: any.then_some(m.variance().sqrt()),
            min: any.then_some(m.min),
            max: any.then_some(m.max),
            min_time: None,
            max_time: None,
            quantiles,
            histogram: self.histogram.finish(),
        }
    }
}

/// Equal-width bins over `[origin, origin + bins * width]`; a value outside doubles the width
/// (merging neighbouring bins) towards it until it fits, so counts stay exact in one pass.
#[derive(Debug)]
struct GrowingHistogram {
    origin: f64,
    width: f64,
    counts: Vec<u64>,
    empty: bool,
}

impl GrowingHistogram {
    fn new(bins: usize) -> Self {
        Self {
            origin: 0.0,
            width: 0.0,
            counts: vec![0; bins],
            empty: true,
        }
    }

    fn add(&mut self, v: f64) {
        if self.empty {
            self.origin = v;
            self.width = (v.abs() * 1e-6).max(f64::MIN_POSITIVE);
            self.empty = false;
        }
        // Bounded: each doubling at least doubles the span, and f64 spans end at infinity.
        for _ in 0..2100 {
            let span = self.width * self.len();
            if v < self.origin {
                self.grow(true);
            } else if v > self.origin + span && span.is_finite() {
                self.grow(false);
            } else {
                break;
            }
        }
        let position = ((v - self.origin) / self.width).floor();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        // Non-negative and below the bin count after growing; `as` saturates otherwise.
        let index = (position.max(0.0) as usize).min(self.counts.len() - 1);
        self.counts[index] += 1;
    }

    fn len(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // Bin counts are small.
        let n = self.counts.len() as f64;
        n
    }

    /// Doubles the width, extending the range down (`left`) or up.
    fn grow(&mut self, left: bool) {
        let n = self.counts.len();
        let mut merged = vec![0; n];
        let shift = if left { n / 2 } else { 0 };
        for (i, &c) in self.counts.iter().enumerate() {
            merged[(shift + i / 2).min(n - 1)] += c;
        }
        if left {
            // Bin n/2 of the new layout starts at the old origin.
            #[allow(clippy::cast_precision_loss)] // Bin counts are small.
            let half = shift as f64;
            self.origin -= half * 2.0 * self.width;
        }
        self.width *= 2.0;
        self.counts = merged;
    }

    fn finish(self) -> Histogram {
        if self.empty {
            return Histogram::default();
        }
        let first = self.counts.iter().position(|&c| c > 0).unwrap_or(0);
        let last = self.counts.iter().rposition(|&c| c > 0).unwrap_or(0);
        let edge = |i: usize| {
            #[allow(clippy::cast_precision_loss)] // Bin indices are small.
            let i = i as f64;
            i.mul_add(self.width, self.origin)
        };
        Histogram {
            edges: (first..=last + 1).map(edge).collect(),
            counts: self.counts[first..=last].to_vec(),
        }
    }
}

#[derive(Debug, Default)]
struct CategoricalAcc {
    count: usize,
    missing: usize,
    chars: usize,
    capped: bool,
    counts: HashMap<String, usize>,
}

impl CategoricalAcc {
    fn add(&mut self, value: Option<&str>) {
        let Some(value) = value else {
            self.missing += 1;
            return;
        };
        self.count += 1;
        self.chars += value.chars().count();
        if let Some(n) = self.counts.get_mut(value) {
            *n += 1;
        } else if self.counts.len() < MAX_TRACKED_VALUES {
            self.counts.insert(value.to_owned(), 1);
        } else {
            self.capped = true;
        }
    }

    fn finish(self, options: &StatsOptions) -> CategoricalStats {
        let distinct = self.counts.len();
        let mut top: Vec<ValueCount> = self
            .counts
            .into_iter()
            .map(|(value, count)| ValueCount { value, count })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        top.truncate(options.top_k);
        #[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
        let mean_length = (self.count > 0).then(|| self.chars as f64 / self.count as f64);
        CategoricalStats {
            distinct,
            capped: self.capped,
            top,
            mean_length,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_grows_both_ways_and_counts_exactly() {
        let mut h = GrowingHistogram::new(8);
        let values = [5.0, 5.5, -100.0, 3.0, 1000.0, 7.25, 5.0];
        for v in values {
            h.add(v);
        }
        let h = h.finish();
        assert_eq!(h.counts.iter().sum::<u64>(), 7);
        assert_eq!(h.edges.len(), h.counts.len() + 1);
        for v in values {
            assert!(
                h.edges[0] <= v && v <= *h.edges.last().unwrap(),
                "{v} {h:?}"
            );
        }
    }
}
