//! Mail.Ru's report: a Russian notice followed by the Exim-style English one ("The following
//! address(es) failed:"), each address with the remote server's reply below it.

use super::blocks::exim_blocks;
use super::{Family, Input};
use crate::report::RecipientReport;

/// The Mail.Ru reader.
pub const FAMILY: Family = Family {
    name: "mailru",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    (input.from.contains("mail.ru") || input.body.contains("Mail.Ru"))
        && input.body.contains("could not be delivered to one or more")
}

fn read(input: &Input) -> Vec<RecipientReport> {
    exim_blocks(input.explanation, "failed:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::test_input;

    const BODY: &str = "Письмо создано сервером Mail.Ru.\n\n  first\n    SMTP error\n\n**********************\n\nThis message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n  one@example.com\n    SMTP error from remote mail server after RCPT TO:<one@example.com>:\n    host mx.example.com [192.0.2.5]: 550 5.1.1 <one@example.com>:\n    no mailbox by that name\n  two@example.net\n    retry timeout exceeded\n\n------ This is a copy of the message, including all the headers. ------\nTo: one@example.com\n";

    #[test]
    fn reads_each_address_block() {
        let got = test_input("mailer-daemon@corp.mail.ru", "Mail failure.", BODY, |i| {
            assert!(detect(i));
            read(i)
        });
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].recipient.as_deref(), Some("one@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("550 5.1.1 <one@example.com>: no mailbox by that name")
        );
        assert_eq!(got[0].command.as_deref(), Some("RCPT"));
        assert_eq!(got[0].remote_mta.as_deref(), Some("mx.example.com"));
        assert_eq!(got[1].recipient.as_deref(), Some("two@example.net"));
        assert_eq!(got[1].diagnostic.as_deref(), Some("retry timeout exceeded"));
        assert_eq!(got[1].command, None);
    }

    #[test]
    fn garbage_gives_nothing() {
        for body in ["", "failed:", "failed:\n\u{0}\n  <>\n    550"] {
            assert!(test_input("mailer-daemon@corp.mail.ru", "x", body, read).is_empty());
        }
    }
}
