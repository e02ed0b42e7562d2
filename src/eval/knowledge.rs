//! The knowledge measure: how well the classifier agrees with what mail servers and providers are
//! documented to say, independently of any sample of mail.
//!
//! The fact tables (`codes.md`, `mtas.md`, `providers.md`, `languages.md`; markdown, each row with its
//! source) are parsed at run time. Each row becomes one or more bounces built the ways real bounces
//! carry a server's words ([`Envelope`]): an RFC 3464 DSN (the code in `Status`, the words in
//! `Diagnostic-Code`), Postfix's and Exim's free-text reports, and, for `languages.md`, a localized
//! notice. Every bounce goes through the same [`crate::analyze`] (read, then classify) as real mail,
//! and the result is compared with the row: its reason (a row naming several reasons accepts any of
//! them) and whether it is hard.
//!
//! How rows become expectations (the tables define these markers):
//! - a reason column naming TAXONOMY reasons: those reasons are accepted; a word after "not" or
//!   "never" is not one of them (`Not notaccept`);
//! - `(use text)`, "text decides", "classify the diagnostic": the wording alone decides nothing; the
//!   reason is not scored, only that the result is not hard when the row says soft;
//! - `(ESP-local)`: a sending platform's own suppression, not a receiver's verdict: never hard;
//! - `(not a bounce)`: not a failure at all: never hard;
//! - `languages.md` sections whose heading names no reason (delay notices, generic wrappers, subjects,
//!   introductions) carry no cause: the result must not be hard;
//! - hard/soft: the row's `hard?` column when it says `hard` or `soft` plainly, else TAXONOMY
//!   section 4 applied to the accepted reasons and the row's codes (any of them agrees).
//!
//! Rows that are descriptions rather than wording (no quoted fragment), and the labels ESPs attach in
//! their APIs (not text in a bounce), are not built. `codes.md` rows carry codes, not words: their
//! bounces carry the code alone (section 1: the enhanced code with its associated reply code; section
//! 2: the reply code; section 3: the reply code answering the named command); a code the table marks
//! generic, or a reply cell naming several reasons, also accepts `onhold`.
//!
//! A row agrees when every bounce built from it agrees (every envelope, every alternative wording).
//! Rows judged mislabelled are left out through an exclusions file, at most [`MAX_EXCLUDED_PERCENT`]
//! of a table, each with its reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{Ratio, round1};
use crate::classify::{Bounce, BounceType, Classifier, Reason};
use crate::report::ReadOptions;

/// The fact tables, in the order they are reported.
pub const TABLES: [&str; 4] = ["codes", "mtas", "providers", "languages"];

/// The most rows of one table an exclusions file may leave out (percent).
pub const MAX_EXCLUDED_PERCENT: f64 = 3.0;

/// The failed recipient every built bounce names.
pub const RECIPIENT: &str = "nobody@example.net";

/// The envelope sender of the message that bounced.
const SENDER: &str = "sender@example.org";

/// The host that writes the bounce.
const REPORTING_HOST: &str = "mail.example.org";

/// The receiving host, when the row names no provider host.
const REMOTE_HOST: &str = "mx.example.net";

/// The receiving host's address (RFC 5737 documentation range).
const REMOTE_IP: &str = "192.0.2.25";

/// Why the knowledge tables could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// A table file could not be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// The exclusions file is not valid TOML of the expected shape.
    #[error("exclusions file {path}: {message}")]
    Exclusions {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// How a bounce carries a row's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Envelope {
    /// RFC 3464: the code in `Status`, the words in `Diagnostic-Code`.
    Dsn,
    /// Postfix's free-text report: `<rcpt>: host X[ip] said: ... (in reply to RCPT TO command)`.
    Postfix,
    /// Exim's free-text report: `SMTP error from remote mail server after RCPT TO:<rcpt>:`.
    Exim,
    /// qmail's failure notice: `<rcpt>:` then `<ip> does not like recipient.` and `Remote host
    /// said: ...` (qmail-send.c, qmail-remote.c); qmail sends no delay notices.
    Qmail,
    /// Sendmail's plain-text report, without a DSN part: `(reason: ...)` under the failed address,
    /// then the transcript `>>> RCPT To:<rcpt>` / `<<< 550 ...` (savemail.c, usersmtp.c).
    Sendmail,
    /// A notice in the row's language, with its subject and introduction from the same table.
    Localized,
}

impl Envelope {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Envelope::Dsn => "dsn",
            Envelope::Postfix => "postfix",
            Envelope::Exim => "exim",
            Envelope::Qmail => "qmail",
            Envelope::Sendmail => "sendmail",
            Envelope::Localized => "localized",
        }
    }
}

/// The SMTP stage a row's words answer, or the sending MTA's own text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The reply to the connection (the greeting).
    Connect,
    /// The reply to MAIL FROM.
    Mail,
    /// The reply to RCPT TO.
    Rcpt,
    /// The reply after the message data.
    Data,
    /// The sending or delivering MTA's own words (no remote reply).
    Local,
    /// No stage: a bounce that names none (the DSN of `codes.md` section 2).
    Unknown,
}

/// What kind of expectation a row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The row names reasons: the reason is scored.
    Reason,
    /// The words alone decide nothing (`use text`, "text decides").
    UseText,
    /// An ESP's own suppression.
    EspLocal,
    /// Not a failure.
    NotBounce,
    /// A notice that names no cause (delay wording, generic wrappers, subjects, introductions).
    NoCause,
}

/// Whether a row's result should be hard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hardness {
    /// Hard.
    Hard,
    /// Not hard.
    Soft,
    /// Either agrees.
    Either,
    /// Not scored.
    Unknown,
}

/// One alternative wording of a row, with the codes that go with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variant {
    /// The words, placeholders filled in (empty for a code-only row).
    pub words: String,
    /// The SMTP reply code, when the row gives one.
    pub reply: Option<u16>,
    /// The enhanced status code, when the row gives one (`5.1.1`).
    pub status: Option<String>,
    /// The English reply a localized row quotes beside its words.
    pub english: Option<String>,
}

/// One row of a fact table, ready to be built into bounces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The table (`codes`, `mtas`, `providers`, `languages`).
    pub table: &'static str,
    /// The section heading the row sits under.
    pub section: String,
    /// The 1-based line of the row in its file.
    pub line: usize,
    /// The row's first wording fragment as written (or its code), which names it in exclusions.
    pub key: String,
    /// The alternatives.
    pub variants: Vec<Variant>,
    /// The stage the words answer.
    pub stage: Stage,
    /// Whether the bounce is a delay notice (transient codes, a deferral, a delay section).
    pub delayed: bool,
    /// A success code (`codes.md` rows for X.1.5 and the like): a delivery report.
    pub success: bool,
    /// The provider's receiving host, when its section names one.
    pub remote_host: Option<String>,
    /// The language code (`languages.md`).
    pub lang: Option<String>,
    /// For `languages.md`: what the words are (`wording`, `subject`, `introduction`).
    pub role: &'static str,
    /// The envelopes the row is built in.
    pub envelopes: Vec<Envelope>,
    /// The kind of expectation.
    pub category: Category,
    /// The accepted reasons (empty unless `category` is `Reason`).
    pub reasons: Vec<Reason>,
    /// Whether the result should be hard.
    pub hard: Hardness,
}

/// A row left out of the measure, as written in the exclusions file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    /// The table (`codes`, `mtas`, `providers`, `languages`).
    pub table: String,
    /// The row's key: its first wording fragment as written in the table.
    pub key: String,
    /// Why the row is judged mislabelled.
    pub why: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExclusionFile {
    #[serde(default)]
    exclude: Vec<Exclusion>,
}

/// Reads an exclusions file (`[[exclude]]` tables with `table`, `key`, `why`).
pub fn load_exclusions(path: &Path) -> Result<Vec<Exclusion>, KnowledgeError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|cause| KnowledgeError::Io {
        path: shown.clone(),
        cause,
    })?;
    let file: ExclusionFile = toml::from_str(&text).map_err(|e| KnowledgeError::Exclusions {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    Ok(file.exclude)
}

/// Reads and parses every table of the knowledge directory.
pub fn load_dir(dir: &Path) -> Result<Vec<Row>, KnowledgeError> {
    let mut rows = Vec::new();
    for table in TABLES {
        let path = dir.join(format!("{table}.md"));
        let text = std::fs::read_to_string(&path).map_err(|cause| KnowledgeError::Io {
            path: path.display().to_string(),
            cause,
        })?;
        rows.extend(parse_table_file(table, &text));
    }
    Ok(rows)
}

/// The rows of one table file (`table` is its name without `.md`).
pub fn parse_table_file(table: &str, text: &str) -> Vec<Row> {
    let table: &'static str = match TABLES.iter().find(|t| **t == table) {
        Some(t) => t,
        None => return Vec::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut rows = Vec::new();
    let mut section = String::new();
    let mut section_host: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines.get(i).copied().unwrap_or("");
        if let Some(h) = line.strip_prefix("## ") {
            section = h.trim().to_string();
            section_host = None;
        } else if let Some(h) = line.strip_prefix("### ") {
            // A sub-heading keeps the section's provider host.
            if !section.contains(" / ") {
                section = format!(
                    "{} / {}",
                    section.split(" / ").next().unwrap_or(""),
                    h.trim()
                );
            }
        } else if let Some(hosts) = line.strip_prefix("Hosts:") {
            section_host = first_host(hosts);
        } else if line.starts_with('|')
            && lines
                .get(i + 1)
                .is_some_and(|next| next.starts_with("|--") || next.starts_with("| --"))
        {
            let header: Vec<String> = split_cells(line)
                .into_iter()
                .map(|c| c.to_ascii_lowercase())
                .collect();
            let mut j = i + 2;
            let mut previous: Option<Vec<String>> = None;
            while let Some(row_line) = lines.get(j).filter(|l| l.starts_with('|')) {
                let cells = split_cells(row_line);
                let ctx = RowContext {
                    table,
                    section: &section,
                    line: j + 1,
                    host: section_host.as_deref(),
                };
                rows.extend(parse_row(&ctx, &header, &cells, previous.as_deref()));
                previous = Some(cells);
                j += 1;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    rows
}

struct RowContext<'a> {
    table: &'static str,
    section: &'a str,
    line: usize,
    host: Option<&'a str>,
}

/// The cells of a table line, split on `|` outside backticks (`\|` is a literal bar).
fn split_cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut in_code = false;
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '`' => {
                in_code = !in_code;
                cell.push(c);
            }
            '|' if !in_code => {
                cells.push(cell.trim().to_string());
                cell.clear();
            }
            _ => cell.push(c),
        }
    }
    cells.push(cell.trim().to_string());
    cells
}

/// The first usable host name in a `Hosts:` line: backticked, wildcards and placeholders filled.
fn first_host(line: &str) -> Option<String> {
    backticked(line).into_iter().find_map(|(_, h)| {
        let h = h
            .replace('*', "eu")
            .replace("<tenant-domain>", "example-net")
            .replace("<dc>", "ne1");
        let h = h.trim_start_matches('.').trim().to_ascii_lowercase();
        let valid = h.contains('.')
            && !h.contains(['<', '>', ' ', '@', '/'])
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        valid.then_some(h)
    })
}

/// The backticked spans of a cell, each with the text between it and the previous span.
fn backticked(cell: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = cell;
    let mut between = String::new();
    while let Some(start) = rest.find('`') {
        between.push_str(rest.get(..start).unwrap_or(""));
        let after = rest.get(start + 1..).unwrap_or("");
        let Some(end) = after.find('`') else {
            break;
        };
        out.push((
            std::mem::take(&mut between),
            after.get(..end).unwrap_or("").to_string(),
        ));
        rest = after.get(end + 1..).unwrap_or("");
    }
    out
}

/// The column whose header starts with one of `names`.
fn column(header: &[String], names: &[&str]) -> Option<usize> {
    header
        .iter()
        .position(|h| names.iter().any(|n| h.starts_with(n)))
}

fn parse_row(
    ctx: &RowContext,
    header: &[String],
    cells: &[String],
    previous: Option<&[String]>,
) -> Vec<Row> {
    let cell = |i: Option<usize>| i.and_then(|i| cells.get(i)).map_or("", String::as_str);
    match ctx.table {
        "codes" => parse_codes_row(ctx, header, cells, previous),
        "languages" => {
            let lang = cell(column(header, &["language"]));
            let (role, words_col) = if let Some(c) = column(header, &["wording"]) {
                ("wording", c)
            } else if let Some(c) = column(header, &["subject"]) {
                ("subject", c)
            } else if let Some(c) = column(header, &["introduction"]) {
                ("introduction", c)
            } else {
                return Vec::new();
            };
            parse_language_row(ctx, lang, role, cells.get(words_col).map_or("", |s| s))
                .into_iter()
                .collect()
        }
        _ => {
            let Some(words_col) = column(header, &["wording"]) else {
                return Vec::new();
            };
            let words = cell(Some(words_col));
            let codes = cell(column(header, &["smtp reply"]));
            let situation = cell(column(header, &["situation"]));
            let reason = cell(column(header, &["our reason"]));
            let hard = cell(column(header, &["hard?"]));
            parse_fact_row(ctx, words, codes, situation, reason, hard)
                .into_iter()
                .collect()
        }
    }
}

/// Placeholders in wording, and what a bounce would say there.
static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<\s*([^<>]{1,40}?)\s*>").expect("fixed pattern"));

fn fill_placeholders(words: &str) -> String {
    fill_placeholders_for(words, false)
}

/// [`fill_placeholders`] for a row about the envelope sender (its only reason is `rejected`): an
/// address placeholder there is the sender's address.
fn fill_placeholders_for(words: &str, sender_side: bool) -> String {
    PLACEHOLDER
        .replace_all(words, |c: &regex::Captures| {
            let raw = c.get(1).map_or("", |m| m.as_str()).trim();
            // Control characters written as `<LF>`, `<CR>` are the literal text.
            if raw.len() <= 4 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
                return format!("<{raw}>");
            }
            let before = c
                .get(0)
                .map_or("", |m| words.get(..m.start()).unwrap_or(""));
            let name = raw.to_ascii_lowercase();
            if name == "cmd" && (before.ends_with("response to ") || before.ends_with("after ")) {
                return format!("RCPT TO:<{RECIPIENT}>");
            }
            match name.as_str() {
                "addr" | "x" if sender_side => SENDER.to_string(),
                "rcpt" | "addr" | "x" | "a" | "to" | "recipient" | "rcpt domain" => {
                    RECIPIENT.to_string()
                }
                "b" | "from" | "sender" => SENDER.to_string(),
                "user" | "u" | "local" | "login" => "nobody".to_string(),
                "ip" => REMOTE_IP.to_string(),
                "d" | "domain" => "example.net".to_string(),
                "h" | "host" | "mx" | "me" | "server" | "fqdn" => REMOTE_HOST.to_string(),
                "n" | "m" | "p" => "5".to_string(),
                "id" => "4XyZ12".to_string(),
                "dnsbl" | "rbl" | "rhsbl" | "uribl" | "list" => "dnsbl.example.net".to_string(),
                "virus" => "Eicar-Test-Signature".to_string(),
                "path" | "f" | "spool" | "file" => "/var/mail/nobody".to_string(),
                "cmd" => "/usr/bin/procmail".to_string(),
                "time" => "2026-11-02 10:00:00 UTC".to_string(),
                "range" => "2001:db8::/48".to_string(),
                "t" | "type/name" => "application/x-msdownload".to_string(),
                _ => "example".to_string(),
            }
        })
        .into_owned()
}

/// Trims the ellipses that stand for omitted text at either end of a fragment.
fn trim_ellipses(s: &str) -> &str {
    s.trim()
        .trim_start_matches("...")
        .trim_start_matches('…')
        .trim_end_matches("...")
        .trim_end_matches('…')
        .trim()
}

/// The alternative wordings of a wording cell: backticked fragments; `+` or an opening bracket
/// between two joins them into one reply, `/`, `,`, "or", "also" make the next an alternative, any
/// other prose ends the list.
fn wording_variants(cell: &str) -> Vec<String> {
    let mut variants: Vec<String> = Vec::new();
    for (between, raw) in backticked(cell) {
        let fragment = trim_ellipses(&raw).to_string();
        if fragment.is_empty() || !has_words(&fragment) {
            continue;
        }
        let sep = between.trim().to_ascii_lowercase();
        match variants.last_mut() {
            None => variants.push(fragment),
            Some(last) => {
                if sep.contains('+') || sep == "(" || sep.is_empty() {
                    last.push(' ');
                    last.push_str(&fragment);
                } else if sep == "/"
                    || sep == ","
                    || sep.contains("also")
                    || sep == "or"
                    || sep == "(or"
                {
                    let complete = complete_from(last, raw.trim(), &fragment);
                    variants.push(complete);
                } else {
                    break;
                }
            }
        }
    }
    variants
}

/// Whether a fragment has words of its own once placeholders and codes are taken out.
fn has_words(fragment: &str) -> bool {
    static CODES: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"#?[245X]\.[0-9]{1,3}\.[0-9]{1,3}|\b[245][0-9][0-9]\b").expect("fixed")
    });
    let text = PLACEHOLDER.replace_all(fragment, " ");
    let text = CODES.replace_all(&text, " ");
    text.split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 2)
        .count()
        >= 1
}

/// An alternative written as a continuation of the previous one: `... and a banned keyword.` takes
/// the previous wording up to the continuation's first word; `Bounce, id=...` takes the previous
/// wording after the continuation's last word.
fn complete_from(previous: &str, raw: &str, fragment: &str) -> String {
    let starts = raw.starts_with("...") || raw.starts_with('…');
    let ends = raw.ends_with("...") || raw.ends_with('…');
    if starts && let Some(first) = fragment.split_whitespace().next() {
        let needle = format!(" {first} ");
        if let Some(pos) = previous.rfind(&needle) {
            return format!("{} {fragment}", previous.get(..pos).unwrap_or(""));
        }
    }
    if ends
        && let Some(last) = fragment.split_whitespace().last()
        && let Some(pos) = previous.find(last)
    {
        return format!(
            "{fragment}{}",
            previous.get(pos + last.len()..).unwrap_or("")
        );
    }
    fragment.to_string()
}

/// The first SMTP reply codes of a code cell, one per `/`-separated alternative.
fn reply_codes_in(cell: &str) -> Vec<Option<u16>> {
    static REPLY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:^|[^0-9.#])([245][0-5][0-9])(?:$|[^0-9.])").expect("fixed")
    });
    cell.split(" / ")
        .map(|part| {
            REPLY
                .captures(part)
                .and_then(|c| c.get(1))
                .and_then(|m| m.as_str().parse().ok())
        })
        .collect()
}

/// The first enhanced status code of a code cell, one per `/`-separated alternative.
fn status_codes_in(cell: &str) -> Vec<Option<String>> {
    static STATUS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:^|[^0-9.])([245X])\.([0-9]{1,3})\.([0-9]{1,3})(?:$|[^0-9])").expect("fixed")
    });
    cell.split(" / ")
        .map(|part| {
            STATUS.captures(part).map(|c| {
                let class = c.get(1).map_or("5", |m| m.as_str());
                let class = if class == "X" { "5" } else { class };
                format!(
                    "{class}.{}.{}",
                    c.get(2).map_or("0", |m| m.as_str()),
                    c.get(3).map_or("0", |m| m.as_str())
                )
            })
        })
        .collect()
}

/// A reply code written at the start of the words themselves (`511 sorry, ...`).
fn leading_reply(words: &str) -> Option<u16> {
    let head = words.get(..3)?;
    let after = words.get(3..4).unwrap_or(" ");
    (head.bytes().all(|b| b.is_ascii_digit())
        && matches!(head.as_bytes().first(), Some(b'2' | b'4' | b'5'))
        && (after == " " || after == "-"))
        .then(|| head.parse().ok())
        .flatten()
}

/// The TAXONOMY reasons named in a reason cell, leaving out a reason after "not"/"never".
fn reasons_in(cell: &str) -> Vec<Reason> {
    static WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[A-Za-z]+").expect("fixed"));
    let mut out = Vec::new();
    let mut previous = String::new();
    for m in WORD.find_iter(cell) {
        let word = m.as_str();
        if let Ok(reason) = word.parse::<Reason>()
            && word.bytes().all(|b| b.is_ascii_lowercase())
            && !matches!(previous.as_str(), "not" | "never")
            && !out.contains(&reason)
        {
            out.push(reason);
        }
        previous = word.to_ascii_lowercase();
    }
    out
}

/// The category a reason cell's markers give.
fn category_of(cell: &str, reasons: &[Reason]) -> Category {
    let lower = cell.to_ascii_lowercase();
    if lower.contains("esp-local") {
        Category::EspLocal
    } else if lower.contains("not a bounce") {
        Category::NotBounce
    } else if lower.contains("text decides")
        || lower.contains("use text")
        || lower.contains("classify the")
        || lower.contains("only if")
        || reasons.is_empty()
    {
        Category::UseText
    } else {
        Category::Reason
    }
}

/// The hard/soft expectation: the `hard?` column when plain, else TAXONOMY over the reasons.
fn hardness(column: &str, reasons: &[Reason], permanent: bool, category: Category) -> Hardness {
    let c = column.trim().to_ascii_lowercase();
    if c == "hard" {
        return Hardness::Hard;
    }
    if c == "soft" || c.starts_with("soft ") || c.starts_with("soft(") {
        return Hardness::Soft;
    }
    match category {
        Category::EspLocal | Category::NotBounce | Category::NoCause => return Hardness::Soft,
        Category::UseText => return Hardness::Unknown,
        Category::Reason => {}
    }
    let kinds: Vec<bool> = reasons
        .iter()
        .map(|&r| BounceType::of(r, Some(permanent)) == BounceType::Hard)
        .collect();
    match (kinds.iter().any(|&h| h), kinds.iter().all(|&h| h)) {
        (_, true) if !kinds.is_empty() => Hardness::Hard,
        (true, false) => Hardness::Either,
        _ => Hardness::Soft,
    }
}

fn stage_of(situation: &str, codes: &str, has_reply: bool) -> Stage {
    let s = situation.to_ascii_lowercase();
    let c = codes.to_ascii_lowercase();
    let local_words = [
        "sender",
        "local",
        "queue",
        "pipe",
        "exit",
        "appendfile",
        "resolver",
        "mda",
        "legacy ndr",
        "exchange ndr",
        "exchange sending",
        "exo sending",
    ];
    let receiving = s.contains("receiver")
        || s.contains("lmtp")
        || s.contains("milter")
        || s.contains("filter")
        || s.contains("policy")
        || s.contains("greylist")
        || s.contains("connector");
    if !s.is_empty() && !receiving && local_words.iter().any(|w| s.contains(w)) {
        return Stage::Local;
    }
    if s.is_empty()
        && (c.contains("bounce")
            || c.contains("sender-side")
            || c.contains("deferral")
            || !has_reply)
    {
        return Stage::Local;
    }
    if s.contains("connect") {
        Stage::Connect
    } else if s.contains("rcpt") {
        Stage::Rcpt
    } else if s
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w == "mail")
        && !s.contains("mail flow")
    {
        Stage::Mail
    } else if s.contains("data")
        || s.contains("bdat")
        || s.contains("content filter")
        || s.contains("milter")
    {
        Stage::Data
    } else {
        Stage::Rcpt
    }
}

fn parse_fact_row(
    ctx: &RowContext,
    words: &str,
    codes: &str,
    situation: &str,
    reason: &str,
    hard: &str,
) -> Option<Row> {
    // The labels ESPs attach in their APIs are not text in a bounce: only rows that quote what the
    // ESP writes (their wording cell starts with the quoted text) are built.
    if ctx.section.starts_with("ESP") && !words.trim_start().starts_with('`') {
        return None;
    }
    let fragments = wording_variants(words);
    let key = fragments.first()?.clone();
    let sender_side = reasons_in(reason) == [Reason::Rejected];
    let replies = reply_codes_in(codes);
    let statuses = status_codes_in(codes);
    let paired = replies.len() == fragments.len() && fragments.len() > 1;
    let mut variants = Vec::new();
    for (k, fragment) in fragments.iter().enumerate() {
        let pick = if paired { k } else { 0 };
        let words = fill_placeholders_for(fragment, sender_side);
        let reply = leading_reply(&words).or_else(|| replies.get(pick).copied().flatten());
        let status = statuses
            .get(pick)
            .cloned()
            .flatten()
            .or_else(|| statuses.iter().flatten().next().cloned());
        variants.push(Variant {
            words,
            reply,
            status,
            english: None,
        });
    }
    let first = variants.first()?;
    let transient = transient_codes(first.reply, first.status.as_deref())
        || (first.reply.is_none()
            && first.status.is_none()
            && codes.to_ascii_lowercase().contains("deferral"));
    let has_reply = variants.iter().any(|v| v.reply.is_some());
    let stage = stage_of(situation, codes, has_reply);
    let reasons = reasons_in(reason);
    let category = category_of(reason, &reasons);
    let hard = hardness(hard, &reasons, !transient, category);
    // A row the table calls hard despite a transient code is what an MTA reports when it gives up on
    // that cause: a final failure. Other transient rows are delay notices.
    let transient = transient && hard != Hardness::Hard;
    Some(Row {
        table: ctx.table,
        section: ctx.section.to_string(),
        line: ctx.line,
        key,
        variants,
        stage,
        delayed: transient,
        success: false,
        remote_host: ctx.host.map(str::to_string),
        lang: None,
        role: "wording",
        envelopes: [Envelope::Dsn]
            .into_iter()
            .chain(free_text(transient))
            .collect(),
        reasons: if category == Category::Reason {
            reasons
        } else {
            Vec::new()
        },
        category,
        hard,
    })
}

/// The free-text reports a failure is built into: qmail writes no delay notice.
fn free_text(delayed: bool) -> Vec<Envelope> {
    let mut out = vec![Envelope::Postfix, Envelope::Exim, Envelope::Sendmail];
    if !delayed {
        out.push(Envelope::Qmail);
    }
    out
}

/// Whether the codes say transient: a 4.x.x status, else a 4xx reply.
fn transient_codes(reply: Option<u16>, status: Option<&str>) -> bool {
    match status {
        Some(s) => s.starts_with('4'),
        None => reply.is_some_and(|r| r / 100 == 4),
    }
}

fn parse_codes_row(
    ctx: &RowContext,
    header: &[String],
    cells: &[String],
    previous: Option<&[String]>,
) -> Vec<Row> {
    let first = header.first().map_or("", String::as_str);
    let cell = |i: usize| cells.get(i).map_or("", String::as_str);
    if first == "code" && ctx.section.starts_with("1.") {
        // Section 1: one enhanced code per row.
        let code = cell(0);
        let Some(detail) = code.strip_prefix("X.") else {
            return Vec::new();
        };
        let reason_col = column(header, &["likely reason"]).unwrap_or(3);
        let generic_col = column(header, &["generic"]).unwrap_or(4);
        let basic_col = column(header, &["basic code"]).unwrap_or(2);
        let reasons = reasons_in(cell(reason_col));
        if reasons.is_empty() {
            return Vec::new();
        }
        let generic = !cell(generic_col)
            .trim()
            .to_ascii_lowercase()
            .starts_with("no");
        let success = reasons.first() == Some(&Reason::Delivered);
        let basics: Vec<u16> = reply_list(cell(basic_col));
        // A mail-system reply (55x, 45x) carries an enhanced code in real replies; a syntax reply
        // (50x) beside an unrelated code would say something the code does not.
        let pick = |class: u16| {
            basics
                .iter()
                .copied()
                .find(|r| r / 100 == class && (r / 10) % 10 == 5)
                .or_else(|| basics.iter().copied().find(|r| r / 100 == class))
        };
        let (class, reply) = if success {
            (2, pick(2).or(Some(250)))
        } else if let Some(r) = pick(5) {
            (5, Some(r))
        } else if let Some(r) = pick(4) {
            (4, Some(r))
        } else {
            (5, Some(550))
        };
        let status = format!("{class}.{detail}");
        let stage = code_stage(detail);
        let mut accepted = reasons.clone();
        if generic && !accepted.contains(&Reason::Onhold) {
            accepted.push(Reason::Onhold);
        }
        let hard = hardness("", &accepted, class == 5, Category::Reason);
        return vec![Row {
            table: ctx.table,
            section: ctx.section.to_string(),
            line: ctx.line,
            key: code.to_string(),
            variants: vec![Variant {
                words: String::new(),
                reply,
                status: Some(status),
                english: None,
            }],
            stage,
            delayed: class == 4,
            success,
            remote_host: None,
            lang: None,
            role: "wording",
            // A success is reported in a DSN only; the free-text reports are failure notices.
            envelopes: if success {
                vec![Envelope::Dsn]
            } else {
                [Envelope::Dsn]
                    .into_iter()
                    .chain(free_text(class == 4))
                    .collect()
            },
            category: Category::Reason,
            reasons: accepted,
            hard,
        }];
    }
    if first == "reply" && header.len() == 3 {
        // Section 2: the reply code on its own.
        let Some(reply) = reply_list(cell(0)).first().copied() else {
            return Vec::new();
        };
        let reasons = reasons_in(cell(2));
        let category = category_of(cell(2), &reasons);
        if category != Category::Reason {
            return Vec::new();
        }
        let mut accepted = reasons;
        if accepted.len() > 1 && !accepted.contains(&Reason::Onhold) {
            accepted.push(Reason::Onhold);
        }
        let hard = hardness(cell(2), &accepted, reply / 100 == 5, Category::Reason);
        return vec![Row {
            table: ctx.table,
            section: ctx.section.to_string(),
            line: ctx.line,
            key: reply.to_string(),
            variants: vec![Variant {
                words: String::new(),
                reply: Some(reply),
                status: None,
                english: None,
            }],
            stage: Stage::Unknown,
            delayed: reply / 100 == 4,
            success: false,
            remote_host: None,
            lang: None,
            role: "wording",
            envelopes: vec![Envelope::Dsn],
            category: Category::Reason,
            reasons: accepted,
            hard,
        }];
    }
    if first == "reply" && header.len() > 3 {
        // Section 3: the reply code against each command it answered.
        let Some(reply) = reply_list(cell(0)).first().copied() else {
            return Vec::new();
        };
        let _ = previous;
        let mut out = Vec::new();
        let mut last_text = String::new();
        for (col, name) in header.iter().enumerate().skip(1) {
            let mut text = cell(col).to_string();
            if text.trim() == "—" || text.trim() == "-" || text.trim().is_empty() {
                last_text.clear();
                continue;
            }
            if text.trim().eq_ignore_ascii_case("same") {
                text = last_text.clone();
            }
            last_text = text.clone();
            let stage = if name.starts_with("greeting") {
                Stage::Connect
            } else if name.starts_with("ehlo") {
                // No envelope names the HELO stage the way MTAs write it: left out.
                continue;
            } else if name.starts_with("mail") {
                Stage::Mail
            } else if name.starts_with("rcpt") {
                Stage::Rcpt
            } else if name.starts_with("data command") {
                // Postfix writes "DATA command", Exim "after DATA": both name the command only.
                Stage::Data
            } else if name.starts_with("after end") {
                Stage::Data
            } else {
                continue;
            };
            let reasons = reasons_in(&text);
            if reasons.is_empty() {
                continue;
            }
            let mut accepted = reasons;
            if accepted.len() > 1 && !accepted.contains(&Reason::Onhold) {
                accepted.push(Reason::Onhold);
            }
            let hard = hardness(&text, &accepted, reply / 100 == 5, Category::Reason);
            out.push(Row {
                table: ctx.table,
                section: ctx.section.to_string(),
                line: ctx.line,
                key: format!("{reply} at {name}"),
                variants: vec![Variant {
                    words: String::new(),
                    reply: Some(reply),
                    status: None,
                    english: None,
                }],
                stage,
                delayed: reply / 100 == 4,
                success: false,
                remote_host: None,
                lang: None,
                role: "wording",
                envelopes: free_text(reply / 100 == 4),
                category: Category::Reason,
                reasons: accepted,
                hard,
            });
        }
        return out;
    }
    Vec::new()
}

/// The stage a code-only bounce names for an enhanced code: content and authentication codes answer
/// the message data, sender codes MAIL FROM, the rest RCPT TO.
fn code_stage(detail: &str) -> Stage {
    let mut parts = detail.split('.');
    let subject: u16 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let detail: u16 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    match (subject, detail) {
        (1, 7) | (1, 8) | (7, 27) => Stage::Mail,
        (6, _) | (7, 20..=26) | (7, 29) | (3, 4) => Stage::Data,
        _ => Stage::Rcpt,
    }
}

/// Three-digit codes listed in a cell (`451, 550`, `5XX`: none).
fn reply_list(cell: &str) -> Vec<u16> {
    static CODE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\b([245][0-5][0-9])\b").expect("fixed"));
    CODE.captures_iter(cell)
        .filter_map(|c| c.get(1).and_then(|m| m.as_str().parse().ok()))
        .collect()
}

/// Double-quoted fragments (straight or curly quotes), with the text before each.
fn quoted(cell: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut between = String::new();
    // The quote that closes the open fragment: `"` closes `"`, `”` closes `“` (inner curly quotes
    // inside a straight-quoted fragment are text).
    let mut current: Option<(char, String)> = None;
    for c in cell.chars() {
        match current.as_mut() {
            None if c == '"' => current = Some(('"', String::new())),
            None if c == '“' => current = Some(('”', String::new())),
            None => between.push(c),
            Some((close, s)) if c == *close => {
                out.push((std::mem::take(&mut between), std::mem::take(s)));
                current = None;
            }
            Some((_, s)) => s.push(c),
        }
    }
    out
}

fn parse_language_row(ctx: &RowContext, lang: &str, role: &'static str, cell: &str) -> Option<Row> {
    let lang = lang.trim();
    if lang.contains("gloss") || lang.contains("all") {
        // Explanations of English text, not bounce wording; "(all)" rows say none was found.
        return None;
    }
    let lang_code = lang
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_string();
    let lower = cell.to_ascii_lowercase();
    let keyword_only = lower.contains("keyword list") && !cell.contains('"');
    let mut fragments: Vec<String> = Vec::new();
    for (between, q) in quoted(cell) {
        let q = trim_ellipses(&q).trim_end_matches('…').trim().to_string();
        if q.is_empty() {
            continue;
        }
        let sep = between.trim();
        if fragments.is_empty()
            || sep == "/"
            || sep == ";"
            || sep.ends_with("body")
            || sep.ends_with("subject")
        {
            fragments.push(q);
        }
    }
    // English replies quoted beside the words: `550 5.1.1 ...`.
    let english = backticked(cell)
        .into_iter()
        .map(|(_, f)| f)
        .find(|f| leading_reply(f).is_some() || f.contains("Remote Server returned"));
    if fragments.is_empty() {
        // A keyword list gives a pattern, not a sentence: its words stand as written.
        let words: Vec<String> = backticked(cell)
            .into_iter()
            .map(|(_, f)| f)
            .filter(|f| leading_reply(f).is_none() && !f.contains('\\') && !f.contains('('))
            .collect();
        if keyword_only || words.is_empty() {
            return None;
        }
        fragments = words;
    }
    // The section heading names the reasons; a row's own "→ `reason`" overrides them.
    let row_reasons: Vec<Reason> = cell.split('→').nth(1).map(reasons_in).unwrap_or_default();
    let heading_reasons = reasons_in(ctx.section);
    let reasons = if row_reasons.is_empty() {
        heading_reasons
    } else {
        row_reasons
    };
    let section_lower = ctx.section.to_ascii_lowercase();
    let delayed = section_lower.contains("delayed");
    let category = if role != "wording" || reasons.is_empty() {
        Category::NoCause
    } else {
        Category::Reason
    };
    let hard = hardness("", &reasons, true, category);
    let key = fragments.first()?.clone();
    let variants = fragments
        .iter()
        .map(|f| Variant {
            words: fill_placeholders(f),
            reply: english.as_deref().and_then(leading_reply),
            status: english
                .as_deref()
                .and_then(|e| status_codes_in(e).into_iter().flatten().next()),
            english: english.clone(),
        })
        .collect();
    Some(Row {
        table: ctx.table,
        section: ctx.section.to_string(),
        line: ctx.line,
        key,
        variants,
        stage: Stage::Local,
        delayed,
        success: false,
        remote_host: None,
        lang: Some(lang_code),
        role,
        envelopes: vec![Envelope::Dsn, Envelope::Localized],
        reasons: if category == Category::Reason {
            reasons
        } else {
            Vec::new()
        },
        category,
        hard,
    })
}

// ---------------------------------------------------------------- building bounces

/// A localized subject and introduction per language, taken from the `languages.md` rows themselves.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    subjects: BTreeMap<String, String>,
    intros: BTreeMap<String, String>,
}

impl Templates {
    /// The first subject and introduction each language's rows give.
    pub fn from_rows(rows: &[Row]) -> Templates {
        let mut t = Templates::default();
        for row in rows.iter().filter(|r| r.table == "languages") {
            let (Some(lang), Some(v)) = (row.lang.as_ref(), row.variants.first()) else {
                continue;
            };
            let base = lang.split('-').next().unwrap_or(lang).to_string();
            let words = v.words.replace("<original subject>", "Newsletter");
            let slot = match row.role {
                "subject" => &mut t.subjects,
                "introduction" => &mut t.intros,
                _ => continue,
            };
            slot.entry(base).or_insert(words);
        }
        t
    }

    fn subject(&self, lang: &str) -> &str {
        let base = lang.split('-').next().unwrap_or(lang);
        self.subjects
            .get(base)
            .map_or("Undelivered Mail Returned to Sender", String::as_str)
    }

    fn intro(&self, lang: &str) -> &str {
        let base = lang.split('-').next().unwrap_or(lang);
        self.intros.get(base).map_or(
            "This is the mail system at host mail.example.org.",
            String::as_str,
        )
    }
}

/// The words a receiving server would reply with: reply code, enhanced code, then the words (codes
/// the words already start with or contain are not repeated).
fn reply_line(v: &Variant) -> String {
    let mut out = String::new();
    let words = v.words.trim();
    if leading_reply(words).is_none() {
        if let Some(r) = v.reply {
            let _ = write!(out, "{r} ");
        }
        if let Some(s) = &v.status
            && !words.contains(s.as_str())
        {
            let _ = write!(out, "{s} ");
        }
    }
    out.push_str(words);
    out.trim().to_string()
}

fn headers(subject: &str, extra: &str, content_type: &str) -> String {
    report_headers(
        "Mail Delivery System",
        "auto-replied",
        subject,
        extra,
        content_type,
    )
}

/// The header of a report sent by `from_name` at the reporting host from the null sender, with its
/// `Auto-Submitted` value.
fn report_headers(
    from_name: &str,
    auto_submitted: &str,
    subject: &str,
    extra: &str,
    content_type: &str,
) -> String {
    format!(
        "Return-Path: <>\r\nFrom: {from_name} <MAILER-DAEMON@{REPORTING_HOST}>\r\nTo: {SENDER}\r\nSubject: {subject}\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <knowledge@{REPORTING_HOST}>\r\nMIME-Version: 1.0\r\nAuto-Submitted: {auto_submitted}\r\n{extra}Content-Type: {content_type}\r\n\r\n"
    )
}

/// Folds a long line the way Postfix does: at spaces, continuation lines indented four spaces.
fn fold(line: &str, width: usize) -> String {
    let mut out = String::new();
    let mut current = String::new();
    for word in line.split(' ') {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&current);
            out.push_str("\r\n    ");
            current.clear();
        } else if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    out.push_str(&current);
    out
}

/// The returned original's headers, as the reports attach or quote them.
fn original_headers() -> String {
    format!(
        "From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: Newsletter\r\nMessage-ID: <newsletter-1@example.org>\r\n"
    )
}

/// One bounce message, as bytes, for a row's variant in an envelope.
pub fn build(row: &Row, v: &Variant, envelope: Envelope, templates: &Templates) -> Vec<u8> {
    let host = row.remote_host.as_deref().unwrap_or(REMOTE_HOST);
    let text = match envelope {
        Envelope::Dsn => build_dsn(row, v, host, templates),
        Envelope::Postfix => build_postfix(row, v, host),
        Envelope::Exim => build_exim(row, v, host),
        Envelope::Qmail => build_qmail(row, v),
        Envelope::Sendmail => build_sendmail(row, v, host),
        Envelope::Localized => build_localized(row, v, templates),
    };
    text.into_bytes()
}

fn build_dsn(row: &Row, v: &Variant, host: &str, templates: &Templates) -> String {
    let action = if row.success {
        "delivered"
    } else if row.delayed {
        "delayed"
    } else {
        "failed"
    };
    let status = v.status.clone().unwrap_or_else(|| {
        if row.success {
            "2.0.0".to_string()
        } else if row.delayed {
            "4.0.0".to_string()
        } else {
            "5.0.0".to_string()
        }
    });
    let (subject, notice) = match &row.lang {
        Some(lang) => (
            templates.subject(lang).to_string(),
            format!(
                "{}\r\n\r\n{RECIPIENT}\r\n{}\r\n",
                templates.intro(lang),
                if row.role == "wording" {
                    v.words.as_str()
                } else {
                    ""
                }
            ),
        ),
        None if row.success => (
            "Successful Mail Delivery Report".to_string(),
            format!(
                "This is the mail system at host {REPORTING_HOST}.\r\n\r\nYour message was successfully delivered to the destination(s) listed below.\r\n"
            ),
        ),
        None if row.delayed => (
            "Delayed Mail (still being retried)".to_string(),
            format!(
                "This is the mail system at host {REPORTING_HOST}.\r\n\r\nYour message has not yet been delivered to one or more recipients; delivery will be retried.\r\n"
            ),
        ),
        None => (
            "Undelivered Mail Returned to Sender".to_string(),
            format!(
                "This is the mail system at host {REPORTING_HOST}.\r\n\r\nYour message could not be delivered to one or more recipients.\r\n"
            ),
        ),
    };
    let diagnostic = match row.stage {
        _ if row.lang.is_some() => match (&v.english, row.role) {
            (Some(e), _) => Some(format!("smtp; {e}")),
            (None, "wording") if !v.words.is_empty() => Some(format!("smtp; {}", v.words)),
            _ => None,
        },
        Stage::Local if v.reply.is_none() => Some(format!("X-Postfix; {}", v.words.trim())),
        _ => {
            let line = reply_line(v);
            (!line.is_empty()).then(|| format!("smtp; {line}"))
        }
    };
    let remote = match row.stage {
        Stage::Local | Stage::Unknown => String::new(),
        _ => format!("Remote-MTA: dns; {host}\r\n"),
    };
    let mut out = headers(
        &subject,
        "",
        "multipart/report; report-type=delivery-status; boundary=\"knowledge-boundary\"",
    );
    let _ = write!(
        out,
        "--knowledge-boundary\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{notice}\r\n--knowledge-boundary\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {REPORTING_HOST}\r\nArrival-Date: Mon, 2 Nov 2026 09:58:00 +0000\r\n\r\nFinal-Recipient: rfc822; {RECIPIENT}\r\nOriginal-Recipient: rfc822;{RECIPIENT}\r\nAction: {action}\r\nStatus: {status}\r\n{remote}"
    );
    if let Some(d) = diagnostic {
        let _ = write!(out, "Diagnostic-Code: {d}\r\n");
    }
    let _ = write!(
        out,
        "Last-Attempt-Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\n--knowledge-boundary\r\nContent-Type: text/rfc822-headers\r\n\r\n{}\r\n--knowledge-boundary--\r\n",
        original_headers()
    );
    out
}

fn postfix_command(stage: Stage) -> &'static str {
    match stage {
        Stage::Mail => "MAIL FROM",
        Stage::Data => "end of DATA",
        _ => "RCPT TO",
    }
}

fn build_postfix(row: &Row, v: &Variant, host: &str) -> String {
    let reply = reply_line(v);
    let line = match row.stage {
        Stage::Local => format!("<{RECIPIENT}>: {}", v.words.trim()),
        Stage::Connect => {
            format!("<{RECIPIENT}>: host {host}[{REMOTE_IP}] refused to talk to me: {reply}")
        }
        stage => format!(
            "<{RECIPIENT}>: host {host}[{REMOTE_IP}] said: {reply} (in reply to {} command)",
            postfix_command(stage)
        ),
    };
    let (subject, intro) = if row.delayed {
        (
            "Delayed Mail (still being retried)",
            "####################################################################\r\n# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n####################################################################\r\n\r\nYour message could not be delivered for more than 4 hour(s).\r\nIt will be retried until it is 5 day(s) old.",
        )
    } else {
        (
            "Undelivered Mail Returned to Sender",
            "I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients. It's attached below.",
        )
    };
    let mut out = headers(subject, "", "text/plain; charset=utf-8");
    let _ = write!(
        out,
        "This is the mail system at host {REPORTING_HOST}.\r\n\r\n{intro}\r\n\r\nFor further assistance, please send mail to postmaster.\r\n\r\nIf you do so, please include this problem report. You can\r\ndelete your own text from the attached returned message.\r\n\r\n                   The mail system\r\n\r\n{}\r\n",
        fold(&line, 76)
    );
    out
}

fn build_exim(row: &Row, v: &Variant, host: &str) -> String {
    let reply = reply_line(v);
    let detail = match row.stage {
        Stage::Local => format!("    {}", v.words.trim()),
        stage => {
            let after = match stage {
                Stage::Connect => "initial connection".to_string(),
                Stage::Mail => format!("MAIL FROM:<{SENDER}> SIZE=2048"),
                Stage::Data => "end of data".to_string(),
                _ => format!("RCPT TO:<{RECIPIENT}>"),
            };
            format!(
                "    host {host} [{REMOTE_IP}]\r\n    SMTP error from remote mail server after {after}:\r\n    {reply}"
            )
        }
    };
    let copy = format!(
        "------ This is a copy of the message, including all the headers. ------\r\n\r\n{}\r\nHello.\r\n",
        original_headers()
    );
    if row.delayed {
        let mut out = headers(
            "Warning: message 1tAbCd-000Xyz-9Q delayed 24 hours",
            "",
            "text/plain; charset=utf-8",
        );
        let _ = write!(
            out,
            "This message was created automatically by mail delivery software.\r\nA message that you sent has not yet been delivered to one or more of its\r\nrecipients after more than 24 hours on the queue on {REPORTING_HOST}.\r\n\r\nThe message identifier is:     1tAbCd-000Xyz-9Q\r\nThe subject of the message is: Newsletter\r\nThe date of the message is:    Mon, 2 Nov 2026 09:58:00 +0000\r\n\r\nThe address to which the message has not yet been delivered is:\r\n\r\n  {RECIPIENT}\r\n{detail}\r\n\r\nNo action is required on your part. Delivery attempts will continue for\r\nsome time, and this warning may be repeated at intervals if the message\r\nremains undelivered. Eventually the mail delivery software will give up,\r\nand when that happens, the message will be returned to you.\r\n"
        );
        return out;
    }
    let mut out = headers(
        "Mail delivery failed: returning message to sender",
        &format!("X-Failed-Recipients: {RECIPIENT}\r\n"),
        "text/plain; charset=utf-8",
    );
    let _ = write!(
        out,
        "This message was created automatically by mail delivery software.\r\n\r\nA message that you sent could not be delivered to one or more of its\r\nrecipients. This is a permanent error. The following address(es) failed:\r\n\r\n  {RECIPIENT}\r\n{detail}\r\n\r\n{copy}"
    );
    out
}

fn build_qmail(row: &Row, v: &Variant) -> String {
    let reply = reply_line(v);
    let detail = match row.stage {
        Stage::Local => v.words.trim().to_string(),
        stage => {
            let said = match stage {
                Stage::Connect => format!("Connected to {REMOTE_IP} but greeting failed."),
                Stage::Mail => format!("Connected to {REMOTE_IP} but sender was rejected."),
                Stage::Data => format!("{REMOTE_IP} failed after I sent the message."),
                _ => format!("{REMOTE_IP} does not like recipient."),
            };
            format!("{said}\r\nRemote host said: {reply}\r\nGiving up on {REMOTE_IP}.")
        }
    };
    let mut out = headers("failure notice", "", "text/plain; charset=utf-8");
    let _ = write!(
        out,
        "Hi. This is the qmail-send program at {REPORTING_HOST}.\r\nI'm afraid I wasn't able to deliver your message to the following addresses.\r\nThis is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n<{RECIPIENT}>:\r\n{detail}\r\n\r\n--- Below this line is a copy of the message.\r\n\r\n{}\r\nHello.\r\n",
        original_headers()
    );
    out
}

fn build_sendmail(row: &Row, v: &Variant, host: &str) -> String {
    let reply = reply_line(v);
    let transcript = match row.stage {
        Stage::Local => v.words.trim().to_string(),
        stage => {
            let sent = match stage {
                Stage::Connect => String::new(),
                Stage::Mail => format!(">>> MAIL From:<{SENDER}> SIZE=2048\r\n"),
                Stage::Data => ">>> .\r\n".to_string(),
                _ => format!(">>> RCPT To:<{RECIPIENT}>\r\n"),
            };
            format!("... while talking to {host}.:\r\n{sent}<<< {reply}")
        }
    };
    let reason = match row.stage {
        Stage::Local => v.words.trim().to_string(),
        _ => reply,
    };
    let (subject, auto, errors, warning) = if row.delayed {
        (
            "Warning: could not send message for past 4 hours",
            "warning-timeout",
            "transient non-fatal",
            "    **********************************************\r\n    **      THIS IS A WARNING MESSAGE ONLY      **\r\n    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\r\n    **********************************************\r\n\r\n",
        )
    } else {
        (
            "Returned mail: see transcript for details",
            "failure",
            "permanent fatal",
            "",
        )
    };
    let mut out = report_headers(
        "Mail Delivery Subsystem",
        &format!("auto-generated ({auto})"),
        subject,
        "",
        "text/plain; charset=utf-8",
    );
    let _ = write!(
        out,
        "The original message was received at Mon, 2 Nov 2026 09:58:00 +0000\r\nfrom client.example.org [192.0.2.10]\r\n\r\n{warning}   ----- The following addresses had {errors} errors -----\r\n<{RECIPIENT}>\r\n    (reason: {reason})\r\n\r\n   ----- Transcript of session follows -----\r\n{transcript}\r\n\r\n   ----- Original message follows -----\r\n\r\n{}\r\nHello.\r\n",
        original_headers()
    );
    out
}

fn build_localized(row: &Row, v: &Variant, templates: &Templates) -> String {
    let lang = row.lang.as_deref().unwrap_or("en");
    let subject = match row.role {
        "subject" => v.words.replace("<original subject>", "Newsletter"),
        _ => templates.subject(lang).to_string(),
    };
    let intro = match row.role {
        "introduction" => v.words.clone(),
        _ => templates.intro(lang).to_string(),
    };
    let cause = match row.role {
        "wording" => v.words.clone(),
        _ => String::new(),
    };
    let english = v
        .english
        .as_deref()
        .map(|e| format!("\r\n{e}\r\n"))
        .unwrap_or_default();
    let mut out = headers(&subject, "", "text/plain; charset=utf-8");
    let _ = write!(
        out,
        "{intro}\r\n\r\n{RECIPIENT}\r\n{cause}\r\n{english}\r\n"
    );
    out
}

// ---------------------------------------------------------------- measuring

/// One built bounce whose result disagrees with its row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disagreement {
    /// The table.
    pub table: &'static str,
    /// The row's line in its file.
    pub line: usize,
    /// The row's key (its first wording fragment).
    pub key: String,
    /// The section heading.
    pub section: String,
    /// The envelope.
    pub envelope: Envelope,
    /// The words of the variant that disagreed.
    pub words: String,
    /// The accepted reasons (empty when the reason is not scored).
    pub expected: Vec<Reason>,
    /// The expected hard/soft.
    pub expected_hard: Hardness,
    /// Our reason (`None`: no result at all).
    pub got: Option<Reason>,
    /// Our bounce type.
    pub got_type: Option<BounceType>,
    /// The rule (or built-in step) that decided.
    pub rule: Option<String>,
    /// The reader that read the bounce.
    pub reader: Option<String>,
    /// Our status code.
    pub status: Option<String>,
    /// Our reply code.
    pub replycode: Option<String>,
    /// The diagnostic as read.
    pub diagnostic: Option<String>,
    /// Whether the reason disagrees (else only hard/soft does).
    pub reason_disagrees: bool,
    /// Whether a row of soft reasons came out hard.
    pub soft_as_hard: bool,
}

/// Counts by one grouping key.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Group {
    /// Reason agreement.
    pub reason: Ratio,
    /// Hard/soft agreement.
    pub hard_soft: Ratio,
    /// Bounces that gave no result at all (not read as a bounce).
    pub unread: u64,
}

/// Everything the knowledge measure reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KnowledgeFigures {
    /// Rows per table (reason agreement over rows with a scored reason; hard/soft over rows with a
    /// scored hard/soft).
    pub tables: BTreeMap<String, Group>,
    /// Built bounces per table and envelope (`mtas dsn`, `languages localized`, ...).
    pub envelopes: BTreeMap<String, Group>,
    /// Rows per first accepted reason.
    pub reasons: BTreeMap<String, Group>,
    /// Hard/soft agreement over every row of every table.
    pub hard_soft: Ratio,
    /// Rows read (all tables), built bounces, rows excluded, rows not scored on their reason.
    pub rows: u64,
    /// Bounces built and classified.
    pub bounces: u64,
    /// Rows left out by the exclusions file.
    pub excluded: u64,
    /// Rows built but not scored on reason (use text, ESP-local, not a bounce, no cause).
    pub reason_not_scored: u64,
    /// Bounces built from a row of soft reasons that came out hard (must be none).
    pub soft_as_hard: Vec<Disagreement>,
    /// Every disagreeing bounce.
    pub disagreements: Vec<Disagreement>,
}

impl KnowledgeFigures {
    /// Reason agreement of one table.
    pub fn table_reason(&self, table: &str) -> Ratio {
        self.tables.get(table).map(|g| g.reason).unwrap_or_default()
    }
}

fn add(ratio: &mut Ratio, hit: bool) {
    ratio.total += 1;
    if hit {
        ratio.hits += 1;
    }
}

/// Whether our hard/soft agrees with the expectation (`None` when not scored).
fn hard_agrees(expected: Hardness, got: Option<&Bounce>) -> Option<bool> {
    let hard = got.is_some_and(|b| b.bounce_type == BounceType::Hard);
    match expected {
        Hardness::Hard => Some(hard),
        Hardness::Soft => Some(!hard),
        Hardness::Either => Some(true),
        Hardness::Unknown => None,
    }
}

/// Checks the exclusions against the rows: every exclusion must name a row, and at most
/// [`MAX_EXCLUDED_PERCENT`] of a table may be left out. Returns the problems found.
pub fn check_exclusions(rows: &[Row], exclusions: &[Exclusion]) -> Vec<String> {
    let mut problems = Vec::new();
    for e in exclusions {
        if !rows.iter().any(|r| r.table == e.table && r.key == e.key) {
            problems.push(format!(
                "exclusion {}:{:?} names no row of the tables",
                e.table, e.key
            ));
        }
        if e.why.trim().is_empty() {
            problems.push(format!("exclusion {}:{:?} gives no reason", e.table, e.key));
        }
    }
    for table in TABLES {
        let total = rows.iter().filter(|r| r.table == table).count();
        let left_out = rows
            .iter()
            .filter(|r| r.table == table && is_excluded(r, exclusions))
            .count();
        if total > 0 && left_out as f64 * 100.0 / total as f64 > MAX_EXCLUDED_PERCENT {
            problems.push(format!(
                "{left_out} of {total} rows of {table} are excluded, more than {MAX_EXCLUDED_PERCENT}%"
            ));
        }
    }
    problems
}

fn is_excluded(row: &Row, exclusions: &[Exclusion]) -> bool {
    exclusions
        .iter()
        .any(|e| e.table == row.table && e.key == row.key)
}

/// Builds every row in each of its envelopes, reads and classifies each bounce as real mail is, and
/// compares the results with the rows.
pub fn measure(
    rows: &[Row],
    exclusions: &[Exclusion],
    classifier: &Classifier,
) -> KnowledgeFigures {
    let templates = Templates::from_rows(rows);
    let opts = ReadOptions::default();
    let mut f = KnowledgeFigures::default();
    for row in rows {
        f.rows += 1;
        if is_excluded(row, exclusions) {
            f.excluded += 1;
            continue;
        }
        let scored = row.category == Category::Reason;
        if !scored {
            f.reason_not_scored += 1;
        }
        let mut row_reason_ok = true;
        let mut row_hard_ok = true;
        let mut hard_scored = false;
        for &envelope in &row.envelopes {
            for v in &row.variants {
                let bytes = build(row, v, envelope, &templates);
                let analysis = crate::analyze(&bytes, classifier, &opts);
                f.bounces += 1;
                let got = analysis
                    .bounces
                    .iter()
                    .find(|b| b.recipient.as_deref() == Some(RECIPIENT))
                    .or_else(|| analysis.bounces.first());
                let reason_ok = got.is_some_and(|b| row.reasons.contains(&b.reason));
                let hard_ok = hard_agrees(row.hard, got);
                let group = f
                    .envelopes
                    .entry(format!("{} {}", row.table, envelope.as_str()))
                    .or_default();
                if got.is_none() {
                    group.unread += 1;
                }
                if scored {
                    add(&mut group.reason, reason_ok);
                }
                if let Some(h) = hard_ok {
                    add(&mut group.hard_soft, h);
                    hard_scored = true;
                }
                let soft_as_hard = row.hard == Hardness::Soft
                    && got.is_some_and(|b| b.bounce_type == BounceType::Hard);
                let reason_bad = scored && !reason_ok;
                if reason_bad || hard_ok == Some(false) {
                    let d = Disagreement {
                        table: row.table,
                        line: row.line,
                        key: row.key.clone(),
                        section: row.section.clone(),
                        envelope,
                        words: v.words.clone(),
                        expected: row.reasons.clone(),
                        expected_hard: row.hard,
                        got: got.map(|b| b.reason),
                        got_type: got.map(|b| b.bounce_type),
                        rule: got.map(|b| b.rule.clone()),
                        reader: got.map(|b| b.reader.clone()),
                        status: got.and_then(|b| b.status.clone()),
                        replycode: got.and_then(|b| b.replycode.clone()),
                        diagnostic: got.and_then(|b| b.diagnostic.clone()),
                        reason_disagrees: reason_bad,
                        soft_as_hard,
                    };
                    if soft_as_hard {
                        f.soft_as_hard.push(d.clone());
                    }
                    f.disagreements.push(d);
                }
                row_reason_ok &= !reason_bad;
                row_hard_ok &= hard_ok != Some(false);
            }
        }
        let table = f.tables.entry(row.table.to_string()).or_default();
        if scored {
            add(&mut table.reason, row_reason_ok);
        }
        if hard_scored {
            add(&mut table.hard_soft, row_hard_ok);
            add(&mut f.hard_soft, row_hard_ok);
        }
        if let Some(first) = row.reasons.first() {
            let group = f.reasons.entry(first.as_str().to_string()).or_default();
            add(&mut group.reason, row_reason_ok);
            if hard_scored {
                add(&mut group.hard_soft, row_hard_ok);
            }
        }
    }
    f
}

/// Minimum figures of the knowledge measure; a missing key is not checked.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeFloor {
    /// Minimum reason agreement per table (%), by table name.
    #[serde(default)]
    pub reason: BTreeMap<String, f64>,
    /// Minimum hard/soft agreement over all rows (%).
    pub hard_soft: Option<f64>,
    /// Maximum number of bounces from rows of soft reasons that came out hard.
    pub max_soft_as_hard: Option<u64>,
}

impl KnowledgeFloor {
    /// Every figure on the wrong side of its floor, in words.
    pub fn check(&self, f: &KnowledgeFigures) -> Vec<String> {
        let mut out = Vec::new();
        for (table, floor) in &self.reason {
            let actual = f.table_reason(table).percent().map(round1);
            if actual.is_none_or(|a| a < *floor) {
                out.push(format!(
                    "reason agreement on {table}.md is {}, below its floor of {floor:.1}%",
                    actual.map_or("n/a".to_string(), |a| format!("{a:.1}%"))
                ));
            }
        }
        if let Some(floor) = self.hard_soft {
            let actual = f.hard_soft.percent().map(round1);
            if actual.is_none_or(|a| a < floor) {
                out.push(format!(
                    "hard/soft agreement is {}, below its floor of {floor:.1}%",
                    actual.map_or("n/a".to_string(), |a| format!("{a:.1}%"))
                ));
            }
        }
        if let Some(max) = self.max_soft_as_hard
            && f.soft_as_hard.len() as u64 > max
        {
            out.push(format!(
                "{} bounces of soft-reason rows came out hard, more than the allowed {max}",
                f.soft_as_hard.len()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_split_outside_backticks() {
        let cells = split_cells("| `a | b` | c \\| d | e |");
        assert_eq!(cells, vec!["`a | b`", "c | d", "e"]);
    }

    #[test]
    fn wording_variants_join_and_split() {
        assert_eq!(
            wording_variants("`Alpha` / `Beta` + `Gamma`"),
            vec!["Alpha".to_string(), "Beta Gamma".to_string()]
        );
        assert_eq!(
            wording_variants("`AUP#CXSNDR` (`Cox requires valid MX`)"),
            vec!["AUP#CXSNDR Cox requires valid MX".to_string()]
        );
        assert_eq!(
            wording_variants("vpopmail: `user is over quota` (or the text of `.over-quota.msg`)"),
            vec!["user is over quota".to_string()]
        );
        assert_eq!(
            wording_variants("`Reject, id=<id> - INFECTED` (also `Bounce, id=...`)"),
            vec![
                "Reject, id=<id> - INFECTED".to_string(),
                "Bounce, id=<id> - INFECTED".to_string()
            ]
        );
    }

    #[test]
    fn continuations_and_placeholder_only_fragments() {
        assert_eq!(
            wording_variants(
                "`Refused. Your entry contains your IP and a country code.` / `... and a banned keyword.`"
            ),
            vec![
                "Refused. Your entry contains your IP and a country code.".to_string(),
                "Refused. Your entry contains your IP and a banned keyword.".to_string()
            ]
        );
        assert!(wording_variants("patched: `<spf explanation> (#5.7.1)`").is_empty());
        assert_eq!(
            fill_placeholders("Error: bare <LF> received"),
            "Error: bare <LF> received"
        );
        assert_eq!(
            fill_placeholders("SMTP timeout after <cmd>"),
            format!("SMTP timeout after RCPT TO:<{RECIPIENT}>")
        );
    }

    #[test]
    fn reasons_leave_out_negated_words() {
        assert_eq!(
            reasons_in("networkerror (retry over IPv4. Not notaccept, which is hard)"),
            vec![Reason::Networkerror]
        );
        assert_eq!(
            reasons_in("`userunknown` or `rejected` depending on the address"),
            vec![Reason::Userunknown, Reason::Rejected]
        );
        assert_eq!(
            category_of("(use text: class 1 decides nothing)", &[]),
            Category::UseText
        );
        assert_eq!(
            category_of("(ESP-local; not a remote verdict)", &[]),
            Category::EspLocal
        );
    }

    #[test]
    fn codes_and_placeholders() {
        assert_eq!(
            reply_codes_in("503 5.5.1 / 500 5.5.2"),
            vec![Some(503), Some(500)]
        );
        assert_eq!(
            status_codes_in("5.7.900-5.7.999 (5.7.1 default)"),
            vec![Some("5.7.900".to_string())]
        );
        assert_eq!(status_codes_in("#5.1.1"), vec![Some("5.1.1".to_string())]);
        assert_eq!(
            fill_placeholders("<rcpt>: blocked using <dnsbl> from [<ip>]"),
            format!("{RECIPIENT}: blocked using dnsbl.example.net from [{REMOTE_IP}]")
        );
    }

    const MTAS: &str = "## 1. Postfix\n\n| wording (as the software writes it) | SMTP reply / enhanced code | situation | what it means | our reason | hard? | source |\n|---|---|---|---|---|---|---|\n| `Recipient address rejected: User unknown in local recipient table` | 550 5.1.1 | receiver, RCPT | gone | userunknown | hard | x |\n| `Sender address rejected: Domain not found` | 450 4.1.8 | receiver | sender domain | rejected | soft | x |\n| `host <mx>[<ip>] said: <remote reply>` | remote code | sender bounce | text | text decides | text decides | x |\n";

    #[test]
    fn fact_rows_parse_with_their_stage_and_expectation() {
        let rows = parse_table_file("mtas", MTAS);
        assert_eq!(rows.len(), 3);
        let r = &rows[0];
        assert_eq!(
            (r.stage, r.reasons.as_slice(), r.hard, r.delayed),
            (
                Stage::Rcpt,
                &[Reason::Userunknown][..],
                Hardness::Hard,
                false
            )
        );
        assert_eq!(r.variants[0].reply, Some(550));
        assert_eq!(r.variants[0].status.as_deref(), Some("5.1.1"));
        assert!(rows[1].delayed);
        assert_eq!(rows[2].category, Category::UseText);
        assert_eq!(rows[2].hard, Hardness::Unknown);
    }

    #[test]
    fn built_bounces_are_read_as_real_mail() {
        let rows = parse_table_file("mtas", MTAS);
        let classifier = Classifier::new();
        let templates = Templates::default();
        for envelope in [
            Envelope::Dsn,
            Envelope::Postfix,
            Envelope::Exim,
            Envelope::Qmail,
            Envelope::Sendmail,
        ] {
            let bytes = build(&rows[0], &rows[0].variants[0], envelope, &templates);
            let a = crate::analyze(&bytes, &classifier, &ReadOptions::default());
            let b = a.bounces.first();
            assert_eq!(
                b.map(|b| (b.recipient.as_deref(), b.reason)),
                Some((Some(RECIPIENT), Reason::Userunknown)),
                "{envelope:?}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn exclusions_are_checked() {
        let rows = parse_table_file("mtas", MTAS);
        let stale = Exclusion {
            table: "mtas".into(),
            key: "no such wording".into(),
            why: "x".into(),
        };
        let problems = check_exclusions(&rows, &[stale]);
        assert!(
            problems.iter().any(|p| p.contains("names no row")),
            "{problems:?}"
        );
        let too_many = Exclusion {
            table: "mtas".into(),
            key: rows[0].key.clone(),
            why: "mislabelled".into(),
        };
        let problems = check_exclusions(&rows, &[too_many]);
        assert!(
            problems.iter().any(|p| p.contains("more than")),
            "{problems:?}"
        );
    }
}
