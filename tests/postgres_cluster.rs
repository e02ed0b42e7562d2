//! The throwaway PostgreSQL the tests use: a database per test, a server that stops and starts again
//! with its data, and nothing left running once the test binary has exited.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::postgres::{self, Cluster, Tuning};

#[test]
fn each_test_gets_its_own_empty_database() {
    let Some(a) = postgres::database("each_test_gets_its_own_empty_database") else {
        return;
    };
    let Some(b) = postgres::database("each_test_gets_its_own_empty_database") else {
        return;
    };
    assert_ne!(a.name, b.name);
    assert_ne!(a.url, b.url);
    assert!(
        a.url.starts_with("postgres://postgres@127.0.0.1:"),
        "{}",
        a.url
    );
    a.exec("create table t (n bigint primary key)");
    a.exec("insert into t values (1), (2), (3)");
    assert_eq!(a.int("select count(*) from t"), 3);
    // The other database does not see the table.
    assert_eq!(
        b.int("select count(*) from information_schema.tables where table_name = 't'"),
        0
    );
    let client = a.client().clone();
    let name = a.name.clone();
    drop(a);
    assert_eq!(
        client
            .exec(
                "postgres",
                &format!("select count(*) from pg_database where datname = '{name}'")
            )
            .trim(),
        "0",
        "the database is dropped with its TestDb"
    );
}

#[test]
fn the_server_runs_unprivileged_on_loopback() {
    let Some(db) = postgres::database("the_server_runs_unprivileged_on_loopback") else {
        return;
    };
    assert_eq!(db.exec("show listen_addresses"), "127.0.0.1");
    // The server's processes are not root's.
    let data = db.exec("show data_directory");
    let pid_file =
        std::fs::read_to_string(PathBuf::from(data).join("postmaster.pid")).expect("pid");
    let pid = pid_file.lines().next().unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    let uid: u32 = uid_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("uid");
    assert_ne!(uid, 0, "the server must not run as root");
}

#[test]
fn a_private_cluster_stops_and_starts_again_with_its_data() {
    if !postgres::available("a_private_cluster_stops_and_starts_again_with_its_data") {
        return;
    }
    let cluster = Cluster::start(Tuning::Fast).expect("start a cluster");
    let db = cluster.create_database("restart");
    db.exec("create table t (n bigint primary key)");
    db.exec("insert into t select generate_series(1, 1000)");
    let port = cluster.port();

    cluster.stop();
    assert!(!cluster.client().ready(), "stopped, yet it answers");
    cluster.start_again();
    assert_eq!(cluster.port(), port, "a restart keeps the port");
    assert_eq!(db.int("select count(*) from t"), 1000);

    // An immediate stop, as after a crash: committed rows survive recovery.
    db.exec("insert into t select generate_series(1001, 1500)");
    cluster.crash();
    assert!(!cluster.client().ready());
    cluster.start_again();
    assert_eq!(db.int("select count(*) from t"), 1500);

    let dir = cluster.dir.clone();
    drop(db);
    drop(cluster);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// Runs in a child process (see below): starts the shared cluster, prints its folder and the
/// server's pid, and exits without any cleanup of its own.
#[test]
fn no_server_is_left_behind() {
    if std::env::var_os("BOUNCED_PG_LEFTOVER_PROBE").is_some() {
        let Some(db) = postgres::database("probe") else {
            return;
        };
        assert_eq!(db.exec("select 1"), "1");
        let dir = postgres::shared("probe").expect("shared").dir.clone();
        let data = std::fs::read_to_string(dir.join("data/postmaster.pid")).expect("pid file");
        let server = data.lines().next().unwrap_or_default().to_owned();
        println!("PROBE dir={} pid={server}", dir.display());
        // Leave the database and the cluster as they are: the watchdog must clean up.
        std::mem::forget(db);
        return;
    }
    if !postgres::available("no_server_is_left_behind") {
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new(exe)
        .args(["--exact", "no_server_is_left_behind", "--nocapture"])
        .env("BOUNCED_PG_LEFTOVER_PROBE", "1")
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("PROBE "))
        .unwrap_or_else(|| panic!("no PROBE line in:\n{stdout}"));
    let mut dir = PathBuf::new();
    let mut pid = 0i32;
    for part in line.split_whitespace() {
        if let Some(d) = part.strip_prefix("dir=") {
            dir = PathBuf::from(d);
        } else if let Some(p) = part.strip_prefix("pid=") {
            pid = p.parse().expect("pid");
        }
    }
    assert!(pid > 0, "{line}");
    let start = Instant::now();
    let alive = || PathBuf::from(format!("/proc/{pid}")).exists();
    while alive() || dir.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "30 s after the test binary exited: server {pid} alive = {}, {} exists = {}",
            alive(),
            dir.display(),
            dir.exists()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
