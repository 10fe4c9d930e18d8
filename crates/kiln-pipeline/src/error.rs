use std::fmt::Write as _;
use std::path::PathBuf;

/// Errors in a pipeline file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key the pipeline format does not have.
    #[error("{}: line {line}: unknown key `{key}`{}", path.display(), suggestion.as_ref().map_or(String::new(), |s| format!("; did you mean `{s}`?")))]
    UnknownKey {
        /// The pipeline file.
        path: PathBuf,
        /// 1-based line of the key.
        line: usize,
        /// The key.
        key: String,
        /// The closest valid key at that place, if any is close.
        suggestion: Option<String>,
    },
    /// Malformed TOML or a value of the wrong type (toml's message gives line and column).
    #[error("{}: {message}", path.display())]
    Toml {
        /// The pipeline file.
        path: PathBuf,
        /// toml's description.
        message: String,
    },
    /// A value that breaks a rule.
    #[error("{}: `{key}` {reason}", path.display())]
    Invalid {
        /// The pipeline file.
        path: PathBuf,
        /// Dotted key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A `[sweep]` key that breaks a rule, or a swept value the pipeline refuses.
    #[error("{}: `{key}` {reason}", path.display())]
    Sweep {
        /// The pipeline file.
        path: PathBuf,
        /// Dotted key, e.g. `sweep.params.train.lr`.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The file cannot be read (the message names it).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ConfigError {
    /// Turns toml's error into a precise one; an unknown key gets the closest valid key.
    pub(crate) fn from_toml(path: &std::path::Path, text: &str, error: &toml::de::Error) -> Self {
        let line = error
            .span()
            .map(|s| text[..s.start].matches('\n').count() + 1);
        // serde words an unknown field as: unknown field `k`, expected one of `a`, `b` (or
        // expected `a`); the expected names are the valid keys at that place.
        let message = error.message();
        if let (Some(rest), Some(line)) = (message.strip_prefix("unknown field `"), line)
            && let Some((key, expected)) = rest.split_once('`')
        {
            let suggestion =
                kiln_core::suggest::closest(key, expected.split('`').skip(1).step_by(2));
            return ConfigError::UnknownKey {
                path: path.to_path_buf(),
                line,
                key: key.to_owned(),
                suggestion,
            };
        }
        ConfigError::Toml {
            path: path.to_path_buf(),
            message: error.to_string().trim_end().to_owned(),
        }
    }
}

/// Errors of a pipeline run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pipeline file is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data cannot be read or typed.
    #[error(transparent)]
    Data(#[from] kiln_data::Error),
    /// Transforms cannot be fitted or applied.
    #[error(transparent)]
    Transform(#[from] kiln_transform::Error),
    /// The model cannot be built.
    #[error(transparent)]
    Model(#[from] kiln_models::Error),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] kiln_train::Error),
    /// Backend or output failure.
    #[error(transparent)]
    Core(#[from] kiln_core::Error),
    /// Saving or loading the model record failed.
    #[error("{}: model record: {message}", path.display())]
    Record {
        /// The record file.
        path: PathBuf,
        /// burn's description.
        message: String,
    },
    /// A bundle file that cannot be parsed.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A bundle kiln cannot use.
    #[error("{}: {reason}", path.display())]
    BadBundle {
        /// The offending file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A `.kiln` archive made by a newer kiln.
    #[error("{}: made by a newer kiln (archive format {format}, this kiln reads up to {supported})", path.display())]
    NewerArchive {
        /// The archive.
        path: PathBuf,
        /// Its format.
        format: u32,
        /// The newest format this kiln reads.
        supported: u32,
    },
    /// A `.kiln` archive that ends early.
    #[error("{}: truncated kiln archive: {detail} (the file was cut short; copy or export it again)", path.display())]
    TruncatedArchive {
        /// The archive.
        path: PathBuf,
        /// The member the file ends in.
        member: String,
        /// What is missing.
        detail: String,
    },
    /// A `.kiln` archive member whose bytes are not the ones exported.
    #[error("{}: member `{member}` is corrupt: {reason}", path.display())]
    CorruptArchive {
        /// The archive.
        path: PathBuf,
        /// The damaged member.
        member: String,
        /// How it differs.
        reason: String,
    },
    /// A file given as a bundle that is not a `.kiln` archive.
    #[error("{}: not a kiln archive: {reason}", path.display())]
    BadArchive {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A setting that needs every row at once, in a run that streams its data.
    #[error("{option}: {reason}; this run streams its data ([data] streaming, memory_budget_mib)")]
    NotStreamable {
        /// The setting.
        option: &'static str,
        /// Why it cannot stream.
        reason: String,
    },
    /// The data has no row with a target.
    #[error("{}: no row has a value in the target column `{target}`", path.display())]
    NoLabelledRows {
        /// The data file.
        path: PathBuf,
        /// The target column.
        target: String,
    },
    /// A classification target with fewer than two classes in the train split.
    #[error(
        "target `{target}` has {classes} class(es) in the training rows; at least 2 are needed"
    )]
    TooFewClasses {
        /// The target column.
        target: String,
        /// Classes found.
        classes: usize,
    },
    /// An error-severity `[validate]` rule failed; nothing was fitted.
    #[error("{}: validation failed, nothing was fitted:{}", path.display(), list_errors(report))]
    ValidationFailed {
        /// The data file.
        path: PathBuf,
        /// Every failed rule (warnings too).
        report: kiln_data::ValidationReport,
    },
    /// A row without a value in the column a group or time split keys on.
    #[error("{}: {row}, column `{column}`: no value to split on (group and time splits need one in every labelled row)", path.display())]
    MissingSplitKey {
        /// The data file.
        path: PathBuf,
        /// Where the row is.
        row: kiln_data::RowLocation,
        /// The split column.
        column: String,
    },
    /// A sweep directory `kiln sweep` cannot continue in.
    #[error("{}: {reason}", path.display())]
    BadSweep {
        /// The sweep directory.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// A run of a sweep failed; the sweep stopped.
    #[error("sweep trial {trial} ({run}): {source}")]
    SweepRun {
        /// The trial.
        trial: usize,
        /// The run, relative to the sweep directory.
        run: String,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },
    /// A stop was requested; the finished runs of the sweep are recorded.
    #[error("interrupted; run `kiln sweep` again to continue the sweep in {}", dir.display())]
    SweepInterrupted {
        /// The sweep directory.
        dir: PathBuf,
    },
    /// `--resume` names something kiln cannot continue from.
    #[error("{}: cannot resume: {reason}", path.display())]
    BadResume {
        /// What was passed.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// `kiln compare-backends`: test metrics beyond the tolerance.
    #[error("backends disagree beyond the tolerance {tolerance}: {}", failures.join("; "))]
    BackendsDisagree {
        /// The tolerance applied.
        tolerance: f64,
        /// Each metric that differs.
        failures: Vec<String>,
    },
    /// `kiln drift`: features whose drift crosses a `[drift]` threshold.
    #[error("drift detected in {}", features.join(", "))]
    Drift {
        /// The drifted features.
        features: Vec<String>,
    },
    /// A stop was requested; the run was saved with a checkpoint to resume from.
    #[error("interrupted; resume with `kiln train --resume {}`", run_dir.display())]
    Interrupted {
        /// The committed (interrupted) run.
        run_dir: PathBuf,
    },
    /// The loss became non-finite; the best weights so far are in the run's bundle.
    #[error("training diverged at epoch {epoch}, step {step}; the best weights so far are in {}", run_dir.display())]
    Diverged {
        /// The committed run.
        run_dir: PathBuf,
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step.
        step: usize,
    },
    /// A stage cache entry that cannot be written or read back.
    #[error("{}: stage cache: {reason}", path.display())]
    Cache {
        /// The entry's file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `kiln reproduce`: the re-run differs from the recorded run.
    #[error("{} does not reproduce: {}", run.display(), differences.join("; "))]
    NotReproduced {
        /// The recorded run.
        run: PathBuf,
        /// Each output that differs, with the inputs that changed.
        differences: Vec<String>,
    },
    /// `kiln report`: a path that is not a finished run directory.
    #[error("{}: not a finished kiln run (no {missing})", path.display())]
    NotARun {
        /// The path given.
        path: PathBuf,
        /// The run file it lacks.
        missing: &'static str,
    },
    /// `kiln report`: a run's data or split file that the report cannot use.
    #[error("{}: {reason}", path.display())]
    ReportInput {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `kiln report`: a chart that plotters could not draw.
    #[error("chart `{chart}`: {message}")]
    Chart {
        /// The chart.
        chart: String,
        /// plotters' description.
        message: String,
    },
    /// JSON input that does not fit the bundle.
    #[error(transparent)]
    Input(#[from] crate::InputError),
    /// Filesystem failure (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One line per failed error rule, each on its own indented line.
fn list_errors(report: &kiln_data::ValidationReport) -> String {
    let mut text = String::new();
    for failure in report.with_severity(kiln_data::Severity::Error) {
        // Writing into a String cannot fail.
        let _ = write!(text, "\n  {failure}");
    }
    text
}

impl Error {
    /// The process exit code for this error: 130 for an interrupt, 1 when the run itself
    /// failed (divergence, IO) or the data failed a `[validate]` error rule, 2 when the
    /// user's input (config, data, flags, bundle) cannot be used at all.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Interrupted { .. } | Error::SweepInterrupted { .. } => 130,
            Error::SweepRun { source, .. } => source.exit_code(),
            Error::ValidationFailed { .. }
            | Error::NotReproduced { .. }
            | Error::Chart { .. }
            | Error::Cache { .. }
            | Error::Diverged { .. }
            | Error::Train(
                kiln_train::Error::Diverged { .. } | kiln_train::Error::Checkpoint { .. },
            )
            | Error::Io(_)
            | Error::BackendsDisagree { .. }
            | Error::Drift { .. }
            | Error::Record { .. } => 1,
            _ => 2,
        }
    }
}

/// Result with kiln-pipeline's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
