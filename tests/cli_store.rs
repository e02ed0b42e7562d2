//! The database subcommands end to end: the real binary on a real SQLite file in a temp dir.

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

fn bounced(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bounced"))
        .args(args)
        .current_dir(dir)
        .env_remove("BOUNCED_DB")
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
    let dir = tempfile::tempdir().unwrap();
    inputs(dir.path());
    let first = bounced(dir.path(), &["import", "in", "--json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let s = json(&first);
    assert_eq!(s["messages"], 6, "{s}");
    assert_eq!(s["new"], 6, "{s}");
    assert_eq!(s["duplicates"], 0, "{s}");
    assert_eq!(s["errors"], 1, "the empty file: {s}");
    assert!(dir.path().join("bounced.db").exists());

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
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lists.db");
    let db = db.to_str().unwrap();
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
}

#[test]
fn query_bounces_and_stats_in_every_format() {
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
        stdout(&csv)
            .starts_with("at,recipient,type,reason,status,replycode,rule,source,diagnostic\n"),
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
        stderr(&out).contains("no bounce database at bounced.db"),
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
        eprintln!("skipped: this user can write any file and `chattr +i` is not available");
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
        assert!(
            err.contains("database bounced.db is read-only: make the file and its folder writable"),
            "{args:?}: {err}"
        );
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
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one.eml"), dsn(1)).unwrap();
    for round in 0..10 {
        let db = format!("race-{round}.db");
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
            assert!(out.status.success(), "round {round}: {}", stderr(&out));
        }
        let stats = bounced(dir.path(), &["stats", "--db", &db, "--format", "jsonl"]);
        let s = json(&stats);
        assert_eq!(s["messages"], 1, "round {round}: {s}");
        assert_eq!(s["recipients"], 4, "round {round}: {s}");
    }
}
