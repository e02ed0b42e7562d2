//! The parts of a free-text report: the explanation before the returned original message, the
//! paragraph after a marker, and the per-recipient blocks MTAs write (`<address>: text` paragraphs,
//! Exim's indented address blocks).

use std::collections::HashSet;
use std::sync::LazyLock;

use super::Recipients;
use super::addresses::{address_alone, first_address, names_mail_system};
use super::replies::{host_after, recipient};
use super::words::{contains_ci, starts_with_ci, strip_prefix_ci};
use crate::report::{MAX_RECIPIENTS, RecipientReport};

/// Phrases (lower-case) that, at the start of a line (after any `-`, `=`, `|`, `*` or `>` decoration),
/// announce the returned original message in free-text reports.
const ORIGINAL_MARKERS: &[&str] = &[
    "this is a copy of the message",
    "this is a copy of your message",
    "below this line is a copy of the message",
    "below the next line is a copy of the message",
    "enclosed are the original headers",
    "below is a copy of the original message",
    "original message follows",
    "unsent message follows",
    "message header follows",
    "original message --",
    "original message-",
    "original message ---",
    "the header of the original message",
    "original message header",
    "the following is a copy of the message",
    "the original message was as follows",
    "the original message headers are",
    "original message headers:",
    "following is a copy of the message headers",
    "content-type: message/rfc822",
    "content-type: text/rfc822-headers",
    "included message follows",
    "message text follows",
    "failed message follows",
    "here is a copy of the first part of the message",
    "a copy of the original message below",
    "the headers of the original message follow",
    "original-message:",
    "message headers follow",
    "original mail as follows",
    "original message:",
    "headers of your message follow",
    "the header of the original message is following",
    "included is a copy of the message header",
    "original message",
];

/// Phrases that announce the original only inside a decorated separator line (`----- ... -----`).
const DECORATED_MARKERS: &[&str] = &[
    "returned message",
    "original message",
    "returned mail",
    "message follows",
];

/// Header names that, at the start of a line, begin a block of the original message's headers.
const ORIGINAL_HEADER_STARTS: &[&str] = &[
    "return-path:",
    "received:",
    "dkim-signature:",
    "delivered-to:",
    "x-received:",
    "authentication-results:",
    "arc-seal:",
    "received-spf:",
];

/// The first four bytes, lower-cased, of each phrase of the three lists above.
struct Heads {
    original: Vec<u32>,
    decorated: Vec<u32>,
    header: Vec<u32>,
}

static HEADS: LazyLock<Heads> = LazyLock::new(|| {
    let heads = |list: &[&str]| list.iter().filter_map(|p| head(p)).collect();
    Heads {
        original: heads(ORIGINAL_MARKERS),
        decorated: heads(DECORATED_MARKERS),
        header: heads(ORIGINAL_HEADER_STARTS),
    }
});

/// The first four bytes of `s`, lower-cased, as one number; `None` when shorter.
fn head(s: &str) -> Option<u32> {
    let b = s.as_bytes().get(..4)?;
    let mut four = [0u8; 4];
    for (d, c) in four.iter_mut().zip(b) {
        *d = c.to_ascii_lowercase();
    }
    Some(u32::from_le_bytes(four))
}

/// Whether `line` starts with one of `phrases` (ASCII case-insensitively); `heads` are theirs, so
/// a line whose start is no phrase's is passed over with a few integer comparisons. Every phrase
/// is four bytes or more.
fn starts_with_any(line: &str, phrases: &[&str], heads: &[u32]) -> bool {
    head(line).is_some_and(|h| heads.contains(&h))
        && phrases.iter().any(|p| starts_with_ci(line, p))
}

/// The explanation part of a free-text report: everything before the returned original message
/// (its marker line, or the first line of a block of its headers).
pub fn cut_original(body: &str) -> &str {
    body.get(..original_offset(body)).unwrap_or(body)
}

fn original_offset(body: &str) -> usize {
    let mut offset = 0;
    let mut previous_blank = true;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim();
        let lower = trimmed.trim_start_matches(['>', ' ']);
        let phrase = lower.trim_start_matches(['-', '=', '|', '*', '>', ' ', '_']);
        let decorated = phrase.len() < lower.len();
        // Every marker starts with a letter: a line starting otherwise is passed over without
        // comparing.
        let lettered = phrase
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphabetic);
        if offset > 0
            && lettered
            && (starts_with_any(phrase, ORIGINAL_MARKERS, &HEADS.original)
                || (decorated && starts_with_any(phrase, DECORATED_MARKERS, &HEADS.decorated)))
        {
            return offset;
        }
        if offset > 0
            && previous_blank
            && (starts_with_any(lower, ORIGINAL_HEADER_STARTS, &HEADS.header)
                || is_mbox_separator(lower)
                || body.get(offset..).is_some_and(starts_inline_header_block))
        {
            return offset;
        }
        previous_blank = trimmed.is_empty();
        offset += line.len();
    }
    body.len()
}

/// Header fields of a message that, at the start of a line, may open the header block of a
/// returned original written inline with no marker before it.
const INLINE_HEADER_NAMES: &[&str] = &[
    "from:",
    "to:",
    "cc:",
    "subject:",
    "date:",
    "message-id:",
    "mime-version:",
    "reply-to:",
    "sender:",
    "content-type:",
    "content-transfer-encoding:",
    "list-id:",
    "list-unsubscribe:",
    "precedence:",
    "x-mailer:",
    "user-agent:",
];

/// Whether `text` starts with a message's header block (RFC 5322 fields from the first column,
/// folded lines allowed, up to a blank line): three fields or more, among them `From:` and one
/// of `Subject:`, `Date:` or `Message-ID:`, and a `From:` that is no mail system (a forwarded
/// report starts so). A report quotes a field or two of the original, indented
/// (`  Subject: ...`); a whole unindented header block is the original itself.
fn starts_inline_header_block(text: &str) -> bool {
    // Most paragraphs start with a word and a space: passed over before their lines are read.
    let stop = text.bytes().take(32).find(|&b| b == b':' || b == b' ');
    if stop != Some(b':') {
        return false;
    }
    let mut fields = 0;
    let (mut from, mut identity) = (false, false);
    for line in text.lines().take(40) {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if fields == 0 {
                return false;
            }
            continue;
        }
        let Some(name) = INLINE_HEADER_NAMES.iter().find(|n| starts_with_ci(line, n)) else {
            break;
        };
        fields += 1;
        if *name == "from:" {
            // A forwarded report's own header block: the report follows it.
            if names_mail_system(line) {
                return false;
            }
            from = true;
        }
        identity |= matches!(*name, "subject:" | "date:" | "message-id:");
    }
    fields >= 3 && from && identity
}

/// Whether a line is an mbox separator (`From sender@example.org Mon Mar  2 10:00:00 2026`,
/// `>From ...` once escaped): the returned original copied from a mailbox file.
fn is_mbox_separator(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("From ") else {
        return false;
    };
    let mut words = rest.split_whitespace();
    let sender = words.next().unwrap_or("");
    let day = words.next().unwrap_or("");
    (sender.contains('@') || sender.eq_ignore_ascii_case("MAILER-DAEMON"))
        && matches!(day, "Mon" | "Tue" | "Wed" | "Thu" | "Fri" | "Sat" | "Sun")
}

/// A recipient named at the start of a line and the words that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The recipient, normalised: the address the sender used, when the report names it beside the
    /// one that failed (Postfix's `(expanded from <alias>)`).
    pub address: String,
    /// The text after the address (and its colon) up to the end of its block, lines kept.
    pub text: String,
}

/// Splits text into `<address>: text` blocks, the shape of Postfix and qmail reports: a block starts
/// with a line whose first non-blank character is `<` and whose address is followed (after an
/// optional `(expanded from <...>)`) by a colon; it runs until a blank line or the next block.
///
/// One block per address, the first the report gives; at most one past [`MAX_RECIPIENTS`], where
/// the search stops (the report is refused), so the work is linear in the text.
pub fn angle_blocks(text: &str) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    // The block being filled; `None` after a repeated address, whose lines are dropped.
    let mut open: Option<usize> = None;
    let mut in_block = false;
    for line in text.lines() {
        let t = line.trim();
        let indented = line.starts_with([' ', '\t']);
        if let Some((address, rest)) = (!in_block || !indented)
            .then(|| angle_block_start(t))
            .flatten()
        {
            in_block = true;
            open = None;
            if seen.insert(address.clone()) {
                if out.len() > MAX_RECIPIENTS {
                    break;
                }
                open = Some(out.len());
                out.push(Block {
                    address,
                    text: rest.to_string(),
                });
            }
            continue;
        }
        if t.is_empty() {
            in_block = false;
            continue;
        }
        if in_block && let Some(last) = open.and_then(|i| out.get_mut(i)) {
            if !last.text.is_empty() {
                last.text.push('\n');
            }
            last.text.push_str(t);
        }
    }
    out
}

fn angle_block_start(t: &str) -> Option<(String, &str)> {
    let inner = t.strip_prefix('<')?;
    let (addr, after) = inner.split_once('>')?;
    // Only a quoted local part holds a space (`<"ann lee"@example.org>:`).
    let mut address = if addr.contains(' ') {
        address_alone(addr)?
    } else {
        first_address(addr)?
    };
    let mut after = after.trim_start();
    if let Some(rest) = after.strip_prefix('(') {
        // "(expanded from <alias>)" names the address the sender used, or another remark.
        let (remark, rest) = rest.split_once(')')?;
        if let Some(from) = strip_prefix_ci(remark.trim(), "expanded from")
            && let Some(original) = first_address(from)
        {
            address = original;
        }
        after = rest.trim_start();
    }
    let rest = after.strip_prefix(':')?;
    Some((address, rest.trim()))
}

/// The paragraph after the first line containing `start` (case-insensitive): see [`paragraph`].
/// `None` when no line contains `start`.
pub fn section_after(text: &str, start: &str, stop: impl Fn(&str) -> bool) -> Option<String> {
    let mut lines = text.lines();
    lines.by_ref().find(|l| contains_ci(l, start))?;
    Some(paragraph(lines, stop))
}

/// The first paragraph of `lines`: blank lines before it skipped, then each line trimmed, up to the
/// first blank line or the first line satisfying `stop`, joined by newlines.
pub fn paragraph<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    stop: impl Fn(&str) -> bool,
) -> String {
    let mut out = String::new();
    for l in lines {
        let t = l.trim();
        if stop(t) {
            break;
        }
        if t.is_empty() {
            if out.is_empty() {
                continue;
            }
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(t);
    }
    out
}

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
        let addr = address_alone(first);
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
    let mut found = Recipients::default();
    for (a, lines) in blocks {
        if found.full() {
            break;
        }
        if found.contains(&a) {
            continue;
        }
        {
            let kept = lines.into_iter().filter(|l| {
                !(l.eq_ignore_ascii_case("reason:")
                    || l.eq_ignore_ascii_case("for the following reason:"))
            });
            let joined = kept.collect::<Vec<_>>().join("\n");
            let remote = host_after(&joined, "host:").or_else(|| host_after(&joined, "host "));
            let mut r = recipient(a, "failed", &joined);
            if r.remote_mta.is_none() {
                r.remote_mta = remote;
            }
            found.add(r);
        }
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::replies::action_for;

    #[test]
    fn cuts_at_markers_and_header_blocks() {
        let body =
            "Failed: a@example.org\n\n------ This is a copy of the message\nTo: b@example.org\n";
        assert_eq!(cut_original(body), "Failed: a@example.org\n\n");
        let body = "Failed: a@example.org\n\nReceived: from x\nTo: b@example.org\n";
        assert_eq!(cut_original(body), "Failed: a@example.org\n\n");
        assert!(
            body.get(cut_original(body).len()..)
                .is_some_and(|r| r.starts_with("Received:"))
        );
    }

    #[test]
    fn an_inline_original_without_a_marker_is_cut_at_its_headers() {
        let original = "From: News <news@example.com>\nTo: ada@example.org\nSubject: Digest\n\n\
Write to editor@example.com.\n";
        let body = format!("Could not deliver to ada@example.org: no such user\n\n{original}");
        assert_eq!(
            cut_original(&body),
            "Could not deliver to ada@example.org: no such user\n\n"
        );
        let mbox = format!(
            "Could not deliver to ada@example.org\n\n>From news@example.com Mon Mar  2 10:00:00 2026\n{original}"
        );
        assert_eq!(
            cut_original(&mbox),
            "Could not deliver to ada@example.org\n\n"
        );
        // A report quoting a field or two, indented, or a forwarded report's own header, is kept.
        for kept in [
            "Your message\n\n  To: ada@example.org\n  Subject: Digest\n  Date: today\n\nwas not delivered.\n",
            "Begin forwarded message:\n\nFrom: Mail Delivery Subsystem <MAILER-DAEMON@example.org>\n\
Subject: Returned mail\nDate: today\n\n<ada@example.org>... User unknown\n",
            "Failed.\n\nTo: ada@example.org\nSubject: Digest\n\nno such user\n",
        ] {
            assert_eq!(cut_original(kept), kept);
        }
    }

    #[test]
    fn blocks_once_per_address_and_actions() {
        let text =
            "<pia@example.org>: first\n\n<pia@example.org>: again\n\n<quin@example.org>: other\n";
        let got: Vec<_> = angle_blocks(text)
            .into_iter()
            .map(|b| (b.address, b.text))
            .collect();
        assert_eq!(
            got,
            [
                ("pia@example.org".to_string(), "first".to_string()),
                ("quin@example.org".to_string(), "other".to_string())
            ]
        );
        assert_eq!(
            action_for("Delayed Mail (still being retried)", ""),
            "delayed"
        );
        assert_eq!(action_for("Undelivered Mail", "no such user"), "failed");
    }

    #[test]
    fn a_block_names_the_address_the_sender_used() {
        let text = "<bo@example.net> (expanded from <team@Example.org>): host mx.example.net[192.0.2.1] said: 550 no\n\n<cy@example.net> (expanded from <team@example.org>): host mx.example.net[192.0.2.1] said: 550 no\n\n<di@example.net> (via relay): 552 full\n";
        let got: Vec<String> = angle_blocks(text).into_iter().map(|b| b.address).collect();
        assert_eq!(got, ["team@example.org", "di@example.net"]);
    }

    #[test]
    fn a_decorated_marker_cuts_the_original() {
        let body = "report\n----- Original message -----\nTo: x@example.com\n";
        assert_eq!(cut_original(body), "report\n");
    }

    #[test]
    fn every_marker_is_found_whatever_its_case() {
        for (list, decoration) in [
            (ORIGINAL_MARKERS, "---- "),
            (DECORATED_MARKERS, "---- "),
            (ORIGINAL_HEADER_STARTS, ""),
        ] {
            for phrase in list {
                assert!(phrase.len() >= 4, "{phrase} is shorter than a head");
                let upper = phrase.to_ascii_uppercase();
                let body = format!("report\n\n{decoration}{upper} x\nTo: x@example.com\n");
                assert_eq!(cut_original(&body), "report\n\n", "{phrase}");
            }
        }
    }
}
