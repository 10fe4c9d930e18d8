//! Loads a kiln bundle (a run's `bundle/` directory or a `.kiln` file from `kiln export`) and
//! predicts three penguins, from JSON rows and from an Arrow batch.

use std::sync::Arc;

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use kiln_pipeline::arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use kiln_pipeline::{Prediction, Predictor};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: embed <bundle dir or .kiln file>")?;
    let predictor = Predictor::<NdArray>::load(path.as_ref(), &NdArrayDevice::Cpu)?;

    let rows = [
        json!({"island": "Torgersen", "bill_length_mm": 39.1, "bill_depth_mm": 18.7,
               "flipper_length_mm": 181, "body_mass_g": 3750, "sex": "male", "year": 2007}),
        json!({"island": "Biscoe", "bill_length_mm": 46.1, "bill_depth_mm": 13.2,
               "flipper_length_mm": 211, "body_mass_g": 4500, "sex": "female", "year": 2007}),
        json!({"island": "Dream", "bill_length_mm": 46.5, "bill_depth_mm": 17.9,
               "flipper_length_mm": 192, "body_mass_g": 3500, "sex": null, "year": 2007}),
    ];
    // The same rows as Arrow columns, named as in the training data.
    let text = |v: [Option<&str>; 3]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
    let number = |v: [f64; 3]| Arc::new(Float64Array::from(v.to_vec())) as ArrayRef;
    let batch = RecordBatch::try_from_iter([
        (
            "island",
            text([Some("Torgersen"), Some("Biscoe"), Some("Dream")]),
        ),
        ("bill_length_mm", number([39.1, 46.1, 46.5])),
        ("bill_depth_mm", number([18.7, 13.2, 17.9])),
        ("flipper_length_mm", number([181.0, 211.0, 192.0])),
        ("body_mass_g", number([3750.0, 4500.0, 3500.0])),
        ("sex", text([Some("male"), Some("female"), None])),
        (
            "year",
            Arc::new(Int64Array::from(vec![2007; 3])) as ArrayRef,
        ),
    ])?;

    let from_json = predictor.predict_json(&rows)?;
    let from_arrow = predictor.predict_batch(&batch)?;
    for (source, predictions) in [("json", from_json), ("arrow", from_arrow)] {
        for (row, prediction) in predictions.iter().enumerate() {
            match prediction {
                Prediction::Class {
                    class,
                    probabilities,
                } => {
                    let p: Vec<String> = probabilities
                        .iter()
                        .map(|(c, p)| format!("{c}={p}"))
                        .collect();
                    println!("{source} row {row}: {class} {}", p.join(" "));
                }
                Prediction::Value { value } => println!("{source} row {row}: {value}"),
            }
        }
    }
    Ok(())
}
