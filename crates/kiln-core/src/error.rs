use std::path::PathBuf;

/// Errors of kiln-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A backend name that kiln does not know.
    #[error("unknown backend `{name}`; expected one of: {expected}")]
    UnknownBackend {
        /// What the user asked for.
        name: String,
        /// The valid names, comma separated.
        expected: String,
    },
    /// The backend is compiled in but has no usable device here.
    #[error("backend `{backend}` has no usable device: {reason}")]
    NoDevice {
        /// The backend asked for.
        backend: BackendKind,
        /// Why no device could be opened.
        reason: String,
    },
    /// An output path exists already; kiln never overwrites a finished output.
    #[error("{} already exists; kiln never overwrites an earlier output", path.display())]
    AlreadyExists {
        /// The existing path.
        path: PathBuf,
    },
    /// Filesystem failure (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

use crate::BackendKind;

/// Result with kiln-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
