//! How many connections the server holds at once, and what it answers beyond that.
//!
//! Every connection costs a file descriptor. Run into the open-files limit and `accept` fails
//! for everyone — health probes included — until something closes. So the server caps its
//! connections below the limit, keeping [`HEADROOM`] descriptors for everything else (files,
//! Redis, logs, and the refusals themselves), and answers a connection beyond the cap with a
//! short `503` at once instead of leaving it to wait.

use std::{
    io,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Semaphore,
};

use crate::settings::Settings;

/// Descriptors kept back from the open-files limit for everything but client connections.
pub const HEADROOM: u64 = 512;

/// Refusals being answered at once; beyond this, a connection is simply closed.
const REFUSALS_AT_ONCE: usize = 128;

/// What a connection beyond the cap is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 5\r\n\
connection: close\r\n\
content-length: 67\r\n\
\r\n\
The server is at its connection limit; try again in a few seconds.\n";

/// The most connections to hold at once: `MAX_CONNECTIONS`, or what the open-files limit
/// allows less [`HEADROOM`]. An explicit setting above what the limit allows is refused.
pub fn connection_cap(config: &Settings) -> io::Result<usize> {
    let allowed = open_files_limit().map(|limit| limit.saturating_sub(HEADROOM.min(limit / 4)));
    match (config.max_connections, allowed) {
        (Some(wanted), Some(allowed)) if wanted as u64 > allowed => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "invalid MAX_CONNECTIONS={wanted}: the open-files limit allows {allowed} \
                 (raise `ulimit -n`, or LimitNOFILE= in a systemd unit)"
            ),
        )),
        (Some(wanted), _) => Ok(wanted),
        (None, Some(allowed)) => Ok(usize::try_from(allowed).unwrap_or(usize::MAX).max(1)),
        (None, None) => Ok(10_000),
    }
}

fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Answers connections beyond the cap.
#[derive(Debug, Clone)]
pub(super) struct Refusals {
    at_once: Arc<Semaphore>,
    refused: Arc<AtomicU64>,
    /// When a refusal was last logged: one line per few seconds, not one per connection.
    logged: Arc<Mutex<Option<Instant>>>,
}

impl Refusals {
    pub(super) fn new() -> Self {
        Refusals {
            at_once: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
            refused: Arc::default(),
            logged: Arc::default(),
        }
    }

    /// Tells `tcp` the server is busy and closes it.
    pub(super) fn refuse(&self, mut tcp: TcpStream, cap: usize) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
            if logged.is_none_or(|at| at.elapsed() > Duration::from_secs(5)) {
                *logged = Some(Instant::now());
                tracing::warn!(cap, refused, "at the connection cap: refusing connections");
            }
        }
        let Ok(permit) = Arc::clone(&self.at_once).try_acquire_owned() else {
            return; // dropped: closed at once
        };
        tokio::spawn(async move {
            let _permit = permit;
            // Small enough for an empty send buffer: written at once or not at all.
            if tcp.try_write(BUSY).is_err() {
                return;
            }
            let _ = tcp.shutdown().await;
            // Read what the client sent until it closes (briefly): closing with unread data
            // would reset the connection, and the client might lose the answer.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                let mut buffer = [0; 1024];
                while matches!(tcp.read(&mut buffer).await, Ok(n) if n > 0) {}
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answer_is_well_formed() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{text}"
        );
    }

    #[test]
    fn an_explicit_cap_above_the_open_files_limit_is_refused() {
        let Some(limit) = open_files_limit() else {
            return;
        };
        let config = Settings {
            max_connections: Some(usize::try_from(limit).unwrap()),
            ..Settings::default()
        };
        let error = connection_cap(&config).unwrap_err().to_string();
        assert!(error.starts_with("invalid MAX_CONNECTIONS="), "{error}");
        let default = connection_cap(&Settings::default()).unwrap() as u64;
        assert!(default < limit, "headroom is kept: {default} of {limit}");
    }
}
