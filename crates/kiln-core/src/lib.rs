//! Shared foundations of kiln: backend selection, errors, seeded RNG streams, content hashes
//! and atomic output.
//!
//! Everything above this crate is generic over `B: Backend`; only [`backend`] names concrete
//! burn backends, so a burn upgrade touches one file.
//!
//! ```
//! use kiln_core::{BackendKind, rng::stream};
//! use rand::RngExt;
//!
//! let kind: BackendKind = "ndarray".parse().unwrap();
//! assert_eq!(kind.to_string(), "ndarray");
//! // The same seed and stream name always give the same numbers.
//! let a: u64 = stream(42, "split").random();
//! let b: u64 = stream(42, "split").random();
//! assert_eq!(a, b);
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backend;
mod error;
pub mod fsx;
pub mod hash;
mod host;
mod matrix;
pub mod rng;
pub mod suggest;

pub use backend::{
    BackendKind, BackendVisitor, DeviceInfo, Precision, device_info, dispatch, dispatch_with,
};
pub use error::{Error, Result};
pub use host::HostInfo;
pub use matrix::Matrix;

/// kiln's version, recorded in every manifest.
pub const KILN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The burn version kiln is built against (pinned `=0.21.0` in the workspace).
pub const BURN_VERSION: &str = "0.21.0";

/// The workspace's Cargo.lock at build time: the exact version of every dependency.
const CARGO_LOCK: &[u8] = include_bytes!("../../../Cargo.lock");

/// blake3 of the Cargo.lock kiln was built with, recorded in every manifest.
pub fn cargo_lock_hash() -> String {
    hash::hash_bytes(CARGO_LOCK)
}
