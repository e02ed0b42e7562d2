//! GMX's and 1&1's (einsundeins, kundenserver) reports: "The following address failed:", the address,
//! then "SMTP error from remote server ..." or a local reason, before the returned header.

use super::blocks::exim_blocks;
use super::{Family, Input};
use crate::report::RecipientReport;

/// The GMX / 1&1 reader.
pub const FAMILY: Family = Family {
    name: "gmx",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    input
        .body
        .contains("--- The header of the original message is following. ---")
        || ((input.from.contains("gmx.")
            || input.from.contains("kundenserver.")
            || input.from.contains("1and1."))
            && input.body.contains("could not be delivered to one or more"))
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    // The marker may wrap: "The following address(es)\nfailed:".
    let marker = if text.contains("The following address") {
        "The following address"
    } else {
        "failed:"
    };
    let Some(at) = text.find(marker) else {
        return Vec::new();
    };
    let from_marker = text.get(at..).unwrap_or("");
    let skip_to = from_marker.find("failed:").map_or(0, |i| i);
    exim_blocks(from_marker.get(skip_to..).unwrap_or(""), "failed:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::test_input;

    #[test]
    fn reads_remote_error() {
        let body = "This message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of\nits recipients. This is a permanent error. The following address\nfailed:\n\n\"gina@example.com\":\nSMTP error from remote server after RCPT command:\nhost: mx.example.com\n5.2.2 <gina@example.com>... Quota exceeded\n\n\n--- The header of the original message is following. ---\n\nTo: gina@example.com\n";
        let got = test_input(
            "mailer-daemon@gmx.example",
            "Mail delivery failed",
            body,
            |i| {
                assert!(detect(i));
                read(i)
            },
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("gina@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("5.2.2 <gina@example.com>... Quota exceeded")
        );
        assert_eq!(got[0].command.as_deref(), Some("RCPT"));
        assert_eq!(got[0].remote_mta.as_deref(), Some("mx.example.com"));
    }

    #[test]
    fn reads_one_and_one_forms() {
        let body = "its recipients. This is a permanent error. The following address(es)\nfailed:\n\nhal@example.fr:\nSMTP error from remote server for TEXT command, host: mx.example.fr (192.0.2.9) reason: 550 5.7.1 Message refused\n\n--- The header of the original message is following. ---\n";
        let got = test_input(
            "mailer-daemon@kundenserver.example",
            "Mail delivery failed",
            body,
            read,
        );
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("550 5.7.1 Message refused")
        );
        assert_eq!(got[0].command.as_deref(), Some("DATA"));
        let body = "The following address failed:\n\n<ivy@example.org>\n\nReason:\ndelivery retry timeout exceeded\n\n--- The header of the original message is following. ---\n";
        let got = test_input("mailer-daemon@gmx.example", "x", body, read);
        assert_eq!(got[0].recipient.as_deref(), Some("ivy@example.org"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("delivery retry timeout exceeded")
        );
    }

    #[test]
    fn garbage_gives_nothing() {
        for body in ["", "The following address", "failed:\n\u{0}<<>>"] {
            assert!(test_input("a@gmx.example", "x", body, read).is_empty());
        }
    }
}
