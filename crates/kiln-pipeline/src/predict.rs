//! Writing predictions as CSV (arrow-csv quotes class names that need it).

use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::bundle::Predictions;

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
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(std::io::Error::other)?;
    let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(out);
    writer.write(&batch).map_err(std::io::Error::other)
}
