//! Evaluation metrics, computed on the CPU from model outputs.

use std::collections::BTreeMap;

use kiln_core::Matrix;

/// Accuracy, macro-F1 and log loss (probabilities clipped to [1e-15, 1 - 1e-15], as
/// scikit-learn does) of class probabilities `probs` (`rows × classes`) against `labels`.
///
/// # Panics
/// When `probs.rows != labels.len()` or a label is out of range (caller bugs).
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation
)]
// Counts are far below 2^52; labels are validated class indices.
pub fn classification(probs: &Matrix, labels: &[i64]) -> BTreeMap<String, f64> {
    assert_eq!(probs.rows, labels.len(), "one label per row");
    let classes = probs.cols;
    let mut confusion = vec![0_usize; classes * classes];
    let mut log_loss = 0.0;
    for (row, &label) in labels.iter().enumerate() {
        let p = probs.row(row);
        let predicted = argmax(p);
        confusion[label as usize * classes + predicted] += 1;
        log_loss -= f64::from(p[label as usize]).clamp(1e-15, 1.0 - 1e-15).ln();
    }
    let n = labels.len().max(1) as f64;
    let correct: usize = (0..classes).map(|c| confusion[c * classes + c]).sum();
    // Macro-F1 over the classes present in the labels or the predictions (scikit-learn's rule).
    let mut f1_sum = 0.0;
    let mut f1_count = 0;
    for c in 0..classes {
        let tp = confusion[c * classes + c] as f64;
        let actual: usize = (0..classes).map(|p| confusion[c * classes + p]).sum();
        let predicted: usize = (0..classes).map(|a| confusion[a * classes + c]).sum();
        if actual + predicted == 0 {
            continue;
        }
        f1_sum += 2.0 * tp / (actual + predicted) as f64;
        f1_count += 1;
    }
    BTreeMap::from([
        ("accuracy".to_owned(), correct as f64 / n),
        ("macro_f1".to_owned(), f1_sum / f64::from(f1_count.max(1))),
        ("log_loss".to_owned(), log_loss / n),
    ])
}

/// RMSE, MAE and R² of `predicted` against `truth`.
///
/// # Panics
/// When the lengths differ (a caller bug).
#[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
pub fn regression(predicted: &[f64], truth: &[f64]) -> BTreeMap<String, f64> {
    assert_eq!(predicted.len(), truth.len(), "one prediction per row");
    let n = truth.len().max(1) as f64;
    let mean = truth.iter().sum::<f64>() / n;
    let (mut se, mut ae, mut tss) = (0.0, 0.0, 0.0);
    for (p, t) in predicted.iter().zip(truth) {
        se += (p - t).powi(2);
        ae += (p - t).abs();
        tss += (t - mean).powi(2);
    }
    BTreeMap::from([
        ("rmse".to_owned(), (se / n).sqrt()),
        ("mae".to_owned(), ae / n),
        (
            "r2".to_owned(),
            if tss > 0.0 { 1.0 - se / tss } else { 0.0 },
        ),
    ])
}

/// Index of the largest value (the first on ties).
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_matches_hand_computed_values() {
        // Labels 0,0,1,2; predictions 0,1,1,2.
        let probs = Matrix::new(
            vec![0.8, 0.1, 0.1, 0.4, 0.5, 0.1, 0.2, 0.7, 0.1, 0.1, 0.1, 0.8],
            4,
            3,
        );
        let m = classification(&probs, &[0, 0, 1, 2]);
        assert!((m["accuracy"] - 0.75).abs() < 1e-12);
        // F1: class0 = 2*1/(2+1) = 2/3, class1 = 2*1/(1+2) = 2/3, class2 = 1.
        assert!((m["macro_f1"] - (2.0 / 3.0 + 2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-12);
        let expected = -(0.8_f64.ln() + 0.4_f64.ln() + 0.7_f64.ln() + 0.8_f64.ln()) / 4.0;
        assert!((m["log_loss"] - expected).abs() < 1e-6);
    }

    #[test]
    fn regression_matches_hand_computed_values() {
        let m = regression(&[1.0, 2.0, 5.0], &[1.0, 3.0, 5.0]);
        assert!((m["rmse"] - (1.0_f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((m["mae"] - 1.0 / 3.0).abs() < 1e-12);
        assert!((m["r2"] - (1.0 - 1.0 / 8.0)).abs() < 1e-12);
    }
}
