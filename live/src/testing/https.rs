//! HTTPS in tests (features `testing` and `tls`): a certificate authority of the test's own,
//! certificates it issues for `127.0.0.1` and `localhost`, written where the server reads them,
//! and clients that trust it — and nothing else, so a test proves the server presents what it
//! was given.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, PublicKeyData};
use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer};

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

impl TestCa {
    /// A fresh authority.
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "live-kit test CA");
        let key = KeyPair::generate().expect("a CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("a CA certificate"),
        }
    }

    /// The authority's certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A new server certificate, with a new key, for `127.0.0.1` and `localhost`.
    pub fn issue(&self) -> TestCertificate {
        self.issue_for(&["127.0.0.1", "localhost"])
    }

    /// A new server certificate, with a new key, for `names` (DNS names or IP addresses): say
    /// `example.org`, for a configuration served as it ships, its name resolved to 127.0.0.1
    /// by the test's clients.
    pub fn issue_for(&self, names: &[&str]) -> TestCertificate {
        let names = names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>();
        self.sign(CertificateParams::new(names).expect("server parameters"))
    }

    /// A server certificate for `names` valid from a second ago for `lifetime` only: one that
    /// a renewal must replace soon.
    pub fn issue_short_lived(
        &self,
        names: &[&str],
        lifetime: std::time::Duration,
    ) -> TestCertificate {
        let names = names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>();
        let mut params = CertificateParams::new(names).expect("server parameters");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::seconds(1);
        params.not_after = now + lifetime;
        self.sign(params)
    }

    /// A server certificate from `params`, with a new key, signed by this authority.
    fn sign(&self, params: CertificateParams) -> TestCertificate {
        let key = KeyPair::generate().expect("a server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a server certificate");
        TestCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            spki: key.subject_public_key_info(),
        }
    }

    /// A rustls client configuration that trusts this authority only, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.issuer.der().clone())
            .expect("the CA certificate is usable");
        let mut config = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|name| name.to_vec()).collect();
        config
    }

    /// A connector for raw TLS connections that trust this authority, offering `alpn`.
    pub fn connector(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(Arc::new(self.client_config(alpn)))
    }

    /// An HTTP client that trusts this authority only, and speaks HTTP/2 or HTTP/1.1 as the
    /// server offers through ALPN.
    pub fn client(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.pem().as_bytes()).expect("the CA as PEM"),
            )
    }
}

/// A server certificate and its key.
#[derive(Clone, Debug)]
pub struct TestCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate, DER: what a client sees in the handshake.
    pub der: CertificateDer<'static>,
    spki: Vec<u8>,
}

impl TestCertificate {
    /// Writes `cert.pem` and `key.pem` into `dir`, replacing what is there; returns their
    /// paths (for `TLS_CERT` and `TLS_KEY`).
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert.pem");
        std::fs::write(&key, &self.key_pem).expect("write key.pem");
        (cert, key)
    }

    /// The public key, as DER SubjectPublicKeyInfo (what Chromium's
    /// `--ignore-certificate-errors-spki-list` names, hashed).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }
}
