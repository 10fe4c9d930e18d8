//! `[features]`: per-type defaults and per-column overrides.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How numeric gaps are filled (from the train rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impute {
    /// The train median.
    #[default]
    Median,
    /// The train mean.
    Mean,
    /// `fill_value`.
    Constant,
}

/// How numeric columns are scaled (with train statistics), as scikit-learn's scalers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Subtract the mean, divide by the population standard deviation.
    #[default]
    Standard,
    /// Map the train range onto [0, 1].
    MinMax,
    /// Subtract the median, divide by the interquartile range (robust to outliers).
    Robust,
    /// Divide by the largest absolute value (keeps zeros and signs).
    MaxAbs,
    /// Leave values as they are.
    None,
}

/// Clipping bounds: fixed values, or quantiles of the train rows (e.g. `[0.01, 0.99]`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Clip {
    /// Lower bound.
    pub min: Option<f64>,
    /// Upper bound.
    pub max: Option<f64>,
    /// Lower and upper train quantiles, each in [0, 1]; they replace `min` and `max`.
    pub quantiles: Option<[f64; 2]>,
}

/// Transforms for numeric columns, applied in this order: impute, clip, log1p, Yeo-Johnson,
/// then scale (or quantile binning instead of scaling).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NumericConfig {
    /// Gap filling.
    pub impute: Impute,
    /// The fill for `impute = "constant"`.
    pub fill_value: f64,
    /// Adds a 0/1 column that marks missing values.
    pub missing_indicator: bool,
    /// Clipping bounds.
    pub clip: Option<Clip>,
    /// `ln(1 + x)`; values must be above -1.
    pub log1p: bool,
    /// Yeo-Johnson power transform, λ fitted by maximum likelihood on the train rows.
    pub power: bool,
    /// Scaling.
    pub scale: Scale,
    /// Replaces scaling with one-hot quantile bins (edges from the train rows).
    pub bins: Option<usize>,
}

/// How a categorical column is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encode {
    /// One 0/1 column per category, and one for rare or unknown values.
    #[default]
    OneHot,
    /// The category's position in `order` (or sorted order); unknown values give -1.
    Ordinal,
    /// `hash_width` columns, the signed murmur3 hash of the value (scikit-learn's
    /// FeatureHasher).
    Hashing,
    /// The smoothed mean of the target per category, cross-fitted over folds of the train rows
    /// so a row's own target never reaches its encoding.
    Target,
}

/// Where one-hot encoding puts a value not seen in training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    /// In the "other" column, with the rare values.
    #[default]
    Other,
    /// Nowhere: all zeros.
    Zeros,
}

/// Transforms for categorical columns: most-frequent imputation, then an encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CategoricalConfig {
    /// The encoding.
    pub encode: Encode,
    /// One-hot: values seen fewer times than this in the train rows fold into "other".
    pub min_frequency: usize,
    /// One-hot: at most this many columns, "other" included (the most frequent values keep
    /// theirs).
    pub max_categories: Option<usize>,
    /// One-hot: where unseen values go.
    pub unknown: Unknown,
    /// Ordinal: the categories in order (e.g. `["Fair", "Good", "Very Good"]`).
    pub order: Option<Vec<String>>,
    /// Hashing: output width.
    pub hash_width: usize,
    /// Target encoding: weight of the overall mean, in rows (`(sum + m·mean) / (n + m)`).
    pub smoothing: f64,
    /// Target encoding: folds for cross-fitting the train rows.
    pub folds: usize,
}

impl Default for CategoricalConfig {
    fn default() -> Self {
        Self {
            encode: Encode::OneHot,
            min_frequency: 1,
            max_categories: None,
            unknown: Unknown::Other,
            order: None,
            hash_width: 32,
            smoothing: 10.0,
            folds: 5,
        }
    }
}

/// A calendar field of a datetime column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatePart {
    /// Calendar year (standardized with the train mean and deviation).
    Year,
    /// 1–12.
    Month,
    /// Day of the month, 1–31.
    Day,
    /// Monday = 0 … Sunday = 6.
    DayOfWeek,
    /// 0–23.
    Hour,
    /// 0–59.
    Minute,
}

impl DatePart {
    /// The period of a cyclic part (`None` for the year).
    pub fn period(self) -> Option<f64> {
        match self {
            DatePart::Year => None,
            DatePart::Month => Some(12.0),
            DatePart::Day => Some(31.0),
            DatePart::DayOfWeek => Some(7.0),
            DatePart::Hour => Some(24.0),
            DatePart::Minute => Some(60.0),
        }
    }

    /// The config name, e.g. `day_of_week`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatePart::Year => "year",
            DatePart::Month => "month",
            DatePart::Day => "day",
            DatePart::DayOfWeek => "day_of_week",
            DatePart::Hour => "hour",
            DatePart::Minute => "minute",
        }
    }
}

/// Transforms for datetime columns: calendar parts, cyclic parts as sin/cos pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatetimeConfig {
    /// The parts extracted.
    pub parts: Vec<DatePart>,
    /// Encodes every part but the year as `sin(2πv/period), cos(2πv/period)` so that
    /// December sits next to January.
    pub cyclic: bool,
}

impl Default for DatetimeConfig {
    fn default() -> Self {
        Self {
            parts: vec![
                DatePart::Year,
                DatePart::Month,
                DatePart::DayOfWeek,
                DatePart::Hour,
            ],
            cyclic: true,
        }
    }
}

/// Transforms for free-text columns: hashed n-gram counts weighted by TF-IDF, L2-normalized
/// (scikit-learn's HashingVectorizer + TfidfTransformer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextConfig {
    /// Output width (hash buckets).
    pub width: usize,
    /// Smallest and largest n-gram length, in words.
    pub ngrams: [usize; 2],
    /// Lower-cases before tokenizing.
    pub lowercase: bool,
    /// Weights counts by inverse document frequency from the train rows.
    pub tfidf: bool,
}

impl Default for TextConfig {
    fn default() -> Self {
        Self {
            width: 256,
            ngrams: [1, 1],
            lowercase: true,
            tfidf: true,
        }
    }
}

/// `[features]`: transforms per column type, and overrides per column.
///
/// ```toml
/// [features]
/// numeric = { impute = "median", scale = "standard" }
/// categorical = { encode = "one_hot", min_frequency = 5 }
/// [features.columns]
/// cut = { encode = "ordinal", order = ["Fair", "Good", "Very Good", "Premium", "Ideal"] }
/// carat = { log1p = true }
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureConfig {
    /// Numeric columns.
    pub numeric: NumericConfig,
    /// Categorical columns.
    pub categorical: CategoricalConfig,
    /// Datetime columns.
    pub datetime: DatetimeConfig,
    /// Free-text columns.
    pub text: TextConfig,
    /// Per-column keys over the column type's defaults.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

impl FeatureConfig {
    /// The settings for `column`: the type's defaults with the column's overrides on top.
    ///
    /// # Errors
    /// [`Error::ColumnConfig`] when an override key does not belong to the column's type or
    /// has the wrong value.
    pub(crate) fn resolve<T: Serialize + DeserializeOwned + Clone>(
        &self,
        column: &str,
        type_name: &str,
        defaults: &T,
    ) -> Result<T> {
        let Some(overrides) = self.columns.get(column) else {
            return Ok(defaults.clone());
        };
        let serde_json::Value::Object(mut merged) =
            serde_json::to_value(defaults).expect("configs serialize")
        else {
            unreachable!("configs are structs")
        };
        merged.extend(overrides.clone());
        serde_json::from_value(serde_json::Value::Object(merged)).map_err(|e| Error::ColumnConfig {
            column: column.to_owned(),
            type_name: type_name.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Overrides naming columns that are not features, for an error before fitting.
    pub(crate) fn unused_overrides<'a>(&'a self, features: &[&str]) -> Vec<&'a str> {
        self.columns
            .keys()
            .map(String::as_str)
            .filter(|name| !features.contains(name))
            .collect()
    }
}
