//! IBM (Lotus) Domino reports: "Your message ... was not delivered to: address because: reason",
//! under a subject "DELIVERY FAILURE: reason".

use super::addresses::find_addresses;
use super::blocks::section_after;
use super::replies::recipient;
use super::words::{contains_ci, head, unfold};
use super::{Family, Input, Recipients};
use crate::classify::Reason;
use crate::report::RecipientReport;

/// The Domino reader.
pub const FAMILY: Family = Family {
    name: "domino",
    detect,
    read,
};

const LIST_MARKER: &str = "was not delivered to:";
const REASON_MARKER: &str = "because:";
const SUBJECT_PREFIX: &str = "DELIVERY FAILURE:";

fn detect(input: &Input) -> bool {
    input.subject.starts_with(SUBJECT_PREFIX)
        || (input.body.contains(LIST_MARKER) && input.body.contains(REASON_MARKER))
        || (contains_ci(head(input.body), LIST_MARKER)
            && contains_ci(head(input.body), REASON_MARKER))
}

/// Only the sentences that name the address book or the directory vouch for a dead mailbox
/// ("User x not listed in Domino Directory", "... not listed in public Name & Address Book"). The
/// bare Japanese form ("not in the directory's list") names neither; it is left to the text
/// rules, and stays soft unless they decide: calling a live address dead costs more than missing a
/// dead one.
pub(super) fn hint(text: &str) -> Option<Reason> {
    (contains_ci(text, "not listed in")
        && (text.contains("Directory") || contains_ci(text, "address book")))
    .then_some(Reason::Userunknown)
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let reason = section_after(text, REASON_MARKER, |_| false).unwrap_or_default();
    let mut reason = unfold(&reason);
    if reason.is_empty() {
        reason = input
            .subject
            .strip_prefix(SUBJECT_PREFIX)
            .unwrap_or("")
            .trim()
            .to_string();
    }
    let list =
        section_after(text, LIST_MARKER, |l| contains_ci(l, REASON_MARKER)).unwrap_or_default();
    Recipients::of(find_addresses(&list).into_iter().map(|f| f.address), |a| {
        let mut r = recipient(a, "failed", &reason);
        r.reason_hint = hint(&reason);
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from, test_input};

    const SAMPLE: &str = "From: postmaster@domino.example.org\nTo: sender@example.com\n\
Subject: DELIVERY FAILURE: User Rae (rae@example.org) not listed in Domino Directory\n\n\
Your message\n\n  Subject: hello\n\nwas not delivered to:\n\n  rae@example.org\n\nbecause:\n\n  User Rae (rae@example.org) not listed in Domino Directory\n";

    #[test]
    fn reads_because() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("rae@example.org"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("User Rae (rae@example.org) not listed in Domino Directory")
            );
            assert_eq!(r[0].reason_hint, Some(Reason::Userunknown));
            assert_eq!(r[0].command, None);
        });
    }

    #[test]
    fn reads_report_with_a_mixed_case_address() {
        let body = "Your message\n\n  Subject: hi\n\nwas not delivered to:\n\n  max@Example.com\n\nbecause:\n\n  User max (max@example.com) not listed in Domino Directory\n\n";
        let got = test_input("postmaster@example.com", "DELIVERY FAILURE", body, |i| {
            assert!(detect(i));
            read(i)
        });
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("max@example.com"));
        assert_eq!(got[0].reason_hint, Some(Reason::Userunknown));
    }

    #[test]
    fn only_a_named_address_book_vouches() {
        assert_eq!(
            hint("User pat@example.org not listed in Domino Directory"),
            Some(Reason::Userunknown)
        );
        assert_eq!(
            hint("User not listed in public Name & Address Book"),
            Some(Reason::Userunknown)
        );
        assert_eq!(hint("ディレクトリのリストにありません"), None);
        assert_eq!(hint("Router: no route to the server"), None);
    }

    #[test]
    fn the_subject_gives_the_reason_when_the_text_does_not() {
        let body = "Your message\n\nwas not delivered to:\n\n  sol@example.org\n";
        let got = test_input(
            "postmaster@example.com",
            "DELIVERY FAILURE: Router: no route to the server",
            body,
            read,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("Router: no route to the server")
        );
        assert_eq!(got[0].reason_hint, None);
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
        assert!(test_input("x", "y", "was not delivered to:\n\u{0}\nbecause:", read).is_empty());
    }
}
