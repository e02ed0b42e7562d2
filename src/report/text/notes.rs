//! Lotus Notes / Domino reports. Notes SMTP MTA: "------- Failure Reasons --------" with the reason
//! and the address below it, then "------- Returned Message --------". Domino: "Your message ...
//! was not delivered to: address because: reason".

use super::common::{self, contains_ci};
use super::{Family, Input};
use crate::report::RecipientReport;

/// The Lotus Notes SMTP MTA reader.
pub const NOTES: Family = Family {
    name: "notes",
    detect: detect_notes,
    read: read_notes,
};

/// The Domino reader.
pub const DOMINO: Family = Family {
    name: "domino",
    detect: detect_domino,
    read: read_domino,
};

fn detect_notes(input: &Input) -> bool {
    common::head(input.body).contains("------- Failure Reasons")
}

/// Only the sentences that name the address book vouch for a dead mailbox. The bare Japanese form
/// ("not in the directory's list") names none; it is left to the text rules, and stays soft
/// unless they decide: calling a live address dead costs more than missing a dead one.
fn hint(text: &str) -> Option<&'static str> {
    let unknown = [
        "not listed in public Name & Address Book",
        "not listed in Domino Directory",
    ];
    unknown
        .iter()
        .any(|p| contains_ci(text, p))
        .then_some("userunknown")
}

fn read_notes(input: &Input) -> Vec<RecipientReport> {
    let Some(start) = input.body.find("------- Failure Reasons") else {
        return Vec::new();
    };
    let section = input.body.get(start..).unwrap_or("");
    let section = section.split_once('\n').map_or("", |(_, rest)| rest);
    let section = common::cut_original(section);
    let mut out: Vec<RecipientReport> = Vec::new();
    let mut reason = String::new();
    for line in section.lines() {
        let t = line.trim();
        if t.starts_with("-------") {
            break;
        }
        match common::first_address(t) {
            Some(address) if t.len() <= address.len() + 2 => {
                let mut r = common::recipient(address, "failed", &reason);
                r.reason_hint = hint(&reason);
                out.push(r);
            }
            _ if !t.is_empty() => {
                if !reason.is_empty() {
                    reason.push(' ');
                }
                reason.push_str(t);
            }
            _ => {}
        }
    }
    out
}

fn detect_domino(input: &Input) -> bool {
    input.subject.starts_with("DELIVERY FAILURE:")
        || (contains_ci(common::head(input.body), "was not delivered to:")
            && contains_ci(common::head(input.body), "because:"))
}

fn read_domino(input: &Input) -> Vec<RecipientReport> {
    let text = common::cut_original(input.body);
    let reason = common::section_after(text, "because:", |_| false).unwrap_or_default();
    let mut reason = common::unfold(&reason);
    if reason.is_empty() {
        reason = input
            .subject
            .strip_prefix("DELIVERY FAILURE:")
            .unwrap_or("")
            .trim()
            .to_string();
    }
    let list = common::section_after(text, "was not delivered to:", |l| {
        contains_ci(l, "because:")
    })
    .unwrap_or_default();
    let mut out: Vec<RecipientReport> = Vec::new();
    for f in common::find_addresses(&list) {
        if !out
            .iter()
            .any(|r| r.recipient.as_deref() == Some(f.address.as_str()))
        {
            let mut r = common::recipient(f.address, "failed", &reason);
            r.reason_hint = hint(&reason);
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::common::testutil::{garbage, input_from};

    const NOTES_SAMPLE: &str = "From: postmaster@notes.example.org\nTo: sender@example.com\nSubject: Undeliverable message\n\n\
------- Failure Reasons  --------\n\nUser not listed in public Name & Address Book\nquinn@notes.example.org\n\n\
------- Returned Message --------\nReceived: from a.example.com\nTo: quinn@example.org\n\nhi\n";

    const DOMINO_SAMPLE: &str = "From: postmaster@domino.example.org\nTo: sender@example.com\n\
Subject: DELIVERY FAILURE: User Rae (rae@example.org) not listed in Domino Directory\n\n\
Your message\n\n  Subject: hello\n\nwas not delivered to:\n\n  rae@example.org\n\nbecause:\n\n  User Rae (rae@example.org) not listed in Domino Directory\n";

    #[test]
    fn reads_notes_failure_reasons() {
        input_from(NOTES_SAMPLE, |input| {
            assert!(detect_notes(input));
            let r = read_notes(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("quinn@notes.example.org"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("User not listed in public Name & Address Book")
            );
            assert_eq!(r[0].reason_hint, Some("userunknown"));
            assert_eq!(r[0].command, None);
        });
    }

    #[test]
    fn only_a_named_address_book_vouches() {
        assert_eq!(
            hint("User pat@example.org not listed in Domino Directory"),
            Some("userunknown")
        );
        assert_eq!(hint("ディレクトリのリストにありません"), None);
        assert_eq!(hint("Router: no route to the server"), None);
    }

    #[test]
    fn reads_domino_because() {
        input_from(DOMINO_SAMPLE, |input| {
            assert!(detect_domino(input));
            let r = read_domino(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("rae@example.org"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("User Rae (rae@example.org) not listed in Domino Directory")
            );
            assert_eq!(r[0].command, None);
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read_notes);
        garbage(read_domino);
    }
}
