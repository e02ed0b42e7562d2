//! Small helpers shared by the provider and gateway readers: address picking, unfolding, cutting
//! off the returned message, and naming the failed SMTP command.

use std::sync::LazyLock;

use regex::Regex;

use crate::report::RecipientReport;

/// Lines that start the returned original message in provider reports; text after them is not the
/// report's own.
const ORIGINAL_MARKERS: &[&str] = &[
    "----- Original message -----",
    "--- Below this line is a copy of the message.",
    "--- The header of the original message is following. ---",
    "------ This is a copy of the message",
    "Included is a copy of the message header",
    "Original message headers:",
    "----- Original Message -----",
    "Original Message:",
];

/// The report's own text: `body` up to the first line that starts the returned original message.
pub fn own_text(body: &str) -> &str {
    let mut pos = 0;
    for line in body.split_inclusive('\n') {
        let t = line.trim();
        if ORIGINAL_MARKERS.iter().any(|m| t.starts_with(m)) {
            return body.get(..pos).unwrap_or(body);
        }
        pos += line.len();
    }
    body
}

/// `s` with its leading `prefix` removed, compared ASCII case-insensitively.
pub fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// Whether `hay` contains `needle`, ASCII case-insensitively (`needle` given in lower case).
pub fn contains_ci(hay: &str, needle: &str) -> bool {
    let n = needle.as_bytes();
    if n.is_empty() {
        return true;
    }
    hay.as_bytes()
        .windows(n.len())
        .any(|w| w.eq_ignore_ascii_case(n))
}

/// Byte offset of `needle` in `hay`, ASCII case-insensitively.
pub fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let n = needle.as_bytes();
    if n.is_empty() {
        return Some(0);
    }
    hay.as_bytes()
        .windows(n.len())
        .position(|w| w.eq_ignore_ascii_case(n))
}

fn is_addr_char(c: char) -> bool {
    c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.@".contains(c)
}

/// An address as reported: surrounding `<>`, quotes and `mailto:` removed, domain lower-cased;
/// `None` unless it looks like `local@domain.tld`.
pub fn normalize_addr(raw: &str) -> Option<String> {
    let mut s = raw
        .trim()
        .trim_matches(|c: char| "<>\"'()[],;:".contains(c));
    if let Some(rest) = strip_prefix_ci(s, "mailto:") {
        s = rest;
    }
    let s = s.trim_end_matches('.');
    let (local, domain) = s.rsplit_once('@')?;
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || domain.starts_with('.')
        || !s.chars().all(is_addr_char)
        || domain.contains('@')
        || local.contains('@')
    {
        return None;
    }
    Some(format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// The first address found in `text` (a `<...>` form is preferred when present), normalized.
pub fn first_addr(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let after = rest.get(open + 1..).unwrap_or("");
        match after.find('>') {
            Some(close) => {
                if let Some(a) = after.get(..close).and_then(normalize_addr) {
                    return Some(a);
                }
                rest = after.get(close + 1..).unwrap_or("");
            }
            None => break,
        }
    }
    text.split(|c: char| !is_addr_char(c))
        .filter(|w| w.contains('@'))
        .find_map(normalize_addr)
}

/// Whether a trimmed line is nothing but one address (in `<>`, quotes, or bare, maybe with a
/// trailing colon).
pub fn addr_line(line: &str) -> Option<String> {
    let t = line.trim().trim_end_matches(':');
    if t.is_empty() || t.contains(char::is_whitespace) {
        return None;
    }
    normalize_addr(t)
}

/// Joins lines into one: each trimmed, blanks dropped, single spaces between.
pub fn unfold<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for l in lines {
        for w in l.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(w);
        }
    }
    out
}

/// The SMTP command a piece of report text says failed (`RCPT`, `MAIL`, `DATA`, `CONN`), if any.
pub fn command_in(text: &str) -> Option<String> {
    let cmd = if contains_ci(text, "rcpt to")
        || contains_ci(text, "rcpt_to")
        || contains_ci(text, "after rcpt")
    {
        "RCPT"
    } else if contains_ci(text, "mail from")
        || contains_ci(text, "mail_from")
        || contains_ci(text, "after mail command")
    {
        "MAIL"
    } else if contains_ci(text, "end of data")
        || contains_ci(text, "after data")
        || contains_ci(text, "for text command")
        || contains_ci(text, "[data]")
    {
        "DATA"
    } else if contains_ci(text, "requests to connect") || contains_ci(text, "connection refused") {
        "CONN"
    } else {
        return None;
    };
    Some(cmd.to_string())
}

/// A failed-recipient record with the given diagnostic (empty diagnostics become `None`).
pub fn failed(recipient: String, diagnostic: String) -> RecipientReport {
    RecipientReport {
        recipient: Some(recipient),
        action: Some("failed".to_string()),
        diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
        ..RecipientReport::default()
    }
}

/// The host in `host NAME [ip]`, `host: NAME`, `by NAME. [ip]` style text following `key`.
pub fn host_after(text: &str, key: &str) -> Option<String> {
    let at = find_ci(text, key)?;
    let rest = text.get(at + key.len()..)?.trim_start();
    let host: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    let host = host.trim_end_matches('.');
    (host.contains('.') && host.chars().any(|c| c.is_ascii_alphabetic()))
        .then(|| host.to_ascii_lowercase())
}

/// Where the remote server's own words start in a report line: at the first SMTP reply code
/// (`550 `, `550-`) or enhanced status code (`5.1.1 `), else after `host ... [ip]: `.
pub fn server_words(text: &str) -> &str {
    static CODE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:^|[\s:(])([245]\d\d[ \-]|[245]\d\d$|[245]\.\d{1,3}\.\d{1,3}(?:\s|$))")
            .expect("literal regex")
    });
    if let Some(m) = CODE.captures(text).and_then(|c| c.get(1)) {
        return text.get(m.start()..).unwrap_or(text).trim();
    }
    if let Some(at) = text.find("]: ") {
        return text.get(at + 3..).unwrap_or(text).trim();
    }
    text.trim()
}

/// Reads Exim-style address blocks (`address` or `<address>:` on one line, its reason on the
/// lines below, indented or not) from the text after the last line containing `marker`.
pub fn exim_blocks(text: &str, marker: &str) -> Vec<RecipientReport> {
    let Some(at) = text.rfind(marker) else {
        return Vec::new();
    };
    let section = text.get(at..).unwrap_or("");
    let mut blocks: Vec<(String, Vec<&str>)> = Vec::new();
    let mut prev_blank = true;
    let mut prev_indent = 0usize;
    for line in section.lines().skip(1) {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if t.is_empty() {
            prev_blank = true;
            continue;
        }
        if t.starts_with("---") || t.starts_with("***") {
            break;
        }
        let (first, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        let addr = normalize_addr(first);
        let same_as_current = match (&addr, blocks.last()) {
            (Some(a), Some((cur, _))) => a == cur && rest.is_empty(),
            _ => false,
        };
        let opens = addr.is_some()
            && !same_as_current
            && (prev_blank || indent < prev_indent || blocks.is_empty() || first.ends_with(':'));
        match addr {
            Some(a) if opens => {
                let mut lines = Vec::new();
                if !rest.trim().is_empty() {
                    lines.push(rest.trim());
                }
                blocks.push((a, lines));
            }
            _ => {
                // Text before the first address belongs to no recipient.
                if let Some((_, lines)) = blocks.last_mut() {
                    lines.push(t);
                }
            }
        }
        prev_blank = false;
        prev_indent = indent;
    }
    blocks
        .into_iter()
        .map(|(a, lines)| {
            let kept = lines.into_iter().filter(|l| {
                !(l.eq_ignore_ascii_case("reason:")
                    || l.eq_ignore_ascii_case("for the following reason:"))
            });
            let joined = unfold(kept);
            let remote = host_after(&joined, "host:").or_else(|| host_after(&joined, "host "));
            let command = command_in(&joined);
            let mut r = failed(a, server_words(&joined).to_string());
            r.remote_mta = remote;
            r.command = command;
            r
        })
        .collect()
}

/// Runs `f` on an [`Input`](super::Input) built from a small test bounce.
#[cfg(test)]
pub fn test_input<T>(
    from: &str,
    subject: &str,
    body: &str,
    f: impl FnOnce(&super::Input) -> T,
) -> T {
    let raw = format!(
        "From: {from}\nSubject: {subject}\nContent-Type: text/plain; charset=utf-8\n\n{body}"
    );
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap_or_default();
    let from_lc = from.to_ascii_lowercase();
    let input = super::Input {
        message: &message,
        subject,
        from: &from_lc,
        body,
    };
    f(&input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalized() {
        assert_eq!(
            normalize_addr("<Bob@Example.COM>").as_deref(),
            Some("Bob@example.com")
        );
        assert_eq!(
            normalize_addr("\"a@example.org\":").as_deref(),
            Some("a@example.org")
        );
        assert_eq!(
            normalize_addr("mailto:a@example.org").as_deref(),
            Some("a@example.org")
        );
        assert_eq!(normalize_addr("nobody"), None);
        assert_eq!(normalize_addr("a@localhost"), None);
        assert_eq!(
            first_addr("x <no> y <c@example.net> z").as_deref(),
            Some("c@example.net")
        );
        assert_eq!(
            first_addr("to d@example.net, now").as_deref(),
            Some("d@example.net")
        );
    }

    #[test]
    fn original_is_cut_and_commands_named() {
        let body = "report\n----- Original message -----\nTo: x@example.com\n";
        assert_eq!(own_text(body), "report\n");
        assert_eq!(
            command_in("after RCPT TO:<a@example.com>").as_deref(),
            Some("RCPT")
        );
        assert_eq!(command_in("for TEXT command").as_deref(), Some("DATA"));
        assert_eq!(command_in("nothing"), None);
        assert_eq!(
            host_after("host mx.example.com [192.0.2.1]", "host").as_deref(),
            Some("mx.example.com")
        );
        assert_eq!(unfold([" a ", "", "b  c"]), "a b c");
    }

    #[test]
    fn odd_input_does_not_panic() {
        for s in [
            "",
            "@",
            "<",
            "<>",
            "é@é.é",
            "a@b.",
            "\u{0}@\u{0}.x",
            "<<<@>>>",
        ] {
            let _ = (
                first_addr(s),
                addr_line(s),
                own_text(s),
                host_after(s, "host"),
                strip_prefix_ci(s, "éé"),
            );
        }
    }
}
