//! `.kiln` archives: a bundle in one file (`kiln export`), verified before it is used.
//!
//! A `.kiln` file is a plain ustar archive (`tar -tvf model.kiln` lists it):
//!
//! ```text
//! kiln-archive.json   always first: {"format", "kiln_version", "files": [{"name", "blake3", "bytes"}]}
//! bundle.json         then every file of the bundle directory, in the order listed there
//! manifest.json
//! model.mpk
//! stats.json
//! ```
//!
//! Opening one checks, before anything of it is used: the archive format (a newer one is
//! refused, naming both formats), the file's length against the sizes `kiln-archive.json`
//! lists (a cut file is refused, naming the member the cut falls in), and every member's size
//! and blake3 (a changed byte is refused, naming the member). Only verified bytes are loaded.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kiln_core::hash::{FileHash, hash_file};
use serde::{Deserialize, Serialize};

use crate::bundle::{BundleSpec, SPEC_FILE};
use crate::{Error, Result};

/// Version of the archive layout this kiln writes; it reads this one and older.
pub const ARCHIVE_FORMAT: u32 = 1;
/// The archive's own manifest, its first member.
pub const ARCHIVE_MANIFEST: &str = "kiln-archive.json";
/// The file extension of archives.
pub const ARCHIVE_EXTENSION: &str = "kiln";

/// tar's block: headers take one, data is padded to whole ones.
const BLOCK: u64 = 512;
/// tar's end-of-archive marker: two zero blocks.
const END_MARKER: u64 = 2 * BLOCK;
/// `kiln-archive.json` lists a handful of files; anything bigger is not one kiln wrote.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// What `kiln-archive.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveManifest {
    /// [`ARCHIVE_FORMAT`] when written.
    pub format: u32,
    /// The kiln that wrote the archive.
    pub kiln_version: String,
    /// The bundle's files, in archive order.
    pub files: Vec<ArchiveMember>,
}

/// One bundle file of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveMember {
    /// Its name in the bundle directory.
    pub name: String,
    /// Its blake3 and size.
    #[serde(flatten)]
    pub hash: FileHash,
}

impl ArchiveManifest {
    /// Total bytes of the bundle's files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.hash.bytes).sum()
    }
}

/// The bundle directory of `path`: `path/bundle` for a run directory, else `path` itself.
pub fn bundle_dir_of(path: &Path) -> PathBuf {
    let nested = path.join("bundle");
    if !path.join(SPEC_FILE).is_file() && nested.join(SPEC_FILE).is_file() {
        nested
    } else {
        path.to_path_buf()
    }
}

/// The default output of `kiln export`: `<pipeline name>.kiln` (from the bundle's
/// `manifest.json`; `model.kiln` without one) in the current directory.
pub fn default_archive_name(source: &Path) -> PathBuf {
    let manifest = fs_err::read(bundle_dir_of(source).join("manifest.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    let name = manifest
        .as_ref()
        .and_then(|m| m["name"].as_str())
        .filter(|n| is_member_name(n))
        .unwrap_or("model");
    PathBuf::from(format!("{name}.{ARCHIVE_EXTENSION}"))
}

/// Writes the bundle of `source` (a run directory or a bundle directory) as one archive at
/// `out`, atomically: `out` holds the whole archive or is left as it was.
///
/// # Errors
/// [`Error::BadBundle`] when `source` holds no bundle this kiln reads, holds a file that
/// cannot be archived (a subdirectory, a name outside `[A-Za-z0-9._-]`), or a file changed
/// while it was being written; IO errors naming the file.
pub fn export(source: &Path, out: &Path) -> Result<ArchiveManifest> {
    let dir = bundle_dir_of(source);
    // Only a bundle this kiln can load is worth shipping.
    BundleSpec::read(&dir)?;
    write_archive(&dir, out)
}

/// [`export`] without the check that `dir` holds a bundle this kiln reads.
fn write_archive(dir: &Path, out: &Path) -> Result<ArchiveManifest> {
    let mut files = Vec::new();
    for name in member_names(dir)? {
        let hash = hash_file(&dir.join(&name))?;
        files.push(ArchiveMember { name, hash });
    }
    let manifest = ArchiveManifest {
        format: ARCHIVE_FORMAT,
        kiln_version: env!("CARGO_PKG_VERSION").to_owned(),
        files,
    };
    let mut json = serde_json::to_vec_pretty(&manifest).expect("archive manifests serialize");
    json.push(b'\n');

    let mut file = kiln_core::fsx::AtomicFile::create(out)?;
    let mut tar = tar::Builder::new(&mut file);
    append(
        &mut tar,
        ARCHIVE_MANIFEST,
        json.len() as u64,
        json.as_slice(),
    )?;
    for member in &manifest.files {
        let path = dir.join(&member.name);
        let mut reader = HashingReader::new(fs_err::File::open(&path)?.take(member.hash.bytes));
        append(&mut tar, &member.name, member.hash.bytes, &mut reader)?;
        if reader.finish() != member.hash {
            return Err(Error::BadBundle {
                path,
                reason: "changed while it was being exported; export again".to_owned(),
            });
        }
    }
    // Writes the end-of-archive marker.
    tar.into_inner()?;
    file.commit()?;
    Ok(manifest)
}

/// The names of the files of bundle directory `dir`: `bundle.json` first, then the rest by
/// name. Hidden files (a staging leftover) are skipped.
fn member_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let bad = |reason: &str| Error::BadBundle {
            path: entry.path(),
            reason: format!("cannot be archived: {reason}"),
        };
        if !entry.file_type()?.is_file() {
            return Err(bad("a bundle holds only files"));
        }
        if !is_member_name(&name) || name == ARCHIVE_MANIFEST {
            return Err(bad(
                "archived names are at most 99 characters of A-Z, a-z, 0-9, `.`, `_` and `-`, and not kiln-archive.json",
            ));
        }
        names.push(name);
    }
    names.sort_by_key(|n| (n != SPEC_FILE, n.clone()));
    Ok(names)
}

/// Whether `name` may be an archive member: one plain path component that fits a ustar
/// header, so extracting it can only create a file directly in the target directory.
fn is_member_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Appends one regular file of `size` bytes. Headers are deterministic (mode 0644, time 0,
/// no owner), so one bundle always exports to the same bytes.
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl Read,
) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append(&header, data)?;
    Ok(())
}

/// Counts and hashes what passes through.
struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
            bytes: 0,
        }
    }

    fn finish(&self) -> FileHash {
        FileHash {
            blake3: self.hasher.finalize().to_hex().to_string(),
            bytes: self.bytes,
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A bundle ready to load: a bundle directory as it is, or a `.kiln` archive verified and
/// extracted into a private temporary directory that lives as long as this value.
///
/// Extracting rather than keeping the members in memory keeps one loading path for both:
/// [`crate::Predictor::dir`] stays a directory holding the bundle's files (serving hashes
/// `model.mpk` and reads `manifest.json`, drift checks read `stats.json`), and burn's file
/// recorder loads the weights exactly as from a directory bundle. Only bytes whose size and
/// blake3 matched `kiln-archive.json` are ever written there, the directory is private to the
/// user (mode 0700), and it is removed when the predictor is dropped.
#[derive(Debug)]
pub struct OpenedBundle {
    source: PathBuf,
    dir: PathBuf,
    extracted: Option<tempfile::TempDir>,
}

impl OpenedBundle {
    /// Opens `path`: a `.kiln` archive when it is a regular file, else a bundle directory
    /// (whose contents [`BundleSpec::read`] checks).
    ///
    /// # Errors
    /// For an archive, [`Error::NewerArchive`], [`Error::TruncatedArchive`],
    /// [`Error::CorruptArchive`] or [`Error::BadArchive`], each naming the archive (and the
    /// member at fault); IO errors.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Ok(Self {
                source: path.to_path_buf(),
                dir: path.to_path_buf(),
                extracted: None,
            });
        }
        let temp = tempfile::Builder::new()
            .prefix(".kiln-bundle-")
            .tempdir()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "{}: cannot create a temporary directory to extract it into: {e}",
                        path.display()
                    ),
                )
            })?;
        extract(path, temp.path())?;
        Ok(Self {
            source: path.to_path_buf(),
            dir: temp.path().to_path_buf(),
            extracted: Some(temp),
        })
    }

    /// What was opened: the bundle directory or the archive.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The directory holding the bundle's files (for an archive, the extracted copy).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this came from a `.kiln` archive.
    pub fn is_archive(&self) -> bool {
        self.extracted.is_some()
    }

    /// The bundle's spec; see [`BundleSpec::read`].
    ///
    /// # Errors
    /// As [`BundleSpec::read`], naming files inside an archive as `ARCHIVE/member`.
    pub fn spec(&self) -> Result<BundleSpec> {
        BundleSpec::read(&self.dir).map_err(|e| self.rebase(e))
    }

    /// Names a path inside the extracted copy as `ARCHIVE/member` in `error`, so messages
    /// about an archive's contents name the archive, not a temporary directory.
    pub(crate) fn rebase(&self, error: Error) -> Error {
        if !self.is_archive() {
            return error;
        }
        let rebase = |path: PathBuf| match path.strip_prefix(&self.dir) {
            Ok(member) => self.source.join(member),
            Err(_) => path,
        };
        match error {
            Error::BadBundle { path, reason } => Error::BadBundle {
                path: rebase(path),
                reason,
            },
            Error::Json { path, source } => Error::Json {
                path: rebase(path),
                source,
            },
            Error::Record { path, message } => Error::Record {
                path: rebase(path),
                message: message.replace(
                    &self.dir.display().to_string(),
                    &self.source.display().to_string(),
                ),
            },
            Error::Io(e) => Error::Io(std::io::Error::new(
                e.kind(),
                e.to_string().replace(
                    &self.dir.display().to_string(),
                    &self.source.display().to_string(),
                ),
            )),
            other => other,
        }
    }
}

/// Verifies the archive at `path` and extracts its members into the directory `into`.
///
/// # Errors
/// See [`OpenedBundle::open`].
pub fn extract(path: &Path, into: &Path) -> Result<ArchiveManifest> {
    let file = fs_err::File::open(path)?;
    let len = file.metadata()?.len();
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut entries = archive.entries()?;
    let not_ours = |reason: String| Error::BadArchive {
        path: path.to_path_buf(),
        reason,
    };
    let corrupt = |member: &str, reason: String| Error::CorruptArchive {
        path: path.to_path_buf(),
        member: member.to_owned(),
        reason,
    };
    let truncated = |member: &str, detail: String| Error::TruncatedArchive {
        path: path.to_path_buf(),
        member: member.to_owned(),
        detail,
    };

    // The first member: kiln-archive.json.
    let mut first = match entries.next() {
        Some(Ok(entry)) => entry,
        Some(Err(e)) if starts_with_manifest_name(path) => {
            // One of ours whose first header is cut or damaged.
            return Err(if len < BLOCK {
                truncated(
                    ARCHIVE_MANIFEST,
                    format!("the tar header of `{ARCHIVE_MANIFEST}` has {len} of {BLOCK} bytes"),
                )
            } else {
                corrupt(ARCHIVE_MANIFEST, format!("its tar header is damaged ({e})"))
            });
        }
        Some(Err(e)) => {
            return Err(not_ours(format!(
                "not a tar file ({e}); make one with `kiln export`"
            )));
        }
        None => return Err(not_ours("the file is empty".to_owned())),
    };
    let first_name = String::from_utf8_lossy(&first.path_bytes()).into_owned();
    if first_name != ARCHIVE_MANIFEST || !first.header().entry_type().is_file() {
        return Err(not_ours(format!(
            "its first member is `{first_name}`, not {ARCHIVE_MANIFEST}; make one with `kiln export`"
        )));
    }
    let manifest_bytes = first.size();
    if manifest_bytes > MAX_MANIFEST_BYTES || first.raw_header_position() != 0 {
        return Err(corrupt(
            ARCHIVE_MANIFEST,
            "not the layout kiln writes".to_owned(),
        ));
    }
    let have = len.saturating_sub(BLOCK);
    if have < manifest_bytes {
        return Err(truncated(
            ARCHIVE_MANIFEST,
            format!("member `{ARCHIVE_MANIFEST}` has {have} of its {manifest_bytes} bytes"),
        ));
    }
    let mut json = Vec::new();
    first.read_to_end(&mut json)?;
    drop(first);
    let manifest = parse_manifest(path, &json)?;

    // The layout the manifest implies: a cut anywhere is found before any member is read.
    let mut offset = BLOCK + padded(manifest_bytes);
    let mut positions = Vec::with_capacity(manifest.files.len());
    for member in &manifest.files {
        positions.push(offset);
        let data = offset + BLOCK;
        let size = member.hash.bytes;
        if len < data {
            return Err(truncated(
                &member.name,
                format!(
                    "member `{}` is missing (the file ends before it)",
                    member.name
                ),
            ));
        }
        if len < data + size {
            return Err(truncated(
                &member.name,
                format!(
                    "member `{}` has {} of its {size} bytes",
                    member.name,
                    len - data
                ),
            ));
        }
        offset = data + padded(size);
    }
    let last = manifest
        .files
        .last()
        .map_or(ARCHIVE_MANIFEST, |m| m.name.as_str());
    if len < offset + END_MARKER {
        return Err(truncated(
            last,
            format!("the end-of-archive marker after `{last}` is incomplete"),
        ));
    }
    if len > offset + END_MARKER {
        return Err(not_ours(format!(
            "{} unexpected bytes after the end of the archive",
            len - offset - END_MARKER
        )));
    }

    // Every member, in order, checked as it is extracted.
    for (member, position) in manifest.files.iter().zip(positions) {
        let name = member.name.as_str();
        let mut entry = match entries.next() {
            Some(Ok(entry)) => entry,
            Some(Err(e)) => return Err(corrupt(name, format!("its tar header is damaged ({e})"))),
            None => {
                return Err(corrupt(
                    name,
                    "missing: the archive ends before it".to_owned(),
                ));
            }
        };
        let found = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if found != name
            || !entry.header().entry_type().is_file()
            || entry.raw_header_position() != position
        {
            return Err(corrupt(
                name,
                format!("expected here as a file, found `{found}`"),
            ));
        }
        if entry.size() != member.hash.bytes {
            return Err(corrupt(
                name,
                format!(
                    "its tar header says {} bytes, {ARCHIVE_MANIFEST} says {}",
                    entry.size(),
                    member.hash.bytes
                ),
            ));
        }
        let target = into.join(name);
        let mut out = std::io::BufWriter::new(fs_err::File::create(&target)?);
        let mut reader = HashingReader::new(&mut entry);
        std::io::copy(&mut reader, &mut out)?;
        out.into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        let got = reader.finish();
        if got.bytes != member.hash.bytes {
            return Err(truncated(
                name,
                format!(
                    "member `{name}` has {} of its {} bytes",
                    got.bytes, member.hash.bytes
                ),
            ));
        }
        if got.blake3 != member.hash.blake3 {
            return Err(corrupt(
                name,
                format!(
                    "its blake3 is {}, {ARCHIVE_MANIFEST} records {} (changed or damaged since export)",
                    got.blake3, member.hash.blake3
                ),
            ));
        }
    }
    match entries.next() {
        None => Ok(manifest),
        Some(Ok(entry)) => Err(not_ours(format!(
            "member `{}` is not listed in {ARCHIVE_MANIFEST}",
            String::from_utf8_lossy(&entry.path_bytes())
        ))),
        Some(Err(e)) => Err(corrupt(
            last,
            format!("the end-of-archive marker after it is damaged ({e})"),
        )),
    }
}

/// Checks the format first (a newer kiln may lay out the rest differently), then the rest.
fn parse_manifest(path: &Path, json: &[u8]) -> Result<ArchiveManifest> {
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    let corrupt = |reason: String| Error::CorruptArchive {
        path: path.to_path_buf(),
        member: ARCHIVE_MANIFEST.to_owned(),
        reason,
    };
    let Format { format } = serde_json::from_slice(json)
        .map_err(|e| corrupt(format!("not an archive manifest ({e})")))?;
    if format > ARCHIVE_FORMAT {
        return Err(Error::NewerArchive {
            path: path.to_path_buf(),
            format,
            supported: ARCHIVE_FORMAT,
        });
    }
    if format == 0 {
        return Err(corrupt("archive format 0 does not exist".to_owned()));
    }
    let manifest: ArchiveManifest = serde_json::from_slice(json)
        .map_err(|e| corrupt(format!("not an archive manifest ({e})")))?;
    let mut seen = std::collections::BTreeSet::new();
    for member in &manifest.files {
        if !is_member_name(&member.name) || member.name == ARCHIVE_MANIFEST {
            return Err(corrupt(format!(
                "`{}` is not a name kiln archives",
                member.name
            )));
        }
        if !seen.insert(member.name.as_str()) {
            return Err(corrupt(format!("`{}` is listed twice", member.name)));
        }
    }
    Ok(manifest)
}

/// `size` rounded up to whole tar blocks.
fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK) * BLOCK
}

/// Whether the file starts with the header name of a kiln archive's first member.
fn starts_with_manifest_name(path: &Path) -> bool {
    let mut start = [0_u8; ARCHIVE_MANIFEST.len() + 1];
    fs_err::File::open(path)
        .and_then(|mut f| f.read_exact(&mut start))
        .is_ok()
        && start[..ARCHIVE_MANIFEST.len()] == *ARCHIVE_MANIFEST.as_bytes()
        && start[ARCHIVE_MANIFEST.len()] == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run directory whose bundle has files of a bundle's shape (a record spanning several
    /// tar blocks) and a staging leftover.
    fn fake_bundle(dir: &Path) -> PathBuf {
        let bundle = dir.join("run/bundle");
        fs_err::create_dir_all(&bundle).unwrap();
        fs_err::write(bundle.join(SPEC_FILE), "{\"format\": 2}\n").unwrap();
        let record: Vec<u8> = (0..3000_u32)
            .map(|i| u8::try_from(i * 7 % 251).unwrap())
            .collect();
        fs_err::write(bundle.join("model.mpk"), record).unwrap();
        fs_err::write(
            bundle.join("manifest.json"),
            "{\"name\": \"fake-pipeline\"}\n",
        )
        .unwrap();
        fs_err::write(bundle.join("stats.json"), "{}\n").unwrap();
        fs_err::write(bundle.join(".model.mpk.partial-1"), "leftover").unwrap();
        bundle
    }

    fn member_position(archive: &[u8], name: &str) -> u64 {
        let mut tar = tar::Archive::new(archive);
        tar.entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path_bytes().as_ref() == name.as_bytes())
            .map(|e| e.raw_file_position())
            .unwrap()
    }

    #[test]
    fn export_round_trips_every_file_with_bundle_json_first() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = fake_bundle(tmp.path());
        let out = tmp.path().join("fake.kiln");
        // A run directory names its bundle.
        assert_eq!(bundle_dir_of(&tmp.path().join("run")), bundle);
        assert_eq!(bundle_dir_of(&bundle), bundle);
        let manifest = write_archive(&bundle, &out).unwrap();
        let names: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["bundle.json", "manifest.json", "model.mpk", "stats.json"]
        );
        assert_eq!(manifest.format, ARCHIVE_FORMAT);

        let into = tmp.path().join("extracted");
        fs_err::create_dir_all(&into).unwrap();
        assert_eq!(extract(&out, &into).unwrap(), manifest);
        for name in names {
            assert_eq!(
                fs_err::read(into.join(name)).unwrap(),
                fs_err::read(bundle.join(name)).unwrap(),
                "{name}"
            );
        }
        // The archive's first member is its manifest, and exports are deterministic.
        let bytes = fs_err::read(&out).unwrap();
        assert!(bytes.starts_with(b"kiln-archive.json\0"));
        let again = tmp.path().join("again.kiln");
        write_archive(&bundle, &again).unwrap();
        assert_eq!(fs_err::read(&again).unwrap(), bytes);
        assert_eq!(
            default_archive_name(&bundle),
            Path::new("fake-pipeline.kiln")
        );
    }

    #[test]
    fn every_kind_of_damage_has_its_own_error() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = fake_bundle(tmp.path());
        let out = tmp.path().join("fake.kiln");
        write_archive(&bundle, &out).unwrap();
        let bytes = fs_err::read(&out).unwrap();
        let check = |name: &str, bytes: &[u8]| {
            let path = tmp.path().join(name);
            fs_err::write(&path, bytes).unwrap();
            let into = tempfile::tempdir().unwrap();
            extract(&path, into.path()).unwrap_err()
        };

        let mut flipped = bytes.clone();
        let at = usize::try_from(member_position(&bytes, "model.mpk")).unwrap() + 1234;
        flipped[at] ^= 0x40;
        let e = check("flipped.kiln", &flipped);
        assert!(
            matches!(&e, Error::CorruptArchive { member, .. } if member == "model.mpk"),
            "{e}"
        );
        assert!(e.to_string().contains("blake3"), "{e}");

        for cut in [100, 600, at, bytes.len() - 600, bytes.len() - 1] {
            let e = check("cut.kiln", &bytes[..cut]);
            assert!(
                matches!(e, Error::TruncatedArchive { .. }),
                "cut at {cut}: {e}"
            );
        }
        let e = check("cut.kiln", &bytes[..at]);
        assert!(e.to_string().contains("member `model.mpk` has"), "{e}");

        let e = check("empty.kiln", b"");
        assert!(matches!(e, Error::BadArchive { .. }), "{e}");
        let e = check("text.kiln", &b"species,island\n".repeat(100));
        assert!(matches!(e, Error::BadArchive { .. }), "{e}");
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 512]);
        let e = check("longer.kiln", &longer);
        assert!(matches!(e, Error::BadArchive { .. }), "{e}");
    }

    #[test]
    fn a_newer_format_is_refused_by_number() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = fake_bundle(tmp.path());
        let out = tmp.path().join("fake.kiln");
        write_archive(&bundle, &out).unwrap();
        let mut bytes = fs_err::read(&out).unwrap();
        // The first `"format": 1` is kiln-archive.json's; same length, same tar layout.
        let at = bytes
            .windows(11)
            .position(|w| w == b"\"format\": 1")
            .unwrap();
        bytes[at + 10] = b'7';
        fs_err::write(&out, bytes).unwrap();
        let e = extract(&out, tmp.path()).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "fake.kiln: made by a newer kiln (archive format 7, this kiln reads up to 1)"
            ),
            "{e}"
        );
    }

    #[test]
    fn unsafe_member_names_are_refused() {
        for name in ["../evil", "a/b", ".hidden", "", "kiln-archive.json\0"] {
            assert!(!is_member_name(name), "{name:?}");
        }
        assert!(is_member_name("model.mpk"));
    }
}
