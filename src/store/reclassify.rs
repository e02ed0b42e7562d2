//! Re-running the current rules over stored raw messages, and re-deriving recipient states.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::record::{BounceFields, inflate, replay, write_bounces};
use super::{Store, StoreError, from_secs, secs};
use crate::Analysis;
use crate::policy::State;

/// A recipient whose state reclassification changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shift {
    /// The address.
    pub address: String,
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
}

/// What [`Store::reclassify`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReclassifyReport {
    /// Messages examined.
    pub messages: u64,
    /// Messages whose kind or bounces differ under the current rules.
    pub changed: u64,
    /// Bounce rows of the changed messages before.
    pub bounces_before: u64,
    /// Bounce rows of the changed messages after.
    pub bounces_after: u64,
    /// Recipients whose history was replayed.
    pub recipients_replayed: u64,
    /// Recipients whose state changed.
    pub shifts: Vec<Shift>,
}

/// Messages read per transaction.
const CHUNK: i64 = 200;

#[derive(sqlx::FromRow)]
struct StoredMessage {
    id: i64,
    received_at: i64,
    kind: String,
    reader: String,
    raw_deflate: Vec<u8>,
}

impl Store {
    /// Re-analyses every stored message received at or after `since` with `analyze`, replaces the
    /// bounces of those whose result changed, then replays the history of every recipient involved.
    ///
    /// Works in chunks of 200 messages per transaction, so memory stays bounded.
    pub async fn reclassify<F>(
        &self,
        since: Option<DateTime<Utc>>,
        analyze: F,
        now: DateTime<Utc>,
    ) -> Result<ReclassifyReport, StoreError>
    where
        F: Fn(&[u8]) -> Analysis,
    {
        let mut report = ReclassifyReport::default();
        let mut touched: HashSet<i64> = HashSet::new();
        let mut last_id = 0i64;
        let now_s = secs(now);
        loop {
            let mut tx = self.begin().await?;
            let chunk: Vec<StoredMessage> = sqlx::query_as(
                "select id, received_at, kind, reader, raw_deflate from messages \
                 where id > ?1 and (?2 is null or received_at >= ?2) order by id limit ?3",
            )
            .bind(last_id)
            .bind(since.map(secs))
            .bind(CHUNK)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            let Some(last) = chunk.last() else {
                break;
            };
            last_id = last.id;
            for m in chunk {
                report.messages += 1;
                let raw = inflate(&m.raw_deflate).map_err(|source| StoreError::Raw {
                    path: self.path().to_path_buf(),
                    id: m.id,
                    source,
                })?;
                let analysis = analyze(&raw);
                let stored: Vec<BounceFields> = sqlx::query_as(
                    "select recipient, action, status, replycode, reason, bounce_type, diagnostic, \
                     remote_mta, reporting_mta, date, feedback_type, rule, reader, \
                     original_message_id, original_from, original_to, original_subject, \
                     original_list_id from bounces where message_id = ? order by position",
                )
                .bind(m.id)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
                let fresh: Vec<BounceFields> =
                    analysis.bounces.iter().map(BounceFields::of).collect();
                if stored == fresh
                    && m.kind == analysis.kind.as_str()
                    && m.reader == analysis.reader
                {
                    continue;
                }
                report.changed += 1;
                report.bounces_before += stored.len() as u64;
                report.bounces_after += fresh.len() as u64;
                let old: Vec<(i64,)> = sqlx::query_as(
                    "select distinct recipient_id from bounces \
                     where message_id = ? and recipient_id is not null",
                )
                .bind(m.id)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
                touched.extend(old.into_iter().map(|(id,)| id));
                sqlx::query("delete from bounces where message_id = ?")
                    .bind(m.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
                let original = analysis.original.as_ref();
                sqlx::query(
                    "update messages set kind = ?, reader = ?, error = ?, original_message_id = ?, \
                     original_list_id = ? where id = ?",
                )
                .bind(analysis.kind.as_str())
                .bind(analysis.reader)
                .bind(analysis.error.as_ref().map(ToString::to_string))
                .bind(original.and_then(|o| o.message_id.as_deref()))
                .bind(original.and_then(|o| o.list_id.as_deref()))
                .bind(m.id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
                write_bounces(
                    &mut tx,
                    m.id,
                    from_secs(m.received_at),
                    &analysis.bounces,
                    now_s,
                    &mut touched,
                )
                .await
                .map_err(|e| self.err(e))?;
            }
            tx.commit().await.map_err(|e| self.err(e))?;
        }

        let mut ids: Vec<i64> = touched.into_iter().collect();
        ids.sort_unstable();
        report.recipients_replayed = ids.len() as u64;
        report.shifts = self.replay_ids(&ids, now).await?;
        Ok(report)
    }

    /// Replays the histories of the recipients `ids`, 500 per transaction; returns those whose
    /// state changed.
    async fn replay_ids(&self, ids: &[i64], now: DateTime<Utc>) -> Result<Vec<Shift>, StoreError> {
        let mut shifts = Vec::new();
        for chunk in ids.chunks(500) {
            let mut tx = self.begin().await?;
            for &id in chunk {
                let (before, after) = replay(&mut tx, self.policy(), id, secs(now))
                    .await
                    .map_err(|e| self.err(e))?;
                if before != after {
                    let address: String =
                        sqlx::query_scalar("select address from recipients where id = ?")
                            .bind(id)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(|e| self.err(e))?;
                    shifts.push(Shift {
                        address,
                        from: before,
                        to: after,
                    });
                }
            }
            tx.commit().await.map_err(|e| self.err(e))?;
        }
        Ok(shifts)
    }
}
