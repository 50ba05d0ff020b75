//! The proxies the project ships configurations for, run for real: `deploy/Caddyfile` and
//! `deploy/nginx.conf`, started by `caddy` and `nginx` (Debian's packages) with only their ports,
//! certificate and upstream changed. The site keeps its shipped name, `example.org`, which the
//! tests' clients (and Chromium) resolve to 127.0.0.1, and a certificate the test makes for it.

use live::testing::free_port;
use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use live::testing::{
    PATIENCE, Process,
    https::{TestCa, TestCertificate},
};
use uuid::Uuid;

/// The name the shipped configurations serve.
pub const SITE: &str = "example.org";

/// Which proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Caddy,
    Nginx,
}

impl Kind {
    fn binary(self) -> &'static str {
        match self {
            Kind::Caddy => "caddy",
            Kind::Nginx => "nginx",
        }
    }

    /// Fails the test unless the proxy is installed: tests that need it are ignored unless
    /// asked for (`-- --ignored`), and then must run.
    pub fn require(self) {
        live::testing::require(self.binary(), self.binary())
    }
}

/// The site's certificate, from a test authority, and where its files are.
pub struct SiteCertificate {
    pub ca: TestCa,
    /// For the site's name and 127.0.0.1 (a Datastar copy served on this machine can use it
    /// too, so that a browser told to trust it trusts both).
    pub certificate: TestCertificate,
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl SiteCertificate {
    pub fn new() -> SiteCertificate {
        let dir = std::env::temp_dir().join(format!("proxy-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = TestCa::new();
        let certificate = ca.issue_for(&[SITE, "127.0.0.1"]);
        let (cert, key) = certificate.write(&dir);
        // nginx's workers run as an unprivileged user: they must be able to read the pair.
        for (path, mode) in [(&dir, 0o755), (&cert, 0o644), (&key, 0o644)] {
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
        }
        SiteCertificate {
            ca,
            certificate,
            dir,
            cert,
            key,
        }
    }
}

impl Drop for SiteCertificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running proxy with the shipped configuration, and clients that reach it as browsers reach
/// the site.
pub struct Proxy {
    child: Process,
    /// The HTTPS port (443 as shipped).
    pub https: u16,
    /// The plain port (80 as shipped).
    pub http: u16,
    pub site: SiteCertificate,
}

impl Proxy {
    /// Starts `kind` with its shipped configuration and a new certificate, proxying to
    /// `upstream`.
    pub async fn start(kind: Kind, upstream: SocketAddr) -> Proxy {
        Proxy::start_with(kind, upstream, SiteCertificate::new()).await
    }

    /// [`Proxy::start`], serving `site`'s certificate.
    pub async fn start_with(kind: Kind, upstream: SocketAddr, mut site: SiteCertificate) -> Proxy {
        kind.require();
        let (dir, cert, key) = (site.dir.clone(), site.cert.clone(), site.key.clone());
        // nginx's workers run as an unprivileged user: they must be able to read the pair.
        for file in [&cert, &key, &dir] {
            let mode = if file.is_dir() { 0o755 } else { 0o644 };
            let _ =
                std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(mode));
        }
        let shipped = |name: &str| {
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("deploy")
                    .join(name),
            )
            .unwrap()
        };
        let replace = |text: String, from: &str, to: &str| {
            assert!(
                text.contains(from),
                "the shipped configuration has {from:?}"
            );
            text.replace(from, to)
        };
        let upstream = upstream.to_string();
        // A port picked free may be taken by the time the proxy binds it (other tests pick
        // theirs at the same time): then again, on other ports.
        let mut attempts = 3;
        loop {
            attempts -= 1;
            let (https, http) = (free_port(), free_port());
            let mut command = match kind {
                Kind::Caddy => {
                    let config = shipped("Caddyfile");
                    let config = replace(
                        config,
                        "admin localhost:2019",
                        &format!("admin localhost:{}", free_port()),
                    );
                    let config = replace(config, "http_port 80", &format!("http_port {http}"));
                    let config = replace(config, "https_port 443", &format!("https_port {https}"));
                    let config = replace(
                        config,
                        "# tls /etc/ssl/certs/ssl-cert-snakeoil.pem /etc/ssl/private/ssl-cert-snakeoil.key",
                        &format!("tls {} {}", cert.display(), key.display()),
                    );
                    let config = replace(config, "127.0.0.1:3000", &upstream);
                    let file = dir.join("Caddyfile");
                    std::fs::write(&file, config).unwrap();
                    let mut command = Command::new("caddy");
                    command
                        .args(["run", "--adapter", "caddyfile", "--config"])
                        .arg(&file)
                        // Caddy keeps state under these: the test's own folder, not the machine's.
                        .env("HOME", &dir)
                        .env("XDG_DATA_HOME", dir.join("data"))
                        .env("XDG_CONFIG_HOME", dir.join("config"));
                    command
                }
                Kind::Nginx => {
                    let config = shipped("nginx.conf");
                    let config = replace(config, "listen 80;", &format!("listen {http};"));
                    let config =
                        replace(config, "listen [::]:80;", &format!("listen [::]:{http};"));
                    let config = replace(config, "listen 443 ssl", &format!("listen {https} ssl"));
                    let config = replace(
                        config,
                        "listen [::]:443 ssl",
                        &format!("listen [::]:{https} ssl"),
                    );
                    let config = replace(
                        config,
                        "/etc/ssl/certs/ssl-cert-snakeoil.pem",
                        &cert.display().to_string(),
                    );
                    let config = replace(
                        config,
                        "/etc/ssl/private/ssl-cert-snakeoil.key",
                        &key.display().to_string(),
                    );
                    let config = replace(config, "127.0.0.1:3000", &upstream);
                    let file = dir.join("nginx.conf");
                    std::fs::write(&file, config).unwrap();
                    let mut command = Command::new("nginx");
                    command.arg("-c").arg(&file).arg("-g").arg(format!(
                        "daemon off; pid {}; error_log {} warn;",
                        dir.join("nginx.pid").display(),
                        dir.join("error.log").display()
                    ));
                    command
                }
            };
            let output = dir.join(format!("{kind:?}.output"));
            // Stopped with its workers when dropped: killing nginx's master alone left them
            // listening.
            let child = Process::spawn(
                command
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&output).unwrap()),
            );
            let mut proxy = Proxy {
                child,
                https,
                http,
                site,
            };
            let said = || {
                let error_log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                std::fs::read_to_string(&output).unwrap_or_default() + &error_log
            };
            let client = proxy.client(None);
            let deadline = Instant::now() + PATIENCE;
            loop {
                let health = client.get(proxy.url("/healthz")).send().await;
                if health.is_ok_and(|health| health.status() == 200) {
                    return proxy;
                }
                if proxy.child.try_wait().unwrap().is_some() {
                    let said = said();
                    assert!(
                        attempts > 0 && said.to_lowercase().contains("address already in use"),
                        "{kind:?} stopped: {said}"
                    );
                    site = proxy.site; // its port was taken: again, on others
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{kind:?} did not start proxying: {}",
                    said()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The process started (Caddy's, nginx's master).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `https://example.org:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{SITE}:{}{path}", self.https)
    }

    /// A client of the site, from `from` (a loopback address of its own: another browser) or
    /// the default one: it trusts the test's certificate and resolves the site's name here.
    pub fn client(&self, from: Option<IpAddr>) -> reqwest::Client {
        let mut builder = self
            .site
            .ca
            .client()
            .resolve(SITE, SocketAddr::from(([127, 0, 0, 1], self.https)))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120));
        if let Some(from) = from {
            builder = builder.local_address(from);
        }
        builder.build().unwrap()
    }

    /// Opens the home stream as a new tab, through the proxy.
    pub async fn open_tab(&self, client: &reqwest::Client) -> reqwest::Response {
        let signals = serde_json::json!({ "sessionId": Uuid::new_v4() }).to_string();
        live::testing::stream_request(client, &self.url("/sse/home"), Some(&signals)).await
    }

    /// Greets through the proxy as Datastar does, from the site's own page.
    pub async fn greet(&self, client: &reqwest::Client, name: &str) -> reqwest::Response {
        client
            .post(self.url("/api/greet"))
            .header("datastar-request", "true")
            .header("origin", format!("https://{SITE}:{}", self.https))
            .header("sec-fetch-site", "same-origin")
            .form(&[("name", name)])
            .send()
            .await
            .unwrap()
    }
}
