//! Picking a reader: the format and compression, from the file name or set outright.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::csv::CsvChunks;
use crate::{CsvOptions, Error, RawTable, Result};

/// A tabular file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Delimited text (`.csv`, `.tsv`, `.txt`), see [`CsvOptions`].
    Csv,
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
    /// One JSON object per line (`.jsonl`, `.ndjson`).
    #[serde(rename = "jsonl")]
    JsonLines,
    /// MNIST's IDX images (`*-images-idx3-ubyte`), with the labels file beside it.
    Idx,
}

/// A compression wrapped around a text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain bytes.
    None,
    /// gzip (`.gz`), including concatenated members.
    Gzip,
}

impl Format {
    /// The format and compression that `path`'s extension names (case-insensitive), such as
    /// `data.csv.gz` → (Csv, Gzip); `None` for an unknown extension.
    pub fn detect(path: &Path) -> Option<(Format, Compression)> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let (stem, compression) = match name.strip_suffix(".gz") {
            Some(stem) => (stem, Compression::Gzip),
            None => (name.as_str(), Compression::None),
        };
        if stem.ends_with("-ubyte") {
            return Some((Format::Idx, compression));
        }
        let extension = stem.rsplit_once('.')?.1;
        let format = match extension {
            "csv" | "tsv" | "txt" => Format::Csv,
            "jsonl" | "ndjson" => Format::JsonLines,
            "parquet" | "pq" if compression == Compression::None => Format::Parquet,
            _ => return None,
        };
        Some((format, compression))
    }
}

/// How to read a data file of any format.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReadOptions {
    /// The format; `None` picks it from the file name ([`Format::detect`]).
    #[serde(default)]
    pub format: Option<Format>,
    /// The compression; `None` picks it from the file name (`.gz` is gzip).
    #[serde(default)]
    pub compression: Option<Compression>,
    /// CSV settings; its `missing` tokens and `max_field_bytes` apply to every format.
    #[serde(default)]
    pub csv: CsvOptions,
}

/// Reads a CSV, Parquet or JSON Lines file into text columns, ready for
/// [`infer_schema`](crate::infer_schema) and [`RawTable::conform`]. Typed Parquet and JSON
/// values become their shortest exact text, so every format types the same way.
///
/// # Errors
/// [`Error::UnknownFormat`] when the format is neither set nor recognisable from the name;
/// otherwise the reader's errors: [`Error::EmptyFile`], [`Error::NoRows`],
/// [`Error::DuplicateColumn`], [`Error::RaggedRow`], [`Error::InvalidUtf8`],
/// [`Error::FieldTooLarge`], [`Error::Json`], [`Error::Gzip`], [`Error::Parquet`],
/// [`Error::UnsupportedType`], and IO errors naming the path.
pub fn read_table(path: &Path, options: &ReadOptions) -> Result<RawTable> {
    let (format, compression) = format_of(path, options)?;
    match format {
        Format::Csv => crate::csv::read(path, compression, &options.csv),
        Format::JsonLines => crate::jsonl::read(path, compression, &options.csv),
        Format::Parquet => crate::pq::read(path, &options.csv),
        Format::Idx => crate::idx::read(path, compression),
    }
}

/// Every file that reading `path` opens: `path` itself and, for MNIST IDX images, the labels
/// file beside it when there is one. Provenance hashes all of them.
pub fn input_files(path: &Path, options: &ReadOptions) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    if let Ok((Format::Idx, _)) = format_of(path, options)
        && let Some(labels) = crate::idx::labels_beside(path).filter(|p| p.is_file())
    {
        files.push(labels);
    }
    files
}

/// A data file as chunks of at most `rows_per_chunk` rows, for one pass over a file larger
/// than memory (batch scoring, streaming training). CSV, plain or gzip, streams through
/// [`CsvChunks`] and Parquet through [`crate::ParquetChunks`]; JSON Lines and IDX files are
/// read whole, as one chunk.
///
/// # Errors
/// As [`read_table`]; errors past a file's header or footer come from the iterator.
pub fn read_chunks(
    path: &Path,
    options: &ReadOptions,
    rows_per_chunk: usize,
) -> Result<Box<dyn Iterator<Item = Result<RawTable>>>> {
    match format_of(path, options)? {
        (Format::Csv, compression) => Ok(Box::new(CsvChunks::open(
            path,
            compression,
            &options.csv,
            rows_per_chunk,
        )?)),
        (Format::Parquet, _) => Ok(Box::new(crate::ParquetChunks::open(
            path,
            &options.csv,
            rows_per_chunk,
        )?)),
        _ => Ok(Box::new(std::iter::once(read_table(path, options)))),
    }
}

/// What reading a data file whole would hold in memory, estimated without reading it: a
/// Parquet file's uncompressed data size from its footer; four times a gzip file's size (a
/// typical CSV ratio); any other file's size.
///
/// # Errors
/// IO errors; [`Error::Parquet`] for a Parquet file without a readable footer;
/// [`Error::UnknownFormat`].
pub fn estimated_memory_bytes(path: &Path, options: &ReadOptions) -> Result<u64> {
    let (format, compression) = format_of(path, options)?;
    if format == Format::Parquet {
        return crate::pq::data_bytes(path);
    }
    let size = fs_err::metadata(path)?.len();
    Ok(match compression {
        Compression::Gzip => size.saturating_mul(4),
        Compression::None => size,
    })
}

/// The format and compression `options` set, else those of the file name.
fn format_of(path: &Path, options: &ReadOptions) -> Result<(Format, Compression)> {
    let detected = Format::detect(path);
    let format =
        options
            .format
            .or(detected.map(|(f, _)| f))
            .ok_or_else(|| Error::UnknownFormat {
                path: path.to_path_buf(),
            })?;
    let compression = options
        .compression
        .or(detected.map(|(_, c)| c))
        .unwrap_or(Compression::None);
    Ok((format, compression))
}

/// `path` as buffered bytes, decompressed.
pub(crate) fn open(path: &Path, compression: Compression) -> Result<Box<dyn BufRead + Send>> {
    let file = fs_err::File::open(path)?;
    Ok(match compression {
        Compression::None => Box::new(BufReader::with_capacity(1 << 16, file)),
        Compression::Gzip => Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(BufReader::new(file)),
        )),
    })
}

/// A read failure: a gzip decoding error names the file; plain IO errors already do.
pub(crate) fn read_error(path: &Path, gz: bool, source: std::io::Error) -> Error {
    if gz {
        Error::Gzip {
            path: path.to_path_buf(),
            source,
        }
    } else {
        Error::Io(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_by_extension() {
        let detect = |name: &str| Format::detect(Path::new(name));
        assert_eq!(detect("d/x.CSV.gz"), Some((Format::Csv, Compression::Gzip)));
        assert_eq!(
            detect("x.parquet"),
            Some((Format::Parquet, Compression::None))
        );
        assert_eq!(
            detect("x.jsonl"),
            Some((Format::JsonLines, Compression::None))
        );
        assert_eq!(
            detect("t10k-images-idx3-ubyte.gz"),
            Some((Format::Idx, Compression::Gzip))
        );
        assert_eq!(detect("x.xlsx"), None);
        assert_eq!(detect("csv"), None);
    }
}
