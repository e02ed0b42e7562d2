//! Why one message got the results it got: which reader recognised it, what each recipient's fields
//! are and where its codes came from, which rule chose the reason, and why the result is hard or soft.
//!
//! Pure, and built only on the public reading and classifying APIs, so it explains exactly what
//! [`crate::analyze`] does. This is a tool for one message at a time (`bounced eval --explain`), not a
//! hot path: it parses the message a second time to look at the format checks of every reader, and
//! compiles the few patterns of the one rule that fired to show which of them matched.

use regex::RegexBuilder;
use serde::Serialize;

use crate::classify::codes::{self, ReplyCode, StatusCode};
use crate::classify::rules::{self, Facts, Rule};
use crate::classify::{Bounce, BounceType, Classifier, Reason, facts_of};
use crate::report::{self, Kind, ReadOptions, RecipientReport, Report, dsn, text};

/// Everything `--explain` says about one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// `dsn`, `text`, `feedback`, `autoreply`, `not_bounce` or `error` (as `classify` prints it).
    pub kind: &'static str,
    /// The reader that recognised the message (`none` when none did).
    pub reader: &'static str,
    /// Why that reader, and that kind: one sentence per piece of evidence.
    pub why: Vec<String>,
    /// The bounce's own From, Subject and top-level content type, as the readers saw them.
    pub from: Option<String>,
    /// The bounce's own Subject.
    pub subject: Option<String>,
    /// The top-level content type (`multipart/report; report-type=delivery-status`).
    pub content_type: Option<String>,
    /// One entry per result, in output order.
    pub recipients: Vec<RecipientExplanation>,
    /// The read error, when the message could not be read.
    pub error: Option<String>,
}

/// What was read and decided for one recipient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecipientExplanation {
    /// The fields as the reader extracted them, before classification.
    pub read: RecipientReport,
    /// The classified result (what `classify` prints).
    pub result: Bounce,
    /// Where the status code came from.
    pub status_source: String,
    /// Where the reply code came from.
    pub replycode_source: String,
    /// The rule (or built-in step) that chose the reason.
    pub rule: RuleExplanation,
    /// Why the result is hard, soft, a complaint or none.
    pub bounce_type_why: String,
}

/// The rule that chose a reason, and why it applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleExplanation {
    /// The rule id, or a built-in step (`kind.feedback`, `reader.hint`, `fallback.onhold`, ...).
    pub id: String,
    /// The step of the decision that chose the reason: `kind`, `success`, `provider`, `text`,
    /// `reader hint`, `enhanced code`, `reply code and command`, `diagnostic type or action`,
    /// `notice` (the report's own notice overruled a hard verdict) or `fallback` (nothing told).
    pub step: &'static str,
    /// The rule's note (its source: RFC section, MTA), when it has one.
    pub note: Option<String>,
    /// The condition that matched, in words.
    pub condition: String,
}

/// Explains one message as [`crate::analyze`] would classify it with this classifier and these options.
pub fn explain(bytes: &[u8], classifier: &Classifier, opts: &ReadOptions) -> Explanation {
    let report = match report::read_with(bytes, opts) {
        Ok(r) => r,
        Err(e) => {
            return Explanation {
                kind: "error",
                reader: "none",
                why: vec![format!("the message could not be read: {e}")],
                from: None,
                subject: None,
                content_type: None,
                recipients: Vec::new(),
                error: Some(e.to_string()),
            };
        }
    };
    let bounces = classifier.classify(&report);
    let kind = match report.kind {
        Some(k) if !bounces.is_empty() || k == Kind::NotBounce => k.as_str(),
        _ => Kind::NotBounce.as_str(),
    };
    let parsed = mail_parser::MessageParser::default().parse(bytes);
    let content_type = parsed.as_ref().and_then(top_content_type);
    let why = match &parsed {
        Some(message) => reader_evidence(message, &report, bounces.is_empty()),
        None => vec!["the message has no header mail-parser could read".to_string()],
    };
    let recipients = report
        .recipients
        .iter()
        .zip(bounces)
        .map(|(read, result)| explain_recipient(classifier, &report, read, result))
        .collect();
    Explanation {
        kind,
        reader: report.reader,
        why,
        from: report.from.clone(),
        subject: report.subject.clone(),
        content_type,
        recipients,
        error: None,
    }
}

/// `type/subtype` of the message, with its `report-type` when it has one.
fn top_content_type(message: &mail_parser::Message) -> Option<String> {
    use mail_parser::MimeHeaders;
    let ct = message.root_part().content_type()?;
    let mut out = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""));
    if let Some(rt) = ct.attribute("report-type") {
        out.push_str("; report-type=");
        out.push_str(rt);
    }
    Some(out.to_ascii_lowercase())
}

/// Sentences saying why the message got its reader and kind.
fn reader_evidence(
    message: &mail_parser::Message,
    report: &Report,
    no_result: bool,
) -> Vec<String> {
    let subject = report.subject.as_deref().unwrap_or("");
    let from = report.from.as_deref().unwrap_or("");
    let body = text::readable_text(message);
    let input = text::Input::new(message, subject, from, &body);
    let detected: Vec<&str> = text::FAMILIES
        .iter()
        .filter(|f| (f.detect)(&input))
        .map(|f| f.name)
        .collect();
    let looks = report::looks_like_bounce(&input);
    let states = report::states_non_delivery(&input);
    let mut why = Vec::new();
    match (report.kind, report.reader) {
        (Some(Kind::Feedback), _) => why.push(
            "an ARF feedback report (RFC 5965): a message/feedback-report part names the complaint"
                .to_string(),
        ),
        (Some(Kind::Dsn), _) => {
            if dsn::read(message).is_some_and(|d| !d.recipients.is_empty()) {
                why.push(
                    "a delivery status notification (RFC 3464): a message/delivery-status part \
                     holds one field block per recipient"
                        .to_string(),
                );
            } else {
                why.push(
                    "DSN field blocks (Final-Recipient, Action, Status) written inline in the text \
                     (the MIME structure carries no delivery-status part)"
                        .to_string(),
                );
            }
        }
        (Some(Kind::Autoreply), _) => why.push(
            "an automatic reply: Auto-Submitted: auto-replied (RFC 3834), an X-Autoreply/X-Autorespond \
             or Precedence: auto_reply header, or out-of-office wording in the subject; and no sign \
             of a failure report"
                .to_string(),
        ),
        (Some(Kind::Text), report::verp::NAME) => why.push(
            "it looks like a bounce but no reader found a recipient in it: the recipient is decoded \
             from the VERP address the bounce was sent to"
                .to_string(),
        ),
        (Some(Kind::Text), text::NAME) => why.push(
            "a free-text report in no known family's format, read by the general reader (it looks \
             like a bounce, and its text names the failed recipients)"
                .to_string(),
        ),
        (Some(Kind::Text), "none") => why.push(
            "it looks like a bounce and says delivery failed, but it is in no known family's \
             format"
                .to_string(),
        ),
        (Some(Kind::Text), name) => why.push(format!(
            "a free-text report in the `{name}` family's format: its format check matched and its \
             reader found the recipients"
        )),
        (Some(Kind::NotBounce | Kind::Error) | None, _) => why.push(
            "no reader recognised a report: no feedback or delivery-status part, no family format, \
             no auto-reply marker"
                .to_string(),
        ),
    }
    if report.kind == Some(Kind::Text) && report.recipients.is_empty() {
        why.push("it looks like a bounce, but no recipient could be found".to_string());
    }
    if no_result && report.kind != Some(Kind::NotBounce) && report.kind.is_some() {
        why.push("no result: so it is reported as not_bounce".to_string());
    }
    why.push(format!(
        "outward signs of a bounce (MAILER-DAEMON or postmaster sender, failure subject, empty \
         Return-Path, or Auto-Submitted with failure wording): {}",
        if looks { "yes" } else { "no" }
    ));
    why.push(format!(
        "states a non-delivery (an SMTP or enhanced status code, or words such as \"could not be \
         delivered\"), needed by the general and VERP readers: {}",
        if states { "yes" } else { "no" }
    ));
    why.push(if detected.is_empty() {
        "free-text families whose format check matches: none".to_string()
    } else {
        format!(
            "free-text families whose format check matches (tried in this order, after ARF and DSN): {}",
            detected.join(", ")
        )
    });
    why
}

/// The diagnostic the classifier looked at: the remote server's words, or the Status comment when
/// there are none (`4.0.0 (host name lookup failure)`).
fn effective_diagnostic(read: &RecipientReport) -> &str {
    let diagnostic = read.diagnostic.as_deref().unwrap_or("");
    if !diagnostic.trim().is_empty() {
        return diagnostic;
    }
    read.status
        .as_deref()
        .and_then(|s| s.split_once('('))
        .map(|(_, rest)| rest.rsplit_once(')').map_or(rest, |(c, _)| c).trim())
        .filter(|c| !c.is_empty())
        .unwrap_or(diagnostic)
}

fn explain_recipient(
    classifier: &Classifier,
    report: &Report,
    read: &RecipientReport,
    result: Bounce,
) -> RecipientExplanation {
    let diagnostic = effective_diagnostic(read);
    let status = result.status.as_deref().and_then(StatusCode::parse);
    let replycode = result.replycode.as_deref().and_then(ReplyCode::parse);
    let facts = crate::classify::rules::Facts {
        reporting_mta: read
            .reporting_mta
            .as_deref()
            .or(report.reporting_mta.as_deref()),
        ..facts_of(read, diagnostic, status, replycode)
    };
    let rule = explain_rule(classifier, report, read, &result, &facts);
    let bounce_type_why = bounce_type_why(
        result.reason,
        result.bounce_type,
        status,
        replycode,
        crate::classify::delay_notice(&facts),
    );
    RecipientExplanation {
        status_source: status_source(report, read, status, diagnostic),
        replycode_source: code_source(replycode.map(|r| (r.to_string(), r.meaning()))),
        read: read.clone(),
        result,
        rule,
        bounce_type_why,
    }
}

/// A code with its meaning, and that it came from the diagnostic; or that there is none.
fn code_source(code: Option<(String, Option<&str>)>) -> String {
    match code {
        None => "none in the message (never invented)".to_string(),
        Some((code, meaning)) => format!(
            "{code}{}, found in the diagnostic",
            meaning.map(|m| format!(" ({m})")).unwrap_or_default()
        ),
    }
}

fn status_source(
    report: &Report,
    read: &RecipientReport,
    chosen: Option<StatusCode>,
    diagnostic: &str,
) -> String {
    let Some(chosen) = chosen else {
        return code_source(None);
    };
    let meaning = chosen
        .meaning()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    let field = read
        .status
        .as_deref()
        .and_then(|f| StatusCode::parse(f).or_else(|| codes::find_status(f)));
    let field_name = if report.kind == Some(Kind::Dsn) {
        "the Status field"
    } else {
        "the code the reader took from the report text"
    };
    match field {
        Some(f) if f == chosen => format!("{chosen}{meaning}, from {field_name}"),
        Some(f) => format!(
            "{chosen}{meaning}, from the diagnostic: more specific than the generic {f} of {field_name}"
        ),
        None if codes::find_status(diagnostic) == Some(chosen) => format!(
            "{chosen}{meaning}, found in the diagnostic{}",
            if report.kind == Some(Kind::Dsn) {
                " (there is no Status field)"
            } else {
                ""
            }
        ),
        None => format!("{chosen}{meaning}"),
    }
}

fn describe_facts(facts: &Facts) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    format!(
        "status {}, replycode {}, command {}, action {}, diagnostic type {}, codes {}",
        opt(facts.status.map(|s| s.to_string())),
        opt(facts.replycode.map(|r| r.to_string())),
        opt(facts.command.map(str::to_string)),
        opt(facts.action.map(str::to_string)),
        opt(facts.diagnostic_type.map(str::to_string)),
        if facts.status.is_none() && facts.replycode.is_none() {
            "absent"
        } else if facts.transient() {
            "transient"
        } else {
            "permanent"
        }
    )
}

fn explain_rule(
    classifier: &Classifier,
    report: &Report,
    read: &RecipientReport,
    result: &Bounce,
    facts: &Facts,
) -> RuleExplanation {
    let id = result.rule.clone();
    let step = match id.as_str() {
        "kind.feedback" | "kind.autoreply" => "kind",
        "action.delivered" | "status.success" => "success",
        "reader.hint" => "reader hint",
        "notice.contradicts" => "notice",
        "blocked.command.greeting" => "text",
        other if other.starts_with("fallback.") => "fallback",
        _ => "",
    };
    let builtin = |condition: String| RuleExplanation {
        id: id.clone(),
        step,
        note: None,
        condition,
    };
    match id.as_str() {
        "kind.feedback" => {
            builtin("the message is a feedback report: every result is a complaint".into())
        }
        "kind.autoreply" => builtin("the message is an automatic reply: `vacation`".into()),
        "action.delivered" => builtin(format!(
            "the action `{}` says the message was delivered, relayed or expanded",
            facts.action.unwrap_or("")
        )),
        "status.success" => {
            builtin("a 2.x.x status and no failing action: a success notice".into())
        }
        "reader.hint" => builtin(format!(
            "no text rule matched the diagnostic; the `{}` reader vouched for `{}` from its format's own wording",
            report.reader,
            read.reason_hint.map_or("", Reason::as_str)
        )),
        "notice.contradicts" => builtin(format!(
            "the fields gave a hard reason, but the report's own notice says otherwise and nothing in it says the address is gone: {:?}",
            report.notice.as_deref().unwrap_or("")
        )),
        "fallback.delayed" => builtin(
            "a delay notice with no code and no diagnostic: the message has waited past the warning time"
                .into(),
        ),
        "fallback.onhold" => builtin(format!(
            "no rule matched, but there is evidence of a failure ({})",
            describe_facts(facts)
        )),
        "fallback.undefined" if facts.diagnostic.trim().is_empty() => {
            builtin("nothing to classify by: no code, no diagnostic, no failing action".into())
        }
        "fallback.undefined" => builtin(format!(
            "nothing to classify by: no code, and the diagnostic only says that delivery failed or whom to ask, never why: {:?}",
            facts.diagnostic.trim()
        )),
        _ => {
            // A rule whose wording matched but was refuted (or not confirmed) reports its own id
            // with a suffix; the rule is the same.
            let (base, otherwise) = match id
                .strip_suffix(".refuted")
                .or_else(|| id.strip_suffix(".unconfirmed"))
            {
                Some(base) => (base, true),
                None => (id.as_str(), false),
            };
            match classifier.rules().get(base) {
                Some(rule) => {
                    let mut condition = rule_condition(rule, facts);
                    if otherwise {
                        condition.push_str(&format!(
                            "; but the evidence refutes its reason `{}` (or does not confirm it), so its `otherwise` reason `{}` applies",
                            rule.reason, result.reason
                        ));
                    }
                    RuleExplanation {
                        id: id.clone(),
                        step: rule.step(),
                        note: rule.note.clone(),
                        condition,
                    }
                }
                None => builtin("(not in the rule table)".into()),
            }
        }
    }
}

/// The text pattern of a rule that matches the diagnostic (as the rules see it) and what it matched,
/// then the codes the rule's other conditions were checked against.
fn rule_condition(rule: &Rule, facts: &Facts) -> String {
    let mut on_facts = describe_facts(facts);
    if !rule.hosts().is_empty() {
        on_facts.push_str(&format!(
            "; provider {:?} by recipient {} or remote MTA {}",
            rule.hosts(),
            facts.recipient.unwrap_or("-"),
            facts.remote_mta.unwrap_or("-")
        ));
    }
    if !rule.reporting_hosts().is_empty() {
        on_facts.push_str(&format!(
            "; reporting MTA {} under {:?}",
            facts.reporting_mta.unwrap_or("-"),
            rule.reporting_hosts()
        ));
    }
    if !rule.is_text_rule() {
        return format!("code rule (no text condition); its code conditions held on: {on_facts}");
    }
    let text = rules::normalize(facts.diagnostic);
    let matched = rule.text.iter().find_map(|pattern| {
        let re = RegexBuilder::new(pattern)
            .case_insensitive(true)
            .build()
            .ok()?;
        let m = re.find(&text)?;
        Some((pattern, m.as_str().to_string()))
    });
    match matched {
        Some((pattern, found)) => format!(
            "text pattern `{pattern}` matched \"{found}\" in the diagnostic; other conditions held on: {on_facts}"
        ),
        None => format!(
            "one of the text patterns {:?} matched the diagnostic; other conditions held on: {on_facts}",
            rule.text
        ),
    }
}

fn bounce_type_why(
    reason: Reason,
    bounce_type: BounceType,
    status: Option<StatusCode>,
    replycode: Option<ReplyCode>,
    delayed: bool,
) -> String {
    let permanent = status
        .and_then(StatusCode::is_permanent)
        .or_else(|| replycode.and_then(ReplyCode::is_permanent));
    let codes = match permanent {
        Some(true) => "the codes say permanent",
        Some(false) => "the codes say transient",
        None => "no code says permanent or transient",
    };
    // What was checked before calling it hard: the contradictions that keep a result soft.
    let unopposed = "and nothing contradicts it: not a delay notice, no policy code (X.7.x) \
                     against its words, no block or spam wording before them";
    match (reason, bounce_type) {
        (Reason::Userunknown | Reason::Hostunknown | Reason::Hasmoved | Reason::Notaccept, _)
            if delayed =>
        {
            format!(
                "soft: `{reason}` would make the address dead, but this is a delay notice: the \
                 sender is still trying, so nothing is final ({codes})"
            )
        }
        (Reason::Userunknown | Reason::Hostunknown | Reason::Hasmoved, _) => format!(
            "hard: `{reason}` means the address itself is dead, whatever the code ({codes}), \
             {unopposed}"
        ),
        (Reason::Notaccept, BounceType::Hard) => {
            format!("hard: the destination takes no mail and {codes}, {unopposed}")
        }
        (Reason::Notaccept, _) => format!("soft: the destination takes no mail, but {codes}"),
        (Reason::Feedback, _) => {
            "complaint: the recipient reported the mail; suppress now".to_string()
        }
        (Reason::Delivered | Reason::Vacation, _) => {
            format!("none: `{reason}` is not a failure")
        }
        _ => format!("soft: `{reason}` is not the address's fault, so it is never hard ({codes})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSN: &str = "From: MAILER-DAEMON@mx.example.org\r\nTo: sender@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; nobody@example.net\r\nAction: failed\r\nStatus: 5.0.0\r\nDiagnostic-Code: smtp; 550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown\r\n\r\n--b1--\r\n";

    #[test]
    fn a_dsn_is_explained_field_by_field() {
        let e = explain(DSN.as_bytes(), &Classifier::new(), &ReadOptions::default());
        assert_eq!((e.kind, e.reader), ("dsn", "dsn"));
        assert!(
            e.why.iter().any(|w| w.contains("message/delivery-status")),
            "{:?}",
            e.why
        );
        assert_eq!(e.recipients.len(), 1);
        let r = &e.recipients[0];
        assert_eq!(r.result.status.as_deref(), Some("5.1.1"));
        assert!(
            r.status_source
                .contains("more specific than the generic 5.0.0"),
            "{}",
            r.status_source
        );
        assert!(
            r.replycode_source.starts_with("550"),
            "{}",
            r.replycode_source
        );
        assert_eq!(r.rule.id, r.result.rule);
        assert_eq!(r.rule.step, "text", "the words decide before the code");
        assert!(
            r.bounce_type_why.starts_with("hard"),
            "{}",
            r.bounce_type_why
        );
    }

    #[test]
    fn a_diagnostic_of_notice_boilerplate_is_named_as_such() {
        let text = "From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.org>\r\nTo: sender@example.com\r\nSubject: Returned mail: see transcript for details\r\n\r\n   ----- The following addresses had permanent fatal errors -----\r\n<nobody@example.net>\r\n    (reason: Delivery to the following recipients failed.)\r\n";
        let e = explain(text.as_bytes(), &Classifier::new(), &ReadOptions::default());
        assert_eq!(e.recipients.len(), 1);
        let r = &e.recipients[0];
        assert_eq!(r.result.rule, "fallback.undefined");
        assert!(
            r.rule.condition.contains("only says that delivery failed"),
            "{}",
            r.rule.condition
        );
    }

    #[test]
    fn an_unreadable_message_is_an_error() {
        let e = explain(b"", &Classifier::new(), &ReadOptions::default());
        assert_eq!(e.kind, "error");
        assert!(e.error.is_some() && e.recipients.is_empty());
    }

    #[test]
    fn the_hard_soft_reason_follows_the_taxonomy() {
        let full = bounce_type_why(
            Reason::Mailboxfull,
            BounceType::Soft,
            StatusCode::parse("5.2.2"),
            None,
            false,
        );
        assert!(
            full.starts_with("soft") && full.contains("permanent"),
            "{full}"
        );
        let gone = bounce_type_why(
            Reason::Notaccept,
            BounceType::Soft,
            StatusCode::parse("4.3.2"),
            None,
            false,
        );
        assert!(gone.contains("transient"), "{gone}");
        let waiting = bounce_type_why(
            Reason::Userunknown,
            BounceType::Soft,
            StatusCode::parse("4.1.1"),
            None,
            true,
        );
        assert!(waiting.contains("delay notice"), "{waiting}");
        let dead = bounce_type_why(
            Reason::Userunknown,
            BounceType::Hard,
            StatusCode::parse("5.1.1"),
            None,
            false,
        );
        assert!(
            dead.starts_with("hard") && dead.contains("nothing contradicts it"),
            "{dead}"
        );
    }
}
