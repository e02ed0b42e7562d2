//! Addresses in report text: finding every address in prose, the first one a sentence names, an
//! address written alone on its line, and the addresses that are never a failed recipient.
//!
//! Everything here works on `&str` with char-boundary-safe slicing and never panics.

use super::words::{starts_with_ci, strip_prefix_ci};
use crate::address::Address;

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

/// Every address in `text`, in order, each normalised by [`Address`]: an address in `<...>` (whatever
/// its local part: quoted, UTF-8), a quoted local part (`"john..doe"@example.org`), or a dot-atom in
/// prose; the domain must look like a mail domain (a dotted name with an alphabetic top-level label,
/// or an `[ip]` literal). Surrounding `<>`, quotes and trailing dots are not part of the match, nor
/// is an address inside a URL.
///
/// The work per `@` is bounded and no byte is scanned for more than the `@`s next to it, so the
/// search is linear in the text.
pub fn find_addresses(text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    let mut search_from = 0;
    while let Some(rel) = text.get(search_from..).and_then(|t| t.find('@')) {
        let at = search_from + rel;
        search_from = at + 1;
        let found = bracketed(text, at)
            .or_else(|| quoted_local(text, at))
            .or_else(|| dot_atom(text, at));
        if let Some(f) = found {
            search_from = f.end.max(search_from);
            out.push(f);
        }
    }
    out
}

/// How far [`find_addresses`] looks on each side of an `@` for the brackets around it, and back for
/// the opening quote of a quoted local part.
const BRACKET_REACH: usize = 256;
const QUOTE_REACH: usize = 128;

/// Whether a byte ends the search for the brackets around an address.
fn stops_bracket_search(b: u8) -> bool {
    matches!(b, b'<' | b'>' | b'@' | b'"' | b',' | b';') || b.is_ascii_whitespace()
}

/// The normalised address of `candidate` (the text between its delimiters), when it is one and its
/// domain looks like a mail domain; the way MTAs dress an address up is taken off ([`mta_form`]).
fn parsed(candidate: &str) -> Option<String> {
    let candidate = strip_prefix_ci(candidate, "mailto:").unwrap_or(candidate);
    let address = mta_form(Address::parse_bare(candidate).ok()?);
    valid_domain(address.domain()).then(|| address.to_string())
}

/// Prefixes with which MTAs write a recipient's address type into its local part: Exchange's
/// proxy-address form (`SMTP:ann@example.org`) and the `smtp=` of some gateways.
const SCHEME_PREFIXES: &[&str] = &["smtp=", "smtp:"];

/// Exchange's encapsulation of an Internet address in a local one (`IMCEASMTP-ann+40example+2Eorg@
/// corp.example.net`): the prefix, then the address with `+XX` hexadecimal escapes.
const IMCEA_SMTP: &str = "IMCEASMTP-";

/// The address an MTA's way of writing one stands for: an address type written into the local
/// part (`smtp=ann@example.org`, `"SMTP:ann"@example.org`) taken off, an Exchange-encapsulated
/// Internet address (`IMCEASMTP-ann+40example+2Eorg@corp.example.net`) decoded. Any other address is
/// returned as it is.
pub fn mta_form(address: Address) -> Address {
    let local = address.local();
    if let Some(rest) = SCHEME_PREFIXES
        .iter()
        .find_map(|p| strip_prefix_ci(local, p))
        && let Ok(bare) = Address::from_parts(rest, address.domain())
    {
        return bare;
    }
    if let Some(encoded) = strip_prefix_ci(local, IMCEA_SMTP)
        && let Some(decoded) = decode_imcea(encoded)
        && let Ok(inner) = Address::parse_bare(&decoded)
    {
        return inner;
    }
    address
}

/// `+XX` hexadecimal escapes decoded (`ann+40example+2Eorg` gives `ann@example.org`); `None` when an
/// escape is broken.
fn decode_imcea(encoded: &str) -> Option<String> {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        if c != '+' {
            out.push(c);
            continue;
        }
        let hex: String = chars.by_ref().take(2).collect();
        let byte = u8::from_str_radix(&hex, 16).ok()?;
        out.push(char::from(byte));
    }
    Some(out)
}

/// The start of the quoted string that ends just before `close` (the index of its closing `"`),
/// on the same line and within [`QUOTE_REACH`] bytes; a `"` escaped by a backslash does not open it.
fn opening_quote(bytes: &[u8], close: usize) -> Option<usize> {
    let floor = close.saturating_sub(QUOTE_REACH);
    let mut i = close;
    while i > floor {
        i -= 1;
        match bytes.get(i) {
            Some(b'\n' | b'\r') | None => return None,
            Some(b'"') => {
                let escapes = bytes
                    .get(..i)
                    .unwrap_or_default()
                    .iter()
                    .rev()
                    .take_while(|&&b| b == b'\\')
                    .count();
                if escapes % 2 == 0 {
                    return Some(i);
                }
            }
            Some(_) => {}
        }
    }
    None
}

/// The address in the `<...>` around the `@` at `at`.
fn bracketed(text: &str, at: usize) -> Option<Found> {
    let bytes = text.as_bytes();
    let mut i = at;
    if at > 0 && bytes.get(at - 1) == Some(&b'"') {
        i = opening_quote(bytes, at - 1)?;
    }
    let floor = i.saturating_sub(BRACKET_REACH);
    while i > floor && bytes.get(i - 1).is_some_and(|&b| !stops_bracket_search(b)) {
        i -= 1;
    }
    if i == 0 || bytes.get(i - 1) != Some(&b'<') {
        return None;
    }
    let ceiling = (at + 1 + BRACKET_REACH).min(bytes.len());
    let mut j = at + 1;
    while j < ceiling && bytes.get(j).is_some_and(|&b| !stops_bracket_search(b)) {
        j += 1;
    }
    if bytes.get(j) != Some(&b'>') {
        return None;
    }
    let address = parsed(text.get(i..j)?)?;
    Some(Found {
        start: i,
        end: j,
        address,
    })
}

/// The end of the dotted domain that starts at `from`, trailing dots and hyphens left out.
fn domain_end(bytes: &[u8], from: usize) -> usize {
    let mut end = from;
    if bytes.get(end) == Some(&b'[') {
        while bytes.get(end).is_some_and(|&c| c != b']' && c != b'>') {
            end += 1;
        }
        return if bytes.get(end) == Some(&b']') {
            end + 1
        } else {
            from
        };
    }
    while bytes.get(end).is_some_and(|&c| is_domain_char(c)) {
        end += 1;
    }
    while end > from && matches!(bytes.get(end - 1), Some(b'.') | Some(b'-')) {
        end -= 1;
    }
    end
}

/// A quoted local part and its domain, outside brackets (`"john..doe"@example.org`).
fn quoted_local(text: &str, at: usize) -> Option<Found> {
    let bytes = text.as_bytes();
    if at == 0 || bytes.get(at - 1) != Some(&b'"') {
        return None;
    }
    let start = opening_quote(bytes, at - 1)?;
    let end = domain_end(bytes, at + 1);
    let address = parsed(text.get(start..end)?)?;
    Some(Found {
        start,
        end,
        address,
    })
}

/// A dot-atom address in prose, its local part found by scanning back from the `@`.
fn dot_atom(text: &str, at: usize) -> Option<Found> {
    let bytes = text.as_bytes();
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
    // An address type written before the local part (`smtp=ann@example.org`).
    if let Some(p) = text
        .get(start..at)
        .and_then(|l| SCHEME_PREFIXES.iter().find(|p| starts_with_ci(l, p)))
    {
        start += p.len();
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
        return None;
    }
    if start == at || bytes.get(at - 1) == Some(&b'.') {
        return None;
    }
    let end = domain_end(bytes, at + 1);
    // A quote opened before the address and closed after it (`'ann@example.org'`) is not part of
    // its local part.
    if let Some(&q) = bytes.get(start).filter(|&&q| q == b'\'' || q == b'`')
        && bytes.get(end) == Some(&q)
        && start + 1 < at
    {
        start += 1;
    }
    let address = parsed(text.get(start..end)?)?;
    Some(Found {
        start,
        end,
        address,
    })
}

/// Whether a domain looks like a mail domain: an address literal, or a dotted name whose last label
/// is alphabetic (two letters or more) or an internationalised one (`xn--...`).
fn valid_domain(domain: &str) -> bool {
    if domain.starts_with('[') {
        return domain.len() > 2;
    }
    let Some((_, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    !domain.starts_with('.')
        && !domain.contains("..")
        && (tld.starts_with("xn--")
            || (tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic)))
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
/// line holding only that, maybe with a trailing colon, or a person's name and the address in
/// brackets: `Bob Lee <bob@example.com>`, `"Lee, Bob" <bob@example.com>`, `Bob Lee
/// (bob@example.com)`): decorations removed, domain lower-cased; `None` unless the whole token is
/// one address.
pub fn address_alone(raw: &str) -> Option<String> {
    let t = raw.trim().trim_end_matches([':', ',', ';']).trim_end();
    let t = strip_prefix_ci(t, "mailto:").unwrap_or(t);
    if let Some(address) = parsed(t) {
        return Some(address);
    }
    if let Some(address) = named(t) {
        return Some(address);
    }
    let mut s = raw
        .trim()
        .trim_matches(|c: char| "<>\"'()[],;:".contains(c));
    if let Some(rest) = ["mailto:"]
        .iter()
        .chain(SCHEME_PREFIXES)
        .find_map(|p| strip_prefix_ci(s, p))
    {
        s = rest;
    }
    let s = s.trim_end_matches('.');
    let found = find_addresses(s);
    match found.as_slice() {
        [one] if one.start == 0 && one.end == s.len() => Some(one.address.clone()),
        _ => None,
    }
}

/// The most words a person's name before an address may have.
const NAME_WORDS: usize = 5;

/// A person's name and the address in `<...>` or `(...)` after it, as list lines write a recipient
/// (`Bob Lee <bob@example.com>`, `"Lee, Bob" <bob@example.com>`, `Bob Lee (bob@example.com)`). The
/// name is a quoted string, or a few words that each start with a capital letter or a character
/// outside ASCII: a sentence ending in an address (`Please write to <help@example.org>`) is not a
/// name.
fn named(line: &str) -> Option<String> {
    let (name, inner) = match line.strip_suffix('>') {
        Some(head) => head.rsplit_once('<')?,
        None => line.strip_suffix(')')?.rsplit_once('(')?,
    };
    let name = name.trim();
    let is_name = if let Some(quoted) = name.strip_prefix('"') {
        quoted.ends_with('"') && quoted.len() > 1
    } else {
        let words: Vec<&str> = name.split_whitespace().collect();
        !words.is_empty()
            && words.len() <= NAME_WORDS
            && words.iter().all(|w| {
                w.chars()
                    .next()
                    .is_some_and(|c| c.is_uppercase() || !c.is_ascii())
                    && !w.ends_with(':')
            })
    };
    if !is_name {
        return None;
    }
    let inner = strip_prefix_ci(inner.trim(), "mailto:").unwrap_or(inner.trim());
    parsed(inner)
}

/// Whether an address is Exchange's encapsulation of a directory entry (`IMCEAEX-_O=ORG_OU=..._CN=
/// ann@corp.example.net`), which no Internet sender used and which names no Internet mailbox.
pub fn is_directory_entry(address: &str) -> bool {
    starts_with_ci(address, "IMCEAEX-")
}

/// Whether a `From` field's value (name and address, as written) names a mail system: a mailer
/// daemon, a postmaster or a mail delivery service, the senders of failure reports.
pub fn names_mail_system(from_value: &str) -> bool {
    let v = from_value.to_ascii_lowercase();
    [
        "mailer-daemon",
        "mailer_daemon",
        "postmaster",
        "post_master",
        "mail delivery",
        "maildelivery",
    ]
    .iter()
    .any(|w| v.contains(w))
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

    fn all(text: &str) -> Vec<String> {
        find_addresses(text)
            .into_iter()
            .map(|f| f.address)
            .collect()
    }

    #[test]
    fn the_ways_mtas_write_an_address() {
        // Exchange's proxy form and a gateway's type prefix.
        assert_eq!(
            all("rejected smtp=Ann@Example.org today"),
            ["Ann@example.org"]
        );
        assert_eq!(all("'SMTP:bo@example.org' on Tue"), ["bo@example.org"]);
        assert_eq!(all("<smtp=cy@example.org>"), ["cy@example.org"]);
        // Exchange's encapsulation of an Internet address.
        assert_eq!(
            all("to IMCEASMTP-di+2Elee+40example+2Enet@corp.example.com failed"),
            ["di.lee@example.net"]
        );
        // Quotes and punctuation around an address are not part of it.
        assert_eq!(
            all("to 'ed@example.org', `fay@example.org` and (gus@example.org)."),
            ["ed@example.org", "fay@example.org", "gus@example.org"]
        );
        assert_eq!(all("it's o'neil@example.org"), ["o'neil@example.org"]);
        // Brackets carry any local part; prose keeps to ASCII.
        assert_eq!(
            all("<\"hal lee\"@example.org> <jörg@bücher.example>"),
            ["\"hal lee\"@example.org", "jörg@bücher.example"]
        );
        assert_eq!(all("宛先kai@example.jpは存在しません"), ["kai@example.jp"]);
        assert_eq!(
            all("to \"ida..b\"@example.jp: refused"),
            ["\"ida..b\"@example.jp"]
        );
        // A URL is not an address.
        assert!(all("see https://example.org/u?x=joe@example.org").is_empty());
    }

    #[test]
    fn a_name_and_an_address_on_a_line() {
        for (line, want) in [
            ("Lena Vogt <Lena@Example.de>", Some("Lena@example.de")),
            ("\"Vogt, Lena\" <lena@example.de>", Some("lena@example.de")),
            ("Lena Vogt (lena@example.de)", Some("lena@example.de")),
            ("Jörg Müller <jm@example.de>", Some("jm@example.de")),
            ("<lena@example.de>:", Some("lena@example.de")),
            ("'SMTP:lena@example.de'", Some("lena@example.de")),
            ("Please write to <help@example.de>", None),
            ("Contact: <help@example.de>", None),
            ("lena@example.de is unknown", None),
        ] {
            assert_eq!(address_alone(line).as_deref(), want, "{line:?}");
        }
    }

    #[test]
    fn directory_entries_are_named() {
        assert!(is_directory_entry(
            "IMCEAEX-_o=Org_ou=Group_cn=Recipients_cn=kai@corp.example.com"
        ));
        assert!(!is_directory_entry("kai@example.com"));
    }

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
