//! RFC 3834 automatic replies (out-of-office, vacation): recognised by their headers or their subject
//! wording, when nothing in them says a delivery failed.

use std::sync::LazyLock;

use regex::Regex;

use super::RecipientReport;
use super::signals::{bounce_sender_or_subject, has_failure_wording};
use super::text::Input;
use crate::classify::Reason;

/// Reader name.
pub const NAME: &str = "autoreply";

/// Subject wording of out-of-office and vacation replies, in a few languages.
static SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)out of (?:the )?office|(?-u:\b)o\.?o\.?o(?-u:\b)|auto(?:matic|matisch[e]?)?[- ]?(?:reply|response|antwort|antwoord)|^auto:|autoreply|autorespond|vacation|away from (?:my|the) (?:desk|office)|abwesenheit|r[ée]ponse automatique|absence|respuesta autom[aá]tica|fuera de la oficina|risposta automatica|fuori (?:sede|ufficio)|afwezig|automatisch antwoord|resposta autom[aá]tica|不在|自動応答|自動返信|自动回复",
    )
    .expect("fixed pattern")
});

/// Whether the message is an automatic reply with no failure evidence.
pub fn detect(input: &Input) -> bool {
    let header = |name: &str| {
        input
            .message
            .header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
    };
    let by_header = header("Auto-Submitted").is_some_and(|v| v.starts_with("auto-replied"))
        || header("X-Autoreply").is_some_and(|v| v != "no" && v != "false")
        || header("X-Autorespond").is_some()
        || header("Precedence").is_some_and(|v| v == "auto_reply");
    let by_subject = SUBJECT.is_match(input.subject);
    (by_header || by_subject)
        && !bounce_sender_or_subject(input)
        && !has_failure_wording(input.subject, input.body)
}

/// One result for the auto-reply's sender, with the subject as diagnostic.
pub fn read(input: &Input) -> Vec<RecipientReport> {
    let sender = input
        .message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address());
    let Some(recipient) = sender.and_then(super::header_address) else {
        return Vec::new();
    };
    vec![RecipientReport {
        recipient: Some(recipient),
        diagnostic: (!input.subject.is_empty()).then(|| input.subject.to_string()),
        reason_hint: Some(Reason::Vacation),
        ..RecipientReport::default()
    }]
}

#[cfg(test)]
mod tests {
    use crate::classify::Reason;
    use crate::report::{Kind, read};

    #[test]
    fn rfc3834_reply_is_recognised() {
        let msg = "From: Erin <Erin@Example.COM>\nTo: news@example.org\nSubject: Out of Office: back Monday\n\
Auto-Submitted: auto-replied\n\nI am away until Monday.\n";
        let r = read(msg.as_bytes()).unwrap();
        assert_eq!(r.kind, Some(Kind::Autoreply));
        assert_eq!(r.reader, "autoreply");
        assert_eq!(r.recipients.len(), 1);
        // The local part as sent, the domain lower-cased.
        assert_eq!(
            r.recipients[0].recipient.as_deref(),
            Some("Erin@example.com")
        );
        assert_eq!(r.recipients[0].reason_hint, Some(Reason::Vacation));
        assert_eq!(
            r.recipients[0].diagnostic.as_deref(),
            Some("Out of Office: back Monday")
        );
    }

    #[test]
    fn german_subject_without_headers() {
        let msg = "From: frank@example.de\nTo: news@example.org\nSubject: Abwesenheitsnotiz\n\nBin im Urlaub.\n";
        let r = read(msg.as_bytes()).unwrap();
        assert_eq!(r.kind, Some(Kind::Autoreply));
    }

    #[test]
    fn failure_wording_is_not_an_autoreply() {
        let msg = "From: gina@example.com\nTo: news@example.org\nSubject: Automatic reply\nX-Autoreply: yes\n\n\
Your message could not be delivered: user unknown.\n";
        let r = read(msg.as_bytes()).unwrap();
        assert_ne!(r.kind, Some(Kind::Autoreply));
    }

    #[test]
    fn ordinary_mail_is_not_an_autoreply() {
        let msg = "From: hal@example.com\nTo: ivy@example.org\nSubject: lunch\n\nNoon?\n";
        let r = read(msg.as_bytes()).unwrap();
        assert_eq!(r.kind, Some(Kind::NotBounce));
        assert!(r.recipients.is_empty());
    }
}
