//! qmail's `qmail-send` report (and the vpopmail/netqmail variants): one paragraph per recipient,
//! introduced by `<address>:` on its own line, the server's words below it.

use super::blocks::angle_blocks;
use super::replies::{action_for, recipient};
use super::words::{contains_ci, head};
use super::{Family, Input};
use crate::classify::Reason;
use crate::report::RecipientReport;

/// The qmail reader.
pub const FAMILY: Family = Family {
    name: "qmail",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    let b = head(input.body);
    contains_ci(b, "This is the qmail-send program")
        || contains_ci(b, "I'm afraid I wasn't able to deliver your message")
        || contains_ci(b, "--- Below this line is a copy of the message")
        || contains_ci(b, "--- Enclosed are the original headers of the message")
        || (input.subject == "failure notice" && contains_ci(b, "qmail"))
}

/// Fixed qmail phrases that name the reason exactly.
const HINTS: &[(&str, Reason)] = &[
    ("no mailbox here by that name", Reason::Userunknown),
    ("Sorry, I couldn't find any host named", Reason::Hostunknown),
    (
        "Sorry, I couldn't find any host by that name",
        Reason::Hostunknown,
    ),
    (
        "Sorry, I couldn't find a mail exchanger or IP address",
        Reason::Hostunknown,
    ),
    ("mailbox is full", Reason::Mailboxfull),
    ("quota exceeded", Reason::Mailboxfull),
    (
        "The users mailfolder is over the allowed quota",
        Reason::Mailboxfull,
    ),
    ("This message is looping", Reason::Networkerror),
    (
        "I'm not going to try again; this message has been in the queue too long",
        Reason::Expired,
    ),
    (
        "Sorry, that domain isn't in my list of allowed rcpthosts",
        Reason::Norelaying,
    ),
    ("Message is too big", Reason::Mesgtoobig),
];

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let action = action_for(input.subject, text);
    let mut out: Vec<RecipientReport> = Vec::new();
    for block in angle_blocks(text) {
        let mut r = recipient(block.address, action, &block.text);
        if r.remote_mta.is_none() {
            r.remote_mta = remote_of(&block.text);
        }
        r.reason_hint = HINTS
            .iter()
            .find(|(p, _)| contains_ci(&block.text, p))
            .map(|(_, h)| *h);
        out.push(r);
    }
    out
}

/// The host in qmail's "X does not like recipient." and "Connected to X but ..." sentences.
fn remote_of(text: &str) -> Option<String> {
    let first = text.lines().next()?.trim();
    let host = if let Some(rest) = first.strip_prefix("Connected to ") {
        rest.split_whitespace().next()?
    } else if first.contains(" does not like ") || first.contains(" failed after I sent") {
        first.split_whitespace().next()?
    } else {
        return None;
    };
    host.contains('.').then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: MAILER-DAEMON@mx.example.org\nTo: sender@example.com\nSubject: failure notice\n\n\
Hi. This is the qmail-send program at mx.example.org.\n\
I'm afraid I wasn't able to deliver your message to the following addresses.\n\
This is a permanent error; I've given up. Sorry it didn't work out.\n\n\
<dan@example.net>:\n192.0.2.7 does not like recipient.\nRemote host said: 550 5.1.1 <dan@example.net>... no such user\nGiving up on 192.0.2.7.\n\n\
<eve@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n\
<fay@example.com>:\nConnected to 192.0.2.9 but sender was rejected.\nRemote host said: 553 sender domain unknown\n\n\
--- Below this line is a copy of the message.\n\nReturn-Path: <sender@example.com>\nTo: other@example.net\n\nhello\n";

    #[test]
    fn reads_each_paragraph() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            let got: Vec<_> = r.iter().filter_map(|r| r.recipient.as_deref()).collect();
            assert_eq!(
                got,
                ["dan@example.net", "eve@example.org", "fay@example.com"]
            );
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 5.1.1 <dan@example.net>... no such user")
            );
            assert_eq!(r[0].command.as_deref(), Some("RCPT"));
            assert_eq!(r[0].remote_mta.as_deref(), Some("192.0.2.7"));
            assert_eq!(r[1].reason_hint, Some(Reason::Userunknown));
            assert_eq!(
                r[1].diagnostic.as_deref(),
                Some("Sorry, no mailbox here by that name. (#5.1.1)")
            );
            assert_eq!(r[2].command.as_deref(), Some("MAIL"));
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
