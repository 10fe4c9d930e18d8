//! CSV through csv-core, into text columns. Parsing by hand (not arrow-csv) lets every error
//! name the exact file line and column (quoted fields may span lines, comment lines are
//! skipped), and bounds the memory a single huge field can take.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use csv_core::ReadRecordResult;
use serde::{Deserialize, Serialize};

use crate::raw::TextBuilder;
use crate::source::{Compression, Format, ReadOptions, open, read_error};
use crate::{Error, RawTable, Result};

/// How to read a CSV file. `missing` and `max_field_bytes` apply to every format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvOptions {
    /// Field delimiter.
    pub delimiter: u8,
    /// Whether the first line names the columns (else they are `column_1`, `column_2` …).
    pub has_header: bool,
    /// Cell texts read as missing values (compared exactly, before any trimming).
    pub missing: Vec<String>,
    /// Quote character; a doubled quote inside quotes is a literal quote.
    #[serde(default = "default_quote")]
    pub quote: u8,
    /// Lines starting with this byte are skipped (none by default).
    #[serde(default)]
    pub comment: Option<u8>,
    /// The longest field (or JSON Lines line) accepted, in bytes; longer ones are an error
    /// rather than an unbounded allocation.
    #[serde(default = "default_max_field_bytes")]
    pub max_field_bytes: usize,
}

fn default_quote() -> u8 {
    b'"'
}

fn default_max_field_bytes() -> usize {
    DEFAULT_MAX_FIELD_BYTES
}

/// Default for [`CsvOptions::max_field_bytes`]: 16 MiB, far above any real tabular cell.
pub const DEFAULT_MAX_FIELD_BYTES: usize = 16 << 20;

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            has_header: true,
            missing: ["", "NA", "NaN", "null"].map(String::from).to_vec(),
            quote: default_quote(),
            comment: None,
            max_field_bytes: DEFAULT_MAX_FIELD_BYTES,
        }
    }
}

/// Reads a CSV file (gzip-compressed when its name ends in `.gz`) with every column as text.
///
/// # Errors
/// [`Error::EmptyFile`], [`Error::NoRows`], [`Error::DuplicateColumn`], [`Error::RaggedRow`],
/// [`Error::InvalidUtf8`] and [`Error::FieldTooLarge`] (naming the line), [`Error::Gzip`], and
/// IO errors naming the path.
pub fn read_csv(path: &Path, options: &CsvOptions) -> Result<RawTable> {
    let compression = Format::detect(path).map_or(Compression::None, |(_, c)| c);
    let options = ReadOptions {
        format: Some(Format::Csv),
        compression: Some(compression),
        csv: options.clone(),
    };
    crate::read_table(path, &options)
}

/// A CSV file read a chunk of rows at a time, so a pass over a file larger than memory (batch
/// scoring) holds one chunk. Each chunk is a [`RawTable`] whose rows keep their file lines for
/// errors. The first chunk of a file without data rows is [`Error::NoRows`].
pub struct CsvChunks {
    path: PathBuf,
    input: Box<dyn BufRead>,
    gz: bool,
    options: CsvOptions,
    core: csv_core::Reader,
    record: Record,
    names: Vec<String>,
    /// The first line of a headerless file: already read, still to be returned as a row.
    pending: Option<usize>,
    rows_per_chunk: usize,
    chunks: usize,
    finished: bool,
}

impl CsvChunks {
    /// Opens `path` (gzip when `compression` says so) and reads its header.
    ///
    /// # Errors
    /// [`Error::EmptyFile`], [`Error::DuplicateColumn`], the header line's errors, and IO errors
    /// naming the path.
    pub fn open(
        path: &Path,
        compression: Compression,
        options: &CsvOptions,
        rows_per_chunk: usize,
    ) -> Result<Self> {
        let mut core = csv_core::ReaderBuilder::new()
            .delimiter(options.delimiter)
            .quote(options.quote)
            .comment(options.comment)
            .build();
        let mut record = Record::default();
        let mut input = open(path, compression)?;
        let gz = compression == Compression::Gzip;
        let limits = Limits {
            path,
            gz,
            max_field_bytes: options.max_field_bytes,
        };
        let Some(first_line) = record.read(&mut core, &mut input, &limits, None)? else {
            return Err(Error::EmptyFile {
                path: path.to_path_buf(),
            });
        };
        let names = if options.has_header {
            (0..record.len())
                .map(|i| {
                    record
                        .field(i)
                        .map(str::to_owned)
                        .ok_or_else(|| Error::InvalidUtf8 {
                            path: path.to_path_buf(),
                            line: first_line,
                            column: format!("#{}", i + 1),
                        })
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            (1..=record.len()).map(|i| format!("column_{i}")).collect()
        };
        Ok(Self {
            path: path.to_path_buf(),
            input,
            gz,
            options: options.clone(),
            core,
            record,
            names,
            pending: (!options.has_header).then_some(first_line),
            rows_per_chunk: rows_per_chunk.max(1),
            chunks: 0,
            finished: false,
        })
    }

    /// The column names, from the header or `column_1` … without one.
    pub fn column_names(&self) -> &[String] {
        &self.names
    }

    /// The next chunk of up to `rows_per_chunk` rows; `None` after the last.
    fn next_chunk(&mut self) -> Result<Option<RawTable>> {
        let Self {
            path,
            input,
            gz,
            options,
            core,
            record,
            names,
            pending,
            rows_per_chunk,
            chunks,
            finished,
        } = self;
        if *finished {
            return Ok(None);
        }
        let limits = Limits {
            path,
            gz: *gz,
            max_field_bytes: options.max_field_bytes,
        };
        let width = names.len();
        let mut table = TextBuilder::new(path, names.clone(), &options.missing)?;
        let mut rows = 0;
        while rows < *rows_per_chunk {
            let next = match pending.take() {
                Some(line) => Some(line),
                None => record.read(core, input, &limits, Some(names))?,
            };
            let Some(line) = next else {
                *finished = true;
                break;
            };
            if record.len() != width {
                return Err(Error::RaggedRow {
                    path: path.clone(),
                    line,
                    expected: width,
                    found: record.len(),
                });
            }
            for (i, name) in names.iter().enumerate() {
                let text = record.field(i).ok_or_else(|| Error::InvalidUtf8 {
                    path: path.clone(),
                    line,
                    column: name.clone(),
                })?;
                table.set(i, Some(text));
            }
            table.end_row(line)?;
            rows += 1;
        }
        if rows == 0 && *chunks > 0 {
            return Ok(None);
        }
        *chunks += 1;
        // The first chunk of a file with no data rows is `NoRows`.
        table.finish().map(Some)
    }
}

impl Iterator for CsvChunks {
    type Item = Result<RawTable>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.next_chunk();
        if next.is_err() {
            // A reader that failed mid-record cannot find the next record boundary.
            self.finished = true;
        }
        next.transpose()
    }
}

struct Limits<'a> {
    path: &'a Path,
    gz: bool,
    max_field_bytes: usize,
}

/// One record's unescaped bytes and the end of each field in them.
#[derive(Default)]
struct Record {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    n_bytes: usize,
    n_ends: usize,
}

impl Record {
    fn len(&self) -> usize {
        self.n_ends
    }

    /// Field `i` as text; `None` when it is not UTF-8.
    fn field(&self, i: usize) -> Option<&str> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        std::str::from_utf8(&self.bytes[start..self.ends[i]]).ok()
    }

    /// Reads the next record and returns the file line it starts on, or `None` at the end.
    /// The header's `names` bound how many fields a record may grow to, and name columns in
    /// errors.
    fn read(
        &mut self,
        core: &mut csv_core::Reader,
        input: &mut dyn BufRead,
        limits: &Limits<'_>,
        names: Option<&[String]>,
    ) -> Result<Option<usize>> {
        let width = names.map(<[String]>::len);
        self.n_bytes = 0;
        self.n_ends = 0;
        if self.bytes.is_empty() {
            self.bytes.resize(4096, 0);
            self.ends.resize(64, 0);
        }
        loop {
            let buf = input
                .fill_buf()
                .map_err(|e| read_error(limits.path, limits.gz, e))?;
            let (result, n_in, n_out, n_end) = core.read_record(
                buf,
                &mut self.bytes[self.n_bytes..],
                &mut self.ends[self.n_ends..],
            );
            let ended_with_newline = n_in > 0 && buf[n_in - 1] == b'\n';
            input.consume(n_in);
            self.n_bytes += n_out;
            self.n_ends += n_end;
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    let field_start = self.n_ends.checked_sub(1).map_or(0, |i| self.ends[i]);
                    if self.n_bytes - field_start >= limits.max_field_bytes {
                        return Err(Error::FieldTooLarge {
                            path: limits.path.to_path_buf(),
                            line: self.start_line(core, false),
                            column: column_name(names, self.n_ends),
                            limit: limits.max_field_bytes,
                        });
                    }
                    let grown = (self.bytes.len() * 2).min(self.n_bytes + limits.max_field_bytes);
                    self.bytes.resize(grown.max(self.bytes.len() + 1), 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let max_fields = width.map_or(1 << 20, |w| w + 1);
                    if self.n_ends > max_fields {
                        return Err(Error::RaggedRow {
                            path: limits.path.to_path_buf(),
                            line: self.start_line(core, false),
                            expected: width.unwrap_or(max_fields),
                            found: self.n_ends,
                        });
                    }
                    self.ends.resize(self.ends.len() * 2, 0);
                }
                ReadRecordResult::Record => {
                    let line = self.start_line(core, ended_with_newline);
                    let mut start = 0;
                    for (i, &end) in self.ends[..self.n_ends].iter().enumerate() {
                        if end - start > limits.max_field_bytes {
                            return Err(Error::FieldTooLarge {
                                path: limits.path.to_path_buf(),
                                line,
                                column: column_name(names, i),
                                limit: limits.max_field_bytes,
                            });
                        }
                        start = end;
                    }
                    return Ok(Some(line));
                }
                ReadRecordResult::End => return Ok(None),
            }
        }
    }

    /// The line the record starts on: the reader's line, less the newline that ended the record
    /// and the newlines quoted inside it.
    fn start_line(&self, core: &csv_core::Reader, ended_with_newline: bool) -> usize {
        let inner = self.bytes[..self.n_bytes].split(|&b| b == b'\n').count() - 1;
        let line = usize::try_from(core.line()).unwrap_or(usize::MAX);
        line.saturating_sub(inner + usize::from(ended_with_newline))
            .max(1)
    }
}

/// Column `index`'s name, or `#n` (1-based) before the header is known.
fn column_name(names: Option<&[String]>, index: usize) -> String {
    names
        .and_then(|n| n.get(index))
        .cloned()
        .unwrap_or_else(|| format!("#{}", index + 1))
}

/// Reads all of `path` as CSV per `options` (used by [`crate::read_table`]).
pub(crate) fn read(
    path: &Path,
    compression: Compression,
    options: &CsvOptions,
) -> Result<RawTable> {
    CsvChunks::open(path, compression, options, usize::MAX)?
        .next()
        .unwrap_or_else(|| {
            Err(Error::NoRows {
                path: path.to_path_buf(),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RowLocation;

    pub(crate) fn write_temp(name: &str, text: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-data-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs_err::write(&path, text).unwrap();
        path
    }

    #[test]
    fn chunks_concatenate_to_the_whole_file_and_keep_file_lines() {
        let path = write_temp("chunks.csv", b"a,b\n1,x\n2,\"y\nz\"\n3,NA\n4,v\n5,u\n");
        let whole = read_csv(&path, &CsvOptions::default()).unwrap();
        let chunks: Vec<RawTable> =
            CsvChunks::open(&path, Compression::None, &CsvOptions::default(), 2)
                .unwrap()
                .collect::<Result<_>>()
                .unwrap();
        assert_eq!(
            chunks.iter().map(RawTable::n_rows).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        for column in 0..2 {
            let joined: Vec<Option<&str>> =
                chunks.iter().flat_map(|c| c.text_column(column)).collect();
            assert_eq!(joined, whole.text_column(column).collect::<Vec<_>>());
        }
        // The row after the two-line quoted field starts on line 5 of the file.
        assert_eq!(chunks[1].location(0), RowLocation::Line(5));
        assert_eq!(chunks[2].location(0), RowLocation::Line(7));
    }

    #[test]
    fn a_bad_row_in_a_later_chunk_names_its_file_line_and_ends_the_chunks() {
        let path = write_temp("chunks-bad.csv", b"a,b\n1,x\n2,y\n3\n4,z\n");
        let mut chunks =
            CsvChunks::open(&path, Compression::None, &CsvOptions::default(), 1).unwrap();
        assert_eq!(chunks.column_names(), ["a", "b"]);
        assert!(chunks.next().unwrap().is_ok());
        assert!(chunks.next().unwrap().is_ok());
        let err = chunks.next().unwrap().unwrap_err();
        assert!(matches!(err, Error::RaggedRow { line: 4, .. }), "{err}");
        assert!(chunks.next().is_none());
        let empty = write_temp("chunks-empty.csv", b"a,b\n");
        let mut chunks =
            CsvChunks::open(&empty, Compression::None, &CsvOptions::default(), 10).unwrap();
        assert!(matches!(chunks.next(), Some(Err(Error::NoRows { .. }))));
    }

    #[test]
    fn reads_text_columns_with_missing_tokens() {
        let path = write_temp("ok.csv", b"a,b\n1,x\nNA,\n3,null\n");
        let raw = read_csv(&path, &CsvOptions::default()).unwrap();
        assert_eq!(raw.column_names(), ["a", "b"]);
        assert_eq!(raw.n_rows(), 3);
        let a: Vec<_> = raw.text_column(0).collect();
        assert_eq!(a, [Some("1"), None, Some("3")]);
        let b: Vec<_> = raw.text_column(1).collect();
        assert_eq!(b, [Some("x"), None, None]);
    }

    #[test]
    fn lines_count_comments_quoted_newlines_and_blank_lines() {
        let options = CsvOptions {
            comment: Some(b'#'),
            delimiter: b';',
            ..CsvOptions::default()
        };
        let text = b"# a comment\na;b\n1;\"two\nlines\"\n\n# another\n3;\"x;y\"\r\n4;5";
        let path = write_temp("lines.csv", text);
        let raw = read_csv(&path, &options).unwrap();
        assert_eq!(raw.column_names(), ["a", "b"]);
        let b: Vec<_> = raw.text_column(1).collect();
        assert_eq!(b, [Some("two\nlines"), Some("x;y"), Some("5")]);
        let lines: Vec<_> = (0..3).map(|r| raw.location(r).number()).collect();
        assert_eq!(lines, [3, 7, 8]);
    }

    #[test]
    fn headerless_files_get_numbered_columns() {
        let path = write_temp("nohead.csv", b"1,2\n3,4\n");
        let options = CsvOptions {
            has_header: false,
            ..CsvOptions::default()
        };
        let raw = read_csv(&path, &options).unwrap();
        assert_eq!(raw.column_names(), ["column_1", "column_2"]);
        assert_eq!(raw.n_rows(), 2);
        assert_eq!(raw.location(0).number(), 1);
    }

    #[test]
    fn ragged_row_names_its_line() {
        let path = write_temp("ragged.csv", b"a,b\n1,2\n3\n");
        let err = read_csv(&path, &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::RaggedRow {
                    line: 3,
                    expected: 2,
                    found: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("ragged.csv: line 3"), "{err}");
    }

    #[test]
    fn empty_and_header_only_files_are_errors() {
        let empty = write_temp("empty.csv", b"");
        assert!(matches!(
            read_csv(&empty, &CsvOptions::default()),
            Err(Error::EmptyFile { .. })
        ));
        let header = write_temp("header.csv", b"a,b\n");
        assert!(matches!(
            read_csv(&header, &CsvOptions::default()),
            Err(Error::NoRows { .. })
        ));
    }

    #[test]
    fn duplicate_header_is_an_error() {
        let path = write_temp("dup.csv", b"a,a\n1,2\n");
        let err = read_csv(&path, &CsvOptions::default()).unwrap_err();
        assert!(matches!(err, Error::DuplicateColumn { ref name, .. } if name == "a"));
    }

    #[test]
    fn long_field_is_refused() {
        let options = CsvOptions {
            max_field_bytes: 100,
            ..CsvOptions::default()
        };
        let mut text = b"a,b\n1,2\n3,".to_vec();
        text.extend(std::iter::repeat_n(b'x', 1000));
        let path = write_temp("long.csv", &text);
        let err = read_csv(&path, &options).unwrap_err();
        assert!(
            matches!(err, Error::FieldTooLarge { line: 3, limit: 100, ref column, .. } if column == "b"),
            "{err}"
        );
    }
}
