//! Free-text reports: one small file per MTA family, and a general reader for the rest.
//!
//! Each family file exports a [`Family`]: `detect` looks at the headers and the text and says whether
//! the format is its own; `read` extracts every failed recipient with its diagnostic. [`read`] tries the
//! families in [`FAMILIES`] order; [`generic`] reads what no family knows, when the message shows the
//! signs of a failure report (the caller decides that).
//!
//! The readers share one vocabulary: [`addresses`] (finding and normalising addresses in text),
//! [`blocks`] (the explanation, sections after a marker, per-recipient blocks), [`replies`] (the
//! server's reply apart from the MTA's framing, hosts, commands, transcripts) and [`words`]
//! (case-insensitive matching, unfolding).

// Helpers shared by the readers: addresses, the parts of a report, what the server replied, words.
pub(crate) mod addresses;
pub(crate) mod blocks;
pub(crate) mod replies;
#[cfg(test)]
mod testutil;
pub(crate) mod words;

// Open-source and commercial MTA families.
mod activehunter;
mod courier;
mod delivery_errors;
mod dma;
mod exim;
mod fml;
mod imail;
mod james;
mod mailfoundry;
mod mailmarshal;
mod mdaemon;
mod messagingserver;
mod mfilter;
mod notes;
mod opensmtpd;
mod postfix;
mod qmail;
mod sendmail;
mod surfcontrol;
mod technical_details;
mod trouble_delivering;
mod unable_to_deliver;

// Provider and gateway families.
mod amazonses;
mod barracuda;
mod bigfoot;
mod domino;
mod exchange;
mod gmail;
mod gmx;
mod googlegroups;
mod japan;
mod mailru;
mod mcafee;
mod mimecast;
mod mxlogic;
mod trendmicro;
mod verizon;
mod workmail;
mod yahoo;
mod zoho;

/// The general reader for reports in no family's format.
pub mod generic;

use mail_parser::{Message, MimeHeaders, PartType};

use std::borrow::Cow;

use std::collections::{HashMap, HashSet};

use super::{MAX_RECIPIENTS, RecipientReport};

/// Reader name of the general fallback reader.
pub const NAME: &str = "generic";

/// What a free-text reader gets: the bounce's headers and its human-readable text, decoded.
#[derive(Debug)]
pub struct Input<'a> {
    /// The parsed bounce.
    pub message: &'a Message<'a>,
    /// The bounce's `Subject`, decoded (empty when absent).
    pub subject: &'a str,
    /// The bounce's `From` address, lower-cased (empty when absent).
    pub from: &'a str,
    /// The readable text of the report: the top-level text parts (not those of the returned message
    /// when it is attached), decoded to UTF-8, with LF line endings.
    pub body: &'a str,
    /// The report's own words: `body` up to the returned original message
    /// ([`blocks::cut_original`]), found once for every reader.
    pub explanation: &'a str,
}

impl<'a> Input<'a> {
    /// The input of the readers for one message.
    pub fn new(message: &'a Message<'a>, subject: &'a str, from: &'a str, body: &'a str) -> Self {
        Input {
            message,
            subject,
            from,
            body,
            explanation: blocks::cut_original(body),
        }
    }

    /// The value of a header of the bounce, raw and trimmed, if present.
    pub fn header(&self, name: &'a str) -> Option<&'a str> {
        self.message.header_raw(name).map(str::trim)
    }

    /// The returned original message copied into the text (headers and body), empty when none.
    pub fn returned_original(&self) -> &'a str {
        self.body.get(self.explanation.len()..).unwrap_or("")
    }
}

/// One MTA family's reader.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The reader name reported in results (`postfix`, `exim`, ...).
    pub name: &'static str,
    /// Whether this message is in the family's format.
    pub detect: fn(&Input) -> bool,
    /// Every failed recipient the report names, in order; empty when none could be found.
    pub read: fn(&Input) -> Vec<RecipientReport>,
}

/// The family readers, most specific first.
pub const FAMILIES: &[Family] = &[
    // Provider and gateway families.
    amazonses::FAMILY,
    workmail::FAMILY,
    googlegroups::FAMILY,
    gmail::FAMILY,
    yahoo::FAMILY,
    mailru::FAMILY,
    japan::EZWEB,
    japan::KDDI,
    japan::BIGLOBE,
    zoho::FAMILY,
    mcafee::FAMILY,
    barracuda::FAMILY,
    bigfoot::FAMILY,
    trendmicro::FAMILY,
    mimecast::FAMILY,
    verizon::FAMILY,
    domino::FAMILY,
    exchange::FAMILY,
    mxlogic::FAMILY,
    gmx::FAMILY,
    // Open-source and commercial MTA families.
    postfix::FAMILY,
    exim::FAMILY,
    unable_to_deliver::FAMILY,
    qmail::FAMILY,
    activehunter::FAMILY,
    sendmail::FAMILY,
    courier::FAMILY,
    opensmtpd::FAMILY,
    dma::FAMILY,
    messagingserver::FAMILY,
    notes::FAMILY,
    imail::FAMILY,
    james::FAMILY,
    fml::FAMILY,
    mfilter::FAMILY,
    mailfoundry::FAMILY,
    mailmarshal::FAMILY,
    mdaemon::FAMILY,
    surfcontrol::FAMILY,
    delivery_errors::FAMILY,
    technical_details::FAMILY,
    trouble_delivering::FAMILY,
];

/// The longest paragraph a reader gathers about one recipient (bytes): real ones are a few lines.
pub(crate) const PARAGRAPH_LIMIT: usize = 2048;

/// The recipients a reader has found: each address once, in the order first found, and at most
/// one past [`MAX_RECIPIENTS`]: the caller refuses a report that names more, so a reader stops
/// there ([`Recipients::full`]) and its work stays bounded however many the text names.
#[derive(Debug, Default)]
pub(crate) struct Recipients {
    list: Vec<RecipientReport>,
    index: HashMap<String, usize>,
}

impl Recipients {
    /// Whether the list holds more than [`MAX_RECIPIENTS`]: the reader may stop.
    pub fn full(&self) -> bool {
        self.list.len() > MAX_RECIPIENTS
    }

    /// Whether `address` has been found already.
    pub fn contains(&self, address: &str) -> bool {
        self.index.contains_key(address)
    }

    /// Adds `r` unless its address has been found already or the list is full; whether it was
    /// added.
    pub fn add(&mut self, r: RecipientReport) -> bool {
        if self.full() {
            return false;
        }
        let key = r.recipient.clone().unwrap_or_default();
        if self.index.contains_key(&key) {
            return false;
        }
        self.index.insert(key, self.list.len());
        self.list.push(r);
        true
    }

    /// The recipient found for `address`, to complete or replace.
    pub fn get_mut(&mut self, address: &str) -> Option<&mut RecipientReport> {
        let i = *self.index.get(address)?;
        self.list.get_mut(i)
    }

    /// Whether none has been found.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The recipients, in order.
    pub fn into_vec(self) -> Vec<RecipientReport> {
        self.list
    }

    /// The recipients for `addresses`, each address once, at most one past [`MAX_RECIPIENTS`],
    /// each made by `build`.
    pub fn of(
        addresses: impl IntoIterator<Item = String>,
        mut build: impl FnMut(String) -> RecipientReport,
    ) -> Vec<RecipientReport> {
        let mut found = Recipients::default();
        for a in addresses {
            if found.full() {
                break;
            }
            if !found.contains(&a) {
                found.add(build(a));
            }
        }
        found.into_vec()
    }
}

/// Lines of a report gathered per recipient address: one block per address (the first the report
/// gives; the lines of a repeated address's block are dropped), at most one past
/// [`MAX_RECIPIENTS`] blocks.
#[derive(Debug, Default)]
pub(crate) struct Gathered<'a> {
    blocks: Vec<(String, Vec<&'a str>)>,
    seen: HashSet<String>,
    /// Whether lines go to the last block (not after a repeated address).
    open: bool,
}

impl<'a> Gathered<'a> {
    /// Opens the block of `address` (a repeated address opens none).
    pub fn start(&mut self, address: String) {
        self.open = !self.full() && self.seen.insert(address.clone());
        if self.open {
            self.blocks.push((address, Vec::new()));
        }
    }

    /// Adds a line to the open block, if any.
    pub fn line(&mut self, line: &'a str) {
        if self.open
            && let Some((_, lines)) = self.blocks.last_mut()
        {
            lines.push(line);
        }
    }

    /// Whether no more blocks are taken: more than [`MAX_RECIPIENTS`] are open already.
    pub fn full(&self) -> bool {
        self.blocks.len() > MAX_RECIPIENTS
    }

    /// Whether a block is open and has no line yet.
    pub fn open_and_empty(&self) -> bool {
        self.open
            && self
                .blocks
                .last()
                .is_some_and(|(_, lines)| lines.is_empty())
    }

    /// Whether no block has been opened.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Closes the open block: further lines belong to no block until the next address.
    pub fn close(&mut self) {
        self.open = false;
    }

    /// The blocks, in order.
    pub fn into_blocks(self) -> Vec<(String, Vec<&'a str>)> {
        self.blocks
    }
}

/// Reads a free-text report in a known family's format: the first family that detects the format
/// and finds recipients wins. Returns the reader name and the recipients, or `None` when no family
/// knows the message (the caller then decides whether the general reader may try).
pub fn read(input: &Input) -> Option<(&'static str, Vec<RecipientReport>)> {
    FAMILIES
        .iter()
        .filter(|family| (family.detect)(input))
        .map(|family| (family.name, (family.read)(input)))
        .find(|(_, found)| !found.is_empty())
}

/// The human-readable text of a message: its top-level text parts (HTML-only parts converted to
/// text), decoded to UTF-8, joined by a blank line, with CRLF and lone CR turned into LF.
///
/// Parts of an attached returned message (`message/rfc822`) are not included, nor are returned header
/// blocks (`text/rfc822-headers`): they are the original mail's words, not the report's.
pub fn readable_text(message: &Message) -> String {
    join_text_parts(message, &text_parts(message))
}

/// The decoded text of each top-level text part, in the message's order of text parts; `None` for
/// a returned header block (`text/rfc822-headers`), which is not decoded. Decoded once, for
/// [`join_text_parts`] and for whoever needs one part alone (a DSN's notice).
pub(crate) fn text_parts<'m>(message: &'m Message<'m>) -> Vec<Option<Cow<'m, str>>> {
    message
        .text_bodies()
        .enumerate()
        .map(|(i, part)| {
            let is_headers = part.content_type().is_some_and(|ct| {
                ct.subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
            });
            if is_headers {
                None
            } else {
                message.body_text(i)
            }
        })
        .collect()
}

/// [`readable_text`] from the parts [`text_parts`] decoded.
pub(crate) fn join_text_parts(message: &Message, parts: &[Option<Cow<'_, str>>]) -> String {
    let mut out = String::new();
    for text in parts.iter().flatten() {
        if text.trim().is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(text);
    }
    if out.is_empty()
        && let PartType::Text(text) = &message.root_part().body
    {
        // A multipart whose boundary never appears: its whole body is the only text there is.
        out.push_str(text);
    }
    if out.contains('\r') {
        out = out.replace("\r\n", "\n").replace('\r', "\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::addresses::{address_alone, find_addresses, first_address};
    use super::blocks::cut_original;
    use super::replies::{command_of, host_after, host_said, transcript};
    use super::testutil::test_input;
    use super::words::strip_prefix_ci;
    use super::*;

    #[test]
    fn never_panics_on_garbage() {
        for s in [
            "@",
            "@@@",
            "a@",
            "@b.c",
            "é@é.é",
            "<<<",
            ">>>",
            "host :",
            "\u{0}@x.yy",
            "a@[",
            "x@y..zz",
        ] {
            let _ = find_addresses(s);
            let _ = cut_original(s);
            let _ = host_said(s);
            let _ = command_of(s);
            let _ = transcript(s);
        }
    }

    /// Pieces of the formats' fixed wording, so random input reaches the readers' inner paths.
    const PIECES: &[&str] = &[
        "\n",
        " ",
        "<",
        ">",
        "@",
        ":",
        "'",
        "-- ",
        ">>> RCPT TO:",
        "<<< 550 ",
        "a@example.com",
        "<b@example.net>:",
        "failed:",
        "Delivery to the following recipient failed permanently:",
        "Technical details of permanent failure:",
        "The error that the other server returned was:",
        "Sorry, we were unable to deliver your message to the following address.",
        "Remote host said:",
        "[RCPT_TO]",
        "----- Original message -----",
        "host mx.example.com [",
        "did not reach the following recipient(s):",
        " on ",
        "The MTS-ID of the original message",
        "Diagnostic information for administrators",
        "Remote Server returned '",
        "Delivery has failed to these recipients or groups",
        "Invalid Address, ERROR_CODE :",
        "[Status: Error, Address: <",
        "ResponseCode",
        "The following addresses had delivery problems",
        "Non-delivered information",
        "Could not be delivered to:",
        "Recipient:",
        "Unable to deliver message to",
        "Sent <<<",
        "Received >>>",
        "The problem appears to be",
        "Additional information follows",
        "was not delivered to:",
        "because:",
        "Error message below:",
        "Original Message:",
        "To:",
        "{\"notificationType\":\"Bounce\",\"bounce\":{\"bouncedRecipients\":[{\"emailAddress\":",
        "Technical report:",
        "Final-Recipient: rfc822;",
        "Your message to:",
        "was blocked by our Spam",
        "The following message to <",
        "The reason for the problem:",
        "(in reply to ",
        "é",
        "\u{0}",
        "日本語",
        "Delivery to the following recipients failed.",
    ];

    proptest::proptest! {
        #[test]
        fn no_family_panics(picks in proptest::collection::vec((0..PIECES.len(), "[ -~]{0,6}"), 0..40)) {
            let mut body = String::new();
            for (i, noise) in &picks {
                body.push_str(PIECES.get(*i).copied().unwrap_or(""));
                body.push_str(noise);
            }
            for from in ["mailer-daemon@googlemail.com", "postmaster@ezweb.ne.jp", "x@mail.zoho.com", "post_master@vtext.com", "no-reply@a.dion.ne.jp", "postmaster@biglobe.ne.jp", "mailer-daemon@bigfoot.com", "mailer-daemon@corp.mail.ru"] {
                test_input(from, "Delivery Status Notification", &body, |input| {
                    for family in FAMILIES {
                        if (family.detect)(input) {
                            let _ = (family.read)(input);
                        }
                        let _ = (family.read)(input);
                    }
                });
            }
        }
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
                first_address(s),
                address_alone(s),
                cut_original(s),
                host_after(s, "host"),
                strip_prefix_ci(s, "éé"),
            );
        }
    }
}
