//! Redis over TLS (`rediss://`), as managed Redis and Valkey services require, and what to say
//! when connecting fails for a reason the operator must fix.
//!
//! The redis crate does the TLS (rustls, through its `tokio-rustls-comp` feature): it checks
//! the server's certificate against the system's roots, or only against `REDIS_CA` when that is
//! set, and the host name in `REDIS_URL`. There is no switch to skip the check: a relay that
//! trusts any certificate hands the signing of every tab's updates to whoever sits between.

use std::{error::Error as _, path::Path};

use redis::{Client, ErrorKind, RedisError, RedisResult, TlsCertificates};
use rustls::pki_types::{CertificateDer, pem::PemObject};

/// The client for `url`: over TLS when it is a `rediss://` URL, trusting `ca` (PEM) instead
/// of the system's roots when given.
pub fn client(url: &str, ca: Option<&Path>) -> RedisResult<Client> {
    // The redis crate builds its rustls configuration on the process's default provider. Make
    // that *ring*, the provider the HTTPS server uses, unless the app chose one already;
    // otherwise a build in which another crate turns on aws-lc-rs as well has no default,
    // and the first TLS connection panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(ca) = ca else {
        return Client::open(url);
    };
    let root_cert = read_ca(ca).map_err(|reason| {
        RedisError::from((
            ErrorKind::InvalidClientConfig,
            "cannot use REDIS_CA",
            reason,
        ))
    })?;
    Client::build_with_tls(
        url,
        TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        },
    )
}

/// The PEM file at `path`, if it holds at least one certificate and nothing malformed: the
/// reason otherwise, for the message that names `REDIS_CA`.
pub fn read_ca(path: &Path) -> Result<Vec<u8>, String> {
    // Bounded like every file the kit reads (see `files.rs`): a pipe or a huge file named by
    // mistake is refused at start instead of hanging it.
    let pem =
        crate::files::read_blocking(path, crate::files::PEM_LIMIT, crate::files::READ_TIMEOUT)
            .map_err(|error| format!("cannot read it: {error}"))?;
    // Taken as trust anchors now, as the redis crate will take them, so that what it would
    // refuse at every connection attempt is refused at start instead.
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate =
            certificate.map_err(|error| format!("is not a PEM file of certificates: {error}"))?;
        roots
            .add(certificate)
            .map_err(|error| format!("holds a certificate that cannot be a CA: {error}"))?;
    }
    if roots.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    Ok(pem)
}

/// What the operator must change, when `error` says it: a refused password or an untrusted
/// certificate gets retried like an outage, but no retry will ever fix it, so the log says
/// which it is and which setting to look at.
pub fn diagnosis(error: &RedisError) -> Option<&'static str> {
    if error.kind() == ErrorKind::AuthenticationFailed {
        return Some(
            "Redis refused the user or password in REDIS_URL (rediss://user:password@host:port)",
        );
    }
    if error.code() == Some("NOAUTH") {
        return Some(
            "Redis asks for a password, and REDIS_URL has none (rediss://user:password@host:port)",
        );
    }
    if error.code() == Some("NOPERM") {
        return Some(
            "the Redis user in REDIS_URL may not run what the relay needs (its ACL): PUBLISH, \
             SUBSCRIBE, GET, SET, INCR, EVALSHA, TIME on the REDIS_PREFIX keys and channel",
        );
    }
    let tls = tls_error(error)?;
    Some(match tls {
        rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
        | rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
            ..
        }) => "Redis's TLS certificate is not for the host in REDIS_URL",
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. },
        ) => "Redis's TLS certificate has expired",
        rustls::Error::InvalidCertificate(_) => {
            "Redis's TLS certificate is not trusted: set REDIS_CA to the PEM file of the CA \
             that signed it"
        }
        _ => "the TLS handshake with Redis failed",
    })
}

/// The rustls error somewhere in `error`'s chain of causes. The redis crate keeps an I/O
/// error behind an `Arc`, and an I/O error keeps rustls's as its payload (`get_ref`), which
/// `source` skips: the walk looks through both.
fn tls_error(error: &RedisError) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(current) = cause {
        let current: &(dyn std::error::Error + 'static) = match current.downcast_ref::<Shared>() {
            Some(shared) => shared.as_ref(),
            None => current,
        };
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
            cause = inner.source();
            continue;
        }
        cause = current.source();
    }
    None
}

/// How the redis crate holds the error under one of its own.
type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untrusted_certificate_inside_an_io_error_is_named() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let said = diagnosis(&RedisError::from(io)).unwrap();
        assert!(said.contains("not trusted: set REDIS_CA"), "{said}");
    }

    #[test]
    fn a_certificate_for_another_name_or_out_of_date_is_named_as_such() {
        for (error, said) in [
            (
                rustls::CertificateError::NotValidForName,
                "not for the host",
            ),
            (rustls::CertificateError::Expired, "has expired"),
        ] {
            let io = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(error),
            );
            let diagnosis = diagnosis(&RedisError::from(io)).unwrap();
            assert!(diagnosis.contains(said), "{diagnosis}");
        }
    }

    #[test]
    fn a_refused_password_is_named_and_an_outage_is_not_diagnosed() {
        let refused = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert!(
            diagnosis(&refused)
                .unwrap()
                .contains("refused the user or password")
        );
        let down = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(diagnosis(&down), None);
    }
}
