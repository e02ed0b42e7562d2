//! `bounced import` on the real binary when a stage fails or an input is bad: a full disk and a
//! database locked by another connection stop it with exit 2 and the error (it never hangs); the
//! folder holding the database is imported without the database's own files; every input that
//! failed is named on stderr with its reason.

#![allow(unsafe_code)]

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs `bounced import ARGS` in `dir`, with a size limit on any file it writes when `fsize` is
/// given, killing it (and failing) after `limit`.
fn import(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    fsize: Option<u64>,
    limit: Duration,
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bounced"));
    cmd.current_dir(dir)
        .arg("import")
        .args(args)
        .env_remove("BOUNCED_CONFIG")
        .env_remove("BOUNCED_DB")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(bytes) = fsize {
        // SAFETY: between fork and exec only setrlimit, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: libc::RLIM_INFINITY,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("start bounced import");
    let start = Instant::now();
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "import still running after {limit:?}: it hangs\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A folder `mail/` with `n` distinct bounces.
fn mail(dir: &Path, n: usize) {
    let mail = dir.join("mail");
    fs::create_dir_all(&mail).expect("mkdir");
    for i in 0..n {
        fs::write(mail.join(format!("b{i:05}.eml")), bounce(i)).expect("write");
    }
}

#[test]
fn a_full_disk_stops_the_import_with_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    mail(dir.path(), 3000);
    let out = import(
        dir.path(),
        &["mail", "--db", "full.db", "--batch-size", "20"],
        &[],
        Some(256 * 1024),
        Duration::from_secs(120),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("disk is full") || err.contains("size limit"),
        "the error does not say the disk is full: {err}"
    );
    // What was committed is whole: every recorded message has its bounce.
    let db = dir.path().join("full.db");
    let n = db_int(&db, "select count(*) from messages");
    assert!(n < 3000, "the limit never bit");
    assert_eq!(db_int(&db, "select count(*) from bounces"), n);
    // Rerun without the limit: it picks up where it stopped, everything once.
    let out = import(
        dir.path(),
        &["mail", "--db", "full.db"],
        &[],
        None,
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(db_int(&db, "select count(*) from messages"), 3000);
    assert_eq!(
        db_int(&db, "select count(distinct recipient) from bounces"),
        3000
    );
}

#[test]
fn a_lock_held_by_another_connection_stops_the_import_with_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    mail(dir.path(), 50);
    let db = dir.path().join("locked.db");
    let conf = dir.path().join("c.toml");
    fs::write(&conf, "[store]\nbusy_timeout = \"1s\"\n").expect("config");
    let out = import(
        dir.path(),
        &["mail", "--db", "locked.db", "--config", "c.toml"],
        &[],
        None,
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    mail(dir.path(), 100);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    use sqlx::Connection;
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
    let mut conn = rt
        .block_on(sqlx::SqliteConnection::connect_with(&opts))
        .expect("connect");
    rt.block_on(sqlx::query("begin immediate").execute(&mut conn))
        .expect("lock");
    let started = Instant::now();
    let out = import(
        dir.path(),
        &["mail", "--db", "locked.db", "--config", "c.toml"],
        &[],
        None,
        Duration::from_secs(60),
    );
    let took = started.elapsed();
    rt.block_on(sqlx::query("rollback").execute(&mut conn))
        .expect("unlock");
    rt.block_on(conn.close()).expect("close");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("locked by another process"), "{err}");
    assert!(took < Duration::from_secs(40), "took {took:?}");
    assert_eq!(db_int(&db, "select count(*) from messages"), 50);
}

#[test]
fn the_folder_holding_the_database_is_imported_without_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    mail(dir.path(), 5);
    let folder = dir.path().join("mail");
    // The database lives among the messages, and a hard link gives it a second, innocent name.
    let out = import(
        dir.path(),
        &["mail", "--db", "mail/bounced.db"],
        &[],
        None,
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fs::hard_link(folder.join("bounced.db"), folder.join("zz-copy.eml")).expect("link");
    let out = import(
        dir.path(),
        &["mail", "--db", "mail/bounced.db", "--json"],
        &[],
        None,
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json summary");
    assert_eq!(summary["messages"], 5, "{summary}");
    assert_eq!(summary["new"], 0, "{summary}");
    let db = folder.join("bounced.db");
    assert_eq!(db_int(&db, "select count(*) from messages"), 5);
    assert_eq!(
        db_int(
            &db,
            "select count(*) from messages where source like '%bounced.db%' or source like '%zz-copy%'"
        ),
        0
    );
}

#[test]
fn each_failed_input_is_named_with_its_reason() {
    engines::each("each_failed_input_is_named_with_its_reason", |e| {
        each_failed_input_is_named_with_its_reason_on(&e)
    });
}

fn each_failed_input_is_named_with_its_reason_on(engine: &engines::Engine) {
    let db = engine.location.display().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    mail(dir.path(), 2);
    fs::write(
        dir.path().join("mail").join("huge.eml"),
        format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(4096)),
    )
    .expect("write");
    let out = import(
        dir.path(),
        &["mail", "missing.eml", "--db", &db],
        &[("BOUNCED_MAX_MESSAGE_SIZE", "2048")],
        None,
        Duration::from_secs(60),
    );
    let err = stderr(&out);
    // An input that could not be read at all makes the exit code 1.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("huge.eml") && l.contains("over the limit")),
        "the oversized message is not named with its reason:\n{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("missing.eml") && l.contains("No such file")),
        "the missing input is not named with its reason:\n{err}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("errors       1"), "{text}");
    assert!(text.contains("unreadable   1"), "{text}");
}
