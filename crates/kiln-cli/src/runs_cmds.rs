//! `kiln reproduce`, `kiln runs ...` and `kiln cache ...`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use kiln_core::BackendKind;
use kiln_core::hash::short;
use kiln_pipeline::cache::{DEFAULT_CACHE_BYTES, StageCache};
use kiln_pipeline::tracking::{RunInfo, compare_runs, export_mlflow, flat_config, list_runs};
use kiln_pipeline::{Error, Manifest, Result};

/// Where the stage cache lives: `--cache-dir`, else `$KILN_CACHE_DIR`, else `<runs>/.kiln-cache`.
pub(crate) fn cache_dir(runs: &Path, flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("KILN_CACHE_DIR").map(PathBuf::from))
        .unwrap_or_else(|| StageCache::in_runs_dir(runs).dir().to_path_buf())
}

/// The cache `kiln train` uses, or none with `--no-cache`.
pub(crate) fn train_cache(
    runs: &Path,
    flag: Option<PathBuf>,
    max_mib: Option<u64>,
    disabled: bool,
) -> Option<StageCache> {
    (!disabled).then(|| {
        StageCache::new(
            cache_dir(runs, flag),
            max_mib.map_or(DEFAULT_CACHE_BYTES, |m| m.saturating_mul(1 << 20)),
        )
    })
}

/// `kiln cache`.
#[derive(Debug, Subcommand)]
pub(crate) enum CacheAction {
    /// List the cached stage outputs, least recently used first.
    Ls {
        #[command(flatten)]
        location: CacheLocation,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove every cached stage output.
    Clear {
        #[command(flatten)]
        location: CacheLocation,
    },
}

/// Which cache: `--cache-dir`, `$KILN_CACHE_DIR`, or the one under `--runs`.
#[derive(Debug, clap::Args)]
pub(crate) struct CacheLocation {
    /// The runs directory whose cache to use.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// The cache directory itself.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

pub(crate) fn cache(action: CacheAction) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match action {
        CacheAction::Ls { location, json } => {
            let cache = StageCache::new(cache_dir(&location.runs, location.cache_dir), 0);
            let entries = cache.entries()?;
            if json {
                writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(&entries).expect("entries serialize")
                )?;
                return Ok(());
            }
            writeln!(stdout, "cache     {}", cache.dir().display())?;
            writeln!(
                stdout,
                "{:<10} {:<16} {:>12} {:>12}",
                "stage", "key", "bytes", "last used"
            )?;
            for entry in &entries {
                writeln!(
                    stdout,
                    "{:<10} {:<16} {:>12} {:>12}",
                    entry.stage,
                    &entry.key[..16.min(entry.key.len())],
                    entry.bytes,
                    ago(entry.last_used)
                )?;
            }
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            writeln!(stdout, "{} entries, {total} bytes", entries.len())?;
        }
        CacheAction::Clear { location } => {
            let cache = StageCache::new(cache_dir(&location.runs, location.cache_dir), 0);
            let removed = cache.clear()?;
            writeln!(
                stdout,
                "removed {removed} entries from {}",
                cache.dir().display()
            )?;
        }
    }
    Ok(())
}

/// How long ago a Unix time (seconds) was, roughly.
fn ago(secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let delta = now.saturating_sub(secs);
    match delta {
        0..60 => format!("{delta}s ago"),
        60..3600 => format!("{}m ago", delta / 60),
        3600..86_400 => format!("{}h ago", delta / 3600),
        _ => format!("{}d ago", delta / 86_400),
    }
}

pub(crate) fn reproduce(
    run: &Path,
    backend: Option<BackendKind>,
    out: Option<&Path>,
    json: bool,
) -> Result<()> {
    let found = kiln_pipeline::reproduce(run, backend, out)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        let text = serde_json::json!({ "reproduced": found.reproduced(), "report": found });
        writeln!(stdout, "{text:#}")?;
    } else {
        writeln!(
            stdout,
            "run       {} (re-run on {})",
            run.display(),
            found.backend
        )?;
        for check in &found.checks {
            let mark = if check.agrees { "ok  " } else { "DIFF" };
            if check.agrees {
                writeln!(stdout, "  {mark} {}", check.what)?;
            } else {
                writeln!(
                    stdout,
                    "  {mark} {}: {} then, {} now",
                    check.what, check.then, check.now
                )?;
            }
        }
        for input in &found.changed_inputs {
            writeln!(stdout, "  input changed: {input}")?;
        }
        if let Some(rerun) = &found.rerun {
            writeln!(stdout, "re-run    {}", rerun.display())?;
        }
    }
    if found.reproduced() {
        return Ok(());
    }
    let mut differences: Vec<String> = found
        .checks
        .iter()
        .filter(|c| !c.agrees)
        .map(|c| format!("{} differs", c.what))
        .collect();
    if found.changed_inputs.is_empty() {
        differences.push("no recorded input changed".into());
    } else {
        differences.push(format!("changed: {}", found.changed_inputs.join(", ")));
    }
    Err(Error::NotReproduced {
        run: run.to_path_buf(),
        differences,
    })
}

/// `kiln runs`.
#[derive(Debug, Subcommand)]
pub(crate) enum RunsAction {
    /// A table of the runs under a runs directory: status, model, key parameters, metrics,
    /// duration.
    List {
        /// The runs directory.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One run's provenance, stages, metrics and timings.
    Show {
        /// The run directory.
        run: PathBuf,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Config differences and metric deltas between runs (the first is the reference).
    Compare {
        /// Two or more run directories.
        #[arg(num_args = 2.., required = true)]
        runs: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the runs in MLflow's file-store layout (`mlflow ui --backend-store-uri DIR`).
    Export {
        /// The new MLflow store directory.
        #[arg(long, value_name = "DIR")]
        mlflow: PathBuf,
        /// The runs directory.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
    },
}

/// The parameters `kiln runs list` shows for every run.
const KEY_PARAMS: [&str; 4] = ["model.kind", "train.optimizer", "train.lr", "train.epochs"];

/// The metric `kiln runs list` shows: the first test metric.
fn headline(m: &Manifest) -> String {
    m.metrics
        .get("test")
        .or_else(|| m.metrics.get("valid"))
        .and_then(|metrics| metrics.iter().next())
        .map_or_else(|| "-".into(), |(k, v)| format!("{k} {v:.4}"))
}

pub(crate) fn runs(action: RunsAction) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match action {
        RunsAction::List { runs, json } => {
            let found = list_runs(&runs)?;
            if json {
                let rows: Vec<serde_json::Value> = found
                    .iter()
                    .map(|r| serde_json::json!({ "run": r.dir, "manifest": r.manifest }))
                    .collect();
                writeln!(stdout, "{}", serde_json::Value::from(rows))?;
                return Ok(());
            }
            writeln!(
                stdout,
                "{:<28} {:<14} {:<8} {:<8} {:<10} {:>9} {:>7} {:<26} {:>8}",
                "run", "status", "backend", "model", "optimizer", "lr", "epochs", "test", "seconds"
            )?;
            for run in &found {
                let m = &run.manifest;
                let params = flat_config(m);
                let param = |k: &str| params.get(k).cloned().unwrap_or_else(|| "-".into());
                let status = serde_json::to_value(m.status).expect("status serializes");
                writeln!(
                    stdout,
                    "{:<28} {:<14} {:<8} {:<8} {:<10} {:>9} {:>7} {:<26} {:>8.1}",
                    run.name(),
                    status["kind"].as_str().unwrap_or("?"),
                    m.device.backend,
                    param(KEY_PARAMS[0]),
                    param(KEY_PARAMS[1]),
                    param(KEY_PARAMS[2]),
                    format!("{}/{}", m.epochs_run, param(KEY_PARAMS[3])),
                    headline(m),
                    m.timings.get("total").copied().unwrap_or(f64::NAN)
                )?;
            }
            writeln!(stdout, "{} runs under {}", found.len(), runs.display())?;
        }
        RunsAction::Show { run, json } => {
            let info = RunInfo::load(&run)?;
            let m = &info.manifest;
            if json {
                writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(m).expect("manifest serializes")
                )?;
                return Ok(());
            }
            writeln!(stdout, "run       {}", info.dir.display())?;
            writeln!(
                stdout,
                "pipeline  {} ({}), config {}",
                m.name,
                m.config_path.display(),
                short(&m.config_hash)
            )?;
            for input in &m.inputs {
                writeln!(
                    stdout,
                    "input     {} ({} bytes, blake3 {})",
                    input.path.display(),
                    input.hash.bytes,
                    short(&input.hash.blake3)
                )?;
            }
            writeln!(
                stdout,
                "backend   {} on {} ({:?})",
                m.device.backend, m.device.name, m.precision
            )?;
            writeln!(
                stdout,
                "host      {} ({} threads, {})",
                m.host.cpu, m.host.threads, m.host.os
            )?;
            writeln!(
                stdout,
                "versions  kiln {}, burn {}, Cargo.lock {}",
                m.kiln_version,
                m.burn_version,
                short(&m.cargo_lock)
            )?;
            if let Some(git) = &m.git {
                writeln!(
                    stdout,
                    "git       {}{}",
                    git.revision,
                    if git.dirty { " (dirty)" } else { "" }
                )?;
            }
            writeln!(stdout, "seed      {}", m.seed)?;
            writeln!(stdout, "stages    {}", stages_line(m))?;
            writeln!(
                stdout,
                "model     {} ({} parameters, hash {})",
                m.model.kind,
                m.parameters,
                short(&m.parameter_hash)
            )?;
            writeln!(
                stdout,
                "train     {} epochs, best {}, {:.0} samples/s",
                m.epochs_run, m.best_epoch, m.samples_per_second
            )?;
            for (split, metrics) in &m.metrics {
                for (name, value) in metrics {
                    writeln!(stdout, "  {split:<6} {name:<20} {value:.4}")?;
                }
            }
            let timings: Vec<String> = m
                .timings
                .iter()
                .map(|(k, v)| format!("{k} {v:.2}s"))
                .collect();
            writeln!(stdout, "timings   {}", timings.join(", "))?;
        }
        RunsAction::Compare { runs, json } => {
            let infos = runs
                .iter()
                .map(|r| RunInfo::load(r))
                .collect::<Result<Vec<_>>>()?;
            let comparison = compare_runs(&infos);
            if json {
                writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(&comparison).expect("comparison serializes")
                )?;
                return Ok(());
            }
            write!(stdout, "{:<30}", "")?;
            for name in &comparison.runs {
                write!(stdout, " {name:>24}")?;
            }
            writeln!(stdout)?;
            writeln!(stdout, "config (keys that differ)")?;
            for (key, values) in &comparison.config_diff {
                write!(stdout, "  {key:<28}")?;
                for value in values {
                    write!(stdout, " {:>24}", value.as_deref().unwrap_or("-"))?;
                }
                writeln!(stdout)?;
            }
            writeln!(stdout, "metrics (Δ against the first run)")?;
            for (key, values) in &comparison.metrics {
                write!(stdout, "  {key:<28}")?;
                for (i, value) in values.iter().enumerate() {
                    if i == 0 {
                        write!(stdout, " {value:>24.4}")?;
                    } else {
                        write!(
                            stdout,
                            " {:>24}",
                            format!("{value:.4} ({:+.4})", value - values[0])
                        )?;
                    }
                }
                writeln!(stdout)?;
            }
            write!(stdout, "  {:<28}", "seconds")?;
            for value in &comparison.seconds {
                write!(stdout, " {value:>24.1}")?;
            }
            writeln!(stdout)?;
        }
        RunsAction::Export { mlflow, runs } => {
            let found = list_runs(&runs)?;
            let export = export_mlflow(&found, &mlflow)?;
            writeln!(
                stdout,
                "wrote {} runs in {} experiments to {} (MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {})",
                export.runs,
                export.experiments.len(),
                export.root.display(),
                export.root.display()
            )?;
        }
    }
    Ok(())
}

/// `ingest cached, validate cached, split ran, ...`.
pub(crate) fn stages_line(m: &Manifest) -> String {
    kiln_pipeline::STAGES
        .iter()
        .filter_map(|stage| {
            let record = m.stages.get(*stage)?;
            Some(format!(
                "{stage} {}",
                if record.cached { "cached" } else { "ran" }
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
