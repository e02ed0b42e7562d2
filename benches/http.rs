//! HTTP throughput, latency and memory of the real daemon, `bounced run --http`, on 1,000,000
//! recipients while it ingests mail.
//!
//! `cargo bench --bench http [-- --recipients N] [--seconds S] [--connections C] [--rate R]`:
//! 1. fills a temporary database with N suppressed recipients (default 1,000,000);
//! 2. starts the release `bounced run --maildir M --db DB --http 127.0.0.1:PORT` and a feeder that
//!    delivers R distinct bounces a second into the Maildir (default 500; 0: no ingestion);
//! 3. `GET /api/v1/check` from C concurrent keep-alive connections (default 32) on loopback for S
//!    seconds (default 10) after a 2 s warm-up, half the addresses known and suppressed, half
//!    unknown, some of those in another case than stored: requests/s and latency percentiles, and
//!    the messages the daemon committed meanwhile (read from its own `/metrics`);
//! 4. a fresh daemon, still ingesting, streams the whole suppression list (`jsonl`, then `csv`):
//!    rows, MB/s, and the daemon's peak RSS (VmHWM).
//!
//! The load generator and the feeder run in this process on the same two cores as the daemon, so
//! the figures are what one machine does ingesting, serving and loading at once. Every loop is
//! bounded in time; only loopback is used.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bounced::store::{Store, StoreOptions};

const TOKEN: &str = "bench:0123456789abcdef0123456789abcdef";
const SECRET: &str = "0123456789abcdef0123456789abcdef";

struct Options {
    recipients: u64,
    seconds: u64,
    connections: usize,
    rate: u64,
}

fn options() -> Options {
    let mut o = Options {
        recipients: 1_000_000,
        seconds: 10,
        connections: 32,
        rate: 500,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let next = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), next) {
            ("--recipients", Some(n)) => o.recipients = n,
            ("--seconds", Some(n)) => o.seconds = n.max(1),
            ("--connections", Some(n)) => o.connections = usize::try_from(n).unwrap_or(32).max(1),
            ("--rate", Some(n)) => o.rate = n,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

/// Peak and current resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A running daemon and the feeder delivering into its Maildir.
struct Server {
    child: Child,
    base: String,
    feeding: Arc<AtomicBool>,
    feeder: Option<std::thread::JoinHandle<u64>>,
}

impl Server {
    /// Stops the feeder; returns how many messages it delivered.
    fn stop_feeding(&mut self) -> u64 {
        self.feeding.store(false, Ordering::Relaxed);
        self.feeder
            .take()
            .map_or(0, |f| f.join().unwrap_or_default())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_feeding();
        // SIGTERM, so the server drains as in production; kill(1) keeps this file free of unsafe.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A distinct hard bounce for `ingest<n>@feed.example.net`.
fn bounce(n: u64) -> String {
    format!(
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.feed.example.net\r\nTo: list-bounces@example.org\r\n\
Subject: Undelivered Mail\r\nMessage-ID: <feed-{n}@mx.feed.example.net>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"f{n}\"\r\n\r\n\
--f{n}\r\nContent-Type: text/plain\r\n\r\nDelivery to ingest{n}@feed.example.net failed.\r\n\r\n\
--f{n}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.feed.example.net\r\n\r\n\
Final-Recipient: rfc822; ingest{n}@feed.example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--f{n}--\r\n"
    )
}

/// Delivers `rate` bounces a second into `maildir` (tmp/, then renamed into new/) while `on`
/// holds, numbering them from `first`; returns how many it delivered.
fn feed(maildir: PathBuf, rate: u64, first: u64, on: Arc<AtomicBool>) -> u64 {
    if rate == 0 {
        return 0;
    }
    let start = Instant::now();
    let mut sent = 0u64;
    while on.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let n = first + sent;
            let name = format!("{n}.feed");
            let tmp = maildir.join("tmp").join(&name);
            if std::fs::write(&tmp, bounce(n)).is_ok() {
                let _ = std::fs::rename(&tmp, maildir.join("new").join(&name));
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    sent
}

/// Starts `bounced run --http` on `db` and `maildir`, with `rate` deliveries a second numbered
/// from `first`, and waits until it answers `/healthz`.
fn serve(db: &Path, tokens: &Path, maildir: &Path, rate: u64, first: u64) -> Server {
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_bounced"))
        .args(["run", "--http", &format!("127.0.0.1:{port}"), "--db"])
        .arg(db)
        .arg("--maildir")
        .arg(maildir)
        .env("BOUNCED_HTTP_TOKEN_FILE", tokens)
        .env_remove("BOUNCED_HTTP_LISTEN")
        .env_remove("BOUNCED_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bounced run");
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    loop {
        let ready = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            use std::io::{Read, Write};
            let _ = s.write_all(
                b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            );
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            buf.starts_with("HTTP/1.1 200")
        });
        if ready {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let feeding = Arc::new(AtomicBool::new(true));
    let feeder = {
        let (dir, on) = (maildir.to_path_buf(), feeding.clone());
        Some(std::thread::spawn(move || feed(dir, rate, first, on)))
    };
    Server {
        child,
        base,
        feeding,
        feeder,
    }
}

/// Messages the daemon has committed, from its own `/metrics`.
async fn committed(base: &str) -> f64 {
    let Ok(r) = reqwest::get(format!("{base}/metrics")).await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("bounced_messages_processed_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

async fn check_load(base: &str, o: &Options) {
    let recorded_before = committed(base).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.connections)
        .build()
        .expect("client");
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..o.connections {
        let (client, stop, measuring, errors) = (
            client.clone(),
            stop.clone(),
            measuring.clone(),
            errors.clone(),
        );
        let base = base.to_owned();
        let n = o.recipients.max(1);
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(200_000);
            let mut rng = fastrand::Rng::with_seed(c as u64 + 1);
            while !stop.load(Ordering::Relaxed) {
                let i = rng.u64(1..=n);
                let address = match rng.u8(0..4) {
                    0 | 1 => format!("user{i}@d{}.example.com", i % 997),
                    2 => format!("nobody{i}@d{}.example.com", i % 997),
                    _ => format!("User{i}@D{}.example.com", i % 997),
                };
                let t = Instant::now();
                let ok = match client
                    .get(format!("{base}/api/v1/check?address={address}"))
                    .bearer_auth(SECRET)
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if measuring.load(Ordering::Relaxed) {
                    if ok {
                        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let recorded_start = committed(base).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let took = start.elapsed().as_secs_f64();
    let recorded_end = committed(base).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all.sort_unstable();
    println!(
        "check: {} requests in {:.1} s = {:.0} requests/s over {} connections; errors {}",
        all.len(),
        took,
        all.len() as f64 / took,
        o.connections,
        errors.load(Ordering::Relaxed)
    );
    println!(
        "check latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        percentile(&all, 0.50),
        percentile(&all, 0.90),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        percentile(&all, 1.0)
    );
    println!(
        "ingestion meanwhile: {:.0} messages committed during the measured {took:.1} s = {:.0} messages/s ({:.0} since the daemon started)",
        recorded_end - recorded_start,
        (recorded_end - recorded_start) / took,
        recorded_end.max(recorded_before)
    );
}

async fn stream_list(server: &Server, format: &str) {
    use futures_util::StreamExt;
    let client = reqwest::Client::new();
    let (_, rss_before) = rss_mib(server.child.id());
    let start = Instant::now();
    let r = client
        .get(format!(
            "{}/api/v1/suppressions?format={format}",
            server.base
        ))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("GET /suppressions");
    assert!(r.status().is_success(), "{}", r.status());
    let mut body = r.bytes_stream();
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("stream");
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let took = start.elapsed().as_secs_f64();
    let (peak, _) = rss_mib(server.child.id());
    println!(
        "suppressions {format}: {lines} lines, {:.1} MB in {took:.1} s ({:.0} rows/s); daemon RSS {rss_before:.1} MiB before, peak {peak:.1} MiB",
        bytes as f64 / 1e6,
        lines as f64 / took
    );
}

fn main() {
    // `cargo test` runs bench targets with no `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let o = options();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).expect("token file");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let t = Instant::now();
        let store = Store::open(&db, StoreOptions::default())
            .await
            .expect("open");
        store
            .fill_synthetic_suppressed(o.recipients, chrono::Utc::now())
            .await
            .expect("fill");
        store.close().await;
        println!(
            "database: {} suppressed recipients written in {:.1} s",
            o.recipients,
            t.elapsed().as_secs_f64()
        );
        let maildir = dir.path().join("Maildir");
        let mut first = 0;
        {
            let mut server = serve(&db, &tokens, &maildir, o.rate, first);
            check_load(&server.base, &o).await;
            let (peak, now) = rss_mib(server.child.id());
            println!("daemon RSS after the check load: {now:.1} MiB (peak {peak:.1} MiB)");
            first += server.stop_feeding();
        }
        for format in ["jsonl", "csv"] {
            let mut server = serve(&db, &tokens, &maildir, o.rate, first);
            stream_list(&server, format).await;
            first += server.stop_feeding();
        }
        println!("{first} messages delivered to the daemon in all");
    });
}
