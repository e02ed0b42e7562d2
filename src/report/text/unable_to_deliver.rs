//! The "unable to deliver" report: "Unable to deliver message to the following address(es).", then
//! qmail-style `<address>:` paragraphs (an MTA that names itself nowhere in the report).

use super::blocks::angle_blocks;
use super::replies::{recipient, set_remote_from_diagnostic};
use super::words::{contains_ci, head};
use super::{Family, Input};
use crate::report::RecipientReport;

/// The "unable to deliver" reader.
pub const FAMILY: Family = Family {
    name: "unable_to_deliver",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    contains_ci(
        head(input.body),
        "Unable to deliver message to the following address(es).",
    )
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    angle_blocks(text)
        .into_iter()
        .map(|block| {
            let mut r = recipient(block.address, "failed", &block.text);
            set_remote_from_diagnostic(&mut r);
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: MAILER-DAEMON@x2.example.org\nTo: sender@example.com\nSubject: Delivery failure\n\n\
Message from x2.example.org.\nUnable to deliver message to the following address(es).\n\n\
<amy@example.net>:\nThis user doesn't have an account here (amy@example.net) [0]\n\n\
<ben@example.net>:\nSorry, this account has been disabled [#102].\n\n--- Original message follows.\n\nTo: c@example.org\n";

    #[test]
    fn reads_paragraphs() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            let got: Vec<_> = r.iter().filter_map(|r| r.recipient.as_deref()).collect();
            assert_eq!(got, ["amy@example.net", "ben@example.net"]);
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("This user doesn't have an account here (amy@example.net) [0]")
            );
            assert_eq!(r[1].command, None);
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
