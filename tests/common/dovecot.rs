//! A private Dovecot IMAP server per test, on 127.0.0.1, from a configuration written into a temp
//! folder; and a small IMAP client to APPEND and inspect.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;

/// Whether Dovecot can be used; panics when it is missing but required (`BOUNCED_REQUIRE_DOVECOT=1`).
pub fn available(test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v dovecot"])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var("BOUNCED_REQUIRE_DOVECOT").as_deref() != Ok("1"),
            "{test}: dovecot is not installed and BOUNCED_REQUIRE_DOVECOT=1 (run ci/install-deps.sh)"
        );
        super::skipped(
            test,
            "dovecot is not installed (ci/install-deps.sh installs it)",
        );
    }
    found
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A running Dovecot.
pub struct Dovecot {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
    child: Option<Child>,
}

pub const USER: &str = "testuser";
pub const PASSWORD: &str = "s3cret-pw";

impl Dovecot {
    /// Writes the configuration, a certificate and the mail folders, then starts the server.
    pub fn start() -> Dovecot {
        let dir = tempfile::Builder::new()
            .prefix("dc")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let d = dir.path();
        let mut perm = fs::metadata(d).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        fs::set_permissions(d, perm).expect("chmod");
        assert!(super::self_signed_cert(d), "openssl failed");
        let home = d.join("home").join(USER);
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir_all(home.join("Maildir").join(sub)).expect("maildir");
        }
        fs::write(
            d.join("passwd"),
            format!("{USER}:{{PLAIN}}{PASSWORD}::::{}::\n", home.display()),
        )
        .expect("passwd");
        let root = unsafe { libc::geteuid() } == 0;
        let (uid, gid, users) = if root {
            let _ = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(d.join("home"))
                .status();
            (
                "65534".to_owned(),
                "65534".to_owned(),
                "default_login_user = dovenull\ndefault_internal_user = dovecot\n".to_owned(),
            )
        } else {
            let uid = unsafe { libc::geteuid() }.to_string();
            let gid = unsafe { libc::getegid() }.to_string();
            let name = std::env::var("USER").unwrap_or_else(|_| uid.clone());
            let users = format!(
                "default_login_user = {name}\ndefault_internal_user = {name}\ndefault_internal_group = {name}\n"
            );
            (uid, gid, users)
        };
        let mut dc = Dovecot {
            dir,
            port: 0,
            tls_port: 0,
            child: None,
        };
        dc.write_config(&uid, &gid, &users);
        dc.spawn();
        dc
    }

    fn write_config(&mut self, uid: &str, gid: &str, users: &str) {
        self.port = free_port();
        self.tls_port = free_port();
        let d = self.dir.path().display().to_string();
        let (port, tls_port) = (self.port, self.tls_port);
        let conf = format!(
            "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
instance_name = test-{port}\nlog_path = {d}/dovecot.log\n{users}\
mail_uid = {uid}\nmail_gid = {gid}\nfirst_valid_uid = {uid}\nlast_valid_uid = {uid}\n\
first_valid_gid = {gid}\nlast_valid_gid = {gid}\ndisable_plaintext_auth = no\n\
auth_mechanisms = plain login\nauth_failure_delay = 0\n\
passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
userdb {{\n  driver = passwd-file\n  args = username_format=%u {d}/passwd\n}}\n\
mail_location = maildir:~/Maildir\n\
namespace inbox {{\n  inbox = yes\n  separator = /\n}}\n\
ssl = yes\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\n\
service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n\
  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {tls_port}\n    ssl = yes\n  }}\n}}\n\
protocol imap {{\n  mail_max_userip_connections = 100\n}}\n\
service anvil {{\n  chroot =\n}}\nservice ipc {{\n  chroot =\n}}\nservice old-stats {{\n  chroot =\n}}\n\
service imap-urlauth-login {{\n  chroot =\n}}\n"
        );
        fs::write(self.dir.path().join("dovecot.conf"), conf).expect("conf");
    }

    fn spawn(&mut self) {
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start dovecot");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut line = String::new();
                let _ = BufReader::new(s).read_line(&mut line);
                if line.starts_with("* OK") {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "dovecot did not start: {}",
                fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the server (SIGTERM to its process group) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pgid = i32::try_from(c.id()).expect("pid");
            // SAFETY: signalling the process group of a child we started in its own group.
            unsafe {
                libc::kill(-pgid, libc::SIGTERM);
            }
            let _ = c.wait();
            // Wait until the port is free again.
            let start = Instant::now();
            while TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && start.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Kills the server at once (SIGKILL to its process group: master, login, auth and every IMAP
    /// session), as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pgid = i32::try_from(c.id()).expect("pid");
            // SAFETY: signalling the process group of a child we started in its own group.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            let _ = c.wait();
            let start = Instant::now();
            while TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && start.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            // The killed sessions' dotlocks (dovecot-uidlist.lock) would make the new server
            // refuse the mailbox ("Mailbox is locked") until they go stale, minutes later: that
            // tests Dovecot, not its client, so they go with the processes that held them.
            remove_locks(&self.dir.path().join("home"));
        }
    }

    /// Starts the server again on the same ports.
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// The user's INBOX as a Maildir.
    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("home").join(USER).join("Maildir")
    }

    /// The self-signed certificate (to trust as a CA).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Delivers into the INBOX the Maildir way (as an MDA would), readable by the server.
    pub fn deliver_file(&self, name: &str, body: &[u8]) {
        let md = self.maildir();
        super::deliver(&md, name, body);
    }

    /// A file in the config folder (a password file, a config file).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Errors in the server log.
    pub fn log_errors(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("dovecot.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Error") || l.contains("Fatal"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A test-side IMAP session over plain TCP.
pub struct Probe {
    session: async_imap::Session<tokio::net::TcpStream>,
}

impl Probe {
    /// Logs in.
    pub async fn connect(port: u16) -> Probe {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let mut client = async_imap::Client::new(tcp);
        let _ = client.read_response().await.expect("greeting");
        let session = client
            .login(USER, PASSWORD)
            .await
            .map_err(|(e, _)| e)
            .expect("login");
        Probe { session }
    }

    /// APPENDs one message to `mailbox`.
    pub async fn append(&mut self, mailbox: &str, body: &[u8]) {
        self.session
            .append(mailbox, None, None, body)
            .await
            .expect("append");
    }

    /// UIDs matching a search in `mailbox`.
    pub async fn search(&mut self, mailbox: &str, query: &str) -> usize {
        self.session.examine(mailbox).await.expect("examine");
        self.session.uid_search(query).await.expect("search").len()
    }

    /// Messages in `mailbox`.
    pub async fn count(&mut self, mailbox: &str) -> u32 {
        self.session
            .examine(mailbox)
            .await
            .map(|m| m.exists)
            .unwrap_or(0)
    }

    /// The UIDVALIDITY of `mailbox`.
    pub async fn uidvalidity(&mut self, mailbox: &str) -> u32 {
        self.session
            .examine(mailbox)
            .await
            .expect("examine")
            .uid_validity
            .unwrap_or(0)
    }

    /// Clears `\Seen` on every message of `mailbox`.
    pub async fn mark_all_unseen(&mut self, mailbox: &str) {
        self.session.select(mailbox).await.expect("select");
        self.session
            .store("1:*", "-FLAGS.SILENT (\\Seen)")
            .await
            .expect("store")
            .try_collect::<Vec<_>>()
            .await
            .expect("store");
    }

    /// Logs out.
    pub async fn close(mut self) {
        let _ = self.session.logout().await;
    }
}

/// The path of `p` as UTF-8 for a configuration file.
pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Removes every `*.lock` file under `dir`.
fn remove_locks(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => remove_locks(&path),
            Ok(_) if path.extension().is_some_and(|x| x == "lock") => {
                let _ = fs::remove_file(&path);
            }
            _ => {}
        }
    }
}
