//! The data stages of a run: read the file in its format, type it with the pipeline's column
//! settings and roles, validate it against `[validate]`, and split the labelled rows.

use std::path::Path;

use arrow_array::Array;
use kiln_core::hash::{FileHash, hash_file};
use kiln_data::{
    ColumnRef, ColumnRole, ColumnSettings, ColumnSpec, Schema, Split, SplitFractions, Table,
    ValidationReport,
};
use kiln_transform::TargetKind;

use crate::config::{SplitMethod, ValidPipelineConfig};
use crate::{Error, Result};

/// A data file read, typed and validated by a pipeline.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// The typed rows, without `ignore`d (and `drop`ped) columns; a `target_above` target is
    /// already the boolean it derives.
    pub table: Table,
    /// The schema of the file's columns that are read, with roles, the target typed as in the
    /// file (what a bundle reads prediction input with).
    pub schema: Schema,
    /// The data file's hash.
    pub data_hash: FileHash,
    /// What `[validate]` found (on the typed rows, before any target is derived).
    pub report: ValidationReport,
}

/// Reads `config`'s data file, types it and runs `[validate]`. Failed rules are in the report,
/// not an error: the caller decides whether to stop.
///
/// # Errors
/// Data errors naming the file, row and column ([`kiln_data::Error::MissingColumn`], with the
/// closest name, for a column the pipeline names but the file lacks); validation config
/// mistakes (a rule that does not fit its column's type, a bad pattern).
pub fn ingest(config: &ValidPipelineConfig) -> Result<Ingested> {
    let data_hash = hash_input(config.source())?;
    let (table, schema) = read_typed(config)?;
    let report = kiln_data::validate(&table, &config.raw().validate)?;
    Ok(Ingested {
        table: derive_target(config, table)?,
        schema,
        data_hash,
        report,
    })
}

/// The blake3 and size of an input file, as a data error naming it.
pub(crate) fn hash_input(path: &Path) -> Result<FileHash> {
    hash_file(path).map_err(|e| match e {
        kiln_core::Error::Io(io) => Error::Data(kiln_data::Error::Io(io)),
        other => Error::Core(other),
    })
}

/// Reads `config`'s data file and types it with the pipeline's column settings and roles:
/// the table as `[validate]` sees it, and the schema of the columns read.
pub(crate) fn read_typed(config: &ValidPipelineConfig) -> Result<(Table, Schema)> {
    let raw = kiln_data::read_table(config.source(), config.read_options())?;
    let schema = typed_schema(config, &raw)?;
    let table = raw.conform(&schema, &[])?;
    Ok((table, schema))
}

/// The schema of the columns `config` reads, inferred from `raw`'s first `infer_rows` rows
/// with the pipeline's column settings and roles.
pub(crate) fn typed_schema(
    config: &ValidPipelineConfig,
    raw: &kiln_data::RawTable,
) -> Result<Schema> {
    let data = &config.raw().data;
    let mut specs = data.columns.clone();
    for (name, role) in config.roles() {
        let column_type = specs.get(&name).and_then(|s| s.column_type());
        specs.insert(
            name,
            ColumnSpec::Full(ColumnSettings {
                column_type,
                role: Some(role),
            }),
        );
    }
    let mut schema = kiln_data::infer_schema_with(raw, data.infer_rows, &specs)?;
    schema.columns.retain(|c| c.role != ColumnRole::Ignore);
    Ok(schema)
}

/// The table with a `target_above` target replaced by the boolean it derives.
pub(crate) fn derive_target(config: &ValidPipelineConfig, table: Table) -> Result<Table> {
    let data = &config.raw().data;
    Ok(match data.target_above {
        Some(above) => table.binarize(&data.target, above)?,
        None => table,
    })
}

/// Reads, types and validates `config`'s data file, for `kiln validate`.
///
/// # Errors
/// As [`ingest`].
pub fn validate(config: &ValidPipelineConfig) -> Result<ValidationReport> {
    Ok(ingest(config)?.report)
}

/// Splits the `labelled` rows of `table` by `config`'s `[split]`: stratified for
/// classification and random for regression unless a method is set.
///
/// # Errors
/// [`Error::MissingSplitKey`] when a labelled row has no group or time value.
pub(crate) fn split(
    config: &ValidPipelineConfig,
    table: &Table,
    labelled: &[usize],
    kind: TargetKind,
) -> Result<(Split, SplitMethod)> {
    let raw_config = config.raw();
    let method = raw_config.split.method.unwrap_or(match kind {
        TargetKind::Classification => SplitMethod::Stratified,
        TargetKind::Regression => SplitMethod::Random,
    });
    let fractions: SplitFractions = config.fractions();
    let mut rng = kiln_core::rng::stream(raw_config.pipeline.seed, "split");
    let split = match method {
        SplitMethod::Random => Split::random(labelled, fractions, &mut rng),
        SplitMethod::Stratified => {
            let target = table.require(&raw_config.data.target)?;
            let labels: Vec<String> = labelled
                .iter()
                .map(|&r| target.text(r).unwrap_or_default())
                .collect();
            Split::stratified(labelled, &labels, fractions, &mut rng)
        }
        SplitMethod::Group => {
            let (name, column) = split_column(config, table)?;
            let groups = keys(table, name, labelled, |r| column.text(r))?;
            Split::group(labelled, &groups, fractions, &mut rng)
        }
        SplitMethod::Time => {
            let (name, column) = split_column(config, table)?;
            match column {
                ColumnRef::Datetime(values) => {
                    let times = keys(table, name, labelled, |r| {
                        values.is_valid(r).then(|| values.value(r))
                    })?;
                    Split::time_ordered(labelled, &times, fractions)
                }
                ColumnRef::Numeric(values) => {
                    let times = keys(table, name, labelled, |r| {
                        values.is_valid(r).then(|| total_order(values.value(r)))
                    })?;
                    Split::time_ordered(labelled, &times, fractions)
                }
                // Text times (e.g. `2024-03`) order as text.
                column => {
                    let times = keys(table, name, labelled, |r| column.text(r))?;
                    Split::time_ordered(labelled, &times, fractions)
                }
            }
        }
    };
    Ok((split, method))
}

/// The split for cross-validation fold `fold`: train and valid rows re-dealt into folds
/// (stratified by the target for classification, seeded by the pipeline seed), test kept.
///
/// # Errors
/// [`kiln_data::Error::BadFolds`] when `k` is not in `2..=rows` or `index >= k`.
pub(crate) fn cv_fold(
    config: &ValidPipelineConfig,
    table: &Table,
    split: &Split,
    kind: TargetKind,
    fold: crate::run::CvFold,
) -> Result<Split> {
    let mut rows: Vec<usize> = split.train.iter().chain(&split.valid).copied().collect();
    rows.sort_unstable();
    let mut rng = kiln_core::rng::stream(config.raw().pipeline.seed, "cv-folds");
    let folds = match kind {
        TargetKind::Classification => {
            let target = table.require(&config.raw().data.target)?;
            let labels: Vec<String> = rows
                .iter()
                .map(|&r| target.text(r).unwrap_or_default())
                .collect();
            kiln_data::stratified_k_fold(&rows, &labels, fold.k, &mut rng)?
        }
        TargetKind::Regression => kiln_data::k_fold(&rows, fold.k, &mut rng)?,
    };
    let chosen = folds
        .into_iter()
        .nth(fold.index)
        .ok_or(kiln_data::Error::BadFolds {
            k: fold.k,
            rows: rows.len(),
        })?;
    Ok(Split {
        train: chosen.train,
        valid: chosen.valid,
        test: split.test.clone(),
    })
}

fn split_column<'t>(
    config: &'t ValidPipelineConfig,
    table: &'t Table,
) -> Result<(&'t str, ColumnRef<'t>)> {
    let name = config
        .split_column()
        .expect("a checked group or time split names its column");
    Ok((name, table.require(name)?))
}

/// The split key of every labelled row; a row without one is an error naming it.
fn keys<K>(
    table: &Table,
    column: &str,
    rows: &[usize],
    key: impl Fn(usize) -> Option<K>,
) -> Result<Vec<K>> {
    rows.iter()
        .map(|&r| {
            key(r).ok_or_else(|| Error::MissingSplitKey {
                path: table.path().to_path_buf(),
                row: table.location(r),
                column: column.to_owned(),
            })
        })
        .collect()
}

/// An integer with the order of `value` (finite values, as the table holds no NaN).
fn total_order(value: f64) -> i64 {
    // IEEE 754 bits order positive floats; flipping the magnitude bits of negatives orders
    // them too (the standard total-order trick, as in `f64::total_cmp`).
    #[allow(clippy::cast_possible_wrap)] // The reinterpretation is the point.
    let bits = value.to_bits() as i64;
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)]
    let flip = (((bits >> 63) as u64) >> 1) as i64;
    bits ^ flip
}

#[cfg(test)]
mod tests {
    use super::total_order;

    #[test]
    fn total_order_keeps_the_order_of_floats() {
        let values = [-1e300, -2.5, -0.0, 0.0, 1e-300, 3.0, 1e300];
        let keys: Vec<i64> = values.iter().map(|&v| total_order(v)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    }
}
