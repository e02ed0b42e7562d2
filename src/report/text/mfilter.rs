//! m-FILTER's report: the address under a Japanese explanation, then "-------server message" with the
//! server's reply and "-------SMTP command" with the command that failed.

use super::addresses::find_addresses;
use super::blocks::section_after;
use super::replies::recipient;
use super::words::{contains_ci, head};
use super::{Family, Input, Recipients};
use crate::report::RecipientReport;

/// The m-FILTER reader.
pub const FAMILY: Family = Family {
    name: "mfilter",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    contains_ci(head(input.body), "-------server message")
        || contains_ci(head(input.body), "m-FILTER")
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let head = text.split("-------").next().unwrap_or("");
    let said = section_after(text, "-------server message", |l| l.starts_with("-------"))
        .unwrap_or_default();
    let command = section_after(text, "-------SMTP command", |l| l.starts_with("-------"))
        .and_then(|c| {
            let word = c
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            ["RCPT", "MAIL", "DATA", "HELO", "EHLO"]
                .into_iter()
                .find(|w| word.starts_with(w))
                .map(str::to_string)
        });
    let mut found = Recipients::default();
    for f in find_addresses(head) {
        if found.full() {
            break;
        }
        if found.contains(&f.address) {
            continue;
        }
        let mut r = recipient(f.address, "failed", &said);
        r.command = command.clone().or(r.command);
        found.add(r);
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: postmaster@gw.example.org\nTo: sender@example.com\nSubject: failure notice\n\n\
送信に失敗しました。\numa@example.net\n\n\n-------server message\n550 5.1.1 <uma@example.net>: unknown user\n\n\
-------SMTP command\nRCPT TO:<uma@example.net>\n\n-------original message\nFrom: sender@example.com\n";

    #[test]
    fn reads_sections() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("uma@example.net"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 5.1.1 <uma@example.net>: unknown user")
            );
            assert_eq!(r[0].command.as_deref(), Some("RCPT"));
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
