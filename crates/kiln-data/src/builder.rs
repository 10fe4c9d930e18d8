//! Typed tables built cell by cell from values already in memory (a served JSON request):
//! the typing rules of a data file's text, without printing numbers to text and parsing them
//! back.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_schema::{DataType, Field, TimeUnit};

use crate::datetime::parse_datetime;
use crate::table::{boolean_cell, parse_number, record_batch};
use crate::{ColumnType, Error, Result, RowLocation, Schema, Table};

/// One value on its way into a [`TableBuilder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// A missing value.
    Missing,
    /// A number (NaN is a missing value, as in a data file).
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// Text, read as a data file's cell is.
    Text(&'a str),
}

impl Cell<'_> {
    /// The cell as a data file would spell it.
    fn text(self) -> String {
        match self {
            Cell::Missing => String::new(),
            Cell::Number(v) => v.to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Text(t) => t.to_owned(),
        }
    }
}

enum ColumnBuilder {
    Numeric(Float64Builder),
    Text(StringBuilder),
    Datetime(TimestampMicrosecondBuilder),
    Boolean(BooleanBuilder),
}

/// Builds a [`Table`] of `schema`'s columns; rows are located by 0-based index and errors
/// name `path` as their source.
pub struct TableBuilder {
    path: PathBuf,
    schema: Schema,
    columns: Vec<ColumnBuilder>,
}

impl TableBuilder {
    /// An empty table of `schema`, with room for `rows` rows.
    pub fn new(path: impl Into<PathBuf>, schema: Schema, rows: usize) -> Self {
        let columns = schema
            .columns
            .iter()
            .map(|c| match c.column_type {
                ColumnType::Numeric => ColumnBuilder::Numeric(Float64Builder::with_capacity(rows)),
                ColumnType::Categorical | ColumnType::Text => {
                    ColumnBuilder::Text(StringBuilder::with_capacity(rows, rows * 8))
                }
                ColumnType::Datetime => {
                    ColumnBuilder::Datetime(TimestampMicrosecondBuilder::with_capacity(rows))
                }
                ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
            })
            .collect();
        Self {
            path: path.into(),
            schema,
            columns,
        }
    }

    /// Appends `cell` to the column at `index` in the schema, as row `row`'s value.
    ///
    /// # Errors
    /// [`Error::BadValue`] when the column's type cannot hold the cell: text that does not
    /// read as the type, a boolean in a numeric column, a number in a boolean one, anything
    /// but text in a datetime one.
    ///
    /// # Panics
    /// When `index` is not a column of the schema.
    pub fn push(&mut self, index: usize, row: usize, cell: Cell<'_>) -> Result<()> {
        let typed = match (&mut self.columns[index], cell) {
            (ColumnBuilder::Numeric(b), Cell::Missing) => {
                b.append_null();
                true
            }
            (ColumnBuilder::Numeric(b), Cell::Number(v)) => {
                b.append_option((!v.is_nan()).then_some(v));
                true
            }
            (ColumnBuilder::Numeric(b), Cell::Text(t)) => parse_number(t)
                .map(|v| b.append_option((!v.is_nan()).then_some(v)))
                .is_some(),
            (ColumnBuilder::Text(b), Cell::Missing) => {
                b.append_null();
                true
            }
            (ColumnBuilder::Text(b), Cell::Text(t)) => {
                b.append_value(t);
                true
            }
            (ColumnBuilder::Text(b), cell @ (Cell::Number(_) | Cell::Bool(_))) => {
                b.append_value(cell.text());
                true
            }
            (ColumnBuilder::Datetime(b), Cell::Missing) => {
                b.append_null();
                true
            }
            (ColumnBuilder::Datetime(b), Cell::Text(t)) => {
                parse_datetime(t).map(|v| b.append_value(v)).is_some()
            }
            (ColumnBuilder::Boolean(b), Cell::Missing) => {
                b.append_null();
                true
            }
            (ColumnBuilder::Boolean(b), Cell::Bool(v)) => {
                b.append_value(v);
                true
            }
            (ColumnBuilder::Boolean(b), Cell::Text(t)) => {
                boolean_cell(t).map(|v| b.append_value(v)).is_some()
            }
            (
                ColumnBuilder::Numeric(_) | ColumnBuilder::Datetime(_) | ColumnBuilder::Boolean(_),
                _,
            ) => false,
        };
        if typed {
            return Ok(());
        }
        let column = &self.schema.columns[index];
        Err(Error::BadValue {
            path: self.path.clone(),
            row: RowLocation::Row(row),
            column: column.name.clone(),
            value: cell.text().chars().take(100).collect(),
            expected: column.column_type.expected(),
        })
    }

    /// The table.
    ///
    /// # Errors
    /// [`Error::Arrow`] when the columns were given different numbers of cells.
    pub fn finish(self) -> Result<Table> {
        let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = self
            .schema
            .columns
            .iter()
            .zip(self.columns)
            .map(|(column, builder)| {
                let (data_type, array): (DataType, ArrayRef) = match builder {
                    ColumnBuilder::Numeric(mut b) => (DataType::Float64, Arc::new(b.finish())),
                    ColumnBuilder::Text(mut b) => (DataType::Utf8, Arc::new(b.finish())),
                    ColumnBuilder::Datetime(mut b) => (
                        DataType::Timestamp(TimeUnit::Microsecond, None),
                        Arc::new(b.finish()),
                    ),
                    ColumnBuilder::Boolean(mut b) => (DataType::Boolean, Arc::new(b.finish())),
                };
                (Field::new(&column.name, data_type, true), array)
            })
            .unzip();
        let batch = record_batch(&self.path, fields, arrays)?;
        Ok(Table {
            path: self.path,
            schema: self.schema,
            batch,
            lines: None,
            first_row: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ColumnRef, ColumnSchema, RawTable};
    use arrow_array::{Array, StringArray};

    fn schema() -> Schema {
        Schema {
            columns: vec![
                ColumnSchema::new("x", ColumnType::Numeric),
                ColumnSchema::new("c", ColumnType::Categorical),
                ColumnSchema::new("t", ColumnType::Datetime),
                ColumnSchema::new("b", ColumnType::Boolean),
            ],
        }
    }

    #[test]
    fn cells_type_as_the_same_text_in_a_data_file() {
        let rows: [[Option<&str>; 4]; 4] = [
            [
                Some("1.5"),
                Some("a"),
                Some("2024-02-29T12:00:00Z"),
                Some("yes"),
            ],
            [None, None, None, None],
            [Some("-0"), Some("7"), Some("2024-03-01"), Some("0")],
            [
                Some("NaN"),
                Some(""),
                Some("2024-03-01 08:30+02:00"),
                Some("FALSE"),
            ],
        ];
        let mut built = TableBuilder::new("<mem>", schema(), rows.len());
        for (r, row) in rows.iter().enumerate() {
            for (i, text) in row.iter().enumerate() {
                built
                    .push(i, r, text.map_or(Cell::Missing, Cell::Text))
                    .unwrap();
            }
        }
        let built = built.finish().unwrap();
        let columns = (0..4)
            .map(|i| rows.iter().map(|r| r[i]).collect::<StringArray>())
            .collect();
        let names = ["x", "c", "t", "b"].map(str::to_owned).to_vec();
        let read = RawTable::from_text_columns("<mem>", names, columns)
            .unwrap()
            .conform(&schema(), &[])
            .unwrap();
        assert_eq!(built.batch(), read.batch());
        assert_eq!(built.schema(), read.schema());
    }

    #[test]
    fn numbers_and_booleans_go_in_without_text() {
        let mut built = TableBuilder::new("<mem>", schema(), 2);
        for (i, cell) in [
            Cell::Number(0.1),
            Cell::Number(2007.0),
            Cell::Missing,
            Cell::Bool(true),
        ]
        .into_iter()
        .enumerate()
        {
            built.push(i, 0, cell).unwrap();
        }
        for (i, cell) in [
            Cell::Number(f64::NAN),
            Cell::Bool(false),
            Cell::Missing,
            Cell::Bool(false),
        ]
        .into_iter()
        .enumerate()
        {
            built.push(i, 1, cell).unwrap();
        }
        let table = built.finish().unwrap();
        let Some(ColumnRef::Numeric(x)) = table.column("x") else {
            panic!("x is numeric");
        };
        assert_eq!(x.value(0).to_bits(), 0.1_f64.to_bits());
        assert!(x.is_null(1));
        let Some(ColumnRef::Categorical(c)) = table.column("c") else {
            panic!("c is categorical");
        };
        assert_eq!((c.value(0), c.value(1)), ("2007", "false"));
    }

    #[test]
    fn a_cell_the_column_cannot_hold_is_named_by_row_and_column() {
        let mut built = TableBuilder::new("<mem>", schema(), 1);
        for (i, cell, value) in [
            (0, Cell::Text("1.5.1"), "1.5.1"),
            (0, Cell::Bool(true), "true"),
            (2, Cell::Number(3.0), "3"),
            (2, Cell::Text("2024-02-30"), "2024-02-30"),
            (3, Cell::Text("maybe"), "maybe"),
            (3, Cell::Number(1.0), "1"),
        ] {
            let err = built.push(i, 4, cell).unwrap_err();
            let Error::BadValue {
                row,
                column,
                value: found,
                ..
            } = &err
            else {
                panic!("{err}");
            };
            assert_eq!(*row, RowLocation::Row(4), "{err}");
            assert_eq!(column, &schema().columns[i].name, "{err}");
            assert_eq!(found, value, "{err}");
        }
    }

    #[test]
    fn columns_of_different_lengths_are_an_error() {
        let mut built = TableBuilder::new("<mem>", schema(), 1);
        built.push(0, 0, Cell::Number(1.0)).unwrap();
        assert!(matches!(built.finish(), Err(Error::Arrow { .. })));
    }
}
