//! Words of report text: ASCII case-insensitive matching (the wording of MTA templates is matched
//! without regard to case, and without allocating a lower-cased copy), unfolding lines into one,
//! and the head of a text where family markers are looked for.

/// Whether `haystack` contains `needle`, ASCII case-insensitively.
pub fn contains_ci(haystack: &str, needle: &str) -> bool {
    find_ci(haystack, needle).is_some()
}

/// Byte offset of the first `needle` in `haystack`, ASCII case-insensitively.
pub fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some((&first, rest)) = n.split_first() else {
        return Some(0);
    };
    if h.len() < n.len() {
        return None;
    }
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let last_start = h.len() - n.len();
    let mut i = 0;
    while i <= last_start {
        match h
            .get(i..=last_start)
            .and_then(|w| w.iter().position(|&b| b == lo || b == up))
        {
            None => return None,
            Some(p) => {
                let at = i + p;
                if h.get(at + 1..at + n.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(rest))
                {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

/// Whether `haystack` starts with `needle`, ASCII case-insensitively.
pub fn starts_with_ci(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .get(..needle.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(needle.as_bytes()))
}

/// `s` with its leading `prefix` removed, compared ASCII case-insensitively.
pub fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// Joins lines into one: each line trimmed, runs of whitespace collapsed to one space.
pub fn unfold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The first 16 KiB of a report's text (cut at a character boundary): where family markers are
/// looked for, so detection stays cheap on long messages.
pub fn head(text: &str) -> &str {
    let mut end = text.len().min(16 * 1024);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_ignoring_ascii_case() {
        assert!(contains_ci("Mail Delivery FAILED here", "delivery failed"));
        assert!(!contains_ci("short", "longer needle"));
        assert!(contains_ci("anything", ""));
        assert_eq!(find_ci("abc ABC", "bc"), Some(1));
        assert_eq!(find_ci("xx Été", "été"), None);
        assert_eq!(find_ci("xx Été", "Été"), Some(3));
        assert_eq!(strip_prefix_ci("RCPT TO:<a>", "rcpt to:"), Some("<a>"));
        assert!(starts_with_ci("Original Message", "original"));
    }

    #[test]
    fn unfolds_lines_and_cuts_the_head() {
        assert_eq!(unfold(" a \n\n b  c\n"), "a b c");
        let long = "é".repeat(10_000);
        let h = head(&long);
        assert!(h.len() <= 16 * 1024 && h.len() > 16 * 1024 - 4);
    }
}
