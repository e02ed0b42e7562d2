//! Apache James's report: "Error message below:" with the server's reply, then "Message details:"
//! listing the envelope (`RCPT TO: address`).

use super::addresses::find_addresses;
use super::blocks::section_after;
use super::replies::recipient;
use super::words::contains_ci;
use super::{Family, Input, Recipients};
use crate::report::RecipientReport;

/// The Apache James reader.
pub const FAMILY: Family = Family {
    name: "james",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    let text = input.body;
    contains_ci(text, "Error message below:") && contains_ci(text, "Message details:")
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.body;
    let diagnostic = section_after(text, "Error message below:", |l| {
        contains_ci(l, "Message details:")
    })
    .unwrap_or_default();
    let details = text
        .find("Message details:")
        .and_then(|i| text.get(i..))
        .unwrap_or("");
    let mut found = Recipients::default();
    for line in details.lines() {
        let t = line.trim();
        let Some(list) = t.strip_prefix("RCPT TO:").or_else(|| t.strip_prefix("To:")) else {
            if t.starts_with("--") {
                break;
            }
            continue;
        };
        for f in find_addresses(list) {
            if !found.contains(&f.address) {
                found.add(recipient(f.address, "failed", &diagnostic));
            }
        }
        if !found.is_empty() {
            break;
        }
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: postmaster@james.example.org\nTo: sender@example.com\nSubject: Re: hello\n\n\
Error: Invalid user address\n\nError message below:\n550 - Requested action not taken: no such user here\n\n\
Message details:\n  Subject: hello\n  MAIL FROM: sender@example.com\n  RCPT TO: nia@example.net\n  From: sender@example.com\n";

    #[test]
    fn reads_error_and_envelope() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("nia@example.net"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 - Requested action not taken: no such user here")
            );
            assert_eq!(r[0].command, None);
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
