//! The untyped table every reader produces: text columns (missing cells are nulls) plus where
//! each row came from, so typing errors can name the exact line or row. The text is held in
//! parts: Arrow batches of Utf8 columns, or a plain CSV block as read, whose cells are typed
//! straight from the block's text (see [`PlainRows`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow_schema::{DataType, Field};

use crate::{Error, Result, RowLocation};

/// Rows per Arrow batch while reading; batches are also cut at [`BATCH_BYTES`] of text, which
/// keeps each batch's i32 string offsets far from overflow.
pub(crate) const BATCH_ROWS: usize = 64 * 1024;
const BATCH_BYTES: usize = 256 << 20;

/// A data file read as text columns (missing cells are nulls), before typing.
#[derive(Debug, Clone)]
pub struct RawTable {
    pub(crate) path: PathBuf,
    pub(crate) names: Vec<String>,
    pub(crate) parts: Vec<TextPart>,
    /// Cell texts read as missing in [`TextPart::Plain`] parts (Arrow parts hold nulls).
    pub(crate) missing: Vec<String>,
    /// The file line of each row (text formats); `None` for row-indexed formats (Parquet).
    pub(crate) lines: Option<Vec<usize>>,
    /// The 0-based index in the file of the first row: nonzero for a chunk of a file read in
    /// chunks, where row-indexed formats locate rows by it.
    pub(crate) first_row: usize,
}

impl RawTable {
    /// The file this table came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Column names in file order.
    pub fn column_names(&self) -> &[String] {
        &self.names
    }

    /// Number of data rows.
    pub fn n_rows(&self) -> usize {
        self.parts.iter().map(TextPart::n_rows).sum()
    }

    /// Where data row `row` (0-based) is in the file.
    pub fn location(&self, row: usize) -> RowLocation {
        locate(self.lines.as_deref(), self.first_row, row)
    }

    /// A table built in memory (a JSON request, an embedding caller): `columns[i]` holds the
    /// cells of `names[i]`; rows are located by 0-based index, `path` names the source in
    /// errors.
    ///
    /// # Errors
    /// [`Error::DuplicateColumn`]; [`Error::Arrow`] when the columns differ in length or
    /// `names` and `columns` differ in count.
    pub fn from_text_columns(
        path: impl Into<PathBuf>,
        names: Vec<String>,
        columns: Vec<StringArray>,
    ) -> Result<RawTable> {
        let path = path.into();
        let mut seen = BTreeSet::new();
        if let Some(name) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(Error::DuplicateColumn {
                path,
                name: name.clone(),
            });
        }
        let arrays = columns
            .into_iter()
            .map(|c| Arc::new(c) as ArrayRef)
            .collect();
        let batch = text_batch(&path, &names, arrays)?;
        Ok(RawTable {
            path,
            names,
            parts: vec![TextPart::Arrow(batch)],
            missing: Vec::new(),
            lines: None,
            first_row: 0,
        })
    }

    /// A table from an Arrow batch built in memory (an embedding caller's typed columns):
    /// each column is cast to its text form as a Parquet file's columns are (numbers print in
    /// their shortest exact form), so [`RawTable::conform`] types it as it types a data file;
    /// cells whose text is one of `missing` become nulls. Rows are located by 0-based index,
    /// `path` names the source in errors.
    ///
    /// # Errors
    /// [`Error::DuplicateColumn`]; [`Error::UnsupportedType`] for a nested or binary column.
    pub fn from_record_batch(
        path: impl Into<PathBuf>,
        batch: &RecordBatch,
        missing: &[String],
    ) -> Result<RawTable> {
        let path = path.into();
        let mut seen = BTreeSet::new();
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if let Some(name) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(Error::DuplicateColumn {
                path,
                name: name.clone(),
            });
        }
        let arrays = batch
            .columns()
            .iter()
            .zip(&names)
            .map(|(array, name)| crate::pq::as_text(&path, name, array, missing))
            .collect::<Result<Vec<_>>>()?;
        let batch = text_batch(&path, &names, arrays)?;
        Ok(RawTable {
            path,
            names,
            parts: vec![TextPart::Arrow(batch)],
            missing: Vec::new(),
            lines: None,
            first_row: 0,
        })
    }

    /// The text cells of column `index`, part by part.
    pub(crate) fn text_column(&self, index: usize) -> impl Iterator<Item = Option<&str>> {
        self.parts
            .iter()
            .flat_map(move |part| part.cells(index, &self.missing))
    }
}

/// Rows of text columns: an Arrow batch, or a plain CSV block as read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TextPart {
    /// One nullable Utf8 column per name.
    Arrow(RecordBatch),
    /// A CSV block without quotes or other escapes.
    Plain(PlainRows),
}

impl TextPart {
    pub(crate) fn n_rows(&self) -> usize {
        match self {
            TextPart::Arrow(batch) => batch.num_rows(),
            TextPart::Plain(rows) => rows.n_rows(),
        }
    }

    /// The cells of column `index`: missing (Arrow nulls, or one of `missing` in plain rows)
    /// as `None`.
    pub(crate) fn cells<'a>(&'a self, index: usize, missing: &'a [String]) -> Cells<'a> {
        match self {
            TextPart::Arrow(batch) => Cells::Arrow(text_array(batch, index).iter()),
            TextPart::Plain(rows) => Cells::Plain {
                cells: rows.column(index),
                missing,
            },
        }
    }
}

/// Column `index` of a text batch.
///
/// # Panics
/// Never: readers build only Utf8 columns.
pub(crate) fn text_array(batch: &RecordBatch, index: usize) -> &StringArray {
    batch
        .column(index)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("raw tables hold only Utf8 columns")
}

/// [`TextPart::cells`].
pub(crate) enum Cells<'a> {
    Arrow(arrow_array::iterator::ArrayIter<&'a StringArray>),
    Plain {
        cells: PlainColumn<'a>,
        missing: &'a [String],
    },
}

impl<'a> Iterator for Cells<'a> {
    type Item = Option<&'a str>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Cells::Arrow(cells) => cells.next(),
            Cells::Plain { cells, missing } => cells
                .next()
                .map(|cell| (!is_missing(missing, cell)).then_some(cell)),
        }
    }
}

/// The rows of a plain CSV block (no quote, escape, comment or `\r`), as read: the block's
/// text and where each field ends in it. Typing reads cells straight from this text: copying
/// every cell into an Arrow string column first was a third of reading a file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlainRows {
    text: Arc<str>,
    /// Where each row starts in `text`.
    row_starts: Vec<u32>,
    /// Per column, where each row's field ends in `text`. Field `i > 0` starts one byte (the
    /// delimiter) past field `i - 1`'s end. Column by column, so that typing a column reads
    /// only its own offsets.
    ends: Vec<Vec<u32>>,
    /// Per column, its cells as numbers when every one is an integer of at most 8 digits or
    /// missing: read while the block is split, when its bytes are in cache, which typing a
    /// column later (one cell per row of text) is not.
    integers: Vec<Option<Integers>>,
}

/// A plain block's column of small integers (see [`crate::table::small_integer_at`]) and
/// missing cells.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Integers {
    /// One per row; 0 where the cell is missing. Four bytes where the cells need no more (at
    /// most 8 digits), rather than the f64 each becomes: half the memory to fill and read.
    pub(crate) values: Vec<i32>,
    /// The rows whose cell is one of the missing tokens.
    pub(crate) missing: Vec<u32>,
}

impl Integers {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        Self {
            values: Vec::with_capacity(rows),
            missing: Vec::new(),
        }
    }
}

impl PlainRows {
    /// Rows in `text` that start at `row_starts`, with fields ending at `ends` (per column);
    /// `integers` are the columns read as numbers.
    pub(crate) fn new(
        text: Arc<str>,
        row_starts: Vec<u32>,
        ends: Vec<Vec<u32>>,
        integers: Vec<Option<Integers>>,
    ) -> Self {
        debug_assert!(ends.iter().all(|e| e.len() == row_starts.len()));
        debug_assert!(
            integers
                .iter()
                .flatten()
                .all(|i| i.values.len() == row_starts.len())
        );
        Self {
            text,
            row_starts,
            ends,
            integers,
        }
    }

    /// Column `index` as numbers, when all its cells are plain integers or missing.
    pub(crate) fn integers(&self, index: usize) -> Option<&Integers> {
        self.integers.get(index)?.as_ref()
    }

    pub(crate) fn n_rows(&self) -> usize {
        self.row_starts.len()
    }

    /// The bytes of column `index`'s cells, all rows'.
    pub(crate) fn column_bytes(&self, index: usize) -> usize {
        let (starts, gap) = self.starts(index);
        let ends: u64 = self.ends[index].iter().map(|&e| u64::from(e)).sum();
        let starts: u64 = starts.iter().map(|&s| u64::from(s + gap)).sum();
        usize::try_from(ends - starts).unwrap_or(usize::MAX)
    }

    /// Where column `index`'s cells start, each less `gap`: the delimiter that ends the field
    /// before.
    fn starts(&self, index: usize) -> (&[u32], u32) {
        match index {
            0 => (&self.row_starts, 0),
            i => (&self.ends[i - 1], 1),
        }
    }

    /// The cells of column `index`, every row's.
    pub(crate) fn column(&self, index: usize) -> PlainColumn<'_> {
        let (starts, gap) = self.starts(index);
        PlainColumn {
            text: &self.text,
            bounds: starts.iter().zip(self.ends[index].iter()),
            gap,
        }
    }
}

/// [`PlainRows::column`].
pub(crate) struct PlainColumn<'a> {
    text: &'a str,
    /// Each cell's start (less `gap`) and end.
    bounds: std::iter::Zip<std::slice::Iter<'a, u32>, std::slice::Iter<'a, u32>>,
    gap: u32,
}

impl<'a> Iterator for PlainColumn<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let (&start, &end) = self.bounds.next()?;
        Some(&self.text[(start + self.gap) as usize..end as usize])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.bounds.size_hint()
    }
}

/// Where row `row` of a table is in its file: its line, else its index past `first_row`.
pub(crate) fn locate(lines: Option<&[usize]>, first_row: usize, row: usize) -> RowLocation {
    match lines {
        Some(lines) => RowLocation::Line(lines.get(row).copied().unwrap_or_default()),
        None => RowLocation::Row(first_row + row),
    }
}

/// Builds a [`RawTable`] row by row, in batches. Columns may be added while reading (JSON Lines
/// objects need not share keys); earlier rows read them as missing.
pub(crate) struct TextBuilder<'a> {
    path: &'a Path,
    missing: &'a [String],
    names: Vec<String>,
    builders: Vec<StringBuilder>,
    /// Whether the current row has set each column.
    filled: Vec<bool>,
    parts: Vec<TextPart>,
    lines: Vec<usize>,
    rows_in_batch: usize,
    bytes_in_batch: usize,
}

impl<'a> TextBuilder<'a> {
    /// A builder for `names`; `missing` are cell texts read as nulls.
    pub(crate) fn new(path: &'a Path, names: Vec<String>, missing: &'a [String]) -> Result<Self> {
        let mut seen = BTreeSet::new();
        for name in &names {
            if !seen.insert(name.as_str()) {
                return Err(Error::DuplicateColumn {
                    path: path.to_path_buf(),
                    name: name.clone(),
                });
            }
        }
        Ok(Self {
            path,
            missing,
            builders: names.iter().map(|_| StringBuilder::new()).collect(),
            filled: vec![false; names.len()],
            names,
            parts: Vec::new(),
            lines: Vec::new(),
            rows_in_batch: 0,
            bytes_in_batch: 0,
        })
    }

    /// The index of column `name`, added (missing in every earlier row) when new.
    pub(crate) fn column_index(&mut self, name: &str) -> usize {
        if let Some(index) = self.names.iter().position(|n| n == name) {
            return index;
        }
        let mut builder = StringBuilder::new();
        builder.append_nulls(self.rows_in_batch);
        self.builders.push(builder);
        self.filled.push(false);
        self.names.push(name.to_owned());
        self.names.len() - 1
    }

    /// Whether the current row already set column `index`.
    pub(crate) fn is_filled(&self, index: usize) -> bool {
        self.filled[index]
    }

    /// Sets column `index` of the current row; `None` and missing tokens become nulls.
    pub(crate) fn set(&mut self, index: usize, cell: Option<&str>) {
        let cell = cell.filter(|text| !is_missing(self.missing, text));
        self.bytes_in_batch += cell.map_or(0, str::len);
        self.builders[index].append_option(cell);
        self.filled[index] = true;
    }

    /// Ends the current row, which starts on file line `line`; unset columns are missing.
    pub(crate) fn end_row(&mut self, line: usize) -> Result<()> {
        for (builder, filled) in self.builders.iter_mut().zip(&mut self.filled) {
            if !*filled {
                builder.append_null();
            }
            *filled = false;
        }
        self.lines.push(line);
        self.rows_in_batch += 1;
        if self.rows_in_batch >= BATCH_ROWS || self.bytes_in_batch >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends plain rows, read elsewhere for this builder's names, after the rows so far;
    /// `lines` are their file lines.
    pub(crate) fn push_plain(&mut self, rows: PlainRows, lines: &[usize]) -> Result<()> {
        debug_assert_eq!(rows.ends.len(), self.names.len());
        self.flush()?;
        self.parts.push(TextPart::Plain(rows));
        self.lines.extend_from_slice(lines);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.rows_in_batch == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        self.parts
            .push(TextPart::Arrow(text_batch(self.path, &self.names, arrays)?));
        self.rows_in_batch = 0;
        self.bytes_in_batch = 0;
        Ok(())
    }

    /// The finished table; [`Error::NoRows`] when no row was read.
    pub(crate) fn finish(self) -> Result<RawTable> {
        let path = self.path.to_path_buf();
        let names = self.names.clone();
        let missing = self.missing.to_vec();
        let (parts, lines) = self.into_parts()?;
        if lines.is_empty() {
            return Err(Error::NoRows { path });
        }
        Ok(RawTable {
            path,
            names,
            parts,
            missing,
            lines: Some(lines),
            first_row: 0,
        })
    }

    /// The rows read so far (possibly none): their parts and file lines.
    pub(crate) fn into_parts(mut self) -> Result<(Vec<TextPart>, Vec<usize>)> {
        self.flush()?;
        // Batches read before a column appeared lack it: pad them with nulls.
        let width = self.names.len();
        let parts = self
            .parts
            .into_iter()
            .map(|part| match part {
                TextPart::Arrow(batch) if batch.num_columns() < width => {
                    let mut arrays = batch.columns().to_vec();
                    arrays.resize_with(width, || new_null_array(&DataType::Utf8, batch.num_rows()));
                    Ok(TextPart::Arrow(text_batch(self.path, &self.names, arrays)?))
                }
                part => Ok(part),
            })
            .collect::<Result<_>>()?;
        Ok((parts, self.lines))
    }
}

/// Whether `text` is one of the `missing` tokens. Comparing the first byte before the rest
/// keeps the usual cell (a number as long as `null`) clear of a `memcmp` call per token.
pub(crate) fn is_missing(missing: &[String], text: &str) -> bool {
    missing.iter().any(|token| {
        token.len() == text.len()
            && token.as_bytes().first() == text.as_bytes().first()
            && token == text
    })
}

/// A batch of nullable Utf8 columns called `names`.
pub(crate) fn text_batch(
    path: &Path,
    names: &[String],
    arrays: Vec<ArrayRef>,
) -> Result<RecordBatch> {
    let fields = names
        .iter()
        .map(|n| Field::new(n, DataType::Utf8, true))
        .collect();
    crate::table::record_batch(path, fields, arrays)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ColumnRef, ColumnSchema, ColumnType, Schema};
    use arrow_array::{Float64Array, Int64Array, ListArray};

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn record_batches_type_as_data_files_do() {
        let batch = batch(vec![
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(1.5), None, Some(f64::NAN)])),
            ),
            ("year", Arc::new(Int64Array::from(vec![2007, 2008, 2009]))),
            ("c", Arc::new(StringArray::from(vec!["a", "NA", "b"]))),
        ]);
        let missing = ["NA".to_owned()];
        let raw = RawTable::from_record_batch("<batch>", &batch, &missing).unwrap();
        let schema = Schema {
            columns: vec![
                ColumnSchema::new("x", ColumnType::Numeric),
                ColumnSchema::new("year", ColumnType::Categorical),
                ColumnSchema::new("c", ColumnType::Categorical),
            ],
        };
        let table = raw.conform(&schema, &[]).unwrap();
        let Some(ColumnRef::Numeric(x)) = table.column("x") else {
            panic!("numeric x")
        };
        assert_eq!(x.iter().collect::<Vec<_>>(), [Some(1.5), None, None]);
        let year = table.column("year").unwrap();
        assert_eq!(year.text(1).as_deref(), Some("2008"));
        let c = table.column("c").unwrap();
        assert!(c.is_null(1), "a missing token is missing");

        let numbers_as_text = batch_of_text("x", &["1", "abc"]);
        let raw = RawTable::from_record_batch("<batch>", &numbers_as_text, &[]).unwrap();
        let schema = Schema {
            columns: vec![ColumnSchema::new("x", ColumnType::Numeric)],
        };
        let e = raw.conform(&schema, &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            "<batch>: row index 1, column `x`: cannot read `abc` as a number"
        );
    }

    fn batch_of_text(name: &str, cells: &[&str]) -> RecordBatch {
        batch(vec![(name, Arc::new(StringArray::from(cells.to_vec())))])
    }

    #[test]
    fn nested_columns_and_duplicate_names_are_refused() {
        let list =
            ListArray::from_iter_primitive::<arrow_array::types::Int32Type, _, _>(vec![Some(
                vec![Some(1)],
            )]);
        let nested = batch(vec![("l", Arc::new(list))]);
        let e = RawTable::from_record_batch("<batch>", &nested, &[]).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedType { ref column, .. } if column == "l"),
            "{e}"
        );

        let schema = Arc::new(arrow_schema::Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("a", DataType::Utf8, true),
        ]));
        let twice = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["x"])),
                Arc::new(StringArray::from(vec!["y"])),
            ],
        )
        .unwrap();
        let e = RawTable::from_record_batch("<batch>", &twice, &[]).unwrap_err();
        assert!(matches!(e, Error::DuplicateColumn { .. }), "{e}");
    }
}
