//! `kiln compare-backends`: one pipeline trained on several backends, side by side.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_core::{BackendKind, DeviceInfo};
use serde::Serialize;

use crate::bundle::{Predictions, read_json};
use crate::run::{AnyPredictor, Observer, TrainOptions, train};
use crate::{Result, ValidPipelineConfig};

/// Metrics may differ by this much (absolute) between backends unless the command says
/// otherwise: one test row of penguins' 69 moves accuracy by 0.0145.
pub const DEFAULT_METRIC_TOLERANCE: f64 = 0.02;

/// One backend's run.
#[derive(Debug, Clone, Serialize)]
pub struct BackendRun {
    /// The backend.
    pub backend: BackendKind,
    /// Its device.
    pub device: DeviceInfo,
    /// The committed run directory.
    pub run_dir: PathBuf,
    /// Wall seconds per stage.
    pub timings: BTreeMap<String, f64>,
    /// Training throughput.
    pub samples_per_second: f64,
    /// Test metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Largest |difference| of a test prediction (class probability, or value in target
    /// units) from the first backend's.
    pub max_abs_diff: f64,
}

/// The comparison, and where it fails its tolerance.
#[derive(Debug, Clone, Serialize)]
pub struct BackendComparison {
    /// One entry per backend, the reference first.
    pub runs: Vec<BackendRun>,
    /// The metric tolerance applied.
    pub tolerance: f64,
    /// `backend: metric a vs b` for each metric beyond the tolerance.
    pub failures: Vec<String>,
}

/// Trains `config` on each backend (into `out_dir`), predicts the test rows with each bundle,
/// and compares metrics and predictions with the first backend's.
///
/// # Errors
/// Any run's error; a backend without a device is an error too (asked for explicitly).
pub fn compare_backends(
    config: &ValidPipelineConfig,
    backends: &[BackendKind],
    out_dir: &Path,
    tolerance: f64,
) -> Result<BackendComparison> {
    let mut runs: Vec<BackendRun> = Vec::new();
    let mut reference: Option<Vec<f64>> = None;
    let mut failures = Vec::new();
    for &backend in backends {
        let summary = train(
            config,
            &TrainOptions::new(backend, out_dir),
            Observer::default(),
        )?;
        let predictions = test_predictions(&summary.run_dir, config.source(), backend)?;
        let max_abs_diff = reference.as_ref().map_or(0.0, |first| {
            first
                .iter()
                .zip(&predictions)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max)
        });
        reference.get_or_insert(predictions);
        let manifest = summary.manifest;
        let metrics = manifest.metrics.get("test").cloned().unwrap_or_default();
        if let Some(first) = runs.first() {
            for (name, value) in &metrics {
                let Some(then) = first.metrics.get(name) else {
                    continue;
                };
                if (value - then).abs() > tolerance {
                    failures.push(format!(
                        "{backend}: test {name} {value:.4} vs {then:.4} on {}",
                        first.backend
                    ));
                }
            }
        }
        runs.push(BackendRun {
            backend,
            device: manifest.device,
            run_dir: summary.run_dir,
            timings: manifest.timings,
            samples_per_second: manifest.samples_per_second,
            metrics,
            max_abs_diff,
        });
    }
    Ok(BackendComparison {
        runs,
        tolerance,
        failures,
    })
}

/// The run's test-row predictions, flattened (probabilities row by row, or values).
fn test_predictions(run_dir: &Path, data: &Path, backend: BackendKind) -> Result<Vec<f64>> {
    let splits: kiln_data::Split = read_json(&run_dir.join("splits.json"))?;
    let predictor = AnyPredictor::load(&run_dir.join("bundle"), backend)?;
    let table = predictor.read(data)?;
    Ok(match predictor.predict(&table, &splits.test)? {
        Predictions::Classes { probabilities, .. } => {
            probabilities.data.iter().map(|&p| f64::from(p)).collect()
        }
        Predictions::Values(values) => values,
    })
}
