//! Property tests of the suppression state on SQLite and on PostgreSQL: it is a function of the set of
//! stored bounces, whatever order and batching they arrived in, and a `reclassify` stopped at any
//! point leaves every recipient in step with its bounces (`db check` finds nothing), before and
//! after it is run again.

mod common;

use std::panic::AssertUnwindSafe;
use std::path::Path;

use bounced::policy::Policy;
use bounced::store::{Prepared, ReclassifyOptions, Store, StoreOptions};
use bounced::{Analysis, Bounce, BounceType, Reason};
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

/// One bounce of a generated message: which recipient, what kind, when (seconds into March 2026).
#[derive(Debug, Clone)]
struct Spec {
    who: usize,
    kind: usize,
    offset: i64,
}

const WHO: [&str; 3] = ["ann@example.com", "bob@example.net", "cid@example.org"];

/// The kinds of bounce the generator picks from: soft ones most, as in real mail.
const KINDS: [(Reason, BounceType); 6] = [
    (Reason::Mailboxfull, BounceType::Soft),
    (Reason::Onhold, BounceType::Soft),
    (Reason::Mailboxfull, BounceType::Soft),
    (Reason::Userunknown, BounceType::Hard),
    (Reason::Feedback, BounceType::Complaint),
    (Reason::Delivered, BounceType::None),
];

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn bounce(rcpt: &str, reason: Reason, ty: BounceType, date: DateTime<Utc>) -> Bounce {
    Bounce {
        recipient: Some(rcpt.to_owned()),
        action: Some("failed".into()),
        status: None,
        replycode: None,
        reason,
        bounce_type: ty,
        diagnostic: None,
        remote_mta: None,
        reporting_mta: None,
        date: Some(date.to_rfc2822()),
        feedback_type: None,
        rule: format!("rule-{}", reason.as_str()),
        reader: "dsn".into(),
        original_message_id: None,
        original_from: None,
        original_to: None,
        original_subject: None,
        original_list_id: None,
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

/// The bounces of a message; with `flip`, every soft bounce reads as hard and every hard one as
/// soft (as a changed rule would have it).
fn bounces_of(specs: &[Spec], flip: bool) -> Vec<Bounce> {
    specs
        .iter()
        .map(|s| {
            let (mut reason, mut ty) = KINDS[s.kind % KINDS.len()];
            if flip {
                (reason, ty) = match ty {
                    BounceType::Soft => (Reason::Userunknown, BounceType::Hard),
                    BounceType::Hard => (Reason::Mailboxfull, BounceType::Soft),
                    other => (reason, other),
                };
            }
            let date = start() + chrono::Duration::seconds(s.offset);
            bounce(WHO[s.who % WHO.len()], reason, ty, date)
        })
        .collect()
}

fn message(n: usize, specs: &[Spec]) -> Prepared {
    let raw = format!("From: mailer-daemon@example.org\nSubject: failure {n}\n\nbody {n}\n");
    Prepared::new(
        format!("test:{n}"),
        start() + chrono::Duration::days(40),
        raw.as_bytes(),
        analysis(bounces_of(specs, false)),
    )
}

/// The message number a stored raw message carries.
fn number(raw: &[u8]) -> usize {
    let text = String::from_utf8_lossy(raw);
    text.split("failure ")
        .nth(1)
        .and_then(|rest| rest.split('\n').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn policy() -> Policy {
    Policy {
        soft_threshold: 3,
        soft_stale_after: chrono::Duration::days(4),
    }
}

async fn open(path: &Path) -> Store {
    Store::open(
        path,
        StoreOptions {
            policy: policy(),
            ..StoreOptions::default()
        },
    )
    .await
    .expect("open")
}

/// Every recipient's row and history as text, without row ids.
async fn snapshot(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for who in WHO {
        if let Some(r) = store.recipient(who).await.expect("recipient") {
            out.push(format!("{r:?}"));
            for e in store.history(who).await.expect("history") {
                out.push(format!(
                    "{who} {} {} {} {:?} {:?}",
                    e.at, e.change, e.cause, e.rule, e.reason
                ));
            }
        }
    }
    out
}

/// The differences `db check` reports.
async fn check(store: &Store) -> Vec<String> {
    let mut found = Vec::new();
    store
        .check_recipients(false, start(), |d| found.push(format!("{d:?}")))
        .await
        .expect("check");
    found
}

/// Messages of one to three bounces each.
fn messages() -> impl Strategy<Value = Vec<Vec<Spec>>> {
    // Times from a few fixed instants too, so that reports of the same failure at the same second
    // (the same key) and ties between kinds are common.
    let offset = prop_oneof![
        0i64..(20 * 86_400),
        prop::sample::select(vec![3_600i64, 90_000, 90_001, 5 * 86_400]),
    ];
    let spec = (0..WHO.len(), 0..KINDS.len(), offset).prop_map(|(who, kind, offset)| Spec {
        who,
        kind,
        offset,
    });
    prop::collection::vec(prop::collection::vec(spec, 1..3), 1..14)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_state_does_not_depend_on_arrival_order_or_batching(
        specs in messages(),
        order in any::<prop::sample::Index>(),
        cuts in prop::collection::vec(any::<bool>(), 14),
    ) {
        let rt = runtime();
        for kind in common::engines::kinds("the_state_does_not_depend_on_arrival_order_or_batching") {
        let date_order = kind.fresh("the_state_date_order");
        let any_order = kind.fresh("the_state_any_order");
        let all: Vec<Prepared> = specs.iter().enumerate().map(|(n, s)| message(n, s)).collect();

        // One import, in date order.
        let mut by_date = all.clone();
        by_date.sort_by_key(|m| {
            m.analysis.bounces.iter().filter_map(|b| b.date.clone()).min()
        });
        let (want, want_check) = rt.block_on(async {
            let store = open(&date_order.location).await;
            store.record(&by_date, start()).await.expect("record");
            (snapshot(&store).await, check(&store).await)
        });
        prop_assert!(want_check.is_empty(), "{:?}", want_check);

        // Any order: a rotation then a reversal of every other run, cut into batches.
        let mut shuffled = all.clone();
        let k = order.index(shuffled.len());
        shuffled.rotate_left(k);
        for (i, part) in shuffled.chunks_mut(3).enumerate() {
            if cuts.get(i).copied().unwrap_or(false) {
                part.reverse();
            }
        }
        let (got, got_check) = rt.block_on(async {
            let store = open(&any_order.location).await;
            let mut batch = Vec::new();
            for (i, m) in shuffled.into_iter().enumerate() {
                batch.push(m);
                if cuts.get(i).copied().unwrap_or(true) {
                    store.record(&batch, start()).await.expect("record");
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                store.record(&batch, start()).await.expect("record");
            }
            (snapshot(&store).await, check(&store).await)
        });
        prop_assert!(got_check.is_empty(), "{:?} {:?}", kind, got_check);
        prop_assert_eq!(got, want, "{:?}", kind);
        }
    }

    #[test]
    fn reclassify_stopped_anywhere_leaves_nothing_to_repair(
        specs in messages(),
        flip_every in 1usize..4,
        batch in 1usize..5,
        stop_after in 0usize..14,
    ) {
        install_quiet_hook();
        let rt = runtime();
        for kind in common::engines::kinds("reclassify_stopped_anywhere_leaves_nothing_to_repair") {
        let fresh_db = kind.fresh("reclassify_stopped_fresh");
        let reclassified = kind.fresh("reclassify_stopped_reclassified");
        let all: Vec<Prepared> = specs.iter().enumerate().map(|(n, s)| message(n, s)).collect();
        let flipped = |n: usize| n.is_multiple_of(flip_every);
        let new_result = |raw: &[u8]| {
            let n = number(raw);
            analysis(specs.get(n).map(|s| bounces_of(s, flipped(n))).unwrap_or_default())
        };

        // What the new rules give when the messages are recorded with them from the start.
        let want = rt.block_on(async {
            let store = open(&fresh_db.location).await;
            let fresh: Vec<Prepared> = all
                .iter()
                .enumerate()
                .map(|(n, m)| {
                    let mut m = m.clone();
                    m.analysis = analysis(bounces_of(&specs[n], flipped(n)));
                    m
                })
                .collect();
            store.record(&fresh, start()).await.expect("record");
            snapshot(&store).await
        });

        let path = reclassified.location.clone();
        rt.block_on(async {
            let store = open(&path).await;
            store.record(&all, start()).await.expect("record");
            store.close().await;
        });
        // The run stops (as at a SIGKILL) once `stop_after` messages were analysed.
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let stopped = std::panic::catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async {
                let store = open(&path).await;
                let opts = ReclassifyOptions { batch, ..ReclassifyOptions::default() };
                let _ = store
                    .reclassify(
                        &opts,
                        each(|raw| {
                            if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == stop_after {
                                std::panic::panic_any(SimulatedCrash);
                            }
                            new_result(raw)
                        }),
                        start(),
                    )
                    .await;
            })
        }));
        let _ = stopped;
        let (after_stop, rerun, got) = rt.block_on(async {
            let store = open(&path).await;
            let after_stop = check(&store).await;
            store
                .reclassify(&ReclassifyOptions { batch, ..ReclassifyOptions::default() }, each(&new_result), start())
                .await
                .expect("rerun");
            (after_stop, check(&store).await, snapshot(&store).await)
        });
        prop_assert!(after_stop.is_empty(), "{:?} after the stop: {:?}", kind, after_stop);
        prop_assert!(rerun.is_empty(), "{:?} after the rerun: {:?}", kind, rerun);
        prop_assert_eq!(got, want, "{:?}", kind);
        }
    }
}

/// The payload of the panic that stands for a crash in the middle of a run.
struct SimulatedCrash;

#[test]
fn a_simulated_crash_is_quiet() {
    // Installed once for this binary: the simulated crashes above print nothing, any other panic
    // is reported as usual.
    install_quiet_hook();
    let r = std::panic::catch_unwind(|| std::panic::panic_any(SimulatedCrash));
    assert!(r.is_err());
}

fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<SimulatedCrash>().is_none() {
                default(info);
            }
        }));
    });
}
