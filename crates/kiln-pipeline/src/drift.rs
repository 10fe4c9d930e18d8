//! Drift of new data against the training rows' statistics (the bundle's `stats.json`).
//!
//! Numeric columns: the population stability index (PSI) over the training histogram's bins
//! and a Kolmogorov–Smirnov statistic. Categorical and boolean columns: PSI over the training
//! top values (plus one bucket for every other value) and a chi-square test of the new counts
//! against the training shares. Free-text columns are not checked.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use arrow_array::Array;
use kiln_data::stats::{CategoricalStats, ColumnStats, NumericStats, Summary};
use kiln_data::{ColumnRef, ColumnType, DatasetStats, Table};
use serde::{Deserialize, Serialize};

use crate::BundleSpec;

/// Shares below this are raised to it in PSI (an empty bin would make it infinite) and in
/// chi-square's expected counts.
const MIN_SHARE: f64 = 1e-4;
/// PSI merges adjacent training bins until each holds at least this share of the training
/// rows: sparse bins make PSI noisy on small samples.
const MIN_BIN_SHARE: f64 = 0.05;

/// `[drift]`: when a feature counts as drifted. Recorded in the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    /// PSI above this is drift (0.1–0.2 is the usual "moderate" band).
    pub psi: f64,
    /// A Kolmogorov–Smirnov statistic (largest CDF gap) above this is drift.
    pub ks: f64,
    /// A chi-square p-value below this is drift.
    pub chi2_p_value: f64,
    /// Recent input rows `kiln serve` keeps to report drift on `/metrics`.
    pub window: usize,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            psi: 0.2,
            ks: 0.15,
            chi2_p_value: 0.001,
            window: 1000,
        }
    }
}

/// One feature's drift.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDrift {
    /// The column.
    pub column: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    /// Non-missing new values compared.
    pub rows: usize,
    /// Population stability index.
    pub psi: f64,
    /// Kolmogorov–Smirnov statistic (numeric columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks: Option<f64>,
    /// Chi-square statistic (categorical columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi2: Option<f64>,
    /// Its p-value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi2_p_value: Option<f64>,
    /// Whether a threshold is crossed.
    pub drifted: bool,
}

/// Drift of every checked feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    /// Rows compared.
    pub rows: usize,
    /// The thresholds applied.
    pub thresholds: DriftConfig,
    /// One entry per checked feature, in schema order.
    pub features: Vec<FeatureDrift>,
}

impl DriftReport {
    /// Whether any feature drifted.
    pub fn drifted(&self) -> bool {
        self.features.iter().any(|f| f.drifted)
    }

    /// An HTML `<section>` with the report's table (drifted rows marked).
    pub fn html_section(&self) -> String {
        let t = &self.thresholds;
        let mut html = format!(
            "<section class=\"drift\">\n<h2>Drift</h2>\n<p>{} rows; drift when PSI &gt; {}, KS &gt; {} or chi-square p &lt; {}.</p>\n<table>\n<tr><th>feature</th><th>kind</th><th>rows</th><th>PSI</th><th>KS</th><th>chi-square</th><th>p</th><th>drift</th></tr>\n",
            self.rows, t.psi, t.ks, t.chi2_p_value
        );
        let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.4}"));
        for f in &self.features {
            // Writing into a String cannot fail.
            let _ = writeln!(
                html,
                "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if f.drifted { " class=\"drifted\"" } else { "" },
                escape(&f.column),
                f.kind,
                f.rows,
                f.psi,
                opt(f.ks),
                opt(f.chi2),
                opt(f.chi2_p_value),
                if f.drifted { "yes" } else { "no" },
            );
        }
        html.push_str("</table>\n</section>\n");
        html
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// New values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// Finite numbers (datetimes as microseconds since the epoch).
    Numeric(Vec<f64>),
    /// Labels as text.
    Categorical(Vec<String>),
}

impl Sample {
    /// The present values of `column` of `table`; `None` for free text.
    pub fn of(column: ColumnRef<'_>) -> Option<Sample> {
        Some(match column {
            ColumnRef::Numeric(a) => {
                Sample::Numeric(a.iter().flatten().filter(|v| v.is_finite()).collect())
            }
            #[allow(clippy::cast_precision_loss)] // Stats hold datetimes as f64 too.
            ColumnRef::Datetime(a) => {
                Sample::Numeric(a.iter().flatten().map(|v| v as f64).collect())
            }
            ColumnRef::Categorical(a) => {
                Sample::Categorical(a.iter().flatten().map(str::to_owned).collect())
            }
            ColumnRef::Boolean(a) => Sample::Categorical(
                a.iter()
                    .flatten()
                    .map(|b| b.to_string())
                    .collect::<Vec<String>>(),
            ),
            ColumnRef::Text(_) => return None,
        })
    }
}

/// The drift of `sample` against the training statistics `baseline` of column `column`;
/// `None` when they do not match in kind or the baseline has no values.
pub fn feature_drift(
    column: &str,
    baseline: &ColumnStats,
    sample: &Sample,
    config: &DriftConfig,
) -> Option<FeatureDrift> {
    match (&baseline.summary, sample) {
        (Summary::Numeric(stats), Sample::Numeric(values)) => {
            let (psi, ks) = numeric_drift(stats, values)?;
            Some(FeatureDrift {
                column: column.to_owned(),
                kind: "numeric",
                rows: values.len(),
                psi,
                ks: Some(ks),
                chi2: None,
                chi2_p_value: None,
                drifted: psi > config.psi || ks > config.ks,
            })
        }
        (Summary::Categorical(stats), Sample::Categorical(values)) => {
            let (psi, chi2, p) = categorical_drift(stats, baseline.count, values)?;
            Some(FeatureDrift {
                column: column.to_owned(),
                kind: "categorical",
                rows: values.len(),
                psi,
                ks: None,
                chi2: Some(chi2),
                chi2_p_value: Some(p),
                drifted: psi > config.psi || p < config.chi2_p_value,
            })
        }
        _ => None,
    }
}

/// The drift of every input column of `table` against `stats`, with `spec`'s thresholds.
pub fn drift_report(spec: &BundleSpec, stats: &DatasetStats, table: &Table) -> DriftReport {
    let features = spec
        .input_columns()
        .filter_map(|c| {
            let sample = Sample::of(table.column(&c.name)?)?;
            feature_drift(&c.name, stats.column(&c.name)?, &sample, &spec.drift)
        })
        .collect();
    DriftReport {
        rows: table.n_rows(),
        thresholds: spec.drift.clone(),
        features,
    }
}

/// PSI over the training histogram's bins (merged to at least [`MIN_BIN_SHARE`] each, plus a
/// bin below and one above its range) and the Kolmogorov–Smirnov statistic.
///
/// The training CDF is known exactly at the histogram's edges (its counts are exact) and
/// approximately at the sketch's quantiles (`F(value_q) ≈ q`, within DDSketch's relative
/// error on the value); KS is the largest gap between it and the new values' empirical CDF
/// at those points. That is a lower bound on the exact two-sample statistic, short of it by
/// at most the training mass between two neighbouring points (one bin of 20, or less).
fn numeric_drift(stats: &NumericStats, values: &[f64]) -> Option<(f64, f64)> {
    let h = &stats.histogram;
    #[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
    let total = h.counts.iter().sum::<u64>() as f64;
    if values.is_empty() || total == 0.0 || h.edges.len() != h.counts.len() + 1 {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    #[allow(clippy::cast_precision_loss)]
    let n = sorted.len() as f64;
    #[allow(clippy::cast_precision_loss)]
    let below = |x: f64| sorted.partition_point(|&v| v < x) as f64 / n;
    #[allow(clippy::cast_precision_loss)]
    let at_most = |x: f64| sorted.partition_point(|&v| v <= x) as f64 / n;

    // Merged bins: cut at an edge once the bin holds MIN_BIN_SHARE of the training rows.
    let mut cuts = vec![h.edges[0]];
    let mut base_shares = vec![0.0];
    let (mut acc, mut consumed) = (0.0, 0.0);
    for (i, &count) in h.counts.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let share = count as f64 / total;
        acc += share;
        consumed += share;
        // The tail joins this bin when what is left would be too thin for one of its own.
        if i + 1 == h.counts.len() || (acc >= MIN_BIN_SHARE && 1.0 - consumed >= MIN_BIN_SHARE) {
            cuts.push(h.edges[i + 1]);
            base_shares.push(acc);
            acc = 0.0;
        }
    }
    base_shares.push(0.0);
    // New shares: below the first edge, each merged bin (the last one closed), above.
    let top = *h.edges.last()?;
    let mut new_shares = vec![below(cuts[0])];
    for (i, pair) in cuts.windows(2).enumerate() {
        // The last bin holds its upper edge.
        let hi = if i + 2 == cuts.len() {
            at_most(top)
        } else {
            below(pair[1])
        };
        new_shares.push(hi - below(pair[0]));
    }
    new_shares.push(1.0 - at_most(top));
    let psi = psi(&base_shares, &new_shares);

    let mut ks: f64 = 0.0;
    let mut cumulative = 0;
    for (i, &edge) in h.edges.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let base = cumulative as f64 / total;
        ks = ks.max((below(edge) - base).abs());
        cumulative += h.counts.get(i).copied().unwrap_or(0);
    }
    ks = ks.max((at_most(top) - 1.0).abs());
    // With ties at a quantile's value, any share in [F(v−), F(v)] matches q.
    for q in &stats.quantiles {
        ks = ks.max(below(q.value) - q.q).max(q.q - at_most(q.value));
    }
    Some((psi, ks))
}

/// PSI and chi-square over the training top values plus an "any other value" bucket.
fn categorical_drift(
    stats: &CategoricalStats,
    count: usize,
    values: &[String],
) -> Option<(f64, f64, f64)> {
    if values.is_empty() || count == 0 {
        return None;
    }
    let index: BTreeMap<&str, usize> = stats
        .top
        .iter()
        .enumerate()
        .map(|(i, v)| (v.value.as_str(), i))
        .collect();
    let other = stats.top.len();
    let mut observed = vec![0_usize; other + 1];
    for v in values {
        observed[index.get(v.as_str()).copied().unwrap_or(other)] += 1;
    }
    #[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
    let base: Vec<f64> = stats
        .top
        .iter()
        .map(|v| v.count)
        .chain([count - stats.top.iter().map(|v| v.count).sum::<usize>()])
        .map(|c| c as f64 / count as f64)
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let n = values.len() as f64;
    #[allow(clippy::cast_precision_loss)]
    let new: Vec<f64> = observed.iter().map(|&o| o as f64 / n).collect();
    // An empty "other" bucket in training and in the new data is not a category.
    let used: Vec<usize> = (0..base.len())
        .filter(|&i| base[i] > 0.0 || observed[i] > 0)
        .collect();
    let chi2: f64 = used
        .iter()
        .map(|&i| {
            let expected = base[i].max(MIN_SHARE) * n;
            #[allow(clippy::cast_precision_loss)]
            let o = observed[i] as f64;
            (o - expected).powi(2) / expected
        })
        .sum();
    #[allow(clippy::cast_precision_loss)]
    let dof = (used.len().max(2) - 1) as f64;
    Some((psi(&base, &new), chi2, chi2_survival(chi2, dof)))
}

/// Σ (new − base) · ln(new / base), with shares floored at [`MIN_SHARE`].
fn psi(base: &[f64], new: &[f64]) -> f64 {
    base.iter()
        .zip(new)
        .map(|(&b, &n)| {
            let (b, n) = (b.max(MIN_SHARE), n.max(MIN_SHARE));
            (n - b) * (n / b).ln()
        })
        .sum()
}

/// P(X ≥ x) for a chi-square variable with `dof` degrees of freedom: the regularized upper
/// incomplete gamma function Q(dof/2, x/2) (series below a + 1, continued fraction above, as
/// in Numerical Recipes §6.2).
#[allow(clippy::many_single_char_names)] // The names of Numerical Recipes.
fn chi2_survival(x: f64, dof: f64) -> f64 {
    let (a, x) = (dof / 2.0, x / 2.0);
    if x <= 0.0 {
        return 1.0;
    }
    let front = a.mul_add(x.ln(), -x) - ln_gamma(a);
    if x < a + 1.0 {
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..500 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        sum.mul_add(-front.exp(), 1.0).clamp(0.0, 1.0)
    } else {
        // Lentz's method for the continued fraction.
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..500 {
            let i = f64::from(i);
            let an = -i * (i - a);
            b += 2.0;
            d = an.mul_add(d, b);
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (front.exp() * h).clamp(0.0, 1.0)
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let mut sum = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        #[allow(clippy::cast_precision_loss)] // i < 9.
        let i = i as f64;
        sum += g / (x + i);
    }
    0.5f64.mul_add((2.0 * std::f64::consts::PI).ln(), (x + 0.5) * t.ln()) - t + sum.ln()
}

/// The most recent input rows, per input column, for drift gauges on a live server.
#[derive(Debug, Clone)]
pub struct DriftWindow {
    capacity: usize,
    columns: Vec<(String, WindowColumn)>,
    rows: usize,
}

#[derive(Debug, Clone)]
enum WindowColumn {
    Numeric(VecDeque<Option<f64>>),
    Categorical(VecDeque<Option<String>>),
}

impl DriftWindow {
    /// A window of `spec`'s input columns (free text left out) holding `spec.drift.window`
    /// rows.
    pub fn new(spec: &BundleSpec) -> Self {
        let columns = spec
            .input_columns()
            .filter_map(|c| {
                let column = match c.column_type {
                    ColumnType::Numeric | ColumnType::Datetime => {
                        WindowColumn::Numeric(VecDeque::new())
                    }
                    ColumnType::Categorical | ColumnType::Boolean => {
                        WindowColumn::Categorical(VecDeque::new())
                    }
                    ColumnType::Text => return None,
                };
                Some((c.name.clone(), column))
            })
            .collect();
        Self {
            capacity: spec.drift.window.max(1),
            columns,
            rows: 0,
        }
    }

    /// Adds `table`'s rows, dropping the oldest beyond the capacity.
    pub fn push(&mut self, table: &Table) {
        for (name, column) in &mut self.columns {
            let Some(values) = table.column(name) else {
                continue;
            };
            for r in 0..table.n_rows() {
                match (&mut *column, values) {
                    (WindowColumn::Numeric(q), ColumnRef::Numeric(a)) => {
                        q.push_back((!a.is_null(r)).then(|| a.value(r)));
                    }
                    #[allow(clippy::cast_precision_loss)] // As in the stats.
                    (WindowColumn::Numeric(q), ColumnRef::Datetime(a)) => {
                        q.push_back((!a.is_null(r)).then(|| a.value(r) as f64));
                    }
                    (WindowColumn::Categorical(q), values) => q.push_back(values.text(r)),
                    _ => {}
                }
            }
            let excess = match column {
                WindowColumn::Numeric(q) => q.len().saturating_sub(self.capacity),
                WindowColumn::Categorical(q) => q.len().saturating_sub(self.capacity),
            };
            match column {
                WindowColumn::Numeric(q) => drop(q.drain(..excess)),
                WindowColumn::Categorical(q) => drop(q.drain(..excess)),
            }
        }
        self.rows = (self.rows + table.n_rows()).min(self.capacity);
    }

    /// The window's drift against `stats` with `config`'s thresholds.
    pub fn report(&self, stats: &DatasetStats, config: &DriftConfig) -> DriftReport {
        let features = self
            .columns
            .iter()
            .filter_map(|(name, column)| {
                let sample = match column {
                    WindowColumn::Numeric(q) => Sample::Numeric(
                        q.iter()
                            .flatten()
                            .copied()
                            .filter(|v| v.is_finite())
                            .collect(),
                    ),
                    WindowColumn::Categorical(q) => {
                        Sample::Categorical(q.iter().flatten().cloned().collect())
                    }
                };
                feature_drift(name, stats.column(name)?, &sample, config)
            })
            .collect();
        DriftReport {
            rows: self.rows,
            thresholds: config.clone(),
            features,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi2_survival_matches_tables() {
        // 95th percentiles of chi-square with 1, 2 and 10 degrees of freedom.
        for (x, dof) in [(3.841_458_8, 1.0), (5.991_464_5, 2.0), (18.307_038, 10.0)] {
            assert!((chi2_survival(x, dof) - 0.05).abs() < 1e-6, "{x} {dof}");
        }
        assert!((chi2_survival(0.0, 3.0) - 1.0).abs() < 1e-12);
        assert!(chi2_survival(500.0, 3.0) < 1e-100);
    }

    #[test]
    fn psi_is_zero_for_equal_shares_and_grows_with_shift() {
        assert!(psi(&[0.5, 0.5], &[0.5, 0.5]).abs() < 1e-12);
        assert!(psi(&[0.5, 0.5], &[0.1, 0.9]) > 0.2);
    }
}
