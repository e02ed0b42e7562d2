//! HTTP throughput, latency and memory of the real `bounced serve` on 1,000,000 recipients.
//!
//! `cargo bench --bench http [-- --recipients N] [--seconds S] [--connections C]`:
//! 1. fills a temporary database with N suppressed recipients (default 1,000,000);
//! 2. `GET /api/v1/check` from C concurrent keep-alive connections (default 32) on loopback for S
//!    seconds (default 10) after a 2 s warm-up, half the addresses known and suppressed, half
//!    unknown, some of those in another case than stored: requests/s and latency percentiles;
//! 3. a fresh server streams the whole suppression list (`jsonl`, then `csv`): rows, MB/s, and the
//!    server's peak RSS (VmHWM).
//!
//! The load generator runs in this process on the same two cores as the server, so the figures are
//! what one machine does serving and loading at once.

use std::path::Path;
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
}

fn options() -> Options {
    let mut o = Options {
        recipients: 1_000_000,
        seconds: 10,
        connections: 32,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let next = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), next) {
            ("--recipients", Some(n)) => o.recipients = n,
            ("--seconds", Some(n)) => o.seconds = n.max(1),
            ("--connections", Some(n)) => o.connections = usize::try_from(n).unwrap_or(32).max(1),
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

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM, so the server drains as in production; kill(1) keeps this file free of unsafe.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn serve(db: &Path, tokens: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_bounced"))
        .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--db"])
        .arg(db)
        .arg("--token-file")
        .arg(tokens)
        .env_remove("BOUNCED_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bounced serve");
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
    Server { child, base }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

async fn check_load(base: &str, o: &Options) {
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
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let took = start.elapsed().as_secs_f64();
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
        "suppressions {format}: {lines} lines, {:.1} MB in {took:.1} s ({:.0} rows/s); server RSS {rss_before:.1} MiB before, peak {peak:.1} MiB",
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
        {
            let server = serve(&db, &tokens);
            check_load(&server.base, &o).await;
            let (peak, now) = rss_mib(server.child.id());
            println!("server RSS after the check load: {now:.1} MiB (peak {peak:.1} MiB)");
        }
        for format in ["jsonl", "csv"] {
            let server = serve(&db, &tokens);
            stream_list(&server, format).await;
        }
    });
}
