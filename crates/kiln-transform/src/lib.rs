//! Feature transforms for kiln, leak-proof by construction: a [`FeaturePlan`] is configured,
//! then fitted on the training rows only; only the [`FittedFeatures`] it returns can
//! transform, and its state is serde so the bundle carries exactly what was fitted.
//!
//! ```no_run
//! # use kiln_transform::{FeaturePlan, FeatureConfig};
//! # fn demo(table: &kiln_data::Table, train: &[usize], test: &[usize]) -> kiln_transform::Result<()> {
//! let plan = FeaturePlan::new(table.schema(), &["species"], FeatureConfig::default());
//! let fitted = plan.fit(table, train)?;          // sees train rows only
//! let x_test = fitted.transform(table, test)?;   // dense f32, one row per test row
//! assert_eq!(x_test.cols, fitted.width());
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod categorical;
mod config;
mod datetime;
mod dense;
mod error;
mod features;
mod fitter;
mod numeric;
mod target;
mod text;

pub use categorical::{CategoryEncoding, FittedCategorical};
pub use config::{
    CategoricalConfig, Clip, DatePart, DatetimeConfig, Encode, FeatureConfig, Impute,
    NumericConfig, Scale, TextConfig, Unknown,
};
pub use datetime::FittedDatetime;
pub use dense::{DenseNumeric, DenseNumericOps};
pub use error::{Error, ImageColumnsError, Result};
pub use features::{FeaturePlan, FittedColumn, FittedFeatures};
pub use fitter::{FeaturesFitter, POWER_SAMPLE_ROWS, TargetFitter};
pub use numeric::FittedNumeric;
pub use target::{FittedTarget, TargetKind, Targets};
pub use text::FittedText;
