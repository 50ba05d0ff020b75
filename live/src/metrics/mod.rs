//! Prometheus metrics, on a listener of their own (`METRICS_ADDR`), never on the public port.
//!
//! Made with `prometheus-client` (the Prometheus project's Rust client): a registry per app
//! rather than one for the process — several apps in one test process each count their own —,
//! typed label sets, and the exposition format written by the crate. The other candidate, the
//! `metrics` facade with `metrics-exporter-prometheus`, records into one global recorder.
//!
//! What is counted where:
//! - the registry counts streams, events and bytes itself, always (`registry/stats.rs`: it
//!   costs the fan-out path nothing measurable), and `scrape` reads those counts, the open
//!   streams by page and the relay's counts when Prometheus asks;
//! - `http`: requests by route, method and status, and their durations, and the refusals of
//!   actions by reason — a middleware added only when `METRICS_ADDR` is set;
//! - `delivery`: how long sampled events take to reach their streams, timed by the registry
//!   (`registry/probe.rs`) only once this asks;
//! - `process`: CPU, memory and file descriptors, read from `/proc` at each scrape.
//!
//! Unset `METRICS_ADDR`: no listener, no middleware, nothing kept.

mod http;
mod latency;
mod scrape;
#[cfg(target_os = "linux")]
mod this_process;

use std::sync::Arc;

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use prometheus_client::registry::Registry as Prometheus;
use tokio::net::TcpListener;

use self::http::Http;
pub use self::http::track;
use crate::registry::Registry;

/// One app's metrics.
#[derive(Debug)]
pub struct Metrics {
    prometheus: Prometheus,
    http: Http,
}

impl Metrics {
    /// Metrics of the app whose streams `registry` holds, capped at `max_streams`.
    pub fn new(registry: &Registry, max_streams: usize) -> Arc<Metrics> {
        let mut prometheus = Prometheus::default();
        let http = Http::register(&mut prometheus);
        latency::register(&mut prometheus, registry);
        prometheus.register_collector(Box::new(scrape::Streams::new(registry, max_streams)));
        #[cfg(target_os = "linux")]
        prometheus.register_collector(Box::new(this_process::Process));
        Arc::new(Metrics { prometheus, http })
    }

    /// Counts a refused action, by its status (see `refusals.rs`).
    pub fn refused(&self, status: axum::http::StatusCode) {
        self.http.refused(status);
    }

    /// Everything, in the Prometheus text format (0.0.4), which every scraper and `promtool`
    /// read.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; a collector that could not read its source
        // leaves its metrics out instead of failing the scrape.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.prometheus);
        text
    }
}

/// Serves `GET /metrics` on `listener` until the returned task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let router = Router::new()
        .route("/metrics", get(exposition))
        .with_state(metrics);
    if let Err(error) = axum::serve(listener, router).await {
        tracing::error!(%error, "metrics listener failed");
    }
}

async fn exposition(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
}
