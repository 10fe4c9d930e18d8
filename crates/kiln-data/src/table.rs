use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
    builder::{BooleanBuilder, StringBuilder, TimestampMicrosecondBuilder},
};
use arrow_buffer::{BooleanBufferBuilder, NullBuffer};
use arrow_schema::{DataType, Field, Schema as ArrowSchema};

use crate::datetime::{format_datetime, parse_datetime};
use crate::raw::{TextPart, is_missing, locate};
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
        let indices: Vec<Option<usize>> = schema
            .columns
            .iter()
            .map(|column| self.names.iter().position(|n| *n == column.name))
            .collect();
        let mut first_rows = Vec::with_capacity(self.parts.len());
        let mut rows = 0;
        for part in &self.parts {
            first_rows.push(rows);
            rows += part.n_rows();
        }
        // Numeric columns are written in place, each part into its own rows of one buffer.
        let mut numbers: Vec<Option<Vec<f64>>> = schema
            .columns
            .iter()
            .zip(&indices)
            .map(|(column, index)| {
                (index.is_some() && column.column_type == ColumnType::Numeric)
                    .then(|| vec![0.0; rows])
            })
            .collect();
        let mut outputs: Vec<Vec<Option<&mut [f64]>>> =
            self.parts.iter().map(|_| Vec::new()).collect();
        for column in &mut numbers {
            let mut rest = column.as_deref_mut();
            for (part, outputs) in self.parts.iter().zip(&mut outputs) {
                outputs.push(rest.take().map(|all| {
                    let (own, after) = all.split_at_mut(part.n_rows());
                    rest = Some(after);
                    own
                }));
            }
        }
        // Each column of each part is typed alone, part by part, while the part's text is in
        // cache (a plain block's text is row by row: typing one column through the whole file
        // would read all of it once per column). Errors are then taken in schema order and row
        // order, as a serial pass would meet them. Small tables (a served request) stay on this
        // thread: handing them to the pool costs more than typing them.
        let tasks: Vec<(usize, usize, Option<&mut [f64]>)> = outputs
            .into_iter()
            .enumerate()
            .flat_map(|(part, outputs)| {
                outputs
                    .into_iter()
                    .enumerate()
                    .map(move |(column, output)| (part, column, output))
            })
            .collect();
        let numeric_token = any_reads_as_number(&self.missing);
        let type_one = |(part, column, output): (usize, usize, Option<&mut [f64]>)| {
            indices[column].map(|index| {
                let part_rows = (&self.parts[part], first_rows[part]);
                let numbers = output.map(|out| (out, numeric_token));
                self.type_part(part_rows, index, &schema.columns[column], numbers)
            })
        };
        let parallel = rows >= PARALLEL_TYPING_ROWS;
        let typed: Vec<Option<Result<Typed>>> = if parallel {
            tasks.into_par_iter().map(type_one).collect()
        } else {
            tasks.into_iter().map(type_one).collect()
        };
        // Column by column (each of `width`): its parts joined, or the first error.
        let width = schema.columns.len();
        let mut by_column: Vec<Vec<Option<Result<Typed>>>> = (0..width)
            .map(|_| Vec::with_capacity(self.parts.len()))
            .collect();
        for (task, typed) in typed.into_iter().enumerate() {
            by_column[task % width].push(typed);
        }
        let join = |(parts, numbers): (Vec<Option<Result<Typed>>>, Option<Vec<f64>>)| {
            let parts: Vec<Typed> = match parts.into_iter().collect::<Option<Result<_>>>()? {
                Ok(parts) => parts,
                Err(e) => return Some(Err(e)),
            };
            Some(self.join_parts(parts, numbers, &first_rows))
        };
        let joined: Vec<Option<Result<ArrayRef>>> = if parallel {
            by_column.into_par_iter().zip(numbers).map(join).collect()
        } else {
            by_column.into_iter().zip(numbers).map(join).collect()
        };
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        let mut present = Vec::new();
        for (column, joined) in schema.columns.iter().zip(joined) {
            let Some(array) = joined else {
                if optional.contains(&column.name.as_str()) {
                    continue;
                }
                return Err(missing_column(&self.path, &column.name, self.names.iter()));
            };
            let array = array?;
            fields.push(Field::new(&column.name, array.data_type().clone(), true));
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

    /// One column's typed parts as one array: `numbers`, which the parts wrote, for a numeric
    /// column (the parts holding their missing rows), else the parts' arrays joined.
    fn join_parts(
        &self,
        parts: Vec<Typed>,
        numbers: Option<Vec<f64>>,
        first_rows: &[usize],
    ) -> Result<ArrayRef> {
        if let Some(numbers) = numbers {
            let mut valid = BooleanBufferBuilder::new(numbers.len());
            valid.append_n(numbers.len(), true);
            let mut any_missing = false;
            for (part, first_row) in parts.iter().zip(first_rows) {
                if let Typed::Numbers { missing } = part {
                    for row in missing {
                        valid.set_bit(first_row + row, false);
                        any_missing = true;
                    }
                }
            }
            let nulls = any_missing.then(|| NullBuffer::new(valid.finish()));
            return Ok(Arc::new(Float64Array::new(numbers.into(), nulls)));
        }
        let arrays: Vec<ArrayRef> = parts
            .into_iter()
            .filter_map(|part| match part {
                Typed::Array(array) => Some(array),
                Typed::Numbers { .. } => None,
            })
            .collect();
        if let [one] = arrays.as_slice() {
            return Ok(one.clone());
        }
        let arrays: Vec<&dyn Array> = arrays.iter().map(AsRef::as_ref).collect();
        arrow_select::concat::concat(&arrays).map_err(|source| Error::Arrow {
            path: self.path.clone(),
            source,
        })
    }

    /// Text column `index` of `part`, whose first row is the table's row `first_row`, typed
    /// as `column` says. A numeric column is written into `numbers` (`Some`), with whether a
    /// missing token reads as a number.
    fn type_part(
        &self,
        (part, first_row): (&TextPart, usize),
        index: usize,
        column: &ColumnSchema,
        numbers: Option<(&mut [f64], bool)>,
    ) -> Result<Typed> {
        let bad_value = |row: usize, value: &str| Error::BadValue {
            path: self.path.clone(),
            row: self.location(first_row + row),
            column: column.name.clone(),
            value: value.chars().take(100).collect(),
            expected: column.column_type.expected(),
        };
        let missing = self.missing.as_slice();
        if let Some((numbers, numeric_token)) = numbers {
            return match part {
                TextPart::Plain(rows) if let Some(read) = rows.integers(index) => {
                    for (number, &value) in numbers.iter_mut().zip(&read.values) {
                        *number = f64::from(value);
                    }
                    Ok(read.missing.iter().map(|&row| row as usize).collect())
                }
                // Numbers are read before the cell is compared with the missing tokens, unless
                // a token itself reads as a number: a cell that reads as one is then never
                // missing.
                TextPart::Plain(rows) if !numeric_token => {
                    numbers_or_missing(numbers, rows.column(index), missing, bad_value)
                }
                part => write_numbers(numbers, part.cells(index, missing), bad_value),
            }
            .map(|missing| Typed::Numbers { missing });
        }
        let array = match part {
            // The text is kept as read.
            TextPart::Arrow(batch)
                if matches!(
                    column.column_type,
                    ColumnType::Categorical | ColumnType::Text
                ) =>
            {
                batch.column(index).clone()
            }
            // Sized up front: growing a builder copies its text again.
            TextPart::Plain(rows)
                if matches!(
                    column.column_type,
                    ColumnType::Categorical | ColumnType::Text
                ) =>
            {
                let mut b = StringBuilder::with_capacity(rows.n_rows(), rows.column_bytes(index));
                for cell in rows.column(index) {
                    if is_missing(missing, cell) {
                        b.append_null();
                    } else {
                        b.append_value(cell);
                    }
                }
                Arc::new(b.finish())
            }
            part => type_cells(part.cells(index, missing), column, bad_value)?,
        };
        Ok(Typed::Array(array))
    }
}

/// A column of one part, typed.
enum Typed {
    Array(ArrayRef),
    /// Numbers, written in place; the rows (of the part) that are missing.
    Numbers {
        missing: Vec<usize>,
    },
}

/// Writes `cells` (missing ones `None`) as numbers into `out`, one per cell; the rows that
/// are missing (NaN included). `bad_value` is the error for a cell (by its 0-based row among
/// `cells`) that is not a number.
fn write_numbers<'a>(
    out: &mut [f64],
    cells: impl Iterator<Item = Option<&'a str>>,
    bad_value: impl Fn(usize, &str) -> Error,
) -> Result<Vec<usize>> {
    let mut missing = Vec::new();
    for (row, (cell, out)) in cells.zip(out).enumerate() {
        match cell {
            None => missing.push(row),
            Some(text) => match parse_number(text) {
                Some(v) if v.is_nan() => missing.push(row),
                Some(v) => *out = v,
                None => return Err(bad_value(row, text)),
            },
        }
    }
    Ok(missing)
}

/// [`write_numbers`] for the cells of a plain CSV block, when no missing token reads as a
/// number: a cell that reads as one is then never missing, so only the rest are compared with
/// the tokens.
fn numbers_or_missing<'a>(
    out: &mut [f64],
    cells: impl Iterator<Item = &'a str>,
    tokens: &[String],
    bad_value: impl Fn(usize, &str) -> Error,
) -> Result<Vec<usize>> {
    let mut missing = Vec::new();
    for (row, (text, out)) in cells.zip(out).enumerate() {
        match parse_number(text) {
            Some(v) if !v.is_nan() => *out = v,
            Some(_) => missing.push(row),
            None if is_missing(tokens, text) => missing.push(row),
            None => return Err(bad_value(row, text)),
        }
    }
    Ok(missing)
}

/// Cells (missing ones `None`) typed as `column` says; `bad_value` is the error for a cell
/// (by its 0-based row among `cells`) that is not of the type.
fn type_cells<'a>(
    cells: impl Iterator<Item = Option<&'a str>>,
    column: &ColumnSchema,
    bad_value: impl Fn(usize, &str) -> Error,
) -> Result<ArrayRef> {
    let rows = cells.size_hint().0;
    Ok(match column.column_type {
        ColumnType::Numeric => unreachable!("numeric columns are written in place"),
        ColumnType::Categorical | ColumnType::Text => Arc::new(cells.collect::<StringArray>()),
        ColumnType::Datetime => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(rows);
            for (row, cell) in cells.enumerate() {
                match cell {
                    None => b.append_null(),
                    Some(text) => {
                        b.append_value(parse_datetime(text).ok_or_else(|| bad_value(row, text))?);
                    }
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(rows);
            for (row, cell) in cells.enumerate() {
                match cell {
                    None => b.append_null(),
                    Some(text) => {
                        b.append_value(boolean_cell(text).ok_or_else(|| bad_value(row, text))?);
                    }
                }
            }
            Arc::new(b.finish())
        }
    })
}

/// `text` (trimmed) as a number, exactly as `str::parse::<f64>` reads it.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    plain_integer(text.as_bytes()).or_else(|| text.trim().parse().ok())
}

/// Whether one of `tokens` reads as a number (NaN aside): a cell of that text is missing, so
/// no fast path may read it as the number first.
pub(crate) fn any_reads_as_number(tokens: &[String]) -> bool {
    tokens
        .iter()
        .any(|token| parse_number(token).is_some_and(|v| !v.is_nan()))
}

/// `bytes` as a number when they are a plain integer (an optional `-`, then 1 to 15 digits):
/// below 10^15 each is an exact f64, so this gives what `str::parse` does (`-0` included) at
/// a fraction of the cost, for most numeric cells. `None` for anything else, which only std's
/// correctly rounded parser reads.
pub(crate) fn plain_integer(bytes: &[u8]) -> Option<f64> {
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    if !(1..=15).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0_u64, |n, d| n * 10 + u64::from(d - b'0'));
    #[allow(clippy::cast_precision_loss)] // n < 10^15 < 2^53: exact.
    let v = n as f64;
    Some(if negative { -v } else { v })
}

/// `block[start..end]` as an integer when it is a plain one (see [`plain_integer`]) of at
/// most 8 digits, `-0` aside (an i32 has no negative zero; f64 has). Where the block has 8 bytes ending with the cell, they are read as one word,
/// checked and combined without a branch per digit (the SWAR method of simdjson and
/// fast_float): most numeric cells of a file are read here, and a loop over digits
/// mispredicts at every number's end.
#[inline]
pub(crate) fn small_integer_at(block: &[u8], start: usize, end: usize) -> Option<i32> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    let negative = end > start && block[start] == b'-';
    let digits = end - start - usize::from(negative);
    if digits == 0 || digits > 8 {
        return None;
    }
    if end < 8 {
        #[allow(clippy::cast_possible_truncation)] // At most 8 digits: below 10^8.
        return plain_integer(&block[start..end])
            .filter(|v| !(*v == 0.0 && v.is_sign_negative()))
            .map(|v| v as i32);
    }
    let word = u64::from_le_bytes(block[end - 8..end].try_into().expect("8 bytes"));
    // The bytes before the digits (the low ones: the word is little-endian) become zeros.
    let digit_bytes = u64::MAX << ((8 - digits) * 8);
    let word = (word & digit_bytes) | (ZEROS & !digit_bytes);
    // Every byte a digit: its high nibble 3, and its low nibble not carried past 9 by 6.
    if word & HIGH_NIBBLES != ZEROS
        || word.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES != ZEROS
    {
        return None;
    }
    let pairs = (word - ZEROS)
        .wrapping_mul(10)
        .wrapping_add((word - ZEROS) >> 8);
    let mask = 0x0000_00FF_0000_00FF;
    let n = ((pairs & mask).wrapping_mul(100 + (1_000_000 << 32)))
        .wrapping_add(((pairs >> 16) & mask).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    #[allow(clippy::cast_possible_truncation)] // n < 10^8.
    let n = n as i32;
    match (negative, n) {
        (true, 0) => None,
        (true, n) => Some(-n),
        (false, n) => Some(n),
    }
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
    fn integers_read_as_words_read_as_digit_by_digit() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: 4096,
            rng_seed: proptest::test_runner::RngSeed::Fixed(11),
            ..Default::default()
        });
        let byte = prop_oneof![
            8 => proptest::char::range('0', '9').prop_map(|c| c as u8),
            1 => Just(b'-'),
            1 => Just(b','),
            1 => any::<u8>(),
        ];
        let case = proptest::collection::vec(byte, 0..24).prop_flat_map(|block| {
            let len = block.len();
            (Just(block), 0..=len)
                .prop_flat_map(move |(block, start)| (Just(block), Just(start), start..=len))
        });
        runner
            .run(&case, |(block, start, end)| {
                let cell = &block[start..end];
                let digits = cell.iter().filter(|b| b.is_ascii_digit()).count();
                let expected = plain_integer(cell)
                    .filter(|v| digits <= 8 && !(*v == 0.0 && v.is_sign_negative()));
                let word = small_integer_at(&block, start, end).map(f64::from);
                prop_assert_eq!(word.map(f64::to_bits), expected.map(f64::to_bits));
                Ok(())
            })
            .unwrap();
        // Every digit count, with the word reaching before the cell.
        for n in [0, 7, 42, 905, 1234, 90_210, 765_432, 1_000_001, 99_999_999] {
            for sign in ["", "-"] {
                let block = format!("12345678,{sign}{n}");
                let start = block.find(',').unwrap() + 1;
                let read = small_integer_at(block.as_bytes(), start, block.len());
                let expected = format!("{sign}{n}").parse::<i32>().unwrap();
                assert_eq!(
                    read,
                    (sign.is_empty() || n > 0).then_some(expected),
                    "{sign}{n}"
                );
            }
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
    fn plain_blocks_type_as_rows_read_one_by_one_do() {
        use crate::{Compression, CsvChunks};
        use std::fmt::Write as _;
        // Over four 1 MiB blocks, typed block by block from the text as read, against the
        // same file read row by row into Arrow columns. `n` has integers (read while the
        // blocks are split), decimals and a `-0` (which end that in their blocks) and two
        // would-be missing tokens.
        let n = |i: usize| match (i % 7, i % 11) {
            (0, _) => "-999".to_owned(),
            (_, 0) => "NA".to_owned(),
            _ if i < 5_000 && i.is_multiple_of(13) => format!("{i}.25"),
            _ if i == 90_000 => "-0".to_owned(),
            _ if i.is_multiple_of(3) => format!("-{}", i % 1000 + 1),
            _ => (i / 3).to_string(),
        };
        let file = |bad_row: usize| {
            let mut text = String::from("n,c,t\n");
            for i in 0..120_000 {
                let n = if i == bad_row {
                    "oops".to_owned()
                } else {
                    n(i)
                };
                writeln!(text, "{n},k{},2013-01-{:02}T10:00:00Z", i % 5, 1 + i % 28).unwrap();
            }
            text
        };
        let text = file(usize::MAX);
        assert!(text.contains("\n-0,"));
        let dir = std::env::temp_dir().join(format!("kiln-table-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join("plain.csv");
        fs_err::write(&path, &text).unwrap();
        let schema = Schema {
            columns: vec![
                crate::ColumnSchema::new("n", ColumnType::Numeric),
                crate::ColumnSchema::new("c", ColumnType::Categorical),
                crate::ColumnSchema::new("t", ColumnType::Datetime),
            ],
        };
        // `-999` a value, then a missing token that reads as a number.
        for missing in [vec!["NA"], vec!["NA", "-999"]] {
            let options = CsvOptions {
                missing: missing.iter().map(|m| (*m).to_owned()).collect(),
                ..CsvOptions::default()
            };
            let blocks = read_csv(&path, &options).unwrap();
            assert!(blocks.parts.len() > 3, "{} parts", blocks.parts.len());
            let read_as_integers = blocks
                .parts
                .iter()
                .filter(|p| matches!(p, TextPart::Plain(rows) if rows.integers(0).is_some()))
                .count();
            assert_eq!(
                (read_as_integers, blocks.parts.len() - read_as_integers),
                if missing.len() == 1 {
                    (blocks.parts.len() - 2, 2)
                } else {
                    (0, blocks.parts.len())
                }
            );
            let rows = CsvChunks::open(&path, Compression::None, &options, usize::MAX)
                .unwrap()
                .next()
                .unwrap()
                .unwrap();
            assert!(rows.parts.iter().all(|p| matches!(p, TextPart::Arrow(_))));
            let typed = blocks.conform(&schema, &[]).unwrap();
            assert_eq!(typed.batch, rows.conform(&schema, &[]).unwrap().batch);
            let Some(ColumnRef::Numeric(numbers)) = typed.column("n") else {
                panic!("n is numeric");
            };
            let nulls = (0..120_000)
                .filter(|&i| missing.contains(&n(i).as_str()))
                .count();
            assert_eq!(numbers.null_count(), nulls);
        }

        // A bad `t` early and a bad `n` in the last block: `n` comes first in the schema.
        let text = file(119_995).replacen("2013-01-02T10:00:00Z", "yesterday", 1);
        fs_err::write(&path, &text).unwrap();
        let raw = read_csv(&path, &CsvOptions::default()).unwrap();
        let err = raw.conform(&schema, &[]).unwrap_err().to_string();
        assert!(
            err.ends_with("line 119997, column `n`: cannot read `oops` as a number"),
            "{err}"
        );
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
