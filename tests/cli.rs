//! The `bounced` binary, run for real on the fixtures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bounced"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run bounced: {e}"))
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Fails naming every piece of `wanted` that `text` lacks.
fn assert_mentions(text: &str, wanted: &[&str]) {
    let missing: Vec<&&str> = wanted.iter().filter(|w| !text.contains(**w)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in:\n{text}");
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn arg(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
}

#[test]
fn classify_a_directory_prints_one_line_per_message_in_name_order() {
    let dir = fixtures().join("evalcorpus");
    let out = run(&[
        "classify",
        arg(&dir.join("maildir")),
        arg(&dir.join("not-bounces")),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = stdout_lines(&out);
    let values: Vec<Value> = lines.iter().map(|l| parse(l)).collect();
    let files: Vec<String> = values
        .iter()
        .filter_map(|v| v["file"].as_str().map(str::to_string))
        .collect();
    assert_eq!(files.len(), values.len(), "every line names its file");
    let mut distinct = files.clone();
    distinct.dedup();
    let names: Vec<String> = distinct
        .iter()
        .map(|f| {
            Path::new(f)
                .strip_prefix(&dir)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        names,
        [
            "maildir/dsn-mailboxfull-01.eml",
            "maildir/dsn-userunknown-01.eml",
            "maildir/extra-unscored-01.eml",
            "maildir/plain-newsletter-01.eml",
            "not-bounces/newsletter.eml",
        ]
    );
    for (line, v) in lines.iter().zip(&values) {
        assert!(line.starts_with("{\"file\":"), "file comes first: {line}");
        let kind = v["kind"].as_str().unwrap_or_default();
        assert!(
            ["dsn", "text", "feedback", "autoreply", "not_bounce"].contains(&kind),
            "{line}"
        );
        if kind == "not_bounce" {
            assert_eq!(v.as_object().map(|o| o.len()), Some(2), "{line}");
        } else {
            assert!(v["reason"].is_string(), "{line}");
            for value in v.as_object().into_iter().flat_map(|o| o.values()) {
                assert_ne!(
                    value,
                    &Value::String(String::new()),
                    "no empty strings: {line}"
                );
            }
        }
    }
}

#[test]
fn classify_reads_stdin() {
    let msg = std::fs::read(fixtures().join("golden/newsletter-not-bounce.eml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut child = bin()
        .args(["classify", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&msg).unwrap_or_else(|e| panic!("{e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_lines(&out), [r#"{"file":"-","kind":"not_bounce"}"#]);
}

#[test]
fn a_missing_file_is_an_error_line_and_the_run_goes_on() {
    let good = fixtures().join("golden/newsletter-not-bounce.eml");
    let out = run(&["classify", "/nonexistent/bounce.eml", arg(&good)]);
    assert_eq!(out.status.code(), Some(1), "an error input exits 1");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first = parse(&lines[0]);
    assert_eq!(first["file"], "/nonexistent/bounce.eml");
    assert_eq!(first["kind"], "error");
    assert!(first["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(first.get("reason").is_none());
    assert_eq!(parse(&lines[1])["kind"], "not_bounce");
}

#[test]
fn a_file_over_the_size_limit_is_not_read() {
    let good = fixtures().join("golden/newsletter-not-bounce.eml");
    let out = run(&["classify", "--max-size", "100", arg(&good)]);
    assert_eq!(out.status.code(), Some(1));
    let line = parse(&stdout_lines(&out)[0]);
    assert_eq!(line["kind"], "error");
    assert!(
        line["error"]
            .as_str()
            .is_some_and(|e| e.contains("over the limit of 100 bytes")),
        "{line}"
    );
}

#[test]
fn table_format_has_aligned_columns() {
    let dir = fixtures().join("evalcorpus/maildir");
    let out = run(&["classify", "--format", "table", arg(&dir)]);
    assert_eq!(out.status.code(), Some(0));
    let lines = stdout_lines(&out);
    let head = &lines[0];
    for col in [
        "FILE",
        "RECIPIENT",
        "STATUS",
        "REPLYCODE",
        "REASON",
        "TYPE",
        "RULE",
    ] {
        assert!(head.contains(col), "{head}");
    }
    assert!(lines.len() >= 5, "{lines:?}");
    let at = head.find("RECIPIENT");
    for line in &lines[1..] {
        let second = line
            .char_indices()
            .skip_while(|(_, c)| *c != ' ')
            .find(|(_, c)| *c != ' ')
            .map(|(i, _)| i);
        assert_eq!(second, at, "column 2 aligned: {line}");
    }
}

fn eval_args(extra: &[&str]) -> Vec<String> {
    let root = fixtures().join("evalcorpus");
    let mut args = vec![
        "eval".to_string(),
        arg(&root.join("maildir")).to_string(),
        "--expected".to_string(),
        arg(&root.join("expected.jsonl")).to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn eval_reports_the_figures() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mism = tmp.path().join("mismatches.jsonl");
    let args = eval_args(&["--format", "json", "--mismatches", arg(&mism)]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = parse(stdout_lines(&out).first().map_or("", String::as_str));
    let f = &report["figures"];
    assert_eq!(f["coverage"]["total"], 3, "three present mails have rows");
    assert!(f["coverage"]["hits"].as_u64().is_some_and(|h| h <= 2));
    assert_eq!(f["rows_matched"]["total"], 3);
    assert_eq!(f["unscored_files"], 1);
    assert_eq!(f["missing_files"], 1);
    assert_eq!(f["not_bounce_files"], 1);
    assert_eq!(f["hard_recall"]["total"], 1);
    let pct = report["percent"]["coverage"].as_f64();
    let hits = f["coverage"]["hits"].as_f64().unwrap_or(-1.0);
    assert_eq!(pct, Some(((hits * 1000.0 / 3.0).round()) / 10.0));

    // Every reason disagreement (or missing result) is in the mismatch file.
    let text = std::fs::read_to_string(&mism).unwrap_or_else(|e| panic!("{e}"));
    let reason_misses = text
        .lines()
        .map(parse)
        .filter(|m| m["field"] == "reason" || m["field"] == "result")
        .count() as u64;
    let reason_hits = f["reason"]["hits"].as_u64().unwrap_or(99);
    assert_eq!(reason_hits + reason_misses, 3, "{text}");
    for m in text.lines().map(parse) {
        for key in [
            "file",
            "n",
            "field",
            "expected",
            "got",
            "diagnostic",
            "rule",
        ] {
            assert!(m.get(key).is_some(), "{m}");
        }
    }
}

#[test]
fn eval_text_format_names_each_figure() {
    let args = eval_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_mentions(
        &text,
        &[
            "coverage",
            "rows matched",
            "recipient found",
            "status",
            "replycode",
            "reason",
            "hard/soft",
            "feedback type",
            "hard precision",
            "hard recall",
            "not-bounces           1 files",
            "unscored files: 1",
        ],
    );
}

#[test]
fn eval_below_its_floor_exits_non_zero_and_names_the_figure() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let floor = tmp.path().join("floor.toml");
    // The newsletter has an expected row it can never meet: coverage stays under 100%.
    std::fs::write(&floor, "coverage = 100.0\nreason = 0\n").unwrap_or_else(|e| panic!("{e}"));
    let args = eval_args(&["--floor", arg(&floor)]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("coverage"), "{err}");
    assert!(!err.contains("reason is"), "a zero floor passes: {err}");

    std::fs::write(&floor, "coverage = 0\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run(&args).status.code(), Some(0));

    std::fs::write(&floor, "coverag = 1\n").unwrap_or_else(|e| panic!("{e}"));
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2), "a bad floor file stops the run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("coverag"));
}

/// The `bench_classify` example program, built on demand (`cargo test --test cli` alone does not).
fn bench_classify() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_bounced"));
    let exe = bin
        .parent()
        .map(|d| d.join("examples/bench_classify"))
        .unwrap_or_default();
    if !exe.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--example", "bench_classify"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build.status().unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success(), "cannot build the bench_classify example");
    }
    exe
}

#[test]
fn bench_prints_throughput_and_peak_rss() {
    let dir = fixtures().join("evalcorpus/maildir");
    let out = Command::new(bench_classify())
        .args([arg(&dir), "--iterations", "1", "--repeat", "2"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_mentions(
        &String::from_utf8_lossy(&out.stdout),
        &[
            "streaming 4 files from disk, 2 passes",
            "(8 messages in",
            "after 2 passes",
            "4 messages",
            "parse only",
            "analyze, first pass (cold)",
            "msgs/s",
            "peak RSS",
        ],
    );
}

#[test]
fn explain_names_the_reader_the_rule_and_the_expected_row() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let expected = tmp.path().join("expected.jsonl");
    // Row 1 agrees; row 2 expects another reason; row 3 has no result of ours.
    std::fs::write(
        &expected,
        concat!(
            "{\"file\":\"dsn-postfix-two-recipients.eml\",\"n\":1,\"status\":\"5.1.1\",\"replycode\":\"550\",\"reason\":\"userunknown\",\"hardbounce\":true,\"feedbacktype\":\"\"}\n",
            "{\"file\":\"dsn-postfix-two-recipients.eml\",\"n\":2,\"status\":\"5.2.2\",\"replycode\":\"552\",\"reason\":\"exceedlimit\",\"hardbounce\":false,\"feedbacktype\":\"\"}\n",
            "{\"file\":\"dsn-postfix-two-recipients.eml\",\"n\":3,\"status\":\"5.1.1\",\"replycode\":\"\",\"reason\":\"userunknown\",\"hardbounce\":true,\"feedbacktype\":\"\"}\n",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let golden = fixtures().join("golden");
    let file = golden.join("dsn-postfix-two-recipients.eml");
    let out = run(&[
        "eval",
        arg(&golden),
        "--expected",
        arg(&expected),
        "--explain",
        arg(&file),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_mentions(
        &text,
        &[
            "reader        dsn",
            "message/delivery-status part",
            "result 1 of 2",
            "result 2 of 2",
            "from the Status field",
            "rule          userunknown.",
            "    note",
            "matched \"User unknown\"",
            "bounce type   hard: `userunknown`",
            "bounce type   soft: `mailboxfull`",
            "expected (n=3) has no result of ours",
        ],
    );
    let reason_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("reason "))
        .collect();
    assert_eq!(
        reason_lines.len(),
        4,
        "two results, two expected rows:\n{text}"
    );
    assert!(reason_lines[1].ends_with("yes"), "{}", reason_lines[1]);
    assert!(
        reason_lines[3].contains("exceedlimit") && reason_lines[3].ends_with("NO"),
        "{}",
        reason_lines[3]
    );

    let out = run(&["eval", "--explain", arg(&file), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = parse(stdout_lines(&out).first().map_or("", String::as_str));
    let e = &v["explanation"];
    assert_eq!(e["reader"], "dsn");
    assert_eq!(e["recipients"][1]["result"]["reason"], "mailboxfull");
    assert_eq!(
        e["recipients"][1]["rule"]["id"],
        e["recipients"][1]["result"]["rule"]
    );
    assert!(v["expected"].is_null(), "no --expected, no rows");
}

#[test]
fn explain_of_an_unreadable_file_fails() {
    // An input that cannot be read is exit 1, as for classify (the README's exit codes).
    let out = run(&["eval", "--explain", "/nonexistent/bounce.eml"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("bounce.eml"));
}

#[test]
fn classify_and_eval_print_the_same_for_any_job_count() {
    let golden = fixtures().join("golden");
    let one = run(&["classify", "--jobs", "1", arg(&golden)]);
    let four = run(&["classify", "--jobs", "4", arg(&golden)]);
    assert!(one.stdout.len() > 1000, "{one:?}");
    assert_eq!(one.status.code(), four.status.code());
    assert!(
        one.stdout == four.stdout,
        "classify output differs between --jobs 1 and 4"
    );
    let table = run(&["classify", "--jobs", "3", "--format", "table", arg(&golden)]);
    let table1 = run(&["classify", "--jobs", "1", "--format", "table", arg(&golden)]);
    assert!(table.stdout == table1.stdout, "table output differs");

    let dir = fixtures().join("evalcorpus/maildir");
    let expected = fixtures().join("evalcorpus/expected.jsonl");
    let eval = |jobs: &str| {
        run(&[
            "eval",
            arg(&dir),
            "--expected",
            arg(&expected),
            "--format",
            "json",
            "--jobs",
            jobs,
        ])
    };
    let (e1, e4) = (eval("1"), eval("4"));
    assert_eq!(e1.status.code(), Some(0), "{e1:?}");
    assert!(
        e1.stdout == e4.stdout,
        "eval figures differ between --jobs 1 and 4"
    );
}
