//! The dashboard in a real browser: headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`) against the real `bounced serve`. Signs in with the token, checks the rendered
//! DOM against `bounced stats`, searches an address, follows a raw-bounce link, and keeps
//! screenshots under `target/tmp/http-dashboard/`.
//!
//! Skips (saying why) when Chromium or its driver is missing, unless `BOUNCED_REQUIRE_CHROMIUM=1`.

mod common;
mod http_common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{Duration as Days, Utc};
use http_common::{Fixture, Server, TOKEN, client};
use serde_json::{Value, json};

/// The WebDriver name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// Chromium and its driver, or `None` (after saying why) when a laptop lacks them.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = find_program(&["chromium", "chromium-browser"]);
    let driver = find_program(&["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        (c, d) => {
            let missing = [(c.is_none(), "chromium"), (d.is_none(), "chromium-driver")]
                .iter()
                .filter(|(m, _)| *m)
                .map(|(_, n)| *n)
                .collect::<Vec<_>>()
                .join(" and ");
            assert!(
                std::env::var("BOUNCED_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
                "the dashboard test needs {missing} (ci/install-deps.sh installs them)"
            );
            common::skipped(
                "the_dashboard_in_headless_chromium",
                &format!("{missing} not found (ci/install-deps.sh installs them)"),
            );
            None
        }
    }
}

struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: String,
}

impl Drop for Driver {
    /// Ends the browser session even when the test failed half-way (the driver alone going away
    /// would leave Chromium running), then stops the driver.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if !self.session.is_empty()
            && let Ok(mut s) = std::net::TcpStream::connect(self.base.trim_start_matches("http://"))
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(chromium: &Path, chromedriver: &Path, profile: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = client();
        let start = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut d = Driver {
            child,
            base,
            http,
            session: String::new(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1600",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let v = d.call("POST", "/session", caps).await;
        d.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        d
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let r = req.send().await.expect("WebDriver request");
        let v: Value = r.json().await.expect("WebDriver answer");
        assert!(
            v["value"]["error"].is_null(),
            "WebDriver {method} {path}: {v}"
        );
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    async fn url(&self) -> String {
        self.call("GET", "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Waits until the page's URL contains `part` and not `not` (a click starts a navigation; it
    /// may not be over).
    async fn wait_url(&self, part: &str, not: &str) -> String {
        let start = Instant::now();
        loop {
            let url = self.url().await;
            let ready = self
                .script("return document.readyState;")
                .await
                .as_str()
                .is_some_and(|s| s == "complete");
            if url.contains(part) && (not.is_empty() || !url.contains(not)) && ready {
                return url;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "still on {url}, waiting for {part}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .call(
                "POST",
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn find(&self, css: &str) -> String {
        let all = self.find_all(css).await;
        assert!(
            !all.is_empty(),
            "no element `{css}` on {}:\n{}",
            self.url().await,
            self.source().await
        );
        all[0].clone()
    }

    async fn text(&self, el: &str) -> String {
        self.call("GET", &format!("/element/{el}/text"), Value::Null)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn attr(&self, el: &str, name: &str) -> String {
        self.call(
            "GET",
            &format!("/element/{el}/attribute/{name}"),
            Value::Null,
        )
        .await
        .as_str()
        .unwrap_or("")
        .to_owned()
    }

    async fn type_into(&self, el: &str, text: &str) {
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn click(&self, el: &str) {
        self.call("POST", &format!("/element/{el}/click"), json!({}))
            .await;
    }

    async fn script(&self, js: &str) -> Value {
        self.call("POST", "/execute/sync", json!({"script": js, "args": []}))
            .await
    }

    async fn source(&self) -> String {
        self.call("GET", "/source", Value::Null)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn screenshot(&self, file: &Path) {
        let v = self.call("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(file, png).expect("write screenshot");
    }

    async fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }
}

fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_headless_chromium() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let fx = Fixture::new();
    let server = Server::start(&fx.db, &["--token-file", fx.tokens.to_str().unwrap()]);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("http-dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = fx.dir.path().join("chromium-profile");
    let d = Driver::start(&chromium, &chromedriver, &profile).await;

    // Not signed in: the sign-in form; the token goes in, the overview comes out.
    d.go(&server.url("/")).await;
    assert!(d.url().await.contains("/login"), "{}", d.url().await);
    let field = d.find("#token").await;
    d.type_into(&field, TOKEN).await;
    let submit = d.find("section.login button").await;
    d.click(&submit).await;
    assert_eq!(d.wait_url("/", "/login").await, server.url("/"));

    // The totals equal `bounced stats`.
    let totals: Value = serde_json::from_str(&fx.bounced(&["stats", "--format", "jsonl"])).unwrap();
    let suppressed: i64 = totals["suppressed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_i64().unwrap())
        .sum();
    for (figure, want) in [
        ("messages", totals["messages"].as_i64().unwrap()),
        ("bounces", totals["bounces"].as_i64().unwrap()),
        ("recipients", totals["recipients"].as_i64().unwrap()),
        ("suppressed", suppressed),
    ] {
        let el = d.find(&format!("[data-figure={figure}]")).await;
        assert_eq!(d.text(&el).await, want.to_string(), "{figure}");
    }

    // The chart is there, and its bars are `bounced stats --by day` over the same window.
    let svg = d.find("svg#bounces-per-day").await;
    let shown = d
        .script(
            "const r = document.querySelector('svg#bounces-per-day').getBoundingClientRect(); \
             return [r.width, r.height];",
        )
        .await;
    assert!(
        shown[0].as_f64().unwrap_or(0.0) > 300.0,
        "chart not drawn: {shown}"
    );
    assert!(d.attr(&svg, "role").await == "img");
    let since = (Utc::now().date_naive() - Days::days(29))
        .format("%Y-%m-%d")
        .to_string();
    let mut want: Vec<(String, String, i64)> = Vec::new();
    for row in jsonl(&fx.bounced(&[
        "stats", "--by", "day", "--since", &since, "--format", "jsonl",
    ])) {
        for t in ["hard", "soft", "complaint"] {
            let n = row[t].as_i64().unwrap();
            if n > 0 {
                want.push((row["key"].as_str().unwrap().to_owned(), t.to_owned(), n));
            }
        }
    }
    let mut bars: Vec<(String, String, i64)> = Vec::new();
    for rect in d.find_all("svg#bounces-per-day rect.bar").await {
        bars.push((
            d.attr(&rect, "data-day").await,
            d.attr(&rect, "data-type").await,
            d.attr(&rect, "data-count").await.parse().unwrap(),
        ));
    }
    want.sort();
    bars.sort();
    assert!(!bars.is_empty());
    assert_eq!(bars, want);

    // Top reasons, as `bounced stats --by reason` over the window.
    let reasons = jsonl(&fx.bounced(&[
        "stats", "--by", "reason", "--since", &since, "--format", "jsonl",
    ]));
    let rows = d.find_all("#top-reasons tbody tr").await;
    assert_eq!(rows.len(), reasons.len().min(10));
    for (row, want) in rows.iter().zip(&reasons) {
        assert_eq!(
            d.attr(row, "data-reason").await,
            want["key"].as_str().unwrap()
        );
        let cell = d
            .find_all(&format!(
                "#top-reasons tbody tr[data-reason=\"{}\"] td[data-bounces]",
                want["key"].as_str().unwrap()
            ))
            .await;
        assert_eq!(d.text(&cell[0]).await, want["bounces"].to_string());
    }
    // Domains with a delivery notice show a bounce rate.
    let rate = d
        .find("#top-domains tr[data-domain=\"example.net\"] td:last-child")
        .await;
    assert_eq!(d.text(&rate).await, "66.7%");
    // Nothing a stranger wrote became markup.
    assert_eq!(d.script("return document.scripts.length;").await, json!(0));
    d.screenshot(&shots.join("overview.png")).await;

    // Narrow screen: nothing wider than the window.
    d.resize(390, 1400).await;
    d.go(&server.url("/")).await;
    let fits = d
        .script("return document.documentElement.scrollWidth <= window.innerWidth;")
        .await;
    assert_eq!(fits, json!(true), "the overview scrolls sideways at 390 px");
    d.screenshot(&shots.join("overview-narrow.png")).await;
    d.resize(1280, 1600).await;

    // Search an address: its history, with the hostile diagnostic shown as text.
    let q = d.find("#q").await;
    d.type_into(&q, "alice@example.com").await;
    let go = d.find("form.search button").await;
    d.click(&go).await;
    d.wait_url("/recipient?address=alice%40example.com", "")
        .await;
    let h1 = d.find("h1.address").await;
    assert_eq!(d.text(&h1).await, "alice@example.com");
    let state = d.find("[data-figure=state]").await;
    assert_eq!(d.text(&state).await, "suppressed");
    assert_eq!(d.find_all("#history tbody tr").await.len(), 1);
    let diag = d.find("#bounces tbody tr td:nth-child(5)").await;
    assert!(
        d.text(&diag)
            .await
            .contains("<script>alert('owned')</script>")
    );
    assert_eq!(d.script("return document.scripts.length;").await, json!(0));
    d.screenshot(&shots.join("recipient.png")).await;

    // Follow the raw-bounce link: the message as received, as text.
    let raw = d.find("#bounces a.raw").await;
    d.click(&raw).await;
    d.wait_url("/raw", "").await;
    let text = d.script("return document.body.innerText;").await;
    let text = text.as_str().unwrap_or("");
    assert!(
        text.contains("Final-Recipient: rfc822; alice@example.com"),
        "{text}"
    );
    assert!(
        text.contains("Message-ID: <dsn-1@mx1.example.net>"),
        "{text}"
    );
    assert!(!d.source().await.contains("<script>alert"));
    d.screenshot(&shots.join("raw.png")).await;

    drop(d);
    eprintln!("screenshots in {}", shots.display());
}
