//! One client floods the server with connections that never send a byte: it keeps at most
//! `MAX_CONNECTIONS_PER_CLIENT` of them, every one beyond is refused at once — a `503` over
//! plain HTTP, a TLS alert over HTTPS, never plain text in a handshake — and everyone else
//! keeps getting prompt answers and working handshakes.
//!
//! The flooder is `127.0.0.1`; the other client sends from `127.0.0.2` (the loopback answers
//! for all of `127.0.0.0/8`). Each test prints the other client's `/healthz` latencies during
//! the flood.

mod support;

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use tokio::{
    io::AsyncReadExt,
    net::TcpStream,
    sync::oneshot,
    task::{JoinHandle, JoinSet},
};
use uuid::Uuid;

use support::{PATIENCE, SseClient, TestApp, elements, raise_open_files_limit, spawn_app_with};

/// Connections one client may hold in these tests.
const CAP: usize = 50;
/// Connections the flooder opens past its cap while the other client is timed, in batches (so
/// that every refusal is answered: the server answers at most 128 at once, and closes the rest).
const FLOOD: usize = 3_000;
const BATCH: usize = 100;
/// The other client.
const ELSEWHERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// Settings for a flood: the cap, and a header-read timeout long enough that the server closes
/// none of the flooder's silent connections during the test (so it holds exactly its cap).
fn flood_settings(settings: &mut live::Settings) {
    settings.max_connections_per_client = CAP;
    settings.max_connections = Some(4 * CAP);
    settings.header_read_timeout = Duration::from_secs(60);
    settings.keep_alive_timeout = Duration::from_secs(5);
}

/// Opens `count` silent connections from the flooder at once. Those still open after two
/// seconds are held (returned); the others were refused, and what each was sent is returned.
async fn flood(addr: SocketAddr, count: usize) -> (Vec<TcpStream>, Vec<Vec<u8>>) {
    let mut opened = JoinSet::new();
    for _ in 0..count {
        opened.spawn(async move {
            let mut stream = TcpStream::connect(addr)
                .await
                .expect("the kernel accepts it");
            let mut seen = Vec::new();
            let mut buffer = [0; 1024];
            let read = async {
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buffer[..n]),
                    }
                }
            };
            match tokio::time::timeout(Duration::from_secs(2), read).await {
                Ok(()) => Err(seen),
                Err(_) => Ok(stream),
            }
        });
    }
    let (mut held, mut refused) = (Vec::new(), Vec::new());
    while let Some(outcome) = opened.join_next().await {
        match outcome.unwrap() {
            Ok(stream) => held.push(stream),
            Err(seen) => refused.push(seen),
        }
    }
    (held, refused)
}

/// Floods [`FLOOD`] connections in batches; what each refused one was sent. None may be held.
async fn flood_past_the_cap(addr: SocketAddr) -> Vec<Vec<u8>> {
    let mut refused = Vec::new();
    for _ in 0..FLOOD / BATCH {
        let (held, answers) = flood(addr, BATCH).await;
        assert!(held.is_empty(), "{} more held past the cap", held.len());
        refused.extend(answers);
    }
    refused
}

/// `GET /healthz` from the other client every 10 ms, each over a fresh connection (with a
/// fresh handshake over HTTPS), until stopped; every one must answer 200.
struct Probe {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<Duration>>,
}

impl Probe {
    fn start(app: &TestApp, client: reqwest::ClientBuilder) -> Probe {
        let client = client
            .local_address(ELSEWHERE)
            .pool_max_idle_per_host(0)
            .timeout(PATIENCE)
            .build()
            .unwrap();
        let url = app.url("/healthz");
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut latencies = Vec::new();
            while stopped.try_recv().is_err() {
                let started = Instant::now();
                let response = client.get(&url).send().await.expect("an answer");
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
                latencies.push(started.elapsed());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            latencies
        });
        Probe { stop, task }
    }

    /// Stops probing; prints the latencies and checks each answer was prompt.
    async fn finish(self, during: &str) {
        let _ = self.stop.send(());
        let mut latencies = self.task.await.expect("every probe answered 200");
        latencies.sort();
        assert!(latencies.len() >= 5, "probed {} times", latencies.len());
        let at = |share: f64| latencies[((latencies.len() - 1) as f64 * share) as usize];
        eprintln!(
            "/healthz from another client {during}: {} probes, median {:?}, p99 {:?}, max {:?}",
            latencies.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
        assert!(
            at(1.0) < PATIENCE / 2,
            "slow during the flood: {:?}",
            at(1.0)
        );
    }
}

/// A notes stream opened by the other client.
async fn stream_from_elsewhere(app: &TestApp, client: reqwest::ClientBuilder) -> SseClient {
    let client = client.local_address(ELSEWHERE).build().unwrap();
    let signals = serde_json::json!({ "sessionId": Uuid::new_v4() }).to_string();
    let response = client
        .get(app.url("/sse/notes"))
        .query(&[("datastar", signals)])
        .header("datastar-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = SseClient::new(response);
    stream.read_initial_events().await;
    stream
}

/// Reads `tab` until a note with `text` arrives.
async fn until_note(tab: &mut SseClient, text: &str) {
    let read = async {
        loop {
            let event = tab.next_event().await;
            if event.event == "datastar-patch-elements" && elements(&event).contains(text) {
                return;
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the note reaches the stream");
}

/// Waits until a `GET /healthz` from the flooder's own address answers 200 again.
async fn served_again(app: &TestApp) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let response = app.client().get(app.url("/healthz")).send().await;
        if response.is_ok_and(|response| response.status() == 200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the flooder's address is still refused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_its_cap_of_silent_connections_and_the_rest_get_a_503_at_once() {
    // Arrange: a stream from another client, open before the flood.
    raise_open_files_limit();
    let app = spawn_app_with(flood_settings).await;
    let mut tab = stream_from_elsewhere(&app, reqwest::Client::builder()).await;

    // Act: the flooder opens its cap and twenty more at once, then three thousand more while
    // another client asks for /healthz over fresh connections.
    let (held, first_refused) = flood(app.addr(), CAP + 20).await;
    let probe = Probe::start(&app, reqwest::Client::builder());
    let refused = flood_past_the_cap(app.addr()).await;
    probe.finish("during a plain-HTTP flood").await;

    // Assert: it holds exactly its cap; everything past it got the short answer, or was
    // closed without one (the server answers a bounded number of refusals at once, and on a
    // loaded machine a refusal may find them all taken).
    assert_eq!(held.len(), CAP, "connections held by one address");
    assert_eq!(first_refused.len(), 20);
    let mut answered = 0;
    for answer in first_refused.iter().chain(&refused) {
        if answer.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(answer);
        assert!(text.starts_with("HTTP/1.1 503 "), "{text:?}");
        assert!(
            text.contains("Too many connections from your network"),
            "{text}"
        );
        answered += 1;
    }
    assert!(answered > 0, "no refusal was answered");
    eprintln!(
        "{answered} of {} refusals answered with the 503, the rest closed",
        first_refused.len() + refused.len()
    );
    eprintln!(
        "one address: {} connections held (cap {CAP}), {} refused with a 503",
        held.len(),
        first_refused.len() + refused.len()
    );
    // Once the flooder lets go, its address is served again; the stream opened before the
    // flood was served throughout.
    drop(held);
    served_again(&app).await;
    app.publish_with_datastar("after the flood").await;
    until_note(&mut tab, "after the flood").await;
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_connections_past_the_cap_get_a_tls_alert_and_handshakes_elsewhere_go_on() {
    // Arrange
    raise_open_files_limit();
    let app = support::spawn_https_app_with(flood_settings).await;
    let ca = &app.https.as_ref().unwrap().ca;
    let mut tab = stream_from_elsewhere(&app, ca.client()).await;

    // Act: as above, silent TCP connections that never start a handshake; meanwhile the
    // other client makes a fresh TLS handshake for every /healthz.
    let (held, first_refused) = flood(app.addr(), CAP + 20).await;
    let probe = Probe::start(&app, ca.client());
    let refused = flood_past_the_cap(app.addr()).await;
    probe
        .finish("during an HTTPS flood, a handshake each")
        .await;
    // A real client from the flooder's address, while it is at its cap.
    let tcp = TcpStream::connect(app.addr()).await.unwrap();
    let handshake = ca
        .connector(&[b"h2", b"http/1.1"])
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await;

    // Assert: it holds exactly its cap; everything past it got a TLS alert, fatal
    // internal_error, and never plain text in the handshake.
    // (Or closed without one, as above; never anything else.)
    assert_eq!(held.len(), CAP, "connections held by one address");
    assert_eq!(first_refused.len(), 20);
    let mut alerted = 0;
    for answer in first_refused.iter().chain(&refused) {
        if answer.is_empty() {
            continue;
        }
        assert_eq!(
            answer,
            &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 80],
            "{answer:?}"
        );
        alerted += 1;
    }
    assert!(alerted > 0, "no refusal got the alert");
    eprintln!(
        "{alerted} of {} refusals got the TLS alert, the rest closed",
        first_refused.len() + refused.len()
    );
    let error = handshake.expect_err("refused at its cap").to_string();
    assert!(error.contains("InternalError"), "a TLS alert: {error}");
    eprintln!(
        "one address over HTTPS: {} connections held (cap {CAP}), {} refused with a TLS alert",
        held.len(),
        first_refused.len() + refused.len()
    );
    drop(held);
    served_again(&app).await;
    app.publish_with_datastar("after the flood").await;
    until_note(&mut tab, "after the flood").await;
}
