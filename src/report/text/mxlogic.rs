//! MX Logic (McAfee SaaS) relays: Exim-like "The following address failed:" with `<address>: reply`
//! lines, then "Included is a copy of the message header".

use super::blocks::exim_blocks;
use super::{Family, Input};
use crate::report::RecipientReport;

/// The MX Logic reader.
pub const FAMILY: Family = Family {
    name: "mxlogic",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    input
        .body
        .contains("Included is a copy of the message header")
        || input.from.contains("mxlogic")
        || input.header("X-MXL-Hash").is_some()
}

fn read(input: &Input) -> Vec<RecipientReport> {
    exim_blocks(input.explanation, "failed:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::test_input;

    #[test]
    fn reads_inline_reply() {
        let body = "A message that you have sent could not be delivered to one or more\nrecipients.  This is a permanent error.  The following address failed:\n\n  <jo@example.com>: 550 5.1.1 <jo@example.com>: Recipient address rejected: unknown\n<jo@example.com>\n  <kim@example.net>: 550 mailbox unavailable\n\nIncluded is a copy of the message header:\n-----\nTo: jo@example.com\n";
        let got = test_input(
            "mailer-daemon@relay.mxlogic.example",
            "Mail delivery failed",
            body,
            |i| {
                assert!(detect(i));
                read(i)
            },
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].recipient.as_deref(), Some("jo@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some(
                "550 5.1.1 <jo@example.com>: Recipient address rejected: unknown <jo@example.com>"
            )
        );
        assert_eq!(
            got[1].diagnostic.as_deref(),
            Some("550 mailbox unavailable")
        );
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn garbage_gives_nothing() {
        assert!(test_input("x", "y", "failed:\n\n  \u{0}: <>", read).is_empty());
    }
}
