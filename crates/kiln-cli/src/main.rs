//! The `kiln` binary: a thin clap layer over kiln-pipeline.

mod backends_cmd;
mod data_cmds;
mod export_cmd;
mod inspect_cmd;
mod nodes_cmd;
mod runs_cmds;
mod serve_cmds;
mod sweep_cmd;

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kiln_core::BackendKind;
use kiln_pipeline::{AnyPredictor, Observer, PipelineConfig, TrainOptions, ValidPipelineConfig};
use kiln_serve::ServeOptions;

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
        /// The pipeline file (optional with --resume: the run's own config is used).
        #[arg(required_unless_present = "resume")]
        pipeline: Option<PathBuf>,
        /// Continue an interrupted run (or any run's checkpoint) bit-exactly.
        #[arg(long, value_name = "RUN")]
        resume: Option<PathBuf>,
        /// Fit the transforms and print the model summary, without training.
        #[arg(long)]
        dry_run: bool,
        /// Where to compute: ndarray, flex, wgpu, cuda (builds with `--features cuda`), or auto
        /// (a GPU when there is one, else the faster CPU backend).
        #[arg(long, default_value = "ndarray", value_parser = parse_backend)]
        backend: BackendKind,
        /// Parent directory of the new run directory.
        #[arg(long, default_value = "runs")]
        out: PathBuf,
        /// Overrides `[pipeline] seed`.
        #[arg(long)]
        seed: Option<u64>,
        /// Overrides `[train] devices`: data-parallel replicas at `batch_size` rows each (the
        /// one CPU shared on ndarray and flex, GPUs 0..N on wgpu and cuda).
        #[arg(
            long,
            value_name = "N",
            value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
        )]
        devices: Option<usize>,
        /// Reads this data file instead of `[data] source`.
        #[arg(long, value_name = "FILE")]
        data: Option<PathBuf>,
        /// Overrides `[data] memory_budget_mib`: a data file estimated larger streams in
        /// chunks, in about this much memory.
        #[arg(
            long,
            value_name = "N",
            value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..)
        )]
        memory_budget_mib: Option<u64>,
        /// JSON lines on stdout (one per epoch, then the run) instead of a bar and a summary.
        #[arg(long)]
        json: bool,
        /// Run every data stage, neither reading nor writing the stage cache.
        #[arg(long)]
        no_cache: bool,
        /// The stage cache (default `$KILN_CACHE_DIR`, else `.kiln-cache` in --out).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// The stage cache's size limit in MiB (least recently used entries go past it).
        #[arg(long, value_name = "MIB")]
        cache_max_mib: Option<u64>,
        #[command(flatten)]
        nodes: nodes_cmd::NodeArgs,
    },
    /// Re-run a run from its manifest and compare: exact metrics and parameter hash on CPU
    /// backends, metrics within 1e-3 on GPUs; names the inputs that changed. Exit code 1 on a
    /// mismatch.
    Reproduce {
        /// The run directory.
        run: PathBuf,
        /// Re-run on this backend instead of the recorded one.
        #[arg(long, value_parser = parse_backend)]
        backend: Option<BackendKind>,
        /// Keep the re-run under this directory (default: a temporary one, removed).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the comparison as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Track runs: list, show, compare, export to MLflow.
    Runs {
        #[command(subcommand)]
        action: runs_cmds::RunsAction,
    },
    /// The stage cache: list or clear it.
    Cache {
        #[command(subcommand)]
        action: runs_cmds::CacheAction,
    },
    /// Predict every row of a CSV file with a bundle.
    Predict {
        /// A run's bundle directory, or a .kiln file from `kiln export`.
        bundle: PathBuf,
        /// Input data, any format kiln reads (the target column may be absent). CSV streams:
        /// memory holds one chunk of rows, whatever the file's size.
        input: PathBuf,
        /// Output CSV, written whole or not at all (standard output when absent).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Rows read, predicted and written at a time.
        #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(1..))]
        chunk_rows: u64,
        /// Where to compute: ndarray, flex, wgpu, cuda (builds with `--features cuda`), or auto
        /// (a GPU when there is one, else the faster CPU backend).
        #[arg(long, default_value = "ndarray", value_parser = parse_backend)]
        backend: BackendKind,
    },
    /// Serve a bundle over HTTP: POST /v1/predict, GET /v1/health, /v1/ready, /v1/metadata and
    /// /metrics. SIGHUP or POST /v1/admin/reload (loopback only) reloads the bundle;
    /// SIGTERM or SIGINT stops accepting, drains in-flight requests and exits 0.
    Serve {
        /// A run's bundle directory, or a .kiln file from `kiln export`.
        bundle: PathBuf,
        /// Address to listen on (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Where to compute: ndarray, flex, wgpu, cuda (builds with `--features cuda`), or auto
        /// (a GPU when there is one, else the faster CPU backend).
        #[arg(long, default_value = "ndarray", value_parser = parse_backend)]
        backend: BackendKind,
        /// Most rows per model call.
        #[arg(long, default_value_t = ServeOptions::default().max_batch)]
        max_batch: usize,
        /// How long a request waits for others to share its model call, in microseconds.
        #[arg(long, default_value_t = ServeOptions::default().max_wait_us)]
        max_wait_us: u64,
        /// Per-request time limit, in milliseconds (504 past it).
        #[arg(long, default_value_t = ServeOptions::default().timeout_ms)]
        timeout_ms: u64,
        /// Largest request body, in bytes (413 past it).
        #[arg(long, default_value_t = ServeOptions::default().body_limit)]
        body_limit: usize,
        /// Most requests waiting for the model (503 past it).
        #[arg(long, default_value_t = ServeOptions::default().queue)]
        queue: usize,
    },
    /// Compare a data file with a bundle's training statistics, per feature: PSI and
    /// Kolmogorov-Smirnov (numeric), PSI and chi-square (categorical). Exit code 1 when a
    /// feature crosses a `[drift]` threshold.
    Drift {
        /// A run's bundle directory, or a .kiln file from `kiln export`.
        bundle: PathBuf,
        /// The new data (any format the bundle's data could be).
        data: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Also write the report as an HTML page.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Score a bundle on a labelled CSV file.
    Evaluate {
        /// A run's bundle directory, or a .kiln file from `kiln export`.
        bundle: PathBuf,
        /// Labelled CSV; rows without a target are skipped.
        data: PathBuf,
        /// Where to compute: ndarray, flex, wgpu, cuda (builds with `--features cuda`), or auto
        /// (a GPU when there is one, else the faster CPU backend).
        #[arg(long, default_value = "ndarray", value_parser = parse_backend)]
        backend: BackendKind,
        /// Print the metrics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a pipeline's data against its `[validate]` rules (exit code 1 when an error rule
    /// fails).
    Validate {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Reads this data file instead of `[data] source`.
        #[arg(long, value_name = "FILE")]
        data: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Statistics of every column of a data file: counts, moments, quantiles, top values,
    /// histograms.
    Stats {
        #[command(flatten)]
        data: data_cmds::DataArgs,
        /// Print the statistics as JSON (the layout of a run's stats.json).
        #[arg(long)]
        json: bool,
    },
    /// Print a data file's inferred schema as a `[data.columns]` table for pipeline.toml.
    Schema {
        #[command(flatten)]
        data: data_cmds::DataArgs,
    },
    /// Pack a run's bundle into one .kiln file: the bundle's files and a manifest of their
    /// sizes and blake3 checksums. predict, evaluate, serve, drift and inspect load it as they
    /// load the bundle directory, after verifying it.
    Export {
        /// A run directory or its bundle directory.
        run: PathBuf,
        /// The file to write, atomically [default: <pipeline name>.kiln in the current
        /// directory].
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print a bundle's fitted transforms: per column the kind, output width and learned
    /// parameters; then the target encoding.
    Inspect {
        /// A run's bundle directory, or a .kiln file from `kiln export`.
        bundle: PathBuf,
        /// Print the fitted state as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a run's report: one self-contained HTML page with learning curves, metrics,
    /// confusion matrix, ROC, precision-recall and calibration (classification) or residuals
    /// (regression), permutation feature importance and feature statistics. Needs the run's
    /// data file, for the test-split charts.
    Report {
        /// The run directory.
        run: PathBuf,
        /// The HTML file to write, atomically [default: <run>/report.html].
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Where to predict the test split: ndarray, flex, wgpu, cuda (builds with `--features
        /// cuda`), or auto (a GPU when there is one, else the faster CPU backend).
        #[arg(long, default_value = "ndarray", value_parser = parse_backend)]
        backend: BackendKind,
    },
    /// List the compiled-in backends and the device each sees.
    Backends {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Train one pipeline on several backends and compare stages, speed, metrics and
    /// predictions; exit code 1 when a test metric differs beyond the tolerance.
    CompareBackends {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Comma-separated backends; the first is the reference.
        #[arg(long, value_delimiter = ',', default_value = "ndarray,flex,wgpu", value_parser = parse_backend)]
        backends: Vec<BackendKind>,
        /// Largest absolute difference of a test metric from the reference backend's.
        #[arg(long, default_value_t = kiln_pipeline::DEFAULT_METRIC_TOLERANCE)]
        tolerance: f64,
        /// Parent directory of the run directories.
        #[arg(long, default_value = "runs")]
        out: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the pipeline's `[sweep]`: grid, random or successive-halving search over pipeline
    /// keys, each trial scored by k-fold cross-validation; writes a leaderboard and best.toml.
    /// Run it again to continue a sweep that was stopped.
    Sweep {
        /// The pipeline file, with a `[sweep]` section.
        pipeline: PathBuf,
        /// Parent directory of the sweep directory (`<pipeline name>-sweep`).
        #[arg(long, default_value = "runs")]
        out: PathBuf,
        /// Runs trained at once (overrides `[sweep] workers`).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        workers: Option<u64>,
        /// Where to compute: ndarray, flex, wgpu, cuda (builds with `--features cuda`), or auto
        /// (a GPU when there is one, else the faster CPU backend).
        #[arg(long, default_value = "ndarray", value_parser = parse_backend)]
        backend: BackendKind,
        /// JSON lines on stdout (one per run, then the sweep) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn parse_backend(name: &str) -> Result<BackendKind, String> {
    BackendKind::resolve(name).map_err(|e: kiln_core::Error| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Serve {
        bundle,
        addr,
        backend,
        max_batch,
        max_wait_us,
        timeout_ms,
        body_limit,
        queue,
    } = cli.command
    {
        let options = ServeOptions {
            addr,
            backend,
            max_batch,
            max_wait_us,
            timeout_ms,
            body_limit,
            queue,
        };
        return match serve_cmds::serve(bundle, options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        };
    }
    // Every other command computes on this thread: one of the pool's threads then (serve's
    // thread waits in its async runtime instead, and its model runs on a pool of its own).
    kiln_core::backend::join_compute_pool();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(command: Command) -> kiln_pipeline::Result<()> {
    match command {
        Command::Train {
            pipeline,
            resume,
            dry_run,
            backend,
            out,
            seed,
            devices,
            data,
            memory_budget_mib,
            json,
            no_cache,
            cache_dir,
            cache_max_mib,
            nodes,
        } => {
            let mut config = match (&pipeline, &resume) {
                (Some(path), _) => PipelineConfig::load(path)?,
                (None, Some(run)) => kiln_pipeline::resume_config(run)?,
                (None, None) => unreachable!("clap requires the pipeline unless --resume is given"),
            };
            if let Some(seed) = seed {
                config.set_seed(seed);
            }
            if let Some(devices) = devices {
                config.set_devices(devices);
            }
            if let Some(data) = data {
                config.set_source(data);
            }
            if let Some(mib) = memory_budget_mib {
                config.set_memory_budget_mib(mib);
            }
            if dry_run {
                return print_dry_run(&config, json);
            }
            let group = nodes.join()?;
            // Nodes after the first stage their run in a scratch directory and keep nothing;
            // they share node 0's stage cache.
            let scratch = group
                .as_ref()
                .filter(|g| g.0.rank() != 0)
                .map(nodes_cmd::scratch_out)
                .transpose()?;
            let run_out = scratch
                .as_ref()
                .map_or(out.clone(), |d| d.path().to_path_buf());
            let options = TrainOptions {
                resume,
                stop: Some(sigint_flag()),
                cache: runs_cmds::train_cache(&out, cache_dir, cache_max_mib, no_cache),
                command: std::env::args().collect(),
                nodes: group,
                ..TrainOptions::new(backend, run_out)
            };
            train(&config, &options, json)
        }
        Command::Predict {
            bundle,
            input,
            output,
            chunk_rows,
            backend,
        } => predict(
            &bundle,
            &input,
            output.as_deref(),
            usize::try_from(chunk_rows).unwrap_or(usize::MAX),
            backend,
        ),
        Command::Evaluate {
            bundle,
            data,
            backend,
            json,
        } => evaluate(&bundle, &data, backend, json),
        Command::Serve { .. } => unreachable!("main serves before dispatching"),
        Command::Drift {
            bundle,
            data,
            json,
            html,
        } => serve_cmds::drift(&bundle, &data, json, html.as_deref()),
        Command::Validate {
            pipeline,
            data,
            json,
        } => data_cmds::validate(&pipeline, data, json),
        Command::Stats { data, json } => data_cmds::stats(&data, json),
        Command::Schema { data } => data_cmds::schema(&data),
        Command::Inspect { bundle, json } => inspect_cmd::inspect(&bundle, json),
        Command::Export { run, output } => export_cmd::export(&run, output.as_deref()),
        Command::Report {
            run,
            output,
            backend,
        } => {
            let path = kiln_pipeline::report(&run, backend, output.as_deref())?;
            writeln!(std::io::stdout().lock(), "{}", path.display())?;
            Ok(())
        }
        Command::Backends { json } => backends_cmd::list(json),
        Command::Reproduce {
            run,
            backend,
            out,
            json,
        } => runs_cmds::reproduce(&run, backend, out.as_deref(), json),
        Command::Runs { action } => runs_cmds::runs(action),
        Command::Cache { action } => runs_cmds::cache(action),
        Command::CompareBackends {
            pipeline,
            backends,
            tolerance,
            out,
            json,
        } => backends_cmd::compare(&pipeline, &backends, tolerance, &out, json),
        Command::Sweep {
            pipeline,
            out,
            workers,
            backend,
            json,
        } => sweep_cmd::sweep(
            &pipeline,
            out,
            workers.map(|w| usize::try_from(w).unwrap_or(usize::MAX)),
            backend,
            json,
        ),
    }
}

/// A flag the first SIGINT sets (the loop then finishes its step and checkpoints); a second
/// SIGINT exits at once.
fn sigint_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = Arc::clone(&flag);
    // If no handler can be installed, Ctrl-C keeps its default: the process ends at once.
    let _ = ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C means "now": nothing is half-written, outputs are atomic.
            #[allow(clippy::exit)]
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: finishing the current step, writing a checkpoint (Ctrl-C again aborts)"
        );
    });
    flag
}

fn print_dry_run(config: &ValidPipelineConfig, json: bool) -> kiln_pipeline::Result<()> {
    let plan = kiln_pipeline::dry_run(config)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(
            stdout,
            "{}",
            serde_json::to_string(&plan).expect("dry run serializes")
        )?;
        return Ok(());
    }
    writeln!(stdout, "model      {} ({:?})", plan.model.kind, plan.task)?;
    writeln!(
        stdout,
        "  {:<56} {:>14} {:>11}",
        "layer", "output", "parameters"
    )?;
    for layer in &plan.layers {
        let shape: Vec<String> = layer.output.iter().map(ToString::to_string).collect();
        writeln!(
            stdout,
            "  {:<56} {:>14} {:>11}",
            layer.layer,
            format!("[{}]", shape.join(", ")),
            layer.params
        )?;
    }
    writeln!(stdout, "parameters {}", plan.parameters)?;
    writeln!(stdout, "inputs     {}", plan.features.join(", "))?;
    let splits: Vec<String> = plan
        .splits
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    writeln!(stdout, "rows       {}", splits.join(", "))?;
    Ok(())
}

/// How training progress is shown.
enum Display {
    /// JSON lines on stdout.
    Json,
    /// An indicatif bar on the terminal's stderr.
    Bar(ProgressBar),
    /// Epoch JSON lines on stderr (logs, CI).
    Log,
}

fn train(
    config: &ValidPipelineConfig,
    options: &TrainOptions,
    json: bool,
) -> kiln_pipeline::Result<()> {
    let epochs = config.raw().train.epochs;
    let batch_size = config.raw().train.batch_size as u64;
    let rank = options.nodes.as_ref().map_or(0, |g| g.0.rank());
    if rank != 0 {
        // Node 0 shows the progress; this node reports that it took part.
        let m = kiln_pipeline::train(config, options, Observer::default())?.manifest;
        eprintln!(
            "node {rank} of {}: trained {} epochs; weights equal node 0's (parameter hash {})",
            m.nodes,
            m.epochs_run,
            kiln_core::hash::short(&m.parameter_hash)
        );
        return Ok(());
    }
    let display = if json {
        Display::Json
    } else if std::io::stderr().is_terminal() {
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {human_pos}/{human_len} rows {per_sec} eta {eta} {msg}",
        )
        .expect("static template")
        .progress_chars("=> ");
        Display::Bar(ProgressBar::new(0).with_style(style))
    } else {
        Display::Log
    };
    let epoch_line = |stats: &kiln_train::EpochStats| serde_json::json!({ "event": "epoch", "epochs": epochs, "stats": stats });
    let mut on_epoch = |stats: &kiln_train::EpochStats| match &display {
        Display::Json => println!("{}", epoch_line(stats)),
        Display::Log => eprintln!("{}", epoch_line(stats)),
        Display::Bar(bar) => {
            let mut message = format!("loss {:.4} valid {:.4}", stats.train_loss, stats.valid_loss);
            if let Some(accuracy) = stats.valid_metrics.get("accuracy") {
                let _ = write!(message, " acc {accuracy:.4}");
            }
            bar.set_message(message);
        }
    };
    let mut on_step = |p: kiln_train::StepProgress| {
        if let Display::Bar(bar) = &display {
            // Positions count rows (the last batch may be short; the bar only estimates).
            let steps = (epochs * p.steps_per_epoch) as u64;
            bar.set_length(steps * batch_size);
            bar.set_position((((p.epoch - 1) * p.steps_per_epoch + p.step) as u64) * batch_size);
            bar.set_prefix(format!("epoch {}/{epochs}", p.epoch));
        }
    };
    let observer = Observer {
        on_epoch: Box::new(&mut on_epoch),
        on_step: Box::new(&mut on_step),
    };
    let result = kiln_pipeline::train(config, options, observer);
    if let Display::Bar(bar) = &display {
        bar.finish_and_clear();
    }
    let summary = result?;
    let m = &summary.manifest;
    let mut stdout = std::io::stdout().lock();
    if json {
        let text = serde_json::json!({ "event": "run", "run_dir": summary.run_dir, "manifest": m });
        writeln!(stdout, "{text}")?;
        return Ok(());
    }
    // Input width, then each layer's output (`16x14x14` for convolutions).
    let widths: Vec<String> = std::iter::once(m.model.inputs.to_string())
        .chain(
            m.model
                .summary()
                .iter()
                .filter(|l| !l.layer.starts_with("embedding"))
                .map(|l| {
                    l.output
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("x")
                }),
        )
        .collect();
    writeln!(stdout, "run       {}", summary.run_dir.display())?;
    let mut replicas = if m.devices > 1 {
        format!(", {} data-parallel devices", m.devices)
    } else {
        String::new()
    };
    if m.nodes > 1 {
        let _ = write!(replicas, ", {} nodes", m.nodes);
    }
    writeln!(
        stdout,
        "backend   {} on {}{replicas}",
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
    if let Some(s) = &m.streaming {
        writeln!(
            stdout,
            "streamed  {} MiB budget: {}-row chunks, {}-row shuffle buffer, {} passes",
            s.memory_budget_mib, s.chunk_rows, s.shuffle_rows, s.passes
        )?;
    } else {
        writeln!(stdout, "stages    {}", runs_cmds::stages_line(m))?;
    }
    writeln!(
        stdout,
        "train     {} epochs, best {}, {:.0} samples/s",
        m.epochs_run, m.best_epoch, m.samples_per_second
    )?;
    let keys: Vec<&String> = m
        .metrics
        .values()
        .next()
        .map(|f| f.keys().collect())
        .unwrap_or_default();
    write!(stdout, "{:<20}", "metric")?;
    for split in m.metrics.keys() {
        write!(stdout, " {split:>10}")?;
    }
    writeln!(stdout)?;
    for key in keys {
        write!(stdout, "  {key:<18}")?;
        for metrics in m.metrics.values() {
            write!(stdout, " {:>10.4}", metrics[key])?;
        }
        writeln!(stdout)?;
    }
    Ok(())
}

fn predict(
    bundle: &Path,
    input: &Path,
    output: Option<&Path>,
    chunk_rows: usize,
    backend: BackendKind,
) -> kiln_pipeline::Result<()> {
    let predictor = AnyPredictor::load(bundle, backend)?;
    if let Some(path) = output {
        let mut file = kiln_core::fsx::AtomicFile::create(path)?;
        predictor.predict_file(input, chunk_rows, &mut file)?;
        file.commit()?;
    } else {
        let stdout = std::io::BufWriter::new(std::io::stdout().lock());
        predictor.predict_file(input, chunk_rows, stdout)?;
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
    let scores = predictor.score(&table, &rows)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        let text = serde_json::json!({ "rows": rows.len(), "skipped_without_target": skipped, "metrics": scores.metrics, "confusion_matrix": scores.confusion });
        writeln!(stdout, "{text:#}")?;
    } else {
        writeln!(
            stdout,
            "rows      {} ({skipped} without a target skipped)",
            rows.len()
        )?;
        for (k, v) in &scores.metrics {
            writeln!(stdout, "{k:<18} {v:.4}")?;
        }
        if let Some(matrix) = &scores.confusion {
            writeln!(
                stdout,
                "confusion matrix (rows: true class, columns: predicted)"
            )?;
            for row in matrix {
                let cells: Vec<String> = row.iter().map(|n| format!("{n:>6}")).collect();
                writeln!(stdout, "  {}", cells.join(""))?;
            }
        }
    }
    Ok(())
}
