//! Sendmail's report, modern and old (V5) style: an optional list under "----- The following
//! addresses had permanent fatal errors -----" with `(reason: ...)` lines, and the SMTP transcript
//! under "----- Transcript of session follows -----" (`... while talking to host:`, `>>> RCPT To:<...>`,
//! `<<< 550 ...`, `550 5.1.1 <address>... User unknown`).

use std::borrow::Cow;
use std::collections::HashMap;

use super::addresses::{first_address, is_system_address};
use super::blocks::cut_original;
use super::replies::{is_delay_notice, recipient, transcript};
use super::words::{contains_ci, head, strip_prefix_ci};
use super::{Family, Input, PARAGRAPH_LIMIT};
use crate::classify::Reason;
use crate::report::{MAX_RECIPIENTS, RecipientReport};

/// The Sendmail reader.
pub const FAMILY: Family = Family {
    name: "sendmail",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    let b = head(input.body);
    contains_ci(b, "----- Transcript of session follows -----")
        || contains_ci(
            b,
            "----- The following addresses had permanent fatal errors -----",
        )
        || contains_ci(
            b,
            "----- The following addresses had transient non-fatal errors -----",
        )
        || (input.subject.starts_with("Returned mail:")
            && contains_ci(b, "----- Unsent message follows -----"))
}

/// The body with one level of `> ` quoting removed when the report itself was forwarded quoted.
fn dequoted(body: &str) -> Cow<'_, str> {
    let quoted = body.lines().any(|l| {
        l.starts_with('>')
            && (contains_ci(l, "Transcript of session follows")
                || contains_ci(l, "had permanent fatal errors"))
    });
    if !quoted {
        return Cow::Borrowed(body);
    }
    let mut out = String::with_capacity(body.len());
    for line in body.lines() {
        let l = line
            .strip_prefix("> ")
            .or_else(|| line.strip_prefix('>'))
            .unwrap_or(line);
        out.push_str(l);
        out.push('\n');
    }
    Cow::Owned(out)
}

#[derive(Default)]
struct Entry {
    address: String,
    reason: String,
    reply: String,
    outcome: String,
    command: Option<&'static str>,
    remote: Option<String>,
    /// The outcome line carries the remote answer itself (`554 <a>... 550 Host unknown`).
    own_reply: bool,
    /// The address the sender used, when the list names it (`(expanded from: <alias>)`).
    original: Option<String>,
    /// `address` is a program or file an alias delivered to, not an address: the entry stands
    /// only with an `original`.
    target: bool,
    /// Listed under "had successful delivery notifications": `delivered`, or `relayed` when
    /// the list says so.
    success: Option<&'static str>,
}

/// Whether a transcript line is Sendmail's note that the queue timeout was reached
/// (`Message could not be delivered for 5 days`, envelope.c).
fn is_queue_timeout_line(line: &str) -> bool {
    strip_prefix_ci(line.trim(), "Message could not be delivered for ").is_some_and(|rest| {
        rest.split_whitespace().nth(1).is_some_and(|unit| {
            matches!(
                unit.trim_end_matches('.'),
                "days" | "day" | "hours" | "hour"
            )
        })
    })
}

/// Whether a listed line names a program (`"|/usr/bin/procmail"`) or a file (`/var/mail/x`) that
/// Sendmail delivered to, as its list of failed addresses writes them (savemail.c).
fn is_delivery_target(line: &str) -> bool {
    let bare = line.trim_start_matches('"');
    bare.starts_with('|') || bare.starts_with('/')
}

/// The report's addresses, each with what the report says of it, found by address without regard
/// to case; at most one past [`MAX_RECIPIENTS`] (the report is then refused).
#[derive(Default)]
struct Entries {
    list: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl Entries {
    /// The entry of `address`, made when it is new and there is room.
    fn entry(&mut self, address: &str) -> Option<&mut Entry> {
        let key = address.to_ascii_lowercase();
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None if self.list.len() > MAX_RECIPIENTS => return None,
            None => {
                self.index.insert(key, self.list.len());
                self.list.push(Entry {
                    address: address.to_string(),
                    ..Entry::default()
                });
                self.list.len() - 1
            }
        };
        self.list.get_mut(i)
    }
}

/// Appends a reply line to the reply being read, up to [`PARAGRAPH_LIMIT`] bytes.
fn push_reply(reply: &mut String, line: &str) {
    if reply.len() >= PARAGRAPH_LIMIT {
        return;
    }
    if !reply.is_empty() {
        reply.push(' ');
    }
    reply.push_str(line);
}

/// Whether a line is an SMTP failure reply: `4xx` or `5xx`, then a space, a dash or the end.
fn is_failure_reply(line: &str) -> bool {
    let b = line.as_bytes();
    matches!(b.first(), Some(b'4') | Some(b'5'))
        && b.get(1..3)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && matches!(b.get(3), None | Some(b' ') | Some(b'-'))
}

pub(super) fn read(input: &Input) -> Vec<RecipientReport> {
    let body = dequoted(input.body);
    let text = cut_original(&body);
    let skip = input.from.to_ascii_lowercase();
    let mut entries = Entries::default();
    let mut delayed = is_delay_notice(input.subject, text);
    #[derive(PartialEq)]
    enum Section {
        Other,
        List,
        Transcript,
    }
    let mut section = Section::Other;
    let mut success_list = false;
    let mut last_listed: Option<String> = None;
    let mut host: Option<String> = None;
    let mut command: Option<&'static str> = None;
    let mut greeting = false;
    let mut sent_rcpt: Option<String> = None;
    let mut reply = String::new();
    let mut last_failure: Option<(String, Option<&'static str>, Option<String>)> = None;
    for line in text.lines() {
        let t = line.trim();
        let low = t.to_ascii_lowercase();
        if t.starts_with("-----") {
            success_list = false;
            if low.contains("had permanent fatal errors") {
                section = Section::List;
            } else if low.contains("had successful delivery notifications") {
                // The return receipt (savemail.c) lists delivered addresses in the same shape.
                section = Section::List;
                success_list = true;
            } else if low.contains("had transient non-fatal errors") {
                section = Section::List;
                delayed = true;
            } else if low.contains("transcript of session follows") {
                section = Section::Transcript;
            } else {
                section = Section::Other;
            }
            continue;
        }
        match section {
            Section::Other => {}
            Section::List => {
                if t.is_empty() {
                    continue;
                }
                if let Some(reason) = t.strip_prefix("(reason:") {
                    if let Some(e) = last_listed.as_deref().and_then(|n| entries.entry(n)) {
                        e.reason = reason.trim_end_matches(')').trim().to_string();
                    }
                } else if let Some(from) = strip_prefix_ci(t, "(expanded from") {
                    if let (Some(e), Some(original)) = (
                        last_listed.as_deref().and_then(|n| entries.entry(n)),
                        first_address(from),
                    ) {
                        e.original = Some(original);
                    }
                } else if t.starts_with('(') {
                    // Other remarks.
                } else if !line.starts_with([' ', '\t']) {
                    if let Some(a) = first_address(t) {
                        if let Some(e) = entries.entry(&a)
                            && success_list
                        {
                            e.success = Some(if contains_ci(t, "relayed") {
                                "relayed"
                            } else {
                                "delivered"
                            });
                        }
                        last_listed = Some(a);
                    } else if is_delivery_target(t) {
                        // A program or file an alias expanded to: the address the sender used
                        // follows as `(expanded from: <address>)`.
                        if let Some(e) = entries.entry(t) {
                            e.target = true;
                        }
                        last_listed = Some(t.to_string());
                    }
                }
            }
            Section::Transcript => {
                let talking = t.trim_start_matches('.').trim_start();
                let talking = strip_prefix_ci(talking, "while talking to");
                if let Some(rest) = talking {
                    let h = rest.trim().trim_end_matches(':').trim_end_matches('.');
                    host = (!h.is_empty()).then(|| h.to_ascii_lowercase());
                    command = None;
                    greeting = true;
                    reply.clear();
                } else if let Some(sent) = t.strip_prefix(">>>") {
                    greeting = false;
                    command = transcript(t).first().and_then(|e| e.command);
                    sent_rcpt = (command == Some("RCPT"))
                        .then(|| first_address(sent))
                        .flatten();
                    reply.clear();
                } else if let Some(r) = t.strip_prefix("<<<") {
                    // Sendmail prints each command it sends (`>>>`), so a reply before any is the
                    // answer to the connection: the greeting (usersmtp.c).
                    if greeting {
                        command = Some("CONN");
                    }
                    let r = r.trim();
                    push_reply(&mut reply, r);
                    if matches!(reply.as_bytes().first(), Some(b'4') | Some(b'5')) {
                        last_failure = Some((reply.clone(), command, host.clone()));
                    }
                    // Only a refused recipient becomes an entry: an accepted one (`250`) did not fail.
                    if matches!(r.as_bytes().first(), Some(b'4') | Some(b'5'))
                        && let Some(e) = sent_rcpt.as_deref().and_then(|a| entries.entry(a))
                    {
                        e.reply = reply.clone();
                        e.command = command;
                        e.remote = host.clone();
                    }
                } else if !t.contains("...") && is_failure_reply(t) {
                    // A reply printed without the `<<<` mark (some Sendmail derivatives).
                    push_reply(&mut reply, t);
                    last_failure = Some((reply.clone(), command, host.clone()));
                } else if t
                    .as_bytes()
                    .first()
                    .is_some_and(|c| matches!(c, b'4' | b'5' | b'<'))
                    && t.contains("...")
                {
                    let Some(a) = t.split("...").next().and_then(first_address) else {
                        continue;
                    };
                    if a.eq_ignore_ascii_case(&skip) || is_system_address(&a) {
                        continue;
                    }
                    // Sendmail's verdict quoting the answer it got for this address (or a DNS
                    // failure): the reply of the session in progress is not this address's.
                    let own = t
                        .split_once("...")
                        .is_some_and(|(_, after)| is_failure_reply(after.trim_start()));
                    let Some(e) = entries.entry(&a) else {
                        continue;
                    };
                    e.outcome = t.to_string();
                    e.own_reply |= own;
                    if e.reply.is_empty()
                        && !e.own_reply
                        && matches!(reply.as_bytes().first(), Some(b'4') | Some(b'5'))
                    {
                        e.reply = reply.clone();
                        e.command = command;
                    }
                    if e.remote.is_none() {
                        e.remote = host.clone();
                    }
                }
            }
        }
    }
    if let Some((reply, command, host)) = last_failure {
        // A failure of MAIL, DATA or the connection applies to every recipient without its own.
        for e in entries
            .list
            .iter_mut()
            .filter(|e| e.reply.is_empty() && !e.own_reply)
        {
            e.reply = reply.clone();
            e.command = command;
            if e.remote.is_none() {
                e.remote = host.clone();
            }
        }
    }
    let action = if delayed { "delayed" } else { "failed" };
    // The return after the queue timeout (`Cannot send message for 5 days`, envelope.c): the
    // message expired, whatever the last attempt's error was.
    let expired = !delayed
        && (contains_ci(input.subject, "Cannot send message for")
            || text.lines().any(is_queue_timeout_line));
    // Older Sendmail names the reason in the subject (`Returned mail: User unknown`): the words of
    // last resort for an address the report says nothing else about.
    let subject_reason = input
        .subject
        .strip_prefix("Returned mail:")
        .map(str::trim)
        .filter(|r| !r.is_empty() && !contains_ci(r, "see transcript"))
        .unwrap_or("");
    let mut seen = std::collections::HashSet::new();
    entries
        .list
        .into_iter()
        .filter(|e| !e.target || e.original.is_some())
        .map(|e| {
            let words = [e.reply.as_str(), &e.outcome, &e.reason, subject_reason]
                .into_iter()
                .find(|w| !w.is_empty())
                .unwrap_or_default();
            let mut r = recipient(
                e.original.unwrap_or(e.address),
                e.success.unwrap_or(action),
                words,
            );
            if expired {
                r.reason_hint = Some(Reason::Expired);
            }
            if e.command.is_some() {
                r.command = e.command.map(str::to_string);
            }
            if e.remote.is_some() {
                r.remote_mta = e.remote;
            }
            r
        })
        // Members of one alias that all failed are one address to the sender.
        .filter(|r| seen.insert(r.recipient.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::testutil::{garbage, input_from};

    const MODERN: &str = "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.org>\nTo: sender@example.com\n\
Subject: Returned mail: see transcript for details\n\n\
The original message was received at Mon, 2 Mar 2026 10:00:00 +0100\nfrom client.example.com [192.0.2.50]\n\n\
   ----- The following addresses had permanent fatal errors -----\n<ivy@example.net>\n    (reason: 550 5.1.1 <ivy@example.net>... User unknown)\n\n\
   ----- Transcript of session follows -----\n... while talking to mail.example.net.:\n>>> RCPT To:<ivy@example.net>\n<<< 550 5.1.1 <ivy@example.net>... User unknown\n\
550 5.1.1 ivy@example.net... User unknown\n";

    const V5: &str = "From: MAILER-DAEMON@old.example.org\nSubject: Returned mail: User unknown\n\n\
   ----- Transcript of session follows -----\n\
550 <jon@example.com>... User unknown\n\n   ----- Unsent message follows -----\nFrom: sender@example.org\nTo: jon@example.com\n\nx\n";

    #[test]
    fn an_outcome_with_its_own_answer_keeps_it() {
        let text = "From: MAILER-DAEMON@old.example.org\nSubject: Returned mail: Host unknown\n\n\
   ----- Transcript of session follows -----\n\
While talking to relay.example.net:\n>>> MAIL From:<list@example.org>\n\
<<< 553 <list@example.org>... sender refused by local policy\n\
554 <amy@example.net>... Remote protocol error\n\
554 <bo@nowhere.example>... 550 Host unknown (Authoritative answer from name server)\n\
While talking to mx.example.com:\n>>> RCPT To:<cy@example.com>\n<<< 550 <cy@example.com>... User unknown\n\
550 <cy@example.com>... User unknown\n\n   ----- Unsent message follows -----\nTo: amy@example.net\n";
        input_from(text, |input| {
            assert!(detect(input));
            let r = read(input);
            let got: Vec<_> = r
                .iter()
                .map(|r| (r.recipient.as_deref(), r.diagnostic.as_deref()))
                .collect();
            assert_eq!(got.len(), 3);
            assert_eq!(
                got[0],
                (
                    Some("amy@example.net"),
                    Some("553 <list@example.org>... sender refused by local policy")
                )
            );
            assert_eq!(got[1].0, Some("bo@nowhere.example"));
            assert!(
                got[1].1.unwrap_or("").contains("550 Host unknown"),
                "{got:?}"
            );
            assert!(
                !got[1].1.unwrap_or("").contains("sender refused"),
                "{got:?}"
            );
            assert_eq!(r[2].command.as_deref(), Some("RCPT"));
            assert_eq!(r[2].remote_mta.as_deref(), Some("mx.example.com"));
        });
    }

    #[test]
    fn reads_list_and_transcript() {
        input_from(MODERN, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("ivy@example.net"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 5.1.1 <ivy@example.net>... User unknown")
            );
            assert_eq!(r[0].command.as_deref(), Some("RCPT"));
            assert_eq!(r[0].remote_mta.as_deref(), Some("mail.example.net"));
        });
    }

    #[test]
    fn reads_v5_outcome_lines() {
        input_from(V5, |input| {
            assert!(detect(input));
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].recipient.as_deref(), Some("jon@example.com"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("550 <jon@example.com>... User unknown")
            );
            assert_eq!(r[0].command, None);
        });
    }

    #[test]
    fn a_program_an_alias_expanded_to_stands_for_the_alias() {
        let text = "From: Mail Delivery Subsystem <MAILER-DAEMON@box.example.edu>\n\
Subject: Returned mail: see transcript for details\n\n\
   ----- The following addresses had permanent fatal errors -----\n\
\"|/usr/local/bin/filter-mail -d\"\n    (reason: Service unavailable)\n\
    (expanded from: <moe@box.example.edu>)\n\
/home/nobody/archive\n    (reason: Can't create output)\n\n\
   ----- Transcript of session follows -----\n\
554 5.3.0 unknown mailer error 75\n";
        input_from(text, |input| {
            let r = read(input);
            assert_eq!(r.len(), 1, "the file without an alias names no address");
            assert_eq!(r[0].recipient.as_deref(), Some("moe@box.example.edu"));
            assert_eq!(
                r[0].diagnostic.as_deref(),
                Some("554 5.3.0 unknown mailer error 75")
            );
        });
    }

    #[test]
    fn the_return_after_the_queue_timeout_is_expired() {
        let text = "From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.org>\n\
Subject: Returned mail: see transcript for details\n\n\
   ----- The following addresses had permanent fatal errors -----\n<tess@far.example.net>\n\
    (reason: 451 4.4.1 reply: read error from mx.far.example.net.)\n\n\
   ----- Transcript of session follows -----\n\
tess@far.example.net... Deferred: 451 4.4.1 reply: read error from mx.far.example.net.\n\
Message could not be delivered for 5 days\nMessage will be deleted from queue\n";
        input_from(text, |input| {
            let r = read(input);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].reason_hint, Some(Reason::Expired));
        });
        input_from(MODERN, |input| {
            assert_eq!(read(input)[0].reason_hint, None);
        });
    }

    #[test]
    fn the_return_receipt_lists_delivered_addresses() {
        let receipt = "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.org>\n\
To: sender@example.com\nSubject: Return receipt\n\n\
   ----- The following addresses had successful delivery notifications -----\n\
<vic@example.net>  (successfully delivered to mailbox)\n\
<wes@example.net>  (relayed to non-DSN-aware mailer)\n";
        input_from(receipt, |input| {
            let got: Vec<_> = read(input)
                .into_iter()
                .map(|r| (r.recipient, r.action))
                .collect();
            let want = [
                ("vic@example.net", "delivered"),
                ("wes@example.net", "relayed"),
            ]
            .map(|(a, b)| (Some(a.to_string()), Some(b.to_string())));
            assert_eq!(got, want);
        });
    }

    #[test]
    fn a_recipient_the_server_accepted_did_not_fail() {
        let accepted = MODERN.replace(
            "550 5.1.1 ivy@example.net... User unknown\n",
            ">>> RCPT To:<kai@example.net>\n<<< 250 2.1.5 <kai@example.net>... Recipient ok\n\
250 2.1.5 kai@example.net... Recipient ok\n",
        );
        input_from(&accepted, |input| {
            let r = read(input);
            let got: Vec<_> = r.iter().filter_map(|r| r.recipient.as_deref()).collect();
            assert_eq!(got, ["ivy@example.net"]);
        });
    }

    #[test]
    fn never_panics_on_garbage() {
        garbage(read);
    }
}
