//! SurfControl's report: "Your message could not be sent. A transcript of the attempts to send the
//! message follows.", then `Addressed To: address` and `address: [ip], the server's words` lines.

use super::addresses::{find_addresses, leading_address};
use super::replies::recipient;
use super::words::{contains_ci, head};
use super::{Family, Input, Recipients};
use crate::report::RecipientReport;

/// The SurfControl reader.
pub const FAMILY: Family = Family {
    name: "surfcontrol",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    input.header("X-SEF-Processed").is_some()
        || contains_ci(
            head(input.body),
            "A transcript of the attempts to send the message follows",
        )
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let mut found = Recipients::default();
    for line in text.lines() {
        if found.full() {
            break;
        }
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Addressed To:") {
            for f in find_addresses(v) {
                found.add(recipient(f.address, "failed", ""));
            }
            continue;
        }
        let Some((address, words)) = leading_address(t) else {
            continue;
        };
        if words.is_empty() {
            continue;
        }
        // The attempt's own line (`address: [ip], reply`) replaces what the address line gave.
        match found.get_mut(&address) {
            Some(r) => *r = recipient(address, "failed", words),
            None => {
                found.add(recipient(address, "failed", words));
            }
        }
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: postmaster@sc.example.org\nTo: sender@example.com\nSubject: Mail could not be delivered\nX-SEF-Processed: 5_0_0_910\n\n\
Your message could not be sent.\nA transcript of the attempts to send the message follows.\nThe number of attempts made: 1\n\
Addressed To: xia@example.net\n\nMon 2 Mar 2026 10:00:00 +0100\nFailed to send to identified host,\n\
xia@example.net: [192.0.2.5], 550 xia@example.net... No such user\n--- Message non-deliverable.\n";

    #[test]
    fn reads_attempts() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("xia@example.net"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("[192.0.2.5], 550 xia@example.net... No such user")
            );
            assert_eq!(r[0].command, None);
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
