//! Each bad input is a clear error naming the file, and the row and column where they apply.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use kiln_data::{Error, ReadOptions, RowLocation, infer_schema, read_table};

fn read_err(name: &str, bytes: &[u8]) -> (tempfile::TempDir, Error) {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::write(dir.path(), name, bytes);
    let err = read_table(&path, &ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains(name), "names the file: {err}");
    (dir, err)
}

#[test]
fn ragged_row() {
    let (_dir, err) = read_err("ragged.csv", b"a,b\n1,2\n3,4,5\n");
    assert!(
        matches!(
            err,
            Error::RaggedRow {
                line: 3,
                expected: 2,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn invalid_utf8() {
    let (_dir, err) = read_err("utf8.csv", b"a,b\n1,ok\n2,caf\xe9\n");
    assert!(
        matches!(err, Error::InvalidUtf8 { line: 3, ref column, .. } if column == "b"),
        "{err}"
    );
    let (_dir, err) = read_err("utf8.jsonl", b"{\"a\": 1, \"b\": \"caf\xe9\"}\n");
    assert!(
        matches!(err, Error::InvalidUtf8 { line: 1, ref column, .. } if column == "b"),
        "{err}"
    );
}

#[test]
fn type_changes_after_the_inference_sample() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("n,s\n");
    for i in 0..50 {
        writeln!(csv, "{i},x").unwrap();
    }
    csv.push_str("forty,y\n");
    let path = crate::write(dir.path(), "drift.csv", csv.as_bytes());
    let raw = read_table(&path, &ReadOptions::default()).unwrap();
    let schema = infer_schema(&raw, 20, &BTreeMap::new()).unwrap();
    let err = raw.conform(&schema, &[]).unwrap_err();
    assert!(
        matches!(err, Error::BadValue { row: RowLocation::Line(52), ref column, .. } if column == "n"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("drift.csv: line 52, column `n`: cannot read `forty`")
    );
}

#[test]
fn empty_file() {
    for name in ["empty.csv", "empty.jsonl", "empty.parquet"] {
        let (_dir, err) = read_err(name, b"");
        assert!(matches!(err, Error::EmptyFile { .. }), "{err}");
    }
}

#[test]
fn header_only_file() {
    let (_dir, err) = read_err("header.csv", b"a,b\n");
    assert!(matches!(err, Error::NoRows { .. }), "{err}");
    let (_dir, err) = read_err("blank.jsonl", b"\n\n");
    assert!(matches!(err, Error::NoRows { .. }), "{err}");
}

#[test]
fn duplicate_column_names() {
    let (_dir, err) = read_err("dup.csv", b"a,b,a\n1,2,3\n");
    assert!(
        matches!(err, Error::DuplicateColumn { ref name, .. } if name == "a"),
        "{err}"
    );
}

#[test]
fn truncated_gzip() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    writeln!(gz, "a,b").unwrap();
    for i in 0..2000 {
        writeln!(gz, "{i},{}", i * 2).unwrap();
    }
    let bytes = gz.finish().unwrap();
    let (_dir, err) = read_err("cut.csv.gz", &bytes[..bytes.len() / 2]);
    assert!(matches!(err, Error::Gzip { .. }), "{err}");
}

#[test]
fn truncated_parquet() {
    use arrow_array::{Float64Array, RecordBatch};
    use std::sync::Arc;
    let batch = RecordBatch::try_from_iter([(
        "x",
        Arc::new(Float64Array::from_iter_values((0..1000).map(f64::from))) as _,
    )])
    .unwrap();
    let mut bytes = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let (_dir, err) = read_err("cut.parquet", &bytes[..bytes.len() - 100]);
    assert!(matches!(err, Error::Parquet { .. }), "{err}");
}

#[test]
fn hundred_megabyte_field_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.csv");
    let mut file = std::io::BufWriter::new(fs_err::File::create(&path).unwrap());
    file.write_all(b"a,b\n1,\"").unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        file.write_all(&chunk).unwrap();
    }
    file.write_all(b"\"\n").unwrap();
    file.flush().unwrap();
    drop(file);
    let err = read_table(&path, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::FieldTooLarge { line: 2, ref column, limit, .. }
            if column == "b" && limit == kiln_data::DEFAULT_MAX_FIELD_BYTES),
        "{err}"
    );
    assert!(
        err.to_string().contains("huge.csv: line 2, column `b`"),
        "{err}"
    );
}

#[test]
fn unknown_column_suggests_the_closest() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::write(dir.path(), "cols.csv", b"bill_length_mm,species\n1,a\n");
    let raw = read_table(&path, &ReadOptions::default()).unwrap();
    let overrides = BTreeMap::from([("bill_lenght_mm".to_owned(), kiln_data::ColumnType::Numeric)]);
    let err = infer_schema(&raw, 10, &overrides).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("cols.csv: no column `bill_lenght_mm`; did you mean `bill_length_mm`?"),
        "{err}"
    );
    let schema = infer_schema(&raw, 10, &BTreeMap::new()).unwrap();
    let table = raw.conform(&schema, &[]).unwrap();
    let err = table.require("specie").unwrap_err();
    assert!(err.to_string().contains("did you mean `species`?"), "{err}");
}
