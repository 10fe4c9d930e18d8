//! A loaded bundle with its identity, training statistics and drift window.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_core::BackendKind;
use kiln_data::DatasetStats;
use kiln_pipeline::{AnyPredictor, DriftWindow};
use serde_json::{Value, json};

/// One loaded bundle; requests hold it by `Arc`, so a reload never pulls it from under them.
pub(crate) struct Model {
    pub(crate) predictor: AnyPredictor,
    /// The pipeline name and the first 12 hex digits of the weights' blake3.
    pub(crate) id: String,
    /// 1 for the first load, one more per successful reload.
    pub(crate) version: u64,
    pub(crate) loaded_at: u64,
    /// `None` for a bundle without `stats.json`: no drift gauges.
    pub(crate) stats: Option<DatasetStats>,
    pub(crate) window: Mutex<DriftWindow>,
    manifest: Value,
}

impl Model {
    /// Loads the bundle at `path`, a directory or a `.kiln` archive (blocking: burn reads and
    /// builds the model).
    pub(crate) fn load(
        path: &Path,
        backend: BackendKind,
        version: u64,
    ) -> kiln_pipeline::Result<Self> {
        let predictor = AnyPredictor::load(path, backend)?;
        // The loaded files: the directory itself, or the archive's verified extracted copy.
        let dir = predictor.dir();
        let weights = kiln_core::hash::hash_file(&dir.join("model.mpk"))?;
        let manifest: Value = fs_read_json(&dir.join("manifest.json")).unwrap_or(Value::Null);
        let name = manifest["name"].as_str().unwrap_or("model");
        let id = format!("{name}-{}", &weights.blake3[..12]);
        let stats = predictor.training_stats().ok();
        let window = Mutex::new(DriftWindow::new(predictor.spec()));
        Ok(Self {
            predictor,
            id,
            version,
            loaded_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            stats,
            window,
            manifest,
        })
    }

    /// What was loaded (the bundle directory or the `.kiln` archive), which a reload reads
    /// again.
    pub(crate) fn source(&self) -> PathBuf {
        self.predictor.source().to_path_buf()
    }

    /// `{"id", "version"}`, as every prediction names its model.
    pub(crate) fn identity(&self) -> Value {
        json!({ "id": self.id, "version": self.version })
    }

    /// What `/v1/metadata` shows.
    pub(crate) fn metadata(&self) -> Value {
        let spec = self.predictor.spec();
        let m = &self.manifest;
        json!({
            "model": {
                "id": self.id,
                "version": self.version,
                "bundle": self.source(),
                "loaded_at_unix": self.loaded_at,
            },
            "task": spec.task(),
            "target": spec.target.name(),
            "classes": spec.classes(),
            "inputs": spec.input_columns().map(|c| json!({"name": c.name, "type": c.column_type})).collect::<Vec<_>>(),
            "schema": spec.schema,
            "validate": spec.validate,
            "drift": spec.drift,
            "metrics": m["metrics"],
            "manifest": {
                "name": m["name"],
                "kiln_version": m["kiln_version"],
                "config_hash": m["config_hash"],
                "data_path": m["data_path"],
                "data_hash": m["data_hash"],
                "rows": m["rows"],
                "seed": m["seed"],
                "device": m["device"],
                "epochs_run": m["epochs_run"],
            },
        })
    }
}

fn fs_read_json(path: &Path) -> Option<Value> {
    let bytes = fs_err::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}
