//! Fitting the transforms over a stream of chunks, for data larger than memory: a
//! [`FeaturesFitter`] observes the train rows of each chunk, in one or two passes, and finishes
//! into the same [`FittedFeatures`] an in-memory fit returns, so bundles, `predict` and `serve`
//! are unchanged.
//!
//! Exact, equal to the in-memory fit up to floating-point summation order: means, standard
//! deviations, minima and maxima (mean impute, standard / min-max / max-abs scaling, datetime
//! year scaling, regression targets), category counts (modes, one-hot, index, ordinal and
//! hashing encodings), boolean majorities, text document frequencies, class lists. From the
//! DDSketch quantile sketch `kiln-data`'s statistics use (within 1% relative): median impute,
//! quantile clipping, robust scaling, quantile bins, the datetime fill (within 1% of the span
//! from the first train value). Yeo-Johnson's λ is fitted on a seeded uniform sample of
//! [`POWER_SAMPLE_ROWS`] train values. Target encoding and CNN image pooling need every row
//! at once and are refused ([`Error::NotStreamable`]).

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::Array;
use foldhash::{HashMap, HashMapExt as _};
use kiln_core::rng::Reservoir;
use kiln_data::stats::{Moments, quantile_sketch};
use kiln_data::{ColumnRef, ColumnType, Table};
use sketches_ddsketch::DDSketch;

use crate::categorical::FittedCategorical;
use crate::config::{CategoricalConfig, Encode, Impute, NumericConfig, Scale};
use crate::datetime::FittedDatetime;
use crate::features::{FeaturePlan, FittedColumn, FittedFeatures, domain_error, number_at, str_at};
use crate::numeric::{FittedNumeric, fit_yeo_johnson, inner_edges, usable_scale};
use crate::text::{FittedText, idf};
use crate::{Error, FittedTarget, Result, TargetKind};

/// Train values Yeo-Johnson's λ is fitted on in a streaming fit.
pub const POWER_SAMPLE_ROWS: usize = 100_000;

/// A streaming fit of a [`FeaturePlan`]: call [`observe`](Self::observe) with the train rows
/// of every chunk, then [`end_pass`](Self::end_pass); repeat the pass while it returns
/// `true`, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct FeaturesFitter {
    columns: Vec<(String, ColumnFitter)>,
    pass: usize,
    rows: usize,
}

#[derive(Debug)]
enum ColumnFitter {
    Numeric(Box<NumericFitter>),
    Boolean { trues: usize, falses: usize },
    Categorical(CategoricalConfig, bool, HashMap<String, usize>),
    Datetime(Box<DatetimeFitter>),
    Text(Box<TextFitter>),
}

impl FeaturePlan {
    /// A streaming fit of this plan (see [`FeaturesFitter`]).
    ///
    /// # Errors
    /// [`Error::NotStreamable`] for target encoding or image pooling; config errors as
    /// [`FeaturePlan::fit`].
    pub fn fitter(&self) -> Result<FeaturesFitter> {
        self.check_overrides()?;
        if self.image_channels.is_some() {
            return Err(Error::NotStreamable {
                option: "model.image".into(),
                what: "per-channel image standardization",
            });
        }
        let columns = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let name = column.name.as_str();
                let fitter = match column.column_type {
                    ColumnType::Numeric => {
                        let config = self.config.resolve(name, "numeric", &self.config.numeric)?;
                        ColumnFitter::Numeric(Box::new(NumericFitter::new(config, i)))
                    }
                    ColumnType::Boolean => ColumnFitter::Boolean {
                        trues: 0,
                        falses: 0,
                    },
                    ColumnType::Categorical => {
                        let config = self.categorical_config(name)?;
                        if config.encode == Encode::Target {
                            return Err(Error::NotStreamable {
                                option: format!("features: column `{name}`'s encode = \"target\""),
                                what: "cross-fitted target encoding",
                            });
                        }
                        let as_index = self.categorical_as_index && config.encode == Encode::OneHot;
                        ColumnFitter::Categorical(config, as_index, HashMap::new())
                    }
                    ColumnType::Datetime => {
                        let config =
                            self.config
                                .resolve(name, "datetime", &self.config.datetime)?;
                        ColumnFitter::Datetime(Box::new(DatetimeFitter {
                            fitted: FittedDatetime::fit(name, &config, &[]),
                            origin: None,
                            offsets: quantile_sketch(),
                            years: Moments::default(),
                        }))
                    }
                    ColumnType::Text => {
                        let config = self.config.resolve(name, "text", &self.config.text)?;
                        let fitted = FittedText::fit(name, &config, &[]);
                        let width = fitted.width;
                        ColumnFitter::Text(Box::new(TextFitter {
                            tfidf: config.tfidf,
                            fitted,
                            counts: vec![0.0; width],
                            document_frequency: vec![0; width],
                        }))
                    }
                };
                Ok((name.to_owned(), fitter))
            })
            .collect::<Result<_>>()?;
        Ok(FeaturesFitter {
            columns,
            pass: 1,
            rows: 0,
        })
    }
}

impl FeaturesFitter {
    /// Learns from `rows` (train rows, indices into `table`) in the current pass.
    ///
    /// # Errors
    /// [`Error::Data`] when a planned column is not in `table`; [`Error::OutOfDomain`] and
    /// [`Error::NotInOrder`] naming the line of a value a transform cannot take.
    pub fn observe(&mut self, table: &Table, rows: &[usize]) -> Result<()> {
        if self.pass == 1 {
            self.rows += rows.len();
        }
        for (name, fitter) in &mut self.columns {
            let column = table.require(name)?;
            match (fitter, column) {
                (ColumnFitter::Numeric(f), ColumnRef::Numeric(values)) => {
                    for &r in rows {
                        f.observe(number_at(values, r), self.pass)
                            .map_err(|e| domain_error(table, name, r, e))?;
                    }
                }
                (_, _) if self.pass > 1 => {}
                (ColumnFitter::Boolean { trues, falses }, ColumnRef::Boolean(values)) => {
                    let valid = rows.iter().filter(|&&r| values.is_valid(r));
                    let (t, f): (Vec<bool>, Vec<bool>) =
                        valid.map(|&r| values.value(r)).partition(|&b| b);
                    *trues += t.len();
                    *falses += f.len();
                }
                (ColumnFitter::Categorical(config, _, counts), ColumnRef::Categorical(values)) => {
                    for &r in rows {
                        let Some(value) = str_at(values, r) else {
                            continue;
                        };
                        if let Some(order) = &config.order
                            && config.encode == Encode::Ordinal
                            && !order.iter().any(|o| o == value)
                        {
                            return Err(Error::NotInOrder {
                                path: table.path().to_path_buf(),
                                line: table.line_of(r),
                                column: name.clone(),
                                value: value.to_owned(),
                            });
                        }
                        if let Some(n) = counts.get_mut(value) {
                            *n += 1;
                        } else {
                            counts.insert(value.to_owned(), 1);
                        }
                    }
                }
                (ColumnFitter::Datetime(f), ColumnRef::Datetime(values)) => {
                    for &r in rows.iter().filter(|&&r| values.is_valid(r)) {
                        f.observe(values.value(r));
                    }
                }
                (ColumnFitter::Text(f), ColumnRef::Text(values)) => {
                    if f.tfidf {
                        for &r in rows {
                            f.fitted.add_document(
                                str_at(values, r),
                                &mut f.counts,
                                &mut f.document_frequency,
                            );
                        }
                    }
                }
                (_, _) => unreachable!(
                    "column `{name}` is planned with another type than the table's; tables \
                     are conformed to the schema first"
                ),
            }
        }
        Ok(())
    }

    /// Ends the current pass: `true` when the fit needs another pass over the same train
    /// rows (a second one for numeric columns, whose scaling depends on their fill and clip).
    ///
    /// # Errors
    /// [`Error::NoTrainingRows`] when the first pass saw none.
    pub fn end_pass(&mut self) -> Result<bool> {
        if self.rows == 0 {
            return Err(Error::NoTrainingRows);
        }
        let more = self.pass == 1
            && self
                .columns
                .iter()
                .any(|(_, f)| matches!(f, ColumnFitter::Numeric(_)));
        if self.pass == 1 {
            for (name, fitter) in &mut self.columns {
                if let ColumnFitter::Numeric(f) = fitter {
                    f.end_first_pass(name);
                }
            }
        }
        self.pass += 1;
        Ok(more)
    }

    /// The fitted transforms.
    pub fn finish(self) -> FittedFeatures {
        let rows = self.rows;
        let columns = self
            .columns
            .into_iter()
            .map(|(name, fitter)| match fitter {
                ColumnFitter::Numeric(f) => FittedColumn::Numeric(f.finish(&name)),
                ColumnFitter::Boolean { trues, falses } => FittedColumn::Boolean {
                    name,
                    fill: trues > falses,
                },
                ColumnFitter::Categorical(config, as_index, counts) => {
                    let counts: BTreeMap<&str, usize> =
                        counts.iter().map(|(v, &n)| (v.as_str(), n)).collect();
                    FittedColumn::Categorical(FittedCategorical::from_counts(
                        &name, &config, &counts, as_index,
                    ))
                }
                ColumnFitter::Datetime(f) => FittedColumn::Datetime(f.finish()),
                ColumnFitter::Text(f) => {
                    let mut fitted = f.fitted;
                    if f.tfidf {
                        fitted.idf = Some(idf(&f.document_frequency, rows));
                    }
                    FittedColumn::Text(fitted)
                }
            })
            .collect();
        FittedFeatures { columns }
    }
}

/// `sketch`'s `q`-quantile (0 when it saw no values), as the statistics compute it.
fn sketch_quantile(sketch: &DDSketch, q: f64) -> f64 {
    kiln_data::stats::sketch_quantile(sketch, q).unwrap_or(0.0)
}

/// A numeric column: pass 1 learns the fill and clip bounds (and samples for Yeo-Johnson),
/// pass 2 the scaling or bins of the prepared values.
struct NumericFitter {
    config: NumericConfig,
    present: usize,
    missing: usize,
    sum: f64,
    raw: Option<DDSketch>,
    power_sample: Option<Reservoir<Option<f64>>>,
    fitted: Option<FittedNumeric>,
    prepared: Moments,
    prepared_sketch: Option<DDSketch>,
}

// DDSketch has no Debug.
impl std::fmt::Debug for NumericFitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumericFitter")
            .field("present", &self.present)
            .field("missing", &self.missing)
            .finish_non_exhaustive()
    }
}

impl NumericFitter {
    fn new(config: NumericConfig, index: usize) -> Self {
        let clip_quantiles = config.clip.is_some_and(|c| c.quantiles.is_some());
        let needs_raw_sketch = config.impute == Impute::Median || clip_quantiles;
        let needs_prepared_sketch = config.bins.is_some() || config.scale == Scale::Robust;
        Self {
            present: 0,
            missing: 0,
            sum: 0.0,
            raw: needs_raw_sketch.then(quantile_sketch),
            power_sample: config.power.then(|| {
                Reservoir::new(
                    POWER_SAMPLE_ROWS,
                    kiln_core::rng::stream(index as u64, "stream-fit/yeo-johnson"),
                )
            }),
            fitted: None,
            prepared: Moments::default(),
            prepared_sketch: needs_prepared_sketch.then(quantile_sketch),
            config,
        }
    }

    fn observe(
        &mut self,
        value: Option<f64>,
        pass: usize,
    ) -> Result<(), crate::numeric::OutOfDomain> {
        match &self.fitted {
            Some(fitted) if pass > 1 => {
                let x = fitted.prepare(value)?;
                self.prepared.add(x);
                if let Some(s) = &mut self.prepared_sketch {
                    s.add(x);
                }
            }
            _ => {
                match value {
                    Some(v) => {
                        self.present += 1;
                        self.sum += v;
                        if let Some(s) = &mut self.raw {
                            s.add(v);
                        }
                    }
                    None => self.missing += 1,
                }
                if let Some(sample) = &mut self.power_sample {
                    sample.offer(|| value);
                }
            }
        }
        Ok(())
    }

    fn end_first_pass(&mut self, name: &str) {
        self.fitted = Some(self.first_pass_fit(name));
    }

    /// Fill, clip bounds and Yeo-Johnson's λ, as [`FittedNumeric::fit`] learns them.
    fn first_pass_fit(&mut self, name: &str) -> FittedNumeric {
        let config = &self.config;
        let fill = match config.impute {
            Impute::Median => self.raw.as_ref().map_or(0.0, |s| sketch_quantile(s, 0.5)),
            #[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
            Impute::Mean if self.present > 0 => self.sum / self.present as f64,
            Impute::Mean => 0.0,
            Impute::Constant => config.fill_value,
        };
        let missing = self.missing as u64;
        let raw = self.raw.as_ref();
        let mut fitted = FittedNumeric::unscaled(name, config, fill, |[lo, hi]| {
            let mut filled = raw.cloned().unwrap_or_else(quantile_sketch);
            filled.add_with_count(fill, missing);
            [sketch_quantile(&filled, lo), sketch_quantile(&filled, hi)]
        });
        if let Some(sample) = self.power_sample.take() {
            // Values out of log1p's domain are reported, with their line, by the second pass.
            let prepared: Vec<f64> = sample
                .into_items()
                .into_iter()
                .filter_map(|v| fitted.before_power(v.unwrap_or(fill)).ok())
                .collect();
            fitted.power = Some(fit_yeo_johnson(&prepared));
        }
        self.raw = None;
        fitted
    }

    fn finish(mut self, name: &str) -> FittedNumeric {
        let mut fitted = match self.fitted.take() {
            Some(fitted) => fitted,
            None => self.first_pass_fit(name),
        };
        let quantile = |q| {
            self.prepared_sketch
                .as_ref()
                .map_or(0.0, |s| sketch_quantile(s, q))
        };
        if let Some(n_bins) = self.config.bins {
            fitted.bins = Some(inner_edges(n_bins, quantile));
            return fitted;
        }
        let m = &self.prepared;
        let (center, scale) = match self.config.scale {
            Scale::Standard => (m.mean, m.variance().sqrt()),
            Scale::MinMax => {
                let (lo, hi) = m.range();
                (lo, hi - lo)
            }
            Scale::Robust => (quantile(0.5), quantile(0.75) - quantile(0.25)),
            Scale::MaxAbs => {
                let (lo, hi) = m.range();
                (0.0, lo.abs().max(hi.abs()))
            }
            Scale::None => (0.0, 1.0),
        };
        fitted.center = center;
        fitted.scale = usable_scale(scale, center);
        fitted
    }
}

/// A datetime column: the fill from a sketch of offsets from the first value, the year's
/// moments exactly.
struct DatetimeFitter {
    fitted: FittedDatetime,
    origin: Option<i64>,
    offsets: DDSketch,
    years: Moments,
}

impl std::fmt::Debug for DatetimeFitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatetimeFitter")
            .field("fitted", &self.fitted)
            .finish_non_exhaustive()
    }
}

impl DatetimeFitter {
    fn observe(&mut self, micros: i64) {
        let origin = *self.origin.get_or_insert(micros);
        #[allow(clippy::cast_precision_loss)] // Offsets in µs are exact below 2^53 (~285 years).
        self.offsets.add((micros - origin) as f64);
        #[allow(clippy::cast_precision_loss)] // Years are small.
        self.years
            .add(kiln_data::CivilTime::from_micros(micros).year as f64);
    }

    fn finish(self) -> FittedDatetime {
        let mut fitted = self.fitted;
        #[allow(clippy::cast_possible_truncation)] // A rounded offset between two timestamps.
        let offset = sketch_quantile(&self.offsets, 0.5).round() as i64;
        fitted.fill = self.origin.map_or(0, |o| o + offset);
        fitted.year_center = self.years.mean;
        let var = self.years.variance();
        fitted.year_scale = if var > 0.0 { var.sqrt() } else { 1.0 };
        fitted
    }
}

/// A text column: document frequencies per bucket.
#[derive(Debug)]
struct TextFitter {
    tfidf: bool,
    fitted: FittedText,
    counts: Vec<f64>,
    document_frequency: Vec<usize>,
}

/// A streaming fit of the target: the classes seen, or the mean and standard deviation, as
/// [`FittedTarget::fit`] learns them from the same rows.
#[derive(Debug)]
pub struct TargetFitter {
    name: String,
    kind: TargetKind,
    classes: BTreeSet<String>,
    numeric: bool,
    values: Moments,
    rows: usize,
}

impl TargetFitter {
    /// A fit of target column `name` for `kind`.
    pub fn new(name: &str, kind: TargetKind) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            classes: BTreeSet::new(),
            numeric: false,
            values: Moments::default(),
            rows: 0,
        }
    }

    /// Learns from `rows` (train rows) of `table`.
    ///
    /// # Errors
    /// [`Error::Data`] when the column is missing; [`Error::TargetType`] for a non-numeric
    /// regression target.
    pub fn observe(&mut self, table: &Table, rows: &[usize]) -> Result<()> {
        let column = table.require(&self.name)?;
        self.rows += rows.len();
        match (self.kind, column) {
            (TargetKind::Regression, ColumnRef::Numeric(values)) => {
                for &r in rows.iter().filter(|&&r| values.is_valid(r)) {
                    self.values.add(values.value(r));
                }
            }
            (TargetKind::Regression, _) => {
                return Err(Error::TargetType {
                    column: self.name.clone(),
                    found: table
                        .schema()
                        .column(&self.name)
                        .map_or(ColumnType::Categorical, |c| c.column_type),
                    task: "regression",
                });
            }
            (TargetKind::Classification, column) => {
                self.numeric = matches!(column, ColumnRef::Numeric(_));
                for label in rows.iter().filter_map(|&r| column.text(r)) {
                    if !self.classes.contains(&label) {
                        self.classes.insert(label);
                    }
                }
            }
        }
        Ok(())
    }

    /// The fitted target.
    ///
    /// # Errors
    /// [`Error::NoTrainingRows`] when no rows were observed.
    pub fn finish(self) -> Result<FittedTarget> {
        if self.rows == 0 {
            return Err(Error::NoTrainingRows);
        }
        Ok(match self.kind {
            TargetKind::Classification => {
                FittedTarget::classes(&self.name, self.classes.into_iter().collect(), self.numeric)
            }
            TargetKind::Regression => {
                FittedTarget::regression(&self.name, self.values.mean, self.values.variance())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use super::*;
    use crate::FeatureConfig;
    use crate::features::tests::table;

    /// Fits `plan` streaming over `rows`, fed in chunks of `chunk` rows.
    fn stream_fit(plan: &FeaturePlan, t: &Table, rows: &[usize], chunk: usize) -> FittedFeatures {
        let mut fitter = plan.fitter().unwrap();
        loop {
            for part in rows.chunks(chunk) {
                fitter.observe(t, part).unwrap();
            }
            if !fitter.end_pass().unwrap() {
                return fitter.finish();
            }
        }
    }

    fn numeric(fitted: &FittedFeatures, i: usize) -> &FittedNumeric {
        match &fitted.columns[i] {
            FittedColumn::Numeric(n) => n,
            other => panic!("{other:?}"),
        }
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn streaming_fit_equals_the_in_memory_fit_on_the_same_rows() {
        let mut text = String::from("x,y,c,b\n");
        for i in 0..3000_u32 {
            let x = if i % 17 == 0 {
                "NA".to_owned()
            } else {
                format!("{}", f64::from(i % 101) * 0.37 - 9.0)
            };
            writeln!(
                text,
                "{x},{},{},{}",
                (i * 7919) % 1000,
                ["a", "b", "b", "c"][i as usize % 4],
                i % 3 == 0
            )
            .unwrap();
        }
        let t = table(&text);
        let rows: Vec<usize> = (0..3000).filter(|r| r % 5 != 0).collect();
        let config: FeatureConfig = serde_json::from_str(
            r#"{"numeric": {"impute": "mean", "scale": "standard"},
                "columns": {"y": {"impute": "median", "scale": "min_max"}}}"#,
        )
        .unwrap();
        let plan = FeaturePlan::new(t.schema(), &[], config);
        let memory = plan.fit(&t, &rows).unwrap();
        let streamed = stream_fit(&plan, &t, &rows, 128);
        let (m, s) = (numeric(&memory, 0), numeric(&streamed, 0));
        assert!(close(m.fill, s.fill, 1e-12), "{} {}", m.fill, s.fill);
        assert!(
            close(m.center, s.center, 1e-9) && close(m.scale, s.scale, 1e-9),
            "{m:?} {s:?}"
        );
        let (m, s) = (numeric(&memory, 1), numeric(&streamed, 1));
        assert_eq!((m.center, m.scale), (s.center, s.scale), "min-max is exact");
        assert!(
            close(m.fill, s.fill, kiln_data::stats::QUANTILE_RELATIVE_ERROR),
            "median from the sketch"
        );
        assert_eq!(
            memory.columns[2..],
            streamed.columns[2..],
            "categories and booleans"
        );
    }

    #[test]
    fn streaming_fit_refuses_target_encoding_and_reports_lines() {
        let t = table("x,c\n1,a\n-3,b\n");
        let config: FeatureConfig =
            serde_json::from_str(r#"{"categorical": {"encode": "target"}}"#).unwrap();
        let err = FeaturePlan::new(t.schema(), &[], config)
            .fitter()
            .unwrap_err();
        assert!(err.to_string().contains("encode = \"target\""), "{err}");
        let config: FeatureConfig =
            serde_json::from_str(r#"{"numeric": {"log1p": true}}"#).unwrap();
        let plan = FeaturePlan::new(t.schema(), &["c"], config);
        let mut fitter = plan.fitter().unwrap();
        fitter.observe(&t, &[0, 1]).unwrap();
        assert!(fitter.end_pass().unwrap());
        let err = fitter.observe(&t, &[0, 1]).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
