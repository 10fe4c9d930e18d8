//! Feature-transform throughput: fit (median imputation + standardization of the numeric
//! columns, one-hot of the categorical ones) on every row of a file, then transform every row
//! into the dense model matrix. Prints one JSON line for `benches/peers/transforms.py`, which
//! runs scikit-learn's ColumnTransformer on the same columns.
//!
//! ```sh
//! cargo build --release --workspace --example fit_transform
//! target/release/examples/fit_transform ../shared/data/flights.csv 5 \
//!     dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,air_time,distance,hour,minute \
//!     carrier,origin,dest
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use kiln_data::ColumnType;
use kiln_transform::{FeatureConfig, FeaturePlan};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, reps, numeric, categorical] = args.as_slice() else {
        anyhow::bail!("usage: fit_transform FILE REPS NUMERIC,COLUMNS CATEGORICAL,COLUMNS");
    };
    let path = PathBuf::from(path);
    let reps: usize = reps.parse::<usize>()?.max(1);
    let numeric: Vec<&str> = numeric.split(',').collect();
    let categorical: Vec<&str> = categorical.split(',').collect();
    let raw = kiln_data::read_table(&path, &kiln_data::ReadOptions::default())?;
    let types: BTreeMap<String, ColumnType> = numeric
        .iter()
        .map(|&c| (c.to_owned(), ColumnType::Numeric))
        .chain(
            categorical
                .iter()
                .map(|&c| (c.to_owned(), ColumnType::Categorical)),
        )
        .collect();
    let schema = kiln_data::infer_schema(&raw, 1000, &types)?;
    let table = raw.conform(&schema, &[])?;
    let used: Vec<&str> = numeric.iter().chain(&categorical).copied().collect();
    let exclude: Vec<&str> = schema.names().filter(|n| !used.contains(n)).collect();
    let rows: Vec<usize> = (0..table.n_rows()).collect();
    let plan = FeaturePlan::new(&schema, &exclude, FeatureConfig::default());
    let mut runs = Vec::with_capacity(reps);
    let mut width = 0;
    // One warm-up (allocator, thread pool), then the timed runs.
    for rep in 0..=reps {
        let started = Instant::now();
        let fitted = plan.fit(&table, &rows)?;
        let fit = started.elapsed().as_secs_f64();
        let matrix = fitted.transform(&table, &rows)?;
        let total = started.elapsed().as_secs_f64();
        width = matrix.cols;
        if rep > 0 {
            runs.push([total, fit]);
        }
    }
    let median = |phase: usize| {
        let mut values: Vec<f64> = runs.iter().map(|r| r[phase]).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    #[allow(clippy::cast_precision_loss)] // Row counts far below 2^52.
    let rows_per_s = rows.len() as f64 / median(0);
    let line = serde_json::json!({
        "name": "kiln",
        "rows": rows.len(),
        "width": width,
        "threads": rayon::current_num_threads(),
        "median_s": median(0),
        "fit_s": median(1),
        "runs_s": runs.iter().map(|r| r[0]).collect::<Vec<_>>(),
        "rows_per_s": rows_per_s,
    });
    println!("{line}");
    Ok(())
}
