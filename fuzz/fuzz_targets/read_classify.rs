//! Any bytes through the whole reading and classification path: never a panic, a hang or an
//! unbounded allocation; the result is one of the known kinds.
#![no_main]

use std::sync::LazyLock;

use bounced::report::ReadOptions;
use bounced::{Classifier, analyze};
use libfuzzer_sys::fuzz_target;

static CLASSIFIER: LazyLock<Classifier> = LazyLock::new(Classifier::new);

fuzz_target!(|data: &[u8]| {
    let a = analyze(data, &CLASSIFIER, &ReadOptions::default());
    assert!(matches!(
        a.kind.as_str(),
        "dsn" | "text" | "feedback" | "autoreply" | "not_bounce" | "error"
    ));
    assert_eq!(a.kind.as_str() == "error", a.error.is_some());
    assert!(a.bounces.len() <= bounced::report::MAX_RECIPIENTS);
});
