use std::collections::{BTreeMap, BTreeSet};

use kiln_core::rng::stream;
use kiln_data::{Split, SplitFractions, k_fold, stratified_k_fold};

fn assert_partition(split: &Split, rows: &[usize]) {
    let mut all = [split.train.clone(), split.valid.clone(), split.test.clone()].concat();
    all.sort_unstable();
    assert_eq!(all, rows, "every row in exactly one split");
}

/// Class `c` has 10 * (c + 1) rows: 10, 20, 30, 40.
fn labelled() -> (Vec<usize>, Vec<u32>) {
    let labels: Vec<u32> = (0..4_u32)
        .flat_map(|c| std::iter::repeat_n(c, 10 * (usize::try_from(c).unwrap() + 1)))
        .collect();
    ((0..labels.len()).collect(), labels)
}

#[test]
fn random_split_sizes_and_seeds() {
    let rows: Vec<usize> = (0..200).collect();
    let f = SplitFractions::new(0.15, 0.25).unwrap();
    let a = Split::random(&rows, f, &mut stream(9, "split"));
    assert_eq!((a.train.len(), a.valid.len(), a.test.len()), (120, 30, 50));
    assert_partition(&a, &rows);
    assert_eq!(a, Split::random(&rows, f, &mut stream(9, "split")));
    assert_ne!(a, Split::random(&rows, f, &mut stream(10, "split")));
    assert_eq!(a.hashes(), a.clone().hashes());
    assert_ne!(a.hashes().train, a.hashes().test);
}

#[test]
fn stratified_split_is_within_one_row_per_class() {
    let (rows, labels) = labelled();
    let f = SplitFractions::new(0.2, 0.3).unwrap();
    let s = Split::stratified(&rows, &labels, f, &mut stream(1, "split"));
    assert_partition(&s, &rows);
    for c in 0..4_u32 {
        let class_total = labels.iter().filter(|&&l| l == c).count();
        for (part, fraction) in [(&s.test, 0.3), (&s.valid, 0.2)] {
            let n = part.iter().filter(|&&r| labels[r] == c).count();
            #[allow(clippy::cast_precision_loss)]
            let exact = class_total as f64 * fraction;
            #[allow(clippy::cast_precision_loss)]
            let diff = (n as f64 - exact).abs();
            assert!(diff <= 1.0, "class {c}: {n} vs {exact}");
        }
    }
    assert_eq!(
        s,
        Split::stratified(&rows, &labels, f, &mut stream(1, "split"))
    );
}

#[test]
fn group_split_keeps_groups_whole() {
    let rows: Vec<usize> = (0..300).collect();
    // 60 groups of 1 to 9 rows.
    let groups: Vec<usize> = rows.iter().map(|&r| (r * 7919) % 60).collect();
    let f = SplitFractions::new(0.2, 0.2).unwrap();
    let s = Split::group(&rows, &groups, f, &mut stream(4, "split"));
    assert_partition(&s, &rows);
    let of = |part: &[usize]| part.iter().map(|&r| groups[r]).collect::<BTreeSet<_>>();
    let (train, valid, test) = (of(&s.train), of(&s.valid), of(&s.test));
    assert!(train.is_disjoint(&valid) && train.is_disjoint(&test) && valid.is_disjoint(&test));
    let largest = (0..60)
        .map(|g| groups.iter().filter(|&&x| x == g).count())
        .max()
        .unwrap();
    for part in [&s.valid, &s.test] {
        assert!(part.len().abs_diff(60) <= largest, "{} rows", part.len());
    }
    assert_eq!(s, Split::group(&rows, &groups, f, &mut stream(4, "split")));
    assert_ne!(s, Split::group(&rows, &groups, f, &mut stream(5, "split")));
}

#[test]
fn time_split_orders_train_before_valid_before_test() {
    let rows: Vec<usize> = (0..100).collect();
    // Times out of row order, with ties.
    let times: Vec<i64> = rows
        .iter()
        .map(|&r| i64::try_from((r * 37) % 50).unwrap())
        .collect();
    let f = SplitFractions::new(0.1, 0.2).unwrap();
    let s = Split::time_ordered(&rows, &times, f);
    assert_partition(&s, &rows);
    assert_eq!((s.train.len(), s.valid.len(), s.test.len()), (70, 10, 20));
    let max = |part: &[usize]| part.iter().map(|&r| times[r]).max().unwrap();
    let min = |part: &[usize]| part.iter().map(|&r| times[r]).min().unwrap();
    assert!(max(&s.train) <= min(&s.valid));
    assert!(max(&s.valid) <= min(&s.test));
    assert_eq!(s, Split::time_ordered(&rows, &times, f));
}

#[test]
fn k_fold_covers_every_row_once() {
    let rows: Vec<usize> = (0..103).collect();
    let folds = k_fold(&rows, 5, &mut stream(2, "folds")).unwrap();
    assert_eq!(folds.len(), 5);
    let mut seen = Vec::new();
    for fold in &folds {
        assert!(fold.valid.len() == 20 || fold.valid.len() == 21);
        assert_eq!(fold.train.len() + fold.valid.len(), 103);
        let train: BTreeSet<_> = fold.train.iter().collect();
        assert!(fold.valid.iter().all(|r| !train.contains(r)));
        seen.extend(fold.valid.iter().copied());
    }
    seen.sort_unstable();
    assert_eq!(seen, rows);
    assert_eq!(folds, k_fold(&rows, 5, &mut stream(2, "folds")).unwrap());
    assert!(k_fold(&rows, 1, &mut stream(2, "folds")).is_err());
    assert!(k_fold(&rows[..3], 4, &mut stream(2, "folds")).is_err());
}

#[test]
fn stratified_k_fold_balances_each_class() {
    let (rows, labels) = labelled();
    let k = 3;
    let folds = stratified_k_fold(&rows, &labels, k, &mut stream(6, "folds")).unwrap();
    let mut seen = Vec::new();
    for fold in &folds {
        let mut per_class: BTreeMap<u32, usize> = BTreeMap::new();
        for &r in &fold.valid {
            *per_class.entry(labels[r]).or_default() += 1;
        }
        for c in 0..4_u32 {
            let total = labels.iter().filter(|&&l| l == c).count();
            let n = per_class.get(&c).copied().unwrap_or(0);
            assert!(n == total / k || n == total.div_ceil(k), "class {c}: {n}");
        }
        assert!(fold.valid.len().abs_diff(rows.len() / k) <= 1);
        seen.extend(fold.valid.iter().copied());
    }
    seen.sort_unstable();
    assert_eq!(seen, rows);
    let again = stratified_k_fold(&rows, &labels, k, &mut stream(6, "folds")).unwrap();
    assert_eq!(folds, again);
    assert_eq!(folds[0].hashes(), again[0].hashes());
}
