//! When a recipient becomes suppressed: hard bounces and complaints at once, soft bounces by a score
//! over time, and an operator's `unsuppress` wins until the next hard bounce or complaint.
//!
//! Everything here is a pure function of the recipient's state, the event and its time: the caller passes
//! the time in, so tests control it and `reclassify` can replay a recipient's whole history.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::classify::BounceType;

/// Settings of the suppression policy (`[policy]` in `bounced.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Counted soft bounces that suppress an address.
    pub soft_threshold: u32,
    /// The soft score starts again from zero when the last counted soft bounce is older than this.
    pub soft_stale_after: chrono::Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            soft_threshold: 5,
            soft_stale_after: chrono::Duration::days(7),
        }
    }
}

/// Whether mail to the address goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Mail goes out.
    Active,
    /// The address is on the suppression list.
    Suppressed,
}

impl State {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Suppressed => "suppressed",
        }
    }

    /// Parses the stored name; anything unknown reads as active.
    pub fn parse(s: &str) -> State {
        if s == "suppressed" {
            State::Suppressed
        } else {
            State::Active
        }
    }
}

/// An operator's decision that automatic rules respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Manual {
    /// Suppressed by hand.
    Suppressed,
    /// Unsuppressed by hand: soft bounces no longer suppress until a hard bounce or complaint.
    Unsuppressed,
}

impl Manual {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Manual::Suppressed => "suppressed",
            Manual::Unsuppressed => "unsuppressed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Manual> {
        match s {
            "suppressed" => Some(Manual::Suppressed),
            "unsuppressed" => Some(Manual::Unsuppressed),
            _ => None,
        }
    }
}

/// What caused a change of state; stored in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A hard bounce.
    Hard,
    /// A complaint.
    Complaint,
    /// The soft score reached the threshold.
    SoftThreshold,
    /// An operator's command.
    Manual,
}

impl Cause {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Hard => "hard",
            Cause::Complaint => "complaint",
            Cause::SoftThreshold => "soft_threshold",
            Cause::Manual => "manual",
        }
    }

    /// The `suppressed_type` this cause gives a suppressed address.
    pub fn suppressed_type(self) -> &'static str {
        match self {
            Cause::Hard => "hard",
            Cause::Complaint => "complaint",
            Cause::SoftThreshold => "soft",
            Cause::Manual => "manual",
        }
    }
}

/// The part of a recipient's row the policy reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipientState {
    /// Current state.
    pub state: State,
    /// Counted soft bounces since the score last reset.
    pub soft_score: u32,
    /// When the last counted soft bounce happened.
    pub soft_last_counted_at: Option<DateTime<Utc>>,
    /// The operator's override, if any.
    pub manual: Option<Manual>,
}

impl Default for RecipientState {
    fn default() -> Self {
        RecipientState {
            state: State::Active,
            soft_score: 0,
            soft_last_counted_at: None,
            manual: None,
        }
    }
}

/// Something that happens to a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A classified bounce of this type.
    Bounce(BounceType),
    /// `bounced suppress`.
    ManualSuppress,
    /// `bounced unsuppress`.
    ManualUnsuppress,
}

/// A change of state and its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The new state.
    pub to: State,
    /// Why.
    pub cause: Cause,
}

/// What [`apply`] decided for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    /// The event was a soft bounce that raised the score.
    pub counted: bool,
    /// The state changed.
    pub change: Option<Change>,
}

/// The UTC calendar day of a time, as a day number.
fn day(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

/// Applies one event at time `at` to a recipient's state and says what changed.
///
/// - hard bounce, complaint: suppress now, and clear any manual override;
/// - soft bounce: counts at most once per UTC day (a bounce on the same day as, or before, the last
///   counted one does not count); the score restarts when the last counted one is older than
///   `soft_stale_after`; reaching `soft_threshold` suppresses, unless an operator unsuppressed the
///   address;
/// - `none` (delivered, vacation): nothing;
/// - manual suppress / unsuppress: done, and remembered as an override.
pub fn apply(
    policy: &Policy,
    st: &mut RecipientState,
    event: Event,
    at: DateTime<Utc>,
) -> Decision {
    let mut d = Decision::default();
    match event {
        Event::Bounce(BounceType::None) => {}
        Event::Bounce(t @ (BounceType::Hard | BounceType::Complaint)) => {
            st.manual = None;
            if st.state != State::Suppressed {
                st.state = State::Suppressed;
                let cause = if t == BounceType::Hard {
                    Cause::Hard
                } else {
                    Cause::Complaint
                };
                d.change = Some(Change {
                    to: State::Suppressed,
                    cause,
                });
            }
        }
        Event::Bounce(BounceType::Soft) => {
            let counts = match st.soft_last_counted_at {
                None => true,
                Some(last) => day(at) > day(last),
            };
            if counts {
                if let Some(last) = st.soft_last_counted_at
                    && at - last > policy.soft_stale_after
                {
                    st.soft_score = 0;
                }
                st.soft_score = st.soft_score.saturating_add(1);
                st.soft_last_counted_at = Some(at);
                d.counted = true;
                if st.soft_score >= policy.soft_threshold
                    && st.state != State::Suppressed
                    && st.manual != Some(Manual::Unsuppressed)
                {
                    st.state = State::Suppressed;
                    d.change = Some(Change {
                        to: State::Suppressed,
                        cause: Cause::SoftThreshold,
                    });
                }
            }
        }
        Event::ManualSuppress => {
            st.manual = Some(Manual::Suppressed);
            if st.state != State::Suppressed {
                st.state = State::Suppressed;
                d.change = Some(Change {
                    to: State::Suppressed,
                    cause: Cause::Manual,
                });
            }
        }
        Event::ManualUnsuppress => {
            st.manual = Some(Manual::Unsuppressed);
            st.soft_score = 0;
            st.soft_last_counted_at = None;
            if st.state != State::Active {
                st.state = State::Active;
                d.change = Some(Change {
                    to: State::Active,
                    cause: Cause::Manual,
                });
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn soft(p: &Policy, st: &mut RecipientState, at: DateTime<Utc>) -> Decision {
        apply(p, st, Event::Bounce(BounceType::Soft), at)
    }

    #[test]
    fn hard_and_complaint_suppress_at_once() {
        let p = Policy::default();
        for (ty, cause) in [
            (BounceType::Hard, Cause::Hard),
            (BounceType::Complaint, Cause::Complaint),
        ] {
            let mut st = RecipientState::default();
            let d = apply(&p, &mut st, Event::Bounce(ty), t(1, 0));
            assert_eq!(
                d.change,
                Some(Change {
                    to: State::Suppressed,
                    cause
                })
            );
            assert_eq!(st.state, State::Suppressed);
            // A second one changes nothing more.
            let d = apply(&p, &mut st, Event::Bounce(ty), t(2, 0));
            assert_eq!(d.change, None);
        }
    }

    #[test]
    fn none_never_counts() {
        let p = Policy {
            soft_threshold: 1,
            ..Policy::default()
        };
        let mut st = RecipientState::default();
        for d in 1..10 {
            let out = apply(&p, &mut st, Event::Bounce(BounceType::None), t(d, 0));
            assert_eq!(out, Decision::default());
        }
        assert_eq!(st, RecipientState::default());
    }

    #[test]
    fn soft_counts_once_per_day_and_suppresses_at_threshold() {
        let p = Policy::default();
        let mut st = RecipientState::default();
        // Three on day 1: one counts.
        assert!(soft(&p, &mut st, t(1, 1)).counted);
        assert!(!soft(&p, &mut st, t(1, 5)).counted);
        assert!(!soft(&p, &mut st, t(1, 23)).counted);
        assert_eq!(st.soft_score, 1);
        for d in 2..=4 {
            let out = soft(&p, &mut st, t(d, 9));
            assert!(out.counted);
            assert_eq!(out.change, None);
        }
        assert_eq!(st.soft_score, 4);
        let out = soft(&p, &mut st, t(5, 9));
        assert_eq!(
            out.change,
            Some(Change {
                to: State::Suppressed,
                cause: Cause::SoftThreshold
            })
        );
        assert_eq!(st.soft_score, 5);
    }

    #[test]
    fn soft_bounce_older_than_the_last_counted_does_not_count() {
        let p = Policy::default();
        let mut st = RecipientState::default();
        assert!(soft(&p, &mut st, t(5, 0)).counted);
        assert!(!soft(&p, &mut st, t(3, 0)).counted);
        assert_eq!(st.soft_last_counted_at, Some(t(5, 0)));
    }

    #[test]
    fn soft_score_resets_when_stale() {
        let p = Policy::default();
        let mut st = RecipientState::default();
        for d in 1..=4 {
            soft(&p, &mut st, t(d, 12));
        }
        assert_eq!(st.soft_score, 4);
        // Exactly seven days later is not yet stale.
        soft(&p, &mut st, t(11, 12));
        assert_eq!(st.soft_score, 5);
        assert_eq!(st.state, State::Suppressed);

        let mut st = RecipientState::default();
        for d in 1..=4 {
            soft(&p, &mut st, t(d, 12));
        }
        // Seven days and an hour: stale, the score starts again at one.
        let out = soft(&p, &mut st, t(11, 13));
        assert!(out.counted);
        assert_eq!(out.change, None);
        assert_eq!(st.soft_score, 1);
        assert_eq!(st.state, State::Active);
    }

    #[test]
    fn manual_unsuppress_wins_over_soft_until_hard_or_complaint() {
        let p = Policy {
            soft_threshold: 2,
            ..Policy::default()
        };
        let mut st = RecipientState::default();
        soft(&p, &mut st, t(1, 0));
        soft(&p, &mut st, t(2, 0));
        assert_eq!(st.state, State::Suppressed);

        let out = apply(&p, &mut st, Event::ManualUnsuppress, t(3, 0));
        assert_eq!(
            out.change,
            Some(Change {
                to: State::Active,
                cause: Cause::Manual
            })
        );
        assert_eq!(st.soft_score, 0);
        for d in 4..10 {
            assert_eq!(soft(&p, &mut st, t(d, 0)).change, None);
        }
        assert_eq!(st.state, State::Active);
        assert!(st.soft_score >= 2);

        let out = apply(&p, &mut st, Event::Bounce(BounceType::Complaint), t(11, 0));
        assert_eq!(
            out.change,
            Some(Change {
                to: State::Suppressed,
                cause: Cause::Complaint
            })
        );
        assert_eq!(st.manual, None);
    }

    #[test]
    fn manual_unsuppress_then_hard_suppresses() {
        let p = Policy::default();
        let mut st = RecipientState::default();
        apply(&p, &mut st, Event::Bounce(BounceType::Hard), t(1, 0));
        apply(&p, &mut st, Event::ManualUnsuppress, t(2, 0));
        assert_eq!(st.state, State::Active);
        let out = apply(&p, &mut st, Event::Bounce(BounceType::Hard), t(3, 0));
        assert_eq!(out.change.map(|c| c.cause), Some(Cause::Hard));
        assert_eq!(st.state, State::Suppressed);
    }

    #[test]
    fn manual_suppress() {
        let p = Policy::default();
        let mut st = RecipientState::default();
        let out = apply(&p, &mut st, Event::ManualSuppress, t(1, 0));
        assert_eq!(out.change.map(|c| c.cause), Some(Cause::Manual));
        assert_eq!(st.manual, Some(Manual::Suppressed));
        let out = apply(&p, &mut st, Event::ManualSuppress, t(1, 1));
        assert_eq!(out.change, None);
    }
}

/// `[trust]`: proof that a bounce is about mail we sent, required before it may change a
/// recipient's state. Anyone can mail the bounce address; a forged report naming an address would
/// otherwise suppress it. With nothing set, every bounce is trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// The returned original's `List-Id` is one of these.
    pub list_ids: Vec<String>,
    /// The domain of the returned original's `Message-ID` is one of these.
    pub message_id_domains: Vec<String>,
    /// The bounce came to a VERP address that names its recipient.
    pub verp: bool,
    /// The returned original carries an `X-Listmonk-Campaign` header; with `campaigns` set, one of
    /// those values.
    pub listmonk_campaign: bool,
    /// The campaign UUIDs accepted when `listmonk_campaign` is set; empty means any.
    pub campaigns: Vec<String>,
}

/// What a bounce offers as proof of being about our mail.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    /// The returned original's `List-Id`.
    pub list_id: Option<&'a str>,
    /// The returned original's `Message-ID`.
    pub message_id: Option<&'a str>,
    /// The returned original's `X-Listmonk-Campaign`.
    pub campaign: Option<&'a str>,
    /// The message came to a VERP address naming this bounce's recipient.
    pub verp_matches: bool,
}

impl Trust {
    /// Whether any check is configured.
    pub fn enabled(&self) -> bool {
        !self.list_ids.is_empty()
            || !self.message_id_domains.is_empty()
            || self.verp
            || self.listmonk_campaign
    }

    /// Whether a bounce with this evidence may change a recipient's state: always when no check
    /// is configured, else when any configured check matches.
    pub fn trusts(&self, e: &Evidence<'_>) -> bool {
        if !self.enabled() {
            return true;
        }
        let list = e.list_id.is_some_and(|l| {
            let l = l.trim().trim_matches(['<', '>']);
            self.list_ids
                .iter()
                .any(|want| want.eq_ignore_ascii_case(l))
        });
        let domain = e
            .message_id
            .and_then(|m| m.trim().trim_matches(['<', '>']).rsplit_once('@'))
            .is_some_and(|(_, d)| {
                self.message_id_domains
                    .iter()
                    .any(|want| want.eq_ignore_ascii_case(d))
            });
        let campaign = self.listmonk_campaign
            && e.campaign.is_some_and(|c| {
                !c.trim().is_empty()
                    && (self.campaigns.is_empty()
                        || self
                            .campaigns
                            .iter()
                            .any(|want| want.eq_ignore_ascii_case(c.trim())))
            });
        list || domain || campaign || (self.verp && e.verp_matches)
    }
}

#[cfg(test)]
mod trust_tests {
    use super::*;

    #[test]
    fn trusts_everything_when_off_and_any_match_when_on() {
        let none = Evidence::default();
        assert!(Trust::default().trusts(&none));
        let t = Trust {
            list_ids: vec!["news.example.org".into()],
            message_id_domains: vec!["lists.example.org".into()],
            verp: true,
            listmonk_campaign: true,
            campaigns: Vec::new(),
        };
        assert!(!t.trusts(&none));
        assert!(t.trusts(&Evidence {
            list_id: Some("<News.Example.org>"),
            ..none
        }));
        assert!(!t.trusts(&Evidence {
            list_id: Some("other.example.org"),
            ..none
        }));
        assert!(t.trusts(&Evidence {
            message_id: Some("<abc.123@lists.example.org>"),
            ..none
        }));
        assert!(!t.trusts(&Evidence {
            message_id: Some("abc@evil.example"),
            ..none
        }));
        assert!(t.trusts(&Evidence {
            campaign: Some("5e1b"),
            ..none
        }));
        assert!(t.trusts(&Evidence {
            verp_matches: true,
            ..none
        }));
        let only = Trust {
            listmonk_campaign: true,
            campaigns: vec!["5e1b".into()],
            ..Trust::default()
        };
        assert!(!only.trusts(&Evidence {
            campaign: Some("9999"),
            ..none
        }));
    }
}
