//! One lazily (re)connected Redis connection, shared by everything that talks to Redis.
//!
//! Redis is a help, never a requirement: when it is down, callers get an error at once (no
//! waiting on a dead server for every request) and fall back to what they can do locally. A
//! failed attempt blocks new ones for a backoff that grows to a few seconds, so an outage costs
//! one connection attempt per backoff period, not one per request.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use redis::{AsyncConnectionConfig, Client, RedisError, RedisResult, aio::MultiplexedConnection};

/// The first wait after a failure; each further failure doubles it, up to [`MAX_BACKOFF`].
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Long enough not to hammer a dead Redis, short enough to notice it back within seconds.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The wait after one more failure.
pub(crate) fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}
/// Loopback or a LAN answers in well under this; beyond it, treat Redis as unavailable.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(1);

/// A Redis client plus the connection it is currently using, if any.
#[derive(Debug)]
pub struct RedisConn {
    client: Client,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    connection: Option<MultiplexedConnection>,
    retry_at: Instant,
    backoff: Duration,
    /// Whether the last attempt failed: outages and recoveries are logged once each.
    failing: bool,
}

impl RedisConn {
    /// A handle for `client`; nothing is connected until first use.
    pub fn new(client: Client) -> Self {
        RedisConn {
            client,
            state: Mutex::new(State {
                connection: None,
                retry_at: Instant::now(),
                backoff: FIRST_BACKOFF,
                failing: false,
            }),
        }
    }

    /// The underlying client (the pub/sub subscriber opens its own connection with it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The current connection, connecting first if needed. Fails fast during a backoff.
    pub async fn get(&self) -> RedisResult<MultiplexedConnection> {
        {
            let state = self.lock();
            if let Some(connection) = &state.connection {
                return Ok(connection.clone());
            }
            if Instant::now() < state.retry_at {
                return Err(unavailable());
            }
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(connection) => {
                let mut state = self.lock();
                if state.failing {
                    tracing::info!("redis is back");
                }
                state.failing = false;
                state.backoff = FIRST_BACKOFF;
                state.connection = Some(connection.clone());
                Ok(connection)
            }
            Err(error) => {
                self.failed(&error);
                Err(error)
            }
        }
    }

    /// Reports that Redis answers again (the subscriber reconnected): stop backing off, so the
    /// next command connects at once — on a new connection, since a subscription that had to
    /// reconnect means the command connection most likely went down with it (a restarted
    /// Redis), and finding that out costs a failed command.
    pub fn answering(&self) {
        let mut state = self.lock();
        state.connection = None;
        state.retry_at = Instant::now();
        state.backoff = FIRST_BACKOFF;
    }

    /// Reports that a command on the current connection failed: drop it and back off.
    pub fn failed(&self, error: &RedisError) {
        let mut state = self.lock();
        state.connection = None;
        state.retry_at = Instant::now() + state.backoff;
        if !state.failing {
            match super::rediss::diagnosis(error) {
                Some(diagnosis) => {
                    tracing::error!(%error, "{diagnosis}: working locally, retrying");
                }
                None => {
                    tracing::warn!(%error, "redis unavailable: working locally until it is back")
                }
            }
        }
        state.failing = true;
        state.backoff = next_backoff(state.backoff);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn unavailable() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "redis unavailable (backing off)",
    ))
}
