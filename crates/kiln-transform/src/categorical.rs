//! Categorical columns: one-hot, embedding index, ordinal, hashing and target encodings.

use std::collections::BTreeMap;
use std::io::Cursor;

use foldhash::{HashMap, HashMapExt as _};
use serde::{Deserialize, Serialize};

use crate::config::{CategoricalConfig, Encode, Unknown};

/// A fitted categorical column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedCategorical {
    /// Column name.
    pub name: String,
    /// Replaces missing values (the train mode).
    pub fill: String,
    /// The fitted encoding.
    pub encoding: CategoryEncoding,
}

/// What an encoding learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "encode", rename_all = "snake_case")]
pub enum CategoryEncoding {
    /// One column per category, then an "other" column when some values were folded as rare
    /// or unknown values go there.
    OneHot {
        /// Categories with their own column, sorted.
        categories: Vec<String>,
        /// Train values folded into "other" (rarer than `min_frequency`, or beyond
        /// `max_categories`), sorted.
        infrequent: Vec<String>,
        /// Where unseen values go.
        unknown: Unknown,
    },
    /// The category's index for a learned embedding; the last index is for anything else.
    Index {
        /// Known categories, sorted.
        categories: Vec<String>,
    },
    /// The position in `categories`; -1 for anything else.
    Ordinal {
        /// The categories in order.
        categories: Vec<String>,
    },
    /// `width` columns; the murmur3 hash of the value picks one and its sign the ±1.
    Hashing {
        /// Output width.
        width: usize,
    },
    /// The smoothed target mean per category: one output for regression and binary targets,
    /// one per class for more classes.
    Target {
        /// Known categories, sorted.
        categories: Vec<String>,
        /// `categories.len() × outputs` encodings, row-major.
        encodings: Vec<f64>,
        /// The train target mean per output: the encoding of unseen values.
        prior: Vec<f64>,
    },
}

/// Per-row target values for target encoding: `outputs` numbers per train row (the value, the
/// positive class indicator, or a one-hot of the class).
#[derive(Debug, Clone)]
pub(crate) struct TargetColumns {
    pub(crate) outputs: usize,
    /// `rows × outputs`, `None` where the row's target is missing.
    pub(crate) values: Vec<Option<Vec<f64>>>,
}

impl FittedCategorical {
    /// Learns the mode and the encoding from the train values (`None` when missing).
    /// `targets` has one entry per value, for target encoding.
    pub(crate) fn fit(
        name: &str,
        config: &CategoricalConfig,
        values: &[Option<&str>],
        as_index: bool,
        targets: Option<&TargetColumns>,
    ) -> Result<Self, FitError> {
        // Hashing per row, ordering once per distinct value.
        let mut hashed: HashMap<&str, usize> = HashMap::new();
        for v in values.iter().flatten() {
            *hashed.entry(v).or_default() += 1;
        }
        let counts: BTreeMap<&str, usize> = hashed.into_iter().collect();
        if let (Encode::Ordinal, Some(order)) = (config.encode, &config.order)
            && let Some(unlisted) = values
                .iter()
                .position(|v| v.is_some_and(|v| !order.iter().any(|o| o == v)))
        {
            return Err(FitError::NotInOrder {
                index: unlisted,
                value: values[unlisted].unwrap_or_default().to_owned(),
            });
        }
        let mut fitted = Self::from_counts(name, config, &counts, as_index);
        if config.encode == Encode::Target {
            let targets = targets.ok_or(FitError::NoTarget)?;
            let fill_ref = fitted.fill.as_str();
            let filled: Vec<&str> = values.iter().map(|v| v.unwrap_or(fill_ref)).collect();
            let (categories, encodings, prior) = target_means(&filled, targets, config.smoothing);
            fitted.encoding = CategoryEncoding::Target {
                categories,
                encodings,
                prior,
            };
        }
        Ok(fitted)
    }

    /// Learns the mode and the encoding from the count of each train value, for every
    /// encoding but target encoding (which needs the rows' targets: it gets an empty
    /// placeholder that [`FittedCategorical::fit`] replaces). Ordinal orders are checked by
    /// the caller.
    pub(crate) fn from_counts(
        name: &str,
        config: &CategoricalConfig,
        counts: &BTreeMap<&str, usize>,
        as_index: bool,
    ) -> Self {
        // Most frequent; ties go to the first in sorted order.
        let fill = counts
            .iter()
            .fold(None::<(&str, usize)>, |best, (&v, &n)| match best {
                Some((_, m)) if m >= n => best,
                _ => Some((v, n)),
            })
            .map(|(v, _)| v.to_owned())
            .unwrap_or_default();
        let sorted_categories = || counts.keys().map(|&v| v.to_owned()).collect::<Vec<_>>();
        let encoding = match config.encode {
            Encode::OneHot if as_index => CategoryEncoding::Index {
                categories: frequent(counts, config.min_frequency, None).0,
            },
            Encode::OneHot => {
                let (categories, infrequent) =
                    frequent(counts, config.min_frequency, config.max_categories);
                CategoryEncoding::OneHot {
                    categories,
                    infrequent,
                    unknown: config.unknown,
                }
            }
            Encode::Ordinal => CategoryEncoding::Ordinal {
                categories: config.order.clone().unwrap_or_else(sorted_categories),
            },
            Encode::Hashing => CategoryEncoding::Hashing {
                width: config.hash_width.max(1),
            },
            Encode::Target => CategoryEncoding::Target {
                categories: Vec::new(),
                encodings: Vec::new(),
                prior: Vec::new(),
            },
        };
        Self {
            name: name.to_owned(),
            fill,
            encoding,
        }
    }

    /// The encoding and what it learned, on one line (long category lists cut).
    pub fn describe(&self) -> String {
        const SHOWN: usize = 8;
        let list = |values: &[String]| {
            let mut shown: Vec<&str> = values.iter().take(SHOWN).map(String::as_str).collect();
            let more = values.len().saturating_sub(SHOWN);
            let more = (more > 0).then(|| format!("… {more} more"));
            shown.extend(more.as_deref());
            shown.join(", ")
        };
        let fill = &self.fill;
        match &self.encoding {
            CategoryEncoding::OneHot {
                categories,
                infrequent,
                unknown,
            } => format!(
                "one_hot [{}] infrequent={} unknown={} fill={fill}",
                list(categories),
                infrequent.len(),
                match unknown {
                    Unknown::Other => "other",
                    Unknown::Zeros => "zeros",
                }
            ),
            CategoryEncoding::Index { categories } => {
                format!("embedding index [{}] fill={fill}", list(categories))
            }
            CategoryEncoding::Ordinal { categories } => {
                format!("ordinal [{}] fill={fill}", list(categories))
            }
            CategoryEncoding::Hashing { width } => {
                format!("hashing into {width} columns fill={fill}")
            }
            CategoryEncoding::Target {
                categories, prior, ..
            } => {
                let prior: Vec<String> = prior.iter().map(|p| format!("{p:.6}")).collect();
                format!(
                    "target means of {} categories, prior [{}] fill={fill}",
                    categories.len(),
                    prior.join(", ")
                )
            }
        }
    }

    /// Output columns.
    pub fn width(&self) -> usize {
        match &self.encoding {
            CategoryEncoding::OneHot {
                categories,
                infrequent,
                unknown,
            } => categories.len() + usize::from(has_other(infrequent, *unknown)),
            CategoryEncoding::Index { .. } | CategoryEncoding::Ordinal { .. } => 1,
            CategoryEncoding::Hashing { width } => *width,
            CategoryEncoding::Target {
                categories,
                encodings,
                ..
            } => encodings.len() / categories.len().max(1),
        }
    }

    /// Names of the output columns.
    pub fn output_names(&self) -> Vec<String> {
        let name = &self.name;
        match &self.encoding {
            CategoryEncoding::OneHot { categories, .. } => {
                let mut names: Vec<String> =
                    categories.iter().map(|v| format!("{name}={v}")).collect();
                if names.len() < self.width() {
                    names.push(format!("{name}=<other>"));
                }
                names
            }
            CategoryEncoding::Index { .. } | CategoryEncoding::Ordinal { .. } => {
                vec![name.clone()]
            }
            CategoryEncoding::Hashing { width } => {
                (0..*width).map(|i| format!("{name}#{i}")).collect()
            }
            CategoryEncoding::Target { .. } => match self.width() {
                1 => vec![format!("{name}~target")],
                k => (0..k).map(|i| format!("{name}~target{i}")).collect(),
            },
        }
    }

    /// A lookup from value to output slot, built once per transform call.
    pub(crate) fn encoder(&self) -> Encoder<'_> {
        match &self.encoding {
            CategoryEncoding::OneHot {
                categories,
                infrequent,
                unknown,
            } => Encoder {
                fitted: self,
                slots: slot_index(categories),
                other: has_other(infrequent, *unknown).then_some(categories.len()),
            },
            CategoryEncoding::Index { categories }
            | CategoryEncoding::Ordinal { categories }
            | CategoryEncoding::Target { categories, .. } => Encoder {
                fitted: self,
                slots: slot_index(categories),
                other: None,
            },
            CategoryEncoding::Hashing { .. } => Encoder {
                fitted: self,
                slots: HashMap::new(),
                other: None,
            },
        }
    }
}

fn slot_index(categories: &[String]) -> HashMap<&str, usize> {
    categories
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect()
}

fn has_other(infrequent: &[String], unknown: Unknown) -> bool {
    !infrequent.is_empty() || unknown == Unknown::Other
}

/// Encodes values of one fitted column.
pub(crate) struct Encoder<'a> {
    fitted: &'a FittedCategorical,
    slots: HashMap<&'a str, usize>,
    other: Option<usize>,
}

impl Encoder<'_> {
    /// Writes the outputs for `value` (`None` when missing) into zeroed `out[..width]`.
    pub(crate) fn write(&self, value: Option<&str>, out: &mut [f32]) {
        let value = value.unwrap_or(&self.fitted.fill);
        match &self.fitted.encoding {
            CategoryEncoding::OneHot {
                infrequent,
                unknown,
                ..
            } => {
                let slot = self.slots.get(value).copied().or_else(|| {
                    let rare = infrequent
                        .binary_search_by(|c| c.as_str().cmp(value))
                        .is_ok();
                    if rare || *unknown == Unknown::Other {
                        self.other
                    } else {
                        None
                    }
                });
                if let Some(slot) = slot {
                    out[slot] = 1.0;
                }
            }
            CategoryEncoding::Index { categories } => {
                let slot = self.slots.get(value).copied().unwrap_or(categories.len());
                out[0] = index_f32(slot);
            }
            CategoryEncoding::Ordinal { .. } => {
                out[0] = self.slots.get(value).map_or(-1.0, |&s| index_f32(s));
            }
            CategoryEncoding::Hashing { width } => {
                let (slot, sign) = hashed_slot(value, *width);
                out[slot] += sign;
            }
            CategoryEncoding::Target {
                encodings, prior, ..
            } => {
                let k = prior.len();
                let row = self
                    .slots
                    .get(value)
                    .map_or(prior.as_slice(), |&s| &encodings[s * k..(s + 1) * k]);
                for (o, &e) in out.iter_mut().zip(row) {
                    #[allow(clippy::cast_possible_truncation)] // Features are f32.
                    let e = e as f32;
                    *o = e;
                }
            }
        }
    }
}

#[allow(clippy::cast_precision_loss)] // Exact: category counts are far below 2^24.
fn index_f32(slot: usize) -> f32 {
    slot as f32
}

/// scikit-learn's FeatureHasher: the signed 32-bit murmur3 hash (seed 0) of the UTF-8 bytes;
/// its absolute value modulo `width` picks the column, its sign the ±1.
pub(crate) fn hashed_slot(value: &str, width: usize) -> (usize, f32) {
    let h = murmur3_32(value.as_bytes());
    #[allow(clippy::cast_possible_wrap)] // The signed reading is the point.
    let signed = h as i32;
    // scikit-learn maps i32::MIN to i32::MAX.
    let magnitude = if signed == i32::MIN {
        i32::MAX.unsigned_abs()
    } else {
        signed.unsigned_abs()
    };
    let slot = usize::try_from(magnitude).expect("u32 fits usize") % width;
    (slot, if signed >= 0 { 1.0 } else { -1.0 })
}

pub(crate) fn murmur3_32(bytes: &[u8]) -> u32 {
    murmur3::murmur3_32(&mut Cursor::new(bytes), 0).expect("reading from memory cannot fail")
}

/// Categories kept (count ≥ `min_frequency`, at most `max_categories - 1` of the most frequent
/// when some fold into "other") and those folded, both sorted.
fn frequent(
    counts: &BTreeMap<&str, usize>,
    min_frequency: usize,
    max_categories: Option<usize>,
) -> (Vec<String>, Vec<String>) {
    type Counted<'a> = Vec<(&'a str, usize)>;
    let (mut kept, mut folded): (Counted, Counted) = counts
        .iter()
        .map(|(&v, &n)| (v, n))
        .partition(|&(_, n)| n >= min_frequency);
    if let Some(max) = max_categories.map(|m| m.max(1))
        && kept.len() + usize::from(!folded.is_empty()) > max
    {
        // "other" takes one column; the most frequent keep theirs (ties: sorted order).
        kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        folded.extend(kept.drain(max - 1..));
    }
    let mut kept: Vec<String> = kept.into_iter().map(|(v, _)| v.to_owned()).collect();
    let mut folded: Vec<String> = folded.into_iter().map(|(v, _)| v.to_owned()).collect();
    kept.sort_unstable();
    folded.sort_unstable();
    (kept, folded)
}

/// Sorted categories, their smoothed target means `(sum + m·prior) / (n + m)` and the prior.
pub(crate) fn target_means(
    values: &[&str],
    targets: &TargetColumns,
    smoothing: f64,
) -> (Vec<String>, Vec<f64>, Vec<f64>) {
    let k = targets.outputs;
    let mut prior = vec![0.0; k];
    let mut labelled = 0.0;
    let mut sums: BTreeMap<&str, (f64, Vec<f64>)> = BTreeMap::new();
    for (&v, target) in values.iter().zip(&targets.values) {
        let entry = sums.entry(v).or_insert_with(|| (0.0, vec![0.0; k]));
        if let Some(t) = target {
            entry.0 += 1.0;
            for (s, x) in entry.1.iter_mut().zip(t) {
                *s += x;
            }
            for (p, x) in prior.iter_mut().zip(t) {
                *p += x;
            }
            labelled += 1.0;
        }
    }
    if labelled > 0.0 {
        for p in &mut prior {
            *p /= labelled;
        }
    }
    let mut categories = Vec::with_capacity(sums.len());
    let mut encodings = Vec::with_capacity(sums.len() * k);
    for (v, (n, sum)) in sums {
        categories.push(v.to_owned());
        encodings.extend(sum.iter().zip(&prior).map(|(s, p)| {
            if n + smoothing > 0.0 {
                smoothing.mul_add(*p, *s) / (n + smoothing)
            } else {
                *p
            }
        }));
    }
    (categories, encodings, prior)
}

/// Why a categorical column could not be fitted; the caller adds file and line.
#[derive(Debug)]
pub(crate) enum FitError {
    /// `order` does not list a train value; `index` is its position in the train values.
    NotInOrder { index: usize, value: String },
    /// Target encoding without a target.
    NoTarget,
}
