//! The outbox on SQLite and on PostgreSQL: an event for every change of state, written with it; the
//! per-target delivery bookkeeping (fan-out, order per address, retry, dead, drop).

mod common;

use bounced::store::{OutboxFilter, Prepared, Settle, Store, StoreOptions};
use bounced::{Analysis, Bounce, BounceType, Reason};
use chrono::{DateTime, TimeZone, Utc};

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0)
        .single()
        .unwrap_or_default()
}

fn bounce(rcpt: &str, reason: Reason, ty: BounceType, day: u32) -> Bounce {
    Bounce {
        recipient: Some(rcpt.to_owned()),
        action: Some("failed".into()),
        status: Some("5.1.1".into()),
        replycode: Some("550".into()),
        reason,
        bounce_type: ty,
        diagnostic: Some("550 5.1.1 no such mailbox here".into()),
        remote_mta: None,
        reporting_mta: None,
        date: Some(at(day, 9).to_rfc2822()),
        feedback_type: None,
        rule: format!("test-{}", reason.as_str()),
        reader: "dsn".into(),
        original_message_id: Some("orig-1@lists.example.org".into()),
        original_from: None,
        original_to: None,
        original_subject: None,
        original_list_id: Some("news.lists.example.org".into()),
    }
}

fn message(n: u32, bounces: Vec<Bounce>) -> Prepared {
    let raw = format!("From: mailer-daemon@example.net\nSubject: failure {n}\n\nbody {n}\n");
    Prepared::new(
        format!("file:/tmp/{n}.eml"),
        at(20, 0),
        raw.as_bytes(),
        Analysis {
            kind: bounced::Kind::Dsn,
            reader: "dsn",
            bounces,
            error: None,
            original: None,
            verp: None,
        },
    )
}

async fn open(db: &common::engines::Engine, bounce_events: bool) -> Store {
    db.open_with(StoreOptions {
        bounce_events,
        ..StoreOptions::default()
    })
    .await
}

/// The stored events as (event, address, cause).
async fn events(store: &Store) -> Vec<(String, String, Option<String>)> {
    store
        .outbox_events()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|e| (e.event, e.address, e.cause))
        .collect()
}

fn ev(event: &str, address: &str, cause: Option<&str>) -> (String, String, Option<String>) {
    (event.into(), address.into(), cause.map(str::to_owned))
}

#[tokio::test]
async fn every_change_of_state_writes_one_event_and_nothing_else_does() {
    for db in common::engines::all("every_change_of_state_writes_one_event_and_nothing_else_does") {
        eprintln!(
            "every_change_of_state_writes_one_event_and_nothing_else_does: {}",
            db.name
        );
        let store = open(&db, false).await;
        let a = "jane@example.com";
        // A soft bounce changes no state: no event.
        store
            .record(
                &[message(
                    1,
                    vec![bounce(a, Reason::Mailboxfull, BounceType::Soft, 1)],
                )],
                at(20, 0),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(events(&store).await.is_empty());
        // A hard bounce suppresses: one event, with the bounce's fields.
        let m2 = message(2, vec![bounce(a, Reason::Userunknown, BounceType::Hard, 3)]);
        store
            .record(std::slice::from_ref(&m2), at(20, 0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let all = store
            .outbox_events()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.len(), 1);
        let e = &all[0];
        assert_eq!((e.event.as_str(), e.address.as_str()), ("suppressed", a));
        assert_eq!(e.cause.as_deref(), Some("hard"));
        assert_eq!(e.bounce_type.as_deref(), Some("hard"));
        assert_eq!(e.reason.as_deref(), Some("userunknown"));
        assert_eq!(e.status.as_deref(), Some("5.1.1"));
        assert_eq!(e.rule.as_deref(), Some("test-userunknown"));
        assert_eq!(
            e.original_list_id.as_deref(),
            Some("news.lists.example.org")
        );
        assert_eq!(e.id.len(), 36);
        // The same message again, and a second hard bounce: already suppressed, no event.
        store
            .record(&[m2], at(20, 0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .record(
                &[message(
                    3,
                    vec![bounce(a, Reason::Userunknown, BounceType::Hard, 4)],
                )],
                at(20, 0),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(events(&store).await.len(), 1);
        // By hand: unsuppress, suppress again (with the operator's words), a repeat that changes nothing.
        store
            .unsuppress(a, Some("asked"), at(21, 0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .suppress(a, Some("complained by phone"), at(22, 0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .suppress(a, Some("again"), at(22, 1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got = events(&store).await;
        assert_eq!(
            got,
            vec![
                ev("suppressed", a, Some("hard")),
                ev("unsuppressed", a, Some("manual")),
                ev("suppressed", a, Some("manual")),
            ]
        );
        let last = store
            .outbox_events()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(last[2].reason.as_deref(), Some("complained by phone"));
        assert_eq!(last[2].bounce_type.as_deref(), Some("manual"));
        // An older hard bounce arriving late for another address goes through the replay path.
        let b = "late@example.com";
        store
            .record(
                &[message(
                    4,
                    vec![bounce(b, Reason::Mailboxfull, BounceType::Soft, 10)],
                )],
                at(20, 0),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .record(
                &[message(
                    5,
                    vec![bounce(b, Reason::Userunknown, BounceType::Hard, 2)],
                )],
                at(20, 0),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            events(&store).await.last(),
            Some(&ev("suppressed", b, Some("hard")))
        );
        // All ids differ.
        let all = store
            .outbox_events()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ids: std::collections::HashSet<&str> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), all.len());
        // The state check still finds nothing to repair.
        let report = store
            .check_recipients(false, at(23, 0), |_| {})
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.differing, 0);
    }
}

#[tokio::test]
async fn bounce_events_come_before_the_change_they_cause_when_asked_for() {
    for db in common::engines::all("bounce_events_come_before_the_change_they_cause_when_asked_for")
    {
        eprintln!(
            "bounce_events_come_before_the_change_they_cause_when_asked_for: {}",
            db.name
        );
        let store = open(&db, true).await;
        let a = "sam@example.org";
        store
            .record(
                &[message(
                    1,
                    vec![
                        bounce(a, Reason::Mailboxfull, BounceType::Soft, 1),
                        bounce(a, Reason::Userunknown, BounceType::Hard, 2),
                        bounce("not an address", Reason::Userunknown, BounceType::Hard, 2),
                    ],
                )],
                at(20, 0),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got = store
            .outbox_events()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<(&str, Option<&str>)> = got
            .iter()
            .map(|e| (e.event.as_str(), e.bounce_type.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("bounce", Some("soft")),
                ("bounce", Some("hard")),
                ("suppressed", Some("hard"))
            ]
        );
        assert_eq!(got[0].cause, None);
    }
}

#[tokio::test]
async fn deliveries_keep_order_per_address_and_settle() {
    for db in common::engines::all("deliveries_keep_order_per_address_and_settle") {
        eprintln!("deliveries_keep_order_per_address_and_settle: {}", db.name);
        let store = open(&db, false).await;
        // Events before the target existed are not its business.
        store
            .suppress("old@example.org", None, at(1, 0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .outbox_register("t", Utc::now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .outbox_register("t", Utc::now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The filter leaves out unsuppressed events for target "u".
        store
            .outbox_register("u", at(1, 0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for (n, a) in ["a@example.org", "b@example.org"].iter().enumerate() {
            let n = u32::try_from(n).unwrap_or(0);
            store
                .suppress(a, None, at(2 + n, 0))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            store
                .unsuppress(a, None, at(4 + n, 0))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let read = store
            .outbox_fan_out("t", |_, _| true, 100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, 4);
        assert_eq!(
            store
                .outbox_fan_out("t", |_, _| true, 100)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            0
        );
        let due = store
            .outbox_due("t", 10)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // One per address: each address's first event only.
        assert_eq!(due.len(), 2);
        assert!(due.iter().all(|d| d.event == "suppressed"));
        let (a, b) = (&due[0], &due[1]);
        // a: fails and waits; b: delivered. a's later event stays behind a; b's comes next.
        let later = Utc::now().timestamp_millis() + 60_000;
        store
            .outbox_settle(
                "t",
                &[
                    Settle::Retry {
                        seq: a.seq,
                        next_at: later,
                        error: "503".into(),
                    },
                    Settle::Delivered { seq: b.seq },
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let due = store
            .outbox_due("t", 10)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].address.as_str(), due[0].event.as_str()),
            ("b@example.org", "unsuppressed")
        );
        // b's second fails too, later still: the next attempt is a's first (a's second, due but held
        // back behind it, does not count).
        store
            .outbox_settle(
                "t",
                &[Settle::Retry {
                    seq: due[0].seq,
                    next_at: later + 1_000,
                    error: "503".into(),
                }],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store
                .outbox_next_attempt("t")
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            Some(later)
        );
        // a's first event dies: it no longer holds back a's second.
        store
            .outbox_settle(
                "t",
                &[Settle::Dead {
                    seq: a.seq,
                    error: "410 Gone".into(),
                }],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let due = store
            .outbox_due("t", 10)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].address.as_str(), due[0].event.as_str()),
            ("a@example.org", "unsuppressed")
        );
        let dead = store
            .outbox_list(&OutboxFilter {
                state: Some("dead".into()),
                ..OutboxFilter::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].attempts, 2);
        assert_eq!(dead[0].last_error.as_deref(), Some("410 Gone"));
        // Retry makes it pending again, due now, with its id; drop removes it.
        let n = store
            .outbox_retry(&OutboxFilter::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 1);
        let listed = store
            .outbox_list(&OutboxFilter {
                id: Some(dead[0].id.clone()),
                ..OutboxFilter::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (listed[0].state.as_str(), listed[0].attempts),
            ("pending", 0)
        );
        let n = store
            .outbox_drop(&OutboxFilter {
                state: Some("pending".into()),
                address: Some("a@example.org".into()),
                ..OutboxFilter::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 2);
        let read = store
            .outbox_fan_out("u", |e, _| e == "suppressed", 100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, 4);
        let counts = store
            .outbox_counts()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let u: i64 = counts
            .iter()
            .filter(|c| c.target == "u")
            .map(|c| c.count)
            .sum();
        assert_eq!(u, 2);
    }
}
