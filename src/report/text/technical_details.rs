//! The "technical details" notice: "This is an automatically generated Delivery Status
//! Notification.", "Delivery to the following recipients failed permanently:" with `* address`
//! lines, and an optional "Technical details:" section with the server's words.

use super::addresses::first_address;
use super::blocks::section_after;
use super::replies::{recipient, set_remote_from_diagnostic};
use super::words::{contains_ci, head};
use super::{Family, Input, Recipients};
use crate::report::RecipientReport;

/// The "technical details" reader.
pub const FAMILY: Family = Family {
    name: "technical_details",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    contains_ci(
        head(input.body),
        "This is an automatically generated Delivery Status Notification",
    ) && contains_ci(head(input.body), "Delivery to the following recipients")
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let intro = text
        .lines()
        .map(str::trim)
        .find(|l| contains_ci(l, "Delivery to the following recipients"))
        .unwrap_or("");
    let action = if contains_ci(intro, "delayed") {
        "delayed"
    } else {
        "failed"
    };
    let details = section_after(text, "Technical details", |l| l.starts_with("====="))
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| intro.to_string());
    let mut found = Recipients::default();
    for line in text.lines() {
        if found.full() {
            break;
        }
        let Some(item) = line.trim().strip_prefix("* ") else {
            continue;
        };
        if let Some(address) = first_address(item) {
            let mut r = recipient(address, action, &details);
            set_remote_from_diagnostic(&mut r);
            found.add(r);
        }
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: mail.delivery.system@x3.example.org\nTo: sender@example.com\nSubject: Delivery status notification\n\n\
=====\n      This is an automatically generated Delivery Status Notification.\n\n\
Delivery to the following recipients failed permanently:\n\n   * cal@example.net\n\n\n=====\n   Technical details:\n\n\
SMTP:RCPT host 192.0.2.8: 553 5.3.0 <cal@example.net>... No such user here\n\n\n=====\n";

    #[test]
    fn reads_items_and_details() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("cal@example.net"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("553 5.3.0 <cal@example.net>... No such user here")
            );
            assert_eq!(r[0].command.as_deref(), Some("RCPT"));
            assert_eq!(r[0].remote_mta.as_deref(), Some("192.0.2.8"));
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
