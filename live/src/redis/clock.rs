//! Redis's clock, read from here.
//!
//! How old a message is decides whether a receiver takes it (`admission.rs`), so sender and
//! receiver must agree on the time. Their own clocks may not: hosts drift and get set wrong.
//! Both ask Redis instead (`TIME`), and count from the answer on their monotonic clock, asking
//! again every so often. Each reading is off by at most half the round trip to Redis.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use redis::{RedisResult, aio::MultiplexedConnection};

/// How long a reading is trusted before it is taken again. Monotonic clocks drift by well
/// under a millisecond a minute; this is about noticing Redis's clock being set.
pub(crate) const READ_EVERY: Duration = Duration::from_secs(30);

/// Redis's time, as last read, and when that was here.
#[derive(Debug, Default)]
pub(crate) struct RedisClock {
    reading: Mutex<Option<Reading>>,
}

#[derive(Debug, Clone, Copy)]
struct Reading {
    /// Redis's time, in milliseconds since the Unix epoch...
    millis: u64,
    /// ...at this instant here (the middle of the round trip that read it).
    at: Instant,
}

impl RedisClock {
    /// Redis's time now, in milliseconds since the Unix epoch; `None` before the first reading.
    pub(crate) fn now(&self) -> Option<u64> {
        let reading = (*self.lock())?;
        Some(reading.millis + reading.at.elapsed().as_millis() as u64)
    }

    /// Whether the clock has not been read for [`READ_EVERY`] (or ever).
    pub(crate) fn is_stale(&self) -> bool {
        self.lock()
            .is_none_or(|reading| reading.at.elapsed() >= READ_EVERY)
    }

    /// Reads Redis's time on `connection`; returns it.
    pub(crate) async fn read(&self, connection: &mut MultiplexedConnection) -> RedisResult<u64> {
        let asked = Instant::now();
        let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(connection).await?;
        let at = asked + asked.elapsed() / 2;
        let millis = seconds * 1000 + micros / 1000;
        *self.lock() = Some(Reading { millis, at });
        Ok(millis)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Reading>> {
        self.reading.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
