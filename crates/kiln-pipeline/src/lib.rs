//! kiln's pipeline runner: the pipeline file, run directories, manifests and bundles.
//!
//! ```no_run
//! use kiln_core::BackendKind;
//! use kiln_pipeline::{Observer, PipelineConfig, TrainOptions, train};
//!
//! # fn main() -> kiln_pipeline::Result<()> {
//! let config = PipelineConfig::load("examples/penguins/pipeline.toml".as_ref())?;
//! let options =
//!     TrainOptions { backend: BackendKind::Ndarray, out_dir: "runs".into(), resume: None, stop: None };
//! let summary = train(&config, &options, Observer::default())?;
//! println!("{}: {:?}", summary.run_dir.display(), summary.manifest.metrics["test"]);
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bundle;
mod compare;
pub mod config;
pub mod drift;
mod error;
mod ingest;
mod input;
mod predict;
mod run;

pub use bundle::{BundleSpec, Predictions, Predictor};
pub use compare::{BackendComparison, BackendRun, DEFAULT_METRIC_TOLERANCE, compare_backends};
pub use config::{PipelineConfig, ValidPipelineConfig};
pub use drift::{DriftConfig, DriftReport, DriftWindow, FeatureDrift, drift_report};
pub use error::{ConfigError, Error, Result};
pub use ingest::{Ingested, ingest, validate};
pub use input::{InputError, JSON_SOURCE, Prediction, table_rows_json};
pub use predict::write_predictions_csv;
pub use run::{
    AnyPredictor, DryRun, Manifest, Observer, RunSummary, Scores, SplitRecord, TrainOptions,
    dry_run, resume_config, train,
};
