//! IMail Server's report: one `Reason phrase: address` line per recipient ("Unknown user:",
//! "User mailbox exceeds allowed size:", ...), optionally "Body of message generated response:" with
//! the server's reply, then "Original message follows."

use super::addresses::first_address;
use super::replies::recipient;
use super::words::{contains_ci, head};
use super::{Family, Input, Recipients};
use crate::classify::Reason;
use crate::report::RecipientReport;

/// The IMail Server reader.
pub const FAMILY: Family = Family {
    name: "imail",
    detect,
    read,
};

/// IMail's fixed reason phrases, with the reason each names.
const PHRASES: &[(&str, Option<Reason>)] = &[
    ("Unknown user:", Some(Reason::Userunknown)),
    (
        "User mailbox exceeds allowed size:",
        Some(Reason::Mailboxfull),
    ),
    ("Invalid final delivery userid:", Some(Reason::Userunknown)),
    ("Delivery failed", Some(Reason::Expired)),
    ("Body of message generated response:", None),
    ("Mail loop detected:", Some(Reason::Networkerror)),
    ("Host unknown:", Some(Reason::Hostunknown)),
    ("SMTP error", None),
];

fn detect(input: &Input) -> bool {
    input
        .header("X-Mailer")
        .is_some_and(|m| m.starts_with("<SMTP32 v"))
        || (input.subject.starts_with("Undeliverable Mail")
            && contains_ci(head(input.body), "Original message follows.")
            && PHRASES
                .iter()
                .any(|(p, _)| contains_ci(head(input.body), p)))
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let mut found = Recipients::default();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if found.full() {
            break;
        }
        let t = line.trim();
        let Some((phrase, hint)) = PHRASES.iter().find(|(p, _)| t.starts_with(p)) else {
            continue;
        };
        let Some(address) = first_address(t.get(phrase.len()..).unwrap_or("")) else {
            continue;
        };
        if found.contains(&address) {
            continue;
        }
        let mut words = t.to_string();
        for l in lines.iter().skip(i + 1) {
            let l = l.trim();
            if l.is_empty() && !words.trim_end().ends_with(':') {
                break;
            }
            if PHRASES
                .iter()
                .any(|(p, _)| l.starts_with(p) && first_address(l).is_some())
            {
                break;
            }
            words.push(' ');
            words.push_str(l);
        }
        let mut r = recipient(address, "failed", &words);
        r.reason_hint = *hint;
        found.add(r);
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: postmaster@imail.example.org\nTo: sender@example.com\nSubject: Undeliverable Mail\n\
X-Mailer: <SMTP32 v8.22>\n\n\
Unknown user: oli@example.org\n\nUser mailbox exceeds allowed size: pam@example.org\n\n\
Original message follows.\n\nFrom: sender@example.com\nTo: oli@example.org\n\nhi\n";

    #[test]
    fn reads_phrase_lines() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            let got: Vec<_> = r.iter().filter_map(|r| r.recipient.as_deref()).collect();
            assert_eq!(got, ["oli@example.org", "pam@example.org"]);
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("Unknown user: oli@example.org")
            );
            assert_eq!(r[0].reason_hint, Some(Reason::Userunknown));
            assert_eq!(r[1].reason_hint, Some(Reason::Mailboxfull));
            assert_eq!(r[1].command, None);
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
