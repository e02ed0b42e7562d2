//! The bounce database on SQLite and on PostgreSQL: schema, idempotency, policy, history, reclassify, errors.

mod common;

use std::path::Path;
use std::time::Duration;

use bounced::policy::{Cause, Policy, State};
use bounced::store::query::BounceFilter;
use bounced::store::{Outcome, Prepared, ReclassifyOptions, Store, StoreError, StoreOptions};
use bounced::{Analysis, Bounce, BounceType, Reason};
use chrono::{DateTime, TimeZone, Utc};
use futures_util::TryStreamExt;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0)
        .single()
        .unwrap_or_default()
}

fn bounce(rcpt: &str, reason: Reason, ty: BounceType) -> Bounce {
    Bounce {
        recipient: Some(rcpt.to_owned()),
        action: Some("failed".into()),
        status: Some("5.1.1".into()),
        replycode: Some("550".into()),
        reason,
        bounce_type: ty,
        diagnostic: Some("550 5.1.1 mailbox unavailable".into()),
        remote_mta: Some("mx.example.net".into()),
        reporting_mta: Some("mta.example.org".into()),
        date: None,
        feedback_type: None,
        rule: format!("test-{}", reason.as_str()),
        reader: "dsn".into(),
        original_message_id: Some("orig-1@example.org".into()),
        original_from: None,
        original_to: None,
        original_subject: None,
        original_list_id: Some("news.example.org".into()),
    }
}

fn analysis(bounces: Vec<Bounce>) -> Analysis {
    Analysis {
        kind: bounced::Kind::Dsn,
        reader: "dsn",
        bounces,
        error: None,
        original: None,
        verp: None,
    }
}

/// A batch analysis (what `Store::reclassify` takes) from a per-message one.
fn each(one: impl Fn(&[u8]) -> Analysis) -> impl FnMut(Vec<Vec<u8>>) -> Vec<Analysis> {
    move |raws| raws.iter().map(|raw| one(raw)).collect()
}

fn message(n: u32, received: DateTime<Utc>, bounces: Vec<Bounce>) -> Prepared {
    let raw = format!("From: mailer-daemon@example.org\nSubject: failure {n}\n\nbody {n}\n");
    Prepared::new(
        format!("file:/tmp/{n}.eml"),
        received,
        raw.as_bytes(),
        analysis(bounces),
    )
}

async fn open(dir: &Path) -> Store {
    let store = Store::open(&dir.join("b.db"), StoreOptions::default()).await;
    assert!(store.is_ok(), "{store:?}");
    store.unwrap_or_else(|_| unreachable!())
}

#[tokio::test]
async fn schema_is_applied_with_wal_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(dir.path()).await;
    store.close().await;

    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.path().join("b.db").display()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tables: Vec<(String,)> =
        sqlx::query_as("select name from sqlite_master where type = 'table' order by name")
            .fetch_all(&pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = tables.iter().map(|(n,)| n.as_str()).collect();
    for t in [
        "bounces",
        "events",
        "messages",
        "recipients",
        "_sqlx_migrations",
    ] {
        assert!(names.contains(&t), "missing table {t}: {names:?}");
    }
    let (mode,): (String,) = sqlx::query_as("pragma journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode, "wal");
    let (version,): (i64,) = sqlx::query_as("select max(version) from _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(version, Store::schema_version());
}

#[tokio::test]
async fn recording_is_idempotent_within_and_across_batches() {
    for db in common::engines::all("recording_is_idempotent_within_and_across_batches") {
        eprintln!(
            "recording_is_idempotent_within_and_across_batches: {}",
            db.name
        );
        let store = db.open().await;
        let m = message(
            1,
            at(1, 0),
            vec![bounce(
                "Ann@Example.COM",
                Reason::Userunknown,
                BounceType::Hard,
            )],
        );
        let out = store
            .record(&[m.clone(), m.clone()], at(1, 1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(out[0], Outcome::New { bounces: 1, .. }));
        assert!(matches!(out[1], Outcome::Duplicate { .. }));
        let again = store
            .record(&[m], at(2, 1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(again[0], Outcome::Duplicate { .. }));

        let s = store.summary().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.messages, 1);
        assert_eq!(s.bounces, 1);
        assert_eq!(s.recipients, 1);
        let r = store
            .recipient("ann@example.com")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r, None, "the local part is kept as sent");
        let r = store
            .recipient("Ann@EXAMPLE.com")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("recipient missing"));
        assert_eq!(r.address, "Ann@example.com");
        assert_eq!(r.hard_count, 1);
    }
}

#[tokio::test]
async fn hard_bounce_suppresses_and_history_says_why() {
    for db in common::engines::all("hard_bounce_suppresses_and_history_says_why") {
        eprintln!("hard_bounce_suppresses_and_history_says_why: {}", db.name);
        let store = db.open().await;
        let out = store
            .record(
                &[message(
                    1,
                    at(3, 8),
                    vec![bounce(
                        "bob@example.com",
                        Reason::Userunknown,
                        BounceType::Hard,
                    )],
                )],
                at(3, 9),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Outcome::New { changes, .. } = &out[0] else {
            panic!("expected a new message: {out:?}");
        };
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].to, State::Suppressed);
        assert_eq!(changes[0].cause, Cause::Hard);

        let r = store
            .recipient("bob@example.com")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("recipient missing"));
        assert_eq!(r.state, "suppressed");
        assert_eq!(r.suppressed_type.as_deref(), Some("hard"));
        assert_eq!(r.suppressed_why.as_deref(), Some("userunknown"));
        assert_eq!(r.suppressed_at.map(|t| t.0), Some(at(3, 8)));

        let h = store
            .history("bob@example.com")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].cause, "hard");
        assert_eq!(h[0].rule.as_deref(), Some("test-userunknown"));
        assert_eq!(h[0].reason.as_deref(), Some("userunknown"));
        assert_eq!(h[0].source.as_deref(), Some("file:/tmp/1.eml"));
    }
}

#[tokio::test]
async fn soft_bounces_suppress_at_threshold_counting_one_per_day() {
    for db in common::engines::all("soft_bounces_suppress_at_threshold_counting_one_per_day") {
        eprintln!(
            "soft_bounces_suppress_at_threshold_counting_one_per_day: {}",
            db.name
        );
        let store = db.open().await;
        let rcpt = "carol@example.com";
        let mut n = 0;
        // Day 1: three soft bounces, one counts. Days 2..4: one each.
        for (day, hour) in [(1, 1), (1, 2), (1, 3), (2, 1), (3, 1), (4, 1)] {
            n += 1;
            store
                .record(
                    &[message(
                        n,
                        at(day, hour),
                        vec![bounce(rcpt, Reason::Mailboxfull, BounceType::Soft)],
                    )],
                    at(day, hour),
                )
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let r = store
            .recipient(rcpt)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("recipient missing"));
        assert_eq!(r.soft_score, 4);
        assert_eq!(r.soft_count, 6);
        assert_eq!(r.state, "active");

        let counted: Vec<bool> = store
            .bounces(&BounceFilter {
                recipient: Some(rcpt.into()),
                ..BounceFilter::default()
            })
            .try_collect::<Vec<_>>()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|b| b.counted)
            .collect();
        assert_eq!(counted.iter().filter(|c| **c).count(), 4);

        store
            .record(
                &[message(
                    99,
                    at(5, 1),
                    vec![bounce(rcpt, Reason::Mailboxfull, BounceType::Soft)],
                )],
                at(5, 1),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = store
            .recipient(rcpt)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("recipient missing"));
        assert_eq!(r.state, "suppressed");
        assert_eq!(r.suppressed_type.as_deref(), Some("soft"));
        let h = store.history(rcpt).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].cause, "soft_threshold");
    }
}

#[tokio::test]
async fn failure_time_comes_from_the_report_date() {
    for db in common::engines::all("failure_time_comes_from_the_report_date") {
        eprintln!("failure_time_comes_from_the_report_date: {}", db.name);
        let store = db.open().await;
        let mut b = bounce("dan@example.com", Reason::Userunknown, BounceType::Hard);
        b.date = Some("Mon, 2 Mar 2026 10:00:00 +0200 (EET)".into());
        store
            .record(&[message(1, at(9, 0), vec![b])], at(9, 0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = store
            .recipient("dan@example.com")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("recipient missing"));
        assert_eq!(r.first_bounce_at.map(|t| t.0), Some(at(2, 8)));
    }
}

#[tokio::test]
async fn manual_unsuppress_holds_against_soft_until_a_complaint() {
    for db in common::engines::all("manual_unsuppress_holds_against_soft_until_a_complaint") {
        eprintln!(
            "manual_unsuppress_holds_against_soft_until_a_complaint: {}",
            db.name
        );
        let store = db
            .open_with(StoreOptions {
                policy: Policy {
                    soft_threshold: 1,
                    ..Policy::default()
                },
                ..StoreOptions::default()
            })
            .await;
        let rcpt = "eve@example.com";
        store
            .record(
                &[message(
                    1,
                    at(1, 0),
                    vec![bounce(rcpt, Reason::Mailboxfull, BounceType::Soft)],
                )],
                at(1, 0),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let state = |s: &Store| {
            let s = s.clone();
            async move {
                s.recipient(rcpt)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .map(|r| r.state)
                    .unwrap_or_default()
            }
        };
        assert_eq!(state(&store).await, "suppressed");
        let out = store
            .unsuppress(rcpt, Some("asked by support"), at(2, 0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.changed);
        store
            .record(
                &[message(
                    2,
                    at(3, 0),
                    vec![bounce(rcpt, Reason::Mailboxfull, BounceType::Soft)],
                )],
                at(3, 0),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state(&store).await, "active");
        store
            .record(
                &[message(
                    3,
                    at(4, 0),
                    vec![bounce(rcpt, Reason::Feedback, BounceType::Complaint)],
                )],
                at(4, 0),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state(&store).await, "suppressed");
        let causes: Vec<String> = store
            .history(rcpt)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|e| format!("{}:{}", e.change, e.cause))
            .collect();
        assert_eq!(
            causes,
            [
                "suppressed:soft_threshold",
                "unsuppressed:manual",
                "suppressed:complaint"
            ]
        );
        assert!(matches!(
            store.unsuppress("nobody@example.com", None, at(5, 0)).await,
            Err(StoreError::UnknownRecipient(_))
        ));
    }
}

#[tokio::test]
async fn reclassify_follows_improved_rules() {
    for db in common::engines::all("reclassify_follows_improved_rules") {
        eprintln!("reclassify_follows_improved_rules: {}", db.name);
        let store = db.open().await;
        let rcpt = "fay@example.com";
        store
            .record(
                &[
                    message(
                        1,
                        at(1, 0),
                        vec![bounce(rcpt, Reason::Onhold, BounceType::Soft)],
                    ),
                    message(
                        2,
                        at(1, 0),
                        vec![bounce("gus@example.com", Reason::Onhold, BounceType::Soft)],
                    ),
                ],
                at(1, 0),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The improved rules see that message 1 is a hard bounce; message 2 is unchanged.
        let report = store
            .reclassify(
                &ReclassifyOptions::default(),
                each(|raw| {
                    let text = String::from_utf8_lossy(raw);
                    if text.contains("failure 1\n") {
                        analysis(vec![bounce(rcpt, Reason::Userunknown, BounceType::Hard)])
                    } else {
                        analysis(vec![bounce(
                            "gus@example.com",
                            Reason::Onhold,
                            BounceType::Soft,
                        )])
                    }
                }),
                at(10, 0),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.messages, 2);
        assert_eq!(report.changed, 1);
        assert_eq!(report.shifts.len(), 1);
        assert_eq!(report.shifts[0].address, rcpt);
        assert_eq!(report.shifts[0].to, State::Suppressed);
        let r = store
            .recipient(rcpt)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("recipient missing"));
        assert_eq!((r.hard_count, r.soft_count), (1, 0));
        assert_eq!(r.suppressed_why.as_deref(), Some("userunknown"));
        let h = store.history(rcpt).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].rule.as_deref(), Some("test-userunknown"));

        // Running it again changes nothing.
        let again = store
            .reclassify(
                &ReclassifyOptions::default(),
                each(|raw| {
                    let text = String::from_utf8_lossy(raw);
                    if text.contains("failure 1\n") {
                        analysis(vec![bounce(rcpt, Reason::Userunknown, BounceType::Hard)])
                    } else {
                        analysis(vec![bounce(
                            "gus@example.com",
                            Reason::Onhold,
                            BounceType::Soft,
                        )])
                    }
                }),
                at(11, 0),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.changed, 0);
        assert!(again.shifts.is_empty());
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("b.db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap_or_else(|e| panic!("{e}"));
    let err = Store::open(&path, StoreOptions::default()).await;
    assert!(matches!(err, Err(StoreError::Corrupt { .. })), "{err:?}");
    let text = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("b.db"), "{text}");
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("b.db");
    open(dir.path()).await.close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query(
        "insert into _sqlx_migrations (version, description, success, checksum, execution_time) \
         values (9999, 'from the future', 1, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    pool.close().await;
    let err = Store::open(&path, StoreOptions::default()).await;
    assert!(
        matches!(err, Err(StoreError::NewerVersion { found: 9999, .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_locked_database_is_reported_as_locked() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("b.db");
    let store = Store::open(
        &path,
        StoreOptions {
            busy_timeout: Duration::from_millis(100),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("begin immediate")
        .execute(&mut other)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let err = store
        .record(&[message(1, at(1, 0), Vec::new())], at(1, 0))
        .await;
    assert!(matches!(err, Err(StoreError::Locked { .. })), "{err:?}");
    sqlx::query("rollback")
        .execute(&mut other)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_missing_database_is_not_created_by_readers() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("none.db");
    let err = Store::open(
        &path,
        StoreOptions {
            create: false,
            ..StoreOptions::default()
        },
    )
    .await;
    assert!(matches!(err, Err(StoreError::Missing { .. })), "{err:?}");
    assert!(!path.exists());
}

use sqlx::Connection;

#[tokio::test]
async fn one_batch_applies_the_policy_in_order() {
    for db in common::engines::all("one_batch_applies_the_policy_in_order") {
        eprintln!("one_batch_applies_the_policy_in_order: {}", db.name);
        let store = db.open().await;
        let rcpt = "hal@example.com";
        let batch: Vec<Prepared> = (1..=6)
            .map(|d| {
                message(
                    d,
                    at(d, 6),
                    vec![bounce(rcpt, Reason::Mailboxfull, BounceType::Soft)],
                )
            })
            .collect();
        let out = store.record(&batch, at(7, 0)).await.unwrap();
        let changed: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, Outcome::New { changes, .. } if !changes.is_empty()))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(changed, [4], "the fifth counted soft bounce suppresses");
        let r = store.recipient(rcpt).await.unwrap().unwrap();
        assert_eq!((r.soft_count, r.soft_score), (6, 6));
        assert_eq!(r.suppressed_at.map(|t| t.0), Some(at(5, 6)));
        let h = store.history(rcpt).await.unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].source.as_deref(), Some("file:/tmp/5.eml"));
    }
}

#[tokio::test]
async fn a_bounce_without_a_usable_address_is_kept_without_a_recipient() {
    for db in common::engines::all("a_bounce_without_a_usable_address_is_kept_without_a_recipient")
    {
        eprintln!(
            "a_bounce_without_a_usable_address_is_kept_without_a_recipient: {}",
            db.name
        );
        let store = db.open().await;
        let mut no_rcpt = bounce("x", Reason::Onhold, BounceType::Soft);
        no_rcpt.recipient = None;
        let bad = bounce("not an address", Reason::Userunknown, BounceType::Hard);
        let out = store
            .record(&[message(1, at(1, 0), vec![no_rcpt, bad])], at(1, 0))
            .await
            .unwrap();
        assert!(matches!(&out[0], Outcome::New { bounces: 2, changes, .. } if changes.is_empty()));
        let s = store.summary().await.unwrap();
        assert_eq!((s.bounces, s.recipients), (2, 0));
        let rows: Vec<_> = store
            .bounces(&BounceFilter::default())
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert!(
            rows.iter()
                .any(|b| b.recipient.as_deref() == Some("not an address"))
        );
    }
}

#[tokio::test]
async fn reclassify_since_leaves_older_messages_alone() {
    for db in common::engines::all("reclassify_since_leaves_older_messages_alone") {
        eprintln!("reclassify_since_leaves_older_messages_alone: {}", db.name);
        let store = db.open().await;
        store
            .record(
                &[
                    message(
                        1,
                        at(1, 0),
                        vec![bounce("old@example.com", Reason::Onhold, BounceType::Soft)],
                    ),
                    message(
                        2,
                        at(9, 0),
                        vec![bounce("new@example.com", Reason::Onhold, BounceType::Soft)],
                    ),
                ],
                at(9, 0),
            )
            .await
            .unwrap();
        let report = store
            .reclassify(
                &ReclassifyOptions {
                    since: Some(at(5, 0)),
                    ..ReclassifyOptions::default()
                },
                each(|_| {
                    analysis(vec![bounce(
                        "new@example.com",
                        Reason::Userunknown,
                        BounceType::Hard,
                    )])
                }),
                at(10, 0),
            )
            .await
            .unwrap();
        assert_eq!((report.messages, report.changed), (1, 1));
        let old = store.recipient("old@example.com").await.unwrap().unwrap();
        assert_eq!((old.soft_count, old.state.as_str()), (1, "active"));
        let new = store.recipient("new@example.com").await.unwrap().unwrap();
        assert_eq!(new.state, "suppressed");
    }
}

#[tokio::test]
async fn a_batch_that_fails_half_way_writes_nothing() {
    for db in common::engines::all("a_batch_that_fails_half_way_writes_nothing") {
        eprintln!("a_batch_that_fails_half_way_writes_nothing: {}", db.name);
        let store = db.open().await;
        // A trigger that refuses history rows makes the batch fail after its messages, bounces and
        // recipients were already inserted inside the transaction.
        db.exec(
            "create trigger refuse_events before insert on events \
             begin select raise(abort, 'no history today'); end",
            "create function refuse() returns trigger language plpgsql as \
             $$ begin raise exception 'no history today'; end $$; \
             create trigger refuse_events before insert on events \
             for each row execute function refuse()",
        )
        .await;
        let batch = [
            message(1, at(1, 0), Vec::new()),
            message(
                2,
                at(1, 0),
                vec![bounce(
                    "gone@example.com",
                    Reason::Userunknown,
                    BounceType::Hard,
                )],
            ),
        ];
        let err = store.record(&batch, at(1, 1)).await;
        assert!(matches!(err, Err(StoreError::Sql { .. })), "{err:?}");
        let s = store.summary().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.messages, s.bounces, s.recipients), (0, 0, 0));

        db.exec(
            "drop trigger refuse_events",
            "drop trigger refuse_events on events",
        )
        .await;
        let out = store
            .record(&batch, at(1, 2))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.iter().all(|o| matches!(o, Outcome::New { .. })),
            "the retry records both messages anew: {out:?}"
        );
    }
}

/// The state a recipient's row and history show, without row ids.
async fn snapshot(store: &Store, rcpt: &str) -> (String, Vec<String>) {
    let r = store.recipient(rcpt).await.unwrap().unwrap();
    let h: Vec<String> = store
        .history(rcpt)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {} {} {:?}", e.at, e.change, e.cause, e.rule))
        .collect();
    (format!("{r:?}"), h)
}

#[tokio::test]
async fn soft_bounces_arriving_newest_first_suppress_as_in_date_order() {
    let rcpt = "ivy@example.com";
    let messages: Vec<Prepared> = (1..=6)
        .map(|d| {
            message(
                d,
                at(d, 6),
                vec![bounce(rcpt, Reason::Mailboxfull, BounceType::Soft)],
            )
        })
        .collect();
    let together =
        common::engines::all("soft_bounces_arriving_newest_first_suppress_as_in_date_order");
    let one_by_one =
        common::engines::all("soft_bounces_arriving_newest_first_suppress_as_in_date_order");
    for (together, one_by_one) in together.iter().zip(&one_by_one) {
        eprintln!(
            "soft_bounces_arriving_newest_first_suppress_as_in_date_order: {}",
            together.name
        );
        let store = together.open().await;
        store.record(&messages, at(9, 0)).await.unwrap();
        let want = snapshot(&store, rcpt).await;
        let r = store.recipient(rcpt).await.unwrap().unwrap();
        assert_eq!((r.state.as_str(), r.soft_score), ("suppressed", 6));

        let store = one_by_one.open().await;
        for m in messages.iter().rev() {
            store
                .record(std::slice::from_ref(m), at(9, 0))
                .await
                .unwrap();
        }
        let r = store.recipient(rcpt).await.unwrap().unwrap();
        assert_eq!((r.state.as_str(), r.soft_score), ("suppressed", 6));
        assert_eq!(snapshot(&store, rcpt).await, want);
        let report = store
            .check_recipients(false, at(9, 0), |d| panic!("{d:?}"))
            .await
            .unwrap();
        assert_eq!(report.differing, 0);
    }
}

#[tokio::test]
async fn a_late_bounce_dated_before_a_manual_unsuppress_does_not_undo_it() {
    for db in
        common::engines::all("a_late_bounce_dated_before_a_manual_unsuppress_does_not_undo_it")
    {
        eprintln!(
            "a_late_bounce_dated_before_a_manual_unsuppress_does_not_undo_it: {}",
            db.name
        );
        let store = db.open().await;
        let rcpt = "jay@example.com";
        store
            .record(
                &[message(
                    1,
                    at(1, 0),
                    vec![bounce(rcpt, Reason::Userunknown, BounceType::Hard)],
                )],
                at(1, 0),
            )
            .await
            .unwrap();
        let out = store
            .unsuppress(rcpt, Some("fixed"), at(5, 0))
            .await
            .unwrap();
        assert!(out.changed && out.recorded);
        // A hard bounce from day 3 arrives after the operator's decision of day 5: the decision, made
        // later, still stands.
        store
            .record(
                &[message(
                    2,
                    at(3, 0),
                    vec![bounce(rcpt, Reason::Userunknown, BounceType::Hard)],
                )],
                at(6, 0),
            )
            .await
            .unwrap();
        let r = store.recipient(rcpt).await.unwrap().unwrap();
        assert_eq!(r.state, "active");
        assert_eq!(r.hard_count, 2);
        // One from day 7 suppresses again.
        store
            .record(
                &[message(
                    3,
                    at(7, 0),
                    vec![bounce(rcpt, Reason::Userunknown, BounceType::Hard)],
                )],
                at(7, 0),
            )
            .await
            .unwrap();
        let r = store.recipient(rcpt).await.unwrap().unwrap();
        assert_eq!(r.state, "suppressed");
        let report = store
            .check_recipients(false, at(8, 0), |d| panic!("{d:?}"))
            .await
            .unwrap();
        assert_eq!(report.differing, 0);
    }
}

#[tokio::test]
async fn db_check_finds_and_repairs_a_recipient_out_of_step() {
    for db in common::engines::all("db_check_finds_and_repairs_a_recipient_out_of_step") {
        eprintln!(
            "db_check_finds_and_repairs_a_recipient_out_of_step: {}",
            db.name
        );
        let store = db.open().await;
        let rcpt = "kim@example.com";
        store
            .record(
                &[message(
                    1,
                    at(1, 0),
                    vec![bounce(rcpt, Reason::Userunknown, BounceType::Hard)],
                )],
                at(1, 0),
            )
            .await
            .unwrap();
        let breakage = "update recipients set state = 'active', hard_count = 0, \
             suppressed_at = null, suppressed_type = null, suppressed_why = null, \
             suppressed_bounce_id = null; delete from events";
        db.exec(breakage, breakage).await;
        let mut found = Vec::new();
        let report = store
            .check_recipients(false, at(2, 0), |d| found.push(d.field.clone()))
            .await
            .unwrap();
        assert_eq!((report.recipients, report.differing), (1, 1));
        for field in ["state", "hard_count", "suppressed_type", "history"] {
            assert!(found.iter().any(|f| f == field), "{field}: {found:?}");
        }
        assert_eq!(
            store.recipient(rcpt).await.unwrap().unwrap().state,
            "active"
        );
        let report = store
            .check_recipients(true, at(2, 0), |_| {})
            .await
            .unwrap();
        assert_eq!(report.differing, 1);
        let r = store.recipient(rcpt).await.unwrap().unwrap();
        assert_eq!((r.state.as_str(), r.hard_count), ("suppressed", 1));
        assert_eq!(store.history(rcpt).await.unwrap().len(), 1);
        let report = store
            .check_recipients(false, at(2, 0), |d| panic!("{d:?}"))
            .await
            .unwrap();
        assert_eq!(report.differing, 0);
    }
}

/// Records `batches` on `store`, trying a batch again when the error is one that heals (a lock, a
/// conflict or deadlock with the other writer), as the pipeline's writer does.
async fn record_retrying(store: &Store, batches: &[Vec<Prepared>]) -> usize {
    let mut retries = 0;
    for batch in batches {
        loop {
            match store.record(batch, at(20, 0)).await {
                Ok(_) => break,
                Err(e) if e.can_heal() && retries < 1_000 => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => panic!("a writer failed: {e}"),
            }
        }
    }
    retries
}

/// Every recipient's row and history, and the totals: what two writers must agree on with one.
async fn everything(store: &Store, who: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for rcpt in who {
        if store.recipient(rcpt).await.unwrap().is_some() {
            let (row, history) = snapshot(store, rcpt).await;
            out.push(row);
            out.extend(history);
        }
    }
    let s = store.summary().await.unwrap();
    out.push(format!(
        "messages {} bounces {} recipients {} suppressed {:?}",
        s.messages, s.bounces, s.recipients, s.suppressed
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_recording_the_same_recipients_at_once_give_the_states_of_one() {
    let test = "two_writers_recording_the_same_recipients_at_once_give_the_states_of_one";
    let who: Vec<String> = (0..6).map(|i| format!("shared{i}@example.com")).collect();
    let kinds = [
        (Reason::Mailboxfull, BounceType::Soft),
        (Reason::Mailboxfull, BounceType::Soft),
        (Reason::Onhold, BounceType::Soft),
        (Reason::Userunknown, BounceType::Hard),
        (Reason::Feedback, BounceType::Complaint),
    ];
    // 240 messages of two bounces each, about the same six people, on days spread over March.
    let messages: Vec<Prepared> = (0..240u32)
        .map(|n| {
            let a = &who[(n % 6) as usize];
            let b = &who[((n * 7 + 3) % 6) as usize];
            let day = 1 + (n * 13) % 27;
            let mut first = bounce(a, kinds[(n % 5) as usize].0, kinds[(n % 5) as usize].1);
            first.date = Some(format!("{day} Mar 2026 {:02}:00:00 +0000", n % 24));
            let mut second = bounce(b, Reason::Mailboxfull, BounceType::Soft);
            second.date = Some(format!("{day} Mar 2026 {:02}:30:00 +0000", n % 24));
            message(n, at(day, n % 24), vec![first, second])
        })
        .collect();
    // Each writer gets two thirds: the middle third is given to both (recorded once, by whichever
    // commits it first), in a different order and batching on each side.
    let third = messages.len() / 3;
    let mine: Vec<Prepared> = messages[..2 * third].to_vec();
    let mut theirs: Vec<Prepared> = messages[third..].to_vec();
    theirs.reverse();
    let batches_a: Vec<Vec<Prepared>> = mine.chunks(7).map(<[Prepared]>::to_vec).collect();
    let batches_b: Vec<Vec<Prepared>> = theirs.chunks(11).map(<[Prepared]>::to_vec).collect();

    for kind in common::engines::kinds(test) {
        eprintln!("{test}: {kind:?}");
        let one = kind.fresh(test);
        let single = one.open().await;
        single.record(&messages, at(20, 0)).await.unwrap();
        let want = everything(&single, &who).await;

        let shared = kind.fresh(test);
        let opts = StoreOptions {
            busy_timeout: Duration::from_secs(30),
            ..StoreOptions::default()
        };
        let a = shared.open_with(opts.clone()).await;
        let b = shared.open_with(opts).await;
        let (ra, rb) = tokio::join!(
            tokio::spawn({
                let a = a.clone();
                let batches = batches_a.clone();
                async move { record_retrying(&a, &batches).await }
            }),
            tokio::spawn({
                let b = b.clone();
                let batches = batches_b.clone();
                async move { record_retrying(&b, &batches).await }
            }),
        );
        eprintln!(
            "{test}: {kind:?}: {} and {} batches retried",
            ra.unwrap(),
            rb.unwrap()
        );
        let got = everything(&a, &who).await;
        assert_eq!(got, want, "{kind:?}");
        let report = b
            .check_recipients(false, at(21, 0), |d| panic!("{kind:?}: {d:?}"))
            .await
            .unwrap();
        assert_eq!(report.differing, 0, "{kind:?}");
    }
}

#[tokio::test]
async fn postgres_recipient_pages_leave_room_for_in_place_updates() {
    let test = "postgres_recipient_pages_leave_room_for_in_place_updates";
    if !common::postgres::available(test) {
        return;
    }
    let cluster = common::postgres::Cluster::start(common::postgres::Tuning::Fast)
        .unwrap_or_else(|e| panic!("{e}"));
    let db = cluster.create_database(test);
    let store = Store::open(Path::new(&db.url), StoreOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store.close().await;
    let rows = common::db_rows(
        Path::new(&db.url),
        "select array_to_string(reloptions, ',') from pg_class where relname = 'recipients'",
    );
    assert_eq!(rows, vec![vec!["fillfactor=70".to_string()]]);
}

#[tokio::test]
async fn a_server_that_goes_away_is_unavailable_then_writes_resume() {
    let test = "a_server_that_goes_away_is_unavailable_then_writes_resume";
    if !common::postgres::available(test) {
        return;
    }
    let cluster = common::postgres::Cluster::start(common::postgres::Tuning::Fast)
        .unwrap_or_else(|e| panic!("{e}"));
    let db = cluster.create_database(test);
    // A password in the URL (the server trusts anyone here) must never be shown.
    let url = db.url.replacen("postgres@", "postgres:hunter2@", 1);
    let store = Store::open(
        Path::new(&url),
        StoreOptions {
            busy_timeout: Duration::from_secs(2),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!store.path().display().to_string().contains("hunter2"));
    let one = message(
        1,
        at(1, 0),
        vec![bounce(
            "ron@example.com",
            Reason::Userunknown,
            BounceType::Hard,
        )],
    );
    store.record(&[one], at(1, 0)).await.unwrap();

    cluster.stop();
    let two = message(
        2,
        at(2, 0),
        vec![bounce(
            "sue@example.com",
            Reason::Userunknown,
            BounceType::Hard,
        )],
    );
    let err = store
        .record(std::slice::from_ref(&two), at(2, 0))
        .await
        .err()
        .unwrap_or_else(|| panic!("a write with the server down succeeded"));
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.can_heal(), "{err:?}");
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("postgres:***@127.0.0.1"), "{text}");

    cluster.start_again();
    store.record(&[two], at(2, 0)).await.unwrap();
    let s = store.summary().await.unwrap();
    assert_eq!((s.messages, s.recipients), (2, 2));
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_and_heals() {
    // Nothing listens on port 1: the connection is refused at once.
    let err = Store::open(
        Path::new("postgres://bounced:secret@127.0.0.1:1/bounces"),
        StoreOptions {
            busy_timeout: Duration::from_secs(1),
            ..StoreOptions::default()
        },
    )
    .await
    .err()
    .unwrap_or_else(|| panic!("a connection to port 1 succeeded"));
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.can_heal());
    let text = err.to_string();
    assert!(!text.contains("secret"), "{text}");
    assert!(text.contains("bounced:***@127.0.0.1:1/bounces"), "{text}");
}

#[tokio::test]
async fn a_database_the_server_does_not_have_is_refused_with_what_to_check() {
    let test = "a_database_the_server_does_not_have_is_refused_with_what_to_check";
    let Some(cluster) = common::postgres::shared(test) else {
        return;
    };
    let url = cluster.url("no_such_database");
    let err = Store::open(Path::new(&url), StoreOptions::default())
        .await
        .err()
        .unwrap_or_else(|| panic!("a database that does not exist opened"));
    assert!(matches!(err, StoreError::Refused { .. }), "{err:?}");
    assert!(!err.can_heal());
    let text = err.to_string();
    assert!(text.contains("no_such_database"), "{text}");
    assert!(text.contains("pg_hba.conf"), "{text}");
}

#[tokio::test]
async fn a_password_file_that_cannot_be_read_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("db-password");
    let err = Store::open(
        Path::new("postgres://bounced@127.0.0.1:1/bounces"),
        StoreOptions {
            password_file: Some(missing.clone()),
            ..StoreOptions::default()
        },
    )
    .await
    .err()
    .unwrap_or_else(|| panic!("opened without its password file"));
    let text = err.to_string();
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.contains("password file"), "{text}");
}

#[tokio::test]
async fn the_synthetic_fill_of_the_benchmarks_suppresses_each_address_it_makes() {
    for db in common::engines::all(
        "the_synthetic_fill_of_the_benchmarks_suppresses_each_address_it_makes",
    ) {
        eprintln!("the_synthetic_fill_...: {}", db.name);
        let store = db.open().await;
        store
            .fill_synthetic_suppressed(1200, at(3, 8))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for address in ["user1@d1.example.com", "user1200@d203.example.com"] {
            let r = store
                .recipient(address)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("{address} missing"));
            assert_eq!(r.state, "suppressed");
            assert_eq!(r.suppressed_type.as_deref(), Some("hard"));
        }
        assert!(
            store
                .recipient("user1201@d204.example.com")
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none()
        );
    }
}

#[tokio::test]
async fn a_server_asking_for_tls_and_a_password_is_reached_with_both_and_refused_without() {
    let test = "a_server_asking_for_tls_and_a_password_is_reached_with_both_and_refused_without";
    let Some(cluster) = common::postgres::shared(test) else {
        return;
    };
    let db = cluster.create_database(test);
    let role = common::postgres::SECURE_ROLE;
    let password = "s3cret-for-the-store-test";
    db.exec(&format!(
        "do $$ begin if not exists (select from pg_roles where rolname = '{role}') then \
         create role {role} login; end if; end $$; \
         alter role {role} password '{password}'; \
         grant all on database \"{}\" to {role}; grant all on schema public to {role}",
        db.name
    ));
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let bad = dir.path().join("bad");
    std::fs::write(&good, format!("{password}\n")).unwrap();
    std::fs::write(&bad, "not-the-password\n").unwrap();
    let ca = cluster.ca_file().display().to_string();
    let url = |query: &str| {
        format!(
            "postgres://{role}@127.0.0.1:{}/{}?{query}",
            cluster.port(),
            db.name
        )
    };
    let open = |url: String, file: &Path| {
        let file = file.to_path_buf();
        async move {
            Store::open(
                Path::new(&url),
                StoreOptions {
                    password_file: Some(file),
                    ..StoreOptions::default()
                },
            )
            .await
        }
    };
    // TLS verified against the server's CA, and the password from its file: open and write.
    let verified = url(&format!("sslmode=verify-full&sslrootcert={ca}"));
    let store = open(verified.clone(), &good)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .suppress("tls-user@example.com", Some("test"), at(3, 1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store.close().await;
    assert_eq!(
        db.int("select count(*) from recipients where state = 'suppressed'"),
        1
    );
    // A wrong password is refused, with what to check, and the password is in no message.
    let Err(err) = open(verified, &bad).await else {
        panic!("opened with a wrong password")
    };
    let text = err.to_string();
    assert!(matches!(err, StoreError::Refused { .. }), "{text}");
    assert!(text.contains("password"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
    assert!(!err.can_heal());
    // Without TLS the server has no line for this role.
    let Err(err) = open(url("sslmode=disable"), &good).await else {
        panic!("opened without TLS")
    };
    assert!(matches!(err, StoreError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("pg_hba.conf"), "{err}");
    // Verifying the server without its CA fails as TLS, with what to check, and is not retried.
    let Err(err) = open(url("sslmode=verify-full"), &good).await else {
        panic!("opened with an unverifiable certificate")
    };
    let text = err.to_string();
    assert!(matches!(err, StoreError::Tls { .. }), "{text}");
    assert!(text.contains("sslrootcert"), "{text}");
    assert!(!err.can_heal());
}
