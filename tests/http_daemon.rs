//! `bounced run --http`: the real daemon serving its API, metrics and dashboard beside the pipeline,
//! on a real Maildir and database, and on a real Dovecot for the IMAP source's series.
//!
//! Without `dovecot` installed the IMAP test skips with a printed reason, unless
//! `BOUNCED_REQUIRE_DOVECOT=1`.

mod common;
mod http_common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::dovecot::{self, Dovecot, PASSWORD, Probe, s};
use common::{Daemon, DaemonCmd, bounce, deliver, make_maildir};
use http_common::{TOKEN, client, dsn};
use reqwest::StatusCode;
use serde_json::Value;

/// The base URL the daemon logged when it began listening.
fn base_url(d: &Daemon) -> String {
    d.wait_log("HTTP: listening", Duration::from_secs(30));
    let log = d.log();
    let at = log.find("url=http://").expect("url in the log") + "url=".len();
    log[at..]
        .split_whitespace()
        .next()
        .expect("url")
        .trim_end_matches('/')
        .to_owned()
}

/// The value of one series (`name{labels}` exactly as rendered), if present.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn scrape(c: &reqwest::Client, base: &str) -> String {
    let r = c.get(format!("{base}/metrics")).send().await.expect("GET");
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.expect("body")
}

async fn get(c: &reqwest::Client, url: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = c.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("GET");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn token_file(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("tokens");
    fs::write(&p, format!("ops:{TOKEN}\n")).expect("token file");
    p
}

#[test]
fn run_serves_health_auth_metrics_and_each_bounce_within_a_second() {
    common::engines::each(
        "run_serves_health_auth_metrics_and_each_bounce_within_a_second",
        |e| {
            run_serves_health_auth_metrics_and_each_bounce_within_a_second_on(&e);
        },
    );
}

fn run_serves_health_auth_metrics_and_each_bounce_within_a_second_on(
    engine: &common::engines::Engine,
) {
    let tmp = tempfile::tempdir().expect("tmp");
    let md = tmp.path().join("Maildir");
    make_maildir(&md);
    let db = engine.location.clone();
    let tokens = token_file(tmp.path());
    let mut d = DaemonCmd::new(
        &[
            "--maildir",
            &s(&md),
            "--db",
            &s(&db),
            "--http",
            "127.0.0.1:0",
        ],
        &tmp.path().join("run.log"),
    )
    .env("BOUNCED_HTTP_TOKEN_FILE", &s(&tokens))
    .spawn();
    let base = base_url(&d);
    let c = client();
    let rt = rt();
    rt.block_on(async {
        // Ready once the database is open.
        let start = Instant::now();
        loop {
            let r = c.get(format!("{base}/healthz")).send().await.expect("GET");
            if r.status() == StatusCode::OK {
                break;
            }
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(start.elapsed() < Duration::from_secs(20), "never ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        d.wait_log("running", Duration::from_secs(20));

        // Every API route needs the token.
        for route in [
            "/api/v1/stats",
            "/api/v1/check?address=a@example.com",
            "/api/v1/recipients/a@example.com",
            "/api/v1/suppressions",
            "/api/v1/bounces",
        ] {
            let (status, v) = get(&c, &format!("{base}{route}"), None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{route}");
            assert_eq!(v["error"], "unauthorized", "{route}");
            let (status, _) =
                get(&c, &format!("{base}{route}"), Some("not-the-token-at-all")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{route}");
        }
        let (status, _) = get(&c, &format!("{base}/api/v1/stats"), Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);

        let before = scrape(&c, &base).await;
        let label = s(&md);
        assert_eq!(
            metric(
                &before,
                &format!("bounced_source_connected{{source=\"{label}\"}}")
            ),
            Some(1.0),
            "{before}"
        );
        assert_eq!(metric(&before, "bounced_queue_messages"), Some(0.0));
        assert_eq!(
            metric(&before, "bounced_delivery_to_commit_seconds_count"),
            Some(0.0)
        );
        assert!(before.contains("bounced_build_info{version=\""), "{before}");
        assert!(metric(&before, "bounced_db_size_bytes").is_some_and(|v| v > 0.0));

        // Each bounce delivered shows in its recipient's record; time it.
        let mut waits = Vec::new();
        for n in 1..=5 {
            let rcpt = format!("user{n}@example.com");
            let t = Instant::now();
            deliver(&md, &format!("m{n}.host"), bounce(n).as_bytes());
            loop {
                let (status, v) =
                    get(&c, &format!("{base}/api/v1/recipients/{rcpt}"), Some(TOKEN)).await;
                if status == StatusCode::OK {
                    assert_eq!(v["recipient"]["state"], "suppressed", "{v}");
                    assert_eq!(v["bounces"][0]["reason"], "userunknown", "{v}");
                    break;
                }
                assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
                assert!(
                    t.elapsed() < Duration::from_secs(15),
                    "{rcpt} never showed; log:\n{}",
                    d.log()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            waits.push(t.elapsed());
        }
        waits.sort();
        eprintln!("delivery to API answer: {waits:?}");
        assert!(
            waits[2] <= Duration::from_secs(1),
            "the median delivery took more than a second to show: {waits:?}"
        );
        // The same bytes again, under another name: a duplicate.
        deliver(&md, "again.host", bounce(1).as_bytes());
        // A delivery notice, not a failure.
        deliver(
            &md,
            "ok.host",
            dsn(7, "fine@example.org", "delivered", "2.0.0", "250 ok", 0).as_bytes(),
        );
        let start = Instant::now();
        let after = loop {
            let text = scrape(&c, &base).await;
            if metric(
                &text,
                "bounced_messages_processed_total{kind=\"dsn\",outcome=\"duplicate\"}",
            ) == Some(1.0)
                && metric(&text, "bounced_delivery_to_commit_seconds_count") == Some(7.0)
                // A scrape reads the database gauges before it renders the pipeline's counters:
                // a commit landing in between shows in the counters first.
                && metric(&text, "bounced_db_messages{kind=\"dsn\"}") == Some(6.0)
            {
                break text;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "the counts did not move:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for (series, want) in [
            (
                "bounced_messages_processed_total{kind=\"dsn\",outcome=\"new\"}",
                6.0,
            ),
            (
                "bounced_bounces_processed_total{type=\"hard\",reason=\"userunknown\"}",
                5.0,
            ),
            ("bounced_suppressions_total{cause=\"hard\"}", 5.0),
            ("bounced_db_suppressed_recipients{cause=\"hard\"}", 5.0),
            ("bounced_db_messages{kind=\"dsn\"}", 6.0),
            ("bounced_queue_messages", 0.0),
            (
                &format!("bounced_source_lag_seconds{{source=\"{label}\"}}"),
                0.0,
            ),
            (
                &format!("bounced_source_reconnects_total{{source=\"{label}\"}}"),
                0.0,
            ),
        ] {
            assert_eq!(metric(&after, series), Some(want), "{series} in:\n{after}");
        }
        let commits = metric(&after, "bounced_batch_commit_duration_seconds_count").unwrap_or(0.0);
        assert!((1.0..=7.0).contains(&commits), "{after}");
        assert_eq!(
            metric(
                &after,
                "bounced_batch_commit_duration_seconds_bucket{le=\"+Inf\"}"
            ),
            Some(commits)
        );
        // Every message waited less than a minute from its file's mtime to its commit.
        assert_eq!(
            metric(
                &after,
                "bounced_delivery_to_commit_seconds_bucket{le=\"60\"}"
            ),
            Some(7.0),
            "{after}"
        );
        // The HTTP requests of this test were counted, by route pattern, never by address.
        assert!(
            metric(
                &after,
                "bounced_http_requests_total{route=\"/api/v1/recipients/{address}\",status=\"200\"}"
            )
            .is_some_and(|v| v >= 5.0),
            "{after}"
        );
        assert!(!after.contains("user1@example.com"), "{after}");
    });

    assert_eq!(d.stop(Duration::from_secs(20)), 0, "{}", d.log());
    // The server went with the daemon.
    assert!(std::net::TcpStream::connect(base.trim_start_matches("http://")).is_err());
}

#[test]
fn the_http_section_token_file_and_exposure() {
    let tmp = tempfile::tempdir().expect("tmp");
    let md = tmp.path().join("Maildir");
    make_maildir(&md);
    let db = tmp.path().join("b.db");
    let tokens = token_file(tmp.path());
    let conf = tmp.path().join("bounced.toml");
    fs::write(
        &conf,
        format!(
            "[store]\npath = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n\n[[maildir]]\npath = \"{}\"\n",
            s(&db),
            s(&tokens),
            s(&md)
        ),
    )
    .expect("config");
    // An [http] section is enough: no --http needed.
    let mut d = DaemonCmd::new(&["--config", &s(&conf)], &tmp.path().join("a.log")).spawn();
    let base = base_url(&d);
    let c = client();
    rt().block_on(async {
        d.wait_log("running", Duration::from_secs(20));
        let url = format!("{base}/api/v1/check?address=Someone@Example.com");
        assert_eq!(get(&c, &url, None).await.0, StatusCode::UNAUTHORIZED);
        let (status, v) = get(&c, &url, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["address"], "Someone@example.com");
        assert_eq!(v["suppressed"], false);
    });
    assert_eq!(d.stop(Duration::from_secs(20)), 0);

    // Without --http nor an [http] section, nothing listens.
    let mut d = DaemonCmd::new(
        &["--maildir", &s(&md), "--db", &s(&db)],
        &tmp.path().join("b.log"),
    )
    .spawn();
    d.wait_log("running", Duration::from_secs(20));
    assert_eq!(d.count("HTTP"), 0, "{}", d.log());
    assert_eq!(d.stop(Duration::from_secs(20)), 0);

    // Beyond loopback without a token: refused before anything starts.
    let mut d = DaemonCmd::new(
        &["--maildir", &s(&md), "--db", &s(&db), "--http", "0.0.0.0:0"],
        &tmp.path().join("c.log"),
    )
    .spawn();
    assert_eq!(d.wait_exit(Duration::from_secs(20)), 2, "{}", d.log());
    assert!(d.log().contains("without a token"), "{}", d.log());
}

#[test]
fn imap_connection_idle_and_reconnects_in_the_metrics() {
    if !dovecot::available("imap_connection_idle_and_reconnects_in_the_metrics") {
        return;
    }
    let mut dc = Dovecot::start();
    let db = dc.path("b.db");
    let pw = dc.path("imap-password");
    fs::write(&pw, format!("{PASSWORD}\n")).expect("password file");
    let conf = dc.path("bounced.toml");
    fs::write(
        &conf,
        format!(
            "[store]\npath = \"{}\"\n\n[[imap]]\nname = \"t\"\nhost = \"127.0.0.1\"\nport = {}\n\
security = \"plain\"\nusername = \"{}\"\npassword_file = \"{}\"\n\
reconnect_initial = \"50ms\"\nreconnect_max = \"300ms\"\n",
            s(&db),
            dc.port,
            dovecot::USER,
            s(&pw)
        ),
    )
    .expect("config");
    let mut d = DaemonCmd::new(
        &["--config", &s(&conf), "--http", "127.0.0.1:0"],
        &dc.path("run.log"),
    )
    .spawn();
    let base = base_url(&d);
    let c = client();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let connected = "bounced_source_connected{source=\"imap:t/INBOX\"}";
    let idle = "bounced_source_last_idle_timestamp_seconds{source=\"imap:t/INBOX\"}";
    let reconnects = "bounced_source_reconnects_total{source=\"imap:t/INBOX\"}";
    let new = "bounced_messages_processed_total{kind=\"dsn\",outcome=\"new\"}";
    let wait = |what: &str, check: &dyn Fn(&str) -> bool| -> String {
        let start = Instant::now();
        loop {
            let text = rt.block_on(scrape(&c, &base));
            if check(&text) {
                return text;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{what} never showed:\n{text}\nlog:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let first = wait("connected and in IDLE", &|t| {
        metric(t, connected) == Some(1.0) && metric(t, idle).is_some()
    });
    let idle_at = metric(&first, idle).unwrap_or(0.0);
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - idle_at).abs() < 60.0, "IDLE at {idle_at}, now {now}");
    assert_eq!(metric(&first, reconnects), Some(0.0));

    // Mail arrives: the counts move.
    let mut probe = rt.block_on(Probe::connect(dc.port));
    for n in 0..3 {
        rt.block_on(probe.append("INBOX", bounce(100 + n).as_bytes()));
    }
    rt.block_on(probe.close());
    let text = wait("three messages", &|t| metric(t, new) == Some(3.0));
    assert_eq!(
        metric(&text, "bounced_delivery_to_commit_seconds_count"),
        Some(3.0)
    );
    // Dated by INTERNALDATE, the arrival at the server: well under a minute before the commit.
    assert_eq!(
        metric(
            &text,
            "bounced_delivery_to_commit_seconds_bucket{le=\"60\"}"
        ),
        Some(3.0),
        "{text}"
    );

    // The server goes away: disconnected, reconnects counted; back: connected again.
    dc.stop();
    wait("the lost connection", &|t| {
        metric(t, connected) == Some(0.0) && metric(t, reconnects).is_some_and(|n| n >= 1.0)
    });
    dc.restart();
    wait("the new connection", &|t| metric(t, connected) == Some(1.0));
    assert_eq!(d.stop(Duration::from_secs(20)), 0, "{}", d.log());
}
