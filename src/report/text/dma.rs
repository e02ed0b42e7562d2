//! The DragonFly Mail Agent's report: "There was an error delivering your mail to <address>." then
//! the server's words, then "Message headers follow." (or the whole original).

use super::addresses::first_address;
use super::replies::recipient;
use super::words::{contains_ci, head};
use super::{Family, Input, Recipients};
use crate::classify::Reason;
use crate::report::RecipientReport;

/// The DragonFly Mail Agent reader.
pub const FAMILY: Family = Family {
    name: "dma",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    contains_ci(head(input.body), "This is the DragonFly Mail Agent")
        || contains_ci(
            head(input.body),
            "There was an error delivering your mail to",
        )
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let mut found = Recipients::default();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if found.full() {
            break;
        }
        let t = line.trim();
        if contains_ci(t, "error delivering your mail to") {
            if let Some((a, w)) = current.take() {
                found.add(report(a, &w));
            }
            let after = t
                .get(t.to_ascii_lowercase().find("mail to").unwrap_or(0)..)
                .unwrap_or(t);
            current = first_address(after).map(|a| (a, String::new()));
        } else if let Some((_, words)) = current.as_mut()
            && !t.is_empty()
        {
            words.push_str(t);
            words.push('\n');
        }
    }
    if let Some((a, w)) = current.take() {
        found.add(report(a, &w));
    }
    found.into_vec()
}

fn report(address: String, words: &str) -> RecipientReport {
    let mut r = recipient(address, "failed", words);
    if let Some(d) = r.diagnostic.as_deref() {
        if let Some(i) = d.find(" did not like our") {
            r.remote_mta = d
                .get(..i)
                .and_then(|h| h.split_whitespace().next())
                .map(str::to_ascii_lowercase);
        }
        if contains_ci(d, "DNS lookup failure: host") && contains_ci(d, "not found") {
            r.reason_hint = Some(Reason::Hostunknown);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: MAILER-DAEMON@box.example.org\nTo: sender@example.org\nSubject: Mail delivery failed\n\n\
This is the DragonFly Mail Agent v0.13 at box.example.org.\n\n\
There was an error delivering your mail to <mia@example.net>.\n\n\
mx.example.net [192.0.2.44] did not like our RCPT TO:\n550-5.1.1 The account does not\n\n550 5.1.1 exist here\n\n\
Message headers follow.\n\nTo: <mia@example.net>\nFrom: <sender@example.org>\n";

    #[test]
    fn reads_recipient_and_words() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("mia@example.net"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 5.1.1 The account does not exist here")
            );
            assert_eq!(r[0].command.as_deref(), Some("RCPT"));
            assert_eq!(r[0].remote_mta.as_deref(), Some("mx.example.net"));
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
