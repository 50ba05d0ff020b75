//! A certificate chain and its private key, read from PEM files and checked against each other,
//! and the resolver that hands every handshake the pair in use.
//!
//! Why a resolver rather than a fixed pair in the `ServerConfig`: a renewal (certbot, any ACME
//! client) writes new files and signals the process. Swapping the pair inside the resolver
//! changes what *new* handshakes get, while every open connection — and every stream on it —
//! carries on with the session it has. No restart, no dropped tab.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
};

use crate::files::{PEM_LIMIT, READ_TIMEOUT};

use rustls::{
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

/// Why a certificate and key cannot be used. Each names the setting and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of the two settings is set.
    #[error("invalid {given}: set {missing} too (HTTPS needs both the certificate and its key)")]
    Half {
        /// The setting that is set.
        given: &'static str,
        /// The one that is not.
        missing: &'static str,
    },
    /// A file cannot be read.
    #[error("invalid {setting}={path:?}: cannot read it: {source}")]
    Read {
        /// `TLS_CERT` or `TLS_KEY`.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file holds nothing usable of what it should.
    #[error("invalid {setting}={path:?}: {reason}")]
    Content {
        /// `TLS_CERT` or `TLS_KEY`.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error(
        "invalid TLS_KEY={key:?}: it is not the key of the certificate in TLS_CERT={cert:?} \
         ({reason})"
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls found.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("cannot configure TLS: {0}")]
    Config(rustls::Error),
}

/// The certificate chain and key the server presents, re-readable from their files.
pub struct CertificatePair {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    /// A std lock: every handshake takes the read side for one `Arc` clone; a reload holds the
    /// write side for one pointer swap, never while reading files.
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertificatePair {
    /// Reads and checks the pair (the chain must parse, the key must be the certificate's), at
    /// start: blocks the calling thread for at most 5 s per file.
    pub fn load(
        cert_path: PathBuf,
        key_path: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let read = |setting, path: &Path| {
            crate::files::read_blocking(path, PEM_LIMIT, READ_TIMEOUT)
                .map_err(read_error(setting, path))
        };
        let (cert_pem, key_pem) = (read("TLS_CERT", &cert_path)?, read("TLS_KEY", &key_path)?);
        let current = read_pair(&cert_path, &cert_pem, &key_path, &key_pem, &provider)?;
        Ok(CertificatePair {
            cert_path,
            key_path,
            provider,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads the files again; on success new handshakes present the new pair, on failure
    /// nothing changes.
    ///
    /// The files are read off the runtime, each refused if it is not a regular file of at most
    /// 1 MiB or takes longer than 5 s (see `files.rs`): a key replaced by a named
    /// pipe or a huge file is refused with a reason, and never holds up a request or the
    /// shutdown.
    pub async fn reload(&self) -> Result<(), TlsError> {
        let cert_pem = crate::files::read(&self.cert_path, PEM_LIMIT, READ_TIMEOUT)
            .await
            .map_err(read_error("TLS_CERT", &self.cert_path))?;
        let key_pem = crate::files::read(&self.key_path, PEM_LIMIT, READ_TIMEOUT)
            .await
            .map_err(read_error("TLS_KEY", &self.key_path))?;
        let fresh = read_pair(
            &self.cert_path,
            &cert_pem,
            &self.key_path,
            &key_pem,
            &self.provider,
        )?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
        Ok(())
    }

    /// The end-entity certificate presented now (DER).
    pub fn certificate(&self) -> CertificateDer<'static> {
        let current = self.current();
        current.cert[0].clone()
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ResolvesServerCert for CertificatePair {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl fmt::Debug for CertificatePair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificatePair")
            .field("cert", &self.cert_path)
            .field("key", &self.key_path)
            .finish_non_exhaustive()
    }
}

/// How a file that cannot be read is reported: naming the setting and the file.
fn read_error(setting: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TlsError {
    let path = path.to_owned();
    move |source| TlsError::Read {
        setting,
        path,
        source,
    }
}

/// Parses the chain read from `cert_path` (end-entity certificate first, as ACME clients write
/// `fullchain.pem`) and the private key read from `key_path` (PKCS#8, PKCS#1 or SEC1), and
/// checks that the key is the certificate's.
pub(super) fn read_pair(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let content = |setting, path: &Path, reason: String| TlsError::Content {
        setting,
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| content("TLS_CERT", cert_path, format!("not PEM: {error}")))?;
    if chain.is_empty() {
        return Err(content(
            "TLS_CERT",
            cert_path,
            "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| {
        content(
            "TLS_KEY",
            key_path,
            format!("no private key in it (expected PEM: -----BEGIN PRIVATE KEY-----): {error}"),
        )
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| content("TLS_KEY", key_path, format!("unusable key: {error}")))?;
    let pair = CertifiedKey::new(chain, signing);
    match pair.keys_match() {
        Ok(()) => Ok(pair),
        // The key type cannot say its public key: nothing to compare, as rustls itself allows.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(pair),
        Err(error) => Err(TlsError::Mismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            reason: error.to_string(),
        }),
    }
}
