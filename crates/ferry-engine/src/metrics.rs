//! Prometheus metrics: what Ferry did (Dropbox calls, bytes, passes, API requests) counted as
//! it happens, and what it holds (queue, files) read from the store at each scrape. Served
//! by the API at `GET /metrics` in the OpenMetrics text format; docs/operations.md lists them.

use crate::{Engine, EngineError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Source {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Class {
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiCall {
    method: String,
    route: String,
    status: u16,
}

/// How a pass ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassEnd {
    /// Every file done.
    Ok,
    /// Some files failed; the record is retried later.
    Retry,
    /// The record waits (a connection needs reconnecting).
    Deferred,
    /// Failed in a way retrying cannot help; done until something changes.
    Failed,
    /// Dead-lettered.
    Dead,
}

impl PassEnd {
    fn label(self) -> &'static str {
        match self {
            PassEnd::Ok => "ok",
            PassEnd::Retry => "retry",
            PassEnd::Deferred => "deferred",
            PassEnd::Failed => "failed",
            PassEnd::Dead => "dead",
        }
    }
}

/// The engine's metrics.
pub struct Metrics {
    registry: Registry,
    dropbox_requests: Family<RouteStatus, Counter>,
    dropbox_rate_limited: Family<Route, Counter>,
    dropbox_retry_after: Counter,
    /// 429 answers of every route (for the benchmark's report).
    rate_limited_total: std::sync::atomic::AtomicU64,
    dropbox_duration: Family<Route, Histogram>,
    bytes_sent: Counter,
    bytes_received: Counter,
    passes: Family<Outcome, Counter>,
    remote_trees: Family<Source, Counter>,
    pass_duration: Histogram,
    api_requests: Family<ApiCall, Counter>,
    api_duration: Histogram,
    queue: Family<Class, Gauge>,
    files: Family<State, Gauge>,
    workers: Gauge,
    /// One scrape at a time refreshes the gauges.
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn seconds_histogram() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ferry");
        let dropbox_requests = Family::<RouteStatus, Counter>::default();
        registry.register(
            "dropbox_requests",
            "Requests sent to Dropbox, by route and HTTP status (none: no answer)",
            dropbox_requests.clone(),
        );
        let dropbox_rate_limited = Family::<Route, Counter>::default();
        registry.register(
            "dropbox_rate_limited",
            "Dropbox answers 429 (slow down), by route",
            dropbox_rate_limited.clone(),
        );
        let dropbox_retry_after = Counter::default();
        registry.register(
            "dropbox_retry_after_seconds",
            "Seconds of waiting Dropbox asked for in Retry-After headers",
            dropbox_retry_after.clone(),
        );
        let dropbox_duration = Family::<Route, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        registry.register(
            "dropbox_request_duration_seconds",
            "Time until Dropbox's answer headers, by route",
            dropbox_duration.clone(),
        );
        let bytes_sent = Counter::default();
        registry.register(
            "dropbox_sent_bytes",
            "Request body bytes sent to Dropbox (uploads)",
            bytes_sent.clone(),
        );
        let bytes_received = Counter::default();
        registry.register(
            "dropbox_received_bytes",
            "Response body bytes Dropbox announced (downloads)",
            bytes_received.clone(),
        );
        let passes = Family::<Outcome, Counter>::default();
        registry.register(
            "passes",
            "Sync passes run, by outcome (ok, retry, deferred, failed, dead)",
            passes.clone(),
        );
        let remote_trees = Family::<Source, Counter>::default();
        registry.register(
            "remote_trees",
            "Binding folders a pass read, by source (mirror: no request; listing: list_folder)",
            remote_trees.clone(),
        );
        let pass_duration = seconds_histogram();
        registry.register(
            "pass_duration_seconds",
            "How long sync passes took",
            pass_duration.clone(),
        );
        let api_requests = Family::<ApiCall, Counter>::default();
        registry.register(
            "api_requests",
            "REST API requests, by method, route template and status",
            api_requests.clone(),
        );
        let api_duration = seconds_histogram();
        registry.register(
            "api_request_duration_seconds",
            "How long REST API requests took to answer",
            api_duration.clone(),
        );
        let queue = Family::<Class, Gauge>::default();
        registry.register(
            "queue_records",
            "Records in the sync queue: queued (all), retrying (failed at least once), dead (dead letters)",
            queue.clone(),
        );
        let files = Family::<State, Gauge>::default();
        registry.register(
            "files",
            "Files Ferry tracks in Dropbox, by state (synced, pending, failed)",
            files.clone(),
        );
        let workers = Gauge::default();
        registry.register("workers_running", "Sync workers running", workers.clone());
        Metrics {
            registry,
            dropbox_requests,
            dropbox_rate_limited,
            dropbox_retry_after,
            rate_limited_total: std::sync::atomic::AtomicU64::new(0),
            dropbox_duration,
            bytes_sent,
            bytes_received,
            passes,
            remote_trees,
            pass_duration,
            api_requests,
            api_duration,
            queue,
            files,
            workers,
            scrape: Mutex::new(()),
        }
    }
}

impl ferry_dropbox::CallObserver for Metrics {
    fn observe(&self, call: &ferry_dropbox::ObservedCall<'_>) {
        let status = call
            .status
            .map_or_else(|| "none".to_owned(), |s| s.to_string());
        self.dropbox_requests
            .get_or_create(&RouteStatus {
                route: call.route.to_owned(),
                status,
            })
            .inc();
        let route = Route {
            route: call.route.to_owned(),
        };
        if call.status == Some(429) {
            self.dropbox_rate_limited.get_or_create(&route).inc();
            self.rate_limited_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(secs) = call.retry_after_secs {
            self.dropbox_retry_after.inc_by(secs);
        }
        self.dropbox_duration
            .get_or_create(&route)
            .observe(call.elapsed.as_secs_f64());
        self.bytes_sent.inc_by(call.bytes_sent);
        if let Some(n) = call.bytes_received {
            self.bytes_received.inc_by(n);
        }
    }
}

impl Metrics {
    /// Counts one read of a binding's folder.
    pub(crate) fn remote_tree(&self, source: crate::mirror::TreeSource) {
        let source = match source {
            crate::mirror::TreeSource::Mirror => "mirror",
            crate::mirror::TreeSource::Listing => "listing",
        };
        self.remote_trees.get_or_create(&Source { source }).inc();
    }

    /// Dropbox answers 429 so far, of every route.
    pub fn rate_limited_total(&self) -> u64 {
        self.rate_limited_total
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Binding folders read so far: (from the mirror, by a listing).
    pub fn remote_tree_counts(&self) -> (u64, u64) {
        let count = |source| self.remote_trees.get_or_create(&Source { source }).get();
        (count("mirror"), count("listing"))
    }

    /// Passes run so far, however they ended.
    pub fn passes_total(&self) -> u64 {
        [
            PassEnd::Ok,
            PassEnd::Retry,
            PassEnd::Deferred,
            PassEnd::Failed,
            PassEnd::Dead,
        ]
        .into_iter()
        .map(|end| {
            self.passes
                .get_or_create(&Outcome {
                    outcome: end.label(),
                })
                .get()
        })
        .sum()
    }

    /// Counts one pass.
    pub fn pass(&self, end: PassEnd, took: Duration) {
        self.passes
            .get_or_create(&Outcome {
                outcome: end.label(),
            })
            .inc();
        self.pass_duration.observe(took.as_secs_f64());
    }

    /// Counts one API request (`route` is the route template, never the raw path: record
    /// keys must not become label values).
    pub fn api_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.api_requests
            .get_or_create(&ApiCall {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.api_duration.observe(took.as_secs_f64());
    }
}

/// The content type of [`Engine::metrics_text`].
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Engine {
    /// The metrics, for instrumenting callers (the API counts its requests here).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every metric in the OpenMetrics text format, the store-held ones read now.
    pub async fn metrics_text(&self) -> Result<String, EngineError> {
        let queue = self.store.queue_stats().await?;
        let files = self.store.sync_counts().await?;
        let m = &self.metrics;
        let _one = m
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        m.queue
            .get_or_create(&Class { class: "queued" })
            .set(gauge(queue.queued));
        m.queue
            .get_or_create(&Class { class: "retrying" })
            .set(gauge(queue.retrying));
        m.queue
            .get_or_create(&Class { class: "dead" })
            .set(gauge(queue.dead));
        m.files
            .get_or_create(&State { state: "synced" })
            .set(gauge(files.synced));
        m.files
            .get_or_create(&State { state: "pending" })
            .set(gauge(files.pending));
        m.files
            .get_or_create(&State { state: "failed" })
            .set(gauge(files.failed));
        m.workers.set(gauge(self.running_workers() as u64));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &m.registry)
            .map_err(|e| EngineError::Invalid(format!("cannot encode metrics: {e}")))?;
        Ok(text)
    }
}
