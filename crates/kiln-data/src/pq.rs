//! Parquet through the `parquet` crate's Arrow reader. Typed columns are cast to their text
//! form (numbers print in their shortest exact form, so typing them again is lossless), which
//! lets [`RawTable::conform`] treat every format alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatchReader, StringArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::raw::{BATCH_ROWS, TextPart, text_batch};
use crate::{CsvOptions, Error, RawTable, Result};

/// Reads a Parquet file; `options.missing` applies to its text cells.
pub(crate) fn read(path: &Path, options: &CsvOptions) -> Result<RawTable> {
    let chunks = ParquetChunks::open(path, options, BATCH_ROWS)?;
    let names = chunks.names.clone();
    let mut parts = Vec::new();
    for chunk in chunks {
        parts.extend(chunk?.parts);
    }
    Ok(RawTable {
        path: path.to_path_buf(),
        names,
        parts,
        missing: Vec::new(),
        lines: None,
        first_row: 0,
    })
}

/// The uncompressed size of a Parquet file's data, from its footer: what reading it whole
/// holds in memory, give or take the text form of its numbers.
///
/// # Errors
/// IO errors, and [`Error::Parquet`] for a file that is not Parquet.
pub(crate) fn data_bytes(path: &Path) -> Result<u64> {
    let file = fs_err::File::open(path)?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0).map_err(|source| {
            Error::Parquet {
                path: path.to_path_buf(),
                source,
            }
        })?;
    Ok(builder
        .metadata()
        .row_groups()
        .iter()
        .map(|group| u64::try_from(group.total_byte_size()).unwrap_or_default())
        .sum())
}

/// A Parquet file read a batch of rows at a time, as [`crate::CsvChunks`] reads CSV, so a pass
/// over a file larger than memory holds one chunk (and the row group pages it is decoded
/// from). Each chunk is a [`RawTable`] whose rows are located by their 0-based index in the
/// file. The first chunk of a file without rows is [`Error::NoRows`].
pub struct ParquetChunks {
    path: PathBuf,
    names: Vec<String>,
    missing: Vec<String>,
    reader: ParquetRecordBatchReader,
    rows_read: usize,
    finished: bool,
}

impl ParquetChunks {
    /// Opens `path` and reads its footer; `options.missing` applies to its text cells.
    ///
    /// # Errors
    /// [`Error::EmptyFile`], [`Error::DuplicateColumn`], [`Error::Parquet`] for a file that is
    /// not Parquet or is truncated, and IO errors naming the path.
    pub fn open(path: &Path, options: &CsvOptions, rows_per_chunk: usize) -> Result<Self> {
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
            .with_batch_size(rows_per_chunk.max(1))
            .build()
            .map_err(parquet_error)?;
        let mut names: Vec<String> = Vec::new();
        for field in reader.schema().fields() {
            if names.contains(field.name()) {
                return Err(Error::DuplicateColumn {
                    path: path.to_path_buf(),
                    name: field.name().clone(),
                });
            }
            names.push(field.name().clone());
        }
        Ok(ParquetChunks {
            path: path.to_path_buf(),
            names,
            missing: options.missing.clone(),
            reader,
            rows_read: 0,
            finished: false,
        })
    }

    fn next_chunk(&mut self) -> Result<Option<RawTable>> {
        let path = &self.path;
        let batch = match self.reader.next() {
            Some(batch) => batch.map_err(|source| Error::Parquet {
                path: path.clone(),
                source: source.into(),
            })?,
            None if self.rows_read == 0 => return Err(Error::NoRows { path: path.clone() }),
            None => return Ok(None),
        };
        let arrays = batch
            .columns()
            .iter()
            .zip(&self.names)
            .map(|(array, name)| as_text(path, name, array, &self.missing))
            .collect::<Result<Vec<_>>>()?;
        let first_row = self.rows_read;
        self.rows_read += batch.num_rows();
        Ok(Some(RawTable {
            path: path.clone(),
            names: self.names.clone(),
            parts: vec![TextPart::Arrow(text_batch(path, &self.names, arrays)?)],
            missing: Vec::new(),
            lines: None,
            first_row,
        }))
    }
}

impl Iterator for ParquetChunks {
    type Item = Result<RawTable>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let next = self.next_chunk();
        // After an error or the last chunk there is nothing more to read.
        self.finished = !matches!(next, Ok(Some(_)));
        next.transpose()
    }
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
