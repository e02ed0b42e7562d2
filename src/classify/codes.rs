//! SMTP reply codes (RFC 5321) and enhanced status codes (RFC 3463): parsing and meaning.
//!
//! Codes are taken only from where a server writes them: an enhanced code stands alone
//! (`5.1.1`, `550-5.1.1`, `(#5.1.1)`), never inside an IP address, a version number or a longer
//! dotted number. A reply code is one the RFCs define, and it stands where a reply stands: right
//! before an enhanced code of the same class (`550 5.1.1`, `421-4.7.0`), at the start of a line, or
//! after a lead-in (`said:`, `<<<`, `->`, a colon, Sendmail's `... `, a bracket); never as just any
//! three-digit number in the text (sizes, ports, durations).

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// An enhanced mail system status code (RFC 3463): `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusCode {
    /// 2 success, 4 persistent transient failure, 5 permanent failure.
    pub class: u8,
    /// 0 other, 1 addressing, 2 mailbox, 3 mail system, 4 network, 5 protocol, 6 content, 7 policy.
    pub subject: u8,
    /// The detail number (0-999).
    pub detail: u16,
}

impl StatusCode {
    /// Parses a code that is the whole value (a `Status` field): `5.1.1`, ` 4.4.7 (comment)`.
    pub fn parse(value: &str) -> Option<StatusCode> {
        let token = value
            .trim()
            .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
            .next()?;
        let token = token.strip_suffix('.').unwrap_or(token);
        let mut parts = token.split('.');
        let class = parse_digits(parts.next()?, 1)?;
        let subject = parse_digits(parts.next()?, 3)?;
        let detail = parse_digits(parts.next()?, 3)?;
        if parts.next().is_some() {
            return None;
        }
        StatusCode::new(class, subject, detail)
    }

    /// A code from its three numbers, if they form a valid code (class 2/4/5, subject 0-7).
    pub fn new(class: u16, subject: u16, detail: u16) -> Option<StatusCode> {
        if !matches!(class, 2 | 4 | 5) || subject > 7 || detail > 999 {
            return None;
        }
        Some(StatusCode {
            class: class as u8,
            subject: subject as u8,
            detail,
        })
    }

    /// Whether the code says permanent (`5`), transient (`4`), or neither (`2`: success).
    pub fn is_permanent(self) -> Option<bool> {
        match self.class {
            5 => Some(true),
            4 => Some(false),
            _ => None,
        }
    }

    /// Whether this is a catch-all `X.0.0` that says nothing beyond its class.
    pub fn is_generic(self) -> bool {
        self.subject == 0 && self.detail == 0
    }

    /// A short description of the code, from RFC 3463 and the IANA registry, when known.
    pub fn meaning(self) -> Option<&'static str> {
        status_meaning(self.subject, self.detail)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// An SMTP reply code (RFC 5321), `200`-`559`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplyCode(pub u16);

impl ReplyCode {
    /// Parses a code that is the whole value (or leads it): `550`, `550 5.1.1 ...`, `550-...`.
    pub fn parse(value: &str) -> Option<ReplyCode> {
        let value = value.trim_start();
        let digits = value.get(..3)?;
        let rest = value.get(3..).unwrap_or("");
        if !rest.is_empty() && !rest.starts_with([' ', '-', '\t']) {
            return None;
        }
        ReplyCode::new(parse_digits(digits, 3)?)
    }

    /// Whether the RFCs define this code (RFC 5321, RFC 7504, RFC 4954, RFC 3207, RFC 1985, and
    /// the basic codes the IANA enhanced-code registry associates): numbers such as 426, 522 or
    /// 542 that some servers print are not SMTP reply codes.
    pub fn is_defined(self) -> bool {
        matches!(
            self.0,
            211 | 214
                | 220
                | 221
                | 235
                | 250
                | 251
                | 252
                | 334
                | 354
                | 421
                | 432
                | 450
                | 451
                | 452
                | 453
                | 454
                | 455
                | 458
                | 459
                | 500
                | 501
                | 502
                | 503
                | 504
                | 521
                | 523
                | 525
                | 530
                | 534
                | 535
                | 538
                | 550
                | 551
                | 552
                | 553
                | 554
                | 555
                | 556
        )
    }

    /// A reply code from its number, if valid (first digit 2-5, second digit 0-5).
    pub fn new(code: u16) -> Option<ReplyCode> {
        let first = code / 100;
        let second = (code / 10) % 10;
        if (2..=5).contains(&first) && second <= 5 {
            Some(ReplyCode(code))
        } else {
            None
        }
    }

    /// The first digit: 2 success, 3 intermediate, 4 transient failure, 5 permanent failure.
    pub fn class(self) -> u8 {
        (self.0 / 100) as u8
    }

    /// Whether the code says permanent (`5xx`), transient (`4xx`), or neither.
    pub fn is_permanent(self) -> Option<bool> {
        match self.class() {
            5 => Some(true),
            4 => Some(false),
            _ => None,
        }
    }

    /// A short description of the code, from RFC 5321 (and RFC 7504 for 521/556), when known.
    pub fn meaning(self) -> Option<&'static str> {
        reply_meaning(self.0)
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

fn parse_digits(s: &str, max_len: usize) -> Option<u16> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Candidate enhanced codes; boundaries are checked by hand (the regex crate has no look-around).
static STATUS_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[245]\.[0-7]\.[0-9]{1,3}").expect("the pattern is valid"));

/// Reply codes after a lead-in: line start, `said:`, `<<<`, `->`, any colon (`failed with:`,
/// `after RCPT TO:<a@b>:`, `550: 5.2.2`), Sendmail's `<addr>... `, an opening bracket, or words such
/// as `reply:`. The code is followed by a space, a dash or the end of the line.
static REPLY_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?im)(?:^|said:|<<<|->|:|\.\.\.|\[|(?-u:\b)(?:reply|response|replied|answer|error|smtp)(?: code)?(?: was| is)?)[ \t'(\[]*([2-5][0-5][0-9])(:?[ \t\-]|:?$)",
    )
    .expect("the pattern is valid")
});

/// A reply code right before an enhanced code (`550 5.1.1`, `550-5.7.26`, `550-'5.2.2`): the
/// surest sign of a server's reply, wherever it stands.
static PAIR_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"([2-5][0-5][0-9])[ \-]['"]?([245]\.[0-7]\.[0-9]{1,3})"#)
        .expect("the pattern is valid")
});

/// Words after a number that make it a quantity, not a reply code.
const UNITS: [&str; 14] = [
    "bytes", "byte", "kb", "mb", "gb", "seconds", "second", "secs", "minutes", "minute", "mins",
    "hours", "hour", "days",
];

fn is_boundary_before(bytes: &[u8], start: usize) -> bool {
    start
        .checked_sub(1)
        .and_then(|i| bytes.get(i))
        .is_none_or(|&b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'))
}

fn is_boundary_after(bytes: &[u8], end: usize) -> bool {
    match bytes.get(end) {
        Some(&next) if next.is_ascii_alphanumeric() || next == b'_' => false,
        Some(b'.') => !bytes
            .get(end + 1)
            .is_some_and(|b| b.is_ascii_alphanumeric()),
        _ => true,
    }
}

/// Whether the word after a candidate code makes it a quantity (`550 bytes`, `421 seconds`).
fn followed_by_unit(text: &str, end: usize) -> bool {
    let rest = text
        .get(end..)
        .unwrap_or("")
        .trim_start_matches([' ', '\t', '-']);
    let word = rest
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    UNITS.iter().any(|u| word.eq_ignore_ascii_case(u))
}

/// Every reply code written right before an enhanced code of the same class, with that code, in
/// order.
pub fn reply_status_pairs(text: &str) -> impl Iterator<Item = (ReplyCode, StatusCode)> + '_ {
    let bytes = text.as_bytes();
    // A match is the reply's three digits, one separator, perhaps a quote, then the enhanced code:
    // its parts are sliced off the match rather than captured (a slower search).
    PAIR_RE.find_iter(text).filter_map(move |m| {
        if !is_boundary_before(bytes, m.start()) || !is_boundary_after(bytes, m.end()) {
            return None;
        }
        let (reply, rest) = m.as_str().split_at_checked(3)?;
        let status = rest.get(1..)?.trim_start_matches(['\'', '"']);
        let reply = ReplyCode(reply.parse().ok()?);
        let status = StatusCode::parse(status)?;
        (reply.is_defined() && reply.class() == status.class).then_some((reply, status))
    })
}

/// The server's own reply in `text`: the last reply code paired with a specific (not `X.0.0`)
/// enhanced code of a failure class. When a local MTA wraps the remote reply in its own summary
/// (`554 4.4.7 Message expired <421 4.4.2 Connection timed out>`), the inner, later one is the
/// server's.
pub fn find_server_pair(text: &str) -> Option<(ReplyCode, StatusCode)> {
    reply_status_pairs(text)
        .filter(|(r, s)| r.class() >= 4 && !s.is_generic())
        .last()
}

/// Every enhanced status code written in `text`, in order.
pub fn status_codes(text: &str) -> impl Iterator<Item = StatusCode> + '_ {
    let bytes = text.as_bytes();
    STATUS_RE.find_iter(text).filter_map(move |m| {
        let start = m.start();
        if let Some(&prev) = start.checked_sub(1).and_then(|i| bytes.get(i)) {
            if prev.is_ascii_alphanumeric() || prev == b'.' || prev == b'_' {
                return None;
            }
            // "version 5.1.1" names a release, not a status.
            let before = text.get(..start).unwrap_or("").trim_end().as_bytes();
            let ends_with = |word: &[u8]| {
                before
                    .len()
                    .checked_sub(word.len())
                    .and_then(|i| before.get(i..))
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(word))
            };
            if ends_with(b"version") || ends_with(b"release") {
                return None;
            }
        }
        if !is_boundary_after(bytes, m.end()) {
            return None;
        }
        StatusCode::parse(m.as_str())
    })
}

/// The most telling enhanced code in `text`: the first specific one, else the first generic `X.0.0`.
pub fn find_status(text: &str) -> Option<StatusCode> {
    let mut generic = None;
    for code in status_codes(text) {
        if !code.is_generic() {
            return Some(code);
        }
        generic.get_or_insert(code);
    }
    generic
}

/// Every SMTP reply code written in `text` where a server's reply stands, in order.
pub fn reply_codes(text: &str) -> impl Iterator<Item = ReplyCode> + '_ {
    // The code is the three digits before the match's optional `:` and its one closing blank or
    // dash: sliced off the match rather than captured (a slower search).
    REPLY_RE.find_iter(text).filter_map(move |m| {
        let head = m.as_str();
        let head = head.strip_suffix([' ', '\t', '-']).unwrap_or(head);
        let head = head.strip_suffix(':').unwrap_or(head);
        let start = m.start() + head.len().checked_sub(3)?;
        let end = m.start() + head.len();
        if followed_by_unit(text, end) {
            return None;
        }
        let code = ReplyCode(text.get(start..end)?.parse().ok()?);
        code.is_defined().then_some(code)
    })
}

/// The SMTP reply code of a failure in `text`: a code paired with an enhanced code when there is
/// one (the last with a specific code, else the first), else the last failure code (4xx/5xx) in a
/// reply position (an MTA's summary comes first, the server's own words after it:
/// `554 <a@b>... 550 Host unknown`), else the first code.
pub fn find_reply(text: &str) -> Option<ReplyCode> {
    if let Some((r, _)) = find_server_pair(text) {
        return Some(r);
    }
    if let Some((r, _)) = reply_status_pairs(text).find(|(r, _)| r.class() >= 4) {
        return Some(r);
    }
    let mut first = None;
    let mut last_failure = None;
    for code in reply_codes(text) {
        if code.class() >= 4 {
            last_failure = Some(code);
        }
        first.get_or_insert(code);
    }
    last_failure.or(first)
}

/// How MTAs say which SMTP command a reply answered, each with the command's name. The wording of
/// Postfix (`in reply to RCPT TO command`, `end of DATA command`), Exim (`after RCPT TO:`, `after end
/// of data`, `after initial connection`), Sendmail transcripts (`>>> DATA`), qmail (`does not like
/// recipient`, `sender was rejected`), DragonFly (`did not like our RCPT TO`, `our final DATA`) and
/// other gateways (`SMTP:RCPT`, `following RCPT command`, `RCPT TO response`).
static COMMAND_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?P<rcpt>(?-u:\b)(?:after|in reply to|our|following|to) rcpt(?-u:\b)|>>> ?rcpt(?-u:\b)|(?-u:\b)smtp: ?rcpt(?-u:\b)|(?-u:\b)rcpt to(?::<[^>]*>)? (?:response|command)|does not like recipient|(?-u:\b)rejected recipient(?-u:\b))|(?P<data>(?-u:\b)(?:after|in reply to|our|following|to) (?:end of |final )?data(?-u:\b)|>>> ?data(?-u:\b)|(?-u:\b)smtp: ?data(?-u:\b)|(?-u:\b)end of data(?-u:\b)|\(data\))|(?P<mail>(?-u:\b)(?:after|in reply to|our|following|to) mail from(?-u:\b)|>>> ?mail from(?-u:\b)|(?-u:\b)smtp: ?mail(?-u:\b)|sender was rejected)|(?P<conn>after initial connection|refused to talk to me|(?-u:\b)in reply to (?:the )?(?:initial )?greeting(?-u:\b))",
    )
    .expect("the pattern is valid")
});

/// The SMTP command a failure answered, when the diagnostic says (`RCPT`, `DATA`, `MAIL`, `CONN`):
/// the last mention wins, as transcripts end with the command that failed.
pub fn command_in(text: &str) -> Option<&'static str> {
    // Only the last mention counts: the matches are found without groups (the fast search), and
    // the groups are read for that one match alone.
    let last = COMMAND_RE.find_iter(text).last()?;
    let c = COMMAND_RE.captures_at(text, last.start())?;
    if c.name("rcpt").is_some() {
        Some("RCPT")
    } else if c.name("data").is_some() {
        Some("DATA")
    } else if c.name("mail").is_some() {
        Some("MAIL")
    } else if c.name("conn").is_some() {
        Some("CONN")
    } else {
        None
    }
}

fn status_meaning(subject: u8, detail: u16) -> Option<&'static str> {
    Some(match (subject, detail) {
        (0, 0) => "other undefined status",
        (1, 0) => "other address status",
        (1, 1) => "bad destination mailbox address",
        (1, 2) => "bad destination system address",
        (1, 3) => "bad destination mailbox address syntax",
        (1, 4) => "destination mailbox address ambiguous",
        (1, 5) => "destination address valid",
        (1, 6) => "destination mailbox has moved, no forwarding address",
        (1, 7) => "bad sender's mailbox address syntax",
        (1, 8) => "bad sender's system address",
        (1, 9) => "message relayed to non-compliant mailer",
        (1, 10) => "recipient address has null MX",
        (2, 0) => "other or undefined mailbox status",
        (2, 1) => "mailbox disabled, not accepting messages",
        (2, 2) => "mailbox full",
        (2, 3) => "message length exceeds administrative limit",
        (2, 4) => "mailing list expansion problem",
        (3, 0) => "other or undefined mail system status",
        (3, 1) => "mail system full",
        (3, 2) => "system not accepting network messages",
        (3, 3) => "system not capable of selected features",
        (3, 4) => "message too big for system",
        (3, 5) => "system incorrectly configured",
        (3, 6) => "requested priority was changed",
        (4, 0) => "other or undefined network or routing status",
        (4, 1) => "no answer from host",
        (4, 2) => "bad connection",
        (4, 3) => "directory server failure",
        (4, 4) => "unable to route",
        (4, 5) => "mail system congestion",
        (4, 6) => "routing loop detected",
        (4, 7) => "delivery time expired",
        (4, 8) => "too many hops",
        (5, 0) => "other or undefined protocol status",
        (5, 1) => "invalid command",
        (5, 2) => "syntax error",
        (5, 3) => "too many recipients",
        (5, 4) => "invalid command arguments",
        (5, 5) => "wrong protocol version",
        (5, 6) => "authentication exchange line is too long",
        (6, 0) => "other or undefined media error",
        (6, 1) => "media not supported",
        (6, 2) => "conversion required and prohibited",
        (6, 3) => "conversion required but not supported",
        (6, 4) => "conversion with loss performed",
        (6, 5) => "conversion failed",
        (6, 6) => "message content not available",
        (6, 7) => "non-ASCII addresses not permitted for that sender/recipient",
        (6, 8) => "UTF-8 string reply is required, but not permitted by the SMTP client",
        (6, 9) => "UTF-8 header message cannot be transferred to one or more recipients",
        (6, 10) => "message contains an invalid header",
        (7, 0) => "other or undefined security status",
        (7, 1) => "delivery not authorized, message refused",
        (7, 2) => "mailing list expansion prohibited",
        (7, 3) => "security conversion required but not possible",
        (7, 4) => "security features not supported",
        (7, 5) => "cryptographic failure",
        (7, 6) => "cryptographic algorithm not supported",
        (7, 7) => "message integrity failure",
        (7, 8) => "authentication credentials invalid",
        (7, 9) => "authentication mechanism is too weak",
        (7, 10) => "encryption needed",
        (7, 11) => "encryption required for requested authentication mechanism",
        (7, 12) => "a password transition is needed",
        (7, 13) => "user account disabled",
        (7, 14) => "trust relationship required",
        (7, 15) => "priority level is too low",
        (7, 16) => "message is too big for the specified priority",
        (7, 17) => "mailbox owner has changed",
        (7, 18) => "domain owner has changed",
        (7, 19) => "RRVS test cannot be completed",
        (7, 20) => "no passing DKIM signature found",
        (7, 21) => "no acceptable DKIM signature found",
        (7, 22) => "no valid author-matched DKIM signature found",
        (7, 23) => "SPF validation failed",
        (7, 24) => "SPF validation error",
        (7, 25) => "reverse DNS validation failed",
        (7, 26) => "multiple authentication checks failed",
        (7, 27) => "sender address has null MX",
        (7, 28) => "mail flood detected",
        (7, 29) => "ARC validation failure",
        (7, 30) => "REQUIRETLS support required",
        _ => return None,
    })
}

fn reply_meaning(code: u16) -> Option<&'static str> {
    Some(match code {
        211 => "system status, or system help reply",
        214 => "help message",
        220 => "service ready",
        221 => "service closing transmission channel",
        250 => "requested mail action okay, completed",
        251 => "user not local; will forward",
        252 => "cannot VRFY user, but will accept message and attempt delivery",
        354 => "start mail input",
        421 => "service not available, closing transmission channel",
        450 => "requested mail action not taken: mailbox unavailable",
        451 => "requested action aborted: local error in processing",
        452 => "requested action not taken: insufficient system storage",
        454 => "TLS not available due to temporary reason",
        455 => "server unable to accommodate parameters",
        500 => "syntax error, command unrecognized",
        501 => "syntax error in parameters or arguments",
        502 => "command not implemented",
        503 => "bad sequence of commands",
        504 => "command parameter not implemented",
        521 => "host does not accept mail",
        530 => "authentication or STARTTLS required",
        534 => "authentication mechanism is too weak",
        535 => "authentication credentials invalid",
        550 => "requested action not taken: mailbox unavailable",
        551 => "user not local; please try another path",
        552 => "requested mail action aborted: exceeded storage allocation",
        553 => "requested action not taken: mailbox name not allowed",
        554 => "transaction failed",
        555 => "MAIL FROM/RCPT TO parameters not recognized or not implemented",
        556 => "domain does not accept mail",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn st(s: &str) -> Option<String> {
        find_status(s).map(|c| c.to_string())
    }

    fn rc(s: &str) -> Option<u16> {
        find_reply(s).map(|c| c.0)
    }

    #[test]
    fn parses_status_fields() {
        assert_eq!(
            StatusCode::parse("5.1.1").map(|c| c.to_string()),
            Some("5.1.1".into())
        );
        assert_eq!(
            StatusCode::parse(" 4.4.7 (delivery expired)").map(|c| c.detail),
            Some(7)
        );
        assert_eq!(StatusCode::parse("5.1.10").map(|c| c.detail), Some(10));
        assert_eq!(StatusCode::parse("5.7.509").map(|c| c.detail), Some(509));
        assert!(StatusCode::parse("3.1.1").is_none());
        assert!(StatusCode::parse("5.8.1").is_none());
        assert!(StatusCode::parse("5.1.1000").is_none());
        assert!(StatusCode::parse("5.1").is_none());
        assert!(StatusCode::parse("5.1.1.1").is_none());
        assert!(StatusCode::parse("").is_none());
        assert!(StatusCode::parse("x.1.1").is_none());
    }

    #[test]
    fn finds_status_in_text() {
        assert_eq!(
            st("550 5.1.1 <a@example.com>: user unknown"),
            Some("5.1.1".into())
        );
        assert_eq!(st("550-5.7.26 unauthenticated"), Some("5.7.26".into()));
        assert_eq!(st("refused (#5.1.1)"), Some("5.1.1".into()));
        assert_eq!(st("status 4.2.2."), Some("4.2.2".into()));
        assert_eq!(st("'5.2.2 mailbox full'"), Some("5.2.2".into()));
    }

    #[test]
    fn ignores_numbers_that_are_not_codes() {
        assert_eq!(st("connect to 192.0.2.1 failed"), None);
        assert_eq!(st("from 10.5.1.1 refused"), None);
        assert_eq!(st("running v1.5.1.2"), None);
        assert_eq!(st("code 5.1.1.1 here"), None);
        assert_eq!(st("Postfix version 2.5.1"), None);
        assert_eq!(st("dated 2.5.2024"), None);
        assert_eq!(st("ref 4.16.55.1"), None);
        assert_eq!(st("host 203.0.113.225 said"), None);
        assert_eq!(st("x5.1.1"), None);
    }

    #[test]
    fn specific_code_beats_generic() {
        assert_eq!(st("5.0.0 then 5.1.1 user unknown"), Some("5.1.1".into()));
        assert_eq!(st("failed 5.0.0"), Some("5.0.0".into()));
    }

    #[test]
    fn reply_codes_in_their_places() {
        assert_eq!(rc("550 5.1.1 user unknown"), Some(550));
        assert_eq!(
            rc("host mx.example.com[192.0.2.1] said: 552-5.2.2 full"),
            Some(552)
        );
        assert_eq!(rc("<<< 550 no such user"), Some(550));
        assert_eq!(rc("first line\n  451 try later"), Some(451));
        assert_eq!(rc("returned -> 550 Unknown user"), Some(550));
        assert_eq!(
            rc("SMTP error from remote mail server after RCPT TO:<a@example.com>: 550 no"),
            Some(550)
        );
    }

    #[test]
    fn ignores_other_three_digit_numbers() {
        assert_eq!(rc("the message was 550 bytes long"), None);
        assert_eq!(rc("connect to 192.0.2.1 port 25"), None);
        assert_eq!(rc("5502 is too long"), None);
        assert_eq!(rc("699 is not a code"), None);
        assert_eq!(rc("said: 580 nope"), None);
    }

    #[test]
    fn reply_codes_in_more_places() {
        // Beside an enhanced code of the same class, anywhere.
        assert_eq!(
            rc(
                "mx.example.net [192.0.2.3] did not like our RCPT TO: 550 5.7.26 <a@example.net>: no"
            ),
            Some(550)
        );
        assert_eq!(rc("see [554 5.4.6 hop count exceeded]"), Some(554));
        assert_eq!(rc("220-mx.example.org 421 4.2.1 try later"), Some(421));
        // After a colon.
        assert_eq!(
            rc("gateway.example.org failed with: 550 <a@example.org> unknown"),
            Some(550)
        );
        assert_eq!(
            rc("mx.example.org responded with failure: 552 sorry"),
            Some(552)
        );
        assert_eq!(
            rc("<a@example.org>... Deferred: 421 still trying"),
            Some(421)
        );
        assert_eq!(rc("550: 5.2.2 <a@example.org>... full"), Some(550));
        assert_eq!(
            rc("after MAIL FROM:<a@example.org> SIZE=100: 554 5.7.1 refused"),
            Some(554)
        );
        assert_eq!(rc("SMTP:RCPT host 192.0.2.4: 553 5.3.0 no"), Some(553));
        // A multi-line reply whose first line starts with an address.
        assert_eq!(
            rc("after initial connection: 550-192.0.2.5 is listed 550 go away"),
            Some(550)
        );
        // Sendmail's summary first, the server's own reply after the address.
        assert_eq!(rc("554 <a@example.org>... 550 Host unknown"), Some(550));
    }

    #[test]
    fn reply_code_guards() {
        assert_eq!(rc("size: 550 bytes over the limit"), None);
        assert_eq!(rc("waited: 421 seconds"), None);
        assert_eq!(rc("at 10:45:30 the host said nothing"), None);
        assert_eq!(rc("connect to [192.0.2.1]:587: refused"), None);
        assert_eq!(rc("x550 5.1.1 glued"), None);
        assert_eq!(
            rc("550 4.1.1 classes differ"),
            Some(550),
            "still a reply code"
        );
        assert_eq!(
            reply_status_pairs("550 4.1.1 classes differ").count(),
            0,
            "but not a pair"
        );
        // Numbers the RFCs do not define are not reply codes.
        assert_eq!(rc("426 connection timed out"), None);
        assert_eq!(rc("522 5.2.0 over quota"), None);
        assert_eq!(rc("542 rejected"), None);
        assert!(!ReplyCode(255).is_defined());
        assert!(ReplyCode(525).is_defined());
    }

    #[test]
    fn server_pair_is_the_inner_specific_one() {
        let pair = |s: &str| find_server_pair(s).map(|(r, c)| (r.0, c.to_string()));
        assert_eq!(
            pair("554 4.4.7 expired after 2 days <421 4.4.2 timed out>"),
            Some((421, "4.4.2".into())),
            "a class 5 reply beside a class 4 code is no pair; the inner reply is"
        );
        assert_eq!(
            pair("454 4.4.7 expired after 2 days <421 4.4.2 timed out>"),
            Some((421, "4.4.2".into()))
        );
        assert_eq!(
            pair("5.1.0 - unknown address error 550-'5.2.2 <a@example.org>... full'"),
            Some((550, "5.2.2".into()))
        );
        assert_eq!(
            pair("550 5.0.0 refused"),
            None,
            "generic codes are not preferred"
        );
        assert_eq!(pair("250 2.0.0 ok"), None, "success is not a failure reply");
    }

    #[test]
    fn commands_named_in_text() {
        for (text, want) in [
            ("(in reply to RCPT TO command)", Some("RCPT")),
            (
                "SMTP error from remote mail server after RCPT TO:<a@example.org>:",
                Some("RCPT"),
            ),
            (
                "host [192.0.2.1] did not like our RCPT TO: 550 no",
                Some("RCPT"),
            ),
            ("192.0.2.1 does not like recipient.", Some("RCPT")),
            (
                "most progress was RCPT TO response; remote host said",
                Some("RCPT"),
            ),
            ("(in reply to end of DATA command)", Some("DATA")),
            (
                "SMTP error from remote mail server after end of data:",
                Some("DATA"),
            ),
            ("did not like our final DATA: 554 no", Some("DATA")),
            (">>> DATA\n<<< 554 rejected", Some("DATA")),
            ("after MAIL FROM:<a@example.org> SIZE=10:", Some("MAIL")),
            (
                "Connected to 192.0.2.1 but sender was rejected.",
                Some("MAIL"),
            ),
            (
                "SMTP error from remote mail server after initial connection:",
                Some("CONN"),
            ),
            (
                "host mx.example.org[192.0.2.1] refused to talk to me: 554",
                Some("CONN"),
            ),
            (
                ">>> RCPT To:<a@example.org>\n<<< 250 ok\n>>> DATA\n<<< 554 no",
                Some("DATA"),
            ),
            ("550 user unknown", None),
            ("the data was corrupt", None),
        ] {
            assert_eq!(command_in(text), want, "{text}");
        }
    }

    #[test]
    fn failure_reply_beats_greeting() {
        assert_eq!(rc("220 mx.example.com ready\n554 go away"), Some(554));
        assert_eq!(rc("250 ok"), Some(250));
    }

    #[test]
    fn permanence_and_class() {
        assert_eq!(ReplyCode(550).is_permanent(), Some(true));
        assert_eq!(ReplyCode(421).is_permanent(), Some(false));
        assert_eq!(ReplyCode(250).is_permanent(), None);
        assert_eq!(ReplyCode(452).class(), 4);
        let c = StatusCode::parse("4.2.2");
        assert_eq!(c.and_then(|c| c.is_permanent()), Some(false));
        assert!(StatusCode::parse("5.0.0").is_some_and(|c| c.is_generic()));
        assert!(!StatusCode::parse("5.1.0").is_some_and(|c| c.is_generic()));
    }

    #[test]
    fn meanings() {
        assert_eq!(
            StatusCode::parse("5.1.1").and_then(|c| c.meaning()),
            Some("bad destination mailbox address")
        );
        assert_eq!(
            StatusCode::parse("4.4.7").and_then(|c| c.meaning()),
            Some("delivery time expired")
        );
        assert_eq!(
            ReplyCode(552).meaning(),
            Some("requested mail action aborted: exceeded storage allocation")
        );
        assert_eq!(ReplyCode(599).meaning(), None);
        assert_eq!(ReplyCode::parse("550-5.7.1 no"), Some(ReplyCode(550)));
        assert_eq!(ReplyCode::parse("5501"), None);
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = find_status(&s);
            let _ = find_reply(&s);
            let _ = StatusCode::parse(&s);
            let _ = ReplyCode::parse(&s);
        }

        #[test]
        fn never_panics_on_code_like_text(s in "[0-9. \\-:<>a-z]{0,80}") {
            if let Some(c) = find_status(&s) {
                prop_assert!(matches!(c.class, 2 | 4 | 5));
            }
            if let Some(r) = find_reply(&s) {
                prop_assert!(s.contains(&r.to_string()));
            }
        }
    }
}
