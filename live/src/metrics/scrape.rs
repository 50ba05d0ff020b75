//! What the registry and the relay counted, read when Prometheus asks.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use crate::registry::{CloseReason, REFUSALS, Registry, WeakRegistry};

/// The streams of one registry, its events, and its relay.
#[derive(Debug)]
pub(super) struct Streams {
    registry: WeakRegistry,
    max_streams: usize,
}

impl Streams {
    pub(super) fn new(registry: &Registry, max_streams: usize) -> Self {
        Streams {
            registry: registry.downgrade(),
            max_streams,
        }
    }
}

/// Writes one metric without labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// Writes one metric with a value per label `label`.
fn labelled<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    label: &str,
    values: impl IntoIterator<Item = (String, M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (value, metric) in values {
        metric.encode(family.encode_family(&[(label, value.as_str())])?)?;
    }
    Ok(())
}

impl Collector for Streams {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(registry) = self.registry.upgrade() else {
            return Ok(());
        };
        let counts = registry.counts();
        labelled(
            &mut encoder,
            (
                "live_streams_open",
                "Streams open now, by page (their key without its last segment).",
                MetricType::Gauge,
            ),
            "page",
            counts
                .open_by_page
                .iter()
                .map(|(page, open)| (page.clone(), ConstGauge::new(*open as i64))),
        )?;
        single(
            &mut encoder,
            "live_streams_max",
            "The most streams the server holds at once (MAX_STREAMS).",
            ConstGauge::new(self.max_streams as i64),
        )?;
        single(
            &mut encoder,
            "live_streams_opened",
            "Streams opened.",
            ConstCounter::new(counts.opened),
        )?;
        labelled(
            &mut encoder,
            (
                "live_streams_closed",
                "Streams ended, by reason.",
                MetricType::Counter,
            ),
            "reason",
            CloseReason::ALL
                .iter()
                .zip(counts.closed)
                .map(|(reason, n)| (reason.as_str().to_owned(), ConstCounter::new(n))),
        )?;
        labelled(
            &mut encoder,
            (
                "live_streams_refused",
                "Streams refused, by the cap that refused them.",
                MetricType::Counter,
            ),
            "reason",
            REFUSALS
                .iter()
                .zip(counts.refused)
                .map(|(reason, n)| ((*reason).to_owned(), ConstCounter::new(n))),
        )?;
        labelled(
            &mut encoder,
            (
                "live_events_published",
                "Events published on this instance, by kind: latest-state versions, or \
                 ordinary broadcasts and sends.",
                MetricType::Counter,
            ),
            "kind",
            [
                (
                    "latest".to_owned(),
                    ConstCounter::new(counts.published_latest),
                ),
                (
                    "ordinary".to_owned(),
                    ConstCounter::new(counts.published_ordinary),
                ),
            ],
        )?;
        single(
            &mut encoder,
            "live_stream_events_written",
            "Events written to streams (keep-alive comments not counted).",
            ConstCounter::new(counts.events_written),
        )?;
        single(
            &mut encoder,
            "live_stream_written_bytes",
            "Bytes of the events written to streams.",
            ConstCounter::new(counts.bytes_written),
        )?;
        let Some(relay) = registry.relay() else {
            return Ok(());
        };
        let relayed = relay.counts();
        single(
            &mut encoder,
            "live_relay_connected",
            "1 while broadcasts from other instances arrive through the relay (Redis), else 0.",
            ConstGauge::new(i64::from(relay.is_connected())),
        )?;
        single(
            &mut encoder,
            "live_relay_published",
            "Broadcasts published to the other instances.",
            ConstCounter::new(relayed.published),
        )?;
        single(
            &mut encoder,
            "live_relay_received",
            "Messages taken in from the relay's channel.",
            ConstCounter::new(relayed.received),
        )?;
        single(
            &mut encoder,
            "live_relay_connects",
            "Times the relay (re)connected to receive: one at start, one more per loss.",
            ConstCounter::new(relayed.connects),
        )?;
        single(
            &mut encoder,
            "live_relay_rejected",
            "Messages refused and stored entries put right (not signed, forged, stale, copies).",
            ConstCounter::new(relay.rejected()),
        )?;
        if let Some(lag) = relayed.lag_ms {
            single(
                &mut encoder,
                "live_relay_lag_seconds",
                "How old the last message taken in was when it arrived.",
                ConstGauge::new(lag as f64 / 1000.0),
            )?;
        }
        Ok(())
    }
}
