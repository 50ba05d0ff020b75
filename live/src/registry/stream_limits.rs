//! How much a registry holds: its caps ([`Limits`]), the default length of a connection's
//! queue of ordinary frames, and what a connection is refused with past a cap
//! ([`ConnectError`]).

/// Ordinary (not latest-state) frames one connection may have queued at once.
///
/// A tab that reads never gets near it: latest-state events are not queued (a stream reads the
/// newest from its topic's slot), and a stream's task writes everything queued each time it
/// runs. Reaching it
/// takes more than a thousand un-coalescable events sent to one tab faster than they can be
/// written; the connection is then cut off (the tab reconnects and gets the current state)
/// instead of holding more memory. Each queued frame costs one shared pointer, so the limit
/// bounds a stream's queue to a few tens of KiB whatever the burst.
pub const DEFAULT_QUEUE_LIMIT: usize = 1024;

/// How much a registry holds. The default: no caps, and [`DEFAULT_QUEUE_LIMIT`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections at once; beyond it a new key is refused (`ConnectError::Full`).
    pub max_connections: usize,
    /// Connections of one client address at once (`ConnectError::ClientFull`).
    pub max_per_client: usize,
    /// How much one client address may add to a presence count, however many streams it holds
    /// (see `presence.rs`).
    pub presence_per_client: usize,
    /// Ordinary frames one connection may have queued (see [`DEFAULT_QUEUE_LIMIT`]).
    pub queue_limit: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: usize::MAX,
            max_per_client: usize::MAX,
            presence_per_client: usize::MAX,
            queue_limit: DEFAULT_QUEUE_LIMIT,
        }
    }
}

/// Why [`Registry::connect`](super::Registry::connect) refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The registry already holds its maximum number of connections.
    #[error("too many open streams (at most {0}); try again later")]
    Full(usize),
    /// The client already holds its maximum number of connections.
    #[error("too many open streams from your address (at most {0}); close some tabs")]
    ClientFull(usize),
    /// The server is shutting down.
    #[error("the server is shutting down; reconnect in a moment")]
    ShuttingDown,
}
