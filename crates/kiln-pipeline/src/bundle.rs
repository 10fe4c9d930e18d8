//! The bundle: everything needed to predict, in one directory.
//!
//! ```text
//! bundle/
//!   bundle.json    format version, schema, CSV options, fitted features, fitted target, model spec
//!   model.mpk      burn record of the weights (full precision)
//!   manifest.json  the run's manifest
//! ```

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::Backend;
use kiln_core::Matrix;
use kiln_data::{CsvOptions, Schema, Table};
use kiln_models::{ModelSpec, Net};
use kiln_train::Task;
use kiln_transform::{FittedFeatures, FittedTarget};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Version of the bundle layout; loading refuses other versions.
pub const BUNDLE_FORMAT: u32 = 1;
const SPEC_FILE: &str = "bundle.json";
const RECORD_STEM: &str = "model";

/// The fitted, serializable half of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleSpec {
    /// [`BUNDLE_FORMAT`] when written.
    pub format: u32,
    /// Input schema (the target included).
    pub schema: Schema,
    /// How input files are read.
    pub csv: CsvOptions,
    /// Fitted input transforms.
    pub features: FittedFeatures,
    /// Fitted target encoding.
    pub target: FittedTarget,
    /// Model architecture.
    pub model: ModelSpec,
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
    /// The training task the target implies.
    pub fn task(&self) -> Task {
        task_of(&self.target)
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

    /// Reads a CSV file with the bundle's options and schema; the target may be absent.
    ///
    /// # Errors
    /// Data errors naming the file, line and column.
    pub fn read(&self, path: &Path) -> Result<Table> {
        let raw = kiln_data::read_table(
            path,
            &kiln_data::ReadOptions {
                csv: self.spec.csv.clone(),
                ..kiln_data::ReadOptions::default()
            },
        )?;
        Ok(raw.conform(&self.spec.schema, &[self.spec.target.name()])?)
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
