//! Read queries: plain row structs, no formatting. Long results are streams.

use std::fmt;

use chrono::{DateTime, Utc};
use futures_util::stream::{BoxStream, StreamExt};
use serde::{Serialize, Serializer};
use sqlx::Sqlite;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteTypeInfo, SqliteValueRef};

use super::{Store, StoreError, from_secs, normalize_address, secs};
use crate::classify::{BounceType, Reason};

/// A point in time as the database stores it (unix seconds), shown as RFC 3339 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// RFC 3339 in UTC with a `Z`, second precision: `2026-03-01T09:00:00Z`.
    pub fn rfc3339(&self) -> String {
        self.0.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%SZ"))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl sqlx::Type<Sqlite> for Timestamp {
    fn type_info() -> SqliteTypeInfo {
        <i64 as sqlx::Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as sqlx::Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Sqlite> for Timestamp {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <i64 as sqlx::Decode<Sqlite>>::decode(value)?;
        Ok(Timestamp(from_secs(s)))
    }
}

/// A recipient's current state and counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RecipientInfo {
    /// Normalized address.
    pub address: String,
    /// Its domain, lower-cased.
    pub domain: String,
    /// `active` or `suppressed`.
    pub state: String,
    /// Hard bounces recorded.
    pub hard_count: i64,
    /// Soft bounces recorded (counted or not).
    pub soft_count: i64,
    /// Complaints recorded.
    pub complaint_count: i64,
    /// Delivered and vacation notices recorded.
    pub other_count: i64,
    /// Counted soft bounces since the score last reset.
    pub soft_score: i64,
    /// The last soft bounce that counted.
    pub soft_last_counted_at: Option<Timestamp>,
    /// The first failure.
    pub first_bounce_at: Option<Timestamp>,
    /// The latest failure.
    pub last_bounce_at: Option<Timestamp>,
    /// When it was suppressed.
    pub suppressed_at: Option<Timestamp>,
    /// `hard`, `complaint`, `soft` or `manual`.
    pub suppressed_type: Option<String>,
    /// The reason name, or the operator's words.
    pub suppressed_why: Option<String>,
    /// `suppressed` or `unsuppressed` when an operator decided.
    pub manual: Option<String>,
}

/// One change of a recipient's state, with the bounce that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EventRow {
    /// When.
    pub at: Timestamp,
    /// `suppressed` or `unsuppressed`.
    pub change: String,
    /// `hard`, `complaint`, `soft_threshold` or `manual`.
    pub cause: String,
    /// The bounce that caused it.
    pub bounce_id: Option<i64>,
    /// The rule that classified that bounce.
    pub rule: Option<String>,
    /// The bounce's reason.
    pub reason: Option<String>,
    /// The bounce's status code.
    pub status: Option<String>,
    /// The bounce's diagnostic.
    pub diagnostic: Option<String>,
    /// Where the bounce came from.
    pub source: Option<String>,
    /// The operator's words, for manual changes.
    pub note: Option<String>,
}

/// One stored bounce, with its recipient and the message's source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct BounceRow {
    /// Row id.
    pub id: i64,
    /// The message's row id.
    pub message_id: i64,
    /// When the failure happened.
    pub at: Timestamp,
    /// The normalized address, or the address as the report gave it when it could not be normalized.
    pub recipient: Option<String>,
    /// `failed`, `delayed`, ...
    pub action: Option<String>,
    /// Enhanced status code.
    pub status: Option<String>,
    /// SMTP reply code.
    pub replycode: Option<String>,
    /// The reason.
    pub reason: String,
    /// `hard`, `soft`, `complaint` or `none`.
    pub bounce_type: String,
    /// The remote server's words.
    pub diagnostic: Option<String>,
    /// The host that refused.
    pub remote_mta: Option<String>,
    /// ARF feedback type.
    pub feedback_type: Option<String>,
    /// The rule that chose the reason.
    pub rule: String,
    /// The reader that recognised the message.
    pub reader: String,
    /// Whether this soft bounce raised the score.
    pub counted: bool,
    /// The bounce address names another recipient (VERP): this report was not about an address
    /// the message was sent to, so it was recorded but never applied.
    pub verp_mismatch: bool,
    /// `[trust]` was configured and the bounce offered no proof of being about mail we sent: it
    /// was recorded but never applied.
    pub untrusted: bool,
    /// The returned original's Message-ID.
    pub original_message_id: Option<String>,
    /// The message's source.
    pub source: String,
}

/// Which bounces [`Store::bounces`] returns.
#[derive(Debug, Clone, Default)]
pub struct BounceFilter {
    /// Failures at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Failures before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only this reason.
    pub reason: Option<Reason>,
    /// Only this bounce type.
    pub bounce_type: Option<BounceType>,
    /// Only this recipient domain (lower-cased before matching).
    pub domain: Option<String>,
    /// Only this normalized address.
    pub recipient: Option<String>,
    /// At most this many rows, newest first.
    pub limit: Option<u64>,
}

/// One stored message: where it came from, what it was, and why it could not be read (its raw
/// bytes come from [`Store::message_raw`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MessageRow {
    /// Row id (`bounced query message ID`).
    pub id: i64,
    /// Hex SHA-256 of the raw bytes.
    pub sha256: String,
    /// Where it came from: `file:<path>`, `maildir:<path>`, `imap:<account>/<mailbox>/...`.
    pub source: String,
    /// When it reached us.
    pub received_at: Timestamp,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// `dsn`, `text`, `feedback`, `autoreply`, `not_bounce` or `error`.
    pub kind: String,
    /// The reader that recognised it, or `none`.
    pub reader: String,
    /// Why it could not be read, for kind `error`.
    pub error: Option<String>,
    /// The returned original's Message-ID.
    pub original_message_id: Option<String>,
    /// The returned original's List-Id.
    pub original_list_id: Option<String>,
    /// The recipient its VERP bounce address names.
    pub verp_recipient: Option<String>,
    /// Length of the raw message in bytes.
    pub raw_size: i64,
    /// Bounce rows recorded from it.
    pub bounces: i64,
}

/// Which messages [`Store::messages`] returns.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Only this kind (`error`, `not_bounce`, `dsn`, ...).
    pub kind: Option<String>,
    /// Received at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Received before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many rows, newest first.
    pub limit: Option<u64>,
}

/// The columns of a [`MessageRow`].
macro_rules! message_columns {
    () => {
        "select m.id, m.sha256, m.source, m.received_at, m.recorded_at, m.kind, m.reader, m.error, \
         m.original_message_id, m.original_list_id, m.verp_recipient, m.raw_size, \
         (select count(*) from bounces b where b.message_id = m.id) as bounces from messages m "
    };
}

/// What [`Store::stats`] groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsBy {
    /// Reason name.
    Reason,
    /// Recipient domain.
    Domain,
    /// Bounce type.
    Type,
    /// UTC day of the failure.
    Day,
}

/// One group of [`Store::stats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatRow {
    /// The group: a reason, domain, type or `YYYY-MM-DD`.
    pub key: String,
    /// Bounces in the group.
    pub bounces: i64,
    /// Of which hard.
    pub hard: i64,
    /// Of which soft.
    pub soft: i64,
    /// Of which complaints.
    pub complaint: i64,
    /// Of which not failures.
    pub none: i64,
    /// Distinct recipients.
    pub recipients: i64,
}

#[derive(sqlx::FromRow)]
struct RawStat {
    key: Option<String>,
    bounces: i64,
    hard: i64,
    soft: i64,
    complaint: i64,
    none: i64,
    recipients: i64,
}

#[derive(sqlx::FromRow)]
struct RawDayStat {
    day: i64,
    bounces: i64,
    hard: i64,
    soft: i64,
    complaint: i64,
    none: i64,
    recipients: i64,
}

/// Totals over the whole database, or a period of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Summary {
    /// Messages stored.
    pub messages: i64,
    /// Messages per kind (`dsn`, `text`, `not_bounce`, `error`, ...).
    pub kinds: Vec<(String, i64)>,
    /// Bounces stored.
    pub bounces: i64,
    /// Bounces per type.
    pub bounce_types: Vec<(String, i64)>,
    /// Bounces about another recipient than the one the bounce address names (VERP): recorded,
    /// never applied.
    pub verp_mismatches: i64,
    /// Bounces without the proof `[trust]` asks for: recorded, never applied.
    pub untrusted: i64,
    /// Recipients known.
    pub recipients: i64,
    /// Suppressed recipients per suppression type (`hard`, `complaint`, `soft`, `manual`).
    pub suppressed: Vec<(String, i64)>,
}

/// The suppression types an export can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportTypes {
    /// Suppressed by a hard bounce.
    pub hard: bool,
    /// Suppressed by a complaint.
    pub complaint: bool,
    /// Suppressed by the soft score.
    pub soft: bool,
    /// Suppressed by an operator.
    pub manual: bool,
}

impl Default for ExportTypes {
    fn default() -> Self {
        ExportTypes {
            hard: true,
            complaint: true,
            soft: true,
            manual: true,
        }
    }
}

impl ExportTypes {
    /// Parses `hard,complaint,soft-suppressed,manual` (any subset, any order).
    pub fn parse(s: &str) -> Result<ExportTypes, String> {
        let mut t = ExportTypes {
            hard: false,
            complaint: false,
            soft: false,
            manual: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "hard" => t.hard = true,
                "complaint" => t.complaint = true,
                "soft-suppressed" | "soft" => t.soft = true,
                "manual" => t.manual = true,
                other => {
                    return Err(format!(
                        "unknown type `{other}` (expected hard, complaint, soft-suppressed, manual)"
                    ));
                }
            }
        }
        if t == (ExportTypes {
            hard: false,
            complaint: false,
            soft: false,
            manual: false,
        }) {
            return Err("no type given".into());
        }
        Ok(t)
    }
}

/// One suppressed address for an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ExportRow {
    /// The address.
    pub email: String,
    /// What suppressed it: `hard`, `complaint`, `soft` or `manual`.
    pub bounce_type: String,
    /// The reason of the bounce that suppressed it (`manual` for an operator's decision).
    pub reason: String,
    /// That bounce's enhanced status code.
    pub status: Option<String>,
    /// That bounce's SMTP reply code.
    pub replycode: Option<String>,
    /// That bounce's diagnostic, or the operator's words.
    pub diagnostic: Option<String>,
    /// The first failure (or the suppression, when there was none).
    pub first_seen: Timestamp,
    /// The latest failure (or the suppression).
    pub last_seen: Timestamp,
    /// Failures recorded (hard, soft and complaints).
    pub count: i64,
    /// When it was suppressed.
    pub suppressed_at: Timestamp,
}

/// Selection for [`Store::export_rows`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportFilter {
    /// Which suppression types.
    pub types: ExportTypes,
    /// Only addresses suppressed at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only addresses suppressed before this time.
    pub until: Option<DateTime<Utc>>,
}

fn day_string(day: i64) -> String {
    from_secs(day.saturating_mul(86_400))
        .format("%Y-%m-%d")
        .to_string()
}

impl Store {
    /// The stored form of an address: the exact normalized address when known, else the one
    /// address that matches it ignoring the case of the local part, else `None`.
    pub async fn resolve(&self, address: &str) -> Result<Option<String>, StoreError> {
        let Some((address, _)) = normalize_address(address) else {
            return Ok(None);
        };
        let exact: Option<(String,)> =
            sqlx::query_as("select address from recipients where address = ?")
                .bind(&address)
                .fetch_optional(self.pool())
                .await
                .map_err(|e| self.err(e))?;
        if let Some((a,)) = exact {
            return Ok(Some(a));
        }
        let loose: Vec<(String,)> = sqlx::query_as(
            "select address from recipients where lower(address) = lower(?) limit 2",
        )
        .bind(&address)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        Ok(match loose.as_slice() {
            [(a,)] => Some(a.clone()),
            _ => None,
        })
    }

    /// The recipient with this address, if known.
    pub async fn recipient(&self, address: &str) -> Result<Option<RecipientInfo>, StoreError> {
        let Some((address, _)) = normalize_address(address) else {
            return Ok(None);
        };
        sqlx::query_as(
            "select address, domain, state, hard_count, soft_count, complaint_count, other_count, \
             soft_score, soft_last_counted_at, first_bounce_at, last_bounce_at, suppressed_at, \
             suppressed_type, suppressed_why, manual from recipients where address = ?",
        )
        .bind(address)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// The state changes of a recipient, oldest first, each with its cause.
    pub async fn history(&self, address: &str) -> Result<Vec<EventRow>, StoreError> {
        let Some((address, _)) = normalize_address(address) else {
            return Ok(Vec::new());
        };
        sqlx::query_as(
            "select e.at, e.change, e.cause, e.bounce_id, e.rule, b.reason, b.status, \
             b.diagnostic, m.source, e.note \
             from events e join recipients r on r.id = e.recipient_id \
             left join bounces b on b.id = e.bounce_id \
             left join messages m on m.id = b.message_id \
             where r.address = ? order by e.at, e.id",
        )
        .bind(address)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// Stored messages matching `filter`, newest first, streamed.
    pub fn messages(
        &self,
        filter: &MessageFilter,
    ) -> BoxStream<'_, Result<MessageRow, StoreError>> {
        let limit = filter
            .limit
            .and_then(|l| i64::try_from(l).ok())
            .unwrap_or(i64::MAX);
        sqlx::query_as(concat!(
            message_columns!(),
            "where (?1 is null or m.kind = ?1) and (?2 is null or m.received_at >= ?2) \
             and (?3 is null or m.received_at < ?3) \
             order by m.received_at desc, m.id desc limit ?4"
        ))
        .bind(filter.kind.clone())
        .bind(filter.since.map(secs))
        .bind(filter.until.map(secs))
        .bind(limit)
        .fetch(self.pool())
        .map(|r| r.map_err(|e| self.err(e)))
        .boxed()
    }

    /// The stored message with this row id, if any.
    pub async fn message(&self, id: i64) -> Result<Option<MessageRow>, StoreError> {
        sqlx::query_as(concat!(message_columns!(), "where m.id = ?"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.err(e))
    }

    /// Bounces matching `filter`, newest first, streamed.
    pub fn bounces(&self, filter: &BounceFilter) -> BoxStream<'_, Result<BounceRow, StoreError>> {
        self.bounce_rows(filter, None, None)
    }

    /// One page of bounces matching `filter`, newest first, starting after `after` (the position of
    /// the last row of the previous page): a keyset cursor, stable while rows are added.
    pub fn bounces_page(
        &self,
        filter: &BounceFilter,
        after: Option<BounceCursor>,
    ) -> BoxStream<'_, Result<BounceRow, StoreError>> {
        self.bounce_rows(filter, after, None)
    }

    /// The bounces read from one stored message, in their order within it.
    pub async fn message_bounces(&self, message_id: i64) -> Result<Vec<BounceRow>, StoreError> {
        use futures_util::TryStreamExt;
        let mut rows: Vec<BounceRow> = self
            .bounce_rows(&BounceFilter::default(), None, Some(message_id))
            .try_collect()
            .await?;
        rows.reverse();
        Ok(rows)
    }

    fn bounce_rows(
        &self,
        filter: &BounceFilter,
        after: Option<BounceCursor>,
        message_id: Option<i64>,
    ) -> BoxStream<'_, Result<BounceRow, StoreError>> {
        let limit = filter
            .limit
            .and_then(|l| i64::try_from(l).ok())
            .unwrap_or(-1);
        let recipient = filter
            .recipient
            .as_deref()
            .and_then(normalize_address)
            .map(|(a, _)| a);
        sqlx::query_as(
            "select b.id, b.message_id, b.at, coalesce(r.address, b.recipient) as recipient, \
             b.action, b.status, b.replycode, b.reason, b.bounce_type, b.diagnostic, b.remote_mta, \
             b.feedback_type, b.rule, b.reader, b.counted, b.verp_mismatch, b.untrusted, \
             b.original_message_id, \
             m.source \
             from bounces b left join recipients r on r.id = b.recipient_id \
             join messages m on m.id = b.message_id \
             where (?1 is null or b.at >= ?1) and (?2 is null or b.at < ?2) \
             and (?3 is null or b.reason = ?3) and (?4 is null or b.bounce_type = ?4) \
             and (?5 is null or r.domain = ?5) and (?6 is null or r.address = ?6) \
             and (?8 is null or b.at < ?8 or (b.at = ?8 and b.id < ?9)) \
             and (?10 is null or b.message_id = ?10) \
             order by b.at desc, b.id desc limit ?7",
        )
        .bind(filter.since.map(secs))
        .bind(filter.until.map(secs))
        .bind(filter.reason.map(Reason::as_str))
        .bind(filter.bounce_type.map(BounceType::as_str))
        .bind(filter.domain.as_ref().map(|d| d.trim().to_lowercase()))
        .bind(recipient)
        .bind(limit)
        .bind(after.map(|c| c.at))
        .bind(after.map(|c| c.id))
        .bind(message_id)
        .fetch(self.pool())
        .map(|r| r.map_err(|e| self.err(e)))
        .boxed()
    }

    /// Bounce counts grouped by reason, domain, type or day, largest group first (days in order).
    pub async fn stats(
        &self,
        by: StatsBy,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<StatRow>, StoreError> {
        let since = since.map(secs);
        let until = until.map(secs);
        if by == StatsBy::Day {
            let rows: Vec<RawDayStat> = sqlx::query_as(
                "select b.at / 86400 as day, count(*) as bounces, \
                 sum(case when b.bounce_type = 'hard' then 1 else 0 end) as hard, \
                 sum(case when b.bounce_type = 'soft' then 1 else 0 end) as soft, \
                 sum(case when b.bounce_type = 'complaint' then 1 else 0 end) as complaint, \
                 sum(case when b.bounce_type = 'none' then 1 else 0 end) as none, \
                 count(distinct b.recipient_id) as recipients \
                 from bounces b where (?1 is null or b.at >= ?1) and (?2 is null or b.at < ?2) \
                 group by day order by day",
            )
            .bind(since)
            .bind(until)
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.err(e))?;
            return Ok(rows
                .into_iter()
                .map(|r| StatRow {
                    key: day_string(r.day),
                    bounces: r.bounces,
                    hard: r.hard,
                    soft: r.soft,
                    complaint: r.complaint,
                    none: r.none,
                    recipients: r.recipients,
                })
                .collect());
        }
        let q = match by {
            StatsBy::Reason => sqlx::query_as::<_, RawStat>(
                "select b.reason as key, count(*) as bounces, \
                 sum(case when b.bounce_type = 'hard' then 1 else 0 end) as hard, \
                 sum(case when b.bounce_type = 'soft' then 1 else 0 end) as soft, \
                 sum(case when b.bounce_type = 'complaint' then 1 else 0 end) as complaint, \
                 sum(case when b.bounce_type = 'none' then 1 else 0 end) as none, \
                 count(distinct b.recipient_id) as recipients \
                 from bounces b where (?1 is null or b.at >= ?1) and (?2 is null or b.at < ?2) \
                 group by b.reason order by bounces desc, key",
            ),
            StatsBy::Type => sqlx::query_as::<_, RawStat>(
                "select b.bounce_type as key, count(*) as bounces, \
                 sum(case when b.bounce_type = 'hard' then 1 else 0 end) as hard, \
                 sum(case when b.bounce_type = 'soft' then 1 else 0 end) as soft, \
                 sum(case when b.bounce_type = 'complaint' then 1 else 0 end) as complaint, \
                 sum(case when b.bounce_type = 'none' then 1 else 0 end) as none, \
                 count(distinct b.recipient_id) as recipients \
                 from bounces b where (?1 is null or b.at >= ?1) and (?2 is null or b.at < ?2) \
                 group by b.bounce_type order by bounces desc, key",
            ),
            StatsBy::Domain | StatsBy::Day => sqlx::query_as::<_, RawStat>(
                "select r.domain as key, count(*) as bounces, \
                 sum(case when b.bounce_type = 'hard' then 1 else 0 end) as hard, \
                 sum(case when b.bounce_type = 'soft' then 1 else 0 end) as soft, \
                 sum(case when b.bounce_type = 'complaint' then 1 else 0 end) as complaint, \
                 sum(case when b.bounce_type = 'none' then 1 else 0 end) as none, \
                 count(distinct b.recipient_id) as recipients \
                 from bounces b left join recipients r on r.id = b.recipient_id \
                 where (?1 is null or b.at >= ?1) and (?2 is null or b.at < ?2) \
                 group by r.domain order by bounces desc, key",
            ),
        };
        let rows = q
            .bind(since)
            .bind(until)
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| StatRow {
                key: r.key.unwrap_or_else(|| "(none)".to_owned()),
                bounces: r.bounces,
                hard: r.hard,
                soft: r.soft,
                complaint: r.complaint,
                none: r.none,
                recipients: r.recipients,
            })
            .collect())
    }

    /// Totals: messages by kind, bounces by type, recipients and suppressions by type.
    pub async fn summary(&self) -> Result<Summary, StoreError> {
        self.summary_between(None, None).await
    }

    /// Totals over a period: messages received, bounces failed (and the recipients they name),
    /// and addresses suppressed at or after `since` and before `until`. Without either bound the
    /// recipients are all those known.
    pub async fn summary_between(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Summary, StoreError> {
        let pool = self.pool();
        let (since, until) = (since.map(secs), until.map(secs));
        let kinds: Vec<(String, i64)> = sqlx::query_as(
            "select kind, count(*) from messages \
             where (?1 is null or received_at >= ?1) and (?2 is null or received_at < ?2) \
             group by kind order by kind",
        )
        .bind(since)
        .bind(until)
        .fetch_all(pool)
        .await
        .map_err(|e| self.err(e))?;
        let bounce_types: Vec<(String, i64)> = sqlx::query_as(
            "select bounce_type, count(*) from bounces \
             where (?1 is null or at >= ?1) and (?2 is null or at < ?2) \
             group by bounce_type order by bounce_type",
        )
        .bind(since)
        .bind(until)
        .fetch_all(pool)
        .await
        .map_err(|e| self.err(e))?;
        let (untrusted,): (i64,) = sqlx::query_as(
            "select count(*) from bounces where untrusted = 1 \
             and (?1 is null or at >= ?1) and (?2 is null or at < ?2)",
        )
        .bind(since)
        .bind(until)
        .fetch_one(pool)
        .await
        .map_err(|e| self.err(e))?;
        let (verp_mismatches,): (i64,) = sqlx::query_as(
            "select count(*) from bounces where verp_mismatch = 1 \
             and (?1 is null or at >= ?1) and (?2 is null or at < ?2)",
        )
        .bind(since)
        .bind(until)
        .fetch_one(pool)
        .await
        .map_err(|e| self.err(e))?;
        let (recipients,): (i64,) = if since.is_none() && until.is_none() {
            sqlx::query_as("select count(*) from recipients")
                .fetch_one(pool)
                .await
        } else {
            sqlx::query_as(
                "select count(distinct recipient_id) from bounces \
                 where (?1 is null or at >= ?1) and (?2 is null or at < ?2)",
            )
            .bind(since)
            .bind(until)
            .fetch_one(pool)
            .await
        }
        .map_err(|e| self.err(e))?;
        let suppressed: Vec<(String, i64)> = sqlx::query_as(
            "select coalesce(suppressed_type, 'unknown'), count(*) from recipients \
             where state = 'suppressed' \
             and (?1 is null or suppressed_at >= ?1) and (?2 is null or suppressed_at < ?2) \
             group by suppressed_type order by suppressed_type",
        )
        .bind(since)
        .bind(until)
        .fetch_all(pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(Summary {
            messages: kinds.iter().map(|(_, n)| n).sum(),
            bounces: bounce_types.iter().map(|(_, n)| n).sum(),
            kinds,
            bounce_types,
            verp_mismatches,
            untrusted,
            recipients,
            suppressed,
        })
    }

    /// The suppressed addresses an export selects, in address order, streamed row by row.
    pub fn export_rows(
        &self,
        filter: &ExportFilter,
    ) -> BoxStream<'_, Result<ExportRow, StoreError>> {
        self.export_rows_after(filter, None)
    }

    /// Like [`Store::export_rows`], keeping only the addresses whose state changed in a history
    /// event after `after_event` (see [`Store::last_event_id`]): the rows an incremental sync needs.
    pub fn export_rows_after(
        &self,
        filter: &ExportFilter,
        after_event: Option<i64>,
    ) -> BoxStream<'_, Result<ExportRow, StoreError>> {
        sqlx::query_as(
            "select r.address as email, coalesce(r.suppressed_type, 'manual') as bounce_type, \
             coalesce(b.reason, 'manual') as reason, b.status, b.replycode, \
             case when b.id is null then r.suppressed_why else b.diagnostic end as diagnostic, \
             coalesce(r.first_bounce_at, r.suppressed_at, r.updated_at) as first_seen, \
             coalesce(r.last_bounce_at, r.suppressed_at, r.updated_at) as last_seen, \
             r.hard_count + r.soft_count + r.complaint_count as count, \
             coalesce(r.suppressed_at, r.updated_at) as suppressed_at \
             from recipients r left join bounces b on b.id = r.suppressed_bounce_id \
             where r.state = 'suppressed' and (?1 is null or r.suppressed_at >= ?1) \
             and (?7 is null or r.suppressed_at < ?7) \
             and ((?2 and r.suppressed_type = 'hard') or (?3 and r.suppressed_type = 'complaint') \
             or (?4 and r.suppressed_type = 'soft') or (?5 and r.suppressed_type = 'manual')) \
             and (?6 is null or exists (select 1 from events e \
             where e.recipient_id = r.id and e.id > ?6)) \
             order by r.address",
        )
        .bind(filter.since.map(secs))
        .bind(filter.types.hard)
        .bind(filter.types.complaint)
        .bind(filter.types.soft)
        .bind(filter.types.manual)
        .bind(after_event)
        .bind(filter.until.map(secs))
        .fetch(self.pool())
        .map(|r| r.map_err(|e| self.err(e)))
        .boxed()
    }
}

/// Where a page of [`Store::bounces_page`] ended: the failure time and row id of its last bounce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BounceCursor {
    /// The last row's failure time (unix seconds).
    pub at: i64,
    /// The last row's id.
    pub id: i64,
}

impl BounceCursor {
    /// The cursor just past `row`.
    pub fn after(row: &BounceRow) -> BounceCursor {
        BounceCursor {
            at: secs(row.at.0),
            id: row.id,
        }
    }
}

/// The send-time answer for one address: is it suppressed, since when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CheckRow {
    /// The stored address.
    pub address: String,
    /// `active` or `suppressed`.
    pub state: String,
    /// `hard`, `complaint`, `soft` or `manual` while suppressed.
    pub suppressed_type: Option<String>,
    /// When it was suppressed.
    pub suppressed_at: Option<Timestamp>,
    /// The reason name, or the operator's words.
    pub suppressed_why: Option<String>,
}

/// A suppressed recipient, for the list of the latest suppressions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SuppressionRow {
    /// The address.
    pub address: String,
    /// `hard`, `complaint`, `soft` or `manual`.
    pub suppressed_type: Option<String>,
    /// The reason name, or the operator's words.
    pub suppressed_why: Option<String>,
    /// When it was suppressed.
    pub suppressed_at: Option<Timestamp>,
}

/// Failures and delivery notices of one recipient domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DomainRate {
    /// The domain.
    pub domain: String,
    /// Hard and soft bounces and complaints.
    pub failures: i64,
    /// Of which hard.
    pub hard: i64,
    /// Of which soft.
    pub soft: i64,
    /// Of which complaints.
    pub complaint: i64,
    /// Delivery notices (reason `delivered`).
    pub delivered: i64,
}

impl DomainRate {
    /// Failures among the notices, when delivery notices exist to compare with.
    pub fn bounce_rate(&self) -> Option<f64> {
        let total = self.failures + self.delivered;
        (self.delivered > 0 && total > 0).then(|| self.failures as f64 / total as f64)
    }
}

/// One change of a recipient's state, for a list manager following the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ChangeRow {
    /// The change's id: increasing, the cursor of the next page.
    pub id: i64,
    /// The address.
    pub address: String,
    /// `suppressed` or `unsuppressed`.
    pub change: String,
    /// `hard`, `complaint`, `soft_threshold`, `manual` or `reclassify`.
    pub cause: String,
    /// When the change took effect.
    pub at: Timestamp,
}

/// Row counts a monitoring system follows: what the database knows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    /// Messages per kind.
    pub messages: Vec<(String, i64)>,
    /// Bounces per (type, reason).
    pub bounces: Vec<(String, String, i64)>,
    /// Recipients per state.
    pub recipients: Vec<(String, i64)>,
    /// Suppressed recipients per cause (`hard`, `complaint`, `soft`, `manual`).
    pub suppressed: Vec<(String, i64)>,
    /// The database's size in bytes.
    pub size_bytes: i64,
    /// Outbox deliveries per (target, state).
    pub outbox: Vec<(String, String, i64)>,
}

impl Store {
    /// Answers with one cheap statement, to show the database is open and readable.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1")
            .execute(self.pool())
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Whether an address may be sent to: its state by exact normalized address, else among the
    /// addresses that match it ignoring case (a suppressed one first). `None` when unknown or not
    /// an address. Both lookups are indexed.
    pub async fn check(&self, address: &str) -> Result<Option<CheckRow>, StoreError> {
        let Some((address, _)) = normalize_address(address) else {
            return Ok(None);
        };
        // One statement: the exact address when stored, else a case-insensitive match.
        sqlx::query_as(
            "select address, state, suppressed_type, suppressed_at, suppressed_why from ( \
             select address, state, suppressed_type, suppressed_at, suppressed_why, 0 as rank \
             from recipients where address = ?1 \
             union all \
             select address, state, suppressed_type, suppressed_at, suppressed_why, \
             case when state = 'suppressed' then 1 else 2 end as rank \
             from recipients where lower(address) = lower(?1) \
             ) as found order by rank, address limit 1",
        )
        .bind(&address)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// A stored message's raw bytes, as received.
    pub async fn message_raw(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let packed: Option<(Vec<u8>,)> =
            sqlx::query_as("select raw_deflate from messages where id = ?1")
                .bind(id)
                .fetch_optional(self.pool())
                .await
                .map_err(|e| self.err(e))?;
        let Some((packed,)) = packed else {
            return Ok(None);
        };
        super::record::inflate(&packed)
            .map(Some)
            .map_err(|cause| StoreError::Raw {
                path: self.path().to_path_buf(),
                id,
                cause,
            })
    }

    /// The latest suppressions, newest first.
    pub async fn recent_suppressions(&self, limit: u32) -> Result<Vec<SuppressionRow>, StoreError> {
        sqlx::query_as(
            "select address, suppressed_type, suppressed_why, suppressed_at from recipients \
             where state = 'suppressed' order by suppressed_at desc, id desc limit ?1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// The domains with the most failures since `since`, with their delivery notices.
    pub async fn domain_rates(
        &self,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<DomainRate>, StoreError> {
        sqlx::query_as(
            "select r.domain as domain, \
             sum(case when b.bounce_type in ('hard', 'soft', 'complaint') then 1 else 0 end) \
             as failures, \
             sum(case when b.bounce_type = 'hard' then 1 else 0 end) as hard, \
             sum(case when b.bounce_type = 'soft' then 1 else 0 end) as soft, \
             sum(case when b.bounce_type = 'complaint' then 1 else 0 end) as complaint, \
             sum(case when b.reason = 'delivered' then 1 else 0 end) as delivered \
             from bounces b join recipients r on r.id = b.recipient_id \
             where (?1 is null or b.at >= ?1) \
             group by r.domain order by failures desc, delivered desc, r.domain limit ?2",
        )
        .bind(since.map(secs))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// The id of the latest history event (0 when none): the cursor of an incremental sync of the
    /// suppression list ([`Store::export_rows_after`]).
    pub async fn last_event_id(&self) -> Result<i64, StoreError> {
        let (id,): (Option<i64>,) = sqlx::query_as("select max(id) from events")
            .fetch_one(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        Ok(id.unwrap_or(0))
    }

    /// The changes of state recorded after the change `after_id`, oldest first, at most `limit`.
    pub async fn changes_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        sqlx::query_as(
            "select e.id, r.address, e.change, e.cause, e.at from events e \
             join recipients r on r.id = e.recipient_id where e.id > ?1 order by e.id limit ?2",
        )
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// Row counts by kind, type and reason, state and cause, and the database's size.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        let pool = self.pool();
        let messages: Vec<(String, i64)> =
            sqlx::query_as("select kind, count(*) from messages group by kind order by kind")
                .fetch_all(pool)
                .await
                .map_err(|e| self.err(e))?;
        let bounces: Vec<(String, String, i64)> = sqlx::query_as(
            "select bounce_type, reason, count(*) from bounces group by bounce_type, reason \
             order by bounce_type, reason",
        )
        .fetch_all(pool)
        .await
        .map_err(|e| self.err(e))?;
        let recipients: Vec<(String, i64)> =
            sqlx::query_as("select state, count(*) from recipients group by state order by state")
                .fetch_all(pool)
                .await
                .map_err(|e| self.err(e))?;
        let suppressed: Vec<(String, i64)> = sqlx::query_as(
            "select coalesce(suppressed_type, 'unknown'), count(*) from recipients \
             where state = 'suppressed' group by suppressed_type order by suppressed_type",
        )
        .fetch_all(pool)
        .await
        .map_err(|e| self.err(e))?;
        let outbox: Vec<(String, String, i64)> = sqlx::query_as(
            "select target, state, count(*) from outbox_deliveries group by target, state \
             order by target, state",
        )
        .fetch_all(pool)
        .await
        .map_err(|e| self.err(e))?;
        // The engine's own measure: pages in use times the page size.
        let (pages,): (i64,) = sqlx::query_as("pragma page_count")
            .fetch_one(pool)
            .await
            .map_err(|e| self.err(e))?;
        let (page_size,): (i64,) = sqlx::query_as("pragma page_size")
            .fetch_one(pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(Counts {
            messages,
            bounces,
            recipients,
            suppressed,
            size_bytes: pages.saturating_mul(page_size),
            outbox,
        })
    }
}
