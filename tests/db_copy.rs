//! `bounced db copy` across engines with the real binary: a SQLite database with every table filled
//! goes to PostgreSQL and back to SQLite; every export format, the stats and every row of every
//! table come out the same, raw messages included; a target that is not empty is refused.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::postgres;

fn bounced(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bounced"))
        .args(args)
        .env_remove("BOUNCED_CONFIG")
        .env_remove("BOUNCED_DB")
        .env_remove("RUST_LOG")
        .output()
        .expect("run bounced")
}

fn ok(args: &[&str]) -> Vec<u8> {
    let out = bounced(args);
    assert!(
        out.status.success(),
        "bounced {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const FORMATS: &[&str] = &[
    "txt", "csv", "jsonl", "listmonk", "postfix", "ses", "mailgun",
];

/// Every export format and the stats of database `db`, as printed.
fn outputs(db: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = FORMATS
        .iter()
        .map(|f| {
            (
                format!("export {f}"),
                ok(&["export", "--db", db, "--format", f]),
            )
        })
        .collect();
    v.push((
        "stats".into(),
        ok(&["stats", "--db", db, "--format", "jsonl"]),
    ));
    v.push((
        "stats by reason".into(),
        ok(&["stats", "--db", db, "--by", "reason", "--format", "csv"]),
    ));
    v.push((
        "bounces".into(),
        ok(&[
            "query", "--db", db, "--format", "jsonl", "bounces", "--limit", "100000",
        ]),
    ));
    v
}

/// Every row of every table of the SQLite file, each value as text (blobs in hex), in key order.
fn dump(db: &Path) -> Vec<String> {
    common::read_db(db, async |pool| {
        use sqlx::{Column, Row, TypeInfo, ValueRef};
        let tables: Vec<(String,)> = sqlx::query_as(
            "select name from sqlite_master where type = 'table' \
             and name not like 'sqlite_%' and name <> '_sqlx_migrations' order by name",
        )
        .fetch_all(pool)
        .await
        .expect("tables");
        let mut out = Vec::new();
        for (t,) in tables {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "select * from {t} order by 1, 2"
            )))
            .fetch_all(pool)
            .await
            .expect("rows");
            out.push(format!("table {t}: {} rows", rows.len()));
            for row in rows {
                let mut cells = Vec::new();
                for (i, col) in row.columns().iter().enumerate() {
                    let raw = row.try_get_raw(i).expect("value");
                    let cell = if raw.is_null() {
                        "NULL".to_owned()
                    } else {
                        match raw.type_info().name() {
                            "INTEGER" => row.get::<i64, _>(i).to_string(),
                            "REAL" => row.get::<f64, _>(i).to_string(),
                            "BLOB" => row
                                .get::<Vec<u8>, _>(i)
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect(),
                            _ => format!("{:?}", row.get::<String, _>(i)),
                        }
                    };
                    cells.push(format!("{}={cell}", col.name()));
                }
                out.push(cells.join(" "));
            }
        }
        out
    })
    .expect("open the database")
}

/// Fills the tables no command fills without a server (IMAP positions, notify targets) by hand.
fn fill_by_hand(db: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open");
        for sql in [
            "insert into source_state values ('imap:ops@mail.example.org/INBOX', 1700000001, 4242, 1764000000)",
            "insert into source_state values ('imap:ops@mail.example.org/Bounces', 77, 9, 1764000100)",
            "insert into outbox_targets values ('listmonk', 2, 1764000000)",
            "insert into outbox_targets values ('mailman', 0, 1764000050)",
            "insert into outbox_deliveries select 'listmonk', seq, address, 'delivered', 1, 1764000000123, null, 1764000001 from outbox_events order by seq limit 2",
            "insert into outbox_deliveries select 'mailman', seq, address, 'dead', 8, 1764000999000, 'HTTP 500 from the list server', 1764000999 from outbox_events order by seq limit 1",
            "insert into notify_disabled values ('mailman', 'a1b2c3', 'member7@example.com', 'news.example.org', 1764000200)",
        ] {
            sqlx::query(sql).execute(&pool).await.expect(sql);
        }
        pool.close().await;
    });
}

#[test]
fn sqlite_to_postgres_and_back_gives_the_same_database() {
    let Some(pg) = postgres::database("sqlite_to_postgres_and_back_gives_the_same_database") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = tmp.path().join("a.db");
    let b = tmp.path().join("b.db");
    let (a_s, b_s) = (a.to_str().expect("utf-8"), b.to_str().expect("utf-8"));
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden");

    // A database with every kind of row: the fixtures (DSNs, MTA text, ARF, auto-replies, not
    // bounces), manual decisions (history, outbox events), and positions and deliveries by hand.
    ok(&["import", "--db", a_s, fixtures]);
    ok(&[
        "suppress",
        "--db",
        a_s,
        "--reason",
        "asked by the list owner",
        "owner@example.org",
    ]);
    let exported = String::from_utf8(ok(&["export", "--db", a_s])).expect("utf-8");
    let first = exported
        .lines()
        .next()
        .expect("a suppressed address")
        .to_owned();
    ok(&["unsuppress", "--db", a_s, &first]);
    fill_by_hand(&a);
    let before = dump(&a);
    for table in [
        "messages",
        "recipients",
        "bounces",
        "events",
        "source_state",
        "outbox_events",
        "outbox_targets",
        "outbox_deliveries",
        "notify_disabled",
    ] {
        let header = before
            .iter()
            .find(|l| l.starts_with(&format!("table {table}: ")))
            .expect("table listed");
        assert!(!header.ends_with(": 0 rows"), "{table} is empty: {header}");
    }
    let reference = outputs(a_s);

    ok(&["db", "copy", "--from", a_s, "--to", &pg.url]);
    assert_eq!(
        pg.int("select count(*) from messages"),
        common::db_int(&a, "select count(*) from messages")
    );
    for (what, bytes) in outputs(&pg.url) {
        let want = &reference.iter().find(|(w, _)| *w == what).expect("same").1;
        assert!(
            &bytes == want,
            "{what} differs on PostgreSQL:\n{}\n---- SQLite:\n{}",
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(want)
        );
    }

    let report = ok(&[
        "db", "copy", "--from", &pg.url, "--to", b_s, "--format", "csv",
    ]);
    let report = String::from_utf8(report).expect("utf-8");
    assert!(report.starts_with("table,rows\nmessages,"), "{report}");
    assert_eq!(
        outputs(b_s),
        reference,
        "exports differ after the round trip"
    );
    // Row for row, ids, times, flags and compressed raw messages included.
    assert_eq!(dump(&b), before);

    // A copy never merges: both targets now hold rows.
    for target in [b_s, pg.url.as_str()] {
        let out = bounced(&["db", "copy", "--from", a_s, "--to", target]);
        assert!(!out.status.success(), "copied into a full database");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not empty"), "{err}");
    }
    assert_eq!(dump(&b), before, "a refused copy changed the target");

    // New rows on the PostgreSQL copy get ids after the copied ones.
    let extra = tmp.path().join("extra.eml");
    std::fs::write(
        &extra,
        "From: MAILER-DAEMON@mx.example.net\r\nTo: list@example.org\r\nSubject: failure\r\n\
Date: Tue, 01 Dec 2026 08:00:00 +0000\r\nMessage-ID: <after-copy@mx.example.net>\r\n\r\n\
<late@example.com>: host said: 550 5.1.1 User unknown\r\n",
    )
    .expect("write");
    ok(&["import", "--db", &pg.url, extra.to_str().expect("utf-8")]);
    assert_eq!(
        pg.int("select count(*) from messages"),
        common::db_int(&a, "select count(*) from messages") + 1
    );
}
