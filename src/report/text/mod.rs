//! Free-text reports: one small file per MTA family, and a general reader for the rest.
//!
//! Each family file exports a [`Family`]: `detect` looks at the headers and the text and says whether
//! the format is its own; `read` extracts every failed recipient with its diagnostic. [`read`] tries the
//! families in [`FAMILIES`] order and falls back to the general reader.

mod activehunter;
pub mod common;
mod courier;
mod dma;
mod exim;
mod fml;
pub mod generic;
mod imail;
mod james;
mod mailfoundry;
mod mailmarshal;
mod messagingserver;
mod mfilter;
mod notes;
mod opensmtpd;
mod postfix;
mod qmail;
mod sendmail;
mod surfcontrol;
mod x1;
mod x2;
mod x3;
mod x6;

use mail_parser::{Message, MimeHeaders, PartType};

use super::RecipientReport;

// Provider and gateway families.
pub mod amazonses;
pub mod barracuda;
pub mod bigfoot;
pub mod domino;
pub mod exchange;
pub mod gmail;
pub mod gmx;
pub mod googlegroups;
pub mod japan;
pub mod mailru;
pub mod mcafee;
pub mod mimecast;
pub mod mxlogic;
pub mod trendmicro;
pub mod verizon;
pub mod workmail;
pub mod yahoo;
pub mod zoho;

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
}

impl<'a> Input<'a> {
    /// The value of a header of the bounce, raw and trimmed, if present.
    pub fn header(&self, name: &'a str) -> Option<&'a str> {
        self.message.header_raw(name).map(str::trim)
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
    // Open-source MTA families.
    postfix::POSTFIX,
    exim::EXIM,
    x2::X2,
    qmail::QMAIL,
    activehunter::ACTIVEHUNTER,
    sendmail::SENDMAIL,
    courier::COURIER,
    opensmtpd::OPENSMTPD,
    dma::DMA,
    messagingserver::MESSAGINGSERVER,
    notes::NOTES,
    notes::DOMINO,
    imail::IMAIL,
    james::JAMES,
    fml::FML,
    mfilter::MFILTER,
    mailfoundry::MAILFOUNDRY,
    mailmarshal::MAILMARSHAL,
    surfcontrol::SURFCONTROL,
    x1::X1,
    x3::X3,
    x6::X6,
];

/// Reads a free-text report: the first family that detects the format and finds recipients wins,
/// else the general reader (only for a message that looks like a bounce). Returns the reader name and the recipients, or `None` when nothing
/// looks like a failure report.
pub fn read(input: &Input) -> Option<(&'static str, Vec<RecipientReport>)> {
    for family in FAMILIES {
        if (family.detect)(input) {
            let found = (family.read)(input);
            if !found.is_empty() {
                return Some((family.name, found));
            }
        }
    }
    // The general reader needs a bounce that says delivery failed; an automatic reply without
    // failure evidence is not one, even with a null sender.
    if !super::looks_like_bounce(input)
        || !super::states_non_delivery(input)
        || super::autoreply::detect(input)
    {
        return None;
    }
    let found = generic::read(input);
    (!found.is_empty()).then_some((NAME, found))
}

/// The human-readable text of a message: its top-level text parts (HTML-only parts converted to
/// text), decoded to UTF-8, joined by a blank line, with CRLF and lone CR turned into LF.
///
/// Parts of an attached returned message (`message/rfc822`) are not included, nor are returned header
/// blocks (`text/rfc822-headers`): they are the original mail's words, not the report's.
pub fn readable_text(message: &Message) -> String {
    let mut out = String::new();
    for (i, part) in message.text_bodies().enumerate() {
        let is_headers = part.content_type().is_some_and(|ct| {
            ct.subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
        });
        if is_headers {
            continue;
        }
        if let Some(text) = message.body_text(i) {
            if text.trim().is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&text);
        }
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
