//! `kiln export`: a run's bundle as one `.kiln` file.

use std::io::Write;
use std::path::Path;

use kiln_pipeline::Result;

/// Writes the bundle of `source` (a run or bundle directory) to `output`, by default
/// `<pipeline name>.kiln` in the current directory, and lists what it holds.
pub(crate) fn export(source: &Path, output: Option<&Path>) -> Result<()> {
    let output = output.map_or_else(
        || kiln_pipeline::archive::default_archive_name(source),
        Path::to_path_buf,
    );
    let manifest = kiln_pipeline::export(source, &output)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {} (archive format {}): {} files, {} bytes",
        output.display(),
        manifest.format,
        manifest.files.len(),
        manifest.bytes()
    )?;
    for file in &manifest.files {
        writeln!(
            out,
            "  {:<16} {:>10}  blake3 {}",
            file.name, file.hash.bytes, file.hash.blake3
        )?;
    }
    Ok(())
}
