//! Free-text columns: hashed word n-grams weighted by TF-IDF, L2-normalized.

use serde::{Deserialize, Serialize};

use crate::categorical::hashed_slot;
use crate::config::TextConfig;

/// A fitted text column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedText {
    /// Column name.
    pub name: String,
    /// Hash buckets (output columns).
    pub width: usize,
    /// Smallest and largest n-gram length, in words.
    pub ngrams: [usize; 2],
    /// Lower-cases before tokenizing.
    pub lowercase: bool,
    /// Inverse document frequency per bucket from the train rows (`ln((1+n)/(1+df)) + 1`, as
    /// scikit-learn's smoothed IDF); `None` for plain counts.
    pub idf: Option<Vec<f64>>,
}

impl FittedText {
    /// Learns the IDF weights from the train documents (`None` when missing).
    pub(crate) fn fit(name: &str, config: &TextConfig, documents: &[Option<&str>]) -> Self {
        let mut fitted = Self {
            name: name.to_owned(),
            width: config.width.max(1),
            ngrams: [
                config.ngrams[0].max(1),
                config.ngrams[1].max(config.ngrams[0]).max(1),
            ],
            lowercase: config.lowercase,
            idf: None,
        };
        if config.tfidf {
            let mut document_frequency = vec![0_usize; fitted.width];
            let mut counts = vec![0.0_f64; fitted.width];
            for document in documents {
                fitted.add_document(*document, &mut counts, &mut document_frequency);
            }
            fitted.idf = Some(idf(&document_frequency, documents.len()));
        }
        fitted
    }

    /// Counts the buckets `document` holds in `document_frequency`; `counts` is scratch of
    /// `width` slots.
    pub(crate) fn add_document(
        &self,
        document: Option<&str>,
        counts: &mut [f64],
        document_frequency: &mut [usize],
    ) {
        counts.fill(0.0);
        self.count(document.unwrap_or(""), counts);
        for (df, &c) in document_frequency.iter_mut().zip(&*counts) {
            *df += usize::from(c > 0.0);
        }
    }

    /// Adds the document's n-gram counts per bucket to `counts`.
    pub(crate) fn count(&self, document: &str, counts: &mut [f64]) {
        let lowered;
        let text = if self.lowercase {
            lowered = document.to_lowercase();
            lowered.as_str()
        } else {
            document
        };
        let tokens = tokens(text);
        let mut gram = String::new();
        for n in self.ngrams[0]..=self.ngrams[1] {
            for window in tokens.windows(n) {
                gram.clear();
                for (i, token) in window.iter().enumerate() {
                    if i > 0 {
                        gram.push(' ');
                    }
                    gram.push_str(token);
                }
                counts[hashed_slot(&gram, self.width).0] += 1.0;
            }
        }
    }

    /// Writes the weighted, normalized counts of `document` into `out[..width]`.
    pub(crate) fn write(&self, document: Option<&str>, out: &mut [f32]) {
        let mut counts = vec![0.0_f64; self.width];
        self.count(document.unwrap_or(""), &mut counts);
        if let Some(idf) = &self.idf {
            for (c, w) in counts.iter_mut().zip(idf) {
                *c *= w;
            }
        }
        let norm = counts.iter().map(|c| c * c).sum::<f64>().sqrt();
        if norm > 0.0 {
            for (o, c) in out.iter_mut().zip(&counts) {
                #[allow(clippy::cast_possible_truncation)] // Features are f32.
                let v = (c / norm) as f32;
                *o = v;
            }
        }
    }
}

/// Runs of two or more word characters: scikit-learn's default token pattern `\b\w\w+\b`,
/// without pulling the regex crate's Unicode tables in for it.
fn tokens(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|t| t.chars().nth(1).is_some())
        .collect()
}

/// scikit-learn's smoothed inverse document frequency of each bucket, from how many of the
/// `documents` train documents hold it.
pub(crate) fn idf(document_frequency: &[usize], documents: usize) -> Vec<f64> {
    #[allow(clippy::cast_precision_loss)] // Row counts are far below 2^52.
    let idf = |df: usize| ((1.0 + documents as f64) / (1.0 + df as f64)).ln() + 1.0;
    document_frequency.iter().map(|&df| idf(df)).collect()
}
