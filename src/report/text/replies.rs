//! What a free-text report says about one failure: the remote server's reply apart from the
//! reporting MTA's framing ("host X said:", "(in reply to RCPT TO command)"), the host and the SMTP
//! command it names, SMTP transcripts (`>>>` / `<<<`), and whether the report is a delay warning.

use std::sync::LazyLock;

use regex::Regex;

use super::words::{contains_ci, find_ci, unfold};
use crate::report::RecipientReport;

/// A "host X said: ..." sentence: the remote host and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSaid {
    /// The host name (or address) as written, without `[ip]`.
    pub host: String,
    /// The words after `said:` (or after `host X [ip]:`), up to the end of the given text.
    pub text: String,
}

static HOST_SAID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?-u:\b)host\s+([A-Za-z0-9][A-Za-z0-9._\-]*)(?:\s*\[[0-9A-Fa-f.:]+\])?(?:\s+said|\s+replied|\s+says)?\s*:\s*",
    )
    .unwrap_or_else(|_| unreachable!("static regex"))
});

/// Parses the first "host X said: ..." (Postfix, qmail) or "host X [ip]: ..." (Exim) in `text`.
pub fn host_said(text: &str) -> Option<HostSaid> {
    let caps = HOST_SAID.captures(text)?;
    let host = caps.get(1)?.as_str().trim_end_matches('.');
    let rest = text.get(caps.get(0)?.end()..)?;
    if !host.contains('.') && !host.contains(':') {
        return None;
    }
    Some(HostSaid {
        host: host.to_ascii_lowercase(),
        text: unfold(rest),
    })
}

static COMMAND_PATTERNS: LazyLock<Vec<(Regex, Option<&'static str>)>> = LazyLock::new(|| {
    let table: &[(&str, Option<&'static str>)] = &[
        (
            r"(?i)in reply to (?:the )?(?:end of )?(RCPT|MAIL|DATA|HELO|EHLO|LHLO|BDAT|STARTTLS)(?-u:\b)",
            None,
        ),
        (
            r"(?i)in reply to (?:the )?(?:initial greeting|connection)",
            Some("CONN"),
        ),
        (
            r"(?i)(?-u:\b)after (?:the )?(?:pipelined )?(RCPT|MAIL|DATA|HELO|EHLO|end of data|STARTTLS)(?-u:\b)",
            None,
        ),
        (
            r"(?i)(?-u:\b)after (?:initial )?connection(?-u:\b)",
            Some("CONN"),
        ),
        (
            r"(?i)(?:^|\n)\s*>>>\s*(RCPT|MAIL|DATA|HELO|EHLO|LHLO|STARTTLS|QUIT|\.)",
            None,
        ),
        (
            r"(?i)did not like our (?:final )?(RCPT|MAIL|DATA|HELO|EHLO)",
            None,
        ),
        (
            r"(?i)refused to accept your message \((RCPT|MAIL|DATA)",
            None,
        ),
        (
            r"(?i)error following (RCPT|MAIL|DATA|HELO|EHLO) command",
            None,
        ),
        (r"(?i)(?-u:\b)SMTP:(RCPT|MAIL|DATA|HELO|EHLO)(?-u:\b)", None),
        (r"(?i)most progress was (RCPT|MAIL|DATA)", None),
        (r"(?i)(?-u:\b)but sender was rejected", Some("MAIL")),
        (r"(?i)(?-u:\b)but my name was rejected", Some("HELO")),
        (r"(?i)(?-u:\b)but greeting failed", Some("CONN")),
        (r"(?i)failed after I sent the message", Some("DATA")),
        (r"(?i)(?-u:\b)for TEXT command", Some("DATA")),
        (r"(?i)refused to talk to me", Some("CONN")),
        (r"(?i)requests to connect", Some("CONN")),
        (r"(?i)(?-u:\b)does not like recipient", Some("RCPT")),
        (r"(?i)(?-u:\b)does not like sender", Some("MAIL")),
        (r"(?i)\[(RCPT|MAIL|DATA)(?:_TO|_FROM)?\]", None),
        (r"(?i)(?-u:\b)(RCPT|MAIL)_(?:TO|FROM)(?-u:\b)", None),
        (
            r"(?i)(?-u:\b)(RCPT|MAIL|DATA) (?:TO )?(?:FROM )?(?:command|response)(?-u:\b)",
            None,
        ),
        (r"(?i)(?-u:\b)(?:RCPT TO|MAIL FROM):\s*<", None),
        (
            r"(?i)(?:connection refused|connection timed out|no route to host|could not connect|couldn't connect|connect to [^\s]+ failed|network is unreachable|unable to connect|host not found|i couldn't find any host)",
            Some("CONN"),
        ),
    ];
    table
        .iter()
        .filter_map(|(p, c)| Regex::new(p).ok().map(|r| (r, *c)))
        .collect()
});

static COMMAND_SET: LazyLock<regex::RegexSet> = LazyLock::new(|| {
    regex::RegexSet::new(COMMAND_PATTERNS.iter().map(|(r, _)| r.as_str()))
        .unwrap_or_else(|_| regex::RegexSet::empty())
});

/// The SMTP command a failure answered, when the text says (`RCPT`, `MAIL`, `DATA`, `HELO`,
/// `EHLO`, `CONN` for the connection or greeting).
pub fn command_of(text: &str) -> Option<&'static str> {
    let matched = COMMAND_SET.matches(text);
    for (i, (re, fixed)) in COMMAND_PATTERNS.iter().enumerate() {
        if !matched.matched(i) {
            continue;
        }
        let Some(caps) = re.captures(text) else {
            continue;
        };
        if let Some(c) = fixed {
            return Some(c);
        }
        let word = caps.get(1).map(|m| m.as_str()).unwrap_or_default();
        if word.is_empty() {
            // "RCPT TO:<" and "MAIL FROM:<" style matches carry the command at the start.
            return command_word(caps.get(0)?.as_str());
        }
        return command_word(word);
    }
    None
}

/// The command name (`RCPT`, `MAIL`, `DATA`, `HELO`, `EHLO`, `STARTTLS`) for a command word as
/// written (`RCPT TO:<...>`, `end of data`, `.`).
pub fn command_word(word: &str) -> Option<&'static str> {
    let w = word.trim().to_ascii_uppercase();
    let w = w.as_str();
    Some(match w {
        _ if w.starts_with("RCPT") => "RCPT",
        _ if w.starts_with("MAIL") => "MAIL",
        _ if w.starts_with("DATA") || w.starts_with("END OF DATA") || w == "." || w == "BDAT" => {
            "DATA"
        }
        "HELO" => "HELO",
        "EHLO" | "LHLO" => "EHLO",
        "STARTTLS" => "STARTTLS",
        _ => return None,
    })
}

/// One exchange of an SMTP transcript: the command we sent (`>>> RCPT TO:<...>`) and the server's
/// reply lines (`<<< 550 ...`), unfolded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The command line as sent, without the `>>>` prefix.
    pub sent: String,
    /// The command name (`RCPT`, `MAIL`, `DATA`, ...), when known.
    pub command: Option<&'static str>,
    /// The reply lines joined by a space.
    pub reply: String,
}

/// Parses an SMTP transcript (`>>> command` / `<<< reply` lines, as Sendmail and Courier print it).
/// Replies with no preceding command are attributed to the connection.
pub fn transcript(text: &str) -> Vec<Exchange> {
    let mut out: Vec<Exchange> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(sent) = t.strip_prefix(">>>") {
            let sent = sent.trim().to_string();
            let command = command_word(sent.split_whitespace().next().unwrap_or(""))
                .or_else(|| command_word(&sent));
            out.push(Exchange {
                sent,
                command,
                reply: String::new(),
            });
            open = true;
        } else if let Some(reply) = t.strip_prefix("<<<") {
            if !open {
                out.push(Exchange {
                    sent: String::new(),
                    command: Some("CONN"),
                    reply: String::new(),
                });
                open = true;
            }
            if let Some(last) = out.last_mut() {
                if !last.reply.is_empty() {
                    last.reply.push(' ');
                }
                last.reply.push_str(reply.trim());
            }
        } else if !t.is_empty() {
            open = false;
        }
    }
    out
}

/// The last failing exchange of a transcript (a reply starting with 4 or 5), if any.
pub fn failing_exchange(text: &str) -> Option<Exchange> {
    transcript(text)
        .into_iter()
        .rev()
        .find(|e| matches!(e.reply.as_bytes().first(), Some(b'4') | Some(b'5')))
}

static SMTP_CODE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)(?:[245][0-9][0-9][ \-]|[245]\.[0-9]{1,3}\.[0-9]{1,3}(?-u:\b))")
        .unwrap_or_else(|_| unreachable!("static regex"))
});

/// Whether the text carries an SMTP reply code or an enhanced status code.
pub fn has_code(text: &str) -> bool {
    SMTP_CODE.is_match(text)
}

/// A recipient report with the fields every text reader fills: address, action, and what
/// [`server_reply`] makes of the text about the failure: the server's own words as diagnostic
/// (`None` when empty), the remote host and the SMTP command named by the MTA's framing.
pub fn recipient(address: String, action: &str, text: &str) -> RecipientReport {
    let reply = server_reply(text);
    RecipientReport {
        recipient: Some(address),
        action: Some(action.to_string()),
        diagnostic: (!reply.diagnostic.is_empty()).then_some(reply.diagnostic),
        remote_mta: reply.remote,
        command: reply.command.map(str::to_string),
        ..RecipientReport::default()
    }
}

/// A failure as a free-text report tells it, split into the remote server's own words and the
/// reporting MTA's framing around them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// The server's reply (codes kept, continuation prefixes removed), or the whole text unfolded
    /// when it carries no reply.
    pub diagnostic: String,
    /// The remote host the framing names (`host X said:`, `X does not like recipient`, ...).
    pub remote: Option<String>,
    /// The SMTP command the framing names ([`command_of`]).
    pub command: Option<&'static str>,
}

/// Where a server's reply starts: a failure reply code (or an enhanced status code) at the start of
/// the text or after a colon, the place every MTA's framing puts it (`said: 550`, `]: 550`,
/// `RCPT TO:<a@example.org>: 550`, `did not like our RCPT TO: 550`, `failed with: 550`).
static REPLY_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)(?:^|:)[ \t]*([\[(]?)([45][0-9][0-9](?:[ \-]|:[ \t]|$)|[45]\.[0-9]{1,3}\.[0-9]{1,3}(?:[ \t]|$))")
        .unwrap_or_else(|_| unreachable!("static regex"))
});

/// Framing that follows a server's reply: Postfix's `(in reply to ... command)`, qmail's
/// `Giving up on HOST.`.
static REPLY_TAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\s*(?:\(in reply to [^)]*\)|(?-u:\b)Giving up on \S+?\.?(?:\s|$))")
        .unwrap_or_else(|_| unreachable!("static regex"))
});

/// Hosts named by the framing, where no `host X said:` sentence is found.
static FRAMING_HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:(?-u:\b)(?:host|server|connected to)\s+<?([A-Za-z0-9][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)+)>?|(?:^|\s)([A-Za-z0-9][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)+)\.?\s*(?:\[[0-9A-Fa-f.:]+\])?\s+(?:does not like|did not like|failed after i sent|responded with))",
    )
    .unwrap_or_else(|_| unreachable!("static regex"))
});

/// Splits the text a report gives about one failure into the server's words, the remote host and
/// the command: the reply starts at its code ([`REPLY_START`]); what precedes it is framing, as is
/// a trailing `(in reply to ...)` or `Giving up on ...`. Text without a reply is kept whole.
pub fn server_reply(text: &str) -> Reply {
    let whole = unfold(text);
    let command = command_of(text);
    let remote = host_said(&whole).map(|h| h.host).or_else(|| {
        FRAMING_HOST
            .captures(&whole)
            .and_then(|c| c.get(1).or_else(|| c.get(2)))
            .map(|m| m.as_str().trim_end_matches('.').to_ascii_lowercase())
    });
    let (words, bracket) = match REPLY_START.captures(text) {
        Some(c) => {
            let at = c.get(2).map_or(0, |m| m.start());
            let open = c.get(1).and_then(|m| m.as_str().chars().next());
            (unfold(text.get(at..).unwrap_or(text)), open)
        }
        None => (whole.clone(), None),
    };
    let mut diagnostic = REPLY_TAIL.replace_all(&words, " ").trim().to_string();
    let closer = match bracket {
        Some('[') => Some(']'),
        Some('(') => Some(')'),
        _ => None,
    };
    if let Some(c) = closer
        && diagnostic.ends_with(c)
    {
        diagnostic.pop();
    }
    if diagnostic.is_empty() {
        diagnostic = REPLY_TAIL.replace_all(&whole, " ").trim().to_string();
    }
    if let Some(inner) = relayed_reply(&diagnostic) {
        diagnostic = inner.to_string();
    }
    Reply {
        diagnostic: join_reply_lines(&diagnostic),
        remote,
        command,
    }
}

/// Sendmail's `554 <address>... 550 Host unknown`: its own code before the address, the reply it
/// got after it; the reply is the server's word.
fn relayed_reply(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    if !(b.len() > 4 && matches!(b.first(), Some(b'4') | Some(b'5')) && b.get(3) == Some(&b' ')) {
        return None;
    }
    let rest = text.get(4..)?;
    if !rest.starts_with('<') {
        return None;
    }
    let (_, after) = rest.split_once(">... ")?;
    let a = after.as_bytes();
    (a.len() > 4
        && matches!(a.first(), Some(b'4') | Some(b'5'))
        && a.get(1..3)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && a.get(3) == Some(&b' '))
    .then_some(after)
}

/// One reply from a multi-line SMTP answer: `550-5.1.1 first part 550-5.1.1 more 550 5.1.1 end`
/// (already unfolded) becomes `550 5.1.1 first part more end`. A `550: text` start becomes
/// `550 text`. Text that does not start with a reply code is returned as it is.
pub fn join_reply_lines(text: &str) -> String {
    let bytes = text.as_bytes();
    let is_code = bytes.len() >= 3
        && matches!(bytes.first(), Some(b'2'..=b'5'))
        && bytes
            .get(1..3)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if !is_code || bytes.get(3).is_some_and(|b| b.is_ascii_digit()) {
        return text.to_string();
    }
    let code = text.get(..3).unwrap_or("");
    let after = text.get(3..).unwrap_or("");
    if !(after.is_empty() || after.starts_with([' ', '-', ':'])) {
        return text.to_string();
    }
    let after = after
        .strip_prefix(": ")
        .or_else(|| after.strip_prefix('-'))
        .or_else(|| after.strip_prefix(' '))
        .unwrap_or(after);
    // The enhanced code that each continuation line repeats, when the first line has one.
    let enhanced = after
        .split_whitespace()
        .next()
        .filter(|w| w.split('.').count() == 3 && w.split('.').all(|p| p.parse::<u16>().is_ok()));
    let mut out = String::with_capacity(text.len());
    out.push_str(code);
    let mut rest = after;
    if let Some(e) = enhanced {
        out.push(' ');
        out.push_str(e);
        rest = rest.get(e.len()..).unwrap_or("");
    }
    // Whether the previous word was a continuation prefix (`550`, `550-`), after which the
    // repeated enhanced code is dropped too.
    let mut after_prefix = false;
    for word in rest.split_whitespace() {
        let mut kept = word;
        if word == code {
            after_prefix = true;
            continue;
        }
        if let Some(r) = word.strip_prefix(code).and_then(|r| r.strip_prefix('-')) {
            if r.is_empty() || Some(r) == enhanced {
                after_prefix = r.is_empty();
                continue;
            }
            kept = r;
        } else if after_prefix && Some(word) == enhanced {
            after_prefix = false;
            continue;
        }
        after_prefix = false;
        out.push(' ');
        out.push_str(kept);
    }
    out
}

/// Whether the text says the failure is temporary (a warning or deferral, not a final failure).
pub fn is_delay_notice(subject: &str, body: &str) -> bool {
    let s = subject.to_ascii_lowercase();
    s.contains("delayed mail")
        || s.contains("warning: could not send")
        || s.contains("delivery delayed")
        || s.contains("delivery status notification (delay)")
        || s.contains("message has not been delivered yet")
        || s.starts_with("warning:")
        || contains_ci(body, "this is only a warning")
        || contains_ci(body, "warning message only")
        || contains_ci(body, "will be retried for")
        || contains_ci(body, "has been delayed")
        || contains_ci(body, "will continue trying")
        || contains_ci(body, "will keep trying")
        || contains_ci(body, "has not yet been delivered")
        || contains_ci(body, "delivery will continue to be attempted")
}

/// Fills `remote_mta` from a "host X said:" sentence in the diagnostic, when there is one.
pub fn set_remote_from_diagnostic(r: &mut RecipientReport) {
    if r.remote_mta.is_none()
        && let Some(h) = r.diagnostic.as_deref().and_then(host_said)
    {
        r.remote_mta = Some(h.host);
    }
}

/// Splits a Postfix-style `... (in reply to RCPT TO command)` tail off `text`: the words before it
/// and the command it names.
pub fn in_reply_to(text: &str) -> (&str, Option<String>) {
    let Some(at) = find_ci(text, "(in reply to ") else {
        return (text.trim(), None);
    };
    let tail = text.get(at..).unwrap_or("");
    (
        text.get(..at).unwrap_or(text).trim(),
        command_of(tail).map(str::to_string),
    )
}

/// The host in `host NAME [ip]`, `host: NAME`, `by NAME. [ip]` style text following `key`.
pub fn host_after(text: &str, key: &str) -> Option<String> {
    let at = find_ci(text, key)?;
    let rest = text.get(at + key.len()..)?.trim_start();
    let host: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    let host = host.trim_end_matches('.');
    (host.contains('.') && host.chars().any(|c| c.is_ascii_alphabetic()))
        .then(|| host.to_ascii_lowercase())
}

/// The host a report names as its own in its opening lines ("This is the mail system at host
/// HOST.", "This is the qmail-send program at HOST.", and the same sentence in other languages,
/// "... auf dem Host HOST."), lower-cased.
pub fn reporting_host(body: &str) -> Option<String> {
    static REPORTING: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)(?-u:\b)(?:mail ?system|mail agent|qmail-send program|postfix program|mail delivery (?:system|software)|mailer(?:-daemon)? program)(?-u:\b)[^\n.]{0,40}?(?-u:\b)(?:at|on|auf|sur|en|su|op|in)(?-u:\b)(?:\s+(?:dem|the|le|el|il|het|der))?\s+(?:host\s+|server\s+)?([A-Za-z0-9][A-Za-z0-9\-]*(?:\.[A-Za-z0-9\-]+)+)",
        )
        .unwrap_or_else(|_| unreachable!("static regex"))
    });
    let opening = prefix_lines(body, 6);
    let host = REPORTING.captures(opening)?.get(1)?.as_str();
    let host = host.trim_end_matches('.');
    (host.contains('.') && host.bytes().any(|b| b.is_ascii_alphabetic()))
        .then(|| host.to_ascii_lowercase())
}

/// `delayed` when the subject or the text says the failure is temporary ([`is_delay_notice`]),
/// else `failed`.
pub fn action_for(subject: &str, text: &str) -> &'static str {
    if is_delay_notice(subject, text) {
        "delayed"
    } else {
        "failed"
    }
}

/// The first `n` non-blank lines of `text`, as one slice.
fn prefix_lines(text: &str, n: usize) -> &str {
    let mut seen = 0;
    let mut end = 0;
    for line in text.split_inclusive('\n') {
        end += line.len();
        if !line.trim().is_empty() {
            seen += 1;
            if seen >= n {
                break;
            }
        }
    }
    text.get(..end).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_said() {
        let h = host_said(
            "host mx.example.net[192.0.2.9] said: 550 5.1.1 nope (in reply to RCPT TO command)",
        );
        let h = h.unwrap_or_else(|| panic!("no match"));
        assert_eq!(h.host, "mx.example.net");
        assert!(h.text.starts_with("550 5.1.1 nope"));
        assert_eq!(command_of(&h.text), Some("RCPT"));
        let h = host_said("host mx.example.org [192.0.2.3]: 452 full");
        assert_eq!(h.map(|h| h.text).as_deref(), Some("452 full"));
    }

    #[test]
    fn names_commands() {
        assert_eq!(
            command_of("SMTP error from remote mail server after RCPT TO:<a@example.org>:"),
            Some("RCPT")
        );
        assert_eq!(
            command_of("(in reply to end of DATA command)"),
            Some("DATA")
        );
        assert_eq!(
            command_of("connect to mx.example.org[192.0.2.1]:25: Connection refused"),
            Some("CONN")
        );
        assert_eq!(
            command_of("... while talking to x:\n>>> MAIL From:<a@example.org>\n<<< 553 no"),
            Some("MAIL")
        );
        assert_eq!(command_of("nothing here"), None);
    }

    #[test]
    fn splits_framing_from_the_server_reply() {
        let r = server_reply(
            "host relay.example.net [198.51.100.3]\nSMTP error from remote mail server after RCPT TO:<ann@example.net>:\n451 4.2.2 <ann@example.net>: over quota",
        );
        assert_eq!(r.diagnostic, "451 4.2.2 <ann@example.net>: over quota");
        assert_eq!(r.remote.as_deref(), Some("relay.example.net"));
        assert_eq!(r.command, Some("RCPT"));

        let r = server_reply(
            "host in.example.org[198.51.100.4] said: 554 5.7.1 refused for policy\n    reasons (in reply to end of DATA command)",
        );
        assert_eq!(r.diagnostic, "554 5.7.1 refused for policy reasons");
        assert_eq!(r.command, Some("DATA"));

        let r = server_reply(
            "198.51.100.5 does not like recipient.\nRemote host said: 550 no mailbox for bea@example.org\nGiving up on 198.51.100.5.",
        );
        assert_eq!(r.diagnostic, "550 no mailbox for bea@example.org");
        assert_eq!(r.remote.as_deref(), Some("198.51.100.5"));
        assert_eq!(r.command, Some("RCPT"));

        let r = server_reply(
            "mx.example.com [198.51.100.6] did not like our final DATA: 552 too large",
        );
        assert_eq!(r.diagnostic, "552 too large");
        assert_eq!(r.remote.as_deref(), Some("mx.example.com"));
        assert_eq!(r.command, Some("DATA"));

        // No reply code: the explanation stays whole.
        let r = server_reply("Mailbox quota exceeded (#5.2.2)");
        assert_eq!(r.diagnostic, "Mailbox quota exceeded (#5.2.2)");
        assert_eq!(r.command, None);

        let r = server_reply("554 <ned@example.org>... 550 Host unknown (no such domain)");
        assert_eq!(r.diagnostic, "550 Host unknown (no such domain)");
        let r = server_reply("554 <ned@example.org>... Service unavailable");
        assert_eq!(r.diagnostic, "554 <ned@example.org>... Service unavailable");

        let r = server_reply("The server answered: [452 4.5.3 too many recipients]");
        assert_eq!(r.diagnostic, "452 4.5.3 too many recipients");
    }

    #[test]
    fn joins_multi_line_replies() {
        assert_eq!(
            join_reply_lines(
                "550-5.1.1 That account is not 550-5.1.1 known here, see 550 5.1.1 https://help.example.com"
            ),
            "550 5.1.1 That account is not known here, see https://help.example.com"
        );
        assert_eq!(
            join_reply_lines("554-mx.example.org refuses 554-No service for 554 your network"),
            "554 mx.example.org refuses No service for your network"
        );
        assert_eq!(
            join_reply_lines("421: 4.7.0 slow down"),
            "421 4.7.0 slow down"
        );
        assert_eq!(join_reply_lines("no code here 550"), "no code here 550");
        assert_eq!(join_reply_lines("5501 x"), "5501 x");
        assert_eq!(join_reply_lines("550."), "550.");
    }

    #[test]
    fn reporting_host_from_the_opening_sentence() {
        assert_eq!(
            reporting_host("Hi. This is the qmail-send program at out.example.org.\nI'm afraid")
                .as_deref(),
            Some("out.example.org")
        );
        assert_eq!(
            reporting_host("Dies ist das Mailsystem auf dem Host Relay.Example.NET.\n").as_deref(),
            Some("relay.example.net")
        );
        assert_eq!(
            reporting_host("This is the mail system at host smtp.example.com.\n").as_deref(),
            Some("smtp.example.com")
        );
        assert_eq!(
            reporting_host("This is the DragonFly Mail Agent at dfly.example.com.\n").as_deref(),
            Some("dfly.example.com")
        );
        assert_eq!(
            reporting_host("Your message could not be delivered.\n"),
            None
        );
        // Only the opening lines count.
        assert_eq!(
            reporting_host(
                "a\nb\nc\nd\ne\nf\ng\nThis is the mail system at host late.example.com.\n"
            ),
            None
        );
    }

    #[test]
    fn names_more_commands() {
        assert_eq!(
            command_of("192.0.2.1 does not like recipient."),
            Some("RCPT")
        );
        assert_eq!(command_of("error for TEXT command, host: x"), Some("DATA"));
        assert_eq!(
            command_of("refused [RCPT_TO] for c@example.org"),
            Some("RCPT")
        );
    }

    #[test]
    fn parses_transcripts() {
        let t = ">>> MAIL From:<a@example.org>\n<<< 250 ok\n>>> RCPT To:<b@example.net>\n<<< 550-5.1.1 no\n<<< 550 5.1.1 such user\n";
        let ex = failing_exchange(t).unwrap_or_else(|| panic!("no exchange"));
        assert_eq!(ex.command, Some("RCPT"));
        assert_eq!(ex.reply, "550-5.1.1 no 550 5.1.1 such user");
    }

    #[test]
    fn hosts_and_reply_tails_are_named() {
        assert_eq!(
            host_after("host mx.example.com [192.0.2.1]", "host").as_deref(),
            Some("mx.example.com")
        );
        assert_eq!(
            in_reply_to("550 no such user (in reply to RCPT TO command)"),
            ("550 no such user", Some("RCPT".to_string()))
        );
        assert_eq!(in_reply_to("plain"), ("plain", None));
        assert_eq!(
            server_reply("host mx.example.com [192.0.2.1]: 550 5.1.1 gone").diagnostic,
            "550 5.1.1 gone"
        );
    }
}
