//! "Did you mean …?" suggestions for misspelt names (columns, config keys).

/// Jaro-Winkler similarity a candidate needs to be suggested: high enough that unrelated
/// names are not offered, low enough to catch a dropped or swapped letter.
pub const MIN_SIMILARITY: f64 = 0.75;

/// The candidate most similar to `name` (Jaro-Winkler), if any is at least
/// [`MIN_SIMILARITY`]; the first of equally similar candidates wins.
///
/// ```
/// use kiln_core::suggest::closest;
///
/// assert_eq!(closest("epoch", ["epochs", "lr"]), Some("epochs".to_owned()));
/// assert_eq!(closest("zzz", ["epochs", "lr"]), None);
/// ```
pub fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a (impl AsRef<str> + ?Sized + 'a)>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let candidate = candidate.as_ref();
        let score = strsim::jaro_winkler(name, candidate);
        if score >= MIN_SIMILARITY && best.is_none_or(|(top, _)| score > top) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, candidate)| candidate.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_most_similar_name_or_none() {
        let columns = vec![
            "bill_length_mm".to_owned(),
            "bill_depth_mm".to_owned(),
            "species".to_owned(),
        ];
        assert_eq!(
            closest("bill_lenght_mm", &columns).as_deref(),
            Some("bill_length_mm")
        );
        assert_eq!(closest("specie", &columns).as_deref(), Some("species"));
        assert_eq!(closest("island", &columns), None);
        assert_eq!(closest("x", Vec::<String>::new().iter()), None);
        // Ties keep the first candidate, so suggestions do not depend on hash order.
        assert_eq!(closest("abcx", ["abcy", "abcz"]).as_deref(), Some("abcy"));
    }
}
