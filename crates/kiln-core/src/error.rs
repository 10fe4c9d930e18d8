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
    #[error("backend `{backend}` has no usable device: {reason}; usable here: {available}")]
    NoDevice {
        /// The backend asked for.
        backend: BackendKind,
        /// Why no device could be opened.
        reason: String,
        /// The backends that do have a device here, comma separated.
        available: String,
    },
    /// The backend is not compiled into this build.
    #[error(
        "backend `{backend}` is not compiled into this build (build kiln with `--features {backend}`); usable here: {available}"
    )]
    NotCompiled {
        /// The backend asked for.
        backend: BackendKind,
        /// The backends that do have a device here, comma separated.
        available: String,
    },
    /// The device cannot create float tensors in the precision asked for.
    #[error(
        "precision `{precision}` is not available on backend `{backend}` ({reason}); f32 runs on every backend, f16 and bf16 on flex and cuda, f16 on wgpu adapters with shader-f16"
    )]
    Precision {
        /// The precision asked for.
        precision: Precision,
        /// The backend.
        backend: BackendKind,
        /// burn's reason.
        reason: String,
    },
    /// Data parallelism over more devices than the backend has here, or over none.
    #[error("cannot train on {requested} devices: {kind} here: {available}")]
    TooFewDevices {
        /// Devices asked for.
        requested: usize,
        /// Devices of that kind here.
        available: usize,
        /// What was counted, e.g. `CUDA devices`.
        kind: &'static str,
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

use crate::{BackendKind, Precision};

/// Result with kiln-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
