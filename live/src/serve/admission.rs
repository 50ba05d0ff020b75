//! Who gets a connection: one place in its client's network (`MAX_CONNECTIONS_PER_CLIENT`),
//! then one permit under the server's cap (below the open-files limit). Beyond either, a short
//! answer ([`Refusals`]) instead of a connection, and the peak is noted for the memory trim.

use std::{io, net::SocketAddr, sync::Arc};

use tokio::{
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore},
};

use super::{
    limits::{ClientSlot, PerClient, Refusal, Refusals, connection_cap},
    trim,
};
use crate::settings::Settings;

pub(super) struct Admission {
    cap: usize,
    permits: Arc<Semaphore>,
    per_client: Option<PerClient>,
    peak: Arc<trim::Peak>,
    refusals: Refusals,
}

/// A connection's places, given back when it is dropped (with the connection's task).
pub(super) struct Admitted {
    _permit: OwnedSemaphorePermit,
    _slot: Option<ClientSlot>,
}

impl Admission {
    pub(super) fn new(settings: &Settings) -> io::Result<Self> {
        let cap = connection_cap(settings)?;
        if settings.max_streams > cap {
            tracing::warn!(
                max_streams = settings.max_streams,
                max_connections = cap,
                "MAX_STREAMS is above the connection cap: the cap wins"
            );
        }
        Ok(Admission {
            cap,
            permits: Arc::new(Semaphore::new(cap)),
            per_client: PerClient::new(settings),
            peak: Arc::new(trim::Peak::default()),
            refusals: Refusals::new(),
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
