//! `cargo run --release --example bench_multi -- [--messages N] [--daemons K] [--db URL] [--kill]
//! [--compare]`: several `bounced run` processes (the release binary), each on its own Maildir,
//! into one PostgreSQL database. The mail (N messages, recipients shared between the folders) is
//! in the folders before the daemons start; prints messages/s in all, from the start of the
//! daemons to the last commit, and each daemon's peak RSS. `--kill` SIGKILLs the first daemon once
//! a third is recorded and starts it again; `--compare` then runs one daemon over all the mail into
//! SQLite and compares every export format, the stats and every recipient's counts and state,
//! byte for byte. Without `--db`, a throwaway PostgreSQL (Debian's `postgresql`, default durable
//! settings) is started in a temporary folder and removed afterwards. Build the binary first:
//! `cargo build --release`.

#![allow(unsafe_code)]

#[path = "../tests/common/overlap.rs"]
mod overlap;
#[path = "../tests/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Arguments of the several-daemons bench.
#[derive(Debug, clap::Parser)]
#[command(name = "bench_multi")]
struct Args {
    /// Messages in all, spread over the daemons' folders.
    #[arg(long, default_value_t = 30_000)]
    messages: usize,
    /// Daemons (each on its own Maildir).
    #[arg(long, default_value_t = 3)]
    daemons: usize,
    /// An empty PostgreSQL database (`postgres://user@host/db`); a throwaway server otherwise.
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// SIGKILL the first daemon once a third of the mail is recorded, then start it again.
    #[arg(long)]
    kill: bool,
    /// Also run one daemon over all the mail into SQLite and compare the outputs byte for byte.
    #[arg(long)]
    compare: bool,
    /// The `bounced` binary [default: the release build beside this example].
    #[arg(long, value_name = "FILE")]
    bin: Option<PathBuf>,
}

/// Says why the throwaway server cannot run (the helper shared with the tests calls it).
fn skipped(what: &str, why: &str) {
    eprintln!("bench_multi: {what}: {why}");
}

fn make_maildir(dir: &Path) -> anyhow::Result<()> {
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// Peak resident memory of process `pid`, in MiB (VmHWM).
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) in `/proc/PID/stat`: the process's own, plus with `children` those
/// of its children it has waited for.
fn proc_cpu(pid: u32, children: bool) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let field = |n: usize| {
        rest.split_whitespace()
            .nth(n)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0, utime 11, stime 12, cutime 13, cstime 14.
    let own = field(11) + field(12);
    let waited = if children { field(13) + field(14) } else { 0.0 };
    (own + waited) / 100.0
}

/// CPU seconds of a PostgreSQL server: the postmaster and the backends it has reaped, and its
/// processes still running (checkpointer, WAL writer, ...).
fn server_cpu(postmaster: u32) -> f64 {
    let mut total = proc_cpu(postmaster, true);
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if ppid == Some(postmaster) {
            total += proc_cpu(pid, false);
        }
    }
    total
}

/// CPU seconds of this process's children that have been waited for.
fn children_cpu() -> f64 {
    proc_cpu(std::process::id(), true) - proc_cpu(std::process::id(), false)
}

fn spawn(bin: &Path, md: &Path, db: &str, log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log)?;
    Command::new(bin)
        .args(["run", "--maildir"])
        .arg(md)
        .args(["--db", db])
        .env("BOUNCED_LOG_LEVEL", "warn")
        .env_remove("BOUNCED_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))
}

/// SIGTERM, then the exit code.
fn stop(child: &mut Child) -> anyhow::Result<i32> {
    let pid = i32::try_from(child.id())?;
    // SAFETY: kill(2) on a child we spawned and have not waited for.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    Ok(child.wait()?.code().unwrap_or(-1))
}

fn bounced(bin: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new(bin)
        .args(args)
        .env_remove("BOUNCED_CONFIG")
        .env_remove("BOUNCED_DB")
        .output()?;
    if !out.status.success() {
        bail!("bounced {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// Every export format and the stats of `db`.
fn outputs(bin: &Path, db: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut v = Vec::new();
    for f in [
        "txt", "csv", "jsonl", "listmonk", "postfix", "ses", "mailgun",
    ] {
        v.push((
            format!("export {f}"),
            bounced(bin, &["export", "--db", db, "--format", f])?,
        ));
    }
    v.push((
        "stats".into(),
        bounced(bin, &["stats", "--db", db, "--format", "jsonl"])?,
    ));
    v.push((
        "stats by reason".into(),
        bounced(
            bin,
            &["stats", "--db", db, "--by", "reason", "--format", "csv"],
        )?,
    ));
    Ok(v)
}

/// Every recipient's counts and state, one line each (the same statement on both engines).
const RECIPIENT_ROWS: &str = "select address || '|' || state || '|' || hard_count || '|' || \
    soft_count || '|' || complaint_count || '|' || other_count || '|' || soft_score || '|' || \
    coalesce(soft_last_counted_at, -1) || '|' || coalesce(first_bounce_at, -1) || '|' || \
    coalesce(last_bounce_at, -1) || '|' || coalesce(suppressed_at, -1) || '|' || \
    coalesce(suppressed_type, '') || '|' || coalesce(suppressed_why, '') \
    from recipients order by address";

async fn recipient_rows_pg(url: &str) -> anyhow::Result<Vec<String>> {
    let pool = sqlx::PgPool::connect(url).await?;
    let rows: Vec<(String,)> = sqlx::query_as(RECIPIENT_ROWS).fetch_all(&pool).await?;
    pool.close().await;
    Ok(rows.into_iter().map(|(r,)| r).collect())
}

async fn recipient_rows_sqlite(file: &Path) -> anyhow::Result<Vec<String>> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .read_only(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await?;
    let rows: Vec<(String,)> = sqlx::query_as(RECIPIENT_ROWS).fetch_all(&pool).await?;
    pool.close().await;
    Ok(rows.into_iter().map(|(r,)| r).collect())
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(args)))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_multi: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bin = match args.bin.clone() {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("bounced"))
            .context("no folder for the binary")?,
    };
    if !bin.exists() {
        bail!(
            "{} not found: run `cargo build --release` first",
            bin.display()
        );
    }
    let (n, k) = (args.messages, args.daemons.max(1));
    let work = tempfile::tempdir()?;
    // The server first: a throwaway one unless a database is given.
    let mut cluster = None;
    let mut _db_guard = None;
    let url = match &args.db {
        Some(u) => u.clone(),
        None => {
            if !postgres::available("bench_multi") {
                bail!("no PostgreSQL here: give --db URL");
            }
            let c =
                postgres::Cluster::start(postgres::Tuning::Durable).map_err(anyhow::Error::msg)?;
            let db = c.create_database("bench");
            let url = db.url.clone();
            _db_guard = Some(db);
            cluster = Some(c);
            url
        }
    };
    let dirs: Vec<PathBuf> = (0..k)
        .map(|i| work.path().join(format!("Maildir{i}")))
        .collect();
    for d in &dirs {
        make_maildir(d)?;
    }
    let t = Instant::now();
    for i in 0..n {
        let d = &dirs[i % k];
        std::fs::write(
            d.join("new").join(format!("m{i}.bench")),
            overlap::message(i, n),
        )?;
    }
    println!(
        "multi: wrote {n} messages ({} recipients) into {k} Maildirs in {:.1} s",
        (n / 4).max(1),
        t.elapsed().as_secs_f64()
    );
    // A backlog: every file older than the settling time a daemon gives a file it sees changing,
    // so that the figure is throughput, not that one-off wait.
    let settle = bounced::source::maildir::SETTLE;
    if let Some(rest) = settle.checked_sub(t.elapsed()) {
        std::thread::sleep(rest + Duration::from_millis(50));
    }

    let pool = sqlx::PgPool::connect(&url)
        .await
        .context("cannot connect to the database")?;
    let recorded = async || -> i64 {
        sqlx::query_scalar::<_, i64>("select count(*) from messages")
            .fetch_one(&pool)
            .await
            .unwrap_or(0)
    };
    let postmaster = cluster.as_ref().and_then(postgres::Cluster::server_pid);
    let (server0, children0) = (postmaster.map_or(0.0, server_cpu), children_cpu());
    let t = Instant::now();
    let mut children = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        children.push(spawn(
            &bin,
            d,
            &url,
            &work.path().join(format!("d{i}.log")),
        )?);
    }
    let mut killed = !args.kill;
    let limit = Duration::from_secs(600);
    loop {
        let done = recorded().await;
        let pending: usize = dirs.iter().map(|d| count_files(&d.join("new"))).sum();
        if done == n as i64 && pending == 0 {
            break;
        }
        if !killed && done >= (n / 3) as i64 {
            let pid = i32::try_from(children[0].id())?;
            // SAFETY: kill(2) on a child we spawned and have not waited for.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            children[0].wait()?;
            println!(
                "multi: SIGKILLed daemon 0 at {done} recorded ({:.1} s), starting it again",
                t.elapsed().as_secs_f64()
            );
            children[0] = spawn(&bin, &dirs[0], &url, &work.path().join("d0-again.log"))?;
            killed = true;
        }
        for (i, c) in children.iter_mut().enumerate() {
            if let Some(status) = c.try_wait()? {
                let log = std::fs::read_to_string(work.path().join(format!("d{i}.log")))
                    .unwrap_or_default();
                bail!("daemon {i} exited ({status}):\n{log}");
            }
        }
        if t.elapsed() > limit {
            bail!("{done} of {n} recorded after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = t.elapsed().as_secs_f64();
    let rss: Vec<String> = children
        .iter()
        .map(|c| format!("{:.1}", peak_rss_mib(c.id())))
        .collect();
    for c in &mut children {
        let code = stop(c)?;
        if code != 0 {
            bail!("a daemon exited with {code} on SIGTERM");
        }
    }
    let daemons_cpu = children_cpu() - children0;
    match postmaster {
        Some(pm) => {
            let server = server_cpu(pm) - server0;
            println!(
                "multi: CPU: daemons {daemons_cpu:.1} s, PostgreSQL {server:.1} s = {:.0} messages per CPU second ({:.0} msg/s on 2 idle cores)",
                n as f64 / (daemons_cpu + server),
                2.0 * n as f64 / (daemons_cpu + server)
            );
        }
        None => {
            println!("multi: CPU: daemons {daemons_cpu:.1} s (the server's is not counted: --db)")
        }
    }
    println!(
        "multi: {k} daemons recorded {n} messages into PostgreSQL in {elapsed:.2} s = {:.0} msg/s in all{}; peak RSS per daemon {} MiB",
        n as f64 / elapsed,
        if args.kill {
            " (one SIGKILLed and restarted)"
        } else {
            ""
        },
        rss.join(", ")
    );
    let distinct: i64 = sqlx::query_scalar("select count(distinct sha256) from messages")
        .fetch_one(&pool)
        .await?;
    let acked: usize = dirs.iter().map(|d| count_files(&d.join("cur"))).sum();
    pool.close().await;
    println!("multi: recorded once: {distinct} distinct of {n}; acknowledged {acked} files");
    if distinct != n as i64 || acked != n {
        bail!("messages lost or recorded twice");
    }

    if args.compare {
        let md = work.path().join("MaildirAll");
        make_maildir(&md)?;
        for i in 0..n {
            std::fs::write(
                md.join("new").join(format!("m{i}.bench")),
                overlap::message(i, n),
            )?;
        }
        let file = work.path().join("one.db");
        let file_s = file.to_str().context("utf-8 path")?;
        let t = Instant::now();
        let mut one = spawn(&bin, &md, file_s, &work.path().join("one.log"))?;
        loop {
            if count_files(&md.join("new")) == 0
                && count_files(&md.join("cur")) == n
                && recipient_rows_sqlite(&file).await.is_ok()
            {
                break;
            }
            if t.elapsed() > limit {
                bail!("the single daemon did not finish within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = t.elapsed().as_secs_f64();
        stop(&mut one)?;
        println!(
            "multi: one daemon into SQLite: {n} messages in {elapsed:.2} s = {:.0} msg/s",
            n as f64 / elapsed
        );
        let mut same = recipient_rows_pg(&url).await? == recipient_rows_sqlite(&file).await?;
        println!(
            "multi: recipients' counts and state: {}",
            if same { "equal" } else { "DIFFER" }
        );
        for ((what, a), (_, b)) in outputs(&bin, &url)?.iter().zip(outputs(&bin, file_s)?) {
            let eq = *a == b;
            same &= eq;
            println!(
                "multi: {what}: {}",
                if eq { "byte for byte equal" } else { "DIFFERS" }
            );
        }
        if !same {
            bail!("the several daemons' database differs from one daemon's");
        }
    }
    drop(_db_guard);
    drop(cluster);
    Ok(())
}
