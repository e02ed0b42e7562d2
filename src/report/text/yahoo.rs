//! Yahoo's (and AOL's, and Yahoo Japan's) "Sorry, we were unable to deliver your message to the
//! following address." report: `<address>:` then the remote reply, often tagged `[RCPT_TO]`.

use super::addresses::address_alone;
use super::replies::{command_of, recipient};
use super::words::{contains_ci, strip_prefix_ci, unfold};
use super::{Family, Gathered, Input};
use crate::report::RecipientReport;

/// The Yahoo reader.
pub const FAMILY: Family = Family {
    name: "yahoo",
    detect,
    read,
};

const MARKER: &str = "Sorry, we were unable to deliver your message to the following address";

fn detect(input: &Input) -> bool {
    input.body.contains(MARKER)
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let Some(at) = text.find(MARKER) else {
        return Vec::new();
    };
    let mut out = Gathered::default();
    for line in text.get(at..).unwrap_or("").lines().skip(1) {
        if out.full() {
            break;
        }
        let t = line.trim();
        if t.starts_with('<')
            && t.ends_with(">:")
            && let Some(a) = address_alone(t)
        {
            out.start(a);
            continue;
        }
        out.line(t);
    }
    out.into_blocks()
        .into_iter()
        .map(|(a, lines)| {
            let whole = unfold(&lines.join(" "));
            let command = command_of(&whole).map(str::to_string);
            let mut diag = whole.as_str();
            if let Some(rest) = strip_prefix_ci(diag, "Remote host said:") {
                diag = rest.trim_start();
            }
            let mut diag = diag.to_string();
            for tag in ["[RCPT_TO]", "[MAIL_FROM]", "[DATA]"] {
                if contains_ci(&diag, tag) {
                    diag = diag.replace(tag, "").trim().to_string();
                }
            }
            let mut r = recipient(a, "failed", &diag);
            r.command = command;
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::test_input;

    #[test]
    fn reads_remote_reply() {
        let body = "Sorry, we were unable to deliver your message to the following address.\n\n<dave@Example.ORG>:\nRemote host said:\n550 5.1.1 <dave@example.org>... Unknown user\n[RCPT_TO]\n\n--- Below this line is a copy of the message.\n\nTo: eve@example.com\n";
        let got = test_input("mailer-daemon@yahoo.example", "Failure Notice", body, |i| {
            assert!(detect(i));
            read(i)
        });
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("dave@example.org"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("550 5.1.1 <dave@example.org>... Unknown user")
        );
        assert_eq!(got[0].command.as_deref(), Some("RCPT"));
    }

    #[test]
    fn reads_local_reason_and_garbage() {
        let body = "Sorry, we were unable to deliver your message to the following address.\n\n<f@example.net>:\nNo mx record found for domain=example.net\n";
        let got = test_input("mailer-daemon@yahoo.example", "Failure Notice", body, read);
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("No mx record found for domain=example.net")
        );
        assert_eq!(got[0].command, None);
        let none = test_input(
            "x",
            "y",
            "Sorry, we were unable to deliver your message to the following address\n<>:\n\u{0}",
            read,
        );
        assert!(none.is_empty());
    }
}
