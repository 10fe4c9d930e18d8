//! `kiln sweep`: hyperparameter search over any pipeline key, each trial scored by k-fold
//! cross-validation of the configured train + valid rows.
//!
//! A trial is the pipeline with some keys overridden (`model.hidden = [32]`); each of its
//! folds is a normal run directory. The output directory `<out>/<pipeline name>-sweep/` holds:
//!
//! ```text
//! state.json                   the sweep's hash and every finished run, rewritten atomically
//!                              after each one: a rerun skips what it lists
//! trial-003/pipeline.toml      the trial's pipeline (overrides applied, data.source absolute)
//! trial-003/fold-0/<name>-1/   a run directory per fold
//! trial-003/epochs-5/...       halving: a pipeline and its folds per epoch budget
//! leaderboard.json             trials ranked by the mean of the CV metric
//! best.toml                    the best trial's pipeline, runnable with `kiln train`
//! ```
//!
//! The runs checkpoint once, at the end, unless the pipeline sets `train.checkpoint_every`:
//! a run a killed sweep did not record is retrained from the start.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use kiln_core::BackendKind;
use kiln_train::{Mode, Task};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use toml::Value;

use crate::cache::StageCache;
use crate::config::PipelineConfig;
use crate::run::{CvFold, Observer, TrainOptions};
use crate::{ConfigError, Error, Result};

/// How trials are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepMethod {
    /// Every combination of the listed values.
    #[default]
    Grid,
    /// `trials` draws from the lists and distributions.
    Random,
    /// Successive halving: `trials` random draws trained for `min_epochs`, the best 1/`eta`
    /// of them for `eta` times as many, and so on up to `train.epochs`.
    Halving,
}

/// `[sweep]` in pipeline.toml; `kiln train` ignores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// `grid`, `random` or `halving`.
    #[serde(default)]
    pub method: SweepMethod,
    /// Dotted pipeline key → a list of values, or (random, halving) a distribution:
    /// `{ log_uniform = [lo, hi] }`, `{ uniform = [lo, hi] }`, `{ int_uniform = [lo, hi] }`.
    #[serde(default)]
    pub params: toml::Table,
    /// Trials to draw (random, halving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<usize>,
    /// Seed of the draws; the pipeline's seed when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The validation metric trials are ranked by; when absent, the `[train] early_stopping`
    /// metric if it is one, else accuracy (classification) or r2 (regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// `max` or `min`; from the metric's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Mode>,
    /// Cross-validation folds per trial (1: the configured valid split, no CV).
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Runs trained at once.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Halving: 1/`eta` of the trials go on to `eta` times the epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<usize>,
    /// Halving: the first rung's epochs; `train.epochs / eta²` (rounded up) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_epochs: Option<usize>,
}

fn default_folds() -> usize {
    3
}

fn default_workers() -> usize {
    1
}

const DEFAULT_ETA: usize = 3;
const DISTRIBUTIONS: [&str; 3] = ["log_uniform", "uniform", "int_uniform"];
const STATE_FILE: &str = "state.json";
const STATE_FORMAT: u32 = 1;

/// Where one swept key's values come from.
#[derive(Debug, Clone, PartialEq)]
enum Space {
    Values(Vec<Value>),
    LogUniform(f64, f64),
    Uniform(f64, f64),
    IntUniform(i64, i64),
}

impl Space {
    fn draw(&self, rng: &mut impl RngExt) -> Value {
        match self {
            Space::Values(values) => values[rng.random_range(0..values.len())].clone(),
            Space::LogUniform(lo, hi) => {
                let (a, b) = (lo.ln(), hi.ln());
                let u: f64 = rng.random();
                // exp(ln hi) may round past hi.
                Value::Float(u.mul_add(b - a, a).exp().clamp(*lo, *hi))
            }
            Space::Uniform(lo, hi) => Value::Float(rng.random::<f64>().mul_add(hi - lo, *lo)),
            Space::IntUniform(lo, hi) => Value::Integer(rng.random_range(*lo..=*hi)),
        }
    }

    /// Values that each check a key on its own: every listed value, or the bounds.
    fn probes(&self) -> Vec<Value> {
        match self {
            Space::Values(values) => values.clone(),
            Space::LogUniform(lo, hi) | Space::Uniform(lo, hi) => {
                vec![Value::Float(*lo), Value::Float(*hi)]
            }
            Space::IntUniform(lo, hi) => vec![Value::Integer(*lo), Value::Integer(*hi)],
        }
    }
}

/// One trial: the value of each swept key.
pub type Params = BTreeMap<String, Value>;

/// An epoch budget and the trials trained at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rung {
    /// `train.epochs` for the rung (halving), or the trials' own epochs.
    epochs: Option<usize>,
    /// Trials in the rung.
    trials: usize,
}

/// A checked sweep: every trial's pipeline is valid.
#[derive(Debug, Clone)]
pub struct Sweep {
    path: PathBuf,
    /// The pipeline as parsed, `[sweep]` included (what the hash covers).
    config: PipelineConfig,
    settings: SweepConfig,
    seed: u64,
    /// The pipeline file as a table, `[sweep]` removed, `data.source` absolute.
    base: toml::Table,
    source: PathBuf,
    trials: Vec<Params>,
    rungs: Vec<Rung>,
}

/// `kiln sweep`'s flags.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Where every run computes.
    pub backend: BackendKind,
    /// Parent of the sweep directory.
    pub out_dir: PathBuf,
    /// Overrides `[sweep] workers`.
    pub workers: Option<usize>,
    /// Set (by a SIGINT handler) to stop: runs in flight checkpoint, nothing new starts. The
    /// sweep sets it too when a run fails, to stop the others.
    pub stop: Option<Arc<AtomicBool>>,
    /// The stage cache every run shares (`None`: every stage runs).
    pub cache: Option<StageCache>,
    /// The command line that started the sweep, for each run's manifest.
    pub command: Vec<String>,
}

impl SweepOptions {
    /// Options for a sweep on `backend` under `out_dir`, with the stage cache where
    /// `kiln train --out <out_dir>` keeps it: trials that share data stages compute them once.
    pub fn new(backend: BackendKind, out_dir: impl Into<PathBuf>) -> Self {
        let out_dir = out_dir.into();
        Self {
            backend,
            cache: Some(StageCache::in_runs_dir(&out_dir)),
            out_dir,
            workers: None,
            stop: None,
            command: Vec::new(),
        }
    }
}

/// Progress of a sweep, reported as it happens (from the worker threads, one at a time).
#[derive(Debug, Clone, Copy)]
pub enum SweepEvent<'a> {
    /// Before any run.
    Started {
        /// The sweep directory.
        dir: &'a Path,
        /// Trials (of the first rung for halving).
        trials: usize,
        /// Runs the whole sweep trains.
        runs: usize,
        /// Of those, runs an earlier invocation finished: skipped.
        done: usize,
        /// Runs trained at once.
        workers: usize,
    },
    /// Halving: a rung starts.
    Rung {
        /// 0-based rung.
        index: usize,
        /// Its epoch budget.
        epochs: usize,
        /// The trials it trains.
        trials: &'a [usize],
    },
    /// A run finished and was recorded.
    Run {
        /// Its trial.
        trial: usize,
        /// Its fold.
        fold: usize,
        /// Epochs it was given.
        epochs: usize,
        /// The metric scored.
        metric: &'a str,
        /// The fold's validation score (none when undefined or diverged).
        score: Option<f64>,
        /// Training diverged.
        diverged: bool,
        /// The run directory.
        run_dir: &'a Path,
        /// Runs finished so far, this invocation and earlier ones.
        done: usize,
        /// Runs the whole sweep trains.
        runs: usize,
    },
}

/// One trial's result, a row of the leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// 1-based place.
    pub rank: usize,
    /// 0-based trial (its directory `trial-NNN`).
    pub trial: usize,
    /// The swept keys' values.
    pub params: Params,
    /// Epochs of the runs scored (halving: the highest rung the trial reached).
    pub epochs: usize,
    /// Mean of the fold scores (none if one is undefined).
    pub mean: Option<f64>,
    /// Their population standard deviation.
    pub std: Option<f64>,
    /// Per fold.
    pub scores: Vec<Option<f64>>,
    /// A fold diverged.
    pub diverged: bool,
    /// The runs, relative to the sweep directory.
    pub runs: Vec<PathBuf>,
}

/// A halving rung, as run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RungResult {
    /// Its epoch budget.
    pub epochs: usize,
    /// The trials it trained.
    pub trials: Vec<usize>,
}

/// leaderboard.json: the trials, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// Pipeline name.
    pub pipeline: String,
    /// How trials were chosen.
    pub method: SweepMethod,
    /// The validation metric.
    pub metric: String,
    /// Its better direction.
    pub direction: Mode,
    /// Folds per trial.
    pub folds: usize,
    /// Seed of the draws.
    pub seed: u64,
    /// Halving rungs (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rungs: Vec<RungResult>,
    /// Ranked trials.
    pub trials: Vec<TrialResult>,
}

/// What a sweep reports.
#[derive(Debug, Clone)]
pub struct SweepSummary {
    /// The sweep directory.
    pub dir: PathBuf,
    /// The ranking.
    pub leaderboard: Leaderboard,
    /// best.toml; none when no trial has a score.
    pub best: Option<PathBuf>,
    /// Runs trained by this invocation.
    pub runs_ran: usize,
    /// Runs an earlier invocation had finished.
    pub runs_skipped: usize,
    /// Trials with at least one run trained by this invocation.
    pub trials_ran: usize,
}

/// A finished run, as state.json records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunRecord {
    /// Relative to the sweep directory.
    run_dir: PathBuf,
    metric: String,
    score: Option<f64>,
    diverged: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    format: u32,
    hash: String,
    /// By `<unit>/fold-<k>`.
    runs: BTreeMap<String, RunRecord>,
}

/// One run to train: fold `fold` of trial `trial` at rung `rung`.
#[derive(Debug, Clone)]
struct Job {
    trial: usize,
    rung: usize,
    fold: usize,
    key: String,
}

impl Sweep {
    /// Reads a pipeline file with a `[sweep]` section; checks the sweep and the pipeline of
    /// every trial (at every halving budget).
    ///
    /// # Errors
    /// The pipeline's own [`ConfigError`]s; [`ConfigError::Sweep`] naming the `[sweep]` key
    /// (for a swept key, the value and what the pipeline refuses in it).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = fs_err::read_to_string(path)?;
        let config = PipelineConfig::parse(&text, path)?;
        let invalid = |key: &str, reason: String| ConfigError::Sweep {
            path: path.to_path_buf(),
            key: if key.is_empty() {
                "sweep".into()
            } else {
                format!("sweep.{key}")
            },
            reason,
        };
        let Some(settings) = config.sweep.clone() else {
            return Err(invalid(
                "",
                "is missing: add a `[sweep]` section with `[sweep.params]`".into(),
            ));
        };
        let checked = config.clone().check(path)?;
        let source = std::path::absolute(checked.source())?;
        let mut base: toml::Table =
            toml::from_str(&text).map_err(|e| ConfigError::from_toml(path, &text, &e))?;
        base.remove("sweep");
        let source_text = source.to_str().ok_or_else(|| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "data.source",
            reason: format!("`{}` is not valid UTF-8", source.display()),
        })?;
        set_key(
            &mut base,
            "data.source",
            Value::String(source_text.to_owned()),
        )
        .map_err(|reason| invalid("", reason))?;

        let params = parse_params(&settings, &invalid)?;
        let halving = settings.method == SweepMethod::Halving;
        let rules: [(bool, &str, &str); 6] = [
            (settings.folds >= 1, "folds", "must be at least 1"),
            (settings.workers >= 1, "workers", "must be at least 1"),
            (
                settings.method == SweepMethod::Grid || settings.trials.is_some(),
                "trials",
                "is needed for `random` and `halving` sweeps",
            ),
            (
                settings.trials.is_none_or(|n| n >= 1),
                "trials",
                "must be at least 1",
            ),
            (
                halving || (settings.eta.is_none() && settings.min_epochs.is_none()),
                if settings.eta.is_some() {
                    "eta"
                } else {
                    "min_epochs"
                },
                "applies to `halving` sweeps only",
            ),
            (
                settings.method != SweepMethod::Grid || settings.trials.is_none(),
                "trials",
                "does not apply to `grid` sweeps (every combination runs)",
            ),
        ];
        if let Some((_, key, reason)) = rules.into_iter().find(|(ok, _, _)| !ok) {
            return Err(invalid(key, reason.into()));
        }
        if let Some(metric) = &settings.metric {
            check_metric(metric, &config.evaluate.metrics).map_err(|r| invalid("metric", r))?;
        }
        let seed = settings.seed.unwrap_or(config.pipeline.seed);
        let epochs = config.train.epochs;
        let rungs = if halving {
            let eta = settings.eta.unwrap_or(DEFAULT_ETA);
            if eta < 2 {
                return Err(invalid("eta", "must be at least 2".into()));
            }
            if params.iter().any(|(key, _)| key == "train.epochs") {
                return Err(invalid(
                    "params.train.epochs",
                    "cannot be swept by `halving`, which sets the epochs itself".into(),
                ));
            }
            let min = settings
                .min_epochs
                .unwrap_or_else(|| epochs.div_ceil(eta * eta).max(1));
            if !(1..=epochs).contains(&min) {
                return Err(invalid(
                    "min_epochs",
                    format!("must be in 1..={epochs} (`train.epochs`), got {min}"),
                ));
            }
            halving_rungs(settings.trials.unwrap_or(1), min, epochs, eta)
        } else {
            let trials = settings.trials.unwrap_or(0);
            vec![Rung {
                epochs: None,
                trials: if settings.method == SweepMethod::Grid {
                    params.iter().map(|(_, s)| s.probes().len()).product()
                } else {
                    trials
                },
            }]
        };

        // Each key alone first, so a bad key or value is named precisely.
        for (key, space) in &params {
            for value in space.probes() {
                let trial = Params::from([(key.clone(), value.clone())]);
                trial_config(&base, &trial, None, path).map_err(|reason| {
                    invalid(
                        &format!("params.{key}"),
                        format!("= {value}: {reason}{}", distribution_hint(key)),
                    )
                })?;
            }
        }
        let trials = match settings.method {
            SweepMethod::Grid => grid(&params),
            SweepMethod::Random | SweepMethod::Halving => draw(
                &params,
                rungs[0].trials,
                &mut kiln_core::rng::stream(seed, "sweep"),
            ),
        };
        let sweep = Self {
            path: path.to_path_buf(),
            config,
            settings,
            seed,
            base,
            source,
            trials,
            rungs,
        };
        for (index, trial) in sweep.trials.iter().enumerate() {
            for rung in &sweep.rungs {
                trial_config(&sweep.base, trial, rung.epochs, path).map_err(|reason| {
                    invalid(
                        "params",
                        format!("trial {index} ({}): {reason}", describe(trial)),
                    )
                })?;
            }
        }
        Ok(sweep)
    }

    /// The trials, in order.
    pub fn trials(&self) -> &[Params] {
        &self.trials
    }

    /// Runs every trial not yet recorded in the sweep directory's state, then writes the
    /// leaderboard and best.toml.
    ///
    /// # Errors
    /// [`Error::BadSweep`] when the directory holds a sweep of another config, data file or
    /// backend, or another `kiln sweep` is using it; [`Error::SweepRun`] wrapping the error
    /// of a failed run (a diverged run is recorded, unscored, instead);
    /// [`Error::SweepInterrupted`] after a stop request.
    ///
    /// # Panics
    /// Only if a TOML table fails to serialize, which its types rule out.
    pub fn run(
        &self,
        options: &SweepOptions,
        on_event: &(dyn Fn(&SweepEvent<'_>) + Sync),
    ) -> Result<SweepSummary> {
        let dir = options
            .out_dir
            .join(format!("{}-sweep", self.config.pipeline.name));
        fs_err::create_dir_all(&dir)?;
        let lock = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))?;
        if lock.try_lock().is_err() {
            return Err(Error::BadSweep {
                path: dir,
                reason: "another `kiln sweep` is running in it".into(),
            });
        }
        let hash = self.hash(options.backend)?;
        let state_path = dir.join(STATE_FILE);
        let state = if state_path.is_file() {
            let state: State = crate::bundle::read_json(&state_path)?;
            if state.format != STATE_FORMAT || state.hash != hash {
                return Err(Error::BadSweep {
                    path: dir,
                    reason: format!(
                        "holds a sweep of another pipeline, `[sweep]` section, data file or \
                         backend (hash {} there, {hash} now); remove it or pass another --out",
                        state.hash
                    ),
                });
            }
            state
        } else {
            State {
                format: STATE_FORMAT,
                hash,
                runs: BTreeMap::new(),
            }
        };
        let workers = options.workers.unwrap_or(self.settings.workers).max(1);
        let folds = self.settings.folds;
        let runs: usize = self.rungs.iter().map(|r| r.trials * folds).sum();
        let done_before = state.runs.len();
        on_event(&SweepEvent::Started {
            dir: &dir,
            trials: self.rungs[0].trials,
            runs,
            done: done_before,
            workers,
        });
        let ctx = Context {
            dir: &dir,
            options,
            state: Mutex::new(state),
            state_path,
            stop: options.stop.clone().unwrap_or_default(),
            gate: RwLock::new(()),
            runs,
            ran: Mutex::new(BTreeSet::new()),
            on_event,
        };
        let mut entrants: Vec<usize> = (0..self.trials.len()).collect();
        let mut rungs = Vec::new();
        for (index, rung) in self.rungs.iter().enumerate() {
            if index > 0 {
                let keep = rung.trials;
                let scored = self.rung_scores(&ctx, index - 1, &entrants);
                entrants = promote(&scored, keep, self.direction(&ctx));
            }
            if let Some(epochs) = rung.epochs {
                on_event(&SweepEvent::Rung {
                    index,
                    epochs,
                    trials: &entrants,
                });
                rungs.push(RungResult {
                    epochs,
                    trials: entrants.clone(),
                });
            }
            self.run_rung(&ctx, index, &entrants, workers)?;
        }

        let leaderboard = self.leaderboard(&ctx, rungs);
        crate::bundle::write_json(&dir.join("leaderboard.json"), &leaderboard)?;
        let best = match leaderboard.trials.first() {
            Some(top) if top.mean.is_some() => {
                let path = dir.join("best.toml");
                let table = trial_table(&self.base, &self.trials[top.trial], None)
                    .expect("checked when loaded");
                let text = format!(
                    "# The best trial ({}) of `kiln sweep {}`: {} {:.4} ± {:.4} over {} fold(s).\n{}",
                    top.trial,
                    self.path.display(),
                    leaderboard.metric,
                    top.mean.unwrap_or_default(),
                    top.std.unwrap_or_default(),
                    folds,
                    toml::to_string(&table).expect("a TOML table serializes")
                );
                kiln_core::fsx::write_atomic(&path, text.as_bytes())?;
                Some(path)
            }
            _ => None,
        };
        let runs_ran = ctx.lock_state().runs.len() - done_before;
        let trials_ran = ctx.ran.lock().unwrap_or_else(PoisonError::into_inner).len();
        Ok(SweepSummary {
            dir,
            leaderboard,
            best,
            runs_ran,
            runs_skipped: done_before,
            trials_ran,
        })
    }

    /// Trains the not yet recorded folds of `entrants` at rung `rung` on `workers` threads.
    fn run_rung(
        &self,
        ctx: &Context<'_>,
        rung: usize,
        entrants: &[usize],
        workers: usize,
    ) -> Result<()> {
        let mut jobs = Vec::new();
        for &trial in entrants {
            let unit = self.unit(trial, rung);
            let pending: Vec<Job> = (0..self.settings.folds)
                .map(|fold| Job {
                    trial,
                    rung,
                    fold,
                    key: format!("{unit}/fold-{fold}"),
                })
                .filter(|job| !ctx.lock_state().runs.contains_key(&job.key))
                .collect();
            if pending.is_empty() {
                continue;
            }
            // Written before the workers start, so no two of them write it.
            let table = self.unit_table(trial, rung);
            let text = format!(
                "# Trial {trial} of `kiln sweep {}`: {}\n{}",
                self.path.display(),
                describe(&self.trials[trial]),
                toml::to_string(&table).expect("a TOML table serializes")
            );
            let unit_dir = ctx.dir.join(&unit);
            fs_err::create_dir_all(&unit_dir)?;
            kiln_core::fsx::write_atomic(&unit_dir.join("pipeline.toml"), text.as_bytes())?;
            jobs.extend(pending);
        }
        let next = AtomicUsize::new(0);
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..workers.min(jobs.len()) {
                scope.spawn(|| {
                    while !ctx.stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(job) = jobs.get(i) else { break };
                        if let Err(e) = self.run_job(ctx, job) {
                            // Stop the runs in flight (they checkpoint) and start no more.
                            ctx.stop.store(true, std::sync::atomic::Ordering::SeqCst);
                            if !matches!(e, Error::Interrupted { .. }) {
                                failure
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .get_or_insert(e);
                            }
                            break;
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
            return Err(e);
        }
        if ctx.stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::SweepInterrupted {
                dir: ctx.dir.to_path_buf(),
            });
        }
        Ok(())
    }

    /// Trains one fold and records it.
    fn run_job(&self, ctx: &Context<'_>, job: &Job) -> Result<()> {
        let unit_dir = ctx.dir.join(self.unit(job.trial, job.rung));
        let out = unit_dir.join(format!("fold-{}", job.fold));
        if out.exists() {
            // A run an earlier sweep started but did not record (killed midway).
            fs_err::remove_dir_all(&out)?;
        }
        let wrap = |source: Error| Error::SweepRun {
            trial: job.trial,
            run: job.key.clone(),
            source: Box::new(source),
        };
        let config: PipelineConfig = self
            .unit_table(job.trial, job.rung)
            .try_into()
            .expect("checked when loaded");
        let config = config
            .check(&unit_dir.join("pipeline.toml"))
            .map_err(|e| wrap(e.into()))?;
        let k = self.settings.folds;
        let options = TrainOptions {
            stop: Some(Arc::clone(&ctx.stop)),
            fold: (k > 1).then_some(CvFold { k, index: job.fold }),
            cache: ctx.options.cache.clone(),
            command: ctx.options.command.clone(),
            ..TrainOptions::new(ctx.options.backend, &out)
        };
        // Dropout draws from the backend's process-wide RNG, which every run reseeds each
        // step: a run with dropout trains alone so its draws stay its own.
        let (_shared, _exclusive);
        if config.raw().model.dropout > 0.0 {
            _exclusive = ctx.gate.write().unwrap_or_else(PoisonError::into_inner);
        } else {
            _shared = ctx.gate.read().unwrap_or_else(PoisonError::into_inner);
        }
        let record = match crate::train(&config, &options, Observer::default()) {
            Ok(summary) => {
                let metric = self.metric_for(summary.manifest.task);
                let valid = summary.manifest.metrics.get("valid");
                let Some(&value) = valid.and_then(|m| m.get(&metric)) else {
                    return Err(wrap(
                        ConfigError::Sweep {
                            path: self.path.clone(),
                            key: "sweep.metric".into(),
                            reason: format!(
                                "`{metric}` is not among the run's validation metrics ({}); \
                                 set `[sweep] metric` or `[evaluate] metrics`",
                                valid
                                    .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
                                    .unwrap_or_default()
                            ),
                        }
                        .into(),
                    ));
                };
                RunRecord {
                    run_dir: relative(&summary.run_dir, ctx.dir),
                    metric,
                    score: value.is_finite().then_some(value),
                    diverged: false,
                }
            }
            Err(Error::Diverged { run_dir, .. }) => {
                // Metrics may hold nulls there: only the task is read.
                let manifest: serde_json::Value =
                    crate::bundle::read_json(&run_dir.join("manifest.json"))?;
                let task = serde_json::from_value(manifest["task"].clone()).map_err(|source| {
                    Error::Json {
                        path: run_dir.join("manifest.json"),
                        source,
                    }
                })?;
                RunRecord {
                    run_dir: relative(&run_dir, ctx.dir),
                    metric: self.metric_for(task),
                    score: None,
                    diverged: true,
                }
            }
            Err(e @ Error::Interrupted { .. }) => return Err(e),
            Err(e) => return Err(wrap(e)),
        };
        let mut state = ctx.lock_state();
        state.runs.insert(job.key.clone(), record.clone());
        crate::bundle::write_json(&ctx.state_path, &*state)?;
        ctx.ran
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(job.trial);
        (ctx.on_event)(&SweepEvent::Run {
            trial: job.trial,
            fold: job.fold,
            epochs: config.raw().train.epochs,
            metric: &record.metric,
            score: record.score,
            diverged: record.diverged,
            run_dir: &ctx.dir.join(&record.run_dir),
            done: state.runs.len(),
            runs: ctx.runs,
        });
        Ok(())
    }

    /// The pipeline the runs of `trial` at `rung` train: one checkpoint, at the end, unless the
    /// pipeline or the trial sets `train.checkpoint_every` (a killed sweep retrains unrecorded
    /// runs from the start, so more checkpoints only cost time: half of it on penguins).
    fn unit_table(&self, trial: usize, rung: usize) -> toml::Table {
        let mut table = trial_table(&self.base, &self.trials[trial], self.rungs[rung].epochs)
            .expect("checked when loaded");
        let chosen = self
            .base
            .get("train")
            .and_then(Value::as_table)
            .is_some_and(|train| train.contains_key("checkpoint_every"))
            || self.trials[trial].contains_key("train.checkpoint_every");
        if !chosen {
            let config: PipelineConfig = table.clone().try_into().expect("checked when loaded");
            let epochs = i64::try_from(config.train.epochs).unwrap_or(i64::MAX);
            set_key(&mut table, "train.checkpoint_every", Value::Integer(epochs))
                .expect("`train` is a table: the config parsed");
        }
        table
    }

    /// The directory of `trial` at `rung`, relative to the sweep directory.
    fn unit(&self, trial: usize, rung: usize) -> String {
        let width = self.trials.len().saturating_sub(1).to_string().len().max(3);
        match self.rungs[rung].epochs {
            Some(epochs) => format!("trial-{trial:0width$}/epochs-{epochs}"),
            None => format!("trial-{trial:0width$}"),
        }
    }

    /// The metric of a run of `task`.
    fn metric_for(&self, task: Task) -> String {
        if let Some(metric) = &self.settings.metric {
            return metric.clone();
        }
        let monitored = &self.config.train.early_stopping.metric;
        if let Some(metric) = monitored.strip_prefix("valid_")
            && check_metric(metric, &[]).is_ok()
        {
            return metric.to_owned();
        }
        match task {
            Task::Classification { .. } => "accuracy".into(),
            Task::Regression => "r2".into(),
        }
    }

    /// The metric's direction; its name comes from the recorded runs when not configured.
    fn direction(&self, ctx: &Context<'_>) -> Mode {
        self.settings
            .direction
            .unwrap_or_else(|| Mode::of(&self.recorded_metric(ctx)))
    }

    /// The metric name, from the recorded runs when not configured (the task decides it).
    fn recorded_metric(&self, ctx: &Context<'_>) -> String {
        self.settings.metric.clone().unwrap_or_else(|| {
            ctx.lock_state()
                .runs
                .values()
                .next()
                .map(|r| r.metric.clone())
                .unwrap_or_default()
        })
    }

    /// Each trial's fold records at `rung`.
    fn trial_runs(&self, ctx: &Context<'_>, trial: usize, rung: usize) -> Vec<RunRecord> {
        let unit = self.unit(trial, rung);
        let state = ctx.lock_state();
        (0..self.settings.folds)
            .filter_map(|fold| state.runs.get(&format!("{unit}/fold-{fold}")).cloned())
            .collect()
    }

    fn rung_scores(
        &self,
        ctx: &Context<'_>,
        rung: usize,
        trials: &[usize],
    ) -> Vec<(usize, Option<f64>)> {
        trials
            .iter()
            .map(|&t| {
                let scores: Vec<Option<f64>> = self
                    .trial_runs(ctx, t, rung)
                    .iter()
                    .map(|r| r.score)
                    .collect();
                (t, mean_std(&scores).map(|(mean, _)| mean))
            })
            .collect()
    }

    fn leaderboard(&self, ctx: &Context<'_>, rungs: Vec<RungResult>) -> Leaderboard {
        let direction = self.direction(ctx);
        let mut results: Vec<(usize, TrialResult)> = Vec::new();
        for trial in 0..self.trials.len() {
            // The highest rung the trial reached.
            let Some((rung, records)) = (0..self.rungs.len())
                .rev()
                .map(|r| (r, self.trial_runs(ctx, trial, r)))
                .find(|(_, records)| !records.is_empty())
            else {
                continue;
            };
            let scores: Vec<Option<f64>> = records.iter().map(|r| r.score).collect();
            let stats = mean_std(&scores);
            let epochs = trial_config(
                &self.base,
                &self.trials[trial],
                self.rungs[rung].epochs,
                &self.path,
            )
            .expect("checked when loaded")
            .train
            .epochs;
            results.push((
                rung,
                TrialResult {
                    rank: 0,
                    trial,
                    params: self.trials[trial].clone(),
                    epochs,
                    mean: stats.map(|s| s.0),
                    std: stats.map(|s| s.1),
                    scores,
                    diverged: records.iter().any(|r| r.diverged),
                    runs: records.into_iter().map(|r| r.run_dir).collect(),
                },
            ));
        }
        results.sort_by(|(ra, a), (rb, b)| {
            rb.cmp(ra)
                .then_with(|| better(direction, a.mean, b.mean))
                .then(a.trial.cmp(&b.trial))
        });
        let trials = results
            .into_iter()
            .enumerate()
            .map(|(i, (_, mut r))| {
                r.rank = i + 1;
                r
            })
            .collect();
        Leaderboard {
            pipeline: self.config.pipeline.name.clone(),
            method: self.settings.method,
            metric: self.recorded_metric(ctx),
            direction,
            folds: self.settings.folds,
            seed: self.seed,
            rungs,
            trials,
        }
    }

    /// What a rerun must agree on to continue: the pipeline with its `[sweep]` (but not the
    /// worker count), the data file's bytes, the backend and kiln's version.
    fn hash(&self, backend: BackendKind) -> Result<String> {
        let mut config = self.config.clone();
        if let Some(sweep) = &mut config.sweep {
            sweep.workers = default_workers();
        }
        let data = kiln_core::hash::hash_file(&self.source)?;
        let input = serde_json::json!({
            "config": config,
            "data": data.blake3,
            "backend": backend.name(),
            "kiln": kiln_core::KILN_VERSION,
        });
        Ok(kiln_core::hash::hash_bytes(input.to_string().as_bytes()))
    }
}

/// What the worker threads share.
struct Context<'a> {
    dir: &'a Path,
    options: &'a SweepOptions,
    state: Mutex<State>,
    state_path: PathBuf,
    stop: Arc<AtomicBool>,
    /// Runs with dropout take it exclusively, the others shared.
    gate: RwLock<()>,
    runs: usize,
    /// Trials with a run trained by this invocation.
    ran: Mutex<BTreeSet<usize>>,
    on_event: &'a (dyn Fn(&SweepEvent<'_>) + Sync),
}

impl Context<'_> {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn relative(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base).unwrap_or(path).to_path_buf()
}

/// `a` before `b` when its score is better; a missing score is last.
fn better(direction: Mode, a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => match direction {
            Mode::Max => b.total_cmp(&a),
            Mode::Min => a.total_cmp(&b),
        },
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The best `keep` trials (ties to the lower trial), in trial order.
fn promote(scored: &[(usize, Option<f64>)], keep: usize, direction: Mode) -> Vec<usize> {
    let mut ranked = scored.to_vec();
    ranked.sort_by(|a, b| better(direction, a.1, b.1).then(a.0.cmp(&b.0)));
    let mut kept: Vec<usize> = ranked.into_iter().take(keep).map(|(t, _)| t).collect();
    kept.sort_unstable();
    kept
}

/// Rungs of successive halving: `trials` at `min` epochs, then `trials / eta` at `min · eta`,
/// …; the last rung trains at `max` epochs, and comes as soon as one trial is left.
fn halving_rungs(trials: usize, min: usize, max: usize, eta: usize) -> Vec<Rung> {
    let mut rungs = Vec::new();
    let (mut epochs, mut n) = (min, trials);
    while n > 1 && epochs < max {
        rungs.push(Rung {
            epochs: Some(epochs),
            trials: n,
        });
        epochs = epochs.saturating_mul(eta).min(max);
        n = (n / eta).max(1);
    }
    rungs.push(Rung {
        epochs: Some(max),
        trials: n,
    });
    rungs
}

/// Mean and population standard deviation; none if a score is missing.
fn mean_std(scores: &[Option<f64>]) -> Option<(f64, f64)> {
    let values: Vec<f64> = scores.iter().copied().collect::<Option<_>>()?;
    if values.is_empty() {
        return None;
    }
    // Fold counts are small: exact in f64.
    #[allow(clippy::cast_precision_loss)]
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    Some((mean, var.sqrt()))
}

/// `key = value, ...` of a trial.
fn describe(trial: &Params) -> String {
    trial
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a metric name: known, and reported under `[evaluate] metrics` (when they are set).
fn check_metric(metric: &str, evaluated: &[String]) -> Result<(), String> {
    let known: Vec<&str> = kiln_train::metrics::CLASSIFICATION_METRICS
        .iter()
        .chain(&kiln_train::metrics::REGRESSION_METRICS)
        .copied()
        .collect();
    if !known.contains(&metric) {
        return Err(format!(
            "`{metric}` is not a metric{}; known: {}",
            kiln_core::suggest::closest(metric, &known)
                .map_or(String::new(), |s| format!(" (did you mean `{s}`?)")),
            known.join(", ")
        ));
    }
    if !evaluated.is_empty() && !evaluated.iter().any(|m| m == metric) {
        return Err(format!(
            "`{metric}` is not among `[evaluate] metrics`, so runs do not report it"
        ));
    }
    Ok(())
}

/// A misspelt distribution reads as one more key segment (`train.lr.log_unifrom`): names the
/// distribution it is closest to.
fn distribution_hint(key: &str) -> String {
    match key.rsplit_once('.') {
        Some((_, last)) => kiln_core::suggest::closest(last, DISTRIBUTIONS)
            .map_or(String::new(), |d| {
                format!(" (is `{last}` the distribution `{d}`?)")
            }),
        None => String::new(),
    }
}

/// `[sweep.params]` as dotted keys and their spaces, in key order. Nested tables
/// (`model.hidden = [...]` without quotes) are keys too, unless they name a distribution.
fn parse_params(
    settings: &SweepConfig,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<(String, Space)>, ConfigError> {
    fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, Value)>) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Table(t)
                    if !t.is_empty() && !t.keys().any(|k| DISTRIBUTIONS.contains(&k.as_str())) =>
                {
                    flatten(&key, t, out);
                }
                _ => out.push((key, v.clone())),
            }
        }
    }
    let mut leaves = Vec::new();
    flatten("", &settings.params, &mut leaves);
    if leaves.is_empty() {
        return Err(invalid(
            "params",
            "is empty: name at least one key to vary, e.g. `\"train.lr\" = [0.01, 0.001]`".into(),
        ));
    }
    let mut params = Vec::with_capacity(leaves.len());
    for (key, value) in leaves {
        let space =
            parse_space(&value).map_err(|reason| invalid(&format!("params.{key}"), reason))?;
        if settings.method == SweepMethod::Grid && !matches!(space, Space::Values(_)) {
            return Err(invalid(
                &format!("params.{key}"),
                "is a distribution; a `grid` sweep needs a list of values (or use `method = \"random\"`)"
                    .into(),
            ));
        }
        if key == "sweep" || key.starts_with("sweep.") {
            return Err(invalid(
                &format!("params.{key}"),
                "cannot sweep the `[sweep]` section".into(),
            ));
        }
        params.push((key, space));
    }
    Ok(params)
}

fn parse_space(value: &Value) -> Result<Space, String> {
    const SHAPE: &str = "must be a list of values or a distribution: `{ log_uniform = [lo, hi] }`, \
                         `{ uniform = [lo, hi] }` or `{ int_uniform = [lo, hi] }`";
    let table = match value {
        Value::Array(values) if values.is_empty() => return Err("is an empty list".into()),
        Value::Array(values) => return Ok(Space::Values(values.clone())),
        Value::Table(table) => table,
        _ => return Err(SHAPE.into()),
    };
    let mut entries = table.iter();
    let (Some((name, bounds)), None) = (entries.next(), entries.next()) else {
        let keys: Vec<&str> = table.keys().map(String::as_str).collect();
        return Err(format!(
            "names several distributions or keys ({}); {SHAPE}",
            keys.join(", ")
        ));
    };
    let pair = match bounds {
        Value::Array(pair) if pair.len() == 2 => (&pair[0], &pair[1]),
        _ => return Err(format!("`{name}` takes `[lo, hi]`, got {bounds}")),
    };
    // Bounds are small numbers; an i64 beyond 2^53 is no sensible bound anyway.
    #[allow(clippy::cast_precision_loss)]
    let float = |v: &Value| match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) if f.is_finite() => Some(*f),
        _ => None,
    };
    match name.as_str() {
        "log_uniform" | "uniform" => {
            let (Some(lo), Some(hi)) = (float(pair.0), float(pair.1)) else {
                return Err(format!("`{name}` takes two finite numbers, got {bounds}"));
            };
            if name == "log_uniform" {
                if !(lo > 0.0 && lo < hi) {
                    return Err(format!("`log_uniform` needs 0 < lo < hi, got {bounds}"));
                }
                Ok(Space::LogUniform(lo, hi))
            } else if lo < hi {
                Ok(Space::Uniform(lo, hi))
            } else {
                Err(format!("`uniform` needs lo < hi, got {bounds}"))
            }
        }
        "int_uniform" => match pair {
            (Value::Integer(lo), Value::Integer(hi)) if lo <= hi => Ok(Space::IntUniform(*lo, *hi)),
            _ => Err(format!(
                "`int_uniform` needs integers lo <= hi, got {bounds}"
            )),
        },
        other => Err(format!(
            "unknown distribution `{other}`{}; {SHAPE}",
            kiln_core::suggest::closest(other, DISTRIBUTIONS)
                .map_or(String::new(), |s| format!(" (did you mean `{s}`?)"))
        )),
    }
}

/// Every combination, the last key varying fastest.
fn grid(params: &[(String, Space)]) -> Vec<Params> {
    let mut trials = vec![Params::new()];
    for (key, space) in params {
        let values = space.probes();
        trials = trials
            .into_iter()
            .flat_map(|trial| {
                values.iter().map(move |v| {
                    let mut next = trial.clone();
                    next.insert(key.clone(), v.clone());
                    next
                })
            })
            .collect();
    }
    trials
}

/// `n` trials, each key drawn in key order from one stream.
fn draw(params: &[(String, Space)], n: usize, rng: &mut impl RngExt) -> Vec<Params> {
    (0..n)
        .map(|_| {
            params
                .iter()
                .map(|(key, space)| (key.clone(), space.draw(rng)))
                .collect()
        })
        .collect()
}

/// Sets dotted `key` in `table`, creating the tables on the way.
fn set_key(table: &mut toml::Table, key: &str, value: Value) -> Result<(), String> {
    let mut segments: Vec<&str> = key.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(format!("`{key}` is not a dotted key"));
    }
    let last = segments.pop().unwrap_or_default();
    let mut here = table;
    for (i, segment) in segments.iter().enumerate() {
        let entry = here
            .entry((*segment).to_owned())
            .or_insert_with(|| Value::Table(toml::Table::new()));
        here = match entry {
            Value::Table(t) => t,
            other => {
                return Err(format!(
                    "`{}` is {}, not a table",
                    segments[..=i].join("."),
                    other.type_str()
                ));
            }
        };
    }
    here.insert(last.to_owned(), value);
    Ok(())
}

/// The pipeline table of `trial` (at `epochs`, for halving).
fn trial_table(
    base: &toml::Table,
    trial: &Params,
    epochs: Option<usize>,
) -> Result<toml::Table, String> {
    let mut table = base.clone();
    for (key, value) in trial {
        set_key(&mut table, key, value.clone())?;
    }
    if let Some(epochs) = epochs {
        let epochs = i64::try_from(epochs).map_err(|e| e.to_string())?;
        set_key(&mut table, "train.epochs", Value::Integer(epochs))?;
    }
    Ok(table)
}

/// The checked pipeline of `trial`; the reason it is refused otherwise (without the path).
fn trial_config(
    base: &toml::Table,
    trial: &Params,
    epochs: Option<usize>,
    path: &Path,
) -> Result<PipelineConfig, String> {
    let config: PipelineConfig = trial_table(base, trial, epochs)?
        .try_into()
        .map_err(|e: toml::de::Error| serde_reason(e.message()))?;
    config.clone().check(path).map_err(|e| match e {
        ConfigError::Invalid { key, reason, .. } => format!("`{key}` {reason}"),
        other => other.to_string(),
    })?;
    Ok(config)
}

/// serde's message, an unknown field worded as kiln words unknown keys.
fn serde_reason(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((key, expected)) = rest.split_once('`')
    {
        let suggestion = kiln_core::suggest::closest(key, expected.split('`').skip(1).step_by(2));
        return format!(
            "unknown key `{key}`{}",
            suggestion.map_or(String::new(), |s| format!("; did you mean `{s}`?"))
        );
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(text: &str) -> Result<Space, String> {
        let table: toml::Table = toml::from_str(&format!("x = {text}")).unwrap();
        parse_space(&table["x"])
    }

    fn load(sweep: &str) -> Result<Sweep, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipeline.toml");
        fs_err::write(dir.path().join("d.csv"), "x,y\n1,a\n2,b\n").unwrap();
        fs_err::write(
            &path,
            format!(
                "[pipeline]\nname = \"p\"\n[data]\nsource = \"d.csv\"\ntarget = \"y\"\n\
                 [train]\nepochs = 20\n{sweep}"
            ),
        )
        .unwrap();
        Sweep::load(&path)
    }

    fn sweep_error(sweep: &str) -> String {
        load(sweep).unwrap_err().to_string()
    }

    #[test]
    fn grid_expands_every_combination_last_key_fastest() {
        let s = load(
            "[sweep]\n[sweep.params]\n\"train.lr\" = [0.1, 0.01, 0.001]\nmodel.hidden = [[8], [16, 8]]\n",
        )
        .unwrap();
        let trials = s.trials();
        assert_eq!(trials.len(), 6);
        // Keys in order: model.hidden, then train.lr (fastest).
        let lr: Vec<f64> = trials
            .iter()
            .map(|t| t["train.lr"].as_float().unwrap())
            .collect();
        assert_eq!(lr, [0.1, 0.01, 0.001, 0.1, 0.01, 0.001]);
        assert_eq!(trials[0]["model.hidden"].to_string(), "[8]");
        assert_eq!(trials[5]["model.hidden"].to_string(), "[16, 8]");
        assert_eq!(
            s.rungs,
            [Rung {
                epochs: None,
                trials: 6
            }]
        );
        // Each trial's pipeline has its overrides and an absolute data source.
        let table = trial_table(&s.base, &trials[4], None).unwrap();
        let config: PipelineConfig = table.try_into().unwrap();
        assert_eq!(config.model.hidden, [16, 8]);
        assert_eq!(config.train.lr.to_bits(), 0.01_f64.to_bits());
        assert!(config.data.source.is_absolute());
        assert!(config.sweep.is_none());
    }

    #[test]
    fn random_draws_are_reproducible_per_seed() {
        let sweep = "[sweep]\nmethod = \"random\"\ntrials = 8\n[sweep.params]\n\
                     \"train.lr\" = { log_uniform = [1e-4, 1e-1] }\n\
                     \"train.batch_size\" = { int_uniform = [8, 64] }\n\
                     \"model.hidden\" = [[8], [16]]\n";
        let a = load(sweep).unwrap();
        let b = load(sweep).unwrap();
        assert_eq!(a.trials(), b.trials());
        assert_eq!(a.trials().len(), 8);
        let c = load(&sweep.replace("trials = 8", "trials = 8\nseed = 7")).unwrap();
        assert_ne!(a.trials(), c.trials());
        // Draws of a distribution differ between trials.
        let lrs: BTreeSet<u64> = a
            .trials()
            .iter()
            .map(|t| t["train.lr"].as_float().unwrap().to_bits())
            .collect();
        assert_eq!(lrs.len(), 8);
    }

    #[test]
    fn log_uniform_stays_in_range_and_is_uniform_in_the_log() {
        let s = Space::LogUniform(1e-4, 1e-1);
        let mut rng = kiln_core::rng::stream(1, "test");
        let draws: Vec<f64> = (0..4000)
            .map(|_| s.draw(&mut rng).as_float().unwrap())
            .collect();
        assert!(draws.iter().all(|&v| (1e-4..=1e-1).contains(&v)));
        // Uniform in the log: a third of the draws in the first of three decades, half below
        // the geometric middle 10^-2.5.
        let below = |x: f64| draws.iter().filter(|&&v| v < x).count();
        assert!((1233..1433).contains(&below(1e-3)), "{}", below(1e-3));
        assert!((1900..2100).contains(&below(10_f64.powf(-2.5))));
        let ints = Space::IntUniform(2, 4);
        let seen: BTreeSet<i64> = (0..200)
            .map(|_| ints.draw(&mut rng).as_integer().unwrap())
            .collect();
        assert_eq!(seen, BTreeSet::from([2, 3, 4]));
    }

    #[test]
    fn halving_rungs_and_promotion() {
        let budgets = |r: Vec<Rung>| -> Vec<(usize, usize)> {
            r.iter().map(|r| (r.epochs.unwrap(), r.trials)).collect()
        };
        assert_eq!(
            budgets(halving_rungs(9, 5, 40, 3)),
            [(5, 9), (15, 3), (40, 1)]
        );
        assert_eq!(budgets(halving_rungs(4, 2, 6, 2)), [(2, 4), (4, 2), (6, 1)]);
        assert_eq!(budgets(halving_rungs(10, 10, 10, 3)), [(10, 10)]);
        assert_eq!(budgets(halving_rungs(1, 2, 9, 3)), [(9, 1)]);
        // The best 1/eta, ties to the lower trial, a missing score last; kept in trial order.
        let scored = [
            (0, Some(0.5)),
            (1, None),
            (2, Some(0.9)),
            (3, Some(0.7)),
            (4, Some(0.9)),
            (5, Some(0.1)),
        ];
        assert_eq!(promote(&scored, 2, Mode::Max), [2, 4]);
        assert_eq!(promote(&scored, 3, Mode::Max), [2, 3, 4]);
        assert_eq!(promote(&scored, 2, Mode::Min), [0, 5]);
        assert_eq!(promote(&scored, 6, Mode::Min)[5], 5);
        let s = load(
            "[sweep]\nmethod = \"halving\"\ntrials = 9\n[sweep.params]\n\"train.lr\" = { uniform = [0.001, 0.1] }\n",
        )
        .unwrap();
        // Default min_epochs = ceil(20 / 9) = 3 at eta 3.
        assert_eq!(budgets(s.rungs.clone()), [(3, 9), (9, 3), (20, 1)]);
        assert_eq!(s.unit(4, 1), "trial-004/epochs-9");
    }

    #[test]
    fn mean_and_population_std() {
        let (mean, std) = mean_std(&[Some(1.0), Some(2.0), Some(3.0)]).unwrap();
        assert!((mean - 2.0).abs() < 1e-12);
        assert!((std - (2.0_f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[Some(1.0), None]), None);
    }

    #[test]
    fn set_key_creates_tables_and_refuses_values_on_the_way() {
        let mut table: toml::Table = toml::from_str("[train]\nlr = 0.1\n").unwrap();
        set_key(
            &mut table,
            "features.numeric.scale",
            Value::String("robust".into()),
        )
        .unwrap();
        assert_eq!(
            table["features"]["numeric"]["scale"].as_str(),
            Some("robust")
        );
        let err = set_key(&mut table, "train.lr.x", Value::Integer(1)).unwrap_err();
        assert_eq!(err, "`train.lr` is float, not a table");
    }

    #[test]
    fn distributions_are_checked() {
        assert_eq!(
            space("[1, 2]").unwrap(),
            Space::Values(vec![Value::Integer(1), Value::Integer(2)])
        );
        assert_eq!(
            space("{ uniform = [0, 1] }").unwrap(),
            Space::Uniform(0.0, 1.0)
        );
        for (text, needle) in [
            ("[]", "empty list"),
            ("3", "must be a list of values or a distribution"),
            ("{ log_uniform = [0.0, 1.0] }", "0 < lo < hi"),
            ("{ uniform = [1, 1] }", "lo < hi"),
            ("{ int_uniform = [1.5, 3] }", "integers"),
            ("{ uniform = [1] }", "takes `[lo, hi]`"),
            ("{ normal = [0, 1], uniform = [0, 1] }", "several"),
        ] {
            let err = space(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn each_sweep_rule_names_its_key() {
        let cases = [
            ("[sweep]\n", "`sweep.params` is empty"),
            (
                "[sweep]\n[sweep.params]\n\"model.hiden\" = [[8]]\n",
                "`sweep.params.model.hiden` = [8]: unknown key `hiden`; did you mean `hidden`?",
            ),
            (
                "[sweep]\n[sweep.params]\n\"train.lr\" = [0.1, -1.0]\n",
                "`sweep.params.train.lr` = -1.0: `train.lr` must be a positive number",
            ),
            (
                "[sweep]\n[sweep.params]\n\"train.lr\" = { uniform = [0.1, 0.2] }\n",
                "`sweep.params.train.lr` is a distribution; a `grid` sweep",
            ),
            (
                "[sweep]\nmethod = \"random\"\n[sweep.params]\n\"train.lr\" = [0.1]\n",
                "`sweep.trials` is needed",
            ),
            (
                "[sweep]\nmethod = \"random\"\ntrials = 2\n[sweep.params]\n\"train.lr\" = { log_unifrom = [0.1, 0.2] }\n",
                "(is `log_unifrom` the distribution `log_uniform`?)",
            ),
            (
                "[sweep]\nfolds = 0\n[sweep.params]\n\"train.lr\" = [0.1]\n",
                "`sweep.folds` must be at least 1",
            ),
            (
                "[sweep]\neta = 2\n[sweep.params]\n\"train.lr\" = [0.1]\n",
                "`sweep.eta` applies to `halving`",
            ),
            (
                "[sweep]\nmetric = \"acuracy\"\n[sweep.params]\n\"train.lr\" = [0.1]\n",
                "(did you mean `accuracy`?)",
            ),
            (
                "[sweep]\nmethod = \"halving\"\ntrials = 3\nmin_epochs = 30\n[sweep.params]\n\"train.lr\" = [0.1]\n",
                "`sweep.min_epochs` must be in 1..=20",
            ),
            (
                "[sweep]\nmethod = \"halving\"\ntrials = 3\n[sweep.params]\n\"train.epochs\" = [3]\n",
                "`sweep.params.train.epochs` cannot be swept",
            ),
            (
                "[sweep]\n[sweep.params]\n\"train.schedule\" = [{ kind = \"cosine\", warmup_epochs = 30 }]\n",
                "`train.schedule`",
            ),
            (
                "[sweep]\n[sweep.params]\n\"sweep.folds\" = [2]\n",
                "cannot sweep the `[sweep]` section",
            ),
        ];
        for (sweep, needle) in cases {
            let err = sweep_error(sweep);
            assert!(err.contains(needle), "{sweep}: {err}");
        }
        let err = sweep_error("[sweep]\ntrails = 3\n");
        assert!(
            err.contains("unknown key `trails`; did you mean `trials`?"),
            "{err}"
        );
        // Interactions only a combination shows are named by trial.
        let err = sweep_error(
            "[sweep]\n[sweep.params]\n\"train.epochs\" = [3]\n\"train.schedule\" = [{ kind = \"cosine\", warmup_epochs = 5 }]\n",
        );
        assert!(
            err.contains("`sweep.params` trial 0 (train.epochs = 3, train.schedule = { kind = \"cosine\", warmup_epochs = 5 }): `train.schedule`"),
            "{err}"
        );
        let missing = load("").unwrap_err().to_string();
        assert!(missing.contains("`sweep` is missing"), "{missing}");
    }
}
