//! Addresses at the edges, on the real binary: what `suppress`, `unsuppress` and `query` accept and
//! refuse, and a quoted local part read from a DSN, stored and found again.

use std::path::Path;
use std::process::{Command, Output};

fn bounced(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bounced"))
        .args(args)
        .current_dir(dir)
        .env_remove("BOUNCED_DB")
        .env_remove("BOUNCED_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run bounced: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A DSN whose recipient has a local part that needs quotes.
const QUOTED_DSN: &str = "From: Mail Delivery System <mailer-daemon@mx.example.org>\n\
To: news-bounces@example.org\n\
Subject: Undelivered Mail Returned to Sender\n\
Message-ID: <dsn-quoted@mx.example.org>\n\
MIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\n\
\n\
--b1\n\
Content-Type: text/plain\n\
\n\
<\"hana..mori\"@example.org>: host mx.example.org[192.0.2.7] said: 550 5.1.1\n\
    <\"hana..mori\"@example.org>: Recipient address rejected: User unknown\n\
--b1\n\
Content-Type: message/delivery-status\n\
\n\
Reporting-MTA: dns; mx.example.org\n\
\n\
Final-Recipient: rfc822; \"hana..mori\"@Example.ORG\n\
Original-Recipient: rfc822;hana..mori@example.org\n\
Action: failed\n\
Status: 5.1.1\n\
Diagnostic-Code: smtp; 550 5.1.1 <\"hana..mori\"@example.org>: Recipient address rejected: User unknown\n\
--b1--\n";

#[test]
fn suppress_refuses_what_is_not_a_mailbox_and_says_why() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (bad, why) in [
        ("a@b@c", "`@c` follows the address"),
        ("a b@example.com", "quote it"),
        ("no-at-sign", "no `@`"),
        ("@example.com", "local part"),
    ] {
        // Each address gets its line on standard output; a refusal makes the exit code 1.
        let o = bounced(dir.path(), &["suppress", bad, "--db", "t.db"]);
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(
            out.contains(bad) && out.contains("refused") && out.contains(why),
            "{bad}: the refusal does not say why: {out}"
        );
    }
    let o = bounced(dir.path(), &["export", "--format", "txt", "--db", "t.db"]);
    assert!(
        !stdout(&o).contains("a@b@c"),
        "a refused address was exported: {}",
        stdout(&o)
    );
}

#[test]
fn quoted_local_parts_are_accepted_stored_quoted_and_found() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let o = bounced(
        dir.path(),
        &["suppress", "\"john smith\"@Example.com", "--db", "t.db"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "\"john smith\"@example.com suppressed");

    let o = bounced(dir.path(), &["export", "--format", "txt", "--db", "t.db"]);
    assert_eq!(stdout(&o).trim(), "\"john smith\"@example.com");

    // The same mailbox written with a comment and in brackets is the same recipient.
    let o = bounced(
        dir.path(),
        &[
            "query",
            "recipient",
            "<\"john smith\"@EXAMPLE.com> (from the list)",
            "--db",
            "t.db",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("suppressed"), "{}", stdout(&o));

    let o = bounced(
        dir.path(),
        &["unsuppress", "\"john smith\"@example.com", "--db", "t.db"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = bounced(dir.path(), &["unsuppress", "x@y@z", "--db", "t.db"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("x@y@z refused"), "{}", stdout(&o));
    let o = bounced(dir.path(), &["query", "recipient", "x@y@z", "--db", "t.db"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not an address"), "{}", stderr(&o));
}

#[test]
fn a_quoted_final_recipient_is_classified_imported_and_queried() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("quoted.eml"), QUOTED_DSN).unwrap_or_else(|e| panic!("{e}"));

    let o = bounced(dir.path(), &["classify", "quoted.eml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let row: serde_json::Value =
        serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    assert_eq!(row["recipient"], "\"hana..mori\"@example.org");
    assert_eq!(row["bounce_type"], "hard");

    let o = bounced(dir.path(), &["import", "quoted.eml", "--db", "t.db"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = bounced(
        dir.path(),
        &[
            "query",
            "recipient",
            "\"hana..mori\"@example.org",
            "--db",
            "t.db",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("\"hana..mori\"@example.org") && out.contains("suppressed"),
        "{out}"
    );
    // The obsolete unquoted spelling names the same mailbox.
    let o = bounced(
        dir.path(),
        &[
            "query",
            "recipient",
            "hana..mori@example.org",
            "--db",
            "t.db",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
