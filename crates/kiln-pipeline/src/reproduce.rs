//! `kiln reproduce`: re-runs a run from its manifest and config snapshot, then compares the
//! outputs, naming the inputs that changed when they differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_core::BackendKind;
use kiln_core::hash::short;
use serde::Serialize;

use crate::bundle::read_json;
use crate::run::{Manifest, Observer, TrainOptions, resume_config, train};
use crate::{Error, Result};

/// Largest absolute difference of a metric between a GPU run and its re-run: GPU kernels
/// (reductions, autotuned matmuls) need not sum in one order. CPU backends must match exactly.
pub const GPU_METRIC_TOLERANCE: f64 = 1e-3;

/// What `kiln reproduce` found.
#[derive(Debug, Clone, Serialize)]
pub struct Reproduction {
    /// The recorded run.
    pub run: PathBuf,
    /// The re-run's directory, when it was kept (`--out`).
    pub rerun: Option<PathBuf>,
    /// The backend of the re-run.
    pub backend: BackendKind,
    /// Each compared output: what, recorded value, re-run value, whether they agree.
    pub checks: Vec<Check>,
    /// Inputs that differ from the recorded run (data, versions, backend, machine).
    pub changed_inputs: Vec<String>,
}

/// One compared output.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The output, e.g. `metric test.accuracy` or `parameter hash`.
    pub what: String,
    /// As recorded.
    pub then: String,
    /// As re-run.
    pub now: String,
    /// Whether they agree (exactly, or within the GPU tolerance).
    pub agrees: bool,
}

impl Reproduction {
    /// Whether every output agrees.
    pub fn reproduced(&self) -> bool {
        self.checks.iter().all(|c| c.agrees)
    }
}

/// Reads a run's manifest.
///
/// # Errors
/// [`Error::BadBundle`] when `run` has no manifest; JSON errors naming it.
pub fn read_manifest(run: &Path) -> Result<Manifest> {
    let path = run.join("manifest.json");
    if !path.is_file() {
        return Err(Error::BadBundle {
            path: run.to_path_buf(),
            reason: "not a kiln run: no manifest.json".into(),
        });
    }
    read_json(&path)
}

/// Re-runs `run` on `backend` (the recorded one when `None`) and compares metrics, the
/// parameter hash (CPU backends), the split hashes and the training history. The re-run is
/// written under `keep` when given, else to a temporary directory removed afterwards.
///
/// # Errors
/// A run without a manifest or config snapshot; [`Error::NotReproduced`] when the re-run
/// fails (a missing data file, say), naming the inputs that changed. A re-run that differs is
/// a [`Reproduction`] whose [`Reproduction::reproduced`] is false.
///
/// # Panics
/// Never: the scratch directory exists whenever `keep` is `None`.
pub fn reproduce(
    run: &Path,
    backend: Option<BackendKind>,
    keep: Option<&Path>,
) -> Result<Reproduction> {
    let recorded = read_manifest(run)?;
    let config = resume_config(run)?;
    let backend = backend.unwrap_or(recorded.device.backend);
    let changed_inputs = changed_inputs(&recorded, backend);
    let scratch = match keep {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix(".kiln-reproduce-")
                .tempdir_in(run.parent().unwrap_or(Path::new(".")))?,
        ),
    };
    let out_dir = keep.map_or_else(
        || {
            scratch
                .as_ref()
                .expect("a scratch dir without --out")
                .path()
                .to_path_buf()
        },
        Path::to_path_buf,
    );
    // No stage cache: a reproduction recomputes every stage from the data.
    let options = TrainOptions {
        cache: None,
        fold: recorded.fold,
        ..TrainOptions::new(backend, &out_dir)
    };
    let rerun = match train(&config, &options, Observer::default()) {
        Ok(rerun) => rerun,
        Err(e) => {
            let mut differences = vec![format!("the re-run failed: {e}")];
            differences.extend(changed_inputs);
            return Err(Error::NotReproduced {
                run: run.to_path_buf(),
                differences,
            });
        }
    };
    let now = &rerun.manifest;
    // CPU backends rerun bit-exactly; GPU kernels may sum in another order.
    let exact = matches!(backend, BackendKind::Ndarray | BackendKind::Flex);
    let mut checks = Vec::new();
    let mut check = |what: String, then: String, now: String| {
        let agrees = then == now;
        checks.push(Check {
            what,
            then,
            now,
            agrees,
        });
    };
    check(
        "status".into(),
        format!("{:?}", recorded.status),
        format!("{:?}", now.status),
    );
    for (name, split) in &recorded.splits {
        check(
            format!("split {name} rows"),
            split.hash.clone(),
            now.splits
                .get(name)
                .map(|s| s.hash.clone())
                .unwrap_or_default(),
        );
    }
    check(
        "epochs run".into(),
        recorded.epochs_run.to_string(),
        now.epochs_run.to_string(),
    );
    if exact {
        check(
            "parameter hash".into(),
            recorded.parameter_hash.clone(),
            now.parameter_hash.clone(),
        );
    }
    let metric_checks = compare_metrics(&recorded.metrics, &now.metrics, exact);
    checks.extend(metric_checks);
    Ok(Reproduction {
        run: run.to_path_buf(),
        rerun: keep.map(|_| rerun.run_dir.clone()),
        backend,
        checks,
        changed_inputs,
    })
}

/// Metric checks: exact on CPU backends (bit-exact reruns), within
/// [`GPU_METRIC_TOLERANCE`] on GPUs. NaN (an undefined metric) agrees with NaN.
fn compare_metrics(
    then: &BTreeMap<String, BTreeMap<String, f64>>,
    now: &BTreeMap<String, BTreeMap<String, f64>>,
    exact: bool,
) -> Vec<Check> {
    let mut checks = Vec::new();
    for (split, metrics) in then {
        for (name, &a) in metrics {
            let b = now.get(split).and_then(|m| m.get(name)).copied();
            let agrees = b.is_some_and(|b| {
                (a.is_nan() && b.is_nan())
                    || if exact {
                        a.to_bits() == b.to_bits()
                    } else {
                        (a - b).abs() <= GPU_METRIC_TOLERANCE
                    }
            });
            checks.push(Check {
                what: format!("metric {split}.{name}"),
                then: a.to_string(),
                now: b.map_or_else(|| "absent".into(), |b| b.to_string()),
                agrees,
            });
        }
    }
    checks
}

/// The recorded inputs that differ now: data files, kiln, burn and the lock file, backend,
/// precision and the machine's CPU.
fn changed_inputs(recorded: &Manifest, backend: BackendKind) -> Vec<String> {
    let mut changed = Vec::new();
    let inputs = if recorded.inputs.is_empty() {
        vec![crate::InputFile {
            path: recorded.data_path.clone(),
            hash: recorded.data_hash.clone(),
        }]
    } else {
        recorded.inputs.clone()
    };
    for input in &inputs {
        match crate::ingest::hash_input(&input.path) {
            Ok(now) if now == input.hash => {}
            Ok(now) => changed.push(format!(
                "data file {} changed (blake3 {} then, {} now; {} bytes then, {} now)",
                input.path.display(),
                short(&input.hash.blake3),
                short(&now.blake3),
                input.hash.bytes,
                now.bytes
            )),
            Err(_) => changed.push(format!(
                "data file {} is missing or unreadable",
                input.path.display()
            )),
        }
    }
    let mut differs = |what: &str, then: &str, now: &str| {
        if then != now {
            changed.push(format!("{what} {then} then, {now} now"));
        }
    };
    differs(
        "kiln version",
        &recorded.kiln_version,
        kiln_core::KILN_VERSION,
    );
    differs(
        "burn version",
        &recorded.burn_version,
        kiln_core::BURN_VERSION,
    );
    if !recorded.cargo_lock.is_empty() {
        differs(
            "Cargo.lock",
            short(&recorded.cargo_lock),
            short(&kiln_core::cargo_lock_hash()),
        );
    }
    differs(
        "backend",
        &recorded.device.backend.to_string(),
        &backend.to_string(),
    );
    differs(
        "host CPU",
        &recorded.host.cpu,
        &kiln_core::HostInfo::detect().cpu,
    );
    changed
}
