//! From a [`Report`] to [`Bounce`]s: codes, reason and hard/soft.
//!
//! [`codes`] parses SMTP reply codes and enhanced status codes; [`rules`] holds the ordered rule table
//! that names a reason; [`BounceType::of`] applies the hard/soft rule of TAXONOMY section 4.

pub mod codes;
pub mod rules;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::RulesError;
use crate::report::Report;

/// Why a delivery failed (or what else the message was), in the shared vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The mailbox does not exist.
    Userunknown,
    /// The domain does not exist or has no mail host.
    Hostunknown,
    /// The address is gone and the server names another.
    Hasmoved,
    /// The destination takes no mail at all.
    Notaccept,
    /// The mailbox is over quota.
    Mailboxfull,
    /// The message is larger than the recipient's own limit.
    Exceedlimit,
    /// The message is larger than the system allows.
    Mesgtoobig,
    /// The mailbox exists but is disabled.
    Suspend,
    /// The recipient (or a filter for it) refuses this mail or sender.
    Filtered,
    /// The envelope sender or its domain was refused.
    Rejected,
    /// The sending host or IP was refused.
    Blocked,
    /// Poor IP or domain reputation.
    Badreputation,
    /// No or mismatching reverse DNS.
    Requireptr,
    /// SPF, DKIM or DMARC failed.
    Authfailure,
    /// Content judged to be spam.
    Spamdetected,
    /// Malware found.
    Virusdetected,
    /// A site policy forbids this message.
    Policyviolation,
    /// Content malformed or not acceptable.
    Contenterror,
    /// The message breaks the mail format standards.
    Notcompliantrfc,
    /// A security requirement was not met.
    Securityerror,
    /// TLS could not be established.
    Failedstarttls,
    /// Relaying denied.
    Norelaying,
    /// Network or DNS problem, mail loop.
    Networkerror,
    /// Error inside the receiving system.
    Systemerror,
    /// Receiving system out of storage.
    Systemfull,
    /// The local delivery program failed.
    Mailererror,
    /// The server reported an SMTP syntax error.
    Syntaxerror,
    /// Too many connections, recipients or messages per session.
    Toomanyconn,
    /// Over a sending-rate limit.
    Speeding,
    /// Retries ran out.
    Expired,
    /// A failure whose cause cannot be decided.
    Onhold,
    /// Nothing to classify by.
    Undefined,
    /// A success notice, not a failure.
    Delivered,
    /// A complaint (ARF), not a bounce.
    Feedback,
    /// An automatic reply, not a bounce.
    Vacation,
}

impl Reason {
    /// Every reason, in TAXONOMY order.
    pub const ALL: [Reason; 35] = [
        Reason::Userunknown,
        Reason::Hostunknown,
        Reason::Hasmoved,
        Reason::Notaccept,
        Reason::Mailboxfull,
        Reason::Exceedlimit,
        Reason::Mesgtoobig,
        Reason::Suspend,
        Reason::Filtered,
        Reason::Rejected,
        Reason::Blocked,
        Reason::Badreputation,
        Reason::Requireptr,
        Reason::Authfailure,
        Reason::Spamdetected,
        Reason::Virusdetected,
        Reason::Policyviolation,
        Reason::Contenterror,
        Reason::Notcompliantrfc,
        Reason::Securityerror,
        Reason::Failedstarttls,
        Reason::Norelaying,
        Reason::Networkerror,
        Reason::Systemerror,
        Reason::Systemfull,
        Reason::Mailererror,
        Reason::Syntaxerror,
        Reason::Toomanyconn,
        Reason::Speeding,
        Reason::Expired,
        Reason::Onhold,
        Reason::Undefined,
        Reason::Delivered,
        Reason::Feedback,
        Reason::Vacation,
    ];

    /// The lower-case name used in JSON, the database and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Userunknown => "userunknown",
            Reason::Hostunknown => "hostunknown",
            Reason::Hasmoved => "hasmoved",
            Reason::Notaccept => "notaccept",
            Reason::Mailboxfull => "mailboxfull",
            Reason::Exceedlimit => "exceedlimit",
            Reason::Mesgtoobig => "mesgtoobig",
            Reason::Suspend => "suspend",
            Reason::Filtered => "filtered",
            Reason::Rejected => "rejected",
            Reason::Blocked => "blocked",
            Reason::Badreputation => "badreputation",
            Reason::Requireptr => "requireptr",
            Reason::Authfailure => "authfailure",
            Reason::Spamdetected => "spamdetected",
            Reason::Virusdetected => "virusdetected",
            Reason::Policyviolation => "policyviolation",
            Reason::Contenterror => "contenterror",
            Reason::Notcompliantrfc => "notcompliantrfc",
            Reason::Securityerror => "securityerror",
            Reason::Failedstarttls => "failedstarttls",
            Reason::Norelaying => "norelaying",
            Reason::Networkerror => "networkerror",
            Reason::Systemerror => "systemerror",
            Reason::Systemfull => "systemfull",
            Reason::Mailererror => "mailererror",
            Reason::Syntaxerror => "syntaxerror",
            Reason::Toomanyconn => "toomanyconn",
            Reason::Speeding => "speeding",
            Reason::Expired => "expired",
            Reason::Onhold => "onhold",
            Reason::Undefined => "undefined",
            Reason::Delivered => "delivered",
            Reason::Feedback => "feedback",
            Reason::Vacation => "vacation",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .iter()
            .copied()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown reason `{s}`"))
    }
}

/// What a failure means for the address: dead (`hard`), maybe fine (`soft`), a complaint, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceType {
    /// The address is dead: suppress it now.
    Hard,
    /// Temporary, or not the address's fault.
    Soft,
    /// The recipient complained: suppress it now.
    Complaint,
    /// Not a failure (delivered, vacation).
    None,
}

impl BounceType {
    /// The lower-case name used in JSON, the database and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            BounceType::Hard => "hard",
            BounceType::Soft => "soft",
            BounceType::Complaint => "complaint",
            BounceType::None => "none",
        }
    }

    /// The hard/soft rule: `userunknown`, `hostunknown`, `hasmoved` are hard; `notaccept` is hard
    /// when permanent; `feedback` is a complaint; `delivered` and `vacation` are none; the rest soft.
    /// `permanent` is whether the failure's codes say permanent (5.x.x / 5xx), `None` when unknown.
    pub fn of(reason: Reason, permanent: Option<bool>) -> BounceType {
        match reason {
            Reason::Userunknown | Reason::Hostunknown | Reason::Hasmoved => BounceType::Hard,
            Reason::Notaccept if permanent != Some(false) => BounceType::Hard,
            Reason::Feedback => BounceType::Complaint,
            Reason::Delivered | Reason::Vacation => BounceType::None,
            _ => BounceType::Soft,
        }
    }
}

impl fmt::Display for BounceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One classified result: one failed (or delivered, complained, auto-replied) recipient.
///
/// This is the `jsonl` output contract of `bounced classify` (less `file` and `kind`, which the
/// caller adds) and the shape of a stored bounce row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bounce {
    /// The address, domain lower-cased.
    pub recipient: Option<String>,
    /// `failed`, `delayed`, `delivered`, ...
    pub action: Option<String>,
    /// Enhanced status code (RFC 3463) carried by the message; never invented.
    pub status: Option<String>,
    /// SMTP reply code (RFC 5321) carried by the message; never invented.
    pub replycode: Option<String>,
    /// The reason.
    pub reason: Reason,
    /// Hard, soft, complaint or none.
    pub bounce_type: BounceType,
    /// The remote server's words.
    pub diagnostic: Option<String>,
    /// The host that refused.
    pub remote_mta: Option<String>,
    /// The host that wrote the report.
    pub reporting_mta: Option<String>,
    /// When the failure happened, as the message wrote it.
    pub date: Option<String>,
    /// ARF feedback type, for complaints.
    pub feedback_type: Option<String>,
    /// The id of the rule that chose the reason, so an operator can see why.
    pub rule: String,
    /// The reader that recognised the message.
    pub reader: String,
    /// The returned original message's Message-ID.
    pub original_message_id: Option<String>,
    /// The returned original message's From.
    pub original_from: Option<String>,
    /// The returned original message's To.
    pub original_to: Option<String>,
    /// The returned original message's Subject.
    pub original_subject: Option<String>,
    /// The returned original message's List-Id.
    pub original_list_id: Option<String>,
}

/// The compiled rule table; build once, share freely (it is `Send + Sync`).
#[derive(Debug)]
pub struct Classifier {
    rules: rules::RuleSet,
}

impl Classifier {
    /// The built-in rules.
    pub fn new() -> Classifier {
        Classifier {
            rules: rules::RuleSet::builtin(),
        }
    }

    /// The built-in rules with a user rule file (TOML) merged in: same id overrides, new ids go first.
    pub fn with_rules_file(path: &std::path::Path) -> Result<Classifier, RulesError> {
        Ok(Classifier {
            rules: rules::RuleSet::builtin_with_file(path)?,
        })
    }

    /// The compiled rules.
    pub fn rules(&self) -> &rules::RuleSet {
        &self.rules
    }

    /// One [`Bounce`] per recipient in the report; none for a message that is not a bounce.
    pub fn classify(&self, report: &Report) -> Vec<Bounce> {
        let _ = report;
        Vec::new()
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new()
    }
}
