//! A typed [`Table`] stored as one Parquet file, for kiln's stage cache: reading it back skips
//! parsing and type inference, and gives the same table (file lines included, so errors in
//! later stages still name the source file's lines).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema as ArrowSchema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, Schema, Table};

/// The Parquet key-value entry that holds the table's kiln metadata.
const META_KEY: &str = "kiln.table";
/// The extra column holding each row's source line, when the table has them.
const LINE_COLUMN: &str = "__kiln_line";

#[derive(Serialize, Deserialize)]
struct StoredMeta {
    source: PathBuf,
    schema: Schema,
    has_lines: bool,
    /// Absent in tables stored before chunks were located by it: they start at row 0.
    #[serde(default)]
    first_row: usize,
}

impl Table {
    /// Writes the table to `path` as Parquet (snappy: cheap to decode, the point of a cache).
    ///
    /// # Errors
    /// IO and Parquet errors, naming `path`.
    ///
    /// # Panics
    /// Never: the metadata is plain serializable data.
    pub fn store(&self, path: &Path) -> Result<()> {
        let parquet_error = |source| Error::Parquet {
            path: path.to_path_buf(),
            source,
        };
        let mut fields: Vec<Arc<Field>> = self.batch.schema().fields().iter().cloned().collect();
        let mut columns: Vec<ArrayRef> = self.batch.columns().to_vec();
        if let Some(lines) = &self.lines {
            fields.push(Arc::new(Field::new(LINE_COLUMN, DataType::UInt64, false)));
            columns.push(Arc::new(UInt64Array::from_iter_values(
                lines.iter().map(|&l| l as u64),
            )));
        }
        let meta = StoredMeta {
            source: self.path.clone(),
            schema: self.schema.clone(),
            has_lines: self.lines.is_some(),
            first_row: self.first_row,
        };
        let meta = serde_json::to_string(&meta).expect("schema serializes");
        let schema = Arc::new(ArrowSchema::new(fields).with_metadata(
            std::collections::HashMap::from([(META_KEY.to_owned(), meta)]),
        ));
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|source| Error::Arrow {
                path: path.to_path_buf(),
                source,
            })?;
        let file = fs_err::File::create(path)?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer = ArrowWriter::try_new(file.into_parts().0, schema, Some(properties))
            .map_err(parquet_error)?;
        writer.write(&batch).map_err(parquet_error)?;
        writer.close().map_err(parquet_error)?;
        Ok(())
    }

    /// Reads a table written by [`Table::store`].
    ///
    /// # Errors
    /// IO and Parquet errors naming `path`; [`Error::NotStoredTable`] for a Parquet file that
    /// [`Table::store`] did not write.
    pub fn load_stored(path: &Path) -> Result<Table> {
        let parquet_error = |source| Error::Parquet {
            path: path.to_path_buf(),
            source,
        };
        let file = fs_err::File::open(path)?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0).map_err(parquet_error)?;
        let not_stored = || Error::NotStoredTable {
            path: path.to_path_buf(),
        };
        let meta: StoredMeta = builder
            .schema()
            .metadata()
            .get(META_KEY)
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or_else(not_stored)?;
        let arrow_schema = Arc::clone(builder.schema());
        let reader = builder
            .with_batch_size(1 << 20)
            .build()
            .map_err(parquet_error)?;
        let batches = reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|source| Error::Arrow {
                path: path.to_path_buf(),
                source,
            })?;
        let mut batch =
            arrow_select::concat::concat_batches(&arrow_schema, &batches).map_err(|source| {
                Error::Arrow {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        let lines = if meta.has_lines {
            let index = batch.num_columns().checked_sub(1).ok_or_else(not_stored)?;
            let column = batch.column(index);
            let lines = column
                .as_any()
                .downcast_ref::<UInt64Array>()
                .filter(|a| a.null_count() == 0)
                .ok_or_else(not_stored)?;
            // Lines were usize when stored, on a machine of this word size.
            #[allow(clippy::cast_possible_truncation)]
            let lines = lines.values().iter().map(|&l| l as usize).collect();
            batch.remove_column(index);
            Some(lines)
        } else {
            None
        };
        // The key-value metadata belongs to the file, not the table.
        let fields = batch.schema().fields().clone();
        let batch =
            RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), batch.columns().to_vec())
                .map_err(|source| Error::Arrow {
                    path: path.to_path_buf(),
                    source,
                })?;
        if batch.num_columns() != meta.schema.columns.len() {
            return Err(not_stored());
        }
        Ok(Table {
            path: meta.source,
            schema: meta.schema,
            batch,
            lines,
            first_row: meta.first_row,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{ReadOptions, infer_schema, read_table};

    use super::*;

    #[test]
    fn a_stored_table_loads_back_identical() {
        let data =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/penguins/penguins.csv");
        let raw = read_table(&data, &ReadOptions::default()).unwrap();
        let schema = infer_schema(&raw, 1000, &std::collections::BTreeMap::new()).unwrap();
        let table = raw.conform(&schema, &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let stored = dir.path().join("table.parquet");
        table.store(&stored).unwrap();
        let loaded = Table::load_stored(&stored).unwrap();
        assert_eq!(loaded.path(), table.path());
        assert_eq!(loaded.schema(), table.schema());
        assert_eq!(loaded.batch(), table.batch());
        assert_eq!(loaded.lines, table.lines);
        assert!(loaded.lines.is_some(), "CSV rows keep their file lines");
    }

    #[test]
    fn a_foreign_parquet_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.parquet");
        let column: ArrayRef = Arc::new(UInt64Array::from(vec![1_u64, 2]));
        let batch = RecordBatch::try_from_iter([("x", column)]).unwrap();
        let file = fs_err::File::create(&path).unwrap();
        let mut writer = ArrowWriter::try_new(file.into_parts().0, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        assert!(matches!(
            Table::load_stored(&path),
            Err(Error::NotStoredTable { .. })
        ));
    }
}
