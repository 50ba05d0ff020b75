//! A hostile internet: connections that never finish their headers, connection floods,
//! cross-site posts, malformed forms — and the app must keep answering everyone else.

mod support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use support::{
    PATIENCE, elements, raise_open_files_limit, reply_events, spawn_app, spawn_app_with,
};

/// Reads until the server closes the connection (an orderly end or a reset).
async fn until_closed(stream: &mut TcpStream) {
    let mut buffer = [0; 4096];
    while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {}
}

/// One `GET` over a fresh connection; the response head and body as text.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_slow_and_idle_connections_are_closed_on_time_and_the_app_keeps_answering() {
    // Arrange: short timeouts, a live stream that must survive, and 2 000 bad connections —
    // a third that send nothing, a third that trickle a header byte every 300 ms, a third
    // that sit idle after one request.
    raise_open_files_limit();
    const EACH: usize = 667;
    let app = spawn_app_with(|config| {
        config.header_read_timeout = Duration::from_secs(2);
        config.keep_alive_timeout = Duration::from_secs(1);
        config.keep_alive = Duration::from_secs(1); // the stream goes quiet longer than that
        config.max_connections_per_client = 4 * EACH; // every client is 127.0.0.1 here
    })
    .await;
    let mut live = app.open_live_stream().await;
    let closed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    for kind in 0..3 {
        for _ in 0..EACH {
            let addr = app.addr;
            let closed = Arc::clone(&closed);
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                match kind {
                    0 => until_closed(&mut stream).await,
                    1 => {
                        let head = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ");
                        for byte in head.bytes().cycle() {
                            if stream.write_all(&[byte]).await.is_err() {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                    }
                    _ => {
                        let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
                        stream.write_all(request.as_bytes()).await.unwrap();
                        until_closed(&mut stream).await;
                    }
                }
                closed.fetch_add(1, Ordering::Relaxed);
            });
        }
    }

    // Act and assert: the app answers while they hang on, and closes every one of them.
    let health = get(app.addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    while closed.load(Ordering::Relaxed) < 3 * EACH {
        assert!(
            start.elapsed() < PATIENCE * 2,
            "{} closed",
            closed.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "{} bad connections closed in {:?}",
        3 * EACH,
        start.elapsed()
    );

    // The stream, quiet for longer than both timeouts, is still live.
    app.publish_with_datastar("Ada").await;
    let note = loop {
        let event = live.next_event().await;
        if event.event == "datastar-patch-elements" {
            break elements(&event);
        }
    };
    assert!(note.contains("Ada"), "{note}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout() {
    // The header-read timeout is far away: only the keep-alive timeout can close it this soon.
    let app = spawn_app_with(|config| {
        config.header_read_timeout = Duration::from_secs(120);
        config.keep_alive_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    stream.write_all(request.as_bytes()).await.unwrap();

    let start = Instant::now();
    tokio::time::timeout(PATIENCE, until_closed(&mut stream))
        .await
        .expect("closed long before the header-read timeout");
    eprintln!(
        "idle connection closed {:?} after its request",
        start.elapsed()
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_get_a_503_at_once_and_the_app_recovers() {
    let app = spawn_app_with(|config| {
        config.max_connections = Some(20);
        config.header_read_timeout = Duration::from_secs(60);
        config.keep_alive_timeout = Duration::from_secs(60);
    })
    .await;
    let mut hogs = Vec::new();
    for _ in 0..20 {
        hogs.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let refused = get(app.addr, "/healthz").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after: 5"), "{refused}");
    assert!(started.elapsed() < PATIENCE, "answered, not left waiting");

    hogs.truncate(10);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let health = get(app.addr, "/healthz").await;
        if health.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {health}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cross_site_posts_are_refused_visibly_and_broadcast_nothing() {
    let app = spawn_app().await;
    let mut tab = app.open_live_stream().await;
    let cross_site = |request: reqwest::RequestBuilder| {
        request
            .header("origin", "https://evil.example")
            .header("sec-fetch-site", "cross-site")
            .form(&[("text", "Mallory")])
    };

    // A form on another site, posting the plain way.
    let plain = cross_site(app.client.post(app.url("/notes")))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 403);
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        plain
            .text()
            .await
            .unwrap()
            .contains("sent from another site")
    );

    // The same through Datastar (a misconfigured proxy would cause this): told, not silent.
    let datastar = cross_site(
        app.client
            .post(app.url("/notes"))
            .header("datastar-request", "true"),
    )
    .send()
    .await
    .unwrap();
    let reply = reply_events(datastar).await;
    assert!(elements(&reply[0]).contains(r#"id="notice""#), "{reply:?}");
    assert!(elements(&reply[0]).contains("sent from another site"));

    // Nothing was broadcast; same-origin posts still work, with and without `Origin`.
    let same_origin = app
        .client
        .post(app.url("/notes"))
        .header("origin", format!("http://{}", app.addr))
        .header("sec-fetch-site", "same-origin")
        .form(&[("text", "Ada")])
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 303);
    let next = elements(&tab.next_event().await);
    assert!(next.contains("Ada") && !next.contains("Mallory"), "{next}");
}

#[tokio::test]
async fn a_form_with_a_field_twice_gets_a_page_or_a_message_not_a_bare_422() {
    let app = spawn_app().await;
    let twice = |request: reqwest::RequestBuilder| {
        request
            .header("content-type", "application/x-www-form-urlencoded")
            .body("text=Ada&text=Grace")
    };

    let plain = twice(app.client.post(app.url("/notes")))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 422);
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = plain.text().await.unwrap();
    assert!(page.contains("could not be read"), "{page}");

    let datastar = twice(
        app.client
            .post(app.url("/notes"))
            .header("datastar-request", "true"),
    )
    .send()
    .await
    .unwrap();
    let reply = reply_events(datastar).await;
    let shown = elements(&reply[0]);
    assert!(
        shown.contains(r#"id="notice""#) && shown.contains("could not be read"),
        "{shown}"
    );
}

#[tokio::test]
async fn replies_sent_while_draining_say_the_connection_closes() {
    let mut app = spawn_app().await;
    // A post whose body is only half sent when the shutdown begins.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let body = "text=Ada";
    let head = format!(
        "POST /notes HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\ntext=",
        app.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await; // the server is reading the body

    let stopping = tokio::spawn(async move { app.shut_down().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(b"Ada").await.unwrap();

    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("answered")
        .unwrap();
    let response = String::from_utf8_lossy(&response).to_lowercase();
    assert!(response.starts_with("http/1.1 303"), "{response}");
    assert!(response.contains("connection: close"), "{response}");
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_connection_accepted_just_before_shutdown_still_gets_its_answer() {
    let mut app = spawn_app().await;
    // Connected, and accepted by the server, with the request still on its way (a restart
    // under load has many of these) — and one that never sends anything.
    let mut on_its_way = TcpStream::connect(app.addr).await.unwrap();
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let stopping = tokio::spawn(async move { app.shut_down().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let request = "GET / HTTP/1.1\r\nHost: app\r\n\r\n";
    on_its_way.write_all(request.as_bytes()).await.unwrap();

    // Answered, and told the connection closes; the silent one is closed after a moment.
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, on_its_way.read_to_end(&mut response))
        .await
        .expect("answered")
        .unwrap();
    let response = String::from_utf8_lossy(&response).to_lowercase();
    assert!(response.starts_with("http/1.1 200"), "{response:?}");
    assert!(response.contains("connection: close"), "{response}");
    let waited = Instant::now();
    tokio::time::timeout(PATIENCE, until_closed(&mut silent))
        .await
        .expect("the silent connection is closed");
    eprintln!("silent connection closed {:?} later", waited.elapsed());
    stopping.await.unwrap().unwrap();
}
