//! What an operator meets in the first hour, through the real binary: relative paths watched live,
//! a log line as soon as mail is recorded, `check-config` failing wherever `run` would, every error
//! said once with the documented exit code, a rule file's mistakes in the user's own words, and
//! output that control characters in stored data cannot turn against the terminal.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

/// `bounced ARGS` in `dir`, with no configuration or log filter from the caller's environment.
fn bounced(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bounced"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("BOUNCED_CONFIG")
        .env_remove("BOUNCED_DB")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run bounced")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_relative_maildir_is_watched_live_and_the_start_names_absolute_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("md");
    make_maildir(&md);
    for (how, args) in [
        ("flag", vec!["--maildir", "md", "--db", "rel.db"]),
        ("config", vec!["--config", "c.toml"]),
    ] {
        fs::write(
            dir.path().join("c.toml"),
            "[store]\npath = \"./rel.db\"\n\n[[maildir]]\npath = \"./md\"\n",
        )
        .expect("config");
        let _ = fs::remove_file(dir.path().join("rel.db"));
        let mut d = {
            let mut cmd = DaemonCmd::new(&args, &dir.path().join(format!("{how}.log")));
            cmd = cmd.env("BOUNCED_SUMMARY_INTERVAL", "60s");
            cmd.current_dir(dir.path()).spawn()
        };
        d.wait_log("running", Duration::from_secs(10));
        let db = dir.path().join("rel.db");
        let start = Instant::now();
        deliver(&md, &format!("1.{how}.host"), bounce(1).as_bytes());
        d.wait_until(Duration::from_secs(10), "recorded live", || {
            recorded(&db) == 1
        });
        assert!(start.elapsed() < Duration::from_secs(10));
        // Said at the default level: the start with absolute paths, then the recorded mail.
        d.wait_log("recorded=1", Duration::from_secs(5));
        assert_eq!(d.stop(Duration::from_secs(10)), 0);
        let log = d.log();
        let starting = log
            .lines()
            .find(|l| l.contains("starting:"))
            .unwrap_or_default();
        let abs_db = format!("database {}", dir.path().join("rel.db").display());
        let abs_md = format!("maildir {}", md.display());
        assert!(
            starting.contains("INFO") && starting.contains(&abs_db) && starting.contains(&abs_md),
            "{how}: {starting}\n{log}"
        );
        // Live, so once: the delivery was not found by a later rescan.
        fs::rename(
            md.join("cur").join(format!("1.{how}.host:2,S")),
            dir.path().join(format!("{how}.done")),
        )
        .expect("move away");
    }
}

#[test]
fn recorded_mail_is_said_at_once_at_the_default_level_without_flooding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("md");
    make_maildir(&md);
    let db = dir.path().join("b.db");
    // The default level (info) and the default summary interval (60 s).
    let mut d = DaemonCmd::new(
        &[
            "--maildir",
            &md.display().to_string(),
            "--db",
            &db.display().to_string(),
        ],
        &dir.path().join("log"),
    )
    .env("BOUNCED_SUMMARY_INTERVAL", "60s")
    .env_remove("BOUNCED_LOG_LEVEL")
    .spawn();
    d.wait_log("running", Duration::from_secs(10));
    // A steady trickle for about 6 s.
    let start = Instant::now();
    let mut n = 0;
    let mut said_after = None;
    while start.elapsed() < Duration::from_millis(6000) {
        deliver(&md, &format!("{n}.busy.host"), bounce(n).as_bytes());
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
        if said_after.is_none() && d.count("summary for the last") > 0 {
            said_after = Some(start.elapsed());
        }
    }
    let during = d.count("summary for the last");
    d.wait_until(Duration::from_secs(10), "all recorded", || {
        recorded(&db) == n as i64
    });
    let said_after =
        said_after.unwrap_or_else(|| panic!("nothing said while recording:\n{}", d.log()));
    assert!(
        said_after < Duration::from_secs(3),
        "said after {said_after:?}"
    );
    // One line when work began; under steady load nothing more while it lasts.
    assert_eq!(during, 1, "{}", d.log());
    // When the work pauses, what was not yet said is said, once.
    d.wait_log_count("summary for the last", 2, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(d.count("summary for the last"), 2, "{}", d.log());
    // After the pause, a single message is said at once, not at the end of the interval; and again.
    for m in [n, n + 1] {
        let lines = d.count("summary for the last");
        let at = Instant::now();
        deliver(&md, &format!("{m}.late.host"), bounce(m).as_bytes());
        d.wait_log_count("summary for the last", lines + 1, Duration::from_secs(3));
        assert!(at.elapsed() < Duration::from_secs(3), "{}", d.log());
        std::thread::sleep(Duration::from_secs(3));
    }
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    let log = d.log();
    assert!(log.contains("received=1 recorded=1"), "{log}");
    assert_eq!(d.count("summary for the last"), 4, "{log}");
}

#[test]
fn check_config_fails_wherever_run_would() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("md");
    make_maildir(&md);
    fs::write(dir.path().join("pw"), "secret\n").expect("pw");
    fs::write(dir.path().join("bad-rules.toml"), "[[rule]]\nid = \"x\"\n").expect("rules");
    let maildir = "[[maildir]]\npath = \"md\"\n";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "no source",
            "[store]\npath = \"b.db\"\n".into(),
            "nothing to watch",
        ),
        (
            "a level that is no level",
            format!("[logging]\nlevel = \"loud\"\n{maildir}"),
            "logging.level",
        ),
        (
            "a password file that is missing",
            format!(
                "{maildir}[[imap]]\nname = \"a\"\nhost = \"127.0.0.1\"\nusername = \"u\"\npassword_file = \"missing-pw\"\n"
            ),
            "missing-pw",
        ),
        (
            "a rule file that is missing",
            format!("[daemon]\nrules = \"missing-rules.toml\"\n{maildir}"),
            "missing-rules.toml",
        ),
        (
            "a rule file that is not valid",
            format!("[daemon]\nrules = \"bad-rules.toml\"\n{maildir}"),
            "bad-rules.toml",
        ),
        (
            "a Maildir that is missing",
            "[[maildir]]\npath = \"nowhere\"\n".into(),
            "nowhere",
        ),
        (
            "a database folder that is missing",
            format!("[store]\npath = \"no/such/b.db\"\n{maildir}"),
            "store.path",
        ),
        (
            "an HTTP token file that is missing",
            format!("[http]\ntoken_file = \"missing-tokens\"\n{maildir}"),
            "missing-tokens",
        ),
        (
            "the HTTP API beyond loopback without a token",
            format!("[http]\nlisten = \"0.0.0.0:8025\"\n{maildir}"),
            "0.0.0.0",
        ),
    ];
    for (what, text, needle) in cases {
        fs::write(dir.path().join("c.toml"), &text).expect("config");
        let check = bounced(dir.path(), &["check-config", "--config", "c.toml"], &[]);
        assert_eq!(check.status.code(), Some(2), "{what}: {}", stdout(&check));
        assert!(
            stderr(&check).contains(needle),
            "{what}: {}",
            stderr(&check)
        );
        let run = bounced(dir.path(), &["run", "--config", "c.toml"], &[]);
        assert_eq!(run.status.code(), Some(2), "{what}: run started");
        assert_eq!(
            stderr(&run).lines().last(),
            stderr(&check).lines().last(),
            "{what}: run and check-config disagree"
        );
    }
    // A level that names levels, and a target at a level, pass.
    for level in ["info", "bounced=debug,sqlx=warn", "WARN"] {
        fs::write(
            dir.path().join("c.toml"),
            format!("[logging]\nlevel = \"{level}\"\n{maildir}"),
        )
        .expect("config");
        let check = bounced(dir.path(), &["check-config", "--config", "c.toml"], &[]);
        assert_eq!(check.status.code(), Some(0), "{level}: {}", stderr(&check));
        // The summary names the resolved paths.
        assert!(
            stdout(&check).contains(&format!("maildir {}", md.display())),
            "{}",
            stdout(&check)
        );
    }
    // BOUNCED_LOG_LEVEL goes through the same check.
    let check = bounced(
        dir.path(),
        &["check-config", "--config", "c.toml"],
        &[("BOUNCED_LOG_LEVEL", "chatty")],
    );
    assert_eq!(check.status.code(), Some(2));
    assert!(
        stderr(&check).contains("BOUNCED_LOG_LEVEL"),
        "{}",
        stderr(&check)
    );
}

#[test]
fn every_error_is_said_once_with_its_documented_exit_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    fs::write(d.join("good.eml"), bounce(1)).expect("write");
    fs::write(
        d.join("pw.toml"),
        "[[imap]]\nname = \"a\"\nhost = \"127.0.0.1\"\nusername = \"u\"\npassword_file = \"missing-pw\"\n",
    )
    .expect("config");
    let made = bounced(d, &["import", "good.eml", "--db", "b.db"], &[]);
    assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
    // An expectation the result misses, and a floor it is below.
    fs::create_dir(d.join("mail")).expect("mkdir");
    fs::write(d.join("mail/one.eml"), bounce(1)).expect("write");
    fs::write(
        d.join("expected.jsonl"),
        "{\"file\": \"one.eml\", \"n\": 1, \"status\": \"5.1.1\", \"replycode\": \"550\", \"reason\": \"mailboxfull\", \"hardbounce\": false, \"feedbacktype\": \"\"}\n",
    )
    .expect("expected");
    fs::write(d.join("floor.toml"), "reason = 100.0\n").expect("floor");
    // (arguments, the README's exit code, what the message must name)
    let cases: &[(&[&str], i32, &str)] = &[
        (&["classify", "good.eml"], 0, ""),
        (&["classify", "missing.eml"], 1, ""),
        (
            &["classify", "--rules", "missing.toml", "good.eml"],
            2,
            "missing.toml",
        ),
        (&["classify", "--no-such-flag"], 2, "--no-such-flag"),
        (&["eval", "--explain", "good.eml"], 0, ""),
        (&["eval", "--explain", "missing.eml"], 1, "missing.eml"),
        (&["eval", "d", "--expected", "missing.jsonl"], 2, "d"),
        (&["eval", "mail", "--expected", "expected.jsonl"], 0, ""),
        (
            &[
                "eval",
                "mail",
                "--expected",
                "expected.jsonl",
                "--floor",
                "floor.toml",
            ],
            1,
            "reason",
        ),
        (
            &[
                "eval",
                "mail",
                "--expected",
                "expected.jsonl",
                "--floor",
                "nofloor.toml",
            ],
            2,
            "nofloor.toml",
        ),
        (&["db", "check", "--db", "b.db"], 0, ""),
        (&["stats", "--db", "missing.db"], 2, "missing.db"),
        (&["import", "missing.eml", "--db", "b.db"], 1, "missing.eml"),
        (
            &[
                "import",
                "--rules",
                "missing.toml",
                "good.eml",
                "--db",
                "b.db",
            ],
            2,
            "missing.toml",
        ),
        (
            &["query", "recipient", "user1@example.com", "--db", "b.db"],
            0,
            "",
        ),
        (
            &["query", "recipient", "nobody@example.org", "--db", "b.db"],
            1,
            "nobody@example.org",
        ),
        (
            &[
                "query",
                "recipient",
                "a@example.org",
                "--config",
                "missing.toml",
            ],
            2,
            "missing.toml",
        ),
        (
            &["unsuppress", "nobody@example.org", "--db", "b.db"],
            1,
            "refused",
        ),
        (&["export", "--db", "missing.db"], 2, "missing.db"),
        (&["check-config", "--config", "pw.toml"], 2, "missing-pw"),
        (&["run", "--config", "pw.toml"], 2, "missing-pw"),
        (
            &["check-config", "--config", "missing.toml"],
            2,
            "missing.toml",
        ),
    ];
    for (args, code, needle) in cases {
        let out = bounced(d, args, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        // Each cause once: no message repeats the one it wraps.
        for cause in ["No such file or directory", "os error"] {
            assert!(
                err.matches(cause).count() <= 1,
                "{args:?} said twice: {err}"
            );
        }
        for line in err.lines() {
            let parts: Vec<&str> = line.split(": ").collect();
            for w in parts.windows(2) {
                assert_ne!(w[0], w[1], "{args:?} said twice: {line}");
            }
        }
    }
}

/// No byte of `out` is a control character a terminal would act on (ESC, BEL, CSI, CR...).
fn no_terminal_controls(what: &str, out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| c.is_control() && c != '\n' && c != '\t')
        .collect();
    assert!(bad.is_empty(), "{what} printed {bad:?} raw: {text}");
}

#[test]
fn control_characters_in_stored_data_and_names_reach_the_terminal_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // A diagnostic that retitles the window and clears the screen, in a file whose name does too.
    let hostile = bounce(7).replace(
        "Recipient address rejected: User unknown",
        "User unknown \x1b]0;owned\x07\x1b[2J\u{9b}31m",
    );
    let name = "evil\x1b]0;name\x07.eml";
    fs::write(d.join(name), &hostile).expect("write");
    let made = bounced(d, &["import", name, "--db", "b.db"], &[]);
    assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
    let runs: &[&[&str]] = &[
        &["query", "bounces", "--db", "b.db"],
        &["query", "recipient", "user7@example.com", "--db", "b.db"],
        &["query", "messages", "--db", "b.db"],
        &["query", "message", "1", "--db", "b.db"],
        &["stats", "--by", "domain", "--db", "b.db"],
        &["classify", name],
        &["classify", "--format", "table", name],
        &["eval", "--explain", name],
        &["eval", "--explain", name, "--format", "json"],
        &["suppress", "x\x1b]0;t\x07@example.com", "--db", "b.db"],
        &["unsuppress", "x\x1b[2J@example.com", "--db", "b.db"],
        &["classify", "--rules", "no\x1b[2Jrules.toml", name],
        &["import", "gone\x1b]0;t\x07.eml", "--db", "b.db"],
    ];
    for args in runs {
        let out = bounced(d, args, &[]);
        no_terminal_controls(&format!("{args:?} stdout"), &out.stdout);
        no_terminal_controls(&format!("{args:?} stderr"), &out.stderr);
    }
    // The escapes show what is there.
    let shown = stdout(&bounced(d, &["query", "bounces", "--db", "b.db"], &[]));
    assert!(shown.contains("\\x1b"), "{shown}");
    let listed = stdout(&bounced(d, &["query", "messages", "--db", "b.db"], &[]));
    assert!(listed.contains("evil\\x1b]0;name\\x07.eml"), "{listed}");
    // Data for programs keeps the bytes, escaped by their own format.
    let json = bounced(
        d,
        &["query", "bounces", "--db", "b.db", "--format", "jsonl"],
        &[],
    );
    assert!(
        stdout(&json).contains("\\u001b]0;owned\\u0007"),
        "{}",
        stdout(&json)
    );
}

#[test]
fn a_bad_rule_pattern_is_reported_as_written_with_file_rule_and_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    fs::write(d.join("good.eml"), bounce(1)).expect("write");
    fs::write(
        d.join("mine.toml"),
        "[[rule]]\nid = 'local.full'\nreason = 'mailboxfull'\ntext = 'box (is full'\n",
    )
    .expect("rules");
    for args in [
        &["classify", "--rules", "mine.toml", "good.eml"][..],
        &["eval", "--explain", "good.eml", "--rules", "mine.toml"][..],
    ] {
        let out = bounced(d, args, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        for needle in [
            "mine.toml",
            "`local.full`",
            "`box (is full`",
            "unclosed group at character 5",
        ] {
            assert!(err.contains(needle), "{needle} missing: {err}");
        }
        assert!(!err.contains("(?:"), "the rewritten pattern shown: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn classify_of_a_folder_skips_what_is_plainly_not_mail_and_says_so_at_v() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    fs::create_dir(d.join("box")).expect("mkdir");
    fs::write(d.join("box/a.eml"), bounce(1)).expect("write");
    // Judged by content, not by name: mail saved as .json is read, JSON saved as .eml is not.
    fs::write(d.join("box/b.json"), bounce(2)).expect("write");
    fs::write(
        d.join("box/a.expected.json"),
        "[\n  {\"kind\": \"dsn\"}\n]\n",
    )
    .expect("write");
    fs::write(d.join("box/c.eml"), "{\"kind\": \"dsn\"}\n").expect("write");
    fs::write(d.join("box/notes.txt"), "Notes about these bounces.\n").expect("write");
    let out = bounced(d, &["classify", "box"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = stdout(&out);
    let files: Vec<&str> = lines.lines().filter_map(|l| l.split('"').nth(3)).collect();
    assert_eq!(files, ["box/a.eml", "box/b.json"], "{lines}");
    assert_eq!(stderr(&out), "", "nothing said at the default level");
    let verbose = bounced(d, &["-v", "classify", "box"], &[]);
    let said = stderr(&verbose);
    for skipped in ["box/a.expected.json", "box/c.eml", "box/notes.txt"] {
        assert!(
            said.contains(skipped) && said.contains("not a mail message"),
            "{said}"
        );
    }
    // A file named on the command line is always read, and reported.
    let named = bounced(d, &["classify", "box/a.expected.json"], &[]);
    assert!(stdout(&named).contains("not_bounce"), "{}", stdout(&named));
    // The README's example, as written: one line per result, none for the expectation files.
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = bounced(&golden, &["classify", "golden"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.lines().count() >= 79, "{text}");
    assert!(!text.contains(".expected.json"), "{text}");
}

#[test]
fn a_reader_that_stops_reading_is_a_normal_end_for_every_command() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    fs::create_dir(d.join("mail")).expect("mkdir");
    for i in 0..400 {
        fs::write(d.join(format!("mail/{i:03}.eml")), bounce(i)).expect("write");
    }
    // One report about 300 recipients: its explanation is far more than a pipe holds.
    let blocks: String = (0..300)
        .map(|i| {
            format!(
                "Final-Recipient: rfc822; many{i}@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\
                 Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
            )
        })
        .collect();
    let many = bounce(0).replace(
        "Final-Recipient: rfc822; user0@example.com\r\n",
        &format!("{blocks}Final-Recipient: rfc822; user0@example.com\r\n"),
    );
    fs::write(d.join("many.eml"), many).expect("write");
    let made = bounced(d, &["import", "mail", "--db", "b.db"], &[]);
    assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
    let runs: &[&[&str]] = &[
        &["eval", "--explain", "many.eml"],
        &["classify", "mail"],
        &["classify", "--format", "table", "mail"],
        &["query", "bounces", "--db", "b.db"],
        &["export", "--format", "txt", "--db", "b.db"],
        &["stats", "--by", "domain", "--db", "b.db"],
    ];
    for args in runs {
        // `bounced ARGS | head -1`: one line read, then the pipe closed.
        let mut child = Command::new(env!("CARGO_BIN_EXE_bounced"))
            .current_dir(d)
            .args(*args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        assert!(!line.is_empty(), "{args:?} printed nothing");
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}
