use std::fmt;
use std::path::PathBuf;

use crate::ColumnType;

/// Where a row sits in its file: a 1-based line for text formats (CSV, JSON Lines), a 0-based
/// row index for Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowLocation {
    /// The 1-based line of a text file on which the row starts (the header is line 1).
    Line(usize),
    /// The 0-based index of the row in a binary file.
    Row(usize),
}

impl RowLocation {
    /// The line or row number, without saying which.
    pub fn number(self) -> usize {
        match self {
            RowLocation::Line(n) | RowLocation::Row(n) => n,
        }
    }
}

impl fmt::Display for RowLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowLocation::Line(n) => write!(f, "line {n}"),
            RowLocation::Row(n) => write!(f, "row index {n}"),
        }
    }
}

/// Errors reading, typing, validating and splitting tabular data. Each names the file, and the
/// row and column where one applies; `line` is the 1-based line of the file (the header is
/// line 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file has no header and no rows.
    #[error("{}: the file is empty", path.display())]
    EmptyFile {
        /// The data file.
        path: PathBuf,
    },
    /// The header is present but no data rows follow.
    #[error("{}: the file has a header but no data rows", path.display())]
    NoRows {
        /// The data file.
        path: PathBuf,
    },
    /// Tables joined into one whose columns differ.
    #[error("{}: columns {found} differ from {expected}", path.display())]
    SchemaMismatch {
        /// The table that differs.
        path: PathBuf,
        /// The first table's column names.
        expected: String,
        /// This table's column names.
        found: String,
    },
    /// Two header fields (or two keys of one JSON object) with one name.
    #[error("{}: column `{name}` appears twice in the header", path.display())]
    DuplicateColumn {
        /// The data file.
        path: PathBuf,
        /// The repeated name.
        name: String,
    },
    /// A row with more or fewer fields than the header.
    #[error("{}: line {line}: expected {expected} fields (as in the header), found {found}", path.display())]
    RaggedRow {
        /// The data file.
        path: PathBuf,
        /// 1-based line of the file.
        line: usize,
        /// Fields in the header.
        expected: usize,
        /// Fields found on the line.
        found: usize,
    },
    /// A field whose bytes are not UTF-8.
    #[error("{}: line {line}, column `{column}`: the text is not valid UTF-8", path.display())]
    InvalidUtf8 {
        /// The data file.
        path: PathBuf,
        /// 1-based line of the file.
        line: usize,
        /// The column's name (its 1-based position in a header).
        column: String,
    },
    /// A field (or JSON line) longer than the configured limit.
    #[error("{}: line {line}, column `{column}`: a field is longer than the limit of {limit} bytes", path.display())]
    FieldTooLarge {
        /// The data file.
        path: PathBuf,
        /// 1-based line of the file.
        line: usize,
        /// The column's name, or `*` for a whole JSON line.
        column: String,
        /// The limit, in bytes ([`crate::CsvOptions::max_field_bytes`]).
        limit: usize,
    },
    /// A value that does not fit its column's type.
    #[error("{}: {row}, column `{column}`: cannot read `{value}` as {expected}", path.display())]
    BadValue {
        /// The data file.
        path: PathBuf,
        /// Where the row is.
        row: RowLocation,
        /// The column's name.
        column: String,
        /// The offending text (cut to 100 characters).
        value: String,
        /// What the column holds, e.g. "a number".
        expected: &'static str,
    },
    /// A column the schema or config needs is not in the file.
    #[error("{}: no column `{column}`{}", path.display(), suggestion.as_ref().map_or(String::new(), |s| format!("; did you mean `{s}`?")))]
    MissingColumn {
        /// The data file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The closest column name in the file, if any is close.
        suggestion: Option<String>,
    },
    /// A column used as a number (e.g. a thresholded target) that is not numeric.
    #[error("{}: column `{column}` is {}, not numeric", path.display(), column_type.as_str())]
    NotNumeric {
        /// The data file.
        path: PathBuf,
        /// The column's name.
        column: String,
        /// Its type.
        column_type: ColumnType,
    },
    /// The file's extension names no known format.
    #[error("{}: unknown data format; expected .csv, .csv.gz, .parquet, .jsonl, .jsonl.gz or an MNIST *-ubyte file (or set the format)", path.display())]
    UnknownFormat {
        /// The data file.
        path: PathBuf,
    },
    /// An IDX (MNIST) file that is malformed or cut short.
    #[error("{}: not a valid IDX file: {reason}", path.display())]
    Idx {
        /// The data file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A gzip stream that is corrupt or cut short.
    #[error("{}: cannot decompress gzip data: {source}", path.display())]
    Gzip {
        /// The data file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// A Parquet file in the stage cache that kiln did not write as a table.
    #[error("{}: not a table stored by kiln (no table metadata); clear the cache with `kiln cache clear`", path.display())]
    NotStoredTable {
        /// The file.
        path: PathBuf,
    },
    /// A Parquet file that cannot be read (corrupt, truncated, unsupported encoding).
    #[error("{}: cannot read parquet: {source}", path.display())]
    Parquet {
        /// The data file.
        path: PathBuf,
        /// parquet's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A JSON Lines line that is not a JSON object of scalar values.
    #[error("{}: line {line}: {reason}", path.display())]
    Json {
        /// The data file.
        path: PathBuf,
        /// 1-based line of the file.
        line: usize,
        /// What is wrong (serde_json's message, or a description).
        reason: String,
    },
    /// A column whose Arrow type cannot be read as a table cell (lists, structs, maps).
    #[error("{}: column `{column}` has type {data_type}, which kiln cannot read as a table cell", path.display())]
    UnsupportedType {
        /// The data file.
        path: PathBuf,
        /// The column's name.
        column: String,
        /// The Arrow type, as text.
        data_type: String,
    },
    /// Any other Arrow failure while assembling a table.
    #[error("{}: {source}", path.display())]
    Arrow {
        /// The data file.
        path: PathBuf,
        /// arrow's error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// A validation rule that does not fit its column's type.
    #[error("column `{column}`: rule `{rule}` does not apply to {column_type:?} columns")]
    RuleMismatch {
        /// The column the rule is for.
        column: String,
        /// The rule's name.
        rule: &'static str,
        /// The column's type.
        column_type: ColumnType,
    },
    /// A validation pattern that is not a valid regex.
    #[error("column `{column}`: invalid pattern")]
    BadPattern {
        /// The column the rule is for.
        column: String,
        /// regex's error.
        #[source]
        source: regex::Error,
    },
    /// Split fractions that leave no room for training.
    #[error("split fractions valid={valid} test={test} must each be in [0, 1) and sum below 1")]
    BadFractions {
        /// Validation fraction.
        valid: f64,
        /// Test fraction.
        test: f64,
    },
    /// A fold count that does not fit the rows.
    #[error("cannot make {k} folds of {rows} rows: need 2 <= folds <= rows")]
    BadFolds {
        /// Folds asked for.
        k: usize,
        /// Rows available.
        rows: usize,
    },
    /// Filesystem failure (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Result with kiln-data's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
