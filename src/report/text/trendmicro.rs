//! Trend Micro InterScan Messaging Security Suite notices: "Unable to deliver message to <address>",
//! or an SMTP transcript (`Sent <<< RCPT TO:<address>` / `Received >>> 550 ...`).

use super::addresses::first_address;
use super::replies::recipient;
use super::words::contains_ci;
use super::{Family, Input, Recipients};
use crate::classify::Reason;
use crate::report::RecipientReport;

/// The InterScan reader.
pub const FAMILY: Family = Family {
    name: "trendmicro",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    input.body.contains("InterScan")
        || input
            .header("From")
            .is_some_and(|f| contains_ci(f, "interscan"))
        || (input.body.contains("Sent <<< RCPT TO:") && input.body.contains("Received >>>"))
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let mut found = Recipients::default();
    let mut pending: Option<(String, &str)> = None;
    for line in text.lines() {
        if found.full() {
            break;
        }
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Sent <<<") {
            let rest = rest.trim();
            if contains_ci(rest, "rcpt to") {
                pending = first_address(rest).map(|a| (a, "RCPT"));
            }
        } else if let Some(rest) = t.strip_prefix("Received >>>") {
            if let Some((a, cmd)) = pending.take() {
                let mut r = recipient(a, "failed", rest.trim());
                r.command = Some(cmd.to_string());
                found.add(r);
            }
        } else if let Some(at) = t.find("Unable to deliver message to") {
            let sentence = t.get(at..).unwrap_or(t);
            if let Some(a) = first_address(sentence)
                && !found.contains(&a)
            {
                let mut r = recipient(a, "failed", sentence);
                // InterScan asks the sender to check the address only when the remote server
                // refused the address itself.
                if contains_ci(sentence, "check if address is correct") {
                    r.reason_hint = Some(Reason::Userunknown);
                }
                found.add(r);
            }
        }
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::test_input;

    #[test]
    fn reads_transcript() {
        let body = "Sent <<< RCPT TO:<jan@Example.com>\nReceived >>> 550 5.1.1 <jan@example.com>... unknown\n";
        let got = test_input("postmaster@example.org", "Undeliverable", body, |i| {
            assert!(detect(i));
            read(i)
        });
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("jan@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("550 5.1.1 <jan@example.com>... unknown")
        );
        assert_eq!(got[0].command.as_deref(), Some("RCPT"));
    }

    #[test]
    fn an_address_to_check_is_unknown() {
        let body = "Message from InterScan Messaging Security Suite\n\nUnable to deliver message to <lea@example.net> (and other recipients in the same domain). Please check if address is correct.\n";
        let got = test_input(
            "interscan@gw.example.org",
            "Mail could not be delivered",
            body,
            read,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].reason_hint, Some(Reason::Userunknown));
        let vague = "Message from InterScan Messaging Security Suite\n\nUnable to deliver message to <lea@example.net> (and other recipients in the same domain).\n";
        let got = test_input(
            "interscan@gw.example.org",
            "Mail could not be delivered",
            vague,
            read,
        );
        assert_eq!(got[0].reason_hint, None);
    }

    #[test]
    fn reads_notice_and_garbage() {
        let body = "Message from InterScan Messaging Security Suite\n\nUnable to deliver message to <kai@example.net> (and other recipients in the same domain).\n";
        let got = test_input(
            "postmaster@example.org",
            "Mail could not be delivered",
            body,
            read,
        );
        assert_eq!(got[0].recipient.as_deref(), Some("kai@example.net"));
        assert!(
            got[0]
                .diagnostic
                .as_deref()
                .unwrap_or("")
                .starts_with("Unable to deliver message to")
        );
        assert_eq!(got[0].command, None);
        assert!(
            test_input(
                "x",
                "y",
                "Received >>> 550\nSent <<< RCPT TO:\u{0}\nUnable to deliver message to",
                read
            )
            .is_empty()
        );
    }
}
