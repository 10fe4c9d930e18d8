//! Validation rules on a typed table, and the report of what failed.
//!
//! Rules come from config (e.g. a pipeline's `[validate]` table). Each rule is either a bare
//! value, failing as an error, or `{ value = …, severity = "warn" }`:
//!
//! ```toml
//! max_missing_fraction = 0.2                       # every column, unless it sets its own
//! min_rows = 100
//! min_rows_per_class = { target = "species", min = 10 }
//! target_present = "species"
//! columns.bill_length_mm.range = [20.0, 70.0]
//! columns.species.allowed = ["Adelie", "Chinstrap", "Gentoo"]
//! columns.id.unique = true
//! columns.island.pattern = "[A-Z][a-z]+"           # must match the whole value
//! columns.sex.max_missing = { value = 0.05, severity = "warn" }   # short for max_missing_fraction
//! ```

use std::collections::{BTreeMap, HashSet};

use regex::Regex;
use serde::{Deserialize, Serialize};

use arrow_array::Array;

use crate::{ColumnRef, ColumnType, Error, Result, RowLocation, Table};

/// How many offending rows a failure lists.
pub const EXAMPLE_ROWS: usize = 5;

/// How bad a failed rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The run stops.
    #[default]
    Error,
    /// Reported; the run goes on.
    Warn,
}

/// A rule's value, with its severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Rule<T> {
    /// Just the value: an error when it fails.
    Bare(T),
    /// The value and a severity.
    WithSeverity(RuleWithSeverity<T>),
}

/// The long form of a [`Rule`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleWithSeverity<T> {
    /// The rule's value.
    pub value: T,
    /// Its severity.
    #[serde(default)]
    pub severity: Severity,
}

impl<T> Rule<T> {
    /// The rule's value.
    pub fn value(&self) -> &T {
        match self {
            Rule::Bare(value) | Rule::WithSeverity(RuleWithSeverity { value, .. }) => value,
        }
    }

    /// The rule's severity.
    pub fn severity(&self) -> Severity {
        match self {
            Rule::Bare(_) => Severity::Error,
            Rule::WithSeverity(r) => r.severity,
        }
    }
}

/// Rules for one column.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRules {
    /// Inclusive `[min, max]` of a numeric column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Rule<[f64; 2]>>,
    /// The only values a categorical, boolean or text column may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Rule<Vec<String>>>,
    /// The largest fraction of missing cells (also spelt `max_missing`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "max_missing"
    )]
    pub max_missing_fraction: Option<Rule<f64>>,
    /// Whether every present value must differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<Rule<bool>>,
    /// A regex each present value of a categorical or text column must match whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Rule<String>>,
}

/// A minimum row count per class of a target column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassMinimum {
    /// The class column.
    pub target: String,
    /// Rows each class needs.
    pub min: usize,
}

/// Every rule for a dataset.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// Missing-fraction limit for each column that sets none itself (also `max_missing`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "max_missing"
    )]
    pub max_missing_fraction: Option<Rule<f64>>,
    /// Fewest rows the dataset may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rows: Option<Rule<usize>>,
    /// Fewest rows each class of a target may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rows_per_class: Option<Rule<ClassMinimum>>,
    /// A column that must exist and be present in every row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_present: Option<Rule<String>>,
    /// Per-column rules.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, ColumnRules>,
}

/// One failed rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleFailure {
    /// The rule, e.g. `range`.
    pub rule: &'static str,
    /// The column it is about, if any.
    pub column: Option<String>,
    /// Its severity.
    pub severity: Severity,
    /// What failed, in words.
    pub message: String,
    /// How many rows (or classes, for `min_rows_per_class`) fail it.
    pub count: usize,
    /// Where the first few offending rows are (file lines for text formats).
    pub examples: Vec<RowLocation>,
}

impl std::fmt::Display for RuleFailure {
    /// `range` on `x`: 3 values outside [0, 10] (first at lines 2, 5, 9)
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`", self.rule)?;
        if let Some(column) = &self.column {
            write!(f, " on `{column}`")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(first) = self.examples.first() {
            let numbers: Vec<String> = self
                .examples
                .iter()
                .map(|e| e.number().to_string())
                .collect();
            let unit = match (first, numbers.len()) {
                (RowLocation::Line(_), 1) => "line",
                (RowLocation::Line(_), _) => "lines",
                (RowLocation::Row(_), 1) => "row index",
                (RowLocation::Row(_), _) => "row indices",
            };
            write!(f, " (first at {unit} {})", numbers.join(", "))?;
        }
        Ok(())
    }
}

/// The outcome of [`validate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationReport {
    /// Rows checked.
    pub rows: usize,
    /// Every failed rule, in config order (dataset rules first).
    pub failures: Vec<RuleFailure>,
}

impl ValidationReport {
    /// Whether an error-severity rule failed (the run should stop).
    pub fn has_errors(&self) -> bool {
        self.failures.iter().any(|f| f.severity == Severity::Error)
    }

    /// The failed rules of `severity`.
    pub fn with_severity(&self, severity: Severity) -> impl Iterator<Item = &RuleFailure> {
        self.failures.iter().filter(move |f| f.severity == severity)
    }
}

/// Checks `table` against `config`.
///
/// # Errors
/// Config mistakes, not data failures (those go in the report):
/// [`Error::MissingColumn`] for a rule on a column the table lacks (suggesting the closest
/// name), [`Error::RuleMismatch`] for a rule that does not fit the column's type,
/// [`Error::BadPattern`] for an invalid regex.
pub fn validate(table: &Table, config: &ValidationConfig) -> Result<ValidationReport> {
    let mut report = ValidationReport {
        rows: table.n_rows(),
        failures: Vec::new(),
    };
    let rows = table.n_rows();
    if let Some(rule) = &config.min_rows
        && rows < *rule.value()
    {
        report.failures.push(RuleFailure {
            rule: "min_rows",
            column: None,
            severity: rule.severity(),
            message: format!("{rows} rows, fewer than {}", rule.value()),
            count: rows,
            examples: Vec::new(),
        });
    }
    if let Some(rule) = &config.target_present {
        let name = rule.value();
        match table.column(name) {
            None => report.failures.push(RuleFailure {
                rule: "target_present",
                column: Some(name.clone()),
                severity: rule.severity(),
                message: format!("no column `{name}`"),
                count: rows,
                examples: Vec::new(),
            }),
            Some(column) => {
                let missing = Offenders::collect(table, (0..rows).filter(|&r| column.is_null(r)));
                missing.report(&mut report, "target_present", name, rule.severity(), |n| {
                    format!("{n} rows have no target")
                });
            }
        }
    }
    if let Some(rule) = &config.min_rows_per_class {
        let ClassMinimum { target, min } = rule.value();
        let column = table.require(target)?;
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for row in 0..rows {
            if let Some(class) = column.text(row) {
                *counts.entry(class).or_default() += 1;
            }
        }
        let small: Vec<String> = counts
            .iter()
            .filter(|&(_, &n)| n < *min)
            .map(|(class, n)| format!("`{class}` ({n})"))
            .collect();
        if !small.is_empty() {
            report.failures.push(RuleFailure {
                rule: "min_rows_per_class",
                column: Some(target.clone()),
                severity: rule.severity(),
                message: format!("classes with fewer than {min} rows: {}", small.join(", ")),
                count: small.len(),
                examples: Vec::new(),
            });
        }
    }
    let default_missing = ColumnRules {
        max_missing_fraction: config.max_missing_fraction.clone(),
        ..ColumnRules::default()
    };
    for column in &table.schema().columns {
        if !config.columns.contains_key(&column.name) && config.max_missing_fraction.is_some() {
            check_column(table, &column.name, &default_missing, &mut report)?;
        }
    }
    for (name, rules) in &config.columns {
        let mut rules = rules.clone();
        if rules.max_missing_fraction.is_none() {
            rules
                .max_missing_fraction
                .clone_from(&config.max_missing_fraction);
        }
        check_column(table, name, &rules, &mut report)?;
    }
    Ok(report)
}

fn check_column(
    table: &Table,
    name: &str,
    rules: &ColumnRules,
    report: &mut ValidationReport,
) -> Result<()> {
    let column = table.require(name)?;
    let column_type = table
        .schema()
        .column(name)
        .map_or(ColumnType::Categorical, |c| c.column_type);
    let rows = 0..table.n_rows();
    let mismatch = |rule| Error::RuleMismatch {
        column: name.to_owned(),
        rule,
        column_type,
    };
    if let Some(rule) = &rules.max_missing_fraction {
        let missing = Offenders::collect(table, rows.clone().filter(|&r| column.is_null(r)));
        #[allow(clippy::cast_precision_loss)] // Row counts are far below 2^52.
        let fraction = missing.count as f64 / table.n_rows().max(1) as f64;
        if fraction > *rule.value() {
            let limit = rule.value();
            missing.report(report, "max_missing_fraction", name, rule.severity(), |n| {
                format!("{n} missing values ({fraction:.3} of rows), above {limit}")
            });
        }
    }
    if let Some(rule) = &rules.range {
        let ColumnRef::Numeric(values) = column else {
            return Err(mismatch("range"));
        };
        let [lo, hi] = *rule.value();
        let outside = Offenders::collect(
            table,
            rows.clone()
                .filter(|&r| !values.is_null(r) && !(lo..=hi).contains(&values.value(r))),
        );
        outside.report(report, "range", name, rule.severity(), |n| {
            format!("{n} values outside [{lo}, {hi}]")
        });
    }
    if let Some(rule) = &rules.allowed {
        if !matches!(
            column_type,
            ColumnType::Categorical | ColumnType::Boolean | ColumnType::Text
        ) {
            return Err(mismatch("allowed"));
        }
        let allowed: HashSet<&str> = rule.value().iter().map(String::as_str).collect();
        let other = Offenders::collect(
            table,
            rows.clone().filter(|&r| {
                column
                    .text(r)
                    .is_some_and(|v| !allowed.contains(v.as_str()))
            }),
        );
        other.report(report, "allowed", name, rule.severity(), |n| {
            format!("{n} values not in the allowed set")
        });
    }
    if let Some(rule) = &rules.unique
        && *rule.value()
    {
        let mut seen = HashSet::new();
        let repeats = Offenders::collect(
            table,
            rows.clone()
                .filter(|&r| column.text(r).is_some_and(|v| !seen.insert(v))),
        );
        repeats.report(report, "unique", name, rule.severity(), |n| {
            format!("{n} values repeat an earlier row")
        });
    }
    if let Some(rule) = &rules.pattern {
        if !matches!(column_type, ColumnType::Categorical | ColumnType::Text) {
            return Err(mismatch("pattern"));
        }
        let pattern = rule.value();
        let regex =
            Regex::new(&format!("^(?:{pattern})$")).map_err(|source| Error::BadPattern {
                column: name.to_owned(),
                source,
            })?;
        let other = Offenders::collect(
            table,
            rows.filter(|&r| column.text(r).is_some_and(|v| !regex.is_match(&v))),
        );
        other.report(report, "pattern", name, rule.severity(), |n| {
            format!("{n} values do not match `{pattern}`")
        });
    }
    Ok(())
}

/// The rows failing a rule: how many, and where the first few are.
struct Offenders {
    count: usize,
    examples: Vec<RowLocation>,
}

impl Offenders {
    fn collect(table: &Table, rows: impl Iterator<Item = usize>) -> Self {
        let mut offenders = Offenders {
            count: 0,
            examples: Vec::new(),
        };
        for row in rows {
            if offenders.count < EXAMPLE_ROWS {
                offenders.examples.push(table.location(row));
            }
            offenders.count += 1;
        }
        offenders
    }

    /// Adds a failure to `report` when any row offends.
    fn report(
        self,
        report: &mut ValidationReport,
        rule: &'static str,
        column: &str,
        severity: Severity,
        message: impl FnOnce(usize) -> String,
    ) {
        if self.count > 0 {
            report.failures.push(RuleFailure {
                rule,
                column: Some(column.to_owned()),
                severity,
                message: message(self.count),
                count: self.count,
                examples: self.examples,
            });
        }
    }
}
