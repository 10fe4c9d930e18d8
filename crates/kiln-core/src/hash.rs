//! Content hashes (blake3) for provenance.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Result;

/// The blake3 hash and size of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    /// Hex blake3 of the file's bytes.
    pub blake3: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Hashes a file by streaming it.
///
/// # Errors
/// When the file cannot be opened or read; the error names the path.
pub fn hash_file(path: &Path) -> Result<FileHash> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0_u8; 1 << 16];
    let mut bytes = 0_u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileHash {
        blake3: hasher.finalize().to_hex().to_string(),
        bytes,
    })
}

/// Hex blake3 of some bytes.
pub fn hash_bytes(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// The first 12 hex digits of a hash, for messages and tables.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Hex blake3 of a list of row indices (for split provenance).
pub fn hash_indices(indices: &[usize]) -> String {
    let mut hasher = blake3::Hasher::new();
    for &i in indices {
        hasher.update(&(i as u64).to_le_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_hash_matches_bytes_hash() {
        let dir = std::env::temp_dir().join(format!("kiln-hash-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join("x.txt");
        fs_err::write(&path, b"hello kiln").unwrap();
        let h = hash_file(&path).unwrap();
        assert_eq!(h.blake3, hash_bytes(b"hello kiln"));
        assert_eq!(h.bytes, 10);
        assert_ne!(hash_indices(&[1, 2]), hash_indices(&[2, 1]));
        fs_err::remove_dir_all(&dir).unwrap();
    }
}
