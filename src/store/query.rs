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

impl sqlx::Type<sqlx::Postgres> for Timestamp {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <i64 as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <i64 as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Timestamp {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <i64 as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
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
        super::dispatch!(self, resolve(address).await)
    }

    /// The recipient with this address, if known.
    pub async fn recipient(&self, address: &str) -> Result<Option<RecipientInfo>, StoreError> {
        super::dispatch!(self, recipient(address).await)
    }

    /// The state changes of a recipient, oldest first, each with its cause.
    pub async fn history(&self, address: &str) -> Result<Vec<EventRow>, StoreError> {
        super::dispatch!(self, history(address).await)
    }

    /// Stored messages matching `filter`, newest first, streamed.
    pub fn messages(
        &self,
        filter: &MessageFilter,
    ) -> BoxStream<'_, Result<MessageRow, StoreError>> {
        super::dispatch!(self, messages(filter))
    }

    /// The stored message with this row id, if any.
    pub async fn message(&self, id: i64) -> Result<Option<MessageRow>, StoreError> {
        super::dispatch!(self, message(id).await)
    }

    /// Bounces matching `filter`, newest first, streamed.
    pub fn bounces(&self, filter: &BounceFilter) -> BoxStream<'_, Result<BounceRow, StoreError>> {
        super::dispatch!(self, bounces(filter))
    }

    /// One page of bounces matching `filter`, newest first, starting after `after` (the position of
    /// the last row of the previous page): a keyset cursor, stable while rows are added.
    pub fn bounces_page(
        &self,
        filter: &BounceFilter,
        after: Option<BounceCursor>,
    ) -> BoxStream<'_, Result<BounceRow, StoreError>> {
        super::dispatch!(self, bounces_page(filter, after))
    }

    /// The bounces read from one stored message, in their order within it.
    pub async fn message_bounces(&self, message_id: i64) -> Result<Vec<BounceRow>, StoreError> {
        super::dispatch!(self, message_bounces(message_id).await)
    }

    /// Bounce counts grouped by reason, domain, type or day, largest group first (days in order).
    pub async fn stats(
        &self,
        by: StatsBy,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<StatRow>, StoreError> {
        super::dispatch!(self, stats(by, since, until).await)
    }

    /// Totals: messages by kind, bounces by type, recipients and suppressions by type.
    pub async fn summary(&self) -> Result<Summary, StoreError> {
        super::dispatch!(self, summary().await)
    }

    /// Totals over a period: messages received, bounces failed (and the recipients they name),
    /// and addresses suppressed at or after `since` and before `until`. Without either bound the
    /// recipients are all those known.
    pub async fn summary_between(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Summary, StoreError> {
        super::dispatch!(self, summary_between(since, until).await)
    }

    /// The suppressed addresses an export selects, in address order, streamed row by row.
    pub fn export_rows(
        &self,
        filter: &ExportFilter,
    ) -> BoxStream<'_, Result<ExportRow, StoreError>> {
        super::dispatch!(self, export_rows(filter))
    }

    /// Like [`Store::export_rows`], keeping only the addresses whose state changed in a history
    /// event after `after_event` (see [`Store::last_event_id`]): the rows an incremental sync needs.
    pub fn export_rows_after(
        &self,
        filter: &ExportFilter,
        after_event: Option<i64>,
    ) -> BoxStream<'_, Result<ExportRow, StoreError>> {
        super::dispatch!(self, export_rows_after(filter, after_event))
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
        super::dispatch!(self, ping().await)
    }

    /// Whether an address may be sent to: its state by exact normalized address, else among the
    /// addresses that match it ignoring case (a suppressed one first). `None` when unknown or not
    /// an address. Both lookups are indexed.
    pub async fn check(&self, address: &str) -> Result<Option<CheckRow>, StoreError> {
        super::dispatch!(self, check(address).await)
    }

    /// A stored message's raw bytes, as received.
    pub async fn message_raw(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        super::dispatch!(self, message_raw(id).await)
    }

    /// The latest suppressions, newest first.
    pub async fn recent_suppressions(&self, limit: u32) -> Result<Vec<SuppressionRow>, StoreError> {
        super::dispatch!(self, recent_suppressions(limit).await)
    }

    /// The domains with the most failures since `since`, with their delivery notices.
    pub async fn domain_rates(
        &self,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<DomainRate>, StoreError> {
        super::dispatch!(self, domain_rates(since, limit).await)
    }

    /// The id of the latest history event (0 when none): the cursor of an incremental sync of the
    /// suppression list ([`Store::export_rows_after`]).
    pub async fn last_event_id(&self) -> Result<i64, StoreError> {
        super::dispatch!(self, last_event_id().await)
    }

    /// The changes of state recorded after the change `after_id`, oldest first, at most `limit`.
    pub async fn changes_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        super::dispatch!(self, changes_after(after_id, limit).await)
    }

    /// Row counts by kind, type and reason, state and cause, and the database's size.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        super::dispatch!(self, counts().await)
    }
}

super::engines!("engine/query.rs");
