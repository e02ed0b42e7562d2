//! What a message says: the failed recipients, their codes and diagnostics, and the returned original.
//!
//! No classification happens here. [`read`] picks a reader by the message's shape: a DSN
//! (`multipart/report; report-type=delivery-status`), an ARF feedback report, an auto-reply, a
//! free-text MTA report (see [`text`]), or nothing ([`Kind::NotBounce`]).

pub mod arf;
pub mod autoreply;
pub mod bounds;
pub mod dsn;
mod signals;
pub mod statements;
pub mod text;
pub mod verp;

pub use signals::{
    bounce_sender_or_subject, has_failure_wording, looks_like_bounce, states_non_delivery,
};

use std::borrow::Cow;
use std::sync::LazyLock;

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{HeaderName, Message, MessageParser, MimeHeaders, PartType};
use regex::Regex;
use serde::Serialize;

use crate::address::{self, Address};
use crate::classify::Reason;
use crate::error::ReadError;
use text::words::{starts_with_ci, unfold};

/// The largest message [`read`] parses by default (bytes); larger input gets [`ReadError::TooLarge`].
pub const DEFAULT_MAX_SIZE: usize = 50 * 1024 * 1024;

/// The deepest nesting of MIME parts and attached messages [`read`] accepts; deeper input gets
/// [`ReadError::TooDeep`]. Real reports nest a handful of levels (a bounce of a forwarded bounce
/// stays under ten).
pub const MAX_NESTING: usize = 64;

/// The most recipients one report may name; more gets [`ReadError::TooManyRecipients`]. Real
/// reports name one, sometimes a few hundred (a list message refused for a whole domain).
pub const MAX_RECIPIENTS: usize = 2000;

/// What kind of message this is, decided before any recipient is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An RFC 3464 delivery status notification.
    Dsn,
    /// A free-text failure report from an MTA or a provider.
    Text,
    /// An RFC 5965 (ARF) feedback report: a complaint.
    Feedback,
    /// An automatic reply (RFC 3834 or out-of-office wording).
    Autoreply,
    /// Not a bounce, complaint or auto-reply.
    NotBounce,
    /// Could not be read at all (too large, not a message): set by the analysis, never by a reader.
    Error,
}

impl Kind {
    /// The name used in JSON output and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dsn => "dsn",
            Kind::Text => "text",
            Kind::Feedback => "feedback",
            Kind::Autoreply => "autoreply",
            Kind::NotBounce => "not_bounce",
            Kind::Error => "error",
        }
    }
}

/// Options for [`read_with`].
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Messages larger than this many bytes are refused unread.
    pub max_size: usize,
    /// VERP separator between the list's local part and the encoded recipient (`list-bounces+user=host@...`).
    pub verp_separator: char,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_size: DEFAULT_MAX_SIZE,
            verp_separator: '+',
        }
    }
}

/// Everything [`read`] learned from one message.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// The message's kind.
    pub kind: Option<Kind>,
    /// The reader that recognised the message (`dsn`, `arf`, `autoreply`, `postfix`, `generic`, ...).
    pub reader: &'static str,
    /// One entry per recipient the report speaks of, in the order the report gives them.
    pub recipients: Vec<RecipientReport>,
    /// The per-message `Reporting-MTA` (or the host named by a text report).
    pub reporting_mta: Option<String>,
    /// The per-message `Arrival-Date`.
    pub arrival_date: Option<String>,
    /// The bounce's own `Date` header.
    pub date: Option<String>,
    /// The bounce's own `Subject`.
    pub subject: Option<String>,
    /// The bounce's own `From` address.
    pub from: Option<String>,
    /// The returned original message, when the report carries it (whole or headers only).
    pub original: Option<Original>,
    /// A DSN's human-readable notice (its first text part), when short: the classifier reads it
    /// beside the machine fields, so that a report contradicting itself is never taken as hard.
    pub notice: Option<String>,
    /// The recipient the bounce's own address names when the list sends with VERP, decoded: the
    /// one subscriber this report can be about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verp: Option<String>,
}

/// What a report says about one recipient.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecipientReport {
    /// The failed address as the sender wrote it (from `Original-Recipient` when that is an address,
    /// else `Final-Recipient`, else the text, else VERP), with its domain lower-cased.
    pub recipient: Option<String>,
    /// `Final-Recipient`, when it differs from `recipient`: where an alias or forward led.
    pub final_recipient: Option<String>,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded` (given or inferred).
    pub action: Option<String>,
    /// The `Status` field or a code taken from the text, as written (`5.1.1`).
    pub status: Option<String>,
    /// The diagnostic type (`smtp`, `x-unix`, ...), from `Diagnostic-Code: type; text`.
    pub diagnostic_type: Option<String>,
    /// The remote server's words, unfolded and trimmed.
    pub diagnostic: Option<String>,
    /// The host that refused (from `Remote-MTA` or the text).
    pub remote_mta: Option<String>,
    /// The host that wrote the report (`Reporting-MTA`, per message).
    pub reporting_mta: Option<String>,
    /// The SMTP command the failure answered (`CONN`, `EHLO`, `MAIL`, `RCPT`, `DATA`, ...), when the text says.
    pub command: Option<String>,
    /// `Last-Attempt-Date`, else `Arrival-Date`.
    pub date: Option<String>,
    /// ARF `Feedback-Type` (`abuse`, `fraud`, ...), for feedback reports only.
    pub feedback_type: Option<String>,
    /// A reason the reader itself can vouch for (a format whose wording names the failure exactly);
    /// the classifier's rules may still override it.
    pub reason_hint: Option<Reason>,
}

/// The identity of the message that bounced, for tying a bounce back to a send.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Original {
    /// `Message-ID`, without angle brackets.
    pub message_id: Option<String>,
    /// `From` address.
    pub from: Option<String>,
    /// `To` addresses, comma-separated.
    pub to: Option<String>,
    /// `Subject`, decoded.
    pub subject: Option<String>,
    /// `List-Id`.
    pub list_id: Option<String>,
    /// `X-Listmonk-Campaign`: the campaign the message was sent for, when a list manager says.
    pub campaign: Option<String>,
}

/// The message parser, configured once. Only what the readers need is parsed into structures:
/// the MIME fields (the message's structure), `From`, `Message-ID` and `Subject`; every other
/// header is only located, not copied or decoded (readers take it raw, by its offsets, with
/// `header_raw`; nothing here reads the parts of `Received`, the costliest header to parse, and
/// address lists are read by [`address::address_list`], bounded). The fields parsed into
/// structures are bounded by [`bounds`] before the parser runs, and what no reader reads (trace and
/// signature fields, a returned original's bodies, media, an alternative's HTML beside its plain
/// text) is left out of what it is given.
static PARSER: LazyLock<MessageParser> =
    LazyLock::new(|| identity_fields(MessageParser::new().with_mime_headers()));

/// `parser` set to parse the fields a message's identity is read from (`From`, `Message-ID`,
/// `Subject`) and only to locate the others.
fn identity_fields(parser: MessageParser) -> MessageParser {
    parser
        .header_address(HeaderName::From)
        .header_id(HeaderName::MessageId)
        .header_text(HeaderName::Subject)
        .default_header_ignore()
}

/// Reads one message with the default options. Never panics, whatever the bytes.
pub fn read(bytes: &[u8]) -> Result<Report, ReadError> {
    read_with(bytes, &ReadOptions::default())
}

/// Reads one message: decides its kind and extracts every recipient the report names.
///
/// The order is: ARF feedback report, DSN, free-text report, auto-reply, then (for a message that
/// looks like a bounce but names no recipient) VERP, else not a bounce.
pub fn read_with(bytes: &[u8], opts: &ReadOptions) -> Result<Report, ReadError> {
    if bytes.len() > opts.max_size {
        return Err(ReadError::TooLarge {
            size: bytes.len(),
            limit: opts.max_size,
        });
    }
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ReadError::Empty);
    }
    let bytes = normalize_line_endings(bytes);
    let bytes = repair_folded_boundary(bytes);
    let unread = bounds::check(&bytes)?;
    let bytes = without(bytes, &unread);
    // mail-parser checks its own invariants with `debug_assert!`, which input can break (a multipart
    // whose part ids go astray): such a message is malformed, not a reason to stop the worker.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        PARSER.parse(bytes.as_ref())
    }));
    let message = match parsed {
        Ok(Some(message)) => message,
        Ok(None) => {
            return Err(ReadError::Malformed(
                "no header could be parsed".to_string(),
            ));
        }
        Err(_) => {
            return Err(ReadError::Malformed(
                "the MIME structure is inconsistent".to_string(),
            ));
        }
    };
    if message.headers().is_empty() {
        return Err(ReadError::Malformed(
            "no header could be parsed".to_string(),
        ));
    }
    let depth = nesting_depth(&message, MAX_NESTING);
    if depth > MAX_NESTING {
        dismantle(message);
        return Err(ReadError::TooDeep {
            depth,
            limit: MAX_NESTING,
        });
    }

    let subject = message.subject().map(unfold).unwrap_or_default();
    let from = first_address(&message).unwrap_or_default();
    let parts = text::text_parts(&message);
    let body = text::join_text_parts(&message, &parts);
    let input = text::Input::new(&message, &subject, &from, &body);
    let mut report = Report {
        kind: Some(Kind::NotBounce),
        reader: "none",
        date: message.header_raw("Date").map(unfold),
        subject: (!subject.is_empty()).then(|| subject.clone()),
        from: (!from.is_empty()).then(|| from.clone()),
        original: original_of(&message, &body, input.returned_original()),
        verp: verp::recipient(&message, opts.verp_separator),
        ..Report::default()
    };

    if let Some(found) = arf::read(&message, report.original.as_ref()) {
        too_many(found.recipients.len())?;
        report.kind = Some(Kind::Feedback);
        report.reader = arf::NAME;
        if report.date.is_none() {
            report.date = found.date.clone();
        }
        report.reporting_mta = found.reporting_mta;
        report.arrival_date = found.date;
        report.recipients = found.recipients;
        return Ok(report);
    }

    let found = dsn::read(&message)
        .filter(|d| !d.recipients.is_empty())
        .or_else(|| dsn::read_inline(&body));

    if let Some(mut found) = found
        && !found.recipients.is_empty()
    {
        too_many(found.recipients.len())?;
        dsn::enrich_from_text(&mut found.recipients, input.explanation);
        dsn::fill_commands(&mut found.recipients, input.explanation);
        dsn::address_for_unnamed(
            &mut found.recipients,
            message.header_raw("X-Failed-Recipients"),
            report.original.as_ref().and_then(|o| o.to.as_deref()),
        );
        let comments = std::mem::take(&mut found.status_comments);
        dsn::apply_status_comments(&mut found.recipients, comments);
        borrow_format_hints(&mut found.recipients, &input);
        report.kind = Some(Kind::Dsn);
        report.reader = dsn::NAME;
        report.notice = dsn_notice(&message, parts.first());
        report.reporting_mta = found.reporting_mta;
        report.arrival_date = found.arrival_date;
        report.recipients = found.recipients;
        return Ok(report);
    }

    if let Some((reader, recipients)) = text::read(&input).or_else(|| read_generic(&input)) {
        too_many(recipients.len())?;
        report.kind = Some(Kind::Text);
        report.reader = reader;
        report.reporting_mta = text::replies::reporting_host(&body);
        report.recipients = recipients;
        return Ok(report);
    }

    if autoreply::detect(&input) {
        report.kind = Some(Kind::Autoreply);
        report.reader = autoreply::NAME;
        report.recipients = autoreply::read(&input);
        too_many(report.recipients.len())?;
        return Ok(report);
    }

    if looks_like_bounce(&input) && states_non_delivery(&input) {
        // The report names nobody: the list manager's own VERP address outranks the returned
        // original's `To`, which may be the list's address.
        report.kind = Some(Kind::Text);
        if let Some(recipient) = report.verp.clone() {
            report.reader = verp::NAME;
            report
                .recipients
                .push(text::generic::verp_recipient(recipient, &input));
        } else {
            let found = text::generic::original_recipients_of(&input);
            too_many(found.len())?;
            if !found.is_empty() {
                report.reader = text::NAME;
                report.reporting_mta = text::replies::reporting_host(&body);
                report.recipients = found;
            }
        }
        return Ok(report);
    }

    Ok(report)
}

/// The general reader, for a report in no family's format. It needs a bounce that says delivery
/// failed; an automatic reply without failure evidence is not one, even with a null sender.
fn read_generic(input: &text::Input) -> Option<(&'static str, Vec<RecipientReport>)> {
    if !looks_like_bounce(input) || !states_non_delivery(input) || autoreply::detect(input) {
        return None;
    }
    let found = text::generic::read(input);
    (!found.is_empty()).then_some((text::NAME, found))
}

/// Free-text formats whose notification part names the reason in fixed sentences beside a
/// delivery-status part that only says `5.0.0`: the Japanese carriers' reports.
const DSN_HINT_FAMILIES: &[&str] = &["ezweb", "kddi", "biglobe"];

/// A DSN whose human-readable part is in one of [`DSN_HINT_FAMILIES`] keeps the reason that
/// format's reader vouches for: each recipient without a hint and without a specific status takes
/// the hint the format's reader gives the same address.
fn borrow_format_hints(recipients: &mut [RecipientReport], input: &text::Input) {
    let generic = |r: &RecipientReport| {
        r.reason_hint.is_none()
            && r.status.as_deref().is_none_or(|s| {
                let s = s.trim();
                s.is_empty() || s.get(1..).is_some_and(|rest| rest.starts_with(".0.0"))
            })
    };
    if !recipients.iter().any(generic) {
        return;
    }
    let Some(found) = text::FAMILIES
        .iter()
        .filter(|f| DSN_HINT_FAMILIES.contains(&f.name) && (f.detect)(input))
        .map(|f| (f.read)(input))
        .find(|found| !found.is_empty())
    else {
        return;
    };
    for r in recipients.iter_mut().filter(|r| generic(r)) {
        r.reason_hint = found
            .iter()
            .find(|f| f.recipient.is_some() && f.recipient == r.recipient)
            .and_then(|f| f.reason_hint);
    }
}

/// Longest DSN notice kept for the classifier (bytes): a notice longer than this is a template, not
/// a statement about one failure.
const MAX_NOTICE: usize = 1024;

/// The first text part of a `multipart/report`, trimmed, when it is short and not the status part.
/// `first` is that part as [`text::text_parts`] decoded it, when it did.
fn dsn_notice(message: &Message, first: Option<&Option<Cow<'_, str>>>) -> Option<String> {
    let root_is_report = message.content_type().is_some_and(|ct| {
        ct.subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    if !root_is_report {
        return None;
    }
    let decoded;
    let text = match first {
        Some(Some(text)) => text.as_ref(),
        _ => {
            decoded = message.body_text(0)?;
            decoded.as_ref()
        }
    };
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_NOTICE {
        return None;
    }
    let is_fields = text.lines().any(|l| {
        let l = l.trim_start();
        starts_with_ci(l, "final-recipient:") || starts_with_ci(l, "reporting-mta:")
    });
    (!is_fields).then(|| text.to_string())
}

/// Refuses a report that names more than [`MAX_RECIPIENTS`] recipients.
fn too_many(count: usize) -> Result<(), ReadError> {
    if count > MAX_RECIPIENTS {
        return Err(ReadError::TooManyRecipients {
            count,
            limit: MAX_RECIPIENTS,
        });
    }
    Ok(())
}

/// How deeply the MIME parts and attached messages of `message` nest (the root alone is 1), walked
/// without recursion; the walk stops once it passes `limit`.
fn nesting_depth(message: &Message, limit: usize) -> usize {
    let mut deepest = 0;
    // (message, part index, depth of that part)
    let mut stack: Vec<(&Message, usize, usize)> = vec![(message, 0, 1)];
    let mut visited = 0usize;
    while let Some((m, index, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        visited += 1;
        if deepest > limit || visited > 1_000_000 {
            break;
        }
        let Some(part) = m.parts.get(index) else {
            continue;
        };
        match &part.body {
            PartType::Multipart(children) => {
                for &child in children {
                    let child = child as usize;
                    // Sub-parts always come after their parent; anything else is not a tree.
                    if child > index {
                        stack.push((m, child, depth + 1));
                    }
                }
            }
            PartType::Message(nested) => stack.push((nested, 0, depth + 1)),
            _ => {}
        }
    }
    deepest
}

/// Drops a parsed message without recursion: attached messages nested thousands deep would
/// otherwise be dropped frame by frame, each level one stack frame deeper.
fn dismantle(message: Message) {
    let mut pending = vec![message];
    while let Some(mut m) = pending.pop() {
        for part in &mut m.parts {
            if matches!(part.body, PartType::Message(_))
                && let PartType::Message(inner) =
                    std::mem::replace(&mut part.body, PartType::Multipart(Vec::new()))
            {
                pending.push(inner);
            }
        }
    }
}

/// The first `max` bytes of `s`, cut on a char boundary.
pub(crate) fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// The input with lone CR line endings turned into LF, and a final newline added when missing;
/// borrowed unchanged in the common case.
fn normalize_line_endings(bytes: &[u8]) -> Cow<'_, [u8]> {
    let lone_cr = memchr::memchr_iter(b'\r', bytes).any(|i| bytes.get(i + 1) != Some(&b'\n'));
    let trailing = bytes.last().is_some_and(|&b| b == b'\n');
    if !lone_cr && trailing {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + 1);
    if lone_cr {
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if b == b'\r' {
                out.push(b'\n');
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            } else {
                out.push(b);
            }
            i += 1;
        }
    } else {
        out.extend_from_slice(bytes);
    }
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    Cow::Owned(out)
}

/// `bytes` without the `spans` (in order, not overlapping); borrowed unchanged when there are none.
fn without<'a>(bytes: Cow<'a, [u8]>, spans: &[std::ops::Range<usize>]) -> Cow<'a, [u8]> {
    if spans.is_empty() {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut last = 0;
    for span in spans {
        out.extend_from_slice(bytes.get(last..span.start).unwrap_or_default());
        last = span.end.max(last);
    }
    out.extend_from_slice(bytes.get(last..).unwrap_or_default());
    Cow::Owned(out)
}

/// The input with every `boundary=` parameter that an MTA wrote on an unindented line under a
/// `Content-Type: multipart/...;` line (which ends the header there and leaves the parser without a
/// boundary, so with an empty body) indented as the continuation it was meant to be. Borrowed
/// unchanged when there is none.
fn repair_folded_boundary(bytes: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    let folds = folded_boundaries(&bytes);
    if folds.is_empty() {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len() + folds.len());
    let mut last = 0;
    for at in folds {
        out.extend_from_slice(bytes.get(last..at).unwrap_or_default());
        out.push(b'\t');
        last = at;
    }
    out.extend_from_slice(bytes.get(last..).unwrap_or_default());
    Cow::Owned(out)
}

/// Offsets of the lines that start with `boundary=` right after a line ending in `;` that is a
/// multipart `Content-Type` (or a continuation of a header).
fn folded_boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut previous: &[u8] = &[];
    let mut offset = 0;
    for raw in lines_inclusive(bytes) {
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let starts = line
            .get(..9)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"boundary="));
        if starts {
            let prev = previous.trim_ascii_end();
            let continues_type = prev.ends_with(b";")
                && (prev.starts_with(b" ")
                    || prev.starts_with(b"\t")
                    || prev
                        .windows(10)
                        .any(|w| w.eq_ignore_ascii_case(b"multipart/")));
            if continues_type {
                out.push(offset);
            }
        }
        previous = line;
        offset += raw.len();
    }
    out
}

/// The lines of `bytes`, each with its `\n` (the last without one when the input does not end
/// in one), as `split_inclusive` gives them, found with `memchr` rather than byte by byte.
pub(crate) fn lines_inclusive(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

/// The first `From` address of a message, lower-cased.
fn first_address(message: &Message) -> Option<String> {
    message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_lowercase)
}

/// The recipient an address field of a report names (`rfc822; <User@Example.COM>`,
/// `rfc822; "john..doe"@example.org`, Exchange's `rfc822; SMTP:ann@example.org`): the address as
/// [`Address`] prints it, with the MTA's dressing taken off; else the one address
/// the value holds among other words or quotes; else, for a local delivery target that is no
/// address (`/var/mail/box`, `|/usr/bin/filter`), the value without its type and brackets, which a
/// later step may replace. `None` when nothing usable is left.
///
/// Idempotent: an address it returns parses to itself, and a target holds no white space, no `<`,
/// no surrounding quote or comma, and no `type;` prefix, so a second pass changes nothing.
pub fn field_address(value: &str) -> Option<String> {
    if let Ok(address) = Address::parse(value) {
        return Some(text::addresses::mta_form(address).to_string());
    }
    let junk = |c: char| c == '"' || c == '\'' || c.is_whitespace() || c == ',';
    let mut v = value.trim();
    if let Some((kind, rest)) = v.split_once(';')
        && !kind.contains('@')
        && !kind.contains('<')
    {
        v = rest.trim();
    }
    if let Some(found) = text::addresses::first_address(v) {
        return Some(found);
    }
    if let Some(close) = v.find('>') {
        // The innermost `<` before the first `>`: `<<a@b>` and `<x <a@b>>` give `a@b`.
        if let Some(open) = v.get(..close).and_then(|head| head.rfind('<')) {
            v = v.get(open + 1..close).unwrap_or("");
        }
    }
    if let Some(open) = v.rfind('<') {
        v = v.get(open + 1..).unwrap_or("");
    }
    let mut v = v.trim_matches(junk).split_whitespace().next().unwrap_or("");
    // A type (or any text without an `@`) left before a `;` is not part of the target.
    loop {
        let t = v.trim_matches(junk);
        match t.split_once(';') {
            Some((kind, rest)) if !kind.contains('@') => v = rest,
            _ => {
                v = t;
                break;
            }
        }
    }
    if v.is_empty() {
        return None;
    }
    if let Ok(address) = Address::parse(v) {
        return Some(address.to_string());
    }
    Some(match v.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            format!("{local}@{}", domain.to_lowercase())
        }
        _ => v.to_string(),
    })
}

/// An address as a parsed header gives it (local part unquoted, then `@` and the domain), printed
/// by [`Address`]; `None` when it is no mailbox address.
pub(crate) fn header_address(value: &str) -> Option<String> {
    let (local, domain) = value.trim().rsplit_once('@')?;
    Address::from_parts(local, domain)
        .ok()
        .map(|a| a.to_string())
}

/// Header-like field blocks (RFC 3464 / RFC 5965 bodies), one at a time: blank lines separate
/// blocks, continuation lines are unfolded with one space, names are kept as written. Lazy, so a
/// reader that has enough stops reading.
pub(crate) fn field_blocks(text: &str) -> impl Iterator<Item = Vec<(String, String)>> + '_ {
    let mut lines = text.lines();
    std::iter::from_fn(move || {
        let mut current: Vec<(String, String)> = Vec::new();
        for line in lines.by_ref() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                if !current.is_empty() {
                    return Some(current);
                }
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = current.last_mut() {
                    let more = line.trim();
                    if !value.is_empty() {
                        value.push(' ');
                    }
                    value.push_str(more);
                }
                continue;
            }
            let field = line.split_once(':').and_then(|(name, value)| {
                let name = name.trim();
                (!name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
                .then_some((name, value))
            });
            match field {
                Some((name, value)) => current.push((name.to_string(), value.trim().to_string())),
                // Some MTAs write the further lines of a multi-line reply unindented; outside a
                // field's shape they can only continue the diagnostic.
                None => {
                    if let Some((name, value)) = current.last_mut()
                        && name.eq_ignore_ascii_case("diagnostic-code")
                    {
                        if !value.is_empty() {
                            value.push(' ');
                        }
                        value.push_str(line.trim());
                    }
                }
            }
        }
        (!current.is_empty()).then_some(current)
    })
}

/// Whether a part's content type is `wanted` (lower-case `type/subtype`; a part without one is
/// `message/rfc822` when the parser read it as a message, else `text/plain`). Compared in place,
/// without building the type's name: readers ask it of every part.
pub(crate) fn part_is(part: &mail_parser::MessagePart, wanted: &str) -> bool {
    let (ctype, sub) = wanted.split_once('/').unwrap_or((wanted, ""));
    match part.content_type() {
        Some(ct) => {
            ct.ctype().eq_ignore_ascii_case(ctype)
                && ct.subtype().unwrap_or("").eq_ignore_ascii_case(sub)
        }
        None => match part.body {
            PartType::Message(_) => wanted == "message/rfc822",
            _ => wanted == "text/plain",
        },
    }
}

/// A part's body as text: text parts as decoded, binary parts as lossy UTF-8.
pub(crate) fn part_text<'a>(part: &'a mail_parser::MessagePart) -> Cow<'a, str> {
    match &part.body {
        PartType::Text(t) | PartType::Html(t) => Cow::Borrowed(t.as_ref()),
        PartType::Binary(b) | PartType::InlineBinary(b) => decode_bytes(part, b),
        PartType::Message(m) => String::from_utf8_lossy(m.raw_message()),
        PartType::Multipart(_) => Cow::Borrowed(""),
    }
}

/// Bytes of a part that mail-parser left undecoded (`message/delivery-status` and the like): UTF-8
/// when they are, else the part's declared charset, else ISO-2022-JP when its escapes appear, else
/// lossy UTF-8.
fn decode_bytes<'a>(part: &mail_parser::MessagePart, bytes: &'a [u8]) -> Cow<'a, str> {
    if let Ok(text) = std::str::from_utf8(bytes)
        && !text.contains("\x1b$")
    {
        return Cow::Borrowed(text);
    }
    let declared = part
        .content_type()
        .and_then(|ct| ct.attribute("charset"))
        .map(str::as_bytes);
    let jis = bytes.windows(2).any(|w| w == b"\x1b$");
    let charset: Option<&[u8]> = declared.or(jis.then_some(b"iso-2022-jp".as_slice()));
    match charset.and_then(charset_decoder) {
        Some(decode) => Cow::Owned(decode(bytes)),
        None => String::from_utf8_lossy(bytes),
    }
}

/// Markers after which text reports copy the returned message inline.
static INLINE_ORIGINAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)original message|copy of the (?:original )?message|below this line is a copy|returned message|message headers? follows?|headers of the original|undelivered message|message that caused|nachrichtenkopfzeilen|en-têtes de message d'origine|encabezados del mensaje original|intestazioni originali",
    )
    .expect("fixed pattern")
});

/// How many of a text's markers of an inline copy of the original are tried, and how much of the
/// header block after one is read (bytes): a real report has one marker and a header of a few KiB;
/// the bounds keep a text of repeated markers from costing a pass over the rest for each.
const INLINE_TRIES: usize = 16;
const INLINE_HEADER: usize = 64 * 1024;

/// The returned original message: an attached message or header part, else an inline copy (after
/// a marker, or `returned`, what follows the report's explanation).
fn original_of(message: &Message, body: &str, returned: &str) -> Option<Original> {
    for part in message.parts.iter().skip(1) {
        if let PartType::Message(nested) = &part.body
            && let Some(o) = original_from(nested)
        {
            return Some(o);
        }
    }
    for part in message.parts.iter().skip(1) {
        // Some MTAs attach the returned header as a plain-text file.
        let attached_text = part_is(part, "text/plain")
            && part
                .content_disposition()
                .is_some_and(|d| d.is_attachment());
        if attached_text
            || part_is(part, "text/rfc822-headers")
            || part_is(part, "message/rfc822-headers")
        {
            let text = part_text(part);
            if let Some(o) = original_from_text(&text) {
                return Some(o);
            }
        }
    }
    for m in INLINE_ORIGINAL.find_iter(body).take(INLINE_TRIES) {
        let line_end = body
            .get(m.end()..)
            .and_then(|r| r.find('\n'))
            .map_or(body.len(), |i| m.end() + i);
        let rest = body.get(line_end..).unwrap_or("");
        let rest = rest.trim_start_matches(['\n', '\r', ' ', '\t']);
        if let Some(o) = original_from_text(rest) {
            return Some(o);
        }
    }
    // The header block the free-text readers took for the returned original: at its start, or
    // after the marker line they cut at (`----- Unsent message follows -----`).
    let returned = returned.trim_start_matches(['\n', '\r', ' ', '\t']);
    original_from_text(returned).or_else(|| {
        let (_, rest) = returned.split_once('\n')?;
        original_from_text(rest.trim_start_matches(['\n', '\r', ' ', '\t']))
    })
}

/// The returned message's identity from a header block at the start of `text`.
fn original_from_text(text: &str) -> Option<Original> {
    let text = prefix(text, INLINE_HEADER);
    let first = text.lines().next().unwrap_or("");
    let looks_like_header = first
        .split_once(':')
        .is_some_and(|(n, _)| !n.is_empty() && !n.contains(' ') && n.is_ascii());
    if !looks_like_header {
        return None;
    }
    let end = text
        .find("\n\n")
        .or_else(|| text.find("\r\n\r\n"))
        .unwrap_or(text.len());
    let mut block = text.get(..end).unwrap_or("").to_string();
    block.push_str("\n\n");
    let parsed = HEADER_BLOCK_PARSER.parse_headers(block.as_bytes())?;
    original_from(&parsed)
}

/// The parser of a returned header block copied into a report's text: only the fields
/// [`original_from`] reads are parsed, and no body follows.
static HEADER_BLOCK_PARSER: LazyLock<MessageParser> =
    LazyLock::new(|| identity_fields(MessageParser::new()));

/// The list identifier of a `List-Id` value (RFC 2919 `Phrase <list-id>`): the part in angle
/// brackets when there is one, else the trimmed value; `None` when empty.
pub(crate) fn list_id(value: &str) -> Option<String> {
    let inner = value
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or(value, |(id, _)| id);
    let id = unfold(inner);
    (!id.is_empty()).then_some(id)
}

/// The identity fields of a parsed returned message; `None` when it has none of them.
fn original_from(m: &Message) -> Option<Original> {
    // Addresses read from the raw headers: the address parser keeps quoted local parts and skips
    // display names that look like addresses; the parsed `From` is the fallback for encodings only
    // the message parser reads.
    let listed = |name: &str| -> Vec<String> {
        m.header_raw(name)
            .map(|v| {
                address::address_list(v)
                    .iter()
                    .map(Address::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let to = listed("To");
    let o = Original {
        message_id: m
            .message_id()
            .map(|id| id.trim().trim_matches(['<', '>']).to_string())
            .filter(|id| !id.is_empty()),
        from: listed("From").into_iter().next().or_else(|| {
            m.from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .and_then(header_address)
        }),
        to: (!to.is_empty()).then(|| to.join(", ")),
        subject: m.subject().map(unfold),
        list_id: m.header_raw("List-Id").and_then(list_id),
        campaign: m
            .header_raw("X-Listmonk-Campaign")
            .map(unfold)
            .filter(|c| !c.is_empty()),
    };
    (o != Original::default()).then_some(o)
}

#[cfg(test)]
mod tests;
