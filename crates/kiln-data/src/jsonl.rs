//! JSON Lines: one object per line, scalar values read as text (numbers in their JSON form),
//! nested arrays and objects kept as JSON text. Columns are the union of the keys, in the order
//! they first appear; a key absent from an object is a missing cell.

use std::fmt;
use std::io::{BufRead, Read};
use std::path::Path;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;

use crate::raw::TextBuilder;
use crate::source::{Compression, open, read_error};
use crate::{CsvOptions, Error, RawTable, Result};

/// Reads a JSON Lines file; `options.missing` and `options.max_field_bytes` (per line) apply.
pub(crate) fn read(
    path: &Path,
    compression: Compression,
    options: &CsvOptions,
) -> Result<RawTable> {
    let gz = compression == Compression::Gzip;
    let mut input = open(path, compression)?;
    let mut table = TextBuilder::new(path, Vec::new(), &options.missing)?;
    let mut buf = Vec::new();
    let mut line = 0;
    let mut any_bytes = false;
    let limit = u64::try_from(options.max_field_bytes).unwrap_or(u64::MAX);
    loop {
        buf.clear();
        let n = (&mut input)
            .take(limit.saturating_add(1))
            .read_until(b'\n', &mut buf)
            .map_err(|e| read_error(path, gz, e))?;
        if n == 0 {
            break;
        }
        any_bytes = true;
        line += 1;
        if buf.len() > options.max_field_bytes && buf.last() != Some(&b'\n') {
            return Err(Error::FieldTooLarge {
                path: path.to_path_buf(),
                line,
                column: "*".to_owned(),
                limit: options.max_field_bytes,
            });
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            return Err(Error::InvalidUtf8 {
                path: path.to_path_buf(),
                line,
                column: key_with_bad_utf8(&buf),
            });
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let object: Object = serde_json::from_str(text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            line,
            // Each line is parsed alone, so serde_json's own line is always 1.
            reason: e
                .to_string()
                .replace(" at line 1 column ", " at character "),
        })?;
        for (key, value) in object.0 {
            let index = table.column_index(&key);
            if table.is_filled(index) {
                return Err(Error::DuplicateColumn {
                    path: path.to_path_buf(),
                    name: key,
                });
            }
            match value {
                Value::Null => table.set(index, None),
                Value::String(s) => table.set(index, Some(&s)),
                other => table.set(index, Some(&other.to_string())),
            }
        }
        table.end_row(line)?;
    }
    if !any_bytes {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    table.finish()
}

/// The first key whose name or value holds the invalid bytes, or `*`.
fn key_with_bad_utf8(bytes: &[u8]) -> String {
    let lossy = String::from_utf8_lossy(bytes);
    serde_json::from_str::<Object>(lossy.trim())
        .ok()
        .and_then(|object| {
            object
                .0
                .into_iter()
                .find(|(k, v)| k.contains('\u{FFFD}') || v.to_string().contains('\u{FFFD}'))
                .map(|(k, _)| k)
        })
        .unwrap_or_else(|| "*".to_owned())
}

/// A JSON object's entries in file order (serde_json's `Map` sorts them).
struct Object(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Object;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Object(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ReadOptions, read_table};

    fn write(name: &str, text: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-jsonl-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs_err::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_objects_in_key_order_with_union_of_keys() {
        let path = write(
            "ok.jsonl",
            b"{\"b\": 1.5, \"a\": \"x\"}\n\n{\"a\": null, \"c\": true}\n{\"b\": 2, \"a\": \"NA\"}",
        );
        let raw = read_table(&path, &ReadOptions::default()).unwrap();
        assert_eq!(raw.column_names(), ["b", "a", "c"]);
        let b: Vec<_> = raw.text_column(0).collect();
        assert_eq!(b, [Some("1.5"), None, Some("2")]);
        let a: Vec<_> = raw.text_column(1).collect();
        assert_eq!(a, [Some("x"), None, None]);
        let c: Vec<_> = raw.text_column(2).collect();
        assert_eq!(c, [None, Some("true"), None]);
        assert_eq!(raw.location(2).number(), 4);
    }

    #[test]
    fn bad_json_names_its_line() {
        let path = write("bad.jsonl", b"{\"a\": 1}\n{\"a\": }\n");
        let err = read_table(&path, &ReadOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Json { line: 2, .. }), "{err}");
        let path = write("dup.jsonl", b"{\"a\": 1, \"a\": 2}\n");
        let err = read_table(&path, &ReadOptions::default()).unwrap_err();
        assert!(matches!(err, Error::DuplicateColumn { .. }), "{err}");
    }
}
