//! Property tests over random tables with missing values (fixed case count and seed).

use std::fmt::Write;

use kiln_data::{ColumnType, CsvOptions, Table, infer_schema, read_csv};
use kiln_transform::{
    Encode, FeatureConfig, FeaturePlan, FittedColumn, FittedFeatures, FittedTarget, Impute, Scale,
    TargetKind,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// One generated row: a numeric cell, an all-missing column, a category, a flag and a target.
#[derive(Debug, Clone)]
struct Row {
    x: Option<f64>,
    c: Option<u8>,
    b: Option<bool>,
    y: f64,
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop::option::weighted(0.8, -1e3..1e3_f64),
        prop::option::weighted(0.9, 0..6_u8),
        prop::option::of(any::<bool>()),
        -50.0..50.0_f64,
    )
        .prop_map(|(x, c, b, y)| Row { x, c, b, y })
}

fn csv(rows: &[Row]) -> String {
    let mut text = String::from("x,empty,c,b,y\n");
    for r in rows {
        let x = r.x.map_or("NA".to_owned(), |v| v.to_string());
        // Categories a..f; tests add the unseen letters beyond.
        let c =
            r.c.map_or("NA".to_owned(), |v| char::from(b'a' + v).to_string());
        let b = r.b.map_or("NA".to_owned(), |v| v.to_string());
        writeln!(text, "{x},NA,{c},{b},{}", r.y).unwrap();
    }
    text
}

fn table(rows: &[Row]) -> Table {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    fs_err::write(&path, csv(rows)).unwrap();
    let raw = read_csv(&path, &CsvOptions::default()).unwrap();
    let types = [
        ("x", ColumnType::Numeric),
        ("empty", ColumnType::Numeric),
        ("c", ColumnType::Categorical),
        ("b", ColumnType::Boolean),
        ("y", ColumnType::Numeric),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_owned(), t))
    .collect();
    let schema = infer_schema(&raw, 1000, &types).unwrap();
    raw.conform(&schema, &[]).unwrap()
}

fn features() -> impl Strategy<Value = FeatureConfig> {
    (
        prop_oneof![
            Just(Impute::Median),
            Just(Impute::Mean),
            Just(Impute::Constant)
        ],
        prop_oneof![
            Just(Scale::Standard),
            Just(Scale::MinMax),
            Just(Scale::Robust),
            Just(Scale::MaxAbs),
            Just(Scale::None)
        ],
        any::<bool>(),
        prop::option::of(2..6_usize),
        any::<bool>(),
        prop_oneof![
            Just(Encode::OneHot),
            Just(Encode::Ordinal),
            Just(Encode::Hashing),
            Just(Encode::Target)
        ],
        1..3_usize,
    )
        .prop_map(
            |(impute, scale, power, bins, indicator, encode, min_frequency)| {
                let mut config = FeatureConfig::default();
                config.numeric.impute = impute;
                config.numeric.scale = scale;
                config.numeric.power = power;
                config.numeric.bins = bins;
                config.numeric.missing_indicator = indicator;
                config.categorical.encode = encode;
                config.categorical.min_frequency = min_frequency;
                config
            },
        )
}

fn fit(t: &Table, config: FeatureConfig, train: &[usize]) -> FittedFeatures {
    let target = FittedTarget::fit(t, "y", TargetKind::Regression, train).unwrap();
    FeaturePlan::new(t.schema(), &["y"], config)
        .target(&target)
        .fit(t, train)
        .unwrap()
}

fn cases() -> Config {
    Config {
        cases: 48,
        rng_seed: RngSeed::Fixed(0x6b69_6c6e),
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn batch_equals_rows_alone_and_serde_round_trips(
        rows in prop::collection::vec(row(), 4..40),
        config in features(),
    ) {
        let t = table(&rows);
        let train: Vec<usize> = (0..rows.len()).step_by(2).collect();
        let fitted = fit(&t, config, &train);
        let all: Vec<usize> = (0..rows.len()).collect();
        let batch = fitted.transform(&t, &all).unwrap();
        prop_assert!(batch.data.iter().all(|v| v.is_finite()), "{:?}", batch.data);
        for &r in &all {
            let alone = fitted.transform(&t, &[r]).unwrap();
            prop_assert_eq!(alone.row(0), batch.row(r));
        }
        let json = serde_json::to_string(&fitted).unwrap();
        let back: FittedFeatures = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &fitted);
        prop_assert_eq!(back.transform(&t, &all).unwrap(), batch);
    }

    #[test]
    fn fit_touches_train_rows_only(
        rows in prop::collection::vec(row(), 4..30),
        others in prop::collection::vec(row(), 4..30),
        config in features(),
    ) {
        // Same train rows (the first half), different everything else.
        let train: Vec<usize> = (0..rows.len() / 2).collect();
        let mut changed = rows[..rows.len() / 2].to_vec();
        changed.extend(others);
        let a = fit(&table(&rows), config.clone(), &train);
        let b = fit(&table(&changed), config, &train);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn unseen_categories_and_missing_columns_never_panic(
        rows in prop::collection::vec(row(), 2..20),
        config in features(),
        unseen in prop::collection::vec(6..26_u8, 1..5),
    ) {
        let mut all = rows.clone();
        all.extend(unseen.iter().map(|&c| Row { x: None, c: Some(c), b: None, y: 0.0 }));
        let t = table(&all);
        let train: Vec<usize> = (0..rows.len()).collect();
        let fitted = fit(&t, config, &train);
        let new: Vec<usize> = (rows.len()..all.len()).collect();
        let out = fitted.transform(&t, &new).unwrap();
        prop_assert!(out.data.iter().all(|v| v.is_finite()), "{:?}", out.data);
    }

    #[test]
    fn inverse_recovers_values_where_invertible(
        values in prop::collection::vec(-1e3..1e3_f64, 3..40),
        scale in prop_oneof![Just(Scale::Standard), Just(Scale::MinMax), Just(Scale::Robust), Just(Scale::MaxAbs), Just(Scale::None)],
        power in any::<bool>(),
        log1p in any::<bool>(),
    ) {
        let rows: Vec<Row> = values
            .iter()
            .map(|&v| Row { x: Some(if log1p { v.abs() } else { v }), c: Some(0), b: Some(true), y: v })
            .collect();
        let t = table(&rows);
        let mut config = FeatureConfig::default();
        config.numeric.scale = scale;
        config.numeric.power = power;
        config.numeric.log1p = log1p;
        let all: Vec<usize> = (0..rows.len()).collect();
        let fitted = fit(&t, config, &all);
        let FittedColumn::Numeric(x) = &fitted.columns[0] else { panic!("x is numeric") };
        for r in &rows {
            let v = r.x.unwrap();
            let forward = x.apply(Some(v)).unwrap();
            let back = x.inverse(forward).unwrap();
            prop_assert!((back - v).abs() <= 1e-6 * v.abs().max(1.0), "{v} -> {forward} -> {back}");
        }
        let target = FittedTarget::fit(&t, "y", TargetKind::Regression, &all).unwrap();
        let kiln_transform::Targets::Values(encoded) = target.encode(&t, &all).unwrap() else { panic!() };
        for (r, e) in rows.iter().zip(encoded) {
            // Targets are f32 for the model: recovered within f32 precision of the scaled value.
            let back = target.decode_value(e);
            prop_assert!((back - r.y).abs() <= 1e-5 * r.y.abs().max(1.0) * 10.0, "{} -> {e} -> {back}", r.y);
        }
    }
}
