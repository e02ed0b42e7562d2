//! Replays the kept fuzz inputs (`tests/fixtures/fuzz/<target>/`) through the same code as the fuzz
//! targets in `fuzz/`: each must end without a panic, within a time bound, with a bounded result.

use std::path::Path;
use std::time::{Duration, Instant};

use bounced::classify::rules::RuleSet;
use bounced::report::{MAX_RECIPIENTS, ReadOptions};
use bounced::{Classifier, analyze};

/// Generous for a debug build; a hang found by the fuzzer took far longer.
const PER_INPUT: Duration = Duration::from_secs(10);

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| e.file_name() != "README.md")
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap_or_else(|err| panic!("{err}"));
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no inputs kept in {}", dir.display());
    out
}

#[test]
fn read_classify_inputs() {
    let classifier = Classifier::new();
    let opts = ReadOptions::default();
    for (name, bytes) in inputs("read_classify") {
        let started = Instant::now();
        let a = analyze(&bytes, &classifier, &opts);
        let took = started.elapsed();
        assert!(took < PER_INPUT, "{name}: took {took:?}");
        assert!(
            matches!(
                a.kind.as_str(),
                "dsn" | "text" | "feedback" | "autoreply" | "not_bounce" | "error"
            ),
            "{name}: kind {}",
            a.kind.as_str()
        );
        assert_eq!(a.kind.as_str() == "error", a.error.is_some(), "{name}");
        assert!(a.bounces.len() <= MAX_RECIPIENTS, "{name}");
        for b in &a.bounces {
            assert!(
                b.diagnostic.as_deref().map_or(0, str::len) <= bytes.len() + 64,
                "{name}: a diagnostic longer than the message"
            );
        }
    }
}

#[test]
fn rules_file_inputs() {
    for (name, bytes) in inputs("rules_file") {
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let started = Instant::now();
        let loaded = RuleSet::builtin_with_str(text, &name);
        let took = started.elapsed();
        assert!(took < PER_INPUT, "{name}: took {took:?}");
        if let Ok(set) = loaded {
            assert!(
                !set.rules().is_empty(),
                "{name}: the built-in rules are kept"
            );
        }
    }
}
