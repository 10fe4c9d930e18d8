//! Arbitrary bytes through read → infer → conform → validate → stats: errors are fine, panics
//! are not.

use std::collections::BTreeMap;

use kiln_data::validate::{ColumnRules, Rule};
use kiln_data::{
    ReadOptions, StatsOptions, ValidationConfig, compute_stats, infer_schema, read_table, validate,
};
use proptest::prelude::*;

fn pipeline(dir: &std::path::Path, name: &str, bytes: &[u8]) {
    let path = crate::write(dir, name, bytes);
    let Ok(raw) = read_table(&path, &ReadOptions::default()) else {
        return;
    };
    let Ok(schema) = infer_schema(&raw, 5, &BTreeMap::new()) else {
        return;
    };
    let Ok(table) = raw.conform(&schema, &[]) else {
        return;
    };
    let first = schema.columns[0].name.clone();
    let config = ValidationConfig {
        max_missing_fraction: Some(Rule::Bare(0.5)),
        min_rows: Some(Rule::Bare(3)),
        target_present: Some(Rule::Bare(first.clone())),
        columns: BTreeMap::from([(
            first,
            ColumnRules {
                unique: Some(Rule::Bare(true)),
                ..ColumnRules::default()
            },
        )]),
        ..ValidationConfig::default()
    };
    let _ = validate(&table, &config);
    let stats = compute_stats(&table, &StatsOptions::default()).unwrap();
    serde_json::to_string(&stats).unwrap();
}

fn csv_like() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b",\n\"0123456789.-eE truefalsNA#\r".to_vec()),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in csv_like()) {
        let dir = tempfile::tempdir().unwrap();
        for name in ["f.csv", "f.jsonl", "f.parquet", "f.csv.gz"] {
            pipeline(dir.path(), name, &bytes);
        }
        // JSON-shaped input reaches the JSON Lines reader's deeper paths.
        let mut json = b"{\"a\": ".to_vec();
        json.extend_from_slice(&bytes);
        pipeline(dir.path(), "g.jsonl", &json);
    }
}
