//! The `kiln` binary: a thin clap layer over kiln-pipeline.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kiln_core::BackendKind;
use kiln_pipeline::{AnyPredictor, PipelineConfig, TrainOptions};

/// kiln: one pipeline file from raw data to a trained, evaluated, servable model.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline: ingest, split, fit transforms, train, evaluate, write a run directory.
    Train {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Where to compute.
        #[arg(long, default_value = "ndarray", value_parser = parse_backend)]
        backend: BackendKind,
        /// Parent directory of the new run directory.
        #[arg(long, default_value = "runs")]
        out: PathBuf,
        /// Overrides `[pipeline] seed`.
        #[arg(long)]
        seed: Option<u64>,
        /// Print the manifest as JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Predict every row of a CSV file with a bundle.
    Predict {
        /// A run's bundle directory.
        bundle: PathBuf,
        /// Input CSV (the target column may be absent).
        input: PathBuf,
        /// Output CSV (standard output when absent).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Where to compute.
        #[arg(long, default_value = "ndarray", value_parser = parse_backend)]
        backend: BackendKind,
    },
    /// Score a bundle on a labelled CSV file.
    Evaluate {
        /// A run's bundle directory.
        bundle: PathBuf,
        /// Labelled CSV; rows without a target are skipped.
        data: PathBuf,
        /// Where to compute.
        #[arg(long, default_value = "ndarray", value_parser = parse_backend)]
        backend: BackendKind,
        /// Print the metrics as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_backend(name: &str) -> Result<BackendKind, String> {
    name.parse().map_err(|e: kiln_core::Error| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_input_error() { 2 } else { 1 })
        }
    }
}

fn run(command: Command) -> kiln_pipeline::Result<()> {
    match command {
        Command::Train {
            pipeline,
            backend,
            out,
            seed,
            json,
        } => train(&pipeline, backend, out, seed, json),
        Command::Predict {
            bundle,
            input,
            output,
            backend,
        } => predict(&bundle, &input, output.as_deref(), backend),
        Command::Evaluate {
            bundle,
            data,
            backend,
            json,
        } => evaluate(&bundle, &data, backend, json),
    }
}

fn train(
    pipeline: &Path,
    backend: BackendKind,
    out_dir: PathBuf,
    seed: Option<u64>,
    json: bool,
) -> kiln_pipeline::Result<()> {
    let mut config = PipelineConfig::load(pipeline)?;
    if let Some(seed) = seed {
        config.set_seed(seed);
    }
    let epochs = config.raw().train.epochs;
    let live = std::io::stderr().is_terminal();
    let summary = kiln_pipeline::train(&config, &TrainOptions { backend, out_dir }, |stats| {
        if live {
            let mut line = format!(
                "\repoch {:>4}/{epochs}  train_loss {:.4}  valid_loss {:.4}",
                stats.epoch, stats.train_loss, stats.valid_loss
            );
            for (name, value) in &stats.valid_metrics {
                let _ = write!(line, "  valid_{name} {value:.4}");
            }
            eprint!("{line}   ");
        }
    })?;
    if live {
        eprintln!();
    }
    let m = &summary.manifest;
    let mut stdout = std::io::stdout().lock();
    if json {
        let text = serde_json::json!({ "run_dir": summary.run_dir, "manifest": m });
        writeln!(stdout, "{text:#}")?;
        return Ok(());
    }
    let widths: Vec<String> = std::iter::once(m.model.inputs)
        .chain(m.model.hidden.iter().copied())
        .chain([m.model.outputs])
        .map(|w| w.to_string())
        .collect();
    writeln!(stdout, "run       {}", summary.run_dir.display())?;
    writeln!(
        stdout,
        "backend   {} on {}",
        m.device.backend, m.device.name
    )?;
    writeln!(
        stdout,
        "data      {}: {} rows (train {}, valid {}, test {})",
        m.data_path.display(),
        m.rows - m.rows_without_target,
        m.splits["train"].rows,
        m.splits["valid"].rows,
        m.splits["test"].rows
    )?;
    writeln!(
        stdout,
        "model     {} {} ({} parameters)",
        m.model.kind,
        widths.join("-"),
        m.parameters
    )?;
    writeln!(
        stdout,
        "train     {} epochs, best {}, {:.0} samples/s",
        m.epochs_run, m.best_epoch, m.samples_per_second
    )?;
    for (split, metrics) in &m.metrics {
        let line: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        writeln!(stdout, "{split:<9} {}", line.join("  "))?;
    }
    Ok(())
}

fn predict(
    bundle: &Path,
    input: &Path,
    output: Option<&Path>,
    backend: BackendKind,
) -> kiln_pipeline::Result<()> {
    let predictor = AnyPredictor::load(bundle, backend)?;
    let table = predictor.read(input)?;
    let rows: Vec<usize> = (0..table.n_rows()).collect();
    let predictions = predictor.predict(&table, &rows)?;
    let target = predictor.spec().target.name();
    match output {
        Some(path) => {
            let mut bytes = Vec::new();
            kiln_pipeline::write_predictions_csv(target, &predictions, &mut bytes)?;
            kiln_core::fsx::write_atomic(path, &bytes)?;
        }
        None => {
            kiln_pipeline::write_predictions_csv(target, &predictions, std::io::stdout().lock())?;
        }
    }
    Ok(())
}

fn evaluate(
    bundle: &Path,
    data: &Path,
    backend: BackendKind,
    json: bool,
) -> kiln_pipeline::Result<()> {
    let predictor = AnyPredictor::load(bundle, backend)?;
    let table = predictor.read(data)?;
    let target = table.require(predictor.spec().target.name())?;
    let rows: Vec<usize> = (0..table.n_rows())
        .filter(|&r| !target.is_null(r))
        .collect();
    let skipped = table.n_rows() - rows.len();
    let metrics = predictor.score(&table, &rows)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        let text = serde_json::json!({ "rows": rows.len(), "skipped_without_target": skipped, "metrics": metrics });
        writeln!(stdout, "{text:#}")?;
    } else {
        writeln!(
            stdout,
            "rows      {} ({skipped} without a target skipped)",
            rows.len()
        )?;
        for (k, v) in &metrics {
            writeln!(stdout, "{k:<9} {v:.4}")?;
        }
    }
    Ok(())
}
