//! Seeded train / valid / test splits: random, stratified, group and time-ordered, and
//! k-fold (plain and stratified) for cross-validation.
//!
//! Row indices in each split are sorted, so a split is identified by its set of rows (its
//! hash goes into the manifest); training shuffles separately with its own seed.

use std::collections::BTreeMap;

use kiln_core::hash::hash_indices;
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
    /// keeps the class proportions: each class's count in a split is within one row of its exact
    /// share.
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
        let mut split = Split::default();
        for class_rows in group_rows(rows, labels).into_values() {
            split.extend_from(class_rows, fractions, rng);
        }
        split.sort();
        split
    }

    /// Keeps each group (`groups[i]` is the group of `rows[i]`, e.g. a patient or user id) whole:
    /// no group has rows in two splits. Groups are shuffled, then laid end to end and cut by
    /// `fractions` of the rows, each group going where its middle row falls, so split sizes are
    /// within half the largest group of their targets.
    ///
    /// # Panics
    /// When `rows` and `groups` differ in length (a caller bug).
    pub fn group<G: Ord>(
        rows: &[usize],
        groups: &[G],
        fractions: SplitFractions,
        rng: &mut impl rand::Rng,
    ) -> Self {
        assert_eq!(rows.len(), groups.len(), "one group per row");
        let mut members: Vec<Vec<usize>> = group_rows(rows, groups).into_values().collect();
        members.shuffle(rng);
        let n_test = share(rows.len(), fractions.test);
        let n_valid = share(rows.len(), fractions.valid);
        let mut split = Split::default();
        let mut start = 0;
        for group in members {
            // Twice the midpoint, to stay in integers.
            let middle2 = 2 * start + group.len();
            start += group.len();
            let target = if middle2 < 2 * n_test {
                &mut split.test
            } else if middle2 < 2 * (n_test + n_valid) {
                &mut split.valid
            } else {
                &mut split.train
            };
            target.extend(group);
        }
        split.sort();
        split
    }

    /// Orders rows by `times[i]` (the time of `rows[i]`; ties by row index) and cuts them so
    /// training holds the earliest rows, test the latest and validation those between: no row
    /// of a later split is earlier than a row of an earlier one. Needs no randomness.
    ///
    /// # Panics
    /// When `rows` and `times` differ in length (a caller bug).
    pub fn time_ordered<T: Ord>(rows: &[usize], times: &[T], fractions: SplitFractions) -> Self {
        assert_eq!(rows.len(), times.len(), "one time per row");
        let mut order: Vec<(&T, usize)> = times.iter().zip(rows.iter().copied()).collect();
        order.sort();
        let n_test = share(order.len(), fractions.test);
        let n_valid = share(order.len(), fractions.valid).min(order.len() - n_test);
        let n_train = order.len() - n_test - n_valid;
        let mut split = Split {
            train: order[..n_train].iter().map(|&(_, r)| r).collect(),
            valid: order[n_train..n_train + n_valid]
                .iter()
                .map(|&(_, r)| r)
                .collect(),
            test: order[n_train + n_valid..].iter().map(|&(_, r)| r).collect(),
        };
        split.sort();
        split
    }

    /// The blake3 hash of each split's row indices, for the manifest.
    pub fn hashes(&self) -> SplitHashes {
        SplitHashes {
            train: hash_indices(&self.train),
            valid: hash_indices(&self.valid),
            test: hash_indices(&self.test),
        }
    }

    fn extend_from(&mut self, mut rows: Vec<usize>, f: SplitFractions, rng: &mut impl rand::Rng) {
        rows.shuffle(rng);
        let n_test = share(rows.len(), f.test);
        let n_valid = share(rows.len(), f.valid).min(rows.len() - n_test);
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

/// Which split each row of a stream goes to, from a hash of the seed and the row's index
/// alone: a pass over a file larger than memory assigns rows without holding them, and every
/// pass (and every rerun with the seed) assigns them alike. Each split's size is its fraction
/// of the rows up to sampling noise (a random split, not a shuffled cut).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowSplitter {
    key: u64,
    fractions: SplitFractions,
}

impl RowSplitter {
    /// The splitter of `seed` at `fractions`.
    pub fn new(seed: u64, fractions: SplitFractions) -> Self {
        let key = rand::RngExt::random(&mut kiln_core::rng::stream(seed, "split/stream"));
        Self { key, fractions }
    }

    /// The split of the 0-based data row `row`: 0 train, 1 valid, 2 test.
    pub fn assign(&self, row: u64) -> usize {
        // splitmix64's finalizer: every bit of the row index moves every output bit.
        let mut z = self.key ^ row.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        #[allow(clippy::cast_precision_loss)] // The top 53 bits convert exactly.
        let u = (z >> 11) as f64 / (1_u64 << 53) as f64;
        let f = self.fractions;
        [f.test, f.test + f.valid, f64::INFINITY]
            .iter()
            .position(|&bound| u < bound)
            .map_or(0, |i| 2 - i)
    }
}

/// Hex blake3 hashes of a split's row indices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitHashes {
    /// Hash of the training rows.
    pub train: String,
    /// Hash of the validation rows.
    pub valid: String,
    /// Hash of the test rows.
    pub test: String,
}

/// One fold of a k-fold cross-validation: train on `train`, score on `valid`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Fold {
    /// Rows of the other folds, sorted.
    pub train: Vec<usize>,
    /// This fold's rows, sorted.
    pub valid: Vec<usize>,
}

impl Fold {
    /// The blake3 hashes of the fold's rows (train, then valid).
    pub fn hashes(&self) -> (String, String) {
        (hash_indices(&self.train), hash_indices(&self.valid))
    }
}

/// Shuffles `rows` and deals them into `k` folds whose sizes differ by at most one.
///
/// # Errors
/// [`Error::BadFolds`] unless `2 <= k <= rows.len()`.
pub fn k_fold(rows: &[usize], k: usize, rng: &mut impl rand::Rng) -> Result<Vec<Fold>> {
    check_folds(k, rows.len())?;
    let mut shuffled = rows.to_vec();
    shuffled.shuffle(rng);
    Ok(folds_from_assignment(k, shuffled.into_iter().enumerate()))
}

/// Like [`k_fold`], but deals each class (`labels[i]` is the class of `rows[i]`) across the
/// folds in turn, continuing where the previous class stopped: each class's count in a fold is
/// within one row of its exact share, and fold sizes differ by at most one.
///
/// # Errors
/// [`Error::BadFolds`] unless `2 <= k <= rows.len()`.
///
/// # Panics
/// When `rows` and `labels` differ in length (a caller bug).
pub fn stratified_k_fold<L: Ord>(
    rows: &[usize],
    labels: &[L],
    k: usize,
    rng: &mut impl rand::Rng,
) -> Result<Vec<Fold>> {
    assert_eq!(rows.len(), labels.len(), "one label per row");
    check_folds(k, rows.len())?;
    let mut dealt = Vec::with_capacity(rows.len());
    for mut class_rows in group_rows(rows, labels).into_values() {
        class_rows.shuffle(rng);
        dealt.extend(class_rows);
    }
    Ok(folds_from_assignment(k, dealt.into_iter().enumerate()))
}

fn check_folds(k: usize, n_rows: usize) -> Result<()> {
    if k >= 2 && k <= n_rows {
        Ok(())
    } else {
        Err(Error::BadFolds { k, rows: n_rows })
    }
}

/// Row number `i` of the deal goes to fold `i % k`.
fn folds_from_assignment(k: usize, dealt: impl Iterator<Item = (usize, usize)>) -> Vec<Fold> {
    let mut members = vec![Vec::new(); k];
    for (i, row) in dealt {
        members[i % k].push(row);
    }
    (0..k)
        .map(|fold| {
            let mut valid = members[fold].clone();
            let mut train: Vec<usize> = members
                .iter()
                .enumerate()
                .filter(|&(other, _)| other != fold)
                .flat_map(|(_, rows)| rows.iter().copied())
                .collect();
            valid.sort_unstable();
            train.sort_unstable();
            Fold { train, valid }
        })
        .collect()
}

/// Rows by key, keys in order (so the result does not depend on hashing).
fn group_rows<'a, K: Ord>(rows: &[usize], keys: &'a [K]) -> BTreeMap<&'a K, Vec<usize>> {
    let mut by_key: BTreeMap<&K, Vec<usize>> = BTreeMap::new();
    for (&row, key) in rows.iter().zip(keys) {
        by_key.entry(key).or_default().push(row);
    }
    by_key
}

/// `fraction` of `n` rows, rounded.
fn share(n: usize, fraction: f64) -> usize {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    // Row counts are far below 2^52 and fractions are in [0, 1), so the round trip is exact.
    let rows = (n as f64 * fraction).round() as usize;
    rows.min(n)
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

    #[test]
    fn row_splitter_is_seeded_and_near_its_fractions() {
        let f = SplitFractions::new(0.1, 0.2).unwrap();
        let a = RowSplitter::new(7, f);
        let mut counts = [0_usize; 3];
        for row in 0..100_000 {
            counts[a.assign(row)] += 1;
            assert_eq!(a.assign(row), RowSplitter::new(7, f).assign(row));
        }
        assert!((69_000..71_000).contains(&counts[0]), "{counts:?}");
        assert!((9_500..10_500).contains(&counts[1]), "{counts:?}");
        assert!((19_500..20_500).contains(&counts[2]), "{counts:?}");
        let b = RowSplitter::new(8, f);
        assert!((0..100).any(|row| a.assign(row) != b.assign(row)));
    }
}
