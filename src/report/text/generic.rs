//! The general reader for free-text reports from MTAs no family reader knows.
//!
//! Unknown MTAs mostly share one shape: an explanation naming each failed address (in `<...>`, on its
//! own line, or after `To:` / `Recipient:`), the server's words or an SMTP transcript after it, and
//! then the returned original message. The original is cut off first, so its own headers are never
//! taken for failed recipients; addresses of the reporting system and of the original sender are
//! skipped.

use mail_parser::Message;

use super::Input;
use super::addresses::{find_addresses, first_address, is_system_address};
use super::blocks::paragraph;
use super::replies::{action_for, has_code, recipient, server_reply};
use super::words::{contains_ci, find_ci, starts_with_ci, strip_prefix_ci, unfold};
use crate::report::RecipientReport;

/// Line starts (lower-case) whose addresses are never failed recipients.
const SKIP_LINE_PREFIXES: &[&str] = &[
    "from:",
    "sender:",
    "reply-to:",
    "return-path:",
    "message-id",
    "message id",
    "in-reply-to:",
    "references:",
    "received:",
    "envelope-from",
    "mail from",
    ">>> mail from",
    "x-",
    "list-",
    "errors-to:",
    "by ",
    "id ",
    "sender address",
    "the sender",
];

/// Words after which a line names the sender rather than a recipient.
const SENDER_WORDS: &[&str] = &[
    "mail from:",
    "envelope-from",
    "sender:",
    "from:",
    "from <",
    "return-path",
    "sent by",
    "on behalf of",
];

/// The addresses of a header of `message`, read by the address parser, lower-cased.
fn addresses_of(message: &Message, name: &str) -> Vec<String> {
    message
        .header_raw(name)
        .map(|v| {
            crate::address::address_list(v)
                .iter()
                .map(|a| a.to_string().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

/// Addresses that are never the failed recipient: the bounce's own From and the returned original's
/// From and Return-Path.
fn skipped(input: &Input) -> Vec<String> {
    let mut out = addresses_of(input.message, "From");
    if let Some(original) = attached_original(input.message) {
        out.extend(addresses_of(original, "From"));
        out.extend(addresses_of(original, "Return-Path"));
    }
    if let Some(from) = original_header(input.returned_original(), "from:") {
        out.extend(first_address(from));
    }
    for a in &mut out {
        *a = a.to_ascii_lowercase();
    }
    out
}

/// The bounce's own addressees (its `To`): the original's sender, to whom a report goes, never the
/// recipient it reports on. A notice that names no other address (a phishing imitation of a
/// bounce, "4 messages could not be delivered to your mailbox news@...") names no failed recipient.
fn addressees(input: &Input) -> Vec<String> {
    addresses_of(input.message, "To")
}

/// The failed-recipient candidates of an attached original: its `To` addresses, as written.
fn original_recipients(original: &Message) -> Vec<String> {
    original
        .header_raw("To")
        .map(|v| {
            crate::address::address_list(v)
                .iter()
                .map(ToString::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The addresses of the bounce's `X-Failed-Recipients` header (Exim, Google), at most
/// [`MAX_MENTIONS`].
fn failed_header(input: &Input) -> Vec<String> {
    input
        .header("X-Failed-Recipients")
        .map(|v| {
            crate::address::address_list(v)
                .into_iter()
                .take(MAX_MENTIONS)
                .map(|a| a.to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The first attached message (`message/rfc822`) of the bounce, if any.
pub fn attached_original<'a>(message: &'a Message<'a>) -> Option<&'a Message<'a>> {
    message.attachments().find_map(|part| part.message())
}

/// The value of a header (lower-case name with colon) in an inline header block.
fn original_header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    for line in text.lines() {
        if line.trim().is_empty() && !text.starts_with(line) {
            // End of the header block.
            break;
        }
        if line.len() > name.len()
            && line
                .get(..name.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(name))
        {
            return line.get(name.len()..);
        }
    }
    None
}

/// Words that mark a line as help text (whom to contact), not a failure.
const HELP_WORDS: &[&str] = &[
    "assistance",
    "please send",
    "send mail to",
    "write to",
    "generated from",
    "expanded from",
    "problem report",
    "please reply to",
    "if you feel",
    "if you believe",
];

/// Where the help text of a line starts: the start of the sentence or clause holding its first
/// help word (after the last `. `, `! `, `? `, `; `, `--` or ` - ` before it), or the line's start.
/// What precedes it is the notice's own words ("The address ann@example.org does not exist.
/// Contact help@... for help").
fn help_start(line: &str) -> Option<usize> {
    let at = HELP_WORDS
        .iter()
        .filter_map(|w| find_ci(line, w))
        .chain(contact_at(line))
        .min()?;
    let head = line.get(..at).unwrap_or("");
    Some(
        [". ", "! ", "? ", "; ", "--", " - "]
            .iter()
            .filter_map(|b| head.rfind(b).map(|i| i + b.len()))
            .max()
            .unwrap_or(0),
    )
}

/// Where a line asks the reader to contact someone: the word `contact` on its own, not as the
/// object of another verb ("the user you are trying to contact", Google's rate-limit reply).
fn contact_at(line: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(rel) = line.get(from..).and_then(|rest| find_ci(rest, "contact")) {
        let at = from + rel;
        from = at + "contact".len();
        let after = line.get(from..).and_then(|r| r.chars().next());
        if after.is_some_and(char::is_alphanumeric) {
            continue;
        }
        let before = line.get(..at).unwrap_or("");
        let part_of_word = before
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric);
        let word_before = before
            .trim_end()
            .rsplit(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("");
        if !part_of_word && !word_before.eq_ignore_ascii_case("to") {
            return Some(at);
        }
    }
    None
}

/// Words after which a line's addresses are the list's or a list member's, never a failed
/// recipient ("Your message to the mailing list news@...").
const LIST_WORDS: &[&str] = &["mailing list"];

/// Whether a line names no failed recipient at all: a header-like line of the original or of the
/// transport, or help text from its start.
fn line_is_skipped(line: &str) -> bool {
    help_start(line) == Some(0) || is_header_like(line)
}

/// Whether a line is a header-like line of the original or of the transport
/// ([`SKIP_LINE_PREFIXES`]).
fn is_header_like(line: &str) -> bool {
    let t =
        line.trim_start_matches(|c: char| c.is_whitespace() || c == '>' || c == '<' || c == '*');
    SKIP_LINE_PREFIXES.iter().any(|p| starts_with_ci(t, p))
}

/// Words just before an address that make it the identifier of a message, not a mailbox.
const IDENTIFIER_WORDS: &[&str] = &["message-id", "message id", "msg-id", "msgid"];

/// Words just before an address that make it the recipient's new or other address, the one to
/// use instead (RFC 3463 X.1.6 replies give it: "Recipient no longer on server; new address: ...").
const FORWARD_WORDS: &[&str] = &[
    "new address",
    "forwarding address",
    "forward to",
    "forwarded to",
    "forwarding to",
    "moved to",
    "now at",
    "please use",
    "changed to",
];

/// Words just after an address that make it the one to write to for help ("mail abuse@... for
/// details").
const HELP_AFTER: &[&str] = &[
    "for details",
    "for more information",
    "for further information",
    "for assistance",
    "for help",
];

/// Whether the words around an address (the 20 characters before it, the words right after it)
/// make it the sender, a message identifier, the recipient's new address, or an address to write
/// to for help.
fn is_other_party(line: &str, start: usize, end: usize) -> bool {
    let before = line.get(..start).unwrap_or("");
    let from = before.char_indices().rev().nth(19).map_or(0, |(i, _)| i);
    let tail = before.get(from..).unwrap_or(before);
    let after = line
        .get(end..)
        .unwrap_or("")
        .trim_start_matches(|c: char| matches!(c, '>' | ')' | ',') || c.is_whitespace());
    SENDER_WORDS
        .iter()
        .chain(IDENTIFIER_WORDS)
        .chain(FORWARD_WORDS)
        .any(|w| contains_ci(tail, w))
        || HELP_AFTER.iter().any(|w| starts_with_ci(after, w))
}

struct Mention {
    address: String,
    line: usize,
    start_in_line: usize,
    end_in_line: usize,
    weak: bool,
}

/// How much of the explanation a report of unknown shape is read from (bytes), and how many address
/// mentions in it are followed: each mention's diagnostic is looked for in the lines after it, so
/// both bounds keep the work linear in the message instead of mentions times text.
const EXPLANATION_SCAN: usize = 64 * 1024;
const MAX_MENTIONS: usize = 256;

/// Reads a report of unknown shape: one recipient per distinct address the explanation names.
pub fn read(input: &Input) -> Vec<RecipientReport> {
    let explanation = crate::report::prefix(input.explanation, EXPLANATION_SCAN);
    let mut skip = skipped(input);
    skip.extend(list_addresses(input));
    skip.extend(addressees(input));
    let lines: Vec<&str> = explanation.lines().collect();
    let delivered = delivered_lines(&lines);
    let mut mentions: Vec<Mention> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        // Addresses from where help text or a mention of a mailing list starts are not failed.
        let help = LIST_WORDS
            .iter()
            .filter_map(|w| find_ci(line, w))
            .chain(help_start(line))
            .min()
            .unwrap_or(usize::MAX);
        if help == 0 || is_header_like(line) || delivered.get(i).copied().unwrap_or(false) {
            continue;
        }
        for found in find_addresses(line) {
            let lower = found.address.to_ascii_lowercase();
            if found.start >= help
                || skip.contains(&lower)
                || is_other_party(line, found.start, found.end)
                || lower.starts_with("mailer-daemon@")
            {
                continue;
            }
            mentions.push(Mention {
                address: found.address,
                line: i,
                start_in_line: found.start,
                end_in_line: found.end,
                weak: is_system_address(&lower),
            });
            if mentions.len() >= MAX_MENTIONS {
                break;
            }
        }
        if mentions.len() >= MAX_MENTIONS {
            break;
        }
    }
    let action = action_for(input.subject, explanation);
    if mentions.iter().any(|m| !m.weak) {
        mentions.retain(|m| !m.weak);
    }
    let mut diagnostics: Vec<String> = mentions
        .iter()
        .map(|m| diagnostic_after(&lines, m, &mentions))
        .collect();
    share_list_reason(&lines, &mentions, &mut diagnostics);
    let headed = heading_actions(&lines);
    let mut out: Vec<RecipientReport> = Vec::new();
    for (m, diagnostic) in mentions.iter().zip(diagnostics) {
        let action = headed.get(m.line).copied().flatten().unwrap_or(action);
        let existing = out.iter_mut().find(|r| {
            r.recipient
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(&m.address))
        });
        match existing {
            Some(r) => {
                let better =
                    r.diagnostic.as_deref().is_none_or(|d| !has_code(d)) && has_code(&diagnostic);
                if better {
                    *r = recipient(m.address.clone(), action, &diagnostic);
                }
            }
            None => out.push(recipient(m.address.clone(), action, &diagnostic)),
        }
    }
    // The header in which Exim, Google and others list the failed addresses outranks the text: its
    // addresses are the report's recipients, in the text's order, then the header's.
    let listed = failed_header(input);
    if !listed.is_empty() {
        let is_listed = |a: &str| listed.iter().any(|l| l.eq_ignore_ascii_case(a));
        out.retain(|r| r.recipient.as_deref().is_some_and(is_listed));
        let diagnostic = fallback_diagnostic(explanation);
        for address in listed {
            let known = out.iter().any(|r| {
                r.recipient
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(&address))
            });
            if !known {
                out.push(recipient(address, action, &diagnostic));
            }
        }
    }
    one_reply_for_one(&mut out, explanation);
    out
}

/// Words of a heading over recipients that were delivered (lower-case): Microsoft's mixed DSN text
/// ("Delivery to the following recipients succeeded"), and plain statements that others were.
const DELIVERED_HEADINGS: &[&str] = &[
    "succeeded",
    "were delivered",
    "was delivered",
    "delivered successfully",
    "successfully delivered",
    "received your message",
    "received the message",
    "received this message",
];

/// Which lines name recipients that did not fail: a `>>> RCPT TO:<...>` the server answered with a
/// positive reply (`2xx`, RFC 5321 4.2: the recipient was accepted), and the address lines under a
/// heading that says delivery to them succeeded, up to the next line with other words.
fn delivered_lines(lines: &[&str]) -> Vec<bool> {
    let mut out = vec![false; lines.len()];
    let mut under_heading = false;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if let Some(sent) = t.strip_prefix(">>>")
            && contains_ci(sent, "rcpt to")
        {
            let reply = lines
                .iter()
                .skip(i + 1)
                .map(|l| l.trim())
                .find(|l| !l.is_empty())
                .and_then(|l| l.strip_prefix("<<<"));
            if let (Some(reply), Some(flag)) = (reply, out.get_mut(i)) {
                *flag = reply.trim_start().starts_with('2');
            }
            continue;
        }
        if is_delivered_heading(t) {
            under_heading = true;
            continue;
        }
        if under_heading {
            let rest: String = find_addresses(t)
                .iter()
                .rev()
                .fold(t.to_string(), |mut acc, f| {
                    acc.replace_range(f.start..f.end, "");
                    acc
                });
            if rest.chars().any(char::is_alphanumeric) {
                under_heading = false;
            } else if let Some(flag) = out.get_mut(i) {
                *flag = true;
            }
        }
    }
    out
}

/// For each line, the action the heading above it states for the addresses under it, when one
/// does: a report that lists both ("Delivery to the following recipients has been delayed:" and
/// "... failed permanently:", as Google's mixed notices do) gives each address its own. A heading
/// is a line ending in a colon; it rules until the next one.
fn heading_actions(lines: &[&str]) -> Vec<Option<&'static str>> {
    let mut current = None;
    lines
        .iter()
        .map(|line| {
            let t = line.trim();
            if t.ends_with(':') && !t.starts_with(">>>") && !t.starts_with("<<<") {
                let low = t.to_ascii_lowercase();
                let final_words = ["fail", "expired", "gave up", "giving up", "undeliver"];
                current = if (low.contains("delayed") || low.contains("not yet been delivered"))
                    && !final_words.iter().any(|w| low.contains(w))
                {
                    Some("delayed")
                } else if low.contains("failed permanently") || low.contains("permanent fatal") {
                    Some("failed")
                } else {
                    None
                };
            }
            current
        })
        .collect()
}

/// Whether a line is a heading over recipients that were delivered (it ends with a colon, or is a
/// sentence about "the following" recipients, says delivery succeeded, and negates nothing).
fn is_delivered_heading(line: &str) -> bool {
    if !line.ends_with([':', '.']) {
        return false;
    }
    let low = line.to_ascii_lowercase();
    (low.ends_with(':') || low.contains("following"))
        && DELIVERED_HEADINGS.iter().any(|w| low.contains(w))
        && !["not", "n't", "fail", "unable", "could", "delay", "error"]
            .iter()
            .any(|w| low.contains(w))
}

/// The recipients of a report that names nobody by address: the returned original's `To`, the best
/// evidence left once the report's own words and its VERP address have given none; failing that,
/// the addresses its subject names, then the user name the report gives without a domain,
/// qualified with the reporting system's domain.
pub fn original_recipients_of(input: &Input) -> Vec<RecipientReport> {
    let explanation = crate::report::prefix(input.explanation, EXPLANATION_SCAN);
    if !looks_failed(input.subject, explanation) {
        return Vec::new();
    }
    let skip = skipped(input);
    let action = action_for(input.subject, explanation);
    let to = attached_original(input.message)
        .map(original_recipients)
        .filter(|v| !v.is_empty())
        .or_else(|| {
            original_header(input.returned_original(), "to:")
                .map(|v| find_addresses(v).into_iter().map(|f| f.address).collect())
        })
        .unwrap_or_default();
    let list = list_addresses(input);
    let diagnostic = fallback_diagnostic(explanation);
    let mut out: Vec<RecipientReport> = Vec::new();
    for address in to {
        let lower = address.to_ascii_lowercase();
        if !is_system_address(&address) && !skip.contains(&lower) && !list.contains(&lower) {
            out.push(recipient(address, action, &diagnostic));
        }
    }
    if out.is_empty() {
        let sender = addressees(input);
        // The subject some report software writes the failed address into ("Undeliverable: mail
        // to ann@example.org failed", Domino's "DELIVERY FAILURE: User ann (ann@example.org) ...").
        for found in find_addresses(input.subject) {
            let lower = found.address.to_ascii_lowercase();
            let known = out.iter().any(|r| {
                r.recipient
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(&lower))
            });
            if !known
                && !is_system_address(&lower)
                && !skip.contains(&lower)
                && !list.contains(&lower)
                && !sender.contains(&lower)
                && !is_other_party(input.subject, found.start, found.end)
            {
                out.push(recipient(found.address, action, &diagnostic));
            }
        }
    }
    if out.is_empty()
        && let Some(address) = qualified_local_name(input.from, explanation)
    {
        out.push(recipient(address, action, &diagnostic));
    }
    keep_those_named(&mut out, input, explanation);
    one_reply_for_one(&mut out, explanation);
    out
}

/// The display name before each address of an address-list header value (`"Brandt, Oskar"
/// <o.brandt@example.com>, Maja <m@example.com>`), with the address lower-cased; empty names left out.
fn display_names(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut previous_end = 0;
    for found in find_addresses(value) {
        let before = value.get(previous_end..found.start).unwrap_or("");
        previous_end = found.end;
        let name = before
            .trim_start_matches(|c: char| c == '>' || c == ',' || c == ';' || c.is_whitespace())
            .trim_end_matches(|c: char| c == '<' || c.is_whitespace())
            .trim_matches('"')
            .trim();
        if name.chars().filter(|c| c.is_alphabetic()).count() >= 3 {
            out.push((found.address.to_ascii_lowercase(), name.to_string()));
        }
    }
    out
}

/// Of several recipients taken from the original's `To`, those the report names by their display
/// name (Exchange lists a recipient it could not resolve as `Brandt, Oskar on <date>`), when it
/// names some: the others were not reported as failed. Lines quoting the original's `To` or `Cc`
/// name everyone, so they do not count.
fn keep_those_named(out: &mut Vec<RecipientReport>, input: &Input, explanation: &str) {
    if out.len() < 2 {
        return;
    }
    let to = match attached_original(input.message) {
        Some(original) => original.header_raw("To").unwrap_or(""),
        None => original_header(input.returned_original(), "to:").unwrap_or(""),
    };
    let names = display_names(to);
    if names.is_empty() {
        return;
    }
    let lines: Vec<&str> = explanation
        .lines()
        .map(str::trim)
        .filter(|l| !starts_with_ci(l, "to:") && !starts_with_ci(l, "cc:"))
        .collect();
    let named = |address: &str| {
        names.iter().any(|(a, name)| {
            a.eq_ignore_ascii_case(address) && lines.iter().any(|l| contains_ci(l, name))
        })
    };
    let kept = out
        .iter()
        .filter(|r| r.recipient.as_deref().is_some_and(named))
        .count();
    if kept > 0 && kept < out.len() {
        out.retain(|r| r.recipient.as_deref().is_some_and(named));
    }
}

/// The user name a report gives without a domain, as `name@domain` of the reporting system (the
/// domain of the bounce's `From`, its MAILER-DAEMON). An MTA writes a local user by name alone and
/// qualifies an unqualified address with its own domain (Postfix `append_at_myorigin`, Sendmail's
/// `$j`); AOL's mailer names the failed screen name alone under "could not be delivered to:".
fn qualified_local_name(from: &str, explanation: &str) -> Option<String> {
    let (_, domain) = from.rsplit_once('@')?;
    if !domain.contains('.') {
        return None;
    }
    let name = explanation
        .lines()
        .find_map(sendmail_user_line)
        .or_else(|| name_under_heading(explanation))?;
    let lower = name.to_ascii_lowercase();
    if lower == "postmaster" || lower == "mailer-daemon" || lower == "root" {
        return None;
    }
    Some(format!("{name}@{}", domain.to_ascii_lowercase()))
}

/// Whether a word can be a local user's name: RFC 5321 atom characters, a letter among them.
fn is_user_name(word: &str) -> bool {
    (1..=64).contains(&word.len())
        && word.bytes().any(|b| b.is_ascii_alphabetic())
        && word
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-=".contains(&b))
}

/// The user of Sendmail's error line `550 [5.1.1 ]user... reason` (its `%s... %s` format after the
/// reply code) when the user has no domain.
fn sendmail_user_line(line: &str) -> Option<&str> {
    let line = line.trim();
    let coded = line.len() > 4
        && line.bytes().take(3).all(|b| b.is_ascii_digit())
        && matches!(line.as_bytes().first(), Some(b'4' | b'5'))
        && matches!(line.as_bytes().get(3), Some(b' ' | b'-'));
    if !coded {
        return None;
    }
    let mut rest = line.get(4..)?.trim_start();
    if let Some((first, after)) = rest.split_once(' ')
        && first.bytes().next().is_some_and(|b| b == b'4' || b == b'5')
        && first.bytes().filter(|b| *b == b'.').count() == 2
    {
        rest = after.trim_start();
    }
    let (user, reason) = rest.split_once("... ")?;
    let user = user.trim_start_matches('<').trim_end_matches('>');
    (is_user_name(user) && !reason.trim().is_empty()).then_some(user)
}

/// A user name alone on its line (bracketed or not) right under a heading that says delivery to the
/// following failed (`The mail you sent could not be delivered to:`, Sendmail's `----- The following
/// addresses had permanent fatal errors -----`).
fn name_under_heading(explanation: &str) -> Option<&str> {
    let mut lines = explanation.lines();
    while let Some(line) = lines.next() {
        let t = line.trim();
        let heading = (t.ends_with(':')
            && (contains_ci(t, "delivered to") || contains_ci(t, "following recipient")))
            || contains_ci(t, "had permanent fatal errors");
        if !heading {
            continue;
        }
        let next = lines.by_ref().map(str::trim).find(|l| !l.is_empty())?;
        let next = next
            .strip_prefix('<')
            .and_then(|n| n.strip_suffix('>'))
            .unwrap_or(next);
        if is_user_name(next) {
            return Some(next);
        }
    }
    None
}

/// A report about one recipient whose own words hold no code: the explanation's most telling
/// line, when it has one, is that recipient's reply.
fn one_reply_for_one(out: &mut [RecipientReport], explanation: &str) {
    if let [r] = out
        && r.diagnostic.as_deref().is_none_or(|d| !has_code(d))
    {
        let fallback = fallback_diagnostic(explanation);
        if has_code(&fallback) || r.diagnostic.is_none() {
            let reply = server_reply(&fallback);
            r.diagnostic = (!reply.diagnostic.is_empty()).then_some(reply.diagnostic);
            r.command = reply.command.map(str::to_string).or(r.command.take());
            r.remote_mta = reply.remote.or(r.remote_mta.take());
        }
    }
}

/// The suffixes and prefixes list managers put on a list's name for its bounce and owner addresses
/// (Mailman `news-bounces@`, `news-owner@`, `news-request@`; Majordomo `owner-news@`).
const LIST_ROLE_SUFFIXES: &[&str] = &["-bounces", "-bounce", "-owner", "-request", "-admin"];
const LIST_ROLE_PREFIXES: &[&str] = &["owner-"];

/// The list's own address a bounce sent to one of its role addresses stands for: `news@domain` for a
/// bounce to `news-bounces@domain` or `owner-news@domain`.
fn list_of_role_address(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    let base = LIST_ROLE_SUFFIXES
        .iter()
        .find_map(|s| local.strip_suffix(s))
        .or_else(|| {
            LIST_ROLE_PREFIXES
                .iter()
                .find_map(|p| local.strip_prefix(p))
        })?;
    (!base.is_empty()).then(|| format!("{base}@{domain}"))
}

/// The list addresses, lower-cased, that are never a failed recipient: the returned original's
/// `List-Post` `mailto:` (RFC 2369) and the address its `List-Id` stands for (RFC 2919, `list.domain`
/// for `list@domain`), and the list whose bounce or owner address the bounce was sent to, with that
/// role address itself (a notice asking the list to confirm quotes it). A post to a list carries
/// the list's address in `To`, and a report may quote that `To`.
fn list_addresses(input: &Input) -> Vec<String> {
    let field = |name: &str| -> Option<String> {
        match attached_original(input.message) {
            Some(m) => m.header_raw(name).map(str::to_string),
            None => {
                let lower = format!("{}:", name.to_ascii_lowercase());
                original_header(input.returned_original(), &lower).map(str::to_string)
            }
        }
    };
    let mut out: Vec<String> = Vec::new();
    for role in addresses_of(input.message, "To") {
        if let Some(list) = list_of_role_address(&role) {
            out.push(list);
            out.push(role.to_ascii_lowercase());
        }
    }
    if let Some(post) = field("List-Post") {
        out.extend(
            find_addresses(&post)
                .into_iter()
                .map(|f| f.address.to_ascii_lowercase()),
        );
    }
    if let Some(id) = field("List-Id").and_then(|v| crate::report::list_id(&v)) {
        let id = id.to_ascii_lowercase();
        if let Some((local, domain)) = id.split_once('.')
            && !local.is_empty()
            && domain.contains('.')
        {
            out.push(format!("{local}@{domain}"));
        }
    }
    out
}

/// Whether a mention's line holds its address alone (with brackets, quotes or punctuation).
fn alone_on_line(lines: &[&str], m: &Mention) -> bool {
    let line = lines.get(m.line).copied().unwrap_or("");
    let outside = |s: &str| {
        s.chars()
            .all(|c| c.is_whitespace() || "<>\"'.,;:()[]".contains(c))
    };
    outside(line.get(..m.start_in_line).unwrap_or("x"))
        && outside(line.get(m.end_in_line..).unwrap_or("x"))
}

/// A list of addresses, one per line, followed by one reason (`Delivery failed for:` / `a@x` /
/// `b@y` / `Reason: no such mailbox`): the reason after the last is every listed address's, for
/// those that found nothing of their own but the list's heading.
fn share_list_reason(lines: &[&str], mentions: &[Mention], diagnostics: &mut [String]) {
    let mut start = 0;
    while start < mentions.len() {
        let mut end = start;
        while end + 1 < mentions.len()
            && alone_on_line(lines, &mentions[end])
            && mentions[end + 1].line == mentions[end].line + 1
        {
            end += 1;
        }
        if end > start && alone_on_line(lines, &mentions[end]) {
            let last = diagnostics.get(end).cloned().unwrap_or_default();
            if !last.is_empty() {
                for d in diagnostics.iter_mut().take(end).skip(start) {
                    if !has_code(d) {
                        d.clone_from(&last);
                    }
                }
            }
        }
        start = end + 1;
    }
}

/// The result for a recipient known only from the bounce's VERP address: the report's failure
/// text (as the general reader finds it) is still its diagnostic.
pub fn verp_recipient(address: String, input: &Input) -> RecipientReport {
    let explanation = input.explanation;
    let action = action_for(input.subject, explanation);
    let diagnostic = if looks_failed(input.subject, explanation) {
        fallback_diagnostic(explanation)
    } else {
        String::new()
    };
    recipient(address, action, &diagnostic)
}

/// The words about one mention: the line holding it (from its start when the address sits inside a
/// sentence, else from after the address), then the following lines up to the next line naming
/// another address; blank lines end it once it says something (a code, or more than a few words
/// not ending in a colon).
fn diagnostic_after(lines: &[&str], m: &Mention, mentions: &[Mention]) -> String {
    let line = lines.get(m.line).copied().unwrap_or("");
    let before = line.get(..m.start_in_line).unwrap_or("");
    let before_words = before
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count();
    let raw_rest = line.get(m.end_in_line..).unwrap_or("");
    let ends_sentence = raw_rest
        .trim_start_matches('>')
        .trim_start()
        .starts_with(':');
    // The closing bracket or quote of the address, and the punctuation after it.
    let rest = raw_rest.trim_start_matches(|c: char| {
        matches!(
            c,
            '>' | ':' | '.' | ',' | '\'' | '"' | '”' | '’' | '»' | '」' | '』'
        ) || c.is_whitespace()
    });
    let mut text = if before_words >= 2 && !ends_sentence {
        line.trim().to_string()
    } else {
        rest.to_string()
    };
    let initial_len = text.len();
    let next_other = mentions
        .iter()
        .filter(|o| o.line > m.line && !o.address.eq_ignore_ascii_case(&m.address))
        .map(|o| o.line)
        .min()
        .unwrap_or(usize::MAX);
    let says_enough = |t: &str| {
        let words = t.split_whitespace().count();
        let wordy = words > 3 || t.chars().filter(|c| !c.is_ascii()).count() > 8;
        let labelled = words > 1 && starts_with_reason_label(t);
        has_code(t) || ((wordy || labelled) && !t.trim_end().ends_with(':'))
    };
    let mut breaks = 0;
    for (i, l) in lines.iter().enumerate().skip(m.line + 1) {
        if i >= next_other {
            break;
        }
        let l = l.trim();
        if l.is_empty() {
            if says_enough(&text) {
                if !has_code(&text) {
                    // Words without codes: the server's reply, or the reason under a label, often
                    // follows in the next paragraph.
                    let until = next_other.min(lines.len());
                    let next = paragraph(
                        lines.get(i + 1..until).unwrap_or_default().iter().copied(),
                        |_| false,
                    );
                    // Or the paragraph that introduces the remote server's answer ("The error
                    // that the other server returned was:", Google's notices): the answer.
                    let answer = next
                        .split_once('\n')
                        .filter(|(intro, _)| is_response_intro(intro))
                        .map(|(_, answer)| answer);
                    if has_code(&next) || starts_with_reason_label(&next) || answer.is_some() {
                        text.push(' ');
                        text.push_str(&unfold(answer.unwrap_or(&next)));
                    }
                }
                break;
            }
            breaks += 1;
            if breaks > 3 {
                break;
            }
            continue;
        }
        if l.chars()
            .all(|c| c == '-' || c == '=' || c == '*' || c == '_')
        {
            continue;
        }
        // Help text closes the notice: what follows is never the server's answer. A line that
        // gives its own words before the help keeps them, and the help beside them (Microsoft's
        // "... weren't sent. Please contact your Internet service provider since part of their
        // network is on our block list" gives the reason in its help sentence).
        if let Some(h) = help_start(l) {
            if h > 0 {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(l);
            }
            break;
        }
        // Nor is the heading of the next list of recipients.
        if l.ends_with(':') && contains_ci(l, "the following recipient") {
            break;
        }
        // The next command of a transcript, once the reply to this address's is read.
        if l.starts_with(">>>") && has_code(&text) {
            break;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(l.trim_start_matches(['-', '=', '*']));
    }
    let alone = !says_enough(&text) && before_words < 2;
    let labelled = before_words >= 2
        && !has_code(&text)
        && rest.trim().is_empty()
        && text.len() == initial_len;
    if alone || labelled {
        // The address stood alone (the paragraph before it is the explanation), or on a labelled
        // line without codes (the lines above it in its paragraph give the reason).
        let mut j = m.line;
        let mut above: Vec<&str> = Vec::new();
        // A list's heading (`The following recipients did not receive this message:`) says who
        // failed, not why: the paragraph above it, when there is one, is the reason.
        let mut past_heading = false;
        while j > 0 {
            let l = lines.get(j - 1).copied().unwrap_or("").trim();
            if l.is_empty() {
                if above.is_empty() && alone {
                    j -= 1;
                    continue;
                }
                let heading_only = above.len() <= 2
                    && above.first().is_some_and(|h| h.ends_with(':'))
                    && !above.iter().any(|h| has_code(h));
                if alone && heading_only && !past_heading {
                    past_heading = true;
                    while j > 1 && lines.get(j - 2).is_some_and(|l| l.trim().is_empty()) {
                        j -= 1;
                    }
                    j -= 1;
                    continue;
                }
                break;
            }
            if mentions.iter().any(|o| o.line == j - 1) {
                break;
            }
            above.push(l);
            j -= 1;
        }
        above.reverse();
        let mut joined = above.join(" ");
        if !text.is_empty() {
            joined.push(' ');
            joined.push_str(&text);
        }
        text = joined;
    }
    unfold(&text)
}

/// Whether a paragraph opens with a label under which notices give the reason (`Reason:`,
/// `Error:`, `Cause:`, ...).
fn starts_with_reason_label(paragraph: &str) -> bool {
    let t = paragraph.trim_start();
    [
        "reason:",
        "reason for failure:",
        "error:",
        "cause:",
        "details:",
        "diagnostic:",
    ]
    .iter()
    .any(|label| starts_with_ci(t, label))
}

fn looks_failed(subject: &str, text: &str) -> bool {
    let words = [
        "undeliver",
        "not delivered",
        "could not be delivered",
        "failure",
        "failed",
        "returned",
        "rejected",
        "unknown",
        "error",
        "delay",
        "unable to deliver",
        "undelivered",
    ];
    words
        .iter()
        .any(|w| contains_ci(subject, w) || contains_ci(text, w))
}

/// The most telling line of an explanation: the paragraph a notice introduces as the remote
/// server's answer ("The response was:", Google's notices), else the first line carrying an SMTP
/// code (with its continuation lines), else the first paragraph with failure words.
fn fallback_diagnostic(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if let Some(at) = lines.iter().position(|l| is_response_intro(l)) {
        let answer = paragraph(lines.iter().skip(at + 1).copied(), |_| false);
        let answer = unfold(&answer);
        if !answer.is_empty() {
            return answer;
        }
    }
    for (i, line) in lines.iter().enumerate() {
        if has_code(line) && !line_is_skipped(line) {
            // Sendmail's list gives the reason as `(reason: 550 5.1.1 User unknown)`.
            let t = line.trim();
            let t = strip_prefix_ci(t, "(reason:")
                .and_then(|r| r.strip_suffix(')'))
                .map_or(t, str::trim);
            let mut out = String::from(t);
            for l in lines.iter().skip(i + 1) {
                let t = l.trim();
                if t.is_empty() || !l.starts_with([' ', '\t']) {
                    break;
                }
                out.push(' ');
                out.push_str(t);
            }
            return unfold(&out);
        }
    }
    let paragraphs = || {
        text.split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty() && p.len() < 2000)
    };
    // Matched unfolded: the failure words often wrap ("could not\nbe delivered"); help text
    // (whom to write to, what to include) is never the explanation.
    if let Some(para) = paragraphs()
        .filter(|p| !p.lines().any(line_is_skipped))
        .map(unfold)
        .find(|p| looks_failed("", p))
    {
        return para;
    }
    // Nothing in a known language: the longest of the first few paragraphs is the explanation.
    paragraphs()
        .take(4)
        .max_by_key(|p| p.chars().count())
        .map(unfold)
        .unwrap_or_default()
}

/// Whether a line is a sentence of [`RESPONSE_INTRO`], introducing the lines after it.
fn is_response_intro(line: &str) -> bool {
    let t = line.trim();
    t.len() < 80 && t.ends_with(':') && RESPONSE_INTRO.iter().any(|p| contains_ci(t, p))
}

/// Sentences that introduce the remote server's own answer on the following lines.
const RESPONSE_INTRO: &[&str] = &[
    "the response was",
    "the response from the remote server was",
    "the error that the other server returned was",
];

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    /// The recipients the report reader finds in `raw`.
    fn recipients_of(raw: impl AsRef<[u8]>) -> Vec<RecipientReport> {
        crate::report::read(raw.as_ref()).unwrap().recipients
    }

    /// The addresses of `r`, in order.
    fn addresses(r: &[RecipientReport]) -> Vec<&str> {
        r.iter().filter_map(|r| r.recipient.as_deref()).collect()
    }

    /// The first recipient's diagnostic, or nothing.
    fn first_diagnostic(r: &[RecipientReport]) -> &str {
        r.first()
            .and_then(|r| r.diagnostic.as_deref())
            .unwrap_or("")
    }

    #[test]
    fn wrapped_failure_words_beat_help_text() {
        let text = "This is the mail system at host mx.example.org.\n\nYour message could not\nbe delivered to one or more recipients.\n\nIf you do so, please include this problem report with the\nreturned message.\n";
        assert_eq!(
            fallback_diagnostic(text),
            "Your message could not be delivered to one or more recipients."
        );
    }

    #[test]
    fn the_introduced_answer_is_the_diagnostic() {
        let text = "** Message not delivered **\n\nYour message could not be sent from this alias.\n\nThe response was:\n\nSubmission refused: relay\n  needs authentication\n\nMore help online.\n";
        assert_eq!(
            fallback_diagnostic(text),
            "Submission refused: relay needs authentication"
        );
        assert_eq!(
            fallback_diagnostic("** Message not delivered **\n\nThe response was:\n"),
            "** Message not delivered **"
        );
    }

    fn run(raw: &str) -> Vec<RecipientReport> {
        let Some(msg) = MessageParser::default().parse(raw.as_bytes()) else {
            return Vec::new();
        };
        let body = super::super::readable_text(&msg);
        let subject = msg.subject().unwrap_or("").to_string();
        let input = Input::new(&msg, &subject, "mailer-daemon@mx.example.org", &body);
        read(&input)
    }

    #[test]
    fn a_verp_address_outranks_the_originals_to() {
        let raw = "From: postmaster@example.org\nTo: news-bounces+erin=example.net@lists.example.com\n\
Subject: Undeliverable\n\nDelivery failed: 552 mailbox full\n\n\
Received: from a.example.com by b.example.org\nFrom: news@lists.example.com\nTo: news@lists.example.com\n\nbody\n";
        let r = recipients_of(raw);
        let got: Vec<_> = r.iter().map(|r| r.recipient.as_deref()).collect();
        assert_eq!(got, [Some("erin@example.net")]);
    }

    #[test]
    fn the_lists_own_address_is_never_the_failed_recipient() {
        for list_field in [
            "List-Id: News <news.lists.example.com>",
            "List-Post: <mailto:news@lists.example.com>",
        ] {
            let raw = format!(
                "From: postmaster@example.org\nTo: owner@lists.example.com\nSubject: Undeliverable\n\n\
Delivery failed: 552 mailbox full\n\n\
Received: from a.example.com by b.example.org\nFrom: ann@example.com\nTo: news@lists.example.com\n{list_field}\n\nbody\n"
            );
            let r = recipients_of(raw);
            assert!(r.is_empty(), "{list_field}: {r:?}");
        }
    }

    #[test]
    fn a_user_named_without_a_domain_is_the_reporting_systems() {
        let sendmail = "From: Mail Delivery Subsystem <MAILER-DAEMON@mail.example.net>\n\
To: owner@lists.example.com\nSubject: Returned mail: User unknown\n\n\
   ----- Transcript of session follows -----\n550 5.1.1 kimura... User unknown\n\n\
   ----- Unsent message follows -----\nFrom: News <news@lists.example.com>\n\
To: news@lists.example.com\nList-Post: <mailto:news@lists.example.com>\n\nbody\n";
        let r = recipients_of(sendmail);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].recipient.as_deref(), Some("kimura@mail.example.net"));
        // Named in Sendmail's list, its reason in the list's `(reason: ...)` framing.
        let listed = sendmail.replace(
            "----- Transcript of session follows -----\n550 5.1.1 kimura... User unknown\n",
            "----- The following addresses had permanent fatal errors -----\n<kimura>\n\
    \x20   (reason: 550 5.1.1 User unknown)\n",
        );
        let listed = recipients_of(listed);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(
            listed[0].recipient.as_deref(),
            Some("kimura@mail.example.net")
        );
        assert_eq!(
            listed[0].diagnostic.as_deref(),
            Some("550 5.1.1 User unknown")
        );
        assert_eq!(
            r[0].diagnostic.as_deref(),
            Some("550 5.1.1 kimura... User unknown")
        );

        let heading = "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.com>\n\
To: owner@lists.example.org\nSubject: Returned mail: User unknown\n\n\
The mail you sent could not be delivered to:\n\n  quietreader42\n\n  Subject: notes\n";
        let r = recipients_of(heading);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(
            r[0].recipient.as_deref(),
            Some("quietreader42@mx.example.com")
        );

        // No dotted domain to qualify with, a system name, or no name at all: nobody.
        for text in [
            sendmail.replace("MAILER-DAEMON@mail.example.net", "MAILER-DAEMON@localhost"),
            sendmail.replace("kimura...", "postmaster..."),
            sendmail.replace("550 5.1.1 kimura... User unknown", "Retrying... gave up"),
            heading.replace("quietreader42", "Subject: notes"),
        ] {
            let r = recipients_of(text);
            assert!(r.is_empty(), "{r:?}");
        }
    }

    #[test]
    fn the_list_a_bounce_address_stands_for_is_never_the_failed_recipient() {
        let raw = "From: postmaster@corp.example.com\nTo: news-bounces@lists.example.org\n\
Subject: Undeliverable: digest\n\nYour message\n\n  To:      news@lists.example.org\n\
  Subject: digest\n\ndid not reach the following recipient(s):\n\n\
Brandt, Oskar on 12/2/2026 9:14 AM\n    The recipient name is not recognized\n";
        for to in ["news-bounces", "news-owner", "owner-news", "news-request"] {
            let raw = raw.replace("news-bounces", to);
            let r = recipients_of(raw);
            assert!(r.is_empty(), "{to}: {r:?}");
        }
        assert_eq!(
            list_of_role_address("owner-news@lists.example.org").as_deref(),
            Some("news@lists.example.org")
        );
        assert_eq!(list_of_role_address("-bounces@lists.example.org"), None);
        assert_eq!(list_of_role_address("ann@example.org"), None);
    }

    #[test]
    fn a_recipient_accepted_in_the_transcript_or_listed_as_delivered_did_not_fail() {
        let raw = "From: MAILER-DAEMON@relay.example.com\nTo: sender@example.org\n\
Subject: Delivery failure\n\nYour message could not be delivered to some recipients.\n\n\
>>> RCPT TO:<lou@example.net>\n<<< 550 5.1.1 No such user\n\
>>> RCPT TO:<max@example.net>\n<<< 250 2.1.5 Recipient OK\n\n\
Delivery to the following recipients succeeded:\n\n   rita@example.net\n\n\
Please contact postmaster@relay.example.com with questions.\n";
        let r = recipients_of(raw);
        let got: Vec<_> = addresses(&r);
        assert_eq!(got, ["lou@example.net"]);
        let lines: Vec<&str> = raw.lines().collect();
        let delivered = delivered_lines(&lines);
        let flagged: Vec<&str> = lines
            .iter()
            .zip(&delivered)
            .filter(|(_, d)| **d)
            .map(|(l, _)| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            flagged,
            [">>> RCPT TO:<max@example.net>", "rita@example.net"]
        );
        assert!(!is_delivered_heading(
            "Delivery to the following recipients failed:"
        ));
        assert!(!is_delivered_heading("Your message was not delivered to:"));
        assert!(is_delivered_heading(
            "Delivery to the following recipients succeeded."
        ));
    }

    #[test]
    fn an_address_to_write_to_or_a_message_identifier_is_not_a_failed_recipient() {
        let raw = "From: MAILER-DAEMON@relay.example.com\nTo: sender@example.org\n\
Subject: Undeliverable message\n\n\
Delivery to the following recipient failed permanently:\n\n     nia@example.net\n\n\
The remote server rejected the message: 554 Your mail was rejected. See \
http://postmaster@example.net/ or mail abuse@example.net for details.\n\n\
If you believe this is an error, write to help@relay.example.com.\n\
Message-ID of the original: <20240101.x1@example.org>\n";
        let r = recipients_of(raw);
        let got: Vec<_> = addresses(&r);
        assert_eq!(got, ["nia@example.net"]);
        let diagnostic = first_diagnostic(&r);
        assert!(
            diagnostic.starts_with("554 Your mail was rejected."),
            "{diagnostic}"
        );
        assert!(is_other_party("Message id <a1@example.org>", 12, 27));
        assert!(is_other_party("mail abuse@example.net for details", 5, 22));
        assert!(!is_other_party("mail to ann@example.net failed", 8, 23));
    }

    #[test]
    fn the_words_before_help_in_a_line_are_the_notices_own() {
        let raw = "From: MAILER-DAEMON@relay.example.com\nTo: sender@example.org\n\
Subject: Undeliverable\n\n\
Your message to mailto:ole@example.net could not be delivered.\n\
The address ole@example.net does not exist. Contact mailto:help@example.net for help.\n";
        let r = recipients_of(raw);
        let got: Vec<_> = addresses(&r);
        assert_eq!(got, ["ole@example.net"]);
        let diagnostic = first_diagnostic(&r);
        assert!(diagnostic.contains("does not exist."), "{diagnostic}");
        assert_eq!(help_start("Please contact us."), Some(0));
        assert_eq!(help_start("No such user. Contact us."), Some(14));
        assert_eq!(help_start("No such user."), None);
    }

    #[test]
    fn a_report_that_names_its_recipient_only_in_the_subject_is_about_that_address() {
        let raw = "From: MAILER-DAEMON@relay.example.com\nTo: news@lists.example.org\n\
Subject: Undeliverable: mail to una@example.net failed\n\n\
The message could not be delivered. The recipient's mailbox is unavailable.\n";
        let r = recipients_of(raw);
        let got: Vec<_> = addresses(&r);
        assert_eq!(got, ["una@example.net"]);
        let from_sender = "From: MAILER-DAEMON@relay.example.com\nTo: news@lists.example.org\n\
Subject: Undeliverable mail from news@lists.example.org\n\n\
The message could not be delivered. The recipient's mailbox is unavailable.\n";
        let r = crate::report::read(from_sender.as_bytes())
            .unwrap()
            .recipients;
        assert!(r.is_empty(), "{r:?}");
    }

    #[test]
    fn a_reason_line_keeps_its_words_whatever_help_or_list_it_mentions() {
        let notice = |reason: &str| {
            format!(
                "From: MAILER-DAEMON@relay.example.com\nTo: sender@example.org\n\
Subject: Delivery failure\n\n\
Your message could not be delivered to the following recipient:\n\n    vera@example.net\n\n\
Reason: {reason}\n\nPlease do not reply to this automated notice.\n"
            )
        };
        let diagnostic = |reason: &str| {
            let raw = notice(reason);
            let r = recipients_of(raw);
            r.first()
                .and_then(|r| r.diagnostic.clone())
                .unwrap_or_default()
        };
        for reason in [
            "The user you are trying to contact is receiving mail too quickly",
            "Mailing list expansion problem",
            "Connection refused",
            "550 5.7.1 Messages from 192.0.2.1 weren't sent. Please contact your Internet service \
provider since part of their network is on our block list",
        ] {
            let got = diagnostic(reason);
            assert!(
                got.ends_with(reason) && got.len() <= reason.len() + 8,
                "{got}"
            );
        }
        assert_eq!(contact_at("Please contact us"), Some(7));
        assert_eq!(contact_at("Contact: help desk"), Some(0));
        assert_eq!(contact_at("the user you are trying to contact"), None);
        assert_eq!(contact_at("no contacts"), None);
        assert_eq!(
            help_start("Mailbox suspended--Please contact them"),
            Some(19)
        );
    }

    #[test]
    fn the_answer_a_notice_introduces_in_its_own_paragraph_is_the_diagnostic() {
        let raw = "From: MAILER-DAEMON@relay.example.com\nTo: sender@example.org\n\
Subject: Delivery Status Notification (Failure)\n\n\
Delivery to the following recipient failed permanently:\n\n     wes@example.net\n\n\
Technical details of permanent failure:\n\
The message was rejected by the server for the recipient domain example.net.\n\n\
The error that the other server returned was:\n\
Host or domain name not found. Name service error for name=example.net type=MX\n";
        let r = recipients_of(raw);
        let diagnostic = first_diagnostic(&r);
        assert!(
            diagnostic.ends_with(
                "Host or domain name not found. Name service error for name=example.net type=MX"
            ),
            "{diagnostic}"
        );
        assert!(!diagnostic.contains("returned was"), "{diagnostic}");
    }

    #[test]
    fn the_new_address_a_report_gives_is_not_a_failed_recipient() {
        let raw = "From: MAILER-DAEMON@relay.example.com\nTo: sender@example.org\n\
Subject: Undeliverable message\n\n\
Your message could not be delivered to the following recipient:\n\n    xia@example.net\n\n\
Reason: 550 5.1.6 Recipient no longer on server; new address: xia@example.com\n";
        let r = recipients_of(raw);
        let got: Vec<_> = addresses(&r);
        assert_eq!(got, ["xia@example.net"]);
        assert!(is_other_party("has moved to ann@example.com", 13, 28));
        let forwarded = "From: MAILER-DAEMON@relay.example.com\nTo: sender@example.org\n\
Subject: Mail delivery failed\n\n\
Your message to yan@example.net could not be forwarded.\n\
The forwarding address yan@example.com rejected it: 550 5.1.1 User unknown\n";
        let r = crate::report::read(forwarded.as_bytes())
            .unwrap()
            .recipients;
        let got: Vec<_> = r
            .iter()
            .map(|r| (r.recipient.as_deref(), r.diagnostic.as_deref()))
            .collect();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got.first().and_then(|g| g.0), Some("yan@example.net"));
        assert!(
            got.first()
                .and_then(|g| g.1)
                .is_some_and(|d| d.contains("550 5.1.1 User unknown")),
            "{got:?}"
        );
    }

    #[test]
    fn the_address_a_notice_is_sent_to_is_never_its_failed_recipient() {
        let raw = "From: \"Mail Delivery System\" <mailer-daemon@notices.example.com>\n\
To: news@lists.example.org\nSubject: Undelivered Mail: 3 messages failed\n\n\
3 incoming messages could not be delivered to your mailbox news@lists.example.org\n\
because your mailbox quota is exceeded.\n";
        let report = crate::report::read(raw.as_bytes()).unwrap();
        assert!(report.recipients.is_empty(), "{:?}", report.recipients);
    }

    #[test]
    fn those_who_received_the_message_did_not_fail() {
        let raw = "From: MAILER-DAEMON@relay.example.com\nTo: sender@example.org\n\
Subject: Delivery failure\n\n\
Your message could not be delivered to these recipients:\n\n\
  pia@example.net: 550 No such user\n  quin@example.net: 552 Mailbox full\n\n\
The following recipients received your message:\n  rolf@example.net\n";
        let r = recipients_of(raw);
        let got: Vec<_> = addresses(&r);
        assert_eq!(got, ["pia@example.net", "quin@example.net"]);
    }

    #[test]
    fn each_address_takes_the_action_of_its_heading() {
        let raw = "From: MAILER-DAEMON@relay.example.com\nTo: sender@example.org\n\
Subject: Delivery Status Notification (Delay)\n\n\
Delivery to the following recipients has been delayed:\n\n   sam@example.net\n\n\
Delivery to the following recipients failed permanently:\n\n   tom@example.net\n\n\
Technical details of permanent failure:\n550 5.1.1 No such user\n";
        let r = recipients_of(raw);
        let got: Vec<_> = r
            .iter()
            .map(|r| (r.recipient.as_deref(), r.action.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("sam@example.net"), Some("delayed")),
                (Some("tom@example.net"), Some("failed"))
            ]
        );
        let lines = [
            "The following message was delayed and has now expired:",
            "x",
        ];
        assert_eq!(heading_actions(&lines), [None, None]);
    }

    #[test]
    fn the_bounce_address_a_notice_quotes_is_never_the_failed_recipient() {
        let raw = "From: mailer-daemon@mx.example.net\nTo: news-bounces@lists.example.org\n\
Subject: Undeliverable mail\n\nYour message could not be delivered: the sender\n\
<news-bounces@lists.example.org> is not on the allowed list.\n";
        let r = recipients_of(raw);
        assert!(r.is_empty(), "{r:?}");
        let other = raw.replace("sender\n<news-bounces", "recipient\n<ann");
        let r = recipients_of(other);
        assert_eq!(r.len(), 1, "{r:?}");
    }

    #[test]
    fn of_the_originals_recipients_only_those_the_report_names_by_name_failed() {
        let raw = "From: postmaster@corp.example.com\nTo: sender@example.org\n\
Subject: Undeliverable: figures\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\n\n\
Your message\n\n  To:      Brandt, Oskar; Lind, Maja\n  Subject: figures\n\n\
did not reach the following recipient(s):\n\nBrandt, Oskar on 12/2/2026 9:14 AM\n\
    The recipient name is not recognized\n\n--b\nContent-Type: message/rfc822\n\n\
From: sender@example.org\nTo: \"Brandt, Oskar\" <o.brandt@corp.example.com>, \"Lind, Maja\" \
<m.lind@corp.example.com>\nSubject: figures\n\nbody\n--b--\n";
        let r = recipients_of(raw);
        let names: Vec<_> = addresses(&r);
        assert_eq!(names, ["o.brandt@corp.example.com"]);
        // Named by nobody's display name: every recipient of the original stays.
        let raw = raw.replace("Brandt, Oskar on", "Someone Else on");
        let r = recipients_of(raw);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(
            display_names(
                "\"Brandt, Oskar\" <o.b@example.com>, Maja Lind <m@Example.com>, x@example.com"
            ),
            [
                ("o.b@example.com".to_string(), "Brandt, Oskar".to_string()),
                ("m@example.com".to_string(), "Maja Lind".to_string())
            ]
        );
    }

    #[test]
    fn finds_bracketed_recipient_and_its_words() {
        let r = run(
            "From: MAILER-DAEMON@mx.example.org\nTo: sender@example.com\nSubject: Returned mail\n\n\
Your mail could not be delivered to <Carol@Example.NET>:\n  550 5.1.1 mailbox unavailable\n\n\
------ Original message follows ------\nFrom: sender@example.com\nTo: carol@example.net\n\nhi\n",
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].recipient.as_deref(), Some("Carol@example.net"));
        assert_eq!(
            r[0].diagnostic.as_deref(),
            Some("550 5.1.1 mailbox unavailable")
        );
        assert_eq!(r[0].action.as_deref(), Some("failed"));
    }

    #[test]
    fn falls_back_to_original_to_when_nobody_named() {
        let raw = "From: postmaster@example.org\nTo: sender@example.com\nSubject: Undeliverable\n\n\
Delivery failed: 552 message rejected by recipient policy\n\n\
Received: from a.example.com by b.example.org\nFrom: sender@example.com\nTo: dave@example.net\n\nbody\n";
        let r = recipients_of(raw);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].recipient.as_deref(), Some("dave@example.net"));
        assert!(
            r[0].diagnostic
                .as_deref()
                .unwrap_or("")
                .contains("552 message rejected")
        );
    }

    #[test]
    fn the_failed_recipients_header_is_the_set() {
        let r = run(
            "From: MAILER-DAEMON@mx.example.org\nTo: sender@example.com\nSubject: Delivery failure\n\
X-Failed-Recipients: Kim@example.net, lou@example.net\n\n\
Your message to kim@example.net, copied to ops@example.org, could not be delivered.\n\
Reply: 550 5.1.1 no such user\n",
        );
        let got: Vec<_> = addresses(&r);
        assert_eq!(got, ["kim@example.net", "lou@example.net"]);
        assert!(
            r[1].diagnostic
                .as_deref()
                .is_some_and(|d| d.contains("550 5.1.1")),
            "{r:?}"
        );
    }

    #[test]
    fn labelled_address_takes_reason_above_it() {
        let r = run(
            "From: postmaster@example.org\nTo: sender@example.com\nSubject: bounce notification\n\n\
Your message was rejected.\n\nrefusal cause: quota exceeded\nintended address: gail@example.net\n\n\
------ Original message follows ------\nFrom: sender@example.com\nTo: gail@example.net\n",
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].recipient.as_deref(), Some("gail@example.net"));
        assert_eq!(
            r[0].diagnostic.as_deref(),
            Some("refusal cause: quota exceeded intended address: gail@example.net")
        );
        assert_eq!(r[0].command, None);
    }

    #[test]
    fn a_reason_after_a_list_of_addresses_is_each_ones() {
        let r = run(
            "From: postmaster@mx.example.org\nTo: sender@example.com\nSubject: Delivery failure\n\n\
Delivery failed for the following recipients:\n  amy@example.org.\n  \"ben@example.org\";\n  <cat@example.org>,\n\
Reason: no such mailbox\n",
        );
        let got: Vec<_> = r
            .iter()
            .map(|r| (r.recipient.as_deref(), r.diagnostic.as_deref()))
            .collect();
        let reason = Some("Reason: no such mailbox");
        assert_eq!(
            got,
            [
                (Some("amy@example.org"), reason),
                (Some("ben@example.org"), reason),
                (Some("cat@example.org"), reason)
            ]
        );
    }

    #[test]
    fn a_lists_heading_takes_the_reason_above_it() {
        let r = run(
            "From: postmaster@mx.example.org\nTo: sender@example.com\nSubject: Undeliverable\n\n\
The mailbox of the addressee is full.\n\nThese recipients did not get your message:\n\n   <hal@example.net>\n",
        );
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].diagnostic.as_deref(),
            Some(
                "The mailbox of the addressee is full. These recipients did not get your message:"
            )
        );
        // A heading with words of its own before the address keeps them alone.
        let r = run(
            "From: postmaster@mx.example.org\nTo: sender@example.com\nSubject: Undeliverable\n\n\
Greetings.\n\nFailed (550 5.1.1 no such user):\n\n   <hal@example.net>\n",
        );
        assert_eq!(
            r[0].diagnostic.as_deref(),
            Some("Failed (550 5.1.1 no such user):")
        );
    }

    #[test]
    fn a_labelled_reason_in_the_next_paragraph_is_the_addresss() {
        let r = run(
            "From: postmaster@mx.example.org\nTo: sender@example.com\nSubject: Undeliverable\n\n\
Message delivery failed for recipient ida@example.net\n\nReason: mailbox not found\n\n\
Thank you for using our service.\n",
        );
        assert_eq!(
            r[0].diagnostic.as_deref(),
            Some("Message delivery failed for recipient ida@example.net Reason: mailbox not found")
        );
    }

    #[test]
    fn skips_sender_and_system_addresses() {
        let r = run(
            "From: MAILER-DAEMON@example.org\nTo: sender@example.com\nSubject: failure\n\n\
Message from sender@example.com to erin@example.net failed.\nMAIL FROM:<sender@example.com>\n\
Contact postmaster@example.org.\nRCPT TO:<erin@example.net>: 550 no such user\n\n\
This message was sent by list-owner@lists.example.com on behalf of news@lists.example.com.\n",
        );
        let got: Vec<_> = addresses(&r);
        assert_eq!(got, ["erin@example.net"]);
        assert!(
            r[0].diagnostic
                .as_deref()
                .unwrap_or("")
                .contains("550 no such user")
        );
    }

    /// Fragments of the fixed wording of every family, so random bodies reach their code paths.
    const FRAGMENTS: &[&str] = &[
        "This is the mail system at host x.example.org.\n",
        "This message was created automatically by mail delivery software.\n",
        "The following address(es) failed:\n",
        "  a@example.org\n    SMTP error from remote mail server after RCPT TO:<a@example.org>:\n",
        "Hi. This is the qmail-send program at x.\n",
        "<b@example.net>:\n",
        "----- Transcript of session follows -----\n",
        "----- The following addresses had permanent fatal errors -----\n",
        ">>> RCPT To:<c@example.com>\n<<< 550 5.1.1 no\n",
        "... while talking to mx.example.com.:\n",
        "550 5.1.1 <d@example.org>... User unknown\n",
        "This is the DragonFly Mail Agent\nThere was an error delivering your mail to <e@example.org>.\n",
        "the following list of recipients:\n",
        "f@example.org: 550 nope\n",
        "------- Failure Reasons  --------\n",
        "was not delivered to:\n\n  g@example.org\n\nbecause:\n",
        "Error message below:\nMessage details:\n  RCPT TO: h@example.org\n",
        "-------server message\n",
        "Unable to deliver message to: <i@example.org>\nDelivery failed for the following reason:\n",
        "Could not be delivered because of\nThe following recipients were affected:\n",
        "Addressed To: j@example.org\n",
        "The following addresses had delivery errors\nk@example.org [x]\n",
        "This is an automatically generated Delivery Status Notification.\nDelivery to the following recipients\n   * l@example.org\n",
        "We had trouble delivering your message. Full details follow:\nrejected recipient <m@example.org>\n",
        "Recipient address: n@example.org\nDiagnostic code: smtp;550\nRemote system: dns;\n",
        " In:  RCPT TO:<o@example.org>\n Out: 550 no\n",
        "Unknown user: p@example.org\n",
        "------ This is a copy of the message, including all the headers. ------\n",
        "Received: from x\nTo: q@example.org\n",
        "\n",
        "é",
        "日本",
        "<",
        ">",
        "@",
        ":",
        " ",
        "\t",
        "(",
        ")",
        "[",
        "]",
        "-----",
    ];

    proptest::proptest! {
        #[test]
        fn no_reader_panics_on_mixed_wording(
            parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..40),
            noise in "[ -~\n]{0,80}",
            subject in proptest::sample::select(&[
                "Undelivered Mail Returned to Sender", "Mail delivery failed", "failure notice",
                "Returned mail: see transcript for details", "Delivery status notification",
                "Postfix SMTP server: errors from x", "DELIVERY FAILURE: x", "FAILURE NOTICE : x",
                "Undeliverable Mail", "x (list ML)", "",
            ][..]),
        ) {
            let body: String = parts.concat() + &noise;
            let raw = format!("From: MAILER-DAEMON@example.org\nTo: s@example.com\nSubject: {subject}\nX-Failed-Recipients: a@example.org\n\n{body}");
            if let Some(msg) = MessageParser::default().parse(raw.as_bytes()) {
                let text = super::super::readable_text(&msg);
                let input = Input::new(&msg, subject, "mailer-daemon@example.org", &text);
                for family in super::super::FAMILIES {
                    let _ = (family.detect)(&input);
                    let _ = (family.read)(&input);
                }
                let _ = super::super::read(&input);
            }
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        for raw in [
            "",
            "\n\n",
            "Subject: x\n\n@@@ <<<>>> a@b.cc\n\n\n---",
            "From: <@>\n\n\u{fffd}@é.fr ü",
        ] {
            let _ = run(raw);
        }
    }
}
