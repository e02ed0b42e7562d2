//! A throwaway PostgreSQL for tests: a cluster in a temp folder on a free loopback port, run as the
//! unprivileged `postgres` user (or as the current user when that is not root), and a fresh database
//! per test.
//!
//! [`database`] is what most tests want: one cluster per test binary, started on first use and
//! shared through a `OnceLock`, and a new database on it for the calling test (dropped again when the
//! [`TestDb`] goes). A test that stops and starts the server mid-run starts a [`Cluster`] of its own.
//! Every cluster has a watchdog process: when the test binary exits, however it exits, the watchdog
//! shuts the server down and removes its folder, so no server is left behind.
//!
//! The server binaries are found in `$BOUNCED_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`
//! (Debian), else the folder `pg_config --bindir` names. With `BOUNCED_REQUIRE_POSTGRES=1` (as CI sets
//! it) a missing PostgreSQL fails the test; without it the test prints why it skipped.

#[path = "cert.rs"]
pub mod cert;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The superuser `initdb` creates; tests connect as it over TCP with `trust` authentication.
pub const SUPERUSER: &str = "postgres";

/// The folder holding `initdb`, `postgres` and `psql`, when PostgreSQL is installed.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BOUNCED_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").exists().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && dir.join("initdb").exists()).then_some(dir)
}

/// Whether this run insists on PostgreSQL (`BOUNCED_REQUIRE_POSTGRES=1`).
pub fn required() -> bool {
    std::env::var("BOUNCED_REQUIRE_POSTGRES").as_deref() == Ok("1")
}

/// Whether PostgreSQL can be used; panics when it is missing but required, prints the skip otherwise.
pub fn available(test: &str) -> bool {
    if bin_dir().is_some() {
        return true;
    }
    assert!(
        !required(),
        "{test}: PostgreSQL is not installed and BOUNCED_REQUIRE_POSTGRES=1 (run ci/install-deps.sh)"
    );
    super::skipped(
        test,
        "PostgreSQL is not installed (ci/install-deps.sh installs Debian's postgresql)",
    );
    false
}

/// The cluster shared by every test of this binary, started on first use; `None` (skip printed)
/// when PostgreSQL is missing and not required. Never stop it: other tests use it.
pub fn shared(test: &str) -> Option<&'static Cluster> {
    static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
    if !available(test) {
        return None;
    }
    match SHARED.get_or_init(|| Cluster::start(Tuning::Fast)) {
        Ok(c) => Some(c),
        Err(e) => panic!("{test}: cannot start a PostgreSQL for the tests: {e}"),
    }
}

/// A fresh, empty database for `test` on the shared cluster; `None` (skip printed) when PostgreSQL
/// is missing and not required.
pub fn database(test: &str) -> Option<TestDb> {
    shared(test).map(|c| c.create_database(test))
}

/// How the server trades safety for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// No fsync: a test cluster lives as long as its test binary, and the operating system keeps
    /// the data across a crash of the server itself. Commits stay synchronous (the write-ahead log
    /// is written before a commit returns), so a crashed server loses nothing it acknowledged.
    Fast,
    /// The server's defaults (fsync, synchronous commits): what an operator runs, for benchmarks.
    Durable,
}

/// Who runs the server: the `postgres` user when we are root (the server refuses root), else us.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn run_as() -> Result<Option<RunAs>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new(SUPERUSER).map_err(|e| e.to_string())?;
    // SAFETY: a valid C string; the returned record is read at once, before any other getpw call.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(
            "running as root, and there is no `postgres` user to run the server as (Debian's \
             postgresql package creates it)"
                .into(),
        );
    }
    // SAFETY: pw is non-null and points to a valid passwd record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some(RunAs { uid, gid }))
}

/// Makes `cmd` run as `who` (groups, group, then user), from a folder it may enter.
fn drop_to(cmd: &mut Command, who: Option<RunAs>, cwd: &Path) {
    cmd.current_dir(cwd);
    for var in [
        "PGDATA",
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGDATABASE",
        "PGSERVICE",
        "PGSSLMODE",
        "PGOPTIONS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("LC_ALL", "C").env("TZ", "UTC");
    if let Some(RunAs { uid, gid }) = who {
        // SAFETY: between fork and exec only async-signal-safe calls (setgroups, setgid, setuid).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// How to reach a cluster with `psql`: enough to create, drop and query databases from any thread.
#[derive(Debug, Clone)]
pub struct Client {
    bin: PathBuf,
    /// The loopback port the server listens on.
    pub port: u16,
}

impl Client {
    /// The URL of database `db` for the superuser, over TCP on 127.0.0.1.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs `sql` in database `db` with `psql` (unaligned, tuples only); its output, or its error.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, "-d", db, "-c", sql])
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env_remove("PGOPTIONS")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// Runs `sql` in database `db`; panics with psql's error when it fails.
    pub fn exec(&self, db: &str, sql: &str) -> String {
        self.psql(db, sql)
            .unwrap_or_else(|e| panic!("psql on {db} failed: {e}\n{sql}"))
    }

    /// Whether the server accepts connections now.
    pub fn ready(&self) -> bool {
        self.psql("postgres", "select 1").is_ok()
    }
}

/// A running (or stopped, between [`Cluster::stop`] and [`Cluster::start_again`]) PostgreSQL cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The temp folder: `data/` (the cluster), the Unix socket, `postgres.log`.
    pub dir: PathBuf,
    client: Client,
    who: Option<RunAs>,
    tuning: Tuning,
    server: Mutex<Option<Child>>,
    watchdog: Mutex<Option<Child>>,
}

impl Cluster {
    /// Creates a cluster in a new temp folder and starts it on a free loopback port.
    pub fn start(tuning: Tuning) -> Result<Cluster, String> {
        let bin = bin_dir().ok_or("PostgreSQL is not installed")?;
        let who = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("pg")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp folder: {e}"))?
            .keep();
        let cleanup = |e: String| {
            let _ = fs::remove_dir_all(&dir);
            e
        };
        let mut perm = fs::metadata(&dir).map_err(|e| e.to_string())?.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        fs::set_permissions(&dir, perm).map_err(|e| cleanup(e.to_string()))?;
        if let Some(w) = who {
            std::os::unix::fs::chown(&dir, Some(w.uid), Some(w.gid))
                .map_err(|e| cleanup(format!("chown {}: {e}", dir.display())))?;
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .arg("--no-instructions")
            .stdin(Stdio::null());
        drop_to(&mut initdb, who, &dir);
        let out = initdb
            .output()
            .map_err(|e| cleanup(format!("cannot run initdb: {e}")))?;
        if !out.status.success() {
            return Err(cleanup(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        if tuning == Tuning::Fast {
            secure_role_needs_tls_and_password(&dir, who).map_err(&cleanup)?;
        }
        let cluster = Cluster {
            dir: dir.clone(),
            client: Client { bin, port: 0 },
            who,
            tuning,
            server: Mutex::new(None),
            watchdog: Mutex::new(None),
        };
        cluster.spawn_watchdog()?;
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match cluster.spawn_server(port) {
                Ok(()) => {
                    // The port is fixed from here on: a restart keeps the URLs valid.
                    let mut c = cluster;
                    c.client.port = port;
                    return Ok(c);
                }
                Err(e) => last = e,
            }
        }
        Err(format!("the server did not start: {last}"))
    }

    /// The server's self-signed certificate (for `127.0.0.1` and `localhost`): the CA a client
    /// verifying the server trusts.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// How to reach this cluster with `psql`.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.client.port
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        self.client.url(db)
    }

    /// The process id of the server (the postmaster), while it runs.
    pub fn server_pid(&self) -> Option<u32> {
        self.server
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(Child::id))
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// A watchdog that waits for this test process to end, then shuts the server down (immediate
    /// mode) and removes the folder. Runs in a process group of its own so an interrupt of the test
    /// run does not stop it before it has cleaned up.
    fn spawn_watchdog(&self) -> Result<(), String> {
        let script = r#"
while kill -0 "$0" 2>/dev/null; do sleep 0.2; done
pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ]; then
    kill -QUIT "$pid" 2>/dev/null
    n=0
    while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
    kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$1"
"#;
        let child = Command::new("sh")
            .args(["-c", script])
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the watchdog: {e}"))?;
        *self.watchdog.lock().expect("watchdog lock") = Some(child);
        Ok(())
    }

    fn spawn_server(&self, port: u16) -> Result<(), String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .map_err(|e| format!("log file: {e}"))?;
        let mut cmd = Command::new(self.client.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=300"])
            .args(["-c", "log_min_messages=warning"]);
        if self.tuning == Tuning::Fast {
            cmd.args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!("ssl_cert_file={}", self.ca_file().display()))
                .arg("-c")
                .arg(format!(
                    "ssl_key_file={}",
                    self.dir.join("key.pem").display()
                ));
            cmd.args(["-c", "fsync=off"])
                .args(["-c", "full_page_writes=off"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0);
        drop_to(&mut cmd, self.who, &self.dir);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run postgres: {e}"))?;
        let probe = Client {
            bin: self.client.bin.clone(),
            port,
        };
        let start = Instant::now();
        loop {
            if probe.ready() {
                *self.server.lock().expect("server lock") = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "postgres exited with {status}; log:\n{}",
                    self.log()
                ));
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("not ready within 60 s; log:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal_and_wait(&self, sig: i32) {
        let Some(mut child) = self.server.lock().expect("server lock").take() else {
            return;
        };
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: kill(2) on the server we spawned and have not waited for yet.
        unsafe {
            libc::kill(pid, sig);
        }
        let start = Instant::now();
        while matches!(child.try_wait(), Ok(None)) {
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.wait();
    }

    /// Stops the server the way an operator's `pg_ctl stop -m fast` does: open connections are
    /// closed, and it waits until the server has exited.
    pub fn stop(&self) {
        self.signal_and_wait(libc::SIGINT);
    }

    /// Stops the server at once, without a checkpoint (`-m immediate`, as after a crash): the next
    /// start recovers from the write-ahead log.
    pub fn crash(&self) {
        self.signal_and_wait(libc::SIGQUIT);
    }

    /// Starts the stopped server again on the same port (so every URL stays valid).
    pub fn start_again(&self) {
        if self.server.lock().expect("server lock").is_some() {
            return;
        }
        let start = Instant::now();
        loop {
            // The port may linger a moment after the old server closed it.
            match self.spawn_server(self.client.port) {
                Ok(()) => return,
                Err(e) if start.elapsed() > Duration::from_secs(30) => {
                    panic!("PostgreSQL did not start again: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// A fresh empty database named after `test` (and unique in this cluster).
    pub fn create_database(&self, test: &str) -> TestDb {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let stem: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = format!("t{n}_{stem}");
        self.client
            .exec("postgres", &format!("create database \"{name}\""));
        TestDb {
            url: self.client.url(&name),
            name,
            client: self.client.clone(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.signal_and_wait(libc::SIGINT);
        if let Some(mut w) = self.watchdog.lock().ok().and_then(|mut g| g.take()) {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A database made for one test; dropped (its connections closed first) when this goes.
#[derive(Debug)]
pub struct TestDb {
    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub url: String,
    /// The database's name.
    pub name: String,
    client: Client,
}

impl TestDb {
    /// How to reach the cluster holding it.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `sql` in this database; panics with psql's error when it fails.
    pub fn exec(&self, sql: &str) -> String {
        self.client.exec(&self.name, sql)
    }

    /// One integer from `sql` (for example a `count(*)`).
    pub fn int(&self, sql: &str) -> i64 {
        let out = self.exec(sql);
        out.parse()
            .unwrap_or_else(|_| panic!("`{sql}` gave `{out}`, not an integer"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = self.client.psql(
            "postgres",
            &format!("drop database if exists \"{}\" with (force)", self.name),
        );
    }
}

/// The role that, unlike every other, must log in over TLS with a password (SCRAM): what a
/// production server asks, for the tests of the client's TLS and password handling.
pub const SECURE_ROLE: &str = "bounced_secure";

/// Writes the server's certificate and key into `dir` (with openssl) and puts [`SECURE_ROLE`]'s
/// rules first in `pg_hba.conf`: TLS and a SCRAM password, nothing else. Test clusters only: a
/// benchmark's server keeps the defaults.
fn secure_role_needs_tls_and_password(dir: &Path, who: Option<RunAs>) -> Result<(), String> {
    let made = cert::self_signed_cert(dir);
    if !made {
        return Err("openssl could not make the server's certificate".into());
    }
    for file in ["cert.pem", "key.pem"] {
        let path = dir.join(file);
        if let Some(w) = who {
            std::os::unix::fs::chown(&path, Some(w.uid), Some(w.gid))
                .map_err(|e| format!("chown {}: {e}", path.display()))?;
        }
        let mut perm = fs::metadata(&path)
            .map_err(|e| e.to_string())?
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
        fs::set_permissions(&path, perm).map_err(|e| e.to_string())?;
    }
    let hba = dir.join("data").join("pg_hba.conf");
    let rest = fs::read_to_string(&hba).map_err(|e| format!("{}: {e}", hba.display()))?;
    fs::write(
        &hba,
        format!(
            "hostssl all {SECURE_ROLE} 127.0.0.1/32 scram-sha-256\nhost all {SECURE_ROLE} 127.0.0.1/32 reject\n{rest}"
        ),
    )
    .map_err(|e| format!("{}: {e}", hba.display()))
}
