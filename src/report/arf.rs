//! RFC 5965 (ARF) feedback reports, plus the common non-standard complaint formats: a feedback part
//! labelled `text/plain` that still holds `Feedback-Type:` fields, and Microsoft-style reports whose
//! attached message carries `X-HmXmrOriginalRecipient`.

use std::sync::LazyLock;

use mail_parser::{Message, MimeHeaders, PartType};
use regex::Regex;

use super::text::words::unfold;
use super::{Original, RecipientReport, field_address, field_blocks, part_is, part_text};
use crate::classify::Reason;

/// Reader name.
pub const NAME: &str = "arf";

/// What a feedback report says.
#[derive(Debug, Default)]
pub struct Feedback {
    /// One entry per complaining address.
    pub recipients: Vec<RecipientReport>,
    /// `Reporting-MTA`, when given.
    pub reporting_mta: Option<String>,
    /// `Arrival-Date` (or `Received-Date`), when given.
    pub date: Option<String>,
}

/// A `Feedback-Type:` field at the start of a line.
static FEEDBACK_FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?im)^feedback-type:[ \t]*\S").expect("fixed pattern"));

/// Reads a feedback report; `None` when the message is not one.
pub fn read(message: &Message, original: Option<&Original>) -> Option<Feedback> {
    let report_type = message
        .content_type()
        .filter(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .and_then(|ct| ct.attribute("report-type"))
        .map(str::to_ascii_lowercase);
    let labelled = report_type.as_deref() == Some("feedback-report");

    let fields_part = message
        .parts
        .iter()
        .find(|p| part_is(p, "message/feedback-report"))
        .or_else(|| {
            message.parts.iter().skip(1).find(|p| {
                matches!(p.body, PartType::Text(_)) && FEEDBACK_FIELD.is_match(&part_text(p))
            })
        });
    let hotmail = hotmail_recipient(message);
    if !labelled && fields_part.is_none() && hotmail.is_none() {
        return None;
    }
    // A DSN is never a complaint, whatever its parts hold.
    if report_type
        .as_deref()
        .is_some_and(|t| t != "feedback-report")
    {
        return None;
    }

    let mut feedback = Feedback::default();
    let mut feedback_type = None;
    let mut rcpt_to = Vec::new();
    let mut removal = Vec::new();
    if let Some(part) = fields_part {
        for block in field_blocks(&part_text(part)) {
            for (name, value) in block {
                match name.to_ascii_lowercase().as_str() {
                    "feedback-type" => {
                        feedback_type = value
                            .split_whitespace()
                            .next()
                            .map(str::to_ascii_lowercase)
                            .or(feedback_type);
                    }
                    "original-rcpt-to" => rcpt_to.extend(field_address(&value)),
                    "removal-recipient" => removal.extend(field_address(&value)),
                    "reporting-mta" => {
                        feedback.reporting_mta = value
                            .rsplit(';')
                            .next()
                            .map(|v| v.trim().to_ascii_lowercase())
                            .filter(|v| !v.is_empty());
                    }
                    "arrival-date" | "received-date" => {
                        feedback.date = Some(unfold(&value)).filter(|v| !v.is_empty());
                    }
                    _ => {}
                }
            }
        }
    }
    if feedback_type.is_none() && (hotmail.is_some() || labelled) {
        feedback_type = Some("abuse".to_string());
    }

    let addresses: Vec<String> = if !rcpt_to.is_empty() {
        rcpt_to
    } else if let Some(h) = hotmail {
        vec![h]
    } else if let Some(to) = original.and_then(|o| o.to.as_deref()) {
        to.split(',').filter_map(field_address).collect()
    } else {
        removal
    };
    let mut seen = std::collections::HashSet::new();
    let mut addresses: Vec<Option<String>> = addresses
        .into_iter()
        .filter(|a| a.contains('@') && seen.insert(a.to_ascii_lowercase()))
        .map(Some)
        .collect();
    if addresses.is_empty() {
        // A complaint about a message whose recipient was withheld still counts as one complaint;
        // the returned message's identity ties it to the send.
        addresses.push(None);
    }
    for address in addresses {
        feedback.recipients.push(RecipientReport {
            recipient: address,
            feedback_type: feedback_type.clone(),
            reporting_mta: feedback.reporting_mta.clone(),
            date: feedback.date.clone(),
            reason_hint: Some(Reason::Feedback),
            ..RecipientReport::default()
        });
    }
    Some(feedback)
}

/// The complaining address of a Microsoft-style report, from the attached message's
/// `X-HmXmrOriginalRecipient` header.
fn hotmail_recipient(message: &Message) -> Option<String> {
    message.parts.iter().find_map(|p| match &p.body {
        PartType::Message(m) => m
            .header_raw("X-HmXmrOriginalRecipient")
            .and_then(field_address),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use crate::classify::Reason;
    use crate::report::{Kind, read};

    const ARF: &str = "From: feedback@isp.example.net\nTo: abuse@example.org\nSubject: complaint\n\
MIME-Version: 1.0\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"b1\"\n\n\
--b1\nContent-Type: text/plain\n\nA user complained.\n\n\
--b1\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nUser-Agent: test/1.0\nVersion: 1\n\
Original-Rcpt-To: <Reader@Example.NET>\nOriginal-Rcpt-To: other@example.net\nArrival-Date: Tue, 3 Mar 2026 09:00:00 +0000\n\n\
--b1\nContent-Type: message/rfc822\n\nFrom: news@example.org\nTo: reader@example.net\nSubject: Weekly\nMessage-ID: <abc@example.org>\n\nhello\n\n--b1--\n";

    #[test]
    fn standard_report_lists_each_original_rcpt_to() {
        let r = read(ARF.as_bytes()).unwrap();
        assert_eq!(r.kind, Some(Kind::Feedback));
        assert_eq!(r.reader, "arf");
        assert_eq!(r.recipients.len(), 2);
        assert_eq!(
            r.recipients[0].recipient.as_deref(),
            Some("Reader@example.net")
        );
        assert_eq!(r.recipients[0].feedback_type.as_deref(), Some("abuse"));
        assert_eq!(r.recipients[0].reason_hint, Some(Reason::Feedback));
        assert_eq!(r.recipients[0].action, None);
        let o = r.original.unwrap();
        assert_eq!(o.message_id.as_deref(), Some("abc@example.org"));
        assert_eq!(o.subject.as_deref(), Some("Weekly"));
    }

    #[test]
    fn falls_back_to_original_to_with_several_addresses() {
        let msg = ARF
            .replace(
                "Original-Rcpt-To: <Reader@Example.NET>\nOriginal-Rcpt-To: other@example.net\n",
                "",
            )
            .replace(
                "To: reader@example.net\n",
                "To: a@example.net, B <b@example.net>\n",
            )
            .replace("Feedback-Type: abuse", "Feedback-Type: opt-out");
        let r = read(msg.as_bytes()).unwrap();
        let got: Vec<_> = r
            .recipients
            .iter()
            .filter_map(|x| x.recipient.clone())
            .collect();
        assert_eq!(got, vec!["a@example.net", "b@example.net"]);
        assert_eq!(r.recipients[1].feedback_type.as_deref(), Some("opt-out"));
    }

    #[test]
    fn withheld_recipient_gives_one_complaint_without_address() {
        let msg = ARF
            .replace(
                "Original-Rcpt-To: <Reader@Example.NET>\nOriginal-Rcpt-To: other@example.net\n",
                "",
            )
            .replace("To: reader@example.net\n", "To: <Undisclosed Recipients>\n");
        let r = read(msg.as_bytes()).unwrap();
        assert_eq!(r.recipients.len(), 1);
        assert_eq!(r.recipients[0].recipient, None);
        assert_eq!(r.recipients[0].feedback_type.as_deref(), Some("abuse"));
    }

    #[test]
    fn plain_text_feedback_part_and_hotmail_style() {
        let plain = "From: fbl@isp.example.net\nTo: abuse@example.org\nSubject: report\n\
Content-Type: multipart/mixed; boundary=\"x\"\n\n--x\nContent-Type: text/plain\n\nintro\n\n\
--x\nContent-Type: text/plain\n\nFeedback-Type: fraud\nOriginal-Rcpt-To: victim@example.com\n\n--x--\n";
        let r = read(plain.as_bytes()).unwrap();
        assert_eq!(r.kind, Some(Kind::Feedback));
        assert_eq!(r.recipients[0].feedback_type.as_deref(), Some("fraud"));
        assert_eq!(
            r.recipients[0].recipient.as_deref(),
            Some("victim@example.com")
        );

        let hm = "From: staff@isp.example.net\nTo: abuse@example.org\nSubject: complaint\n\
Content-Type: multipart/mixed; boundary=\"y\"\n\n--y\nContent-Type: message/rfc822\n\n\
X-HmXmrOriginalRecipient: person@example.com\nFrom: news@example.org\nTo: person@example.com\nSubject: hi\n\nbody\n\n--y--\n";
        let r = read(hm.as_bytes()).unwrap();
        assert_eq!(r.kind, Some(Kind::Feedback));
        assert_eq!(r.recipients.len(), 1);
        assert_eq!(
            r.recipients[0].recipient.as_deref(),
            Some("person@example.com")
        );
        assert_eq!(r.recipients[0].feedback_type.as_deref(), Some("abuse"));
    }
}
