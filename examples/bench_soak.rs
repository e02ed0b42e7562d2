//! `cargo run --release --example bench_soak`: a long run of the real daemon. It starts `bounced run`
//! (the release binary, `--bin` to name another) on a fresh Maildir and database, delivers N distinct messages at a steady rate from a
//! writer thread (tmp/ then rename into new/), and watches `cur/` with inotify for the
//! acknowledgements (the daemon renames a message there with the S flag right after its commit).
//! Acknowledged files are counted, timed and deleted, so the disk holds only the database.
//!
//! It prints the throughput, the delivery-to-acknowledgement latency percentiles, the daemon's RSS
//! sampled over time (first, last, max), and the exactly-once check: every message acknowledged
//! once, recorded once in the database, nothing left in `new/`. Use a release build.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use notify::{EventKind, RecursiveMode, Watcher};

#[path = "bench_daemon.rs"]
#[allow(dead_code)]
mod bench_daemon;

use bench_daemon::synthetic_bounce;

/// Arguments of the soak.
#[derive(Debug, clap::Parser)]
#[command(name = "bench_soak")]
pub struct Args {
    /// Messages delivered in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: usize,
    /// Deliveries per second.
    #[arg(long, default_value_t = 2_000)]
    pub rate: u64,
    /// Seconds between two RSS samples.
    #[arg(long, default_value_t = 5)]
    pub sample_every: u64,
    /// Work folder (a fresh temporary folder by default; it is removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The `bounced` binary to soak.
    #[arg(long, value_name = "FILE", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/bounced"))]
    pub bin: PathBuf,
}

/// The acknowledgement time of a message found by a sweep rather than by its inotify event.
const SWEPT: u64 = u64::MAX;

/// Per-message times, in microseconds since the start (0: not yet).
struct Times {
    delivered: Vec<AtomicU64>,
    acked: Vec<AtomicU64>,
    delivered_count: AtomicU64,
    acked_count: AtomicU64,
    acked_twice: AtomicU64,
}

impl Times {
    fn new(n: usize) -> Times {
        Times {
            delivered: (0..n).map(|_| AtomicU64::new(0)).collect(),
            acked: (0..n).map(|_| AtomicU64::new(0)).collect(),
            delivered_count: AtomicU64::new(0),
            acked_count: AtomicU64::new(0),
            acked_twice: AtomicU64::new(0),
        }
    }

    /// Marks message `n` acknowledged at `us` (the first time only; [`SWEPT`] when the moment is
    /// unknown).
    fn ack(&self, n: usize, us: u64) {
        let Some(slot) = self.acked.get(n) else {
            return;
        };
        match slot.compare_exchange(0, us.max(1), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                self.acked_count.fetch_add(1, Ordering::Relaxed);
            }
            // The sweep got there before this event, which was still queued: the same rename.
            Err(SWEPT) => {}
            Err(_) if us == SWEPT => {}
            Err(_) => {
                self.acked_twice.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The message number of an acknowledged file name (`N.soak:2,S`).
fn acked_number(name: &str) -> Option<usize> {
    let (base, flags) = name.rsplit_once(":2,")?;
    if !flags.contains('S') {
        return None;
    }
    base.strip_suffix(".soak")?.parse().ok()
}

/// A process's resident set size, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A process's CPU time (user + system).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Sweeps `cur/` for acknowledged files the watcher missed (an inotify queue overflow): counted
/// without a latency, then deleted.
fn sweep(cur: &Path, times: &Times) {
    let Ok(rd) = fs::read_dir(cur) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        if let Some(n) = name.to_str().and_then(acked_number) {
            // No latency sample: the moment of the acknowledgement is unknown.
            times.ack(n, SWEPT);
            let _ = fs::remove_file(e.path());
        }
    }
}

fn spawn_daemon(exe: &Path, md: &Path, db: &Path, log: &Path) -> anyhow::Result<Child> {
    let log = fs::File::create(log).context("daemon log")?;
    Command::new(exe)
        .arg("run")
        .arg("--maildir")
        .arg(md)
        .arg("--db")
        .arg(db)
        .env("BOUNCED_LOG_LEVEL", "info")
        .env_remove("BOUNCED_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting bounced run")
}

fn wait_for_log(log: &Path, needle: &str, limit: Duration) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        if let Ok(f) = fs::File::open(log)
            && BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .any(|l| l.contains(needle))
        {
            return Ok(());
        }
        if t.elapsed() > limit {
            anyhow::bail!("the daemon did not log `{needle}` within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    let i = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// Runs the soak and prints the figures on stdout; fails when exactly-once does not hold.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tmp;
    let work = match &args.dir {
        Some(d) => {
            fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = std::env::temp_dir().join(format!("bounced-soak-{}", std::process::id()));
            fs::create_dir_all(&tmp)?;
            tmp.clone()
        }
    };
    let result = soak(&args, &work);
    if args.dir.is_none() {
        let _ = fs::remove_dir_all(&work);
    }
    result
}

fn soak(args: &Args, work: &Path) -> anyhow::Result<ExitCode> {
    let n = args.messages;
    let md = work.join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(md.join(sub))?;
    }
    let db = work.join("soak.db");
    let log = work.join("daemon.log");
    let mut child = spawn_daemon(&args.bin, &md, &db, &log)?;
    let pid = child.id();
    wait_for_log(&log, "running", Duration::from_secs(30))?;

    let start = Instant::now();
    let times = Arc::new(Times::new(n));
    let overflowed = Arc::new(AtomicBool::new(false));
    let cur = md.join("cur");

    // The acknowledgement watcher: timestamps in inotify's thread, deletes in a reaper thread.
    let (del_tx, del_rx) = std::sync::mpsc::channel::<PathBuf>();
    let mut watcher = {
        let times = times.clone();
        let overflowed = overflowed.clone();
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else {
                overflowed.store(true, Ordering::Release);
                return;
            };
            if ev.need_rescan() {
                overflowed.store(true, Ordering::Release);
                return;
            }
            let path = match ev.kind {
                EventKind::Modify(notify::event::ModifyKind::Name(
                    notify::event::RenameMode::To,
                )) => ev.paths.first(),
                EventKind::Modify(notify::event::ModifyKind::Name(
                    notify::event::RenameMode::Both,
                )) => ev.paths.get(1),
                _ => None,
            };
            let Some(path) = path else { return };
            if let Some(k) = path
                .file_name()
                .and_then(|s| s.to_str())
                .and_then(acked_number)
            {
                let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(SWEPT - 1);
                times.ack(k, us.min(SWEPT - 1));
                let _ = del_tx.send(path.clone());
            }
        })?
    };
    watcher.watch(&cur, RecursiveMode::NonRecursive)?;
    let reaper = std::thread::spawn(move || {
        for p in del_rx {
            let _ = fs::remove_file(p);
        }
    });

    // The writer: a steady rate, paced against the clock.
    let writer = {
        let times = times.clone();
        let md = md.clone();
        let rate = args.rate.max(1);
        std::thread::spawn(move || -> std::io::Result<()> {
            for i in 0..n {
                let due = Duration::from_micros((i as u64).saturating_mul(1_000_000) / rate);
                let now = start.elapsed();
                if due > now + Duration::from_millis(1) {
                    std::thread::sleep(due - now);
                }
                let name = format!("{i}.soak");
                let tmp = md.join("tmp").join(&name);
                fs::write(&tmp, synthetic_bounce(i))?;
                fs::rename(&tmp, md.join("new").join(&name))?;
                if let Some(slot) = times.delivered.get(i) {
                    slot.store(
                        u64::try_from(start.elapsed().as_micros())
                            .unwrap_or(u64::MAX)
                            .max(1),
                        Ordering::Release,
                    );
                }
                times.delivered_count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };

    // Samples until every message is acknowledged (or progress stops for two minutes).
    let every = Duration::from_secs(args.sample_every.max(1));
    let mut samples: Vec<(Duration, u64, u64, u64)> = Vec::new();
    let delivered_count = |t: &Times| t.delivered_count.load(Ordering::Relaxed);
    let mut last_progress = (0u64, Instant::now());
    let stalled = loop {
        std::thread::sleep(every.min(Duration::from_secs(1)));
        if overflowed.swap(false, Ordering::AcqRel) {
            sweep(&cur, &times);
        }
        let acked = times.acked_count.load(Ordering::Relaxed);
        if samples
            .last()
            .is_none_or(|s| start.elapsed() >= s.0 + every)
        {
            let rss = rss_kib(pid).unwrap_or(0);
            samples.push((start.elapsed(), delivered_count(&times), acked, rss));
        }
        if acked >= n as u64 {
            break false;
        }
        if acked > last_progress.0 {
            last_progress = (acked, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(120) {
            sweep(&cur, &times);
            break times.acked_count.load(Ordering::Relaxed) < n as u64;
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the daemon exited early ({status}); see {}", log.display());
        }
    };
    let elapsed_all = start.elapsed();
    let writer_result = writer.join();
    let rss_end = rss_kib(pid).unwrap_or(0);
    let cpu = cpu_time(pid).unwrap_or_default();
    samples.push((
        elapsed_all,
        delivered_count(&times),
        times.acked_count.load(Ordering::Relaxed),
        rss_end,
    ));

    // Stop the daemon the way systemd does.
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .context("running kill")?;
    anyhow::ensure!(killed.success(), "kill -TERM {pid} failed");
    let status = child.wait()?;
    drop(watcher);
    let _ = reaper.join();
    sweep(&cur, &times);
    match writer_result {
        Ok(r) => r.context("the writer failed")?,
        Err(_) => anyhow::bail!("the writer thread panicked"),
    }

    // Latency: delivery to acknowledgement, for every message seen by the watcher.
    let mut lat: Vec<u64> = times
        .delivered
        .iter()
        .zip(&times.acked)
        .filter_map(|(d, a)| {
            let (d, a) = (d.load(Ordering::Acquire), a.load(Ordering::Acquire));
            (d != 0 && a != 0 && a != SWEPT).then(|| a.saturating_sub(d))
        })
        .collect();
    lat.sort_unstable();

    let (count, distinct, bounces, errors) = db_counts(&db)?;
    let left_new = fs::read_dir(md.join("new"))?.count();
    let left_cur = fs::read_dir(&cur)?.count();
    let acked = times.acked_count.load(Ordering::Relaxed);
    let twice = times.acked_twice.load(Ordering::Relaxed);
    let log_text = fs::read_to_string(&log).unwrap_or_default();
    let warnings = log_text
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();
    let db_size = fs::metadata(&db).map(|m| m.len()).unwrap_or(0);

    println!(
        "soak: {n} messages delivered at {} msg/s (target), daemon pid {pid}",
        args.rate
    );
    println!("RSS of the daemon over time:");
    println!(
        "{:>9} {:>10} {:>10} {:>9}",
        "t (s)", "delivered", "acked", "RSS MiB"
    );
    for (t, d, a, rss) in &samples {
        println!(
            "{:>9.0} {:>10} {:>10} {:>9.1}",
            t.as_secs_f64(),
            d,
            a,
            *rss as f64 / 1024.0
        );
    }
    let rss_first = samples.first().map_or(0, |s| s.3);
    let rss_max = samples.iter().map(|s| s.3).max().unwrap_or(0);
    println!(
        "RSS: first {:.1} MiB, last {:.1} MiB, max {:.1} MiB",
        rss_first as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        rss_max as f64 / 1024.0
    );
    println!(
        "throughput: {acked} messages acknowledged in {:.1?}: {:.0} msg/s; daemon CPU {:.1?} ({:.0} us/message, {:.0}% of one core)",
        elapsed_all,
        acked as f64 / elapsed_all.as_secs_f64(),
        cpu,
        cpu.as_secs_f64() * 1e6 / (acked.max(1) as f64),
        cpu.as_secs_f64() * 100.0 / elapsed_all.as_secs_f64()
    );
    println!(
        "latency, delivery (rename into new/) to acknowledgement (after the commit), {} samples: p50 {}, p99 {}, p99.9 {}, max {}",
        lat.len(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(percentile(&lat, 0.999)),
        ms(lat.last().copied().unwrap_or(0))
    );
    println!(
        "database: {count} messages, {distinct} distinct, {bounces} bounces, {errors} errors; {:.0} MiB",
        db_size as f64 / 1048576.0
    );
    println!(
        "daemon: exit {status}, {warnings} warnings or errors in its log; left: {left_new} in new/, {left_cur} in cur/"
    );
    let n64 = n as u64;
    let once = !stalled
        && acked == n64
        && twice == 0
        && count == n64
        && distinct == n64
        && bounces == n64
        && errors == 0
        && left_new == 0
        && status.success();
    println!(
        "exactly once: {} (acknowledged {acked}/{n}, acknowledged twice {twice}, recorded {count}, distinct {distinct})",
        if once { "yes" } else { "NO" }
    );
    Ok(if once {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Messages, distinct messages, bounces, and error messages in the database.
fn db_counts(db: &Path) -> anyhow::Result<(u64, u64, u64, u64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db)
            .read_only(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await?;
        let q = |sql: &'static str| {
            let pool = pool.clone();
            async move {
                let v: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await?;
                anyhow::Ok(u64::try_from(v).unwrap_or(0))
            }
        };
        let r = (
            q("select count(*) from messages").await?,
            q("select count(distinct sha256) from messages").await?,
            q("select count(*) from bounces").await?,
            q("select count(*) from messages where kind = 'error'").await?,
        );
        pool.close().await;
        Ok(r)
    })
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench_soak: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_names_parse() {
        assert_eq!(acked_number("42.soak:2,S"), Some(42));
        assert_eq!(acked_number("42.soak.1:2,S"), None);
        assert_eq!(acked_number("42.soak:2,"), None);
        assert_eq!(acked_number("42.soak"), None);
        assert_eq!(percentile(&[1, 2, 3, 4, 5], 0.5), 3);
        assert_eq!(percentile(&[], 0.99), 0);
    }

    #[test]
    fn a_swept_message_then_its_late_event_counts_once() {
        let t = Times::new(3);
        t.ack(1, SWEPT);
        t.ack(1, 500);
        t.ack(2, 700);
        t.ack(2, 900);
        assert_eq!(t.acked_count.load(Ordering::Relaxed), 2);
        assert_eq!(t.acked_twice.load(Ordering::Relaxed), 1);
        t.ack(7, 1);
        assert_eq!(t.acked_count.load(Ordering::Relaxed), 2);
    }
}
