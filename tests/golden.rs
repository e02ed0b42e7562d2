//! Golden cases: every `tests/fixtures/golden/NAME.eml` is analysed and compared, as the JSON objects
//! of the `classify` contract (less `file`), with `NAME.expected.json` beside it. Each case runs with
//! LF and with CRLF line endings. On a mismatch, `NAME.actual.json` is written (git ignores it).
//!
//! In the expected JSON, `"rule": "*"` accepts any rule id.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use bounced::analysis::rows;
use bounced::report::ReadOptions;
use bounced::{Classifier, analyze};
use serde_json::Value;

/// The number of golden cases the suite must find; raise it when adding cases.
const MIN_CASES: usize = 138;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden")
}

fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    for &b in bytes {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Whether `got` matches `want`, where a `"*"` under the key `rule` matches anything.
fn matches(want: &Value, got: &Value, key: Option<&str>) -> bool {
    if key == Some("rule") && want.as_str() == Some("*") {
        return true;
    }
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            w.len() == g.len()
                && w.iter()
                    .all(|(k, wv)| g.get(k).is_some_and(|gv| matches(wv, gv, Some(k.as_str()))))
        }
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| matches(a, b, None))
        }
        _ => want == got,
    }
}

/// The differences between two result arrays, one field per line: `-` expected, `+` got.
fn diff(want: &Value, got: &Value) -> String {
    let empty = Vec::new();
    let w = want.as_array().unwrap_or(&empty);
    let g = got.as_array().unwrap_or(&empty);
    let mut out = String::new();
    if w.len() != g.len() {
        let _ = writeln!(out, "  {} result(s) expected, {} given", w.len(), g.len());
    }
    for i in 0..w.len().max(g.len()) {
        match (w.get(i), g.get(i)) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let (x, y) = (a.get(k), b.get(k));
                    let same = match (x, y) {
                        (Some(x), Some(y)) => matches(x, y, Some(k.as_str())),
                        _ => false,
                    };
                    if !same {
                        let show =
                            |v: Option<&Value>| v.map_or("(absent)".to_string(), Value::to_string);
                        let _ = writeln!(out, "  [{i}].{k}\n  - {}\n  + {}", show(x), show(y));
                    }
                }
            }
            (a, b) => {
                if let Some(a) = a {
                    let _ = writeln!(out, "  [{i}]\n  - {a}");
                }
                if let Some(b) = b {
                    let _ = writeln!(out, "  [{i}]\n  + {b}");
                }
            }
        }
    }
    out
}

#[test]
fn golden_cases() {
    let dir = golden_dir();
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    cases.sort();
    let classifier = Classifier::new();
    let opts = ReadOptions::default();
    let mut ran = 0;
    let mut failures = Vec::new();
    for eml in &cases {
        let name = eml
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let raw = fs::read(eml).unwrap_or_else(|e| panic!("{}: {e}", eml.display()));
        let expected_path = dir.join(format!("{name}.expected.json"));
        let expected_text = fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let want: Value = serde_json::from_str(&expected_text)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let lf = to_lf(&raw);
        let actual_path = dir.join(format!("{name}.actual.json"));
        let mut case_failed = false;
        for (ending, bytes) in [("LF", lf.clone()), ("CRLF", to_crlf(&lf))] {
            let analysis = analyze(&bytes, &classifier, &opts);
            let got = serde_json::to_value(rows(None, &analysis))
                .unwrap_or_else(|e| panic!("{name}: cannot serialise: {e}"));
            ran += 1;
            if !matches(&want, &got, None) {
                let got_text = serde_json::to_string_pretty(&got).unwrap_or_default();
                if !case_failed {
                    let _ = fs::write(&actual_path, format!("{got_text}\n"));
                }
                case_failed = true;
                failures.push(format!(
                    "{name} ({ending}): result differs from {name}.expected.json\n{}",
                    diff(&want, &got)
                ));
            }
        }
        if !case_failed {
            let _ = fs::remove_file(&actual_path);
        }
    }
    assert!(
        ran >= MIN_CASES * 2,
        "only {} golden runs in {} (want at least {MIN_CASES} cases, each LF and CRLF)",
        ran,
        dir.display()
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} golden runs failed:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn wildcard_only_applies_to_rule() {
    let want: Value = serde_json::json!([{"rule": "*", "reason": "*"}]);
    let ok: Value = serde_json::json!([{"rule": "x.y", "reason": "*"}]);
    let bad: Value = serde_json::json!([{"rule": "x.y", "reason": "userunknown"}]);
    assert!(matches(&want, &ok, None));
    assert!(!matches(&want, &bad, None));
    assert!(!matches(
        &serde_json::json!([{"rule": "*"}]),
        &serde_json::json!([{"rule": "a", "extra": null}]),
        None
    ));
}

#[test]
fn diff_names_the_differing_fields() {
    let want = serde_json::json!([{"reason": "userunknown", "rule": "*", "status": "5.1.1"}]);
    let got = serde_json::json!([{"reason": "onhold", "rule": "r9", "status": "5.1.1"}]);
    let d = diff(&want, &got);
    assert!(d.contains("[0].reason"), "{d}");
    assert!(
        d.contains("- \"userunknown\"") && d.contains("+ \"onhold\""),
        "{d}"
    );
    assert!(!d.contains("rule") && !d.contains("status"), "{d}");
    assert!(diff(&want, &serde_json::json!([])).contains("1 result(s) expected, 0 given"));
}

#[test]
fn line_ending_conversion_round_trips() {
    let lf = b"a\nb\r\nc\n".to_vec();
    assert_eq!(to_lf(&lf), b"a\nb\nc\n");
    assert_eq!(to_crlf(&to_lf(&lf)), b"a\r\nb\r\nc\r\n");
}
