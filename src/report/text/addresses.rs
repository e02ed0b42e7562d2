//! Addresses in report text: finding every address in prose, the first one a sentence names, an
//! address written alone on its line, and the addresses that are never a failed recipient.
//!
//! Everything here works on `&str` with char-boundary-safe slicing and never panics.

use super::words::strip_prefix_ci;

/// An address found in text: its byte span in the text and the normalised address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Byte offset of the first character of the address (after any `<`).
    pub start: usize,
    /// Byte offset just past the address.
    pub end: usize,
    /// The address with its domain lower-cased, local part as written.
    pub address: String,
}

fn is_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&c)
}

fn is_domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_'
}

/// How far back from an address [`find_addresses`] looks for the start of the token holding it
/// (to skip addresses inside URLs); a longer token is taken as starting there.
const TOKEN_LOOKBACK: usize = 512;

/// Every address in `text`, in order. Addresses are `local@domain.tld` with an RFC 5322 dot-atom
/// local part and a dotted domain (or an `[ip]` literal); surrounding `<>`, quotes and trailing dots
/// are not part of the match.
pub fn find_addresses(text: &str) -> Vec<Found> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut search_from = 0;
    while let Some(rel) = text.get(search_from..).and_then(|t| t.find('@')) {
        let at = search_from + rel;
        search_from = at + 1;
        let mut start = at;
        while start > 0 && bytes.get(start - 1).is_some_and(|&c| is_local_char(c)) {
            start -= 1;
        }
        // A path or URL query before the address is not part of it.
        if let Some(cut) = text.get(start..at).and_then(|l| l.rfind(['/', '&', '?'])) {
            start += cut + 1;
        }
        // A local part does not start or end with a dot.
        while start < at && matches!(bytes.get(start), Some(b'.') | Some(b'=')) {
            start += 1;
        }
        // The token holding the address, looked for in the last `TOKEN_LOOKBACK` bytes only: a
        // scan back to the text's start for every `@` would make a long line of addresses
        // quadratic.
        let mut floor = start.saturating_sub(TOKEN_LOOKBACK);
        while floor < start && !text.is_char_boundary(floor) {
            floor += 1;
        }
        let token_start = text
            .get(floor..start)
            .and_then(|b| b.rfind(char::is_whitespace))
            .map_or(floor, |i| floor + i + 1);
        if text
            .get(token_start..start)
            .is_some_and(|t| t.contains("://"))
        {
            continue;
        }
        if start == at || bytes.get(at - 1) == Some(&b'.') {
            continue;
        }
        let mut end = at + 1;
        if bytes.get(end) == Some(&b'[') {
            while end < bytes.len() && bytes.get(end).is_some_and(|&c| c != b']' && c != b'>') {
                end += 1;
            }
            if bytes.get(end) == Some(&b']') {
                end += 1;
            } else {
                continue;
            }
        } else {
            while end < bytes.len() && bytes.get(end).is_some_and(|&c| is_domain_char(c)) {
                end += 1;
            }
            while end > at + 1 && matches!(bytes.get(end - 1), Some(b'.') | Some(b'-')) {
                end -= 1;
            }
        }
        let (Some(local), Some(domain)) = (text.get(start..at), text.get(at + 1..end)) else {
            continue;
        };
        if !valid_domain(domain) {
            continue;
        }
        search_from = end.max(search_from);
        out.push(Found {
            start,
            end,
            address: format!("{local}@{}", domain.to_ascii_lowercase()),
        });
    }
    out
}

fn valid_domain(domain: &str) -> bool {
    if domain.starts_with('[') {
        return domain.len() > 2;
    }
    let Some((_, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    !domain.starts_with('.')
        && !domain.contains("..")
        && tld.len() >= 2
        && tld.bytes().all(|c| c.is_ascii_alphabetic())
}

/// The first address in `text`, preferring one written in `<...>` (the form reports use for the
/// address they speak of), normalised.
pub fn first_address(text: &str) -> Option<String> {
    let found = find_addresses(text);
    let bracketed = found.iter().find(|f| {
        f.start > 0
            && text.as_bytes().get(f.start - 1) == Some(&b'<')
            && text.as_bytes().get(f.end) == Some(&b'>')
    });
    bracketed.or(found.first()).map(|f| f.address.clone())
}

/// Whether an address belongs to the reporting system itself (MAILER-DAEMON, postmaster, ...) and so
/// is never a failed recipient.
pub fn is_system_address(address: &str) -> bool {
    let local = address.split('@').next().unwrap_or("").to_ascii_lowercase();
    matches!(
        local.as_str(),
        "mailer-daemon" | "postmaster" | "mailerdaemon" | "mail-daemon" | "root" | "nobody"
    ) || local.starts_with("mailer-daemon")
        || local.starts_with("bounce")
        || local.starts_with("noreply")
        || local.starts_with("no-reply")
        || local.starts_with("double-bounce")
}

/// An address written alone (`<Bob@Example.COM>`, `"a@example.org":`, `mailto:a@example.org`, a
/// line holding only that, maybe with a trailing colon): decorations removed, domain lower-cased;
/// `None` unless the whole token is one address.
pub fn address_alone(raw: &str) -> Option<String> {
    let mut s = raw
        .trim()
        .trim_matches(|c: char| "<>\"'()[],;:".contains(c));
    if let Some(rest) = strip_prefix_ci(s, "mailto:") {
        s = rest;
    }
    let s = s.trim_end_matches('.');
    let found = find_addresses(s);
    match found.as_slice() {
        [one] if one.start == 0 && one.end == s.len() => Some(one.address.clone()),
        _ => None,
    }
}

/// Whether the bounce comes from a mailer daemon or postmaster (by its `From`).
pub fn from_daemon(from: &str) -> bool {
    let local = from.split('@').next().unwrap_or("");
    local.starts_with("mailer-daemon") || local == "postmaster" || local.starts_with("mail-daemon")
}

/// A line that starts with an address (bare or after `<`): the address and the words after it,
/// with the closing `>` and a colon removed.
pub fn leading_address(line: &str) -> Option<(String, &str)> {
    let first = find_addresses(line).into_iter().next()?;
    if first.start > 1 {
        return None;
    }
    let words = line
        .get(first.end..)
        .unwrap_or("")
        .trim_start_matches(['>', ':', ' '])
        .trim_end();
    Some((first.address, words))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_addresses_in_brackets_and_prose() {
        let found = find_addresses("to <Alice.B@Example.COM>: and bob@mail.example.net. fin");
        let addrs: Vec<_> = found.iter().map(|f| f.address.as_str()).collect();
        assert_eq!(addrs, ["Alice.B@example.com", "bob@mail.example.net"]);
    }

    #[test]
    fn rejects_non_addresses() {
        assert!(find_addresses("user@localhost @ foo@.x a@b.c1").is_empty());
        assert_eq!(
            first_address("x@[192.0.2.1]").as_deref(),
            Some("x@[192.0.2.1]")
        );
    }

    #[test]
    fn address_at_line_start() {
        assert_eq!(
            leading_address("<ida@example.org>: 550 unknown"),
            Some(("ida@example.org".to_string(), "550 unknown"))
        );
        assert_eq!(leading_address("to ida@example.org"), None);
    }

    #[test]
    fn addresses_are_normalized() {
        assert_eq!(
            address_alone("<Bob@Example.COM>").as_deref(),
            Some("Bob@example.com")
        );
        assert_eq!(
            address_alone("\"a@example.org\":").as_deref(),
            Some("a@example.org")
        );
        assert_eq!(
            address_alone("mailto:a@example.org").as_deref(),
            Some("a@example.org")
        );
        assert_eq!(address_alone("nobody"), None);
        assert_eq!(address_alone("a@localhost"), None);
        assert_eq!(
            first_address("x <no> y <c@example.net> z").as_deref(),
            Some("c@example.net")
        );
        assert_eq!(
            first_address("to d@example.net, now").as_deref(),
            Some("d@example.net")
        );
    }
}
