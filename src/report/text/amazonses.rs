//! Amazon SES notifications delivered by mail: the JSON event (`notificationType` Bounce,
//! Complaint or Delivery), bare or wrapped in an SNS envelope whose `Message` holds it as a string;
//! and SES's plain-text bounce ("The following message to <address> was undeliverable.").

use serde_json::Value;

use super::addresses::{address_alone, first_address};
use super::blocks::{cut_original, section_after};
use super::replies::{command_of, recipient};
use super::words::unfold;
use super::{Family, Input};
use crate::classify::Reason;
use crate::report::RecipientReport;

/// The Amazon SES notification reader.
pub const FAMILY: Family = Family {
    name: "amazonses",
    detect,
    read,
};

/// The plain-text bounce's opening and the line before its reason.
const TEXT_OPENING: &str = "The following message to <";
const TEXT_REASON: &str = "The reason for the problem:";

fn detect(input: &Input) -> bool {
    if input.body.contains(TEXT_OPENING) && input.body.contains(TEXT_REASON) {
        return true;
    }
    input.body.contains("\"notificationType\"") || input.body.contains("\\\"notificationType\\\"")
}

/// The first JSON value in `text`, starting at its first `{`.
fn first_json(text: &str) -> Option<Value> {
    let at = text.find('{')?;
    serde_json::Deserializer::from_str(text.get(at..)?)
        .into_iter::<Value>()
        .next()?
        .ok()
}

fn event(body: &str) -> Option<Value> {
    // Long lines may arrive hard-wrapped, as `!` + newline + space or a bare newline.
    let v = first_json(body).or_else(|| {
        let at = body.find('{')?;
        let joined: String = body.get(at..)?.replace("!\n ", "").split('\n').collect();
        first_json(&joined)
    })?;
    if v.get("notificationType").is_some() {
        return Some(v);
    }
    let inner = v.get("Message")?.as_str()?;
    first_json(inner).filter(|e| e.get("notificationType").is_some())
}

fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The plain-text form: one recipient, the reason on the lines after [`TEXT_REASON`].
fn read_text(body: &str) -> Vec<RecipientReport> {
    let body = cut_original(body);
    let Some(at) = body.find(TEXT_OPENING) else {
        return Vec::new();
    };
    let Some(addr) = body.get(at..).and_then(first_address) else {
        return Vec::new();
    };
    let reason = section_after(body, TEXT_REASON, |_| false).unwrap_or_default();
    let diag = unfold(&reason);
    let mut r = recipient(addr, "failed", &diag);
    r.command = r
        .diagnostic
        .as_deref()
        .and_then(command_of)
        .map(str::to_string);
    vec![r]
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let Some(ev) = event(input.body) else {
        return read_text(input.body);
    };
    let kind = ev
        .get("notificationType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut out = Vec::new();
    match kind {
        "Bounce" => {
            let b = ev.get("bounce").unwrap_or(&Value::Null);
            let delayed = b.get("bounceType").and_then(Value::as_str) == Some("Transient");
            let reporting = s(b, "reportingMTA").map(|m| {
                m.split_once(';')
                    .map_or(m.clone(), |(_, h)| h.trim().to_string())
            });
            for r in b
                .get("bouncedRecipients")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(addr) = s(r, "emailAddress").as_deref().and_then(address_alone) else {
                    continue;
                };
                let code = s(r, "diagnosticCode").unwrap_or_default();
                let (dtype, words) = match code.split_once(';') {
                    Some((t, w)) if !t.contains(' ') => {
                        (Some(t.trim().to_ascii_lowercase()), w.trim().to_string())
                    }
                    _ => (None, code.trim().to_string()),
                };
                out.push(RecipientReport {
                    recipient: Some(addr),
                    action: Some(
                        s(r, "action").unwrap_or_else(|| {
                            if delayed { "delayed" } else { "failed" }.to_string()
                        }),
                    ),
                    status: s(r, "status"),
                    diagnostic_type: dtype,
                    command: command_of(&words).map(str::to_string),
                    diagnostic: (!words.is_empty()).then_some(words),
                    reporting_mta: reporting.clone(),
                    date: s(b, "timestamp"),
                    ..RecipientReport::default()
                });
            }
        }
        "Complaint" => {
            let c = ev.get("complaint").unwrap_or(&Value::Null);
            for r in c
                .get("complainedRecipients")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(addr) = s(r, "emailAddress").as_deref().and_then(address_alone) else {
                    continue;
                };
                out.push(RecipientReport {
                    recipient: Some(addr),
                    feedback_type: Some(
                        s(c, "complaintFeedbackType").unwrap_or_else(|| "abuse".to_string()),
                    ),
                    date: s(c, "timestamp"),
                    reason_hint: Some(Reason::Feedback),
                    ..RecipientReport::default()
                });
            }
        }
        "Delivery" => {
            let d = ev.get("delivery").unwrap_or(&Value::Null);
            let reply = s(d, "smtpResponse");
            for r in d
                .get("recipients")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(addr) = r.as_str().and_then(address_alone) else {
                    continue;
                };
                out.push(RecipientReport {
                    recipient: Some(addr),
                    action: Some("delivered".to_string()),
                    diagnostic: reply.clone(),
                    reporting_mta: s(d, "reportingMTA"),
                    date: s(d, "timestamp"),
                    reason_hint: Some(Reason::Delivered),
                    ..RecipientReport::default()
                });
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::test_input;

    const BOUNCE: &str = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"pat@Example.COM","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 no such user"}],"timestamp":"2026-01-02T03:04:05.000Z","reportingMTA":"dsn; out.example.net"},"mail":{"source":"sender@example.org"}}"#;

    #[test]
    fn reads_bare_bounce() {
        let body =
            format!("{BOUNCE}\n\n--\nIf you wish to stop receiving notifications, unsubscribe.\n");
        let got = test_input("no-reply@sns.example.com", "Notification", &body, |i| {
            assert!(detect(i));
            read(i)
        });
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("pat@example.com"));
        assert_eq!(got[0].diagnostic.as_deref(), Some("550 5.1.1 no such user"));
        assert_eq!(got[0].diagnostic_type.as_deref(), Some("smtp"));
        assert_eq!(got[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(got[0].reporting_mta.as_deref(), Some("out.example.net"));
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn reads_enveloped_complaint_and_delivery() {
        let inner = r#"{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"quin@example.net"}],"complaintFeedbackType":"abuse"}}"#;
        let body = serde_json::json!({"Type": "Notification", "Message": inner}).to_string();
        let got = test_input("no-reply@sns.example.com", "Notification", &body, read);
        assert_eq!(got[0].recipient.as_deref(), Some("quin@example.net"));
        assert_eq!(got[0].feedback_type.as_deref(), Some("abuse"));
        let body = r#"{"notificationType":"Delivery","delivery":{"recipients":["ok@example.org"],"smtpResponse":"250 2.6.0 accepted"}}"#;
        let got = test_input("no-reply@sns.example.com", "Notification", body, read);
        assert_eq!(got[0].action.as_deref(), Some("delivered"));
        assert_eq!(got[0].diagnostic.as_deref(), Some("250 2.6.0 accepted"));
    }

    #[test]
    fn reads_wrapped_line() {
        let (a, b) = BOUNCE.split_at(60);
        let body = format!("{a}!\n {b}\n\n--\nunsubscribe\n");
        let got = test_input("no-reply@sns.example.com", "Notification", &body, read);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("pat@example.com"));
    }

    #[test]
    fn reads_text_form() {
        let body = "The following message to <ray@example.com> was undeliverable.\nThe reason for the problem:\n5.1.0 - Unknown address error 550-'5.1.1 <ray@example.com>... unknown'\n\n------ original\n";
        let got = test_input(
            "mailer-daemon@email-bounces.example.com",
            "Delivery Status Notification (Failure)",
            body,
            |i| {
                assert!(detect(i));
                read(i)
            },
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("ray@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("5.1.0 - Unknown address error 550-'5.1.1 <ray@example.com>... unknown'")
        );
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn garbage_gives_nothing() {
        for body in [
            "",
            "{",
            "{\"notificationType\":1}",
            "{\"Message\":\"{\"}",
            "\"notificationType\" {[}",
        ] {
            assert!(test_input("x", "y", body, read).is_empty());
        }
    }
}
