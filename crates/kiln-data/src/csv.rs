//! CSV through csv-core, into text columns. Parsing by hand (not arrow-csv) lets every error
//! name the exact file line and column (quoted fields may span lines, comment lines are
//! skipped), and bounds the memory a single huge field can take.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use csv_core::ReadRecordResult;
use serde::{Deserialize, Serialize};

use crate::raw::{Integers, PlainRows, TextBuilder, is_missing};
use crate::source::{Compression, Format, ReadOptions, open, read_error};
use crate::table::{any_reads_as_number, small_integer_at};
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
    input: Box<dyn BufRead + Send>,
    gz: bool,
    options: CsvOptions,
    core: csv_core::Reader,
    record: Record,
    names: Vec<String>,
    /// The first line of a headerless file: already read, still to be returned as a row.
    pending: Option<usize>,
    rows_per_chunk: usize,
    chunks: usize,
    /// Data rows in the chunks returned so far.
    rows_read: usize,
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
        let mut core = core_reader(options);
        let mut record = Record::default();
        let mut input = open(path, compression)?;
        let gz = compression == Compression::Gzip;
        let limits = Limits {
            path,
            gz,
            max_field_bytes: options.max_field_bytes,
        };
        let Read::Record(first_line) = record.read(&mut core, &mut input, false, &limits, None)?
        else {
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
            rows_read: 0,
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
            rows_read,
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
        let mut table = TextBuilder::new(path, names.clone(), &options.missing)?;
        let mut rows = 0;
        while rows < *rows_per_chunk {
            let line = match pending.take() {
                Some(line) => line,
                None => match record.read(core, input, false, &limits, Some(names))? {
                    Read::Record(line) => line,
                    Read::End | Read::Suspended => {
                        *finished = true;
                        break;
                    }
                },
            };
            record.push_to(&mut table, names, path, line)?;
            rows += 1;
        }
        if rows == 0 && *chunks > 0 {
            return Ok(None);
        }
        *chunks += 1;
        let first_row = *rows_read;
        *rows_read += rows;
        // The first chunk of a file with no data rows is `NoRows`.
        let mut table = table.finish()?;
        table.first_row = first_row;
        Ok(Some(table))
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

fn core_reader(options: &CsvOptions) -> csv_core::Reader {
    csv_core::ReaderBuilder::new()
        .delimiter(options.delimiter)
        .quote(options.quote)
        .comment(options.comment)
        .build()
}

struct Limits<'a> {
    path: &'a Path,
    gz: bool,
    max_field_bytes: usize,
}

/// What [`Record::read`] stopped at.
enum Read {
    /// A whole record, which starts on this file line.
    Record(usize),
    /// The end of the input.
    End,
    /// The end of a block that more input follows; the next read resumes the record.
    Suspended,
}

/// One record's unescaped bytes and the end of each field in them.
#[derive(Default)]
struct Record {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    n_bytes: usize,
    n_ends: usize,
    /// File lines before the input's first byte: a block's reader counts from its start.
    line_offset: usize,
    /// Whether the last read was suspended mid-record, so the next one continues it.
    resume: bool,
    /// Whether the last record read ended with a newline, where a fresh reader on the next
    /// byte reads what this one would.
    ended_with_newline: bool,
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

    /// Reads the next record. An empty `input` is the end of the file unless `more` says
    /// another block follows, in which case the record is suspended until the next call. The
    /// header's `names` bound how many fields a record may grow to, and name columns in
    /// errors.
    fn read(
        &mut self,
        core: &mut csv_core::Reader,
        input: &mut dyn BufRead,
        more: bool,
        limits: &Limits<'_>,
        names: Option<&[String]>,
    ) -> Result<Read> {
        let width = names.map(<[String]>::len);
        if !std::mem::take(&mut self.resume) {
            self.n_bytes = 0;
            self.n_ends = 0;
        }
        if self.bytes.is_empty() {
            self.bytes.resize(4096, 0);
            self.ends.resize(64, 0);
        }
        loop {
            let buf = input
                .fill_buf()
                .map_err(|e| read_error(limits.path, limits.gz, e))?;
            if buf.is_empty() && more {
                self.resume = true;
                return Ok(Read::Suspended);
            }
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
                    self.ended_with_newline = ended_with_newline;
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
                    return Ok(Read::Record(line));
                }
                ReadRecordResult::End => return Ok(Read::End),
            }
        }
    }

    /// The line the record starts on: the reader's line, less the newline that ended the record
    /// and the newlines quoted inside it.
    fn start_line(&self, core: &csv_core::Reader, ended_with_newline: bool) -> usize {
        let inner = count_newlines(&self.bytes[..self.n_bytes]);
        let line = usize::try_from(core.line()).unwrap_or(usize::MAX);
        line.saturating_sub(inner + usize::from(ended_with_newline))
            .max(1)
            .saturating_add(self.line_offset)
    }

    /// Appends the record to `table` as a row from file line `line`.
    fn push_to(
        &self,
        table: &mut TextBuilder<'_>,
        names: &[String],
        path: &Path,
        line: usize,
    ) -> Result<()> {
        if self.len() != names.len() {
            return Err(Error::RaggedRow {
                path: path.to_path_buf(),
                line,
                expected: names.len(),
                found: self.len(),
            });
        }
        let bytes = &self.bytes[..self.n_bytes];
        // One UTF-8 check for the whole record: its fields are then valid exactly when each
        // ends on a char boundary. Only a record that fails is checked field by field.
        let text = std::str::from_utf8(bytes).ok();
        let mut start = 0;
        for (i, &end) in self.ends[..self.n_ends].iter().enumerate() {
            let cell = match text {
                Some(text) => text.get(start..end),
                None => std::str::from_utf8(&bytes[start..end]).ok(),
            };
            let cell = cell.ok_or_else(|| Error::InvalidUtf8 {
                path: path.to_path_buf(),
                line,
                column: names[i].clone(),
            })?;
            table.set(i, Some(cell));
            start = end;
        }
        table.end_row(line)
    }
}

/// Newlines in `bytes`, counted in runs of 255 into a byte: LLVM then compares and adds 16
/// bytes per instruction, where a count into a `usize` widens every byte to 64 bits first.
fn count_newlines(bytes: &[u8]) -> usize {
    bytes
        .chunks(255)
        .map(|run| usize::from(run.iter().fold(0_u8, |n, &b| n + u8::from(b == b'\n'))))
        .sum()
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
    read_blocks(
        CsvChunks::open(path, compression, options, usize::MAX)?,
        BLOCK_BYTES,
    )
}

/// The size of the blocks a whole file is parsed in, in parallel. Blocks are cut by size (and
/// at a newline), never by thread count, so a table's batches are the same on any machine.
const BLOCK_BYTES: usize = 1 << 20;
/// Blocks read ahead per thread: enough to keep every thread busy to the end of a round.
const BLOCKS_PER_THREAD: usize = 4;
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// A run of a file's bytes, cut after its last newline unless it is the file's last.
struct Block {
    bytes: Vec<u8>,
    /// Newlines in the file before the block.
    lines_before: usize,
    /// Newlines in the block.
    newlines: usize,
    /// Whether the file ends with this block.
    last: bool,
}

/// Cuts the rest of a file into [`Block`]s. A read error ends the blocks; it is kept for after
/// the blocks read so far are parsed, so an error earlier in the file is reported first, as
/// a serial reader would.
struct Blocks<'a> {
    input: &'a mut (dyn BufRead + Send),
    limits: &'a Limits<'a>,
    size: usize,
    /// The bytes after the last block's last newline.
    carry: Vec<u8>,
    newlines: usize,
    done: bool,
    error: Option<Error>,
}

impl Iterator for Blocks<'_> {
    type Item = Block;

    fn next(&mut self) -> Option<Block> {
        use std::io::Read as _;
        if self.done {
            return None;
        }
        let mut bytes = std::mem::take(&mut self.carry);
        let kept = bytes.len();
        bytes.reserve(self.size);
        let size = u64::try_from(self.size).unwrap_or(u64::MAX);
        let last = match (&mut *self.input).take(size).read_to_end(&mut bytes) {
            Ok(n) => n < self.size,
            Err(e) => {
                // What was read before the error is parsed first, as more to come.
                self.error = Some(read_error(self.limits.path, self.limits.gz, e));
                self.done = true;
                false
            }
        };
        if last {
            self.done = true;
        } else if let Some(newline) = bytes[kept..].iter().rposition(|&b| b == b'\n') {
            self.carry = bytes.split_off(kept + newline + 1);
        }
        let (lines_before, newlines) = (self.newlines, count_newlines(&bytes));
        self.newlines += newlines;
        Some(Block {
            bytes,
            lines_before,
            newlines,
            last,
        })
    }
}

/// A parse over consecutive blocks: csv-core's state, the record in progress, the rows read.
struct Parse<'a> {
    core: csv_core::Reader,
    record: Record,
    table: TextBuilder<'a>,
    /// Whether the parse stands exactly between records, where a fresh reader on the next
    /// byte reads what this one would.
    clean: bool,
}

/// What every block's parse shares.
struct Context<'a> {
    limits: Limits<'a>,
    options: &'a CsvOptions,
    names: &'a [String],
    /// Whether a missing token reads as a number: plain blocks then read no integers while
    /// splitting, since such a cell must be missing, not the number.
    numeric_token: bool,
}

impl<'a> Context<'a> {
    /// A parse from the first byte of `block`, taken to start a record.
    fn fresh(&self, block: &Block) -> Result<Parse<'a>> {
        Ok(Parse {
            core: core_reader(self.options),
            record: Record {
                line_offset: block.lines_before,
                ..Record::default()
            },
            table: TextBuilder::new(self.limits.path, self.names.to_vec(), &self.options.missing)?,
            clean: true,
        })
    }

    /// `block` parsed from its first byte, taken to start a record.
    fn parse_fresh(&self, block: &Block) -> Result<Parse<'a>> {
        match self.parse_plain(block)? {
            Some(parse) => Ok(parse),
            None => self.fresh(block)?.block(block, self),
        }
    }

    /// The fast path for the common block: valid UTF-8 with no quote, `\r` or comment byte,
    /// cut at a newline. There csv-core reads every `\n` as a record's end, skips blank lines
    /// and splits the rest at the delimiter; splitting by hand does the same several times
    /// faster. `None` (csv-core's turn) for any other block, or when a row is ragged or a field
    /// is too long, so that the error is csv-core's, word for word.
    fn parse_plain(&self, block: &Block) -> Result<Option<Parse<'a>>> {
        let options = self.options;
        let bytes = block.bytes.as_slice();
        let special = match options.comment {
            Some(comment) => memchr::memchr3(options.quote, b'\r', comment, bytes),
            None => memchr::memchr2(options.quote, b'\r', bytes),
        };
        // A fresh reader strips a BOM; a non-ASCII delimiter may split a character.
        if special.is_some()
            || !options.delimiter.is_ascii()
            || options.delimiter == b'\n'
            || bytes.starts_with(UTF8_BOM)
            || !(block.last || bytes.ends_with(b"\n"))
        {
            return Ok(None);
        }
        // Fields are located by u32 offsets into the block.
        if u32::try_from(bytes.len()).is_err() {
            return Ok(None);
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Ok(None);
        };
        match self.split_plain(block, text) {
            Some(rows) => Ok(Some(self.plain_parse(text, rows)?)),
            None => Ok(None),
        }
    }

    /// The rows of a plain block's `text`, as [`Context::parse_plain`] reads them; `None` for
    /// a ragged row or a field too long.
    #[allow(clippy::cast_possible_truncation)] // Offsets are checked to fit u32.
    fn split_plain(&self, block: &Block, text: &str) -> Option<SplitRows> {
        let options = self.options;
        let bytes = text.as_bytes();
        let (width, delimiter) = (self.names.len(), options.delimiter);
        let rows = block.newlines + 1;
        let mut row_starts: Vec<u32> = Vec::with_capacity(rows);
        let mut ends: Vec<Vec<u32>> = (0..width).map(|_| Vec::with_capacity(rows)).collect();
        let mut lines = Vec::with_capacity(rows);
        // Columns are read as integers while each cell is one or missing.
        let missing = options.missing.as_slice();
        let mut integers: Vec<Option<Integers>> = (0..width)
            .map(|_| (!self.numeric_token).then(|| Integers::with_capacity(rows)))
            .collect();
        let mut line = block.lines_before;
        let (mut row_start, mut field_start, mut fields) = (0, 0, 0);
        let max_field_bytes = self.limits.max_field_bytes;
        // A field ends at each delimiter, a row at each newline (and the block's end).
        let end = (!bytes.ends_with(b"\n")).then_some((bytes.len(), true));
        let separators = Separators::new(bytes, delimiter).chain(end);
        for (at, newline) in separators {
            if newline && at == row_start {
                // A blank line.
                line += 1;
                (row_start, field_start) = (at + 1, at + 1);
                continue;
            }
            if fields == width || at - field_start >= max_field_bytes {
                return None;
            }
            ends[fields].push(at as u32);
            if let Some(column) = &mut integers[fields] {
                match small_integer_at(bytes, field_start, at) {
                    Some(value) => column.values.push(value),
                    None if text
                        .get(field_start..at)
                        .is_some_and(|cell| is_missing(missing, cell)) =>
                    {
                        column.missing.push(row_starts.len() as u32);
                        column.values.push(0);
                    }
                    None => integers[fields] = None,
                }
            }
            (field_start, fields) = (at + 1, fields + 1);
            if newline {
                line += 1;
                if fields < width {
                    return None;
                }
                row_starts.push(row_start as u32);
                lines.push(line);
                (row_start, fields) = (at + 1, 0);
            }
        }
        Some(SplitRows {
            row_starts,
            ends,
            integers,
            lines,
            line,
        })
    }

    /// The parse of a plain block whose `text` splits into `rows`.
    fn plain_parse(&self, text: &str, rows: SplitRows) -> Result<Parse<'a>> {
        let options = self.options;
        let SplitRows {
            row_starts,
            ends,
            integers,
            lines,
            line,
        } = rows;
        let mut table = TextBuilder::new(self.limits.path, self.names.to_vec(), &options.missing)?;
        if !lines.is_empty() {
            table.push_plain(
                PlainRows::new(Arc::from(text), row_starts, ends, integers),
                &lines,
            )?;
        }
        // A parse continued into the next block (one starting with a BOM, which is data past
        // a file's start) needs a reader past this block's last newline, now file line `line`:
        // one fed a newline (skipped as a blank line), whose extra line the offset takes off.
        let mut core = core_reader(options);
        core.read_record(b"\n", &mut [0], &mut [0]);
        Ok(Parse {
            core,
            record: Record {
                line_offset: line - 1,
                ..Record::default()
            },
            table,
            clean: true,
        })
    }
}

/// A plain block's rows as split: see [`PlainRows`]; `lines` are their file lines, `line` the
/// file line of the block's last newline.
struct SplitRows {
    row_starts: Vec<u32>,
    ends: Vec<Vec<u32>>,
    integers: Vec<Option<Integers>>,
    lines: Vec<usize>,
    line: usize,
}

/// The delimiters and newlines of a block, in order: each one's position and whether it is a
/// newline. Found eight bytes at a time by word arithmetic, which branches once per separator:
/// a byte loop mispredicts at nearly every short field's end, and memchr's search restarts
/// for every one of a CSV file's dense separators.
struct Separators<'a> {
    bytes: &'a [u8],
    /// Where the next word starts.
    next: usize,
    /// The current word's first byte.
    base: usize,
    /// The high bit of each byte of the current word not yet returned that is a delimiter,
    /// and that is a newline.
    delimiters: u64,
    newlines: u64,
    /// The delimiter in every byte.
    delimiter_bytes: u64,
}

impl<'a> Separators<'a> {
    const ONES: u64 = 0x0101_0101_0101_0101;

    fn new(bytes: &'a [u8], delimiter: u8) -> Self {
        Self {
            bytes,
            next: 0,
            base: 0,
            delimiters: 0,
            newlines: 0,
            delimiter_bytes: u64::from(delimiter) * Self::ONES,
        }
    }

    /// The high bit of each zero byte of `x`, exactly: no borrow crosses bytes.
    fn zero_bytes(x: u64) -> u64 {
        const LOW_SEVEN: u64 = 0x7F7F_7F7F_7F7F_7F7F;
        !((((x & LOW_SEVEN) + LOW_SEVEN) | x) | LOW_SEVEN)
    }
}

impl Iterator for Separators<'_> {
    type Item = (usize, bool);

    #[inline]
    fn next(&mut self) -> Option<(usize, bool)> {
        loop {
            let found = self.delimiters | self.newlines;
            if found != 0 {
                let bit = found.trailing_zeros();
                let newline = (self.newlines >> bit) & 1 == 1;
                let rest = found & (found - 1);
                (self.delimiters, self.newlines) = (self.delimiters & rest, self.newlines & rest);
                return Some((self.base + (bit / 8) as usize, newline));
            }
            // The word, and the bits of its bytes that are in the block.
            let (word, within) = match self.bytes.get(self.next..self.next + 8) {
                Some(word) => (
                    u64::from_le_bytes(word.try_into().expect("8 bytes")),
                    u64::MAX,
                ),
                None if self.next < self.bytes.len() => {
                    let tail = &self.bytes[self.next..];
                    let mut word = [0; 8];
                    word[..tail.len()].copy_from_slice(tail);
                    (u64::from_le_bytes(word), u64::MAX >> (8 * (8 - tail.len())))
                }
                None => return None,
            };
            self.base = self.next;
            self.next += 8;
            self.delimiters = Self::zero_bytes(word ^ self.delimiter_bytes) & within;
            self.newlines = Self::zero_bytes(word ^ (u64::from(b'\n') * Self::ONES)) & within;
        }
    }
}

impl<'a> Parse<'a> {
    /// Parses `block`, continuing the record in progress.
    fn block(mut self, block: &Block, context: &Context<'a>) -> Result<Self> {
        let mut input: &[u8] = &block.bytes;
        let mut record_end = self.clean.then_some(0);
        let names = context.names;
        while let Read::Record(line) = self.record.read(
            &mut self.core,
            &mut input,
            !block.last,
            &context.limits,
            Some(names),
        )? {
            self.record
                .push_to(&mut self.table, names, context.limits.path, line)?;
            record_end = Some(block.bytes.len() - input.len());
        }
        // A record ends on its terminator's first byte: after `\r\n` only the `\n` is left,
        // which a fresh reader skips as a blank line just as this one would.
        let len = block.bytes.len();
        self.clean = record_end
            .is_some_and(|end| end == len || (end + 1 == len && block.bytes.ends_with(b"\r\n")));
        Ok(self)
    }

    /// Whether a fresh reader may take over at `next`: a BOM there would be stripped by a new
    /// reader but is data to this one.
    fn ends_before(&self, next: &Block) -> bool {
        self.clean && !next.bytes.starts_with(UTF8_BOM)
    }
}

/// Reads the rest of `chunks`' file as one table, in rounds of blocks parsed in parallel. Each
/// block but the first is parsed speculatively from its start; a parse is kept only when the
/// block before ended exactly between records (so a newline inside quotes, a blank or comment
/// line at the cut, is never misread), else the block before's parse continues into it on
/// this thread. The table is then the one a serial read gives, with the same first error.
fn read_blocks(chunks: CsvChunks, block_bytes: usize) -> Result<RawTable> {
    use rayon::prelude::*;
    let CsvChunks {
        path,
        mut input,
        gz,
        options,
        core,
        record,
        names,
        pending,
        ..
    } = chunks;
    let context = Context {
        limits: Limits {
            path: &path,
            gz,
            max_field_bytes: options.max_field_bytes,
        },
        options: &options,
        names: &names,
        numeric_token: any_reads_as_number(&options.missing),
    };
    let mut table = TextBuilder::new(&path, names.clone(), &options.missing)?;
    if let Some(line) = pending {
        record.push_to(&mut table, &names, &path, line)?;
    }
    let newlines = usize::try_from(core.line()).unwrap_or(usize::MAX) - 1;
    // The header's reader goes on into the first block unless the header ended with a
    // newline (it may sit between `\r` and `\n`).
    let clean = record.ended_with_newline;
    let mut open = Parse {
        core,
        record,
        table,
        clean,
    };
    let mut blocks = Blocks {
        input: &mut input,
        limits: &context.limits,
        size: block_bytes.max(1),
        carry: Vec::new(),
        newlines,
        done: false,
        error: None,
    };
    let mut parts = Vec::new();
    let threads = rayon::current_num_threads().max(1);
    let round_blocks = threads * BLOCKS_PER_THREAD;
    // A first round of a block per thread: no thread waits long for the file to be read.
    let mut round: Vec<Block> = blocks.by_ref().take(threads).collect();
    while let Some(first) = round.first() {
        let continued = if open.ends_before(first) {
            parts.push(open.table.into_parts()?);
            None
        } else {
            Some(open)
        };
        let mut starts: Vec<Option<Parse<'_>>> = vec![continued];
        starts.resize_with(round.len(), || None);
        // The next round is read from the file while this one is parsed.
        let (parsed, next): (Vec<Result<Parse<'_>>>, Vec<Block>) = rayon::join(
            || {
                starts
                    .into_par_iter()
                    .zip(&round)
                    .map(|(start, block)| match start {
                        Some(parse) => parse.block(block, &context),
                        None => context.parse_fresh(block),
                    })
                    .collect()
            },
            || blocks.by_ref().take(round_blocks).collect(),
        );
        let mut parsed = parsed.into_iter();
        let mut current = parsed.next().expect("one parse per block")?;
        for (block, speculative) in round[1..].iter().zip(parsed) {
            current = if current.ends_before(block) {
                parts.push(current.table.into_parts()?);
                speculative?
            } else {
                current.block(block, &context)?
            };
        }
        open = current;
        round = next;
    }
    parts.push(open.table.into_parts()?);
    if let Some(error) = blocks.error {
        return Err(error);
    }
    let (parts, lines): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
    let lines: Vec<usize> = lines.into_iter().flatten().collect();
    if lines.is_empty() {
        return Err(Error::NoRows { path });
    }
    Ok(RawTable {
        path,
        names,
        parts: parts.into_iter().flatten().collect(),
        missing: options.missing,
        lines: Some(lines),
        first_row: 0,
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

    /// A whole-file read in blocks of `size` bytes, on `threads` threads.
    fn read_in_blocks(
        path: &Path,
        options: &CsvOptions,
        size: usize,
        threads: usize,
    ) -> Result<RawTable> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            read_blocks(
                CsvChunks::open(path, Compression::None, options, usize::MAX)?,
                size,
            )
        })
    }

    #[test]
    fn blocks_read_what_a_serial_reader_reads_at_any_cut() {
        let comments = CsvOptions {
            comment: Some(b'#'),
            ..CsvOptions::default()
        };
        let short_fields = CsvOptions {
            max_field_bytes: 3,
            ..CsvOptions::default()
        };
        // Plain blocks compare cells with the tokens when read, csv-core's rows when stored.
        let own_missing = CsvOptions {
            missing: vec!["NA".to_owned(), "not available".to_owned()],
            ..CsvOptions::default()
        };
        // The later texts are quote-free, mostly for the plain-block fast path.
        let texts: [&[u8]; 13] = [
            b"a,b\r\n1,\"x\r\ny\"\r\n\r\n2,\"\"\"q\"\r\n3,z",
            b"a,b\n1,\"two\n\n# not a comment\nlines\"\n# comment\n\n2,y\n",
            b"\xef\xbb\xbfa,b\n1,x\n\xef\xbb\xbf2,y\n3,\"a,b\"\n",
            b"a,b\n1,x\n2,caf\xe9\n3,y\n",
            b"a,b\n1,x\n2,\"y\nz\"\n3\n4,w\n",
            b"a,b\n1,\"unterminated\n2,y\n",
            b"a,b\n1,x\n\n2,\n,\n\xef\xbb\xbf3,y\n\n\n4,NA\n5,z",
            b"a,b\n1,x\n2,y,z\n3,w\n",
            b"a,b\n1,x\n2\n3,w\n",
            b"a,b\n1,x\n# c\n2,long\n3,w\n",
            b"a,b\r\n1,x\r\n2,y\r\n\r\n3,z\r\n",
            b"a,b\n1,x\n2,caf\xc3\xa9\n3,y",
            b"a,b\n1,not available\n,NA\n3,\nNA,not\n",
        ];
        for (options, (i, text)) in [&comments, &short_fields, &own_missing]
            .into_iter()
            .flat_map(|o| std::iter::repeat(o).zip(texts.iter().enumerate()))
        {
            let path = write_temp(&format!("blocks-{i}.csv"), text);
            let serial = CsvChunks::open(&path, Compression::None, options, usize::MAX)
                .and_then(|mut c| c.next().unwrap());
            for size in 1..=text.len() + 1 {
                for threads in [1, 2, 3] {
                    let blocks = read_in_blocks(&path, options, size, threads);
                    match (&serial, &blocks) {
                        (Ok(serial), Ok(blocks)) => {
                            assert_eq!(serial.lines, blocks.lines, "text {i}, size {size}");
                            for c in 0..serial.names.len() {
                                assert!(
                                    serial.text_column(c).eq(blocks.text_column(c)),
                                    "text {i}, size {size}, column {c}"
                                );
                            }
                        }
                        (Err(a), Err(b)) => {
                            assert_eq!(a.to_string(), b.to_string(), "text {i}, size {size}");
                        }
                        _ => panic!("text {i}, size {size}: {serial:?} against {blocks:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn separators_are_the_delimiters_and_newlines_a_byte_scan_finds() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: 1024,
            rng_seed: proptest::test_runner::RngSeed::Fixed(5),
            ..Default::default()
        });
        let bytes = proptest::collection::vec(
            prop_oneof![
                Just(b','),
                Just(b'\n'),
                Just(0),
                Just(11),
                Just(0x80),
                any::<u8>()
            ],
            0..40,
        );
        let delimiter = prop_oneof![Just(b','), Just(b';'), Just(0), Just(11), any::<u8>()];
        runner
            .run(&(bytes, delimiter), |(bytes, delimiter)| {
                let scanned: Vec<(usize, bool)> = bytes
                    .iter()
                    .enumerate()
                    .filter(|&(_, &b)| b == delimiter || b == b'\n')
                    .map(|(i, &b)| (i, b == b'\n'))
                    .collect();
                let found: Vec<(usize, bool)> = Separators::new(&bytes, delimiter).collect();
                prop_assert_eq!(found, scanned);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn thread_count_does_not_change_the_table() {
        use std::fmt::Write as _;
        let mut text = String::from("x,s\n");
        for i in 0..20_000 {
            writeln!(text, "{i},\"s{}\n{i}\"", i % 7).unwrap();
        }
        let path = write_temp("threads.csv", text.as_bytes());
        let one = read_in_blocks(&path, &CsvOptions::default(), 4096, 1).unwrap();
        let two = read_in_blocks(&path, &CsvOptions::default(), 4096, 2).unwrap();
        assert_eq!(one.parts, two.parts);
        assert_eq!(one.lines, two.lines);
        assert_eq!(one.n_rows(), 20_000);
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
