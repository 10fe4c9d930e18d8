use std::collections::BTreeMap;
use std::fmt::Write as _;

use kiln_data::stats::{QUANTILE_RELATIVE_ERROR, Summary};
use kiln_data::{ReadOptions, StatsOptions, compute_stats, infer_schema, read_table};

#[test]
fn statistics_match_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("x,kind,when\n");
    let mut xs = Vec::new();
    for i in 0..2000_u32 {
        // A skewed mix of negative and positive values, with every 10th cell missing.
        let x = if i % 10 == 9 {
            None
        } else {
            Some(f64::from(i % 997).powf(1.5) / 10.0 - 500.0)
        };
        xs.extend(x);
        let kind = ["a", "b", "b", "c", "c", "c"][(i % 6) as usize];
        writeln!(
            csv,
            "{},{kind},2024-03-{:02}T12:00:00Z",
            x.map_or(String::new(), |v| v.to_string()),
            i % 28 + 1
        )
        .unwrap();
    }
    let path = crate::write(dir.path(), "s.csv", csv.as_bytes());
    let raw = read_table(&path, &ReadOptions::default()).unwrap();
    let schema = infer_schema(&raw, 1000, &BTreeMap::new()).unwrap();
    let table = raw.conform(&schema, &[]).unwrap();
    let options = StatsOptions::default();
    let stats = compute_stats(&table, &options).unwrap();
    assert_eq!(stats.rows, 2000);

    let x_stats = stats.column("x").unwrap();
    assert_eq!((x_stats.count, x_stats.missing), (1800, 200));
    let Summary::Numeric(numeric) = &x_stats.summary else {
        panic!("x is numeric")
    };
    #[allow(clippy::cast_precision_loss)]
    let count = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / count;
    let std = (xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count).sqrt();
    assert!((numeric.mean.unwrap() - mean).abs() < 1e-9, "{numeric:?}");
    assert!((numeric.std.unwrap() - std).abs() < 1e-9);
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(numeric.min, Some(sorted[0]));
    assert_eq!(numeric.max, Some(sorted[sorted.len() - 1]));
    assert_eq!(numeric.quantiles.len(), options.quantiles.len());
    for q in &numeric.quantiles {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let exact = sorted[(q.q * (sorted.len() - 1) as f64) as usize];
        let bound = QUANTILE_RELATIVE_ERROR.mul_add(exact.abs(), 1e-9);
        assert!(
            (q.value - exact).abs() <= bound,
            "q={} {} vs {exact}",
            q.q,
            q.value
        );
    }
    let hist = &numeric.histogram;
    assert_eq!(hist.counts.iter().sum::<u64>(), 1800);
    assert_eq!(hist.edges.len(), hist.counts.len() + 1);
    assert!(hist.counts.len() <= options.histogram_bins);
    assert!(
        hist.edges[0] <= sorted[0] && sorted[sorted.len() - 1] <= hist.edges[hist.counts.len()]
    );

    let kind = stats.column("kind").unwrap();
    let Summary::Categorical(categories) = &kind.summary else {
        panic!("kind is categorical")
    };
    let top: Vec<_> = categories
        .top
        .iter()
        .map(|v| (v.value.as_str(), v.count))
        .collect();
    assert_eq!(top, [("c", 999), ("b", 667), ("a", 334)]);
    assert_eq!(categories.distinct, 3);

    let when = stats.column("when").unwrap();
    let Summary::Numeric(times) = &when.summary else {
        panic!("datetimes summarise as numbers")
    };
    assert_eq!(times.min_time.as_deref(), Some("2024-03-01T12:00:00Z"));
    assert_eq!(times.max_time.as_deref(), Some("2024-03-28T12:00:00Z"));

    // stats.json reads back (floats to within serde_json's parsing precision).
    let json = serde_json::to_string(&stats).unwrap();
    let back: kiln_data::DatasetStats = serde_json::from_str(&json).unwrap();
    assert_eq!(back.column("kind"), stats.column("kind"));
    assert_eq!(back.rows, stats.rows);
}

#[test]
fn statistics_of_a_row_subset_match_that_subset() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("x,kind,year\n");
    for i in 0..100_u32 {
        writeln!(
            csv,
            "{},{},2013",
            f64::from(i) * 0.5,
            ["a", "b"][(i % 2) as usize]
        )
        .unwrap();
    }
    let path = crate::write(dir.path(), "sub.csv", csv.as_bytes());
    let raw = read_table(&path, &ReadOptions::default()).unwrap();
    let table = raw
        .conform(&infer_schema(&raw, 100, &BTreeMap::new()).unwrap(), &[])
        .unwrap();
    // The even rows: x = 0, 1, …, 49, all of kind `a`.
    let rows: Vec<usize> = (0..100).step_by(2).collect();
    let stats = kiln_data::compute_stats_of(&table, &rows, &StatsOptions::default()).unwrap();
    assert_eq!(stats.rows, 50);
    let Summary::Numeric(x) = &stats.column("x").unwrap().summary else {
        panic!("x is numeric")
    };
    assert_eq!((x.min, x.max, x.mean), (Some(0.0), Some(49.0), Some(24.5)));
    // Quantile estimates stay within the extremes: the sketch alone puts those of a
    // constant 2013 up to 1% off, past the maximum.
    let Summary::Numeric(year) = &stats.column("year").unwrap().summary else {
        panic!("year is numeric")
    };
    assert!(
        year.quantiles
            .iter()
            .all(|q| (q.value - 2013.0).abs() < 1e-9),
        "{year:?}"
    );
    let Summary::Categorical(kind) = &stats.column("kind").unwrap().summary else {
        panic!("kind is categorical")
    };
    assert_eq!(kind.distinct, 1);
    assert_eq!(kind.top[0].count, 50);
}
