//! Time and peak memory per MB of the worst message shapes (`tests/common/shapes.rs`), each at
//! several sizes, to show that the work per message is linear in its size and its memory a small
//! multiple of it.
//!
//! `cargo bench --bench shapes` prints one line per shape and size. Each case runs in a child
//! process of its own (this program, started again), so that its peak resident set is its own:
//! generating the message, then `analyze` on it (read, classify), as the daemon does per message.
//! Arguments: `SIZE_MB ...` to choose the sizes (default 1 2.5 5 10), `--shape NAME` to run one.

// getrusage and malloc_trim, to measure CPU time and memory, are calls into libc.
#![allow(unsafe_code)]

#[path = "../tests/common/shapes.rs"]
mod shapes;

use std::env;
use std::process::{Command, ExitCode};
use std::time::Duration;

use bounced::report::ReadOptions;
use bounced::{Classifier, analyze};

/// The variable that tells a child which case to run: `SHAPE SIZE_BYTES`.
const CHILD: &str = "BOUNCED_SHAPES_CASE";

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_of(usage: &libc::rusage) -> Duration {
    let secs = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn own_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    cpu_of(&usage)
}

/// The child: makes the message, analyses it, prints `cpu_seconds peak_kib base_kib kind`.
fn child(spec: &str) -> ExitCode {
    let mut words = spec.split_whitespace();
    let (Some(name), Some(size)) = (words.next(), words.next().and_then(|s| s.parse().ok())) else {
        eprintln!("bad case {spec:?}");
        return ExitCode::FAILURE;
    };
    let Some(shape) = shapes::SHAPES.iter().find(|s| s.name == name) else {
        eprintln!("no shape {name}");
        return ExitCode::FAILURE;
    };
    let classifier = Classifier::new();
    let opts = ReadOptions::default();
    let _ = analyze(&(shape.make)(4096), &classifier, &opts);
    let message = (shape.make)(size);
    let base = status_kib("VmRSS:");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let started = own_cpu();
    let analysis = analyze(&message, &classifier, &opts);
    let cpu = own_cpu().saturating_sub(started);
    let peak = status_kib("VmHWM:");
    println!(
        "{:.4} {peak} {base} {}",
        cpu.as_secs_f64(),
        analysis.error.as_ref().map_or_else(
            || analysis.kind.as_str().to_string(),
            |_| "refused".to_string()
        )
    );
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    if let Ok(spec) = env::var(CHILD) {
        return child(&spec);
    }
    let args: Vec<String> = env::args().skip(1).collect();
    let mut sizes: Vec<f64> = args
        .iter()
        .filter_map(|a| a.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .collect();
    if sizes.is_empty() {
        sizes = vec![1.0, 2.5, 5.0, 10.0];
    }
    let only = args
        .iter()
        .position(|a| a == "--shape")
        .and_then(|i| args.get(i + 1));
    let Ok(me) = env::current_exe() else {
        eprintln!("cannot find this program to start its cases");
        return ExitCode::FAILURE;
    };
    println!(
        "{:<20} {:>7} {:>9} {:>9} {:>10} {:>10} {:>10}  outcome",
        "shape", "MB", "CPU s", "ms/MB", "peak MiB", "work MiB", "work/MB"
    );
    for shape in shapes::SHAPES {
        if only.is_some_and(|o| o != shape.name) {
            continue;
        }
        for &mb in &sizes {
            let bytes = (mb * 1_000_000.0) as usize;
            let out = Command::new(&me)
                .env(CHILD, format!("{} {bytes}", shape.name))
                .output();
            let line = match out {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
                Ok(o) => {
                    println!(
                        "{:<20} {mb:>7} failed: {}",
                        shape.name,
                        String::from_utf8_lossy(&o.stderr).trim()
                    );
                    continue;
                }
                Err(e) => {
                    println!("{:<20} {mb:>7} cannot start: {e}", shape.name);
                    continue;
                }
            };
            let f: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            let (cpu, peak_kib, base_kib) = (num(0), num(1), num(2));
            let outcome = f.get(3).copied().unwrap_or("?");
            let work_mib = (peak_kib - base_kib).max(0.0) / 1024.0;
            println!(
                "{:<20} {mb:>7} {cpu:>9.3} {:>9.1} {:>10.1} {:>10.1} {:>10.2}  {outcome}",
                shape.name,
                cpu * 1000.0 / mb,
                peak_kib / 1024.0,
                work_mib,
                work_mib / mb,
            );
        }
    }
    ExitCode::SUCCESS
}
