//! Three `bounced run` processes of the real binary, each on its own Maildir, writing one
//! PostgreSQL database; recipients shared between them. One daemon is SIGKILLed mid-run and
//! restarted; in another run the PostgreSQL server itself is stopped and started again mid-run.
//! Either way every message is recorded once, every file acknowledged, and the exports, the stats
//! and every recipient's counts and state are byte for byte what one daemon given all the mail
//! into SQLite produces.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::overlap::message;
use common::postgres::{self, Client, Cluster, Tuning};
use common::{Daemon, DaemonCmd, deliver, make_maildir, names};

/// Messages in all (the acceptance run of the benchmark uses 30,000: `examples/bench_multi.rs`).
const MESSAGES: usize = 3_000;
const DAEMONS: usize = 3;

fn bounced(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_bounced"))
        .args(args)
        .env_remove("BOUNCED_CONFIG")
        .env_remove("BOUNCED_DB")
        .env_remove("RUST_LOG")
        .output()
        .expect("run bounced");
    assert!(
        out.status.success(),
        "bounced {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every export format, the stats and every recipient's record, as the CLI prints them.
fn outputs(db: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = [
        "txt", "csv", "jsonl", "listmonk", "postfix", "ses", "mailgun",
    ]
    .iter()
    .map(|f| {
        (
            format!("export {f}"),
            bounced(&["export", "--db", db, "--format", f]),
        )
    })
    .collect();
    v.push((
        "stats".into(),
        bounced(&["stats", "--db", db, "--format", "jsonl"]),
    ));
    v.push((
        "stats by reason".into(),
        bounced(&["stats", "--db", db, "--by", "reason", "--format", "csv"]),
    ));
    v
}

/// Every recipient's counts and state, one line each, from a query both engines answer alike.
const RECIPIENT_ROWS: &str = "select address || '|' || state || '|' || hard_count || '|' || \
    soft_count || '|' || complaint_count || '|' || other_count || '|' || soft_score || '|' || \
    coalesce(soft_last_counted_at, -1) || '|' || coalesce(first_bounce_at, -1) || '|' || \
    coalesce(last_bounce_at, -1) || '|' || coalesce(suppressed_at, -1) || '|' || \
    coalesce(suppressed_type, '') || '|' || coalesce(suppressed_why, '') \
    from recipients order by address";

/// What the CLI printed (each output and its name), and every recipient's row.
type Outputs = (Vec<(String, Vec<u8>)>, String);

/// The reference: one daemon, all the mail, a SQLite file. Computed once for the binary.
fn reference() -> &'static Outputs {
    static REF: OnceLock<Outputs> = OnceLock::new();
    REF.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let md = tmp.path().join("Maildir");
        make_maildir(&md);
        for n in 0..MESSAGES {
            deliver(&md, &format!("m{n}.host"), message(n, MESSAGES).as_bytes());
        }
        let db = tmp.path().join("one.db");
        let db_s = db.to_str().expect("utf-8");
        let mut d = DaemonCmd::new(
            &["--maildir", md.to_str().expect("utf-8"), "--db", db_s],
            &tmp.path().join("one.log"),
        )
        .spawn();
        d.wait_until(Duration::from_secs(300), "every message recorded", || {
            common::recorded(&db) == MESSAGES as i64 && names(&md, "new").is_empty()
        });
        assert_eq!(d.stop(Duration::from_secs(30)), 0);
        let rows = common::read_db(&db, async |pool| {
            let v: Vec<(String,)> = sqlx::query_as(RECIPIENT_ROWS)
                .fetch_all(pool)
                .await
                .expect("recipients");
            v.into_iter().map(|(l,)| l).collect::<Vec<_>>().join("\n")
        })
        .expect("read the reference");
        (outputs(db_s), rows)
    })
}

/// Three Maildirs, message `n` in number `n % 3`, fed by threads in small steps so that the
/// daemons are mid-run when something is done to them.
struct Mail {
    dirs: Vec<PathBuf>,
    feeders: Vec<std::thread::JoinHandle<()>>,
}

impl Mail {
    fn start(root: &Path) -> Mail {
        let dirs: Vec<PathBuf> = (0..DAEMONS)
            .map(|k| {
                let d = root.join(format!("Maildir{k}"));
                make_maildir(&d);
                d
            })
            .collect();
        let feeders = dirs
            .iter()
            .enumerate()
            .map(|(k, d)| {
                let d = d.clone();
                std::thread::spawn(move || {
                    for n in (k..MESSAGES).step_by(DAEMONS) {
                        deliver(
                            &d,
                            &format!("m{n}.host{k}"),
                            message(n, MESSAGES).as_bytes(),
                        );
                        if n % 60 == k {
                            std::thread::sleep(Duration::from_millis(25));
                        }
                    }
                })
            })
            .collect();
        Mail { dirs, feeders }
    }

    fn finish(self) -> Vec<PathBuf> {
        for f in self.feeders {
            f.join().expect("feeder");
        }
        self.dirs
    }
}

fn daemon(root: &Path, md: &Path, url: &str, name: &str) -> Daemon {
    DaemonCmd::new(
        &["--maildir", md.to_str().expect("utf-8"), "--db", url],
        &root.join(format!("{name}.log")),
    )
    .spawn()
}

/// Panics with its log when a daemon has exited (they must ride out anything done to them).
fn all_running(daemons: &mut [Daemon]) {
    for d in daemons {
        assert!(d.running(), "a daemon exited; log:\n{}", d.log());
    }
}

fn count(client: &Client, db: &str, sql: &str) -> i64 {
    client
        .psql(db, sql)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1)
}

/// Waits for everything recorded and acknowledged, stops the daemons, and compares with the
/// reference.
fn settle_and_compare(
    mut daemons: Vec<Daemon>,
    dirs: &[PathBuf],
    client: &Client,
    db: &str,
    url: &str,
) {
    let start = Instant::now();
    while count(client, db, "select count(*) from messages") != MESSAGES as i64
        || dirs.iter().any(|d| !names(d, "new").is_empty())
    {
        all_running(&mut daemons);
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "not all recorded within 300 s: {} of {MESSAGES}; logs:\n{}",
            count(client, db, "select count(*) from messages"),
            daemons
                .iter()
                .map(Daemon::log)
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for d in &mut daemons {
        assert_eq!(d.stop(Duration::from_secs(30)), 0, "log:\n{}", d.log());
    }
    // Once each: no digest twice, one bounce per message, every file acknowledged once.
    assert_eq!(
        count(client, db, "select count(distinct sha256) from messages"),
        MESSAGES as i64
    );
    assert_eq!(
        count(client, db, "select count(*) from bounces"),
        MESSAGES as i64
    );
    let acked: usize = dirs.iter().map(|d| names(d, "cur").len()).sum();
    assert_eq!(acked, MESSAGES);

    let (want, want_rows) = reference();
    let rows = client.exec(db, RECIPIENT_ROWS);
    assert!(
        rows == *want_rows,
        "recipients differ from one daemon's:\n{}",
        first_difference(&rows, want_rows)
    );
    for ((what, got), (_, want)) in outputs(url).iter().zip(want) {
        assert!(
            got == want,
            "{what} differs from one daemon's:\n{}",
            first_difference(
                &String::from_utf8_lossy(got),
                &String::from_utf8_lossy(want)
            )
        );
    }
}

fn first_difference(got: &str, want: &str) -> String {
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        if g != w {
            return format!("line {}: got  {g}\n         want {w}", i + 1);
        }
    }
    format!(
        "{} lines, want {}",
        got.lines().count(),
        want.lines().count()
    )
}

#[test]
fn three_daemons_one_killed_and_restarted_record_everything_once() {
    let Some(db) =
        postgres::database("three_daemons_one_killed_and_restarted_record_everything_once")
    else {
        return;
    };
    reference();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mail = Mail::start(tmp.path());
    let mut daemons: Vec<Daemon> = mail
        .dirs
        .iter()
        .enumerate()
        .map(|(k, md)| daemon(tmp.path(), md, &db.url, &format!("d{k}")))
        .collect();
    let client = db.client().clone();
    let start = Instant::now();
    while count(&client, &db.name, "select count(*) from messages") < (MESSAGES / 4) as i64 {
        all_running(&mut daemons);
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "a quarter not recorded in 120 s; log:\n{}",
            daemons[0].log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    common::signal(&daemons[0].child, libc::SIGKILL);
    let _ = daemons[0].wait_exit(Duration::from_secs(10));
    let at_kill = count(&client, &db.name, "select count(*) from messages");
    assert!(at_kill < MESSAGES as i64, "the kill was not mid-run");
    daemons[0] = daemon(tmp.path(), &mail.dirs[0], &db.url, "d0-again");
    let dirs = mail.finish();
    settle_and_compare(daemons, &dirs, &client, &db.name, &db.url);
}

#[test]
fn the_database_restarted_mid_run_loses_nothing() {
    if !postgres::available("the_database_restarted_mid_run_loses_nothing") {
        return;
    }
    reference();
    // A cluster of its own: stopping the shared one would fail the other tests.
    let cluster = Cluster::start(Tuning::Fast).expect("start PostgreSQL");
    let db = cluster.create_database("restart");
    let tmp = tempfile::tempdir().expect("tempdir");
    // The first daemon creates the schema; the others find it.
    let mail = Mail::start(tmp.path());
    let mut daemons: Vec<Daemon> = mail
        .dirs
        .iter()
        .enumerate()
        .map(|(k, md)| daemon(tmp.path(), md, &db.url, &format!("d{k}")))
        .collect();
    let client = cluster.client();
    let start = Instant::now();
    while count(&client, &db.name, "select count(*) from messages") < (MESSAGES / 4) as i64 {
        all_running(&mut daemons);
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "a quarter not recorded in 120 s; log:\n{}",
            daemons[0].log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let at_restart = count(&client, &db.name, "select count(*) from messages");
    cluster.stop();
    std::thread::sleep(Duration::from_secs(2));
    cluster.start_again();
    assert!(at_restart < MESSAGES as i64, "the restart was not mid-run");
    let dirs = mail.finish();
    assert!(
        daemons
            .iter()
            .any(|d| d.count("cannot record a batch; retrying") > 0),
        "no daemon met the stopped server (nothing to prove)"
    );
    settle_and_compare(daemons, &dirs, &client, &db.name, &db.url);
    // And once more, as after a crash of the server: committed rows come back from the log.
    cluster.crash();
    cluster.start_again();
    assert_eq!(
        count(&client, &db.name, "select count(*) from messages"),
        MESSAGES as i64
    );
}
