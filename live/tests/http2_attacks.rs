//! HTTP/2 attacks cost the attacker, not the other users. Each test plays one attack against the
//! real server over TLS, in a bounded loop, while a healthy tab on its own connection reads
//! every event; then checks that the server still answers `/healthz`, that the healthy tab got
//! everything, and that the process's memory grew by a bounded amount. The figures are printed
//! (`cargo test --test http2_attacks -- --nocapture --test-threads 1`); none is a timing
//! assertion.
//!
//! The tests take turns (one lock): each measures the whole process's memory.

#![cfg(feature = "tls")]

mod support;

use std::{
    sync::LazyLock,
    time::{Duration, Instant},
};

use support::{
    PATIENCE, TestApp,
    frames::{self, RawH2},
    https::H2Connection,
    raise_open_files_limit, spawn_https_app_with,
};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: LazyLock<Mutex<()>> = LazyLock::new(|| Mutex::new(()));

/// What a test may let the whole process grow by while an attack runs: far above what the
/// server holds for its users here (a few MiB), far below what any of these attacks costs a
/// server that does not bound it (hundreds of MiB to gigabytes).
const MEMORY_ALLOWANCE: u64 = 64 * 1024 * 1024;

/// The process's resident memory, in bytes.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// An HTTPS app with short limits, so that every attack meets them within seconds.
async fn app() -> TestApp {
    raise_open_files_limit();
    spawn_https_app_with(|settings| {
        settings.send_timeout = Duration::from_secs(1);
        settings.header_read_timeout = Duration::from_secs(2);
        settings.keep_alive_timeout = Duration::from_secs(1);
        // Every attacker and the healthy tab are 127.0.0.1 here: the attacks are on the
        // server's limits, not the per-client cap (tests/floods.rs).
        settings.max_connections_per_client = 100_000;
    })
    .await
}

/// A healthy tab, on a connection of its own, that must see every shout.
async fn healthy(app: &TestApp) -> support::https::H2Tab {
    let mut tab = H2Connection::open(app, 65_535).await.open_tab().await;
    tab.read_until("\"connected\":true").await;
    tab
}

/// After an attack: `/healthz` answers over a new connection (the time it took is printed),
/// the healthy tab gets a shout, and memory grew by less than [`MEMORY_ALLOWANCE`].
async fn still_serving(app: &TestApp, tab: &mut support::https::H2Tab, before: u64, attack: &str) {
    let started = Instant::now();
    let health = tokio::time::timeout(PATIENCE, app.get("/healthz"))
        .await
        .expect("/healthz answers");
    let health_time = started.elapsed();
    assert_eq!(health.status(), 200, "{attack}: /healthz");
    let marker = format!("after-{}", uuid::Uuid::new_v4());
    let shouted = app
        .client()
        .post(app.url("/shouts"))
        .header("datastar-request", "true")
        .form(&[("text", &marker)])
        .send()
        .await
        .unwrap();
    assert_eq!(shouted.status(), 200);
    tab.read_until(&marker).await;
    let grown = resident().saturating_sub(before);
    println!(
        "{attack}: /healthz answered in {health_time:?}; memory grew {:.1} MiB",
        grown as f64 / 1048576.0
    );
    assert!(
        grown < MEMORY_ALLOWANCE,
        "{attack}: memory grew {grown} bytes"
    );
}

fn stream_path() -> String {
    format!(
        "/sse/notes?datastar=%7B%22sessionId%22%3A%22{}%22%7D",
        uuid::Uuid::new_v4()
    )
}

/// Reads until the connection ends (or `patience` runs out); returns the GOAWAY's code if one
/// came, and how many frames of `kind` arrived.
async fn drain(raw: &mut RawH2, patience: Duration, kind: u8) -> (Option<u32>, usize) {
    let deadline = tokio::time::Instant::now() + patience;
    let (mut goaway, mut counted) = (None, 0);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = raw.read(left).await else {
            return (goaway, counted);
        };
        if frame.kind == frames::GOAWAY {
            goaway = Some(frames::goaway_code(&frame));
        }
        if frame.kind == kind {
            counted += 1;
        }
    }
}

#[tokio::test]
async fn rapid_reset_cve_2023_44487() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app().await;
    let mut tab = healthy(&app).await;
    let before = resident();

    // Act: open a stream and reset it at once, 10 000 times, without reading.
    let mut raw = RawH2::connect(&app, &[]).await;
    let mut sent = 0;
    for n in 0..10_000u32 {
        let stream = 2 * n + 1;
        let path = stream_path();
        if !raw
            .get(stream, &path, &[("datastar-request", "true")])
            .await
            || !raw
                .send(frames::RST_STREAM, 0, stream, &8u32.to_be_bytes())
                .await
        {
            break;
        }
        sent += 1;
    }
    let (goaway, _) = drain(&mut raw, PATIENCE, frames::HEADERS).await;

    // Assert: the server had enough long before the end, and told the attacker why.
    println!("rapid reset: {sent} of 10000 opened and reset; GOAWAY {goaway:?}");
    assert_eq!(goaway, Some(0xb), "GOAWAY with ENHANCE_YOUR_CALM");
    app.wait_for_streams("page/notes/*", 1).await;
    still_serving(&app, &mut tab, before, "rapid reset").await;
}

#[tokio::test]
async fn continuation_flood() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app().await;
    let mut tab = healthy(&app).await;
    let before = resident();

    // Act: a header block that never ends: HEADERS without END_HEADERS, then CONTINUATION
    // frames of 1 KiB each, up to 10 000 of them.
    let mut raw = RawH2::connect(&app, &[]).await;
    let block = raw.request_block("/", &[]);
    raw.send(frames::HEADERS, 0, 1, &block).await;
    let filler = raw.request_block("/", &[("x-filler", &"f".repeat(1000))]);
    let mut sent = 0;
    for _ in 0..10_000 {
        if !raw
            .send(frames::CONTINUATION, 0, 1, &filler[filler.len() - 1010..])
            .await
        {
            break;
        }
        sent += 1;
    }
    let (goaway, _) = drain(&mut raw, PATIENCE, frames::HEADERS).await;

    // Assert: the connection was ended long before the flood did.
    println!("CONTINUATION flood: {sent} of 10000 frames written; GOAWAY {goaway:?}");
    assert!(sent < 10_000, "the server stopped reading the flood");
    still_serving(&app, &mut tab, before, "CONTINUATION flood").await;
}

#[tokio::test]
async fn settings_and_ping_floods() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app().await;
    let mut tab = healthy(&app).await;
    let before = resident();

    for (attack, kind, payload) in [
        // Each SETTINGS must be acknowledged, each PING answered: the attacker reads none of it.
        ("SETTINGS flood", frames::SETTINGS, vec![0, 4, 0, 1, 0, 0]),
        ("PING flood", frames::PING, vec![7; 8]),
    ] {
        let mut raw = RawH2::connect(&app, &[]).await;
        let started = Instant::now();
        let mut sent = 0;
        for _ in 0..200_000 {
            let write = raw.send(kind, 0, 0, &payload);
            match tokio::time::timeout(Duration::from_secs(5), write).await {
                Ok(true) => sent += 1,
                _ => break,
            }
        }
        // Answers piled up unread: the server's writes block, and it cuts the connection off.
        let (goaway, answers) = drain(&mut raw, PATIENCE, kind).await;
        println!(
            "{attack}: {sent} of 200000 frames written in {:?}; {answers} answers read back; \
             GOAWAY {goaway:?}",
            started.elapsed()
        );
        assert!(
            answers < sent,
            "{attack}: the server does not queue an answer for every frame"
        );
        still_serving(&app, &mut tab, before, attack).await;
    }
}

#[tokio::test]
async fn a_zero_window_on_every_stream() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app().await;
    let mut tab = healthy(&app).await;
    let before = resident();

    // Act: a connection whose streams all start with a shut window, never opened; as many
    // streams as it may have, each a live stream the server has events for.
    let streams = live::serve::MAX_CONCURRENT_STREAMS;
    let mut raw = RawH2::connect(&app, &[(frames::INITIAL_WINDOW_SIZE, 0)]).await;
    for n in 0..streams {
        let path = stream_path();
        raw.get(2 * n + 1, &path, &[("datastar-request", "true")])
            .await;
    }
    let started = Instant::now();
    let (mut answered, mut resets) = (0, 0);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while resets < streams {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match raw.read(left).await {
            Some(frame) if frame.kind == frames::HEADERS => answered += 1,
            Some(frame) if frame.kind == frames::RST_STREAM => resets += 1,
            Some(_) => {}
            None => break,
        }
    }

    // Assert: every stalled stream was reset within about the send timeout; the healthy tab
    // is the only stream left.
    println!(
        "zero window: {answered} streams answered, {resets} of {streams} reset after {:?}",
        started.elapsed()
    );
    assert_eq!(answered, streams, "every stream was opened");
    assert_eq!(resets, streams, "and reset");
    app.wait_for_streams("page/notes/*", 1).await;
    still_serving(&app, &mut tab, before, "zero window").await;
}

#[tokio::test]
async fn oversized_header_lists() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // A refused request never reaches the app, so a connection that sends only those is idle:
    // a keep-alive timeout longer than the whole loop, or the GOAWAY for idleness ends it.
    let app = spawn_https_app_with(|settings| {
        settings.send_timeout = Duration::from_secs(1);
        settings.header_read_timeout = Duration::from_secs(60);
        settings.keep_alive_timeout = Duration::from_secs(60);
    })
    .await;
    let mut tab = healthy(&app).await;
    let before = resident();

    // Act: 200 requests on one connection whose header lists decode to about 25 KiB (the
    // limit is 16 KiB) from 7 KiB blocks; then one whose block alone is 64 KiB, sent over
    // CONTINUATION frames.
    let mut raw = RawH2::connect(&app, &[]).await;
    let small: Vec<(String, String)> = (0..650)
        .map(|i| (format!("x-{i}"), "v".to_owned()))
        .collect();
    let small: Vec<(&str, &str)> = small
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut refused = 0;
    for n in 0..200u32 {
        let stream = 2 * n + 1;
        let block = raw.request_block("/healthz", &small);
        assert!(block.len() < 16 * 1024, "one frame");
        raw.send(
            frames::HEADERS,
            frames::END_HEADERS | frames::END_STREAM,
            stream,
            &block,
        )
        .await;
        let answer = raw
            .read_until(PATIENCE, |frame| {
                frame.stream == stream || frame.kind == frames::GOAWAY
            })
            .await
            .expect("an answer to each oversized request");
        assert_eq!(answer.stream, stream, "the connection stays: {answer:?}");
        // `:status: 200` is HPACK's static entry 8 (0x88); anything else is a refusal.
        if answer.kind == frames::RST_STREAM
            || (answer.kind == frames::HEADERS && !answer.payload.starts_with(&[0x88]))
        {
            refused += 1;
        }
    }
    let stream = 2 * 200 + 1;
    let big = "h".repeat(1000);
    let huge: Vec<(String, &str)> = (0..64)
        .map(|i| (format!("x-big-{i}"), big.as_str()))
        .collect();
    let huge: Vec<(&str, &str)> = huge.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let block = raw.request_block("/healthz", &huge);
    let chunks: Vec<&[u8]> = block.chunks(16 * 1024).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let kind = if i == 0 {
            frames::HEADERS
        } else {
            frames::CONTINUATION
        };
        let last = i + 1 == chunks.len();
        let flags = if last {
            frames::END_HEADERS | frames::END_STREAM
        } else {
            0
        };
        raw.send(kind, flags, stream, chunk).await;
    }
    let (goaway, _) = drain(&mut raw, PATIENCE, frames::HEADERS).await;

    // Assert: each refused alone; the huge block ends the connection.
    println!(
        "oversized headers: {refused} of 200 refused alone; a 64 KiB block: GOAWAY {goaway:?}"
    );
    assert_eq!(refused, 200);
    assert_eq!(goaway, Some(0x9), "GOAWAY with COMPRESSION_ERROR");
    still_serving(&app, &mut tab, before, "oversized headers").await;
}

#[tokio::test]
async fn many_connections_that_never_finish_the_tls_handshake() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app().await;
    let mut tab = healthy(&app).await;
    let before = resident();

    // Act: 1 000 connections; half send the start of a ClientHello and stop, half send nothing.
    let mut open = Vec::new();
    for n in 0..1_000 {
        let mut tcp = tokio::net::TcpStream::connect(app.addr()).await.unwrap();
        if n % 2 == 0 {
            let _ = tokio::io::AsyncWriteExt::write_all(&mut tcp, &[0x16, 0x03, 0x01, 0x02, 0x00])
                .await;
        }
        open.push(tcp);
    }
    // While they hang, the app answers.
    let started = Instant::now();
    let health = tokio::time::timeout(PATIENCE, app.get("/healthz")).await;
    println!(
        "unfinished handshakes: /healthz answered in {:?} with 1000 pending",
        started.elapsed()
    );
    assert_eq!(health.expect("/healthz answers").status(), 200);
    // Then the server closes them all, within the header-read timeout.
    let started = Instant::now();
    let mut closed = 0;
    for tcp in &mut open {
        let mut buffer = [0u8; 16];
        match tokio::time::timeout(PATIENCE, tokio::io::AsyncReadExt::read(tcp, &mut buffer)).await
        {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            _ => {}
        }
    }

    // Assert
    println!(
        "unfinished handshakes: {closed} of 1000 closed by the server after {:?}",
        started.elapsed()
    );
    assert_eq!(closed, 1_000);
    still_serving(&app, &mut tab, before, "unfinished handshakes").await;
}

/// A log that tests read back: every line the server writes while a test's subscriber is the
/// default on its thread.
#[derive(Clone, Default)]
struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// `RUST_LOG=debug` must not let a client write the log: before, h2 logged every frame a client
/// sent (51 500 `WINDOW_UPDATE`s grew the log by 7.7 MB). The server runs under the filter the
/// kit builds from `RUST_LOG=debug` (the test's runtime runs it on this thread, where the
/// subscriber is the default), and one client sends thousands of `WINDOW_UPDATE` and `PING`
/// frames.
#[tokio::test]
async fn a_frame_flood_at_debug_level_writes_no_log_line_per_frame() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // With only this test's subscriber registered, tracing-core caches "never" for a callsite
    // that another test's thread (with no subscriber) reaches first, and this thread's event is
    // then lost (tracing issue 3611: the one-dispatch short path asks the wrong thread). A
    // global subscriber that records nothing keeps a second dispatch registered, so interest
    // is always worked out over both.
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(live::logging::filter(Some("debug")))
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let app = app().await;
    let tab = healthy(&app).await;
    let before = log.text().len();

    // Act: 6 000 frames, none of them wrong: a window grown by one byte at a time, and pings.
    const FRAMES: usize = 6_000;
    let mut raw = RawH2::connect(&app, &[]).await;
    let mut sent = 0;
    for n in 0..FRAMES {
        let (ping, one) = ((n as u64).to_be_bytes(), 1u32.to_be_bytes());
        let write = match n % 6 {
            0 => raw.send(frames::PING, 0, 0, &ping),
            _ => raw.send(frames::WINDOW_UPDATE, 0, 0, &one),
        };
        match tokio::time::timeout(Duration::from_secs(5), write).await {
            Ok(true) => sent += 1,
            _ => break,
        }
    }
    let (goaway, pongs) = drain(&mut raw, Duration::from_secs(1), frames::PING).await;
    let before_close = log.text().len();
    // The healthy tab closes: the kit's debug line says so.
    drop(tab);
    app.wait_for_streams("page/notes/*", 0).await;

    // Assert
    let text = log.text();
    let grown = before_close - before;
    println!(
        "frame flood at RUST_LOG=debug: {sent} frames sent, {pongs} PINGs answered, GOAWAY \
         {goaway:?}; the log grew {grown} bytes"
    );
    assert_eq!(sent, FRAMES, "the frames are all fine, and all read");
    assert!(
        grown < 16 * 1024,
        "the log grew {grown} bytes: {}",
        &text[before..before_close]
    );
    assert!(
        text.contains("stream opened"),
        "the kit's debug lines: {text}"
    );
    assert!(
        text.contains("stream closed"),
        "the kit's debug lines: {text}"
    );
}
