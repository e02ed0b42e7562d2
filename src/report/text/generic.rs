//! The general reader for free-text reports from MTAs no family reader knows.
//!
//! Unknown MTAs mostly share one shape: an explanation naming each failed address (in `<...>`, on its
//! own line, or after `To:` / `Recipient:`), the server's words or an SMTP transcript after it, and
//! then the returned original message. The original is cut off first, so its own headers are never
//! taken for failed recipients; addresses of the reporting system and of the original sender are
//! skipped.

use mail_parser::{Address, Message};

use super::common::{self, contains_ci, has_code, unfold};
use super::{Family, Input};
use crate::report::RecipientReport;

/// The general reader, as a family that accepts every message (used last).
pub const GENERIC: Family = Family {
    name: super::NAME,
    detect: |_| true,
    read,
};

/// Line starts (lower-case) whose addresses are never failed recipients.
const SKIP_LINE_PREFIXES: &[&str] = &[
    "from:",
    "sender:",
    "reply-to:",
    "return-path:",
    "message-id:",
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
];

fn addresses_of(list: Option<&Address>) -> Vec<String> {
    list.map(|a| {
        a.iter()
            .filter_map(|addr| addr.address())
            .filter_map(common::normalize_address)
            .collect()
    })
    .unwrap_or_default()
}

/// Addresses that are never the failed recipient: the bounce's own From and To (the original sender)
/// and the returned original's From.
fn skipped(input: &Input) -> Vec<String> {
    let mut out = addresses_of(input.message.from());
    out.extend(addresses_of(input.message.to()));
    if let Some(original) = attached_original(input.message) {
        out.extend(addresses_of(original.from()));
        out.extend(
            original
                .return_path()
                .as_text()
                .and_then(common::normalize_address),
        );
    }
    if let Some(from) = original_header(common::returned_original(input.body), "from:") {
        out.extend(common::first_address(from));
    }
    for a in &mut out {
        *a = a.to_ascii_lowercase();
    }
    out
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

fn line_is_skipped(line: &str) -> bool {
    let t =
        line.trim_start_matches(|c: char| c.is_whitespace() || c == '>' || c == '<' || c == '*');
    let low: String = t.chars().take(24).flat_map(char::to_lowercase).collect();
    SKIP_LINE_PREFIXES.iter().any(|p| low.starts_with(p))
}

fn is_sender_context(line: &str, start: usize) -> bool {
    let before = line.get(..start).unwrap_or("");
    let tail: String = before
        .chars()
        .rev()
        .take(20)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .flat_map(char::to_lowercase)
        .collect();
    SENDER_WORDS.iter().any(|w| tail.contains(w))
}

struct Mention {
    address: String,
    line: usize,
    end_in_line: usize,
}

/// Reads a report of unknown shape: one recipient per distinct address the explanation names.
pub fn read(input: &Input) -> Vec<RecipientReport> {
    let explanation = common::cut_original(input.body);
    let skip = skipped(input);
    let lines: Vec<&str> = explanation.lines().collect();
    let mut mentions: Vec<Mention> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line_is_skipped(line) {
            continue;
        }
        for found in common::find_addresses(line) {
            let lower = found.address.to_ascii_lowercase();
            if common::is_system_address(&lower)
                || skip.contains(&lower)
                || is_sender_context(line, found.start)
            {
                continue;
            }
            mentions.push(Mention {
                address: found.address,
                line: i,
                end_in_line: found.end,
            });
        }
    }
    let action = if common::is_delay_notice(input.subject, explanation) {
        "delayed"
    } else {
        "failed"
    };
    let mut out: Vec<RecipientReport> = Vec::new();
    let mention_lines: Vec<usize> = mentions.iter().map(|m| m.line).collect();
    for m in &mentions {
        let diagnostic = diagnostic_after(&lines, m, &mention_lines);
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
                    *r = common::recipient(m.address.clone(), action, &diagnostic);
                }
            }
            None => out.push(common::recipient(m.address.clone(), action, &diagnostic)),
        }
    }
    if out.is_empty() && looks_failed(input.subject, explanation) {
        // The explanation names nobody: the original's To is the best evidence left.
        let to = attached_original(input.message)
            .map(|o| addresses_of(o.to()))
            .filter(|v| !v.is_empty())
            .or_else(|| {
                original_header(common::returned_original(input.body), "to:").map(|v| {
                    common::find_addresses(v)
                        .into_iter()
                        .map(|f| f.address)
                        .collect()
                })
            })
            .unwrap_or_default();
        let diagnostic = fallback_diagnostic(explanation);
        for address in to {
            if !common::is_system_address(&address) && !skip.contains(&address.to_ascii_lowercase())
            {
                out.push(common::recipient(address, action, &diagnostic));
            }
        }
    }
    if out.len() == 1 {
        if let Some(r) = out.first_mut() {
            if r.diagnostic.as_deref().is_none_or(|d| !has_code(d)) {
                let fallback = fallback_diagnostic(explanation);
                if has_code(&fallback) || r.diagnostic.is_none() {
                    let command = common::command_of(&fallback).map(str::to_string);
                    r.diagnostic = (!fallback.is_empty()).then_some(fallback);
                    r.command = command.or(r.command.take());
                }
            }
        }
    }
    for r in &mut out {
        if let Some(d) = r.diagnostic.as_deref() {
            if let Some(h) = common::host_said(d) {
                r.remote_mta = Some(h.host);
            }
        }
    }
    out
}

/// The words about one mention: the rest of its line, then the following lines of its paragraph
/// (or the next paragraph when its own says nothing), up to the next mentioned address.
fn diagnostic_after(lines: &[&str], m: &Mention, mention_lines: &[usize]) -> String {
    let line = lines.get(m.line).copied().unwrap_or("");
    let rest = line
        .get(m.end_in_line..)
        .unwrap_or("")
        .trim_start_matches(|c: char| {
            c == '>' || c == ':' || c == '.' || c == ',' || c.is_whitespace()
        });
    let mut text = String::from(rest);
    let next_mention = mention_lines
        .iter()
        .copied()
        .find(|&l| l > m.line)
        .unwrap_or(usize::MAX);
    let mut i = m.line + 1;
    let mut paragraphs = 0;
    while i < lines.len() && i < next_mention {
        let l = lines.get(i).copied().unwrap_or("").trim();
        if l.is_empty() {
            if has_code(&text) || text.split_whitespace().count() > 3 {
                break;
            }
            paragraphs += 1;
            if paragraphs > 1 {
                break;
            }
        } else {
            if l.starts_with("---") || l.starts_with("===") {
                break;
            }
            text.push(' ');
            text.push_str(l);
        }
        i += 1;
    }
    if !has_code(&text) && text.split_whitespace().count() <= 3 {
        // The address stood alone: the words before it on its paragraph are the explanation.
        let mut j = m.line;
        let mut before = String::new();
        while j > 0 {
            let l = lines.get(j - 1).copied().unwrap_or("").trim();
            if l.is_empty() {
                break;
            }
            before = format!("{l} {before}");
            j -= 1;
        }
        let own = line.get(..m.end_in_line.min(line.len())).unwrap_or("");
        let own = own
            .get(..own.rfind(|c: char| c.is_whitespace()).unwrap_or(0))
            .unwrap_or("");
        text = format!("{before}{own} {text}");
    }
    unfold(&text)
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

/// The most telling line of an explanation: the first line carrying an SMTP code (with its
/// continuation lines), else the first paragraph with failure words.
fn fallback_diagnostic(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if has_code(line) && !line_is_skipped(line) {
            let mut out = String::from(line.trim());
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
    for para in text.split("\n\n") {
        if looks_failed("", para) && para.len() < 2000 {
            return unfold(para);
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn run(raw: &str) -> Vec<RecipientReport> {
        let Some(msg) = MessageParser::default().parse(raw.as_bytes()) else {
            return Vec::new();
        };
        let body = super::super::readable_text(&msg);
        let subject = msg.subject().unwrap_or("").to_string();
        let input = Input {
            message: &msg,
            subject: &subject,
            from: "mailer-daemon@mx.example.org",
            body: &body,
        };
        read(&input)
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
        let r = run(
            "From: postmaster@example.org\nTo: sender@example.com\nSubject: Undeliverable\n\n\
Delivery failed: 552 message rejected by recipient policy\n\n\
Received: from a.example.com by b.example.org\nFrom: sender@example.com\nTo: dave@example.net\n\nbody\n",
        );
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
    fn skips_sender_and_system_addresses() {
        let r = run(
            "From: MAILER-DAEMON@example.org\nTo: sender@example.com\nSubject: failure\n\n\
Message from sender@example.com to erin@example.net failed.\nMAIL FROM:<sender@example.com>\n\
Contact postmaster@example.org.\nRCPT TO:<erin@example.net>: 550 no such user\n",
        );
        let got: Vec<_> = r.iter().filter_map(|r| r.recipient.as_deref()).collect();
        assert_eq!(got, ["erin@example.net"]);
        assert!(
            r[0].diagnostic
                .as_deref()
                .unwrap_or("")
                .contains("550 no such user")
        );
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
