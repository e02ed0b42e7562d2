//! Helpers shared by the daemon tests: our own bounce messages, Maildir delivery, database checks,
//! and the `bounced` binary as a child process.

#![allow(dead_code, unsafe_code)]

pub mod dovecot;
pub mod engines;
pub mod overlap;
pub mod postgres;

pub use postgres::cert::self_signed_cert;

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

/// Runs `query` on a read-only pool for the database file, in a runtime of its own; `None` when the
/// file is missing or cannot be opened.
pub fn read_db<T>(db: &Path, query: impl AsyncFnOnce(&sqlx::SqlitePool) -> T) -> Option<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if !db.exists() {
            return None;
        }
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db)
            .read_only(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = sqlx::SqlitePool::connect_with(opts).await.ok()?;
        let v = query(&pool).await;
        pool.close().await;
        Some(v)
    })
}

/// Runs one query returning a single integer against the database file (read-only); 0 when the
/// database or the row is not there yet.
pub fn db_int(db: &Path, sql: &'static str) -> i64 {
    if let Some(url) = db.to_str().filter(|u| u.starts_with("postgres://")) {
        return pg_int(url, sql);
    }
    read_db(db, async |pool| {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(pool)
            .await
            .unwrap_or(0)
    })
    .unwrap_or(0)
}

/// The rows of `sql` (text columns only) on the database at `db`, a SQLite file or a PostgreSQL
/// URL; empty when the database cannot be read yet.
pub fn db_rows(db: &Path, sql: &'static str) -> Vec<Vec<String>> {
    if let Some(url) = db.to_str().filter(|u| u.starts_with("postgres://")) {
        let Some(bin) = postgres::bin_dir() else {
            return Vec::new();
        };
        return Command::new(bin.join("psql"))
            .args([
                "-X", "-w", "-q", "-A", "-t", "-F", "\x1f", "-d", url, "-c", sql,
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| l.split('\x1f').map(str::to_owned).collect())
                    .collect()
            })
            .unwrap_or_default();
    }
    read_db(db, async |pool| {
        use sqlx::Row;
        sqlx::query(sql)
            .fetch_all(pool)
            .await
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.try_get::<String, _>(i).unwrap_or_default())
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default()
    })
    .unwrap_or_default()
}

/// One integer from `sql` on the PostgreSQL database at `url`, through `psql`; 0 when it cannot
/// be read.
fn pg_int(url: &str, sql: &str) -> i64 {
    let Some(bin) = postgres::bin_dir() else {
        return 0;
    };
    Command::new(bin.join("psql"))
        .args(["-X", "-w", "-q", "-A", "-t", "-d", url, "-c", sql])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
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

/// Whether a tool the fault tests need is here; panics when it is missing but required
/// (`BOUNCED_REQUIRE_DOVECOT=1` or `BOUNCED_REQUIRE_TOOLS=1`, as CI sets them).
pub fn tool_available(test: &str, what: &str, found: bool) -> bool {
    if !found {
        let required = ["BOUNCED_REQUIRE_DOVECOT", "BOUNCED_REQUIRE_TOOLS"]
            .iter()
            .any(|v| std::env::var(v).as_deref() == Ok("1"));
        assert!(
            !required,
            "{test}: {what} is missing and required here (run ci/install-deps.sh)"
        );
        skipped(
            test,
            &format!("{what} is missing (ci/install-deps.sh installs it)"),
        );
    }
    found
}

/// Says on the real standard error that `test` did not run, and why.
///
/// The test harness captures `eprintln!`, so a skip would otherwise show as a plain `ok` unless
/// `--nocapture` is given; writing to the stream itself puts the line in every `cargo test` output.
pub fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Whether this process runs as root (file modes alone then stop nobody: see [`Daemon::drop_dac`]).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Sets `mode` on `path`.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// How to start `bounced run` as a child whose stderr is read line by line, each line timestamped
/// on arrival (stderr is a pipe, so a file size limit on the child never applies to its log).
pub struct DaemonCmd {
    cmd: Command,
    log: PathBuf,
    drop_dac: bool,
    fsize: Option<u64>,
}

/// A running `bounced run`.
pub struct Daemon {
    pub child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<(Instant, String)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl DaemonCmd {
    /// `bounced run ARGS`, logging at `info` (a summary every second) into `log` as well.
    pub fn new(args: &[&str], log: &Path) -> DaemonCmd {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bounced"));
        cmd.arg("run")
            .args(args)
            .env("BOUNCED_LOG_LEVEL", "info")
            .env("BOUNCED_SUMMARY_INTERVAL", "1s")
            .env_remove("BOUNCED_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        DaemonCmd {
            cmd,
            log: log.to_path_buf(),
            drop_dac: false,
            fsize: None,
        }
    }

    /// Sets an environment variable of the child.
    pub fn env(mut self, k: &str, v: &str) -> DaemonCmd {
        self.cmd.env(k, v);
        self
    }

    /// Removes an environment variable of the child.
    pub fn env_remove(mut self, k: &str) -> DaemonCmd {
        self.cmd.env_remove(k);
        self
    }

    /// Runs the child in `dir`.
    pub fn current_dir(mut self, dir: &Path) -> DaemonCmd {
        self.cmd.current_dir(dir);
        self
    }

    /// Makes file modes apply to the child even as root: CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
    /// leave its bounding set (so exec cannot give them back) and the ambient set is cleared.
    pub fn drop_dac(mut self) -> DaemonCmd {
        self.drop_dac = true;
        self
    }

    /// Limits the size of any file the child writes (RLIMIT_FSIZE, soft limit only, so that the test
    /// can raise it again with prlimit).
    pub fn fsize(mut self, bytes: u64) -> DaemonCmd {
        self.fsize = Some(bytes);
        self
    }

    /// Starts the daemon.
    pub fn spawn(mut self) -> Daemon {
        use std::os::unix::process::CommandExt;
        let (drop_dac, fsize) = (self.drop_dac && is_root(), self.fsize);
        // SAFETY: between fork and exec only async-signal-safe calls (prctl, setrlimit).
        unsafe {
            self.cmd.pre_exec(move || {
                if drop_dac {
                    const CAP_DAC_OVERRIDE: libc::c_ulong = 1;
                    const CAP_DAC_READ_SEARCH: libc::c_ulong = 2;
                    for cap in [CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH] {
                        if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_CLEAR_ALL,
                        0,
                        0,
                        0,
                    );
                }
                if let Some(max) = fsize {
                    let lim = libc::rlimit {
                        rlim_cur: max,
                        rlim_max: libc::RLIM_INFINITY,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = self.cmd.spawn().expect("start bounced");
        let stderr = child.stderr.take().expect("stderr pipe");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let log_path = self.log.clone();
        let reader = std::thread::spawn(move || {
            use std::io::{BufRead, Write};
            let mut file = fs::File::create(&log_path).ok();
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if let Ok(mut v) = sink.lock() {
                    v.push((Instant::now(), line));
                }
            }
        });
        Daemon {
            child,
            lines,
            reader: Some(reader),
        }
    }
}

impl Daemon {
    /// The process id.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    /// Every stderr line so far, with the moment it was read.
    pub fn lines(&self) -> Vec<(Instant, String)> {
        self.lines.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The stderr so far as one string.
    pub fn log(&self) -> String {
        self.lines()
            .into_iter()
            .map(|(_, l)| l)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Lines containing `needle` so far.
    pub fn count(&self, needle: &str) -> usize {
        self.lines()
            .iter()
            .filter(|(_, l)| l.contains(needle))
            .count()
    }

    /// Waits until stderr holds `needle` (panics with the log after `limit`).
    pub fn wait_log(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while self.count(needle) == 0 {
            assert!(
                start.elapsed() < limit,
                "no `{needle}` within {limit:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `check` holds; panics after `limit` with `what` and the daemon's log.
    pub fn wait_until(&self, limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
        let start = Instant::now();
        while !check() {
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stderr holds `needle` on at least `n` lines.
    pub fn wait_log_count(&self, needle: &str, n: usize, limit: Duration) {
        let start = Instant::now();
        while self.count(needle) < n {
            assert!(
                start.elapsed() < limit,
                "fewer than {n} `{needle}` within {limit:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// Waits for it to exit by itself; returns the exit code (panics after `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return status.code().unwrap_or(-1);
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("daemon did not exit within {limit:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then the exit code.
    pub fn stop(&mut self, limit: Duration) -> i32 {
        signal(&self.child, libc::SIGTERM);
        self.wait_exit(limit)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
