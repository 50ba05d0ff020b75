//! How many connections the server holds at once, and what it answers beyond that.
//!
//! Every connection costs a file descriptor. Run into the open-files limit and `accept` fails
//! for everyone — health probes included — until something closes. So the server caps its
//! connections below the limit, keeping [`HEADROOM`] descriptors for everything else (files,
//! Redis, logs, and the refusals themselves), and answers a connection beyond the cap at once
//! instead of leaving it to wait.
//!
//! One client must not take the whole cap either: connections that never send a byte cost
//! nothing to open, and one address holding every slot shuts everyone else out. So each client
//! network ([`ClientNetworks`]) may hold `MAX_CONNECTIONS_PER_CLIENT` ([`PerClient`]), counted
//! from accept — before a TLS handshake or a request, since a connection that never starts
//! either holds its slot all the same.
//!
//! A refused connection over HTTPS is sent a TLS alert, not the plain-text `503`: written into
//! a handshake, that text is a protocol error to the browser, which shows a TLS failure instead
//! of a busy server.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore},
};

use super::trim;
use crate::{client_addr::ClientNetworks, settings::Settings};

/// Who gets a connection: one place in its client's network (`MAX_CONNECTIONS_PER_CLIENT`),
/// then one permit under the server's cap. Beyond either, a short answer
/// ([`RefusedConnections`]) instead of a connection; the peak is noted for the memory trim.
pub(super) struct ConnectionLimits {
    cap: usize,
    permits: Arc<Semaphore>,
    per_client: Option<PerClient>,
    peak: Arc<trim::Peak>,
    refusals: RefusedConnections,
}

/// A connection's places, given back when it is dropped (with the connection's task).
pub(super) struct Admitted {
    _permit: OwnedSemaphorePermit,
    _slot: Option<ClientSlot>,
}

impl ConnectionLimits {
    pub(super) fn new(settings: &Settings) -> io::Result<Self> {
        let cap = connection_cap(settings)?;
        if settings.max_streams > cap {
            tracing::warn!(
                max_streams = settings.max_streams,
                max_connections = cap,
                "MAX_STREAMS is above the connection cap: the cap wins"
            );
        }
        Ok(ConnectionLimits {
            cap,
            permits: Arc::new(Semaphore::new(cap)),
            per_client: PerClient::new(settings),
            peak: Arc::new(trim::Peak::default()),
            refusals: RefusedConnections::new(),
        })
    }

    /// Gives memory back to the system once a flood of connections has gone (run while
    /// serving).
    pub(super) fn trim_after_floods(&self) -> impl Future<Output = ()> + Send + 'static {
        trim::after_floods(Arc::clone(&self.peak), Arc::clone(&self.permits), self.cap)
    }

    /// Admits the connection `tcp` from `peer`, or answers it with a refusal (a TLS alert when
    /// `tls`: the client expects a handshake) and returns `None`.
    pub(super) fn admit(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        tls: bool,
    ) -> Option<(TcpStream, Admitted)> {
        // The client's own place first: a client at its cap is refused without taking a
        // permit that someone else could use.
        let slot = match &self.per_client {
            Some(per_client) => match per_client.admit(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    let cap = per_client.cap();
                    self.refusals
                        .refuse(tcp, peer.ip(), Refusal::ClientFull, cap, tls);
                    return None;
                }
            },
            None => None,
        };
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            self.refusals
                .refuse(tcp, peer.ip(), Refusal::Full, self.cap, tls);
            return None;
        };
        self.peak
            .opened(self.cap - self.permits.available_permits());
        Some((
            tcp,
            Admitted {
                _permit: permit,
                _slot: slot,
            },
        ))
    }
}

/// Descriptors kept back from the open-files limit for everything but client connections.
pub(super) const HEADROOM: u64 = 512;

/// Refused connections being answered at once; beyond this, a connection is simply closed.
const REFUSALS_AT_ONCE: usize = 128;

/// What a connection beyond the cap is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 5\r\n\
connection: close\r\n\
content-length: 67\r\n\
\r\n\
The server is at its connection limit; try again in a few seconds.\n";

/// What a connection from a client already at its own cap is told before it is closed.
const CLIENT_BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 5\r\n\
connection: close\r\n\
content-length: 66\r\n\
\r\n\
Too many connections from your network; close some and try again.\n";

/// A TLS alert record, fatal `internal_error` (RFC 8446, section 6): what a refused HTTPS
/// connection is sent in place of a `ServerHello`. Before the handshake, records are not
/// encrypted, so this needs no session; TLS has no "busy" alert, and `internal_error` is the
/// one for "cannot continue, not the peer's fault". The record says TLS 1.2 (`03 03`), which
/// every TLS 1.2 and 1.3 client accepts in a first record.
const TLS_ALERT: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 80];

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The server holds `MAX_CONNECTIONS`.
    Full,
    /// The client's network holds `MAX_CONNECTIONS_PER_CLIENT`.
    ClientFull,
}

/// The most connections to hold at once: `MAX_CONNECTIONS`, or what the open-files limit
/// allows less [`HEADROOM`]. An explicit setting above what the limit allows is refused.
pub(super) fn connection_cap(config: &Settings) -> io::Result<usize> {
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
pub(super) struct RefusedConnections {
    at_once: Arc<Semaphore>,
    refused: Arc<AtomicU64>,
    /// When a refusal was last logged: one line per few seconds, not one per connection.
    logged: Arc<Mutex<Option<Instant>>>,
}

impl RefusedConnections {
    pub(super) fn new() -> Self {
        RefusedConnections {
            at_once: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
            refused: Arc::default(),
            logged: Arc::default(),
        }
    }

    /// Tells `tcp` (from `peer`) why it is refused and closes it: a `503` over plain HTTP, a
    /// TLS alert when the connection is to start with a TLS handshake (`tls`).
    pub(super) fn refuse(
        &self,
        mut tcp: TcpStream,
        peer: IpAddr,
        why: Refusal,
        cap: usize,
        tls: bool,
    ) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
            if logged.is_none_or(|at| at.elapsed() > Duration::from_secs(5)) {
                *logged = Some(Instant::now());
                match why {
                    Refusal::Full => {
                        tracing::warn!(cap, refused, "at the connection cap: refusing connections");
                    }
                    Refusal::ClientFull => tracing::warn!(
                        cap,
                        refused,
                        %peer,
                        "a client network at its connection cap: refusing its connections"
                    ),
                }
            }
        }
        let Ok(permit) = Arc::clone(&self.at_once).try_acquire_owned() else {
            return; // dropped: closed at once
        };
        let answer = match (tls, why) {
            (true, _) => TLS_ALERT,
            (false, Refusal::Full) => BUSY,
            (false, Refusal::ClientFull) => CLIENT_BUSY,
        };
        tokio::spawn(async move {
            let _permit = permit;
            // Small enough for an empty send buffer: written at once or not at all.
            if tcp.try_write(answer).is_err() {
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

/// Open connections per client network, for `MAX_CONNECTIONS_PER_CLIENT`. Clones share the
/// count.
///
/// A std mutex around a map: the accept loop takes it once per connection and a closing
/// connection once, each for a hash lookup, never across an `.await`.
#[derive(Debug, Clone)]
pub(super) struct PerClient {
    cap: usize,
    networks: ClientNetworks,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerClient {
    /// The per-client cap of `settings`; `None` behind proxies (`CLIENT_IP_HEADER`), where
    /// every connection comes from a proxy and a cap on it would cap everyone at once.
    pub(super) fn new(settings: &Settings) -> Option<Self> {
        if settings.client_ip_header.is_some() {
            return None;
        }
        Some(PerClient {
            cap: settings.max_connections_per_client,
            networks: settings.client_networks,
            open: Arc::default(),
        })
    }

    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// A place for one more connection from `peer`, held until the slot is dropped; `None` if
    /// its network holds the cap already.
    pub(super) fn admit(&self, peer: IpAddr) -> Option<ClientSlot> {
        let network = self.networks.network(peer);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(network).or_default();
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            open: Arc::clone(&self.open),
            network,
        })
    }

    /// How many connections `network` holds (tests).
    #[cfg(test)]
    fn of(&self, network: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&network).copied().unwrap_or(0)
    }
}

/// One connection's place in its network's count, given back when dropped.
#[derive(Debug)]
pub(super) struct ClientSlot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    network: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.network) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.network);
                // A flood from many networks grows the map; it should not keep that size
                // once they are gone.
                let len = open.len();
                if open.capacity() > 1024 && len * 4 < open.capacity() {
                    open.shrink_to(len * 2);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answers_are_well_formed() {
        for answer in [BUSY, CLIENT_BUSY] {
            let text = std::str::from_utf8(answer).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains(&format!("content-length: {}", body.len())),
                "{text}"
            );
        }
    }

    #[test]
    fn each_network_holds_at_most_its_cap_and_gets_its_places_back() {
        let per_client = PerClient::new(&Settings {
            max_connections_per_client: 2,
            ..Settings::default()
        })
        .unwrap();
        let ip = |text: &str| -> IpAddr { text.parse().unwrap() };
        let first = per_client.admit(ip("2001:db8:0:1::1")).unwrap();
        let _second = per_client.admit(ip("2001:db8:0:1::2")).unwrap();
        assert!(
            per_client.admit(ip("2001:db8:0:1:ffff::3")).is_none(),
            "a third address of the same /64"
        );
        assert!(
            per_client.admit(ip("2001:db8:0:2::1")).is_some(),
            "the next /64"
        );
        let _a = per_client.admit(ip("192.0.2.1")).unwrap();
        let _b = per_client.admit(ip("::ffff:192.0.2.1")).unwrap();
        assert!(
            per_client.admit(ip("192.0.2.1")).is_none(),
            "IPv4 either way"
        );
        assert!(
            per_client.admit(ip("192.0.2.2")).is_some(),
            "IPv4: per address"
        );
        drop(first);
        assert_eq!(per_client.of(ip("2001:db8:0:1::")), 1);
        assert!(
            per_client.admit(ip("2001:db8:0:1::9")).is_some(),
            "its place back"
        );
    }

    #[test]
    fn behind_a_proxy_connections_are_not_counted_per_client() {
        let behind = Settings {
            client_ip_header: Some("x-forwarded-for".parse().unwrap()),
            ..Settings::default()
        };
        assert!(PerClient::new(&behind).is_none());
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
