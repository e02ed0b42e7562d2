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

/// How far back from an address [`find_addresses`] looks for the start of the token holding it
/// (to skip addresses inside URLs); a longer token is taken as starting there.
const TOKEN_LOOKBACK: usize = 512;

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
        // A path or URL query before the address is not part of it.
        if let Some(cut) = text.get(start..at).and_then(|l| l.rfind(['/', '&', '?'])) {
            start += cut + 1;
        }
        // A local part does not start or end with a dot.
        while start < at && matches!(bytes.get(start), Some(b'.') | Some(b'=')) {
            start += 1;
        }
        // The token holding the address, looked for in the last `TOKEN_LOOKBACK` bytes only: a
        // scan back to the text's start for every `@` would make a long line of addresses
        // quadratic.
        let mut floor = start.saturating_sub(TOKEN_LOOKBACK);
        while floor < start && !text.is_char_boundary(floor) {
            floor += 1;
        }
        let token_start = text
            .get(floor..start)
            .and_then(|b| b.rfind(char::is_whitespace))
            .map_or(floor, |i| floor + i + 1);
        if text
            .get(token_start..start)
            .is_some_and(|t| t.contains("://"))
        {
            continue;
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

/// Phrases (lower-case) that, at the start of a line (after any `-`, `=`, `|`, `*` or `>` decoration),
/// announce the returned original message in free-text reports.
const ORIGINAL_MARKERS: &[&str] = &[
    "this is a copy of the message",
    "this is a copy of your message",
    "below this line is a copy of the message",
    "below the next line is a copy of the message",
    "enclosed are the original headers",
    "below is a copy of the original message",
    "original message follows",
    "unsent message follows",
    "message header follows",
    "original message --",
    "original message-",
    "original message ---",
    "the header of the original message",
    "original message header",
    "the following is a copy of the message",
    "the original message was as follows",
    "the original message headers are",
    "original message headers:",
    "following is a copy of the message headers",
    "content-type: message/rfc822",
    "content-type: text/rfc822-headers",
    "included message follows",
    "message text follows",
    "failed message follows",
    "here is a copy of the first part of the message",
    "a copy of the original message below",
    "the headers of the original message follow",
    "original-message:",
    "message headers follow",
    "original mail as follows",
    "original message:",
    "headers of your message follow",
    "the header of the original message is following",
    "included is a copy of the message header",
    "original message",
];

/// Phrases that announce the original only inside a decorated separator line (`----- ... -----`).
const DECORATED_MARKERS: &[&str] = &[
    "returned message",
    "original message",
    "returned mail",
    "message follows",
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
        let lower = trimmed.trim_start_matches(['>', ' ']);
        let phrase = lower.trim_start_matches(['-', '=', '|', '*', '>', ' ', '_']);
        let decorated = phrase.len() < lower.len();
        if offset > 0
            && (ORIGINAL_MARKERS.iter().any(|m| starts_with_ci(phrase, m))
                || (decorated && DECORATED_MARKERS.iter().any(|m| starts_with_ci(phrase, m))))
        {
            return offset;
        }
        if offset > 0
            && previous_blank
            && ORIGINAL_HEADER_STARTS
                .iter()
                .any(|h| starts_with_ci(lower, h))
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

/// Whether `haystack` contains `needle`, ASCII case-insensitively.
pub fn contains_ci(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some((&first, rest)) = n.split_first() else {
        return true;
    };
    if h.len() < n.len() {
        return false;
    }
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let last_start = h.len() - n.len();
    let mut i = 0;
    while i <= last_start {
        match h
            .get(i..=last_start)
            .and_then(|w| w.iter().position(|&b| b == lo || b == up))
        {
            None => return false,
            Some(p) => {
                let at = i + p;
                if h.get(at + 1..at + n.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(rest))
                {
                    return true;
                }
                i = at + 1;
            }
        }
    }
    false
}

/// The first 16 KiB of a report's text (cut at a character boundary): where family markers are
/// looked for, so detection stays cheap on long messages.
pub fn head(text: &str) -> &str {
    let mut end = text.len().min(16 * 1024);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or(text)
}

/// Whether `haystack` starts with `needle`, ASCII case-insensitively.
pub fn starts_with_ci(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .get(..needle.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(needle.as_bytes()))
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
    fn blocks_once_per_address_and_actions() {
        let text =
            "<pia@example.org>: first\n\n<pia@example.org>: again\n\n<quin@example.org>: other\n";
        let got: Vec<_> = distinct_angle_blocks(text)
            .into_iter()
            .map(|b| (b.address, b.text))
            .collect();
        assert_eq!(
            got,
            [
                ("pia@example.org".to_string(), "first".to_string()),
                ("quin@example.org".to_string(), "other".to_string())
            ]
        );
        assert_eq!(
            action_for("Delayed Mail (still being retried)", ""),
            "delayed"
        );
        assert_eq!(action_for("Undelivered Mail", "no such user"), "failed");
    }

    #[test]
    fn address_at_line_start() {
        assert_eq!(
            leading_address("<ida@example.org>: 550 unknown"),
            Some(("ida@example.org".to_string(), "550 unknown"))
        );
        assert_eq!(leading_address("to ida@example.org"), None);
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
        if open && let Some(last) = out.last_mut() {
            if !last.text.is_empty() {
                last.text.push('\n');
            }
            last.text.push_str(t);
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
    if r.remote_mta.is_none()
        && let Some(h) = r.diagnostic.as_deref().and_then(host_said)
    {
        r.remote_mta = Some(h.host);
    }
}

/// The lines after the first line containing `start` (case-insensitive), up to the first blank line
/// after some content or the first line satisfying `stop`, trimmed and
/// joined by newlines.
pub fn section_after(text: &str, start: &str, stop: impl Fn(&str) -> bool) -> Option<String> {
    let mut lines = text.lines();
    lines.by_ref().find(|l| contains_ci(l, start))?;
    let mut out = String::new();
    for l in lines {
        let t = l.trim();
        if stop(t) {
            break;
        }
        if t.is_empty() {
            if out.is_empty() {
                continue;
            }
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(t);
    }
    Some(out)
}

/// `s` with its leading `prefix` removed, compared ASCII case-insensitively.
pub fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// Byte offset of `needle` in `hay`, ASCII case-insensitively.
pub fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let n = needle.as_bytes();
    if n.is_empty() {
        return Some(0);
    }
    hay.as_bytes()
        .windows(n.len())
        .position(|w| w.eq_ignore_ascii_case(n))
}

/// An address written alone (`<Bob@Example.COM>`, `"a@example.org":`, `mailto:a@example.org`):
/// decorations removed, domain lower-cased; `None` unless the whole token is one address.
pub fn normalize_addr(raw: &str) -> Option<String> {
    let mut s = raw
        .trim()
        .trim_matches(|c: char| "<>\"'()[],;:".contains(c));
    if let Some(rest) = strip_prefix_ci(s, "mailto:") {
        s = rest;
    }
    let s = s.trim_end_matches('.');
    let found = find_addresses(s);
    match found.as_slice() {
        [one] if one.start == 0 && one.end == s.len() => Some(one.address.clone()),
        _ => None,
    }
}

/// The first address in `text`, preferring one written in `<...>`, normalised.
pub fn first_addr(text: &str) -> Option<String> {
    let found = find_addresses(text);
    let bracketed = found.iter().find(|f| {
        f.start > 0
            && text.as_bytes().get(f.start - 1) == Some(&b'<')
            && text.as_bytes().get(f.end) == Some(&b'>')
    });
    bracketed.or(found.first()).map(|f| f.address.clone())
}

/// Whether a trimmed line is nothing but one address (in `<>`, quotes, or bare, maybe with a
/// trailing colon).
pub fn addr_line(line: &str) -> Option<String> {
    let t = line.trim().trim_end_matches(':');
    if t.is_empty() || t.contains(char::is_whitespace) {
        return None;
    }
    normalize_addr(t)
}

/// Lines joined into one: each trimmed, blanks dropped, single spaces between.
pub fn unfold_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for l in lines {
        for w in l.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(w);
        }
    }
    out
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

/// A failed recipient with what [`server_reply`] makes of `text`.
pub fn failed(recipient_address: String, text: String) -> RecipientReport {
    recipient(recipient_address, "failed", &text)
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

/// Reads Exim-style address blocks (`address` or `<address>:` on one line, its reason on the
/// lines below, indented or not) from the text after the last line containing `marker`.
pub fn exim_blocks(text: &str, marker: &str) -> Vec<RecipientReport> {
    let Some(at) = text.rfind(marker) else {
        return Vec::new();
    };
    let section = text.get(at..).unwrap_or("");
    let mut blocks: Vec<(String, Vec<&str>)> = Vec::new();
    let mut prev_blank = true;
    let mut prev_indent = 0usize;
    for line in section.lines().skip(1) {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if t.is_empty() {
            prev_blank = true;
            continue;
        }
        if t.starts_with("---") || t.starts_with("***") {
            break;
        }
        let (first, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        let addr = normalize_addr(first);
        let same_as_current = match (&addr, blocks.last()) {
            (Some(a), Some((cur, _))) => a == cur && rest.is_empty(),
            _ => false,
        };
        let opens = addr.is_some()
            && !same_as_current
            && (prev_blank || indent < prev_indent || blocks.is_empty() || first.ends_with(':'));
        match addr {
            Some(a) if opens => {
                let mut lines = Vec::new();
                if !rest.trim().is_empty() {
                    lines.push(rest.trim());
                }
                blocks.push((a, lines));
            }
            _ => {
                // Text before the first address belongs to no recipient.
                if let Some((_, lines)) = blocks.last_mut() {
                    lines.push(t);
                }
            }
        }
        prev_blank = false;
        prev_indent = indent;
    }
    blocks
        .into_iter()
        .map(|(a, lines)| {
            let kept = lines.into_iter().filter(|l| {
                !(l.eq_ignore_ascii_case("reason:")
                    || l.eq_ignore_ascii_case("for the following reason:"))
            });
            let joined = kept.collect::<Vec<_>>().join("\n");
            let remote = host_after(&joined, "host:").or_else(|| host_after(&joined, "host "));
            let mut r = failed(a, joined);
            if r.remote_mta.is_none() {
                r.remote_mta = remote;
            }
            r
        })
        .collect()
}

/// Whether the bounce comes from a mailer daemon or postmaster (by its `From`).
pub fn from_daemon(from: &str) -> bool {
    let local = from.split('@').next().unwrap_or("");
    local.starts_with("mailer-daemon") || local == "postmaster" || local.starts_with("mail-daemon")
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

/// A line that starts with an address (bare or after `<`): the address and the words after it,
/// with the closing `>` and a colon removed.
pub fn leading_address(line: &str) -> Option<(String, &str)> {
    let first = find_addresses(line).into_iter().next()?;
    if first.start > 1 {
        return None;
    }
    let words = line
        .get(first.end..)
        .unwrap_or("")
        .trim_start_matches(['>', ':', ' '])
        .trim_end();
    Some((first.address, words))
}

/// [`angle_blocks`] with one block per address: the first one a report gives.
pub fn distinct_angle_blocks(text: &str) -> Vec<Block> {
    let mut blocks = angle_blocks(text);
    let mut seen: Vec<String> = Vec::with_capacity(blocks.len());
    blocks.retain(|b| {
        let fresh = !seen.contains(&b.address);
        if fresh {
            seen.push(b.address.clone());
        }
        fresh
    });
    blocks
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

    /// Runs `f` on an [`Input`](super::super::Input) built from a small test bounce.
    pub fn test_input<T>(from: &str, subject: &str, body: &str, f: impl FnOnce(&Input) -> T) -> T {
        let raw = format!(
            "From: {from}\nSubject: {subject}\nContent-Type: text/plain; charset=utf-8\n\n{body}"
        );
        let message = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap_or_default();
        let from_lc = from.to_ascii_lowercase();
        let input = Input {
            message: &message,
            subject,
            from: &from_lc,
            body,
        };
        f(&input)
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

#[cfg(test)]
mod moved_tests {
    use super::testutil::test_input;
    use super::*;

    #[test]
    fn addresses_are_normalized() {
        assert_eq!(
            normalize_addr("<Bob@Example.COM>").as_deref(),
            Some("Bob@example.com")
        );
        assert_eq!(
            normalize_addr("\"a@example.org\":").as_deref(),
            Some("a@example.org")
        );
        assert_eq!(
            normalize_addr("mailto:a@example.org").as_deref(),
            Some("a@example.org")
        );
        assert_eq!(normalize_addr("nobody"), None);
        assert_eq!(normalize_addr("a@localhost"), None);
        assert_eq!(
            first_addr("x <no> y <c@example.net> z").as_deref(),
            Some("c@example.net")
        );
        assert_eq!(
            first_addr("to d@example.net, now").as_deref(),
            Some("d@example.net")
        );
    }

    #[test]
    fn original_is_cut_and_hosts_and_tails_named() {
        let body = "report\n----- Original message -----\nTo: x@example.com\n";
        assert_eq!(cut_original(body), "report\n");
        assert_eq!(
            host_after("host mx.example.com [192.0.2.1]", "host").as_deref(),
            Some("mx.example.com")
        );
        assert_eq!(unfold_lines([" a ", "", "b  c"]), "a b c");
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

    /// Pieces of the formats' fixed wording, so random input reaches the readers' inner paths.
    const PIECES: &[&str] = &[
        "\n",
        " ",
        "<",
        ">",
        "@",
        ":",
        "'",
        "-- ",
        ">>> RCPT TO:",
        "<<< 550 ",
        "a@example.com",
        "<b@example.net>:",
        "failed:",
        "Delivery to the following recipient failed permanently:",
        "Technical details of permanent failure:",
        "The error that the other server returned was:",
        "Sorry, we were unable to deliver your message to the following address.",
        "Remote host said:",
        "[RCPT_TO]",
        "----- Original message -----",
        "host mx.example.com [",
        "did not reach the following recipient(s):",
        " on ",
        "The MTS-ID of the original message",
        "Diagnostic information for administrators",
        "Remote Server returned '",
        "Delivery has failed to these recipients or groups",
        "Invalid Address, ERROR_CODE :",
        "[Status: Error, Address: <",
        "ResponseCode",
        "The following addresses had delivery problems",
        "Non-delivered information",
        "Could not be delivered to:",
        "Recipient:",
        "Unable to deliver message to",
        "Sent <<<",
        "Received >>>",
        "The problem appears to be",
        "Additional information follows",
        "was not delivered to:",
        "because:",
        "Error message below:",
        "Original Message:",
        "To:",
        "{\"notificationType\":\"Bounce\",\"bounce\":{\"bouncedRecipients\":[{\"emailAddress\":",
        "Technical report:",
        "Final-Recipient: rfc822;",
        "Your message to:",
        "was blocked by our Spam",
        "The following message to <",
        "The reason for the problem:",
        "(in reply to ",
        "é",
        "\u{0}",
        "日本語",
        "Delivery to the following recipients failed.",
    ];

    proptest::proptest! {
        #[test]
        fn no_family_panics(picks in proptest::collection::vec((0..PIECES.len(), "[ -~]{0,6}"), 0..40)) {
            let mut body = String::new();
            for (i, noise) in &picks {
                body.push_str(PIECES.get(*i).copied().unwrap_or(""));
                body.push_str(noise);
            }
            for from in ["mailer-daemon@googlemail.com", "postmaster@ezweb.ne.jp", "x@mail.zoho.com", "post_master@vtext.com", "no-reply@a.dion.ne.jp", "postmaster@biglobe.ne.jp", "mailer-daemon@bigfoot.com", "mailer-daemon@corp.mail.ru"] {
                test_input(from, "Delivery Status Notification", &body, |input| {
                    for family in super::super::FAMILIES {
                        if (family.detect)(input) {
                            let _ = (family.read)(input);
                        }
                        let _ = (family.read)(input);
                    }
                });
            }
        }
    }

    #[test]
    fn odd_input_does_not_panic() {
        for s in [
            "",
            "@",
            "<",
            "<>",
            "é@é.é",
            "a@b.",
            "\u{0}@\u{0}.x",
            "<<<@>>>",
        ] {
            let _ = (
                first_addr(s),
                addr_line(s),
                cut_original(s),
                host_after(s, "host"),
                strip_prefix_ci(s, "éé"),
            );
        }
    }
}
