//! `cargo run --release --example bench_daemon`: measures the daemon on a Maildir. First the backlog: N distinct
//! messages already in `new/` are recorded and moved; prints messages/s and peak RSS. Then idle
//! latency: messages delivered one at a time (tmp/ then rename into new/) into a running, idle
//! daemon; prints the delivery-to-commit p50/p99/max. Use a release build.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use bounced::Classifier;
use bounced::config::{DaemonConfig, MaildirConfig};
use bounced::daemon::{self, Progress, Settings, Sources};
use bounced::store::{Store, StoreOptions};

/// Arguments of the daemon bench.
#[derive(Debug, clap::Parser)]
#[command(name = "bench_daemon")]
pub struct Args {
    /// Messages placed in the Maildir before the daemon starts.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Deliveries into the idle daemon for the latency figure (0 skips it).
    #[arg(long, default_value_t = 1_000)]
    pub deliveries: usize,
    /// Work folder (a fresh temporary folder by default; it is removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// A distinct DSN (hard bounce, user unknown) for recipient number `n`.
pub fn synthetic_bounce(n: usize) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx{m}.example.net>\r\n\
To: list-bounces@example.org\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <bench-{n}@mx.example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b{n}\"\r\n\
\r\n\
--b{n}\r\n\
Content-Type: text/plain\r\n\
\r\n\
Delivery to member{n}@example.com failed permanently.\r\n\
\r\n\
--b{n}\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx{m}.example.net\r\n\
\r\n\
Final-Recipient: rfc822; member{n}@example.com\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <member{n}@example.com>: Recipient address rejected: User unknown\r\n\
\r\n\
--b{n}--\r\n",
        m = n % 7
    )
}

fn peak_rss_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) this process has used so far.
fn cpu_time() -> Option<Duration> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // Linux reports clock ticks of 1/100 s.
    Some(Duration::from_millis((utime + stime) * 10))
}

fn make_maildir(dir: &Path) -> std::io::Result<()> {
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    Ok(())
}

fn deliver(dir: &Path, name: &str, body: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join("tmp").join(name);
    fs::write(&tmp, body)?;
    fs::rename(&tmp, dir.join("new").join(name))
}

/// Runs both measurements and prints the figures on stdout.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tmp;
    let work = match &args.dir {
        Some(d) => {
            fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = std::env::temp_dir().join(format!("bounced-bench-{}", std::process::id()));
            fs::create_dir_all(&tmp)?;
            tmp.clone()
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        // Workers, acknowledgements and listing are the only blocking work: a small pool keeps
        // memory (one malloc arena per thread) bounded.
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .context("runtime")?;
    let result = rt.block_on(measure(&args, &work));
    if args.dir.is_none() {
        let _ = fs::remove_dir_all(&work);
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn measure(args: &Args, work: &Path) -> anyhow::Result<()> {
    let classifier = Arc::new(Classifier::new());
    let settings = Settings::from_config(&DaemonConfig::default());

    if args.messages > 0 {
        let md = work.join("backlog");
        make_maildir(&md)?;
        let t = Instant::now();
        for n in 0..args.messages {
            deliver(
                &md,
                &format!("{n}.bench.host"),
                synthetic_bounce(n).as_bytes(),
            )?;
        }
        eprintln!("placed {} messages in {:.1?}", args.messages, t.elapsed());
        let store = Store::open(&work.join("backlog.db"), StoreOptions::default()).await?;
        let progress = Progress::default();
        let want = args.messages as u64;
        let watch = progress.clone();
        let start = Instant::now();
        let cpu0 = cpu_time().unwrap_or_default();
        let summary = daemon::run_observed(
            settings.clone(),
            store.clone(),
            classifier.clone(),
            Sources {
                maildirs: vec![MaildirConfig::at(md.clone())],
                imaps: Vec::new(),
                notify: Vec::new(),
            },
            async move {
                while watch.snapshot().acked < want {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            || {},
            progress,
        )
        .await?;
        let elapsed = start.elapsed();
        let cpu = cpu_time().unwrap_or_default().saturating_sub(cpu0);
        store.close().await;
        let left = fs::read_dir(md.join("new"))?.count();
        println!(
            "backlog: {} messages recorded and moved in {:.2?}: {:.0} messages/s; {} new, {} duplicate, {} left in new/; peak RSS {} MiB; CPU {:.2?} ({:.0} us/message)",
            summary.acked,
            elapsed,
            summary.acked as f64 / elapsed.as_secs_f64(),
            summary.recorded,
            summary.duplicates,
            left,
            peak_rss_kib().unwrap_or(0) / 1024,
            cpu,
            cpu.as_secs_f64() * 1e6 / (summary.acked.max(1) as f64)
        );
    }

    if args.deliveries > 0 {
        let md = work.join("idle");
        make_maildir(&md)?;
        let store = Store::open(&work.join("idle.db"), StoreOptions::default()).await?;
        let progress = Progress::default();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let daemon = tokio::spawn(daemon::run_observed(
            settings,
            store.clone(),
            classifier,
            Sources {
                maildirs: vec![MaildirConfig::at(md.clone())],
                imaps: Vec::new(),
                notify: Vec::new(),
            },
            async {
                let _ = stop_rx.await;
            },
            move || {
                let _ = ready_tx.send(());
            },
            progress.clone(),
        ));
        let _ = ready_rx.await;
        let base = 10_000_000usize;
        let mut lat = Vec::with_capacity(args.deliveries);
        for i in 0..args.deliveries {
            let before = progress.snapshot().recorded;
            let body = synthetic_bounce(base + i);
            let md2 = md.clone();
            let name = format!("{i}.idle.host");
            let t0 = Instant::now();
            tokio::task::spawn_blocking(move || deliver(&md2, &name, body.as_bytes())).await??;
            while progress.snapshot().recorded == before {
                if t0.elapsed() > Duration::from_secs(10) {
                    anyhow::bail!("delivery {i} not committed within 10 s");
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            lat.push(t0.elapsed());
            // Let the daemon fall idle again.
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let _ = stop_tx.send(());
        daemon.await??;
        store.close().await;
        lat.sort();
        let at = |q: f64| {
            lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        println!(
            "idle latency, delivery to commit, over {} deliveries: p50 {:.1?}, p99 {:.1?}, max {:.1?}",
            lat.len(),
            at(0.5),
            at(0.99),
            lat.last().copied().unwrap_or_default()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench_daemon: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
