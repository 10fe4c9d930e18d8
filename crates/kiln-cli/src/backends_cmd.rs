//! `kiln backends` and `kiln compare-backends`.

use std::io::Write;
use std::path::Path;

use kiln_core::BackendKind;
use kiln_pipeline::{PipelineConfig, compare_backends};

/// What `kiln backends` reports per backend kiln knows.
#[derive(serde::Serialize)]
struct BackendLine {
    backend: BackendKind,
    /// The device, or why there is none.
    device: Result<kiln_core::DeviceInfo, String>,
}

pub(crate) fn list(json: bool) -> kiln_pipeline::Result<()> {
    let lines: Vec<BackendLine> = BackendKind::ALL
        .into_iter()
        .map(|backend| BackendLine {
            backend,
            device: kiln_core::device_info(backend).map_err(|e| match e {
                kiln_core::Error::NoDevice { reason, .. } => reason,
                kiln_core::Error::NotCompiled { .. } => {
                    format!("not compiled in (build with --features {backend})")
                }
                other => other.to_string(),
            }),
        })
        .collect();
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(
            stdout,
            "{}",
            serde_json::to_string(&lines).expect("backend lines serialize")
        )?;
        return Ok(());
    }
    writeln!(stdout, "{:<9} {:<15} device", "backend", "type")?;
    for line in &lines {
        match &line.device {
            Ok(d) => writeln!(
                stdout,
                "{:<9} {:<15} {}",
                line.backend, d.device_type, d.name
            )?,
            Err(reason) => writeln!(stdout, "{:<9} {:<15} {reason}", line.backend, "unavailable")?,
        }
    }
    Ok(())
}

pub(crate) fn compare(
    pipeline: &Path,
    backends: &[BackendKind],
    tolerance: f64,
    out: &Path,
    json: bool,
) -> kiln_pipeline::Result<()> {
    let config = PipelineConfig::load(pipeline)?;
    let comparison = compare_backends(&config, backends, out, tolerance)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(
            stdout,
            "{}",
            serde_json::to_string(&comparison).expect("comparison serializes")
        )?;
    } else {
        let stages = ["ingest", "split", "transform", "train", "evaluate", "total"];
        write!(stdout, "{:<9}", "backend")?;
        for stage in stages {
            write!(stdout, " {stage:>9}")?;
        }
        writeln!(stdout, " {:>10} {:>11}  device", "samples/s", "max |Δ|")?;
        for run in &comparison.runs {
            write!(stdout, "{:<9}", run.backend)?;
            for stage in stages {
                let seconds = run.timings.get(stage).copied().unwrap_or(f64::NAN);
                write!(stdout, " {seconds:>8.3}s")?;
            }
            writeln!(
                stdout,
                " {:>10.0} {:>11.2e}  {}",
                run.samples_per_second, run.max_abs_diff, run.device.name
            )?;
        }
        let metrics: Vec<&String> = comparison
            .runs
            .first()
            .map(|r| r.metrics.keys().collect())
            .unwrap_or_default();
        write!(stdout, "\n{:<20}", "test metric")?;
        for run in &comparison.runs {
            write!(stdout, " {:>10}", run.backend.name())?;
        }
        writeln!(stdout)?;
        for metric in metrics {
            write!(stdout, "{metric:<20}")?;
            for run in &comparison.runs {
                let value = run.metrics.get(metric).copied().unwrap_or(f64::NAN);
                write!(stdout, " {value:>10.4}")?;
            }
            writeln!(stdout)?;
        }
    }
    if comparison.failures.is_empty() {
        Ok(())
    } else {
        Err(kiln_pipeline::Error::BackendsDisagree {
            tolerance: comparison.tolerance,
            failures: comparison.failures,
        })
    }
}
