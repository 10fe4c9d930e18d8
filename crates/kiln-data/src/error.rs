use std::path::PathBuf;

/// Errors reading and typing tabular data. Each names the file, and the row and column where
/// one applies; `line` is the 1-based line of the file (the header is line 1).
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
    /// Two header fields with one name.
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
        found: String,
    },
    /// A value that does not fit its column's type.
    #[error("{}: line {line}, column `{column}`: cannot read `{value}` as {expected}", path.display())]
    BadValue {
        /// The data file.
        path: PathBuf,
        /// 1-based line of the file.
        line: usize,
        /// The column's name.
        column: String,
        /// The offending text.
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
    /// Any other CSV decoding failure reported by arrow-csv.
    #[error("{}: {source}", path.display())]
    Csv {
        /// The data file.
        path: PathBuf,
        /// arrow's error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// Split fractions that leave no room for training.
    #[error("split fractions valid={valid} test={test} must each be in [0, 1) and sum below 1")]
    BadFractions {
        /// Validation fraction.
        valid: f64,
        /// Test fraction.
        test: f64,
    },
    /// Filesystem failure (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Result with kiln-data's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
