//! What the HTTP tests share: our own bounce messages (dated relative to today), a database filled
//! by the real `bounced import`, and the real `bounced serve` as a child process on a free port.

#![allow(dead_code, unsafe_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Duration as Days, Utc};

/// The token file's secret of the `ops` token.
pub const TOKEN: &str = "ops-0123456789abcdef0123456789abcdef";
/// A second token, named `lists`.
pub const LIST_TOKEN: &str = "lists-fedcba9876543210fedcba98765432";

/// A diagnostic written by a stranger, to prove it is escaped everywhere.
pub const HOSTILE: &str = "550 5.1.1 <script>alert('owned')</script> user unknown";

fn date(days_ago: i64) -> String {
    (Utc::now() - Days::days(days_ago)).to_rfc2822()
}

/// A DSN for one recipient: `action` failed/delivered, `status` such as 5.1.1, sent `days_ago`.
pub fn dsn(n: usize, rcpt: &str, action: &str, status: &str, diag: &str, days_ago: i64) -> String {
    format!(
        "Return-Path: <>\r\n\
From: Mail Delivery System <MAILER-DAEMON@mx{n}.example.net>\r\n\
To: news-bounces@lists.example.org\r\n\
Subject: Delivery Status Notification\r\n\
Date: {date}\r\n\
Message-ID: <dsn-{n}@mx{n}.example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b{n}\"\r\n\
\r\n\
--b{n}\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
This is the mail system at mx{n}.example.net, reporting on your message to {rcpt}.\r\n\
\r\n\
--b{n}\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx{n}.example.net\r\n\
\r\n\
Final-Recipient: rfc822; {rcpt}\r\n\
Action: {action}\r\n\
Status: {status}\r\n\
Diagnostic-Code: smtp; {diag}\r\n\
\r\n\
--b{n}--\r\n",
        date = date(days_ago)
    )
}

/// An ARF complaint about a message to `rcpt`.
pub fn complaint(n: usize, rcpt: &str, days_ago: i64) -> String {
    format!(
        "Return-Path: <fbl@isp.example.net>\r\n\
From: Complaints <fbl@isp.example.net>\r\n\
To: abuse@lists.example.org\r\n\
Subject: Complaint about a message\r\n\
Date: {date}\r\n\
Message-ID: <arf-{n}@isp.example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"a{n}\"\r\n\
\r\n\
--a{n}\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
A subscriber marked a message from your list as spam.\r\n\
\r\n\
--a{n}\r\n\
Content-Type: message/feedback-report\r\n\
\r\n\
Feedback-Type: abuse\r\n\
User-Agent: IspFeedback/1.0\r\n\
Version: 1\r\n\
Original-Rcpt-To: <{rcpt}>\r\n\
\r\n\
--a{n}\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: News <news@lists.example.org>\r\n\
To: {rcpt}\r\n\
Subject: Our news\r\n\
Message-ID: <news-{n}@lists.example.org>\r\n\
\r\n\
Hello.\r\n\
\r\n\
--a{n}--\r\n",
        date = date(days_ago)
    )
}

/// The messages of the test database: file name and content.
pub fn fixtures() -> Vec<(String, String)> {
    vec![
        (
            "01-alice-hard.eml".into(),
            dsn(1, "alice@example.com", "failed", "5.1.1", HOSTILE, 2),
        ),
        (
            "02-bob-full-1.eml".into(),
            dsn(
                2,
                "bob@example.net",
                "failed",
                "4.2.2",
                "452 4.2.2 mailbox full",
                3,
            ),
        ),
        (
            "03-bob-full-2.eml".into(),
            dsn(
                3,
                "bob@example.net",
                "failed",
                "4.2.2",
                "452 4.2.2 mailbox full",
                1,
            ),
        ),
        (
            "04-carol-complaint.eml".into(),
            complaint(4, "carol@example.org", 1),
        ),
        (
            "05-dave-delivered.eml".into(),
            dsn(
                5,
                "dave@example.net",
                "delivered",
                "2.0.0",
                "250 2.0.0 ok",
                1,
            ),
        ),
        (
            "06-erin-hard.eml".into(),
            dsn(
                6,
                "Erin.Case@Example.com",
                "failed",
                "5.1.1",
                "550 5.1.1 no such user",
                5,
            ),
        ),
        (
            "07-frank-host.eml".into(),
            dsn(
                7,
                "frank@nowhere.example.net",
                "failed",
                "5.1.2",
                "550 5.1.2 host not found",
                8,
            ),
        ),
    ]
}

/// A temporary folder with the fixtures imported into `bounced.db` by the real binary, and a token
/// file holding the `ops` and `lists` tokens.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub tokens: PathBuf,
    pub mail: PathBuf,
}

/// The `bounced` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bounced")
}

impl Fixture {
    /// Writes the fixtures, imports them, writes the token file.
    pub fn new() -> Fixture {
        Fixture::on(None)
    }

    /// [`Fixture::new`] into the database `db` (a PostgreSQL URL, say) instead of a new file.
    pub fn on(db: Option<PathBuf>) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let mail = dir.path().join("mail");
        std::fs::create_dir(&mail).expect("mail dir");
        for (name, text) in fixtures() {
            std::fs::write(mail.join(name), text).expect("write fixture");
        }
        let db = db.unwrap_or_else(|| dir.path().join("bounced.db"));
        let out = Command::new(bin())
            .args(["import", "--db"])
            .arg(&db)
            .arg(&mail)
            .env_remove("BOUNCED_CONFIG")
            .output()
            .expect("run bounced import");
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tokens = dir.path().join("tokens");
        std::fs::write(
            &tokens,
            format!("# test tokens\nops:{TOKEN}\nlists:{LIST_TOKEN}\n"),
        )
        .expect("token file");
        Fixture {
            dir,
            db,
            tokens,
            mail,
        }
    }

    /// Runs `bounced ARGS --db DB` and returns stdout.
    pub fn bounced(&self, args: &[&str]) -> String {
        let out = Command::new(bin())
            .args(args)
            .arg("--db")
            .arg(&self.db)
            .env_remove("BOUNCED_CONFIG")
            .output()
            .expect("run bounced");
        assert!(
            out.status.success(),
            "bounced {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A running `bounced serve`.
pub struct Server {
    pub child: Child,
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `bounced serve --db DB --http 127.0.0.1:0 EXTRA...` and waits until it listens.
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        Server::start_env(db, extra, &[])
    }

    /// Like [`Server::start`], with environment variables.
    pub fn start_env(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--http", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra)
            .env_remove("BOUNCED_CONFIG")
            .env_remove("BOUNCED_HTTP_TOKEN_FILE")
            .env_remove("BOUNCED_HTTP_LISTEN")
            .env("RUST_LOG", "bounced=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start bounced serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut v) = sink.lock() {
                    v.push(line);
                }
            }
        });
        let start = Instant::now();
        let base = loop {
            let found = log.lock().ok().and_then(|v| {
                v.iter().find_map(|l| {
                    l.split_once(" on http://")
                        .map(|(_, rest)| format!("http://{}", rest.trim_end_matches('/')))
                })
            });
            if let Some(b) = found {
                break b;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "bounced serve exited with {status}: {}",
                    log.lock().map(|v| v.join("\n")).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "bounced serve did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Server { child, base, log }
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|v| v.join("\n")).unwrap_or_default()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then the exit code (panics after `limit`).
    pub fn stop(&mut self, limit: Duration) -> i32 {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on the child we spawned and have not yet waited for.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < limit,
                "bounced serve did not stop in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP client that never follows redirects (the tests look at them).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}
