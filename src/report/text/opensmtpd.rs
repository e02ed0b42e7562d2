//! OpenSMTPD's report: "An error has occurred while attempting to deliver a message for the
//! following list of recipients:" then one `address: the server's words` line per recipient.

use super::addresses::first_address;
use super::replies::recipient;
use super::words::{contains_ci, head};
use super::{Family, Input, Recipients};
use crate::classify::Reason;
use crate::report::RecipientReport;

/// The OpenSMTPD reader.
pub const FAMILY: Family = Family {
    name: "opensmtpd",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    let b = head(input.body);
    input.subject.starts_with("Delivery status notification")
        && (contains_ci(b, "This is the MAILER-DAEMON, please DO NOT REPLY")
            || contains_ci(b, "following list of recipients"))
        || contains_ci(
            b,
            "An error has occurred while attempting to deliver a message for",
        )
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let action = if contains_ci(input.subject, "delayed") || contains_ci(text, "has been delayed") {
        "delayed"
    } else {
        "failed"
    };
    let mut found = Recipients::default();
    let mut started = false;
    for line in text.lines() {
        if found.full() {
            break;
        }
        let t = line.trim();
        if !started {
            started =
                contains_ci(t, "list of recipients") || contains_ci(t, "following recipients");
            continue;
        }
        let Some((addr, words)) = t.split_once(": ") else {
            continue;
        };
        let Some(address) = first_address(addr) else {
            continue;
        };
        if addr.contains(' ') && !addr.starts_with('<') {
            continue;
        }
        if found.contains(&address) {
            continue;
        }
        let mut r = recipient(address, action, words);
        if contains_ci(words, "Domain does not exist") {
            r.reason_hint = Some(Reason::Hostunknown);
        }
        found.add(r);
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: MAILER-DAEMON@smtpd.example.org\nTo: sender@example.com\n\
Subject: Delivery status notification: error\n\n\
Hi!\n\nThis is the MAILER-DAEMON, please DO NOT REPLY to this e-mail.\n\n\
An error has occurred while attempting to deliver a message for\nthe following list of recipients:\n\n\
kim@example.net: 550 5.1.1 <kim@example.net>: Recipient address rejected: unknown\n\
lee@example.org: Domain does not exist\n\n\
Below is a copy of the original message:\n\nFrom: sender@example.com\nTo: kim@example.net\n";

    #[test]
    fn reads_recipient_lines() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            let got: Vec<_> = r.iter().filter_map(|r| r.recipient.as_deref()).collect();
            assert_eq!(got, ["kim@example.net", "lee@example.org"]);
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 5.1.1 <kim@example.net>: Recipient address rejected: unknown")
            );
            assert_eq!(r[0].command, None);
            assert_eq!(r[1].reason_hint, Some(Reason::Hostunknown));
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
