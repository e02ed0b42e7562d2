//! `bounced bench`: messages per second for parsing alone, reading, and full analysis, on one thread.
//!
//! A figure that can be quoted without criterion; `cargo bench` gives the careful one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::analyze;
use crate::classify::Classifier;
use crate::report::{self, DEFAULT_MAX_SIZE, ReadOptions};

use super::{Entry, read_capped, walk};

/// Arguments of `bounced bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A directory of messages (every regular file in it, recursively).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// How many times to run over all messages for each measure.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub iterations: u32,
}

/// Throughput of one measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Messages processed.
    pub messages: u64,
    /// Wall time spent.
    pub elapsed: Duration,
}

impl Throughput {
    /// Messages per second.
    pub fn per_second(self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.messages as f64 / secs
        } else {
            0.0
        }
    }
}

/// Loads every readable message under `dir` into memory (unreadable or oversized files are skipped).
pub fn load(dir: &Path) -> Vec<Vec<u8>> {
    let mut msgs = Vec::new();
    walk(dir, &mut |entry| {
        if let Entry::File(p) = entry
            && let Ok(bytes) = read_capped(&p, DEFAULT_MAX_SIZE)
        {
            msgs.push(bytes);
        }
    });
    msgs
}

/// Runs `f` over every message `iterations` times and measures it.
pub fn measure(msgs: &[Vec<u8>], iterations: u32, mut f: impl FnMut(&[u8]) -> usize) -> Throughput {
    let start = Instant::now();
    let mut sink = 0usize;
    for _ in 0..iterations {
        for m in msgs {
            sink = sink.wrapping_add(f(m));
        }
    }
    std::hint::black_box(sink);
    Throughput {
        messages: msgs.len() as u64 * u64::from(iterations),
        elapsed: start.elapsed(),
    }
}

/// The peak resident set size of this process in KiB (`VmHWM`), where `/proc` has it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `bounced bench`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let msgs = load(&args.dir);
    if msgs.is_empty() {
        bail!("no readable message under {}", args.dir.display());
    }
    let iterations = args.iterations.max(1);
    let bytes: usize = msgs.iter().map(Vec::len).sum();
    println!(
        "{} messages, {:.1} MiB, {} iterations, one thread",
        msgs.len(),
        bytes as f64 / (1024.0 * 1024.0),
        iterations
    );
    let parser = mail_parser::MessageParser::default();
    let parse = measure(&msgs, iterations, |m| {
        parser.parse(m).map_or(0, |p| p.parts.len())
    });
    let opts = ReadOptions::default();
    let read = measure(&msgs, iterations, |m| {
        report::read_with(m, &opts).map_or(0, |r| r.recipients.len())
    });
    let classifier = Classifier::new();
    let full = measure(&msgs, iterations, |m| {
        analyze(m, &classifier, &opts).bounces.len()
    });
    for (label, t) in [
        ("parse only (mail-parser)", parse),
        ("read (report::read)", read),
        ("analyze (read + classify)", full),
    ] {
        println!(
            "{label:<28}{:>12.0} msgs/s  ({:.3} s)",
            t.per_second(),
            t.elapsed.as_secs_f64()
        );
    }
    match peak_rss_kib() {
        Some(kib) => println!("peak RSS                    {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak RSS                    unknown"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_counts_every_message_of_every_iteration() {
        let msgs = vec![b"a".to_vec(), b"bb".to_vec()];
        let mut calls = 0;
        let t = measure(&msgs, 3, |m| {
            calls += 1;
            m.len()
        });
        assert_eq!(t.messages, 6);
        assert_eq!(calls, 6);
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_kib().is_some_and(|k| k > 0));
        }
    }
}
