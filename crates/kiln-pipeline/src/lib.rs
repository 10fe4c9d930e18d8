//! kiln's pipeline runner: the pipeline file, run directories, manifests and bundles.
//!
//! ```no_run
//! use kiln_core::BackendKind;
//! use kiln_pipeline::{Observer, PipelineConfig, TrainOptions, train};
//!
//! # fn main() -> kiln_pipeline::Result<()> {
//! let config = PipelineConfig::load("examples/penguins/pipeline.toml".as_ref())?;
//! let options = TrainOptions::new(BackendKind::Ndarray, "runs");
//! let summary = train(&config, &options, Observer::default())?;
//! println!("{}: {:?}", summary.run_dir.display(), summary.manifest.metrics["test"]);
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod archive;
pub mod bundle;
pub mod cache;
mod compare;
pub mod config;
pub mod drift;
mod error;
mod ingest;
mod input;
mod predict;
mod provenance;
mod report;
pub mod reproduce;
mod run;
mod stages;
mod streaming;
pub mod sweep;
pub mod tracking;

/// The Arrow version [`Predictor::predict_batch`] takes batches of.
pub use arrow_array;

pub use archive::{ArchiveManifest, OpenedBundle, export};
pub use bundle::{BundleSpec, Predictions, Predictor, RECORD_BATCH_SOURCE};
pub use compare::{BackendComparison, BackendRun, DEFAULT_METRIC_TOLERANCE, compare_backends};
pub use config::{PipelineConfig, ValidPipelineConfig};
pub use drift::{DriftConfig, DriftReport, DriftWindow, FeatureDrift, drift_report};
pub use error::{ConfigError, Error, Result};
pub use ingest::{Ingested, ingest, validate};
pub use input::{InputError, JSON_SOURCE, Prediction, table_rows_json};
pub use predict::write_predictions_csv;
pub use provenance::GitRevision;
pub use report::{REPORT_FILE, report};
pub use reproduce::{Reproduction, reproduce};
pub use run::{
    AnyPredictor, CvFold, DryRun, MANIFEST_FORMAT, Manifest, NodeGroup, Observer, RunSummary,
    Scores, SplitRecord, TrainOptions, dry_run, resume_config, train,
};
pub use stages::{InputFile, STAGES, StageRecord};
pub use streaming::{DEFAULT_BUDGET_MIB, StreamingRecord};
pub use sweep::{Leaderboard, Sweep, SweepEvent, SweepOptions, SweepSummary};
pub use tracking::{RunInfo, compare_runs, export_mlflow, list_runs};
