// Recipients' rows, history and replay: the statements.

use super::super::*;
use super::{BEGIN_WRITE, Conn, Db, lock_recipients, sql};
use crate::store::Eng;
use sqlx::QueryBuilder;

/// Fetches the recipient rows for normalized `(address, domain)` pairs, creating the new ones;
/// keyed by address.
pub(crate) async fn upsert_recipients(
    conn: &mut Conn,
    addresses: &[(String, String)],
    now: i64,
) -> Result<HashMap<String, RecipientRow>, sqlx::Error> {
    let mut rows = HashMap::with_capacity(addresses.len());
    for chunk in fixed_chunks(addresses, 3) {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("insert into recipients (address, domain, updated_at) ");
        qb.push_values(chunk, |mut b, (address, domain)| {
            b.push_bind(address.clone())
                .push_bind(domain.clone())
                .push_bind(now);
        });
        qb.push(concat!(
            " on conflict (address) do update set updated_at = excluded.updated_at returning ",
            recipient_columns!()
        ));
        let got: Vec<RecipientRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
        rows.extend(got.into_iter().map(|r| (r.address.clone(), r)));
    }
    Ok(rows)
}

/// Writes recipient rows back, a few multi-row statements for any number of them.
pub(crate) async fn save_rows(
    conn: &mut Conn,
    rows: &[&RecipientRow],
    now: i64,
) -> Result<(), sqlx::Error> {
    super::outbox::state_changes(conn, rows, now).await?;
    for chunk in fixed_chunks(rows, 19) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "insert into recipients (id, address, domain, state, soft_score, \
             soft_last_counted_at, manual, hard_count, soft_count, complaint_count, other_count, \
             first_bounce_at, last_bounce_at, suppressed_at, suppressed_type, suppressed_why, \
             suppressed_bounce_id, policy_key, updated_at) ",
        );
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.address.clone())
                .push_bind(r.domain.clone())
                .push_bind(r.state.clone())
                .push_bind(r.soft_score)
                .push_bind(r.soft_last_counted_at)
                .push_bind(r.manual.clone())
                .push_bind(r.hard_count)
                .push_bind(r.soft_count)
                .push_bind(r.complaint_count)
                .push_bind(r.other_count)
                .push_bind(r.first_bounce_at)
                .push_bind(r.last_bounce_at)
                .push_bind(r.suppressed_at)
                .push_bind(r.suppressed_type.clone())
                .push_bind(r.suppressed_why.clone())
                .push_bind(r.suppressed_bounce_id)
                .push_bind(r.policy_key.clone())
                .push_bind(now);
        });
        qb.push(
            " on conflict (id) do update set state = excluded.state, \
             soft_score = excluded.soft_score, soft_last_counted_at = excluded.soft_last_counted_at, \
             manual = excluded.manual, hard_count = excluded.hard_count, \
             soft_count = excluded.soft_count, complaint_count = excluded.complaint_count, \
             other_count = excluded.other_count, first_bounce_at = excluded.first_bounce_at, \
             last_bounce_at = excluded.last_bounce_at, suppressed_at = excluded.suppressed_at, \
             suppressed_type = excluded.suppressed_type, suppressed_why = excluded.suppressed_why, \
             suppressed_bounce_id = excluded.suppressed_bounce_id, \
             policy_key = excluded.policy_key, updated_at = excluded.updated_at",
        );
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts history rows, a few multi-row statements for any number of them.
pub(crate) async fn insert_events(
    conn: &mut Conn,
    events: &[AutoEvent],
) -> Result<(), sqlx::Error> {
    for chunk in fixed_chunks(events, 6) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "insert into events (recipient_id, at, change, cause, bounce_id, rule) ",
        );
        qb.push_values(chunk, |mut b, e| {
            b.push_bind(e.recipient_id)
                .push_bind(e.at)
                .push_bind(e.change)
                .push_bind(e.cause)
                .push_bind(e.bounce_id)
                .push_bind(e.rule.clone());
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Loads the rows, bounces and history of the recipients `ids` (at most a few hundred).
pub(crate) async fn load(conn: &mut Conn, ids: &[i64]) -> Result<Vec<History>, sqlx::Error> {
    let in_list = |head: &'static str, tail: &'static str| {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(head);
        let mut sep = qb.separated(", ");
        for id in padded(ids) {
            sep.push_bind(id);
        }
        qb.push(tail);
        qb
    };
    let rows: Vec<RecipientRow> = in_list(
        concat!(
            "select ",
            recipient_columns!(),
            " from recipients where id in ("
        ),
        ")",
    )
    .build_query_as()
    .fetch_all(&mut *conn)
    .await?;
    let bounces: Vec<StoredBounce> = in_list(
        "select id, message_id, recipient_id, at, bounce_type, reason, rule, counted, \
         (verp_mismatch or untrusted) as not_applied from bounces where recipient_id in (",
        ")",
    )
    .build_query_as()
    .fetch_all(&mut *conn)
    .await?;
    let events: Vec<StoredEvent> = in_list(
        "select recipient_id, at, change, cause, bounce_id, rule, note from events \
         where recipient_id in (",
        ") order by at, id",
    )
    .build_query_as()
    .fetch_all(&mut *conn)
    .await?;
    let mut by_id: HashMap<i64, History> = rows
        .into_iter()
        .map(|row| {
            (
                row.id,
                History {
                    row,
                    bounces: Vec::new(),
                    events: Vec::new(),
                },
            )
        })
        .collect();
    for b in bounces {
        if let Some(h) = by_id.get_mut(&b.recipient_id) {
            h.bounces.push(b);
        }
    }
    for e in events {
        if let Some(h) = by_id.get_mut(&e.recipient_id) {
            h.events.push(e);
        }
    }
    let mut out: Vec<History> = by_id.into_values().collect();
    out.sort_by_key(|h| h.row.id);
    Ok(out)
}

/// Derives the recipients `ids` again from their stored inputs; with `write`, stores what differs
/// (row, counted flags, automatic history) in the caller's transaction.
pub(crate) async fn rederive(
    conn: &mut Conn,
    policy: &Policy,
    ids: &[i64],
    now: i64,
    write: bool,
    want_differences: bool,
) -> Result<Vec<Rederived>, sqlx::Error> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(RECIPIENTS_PER_ROUND) {
        if write {
            lock_recipients(conn, chunk).await?;
        }
        let histories = load(conn, chunk).await?;
        let mut rows: Vec<RecipientRow> = Vec::new();
        let mut counted: Vec<(i64, bool)> = Vec::new();
        let mut replaced: Vec<i64> = Vec::new();
        let mut events: Vec<AutoEvent> = Vec::new();
        for h in &histories {
            let d = derive(policy, h);
            let history_differs = automatic(h) != d.events;
            let differences = if want_differences {
                differences(h, &d)
            } else {
                Vec::new()
            };
            out.push(Rederived {
                id: h.row.id,
                address: h.row.address.clone(),
                before: State::parse(&h.row.state),
                after: State::parse(&d.row.state),
                last_change: d.events.last().map(|e| {
                    let cause = match e.cause {
                        "hard" => Cause::Hard,
                        "complaint" => Cause::Complaint,
                        _ => Cause::SoftThreshold,
                    };
                    (cause, e.bounce_id)
                }),
                differences,
            });
            if !write {
                continue;
            }
            if d.row != h.row {
                rows.push(d.row);
            }
            counted.extend(d.counted);
            if history_differs {
                replaced.push(h.row.id);
                events.extend(d.events);
            }
        }
        if !write {
            continue;
        }
        for value in [true, false] {
            let ids: Vec<i64> = counted
                .iter()
                .filter(|(_, c)| *c == value)
                .map(|(id, _)| *id)
                .collect();
            for part in ids.chunks(IN_LIST) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new("update bounces set counted = ");
                qb.push_bind(value).push(" where id in (");
                let mut sep = qb.separated(", ");
                for id in padded(part) {
                    sep.push_bind(id);
                }
                qb.push(")");
                qb.build().execute(&mut *conn).await?;
            }
        }
        for part in replaced.chunks(IN_LIST) {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                "delete from events where cause <> 'manual' and recipient_id in (",
            );
            let mut sep = qb.separated(", ");
            for id in padded(part) {
                sep.push_bind(id);
            }
            qb.push(")");
            qb.build().execute(&mut *conn).await?;
        }
        insert_events(conn, &events).await?;
        let refs: Vec<&RecipientRow> = rows.iter().collect();
        save_rows(conn, &refs, now).await?;
    }
    Ok(out)
}

impl Eng<'_, Db> {
    /// Derives every recipient again from its stored bounces and the operator's decisions and
    /// compares: state, override, counts, soft score, times, the suppression's cause, the counted
    /// flags of its bounces and its automatic history. Calls `each` for every difference; with
    /// `repair`, writes what the inputs give (500 recipients per transaction).
    pub(crate) async fn check_recipients(
        &self,
        repair: bool,
        now: DateTime<Utc>,
        mut each: impl FnMut(&Difference),
    ) -> Result<CheckReport, StoreError> {
        let mut report = CheckReport {
            repaired: repair,
            ..CheckReport::default()
        };
        let mut last = 0i64;
        loop {
            let result = async {
                use sqlx::Connection;
                let mut conn = self.pool().acquire().await?;
                let mut tx = if repair {
                    conn.begin_with(BEGIN_WRITE).await?
                } else {
                    conn.begin().await?
                };
                let ids: Vec<i64> = sqlx::query_scalar(sql(
                    "select id from recipients where id > ? order by id limit ?",
                ))
                .bind(last)
                .bind(i64::try_from(RECIPIENTS_PER_ROUND).unwrap_or(500))
                .fetch_all(&mut *tx)
                .await?;
                let found = rederive(&mut tx, &self.policy, &ids, secs(now), repair, true).await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>((ids, found))
            }
            .await;
            let (ids, found) = result.map_err(|e| self.err(e))?;
            let Some(&max) = ids.last() else {
                break;
            };
            last = max;
            report.recipients += ids.len() as u64;
            for r in found.iter().filter(|r| !r.differences.is_empty()) {
                report.differing += 1;
                report.differences += r.differences.len() as u64;
                r.differences.iter().for_each(&mut each);
            }
        }
        Ok(report)
    }
}
