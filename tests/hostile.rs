//! Hostile messages through the real ingestion path: a Maildir watched by the daemon, a SQLite file
//! in a temporary folder. Each ends with a correct result, or with a recorded error and the file in
//! quarantine; never a crash, and within a bound of time and memory. Cases run one at a time; the
//! peak RSS of each is measured from a reset high-water mark (`/proc/self/clear_refs`) after freed
//! memory has been handed back to the system (`malloc_trim`), so it is that case's own.

#![allow(unsafe_code)]

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bounced::Classifier;
use bounced::config::{DaemonConfig, HumanDuration, MaildirConfig};
use bounced::daemon::{self, Settings, Sources};
use bounced::store::{Store, StoreOptions};
use common::{make_maildir, names, read_db, recorded, wait_for};

/// One case at a time, so that the peak RSS measured around a case is that case's.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs one case alone (the others wait), after a panic of another case too.
fn isolated(name: &str, case: impl FnOnce()) {
    let _one = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    eprintln!("{name}:");
    case();
}

/// What became of one hostile message.
#[derive(Debug)]
struct Ingested {
    kind: String,
    error: Option<String>,
    reasons: Vec<String>,
    quarantined: usize,
    processed: usize,
    elapsed: Duration,
    /// Resident set before the case, in MiB.
    base_mib: u64,
    /// Peak resident set while the case ran, in MiB.
    peak_mib: u64,
}

fn rss_kib(field: &str) -> u64 {
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

/// Strings of one column for a query on the database file.
fn db_strings(db: &Path, sql: &'static str) -> Vec<Option<String>> {
    read_db(db, async |pool| {
        sqlx::query_scalar(sql)
            .fetch_all(pool)
            .await
            .expect("query")
    })
    .expect("open db")
}

/// Delivers one file with `write` (given the Maildir's `tmp/` path to fill), runs the daemon until it
/// is recorded, and reports what became of it.
fn ingest(write: impl FnOnce(&Path)) -> Ingested {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = tmp.path().join("Maildir");
    make_maildir(&md);
    let staged = md.join("tmp").join("hostile.host");
    write(&staged);
    fs::rename(&staged, md.join("new").join("hostile.host")).expect("deliver");
    let db = tmp.path().join("b.db");

    // The rule table is compiled before the clock starts: the case is the message, not the start-up.
    let classifier = Arc::new(Classifier::new());
    // SAFETY: malloc_trim only returns free heap memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    let base = rss_kib("VmRSS:");
    let _ = fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt
        .block_on(Store::open(&db, StoreOptions::default()))
        .expect("open store");
    let settings = Settings::from_config(&DaemonConfig {
        shutdown_grace: HumanDuration(Duration::from_secs(10)),
        workers: 1,
        ..DaemonConfig::default()
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = rt.spawn(daemon::run(
        settings,
        store.clone(),
        classifier,
        Sources {
            maildirs: vec![MaildirConfig::at(md.clone())],
            imaps: Vec::new(),
            notify: Vec::new(),
        },
        async {
            let _ = stop_rx.await;
        },
        || {},
    ));
    wait_for(Duration::from_secs(25), "the message recorded", || {
        recorded(&db) == 1
    });
    wait_for(Duration::from_secs(5), "the message acknowledged", || {
        names(&md, "new").is_empty()
    });
    let _ = stop_tx.send(());
    let summary = rt.block_on(run).expect("join").expect("daemon run");
    rt.block_on(store.close());
    drop(rt);
    let elapsed = started.elapsed();
    let peak = rss_kib("VmHWM:");
    assert_eq!(summary.recorded, 1);

    let kind = db_strings(&db, "select kind from messages")
        .into_iter()
        .flatten()
        .next()
        .unwrap_or_default();
    let error = db_strings(&db, "select error from messages")
        .into_iter()
        .flatten()
        .next();
    let reasons = db_strings(&db, "select reason from bounces order by position")
        .into_iter()
        .flatten()
        .collect();
    Ingested {
        kind,
        error,
        reasons,
        quarantined: names(&md.join(".Quarantine"), "cur").len(),
        processed: names(&md, "cur").len(),
        elapsed,
        base_mib: base / 1024,
        peak_mib: peak / 1024,
    }
}

fn ingest_bytes(bytes: &[u8]) -> Ingested {
    ingest(|p| fs::write(p, bytes).expect("write message"))
}

/// The case ended in a recorded error and the file in quarantine.
fn assert_quarantined(got: &Ingested, wording: &str) {
    assert_eq!(got.kind, "error", "{got:?}");
    let error = got.error.as_deref().unwrap_or("");
    assert!(error.contains(wording), "error {error:?} lacks {wording:?}");
    assert_eq!(got.quarantined, 1, "{got:?}");
    assert_eq!(got.processed, 0, "{got:?}");
}

/// The case ended in a recorded result and the file marked processed.
fn assert_processed(got: &Ingested) {
    assert_ne!(got.kind, "error", "{got:?}");
    assert_eq!(got.quarantined, 0, "{got:?}");
    assert_eq!(got.processed, 1, "{got:?}");
}

fn assert_bounded(got: &Ingested, secs: u64, mib: u64) {
    let growth = got.peak_mib.saturating_sub(got.base_mib);
    eprintln!(
        "  kind {}, elapsed {:?}, peak RSS {} MiB ({} MiB over the {} MiB before)",
        got.kind, got.elapsed, got.peak_mib, growth, got.base_mib
    );
    assert!(
        got.elapsed < Duration::from_secs(secs),
        "took {:?}",
        got.elapsed
    );
    assert!(growth < mib, "peak RSS grew by {growth} MiB");
}

const HEAD: &str = "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n\
To: list-bounces@example.org\n\
Subject: Undelivered Mail Returned to Sender\n\
Date: Mon, 23 Nov 2026 10:00:00 +0000\n\
Message-ID: <hostile@mx.example.net>\n\
MIME-Version: 1.0\n";

/// A DSN whose status part holds `blocks` (already formatted), with `extra` headers.
fn dsn(extra: &str, text: &str, blocks: &str) -> Vec<u8> {
    format!(
        "{HEAD}{extra}Content-Type: multipart/report; report-type=delivery-status; boundary=\"rpt\"\n\n\
--rpt\nContent-Type: text/plain; charset=us-ascii\n\n{text}\n\n\
--rpt\nContent-Type: message/delivery-status\n\n\
Reporting-MTA: dns; mx.example.net\n\n{blocks}\n\
--rpt--\n"
    )
    .into_bytes()
}

const USER_UNKNOWN: &str = "Final-Recipient: rfc822; gone@example.com\n\
Action: failed\nStatus: 5.1.1\n\
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown\n";

#[test]
fn ten_thousand_nested_multiparts() {
    isolated("ten_thousand_nested_multiparts", || {
        const DEPTH: usize = 10_000;
        let mut m = String::from(HEAD);
        m.push_str("Content-Type: multipart/mixed; boundary=\"n0\"\n\n");
        for i in 0..DEPTH {
            m.push_str(&format!(
                "--n{i}\nContent-Type: multipart/mixed; boundary=\"n{}\"\n\n",
                i + 1
            ));
        }
        m.push_str(&format!(
            "--n{DEPTH}\nContent-Type: text/plain\n\n550 5.1.1 <deep@example.com>: user unknown\n"
        ));
        for i in (0..=DEPTH).rev() {
            m.push_str(&format!("--n{i}--\n"));
        }
        let got = ingest_bytes(m.as_bytes());
        assert_quarantined(&got, "nested");
        assert_bounded(&got, 15, 150);
    });
}

#[test]
fn ten_thousand_nested_messages() {
    isolated("ten_thousand_nested_messages", || {
        const DEPTH: usize = 10_000;
        let mut m = String::from(HEAD);
        for _ in 0..DEPTH {
            m.push_str("Content-Type: message/rfc822\n\nFrom: a@example.org\n");
        }
        m.push_str("Subject: innermost\n\nhello\n");
        let got = ingest_bytes(m.as_bytes());
        assert_quarantined(&got, "nested");
        assert_bounded(&got, 15, 150);
    });
}

#[test]
fn a_hundred_thousand_recipient_blocks() {
    isolated("a_hundred_thousand_recipient_blocks", || {
        let mut blocks = String::new();
        for i in 0..100_000 {
            blocks.push_str(&format!(
                "Final-Recipient: rfc822;u{i}@example.com\nAction: failed\nStatus: 5.1.1\n\n"
            ));
        }
        let got = ingest_bytes(&dsn("", "Delivery failed.", &blocks));
        assert_quarantined(&got, "recipients");
        assert_bounded(&got, 20, 300);
    });
}

#[test]
fn one_megabyte_header_lines() {
    isolated("one_megabyte_header_lines", || {
        let long = "x".repeat(1024 * 1024);
        let folded = "word ".repeat(200 * 1024);
        let extra =
            format!("X-Long: {long}\nX-Folded: {folded}\nReferences: <{long}@example.net>\n");
        let got = ingest_bytes(&dsn(&extra, "Delivery failed.", USER_UNKNOWN));
        assert_processed(&got);
        assert_eq!(got.reasons, ["userunknown"]);
        assert_bounded(&got, 15, 200);
    });
}

#[test]
fn a_one_megabyte_diagnostic_line() {
    isolated("a_one_megabyte_diagnostic_line", || {
        let block = format!(
            "Final-Recipient: rfc822; gone@example.com\nAction: failed\nStatus: 5.1.1\n\
    Diagnostic-Code: smtp; 550 5.1.1 user unknown {}\n",
            "y".repeat(1024 * 1024)
        );
        let got = ingest_bytes(&dsn("", "Delivery failed.", &block));
        assert_processed(&got);
        assert_eq!(got.reasons, ["userunknown"]);
        assert_bounded(&got, 15, 200);
    });
}

#[test]
fn a_two_hundred_megabyte_message_is_refused_unread() {
    isolated("a_two_hundred_megabyte_message_is_refused_unread", || {
        let got = ingest(|p| {
            let mut f = fs::File::create(p).expect("create");
            f.write_all(&dsn("", "Delivery failed.", USER_UNKNOWN))
                .expect("write head");
            // Sparse: the size is 200 MB, the disk holds a few blocks.
            f.set_len(200 * 1024 * 1024).expect("set_len");
        });
        assert_quarantined(&got, "over the limit");
        // Reading or hashing 200 MB would show in both.
        assert_bounded(&got, 5, 40);
    });
}

#[test]
fn invalid_utf8_and_unknown_charsets() {
    isolated("invalid_utf8_and_unknown_charsets", || {
        let mut m = Vec::new();
        m.extend_from_slice(HEAD.as_bytes());
        m.extend_from_slice(b"Subject: =?x-no-such-charset?B?/////w==?= \xff\xfe\n");
        m.extend_from_slice(
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"rpt\"\n\n\
    --rpt\nContent-Type: text/plain; charset=x-no-such-charset\n\n\xc3\x28 \xa0\xa1 \xf0\x28\x8c\xbc delivery failed\n\
    --rpt\nContent-Type: message/delivery-status; charset=x-unknown-9\n\n\
    Reporting-MTA: dns; mx.example.net\n\n\
    Final-Recipient: rfc822; gone@example.com\nAction: failed\nStatus: 5.1.1\n\
    Diagnostic-Code: smtp; 550 5.1.1 \xff\xfe\xfd user unknown \xed\xa0\x80\n\n\
    --rpt--\n",
        );
        let got = ingest_bytes(&m);
        assert_processed(&got);
        assert_eq!(got.reasons, ["userunknown"]);
        assert_bounded(&got, 10, 100);
    });
}

#[test]
fn malformed_base64_and_quoted_printable() {
    isolated("malformed_base64_and_quoted_printable", || {
        let m = format!(
            "{HEAD}Content-Type: multipart/report; report-type=delivery-status; boundary=\"rpt\"\n\n\
    --rpt\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n\
    !!!!not*base64@@@@\n====\nQUJD\x01RA=\n\n\
    --rpt\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n\
    =ZZ=\n=0=\n=E4=\n=\n\n\
    --rpt\nContent-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n\
    {}%%%%\n\n\
    --rpt--\n",
            "UmVwb3J0aW5nLU1UQTogZG5zOyBteC5leGFtcGxlLm5ldAoKRmluYWwtUmVjaXBpZW50OiByZmM4MjI7IGdvbmVAZXhhbXBsZS5jb20KQWN0aW9uOiBmYWlsZWQKU3RhdHVzOiA1LjEuMQo"
        );
        let got = ingest_bytes(m.as_bytes());
        assert_processed(&got);
        assert!(
            got.reasons.is_empty() || got.reasons == ["userunknown"],
            "{got:?}"
        );
        assert_bounded(&got, 10, 100);
    });
}

#[test]
fn nul_bytes_everywhere() {
    isolated("nul_bytes_everywhere", || {
        let mut m = dsn(
            "X-Nul: a\0b\n",
            "Delivery\0 failed.\0",
            "Final-Recipient: rfc822; gone@example.com\nAction: failed\0\nStatus: 5.1.1\n\
    Diagnostic-Code: smtp; 550 5.1.1 user\0 unknown\n",
        );
        m.extend_from_slice(&[0u8; 4096]);
        let got = ingest_bytes(&m);
        assert_processed(&got);
        assert_eq!(got.reasons.len(), 1, "{got:?}");
        assert_bounded(&got, 10, 100);
    });
}

/// A small but well-formed zip archive (one stored file), built here.
fn zip_bytes() -> Vec<u8> {
    let data = b"hello from a zip file\n";
    let name = b"hello.txt";
    let crc = crc32(data);
    let mut z = Vec::new();
    let local = |z: &mut Vec<u8>| {
        z.extend_from_slice(b"PK\x03\x04\x0a\x00\x00\x00\x00\x00\x00\x00\x21\x00");
        z.extend_from_slice(&crc.to_le_bytes());
        z.extend_from_slice(&(data.len() as u32).to_le_bytes());
        z.extend_from_slice(&(data.len() as u32).to_le_bytes());
        z.extend_from_slice(&(name.len() as u16).to_le_bytes());
        z.extend_from_slice(&0u16.to_le_bytes());
        z.extend_from_slice(name);
        z.extend_from_slice(data);
    };
    local(&mut z);
    let central = z.len() as u32;
    z.extend_from_slice(b"PK\x01\x02\x14\x00\x0a\x00\x00\x00\x00\x00\x00\x00\x21\x00");
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&(data.len() as u32).to_le_bytes());
    z.extend_from_slice(&(data.len() as u32).to_le_bytes());
    z.extend_from_slice(&(name.len() as u16).to_le_bytes());
    z.extend_from_slice(&[0u8; 12]);
    z.extend_from_slice(&0u32.to_le_bytes());
    z.extend_from_slice(name);
    let size = z.len() as u32 - central;
    z.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00");
    z.extend_from_slice(&size.to_le_bytes());
    z.extend_from_slice(&central.to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_zip_file_delivered_as_a_message() {
    isolated("a_zip_file_delivered_as_a_message", || {
        let got = ingest_bytes(&zip_bytes());
        // Not an Internet message: recorded as an error and set aside, or read as nothing at all.
        if got.kind == "error" {
            assert_quarantined(&got, "not an Internet message");
        } else {
            assert_processed(&got);
            assert_eq!(got.kind, "not_bounce");
        }
        assert_bounded(&got, 10, 100);
    });
}

#[test]
fn a_pdf_delivered_as_a_message() {
    isolated("a_pdf_delivered_as_a_message", || {
        let mut pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
    2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n3 0 obj\n<< /Length 64 /Filter /FlateDecode >>\nstream\n"
            .to_vec();
        pdf.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        pdf.extend_from_slice(b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n");
        let got = ingest_bytes(&pdf);
        if got.kind == "error" {
            assert_quarantined(&got, "not an Internet message");
        } else {
            assert_processed(&got);
            assert_eq!(got.kind, "not_bounce");
        }
        assert_bounded(&got, 10, 100);
    });
}

#[test]
fn a_megabyte_of_near_matches_for_the_rules() {
    isolated("a_megabyte_of_near_matches_for_the_rules", || {
        // Fragments that start many rule patterns and the code parsers without completing them.
        let pieces = [
            "user unknow ",
            "mailbox ful ",
            "no such use ",
            "550 5.1.",
            "5.7.",
            "quota exceede",
            "said: 55",
            "<<< 5",
            "host not foun ",
            "relay access denie ",
            "spam detecte ",
            "blacklisted b ",
            "over quot ",
            "((((((((",
            "[[[[",
            "4.4.",
        ];
        let mut diag = String::with_capacity(1024 * 1024 + 64);
        let mut i = 0;
        while diag.len() < 1024 * 1024 {
            diag.push_str(pieces[i % pieces.len()]);
            i += 1;
        }
        let block = format!(
            "Final-Recipient: rfc822; gone@example.com\nAction: failed\nStatus: 5.0.0\n\
    Diagnostic-Code: smtp; {diag}\n"
        );
        let got = ingest_bytes(&dsn("", &diag, &block));
        assert_processed(&got);
        assert_eq!(got.reasons.len(), 1, "{got:?}");
        assert_bounded(&got, 20, 200);
    });
}

#[test]
fn many_recipients_over_a_long_explanation() {
    isolated("many_recipients_over_a_long_explanation", || {
        // Recipients whose blocks say nothing specific send the reader looking for each one's
        // paragraph in the text: that search must not grow with recipients times text.
        let mut blocks = String::new();
        for i in 0..2000 {
            blocks.push_str(&format!(
                "Final-Recipient: rfc822; r{i}@example.com\nAction: failed\nStatus: 5.0.0\n\n"
            ));
        }
        let mut text = String::with_capacity(2 * 1024 * 1024);
        while text.len() < 2 * 1024 * 1024 {
            text.push_str("The mail system could not deliver the message to a recipient here.\n");
        }
        text.push_str("r1999@example.com: 550 5.1.1 user unknown\n");
        let got = ingest_bytes(&dsn("", &text, &blocks));
        assert_processed(&got);
        assert_eq!(got.reasons.len(), 2000);
        assert_bounded(&got, 20, 250);
    });
}

#[test]
fn a_text_report_with_thousands_of_recipients() {
    isolated("a_text_report_with_thousands_of_recipients", || {
        // A Postfix-style report without a status part: one paragraph per recipient, then a long
        // tail; every reader that looks for addresses in the text gets its chance at it.
        let mut m = String::from(
            "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n\
To: list-bounces@example.org\n\
Subject: Undelivered Mail Returned to Sender\n\
Message-ID: <text-many@mx.example.net>\n\
\n\
This is the mail system at host mx.example.net.\n\n\
I'm sorry to have to inform you that your message could not\n\
be delivered to one or more recipients.\n\n",
        );
        for i in 0..1900 {
            m.push_str(&format!(
                "<t{i}@example.com>: host mx.example.com[192.0.2.1] said: 550 5.1.1\n    <t{i}@example.com>: Recipient address rejected: User unknown (in reply\n    to RCPT TO command)\n\n"
            ));
        }
        while m.len() < 2 * 1024 * 1024 {
            m.push_str("Nothing to see in this line of the report, t1@example.com or otherwise.\n");
        }
        let got = ingest_bytes(m.as_bytes());
        assert_processed(&got);
        assert_eq!(got.reasons.len(), 1900);
        assert!(got.reasons.iter().all(|r| r == "userunknown"), "{got:?}");
        assert_bounded(&got, 20, 250);
    });
}

#[test]
fn a_long_line_of_addresses() {
    isolated("a_long_line_of_addresses", || {
        // A report of no known shape naming one address thousands of times on one line: every
        // mention once sent the reader over the rest of the line (minutes for 300 KB).
        let list = "a@example.com,".repeat(20_000);
        let m = format!(
            "From: MAILER-DAEMON@mx.example.net\nSubject: failure notice\n\
Message-ID: <addresses@mx.example.net>\n\n{list}\n"
        );
        let got = ingest_bytes(m.as_bytes());
        assert_processed(&got);
        assert!(got.reasons.len() <= 1, "{got:?}");
        assert_bounded(&got, 10, 100);
    });
}
