//! Ingest: read + type inference + typed Arrow columns, the work before anything else in
//! `kiln train`, on the example files shipped in the repository (CSV and gzipped IDX).
//! Throughput in bytes of the file. `peers/ingest.py` compares a larger file against pyarrow,
//! polars and pandas.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const FILES: [&str; 3] = [
    "examples/diamonds/diamonds.csv",
    "examples/digits/digits.csv",
    "examples/mnist/mnist_5k-images-idx3-ubyte.gz",
];

fn ingest(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut group = c.benchmark_group("ingest");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for file in FILES {
        let path = root.join(file);
        let bytes = fs_err::metadata(&path)
            .expect("the example file exists")
            .len();
        group.throughput(Throughput::Bytes(bytes));
        let name = path
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        group.bench_function(BenchmarkId::new("read_infer_conform", name), |b| {
            b.iter(|| {
                let raw = kiln_data::read_table(&path, &kiln_data::ReadOptions::default())
                    .expect("the example reads");
                let schema =
                    kiln_data::infer_schema(&raw, 1000, &BTreeMap::new()).expect("it types");
                black_box(raw.conform(&schema, &[]).expect("it conforms"))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
