//! Prometheus metrics: a recorder of our own (no global state) for the HTTP requests, what the
//! database knows (set at each scrape) and build information; and the ingest pipeline's own record,
//! [`pipeline::Metrics`], rendered as it stands at each scrape (the pipeline keeps one record of
//! what it did, for its summaries and for this route alike).
//!
//! Names follow the Prometheus conventions: `bounced_` prefix, base units in the name (`_seconds`,
//! `_bytes`), `_total` for counters.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::pipeline::{self, Distribution};
use crate::store::query::Counts;

/// Buckets of the HTTP request duration, in seconds.
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A gauge's name and labels.
type Series = (&'static str, Vec<(&'static str, String)>);

/// The metrics of one server: cheap to clone, safe to share with the pipeline's tasks.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// Label sets of the database gauges set at the last scrape, so that one that vanished (after a
    /// reclassify) drops to zero instead of keeping its old value.
    seen: Arc<Mutex<HashSet<Series>>>,
    /// The pipeline's record: its errors always count here; the rest is rendered when `ingesting`.
    pipeline: pipeline::Metrics,
    ingesting: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Metrics of a server with no pipeline beside it (`bounced serve`).
    pub fn new() -> Metrics {
        Metrics::build(pipeline::Metrics::default(), false)
    }

    /// Metrics of a server running beside a pipeline (`bounced run --http`): `/metrics` shows
    /// `pipeline` as it stands at each scrape.
    pub fn with_pipeline(pipeline: pipeline::Metrics) -> Metrics {
        Metrics::build(pipeline, true)
    }

    fn build(pipeline: pipeline::Metrics, ingesting: bool) -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("bounced_http_request_duration_seconds".to_owned()),
                REQUEST_BUCKETS,
            )
            .expect("the bucket list is constant and not empty")
            .build_recorder();
        let handle = recorder.handle();
        let m = Metrics {
            recorder: Arc::new(recorder),
            handle,
            seen: Arc::new(Mutex::new(HashSet::new())),
            pipeline,
            ingesting,
        };
        m.with(|| {
            describe_gauge!(
                "bounced_build_info",
                "Always 1; the labels name the running build."
            );
            describe_gauge!(
                "bounced_db_messages",
                "Messages stored in the database, by kind."
            );
            describe_gauge!(
                "bounced_db_bounces",
                "Bounce results stored in the database, by type and reason."
            );
            describe_gauge!(
                "bounced_db_recipients",
                "Recipients known to the database, by state."
            );
            describe_gauge!(
                "bounced_db_suppressed_recipients",
                "Suppressed recipients, by what suppressed them."
            );
            describe_gauge!(
                "bounced_outbox_deliveries",
                "Outbox deliveries, by notify target and state (pending, delivered, dead)."
            );
            describe_gauge!(
                "bounced_db_size_bytes",
                Unit::Bytes,
                "Size of the database."
            );
            describe_counter!(
                "bounced_http_requests_total",
                "HTTP requests answered, by route and status code."
            );
            describe_histogram!(
                "bounced_http_request_duration_seconds",
                Unit::Seconds,
                "Time to answer an HTTP request (until the headers of a streamed answer)."
            );
            gauge!(
                "bounced_build_info",
                "version" => env!("CARGO_PKG_VERSION"),
                "schema" => crate::store::Store::schema_version().to_string(),
            )
            .set(1.0);
        });
        m
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&*self.recorder, f)
    }

    /// Folds the histogram samples recorded since the last call into their buckets.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The text exposition format, for `GET /metrics`.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        let mut out = self.handle.render();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        render_pipeline(&mut out, &self.pipeline, self.ingesting);
        out
    }

    /// Sets the database gauges from `counts`; gauges of label sets no longer present drop to 0.
    pub fn set_database(&self, counts: &Counts) {
        let one = |name: &'static str, label: &'static str, rows: &[(String, i64)]| {
            rows.iter()
                .map(move |(v, n)| ((name, vec![(label, v.clone())]), *n as f64))
                .collect::<Vec<(Series, f64)>>()
        };
        let mut now = one("bounced_db_messages", "kind", &counts.messages);
        now.extend(counts.bounces.iter().map(|(ty, reason, n)| {
            (
                (
                    "bounced_db_bounces",
                    vec![("type", ty.clone()), ("reason", reason.clone())],
                ),
                *n as f64,
            )
        }));
        now.extend(one("bounced_db_recipients", "state", &counts.recipients));
        now.extend(one(
            "bounced_db_suppressed_recipients",
            "cause",
            &counts.suppressed,
        ));
        now.extend(counts.outbox.iter().map(|(target, state, n)| {
            (
                (
                    "bounced_outbox_deliveries",
                    vec![("target", target.clone()), ("state", state.clone())],
                ),
                *n as f64,
            )
        }));
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let current: HashSet<Series> = now.iter().map(|(s, _)| s.clone()).collect();
        self.with(|| {
            for (name, labels) in seen.difference(&current) {
                gauge!(*name, labels_of(labels)).set(0.0);
            }
            for ((name, labels), v) in &now {
                gauge!(*name, labels_of(labels)).set(*v);
            }
            gauge!("bounced_db_size_bytes").set(counts.size_bytes as f64);
        });
        *seen = current;
    }

    /// Counts an error of `kind` (`metrics_scrape`, and the pipeline's own kinds).
    pub fn error(&self, kind: &str) {
        self.pipeline.error(kind);
    }

    /// The pipeline these metrics render, when the server runs beside one.
    pub fn pipeline(&self) -> Option<&pipeline::Metrics> {
        self.ingesting.then_some(&self.pipeline)
    }

    /// One HTTP request answered on `route` (the route pattern, never the address asked about).
    pub fn http_request(&self, route: &str, status: u16, took: Duration) {
        self.with(|| {
            counter!(
                "bounced_http_requests_total",
                "route" => route.to_owned(),
                "status" => status.to_string(),
            )
            .increment(1);
            histogram!(
                "bounced_http_request_duration_seconds",
                "route" => route.to_owned()
            )
            .record(took.as_secs_f64());
        });
    }
}

/// Appends the pipeline's series (only its errors when no pipeline runs).
fn render_pipeline(out: &mut String, p: &pipeline::Metrics, ingesting: bool) {
    let r = p.figures(Utc::now());
    family(
        out,
        "bounced_errors_total",
        "counter",
        "Errors, by kind.",
        r.errors
            .iter()
            .map(|(k, n)| (vec![("kind", k.as_str())], *n as f64)),
    );
    if !ingesting {
        return;
    }
    family(
        out,
        "bounced_messages_processed_total",
        "counter",
        "Messages committed by the pipeline, by kind and outcome (new, duplicate).",
        r.messages
            .iter()
            .map(|(k, o, n)| (vec![("kind", *k), ("outcome", *o)], *n as f64)),
    );
    family(
        out,
        "bounced_bounces_processed_total",
        "counter",
        "Bounce results of newly recorded messages, by type and reason.",
        r.bounces
            .iter()
            .map(|(t, reason, n)| (vec![("type", *t), ("reason", *reason)], *n as f64)),
    );
    family(
        out,
        "bounced_suppressions_total",
        "counter",
        "Recipients suppressed by newly recorded messages, by cause.",
        r.suppressed
            .iter()
            .map(|(c, n)| (vec![("cause", *c)], *n as f64)),
    );
    family(
        out,
        "bounced_queue_messages",
        "gauge",
        "Messages waiting between the sources and the workers.",
        [(vec![], r.queue as f64)],
    );
    histogram_family(
        out,
        "bounced_batch_commit_duration_seconds",
        "Time to write and commit one batch.",
        &r.commit,
    );
    histogram_family(
        out,
        "bounced_delivery_to_commit_seconds",
        "From a message's arrival at its source (file mtime, IMAP INTERNALDATE) to the commit of its result.",
        &r.delivery_to_commit,
    );
    let by_source = |f: &dyn Fn(&pipeline::SourceFigures) -> Option<f64>| {
        r.sources
            .iter()
            .filter_map(|s| Some((vec![("source", s.label.as_str())], f(s)?)))
            .collect::<Vec<_>>()
    };
    family(
        out,
        "bounced_source_lag_seconds",
        "gauge",
        "Age of a source's oldest message read and not yet committed, from its arrival; 0 when none.",
        by_source(&|s| Some(s.lag.as_secs_f64())),
    );
    family(
        out,
        "bounced_source_connected",
        "gauge",
        "1 while a source is connected (IMAP) or watching its folder (Maildir), else 0.",
        by_source(&|s| Some(if s.state.connected { 1.0 } else { 0.0 })),
    );
    family(
        out,
        "bounced_source_last_idle_timestamp_seconds",
        "gauge",
        "When a source last began waiting for new mail with IMAP IDLE, as unix time.",
        by_source(&|s| s.state.last_idle.map(|t| t.timestamp() as f64)),
    );
    family(
        out,
        "bounced_source_reconnects_total",
        "counter",
        "Connections of a source lost or refused, each followed by a new attempt.",
        by_source(&|s| Some(s.state.reconnects as f64)),
    );
}

/// One metric family in the text format: its help, its type and its samples.
fn family<'a>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, f64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{} {}", label_text(&labels), number(v));
    }
    out.push('\n');
}

/// A histogram family: cumulative buckets, `+Inf`, sum and count.
fn histogram_family(out: &mut String, name: &str, help: &str, d: &Distribution) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (bound, n) in d.bounds.iter().zip(&d.cumulative) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {n}", number(*bound));
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", d.count());
    let _ = writeln!(out, "{name}_sum {}", number(d.sum.as_secs_f64()));
    let _ = writeln!(out, "{name}_count {}\n", d.count());
}

/// `{a="x",b="y"}` with the values escaped as the text format wants; nothing for no labels.
fn label_text(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

/// A sample value: integers without a fraction, as Prometheus writes them.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn labels_of(labels: &[(&'static str, String)]) -> Vec<metrics::Label> {
    labels
        .iter()
        .map(|(k, v)| metrics::Label::new(*k, v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_database_gauges() {
        let m = Metrics::new();
        let counts = Counts {
            messages: vec![("dsn".into(), 3), ("not_bounce".into(), 1)],
            bounces: vec![("hard".into(), "userunknown".into(), 2)],
            recipients: vec![("suppressed".into(), 2)],
            suppressed: vec![("hard".into(), 2)],
            size_bytes: 4096,
            outbox: vec![("hook".into(), "dead".into(), 2)],
        };
        m.set_database(&counts);
        let text = m.render();
        assert!(
            text.contains("bounced_outbox_deliveries{target=\"hook\",state=\"dead\"} 2"),
            "{text}"
        );
        assert!(text.contains("bounced_build_info{version=\""), "{text}");
        assert!(
            text.contains("bounced_db_messages{kind=\"dsn\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("bounced_db_bounces{type=\"hard\",reason=\"userunknown\"} 2"),
            "{text}"
        );
        assert!(text.contains("bounced_db_size_bytes 4096"), "{text}");
        assert!(text.contains("# TYPE bounced_db_messages gauge"), "{text}");
        // A label set gone from the database drops to zero.
        m.set_database(&Counts {
            messages: vec![("dsn".into(), 4)],
            ..Counts::default()
        });
        let text = m.render();
        assert!(
            text.contains("bounced_db_messages{kind=\"dsn\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("bounced_db_messages{kind=\"not_bounce\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn the_pipeline_record_renders_in_the_text_format() {
        let p = pipeline::Metrics::default();
        let states = p.sources();
        states.set("imap:main/INBOX", "connected");
        states.set_connected("imap:main/INBOX", true);
        states.reconnect("imap:main/INBOX");
        states.idle(
            "imap:main/INBOX",
            chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        );
        states.set("/var/mail/\"odd\"", "stopped");
        p.error("store_retry");
        let m = Metrics::with_pipeline(p.clone());
        m.error("metrics_scrape");
        let text = m.render();
        for needle in [
            "bounced_queue_messages 0",
            "# TYPE bounced_batch_commit_duration_seconds histogram",
            "bounced_batch_commit_duration_seconds_bucket{le=\"0.0025\"} 0",
            "bounced_batch_commit_duration_seconds_bucket{le=\"+Inf\"} 0",
            "# TYPE bounced_delivery_to_commit_seconds histogram",
            "bounced_delivery_to_commit_seconds_count 0",
            "# TYPE bounced_messages_processed_total counter",
            "bounced_source_lag_seconds{source=\"imap:main/INBOX\"} 0",
            "bounced_source_connected{source=\"imap:main/INBOX\"} 1",
            "bounced_source_connected{source=\"/var/mail/\\\"odd\\\"\"} 0",
            "bounced_source_reconnects_total{source=\"imap:main/INBOX\"} 1",
            "bounced_source_last_idle_timestamp_seconds{source=\"imap:main/INBOX\"} 1800000000",
            "bounced_errors_total{kind=\"store_retry\"} 1",
            "bounced_errors_total{kind=\"metrics_scrape\"} 1",
        ] {
            assert!(text.contains(needle), "no `{needle}` in:\n{text}");
        }
        // Each family is declared once.
        assert_eq!(text.matches("# TYPE bounced_errors_total ").count(), 1);

        // Without a pipeline only the errors are shown.
        let alone = Metrics::new();
        alone.error("metrics_scrape");
        let text = alone.render();
        assert!(
            text.contains("bounced_errors_total{kind=\"metrics_scrape\"} 1"),
            "{text}"
        );
        assert!(!text.contains("bounced_queue_messages"), "{text}");
        assert!(alone.pipeline().is_none() && m.pipeline().is_some());
    }
}
