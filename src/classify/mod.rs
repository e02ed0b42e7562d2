//! From a [`Report`] to [`Bounce`]s: codes, reason and hard/soft.
//!
//! [`codes`] parses SMTP reply codes and enhanced status codes; [`rules`] holds the ordered rule table
//! that names a reason; [`BounceType::of`] applies the hard/soft rule of TAXONOMY section 4.

pub mod codes;
pub mod rules;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::RulesError;
use crate::report::{Kind, RecipientReport, Report};
use codes::{ReplyCode, StatusCode};

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
    ///
    /// Codes: the `Status` field, but a more specific code in the diagnostic beats a generic
    /// `X.0.0`; else a code found in the diagnostic; else none. The reply code comes from the
    /// diagnostic. Never invented.
    ///
    /// Reason, in order of precedence:
    /// 1. the kind of message: a feedback report gives `feedback`, an auto-reply `vacation`;
    /// 2. success: action `delivered` / `relayed` / `expanded`, or a 2.x.x status, gives `delivered`;
    /// 3. text rules: the diagnostic's own words are the most specific evidence there is;
    /// 4. the reader's `reason_hint`: a format whose wording names the failure exactly;
    /// 5. code rules: specific codes (5.1.1, 5.2.2, 5.1.2, 5.1.6, 5.2.1, 5.3.4, ...) on their own;
    ///    generic ones (X.0.0, 5.7.1, 550, 554) have no code rule and need words;
    /// 6. `onhold` when there is evidence of a failure but nothing decided it, `undefined` when
    ///    there is nothing at all.
    ///
    /// The bounce type follows from the reason and whether the codes say permanent
    /// ([`BounceType::of`]).
    pub fn classify(&self, report: &Report) -> Vec<Bounce> {
        report
            .recipients
            .iter()
            .map(|r| self.classify_recipient(report, r))
            .collect()
    }

    fn classify_recipient(&self, report: &Report, rcpt: &RecipientReport) -> Bounce {
        let diagnostic = rcpt.diagnostic.as_deref().unwrap_or("");
        let status = choose_status(rcpt.status.as_deref(), diagnostic);
        let replycode = codes::find_reply(diagnostic);
        let action = rcpt
            .action
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty());
        let facts = rules::Facts {
            diagnostic,
            status,
            replycode,
            command: rcpt.command.as_deref(),
            action,
            diagnostic_type: rcpt.diagnostic_type.as_deref(),
        };
        let (reason, rule) = self.decide(report.kind, &facts, rcpt.reason_hint);
        let permanent = status
            .and_then(StatusCode::is_permanent)
            .or_else(|| replycode.and_then(ReplyCode::is_permanent));
        let original = report.original.as_ref();
        Bounce {
            recipient: rcpt.recipient.clone(),
            action: rcpt.action.clone(),
            status: status.map(|s| s.to_string()),
            replycode: replycode.map(|r| r.to_string()),
            reason,
            bounce_type: BounceType::of(reason, permanent),
            diagnostic: rcpt.diagnostic.clone(),
            remote_mta: rcpt.remote_mta.clone(),
            reporting_mta: rcpt
                .reporting_mta
                .clone()
                .or_else(|| report.reporting_mta.clone()),
            date: rcpt
                .date
                .clone()
                .or_else(|| report.arrival_date.clone())
                .or_else(|| report.date.clone()),
            feedback_type: rcpt.feedback_type.clone(),
            rule: rule.into_owned(),
            reader: report.reader.to_string(),
            original_message_id: original.and_then(|o| o.message_id.clone()),
            original_from: original.and_then(|o| o.from.clone()),
            original_to: original.and_then(|o| o.to.clone()),
            original_subject: original.and_then(|o| o.subject.clone()),
            original_list_id: original.and_then(|o| o.list_id.clone()),
        }
    }

    /// The reason for one recipient and the id of what decided it (a rule id, or `kind.feedback`,
    /// `kind.autoreply`, `action.delivered`, `status.success`, `reader.hint`, `fallback.onhold`,
    /// `fallback.undefined`). See [`Classifier::classify`] for the order.
    pub fn decide<'a>(
        &'a self,
        kind: Option<Kind>,
        facts: &rules::Facts,
        hint: Option<&str>,
    ) -> (Reason, Cow<'a, str>) {
        match kind {
            Some(Kind::Feedback) => return (Reason::Feedback, Cow::Borrowed("kind.feedback")),
            Some(Kind::Autoreply) => return (Reason::Vacation, Cow::Borrowed("kind.autoreply")),
            _ => {}
        }
        let action = facts.action.map(str::to_ascii_lowercase);
        let failing = matches!(action.as_deref(), Some("failed" | "delayed"));
        if matches!(
            action.as_deref(),
            Some("delivered" | "relayed" | "expanded")
        ) {
            return (Reason::Delivered, Cow::Borrowed("action.delivered"));
        }
        if !failing && facts.status.is_some_and(|s| s.class == 2) {
            return (Reason::Delivered, Cow::Borrowed("status.success"));
        }
        if let Some(rule) = self.rules.match_text(facts) {
            return (rule.reason, Cow::Borrowed(rule.id.as_str()));
        }
        if let Some(reason) = hint.and_then(|h| h.parse::<Reason>().ok()) {
            return (reason, Cow::Borrowed("reader.hint"));
        }
        if let Some(rule) = self.rules.match_code(facts) {
            return (rule.reason, Cow::Borrowed(rule.id.as_str()));
        }
        let evidence = failing
            || facts.status.is_some()
            || facts.replycode.is_some()
            || !facts.diagnostic.trim().is_empty()
            || matches!(kind, Some(Kind::Dsn | Kind::Text));
        if evidence {
            (Reason::Onhold, Cow::Borrowed("fallback.onhold"))
        } else {
            (Reason::Undefined, Cow::Borrowed("fallback.undefined"))
        }
    }
}

/// The status for a recipient: the field, unless it is a generic `X.0.0` and the diagnostic
/// carries a specific code; else the most telling code in the diagnostic.
fn choose_status(field: Option<&str>, diagnostic: &str) -> Option<StatusCode> {
    let field = field.and_then(|f| StatusCode::parse(f).or_else(|| codes::find_status(f)));
    match field {
        Some(f) if !f.is_generic() => Some(f),
        Some(f) => match codes::find_status(diagnostic) {
            Some(t) if !t.is_generic() => Some(t),
            _ => Some(f),
        },
        None => codes::find_status(diagnostic),
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new()
    }
}
