//! CSV (or any format) ingest throughput: read + type inference + typed Arrow columns, the
//! work `kiln train` does before anything else. Prints one JSON line, for
//! `benches/peers/ingest.py`, which runs the peers on the same file.
//!
//! ```sh
//! cargo build --release -p kiln-data --example ingest   # no burn in this graph
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
    let mut seconds = Vec::with_capacity(reps);
    let mut rows = 0;
    // One warm-up read (page cache, allocator), then the timed ones.
    for rep in 0..=reps {
        let started = Instant::now();
        let raw = kiln_data::read_table(&path, &kiln_data::ReadOptions::default())?;
        let schema = kiln_data::infer_schema(&raw, 1000, &BTreeMap::new())?;
        let table = raw.conform(&schema, &[])?;
        let elapsed = started.elapsed().as_secs_f64();
        rows = table.n_rows();
        if rep > 0 {
            seconds.push(elapsed);
        }
    }
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    #[allow(clippy::cast_precision_loss)] // Sizes far below 2^52.
    let (rows_f, bytes_f) = (rows as f64, bytes as f64);
    let line = serde_json::json!({
        "reader": "kiln",
        "rows": rows,
        "bytes": bytes,
        "median_s": median,
        "runs_s": seconds,
        "rows_per_s": rows_f / median,
        "MB_per_s": bytes_f / 1e6 / median,
    });
    println!("{line}");
    Ok(())
}
