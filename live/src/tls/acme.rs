//! Certificates the binary gets and renews by itself through ACME (Let's Encrypt), with no
//! proxy and no certbot (feature `acme`): `ACME_DOMAINS` and `ACME_CONTACT`.
//!
//! Built on `rustls-acme`, which is made for exactly this: its resolver presents the current
//! certificate, answers the TLS-ALPN-01 challenge on the HTTPS port itself (no port 80 needed),
//! and its state machine orders, caches (`ACME_CACHE_DIR`: account and certificate, so a
//! restart asks nothing and cannot hit rate limits) and renews at two thirds of a certificate's
//! life, retrying with backoff (1 s doubling to 18 h). (`instant-acme` speaks the protocol too,
//! but would leave the challenge, the cache and the renewal to us.)
//!
//! Without the network the server starts all the same: with the cached certificate if it has
//! one, and otherwise — until it gets one — it serves the app over plain HTTP on the redirect
//! port (`HTTP_REDIRECT_PORT`) instead of redirecting to an HTTPS that cannot answer yet. The log
//! says which.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use futures_util::StreamExt;
use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer, pki_types::pem::PemObject};
use rustls_acme::{AcmeConfig, EventOk, ResolvesServerCertAcme, caches::DirCache};

use super::TlsError;
use crate::settings::AcmeSettings;

/// The ALPN name of the TLS-ALPN-01 challenge: a handshake that asks for it is the ACME
/// server's validation, never a client of the app.
pub const CHALLENGE_ALPN: &[u8] = b"acme-tls/1";

/// Whether a certificate has been deployed (from the cache or a new order).
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Whether HTTPS can answer.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Readiness").field(&self.is_ready()).finish()
    }
}

/// What serving with ACME needs: the resolver for the TLS configuration, whether it has a
/// certificate yet, and the task that gets and renews it (to be run for as long as the server
/// serves).
pub(super) struct Started {
    pub(super) resolver: Arc<ResolvesServerCertAcme>,
    pub(super) readiness: Readiness,
    pub(super) driver: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Sets up ACME for `settings`: reads the directory's CA if one is given, and prepares the
/// ordering and renewing task.
pub(super) fn start(settings: &AcmeSettings) -> Result<Started, TlsError> {
    let contact = match settings.contact.starts_with("mailto:") {
        true => settings.contact.clone(),
        false => format!("mailto:{}", settings.contact),
    };
    let config = match &settings.directory_ca {
        // Testing, or a private CA: the directory's certificate is checked against this CA.
        Some(path) => {
            let roots = directory_roots(path)?;
            let client = ClientConfig::builder_with_provider(super::provider())
                .with_safe_default_protocol_versions()
                .map_err(TlsError::Config)?
                .with_root_certificates(roots)
                .with_no_client_auth();
            AcmeConfig::new_with_client_config(&settings.domains, Arc::new(client))
        }
        // The public roots (Mozilla's, as webpki-roots ships them).
        None => AcmeConfig::new_with_provider(&settings.domains, super::provider()),
    };
    let mut state = config
        .contact_push(contact)
        .directory(&settings.directory)
        .cache(DirCache::new(settings.cache_dir.clone()))
        .state();
    let resolver = state.resolver();
    let readiness = Readiness::default();
    let domains = settings.domains.join(",");
    let ready = readiness.clone();
    let driver = Box::pin(async move {
        tracing::info!(
            domains,
            "ACME: looking for a cached certificate, or ordering one"
        );
        while let Some(event) = state.next().await {
            match event {
                Ok(EventOk::DeployedCachedCert) => {
                    ready.set();
                    tracing::info!(domains, "ACME: serving the cached certificate");
                }
                Ok(EventOk::DeployedNewCert) => {
                    ready.set();
                    tracing::info!(domains, "ACME: serving a new certificate");
                }
                Ok(EventOk::CertCacheStore | EventOk::AccountCacheStore) => {
                    tracing::debug!("ACME: cached");
                }
                Err(error) => tracing::warn!(
                    domains,
                    https = ready.is_ready(),
                    "ACME: {error}; trying again later (backing off up to 18 h)"
                ),
            }
        }
    });
    Ok(Started {
        resolver,
        readiness,
        driver,
    })
}

/// The certificates in the PEM file `ACME_DIRECTORY_CA` names.
fn directory_roots(path: &std::path::Path) -> Result<RootCertStore, TlsError> {
    let content = |reason: String| TlsError::Content {
        setting: "ACME_DIRECTORY_CA",
        path: path.to_owned(),
        reason,
    };
    // At start, bounded like every file the kit reads (see `files.rs`).
    let pem =
        crate::files::read_blocking(path, crate::files::PEM_LIMIT, crate::files::READ_TIMEOUT)
            .map_err(|source| TlsError::Read {
                setting: "ACME_DIRECTORY_CA",
                path: path.to_owned(),
                source,
            })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| content(format!("not PEM: {error}")))?;
    if certificates.is_empty() {
        return Err(content("no certificate in it (expected PEM)".into()));
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|error| content(error.to_string()))?;
    }
    Ok(roots)
}
