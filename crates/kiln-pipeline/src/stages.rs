//! The data stages of a run (ingest, validate, split, stats, transform), each through the
//! stage cache when there is one.
//!
//! Every stage's key is known before anything is read: it hashes the data files' contents and
//! the config sections the stage depends on, chained through the keys of the stages before
//! it. So a run whose later stages are all cached never reads the data file at all (only
//! hashes it), and a changed `[features]` re-runs the transform stage alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln_core::Matrix;
use kiln_core::hash::FileHash;
use kiln_data::{
    ColumnRef, ColumnRole, ColumnType, DatasetStats, Schema, Split, StatsOptions, Table,
};
use kiln_models::ModelKind;
use kiln_train::{LossKind, Task};
use kiln_transform::{FeaturePlan, FittedFeatures, FittedTarget, TargetKind, Targets};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::bundle::{BUNDLE_FORMAT, BundleSpec, read_json, write_json};
use crate::cache::StageCache;
use crate::config::{SplitMethod, ValidPipelineConfig};
use crate::run::CvFold;
use crate::{Error, Result};

/// The data stages in the order they run.
pub const STAGES: [&str; 5] = ["ingest", "validate", "split", "stats", "transform"];

/// How one data stage of a run was satisfied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// The stage's content key.
    pub key: String,
    /// Whether its output came from the cache.
    pub cached: bool,
    /// Wall seconds spent on it (computing, or loading from the cache).
    pub seconds: f64,
}

/// One input file of a run: its path and content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// The file.
    pub path: PathBuf,
    /// Its blake3 and size.
    #[serde(flatten)]
    pub hash: FileHash,
}

/// Data read, typed, split and transformed, ready to train.
pub(crate) struct Prepared {
    pub(crate) inputs: Vec<InputFile>,
    pub(crate) rows: usize,
    pub(crate) rows_without_target: usize,
    pub(crate) split: Split,
    pub(crate) split_method: SplitMethod,
    /// `[validate]`'s report as written to validation.json (warnings only: errors stop the
    /// run, and a failing report is never cached).
    pub(crate) report: serde_json::Value,
    /// Statistics of the training rows.
    pub(crate) stats: DatasetStats,
    pub(crate) spec: BundleSpec,
    pub(crate) x: [Matrix; 3],
    pub(crate) y: [Targets; 3],
    /// Regression targets in the file's units per split (empty for classification): metrics
    /// are computed against these, not the f32 standardized encoding.
    pub(crate) truth: [Vec<f64>; 3],
    pub(crate) stages: BTreeMap<String, StageRecord>,
    /// How to read the rows again when the run streams them (`x` and `y` then hold only
    /// the valid sample; `split` is empty, the manifest's splits come from here).
    pub(crate) stream: Option<crate::streaming::Stream>,
}

impl Prepared {
    /// The main data file's hash.
    pub(crate) fn data_hash(&self) -> &FileHash {
        &self.inputs[0].hash
    }
}

/// What the ingest stage keeps beside the table, enough for runs that need no rows.
#[derive(Serialize, Deserialize)]
struct IngestMeta {
    schema: Schema,
    rows: usize,
}

#[derive(Serialize, Deserialize)]
struct SplitOutput {
    split: Split,
    method: SplitMethod,
    kind: TargetKind,
    rows_without_target: usize,
}

#[derive(Serialize, Deserialize)]
struct Fitted {
    features: FittedFeatures,
    target: FittedTarget,
}

#[derive(Serialize, Deserialize)]
struct Transformed {
    x: [Matrix; 3],
    y: [Targets; 3],
    truth: [Vec<f64>; 3],
}

const TABLE_FILE: &str = "table.parquet";
const META_FILE: &str = "meta.json";
const OUTPUT_FILE: &str = "output.json";
const FITTED_FILE: &str = "fitted.json";
const MATRICES_FILE: &str = "matrices.mpk";
pub(crate) const SPLIT_NAMES: [&str; 3] = ["train", "valid", "test"];

pub(crate) fn split_rows(split: &Split, index: usize) -> &[usize] {
    match index {
        0 => &split.train,
        1 => &split.valid,
        _ => &split.test,
    }
}

/// The stage keys of `config`'s run, chained: each hashes its own config with the keys of
/// the stages it reads.
struct Keys {
    ingest: String,
    validate: String,
    split: String,
    stats: String,
    transform: String,
}

impl Keys {
    fn new(config: &ValidPipelineConfig, inputs: &[InputFile], fold: Option<CvFold>) -> Self {
        let raw = config.raw();
        let whole = serde_json::to_value(raw).expect("config serializes");
        let section = |name: &str| whole[name].clone();
        let mut data = section("data");
        // The file's content matters, not where it is.
        data["source"] = json!(null);
        let hashes: Vec<&str> = inputs.iter().map(|i| i.hash.blake3.as_str()).collect();
        let ingest = StageCache::key(
            "ingest",
            &json!({ "files": hashes, "data": data, "roles": config.roles() }),
        );
        let validate = StageCache::key(
            "validate",
            &json!({ "ingest": ingest, "rules": section("validate") }),
        );
        let split = StageCache::key(
            "split",
            &json!({
                "ingest": ingest,
                "split": section("split"),
                "seed": raw.pipeline.seed,
                "fold": fold,
            }),
        );
        let stats = StageCache::key("stats", &json!({ "split": split }));
        let transform = StageCache::key(
            "transform",
            &json!({
                "split": split,
                "features": section("features"),
                "model_kind": raw.model.kind,
                "image": raw.model.image,
                "seed": raw.pipeline.seed,
            }),
        );
        Self {
            ingest,
            validate,
            split,
            stats,
            transform,
        }
    }
}

/// Runs the data stages, each from the cache when it holds the stage's key.
struct Runner<'a> {
    cache: Option<&'a StageCache>,
    records: BTreeMap<String, StageRecord>,
    timings: &'a mut BTreeMap<String, f64>,
}

impl Runner<'_> {
    /// The cached output of `stage`, if the cache holds it and it loads.
    fn cached<T>(
        &mut self,
        stage: &str,
        key: &str,
        load: impl FnOnce(&Path) -> Result<T>,
    ) -> Option<T> {
        let cache = self.cache?;
        let clock = Instant::now();
        let dir = cache.get(stage, key)?;
        if let Ok(value) = load(&dir) {
            self.record(stage, key, true, clock);
            Some(value)
        } else {
            // A damaged entry (a disk fault, an older layout) is recomputed and replaced.
            cache.remove(stage, key);
            None
        }
    }

    /// Computes `stage` and stores its output when there is a cache.
    fn compute<T>(
        &mut self,
        stage: &str,
        key: &str,
        compute: impl FnOnce() -> Result<T>,
        store: impl FnOnce(&T, &Path) -> Result<()>,
    ) -> Result<T> {
        let clock = Instant::now();
        let value = compute()?;
        self.store(stage, key, clock, &value, store)?;
        Ok(value)
    }

    /// Stores `value`, computed since `clock`, as the output of `stage` when there is a cache.
    fn store<T>(
        &mut self,
        stage: &str,
        key: &str,
        clock: Instant,
        value: &T,
        store: impl FnOnce(&T, &Path) -> Result<()>,
    ) -> Result<()> {
        if let Some(cache) = self.cache {
            cache.put(stage, key, |dir| store(value, dir))?;
        }
        self.record(stage, key, false, clock);
        Ok(())
    }

    fn record(&mut self, stage: &str, key: &str, cached: bool, clock: Instant) {
        let seconds = clock.elapsed().as_secs_f64();
        *self.timings.entry(stage.to_owned()).or_default() += seconds;
        self.records.insert(
            stage.to_owned(),
            StageRecord {
                key: key.to_owned(),
                cached,
                seconds,
            },
        );
    }
}

/// Ingest, validate, split, statistics of the train rows, fit the transforms on the train
/// rows and transform every split; through `cache` when given.
pub(crate) fn prepare(
    config: &ValidPipelineConfig,
    fold: Option<CvFold>,
    cache: Option<&StageCache>,
    timings: &mut BTreeMap<String, f64>,
) -> Result<Prepared> {
    let raw_config = config.raw();
    let clock = Instant::now();
    let inputs = kiln_data::input_files(config.source(), config.read_options())
        .into_iter()
        .map(|path| {
            let hash = crate::ingest::hash_input(&path)?;
            Ok(InputFile { path, hash })
        })
        .collect::<Result<Vec<_>>>()?;
    timings.insert("hash".into(), clock.elapsed().as_secs_f64());
    let keys = Keys::new(config, &inputs, fold);
    let mut runner = Runner {
        cache,
        records: BTreeMap::new(),
        timings,
    };

    let report: Option<serde_json::Value> = runner.cached("validate", &keys.validate, |dir| {
        read_json(&dir.join(OUTPUT_FILE))
    });
    let split: Option<SplitOutput> = runner.cached("split", &keys.split, |dir| {
        read_json(&dir.join(OUTPUT_FILE))
    });
    let stats: Option<DatasetStats> = runner.cached("stats", &keys.stats, |dir| {
        read_json(&dir.join(OUTPUT_FILE))
    });
    let transformed: Option<(Fitted, Transformed)> =
        runner.cached("transform", &keys.transform, |dir| {
            let fitted = read_json(&dir.join(FITTED_FILE))?;
            let bytes = fs_err::read(dir.join(MATRICES_FILE))?;
            let matrices = rmp_serde::from_slice(&bytes).map_err(|e| Error::Cache {
                path: dir.join(MATRICES_FILE),
                reason: e.to_string(),
            })?;
            Ok((fitted, matrices))
        });
    let needs_rows =
        report.is_none() || split.is_none() || stats.is_none() || transformed.is_none();

    // The rows are read only when a later stage must compute; otherwise the ingest stage's
    // metadata is all a run needs.
    let (meta, table) = if needs_rows {
        let loaded = runner.cached("ingest", &keys.ingest, |dir| {
            let meta: IngestMeta = read_json(&dir.join(META_FILE))?;
            Ok((meta, Table::load_stored(&dir.join(TABLE_FILE))?))
        });
        let (meta, table) = match loaded {
            Some(loaded) => loaded,
            None => runner.compute(
                "ingest",
                &keys.ingest,
                || {
                    let (table, schema) = crate::ingest::read_typed(config)?;
                    let meta = IngestMeta {
                        schema,
                        rows: table.n_rows(),
                    };
                    Ok((meta, table))
                },
                |(meta, table), dir| {
                    write_json(&dir.join(META_FILE), meta)?;
                    Ok(table.store(&dir.join(TABLE_FILE))?)
                },
            )?,
        };
        (meta, Some(table))
    } else {
        let meta = runner.cached("ingest", &keys.ingest, |dir| {
            read_json(&dir.join(META_FILE))
        });
        if let Some(meta) = meta {
            (meta, None)
        } else {
            // Only the metadata went missing: read the rows after all.
            let (table, schema) = crate::ingest::read_typed(config)?;
            let meta = IngestMeta {
                schema,
                rows: table.n_rows(),
            };
            (meta, Some(table))
        }
    };

    let report = if let Some(report) = report {
        report
    } else {
        let table = table.as_ref().expect("rows are read when a stage computes");
        let clock = Instant::now();
        let report = kiln_data::validate(table, &raw_config.validate)?;
        if report.has_errors() {
            return Err(Error::ValidationFailed {
                path: config.source().to_path_buf(),
                report,
            });
        }
        let report = serde_json::to_value(&report).expect("reports serialize");
        runner.store("validate", &keys.validate, clock, &report, |report, dir| {
            write_json(&dir.join(OUTPUT_FILE), report)
        })?;
        report
    };
    let table = table
        .map(|table| crate::ingest::derive_target(config, table))
        .transpose()?;

    let split = if let Some(split) = split {
        split
    } else {
        let table = table.as_ref().expect("rows are read when a stage computes");
        runner.compute(
            "split",
            &keys.split,
            || split_stage(config, table, fold),
            |output, dir| write_json(&dir.join(OUTPUT_FILE), output),
        )?
    };
    let stats = if let Some(stats) = stats {
        stats
    } else {
        let table = table.as_ref().expect("rows are read when a stage computes");
        runner.compute(
            "stats",
            &keys.stats,
            || {
                Ok(kiln_data::compute_stats_of(
                    table,
                    &split.split.train,
                    &StatsOptions::default(),
                )?)
            },
            |stats, dir| write_json(&dir.join(OUTPUT_FILE), stats),
        )?
    };
    let (fitted, matrices) = if let Some(transformed) = transformed {
        transformed
    } else {
        let table = table.as_ref().expect("rows are read when a stage computes");
        runner.compute(
            "transform",
            &keys.transform,
            || transform_stage(config, table, &meta.schema, &split),
            |(fitted, matrices), dir| {
                write_json(&dir.join(FITTED_FILE), fitted)?;
                let bytes = rmp_serde::to_vec_named(matrices).map_err(|e| Error::Cache {
                    path: dir.join(MATRICES_FILE),
                    reason: e.to_string(),
                })?;
                Ok(fs_err::write(dir.join(MATRICES_FILE), bytes)?)
            },
        )?
    };
    let records = runner.records;

    let spec = bundle_spec(config, meta.schema, fitted.features, fitted.target)?;
    Ok(Prepared {
        inputs,
        rows: meta.rows,
        rows_without_target: split.rows_without_target,
        split: split.split,
        split_method: split.method,
        report,
        stats,
        spec,
        x: matrices.x,
        y: matrices.y,
        truth: matrices.truth,
        stages: records,
        stream: None,
    })
}

/// The bundle of `config`'s run from its schema and fitted transforms: the model sized to
/// the features and the task, checked, with the `[evaluate]` metrics checked too.
///
/// # Errors
/// [`Error::TooFewClasses`]; model and `[evaluate]` config errors.
pub(crate) fn bundle_spec(
    config: &ValidPipelineConfig,
    schema: Schema,
    features: FittedFeatures,
    target: FittedTarget,
) -> Result<BundleSpec> {
    let raw_config = config.raw();
    if let FittedTarget::Classification { classes, .. } = &target
        && classes.len() < 2
    {
        return Err(Error::TooFewClasses {
            target: raw_config.data.target.clone(),
            classes: classes.len(),
        });
    }
    let task = crate::bundle::task_of(&target);
    let loss = raw_config
        .train
        .loss
        .unwrap_or_else(|| LossKind::default_for(task));
    let model = raw_config.model.spec(
        features.width(),
        loss.outputs(task),
        &features.index_columns(),
    );
    model.check()?;
    check_metrics(config, task)?;
    Ok(BundleSpec {
        format: BUNDLE_FORMAT,
        schema,
        csv: config.read_options().csv.clone(),
        data_format: config.read_options().format,
        target_above: raw_config.data.target_above,
        features,
        target,
        model,
        validate: raw_config.validate.clone(),
        drift: raw_config.drift.clone(),
    })
}

/// The labelled rows, the task kind and the split (a cross-validation fold when asked).
fn split_stage(
    config: &ValidPipelineConfig,
    table: &Table,
    fold: Option<CvFold>,
) -> Result<SplitOutput> {
    let raw_config = config.raw();
    let target_name = raw_config.data.target.as_str();
    let target_column = table.require(target_name)?;
    let labelled: Vec<usize> = (0..table.n_rows())
        .filter(|&r| !target_column.is_null(r))
        .collect();
    if labelled.is_empty() {
        return Err(Error::NoLabelledRows {
            path: config.source().to_path_buf(),
            target: target_name.to_owned(),
        });
    }
    // The table's type: a `target_above` target is already boolean there.
    let target_type = table
        .schema()
        .column(target_name)
        .map_or(ColumnType::Categorical, |c| c.column_type);
    let kind = raw_config
        .data
        .task
        .unwrap_or_else(|| TargetKind::infer(target_type));
    let (mut split, method) = crate::ingest::split(config, table, &labelled, kind)?;
    if let Some(fold) = fold {
        split = crate::ingest::cv_fold(config, table, &split, kind, fold)?;
    }
    Ok(SplitOutput {
        split,
        method,
        kind,
        rows_without_target: table.n_rows() - labelled.len(),
    })
}

/// Fits the target and feature transforms on the train rows and transforms every split.
fn transform_stage(
    config: &ValidPipelineConfig,
    table: &Table,
    schema: &Schema,
    split: &SplitOutput,
) -> Result<(Fitted, Transformed)> {
    let raw_config = config.raw();
    let target_name = raw_config.data.target.as_str();
    let train_rows = &split.split.train;
    let target = FittedTarget::fit(table, target_name, split.kind, train_rows)?;
    let plan = feature_plan(config, schema).target(&target);
    let (features, x_train) = plan.fit_transform(table, train_rows)?;
    // The train rows come from fit_transform: cross-fitted where target encoding needs it.
    let mut x = vec![x_train];
    let mut y = Vec::with_capacity(3);
    let mut truth = Vec::with_capacity(3);
    for i in 0..3 {
        let rows = split_rows(&split.split, i);
        if i > 0 {
            x.push(features.transform(table, rows)?);
        }
        y.push(target.encode(table, rows)?);
        truth.push(match (&target, table.require(target_name)?) {
            (FittedTarget::Regression { .. }, ColumnRef::Numeric(values)) if i > 0 => {
                rows.iter().map(|&r| values.value(r)).collect()
            }
            _ => Vec::new(),
        });
    }
    Ok((
        Fitted { features, target },
        Transformed {
            x: x.try_into().expect("three splits"),
            y: y.try_into().expect("three splits"),
            truth: truth.try_into().expect("three splits"),
        },
    ))
}

/// The transforms `config` plans for `schema`'s feature columns, by the model kind.
pub(crate) fn feature_plan(config: &ValidPipelineConfig, schema: &Schema) -> FeaturePlan {
    let raw_config = config.raw();
    // Only feature columns are model inputs (not the target, ids, weights, groups, times).
    let not_features: Vec<&str> = schema
        .columns
        .iter()
        .filter(|c| c.role != ColumnRole::Feature)
        .map(|c| c.name.as_str())
        .collect();
    let plan = FeaturePlan::new(schema, &not_features, raw_config.features.clone())
        .seed(raw_config.pipeline.seed);
    match raw_config.model.kind {
        ModelKind::Tabular => plan.categorical_as_index(),
        ModelKind::Cnn => plan.image(raw_config.model.image.map_or(1, |i| i.channels)),
        ModelKind::Linear | ModelKind::Mlp => plan,
    }
}

/// Refuses `[evaluate] metrics` that are not metrics of `task`.
fn check_metrics(config: &ValidPipelineConfig, task: Task) -> Result<()> {
    let available: &[&str] = match task {
        Task::Classification { .. } => &kiln_train::metrics::CLASSIFICATION_METRICS,
        Task::Regression => &kiln_train::metrics::REGRESSION_METRICS,
    };
    match config
        .raw()
        .evaluate
        .metrics
        .iter()
        .find(|m| !available.contains(&m.as_str()))
    {
        Some(other) => Err(crate::ConfigError::Invalid {
            path: config.config_path().to_path_buf(),
            key: "evaluate.metrics",
            reason: format!(
                "`{other}` is not a metric of this task; choose from {}",
                available.join(", ")
            ),
        }
        .into()),
        None => Ok(()),
    }
}
