//! Seeded train / valid / test splits.
//!
//! Row indices in each split are sorted, so a split is identified by its set of rows (its
//! hash goes into the manifest); training shuffles separately with its own seed.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Fractions of the rows held out for validation and test; the rest trains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitFractions {
    /// Validation fraction.
    pub valid: f64,
    /// Test fraction.
    pub test: f64,
}

impl SplitFractions {
    /// Checks that both fractions are in [0, 1) and leave rows for training.
    ///
    /// # Errors
    /// [`Error::BadFractions`].
    pub fn new(valid: f64, test: f64) -> Result<Self> {
        let ok = |f: f64| (0.0..1.0).contains(&f);
        if ok(valid) && ok(test) && valid + test < 1.0 {
            Ok(Self { valid, test })
        } else {
            Err(Error::BadFractions { valid, test })
        }
    }
}

/// Row indices of each split, sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Split {
    /// Rows to fit transforms and train on.
    pub train: Vec<usize>,
    /// Rows for per-epoch validation and model selection.
    pub valid: Vec<usize>,
    /// Rows for the final, untouched evaluation.
    pub test: Vec<usize>,
}

impl Split {
    /// Shuffles `rows` and cuts them by `fractions`.
    pub fn random(rows: &[usize], fractions: SplitFractions, rng: &mut impl rand::Rng) -> Self {
        let mut split = Split::default();
        split.extend_from(rows.to_vec(), fractions, rng);
        split.sort();
        split
    }

    /// Splits each class (`labels[i]` is the class of `rows[i]`) by `fractions`, so every split
    /// keeps the class proportions.
    ///
    /// # Panics
    /// When `rows` and `labels` differ in length (a caller bug).
    pub fn stratified<L: Ord>(
        rows: &[usize],
        labels: &[L],
        fractions: SplitFractions,
        rng: &mut impl rand::Rng,
    ) -> Self {
        assert_eq!(rows.len(), labels.len(), "one label per row");
        let mut by_class: BTreeMap<&L, Vec<usize>> = BTreeMap::new();
        for (&row, label) in rows.iter().zip(labels) {
            by_class.entry(label).or_default().push(row);
        }
        let mut split = Split::default();
        for (_, class_rows) in by_class {
            split.extend_from(class_rows, fractions, rng);
        }
        split.sort();
        split
    }

    fn extend_from(&mut self, mut rows: Vec<usize>, f: SplitFractions, rng: &mut impl rand::Rng) {
        rows.shuffle(rng);
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        // Row counts are far below 2^52, so the round trip through f64 is exact.
        let take = |fraction: f64| (rows.len() as f64 * fraction).round() as usize;
        let n_test = take(f.test);
        let n_valid = take(f.valid).min(rows.len() - n_test);
        self.test.extend_from_slice(&rows[..n_test]);
        self.valid
            .extend_from_slice(&rows[n_test..n_test + n_valid]);
        self.train.extend_from_slice(&rows[n_test + n_valid..]);
    }

    fn sort(&mut self) {
        self.train.sort_unstable();
        self.valid.sort_unstable();
        self.test.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::rng::stream;

    #[test]
    fn random_split_is_seeded_disjoint_and_complete() {
        let rows: Vec<usize> = (0..100).collect();
        let f = SplitFractions::new(0.1, 0.2).unwrap();
        let a = Split::random(&rows, f, &mut stream(1, "split"));
        let b = Split::random(&rows, f, &mut stream(1, "split"));
        let c = Split::random(&rows, f, &mut stream(2, "split"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!((a.train.len(), a.valid.len(), a.test.len()), (70, 10, 20));
        let mut all: Vec<usize> = [a.train, a.valid, a.test].concat();
        all.sort_unstable();
        assert_eq!(all, rows);
    }

    #[test]
    fn stratified_split_keeps_proportions() {
        let rows: Vec<usize> = (0..100).collect();
        let labels: Vec<u8> = rows.iter().map(|&r| u8::from(r < 20)).collect();
        let f = SplitFractions::new(0.0, 0.25).unwrap();
        let s = Split::stratified(&rows, &labels, f, &mut stream(3, "split"));
        let minority_in_test = s.test.iter().filter(|&&r| r < 20).count();
        assert_eq!(minority_in_test, 5);
        assert_eq!(s.test.len(), 25);
    }

    #[test]
    fn bad_fractions_are_rejected() {
        assert!(SplitFractions::new(0.5, 0.5).is_err());
        assert!(SplitFractions::new(-0.1, 0.2).is_err());
    }
}
