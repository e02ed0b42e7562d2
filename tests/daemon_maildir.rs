//! The daemon on a real Maildir: existing messages, live deliveries, quarantine, SIGTERM and SIGKILL
//! mid-stream, 1,000 messages end to end. Exactly once: every message recorded once, all acknowledged.
//! The store-facing tests run on SQLite and again on PostgreSQL.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bounced::Classifier;
use bounced::config::{DaemonConfig, HumanDuration, MaildirConfig};
use bounced::daemon::{self, Settings, Sources};
use bounced::store::{Store, StoreOptions};
use common::engines;
use common::*;

fn settings(max_size: usize) -> Settings {
    let cfg = DaemonConfig {
        max_message_size: max_size,
        shutdown_grace: HumanDuration(Duration::from_secs(10)),
        ..DaemonConfig::default()
    };
    Settings::from_config(&cfg)
}

/// Every file of `sub` carries the S flag (the acknowledgement) and there are `n` of them.
fn assert_all_acked(dir: &Path, n: usize) {
    assert!(
        names(dir, "new").is_empty(),
        "new/ not empty: {:?}",
        names(dir, "new")
    );
    let cur = names(dir, "cur");
    assert_eq!(cur.len(), n, "files in cur/");
    for name in &cur {
        assert!(name.ends_with(":2,S"), "not acknowledged: {name}");
    }
}

#[test]
fn existing_live_and_bad_messages() -> Result<(), Box<dyn std::error::Error>> {
    for engine in engines::all("existing_live_and_bad_messages") {
        eprintln!("existing_live_and_bad_messages: {}", engine.name);
        let tmp = tempfile::tempdir()?;
        let md = tmp.path().join("Maildir");
        make_maildir(&md);
        for i in 0..30 {
            deliver(&md, &format!("old{i}.host"), bounce(i).as_bytes());
        }
        // Dovecot's APPEND writes into cur/ with no S flag: pending. One already seen: not ours.
        for i in 30..40 {
            fs::write(md.join("cur").join(format!("app{i}.host:2,")), bounce(i))?;
        }
        fs::write(md.join("cur").join("seen.host:2,S"), bounce(999))?;
        deliver(&md, "empty.host", b"  \r\n");
        deliver(&md, "big.host", &vec![b'x'; 5000]);

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let db = engine.location.clone();
        let store = rt.block_on(Store::open(&db, StoreOptions::default()))?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sources = Sources {
            maildirs: vec![MaildirConfig::at(md.clone())],
            imaps: Vec::new(),
            notify: Vec::new(),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let run = rt.spawn(daemon::run(
            settings(4096),
            store.clone(),
            Arc::new(Classifier::new()),
            sources,
            async {
                let _ = stop_rx.await;
            },
            move || {
                let _ = ready_tx.send(());
            },
        ));
        ready_rx.recv_timeout(Duration::from_secs(10))?;
        for i in 100..140 {
            deliver(&md, &format!("live{i}.host"), bounce(i).as_bytes());
        }
        wait_for(Duration::from_secs(20), "82 messages recorded", || {
            recorded(&db) == 82
        });
        let _ = stop_tx.send(());
        let summary = rt.block_on(run)??;
        assert_eq!(summary.recorded, 82);
        assert_eq!(summary.quarantined, 2);
        assert_eq!(summary.acked, 82);

        assert!(names(&md, "new").is_empty());
        let cur = names(&md, "cur");
        assert_eq!(cur.len(), 30 + 10 + 40 + 1);
        assert!(cur.iter().all(|n| n.ends_with(":2,S")), "{cur:?}");
        assert!(cur.contains(&"seen.host:2,S".to_owned()));
        assert_eq!(
            names(&md.join(".Quarantine"), "cur"),
            ["big.host:2,", "empty.host:2,"]
        );
        assert_eq!(
            db_int(&db, "select count(*) from messages where kind = 'error'"),
            2
        );
        assert_eq!(
            db_int(
                &db,
                "select count(*) from messages where error like '%over the limit%'"
            ),
            1
        );
        assert_eq!(
            db_int(
                &db,
                "select count(*) from bounces where reason = 'userunknown'"
            ),
            80
        );
        // The message that was already seen is not ours: never read.
        assert_eq!(
            db_int(
                &db,
                "select count(*) from messages where source like '%seen.host%'"
            ),
            0
        );
        rt.block_on(store.close());
    }
    Ok(())
}

#[test]
fn thousand_messages_with_sigterm_mid_stream_then_restart() {
    for engine in engines::all("thousand_messages_with_sigterm_mid_stream_then_restart") {
        eprintln!(
            "thousand_messages_with_sigterm_mid_stream_then_restart: {}",
            engine.name
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let md = tmp.path().join("Maildir");
        make_maildir(&md);
        let db = engine.location.clone();
        let db_s = db.to_str().expect("utf-8");
        let md_s = md.to_str().expect("utf-8");
        let args = ["--maildir", md_s, "--db", db_s];

        let mut child = spawn_daemon(&args, &tmp.path().join("run1.log"));
        wait_for(Duration::from_secs(20), "the database", || {
            engine.is_postgres() || db.exists()
        });
        // Deliver in a thread while the daemon runs; stop it mid-stream.
        let md2 = md.clone();
        let feeder = std::thread::spawn(move || {
            for i in 0..1000 {
                deliver(&md2, &format!("m{i}.host"), bounce(i).as_bytes());
                // A steady stream (about 6 s in all), so that the SIGTERM lands mid-stream
                // however fast the daemon records and however slowly the test polls.
                if i % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(60));
                }
            }
        });
        wait_for(Duration::from_secs(30), "some messages recorded", || {
            recorded(&db) >= 200
        });
        let code = stop(&mut child, Duration::from_secs(15));
        assert_eq!(code, 0, "exit code after SIGTERM");
        let after_stop = recorded(&db);
        feeder.join().expect("feeder");
        assert!(
            after_stop < 1000,
            "the stop was not mid-stream ({after_stop})"
        );

        let mut child = spawn_daemon(&args, &tmp.path().join("run2.log"));
        wait_for(Duration::from_secs(60), "1000 messages recorded", || {
            recorded(&db) == 1000
        });
        wait_for(Duration::from_secs(10), "all acknowledged", || {
            names(&md, "new").is_empty()
                && names(&md, "cur")
                    .iter()
                    .filter(|n| n.ends_with(":2,S"))
                    .count()
                    == 1000
        });
        assert_eq!(stop(&mut child, Duration::from_secs(15)), 0);
        assert_eq!(recorded(&db), 1000);
        assert_eq!(
            db_int(&db, "select count(distinct sha256) from messages"),
            1000
        );
        assert_eq!(db_int(&db, "select count(*) from bounces"), 1000);
        assert_all_acked(&md, 1000);
        let log = fs::read_to_string(tmp.path().join("run1.log")).unwrap_or_default();
        assert!(log.contains("shutting down"), "{log}");
    }
}

#[test]
fn sigkill_at_random_points_keeps_exactly_once() {
    for engine in engines::all("sigkill_at_random_points_keeps_exactly_once") {
        eprintln!(
            "sigkill_at_random_points_keeps_exactly_once: {}",
            engine.name
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let md = tmp.path().join("Maildir");
        make_maildir(&md);
        let db = engine.location.clone();
        let db_s = db.to_str().expect("utf-8");
        let md_s = md.to_str().expect("utf-8");
        let args = ["--maildir", md_s, "--db", db_s];
        let total = 1500;
        for i in 0..total {
            deliver(&md, &format!("k{i}.host"), bounce(i).as_bytes());
        }
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        let mut kills = 0;
        let mut mid_stream = 0;
        for run in 0..5 {
            let mut child = spawn_daemon(&args, &tmp.path().join(format!("kill{run}.log")));
            // Kill at a random point while it ingests: after a random number of further messages is
            // recorded, plus a random few milliseconds.
            let before = recorded(&db);
            let target = (before + rng.i64(20..250)).min(total as i64 - 1);
            wait_for(Duration::from_secs(60), "recording under way", || {
                recorded(&db) >= target
            });
            let at = Duration::from_millis(rng.u64(0..30));
            std::thread::sleep(at);
            let _ = child.kill();
            let _ = child.wait();
            kills += 1;
            let n = recorded(&db);
            if n > 0 && n < total as i64 {
                mid_stream += 1;
            }
            eprintln!("run {run}: SIGKILL {at:?} after {target} recorded: {n} recorded");
            // The invariant holds after every crash: nothing recorded twice.
            assert_eq!(
                db_int(&db, "select count(*) from messages"),
                db_int(&db, "select count(distinct sha256) from messages")
            );
            assert_eq!(
                db_int(&db, "select count(*) from bounces"),
                db_int(&db, "select count(*) from messages")
            );
            // Every acknowledged file is recorded.
            let acked = names(&md, "cur").len() as i64;
            assert!(
                acked <= recorded(&db),
                "acknowledged {acked} > recorded {}",
                recorded(&db)
            );
        }
        assert_eq!(kills, 5);
        assert!(
            mid_stream >= 2,
            "only {mid_stream} of the kills landed mid-stream"
        );
        let final_log = tmp.path().join("final.log");
        let mut child = spawn_daemon(&args, &final_log);
        // Started (its SIGTERM handler in place) before it is stopped, even with nothing left to do.
        wait_for(Duration::from_secs(60), "the daemon started", || {
            std::fs::read_to_string(&final_log).is_ok_and(|l| l.contains("database open"))
        });
        wait_for(
            Duration::from_secs(60),
            "all recorded and acknowledged",
            || recorded(&db) == total as i64 && names(&md, "new").is_empty(),
        );
        assert_eq!(stop(&mut child, Duration::from_secs(15)), 0);
        assert_eq!(
            db_int(&db, "select count(distinct sha256) from messages"),
            total as i64
        );
        assert_eq!(db_int(&db, "select count(*) from bounces"), total as i64);
        assert_all_acked(&md, total);
    }
}

#[test]
fn check_config_names_the_key_at_fault() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = tmp.path().join("Maildir");
    make_maildir(&md);
    let conf = tmp.path().join("bounced.toml");
    let bin = env!("CARGO_BIN_EXE_bounced");
    let check = |text: &str, env: &[(&str, &str)]| {
        fs::write(&conf, text).expect("write");
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("check-config").arg("--config").arg(&conf);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let good = format!(
        "[store]\npath = \"{}\"\n[[maildir]]\npath = \"{}\"\n",
        tmp.path().join("b.db").display(),
        md.display()
    );
    let (code, out, _) = check(&good, &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ok: 1 maildir"), "{out}");
    let (code, _, err) = check(&format!("{good}[daemon]\nqueue = 0\n"), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("daemon.queue"), "{err}");
    let (code, _, err) = check(&good, &[("BOUNCED_SHUTDOWN_GRACE", "soon")]);
    assert_eq!(code, 2);
    assert!(err.contains("BOUNCED_SHUTDOWN_GRACE"), "{err}");
    let (code, _, err) = check(
        &format!(
            "[[maildir]]\npath = \"{}\"\n",
            tmp.path().join("nope").display()
        ),
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("maildir.path"), "{err}");
    let (code, _, err) = check(
        "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword_env = \"BOUNCED_TEST_UNSET_PW\"\n",
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("BOUNCED_TEST_UNSET_PW"), "{err}");
    // `run` with nothing to watch refuses to start.
    let out = std::process::Command::new(bin)
        .arg("run")
        .env_remove("BOUNCED_CONFIG")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_pipeline_metrics_show_counts_timings_and_source_states()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let md = tmp.path().join("Maildir");
    make_maildir(&md);
    for i in 0..50 {
        deliver(&md, &format!("m{i}.host"), bounce(i).as_bytes());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let db = tmp.path().join("b.db");
    let store = rt.block_on(Store::open(&db, StoreOptions::default()))?;
    let metrics = daemon::Progress::default();
    let label = MaildirConfig::at(md.clone()).label();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = rt.spawn(daemon::run_observed(
        settings(1 << 20),
        store,
        Arc::new(Classifier::new()),
        Sources {
            maildirs: vec![MaildirConfig::at(md.clone())],
            imaps: Vec::new(),
            notify: Vec::new(),
        },
        async {
            let _ = stop_rx.await;
        },
        || {},
        metrics.clone(),
    ));
    wait_for(Duration::from_secs(20), "50 acknowledged", || {
        metrics.snapshot().acked == 50
    });
    assert_eq!(
        metrics.sources().snapshot().get(&label).map(String::as_str),
        Some("watching")
    );
    let s = metrics.snapshot();
    assert_eq!((s.received, s.recorded, s.duplicates), (50, 50, 0));
    assert_eq!(s.bounces[0], 50, "hard bounces");
    assert_eq!(s.suppressed, 50);
    assert!(s.commits >= 1);
    let t = metrics.timings();
    assert!(t.commit_total > Duration::ZERO && t.commit_max >= t.commit_last);
    assert!(t.latency_max < Duration::from_secs(20), "{t:?}");
    assert_eq!(metrics.queue_depth(), 0);
    let _ = stop_tx.send(());
    rt.block_on(run)??;
    assert_eq!(
        metrics.sources().snapshot().get(&label).map(String::as_str),
        Some("stopped")
    );
    Ok(())
}
