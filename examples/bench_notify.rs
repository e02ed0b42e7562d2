//! `cargo run --release --example bench_notify`: the outbox end to end, with the release binary
//! (`target/release/bounced`, or `--bin`) and a webhook receiver on loopback that checks every
//! signature.
//!
//! 1. Latency: hard bounces delivered one at a time into the Maildir of a running daemon; the time
//!    from the rename into `new/` to the receiver accepting the `suppressed` event (p50/p99/max).
//! 2. Drain: N events recorded by `bounced import` while the daemon is stopped, then the daemon
//!    started; events/s from its start until the receiver has them all, and the daemon's peak RSS.
//! 3. Outage: the receiver answers 503 for a while (60 s by default) as bounces arrive; then it
//!    returns; every event must arrive, and no address may get two different ids.

#[path = "../tests/notify_common/mod.rs"]
mod receiver;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use receiver::Receiver;

/// Arguments of the notify bench.
#[derive(Debug, clap::Parser)]
#[command(name = "bench_notify")]
pub struct Args {
    /// Bounces for the latency figure.
    #[arg(long, default_value_t = 1_000)]
    pub latency: usize,
    /// Events for the drain figure.
    #[arg(long, default_value_t = 100_000)]
    pub drain: usize,
    /// Bounces arriving while the receiver is down.
    #[arg(long, default_value_t = 1_000)]
    pub outage_bounces: usize,
    /// How long the receiver stays down, in seconds.
    #[arg(long, default_value_t = 60)]
    pub outage_secs: u64,
    /// The bounced binary.
    #[arg(long, default_value = "target/release/bounced")]
    pub bin: PathBuf,
    /// Work folder (a fresh temporary folder by default; removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

const SECRET: &str = "bench-secret-0123456789abcdef";

/// A distinct DSN (hard bounce, user unknown) for `member<n>@example.com`.
fn dsn(n: usize) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n\
To: list-bounces@example.org\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <notify-bench-{n}@mx.example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b{n}\"\r\n\
\r\n\
--b{n}\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.net\r\n\
\r\n\
Final-Recipient: rfc822; member{n}@example.com\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <member{n}@example.com>: User unknown\r\n\
\r\n\
--b{n}--\r\n"
    )
}

fn deliver(md: &Path, name: &str, body: &[u8]) -> std::io::Result<()> {
    let tmp = md.join("tmp").join(name);
    fs::write(&tmp, body)?;
    fs::rename(&tmp, md.join("new").join(name))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

struct Work {
    bin: PathBuf,
    md: PathBuf,
    config: PathBuf,
    dir: PathBuf,
}

impl Work {
    fn start(&self, name: &str) -> anyhow::Result<Child> {
        let log_path = self.dir.join(format!("{name}.log"));
        let log = fs::File::create(&log_path)?;
        let child = Command::new(&self.bin)
            .args(["run", "--config"])
            .arg(&self.config)
            .env("BOUNCED_LOG_LEVEL", "info")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        // Ready when the Maildir is watched and the notify worker runs.
        wait_until(Duration::from_secs(60), "the daemon to start", || {
            fs::read_to_string(&log_path)
                .is_ok_and(|l| l.contains("watching") && l.contains("notify worker started"))
        })?;
        Ok(child)
    }

    fn stop(&self, mut child: Child) -> anyhow::Result<()> {
        // SAFETY: kill has no memory preconditions.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(i32::try_from(child.id()).unwrap_or(0), libc::SIGTERM);
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("daemon exited with {status}");
        }
        Ok(())
    }
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let md = dir.join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(md.join(sub))?;
    }
    fs::write(dir.join("secret"), SECRET)?;
    let rx = Receiver::start(SECRET);
    let config = dir.join("bounced.toml");
    fs::write(
        &config,
        format!(
            "[store]\npath = {:?}\n\n[daemon]\nbatch_delay = \"10ms\"\n\n[[maildir]]\npath = {:?}\n\n\
             [[notify]]\nname = \"bench\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret_file = {:?}\n\
             events = [\"suppressed\"]\nconcurrency = 32\nbackoff_max = \"10s\"\n",
            dir.join("bounced.db").display().to_string(),
            md.display().to_string(),
            rx.url(),
            dir.join("secret").display().to_string(),
        ),
    )?;
    let w = Work {
        bin: args.bin.clone(),
        md: md.clone(),
        config: config.clone(),
        dir: dir.clone(),
    };

    // 1. Latency.
    let daemon = w.start("latency")?;
    let mut lat = Vec::with_capacity(args.latency);
    for n in 0..args.latency {
        let before = rx.count();
        let t0 = Instant::now();
        deliver(&w.md, &format!("l{n}"), dsn(n).as_bytes())?;
        wait_until(Duration::from_secs(30), "a suppressed event", || {
            rx.count() > before
        })?;
        let got = rx.accepted();
        let when = got.last().map(|g| g.when).unwrap_or_else(Instant::now);
        lat.push(when.saturating_duration_since(t0));
        std::thread::sleep(Duration::from_millis(5));
    }
    w.stop(daemon)?;
    lat.sort();
    if !lat.is_empty() {
        println!(
            "latency (Maildir rename -> webhook accepted), {} bounces: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lat.len(),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }

    // 2. Drain: events recorded while the daemon is stopped.
    if args.drain > 0 {
        let mbox = dir.join("drain.mbox");
        {
            let mut f = std::io::BufWriter::new(fs::File::create(&mbox)?);
            for n in 0..args.drain {
                writeln!(f, "From MAILER-DAEMON Mon Nov 23 10:00:00 2026")?;
                f.write_all(dsn(1_000_000 + n).replace("\r\n", "\n").as_bytes())?;
                writeln!(f)?;
            }
        }
        let t = Instant::now();
        let out = Command::new(&w.bin)
            .args(["import", "--config"])
            .arg(&w.config)
            .arg(&mbox)
            .output()?;
        if !out.status.success() {
            bail!("import failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        println!(
            "import of {} bounces (writing {} outbox events): {:.1} s",
            args.drain,
            args.drain,
            t.elapsed().as_secs_f64()
        );
        let before = rx.count();
        let t = Instant::now();
        let daemon = w.start("drain")?;
        let pid = daemon.id();
        let mut peak = 0;
        wait_until(Duration::from_secs(900), "the drain", || {
            peak = peak.max(rss_kib(pid).unwrap_or(0));
            rx.count() >= before + args.drain
        })?;
        let took = t.elapsed();
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        w.stop(daemon)?;
        println!(
            "drain: {} events in {:.1} s = {:.0} events/s (from daemon start); daemon peak RSS {} MiB",
            args.drain,
            took.as_secs_f64(),
            args.drain as f64 / took.as_secs_f64(),
            peak / 1024
        );
    }

    // 3. Outage.
    if args.outage_bounces > 0 {
        let before: HashSet<String> = rx.by_id().into_keys().collect();
        let accepted_before = rx.count();
        rx.answer(503);
        let daemon = w.start("outage")?;
        let down = Instant::now();
        for n in 0..args.outage_bounces {
            deliver(&w.md, &format!("o{n}"), dsn(2_000_000 + n).as_bytes())?;
        }
        let left = Duration::from_secs(args.outage_secs).saturating_sub(down.elapsed());
        std::thread::sleep(left);
        let refused = rx.refused();
        rx.answer(200);
        let back = Instant::now();
        let target = accepted_before + args.outage_bounces;
        wait_until(
            Duration::from_secs(300),
            "every event after the outage",
            || rx.count() >= target,
        )?;
        let all_in = back.elapsed();
        std::thread::sleep(Duration::from_secs(2));
        w.stop(daemon)?;
        let by_id = rx.by_id();
        let mut ids_per_address: HashMap<String, HashSet<String>> = HashMap::new();
        for (id, (_, body)) in &by_id {
            ids_per_address
                .entry(body["address"].as_str().unwrap_or("").to_owned())
                .or_default()
                .insert(id.clone());
        }
        let twice_other_id = ids_per_address.values().filter(|s| s.len() > 1).count();
        let new: usize = by_id.len() - before.len();
        println!(
            "outage: receiver down {:.0} s ({} refused attempts), {} bounces; after its return all {} events arrived in {:.1} s; addresses with two different ids: {}",
            back.duration_since(down).as_secs_f64(),
            refused,
            args.outage_bounces,
            new,
            all_in.as_secs_f64(),
            twice_other_id
        );
        if new != args.outage_bounces || twice_other_id != 0 {
            bail!("events lost or duplicated under a new id");
        }
    }
    if !rx.bad().is_empty() {
        bail!("receiver found bad requests: {:?}", &rx.bad()[..1]);
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench_notify: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dsn_is_distinct_per_recipient() {
        assert_ne!(super::dsn(1), super::dsn(2));
        assert!(super::dsn(7).contains("member7@example.com"));
    }
}
