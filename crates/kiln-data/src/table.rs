use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
    builder::{BooleanBuilder, Float64Builder, TimestampMicrosecondBuilder},
};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, TimeUnit};

use crate::datetime::{format_datetime, parse_datetime};
use crate::raw::locate;
use crate::{ColumnSchema, ColumnType, Error, RawTable, Result, RowLocation, Schema};

/// Tables with fewer rows are typed on the calling thread (see [`RawTable::conform`]).
const PARALLEL_TYPING_ROWS: usize = 4096;

/// A typed table: one Arrow column per schema column.
#[derive(Debug, Clone)]
pub struct Table {
    pub(crate) path: PathBuf,
    pub(crate) schema: Schema,
    pub(crate) batch: RecordBatch,
    pub(crate) lines: Option<Vec<usize>>,
    /// As [`RawTable`]'s: the file's 0-based index of the first row.
    pub(crate) first_row: usize,
}

/// A typed view of one column.
#[derive(Debug, Clone, Copy)]
pub enum ColumnRef<'a> {
    /// A numeric column (nulls are missing values).
    Numeric(&'a Float64Array),
    /// A categorical column.
    Categorical(&'a StringArray),
    /// A boolean column.
    Boolean(&'a BooleanArray),
    /// A free-text column.
    Text(&'a StringArray),
    /// A datetime column: microseconds since 1970-01-01T00:00:00Z.
    Datetime(&'a TimestampMicrosecondArray),
}

impl ColumnRef<'_> {
    /// The cell at `row` as text, `None` when missing (for labels and messages).
    pub fn text(&self, row: usize) -> Option<String> {
        match self {
            ColumnRef::Numeric(a) => (!a.is_null(row)).then(|| a.value(row).to_string()),
            ColumnRef::Categorical(a) | ColumnRef::Text(a) => {
                (!a.is_null(row)).then(|| a.value(row).to_owned())
            }
            ColumnRef::Boolean(a) => (!a.is_null(row)).then(|| a.value(row).to_string()),
            ColumnRef::Datetime(a) => (!a.is_null(row)).then(|| format_datetime(a.value(row))),
        }
    }

    /// Whether the cell at `row` is missing.
    pub fn is_null(&self, row: usize) -> bool {
        match self {
            ColumnRef::Numeric(a) => a.is_null(row),
            ColumnRef::Categorical(a) | ColumnRef::Text(a) => a.is_null(row),
            ColumnRef::Boolean(a) => a.is_null(row),
            ColumnRef::Datetime(a) => a.is_null(row),
        }
    }
}

impl Table {
    /// The file this table was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema of the columns present.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The file's 0-based index of the first row: nonzero for a chunk past a file's first.
    pub fn first_row(&self) -> usize {
        self.first_row
    }

    /// The Arrow batch.
    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// The 1-based file line of data row `row` (0-based); for row-indexed formats (Parquet)
    /// the row index itself. [`Table::location`] says which.
    pub fn line_of(&self, row: usize) -> usize {
        self.location(row).number()
    }

    /// Where data row `row` (0-based) is in the file.
    pub fn location(&self, row: usize) -> RowLocation {
        locate(self.lines.as_deref(), self.first_row, row)
    }

    /// The column called `name`.
    ///
    /// # Panics
    /// Never for a table made by [`RawTable::conform`], whose arrays match the schema types.
    pub fn column(&self, name: &str) -> Option<ColumnRef<'_>> {
        let index = self.schema.columns.iter().position(|c| c.name == name)?;
        let array = self.batch.column(index).as_any();
        Some(match self.schema.columns[index].column_type {
            ColumnType::Numeric => ColumnRef::Numeric(array.downcast_ref().expect("typed column")),
            ColumnType::Categorical => {
                ColumnRef::Categorical(array.downcast_ref().expect("typed column"))
            }
            ColumnType::Boolean => ColumnRef::Boolean(array.downcast_ref().expect("typed column")),
            ColumnType::Text => ColumnRef::Text(array.downcast_ref().expect("typed column")),
            ColumnType::Datetime => {
                ColumnRef::Datetime(array.downcast_ref().expect("typed column"))
            }
        })
    }

    /// Replaces numeric column `name` by the boolean `name > above` (missing stays missing),
    /// e.g. to classify whether a delay is above 15 minutes.
    ///
    /// # Errors
    /// [`Error::MissingColumn`]; [`Error::NotNumeric`] when the column is not numeric.
    pub fn binarize(&self, name: &str, above: f64) -> Result<Table> {
        let index = self
            .schema
            .columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| missing_column(&self.path, name, self.schema.names()))?;
        let Some(values) = self
            .batch
            .column(index)
            .as_any()
            .downcast_ref::<Float64Array>()
        else {
            return Err(Error::NotNumeric {
                path: self.path.clone(),
                column: name.to_owned(),
                column_type: self.schema.columns[index].column_type,
            });
        };
        let flags: BooleanArray = values.iter().map(|v| v.map(|v| v > above)).collect();
        let mut arrays = self.batch.columns().to_vec();
        arrays[index] = Arc::new(flags);
        let mut fields: Vec<Field> = self
            .batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[index] = Field::new(name, DataType::Boolean, true);
        let batch = record_batch(&self.path, fields, arrays)?;
        let mut schema = self.schema.clone();
        schema.columns[index].column_type = ColumnType::Boolean;
        Ok(Table {
            path: self.path.clone(),
            schema,
            batch,
            lines: self.lines.clone(),
            first_row: self.first_row,
        })
    }

    /// The rows of `tables`, in order, as one table (the first one's path; rows located by
    /// index). Micro-batching joins single-request tables this way.
    ///
    /// # Errors
    /// [`Error::SchemaMismatch`] when the tables' schemas differ; [`Error::NoRows`] for no
    /// tables.
    pub fn concat(tables: &[&Table]) -> Result<Table> {
        let Some(first) = tables.first() else {
            return Err(Error::NoRows {
                path: PathBuf::new(),
            });
        };
        if let Some(other) = tables.iter().find(|t| t.schema != first.schema) {
            return Err(Error::SchemaMismatch {
                path: other.path.clone(),
                expected: first.schema.names().collect::<Vec<_>>().join(", "),
                found: other.schema.names().collect::<Vec<_>>().join(", "),
            });
        }
        let batches: Vec<&RecordBatch> = tables.iter().map(|t| &t.batch).collect();
        let batch = arrow_select::concat::concat_batches(&first.batch.schema(), batches).map_err(
            |source| Error::Arrow {
                path: first.path.clone(),
                source,
            },
        )?;
        Ok(Table {
            path: first.path.clone(),
            schema: first.schema.clone(),
            batch,
            lines: None,
            first_row: 0,
        })
    }

    /// The column called `name`, or an error naming the file and the closest column.
    ///
    /// # Errors
    /// [`Error::MissingColumn`].
    pub fn require(&self, name: &str) -> Result<ColumnRef<'_>> {
        self.column(name)
            .ok_or_else(|| missing_column(&self.path, name, self.schema.names()))
    }

    /// A copy in which the values of column `name` at `rows` are shuffled among those rows;
    /// every other cell is unchanged. Permutation feature importance breaks one column's link
    /// to the target this way.
    ///
    /// # Errors
    /// [`Error::MissingColumn`].
    ///
    /// # Panics
    /// When a row in `rows` is out of range (a caller bug).
    pub fn shuffle_column(
        &self,
        name: &str,
        rows: &[usize],
        rng: &mut impl rand::Rng,
    ) -> Result<Table> {
        use rand::seq::SliceRandom;
        let index = self
            .schema
            .columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| missing_column(&self.path, name, self.schema.names()))?;
        let mut shuffled = rows.to_vec();
        shuffled.shuffle(rng);
        let mut order: Vec<u64> = (0..self.n_rows() as u64).collect();
        for (&to, &from) in rows.iter().zip(&shuffled) {
            order[to] = from as u64;
        }
        let arrow_error = |source| Error::Arrow {
            path: self.path.clone(),
            source,
        };
        let column = arrow_select::take::take(
            self.batch.column(index),
            &arrow_array::UInt64Array::from(order),
            None,
        )
        .map_err(arrow_error)?;
        let mut arrays = self.batch.columns().to_vec();
        arrays[index] = column;
        Ok(Table {
            path: self.path.clone(),
            schema: self.schema.clone(),
            batch: RecordBatch::try_new(self.batch.schema(), arrays).map_err(arrow_error)?,
            lines: self.lines.clone(),
            first_row: self.first_row,
        })
    }
}

impl RawTable {
    /// Types the text columns by `schema`. Columns the file has but the schema lacks are
    /// dropped; a schema column the file lacks is an error unless listed in `optional`.
    ///
    /// # Errors
    /// [`Error::BadValue`] naming line, column and value; [`Error::MissingColumn`].
    pub fn conform(&self, schema: &Schema, optional: &[&str]) -> Result<Table> {
        use rayon::prelude::*;
        let type_one = |column: &ColumnSchema| {
            let index = self.names.iter().position(|n| *n == column.name)?;
            Some(self.type_column(index, column))
        };
        // Columns are typed in parallel; errors are then taken in schema order, as a serial
        // pass would meet them. Small tables (a served request) stay on this thread: handing
        // them to the pool costs more than typing them.
        let typed: Vec<Option<Result<(ArrayRef, DataType)>>> =
            if self.n_rows() < PARALLEL_TYPING_ROWS {
                schema.columns.iter().map(type_one).collect()
            } else {
                schema.columns.par_iter().map(type_one).collect()
            };
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        let mut present = Vec::new();
        for (column, typed) in schema.columns.iter().zip(typed) {
            let Some(typed) = typed else {
                if optional.contains(&column.name.as_str()) {
                    continue;
                }
                return Err(missing_column(&self.path, &column.name, self.names.iter()));
            };
            let (array, data_type) = typed?;
            fields.push(Field::new(&column.name, data_type, true));
            arrays.push(array);
            present.push(column.clone());
        }
        let batch = record_batch(&self.path, fields, arrays)?;
        Ok(Table {
            path: self.path.clone(),
            schema: Schema { columns: present },
            batch,
            lines: self.lines.clone(),
            first_row: self.first_row,
        })
    }

    /// Text column `index` typed as `column` says.
    fn type_column(&self, index: usize, column: &ColumnSchema) -> Result<(ArrayRef, DataType)> {
        let bad_value = |row: usize, value: &str| Error::BadValue {
            path: self.path.clone(),
            row: self.location(row),
            column: column.name.clone(),
            value: value.chars().take(100).collect(),
            expected: column.column_type.expected(),
        };
        let cells = self.text_column(index);
        Ok(match column.column_type {
            ColumnType::Numeric => {
                let mut b = Float64Builder::with_capacity(self.n_rows());
                // Array by array: a chained iterator costs as much as the integer fast path.
                let mut row = 0;
                for array in self.text_arrays(index) {
                    for cell in array {
                        match cell {
                            None => b.append_null(),
                            Some(text) => match parse_number(text) {
                                Some(v) if v.is_nan() => b.append_null(),
                                Some(v) => b.append_value(v),
                                None => return Err(bad_value(row, text)),
                            },
                        }
                        row += 1;
                    }
                }
                (Arc::new(b.finish()), DataType::Float64)
            }
            ColumnType::Categorical | ColumnType::Text => {
                // The text is kept as read: join the batches' arrays rather than copy cells.
                let parts: Vec<&dyn Array> = self
                    .batches
                    .iter()
                    .map(|batch| batch.column(index).as_ref())
                    .collect();
                let array = match self.batches.as_slice() {
                    [one] => one.column(index).clone(),
                    _ => arrow_select::concat::concat(&parts).map_err(|source| Error::Arrow {
                        path: self.path.clone(),
                        source,
                    })?,
                };
                (array, DataType::Utf8)
            }
            ColumnType::Datetime => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(self.n_rows());
                for (row, cell) in cells.enumerate() {
                    match cell {
                        None => b.append_null(),
                        Some(text) => b.append_value(
                            parse_datetime(text).ok_or_else(|| bad_value(row, text))?,
                        ),
                    }
                }
                (
                    Arc::new(b.finish()),
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                )
            }
            ColumnType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(self.n_rows());
                for (row, cell) in cells.enumerate() {
                    match cell {
                        None => b.append_null(),
                        Some(text) => {
                            b.append_value(boolean_cell(text).ok_or_else(|| bad_value(row, text))?);
                        }
                    }
                }
                (Arc::new(b.finish()), DataType::Boolean)
            }
        })
    }
}

/// `text` (trimmed) as a number, exactly as `str::parse::<f64>` reads it.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    // Hand-written fast path for plain integers, most numeric cells: below 10^15 each is an
    // exact f64, so this gives what `parse` does (`-0` included) at a fraction of the cost,
    // and digits need no trimming. Everything else goes to std's correctly rounded parser.
    let (negative, digits) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    if (1..=15).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) {
        let n = digits
            .iter()
            .fold(0_u64, |n, d| n * 10 + u64::from(d - b'0'));
        #[allow(clippy::cast_precision_loss)] // n < 10^15 < 2^53: exact.
        let v = n as f64;
        return Some(if negative { -v } else { v });
    }
    text.trim().parse().ok()
}

/// A boolean column's cell: true/false and yes/no in any case, or 1/0.
pub(crate) fn boolean_cell(text: &str) -> Option<bool> {
    parse_bool(text).or(match text.trim() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    })
}

/// Reads true/false and yes/no, in any case.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

/// A [`Error::MissingColumn`] that suggests the closest available name.
/// A batch of `arrays` with `fields`; an Arrow error names `path`.
pub(crate) fn record_batch(
    path: &Path,
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
) -> Result<RecordBatch> {
    RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), arrays).map_err(|source| {
        Error::Arrow {
            path: path.to_path_buf(),
            source,
        }
    })
}

pub(crate) fn missing_column<'a>(
    path: &Path,
    column: &str,
    available: impl Iterator<Item = &'a (impl AsRef<str> + ?Sized + 'a)>,
) -> Error {
    Error::MissingColumn {
        path: path.to_path_buf(),
        column: column.to_owned(),
        suggestion: kiln_core::suggest::closest(column, available),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CsvOptions, infer_schema, read_csv};
    use std::collections::BTreeMap;

    fn raw(name: &str, text: &str) -> RawTable {
        let dir = std::env::temp_dir().join(format!("kiln-table-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs_err::write(&path, text).unwrap();
        read_csv(&path, &CsvOptions::default()).unwrap()
    }

    #[test]
    fn parse_number_reads_what_std_reads() {
        let tricky = [
            "0",
            "-0",
            "+0",
            "7",
            "-12",
            "+5",
            "007",
            "123456789012345",
            "-999999999999999",
            "1234567890123456",
            "12345678901234567890",
            "9007199254740993",
            "1e3",
            "1E-3",
            "-2.5e+10",
            ".5",
            "5.",
            "-.5",
            "1.7976931348623157e308",
            "1e400",
            "4.9e-324",
            "inf",
            "-inf",
            "Infinity",
            "nan",
            "NaN",
            " 42",
            "42 ",
            "\t-3\n",
            " 1.5 ",
            "",
            "-",
            "+",
            "1-",
            "--1",
            "1,000",
            "0x10",
            "1_000",
            "١٢",
        ];
        for text in tricky {
            let std = text.trim().parse::<f64>().ok();
            let fast = parse_number(text);
            assert_eq!(
                fast.map(f64::to_bits),
                std.map(f64::to_bits),
                "{text:?}: {fast:?} against {std:?}"
            );
        }
    }

    #[test]
    fn non_numeric_value_names_line_and_column() {
        let raw = raw("bad.csv", "x,y\n1,a\n2,b\nabc,c\n");
        // Infer from the first two rows only, so `x` is numeric and row 3 breaks it.
        let schema = infer_schema(&raw, 2, &BTreeMap::new()).unwrap();
        let err = raw.conform(&schema, &[]).unwrap_err().to_string();
        assert!(
            err.ends_with("bad.csv: line 4, column `x`: cannot read `abc` as a number"),
            "{err}"
        );
    }

    #[test]
    fn binarize_thresholds_a_numeric_column() {
        let raw = raw("bin.csv", "delay,c\n20,a\n15,b\nNA,c\n-3,d\n");
        let table = raw
            .conform(&infer_schema(&raw, 10, &BTreeMap::new()).unwrap(), &[])
            .unwrap();
        let flags = table.binarize("delay", 15.0).unwrap();
        assert_eq!(
            flags.schema().column("delay").unwrap().column_type,
            ColumnType::Boolean
        );
        let Some(ColumnRef::Boolean(values)) = flags.column("delay") else {
            panic!("a boolean column")
        };
        let got: Vec<Option<bool>> = values.iter().collect();
        assert_eq!(got, [Some(true), Some(false), None, Some(false)]);
        let err = table.binarize("c", 1.0).unwrap_err().to_string();
        assert!(
            err.ends_with("bin.csv: column `c` is categorical, not numeric"),
            "{err}"
        );
    }

    #[test]
    fn small_and_large_tables_type_alike_and_report_the_first_bad_column() {
        let schema = Schema {
            columns: vec![
                crate::ColumnSchema::new("b", ColumnType::Numeric),
                crate::ColumnSchema::new("a", ColumnType::Categorical),
                crate::ColumnSchema::new("c", ColumnType::Numeric),
            ],
        };
        // Below and above the row count typed in parallel.
        for n in [3, PARALLEL_TYPING_ROWS + 3] {
            let text = |f: fn(usize) -> String| (0..n).map(|i| Some(f(i))).collect::<StringArray>();
            let columns = vec![
                text(|i| format!("k{}", i % 5)),
                text(|i| i.to_string()),
                text(|i| format!("{}.5", i * 2)),
            ];
            let names = ["a", "b", "c"].map(str::to_owned).to_vec();
            let raw = RawTable::from_text_columns("t.csv", names.clone(), columns).unwrap();
            let table = raw.conform(&schema, &[]).unwrap();
            let names_in_order: Vec<&str> = table
                .schema()
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            assert_eq!(names_in_order, ["b", "a", "c"]);
            let Some(ColumnRef::Numeric(c)) = table.column("c") else {
                panic!("c is numeric");
            };
            assert_eq!(c.value(n - 1).to_string(), format!("{}.5", (n - 1) * 2));

            // Bad values in `c` (early) and `b` (late): `b` comes first in the schema.
            let bad = |i: usize, wrong: usize| {
                if i == wrong {
                    "x".to_owned()
                } else {
                    i.to_string()
                }
            };
            let columns = vec![
                text(|i| format!("k{i}")),
                (0..n).map(|i| Some(bad(i, n - 1))).collect(),
                (0..n).map(|i| Some(bad(i, 0))).collect(),
            ];
            let raw = RawTable::from_text_columns("t.csv", names, columns).unwrap();
            let err = raw.conform(&schema, &[]).unwrap_err();
            assert!(
                matches!(&err, Error::BadValue { column, .. } if column == "b"),
                "{n} rows: {err}"
            );
        }
    }

    #[test]
    fn optional_columns_may_be_absent() {
        let raw = raw("opt.csv", "x\n1\n");
        let schema = Schema {
            columns: vec![
                crate::ColumnSchema::new("x", ColumnType::Numeric),
                crate::ColumnSchema::new("target", ColumnType::Categorical),
            ],
        };
        let table = raw.conform(&schema, &["target"]).unwrap();
        assert!(table.column("target").is_none());
        assert!(matches!(table.column("x"), Some(ColumnRef::Numeric(_))));
        let err = raw.conform(&schema, &[]).unwrap_err();
        assert!(matches!(err, Error::MissingColumn { .. }), "{err}");
    }

    #[test]
    fn shuffle_column_permutes_only_the_given_rows_of_one_column() {
        let raw = raw(
            "shuffle.csv",
            "x,c\n0,a\n1,b\n2,c\n3,d\n4,e\n5,f\n6,g\n7,h\n",
        );
        let table = raw
            .conform(&infer_schema(&raw, 10, &BTreeMap::new()).unwrap(), &[])
            .unwrap();
        let rows = [1, 2, 4, 5, 7];
        let values = |t: &Table, name: &str| -> Vec<String> {
            let column = t.column(name).unwrap();
            (0..t.n_rows()).map(|r| column.text(r).unwrap()).collect()
        };
        let shuffle = |seed| {
            table
                .shuffle_column("x", &rows, &mut kiln_core::rng::stream(seed, "test"))
                .unwrap()
        };
        let shuffled = shuffle(1);
        let x = values(&shuffled, "x");
        // Rows outside `rows` and the other column keep their values.
        for r in [0, 3, 6] {
            assert_eq!(x[r], r.to_string());
        }
        assert_eq!(values(&shuffled, "c"), values(&table, "c"));
        // The given rows hold a permutation of their own values, not the identity.
        let mut moved: Vec<&str> = rows.iter().map(|&r| x[r].as_str()).collect();
        assert_ne!(moved, ["1", "2", "4", "5", "7"]);
        moved.sort_unstable();
        assert_eq!(moved, ["1", "2", "4", "5", "7"]);
        // Seeded: the same stream gives the same table.
        assert_eq!(values(&shuffle(1), "x"), x);
        let err = table
            .shuffle_column("y", &rows, &mut kiln_core::rng::stream(1, "test"))
            .unwrap_err();
        assert!(matches!(err, Error::MissingColumn { .. }), "{err}");
    }
}
