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

use std::path::{Path, PathBuf};

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

use crate::drift::DriftConfig;
use crate::input::Prediction;
use crate::{Error, Result};

/// Version of the bundle layout; loading refuses other versions.
pub const BUNDLE_FORMAT: u32 = 2;
const SPEC_FILE: &str = "bundle.json";
const RECORD_STEM: &str = "model";
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
                    "not a kiln bundle: no {SPEC_FILE} (pass a run's bundle/ directory)"
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

/// A loaded bundle, ready to predict on backend `B`.
#[derive(Debug)]
pub struct Predictor<B: Backend> {
    dir: PathBuf,
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
    /// Loads the bundle in `dir` onto `device`.
    ///
    /// # Errors
    /// A missing or malformed `bundle.json`, a different bundle format, or a record that does
    /// not fit the model spec.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let spec = BundleSpec::read(dir)?;
        let record = dir.join(RECORD_STEM);
        let model = spec
            .model
            .init::<B>(0, device)
            .load_file(
                &record,
                &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
                device,
            )
            .map_err(|e| Error::Record {
                path: record.with_extension("mpk"),
                message: e.to_string(),
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            spec,
            model,
            device: device.clone(),
        })
    }

    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
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

    /// The statistics of the training rows (`stats.json`), the baseline for drift checks.
    ///
    /// # Errors
    /// A missing or malformed `stats.json`, naming it.
    pub fn training_stats(&self) -> Result<DatasetStats> {
        read_json(&self.dir.join(STATS_FILE))
    }

    /// Predicts `rows` of `table` through exactly the bundle's fitted transforms.
    ///
    /// # Errors
    /// [`Error::Transform`] when a feature column is missing.
    pub fn predict(&self, table: &Table, rows: &[usize]) -> Result<Predictions> {
        let x = self.spec.features.transform(table, rows)?;
        let out = kiln_train::predict(&self.model, &x, self.spec.task(), &self.device);
        Ok(match &self.spec.target {
            FittedTarget::Classification { classes, .. } => Predictions::Classes {
                classes: classes.clone(),
                probabilities: out,
            },
            target @ FittedTarget::Regression { .. } => {
                Predictions::Values(out.data.iter().map(|&v| target.decode_value(v)).collect())
            }
        })
    }
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
