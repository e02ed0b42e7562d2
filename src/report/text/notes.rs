//! Lotus Notes SMTP MTA reports: "------- Failure Reasons --------" with the reason and the address
//! below it, then "------- Returned Message --------". (Domino's own report is read by `domino`.)

use super::addresses::first_address;
use super::blocks::cut_original;
use super::replies::recipient;
use super::words::head;
use super::{Family, Input, PARAGRAPH_LIMIT, Recipients};
use crate::report::RecipientReport;

/// The Lotus Notes SMTP MTA reader.
pub const FAMILY: Family = Family {
    name: "notes",
    detect: detect_notes,
    read: read_notes,
};

fn detect_notes(input: &Input) -> bool {
    head(input.body).contains("------- Failure Reasons")
}

fn read_notes(input: &Input) -> Vec<RecipientReport> {
    let Some(start) = input.body.find("------- Failure Reasons") else {
        return Vec::new();
    };
    let section = input.body.get(start..).unwrap_or("");
    let section = section.split_once('\n').map_or("", |(_, rest)| rest);
    let section = cut_original(section);
    let mut found = Recipients::default();
    let mut reason = String::new();
    for line in section.lines() {
        let t = line.trim();
        if t.starts_with("-------") || found.full() {
            break;
        }
        match first_address(t) {
            Some(address) if t.len() <= address.len() + 2 => {
                if found.contains(&address) {
                    continue;
                }
                let mut r = recipient(address, "failed", &reason);
                r.reason_hint = super::domino::hint(&reason);
                found.add(r);
            }
            _ if !t.is_empty() && reason.len() < PARAGRAPH_LIMIT => {
                if !reason.is_empty() {
                    reason.push(' ');
                }
                reason.push_str(t);
            }
            _ => {}
        }
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Reason;
    use crate::report::text::testutil::{garbage, input_from};

    const NOTES_SAMPLE: &str = "From: postmaster@notes.example.org\nTo: sender@example.com\nSubject: Undeliverable message\n\n\
------- Failure Reasons  --------\n\nUser not listed in public Name & Address Book\nquinn@notes.example.org\n\n\
------- Returned Message --------\nReceived: from a.example.com\nTo: quinn@example.org\n\nhi\n";

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
            assert_eq!(r[0].reason_hint, Some(Reason::Userunknown));
            assert_eq!(r[0].command, None);
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read_notes);
    }
}
