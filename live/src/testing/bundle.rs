//! The real Datastar 1.x bundle, fetched at test time and served to the pages (feature
//! `browser`).
//!
//! Datastar 1.x is not on npm, and the tests must not need the CDN (or any network beyond the
//! package registry). The `rama-http` crate 0.4.0 ships Datastar v1.0.2 in its sources, so
//! `cargo metadata` on a throw-away manifest downloads it (nothing is compiled) and tells us
//! where it is. `DATASTAR_JS=/path/to/datastar.js` skips all that.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use axum::{
    Router,
    http::{HeaderValue, header},
    routing::get,
};

const RAMA_HTTP: &str = "rama-http";
const RAMA_HTTP_VERSION: &str = "0.4.0";
const PATH_IN_CRATE: &str = "src/service/web/endpoint/response/datastar.js";

/// The bundle's source, read once per test binary.
pub fn datastar_js() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    super::fetched::fetched(
        &SOURCE,
        "DATASTAR_JS",
        fetch_from_crate,
        "// Datastar v1.",
        "a Datastar 1.x bundle",
    )
}

fn fetch_from_crate() -> PathBuf {
    let dir = super::fetched::scratch_dir("datastar-bundle");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    // `[workspace]` keeps cargo from looking for a parent workspace.
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"fetch-datastar\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\n{RAMA_HTTP} = \"={RAMA_HTTP_VERSION}\"\n\n[workspace]\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();

    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| package["name"] == RAMA_HTTP && package["version"] == RAMA_HTTP_VERSION)
        .and_then(|package| package["manifest_path"].as_str())
        .expect("rama-http in the metadata");
    Path::new(manifest).parent().unwrap().join(PATH_IN_CRATE)
}

/// The bundle's subresource-integrity hash (`sha384-…`), as `DATASTAR_INTEGRITY` takes it.
pub fn integrity() -> String {
    use base64::Engine;
    use sha2::Digest;
    let hash = sha2::Sha384::digest(datastar_js().as_bytes());
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Settings whose pages load the bundle from [`serve`]d copy, pinned by its hash as the default
/// CDN copy is (the browser checks it).
pub async fn settings() -> crate::settings::Settings {
    let at = serve().await;
    crate::settings::Settings {
        port: 0,
        datastar_url: format!("http://{at}/datastar.js"),
        datastar_integrity: crate::settings::Integrity::Hash(integrity()),
        ..crate::settings::Settings::default()
    }
}

/// Serves the bundle at `http://<addr>/datastar.js` from a server of its own, as a CDN would
/// (a module script from another origin needs CORS).
pub async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router()).await });
    addr
}

/// Like [`serve`], over HTTPS with `tls` (at `https://<addr>/datastar.js`): a page served over
/// HTTPS may not load a script over plain HTTP.
#[cfg(feature = "tls")]
pub async fn serve_tls(tls: &crate::tls::Tls) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = TlsListener {
        tcp: listener,
        acceptor: tls.acceptor().clone(),
    };
    tokio::spawn(async move { axum::serve(listener, router()).await });
    addr
}

/// A listener whose connections have been through a TLS handshake.
#[cfg(feature = "tls")]
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

#[cfg(feature = "tls")]
impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, peer)) = self.tcp.accept().await else {
                continue;
            };
            // A failed handshake is the client's problem; wait for the next one.
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn router() -> Router {
    let source = datastar_js();
    Router::new().route(
        "/datastar.js",
        get(move || async move {
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/javascript"),
                    ),
                    (
                        header::ACCESS_CONTROL_ALLOW_ORIGIN,
                        HeaderValue::from_static("*"),
                    ),
                ],
                source,
            )
        }),
    )
}
