use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use kiln_data::{
    ColumnType, CsvOptions, Format, ReadOptions, RowLocation, infer_schema, read_csv, read_table,
};
use parquet::arrow::ArrowWriter;
use std::collections::BTreeMap;

const N: usize = 40;

fn x(i: usize) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    let v = (i as f64).mul_add(0.37, -3.0) / 7.0;
    (i % 7 != 3).then_some(v)
}

fn name(i: usize) -> Option<String> {
    (!i.is_multiple_of(5)).then(|| format!("n{}", i % 4))
}

/// 2024-01-01 plus `i` days, as days since the epoch and as text.
fn day(i: usize) -> (i32, String) {
    let base = 19_723; // 2024-01-01
    let n = i32::try_from(i).unwrap();
    let text = if i < 31 {
        format!("2024-01-{:02}", i + 1)
    } else {
        format!("2024-02-{:02}", i - 30)
    };
    (base + n, text)
}

fn write_all(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    // CSV text.
    let mut csv = String::from("id,x,name,flag,day\n");
    for i in 0..N {
        writeln!(
            csv,
            "{i},{},{},{},{}",
            x(i).map_or(String::new(), |v| v.to_string()),
            name(i).unwrap_or_default(),
            i % 2 == 0,
            day(i).1
        )
        .unwrap();
    }
    let csv_path = crate::write(dir, "t.csv", csv.as_bytes());
    // The same, gzipped.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(csv.as_bytes()).unwrap();
    let gz_path = crate::write(dir, "t.csv.gz", &gz.finish().unwrap());
    // Parquet, typed.
    let ids: Vec<i64> = (0..N).map(|i| i64::try_from(i).unwrap()).collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(ids))),
        ("x", Arc::new((0..N).map(x).collect::<Float64Array>())),
        ("name", Arc::new((0..N).map(name).collect::<StringArray>())),
        (
            "flag",
            Arc::new((0..N).map(|i| Some(i % 2 == 0)).collect::<BooleanArray>()),
        ),
        (
            "day",
            Arc::new((0..N).map(|i| Some(day(i).0)).collect::<Date32Array>()),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let pq_path = dir.join("t.parquet");
    let mut writer = ArrowWriter::try_new(
        fs_err::File::create(&pq_path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    // JSON Lines, typed, keys in column order.
    let mut jsonl = String::new();
    for i in 0..N {
        writeln!(
            jsonl,
            "{{\"id\": {i}, \"x\": {}, \"name\": {}, \"flag\": {}, \"day\": \"{}\"}}",
            serde_json::to_string(&x(i)).unwrap(),
            serde_json::to_string(&name(i)).unwrap(),
            i % 2 == 0,
            day(i).1
        )
        .unwrap();
    }
    let jsonl_path = crate::write(dir, "t.jsonl", jsonl.as_bytes());
    vec![csv_path, gz_path, pq_path, jsonl_path]
}

#[test]
fn every_format_reads_to_the_same_table_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_all(dir.path());
    let mut tables = Vec::new();
    for path in &paths {
        let raw = read_table(path, &ReadOptions::default()).unwrap();
        let schema = infer_schema(&raw, 1000, &BTreeMap::new()).unwrap();
        let table = raw.conform(&schema, &[]).unwrap();
        tables.push((path, schema, table));
    }
    let (_, schema, table) = &tables[0];
    let types: Vec<_> = schema.columns.iter().map(|c| c.column_type).collect();
    assert_eq!(
        types,
        [
            ColumnType::Numeric,
            ColumnType::Numeric,
            ColumnType::Categorical,
            ColumnType::Boolean,
            ColumnType::Datetime
        ]
    );
    assert_eq!(table.n_rows(), N);
    for (path, other_schema, other) in &tables[1..] {
        assert_eq!(other_schema, schema, "{}", path.display());
        for (i, column) in schema.columns.iter().enumerate() {
            assert_eq!(
                other.batch().column(i),
                table.batch().column(i),
                "{} column {}",
                path.display(),
                column.name
            );
        }
        assert_eq!(other.batch(), table.batch(), "{}", path.display());
    }
    // Rows are located by line in text formats and by index in Parquet.
    assert_eq!(tables[0].2.location(0), RowLocation::Line(2));
    assert_eq!(tables[3].2.location(0), RowLocation::Line(1));
    assert_eq!(tables[2].2.location(5), RowLocation::Row(5));
}

#[test]
fn format_is_picked_by_extension_or_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::write(dir.path(), "data.txt.unknown", b"a\n1\n");
    let err = read_table(&path, &ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("unknown data format"), "{err}");
    let options = ReadOptions {
        format: Some(Format::Csv),
        ..ReadOptions::default()
    };
    assert_eq!(read_table(&path, &options).unwrap().n_rows(), 1);
}

#[test]
fn csv_options_cover_delimiter_quotes_comments_and_missing_tokens() {
    let options = CsvOptions {
        delimiter: b';',
        comment: Some(b'#'),
        missing: vec!["NA".into(), String::new()],
        ..CsvOptions::default()
    };
    let raw = read_csv(&crate::fixture("penguins_small.csv"), &options).unwrap();
    assert_eq!(
        raw.column_names(),
        ["species", "island", "bill_length_mm", "sex", "note"]
    );
    let schema = infer_schema(&raw, 100, &BTreeMap::new()).unwrap();
    let table = raw.conform(&schema, &[]).unwrap();
    assert_eq!(table.n_rows(), 4);
    let note = table.column("note").unwrap();
    assert_eq!(note.text(0).as_deref(), Some("first; row"));
    assert_eq!(note.text(1).as_deref(), Some("spans\ntwo lines"));
    assert!(table.column("bill_length_mm").unwrap().is_null(1));
    assert!(table.column("sex").unwrap().is_null(1));
    // Lines: comment on 1, header on 2, the quoted newline pushes row 3 to line 6.
    let lines: Vec<_> = (0..4).map(|r| table.line_of(r)).collect();
    assert_eq!(lines, [3, 4, 6, 7]);
}

#[test]
fn streamed_chunks_read_the_whole_file_and_locate_rows_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_all(dir.path());
    let options = ReadOptions::default();
    for path in &paths[..3] {
        let whole = read_table(path, &options).unwrap();
        let schema = infer_schema(&whole, 1000, &BTreeMap::new()).unwrap();
        let chunks: Vec<_> = kiln_data::read_chunks(path, &options, 7)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(chunks.len(), N.div_ceil(7), "{}", path.display());
        // The last chunk's first row is row 35 of the file: line 37 of a CSV (after the
        // header), index 35 of a Parquet file.
        let expected = if path.extension().is_some_and(|e| e == "parquet") {
            RowLocation::Row(35)
        } else {
            RowLocation::Line(37)
        };
        assert_eq!(chunks[5].location(0), expected, "{}", path.display());
        let typed: Vec<_> = chunks
            .iter()
            .map(|c| c.conform(&schema, &[]).unwrap())
            .collect();
        let joined = kiln_data::Table::concat(&typed.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(
            joined.batch(),
            whole.conform(&schema, &[]).unwrap().batch(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_bad_value_in_a_later_parquet_chunk_names_its_row_index() {
    let dir = tempfile::tempdir().unwrap();
    let x: StringArray = (0..N)
        .map(|i| {
            Some(if i == 30 {
                "oops".to_owned()
            } else {
                i.to_string()
            })
        })
        .collect();
    let batch = RecordBatch::try_from_iter([("x", Arc::new(x) as ArrayRef)]).unwrap();
    let path = dir.path().join("bad.parquet");
    let mut writer =
        ArrowWriter::try_new(fs_err::File::create(&path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let mut chunks = kiln_data::read_chunks(&path, &ReadOptions::default(), 8).unwrap();
    let first = chunks.next().unwrap().unwrap();
    let schema = infer_schema(&first, 1000, &BTreeMap::new()).unwrap();
    assert_eq!(schema.columns[0].column_type, ColumnType::Numeric);
    let errors: Vec<String> = chunks
        .filter_map(|chunk| chunk.unwrap().conform(&schema, &[]).err())
        .map(|e| e.to_string())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("bad.parquet: row index 30, column `x`: cannot read `oops`"),
        "{}",
        errors[0]
    );
}
