//! `kiln train` on data larger than memory: the file is read in chunks, pass after pass, and
//! no pass holds more than a chunk of rows.
//!
//! A run streams when `[data] streaming = true`, or when the file's estimated size exceeds
//! `[data] memory_budget_mib` (`kiln train --memory-budget-mib`), as
//! [`kiln_data::estimated_memory_bytes`] estimates it. Streaming reads CSV files, plain or
//! gzip, and Parquet files.
//!
//! - **Schema** from the first chunk, as in memory (its first `infer_rows` rows); `[validate]`
//!   rules are checked on that first chunk only.
//! - **Split**: each row's split comes from a hash of the seed and its 0-based row index
//!   ([`kiln_data::RowSplitter`]): a random split by the configured fractions, the same on
//!   every pass and rerun. Only `random` streams (the default when streaming); stratified,
//!   group and time splits and cross-validation folds need every row and are refused.
//! - **Pass 1** over the train rows: column statistics, the target's classes or moments, and
//!   the transforms' first fit pass; **pass 2** the numeric scaling (see
//!   [`kiln_transform::FeaturesFitter`] for what is exact and what is sketched).
//! - **Valid sample**: a seeded uniform sample of the valid rows, at most what an eighth of the
//!   budget holds, transformed once; every epoch validates on it.
//! - **Epochs** re-read the file, transform each chunk's train rows and feed a shuffle buffer
//!   of a quarter of the budget ([`kiln_train::ShuffleBuffer`]), seeded per epoch; the batches
//!   go to [`kiln_train::fit_stream`], the same loop as in memory.
//! - **Final metrics** of the valid and test rows from one more pass, on every row up to a
//!   cap of model outputs a sixteenth of the budget holds each (past it, a seeded uniform
//!   sample; the manifest says how many rows were scored).
//!
//! Peak memory: the budget plus the binary, the backend and the model, and what grows with
//! the distinct values of categorical columns (their counts).

use std::collections::BTreeMap;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use kiln_core::Matrix;
use kiln_core::rng::Reservoir;
use kiln_data::{Format, RowSplitter, Schema, StatsOptions, Table};
use kiln_models::Net;
use kiln_train::{BatchSource, Hooks, ShuffleBuffer, StreamedBatch, TrainSettings, Trained};
use kiln_transform::{FittedFeatures, FittedTarget, TargetFitter, TargetKind, Targets};
use serde::{Deserialize, Serialize};

use crate::bundle::Predictions;
use crate::config::{SplitMethod, ValidPipelineConfig};
use crate::run::{AnyPredictor, Scores, SplitRecord, score_predictions};
use crate::stages::{InputFile, Prepared, SPLIT_NAMES};
use crate::{Error, Result};

/// The budget of a run that streams without one, in MiB.
pub const DEFAULT_BUDGET_MIB: u64 = 256;

const MIB: u64 = 1 << 20;

/// How a streaming run read its data (the manifest's `streaming`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamingRecord {
    /// The memory budget, MiB.
    pub memory_budget_mib: u64,
    /// The data file's estimated in-memory size, bytes (see the module docs).
    pub estimated_bytes: u64,
    /// Rows per chunk read.
    pub chunk_rows: usize,
    /// Rows the shuffle buffer holds.
    pub shuffle_rows: usize,
    /// Valid rows each epoch validated on (a sample when the split is larger).
    pub valid_sample_rows: usize,
    /// Rows of each split the final metrics scored at most.
    pub eval_cap_rows: usize,
    /// Rows the final metrics scored, per split.
    #[serde(default)]
    pub scored_rows: BTreeMap<String, usize>,
    /// Passes over the file besides the epochs' (fitting, the valid sample, final metrics).
    pub passes: usize,
}

/// A streaming run's data: how to read it and what the fitting passes found.
pub(crate) struct Stream {
    chunks: ChunkSource,
    pub(crate) splits: BTreeMap<String, SplitRecord>,
    pub(crate) record: StreamingRecord,
    train_rows: usize,
    shuffle_rows: usize,
}

/// The budget in MiB when `config`'s run streams, `None` when it loads the file.
///
/// # Errors
/// IO errors reading the file's size.
pub(crate) fn budget(config: &ValidPipelineConfig) -> Result<Option<u64>> {
    let data = &config.raw().data;
    Ok(match (data.streaming, data.memory_budget_mib) {
        (Some(true), budget) => Some(budget.unwrap_or(DEFAULT_BUDGET_MIB)),
        (None, Some(budget)) => {
            (kiln_data::estimated_memory_bytes(config.source(), config.read_options())?
                > budget.saturating_mul(MIB))
            .then_some(budget)
        }
        (Some(false), _) | (None, None) => None,
    })
}

/// The chunks of one pass over the file, typed, the target derived, each row's split known.
#[derive(Clone)]
struct ChunkSource {
    config: ValidPipelineConfig,
    schema: Schema,
    splitter: RowSplitter,
    chunk_rows: usize,
}

/// One chunk: its rows, and each row's split (`UNLABELLED` without a target).
struct Chunk {
    table: Table,
    first_row: u64,
    splits: Vec<usize>,
}

const UNLABELLED: usize = 3;

impl Chunk {
    /// The chunk's rows in split `split` (0 train, 1 valid, 2 test).
    fn rows(&self, split: usize) -> Vec<usize> {
        (0..self.splits.len())
            .filter(|&r| self.splits[r] == split)
            .collect()
    }
}

impl ChunkSource {
    fn pass(&self) -> Result<impl Iterator<Item = Result<Chunk>> + use<>> {
        let reader = kiln_data::read_chunks(
            self.config.source(),
            self.config.read_options(),
            self.chunk_rows,
        )?;
        let source = self.clone();
        Ok(reader.map(move |raw| {
            let table = raw?.conform(&source.schema, &[])?;
            let table = crate::ingest::derive_target(&source.config, table)?;
            let target = table.require(&source.config.raw().data.target)?;
            let first_row = table.first_row() as u64;
            let splits = (0..table.n_rows())
                .zip(first_row..)
                .map(|(r, row)| {
                    if target.is_null(r) {
                        UNLABELLED
                    } else {
                        source.splitter.assign(row)
                    }
                })
                .collect();
            Ok(Chunk {
                table,
                first_row,
                splits,
            })
        }))
    }
}

/// Reads, validates (the first chunk), splits, computes the train statistics and fits the
/// target and transforms in streaming passes, and samples the valid rows: a [`Prepared`]
/// whose `stream` says how to read the rows again.
///
/// # Errors
/// [`Error::NotStreamable`] for a split or transform that needs every row; data errors
/// naming the file, line and column of a bad value in any chunk; as [`crate::stages`].
pub(crate) fn prepare(
    config: &ValidPipelineConfig,
    budget_mib: u64,
    timings: &mut BTreeMap<String, f64>,
) -> Result<Prepared> {
    let raw_config = config.raw();
    if let Some(method) = raw_config.split.method
        && method != SplitMethod::Random
    {
        return Err(Error::NotStreamable {
            option: "split.method",
            reason: format!("a {method:?} split needs every row at once; use \"random\""),
        });
    }
    let clock = Instant::now();
    let path = config.source();
    let data_hash = crate::ingest::hash_input(path)?;
    let inputs = vec![InputFile {
        path: path.to_path_buf(),
        hash: data_hash,
    }];
    timings.insert("hash".into(), clock.elapsed().as_secs_f64());
    let budget = budget_mib.max(1) * MIB;
    let read = config.read_options();
    if !matches!(
        read.format.or(Format::detect(path).map(|(f, _)| f)),
        Some(Format::Csv | Format::Parquet)
    ) {
        return Err(Error::NotStreamable {
            option: "data.source",
            reason: format!(
                "{} is neither CSV nor Parquet, the formats streaming reads",
                path.display()
            ),
        });
    }

    // The schema and the validation rules from the first chunk.
    let clock = Instant::now();
    let infer_rows = raw_config.data.infer_rows.max(1024);
    let first = kiln_data::read_chunks(path, read, infer_rows)?
        .next()
        .ok_or_else(|| kiln_data::Error::NoRows {
            path: path.to_path_buf(),
        })??;
    let schema = crate::ingest::typed_schema(config, &first)?;
    let first = first.conform(&schema, &[])?;
    let report = kiln_data::validate(&first, &raw_config.validate)?;
    if report.has_errors() {
        return Err(Error::ValidationFailed {
            path: path.to_path_buf(),
            report,
        });
    }
    let report = serde_json::to_value(&report).expect("reports serialize");
    let first = crate::ingest::derive_target(config, first)?;
    let target_name = raw_config.data.target.as_str();
    let target_type = first
        .schema()
        .column(target_name)
        .map_or(kiln_data::ColumnType::Categorical, |c| c.column_type);
    let kind = raw_config
        .data
        .task
        .unwrap_or_else(|| TargetKind::infer(target_type));
    timings.insert("ingest".into(), clock.elapsed().as_secs_f64());

    // A chunk costs about its text (every cell, twice: raw and typed) and its dense rows.
    let per_row = 64 * schema.columns.len() as u64 + 8;
    let chunk_rows = usize::try_from(budget / 8 / per_row)
        .unwrap_or(usize::MAX)
        .clamp(1024, 65_536);
    let chunks = ChunkSource {
        config: config.clone(),
        schema: schema.clone(),
        splitter: RowSplitter::new(raw_config.pipeline.seed, config.fractions()),
        chunk_rows,
    };

    // Pass 1: statistics, the target, the transforms' first pass; split counts and hashes.
    let clock = Instant::now();
    let plan = crate::stages::feature_plan(config, &schema);
    let mut fitter = plan.fitter()?;
    let mut stats =
        kiln_data::stats::StatsAccumulator::new(first.schema(), StatsOptions::default());
    let mut target = TargetFitter::new(target_name, kind);
    let mut counts = [0_usize; 4];
    let mut hashers: [blake3::Hasher; 3] = Default::default();
    let mut rows = 0;
    let mut passes = 1;
    for chunk in chunks.pass()? {
        let chunk = chunk?;
        rows += chunk.table.n_rows();
        for (r, &split) in chunk.splits.iter().enumerate() {
            counts[split] += 1;
            if let Some(hasher) = hashers.get_mut(split) {
                hasher.update(&(chunk.first_row + r as u64).to_le_bytes());
            }
        }
        let train = chunk.rows(0);
        stats.update_rows(&chunk.table, &train)?;
        target.observe(&chunk.table, &train)?;
        fitter.observe(&chunk.table, &train)?;
    }
    if counts[UNLABELLED] == rows {
        return Err(Error::NoLabelledRows {
            path: path.to_path_buf(),
            target: target_name.to_owned(),
        });
    }
    timings.insert("stats".into(), clock.elapsed().as_secs_f64());
    let clock = Instant::now();
    while fitter.end_pass()? {
        passes += 1;
        for chunk in chunks.pass()? {
            let chunk = chunk?;
            fitter.observe(&chunk.table, &chunk.rows(0))?;
        }
    }
    let target = target.finish()?;
    let features = fitter.finish();
    let spec = crate::stages::bundle_spec(config, schema, features, target)?;
    timings.insert("transform".into(), clock.elapsed().as_secs_f64());

    // The valid sample every epoch validates on.
    let width = spec.features.width();
    let row_bytes = (width as u64 + 1) * 4 + 48;
    let sample_rows = usize::try_from(budget / 8 / row_bytes).unwrap_or(usize::MAX);
    let mut valid = Reservoir::new(
        sample_rows,
        kiln_core::rng::stream(raw_config.pipeline.seed, "stream/valid-sample"),
    );
    if counts[1] > 0 {
        passes += 1;
        for chunk in chunks.pass()? {
            let chunk = chunk?;
            let rows = chunk.rows(1);
            let x = spec.features.transform(&chunk.table, &rows)?;
            let y = spec.target.encode(&chunk.table, &rows)?;
            for i in 0..rows.len() {
                valid.offer(|| (x.row(i).to_vec(), label(&y, i)));
            }
        }
    }
    let valid = valid.into_items();
    let valid_rows = valid.len();
    let (valid_x, valid_y) = assemble(valid, width, &spec.target);

    let splits = SPLIT_NAMES
        .iter()
        .zip(&counts)
        .zip(hashers)
        .map(|((name, &rows), hasher)| {
            let hash = hasher.finalize().to_hex().to_string();
            ((*name).to_owned(), SplitRecord { rows, hash })
        })
        .collect();
    let shuffle_rows = usize::try_from(budget / 4 / row_bytes)
        .unwrap_or(usize::MAX)
        .max(raw_config.train.batch_size.max(1));
    let outputs = match &spec.target {
        FittedTarget::Classification { classes, .. } => classes.len(),
        FittedTarget::Regression { .. } => 1,
    };
    let record = StreamingRecord {
        memory_budget_mib: budget_mib,
        estimated_bytes: kiln_data::estimated_memory_bytes(path, read)?,
        chunk_rows,
        shuffle_rows,
        valid_sample_rows: valid_rows,
        eval_cap_rows: usize::try_from(budget / 16 / (outputs as u64 * 4 + 64))
            .unwrap_or(usize::MAX),
        scored_rows: BTreeMap::new(),
        passes,
    };
    Ok(Prepared {
        inputs,
        rows,
        rows_without_target: counts[UNLABELLED],
        split: kiln_data::Split::default(),
        split_method: SplitMethod::Random,
        report,
        stats: stats.finish(),
        spec,
        x: [
            Matrix::new(Vec::new(), 0, width),
            valid_x,
            Matrix::new(Vec::new(), 0, width),
        ],
        y: [empty_targets(kind), valid_y, empty_targets(kind)],
        truth: [Vec::new(), Vec::new(), Vec::new()],
        stages: BTreeMap::new(),
        stream: Some(Stream {
            chunks,
            splits,
            record,
            train_rows: counts[0],
            shuffle_rows,
        }),
    })
}

fn empty_targets(kind: TargetKind) -> Targets {
    match kind {
        TargetKind::Classification => Targets::Classes(Vec::new()),
        TargetKind::Regression => Targets::Values(Vec::new()),
    }
}

/// Row `i`'s target as f64 (class indices and f32 values are exact in it).
#[allow(clippy::cast_precision_loss)] // Class indices are small.
fn label(y: &Targets, i: usize) -> f64 {
    match y {
        Targets::Classes(c) => c[i] as f64,
        Targets::Values(v) => f64::from(v[i]),
    }
}

/// Sampled rows as a matrix and targets of `target`'s kind.
#[allow(clippy::cast_possible_truncation)] // The labels came from i64 and f32.
fn assemble(rows: Vec<(Vec<f32>, f64)>, width: usize, target: &FittedTarget) -> (Matrix, Targets) {
    let n = rows.len();
    let mut data = Vec::with_capacity(n * width);
    let mut labels = Vec::with_capacity(n);
    for (x, y) in rows {
        data.extend(x);
        labels.push(y);
    }
    let y = match target {
        FittedTarget::Classification { .. } => {
            Targets::Classes(labels.into_iter().map(|l| l as i64).collect())
        }
        FittedTarget::Regression { .. } => {
            Targets::Values(labels.into_iter().map(|l| l as f32).collect())
        }
    };
    (Matrix::new(data, n, width), y)
}

/// Each epoch's train rows, re-read, transformed and shuffled within the buffer.
struct EpochReader<'a> {
    stream: &'a Stream,
    features: &'a FittedFeatures,
    target: &'a FittedTarget,
    batch_size: usize,
    seed: u64,
}

impl BatchSource for EpochReader<'_> {
    type Error = Error;

    fn epoch(
        &mut self,
        epoch: usize,
    ) -> Result<Box<dyn Iterator<Item = StreamedBatch<Error>> + '_>> {
        let buffer = ShuffleBuffer::new(
            self.stream.shuffle_rows,
            self.batch_size,
            self.features.width(),
            matches!(self.target, FittedTarget::Classification { .. }),
            kiln_core::rng::stream(self.seed, &format!("shuffle/epoch-{epoch}")),
        );
        let mut chunks = self.stream.chunks.pass()?;
        let (features, target) = (self.features, self.target);
        let mut buffer = Some(buffer);
        Ok(Box::new(std::iter::from_fn(move || {
            loop {
                let b = buffer.as_mut()?;
                if let Some(batch) = b.pop() {
                    return Some(Ok(batch));
                }
                match chunks.next() {
                    Some(Ok(chunk)) => {
                        let rows = chunk.rows(0);
                        let pushed = features
                            .transform(&chunk.table, &rows)
                            .map_err(Error::from)
                            .and_then(|x| Ok((x, target.encode(&chunk.table, &rows)?)));
                        match pushed {
                            Ok((x, y)) => b.push(&x, &y),
                            Err(e) => {
                                buffer = None;
                                return Some(Err(e));
                            }
                        }
                    }
                    Some(Err(e)) => {
                        buffer = None;
                        return Some(Err(e));
                    }
                    None => {
                        b.finish();
                        let last = b.pop();
                        if last.is_none() {
                            buffer = None;
                        }
                        return last.map(Ok);
                    }
                }
            }
        })))
    }
}

/// Trains on `prepared`'s stream with [`kiln_train::fit_stream`].
///
/// # Errors
/// Data errors from any pass; training errors.
pub(crate) fn fit<B: AutodiffBackend>(
    prepared: &Prepared,
    stream: &Stream,
    model: Net<B>,
    settings: &TrainSettings,
    device: &B::Device,
    hooks: Hooks<'_>,
) -> Result<Trained<B>> {
    let mut reader = EpochReader {
        stream,
        features: &prepared.spec.features,
        target: &prepared.spec.target,
        batch_size: settings.batch_size,
        seed: settings.seed,
    };
    kiln_train::fit_stream(
        model,
        &mut reader,
        stream.train_rows,
        (&prepared.x[1], &prepared.y[1]),
        prepared.spec.task(),
        settings,
        device,
        hooks,
    )
}

/// One scored row: the model's outputs (class probabilities, or the value in target units)
/// and the truth (class index, or value).
type Scored = (Vec<f32>, f64);

/// The valid and test metrics from one more pass: every row of each split up to the
/// record's cap, a seeded uniform sample past it.
///
/// # Errors
/// Data errors from the pass.
pub(crate) fn evaluate(
    stream: &mut Stream,
    predictor: &AnyPredictor,
    seed: u64,
) -> Result<Vec<(&'static str, Scores)>> {
    let spec = predictor.spec();
    let cap = stream.record.eval_cap_rows;
    let mut samples: Vec<Reservoir<Scored>> = (1..3)
        .map(|i| {
            Reservoir::new(
                cap,
                kiln_core::rng::stream(seed, &format!("stream/eval-{i}")),
            )
        })
        .collect();
    stream.record.passes += 1;
    for chunk in stream.chunks.pass()? {
        let chunk = chunk?;
        for (split, sample) in (1..3).zip(&mut samples) {
            let rows = chunk.rows(split);
            if rows.is_empty() {
                continue;
            }
            let y = spec.target.encode(&chunk.table, &rows)?;
            let predictions = predictor.predict(&chunk.table, &rows)?;
            match (&predictions, &spec.target) {
                (Predictions::Classes { probabilities, .. }, _) => {
                    for i in 0..rows.len() {
                        sample.offer(|| (probabilities.row(i).to_vec(), label(&y, i)));
                    }
                }
                (Predictions::Values(values), FittedTarget::Regression { .. }) => {
                    let truth = y_truth(&chunk.table, &spec.target, &rows)?;
                    #[allow(clippy::cast_possible_truncation)] // Kept as f32, as probabilities.
                    for (i, &v) in values.iter().enumerate() {
                        sample.offer(|| (vec![v as f32], truth[i]));
                    }
                }
                (Predictions::Values(_), FittedTarget::Classification { .. }) => {
                    unreachable!("predictions and targets come from one fitted target")
                }
            }
        }
    }
    let mut scores = Vec::new();
    for (i, sample) in samples.into_iter().enumerate() {
        let name = SPLIT_NAMES[i + 1];
        let items = sample.into_items();
        stream
            .record
            .scored_rows
            .insert(name.to_owned(), items.len());
        if items.is_empty() {
            continue;
        }
        let n = items.len();
        let (predictions, y, truth) = match &spec.target {
            FittedTarget::Classification { classes, .. } => {
                let (probabilities, y) = assemble(items, classes.len(), &spec.target);
                (
                    Predictions::Classes {
                        classes: classes.clone(),
                        probabilities,
                    },
                    y,
                    Vec::new(),
                )
            }
            FittedTarget::Regression { .. } => {
                let (values, truth): (Vec<f64>, Vec<f64>) =
                    items.into_iter().map(|(v, t)| (f64::from(v[0]), t)).unzip();
                (
                    Predictions::Values(values),
                    Targets::Values(vec![0.0; n]),
                    truth,
                )
            }
        };
        scores.push((name, score_predictions(predictions, &y, &truth)));
    }
    Ok(scores)
}

/// The regression target of `rows` in the file's units.
fn y_truth(table: &Table, target: &FittedTarget, rows: &[usize]) -> Result<Vec<f64>> {
    Ok(match table.require(target.name())? {
        kiln_data::ColumnRef::Numeric(values) => rows.iter().map(|&r| values.value(r)).collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use kiln_transform::FittedColumn;

    use super::*;

    #[test]
    fn streamed_transforms_equal_the_in_memory_fit_on_the_same_train_rows() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        let mut text = String::from("x,z,c,y\n");
        for i in 0..20_000_u32 {
            let x = if i % 7 == 0 {
                "NA".to_owned()
            } else {
                format!("{}", f64::from(i % 97).mul_add(0.5, -3.0))
            };
            let c = ["a", "b", "c", "d"][(i as usize * 31) % 4];
            writeln!(
                text,
                "{x},{},{c},{}",
                (i * 7919) % 1013,
                ["n", "p"][i as usize % 2]
            )
            .unwrap();
        }
        fs_err::write(&data, text).unwrap();
        let path = dir.path().join("pipeline.toml");
        let toml = format!(
            "[pipeline]\nname = \"t\"\n[data]\nsource = {data:?}\ntarget = \"y\"\nstreaming = true\n\
             memory_budget_mib = 1\n[features]\nnumeric = {{ impute = \"mean\", scale = \"standard\" }}\n\
             [features.columns.z]\nscale = \"min_max\"\n"
        );
        fs_err::write(&path, &toml).unwrap();
        let config = crate::PipelineConfig::load(&path).unwrap();
        let streamed = prepare(&config, 1, &mut BTreeMap::new()).unwrap();
        assert!(streamed.stream.as_ref().unwrap().record.chunk_rows < 20_000);

        let (table, schema) = crate::ingest::read_typed(&config).unwrap();
        let table = crate::ingest::derive_target(&config, table).unwrap();
        let splitter = RowSplitter::new(config.raw().pipeline.seed, config.fractions());
        let train: Vec<usize> = (0..table.n_rows())
            .filter(|&r| splitter.assign(r as u64) == 0)
            .collect();
        assert_eq!(train.len(), streamed.stream.as_ref().unwrap().train_rows);
        let memory = crate::stages::feature_plan(&config, &schema)
            .fit(&table, &train)
            .unwrap();
        let target = FittedTarget::fit(&table, "y", TargetKind::Classification, &train).unwrap();
        assert_eq!(streamed.spec.target, target);
        let features = &streamed.spec.features;
        assert_eq!(features.columns.len(), memory.columns.len());
        for (s, m) in features.columns.iter().zip(&memory.columns) {
            match (s, m) {
                (FittedColumn::Numeric(s), FittedColumn::Numeric(m)) => {
                    for (a, b) in [(s.fill, m.fill), (s.center, m.center), (s.scale, m.scale)] {
                        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{s:?} {m:?}");
                    }
                }
                _ => assert_eq!(s, m),
            }
        }
    }
}
