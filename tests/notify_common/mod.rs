//! A webhook receiver for the notify tests and the notify benchmark: an HTTP server on loopback,
//! on its own thread, that checks each request's signature and event schema, records what it
//! accepted, and answers with the status the test chooses (to play a target that is down or
//! refuses).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The fields every event carries, in the documented order.
pub const FIELDS: [&str; 13] = [
    "id",
    "event",
    "at",
    "address",
    "cause",
    "bounce_type",
    "reason",
    "status",
    "replycode",
    "diagnostic",
    "rule",
    "original_message_id",
    "original_list_id",
];

/// One accepted request.
#[derive(Debug, Clone)]
pub struct Got {
    pub id: String,
    pub body: serde_json::Value,
    pub when: Instant,
}

/// What the receiver saw.
#[derive(Default)]
pub struct Seen {
    pub accepted: Vec<Got>,
    /// Requests answered with something other than 2xx.
    pub refused: u64,
    /// Requests whose signature, timestamp, id header or schema was wrong (answered 401/422).
    pub bad: Vec<String>,
}

struct Shared {
    secret: Vec<u8>,
    status: AtomicU16,
    delay_ms: AtomicU64,
    seen: Mutex<Seen>,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn hex_hmac(secret: &[u8], msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac key");
    mac.update(msg);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a request the way a careful receiver would; the problem when it fails.
fn check(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<serde_json::Value, String> {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} header"))
    };
    let ts = h("x-bounced-timestamp")?;
    let sig = h("x-bounced-signature")?;
    let id = h("x-bounced-event-id")?;
    let t: i64 = ts.parse().map_err(|_| format!("timestamp {ts}"))?;
    let now = chrono::Utc::now().timestamp();
    if (now - t).abs() > 300 {
        return Err(format!("timestamp {t} is {}s away", now - t));
    }
    let mut signed = ts.clone().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    let want = format!("sha256={}", hex_hmac(secret, &signed));
    if sig != want {
        return Err(format!("signature {sig} is not {want}"));
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return Err("content-type is not application/json".into());
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("body is not an object")?;
    for f in FIELDS {
        if !obj.contains_key(f) {
            return Err(format!("field {f} is missing"));
        }
    }
    if obj.len() != FIELDS.len() {
        return Err(format!(
            "unexpected fields: {:?}",
            obj.keys().collect::<Vec<_>>()
        ));
    }
    if v["id"] != id.as_str() {
        return Err(format!("id header {id} differs from body {}", v["id"]));
    }
    let event = v["event"].as_str().unwrap_or("");
    if !["suppressed", "unsuppressed", "bounce"].contains(&event) {
        return Err(format!("event {event}"));
    }
    chrono::DateTime::parse_from_rfc3339(v["at"].as_str().unwrap_or(""))
        .map_err(|e| format!("at is not RFC 3339: {e}"))?;
    Ok(v)
}

async fn hook(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let delay = s.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = s.status.load(Ordering::Relaxed);
    if status != 200 {
        if let Ok(mut seen) = s.seen.lock() {
            seen.refused += 1;
        }
        return StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    }
    match check(&s.secret, &headers, &body) {
        Ok(v) => {
            if let Ok(mut seen) = s.seen.lock() {
                seen.accepted.push(Got {
                    id: v["id"].as_str().unwrap_or("").to_owned(),
                    body: v,
                    when: Instant::now(),
                });
            }
            StatusCode::NO_CONTENT
        }
        Err(problem) => {
            if let Ok(mut seen) = s.seen.lock() {
                seen.bad.push(problem);
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
    }
}

impl Receiver {
    /// Starts a receiver on a free loopback port checking signatures with `secret`.
    pub fn start(secret: &str) -> Receiver {
        Receiver::start_on(secret, 0)
    }

    /// Starts a receiver on `port` (0: any free port).
    pub fn start_on(secret: &str, port: u16) -> Receiver {
        let shared = Arc::new(Shared {
            secret: secret.as_bytes().to_vec(),
            status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            seen: Mutex::new(Seen::default()),
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("bind receiver");
                addr_tx.send(listener.local_addr().expect("addr")).ok();
                let app = axum::Router::new()
                    .route("/hook", axum::routing::post(hook))
                    .with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .ok();
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("receiver address");
        Receiver {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answer every request with `status` from now on (200: check and accept).
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::Relaxed);
    }

    /// Wait this long before answering each request.
    pub fn delay(&self, ms: u64) {
        self.shared.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// A copy of what was accepted.
    pub fn accepted(&self) -> Vec<Got> {
        self.shared
            .seen
            .lock()
            .map(|s| s.accepted.clone())
            .unwrap_or_default()
    }

    /// How many requests were accepted.
    pub fn count(&self) -> usize {
        self.shared
            .seen
            .lock()
            .map(|s| s.accepted.len())
            .unwrap_or(0)
    }

    /// Requests refused by [`Receiver::answer`].
    pub fn refused(&self) -> u64 {
        self.shared.seen.lock().map(|s| s.refused).unwrap_or(0)
    }

    /// Problems found in requests (must stay empty).
    pub fn bad(&self) -> Vec<String> {
        self.shared
            .seen
            .lock()
            .map(|s| s.bad.clone())
            .unwrap_or_default()
    }

    /// Accepted events by id, with how often each arrived.
    pub fn by_id(&self) -> HashMap<String, (usize, serde_json::Value)> {
        let mut m: HashMap<String, (usize, serde_json::Value)> = HashMap::new();
        for g in self.accepted() {
            let e = m.entry(g.id).or_insert((0, g.body));
            e.0 += 1;
        }
        m
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
