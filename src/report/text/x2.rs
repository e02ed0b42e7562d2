//! An unnamed MTA ("X2"): "Unable to deliver message to the following address(es)." then qmail-style
//! `<address>:` paragraphs.

use super::common::{self, contains_ci};
use super::{Family, Input};
use crate::report::RecipientReport;

/// The X2 reader.
pub const X2: Family = Family {
    name: "x2",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    contains_ci(
        common::head(input.body),
        "Unable to deliver message to the following address(es).",
    )
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = common::cut_original(input.body);
    let mut out: Vec<RecipientReport> = Vec::new();
    for block in common::angle_blocks(text) {
        if !out
            .iter()
            .any(|r| r.recipient.as_deref() == Some(block.address.as_str()))
        {
            let mut r = common::recipient(block.address, "failed", &block.text);
            common::set_remote_from_diagnostic(&mut r);
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::common::testutil::{garbage, input_from};

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
