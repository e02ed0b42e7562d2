//! fml (a mailing-list manager) error replies: "You are not a member of this mailing list <list>.",
//! "Duplicated Message-ID in <list>." and the like; the list address is the recipient that refused.

use super::addresses::first_address;
use super::replies::recipient;
use super::words::contains_ci;
use super::{Family, Input};
use crate::report::RecipientReport;

/// The fml reader.
pub const FAMILY: Family = Family {
    name: "fml",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    input
        .header("X-MLServer")
        .is_some_and(|v| contains_ci(v, "fml"))
        || (input.subject.ends_with(" ML)") && input.from.contains("-admin@"))
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let Some(paragraph) = text.split("\n\n").map(str::trim).find(|p| !p.is_empty()) else {
        return Vec::new();
    };
    let address = first_address(paragraph).or_else(|| {
        // The list's own address: the bounce comes from its `-admin` sibling.
        input
            .from
            .split_once("-admin@")
            .map(|(list, domain)| format!("{list}@{domain}"))
    });
    let Some(address) = address else {
        return Vec::new();
    };
    vec![recipient(address, "failed", paragraph)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: club-admin@lists.example.org\nTo: sender@example.com\n\
Subject: You sender@example.com are not member (club ML)\nX-MLServer: fml [fml 8.0]\n\n\
You are not a member of this mailing list <club@lists.example.org>.\n\nIf you know the general guide of this list, send a command.\n";

    #[test]
    fn names_the_list() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("club@lists.example.org"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("You are not a member of this mailing list <club@lists.example.org>.")
            );
            assert_eq!(r[0].command, None);
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
