//! The "delivery errors" list: "---The following addresses had delivery errors---", then one
//! `address [reason]` line per recipient (an MTA that names itself nowhere in the report).

use super::addresses::leading_address;
use super::replies::recipient;
use super::words::{contains_ci, head};
use super::{Family, Input, Recipients};
use crate::report::RecipientReport;

/// The "delivery errors" list reader.
pub const FAMILY: Family = Family {
    name: "delivery_errors",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    contains_ci(
        head(input.body),
        "The following addresses had delivery errors",
    )
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let mut found = Recipients::default();
    let mut started = false;
    for line in text.lines() {
        if found.full() {
            break;
        }
        let t = line.trim();
        if !started {
            started = contains_ci(t, "The following addresses had delivery errors");
            continue;
        }
        let Some((address, words)) = leading_address(t) else {
            continue;
        };
        let words = words
            .strip_prefix('[')
            .and_then(|w| w.strip_suffix(']'))
            .unwrap_or(words);
        if !found.contains(&address) {
            found.add(recipient(address, "failed", words));
        }
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: MAILER-DAEMON@x1.example.org\nTo: sender@example.com\nSubject: Returned Mail: User unknown\n\n\
The original message was received at Mon, 2 Mar 2026 10:00:00 +0100\nfrom sender@example.com\n\n\
---The following addresses had delivery errors---\n\nzed@example.net [User unknown]\n";

    #[test]
    fn reads_bracketed_reasons() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("zed@example.net"));
            assert_eq!(r[0].diagnostic.as_deref(), Some("User unknown"));
            assert_eq!(r[0].command, None);
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
