//! Work per message is bounded: each of the worst shapes we know of (`common/shapes.rs`), at 10 MB,
//! goes through the library's `analyze` to a result or a typed refusal, within a bound on CPU time
//! and on the memory it takes beyond the message itself.
//!
//! The bounds are those of a release build (2 s of CPU, 100 MiB); a debug build, many times slower,
//! is held to 40 s of CPU. `benches/shapes.rs` prints the figures per MB at several sizes.

// getrusage and malloc_trim, to measure CPU time and memory, are calls into libc.
#![allow(unsafe_code)]

#[path = "common/shapes.rs"]
mod shapes;

use std::fs;
use std::sync::Mutex;
use std::time::Duration;

use bounced::report::ReadOptions;
use bounced::{Analysis, Classifier, analyze};

/// One shape at a time, so that the peak resident set measured around a case is that case's.
static SERIAL: Mutex<()> = Mutex::new(());

/// The size of each case (bytes): just under the daemon's default 10 MiB limit.
const SIZE: usize = 10_200_000;

/// The CPU bound of a case.
fn cpu_bound() -> Duration {
    if cfg!(debug_assertions) {
        Duration::from_secs(40)
    } else {
        Duration::from_secs(2)
    }
}

/// The bound on the memory a case takes beyond the message (MiB).
const MEMORY_BOUND_MIB: u64 = 100;

fn status_kib(field: &str) -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Runs one shape at [`SIZE`] and checks its outcome and bounds; `refusal` is a word of the error
/// the message must be refused with, or `None` when it must be read.
fn case(name: &str, refusal: Option<&str>) {
    let _one = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let shape = shapes::SHAPES
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no shape {name}"));
    let message = (shape.make)(SIZE);
    let classifier = Classifier::new();
    let opts = ReadOptions::default();
    // A first small message builds the classifier's lazy state outside the measure.
    let _ = analyze(&(shape.make)(4096), &classifier, &opts);
    // SAFETY: malloc_trim only returns free heap memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    let base = status_kib("VmRSS:");
    let _ = fs::write("/proc/self/clear_refs", "5");
    let started = thread_cpu();
    let analysis: Analysis = analyze(&message, &classifier, &opts);
    let cpu = thread_cpu().saturating_sub(started);
    let extra_mib = status_kib("VmHWM:").saturating_sub(base) / 1024;
    eprintln!(
        "{name} ({}): {} bytes, kind {}, {} result(s), error {:?}, {:.3} s CPU, {extra_mib} MiB beyond the message",
        shape.what,
        message.len(),
        analysis.kind.as_str(),
        analysis.bounces.len(),
        analysis.error.as_ref().map(ToString::to_string),
        cpu.as_secs_f64()
    );
    match refusal {
        Some(word) => {
            let error = analysis.error.as_ref().map(ToString::to_string);
            assert!(
                error.as_deref().is_some_and(|e| e.contains(word)),
                "{name}: expected a refusal naming {word:?}, got {:?}",
                error
            );
        }
        None => assert!(analysis.error.is_none(), "{name}: {:?}", analysis.error),
    }
    assert!(
        cpu <= cpu_bound(),
        "{name}: {:.2} s of CPU, over {:?}",
        cpu.as_secs_f64(),
        cpu_bound()
    );
    assert!(
        extra_mib <= MEMORY_BOUND_MIB,
        "{name}: {extra_mib} MiB beyond the message, over {MEMORY_BOUND_MIB} MiB"
    );
}

macro_rules! shape_cases {
    ($($test:ident: $name:literal => $refusal:expr;)*) => {
        $(
            #[test]
            fn $test() {
                case($name, $refusal);
            }
        )*

        #[test]
        fn every_shape_has_a_case() {
            let cased = [$($name),*];
            for shape in shapes::SHAPES {
                assert!(cased.contains(&shape.name), "no case for {}", shape.name);
            }
        }
    };
}

shape_cases! {
    header_lines: "header-lines" => Some("header fields");
    received_lines: "received-lines" => Some("header fields");
    address_lines: "address-lines" => Some("recipients");
    same_address: "same-address" => None;
    address_list: "address-list" => None;
    generic_lines: "generic-lines" => None;
    exim_blocks: "exim-blocks" => Some("recipients");
    transcript: "transcript" => Some("recipients");
    replies: "replies" => None;
    dsn_blocks: "dsn-blocks" => Some("recipients");
    inline_dsn: "inline-dsn" => Some("recipients");
    mime_parts: "mime-parts" => Some("MIME parts");
    part_header_lines: "part-header-lines" => Some("header fields");
    attached_messages: "attached-messages" => Some("MIME parts");
    content_type_params: "content-type-params" => Some("structured header fields");
    to_addresses: "to-addresses" => None;
    encoded_subject: "encoded-subject" => Some("structured header fields");
    folded_header: "folded-header" => None;
    original_markers: "original-markers" => None;
    short_lines: "short-lines" => None;
    at_signs: "at-signs" => None;
}
