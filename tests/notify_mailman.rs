//! The Mailman 3 target against a real GNU Mailman core: its REST runner started here on loopback
//! (installed by ci/install-deps.sh into $MAILMAN_VENV, default /opt/mailman3-venv), a domain, two
//! lists and their members created through that API, then `bounced run` with two Mailman targets.
//! A hard bounce dropped into the Maildir must leave the member's delivery disabled on one list and
//! the member gone from the other, as Mailman's own REST API reports; unsuppressing re-enables the
//! first. `BOUNCED_REQUIRE_MAILMAN=1` (CI) turns a missing Mailman into a failure.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{DaemonCmd, bounce, deliver, make_maildir};

const USER: &str = "restadmin";
const PASS: &str = "restpass";

/// A Mailman REST runner in its own process group, killed (with its folder removed) on drop.
struct Mailman {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn venv() -> Option<PathBuf> {
    let v = PathBuf::from(
        std::env::var("MAILMAN_VENV").unwrap_or_else(|_| "/opt/mailman3-venv".to_owned()),
    );
    v.join("bin/runner").exists().then_some(v)
}

impl Mailman {
    fn start(venv: &Path) -> Mailman {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let (rest, lmtp) = (free_port(), free_port());
        let cfg = dir.path().join("mailman.cfg");
        fs::write(
            &cfg,
            format!(
                "[mailman]\nlayout: testing\nsite_owner: postmaster@example.com\n\n\
                 [paths.testing]\nvar_dir: {dir}/var\nbin_dir: {venv}/bin\n\n\
                 [database]\nurl: sqlite:///$DATA_DIR/mailman.db\n\n\
                 [webservice]\nhostname: 127.0.0.1\nport: {rest}\nadmin_user: {USER}\nadmin_pass: {PASS}\nworkers: 1\n\n\
                 [mta]\nincoming: mailman.mta.null.NullMTA\nsmtp_host: 127.0.0.1\nsmtp_port: 9\n\
                 lmtp_host: 127.0.0.1\nlmtp_port: {lmtp}\n",
                dir = dir.path().display(),
                venv = venv.display(),
            ),
        )
        .expect("mailman.cfg");
        let log = fs::File::create(dir.path().join("stdout.log")).expect("log");
        let child = Command::new(venv.join("bin/runner"))
            .arg("-C")
            .arg(&cfg)
            .args(["-r", "rest"])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start mailman's rest runner");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut m = Mailman {
            child,
            base: format!("http://127.0.0.1:{rest}/3.1"),
            _dir: dir,
            rt,
            client: reqwest::Client::new(),
        };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!("mailman exited with {status}: {}", m.logs());
            }
            if m.try_get("/system/versions").is_some_and(|(s, _)| s == 200) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "mailman not ready in 60s: {}",
                m.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    fn logs(&self) -> String {
        let d = self._dir.path();
        format!(
            "{}\n{}",
            fs::read_to_string(d.join("stdout.log")).unwrap_or_default(),
            fs::read_to_string(d.join("var/logs/mailman.log")).unwrap_or_default()
        )
    }

    fn try_get(&self, path: &str) -> Option<(u16, serde_json::Value)> {
        self.rt.block_on(async {
            let r = self
                .client
                .get(format!("{}{path}", self.base))
                .basic_auth(USER, Some(PASS))
                .send()
                .await
                .ok()?;
            let s = r.status().as_u16();
            Some((s, r.json().await.unwrap_or_default()))
        })
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let (s, v) = self.try_get(path).expect("mailman answers");
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> u16 {
        self.rt.block_on(async {
            self.client
                .post(format!("{}{path}", self.base))
                .basic_auth(USER, Some(PASS))
                .form(form)
                .send()
                .await
                .expect("POST")
                .status()
                .as_u16()
        })
    }

    fn set_delivery_status(&self, member: &str, status: &str) {
        let s = self.rt.block_on(async {
            self.client
                .patch(format!("{}/members/{member}/preferences", self.base))
                .basic_auth(USER, Some(PASS))
                .json(&serde_json::json!({ "delivery_status": status }))
                .send()
                .await
                .expect("PATCH")
                .status()
                .as_u16()
        });
        assert_eq!(s, 204, "set {member} {status}");
    }

    fn subscribe(&self, list: &str, address: &str) -> String {
        let s = self.post(
            "/members",
            &[
                ("list_id", list),
                ("subscriber", address),
                ("pre_verified", "true"),
                ("pre_confirmed", "true"),
                ("pre_approved", "true"),
                ("send_welcome_message", "false"),
            ],
        );
        assert_eq!(s, 201, "subscribe {address} to {list}");
        self.member(list, address).expect("member id")
    }

    fn member(&self, list: &str, address: &str) -> Option<String> {
        let v = self.get(&format!(
            "/members/find?list_id={list}&subscriber={address}"
        ));
        v["entries"][0]["member_id"].as_str().map(str::to_owned)
    }

    fn delivery_status(&self, member: &str) -> String {
        self.get(&format!("/members/{member}/all/preferences"))["delivery_status"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

impl Drop for Mailman {
    fn drop(&mut self) {
        let pgid = i32::try_from(self.child.id()).unwrap_or(0);
        // SAFETY: kill has no memory preconditions; the group is the runner we started.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn wait(limit: Duration, what: &str, d: &common::Daemon, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}; daemon log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_hard_bounce_disables_or_removes_the_member_in_a_real_mailman() {
    let Some(venv) = venv() else {
        assert!(
            std::env::var("BOUNCED_REQUIRE_MAILMAN").as_deref() != Ok("1"),
            "Mailman 3 is required here but $MAILMAN_VENV/bin/runner is missing (run ci/install-deps.sh)"
        );
        common::skipped(
            "a_hard_bounce_disables_or_removes_the_member_in_a_real_mailman",
            "Mailman 3 is not installed (ci/install-deps.sh puts it in /opt/mailman3-venv)",
        );
        return;
    };
    common::engines::each(
        "a_hard_bounce_disables_or_removes_the_member_in_a_real_mailman",
        |e| {
            a_hard_bounce_disables_or_removes_the_member_on(&venv, &e);
        },
    );
}

fn a_hard_bounce_disables_or_removes_the_member_on(venv: &Path, engine: &common::engines::Engine) {
    let mm = Mailman::start(venv);
    assert_eq!(mm.post("/domains", &[("mail_host", "example.com")]), 201);
    for list in ["news@example.com", "other@example.com"] {
        assert_eq!(mm.post("/lists", &[("fqdn_listname", list)]), 201);
    }
    let victim = "user5@example.com";
    let on_news = mm.subscribe("news.example.com", victim);
    let bystander = mm.subscribe("news.example.com", "bob@example.com");
    mm.subscribe("other.example.com", victim);
    assert_eq!(mm.delivery_status(&on_news), "enabled");
    // A member a moderator had stopped before its bounce: not bounced's to restart.
    let held = "user6@example.com";
    let held_on_news = mm.subscribe("news.example.com", held);
    mm.set_delivery_status(&held_on_news, "by_moderator");

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let md = dir.join("Maildir");
    make_maildir(&md);
    let creds = dir.join("mailman-credentials");
    fs::write(&creds, format!("{USER}:{PASS}\n")).expect("credentials");
    let config = dir.join("bounced.toml");
    let targets = |name: &str, list: &str, action: &str| {
        format!(
            "[[notify]]\nname = \"{name}\"\nkind = \"mailman\"\nurl = \"{}\"\ncredentials_file = {:?}\nlists = [\"{list}\"]\naction = \"{action}\"\nbackoff_max = \"1s\"\n\n",
            mm.base,
            creds.display().to_string()
        )
    };
    fs::write(
        &config,
        format!(
            "[store]\n{}\n\n[daemon]\nbatch_delay = \"10ms\"\n\n[[maildir]]\npath = {:?}\n\n{}{}",
            if engine.is_postgres() {
                format!("url = {:?}", engine.location.display().to_string())
            } else {
                format!("path = {:?}", dir.join("bounced.db").display().to_string())
            },
            md.display().to_string(),
            targets("mm-news", "news.example.com", "disable"),
            targets("mm-other", "other.example.com", "unsubscribe"),
        ),
    )
    .expect("config");
    let cfg = config.display().to_string();
    let mut d = DaemonCmd::new(&["--config", &cfg], &dir.join("daemon.log")).spawn();
    d.wait_log_count("notify worker started", 2, Duration::from_secs(60));

    deliver(&md, "hard", bounce(5).as_bytes());
    deliver(&md, "held", bounce(6).as_bytes());
    wait(
        Duration::from_secs(30),
        "delivery disabled in Mailman",
        &d,
        || mm.delivery_status(&on_news) == "by_bounces",
    );
    wait(
        Duration::from_secs(30),
        "the member gone from the other list",
        &d,
        || mm.member("other.example.com", victim).is_none(),
    );
    assert_eq!(mm.delivery_status(&bystander), "enabled");
    assert_eq!(
        mm.get("/lists/other.example.com")["member_count"],
        0,
        "{}",
        mm.logs()
    );

    // Unsuppressing re-enables what bounced disabled (the removed membership stays removed).
    let out = Command::new(env!("CARGO_BIN_EXE_bounced"))
        .args(["unsuppress", victim, held, "--config", &cfg])
        .env_remove("BOUNCED_DB")
        .output()
        .expect("unsuppress");
    assert!(out.status.success(), "{out:?}");
    wait(
        Duration::from_secs(30),
        "delivery enabled again",
        &d,
        || mm.delivery_status(&on_news) == "enabled",
    );
    assert!(mm.member("other.example.com", victim).is_none());
    let outbox = || {
        let listed = Command::new(env!("CARGO_BIN_EXE_bounced"))
            .args(["outbox", "list", "--format", "jsonl", "--config", &cfg])
            .output()
            .expect("outbox list");
        String::from_utf8_lossy(&listed.stdout).into_owned()
    };
    wait(Duration::from_secs(30), "every event delivered", &d, || {
        let text = outbox();
        text.lines().count() == 8 && text.lines().all(|l| l.contains("\"state\":\"delivered\""))
    });
    assert_eq!(mm.delivery_status(&held_on_news), "by_moderator");
    assert_eq!(d.stop(Duration::from_secs(30)), 0);
    let text = outbox();
    assert_eq!(text.lines().count(), 8, "{text}");
    assert!(
        text.lines().all(|l| l.contains("\"state\":\"delivered\"")),
        "{text}"
    );
}
