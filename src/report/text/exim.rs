//! Exim's report: "The following address(es) failed:" followed by each address indented by two
//! spaces, the server's words indented below it ("SMTP error from remote mail server after RCPT
//! TO:<...>: host mx.example.net [192.0.2.1]: 550 ...").

use super::addresses::{Found, find_addresses, first_address, from_daemon};
use super::replies::{is_delay_notice, recipient};
use super::words::{contains_ci, head};
use super::{Family, Input, PARAGRAPH_LIMIT, Recipients};
use crate::classify::Reason;
use crate::report::{MAX_RECIPIENTS, RecipientReport};

/// The Exim reader.
pub const FAMILY: Family = Family {
    name: "exim",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    let s = input.subject;
    let b = head(input.body);
    contains_ci(
        b,
        "This message was created automatically by mail delivery software",
    ) || contains_ci(b, "------ This is a copy of the message")
        || contains_ci(b, "------ This is a copy of your message")
        || (from_daemon(input.from)
            && (s.starts_with("Mail delivery failed")
                || s.starts_with("Mail failure")
                || (s.starts_with("Warning: message") && s.contains("delayed"))))
}

/// Fixed Exim phrases that name the reason exactly.
const HINTS: &[(&str, Reason)] = &[
    ("Mailbox quota exceeded", Reason::Mailboxfull),
    ("mailbox is full", Reason::Mailboxfull),
    ("retry timeout exceeded", Reason::Expired),
    (
        "retry time not reached for any host after a long failure period",
        Reason::Expired,
    ),
    (
        "all hosts have been failing for a long time",
        Reason::Expired,
    ),
    ("Unrouteable address", Reason::Hostunknown),
    (
        "all relevant MX records point to non-existent hosts",
        Reason::Hostunknown,
    ),
    ("unknown mail domain", Reason::Hostunknown),
    ("Too many \"Received\" headers", Reason::Networkerror),
    ("malformed address", Reason::Syntaxerror),
    ("message too big", Reason::Mesgtoobig),
];

fn is_intro_line(line: &str) -> bool {
    let l = line.trim().to_ascii_lowercase();
    l.ends_with("failed:")
        || l.ends_with("yet to be delivered:")
        || l.ends_with("recipients:")
        || l.contains("could not be delivered to one or more")
        || l.ends_with("incorrectly constructed:")
        || l.ends_with("been delayed:")
        || l.contains("has not yet been delivered")
}

/// The `X-Failed-Recipients` address for a recipient line without a domain: the one whose local part
/// is the line's first word, else the one at the same position.
fn failed_header_address(listed: &[Found], line: &str, index: usize) -> Option<String> {
    let word = line.split_whitespace().next().unwrap_or("");
    let by_name = listed
        .iter()
        .find(|f| f.address.split('@').next() == Some(word))
        .map(|f| f.address.clone());
    by_name.or_else(|| listed.get(index).map(|f| f.address.clone()))
}

/// The most address blocks the reader gathers: past the recipient limit (repeated addresses
/// aside), the report is refused anyway.
const MAX_BLOCKS: usize = 2 * (MAX_RECIPIENTS + 1);

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let action = if input.subject.starts_with("Warning:") || is_delay_notice(input.subject, text) {
        "delayed"
    } else {
        "failed"
    };
    let listed: Vec<Found> = input
        .header("X-Failed-Recipients")
        .map(find_addresses)
        .unwrap_or_default();
    let mut blocks: Vec<(String, String)> = Vec::new();
    let has_intro = text.lines().any(is_intro_line);
    if !has_intro && listed.is_empty() {
        // Exim always says which addresses failed, in its intro line or `X-Failed-Recipients`;
        // a notice that only borrows its opening sentence (a challenge-response system asking
        // for confirmation) names no failed recipient.
        return Vec::new();
    }
    let mut started = !has_intro;
    let mut open = false;
    for line in text.lines() {
        if blocks.len() > MAX_BLOCKS {
            break;
        }
        if !started {
            started = is_intro_line(line);
            continue;
        }
        if line.trim().is_empty() {
            open = false;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if (1..=3).contains(&indent) {
            let found = find_addresses(t);
            if let Some(first) = found.first() {
                let mut rest = t
                    .get(first.end..)
                    .unwrap_or("")
                    .trim_start_matches('>')
                    .trim_start();
                if rest.starts_with('<') {
                    rest = rest.split_once('>').map_or("", |(_, r)| r);
                }
                let rest = rest.trim_start_matches(':').trim();
                blocks.push((first.address.clone(), rest.to_string()));
                open = true;
                continue;
            }
            // A local recipient without a domain ("  user", "  pipe to |...", "  save to ..."): the
            // X-Failed-Recipients header names it in full.
            let index = blocks.len();
            if let Some(address) = failed_header_address(&listed, t, index) {
                blocks.push((address, String::new()));
                open = true;
                continue;
            }
            open = false;
            continue;
        }
        if open && indent >= 4 {
            let low = t.to_ascii_lowercase();
            if low.starts_with("(ultimately generated from") || low.starts_with("(generated from") {
                // The address the sender used, which the failed one was generated from.
                if let (Some(original), Some((address, _))) = (first_address(t), blocks.last_mut())
                {
                    *address = original;
                }
                continue;
            }
            if low.starts_with("generated by") {
                continue;
            }
            if let Some((_, words)) = blocks.last_mut()
                && words.len() < PARAGRAPH_LIMIT
            {
                if !words.is_empty() {
                    words.push('\n');
                }
                words.push_str(t);
            }
        } else if indent == 0 {
            open = false;
        }
    }
    if blocks.is_empty() {
        blocks = listed
            .into_iter()
            .map(|f| (f.address, String::new()))
            .collect();
    }
    let mut found = Recipients::default();
    for (address, words) in blocks {
        if found.full() {
            break;
        }
        if found.contains(&address) {
            continue;
        }
        let mut r = recipient(address, action, &words);
        r.reason_hint = HINTS
            .iter()
            .find(|(p, _)| contains_ci(&words, p))
            .map(|(_, h)| *h);
        found.add(r);
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const SAMPLE: &str = r#"From: Mail Delivery System <Mailer-Daemon@relay.example.org>
To: sender@example.com
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: gil@example.net, hal@example.org

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  gil@example.net
    SMTP error from remote mail server after RCPT TO:<gil@example.net>:
    host mx.example.net [192.0.2.5]: 550 5.1.1 <gil@example.net>: unknown user

  hal@example.org
    (ultimately generated from list@example.org)
    retry timeout exceeded

------ This is a copy of the message, including all the headers. ------

From: sender@example.com
To: list@example.org

hi
"#;

    #[test]
    fn reads_indented_blocks() {
        input_from(SAMPLE, |input| {
            assert!(detect(input));
            let r = read(input);
            // A generated address is reported as the one the sender used.
            let got: Vec<_> = r.iter().filter_map(|r| r.recipient.as_deref()).collect();
            assert_eq!(got, ["gil@example.net", "list@example.org"]);
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 5.1.1 <gil@example.net>: unknown user")
            );
            assert_eq!(r[0].command.as_deref(), Some("RCPT"));
            assert_eq!(r[0].remote_mta.as_deref(), Some("mx.example.net"));
            assert_eq!(r[1].diagnostic.as_deref(), Some("retry timeout exceeded"));
            assert_eq!(r[1].reason_hint, Some(Reason::Expired));
            assert_eq!(r[1].command, None);
        });
    }

    #[test]
    fn a_borrowed_opening_sentence_names_nobody() {
        let challenge = r#"From: ann-confirm+17.x9@example.org
To: sender@example.com
Subject: Please confirm your message

This message was created automatically by mail delivery software.

Your message is held until you confirm it by replying to:

   ann-confirm+17.x9@example.org
"#;
        input_from(challenge, |input| {
            assert!(detect(input));
            assert!(read(input).is_empty());
        });
    }

    #[test]
    fn the_delay_warning_intro_starts_the_list() {
        let warning = r#"From: Mail Delivery System <Mailer-Daemon@relay.example.org>
To: sender@example.com
Subject: Warning: message 1tXyZa-0001Bc-7Q delayed 24 hours

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on relay.example.org.

The address to which the message has not yet been delivered is:

  ivy@example.net
    host mx.example.net [192.0.2.7]
    Delay reason: SMTP error from remote mail server after RCPT TO:<ivy@example.net>:
    451 4.2.2 mailbox over quota
"#;
        input_from(warning, |input| {
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("ivy@example.net"));
            assert_eq!(r[0].action.as_deref(), Some("delayed"));
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
