//! RFC 3464 delivery status notifications: the `message/delivery-status` (or
//! `message/global-delivery-status`) part holds one per-message field block and one block per
//! recipient; the human-readable part can add a better diagnostic for a recipient.

use std::sync::LazyLock;

use mail_parser::{Message, PartType};
use regex::Regex;

use super::text::words::unfold;
use super::{MAX_RECIPIENTS, RecipientReport, field_address, field_blocks, part_is, part_text};

/// Reader name.
pub const NAME: &str = "dsn";

/// What the delivery-status part says.
#[derive(Debug, Default)]
pub struct Dsn {
    /// Per-message `Reporting-MTA`.
    pub reporting_mta: Option<String>,
    /// Per-message `Arrival-Date`.
    pub arrival_date: Option<String>,
    /// Per-message `Received-From-MTA`.
    pub received_from_mta: Option<String>,
    /// One entry per recipient block.
    pub recipients: Vec<RecipientReport>,
    /// Beside each recipient, the words of a comment on its `Status` field, if any (see
    /// [`apply_status_comments`]).
    pub status_comments: Vec<Option<String>>,
}

/// An enhanced status code `class.subject.detail` (RFC 3463).
static STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)([245]\.\d{1,3}\.\d{1,3})(?-u:\b)").expect("fixed pattern")
});

/// The delivery-status part of a message, if it has one: `multipart/report; report-type=delivery-status`
/// or any `message/delivery-status` / `message/global-delivery-status` part in its MIME tree.
pub fn read(message: &Message) -> Option<Dsn> {
    let part = message
        .parts
        .iter()
        .find(|p| is_status_part(p))
        .or_else(|| {
            // A bounce forwarded as an attachment: its status part sits one message down.
            message.parts.iter().find_map(|p| match &p.body {
                PartType::Message(m) => m.parts.iter().find(|q| is_status_part(q)),
                _ => None,
            })
        })?;
    Some(parse(&part_text(part)))
}

/// A recipient block written into the text itself (a report whose MIME structure is broken, or that
/// never had one).
static INLINE_FIELDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?im)^(?:final|original)-recipient:[ \t]*\S[^\n]*\n(?:[^\n]+\n){0,6}?action:")
        .expect("fixed pattern")
});

/// RFC 3464 fields found in the readable text, when the message has no status part; `None` when the
/// text holds no recipient block.
pub fn read_inline(body: &str) -> Option<Dsn> {
    let m = INLINE_FIELDS.find(body)?;
    // Start at the per-message block when one precedes the first recipient block.
    let before = body.get(..m.start()).unwrap_or("");
    let start = before
        .to_ascii_lowercase()
        .rfind("reporting-mta:")
        .unwrap_or(m.start());
    let dsn = parse(body.get(start..).unwrap_or(""));
    (!dsn.recipients.is_empty()).then_some(dsn)
}

/// Whether a MIME part carries RFC 3464 fields.
fn is_status_part(part: &mail_parser::MessagePart) -> bool {
    part_is(part, "message/delivery-status") || part_is(part, "message/global-delivery-status")
}

/// Parses the fields of a delivery-status part.
///
/// A block that names a recipient (`Final-Recipient`, `Original-Recipient`, `X-Actual-Recipient`) is a
/// recipient block, whatever the order of its fields; a block that names several recipients (a
/// missing blank line) is split where a second address field starts. Other blocks are per-message.
pub fn parse(text: &str) -> Dsn {
    let mut dsn = Dsn::default();
    for mut block in field_blocks(text) {
        // Past the limit the report is refused: what follows is not read.
        if dsn.recipients.len() > MAX_RECIPIENTS {
            break;
        }
        for (name, _) in &mut block {
            name.make_ascii_lowercase();
        }
        let is_recipient_block = block.iter().any(|(n, _)| {
            n == "final-recipient" || n == "original-recipient" || n == "x-actual-recipient"
        });
        if !is_recipient_block {
            for (name, value) in &block {
                per_message_field(&mut dsn, name, value);
            }
            continue;
        }
        let mut segment: Vec<(&str, &str)> = Vec::new();
        let mut has_final = false;
        let mut has_original = false;
        let mut has_action = false;
        let mut final_address: Option<String> = None;
        for (name, value) in &block {
            let starts_new = match name.as_str() {
                "final-recipient" => has_final,
                // After a complete final/action pair, an Original-Recipient that names another
                // address opens the next recipient; the same address just completes this one.
                "original-recipient" => {
                    has_original
                        || (has_final
                            && has_action
                            && final_address != field_address(value).map(|a| a.to_lowercase()))
                }
                _ => false,
            };
            if starts_new {
                push_recipient(&mut dsn, &segment);
                segment.clear();
                has_final = false;
                has_original = false;
                has_action = false;
                final_address = None;
            }
            match name.as_str() {
                "final-recipient" => {
                    has_final = true;
                    final_address = field_address(value).map(|a| a.to_lowercase());
                }
                "original-recipient" => has_original = true,
                "action" => has_action = true,
                _ => {}
            }
            segment.push((name.as_str(), value.as_str()));
        }
        push_recipient(&mut dsn, &segment);
    }

    for r in &mut dsn.recipients {
        if let Some(d) = r.diagnostic.take() {
            r.diagnostic = Some(server_words(r, d));
        }
        if r.final_recipient.is_some() && r.final_recipient == r.recipient {
            r.final_recipient = None;
        }
        if r.reporting_mta.is_none() {
            r.reporting_mta = dsn.reporting_mta.clone();
        }
        if r.date.is_none() {
            r.date = dsn.arrival_date.clone();
        }
    }
    dsn
}

/// A `Diagnostic-Code` text as the server's own words: a multi-line reply joined into one, and
/// an MTA's framing before the reply (`delivery temporarily suspended: connect to ...: 421 ...`,
/// `host X said: 550 ...`) moved into `remote_mta` and `command`.
fn server_words(r: &mut RecipientReport, diagnostic: String) -> String {
    use super::text::replies::{join_reply_lines, server_reply};
    let starts_with_code = diagnostic
        .as_bytes()
        .first()
        .is_some_and(|b| matches!(b, b'2'..=b'5'))
        && diagnostic
            .as_bytes()
            .get(1..3)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if starts_with_code {
        return join_reply_lines(&diagnostic);
    }
    let reply = server_reply(&diagnostic);
    if reply.diagnostic.is_empty() || reply.diagnostic == diagnostic {
        return diagnostic;
    }
    if r.remote_mta.is_none() {
        r.remote_mta = reply.remote;
    }
    if r.command.is_none() {
        r.command = reply.command.map(str::to_string);
    }
    reply.diagnostic
}

/// Applies a per-message field; the first occurrence wins.
fn per_message_field(dsn: &mut Dsn, name: &str, value: &str) {
    match name {
        "reporting-mta" if dsn.reporting_mta.is_none() => dsn.reporting_mta = strip_type(value),
        "arrival-date" if dsn.arrival_date.is_none() => dsn.arrival_date = non_empty(value),
        "received-from-mta" if dsn.received_from_mta.is_none() => {
            dsn.received_from_mta = strip_type(value);
        }
        _ => {}
    }
}

/// Builds one recipient from the fields of its block; dropped when it names no address.
fn push_recipient(dsn: &mut Dsn, fields: &[(&str, &str)]) {
    let mut r = RecipientReport::default();
    let mut actual = None;
    let mut original = None;
    let mut comment = None;
    for &(name, value) in fields {
        match name {
            "final-recipient" => r.recipient = field_address(value),
            "original-recipient" => original = field_address(value),
            "x-actual-recipient" => actual = field_address(value),
            "action" => {
                r.action = value
                    .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
                    .find(|w| !w.is_empty())
                    .map(str::to_ascii_lowercase);
            }
            "status" => {
                r.status = STATUS
                    .captures(value)
                    .and_then(|c| c.get(1))
                    .map(|m| m.as_str().to_string());
                comment = status_comment(value);
            }
            "diagnostic-code" => {
                let (kind, diag) = split_diagnostic(value);
                r.diagnostic_type = kind;
                r.diagnostic = diag;
            }
            "remote-mta" => r.remote_mta = strip_type(value),
            "last-attempt-date" => r.date = non_empty(value),
            other => per_message_field(dsn, other, value),
        }
    }
    if r.recipient.is_none() {
        r.recipient = actual;
    }
    // The address the sender used (RFC 3464 2.3.1) is the one on its list; the final one is where
    // an alias or forward led. A local name or an Exchange directory entry in `Original-Recipient`
    // is no such address, unless the final one is no better.
    let sender_used = original
        .as_deref()
        .is_some_and(|a| a.contains('@') && !super::text::addresses::is_directory_entry(a));
    let final_unusable = r
        .recipient
        .as_deref()
        .is_none_or(|a| !a.contains('@') || super::text::addresses::is_directory_entry(a));
    if let Some(original) = original.filter(|_| sender_used || final_unusable) {
        r.final_recipient = r.recipient.replace(original);
    }
    if r.recipient.is_some() {
        dsn.recipients.push(r);
        dsn.status_comments.push(comment);
    }
}

/// Gives a recipient still without any diagnostic (no `Diagnostic-Code`, nothing in the text) the
/// comment on its `Status` field, the only words some MTAs write about it. Run after the text
/// has been searched, which is better evidence.
pub fn apply_status_comments(recipients: &mut [RecipientReport], comments: Vec<Option<String>>) {
    for (r, comment) in recipients.iter_mut().zip(comments) {
        if r.diagnostic.is_none() {
            r.diagnostic = comment;
        }
    }
}

/// The reporting MTA's words in a comment on the `Status` field (`4.0.0 (example.net: host name
/// lookup failure)`), the only diagnostic some MTAs give a recipient they have no reply for. A
/// comment that only restates the class (`(permanent failure)`) says nothing and is dropped.
fn status_comment(value: &str) -> Option<String> {
    let (_, rest) = value.split_once('(')?;
    let comment = rest.rsplit_once(')').map_or(rest, |(c, _)| c);
    let comment = unfold(comment);
    let lower = comment.to_ascii_lowercase();
    let restated = lower
        .strip_suffix("failure")
        .or_else(|| lower.strip_suffix("error"))
        .map(str::trim)
        .is_some_and(|w| {
            matches!(
                w,
                "" | "permanent" | "transient" | "temporary" | "persistent transient" | "delivery"
            )
        });
    (!comment.is_empty()
        && !restated
        && !lower.starts_with("other")
        && !lower.starts_with("undefined"))
    .then_some(comment)
}

/// A trimmed value, `None` when empty.
fn non_empty(value: &str) -> Option<String> {
    let v = unfold(value);
    (!v.is_empty()).then_some(v)
}

/// A host field without its type (`dns; mx.example.net` -> `mx.example.net`).
fn strip_type(value: &str) -> Option<String> {
    let v = match value.split_once(';') {
        Some((_, rest)) => rest,
        None => value,
    };
    let v = v.trim().trim_matches(['[', ']']).trim();
    let v = v.split_whitespace().next().unwrap_or("");
    (!v.is_empty()).then(|| v.to_ascii_lowercase())
}

/// Splits `smtp; 550 5.1.1 text` into the type and the text.
fn split_diagnostic(value: &str) -> (Option<String>, Option<String>) {
    let value = value.trim();
    if let Some((kind, rest)) = value.split_once(';') {
        let kind = kind.trim();
        if !kind.is_empty()
            && kind.len() <= 24
            && kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return (Some(kind.to_ascii_lowercase()), non_empty(rest));
        }
    }
    (None, non_empty(value))
}

/// A diagnostic too thin to classify by: absent, or a few words with no code.
fn is_generic(diagnostic: Option<&str>) -> bool {
    let Some(d) = diagnostic else {
        return true;
    };
    let has_code = REPLY_CODE.is_match(d) || STATUS.is_match(d);
    !has_code && d.split_whitespace().count() < 4
}

/// An SMTP reply code.
static REPLY_CODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u:\b)[245]\d\d(?-u:\b)").expect("fixed pattern"));

/// How much of the human-readable explanation is searched for recipients' paragraphs (bytes).
/// Real explanations are a few KiB; the bound keeps the search from growing with the text.
const EXPLANATION_SCAN: usize = 256 * 1024;

/// How many recipients of one report get their paragraph searched for: each search is a pass over
/// the explanation, so the work of a report stays bounded however many recipients it names.
const PARAGRAPH_SEARCHES: usize = 256;

/// For recipients whose block has no useful `Diagnostic-Code`, takes the recipient's paragraph from the
/// human-readable part as the diagnostic (with the remote host and SMTP command it names).
/// `explanation` is the report's own words, without the returned message quoted after them
/// ([`super::text::Input::explanation`]): a quoted original names the recipient too.
pub fn enrich_from_text(recipients: &mut [RecipientReport], explanation: &str) {
    let body = super::prefix(explanation, EXPLANATION_SCAN);
    if body.is_empty() {
        return;
    }
    if let [only] = &mut *recipients {
        take_transcript_verdict(only, body);
        if only.remote_mta.is_none() {
            only.remote_mta = transcript_host(body);
        }
    }
    if recipients
        .iter()
        .all(|r| !is_generic(r.diagnostic.as_deref()))
    {
        return;
    }
    let lower = body.to_ascii_lowercase();
    enrich_with(recipients, body, &lower);
    if let [only] = recipients
        && only.diagnostic.is_none()
    {
        take_transcript_verdict(only, body);
    }
}

/// The host a Sendmail session transcript names (`... while talking to mx.example.net.:`), the
/// remote MTA when the recipient's block has no `Remote-MTA`.
fn transcript_host(body: &str) -> Option<String> {
    body.lines().find_map(|line| {
        let t = line.trim().trim_start_matches('.').trim_start();
        let rest = super::text::words::strip_prefix_ci(t, "while talking to")?;
        let host = rest.trim().trim_end_matches(':').trim_end_matches('.');
        let plausible = host.contains('.') && !host.contains(char::is_whitespace);
        plausible.then(|| host.to_ascii_lowercase())
    })
}

/// Whether a diagnostic is only a program's exit status (`Diagnostic-Code: X-Unix; 255`): the
/// number says that the local program failed, not how.
fn is_exit_status(diagnostic: Option<&str>) -> bool {
    diagnostic.is_some_and(|d| {
        let d = d.trim();
        !d.is_empty() && d.len() <= 3 && d.bytes().all(|b| b.is_ascii_digit())
    })
}

/// A failure reply line the reporting MTA wrote itself (`554 5.3.0 ...`), not a quoted remote one.
fn is_own_reply(line: &str) -> bool {
    let b = line.as_bytes();
    matches!(b.first(), Some(b'4' | b'5'))
        && b.get(1..3)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && b.get(3) == Some(&b' ')
}

/// Sendmail writes its own verdict on a failed delivery to a program or file as the last reply
/// line of the session transcript (`554 5.3.0 unknown mailer error 255`, `451 4.0.0 Operating
/// system error`), while the `Diagnostic-Code` holds the bare exit status or is missing. For a
/// report's only recipient, that line becomes the diagnostic; an exit status it does not already
/// name is kept at its end.
fn take_transcript_verdict(r: &mut RecipientReport, body: &str) {
    if r.diagnostic.is_some() && !is_exit_status(r.diagnostic.as_deref()) {
        return;
    }
    let Some(at) = body.find("----- Transcript of session follows -----") else {
        return;
    };
    let section = body.get(at..).unwrap_or("");
    let verdict = section
        .lines()
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("-----"))
        .map(str::trim)
        .filter(|l| is_own_reply(l))
        .last();
    if let Some(line) = verdict {
        let exit = r.diagnostic.take().unwrap_or_default();
        let exit = exit.trim();
        let named = exit.is_empty()
            || line
                .split_whitespace()
                .next_back()
                .is_some_and(|w| w == exit);
        let mut diagnostic = if named {
            line.to_string()
        } else {
            format!("{line} (exit status {exit})")
        };
        // The local mailer's own complaint (`mail.local: unknown user: ann`), printed in the
        // transcript before Sendmail's generic verdict, says why.
        if let Some(said) = section
            .lines()
            .skip(1)
            .take_while(|l| !l.trim_start().starts_with("-----"))
            .map(str::trim)
            .find(|l| is_local_mailer_line(l))
        {
            diagnostic = format!("{diagnostic} ({said})");
        }
        r.diagnostic = Some(diagnostic);
    }
}

/// A line a local delivery program printed into a Sendmail transcript: `program.name: message`.
fn is_local_mailer_line(line: &str) -> bool {
    line.split_once(": ").is_some_and(|(program, said)| {
        program.contains('.')
            && program
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && !said.trim().is_empty()
    })
}

/// A header line of a copied message (`To: ...`) or an RFC 3464 field written into the text
/// (`Final-Recipient: ...`), which names a recipient without saying anything about the failure.
static HEADER_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:to|cc|bcc|from|subject|date|message-id|received|delivered-to|return-path|reply-to|x-[a-z0-9-]+|final-recipient|original-recipient|reporting-mta|action|status|remote-mta|diagnostic-code|last-attempt-date|arrival-date)\s*:")
        .expect("fixed pattern")
});

fn enrich_with(recipients: &mut [RecipientReport], body: &str, lower: &str) {
    let single = recipients.len() == 1;
    let mut searches = 0;
    for r in recipients.iter_mut() {
        if !is_generic(r.diagnostic.as_deref()) {
            continue;
        }
        let Some(addr) = r.recipient.as_deref().map(str::to_ascii_lowercase) else {
            continue;
        };
        searches += 1;
        if searches > PARAGRAPH_SEARCHES {
            break;
        }
        let paragraphs = paragraphs_for(body, lower, &addr);
        let with_evidence = paragraphs
            .iter()
            .filter(|p| !HEADER_LINE.is_match(p))
            .find(|p| {
                REPLY_CODE.is_match(p)
                    || STATUS.is_match(p)
                    || super::text::replies::host_said(p).is_some()
            });
        if let Some(paragraph) = with_evidence {
            apply_paragraph(r, paragraph);
            continue;
        }
        if r.diagnostic.is_some() {
            continue;
        }
        if single && let Some(response) = quoted_response(body, lower) {
            apply_paragraph(r, &response);
            if r.diagnostic.is_some() {
                continue;
            }
        }
        // No code anywhere: a sentence about the recipient is still better than nothing.
        let wordy = paragraphs.iter().find(|p| {
            !HEADER_LINE.is_match(p)
                && p.to_ascii_lowercase()
                    .replace(&addr, " ")
                    .split_whitespace()
                    .filter(|w| w.chars().any(char::is_alphabetic))
                    .count()
                    >= 2
        });
        if let Some(paragraph) = wordy {
            let lower_p = paragraph.to_ascii_lowercase();
            let text = lower_p
                .find(&addr)
                .and_then(|at| {
                    let after = paragraph.get(at + addr.len()..)?;
                    let after = after.trim_start_matches('>').trim_start();
                    after.strip_prefix(':')
                })
                .filter(|t| !t.trim().is_empty())
                .unwrap_or(paragraph);
            let diag = unfold(text);
            if !diag.is_empty() {
                r.diagnostic = Some(diag);
            }
        }
    }
}

/// The remote server's answer that a report quotes under its own heading (`The response was:`,
/// `The response from the remote server was:`, as Google writes): the paragraph after the heading,
/// on one line. Those are the server's words, better than the report's sentence about the address.
fn quoted_response(body: &str, lower: &str) -> Option<String> {
    const HEADINGS: [&str; 2] = [
        "the response from the remote server was:",
        "the response was:",
    ];
    let end = HEADINGS
        .iter()
        .find_map(|h| lower.find(h).map(|at| at + h.len()))?;
    let rest = body.get(end..)?.trim_start_matches([' ', '\t', '\r', '\n']);
    let paragraph = rest
        .split("\n\n")
        .next()
        .unwrap_or("")
        .split("\r\n\r\n")
        .next()
        .unwrap_or("");
    let text = unfold(super::prefix(paragraph, 2048));
    (!text.is_empty()).then_some(text)
}

/// For recipients that the delivery-status fields name by no Internet address and that have no
/// `Original-Recipient` address to take its place ([`parse`]), the address that stands for them:
///
/// - a local delivery target (a file or a pipe, as Exim writes for `save to` and `pipe to`
///   failures): the address the bounce's `X-Failed-Recipients` header gives at the same position
///   (or its only address);
/// - a bare local part (`Final-Recipient: rfc822; uma`, as a local mailer reports it): the returned
///   original's one recipient with that local part, the report's own name kept as the final
///   recipient. The original's only recipient is not taken for a name that does not match it: a
///   list's post carries the list's address in `To`.
///
/// The report's own name stays when nothing better is known.
pub fn address_for_unnamed(
    recipients: &mut [RecipientReport],
    failed_header: Option<&str>,
    original_to: Option<&str>,
) {
    let unnamed = |r: &RecipientReport| r.recipient.as_deref().is_none_or(|a| !a.contains('@'));
    if !recipients.iter().any(unnamed) {
        return;
    }
    let addresses_in = |value: Option<&str>| -> Vec<String> {
        value
            .map(super::text::addresses::find_addresses)
            .unwrap_or_default()
            .into_iter()
            .map(|f| f.address)
            .collect()
    };
    let listed = addresses_in(failed_header);
    let to = addresses_in(original_to);
    let count = recipients.len();
    for (i, r) in recipients.iter_mut().enumerate() {
        if !unnamed(r) {
            continue;
        }
        let from_header = if listed.len() == count {
            listed.get(i).cloned()
        } else if listed.len() == 1 {
            listed.first().cloned()
        } else {
            None
        };
        if let Some(address) = from_header {
            r.recipient = Some(address);
            continue;
        }
        let name = r.recipient.as_deref().unwrap_or("").trim();
        let mut same_local = to.iter().filter(|a| {
            a.rsplit_once('@')
                .is_some_and(|(local, _)| local.eq_ignore_ascii_case(name))
        });
        if let (Some(address), None) = (same_local.next(), same_local.next()) {
            r.final_recipient = r.recipient.replace(address.clone());
        }
    }
}

/// Names the SMTP command each failure answered, for recipients whose fields do not say: from the
/// diagnostic, else from the recipient's paragraph in the human-readable text, else (a report about
/// one recipient) from the whole explanation, where Sendmail and Exim print their transcript.
/// `explanation` is the report's own words ([`super::text::Input::explanation`]).
pub fn fill_commands(recipients: &mut [RecipientReport], explanation: &str) {
    use super::text::replies::command_of;
    let single = recipients.len() == 1;
    let explanation = super::prefix(explanation, EXPLANATION_SCAN);
    let mut lower: Option<String> = None;
    let mut searches = 0;
    for r in recipients.iter_mut() {
        if r.command.is_some() {
            continue;
        }
        let mut found = r.diagnostic.as_deref().and_then(command_of);
        if found.is_none()
            && !explanation.is_empty()
            && searches < PARAGRAPH_SEARCHES
            && let Some(addr) = r.recipient.as_deref().map(str::to_ascii_lowercase)
        {
            searches += 1;
            let lower = lower.get_or_insert_with(|| explanation.to_ascii_lowercase());
            found = paragraphs_for(explanation, lower, &addr)
                .iter()
                .find_map(|p| command_of(p));
        }
        if found.is_none() && single {
            found = command_of(explanation);
        }
        r.command = found.map(str::to_string);
    }
}

/// Takes a diagnostic paragraph with a code in it: the remote host, the SMTP command, and the words.
fn apply_paragraph(r: &mut RecipientReport, paragraph: &str) {
    let reply = super::text::replies::server_reply(paragraph);
    if r.remote_mta.is_none() {
        r.remote_mta = reply.remote;
    }
    if r.command.is_none() {
        r.command = reply.command.map(str::to_string);
    }
    if !reply.diagnostic.is_empty() {
        r.diagnostic = Some(reply.diagnostic);
    }
}

/// The paragraphs starting at each line that names `addr` (at most eight), each on one line. A
/// paragraph ends at a blank line or at a line that starts another recipient's entry
/// (`other@example.org: ...`, `<other@example.org>: ...`).
fn paragraphs_for(body: &str, lower: &str, addr: &str) -> Vec<String> {
    let mut out = Vec::new();
    if addr.is_empty() {
        return out;
    }
    let mut from = 0;
    while out.len() < 8 {
        let Some(pos) = lower
            .get(from..)
            .and_then(|l| l.find(addr))
            .map(|p| p + from)
        else {
            break;
        };
        let start = lower
            .get(..pos)
            .and_then(|l| l.rfind('\n'))
            .map_or(0, |i| i + 1);
        let Some(rest) = body.get(start..) else {
            break;
        };
        let end = paragraph_end(rest, addr);
        let paragraph = rest.get(..end).unwrap_or("");
        out.push(unfold(super::prefix(paragraph, 2048)));
        // Continue after the end of this line.
        from = lower
            .get(pos..)
            .and_then(|l| l.find('\n'))
            .map_or(lower.len(), |i| pos + i + 1);
    }
    out
}

/// Where the paragraph at the start of `text` ends: the first blank line, or the first later
/// unindented line that opens the entry of a recipient other than `addr` (lower case).
fn paragraph_end(text: &str, addr: &str) -> usize {
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let t = line.trim();
        if i > 0 && (t.is_empty() || (!line.starts_with([' ', '\t']) && opens_entry(t, addr))) {
            return offset;
        }
        offset += line.len();
    }
    text.len()
}

/// Whether a trimmed line starts with an address other than `addr` and a colon (another
/// recipient's entry).
fn opens_entry(t: &str, addr: &str) -> bool {
    let Some((head, _)) = t.split_once(':') else {
        return false;
    };
    let head = head.trim_start_matches('<').trim_end_matches('>');
    !head.is_empty()
        && head.contains('@')
        && !head.contains(char::is_whitespace)
        && !head.eq_ignore_ascii_case(addr)
}

#[cfg(test)]
mod tests {
    use super::super::text::blocks::cut_original;
    use super::*;

    #[test]
    fn a_transcript_names_the_remote_host() {
        let body = "   ----- Transcript of session follows -----\n... while talking to mx2.example.net.:\n<<< 421\n";
        assert_eq!(transcript_host(body).as_deref(), Some("mx2.example.net"));
        assert_eq!(transcript_host("... while talking to the server\n"), None);
        assert_eq!(transcript_host("no transcript\n"), None);
    }

    #[test]
    fn a_quoted_response_is_the_only_recipients_diagnostic() {
        let body = "** Address not found **\n\nYour message to uma@example.com was not delivered.\n\nThe response was:\n\n550 5.1.1 no such\naccount here\n\nMore help below.\n";
        let mut rs = vec![RecipientReport {
            recipient: Some("uma@example.com".into()),
            status: Some("5.0.0".into()),
            ..RecipientReport::default()
        }];
        enrich_from_text(&mut rs, cut_original(body));
        assert_eq!(
            rs[0].diagnostic.as_deref(),
            Some("550 5.1.1 no such account here")
        );
        let mut two = vec![
            RecipientReport {
                recipient: Some("uma@example.com".into()),
                ..RecipientReport::default()
            },
            RecipientReport {
                recipient: Some("val@example.com".into()),
                ..RecipientReport::default()
            },
        ];
        enrich_from_text(&mut two, cut_original(body));
        assert_ne!(
            two[0].diagnostic.as_deref(),
            Some("550 5.1.1 no such account here")
        );
    }

    #[test]
    fn unindented_reply_lines_continue_the_diagnostic() {
        let text = "Reporting-MTA: dns; mx.example.org\n\nDiagnostic-Code: smtp; 550-5.1.1 first line\n550-5.1.1 second [192.0.2.1]:25 line\n550 5.1.1 last line\nStatus: 5.0.0\nAction: failed\nFinal-Recipient: rfc822; ida@example.org\nstray text after a field\n";
        let dsn = parse(text);
        assert_eq!(dsn.recipients.len(), 1);
        let r = &dsn.recipients[0];
        assert_eq!(
            r.diagnostic.as_deref(),
            Some("550 5.1.1 first line second [192.0.2.1]:25 line last line")
        );
        assert_eq!(r.recipient.as_deref(), Some("ida@example.org"));
    }

    #[test]
    fn a_returned_message_in_the_text_is_not_a_diagnostic() {
        let body = "Your message could not be delivered.\n\nReturn-Path: <news@example.com>\nReceived: from a.example.com\n for\n wes@example.org; Mon, 2 Mar 2026 10:00:00 +0000\nDate: Mon, 2 Mar 2026 10:00:00 +0000\n";
        let mut rs = vec![RecipientReport {
            recipient: Some("wes@example.org".into()),
            ..RecipientReport::default()
        }];
        enrich_from_text(&mut rs, cut_original(body));
        assert_eq!(rs[0].diagnostic, None);
    }

    #[test]
    fn a_local_delivery_target_takes_the_failed_address() {
        let mut rs = vec![RecipientReport {
            recipient: Some("/var/mail/box/xan".into()),
            ..RecipientReport::default()
        }];
        address_for_unnamed(&mut rs, Some(" xan@example.org"), None);
        assert_eq!(rs[0].recipient.as_deref(), Some("xan@example.org"));
        let mut rs = vec![RecipientReport {
            recipient: Some("|/usr/bin/filter".into()),
            ..RecipientReport::default()
        }];
        address_for_unnamed(&mut rs, None, None);
        assert_eq!(rs[0].recipient.as_deref(), Some("|/usr/bin/filter"));
    }

    #[test]
    fn a_bare_local_part_takes_the_originals_matching_address() {
        let named = |name: &str| RecipientReport {
            recipient: Some(name.into()),
            ..RecipientReport::default()
        };
        let mut rs = vec![
            named("Yan"),
            named("zoe@example.org"),
            named("/C=US/S=Quo/"),
        ];
        address_for_unnamed(&mut rs, None, Some("yan@example.org, ana@example.org"));
        let got: Vec<_> = rs
            .iter()
            .map(|r| (r.recipient.as_deref(), r.final_recipient.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("yan@example.org"), Some("Yan")),
                (Some("zoe@example.org"), None),
                (Some("/C=US/S=Quo/"), None)
            ]
        );
        // The original's only recipient is not taken for a name it does not match.
        let mut rs = vec![named("qi")];
        address_for_unnamed(&mut rs, None, Some("list@lists.example.org"));
        assert_eq!(rs[0].recipient.as_deref(), Some("qi"));
    }

    #[test]
    fn field_lines_in_the_text_are_not_a_diagnostic() {
        let body = "Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; vera@example.org\nAction: failed\nStatus: 5.5.0\nLast-Attempt-Date: Mon, 2 Mar 2026 10:00:00 +0000\n";
        let mut rs = vec![RecipientReport {
            recipient: Some("vera@example.org".into()),
            status: Some("5.5.0".into()),
            ..RecipientReport::default()
        }];
        enrich_from_text(&mut rs, cut_original(body));
        assert_eq!(rs[0].diagnostic, None);
    }

    #[test]
    fn a_paragraph_stops_at_the_next_recipient_line() {
        let body = "Delivery failed:\n\nuno@example.org: 550 5.1.1 <uno@example.org>: no such user\ndos@example.org: 552 5.2.2 <dos@example.org>: mailbox full\n";
        let mut rs = vec![
            RecipientReport {
                recipient: Some("uno@example.org".into()),
                status: Some("5.0.0".into()),
                ..RecipientReport::default()
            },
            RecipientReport {
                recipient: Some("dos@example.org".into()),
                status: Some("5.0.0".into()),
                ..RecipientReport::default()
            },
        ];
        enrich_from_text(&mut rs, cut_original(body));
        assert_eq!(
            rs[0].diagnostic.as_deref(),
            Some("550 5.1.1 <uno@example.org>: no such user")
        );
        assert_eq!(
            rs[1].diagnostic.as_deref(),
            Some("552 5.2.2 <dos@example.org>: mailbox full")
        );
    }

    #[test]
    fn commands_from_diagnostic_paragraph_or_transcript() {
        let mut rs = vec![
            RecipientReport {
                recipient: Some("kim@example.net".into()),
                diagnostic: Some(
                    "550 5.7.1 message refused (in reply to end of DATA command)".into(),
                ),
                ..RecipientReport::default()
            },
            RecipientReport {
                recipient: Some("lee@example.org".into()),
                diagnostic: Some("550 5.1.1 unknown".into()),
                ..RecipientReport::default()
            },
        ];
        let body = "Delivery failed.\n\n<lee@example.org>: host mx.example.org[192.0.2.8] said: 550 5.1.1\n    unknown (in reply to RCPT TO command)\n";
        fill_commands(&mut rs, cut_original(body));
        assert_eq!(rs[0].command.as_deref(), Some("DATA"));
        assert_eq!(rs[1].command.as_deref(), Some("RCPT"));

        let mut one = vec![RecipientReport {
            recipient: Some("max@example.com".into()),
            diagnostic: Some("554 5.7.1 rejected".into()),
            ..RecipientReport::default()
        }];
        let body = "   ----- Transcript of session follows -----\n... while talking to mx.example.com.:\n>>> DATA\n<<< 554 5.7.1 rejected\n";
        fill_commands(&mut one, cut_original(body));
        assert_eq!(one[0].command.as_deref(), Some("DATA"));
    }

    #[test]
    fn several_recipients_with_folded_diagnostic() {
        let text = "Reporting-MTA: dns; out.example.org\nArrival-Date: Mon, 2 Mar 2026 10:00:00 +0000\n\n\
Final-Recipient: rfc822; <Alice@Example.COM>\nAction: failed\nStatus: 5.1.1\nRemote-MTA: dns; mx.example.com\n\
Diagnostic-Code: smtp; 550 5.1.1 <Alice@example.com>:\n  Recipient address rejected: no such mailbox\n\
Last-Attempt-Date: Mon, 2 Mar 2026 10:00:05 +0000\n\n\
Final-Recipient: RFC822; bob@example.net\nAction: Delayed\nStatus: 4.2.2 (mailbox full)\n";
        let dsn = parse(text);
        assert_eq!(dsn.reporting_mta.as_deref(), Some("out.example.org"));
        assert_eq!(dsn.recipients.len(), 2);
        let a = &dsn.recipients[0];
        assert_eq!(a.recipient.as_deref(), Some("Alice@example.com"));
        assert_eq!(a.action.as_deref(), Some("failed"));
        assert_eq!(a.diagnostic_type.as_deref(), Some("smtp"));
        assert_eq!(
            a.diagnostic.as_deref(),
            Some("550 5.1.1 <Alice@example.com>: Recipient address rejected: no such mailbox")
        );
        assert_eq!(a.remote_mta.as_deref(), Some("mx.example.com"));
        assert_eq!(a.date.as_deref(), Some("Mon, 2 Mar 2026 10:00:05 +0000"));
        assert_eq!(a.reporting_mta.as_deref(), Some("out.example.org"));
        let b = &dsn.recipients[1];
        assert_eq!(b.action.as_deref(), Some("delayed"));
        assert_eq!(b.status.as_deref(), Some("4.2.2"));
        assert_eq!(b.date.as_deref(), Some("Mon, 2 Mar 2026 10:00:00 +0000"));
    }

    #[test]
    fn blocks_without_blank_lines_and_original_only() {
        let text = "reporting-mta: dns; relay.example.org\n\n\
final-recipient: rfc822; one@example.com\naction: failed\nstatus: 5.0.0\n\
final-recipient: rfc822; two@example.com\naction: failed\nstatus: garbage\n\n\
Original-Recipient: rfc822;three@Example.org\nAction: delivered\nStatus: 2.0.0\n";
        let dsn = parse(text);
        let got: Vec<_> = dsn.recipients.iter().map(|r| r.recipient.clone()).collect();
        assert_eq!(
            got,
            vec![
                Some("one@example.com".to_string()),
                Some("two@example.com".to_string()),
                Some("three@example.org".to_string())
            ]
        );
        assert_eq!(dsn.recipients[1].status, None);
        assert_eq!(dsn.recipients[2].action.as_deref(), Some("delivered"));
    }

    #[test]
    fn fields_before_the_address_belong_to_the_recipient() {
        let text = "Reporting-MTA: dns; 192.0.2.1\n\n\
Diagnostic-Code: smtp; 550 5.1.1 refused\nStatus: 5.1.1\nFinal-Recipient: rfc822; kay@example.com\nAction: failed\n";
        let dsn = parse(text);
        assert_eq!(dsn.recipients.len(), 1);
        let r = &dsn.recipients[0];
        assert_eq!(r.recipient.as_deref(), Some("kay@example.com"));
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert_eq!(r.diagnostic.as_deref(), Some("550 5.1.1 refused"));
        assert_eq!(r.action.as_deref(), Some("failed"));
    }

    #[test]
    fn the_address_the_sender_used_is_the_recipient() {
        let text = "Reporting-MTA: dns; relay.example.net\n\n\
Original-Recipient: rfc822;ola@club.example\nFinal-Recipient: rfc822;ola.berg@mailhost.example.net\n\
Action: failed\nStatus: 5.1.1\n\n\
Original-Recipient: rfc822;pia\nFinal-Recipient: rfc822;pia@club.example\nAction: failed\nStatus: 5.1.1\n\n\
Original-Recipient: rfc822;quin@club.example\nFinal-Recipient: x-local;/var/spool/mail/quin\n\
Action: failed\nStatus: 5.2.2\n";
        let dsn = parse(text);
        let got: Vec<_> = dsn
            .recipients
            .iter()
            .map(|r| (r.recipient.as_deref(), r.final_recipient.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    Some("ola@club.example"),
                    Some("ola.berg@mailhost.example.net")
                ),
                (Some("pia@club.example"), None),
                (Some("quin@club.example"), Some("/var/spool/mail/quin")),
            ]
        );
    }

    #[test]
    fn original_recipient_after_action_for_the_same_address() {
        let text = "Action: failed\nFinal-Recipient: rfc822; lu@example.com\n\
Original-Recipient: rfc822; lu@example.com\nStatus: 5.2.2\n";
        let dsn = parse(text);
        assert_eq!(dsn.recipients.len(), 1);
        assert_eq!(dsn.recipients[0].status.as_deref(), Some("5.2.2"));
    }

    #[test]
    fn generic_diagnostic_takes_postfix_paragraph() {
        let mut recips = vec![RecipientReport {
            recipient: Some("carol@example.com".into()),
            diagnostic: None,
            ..Default::default()
        }];
        let body = "I'm sorry.\n\n<carol@example.com>: host mx1.example.com[192.0.2.7] said: 550 5.1.1\n    <carol@example.com>: unknown user (in reply to RCPT TO command)\n\nbye\n";
        enrich_from_text(&mut recips, cut_original(body));
        let r = &recips[0];
        assert_eq!(r.remote_mta.as_deref(), Some("mx1.example.com"));
        assert_eq!(r.command.as_deref(), Some("RCPT"));
        assert_eq!(
            r.diagnostic.as_deref(),
            Some("550 5.1.1 <carol@example.com>: unknown user")
        );
    }

    #[test]
    fn an_exit_status_gives_way_to_the_transcript_verdict() {
        let body = "   ----- The following addresses had permanent fatal errors -----\n\
\"|/usr/local/bin/sorter\"\n    (reason: 75)\n    (expanded from: <rex@example.org>)\n\n\
   ----- Transcript of session follows -----\nsorter: cannot open spool\n\
451 4.3.0 Temporary local failure\n";
        let exit = |code: &str| {
            vec![RecipientReport {
                recipient: Some("rex@example.org".into()),
                diagnostic_type: Some("X-Unix".into()),
                diagnostic: Some(code.into()),
                ..Default::default()
            }]
        };
        let mut one = exit("75");
        enrich_from_text(&mut one, cut_original(body));
        assert_eq!(
            one[0].diagnostic.as_deref(),
            Some("451 4.3.0 Temporary local failure (exit status 75)")
        );
        let named = body.replace("Temporary local failure", "unknown mailer error 255");
        let mut two = exit("255");
        enrich_from_text(&mut two, cut_original(&named));
        assert_eq!(
            two[0].diagnostic.as_deref(),
            Some("451 4.3.0 unknown mailer error 255")
        );
        let mut silent = exit("75");
        silent[0].diagnostic = None;
        enrich_from_text(&mut silent, cut_original(body));
        assert_eq!(
            silent[0].diagnostic.as_deref(),
            Some("451 4.3.0 Temporary local failure")
        );
        // Two recipients: the transcript cannot say whose verdict the line is.
        let mut both = exit("75");
        both.extend(exit("64"));
        enrich_from_text(&mut both, cut_original(body));
        assert_eq!(both[0].diagnostic.as_deref(), Some("75"));
    }

    #[test]
    fn the_local_mailers_complaint_joins_the_transcript_verdict() {
        let body = "   ----- The following addresses had permanent fatal errors -----\n<pat@example.net>\n\n\
   ----- Transcript of session follows -----\nmail.local: unknown user: pat\n\
554 <pat@example.net>... Service unavailable\n";
        let mut one = vec![RecipientReport {
            recipient: Some("pat@example.net".into()),
            ..Default::default()
        }];
        enrich_from_text(&mut one, cut_original(body));
        assert_eq!(
            one[0].diagnostic.as_deref(),
            Some("554 <pat@example.net>... Service unavailable (mail.local: unknown user: pat)")
        );
        assert!(is_local_mailer_line("mail.local: unknown user: pat"));
        assert!(!is_local_mailer_line("sorter: cannot open spool"));
        assert!(!is_local_mailer_line(
            "... while talking to mx.example.net.:"
        ));
        assert!(!is_local_mailer_line("mail.local: "));
    }

    #[test]
    fn a_status_comment_is_the_diagnostic_of_last_resort() {
        assert_eq!(
            status_comment("4.0.0 (relay.example.net: host name lookup failure)").as_deref(),
            Some("relay.example.net: host name lookup failure")
        );
        assert_eq!(status_comment("5.0.0 (permanent failure)"), None);
        assert_eq!(status_comment("4.4.7 (Transient Failure)"), None);
        assert_eq!(status_comment("5.1.1"), None);
        assert_eq!(status_comment("5.0.0 ()"), None);
        let mut dsn = Dsn::default();
        push_recipient(
            &mut dsn,
            &[
                ("final-recipient", "rfc822; sol@example.net"),
                ("action", "delayed"),
                ("status", "4.0.0 (example.net: host name lookup failure)"),
            ],
        );
        push_recipient(
            &mut dsn,
            &[
                ("final-recipient", "rfc822; tim@example.net"),
                ("status", "5.0.0 (no route)"),
                ("diagnostic-code", "smtp; 550 no such user"),
            ],
        );
        assert_eq!(dsn.recipients[0].diagnostic, None);
        let comments = std::mem::take(&mut dsn.status_comments);
        apply_status_comments(&mut dsn.recipients, comments);
        assert_eq!(
            dsn.recipients[0].diagnostic.as_deref(),
            Some("example.net: host name lookup failure")
        );
        assert_eq!(
            dsn.recipients[1].diagnostic.as_deref(),
            Some("550 no such user")
        );
    }

    #[test]
    fn header_copy_is_skipped_for_a_sentence_about_the_recipient() {
        let mut recips = vec![RecipientReport {
            recipient: Some("mo@example.com".into()),
            ..Default::default()
        }];
        let body = "Original header:\n  To: mo@example.com\n\n\
mo@example.com: Envelope expired after five days\n";
        enrich_from_text(&mut recips, cut_original(body));
        assert_eq!(
            recips[0].diagnostic.as_deref(),
            Some("Envelope expired after five days")
        );
    }

    #[test]
    fn specific_diagnostic_is_kept() {
        let mut recips = vec![RecipientReport {
            recipient: Some("dan@example.com".into()),
            diagnostic: Some("550 5.2.2 mailbox is full".into()),
            ..Default::default()
        }];
        enrich_from_text(
            &mut recips,
            cut_original("<dan@example.com>: host x said: 550 other\n"),
        );
        assert_eq!(
            recips[0].diagnostic.as_deref(),
            Some("550 5.2.2 mailbox is full")
        );
    }
}
