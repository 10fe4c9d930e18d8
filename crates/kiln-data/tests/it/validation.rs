use std::collections::BTreeMap;

use kiln_data::validate::{RuleFailure, Severity};
use kiln_data::{ReadOptions, RowLocation, ValidationConfig, infer_schema, read_table, validate};

fn table() -> (tempfile::TempDir, kiln_data::Table) {
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,len,species,code\n\
               1,40,Adelie,AB-1\n\
               2,,Adelie,AB-2\n\
               3,95,Gentoo,ab-3\n\
               3,50,Gentoo,AB-4\n\
               5,10,Emperor,AB-5\n\
               6,,Gentoo,AB-6\n";
    let path = crate::write(dir.path(), "v.csv", csv.as_bytes());
    let raw = read_table(&path, &ReadOptions::default()).unwrap();
    let schema = infer_schema(&raw, 100, &BTreeMap::new()).unwrap();
    let table = raw.conform(&schema, &[]).unwrap();
    (dir, table)
}

fn config(text: &str) -> ValidationConfig {
    toml::from_str(text).unwrap()
}

fn failure<'a>(failures: &'a [RuleFailure], rule: &str) -> &'a RuleFailure {
    failures
        .iter()
        .find(|f| f.rule == rule)
        .unwrap_or_else(|| panic!("no `{rule}` failure in {failures:?}"))
}

#[test]
fn each_rule_reports_count_and_lines() {
    let (_dir, table) = table();
    let config = config(
        r#"
        max_missing_fraction = 0.2
        min_rows = 10
        min_rows_per_class = { value = { target = "species", min = 2 }, severity = "warn" }
        target_present = "species"
        columns.len.range = [20.0, 60.0]
        columns.species.allowed = ["Adelie", "Gentoo", "Chinstrap"]
        columns.id.unique = true
        columns.code.pattern = "[A-Z]{2}-[0-9]"
        "#,
    );
    let report = validate(&table, &config).unwrap();
    let f = &report.failures;
    assert_eq!(failure(f, "min_rows").count, 6);
    let missing = failure(f, "max_missing_fraction");
    assert_eq!(missing.column.as_deref(), Some("len"));
    assert_eq!(
        (missing.count, missing.examples.clone()),
        (2, vec![RowLocation::Line(3), RowLocation::Line(7)])
    );
    let range = failure(f, "range");
    assert_eq!(
        (range.count, range.examples.clone()),
        (2, vec![RowLocation::Line(4), RowLocation::Line(6)])
    );
    let allowed = failure(f, "allowed");
    assert_eq!(
        (allowed.count, allowed.examples.clone()),
        (1, vec![RowLocation::Line(6)])
    );
    assert_eq!(failure(f, "unique").examples, [RowLocation::Line(5)]);
    assert_eq!(failure(f, "pattern").examples, [RowLocation::Line(4)]);
    let classes = failure(f, "min_rows_per_class");
    assert_eq!((classes.count, classes.severity), (1, Severity::Warn));
    assert!(
        classes.message.contains("`Emperor` (1)"),
        "{}",
        classes.message
    );
    assert!(f.iter().all(|x| x.rule != "target_present"));
    assert!(report.has_errors());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["failures"][0]["rule"], "min_rows");
    assert_eq!(json["failures"][1]["examples"], serde_json::json!([]));
}

#[test]
fn warnings_alone_do_not_fail() {
    let (_dir, table) = table();
    let config = config(r#"columns.len.range = { value = [20.0, 60.0], severity = "warn" }"#);
    let report = validate(&table, &config).unwrap();
    assert_eq!(report.failures.len(), 1);
    assert!(!report.has_errors());
    assert_eq!(report.with_severity(Severity::Warn).count(), 1);
    let clean = validate(&table, &ValidationConfig::default()).unwrap();
    assert!(clean.failures.is_empty());
}

#[test]
fn config_mistakes_are_errors() {
    let (_dir, table) = table();
    let typo: Result<ValidationConfig, _> = toml::from_str("columns.len.rnage = [1.0, 2.0]");
    assert!(typo.is_err());
    let unknown = validate(&table, &config("columns.lenn.unique = true")).unwrap_err();
    assert!(
        unknown.to_string().contains("did you mean `len`?"),
        "{unknown}"
    );
    let mismatch = validate(&table, &config("columns.species.range = [1.0, 2.0]")).unwrap_err();
    assert!(mismatch.to_string().contains("rule `range`"), "{mismatch}");
    let pattern = validate(&table, &config(r#"columns.code.pattern = "(""#)).unwrap_err();
    assert!(pattern.to_string().contains("invalid pattern"), "{pattern}");
}

#[test]
fn failures_read_as_one_line_and_max_missing_is_short_for_the_fraction() {
    let (_dir, table) = table();
    let rules = config("columns.len.max_missing = { value = 0.1, severity = \"warn\" }\n");
    let report = validate(&table, &rules).unwrap();
    let missing = failure(&report.failures, "max_missing_fraction");
    assert_eq!(missing.severity, Severity::Warn);
    assert_eq!(
        missing.to_string(),
        "`max_missing_fraction` on `len`: 2 missing values (0.333 of rows), above 0.1 \
         (first at lines 3, 7)"
    );
    let report = validate(&table, &config("min_rows = 10\n")).unwrap();
    assert_eq!(
        report.failures[0].to_string(),
        "`min_rows`: 6 rows, fewer than 10"
    );
}
