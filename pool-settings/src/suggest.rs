//! "Did you mean": the closest candidate by edit distance. One rule for
//! both macros and the run-time warnings about unknown variables.

/// Levenshtein distance between two strings (by `char`).
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate within `limit` edits.
pub fn closest_within<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The candidate closest to `word`, if it is close enough to be a typo
/// (a third of its length, at least 2 edits).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    closest_within(word, candidates, (word.chars().count() / 3).max(2))
}

/// `" (did you mean `x`?)"` or nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match closest(word, candidates) {
        Some(c) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("defualt", "default"), 2);
        assert_eq!(distance("rnage", "range"), 2);
        assert_eq!(distance("pool_size", "pool_siz"), 1);
        assert_eq!(distance("abc", "xyz"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let keys = ["default", "range", "env", "secret"];
        assert_eq!(closest("defualt", keys), Some("default"));
        assert_eq!(closest("rang", keys), Some("range"));
        assert_eq!(closest("completely_else", keys), None);
        assert_eq!(did_you_mean("secrte", keys), " (did you mean `secret`?)");
        let names = ["DB_POOL_SIZE", "DB_MAX_OVERFLOW"];
        assert_eq!(
            closest_within("DB_POOL_SIZ", names, 3),
            Some("DB_POOL_SIZE")
        );
        assert_eq!(closest_within("DB_OTHER_THING", names, 3), None);
    }
}
