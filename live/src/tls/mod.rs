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
//!
//! The crypto provider is *ring*: it builds in about half the time of aws-lc-rs (the rustls
//! default) and adds less to the binary. Both are well-reviewed, constant-time implementations
//! of the same TLS 1.3 and 1.2 suites; what ring lacks is the hybrid post-quantum key exchange
//! (X25519MLKEM768) that aws-lc-rs offers, so a session recorded today is protected by X25519
//! alone.

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

/// What the server needs to speak TLS: the acceptor, and the pair it presents (which `SIGHUP`
/// replaces, for the connections that come after).
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    pair: Arc<CertificatePair>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("pair", &self.pair)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the certificate chain at `cert` and the private key at `key` (PEM), and checks
    /// that they belong together. Errors name the setting (`TLS_CERT` or `TLS_KEY`) and say
    /// what is wrong.
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Self, TlsError> {
        let provider = provider();
        let pair = Arc::new(CertificatePair::load(cert, key, Arc::clone(&provider))?);
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&pair) as _);
        // HTTP/2 first: every tab of a browser then shares one connection.
        config.alpn_protocols = vec![H2.to_vec(), HTTP11.to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            pair,
        })
    }

    /// Takes each new connection through its handshake.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the files again (a renewed certificate): new connections get the new pair, open
    /// ones keep theirs. A pair that cannot be read or does not match is refused, and the one in
    /// use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.pair.reload()
    }

    /// The pair in use.
    pub fn pair(&self) -> &CertificatePair {
        &self.pair
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
            match tls.reload() {
                Ok(()) => tracing::info!(
                    cert = %tls.pair().cert_path().display(),
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
