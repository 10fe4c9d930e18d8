//! CSV (or any format) ingest throughput: read + type inference + typed Arrow columns, the
//! work `kiln train` does before anything else. Prints one JSON line, for
//! `benches/peers/ingest.py`, which runs the peers on the same file.
//!
//! ```sh
//! cargo build --release -p kiln-data --example ingest
//! target/release/examples/ingest ../shared/data/flights.csv 5
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: ingest FILE [REPS]"))?,
    );
    let reps: usize = args.next().map_or(Ok(5), |r| r.parse())?.max(1);
    let bytes = fs_err::metadata(&path)?.len();
    // Per repetition: total, then the read, inference and typing phases.
    let mut runs: Vec<[f64; 4]> = Vec::with_capacity(reps);
    let mut rows = 0;
    // One warm-up read (page cache, allocator), then the timed ones.
    for rep in 0..=reps {
        let started = Instant::now();
        let raw = kiln_data::read_table(&path, &kiln_data::ReadOptions::default())?;
        let read = started.elapsed().as_secs_f64();
        let schema = kiln_data::infer_schema(&raw, 1000, &BTreeMap::new())?;
        let inferred = started.elapsed().as_secs_f64();
        let table = raw.conform(&schema, &[])?;
        let total = started.elapsed().as_secs_f64();
        rows = table.n_rows();
        if rep > 0 {
            runs.push([total, read, inferred - read, total - inferred]);
        }
    }
    let median = |phase: usize| {
        let mut values: Vec<f64> = runs.iter().map(|r| r[phase]).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let seconds: Vec<f64> = runs.iter().map(|r| r[0]).collect();
    let median_total = median(0);
    #[allow(clippy::cast_precision_loss)] // Sizes far below 2^52.
    let (rows_f, bytes_f) = (rows as f64, bytes as f64);
    let line = serde_json::json!({
        "reader": "kiln",
        "rows": rows,
        "bytes": bytes,
        "median_s": median_total,
        "runs_s": seconds,
        "read_s": median(1),
        "infer_s": median(2),
        "conform_s": median(3),
        "rows_per_s": rows_f / median_total,
        "MB_per_s": bytes_f / 1e6 / median_total,
    });
    println!("{line}");
    Ok(())
}
