//! HTTPS from the binary: HTTP/2 and HTTP/1.1 by ALPN, and every promise of a connection held
//! per HTTP/2 stream — a stream whose window stays shut is cut off alone, caps count streams,
//! shutdown says GOAWAY and ends every stream with the restart event, idle connections are
//! closed, a certificate is renewed without a restart, the plain port redirects.

#![cfg(feature = "tls")]

mod support;

use std::time::Duration;

use support::{
    PATIENCE,
    frames::{self, RawH2},
    https::{Ended, H2Connection},
    spawn_app_with, spawn_https_app_with,
};

/// Shouts (ordinary events: every one is delivered) of about a KiB each.
async fn shout(app: &support::TestApp, text: &str) {
    let response = app
        .client()
        .post(app.url("/shouts"))
        .header("datastar-request", "true")
        .form(&[("text", format!("{text} {}", "x".repeat(1000)))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn pages_streams_and_actions_work_over_http2_and_over_http11() {
    // Arrange
    let app = spawn_https_app_with(|_| {}).await;
    let http1 = app
        .https
        .as_ref()
        .unwrap()
        .ca
        .client()
        .http1_only()
        .build()
        .unwrap();

    // Act: the page over each protocol, a stream over each.
    let page = app.get("/").await;
    let page_over_http1 = http1.get(app.url("/")).send().await.unwrap();
    let mut over_h2 = H2Connection::open(&app, 65_535).await;
    let mut tab_h2 = over_h2.open_tab().await;
    let signals_json = serde_json::json!({ "sessionId": uuid::Uuid::new_v4() }).to_string();
    let response = http1
        .get(app.url("/sse/notes"))
        .query(&[("datastar", signals_json)])
        .header("datastar-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let mut tab_http1 = live::testing::SseClient::new(response);
    tab_http1.read_initial_events().await;
    tab_h2.read_until("\"connected\":true").await;
    let published = app.publish_with_datastar("over TLS").await;

    // Assert
    assert_eq!(
        page.version(),
        reqwest::Version::HTTP_2,
        "HTTP/2 when offered"
    );
    assert_eq!(page_over_http1.version(), reqwest::Version::HTTP_11);
    for page in [&page, &page_over_http1] {
        assert_eq!(page.status(), 200);
        assert_eq!(
            page.headers()["strict-transport-security"],
            "max-age=31536000",
            "browsers are told to keep to HTTPS"
        );
        assert!(
            !page.headers().contains_key("connection"),
            "no connection header"
        );
    }
    assert_eq!(published.status(), 200);
    assert_eq!(published.version(), reqwest::Version::HTTP_2);
    tab_h2.read_until("over TLS").await;
    let note = tab_http1.next_event().await;
    assert!(note.data.contains("over TLS"), "{note:?}");
}

#[tokio::test]
async fn a_stream_whose_window_stays_shut_is_reset_within_the_send_timeout_and_its_neighbours_keep_flowing()
 {
    // Arrange: one connection, two tabs; the stalled one's window is 8 KiB and never given
    // back, as a tab that stops reading leaves it.
    // (Not a second: on a loaded machine the reading tab, which this test reads in turns, must
    // not look stalled itself.)
    let app = spawn_https_app_with(|settings| {
        settings.send_timeout = Duration::from_secs(3);
    })
    .await;
    let mut connection = H2Connection::open(&app, 8 * 1024).await;
    let mut stalled = connection.open_tab().await;
    let mut reading = connection.open_tab().await;
    reading.read_until("\"connected\":true").await;
    app.wait_for_streams("page/notes/*", 2).await;

    // Act: far more than 8 KiB of events for both.
    for n in 0..30 {
        shout(&app, &format!("before-{n}.")).await;
    }
    reading.read_until("before-29.").await;
    let ended = stalled.until_end(false, PATIENCE).await;

    // Assert: the stalled stream was reset alone, the other keeps flowing.
    assert_eq!(ended, Ended::Reset(h2::Reason::CANCEL), "{ended:?}");
    app.wait_for_streams("page/notes/*", 1).await;
    shout(&app, "after.").await;
    reading.read_until("after.").await;
    for n in 0..30 {
        assert!(
            reading.text.contains(&format!("before-{n}.")),
            "the reading tab got every shout"
        );
    }
    assert!(!connection.task.is_finished(), "the connection stays open");
}

#[tokio::test]
async fn a_stream_over_its_queue_limit_is_cut_off_alone() {
    // Arrange: a send timeout too long to matter; a queue limit the stalled stream will pass.
    let app = spawn_https_app_with(|settings| {
        settings.send_timeout = Duration::from_secs(3600);
        settings.queue_limit = 8;
    })
    .await;
    let mut connection = H2Connection::open(&app, 4 * 1024).await;
    let mut stalled = connection.open_tab().await;
    let mut reading = connection.open_tab().await;
    reading.read_until("\"connected\":true").await;
    app.wait_for_streams("page/notes/*", 2).await;

    // Act: one shout at a time, each read by the reading tab before the next, so that only the
    // stalled stream falls behind.
    for n in 0..40 {
        shout(&app, &format!("shout-{n}.")).await;
        reading.read_until(&format!("shout-{n}.")).await;
    }
    let ended = stalled.until_end(false, PATIENCE).await;

    // Assert
    assert_eq!(ended, Ended::Reset(h2::Reason::CANCEL), "{ended:?}");
    app.wait_for_streams("page/notes/*", 1).await;
    shout(&app, "after.").await;
    reading.read_until("after.").await;
}

#[tokio::test]
async fn the_stream_caps_count_http2_streams() {
    // Arrange
    let app = spawn_https_app_with(|settings| {
        settings.max_streams_per_client = 2;
    })
    .await;
    let mut connection = H2Connection::open(&app, 65_535).await;
    let mut first = connection.open_tab().await;
    let mut second = connection.open_tab().await;
    first.read_until("\"connected\":true").await;
    second.read_until("\"connected\":true").await;

    // Act: a third stream on the same connection.
    let mut third = connection.open_tab().await;
    let ended = third.until_end(true, PATIENCE).await;

    // Assert: refused with a message, the two others untouched.
    assert_eq!(ended, Ended::Finished, "a refusal is a short answer");
    assert!(
        third
            .text
            .contains("too many open streams from your address"),
        "{}",
        third.text
    );
    assert_eq!(app.streams("page/notes/*"), 2);
    app.publish_with_datastar("still live").await;
    first.read_until("still live").await;
    second.read_until("still live").await;
}

#[tokio::test]
async fn streams_over_http11_and_http2_count_together_against_the_client_cap() {
    // Arrange: one stream over HTTP/1.1 and one over HTTP/2, from one client, at a cap of two.
    let app = spawn_https_app_with(|settings| {
        settings.max_streams_per_client = 2;
    })
    .await;
    let http1 = (app.https.as_ref().unwrap().ca.client())
        .http1_only()
        .build()
        .unwrap();
    let open_over_http1 = || async {
        let signals = serde_json::json!({ "sessionId": uuid::Uuid::new_v4() }).to_string();
        let response = (http1.get(app.url("/sse/notes")))
            .query(&[("datastar", signals)])
            .header("datastar-request", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_11);
        response
    };
    let mut over_http1 = live::testing::SseClient::new(open_over_http1().await);
    over_http1.read_initial_events().await;
    let mut connection = H2Connection::open(&app, 65_535).await;
    let mut over_h2 = connection.open_tab().await;
    over_h2.read_until("\"connected\":true").await;

    // Act: a third stream over each protocol.
    let mut third_h2 = connection.open_tab().await;
    let ended = third_h2.until_end(true, PATIENCE).await;
    let third_http1 = open_over_http1().await.text().await.unwrap();

    // Assert: both refused: the client holds two streams, whichever protocol carries them.
    assert_eq!(ended, Ended::Finished, "a refusal is a short answer");
    for refusal in [&third_h2.text, &third_http1] {
        assert!(
            refusal.contains("too many open streams from your address"),
            "{refusal}"
        );
    }
    assert_eq!(app.streams("page/notes/*"), 2);
}

#[tokio::test]
async fn shutdown_says_goaway_and_ends_every_stream_with_the_restart_event() {
    // Arrange: two streams on one raw connection.
    let app = spawn_https_app_with(|_| {}).await;
    let mut raw = RawH2::connect(&app, &[]).await;
    for stream in [1, 3] {
        let signals = format!("%7B%22sessionId%22%3A%22{}%22%7D", uuid::Uuid::new_v4());
        let path = format!("/sse/notes?datastar={signals}");
        assert!(
            raw.get(stream, &path, &[("datastar-request", "true")])
                .await
        );
    }
    app.wait_for_streams("page/notes/*", 2).await;
    let mut app = app;

    // Act: shut down, while the client reads (and answers the PING that follows a GOAWAY, as
    // every client does).
    let shutdown = tokio::spawn(async move {
        app.shut_down().await.unwrap();
    });
    let mut last_data = std::collections::HashMap::new();
    let mut ended = Vec::new();
    let mut goaway = None;
    while let Some(frame) = raw.read(PATIENCE).await {
        match frame.kind {
            frames::DATA => {
                if !frame.payload.is_empty() {
                    let text = String::from_utf8_lossy(&frame.payload).into_owned();
                    last_data.insert(frame.stream, text);
                }
                if frame.flags & frames::END_STREAM != 0 {
                    ended.push(frame.stream);
                }
            }
            frames::GOAWAY => goaway = Some(frames::goaway_code(&frame)),
            frames::PING if frame.flags & frames::ACK == 0 => {
                raw.send(frames::PING, frames::ACK, 0, &frame.payload).await;
            }
            _ => {}
        }
    }
    tokio::time::timeout(PATIENCE, shutdown)
        .await
        .expect("the server stops")
        .unwrap();

    // Assert: each stream's last data is the restart event, then it ends; a GOAWAY.
    ended.sort();
    assert_eq!(ended, [1, 3], "both streams ended");
    for stream in [1, 3] {
        assert!(
            last_data[&stream].contains("_reconnecting"),
            "stream {stream} ended with the restart event: {:?}",
            last_data[&stream]
        );
    }
    assert_eq!(goaway, Some(0), "a GOAWAY with NO_ERROR");
}

#[tokio::test]
async fn an_idle_http2_connection_gets_a_goaway_after_the_keep_alive_timeout() {
    // Arrange
    let app = spawn_https_app_with(|settings| {
        settings.keep_alive_timeout = Duration::from_secs(1);
    })
    .await;

    // Act: a request, then nothing.
    let mut raw = RawH2::connect(&app, &[]).await;
    raw.get(1, "/healthz", &[]).await;
    let answered = raw
        .read_until(PATIENCE, |frame| {
            frame.stream == 1 && frame.flags & frames::END_STREAM != 0
        })
        .await;
    let goaway = raw
        .read_until(PATIENCE, |frame| frame.kind == frames::GOAWAY)
        .await;

    // Assert
    assert!(answered.is_some(), "the request was answered");
    let goaway = goaway.expect("a GOAWAY once idle");
    assert_eq!(frames::goaway_code(&goaway), 0);
}

#[tokio::test]
async fn a_connection_that_never_sends_its_preface_or_never_finishes_its_handshake_is_closed() {
    // Arrange
    let app = spawn_https_app_with(|settings| {
        settings.keep_alive_timeout = Duration::from_secs(1);
        settings.header_read_timeout = Duration::from_secs(2);
    })
    .await;

    // Act: a TLS handshake and no preface; a TCP connection that sends half a ClientHello.
    let mut silent = RawH2::handshake(&app).await;
    let mut half = tokio::net::TcpStream::connect(app.addr()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut half, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();

    // Assert: both closed by the server.
    let silent_closed = tokio::time::timeout(PATIENCE, async {
        while silent.read(PATIENCE).await.is_some() {}
    })
    .await;
    assert!(silent_closed.is_ok(), "the silent connection was closed");
    let mut buffer = [0u8; 64];
    let half_closed = tokio::time::timeout(
        PATIENCE,
        tokio::io::AsyncReadExt::read(&mut half, &mut buffer),
    )
    .await;
    assert!(
        matches!(half_closed, Ok(Ok(0)) | Ok(Err(_))),
        "the unfinished handshake was closed: {half_closed:?}"
    );
}

#[tokio::test]
async fn a_connection_that_leaves_pings_unanswered_is_closed_though_it_has_a_stream() {
    // Arrange: a PING every second, to be answered within a second.
    let app = spawn_https_app_with(|settings| {
        settings.keep_alive = Duration::from_secs(1);
        settings.send_timeout = Duration::from_secs(1);
    })
    .await;
    let mut raw = RawH2::connect(&app, &[]).await;
    let signals = format!("%7B%22sessionId%22%3A%22{}%22%7D", uuid::Uuid::new_v4());
    raw.get(
        1,
        &format!("/sse/notes?datastar={signals}"),
        &[("datastar-request", "true")],
    )
    .await;
    app.wait_for_streams("page/notes/*", 1).await;

    // Act: read everything, answer nothing.
    let mut pinged = false;
    let closed = tokio::time::timeout(PATIENCE, async {
        while let Some(frame) = raw.read(PATIENCE).await {
            pinged |= frame.kind == frames::PING;
        }
    })
    .await;

    // Assert
    assert!(pinged, "the server pinged");
    assert!(closed.is_ok(), "the connection was closed");
    app.wait_for_streams("page/notes/*", 0).await;
}

#[tokio::test]
async fn a_renewed_certificate_is_presented_to_new_connections_while_open_streams_keep_going() {
    // Arrange: a stream open on the first certificate.
    let app = spawn_https_app_with(|_| {}).await;
    let https = app.https.as_ref().unwrap();
    let mut tab = H2Connection::open(&app, 65_535).await.open_tab().await;
    tab.read_until("\"connected\":true").await;

    // Act: a renewal on disk, and a reload (what SIGHUP does); then a broken renewal.
    let renewed = https.ca.issue();
    renewed.write(&https.dir);
    let reloaded = app.tls().unwrap().reload().await;
    let after_renewal = presented(&app).await;
    std::fs::write(https.dir.join("key.pem"), https.ca.issue().key_pem).unwrap();
    let refused = app.tls().unwrap().reload().await;
    let after_refusal = presented(&app).await;
    app.publish_with_datastar("after the renewal").await;

    // Assert
    assert!(reloaded.is_ok(), "{reloaded:?}");
    assert_eq!(
        after_renewal, renewed.der,
        "new connections get the new pair"
    );
    assert!(
        refused.unwrap_err().to_string().contains("is not the key"),
        "a key that does not match is refused"
    );
    assert_eq!(after_refusal, renewed.der, "and the pair in use stays");
    assert_ne!(https.certificate.der, renewed.der);
    tab.read_until("after the renewal").await;
}

/// A renewal gone wrong: the key replaced by a named pipe (no writer ever comes), then by a
/// 1 GiB file. Before, the reload waited on the pipe on a runtime thread — `/healthz` stopped
/// answering and the shutdown never completed — and read the big file whole.
#[cfg(unix)]
#[tokio::test]
async fn a_reload_refuses_a_key_that_is_a_pipe_or_huge_while_the_server_answers_and_stops_promptly()
{
    // Arrange: the key file replaced by a pipe. (A pipe opened for reading and writing at
    // once does not wait: after a while the watchdog does that and closes it, ending a read
    // that waits on it, so that the code before the fix fails this test instead of hanging.)
    let mut app = spawn_https_app_with(|_| {}).await;
    let https = app.https.as_ref().unwrap();
    let key = https.dir.join("key.pem");
    std::fs::remove_file(&key).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let fifo = key.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo);
    });
    let tls = app.tls().cloned().unwrap();

    // Act: the reload SIGHUP runs, on the server's runtime, while /healthz is asked.
    let reload = tokio::spawn(async move { tls.reload().await });
    let slowest_during_pipe = slowest_health_check(&app).await;
    let pipe_refused = tokio::time::timeout(PATIENCE, reload)
        .await
        .unwrap()
        .unwrap();
    let after_pipe = presented(&app).await;

    std::fs::remove_file(&key).unwrap();
    let huge = std::fs::File::create(&key).unwrap();
    huge.set_len(1 << 30).unwrap(); // sparse: 1 GiB to read, nothing on disk
    let tls = app.tls().cloned().unwrap();
    let reload = tokio::spawn(async move { tls.reload().await });
    let slowest_during_huge = slowest_health_check(&app).await;
    let huge_refused = tokio::time::timeout(PATIENCE, reload)
        .await
        .unwrap()
        .unwrap();
    let after_huge = presented(&app).await;

    let stopping = std::time::Instant::now();
    app.shut_down().await.unwrap();
    let stopped_in = stopping.elapsed();

    // Assert
    eprintln!(
        "slowest /healthz: {slowest_during_pipe:?} (pipe), {slowest_during_huge:?} (1 GiB); \
         shutdown in {stopped_in:?}"
    );
    let pipe_refused = pipe_refused.unwrap_err().to_string();
    assert!(pipe_refused.contains("invalid TLS_KEY="), "{pipe_refused}");
    assert!(pipe_refused.contains("named pipe"), "{pipe_refused}");
    let huge_refused = huge_refused.unwrap_err().to_string();
    assert!(huge_refused.contains("larger than"), "{huge_refused}");
    let first = &app.https.as_ref().unwrap().certificate.der;
    assert_eq!(&after_pipe, first, "the pair in use stays");
    assert_eq!(&after_huge, first, "the pair in use stays");
    for slowest in [slowest_during_pipe, slowest_during_huge] {
        assert!(
            slowest < Duration::from_secs(1),
            "/healthz took {slowest:?}"
        );
    }
    assert!(
        stopped_in < Duration::from_secs(2),
        "shutdown took {stopped_in:?}"
    );
}

/// The slowest of ten `/healthz` over a second, each on a new connection (a new handshake).
async fn slowest_health_check(app: &support::TestApp) -> Duration {
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = std::time::Instant::now();
        let client = app.https.as_ref().unwrap().ca.client().build().unwrap();
        let answered = tokio::time::timeout(PATIENCE, client.get(app.url("/healthz")).send()).await;
        let took = started.elapsed();
        assert_eq!(answered.expect("an answer").unwrap().status(), 200);
        slowest = slowest.max(took);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slowest
}

/// The certificate a new connection is presented.
async fn presented(app: &support::TestApp) -> rustls::pki_types::CertificateDer<'static> {
    let tcp = tokio::net::TcpStream::connect(app.addr()).await.unwrap();
    let tls = app
        .https
        .as_ref()
        .unwrap()
        .ca
        .connector(&[b"http/1.1"])
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test]
async fn settings_that_cannot_serve_https_are_refused_at_start() {
    let https = support::https::Https::new();
    let (cert, key) = https.certificate.write(&https.dir);
    let other = https.dir.join("other.pem");
    std::fs::write(&other, https.ca.issue().key_pem).unwrap();
    let missing = https.dir.join("missing.pem");
    for (cert, key, expected) in [
        (Some(&cert), None, "invalid TLS_CERT="),
        (None, Some(&key), "invalid TLS_KEY="),
        (Some(&missing), Some(&key), "cannot read it"),
        (
            Some(&cert),
            Some(&other),
            "is not the key of the certificate",
        ),
    ] {
        let settings = live::Settings {
            port: 0,
            tls_cert: cert.cloned(),
            tls_key: key.cloned(),
            ..live::Settings::default()
        };
        let live = support::notes::live(&settings);
        let error = live::Server::bind(&settings, live)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{expected}: {error}");
    }
}

/// The app over HTTPS, and the plain port that redirects to it.
async fn https_app_with_redirect_port() -> (support::TestApp, u16) {
    let redirect_port = live::testing::free_port();
    let app = support::spawn_https_app_with(|settings| {
        settings.http_redirect_port = Some(redirect_port);
    })
    .await;
    (app, redirect_port)
}

#[tokio::test]
async fn the_plain_port_redirects_every_request_to_https() {
    // Arrange
    let (app, redirect_port) = https_app_with_redirect_port().await;
    let port = app.addr().port();

    // Act
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = client
        .post(format!("http://127.0.0.1:{redirect_port}/notes?x=1"))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(answer.status(), 308);
    assert_eq!(
        answer.headers()["location"],
        format!("https://127.0.0.1:{port}/notes?x=1").as_str()
    );
}

/// The redirect's `Location` is built from the client's `Host`: a host with userinfo led to
/// another site (`good.example@evil.example` to `https://evil.example/…`), and a port out of
/// range was taken as it came. Over a real socket, as a browser or a crafted link sends them.
#[tokio::test]
async fn the_plain_port_refuses_a_host_that_would_redirect_elsewhere() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Arrange
    let (app, redirect_port) = https_app_with_redirect_port().await;
    let port = app.addr().port();
    let answer = |host: &'static str| async move {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", redirect_port))
            .await
            .unwrap();
        let request = format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(PATIENCE, tcp.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        answer
    };

    // Act and assert
    for host in [
        "good.example@evil.example",
        "good.example:99999",
        "evil_example.org",
        "127.1",
    ] {
        let answer = answer(host).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{host}: {answer}");
        assert!(
            !answer.to_lowercase().contains("location:"),
            "{host}: {answer}"
        );
    }
    let fine = answer("good.example:80").await;
    assert!(fine.starts_with("HTTP/1.1 308"), "{fine}");
    assert!(
        fine.contains(&format!("location: https://good.example:{port}/x")),
        "{fine}"
    );
}

#[tokio::test]
async fn a_plain_app_still_speaks_plain_http11() {
    let app = spawn_app_with(|_| {}).await;
    let page = app.get("/").await;
    assert_eq!(page.version(), reqwest::Version::HTTP_11);
    assert!(!page.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn shutdown_does_not_wait_for_an_http2_client_that_reads_nothing() {
    // Arrange: a stream on a connection whose client then reads nothing, nor answers.
    let mut app = spawn_https_app_with(|_| {}).await;
    let mut raw = RawH2::connect(&app, &[]).await;
    let signals = format!("%7B%22sessionId%22%3A%22{}%22%7D", uuid::Uuid::new_v4());
    raw.get(
        1,
        &format!("/sse/notes?datastar={signals}"),
        &[("datastar-request", "true")],
    )
    .await;
    app.wait_for_streams("page/notes/*", 1).await;

    // Act / Assert: shut down well within the shutdown timeout (15 s).
    let started = std::time::Instant::now();
    app.shut_down().await.unwrap();
    println!(
        "shutdown with a silent HTTP/2 client took {:?}",
        started.elapsed()
    );
    drop(raw);
}

mod pairs {
    //! Reading and checking a certificate and key, through `Tls::load` and `Tls::reload`.

    use std::path::{Path, PathBuf};

    use live::{testing::https::TestCa, tls::Tls};

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("live-certs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn load(cert: &Path, key: &Path) -> Result<Tls, live::tls::TlsError> {
        Tls::load(cert.to_owned(), key.to_owned())
    }

    #[test]
    fn a_matching_pair_is_presented() {
        let ca = TestCa::new();
        let issued = ca.issue();
        let (cert, key) = issued.write(&dir());
        let tls = load(&cert, &key).unwrap();
        assert_eq!(tls.pair().unwrap().certificate(), issued.der);
    }

    #[test]
    fn pairs_that_cannot_work_are_refused_naming_the_setting_and_the_file() {
        let ca = TestCa::new();
        let dir = dir();
        let (cert, key) = ca.issue().write(&dir);
        let other_key = dir.join("other-key.pem");
        std::fs::write(&other_key, ca.issue().key_pem).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let missing = dir.join("missing.pem");

        for (cert, key, expected, named) in [
            (&missing, &key, "invalid TLS_CERT=", &missing),
            (&cert, &missing, "invalid TLS_KEY=", &missing),
            (&garbage, &key, "invalid TLS_CERT=", &garbage),
            (&cert, &garbage, "invalid TLS_KEY=", &garbage),
            // A certificate where the key should be.
            (&cert, &cert, "invalid TLS_KEY=", &cert),
            (
                &cert,
                &other_key,
                "is not the key of the certificate",
                &other_key,
            ),
        ] {
            let error = load(cert, key).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
            assert!(
                error.contains(&format!("{named:?}")),
                "names the file: {error}"
            );
        }
    }

    #[tokio::test]
    async fn a_reload_takes_a_good_pair_and_refuses_a_bad_one_keeping_what_it_has() {
        let ca = TestCa::new();
        let dir = dir();
        let first = ca.issue();
        let (cert, key) = first.write(&dir);
        let tls = load(&cert, &key).unwrap();

        // A renewal: both files replaced.
        let second = ca.issue();
        second.write(&dir);
        tls.reload().await.unwrap();
        assert_eq!(tls.pair().unwrap().certificate(), second.der);

        // Half a renewal: the certificate replaced, the key not yet.
        std::fs::write(&cert, ca.issue().cert_pem).unwrap();
        let error = tls.reload().await.unwrap_err().to_string();
        assert!(error.contains("is not the key"), "{error}");
        assert_eq!(
            tls.pair().unwrap().certificate(),
            second.der,
            "the pair in use stays"
        );
    }
}

mod handover {
    //! A restart on a kept socket, over HTTPS: what the socket unit does in production (the
    //! socket outlives the process), with HTTP/2 tabs and pages requested without a pause.

    use std::{
        net::TcpListener,
        sync::{
            Arc,
            atomic::{AtomicBool, AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use live::{Server, Settings, testing::SseClient};
    use tokio::sync::oneshot;

    use super::support::{PATIENCE, https::Https, notes, raise_open_files_limit};

    const TABS: usize = 40;

    #[derive(Default)]
    struct Seen {
        failed: AtomicUsize,
        /// Tabs whose stream ended with the restart event.
        told: AtomicUsize,
        /// Tabs live again after the restart.
        back: AtomicUsize,
        /// Tabs that saw the note sent after the restart.
        noted: AtomicUsize,
        restarted: AtomicBool,
        stop: AtomicBool,
    }

    /// Serves the notes app with `settings` on a clone of `socket` until told to stop.
    fn serve(
        socket: &TcpListener,
        settings: &Settings,
    ) -> (
        live::Live,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let live = notes::live(settings);
        let server =
            Server::from_listener(socket.try_clone().unwrap(), settings, live.clone()).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(notes::router(live.clone()), async {
            let _ = stopped.await;
        }));
        (live, stop, task)
    }

    /// A tab: holds the notes stream over HTTP/2, reconnecting when it ends.
    async fn tab(client: reqwest::Client, url: String, seen: Arc<Seen>) {
        let mut counted_back = false;
        let mut counted_note = false;
        while !seen.stop.load(Ordering::Relaxed) {
            let after_restart = seen.restarted.load(Ordering::Relaxed);
            let signals = serde_json::json!({ "sessionId": uuid::Uuid::new_v4() }).to_string();
            let response = client
                .get(&url)
                .query(&[("datastar", signals)])
                .header("datastar-request", "true")
                .send()
                .await;
            let response = match response {
                Ok(response) if response.status() == 200 => response,
                _ => {
                    seen.failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let mut events = SseClient::new(response);
            let mut last = String::new();
            while let Some(event) = events.try_next_event(PATIENCE).await {
                if after_restart && !counted_back && event.data.contains("\"connected\":true") {
                    counted_back = true;
                    seen.back.fetch_add(1, Ordering::Relaxed);
                }
                if after_restart && !counted_note && event.data.contains("after the restart") {
                    counted_note = true;
                    seen.noted.fetch_add(1, Ordering::Relaxed);
                }
                last = event.data;
            }
            if last.contains("_reconnecting") {
                seen.told.fetch_add(1, Ordering::Relaxed);
            }
            // As Datastar does: after the `retry` the restart event asked for.
            tokio::time::sleep(live::events::RECONNECT_AFTER_RESTART).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_on_a_kept_socket_over_https_fails_no_request() {
        // Arrange: the kept socket, the first server on it, tabs and a steady load of pages.
        raise_open_files_limit();
        let https = Https::new();
        let (cert, key) = https.certificate.write(&https.dir);
        let socket = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let settings = Settings {
            tls_cert: Some(cert),
            tls_key: Some(key),
            ..Settings::default()
        };
        let (_, stop_first, first) = serve(&socket, &settings);
        let seen = Arc::new(Seen::default());
        let url = format!("https://{addr}/sse/notes");
        // Four browsers, each with its tabs on one HTTP/2 connection.
        let browsers: Vec<reqwest::Client> =
            (0..4).map(|_| https.ca.client().build().unwrap()).collect();
        for n in 0..TABS {
            let client = browsers[n % browsers.len()].clone();
            tokio::spawn(tab(client, url.clone(), Arc::clone(&seen)));
        }
        let pages = {
            let seen = Arc::clone(&seen);
            // A new connection for every page: TLS handshakes during the restart too.
            let client = https.ca.client().pool_max_idle_per_host(0).build().unwrap();
            let url = format!("https://{addr}/");
            tokio::spawn(async move {
                let mut served = 0;
                while !seen.stop.load(Ordering::Relaxed) {
                    match client.get(&url).send().await {
                        Ok(page) if page.status() == 200 => served += 1,
                        _ => {
                            seen.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                served
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;

        // Act: stop the first server; once it has returned, start the next on the same socket.
        seen.restarted.store(true, Ordering::Relaxed);
        let _ = stop_first.send(());
        tokio::time::timeout(PATIENCE, first)
            .await
            .expect("the first server stops")
            .unwrap()
            .unwrap();
        let (second, _stop_second, _task) = serve(&socket, &settings);
        live::testing::wait_for_streams(&second.registry, "page/notes/*", TABS).await;
        second
            .registry
            .publish_latest(&notes::NOTE, &notes::pages(), |number| {
                let note = notes::Note {
                    text: "after the restart".into(),
                    number,
                };
                let patch = notes::patch(&second, Some(&note))?;
                Ok::<_, live::Error>((note, patch))
            })
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while seen.noted.load(Ordering::Relaxed) < TABS && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        seen.stop.store(true, Ordering::Relaxed);
        let served = pages.await.unwrap();

        // Assert
        let failed = seen.failed.load(Ordering::Relaxed);
        println!(
            "restart over HTTPS: {failed} failed requests, {served} pages served, {} of {TABS} \
             tabs told, {} back, {} got the next note",
            seen.told.load(Ordering::Relaxed),
            seen.back.load(Ordering::Relaxed),
            seen.noted.load(Ordering::Relaxed),
        );
        assert_eq!(failed, 0, "no request failed");
        assert_eq!(
            seen.told.load(Ordering::Relaxed),
            TABS,
            "every tab was told"
        );
        assert_eq!(
            seen.back.load(Ordering::Relaxed),
            TABS,
            "every tab came back"
        );
        assert_eq!(seen.noted.load(Ordering::Relaxed), TABS, "and is live");
    }
}
