//! Courier's plain-text report: "Your message to the following recipients cannot be delivered:",
//! then per recipient `<address>:`, the remote host, and the SMTP exchange (`>>> RCPT TO:<...>`,
//! `<<< 550 ...`).

use super::blocks::angle_blocks;
use super::replies::{failing_exchange, recipient};
use super::words::{contains_ci, head};
use super::{Family, Input};
use crate::report::RecipientReport;

/// The Courier reader.
pub const FAMILY: Family = Family {
    name: "courier",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    contains_ci(head(input.body), "running the Courier mail server")
        || contains_ci(
            head(input.body),
            "Your message to the following recipients cannot be delivered:",
        )
        || contains_ci(
            head(input.body),
            "Your message to the following recipients has been delayed",
        )
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let action = if contains_ci(text, "has been delayed") || contains_ci(input.subject, "delay") {
        "delayed"
    } else {
        "failed"
    };
    let mut out: Vec<RecipientReport> = Vec::new();
    for block in angle_blocks(text) {
        let remote = block
            .text
            .lines()
            .next()
            .filter(|l| !l.starts_with(">>>") && !l.starts_with("<<<"))
            .and_then(|l| l.split_whitespace().next())
            .map(|h| h.trim_end_matches(':').to_ascii_lowercase());
        let mut r = match failing_exchange(&block.text) {
            Some(ex) => {
                let mut r = recipient(block.address, action, &ex.reply);
                r.command = ex.command.map(str::to_string);
                r
            }
            None => recipient(block.address, action, &block.text),
        };
        r.remote_mta = remote.filter(|h| h.contains('.'));
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: Courier mail server at mx.example.org <@>\nTo: sender@example.com\nSubject: NOTICE: mail delivery status.\n\n\
This is a delivery status notification from mx.example.org,\nrunning the Courier mail server, version 1.0.\n\n\
Your message to the following recipients cannot be delivered:\n\n\
<sam@example.net>:\n    mail.example.net [192.0.2.33]:\n>>> RCPT TO:<sam@example.net>\n<<< 550 5.1.1 <sam@example.net>... User Unknown\n";

    #[test]
    fn reads_exchange() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("sam@example.net"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 5.1.1 <sam@example.net>... User Unknown")
            );
            assert_eq!(r[0].command.as_deref(), Some("RCPT"));
            assert_eq!(r[0].remote_mta.as_deref(), Some("mail.example.net"));
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
