//! Words of report text: ASCII case-insensitive matching (the wording of MTA templates is matched
//! without regard to case, and without allocating a lower-cased copy), unfolding lines into one,
//! and the head of a text where family markers are looked for.

/// Whether `haystack` contains `needle`, ASCII case-insensitively.
pub fn contains_ci(haystack: &str, needle: &str) -> bool {
    find_ci(haystack, needle).is_some()
}

/// Byte offset of the first `needle` in `haystack`, ASCII case-insensitively.
///
/// Candidates are found by the needle's least common byte (in English text) in either case, with
/// `memchr2`, and each is then compared whole: template wording starts with common letters
/// (`This is the ...`), and a scan for the first byte would stop at nearly every line.
pub fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return Some(0);
    }
    if h.len() < n.len() {
        return None;
    }
    let anchor = rarest(n);
    let byte = n.get(anchor).copied().unwrap_or_default();
    let (lo, up) = (byte.to_ascii_lowercase(), byte.to_ascii_uppercase());
    // The needle starts `anchor` bytes before its rare byte, so the rare byte is looked for from
    // `anchor` on, and never past where a whole needle could still fit.
    let last = h.len() - n.len() + anchor;
    let mut from = anchor;
    while from <= last {
        let window = h.get(from..=last)?;
        let at = from + memchr::memchr2(lo, up, window)?;
        let start = at - anchor;
        if h.get(start..start + n.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(n))
        {
            return Some(start);
        }
        from = at + 1;
    }
    None
}

/// The index of the needle's byte least likely in text: a digit, sign or non-ASCII byte, else the
/// rarest letter by English letter frequency (common punctuation counts as a common letter); the
/// first of equals.
fn rarest(needle: &[u8]) -> usize {
    /// Letters from most to least common in English text.
    const BY_FREQUENCY: &[u8; 26] = b"etaoinshrdlcumwfgypbvkjxqz";
    let rank = |b: u8| -> usize {
        match b {
            b' ' => 0,
            b'.' | b',' | b'-' | b'\'' | b':' | b'\n' => 4,
            b if b.is_ascii_alphabetic() => {
                let lower = b.to_ascii_lowercase();
                1 + BY_FREQUENCY.iter().position(|&l| l == lower).unwrap_or(0)
            }
            _ => 27,
        }
    };
    let mut best = (0, 0);
    for (i, &b) in needle.iter().enumerate() {
        let r = rank(b);
        if r > best.1 {
            best = (i, r);
        }
    }
    best.0
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
    let mut push = |word: &str| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    };
    if text.is_ascii() {
        // The same words as `split_whitespace`, a byte at a time: in ASCII, white space is
        // `\t` to `\r` and the space.
        let mut start = None;
        for (i, b) in text.bytes().enumerate() {
            let space = matches!(b, b'\t'..=b'\r' | b' ');
            match start {
                Some(s) if space => {
                    push(text.get(s..i).unwrap_or_default());
                    start = None;
                }
                None if !space => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            push(text.get(s..).unwrap_or_default());
        }
    } else {
        text.split_whitespace().for_each(push);
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
    fn unfold_splits_ascii_text_as_split_whitespace_does() {
        for text in [
            "",
            " ",
            "a",
            " a ",
            "a\tb",
            "a \x0b\x0c\r\n b",
            "one  two\n three ",
            "x\u{1f}y",
            "caf\u{e9}\u{a0}au lait ",
        ] {
            let want: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(unfold(text), want.join(" "), "{text:?}");
        }
    }

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
    fn finds_the_first_match_whichever_byte_anchors_the_search() {
        let naive = |h: &str, n: &str| {
            (0..=h.len().saturating_sub(n.len()))
                .find(|&i| {
                    h.as_bytes()
                        .get(i..i + n.len())
                        .is_some_and(|w| w.eq_ignore_ascii_case(n.as_bytes()))
                })
                .filter(|_| h.len() >= n.len())
        };
        let haystacks = [
            "This is the mail system at host mx.example.org.",
            "zzz Zq qZ zq- 550 5.1.1 <a@b> --- Below this line is a copy",
            "qqqq",
            "Q",
            "xxQ",
            "é Q é q",
        ];
        let needles = [
            "q",
            "Q",
            "zq",
            "qz",
            "this is",
            "5.1.1",
            "--- below",
            "é q",
            "xq",
            "qqq",
            "host mx",
        ];
        for h in haystacks {
            for n in needles {
                assert_eq!(find_ci(h, n), naive(h, n), "{n:?} in {h:?}");
            }
        }
    }

    #[test]
    fn unfolds_lines_and_cuts_the_head() {
        assert_eq!(unfold(" a \n\n b  c\n"), "a b c");
        let long = "é".repeat(10_000);
        let h = head(&long);
        assert!(h.len() <= 16 * 1024 && h.len() > 16 * 1024 - 4);
    }
}
