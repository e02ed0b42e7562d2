//! Zoho Mail's reports: `address Invalid Address, ERROR_CODE :550, ERROR_CODE :text` lines, and the
//! delay warning's `[Status: Error, Address: <address>, ResponseCode 421, , text]`.

use super::addresses::{address_alone, first_address};
use super::replies::recipient;
use super::{Family, Input, Recipients};
use crate::report::RecipientReport;

/// The Zoho reader.
pub const FAMILY: Family = Family {
    name: "zoho",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    input.from.contains("zoho")
        && (input.body.contains("ERROR_CODE") || input.body.contains("ResponseCode"))
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let delayed = text.contains("THIS IS A WARNING MESSAGE ONLY");
    let mut found = Recipients::default();
    for line in text.lines() {
        if found.full() {
            break;
        }
        let t = line.trim();
        if let Some((head, rest)) = t.split_once(" Invalid Address,") {
            let Some(a) = address_alone(head) else {
                continue;
            };
            let parts: Vec<&str> = rest
                .split("ERROR_CODE :")
                .map(|p| p.trim().trim_end_matches(',').trim())
                .filter(|p| !p.is_empty())
                .collect();
            found.add(recipient(a, "failed", &parts.join(" ")));
        } else if let Some(inner) = t.strip_prefix("[Status:").and_then(|r| r.strip_suffix(']')) {
            let Some(a) = inner
                .split_once("Address:")
                .and_then(|(_, r)| first_address(r.split(',').next().unwrap_or("")))
            else {
                continue;
            };
            let after = inner.split_once("ResponseCode").map_or("", |(_, r)| r);
            let parts: Vec<&str> = after
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            let mut r = recipient(a, "failed", &parts.join(" "));
            if delayed {
                r.action = Some("delayed".to_string());
            }
            found.add(r);
        }
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::test_input;

    #[test]
    fn reads_error_code_lines() {
        let body = "A message that you sent could not be delivered to one or more of its recipients.\n\nemi@Example.com Invalid Address, ERROR_CODE :550, ERROR_CODE :5.1.1 <emi@example.com>... No such user\nfay@example.com Invalid Address, ERROR_CODE :550, ERROR_CODE :Requested action not taken\n";
        let got = test_input(
            "mailer-daemon@mail.zoho.example",
            "Undelivered Mail Returned to Sender",
            body,
            |i| {
                assert!(detect(i));
                read(i)
            },
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].recipient.as_deref(), Some("emi@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("550 5.1.1 <emi@example.com>... No such user")
        );
        assert_eq!(
            got[1].diagnostic.as_deref(),
            Some("550 Requested action not taken")
        );
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn reads_delay_and_garbage() {
        let body = "THIS IS A WARNING MESSAGE ONLY.\n\n[Status: Error, Address: <gus@example.net>, ResponseCode 421, , Host not reachable.]\n";
        let got = test_input("mailer-daemon@mail.zoho.example", "Delay", body, read);
        assert_eq!(got[0].action.as_deref(), Some("delayed"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("421 Host not reachable.")
        );
        assert!(test_input("x@zoho", "y", "[Status:]\n Invalid Address,\n\u{0}", read).is_empty());
    }
}
