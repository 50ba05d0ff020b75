//! What the relay's tasks (`relay.rs`) and the sharing of presence counts (`presence.rs`)
//! hold of the link to Redis: the connection, the prefix, the signer, Redis's clock, and the
//! count of what was not trusted. Apart from both, so that neither needs the other.

use std::{
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use uuid::Uuid;

use super::{admission::Admission, clock::RedisClock, conn::RedisConn, store::Store, wire::Signer};

/// At most one line about refused messages per this long: a flood of forged messages is a line
/// per burst, with the count, not a line per message.
const LOG_REFUSALS_EVERY: Duration = Duration::from_secs(5);

/// What the relay's tasks share with it, apart from the bookkeeping: holding it never keeps
/// the relay alive.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) instance: Uuid,
    pub(super) prefix: String,
    pub(super) channel: String,
    pub(super) redis: Arc<RedisConn>,
    /// Signs what this instance publishes, and checks what it receives.
    pub(super) signer: Signer,
    /// Redis's time, which every message is dated by.
    pub(super) clock: RedisClock,
    /// Which signed messages are delivered here.
    pub(super) admission: Admission,
    /// The newest version of each topic, and the counter, in Redis.
    pub(super) store: Store,
    /// When this instance started numbering its broadcasts (Redis's clock, at the first one).
    pub(super) epoch: OnceLock<u64>,
    /// Messages refused and entries put right so far.
    pub(super) rejected: AtomicU64,
    /// For metrics: broadcasts published, messages admitted, subscriptions made, and the age
    /// of the last message admitted (ms, by Redis's clock; `u64::MAX` before the first).
    pub(super) published: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) connects: AtomicU64,
    pub(super) lag_ms: AtomicU64,
    /// When a refusal was last logged.
    pub(super) rejection_logged: Mutex<Option<Instant>>,
}

impl Link {
    /// Counts a refused message (or an entry put right), and logs it — at most one line per
    /// [`LOG_REFUSALS_EVERY`], with the count so far.
    pub(super) fn refused(&self, reason: &str) {
        let rejected = self.rejected.fetch_add(1, Ordering::Relaxed) + 1;
        let mut logged = self
            .rejection_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if logged.is_none_or(|at| at.elapsed() > LOG_REFUSALS_EVERY) {
            *logged = Some(Instant::now());
            tracing::warn!(rejected, %reason, "from redis, not trusted: skipped");
        }
    }

    /// Reads Redis's clock on the command connection.
    pub(super) async fn read_clock(&self) -> redis::RedisResult<u64> {
        let mut connection = self.redis.get().await?;
        self.clock
            .read(&mut connection)
            .await
            .inspect_err(|error| self.redis.failed(error))
    }
}
