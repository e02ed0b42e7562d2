//! A recipient's state as a function of its stored inputs: its bounces and the operator's decisions,
//! applied through the policy in the order of their keys (time, then type, then reason), whatever
//! order they arrived in.
//!
//! Recording extends a recipient's state when every new bounce sorts after the inputs the state
//! already includes (the live case: [`RecipientRow::policy_key`]). Otherwise, and for reclassify,
//! manual decisions and `db check`, [`derive`] computes the state, counts, counted flags and
//! automatic history again from the stored inputs, and [`rederive`] writes what differs.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError, from_secs, secs};
use crate::classify::BounceType;
use crate::policy::{self, Cause, Decision, Event, Manual, Policy, RecipientState, State};

/// Rows per multi-row statement, keeping under SQLite's 32,766 bound parameters.
pub(crate) fn rows_per_statement(columns: usize) -> usize {
    (32_000 / columns).max(1)
}

/// Most rows in one multi-row statement of the write path (a power of two).
const CHUNK_ROWS: usize = 64;

/// Most values in one `in (...)` list of the write path (a power of two).
pub(crate) const IN_LIST: usize = 256;

/// Cuts `items` for multi-row statements of `columns` bound values a row: full chunks of one
/// width, then one chunk per power of two of the rest. Each table's insert then has a few texts
/// only, which every connection keeps prepared, instead of a new text for every batch size.
pub(crate) fn fixed_chunks<T>(items: &[T], columns: usize) -> impl Iterator<Item = &[T]> {
    let bound = rows_per_statement(columns).min(CHUNK_ROWS);
    let full = 1usize << bound.ilog2();
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = if rest.len() >= full {
            full
        } else {
            1usize << rest.len().ilog2()
        };
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    })
}

/// The values of an `in (...)` list, padded to a power of two with the last (which changes
/// nothing), so that lists of any length share a few statement texts.
pub(crate) fn padded<T: Copy>(values: &[T]) -> impl Iterator<Item = T> + '_ {
    let pad = values.len().next_power_of_two() - values.len();
    values
        .iter()
        .copied()
        .chain(values.last().copied().into_iter().cycle().take(pad))
}

/// Recipients loaded and derived per round of [`rederive`].
const RECIPIENTS_PER_ROUND: usize = 500;

/// Where an input sorts among inputs of the same second: hard bounces, then complaints, then soft
/// bounces, then operator decisions (a decision applies to the bounces its second already holds).
pub(crate) fn rank(t: BounceType) -> u8 {
    match t {
        BounceType::Hard => 0,
        BounceType::Complaint => 1,
        BounceType::Soft => 2,
        BounceType::None => 3,
    }
}

/// The rank of an operator's decision.
const RANK_MANUAL: u8 = 9;

/// The order key of a policy input as text that sorts like `(at, rank, reason)`: the time shifted
/// to be positive and zero-padded (fifteen digits hold any date a mail can carry).
pub(crate) fn policy_key(at: i64, rank: u8, reason: &str) -> String {
    let at = at.clamp(-99_999_999_999_999, 899_999_999_999_999) + 100_000_000_000_000;
    format!("{at:015}:{rank}:{reason}")
}

/// The name the history stores for a change to `to`.
pub(crate) fn change_name(to: State) -> &'static str {
    match to {
        State::Suppressed => "suppressed",
        State::Active => "unsuppressed",
    }
}

/// The stored bounce type name back as a [`BounceType`].
pub(crate) fn parse_bounce_type(s: &str) -> BounceType {
    match s {
        "hard" => BounceType::Hard,
        "soft" => BounceType::Soft,
        "complaint" => BounceType::Complaint,
        _ => BounceType::None,
    }
}

/// A recipient's row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct RecipientRow {
    pub id: i64,
    pub address: String,
    pub domain: String,
    pub state: String,
    pub soft_score: i64,
    pub soft_last_counted_at: Option<i64>,
    pub manual: Option<String>,
    pub hard_count: i64,
    pub soft_count: i64,
    pub complaint_count: i64,
    pub other_count: i64,
    pub first_bounce_at: Option<i64>,
    pub last_bounce_at: Option<i64>,
    pub suppressed_at: Option<i64>,
    pub suppressed_type: Option<String>,
    pub suppressed_why: Option<String>,
    pub suppressed_bounce_id: Option<i64>,
    /// The key of the latest input the state includes; `None` when it includes none.
    pub policy_key: Option<String>,
}

/// The columns of a [`RecipientRow`], in one place for every statement that reads one.
macro_rules! recipient_columns {
    () => {
        "id, address, domain, state, soft_score, soft_last_counted_at, manual, hard_count, \
         soft_count, complaint_count, other_count, first_bounce_at, last_bounce_at, suppressed_at, \
         suppressed_type, suppressed_why, suppressed_bounce_id, policy_key"
    };
}
pub(crate) use recipient_columns;

impl RecipientRow {
    /// A recipient that nothing has happened to yet.
    pub(crate) fn new(id: i64, address: String, domain: String) -> RecipientRow {
        let mut row = RecipientRow {
            id,
            address,
            domain,
            state: String::new(),
            soft_score: 0,
            soft_last_counted_at: None,
            manual: None,
            hard_count: 0,
            soft_count: 0,
            complaint_count: 0,
            other_count: 0,
            first_bounce_at: None,
            last_bounce_at: None,
            suppressed_at: None,
            suppressed_type: None,
            suppressed_why: None,
            suppressed_bounce_id: None,
            policy_key: None,
        };
        row.reset();
        row
    }

    fn policy_state(&self) -> RecipientState {
        RecipientState {
            state: State::parse(&self.state),
            soft_score: u32::try_from(self.soft_score).unwrap_or(0),
            soft_last_counted_at: self.soft_last_counted_at.map(from_secs),
            manual: self.manual.as_deref().and_then(Manual::parse),
        }
    }

    /// Back to the state of a recipient nothing has happened to.
    fn reset(&mut self) {
        self.state = State::Active.as_str().to_owned();
        self.soft_score = 0;
        self.soft_last_counted_at = None;
        self.manual = None;
        self.hard_count = 0;
        self.soft_count = 0;
        self.complaint_count = 0;
        self.other_count = 0;
        self.first_bounce_at = None;
        self.last_bounce_at = None;
        self.suppressed_at = None;
        self.suppressed_type = None;
        self.suppressed_why = None;
        self.suppressed_bounce_id = None;
        self.policy_key = None;
    }

    /// Whether an input with this key sorts after every input the state includes, so that applying
    /// it extends the state exactly as a replay would (equal keys sort by row id, and a new row's
    /// id is the largest).
    pub(crate) fn extends_with(&self, key: &str) -> bool {
        self.policy_key.as_deref().is_none_or(|k| key >= k)
    }

    /// Counts a bounce of type `t` at `at` (unix seconds), and its time as a failure's.
    pub(crate) fn count(&mut self, t: BounceType, at: i64) {
        match t {
            BounceType::Hard => self.hard_count += 1,
            BounceType::Soft => self.soft_count += 1,
            BounceType::Complaint => self.complaint_count += 1,
            BounceType::None => self.other_count += 1,
        }
        if t != BounceType::None {
            self.first_bounce_at = Some(self.first_bounce_at.map_or(at, |f| f.min(at)));
            self.last_bounce_at = Some(self.last_bounce_at.map_or(at, |l| l.max(at)));
        }
    }

    /// Applies one input through the policy and keeps the row's own bookkeeping in step: counts,
    /// first and last failure, the suppression's time, type and why, and the policy key. For a
    /// bounce, `why` is its reason, part of its key.
    pub(crate) fn apply(
        &mut self,
        policy: &Policy,
        event: Event,
        at: DateTime<Utc>,
        why: Option<&str>,
    ) -> Decision {
        let mut st = self.policy_state();
        let d = policy::apply(policy, &mut st, event, at);
        self.state = st.state.as_str().to_owned();
        self.soft_score = i64::from(st.soft_score);
        self.soft_last_counted_at = st.soft_last_counted_at.map(secs);
        self.manual = st.manual.map(|m| m.as_str().to_owned());
        let t_secs = secs(at);
        let key = match event {
            Event::Bounce(t) => {
                self.count(t, t_secs);
                (t != BounceType::None)
                    .then(|| policy_key(t_secs, rank(t), why.unwrap_or_default()))
            }
            Event::ManualSuppress | Event::ManualUnsuppress => {
                Some(policy_key(t_secs, RANK_MANUAL, ""))
            }
        };
        if let Some(key) = key
            && self.extends_with(&key)
        {
            self.policy_key = Some(key);
        }
        if let Some(change) = d.change {
            match change.to {
                State::Suppressed => {
                    self.suppressed_at = Some(t_secs);
                    self.suppressed_type = Some(change.cause.suppressed_type().to_owned());
                    self.suppressed_why = why.map(str::to_owned);
                    self.suppressed_bounce_id = None;
                }
                State::Active => {
                    self.suppressed_at = None;
                    self.suppressed_type = None;
                    self.suppressed_why = None;
                    self.suppressed_bounce_id = None;
                }
            }
        }
        d
    }
}

/// One automatic change of state as the history stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AutoEvent {
    pub recipient_id: i64,
    pub at: i64,
    pub change: &'static str,
    pub cause: &'static str,
    pub bounce_id: Option<i64>,
    pub rule: Option<String>,
}

impl AutoEvent {
    pub(crate) fn new(
        recipient_id: i64,
        at: i64,
        change: policy::Change,
        bounce_id: Option<i64>,
        rule: Option<&str>,
    ) -> AutoEvent {
        AutoEvent {
            recipient_id,
            at,
            change: change_name(change.to),
            cause: change.cause.as_str(),
            bounce_id,
            rule: rule.map(str::to_owned),
        }
    }
}

/// A stored bounce as the policy reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StoredBounce {
    pub id: i64,
    pub message_id: i64,
    pub recipient_id: i64,
    pub at: i64,
    pub bounce_type: String,
    pub reason: String,
    pub rule: String,
    pub counted: bool,
    /// Kept but never applied: a VERP mismatch, or no proof of being about our mail (`[trust]`).
    pub not_applied: bool,
}

/// A stored history row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StoredEvent {
    pub recipient_id: i64,
    pub at: i64,
    pub change: String,
    pub cause: String,
    pub bounce_id: Option<i64>,
    pub rule: Option<String>,
    pub note: Option<String>,
}

impl StoredEvent {
    fn is_manual(&self) -> bool {
        self.cause == Cause::Manual.as_str()
    }
}

/// Everything stored about one recipient that its state depends on.
#[derive(Debug, Clone)]
pub(crate) struct History {
    pub row: RecipientRow,
    pub bounces: Vec<StoredBounce>,
    /// The whole history, manual and automatic, oldest first.
    pub events: Vec<StoredEvent>,
}

/// What the stored inputs of one recipient give.
#[derive(Debug, Clone)]
pub(crate) struct Derived {
    pub row: RecipientRow,
    /// Bounces whose counted flag must change, with the right value.
    pub counted: Vec<(i64, bool)>,
    /// The automatic history, oldest first.
    pub events: Vec<AutoEvent>,
}

/// Applies a recipient's inputs in key order, from a recipient nothing has happened to.
pub(crate) fn derive(policy: &Policy, h: &History) -> Derived {
    enum Input<'a> {
        Bounce(&'a StoredBounce, BounceType),
        Manual(&'a StoredEvent),
    }
    /// Time, rank, reason, then row id (for a decision, its place in the history).
    type Key<'a> = (i64, u8, &'a str, i64);
    let mut inputs: Vec<(Key<'_>, Input<'_>)> = Vec::with_capacity(h.bounces.len() + 1);
    for b in &h.bounces {
        let t = parse_bounce_type(&b.bounce_type);
        inputs.push((
            (b.at, rank(t), b.reason.as_str(), b.id),
            Input::Bounce(b, t),
        ));
    }
    for (i, e) in h.events.iter().enumerate().filter(|(_, e)| e.is_manual()) {
        let i = i64::try_from(i).unwrap_or(i64::MAX);
        inputs.push(((e.at, RANK_MANUAL, "", i), Input::Manual(e)));
    }
    inputs.sort_by(|a, b| a.0.cmp(&b.0));

    let mut row = h.row.clone();
    row.reset();
    let mut counted = Vec::new();
    let mut events = Vec::new();
    for (_, input) in inputs {
        match input {
            Input::Bounce(b, t) => {
                let d = if b.not_applied {
                    Decision::default()
                } else {
                    row.apply(policy, Event::Bounce(t), from_secs(b.at), Some(&b.reason))
                };
                if d.counted != b.counted {
                    counted.push((b.id, d.counted));
                }
                if let Some(change) = d.change {
                    if change.to == State::Suppressed {
                        row.suppressed_bounce_id = Some(b.id);
                    }
                    events.push(AutoEvent::new(
                        row.id,
                        b.at,
                        change,
                        Some(b.id),
                        Some(&b.rule),
                    ));
                }
            }
            Input::Manual(e) => {
                let event = if e.change == change_name(State::Suppressed) {
                    Event::ManualSuppress
                } else {
                    Event::ManualUnsuppress
                };
                row.apply(policy, event, from_secs(e.at), e.note.as_deref());
            }
        }
    }
    Derived {
        row,
        counted,
        events,
    }
}

/// One way a stored recipient differs from what its inputs give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The recipient's address.
    pub address: String,
    /// The column (or `history`, `counted`) that differs.
    pub field: String,
    /// What is stored.
    pub stored: String,
    /// What the stored bounces and decisions give.
    pub expected: String,
}

fn automatic(h: &History) -> Vec<AutoEvent> {
    h.events
        .iter()
        .filter(|e| !e.is_manual())
        .map(|e| AutoEvent {
            recipient_id: e.recipient_id,
            at: e.at,
            change: if e.change == change_name(State::Suppressed) {
                change_name(State::Suppressed)
            } else {
                change_name(State::Active)
            },
            cause: match e.cause.as_str() {
                "hard" => Cause::Hard.as_str(),
                "complaint" => Cause::Complaint.as_str(),
                "soft_threshold" => Cause::SoftThreshold.as_str(),
                _ => "other",
            },
            bounce_id: e.bounce_id,
            rule: e.rule.clone(),
        })
        .collect()
}

/// Items joined by `; `, the first three and how many more.
fn list_text(items: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = items.collect();
    if all.is_empty() {
        return "none".to_owned();
    }
    let mut text = all.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
    if all.len() > 3 {
        text.push_str(&format!("; and {} more", all.len() - 3));
    }
    text
}

/// An automatic history in a few words: `suppressed (hard) at 2026-03-01T09:00:00Z by bounce 12`.
fn history_text(events: &[AutoEvent]) -> String {
    list_text(events.iter().map(|e| {
        format!(
            "{} ({}) at {} by bounce {}",
            e.change,
            e.cause,
            from_secs(e.at).format("%Y-%m-%dT%H:%M:%SZ"),
            e.bounce_id
                .map_or_else(|| "-".to_owned(), |b| b.to_string())
        )
    }))
}

/// The differences between what is stored and what was derived, field by field.
fn differences(h: &History, d: &Derived) -> Vec<Difference> {
    fn show<T: ToString>(v: &Option<T>) -> String {
        v.as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string)
    }
    fn time(v: &Option<i64>) -> String {
        v.map_or_else(
            || "-".to_owned(),
            |t| from_secs(t).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
    }
    let (s, e) = (&h.row, &d.row);
    let fields: [(&str, String, String); 16] = [
        ("state", s.state.clone(), e.state.clone()),
        ("manual", show(&s.manual), show(&e.manual)),
        (
            "hard_count",
            s.hard_count.to_string(),
            e.hard_count.to_string(),
        ),
        (
            "soft_count",
            s.soft_count.to_string(),
            e.soft_count.to_string(),
        ),
        (
            "complaint_count",
            s.complaint_count.to_string(),
            e.complaint_count.to_string(),
        ),
        (
            "other_count",
            s.other_count.to_string(),
            e.other_count.to_string(),
        ),
        (
            "soft_score",
            s.soft_score.to_string(),
            e.soft_score.to_string(),
        ),
        (
            "soft_last_counted_at",
            time(&s.soft_last_counted_at),
            time(&e.soft_last_counted_at),
        ),
        (
            "first_bounce_at",
            time(&s.first_bounce_at),
            time(&e.first_bounce_at),
        ),
        (
            "last_bounce_at",
            time(&s.last_bounce_at),
            time(&e.last_bounce_at),
        ),
        (
            "suppressed_at",
            time(&s.suppressed_at),
            time(&e.suppressed_at),
        ),
        (
            "suppressed_type",
            show(&s.suppressed_type),
            show(&e.suppressed_type),
        ),
        (
            "suppressed_why",
            show(&s.suppressed_why),
            show(&e.suppressed_why),
        ),
        (
            "suppressed_bounce_id",
            show(&s.suppressed_bounce_id),
            show(&e.suppressed_bounce_id),
        ),
        ("policy_key", show(&s.policy_key), show(&e.policy_key)),
        (
            "history",
            history_text(&automatic(h)),
            history_text(&d.events),
        ),
    ];
    let mut out: Vec<Difference> = fields
        .into_iter()
        .filter(|(field, stored, expected)| {
            if *field == "history" {
                automatic(h) != d.events
            } else {
                stored != expected
            }
        })
        .map(|(field, stored, expected)| Difference {
            address: s.address.clone(),
            field: field.to_owned(),
            stored,
            expected,
        })
        .collect();
    if !d.counted.is_empty() {
        let shown = |flip: bool| {
            list_text(d.counted.iter().map(|(id, counted)| {
                format!(
                    "bounce {id} {}",
                    if counted ^ flip {
                        "counted"
                    } else {
                        "not counted"
                    }
                )
            }))
        };
        out.push(Difference {
            address: s.address.clone(),
            field: "counted".to_owned(),
            stored: shown(true),
            expected: shown(false),
        });
    }
    out
}

/// What [`rederive`] found for one recipient.
#[derive(Debug, Clone)]
pub(crate) struct Rederived {
    pub id: i64,
    pub address: String,
    /// The stored state before.
    pub before: State,
    /// The state its inputs give.
    pub after: State,
    /// The cause and bounce of the latest automatic change, if any.
    pub last_change: Option<(Cause, Option<i64>)>,
    /// How the stored recipient differed (filled when asked for).
    pub differences: Vec<Difference>,
}

/// What [`Store::check_recipients`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Recipients examined.
    pub recipients: u64,
    /// Recipients whose stored state differs from what their bounces and decisions give.
    pub differing: u64,
    /// Differences found (one per field).
    pub differences: u64,
    /// Whether the differences were repaired.
    pub repaired: bool,
}

impl Store {
    /// Derives every recipient again from its stored bounces and the operator's decisions and
    /// compares: state, override, counts, soft score, times, the suppression's cause, the counted
    /// flags of its bounces and its automatic history. Calls `each` for every difference; with
    /// `repair`, writes what the inputs give (500 recipients per transaction).
    pub async fn check_recipients(
        &self,
        repair: bool,
        now: DateTime<Utc>,
        each: impl FnMut(&Difference),
    ) -> Result<CheckReport, StoreError> {
        super::dispatch!(self, check_recipients(repair, now, each).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_chunks_cover_every_row_once_in_a_few_widths() {
        for n in [0usize, 1, 2, 3, 63, 127, 128, 129, 500, 1000] {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = fixed_chunks(&items, 25).collect();
            assert_eq!(chunks.concat(), items, "{n} rows");
            assert!(
                chunks
                    .iter()
                    .all(|c| c.len().is_power_of_two() && c.len() <= CHUNK_ROWS),
                "{n} rows: {:?}",
                chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
            );
        }
        // A table too wide for the usual width gets narrower chunks.
        let items = vec![0u8; 300];
        assert!(fixed_chunks(&items, 1000).all(|c| c.len() * 1000 <= 32_000));
    }

    #[test]
    fn padded_lists_repeat_the_last_value_up_to_a_power_of_two() {
        assert_eq!(padded(&[7, 8, 9]).collect::<Vec<_>>(), [7, 8, 9, 9]);
        assert_eq!(padded(&[1, 2]).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(padded::<i64>(&[]).count(), 0);
    }

    #[test]
    fn keys_sort_by_time_then_rank_then_reason() {
        let mut keys = [
            policy_key(1_000, rank(BounceType::Soft), "mailboxfull"),
            policy_key(999, RANK_MANUAL, ""),
            policy_key(1_000, rank(BounceType::Hard), "userunknown"),
            policy_key(1_000, rank(BounceType::Soft), "blocked"),
            policy_key(-5, rank(BounceType::Hard), "userunknown"),
            policy_key(1_000, RANK_MANUAL, ""),
            policy_key(1_000_000_000_000, rank(BounceType::Hard), "x"),
        ];
        keys.sort();
        let shown: Vec<&str> = keys
            .iter()
            .map(|k| k.split_once(':').map_or("", |(_, rest)| rest))
            .collect();
        assert_eq!(
            shown,
            [
                "0:userunknown",
                "9:",
                "0:userunknown",
                "2:blocked",
                "2:mailboxfull",
                "9:",
                "0:x"
            ]
        );
    }
}

super::engines!("engine/replay.rs");
