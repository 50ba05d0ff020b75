//! The cost of metrics (`--metrics-clients`): the steady rounds with `METRICS_ADDR` unset and
//! set, the set runs scraped through the run as Prometheus would, so that what an operator pays
//! for turning metrics on is a figure, not a guess. Also what the server's own sampled delivery
//! histogram says of the same rounds, beside the benchmark's figures.

use std::{net::SocketAddr, time::Duration};

use tokio_util::task::AbortOnDropHandle;

use crate::{
    clients::http,
    options::Options,
    report::Report,
    run::{Setup, Transport, run},
};

/// How often the metrics of [`Setup::LocalWithMetrics`] are scraped: Prometheus's usual
/// interval is 15 s to a minute, so this is the costly end.
pub const SCRAPE_EVERY: Duration = Duration::from_secs(1);

/// The metrics part: for each N, four runs — unset, set, set, unset, so that a drift over the
/// run weighs on both alike. Returns the unset runs and the set ones, by N.
pub async fn measure(options: &Options) -> Vec<(Vec<Report>, Vec<Report>)> {
    let mut metrics = Vec::new();
    for &n in &options.metrics {
        let mut unset = Vec::new();
        let mut set = Vec::new();
        for with in [false, true, true, false] {
            let setup = if with {
                Setup::LocalWithMetrics
            } else {
                Setup::Local
            };
            let report = run(n, options.rounds, &[], &setup, Transport::Plain).await;
            if with {
                set.push(report)
            } else {
                unset.push(report)
            }
        }
        metrics.push((unset, set));
    }
    metrics
}

/// Scrapes `metrics` every [`SCRAPE_EVERY`] until the handle is dropped, after checking once
/// that it serves what it claims.
pub async fn scraper(metrics: SocketAddr) -> AbortOnDropHandle<()> {
    let exposition = http(metrics, "GET /metrics HTTP/1.1", "").await;
    assert!(
        exposition.contains("live_streams_open"),
        "the metrics address serves metrics: {exposition}"
    );
    AbortOnDropHandle::new(tokio::spawn(async move {
        let mut every = tokio::time::interval(SCRAPE_EVERY);
        loop {
            every.tick().await;
            http(metrics, "GET /metrics HTTP/1.1", "").await;
        }
    }))
}

/// What the server's own histogram says of the rounds so far, read from `metrics` now.
pub async fn sampled(metrics: SocketAddr) -> String {
    sampled_delivery(&http(metrics, "GET /metrics HTTP/1.1", "").await)
}

/// The mean time to the last write of the events the server sampled, by kind, from its
/// `/metrics` response.
fn sampled_delivery(exposition: &str) -> String {
    let sample = |series: String| {
        exposition.lines().find_map(|line| {
            let value = line.strip_prefix(series.as_str())?.strip_prefix(' ')?;
            value.trim().parse::<f64>().ok()
        })
    };
    ["latest", "ordinary"]
        .map(|kind| {
            let sum = sample(format!("live_delivery_seconds_sum{{kind=\"{kind}\"}}"));
            let count = sample(format!("live_delivery_seconds_count{{kind=\"{kind}\"}}"));
            match (sum, count) {
                (Some(sum), Some(count)) if count > 0.0 => format!(
                    "{kind} mean {:.1} ms over {count} sampled events",
                    sum / count * 1000.0
                ),
                _ => format!("{kind}: none sampled"),
            }
        })
        .join("; ")
}
