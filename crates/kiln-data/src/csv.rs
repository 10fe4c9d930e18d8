//! CSV through arrow-csv: every column is read as text first, so typing errors can name the
//! exact line, column and value (arrow's typed reader reports only a batch-relative position).

use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use arrow_csv::ReaderBuilder;
use arrow_csv::reader::Format;
use arrow_schema::{ArrowError, DataType, Field, Schema as ArrowSchema};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvOptions {
    /// Field delimiter.
    pub delimiter: u8,
    /// Whether the first line names the columns.
    pub has_header: bool,
    /// Cell texts read as missing values.
    pub missing: Vec<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            has_header: true,
            missing: ["", "NA", "NaN", "null"].map(String::from).to_vec(),
        }
    }
}

impl CsvOptions {
    fn missing_regex(&self) -> Regex {
        let alternatives: Vec<String> = self.missing.iter().map(|m| regex::escape(m)).collect();
        Regex::new(&format!("^(?:{})$", alternatives.join("|")))
            .expect("escaped literals always form a valid regex")
    }
}

/// A CSV file read as text columns (missing cells are nulls), before typing.
#[derive(Debug, Clone)]
pub struct RawTable {
    pub(crate) path: PathBuf,
    pub(crate) names: Vec<String>,
    pub(crate) batches: Vec<RecordBatch>,
    /// Line of the first data row (2 with a header).
    pub(crate) first_line: usize,
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
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The text cells of column `index`, batch by batch.
    pub(crate) fn text_column(&self, index: usize) -> impl Iterator<Item = Option<&str>> {
        self.batches.iter().flat_map(move |batch| {
            let array = batch
                .column(index)
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("raw tables hold only Utf8 columns");
            (0..array.len()).map(move |i| (!array.is_null(i)).then(|| array.value(i)))
        })
    }
}

/// Reads a CSV file with every column as text.
///
/// # Errors
/// [`Error::EmptyFile`], [`Error::NoRows`], [`Error::DuplicateColumn`], [`Error::RaggedRow`]
/// (naming the line), [`Error::Csv`] for other decoding failures, and IO errors naming the path.
pub fn read_csv(path: &Path, options: &CsvOptions) -> Result<RawTable> {
    let mut file = fs_err::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let csv_error = |source: ArrowError| map_arrow_error(path, source);
    let format = Format::default()
        .with_header(options.has_header)
        .with_delimiter(options.delimiter);
    let (inferred, _) = format
        .infer_schema(BufReader::new(&mut file), Some(0))
        .map_err(csv_error)?;
    let names: Vec<String> = inferred.fields().iter().map(|f| f.name().clone()).collect();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(Error::DuplicateColumn {
                path: path.to_path_buf(),
                name: name.clone(),
            });
        }
    }
    let text_schema = Arc::new(ArrowSchema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    file.seek(SeekFrom::Start(0))?;
    let reader = ReaderBuilder::new(text_schema)
        .with_format(format)
        .with_null_regex(options.missing_regex())
        .with_batch_size(64 * 1024)
        .build(BufReader::new(file))
        .map_err(csv_error)?;
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(csv_error)?;
    let table = RawTable {
        path: path.to_path_buf(),
        names,
        batches,
        first_line: if options.has_header { 2 } else { 1 },
    };
    if table.n_rows() == 0 {
        return Err(Error::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(table)
}

/// arrow-csv reports ragged rows only as text; recover the line so the error can name it.
fn map_arrow_error(path: &Path, source: ArrowError) -> Error {
    if let ArrowError::CsvError(message) = &source {
        let ragged =
            Regex::new(r"incorrect number of fields for line (\d+), expected (\d+) got (.+)$")
                .expect("static regex");
        if let Some(caps) = ragged.captures(message)
            && let (Ok(line), Ok(expected)) = (caps[1].parse(), caps[2].parse())
        {
            return Error::RaggedRow {
                path: path.to_path_buf(),
                line,
                expected,
                found: caps[3].to_owned(),
            };
        }
    }
    Error::Csv {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn write_temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-data-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs_err::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_text_columns_with_missing_tokens() {
        let path = write_temp("ok.csv", "a,b\n1,x\nNA,\n3,null\n");
        let raw = read_csv(&path, &CsvOptions::default()).unwrap();
        assert_eq!(raw.column_names(), ["a", "b"]);
        assert_eq!(raw.n_rows(), 3);
        let a: Vec<_> = raw.text_column(0).collect();
        assert_eq!(a, [Some("1"), None, Some("3")]);
        let b: Vec<_> = raw.text_column(1).collect();
        assert_eq!(b, [Some("x"), None, None]);
    }

    #[test]
    fn ragged_row_names_its_line() {
        let path = write_temp("ragged.csv", "a,b\n1,2\n3\n");
        let err = read_csv(&path, &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::RaggedRow {
                    line: 3,
                    expected: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("ragged.csv: line 3"), "{err}");
    }

    #[test]
    fn empty_and_header_only_files_are_errors() {
        let empty = write_temp("empty.csv", "");
        assert!(matches!(
            read_csv(&empty, &CsvOptions::default()),
            Err(Error::EmptyFile { .. })
        ));
        let header = write_temp("header.csv", "a,b\n");
        assert!(matches!(
            read_csv(&header, &CsvOptions::default()),
            Err(Error::NoRows { .. })
        ));
    }

    #[test]
    fn duplicate_header_is_an_error() {
        let path = write_temp("dup.csv", "a,a\n1,2\n");
        let err = read_csv(&path, &CsvOptions::default()).unwrap_err();
        assert!(matches!(err, Error::DuplicateColumn { ref name, .. } if name == "a"));
    }
}
