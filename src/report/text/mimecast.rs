//! Mimecast's "Email Delivery Failure" alert: `-- address` after "could not be delivered", the
//! problem in plain words, then "Additional information follows" with the remote reply.

use super::addresses::address_alone;
use super::replies::{command_of, recipient};
use super::{Family, Input, Recipients};
use crate::report::RecipientReport;

/// The Mimecast reader.
pub const FAMILY: Family = Family {
    name: "mimecast",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    input.body.contains("The problem appears to be")
        && input.body.contains("could not be delivered")
}

/// The `-- value` lines after the line containing `label`, joined.
fn dashed_after(text: &str, label: &str) -> Option<String> {
    let at = text.find(label)?;
    let vals: Vec<&str> = text
        .get(at..)?
        .lines()
        .skip(1)
        .map(str::trim)
        .take_while(|l| l.starts_with("--"))
        .map(|l| l.trim_start_matches('-').trim())
        .collect();
    (!vals.is_empty()).then(|| vals.join(" "))
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    // The addresses are the `-- address` lines before the problem is stated.
    let head = text
        .split_once("The problem appears to be")
        .map_or(text, |(h, _)| h);
    let diag = dashed_after(text, "Additional information follows")
        .or_else(|| dashed_after(text, "The problem appears to be"))
        .unwrap_or_default();
    let command = command_of(&diag).map(str::to_string);
    let addresses = head
        .lines()
        .filter_map(|l| l.trim().strip_prefix("--"))
        .flat_map(str::split_whitespace)
        .filter_map(address_alone);
    Recipients::of(addresses, |a| {
        let mut r = recipient(a, "failed", &diag);
        r.command = command.clone();
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::test_input;

    #[test]
    fn reads_alert() {
        let body = "An email that you attempted to send to the following address could not be delivered:\n-- lia@Example.com\n\nThe problem appears to be :\n-- Recipient email address is possibly incorrect\n\nAdditional information follows :\n-- 5.1.1 Recipient address rejected: no such user\n";
        let got = test_input(
            "postmaster@example.org",
            "[Postmaster] Email Delivery Failure",
            body,
            |i| {
                assert!(detect(i));
                read(i)
            },
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("lia@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("5.1.1 Recipient address rejected: no such user")
        );
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn reads_wrapped_variant() {
        let body = "This is a delivery failure notification message indicating that\nan email you addressed to email address :\n-- quy@example.net\ncould not be delivered. The problem appears to be :\n-- Recipient email address is possibly incorrect\nAdditional information follows :\n-- 5.7.54 SMTP; Unable to relay recipient\n";
        let got = test_input(
            "postmaster@example.org",
            "[Postmaster] Email Delivery Failure",
            body,
            read,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("quy@example.net"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("5.7.54 SMTP; Unable to relay recipient")
        );
    }

    #[test]
    fn garbage_gives_nothing() {
        assert!(
            test_input(
                "x",
                "y",
                "could not be delivered\n-- \u{0}\nThe problem appears to be",
                read
            )
            .is_empty()
        );
    }
}
