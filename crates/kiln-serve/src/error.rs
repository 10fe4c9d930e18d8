use std::net::SocketAddr;

/// Errors starting or running the server (request errors are HTTP responses, not these).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bundle cannot be loaded.
    #[error(transparent)]
    Pipeline(#[from] kiln_pipeline::Error),
    /// An option breaks a rule.
    #[error("--{option}: {reason}")]
    Option {
        /// The flag.
        option: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime or the listener failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The process exit code: 2 for unusable input (bundle, options), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Pipeline(e) => e.exit_code(),
            Error::Option { .. } => 2,
            Error::Bind { .. } | Error::Io(_) => 1,
        }
    }
}

/// Result with kiln-serve's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
