// Reclassify: the statements.

use super::super::*;
use super::record::write_bounces;
use super::replay::rederive;
use super::{BEGIN_WRITE, Db, sql};
use crate::store::Eng;

impl Eng<'_, Db> {
    /// Re-analyses every stored message (received at or after `opts.since`) with `analyze`,
    /// replaces the bounces of those whose result changed and re-derives every recipient involved,
    /// one transaction per batch of messages. The analysis runs outside the transaction, so a
    /// running daemon waits only for the writes.
    ///
    /// With `opts.dry_run` nothing is written: the report says which recipients would change state.
    pub(crate) async fn reclassify<F>(
        &self,
        opts: &ReclassifyOptions,
        mut analyze: F,
        now: DateTime<Utc>,
    ) -> Result<ReclassifyReport, StoreError>
    where
        F: FnMut(Vec<Vec<u8>>) -> Vec<Analysis>,
    {
        let mut report = ReclassifyReport {
            dry_run: opts.dry_run,
            ..ReclassifyReport::default()
        };
        let mut shifts = Shifts::default();
        let mut replayed: HashSet<i64> = HashSet::new();
        let mut fresh: HashMap<i64, Fresh> = HashMap::new();
        let mut dry_touched: HashSet<i64> = HashSet::new();
        let mut last_id = 0i64;
        let now_s = secs(now);
        let batch = i64::try_from(opts.batch.max(1)).unwrap_or(200);
        loop {
            let chunk: Vec<StoredMessage> = sqlx::query_as(sql(
                "select id, received_at, kind, reader, verp_recipient, raw_deflate from messages \
                 where id > ?1 and (?2 is null or received_at >= ?2) order by id limit ?3",
            ))
            .bind(last_id)
            .bind(opts.since.map(secs))
            .bind(batch)
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.err(e))?;
            let Some(last) = chunk.last() else {
                break;
            };
            last_id = last.id;
            let mut raws = Vec::with_capacity(chunk.len());
            for m in &chunk {
                report.messages += 1;
                raws.push(inflate(&m.raw_deflate).map_err(|cause| StoreError::Raw {
                    path: self.path().to_path_buf(),
                    id: m.id,
                    cause,
                })?);
            }
            let analyses = analyze(raws);
            debug_assert_eq!(analyses.len(), chunk.len(), "one analysis per message");
            let analysed: Vec<(StoredMessage, Analysis)> =
                chunk.into_iter().zip(analyses).collect();
            let result = self
                .reclassify_batch(
                    analysed,
                    opts.dry_run,
                    now_s,
                    &mut report,
                    &mut fresh,
                    &mut dry_touched,
                )
                .await
                .map_err(|e| self.err(e))?;
            for r in result {
                replayed.insert(r.id);
                shifts.note(&r.address, r.before, r.after);
            }
        }
        if opts.dry_run {
            let derived = self
                .derive_fresh(&fresh, dry_touched)
                .await
                .map_err(|e| self.err(e))?;
            report.recipients_replayed = derived.len() as u64;
            for (address, before, after) in derived {
                shifts.note(&address, before, after);
            }
        } else {
            report.recipients_replayed = replayed.len() as u64;
        }
        report.shifts = shifts.into_vec();
        Ok(report)
    }

    /// Compares one batch's fresh analyses with what is stored; writes the changes and re-derives
    /// the recipients involved in one transaction, or, in a dry run, keeps the changed results.
    pub(crate) async fn reclassify_batch(
        &self,
        analysed: Vec<(StoredMessage, Analysis)>,
        dry_run: bool,
        now: i64,
        report: &mut ReclassifyReport,
        fresh: &mut HashMap<i64, Fresh>,
        dry_touched: &mut HashSet<i64>,
    ) -> Result<Vec<replay::Rederived>, sqlx::Error> {
        use sqlx::Connection;
        let mut conn = self.pool().acquire().await?;
        let mut tx = if dry_run {
            conn.begin().await?
        } else {
            conn.begin_with(BEGIN_WRITE).await?
        };
        let mut touched: HashSet<i64> = HashSet::new();
        for (m, analysis) in analysed {
            let stored: Vec<BounceFields> = sqlx::query_as(sql(
                "select recipient, action, status, replycode, reason, bounce_type, diagnostic, \
                 remote_mta, reporting_mta, date, feedback_type, rule, reader, \
                 original_message_id, original_from, original_to, original_subject, \
                 original_list_id from bounces where message_id = ? order by position",
            ))
            .bind(m.id)
            .fetch_all(&mut *tx)
            .await?;
            let fresh_fields: Vec<BounceFields> =
                analysis.bounces.iter().map(BounceFields::of).collect();
            if stored == fresh_fields
                && m.kind == analysis.kind.as_str()
                && m.reader == analysis.reader
                && m.verp_recipient == analysis.verp
            {
                continue;
            }
            report.changed += 1;
            report.bounces_before += stored.len() as u64;
            report.bounces_after += fresh_fields.len() as u64;
            let old: Vec<(i64,)> =
                sqlx::query_as(sql("select distinct recipient_id from bounces \
                 where message_id = ? and recipient_id is not null"))
                .bind(m.id)
                .fetch_all(&mut *tx)
                .await?;
            touched.extend(old.into_iter().map(|(id,)| id));
            if dry_run {
                fresh.insert(
                    m.id,
                    Fresh {
                        received_at: m.received_at,
                        analysis,
                    },
                );
                continue;
            }
            sqlx::query(sql("delete from bounces where message_id = ?"))
                .bind(m.id)
                .execute(&mut *tx)
                .await?;
            let original = analysis.original.as_ref();
            sqlx::query(sql(
                "update messages set kind = ?, reader = ?, error = ?, original_message_id = ?, \
                 original_list_id = ?, verp_recipient = ? where id = ?",
            ))
            .bind(analysis.kind.as_str())
            .bind(analysis.reader)
            .bind(analysis.error.as_ref().map(ToString::to_string))
            .bind(original.and_then(|o| o.message_id.as_deref()))
            .bind(original.and_then(|o| o.list_id.as_deref()))
            .bind(analysis.verp.as_deref())
            .bind(m.id)
            .execute(&mut *tx)
            .await?;
            write_bounces(
                &mut tx,
                m.id,
                from_secs(m.received_at),
                &analysis,
                self.trust(),
                now,
                &mut touched,
            )
            .await?;
        }
        if dry_run {
            dry_touched.extend(touched);
            return Ok(Vec::new());
        }
        let mut ids: Vec<i64> = touched.into_iter().collect();
        ids.sort_unstable();
        let out = rederive(&mut tx, self.policy(), &ids, now, true, false).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// A dry run's end: every recipient of a changed message (before or after) derived from its
    /// stored inputs with the changed messages' bounces replaced by their new results, in memory.
    /// Returns `(address, stored state, state it would have)`.
    pub(crate) async fn derive_fresh(
        &self,
        fresh: &HashMap<i64, Fresh>,
        mut touched: HashSet<i64>,
    ) -> Result<Vec<(String, State, State)>, sqlx::Error> {
        // The new bounces, by normalized address, with ids past any stored one.
        let mut next_id = i64::MAX / 2;
        let mut new_bounces: HashMap<String, (String, Vec<StoredBounce>)> = HashMap::new();
        for f in fresh.values() {
            let verp = f.analysis.verp.as_deref();
            let campaign = f
                .analysis
                .original
                .as_ref()
                .and_then(|o| o.campaign.as_deref());
            for b in &f.analysis.bounces {
                let Some((address, domain)) = b.recipient.as_deref().and_then(normalize_address)
                else {
                    continue;
                };
                next_id += 1;
                let at = secs(bounce_time(b.date.as_deref(), from_secs(f.received_at)));
                new_bounces
                    .entry(address.clone())
                    .or_insert_with(|| (domain, Vec::new()))
                    .1
                    .push(StoredBounce {
                        id: next_id,
                        message_id: 0,
                        recipient_id: 0,
                        at,
                        bounce_type: b.bounce_type.as_str().to_owned(),
                        reason: b.reason.as_str().to_owned(),
                        rule: b.rule.clone(),
                        counted: false,
                        not_applied: {
                            let (mismatch, untrusted) =
                                standing(verp, campaign, self.trust(), b, Some(&address));
                            mismatch || untrusted
                        },
                    });
            }
        }
        let mut conn = self.pool().acquire().await?;
        let addresses: Vec<&String> = new_bounces.keys().collect();
        for part in addresses.chunks(500) {
            let mut qb: sqlx::QueryBuilder<Db> =
                sqlx::QueryBuilder::new("select id from recipients where address in (");
            let mut sep = qb.separated(", ");
            for a in part {
                sep.push_bind(a.as_str());
            }
            qb.push(")");
            let ids: Vec<(i64,)> = qb.build_query_as().fetch_all(&mut *conn).await?;
            touched.extend(ids.into_iter().map(|(id,)| id));
        }
        let mut ids: Vec<i64> = touched.into_iter().collect();
        ids.sort_unstable();
        let mut out = Vec::new();
        let mut apply = |mut h: History, extra: Vec<StoredBounce>| {
            let before = State::parse(&h.row.state);
            h.bounces.retain(|b| !fresh.contains_key(&b.message_id));
            h.bounces.extend(extra);
            let after = State::parse(&replay::derive(self.policy(), &h).row.state);
            out.push((h.row.address.clone(), before, after));
        };
        for part in ids.chunks(500) {
            for h in super::replay::load(&mut conn, part).await? {
                let extra = new_bounces
                    .remove(&h.row.address)
                    .map(|(_, b)| b)
                    .unwrap_or_default();
                apply(h, extra);
            }
        }
        for (address, (domain, bounces)) in new_bounces {
            let h = History {
                row: RecipientRow::new(0, address, domain),
                bounces: Vec::new(),
                events: Vec::new(),
            };
            apply(h, bounces);
        }
        Ok(out)
    }
}
