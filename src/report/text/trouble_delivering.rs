//! The "trouble delivering" report: "We had trouble delivering your message. Full details follow:", then
//! "SMTP Server <host> rejected recipient <address> (Error following RCPT command). It responded as
//! follows: [...]" or "The following recipients returned permanent errors: address." with a
//! "Reason:" line.

use super::addresses::first_address;
use super::replies::recipient;
use super::words::{contains_ci, head};
use super::{Family, Input, PARAGRAPH_LIMIT, Recipients};
use crate::report::RecipientReport;

/// The "trouble delivering" reader.
pub const FAMILY: Family = Family {
    name: "trouble_delivering",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    contains_ci(
        head(input.body),
        "We had trouble delivering your message. Full details follow:",
    )
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut found = Recipients::default();
    for (i, line) in lines.iter().enumerate() {
        if found.full() {
            break;
        }
        let marker = [
            "rejected recipient",
            "returned permanent errors:",
            "returned temporary errors:",
        ]
        .into_iter()
        .find(|m| contains_ci(line, m));
        let Some(marker) = marker else {
            continue;
        };
        let at = line.to_ascii_lowercase().find(marker).unwrap_or(0);
        let Some(address) = line.get(at..).and_then(first_address) else {
            continue;
        };
        if found.contains(&address) {
            continue;
        }
        let mut words = line.to_string();
        for l in lines.iter().skip(i + 1) {
            if l.is_empty() || words.len() > PARAGRAPH_LIMIT {
                break;
            }
            words.push(' ');
            words.push_str(l);
        }
        let action = if marker.contains("temporary") {
            "delayed"
        } else {
            "failed"
        };
        let mut r = recipient(address, action, &words);
        r.remote_mta = words
            .split_once("SMTP Server <")
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(host, _)| host.to_ascii_lowercase());
        found.add(r);
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: <>\nTo: sender@example.com\nSubject: There was an error sending your mail\n\n\
We had trouble delivering your message. Full details follow:\n\nSubject: 'hi'\n\n1 error(s):\n\n\
SMTP Server <mx.example.net> rejected recipient <dee@example.net> (Error following RCPT command). It responded as follows: [550 5.1.1 User unknown]\n";

    #[test]
    fn reads_rejections() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("dee@example.net"));
            assert_eq!(r[0].command.as_deref(), Some("RCPT"));
            assert_eq!(r[0].remote_mta.as_deref(), Some("mx.example.net"));
            assert_eq!(r[0].diagnostic.as_deref(), Some("550 5.1.1 User unknown"));
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
