//! The files bounced creates are not readable by other users: the database and its `-wal`/`-shm`
//! (`store.mode`, 0640 by default, with the group of the database's folder, so that a list manager
//! in that group can read it), exports (0640 at most), the quarantine folder and the messages moved
//! into it. A user who lacks a permission is told which one.

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
use common::{bounce, chmod, deliver, make_maildir, names, recorded, wait_for};

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
fn the_database_and_its_wal_and_shm_get_the_configured_mode() {
    for (mode, umask) in [(0o640, 0o002), (0o600, 0o002), (0o660, 0o077)] {
        database_gets_mode(mode, umask);
    }
}

fn database_gets_mode(want: u32, umask: libc::mode_t) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("b.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // SAFETY: umask(2) only swaps the process's file mode creation mask.
    let old = unsafe { libc::umask(umask) };
    {
        rt.block_on(async {
            let opts = StoreOptions {
                mode: want,
                ..StoreOptions::default()
            };
            let store = Store::open(&db, opts).await.expect("open");
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
                assert_eq!(mode(&p), want, "{f} with umask {umask:o}");
            }
            store.close().await;
        });
    }
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    assert_eq!(mode(&db), want);
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
    assert_eq!(mode(&dir.path().join("b.db")), 0o640);
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
                notify: Vec::new(),
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

/// `bounced ARGS` in `dir` as user `uid` with group `gid` and no other group (root only).
fn as_user(dir: &Path, uid: u32, gid: u32, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bounced"));
    c.args(args)
        .current_dir(dir)
        .env_remove("BOUNCED_DB")
        .env_remove("BOUNCED_CONFIG")
        .env_remove("RUST_LOG");
    // SAFETY: setgroups, setgid and setuid between fork and exec, nothing else.
    unsafe {
        use std::os::unix::process::CommandExt;
        c.pre_exec(move || {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.output().expect("run bounced")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_new_database_takes_the_group_of_its_folder_and_that_group_can_read_it() {
    if !common::is_root() {
        eprintln!(
            "a_new_database_takes_the_group_of_its_folder_and_that_group_can_read_it: skipped: \
             needs root to create files for another user and group"
        );
        return;
    }
    use std::os::unix::fs::{MetadataExt, chown};
    const LISTS: u32 = 4_242; // the list manager's group
    const LIST_MANAGER: u32 = 4_243;
    const STRANGER: u32 = 4_244;
    let top = tempfile::tempdir().expect("tempdir");
    chmod(top.path(), 0o755);
    let dir = top.path().join("lib");
    fs::create_dir(&dir).expect("mkdir");
    chown(&dir, Some(0), Some(LISTS)).expect("chown");
    chmod(&dir, 0o750);

    let admin = Command::new(env!("CARGO_BIN_EXE_bounced"))
        .args(["suppress", "gone@example.com", "--db", "b.db"])
        .current_dir(&dir)
        .env_remove("BOUNCED_DB")
        .env_remove("BOUNCED_CONFIG")
        .output()
        .expect("run");
    assert!(admin.status.success(), "{}", text(&admin));
    let meta = fs::metadata(dir.join("b.db")).expect("db");
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o640, LISTS));
    for f in ["b.db-wal", "b.db-shm"] {
        assert!(!dir.join(f).exists(), "{f} is left once bounced exits");
    }

    // The list manager, in the folder's group, cannot write the folder: with no bounced process
    // holding the database open its -wal and -shm are not there, and the message says so.
    let out = as_user(&dir, LIST_MANAGER, LISTS, &["export", "--db", "b.db"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("cannot write the folder"), "{said}");
    assert!(said.contains("b.db-wal"), "{said}");

    // With a folder the group may write (the documented layout), it reads the list.
    chmod(&dir, 0o2770);
    let out = as_user(&dir, LIST_MANAGER, LISTS, &["export", "--db", "b.db"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "gone@example.com\n");
    // It reads, but it cannot suppress: the message names the missing write permission.
    let out = as_user(
        &dir,
        LIST_MANAGER,
        LISTS,
        &["suppress", "x@example.com", "--db", "b.db"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("can read it but not write it"),
        "{}",
        text(&out)
    );

    // Someone outside the group is told that reading is what is missing.
    chmod(&dir, 0o2777);
    let out = as_user(&dir, STRANGER, STRANGER, &["export", "--db", "b.db"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("cannot read database b.db"), "{said}");
    assert!(
        said.contains("lacks read permission on it (mode 0640"),
        "{said}"
    );
    assert!(!said.contains("writable"), "{said}");
}

#[test]
fn store_mode_in_the_configuration_sets_a_new_database_mode_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("b.toml"),
        "[store]\npath = \"private.db\"\nmode = \"0600\"\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_bounced"))
        .args(["suppress", "a@example.com", "--config", "b.toml"])
        .current_dir(dir.path())
        .env_remove("BOUNCED_DB")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(mode(&dir.path().join("private.db")), 0o600);
    for bad in ["\"0644x\"", "\"0755\"", "\"0400\"", "\"0666\"", "640"] {
        fs::write(
            dir.path().join("bad.toml"),
            format!("[store]\nmode = {bad}\n"),
        )
        .expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_bounced"))
            .args(["stats", "--config", "bad.toml"])
            .current_dir(dir.path())
            .env_remove("BOUNCED_DB")
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        let said = text(&out);
        assert!(
            said.contains("store.mode") || said.contains("octal file mode"),
            "{bad}: {said}"
        );
    }
}
