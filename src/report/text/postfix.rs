//! Postfix's plain-text bounce (the form without a `message/delivery-status` part): one paragraph per
//! recipient, `<address>: host mx.example.net[192.0.2.1] said: 550 ... (in reply to RCPT TO command)`.

use super::common::{self, contains_ci};
use super::{Family, Input};
use crate::report::RecipientReport;

/// The Postfix plain-text reader.
pub const POSTFIX: Family = Family {
    name: "postfix",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    let s = input.subject;
    s.starts_with("Undelivered Mail Returned to Sender")
        || s.starts_with("Delayed Mail (still being retried)")
        || s.starts_with("Undeliverable mail returned")
        || contains_ci(input.body, "This is the mail system at host")
        || contains_ci(input.body, "This is the Postfix program at host")
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = common::cut_original(input.body);
    let action = if input.subject.starts_with("Delayed Mail")
        || common::is_delay_notice(input.subject, text)
    {
        "delayed"
    } else {
        "failed"
    };
    let mut out: Vec<RecipientReport> = Vec::new();
    for block in common::angle_blocks(text) {
        if out
            .iter()
            .any(|r| r.recipient.as_deref() == Some(block.address.as_str()))
        {
            continue;
        }
        let mut r = common::report_from_block(block.address, action, &block.text);
        r.reason_hint = hint(&block.text);
        out.push(r);
    }
    out
}

fn hint(text: &str) -> Option<&'static str> {
    if contains_ci(text, "Host or domain name not found") {
        Some("hostunknown")
    } else if text.starts_with("unknown user:") {
        Some("userunknown")
    } else if contains_ci(text, "mail forwarding loop") {
        Some("networkerror")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::common::testutil::input_from;

    const SAMPLE: &str = "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n\
To: sender@example.com\nSubject: Undelivered Mail Returned to Sender\n\n\
This is the mail system at host mx.example.org.\n\n\
I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients.\n\n\
                   The mail system\n\n\
<alice@Example.NET>: host mail.example.net[192.0.2.10] said: 550 5.1.1\n    <alice@example.net>: Recipient address rejected: no such user (in reply to\n    RCPT TO command)\n\n\
<bob@example.org> (expanded from <team@example.org>): host\n    mx.example.org[192.0.2.20] said: 552 5.2.2 Mailbox full (in reply to end of\n    DATA command)\n\n\
<carol@example.com>: unknown user: \"carol\"\n";

    #[test]
    fn reads_each_paragraph() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 3);
            assert_eq!(r[0].recipient.as_deref(), Some("alice@example.net"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 5.1.1 <alice@example.net>: Recipient address rejected: no such user")
            );
            assert_eq!(r[0].command.as_deref(), Some("RCPT"));
            assert_eq!(r[0].remote_mta.as_deref(), Some("mail.example.net"));
            assert_eq!(r[1].recipient.as_deref(), Some("bob@example.org"));
            assert_eq!(r[1].diagnostic.as_deref(), Some("552 5.2.2 Mailbox full"));
            assert_eq!(r[1].command.as_deref(), Some("DATA"));
            assert_eq!(r[2].diagnostic.as_deref(), Some("unknown user: \"carol\""));
            assert_eq!(r[2].reason_hint, Some("userunknown"));
            assert_eq!(r[2].command, None);
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        crate::report::text::common::testutil::garbage(read);
    }
}
