//! Before serving: settings that can be used (the certificate read and checked, or ACME set up),
//! the open-files limit raised, and the sockets of our own bound.

use std::{io, net::SocketAddr};

use tokio::net::{TcpListener, TcpSocket};

use crate::{settings::Settings, tls::Tls};

/// What serving needs before it has a socket.
pub(super) struct Prepared {
    /// The certificate and key, with HTTPS (never, in a build without the feature `tls`).
    pub(super) tls: Option<Tls>,
    /// With ACME: the task that gets and renews the certificate (never, without the feature
    /// `acme`).
    pub(super) acme: Option<AcmeDriver>,
}

/// A task the server runs for as long as it serves.
pub(super) struct AcmeDriver(
    pub(super) std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
);

impl std::fmt::Debug for AcmeDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AcmeDriver")
    }
}

/// Prepares to serve: settings that can be used (the certificate and key read and checked, with
/// HTTPS), and as many open files as the system allows.
pub(super) fn prepare(settings: &Settings) -> io::Result<Prepared> {
    let invalid = |error: String| io::Error::new(io::ErrorKind::InvalidInput, error);
    settings
        .validate()
        .map_err(|error| invalid(error.to_string()))?;
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => {
            Some(Tls::load(cert.clone(), key.clone()).map_err(|error| invalid(error.to_string()))?)
        }
        _ => None,
    };
    #[allow(unused_mut)]
    let mut prepared = Prepared { tls, acme: None };
    // (Settings refuse ACME_DOMAINS in a build without the feature `acme`.)
    #[cfg(feature = "acme")]
    if let Some(acme) = &settings.acme {
        let (tls, driver) = Tls::acme(acme).map_err(|error| invalid(error.to_string()))?;
        prepared.tls = Some(tls);
        prepared.acme = Some(AcmeDriver(Box::pin(driver)));
    }
    raise_open_files_limit();
    Ok(prepared)
}

/// A socket of our own on `HOST:port`.
pub(super) fn bind(settings: &Settings, port: u16) -> io::Result<TcpListener> {
    // `TcpListener::bind` would use a small fixed backlog; a reconnect storm after a deploy
    // then waits seconds on SYN retries.
    listen(
        SocketAddr::new(settings.host, port),
        settings.listen_backlog,
    )
}

/// Binds `METRICS_ADDR`, if it is set, the way [`bind`] binds the public port (with the
/// backlog a scraper needs).
pub(super) fn bind_metrics(settings: &Settings) -> io::Result<Option<TcpListener>> {
    let Some(addr) = settings.metrics_addr else {
        return Ok(None);
    };
    listen(addr, 64).map(Some).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot listen on METRICS_ADDR {addr}: {error}"),
        )
    })
}

/// Listens on `addr` with `backlog`.
fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Restarting must not wait for the old process's sockets to leave TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Raises the open-files limit to the hard limit the system allows.
pub fn raise_open_files_limit() {
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open files limit"),
    }
}
