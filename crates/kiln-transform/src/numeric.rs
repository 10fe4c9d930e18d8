//! Numeric columns: impute, clip, log1p, Yeo-Johnson, scale or quantile bins.

use serde::{Deserialize, Serialize};

use crate::config::{Impute, NumericConfig, Scale};

/// A fitted numeric column: what every step learned from the train rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedNumeric {
    /// Column name.
    pub name: String,
    /// Replaces missing values.
    pub fill: f64,
    /// Adds a 0/1 output marking missing values.
    #[serde(default, skip_serializing_if = "is_false")]
    pub missing_indicator: bool,
    /// Lower clipping bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<f64>,
    /// Upper clipping bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<f64>,
    /// `ln(1 + x)` after clipping.
    #[serde(default, skip_serializing_if = "is_false")]
    pub log1p: bool,
    /// Yeo-Johnson λ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<f64>,
    /// Subtracted before dividing by `scale`.
    pub center: f64,
    /// Divides (1 for a constant column).
    pub scale: f64,
    /// Inner quantile-bin edges: the output is one-hot over `edges.len() + 1` bins instead
    /// of the scaled value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<Vec<f64>>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference.
fn is_false(b: &bool) -> bool {
    !b
}

/// A value outside a transform's domain (log1p of a value at or below -1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OutOfDomain {
    pub(crate) value: f64,
}

impl FittedNumeric {
    /// Learns every step from `present` (the train values that are not missing) and the count
    /// of missing train values.
    pub(crate) fn fit(
        name: &str,
        config: &NumericConfig,
        present: &[f64],
        missing: usize,
    ) -> Result<Self, OutOfDomain> {
        let fill = match config.impute {
            Impute::Median => median(present),
            Impute::Mean => mean(present),
            Impute::Constant => config.fill_value,
        };
        let filled = || {
            present
                .iter()
                .copied()
                .chain(std::iter::repeat_n(fill, missing))
        };
        let mut fitted = Self::unscaled(name, config, fill, |[lo, hi]| {
            let s = sorted(filled().collect());
            [quantile(&s, lo), quantile(&s, hi)]
        });
        let mut prepared = filled()
            .map(|x| fitted.before_power(x))
            .collect::<Result<Vec<_>, _>>()?;
        if config.power {
            let lambda = fit_yeo_johnson(&prepared);
            fitted.power = Some(lambda);
            for x in &mut prepared {
                *x = yeo_johnson(*x, lambda);
            }
        }
        if let Some(n_bins) = config.bins {
            fitted.bins = Some(bin_edges(&sorted(prepared), n_bins));
            return Ok(fitted);
        }
        let (center, scale) = match config.scale {
            Scale::Standard => {
                let (m, var) = mean_variance(&prepared);
                (m, var.sqrt())
            }
            Scale::MinMax => {
                let (lo, hi) = min_max(&prepared);
                (lo, hi - lo)
            }
            Scale::Robust => {
                let s = sorted(prepared);
                (quantile(&s, 0.5), quantile(&s, 0.75) - quantile(&s, 0.25))
            }
            Scale::MaxAbs => {
                let (lo, hi) = min_max(&prepared);
                (0.0, lo.abs().max(hi.abs()))
            }
            Scale::None => (0.0, 1.0),
        };
        fitted.center = center;
        fitted.scale = usable_scale(scale, center);
        Ok(fitted)
    }

    /// The column with its fill and clip bounds learned (`quantiles` maps the configured clip
    /// quantiles to values), before Yeo-Johnson and scaling are fitted.
    pub(crate) fn unscaled(
        name: &str,
        config: &NumericConfig,
        fill: f64,
        quantiles: impl FnOnce([f64; 2]) -> [f64; 2],
    ) -> Self {
        let (lower, upper) = match config.clip {
            Some(clip) => match clip.quantiles {
                Some(q) => {
                    let [lo, hi] = quantiles(q);
                    (Some(lo), Some(hi))
                }
                None => (clip.min, clip.max),
            },
            None => (None, None),
        };
        Self {
            name: name.to_owned(),
            fill,
            missing_indicator: config.missing_indicator,
            lower,
            upper,
            log1p: config.log1p,
            power: None,
            center: 0.0,
            scale: 1.0,
            bins: None,
        }
    }

    /// What every step learned, on one line.
    pub fn describe(&self) -> String {
        let mut steps = vec![format!("fill={:.6}", self.fill)];
        if let Some(lo) = self.lower {
            steps.push(format!("lower={lo:.6}"));
        }
        if let Some(hi) = self.upper {
            steps.push(format!("upper={hi:.6}"));
        }
        if self.log1p {
            steps.push("log1p".to_owned());
        }
        if let Some(lambda) = self.power {
            steps.push(format!("yeo_johnson(lambda={lambda:.6})"));
        }
        match &self.bins {
            Some(edges) => {
                let edges: Vec<String> = edges.iter().map(|e| format!("{e:.6}")).collect();
                steps.push(format!("bins at [{}]", edges.join(", ")));
            }
            None => steps.push(format!("center={:.6} scale={:.6}", self.center, self.scale)),
        }
        if self.missing_indicator {
            steps.push("missing_indicator".to_owned());
        }
        steps.join(" ")
    }

    /// Output columns: the value (or the bins), then the missing indicator.
    pub fn width(&self) -> usize {
        self.bins.as_ref().map_or(1, |e| e.len() + 1) + usize::from(self.missing_indicator)
    }

    /// Clip and log1p.
    pub(crate) fn before_power(&self, x: f64) -> Result<f64, OutOfDomain> {
        let x = match (self.lower, self.upper) {
            (Some(lo), Some(hi)) => x.clamp(lo, hi),
            (Some(lo), None) => x.max(lo),
            (None, Some(hi)) => x.min(hi),
            (None, None) => x,
        };
        if self.log1p {
            if x <= -1.0 {
                return Err(OutOfDomain { value: x });
            }
            return Ok(x.ln_1p());
        }
        Ok(x)
    }

    /// The transformed value before scaling or binning.
    pub(crate) fn prepare(&self, raw: Option<f64>) -> Result<f64, OutOfDomain> {
        let x = self.before_power(raw.unwrap_or(self.fill))?;
        Ok(self.power.map_or(x, |lambda| yeo_johnson(x, lambda)))
    }

    /// Writes the outputs for one value (`None` when missing) into `out[..width()]`, which
    /// must be zeroed.
    pub(crate) fn write(&self, raw: Option<f64>, out: &mut [f32]) -> Result<(), OutOfDomain> {
        let x = self.prepare(raw)?;
        let value_width = if let Some(edges) = &self.bins {
            out[edges.partition_point(|&e| e <= x)] = 1.0;
            edges.len() + 1
        } else {
            #[allow(clippy::cast_possible_truncation)] // Features are f32 on every backend.
            let scaled = ((x - self.center) / self.scale) as f32;
            out[0] = scaled;
            1
        };
        if self.missing_indicator && raw.is_none() {
            out[value_width] = 1.0;
        }
        Ok(())
    }

    /// The scaled value in f64: `None` with bins, or outside a transform's domain.
    pub fn apply(&self, raw: Option<f64>) -> Option<f64> {
        if self.bins.is_some() {
            return None;
        }
        self.prepare(raw)
            .ok()
            .map(|x| (x - self.center) / self.scale)
    }

    /// Maps a scaled output back to the input's units, where every step is invertible (no
    /// bins; clipping is the identity inside its bounds).
    pub fn inverse(&self, y: f64) -> Option<f64> {
        if self.bins.is_some() {
            return None;
        }
        let mut x = y.mul_add(self.scale, self.center);
        if let Some(lambda) = self.power {
            x = yeo_johnson_inverse(x, lambda);
        }
        if self.log1p {
            x = x.exp_m1();
        }
        Some(x)
    }

    /// Whether the column is only impute, clip and scale: the dense path's steps.
    pub fn is_dense(&self) -> bool {
        !self.log1p && self.power.is_none() && self.bins.is_none() && !self.missing_indicator
    }
}

/// Yeo-Johnson's power transform (Yeo & Johnson 2000), as scikit-learn computes it.
pub(crate) fn yeo_johnson(x: f64, lambda: f64) -> f64 {
    const EPS: f64 = 1e-8;
    if x >= 0.0 {
        if lambda.abs() < EPS {
            x.ln_1p()
        } else {
            ((x + 1.0).powf(lambda) - 1.0) / lambda
        }
    } else if (lambda - 2.0).abs() < EPS {
        -(-x).ln_1p()
    } else {
        -((1.0 - x).powf(2.0 - lambda) - 1.0) / (2.0 - lambda)
    }
}

fn yeo_johnson_inverse(y: f64, lambda: f64) -> f64 {
    const EPS: f64 = 1e-8;
    if y >= 0.0 {
        if lambda.abs() < EPS {
            y.exp_m1()
        } else {
            y.mul_add(lambda, 1.0).powf(1.0 / lambda) - 1.0
        }
    } else if (lambda - 2.0).abs() < EPS {
        1.0 - (-y).exp()
    } else {
        1.0 - (-(2.0 - lambda)).mul_add(y, 1.0).powf(1.0 / (2.0 - lambda))
    }
}

/// λ maximizing the Yeo-Johnson profile log-likelihood (scikit-learn's objective). The
/// likelihood is unimodal in λ, so a golden-section search over [-10, 10] finds it; written by
/// hand because a one-dimensional search does not justify an optimization crate.
pub(crate) fn fit_yeo_johnson(xs: &[f64]) -> f64 {
    #[allow(clippy::cast_precision_loss)] // Row counts are far below 2^52.
    let count = xs.len() as f64;
    let log_terms: f64 = xs.iter().map(|&x| x.signum() * x.abs().ln_1p()).sum();
    let neg_log_likelihood = |lambda: f64| {
        let transformed: Vec<f64> = xs.iter().map(|&x| yeo_johnson(x, lambda)).collect();
        let (_, var) = mean_variance(&transformed);
        if var <= f64::MIN_POSITIVE {
            return f64::INFINITY;
        }
        (count / 2.0).mul_add(var.ln(), -(lambda - 1.0) * log_terms)
    };
    let ratio = (5.0_f64.sqrt() - 1.0) / 2.0;
    let (mut low, mut high) = (-10.0_f64, 10.0_f64);
    let mut left = high - ratio * (high - low);
    let mut right = low + ratio * (high - low);
    let (mut f_left, mut f_right) = (neg_log_likelihood(left), neg_log_likelihood(right));
    while high - low > 1e-10 {
        if f_left < f_right {
            (high, right, f_right) = (right, left, f_left);
            left = high - ratio * (high - low);
            f_left = neg_log_likelihood(left);
        } else {
            (low, left, f_left) = (left, right, f_right);
            right = low + ratio * (high - low);
            f_right = neg_log_likelihood(right);
        }
    }
    f64::midpoint(low, high)
}

/// Inner edges of `n_bins` quantile bins, dropping bins narrower than 1e-8 (as scikit-learn's
/// KBinsDiscretizer does).
fn bin_edges(sorted: &[f64], n_bins: usize) -> Vec<f64> {
    inner_edges(n_bins, |q| quantile(sorted, q))
}

/// The distinct inner edges of `n_bins` equal-frequency bins, from the quantile function.
pub(crate) fn inner_edges(n_bins: usize, quantile: impl Fn(f64) -> f64) -> Vec<f64> {
    let n_bins = n_bins.max(1);
    #[allow(clippy::cast_precision_loss)] // Bin counts are small.
    let edges: Vec<f64> = (0..=n_bins)
        .map(|i| quantile(i as f64 / n_bins as f64))
        .collect();
    let mut kept = vec![edges[0]];
    for &e in &edges[1..] {
        if e - kept[kept.len() - 1] > 1e-8 {
            kept.push(e);
        }
    }
    if kept.len() < 2 {
        return Vec::new();
    }
    kept[1..kept.len() - 1].to_vec()
}

/// scikit-learn's rule: a zero (or vanishing) scale divides by one.
pub(crate) fn usable_scale(scale: f64, center: f64) -> f64 {
    if scale.abs() > 10.0 * f64::EPSILON * center.abs().max(1.0) {
        scale
    } else {
        1.0
    }
}

/// The median (numpy's), by selection rather than a full sort. The selection runs on the
/// values' total-order integer keys: integer comparisons select about twice as fast as
/// `f64::total_cmp`, which derives the same key on every comparison.
pub(crate) fn median(values: &[f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let mut keys: Vec<i64> = values.iter().map(|&v| total_order_key(v)).collect();
    let (below, &mut upper, _) = keys.select_nth_unstable(n / 2);
    let upper = from_total_order_key(upper);
    if n % 2 == 1 {
        return upper;
    }
    let lower = from_total_order_key(*below.iter().max().expect("n >= 2"));
    f64::midpoint(lower, upper)
}

/// An integer that orders as `f64::total_cmp` orders `v`: negative values have their
/// magnitude bits flipped.
#[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)] // Bit reinterpretation.
fn total_order_key(v: f64) -> i64 {
    let bits = v.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// The inverse of [`total_order_key`] (the flip is its own inverse).
#[allow(clippy::cast_sign_loss)] // Bit reinterpretation.
fn from_total_order_key(key: i64) -> f64 {
    f64::from_bits(total_order_key(f64::from_bits(key as u64)) as u64)
}

pub(crate) fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// The `p` quantile of sorted values with linear interpolation (numpy's default).
pub(crate) fn quantile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            #[allow(clippy::cast_precision_loss)] // Row counts are far below 2^52.
            let position = p.clamp(0.0, 1.0) * (n - 1) as f64;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            // In [0, n - 1] by the clamp above.
            let below = position.floor() as usize;
            let above = (below + 1).min(n - 1);
            let t = position - position.floor();
            (sorted[above] - sorted[below]).mul_add(t, sorted[below])
        }
    }
}

#[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
pub(crate) fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// The mean and the population variance (0 and 0 for no values).
pub(crate) fn mean_variance(values: &[f64]) -> (f64, f64) {
    let m = mean(values);
    #[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
    let var = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / values.len().max(1) as f64;
    (m, var)
}

fn min_max(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    /// The median by a full sort under `f64::total_cmp`: what `median` must return.
    fn median_by_sorting(values: &[f64]) -> f64 {
        let s = sorted(values.to_vec());
        match s.len() {
            0 => 0.0,
            n if n % 2 == 1 => s[n / 2],
            n => f64::midpoint(s[n / 2 - 1], s[n / 2]),
        }
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("missing values never reach median", |v| !v.is_nan()),
            -3.0..3.0_f64,
            Just(0.0),
            Just(-0.0),
            Just(f64::NEG_INFINITY),
            Just(f64::INFINITY),
        ]
    }

    proptest! {
        #![proptest_config(Config {
            cases: 512,
            rng_seed: RngSeed::Fixed(0x6d65_6469),
            failure_persistence: None,
            ..Config::default()
        })]

        #[test]
        fn median_by_integer_keys_is_the_median_of_a_sort(
            values in prop::collection::vec(value(), 0..40)
        ) {
            prop_assert_eq!(median(&values).to_bits(), median_by_sorting(&values).to_bits());
        }
    }
}
