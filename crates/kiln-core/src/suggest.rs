//! "Did you mean …?" for names the user typed.

/// The candidate closest to `name` by Jaro–Winkler similarity, if any is close (> 0.8).
pub fn closest(name: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_only_close_names() {
        let names = ["epochs".to_owned(), "lr".to_owned()];
        assert_eq!(closest("epoch", &names).as_deref(), Some("epochs"));
        assert_eq!(closest("zzz", &names), None);
    }
}
