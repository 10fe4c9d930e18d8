use std::path::PathBuf;

/// Errors fitting or applying transforms.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the table failed.
    #[error(transparent)]
    Data(#[from] kiln_data::Error),
    /// Fitting needs at least one training row.
    #[error("cannot fit transforms on zero training rows")]
    NoTrainingRows,
    /// A label the fitted target has never seen.
    #[error("{}: line {line}, column `{column}`: class `{value}` was not in the training data (known: {known})", path.display())]
    UnknownClass {
        /// The data file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Target column.
        column: String,
        /// The unseen label.
        value: String,
        /// The classes the model knows, comma separated.
        known: String,
    },
    /// A row whose target is missing where one is required.
    #[error("{}: line {line}, column `{column}`: the target is missing", path.display())]
    MissingTarget {
        /// The data file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Target column.
        column: String,
    },
    /// The target column's type does not fit the task.
    #[error("target column `{column}` is {found:?}, which cannot be a {task} target")]
    TargetType {
        /// Target column.
        column: String,
        /// Its type.
        found: kiln_data::ColumnType,
        /// The task asked for.
        task: &'static str,
    },
    /// A `[features.columns]` entry whose keys do not fit the column's type.
    #[error("features.columns.{column}: {reason} (for a {type_name} column)")]
    ColumnConfig {
        /// The column.
        column: String,
        /// Its type, e.g. `numeric`.
        type_name: String,
        /// What serde said.
        reason: String,
    },
    /// A `[features.columns]` entry for a column that is not a feature.
    #[error("features.columns.{column}: `{column}` is not a feature column (features: {features})")]
    UnknownColumnConfig {
        /// The named column.
        column: String,
        /// The feature columns, comma separated.
        features: String,
    },
    /// A value a transform is not defined for.
    #[error("{}: line {line}, column `{column}`: {value} is outside {transform}'s domain ({domain})", path.display())]
    OutOfDomain {
        /// The data file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The column.
        column: String,
        /// The value (after clipping).
        value: f64,
        /// The transform, e.g. `log1p`.
        transform: &'static str,
        /// What it accepts.
        domain: &'static str,
    },
    /// A train value missing from an ordinal column's configured `order`.
    #[error("{}: line {line}, column `{column}`: `{value}` is not in features.columns.{column}.order", path.display())]
    NotInOrder {
        /// The data file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The column.
        column: String,
        /// The value.
        value: String,
    },
    /// Target encoding needs the fitted target.
    #[error("column `{column}`: target encoding needs a target (FeaturePlan::target)")]
    NoTarget {
        /// The column.
        column: String,
    },
    /// A transform that needs every train row at once, asked of a streaming fit.
    #[error(
        "{option}: {what} needs every train row in memory, which a streaming run does not hold; choose another or train in memory"
    )]
    NotStreamable {
        /// The setting that asks for it.
        option: String,
        /// What it is.
        what: &'static str,
    },
    /// Image features that do not fit the channels.
    #[error(transparent)]
    ImageColumns(#[from] ImageColumnsError),
}

/// Image columns that cannot be split into equal channels.
#[derive(Debug, thiserror::Error)]
#[error("an image of {channels} channels needs numeric feature columns in a multiple of {channels}, found {columns}{}", if non_numeric.is_empty() { String::new() } else { format!(" (not numeric: {})", non_numeric.join(", ")) })]
pub struct ImageColumnsError {
    /// Channels asked for.
    pub channels: usize,
    /// Numeric feature columns found.
    pub columns: usize,
    /// Feature columns that are not numeric.
    pub non_numeric: Vec<String>,
}

/// Result with kiln-transform's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
