//! The HTTP API, metrics and auth, through a real HTTP client against the real `bounced serve` on a
//! database filled by the real `bounced import` (the routes on SQLite and again on PostgreSQL).

mod common;
mod http_common;

use std::time::Duration;

use http_common::{Fixture, HOSTILE, LIST_TOKEN, Server, TOKEN, bin, client};
use reqwest::StatusCode;
use serde_json::Value;

async fn get_json(c: &reqwest::Client, url: &str, token: &str) -> (StatusCode, Value) {
    let r = c.get(url).bearer_auth(token).send().await.expect("GET");
    let status = r.status();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_routes_answer_on_the_real_binary() {
    for engine in common::engines::all("api_routes_answer_on_the_real_binary") {
        eprintln!("api_routes_answer_on_the_real_binary: {}", engine.name);
        let fx = Fixture::on(engine.is_postgres().then(|| engine.location.clone()));
        let server = Server::start(&fx.db, &["--token-file", fx.tokens.to_str().unwrap()]);
        let c = client();
        let url = |p: &str| server.url(p);

        // Readiness.
        let r = c.get(url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);

        // The quick check, for a suppressed, an active, an unknown and an invalid address.
        let (s, v) = get_json(&c, &url("/api/v1/check?address=alice@EXAMPLE.com"), TOKEN).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["address"], "alice@example.com");
        assert_eq!(v["suppressed"], true);
        assert_eq!(v["cause"], "hard");
        assert_eq!(v["reason"], "userunknown");
        assert!(v["since"].as_str().is_some_and(|s| s.ends_with('Z')), "{v}");
        let (_, v) = get_json(&c, &url("/api/v1/check?address=bob@example.net"), TOKEN).await;
        assert_eq!(
            (v["known"].clone(), v["suppressed"].clone()),
            (Value::Bool(true), Value::Bool(false))
        );
        assert_eq!(v["cause"], Value::Null);
        let (_, v) = get_json(&c, &url("/api/v1/check?address=nobody@example.com"), TOKEN).await;
        assert_eq!(v["known"], false);
        // The local part's case differs from the stored one: still found.
        let (_, v) = get_json(
            &c,
            &url("/api/v1/check?address=erin.case@example.com"),
            TOKEN,
        )
        .await;
        assert_eq!(v["suppressed"], true, "{v}");
        let (s, v) = get_json(&c, &url("/api/v1/check?address=not-an-address"), TOKEN).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_error(&v, "bad_request");
        let (s, v) = get_json(&c, &url("/api/v1/check"), TOKEN).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_error(&v, "bad_request");

        // The batch check keeps the order and flags what is not an address.
        let r = c
            .post(url("/api/v1/check"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"addresses": ["carol@example.org", "x", "dave@example.net"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        let res = v["results"].as_array().unwrap();
        assert_eq!(res.len(), 3);
        assert_eq!(res[0]["suppressed"], true);
        assert_eq!(res[0]["cause"], "complaint");
        assert!(res[1]["error"].is_string());
        assert_eq!(res[2]["suppressed"], false);
        let many: Vec<String> = (0..1001).map(|i| format!("u{i}@example.com")).collect();
        let r = c
            .post(url("/api/v1/check"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "addresses": many }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = c
            .post(url("/api/v1/check"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{\"addresses\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_error(&r.json::<Value>().await.unwrap(), "bad_request");

        // A recipient's whole record; 404 for an unknown one.
        let (s, v) = get_json(&c, &url("/api/v1/recipients/alice@example.com"), TOKEN).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["recipient"]["state"], "suppressed");
        assert_eq!(v["recipient"]["hard_count"], 1);
        assert_eq!(v["history"][0]["change"], "suppressed");
        assert_eq!(v["history"][0]["cause"], "hard");
        assert_eq!(v["bounces"][0]["diagnostic"], HOSTILE);
        let alice_message = v["bounces"][0]["message_id"].as_i64().unwrap();
        let (s, v) = get_json(&c, &url("/api/v1/recipients/nobody@example.com"), TOKEN).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_error(&v, "not_found");

        // A stored message and its raw bytes, exactly as imported.
        let (s, v) = get_json(
            &c,
            &url(&format!("/api/v1/messages/{alice_message}")),
            TOKEN,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["message"]["kind"], "dsn");
        assert_eq!(v["bounces"][0]["recipient"], "alice@example.com");
        let r = c
            .get(url(&format!("/api/v1/messages/{alice_message}/raw")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "message/rfc822");
        let raw = r.bytes().await.unwrap();
        let original = std::fs::read(fx.mail.join("01-alice-hard.eml")).unwrap();
        assert_eq!(raw.as_ref(), original.as_slice());
        let (s, v) = get_json(&c, &url("/api/v1/messages/999999"), TOKEN).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_error(&v, "not_found");
        let (s, _) = get_json(&c, &url("/api/v1/messages/abc/raw"), TOKEN).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);

        // Bounces, filtered and paged with the cursor: every row once, newest first.
        let (s, v) = get_json(&c, &url("/api/v1/bounces?type=hard"), TOKEN).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let hard = v["bounces"].as_array().unwrap();
        assert_eq!(hard.len(), 3, "{v}");
        assert!(hard.iter().all(|b| b["bounce_type"] == "hard"));
        assert_eq!(v["next_cursor"], Value::Null);
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(c) => format!("/api/v1/bounces?limit=2&cursor={c}"),
                None => "/api/v1/bounces?limit=2".to_owned(),
            };
            let (_, v) = get_json(&c, &url(&q), TOKEN).await;
            for b in v["bounces"].as_array().unwrap() {
                seen.push((
                    b["at"].as_str().unwrap().to_owned(),
                    b["id"].as_i64().unwrap(),
                ));
            }
            match v["next_cursor"].as_str() {
                Some(n) => cursor = Some(n.to_owned()),
                None => break,
            }
        }
        let all = fx.bounced(&["query", "bounces", "--format", "jsonl"]);
        assert_eq!(seen.len(), all.lines().count());
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, sorted);
        let (_, v) = get_json(
            &c,
            &url("/api/v1/bounces?domain=example.net&reason=mailboxfull"),
            TOKEN,
        )
        .await;
        assert_eq!(v["bounces"].as_array().unwrap().len(), 2, "{v}");
        for bad in [
            "type=bad",
            "reason=nope",
            "limit=0",
            "limit=5000",
            "since=yesterday",
            "cursor=x",
        ] {
            let (s, v) = get_json(&c, &url(&format!("/api/v1/bounces?{bad}")), TOKEN).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
            assert_error(&v, "bad_request");
        }

        // Stats equal `bounced stats`.
        for by in ["reason", "domain", "type", "day"] {
            let (s, v) = get_json(&c, &url(&format!("/api/v1/stats?by={by}")), TOKEN).await;
            assert_eq!(s, StatusCode::OK);
            let cli: Vec<Value> = fx
                .bounced(&["stats", "--by", by, "--format", "jsonl"])
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(v["rows"].as_array().unwrap(), &cli, "by {by}");
        }
        let (_, v) = get_json(&c, &url("/api/v1/stats"), TOKEN).await;
        let cli: Value =
            serde_json::from_str(&fx.bounced(&["stats", "--format", "jsonl"])).unwrap();
        assert_eq!(v, cli);
        let (s, _) = get_json(&c, &url("/api/v1/stats?by=month"), TOKEN).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // Totals over a window are those of `bounced stats --since --until`, and the window counts.
        for (since, until) in [("2000-01-01", "2100-01-01"), ("2100-01-01", "2200-01-01")] {
            let (s, v) = get_json(
                &c,
                &url(&format!("/api/v1/stats?since={since}&until={until}")),
                TOKEN,
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let cli: Value = serde_json::from_str(&fx.bounced(&[
                "stats", "--since", since, "--until", until, "--format", "jsonl",
            ]))
            .unwrap();
            assert_eq!(v, cli, "{since}..{until}");
        }
        let (_, empty) = get_json(&c, &url("/api/v1/stats?since=2100-01-01"), TOKEN).await;
        assert_eq!(empty["messages"], 0, "{empty}");
        assert_ne!(empty, cli, "a window after every message leaves them out");

        // Unknown route under the API.
        let (s, v) = get_json(&c, &url("/api/v1/nothing"), TOKEN).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_error(&v, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suppression_list_streams_every_format_and_syncs_incrementally() {
    for engine in
        common::engines::all("the_suppression_list_streams_every_format_and_syncs_incrementally")
    {
        eprintln!(
            "the_suppression_list_streams_every_format_and_syncs_incrementally: {}",
            engine.name
        );
        let fx = Fixture::on(engine.is_postgres().then(|| engine.location.clone()));
        let server = Server::start(&fx.db, &["--token-file", fx.tokens.to_str().unwrap()]);
        let c = client();
        let url = |p: &str| server.url(p);

        // Every format equals `bounced export` byte for byte.
        for format in [
            "jsonl", "csv", "txt", "listmonk", "postfix", "ses", "mailgun",
        ] {
            let r = c
                .get(url(&format!("/api/v1/suppressions?format={format}")))
                .bearer_auth(LIST_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{format}");
            assert!(r.headers().contains_key("x-bounced-next-after-id"));
            let body = r.text().await.unwrap();
            let cli = fx.bounced(&["export", "--format", format]);
            assert_eq!(body, cli, "{format}");
        }
        let r = c
            .get(url("/api/v1/suppressions?types=complaint&format=txt"))
            .bearer_auth(LIST_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "carol@example.org\n");
        let r = c
            .get(url("/api/v1/suppressions?format=xml"))
            .bearer_auth(LIST_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);

        // First sync: the whole list and a cursor.
        let r = c
            .get(url("/api/v1/suppressions?format=txt"))
            .bearer_auth(LIST_TOKEN)
            .send()
            .await
            .unwrap();
        let cursor: i64 = r.headers()["x-bounced-next-after-id"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let first = r.text().await.unwrap();
        assert_eq!(first.lines().count(), 4, "{first}");

        // Nothing changed: the next sync is empty.
        let r = c
            .get(url(&format!(
                "/api/v1/suppressions?format=txt&after_id={cursor}"
            )))
            .bearer_auth(LIST_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "");

        // A manual suppression through the API, with the token's name kept as the actor.
        let r = c
            .post(url("/api/v1/suppressions"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"address": "Gina@Example.ORG", "reason": "asked by phone"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["address"], "Gina@example.org");
        assert_eq!(v["changed"], true);
        assert_eq!(v["actor"], "ops");
        let r = c
            .get(url(&format!(
                "/api/v1/suppressions?format=jsonl&after_id={cursor}"
            )))
            .bearer_auth(LIST_TOKEN)
            .send()
            .await
            .unwrap();
        let next: i64 = r.headers()["x-bounced-next-after-id"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(next > cursor);
        let body = r.text().await.unwrap();
        let rows: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 1, "{body}");
        assert_eq!(rows[0]["email"], "Gina@example.org");
        assert_eq!(rows[0]["bounce_type"], "manual");
        let (_, v) = get_json(&c, &url("/api/v1/recipients/Gina@example.org"), TOKEN).await;
        let note = v["history"][0]["note"].as_str().unwrap_or("");
        assert!(
            note.contains("ops") && note.contains("asked by phone"),
            "{v}"
        );
        let bad = c
            .post(url("/api/v1/suppressions"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"address": "nope"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

        // Unsuppress, by the other token: its name is the actor; the address leaves the list.
        let r = c
            .delete(url(
                "/api/v1/suppressions/alice@example.com?reason=fixed%20typo",
            ))
            .bearer_auth(LIST_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (v["state"].as_str(), v["actor"].as_str()),
            (Some("active"), Some("lists"))
        );
        let (_, v) = get_json(&c, &url("/api/v1/check?address=alice@example.com"), TOKEN).await;
        assert_eq!(v["suppressed"], false);
        let (_, v) = get_json(&c, &url("/api/v1/recipients/alice@example.com"), TOKEN).await;
        let last = v["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["change"], "unsuppressed");
        assert!(
            last["note"].as_str().unwrap_or("").contains("lists"),
            "{last}"
        );
        let r = c
            .delete(url("/api/v1/suppressions/nobody@example.com"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = c
            .get(url("/api/v1/suppressions?format=txt"))
            .bearer_auth(LIST_TOKEN)
            .send()
            .await
            .unwrap();
        let now = r.text().await.unwrap();
        assert!(
            now.contains("Gina@example.org") && !now.contains("alice@"),
            "{now}"
        );

        // The changes feed tells removals too, in order, page by page.
        let (s, v) = get_json(
            &c,
            &url(&format!(
                "/api/v1/suppressions/changes?after_id={cursor}&limit=1"
            )),
            LIST_TOKEN,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["changes"][0]["address"], "Gina@example.org");
        assert_eq!(v["changes"][0]["change"], "suppressed");
        assert_eq!(v["changes"][0]["cause"], "manual");
        let page = v["next_after_id"].as_i64().unwrap();
        let (_, v) = get_json(
            &c,
            &url(&format!("/api/v1/suppressions/changes?after_id={page}")),
            LIST_TOKEN,
        )
        .await;
        assert_eq!(v["changes"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["changes"][0]["address"], "alice@example.com");
        assert_eq!(v["changes"][0]["change"], "unsuppressed");
        let last = v["next_after_id"].as_i64().unwrap();
        let (_, v) = get_json(
            &c,
            &url(&format!("/api/v1/suppressions/changes?after_id={last}")),
            LIST_TOKEN,
        )
        .await;
        assert_eq!(v["changes"].as_array().unwrap().len(), 0);
        assert_eq!(v["next_after_id"], last);
        let (_, v) = get_json(&c, &url("/api/v1/suppressions/changes"), LIST_TOKEN).await;
        assert_eq!(v["changes"].as_array().unwrap().len() as i64, last, "{v}");
        let (s, _) = get_json(&c, &url("/api/v1/suppressions/changes?limit=0"), LIST_TOKEN).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_and_checked() {
    let fx = Fixture::new();
    let server = Server::start(&fx.db, &["--token-file", fx.tokens.to_str().unwrap()]);
    let c = client();
    let routes = [
        ("GET", "/api/v1/recipients/alice@example.com"),
        ("GET", "/api/v1/check?address=alice@example.com"),
        ("POST", "/api/v1/check"),
        ("GET", "/api/v1/suppressions"),
        ("POST", "/api/v1/suppressions"),
        ("DELETE", "/api/v1/suppressions/alice@example.com"),
        ("GET", "/api/v1/suppressions/changes"),
        ("GET", "/api/v1/bounces"),
        ("GET", "/api/v1/stats"),
        ("GET", "/api/v1/messages/1"),
        ("GET", "/api/v1/messages/1/raw"),
        ("GET", "/api/v1/anything"),
    ];
    for (method, path) in routes {
        for token in [None, Some("wrong-token-0123456789abcdef"), Some("")] {
            let mut req = c.request(method.parse().unwrap(), server.url(path));
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let r = req.send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}"
            );
            assert!(r.headers().contains_key("www-authenticate"));
            assert_error(&r.json::<Value>().await.unwrap(), "unauthorized");
        }
    }
    // The secret of one token under the other's name scheme is still that token.
    let (s, _) = get_json(&c, &server.url("/api/v1/stats"), LIST_TOKEN).await;
    assert_eq!(s, StatusCode::OK);
    // /healthz and /metrics are open by default; the dashboard sends people to sign in.
    assert_eq!(
        c.get(server.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        c.get(server.url("/metrics")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let r = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=%2F");
    let r = c.get(server.url("/messages/1/raw")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // No token is ever logged.
    let log = server.log();
    assert!(!log.contains(TOKEN) && !log.contains(LIST_TOKEN), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_the_token_and_limits_hold() {
    let fx = Fixture::new();
    let cfg = fx.dir.path().join("bounced.toml");
    std::fs::write(
        &cfg,
        format!(
            "[http]\ntoken_file = \"{}\"\nmetrics_public = false\nmax_body_bytes = 2048\n",
            fx.tokens.display()
        ),
    )
    .unwrap();
    let server = Server::start(&fx.db, &["--config", cfg.to_str().unwrap()]);
    let c = client();
    let r = c.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(server.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    assert!(text.contains("bounced_build_info{"), "{text}");
    assert!(
        text.contains("bounced_db_messages{kind=\"dsn\"} 6"),
        "{text}"
    );
    assert!(
        text.contains("bounced_db_messages{kind=\"feedback\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("bounced_db_bounces{type=\"hard\",reason=\"userunknown\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("bounced_db_suppressed_recipients{cause=\"hard\"} 3"),
        "{text}"
    );
    assert!(text.contains("bounced_db_size_bytes "), "{text}");

    // The series move with the database.
    let r = c
        .post(server.url("/api/v1/suppressions"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"address": "hank@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = c
        .get(server.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("bounced_db_suppressed_recipients{cause=\"manual\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "bounced_http_requests_total{route=\"/api/v1/suppressions\",status=\"200\"} 1"
        ),
        "{text}"
    );

    // Limits: the body, the query string.
    let big = "x".repeat(4000);
    let r = c
        .post(server.url("/api/v1/check"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(format!("{{\"addresses\": [\"{big}\"]}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&r.json::<Value>().await.unwrap(), "payload_too_large");
    let r = c
        .get(server.url(&format!("/api/v1/check?address={}", "a".repeat(5000))))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::URI_TOO_LONG);
    assert_error(&r.json::<Value>().await.unwrap(), "uri_too_long");
    // No CORS unless configured.
    let r = c
        .get(server.url("/api/v1/stats"))
        .bearer_auth(TOKEN)
        .header("origin", "https://lists.example.org")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_only_for_configured_origins() {
    let fx = Fixture::new();
    let cfg = fx.dir.path().join("bounced.toml");
    std::fs::write(
        &cfg,
        format!(
            "[http]\ntoken_file = \"{}\"\ncors_origins = [\"https://lists.example.org\"]\n",
            fx.tokens.display()
        ),
    )
    .unwrap();
    let server = Server::start(&fx.db, &["--config", cfg.to_str().unwrap()]);
    let c = client();
    let ask = |origin: &'static str| {
        c.request(reqwest::Method::OPTIONS, server.url("/api/v1/check"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let r = ask("https://lists.example.org").await.unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://lists.example.org"
    );
    let r = ask("https://evil.example").await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

#[test]
fn a_non_loopback_address_needs_a_token() {
    let fx = Fixture::new();
    let out = std::process::Command::new(bin())
        .args(["serve", "--http", "0.0.0.0:0", "--db"])
        .arg(&fx.db)
        .env_remove("BOUNCED_CONFIG")
        .env_remove("BOUNCED_HTTP_TOKEN_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("0.0.0.0") && err.contains("token_file"),
        "{err}"
    );

    // With a token it starts (and is stopped at once).
    let mut server = Server::start_env(
        &fx.db,
        &[],
        &[("BOUNCED_HTTP_TOKEN_FILE", fx.tokens.to_str().unwrap())],
    );
    assert_eq!(server.stop(Duration::from_secs(10)), 0);

    // A weak token is refused with the file named and the secret not shown.
    let weak = fx.dir.path().join("weak");
    std::fs::write(&weak, "ops:hunter2\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--http", "127.0.0.1:0", "--token-file"])
        .arg(&weak)
        .arg("--db")
        .arg(&fx.db)
        .env_remove("BOUNCED_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("weak") && !err.contains("hunter2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_loopback_serves_only_loopback_host_names() {
    let fx = Fixture::new();
    let server = Server::start(&fx.db, &[]);
    let c = client();
    let r = c.get(server.url("/api/v1/stats")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A page of another site resolving its name to 127.0.0.1 (DNS rebinding) is refused.
    let r = c
        .get(server.url("/api/v1/stats"))
        .header("host", "rebind.attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The dashboard's forms still need their CSRF token.
    let r = c
        .post(server.url("/recipient/suppress"))
        .form(&[("address", "ivy@example.com"), ("csrf", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_escapes_and_its_forms_need_the_session_and_csrf() {
    let fx = Fixture::new();
    let server = Server::start(&fx.db, &["--token-file", fx.tokens.to_str().unwrap()]);
    let c = client();
    // Wrong token: the form again, 401.
    let r = c
        .post(server.url("/login"))
        .form(&[("token", "wrong-token-0123456789abcdef"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());
    // Sign in: an HttpOnly, SameSite=Strict cookie, and back to the page asked for.
    let r = c
        .post(server.url("/login"))
        .form(&[
            ("token", TOKEN),
            ("next", "/recipient?address=alice@example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        "/recipient?address=alice@example.com"
    );
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    // An open redirect is not possible.
    let r = c
        .post(server.url("/login"))
        .form(&[("token", TOKEN), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/");

    let r = c
        .get(server.url("/recipient?address=alice@example.com"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    assert!(
        !page.contains("<script>"),
        "unescaped diagnostic in:\n{page}"
    );
    assert!(
        page.contains("&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;"),
        "{page}"
    );
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();

    // A form without the CSRF token, or from another site, is refused.
    let r = c
        .post(server.url("/recipient/unsuppress"))
        .header("cookie", &session)
        .form(&[("address", "alice@example.com"), ("csrf", "0")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(server.url("/recipient/unsuppress"))
        .header("cookie", &session)
        .header("origin", "https://evil.example")
        .form(&[("address", "alice@example.com"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Without the session cookie, nothing.
    let r = c
        .post(server.url("/recipient/unsuppress"))
        .form(&[("address", "alice@example.com"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (_, v) = get_json(
        &c,
        &server.url("/api/v1/check?address=alice@example.com"),
        TOKEN,
    )
    .await;
    assert_eq!(v["suppressed"], true);

    // With both: done, recorded with the token's name.
    let r = c
        .post(server.url("/recipient/unsuppress"))
        .header("cookie", &session)
        .form(&[
            ("address", "alice@example.com"),
            ("csrf", csrf.as_str()),
            ("reason", "<b>confirmed</b>"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let (_, v) = get_json(
        &c,
        &server.url("/api/v1/recipients/alice@example.com"),
        TOKEN,
    )
    .await;
    assert_eq!(v["recipient"]["state"], "active");
    let last = v["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["note"], "by ops: <b>confirmed</b>");
    let page = c
        .get(server.url("/recipient?address=alice@example.com"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("&lt;b&gt;confirmed&lt;/b&gt;") && !page.contains("<b>confirmed"));

    // The raw message is plain text in a sandbox, never a page.
    let id = v["bounces"][0]["message_id"].as_i64().unwrap();
    let r = c
        .get(server.url(&format!("/messages/{id}/raw")))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");

    // Signing out ends the session.
    let r = c
        .post(server.url("/logout"))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c
        .get(server.url("/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_cleanly() {
    let fx = Fixture::new();
    let mut server = Server::start(&fx.db, &["--token-file", fx.tokens.to_str().unwrap()]);
    let c = client();
    assert_eq!(
        c.get(server.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(server.stop(Duration::from_secs(10)), 0);
    assert!(c.get(server.url("/healthz")).send().await.is_err());
}

/// The server as the daemon will mount it: on this runtime, with an injected shutdown future, not
/// ready until the store is handed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_once_the_database_is_open() {
    use bounced::config::HttpConfig;
    use bounced::http::{self, HttpState, Metrics, Tokens};
    use bounced::store::{Store, StoreOptions};

    let fx = Fixture::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tokens = Tokens::parse(&format!("ops:{TOKEN}"), "test").unwrap();
    let state = HttpState::new(HttpConfig::default(), tokens, Metrics::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    let c = client();
    let base = format!("http://{addr}");
    let r = c.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (s, v) = get_json(&c, &format!("{base}/api/v1/stats"), TOKEN).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&v, "starting");

    let store = Store::open(
        &fx.db,
        StoreOptions {
            create: false,
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    state.set_store(store);
    let r = c.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = get_json(&c, &format!("{base}/api/v1/stats"), TOKEN).await;
    assert_eq!(s, StatusCode::OK);

    // A server with no pipeline beside it shows no pipeline series, only the database's.
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("bounced_db_size_bytes "), "{text}");
    assert!(!text.contains("bounced_queue_messages"), "{text}");

    let _ = stop.send(());
    let done = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
}

#[test]
fn a_client_trickling_its_headers_is_cut_off() {
    use std::io::{Read, Write};
    let fx = Fixture::new();
    let server = Server::start(&fx.db, &["--token-file", fx.tokens.to_str().unwrap()]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let start = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(25),
        "closed after {waited:?}"
    );
    // Others are served meanwhile and after.
    let mut ok = std::net::TcpStream::connect(&addr).unwrap();
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    ok.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
