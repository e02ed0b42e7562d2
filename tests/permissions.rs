//! The files bounced creates are not readable by other users: the database and its `-wal`/`-shm`
//! (0600), exports (0640 at most), the quarantine folder and the messages moved into it.

#![allow(unsafe_code)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bounced::Classifier;
use bounced::config::{DaemonConfig, HumanDuration, MaildirConfig};
use bounced::daemon::{self, Settings, Sources};
use bounced::store::{Store, StoreOptions};
use common::{bounce, deliver, make_maildir, names, recorded, wait_for};

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Runs with a permissive umask, so that only the modes bounced asks for can keep files private.
fn with_open_umask<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: umask(2) only swaps the process's file mode creation mask.
    let old = unsafe { libc::umask(0o002) };
    let out = f();
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    out
}

#[test]
fn the_database_and_its_wal_and_shm_are_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("b.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    with_open_umask(|| {
        rt.block_on(async {
            let store = Store::open(&db, StoreOptions::default())
                .await
                .expect("open");
            let a = bounced::analyze(
                bounce(1).as_bytes(),
                &Classifier::new(),
                &Default::default(),
            );
            let p = bounced::store::Prepared::new(
                "test:1".into(),
                chrono::Utc::now(),
                bounce(1).as_bytes(),
                a,
            );
            store
                .record(&[p], chrono::Utc::now())
                .await
                .expect("record");
            for f in ["b.db", "b.db-wal", "b.db-shm"] {
                let p = dir.path().join(f);
                assert!(p.exists(), "{f} missing while the database is open");
                assert_eq!(mode(&p), 0o600, "{f}");
            }
            store.close().await;
        });
    });
    assert_eq!(mode(&db), 0o600);
}

#[test]
fn an_existing_database_keeps_its_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("b.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        Store::open(&db, StoreOptions::default())
            .await
            .expect("create")
            .close()
            .await;
        fs::set_permissions(&db, fs::Permissions::from_mode(0o640)).expect("chmod");
        Store::open(&db, StoreOptions::default())
            .await
            .expect("reopen")
            .close()
            .await;
    });
    assert_eq!(mode(&db), 0o640, "an administrator's choice is kept");
}

#[test]
fn exports_are_not_world_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bounced"));
        c.args(args)
            .current_dir(dir.path())
            .env_remove("BOUNCED_DB")
            .env_remove("BOUNCED_CONFIG")
            .env_remove("RUST_LOG");
        // SAFETY: umask(2) in the child between fork and exec, nothing else.
        unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(|| {
                libc::umask(0o002);
                Ok(())
            });
        }
        let out = c.output().expect("run bounced");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["suppress", "someone@example.com", "--db", "b.db"]);
    run(&["export", "--db", "b.db", "--output", "list.txt"]);
    let list = dir.path().join("list.txt");
    assert!(
        fs::read_to_string(&list)
            .expect("export written")
            .contains("someone@example.com")
    );
    assert_eq!(mode(&list) & 0o007, 0, "others can read the export");
    assert_eq!(mode(&list) & 0o600, 0o600);
    assert_eq!(mode(&dir.path().join("b.db")), 0o600);
}

#[test]
fn quarantined_messages_are_not_world_readable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = tmp.path().join("Maildir");
    make_maildir(&md);
    let bad = deliver(&md, "bad.host", b"  \n");
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o644)).expect("chmod");
    let db = tmp.path().join("b.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    with_open_umask(|| {
        let store = rt
            .block_on(Store::open(&db, StoreOptions::default()))
            .expect("store");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let run = rt.spawn(daemon::run(
            Settings::from_config(&DaemonConfig {
                shutdown_grace: HumanDuration(Duration::from_secs(10)),
                ..DaemonConfig::default()
            }),
            store.clone(),
            Arc::new(Classifier::new()),
            Sources {
                maildirs: vec![MaildirConfig::at(md.clone())],
                imaps: Vec::new(),
            },
            async {
                let _ = stop_rx.await;
            },
            || {},
        ));
        wait_for(Duration::from_secs(20), "the message recorded", || {
            recorded(&db) == 1
        });
        wait_for(Duration::from_secs(5), "the message moved", || {
            names(&md, "new").is_empty()
        });
        let _ = stop_tx.send(());
        rt.block_on(run).expect("join").expect("run");
        rt.block_on(store.close());
    });
    let q = md.join(".Quarantine");
    let moved = names(&q, "cur");
    assert_eq!(moved, ["bad.host:2,"]);
    assert_eq!(mode(&q) & 0o007, 0, "others can enter the quarantine");
    assert_eq!(mode(&q.join("cur")) & 0o007, 0);
    assert_eq!(mode(&q.join("cur").join("bad.host:2,")), 0o640);
}
