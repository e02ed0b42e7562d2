//! Bigfoot's forwarding service: a Sendmail-like report ("The following addresses had permanent
//! fatal errors", then a `>>> RCPT TO` / `<<< reply` transcript) sent from bigfoot.com.

use super::addresses::{address_alone, first_address};
use super::replies::recipient;
use super::{Family, Input, Recipients};
use crate::report::RecipientReport;

/// The Bigfoot reader.
pub const FAMILY: Family = Family {
    name: "bigfoot",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    input.from.contains("bigfoot.com") && input.body.contains("The following addresses had")
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let mut found = Recipients::default();
    // Listed recipients still without the server's reply.
    let mut waiting: Vec<String> = Vec::new();
    let mut in_list = false;
    let mut last_cmd: Option<(&str, Option<String>)> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.contains("The following addresses had") {
            in_list = true;
            continue;
        }
        if t.starts_with("-----") {
            in_list = false;
            continue;
        }
        if in_list {
            if let Some(a) = address_alone(t)
                && found.add(recipient(a.clone(), "failed", ""))
            {
                waiting.push(a);
            }
        } else if let Some(rest) = t.strip_prefix(">>>") {
            let rest = rest.trim();
            let verb = rest
                .split([' ', ':'])
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let cmd = match verb.as_str() {
                "RCPT" => "RCPT",
                "MAIL" => "MAIL",
                "DATA" | "." => "DATA",
                _ => "",
            };
            last_cmd = Some((cmd, first_address(rest)));
        } else if let Some(rest) = t.strip_prefix("<<<") {
            let (cmd, addr) = last_cmd.clone().unwrap_or(("", None));
            // The reply belongs to the transcript's recipient, else to every listed one.
            let targets: Vec<String> = match addr {
                Some(a) => vec![a],
                None => std::mem::take(&mut waiting),
            };
            for a in targets {
                if let Some(r) = found.get_mut(&a).filter(|r| r.diagnostic.is_none()) {
                    r.diagnostic = Some(rest.trim().to_string());
                    r.command = (!cmd.is_empty()).then(|| cmd.to_string());
                }
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
        let body = "The original message was received at Mon, 5 Jan 2026 10:00:00 -0800\n\n   ----- The following addresses had permanent fatal errors -----\n<tom@Example.org>\n\n   ----- Transcript of session follows -----\n>>> RCPT TO:<tom@example.org>\n<<< 553 Invalid recipient tom@example.org\n";
        let got = test_input("mailer-daemon@bigfoot.com", "Returned mail", body, |i| {
            assert!(detect(i));
            read(i)
        });
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("tom@example.org"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("553 Invalid recipient tom@example.org")
        );
        assert_eq!(got[0].command.as_deref(), Some("RCPT"));
    }

    #[test]
    fn garbage_gives_nothing() {
        assert!(
            test_input(
                "x@bigfoot.com",
                "y",
                "<<< 550\n>>>\nThe following addresses had\n<\u{0}>",
                read
            )
            .is_empty()
        );
    }
}
