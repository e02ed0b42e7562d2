// The outbox: the statements.

use super::super::*;
use super::{BEGIN_WRITE, Conn, Db, FOR_UPDATE, lock_outbox, sql, sql_owned};
use crate::store::Eng;
use sqlx::QueryBuilder;

/// Inserts events into the outbox, a few multi-row statements for any number of them.
pub(crate) async fn insert(
    conn: &mut Conn,
    events: &[NewEvent],
    now: i64,
) -> Result<(), sqlx::Error> {
    if !events.is_empty() {
        lock_outbox(conn).await?;
    }
    for chunk in fixed_chunks(events, 7) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "insert into outbox_events (id, at, event, address, bounce_type, campaign, body) ",
        );
        qb.push_values(chunk, |mut b, e| {
            b.push_bind(e.body.id.clone())
                .push_bind(now)
                .push_bind(e.body.event.clone())
                .push_bind(e.body.address.clone())
                .push_bind(e.body.bounce_type.clone())
                .push_bind(e.campaign.clone())
                .push_bind(serde_json::to_string(&e.body).unwrap_or_default());
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The stored bounces `ids` with their message's campaign, keyed by id.
pub(crate) async fn bounces(
    conn: &mut Conn,
    ids: &[i64],
) -> Result<HashMap<i64, BounceRef>, sqlx::Error> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IN_LIST) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "select b.id, b.status, b.replycode, b.reason, b.diagnostic, b.rule, \
             b.original_message_id, b.original_list_id, m.original_campaign \
             from bounces b join messages m on m.id = b.message_id where b.id in (",
        );
        let mut sep = qb.separated(", ");
        for id in padded(chunk) {
            sep.push_bind(id);
        }
        qb.push(")");
        let got: Vec<BounceRef> = qb.build_query_as().fetch_all(&mut *conn).await?;
        out.extend(got.into_iter().map(|b| (b.id, b)));
    }
    Ok(out)
}

/// Writes one event per recipient of `rows` whose state differs from the stored one: called by
/// every write of recipient rows, before it, so no change of state goes without its event.
pub(crate) async fn state_changes(
    conn: &mut Conn,
    rows: &[&RecipientRow],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut before: HashMap<i64, String> = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(IN_LIST) {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("select id, state from recipients where id in (");
        let mut sep = qb.separated(", ");
        for id in padded(&chunk.iter().map(|r| r.id).collect::<Vec<_>>()) {
            sep.push_bind(id);
        }
        qb.push(")");
        let got: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        before.extend(got);
    }
    let changed: Vec<&RecipientRow> = rows
        .iter()
        .copied()
        .filter(|r| before.get(&r.id).map_or("active", String::as_str) != r.state)
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<i64> = changed
        .iter()
        .filter(|r| r.state == "suppressed")
        .filter_map(|r| r.suppressed_bounce_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let found = bounces(conn, &ids).await?;
    let events: Vec<NewEvent> = changed
        .iter()
        .map(|r| {
            if r.state == "suppressed" {
                let kind = r.suppressed_type.as_deref().unwrap_or("manual");
                let cause = match kind {
                    "soft" => "soft_threshold",
                    "hard" | "complaint" => kind,
                    _ => "manual",
                };
                let bounce = r.suppressed_bounce_id.and_then(|id| found.get(&id));
                let mut e = NewEvent::new(
                    "suppressed",
                    &r.address,
                    now,
                    Some(cause),
                    Some(kind.to_owned()),
                    bounce.filter(|_| cause != "manual"),
                );
                if cause == "manual" {
                    e.body.reason = r.suppressed_why.clone();
                }
                e
            } else {
                let cause = if r.manual.as_deref() == Some("unsuppressed") {
                    "manual"
                } else {
                    "reclassify"
                };
                NewEvent::new("unsuppressed", &r.address, now, Some(cause), None, None)
            }
        })
        .collect();
    insert(conn, &events, now).await
}

/// Appends the `where` conditions of `f` (on `d` = deliveries, `e` = events) to `qb`.
pub(crate) fn push_filter(
    qb: &mut QueryBuilder<Db>,
    f: &OutboxFilter,
    default_state: Option<&str>,
) {
    qb.push(" where 1 = 1");
    if let Some(t) = &f.target {
        qb.push(" and d.target = ").push_bind(t.clone());
    }
    if let Some(s) = f.state.as_deref().or(default_state) {
        qb.push(" and d.state = ").push_bind(s.to_owned());
    }
    if let Some(id) = &f.id {
        qb.push(" and e.id = ").push_bind(id.clone());
    }
    if let Some(a) = &f.address {
        qb.push(" and d.address = ").push_bind(a.clone());
    }
}

impl Eng<'_, Db> {
    /// Registers a target; a new one starts at the end of the event stream (it receives the
    /// events recorded from now on).
    pub(crate) async fn outbox_register(
        &self,
        target: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(sql(
            "insert into outbox_targets (name, cursor, created_at) \
             select ?1, coalesce((select max(seq) from outbox_events), 0), ?2 \
             where not exists (select 1 from outbox_targets where name = ?1) \
             on conflict (name) do nothing",
        ))
        .bind(target)
        .bind(secs(now))
        .execute(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Copies up to `limit` events after `target`'s cursor into its deliveries when `wants`
    /// (event, bounce type) says so, and moves the cursor past them; returns how many events were
    /// read. One transaction: a crash copies all of them or none.
    pub(crate) async fn outbox_fan_out(
        &self,
        target: &str,
        wants: impl Fn(&str, Option<&str>) -> bool,
        limit: u32,
    ) -> Result<usize, StoreError> {
        let now = secs(Utc::now());
        let next_at = now_ms();
        let mut conn = self.pool().acquire().await.map_err(|e| self.err(e))?;
        let result = async {
            use sqlx::Connection;
            let mut tx = conn.begin_with(BEGIN_WRITE).await?;
            let cursor: i64 =
                sqlx::query_scalar(sql_owned(format!(
                    "select cursor from outbox_targets where name = ?{FOR_UPDATE}"
                )))
                    .bind(target)
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or(0);
            let events: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
                sql("select seq, event, address, bounce_type from outbox_events where seq > ? \
                 order by seq limit ?"),
            )
            .bind(cursor)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = events.last().map(|e| e.0) else {
                return Ok(0);
            };
            let wanted: Vec<&(i64, String, String, Option<String>)> = events
                .iter()
                .filter(|(_, ev, _, ty)| wants(ev, ty.as_deref()))
                .collect();
            for chunk in wanted.chunks(rows_per_statement(5)) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "insert into outbox_deliveries (target, event_seq, address, next_at, updated_at) ",
                );
                qb.push_values(chunk, |mut b, (seq, _, address, _)| {
                    b.push_bind(target)
                        .push_bind(*seq)
                        .push_bind(address.clone())
                        .push_bind(next_at)
                        .push_bind(now);
                });
                qb.push(" on conflict (target, event_seq) do nothing");
                qb.build().persistent(false).execute(&mut *tx).await?;
            }
            sqlx::query(sql("update outbox_targets set cursor = ? where name = ?"))
                .bind(last)
                .bind(target)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(events.len())
        }
        .await;
        result.map_err(|e| self.err(e))
    }

    /// Up to `limit` pending deliveries of `target` that are due now, each the oldest pending one
    /// of its address (so a target sees an address's events in order), oldest first.
    pub(crate) async fn outbox_due(
        &self,
        target: &str,
        limit: u32,
    ) -> Result<Vec<Due>, StoreError> {
        sqlx::query_as(sql(
            "select d.event_seq as seq, e.id, e.event, e.address, e.campaign, e.body, d.attempts \
             from outbox_deliveries d join outbox_events e on e.seq = d.event_seq \
             where d.target = ?1 and d.state = 'pending' and d.next_at <= ?2 \
             and not exists (select 1 from outbox_deliveries p where p.target = d.target \
               and p.address = d.address and p.state = 'pending' and p.event_seq < d.event_seq) \
             order by d.event_seq limit ?3",
        ))
        .bind(target)
        .bind(now_ms())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// Unix milliseconds of `target`'s next attempt, if it has one pending: the earliest among the
    /// deliveries that are the oldest pending one of their address (the others wait for those).
    pub(crate) async fn outbox_next_attempt(
        &self,
        target: &str,
    ) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(sql(
            "select min(d.next_at) from outbox_deliveries d where d.target = ?1 \
             and d.state = 'pending' and not exists (select 1 from outbox_deliveries p \
               where p.target = d.target and p.address = d.address and p.state = 'pending' \
               and p.event_seq < d.event_seq)",
        ))
        .bind(target)
        .fetch_one(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// Records what became of attempts to deliver to `target`, in one transaction.
    pub(crate) async fn outbox_settle(
        &self,
        target: &str,
        results: &[Settle],
    ) -> Result<(), StoreError> {
        if results.is_empty() {
            return Ok(());
        }
        let now = secs(Utc::now());
        let mut tx = self.begin().await?;
        let result = async {
            let delivered: Vec<i64> = results
                .iter()
                .filter_map(|r| match r {
                    Settle::Delivered { seq } => Some(*seq),
                    _ => None,
                })
                .collect();
            for chunk in delivered.chunks(rows_per_statement(1)) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "update outbox_deliveries set state = 'delivered', updated_at = ",
                );
                qb.push_bind(now)
                    .push(", attempts = attempts + 1, last_error = null where target = ")
                    .push_bind(target)
                    .push(" and event_seq in (");
                let mut sep = qb.separated(", ");
                for s in chunk {
                    sep.push_bind(*s);
                }
                qb.push(")");
                qb.build().persistent(false).execute(&mut *tx).await?;
            }
            for r in results {
                let (seq, state, next_at, error) = match r {
                    Settle::Delivered { .. } => continue,
                    Settle::Retry {
                        seq,
                        next_at,
                        error,
                    } => (*seq, "pending", *next_at, error),
                    Settle::Dead { seq, error } => (*seq, "dead", 0, error),
                };
                sqlx::query(sql(
                    "update outbox_deliveries set state = ?, attempts = attempts + 1, next_at = ?, \
                     last_error = ?, updated_at = ? where target = ? and event_seq = ?",
                ))
                .bind(state)
                .bind(next_at)
                .bind(error)
                .bind(now)
                .bind(target)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
            Ok::<_, sqlx::Error>(())
        }
        .await;
        result.map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The deliveries `f` selects, oldest first.
    pub(crate) async fn outbox_list(&self, f: &OutboxFilter) -> Result<Vec<OutboxRow>, StoreError> {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "select d.target, e.id, e.seq, e.event, e.address, d.state, d.attempts, d.next_at, \
             d.last_error, d.updated_at from outbox_deliveries d \
             join outbox_events e on e.seq = d.event_seq",
        );
        push_filter(&mut qb, f, None);
        qb.push(" order by e.seq, d.target");
        if let Some(n) = f.limit {
            qb.push(" limit ")
                .push_bind(i64::try_from(n).unwrap_or(i64::MAX));
        }
        qb.build_query_as()
            .persistent(false)
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.err(e))
    }

    /// Deliveries per target and state.
    pub(crate) async fn outbox_counts(&self) -> Result<Vec<OutboxCount>, StoreError> {
        sqlx::query_as(sql(
            "select target, state, count(*) as count from outbox_deliveries \
             group by target, state order by target, state",
        ))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// Makes the deliveries `f` selects (dead ones unless `f.state` says otherwise) pending again,
    /// due now, with their attempts reset; returns how many.
    pub(crate) async fn outbox_retry(&self, f: &OutboxFilter) -> Result<u64, StoreError> {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "update outbox_deliveries set state = 'pending', attempts = 0, next_at = ",
        );
        qb.push_bind(now_ms())
            .push(", updated_at = ")
            .push_bind(secs(Utc::now()))
            .push(
                " where (target, event_seq) in (select d.target, d.event_seq from \
                 outbox_deliveries d join outbox_events e on e.seq = d.event_seq",
            );
        push_filter(&mut qb, f, Some("dead"));
        qb.push(")");
        let done = qb
            .build()
            .persistent(false)
            .execute(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        self.wake_outbox();
        Ok(done.rows_affected())
    }

    /// Deletes the deliveries `f` selects (dead ones unless `f.state` says otherwise); returns how
    /// many. The events stay, so other targets are not affected.
    pub(crate) async fn outbox_drop(&self, f: &OutboxFilter) -> Result<u64, StoreError> {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "delete from outbox_deliveries where (target, event_seq) in \
             (select d.target, d.event_seq from outbox_deliveries d \
             join outbox_events e on e.seq = d.event_seq",
        );
        push_filter(&mut qb, f, Some("dead"));
        qb.push(")");
        let done = qb
            .build()
            .persistent(false)
            .execute(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected())
    }

    /// Every outbox event, oldest first, as JSON bodies (for checks and tests).
    pub(crate) async fn outbox_events(&self) -> Result<Vec<EventBody>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as(sql("select body from outbox_events order by seq"))
                .fetch_all(self.pool())
                .await
                .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(b,)| serde_json::from_str(&b).ok())
            .collect())
    }
}

impl Eng<'_, Db> {
    /// Remembers that target `target` disabled membership `member_id` (of `address` on `list_id`).
    pub(crate) async fn notify_remember_disabled(
        &self,
        target: &str,
        address: &str,
        member_id: &str,
        list_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(sql(
            "insert into notify_disabled (target, member_id, address, list_id, at) \
             values (?, ?, ?, ?, ?) on conflict (target, member_id) do nothing",
        ))
        .bind(target)
        .bind(member_id)
        .bind(address)
        .bind(list_id)
        .bind(secs(Utc::now()))
        .execute(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The memberships `target` disabled for `address`, as `(member id, list id)`.
    pub(crate) async fn notify_disabled(
        &self,
        target: &str,
        address: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query_as(sql(
            "select member_id, list_id from notify_disabled where target = ? and address = ? \
             order by list_id",
        ))
        .bind(target)
        .bind(address)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// Forgets a membership `target` re-enabled (or that is gone).
    pub(crate) async fn notify_forget_disabled(
        &self,
        target: &str,
        member_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(sql(
            "delete from notify_disabled where target = ? and member_id = ?",
        ))
        .bind(target)
        .bind(member_id)
        .execute(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}
