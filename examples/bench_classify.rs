//! `cargo run --release --example bench_classify -- DIR`: messages per second for parsing alone, reading, and full analysis, on one thread,
//! and the peak memory of classifying files one at a time.
//!
//! Two phases. First the directory is streamed from disk `--repeat` times, one file in memory at a
//! time, as `bounced classify` does: the peak resident set is read after the first pass and after the
//! last, and must not grow with the number of files. Then every message is loaded into memory and
//! each measure runs `--iterations` times after one uncounted warm-up pass (the first pass of a fresh
//! classifier builds the rule set's lazy DFA states, so it is shown on its own as "cold").
//! `cargo bench` gives the careful figures.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;

use bounced::analyze;
use bounced::classify::Classifier;
use bounced::report::{self, DEFAULT_MAX_SIZE, ReadOptions};

use bounced::source::files::{Entry, read_capped, walk};

/// Arguments of the classify bench.
#[derive(Debug, clap::Parser)]
#[command(name = "bench_classify")]
pub struct Args {
    /// A directory of messages (every regular file in it, recursively).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// How many times to run over all messages for each in-memory measure (after one warm-up pass).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub iterations: u32,
    /// How many times to stream the directory from disk, one file at a time, to show that the peak
    /// memory does not grow with the number of files classified.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub repeat: u32,
}

/// Throughput of one measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Messages processed.
    pub messages: u64,
    /// Wall time spent.
    pub elapsed: Duration,
    /// CPU time this thread spent, where the system tells (on a busy machine the honest figure for
    /// "one core").
    pub cpu: Option<Duration>,
}

impl Throughput {
    /// Messages per second of wall time.
    pub fn per_second(self) -> f64 {
        rate(self.messages, self.elapsed)
    }

    /// Messages per second of this thread's CPU time, when known.
    pub fn per_cpu_second(self) -> Option<f64> {
        self.cpu.map(|cpu| rate(self.messages, cpu))
    }
}

fn rate(messages: u64, time: Duration) -> f64 {
    let secs = time.as_secs_f64();
    if secs > 0.0 {
        messages as f64 / secs
    } else {
        0.0
    }
}

/// CPU time of the calling thread so far (Linux `/proc/thread-self/schedstat`, nanoseconds).
pub fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    (ns > 0).then(|| Duration::from_nanos(ns))
}

/// A stopwatch for wall and CPU time.
struct Clock {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            cpu: thread_cpu_time(),
            wall: Instant::now(),
        }
    }

    fn lap(&self, messages: u64) -> Throughput {
        let elapsed = self.wall.elapsed();
        Throughput {
            messages,
            elapsed,
            cpu: thread_cpu_time()
                .zip(self.cpu)
                .map(|(now, then)| now.saturating_sub(then)),
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
    let clock = Clock::start();
    let mut sink = 0usize;
    for _ in 0..iterations {
        for m in msgs {
            sink = sink.wrapping_add(f(m));
        }
    }
    std::hint::black_box(sink);
    clock.lap(msgs.len() as u64 * u64::from(iterations))
}

/// The peak resident set size of this process in KiB (`VmHWM`), where `/proc` has it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak resident set size to the current one (Linux `clear_refs`); false where unsupported.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// What streaming a directory from disk `passes` times cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Streamed {
    /// Files analysed per pass.
    pub files: u64,
    /// The first pass (a fresh classifier: includes building the lazy DFA states).
    pub first: Throughput,
    /// All passes together.
    pub all: Throughput,
    /// Peak RSS (KiB) after the first pass, and after the last.
    pub peak_kib: (Option<u64>, Option<u64>),
}

/// Classifies every file under `dir` `passes` times, reading one file at a time, and tracks the peak
/// resident set after the first and the last pass.
pub fn stream(dir: &Path, passes: u32) -> Streamed {
    let classifier = Classifier::new();
    let opts = ReadOptions::default();
    let mut files = 0u64;
    let mut sink = 0usize;
    let clock = Clock::start();
    let mut first = None;
    let mut peak_first = None;
    for pass in 0..passes.max(1) {
        walk(dir, &mut |entry| {
            if let Entry::File(p) = entry
                && let Ok(bytes) = read_capped(&p, opts.max_size)
            {
                sink = sink.wrapping_add(analyze(&bytes, &classifier, &opts).bounces.len());
                if pass == 0 {
                    files += 1;
                }
            }
        });
        if pass == 0 {
            first = Some(clock.lap(files));
            peak_first = peak_rss_kib();
        }
    }
    std::hint::black_box(sink);
    let all = clock.lap(files * u64::from(passes.max(1)));
    Streamed {
        files,
        first: first.unwrap_or(all),
        all,
        peak_kib: (peak_first, peak_rss_kib()),
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("unknown".to_string(), |k| {
        format!("{:.1} MiB", k as f64 / 1024.0)
    })
}

fn print_throughput(label: &str, t: Throughput) {
    let cpu = match (t.per_cpu_second(), t.cpu) {
        (Some(rate), Some(cpu)) => format!(
            "{rate:>10.0} msgs/s per CPU second ({:.3} s CPU), ",
            cpu.as_secs_f64()
        ),
        _ => String::new(),
    };
    println!(
        "{label:<30}{cpu}{:>8.0} msgs/s wall  ({} messages in {:.3} s)",
        t.per_second(),
        t.messages,
        t.elapsed.as_secs_f64()
    );
}

/// Runs the measure.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let reset = reset_peak_rss();
    let streamed = stream(&args.dir, args.repeat);
    if streamed.files == 0 {
        bail!("no readable message under {}", args.dir.display());
    }
    println!(
        "streaming {} files from disk, {} passes, one file in memory at a time:",
        streamed.files,
        args.repeat.max(1)
    );
    print_throughput("  analyze, first pass (cold)", streamed.first);
    print_throughput("  analyze, all passes", streamed.all);
    let (after_first, after_last) = streamed.peak_kib;
    let growth = match (after_first, after_last) {
        (Some(a), Some(b)) => format!("{:+} KiB", b as i64 - a as i64),
        _ => "unknown".to_string(),
    };
    println!(
        "  peak RSS after 1 pass {}, after {} passes {} ({growth}){}",
        mib(after_first),
        args.repeat.max(1),
        mib(after_last),
        if reset { "" } else { " [peak not reset]" }
    );

    let msgs = load(&args.dir);
    let iterations = args.iterations.max(1);
    let bytes: usize = msgs.iter().map(Vec::len).sum();
    println!(
        "in memory: {} messages, {:.1} MiB, {} iterations after one warm-up pass, one thread:",
        msgs.len(),
        bytes as f64 / (1024.0 * 1024.0),
        iterations
    );
    let parser = mail_parser::MessageParser::default();
    let parse_one = |m: &[u8]| parser.parse(m).map_or(0, |p| p.parts.len());
    measure(&msgs, 1, parse_one);
    let parse = measure(&msgs, iterations, parse_one);
    let opts = ReadOptions::default();
    let read_one = |m: &[u8]| report::read_with(m, &opts).map_or(0, |r| r.recipients.len());
    measure(&msgs, 1, read_one);
    let read = measure(&msgs, iterations, read_one);
    let classifier = Classifier::new();
    let analyze_one = |m: &[u8]| analyze(m, &classifier, &opts).bounces.len();
    let cold = measure(&msgs, 1, analyze_one);
    let full = measure(&msgs, iterations, analyze_one);
    print_throughput("  parse only (mail-parser)", parse);
    print_throughput("  read (report::read)", read);
    print_throughput("  analyze (read + classify)", full);
    print_throughput("  analyze, first pass (cold)", cold);
    println!("  peak RSS                        {}", mib(peak_rss_kib()));
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench_classify: error: {e:#}");
            ExitCode::from(2)
        }
    }
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
    fn streaming_counts_files_once_and_passes_in_the_total() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a.eml"), "From: a@example.com\n\nhello\n")?;
        std::fs::write(dir.path().join("b.eml"), "From: b@example.com\n\nhello\n")?;
        let s = stream(dir.path(), 3);
        assert_eq!(s.files, 2);
        assert_eq!((s.first.messages, s.all.messages), (2, 6));
        assert!(s.all.elapsed >= s.first.elapsed);
        Ok(())
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_kib().is_some_and(|k| k > 0));
        }
    }
}
