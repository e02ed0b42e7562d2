//! MailFoundry's report: "Unable to deliver message to: <address>", then "Delivery failed for the
//! following reason:" and the server's words.

use super::addresses::first_address;
use super::blocks::section_after;
use super::replies::recipient;
use super::words::{contains_ci, head};
use super::{Family, Input, Recipients};
use crate::report::RecipientReport;

/// The MailFoundry reader.
pub const FAMILY: Family = Family {
    name: "mailfoundry",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    contains_ci(head(input.body), "Unable to deliver message to:")
        && contains_ci(
            head(input.body),
            "Delivery failed for the following reason:",
        )
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let said = section_after(text, "Delivery failed for the following reason:", |_| false)
        .unwrap_or_default();
    let mut found = Recipients::default();
    for line in text
        .lines()
        .filter(|l| contains_ci(l, "Unable to deliver message to:"))
    {
        if found.full() {
            break;
        }
        if let Some(address) = first_address(line) {
            let mut r = recipient(address, "failed", &said);
            if let Some(host) = said
                .split_whitespace()
                .next()
                .and_then(|h| h.split('[').next())
                && host.contains('.')
                && said.contains("[")
            {
                r.remote_mta = Some(host.to_ascii_lowercase());
            }
            found.add(r);
        }
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: MAILER-DAEMON@mf.example.org\nTo: sender@example.com\nSubject: Message delivery has failed\n\n\
Unable to deliver message to: <val@example.net>\nDelivery failed for the following reason:\n\
mx.example.net[192.0.2.8] responded with failure: 552 mailbox val@example.net is over quota\n\n\
This has been a permanent failure.  No further delivery attempts will be made.\n";

    #[test]
    fn reads_reason() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("val@example.net"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("552 mailbox val@example.net is over quota")
            );
            assert_eq!(r[0].remote_mta.as_deref(), Some("mx.example.net"));
            assert_eq!(r[0].command, None);
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
