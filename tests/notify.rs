//! The outbox and its targets, from the real binary: `bounced run` with `[[notify]]` targets, a
//! Maildir to drop bounces into, and the receivers written here (a webhook receiver that checks
//! signatures and the event schema, a listmonk-shaped bounce endpoint, an exec command).

mod common;
mod notify_common;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::engines::{self, Engine};
use common::{DaemonCmd, bounce, db_int, db_rows, deliver, make_maildir, wait_for};
use notify_common::Receiver;

const SECRET: &str = "s3cret-for-the-webhook-test-0123456789";

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    md: PathBuf,
    /// The SQLite file or the PostgreSQL URL.
    db: PathBuf,
    config: PathBuf,
    _engine: Engine,
}

/// A folder with a Maildir, a secret file and a configuration holding the `notify` section that
/// `notify` writes for that folder, its store on `engine`.
fn setup(engine: Engine, notify: impl FnOnce(&Path) -> String) -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let notify = notify(&dir);
    let md = dir.join("Maildir");
    make_maildir(&md);
    fs::write(dir.join("secret"), format!("{SECRET}\n")).expect("secret");
    let (db, store) = if engine.is_postgres() {
        let url = engine.location.display().to_string();
        (engine.location.clone(), format!("url = {url:?}"))
    } else {
        let db = dir.join("bounced.db");
        let line = format!("path = {:?}", db.display().to_string());
        (db, line)
    };
    let config = dir.join("bounced.toml");
    fs::write(
        &config,
        format!(
            "[store]\n{store}\n\n[daemon]\nbatch_delay = \"10ms\"\n\n[[maildir]]\npath = {md:?}\n\n{notify}\n",
            md = md.display().to_string(),
        ),
    )
    .expect("config");
    Setup {
        _tmp: tmp,
        dir,
        md,
        db,
        config,
        _engine: engine,
    }
}

fn webhook(url: &str, dir: &Path, extra: &str) -> String {
    format!(
        "[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret_file = {:?}\nbackoff_max = \"1s\"\n{extra}\n",
        dir.join("secret").display().to_string()
    )
}

fn bounced(s: &Setup, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bounced"))
        .args(args)
        .arg("--config")
        .arg(&s.config)
        .env_remove("BOUNCED_DB")
        .env_remove("BOUNCED_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run bounced")
}

fn daemon(s: &Setup) -> common::Daemon {
    daemon_with(s, &[])
}

fn daemon_with(s: &Setup, extra: &[&str]) -> common::Daemon {
    let config = s.config.display().to_string();
    let mut args = vec!["--config", config.as_str()];
    args.extend_from_slice(extra);
    let d = DaemonCmd::new(&args, &s.dir.join("daemon.log")).spawn();
    d.wait_log("notify worker started", Duration::from_secs(60));
    d
}

/// The base URL a daemon started with `--http 127.0.0.1:0` logged.
fn http_base(d: &common::Daemon) -> String {
    d.wait_log("HTTP: listening", Duration::from_secs(30));
    let log = d.log();
    let at = log.find("http://127.0.0.1:").expect("url in the log");
    let url: String = log[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"')
        .collect();
    url.trim_end_matches('/').to_owned()
}

/// An HTTP request to the daemon: (status, body text).
fn http(method: &str, url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let c = reqwest::Client::new();
        let req = match method {
            "POST" => c.post(url),
            _ => c.get(url),
        };
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    })
}

/// Deliveries as `bounced outbox list --format jsonl` prints them.
fn outbox(s: &Setup, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["outbox", "list", "--format", "jsonl"];
    args.extend_from_slice(extra);
    let out = bounced(s, &args);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect()
}

/// The suppressed addresses and the addresses with a `suppressed` event, from the database.
fn suppressed_and_announced(db: &Path) -> (HashSet<String>, HashSet<String>) {
    let column = |sql| -> HashSet<String> {
        db_rows(db, sql)
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect()
    };
    (
        column("select address from recipients where state = 'suppressed'"),
        column("select address from outbox_events where event = 'suppressed'"),
    )
}

/// The stored events as (id, event, address).
fn stored_events(db: &Path) -> Vec<(String, String, String)> {
    db_rows(
        db,
        "select id, event, address from outbox_events order by seq",
    )
    .into_iter()
    .filter_map(|r| match r.as_slice() {
        [id, event, address] => Some((id.clone(), event.clone(), address.clone())),
        _ => None,
    })
    .collect()
}

#[test]
fn webhook_receives_signed_events_in_order_from_the_real_binary() {
    engines::each(
        "webhook_receives_signed_events_in_order_from_the_real_binary",
        webhook_receives_signed_events_in_order_from_the_real_binary_on,
    );
}

fn webhook_receives_signed_events_in_order_from_the_real_binary_on(engine: Engine) {
    let rx = Receiver::start(SECRET);
    let s = setup(engine, |dir| {
        webhook(
            &rx.url(),
            dir,
            "events = [\"suppressed\", \"unsuppressed\", \"bounce:hard\"]",
        )
    });
    let mut d = daemon(&s);
    deliver(&s.md, "one", bounce(1).as_bytes());
    d.wait_until(Duration::from_secs(20), "two events", || rx.count() >= 2);
    let got = rx.accepted();
    assert!(rx.bad().is_empty(), "{:?}", rx.bad());
    let (b, sup) = (&got[0].body, &got[1].body);
    assert_eq!(b["event"], "bounce", "{got:?}");
    assert_eq!(b["address"], "user1@example.com");
    assert_eq!(b["bounce_type"], "hard");
    assert_eq!(b["status"], "5.1.1");
    assert_eq!(b["cause"], serde_json::Value::Null);
    assert_eq!(b["original_list_id"], serde_json::Value::Null);
    assert_eq!(sup["event"], "suppressed");
    assert_eq!(sup["address"], "user1@example.com");
    assert_eq!(sup["cause"], "hard");
    assert_eq!(sup["bounce_type"], "hard");
    assert_eq!(sup["status"], "5.1.1");
    assert!(
        sup["diagnostic"]
            .as_str()
            .unwrap_or("")
            .contains("User unknown"),
        "{sup}"
    );
    assert!(sup["rule"].as_str().is_some_and(|r| !r.is_empty()), "{sup}");
    assert_ne!(b["id"], sup["id"]);

    // A decision by hand from another process reaches the target too (the worker polls).
    let out = bounced(
        &s,
        &["unsuppress", "user1@example.com", "--reason", "asked"],
    );
    assert!(out.status.success(), "{out:?}");
    d.wait_until(Duration::from_secs(20), "the unsuppressed event", || {
        rx.count() >= 3
    });
    let un = &rx.accepted()[2].body;
    assert_eq!(un["event"], "unsuppressed");
    assert_eq!(un["cause"], "manual");
    assert_eq!(un["address"], "user1@example.com");

    // A repeat of the same bytes records nothing and announces nothing.
    deliver(&s.md, "again", bounce(1).as_bytes());
    wait_for(Duration::from_secs(20), "the repeat recorded", || {
        db_int(&s.db, "select count(*) from messages") >= 1
            && common::names(&s.md, "new").is_empty()
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rx.count(), 3, "{:?}", rx.accepted());
    assert_eq!(d.stop(Duration::from_secs(30)), 0);

    let listed = outbox(&s, &["--state", "delivered"]);
    assert_eq!(listed.len(), 3, "{listed:?}");
    let ids: HashSet<String> = rx.accepted().iter().map(|g| g.id.clone()).collect();
    for row in &listed {
        assert!(ids.contains(row["id"].as_str().unwrap_or("")), "{row}");
        assert_eq!(row["target"], "hook");
        assert_eq!(row["attempts"], 1);
    }
}

#[test]
fn target_down_then_back_gets_every_event_and_4xx_is_dead_at_once() {
    engines::each(
        "target_down_then_back_gets_every_event_and_4xx_is_dead_at_once",
        target_down_then_back_gets_every_event_and_4xx_is_dead_at_once_on,
    );
}

fn target_down_then_back_gets_every_event_and_4xx_is_dead_at_once_on(engine: Engine) {
    let rx = Receiver::start(SECRET);
    rx.answer(503);
    let s = setup(engine, |dir| webhook(&rx.url(), dir, ""));
    let mut d = daemon_with(&s, &["--http", "127.0.0.1:0"]);
    let base = http_base(&d);
    for n in 0..20 {
        deliver(&s.md, &format!("m{n}"), bounce(n).as_bytes());
    }
    d.wait_until(Duration::from_secs(30), "failed attempts", || {
        rx.refused() >= 40
    });
    let pending = outbox(&s, &["--state", "pending"]);
    assert_eq!(pending.len(), 20, "{pending:?}");
    assert!(
        pending
            .iter()
            .all(|r| r["attempts"].as_i64().unwrap_or(0) >= 1
                && r["last_error"].as_str().unwrap_or("").contains("503")),
        "{pending:?}"
    );
    rx.answer(200);
    d.wait_until(
        Duration::from_secs(30),
        "every event after the return",
        || rx.count() >= 20,
    );
    std::thread::sleep(Duration::from_millis(500));
    let by_id = rx.by_id();
    assert_eq!(by_id.len(), 20);
    assert!(by_id.values().all(|(n, _)| *n == 1));
    let addresses: HashSet<String> = by_id
        .values()
        .map(|(_, b)| b["address"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(addresses.len(), 20);
    assert!(rx.bad().is_empty(), "{:?}", rx.bad());

    // A 4xx refusal is final: kept as dead after one attempt, no retry.
    rx.answer(410);
    let refused_before = rx.refused();
    deliver(&s.md, "gone", bounce(100).as_bytes());
    d.wait_until(Duration::from_secs(30), "a dead delivery", || {
        outbox(&s, &["--state", "dead"]).len() == 1
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        rx.refused(),
        refused_before + 1,
        "a 4xx must not be retried"
    );
    let dead = outbox(&s, &["--state", "dead"]);
    assert_eq!(dead[0]["address"], "user100@example.com");
    assert!(dead[0]["last_error"].as_str().unwrap_or("").contains("410"));
    // The HTTP API and the metrics show it too.
    let (status, body) = http("GET", &format!("{base}/api/v1/outbox?state=dead"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["deliveries"][0]["id"], dead[0]["id"], "{v}");
    assert!(
        v["counts"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["state"] == "delivered" && c["count"] == 20)),
        "{v}"
    );
    let (_, metrics) = http("GET", &format!("{base}/metrics"));
    assert!(
        metrics.contains("bounced_outbox_deliveries{target=\"hook\",state=\"dead\"} 1"),
        "{metrics}"
    );
    let (status, body) = http("GET", &format!("{base}/api/v1/outbox?state=lost"));
    assert_eq!(status, 400, "{body}");
    // Retried by the operator once the receiver is fixed: delivered, with the same id.
    rx.answer(200);
    let out = bounced(&s, &["outbox", "retry", "--target", "hook"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 deliveries pending again"));
    d.wait_until(Duration::from_secs(20), "the retried event", || {
        rx.count() == 21
    });
    assert_eq!(rx.accepted()[20].id, dead[0]["id"].as_str().unwrap_or(""));
    assert_eq!(d.stop(Duration::from_secs(30)), 0);
    // Drop: a dead delivery can also be removed, through the API or the command.
    rx.answer(400);
    let mut d = daemon_with(&s, &["--http", "127.0.0.1:0"]);
    let base = http_base(&d);
    deliver(&s.md, "gone2", bounce(101).as_bytes());
    d.wait_until(Duration::from_secs(30), "a second dead delivery", || {
        outbox(&s, &["--state", "dead"]).len() == 1
    });
    let (status, body) = http("POST", &format!("{base}/api/v1/outbox/drop?target=hook"));
    assert_eq!((status, body.as_str()), (200, r#"{"dropped":1}"#));
    assert!(outbox(&s, &["--state", "dead"]).is_empty());
    assert_eq!(d.stop(Duration::from_secs(30)), 0);
    let out = bounced(
        &s,
        &[
            "outbox",
            "drop",
            "--state",
            "delivered",
            "--address",
            "user0@example.com",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 deliveries dropped"),
        "{out:?}"
    );
    assert_eq!(outbox(&s, &["--state", "delivered"]).len(), 20);
}

#[test]
fn sigkill_during_delivery_loses_no_event_and_repeats_keep_their_id() {
    engines::each(
        "sigkill_during_delivery_loses_no_event_and_repeats_keep_their_id",
        sigkill_during_delivery_loses_no_event_and_repeats_keep_their_id_on,
    );
}

fn sigkill_during_delivery_loses_no_event_and_repeats_keep_their_id_on(engine: Engine) {
    let rx = Receiver::start(SECRET);
    // Slow answers keep deliveries in flight when the daemon is killed.
    rx.delay(40);
    let s = setup(engine, |dir| {
        webhook(
            &rx.url(),
            dir,
            "events = [\"suppressed\", \"bounce\"]\nconcurrency = 4",
        )
    });
    let total = 150;
    for n in 0..total {
        deliver(&s.md, &format!("m{n}"), bounce(n).as_bytes());
    }
    let mut kills = 0;
    for round in 0..6 {
        let config = s.config.display().to_string();
        let mut d =
            DaemonCmd::new(&["--config", &config], &s.dir.join(format!("d{round}.log"))).spawn();
        let wait = 300 + fastrand::u64(0..900);
        std::thread::sleep(Duration::from_millis(wait));
        if d.running() {
            common::signal(&d.child, libc::SIGKILL);
            let _ = d.wait_exit(Duration::from_secs(10));
            kills += 1;
        }
        // No change of state without its event, at every kill point.
        let (suppressed, announced) = suppressed_and_announced(&s.db);
        assert_eq!(suppressed, announced, "round {round}");
    }
    assert!(kills >= 4);
    let mut d = daemon(&s);
    d.wait_until(Duration::from_secs(120), "every event delivered", || {
        let stored = stored_events(&s.db);
        stored.len() == 2 * total && {
            let ids = rx.by_id();
            stored.iter().all(|(id, _, _)| ids.contains_key(id))
        }
    });
    assert_eq!(d.stop(Duration::from_secs(30)), 0);
    let stored = stored_events(&s.db);
    let stored_ids: HashMap<&str, &str> = stored
        .iter()
        .map(|(id, _, a)| (id.as_str(), a.as_str()))
        .collect();
    let by_id = rx.by_id();
    // Every event arrived; nothing arrived that is not stored; a repeat has the same id, so an
    // address never got two different suppressed ids.
    assert_eq!(by_id.len(), stored.len());
    let mut per_address: HashMap<(String, String), HashSet<String>> = HashMap::new();
    for (id, (_, body)) in &by_id {
        assert!(stored_ids.contains_key(id.as_str()), "{id}");
        per_address
            .entry((
                body["address"].as_str().unwrap_or("").to_owned(),
                body["event"].as_str().unwrap_or("").to_owned(),
            ))
            .or_default()
            .insert(id.clone());
    }
    assert_eq!(per_address.len(), 2 * total);
    assert!(per_address.values().all(|ids| ids.len() == 1));
    let repeats: usize = by_id.values().map(|(n, _)| n - 1).sum();
    eprintln!("{kills} kills, {repeats} repeated deliveries (same id)");
    let (suppressed, announced) = suppressed_and_announced(&s.db);
    assert_eq!(suppressed.len(), total);
    assert_eq!(suppressed, announced);
    // Per address, the bounce came before the suppression it caused.
    let mut first: HashMap<String, (usize, usize)> = HashMap::new();
    for (i, g) in rx.accepted().iter().enumerate() {
        let a = g.body["address"].as_str().unwrap_or("").to_owned();
        let e = first.entry(a).or_insert((usize::MAX, usize::MAX));
        match g.body["event"].as_str() {
            Some("bounce") => e.0 = e.0.min(i),
            _ => e.1 = e.1.min(i),
        }
    }
    assert!(first.values().all(|(b, s)| b < s), "order per address");
    assert!(rx.bad().is_empty(), "{:?}", rx.bad());
}

#[test]
fn exec_target_runs_a_command_per_event_and_retries_a_failure() {
    engines::each(
        "exec_target_runs_a_command_per_event_and_retries_a_failure",
        exec_target_runs_a_command_per_event_and_retries_a_failure_on,
    );
}

fn exec_target_runs_a_command_per_event_and_retries_a_failure_on(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("events.out");
    let flag = dir.path().join("failed-once");
    // Fails the first time (exit 3), then appends the id and the JSON it read.
    let script = format!(
        "if [ ! -e {flag:?} ]; then touch {flag:?}; echo nope >&2; exit 3; fi; printf '%s ' \"$BOUNCED_EVENT_ID\" >> {out:?}; cat >> {out:?}; echo >> {out:?}",
        flag = flag.display().to_string(),
        out = out.display().to_string()
    );
    let s = setup(engine, |_| {
        format!(
            "[[notify]]\nname = \"script\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", {script:?}]\nbackoff_max = \"1s\"\n"
        )
    });
    let mut d = daemon(&s);
    deliver(&s.md, "one", bounce(7).as_bytes());
    d.wait_until(Duration::from_secs(30), "the command's output", || {
        fs::read_to_string(&out).is_ok_and(|t| t.lines().count() == 1)
    });
    assert_eq!(d.stop(Duration::from_secs(30)), 0);
    let text = fs::read_to_string(&out).expect("output");
    let (id, json) = text.trim().split_once(' ').expect("id and json");
    let v: serde_json::Value = serde_json::from_str(json).expect("json");
    assert_eq!(v["id"], id);
    assert_eq!(v["event"], "suppressed");
    assert_eq!(v["address"], "user7@example.com");
    let row = &outbox(&s, &[])[0];
    assert_eq!(row["state"], "delivered");
    assert_eq!(row["attempts"], 2, "one failure, then success: {row}");
}

#[test]
fn a_new_target_gets_the_events_of_mail_waiting_at_the_first_start() {
    engines::each(
        "a_new_target_gets_the_events_of_mail_waiting_at_the_first_start",
        a_new_target_gets_the_events_of_mail_waiting_at_the_first_start_on,
    );
}

/// A target's starting point is set before the pipeline commits anything: mail already in the
/// Maildir at the first start gives the new target its events.
fn a_new_target_gets_the_events_of_mail_waiting_at_the_first_start_on(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events");
    fs::create_dir(&events).expect("events dir");
    // One file per event: the command may run for several events at once.
    let script = format!(
        "cat > {dir:?}/\"$BOUNCED_EVENT_ID\".json",
        dir = events.display().to_string()
    );
    let s = setup(engine, |_| {
        format!(
            "[[notify]]\nname = \"script\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", {script:?}]\nbackoff_max = \"1s\"\n"
        )
    });
    for n in 1..=3 {
        deliver(&s.md, &format!("waiting-{n}"), bounce(n).as_bytes());
    }
    let read_all = || -> Vec<String> {
        let mut addresses: Vec<String> = fs::read_dir(&events)
            .map(|it| it.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
            .iter()
            .filter_map(|e| fs::read_to_string(e.path()).ok())
            .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|v| v["address"].as_str().unwrap_or_default().to_owned())
            .collect();
        addresses.sort();
        addresses
    };
    let mut d = daemon(&s);
    d.wait_until(Duration::from_secs(30), "three events", || {
        read_all().len() == 3
    });
    assert_eq!(d.stop(Duration::from_secs(30)), 0);
    assert_eq!(
        read_all(),
        [
            "user1@example.com",
            "user2@example.com",
            "user3@example.com"
        ]
    );
}

/// What the listmonk-shaped endpoint received.
type Bounces = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, serde_json::Value)>>>;

/// A server answering `POST /webhooks/bounce` the way listmonk does (`{"data": true}`), keeping
/// the Authorization header and the body.
fn listmonk_endpoint() -> (String, Bounces, std::thread::JoinHandle<()>) {
    let got: Bounces = Default::default();
    let state = got.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(l.local_addr().expect("addr")).ok();
            let app = axum::Router::new().route(
                "/webhooks/bounce",
                axum::routing::post(
                    move |headers: axum::http::HeaderMap,
                          axum::Json(v): axum::Json<serde_json::Value>| {
                        let state = state.clone();
                        async move {
                            let auth = headers
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            if let Ok(mut g) = state.lock() {
                                g.push((auth, v));
                            }
                            axum::Json(serde_json::json!({"data": true}))
                        }
                    },
                ),
            );
            axum::serve(l, app).await.ok();
        });
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).expect("addr");
    (format!("http://{addr}"), got, t)
}

#[test]
fn listmonk_target_posts_bounces_with_the_campaign_uuid() {
    engines::each(
        "listmonk_target_posts_bounces_with_the_campaign_uuid",
        listmonk_target_posts_bounces_with_the_campaign_uuid_on,
    );
}

fn listmonk_target_posts_bounces_with_the_campaign_uuid_on(engine: Engine) {
    let (url, got, _t) = listmonk_endpoint();
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("listmonk");
    fs::write(&creds, "bounced-api:tok3n\n").expect("creds");
    let s = setup(engine, |_| {
        format!(
            "[[notify]]\nname = \"lm\"\nkind = \"listmonk\"\nurl = \"{url}\"\ncredentials_file = {:?}\n",
            creds.display().to_string()
        )
    });
    let mut d = daemon(&s);
    // A hard bounce whose returned original carries listmonk's campaign header.
    let msg = bounce(3).replace(
        "\r\n--bnd3--\r\n",
        "\r\n--bnd3\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <c1@lists.example.org>\r\nFrom: news@lists.example.org\r\nTo: user3@example.com\r\nX-Listmonk-Campaign: 5e1b2c3d-0000-4000-8000-00000000abcd\r\n\r\n--bnd3--\r\n",
    );
    deliver(&s.md, "one", msg.as_bytes());
    d.wait_until(Duration::from_secs(30), "the bounce record", || {
        got.lock().map(|g| !g.is_empty()).unwrap_or(false)
    });
    // Unsuppressing needs no request (listmonk cannot take a bounce back) but is settled.
    let out = bounced(&s, &["unsuppress", "user3@example.com"]);
    assert!(out.status.success(), "{out:?}");
    d.wait_until(Duration::from_secs(20), "both delivered", || {
        outbox(&s, &["--state", "delivered"]).len() == 2
    });
    assert_eq!(d.stop(Duration::from_secs(30)), 0);
    let g = got.lock().expect("lock").clone();
    assert_eq!(g.len(), 1, "{g:?}");
    let (auth, body) = &g[0];
    // Basic auth of bounced-api:tok3n.
    assert_eq!(auth.as_deref(), Some("Basic Ym91bmNlZC1hcGk6dG9rM24="));
    assert_eq!(body["email"], "user3@example.com");
    assert_eq!(body["type"], "hard");
    assert_eq!(body["source"], "bounced");
    assert_eq!(
        body["campaign_uuid"],
        "5e1b2c3d-0000-4000-8000-00000000abcd"
    );
}

#[test]
fn trust_keeps_forged_bounces_from_suppressing() {
    engines::each(
        "trust_keeps_forged_bounces_from_suppressing",
        trust_keeps_forged_bounces_from_suppressing_on,
    );
}

fn trust_keeps_forged_bounces_from_suppressing_on(engine: Engine) {
    let rx = Receiver::start(SECRET);
    let s = setup(engine, |dir| {
        format!(
            "[trust]\nlist_ids = [\"news.lists.example.org\"]\nmessage_id_domains = [\"lists.example.org\"]\n\n{}",
            webhook(&rx.url(), dir, "")
        )
    });
    let with_original = |n: usize, headers: &str| {
        bounce(n).replace(
            &format!("\r\n--bnd{n}--\r\n"),
            &format!(
                "\r\n--bnd{n}\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}From: news@lists.example.org\r\nTo: user{n}@example.com\r\nSubject: News\r\n\r\n--bnd{n}--\r\n"
            ),
        )
    };
    let mut d = daemon(&s);
    // Forged: no original at all; another list; a Message-ID from elsewhere.
    deliver(&s.md, "forged1", bounce(1).as_bytes());
    deliver(
        &s.md,
        "forged2",
        with_original(
            2,
            "List-Id: <other.example.net>\r\nMessage-ID: <x@evil.example>\r\n",
        )
        .as_bytes(),
    );
    // Ours: by List-Id, and by the Message-ID domain.
    deliver(
        &s.md,
        "ours3",
        with_original(3, "List-Id: News <news.lists.example.org>\r\n").as_bytes(),
    );
    deliver(
        &s.md,
        "ours4",
        with_original(4, "Message-ID: <c.4@lists.example.org>\r\n").as_bytes(),
    );
    d.wait_until(Duration::from_secs(30), "two suppressions", || {
        rx.count() >= 2
    });
    wait_for(Duration::from_secs(20), "all four recorded", || {
        db_int(&s.db, "select count(*) from messages") == 4
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.stop(Duration::from_secs(30)), 0);
    let mut got: Vec<String> = rx
        .accepted()
        .iter()
        .map(|g| g.body["address"].as_str().unwrap_or("").to_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["user3@example.com", "user4@example.com"]);
    assert_eq!(
        db_int(
            &s.db,
            "select count(*) from recipients where state = 'suppressed'"
        ),
        2
    );
    assert_eq!(
        db_int(&s.db, "select count(*) from bounces where untrusted"),
        2
    );
    // Counted where an operator looks.
    let out = bounced(&s, &["stats", "--format", "csv"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bounces,untrusted,2"),
        "{out:?}"
    );
}

#[test]
fn check_config_reads_each_targets_secret() {
    let s = setup(engines::sqlite(), |dir| {
        webhook("http://127.0.0.1:9/hook", dir, "")
    });
    let out = bounced(&s, &["check-config"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 notify target(s)"),
        "{out:?}"
    );
    fs::remove_file(s.dir.join("secret")).expect("remove the secret");
    let out = bounced(&s, &["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notify `hook`") && err.contains("secret file"),
        "{err}"
    );
    assert!(!err.contains(SECRET));
}

/// An HTTPS server on loopback with a fresh self-signed certificate (for `localhost` and
/// 127.0.0.1) that answers every request 204 and keeps the request bodies; `None` without openssl.
fn https_receiver(dir: &Path) -> Option<(u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>)> {
    let made = common::self_signed_cert(dir);
    if !common::tool_available("webhook_over_https", "openssl", made) {
        return None;
    }
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .expect("cert")
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).expect("key");
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let sink = bodies.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(l.local_addr().expect("addr").port()).ok();
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    break;
                };
                let (acceptor, sink) = (acceptor.clone(), sink.clone());
                tokio::spawn(async move {
                    // A failed handshake (a client that does not trust us) just ends here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = tls.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        let Some((head, body)) = text.split_once("\r\n\r\n") else {
                            continue;
                        };
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() < len {
                            continue;
                        }
                        if let Ok(mut b) = sink.lock() {
                            b.push(body[..len].to_owned());
                        }
                        let _ = tls
                            .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                            .await;
                        let _ = tls.shutdown().await;
                        return;
                    }
                });
            }
        });
    });
    Some((
        rx.recv_timeout(Duration::from_secs(10)).expect("port"),
        bodies,
    ))
}

#[test]
fn webhook_over_https_trusts_its_ca_file_and_refuses_an_unknown_certificate() {
    let certs = tempfile::tempdir().expect("tempdir");
    let Some((port, bodies)) = https_receiver(certs.path()) else {
        return;
    };
    let url = format!("https://localhost:{port}/hook");
    let ca = certs.path().join("cert.pem").display().to_string();
    let s = setup(engines::sqlite(), |dir| {
        format!(
            "{}ca_file = {ca:?}\n\n{}",
            webhook(&url, dir, ""),
            webhook(&url, dir, "").replace("name = \"hook\"", "name = \"webroots\"")
        )
    });
    let mut d = daemon(&s);
    deliver(&s.md, "one", bounce(9).as_bytes());
    d.wait_until(Duration::from_secs(30), "the event over HTTPS", || {
        bodies.lock().map(|b| b.len()).unwrap_or(0) == 1
    });
    d.wait_until(
        Duration::from_secs(30),
        "a failed attempt for the other target",
        || {
            outbox(&s, &["--target", "webroots"])
                .first()
                .is_some_and(|r| r["attempts"].as_i64().unwrap_or(0) >= 1)
        },
    );
    assert_eq!(d.stop(Duration::from_secs(30)), 0);
    let body = bodies.lock().expect("lock")[0].clone();
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["address"], "user9@example.com");
    let hook = outbox(&s, &["--target", "hook"]);
    assert_eq!(hook[0]["state"], "delivered");
    // The web's roots do not know a self-signed certificate: never delivered, kept pending.
    let other = outbox(&s, &["--target", "webroots"]);
    assert_eq!(other[0]["state"], "pending", "{other:?}");
    assert!(
        other[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.to_lowercase().contains("certificate")),
        "{other:?}"
    );
    assert_eq!(bodies.lock().expect("lock").len(), 1);
}

#[test]
fn daemons_sharing_a_database_deliver_each_event_once_and_take_over_from_a_dead_one() {
    let test = "daemons_sharing_a_database_deliver_each_event_once_and_take_over_from_a_dead_one";
    // Several daemons write one database only on PostgreSQL.
    let Some(engine) = engines::postgres(test) else {
        return;
    };
    let rx = Receiver::start(SECRET);
    rx.delay(5);
    let url = engine.location.display().to_string();
    let s = setup(engine, |dir| {
        webhook(&rx.url(), dir, "events = [\"suppressed\"]\nconcurrency = 4")
    });
    // A second daemon on its own Maildir, the same database and the same target.
    let md2 = s.dir.join("Maildir2");
    make_maildir(&md2);
    let config2 = s.dir.join("second.toml");
    fs::write(
        &config2,
        fs::read_to_string(&s.config).expect("config").replace(
            &format!("{:?}", s.md.display().to_string()),
            &format!("{:?}", md2.display().to_string()),
        ),
    )
    .expect("second config");
    assert!(fs::read_to_string(&config2).expect("read").contains(&url));
    let first = daemon(&s);
    let second = {
        let c = config2.display().to_string();
        let d = DaemonCmd::new(&["--config", &c], &s.dir.join("second.log")).spawn();
        d.wait_log("notify worker started", Duration::from_secs(60));
        d
    };
    let total = 60;
    for n in 0..total {
        let md = if n % 2 == 0 { &s.md } else { &md2 };
        deliver(md, &format!("m{n}"), bounce(n).as_bytes());
    }
    let mut all = [first, second];
    all[0].wait_until(Duration::from_secs(60), "every event delivered", || {
        rx.by_id().len() == total
    });
    std::thread::sleep(Duration::from_millis(1500));
    let by_id = rx.by_id();
    assert_eq!(by_id.len(), total);
    assert!(
        by_id.values().all(|(n, _)| *n == 1),
        "{} events were delivered twice",
        by_id.values().filter(|(n, _)| *n > 1).count()
    );
    // One of them delivers, the other stands by; killed, the one delivering is replaced.
    let holder = all
        .iter()
        .position(|d| !d.log().contains("standing by"))
        .expect("one daemon delivers");
    let other = 1 - holder;
    assert!(
        all[other].log().contains("standing by"),
        "{}",
        all[other].log()
    );
    common::signal(&all[holder].child, libc::SIGKILL);
    let _ = all[holder].wait_exit(Duration::from_secs(10));
    let md = if other == 0 { &s.md } else { &md2 };
    for n in total..total + 20 {
        deliver(md, &format!("m{n}"), bounce(n).as_bytes());
    }
    all[other].wait_until(Duration::from_secs(60), "the rest delivered", || {
        rx.by_id().len() == total + 20
    });
    assert!(all[other].log().contains("taking over delivery"));
    assert!(rx.by_id().values().all(|(n, _)| *n == 1));
    assert!(rx.bad().is_empty(), "{:?}", rx.bad());
    assert_eq!(all[other].stop(Duration::from_secs(30)), 0);
}
