//! Helpers shared by the daemon tests: our own bounce messages, Maildir delivery, database checks,
//! and the `bounced` binary as a child process.

#![allow(dead_code)]

pub mod dovecot;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A DSN for `user<n>@example.com`, distinct for every `n` (its own Message-ID and recipient).
pub fn bounce(n: usize) -> String {
    format!(
        "Return-Path: <>\r\n\
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n\
To: list-bounces@example.org\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <bounce-{n}@mx.example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"bnd{n}\"\r\n\
\r\n\
--bnd{n}\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
Your message to user{n}@example.com could not be delivered.\r\n\
\r\n\
--bnd{n}\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.net\r\n\
\r\n\
Final-Recipient: rfc822; user{n}@example.com\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <user{n}@example.com>: Recipient address rejected: User unknown\r\n\
\r\n\
--bnd{n}--\r\n"
    )
}

/// Creates `new/`, `cur/` and `tmp/` under `dir`.
pub fn make_maildir(dir: &Path) {
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(dir.join(sub)).expect("create maildir");
    }
}

/// Delivers the Maildir way: write into `tmp/`, then rename into `new/`.
pub fn deliver(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let tmp = dir.join("tmp").join(name);
    fs::write(&tmp, body).expect("write tmp");
    let new = dir.join("new").join(name);
    fs::rename(&tmp, &new).expect("rename into new");
    new
}

/// File names in `dir/sub`.
pub fn names(dir: &Path, sub: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join(sub))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs one query returning a single integer against the database file (read-only).
pub fn db_int(db: &Path, sql: &'static str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if !db.exists() {
            return 0;
        }
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db)
            .read_only(true)
            .busy_timeout(Duration::from_secs(5));
        let Ok(pool) = sqlx::SqlitePool::connect_with(opts).await else {
            return 0;
        };
        let v: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap_or(0);
        pool.close().await;
        v
    })
}

/// Messages recorded in the database.
pub fn recorded(db: &Path) -> i64 {
    db_int(db, "select count(*) from messages")
}

/// Waits until `check` holds, or panics after `limit` with `what`.
pub fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `bounced run` with `args`; logs go to `log`.
pub fn spawn_daemon(args: &[&str], log: &Path) -> Child {
    let log = fs::File::create(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_bounced"))
        .arg("run")
        .args(args)
        .env("BOUNCED_LOG_LEVEL", "info")
        .env("BOUNCED_SUMMARY_INTERVAL", "1s")
        .env_remove("BOUNCED_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start bounced")
}

/// Sends `sig` to the child.
pub fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) with a pid we spawned and still own (not yet waited for).
    unsafe {
        libc::kill(pid, sig);
    }
}

/// SIGTERM, then waits for the exit code (panics after `limit`).
pub fn stop(child: &mut Child, limit: Duration) -> i32 {
    signal(child, libc::SIGTERM);
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("daemon did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
