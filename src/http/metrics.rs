//! Prometheus metrics: a recorder of our own (no global state), what the database knows (set at
//! each scrape), build information, and the calls the ingest pipeline makes as it works.
//!
//! Names follow the Prometheus conventions: `bounced_` prefix, base units in the name (`_seconds`,
//! `_bytes`), `_total` for counters.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::store::query::Counts;

/// Buckets of the batch commit duration, in seconds.
const COMMIT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of the delivery-to-commit latency, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
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
    /// A fresh set of metrics, with build information and every metric described.
    pub fn new() -> Metrics {
        let mut builder = PrometheusBuilder::new();
        for (name, buckets) in [
            ("bounced_batch_commit_duration_seconds", COMMIT_BUCKETS),
            ("bounced_delivery_to_commit_seconds", LATENCY_BUCKETS),
            ("bounced_http_request_duration_seconds", REQUEST_BUCKETS),
        ] {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                .expect("bucket lists are constant and not empty");
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let m = Metrics {
            recorder: Arc::new(recorder),
            handle,
            seen: Arc::new(Mutex::new(HashSet::new())),
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
                "bounced_db_size_bytes",
                Unit::Bytes,
                "Size of the database."
            );
            describe_gauge!(
                "bounced_queue_messages",
                "Messages waiting between the sources and the workers."
            );
            describe_histogram!(
                "bounced_batch_commit_duration_seconds",
                Unit::Seconds,
                "Time to write and commit one batch."
            );
            describe_counter!(
                "bounced_messages_processed_total",
                "Messages committed by the pipeline, by kind and outcome (new, duplicate)."
            );
            describe_histogram!(
                "bounced_delivery_to_commit_seconds",
                Unit::Seconds,
                "From a message's arrival at its source to the commit of its result."
            );
            describe_gauge!(
                "bounced_source_lag_seconds",
                Unit::Seconds,
                "Age of the oldest message a source has not yet handed over."
            );
            describe_gauge!(
                "bounced_source_connected",
                "1 while a source is connected (IMAP) or watching (Maildir), else 0."
            );
            describe_gauge!(
                "bounced_source_last_idle_timestamp_seconds",
                Unit::Seconds,
                "When a source last started waiting for new mail (IMAP IDLE), as unix time."
            );
            describe_counter!(
                "bounced_source_reconnects_total",
                "Reconnections of a source after a failure."
            );
            describe_counter!("bounced_errors_total", "Errors, by kind.");
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
        self.handle.render()
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

    // ---- what the ingest pipeline reports ----

    /// Messages now waiting between the sources and the workers.
    pub fn queue_depth(&self, messages: usize) {
        self.with(|| gauge!("bounced_queue_messages").set(messages as f64));
    }

    /// One batch committed, and how long writing and committing it took.
    pub fn batch_committed(&self, took: Duration) {
        self.with(|| {
            histogram!("bounced_batch_commit_duration_seconds").record(took.as_secs_f64())
        });
    }

    /// One message committed: its kind (`dsn`, `text`, `not_bounce`, `error`, ...) and outcome
    /// (`new` or `duplicate`).
    pub fn message_recorded(&self, kind: &str, outcome: &str) {
        self.with(|| {
            counter!(
                "bounced_messages_processed_total",
                "kind" => kind.to_owned(),
                "outcome" => outcome.to_owned(),
            )
            .increment(1)
        });
    }

    /// The time from a message's arrival at its source to the commit of its result.
    pub fn delivery_to_commit(&self, latency: Duration) {
        self.with(|| {
            histogram!("bounced_delivery_to_commit_seconds").record(latency.as_secs_f64())
        });
    }

    /// How far behind a source is: the age of the oldest message it has not handed over.
    pub fn source_lag(&self, source: &str, lag: Duration) {
        self.with(|| {
            gauge!("bounced_source_lag_seconds", "source" => source.to_owned())
                .set(lag.as_secs_f64())
        });
    }

    /// Whether a source is connected (IMAP) or watching (Maildir).
    pub fn source_connected(&self, source: &str, connected: bool) {
        self.with(|| {
            gauge!("bounced_source_connected", "source" => source.to_owned()).set(if connected {
                1.0
            } else {
                0.0
            })
        });
    }

    /// A source began waiting for new mail (IMAP IDLE) at `at`.
    pub fn source_idle(&self, source: &str, at: DateTime<Utc>) {
        self.with(|| {
            gauge!(
                "bounced_source_last_idle_timestamp_seconds",
                "source" => source.to_owned()
            )
            .set(at.timestamp() as f64)
        });
    }

    /// A source reconnected after a failure.
    pub fn source_reconnect(&self, source: &str) {
        self.with(|| {
            counter!("bounced_source_reconnects_total", "source" => source.to_owned()).increment(1)
        });
    }

    /// An error of `kind` (`store_locked`, `read`, `imap`, `quarantine`, ...).
    pub fn error(&self, kind: &str) {
        self.with(|| counter!("bounced_errors_total", "kind" => kind.to_owned()).increment(1));
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
        };
        m.set_database(&counts);
        let text = m.render();
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
    fn pipeline_calls_show_as_histograms_counters_and_gauges() {
        let m = Metrics::new();
        m.queue_depth(7);
        m.batch_committed(Duration::from_millis(3));
        m.message_recorded("dsn", "new");
        m.message_recorded("dsn", "new");
        m.delivery_to_commit(Duration::from_millis(40));
        m.source_lag("maildir:/m", Duration::from_secs(2));
        m.source_connected("imap:main/INBOX", true);
        m.source_reconnect("imap:main/INBOX");
        m.source_idle(
            "imap:main/INBOX",
            DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        );
        m.error("store_locked");
        let text = m.render();
        for needle in [
            "bounced_queue_messages 7",
            "# TYPE bounced_batch_commit_duration_seconds histogram",
            "bounced_batch_commit_duration_seconds_bucket{le=\"0.005\"} 1",
            "bounced_messages_processed_total{kind=\"dsn\",outcome=\"new\"} 2",
            "bounced_delivery_to_commit_seconds_count 1",
            "bounced_source_lag_seconds{source=\"maildir:/m\"} 2",
            "bounced_source_connected{source=\"imap:main/INBOX\"} 1",
            "bounced_source_reconnects_total{source=\"imap:main/INBOX\"} 1",
            "bounced_source_last_idle_timestamp_seconds{source=\"imap:main/INBOX\"} 1800000000",
            "bounced_errors_total{kind=\"store_locked\"} 1",
        ] {
            assert!(text.contains(needle), "no `{needle}` in:\n{text}");
        }
    }
}
