//! Parquet through the `parquet` crate's Arrow reader. Typed columns are cast to their text
//! form (numbers print in their shortest exact form, so typing them again is lossless), which
//! lets [`RawTable::conform`] treat every format alike.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatchReader, StringArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::raw::text_batch;
use crate::{CsvOptions, Error, RawTable, Result};

/// Reads a Parquet file; `options.missing` applies to its text cells.
pub(crate) fn read(path: &Path, options: &CsvOptions) -> Result<RawTable> {
    let file = fs_err::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let parquet_error = |source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0)
        .map_err(parquet_error)?
        .with_batch_size(64 * 1024)
        .build()
        .map_err(parquet_error)?;
    let fields = reader.schema().fields().clone();
    let mut names: Vec<String> = Vec::with_capacity(fields.len());
    for field in &fields {
        if names.contains(field.name()) {
            return Err(Error::DuplicateColumn {
                path: path.to_path_buf(),
                name: field.name().clone(),
            });
        }
        names.push(field.name().clone());
    }
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|source| Error::Parquet {
            path: path.to_path_buf(),
            source: source.into(),
        })?;
        let arrays = batch
            .columns()
            .iter()
            .zip(&names)
            .map(|(array, name)| as_text(path, name, array, &options.missing))
            .collect::<Result<Vec<_>>>()?;
        batches.push(text_batch(path, &names, arrays)?);
    }
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Err(Error::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(RawTable {
        path: path.to_path_buf(),
        names,
        batches,
        lines: None,
    })
}

/// `array` as nullable Utf8, with missing tokens as nulls.
pub(crate) fn as_text(
    path: &Path,
    name: &str,
    array: &ArrayRef,
    missing: &[String],
) -> Result<ArrayRef> {
    let unsupported = || Error::UnsupportedType {
        path: path.to_path_buf(),
        column: name.to_owned(),
        data_type: array.data_type().to_string(),
    };
    if array.data_type().is_nested() || matches!(array.data_type(), DataType::Binary) {
        return Err(unsupported());
    }
    let text = arrow_cast::cast(array, &DataType::Utf8).map_err(|_| unsupported())?;
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(unsupported)?;
    let cleaned: StringArray = text
        .iter()
        .map(|cell| cell.filter(|t| !missing.iter().any(|m| m == t)))
        .collect();
    Ok(Arc::new(cleaned))
}
