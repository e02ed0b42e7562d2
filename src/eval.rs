//! Accuracy figures: our results compared with a table of expected results (`expected.jsonl`).
//!
//! Pure: the caller reads the files and runs the classifier; an [`Evaluator`] takes the expected rows,
//! is fed each message's results, and returns [`Figures`] and the list of [`Mismatch`]es. Results are
//! matched to expected rows per file by position `n` (1-based order of the results for that file).
//!
//! [`knowledge`] is the corpus-free measure: bounces built from the documented wording of mail servers
//! and providers, scored against the reasons the fact tables give.

pub mod knowledge;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::classify::{Bounce, BounceType};

/// One row of `expected.jsonl`: what one mail should give at one recipient position.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Expected {
    /// Mail file name, relative to the corpus directory.
    pub file: String,
    /// 1-based position of the result among those the mail gives.
    pub n: usize,
    /// Enhanced status code; `""` for none; `X.0.9YY` for "no code in the mail".
    #[serde(default)]
    pub status: String,
    /// SMTP reply code; `""` for none.
    #[serde(default)]
    pub replycode: String,
    /// Reason name.
    pub reason: String,
    /// Whether the address should be suppressed now.
    #[serde(default)]
    pub hardbounce: bool,
    /// ARF feedback type; `""` for none.
    #[serde(default)]
    pub feedbacktype: String,
}

/// The fields compared for one expected row, as named in mismatch records.
pub const FIELDS: [&str; 6] = [
    "recipient",
    "status",
    "replycode",
    "reason",
    "hard_soft",
    "feedback_type",
];

/// One disagreement between an expected row and our result at that position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    /// Mail file name.
    pub file: String,
    /// Result position.
    pub n: usize,
    /// The field that disagrees (one of [`FIELDS`]), or `result` when we gave no result at `n`.
    pub field: &'static str,
    /// The expected value.
    pub expected: String,
    /// Our value (`None` when we have none).
    pub got: Option<String>,
    /// Our diagnostic, to see why.
    pub diagnostic: Option<String>,
    /// The rule that chose our reason.
    pub rule: Option<String>,
}

/// A count out of a total, shown as a percentage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Ratio {
    /// How many agreed.
    pub hits: u64,
    /// Out of how many.
    pub total: u64,
}

impl Ratio {
    /// The percentage, or `None` when the total is zero (undefined).
    pub fn percent(self) -> Option<f64> {
        (self.total > 0).then(|| self.hits as f64 * 100.0 / self.total as f64)
    }

    /// The percentage with one decimal, or `n/a`.
    pub fn display(self) -> String {
        match self.percent() {
            Some(p) => format!("{p:.1}%"),
            None => "n/a".to_string(),
        }
    }

    fn add(&mut self, hit: bool) {
        self.total += 1;
        if hit {
            self.hits += 1;
        }
    }
}

/// Everything `bounced eval` reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Files fed that have expectations: mails with at least one result, out of all of them.
    pub coverage: Ratio,
    /// Expected rows (of present files) for which a result exists at that position.
    pub rows_matched: Ratio,
    /// A result exists at the position and names a recipient.
    pub recipient: Ratio,
    /// Status agreement (the `X.0.9YY` and `""` rules apply).
    pub status: Ratio,
    /// Reply code agreement (`""` agrees with none).
    pub replycode: Ratio,
    /// Reason agreement.
    pub reason: Ratio,
    /// `hardbounce` agrees with `bounce_type == hard`.
    pub hard_soft: Ratio,
    /// Feedback type agreement (`""` agrees with none).
    pub feedback_type: Ratio,
    /// Hard precision: our hard results that are expected hard (extra hard results count against).
    pub hard_precision: Ratio,
    /// Hard recall: expected hard rows that we call hard.
    pub hard_recall: Ratio,
    /// Results at positions beyond the expected rows of a scored file.
    pub extra_results: u64,
    /// Files fed that have no expectation: parsed, not scored.
    pub unscored_files: u64,
    /// Files named in the expectations that were never fed (absent from the directory).
    pub missing_files: u64,
    /// Not-bounce files fed.
    pub not_bounce_files: u64,
    /// Results with a reason given for not-bounce files (must be 0).
    pub not_bounce_reasons: u64,
    /// Families with the most reason disagreements, worst first (at most 10).
    pub worst_families: Vec<(String, u64)>,
}

impl Figures {
    /// The per-field agreement ratios, in [`FIELDS`] order.
    fn field_ratios(&mut self) -> [&mut Ratio; 6] {
        [
            &mut self.recipient,
            &mut self.status,
            &mut self.replycode,
            &mut self.reason,
            &mut self.hard_soft,
            &mut self.feedback_type,
        ]
    }
}

/// Compares results with expected rows, one file at a time.
#[derive(Debug)]
pub struct Evaluator {
    expected: HashMap<String, Vec<Expected>>,
    seen: HashMap<String, bool>,
    figures: Figures,
    hard_tp: u64,
    hard_fp: u64,
    hard_fn: u64,
    family_reason_misses: BTreeMap<String, u64>,
}

impl Evaluator {
    /// An evaluator for these expected rows (any order; duplicates of a `(file, n)` keep the first).
    pub fn new(rows: impl IntoIterator<Item = Expected>) -> Evaluator {
        let mut expected: HashMap<String, Vec<Expected>> = HashMap::new();
        for row in rows {
            let list = expected.entry(row.file.clone()).or_default();
            if !list.iter().any(|r| r.n == row.n) {
                list.push(row);
            }
        }
        for list in expected.values_mut() {
            list.sort_by_key(|r| r.n);
        }
        Evaluator {
            expected,
            seen: HashMap::new(),
            figures: Figures::default(),
            hard_tp: 0,
            hard_fp: 0,
            hard_fn: 0,
            family_reason_misses: BTreeMap::new(),
        }
    }

    /// The expected rows of `file`, in position order (empty when it has none).
    pub fn rows(&self, file: &str) -> &[Expected] {
        self.expected.get(file).map_or(&[], Vec::as_slice)
    }

    /// Whether `file` has expected rows.
    pub fn has_expectation(&self, file: &str) -> bool {
        self.expected.contains_key(file)
    }

    /// Scores one corpus file's results (in the order the classifier gave them); returns its mismatches.
    pub fn add_file(&mut self, file: &str, results: &[Bounce]) -> Vec<Mismatch> {
        let Some(rows) = self.expected.get(file) else {
            self.figures.unscored_files += 1;
            return Vec::new();
        };
        if self.seen.insert(file.to_string(), true).is_some() {
            return Vec::new();
        }
        let mut mismatches = Vec::new();
        let f = &mut self.figures;
        f.coverage.add(!results.is_empty());
        let family = family(file).to_string();
        let mut reason_misses = 0;
        for row in rows {
            let got = row.n.checked_sub(1).and_then(|i| results.get(i));
            f.rows_matched.add(got.is_some());
            let Some(got) = got else {
                for ratio in f.field_ratios() {
                    ratio.add(false);
                }
                if row.hardbounce {
                    self.hard_fn += 1;
                }
                reason_misses += 1;
                mismatches.push(Mismatch {
                    file: file.to_string(),
                    n: row.n,
                    field: "result",
                    expected: row.reason.clone(),
                    got: None,
                    diagnostic: None,
                    rule: None,
                });
                continue;
            };
            let our_hard = got.bounce_type == BounceType::Hard;
            let checks = compare(row, got);
            for (check, ratio) in checks.into_iter().zip(f.field_ratios()) {
                ratio.add(check.agrees);
                if !check.agrees {
                    if check.field == "reason" {
                        reason_misses += 1;
                    }
                    mismatches.push(Mismatch {
                        file: file.to_string(),
                        n: row.n,
                        field: check.field,
                        expected: check.expected.to_string(),
                        got: check.got.map(str::to_string),
                        diagnostic: got.diagnostic.clone(),
                        rule: Some(got.rule.clone()),
                    });
                }
            }
            match (row.hardbounce, our_hard) {
                (true, true) => self.hard_tp += 1,
                (true, false) => self.hard_fn += 1,
                (false, true) => self.hard_fp += 1,
                (false, false) => {}
            }
        }
        let max_n = rows.iter().map(|r| r.n).max().unwrap_or(0);
        for (i, extra) in results.iter().enumerate() {
            let n = i + 1;
            if rows.iter().any(|r| r.n == n) {
                continue;
            }
            if n > max_n {
                f.extra_results += 1;
            }
            if extra.bounce_type == BounceType::Hard {
                self.hard_fp += 1;
            }
        }
        if reason_misses > 0 {
            *self.family_reason_misses.entry(family).or_default() += reason_misses;
        }
        mismatches
    }

    /// Records a file that is known not to be a bounce; every result it gives counts against us.
    pub fn add_not_bounce(&mut self, results: &[Bounce]) {
        self.figures.not_bounce_files += 1;
        self.figures.not_bounce_reasons += results.len() as u64;
    }

    /// The figures over everything fed so far.
    pub fn finish(&self) -> Figures {
        let mut f = self.figures.clone();
        f.hard_precision = Ratio {
            hits: self.hard_tp,
            total: self.hard_tp + self.hard_fp,
        };
        f.hard_recall = Ratio {
            hits: self.hard_tp,
            total: self.hard_tp + self.hard_fn,
        };
        f.missing_files = self
            .expected
            .keys()
            .filter(|k| !self.seen.contains_key(*k))
            .count() as u64;
        let mut worst: Vec<(String, u64)> = self
            .family_reason_misses
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        worst.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        worst.truncate(10);
        f.worst_families = worst;
        f
    }
}

/// One field of an expected row set against our result at the same position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldCheck<'a> {
    /// The field (one of [`FIELDS`]).
    pub field: &'static str,
    /// Whether ours agrees by the rules of `eval`.
    pub agrees: bool,
    /// The expected value, as written for people (`hard` / `not hard` for the hard/soft field).
    pub expected: &'a str,
    /// Our value.
    pub got: Option<&'a str>,
}

/// Compares every field of [`FIELDS`] between an expected row and our result, in that order.
pub fn compare<'a>(row: &'a Expected, got: &'a Bounce) -> [FieldCheck<'a>; 6] {
    let check = |field, agrees, expected, got| FieldCheck {
        field,
        agrees,
        expected,
        got,
    };
    [
        check(
            "recipient",
            got.recipient.is_some(),
            "an address",
            got.recipient.as_deref(),
        ),
        check(
            "status",
            status_agrees(&row.status, got.status.as_deref()),
            &row.status,
            got.status.as_deref(),
        ),
        check(
            "replycode",
            empty_or_equal(&row.replycode, got.replycode.as_deref()),
            &row.replycode,
            got.replycode.as_deref(),
        ),
        check(
            "reason",
            row.reason == got.reason.as_str(),
            &row.reason,
            Some(got.reason.as_str()),
        ),
        check(
            "hard_soft",
            row.hardbounce == (got.bounce_type == BounceType::Hard),
            if row.hardbounce { "hard" } else { "not hard" },
            Some(got.bounce_type.as_str()),
        ),
        check(
            "feedback_type",
            empty_or_equal(&row.feedbacktype, got.feedback_type.as_deref()),
            &row.feedbacktype,
            got.feedback_type.as_deref(),
        ),
    ]
}

/// Whether our status agrees with an expected one: `X.0.9YY` means "no code in the mail" (none, or
/// one of the same class, agrees); `""` agrees with none only; otherwise the strings must be equal.
pub fn status_agrees(expected: &str, got: Option<&str>) -> bool {
    if let Some(class) = no_code_class(expected) {
        return match got {
            None => true,
            Some(g) => g.split('.').next() == Some(class),
        };
    }
    empty_or_equal(expected, got)
}

/// The class digit of an `X.0.9YY` status (Sisimai's "no code in the mail" convention).
fn no_code_class(status: &str) -> Option<&str> {
    let mut parts = status.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let ok = parts.next().is_none()
        && class.len() == 1
        && class.bytes().all(|b| b.is_ascii_digit())
        && subject == "0"
        && detail.len() == 3
        && detail.starts_with('9')
        && detail.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(class)
}

/// `""` agrees with none; anything else must be equal.
fn empty_or_equal(expected: &str, got: Option<&str>) -> bool {
    match got {
        None => expected.is_empty(),
        Some(g) => g == expected,
    }
}

/// A file's family: its name less the trailing `-NN.eml` (`lhost-postfix-07.eml` -> `lhost-postfix`).
pub fn family(file: &str) -> &str {
    let name = file.rsplit('/').next().unwrap_or(file);
    let stem = name.strip_suffix(".eml").unwrap_or(name);
    match stem.rsplit_once('-') {
        Some((head, tail))
            if !head.is_empty() && !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) =>
        {
            head
        }
        _ => stem,
    }
}

/// Minimum figures (percentages, and a maximum for not-bounce results); a missing key is not checked.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floor {
    /// Minimum coverage (%).
    pub coverage: Option<f64>,
    /// Minimum rows matched (%).
    pub rows_matched: Option<f64>,
    /// Minimum status agreement (%).
    pub status: Option<f64>,
    /// Minimum reply code agreement (%).
    pub replycode: Option<f64>,
    /// Minimum reason agreement (%).
    pub reason: Option<f64>,
    /// Minimum hard/soft agreement (%).
    pub hard_soft: Option<f64>,
    /// Minimum hard precision (%).
    pub hard_precision: Option<f64>,
    /// Minimum hard recall (%).
    pub hard_recall: Option<f64>,
    /// Maximum number of results given for not-bounces.
    pub max_not_bounce_reasons: Option<u64>,
}

/// One figure that is on the wrong side of its floor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BelowFloor {
    /// The figure's key in the floor file.
    pub figure: &'static str,
    /// The floor (or ceiling, for `max_not_bounce_reasons`).
    pub floor: f64,
    /// The measured value; `None` when undefined (nothing to measure), which fails any floor above 0.
    pub actual: Option<f64>,
}

impl Floor {
    /// Every figure below its floor (compared at one decimal, as printed).
    pub fn check(&self, f: &Figures) -> Vec<BelowFloor> {
        let mut out = Vec::new();
        let pairs: [(&'static str, Option<f64>, Ratio); 8] = [
            ("coverage", self.coverage, f.coverage),
            ("rows_matched", self.rows_matched, f.rows_matched),
            ("status", self.status, f.status),
            ("replycode", self.replycode, f.replycode),
            ("reason", self.reason, f.reason),
            ("hard_soft", self.hard_soft, f.hard_soft),
            ("hard_precision", self.hard_precision, f.hard_precision),
            ("hard_recall", self.hard_recall, f.hard_recall),
        ];
        for (figure, floor, ratio) in pairs {
            let Some(floor) = floor else { continue };
            let actual = ratio.percent().map(round1);
            let below = match actual {
                Some(a) => a < floor,
                None => floor > 0.0,
            };
            if below {
                out.push(BelowFloor {
                    figure,
                    floor,
                    actual,
                });
            }
        }
        if let Some(max) = self.max_not_bounce_reasons
            && f.not_bounce_reasons > max
        {
            out.push(BelowFloor {
                figure: "max_not_bounce_reasons",
                floor: max as f64,
                actual: Some(f.not_bounce_reasons as f64),
            });
        }
        out
    }
}

/// Rounds to one decimal, as figures are printed.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::classify::Reason;

    /// A result for tests: `user@example.com`, failed, with these reason, type and codes.
    pub(crate) fn bounce(
        reason: Reason,
        bt: BounceType,
        status: Option<&str>,
        code: Option<&str>,
    ) -> Bounce {
        Bounce {
            recipient: Some("user@example.com".into()),
            action: Some("failed".into()),
            status: status.map(Into::into),
            replycode: code.map(Into::into),
            reason,
            bounce_type: bt,
            diagnostic: Some("550 no such user".into()),
            remote_mta: None,
            reporting_mta: None,
            date: None,
            feedback_type: None,
            rule: "test-rule".into(),
            reader: "dsn".into(),
            original_message_id: None,
            original_from: None,
            original_to: None,
            original_subject: None,
            original_list_id: None,
        }
    }

    /// A result that carries no code.
    fn uncoded(reason: Reason, bt: BounceType) -> Bounce {
        bounce(reason, bt, None, None)
    }

    fn row(file: &str, n: usize, status: &str, code: &str, reason: &str, hard: bool) -> Expected {
        Expected {
            file: file.into(),
            n,
            status: status.into(),
            replycode: code.into(),
            reason: reason.into(),
            hardbounce: hard,
            feedbacktype: String::new(),
        }
    }

    #[test]
    fn no_code_status_agrees_with_none_or_same_class() {
        assert!(status_agrees("5.0.910", None));
        assert!(status_agrees("5.0.910", Some("5.1.1")));
        assert!(status_agrees("4.0.947", Some("4.4.7")));
        assert!(!status_agrees("5.0.910", Some("4.2.2")));
        assert!(!status_agrees("4.0.947", Some("5.0.0")));
    }

    #[test]
    fn plain_status_must_be_equal_and_empty_means_none() {
        assert!(status_agrees("5.1.1", Some("5.1.1")));
        assert!(!status_agrees("5.1.1", None));
        assert!(!status_agrees("5.1.1", Some("5.1.10")));
        assert!(status_agrees("", None));
        assert!(!status_agrees("", Some("2.0.0")));
        // Not the X.0.9YY form: equality applies.
        assert!(!status_agrees("5.0.0", None));
        assert!(!status_agrees("5.0.91", None));
        assert!(!status_agrees("5.1.910", None));
        assert!(status_agrees("5.0.900", Some("5.7.1")));
    }

    #[test]
    fn family_strips_the_number_and_extension() {
        assert_eq!(family("lhost-postfix-07.eml"), "lhost-postfix");
        assert_eq!(family("rfc3464-1.eml"), "rfc3464");
        assert_eq!(family("sub/arf-11.eml"), "arf");
        assert_eq!(family("odd.eml"), "odd");
        assert_eq!(family("name-x.eml"), "name-x");
        assert_eq!(family("-12.eml"), "-12");
    }

    #[test]
    fn results_are_matched_by_position() {
        let mut ev = Evaluator::new([
            row("a-01.eml", 2, "5.2.2", "552", "mailboxfull", false),
            row("a-01.eml", 1, "5.1.1", "550", "userunknown", true),
        ]);
        let results = [
            bounce(
                Reason::Userunknown,
                BounceType::Hard,
                Some("5.1.1"),
                Some("550"),
            ),
            bounce(
                Reason::Mailboxfull,
                BounceType::Soft,
                Some("5.2.2"),
                Some("552"),
            ),
        ];
        let mism = ev.add_file("a-01.eml", &results);
        assert!(mism.is_empty(), "{mism:?}");
        let f = ev.finish();
        assert_eq!(f.rows_matched, Ratio { hits: 2, total: 2 });
        assert_eq!(f.reason, Ratio { hits: 2, total: 2 });
        assert_eq!(f.status, Ratio { hits: 2, total: 2 });
        assert_eq!(f.coverage, Ratio { hits: 1, total: 1 });

        // Same results in the other order: both positions disagree.
        let mut ev = Evaluator::new([
            row("a-01.eml", 1, "5.1.1", "550", "userunknown", true),
            row("a-01.eml", 2, "5.2.2", "552", "mailboxfull", false),
        ]);
        let swapped = [results[1].clone(), results[0].clone()];
        let mism = ev.add_file("a-01.eml", &swapped);
        let f = ev.finish();
        assert_eq!(f.reason, Ratio { hits: 0, total: 2 });
        assert_eq!(f.hard_soft, Ratio { hits: 0, total: 2 });
        assert!(
            mism.iter().any(|m| m.n == 1
                && m.field == "reason"
                && m.got.as_deref() == Some("mailboxfull"))
        );
        assert_eq!(f.worst_families, vec![("a".to_string(), 2)]);
    }

    #[test]
    fn a_missing_position_fails_every_field_once() {
        let mut ev = Evaluator::new([
            row("b-01.eml", 1, "5.1.1", "550", "userunknown", true),
            row("b-01.eml", 2, "5.1.1", "550", "userunknown", true),
        ]);
        let results = [bounce(
            Reason::Userunknown,
            BounceType::Hard,
            Some("5.1.1"),
            Some("550"),
        )];
        let mism = ev.add_file("b-01.eml", &results);
        assert_eq!(mism.len(), 1);
        assert_eq!(mism[0].field, "result");
        assert_eq!(mism[0].n, 2);
        let f = ev.finish();
        assert_eq!(f.rows_matched, Ratio { hits: 1, total: 2 });
        assert_eq!(f.recipient, Ratio { hits: 1, total: 2 });
        assert_eq!(f.reason, Ratio { hits: 1, total: 2 });
        assert_eq!(f.coverage, Ratio { hits: 1, total: 1 });
        assert_eq!(f.hard_recall, Ratio { hits: 1, total: 2 });
        assert_eq!(f.hard_precision, Ratio { hits: 1, total: 1 });
    }

    #[test]
    fn coverage_counts_mails_with_any_result() {
        let mut ev = Evaluator::new([
            row("c-01.eml", 1, "5.0.910", "", "onhold", false),
            row("c-02.eml", 1, "", "", "vacation", false),
            row("c-03.eml", 1, "5.1.1", "", "userunknown", true),
        ]);
        ev.add_file("c-01.eml", &[uncoded(Reason::Onhold, BounceType::Soft)]);
        ev.add_file("c-02.eml", &[]);
        ev.add_file("zz-unknown.eml", &[]);
        let f = ev.finish();
        assert_eq!(f.coverage, Ratio { hits: 1, total: 2 });
        assert_eq!(f.unscored_files, 1);
        assert_eq!(f.missing_files, 1);
        assert_eq!(f.status, Ratio { hits: 1, total: 2 });
        assert_eq!(f.replycode, Ratio { hits: 1, total: 2 });
        assert_eq!(f.coverage.display(), "50.0%");
    }

    #[test]
    fn hard_precision_and_recall() {
        let mut ev = Evaluator::new([
            row("h-01.eml", 1, "5.1.1", "550", "userunknown", true),
            row("h-02.eml", 1, "5.7.1", "550", "spamdetected", false),
            row("h-03.eml", 1, "5.1.2", "", "hostunknown", true),
            row("h-04.eml", 1, "5.2.2", "", "mailboxfull", false),
        ]);
        // TP
        ev.add_file(
            "h-01.eml",
            &[uncoded(Reason::Userunknown, BounceType::Hard)],
        );
        // FP
        ev.add_file(
            "h-02.eml",
            &[uncoded(Reason::Userunknown, BounceType::Hard)],
        );
        // FN
        ev.add_file("h-03.eml", &[uncoded(Reason::Onhold, BounceType::Soft)]);
        // TN, plus an extra hard result beyond the expected rows: another FP.
        ev.add_file(
            "h-04.eml",
            &[
                uncoded(Reason::Mailboxfull, BounceType::Soft),
                uncoded(Reason::Userunknown, BounceType::Hard),
            ],
        );
        let f = ev.finish();
        assert_eq!(f.hard_precision, Ratio { hits: 1, total: 3 });
        assert_eq!(f.hard_recall, Ratio { hits: 1, total: 2 });
        assert_eq!(f.hard_soft, Ratio { hits: 2, total: 4 });
        assert_eq!(f.extra_results, 1);
        assert_eq!(f.hard_precision.display(), "33.3%");
    }

    #[test]
    fn feedback_type_and_replycode_empty_rules() {
        let mut exp = row("arf-01.eml", 1, "", "", "feedback", false);
        exp.feedbacktype = "abuse".into();
        let mut ev = Evaluator::new([exp]);
        let mut b = uncoded(Reason::Feedback, BounceType::Complaint);
        b.feedback_type = Some("abuse".into());
        assert!(ev.add_file("arf-01.eml", &[b.clone()]).is_empty());
        let f = ev.finish();
        assert_eq!(f.feedback_type, Ratio { hits: 1, total: 1 });
        assert_eq!(f.replycode, Ratio { hits: 1, total: 1 });
        assert_eq!(f.hard_soft, Ratio { hits: 1, total: 1 });

        let mut ev = Evaluator::new([row("x-01.eml", 1, "", "", "userunknown", true)]);
        b.feedback_type = Some("abuse".into());
        b.replycode = Some("550".into());
        let mism = ev.add_file("x-01.eml", &[b]);
        let fields: Vec<_> = mism.iter().map(|m| m.field).collect();
        assert!(fields.contains(&"feedback_type"));
        assert!(fields.contains(&"replycode"));
        assert!(fields.contains(&"reason"));
        assert!(fields.contains(&"hard_soft"));
        assert!(mism.iter().all(|m| m.rule.as_deref() == Some("test-rule")));
    }

    #[test]
    fn not_bounces_count_every_result() {
        let mut ev = Evaluator::new([]);
        ev.add_not_bounce(&[]);
        ev.add_not_bounce(&[uncoded(Reason::Vacation, BounceType::None)]);
        let f = ev.finish();
        assert_eq!(f.not_bounce_files, 2);
        assert_eq!(f.not_bounce_reasons, 1);
    }

    #[test]
    fn a_file_fed_twice_is_scored_once() {
        let mut ev = Evaluator::new([row("d-01.eml", 1, "5.1.1", "", "userunknown", true)]);
        ev.add_file("d-01.eml", &[]);
        ev.add_file("d-01.eml", &[]);
        assert_eq!(ev.finish().rows_matched.total, 1);
    }

    #[test]
    fn worst_families_are_sorted_and_capped() {
        let mut rows = Vec::new();
        for fam in 0..12 {
            for i in 0..=fam {
                rows.push(row(
                    &format!("fam{fam:02}-{i:02}.eml"),
                    1,
                    "",
                    "",
                    "userunknown",
                    true,
                ));
            }
        }
        let files: Vec<String> = rows.iter().map(|r| r.file.clone()).collect();
        let mut ev = Evaluator::new(rows);
        for f in &files {
            ev.add_file(f, &[]);
        }
        let f = ev.finish();
        assert_eq!(f.worst_families.len(), 10);
        assert_eq!(f.worst_families[0], ("fam11".to_string(), 12));
        assert_eq!(f.worst_families[9], ("fam02".to_string(), 3));
    }

    fn figures_with(pct_hits: u64) -> Figures {
        let r = Ratio {
            hits: pct_hits,
            total: 1000,
        };
        Figures {
            coverage: r,
            rows_matched: r,
            status: r,
            replycode: r,
            reason: r,
            hard_soft: r,
            feedback_type: r,
            hard_precision: r,
            hard_recall: r,
            ..Figures::default()
        }
    }

    #[test]
    fn floors_name_every_figure_below() {
        let floor: Floor = toml::from_str(
            "coverage = 90.0\nreason = 80\nhard_precision = 95.5\nmax_not_bounce_reasons = 0\n",
        )
        .unwrap_or_default();
        assert_eq!(floor.reason, Some(80.0));
        let mut f = figures_with(900); // 90.0%
        assert!(
            floor
                .check(&f)
                .iter()
                .map(|b| b.figure)
                .eq(["hard_precision"])
        );
        f.not_bounce_reasons = 2;
        f.coverage = Ratio {
            hits: 899,
            total: 1000,
        };
        let below: Vec<_> = floor.check(&f).iter().map(|b| b.figure).collect();
        assert_eq!(
            below,
            ["coverage", "hard_precision", "max_not_bounce_reasons"]
        );
    }

    #[test]
    fn floors_compare_at_one_decimal_and_undefined_fails_above_zero() {
        let floor = Floor {
            reason: Some(90.0),
            hard_recall: Some(0.0),
            hard_precision: Some(50.0),
            ..Floor::default()
        };
        let mut f = figures_with(0);
        // 89.96% prints as 90.0%: passes a 90.0 floor.
        f.reason = Ratio {
            hits: 8996,
            total: 10000,
        };
        f.hard_recall = Ratio::default();
        f.hard_precision = Ratio::default();
        let below = floor.check(&f);
        assert_eq!(below.len(), 1);
        assert_eq!(below[0].figure, "hard_precision");
        assert_eq!(below[0].actual, None);
    }

    #[test]
    fn zero_floors_always_pass() {
        let floor: Floor = toml::from_str(
            "coverage = 0\nrows_matched = 0\nstatus = 0\nreplycode = 0\nreason = 0\nhard_soft = 0\n\
             hard_precision = 0\nhard_recall = 0\nmax_not_bounce_reasons = 0\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(floor.check(&Figures::default()).is_empty());
    }

    #[test]
    fn unknown_floor_keys_are_refused() {
        assert!(toml::from_str::<Floor>("covrage = 10\n").is_err());
    }
}
