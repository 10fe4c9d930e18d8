//! The bundle: everything needed to predict, in one directory.
//!
//! ```text
//! bundle/
//!   bundle.json    format version, schema (types, roles), read options, fitted features, fitted
//!                  target, model spec
//!   model.mpk      burn record of the weights (full precision)
//!   manifest.json  the run's manifest
//!   stats.json     statistics of the training rows (the baseline for drift checks)
//! ```
//!
//! `kiln export` packs these files into one `.kiln` archive (see [`crate::archive`]), which
//! loads wherever a bundle directory does.

use std::path::Path;

use arrow_array::RecordBatch;

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::Backend;
use kiln_core::Matrix;
use kiln_data::{
    ColumnRole, CsvOptions, DatasetStats, Format, RawTable, ReadOptions, Schema, Table,
    ValidationConfig,
};
use kiln_models::{ModelSpec, Net};
use kiln_train::Task;
use kiln_transform::{FittedFeatures, FittedTarget};
use serde::{Deserialize, Serialize};

use crate::archive::OpenedBundle;
use crate::drift::DriftConfig;
use crate::input::Prediction;
use crate::{Error, Result};

/// Version of the bundle layout; loading refuses other versions.
pub const BUNDLE_FORMAT: u32 = 2;
pub(crate) const SPEC_FILE: &str = "bundle.json";
const RECORD_STEM: &str = "model";
/// What errors about a [`RecordBatch`] name as their source.
pub const RECORD_BATCH_SOURCE: &str = "<record batch>";
/// Statistics of the training rows, the baseline for drift checks.
pub const STATS_FILE: &str = "stats.json";

/// The fitted, serializable half of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleSpec {
    /// [`BUNDLE_FORMAT`] when written.
    pub format: u32,
    /// Input schema (the target included).
    pub schema: Schema,
    /// How input files are read.
    pub csv: CsvOptions,
    /// The training data's format, for input files whose name does not tell (absent in
    /// bundles from before it was recorded: the name decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_format: Option<Format>,
    /// The target is `column > target_above` (a boolean), as `[data] target_above` set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_above: Option<f64>,
    /// Fitted input transforms.
    pub features: FittedFeatures,
    /// Fitted target encoding.
    pub target: FittedTarget,
    /// Model architecture.
    pub model: ModelSpec,
    /// The pipeline's `[validate]` rules; serving refuses values that break a row-level one.
    #[serde(default)]
    pub validate: ValidationConfig,
    /// The pipeline's `[drift]` thresholds.
    #[serde(default)]
    pub drift: DriftConfig,
}

/// The training task a fitted target implies.
pub(crate) fn task_of(target: &FittedTarget) -> Task {
    match target {
        FittedTarget::Classification { classes, .. } => Task::Classification {
            classes: classes.len(),
        },
        FittedTarget::Regression { .. } => Task::Regression,
    }
}

impl BundleSpec {
    /// Reads the spec of the bundle in `dir`, without the model.
    ///
    /// # Errors
    /// [`Error::BadBundle`] for a directory without `bundle.json` or of another bundle format;
    /// a malformed `bundle.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let spec_path = dir.join(SPEC_FILE);
        if !spec_path.is_file() {
            return Err(Error::BadBundle {
                path: dir.to_path_buf(),
                reason: format!(
                    "not a kiln bundle: no {SPEC_FILE} (pass a run's bundle/ directory or a .kiln file)"
                ),
            });
        }
        let spec: BundleSpec = read_json(&spec_path)?;
        if spec.format != BUNDLE_FORMAT {
            return Err(Error::BadBundle {
                path: spec_path,
                reason: format!(
                    "bundle format {} is not {BUNDLE_FORMAT}, the one this kiln reads",
                    spec.format
                ),
            });
        }
        Ok(spec)
    }

    /// The training task the target implies.
    pub fn task(&self) -> Task {
        task_of(&self.target)
    }

    /// How to read a data file as the training data was read: its format from the file name,
    /// else the training data's format; the pipeline's CSV options.
    pub fn read_options(&self, path: &Path) -> ReadOptions {
        ReadOptions {
            format: Format::detect(path)
                .map(|(format, _)| format)
                .or(self.data_format),
            compression: None,
            csv: self.csv.clone(),
        }
    }

    /// Types a raw table by the bundle's schema. Only feature columns must be present (the
    /// target, ids, group and time columns may be absent); a `target_above` target is derived
    /// as in training.
    ///
    /// # Errors
    /// Data errors naming the file, line and column.
    pub fn conform(&self, raw: &RawTable) -> Result<Table> {
        let target = self.target.name();
        let optional: Vec<&str> = self
            .schema
            .columns
            .iter()
            .filter(|c| c.role != ColumnRole::Feature || c.name == target)
            .map(|c| c.name.as_str())
            .collect();
        let table = raw.conform(&self.schema, &optional)?;
        Ok(match self.target_above {
            Some(above) if table.column(target).is_some() => table.binarize(target, above)?,
            _ => table,
        })
    }

    /// Types an Arrow batch (an embedding caller's rows) by the bundle's schema, as
    /// [`BundleSpec::conform`] types a data file: each column is read through its text form,
    /// as a Parquet file's are, so any Arrow type that prints as the CSV would spell the value
    /// works (integers for an integer-valued categorical, e.g. a year); the pipeline's missing
    /// tokens and NaN are missing values. Columns outside the schema are ignored. Errors name
    /// the source as [`RECORD_BATCH_SOURCE`] and rows by 0-based index.
    ///
    /// # Errors
    /// [`Error::Data`]: a missing feature column (with the closest name), a nested or binary
    /// column, or the row and column of a value of the wrong type.
    pub fn batch_table(&self, batch: &RecordBatch) -> Result<Table> {
        let raw = RawTable::from_record_batch(RECORD_BATCH_SOURCE, batch, &self.csv.missing)?;
        self.conform(&raw)
    }

    /// Writes the spec and the model record into `dir`.
    ///
    /// # Errors
    /// IO and record errors, naming the file.
    pub fn save<B: Backend>(&self, dir: &Path, model: &Net<B>) -> Result<()> {
        write_json(&dir.join(SPEC_FILE), self)?;
        let record = dir.join(RECORD_STEM);
        model
            .clone()
            .save_file(
                &record,
                &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
            )
            .map_err(|e| Error::Record {
                path: record.with_extension("mpk"),
                message: e.to_string(),
            })
    }
}

/// A loaded bundle, ready to predict on backend `B`: the API for programs that embed a model.
///
/// It loads from a bundle directory or a `.kiln` archive ([`crate::archive`]), and predicts
/// rows of JSON ([`Predictor::predict_json`]), an Arrow [`RecordBatch`]
/// ([`Predictor::predict_batch`]) or a data file ([`Predictor::read`] then
/// [`Predictor::predict`]), through exactly the transforms fitted in training. Each
/// [`Prediction`] holds the class and every class's probability, or the value.
///
/// ```no_run
/// use std::sync::Arc;
///
/// use burn::backend::NdArray;
/// use kiln_pipeline::arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
/// use kiln_pipeline::{Prediction, Predictor};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A bundle directory or a `kiln export`ed file.
/// let predictor = Predictor::<NdArray>::load("penguins-species.kiln".as_ref(), &Default::default())?;
/// let text = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as ArrayRef;
/// let number = |v: Vec<f64>| Arc::new(Float64Array::from(v)) as ArrayRef;
/// let batch = RecordBatch::try_from_iter([
///     ("island", text(vec![Some("Biscoe"), Some("Dream")])),
///     ("bill_length_mm", number(vec![45.1, 39.5])),
///     ("bill_depth_mm", number(vec![14.5, 18.8])),
///     ("flipper_length_mm", number(vec![215.0, 190.0])),
///     ("body_mass_g", number(vec![5000.0, 3650.0])),
///     // A missing value is a null (imputed as in training).
///     ("sex", text(vec![Some("female"), None])),
///     // Integers, so the categorical year reads `2008` as in the CSV (not `2008.0`).
///     ("year", Arc::new(Int64Array::from(vec![2008, 2009])) as ArrayRef),
/// ])?;
/// for prediction in predictor.predict_batch(&batch)? {
///     match prediction {
///         Prediction::Class { class, probabilities } => {
///             println!("{class} ({:.2})", probabilities[&class]);
///         }
///         Prediction::Value { value } => println!("{value}"),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Predictor<B: Backend> {
    bundle: OpenedBundle,
    spec: BundleSpec,
    model: Net<B>,
    device: B::Device,
}

/// Predictions for a table's rows, in the target's units.
#[derive(Debug, Clone, PartialEq)]
pub enum Predictions {
    /// Class probabilities (`rows × classes`, in [`FittedTarget`] class order).
    Classes {
        /// The class names.
        classes: Vec<String>,
        /// The probabilities.
        probabilities: Matrix,
    },
    /// Predicted values.
    Values(Vec<f64>),
}

impl<B: Backend> Predictor<B> {
    /// Loads the bundle at `path` onto `device`: a bundle directory, or a `.kiln` archive (a
    /// regular file) that is verified first, see [`OpenedBundle::open`].
    ///
    /// # Errors
    /// A missing or malformed `bundle.json`, a different bundle format, or a record that does
    /// not fit the model spec; for an archive, a newer archive format, a truncated file or a
    /// member whose size or checksum differs, each naming the archive and the member.
    pub fn load(path: &Path, device: &B::Device) -> Result<Self> {
        let bundle = OpenedBundle::open(path)?;
        let spec = bundle.spec()?;
        let record = bundle.dir().join(RECORD_STEM);
        let model = spec
            .model
            .init::<B>(0, device)
            .load_file(
                &record,
                &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
                device,
            )
            .map_err(|e| {
                bundle.rebase(Error::Record {
                    path: record.with_extension("mpk"),
                    message: e.to_string(),
                })
            })?;
        Ok(Self {
            bundle,
            spec,
            model,
            device: device.clone(),
        })
    }

    /// The directory holding the bundle's files: the bundle directory loaded, or the private
    /// copy a `.kiln` archive was extracted to (removed when the predictor is dropped).
    pub fn dir(&self) -> &Path {
        self.bundle.dir()
    }

    /// What was loaded: the bundle directory or the `.kiln` archive (reload from this).
    pub fn source(&self) -> &Path {
        self.bundle.source()
    }

    /// The fitted spec.
    pub fn spec(&self) -> &BundleSpec {
        &self.spec
    }

    /// Reads a data file as the training data was read; see [`BundleSpec::read_options`] and
    /// [`BundleSpec::conform`].
    ///
    /// # Errors
    /// Data errors naming the file, line and column.
    pub fn read(&self, path: &Path) -> Result<Table> {
        self.spec
            .conform(&kiln_data::read_table(path, &self.spec.read_options(path))?)
    }

    /// Predicts JSON rows (objects keyed by column, as [`BundleSpec::rows_table`] checks
    /// them), for programs that embed a bundle.
    ///
    /// ```no_run
    /// use burn::backend::NdArray;
    /// use kiln_pipeline::{Prediction, Predictor};
    ///
    /// # fn main() -> kiln_pipeline::Result<()> {
    /// let predictor = Predictor::<NdArray>::load("runs/penguins-species-1/bundle".as_ref(), &Default::default())?;
    /// let row = serde_json::json!({"island": "Biscoe", "bill_length_mm": 45.1, "bill_depth_mm": 14.5,
    ///     "flipper_length_mm": 215, "body_mass_g": 5000, "sex": "female", "year": 2008});
    /// if let [Prediction::Class { class, probabilities }] = predictor.predict_json(&[row])?.as_slice() {
    ///     println!("{class} ({:.2})", probabilities[class]);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Input`] naming the row and column of a bad value.
    pub fn predict_json(&self, rows: &[serde_json::Value]) -> Result<Vec<Prediction>> {
        let table = self.spec.rows_table(rows)?;
        let all: Vec<usize> = (0..table.n_rows()).collect();
        Ok(self.predict(&table, &all)?.to_rows())
    }

    /// Predicts the rows of an Arrow batch whose columns are named as the training data's:
    /// typed by the bundle's schema exactly as a data file's columns are (see
    /// [`BundleSpec::batch_table`]). An empty batch has no predictions.
    ///
    /// # Errors
    /// [`Error::Data`] naming the column (a missing feature column, a column of an unsupported
    /// Arrow type) or the row index and column of a value its column's type cannot hold.
    pub fn predict_batch(&self, batch: &RecordBatch) -> Result<Vec<Prediction>> {
        predict_batch(&self.spec, batch, |table, rows| self.predict(table, rows))
    }

    /// The statistics of the training rows (`stats.json`), the baseline for drift checks.
    ///
    /// # Errors
    /// A missing or malformed `stats.json`, naming it.
    pub fn training_stats(&self) -> Result<DatasetStats> {
        read_json(&self.dir().join(STATS_FILE)).map_err(|e| self.bundle.rebase(e))
    }

    /// Predicts `rows` of `table` through exactly the bundle's fitted transforms.
    ///
    /// # Errors
    /// [`Error::Transform`] when a feature column is missing.
    pub fn predict(&self, table: &Table, rows: &[usize]) -> Result<Predictions> {
        let x = self.spec.features.transform(table, rows)?;
        Ok(self.predict_matrix(&x))
    }

    /// Predicts rows already transformed by the bundle's features (`x`, one row per input).
    pub fn predict_matrix(&self, x: &Matrix) -> Predictions {
        let out = kiln_train::predict(&self.model, x, self.spec.task(), &self.device);
        match &self.spec.target {
            FittedTarget::Classification { classes, .. } => Predictions::Classes {
                classes: classes.clone(),
                probabilities: out,
            },
            target @ FittedTarget::Regression { .. } => {
                Predictions::Values(out.data.iter().map(|&v| target.decode_value(v)).collect())
            }
        }
    }
}

/// [`Predictor::predict_batch`] with the predictor's `predict`.
pub(crate) fn predict_batch(
    spec: &BundleSpec,
    batch: &RecordBatch,
    predict: impl Fn(&Table, &[usize]) -> Result<Predictions>,
) -> Result<Vec<Prediction>> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let table = spec.batch_table(batch)?;
    let all: Vec<usize> = (0..table.n_rows()).collect();
    Ok(predict(&table, &all)?.to_rows())
}

/// Serializes `value` as pretty JSON, atomically.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    Ok(kiln_core::fsx::write_atomic(path, &bytes)?)
}

/// Reads JSON from `path`.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = fs_err::read(path)?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}
