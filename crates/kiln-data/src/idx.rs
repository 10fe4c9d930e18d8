//! The IDX format of MNIST: an images file of unsigned bytes (`*-images-idx3-ubyte`, n × rows
//! × columns) and, beside it, its labels (`*-labels-idx1-ubyte`), either optionally gzipped.
//! The table has one column per pixel, `p0 … p{rows·columns − 1}` in row-major order (as the
//! CSV exports of MNIST and scikit-learn's digits), plus `label` when the labels file exists.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::StringBuilder;

use crate::raw::{TextPart, text_batch};
use crate::source::{Compression, open, read_error};
use crate::{Error, RawTable, Result};

/// Rows per Arrow batch.
const BATCH_ROWS: usize = 16 * 1024;

pub(crate) fn read(path: &Path, compression: Compression) -> Result<RawTable> {
    let images = read_all(path, compression)?;
    let (dims, pixels) = parse(path, &images)?;
    let [count, item @ ..] = dims.as_slice() else {
        return Err(bad(path, "an images file needs at least one dimension"));
    };
    let width: usize = item.iter().product();
    let labels_path = labels_beside(path);
    let labels = match labels_path.as_deref().filter(|p| p.is_file()) {
        Some(labels_path) => {
            let bytes = read_all(labels_path, compression_of(labels_path))?;
            let (label_dims, labels) = parse(labels_path, &bytes)?;
            if label_dims != [*count] {
                return Err(bad(
                    labels_path,
                    &format!(
                        "{label_dims:?} labels do not match the {count} images of {}",
                        path.display()
                    ),
                ));
            }
            Some(labels.to_vec())
        }
        None => None,
    };
    if *count == 0 {
        return Err(Error::NoRows {
            path: path.to_path_buf(),
        });
    }
    let mut names: Vec<String> = (0..width).map(|i| format!("p{i}")).collect();
    if labels.is_some() {
        names.push("label".into());
    }
    // Byte values as text: every reader yields text columns, typed afterwards.
    let text: Vec<String> = (0..=255_u8).map(|b| b.to_string()).collect();
    let mut parts = Vec::new();
    for start in (0..*count).step_by(BATCH_ROWS) {
        let rows = start..(start + BATCH_ROWS).min(*count);
        let mut columns: Vec<ArrayRef> = (0..width)
            .map(|p| {
                let mut builder = StringBuilder::with_capacity(rows.len(), rows.len() * 3);
                for r in rows.clone() {
                    builder.append_value(&text[usize::from(pixels[r * width + p])]);
                }
                Arc::new(builder.finish()) as ArrayRef
            })
            .collect();
        if let Some(labels) = &labels {
            let mut builder = StringBuilder::new();
            for r in rows.clone() {
                builder.append_value(&text[usize::from(labels[r])]);
            }
            columns.push(Arc::new(builder.finish()));
        }
        parts.push(TextPart::Arrow(text_batch(path, &names, columns)?));
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

/// `x-images-idx3-ubyte[.gz]` → `x-labels-idx1-ubyte[.gz]`.
pub(crate) fn labels_beside(images: &Path) -> Option<PathBuf> {
    let name = images.file_name()?.to_str()?;
    let labels = name.replace("images-idx3", "labels-idx1");
    (labels != name).then(|| images.with_file_name(labels))
}

fn compression_of(path: &Path) -> Compression {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
    {
        Compression::Gzip
    } else {
        Compression::None
    }
}

fn read_all(path: &Path, compression: Compression) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open(path, compression)?
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(path, compression == Compression::Gzip, e))?;
    Ok(bytes)
}

/// The dimensions and the unsigned-byte payload of an IDX file.
fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<(Vec<usize>, &'a [u8])> {
    let [0, 0, kind, ndims, rest @ ..] = bytes else {
        return Err(bad(path, "too short for the IDX header"));
    };
    if *kind != 0x08 {
        return Err(bad(
            path,
            &format!("element type 0x{kind:02x} is not unsigned bytes (0x08)"),
        ));
    }
    let header = usize::from(*ndims) * 4;
    if rest.len() < header {
        return Err(bad(path, "the dimensions are cut short"));
    }
    let dims: Vec<usize> = rest[..header]
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1_usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| bad(path, "the dimensions overflow"))?;
    let payload = &rest[header..];
    if payload.len() != expected {
        return Err(bad(
            path,
            &format!(
                "dimensions {dims:?} need {expected} bytes of data, the file has {}",
                payload.len()
            ),
        ));
    }
    Ok((dims, payload))
}

fn bad(path: &Path, reason: &str) -> Error {
    Error::Idx {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, 8, u8::try_from(dims.len()).unwrap()];
        for d in dims {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend(data);
        bytes
    }

    #[test]
    fn reads_images_with_their_labels_and_refuses_bad_files() {
        let dir = std::env::temp_dir().join(format!("kiln-idx-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let images = dir.join("t-images-idx3-ubyte");
        fs_err::write(&images, idx(&[2, 1, 3], &[0, 1, 2, 253, 254, 255])).unwrap();
        fs_err::write(dir.join("t-labels-idx1-ubyte"), idx(&[2], &[7, 3])).unwrap();
        let table = read(&images, Compression::None).unwrap();
        assert_eq!(table.column_names(), ["p0", "p1", "p2", "label"]);
        let row1: Vec<Option<&str>> = (0..4)
            .map(|c| table.text_column(c).nth(1).unwrap())
            .collect();
        assert_eq!(row1, [Some("253"), Some("254"), Some("255"), Some("3")]);

        fs_err::write(&images, idx(&[2, 1, 3], &[0, 1, 2])).unwrap();
        let err = read(&images, Compression::None).unwrap_err().to_string();
        assert!(
            err.contains("need 6 bytes of data, the file has 3"),
            "{err}"
        );
        fs_err::write(&images, idx(&[3, 1, 1], &[0, 1, 2])).unwrap();
        let err = read(&images, Compression::None).unwrap_err().to_string();
        assert!(err.contains("labels do not match the 3 images"), "{err}");
        fs_err::write(&images, [0, 0, 0x0d, 1]).unwrap();
        let err = read(&images, Compression::None).unwrap_err().to_string();
        assert!(err.contains("not unsigned bytes"), "{err}");
        fs_err::remove_dir_all(&dir).unwrap();
    }
}
