//! Postfix's plain-text bounce (the form without a `message/delivery-status` part): one paragraph per
//! recipient, `<address>: host mx.example.net[192.0.2.1] said: 550 ... (in reply to RCPT TO command)`.

use std::sync::LazyLock;

use regex::Regex;

use super::addresses::first_address;
use super::blocks::angle_blocks;
use super::replies::{command_word, is_delay_notice, recipient};
use super::words::{contains_ci, head};
use super::{Family, Input};
use crate::classify::Reason;
use crate::report::RecipientReport;

/// The Postfix plain-text reader.
pub const FAMILY: Family = Family {
    name: "postfix",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    let s = input.subject;
    s.starts_with("Postfix SMTP server: errors from")
        || s.starts_with("Undelivered Mail Returned to Sender")
        || s.starts_with("Delayed Mail (still being retried)")
        || s.starts_with("Undeliverable mail returned")
        || contains_ci(head(input.body), "This is the mail system at host")
        || contains_ci(head(input.body), "This is the Postfix program at host")
        || postfix_structure(head(input.body))
}

/// Postfix's fixed, untranslated wording inside a recipient paragraph, whatever the language of
/// the template around it: `host NAME[IP] said:` (no space before the bracket, unlike Exim) or
/// `(in reply to ... command)`, in a report with a `<address>:` paragraph.
fn postfix_structure(text: &str) -> bool {
    static POSTFIX_WORDING: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?:(?-u:\b)host [A-Za-z0-9][A-Za-z0-9.\-]*\[[0-9A-Fa-f.:]+\] said:|\(in reply to [A-Za-z ]{2,24} command\))",
        )
        .unwrap_or_else(|_| unreachable!("static regex"))
    });
    POSTFIX_WORDING.is_match(text)
        && text
            .lines()
            .any(|l| l.starts_with('<') && (l.contains(">:") || l.contains("> (")))
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    if input
        .subject
        .starts_with("Postfix SMTP server: errors from")
    {
        return read_session(text);
    }
    // Postfix's success template (requested with DSN NOTIFY=SUCCESS) lists delivered addresses
    // in the same shape as its failure template.
    let action = if input.subject.starts_with("Successful Mail Delivery Report")
        || contains_ci(text, "was successfully delivered to the destination")
    {
        "delivered"
    } else if input.subject.starts_with("Delayed Mail") || is_delay_notice(input.subject, text) {
        "delayed"
    } else {
        "failed"
    };
    let mut out: Vec<RecipientReport> = Vec::new();
    for block in angle_blocks(text) {
        let mut r = recipient(block.address, action, &block.text);
        r.reason_hint = hint(&block.text);
        out.push(r);
    }
    out
}

/// The notice Postfix's SMTP server sends the postmaster: an `In:` / `Out:` transcript of the
/// session; the recipients are those of `RCPT TO`, the diagnostic is the last failing reply.
fn read_session(text: &str) -> Vec<RecipientReport> {
    let mut recipients: Vec<String> = Vec::new();
    let mut command: Option<&'static str> = None;
    let mut failure: Option<(String, Option<&'static str>)> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(sent) = t.strip_prefix("In:") {
            let sent = sent.trim();
            command = command_word(sent.split_whitespace().next().unwrap_or(""));
            if command == Some("RCPT")
                && let Some(a) = first_address(sent)
                && !recipients.contains(&a)
            {
                recipients.push(a);
            }
        } else if let Some(reply) = t.strip_prefix("Out:") {
            let reply = reply.trim();
            if matches!(reply.as_bytes().first(), Some(b'4') | Some(b'5')) {
                failure = Some((reply.to_string(), command));
            }
        }
    }
    let Some((reply, command)) = failure else {
        return Vec::new();
    };
    // The client was refused (even a 4xx refusal ends this session): not a delay warning.
    let action = "failed";
    recipients
        .into_iter()
        .map(|a| {
            let mut r = recipient(a, action, &reply);
            r.command = command.map(str::to_string);
            r
        })
        .collect()
}

fn hint(text: &str) -> Option<Reason> {
    if contains_ci(text, "Host or domain name not found") {
        Some(Reason::Hostunknown)
    } else if text.starts_with("unknown user:") {
        Some(Reason::Userunknown)
    } else if contains_ci(text, "mail forwarding loop") {
        Some(Reason::Networkerror)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::input_from;

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
            // The address the sender used, which the failed one was expanded from.
            assert_eq!(r[1].recipient.as_deref(), Some("team@example.org"));
            assert_eq!(r[1].diagnostic.as_deref(), Some("552 5.2.2 Mailbox full"));
            assert_eq!(r[1].command.as_deref(), Some("DATA"));
            assert_eq!(r[2].diagnostic.as_deref(), Some("unknown user: \"carol\""));
            assert_eq!(r[2].reason_hint, Some(Reason::Userunknown));
            assert_eq!(r[2].command, None);
        });
    }

    const SESSION: &str = "From: MAILER-DAEMON@mx.example.org\nTo: postmaster@example.org\n\
Subject: Postfix SMTP server: errors from client.example.com[192.0.2.4]\n\n\
Transcript of session follows.\n\n Out: 220 mx.example.org ESMTP\n In:  EHLO client.example.com\n Out: 250 mx.example.org\n\
 In:  MAIL FROM:<sender@example.com>\n Out: 250 2.1.0 Ok\n In:  RCPT TO:<una@example.org>\n Out: 250 2.1.5 Ok\n\
 In:  DATA\n Out: 354 End data with <CR><LF>.<CR><LF>\n Out: 451 4.3.0 Error: queue file write error\n In:  QUIT\n Out: 221 Bye\n";

    #[test]
    fn reads_server_session_notice() {
        input_from(SESSION, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("una@example.org"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("451 4.3.0 Error: queue file write error")
            );
            assert_eq!(r[0].command.as_deref(), Some("DATA"));
            assert_eq!(r[0].action.as_deref(), Some("failed"));
        });
    }

    #[test]
    fn the_success_template_lists_delivered_addresses() {
        let success = "From: MAILER-DAEMON@mx.example.org\nTo: sender@example.com\n\
Subject: Successful Mail Delivery Report\n\n\
This is the mail system at host mx.example.org.\n\n\
Your message was successfully delivered to the destination(s)\nlisted below.\n\n\
<uma@example.org>: delivery via mx2.example.org[192.0.2.8]:25: 250 2.0.0 Ok\n";
        input_from(success, |input| {
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].action.as_deref(), Some("delivered"));
        });
    }

    #[test]
    fn detects_a_translated_template_by_its_fixed_wording() {
        let raw = "From: MAILER-DAEMON@out.example.org\nTo: sender@example.com\nSubject: Mensaje no entregado\n\n\
Este es el sistema de correo del servidor out.example.org.\n\n\
<rosa@example.net>: host mx.example.net[192.0.2.61] said: 550 5.1.1 buzon\n    inexistente (in reply to RCPT TO command)\n";
        input_from(raw, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 5.1.1 buzon inexistente")
            );
            assert_eq!(r[0].remote_mta.as_deref(), Some("mx.example.net"));
            assert_eq!(r[0].command.as_deref(), Some("RCPT"));
        });
        // Exim's "host X [ip]" (a space before the bracket) is not Postfix's wording.
        assert!(!postfix_structure(
            "<a@example.org>:\nhost mx.example.org [192.0.2.1]: 550 no\n"
        ));
    }

    #[test]
    fn never_panics_on_garbage() {
        crate::report::text::testutil::garbage(read);
    }
}
