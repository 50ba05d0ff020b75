//! How long events take from their delivery on this instance to their last write to a stream,
//! by kind: a histogram the registry fills, for one sampled event per kind per second.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, histogram::Histogram},
    registry::{Registry as Prometheus, Unit},
};

use crate::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    /// `latest` (latest-state versions) or `ordinary` (broadcasts and sends).
    kind: &'static str,
}

/// Seconds, from half a millisecond (a few streams) to ten (the send timeout): ten thousand
/// streams take tens of milliseconds here.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Registers `live_delivery_seconds` and has `registry` time its deliveries into it.
pub(super) fn register(prometheus: &mut Prometheus, registry: &Registry) {
    let family: Family<KindLabels, Histogram> =
        Family::new_with_constructor(|| Histogram::new(BUCKETS));
    prometheus.register_with_unit(
        "live_delivery",
        "Time from an event's delivery on this instance (its publish, or its arrival from the \
         relay) to its last write to a stream, by kind; sampled, one event per kind per second",
        Unit::Seconds,
        family.clone(),
    );
    let histogram = |kind| (*family.get_or_create(&KindLabels { kind })).clone();
    registry.time_deliveries(histogram("latest"), histogram("ordinary"));
}
