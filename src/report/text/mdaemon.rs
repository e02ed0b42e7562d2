//! MDaemon's report: "The attached message had PERMANENT fatal delivery errors!" and the delivery
//! log under "--- Session Transcript ---", each line stamped with the time: `--> RCPT To:<a@x>` is
//! what MDaemon sent, `<-- 550 5.1.1 ...` the answer, `*  To: a@x` a recipient of the message it
//! parsed before connecting.

use super::addresses::{find_addresses, first_address};
use super::replies::{action_for, recipient, transcript};
use super::words::{contains_ci, head};
use super::{Family, Input};
use crate::report::{MAX_RECIPIENTS, RecipientReport};

/// The MDaemon reader.
pub const FAMILY: Family = Family {
    name: "mdaemon",
    detect,
    read,
};

const LOG_START: &str = "--- Session Transcript ---";
const LOG_END: &str = "--- End Transcript ---";

fn detect(input: &Input) -> bool {
    let b = head(input.body);
    contains_ci(b, LOG_START) && (b.contains("<-- ") || contains_ci(b, "delivery errors"))
}

/// The log's lines in the `>>>` / `<<<` transcript form: a sent command or a received reply after
/// the time stamp; any other line is `#`, which ends the exchange before it. The first reply after
/// `354` answers the message data, which the log does not show as sent: a `>>> .` goes before it.
/// Also the recipients the log lists for the parsed message.
fn as_transcript(log: &str) -> (String, Vec<String>) {
    let mut converted = String::with_capacity(log.len());
    let mut listed = Vec::new();
    let mut in_data = false;
    for line in log.lines() {
        if let Some(i) = line.find("--> ") {
            converted.push_str(">>> ");
            converted.push_str(line.get(i + 4..).unwrap_or(""));
        } else if let Some(i) = line.find("<-- ") {
            let reply = line.get(i + 4..).unwrap_or("");
            if in_data {
                converted.push_str(">>> .\n");
            }
            in_data = reply.starts_with("354");
            converted.push_str("<<< ");
            converted.push_str(reply);
        } else {
            if let Some(i) = line.find("*  To:") {
                let rest = line.get(i + 6..).unwrap_or("");
                listed.extend(find_addresses(rest).into_iter().map(|f| f.address));
            }
            converted.push('#');
        }
        converted.push('\n');
    }
    (converted, listed)
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let Some(start) = text.find(LOG_START) else {
        return Vec::new();
    };
    let log = text.get(start + LOG_START.len()..).unwrap_or("");
    let log = log
        .find(LOG_END)
        .map_or(log, |end| log.get(..end).unwrap_or(log));
    let (converted, listed) = as_transcript(log);
    let remote = log
        .rfind("Attempting SMTP connection to [")
        .and_then(|i| log.get(i + "Attempting SMTP connection to [".len()..))
        .and_then(|rest| rest.split([' ', ':', ']']).next())
        .filter(|host| host.contains('.'))
        .map(str::to_ascii_lowercase);
    let action = action_for(input.subject, text);
    let exchanges = transcript(&converted);
    let mut accepted: Vec<String> = Vec::new();
    let mut out: Vec<RecipientReport> = Vec::new();
    let push = |out: &mut Vec<RecipientReport>, address: String, reply: &str, command| {
        let known = out.iter().any(|r| {
            r.recipient
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(&address))
        });
        if !known && out.len() <= MAX_RECIPIENTS {
            let mut r = recipient(address, action, reply);
            r.command = Some(String::from(command));
            r.remote_mta = remote.clone().or(r.remote_mta.take());
            out.push(r);
        }
    };
    for ex in &exchanges {
        let failed = matches!(ex.reply.as_bytes().first(), Some(b'4' | b'5'));
        let command = ex.command.unwrap_or("CONN");
        match (command, failed) {
            ("RCPT", false) => accepted.extend(first_address(&ex.sent)),
            ("RCPT", true) => {
                if let Some(address) = first_address(&ex.sent) {
                    push(&mut out, address, &ex.reply, command);
                }
            }
            (_, true) => {
                // Refused before or after the recipients: every recipient of the session.
                let all = if accepted.is_empty() {
                    &listed
                } else {
                    &accepted
                };
                for address in all {
                    push(&mut out, address.clone(), &ex.reply, command);
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const HEAD: &str = "From: MDaemon@mail.example.com\nTo: owner@lists.example.org\n\
Subject: Permanent Delivery Failure\n\n\
The attached message had PERMANENT fatal delivery errors!\n\n--- Session Transcript ---\n\
 Wed 2026-12-02 09:14:01: *  From: news@lists.example.org\n\
 Wed 2026-12-02 09:14:01: *  To: ana@example.net\n\
 Wed 2026-12-02 09:14:01: *  To: bo@example.net\n\
 Wed 2026-12-02 09:14:02: Attempting SMTP connection to [mx.example.net : 25]\n\
 Wed 2026-12-02 09:14:02: <-- 220 mx.example.net ESMTP\n\
 Wed 2026-12-02 09:14:02: --> MAIL From:<news@lists.example.org>\n\
 Wed 2026-12-02 09:14:02: <-- 250 2.1.0 Ok\n";

    #[test]
    fn the_refused_rcpt_names_the_recipient() {
        let raw = format!(
            "{HEAD} Wed 2026-12-02 09:14:02: --> RCPT To:<ana@example.net>\n\
 Wed 2026-12-02 09:14:02: <-- 250 2.1.5 Ok\n\
 Wed 2026-12-02 09:14:02: --> RCPT To:<bo@example.net>\n\
 Wed 2026-12-02 09:14:03: <-- 550 5.1.1 <bo@example.net>: Recipient address rejected: User unknown\n\
 Wed 2026-12-02 09:14:03: --> QUIT\n--- End Transcript ---\n"
        );
        input_from(&raw, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1, "{r:?}");
            assert_eq!(r[0].recipient.as_deref(), Some("bo@example.net"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 5.1.1 <bo@example.net>: Recipient address rejected: User unknown")
            );
            assert_eq!(r[0].command.as_deref(), Some("RCPT"));
            assert_eq!(r[0].remote_mta.as_deref(), Some("mx.example.net"));
        });
    }

    #[test]
    fn a_refusal_of_the_data_is_every_accepted_recipients() {
        let raw = format!(
            "{HEAD} Wed 2026-12-02 09:14:02: --> RCPT To:<ana@example.net>\n\
 Wed 2026-12-02 09:14:02: <-- 250 2.1.5 Ok\n\
 Wed 2026-12-02 09:14:02: --> DATA\n\
 Wed 2026-12-02 09:14:02: <-- 354 go ahead\n\
 Wed 2026-12-02 09:14:02: Sending <pd500.msg> to [192.0.2.9]...\n\
 Wed 2026-12-02 09:14:03: <-- 554 5.7.1 Message rejected as spam\n\
--- End Transcript ---\n"
        );
        input_from(&raw, |input| {
            let r = read(input);
            assert_eq!(r.len(), 1, "{r:?}");
            assert_eq!(r[0].recipient.as_deref(), Some("ana@example.net"));
            assert_eq!(r[0].command.as_deref(), Some("DATA"));
        });
        // Refused at MAIL FROM, before any RCPT: the parsed message's recipients.
        let raw = format!(
            "{}--- End Transcript ---\n",
            HEAD.replace("<-- 250 2.1.0 Ok", "<-- 553 5.7.1 Sender refused")
        );
        input_from(&raw, |input| {
            let r = read(input);
            let names: Vec<_> = r.iter().filter_map(|r| r.recipient.as_deref()).collect();
            assert_eq!(names, ["ana@example.net", "bo@example.net"]);
            assert_eq!(r[0].command.as_deref(), Some("MAIL"));
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
