//! Faults under the real `bounced run` binary, a real SQLite file and a real Maildir: a read-only
//! database (file and folder), a full disk (RLIMIT_FSIZE), a database locked by another process,
//! files vanishing between listing and reading, unreadable files and an unwritable `cur/`, and the
//! wall clock jumping back and forth (libfaketime).
//!
//! Each test ends with the exactly-once check: every message that still exists recorded once (one
//! row per distinct content) and acknowledged (moved to `cur/` with the S flag), nothing
//! acknowledged that was not recorded. As root, file modes are made to apply by dropping the DAC
//! capabilities of the daemon (see `DaemonCmd::drop_dac`).

#![allow(unsafe_code)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::dovecot;
use common::*;

/// A Maildir and a database in a fresh temp folder.
struct Setup {
    tmp: tempfile::TempDir,
    md: PathBuf,
    db: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().expect("tempdir");
        let md = tmp.path().join("Maildir");
        make_maildir(&md);
        let db = tmp.path().join("data").join("b.db");
        fs::create_dir_all(db.parent().expect("parent")).expect("data dir");
        Setup { tmp, md, db }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A configuration file: the database, one Maildir rescanned every second, `extra` appended
    /// to the `[store]` section.
    fn config(&self, store_extra: &str) -> PathBuf {
        let conf = self.path("bounced.toml");
        fs::write(
            &conf,
            format!(
                "[store]\npath = \"{}\"\n{store_extra}\n\n[daemon]\nshutdown_grace = \"10s\"\n\n\
                 [[maildir]]\npath = \"{}\"\nrescan_interval = \"1s\"\n",
                self.db.display(),
                self.md.display()
            ),
        )
        .expect("config");
        conf
    }

    fn deliver(&self, from: usize, to: usize) {
        for i in from..to {
            deliver(&self.md, &format!("m{i}.host"), bounce(i).as_bytes());
        }
    }

    /// Files in `cur/` acknowledged (S flag).
    fn acked(&self) -> usize {
        names(&self.md, "cur")
            .iter()
            .filter(|n| n.ends_with(":2,S"))
            .count()
    }

    /// Every message in the folder acknowledged, each recorded exactly once.
    fn assert_exactly_once(&self, n: usize) {
        assert!(
            names(&self.md, "new").is_empty(),
            "left in new/: {:?}",
            names(&self.md, "new")
        );
        assert_eq!(self.acked(), n, "acknowledged files in cur/");
        assert_eq!(names(&self.md, "cur").len(), n, "files in cur/");
        assert_eq!(recorded(&self.db), n as i64, "messages recorded");
        assert_eq!(
            db_int(&self.db, "select count(distinct sha256) from messages"),
            n as i64
        );
        assert_eq!(db_int(&self.db, "select count(*) from bounces"), n as i64);
    }
}

/// Creates the database (schema applied): one run of the daemon on the empty Maildir.
fn create_db(s: &Setup) {
    let conf = s.config("");
    let conf_s = conf.to_str().expect("utf-8");
    let mut d = DaemonCmd::new(&["--config", conf_s], &s.path("create.log")).spawn();
    d.wait_log("running", Duration::from_secs(20));
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    assert!(s.db.exists());
}

#[test]
fn read_only_database_file_and_folder() {
    let s = Setup::new();
    create_db(&s);
    s.deliver(0, 20);
    let conf = s.config("");
    let conf_s = conf.to_str().expect("utf-8");
    let args = ["--config", conf_s];

    // The file read-only: refused at start with a message naming it, nothing acknowledged.
    chmod(&s.db, 0o444);
    let mut d = DaemonCmd::new(&args, &s.path("ro-file.log"))
        .drop_dac()
        .spawn();
    let code = d.wait_exit(Duration::from_secs(20));
    let log = d.log();
    assert_eq!(code, 2, "exit code; log:\n{log}");
    assert!(log.contains("b.db is read-only"), "{log}");
    assert!(log.contains("writable"), "{log}");
    assert_eq!(names(&s.md, "new").len(), 20, "something was acknowledged");
    assert_eq!(recorded(&s.db), 0);

    // The folder read-only: the WAL files cannot be created beside the database. (The refused run
    // left them with the database's read-only mode; they are empty, nothing having been written
    // since the clean stop, so they go.)
    chmod(&s.db, 0o644);
    for suffix in ["-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", s.db.display()));
        if p.exists() {
            assert!(suffix == "-shm" || fs::metadata(&p).map(|m| m.len()).unwrap_or(0) == 0);
            fs::remove_file(&p).expect("remove a WAL file");
        }
    }
    let data = s.db.parent().expect("parent").to_path_buf();
    chmod(&data, 0o555);
    let mut d = DaemonCmd::new(&args, &s.path("ro-dir.log"))
        .drop_dac()
        .spawn();
    let code = d.wait_exit(Duration::from_secs(20));
    let log = d.log();
    chmod(&data, 0o755);
    assert_eq!(code, 2, "exit code; log:\n{log}");
    assert!(log.contains("b.db"), "{log}");
    assert!(log.contains("writable"), "{log}");
    assert_eq!(names(&s.md, "new").len(), 20, "something was acknowledged");
    assert_eq!(recorded(&s.db), 0);

    // Writable again: everything, once.
    let mut d = DaemonCmd::new(&args, &s.path("ok.log")).drop_dac().spawn();
    d.wait_until(Duration::from_secs(20), "20 acknowledged", || {
        s.acked() == 20
    });
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    s.assert_exactly_once(20);
}

#[test]
fn full_disk_fails_the_write_and_nothing_is_acknowledged_until_it_clears() {
    let s = Setup::new();
    s.deliver(0, 400);
    let conf = s.config("");
    let conf_s = conf.to_str().expect("utf-8");
    // Room for the schema and a few batches: the WAL soon reaches the limit.
    let mut d = DaemonCmd::new(&["--config", conf_s], &s.path("full.log"))
        .fsize(256 * 1024)
        .env("BOUNCED_BATCH_SIZE", "20")
        .spawn();
    d.wait_log("cannot record a batch", Duration::from_secs(30));
    // Let it retry a few times: it must stay up and acknowledge nothing it could not commit.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(d.running(), "the daemon died:\n{}", d.log());
    let during = recorded(&s.db);
    let acked = s.acked();
    assert!(during < 400, "the limit never bit");
    assert_eq!(acked as i64, during, "acknowledged vs recorded");
    assert_eq!(
        names(&s.md, "new").len() + names(&s.md, "cur").len(),
        400,
        "files lost"
    );
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("cannot record a batch"))
        .unwrap_or_default();
    assert!(
        line.contains("full") || line.contains("size limit"),
        "the error does not say the disk is full: {line}"
    );

    // The limit lifted (prlimit on the running daemon): it recovers by itself.
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit on our own child with a valid rlimit; the old value is not asked for.
    let r = unsafe {
        libc::prlimit(
            d.pid(),
            libc::RLIMIT_FSIZE,
            &lim,
            std::ptr::null_mut::<libc::rlimit>(),
        )
    };
    assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    d.wait_until(Duration::from_secs(30), "400 acknowledged", || {
        s.acked() == 400
    });
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    s.assert_exactly_once(400);
}

#[test]
fn database_locked_by_another_process_then_released() {
    let s = Setup::new();
    let conf = s.config("busy_timeout = \"1s\"");
    let conf_s = conf.to_str().expect("utf-8");
    let mut d = DaemonCmd::new(&["--config", conf_s], &s.path("locked.log")).spawn();
    d.wait_log("running", Duration::from_secs(20));
    s.deliver(0, 10);
    d.wait_until(Duration::from_secs(20), "10 acknowledged", || {
        s.acked() == 10
    });

    // This test process holds the write lock for 3 s while more mail arrives.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    use sqlx::Connection;
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&s.db);
    let mut conn = rt
        .block_on(sqlx::SqliteConnection::connect_with(&opts))
        .expect("connect");
    rt.block_on(sqlx::query("begin immediate").execute(&mut conn))
        .expect("lock");
    s.deliver(10, 60);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(recorded(&s.db), 10, "recorded through the lock");
    assert_eq!(s.acked(), 10, "acknowledged without a commit");
    rt.block_on(sqlx::query("rollback").execute(&mut conn))
        .expect("unlock");
    rt.block_on(conn.close()).expect("close");
    let log = d.log();
    assert!(
        log.contains("locked by another process"),
        "no lock error logged:\n{log}"
    );
    d.wait_until(Duration::from_secs(30), "60 acknowledged", || {
        s.acked() == 60
    });
    assert!(d.running());
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    s.assert_exactly_once(60);
}

#[test]
fn files_vanishing_or_moved_between_listing_and_reading() {
    let s = Setup::new();
    let n = 2000;
    s.deliver(0, n);
    let conf = s.config("");
    let conf_s = conf.to_str().expect("utf-8");
    // One worker and a deep queue: the whole listing is queued long before it is read.
    let mut d = DaemonCmd::new(&["--config", conf_s], &s.path("vanish.log"))
        .env("BOUNCED_LOG_LEVEL", "info,bounced::pipeline=debug")
        .env("BOUNCED_WORKERS", "1")
        .env("BOUNCED_QUEUE", "4096")
        .spawn();
    d.wait_until(Duration::from_secs(20), "the first commit", || {
        recorded(&s.db) > 0
    });
    // From the end of the listing order (read_dir order): deleted, or taken by another agent into
    // cur/ without the S flag (as a mail client or an IMAP server would).
    let order: Vec<String> = fs::read_dir(s.md.join("new"))
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut deleted = Vec::new();
    let mut moved = 0;
    for (k, name) in order.iter().rev().take(600).enumerate() {
        let from = s.md.join("new").join(name);
        if k % 2 == 0 {
            if fs::remove_file(&from).is_ok() {
                deleted.push(name.clone());
            }
        } else if fs::rename(&from, s.md.join("cur").join(format!("{name}:2,"))).is_ok() {
            moved += 1;
        }
    }
    assert!(
        deleted.len() > 100 && moved > 100,
        "the daemon was too quick"
    );
    let survivors = n - deleted.len();
    d.wait_until(
        Duration::from_secs(60),
        "every survivor acknowledged",
        || s.acked() == survivors,
    );
    assert!(d.running());
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    let log = d.log();
    assert!(
        log.contains("gone before it was read"),
        "no file vanished between listing and reading"
    );
    assert!(!log.contains("panicked"), "{log}");
    // Every survivor recorded once; a deleted file may have been read before it went.
    assert!(names(&s.md, "new").is_empty());
    assert_eq!(names(&s.md, "cur").len(), survivors);
    let rec = recorded(&s.db);
    assert!(
        rec >= survivors as i64 && rec <= n as i64,
        "recorded {rec}, survivors {survivors}"
    );
    assert_eq!(
        db_int(&s.db, "select count(distinct sha256) from messages"),
        rec
    );
    assert_eq!(db_int(&s.db, "select count(*) from bounces"), rec);
    let mut missing = Vec::new();
    for name in names(&s.md, "cur") {
        let base = name.split(":2,").next().unwrap_or("").to_owned();
        let i: usize = base
            .trim_start_matches('m')
            .trim_end_matches(".host")
            .parse()
            .expect("number");
        if !recorded_recipient(&s.db, i) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "acknowledged but not recorded: {missing:?}"
    );
}

/// Whether the bounce for `user<i>@example.com` is in the database.
fn recorded_recipient(db: &Path, i: usize) -> bool {
    read_db(db, async |pool| {
        sqlx::query_scalar::<_, i64>("select count(*) from recipients where address = ?")
            .bind(format!("user{i}@example.com"))
            .fetch_one(pool)
            .await
            .expect("query")
    })
    .expect("open")
        == 1
}

#[test]
fn unreadable_files_and_an_unwritable_cur_folder() {
    let s = Setup::new();
    s.deliver(0, 10);
    let locked: Vec<PathBuf> = (10..20)
        .map(|i| deliver(&s.md, &format!("m{i}.host"), bounce(i).as_bytes()))
        .collect();
    for p in &locked {
        chmod(p, 0o000);
    }
    let conf = s.config("");
    let conf_s = conf.to_str().expect("utf-8");
    let mut d = DaemonCmd::new(&["--config", conf_s], &s.path("perm.log"))
        .drop_dac()
        .spawn();
    d.wait_until(Duration::from_secs(20), "10 readable acknowledged", || {
        s.acked() == 10
    });
    // Three rescans: the unreadable ones are retried once per rescan, not in a loop.
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(recorded(&s.db), 10);
    assert_eq!(names(&s.md, "new").len(), 10);
    let denied = d.count("Permission denied");
    assert!(denied >= 10, "no permission error logged:\n{}", d.log());
    assert!(
        denied <= 60,
        "{denied} permission errors in 3 s: a busy loop"
    );

    // Readable again, but cur/ not writable: recorded, not acknowledged, never recorded twice.
    let cur = s.md.join("cur");
    chmod(&cur, 0o555);
    for p in &locked {
        chmod(p, 0o644);
    }
    d.wait_until(Duration::from_secs(20), "20 recorded", || {
        recorded(&s.db) == 20
    });
    d.wait_log("cannot move a recorded message", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(names(&s.md, "new").len(), 10, "moved into a read-only cur/");
    assert_eq!(recorded(&s.db), 20);
    chmod(&cur, 0o755);
    d.wait_until(Duration::from_secs(20), "20 acknowledged", || {
        s.acked() == 20
    });
    assert!(d.running());
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    s.assert_exactly_once(20);
}

/// libfaketime's multi-threaded build, from Debian's `faketime` package (`/usr/lib/<triplet>/`).
fn faketime_lib() -> Option<PathBuf> {
    fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .map(|e| e.path().join("faketime").join("libfaketimeMT.so.1"))
        .find(|p| p.exists())
}

/// Unix seconds now (the real clock).
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[test]
fn wall_clock_jumping_back_and_forth() {
    let lib = faketime_lib();
    if !tool_available(
        "wall_clock_jumping_back_and_forth",
        "libfaketime (Debian package faketime)",
        lib.is_some(),
    ) {
        return;
    }
    let lib = lib.unwrap_or_default();
    let s = Setup::new();
    let clock = s.path("faketime");
    fs::write(&clock, "+0\n").expect("clock");
    // With Dovecot here, the same daemon also reads an IMAP mailbox in IDLE, renewed every second.
    let dc = dovecot::available("wall_clock_jumping_back_and_forth (IMAP part)")
        .then(dovecot::Dovecot::start);
    let conf = s.config("busy_timeout = \"1s\"");
    if let Some(dc) = &dc {
        let pw = dc.path("imap-password");
        fs::write(&pw, format!("{}\n", dovecot::PASSWORD)).expect("password");
        let mut text = fs::read_to_string(&conf).expect("config");
        text.push_str(&format!(
            "\n[[imap]]\nname = \"t\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
             username = \"{}\"\npassword_file = \"{}\"\nidle_renew = \"1s\"\npoll_interval = \"1h\"\n\
             reconnect_initial = \"50ms\"\nreconnect_max = \"500ms\"\n",
            dc.port,
            dovecot::USER,
            pw.display()
        ));
        fs::write(&conf, text).expect("config");
    }
    let conf_s = conf.to_str().expect("utf-8");
    // Only the wall clock is faked: tokio's timers run on the monotonic clock, as on a machine
    // whose clock is stepped by NTP or by hand.
    let mut d = DaemonCmd::new(&["--config", conf_s], &s.path("clock.log"))
        .env("BOUNCED_LOG_LEVEL", "info,bounced::source::imap=debug")
        .env("LD_PRELOAD", lib.to_str().expect("utf-8"))
        .env("FAKETIME_TIMESTAMP_FILE", clock.to_str().expect("utf-8"))
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .spawn();
    d.wait_log("running", Duration::from_secs(20));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut probe = dc
        .as_ref()
        .map(|dc| rt.block_on(dovecot::Probe::connect(dc.port)));
    let imap_recorded = || {
        db_int(
            &s.db,
            "select count(*) from messages where source like 'imap:%'",
        )
    };

    let day = 86_400;
    // (offset written to the clock file, offset in seconds, messages delivered under it)
    let phases = [
        ("+0", 0, 0..10),
        ("-30d", -30 * day, 10..20),
        ("+400d", 400 * day, 20..30),
        ("+0", 0, 30..40),
    ];
    for (k, (spec, offset, range)) in phases.into_iter().enumerate() {
        fs::write(&clock, format!("{spec}\n")).expect("clock");
        let summaries = d.count("summary for the last");
        let renewals = d.count("IDLE renewed");
        let t0 = now_secs();
        if k == 1 {
            // Right after the backward jump the database is locked for 2.5 s: the writer's
            // backoff (a tokio sleep) must still wake up and record once the lock is gone.
            use sqlx::Connection;
            let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&s.db);
            let mut conn = rt
                .block_on(sqlx::SqliteConnection::connect_with(&opts))
                .expect("connect");
            rt.block_on(sqlx::query("begin immediate").execute(&mut conn))
                .expect("lock");
            s.deliver(range.start, range.end);
            std::thread::sleep(Duration::from_millis(2500));
            assert_eq!(s.acked(), range.start, "acknowledged through the lock");
            rt.block_on(sqlx::query("rollback").execute(&mut conn))
                .expect("unlock");
            rt.block_on(conn.close()).expect("close");
            assert!(d.count("locked by another process") > 0, "{}", d.log());
        } else {
            s.deliver(range.start, range.end);
        }
        if let Some(p) = probe.as_mut() {
            rt.block_on(p.append("INBOX", bounce(1000 + k).as_bytes()));
        }
        let want = range.end;
        d.wait_until(Duration::from_secs(20), "the phase's messages", || {
            s.acked() == want && (probe.is_none() || imap_recorded() == k as i64 + 1)
        });
        // The timers still fire: a summary every second of real time, IDLE renewed every second.
        let t = Instant::now();
        while d.count("summary for the last") < summaries + 2
            || (probe.is_some() && d.count("IDLE renewed") < renewals + 1)
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "a timer stopped after the jump to {spec}:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The recorded time follows the wall clock the daemon sees.
        let at = db_int_param(
            &s.db,
            "select max(recorded_at) from messages where source like ?",
            &format!("%/m{}.host", range.start),
        );
        let expect = t0 + offset;
        assert!(
            (at - expect).abs() < 60,
            "phase {spec}: recorded_at {at}, expected about {expect}"
        );
    }
    if let Some(p) = probe.take() {
        rt.block_on(p.close());
    }
    assert!(d.running());
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    let imap = if dc.is_some() { 4 } else { 0 };
    assert_eq!(imap_recorded(), imap);
    assert!(names(&s.md, "new").is_empty());
    assert_eq!(s.acked(), 40);
    assert_eq!(recorded(&s.db), 40 + imap);
    assert_eq!(
        db_int(&s.db, "select count(distinct sha256) from messages"),
        40 + imap
    );
    assert_eq!(db_int(&s.db, "select count(*) from bounces"), 40 + imap);
    let log = d.log();
    assert!(
        !log.contains(dovecot::PASSWORD),
        "the password is in the log"
    );
    assert!(!log.contains("panicked"), "{log}");
}

/// One integer from a query with one text parameter.
fn db_int_param(db: &Path, sql: &'static str, param: &str) -> i64 {
    read_db(db, async |pool| {
        sqlx::query_scalar::<_, Option<i64>>(sql)
            .bind(param)
            .fetch_one(pool)
            .await
            .expect("query")
    })
    .expect("open")
    .unwrap_or(0)
}

#[test]
fn every_quarantine_is_logged_at_warn_with_its_reason() {
    let s = Setup::new();
    s.deliver(0, 3);
    let big = format!("Subject: big\r\n\r\n{}\r\n", "z".repeat(4000));
    deliver(&s.md, "big.host", big.as_bytes());
    deliver(&s.md, "bigger.host", format!("{big}{big}").as_bytes());
    let conf = s.config("");
    let conf_s = conf.to_str().expect("utf-8");
    let mut d = DaemonCmd::new(&["--config", conf_s], &s.path("warn.log"))
        .env("BOUNCED_LOG_LEVEL", "warn")
        .env("BOUNCED_MAX_MESSAGE_SIZE", "2048")
        .spawn();
    d.wait_until(Duration::from_secs(20), "3 acknowledged", || s.acked() == 3);
    d.wait_until(Duration::from_secs(20), "2 quarantined", || {
        names(&s.md.join(".Quarantine"), "cur").len() == 2
    });
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    let log = d.log();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("quarantined"))
        .collect();
    assert!(
        warned
            .iter()
            .any(|l| l.contains("big.host") && l.contains("over the limit")),
        "the oversized message's quarantine is not logged with its reason:\n{log}"
    );
    assert_eq!(
        warned.len(),
        2,
        "one warning per quarantined message:\n{log}"
    );
}
