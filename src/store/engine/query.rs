// Read queries: the statements.

use super::super::*;
use super::{Db, size_bytes, sql};
use crate::store::Eng;

impl<'a> Eng<'a, Db> {
    /// Fills the database with `n` synthetic hard-suppressed recipients (for the export benchmark).
    pub(crate) async fn fill_synthetic_suppressed(
        &self,
        n: u64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let t = secs(at);
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let mut tx = self.pool().begin().await.map_err(|e| self.err(e))?;
        let (message_id,): (i64,) = sqlx::query_as(sql(
            "insert into messages (sha256, source, received_at, recorded_at, kind, reader, \
             raw_size, raw_deflate) values ('synthetic', 'bench:', ?1, ?1, 'dsn', 'dsn', 0, ?2) \
             returning id",
        ))
        .bind(t)
        .bind(Vec::<u8>::new())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        let (bounce_id,): (i64,) = sqlx::query_as(sql(
            "insert into bounces (message_id, position, at, action, status, replycode, reason, \
             bounce_type, diagnostic, rule, reader) values (?1, 0, ?2, 'failed', '5.1.1', '550', \
             'userunknown', 'hard', '550 5.1.1 user unknown', 'bench', 'dsn') returning id",
        ))
        .bind(message_id)
        .bind(t)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        sqlx::query(sql(
            "insert into recipients (address, domain, state, hard_count, first_bounce_at, \
             last_bounce_at, suppressed_at, suppressed_type, suppressed_why, suppressed_bounce_id, \
             updated_at) \
             with recursive seq(i) as (select 1 union all select i + 1 from seq where i < ?1) \
             select 'user' || i || '@d' || (i % 997) || '.example.com', \
             'd' || (i % 997) || '.example.com', 'suppressed', 1, ?2, ?2, ?2, 'hard', \
             'userunknown', ?3, ?2 from seq",
        ))
        .bind(n)
        .bind(t)
        .bind(bounce_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The stored form of an address: the exact normalized address when known, else the one
    /// address that matches it ignoring the case of the local part, else `None`.
    pub(crate) async fn resolve(&self, address: &str) -> Result<Option<String>, StoreError> {
        let Some((address, _)) = normalize_address(address) else {
            return Ok(None);
        };
        let exact: Option<(String,)> =
            sqlx::query_as(sql("select address from recipients where address = ?"))
                .bind(&address)
                .fetch_optional(self.pool())
                .await
                .map_err(|e| self.err(e))?;
        if let Some((a,)) = exact {
            return Ok(Some(a));
        }
        let loose: Vec<(String,)> = sqlx::query_as(sql(
            "select address from recipients where lower(address) = lower(?) limit 2",
        ))
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
    pub(crate) async fn recipient(
        &self,
        address: &str,
    ) -> Result<Option<RecipientInfo>, StoreError> {
        let Some((address, _)) = normalize_address(address) else {
            return Ok(None);
        };
        sqlx::query_as(sql(
            "select address, domain, state, hard_count, soft_count, complaint_count, other_count, \
             soft_score, soft_last_counted_at, first_bounce_at, last_bounce_at, suppressed_at, \
             suppressed_type, suppressed_why, manual from recipients where address = ?",
        ))
        .bind(address)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// The state changes of a recipient, oldest first, each with its cause.
    pub(crate) async fn history(&self, address: &str) -> Result<Vec<EventRow>, StoreError> {
        let Some((address, _)) = normalize_address(address) else {
            return Ok(Vec::new());
        };
        sqlx::query_as(sql(
            "select e.at, e.change, e.cause, e.bounce_id, e.rule, b.reason, b.status, \
             b.diagnostic, m.source, e.note \
             from events e join recipients r on r.id = e.recipient_id \
             left join bounces b on b.id = e.bounce_id \
             left join messages m on m.id = b.message_id \
             where r.address = ? order by e.at, e.id",
        ))
        .bind(address)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// Stored messages matching `filter`, newest first, streamed.
    pub(crate) fn messages(
        self,
        filter: &MessageFilter,
    ) -> BoxStream<'a, Result<MessageRow, StoreError>> {
        let limit = filter
            .limit
            .and_then(|l| i64::try_from(l).ok())
            .unwrap_or(i64::MAX);
        sqlx::query_as(sql(concat!(
            message_columns!(),
            "where (?1 is null or m.kind = ?1) and (?2 is null or m.received_at >= ?2) \
             and (?3 is null or m.received_at < ?3) \
             order by m.received_at desc, m.id desc limit ?4"
        )))
        .bind(filter.kind.clone())
        .bind(filter.since.map(secs))
        .bind(filter.until.map(secs))
        .bind(limit)
        .fetch(self.pool())
        .map(move |r| r.map_err(|e| self.err(e)))
        .boxed()
    }

    /// The stored message with this row id, if any.
    pub(crate) async fn message(&self, id: i64) -> Result<Option<MessageRow>, StoreError> {
        sqlx::query_as(sql(concat!(message_columns!(), "where m.id = ?")))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.err(e))
    }

    /// Bounces matching `filter`, newest first, streamed.
    pub(crate) fn bounces(
        self,
        filter: &BounceFilter,
    ) -> BoxStream<'a, Result<BounceRow, StoreError>> {
        self.bounce_rows(filter, None, None)
    }

    /// One page of bounces matching `filter`, newest first, starting after `after` (the position of
    /// the last row of the previous page): a keyset cursor, stable while rows are added.
    pub(crate) fn bounces_page(
        self,
        filter: &BounceFilter,
        after: Option<BounceCursor>,
    ) -> BoxStream<'a, Result<BounceRow, StoreError>> {
        self.bounce_rows(filter, after, None)
    }

    /// The bounces read from one stored message, in their order within it.
    pub(crate) async fn message_bounces(
        &self,
        message_id: i64,
    ) -> Result<Vec<BounceRow>, StoreError> {
        use futures_util::TryStreamExt;
        let mut rows: Vec<BounceRow> = self
            .bounce_rows(&BounceFilter::default(), None, Some(message_id))
            .try_collect()
            .await?;
        rows.reverse();
        Ok(rows)
    }

    pub(crate) fn bounce_rows(
        self,
        filter: &BounceFilter,
        after: Option<BounceCursor>,
        message_id: Option<i64>,
    ) -> BoxStream<'a, Result<BounceRow, StoreError>> {
        let limit = filter
            .limit
            .and_then(|l| i64::try_from(l).ok())
            .unwrap_or(i64::MAX);
        let recipient = filter
            .recipient
            .as_deref()
            .and_then(normalize_address)
            .map(|(a, _)| a);
        sqlx::query_as(sql(
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
        ))
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
        .map(move |r| r.map_err(|e| self.err(e)))
        .boxed()
    }

    /// Bounce counts grouped by reason, domain, type or day, largest group first (days in order).
    pub(crate) async fn stats(
        &self,
        by: StatsBy,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<StatRow>, StoreError> {
        let since = since.map(secs);
        let until = until.map(secs);
        if by == StatsBy::Day {
            let rows: Vec<RawDayStat> =
                sqlx::query_as(sql("select b.at / 86400 as day, count(*) as bounces, \
                 count(case when b.bounce_type = 'hard' then 1 end) as hard, \
                 count(case when b.bounce_type = 'soft' then 1 end) as soft, \
                 count(case when b.bounce_type = 'complaint' then 1 end) as complaint, \
                 count(case when b.bounce_type = 'none' then 1 end) as none, \
                 count(distinct b.recipient_id) as recipients \
                 from bounces b where (?1 is null or b.at >= ?1) and (?2 is null or b.at < ?2) \
                 group by day order by day"))
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
            StatsBy::Reason => {
                sqlx::query_as::<_, RawStat>(sql("select b.reason as key, count(*) as bounces, \
                 count(case when b.bounce_type = 'hard' then 1 end) as hard, \
                 count(case when b.bounce_type = 'soft' then 1 end) as soft, \
                 count(case when b.bounce_type = 'complaint' then 1 end) as complaint, \
                 count(case when b.bounce_type = 'none' then 1 end) as none, \
                 count(distinct b.recipient_id) as recipients \
                 from bounces b where (?1 is null or b.at >= ?1) and (?2 is null or b.at < ?2) \
                 group by b.reason order by bounces desc, key"))
            }
            StatsBy::Type => sqlx::query_as::<_, RawStat>(sql(
                "select b.bounce_type as key, count(*) as bounces, \
                 count(case when b.bounce_type = 'hard' then 1 end) as hard, \
                 count(case when b.bounce_type = 'soft' then 1 end) as soft, \
                 count(case when b.bounce_type = 'complaint' then 1 end) as complaint, \
                 count(case when b.bounce_type = 'none' then 1 end) as none, \
                 count(distinct b.recipient_id) as recipients \
                 from bounces b where (?1 is null or b.at >= ?1) and (?2 is null or b.at < ?2) \
                 group by b.bounce_type order by bounces desc, key",
            )),
            StatsBy::Domain | StatsBy::Day => {
                sqlx::query_as::<_, RawStat>(sql("select r.domain as key, count(*) as bounces, \
                 count(case when b.bounce_type = 'hard' then 1 end) as hard, \
                 count(case when b.bounce_type = 'soft' then 1 end) as soft, \
                 count(case when b.bounce_type = 'complaint' then 1 end) as complaint, \
                 count(case when b.bounce_type = 'none' then 1 end) as none, \
                 count(distinct b.recipient_id) as recipients \
                 from bounces b left join recipients r on r.id = b.recipient_id \
                 where (?1 is null or b.at >= ?1) and (?2 is null or b.at < ?2) \
                 group by r.domain order by bounces desc, key"))
            }
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
    pub(crate) async fn summary(&self) -> Result<Summary, StoreError> {
        self.summary_between(None, None).await
    }

    /// Totals over a period: messages received, bounces failed (and the recipients they name),
    /// and addresses suppressed at or after `since` and before `until`. Without either bound the
    /// recipients are all those known.
    pub(crate) async fn summary_between(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Summary, StoreError> {
        let pool = self.pool();
        let (since, until) = (since.map(secs), until.map(secs));
        let kinds: Vec<(String, i64)> = sqlx::query_as(sql("select kind, count(*) from messages \
             where (?1 is null or received_at >= ?1) and (?2 is null or received_at < ?2) \
             group by kind order by kind"))
        .bind(since)
        .bind(until)
        .fetch_all(pool)
        .await
        .map_err(|e| self.err(e))?;
        let bounce_types: Vec<(String, i64)> =
            sqlx::query_as(sql("select bounce_type, count(*) from bounces \
             where (?1 is null or at >= ?1) and (?2 is null or at < ?2) \
             group by bounce_type order by bounce_type"))
            .bind(since)
            .bind(until)
            .fetch_all(pool)
            .await
            .map_err(|e| self.err(e))?;
        let (untrusted,): (i64,) =
            sqlx::query_as(sql("select count(*) from bounces where untrusted = true \
             and (?1 is null or at >= ?1) and (?2 is null or at < ?2)"))
            .bind(since)
            .bind(until)
            .fetch_one(pool)
            .await
            .map_err(|e| self.err(e))?;
        let (verp_mismatches,): (i64,) = sqlx::query_as(sql(
            "select count(*) from bounces where verp_mismatch = true \
             and (?1 is null or at >= ?1) and (?2 is null or at < ?2)",
        ))
        .bind(since)
        .bind(until)
        .fetch_one(pool)
        .await
        .map_err(|e| self.err(e))?;
        let (recipients,): (i64,) = if since.is_none() && until.is_none() {
            sqlx::query_as(sql("select count(*) from recipients"))
                .fetch_one(pool)
                .await
        } else {
            sqlx::query_as(sql("select count(distinct recipient_id) from bounces \
                 where (?1 is null or at >= ?1) and (?2 is null or at < ?2)"))
            .bind(since)
            .bind(until)
            .fetch_one(pool)
            .await
        }
        .map_err(|e| self.err(e))?;
        let suppressed: Vec<(String, i64)> = sqlx::query_as(sql(
            "select coalesce(suppressed_type, 'unknown'), count(*) from recipients \
             where state = 'suppressed' \
             and (?1 is null or suppressed_at >= ?1) and (?2 is null or suppressed_at < ?2) \
             group by suppressed_type order by suppressed_type",
        ))
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
    pub(crate) fn export_rows(
        self,
        filter: &ExportFilter,
    ) -> BoxStream<'a, Result<ExportRow, StoreError>> {
        self.export_rows_after(filter, None)
    }

    /// Like [`Store::export_rows`], keeping only the addresses whose state changed in a history
    /// event after `after_event` (see [`Store::last_event_id`]): the rows an incremental sync needs.
    pub(crate) fn export_rows_after(
        self,
        filter: &ExportFilter,
        after_event: Option<i64>,
    ) -> BoxStream<'a, Result<ExportRow, StoreError>> {
        sqlx::query_as(sql(
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
        ))
        .bind(filter.since.map(secs))
        .bind(filter.types.hard)
        .bind(filter.types.complaint)
        .bind(filter.types.soft)
        .bind(filter.types.manual)
        .bind(after_event)
        .bind(filter.until.map(secs))
        .fetch(self.pool())
        .map(move |r| r.map_err(|e| self.err(e)))
        .boxed()
    }
}

impl Eng<'_, Db> {
    /// Answers with one cheap statement, to show the database is open and readable.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(sql("select 1"))
            .execute(self.pool())
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Whether an address may be sent to: its state by exact normalized address, else among the
    /// addresses that match it ignoring case (a suppressed one first). `None` when unknown or not
    /// an address. Both lookups are indexed.
    pub(crate) async fn check(&self, address: &str) -> Result<Option<CheckRow>, StoreError> {
        let Some((address, _)) = normalize_address(address) else {
            return Ok(None);
        };
        // One statement: the exact address when stored, else a case-insensitive match.
        sqlx::query_as(sql(
            "select address, state, suppressed_type, suppressed_at, suppressed_why from ( \
             select address, state, suppressed_type, suppressed_at, suppressed_why, 0 as rank \
             from recipients where address = ?1 \
             union all \
             select address, state, suppressed_type, suppressed_at, suppressed_why, \
             case when state = 'suppressed' then 1 else 2 end as rank \
             from recipients where lower(address) = lower(?1) \
             ) as found order by rank, address limit 1",
        ))
        .bind(&address)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// A stored message's raw bytes, as received.
    pub(crate) async fn message_raw(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let packed: Option<(Vec<u8>,)> =
            sqlx::query_as(sql("select raw_deflate from messages where id = ?1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await
                .map_err(|e| self.err(e))?;
        let Some((packed,)) = packed else {
            return Ok(None);
        };
        crate::store::record::inflate(&packed)
            .map(Some)
            .map_err(|cause| StoreError::Raw {
                path: self.path().to_path_buf(),
                id,
                cause,
            })
    }

    /// The latest suppressions, newest first.
    pub(crate) async fn recent_suppressions(
        &self,
        limit: u32,
    ) -> Result<Vec<SuppressionRow>, StoreError> {
        sqlx::query_as(sql(
            "select address, suppressed_type, suppressed_why, suppressed_at from recipients \
             where state = 'suppressed' order by suppressed_at desc, id desc limit ?1",
        ))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// The domains with the most failures since `since`, with their delivery notices.
    pub(crate) async fn domain_rates(
        &self,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<DomainRate>, StoreError> {
        sqlx::query_as(sql("select r.domain as domain, \
             count(case when b.bounce_type in ('hard', 'soft', 'complaint') then 1 end) \
             as failures, \
             count(case when b.bounce_type = 'hard' then 1 end) as hard, \
             count(case when b.bounce_type = 'soft' then 1 end) as soft, \
             count(case when b.bounce_type = 'complaint' then 1 end) as complaint, \
             count(case when b.reason = 'delivered' then 1 end) as delivered \
             from bounces b join recipients r on r.id = b.recipient_id \
             where (?1 is null or b.at >= ?1) \
             group by r.domain order by failures desc, delivered desc, r.domain limit ?2"))
        .bind(since.map(secs))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// The id of the latest history event (0 when none): the cursor of an incremental sync of the
    /// suppression list ([`Store::export_rows_after`]).
    pub(crate) async fn last_event_id(&self) -> Result<i64, StoreError> {
        let (id,): (Option<i64>,) = sqlx::query_as(sql("select max(id) from events"))
            .fetch_one(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        Ok(id.unwrap_or(0))
    }

    /// The changes of state recorded after the change `after_id`, oldest first, at most `limit`.
    pub(crate) async fn changes_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        sqlx::query_as(sql(
            "select e.id, r.address, e.change, e.cause, e.at from events e \
             join recipients r on r.id = e.recipient_id where e.id > ?1 order by e.id limit ?2",
        ))
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// Row counts by kind, type and reason, state and cause, and the database's size.
    pub(crate) async fn counts(&self) -> Result<Counts, StoreError> {
        let pool = self.pool();
        let messages: Vec<(String, i64)> = sqlx::query_as(sql(
            "select kind, count(*) from messages group by kind order by kind",
        ))
        .fetch_all(pool)
        .await
        .map_err(|e| self.err(e))?;
        let bounces: Vec<(String, String, i64)> = sqlx::query_as(sql(
            "select bounce_type, reason, count(*) from bounces group by bounce_type, reason \
             order by bounce_type, reason",
        ))
        .fetch_all(pool)
        .await
        .map_err(|e| self.err(e))?;
        let recipients: Vec<(String, i64)> = sqlx::query_as(sql(
            "select state, count(*) from recipients group by state order by state",
        ))
        .fetch_all(pool)
        .await
        .map_err(|e| self.err(e))?;
        let suppressed: Vec<(String, i64)> = sqlx::query_as(sql(
            "select coalesce(suppressed_type, 'unknown'), count(*) from recipients \
             where state = 'suppressed' group by suppressed_type order by suppressed_type",
        ))
        .fetch_all(pool)
        .await
        .map_err(|e| self.err(e))?;
        let outbox: Vec<(String, String, i64)> = sqlx::query_as(sql(
            "select target, state, count(*) from outbox_deliveries group by target, state \
             order by target, state",
        ))
        .fetch_all(pool)
        .await
        .map_err(|e| self.err(e))?;
        // The engine's own measure: pages in use times the page size.
        // The engine's own measure of the space the database takes.
        let size = size_bytes(pool).await.map_err(|e| self.err(e))?;
        Ok(Counts {
            messages,
            bounces,
            recipients,
            suppressed,
            size_bytes: size,
            outbox,
        })
    }
}
