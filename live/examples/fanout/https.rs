//! HTTPS beside plain HTTP/1.1 (`--https-clients`; feature `tls`): the same steady rounds
//! over TLS with HTTP/1.1 and over HTTP/2 with 8 streams per connection (a browser's tabs on
//! one site), so that what TLS costs a stream, and what HTTP/2 saves, are figures. A
//! certificate authority of the benchmark's own, the app started with a certificate from it,
//! and clients that trust it.

use std::{
    net::SocketAddr,
    ops::Range,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, LazyLock},
    time::{Duration, Instant},
};

use live::testing::{free_port, https::TestCa};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::{
    clients::{Events, Shared, read_http1_stream},
    options::Options,
    report::Report,
    run::{Setup, Transport, run},
    server::{Server, notes_command},
};

struct Material {
    ca: TestCa,
    cert: PathBuf,
    key: PathBuf,
    http1: TlsConnector,
    h2: TlsConnector,
}

static MATERIAL: LazyLock<Material> = LazyLock::new(|| {
    let ca = TestCa::new();
    let dir = std::env::temp_dir().join(format!("fanout-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = ca.issue().write(&dir);
    Material {
        http1: ca.connector(&[b"http/1.1"]),
        h2: ca.connector(&[b"h2"]),
        ca,
        cert,
        key,
    }
});

/// The HTTPS part: for each N, plain HTTP/1.1, then TLS with HTTP/1.1, then HTTP/2; the first
/// of each row is what the summary measures the others against.
pub async fn measure(options: &Options) -> Vec<Vec<Report>> {
    let mut secure = Vec::new();
    for &n in &options.https {
        let mut rows = Vec::new();
        for transport in [Transport::Plain, Transport::TlsHttp1, Transport::Http2(8)] {
            rows.push(run(n, options.rounds, &[], &Setup::Local, transport).await);
        }
        secure.push(rows);
    }
    secure
}

/// An HTTPS client that trusts the benchmark's authority (HTTP/2, one kept connection).
pub fn client() -> reqwest::Client {
    MATERIAL.ca.client().build().unwrap()
}

/// The notes app over HTTPS, allowed `max_streams`.
pub async fn start(max_streams: usize) -> Server {
    let port = free_port();
    let child = notes_command(port, max_streams)
        .env("TLS_CERT", &MATERIAL.cert)
        .env("TLS_KEY", &MATERIAL.key)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the app");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = Server {
        child: Some(child),
        addr,
        metrics: None,
    };
    let client = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = client.get(format!("https://{addr}/healthz")).send().await;
        if health.is_ok_and(|health| health.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the app did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Warm up (templates, allocator), as the plain runs do.
    let _ = client.get(format!("https://{addr}/")).send().await;
    server
}

async fn handshake(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let _ = tcp.set_nodelay(true);
    connector
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .ok()
}

/// One stream on a TLS connection of its own, over HTTP/1.1.
pub async fn http1_client(addr: SocketAddr, index: usize, shared: Arc<Shared>) {
    if let Some(tls) = handshake(addr, &MATERIAL.http1).await {
        read_http1_stream(tls, addr, index, shared).await;
    }
}

/// One HTTP/2 connection carrying a stream for each of `indexes`, with the windows a
/// browser asks for (Chromium: 6 MiB per stream, 15 MiB for the connection).
pub async fn h2_clients(addr: SocketAddr, indexes: Range<usize>, shared: Arc<Shared>) {
    let Some(tls) = handshake(addr, &MATERIAL.h2).await else {
        return;
    };
    let Ok((send, connection)) = h2::client::Builder::new()
        .initial_window_size(6 * 1024 * 1024)
        .initial_connection_window_size(15 * 1024 * 1024)
        .handshake::<_, bytes::Bytes>(tls)
        .await
    else {
        return;
    };
    let driver = tokio::spawn(connection);
    let mut streams = Vec::new();
    for index in indexes {
        let uri = format!(
            "https://{addr}/sse/notes?datastar=%7B%22sessionId%22%3A%22{}%22%7D",
            uuid::Uuid::new_v4()
        );
        let request = axum::http::Request::get(uri)
            .header("datastar-request", "true")
            .body(())
            .unwrap();
        let Ok(mut send) = send.clone().ready().await else {
            break;
        };
        let Ok((response, _)) = send.send_request(request, true) else {
            break;
        };
        let shared = Arc::clone(&shared);
        streams.push(tokio::spawn(async move {
            if let Ok(response) = response.await {
                let mut body = response.into_body();
                let mut events = Events::default();
                while let Some(Ok(chunk)) = body.data().await {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    events.feed(&chunk, index, &shared);
                }
            }
            shared
                .ended
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }));
    }
    for stream in streams {
        let _ = stream.await;
    }
    driver.abort();
}
