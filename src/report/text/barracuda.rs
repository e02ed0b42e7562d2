//! Barracuda Spam Firewall notices: "Your message to: address" / "was blocked by our Spam
//! Firewall", naming the subject that was not delivered.

use super::addresses::first_address;
use super::replies::recipient;
use super::words::unfold;
use super::{Family, Input, Recipients};
use crate::classify::Reason;
use crate::report::RecipientReport;

/// The Barracuda reader.
pub const FAMILY: Family = Family {
    name: "barracuda",
    detect,
    read,
};

const BLOCKED: &str = "was blocked by our Spam";

fn detect(input: &Input) -> bool {
    input.body.contains("Your message to:") && input.body.contains(BLOCKED)
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let mut found = Recipients::default();
    let mut lines = text.lines().map(str::trim).peekable();
    while let Some(t) = lines.next() {
        if found.full() {
            break;
        }
        let Some(rest) = t.strip_prefix("Your message to:") else {
            continue;
        };
        let Some(a) = first_address(rest) else {
            continue;
        };
        // The verdict is the sentence on the following line(s), up to the blank line.
        let mut why = Vec::new();
        while let Some(next) = lines.peek() {
            if next.is_empty() {
                break;
            }
            why.push(*next);
            lines.next();
        }
        let diag = unfold(&why.join(" "));
        let mut r = recipient(a, "failed", &diag);
        if r.diagnostic.as_deref().is_some_and(|d| d.contains(BLOCKED)) {
            r.reason_hint = Some(Reason::Spamdetected);
        }
        found.add(r);
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::test_input;

    #[test]
    fn reads_block_notice() {
        let body = "Your message to: sam@Example.com\nwas blocked by our Spam Firewall. The email you sent with the following subject has NOT BEEN DELIVERED:\n\nSubject: Hello\n";
        let got = test_input(
            "",
            "**Message you sent blocked by our bulk email filter**",
            body,
            |i| {
                assert!(detect(i));
                read(i)
            },
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("sam@example.com"));
        assert!(
            got[0]
                .diagnostic
                .as_deref()
                .unwrap_or("")
                .starts_with("was blocked by our Spam Firewall.")
        );
        assert_eq!(got[0].reason_hint, Some(Reason::Spamdetected));
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn garbage_gives_nothing() {
        assert!(
            test_input(
                "",
                "x",
                "Your message to:\nYour message to: \u{0}\nwas blocked by our Spam",
                read
            )
            .is_empty()
        );
    }
}
