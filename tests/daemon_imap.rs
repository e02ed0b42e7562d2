//! The daemon against a real Dovecot started by each test on 127.0.0.1: messages already there,
//! APPENDs picked up by IDLE (latency measured), TLS with a self-signed certificate, the server
//! stopped and started mid-run, SIGTERM mid-stream, and a UIDVALIDITY change.
//!
//! Without `dovecot` installed the tests skip with a printed reason, unless `BOUNCED_REQUIRE_DOVECOT=1`.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bounced::Classifier;
use bounced::config::Config;
use bounced::daemon::{self, DaemonError, Settings, Sources, Summary};
use bounced::store::{Store, StoreOptions};
use common::dovecot::{self, Dovecot, PASSWORD, Probe, s};
use common::*;

fn runtime() -> tokio::runtime::Runtime {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .with(
            tracing_subscriber::filter::Targets::new().with_target("bounced", tracing::Level::INFO),
        )
        .try_init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The daemon running in this process on one `[[imap]]` section.
struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<Summary, DaemonError>>,
    store: Store,
}

fn start(rt: &tokio::runtime::Runtime, db: &Path, imap_toml: &str) -> Running {
    let cfg = Config::parse(imap_toml, Path::new("test.toml")).expect("config");
    let imaps = cfg
        .imap
        .iter()
        .map(|i| (i.clone(), i.password().expect("password")))
        .collect();
    let store = rt
        .block_on(Store::open(db, StoreOptions::default()))
        .expect("store");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = rt.spawn(daemon::run(
        Settings::from_config(&cfg.daemon),
        store.clone(),
        Arc::new(Classifier::new()),
        Sources {
            maildirs: Vec::new(),
            imaps,
            notify: Vec::new(),
        },
        async {
            let _ = rx.await;
        },
        || {},
    ));
    Running {
        stop: Some(tx),
        handle,
        store,
    }
}

impl Running {
    fn finish(mut self, rt: &tokio::runtime::Runtime) -> Summary {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let summary = rt.block_on(self.handle).expect("join").expect("daemon run");
        rt.block_on(self.store.close());
        summary
    }
}

fn imap_section(dc: &Dovecot, extra: &str) -> String {
    let pw = dc.path("imap-password");
    fs::write(&pw, format!("{PASSWORD}\n")).expect("password file");
    format!(
        "[daemon]\nshutdown_grace = \"20s\"\n\n[[imap]]\nname = \"t\"\nhost = \"127.0.0.1\"\n\
port = {}\nsecurity = \"plain\"\nusername = \"{}\"\npassword_file = \"{}\"\n\
reconnect_initial = \"50ms\"\nreconnect_max = \"500ms\"\n{extra}\n",
        dc.port,
        dovecot::USER,
        s(&pw)
    )
}

fn p99(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    (at(0.5), at(0.99), v.last().copied().unwrap_or_default())
}

#[test]
fn existing_messages_then_appends_picked_up_by_idle() {
    if !dovecot::available("existing_messages_then_appends_picked_up_by_idle") {
        return;
    }
    engines::each("existing_messages_then_appends_picked_up_by_idle", |e| {
        existing_messages_then_appends_picked_up_by_idle_on(&e)
    });
}

fn existing_messages_then_appends_picked_up_by_idle_on(engine: &engines::Engine) {
    let dc = Dovecot::start();
    for i in 0..20 {
        dc.deliver_file(&format!("pre{i}.host"), bounce(i).as_bytes());
    }
    let rt = runtime();
    let db = database(engine, &dc);
    // Polling once an hour: only IDLE can pick up the APPENDs within the test's time.
    let cfg = imap_section(
        &dc,
        "poll_interval = \"1h\"\nidle_renew = \"29m\"\nprocessed_mailbox = \"Processed\"",
    );
    let run = start(&rt, &db, &cfg);
    wait_for(Duration::from_secs(20), "20 existing messages", || {
        recorded(&db) == 20
    });

    let mut probe = rt.block_on(Probe::connect(dc.port));
    let mut latencies = Vec::new();
    for i in 0..10 {
        let t0 = Instant::now();
        rt.block_on(probe.append("INBOX", bounce(100 + i).as_bytes()));
        let want = 21 + i as i64;
        wait_for(Duration::from_secs(10), "an appended message", || {
            recorded(&db) == want
        });
        latencies.push(t0.elapsed());
    }
    // A burst, all while the daemon idles.
    for i in 0..40 {
        rt.block_on(probe.append("INBOX", bounce(200 + i).as_bytes()));
    }
    wait_for(Duration::from_secs(20), "70 messages", || {
        recorded(&db) == 70
    });
    wait_for(
        Duration::from_secs(10),
        "INBOX emptied into Processed",
        || rt.block_on(probe.count("INBOX")) == 0,
    );
    assert_eq!(rt.block_on(probe.count("Processed")), 70);
    assert_eq!(rt.block_on(probe.search("Processed", "UNSEEN")), 0);
    rt.block_on(probe.close());
    let summary = run.finish(&rt);
    assert_eq!(summary.recorded, 70);
    assert_eq!(summary.duplicates, 0);
    assert_eq!(
        db_int(&db, "select count(distinct sha256) from messages"),
        70
    );
    assert_eq!(
        db_int(
            &db,
            "select count(*) from messages where source like 'imap:t/INBOX/%'"
        ),
        70
    );
    assert_eq!(
        db_int(
            &db,
            "select last_uid from source_state where source = 'imap:t/INBOX'"
        ),
        70
    );
    let (p50, p99, max) = p99(latencies);
    eprintln!(
        "IDLE append-to-commit latency over 10 appends: p50 {p50:?}, p99 {p99:?}, max {max:?}"
    );
    // Dovecot announces new mail about 0.5 s after the APPEND; polling would take an hour.
    assert!(max < Duration::from_secs(5), "max latency {max:?}");
    assert!(dc.log_errors().is_empty(), "{:?}", dc.log_errors());
}

#[test]
fn tls_with_a_self_signed_certificate() {
    if !dovecot::available("tls_with_a_self_signed_certificate") {
        return;
    }
    let dc = Dovecot::start();
    for i in 0..5 {
        dc.deliver_file(&format!("t{i}.host"), bounce(i).as_bytes());
    }
    let rt = runtime();
    let db = dc.path("b.db");
    let base = imap_section(&dc, "");
    let tls = |name: &str, extra: &str| {
        base.replace("name = \"t\"", &format!("name = \"{name}\""))
            .replace(
                &format!("port = {}", dc.port),
                &format!("port = {}", dc.tls_port),
            )
            .replace(
                "security = \"plain\"",
                &format!("security = \"tls\"\n{extra}"),
            )
    };

    // The web's roots do not vouch for this certificate: nothing may be read.
    let run = start(&rt, &db, &tls("untrusted", ""));
    std::thread::sleep(Duration::from_millis(1500));
    let summary = run.finish(&rt);
    assert_eq!(summary.received, 0);
    assert_eq!(recorded(&db), 0);

    // Trusting that certificate as the CA: read.
    let run = start(
        &rt,
        &db,
        &tls("ca", &format!("ca_file = \"{}\"", s(&dc.cert()))),
    );
    wait_for(Duration::from_secs(20), "5 messages over TLS", || {
        recorded(&db) == 5
    });
    assert_eq!(run.finish(&rt).recorded, 5);

    // The insecure flag accepts it too (they are now duplicates: seen, but past this name's position).
    let run = start(&rt, &db, &tls("insecure", "tls_insecure = true"));
    wait_for(
        Duration::from_secs(20),
        "the insecure source's position",
        || {
            db_int(
                &db,
                "select last_uid from source_state where source = 'imap:insecure/INBOX'",
            ) == 5
        },
    );
    let summary = run.finish(&rt);
    assert_eq!((summary.recorded, summary.duplicates), (0, 5));

    // STARTTLS on the plain port, with the CA.
    let starttls = base.replace("name = \"t\"", "name = \"starttls\"").replace(
        "security = \"plain\"",
        &format!("security = \"starttls\"\nca_file = \"{}\"", s(&dc.cert())),
    );
    let run = start(&rt, &db, &starttls);
    wait_for(
        Duration::from_secs(20),
        "the STARTTLS source's position",
        || {
            db_int(
                &db,
                "select last_uid from source_state where source = 'imap:starttls/INBOX'",
            ) == 5
        },
    );
    let summary = run.finish(&rt);
    assert_eq!((summary.recorded, summary.duplicates), (0, 5));
    assert_eq!(recorded(&db), 5);
}

#[test]
fn thousand_messages_through_sigterm_and_a_server_restart() {
    if !dovecot::available("thousand_messages_through_sigterm_and_a_server_restart") {
        return;
    }
    engines::each(
        "thousand_messages_through_sigterm_and_a_server_restart",
        |e| thousand_messages_through_sigterm_and_a_server_restart_on(&e),
    );
}

fn thousand_messages_through_sigterm_and_a_server_restart_on(engine: &engines::Engine) {
    let mut dc = Dovecot::start();
    let db = database(engine, &dc);
    let conf = dc.path("bounced.toml");
    fs::write(
        &conf,
        format!(
            "[store]\n{}\n\n{}",
            store_line(&db),
            imap_section(&dc, "fetch_batch = 50")
        ),
    )
    .expect("config");
    let conf_s = s(&conf);
    let args = ["--config", conf_s.as_str()];

    let md = dc.maildir();
    let feeder = std::thread::spawn(move || {
        for i in 0..1000 {
            let name = format!("f{i}.host");
            let tmp = md.join("tmp").join(&name);
            fs::write(&tmp, bounce(i)).expect("write");
            fs::rename(&tmp, md.join("new").join(&name)).expect("rename");
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(15));
            }
        }
    });
    let mut child = spawn_daemon(&args, &dc.path("run1.log"));
    wait_for(Duration::from_secs(30), "200 recorded", || {
        recorded(&db) >= 200
    });
    assert_eq!(
        stop(&mut child, Duration::from_secs(25)),
        0,
        "exit after SIGTERM"
    );
    let at_stop = recorded(&db);

    let mut child = spawn_daemon(&args, &dc.path("run2.log"));
    wait_for(
        Duration::from_secs(30),
        "more recorded after the restart",
        || recorded(&db) > at_stop + 100,
    );
    // The server goes away mid-run and comes back on the same port.
    dc.stop();
    std::thread::sleep(Duration::from_millis(700));
    dc.restart();
    feeder.join().expect("feeder");
    wait_for(Duration::from_secs(60), "1000 recorded", || {
        recorded(&db) == 1000
    });
    let rt = runtime();
    let mut probe = rt.block_on(Probe::connect(dc.port));
    wait_for(Duration::from_secs(20), "every message seen", || {
        rt.block_on(probe.search("INBOX", "UNSEEN")) == 0
    });
    assert_eq!(rt.block_on(probe.count("INBOX")), 1000);
    rt.block_on(probe.close());
    assert_eq!(stop(&mut child, Duration::from_secs(25)), 0);
    assert!(at_stop < 1000, "the SIGTERM was not mid-stream");
    assert_eq!(
        db_int(&db, "select count(distinct sha256) from messages"),
        1000
    );
    assert_eq!(db_int(&db, "select count(*) from bounces"), 1000);
    let log = fs::read_to_string(dc.path("run2.log")).unwrap_or_default();
    assert!(
        log.contains("reconnecting"),
        "no reconnection logged:\n{log}"
    );
    assert!(!log.contains(PASSWORD), "the password is in the log");
}

#[test]
fn uidvalidity_change_reads_again_without_double_counting() {
    if !dovecot::available("uidvalidity_change_reads_again_without_double_counting") {
        return;
    }
    engines::each(
        "uidvalidity_change_reads_again_without_double_counting",
        |e| uidvalidity_change_reads_again_without_double_counting_on(&e),
    );
}

fn uidvalidity_change_reads_again_without_double_counting_on(engine: &engines::Engine) {
    let mut dc = Dovecot::start();
    for i in 0..10 {
        dc.deliver_file(&format!("u{i}.host"), bounce(i).as_bytes());
    }
    let rt = runtime();
    let db = database(engine, &dc);
    let cfg = imap_section(&dc, "");
    let run = start(&rt, &db, &cfg);
    wait_for(Duration::from_secs(20), "10 recorded", || {
        recorded(&db) == 10
    });
    assert_eq!(run.finish(&rt).recorded, 10);
    let old = db_int(
        &db,
        "select uidvalidity from source_state where source = 'imap:t/INBOX'",
    );
    assert!(old > 0);

    // Renumber the mailbox: a new UIDVALIDITY in the uid list, the indexes dropped.
    dc.stop();
    let md = dc.maildir();
    let list = fs::read_to_string(md.join("dovecot-uidlist")).expect("uidlist");
    let new_v = old + 1000;
    let first = list.lines().next().unwrap_or("");
    let renumbered: String = first
        .split(' ')
        .map(|f| {
            if f.starts_with('V') {
                format!("V{new_v}")
            } else {
                f.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    fs::write(
        md.join("dovecot-uidlist"),
        list.replacen(first, &renumbered, 1),
    )
    .expect("uidlist");
    for e in fs::read_dir(&md).expect("maildir").flatten() {
        if e.file_name().to_string_lossy().starts_with("dovecot.index") {
            let _ = fs::remove_file(e.path());
        }
    }
    dc.restart();
    for i in 10..15 {
        dc.deliver_file(&format!("u{i}.host"), bounce(i).as_bytes());
    }
    let mut probe = rt.block_on(Probe::connect(dc.port));
    let seen_v = rt.block_on(probe.uidvalidity("INBOX"));
    rt.block_on(probe.close());
    assert_eq!(
        i64::from(seen_v),
        new_v,
        "the server did not take the new UIDVALIDITY"
    );

    let run = start(&rt, &db, &cfg);
    wait_for(Duration::from_secs(20), "15 recorded", || {
        recorded(&db) == 15
    });
    wait_for(Duration::from_secs(20), "the new position", || {
        db_int(
            &db,
            "select uidvalidity from source_state where source = 'imap:t/INBOX'",
        ) == new_v
            && db_int(
                &db,
                "select last_uid from source_state where source = 'imap:t/INBOX'",
            ) >= 15
    });
    let summary = run.finish(&rt);
    assert_eq!(summary.recorded, 5);
    assert_eq!(summary.duplicates, 10);
    assert_eq!(
        db_int(&db, "select count(distinct sha256) from messages"),
        15
    );
    assert_eq!(db_int(&db, "select count(*) from bounces"), 15);
}

/// The database a test writes: the engine's PostgreSQL database, or a file in the server's folder.
fn database(engine: &engines::Engine, dc: &Dovecot) -> std::path::PathBuf {
    if engine.is_postgres() {
        engine.location.clone()
    } else {
        dc.path("b.db")
    }
}

/// The `[store]` line naming `db`: `url` for PostgreSQL, `path` for a file.
fn store_line(db: &Path) -> String {
    let text = s(db);
    if text.starts_with("postgres://") {
        format!("url = {text:?}")
    } else {
        format!("path = {text:?}")
    }
}

/// A configuration file for the binary: the database and one `[[imap]]` section.
fn binary_config(dc: &Dovecot, db: &Path, extra: &str) -> String {
    let conf = dc.path("bounced.toml");
    fs::write(
        &conf,
        format!("[store]\n{}\n\n{}", store_line(db), imap_section(dc, extra)),
    )
    .expect("config");
    s(&conf)
}

#[test]
fn server_killed_mid_fetch_and_mid_idle_then_restarted() {
    if !dovecot::available("server_killed_mid_fetch_and_mid_idle_then_restarted") {
        return;
    }
    engines::each("server_killed_mid_fetch_and_mid_idle_then_restarted", |e| {
        server_killed_mid_fetch_and_mid_idle_then_restarted_on(&e)
    });
}

fn server_killed_mid_fetch_and_mid_idle_then_restarted_on(engine: &engines::Engine) {
    let mut dc = Dovecot::start();
    let n = 1500;
    for i in 0..n {
        dc.deliver_file(&format!("k{i}.host"), bounce(i).as_bytes());
    }
    let db = database(engine, &dc);
    let conf = binary_config(
        &dc,
        &db,
        "fetch_batch = 100\npoll_interval = \"1h\"\nidle_renew = \"29m\"",
    );
    let mut d = DaemonCmd::new(&["--config", &conf], &dc.path("run.log")).spawn();
    d.wait_until(Duration::from_secs(60), "200 recorded", || {
        recorded(&db) >= 200
    });
    // SIGKILL while the backlog is being fetched.
    dc.kill();
    let at_kill = recorded(&db);
    assert!(at_kill < n as i64, "the kill was not mid-fetch");
    std::thread::sleep(Duration::from_millis(300));
    dc.restart();
    d.wait_until(Duration::from_secs(90), "every message recorded", || {
        recorded(&db) == n as i64
    });
    let rt = runtime();
    let mut probe = rt.block_on(Probe::connect(dc.port));
    d.wait_until(Duration::from_secs(20), "every message seen", || {
        rt.block_on(probe.search("INBOX", "UNSEEN")) == 0
    });
    rt.block_on(probe.close());

    // SIGKILL while the daemon waits in IDLE, then new mail after the restart.
    let failures = d.count("connection failed");
    std::thread::sleep(Duration::from_millis(500));
    dc.kill();
    d.wait_log_count("connection failed", failures + 1, Duration::from_secs(10));
    dc.restart();
    let mut probe = rt.block_on(Probe::connect(dc.port));
    for i in n..n + 20 {
        rt.block_on(probe.append("INBOX", bounce(i).as_bytes()));
    }
    d.wait_until(Duration::from_secs(30), "the appended messages", || {
        recorded(&db) == n as i64 + 20
    });
    d.wait_until(Duration::from_secs(20), "every message seen", || {
        rt.block_on(probe.search("INBOX", "UNSEEN")) == 0
    });
    assert_eq!(rt.block_on(probe.count("INBOX")), n as u32 + 20);
    rt.block_on(probe.close());
    assert!(d.running());
    assert_eq!(d.stop(Duration::from_secs(25)), 0);
    let total = n as i64 + 20;
    assert_eq!(recorded(&db), total);
    assert_eq!(
        db_int(&db, "select count(distinct sha256) from messages"),
        total
    );
    assert_eq!(db_int(&db, "select count(*) from bounces"), total);
    assert_eq!(
        db_int(
            &db,
            "select last_uid from source_state where source = 'imap:t/INBOX'"
        ),
        total
    );
    let log = d.log();
    assert!(!log.contains(PASSWORD), "the password is in the log");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn login_refused_backs_off_and_never_logs_the_password() {
    if !dovecot::available("login_refused_backs_off_and_never_logs_the_password") {
        return;
    }
    let dc = Dovecot::start();
    for i in 0..5 {
        dc.deliver_file(&format!("l{i}.host"), bounce(i).as_bytes());
    }
    let db = dc.path("b.db");
    let conf = binary_config(&dc, &db, "");
    let text = fs::read_to_string(&conf)
        .expect("config")
        .replace(
            "reconnect_initial = \"50ms\"",
            "reconnect_initial = \"100ms\"",
        )
        .replace("reconnect_max = \"500ms\"", "reconnect_max = \"10s\"");
    fs::write(&conf, text).expect("config");
    let wrong = "Wr0ng-pw-4417";
    fs::write(dc.path("imap-password"), format!("{wrong}\n")).expect("password");

    // Dovecot itself delays some refusals by seconds (its own penalty): four attempts suffice.
    let mut d = DaemonCmd::new(&["--config", &conf], &dc.path("refused.log")).spawn();
    d.wait_log_count("connection failed", 4, Duration::from_secs(30));
    assert!(d.running(), "a refused login must not stop the daemon");
    assert_eq!(recorded(&db), 0);
    let lines = d.lines();
    let log = d.log();
    assert!(!log.contains(wrong), "the password is in the log:\n{log}");
    let failed = lines
        .iter()
        .find(|(_, l)| l.contains("connection failed"))
        .map(|(_, l)| l.clone())
        .unwrap_or_default();
    eprintln!("refused login logged as: {failed}");
    assert!(
        failed.contains("login as testuser refused") && failed.contains("password_file"),
        "unclear error: {failed}"
    );
    // The wait the daemon announces after each failure, and the wait measured until its next
    // attempt (from the log's own timestamps).
    let stamp = |l: &str| {
        l.split_whitespace()
            .next()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let mut waits = Vec::new();
    let mut failed_at = None;
    for (_, l) in &lines {
        let Some(t) = &stamp(l) else { continue };
        if l.contains("connection failed") {
            let announced = l
                .split("retry_in=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(parse_debug_duration)
                .expect("retry_in in the log line");
            failed_at = Some((*t, announced));
        } else if l.contains("connecting")
            && let Some((f, announced)) = failed_at.take()
        {
            let measured = (*t - f).to_std().unwrap_or_default();
            waits.push((announced, measured));
        }
    }
    eprintln!("refused logins, (announced, measured) waits: {waits:?}");
    assert!(waits.len() >= 3, "{waits:?}");
    for (k, (announced, measured)) in waits.iter().enumerate() {
        // Doubling from 100 ms, capped at 10 s, with jitter in [0.5, 1].
        let full = Duration::from_millis(100) * (1 << k);
        assert!(
            *announced >= full / 2 && *announced <= full,
            "wait {k}: {announced:?} outside [{:?}, {full:?}]",
            full / 2
        );
        assert!(
            *measured >= announced.mul_f64(0.9),
            "wait {k}: announced {announced:?}, slept only {measured:?}"
        );
    }
    assert!(waits[2].1 > waits[0].1 * 2, "no growing backoff: {waits:?}");

    // The password file corrected while the daemon runs: read again at the next attempt.
    fs::write(dc.path("imap-password"), format!("{PASSWORD}\n")).expect("password");
    d.wait_until(Duration::from_secs(30), "5 recorded", || recorded(&db) == 5);
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    assert!(!d.log().contains(wrong), "the password is in the log");
}

/// A duration as `{:?}` prints it (`86.2ms`, `1.5s`, `900µs`).
fn parse_debug_duration(s: &str) -> Option<Duration> {
    let (num, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("µs") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ns") {
        (n, 1e-9)
    } else {
        (s.strip_suffix('s')?, 1.0)
    };
    Some(Duration::from_secs_f64(num.parse::<f64>().ok()? * unit))
}

#[test]
fn untrusted_certificate_is_refused_with_a_clear_error() {
    if !dovecot::available("untrusted_certificate_is_refused_with_a_clear_error") {
        return;
    }
    let dc = Dovecot::start();
    dc.deliver_file("c0.host", bounce(0).as_bytes());
    let db = dc.path("b.db");
    let conf = binary_config(&dc, &db, "");
    let text = fs::read_to_string(&conf)
        .expect("config")
        .replace(
            &format!("port = {}", dc.port),
            &format!("port = {}", dc.tls_port),
        )
        .replace("security = \"plain\"", "security = \"tls\"");
    fs::write(&conf, text).expect("config");
    let mut d = DaemonCmd::new(&["--config", &conf], &dc.path("tls.log")).spawn();
    d.wait_log_count("connection failed", 2, Duration::from_secs(20));
    assert_eq!(d.stop(Duration::from_secs(10)), 0);
    let log = d.log();
    let failed = log
        .lines()
        .find(|l| l.contains("connection failed"))
        .unwrap_or_default();
    eprintln!("untrusted certificate logged as: {failed}");
    assert!(
        failed.contains("certificate") && failed.contains("ca_file"),
        "unclear error: {failed}"
    );
    assert_eq!(recorded(&db), 0);
}

/// Neither the password nor its base64 forms (the AUTHENTICATE PLAIN response, the password alone)
/// reach the log at any level, however the level is set: the configuration, `-v`, `-vv`,
/// `RUST_LOG=trace`, or `RUST_LOG` directives that name the IMAP client's own targets.
#[test]
fn no_log_level_carries_the_password() {
    use base64::Engine as _;
    if !dovecot::available("no_log_level_carries_the_password") {
        return;
    }
    let dc = Dovecot::start();
    dc.deliver_file("s0.host", bounce(0).as_bytes());
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let needles = [
        PASSWORD.to_owned(),
        b64(PASSWORD),
        b64(&format!("\0{}\0{PASSWORD}", dovecot::USER)),
        b64(&format!("{}\0{}\0{PASSWORD}", dovecot::USER, dovecot::USER)),
    ];
    let rt = runtime();
    // Name, extra flags, BOUNCED_LOG_LEVEL, RUST_LOG.
    type Variant<'a> = (&'a str, &'a [&'a str], Option<&'a str>, Option<&'a str>);
    let variants: &[Variant] = &[
        ("error", &[], Some("error"), None),
        ("warn", &[], Some("warn"), None),
        ("info", &[], Some("info"), None),
        ("debug", &[], Some("debug"), None),
        ("trace", &[], Some("trace"), None),
        ("v", &["-v"], None, None),
        ("vv", &["-vv"], None, None),
        ("rust-log-trace", &[], None, Some("trace")),
        ("rust-log-target", &[], None, Some("async_imap=trace")),
        (
            "rust-log-module",
            &[],
            None,
            Some("info,async_imap::imap_stream=trace,imap_proto=trace"),
        ),
    ];
    for auth in ["login", "plain"] {
        for (name, flags, level, rust_log) in variants {
            let mut probe = rt.block_on(Probe::connect(dc.port));
            rt.block_on(probe.mark_all_unseen("INBOX"));
            rt.block_on(probe.close());
            let db = dc.path(&format!("{auth}-{name}.db"));
            let conf = binary_config(&dc, &db, &format!("auth = \"{auth}\""));
            let mut args = vec!["--config", conf.as_str()];
            args.extend_from_slice(flags);
            let mut cmd = DaemonCmd::new(&args, &dc.path(&format!("{auth}-{name}.log")));
            if let Some(l) = level {
                cmd = cmd.env("BOUNCED_LOG_LEVEL", l);
            }
            if let Some(r) = rust_log {
                cmd = cmd.env("RUST_LOG", r);
            }
            let mut d = cmd.spawn();
            d.wait_until(Duration::from_secs(30), "the message recorded", || {
                recorded(&db) >= 1
            });
            assert_eq!(d.stop(Duration::from_secs(25)), 0, "{auth} {name}");
            let log = d.log();
            if *name == "trace" || *name == "vv" || *name == "rust-log-trace" {
                assert!(
                    log.contains("TRACE"),
                    "{auth} {name}: trace level not in effect:\n{log}"
                );
            }
            for n in &needles {
                assert!(
                    !log.contains(n.as_str()),
                    "{auth} {name}: `{n}` is in the log:\n{log}"
                );
            }
        }
    }
}
