//! What can sit in a Maildir besides mail, through the real binary: symbolic links (to a secret
//! file, to a folder), FIFOs, names that are not UTF-8 or hold a newline, a file still being written
//! straight into `new/`, and Maildir++ sub-folders met by `import`.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// A configuration for `bounced run` on one Maildir, rescanned every second.
fn config(dir: &Path, md: &Path, db: &Path) -> PathBuf {
    let conf = dir.join("bounced.toml");
    fs::write(
        &conf,
        format!(
            "[store]\npath = \"{}\"\n\n[daemon]\nshutdown_grace = \"5s\"\n\n[[maildir]]\npath = \"{}\"\nrescan_interval = \"1s\"\n",
            db.display(),
            md.display()
        ),
    )
    .expect("config");
    conf
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    #[allow(unsafe_code)]
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(r, 0, "mkfifo {}", path.display());
}

/// The stored sources, sorted.
fn sources(db: &Path) -> Vec<String> {
    let mut v = read_db(db, async |pool| {
        sqlx::query_scalar::<_, String>("select source from messages")
            .fetch_all(pool)
            .await
            .unwrap_or_default()
    })
    .unwrap_or_default();
    v.sort();
    v
}

fn bounces_for(db: &Path, recipient: &str) -> i64 {
    let recipient = recipient.to_owned();
    read_db(db, async move |pool| {
        sqlx::query_scalar::<_, i64>("select count(*) from bounces where recipient = ?")
            .bind(recipient)
            .fetch_one(pool)
            .await
            .unwrap_or(-1)
    })
    .unwrap_or(-1)
}

#[test]
fn symbolic_links_in_new_are_never_followed_and_named_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("md");
    make_maildir(&md);
    // What a link points at: readable by the daemon, and a valid bounce, so reading it would show.
    let secret = dir.path().join("shadow");
    fs::write(&secret, bounce(7)).expect("secret");
    let folder = dir.path().join("folder");
    fs::create_dir(&folder).expect("folder");
    std::os::unix::fs::symlink(&secret, md.join("new").join("to-secret")).expect("link");
    std::os::unix::fs::symlink(&folder, md.join("new").join("to-folder")).expect("link");
    deliver(&md, "1.one.host", bounce(1).as_bytes());
    let db = dir.path().join("b.db");
    let conf = config(dir.path(), &md, &db);
    let mut d = DaemonCmd::new(
        &["--config", &conf.display().to_string()],
        &dir.path().join("log"),
    )
    .spawn();
    d.wait_until(Duration::from_secs(20), "the message recorded", || {
        recorded(&db) == 1
    });
    // A link renamed into new/ while the daemon watches: announced by inotify, refused at open.
    std::os::unix::fs::symlink(&secret, md.join("tmp").join("late")).expect("link");
    fs::rename(md.join("tmp").join("late"), md.join("new").join("late")).expect("rename");
    d.wait_log("late", Duration::from_secs(10));
    // Several rescans later each is still named once.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    let log = d.log();
    assert_eq!(recorded(&db), 1, "{:?}", sources(&db));
    assert_eq!(
        bounces_for(&db, "user7@example.com"),
        0,
        "the link was followed"
    );
    for name in ["to-secret", "to-folder", "late"] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(name)).collect();
        assert_eq!(lines.len(), 1, "{name} named {} times:\n{log}", lines.len());
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
        assert!(lines[0].contains("symbolic link"), "{}", lines[0]);
        assert!(
            fs::symlink_metadata(md.join("new").join(name)).is_ok(),
            "{name} was moved"
        );
    }
}

#[test]
fn fifos_in_new_do_not_stall_the_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("md");
    make_maildir(&md);
    mkfifo(&md.join("new").join("fifo-a"));
    mkfifo(&md.join("new").join("fifo-b"));
    let db = dir.path().join("b.db");
    let conf = config(dir.path(), &md, &db);
    let mut d = DaemonCmd::new(
        &["--config", &conf.display().to_string()],
        &dir.path().join("log"),
    )
    .spawn();
    d.wait_log("watching", Duration::from_secs(10));
    // One more, renamed in while the daemon watches.
    mkfifo(&md.join("tmp").join("fifo-c"));
    fs::rename(md.join("tmp").join("fifo-c"), md.join("new").join("fifo-c")).expect("rename");
    for i in 0..100 {
        deliver(&md, &format!("{i}.fifo.host"), bounce(i).as_bytes());
    }
    d.wait_until(Duration::from_secs(20), "100 messages recorded", || {
        recorded(&db) == 100
    });
    std::thread::sleep(Duration::from_millis(2500));
    let start = std::time::Instant::now();
    assert_eq!(d.stop(Duration::from_secs(10)), 0, "{}", d.log());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the drain overran"
    );
    let log = d.log();
    for name in ["fifo-a", "fifo-b", "fifo-c"] {
        let n = log.lines().filter(|l| l.contains(name)).count();
        assert_eq!(n, 1, "{name} named {n} times:\n{log}");
    }
    assert!(log.contains("a FIFO"), "{log}");
}

#[test]
fn names_that_are_not_utf8_or_hold_a_newline_are_recorded_and_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("md");
    make_maildir(&md);
    let odd: [&[u8]; 2] = [b"1.\xff\xfe.host", b"2.line\nbreak.host"];
    for (i, name) in odd.iter().enumerate() {
        let name = OsStr::from_bytes(name);
        fs::write(md.join("tmp").join(name), bounce(20 + i)).expect("write");
        fs::rename(md.join("tmp").join(name), md.join("new").join(name)).expect("rename");
    }
    let db = dir.path().join("b.db");
    let conf = config(dir.path(), &md, &db);
    let mut d = DaemonCmd::new(
        &["--config", &conf.display().to_string()],
        &dir.path().join("log"),
    )
    .env("BOUNCED_LOG_LEVEL", "debug")
    .spawn();
    d.wait_until(Duration::from_secs(20), "both recorded", || {
        recorded(&db) == 2
    });
    d.wait_until(Duration::from_secs(10), "both acknowledged", || {
        fs::read_dir(md.join("new")).map(|r| r.count()).unwrap_or(1) == 0
    });
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    let mut cur: Vec<Vec<u8>> = fs::read_dir(md.join("cur"))
        .expect("cur")
        .flatten()
        .map(|e| e.file_name().as_bytes().to_vec())
        .collect();
    cur.sort();
    assert_eq!(
        cur,
        vec![
            b"1.\xff\xfe.host:2,S".to_vec(),
            b"2.line\nbreak.host:2,S".to_vec()
        ]
    );
    let src = sources(&db);
    assert!(src[0].ends_with("/new/1.\\xff\\xfe.host"), "{src:?}");
    assert!(src[1].ends_with("/new/2.line\\nbreak.host"), "{src:?}");
    assert_eq!(bounces_for(&db, "user20@example.com"), 1);
    assert_eq!(bounces_for(&db, "user21@example.com"), 1);
    // Every human log line starts with its timestamp: no name split one.
    let log = d.log();
    for line in log.lines() {
        assert!(
            line.starts_with("20") && line.len() > 20,
            "a split log line: {line:?}\n{log}"
        );
    }
    assert!(log.contains("2.line\\nbreak.host"), "{log}");
}

#[test]
fn a_file_written_straight_into_new_is_read_once_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("md");
    make_maildir(&md);
    let db = dir.path().join("b.db");
    let conf = config(dir.path(), &md, &db);
    let mut d = DaemonCmd::new(
        &["--config", &conf.display().to_string()],
        &dir.path().join("log"),
    )
    .spawn();
    d.wait_log("watching", Duration::from_secs(10));
    let text = bounce(42);
    let (head, tail) = text.split_at(text.find("Final-Recipient").expect("dsn"));
    let path = md.join("new").join("1.direct.host");
    let mut f = fs::File::create(&path).expect("create");
    f.write_all(head.as_bytes()).expect("write");
    f.flush().expect("flush");
    // Slow writing across three rescans (one a second).
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(150));
        f.write_all(format!("X-Slow-{i}: still writing\r\n").as_bytes())
            .expect("write");
        f.flush().expect("flush");
    }
    // The DSN's header lines above went into the delivery-status part; the rest completes it.
    f.write_all(tail.as_bytes()).expect("write");
    drop(f);
    d.wait_until(Duration::from_secs(15), "the message recorded", || {
        recorded(&db) >= 1
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    assert_eq!(recorded(&db), 1, "{:?}", sources(&db));
    assert_eq!(
        bounces_for(&db, "user42@example.com"),
        1,
        "read before it was complete:\n{}",
        d.log()
    );
    let size = db_int(&db, "select raw_size from messages");
    assert_eq!(
        size,
        i64::try_from(
            fs::metadata(md.join("cur").join("1.direct.host:2,S"))
                .expect("cur")
                .len()
        )
        .expect("size")
    );
}

fn import(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bounced"))
        .arg("import")
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("BOUNCED_CONFIG")
        .output()
        .expect("run bounced");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn import_names_links_fifos_and_maildir_subfolders_and_reads_subfolders_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("md");
    make_maildir(&md);
    deliver(&md, "1.top.host", bounce(1).as_bytes());
    let secret = dir.path().join("shadow");
    fs::write(&secret, bounce(7)).expect("secret");
    std::os::unix::fs::symlink(&secret, md.join("new").join("to-secret")).expect("link");
    mkfifo(&md.join("cur").join("fifo"));
    let sub = md.join(".Archive");
    make_maildir(&sub);
    deliver(&sub, "2.sub.host", bounce(2).as_bytes());
    let db = dir.path().join("b.db");
    let (db_s, md_s) = (db.display().to_string(), md.display().to_string());

    let (code, out, err) = import(&[&md_s, "--db", &db_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(recorded(&db), 1, "{err}");
    assert_eq!(
        bounces_for(&db, "user7@example.com"),
        0,
        "the link was followed"
    );
    assert!(
        err.contains("to-secret") && err.contains("symbolic link"),
        "{err}"
    );
    assert!(err.contains("fifo") && err.contains("a FIFO"), "{err}");
    assert!(
        err.contains(".Archive") && err.contains("--recursive-maildir"),
        "{err}"
    );

    let (code, out, err) = import(&[&md_s, "--db", &db_s, "--recursive-maildir"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(recorded(&db), 2, "{err}");
    assert_eq!(bounces_for(&db, "user2@example.com"), 1);
    assert!(!err.contains("--recursive-maildir"), "{err}");
}
