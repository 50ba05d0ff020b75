//! How long an event takes to reach its streams: from its delivery on this instance (its
//! publish, or its arrival through the relay) to the last write of it to a stream here.
//!
//! Sampled, not measured for every event: at most one event of each kind per
//! [`SAMPLE_EVERY`]. A sampled event carries a [`Probe`] — beside each queued copy of an
//! ordinary frame, inside a published latest-state version — and each stream that writes it
//! notes the time; the probe is observed when the last holder lets go of it, which is when no
//! stream can write the event any more. Every other event, and every event when metrics are
//! off, costs the fan-out path one branch per write: the probe's writes (a clock read and an
//! atomic maximum each) stay off all but one round in many.
//!
//! A latest-state version is let go of when a newer one replaces it, so its time is observed
//! then: it is still the time to its last write, only reported later.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use prometheus_client::metrics::histogram::Histogram;

/// At most one sampled event per kind this often: a scrape every 15 s sees about 15.
pub(super) const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The two kinds of event, as metrics label them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Latest,
    Ordinary,
}

/// Where delivery times go, once metrics ask for them ([`Probes::record_into`]).
#[derive(Debug)]
pub(super) struct Probes {
    sinks: OnceLock<Sinks>,
    /// When this registry was made: sample times are counted from it.
    origin: Instant,
}

#[derive(Debug)]
struct Sinks {
    latest: Sink,
    ordinary: Sink,
}

#[derive(Debug)]
struct Sink {
    histogram: Histogram,
    /// When the last sample of this kind was taken, in nanoseconds after `origin` (0: none
    /// yet).
    sampled: AtomicU64,
}

impl Default for Probes {
    fn default() -> Self {
        Probes {
            sinks: OnceLock::new(),
            origin: Instant::now(),
        }
    }
}

impl Probes {
    /// Starts sampling, into `latest` and `ordinary`. Only the first call has an effect.
    pub(super) fn record_into(&self, latest: Histogram, ordinary: Histogram) {
        let sink = |histogram| Sink {
            histogram,
            sampled: AtomicU64::new(0),
        };
        let _ = self.sinks.set(Sinks {
            latest: sink(latest),
            ordinary: sink(ordinary),
        });
    }

    /// A probe for an event of `kind` delivered now, if it is the one to sample.
    pub(super) fn sample(&self, kind: Kind) -> Option<Arc<Probe>> {
        let sinks = self.sinks.get()?;
        let sink = match kind {
            Kind::Latest => &sinks.latest,
            Kind::Ordinary => &sinks.ordinary,
        };
        let now = Instant::now();
        // +1 so that a sample in the registry's first nanosecond is not "none yet".
        let at = now.duration_since(self.origin).as_nanos() as u64 + 1;
        let last = sink.sampled.load(Relaxed);
        if last != 0 && at.saturating_sub(last) < SAMPLE_EVERY.as_nanos() as u64 {
            return None;
        }
        // Two deliveries at once: one of them is the sample.
        sink.sampled
            .compare_exchange(last, at, Relaxed, Relaxed)
            .ok()?;
        Some(Arc::new(Probe {
            delivered: now,
            last_write: AtomicU64::new(0),
            histogram: sink.histogram.clone(),
        }))
    }
}

/// One sampled event on its way to the streams.
#[derive(Debug)]
pub(super) struct Probe {
    delivered: Instant,
    /// The latest write so far, in nanoseconds after `delivered` (0: none yet).
    last_write: AtomicU64,
    histogram: Histogram,
}

/// A probe is itself: `Next` compares the frames it hands out, probes included.
impl PartialEq for Probe {
    fn eq(&self, other: &Probe) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Probe {}

impl Probe {
    /// Notes a write of the event to a stream.
    pub(super) fn wrote(&self) {
        let after = self.delivered.elapsed().as_nanos() as u64;
        self.last_write.fetch_max(after.max(1), Relaxed);
    }
}

impl Drop for Probe {
    /// No stream can write the event any more: its last write, if any stream wrote it, is
    /// final. (An event no stream took is not a delivery, and is not observed.)
    fn drop(&mut self) {
        let last_write = *self.last_write.get_mut();
        if last_write > 0 {
            self.histogram
                .observe(Duration::from_nanos(last_write).as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histograms() -> (Histogram, Histogram) {
        let buckets = [0.001, 0.01, 0.1, 1.0];
        (Histogram::new(buckets), Histogram::new(buckets))
    }

    /// The observed count and sum of a histogram.
    fn observed(histogram: &Histogram) -> (u64, f64) {
        (histogram.count(), histogram.sum())
    }

    #[test]
    fn without_sinks_nothing_is_sampled() {
        assert!(Probes::default().sample(Kind::Ordinary).is_none());
    }

    #[test]
    fn one_event_per_kind_is_sampled_per_period() {
        let probes = Probes::default();
        let (latest, ordinary) = histograms();
        probes.record_into(latest, ordinary);
        assert!(probes.sample(Kind::Ordinary).is_some());
        assert!(probes.sample(Kind::Ordinary).is_none(), "within the period");
        assert!(probes.sample(Kind::Latest).is_some(), "kinds are apart");
    }

    #[test]
    fn the_last_write_is_observed_once_no_stream_holds_the_event() {
        let probes = Probes::default();
        let (latest, ordinary) = histograms();
        probes.record_into(latest, ordinary.clone());
        let probe = probes.sample(Kind::Ordinary).unwrap();
        let queued = [Arc::clone(&probe), Arc::clone(&probe)];
        drop(probe);
        queued[0].wrote();
        std::thread::sleep(Duration::from_millis(20));
        queued[1].wrote();
        assert_eq!(observed(&ordinary).0, 0, "a stream still holds it");
        drop(queued);
        let (count, sum) = observed(&ordinary);
        assert_eq!(count, 1);
        assert!(
            sum >= 0.020,
            "the time to the last write, not the first: {sum}"
        );
    }

    #[test]
    fn an_event_nobody_wrote_is_not_observed() {
        let probes = Probes::default();
        let (latest, ordinary) = histograms();
        probes.record_into(latest.clone(), ordinary);
        drop(probes.sample(Kind::Latest).unwrap());
        assert_eq!(observed(&latest).0, 0);
    }
}
