//! JSON input for embedding and serving: rows checked against a bundle's schema and
//! `[validate]` rules, then typed into a [`Table`] exactly as a data file would be.

use std::collections::BTreeMap;

use arrow_array::Array;
use kiln_data::validate::Severity;
use kiln_data::{Cell, ColumnRef, ColumnRole, ColumnType, RowLocation, Table, TableBuilder};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::bundle::{BundleSpec, Predictions};

/// What errors and tables built from JSON name as their source.
pub const JSON_SOURCE: &str = "<json>";

/// Why JSON input cannot be predicted. Rows are 0-based indices into the request's rows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The body is neither an array of row objects nor an object of column arrays.
    #[error("expected an array of row objects or an object of column arrays, got {found}")]
    Shape {
        /// The JSON type found.
        found: &'static str,
    },
    /// No rows.
    #[error("no rows to predict")]
    Empty,
    /// A row that is not a JSON object.
    #[error("row {row}: expected an object, got {found}")]
    NotAnObject {
        /// The row.
        row: usize,
        /// The JSON type found.
        found: &'static str,
    },
    /// Columnar input whose column is not an array, or whose arrays differ in length.
    #[error("column `{column}`: expected an array of {rows} values")]
    Ragged {
        /// The column.
        column: String,
        /// The length of the first column.
        rows: usize,
    },
    /// A key that is not a column of the bundle's schema.
    #[error("row {row}: unknown column `{column}`{}", suggestion.as_ref().map_or(String::new(), |s| format!("; did you mean `{s}`?")))]
    UnknownColumn {
        /// The row.
        row: usize,
        /// The key.
        column: String,
        /// The closest schema column, if one is close.
        suggestion: Option<String>,
    },
    /// A feature column absent from a row (send `null` for a missing value).
    #[error("row {row}: missing column `{column}` (send null for a missing value)")]
    MissingColumn {
        /// The row.
        row: usize,
        /// The column.
        column: String,
    },
    /// A value of the wrong type.
    #[error("row {row}, column `{column}`: expected {expected}, got {value}")]
    WrongType {
        /// The row.
        row: usize,
        /// The column.
        column: String,
        /// The value as JSON (cut to 100 characters).
        value: String,
        /// What the column holds.
        expected: &'static str,
    },
    /// A number outside its `[validate]` range.
    #[error("row {row}, column `{column}`: {value} is outside the range [{min}, {max}]")]
    OutOfRange {
        /// The row.
        row: usize,
        /// The column.
        column: String,
        /// The value.
        value: f64,
        /// Lowest allowed.
        min: f64,
        /// Highest allowed.
        max: f64,
    },
    /// A value not among its `[validate]` allowed values.
    #[error("row {row}, column `{column}`: `{value}` is not one of the allowed values")]
    NotAllowed {
        /// The row.
        row: usize,
        /// The column.
        column: String,
        /// The value.
        value: String,
    },
}

impl InputError {
    /// Whether the body's structure is wrong (HTTP 400) rather than its content against the
    /// schema (HTTP 422).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            InputError::Shape { .. }
                | InputError::Empty
                | InputError::NotAnObject { .. }
                | InputError::Ragged { .. }
        )
    }

    /// The row the error is about.
    pub fn row(&self) -> Option<usize> {
        match self {
            InputError::NotAnObject { row, .. }
            | InputError::UnknownColumn { row, .. }
            | InputError::MissingColumn { row, .. }
            | InputError::WrongType { row, .. }
            | InputError::OutOfRange { row, .. }
            | InputError::NotAllowed { row, .. } => Some(*row),
            InputError::Shape { .. } | InputError::Empty | InputError::Ragged { .. } => None,
        }
    }

    /// The column the error is about.
    pub fn column(&self) -> Option<&str> {
        match self {
            InputError::Ragged { column, .. }
            | InputError::UnknownColumn { column, .. }
            | InputError::MissingColumn { column, .. }
            | InputError::WrongType { column, .. }
            | InputError::OutOfRange { column, .. }
            | InputError::NotAllowed { column, .. } => Some(column),
            InputError::Shape { .. } | InputError::Empty | InputError::NotAnObject { .. } => None,
        }
    }
}

/// One row's prediction, in the target's units.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Prediction {
    /// Classification: the most probable class and every class's probability.
    Class {
        /// The predicted class.
        class: String,
        /// Probability per class.
        probabilities: BTreeMap<String, f32>,
    },
    /// Regression: the predicted value.
    Value {
        /// The value.
        value: f64,
    },
}

impl Predictions {
    /// One [`Prediction`] per row.
    pub fn to_rows(&self) -> Vec<Prediction> {
        match self {
            Predictions::Classes {
                classes,
                probabilities,
            } => (0..probabilities.rows)
                .map(|r| {
                    let p = probabilities.row(r);
                    Prediction::Class {
                        class: classes[kiln_train::metrics::argmax(p)].clone(),
                        probabilities: classes.iter().cloned().zip(p.iter().copied()).collect(),
                    }
                })
                .collect(),
            Predictions::Values(values) => values
                .iter()
                .map(|&value| Prediction::Value { value })
                .collect(),
        }
    }
}

impl BundleSpec {
    /// The columns a row must hold: the schema's features, the target excluded.
    pub fn input_columns(&self) -> impl Iterator<Item = &kiln_data::ColumnSchema> {
        let target = self.target.name();
        self.schema
            .columns
            .iter()
            .filter(move |c| c.role == ColumnRole::Feature && c.name != target)
    }

    /// The class names of a classification target, in probability order.
    pub fn classes(&self) -> Option<&[String]> {
        match &self.target {
            kiln_transform::FittedTarget::Classification { classes, .. } => Some(classes),
            kiln_transform::FittedTarget::Regression { .. } => None,
        }
    }

    /// Types JSON input into a table of the input columns: `body` is an array of row objects
    /// (`[{"x": 1.5, "c": "a"}]`) or an object of column arrays (`{"x": [1.5], "c": ["a"]}`).
    /// Every input column must be present (`null` is a missing value, imputed as in
    /// training); other schema columns (the target, ids) are ignored; keys outside the schema
    /// are refused, as are values of the wrong type and values that break an error-severity
    /// `range` or `allowed` rule of `[validate]`.
    ///
    /// # Errors
    /// An [`InputError`] naming the row and column.
    pub fn json_table(&self, body: &Value) -> Result<Table, InputError> {
        match body {
            Value::Array(rows) => self.rows_table(rows),
            Value::Object(columns) => self.columns_table(columns),
            other => Err(InputError::Shape {
                found: json_type(other),
            }),
        }
    }

    /// [`BundleSpec::json_table`] for an array of row objects.
    ///
    /// # Errors
    /// An [`InputError`] naming the row and column.
    pub fn rows_table(&self, rows: &[Value]) -> Result<Table, InputError> {
        if rows.is_empty() {
            return Err(InputError::Empty);
        }
        let inputs: Vec<&kiln_data::ColumnSchema> = self.input_columns().collect();
        let mut table = Self::table_builder(&inputs, rows.len());
        for (row, value) in rows.iter().enumerate() {
            let Value::Object(object) = value else {
                return Err(InputError::NotAnObject {
                    row,
                    found: json_type(value),
                });
            };
            self.refuse_unknown(row, object.keys())?;
            for (index, column) in inputs.iter().enumerate() {
                let Some(cell) = object.get(&column.name) else {
                    return Err(InputError::MissingColumn {
                        row,
                        column: column.name.clone(),
                    });
                };
                self.push_cell(&mut table, index, row, column, cell)?;
            }
        }
        Ok(Self::finish(table))
    }

    fn columns_table(&self, columns: &Map<String, Value>) -> Result<Table, InputError> {
        self.refuse_unknown(0, columns.keys())?;
        let inputs: Vec<&kiln_data::ColumnSchema> = self.input_columns().collect();
        // The first column's length is every column's.
        let rows = inputs
            .first()
            .and_then(|c| columns.get(&c.name))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let mut table = Self::table_builder(&inputs, rows);
        for (index, column) in inputs.iter().enumerate() {
            let Some(values) = columns.get(&column.name) else {
                return Err(InputError::MissingColumn {
                    row: 0,
                    column: column.name.clone(),
                });
            };
            let Some(values) = values.as_array().filter(|v| v.len() == rows) else {
                return Err(InputError::Ragged {
                    column: column.name.clone(),
                    rows,
                });
            };
            for (row, cell) in values.iter().enumerate() {
                self.push_cell(&mut table, index, row, column, cell)?;
            }
        }
        if rows == 0 {
            return Err(InputError::Empty);
        }
        Ok(Self::finish(table))
    }

    fn refuse_unknown<'a>(
        &self,
        row: usize,
        mut keys: impl Iterator<Item = &'a String>,
    ) -> Result<(), InputError> {
        match keys.find(|k| self.schema.column(k).is_none()) {
            Some(key) => Err(InputError::UnknownColumn {
                row,
                column: key.clone(),
                suggestion: kiln_core::suggest::closest(key, self.schema.names()),
            }),
            None => Ok(()),
        }
    }

    fn table_builder(inputs: &[&kiln_data::ColumnSchema], rows: usize) -> TableBuilder {
        let schema = kiln_data::Schema {
            columns: inputs.iter().copied().cloned().collect(),
        };
        TableBuilder::new(JSON_SOURCE, schema, rows)
    }

    /// Appends `cell` to `table` after the JSON type and `[validate]` checks; the column then
    /// types it as a data file's text (datetimes and boolean words are parsed there).
    fn push_cell(
        &self,
        table: &mut TableBuilder,
        index: usize,
        row: usize,
        column: &kiln_data::ColumnSchema,
        cell: &Value,
    ) -> Result<(), InputError> {
        let wrong = || InputError::WrongType {
            row,
            column: column.name.clone(),
            value: cell.to_string().chars().take(100).collect(),
            expected: column.column_type.expected(),
        };
        let rules = self.validate.columns.get(&column.name);
        // A category given as a number (a year read as a label) keeps the number's JSON text.
        let number_text;
        let typed = match (column.column_type, cell) {
            (_, Value::Null) => Cell::Missing,
            (ColumnType::Numeric, Value::Number(n)) => {
                let value = n.as_f64().ok_or_else(wrong)?;
                if let Some(rule) = rules.and_then(|r| r.range.as_ref())
                    && rule.severity() == Severity::Error
                    && let [min, max] = *rule.value()
                    && !(min..=max).contains(&value)
                {
                    return Err(InputError::OutOfRange {
                        row,
                        column: column.name.clone(),
                        value,
                        min,
                        max,
                    });
                }
                Cell::Number(value)
            }
            (ColumnType::Boolean, Value::Bool(b)) => Cell::Bool(*b),
            (ColumnType::Categorical, Value::Number(n)) => {
                number_text = n.to_string();
                Cell::Text(&number_text)
            }
            (
                ColumnType::Categorical
                | ColumnType::Text
                | ColumnType::Datetime
                | ColumnType::Boolean,
                Value::String(s),
            ) => Cell::Text(s),
            _ => return Err(wrong()),
        };
        if let Some(rule) = rules.and_then(|r| r.allowed.as_ref())
            && rule.severity() == Severity::Error
            && typed != Cell::Missing
        {
            // As a data file spells the value: JSON's own text for numbers. A string is
            // compared in place; only a refused value is copied into the error.
            let number_or_bool;
            let text = match cell {
                Value::String(s) => s.as_str(),
                other => {
                    number_or_bool = other.to_string();
                    number_or_bool.as_str()
                }
            };
            if !rule.value().iter().any(|allowed| allowed == text) {
                return Err(InputError::NotAllowed {
                    row,
                    column: column.name.clone(),
                    value: text.to_owned(),
                });
            }
        }
        table.push(index, row, typed).map_err(|e| match e {
            kiln_data::Error::BadValue {
                row,
                column,
                value,
                expected,
                ..
            } => InputError::WrongType {
                row: match row {
                    RowLocation::Line(n) | RowLocation::Row(n) => n,
                },
                column,
                value: Value::String(value).to_string(),
                expected,
            },
            // `push` refuses a cell only with `BadValue`.
            other => unreachable!("typing a checked JSON cell: {other}"),
        })
    }

    fn finish(table: TableBuilder) -> Table {
        // Every column was given one cell per row above, which is all `finish` checks.
        table
            .finish()
            .unwrap_or_else(|e| unreachable!("finishing a checked JSON table: {e}"))
    }
}

/// The feature values of `table` as JSON rows (for tests and clients that replay a file).
pub fn table_rows_json(table: &Table) -> Vec<Value> {
    (0..table.n_rows())
        .map(|r| {
            let mut row = Map::new();
            for column in &table.schema().columns {
                let value = match table.column(&column.name) {
                    Some(ColumnRef::Numeric(a)) if !a.is_null(r) => {
                        serde_json::Number::from_f64(a.value(r)).map_or(Value::Null, Value::Number)
                    }
                    Some(ColumnRef::Boolean(a)) if !a.is_null(r) => Value::Bool(a.value(r)),
                    Some(c) => c.text(r).map_or(Value::Null, Value::String),
                    None => Value::Null,
                };
                row.insert(column.name.clone(), value);
            }
            Value::Object(row)
        })
        .collect()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
