//! Tabular ingestion for kiln, on Arrow: CSV reading, schema inference, typed tables and
//! seeded splits.
//!
//! ```no_run
//! use kiln_data::{CsvOptions, read_csv, infer_schema};
//! use std::collections::BTreeMap;
//!
//! # fn main() -> kiln_data::Result<()> {
//! let raw = read_csv("penguins.csv".as_ref(), &CsvOptions::default())?;
//! let schema = infer_schema(&raw, 1000, &BTreeMap::new())?;
//! let table = raw.conform(&schema, &[])?;
//! println!("{} rows", table.n_rows());
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod csv;
mod error;
mod schema;
pub mod split;
mod table;

pub use csv::{CsvOptions, RawTable, read_csv};
pub use error::{Error, Result};
pub use schema::{ColumnSchema, ColumnType, Schema, infer_schema};
pub use split::{Split, SplitFractions};
pub use table::{ColumnRef, Table};
