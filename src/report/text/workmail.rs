//! Amazon WorkMail's report: "An error occurred while trying to deliver the mail to the following
//! recipients:", the addresses, then a "Technical report:" with DSN-like fields.

use super::addresses::address_alone;
use super::replies::{command_of, recipient};
use super::{Family, Input, Recipients};
use crate::report::RecipientReport;

/// The Amazon WorkMail reader.
pub const FAMILY: Family = Family {
    name: "amazonworkmail",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    input
        .body
        .contains("An error occurred while trying to deliver the mail to the following recipients")
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (k, v) = line.split_once(':')?;
    k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let (head, report) = text.split_once("Technical report:").unwrap_or((text, ""));
    let mut found = Recipients::default();
    // The recipient whose fields are being read; `None` in the block of a repeated address.
    let mut current: Option<String> = None;
    let mut reporting = None;
    for line in report.lines() {
        if found.full() {
            break;
        }
        if let Some(v) = field(line, "Reporting-MTA") {
            reporting = v.split_once(';').map(|(_, h)| h.trim().to_string());
        } else if let Some(v) = field(line, "Final-Recipient") {
            let addr = v.split_once(';').map_or(v, |(_, a)| a);
            if let Some(a) = address_alone(addr) {
                let mut r = recipient(a.clone(), "failed", "");
                r.reporting_mta = reporting.clone();
                current = found.add(r).then_some(a);
            }
        } else if let Some(r) = current.as_deref().and_then(|a| found.get_mut(a)) {
            if let Some(v) = field(line, "Diagnostic-Code") {
                let (kind, words) = v.split_once(';').unwrap_or(("", v));
                r.diagnostic_type =
                    (!kind.trim().is_empty()).then(|| kind.trim().to_ascii_lowercase());
                r.diagnostic = Some(words.trim().to_string());
                r.command = command_of(words).map(str::to_string);
            } else if let Some(v) = field(line, "Status") {
                r.status = Some(v.to_string());
            } else if let Some(v) = field(line, "Action") {
                r.action = Some(v.to_ascii_lowercase());
            }
        }
    }
    if found.is_empty() {
        let list = head.split_once("recipients:").map_or("", |(_, l)| l);
        return Recipients::of(list.lines().filter_map(|l| address_alone(l.trim())), |a| {
            recipient(a, "failed", "")
        });
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::test_input;

    #[test]
    fn reads_technical_report() {
        let body = "An error occurred while trying to deliver the mail to the following recipients:\nlee@Example.com\n\nTechnical report:\n\nReporting-MTA: dsn; out.example.net\n\nAction: failed\nFinal-Recipient: rfc822; lee@Example.com\nDiagnostic-Code: smtp; 550 5.2.2 <lee@example.com>... Over quota\nStatus: 5.2.2\n";
        let got = test_input(
            "mailer-daemon@mail.example.net",
            "Delivery Status Notification (Failure)",
            body,
            |i| {
                assert!(detect(i));
                read(i)
            },
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("lee@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("550 5.2.2 <lee@example.com>... Over quota")
        );
        assert_eq!(got[0].status.as_deref(), Some("5.2.2"));
        assert_eq!(got[0].reporting_mta.as_deref(), Some("out.example.net"));
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn list_only_and_garbage() {
        let body = "An error occurred while trying to deliver the mail to the following recipients:\nmo@example.org\n";
        let got = test_input("x", "y", body, read);
        assert_eq!(got[0].recipient.as_deref(), Some("mo@example.org"));
        assert!(
            test_input(
                "x",
                "y",
                "Technical report:\nFinal-Recipient: ;\nStatus:\n\u{0}",
                read
            )
            .is_empty()
        );
    }
}
