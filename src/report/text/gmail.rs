//! Gmail's own text bounce: "Delivery to the following recipient failed permanently" (or "has been
//! delayed"), then "Technical details of permanent failure" with the remote server's reply.

use super::addresses::address_alone;
use super::replies::{command_of, host_after, recipient};
use super::words::unfold;
use super::{Family, Input, Recipients};
use crate::classify::Reason;
use crate::report::{MAX_RECIPIENTS, RecipientReport};

/// The Gmail text-bounce reader.
pub const FAMILY: Family = Family {
    name: "gmail",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    (input.from.contains("googlemail.com")
        || input.from.contains("gmail.com")
        || input.from.contains("google.com"))
        && (input.body.contains("Delivery to the following recipient")
            || input.body.contains("Technical details of"))
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let delayed = text.contains("has been delayed") || text.contains("temporary failure");
    let mut addrs = Vec::new();
    let mut in_list = false;
    let mut details: Vec<&str> = Vec::new();
    let mut in_details = false;
    let mut retry_note: Option<&str> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Message will be retried") {
            retry_note = Some(t);
        }
        if t.starts_with("Delivery to the following recipient") {
            in_list = true;
            continue;
        }
        if t.starts_with("Technical details of") {
            in_details = true;
            in_list = false;
            continue;
        }
        if in_list {
            if let Some(a) = address_alone(t) {
                if addrs.len() > MAX_RECIPIENTS {
                    break;
                }
                addrs.push(a);
            } else if !t.is_empty() {
                in_list = false;
            }
        } else if in_details {
            details.push(t);
        }
    }
    let full = unfold(&details.join(" "));
    let diag = match full.find("The error that the other server returned was:") {
        Some(at) => full
            .get(at + "The error that the other server returned was:".len()..)
            .unwrap_or("")
            .trim()
            .to_string(),
        None => full.clone(),
    };
    // A delay warning without technical details says only that the message is still queued:
    // its retry sentence is the whole diagnostic, and the time left is what is failing.
    let (diag, hint) = match retry_note {
        Some(note) if delayed && diag.is_empty() => (note.to_string(), Some(Reason::Expired)),
        _ => (diag, None),
    };
    let remote = full
        .find("for the recipient domain")
        .and_then(|at| host_after(full.get(at..)?, " by "));
    let command = command_of(&full).map(str::to_string);
    Recipients::of(addrs, |a| {
        let mut r = recipient(a, "failed", &diag);
        if delayed {
            r.action = Some("delayed".to_string());
        }
        r.remote_mta = remote.clone();
        r.command = command.clone();
        r.reason_hint = hint;
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::test_input;

    const PERMANENT: &str = "Delivery to the following recipient failed permanently:\n\n     alice@Example.COM\n\nTechnical details of permanent failure: \nGoogle tried to deliver your message, but it was rejected by the server for the recipient domain example.com by mx1.example.com. [192.0.2.10].\n\nThe error that the other server returned was:\n550 5.1.1 <alice@example.com>: no such\n mailbox here\n\n----- Original message -----\n\nTo: bob@example.org\n";

    #[test]
    fn reads_permanent_failure() {
        let got = test_input(
            "mailer-daemon@googlemail.com",
            "Delivery Status Notification (Failure)",
            PERMANENT,
            |i| {
                assert!(detect(i));
                read(i)
            },
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("alice@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("550 5.1.1 <alice@example.com>: no such mailbox here")
        );
        assert_eq!(got[0].remote_mta.as_deref(), Some("mx1.example.com"));
        assert_eq!(got[0].action.as_deref(), Some("failed"));
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn a_bare_delay_warning_is_read_as_running_out_of_time() {
        let body = "THIS IS A WARNING MESSAGE ONLY.\n\nDelivery to the following recipient has been delayed:\n\n     dan@example.org\n\nMessage will be retried for 1 more day(s)\n\n----- Original message -----\n\nTo: dan@example.org\n";
        let got = test_input(
            "mailer-daemon@googlemail.com",
            "Delivery Status Notification (Delay)",
            body,
            read,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].action.as_deref(), Some("delayed"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("Message will be retried for 1 more day(s)")
        );
        assert_eq!(got[0].reason_hint, Some(Reason::Expired));
    }

    #[test]
    fn reads_delay_and_connect_failure() {
        let body = "THIS IS A WARNING MESSAGE ONLY.\n\nDelivery to the following recipient has been delayed:\n\n     carol@example.net\n\nMessage will be retried for 2 more day(s)\n\nTechnical details of temporary failure: \nThe recipient server did not accept our requests to connect. Learn more at https://support.example.com/\n[example.net 192.0.2.7: socket error]\n";
        let got = test_input(
            "mailer-daemon@googlemail.com",
            "Delivery Status Notification (Delay)",
            body,
            read,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].action.as_deref(), Some("delayed"));
        assert_eq!(got[0].command.as_deref(), Some("CONN"));
        assert!(
            got[0]
                .diagnostic
                .as_deref()
                .unwrap_or("")
                .ends_with("socket error]")
        );
    }

    #[test]
    fn garbage_gives_nothing() {
        for body in [
            "",
            "Delivery to the following recipient",
            "Technical details of\n\u{0}<<>>@",
        ] {
            let got = test_input("mailer-daemon@googlemail.com", "x", body, read);
            assert!(got.is_empty());
        }
    }
}
