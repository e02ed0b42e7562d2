//! Throughput in messages per second: mail-parser alone, `report::read`, and the whole `analyze`
//! (warm), and the first pass of a fresh classifier (cold).
//!
//! Loads `../shared/corpus/maildir` (relative to the crate) into memory once; when it is absent, the
//! golden fixtures. `cargo run --release --example bench_classify -- DIR` gives a quick figure without criterion.

use std::path::Path;

use bounced::report::{self, ReadOptions};
use bounced::source::files::{Entry, read_capped, walk};
use bounced::{Classifier, analyze};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// Every readable message under `dir`, in memory.
fn load(dir: &Path) -> Vec<Vec<u8>> {
    let mut msgs = Vec::new();
    walk(dir, &mut |entry| {
        if let Entry::File(p) = entry
            && let Ok(bytes) = read_capped(&p, report::DEFAULT_MAX_SIZE)
        {
            msgs.push(bytes);
        }
    });
    msgs
}

fn messages() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("../shared/corpus/maildir");
    let dir = if corpus.is_dir() {
        corpus
    } else {
        root.join("tests/fixtures/golden")
    };
    let msgs: Vec<Vec<u8>> = load(&dir);
    eprintln!("{} messages from {}", msgs.len(), dir.display());
    msgs
}

fn bench(c: &mut Criterion) {
    let msgs = messages();
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(msgs.len() as u64));

    let parser = mail_parser::MessageParser::default();
    group.bench_function("mail_parser_parse", |b| {
        b.iter(|| {
            msgs.iter()
                .map(|m| parser.parse(m).map_or(0, |p| p.parts.len()))
                .sum::<usize>()
        })
    });

    let opts = ReadOptions::default();
    group.bench_function("report_read", |b| {
        b.iter(|| {
            msgs.iter()
                .map(|m| report::read_with(m, &opts).map_or(0, |r| r.recipients.len()))
                .sum::<usize>()
        })
    });

    let classifier = Classifier::new();
    group.bench_function("analyze", |b| {
        b.iter(|| {
            msgs.iter()
                .map(|m| analyze(m, &classifier, &opts).bounces.len())
                .sum::<usize>()
        })
    });
    group.finish();

    // A fresh classifier's first pass: the rule set's lazy DFA states are built as messages arrive,
    // which is what a short `bounced classify` run pays.
    let mut cold = c.benchmark_group("classify_cold");
    cold.throughput(Throughput::Elements(msgs.len() as u64));
    cold.sample_size(10);
    cold.bench_function("analyze_first_pass", |b| {
        b.iter_batched(
            Classifier::new,
            |classifier| {
                msgs.iter()
                    .map(|m| analyze(m, &classifier, &opts).bounces.len())
                    .sum::<usize>()
            },
            BatchSize::PerIteration,
        )
    });
    cold.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
