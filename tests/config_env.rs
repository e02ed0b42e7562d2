//! The configuration is loaded one way for every command: the file (or the defaults), then the
//! `BOUNCED_...` variables. One test per command family, on the real binary: `BOUNCED_DB` names the
//! database, and a bad `BOUNCED_BATCH_SIZE` is refused with the variable named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bounced(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bounced"));
    c.current_dir(dir)
        .args(args)
        .env_remove("BOUNCED_CONFIG")
        .env_remove("BOUNCED_DB")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap_or_else(|e| panic!("{e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A folder with one hard bounce for `gone@example.org`, and the path of a database named only by
/// `BOUNCED_DB`.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mail = dir.path().join("mail");
    std::fs::create_dir(&mail).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        mail.join("b.eml"),
        "From: MAILER-DAEMON@mx.example.net\r\nTo: list@example.com\r\nSubject: Undelivered\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n\
         --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
         Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--b--\r\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("named-by-env.db");
    (dir, db)
}

fn env_db(db: &Path) -> (&'static str, &str) {
    ("BOUNCED_DB", db.to_str().unwrap_or_else(|| panic!("utf-8")))
}

#[test]
fn import_takes_the_database_and_settings_from_the_environment() {
    let (dir, db) = setup();
    let out = bounced(dir.path(), &[env_db(&db)], &["import", "mail"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(db.exists(), "BOUNCED_DB was not used");
    assert!(
        !dir.path().join("bounced.db").exists(),
        "the default was used"
    );
    let out = bounced(
        dir.path(),
        &[env_db(&db), ("BOUNCED_BATCH_SIZE", "several")],
        &["import", "mail"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("BOUNCED_BATCH_SIZE"), "{}", text(&out));
}

#[test]
fn queries_and_exports_read_the_database_of_the_environment() {
    let (dir, db) = setup();
    let out = bounced(dir.path(), &[env_db(&db)], &["import", "mail"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for args in [
        &["query", "recipient", "gone@example.org"][..],
        &["export", "--format", "txt"][..],
        &["stats"][..],
    ] {
        let out = bounced(dir.path(), &[env_db(&db)], args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        if args[0] != "stats" {
            assert!(
                text(&out).contains("gone@example.org"),
                "{args:?}: {}",
                text(&out)
            );
        }
        let out = bounced(
            dir.path(),
            &[env_db(&db), ("BOUNCED_BATCH_SIZE", "lots")],
            args,
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("BOUNCED_BATCH_SIZE"), "{}", text(&out));
    }
    // Without the variable, the default database (absent here) is the one read.
    let out = bounced(dir.path(), &[], &["stats"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("bounced.db"), "{}", text(&out));
}

#[test]
fn manual_decisions_write_the_database_of_the_environment() {
    let (dir, db) = setup();
    let out = bounced(
        dir.path(),
        &[env_db(&db)],
        &["suppress", "hand@example.org", "--reason", "asked"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(db.exists(), "BOUNCED_DB was not used");
    let out = bounced(
        dir.path(),
        &[env_db(&db)],
        &["unsuppress", "hand@example.org"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = bounced(
        dir.path(),
        &[env_db(&db), ("BOUNCED_WORKERS", "many")],
        &["suppress", "other@example.org"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("BOUNCED_WORKERS"), "{}", text(&out));
    assert!(
        !dir.path().join("bounced.db").exists(),
        "the default was used"
    );
}

#[test]
fn the_daemon_family_reads_the_environment() {
    let (dir, db) = setup();
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.path().join("md").join(sub)).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(dir.path().join("c.toml"), "[[maildir]]\npath = \"md\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = bounced(
        dir.path(),
        &[env_db(&db)],
        &["check-config", "--config", "c.toml"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("named-by-env.db"), "{}", text(&out));
    let out = bounced(
        dir.path(),
        &[env_db(&db), ("BOUNCED_BATCH_SIZE", "0")],
        &["check-config", "--config", "c.toml"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("batch_size"), "{}", text(&out));
    let out = bounced(
        dir.path(),
        &[env_db(&db), ("BOUNCED_QUEUE", "none")],
        &["run", "--maildir", "md"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("BOUNCED_QUEUE"), "{}", text(&out));
}
