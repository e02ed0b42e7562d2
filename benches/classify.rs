//! Throughput in messages per second: mail-parser alone, `report::read`, and the whole `analyze`.
//!
//! Loads `../shared/corpus/maildir` (relative to the crate) into memory once; when it is absent, the
//! golden fixtures. `bounced bench DIR` gives a quick figure without criterion.

use std::path::Path;

use bounced::cli::bench::load;
use bounced::report::{self, ReadOptions};
use bounced::{Classifier, analyze};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

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
}

criterion_group!(benches, bench);
criterion_main!(benches);
