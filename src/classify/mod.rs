//! From a [`Report`] to [`Bounce`]s: codes, reason and hard/soft.
//!
//! [`codes`] parses SMTP reply codes and enhanced status codes; [`rules`] holds the ordered rule table
//! that names a reason; [`BounceType::of`] applies the hard/soft rule of TAXONOMY section 4.

pub mod codes;
mod prefilter;
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

impl BounceType {
    /// [`BounceType::of`] for one recipient of a report: a delay notice is never hard, whatever its
    /// reason, as the sending MTA is still trying and nothing is final yet.
    pub fn of_notice(reason: Reason, permanent: Option<bool>, delayed: bool) -> BounceType {
        match BounceType::of(reason, permanent) {
            BounceType::Hard if delayed => BounceType::Soft,
            t => t,
        }
    }
}

/// Whether the recipient's report is a delay notice (`Action: delayed`): the message is still queued.
pub fn delay_notice(facts: &rules::Facts) -> bool {
    facts
        .action
        .is_some_and(|a| a.trim().eq_ignore_ascii_case("delayed"))
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
    /// Codes: the remote server's own code, written beside its reply code in the diagnostic
    /// (`550 5.7.1`), beats the `Status` field (often the reporting MTA's summary: `4.4.7`,
    /// `5.0.0`); else the field, unless it is a generic `X.0.0` and the diagnostic carries a specific
    /// code; else a code found in the diagnostic; else none. The reply code comes from the
    /// diagnostic (the one paired with the chosen code when there is one) and is dropped when its
    /// class contradicts the status class. Never invented.
    ///
    /// The SMTP command the failure answered is the reader's, else the one the diagnostic names
    /// ("after RCPT TO", "in reply to end of DATA command").
    ///
    /// Reason, in order of precedence:
    /// 1. the kind of message: a feedback report gives `feedback`, an auto-reply `vacation`;
    /// 2. success: action `delivered` / `relayed` / `expanded`, or a 2.x.x status, gives `delivered`;
    /// 3. text rules: the diagnostic's own words are the most specific evidence there is. Wording
    ///    that needs confirmation ("user unknown" needs an addressing code, an answer to RCPT TO,
    ///    or a reader hint for the same reason) and lacks it gives way to a reader hint naming
    ///    another reason, else gives its `otherwise` reason (`filtered` for "user unknown").
    ///    Wording confirmed only by the command, with no specific code, also gives way to a
    ///    reader hint naming another reason (other than `expired`). A `userunknown` or
    ///    `hostunknown` verdict in reply to HELO/EHLO judges the sending host's name: `blocked`;
    /// 4. the reader's `reason_hint`: a format whose wording names the failure exactly;
    /// 5. code rules: specific codes (5.1.1, 5.2.2, 5.1.2, 5.1.6, 5.2.1, 5.3.4, ...) on their own;
    ///    generic ones (X.0.0, 5.7.1, 550, 554) have no code rule and need words;
    /// 6. `expired` for a delay notice that names no cause (no code, no diagnostic); `undefined`
    ///    when there is no code and the diagnostic is only the notice's boilerplate ("delivery to
    ///    the following recipients failed"); `onhold` when there is evidence of a failure but
    ///    nothing decided it, `undefined` when there is nothing at all.
    ///
    /// The bounce type follows from the reason and whether the codes say permanent
    /// ([`BounceType::of`]). A hard verdict for the one recipient of a DSN whose own notice says
    /// the mailbox or system is full, or the mailbox suspended, becomes that soft reason
    /// (`notice.contradicts`).
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
        // Without a diagnostic, a comment on the Status field ("4.0.0 (host name lookup
        // failure)") is the only wording the report gives.
        let diagnostic = if diagnostic.trim().is_empty() {
            rcpt.status
                .as_deref()
                .and_then(status_comment)
                .unwrap_or(diagnostic)
        } else {
            diagnostic
        };
        // A reply code whose class contradicts the status (`554` beside a `4.0.0` the MTA acted on,
        // `550 4.4.7`) says nothing reliable about permanence: keep the status, drop the reply.
        let replycode = codes::find_reply(diagnostic)
            .filter(|r| status.is_none_or(|s| !matches!((s.class, r.class()), (4, 5) | (5, 4))));
        let facts = rules::Facts {
            reporting_mta: rcpt
                .reporting_mta
                .as_deref()
                .or(report.reporting_mta.as_deref()),
            ..facts_of(rcpt, diagnostic, status, replycode)
        };
        let (reason, rule) = self.decide(report.kind, &facts, rcpt.reason_hint);
        let permanent = status
            .and_then(StatusCode::is_permanent)
            .or_else(|| replycode.and_then(ReplyCode::is_permanent));
        let (reason, rule) = match self.notice_contradiction(report, reason, permanent) {
            Some(soft) => (soft, Cow::Borrowed("notice.contradicts")),
            None => (reason, rule),
        };
        let original = report.original.as_ref();
        Bounce {
            recipient: rcpt.recipient.clone(),
            action: rcpt.action.clone(),
            status: status.map(|s| s.to_string()),
            replycode: replycode.map(|r| r.to_string()),
            reason,
            bounce_type: BounceType::of_notice(reason, permanent, delay_notice(&facts)),
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

    /// A soft reason that a one-recipient DSN's own notice gives against a hard verdict from its
    /// fields: the notice says the mailbox or the receiving system is full, or the mailbox suspended,
    /// and nothing in it says the
    /// address is gone. A report that contradicts itself does not prove the address dead.
    fn notice_contradiction(
        &self,
        report: &Report,
        reason: Reason,
        permanent: Option<bool>,
    ) -> Option<Reason> {
        if report.kind != Some(Kind::Dsn)
            || report.recipients.len() != 1
            || BounceType::of(reason, permanent) != BounceType::Hard
        {
            return None;
        }
        let notice = report.notice.as_deref()?;
        let facts = rules::Facts {
            diagnostic: notice,
            action: Some("failed"),
            ..rules::Facts::default()
        };
        // The alive reasons, then the gone ones: only their rules are run.
        const ASKED: [Reason; 7] = [
            Reason::Mailboxfull,
            Reason::Suspend,
            Reason::Systemfull,
            Reason::Userunknown,
            Reason::Hostunknown,
            Reason::Hasmoved,
            Reason::Notaccept,
        ];
        let (alive, gone) = ASKED.split_at(3);
        let said = self.rules.text_reasons(&facts, &ASKED);
        let alive = said.iter().copied().find(|r| alive.contains(r))?;
        let gone = said.iter().any(|r| gone.contains(r));
        (!gone).then_some(alive)
    }

    /// The reason for one recipient and the id of what decided it (a rule id, or `kind.feedback`,
    /// `kind.autoreply`, `action.delivered`, `status.success`, `reader.hint`,
    /// `blocked.command.greeting`, `fallback.delayed`,
    /// `fallback.onhold`, `fallback.undefined`). See [`Classifier::classify`] for the order.
    pub fn decide<'a>(
        &'a self,
        kind: Option<Kind>,
        facts: &rules::Facts,
        hint: Option<Reason>,
    ) -> (Reason, Cow<'a, str>) {
        let facts = &rules::Facts {
            hint: hint.map(Reason::as_str).or(facts.hint),
            ..*facts
        };
        match kind {
            Some(Kind::Feedback) => return (Reason::Feedback, Cow::Borrowed("kind.feedback")),
            Some(Kind::Autoreply) => return (Reason::Vacation, Cow::Borrowed("kind.autoreply")),
            _ => {}
        }
        let action = facts.action.map(str::to_ascii_lowercase);
        let failing = matches!(action.as_deref(), Some("failed" | "delayed" | "expired"));
        if matches!(
            action.as_deref(),
            Some("delivered" | "relayed" | "expanded")
        ) {
            return (Reason::Delivered, Cow::Borrowed("action.delivered"));
        }
        if !failing && facts.status.is_some_and(|s| s.class == 2) {
            return (Reason::Delivered, Cow::Borrowed("status.success"));
        }
        let hint_reason = hint;
        let at_greeting = facts
            .command
            .is_some_and(|c| matches!(c.trim().to_ascii_uppercase().as_str(), "HELO" | "EHLO"));
        // A refusal of HELO/EHLO judges the sending host's name: words like "invalid domain" or
        // "unknown" there never speak of the recipient's address.
        let greeting_refused = |reason: Reason| {
            at_greeting && matches!(reason, Reason::Userunknown | Reason::Hostunknown)
        };
        let specific_status = facts.status.is_some_and(|s| !s.is_generic());
        match self.rules.match_text_confirmed(facts) {
            Some(m @ rules::TextMatch::Confirmed(rule)) => {
                if greeting_refused(m.reason()) {
                    return (Reason::Blocked, Cow::Borrowed("blocked.command.greeting"));
                }
                // Wording confirmed only by the command, not by a specific code, gives way to a
                // reader hint naming another reason from the format's fixed wording (`expired`
                // speaks of the queue, not of the mailbox, and does not count).
                if (rule.needs_confirmation() || rule.can_be_refuted())
                    && !specific_status
                    && let Some(reason) =
                        hint_reason.filter(|&r| r != rule.reason && r != Reason::Expired)
                {
                    return (reason, Cow::Borrowed("reader.hint"));
                }
                return (m.reason(), Cow::Borrowed(m.id()));
            }
            Some(m @ rules::TextMatch::Unconfirmed(rule, _)) => {
                if greeting_refused(rule.reason) {
                    return (Reason::Blocked, Cow::Borrowed("blocked.command.greeting"));
                }
                if let Some(reason) = hint_reason {
                    return (reason, Cow::Borrowed("reader.hint"));
                }
                // A code that refutes the wording has a registered meaning of its own: it decides
                // (X.2.1 beside "user unknown" is a disabled mailbox, not a filter).
                if rule.is_refuted_by_status(facts)
                    && let Some(code) = self.rules.match_code(facts)
                {
                    return (code.reason, Cow::Borrowed(code.id.as_str()));
                }
                return (m.reason(), Cow::Borrowed(m.id()));
            }
            None => {}
        }
        if let Some(reason) = hint_reason {
            return (reason, Cow::Borrowed("reader.hint"));
        }
        if let Some(rule) = self.rules.match_code(facts) {
            if greeting_refused(rule.reason) {
                return (Reason::Blocked, Cow::Borrowed("blocked.command.greeting"));
            }
            return (rule.reason, Cow::Borrowed(rule.id.as_str()));
        }
        // A delay notice that names no cause at all reports only that the message has waited in
        // the queue past the sender's warning time.
        if action.as_deref() == Some("delayed")
            && facts.status.is_none()
            && facts.replycode.is_none()
            && facts.diagnostic.trim().is_empty()
        {
            return (Reason::Expired, Cow::Borrowed("fallback.delayed"));
        }
        // A diagnostic that is only the notice's own boilerplate (that delivery failed, whom to
        // ask) names no cause, and without a code there is nothing to classify by.
        if facts.status.is_none()
            && facts.replycode.is_none()
            && !facts.diagnostic.trim().is_empty()
            && NOTICE_BOILERPLATE.is_match(facts.diagnostic)
        {
            return (Reason::Undefined, Cow::Borrowed("fallback.undefined"));
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

/// Sentences of a failure notice that state only that delivery failed or whom to ask, never why:
/// a diagnostic made of nothing else says nothing about the address.
static NOTICE_BOILERPLATE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"(?i)^(?:\s*(?:delivery to the following recipients? (?:has )?failed(?: permanently)?|(?:your )?message could not be delivered(?: to (?:one or more|the following) recipients?)?|i'?m sorry to have to inform you that|it'?s attached below|if you do so, please include this problem report|you can delete your own text from the (?:attached )?returned message|this is an automatically generated delivery status notification)[\s.:;,!]*)+$",
    )
    .expect("fixed pattern")
});

/// The comment after a `Status` field's code: `4.0.0 (host name lookup failure)`.
fn status_comment(field: &str) -> Option<&str> {
    let (_, rest) = field.split_once('(')?;
    let comment = rest.rsplit_once(')').map_or(rest, |(c, _)| c).trim();
    (!comment.is_empty()).then_some(comment)
}

/// The status for a recipient. The remote server's own code, written beside its reply code in the
/// diagnostic (`550 5.7.1 ...`), beats the `Status` field: the field is often the reporting MTA's
/// summary (`4.4.7` when it gave up, `5.0.0` when it had nothing better). Else the field, unless it
/// is a generic `X.0.0` and the diagnostic carries a specific code; else the most telling code in
/// the diagnostic.
fn choose_status(field: Option<&str>, diagnostic: &str) -> Option<StatusCode> {
    if let Some((_, server)) = codes::find_server_pair(diagnostic) {
        return Some(server);
    }
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

/// The facts the rules look at for one recipient: its diagnostic, the chosen codes, the command (from
/// the reader, else read from the diagnostic), the action, the diagnostic type, the reader's hint,
/// the address and the MTAs (the report-wide reporting MTA is the caller's to add).
pub fn facts_of<'a>(
    rcpt: &'a RecipientReport,
    diagnostic: &'a str,
    status: Option<StatusCode>,
    replycode: Option<ReplyCode>,
) -> rules::Facts<'a> {
    rules::Facts {
        diagnostic,
        status,
        replycode,
        command: rcpt
            .command
            .as_deref()
            .or_else(|| codes::command_in(diagnostic)),
        action: rcpt
            .action
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty()),
        diagnostic_type: rcpt.diagnostic_type.as_deref(),
        hint: rcpt.reason_hint.map(Reason::as_str),
        recipient: rcpt.recipient.as_deref(),
        remote_mta: rcpt.remote_mta.as_deref(),
        reporting_mta: rcpt.reporting_mta.as_deref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Original;

    fn rcpt(action: &str, status: &str, diagnostic: &str) -> RecipientReport {
        RecipientReport {
            recipient: Some("user@example.com".into()),
            action: (!action.is_empty()).then(|| action.to_string()),
            status: (!status.is_empty()).then(|| status.to_string()),
            diagnostic: (!diagnostic.is_empty()).then(|| diagnostic.to_string()),
            ..RecipientReport::default()
        }
    }

    fn report(kind: Kind, recipients: Vec<RecipientReport>) -> Report {
        Report {
            kind: Some(kind),
            reader: "dsn",
            recipients,
            reporting_mta: Some("mta.example.org".into()),
            date: Some("Mon, 2 Nov 2026 10:00:00 +0000".into()),
            ..Report::default()
        }
    }

    static SHARED: std::sync::LazyLock<Classifier> = std::sync::LazyLock::new(Classifier::new);

    fn one(kind: Kind, r: RecipientReport) -> Bounce {
        let out = SHARED.classify(&report(kind, vec![r]));
        assert_eq!(out.len(), 1);
        out.into_iter().next().unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn a_notice_contradicting_a_hard_verdict_makes_it_soft() {
        let run = |notice: &str, recipients: usize| {
            let rows = (0..recipients)
                .map(|_| rcpt("failed", "5.1.1", "550 5.1.1 User unknown"))
                .collect();
            let mut r = report(Kind::Dsn, rows);
            r.notice = Some(notice.to_string());
            let b = SHARED
                .classify(&r)
                .into_iter()
                .next()
                .unwrap_or_else(|| unreachable!());
            (b.reason, b.bounce_type, b.rule)
        };
        assert_eq!(
            run(
                "Your message was refused: the mailbox of this user is full",
                1
            ),
            (
                Reason::Mailboxfull,
                BounceType::Soft,
                "notice.contradicts".to_string()
            )
        );
        assert_eq!(
            run("Refused: not enough disk space", 1).0,
            Reason::Systemfull
        );
        // A notice that also says the address is unknown, or one shared by several recipients,
        // does not contradict the fields.
        assert_eq!(
            run("Mailbox full, or user unknown: check the address", 1).1,
            BounceType::Hard
        );
        assert_eq!(run("the mailbox is full", 2).1, BounceType::Hard);
        // A notice without a verdict of its own changes nothing.
        assert_eq!(
            run("This is the mail system at host gw.example.net.", 1).1,
            BounceType::Hard
        );
    }

    #[test]
    fn a_refused_greeting_is_about_the_sending_host() {
        let run = |status: &str, diag: &str, command: &str| {
            let mut r = rcpt("failed", status, diag);
            r.command = Some(command.to_string());
            let b = one(Kind::Text, r);
            (b.reason, b.bounce_type, b.rule)
        };
        for command in ["HELO", "EHLO", "ehlo"] {
            let (reason, kind, rule) = run(
                "5.0.0",
                "501 5.0.0 Bad domain: invalid domain name",
                command,
            );
            assert_eq!(
                (reason, kind, rule.as_str()),
                (
                    Reason::Blocked,
                    BounceType::Soft,
                    "blocked.command.greeting"
                ),
                "{command}"
            );
            let (reason, _, _) = run("", "550 user unknown in greeting", command);
            assert_eq!(reason, Reason::Blocked, "{command}");
        }
        // The same words in reply to RCPT TO still speak of the recipient's domain.
        let (reason, kind, _) = run("5.0.0", "501 5.0.0 Bad domain: invalid domain name", "RCPT");
        assert_eq!((reason, kind), (Reason::Hostunknown, BounceType::Hard));
    }

    #[test]
    fn a_format_hint_outweighs_wording_confirmed_only_by_the_command() {
        let run = |status: &str, hint: Option<Reason>| {
            let mut r = rcpt("failed", status, "550 unknown user");
            r.command = Some("RCPT".into());
            r.reason_hint = hint;
            let b = one(Kind::Dsn, r);
            (b.reason, b.rule)
        };
        assert_eq!(
            run("5.0.0", Some(Reason::Suspend)),
            (Reason::Suspend, "reader.hint".to_string())
        );
        assert_eq!(run("", Some(Reason::Suspend)).0, Reason::Suspend);
        assert_eq!(run("5.0.0", None).0, Reason::Userunknown);
        assert_eq!(
            run("5.1.1", Some(Reason::Suspend)).0,
            Reason::Userunknown,
            "a specific addressing code keeps the wording"
        );
        assert_eq!(
            run("5.0.0", Some(Reason::Expired)).0,
            Reason::Userunknown,
            "a queue-time hint names no cause"
        );
    }

    #[test]
    fn one_bounce_per_recipient_and_none_for_none() {
        let c = Classifier::new();
        let rep = report(
            Kind::Dsn,
            vec![
                rcpt("failed", "5.1.1", "550 5.1.1 user unknown"),
                rcpt("failed", "5.2.2", "552 5.2.2 mailbox full"),
            ],
        );
        let out = c.classify(&rep);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].reason, Reason::Userunknown);
        assert_eq!(out[1].reason, Reason::Mailboxfull);
        assert!(c.classify(&report(Kind::NotBounce, vec![])).is_empty());
    }

    #[test]
    fn hard_and_soft() {
        let b = one(
            Kind::Dsn,
            rcpt(
                "failed",
                "5.1.1",
                "550 5.1.1 <user@example.com>: user unknown",
            ),
        );
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Userunknown, BounceType::Hard)
        );
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        assert_eq!(b.replycode.as_deref(), Some("550"));
        assert_eq!(b.rule, "userunknown.text.no-such-user");

        let b = one(
            Kind::Dsn,
            rcpt(
                "failed",
                "4.1.1",
                "450 4.1.1 user unknown in virtual alias table",
            ),
        );
        assert_eq!(
            b.bounce_type,
            BounceType::Hard,
            "userunknown is hard even with 4.x.x"
        );

        let b = one(
            Kind::Dsn,
            rcpt("failed", "5.7.1", "550 5.7.1 message rejected as spam"),
        );
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Spamdetected, BounceType::Soft)
        );

        let b = one(Kind::Dsn, rcpt("failed", "5.2.2", "552 5.2.2 mailbox full"));
        assert_eq!(b.bounce_type, BounceType::Soft);

        let b = one(
            Kind::Dsn,
            rcpt(
                "failed",
                "5.1.10",
                "556 5.1.10 recipient domain has a null MX",
            ),
        );
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Notaccept, BounceType::Hard)
        );
        let b = one(Kind::Dsn, rcpt("delayed", "4.1.10", "null MX"));
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Notaccept, BounceType::Soft)
        );
    }

    #[test]
    fn generic_codes_need_words() {
        for (status, diag) in [
            ("5.0.0", "550 5.0.0 nope"),
            ("5.7.1", "550 5.7.1 go away"),
            ("4.0.0", ""),
        ] {
            let b = one(Kind::Dsn, rcpt("failed", status, diag));
            assert_eq!(b.reason, Reason::Onhold, "{status} {diag}");
            assert_eq!(b.bounce_type, BounceType::Soft);
            assert_eq!(b.rule, "fallback.onhold");
        }
        let b = one(Kind::Dsn, RecipientReport::default());
        assert_eq!(
            (b.reason, b.rule.as_str()),
            (Reason::Onhold, "fallback.onhold")
        );
        let b = one(Kind::NotBounce, RecipientReport::default());
        assert_eq!(
            (b.reason, b.rule.as_str()),
            (Reason::Undefined, "fallback.undefined")
        );
    }

    #[test]
    fn specific_code_in_text_beats_generic_field() {
        let b = one(Kind::Dsn, rcpt("failed", "5.0.0", "550 5.1.1 no such user"));
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        let b = one(Kind::Dsn, rcpt("failed", "5.2.2", "odd server (#5.1.1)"));
        assert_eq!(
            b.status.as_deref(),
            Some("5.2.2"),
            "a specific field beats a code that stands alone in the text"
        );
        let b = one(
            Kind::Dsn,
            rcpt("failed", "5.1.1", "550 5.7.1 your network is listed"),
        );
        assert_eq!(
            (b.status.as_deref(), b.replycode.as_deref()),
            (Some("5.7.1"), Some("550")),
            "the server's own reply beats the field"
        );
        let b = one(
            Kind::Dsn,
            rcpt(
                "failed",
                "4.4.7",
                "451 4.4.7 gave up after 3 days <421 4.4.2 mx.example.net lost connection>",
            ),
        );
        assert_eq!(
            (b.status.as_deref(), b.replycode.as_deref()),
            (Some("4.4.2"), Some("421")),
            "the remote reply inside the MTA's summary wins"
        );
        let b = one(
            Kind::Dsn,
            rcpt("failed", "5.3.0", "550 5.0.0 <user@example.com>... refused"),
        );
        assert_eq!(
            b.status.as_deref(),
            Some("5.3.0"),
            "a generic server code does not beat a specific field"
        );
        let b = one(
            Kind::Dsn,
            rcpt(
                "failed",
                "4.0.0",
                "554 no entry here, see https://example.net/why",
            ),
        );
        assert_eq!(
            (b.status.as_deref(), b.replycode),
            (Some("4.0.0"), None),
            "a reply code that contradicts the status class is dropped"
        );
        let b = one(
            Kind::Dsn,
            rcpt(
                "failed",
                "",
                "host mx.example.net said: 552 5.2.2 over quota",
            ),
        );
        assert_eq!(b.status.as_deref(), Some("5.2.2"));
        let b = one(
            Kind::Dsn,
            rcpt("failed", "", "connect to 192.0.2.1 refused"),
        );
        assert_eq!(b.status, None, "never invented");
        assert_eq!(b.replycode, None);
    }

    #[test]
    fn code_rules_when_no_words() {
        let b = one(Kind::Dsn, rcpt("failed", "5.1.1", ""));
        assert_eq!(
            (b.reason, b.rule.as_str()),
            (Reason::Userunknown, "userunknown.status.x11")
        );
        let b = one(
            Kind::Dsn,
            rcpt("failed", "5.2.2", "550 see https://example.net/help"),
        );
        assert_eq!(b.reason, Reason::Mailboxfull);
        let b = one(Kind::Dsn, rcpt("failed", "5.3.4", ""));
        assert_eq!(b.reason, Reason::Mesgtoobig);
    }

    #[test]
    fn precedence_text_then_hint_then_code() {
        let mut r = rcpt(
            "failed",
            "5.1.1",
            "550 5.1.1 refused due to recipient preferences",
        );
        r.reason_hint = Some(Reason::Userunknown);
        let b = one(Kind::Text, r);
        assert_eq!(
            b.reason,
            Reason::Filtered,
            "text beats the hint and the code"
        );

        let mut r = rcpt("failed", "5.2.2", "550 see https://example.net/help");
        r.reason_hint = Some(Reason::Suspend);
        let b = one(Kind::Text, r);
        assert_eq!(
            (b.reason, b.rule.as_str()),
            (Reason::Suspend, "reader.hint"),
            "hint beats code"
        );
    }

    #[test]
    fn delivered_feedback_vacation() {
        let b = one(Kind::Dsn, rcpt("delivered", "2.0.0", "250 ok"));
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Delivered, BounceType::None)
        );
        assert_eq!(b.rule, "action.delivered");
        let b = one(Kind::Dsn, rcpt("relayed", "", ""));
        assert_eq!(b.reason, Reason::Delivered);
        let b = one(Kind::Dsn, rcpt("", "2.1.5", ""));
        assert_eq!(
            (b.reason, b.rule.as_str()),
            (Reason::Delivered, "status.success")
        );

        let mut r = rcpt("", "", "");
        r.feedback_type = Some("abuse".into());
        let b = one(Kind::Feedback, r);
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Feedback, BounceType::Complaint)
        );
        assert_eq!(b.feedback_type.as_deref(), Some("abuse"));
        assert_eq!(b.rule, "kind.feedback");

        let b = one(Kind::Autoreply, rcpt("", "", "I am out of the office"));
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Vacation, BounceType::None)
        );
    }

    #[test]
    fn delayed_and_expired() {
        let b = one(Kind::Dsn, rcpt("delayed", "4.4.7", ""));
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Expired, BounceType::Soft)
        );
        let b = one(
            Kind::Dsn,
            rcpt(
                "failed",
                "4.4.1",
                "connect to mx.example.net[192.0.2.7]:25: Connection timed out",
            ),
        );
        assert_eq!(b.reason, Reason::Expired, "a final failure after timeouts");
        let b = one(Kind::Dsn, rcpt("failed", "5.0.0", "retry timeout exceeded"));
        assert_eq!(b.reason, Reason::Expired);
        let b = one(
            Kind::Dsn,
            rcpt("delayed", "4.2.2", "452 4.2.2 mailbox full"),
        );
        assert_eq!(b.reason, Reason::Mailboxfull);
        let b = one(
            Kind::Dsn,
            rcpt("delayed", "4.0.0 (host name lookup failure)", ""),
        );
        assert_eq!(b.reason, Reason::Networkerror, "the status comment is read");
        let b = one(Kind::Text, rcpt("delayed", "", ""));
        assert_eq!(
            (b.reason, b.rule.as_str()),
            (Reason::Expired, "fallback.delayed"),
            "a delay notice without a cause"
        );
        let b = one(Kind::Text, rcpt("failed", "", ""));
        assert_eq!(
            b.reason,
            Reason::Onhold,
            "a failure without a cause is not a delay"
        );
        let b = one(
            Kind::Text,
            rcpt(
                "delayed",
                "",
                "450 only 2 unverifiable sending IPs allowed for example.org",
            ),
        );
        assert_eq!(b.reason, Reason::Requireptr);
    }

    #[test]
    fn transient_dns_failure_is_not_hostunknown() {
        let b = one(
            Kind::Dsn,
            rcpt(
                "failed",
                "5.4.4",
                "Host or domain name not found. Name service error for name=example.net type=A: Host not found",
            ),
        );
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Hostunknown, BounceType::Hard)
        );
        let b = one(
            Kind::Dsn,
            rcpt(
                "delayed",
                "4.4.3",
                "Host or domain name not found. Name service error for name=example.net type=MX: Host not found, try again",
            ),
        );
        assert_eq!(b.bounce_type, BounceType::Soft);
    }

    #[test]
    fn sender_problems_are_never_hard() {
        for (status, diag, command) in [
            ("5.1.8", "553 5.1.8 no such domain", None),
            ("5.1.7", "550 5.1.7 user unknown", None),
            ("5.0.0", "550 sender account does not exist", None),
            ("5.0.0", "550 sender user unknown", None),
            ("5.0.0", "550 user unknown", Some("MAIL")),
            ("5.0.0", "550 domain not found", Some("MAIL")),
        ] {
            let mut r = rcpt("failed", status, diag);
            r.command = command.map(str::to_string);
            let b = one(Kind::Dsn, r);
            assert_eq!(
                (b.reason, b.bounce_type),
                (Reason::Rejected, BounceType::Soft),
                "{diag}"
            );
        }
    }

    #[test]
    fn command_and_diagnostic_type() {
        let mut r = rcpt("failed", "5.0.0", "550 user unknown");
        r.command = Some("DATA".into());
        assert_eq!(one(Kind::Dsn, r).reason, Reason::Filtered);
        let mut r = rcpt("failed", "5.0.0", "550 user unknown");
        r.command = Some("RCPT".into());
        assert_eq!(one(Kind::Dsn, r).reason, Reason::Userunknown);
        let mut r = rcpt("failed", "5.3.0", "75");
        r.diagnostic_type = Some("X-Unix".into());
        assert_eq!(one(Kind::Dsn, r).reason, Reason::Mailererror);
        let mut r = rcpt("failed", "", "554 no SMTP service here");
        r.command = Some("CONN".into());
        assert_eq!(one(Kind::Text, r).reason, Reason::Blocked);
    }

    #[test]
    fn mailbox_unavailable_is_a_dead_mailbox_unless_refuted() {
        let run = |status: &str, diag: &str, command: Option<&str>| {
            let mut r = rcpt("failed", status, diag);
            r.command = command.map(str::to_string);
            let b = one(Kind::Dsn, r);
            (b.reason, b.bounce_type)
        };
        // RFC 5321's 550 text: Outlook.com and GMX answer it for addresses that do not exist.
        for (status, diag, command) in [
            (
                "5.1.1",
                "550 5.1.1 Requested action not taken: mailbox unavailable",
                None,
            ),
            (
                "",
                "550 Requested action not taken: mailbox unavailable",
                Some("RCPT"),
            ),
            (
                "5.0.0",
                "550 Requested action not taken: mailbox unavailable",
                None,
            ),
        ] {
            assert_eq!(
                run(status, diag, command),
                (Reason::Userunknown, BounceType::Hard),
                "{diag} {command:?}"
            );
        }
        // After the data, or beside a policy code, it is a filter speaking.
        assert_eq!(
            run(
                "",
                "550 Requested action not taken: mailbox unavailable",
                Some("DATA")
            ),
            (Reason::Filtered, BounceType::Soft)
        );
        assert_eq!(
            run("5.7.1", "550 5.7.1 mailbox unavailable", Some("RCPT")),
            (Reason::Filtered, BounceType::Soft)
        );
        assert_eq!(
            run(
                "",
                "450 Requested mail action not taken: mailbox unavailable",
                Some("RCPT")
            )
            .1,
            BounceType::Soft,
            "a transient reply is not a refusal of the address"
        );
    }

    #[test]
    fn a_bare_address_refusal_at_rcpt_is_the_recipients() {
        let run = |status: &str, diag: &str, command: Option<&str>| {
            let mut r = rcpt("failed", status, diag);
            r.command = command.map(str::to_string);
            one(Kind::Text, r).reason
        };
        for (status, diag) in [
            ("", "550 Address rejected"),
            ("5.1.0", "550 5.1.0 Address rejected oli@example.net"),
            ("5.1.0", "550 #5.1.0 Address rejected."),
            ("", "550 <oli@example.net>: address refused"),
        ] {
            assert_eq!(
                run(status, diag, Some("RCPT")),
                Reason::Userunknown,
                "{diag}"
            );
        }
        // Not at RCPT, beside a policy code, or naming the sender: not the recipient's address.
        assert_ne!(run("", "550 Address rejected", None), Reason::Userunknown);
        assert_ne!(
            run("", "550 Address rejected", Some("DATA")),
            Reason::Userunknown
        );
        assert_ne!(
            run("5.7.1", "550 5.7.1 Address rejected", Some("RCPT")),
            Reason::Userunknown
        );
        assert_eq!(
            run("5.1.0", "550 5.1.0 Sender address rejected", Some("RCPT")),
            Reason::Rejected
        );
    }

    #[test]
    fn a_bare_request_to_retry_is_a_delaying_filter_but_a_named_cause_decides() {
        let run = |status: &str, diag: &str| one(Kind::Text, rcpt("failed", status, diag)).reason;
        assert_eq!(
            run("4.7.1", "451 4.7.1 Please try again later"),
            Reason::Blocked
        );
        assert_eq!(
            run("4.7.1", "450 4.7.1 Rate limit exceeded, try again later"),
            Reason::Speeding
        );
    }

    #[test]
    fn a_named_cause_outweighs_the_words_around_it() {
        let run = |status: &str, diag: &str, command: Option<&str>| {
            let mut r = rcpt("failed", status, diag);
            r.command = command.map(str::to_string);
            one(Kind::Text, r).reason
        };
        // The system's ECONNREFUSED ends the line; a server's refusal gives its reason after it.
        assert_eq!(
            run(
                "",
                "connect to mx.example.net[192.0.2.8]:25: Connection refused",
                None
            ),
            Reason::Expired
        );
        assert_eq!(
            run(
                "",
                "421 Connection refused: your IP has a poor reputation",
                None
            ),
            Reason::Badreputation
        );
        // An invalid HELO judges the sending host, whatever command it was refused at.
        assert_eq!(
            run("", "550 Access denied - Invalid HELO name", Some("MAIL")),
            Reason::Blocked
        );
        // Refused for what it contains, no spam or virus named: the site's content policy.
        assert_eq!(
            run(
                "",
                "554 Your message was blocked because it contains suspicious links",
                Some("DATA")
            ),
            Reason::Policyviolation
        );
        assert_eq!(
            run(
                "",
                "554 Rejected because the message contains a virus",
                Some("DATA")
            ),
            Reason::Virusdetected
        );
        // Retries that ran out, said plainly.
        for diag in [
            "Maximum delivery attempts exceeded",
            "Too many retries",
            "Could not deliver the message in the time limit specified.",
            "The message could not be delivered within the retry period",
            "Your message was not delivered within 5 days: Host 192.0.2.8 is not responding.",
            "Remote server mx.example.net is not responding",
        ] {
            assert_eq!(run("", diag, None), Reason::Expired, "{diag}");
        }
        // Storage: the recipient's mailbox named is its quota; the system's own storage is not.
        assert_eq!(
            run(
                "",
                "550 Insufficient storage space in the recipient's mailbox",
                None
            ),
            Reason::Mailboxfull
        );
        for diag in [
            "452 4.3.1 Insufficient system storage",
            "452 Out of disk space on the server, try later",
        ] {
            assert_eq!(run("", diag, None), Reason::Systemfull, "{diag}");
        }
        assert_eq!(
            run(
                "",
                "550 The recipient has chosen not to receive mail from you",
                None
            ),
            Reason::Filtered
        );
        // Addresses and recipients stated unknown, in the forms of the plain wording.
        for diag in [
            "The following destination addresses were unknown (please check the addresses)",
            "Sorry, the following recipient is unknown",
            "550 the user is unknown here",
            "Your mail was returned because the account no longer exists.",
            "550 user has no mailbox on this server",
        ] {
            assert_eq!(run("", diag, None), Reason::Userunknown, "{diag}");
        }
    }

    #[test]
    fn exchange_delivery_restrictions_are_the_recipients_filter() {
        for diag in [
            "You don't have permission to send to this recipient.",
            "You do not have permission to send to this recipient. For assistance, contact your system administrator.",
        ] {
            assert_eq!(
                one(Kind::Text, rcpt("failed", "5.7.1", diag)).reason,
                Reason::Filtered,
                "{diag}"
            );
        }
    }

    #[test]
    fn unknown_user_holds_unless_positive_evidence_refutes_it() {
        let run = |status: &str, diag: &str, command: Option<&str>, hint: Option<Reason>| {
            let mut r = rcpt("failed", status, diag);
            r.command = command.map(str::to_string);
            r.reason_hint = hint;
            let b = one(Kind::Dsn, r);
            (b.reason, b.bounce_type, b.rule)
        };
        // No evidence either way, an answer to RCPT TO, or an addressing code: a dead mailbox.
        for (status, diag, command) in [
            ("5.0.0", "550 no such mailbox here", None),
            ("", "554 unknown user nobody@example.com", None),
            ("", "User unknown", None),
            ("", "Invalid recipient", None),
            ("5.0.0", "550 no such mailbox here", Some("RCPT")),
            ("5.1.1", "550 5.1.1 no such mailbox here", Some("DATA")),
            (
                "5.0.0",
                "550 no such mailbox: nobody (in reply to RCPT TO command)",
                None,
            ),
        ] {
            let (reason, kind, _) = run(status, diag, command, None);
            assert_eq!(
                (reason, kind),
                (Reason::Userunknown, BounceType::Hard),
                "{status} {diag} {command:?}"
            );
        }
        let (reason, _, rule) = run("", "mailbox unknown", None, Some(Reason::Userunknown));
        assert_eq!(
            (reason, rule.as_str()),
            (Reason::Userunknown, "userunknown.text.no-such-user")
        );
        // Positive evidence of a filter: after the data, or a policy code.
        for (status, diag, command) in [
            ("5.0.0", "550 no such mailbox here", Some("DATA")),
            (
                "5.0.0",
                "550 unknown user (in reply to end of DATA command)",
                None,
            ),
            (
                "5.7.1",
                "550 5.7.1 <nobody@example.com>... User unknown",
                None,
            ),
        ] {
            let (reason, kind, rule) = run(status, diag, command, None);
            assert_eq!(
                (reason, kind, rule.as_str()),
                (
                    Reason::Filtered,
                    BounceType::Soft,
                    "userunknown.text.no-such-user.refuted"
                ),
                "{status} {diag} {command:?}"
            );
        }
        // A reader that knows another reason for the format beats wording no code confirms.
        let (reason, _, rule) = run("", "unknown user", None, Some(Reason::Suspend));
        assert_eq!((reason, rule.as_str()), (Reason::Suspend, "reader.hint"));
        // Provider sentences that only ever mean a missing mailbox hold even after DATA.
        let (reason, _, _) = run(
            "5.0.0",
            "554 delivery error: dd This user doesn't have a example.net account (nobody@example.net) [0]",
            Some("DATA"),
            None,
        );
        assert_eq!(reason, Reason::Userunknown);
    }

    #[test]
    fn a_delay_notice_is_never_hard() {
        let b = one(
            Kind::Dsn,
            rcpt(
                "delayed",
                "4.1.1",
                "450 4.1.1 <nobody@example.com>: User unknown",
            ),
        );
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Userunknown, BounceType::Soft)
        );
        let b = one(
            Kind::Dsn,
            rcpt(
                "failed",
                "4.1.1",
                "450 4.1.1 <nobody@example.com>: User unknown",
            ),
        );
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Userunknown, BounceType::Hard),
            "a final failure keeps the reason's type, even with a transient code"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(
            action in "\\PC{0,12}",
            status in "\\PC{0,16}",
            diag in "\\PC{0,300}",
            command in proptest::option::of("[A-Za-z]{0,6}"),
        ) {
            let mut r = rcpt(&action, &status, &diag);
            r.command = command;
            let out = SHARED.classify(&report(Kind::Dsn, vec![r]));
            proptest::prop_assert_eq!(out.len(), 1);
        }
    }

    #[test]
    fn copies_report_fields() {
        let mut rep = report(Kind::Dsn, vec![rcpt("failed", "5.1.1", "")]);
        rep.original = Some(Original {
            message_id: Some("abc@example.org".into()),
            from: Some("news@example.org".into()),
            to: Some("user@example.com".into()),
            subject: Some("Hello".into()),
            list_id: Some("<news.example.org>".into()),
            campaign: None,
        });
        rep.recipients[0].remote_mta = Some("mx.example.com".into());
        let out = Classifier::new().classify(&rep);
        let b = &out[0];
        assert_eq!(b.reporting_mta.as_deref(), Some("mta.example.org"));
        assert_eq!(b.remote_mta.as_deref(), Some("mx.example.com"));
        assert_eq!(b.date.as_deref(), Some("Mon, 2 Nov 2026 10:00:00 +0000"));
        assert_eq!(b.reader, "dsn");
        assert_eq!(b.original_message_id.as_deref(), Some("abc@example.org"));
        assert_eq!(b.original_list_id.as_deref(), Some("<news.example.org>"));
        assert_eq!(b.recipient.as_deref(), Some("user@example.com"));
    }

    #[test]
    fn provider_rules_see_the_recipient_and_the_mtas() {
        let c = Classifier::new();
        let mut r = rcpt("failed", "5.0.0", "542 lee@example.org Rejected");
        r.recipient = Some("lee@example.org".into());
        let mut rep = report(Kind::Dsn, vec![r]);
        rep.reporting_mta = Some("node4.messagelabs.com".into());
        let out = c.classify(&rep);
        assert_eq!(
            out.first()
                .map(|b| (b.reason, b.bounce_type, b.rule.as_str())),
            Some((
                Reason::Userunknown,
                BounceType::Hard,
                "userunknown.provider.messagelabs"
            )),
            "the report-wide reporting MTA counts"
        );

        let mut r = rcpt("failed", "5.0.0", "550 Unknown user lee@example.jp");
        r.command = Some("DATA".into());
        r.remote_mta = Some("mx2.docomo.ne.jp".into());
        let b = one(Kind::Dsn, r);
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Filtered, BounceType::Soft)
        );
    }

    #[test]
    fn a_mailbox_status_code_refutes_unknown_user_wording() {
        // X.2.1 says the mailbox exists but is disabled: the code's registered meaning decides,
        // never hard.
        let b = one(
            Kind::Dsn,
            rcpt(
                "failed",
                "5.2.1",
                "550 5.2.1 <ann@example.com>... User Unknown",
            ),
        );
        assert_eq!(
            (b.reason, b.bounce_type, b.rule.as_str()),
            (Reason::Suspend, BounceType::Soft, "suspend.status.disabled")
        );
        // X.2.2 beside the same words: a full mailbox.
        let b = one(
            Kind::Dsn,
            rcpt(
                "failed",
                "5.2.2",
                "552 5.2.2 <ann@example.com>... User Unknown",
            ),
        );
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Mailboxfull, BounceType::Soft)
        );
        // The generic X.2.0 says nothing either way: the words decide.
        let b = one(
            Kind::Dsn,
            rcpt("failed", "5.2.0", "550 <ann@example.com>... User unknown"),
        );
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Userunknown, BounceType::Hard)
        );
        // An addressing code beside the mailbox-status code still says the mailbox is gone.
        let b = one(
            Kind::Dsn,
            rcpt("failed", "5.1.1", "550 5.1.1 5.2.1 Recipient unknown"),
        );
        assert_eq!(b.bounce_type, BounceType::Hard);
    }

    #[test]
    fn the_carrier_rule_holds_only_for_the_carriers_its_sources_name() {
        let at = |remote: &str, domain: &str| {
            let mut r = rcpt("failed", "5.0.0", "550 Unknown user");
            r.recipient = Some(format!("kei@{domain}"));
            r.remote_mta = Some(remote.into());
            one(Kind::Dsn, r)
        };
        let b = at("mfsmax.docomo.ne.jp", "docomo.ne.jp");
        assert_eq!(
            (b.reason, b.rule.as_str()),
            (Reason::Filtered, "filtered.provider.jp-carrier")
        );
        let b = at("mx.i.softbank.jp", "i.softbank.jp");
        assert_eq!(b.reason, Reason::Filtered);
        // au/KDDI is not named by the sources: the general rule decides.
        let b = at("lsean.ezweb.ne.jp", "ezweb.ne.jp");
        assert_eq!(
            (b.reason, b.bounce_type, b.rule.as_str()),
            (
                Reason::Userunknown,
                BounceType::Hard,
                "userunknown.text.no-such-user"
            )
        );
    }

    #[test]
    fn gateways_documented_to_answer_unknown_users_with_a_policy_code() {
        let mut r = rcpt("failed", "5.7.1", "550 5.7.1 Unknown user");
        r.remote_mta = Some("mx0a-001.pphosted.com".into());
        let b = one(Kind::Dsn, r);
        assert_eq!(
            (b.reason, b.bounce_type, b.rule.as_str()),
            (
                Reason::Userunknown,
                BounceType::Hard,
                "userunknown.provider.gateway-policy-code"
            )
        );
        let b = one(
            Kind::Dsn,
            rcpt(
                "failed",
                "5.7.1",
                "553 Invalid recipient ann@example.com (Mode: normal)",
            ),
        );
        assert_eq!(
            (b.reason, b.rule.as_str()),
            (Reason::Userunknown, "userunknown.provider.messagelabs-mode")
        );
        let mut r = rcpt("failed", "5.7.1", "550 5.7.1 No such user");
        r.remote_mta = Some("mx.yandex.ru".into());
        assert_eq!(one(Kind::Dsn, r).bounce_type, BounceType::Hard);
        let b = one(
            Kind::Dsn,
            rcpt("failed", "5.7.1", "554 5.7.1 Denied (Mode: normal)"),
        );
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Spamdetected, BounceType::Soft)
        );
        // The same code and words from anyone else are a policy refusal.
        let mut r = rcpt("failed", "5.7.1", "550 5.7.1 Unknown user");
        r.remote_mta = Some("mx.example.net".into());
        let b = one(Kind::Dsn, r);
        assert_eq!(
            (b.reason, b.bounce_type),
            (Reason::Filtered, BounceType::Soft)
        );
    }

    #[test]
    fn japanese_notices_of_a_missing_recipient_and_a_full_mailbox() {
        let b = one(
            Kind::Text,
            rcpt(
                "failed",
                "",
                "受信者のメールアドレス有効性の確認をお願いします。",
            ),
        );
        assert_eq!(b.reason, Reason::Userunknown);
        let b = one(
            Kind::Text,
            rcpt(
                "failed",
                "",
                "【freeserve管理メール】メールを受け取ることが出来ませんでした。",
            ),
        );
        assert_eq!(b.reason, Reason::Mailboxfull);
    }

    #[test]
    fn a_malformed_message_breaks_the_format_whatever_the_content_code() {
        // Cyrus LMTP's malformed-message replies come with 5.6.0, a content code: the wording
        // names the format fault (RFC 5321 section 2.3.8, RFC 5322 section 2.2), so it decides.
        for diag in [
            "554 5.6.0 Message contains bare newlines",
            "554 5.6.0 bare newlines",
            "550 5.6.0 Bare linefeed (LF) not allowed",
            "554 5.6.0 Message contains NUL characters",
            "554 5.6.0 Message contains non-ASCII characters in headers",
            "554 5.6.0 invalid header",
            "554 5.6.0 Message has no header/body separator",
        ] {
            let b = one(Kind::Dsn, rcpt("failed", "5.6.0", diag));
            assert_eq!(b.reason, Reason::Notcompliantrfc, "{diag}");
            assert_eq!(b.bounce_type, BounceType::Soft, "{diag}");
        }
    }

    #[test]
    fn notice_boilerplate_alone_names_nothing() {
        let b = one(
            Kind::Text,
            rcpt(
                "failed",
                "",
                "Delivery to the following recipients failed permanently:",
            ),
        );
        assert_eq!(
            (b.reason, b.rule.as_str()),
            (Reason::Undefined, "fallback.undefined")
        );
        let b = one(
            Kind::Text,
            rcpt(
                "failed",
                "",
                "If you do so, please include this problem report. You can delete your own text from the attached returned message.",
            ),
        );
        assert_eq!(b.reason, Reason::Undefined);
        let b = one(
            Kind::Text,
            rcpt(
                "failed",
                "",
                "I'm sorry to have to inform you that your message could not be delivered to one or more recipients. It's attached below.",
            ),
        );
        assert_eq!(b.reason, Reason::Undefined);
        // A code, or any other words, is evidence of a failure whose cause is undecided.
        let b = one(
            Kind::Text,
            rcpt(
                "failed",
                "5.0.0",
                "Delivery to the following recipients failed permanently:",
            ),
        );
        assert_eq!(b.reason, Reason::Onhold);
        let b = one(
            Kind::Text,
            rcpt("failed", "", "The gateway could not hand the message on"),
        );
        assert_eq!(b.reason, Reason::Onhold);
    }
}
