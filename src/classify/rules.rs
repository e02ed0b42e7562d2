//! The ordered rule table that names a reason.
//!
//! A rule is data: an `id`, a `reason`, and conditions that must all hold (each condition is a list
//! of alternatives, any of which may match):
//!
//! - `text`: regular expressions, case-insensitive, matched on the diagnostic;
//! - `status`: enhanced code patterns (`5.1.1`, `X.1.1`, `5.7.*`);
//! - `replycode`: reply code patterns (`550`, `55X`, `5XX`);
//! - `command`: the SMTP command the failure answered (`RCPT`, `MAIL`, `DATA`, `CONN`, ...);
//! - `action`: the DSN action (`failed`, `delayed`);
//! - `diagnostic_type`: the `Diagnostic-Code` type (`smtp`, `x-unix`, ...);
//! - `permanent`: `true` unless the codes say transient (4.x.x / 4xx), `false` only when they do;
//! - `host`: domain names of a receiving provider: holds when the recipient's domain or the remote
//!   MTA is one of them or a subdomain (`docomo.ne.jp` holds for `mfsmax.docomo.ne.jp`). Providers
//!   document their own codes and wording, which mean something only in their answers;
//! - `reporting_host`: the same, matched on the reporting MTA (a filtering service that writes the
//!   report for the domains it receives mail for).
//!
//! Some wording names a reason only when other evidence backs it: "user unknown" is a dead mailbox
//! when the code is an addressing code (X.1.1) or the server said it in answer to RCPT TO, but the
//! same words after DATA, or with only a generic code, are a filter's refusal. Such a rule lists what
//! confirms it (any one suffices):
//!
//! - `confirm_status`: enhanced code patterns;
//! - `confirm_command`: SMTP commands;
//! - a reader hint naming the rule's own reason (the format is known to mean it);
//!
//! and `otherwise`, the reason to give when the wording matched but nothing confirmed it (without
//! `otherwise`, an unconfirmed rule simply does not match). A reader hint naming another reason
//! beats an unconfirmed rule.
//!
//! Wording that names a reason unless other evidence says otherwise lists what refutes it instead
//! (any one refutes it): "user unknown" is a dead mailbox unless the reply came after the message
//! data or at the greeting, or carries a policy code. Such a rule lists
//!
//! - `refute_status`: enhanced code patterns;
//! - `refute_command`: SMTP commands;
//!
//! and `otherwise`, the reason to give when it is refuted (a reader hint naming the rule's own
//! reason still holds it). The result's rule id then ends in `.refuted`.
//!
//! Every text pattern of every rule is compiled once per process (a built-in one on its first use,
//! a user's when the file is loaded) and tried in table order until the first rule holds. Matching is case-insensitive by lower-casing the diagnostic
//! once and compiling lower-case patterns case-sensitively (a case-insensitive Unicode pattern
//! carries every case variant of every letter, which inflates its automaton and slows its first
//! uses); a pattern with upper-case letters of its own is compiled case-insensitively instead.
//! Before any regex runs, one Aho-Corasick pass finds which patterns' required literals occur in
//! the text (see `prefilter`); the others cannot match and are skipped. (One `RegexSet` over all
//! patterns was measured slower: its overlapping search must run every pattern to the end of the
//! text, and its lazy DFA builds new states for nearly every new diagnostic.) Each pattern's lazy
//! DFA cache is bounded ([`DFA_CACHE_LIMIT`]), so the memory a classifier holds per thread stays
//! small and fixed. Rules with a `text` condition are "text rules", the rest
//! "code rules"; the classifier consults text rules first and code rules last (see
//! [`super::Classifier::classify`]). Within each group the first rule in table order whose
//! conditions hold wins. The built-in table lives in `builtin.toml` beside this file; a user file in
//! the same format overrides a built-in rule with the same id in place and puts new rules first.

use std::borrow::Cow;
use std::collections::HashMap;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use regex::{Regex, RegexBuilder};
use regex_automata::Input;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::pool::Pool;
use serde::Deserialize;

use super::Reason;
use super::codes::{ReplyCode, StatusCode};
use super::prefilter::{self, Prefilter};
use crate::error::RulesError;

/// The built-in rule table, in the user file format.
const BUILTIN: &str = include_str!("builtin.toml");

/// Upper bound on the compiled size of one text pattern (bytes); generous, but finite.
const PATTERN_SIZE_LIMIT: usize = 4 * 1024 * 1024;

/// Upper bound on one pattern's lazy DFA cache (bytes, per thread that uses the pattern).
pub const DFA_CACHE_LIMIT: usize = 128 * 1024;

/// What the rules look at for one recipient.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// The remote server's words (empty when none).
    pub diagnostic: &'a str,
    /// The enhanced status code chosen for the recipient.
    pub status: Option<StatusCode>,
    /// The SMTP reply code chosen for the recipient.
    pub replycode: Option<ReplyCode>,
    /// The SMTP command the failure answered.
    pub command: Option<&'a str>,
    /// The DSN action.
    pub action: Option<&'a str>,
    /// The `Diagnostic-Code` type.
    pub diagnostic_type: Option<&'a str>,
    /// The reason the reader vouches for, from the report's format.
    pub hint: Option<&'a str>,
    /// The failed address (its domain is matched by `host`).
    pub recipient: Option<&'a str>,
    /// The host that refused (matched by `host`).
    pub remote_mta: Option<&'a str>,
    /// The host that wrote the report (matched by `reporting_host`).
    pub reporting_mta: Option<&'a str>,
}

impl Facts<'_> {
    /// Whether the codes say the failure is transient: a 4.x.x status, or a 4xx reply when no status.
    pub fn transient(&self) -> bool {
        match (self.status, self.replycode) {
            (Some(s), _) => s.class == 4,
            (None, Some(r)) => r.class() == 4,
            (None, None) => false,
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable name, shown in results as the rule that fired (`userunknown.text.no-such-user`).
    pub id: String,
    /// The reason the rule gives.
    pub reason: Reason,
    /// Where the wording or code comes from (RFC section, MTA).
    pub note: Option<String>,
    /// The text patterns as written.
    pub text: Vec<String>,
    status: Vec<StatusPattern>,
    replycode: Vec<ReplyPattern>,
    command: Vec<String>,
    action: Vec<String>,
    diagnostic_type: Vec<String>,
    permanent: Option<bool>,
    host: Vec<String>,
    reporting_host: Vec<String>,
    confirm_status: Vec<StatusPattern>,
    confirm_command: Vec<String>,
    refute_status: Vec<StatusPattern>,
    refute_command: Vec<String>,
    otherwise: Option<Reason>,
    otherwise_id: String,
    /// When its text patterns are compiled: on first use for the built-in table, at load for a
    /// user's file.
    compile: Compile,
}

/// A text rule that matched: confirmed, or matched on wording alone with its `otherwise` reason.
#[derive(Debug, Clone, Copy)]
pub enum TextMatch<'r> {
    /// The rule holds: its reason.
    Confirmed(&'r Rule),
    /// The wording matched but nothing confirmed it: the rule's `otherwise` reason applies (unless
    /// the reader vouches for another).
    Unconfirmed(&'r Rule, Reason),
}

impl<'r> TextMatch<'r> {
    /// The rule that matched.
    pub fn rule(self) -> &'r Rule {
        match self {
            TextMatch::Confirmed(r) | TextMatch::Unconfirmed(r, _) => r,
        }
    }

    /// The reason this match gives.
    pub fn reason(self) -> Reason {
        match self {
            TextMatch::Confirmed(r) => r.reason,
            TextMatch::Unconfirmed(_, reason) => reason,
        }
    }

    /// The id to report: the rule's, with `.unconfirmed` (or `.refuted`) when its `otherwise`
    /// reason applied.
    pub fn id(self) -> &'r str {
        match self {
            TextMatch::Confirmed(r) => &r.id,
            TextMatch::Unconfirmed(r, _) => &r.otherwise_id,
        }
    }
}

impl Rule {
    /// Whether the rule needs confirmation (`confirm_status` / `confirm_command`, and nothing to
    /// refute it: with a refutation list, the confirming lists only outweigh a refutation).
    pub fn needs_confirmation(&self) -> bool {
        (!self.confirm_status.is_empty() || !self.confirm_command.is_empty())
            && !self.can_be_refuted()
    }

    /// Whether the rule holds on these facts. A rule that can be refuted holds unless a refuting
    /// status or command is present, and a confirming status or command, or a reader hint naming the
    /// rule's reason, outweighs the refutation. Otherwise a rule that needs confirmation holds only
    /// with a confirming status or command or such a hint; a rule with no such lists always holds.
    pub fn is_confirmed(&self, facts: &Facts) -> bool {
        let vouched = facts
            .hint
            .is_some_and(|h| h.trim().eq_ignore_ascii_case(self.reason.as_str()));
        let confirmed = facts
            .status
            .is_some_and(|s| self.confirm_status.iter().any(|p| p.matches(s)))
            || (!self.confirm_command.is_empty() && one_of(&self.confirm_command, facts.command))
            || vouched;
        if self.can_be_refuted() {
            // Positive evidence for the rule (an addressing code, the reader's word) outweighs
            // evidence against it.
            return confirmed || !self.is_refuted(facts);
        }
        !self.needs_confirmation() || confirmed
    }

    /// Whether positive evidence refutes the rule's wording: a refuting status or command.
    pub fn is_refuted(&self, facts: &Facts) -> bool {
        self.is_refuted_by_status(facts)
            || (!self.refute_command.is_empty()
                && facts.command.is_some()
                && one_of(&self.refute_command, facts.command))
    }

    /// Whether the status code refutes the rule's wording: it has a meaning of its own that the
    /// wording contradicts.
    pub fn is_refuted_by_status(&self, facts: &Facts) -> bool {
        facts
            .status
            .is_some_and(|s| self.refute_status.iter().any(|p| p.matches(s)))
    }

    /// Whether the rule can be refuted (`refute_status` / `refute_command`).
    pub fn can_be_refuted(&self) -> bool {
        !self.refute_status.is_empty() || !self.refute_command.is_empty()
    }

    /// The provider domains of the `host` condition (empty when the rule has none).
    pub fn hosts(&self) -> &[String] {
        &self.host
    }

    /// The domains of the `reporting_host` condition (empty when the rule has none).
    pub fn reporting_hosts(&self) -> &[String] {
        &self.reporting_host
    }

    /// Whether the rule has a text condition (a text rule) or only code-like conditions.
    pub fn is_text_rule(&self) -> bool {
        !self.text.is_empty()
    }

    /// The step of the fallback ladder this rule belongs to: `provider` (keyed on a provider's
    /// hosts, or a provider's own codes), `text` (wording), `enhanced code` (the registered meaning
    /// of the status), `reply code and command`, or `diagnostic type or action`.
    pub fn step(&self) -> &'static str {
        let provider = !self.host.is_empty()
            || !self.reporting_host.is_empty()
            || self.id.contains(".provider.")
            || self.id.ends_with(".microsoft");
        if provider {
            "provider"
        } else if self.is_text_rule() {
            "text"
        } else if !self.status.is_empty() {
            "enhanced code"
        } else if !self.replycode.is_empty() || !self.command.is_empty() {
            "reply code and command"
        } else {
            "diagnostic type or action"
        }
    }

    /// Whether every condition other than `text` holds.
    fn other_conditions_hold(&self, facts: &Facts) -> bool {
        if !self.status.is_empty()
            && !facts
                .status
                .is_some_and(|s| self.status.iter().any(|p| p.matches(s)))
        {
            return false;
        }
        if !self.replycode.is_empty()
            && !facts
                .replycode
                .is_some_and(|r| self.replycode.iter().any(|p| p.matches(r)))
        {
            return false;
        }
        if !one_of(&self.command, facts.command)
            || !one_of(&self.action, facts.action)
            || !one_of(&self.diagnostic_type, facts.diagnostic_type)
        {
            return false;
        }
        let receiving_side = || {
            any_host(&self.host, facts.recipient.and_then(domain_of))
                || any_host(&self.host, facts.remote_mta.and_then(host_name))
        };
        if !self.host.is_empty() && !receiving_side() {
            return false;
        }
        if !self.reporting_host.is_empty()
            && !any_host(
                &self.reporting_host,
                facts.reporting_mta.and_then(host_name),
            )
        {
            return false;
        }
        match self.permanent {
            Some(true) => !facts.transient(),
            Some(false) => facts.transient(),
            None => true,
        }
    }
}

/// The domain of an address (`user@Example.COM` gives `Example.COM`).
fn domain_of(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim().trim_end_matches('>'))
        .filter(|d| !d.is_empty())
}

/// The host name in an MTA field as readers give it: `dns; mx.example.com`,
/// `mx.example.com [192.0.2.1]`, `mx.example.com.`.
fn host_name(field: &str) -> Option<&str> {
    let field = field.trim();
    let field = match field.split_once(';') {
        Some((_, rest)) => rest.trim(),
        None => field,
    };
    field
        .split(|c: char| c.is_whitespace() || c == '[' || c == '(')
        .next()
        .map(|h| h.trim_end_matches('.'))
        .filter(|h| !h.is_empty())
}

/// Whether `name` is one of the domains (lower-case) or a subdomain of one, ignoring case.
fn any_host(domains: &[String], name: Option<&str>) -> bool {
    let Some(name) = name else {
        return false;
    };
    domains.iter().any(|d| {
        let (n, d) = (name.as_bytes(), d.as_bytes());
        if n.len() == d.len() {
            return n.eq_ignore_ascii_case(d);
        }
        n.len() > d.len()
            && n.get(n.len() - d.len() - 1) == Some(&b'.')
            && n.get(n.len() - d.len()..)
                .is_some_and(|tail| tail.eq_ignore_ascii_case(d))
    })
}

fn one_of(allowed: &[String], value: Option<&str>) -> bool {
    allowed.is_empty()
        || value.is_some_and(|v| allowed.iter().any(|a| a.eq_ignore_ascii_case(v.trim())))
}

/// An enhanced code pattern: each part a number, a range of numbers (`606-649`) or a wildcard
/// (`X`, `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatusPattern([Option<(u16, u16)>; 3]);

impl StatusPattern {
    fn parse(s: &str) -> Option<StatusPattern> {
        let number = |p: &str| -> Option<u16> {
            (!p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        };
        let mut out = [None; 3];
        let mut parts = s.trim().split('.');
        for slot in &mut out {
            let part = parts.next()?;
            *slot = match part {
                "X" | "x" | "*" => None,
                p => match p.split_once('-') {
                    Some((lo, hi)) => {
                        let (lo, hi) = (number(lo)?, number(hi)?);
                        if lo > hi {
                            return None;
                        }
                        Some((lo, hi))
                    }
                    None => {
                        let n = number(p)?;
                        Some((n, n))
                    }
                },
            };
        }
        if parts.next().is_some() {
            return None;
        }
        Some(StatusPattern(out))
    }

    fn matches(self, code: StatusCode) -> bool {
        let values = [u16::from(code.class), u16::from(code.subject), code.detail];
        self.0
            .iter()
            .zip(values)
            .all(|(p, v)| p.is_none_or(|(lo, hi)| (lo..=hi).contains(&v)))
    }
}

/// A reply code pattern: three characters, each a digit or a wildcard (`X`, `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReplyPattern([Option<u8>; 3]);

impl ReplyPattern {
    fn parse(s: &str) -> Option<ReplyPattern> {
        let s = s.trim();
        if s.chars().count() != 3 {
            return None;
        }
        let mut out = [None; 3];
        for (slot, c) in out.iter_mut().zip(s.chars()) {
            *slot = match c {
                'X' | 'x' | '*' => None,
                d => Some(d.to_digit(10)? as u8),
            };
        }
        Some(ReplyPattern(out))
    }

    fn matches(self, code: ReplyCode) -> bool {
        let v = code.0;
        let digits = [(v / 100) as u8, ((v / 10) % 10) as u8, (v % 10) as u8];
        self.0
            .iter()
            .zip(digits)
            .all(|(p, d)| p.is_none_or(|p| p == d))
    }
}

/// One string or a list of strings, as a rule file may give either.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A rule as written in a file, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: Option<String>,
    reason: Option<String>,
    text: Option<OneOrMany>,
    status: Option<OneOrMany>,
    replycode: Option<OneOrMany>,
    command: Option<OneOrMany>,
    action: Option<OneOrMany>,
    diagnostic_type: Option<OneOrMany>,
    permanent: Option<bool>,
    host: Option<OneOrMany>,
    reporting_host: Option<OneOrMany>,
    confirm_status: Option<OneOrMany>,
    confirm_command: Option<OneOrMany>,
    refute_status: Option<OneOrMany>,
    refute_command: Option<OneOrMany>,
    otherwise: Option<String>,
    note: Option<String>,
}

/// The compiled rule table. A clone shares the compiled patterns and has its own match caches.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Every text pattern of every rule, in rule order (each compiled once, shared by the clones).
    patterns: Vec<Arc<Pattern>>,
    /// For each pattern, the index of its rule in `rules`.
    owner: Vec<usize>,
    /// Which patterns can match a given text, from their required literals.
    prefilter: Prefilter,
}

/// `NNN-X.Y.Z` continuation prefixes that multi-line replies leave in the middle of unfolded text.
static CONTINUATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?-u:\b)[245][0-9][0-9](?:-(?:[245]\.[0-9]{1,3}\.[0-9]{1,3} ?)?| [245]\.[0-9]{1,3}\.[0-9]{1,3}(?-u:\b) ?)",
    )
        .expect("the pattern is valid")
});

/// Runs of white space, folded to one space before matching.
static SPACES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s{2,}").expect("the pattern is valid"));

/// The diagnostic as the text rules see it: multi-line reply prefixes removed, spaces folded.
pub fn normalize(diagnostic: &str) -> Cow<'_, str> {
    let text = CONTINUATION.replace_all(diagnostic, "");
    // `\s` in ASCII text: a run of two is two neighbouring bytes of these.
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let folds = !text.is_ascii()
        || text
            .as_bytes()
            .windows(2)
            .any(|w| w.first().is_some_and(space) && w.get(1).is_some_and(space));
    if !folds {
        return text;
    }
    match SPACES.replace_all(&text, " ") {
        Cow::Borrowed(_) => text,
        Cow::Owned(s) => Cow::Owned(s),
    }
}

/// The diagnostic as the compiled patterns take it: [`normalize`]d, then lower-cased (Unicode).
pub fn prepare(diagnostic: &str) -> Cow<'_, str> {
    let text = normalize(diagnostic);
    if text.is_ascii() {
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            let mut owned = text.into_owned();
            owned.make_ascii_lowercase();
            return Cow::Owned(owned);
        }
        return text;
    }
    if text.chars().any(char::is_uppercase) {
        return Cow::Owned(text.to_lowercase());
    }
    text
}

/// Whether a pattern can be compiled case-sensitively over lower-cased text with the same
/// meaning: no upper-case letter of its own outside escapes, and no escape that could name one
/// (`\x41`, `\u{..}`).
fn is_lower_case_pattern(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('x' | 'u' | 'U') => return false,
                Some('p' | 'P') => {
                    // A Unicode class name (`\p{Greek}`, `\pL`) is not a letter to match.
                    let mut rest = chars.clone();
                    if rest.next() == Some('{') {
                        for n in rest.by_ref() {
                            if n == '}' {
                                break;
                            }
                        }
                        chars = rest;
                    } else {
                        chars.next();
                    }
                }
                _ => {}
            }
        } else if c.is_uppercase() {
            return false;
        }
    }
    true
}

/// One text pattern as matched over [`prepare`]d text: its source as written, the literals any of
/// its matches needs (`None`: always run it), and its program, compiled on first use.
///
/// A process pays only for the patterns its messages reach (the prefilter rules most of them out
/// for most texts), so a short run starts at once; user rule files are compiled when loaded, so
/// their errors are reported then.
#[derive(Debug)]
pub(super) struct Pattern {
    source: String,
    needs: Option<Vec<Vec<u8>>>,
    program: OnceLock<Result<Program, regex::Error>>,
}

impl Pattern {
    /// The pattern, its literals worked out now and its program left for its first use.
    fn new(pattern: &str) -> Pattern {
        let lean = lean_pattern(pattern);
        let needs = if is_lower_case_pattern(&lean) {
            prefilter::required_literals(&lean)
        } else {
            None
        };
        Pattern {
            source: pattern.to_string(),
            needs,
            program: OnceLock::new(),
        }
    }

    /// The program, compiled on its first use (a built-in pattern that does not compile, which a
    /// unit test rules out, is logged once and never matches).
    fn program(&self) -> &Result<Program, regex::Error> {
        self.program.get_or_init(|| {
            let compiled = Program::new(&self.source);
            if let Err(e) = &compiled {
                tracing::error!(pattern = %self.source, error = %e, "a rule pattern does not compile; it never matches");
            }
            compiled
        })
    }

    /// Compiles the program now, unless it already is; the error when it does not compile.
    fn force(&self) -> Result<&Program, regex::Error> {
        self.program().as_ref().map_err(Clone::clone)
    }

    /// Whether the pattern matches the [`prepare`]d text.
    fn is_match(&self, text: &str) -> bool {
        self.program().as_ref().is_ok_and(|p| p.is_match(text))
    }
}

/// Makes a per-thread match cache for one lazy DFA.
type NewCache = Box<dyn Fn() -> Cache + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// A compiled text pattern. Rules only ask whether a pattern matches, and the prefilter has
/// already found its literals, so most patterns need only a forward lazy DFA: no reverse automaton
/// to find where a match starts, no capture slots, no literal search of its own, which together
/// cost most of a full regex's compile time. A pattern the lazy DFA cannot take (an automaton too
/// large for [`DFA_CACHE_LIMIT`]) or a text it gives up on (a Unicode word boundary beside
/// non-ASCII text) goes to the full regex engine, with the same meaning.
pub(super) enum Program {
    /// A forward lazy DFA.
    Lazy(Box<LazyProgram>),
    /// The full regex engine.
    Full(Regex),
}

/// A forward lazy DFA with one match cache per thread; the full regex is built only if the DFA
/// ever gives up.
pub(super) struct LazyProgram {
    source: String,
    dfa: DFA,
    caches: Pool<Cache, NewCache>,
    full: OnceLock<Result<Regex, regex::Error>>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Program::Lazy(p) => f.debug_tuple("Lazy").field(&p.source).finish(),
            Program::Full(re) => f.debug_tuple("Full").field(re).finish(),
        }
    }
}

impl Program {
    /// Compiles a pattern as written in a rule (see [`lean_pattern`]).
    fn new(pattern: &str) -> Result<Program, regex::Error> {
        let source = lean_pattern(pattern);
        let case_insensitive = !is_lower_case_pattern(&source);
        let built = DFA::builder()
            .configure(
                DFA::config()
                    .cache_capacity(DFA_CACHE_LIMIT)
                    .unicode_word_boundary(true),
            )
            .syntax(regex_automata::util::syntax::Config::new().case_insensitive(case_insensitive))
            .thompson(
                thompson::Config::new()
                    .which_captures(thompson::WhichCaptures::None)
                    .nfa_size_limit(Some(PATTERN_SIZE_LIMIT)),
            )
            .build(&source);
        match built {
            Ok(dfa) => {
                let maker = dfa.clone();
                let new_cache: NewCache = Box::new(move || maker.create_cache());
                Ok(Program::Lazy(Box::new(LazyProgram {
                    source,
                    dfa,
                    caches: Pool::new(new_cache),
                    full: OnceLock::new(),
                })))
            }
            Err(_) => full_regex(&source, case_insensitive).map(Program::Full),
        }
    }

    /// Whether the program matches the [`prepare`]d text.
    fn is_match(&self, text: &str) -> bool {
        match self {
            Program::Full(re) => re.is_match(text),
            Program::Lazy(p) => {
                let found = {
                    let mut cache = p.caches.get();
                    p.dfa
                        .try_search_fwd(&mut cache, &Input::new(text).earliest(true))
                };
                match found {
                    Ok(m) => m.is_some(),
                    Err(_) => p
                        .full
                        .get_or_init(|| full_regex(&p.source, !is_lower_case_pattern(&p.source)))
                        .as_ref()
                        .is_ok_and(|re| re.is_match(text)),
                }
            }
        }
    }
}

/// The full regex engine's program for a [`lean_pattern`] source.
fn full_regex(source: &str, case_insensitive: bool) -> Result<Regex, regex::Error> {
    RegexBuilder::new(source)
        .case_insensitive(case_insensitive)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(DFA_CACHE_LIMIT)
        .build()
}

/// Patterns known so far in this process, by source. Every rule set built from the same patterns
/// (the built-in table, a classifier per worker thread) shares them, and so compiles each once.
static COMPILED: LazyLock<Mutex<HashMap<String, Arc<Pattern>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// One text pattern for matching over [`prepare`]d text, shared with every rule set that has it.
/// `Eager` compiles it now (a user's rule: its error is reported at load); `Lazy` leaves that
/// to its first use (the built-in table).
fn compile_pattern(pattern: &str, when: Compile) -> Result<Arc<Pattern>, regex::Error> {
    let shared = |cache: &HashMap<String, Arc<Pattern>>| cache.get(pattern).cloned();
    let found = COMPILED.lock().ok().as_deref().and_then(shared);
    let p = match found {
        Some(p) => p,
        None => {
            let p = Arc::new(Pattern::new(pattern));
            if when == Compile::Eager {
                p.force()?;
            }
            if let Ok(mut cache) = COMPILED.lock() {
                return Ok(Arc::clone(cache.entry(pattern.to_string()).or_insert(p)));
            }
            p
        }
    };
    if when == Compile::Eager {
        p.force()?;
    }
    Ok(p)
}

/// When a pattern's program is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compile {
    /// Now.
    Eager,
    /// On first use.
    Lazy,
}

/// Whether a pattern compiles, without adding it to the shared cache.
fn check_pattern(pattern: &str) -> Result<(), regex::Error> {
    let cached = COMPILED
        .lock()
        .ok()
        .is_some_and(|cache| cache.contains_key(pattern));
    if cached {
        return Ok(());
    }
    Program::new(pattern).map(drop)
}

/// What is wrong with a pattern that does not compile, in the user's own terms: the error is
/// found again in the pattern as written (not the form [`lean_pattern`] rewrites it to), with the
/// character it is at.
fn pattern_problem(pattern: &str, e: &regex::Error) -> String {
    let found = regex_syntax::ParserBuilder::new()
        .case_insensitive(!is_lower_case_pattern(pattern))
        .build()
        .parse(pattern);
    let (kind, span) = match &found {
        Err(regex_syntax::Error::Parse(a)) => (a.kind().to_string(), *a.span()),
        Err(regex_syntax::Error::Translate(t)) => (t.kind().to_string(), *t.span()),
        _ => {
            return match e {
                regex::Error::CompiledTooBig(limit) => format!(
                    "bad `text` pattern `{pattern}`: too large once compiled (over {limit} bytes)"
                ),
                _ => format!("bad `text` pattern `{pattern}`: it does not compile"),
            };
        }
    };
    // The span counts bytes; the user counts characters, from 1.
    let at = pattern
        .get(..span.start.offset)
        .map_or(span.start.offset, |before| before.chars().count())
        + 1;
    format!("bad `text` pattern `{pattern}`: {kind} at character {at}")
}

impl RuleSet {
    /// The built-in rules (compiled once per process; each call gets its own match caches).
    pub fn builtin() -> RuleSet {
        static BUILTIN_SET: LazyLock<RuleSet> =
            LazyLock::new(
                || match RuleSet::from_specs(builtin_specs("<built-in>"), Vec::new()) {
                    Ok(set) => set,
                    Err(e) => {
                        tracing::error!(error = %e, "the built-in rule table does not compile");
                        RuleSet::default()
                    }
                },
            );
        BUILTIN_SET.clone()
    }

    /// The built-in rules with a user rule file merged in.
    pub fn builtin_with_file(path: &Path) -> Result<RuleSet, RulesError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|cause| RulesError::Io {
            path: shown.clone(),
            cause,
        })?;
        Self::builtin_with_str(&text, &shown)
    }

    /// The built-in rules with user rules given as TOML text; `origin` names the source in errors.
    pub fn builtin_with_str(toml_text: &str, origin: &str) -> Result<RuleSet, RulesError> {
        let user = compile_file(toml_text, origin, Patterns::Checked)?;
        let builtin = compile_file(BUILTIN, "<built-in>", Patterns::Lazy)?;
        Self::from_specs(Ok(builtin), user)
    }

    fn from_specs(
        builtin: Result<Vec<Rule>, RulesError>,
        user: Vec<Rule>,
    ) -> Result<RuleSet, RulesError> {
        let mut rules = builtin?;
        let mut fresh = Vec::new();
        for rule in user {
            match rules.iter_mut().find(|r| r.id == rule.id) {
                Some(slot) => *slot = rule,
                None => fresh.push(rule),
            }
        }
        fresh.append(&mut rules);
        let rules = fresh;

        let mut patterns = Vec::new();
        let mut owner = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            for t in &rule.text {
                let p = compile_pattern(t, rule.compile).map_err(|e| RulesError::Rule {
                    path: "<rule table>".to_string(),
                    rule: rule.id.clone(),
                    problem: pattern_problem(t, &e),
                })?;
                patterns.push(p);
                owner.push(i);
            }
        }
        let needs: Vec<Option<Vec<Vec<u8>>>> = patterns.iter().map(|p| p.needs.clone()).collect();
        // The cache keeps the programs of the rule set built last (the built-in patterns among
        // them), not of every rule file this process ever loaded.
        if let Ok(mut cache) = COMPILED.lock() {
            let used: std::collections::HashSet<&str> = rules
                .iter()
                .flat_map(|r| r.text.iter().map(String::as_str))
                .collect();
            cache.retain(|pattern, _| used.contains(pattern.as_str()));
        }
        let prefilter = Prefilter::new(&needs);
        Ok(RuleSet {
            rules,
            patterns,
            owner,
            prefilter,
        })
    }

    /// All rules, in the order they are tried.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with this id, if any.
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The first text rule whose wording matches the diagnostic and whose other conditions hold,
    /// ignoring confirmation (see [`RuleSet::match_text_confirmed`]).
    pub fn match_text(&self, facts: &Facts) -> Option<&Rule> {
        self.match_text_confirmed(facts).map(TextMatch::rule)
    }

    /// The first text rule whose wording matches the diagnostic and whose other conditions hold:
    /// confirmed, or unconfirmed with its `otherwise` reason. A rule that needs confirmation, lacks
    /// it and has no `otherwise` is passed over.
    pub fn match_text_confirmed(&self, facts: &Facts) -> Option<TextMatch<'_>> {
        let mut found = None;
        self.visit_text_matches(facts, |rule| {
            if rule.is_confirmed(facts) {
                found = Some(TextMatch::Confirmed(rule));
            } else if let Some(otherwise) = rule.otherwise {
                found = Some(TextMatch::Unconfirmed(rule, otherwise));
            }
            found.is_some()
        });
        found
    }

    /// The reasons, among `among`, of every text rule whose wording matches the diagnostic and
    /// whose other conditions hold, confirmed or not, in rule order. Rules of other reasons are
    /// not run.
    pub fn text_reasons(&self, facts: &Facts, among: &[Reason]) -> Vec<Reason> {
        let mut out = Vec::new();
        self.visit_text_matches_among(facts, Some(among), |rule| {
            if !out.contains(&rule.reason) {
                out.push(rule.reason);
            }
            false
        });
        out
    }

    /// Calls `visit` with each text rule, in order, whose other conditions hold and whose wording
    /// matches the diagnostic, until `visit` returns true.
    fn visit_text_matches<'s>(&'s self, facts: &Facts, visit: impl FnMut(&'s Rule) -> bool) {
        self.visit_text_matches_among(facts, None, visit);
    }

    /// [`RuleSet::visit_text_matches`] over the rules whose reason is in `among` (all when `None`).
    fn visit_text_matches_among<'s>(
        &'s self,
        facts: &Facts,
        among: Option<&[Reason]>,
        mut visit: impl FnMut(&'s Rule) -> bool,
    ) {
        if facts.diagnostic.trim().is_empty() {
            return;
        }
        let text = prepare(facts.diagnostic);
        let candidates = self.prefilter.candidates(&text);
        // A rule whose other conditions fail is passed over without running its patterns; a rule
        // whose pattern matched is visited once; a pattern whose literals are absent is skipped.
        let mut skip = usize::MAX;
        for p in candidates {
            let (Some(re), Some(&i)) = (self.patterns.get(p), self.owner.get(p)) else {
                continue;
            };
            if i == skip {
                continue;
            }
            let Some(rule) = self.rules.get(i) else {
                continue;
            };
            if among.is_some_and(|a| !a.contains(&rule.reason))
                || !rule.other_conditions_hold(facts)
            {
                skip = i;
                continue;
            }
            if !re.is_match(&text) {
                continue;
            }
            skip = i;
            if visit(rule) {
                return;
            }
        }
    }

    /// The first code rule (one without a text condition) whose conditions hold and that is
    /// confirmed when it needs to be.
    pub fn match_code(&self, facts: &Facts) -> Option<&Rule> {
        self.rules
            .iter()
            .filter(|r| !r.is_text_rule())
            .find(|r| r.other_conditions_hold(facts) && r.is_confirmed(facts))
    }
}

/// The pattern as compiled for matching: `\b` as an ASCII word boundary (the Unicode one makes the
/// lazy DFA give up on any non-ASCII input and fall back to a much slower engine), and plain groups
/// as non-capturing ones (rules only ask whether a pattern matches; capture slots would multiply
/// the per-thread match cache of every pattern).
fn lean_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('b') if !in_class => out.push_str("(?-u:\\b)"),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '(' if !in_class && chars.clone().next() != Some('?') => out.push_str("(?:"),
            '[' => {
                in_class = true;
                out.push(c);
            }
            ']' => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

fn builtin_specs(origin: &str) -> Result<Vec<Rule>, RulesError> {
    compile_file(BUILTIN, origin, Patterns::Lazy)
}

/// Parses and validates a rule file; each error names the rule (its id, or its position).
/// How a rule file's patterns are checked while it is parsed.
#[derive(Clone, Copy)]
enum Patterns {
    /// Left for their first use (the built-in table: a unit test compiles every one).
    Lazy,
    /// Compiled only to be checked, unless already cached (a user file, which may yet be refused:
    /// [`RuleSet::from_specs`] caches the patterns of the rule set it builds).
    Checked,
}

fn compile_file(
    toml_text: &str,
    origin: &str,
    patterns: Patterns,
) -> Result<Vec<Rule>, RulesError> {
    let syntax = |message: String| RulesError::Syntax {
        path: origin.to_string(),
        message,
    };
    let table: toml::Table = toml::from_str(toml_text).map_err(|e| syntax(e.to_string()))?;
    for key in table.keys() {
        if key != "rule" {
            return Err(syntax(format!(
                "unknown key `{key}` (a rule file holds `[[rule]]` tables only)"
            )));
        }
    }
    let entries = match table.get("rule") {
        None => return Ok(Vec::new()),
        Some(toml::Value::Array(a)) => a.as_slice(),
        Some(_) => {
            return Err(syntax(
                "`rule` must be an array of tables: `[[rule]]`".into(),
            ));
        }
    };
    let mut out: Vec<Rule> = Vec::with_capacity(entries.len());
    for (pos, value) in entries.iter().enumerate() {
        let name = value
            .get("id")
            .and_then(|v| v.as_str())
            .filter(|s| !s.trim().is_empty())
            .map_or_else(|| format!("#{}", pos + 1), str::to_string);
        let fail = |problem: String| RulesError::Rule {
            path: origin.to_string(),
            rule: name.clone(),
            problem,
        };
        let spec = RuleSpec::deserialize(value.clone()).map_err(|e| fail(e.to_string()))?;
        let rule = compile_rule(spec, patterns).map_err(fail)?;
        if out.iter().any(|r| r.id == rule.id) {
            return Err(fail("the same id is defined twice in this file".into()));
        }
        out.push(rule);
    }
    Ok(out)
}

/// A `host` / `reporting_host` list: domain names, lower-cased, without a leading dot.
fn host_list(spec: Option<OneOrMany>, key: &str) -> Result<Vec<String>, String> {
    spec.map(OneOrMany::into_vec)
        .unwrap_or_default()
        .iter()
        .map(|h| {
            let d = h.trim().trim_start_matches('.').to_ascii_lowercase();
            let valid = !d.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && !d.starts_with('-')
                && !d.contains("..");
            if valid {
                Ok(d)
            } else {
                Err(format!(
                    "bad `{key}` entry `{h}` (want a domain name such as `example.com`)"
                ))
            }
        })
        .collect()
}

fn compile_rule(spec: RuleSpec, patterns: Patterns) -> Result<Rule, String> {
    let id = spec
        .id
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or("missing `id`")?;
    let reason: Reason = spec
        .reason
        .ok_or("missing `reason`")?
        .parse()
        .map_err(|e: String| e)?;
    let text = spec.text.map(OneOrMany::into_vec).unwrap_or_default();
    for t in &text {
        if let Patterns::Checked = patterns {
            check_pattern(t).map_err(|e| pattern_problem(t, &e))?;
        }
    }
    let status = spec
        .status
        .map(OneOrMany::into_vec)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            StatusPattern::parse(s).ok_or_else(|| {
                format!("bad `status` pattern `{s}` (want e.g. `5.1.1`, `X.1.1`, `5.7.*`)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let replycode = spec
        .replycode
        .map(OneOrMany::into_vec)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            ReplyPattern::parse(s).ok_or_else(|| {
                format!("bad `replycode` pattern `{s}` (want e.g. `550`, `55X`, `5XX`)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let command = spec.command.map(OneOrMany::into_vec).unwrap_or_default();
    let confirm_status = spec
        .confirm_status
        .map(OneOrMany::into_vec)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            StatusPattern::parse(s).ok_or_else(|| {
                format!("bad `confirm_status` pattern `{s}` (want e.g. `5.1.1`, `X.1.1`, `5.7.*`)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let confirm_command = spec
        .confirm_command
        .map(OneOrMany::into_vec)
        .unwrap_or_default();
    let refute_status = spec
        .refute_status
        .map(OneOrMany::into_vec)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            StatusPattern::parse(s).ok_or_else(|| {
                format!("bad `refute_status` pattern `{s}` (want e.g. `5.7.*`, `X.2.*`)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let refute_command = spec
        .refute_command
        .map(OneOrMany::into_vec)
        .unwrap_or_default();
    let otherwise = spec
        .otherwise
        .map(|o| {
            o.parse::<Reason>()
                .map_err(|e| format!("bad `otherwise`: {e}"))
        })
        .transpose()?;
    if otherwise.is_some()
        && confirm_status.is_empty()
        && confirm_command.is_empty()
        && refute_status.is_empty()
        && refute_command.is_empty()
    {
        return Err(
            "`otherwise` needs `confirm_status`, `confirm_command`, `refute_status` or `refute_command` (it applies when they do not confirm the rule, or refute it)"
                .into(),
        );
    }
    let host = host_list(spec.host, "host")?;
    let reporting_host = host_list(spec.reporting_host, "reporting_host")?;
    let action = spec.action.map(OneOrMany::into_vec).unwrap_or_default();
    let diagnostic_type = spec
        .diagnostic_type
        .map(OneOrMany::into_vec)
        .unwrap_or_default();
    if text.is_empty()
        && status.is_empty()
        && replycode.is_empty()
        && command.is_empty()
        && action.is_empty()
        && diagnostic_type.is_empty()
    {
        return Err(
            "the rule has no condition (give at least one of `text`, `status`, `replycode`, `command`, `action`, `diagnostic_type`; `host` alone is not enough)"
                .into(),
        );
    }
    let refutable = !refute_status.is_empty() || !refute_command.is_empty();
    let otherwise_id = if refutable {
        format!("{id}.refuted")
    } else {
        format!("{id}.unconfirmed")
    };
    Ok(Rule {
        id,
        reason,
        note: spec.note,
        text,
        status,
        replycode,
        command,
        action,
        diagnostic_type,
        permanent: spec.permanent,
        host,
        reporting_host,
        confirm_status,
        confirm_command,
        refute_status,
        refute_command,
        otherwise,
        otherwise_id,
        compile: match patterns {
            Patterns::Lazy => Compile::Lazy,
            Patterns::Checked => Compile::Eager,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_cache_keeps_only_the_rule_set_built_last() {
        let file = |id: &str, pattern: &str| {
            format!("[[rule]]\nid = \"{id}\"\nreason = \"userunknown\"\ntext = '{pattern}'\n")
        };
        let cached = |p: &str| COMPILED.lock().is_ok_and(|c| c.contains_key(p));
        let first = RuleSet::builtin_with_str(&file("cache-a", "zq-cache-only-a"), "a");
        assert!(first.is_ok());
        let second = RuleSet::builtin_with_str(&file("cache-b", "zq-cache-only-b"), "b");
        assert!(second.is_ok());
        assert!(
            !cached("zq-cache-only-a"),
            "a pattern of an earlier rule file is kept"
        );
        // A refused file leaves nothing in the cache either.
        let refused = format!(
            "{}[[rule]]\nid = \"cache-d\"\nreason = \"no-such-reason\"\ntext = 'x'\n",
            file("cache-c", "zq-cache-only-c")
        );
        assert!(RuleSet::builtin_with_str(&refused, "c").is_err());
        assert!(
            !cached("zq-cache-only-c"),
            "a pattern of a refused file is kept"
        );
    }

    fn facts(diagnostic: &str) -> Facts<'_> {
        Facts {
            diagnostic,
            status: super::super::codes::find_status(diagnostic),
            replycode: super::super::codes::find_reply(diagnostic),
            ..Facts::default()
        }
    }

    /// The reason the text rules give `diagnostic` alone, their confirmations and refutations
    /// applied ([`text_reason`] gives the first matching rule's, as written).
    fn confirmed_reason(set: &RuleSet, diagnostic: &str) -> Option<Reason> {
        set.match_text_confirmed(&facts(diagnostic))
            .map(TextMatch::reason)
    }

    fn text_reason(set: &RuleSet, diagnostic: &str) -> Option<Reason> {
        set.match_text(&facts(diagnostic)).map(|r| r.reason)
    }

    #[test]
    fn a_denial_at_mail_from_and_a_missing_auth_offer() {
        let set = RuleSet::builtin();
        let at = |diagnostic: &'static str, command: Option<&'static str>| {
            set.match_text(&Facts {
                command,
                ..facts(diagnostic)
            })
            .map(|r| r.id.clone())
        };
        assert_eq!(
            at(
                "550 5.7.1 <sender@example.org>... Access denied",
                Some("MAIL")
            )
            .as_deref(),
            Some("rejected.text.denied-at-mail-from")
        );
        assert_ne!(
            at(
                "550 5.7.1 <sender@example.org>... Access denied",
                Some("RCPT")
            )
            .as_deref(),
            Some("rejected.text.denied-at-mail-from"),
            "only an answer to MAIL FROM speaks of the sender"
        );
        assert_eq!(
            text_reason(
                &set,
                "Temporary failure: the peer does not advertise AUTH capability"
            ),
            Some(Reason::Securityerror)
        );
        assert_eq!(
            text_reason(&set, "server doesn't offer SMTP AUTH"),
            Some(Reason::Securityerror)
        );
    }

    #[test]
    fn builtin_table_compiles_and_covers_every_failure_reason() {
        let rules = compile_file(BUILTIN, "<built-in>", Patterns::Lazy);
        assert!(rules.is_ok(), "{:?}", rules.err());
        let set = RuleSet::builtin();
        // Built-in patterns are compiled on first use: each must compile.
        for (p, &i) in set.patterns.iter().zip(&set.owner) {
            let id = set.rules.get(i).map_or("?", |r| r.id.as_str());
            assert!(p.force().is_ok(), "{id}: `{}` does not compile", p.source);
        }
        assert!(set.rules().len() > 50);
        for reason in Reason::ALL {
            if matches!(
                reason,
                Reason::Onhold
                    | Reason::Undefined
                    | Reason::Delivered
                    | Reason::Feedback
                    | Reason::Vacation
            ) {
                continue;
            }
            assert!(
                set.rules().iter().any(|r| r.reason == reason),
                "no rule for {reason}"
            );
        }
    }

    #[test]
    fn status_patterns() {
        let code = StatusCode::parse("5.7.26");
        let Some(code) = code else {
            panic!("5.7.26 must parse")
        };
        for p in [
            "5.7.26",
            "X.7.26",
            "5.7.*",
            "*.*.*",
            "x.7.X",
            "5.7.20-26",
            "X.7.26-26",
        ] {
            assert!(
                StatusPattern::parse(p).is_some_and(|p| p.matches(code)),
                "{p}"
            );
        }
        for p in ["5.7.2", "4.7.26", "X.1.*", "5.7.27-29"] {
            assert!(
                !StatusPattern::parse(p).is_some_and(|p| p.matches(code)),
                "{p}"
            );
        }
        for bad in [
            "5.7", "5.7.1.1", "a.b.c", "", "5..1", "5.7.1000", "5.7.9-1", "5.7.1-",
        ] {
            assert!(StatusPattern::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn reply_patterns() {
        for p in ["550", "55X", "5XX", "5**", "xxx"] {
            assert!(
                ReplyPattern::parse(p).is_some_and(|p| p.matches(ReplyCode(550))),
                "{p}"
            );
        }
        assert!(!ReplyPattern::parse("4XX").is_some_and(|p| p.matches(ReplyCode(550))));
        for bad in ["55", "5500", "5a0", ""] {
            assert!(ReplyPattern::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn patterns_are_compiled_lean() {
        assert_eq!(lean_pattern(r"\bspam\b"), r"(?-u:\b)spam(?-u:\b)");
        assert_eq!(lean_pattern(r"a\\b[\b]\d"), r"a\\b[\b]\d");
        assert_eq!(
            lean_pattern(r"(a|b)(?i:c)(?P<n>d)[(]\("),
            r"(?:a|b)(?i:c)(?P<n>d)[(]\("
        );
        let set = RuleSet::builtin();
        assert_eq!(
            text_reason(&set, "550 メール spam"),
            Some(Reason::Spamdetected)
        );
    }

    #[test]
    fn normalize_removes_continuation_prefixes() {
        let n = normalize("550-5.7.26 not accepted due to 550-5.7.26 domain's DMARC  policy");
        assert_eq!(n, "not accepted due to domain's DMARC policy");
        assert!(matches!(normalize("plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn normalize_folds_every_run_of_white_space_as_the_pattern_does() {
        for text in [
            "a\tb",
            "a\t\nb",
            "a\x0b\x0bb",
            "a \x0cb",
            "a\r\nb",
            "a  b",
            " a ",
            "a\u{a0}\u{a0}b",
            "550 5.1.1 x\n  y",
        ] {
            let both = SPACES
                .replace_all(&CONTINUATION.replace_all(text, ""), " ")
                .into_owned();
            assert_eq!(normalize(text), both, "{text:?}");
        }
    }

    #[test]
    fn provider_codes_beat_generic_wording() {
        let set = RuleSet::builtin();
        let cases: &[(&str, Reason)] = &[
            (
                "550 5.5.0 Refused by the service OFR_506 [506]",
                Reason::Spamdetected,
            ),
            (
                "421 4.2.0 Service refused, come back later OFR004_505 [505]",
                Reason::Systemerror,
            ),
            (
                "554 5.7.1 Client host rejected: policy LPN007_630",
                Reason::Policyviolation,
            ),
            (
                "421 4.7.0 [TSS04] Deferred: too many complaints about mail from 192.0.2.7",
                Reason::Badreputation,
            ),
            (
                "554 [TS03] All messages from 192.0.2.7 permanently deferred",
                Reason::Badreputation,
            ),
            (
                "550 5.7.509 Access denied, the sending domain example.org fails DMARC",
                Reason::Authfailure,
            ),
            (
                "550 5.7.606 Access denied, sending IP is banned",
                Reason::Blocked,
            ),
            (
                "550 Messages from 192.0.2.7 were refused: your network is listed (S3150)",
                Reason::Blocked,
            ),
            (
                "554 Rejected AUP#CXBL: see the provider's error code page",
                Reason::Blocked,
            ),
            ("554 192.0.2.7 has been refused IB111", Reason::Blocked),
            ("552 Message refused IB212 - content", Reason::Spamdetected),
            ("550 Ip frequency limited, try later", Reason::Speeding),
            (
                "451 4.7.650 192.0.2.7 is rate limited for its reputation (S3113)",
                Reason::Badreputation,
            ),
            (
                "550 Mail content denied by the server",
                Reason::Spamdetected,
            ),
            (
                "554 Message rejected: Email address is not verified. The following identities failed the check in region EU-WEST-1: a@example.org",
                Reason::Norelaying,
            ),
            (
                "550 Requested action not taken: mailbox unavailable (-1234567:891:-2147483648)",
                Reason::Userunknown,
            ),
            (
                "550 5.1.0 <bounces@example.org> sender rejected. See the error code page. AUP#CDRBL",
                Reason::Blocked,
            ),
            (
                "550 5.1.0 <bounces@example.org> sender rejected. See the error code list. AUP#In-1310",
                Reason::Toomanyconn,
            ),
            (
                "550 5.1.0 <bounces@example.org> sender rejected. AUP#O-1010",
                Reason::Blocked,
            ),
            (
                "421 4.7.0 <bounces@example.org> sender rejected. AUP#I-1120",
                Reason::Requireptr,
            ),
            (
                "421 4.7.0 <bounces@example.org> sender rejected. AUP#I-1230",
                Reason::Speeding,
            ),
            (
                "421 4.2.1 too busy, try later AUP#CXCNCT",
                Reason::Toomanyconn,
            ),
            (
                "550 5.7.511 Access denied, banned sender [192.0.2.9]",
                Reason::Blocked,
            ),
            (
                "550 5.7.515 Access denied, sending domain does not meet the required level",
                Reason::Authfailure,
            ),
            (
                "451 4.7.651 The mail server has been temporarily rate limited",
                Reason::Badreputation,
            ),
            (
                "550 5.7.1 Messages missing a valid Message-ID header are not accepted",
                Reason::Notcompliantrfc,
            ),
            (
                "554 5.7.1 rDNS of 192.0.2.9 fails; sender rejected AUP#CXDNS",
                Reason::Requireptr,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(text_reason(&set, text), Some(*want), "{text}");
        }
        // Look-alike numbers are not provider codes.
        assert_ne!(
            text_reason(&set, "550 5.5.0 Refused, ticket PROF_5067"),
            Some(Reason::Spamdetected)
        );
        assert_ne!(
            text_reason(&set, "queued as 25.7.6101"),
            Some(Reason::Blocked)
        );
        let policy = facts("550 5.7.1 Requested action not taken: mailbox unavailable");
        assert!(
            matches!(
                set.match_text_confirmed(&policy),
                Some(TextMatch::Unconfirmed(_, Reason::Filtered))
            ),
            "a policy code refutes it"
        );
    }

    #[test]
    fn text_rules_per_reason() {
        let set = RuleSet::builtin();
        let cases: &[(&str, Reason)] = &[
            (
                "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown in local recipient table",
                Reason::Userunknown,
            ),
            ("550 no such user here", Reason::Userunknown),
            (
                "550 The mailbox you tried to reach does not exist",
                Reason::Userunknown,
            ),
            ("550 Benutzer unbekannt", Reason::Userunknown),
            ("550 utilisateur inconnu", Reason::Userunknown),
            ("550 usuario desconocido", Reason::Userunknown),
            ("550 用户不存在", Reason::Userunknown),
            (
                "Host or domain name not found. Name service error for name=example.net type=A: Host not found",
                Reason::Hostunknown,
            ),
            (
                "550 5.1.6 recipient no longer on this server",
                Reason::Hasmoved,
            ),
            (
                "556 5.1.10 domain does not accept mail (null MX)",
                Reason::Notaccept,
            ),
            ("552 5.2.2 mailbox full", Reason::Mailboxfull),
            ("452 4.2.2 user is over quota", Reason::Mailboxfull),
            ("550 Postfach voll", Reason::Mailboxfull),
            (
                "552 5.2.3 message too large for this recipient",
                Reason::Exceedlimit,
            ),
            (
                "552 5.3.4 message size exceeds fixed limit",
                Reason::Mesgtoobig,
            ),
            ("550 5.2.1 account disabled", Reason::Suspend),
            ("550 mailbox is inactive", Reason::Suspend),
            (
                "550 5.7.1 message refused due to recipient preferences",
                Reason::Filtered,
            ),
            (
                "553 5.1.8 sender address rejected: domain not found",
                Reason::Rejected,
            ),
            (
                "554 5.7.1 Service unavailable; client host [192.0.2.1] blocked using zen.example.org",
                Reason::Blocked,
            ),
            (
                "550 5.7.1 The IP you are using is not authorized to send mail directly to this server",
                Reason::Blocked,
            ),
            (
                "550 5.7.1 rejected because of the low reputation of the sending IP",
                Reason::Badreputation,
            ),
            (
                "550 5.7.25 the sending IP does not have a PTR record",
                Reason::Requireptr,
            ),
            (
                "550 5.7.26 rejected due to the sender domain's DMARC policy",
                Reason::Authfailure,
            ),
            ("550 5.7.1 message rejected as spam", Reason::Spamdetected),
            ("554 5.7.1 virus found in message", Reason::Virusdetected),
            (
                "550 5.7.1 rejected by local policy",
                Reason::Policyviolation,
            ),
            (
                "554 5.7.9 Header error: refused by the receiving site",
                Reason::Policyviolation,
            ),
            ("550 5.6.0 invalid MIME structure", Reason::Contenterror),
            (
                "550 5.7.1 message is not RFC 5322 compliant",
                Reason::Notcompliantrfc,
            ),
            ("530 5.7.0 authentication required", Reason::Securityerror),
            (
                "530 5.7.0 must issue a STARTTLS command first",
                Reason::Failedstarttls,
            ),
            (
                "554 5.7.1 <a@example.org>: Relay access denied",
                Reason::Norelaying,
            ),
            (
                "connect to mx.example.net[192.0.2.9]:25: Connection refused",
                Reason::Networkerror,
            ),
            ("451 4.3.0 local error in processing", Reason::Systemerror),
            ("452 4.3.1 insufficient system storage", Reason::Systemfull),
            (
                "mailer error: program exited with status 75",
                Reason::Mailererror,
            ),
            (
                "500 5.5.1 syntax error, command unrecognized",
                Reason::Syntaxerror,
            ),
            (
                "421 4.7.0 too many connections from your host",
                Reason::Toomanyconn,
            ),
            (
                "421 4.7.28 rate limit exceeded, try again later",
                Reason::Speeding,
            ),
            ("retry timeout exceeded", Reason::Expired),
            (
                "mailbox is full: retry timeout exceeded",
                Reason::Mailboxfull,
            ),
            (
                "Sorry, no mail exchanger or address record for example.net. (#5.4.4)",
                Reason::Hostunknown,
            ),
            (
                "No MX record found for domain example.net",
                Reason::Hostunknown,
            ),
            (
                "an MX or SRV record indicated no SMTP service for example.net",
                Reason::Notaccept,
            ),
            ("Unrouteable address", Reason::Hostunknown),
            (
                "You are not a member of this list <owner@example.org>",
                Reason::Rejected,
            ),
            ("550 only members can post to this group", Reason::Rejected),
            (
                "Connected to 192.0.2.9 but sender was rejected. Remote host said: 550 go away",
                Reason::Rejected,
            ),
            (
                "550 5.7.0 Please use the SMTP server of your ISP to send mail",
                Reason::Blocked,
            ),
            (
                "554 mail from dynamic IP addresses is not accepted here",
                Reason::Blocked,
            ),
            ("550 Insecure Mail Relay", Reason::Norelaying),
            (
                "Deferred: 421 Warning: message still undelivered after 6 hours",
                Reason::Expired,
            ),
            (
                "Warning: could not send message for past 4 hours",
                Reason::Expired,
            ),
            (
                "We could not deliver the message after several retries, giving up",
                Reason::Expired,
            ),
            (
                "Unable to contact LDAP server. I'm not going to try again; this message has been in the queue too long.",
                Reason::Systemerror,
            ),
            (
                "550 5.4.310 Message expired, DNS query failed",
                Reason::Networkerror,
            ),
            (
                "Deferred: Name server: example.net.: host name lookup failure. Message could not be delivered for 5 days",
                Reason::Networkerror,
            ),
            (
                "550 Sorry, your sender address has been blacklisted here",
                Reason::Rejected,
            ),
            (
                "550 5.7.1 IP address 192.0.2.8 blacklisted by recipient",
                Reason::Blocked,
            ),
            (
                "451 could not load routing table for example.net",
                Reason::Systemerror,
            ),
        ];
        for (diag, want) in cases {
            assert_eq!(text_reason(&set, diag), Some(*want), "{diag}");
        }
    }

    #[test]
    fn unreachable_host_in_a_report_is_expired() {
        let set = RuleSet::builtin();
        let mut f = facts("421 Host not reachable.");
        f.action = Some("failed");
        assert_eq!(set.match_text(&f).map(|r| r.reason), Some(Reason::Expired));
        // While the sender still retries, an unreachable host is a network error.
        f.action = Some("delayed");
        assert_eq!(
            set.match_text(&f).map(|r| r.reason),
            Some(Reason::Networkerror)
        );
        // The host or domain may be named before the words.
        for diag in [
            "Domain example.net is not reachable",
            "Host mx1.example.net is unreachable",
            "remote server mail.example.net not reachable",
        ] {
            let mut f = facts(diag);
            f.action = Some("delayed");
            assert_eq!(
                set.match_text(&f).map(|r| r.reason),
                Some(Reason::Networkerror),
                "{diag}"
            );
            f.action = Some("failed");
            assert_eq!(
                set.match_text(&f).map(|r| r.reason),
                Some(Reason::Expired),
                "{diag}"
            );
        }
    }

    #[test]
    fn confirmation_fields() {
        let user = r#"
            [[rule]]
            id = "t.needs-rcpt"
            reason = "userunknown"
            text = 'zzqq gone'
            confirm_status = "X.1.1"
            confirm_command = "RCPT"
            otherwise = "filtered"
            [[rule]]
            id = "t.needs-code"
            reason = "hasmoved"
            text = 'qqzz moved'
            confirm_status = "X.1.6"
        "#;
        let Ok(set) = RuleSet::builtin_with_str(user, "t.toml") else {
            panic!("rules must load")
        };
        let got = |f: &Facts| {
            set.match_text_confirmed(f)
                .map(|m| (m.reason(), m.id().to_string()))
        };
        let mut f = facts("550 zzqq gone");
        assert_eq!(
            got(&f),
            Some((Reason::Filtered, "t.needs-rcpt.unconfirmed".into()))
        );
        f.command = Some("rcpt");
        assert_eq!(got(&f), Some((Reason::Userunknown, "t.needs-rcpt".into())));
        let f = facts("550 5.1.1 zzqq gone");
        assert_eq!(got(&f), Some((Reason::Userunknown, "t.needs-rcpt".into())));
        let mut f = facts("550 zzqq gone");
        f.hint = Some("userunknown");
        assert_eq!(got(&f), Some((Reason::Userunknown, "t.needs-rcpt".into())));
        // Without `otherwise`, an unconfirmed rule is passed over.
        assert_eq!(got(&facts("550 qqzz moved")), None);
        assert_eq!(
            got(&facts("550 5.1.6 qqzz moved")),
            Some((Reason::Hasmoved, "t.needs-code".into()))
        );

        let (rule, problem) = rule_error(
            "[[rule]]\nid = 'x.other'\nreason = 'blocked'\ntext = 'a'\notherwise = 'filtered'\n",
        );
        assert_eq!(rule, "x.other");
        assert!(problem.contains("confirm"), "{problem}");
        let (rule, problem) = rule_error(
            "[[rule]]\nid = 'x.cs'\nreason = 'blocked'\ntext = 'a'\nconfirm_status = '5.1'\n",
        );
        assert_eq!(rule, "x.cs");
        assert!(problem.contains("confirm_status"), "{problem}");
        let (rule, problem) = rule_error(
            "[[rule]]\nid = 'x.ow'\nreason = 'blocked'\ntext = 'a'\nconfirm_command = 'RCPT'\notherwise = 'nope'\n",
        );
        assert_eq!(rule, "x.ow");
        assert!(problem.contains("otherwise"), "{problem}");
    }

    #[test]
    fn an_address_said_not_to_exist_is_unknown_but_not_the_senders() {
        let set = RuleSet::builtin();
        for diag in [
            "550 The address ivy@example.net does not exist",
            "550 This address no longer exists",
            "550 The email address <ivy@example.net> doesn't exist",
        ] {
            let got = confirmed_reason(&set, diag);
            assert_eq!(got, Some(Reason::Userunknown), "{diag}");
        }
        let sender = "553 Domain of sender address <news@example.org> does not exist";
        let got = confirmed_reason(&set, sender);
        assert_ne!(got, Some(Reason::Userunknown), "{sender}");
    }

    #[test]
    fn a_message_refused_because_of_its_content_breaks_the_sites_policy() {
        let set = RuleSet::builtin();
        for diag in [
            "Message blocked because of its content",
            "554 Your message was rejected due to the message content",
            "550 Blocked because it contains a suspicious link",
        ] {
            let got = confirmed_reason(&set, diag);
            assert_eq!(got, Some(Reason::Policyviolation), "{diag}");
        }
        let spam = "550 Message rejected due to content (spam)";
        let got = confirmed_reason(&set, spam);
        assert_eq!(got, Some(Reason::Spamdetected), "{spam}");
    }

    #[test]
    fn generic_rejections_are_not_userunknown() {
        let set = RuleSet::builtin();
        for diag in [
            "550 5.7.1 rejected",
            "554 Transaction failed",
            "550 5.0.0 message rejected",
            "553 sorry, that domain isn't in my list of allowed rcpthosts",
            "550 5.1.1 sender unknown",
            "553 5.1.8 domain of sender address does not exist",
            "550 5.7.1 no such user here",
        ] {
            let got = confirmed_reason(&set, diag);
            assert_ne!(got, Some(Reason::Userunknown), "{diag}");
            assert_ne!(got, Some(Reason::Hostunknown), "{diag}");
        }
    }

    #[test]
    fn code_rules() {
        let set = RuleSet::builtin();
        let code = |s: &str| {
            let f = Facts {
                status: StatusCode::parse(s),
                ..Facts::default()
            };
            set.match_code(&f).map(|r| r.reason)
        };
        assert_eq!(code("5.1.1"), Some(Reason::Userunknown));
        assert_eq!(code("4.1.1"), Some(Reason::Userunknown));
        assert_eq!(code("5.1.2"), Some(Reason::Hostunknown));
        assert_eq!(code("5.2.2"), Some(Reason::Mailboxfull));
        assert_eq!(code("5.1.6"), Some(Reason::Hasmoved));
        assert_eq!(code("5.2.1"), Some(Reason::Suspend));
        assert_eq!(code("5.3.4"), Some(Reason::Mesgtoobig));
        assert_eq!(code("4.4.7"), Some(Reason::Expired));
        assert_eq!(code("5.7.1"), None);
        assert_eq!(code("5.0.0"), None);
        assert_eq!(code("4.0.0"), None);
        let reply = |n: u16| {
            let f = Facts {
                replycode: Some(ReplyCode(n)),
                ..Facts::default()
            };
            set.match_code(&f).map(|r| r.reason)
        };
        assert_eq!(reply(550), None);
        assert_eq!(reply(554), None);
        assert_eq!(reply(556), Some(Reason::Notaccept));
        let f = Facts {
            status: StatusCode::parse("5.3.2"),
            replycode: Some(ReplyCode(521)),
            ..Facts::default()
        };
        assert_eq!(
            set.match_code(&f).map(|r| r.reason),
            Some(Reason::Notaccept),
            "RFC 7504 521 beats the X.3.2 beside it"
        );
    }

    #[test]
    fn user_rules_override_and_go_first() {
        let user = r#"
            [[rule]]
            id = "userunknown.text.no-such-user"
            reason = "filtered"
            text = 'no such user'
            note = "local override"

            [[rule]]
            id = "local.frobnicated"
            reason = "policyviolation"
            text = ['frobnicated', 'gefrobbelt']
        "#;
        let set = RuleSet::builtin_with_str(user, "user.toml");
        let Ok(set) = set else {
            panic!("{:?}", set.err())
        };
        assert_eq!(
            set.rules().first().map(|r| r.id.as_str()),
            Some("local.frobnicated")
        );
        assert_eq!(
            text_reason(&set, "550 no such user"),
            Some(Reason::Filtered)
        );
        assert_eq!(
            text_reason(&set, "550 you were frobnicated"),
            Some(Reason::Policyviolation)
        );
        assert_eq!(
            text_reason(&set, "550 Gefrobbelt!"),
            Some(Reason::Policyviolation)
        );
        let builtin = RuleSet::builtin();
        assert_eq!(set.rules().len(), builtin.rules().len() + 1);
        let pos = |s: &RuleSet| {
            s.rules()
                .iter()
                .position(|r| r.id == "userunknown.text.no-such-user")
        };
        assert_eq!(pos(&set), pos(&builtin).map(|p| p + 1));
    }

    fn rule_error(toml_text: &str) -> (String, String) {
        match RuleSet::builtin_with_str(toml_text, "bad.toml") {
            Err(RulesError::Rule { rule, problem, .. }) => (rule, problem),
            other => panic!("expected a rule error, got {other:?}"),
        }
    }

    #[test]
    fn bad_rule_files_name_the_rule() {
        let (rule, problem) =
            rule_error("[[rule]]\nid = 'x.one'\nreason = 'nosuchreason'\ntext = 'a'\n");
        assert_eq!(rule, "x.one");
        assert!(problem.contains("nosuchreason"), "{problem}");

        let (rule, problem) =
            rule_error("[[rule]]\nid = 'x.regex'\nreason = 'blocked'\ntext = '(unclosed'\n");
        assert_eq!(rule, "x.regex");
        assert_eq!(
            problem,
            "bad `text` pattern `(unclosed`: unclosed group at character 1"
        );
        // Each problem is told in the pattern as written, never in the form it is compiled from.
        for (pattern, said) in [
            (r"mailbox (unclosed", "unclosed group at character 9"),
            (r"a\\b[z-a]", "invalid character class range"),
            (r"é(x", "unclosed group at character 2"),
            (r"x\", "incomplete escape sequence"),
            (r"(?P<n>a)(?P<n>b)", "duplicate capture group name"),
        ] {
            let toml_text =
                format!("[[rule]]\nid = 'x.p'\nreason = 'blocked'\ntext = '{pattern}'\n");
            let (rule, problem) = rule_error(&toml_text);
            assert_eq!(rule, "x.p");
            assert!(problem.contains(&format!("`{pattern}`")), "{problem}");
            assert!(problem.contains(said), "{pattern}: {problem}");
            assert!(
                !problem.contains("(?:") && !problem.contains("(?-u"),
                "{problem}"
            );
        }

        let (rule, problem) =
            rule_error("[[rule]]\nid = 'x.key'\nreason = 'blocked'\ntext = 'a'\ncolour = 'red'\n");
        assert_eq!(rule, "x.key");
        assert!(problem.contains("colour"), "{problem}");

        let (rule, problem) =
            rule_error("[[rule]]\nid = 'x.empty'\nreason = 'blocked'\nnote = 'nothing'\n");
        assert_eq!(rule, "x.empty");
        assert!(problem.contains("no condition"), "{problem}");

        let (rule, problem) = rule_error(
            "[[rule]]\nid = 'ok'\nreason = 'blocked'\ntext = 'a'\n[[rule]]\nreason = 'blocked'\ntext = 'b'\n",
        );
        assert_eq!(rule, "#2");
        assert!(problem.contains("id"), "{problem}");

        let (rule, problem) =
            rule_error("[[rule]]\nid = 'x.status'\nreason = 'blocked'\nstatus = '5.7'\n");
        assert_eq!(rule, "x.status");
        assert!(problem.contains("status"), "{problem}");

        let (rule, problem) =
            rule_error("[[rule]]\nid = 'x.reply'\nreason = 'blocked'\nreplycode = '5500'\n");
        assert_eq!(rule, "x.reply");
        assert!(problem.contains("replycode"), "{problem}");

        let (rule, problem) = rule_error("[[rule]]\nid = 'x.noreason'\ntext = 'a'\n");
        assert_eq!(rule, "x.noreason");
        assert!(problem.contains("reason"), "{problem}");

        let (rule, problem) = rule_error(
            "[[rule]]\nid = 'x.dup'\nreason = 'blocked'\ntext = 'a'\n[[rule]]\nid = 'x.dup'\nreason = 'blocked'\ntext = 'b'\n",
        );
        assert_eq!(rule, "x.dup");
        assert!(problem.contains("twice"), "{problem}");
    }

    #[test]
    fn bad_file_syntax() {
        assert!(matches!(
            RuleSet::builtin_with_str("[[rule]\nid=", "bad.toml"),
            Err(RulesError::Syntax { .. })
        ));
        assert!(matches!(
            RuleSet::builtin_with_str("rules = 1", "bad.toml"),
            Err(RulesError::Syntax { .. })
        ));
        assert!(matches!(
            RuleSet::builtin_with_file(Path::new("/nonexistent/rules.toml")),
            Err(RulesError::Io { .. })
        ));
    }

    /// The prefilter never rules out a pattern that matches.
    fn prefilter_is_sound_on(set: &RuleSet, diagnostic: &str) {
        let text = prepare(diagnostic);
        let candidates = set.prefilter.candidates(&text);
        for (i, re) in set.patterns.iter().enumerate() {
            if re.is_match(&text) {
                assert!(
                    candidates.contains(&i),
                    "pattern {} ruled out on {diagnostic:?}",
                    re.source
                );
            }
        }
    }

    #[test]
    fn builtin_patterns_are_lower_case_and_prefiltered() {
        let set = RuleSet::builtin();
        for rule in set.rules() {
            for t in &rule.text {
                assert!(
                    is_lower_case_pattern(&lean_pattern(t)),
                    "{}: `{t}` has upper-case letters",
                    rule.id
                );
            }
        }
        for text in [
            "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown",
            "552 5.2.2 Mailbox FULL; Quota exceeded for this user",
            "554 5.7.1 Message rejected as SPAM by the content filter",
            "Das Postfach ist voll, Speicherplatz erschöpft",
            "Le compte a été DÉSACTIVÉ par l'administrateur",
            "Почтовый ящик ПЕРЕПОЛНЕН",
            "SPF check FAILED for sender domain example.org; DKIM signature missing",
            "Connection timed out while talking to mx.example.net",
            "",
        ] {
            prefilter_is_sound_on(&set, text);
        }
    }

    #[test]
    fn lower_cased_text_matches_any_case() {
        let set = RuleSet::builtin();
        assert_eq!(prepare("Mailbox FULL"), "mailbox full");
        assert_eq!(prepare("ÜBERFÜLLT Konto"), "überfüllt konto");
        assert!(matches!(prepare("already lower"), Cow::Borrowed(_)));
        assert_eq!(
            text_reason(&set, "550 5.2.2 MAILBOX FULL"),
            text_reason(&set, "550 5.2.2 mailbox full")
        );
        // A user pattern with capitals of its own is still case-insensitive.
        assert!(!is_lower_case_pattern("Mailbox"));
        assert!(is_lower_case_pattern(r"\S+\p{Greek}\D"));
        assert!(!is_lower_case_pattern(r"\x41"));
        let user = RuleSet::builtin_with_str(
            "[[rule]]\nid = \"x.user\"\nreason = \"filtered\"\ntext = 'Blocked By RECIPIENT'\n",
            "test",
        );
        assert!(
            user.is_ok_and(
                |u| text_reason(&u, "blocked by recipient rules") == Some(Reason::Filtered)
            )
        );
    }

    /// The full regex engine's program of every built-in pattern, compiled once for all tests.
    static FULL: LazyLock<Vec<Regex>> = LazyLock::new(|| {
        RuleSet::builtin()
            .patterns
            .iter()
            .map(|p| {
                let source = lean_pattern(&p.source);
                full_regex(&source, !is_lower_case_pattern(&source)).expect("compiles")
            })
            .collect()
    });

    /// Every built-in pattern's program answers as the full regex engine does on `diagnostic`.
    fn programs_agree_with_the_full_engine_on(set: &RuleSet, diagnostic: &str) {
        let text = prepare(diagnostic);
        for (p, full) in set.patterns.iter().zip(FULL.iter()) {
            assert_eq!(
                p.is_match(&text),
                full.is_match(&text),
                "`{}` on {diagnostic:?}",
                p.source
            );
        }
    }

    #[test]
    fn programs_agree_with_the_full_engine() {
        let set = RuleSet::builtin();
        let lazy = set
            .patterns
            .iter()
            .filter(|p| matches!(p.force(), Ok(Program::Lazy(_))))
            .count();
        assert!(lazy * 10 >= set.patterns.len() * 9, "{lazy} lazy programs");
        for text in [
            "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
            "452 4.2.2 The email account that you tried to reach is over quota",
            "554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using zen.example.org",
            "Die E-Mail-Adresse des Empfängers existiert nicht; Postfach voll",
            "Le destinataire est inconnu : adresse invalide, boîte pleine",
            "Адресат не найден, пользователь заблокирован",
            "host mx.example.net said: 421 too many connections, try again later",
            "\u{a0}mailbox\u{a0}unavailable\u{2003}",
        ] {
            programs_agree_with_the_full_engine_on(&set, text);
        }
    }

    #[test]
    fn a_unicode_word_boundary_on_non_ascii_text_is_still_matched() {
        // `\b` is read as an ASCII boundary, but `\B` stays Unicode: "v" and "é" are both word
        // characters, so there is no boundary between them. The lazy DFA takes a Unicode boundary
        // only over ASCII text and gives up on the rest; the full engine then answers.
        let program = Program::new(r"activ\Bé").expect("compiles");
        assert!(matches!(program, Program::Lazy(_)));
        assert!(program.is_match("compte désactivé hier"));
        assert!(!program.is_match("compte désactive hier"));
        assert!(!program.is_match("activ"));
        assert!(Program::new("[a-").is_err(), "a bad pattern is an error");
    }

    proptest::proptest! {
        #[test]
        fn prefilter_is_sound(words in proptest::collection::vec(
            "(user|unknown|mailbox|full|quota|spam|spf|dkim|fail|domain|not|exist|blocked|account|disabled|no such|rejected|sender|relay|denied|timed out|Ü|é|[A-Z]{1,3}|[0-9.]{1,6}| )",
            0..24,
        )) {
            let set = RuleSet::builtin();
            prefilter_is_sound_on(&set, &words.join(" "));
            programs_agree_with_the_full_engine_on(&set, &words.join(" "));
        }
    }

    #[test]
    fn example_rule_file_loads() {
        let example = include_str!("../../config/rules.example.toml");
        let set = RuleSet::builtin_with_str(example, "rules.example.toml");
        assert!(set.is_ok(), "{:?}", set.err());
    }

    #[test]
    fn conditions_combine() {
        let user = r#"
            [[rule]]
            id = "t.data-only"
            reason = "filtered"
            text = 'zzqq'
            command = ['DATA']
            [[rule]]
            id = "t.permanent"
            reason = "blocked"
            text = 'zzqq'
            permanent = true
        "#;
        let Ok(set) = RuleSet::builtin_with_str(user, "t.toml") else {
            panic!("rules must load")
        };
        let mut f = facts("550 zzqq");
        f.command = Some("data");
        assert_eq!(
            set.match_text(&f).map(|r| r.id.as_str()),
            Some("t.data-only")
        );
        f.command = Some("RCPT");
        assert_eq!(
            set.match_text(&f).map(|r| r.id.as_str()),
            Some("t.permanent")
        );
        let f = facts("450 zzqq");
        assert_eq!(set.match_text(&f).map(|r| r.id.as_str()), None);
    }

    #[test]
    fn host_names_match_the_domain_and_its_subdomains() {
        let docomo = ["docomo.ne.jp".to_string()];
        assert!(any_host(&docomo, Some("docomo.ne.jp")));
        assert!(any_host(&docomo, Some("MX3.Docomo.NE.JP")));
        assert!(!any_host(&docomo, Some("notdocomo.ne.jp")));
        assert!(!any_host(&docomo, Some("docomo.ne.jp.example.net")));
        assert!(!any_host(&docomo, Some("ne.jp")));
        assert!(!any_host(&docomo, None));
        assert_eq!(host_name("dns; mx1.example.net."), Some("mx1.example.net"));
        assert_eq!(
            host_name("mx1.example.net [192.0.2.4]"),
            Some("mx1.example.net")
        );
        assert_eq!(host_name("  "), None);
        assert_eq!(domain_of("Ann@Example.ORG"), Some("Example.ORG"));
        assert_eq!(domain_of("no-domain"), None);
    }

    #[test]
    fn host_conditions_key_provider_rules_on_the_receiving_side() {
        let set = RuleSet::builtin();
        let docomo = |remote: &'static str, status: &'static str, command: &'static str| {
            let diagnostic = "550 Unknown user mika@example.jp";
            let f = Facts {
                status: StatusCode::parse(status),
                command: Some(command),
                remote_mta: Some(remote),
                recipient: Some("mika@example.jp"),
                ..facts(diagnostic)
            };
            set.match_text_confirmed(&f)
                .map(|m| (m.reason(), m.id().to_string()))
        };
        // A Japanese mobile carrier's "Unknown user" is also its answer to a sender the recipient
        // blocked, whatever the command; an addressing code still says the mailbox is gone.
        for command in ["DATA", "RCPT"] {
            assert_eq!(
                docomo("mx7.docomo.ne.jp", "5.0.0", command),
                Some((Reason::Filtered, "filtered.provider.jp-carrier".to_string()))
            );
        }
        assert_eq!(
            docomo("mx7.docomo.ne.jp", "5.1.1", "RCPT").map(|m| m.0),
            Some(Reason::Userunknown)
        );
        // Another provider's server keeps the general verdict: refuted after DATA, else gone.
        assert_eq!(
            docomo("mx7.example.net", "5.0.0", "DATA").map(|m| m.0),
            Some(Reason::Filtered)
        );
        assert_eq!(
            docomo("mx7.example.net", "5.0.0", "RCPT").map(|m| m.0),
            Some(Reason::Userunknown)
        );

        // The recipient's domain names the provider when no remote MTA is known.
        let gateway = |recipient: &'static str, diagnostic: &'static str| {
            set.match_text_confirmed(&Facts {
                recipient: Some(recipient),
                ..facts(diagnostic)
            })
            .map(|m| m.reason())
        };
        assert_eq!(
            gateway(
                "5550100@vtext.com",
                "550 5.7.1 Requested action not taken: no such user here"
            ),
            Some(Reason::Userunknown)
        );
        assert_eq!(
            gateway(
                "5550100@example.com",
                "550 5.7.1 Requested action not taken: no such user here"
            ),
            Some(Reason::Filtered),
            "elsewhere the policy code refutes the wording"
        );
        assert_eq!(
            gateway("5550100@vzwpix.com", "No valid recipients for this MM"),
            Some(Reason::Userunknown)
        );
        assert_eq!(
            gateway("5550100@example.com", "No valid recipients for this MM"),
            None
        );

        // A filtering service that writes the report itself is keyed on the reporting MTA.
        let filter = |reporting: &'static str, diagnostic: &'static str| {
            set.match_text_confirmed(&Facts {
                reporting_mta: Some(reporting),
                ..facts(diagnostic)
            })
            .map(|m| m.reason())
        };
        assert_eq!(
            filter("cluster9.messagelabs.com", "542 ann@example.org Rejected"),
            Some(Reason::Userunknown)
        );
        assert_eq!(
            filter(
                "cluster9.messagelabs.com",
                "550 5.7.1 ann@example.org... No such user"
            ),
            Some(Reason::Userunknown)
        );
        assert_eq!(
            filter(
                "relay.example.org",
                "550 5.7.1 ann@example.org... No such user"
            ),
            Some(Reason::Filtered)
        );
        assert_eq!(
            filter("relay.example.org", "542 ann@example.org Rejected"),
            None
        );
    }

    #[test]
    fn host_lists_are_validated() {
        let ok = RuleSet::builtin_with_str(
            "[[rule]]\nid = \"mine\"\nreason = \"blocked\"\ntext = \"zq-code-9\"\nhost = [\".Example.NET\", \"mx.example.org\"]\n",
            "user.toml",
        );
        let Ok(set) = ok else {
            panic!("a host list of domain names compiles: {:?}", ok.err())
        };
        let f = Facts {
            remote_mta: Some("dns; in.example.net"),
            ..facts("550 zq-code-9")
        };
        assert_eq!(set.match_text(&f).map(|r| r.id.as_str()), Some("mine"));
        for bad in [
            "\"a b.example\"",
            "\"\"",
            "\"user@example.com\"",
            "\"-x.example\"",
        ] {
            let text = format!(
                "[[rule]]\nid = \"bad\"\nreason = \"blocked\"\ntext = \"x\"\nhost = {bad}\n"
            );
            assert!(
                RuleSet::builtin_with_str(&text, "user.toml").is_err(),
                "{bad}"
            );
        }
        let only_host = "[[rule]]\nid = \"h\"\nreason = \"blocked\"\nhost = \"example.net\"\n";
        assert!(RuleSet::builtin_with_str(only_host, "user.toml").is_err());
    }

    #[test]
    fn causes_named_beside_generic_words() {
        let set = RuleSet::builtin();
        let with = |diagnostic: &'static str, command: Option<&'static str>| {
            set.match_text(&Facts {
                command,
                ..facts(diagnostic)
            })
            .map(|r| r.id.clone())
        };
        assert_eq!(
            with(
                "554 <pat@example.net>... Service unavailable (mail.local: unknown user: pat)",
                None
            )
            .as_deref(),
            Some("userunknown.text.local-delivery-agent")
        );
        assert_eq!(
            with(
                "Sorry, I wasn't able to establish an SMTP connection to any mail host. I'm not going to try again; this message has been in the queue too long.",
                None
            )
            .as_deref(),
            Some("networkerror.text.no-smtp-connection")
        );
        assert_eq!(
            with("500 5.3.4 Line limit exceeded", Some("DATA")).as_deref(),
            Some("mesgtoobig.text.line-length")
        );
        assert_ne!(
            with("500 5.5.2 Line too long", Some("MAIL")).as_deref(),
            Some("mesgtoobig.text.line-length"),
            "a command line over the limit is not the message's size"
        );
        assert_eq!(
            with("421 Service not available, closing channel", Some("CONN")).as_deref(),
            Some("blocked.text.refused-at-greeting")
        );
        assert_eq!(
            with("421 Service not available, closing channel", Some("RCPT")).as_deref(),
            Some("systemerror.text.internal")
        );
        assert_eq!(
            with("451 4.3.0 Error: queue file write error", None).as_deref(),
            Some("systemerror.text.internal")
        );
        // X.3.0, the mail system class without detail, is still a mail system status.
        let bare = Facts {
            status: StatusCode::parse("4.3.0"),
            ..Facts::default()
        };
        assert_eq!(
            set.match_code(&bare).map(|r| r.reason),
            Some(Reason::Systemerror)
        );
        // The fully generic codes name nothing by themselves.
        for generic in ["5.0.0", "5.7.1", "5.7.0", "5.5.0", "5.2.0", "5.1.0"] {
            let f = Facts {
                status: StatusCode::parse(generic),
                ..Facts::default()
            };
            assert!(set.match_code(&f).is_none(), "{generic}");
        }
        let specific = Facts {
            status: StatusCode::parse("5.3.5"),
            ..Facts::default()
        };
        assert_eq!(
            set.match_code(&specific).map(|r| r.reason),
            Some(Reason::Systemerror)
        );
    }
}
