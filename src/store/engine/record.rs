// Recording: messages, bounces and the recipients they change.

use super::super::*;
use super::replay::{insert_events, rederive, save_rows, upsert_recipients};
use super::{BEGIN_WRITE, Conn, Db, FOR_UPDATE, sql, sql_owned};
use crate::store::Eng;
use sqlx::QueryBuilder;

/// Which of the bounces `pending[i]` (for `i` in `which`) have the key of a bounce already stored
/// for their recipient (same time, type and reason, applied to the recipient), as
/// `(recipient id, at, type, reason)`.
async fn stored_keys(
    conn: &mut Conn,
    pending: &[Pending<'_>],
    which: &[usize],
    rows: &HashMap<String, RecipientRow>,
) -> Result<HashSet<(i64, i64, String, String)>, sqlx::Error> {
    let mut keys: Vec<(i64, i64, &str, &str)> = which
        .iter()
        .filter_map(|&i| pending.get(i))
        .filter_map(|p| {
            let rid = p.address().and_then(|a| rows.get(a))?.id;
            Some((
                rid,
                p.at,
                p.fields.bounce_type.as_str(),
                p.fields.reason.as_str(),
            ))
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut found = HashSet::new();
    for chunk in fixed_chunks(&keys, 4) {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("with k (recipient_id, at, bounce_type, reason) as (");
        qb.push_values(chunk, |mut b, (rid, at, ty, reason)| {
            b.push_bind(*rid)
                .push_bind(*at)
                .push_bind(*ty)
                .push_bind(*reason);
        });
        qb.push(
            ") select k.recipient_id, k.at, k.bounce_type, k.reason from k where exists \
             (select 1 from bounces b where b.recipient_id = k.recipient_id and b.at = k.at \
             and b.bounce_type = k.bounce_type and b.reason = k.reason and b.verp_mismatch = false \
             and b.untrusted = false)",
        );
        let got: Vec<(i64, i64, String, String)> =
            qb.build_query_as().fetch_all(&mut *conn).await?;
        found.extend(got);
    }
    Ok(found)
}

/// Creates or fetches the recipients of `pending`, keyed by address.
async fn recipients_of(
    conn: &mut Conn,
    pending: &[Pending<'_>],
    now: i64,
) -> Result<HashMap<String, RecipientRow>, sqlx::Error> {
    let mut addresses: Vec<(String, String)> =
        pending.iter().filter_map(|p| p.address.clone()).collect();
    addresses.sort_unstable();
    addresses.dedup();
    upsert_recipients(conn, &addresses, now).await
}

/// Inserts the bounce rows of `pending` with a few multi-row statements; returns the row id of
/// each, keyed by `(message_id, position)`.
async fn insert_bounces(
    conn: &mut Conn,
    pending: &[Pending<'_>],
    rows: &HashMap<String, RecipientRow>,
) -> Result<HashMap<(i64, i64), i64>, sqlx::Error> {
    let mut ids = HashMap::with_capacity(pending.len());
    for chunk in fixed_chunks(pending, 25) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "insert into bounces (message_id, position, recipient_id, at, recipient, action, \
             status, replycode, reason, bounce_type, diagnostic, remote_mta, reporting_mta, date, \
             feedback_type, rule, reader, original_message_id, original_from, original_to, \
             original_subject, original_list_id, counted, verp_mismatch, untrusted) ",
        );
        qb.push_values(chunk, |mut b, p| {
            let f = &p.fields;
            let recipient_id = p.address().and_then(|a| rows.get(a)).map(|r| r.id);
            b.push_bind(p.message_id)
                .push_bind(p.position)
                .push_bind(recipient_id)
                .push_bind(p.at)
                .push_bind(f.recipient.clone())
                .push_bind(f.action.clone())
                .push_bind(f.status.clone())
                .push_bind(f.replycode.clone())
                .push_bind(f.reason.clone())
                .push_bind(f.bounce_type.clone())
                .push_bind(f.diagnostic.clone())
                .push_bind(f.remote_mta.clone())
                .push_bind(f.reporting_mta.clone())
                .push_bind(f.date.clone())
                .push_bind(f.feedback_type.clone())
                .push_bind(f.rule.clone())
                .push_bind(f.reader.clone())
                .push_bind(f.original_message_id.clone())
                .push_bind(f.original_from.clone())
                .push_bind(f.original_to.clone())
                .push_bind(f.original_subject.clone())
                .push_bind(f.original_list_id.clone())
                .push_bind(p.counted)
                .push_bind(p.verp_mismatch)
                .push_bind(p.untrusted);
        });
        qb.push(" returning id, message_id, position");
        let got: Vec<(i64, i64, i64)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        ids.extend(got.into_iter().map(|(id, m, pos)| ((m, pos), id)));
    }
    Ok(ids)
}

/// Writes the bounces of one stored message without applying the policy, adding their recipients
/// to `touched` so the caller can replay those histories.
pub(crate) async fn write_bounces(
    conn: &mut Conn,
    message_id: i64,
    received_at: DateTime<Utc>,
    analysis: &Analysis,
    trust: &Trust,
    now: i64,
    touched: &mut HashSet<i64>,
) -> Result<(), sqlx::Error> {
    let pending: Vec<Pending<'_>> = Pending::of_message(
        0,
        message_id,
        received_at,
        analysis.verp.as_deref(),
        analysis
            .original
            .as_ref()
            .and_then(|o| o.campaign.as_deref()),
        trust,
        &analysis.bounces,
    )
    .collect();
    let rows = recipients_of(conn, &pending, now).await?;
    touched.extend(rows.values().map(|r| r.id));
    insert_bounces(conn, &pending, &rows).await?;
    Ok(())
}

impl Eng<'_, Db> {
    /// [`Store::record`], saving the sources' `positions` in the same transaction: the pipeline's
    /// writer commits a batch and what its sources have acknowledged together.
    pub(crate) async fn record_with_positions(
        &self,
        batch: &[Prepared],
        positions: &[crate::source::PositionUpdate],
        now: DateTime<Utc>,
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(|e| self.err(e))?;
        let result = async {
            use sqlx::Connection;
            let mut tx = conn.begin().await?;
            let out = record_batch(
                &mut tx,
                &self.policy,
                &self.trust,
                self.bounce_events,
                batch,
                secs(now),
            )
            .await?;
            super::source_state::save_positions(&mut tx, positions, secs(now)).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(out)
        }
        .await;
        match result {
            Ok(out) => {
                self.wake_outbox();
                Ok(out)
            }
            Err(e) => {
                // After a failed write (a full disk, EFBIG, EIO) SQLite can keep the transaction
                // and its write lock on this connection: close it rather than hand it back to the
                // pool, where it would lock out every later write.
                let _ = conn.close().await;
                Err(self.err(e))
            }
        }
    }

    /// Records an operator's decision about an address at time `at`, then derives the address's
    /// state again from all its inputs (a decision sorts among the bounces by its time). A
    /// suppression creates an unknown address; an unsuppression of one fails with
    /// [`StoreError::UnknownRecipient`]. Nothing is recorded when the address already has that state
    /// and that override. With `dry_run`, nothing is written and the outcome says what would happen.
    pub(crate) async fn decide(
        &self,
        address: &str,
        decision: Manual,
        why: Option<&str>,
        at: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<ManualOutcome, StoreError> {
        let (address, domain) = normalize_address(address)
            .ok_or_else(|| StoreError::InvalidAddress(address.to_owned()))?;
        let now = secs(at);
        let mut conn = self.pool().acquire().await.map_err(|e| self.err(e))?;
        let result = async {
            use sqlx::Connection;
            let mut tx = if dry_run {
                conn.begin().await?
            } else {
                conn.begin_with(BEGIN_WRITE).await?
            };
            // A decision locks the row it reads (on engines that lock rows) until it commits.
            let lock = if dry_run { "" } else { FOR_UPDATE };
            let stored: Option<RecipientRow> = sqlx::query_as(sql_owned(format!(
                "select {} from recipients where address = ?{lock}",
                recipient_columns!()
            )))
            .bind(&address)
            .fetch_optional(&mut *tx)
            .await?;
            let before = stored
                .as_ref()
                .map_or(State::Active, |r| State::parse(&r.state));
            let target = match decision {
                Manual::Suppressed => State::Suppressed,
                Manual::Unsuppressed => State::Active,
            };
            if let Some(row) = &stored
                && before == target
                && row.manual.as_deref() == Some(decision.as_str())
            {
                return Ok(Some((before, before, false)));
            }
            if stored.is_none() && decision == Manual::Unsuppressed {
                return Ok(None);
            }
            let event = StoredEvent {
                recipient_id: stored.as_ref().map_or(0, |r| r.id),
                at: now,
                change: replay::change_name(target).to_owned(),
                cause: Cause::Manual.as_str().to_owned(),
                bounce_id: None,
                rule: None,
                note: why.map(str::to_owned),
            };
            if dry_run {
                let mut history = match &stored {
                    Some(row) => super::replay::load(&mut tx, &[row.id])
                        .await?
                        .pop()
                        .unwrap_or_else(|| History {
                            row: row.clone(),
                            bounces: Vec::new(),
                            events: Vec::new(),
                        }),
                    None => History {
                        row: RecipientRow::new(0, address.clone(), domain.clone()),
                        bounces: Vec::new(),
                        events: Vec::new(),
                    },
                };
                history.events.push(event);
                let after = State::parse(&replay::derive(&self.policy, &history).row.state);
                return Ok(Some((before, after, true)));
            }
            let id = match &stored {
                Some(row) => row.id,
                None => upsert_recipients(&mut tx, &[(address.clone(), domain.clone())], now)
                    .await?
                    .remove(&address)
                    .map_or(0, |r| r.id),
            };
            sqlx::query(sql(
                "insert into events (recipient_id, at, change, cause, note) values (?, ?, ?, ?, ?)",
            ))
            .bind(id)
            .bind(event.at)
            .bind(&event.change)
            .bind(&event.cause)
            .bind(&event.note)
            .execute(&mut *tx)
            .await?;
            let after = rederive(&mut tx, &self.policy, &[id], now, true, false)
                .await?
                .first()
                .map_or(target, |r| r.after);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some((before, after, true)))
        }
        .await;
        let result = result.map_err(|e| self.err(e))?;
        if !dry_run {
            self.wake_outbox();
        }
        match result {
            Some((before, state, recorded)) => Ok(ManualOutcome {
                address,
                state,
                changed: before != state,
                recorded,
            }),
            None => Err(StoreError::UnknownRecipient(address)),
        }
    }
}

/// One outbox event per new bounce of a usable address (hard, soft or complaint, not one about
/// someone the VERP address does not name), before the changes of state they cause.
async fn write_bounce_events(
    conn: &mut Conn,
    batch: &[Prepared],
    pending: &[Pending<'_>],
    bounce_ids: &HashMap<(i64, i64), i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let events: Vec<outbox::NewEvent> = pending
        .iter()
        .filter(|p| p.bounce.bounce_type != crate::BounceType::None && p.applies())
        .filter_map(|p| {
            let address = p.address()?;
            let f = &p.fields;
            let bounce = outbox::BounceRef {
                id: bounce_ids
                    .get(&(p.message_id, p.position))
                    .copied()
                    .unwrap_or_default(),
                status: f.status.clone(),
                replycode: f.replycode.clone(),
                reason: f.reason.clone(),
                diagnostic: f.diagnostic.clone(),
                rule: f.rule.clone(),
                original_message_id: f.original_message_id.clone(),
                original_list_id: f.original_list_id.clone(),
                original_campaign: batch
                    .get(p.msg)
                    .and_then(|m| m.analysis.original.as_ref())
                    .and_then(|o| o.campaign.clone()),
            };
            Some(outbox::NewEvent::new(
                "bounce",
                address,
                now,
                None,
                Some(f.bounce_type.clone()),
                Some(&bounce),
            ))
        })
        .collect();
    super::outbox::insert(conn, &events, now).await
}

/// Records a batch with a handful of multi-row statements instead of several per message.
async fn record_batch(
    conn: &mut Conn,
    policy: &Policy,
    trust: &Trust,
    bounce_events: bool,
    batch: &[Prepared],
    now: i64,
) -> Result<Vec<Outcome>, sqlx::Error> {
    // 1. Messages: insert, learning which are new.
    let mut inserted: HashMap<String, i64> = HashMap::with_capacity(batch.len());
    for chunk in fixed_chunks(batch, 13) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "insert into messages (sha256, source, received_at, recorded_at, kind, reader, error, \
             original_message_id, original_list_id, original_campaign, verp_recipient, raw_size, \
             raw_deflate) ",
        );
        qb.push_values(chunk, |mut b, m| {
            let a = &m.analysis;
            let original = a.original.as_ref();
            b.push_bind(m.sha256.clone())
                .push_bind(m.source.clone())
                .push_bind(secs(m.received_at))
                .push_bind(now)
                .push_bind(a.kind.as_str())
                .push_bind(a.reader)
                .push_bind(a.error.as_ref().map(ToString::to_string))
                .push_bind(original.and_then(|o| o.message_id.clone()))
                .push_bind(original.and_then(|o| o.list_id.clone()))
                .push_bind(original.and_then(|o| o.campaign.clone()))
                .push_bind(a.verp.clone())
                .push_bind(i64::try_from(m.raw_size).unwrap_or(i64::MAX))
                .push_bind(m.raw_deflate.clone());
        });
        qb.push(" on conflict (sha256) do nothing returning id, sha256");
        let rows: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        inserted.extend(rows.into_iter().map(|(id, sha)| (sha, id)));
    }

    // Which messages are new: the first of each inserted digest.
    let mut is_new = vec![false; batch.len()];
    let mut claimed: HashSet<&str> = HashSet::with_capacity(inserted.len());
    let mut known: HashMap<String, i64> = HashMap::new();
    let mut missing: Vec<&str> = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        if inserted.contains_key(&m.sha256) {
            is_new[i] = claimed.insert(&m.sha256);
        } else {
            missing.push(&m.sha256);
        }
    }
    missing.sort_unstable();
    missing.dedup();
    for chunk in missing.chunks(IN_LIST) {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("select id, sha256 from messages where sha256 in (");
        let mut sep = qb.separated(", ");
        for sha in padded(chunk) {
            sep.push_bind(sha.to_string());
        }
        qb.push(")");
        let rows: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        known.extend(rows.into_iter().map(|(id, sha)| (sha, id)));
    }

    // 2. The bounces of the new messages, their recipients, and their rows.
    let mut pending: Vec<Pending<'_>> = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        if is_new[i] {
            let message_id = inserted.get(&m.sha256).copied().unwrap_or_default();
            pending.extend(Pending::of_message(
                i,
                message_id,
                m.received_at,
                m.analysis.verp.as_deref(),
                m.analysis
                    .original
                    .as_ref()
                    .and_then(|o| o.campaign.as_deref()),
                trust,
                &m.analysis.bounces,
            ));
        }
    }
    let mut rows = recipients_of(conn, &pending, now).await?;

    // 3. The policy. A recipient whose new bounces all sort after the inputs its state includes
    // (the live case) has its state extended here, bounce by bounce in key order. A new bounce
    // with the very key of a stored one (the same failure reported again) changes nothing but the
    // counts: the one before it has done all it can. Any other recipient is derived again from all
    // its stored inputs once the new bounces are in (step 6).
    let behind: Vec<usize> = pending
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            matches!((p.address(), p.policy_key()), (Some(a), Some(key))
                if rows.get(a).is_some_and(|r| !r.extends_with(&key)))
        })
        .map(|(i, _)| i)
        .collect();
    let stored = stored_keys(conn, &pending, &behind, &rows).await?;
    let mut replayed: HashSet<String> = HashSet::new();
    for &i in &behind {
        let Some(p) = pending.get_mut(i) else {
            continue;
        };
        let rid = p.address().and_then(|a| rows.get(a)).map_or(0, |r| r.id);
        if stored.contains(&(
            rid,
            p.at,
            p.fields.bounce_type.clone(),
            p.fields.reason.clone(),
        )) {
            p.inert = true;
        } else if let Some(a) = p.address() {
            replayed.insert(a.to_owned());
        }
    }
    let mut order: Vec<(Option<String>, usize)> = pending
        .iter()
        .enumerate()
        .filter(|(_, p)| p.address().is_some_and(|a| !replayed.contains(a)))
        .map(|(i, p)| (p.policy_key(), i))
        .collect();
    order.sort();
    for (_, i) in order {
        let Some(p) = pending.get_mut(i) else {
            continue;
        };
        let Some(row) = p.address.as_ref().and_then(|(a, _)| rows.get_mut(a)) else {
            continue;
        };
        if !p.applies() {
            continue;
        }
        if p.inert {
            row.count(p.bounce.bounce_type, p.at);
            continue;
        }
        let d = row.apply(
            policy,
            Event::Bounce(p.bounce.bounce_type),
            from_secs(p.at),
            Some(p.bounce.reason.as_str()),
        );
        p.counted = d.counted;
        p.change = d.change;
    }

    // 4. Bounce rows.
    let bounce_ids = insert_bounces(conn, &pending, &rows).await?;
    if bounce_events {
        write_bounce_events(conn, batch, &pending, &bounce_ids, now).await?;
    }

    // 5. History and rows of the extended recipients: one event per change, each naming its
    // bounce and rule.
    let mut changes: Vec<Vec<StateChange>> = vec![Vec::new(); batch.len()];
    let mut events: Vec<AutoEvent> = Vec::new();
    for p in &pending {
        let (Some(change), Some(address)) = (p.change, p.address()) else {
            continue;
        };
        let Some(row) = rows.get_mut(address) else {
            continue;
        };
        let bounce_id = bounce_ids.get(&(p.message_id, p.position)).copied();
        if change.to == State::Suppressed {
            row.suppressed_bounce_id = bounce_id;
        }
        events.push(AutoEvent::new(
            row.id,
            p.at,
            change,
            bounce_id,
            Some(&p.bounce.rule),
        ));
        if let Some(c) = changes.get_mut(p.msg) {
            c.push(StateChange {
                address: address.to_owned(),
                to: change.to,
                cause: change.cause,
            });
        }
    }
    insert_events(conn, &events).await?;
    let extended: Vec<&RecipientRow> = rows
        .values()
        .filter(|r| !replayed.contains(r.address.as_str()))
        .collect();
    save_rows(conn, &extended, now).await?;

    // 6. The recipients whose new bounces arrived out of order, derived again from all their
    // inputs; a change of state is told with the message whose bounce caused it (else the first
    // message of the batch that names the recipient).
    if !replayed.is_empty() {
        let mut ids: Vec<i64> = replayed
            .iter()
            .filter_map(|a| rows.get(a).map(|r| r.id))
            .collect();
        ids.sort_unstable();
        let message_of: HashMap<i64, usize> = pending
            .iter()
            .filter_map(|p| {
                bounce_ids
                    .get(&(p.message_id, p.position))
                    .map(|id| (*id, p.msg))
            })
            .collect();
        for r in rederive(conn, policy, &ids, now, true, false).await? {
            if r.before == r.after {
                continue;
            }
            let msg = r
                .last_change
                .and_then(|(_, bounce)| bounce)
                .and_then(|b| message_of.get(&b).copied())
                .or_else(|| {
                    pending
                        .iter()
                        .find(|p| p.address() == Some(r.address.as_str()))
                        .map(|p| p.msg)
                });
            let cause = r.last_change.map_or(Cause::Manual, |(c, _)| c);
            if let Some(c) = msg.and_then(|m| changes.get_mut(m)) {
                c.push(StateChange {
                    address: r.address,
                    to: r.after,
                    cause,
                });
            }
        }
    }

    // Outcomes, in batch order.
    Ok(batch
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if is_new[i] {
                Outcome::New {
                    message_id: inserted.get(&m.sha256).copied().unwrap_or_default(),
                    bounces: m.analysis.bounces.len(),
                    changes: changes.get_mut(i).map(std::mem::take).unwrap_or_default(),
                }
            } else {
                Outcome::Duplicate {
                    message_id: inserted
                        .get(&m.sha256)
                        .or_else(|| known.get(&m.sha256))
                        .copied()
                        .unwrap_or_default(),
                }
            }
        })
        .collect())
}
