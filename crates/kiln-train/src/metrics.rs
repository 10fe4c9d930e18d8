//! Evaluation metrics, computed on the CPU from model outputs.
//!
//! Scores match scikit-learn 1.9 on the same inputs (the tests pin its values) except where a
//! doc comment says otherwise. Probabilities arrive as `f32`; every score is computed in `f64`
//! from those exact `f32` values.

use std::collections::BTreeMap;

use kiln_core::Matrix;

/// Equal-width confidence bins of the expected calibration error.
const ECE_BINS: u8 = 15;

/// Names of the metrics [`classification`] reports.
pub const CLASSIFICATION_METRICS: [&str; 16] = [
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "precision_micro",
    "precision_weighted",
    "recall_macro",
    "recall_micro",
    "recall_weighted",
    "f1_macro",
    "f1_micro",
    "f1_weighted",
    "macro_f1",
    "log_loss",
    "roc_auc",
    "average_precision",
    "ece",
];

/// Names of the metrics [`regression`] reports.
pub const REGRESSION_METRICS: [&str; 4] = ["rmse", "mae", "r2", "mape"];

/// Classification scores of class probabilities `probs` (`rows × classes`) against `labels`
/// (class indices), each row predicting its [`argmax`]. The keys, with the scikit-learn call
/// each matches (`P` = `probs` as float64, `y` = `labels`, `y_pred = P.argmax(1)`):
///
/// - `accuracy`: `accuracy_score(y, y_pred)`.
/// - `balanced_accuracy`: `balanced_accuracy_score(y, y_pred)`, the mean recall over the classes
///   that occur in `labels` (a class that is only predicted is left out).
/// - `precision_macro`, `precision_micro`, `precision_weighted`, and likewise `recall_*` and
///   `f1_*`: `precision_score(y, y_pred, average=...)` etc. As in scikit-learn's default
///   (`labels=None`), the averages run over the classes that occur in `labels` or in the
///   predictions; a class absent from both is ignored. A class's precision with no predicted
///   rows, or recall with no true rows, is 0 (scikit-learn's `zero_division` default, without
///   the warning). `weighted` weights classes by their true-row count; `micro` always equals
///   `accuracy`, since each row adds one prediction and one true label.
/// - `macro_f1`: the same value as `f1_macro`, under its original name.
/// - `log_loss`: `log_loss(y, P, labels=range(classes))`: probabilities are clipped to
///   `[ε, 1 − ε]` with ε = `f64::EPSILON` (scikit-learn's current rule, the float64 machine
///   epsilon since 1.2; earlier releases clipped at 1e-15) and are not renormalized.
/// - `roc_auc`: with 2 classes, `roc_auc_score(y, P[:, 1])`; otherwise the one-vs-rest macro
///   average `roc_auc_score(y, P, multi_class="ovr", average="macro")`. Tied scores form one
///   threshold (trapezoidal area). A class whose one-vs-rest AUC is undefined (no positive or
///   no negative row) is left out of the average, where scikit-learn's average becomes NaN;
///   when no class is defined (or there are no rows) the score is NaN.
/// - `average_precision`: the same with `average_precision_score` (the step-wise sum
///   Σ (Rₖ − Rₖ₋₁)·Pₖ over distinct thresholds). A class with no positive row is left out
///   (scikit-learn scores it 0 in the binary case and rejects it in the multiclass one), so
///   the multiclass score is the mean of `average_precision_score(y == c, P[:, c])` over the
///   classes `c` present in `y`; NaN when no class has a positive row.
/// - `ece`: expected calibration error (scikit-learn has none). A row's confidence `c` is its
///   largest probability; bin `b` (of 15) holds the rows with `b/15 < c ≤ (b+1)/15` (bin 0
///   also takes `c ≤ 0` and bin 14 `c > 1`). ECE = Σ_b (n_b / n)·|acc_b − conf_b|, where `n_b`
///   is the bin's row count, `acc_b` the fraction of its rows predicted right and `conf_b`
///   their mean confidence.
///
/// With no rows, every score but the NaN AUCs is 0.
///
/// # Panics
/// When `probs.rows != labels.len()` or a label is not a class index (caller bugs).
pub fn classification(probs: &Matrix, labels: &[i64]) -> BTreeMap<String, f64> {
    let truth = class_indices(probs, labels);
    let predicted: Vec<usize> = (0..probs.rows).map(|r| argmax(probs.row(r))).collect();
    let confusion = count_confusion(probs.cols, &truth, &predicted);
    #[allow(clippy::cast_precision_loss)] // Row counts are far below 2^52.
    let n = labels.len().max(1) as f64;

    // Per class: true positives, true rows (support) and predicted rows.
    #[allow(clippy::cast_precision_loss)] // Row counts are far below 2^52.
    let counts: Vec<(f64, f64, f64)> = (0..probs.cols)
        .map(|c| {
            let actual: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[c]).sum();
            (confusion[c][c] as f64, actual as f64, predicted as f64)
        })
        .collect();
    let accuracy = counts.iter().map(|c| c.0).sum::<f64>() / n;
    // scikit-learn's default label set: the classes seen in the labels or the predictions.
    let present: Vec<(f64, f64, f64)> = counts
        .iter()
        .copied()
        .filter(|&(_, actual, predicted)| actual + predicted > 0.0)
        .collect();
    let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { 0.0 };
    let precision: Vec<f64> = present.iter().map(|&(tp, _, p)| ratio(tp, p)).collect();
    let recall: Vec<f64> = present.iter().map(|&(tp, a, _)| ratio(tp, a)).collect();
    let f1: Vec<f64> = present
        .iter()
        .map(|&(tp, a, p)| ratio(2.0 * tp, a + p))
        .collect();
    let macro_avg = |scores: &[f64]| mean(scores.iter().copied()).unwrap_or(0.0);
    let weighted_avg = |scores: &[f64]| {
        scores
            .iter()
            .zip(&present)
            .map(|(s, &(_, support, _))| s * support)
            .sum::<f64>()
            / n
    };
    let balanced_accuracy = mean(
        counts
            .iter()
            .filter(|&&(_, actual, _)| actual > 0.0)
            .map(|&(tp, actual, _)| tp / actual),
    )
    .unwrap_or(0.0);

    let log_loss = truth
        .iter()
        .enumerate()
        .map(|(r, &t)| {
            -f64::from(probs.row(r)[t])
                .clamp(f64::EPSILON, 1.0 - f64::EPSILON)
                .ln()
        })
        .sum::<f64>()
        / n;

    let curves: Vec<RankingCurve> = ranked_classes(probs.cols)
        .map(|c| RankingCurve::of_class(probs, &truth, c))
        .collect();
    let roc_auc = mean(curves.iter().filter_map(RankingCurve::roc_auc)).unwrap_or(f64::NAN);
    let average_precision =
        mean(curves.iter().filter_map(RankingCurve::average_precision)).unwrap_or(f64::NAN);

    BTreeMap::from([
        ("accuracy".to_owned(), accuracy),
        ("balanced_accuracy".to_owned(), balanced_accuracy),
        ("precision_macro".to_owned(), macro_avg(&precision)),
        ("precision_micro".to_owned(), accuracy),
        ("precision_weighted".to_owned(), weighted_avg(&precision)),
        ("recall_macro".to_owned(), macro_avg(&recall)),
        ("recall_micro".to_owned(), accuracy),
        ("recall_weighted".to_owned(), weighted_avg(&recall)),
        ("f1_macro".to_owned(), macro_avg(&f1)),
        ("f1_micro".to_owned(), accuracy),
        ("f1_weighted".to_owned(), weighted_avg(&f1)),
        ("macro_f1".to_owned(), macro_avg(&f1)),
        ("log_loss".to_owned(), log_loss),
        ("roc_auc".to_owned(), roc_auc),
        ("average_precision".to_owned(), average_precision),
        (
            "ece".to_owned(),
            expected_calibration_error(probs, &truth, &predicted),
        ),
    ])
}

/// Confusion matrix of the [`argmax`] predictions of `probs` (`rows × classes`) against
/// `labels`: entry `[t][p]` counts the rows of true class `t` predicted as class `p`.
///
/// It is always `classes × classes`, one row and column per class index whether or not the
/// class occurs: scikit-learn's `confusion_matrix(y, y_pred, labels=range(classes))`, which
/// equals its default (`labels=None`) when every class occurs in `y` or `y_pred`.
///
/// # Panics
/// When `probs.rows != labels.len()` or a label is not a class index (caller bugs).
pub fn confusion_matrix(probs: &Matrix, labels: &[i64]) -> Vec<Vec<usize>> {
    let truth = class_indices(probs, labels);
    let predicted: Vec<usize> = (0..probs.rows).map(|r| argmax(probs.row(r))).collect();
    count_confusion(probs.cols, &truth, &predicted)
}

/// RMSE, MAE, R² and MAPE of `predicted` against `truth`, as scikit-learn's
/// `root_mean_squared_error`, `mean_absolute_error`, `r2_score` and
/// `mean_absolute_percentage_error` (keys `rmse`, `mae`, `r2`, `mape`).
///
/// R² follows scikit-learn's `force_finite` rules: 1 for perfect predictions (even of a
/// constant truth), 0 for imperfect predictions of a constant truth, NaN with fewer than two
/// rows. MAPE divides each error by `max(|truth|, f64::EPSILON)`, so it is a fraction, not a
/// percentage, and huge where the truth is near 0. With no rows the other scores are 0.
///
/// # Panics
/// When the lengths differ (a caller bug).
#[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
pub fn regression(predicted: &[f64], truth: &[f64]) -> BTreeMap<String, f64> {
    assert_eq!(predicted.len(), truth.len(), "one prediction per row");
    let n = truth.len().max(1) as f64;
    let mean = truth.iter().sum::<f64>() / n;
    let (mut se, mut ae, mut ape, mut tss) = (0.0, 0.0, 0.0, 0.0);
    for (p, t) in predicted.iter().zip(truth) {
        se += (p - t).powi(2);
        ae += (p - t).abs();
        ape += (p - t).abs() / t.abs().max(f64::EPSILON);
        tss += (t - mean).powi(2);
    }
    let r2 = if truth.len() < 2 {
        f64::NAN
    } else if se == 0.0 {
        1.0
    } else if tss == 0.0 {
        0.0
    } else {
        1.0 - se / tss
    };
    BTreeMap::from([
        ("rmse".to_owned(), (se / n).sqrt()),
        ("mae".to_owned(), ae / n),
        ("r2".to_owned(), r2),
        ("mape".to_owned(), ape / n),
    ])
}

/// Index of the largest value (the first on ties, as numpy's `argmax`).
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// `labels` as class indices of `probs`.
///
/// # Panics
/// When `probs.rows != labels.len()` or a label is not a class index (caller bugs).
fn class_indices(probs: &Matrix, labels: &[i64]) -> Vec<usize> {
    assert_eq!(probs.rows, labels.len(), "one label per row");
    labels
        .iter()
        .map(|&label| {
            usize::try_from(label)
                .ok()
                .filter(|&c| c < probs.cols)
                .unwrap_or_else(|| {
                    panic!("label {label} is not a class index below {}", probs.cols)
                })
        })
        .collect()
}

fn count_confusion(classes: usize, truth: &[usize], predicted: &[usize]) -> Vec<Vec<usize>> {
    let mut confusion = vec![vec![0; classes]; classes];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t][p] += 1;
    }
    confusion
}

/// Mean of `values`; `None` when there are none.
fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values
        .into_iter()
        .fold((0.0, 0_u32), |(sum, count), v| (sum + v, count + 1));
    (count > 0).then(|| sum / f64::from(count))
}

/// The classes whose one-vs-rest ranking `roc_auc` and `average_precision` average over:
/// class 1 alone for 2 classes (the positive class of a binary problem), else every class.
pub fn ranked_classes(classes: usize) -> std::ops::Range<usize> {
    if classes == 2 { 1..2 } else { 0..classes }
}

/// A score's ranking of rows against a binary truth: the cumulative (true positives, false
/// positives) at each distinct score, highest first. These are the thresholds of
/// scikit-learn's `roc_curve` and `precision_recall_curve` (tied scores are one threshold), and
/// the ROC and precision-recall curves and their areas ([`classification`]'s `roc_auc` and
/// `average_precision`) all come from them.
#[derive(Debug, Clone, PartialEq)]
pub struct RankingCurve {
    counts: Vec<(f64, f64)>,
}

impl RankingCurve {
    /// The ranking of `scored` (score, is positive) pairs.
    pub fn new(mut scored: Vec<(f32, bool)>) -> Self {
        scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let mut counts = Vec::new();
        let (mut tp, mut fp) = (0.0, 0.0);
        for (i, &(score, positive)) in scored.iter().enumerate() {
            if positive {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            // Exact equality is what makes a tie (numpy's rule; -0.0 ties with 0.0 too).
            #[allow(clippy::float_cmp)]
            let threshold_ends = scored.get(i + 1).is_none_or(|next| next.0 != score);
            if threshold_ends {
                counts.push((tp, fp));
            }
        }
        Self { counts }
    }

    /// Class `class` against the rest, ranked by its column of `probs` (`rows × classes`);
    /// `labels` are class indices.
    ///
    /// # Panics
    /// When `probs.rows != labels.len()` or a label or `class` is not a class index (caller
    /// bugs).
    pub fn one_vs_rest(probs: &Matrix, labels: &[i64], class: usize) -> Self {
        assert!(
            class < probs.cols,
            "class {class} is not below {}",
            probs.cols
        );
        Self::of_class(probs, &class_indices(probs, labels), class)
    }

    fn of_class(probs: &Matrix, truth: &[usize], class: usize) -> Self {
        Self::new(
            truth
                .iter()
                .enumerate()
                .map(|(r, &t)| (probs.row(r)[class], t == class))
                .collect(),
        )
    }

    /// Positive and negative rows.
    fn totals(&self) -> (f64, f64) {
        self.counts.last().copied().unwrap_or((0.0, 0.0))
    }

    /// The ROC curve's (false positive rate, true positive rate) points, from (0, 0) then one
    /// per threshold to (1, 1): scikit-learn's `roc_curve(y, s, drop_intermediate=False)`.
    /// `None` without both positive and negative rows.
    pub fn roc(&self) -> Option<Vec<(f64, f64)>> {
        let (positives, negatives) = self.totals();
        (positives > 0.0 && negatives > 0.0).then(|| {
            std::iter::once((0.0, 0.0))
                .chain(
                    self.counts
                        .iter()
                        .map(|&(tp, fp)| (fp / negatives, tp / positives)),
                )
                .collect()
        })
    }

    /// Area under the ROC curve (trapezoids from (0, 0)); `None` without both positive and
    /// negative rows.
    pub fn roc_auc(&self) -> Option<f64> {
        let (positives, negatives) = self.totals();
        if positives == 0.0 || negatives == 0.0 {
            return None;
        }
        let mut area = 0.0;
        let mut previous = (0.0, 0.0);
        for &(tp, fp) in &self.counts {
            // Twice the trapezoid, in counts: exact while counts stay below 2^26.
            area = (fp - previous.1).mul_add(tp + previous.0, area);
            previous = (tp, fp);
        }
        Some(area / (2.0 * positives * negatives))
    }

    /// The (recall, precision) point of each threshold, highest score first (scikit-learn's
    /// `precision_recall_curve` reversed, without its final (0, 1) point). The average
    /// precision is the area under the step through them: precision `Pₖ` from recall `Rₖ₋₁`
    /// to `Rₖ`. `None` without positive rows.
    pub fn precision_recall(&self) -> Option<Vec<(f64, f64)>> {
        let (positives, _) = self.totals();
        (positives > 0.0).then(|| {
            self.counts
                .iter()
                .map(|&(tp, fp)| (tp / positives, tp / (tp + fp)))
                .collect()
        })
    }

    /// Average precision Σ (Rₖ − Rₖ₋₁)·Pₖ over the thresholds; `None` without positive rows.
    pub fn average_precision(&self) -> Option<f64> {
        let (positives, _) = self.totals();
        if positives == 0.0 {
            return None;
        }
        let mut sum = 0.0;
        let mut previous_tp = 0.0;
        for &(tp, fp) in &self.counts {
            sum = (tp - previous_tp).mul_add(tp / (tp + fp), sum);
            previous_tp = tp;
        }
        Some(sum / positives)
    }
}

/// One confidence bin of a reliability diagram: the rows whose largest probability falls in
/// `(lower, upper]`, as [`classification`]'s `ece` bins them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReliabilityBin {
    /// The bin's lower edge.
    pub lower: f64,
    /// The bin's upper edge.
    pub upper: f64,
    /// Rows in the bin.
    pub rows: usize,
    /// Their mean confidence (largest probability).
    pub confidence: f64,
    /// The fraction of them predicted right.
    pub accuracy: f64,
}

/// The non-empty bins of the 15 equal-width confidence bins of [`classification`]'s `ece`,
/// lowest first: a reliability diagram of the [`argmax`] predictions of `probs`
/// (`rows × classes`) against `labels`. ECE is the bins' `rows`-weighted mean of
/// `|accuracy − confidence|`.
///
/// # Panics
/// When `probs.rows != labels.len()` or a label is not a class index (caller bugs).
pub fn reliability(probs: &Matrix, labels: &[i64]) -> Vec<ReliabilityBin> {
    let truth = class_indices(probs, labels);
    let predicted: Vec<usize> = (0..probs.rows).map(|r| argmax(probs.row(r))).collect();
    calibration_bins(probs, &truth, &predicted)
        .iter()
        .enumerate()
        .filter(|(_, bin)| bin.rows > 0)
        .map(|(b, bin)| {
            #[allow(clippy::cast_precision_loss)] // Row counts are far below 2^52.
            let rows = bin.rows as f64;
            #[allow(clippy::cast_possible_truncation)] // b < ECE_BINS, a u8.
            let b = b as u8;
            ReliabilityBin {
                lower: f64::from(b) / f64::from(ECE_BINS),
                upper: f64::from(b + 1) / f64::from(ECE_BINS),
                rows: bin.rows,
                confidence: bin.confidence / rows,
                accuracy: bin.correct / rows,
            }
        })
        .collect()
}

/// Row count, correct predictions and summed confidence of one calibration bin.
#[derive(Debug, Clone, Copy, Default)]
struct BinSums {
    rows: usize,
    correct: f64,
    confidence: f64,
}

/// The sums of every calibration bin; see [`classification`] for the binning.
fn calibration_bins(probs: &Matrix, truth: &[usize], predicted: &[usize]) -> Vec<BinSums> {
    let mut bins = vec![BinSums::default(); usize::from(ECE_BINS)];
    for (r, (&t, &p)) in truth.iter().zip(predicted).enumerate() {
        let confidence = f64::from(probs.row(r)[p]);
        // An f32 times 15 is exact in f64, so the bin edges b/15 are exact. The cast saturates
        // (negative and NaN give 0) and the clamp puts out-of-range confidences in the end bins.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let upper = (confidence * f64::from(ECE_BINS)).ceil() as usize;
        let bin = &mut bins[upper.clamp(1, usize::from(ECE_BINS)) - 1];
        bin.rows += 1;
        bin.correct += f64::from(u8::from(t == p));
        bin.confidence += confidence;
    }
    bins
}

/// Expected calibration error; see [`classification`] for the definition.
fn expected_calibration_error(probs: &Matrix, truth: &[usize], predicted: &[usize]) -> f64 {
    // (n_b / n)·|acc_b − conf_b| = |correct_b − Σ confidence_b| / n: sum that gap per bin.
    #[allow(clippy::cast_precision_loss)] // Row counts are far below 2^52.
    let n = truth.len().max(1) as f64;
    calibration_bins(probs, truth, predicted)
        .iter()
        .map(|b| (b.correct - b.confidence).abs())
        .sum::<f64>()
        / n
}

#[cfg(test)]
// The expected values are scikit-learn's float reprs, pasted verbatim.
#[allow(clippy::unreadable_literal)]
mod tests {
    use super::*;

    // Each fixture's sklearn 1.9.1 context, with `rows`/`labels` the Rust literals:
    //   P = np.array(rows, dtype=np.float32).astype(np.float64)
    //   y = np.array(labels); y_pred = P.argmax(1); k = P.shape[1]

    fn matrix(rows: &[&[f32]]) -> Matrix {
        Matrix::new(rows.concat(), rows.len(), rows[0].len())
    }

    /// A calibration bin's |correct rows − Σ confidence| (its n_b·|acc_b − conf_b|), from the
    /// `f32` confidences, for hand-computed ECEs.
    fn bin_gap(correct: f64, confidences: &[f32]) -> f64 {
        (correct - confidences.iter().map(|&x| f64::from(x)).sum::<f64>()).abs()
    }

    fn assert_close(actual: f64, expected: f64, what: &str) {
        assert!(
            (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0),
            "{what}: {actual} vs expected {expected}"
        );
    }

    fn check(metrics: &BTreeMap<String, f64>, expected: &[(&str, f64)]) {
        for &(key, value) in expected {
            assert_close(metrics[key], value, key);
        }
    }

    const CLASSIFICATION_KEYS: [&str; 16] = [
        "accuracy",
        "average_precision",
        "balanced_accuracy",
        "ece",
        "f1_macro",
        "f1_micro",
        "f1_weighted",
        "log_loss",
        "macro_f1",
        "precision_macro",
        "precision_micro",
        "precision_weighted",
        "recall_macro",
        "recall_micro",
        "recall_weighted",
        "roc_auc",
    ];

    #[test]
    fn three_classes_with_one_never_predicted_and_tied_scores() {
        // Predictions 0,0,1,0,1,1: class 2 is never predicted (precision 0/0 = 0); column 2
        // has four tied 0.3s and column 1 two tied 0.5s across positives and negatives.
        let probs = matrix(&[
            &[0.7, 0.2, 0.1],
            &[0.5, 0.3, 0.2],
            &[0.2, 0.5, 0.3],
            &[0.4, 0.3, 0.3],
            &[0.3, 0.4, 0.3],
            &[0.2, 0.5, 0.3],
        ]);
        let labels = [0, 1, 1, 2, 2, 0];
        let m = classification(&probs, &labels);
        assert_eq!(
            m.keys().map(String::as_str).collect::<Vec<_>>(),
            CLASSIFICATION_KEYS
        );
        // confusion_matrix(y, y_pred)
        assert_eq!(
            confusion_matrix(&probs, &labels),
            [[1, 1, 0], [1, 1, 0], [1, 1, 0]]
        );
        check(
            &m,
            &[
                // accuracy_score(y, y_pred)
                ("accuracy", 0.3333333333333333),
                // balanced_accuracy_score(y, y_pred)
                ("balanced_accuracy", 0.3333333333333333),
                // precision_score(y, y_pred, average="macro")
                ("precision_macro", 0.2222222222222222),
                // precision_score(y, y_pred, average="micro")
                ("precision_micro", 0.3333333333333333),
                // precision_score(y, y_pred, average="weighted")
                ("precision_weighted", 0.2222222222222222),
                // recall_score(y, y_pred, average="macro")
                ("recall_macro", 0.3333333333333333),
                // recall_score(y, y_pred, average="micro")
                ("recall_micro", 0.3333333333333333),
                // recall_score(y, y_pred, average="weighted")
                ("recall_weighted", 0.3333333333333333),
                // f1_score(y, y_pred, average="macro")
                ("f1_macro", 0.26666666666666666),
                // f1_score(y, y_pred, average="macro")
                ("macro_f1", 0.26666666666666666),
                // f1_score(y, y_pred, average="micro")
                ("f1_micro", 0.3333333333333333),
                // f1_score(y, y_pred, average="weighted")
                ("f1_weighted", 0.26666666666666666),
                // log_loss(y, P, labels=range(k))
                ("log_loss", 1.045196388805006),
                // roc_auc_score(y, P, multi_class="ovr", average="macro")
                ("roc_auc", 0.6458333333333334),
                // average_precision_score(y, P)
                ("average_precision", 0.5388888888888889),
            ],
        );
        // By hand: confidence 0.7 right (bin 10); 0.5 wrong, right, wrong (bin 7); 0.4 wrong
        // twice (bin 6: f32 0.4 is just above 6/15).
        let ece = (bin_gap(1.0, &[0.7]) + bin_gap(1.0, &[0.5; 3]) + bin_gap(0.0, &[0.4; 2])) / 6.0;
        assert_close(m["ece"], ece, "ece");
    }

    #[test]
    fn classes_absent_from_labels_or_predictions() {
        // Five classes; labels use 0, 1, 2. Predictions 0,1,3,1,0,3: class 2 is never
        // predicted, class 3 is only predicted, class 4 occurs nowhere.
        let probs = matrix(&[
            &[0.6, 0.1, 0.1, 0.1, 0.1],
            &[0.1, 0.5, 0.2, 0.1, 0.1],
            &[0.2, 0.2, 0.1, 0.4, 0.1],
            &[0.3, 0.4, 0.2, 0.05, 0.05],
            &[0.45, 0.1, 0.35, 0.05, 0.05],
            &[0.2, 0.1, 0.1, 0.5, 0.1],
        ]);
        let labels = [0, 1, 1, 2, 2, 0];
        let m = classification(&probs, &labels);
        // confusion_matrix(y, y_pred, labels=range(k))
        assert_eq!(
            confusion_matrix(&probs, &labels),
            [
                [1, 0, 0, 1, 0],
                [0, 1, 0, 1, 0],
                [1, 1, 0, 0, 0],
                [0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0],
            ]
        );
        check(
            &m,
            &[
                // accuracy_score(y, y_pred)
                ("accuracy", 0.3333333333333333),
                // balanced_accuracy_score(y, y_pred)  (drops class 3, which has no true rows)
                ("balanced_accuracy", 0.3333333333333333),
                // precision_score(y, y_pred, average="macro")  (over classes 0-3, not 4)
                ("precision_macro", 0.25),
                // precision_score(y, y_pred, average="micro")
                ("precision_micro", 0.3333333333333333),
                // precision_score(y, y_pred, average="weighted")
                ("precision_weighted", 0.3333333333333333),
                // recall_score(y, y_pred, average="macro")
                ("recall_macro", 0.25),
                // recall_score(y, y_pred, average="micro")
                ("recall_micro", 0.3333333333333333),
                // recall_score(y, y_pred, average="weighted")
                ("recall_weighted", 0.3333333333333333),
                // f1_score(y, y_pred, average="macro")
                ("f1_macro", 0.25),
                // f1_score(y, y_pred, average="macro")
                ("macro_f1", 0.25),
                // f1_score(y, y_pred, average="micro")
                ("f1_micro", 0.3333333333333333),
                // f1_score(y, y_pred, average="weighted")
                ("f1_weighted", 0.3333333333333333),
                // log_loss(y, P, labels=range(k))
                ("log_loss", 1.1803514331194835),
                // np.mean([roc_auc_score(y == c, P[:, c]) for c in (0, 1, 2)])
                // (roc_auc_score(y, P, multi_class="ovr", labels=range(k)) is NaN: classes
                // 3 and 4 have no positives)
                ("roc_auc", 0.8333333333333334),
                // average_precision_score(y, P[:, [0, 1, 2]])
                ("average_precision", 0.7888888888888888),
            ],
        );
        // By hand: 0.6 right (bin 9); 0.5 right and 0.5 wrong (bin 7); 0.4, 0.4, 0.45 wrong
        // (bin 6).
        let ece =
            (bin_gap(1.0, &[0.6]) + bin_gap(1.0, &[0.5; 2]) + bin_gap(0.0, &[0.4, 0.4, 0.45]))
                / 6.0;
        assert_close(m["ece"], ece, "ece");
    }

    #[test]
    fn binary_with_tied_scores() {
        // Positive-class scores 0.9, 0.8 ×2, 0.6 ×2, 0.5, 0.3 ×2, ties mixing both classes;
        // the 0.5/0.5 row predicts class 0 (first index).
        let probs = matrix(&[
            &[0.1, 0.9],
            &[0.2, 0.8],
            &[0.2, 0.8],
            &[0.4, 0.6],
            &[0.4, 0.6],
            &[0.5, 0.5],
            &[0.7, 0.3],
            &[0.7, 0.3],
        ]);
        let labels = [1, 1, 0, 1, 0, 1, 1, 0];
        let m = classification(&probs, &labels);
        // confusion_matrix(y, y_pred)
        assert_eq!(confusion_matrix(&probs, &labels), [[1, 2], [2, 3]]);
        check(
            &m,
            &[
                // accuracy_score(y, y_pred)
                ("accuracy", 0.5),
                // balanced_accuracy_score(y, y_pred)
                ("balanced_accuracy", 0.4666666666666667),
                // precision_score(y, y_pred, average="macro")
                ("precision_macro", 0.4666666666666667),
                // precision_score(y, y_pred, average="micro")
                ("precision_micro", 0.5),
                // precision_score(y, y_pred, average="weighted")
                ("precision_weighted", 0.5),
                // recall_score(y, y_pred, average="macro")
                ("recall_macro", 0.4666666666666667),
                // recall_score(y, y_pred, average="micro")
                ("recall_micro", 0.5),
                // recall_score(y, y_pred, average="weighted")
                ("recall_weighted", 0.5),
                // f1_score(y, y_pred, average="macro")
                ("f1_macro", 0.4666666666666667),
                // f1_score(y, y_pred, average="macro")
                ("macro_f1", 0.4666666666666667),
                // f1_score(y, y_pred, average="micro")
                ("f1_micro", 0.5),
                // f1_score(y, y_pred, average="weighted")
                ("f1_weighted", 0.5),
                // log_loss(y, P, labels=range(k))
                ("log_loss", 0.7023566479019259),
                // roc_auc_score(y, P[:, 1])
                ("roc_auc", 0.5666666666666667),
                // average_precision_score(y, P[:, 1])
                ("average_precision", 0.7116666666666667),
            ],
        );
        // By hand: 0.9 right (bin 13); 0.8 right and wrong (bin 12); 0.6 right and wrong
        // (bin 9); 0.5 wrong (bin 7); 0.7 wrong and right (bin 10).
        let ece = (bin_gap(1.0, &[0.9])
            + bin_gap(1.0, &[0.8; 2])
            + bin_gap(1.0, &[0.6; 2])
            + bin_gap(0.0, &[0.5])
            + bin_gap(1.0, &[0.7; 2]))
            / 8.0;
        assert_close(m["ece"], ece, "ece");
    }

    #[test]
    fn perfect_predictions() {
        let probs = matrix(&[
            &[1.0, 0.0, 0.0],
            &[0.0, 1.0, 0.0],
            &[0.0, 0.0, 1.0],
            &[1.0, 0.0, 0.0],
        ]);
        let labels = [0, 1, 2, 0];
        let m = classification(&probs, &labels);
        // confusion_matrix(y, y_pred)
        assert_eq!(
            confusion_matrix(&probs, &labels),
            [[2, 0, 0], [0, 1, 0], [0, 0, 1]]
        );
        // accuracy_score, balanced_accuracy_score, {precision,recall,f1}_score(y, y_pred,
        // average=...) for macro/micro/weighted, roc_auc_score(y, P, multi_class="ovr") and
        // average_precision_score(y, P) are all 1.0; every confidence is 1 and right, so ECE 0.
        for key in CLASSIFICATION_KEYS {
            let expected = match key {
                // log_loss(y, P, labels=range(k))  (-ln(1 - eps) after clipping)
                "log_loss" => 2.220446049250313e-16,
                "ece" => 0.0,
                _ => 1.0,
            };
            assert_close(m[key], expected, key);
        }
    }

    #[test]
    fn worst_predictions() {
        let probs = matrix(&[&[1.0, 0.0], &[1.0, 0.0], &[0.0, 1.0], &[0.0, 1.0]]);
        let labels = [1, 1, 0, 0];
        let m = classification(&probs, &labels);
        // confusion_matrix(y, y_pred)
        assert_eq!(confusion_matrix(&probs, &labels), [[0, 2], [2, 0]]);
        // accuracy_score, balanced_accuracy_score and {precision,recall,f1}_score(y, y_pred,
        // average=...) for macro/micro/weighted are all 0.0; so is roc_auc_score(y, P[:, 1]).
        // Every confidence is 1 and wrong, so ECE 1.
        for key in CLASSIFICATION_KEYS {
            let expected = match key {
                // log_loss(y, P, labels=range(k))  (-ln(eps) after clipping)
                "log_loss" => 36.04365338911715,
                // average_precision_score(y, P[:, 1])
                "average_precision" => 0.5,
                "ece" => 1.0,
                _ => 0.0,
            };
            assert_close(m[key], expected, key);
        }
    }

    #[test]
    fn calibration_bins_are_half_open_on_the_f32_confidence() {
        // By hand: 0.95 right and 1.0 wrong share bin 14 (1.0 is in the last bin); 0.7 right
        // is alone in bin 10; 0.65 wrong and 0.6 right share bin 9, since f32 0.6 is just above
        // 9/15 (the real 0.6 would open bin 8 and give ECE 0.46).
        let probs = matrix(&[
            &[0.95, 0.05],
            &[1.0, 0.0],
            &[0.3, 0.7],
            &[0.35, 0.65],
            &[0.6, 0.4],
        ]);
        let m = classification(&probs, &[0, 1, 1, 0, 0]);
        let ece =
            (bin_gap(1.0, &[0.95, 1.0]) + bin_gap(1.0, &[0.7]) + bin_gap(1.0, &[0.65, 0.6])) / 5.0;
        assert_close(m["ece"], ece, "ece");
        assert_close(m["ece"], 0.3, "ece");
    }

    #[test]
    fn undefined_ranking_scores_are_nan() {
        let probs = matrix(&[&[0.6, 0.4], &[0.3, 0.7]]);
        let m = classification(&probs, &[0, 0]);
        // roc_auc_score(y, P[:, 1]) is NaN (one class only).
        assert!(m["roc_auc"].is_nan());
        // average_precision_score(y, P[:, 1]) is 0.0 with a warning; kiln says undefined.
        assert!(m["average_precision"].is_nan());
        // accuracy_score(y, y_pred)
        assert_close(m["accuracy"], 0.5, "accuracy");

        let empty = classification(&Matrix::new(Vec::new(), 0, 3), &[]);
        for key in CLASSIFICATION_KEYS {
            if key == "roc_auc" || key == "average_precision" {
                assert!(empty[key].is_nan(), "{key}");
            } else {
                assert_close(empty[key], 0.0, key);
            }
        }
        assert_eq!(
            confusion_matrix(&Matrix::new(Vec::new(), 0, 2), &[]),
            [[0, 0], [0, 0]]
        );
    }

    #[test]
    #[should_panic(expected = "label 3 is not a class index below 3")]
    fn out_of_range_label_panics() {
        classification(&matrix(&[&[0.2, 0.3, 0.5]]), &[3]);
    }

    #[test]
    #[should_panic(expected = "label -1 is not a class index below 3")]
    fn negative_label_panics() {
        confusion_matrix(&matrix(&[&[0.2, 0.3, 0.5]]), &[-1]);
    }

    #[test]
    fn regression_matches_scikit_learn() {
        // t, p = truth, predicted; each sklearn call takes (t, p).
        let m = regression(&[1.0, 2.0, 5.0, -1.5], &[1.0, 3.0, 4.0, -2.0]);
        // root_mean_squared_error(t, p)
        assert_close(m["rmse"], 0.75, "rmse");
        // mean_absolute_error(t, p)
        assert_close(m["mae"], 0.625, "mae");
        // r2_score(t, p)
        assert_close(m["r2"], 0.8928571428571429, "r2");
        // mean_absolute_percentage_error(t, p)
        assert_close(m["mape"], 0.20833333333333331, "mape");

        // A zero truth divides by f64::EPSILON.
        let m = regression(&[0.5, 0.0, 2.0], &[0.0, 0.0, 2.5]);
        // root_mean_squared_error(t, p)
        assert_close(m["rmse"], 0.408248290463863, "rmse");
        // mean_absolute_error(t, p)
        assert_close(m["mae"], 0.3333333333333333, "mae");
        // r2_score(t, p)
        assert_close(m["r2"], 0.88, "r2");
        // mean_absolute_percentage_error(t, p)
        assert_close(m["mape"], 750599937895082.6, "mape");
    }

    #[test]
    fn regression_edge_cases_match_scikit_learn() {
        // r2_score([2.0, 2.0], [2.0, 2.0]): perfect on a constant truth.
        assert_close(regression(&[2.0, 2.0], &[2.0, 2.0])["r2"], 1.0, "r2");
        // r2_score([2.0, 2.0], [1.0, 3.0]): imperfect on a constant truth.
        let m = regression(&[1.0, 3.0], &[2.0, 2.0]);
        assert_close(m["r2"], 0.0, "r2");
        // mean_absolute_percentage_error([2.0, 2.0], [1.0, 3.0])
        assert_close(m["mape"], 0.5, "mape");
        // r2_score([2.0], [1.0]) is NaN (fewer than two samples).
        let m = regression(&[1.0], &[2.0]);
        assert!(m["r2"].is_nan());
        // root_mean_squared_error([2.0], [1.0])
        assert_close(m["rmse"], 1.0, "rmse");

        let empty = regression(&[], &[]);
        assert!(empty["r2"].is_nan());
        for key in ["rmse", "mae", "mape"] {
            assert_close(empty[key], 0.0, key);
        }
    }

    #[test]
    fn argmax_takes_the_first_of_tied_maxima() {
        // np.argmax([0.2, 0.4, 0.4])
        assert_eq!(argmax(&[0.2, 0.4, 0.4]), 1);
        // np.argmax([0.5, 0.5])
        assert_eq!(argmax(&[0.5, 0.5]), 0);
    }

    /// Trapezoid area under (x, y) points.
    fn trapezoids(points: &[(f64, f64)]) -> f64 {
        points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum()
    }

    #[test]
    fn ranking_curves_match_scikit_learn_and_their_areas() {
        // The binary fixture's positive-class scores: 0.9, 0.8 ×2, 0.6 ×2, 0.5, 0.3 ×2.
        let scores = [0.9, 0.8, 0.8, 0.6, 0.6, 0.5, 0.3, 0.3];
        let positive = [true, true, false, true, false, true, true, false];
        let curve = RankingCurve::new(scores.into_iter().zip(positive).collect());
        let roc = curve.roc().unwrap();
        // roc_curve(y, s, drop_intermediate=False): fpr, tpr (past the +inf threshold).
        let expected_roc = [
            (0.0, 0.0),
            (0.0, 0.2),
            (1.0 / 3.0, 0.4),
            (2.0 / 3.0, 0.6),
            (2.0 / 3.0, 0.8),
            (1.0, 1.0),
        ];
        assert_eq!(roc.len(), expected_roc.len());
        for (&(x, y), &(ex, ey)) in roc.iter().zip(&expected_roc) {
            assert_close(x, ex, "fpr");
            assert_close(y, ey, "tpr");
        }
        // precision_recall_curve(y, s), reversed and without its final (recall 0, precision 1).
        let pr = curve.precision_recall().unwrap();
        let expected_pr = [
            (0.2, 1.0),
            (0.4, 2.0 / 3.0),
            (0.6, 0.6),
            (0.8, 2.0 / 3.0),
            (1.0, 0.625),
        ];
        assert_eq!(pr.len(), expected_pr.len());
        for (&(r, p), &(er, ep)) in pr.iter().zip(&expected_pr) {
            assert_close(r, er, "recall");
            assert_close(p, ep, "precision");
        }
        // The areas are the metrics: roc_auc_score(y, s) and average_precision_score(y, s).
        let auc = curve.roc_auc().unwrap();
        assert_close(auc, 0.5666666666666667, "roc_auc");
        assert_close(trapezoids(&roc), auc, "area under roc()");
        let ap = curve.average_precision().unwrap();
        assert_close(ap, 0.7116666666666667, "average_precision");
        let mut previous_recall = 0.0;
        let step_area: f64 = pr
            .iter()
            .map(|&(r, p)| {
                let area = (r - previous_recall) * p;
                previous_recall = r;
                area
            })
            .sum();
        assert_close(step_area, ap, "step area under precision_recall()");
    }

    #[test]
    fn one_vs_rest_curves_average_to_the_multiclass_scores() {
        let probs = matrix(&[
            &[0.7, 0.2, 0.1],
            &[0.5, 0.3, 0.2],
            &[0.2, 0.5, 0.3],
            &[0.4, 0.3, 0.3],
            &[0.3, 0.4, 0.3],
            &[0.2, 0.5, 0.3],
        ]);
        let labels = [0, 1, 1, 2, 2, 0];
        let m = classification(&probs, &labels);
        assert_eq!(ranked_classes(3), 0..3);
        let curves: Vec<RankingCurve> = ranked_classes(3)
            .map(|c| RankingCurve::one_vs_rest(&probs, &labels, c))
            .collect();
        let mean_of = |f: fn(&RankingCurve) -> Option<f64>| {
            curves.iter().map(|c| f(c).unwrap()).sum::<f64>() / 3.0
        };
        // roc_auc_score(y, P, multi_class="ovr") and average_precision_score(y, P)
        assert_close(
            mean_of(RankingCurve::roc_auc),
            0.6458333333333334,
            "roc_auc",
        );
        assert_close(m["roc_auc"], mean_of(RankingCurve::roc_auc), "roc_auc");
        assert_close(
            mean_of(RankingCurve::average_precision),
            m["average_precision"],
            "average_precision",
        );
        // A binary problem ranks its positive class only.
        assert_eq!(ranked_classes(2), 1..2);
        // One class only: no ROC curve, no PR curve without positives.
        let one_class = RankingCurve::one_vs_rest(&matrix(&[&[0.6, 0.4], &[0.3, 0.7]]), &[0, 0], 1);
        assert_eq!(one_class.roc(), None);
        assert_eq!(one_class.precision_recall(), None);
        assert_eq!(one_class.roc_auc(), None);
    }

    #[test]
    fn reliability_bins_are_the_ece_bins() {
        // The fixture of calibration_bins_are_half_open_on_the_f32_confidence.
        let probs = matrix(&[
            &[0.95, 0.05],
            &[1.0, 0.0],
            &[0.3, 0.7],
            &[0.35, 0.65],
            &[0.6, 0.4],
        ]);
        let labels = [0, 1, 1, 0, 0];
        let bins = reliability(&probs, &labels);
        // (bin, rows, accuracy, mean f32 confidence)
        let expected = [
            (
                9,
                2,
                0.5,
                f64::midpoint(f64::from(0.65_f32), f64::from(0.6_f32)),
            ),
            (10, 1, 1.0, f64::from(0.7_f32)),
            (14, 2, 0.5, f64::midpoint(f64::from(0.95_f32), 1.0)),
        ];
        assert_eq!(bins.len(), expected.len());
        for (bin, &(b, rows, accuracy, confidence)) in bins.iter().zip(&expected) {
            assert_close(bin.lower, f64::from(b) / 15.0, "lower");
            assert_close(bin.upper, f64::from(b + 1) / 15.0, "upper");
            assert_eq!(bin.rows, rows);
            assert_close(bin.accuracy, accuracy, "accuracy");
            assert_close(bin.confidence, confidence, "confidence");
        }
        let ece: f64 = bins
            .iter()
            .map(|b| {
                f64::from(u32::try_from(b.rows).unwrap()) / 5.0 * (b.accuracy - b.confidence).abs()
            })
            .sum();
        assert_close(ece, classification(&probs, &labels)["ece"], "ece");
    }
}
