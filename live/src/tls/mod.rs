//! HTTPS: the certificate the server presents, from PEM files it re-reads on `SIGHUP`.
//!
//! Why the binary speaks TLS itself: over plain HTTP/1.1 a browser keeps at most six connections
//! per origin, and every open tab of a live page holds one for its stream, so the seventh tab —
//! and every post from that browser — waits forever. Browsers speak HTTP/2 only over TLS, where
//! all of a browser's tabs share one connection. So with `TLS_CERT` and `TLS_KEY` set the server
//! offers HTTP/2 and HTTP/1.1 through ALPN (`serve/` picks the protocol per connection).
//!
//! - `certs.rs`: reading and checking a certificate and key pair, and the resolver every
//!   handshake asks for the pair in use.
//! - `acme.rs` (feature `acme`): a certificate the binary gets and renews itself.
//!
//! The crypto provider is *ring*: it builds in about half the time of aws-lc-rs (the rustls
//! default) and adds less to the binary. Both are well-reviewed, constant-time implementations
//! of the same TLS 1.3 and 1.2 suites; what ring lacks is the hybrid post-quantum key exchange
//! (X25519MLKEM768) that aws-lc-rs offers, so a session recorded today is protected by X25519
//! alone.

#[cfg(feature = "acme")]
pub mod acme;
mod certs;

use std::{path::PathBuf, sync::Arc};

use rustls::{ServerConfig, crypto::CryptoProvider};

use tokio_rustls::TlsAcceptor;

pub use self::certs::{CertificatePair, TlsError};

/// The ALPN name of HTTP/2.
pub const H2: &[u8] = b"h2";
/// The ALPN name of HTTP/1.1.
pub const HTTP11: &[u8] = b"http/1.1";

/// The crypto every TLS part of the kit uses (see the [module docs](self)).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What the server needs to speak TLS: the acceptor, and where its certificate comes from.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    /// `TLS_CERT` and `TLS_KEY`, which `SIGHUP` replaces for the connections that come after.
    Files(Arc<CertificatePair>),
    /// ACME (`ACME_DOMAINS`): got and renewed by the server itself.
    #[cfg(feature = "acme")]
    Acme(acme::Readiness),
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A TLS configuration offering HTTP/2 and HTTP/1.1 (and `more` ALPN names), with the
/// certificate `resolver` picks.
fn config(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
    more: &[&[u8]],
) -> Result<TlsAcceptor, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    // HTTP/2 first: every tab of a browser then shares one connection.
    config.alpn_protocols = vec![H2.to_vec(), HTTP11.to_vec()];
    config
        .alpn_protocols
        .extend(more.iter().map(|name| name.to_vec()));
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Tls {
    /// Reads the certificate chain at `cert` and the private key at `key` (PEM), and checks
    /// that they belong together. Errors name the setting (`TLS_CERT` or `TLS_KEY`) and say
    /// what is wrong.
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Self, TlsError> {
        let pair = Arc::new(CertificatePair::load(cert, key, provider())?);
        Ok(Tls {
            acceptor: config(Arc::clone(&pair) as _, &[])?,
            source: Source::Files(pair),
        })
    }

    /// Certificates from ACME for `settings` (feature `acme`). The returned future gets and
    /// renews them: run it for as long as the server serves.
    #[cfg(feature = "acme")]
    pub fn acme(
        settings: &crate::settings::AcmeSettings,
    ) -> Result<(Self, impl std::future::Future<Output = ()> + Send + 'static), TlsError> {
        let started = acme::start(settings)?;
        let tls = Tls {
            acceptor: config(started.resolver, &[acme::CHALLENGE_ALPN])?,
            source: Source::Acme(started.readiness),
        };
        Ok((tls, started.driver))
    }

    /// Takes each new connection through its handshake.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the files again (a renewed certificate): new connections get the new pair, open
    /// ones keep theirs. A pair that cannot be read or does not match is refused, and the one in
    /// use stays. (ACME renews by itself: nothing to do then.) The files are read off the
    /// runtime with a size and a time bound ([`CertificatePair::reload`]).
    pub async fn reload(&self) -> Result<(), TlsError> {
        match &self.source {
            Source::Files(pair) => pair.reload().await,
            #[cfg(feature = "acme")]
            Source::Acme(_) => Ok(()),
        }
    }

    /// The pair in use, when it comes from files.
    pub fn pair(&self) -> Option<&CertificatePair> {
        match &self.source {
            Source::Files(pair) => Some(pair),
            #[cfg(feature = "acme")]
            Source::Acme(_) => None,
        }
    }

    /// Whether there is a certificate to present: always with files; with ACME, once the
    /// first one is deployed (cached or new).
    pub fn is_ready(&self) -> bool {
        match &self.source {
            Source::Files(_) => true,
            #[cfg(feature = "acme")]
            Source::Acme(readiness) => readiness.is_ready(),
        }
    }
}

/// Re-reads the certificate and key on every `SIGHUP` (what a renewal hook sends: `systemctl
/// reload`, certbot's `--deploy-hook`), for as long as the returned future runs. Installed when
/// called, so that a signal right after start is not lost.
#[cfg(unix)]
pub fn reload_on_hangup(
    tls: Tls,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(async move {
        while hangups.recv().await.is_some() {
            let Some(pair) = tls.pair() else {
                tracing::info!("SIGHUP: certificates come from ACME and renew by themselves");
                continue;
            };
            match tls.reload().await {
                Ok(()) => tracing::info!(
                    cert = %pair.cert_path().display(),
                    "SIGHUP: certificate and key reloaded; new connections get them"
                ),
                Err(error) => tracing::error!(
                    "SIGHUP: certificate and key NOT reloaded, the previous pair stays in use: \
                     {error}"
                ),
            }
        }
    })
}
