//! Oracle (Sun) Communications Messaging Server's text report: per recipient, a block of
//! `Recipient address:`, `Original address:`, `Reason:`, `Diagnostic code:`, `Remote system:` lines.

use super::addresses::first_address;
use super::replies::{command_of, recipient};
use super::words::{contains_ci, head, unfold};
use super::{Family, Input, Recipients};
use crate::report::RecipientReport;

/// The Messaging Server reader.
pub const FAMILY: Family = Family {
    name: "messagingserver",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    contains_ci(
        head(input.body),
        "This report relates to a message you sent with the following header fields",
    ) || input
        .message
        .header_raw("Content-Type")
        .is_some_and(|c| contains_ci(c, "Boundary_(ID_"))
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let head = line.get(..name.len())?;
    head.eq_ignore_ascii_case(name)
        .then(|| line.get(name.len()..).unwrap_or("").trim())
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let action = if contains_ci(text, "has not been delivered yet")
        || contains_ci(text, "is being delayed")
    {
        "delayed"
    } else {
        "failed"
    };
    let mut found = Recipients::default();
    // The recipient whose block is being read; `None` in the block of a repeated address.
    let mut current: Option<String> = None;
    let mut reason = String::new();
    for line in text.lines() {
        if found.full() {
            break;
        }
        let t = line.trim();
        if let Some(v) = field(t, "Recipient address:") {
            if let Some(address) = first_address(v) {
                reason.clear();
                current = found
                    .add(recipient(address.clone(), action, ""))
                    .then_some(address);
            }
            continue;
        }
        let Some(r) = current.as_deref().and_then(|a| found.get_mut(a)) else {
            continue;
        };
        if let Some(v) = field(t, "Reason:") {
            reason = v.to_string();
            if r.diagnostic.is_none() {
                r.diagnostic = Some(reason.clone());
            }
        } else if let Some(v) = field(t, "Diagnostic code:") {
            let v = v.split_once(';').map_or(v, |(_, d)| d).trim();
            r.diagnostic = Some(unfold(v));
            r.command = command_of(v).map(str::to_string);
        } else if let Some(v) = field(t, "Remote system:") {
            let v = v.split_once(';').map_or(v, |(_, h)| h);
            r.remote_mta = v
                .split(|c: char| c.is_whitespace() || c == '(')
                .find(|s| !s.is_empty())
                .map(str::to_ascii_lowercase);
        }
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = "From: Internet Mail Delivery <postmaster@ms.example.org>\nTo: sender@example.com\nSubject: Delivery Notification: Delivery has failed\n\n\
This report relates to a message you sent with the following header fields:\n\n  Subject: hello\n\n\
Your message cannot be delivered to the following recipients:\n\n\
  Recipient address: tom@example.net\n  Reason: Remote SMTP server has rejected address\n\
  Diagnostic code: smtp;550 5.1.1 <tom@example.net>... User Unknown\n  Remote system: dns;mx.example.net (TCP|192.0.2.1|1|192.0.2.2|25)\n";

    #[test]
    fn reads_fields() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("tom@example.net"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 5.1.1 <tom@example.net>... User Unknown")
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
