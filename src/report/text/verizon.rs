//! Verizon Wireless MMS gateway notices (vtext.com, vzwpix.com): "Message could not be delivered
//! to mobile." with the original's `To`, or "Error message below:" with `RCPT TO:` in the details.

use super::addresses::first_address;
use super::replies::recipient;
use super::words::unfold;
use super::{Family, Input};
use crate::classify::Reason;
use crate::report::RecipientReport;

/// The Verizon reader.
pub const FAMILY: Family = Family {
    name: "verizon",
    detect,
    read,
};

fn from_verizon(input: &Input) -> bool {
    input.from.contains("vtext.com")
        || input.from.contains("vzwpix.com")
        || input.from.contains("verizon")
}

fn detect(input: &Input) -> bool {
    from_verizon(input) && input.body.contains("Error")
}

/// The gateway's fixed summary sentences (`Error: ...`) that only ever mean the addressed
/// number or mailbox does not exist.
const NO_SUCH_RECIPIENT: &[&str] = &["No valid recipients for this MM", "Invalid user address"];

fn read(input: &Input) -> Vec<RecipientReport> {
    let body = input.body;
    let mut summary = "";
    let mut address = None;
    let mut diag = Vec::new();
    let mut take_next = false;
    let mut in_original = false;
    for line in body.lines() {
        let t = line.trim();
        if take_next && !t.is_empty() {
            diag.push(t);
            take_next = false;
            continue;
        }
        if t == "Error message below:" {
            take_next = true;
        } else if let Some(rest) = t.strip_prefix("Error:") {
            if diag.is_empty() {
                summary = rest.trim();
                diag.push(summary);
            }
        } else if t.starts_with("Original Message:") {
            in_original = true;
        } else if let Some(rest) = t.strip_prefix("RCPT TO:") {
            address = address.or_else(|| first_address(rest));
        } else if in_original && let Some(rest) = t.strip_prefix("To:") {
            address = address.or_else(|| first_address(rest));
        }
    }
    // A specific reply ("Error message below:") replaces the summary line.
    if diag.len() > 1 {
        diag.remove(0);
    }
    let diag = unfold(&diag.join(" "));
    let Some(a) = address else {
        return Vec::new();
    };
    let mut r = recipient(a, "failed", &diag);
    if NO_SUCH_RECIPIENT
        .iter()
        .any(|s| summary.eq_ignore_ascii_case(s))
    {
        r.reason_hint = Some(Reason::Userunknown);
    }
    vec![r]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::test_input;

    #[test]
    fn reads_mms_notice() {
        let body = "Message could not be delivered to mobile.\nError: No valid recipients for this MM\n\n\nOriginal Message:\nFrom: A <a@example.org>\nTo: 5550100@vzwpix.example.com\n";
        let got = test_input(
            "sysadmin@m1.vzwpix.com",
            "Undeliverable Message",
            body,
            |i| {
                assert!(detect(i));
                read(i)
            },
        );
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].recipient.as_deref(),
            Some("5550100@vzwpix.example.com")
        );
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("No valid recipients for this MM")
        );
        assert_eq!(got[0].command, None);
        assert_eq!(got[0].reason_hint, Some(Reason::Userunknown));
        let other = body.replace("No valid recipients for this MM", "Message too large");
        let got = test_input("sysadmin@m1.vzwpix.com", "Undeliverable", &other, read);
        assert_eq!(got[0].reason_hint, None);
    }

    #[test]
    fn reads_a_notice_whose_boundary_is_not_folded() {
        let raw = "From: post_master@vtext.com\nSubject: Re: hi\nContent-Type: multipart/mixed;\nboundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n\nError: Invalid user address\n\nError message below:\n550 no such user here\n\n  RCPT TO: 5550102@vtext.example.com\n--b1--\n";
        let Ok(report) = crate::report::read(raw.as_bytes()) else {
            panic!("the notice does not read");
        };
        assert_eq!(report.reader, "verizon");
        let got = &report.recipients;
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].recipient.as_deref(),
            Some("5550102@vtext.example.com")
        );
        assert_eq!(got[0].diagnostic.as_deref(), Some("550 no such user here"));
    }

    #[test]
    fn reads_error_message_form_and_garbage() {
        let body = "Error: Invalid user address\n\nError message below:\n550 - Requested action not taken: no such user here\n\nMessage details:\n  MAIL FROM: s@example.org\n  RCPT TO: 5550101@vtext.example.com\n";
        let got = test_input("post_master@vtext.com", "Re: hi", body, read);
        assert_eq!(
            got[0].recipient.as_deref(),
            Some("5550101@vtext.example.com")
        );
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("550 - Requested action not taken: no such user here")
        );
        assert_eq!(got[0].command, None);
        assert!(
            test_input(
                "x@vtext.com",
                "y",
                "Error:\nRCPT TO:\u{0}\nOriginal Message:\nTo:",
                read
            )
            .is_empty()
        );
    }
}
