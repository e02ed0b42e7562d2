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
//! - `permanent`: `true` unless the codes say transient (4.x.x / 4xx), `false` only when they do.
//!
//! Every text pattern of every rule goes into one [`RegexSet`], so one pass over the diagnostic finds
//! all rules whose wording matches. Rules with a `text` condition are "text rules", the rest
//! "code rules"; the classifier consults text rules first and code rules last (see
//! [`super::Classifier::classify`]). Within each group the first rule in table order whose
//! conditions hold wins. The built-in table lives in `builtin.toml` beside this file; a user file in
//! the same format overrides a built-in rule with the same id in place and puts new rules first.

use std::borrow::Cow;
use std::path::Path;
use std::sync::LazyLock;

use regex::{Regex, RegexSet, RegexSetBuilder};
use serde::Deserialize;

use super::Reason;
use super::codes::{ReplyCode, StatusCode};
use crate::error::RulesError;

/// The built-in rule table, in the user file format.
const BUILTIN: &str = include_str!("builtin.toml");

/// Upper bound on the compiled size of the text pattern set (bytes); generous, but finite.
const SET_SIZE_LIMIT: usize = 64 * 1024 * 1024;

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
}

impl Rule {
    /// Whether the rule has a text condition (a text rule) or only code-like conditions.
    pub fn is_text_rule(&self) -> bool {
        !self.text.is_empty()
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
        match self.permanent {
            Some(true) => !facts.transient(),
            Some(false) => facts.transient(),
            None => true,
        }
    }
}

fn one_of(allowed: &[String], value: Option<&str>) -> bool {
    allowed.is_empty()
        || value.is_some_and(|v| allowed.iter().any(|a| a.eq_ignore_ascii_case(v.trim())))
}

/// An enhanced code pattern: each part a number or a wildcard (`X`, `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatusPattern([Option<u16>; 3]);

impl StatusPattern {
    fn parse(s: &str) -> Option<StatusPattern> {
        let mut out = [None; 3];
        let mut parts = s.trim().split('.');
        for slot in &mut out {
            let part = parts.next()?;
            *slot = match part {
                "X" | "x" | "*" => None,
                p if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                    Some(p.parse().ok()?)
                }
                _ => return None,
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
            .all(|(p, v)| p.is_none_or(|p| p == v))
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
    note: Option<String>,
}

/// The compiled rule table.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Every text pattern of every rule, in rule order.
    set: RegexSet,
    /// For each pattern in `set`, the index of its rule in `rules`.
    owner: Vec<usize>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            rules: Vec::new(),
            set: RegexSet::empty(),
            owner: Vec::new(),
        }
    }
}

/// `NNN-X.Y.Z` continuation prefixes that multi-line replies leave in the middle of unfolded text.
static CONTINUATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b[245][0-9][0-9]-(?:[245]\.[0-9]{1,3}\.[0-9]{1,3} ?)?")
        .expect("the pattern is valid")
});

/// Runs of white space, folded to one space before matching.
static SPACES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s{2,}").expect("the pattern is valid"));

/// The diagnostic as the text rules see it: multi-line reply prefixes removed, spaces folded.
pub fn normalize(diagnostic: &str) -> Cow<'_, str> {
    let text = CONTINUATION.replace_all(diagnostic, "");
    match SPACES.replace_all(&text, " ") {
        Cow::Borrowed(_) => text,
        Cow::Owned(s) => Cow::Owned(s),
    }
}

impl RuleSet {
    /// The built-in rules.
    pub fn builtin() -> RuleSet {
        match Self::from_specs(builtin_specs("<built-in>"), Vec::new()) {
            Ok(set) => set,
            Err(e) => {
                tracing::error!(error = %e, "the built-in rule table does not compile");
                RuleSet::default()
            }
        }
    }

    /// The built-in rules with a user rule file merged in.
    pub fn builtin_with_file(path: &Path) -> Result<RuleSet, RulesError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::builtin_with_str(&text, &shown)
    }

    /// The built-in rules with user rules given as TOML text; `origin` names the source in errors.
    pub fn builtin_with_str(toml_text: &str, origin: &str) -> Result<RuleSet, RulesError> {
        let user = compile_file(toml_text, origin)?;
        let builtin = compile_file(BUILTIN, "<built-in>")?;
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
                patterns.push(t.as_str());
                owner.push(i);
            }
        }
        let set = RegexSetBuilder::new(&patterns)
            .case_insensitive(true)
            .size_limit(SET_SIZE_LIMIT)
            .dfa_size_limit(SET_SIZE_LIMIT)
            .build()
            .map_err(|e| RulesError::Syntax {
                path: "<rule table>".to_string(),
                message: e.to_string(),
            })?;
        Ok(RuleSet { rules, set, owner })
    }

    /// All rules, in the order they are tried.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with this id, if any.
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The first text rule whose wording matches the diagnostic and whose other conditions hold.
    pub fn match_text(&self, facts: &Facts) -> Option<&Rule> {
        if facts.diagnostic.trim().is_empty() {
            return None;
        }
        let text = normalize(facts.diagnostic);
        let matches = self.set.matches(&text);
        let mut last = usize::MAX;
        for pattern in matches.iter() {
            let Some(&i) = self.owner.get(pattern) else {
                continue;
            };
            if i == last {
                continue;
            }
            last = i;
            if let Some(rule) = self.rules.get(i)
                && rule.other_conditions_hold(facts)
            {
                return Some(rule);
            }
        }
        None
    }

    /// The first code rule (one without a text condition) whose conditions hold.
    pub fn match_code(&self, facts: &Facts) -> Option<&Rule> {
        self.rules
            .iter()
            .filter(|r| !r.is_text_rule())
            .find(|r| r.other_conditions_hold(facts))
    }
}

fn builtin_specs(origin: &str) -> Result<Vec<Rule>, RulesError> {
    compile_file(BUILTIN, origin)
}

/// Parses and validates a rule file; each error names the rule (its id, or its position).
fn compile_file(toml_text: &str, origin: &str) -> Result<Vec<Rule>, RulesError> {
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
        let rule = compile_rule(spec).map_err(fail)?;
        if out.iter().any(|r| r.id == rule.id) {
            return Err(fail("the same id is defined twice in this file".into()));
        }
        out.push(rule);
    }
    Ok(out)
}

fn compile_rule(spec: RuleSpec) -> Result<Rule, String> {
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
        regex::RegexBuilder::new(t)
            .case_insensitive(true)
            .size_limit(SET_SIZE_LIMIT)
            .build()
            .map_err(|e| format!("bad `text` pattern `{t}`: {e}"))?;
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
            "the rule has no condition (give at least one of `text`, `status`, `replycode`, `command`, `action`, `diagnostic_type`)"
                .into(),
        );
    }
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(diagnostic: &str) -> Facts<'_> {
        Facts {
            diagnostic,
            status: super::super::codes::find_status(diagnostic),
            replycode: super::super::codes::find_reply(diagnostic),
            ..Facts::default()
        }
    }

    fn text_reason(set: &RuleSet, diagnostic: &str) -> Option<Reason> {
        set.match_text(&facts(diagnostic)).map(|r| r.reason)
    }

    #[test]
    fn builtin_table_compiles_and_covers_every_failure_reason() {
        let rules = compile_file(BUILTIN, "<built-in>");
        assert!(rules.is_ok(), "{:?}", rules.err());
        let set = RuleSet::builtin();
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
        for p in ["5.7.26", "X.7.26", "5.7.*", "*.*.*", "x.7.X"] {
            assert!(
                StatusPattern::parse(p).is_some_and(|p| p.matches(code)),
                "{p}"
            );
        }
        for p in ["5.7.2", "4.7.26", "X.1.*"] {
            assert!(
                !StatusPattern::parse(p).is_some_and(|p| p.matches(code)),
                "{p}"
            );
        }
        for bad in ["5.7", "5.7.1.1", "a.b.c", "", "5..1", "5.7.1000"] {
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
    fn normalize_removes_continuation_prefixes() {
        let n = normalize("550-5.7.26 not accepted due to 550-5.7.26 domain's DMARC  policy");
        assert_eq!(n, "not accepted due to domain's DMARC policy");
        assert!(matches!(normalize("plain text"), Cow::Borrowed(_)));
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
        ];
        for (diag, want) in cases {
            assert_eq!(text_reason(&set, diag), Some(*want), "{diag}");
        }
    }

    #[test]
    fn generic_rejections_are_not_userunknown() {
        let set = RuleSet::builtin();
        for diag in [
            "550 5.7.1 rejected",
            "550 Requested action not taken: mailbox unavailable",
            "554 Transaction failed",
            "550 5.0.0 message rejected",
            "553 sorry, that domain isn't in my list of allowed rcpthosts",
            "550 5.1.1 sender unknown",
            "553 5.1.8 domain of sender address does not exist",
        ] {
            let got = text_reason(&set, diag);
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
        assert!(problem.contains("(unclosed"), "{problem}");

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
}
