//! Certificates from ACME, got, cached and renewed by the server itself, against a real ACME
//! server on this machine: Debian's `pebble`, with its own HTTPS certificate from a test
//! authority, resolving the site's name to 127.0.0.1 through `pebble-challtestsrv`'s DNS, and
//! validating for real — it connects to the app's HTTPS port and checks the TLS-ALPN-01
//! challenge certificate the app presents.
//!
//! It needs `pebble`, which a machine may lack: it is `#[ignore]`d with that reason, counted as
//! ignored rather than passed by a plain `cargo test`, and runs with
//! `cargo test -p live-kit --all-features --test acme -- --ignored` (`.ci/run` installs pebble
//! and runs it), where a missing `pebble` fails it.

#![cfg(feature = "acme")]

mod support;

use live::testing::free_port;
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use live::{
    settings::AcmeSettings,
    testing::{Process, https::TestCa, require},
};
use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer};
use support::{TestApp, spawn_app_with};

/// The site's name; pebble's DNS answers 127.0.0.1 for every name.
const SITE: &str = "acme.test";

/// Issuing can take a few rounds of the client's backoff (1, 2, 4, 8 s) while pebble starts.
const ISSUING: Duration = Duration::from_secs(60);

/// A running pebble, and its DNS.
struct Pebble {
    /// Its DNS and itself, held only to be stopped with the test when dropped.
    _children: Vec<Process>,
    directory: String,
    management: u16,
}

impl Pebble {
    /// Starts pebble serving its directory over HTTPS on `listen` with a certificate from `ca`,
    /// validating TLS-ALPN-01 on `tls_port`. (The same `listen` across restarts: the directory's
    /// URL is part of what the app's cache files its certificate under.)
    fn start(ca: &TestCa, dir: &Path, listen: u16, tls_port: u16) -> Pebble {
        let (management, dns, dns_management) = (free_port(), free_port(), free_port());
        let (cert, key) = ca.issue().write(dir);
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": cert,
                "privateKey": key,
                "httpPort": free_port(),
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        let config_file = dir.join("pebble.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let dns_server = Process::spawn(
            Command::new("pebble-challtestsrv")
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .args(["-dns01", &format!("127.0.0.1:{dns}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-management", &format!("127.0.0.1:{dns_management}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let pebble = Process::spawn(
            Command::new("pebble")
                .arg("-config")
                .arg(&config_file)
                .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .env("PEBBLE_AUTHZREUSE", "0")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
            assert!(Instant::now() < deadline, "pebble did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Pebble {
            _children: vec![dns_server, pebble],
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management,
        }
    }

    /// The root pebble made when it started: what its certificates chain to.
    async fn root(&self, ca: &TestCa) -> CertificateDer<'static> {
        let client = ca.client().build().unwrap();
        let pem = client
            .get(format!("https://127.0.0.1:{}/roots/0", self.management))
            .send()
            .await
            .expect("pebble's management interface")
            .text()
            .await
            .unwrap();
        rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).expect("a root")
    }
}

/// The certificate a new connection to `addr`, asking for the site, is presented — if it
/// chains to `root`.
async fn presented(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
) -> Option<CertificateDer<'static>> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = ClientConfig::builder_with_provider(live::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let tls = match tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(SITE.try_into().unwrap(), tcp)
        .await
    {
        Ok(tls) => tls,
        Err(_) => return None,
    };
    Some(tls.get_ref().1.peer_certificates()?[0].clone())
}

/// Waits until a new connection is presented a certificate that chains to `root` (and is not
/// `other`); returns it.
async fn until_presented(
    app: &TestApp,
    root: &CertificateDer<'static>,
    other: Option<&CertificateDer<'static>>,
) -> CertificateDer<'static> {
    let deadline = Instant::now() + ISSUING;
    loop {
        if let Some(certificate) = presented(app.addr(), root).await
            && Some(&certificate) != other
        {
            return certificate;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate from the ACME server within {ISSUING:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The app with ACME settings for `pebble`, on `port`, its cache in `cache`.
async fn app(port: u16, redirect: u16, directory: &str, ca_file: &Path, cache: &Path) -> TestApp {
    let acme = AcmeSettings {
        domains: vec![SITE.to_owned()],
        contact: format!("ops@{SITE}"),
        cache_dir: cache.to_owned(),
        directory: directory.to_owned(),
        directory_ca: Some(ca_file.to_owned()),
    };
    spawn_app_with(|settings| {
        settings.port = port;
        settings.acme = Some(acme);
        settings.http_redirect_port = Some(redirect);
    })
    .await
}

fn cached_certificate(cache: &Path) -> PathBuf {
    std::fs::read_dir(cache)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("cached_cert_"))
        })
        .expect("a cached certificate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs pebble (apt-get install pebble); run with -- --ignored, as .ci/run does"]
async fn the_server_gets_caches_and_renews_its_certificate_from_an_acme_server() {
    require("pebble", "pebble");
    require("pebble-challtestsrv", "pebble");
    // Arrange: a folder, a test authority for pebble's own HTTPS, ports for the app.
    let dir = std::env::temp_dir().join(format!("acme-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = TestCa::new();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let cache = dir.join("cache");
    let (port, redirect, acme_port) = (free_port(), free_port(), free_port());
    // The plain port as a browser asks it, for the site's name: with ACME_DOMAINS it answers
    // 400 to any other.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .resolve(SITE, SocketAddr::from(([127, 0, 0, 1], redirect)))
        .build()
        .unwrap();
    let plain_health = format!("http://{SITE}:{redirect}/healthz");

    // 1. No ACME server yet: the app starts, and serves plain HTTP on the redirect port
    //    rather than redirect to an HTTPS without a certificate.
    let first = app(port, redirect, "https://127.0.0.1:1/dir", &ca_file, &cache).await;
    let before = plain.get(&plain_health).send().await.unwrap();
    assert_eq!(
        before.status(),
        200,
        "served, not redirected, before a certificate"
    );
    drop(first);

    // 2. With pebble: a certificate chaining to pebble's root, got by a real TLS-ALPN-01
    //    validation of the app's port, and then the plain port redirects.
    let pebble = Pebble::start(&ca, &dir, acme_port, port);
    let root = pebble.root(&ca).await;
    let mut second = app(port, redirect, &pebble.directory, &ca_file, &cache).await;
    let issued = until_presented(&second, &root, None).await;
    let after = plain.get(&plain_health).send().await.unwrap();
    assert_eq!(after.status(), 308, "redirected once HTTPS can answer");
    second.shut_down().await.unwrap();

    // 3. A restart with the ACME server gone: the cached certificate, asked of nobody.
    let directory = pebble.directory.clone();
    drop(pebble);
    let mut third = app(port, redirect, &directory, &ca_file, &cache).await;
    let cached = until_presented(&third, &root, None).await;
    assert_eq!(cached, issued, "the same certificate, from the cache");
    third.shut_down().await.unwrap();

    // 4. Renewal: a certificate near the end of its life in the cache (valid for 9 s: renewed
    //    at two thirds of it), and pebble back; the app replaces it without a restart.
    let pebble = Pebble::start(&ca, &dir, acme_port, port);
    let new_root = pebble.root(&ca).await;
    let short = ca.issue_short_lived(&[SITE], Duration::from_secs(9));
    std::fs::write(
        cached_certificate(&cache),
        format!("{}\n{}", short.key_pem, short.cert_pem),
    )
    .unwrap();
    let mut fourth = app(port, redirect, &pebble.directory, &ca_file, &cache).await;
    let short_served = until_presented(&fourth, &ca_root(&ca), None).await;
    assert_eq!(
        short_served, short.der,
        "the cached, short-lived certificate first"
    );
    let renewed = until_presented(&fourth, &new_root, None).await;
    assert_ne!(renewed, issued);
    fourth.shut_down().await.unwrap();
    drop(pebble);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The test authority's own certificate, as a root to check against.
fn ca_root(ca: &TestCa) -> CertificateDer<'static> {
    rustls::pki_types::pem::PemObject::from_pem_slice(ca.pem().as_bytes()).unwrap()
}
