//! Japanese mobile carriers and ISPs whose reports carry fixed English sentences beside the
//! Japanese text: au by KDDI's EZweb (`ezweb.ne.jp`), KDDI's au one net (`dion.ne.jp`) and BIGLOBE.

use super::addresses::{address_alone, first_address};
use super::blocks::paragraph;
use super::replies::{in_reply_to, recipient};
use super::words::{strip_prefix_ci, unfold};
use super::{Family, Input, Recipients};
use crate::classify::Reason;
use crate::report::RecipientReport;

/// The EZweb (au by KDDI mobile mail) reader.
pub const EZWEB: Family = Family {
    name: "ezweb",
    detect: detect_ezweb,
    read: read_ezweb,
};

/// The KDDI au one net reader.
pub const KDDI: Family = Family {
    name: "kddi",
    detect: detect_kddi,
    read: read_kddi,
};

/// The BIGLOBE reader.
pub const BIGLOBE: Family = Family {
    name: "biglobe",
    detect: detect_biglobe,
    read: read_biglobe,
};

/// Fixed carrier sentences that name the reason with certainty.
const HINTS: &[(&str, Reason)] = &[
    ("The user(s) account is disabled.", Reason::Suspend),
    ("As their mailbox is full.", Reason::Mailboxfull),
    (
        "The number of messages in recipient's mailbox exceeded the local limit.",
        Reason::Mailboxfull,
    ),
    ("Your message was not delivered within", Reason::Expired),
    // EZweb's wording for a refusal; alone (no server answer quoted), the recipient's own
    // reception filter refused.
    (
        "Each of the following recipients was rejected by a remote mail server.",
        Reason::Filtered,
    ),
];

fn hint(text: &str) -> Option<Reason> {
    HINTS
        .iter()
        .find(|(s, _)| text.contains(s))
        .map(|(_, r)| *r)
}

fn detect_ezweb(input: &Input) -> bool {
    input.from.ends_with("ezweb.ne.jp")
        && (input.body.contains("recipients") || input.body.contains("account is disabled"))
}

fn read_ezweb(input: &Input) -> Vec<RecipientReport> {
    let mut found = Recipients::default();
    // The recipient a transcript line is about; `None` after a repeated address.
    let mut current: Option<String> = None;
    let mut english: Vec<&str> = Vec::new();
    for line in input.explanation.lines() {
        if found.full() {
            break;
        }
        let t = line.trim();
        // The returned header follows a dashed rule.
        if t.starts_with("-----") || t.starts_with("Received:") {
            break;
        }
        let target = strip_prefix_ci(t, "Recipient:").unwrap_or(t).trim();
        let inline = target
            .strip_prefix('<')
            .and_then(|r| r.split_once(">: "))
            .and_then(|(a, said)| Some((address_alone(a)?, said)));
        if let Some((a, said)) = inline {
            // A relay's `<address>: reply (in reply to RCPT TO command)` line.
            let (words, command) = in_reply_to(said);
            let mut r = recipient(a.clone(), "failed", words);
            r.command = command;
            current = found.add(r).then_some(a);
        } else if let Some(a) = address_alone(target).filter(|_| target.starts_with('<')) {
            if !found.contains(&a) {
                found.add(recipient(a.clone(), "failed", ""));
                current = Some(a);
            }
        } else if let Some(rest) = t.strip_prefix(">>>") {
            if let (Some(r), true) = (
                current.as_deref().and_then(|a| found.get_mut(a)),
                rest.trim_start().to_ascii_uppercase().starts_with("RCPT"),
            ) {
                r.command = Some("RCPT".to_string());
            }
        } else if let Some(rest) = t.strip_prefix("<<<") {
            if let Some(r) = current.as_deref().and_then(|a| found.get_mut(a)) {
                r.diagnostic = Some(rest.trim().to_string());
            }
        } else if !t.is_empty() && t.is_ascii() && !t.ends_with(':') && english.len() < 64 {
            // Lines ending in a colon only introduce the address list.
            english.push(t);
        }
    }
    let text = unfold(&english.join(" "));
    let reason = hint(&text);
    let mut out = found.into_vec();
    for r in &mut out {
        let answered = r.diagnostic.as_deref().is_some_and(|d| !d.is_empty());
        if !answered && !text.is_empty() {
            r.diagnostic = Some(text.clone());
        }
        // "Rejected by a remote mail server" with no answer quoted is the recipient's reception
        // filter; with the server's answer, the answer says why.
        r.reason_hint = reason.filter(|h| *h != Reason::Filtered || !answered);
    }
    out
}

fn detect_kddi(input: &Input) -> bool {
    (input.from.contains("dion.ne.jp")
        || input.from.contains("kddi")
        || input.from.contains("au.com"))
        && input.body.contains("Could not be delivered to:")
}

fn read_kddi(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let mut found = Recipients::default();
    let mut lines = text.lines().map(str::trim).peekable();
    while let Some(t) = lines.next() {
        if found.full() {
            break;
        }
        let Some(rest) = t.strip_prefix("Could not be delivered to:") else {
            continue;
        };
        let Some(a) = first_address(rest) else {
            continue;
        };
        let mut why = Vec::new();
        while let Some(next) = lines.peek() {
            if next.is_empty() || next.starts_with("Could not be delivered to:") {
                break;
            }
            why.push(*next);
            lines.next();
        }
        let diag = unfold(&why.join(" "));
        let mut r = recipient(a, "failed", &diag);
        r.reason_hint = hint(&diag);
        found.add(r);
    }
    found.into_vec()
}

fn detect_biglobe(input: &Input) -> bool {
    input.from.contains("biglobe.ne.jp")
        && input
            .body
            .contains("The following addresses had delivery problems")
}

fn read_biglobe(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let Some((_, rest)) = text.split_once("The following addresses had delivery problems") else {
        return Vec::new();
    };
    let (list, info) = rest
        .split_once("Non-delivered information")
        .unwrap_or((rest, ""));
    let why = paragraph(info.lines().skip(1), |l| l.starts_with("-----"));
    let diag = unfold(&why);
    Recipients::of(list.lines().skip(1).filter_map(address_alone), |a| {
        let mut r = recipient(a, "failed", &diag);
        r.reason_hint = hint(&diag);
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::test_input;

    #[test]
    fn ezweb_transcript() {
        let body = "次のあて先へのメッセージはエラーのため送信できませんでした。\n\nEach of the following recipients was rejected by a remote\nmail server.\n\n    Recipient: <nao@ezweb.ne.jp>\n    >>> RCPT TO:<nao@ezweb.ne.jp>\n    <<< 550 <nao@ezweb.ne.jp>: User unknown\n\n";
        let got = test_input(
            "postmaster@ezweb.ne.jp",
            "Mail System Error - Returned Mail",
            body,
            |i| {
                assert!(detect_ezweb(i));
                read_ezweb(i)
            },
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("nao@ezweb.ne.jp"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("550 <nao@ezweb.ne.jp>: User unknown")
        );
        assert_eq!(got[0].command.as_deref(), Some("RCPT"));
        assert_eq!(got[0].reason_hint, None);
    }

    #[test]
    fn ezweb_fixed_sentences() {
        let body = "メッセージは送信できませんでした。\n\nThe user(s) account is disabled.\n\nThe following recipients did not receive this message:\n\n<oto@ezweb.ne.jp>\n";
        let got = test_input(
            "postmaster@ezweb.ne.jp",
            "Mail System Error - Returned Mail",
            body,
            read_ezweb,
        );
        assert_eq!(got[0].recipient.as_deref(), Some("oto@ezweb.ne.jp"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("The user(s) account is disabled.")
        );
        assert_eq!(got[0].reason_hint, Some(Reason::Suspend));
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn ezweb_reception_filter() {
        let body = "<ryo@ezweb.ne.jp>\n\nEach of the following recipients was rejected by a remote mail server.\n-----------------------------\nReceived: from a.example.org\n";
        let got = test_input(
            "postmaster@ezweb.ne.jp",
            "Mail System Error - Returned Mail",
            body,
            read_ezweb,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("ryo@ezweb.ne.jp"));
        assert_eq!(got[0].reason_hint, Some(Reason::Filtered));
    }

    #[test]
    fn ezweb_relay_line() {
        let body = "The user(s) account is disabled.\n\n<uma@ezweb.ne.jp>: 550 user unknown (in reply to RCPT TO command)\n";
        let got = test_input(
            "postmaster@ezweb.ne.jp",
            "Mail System Error - Returned Mail",
            body,
            read_ezweb,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("uma@ezweb.ne.jp"));
        assert_eq!(got[0].diagnostic.as_deref(), Some("550 user unknown"));
        assert_eq!(got[0].command.as_deref(), Some("RCPT"));
        assert_eq!(got[0].reason_hint, Some(Reason::Suspend));
    }

    #[test]
    fn kddi_mailbox_full() {
        let body = "Your mail sent on: Mon, 5 Jan 2026 10:00:00 +0900\n     Could not be delivered to: <pia@example.dion.ne.jp>\n     As their mailbox is full.\n";
        let got = test_input("no-reply@example.dion.ne.jp", "Mail", body, |i| {
            assert!(detect_kddi(i));
            read_kddi(i)
        });
        assert_eq!(got[0].recipient.as_deref(), Some("pia@example.dion.ne.jp"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("As their mailbox is full.")
        );
        assert_eq!(got[0].reason_hint, Some(Reason::Mailboxfull));
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn biglobe_limit() {
        let body = "   ----- The following addresses had delivery problems -----\nrio@example.biglobe.ne.jp\n\n   ----- Non-delivered information -----\nThe number of messages in recipient's mailbox exceeded the local limit.\n";
        let got = test_input("postmaster@biglobe.ne.jp", "Returned mail", body, |i| {
            assert!(detect_biglobe(i));
            read_biglobe(i)
        });
        assert_eq!(
            got[0].recipient.as_deref(),
            Some("rio@example.biglobe.ne.jp")
        );
        assert_eq!(got[0].reason_hint, Some(Reason::Mailboxfull));
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn garbage_gives_nothing() {
        for body in [
            "",
            "<>\n>>> RCPT\n<<< 550",
            "Could not be delivered to: \u{0}",
            "The following addresses had delivery problems\n<",
        ] {
            assert!(test_input("a@ezweb.ne.jp", "y", body, read_ezweb).is_empty());
            assert!(test_input("a@dion.ne.jp", "y", body, read_kddi).is_empty());
            assert!(test_input("a@biglobe.ne.jp", "y", body, read_biglobe).is_empty());
        }
    }
}
