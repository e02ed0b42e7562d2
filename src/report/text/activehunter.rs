//! ActiveHunter's report: Sendmail's layout ("The following addresses had permanent fatal errors",
//! a transcript) under a "FAILURE NOTICE :" subject.

use super::words::{contains_ci, head};
use super::{Family, Input};

/// The ActiveHunter reader (Sendmail's layout).
pub const FAMILY: Family = Family {
    name: "activehunter",
    detect,
    read: super::sendmail::read,
};

fn detect(input: &Input) -> bool {
    input.header("X-AHMAILID").is_some()
        || (input.subject.starts_with("FAILURE NOTICE :")
            && contains_ci(
                head(input.body),
                "----- The following addresses had permanent fatal errors -----",
            ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: MAILER-DAEMON@ah.example.org\nTo: sender@example.com\nSubject: FAILURE NOTICE : hello\n\n\
  ----- The following addresses had permanent fatal errors -----\n\n<yan@example.net>\n\n\
  ----- Transcript of session follows -----\n 550 5.1.1 <yan@example.net>... User Unknown\n";

    #[test]
    fn reads_a_reply_printed_without_transcript_marks() {
        let raw = "From: MAILER-DAEMON@ah.example.org\nTo: sender@example.com\nSubject: FAILURE NOTICE : hi\n\n\
  ----- The following addresses had permanent fatal errors -----\n\n>>> zed@example.net <zed@example.net>\n\n\
  ----- Transcript of session follows -----\n550 no mailbox by that name here (#5.1.1)\n";
        input_from(raw, |input| {
            let r = (FAMILY.read)(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("zed@example.net"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 no mailbox by that name here (#5.1.1)")
            );
        });
    }

    #[test]
    fn reads_sendmail_layout() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = (FAMILY.read)(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("yan@example.net"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 5.1.1 <yan@example.net>... User Unknown")
            );
            assert_eq!(r[0].command, None);
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(FAMILY.read);
    }
}
