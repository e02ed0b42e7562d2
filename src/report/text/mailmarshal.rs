//! MailMarshal's report: "Could not be delivered because of" the server's words, then "The following
//! recipients were affected:" with one address per line.

use super::addresses::find_addresses;
use super::blocks::section_after;
use super::replies::recipient;
use super::words::{contains_ci, head};
use super::{Family, Input, Recipients};
use crate::report::RecipientReport;

/// The MailMarshal reader.
pub const FAMILY: Family = Family {
    name: "mailmarshal",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    contains_ci(head(input.body), "Could not be delivered because of")
        && contains_ci(head(input.body), "The following recipients were affected")
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let said =
        section_after(text, "Could not be delivered because of", |_| false).unwrap_or_default();
    let list = section_after(text, "The following recipients were affected", |_| false)
        .unwrap_or_default();
    let remote = info_field(text, "Remote-MTA:");
    let reporting = info_field(text, "Reporting-MTA:");
    Recipients::of(find_addresses(&list).into_iter().map(|f| f.address), |a| {
        let mut r = recipient(a, "failed", &said);
        r.remote_mta = remote.clone();
        r.reporting_mta = reporting.clone();
        r
    })
}

/// A host from the "Additional Information" block (`Remote-MTA:   <192.0.2.1>`), lower-cased.
fn info_field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix(name)?;
        let host = v.trim().trim_start_matches('<').trim_end_matches('>');
        (!host.is_empty()).then(|| host.to_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: postmaster@mm.example.org\nTo: sender@example.com\nSubject: Undeliverable Mail: \"hi\"\n\n\
Your message:\n   From:    sender@example.com\n   Subject: hi\n\nCould not be delivered because of\n\n550 5.1.1 User unknown\n\n\
The following recipients were affected: \n    wes@example.net\n\n\nAdditional Information\n======================\nRemote-MTA:   <192.0.2.77>\nReporting-MTA:  <GW.example.net>\n";

    #[test]
    fn reads_affected_recipients() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("wes@example.net"));
            assert_eq!(r[0].diagnostic.as_deref(), Some("550 5.1.1 User unknown"));
            assert_eq!(r[0].remote_mta.as_deref(), Some("192.0.2.77"));
            assert_eq!(r[0].reporting_mta.as_deref(), Some("gw.example.net"));
            assert_eq!(r[0].command, None);
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
