//! Writing predictions as CSV (arrow-csv quotes class names that need it), for a table in
//! memory or a file streamed a chunk at a time.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use kiln_data::Table;

use crate::Result;
use crate::bundle::{BundleSpec, Predictions};

/// Writes one CSV row per prediction: `predicted_<target>` then, for classes,
/// `prob_<class>` for every class.
///
/// # Errors
/// IO errors from `out`.
pub fn write_predictions_csv(
    target: &str,
    predictions: &Predictions,
    out: impl Write,
) -> std::io::Result<()> {
    let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(out);
    writer
        .write(&predictions_batch(target, predictions)?)
        .map_err(std::io::Error::other)
}

/// Predicts every row of the data file at `path`, `rows_per_chunk` rows at a time, and writes
/// the predictions to `out` as [`write_predictions_csv`] does: memory holds one chunk whatever
/// the file's size (CSV and Parquet stream; other formats are read whole, see
/// [`kiln_data::read_chunks`]).
/// Returns the number of rows predicted.
pub(crate) fn predict_file(
    spec: &BundleSpec,
    predict: impl Fn(&Table, &[usize]) -> Result<Predictions>,
    path: &Path,
    rows_per_chunk: usize,
    out: impl Write,
) -> Result<usize> {
    // arrow-csv writes the header before the first batch only.
    let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(out);
    let mut rows = 0;
    for chunk in kiln_data::read_chunks(path, &spec.read_options(path), rows_per_chunk)? {
        let table = spec.conform(&chunk?)?;
        let all: Vec<usize> = (0..table.n_rows()).collect();
        let batch = predictions_batch(spec.target.name(), &predict(&table, &all)?)?;
        writer.write(&batch).map_err(std::io::Error::other)?;
        rows += all.len();
    }
    // Flushing here, not on drop, reports a failed last write (a full disk, a closed pipe).
    writer.into_inner().flush()?;
    Ok(rows)
}

/// The predictions as the columns [`write_predictions_csv`] writes.
fn predictions_batch(target: &str, predictions: &Predictions) -> std::io::Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    match predictions {
        Predictions::Classes {
            classes,
            probabilities,
        } => {
            let predicted: StringArray = (0..probabilities.rows)
                .map(|r| Some(classes[kiln_train::metrics::argmax(probabilities.row(r))].as_str()))
                .collect();
            fields.push(Field::new(
                format!("predicted_{target}"),
                DataType::Utf8,
                false,
            ));
            columns.push(Arc::new(predicted));
            for (c, class) in classes.iter().enumerate() {
                let p: Float64Array = (0..probabilities.rows)
                    .map(|r| Some(f64::from(probabilities.row(r)[c])))
                    .collect();
                fields.push(Field::new(
                    format!("prob_{class}"),
                    DataType::Float64,
                    false,
                ));
                columns.push(Arc::new(p));
            }
        }
        Predictions::Values(values) => {
            fields.push(Field::new(
                format!("predicted_{target}"),
                DataType::Float64,
                false,
            ));
            columns.push(Arc::new(Float64Array::from(values.clone())));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(std::io::Error::other)
}
