//! Tabular ingestion for kiln, on Arrow: CSV (optionally gzipped), Parquet and JSON Lines
//! readers; schema inference with types and roles; validation rules and reports; one-pass
//! column statistics; seeded splits (random, stratified, group, time-ordered, k-fold). CSV and
//! Parquet files also read in chunks ([`read_chunks`]), for passes over data larger than memory.
//!
//! ```no_run
//! use kiln_data::{ReadOptions, StatsOptions, ValidationConfig, compute_stats, infer_schema,
//!     read_table, validate};
//! use std::collections::BTreeMap;
//!
//! # fn main() -> kiln_data::Result<()> {
//! let raw = read_table("penguins.parquet".as_ref(), &ReadOptions::default())?;
//! let schema = infer_schema(&raw, 1000, &BTreeMap::new())?;
//! println!("{}", schema.to_toml());
//! let table = raw.conform(&schema, &[])?;
//! let report = validate(&table, &ValidationConfig::default())?;
//! assert!(!report.has_errors());
//! let stats = compute_stats(&table, &StatsOptions::default())?;
//! println!("{} rows", stats.rows);
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod csv;
mod datetime;
mod error;
mod idx;
mod jsonl;
mod pq;
mod raw;
mod schema;
mod source;
pub mod split;
pub mod stats;
mod stored;
mod table;
pub mod validate;

pub use builder::{Cell, TableBuilder};
pub use csv::{CsvChunks, CsvOptions, DEFAULT_MAX_FIELD_BYTES, read_csv};
pub use datetime::CivilTime;
pub use error::{Error, Result, RowLocation};
pub use pq::ParquetChunks;
pub use raw::RawTable;
pub use schema::{
    ColumnRole, ColumnSchema, ColumnSettings, ColumnSpec, ColumnType, Schema, infer_schema,
    infer_schema_with,
};
pub use source::{
    Compression, Format, ReadOptions, estimated_memory_bytes, input_files, read_chunks, read_table,
};
pub use split::{Fold, RowSplitter, Split, SplitFractions, SplitHashes, k_fold, stratified_k_fold};
pub use stats::{DatasetStats, StatsOptions, compute_stats, compute_stats_of};
pub use table::{ColumnRef, Table};
pub use validate::{Severity, ValidationConfig, ValidationReport, validate};
