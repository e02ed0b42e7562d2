//! Extraction helpers shared by the free-text readers: finding addresses, cutting the returned
//! message off, parsing "host X said:" sentences and SMTP transcripts, naming the failed command.
//!
//! Everything here works on `&str` with char-boundary-safe slicing and never panics.

use std::sync::LazyLock;

use regex::Regex;

use crate::report::RecipientReport;

/// An address found in text: its byte span in the text and the normalised address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Byte offset of the first character of the address (after any `<`).
    pub start: usize,
    /// Byte offset just past the address.
    pub end: usize,
    /// The address with its domain lower-cased, local part as written.
    pub address: String,
}

fn is_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&c)
}

fn is_domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_'
}

/// Every address in `text`, in order. Addresses are `local@domain.tld` with an RFC 5322 dot-atom
/// local part and a dotted domain (or an `[ip]` literal); surrounding `<>`, quotes and trailing dots
/// are not part of the match.
pub fn find_addresses(text: &str) -> Vec<Found> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut search_from = 0;
    while let Some(rel) = text.get(search_from..).and_then(|t| t.find('@')) {
        let at = search_from + rel;
        search_from = at + 1;
        let mut start = at;
        while start > 0 && bytes.get(start - 1).is_some_and(|&c| is_local_char(c)) {
            start -= 1;
        }
        // A local part does not start or end with a dot, nor start with a path slash.
        while start < at && matches!(bytes.get(start), Some(b'.') | Some(b'/') | Some(b'=')) {
            start += 1;
        }
        if start == at || bytes.get(at - 1) == Some(&b'.') {
            continue;
        }
        let mut end = at + 1;
        if bytes.get(end) == Some(&b'[') {
            while end < bytes.len() && bytes.get(end).is_some_and(|&c| c != b']' && c != b'>') {
                end += 1;
            }
            if bytes.get(end) == Some(&b']') {
                end += 1;
            } else {
                continue;
            }
        } else {
            while end < bytes.len() && bytes.get(end).is_some_and(|&c| is_domain_char(c)) {
                end += 1;
            }
            while end > at + 1 && matches!(bytes.get(end - 1), Some(b'.') | Some(b'-')) {
                end -= 1;
            }
        }
        let (Some(local), Some(domain)) = (text.get(start..at), text.get(at + 1..end)) else {
            continue;
        };
        if !valid_domain(domain) {
            continue;
        }
        search_from = end.max(search_from);
        out.push(Found {
            start,
            end,
            address: format!("{local}@{}", domain.to_ascii_lowercase()),
        });
    }
    out
}

fn valid_domain(domain: &str) -> bool {
    if domain.starts_with('[') {
        return domain.len() > 2;
    }
    let Some((_, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    !domain.starts_with('.')
        && !domain.contains("..")
        && tld.len() >= 2
        && tld.bytes().all(|c| c.is_ascii_alphabetic())
}

/// The first address in `text`, normalised.
pub fn first_address(text: &str) -> Option<String> {
    find_addresses(text).into_iter().next().map(|f| f.address)
}

/// Normalises one address as written (`<User@Example.COM>`, `mailto:...`, `"x" <...>`): `None` when
/// the text holds no address.
pub fn normalize_address(text: &str) -> Option<String> {
    first_address(text)
}

/// Whether an address belongs to the reporting system itself (MAILER-DAEMON, postmaster, ...) and so
/// is never a failed recipient.
pub fn is_system_address(address: &str) -> bool {
    let local = address.split('@').next().unwrap_or("").to_ascii_lowercase();
    matches!(
        local.as_str(),
        "mailer-daemon" | "postmaster" | "mailerdaemon" | "mail-daemon" | "root" | "nobody"
    ) || local.starts_with("mailer-daemon")
        || local.starts_with("bounce")
        || local.starts_with("noreply")
        || local.starts_with("no-reply")
        || local.starts_with("double-bounce")
}

/// Line prefixes (lower-case) that start the returned original message in free-text reports.
const ORIGINAL_MARKERS: &[&str] = &[
    "------ this is a copy of the message",
    "------ this is a copy of your message",
    "--- below this line is a copy of the message",
    "--- below the next line is a copy of the message",
    "--- enclosed are the original headers",
    "below is a copy of the original message",
    "----- original message follows",
    "original message follows",
    "--- original message follows",
    "------ original message follows",
    "----- unsent message follows",
    "------ unsent message follows",
    "----- message header follows",
    "----- original message -----",
    "-----original message-----",
    "--- original message ---",
    "----- returned message",
    "------ returned message",
    "--- returned message",
    "---- the header of the original message",
    "------ original message header",
    "----- the following is a copy of the message",
    "the original message was as follows",
    "the original message headers are",
    "original message headers:",
    "following is a copy of the message headers",
    "content-type: message/rfc822",
    "content-type: text/rfc822-headers",
    "----- included message follows",
    "----- message text follows",
    "------ failed message follows",
    "--- the header of the original message",
    "here is a copy of the first part of the message",
    "a copy of the original message below",
    "the headers of the original message follow",
    "---------- original message",
    "original-message:",
    "message headers follow",
];

/// Header names that, at the start of a line, begin a block of the original message's headers.
const ORIGINAL_HEADER_STARTS: &[&str] = &[
    "return-path:",
    "received:",
    "dkim-signature:",
    "delivered-to:",
    "x-received:",
    "authentication-results:",
    "arc-seal:",
    "received-spf:",
];

/// The explanation part of a free-text report: everything before the returned original message
/// (its marker line, or the first line of a block of its headers).
pub fn cut_original(body: &str) -> &str {
    body.get(..original_offset(body)).unwrap_or(body)
}

/// The returned original message in a free-text report (headers and body), empty when none is
/// found.
pub fn returned_original(body: &str) -> &str {
    body.get(original_offset(body)..).unwrap_or("")
}

fn original_offset(body: &str) -> usize {
    let mut offset = 0;
    let mut previous_blank = true;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim();
        let lower_start: String = trimmed
            .chars()
            .take(64)
            .flat_map(char::to_lowercase)
            .collect();
        let lower = lower_start.trim_start_matches(['>', ' ']);
        if offset > 0 && ORIGINAL_MARKERS.iter().any(|m| lower.starts_with(m)) {
            return offset;
        }
        if offset > 0
            && previous_blank
            && ORIGINAL_HEADER_STARTS.iter().any(|h| lower.starts_with(h))
        {
            return offset;
        }
        previous_blank = trimmed.is_empty();
        offset += line.len();
    }
    body.len()
}

/// Joins lines into one: each line trimmed, runs of whitespace collapsed to one space.
pub fn unfold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

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
        r"(?i)\bhost\s+([A-Za-z0-9][A-Za-z0-9._\-]*)(?:\s*\[[0-9A-Fa-f.:]+\])?(?:\s+said|\s+replied|\s+says)?\s*:\s*",
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
            r"(?i)in reply to (?:the )?(?:end of )?(RCPT|MAIL|DATA|HELO|EHLO|LHLO|BDAT|STARTTLS)\b",
            None,
        ),
        (
            r"(?i)in reply to (?:the )?(?:initial greeting|connection)",
            Some("CONN"),
        ),
        (
            r"(?i)\bafter (?:the )?(?:pipelined )?(RCPT|MAIL|DATA|HELO|EHLO|end of data|STARTTLS)\b",
            None,
        ),
        (r"(?i)\bafter (?:initial )?connection\b", Some("CONN")),
        (
            r"(?i)(?:^|\n)\s*>>>\s*(RCPT|MAIL|DATA|HELO|EHLO|LHLO|STARTTLS|QUIT|\.)",
            None,
        ),
        (
            r"(?i)did not like our (?:final )?(RCPT|MAIL|DATA|HELO|EHLO)",
            None,
        ),
        (r"(?i)most progress was (RCPT|MAIL|DATA)", None),
        (r"(?i)\bbut sender was rejected", Some("MAIL")),
        (r"(?i)\bbut my name was rejected", Some("HELO")),
        (r"(?i)\bbut greeting failed", Some("CONN")),
        (r"(?i)failed after I sent the message", Some("DATA")),
        (
            r"(?i)\b(RCPT|MAIL|DATA) (?:TO )?(?:FROM )?(?:command|response)\b",
            None,
        ),
        (r"(?i)\b(?:RCPT TO|MAIL FROM):\s*<", None),
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

/// The SMTP command a failure answered, when the text says (`RCPT`, `MAIL`, `DATA`, `HELO`,
/// `EHLO`, `CONN` for the connection or greeting).
pub fn command_of(text: &str) -> Option<&'static str> {
    for (re, fixed) in COMMAND_PATTERNS.iter() {
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

fn command_word(word: &str) -> Option<&'static str> {
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
    Regex::new(r"\b(?:[245][0-9][0-9][ \-]|[245]\.[0-9]{1,3}\.[0-9]{1,3}\b)")
        .unwrap_or_else(|_| unreachable!("static regex"))
});

/// Whether the text carries an SMTP reply code or an enhanced status code.
pub fn has_code(text: &str) -> bool {
    SMTP_CODE.is_match(text)
}

/// A recipient report with the fields every text reader fills: address, action, diagnostic (unfolded;
/// `None` when empty), and the command named in the diagnostic.
pub fn recipient(address: String, action: &str, diagnostic: &str) -> RecipientReport {
    let diagnostic = unfold(diagnostic);
    let command = command_of(&diagnostic).map(str::to_string);
    RecipientReport {
        recipient: Some(address),
        action: Some(action.to_string()),
        diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
        command,
        ..RecipientReport::default()
    }
}

/// Lower-cases ASCII letters of a short prefix of `s` for cheap marker checks.
pub fn contains_ci(haystack: &str, needle: &str) -> bool {
    let n = needle.len();
    if n == 0 {
        return true;
    }
    haystack
        .as_bytes()
        .windows(n)
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
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
        || contains_ci(body, "will continue trying")
        || contains_ci(body, "will keep trying")
        || contains_ci(body, "has not yet been delivered")
        || contains_ci(body, "delivery will continue to be attempted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_addresses_in_brackets_and_prose() {
        let found = find_addresses("to <Alice.B@Example.COM>: and bob@mail.example.net. fin");
        let addrs: Vec<_> = found.iter().map(|f| f.address.as_str()).collect();
        assert_eq!(addrs, ["Alice.B@example.com", "bob@mail.example.net"]);
    }

    #[test]
    fn rejects_non_addresses() {
        assert!(find_addresses("user@localhost @ foo@.x a@b.c1").is_empty());
        assert_eq!(
            first_address("x@[192.0.2.1]").as_deref(),
            Some("x@[192.0.2.1]")
        );
    }

    #[test]
    fn cuts_at_markers_and_header_blocks() {
        let body =
            "Failed: a@example.org\n\n------ This is a copy of the message\nTo: b@example.org\n";
        assert_eq!(cut_original(body), "Failed: a@example.org\n\n");
        let body = "Failed: a@example.org\n\nReceived: from x\nTo: b@example.org\n";
        assert_eq!(cut_original(body), "Failed: a@example.org\n\n");
        assert!(returned_original(body).starts_with("Received:"));
    }

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
    fn parses_transcripts() {
        let t = ">>> MAIL From:<a@example.org>\n<<< 250 ok\n>>> RCPT To:<b@example.net>\n<<< 550-5.1.1 no\n<<< 550 5.1.1 such user\n";
        let ex = failing_exchange(t).unwrap_or_else(|| panic!("no exchange"));
        assert_eq!(ex.command, Some("RCPT"));
        assert_eq!(ex.reply, "550-5.1.1 no 550 5.1.1 such user");
    }

    #[test]
    fn never_panics_on_garbage() {
        for s in [
            "@",
            "@@@",
            "a@",
            "@b.c",
            "é@é.é",
            "<<<",
            ">>>",
            "host :",
            "\u{0}@x.yy",
            "a@[",
            "x@y..zz",
        ] {
            let _ = find_addresses(s);
            let _ = cut_original(s);
            let _ = host_said(s);
            let _ = command_of(s);
            let _ = transcript(s);
        }
    }
}

/// A recipient named at the start of a line and the words that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The recipient, normalised.
    pub address: String,
    /// The text after the address (and its colon) up to the end of its block, lines kept.
    pub text: String,
}

/// Splits text into `<address>: text` blocks, the shape of Postfix and qmail reports: a block starts
/// with a line whose first non-blank character is `<` and whose address is followed (after an
/// optional `(expanded from <...>)`) by a colon; it runs until a blank line or the next block.
pub fn angle_blocks(text: &str) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let t = line.trim();
        let indented = line.starts_with([' ', '\t']);
        if let Some((address, rest)) = (!open || !indented).then(|| angle_block_start(t)).flatten()
        {
            out.push(Block {
                address,
                text: rest.to_string(),
            });
            open = true;
            continue;
        }
        if t.is_empty() {
            open = false;
            continue;
        }
        if open {
            if let Some(last) = out.last_mut() {
                if !last.text.is_empty() {
                    last.text.push('\n');
                }
                last.text.push_str(t);
            }
        }
    }
    out
}

fn angle_block_start(t: &str) -> Option<(String, &str)> {
    let inner = t.strip_prefix('<')?;
    let (addr, after) = inner.split_once('>')?;
    if addr.contains(' ') {
        return None;
    }
    let address = first_address(addr)?;
    let mut after = after.trim_start();
    if let Some(rest) = after.strip_prefix('(') {
        // "(expanded from <...>)" or similar.
        after = rest.split_once(')').map(|(_, r)| r.trim_start())?;
    }
    let rest = after.strip_prefix(':')?;
    Some((address, rest.trim()))
}

/// Takes the last `<<< `-style reply or `NNN ...` line of a block as its diagnostic when the block's
/// own words carry no code; used where a report repeats the server's words in a transcript.
pub fn first_code_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| has_code(l))
}

/// Fills `remote_mta` from a "host X said:" sentence in the diagnostic, when there is one.
pub fn set_remote_from_diagnostic(r: &mut RecipientReport) {
    if r.remote_mta.is_none() {
        if let Some(h) = r.diagnostic.as_deref().and_then(host_said) {
            r.remote_mta = Some(h.host);
        }
    }
}

/// Whether the bounce comes from a mailer daemon or postmaster (by its `From`).
pub fn from_daemon(from: &str) -> bool {
    let local = from.split('@').next().unwrap_or("");
    local.starts_with("mailer-daemon") || local == "postmaster" || local.starts_with("mail-daemon")
}

/// Builds a recipient report from a block of text about one address: when the block holds a
/// "host X said:" sentence, the diagnostic is what the host said up to Postfix's `(in reply to ...
/// command)`, with the host as `remote_mta`; otherwise the whole block, unfolded. The command comes
/// from the whole block.
pub fn report_from_block(address: String, action: &str, block: &str) -> RecipientReport {
    let whole = unfold(block);
    let command = command_of(&whole).map(str::to_string);
    let (diagnostic, remote) = match host_said(&whole) {
        Some(h) if !h.text.is_empty() => {
            let said = match h.text.find("(in reply to") {
                Some(i) => h.text.get(..i).unwrap_or(&h.text).trim().to_string(),
                None => h.text.clone(),
            };
            (said, Some(h.host))
        }
        _ => (whole, None),
    };
    RecipientReport {
        recipient: Some(address),
        action: Some(action.to_string()),
        diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
        remote_mta: remote,
        command,
        ..RecipientReport::default()
    }
}

/// Helpers for the readers' unit tests: build an [`Input`](super::Input) from a raw message.
#[cfg(test)]
pub mod testutil {
    use mail_parser::MessageParser;

    use super::super::{Input, readable_text};
    use crate::report::RecipientReport;

    /// Parses `raw` and calls `f` with the reader input built from it.
    pub fn input_from(raw: &str, f: impl FnOnce(&Input)) {
        let Some(msg) = MessageParser::default().parse(raw.as_bytes()) else {
            panic!("test message does not parse");
        };
        let subject = msg.subject().unwrap_or("").to_string();
        let from = msg
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or("")
            .to_lowercase();
        let body = readable_text(&msg);
        let input = Input {
            message: &msg,
            subject: &subject,
            from: &from,
            body: &body,
        };
        f(&input);
    }

    /// Runs a reader over garbage and truncated inputs: it must return, whatever it finds.
    pub fn garbage(read: fn(&Input) -> Vec<RecipientReport>) {
        let mut seed: u32 = 0x1234_5678;
        let alphabet: Vec<char> = "<>@:.()[] \n\t-x5é日0>>><<<said host RCPT"
            .chars()
            .collect();
        let mut cases: Vec<String> = vec![
            String::new(),
            "\n".into(),
            "<@>:\n<<<\n>>>\n".into(),
            "<a@b.cc>:\n".into(),
            "  a@b.cc\n    host :\n".into(),
            "<a@b.cc> (expanded from <\n".into(),
        ];
        for _ in 0..200 {
            let mut s = String::new();
            for _ in 0..(seed % 300) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let i = (seed as usize) % alphabet.len();
                s.push(alphabet.get(i).copied().unwrap_or('x'));
            }
            cases.push(s);
        }
        for body in cases {
            let raw = format!("From: MAILER-DAEMON@example.org\nSubject: failure\n\n{body}");
            input_from(&raw, |input| {
                let _ = read(input);
            });
        }
    }
}
