//! Store throughput and memory: import of 100,000 distinct messages and export of 1,000,000
//! suppressed recipients. Run with `cargo bench --bench store [-- import|export] [--messages N]
//! [--recipients N] [--corpus DIR] [--db URL]`; prints messages/s and peak RSS (VmHWM). The import
//! goes into a new SQLite file in a temporary folder, or with `--db` into that database (an empty
//! PostgreSQL database `postgres://user@host/db`, or a SQLite path), to compare the engines.
//!
//! The import input is the bounce corpus repeated, each copy made unique by one added header line
//! (`X-Bench-Copy: N`), written as files to a temporary folder and imported through the same
//! pipeline as `bounced import`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bounced::Classifier;
use bounced::export::{self, Format};
use bounced::pipeline::{self, Metrics, Settings};
use bounced::store::query::ExportFilter;
use bounced::store::{Store, StoreOptions};

/// Peak resident memory of this process, in MiB, from /proc/self/status.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat.
fn cpu_secs() -> f64 {
    let (user, system) = cpu_split();
    user + system
}

/// CPU seconds this process has used in user mode and in the kernel, from /proc/self/stat.
fn cpu_split() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (in parentheses) start with the state; utime and stime are the
    // 12th and 13th of them. Clock ticks are 100 per second on Linux.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let field = |n: usize| {
        rest.split_whitespace()
            .nth(n)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) / 100.0, field(12) / 100.0)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn corpus_files(dir: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    // Identical files would make duplicates, not distinct messages: keep one of each.
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|b| seen.insert(b.clone()))
        .collect()
}

async fn bench_export(dir: &Path, recipients: u64) {
    let db = dir.join("export.db");
    let store = Store::open(&db, StoreOptions::default()).await.unwrap();
    let t = Instant::now();
    store
        .fill_synthetic_suppressed(recipients, chrono::Utc::now())
        .await
        .unwrap();
    println!(
        "export: filled {recipients} suppressed recipients in {:.1} s; peak RSS so far {:.1} MiB",
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    for format in [Format::Csv, Format::Jsonl, Format::Txt] {
        let out = std::fs::File::create(dir.join(format!("export.{format}"))).unwrap();
        let t = Instant::now();
        let (n, out) = export::export(
            &store,
            &ExportFilter::default(),
            format,
            BufWriter::with_capacity(64 * 1024, out),
        )
        .await
        .unwrap();
        drop(out.into_inner().map_err(|e| e.into_error()).unwrap());
        let secs = t.elapsed().as_secs_f64();
        println!(
            "export {format:<5}: {n} rows in {secs:.2} s ({:.0} rows/s); peak RSS {:.1} MiB",
            n as f64 / secs,
            peak_rss_mib()
        );
        assert_eq!(n, recipients);
    }
    store.close().await;
}

async fn bench_import(
    dir: &Path,
    corpus: &Path,
    messages: u64,
    settings: Settings,
    db: Option<&str>,
) {
    let files = corpus_files(corpus);
    assert!(!files.is_empty(), "no corpus at {}", corpus.display());
    let input = dir.join("maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(input.join(sub)).unwrap();
    }
    let t = Instant::now();
    let mut written = 0u64;
    'outer: for copy in 0.. {
        for (i, f) in files.iter().enumerate() {
            if written == messages {
                break 'outer;
            }
            let mut out = std::fs::File::create(input.join(format!("new/{copy}.{i}.bench")))
                .map(BufWriter::new)
                .unwrap();
            writeln!(out, "X-Bench-Copy: {copy}").unwrap();
            out.write_all(f).unwrap();
            out.flush().unwrap();
            written += 1;
        }
    }
    println!(
        "import: wrote {written} messages ({} distinct corpus files) in {:.1} s; peak RSS so far {:.1} MiB",
        files.len(),
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    drop(files);

    let db = db.map_or_else(|| dir.join("import.db"), PathBuf::from);
    let store = Store::open(&db, StoreOptions::default()).await.unwrap();
    println!("import: into {}", store.path().display());
    let jobs = settings.workers;
    let split0 = cpu_split();
    let t = Instant::now();
    let s = pipeline::import(
        settings,
        store.clone(),
        Arc::new(Classifier::new()),
        vec![input],
        std::future::pending(),
        Metrics::default(),
    )
    .await
    .unwrap();
    let elapsed = t.elapsed().as_secs_f64();
    let size = store.counts().await.map_or(0, |c| c.size_bytes);
    store.close().await;
    let messages = s.recorded + s.duplicates;
    let split = cpu_split();
    let (user, system) = (split.0 - split0.0, split.1 - split0.1);
    let cpu = user + system;
    println!(
        "import: {cpu:.1} CPU seconds (user {user:.1} + system {system:.1}) = {:.0} messages per CPU second",
        messages as f64 / cpu
    );
    println!(
        "import: {} messages ({} new, {} duplicates, {} errors; bounces hard {} soft {} complaint {} none {}) \
         in {:.2} s = {:.0} msg/s with {jobs} classifier threads; peak RSS {:.1} MiB",
        messages,
        s.recorded,
        s.duplicates,
        s.errors,
        s.bounces[0],
        s.bounces[1],
        s.bounces[2],
        s.bounces[3],
        elapsed,
        messages as f64 / elapsed,
        peak_rss_mib()
    );
    println!("import: database {:.1} MiB", size as f64 / 1048576.0);
}

/// The writer alone: prepared messages with one synthetic bounce each (as the classifier will give),
/// so the cost of recording bounces, recipients and history is measured apart from classification.
async fn bench_record(dir: &Path, messages: u64) {
    use bounced::store::Prepared;
    use bounced::{Analysis, Bounce, BounceType, Reason};
    let store = Store::open(&dir.join("record.db"), StoreOptions::default())
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let mut batch = Vec::with_capacity(500);
    let mut elapsed = 0.0;
    let mut cpu = 0.0;
    for i in 0..messages {
        let (reason, ty) = match i % 3 {
            0 => (Reason::Userunknown, BounceType::Hard),
            1 => (Reason::Mailboxfull, BounceType::Soft),
            _ => (Reason::Blocked, BounceType::Soft),
        };
        let bounce = Bounce {
            recipient: Some(format!("user{}@d{}.example.com", i % 5000, i % 97)),
            action: Some("failed".into()),
            status: Some("5.1.1".into()),
            replycode: Some("550".into()),
            reason,
            bounce_type: ty,
            diagnostic: Some("550 5.1.1 <user@example.com>: Recipient address rejected".into()),
            remote_mta: Some("mx.example.com".into()),
            reporting_mta: Some("mta.example.org".into()),
            date: Some("Mon, 2 Mar 2026 09:00:00 +0000".into()),
            feedback_type: None,
            rule: "bench".into(),
            reader: "dsn".into(),
            original_message_id: Some(format!("{i}@example.org")),
            original_from: None,
            original_to: None,
            original_subject: Some("Newsletter".into()),
            original_list_id: None,
        };
        let raw = format!(
            "X-Bench-Copy: {i}\nSubject: bounce\n\n{}\n",
            "x".repeat(3000)
        );
        let analysis = Analysis {
            kind: bounced::Kind::Dsn,
            reader: "dsn",
            bounces: vec![bounce],
            error: None,
            original: None,
            verp: None,
        };
        batch.push(Prepared::new(
            format!("bench:{i}"),
            now,
            raw.as_bytes(),
            analysis,
        ));
        if batch.len() == 500 || i + 1 == messages {
            let (t, cpu0) = (Instant::now(), cpu_secs());
            store.record(&batch, now).await.unwrap();
            elapsed += t.elapsed().as_secs_f64();
            cpu += cpu_secs() - cpu0;
            batch.clear();
        }
    }
    store.close().await;
    println!(
        "record: {messages} messages with one bounce each in {elapsed:.2} s of writer time = {:.0} msg/s; peak RSS {:.1} MiB",
        messages as f64 / elapsed,
        peak_rss_mib()
    );
    println!(
        "record: {cpu:.1} CPU seconds (user + system) while recording = {:.0} messages per CPU second",
        messages as f64 / cpu
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful: do a tiny run.
    let quick = !args.iter().any(|a| a == "--bench");
    let which = args
        .iter()
        .skip(1)
        .find(|a| *a == "import" || *a == "export" || *a == "record")
        .cloned();
    let messages: u64 = arg(&args, "--messages")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 500 } else { 100_000 });
    let recipients: u64 = arg(&args, "--recipients")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1_000 } else { 1_000_000 });
    let corpus = arg(&args, "--corpus")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/maildir"));
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Export first: the peak RSS it reports is not inflated by the import.
        if which.is_none() || which.as_deref() == Some("export") {
            bench_export(dir.path(), recipients).await;
        }
        if which.is_none() || which.as_deref() == Some("record") {
            bench_record(dir.path(), messages).await;
        }
        if which.is_none() || which.as_deref() == Some("import") {
            if corpus.is_dir() {
                // As `bounced import` runs: the `[daemon]` defaults, no retries.
                let mut settings = Settings {
                    retry_for: Some(std::time::Duration::ZERO),
                    ..Settings::default()
                };
                if let Some(j) = arg(&args, "--jobs").and_then(|v| v.parse().ok()) {
                    settings.workers = pipeline::jobs(j);
                }
                if let Some(b) = arg(&args, "--batch-size").and_then(|v| v.parse().ok()) {
                    settings.batch_size = b;
                }
                let db = arg(&args, "--db");
                bench_import(dir.path(), &corpus, messages, settings, db.as_deref()).await;
            } else {
                println!(
                    "import: no corpus at {} (use --corpus DIR)",
                    corpus.display()
                );
            }
        }
    });
}
