//! The app behind the proxies the project ships configurations for (`tests/ops/proxy.rs`: the real
//! `caddy` and `nginx` with the shipped `deploy/Caddyfile` and `deploy/nginx.conf`).
//!
//! Each proxy is checked for what an app behind it needs: the page and its stream, a greet
//! reaching the stream, CSRF (same-origin posts pass, cross-site ones get a visible 403), the
//! client's address (`MAX_STREAMS_PER_CLIENT` counts browsers, not the proxy), a quiet stream
//! outliving the proxy's default read timeout, a restart on a kept socket failing nothing, and
//! a gzipped stream passing through compressed once, each event at once.
//! They need `caddy` and `nginx`, which a machine may lack: each is `#[ignore]`d with its reason,
//! so that a plain `cargo test` counts it as ignored rather than passed, and runs with
//! `cargo test --all-features --test ops -- --ignored` (`.ci/run` installs both and runs them),
//! where a missing proxy fails it.

#![cfg(all(unix, feature = "tls"))]

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use live::testing::{PATIENCE, SseClient};

use crate::{
    helpers::{TestApp, spawn_app_on},
    proxy::{Kind, Proxy},
};

/// The app behind a proxy: the client's address from `X-Forwarded-For`, two streams per client.
async fn app_behind_a_proxy(listener: Option<std::net::TcpListener>) -> TestApp {
    spawn_app_on(listener, |settings| {
        settings.client_ip_header = Some("x-forwarded-for".parse().unwrap());
        settings.max_streams_per_client = 2;
    })
    .await
}

/// The page, its stream, a greet, CSRF and the client's address, through `kind`.
async fn what_an_app_needs_passes_through(kind: Kind) {
    // Arrange
    let app = app_behind_a_proxy(None).await;
    let proxy = Proxy::start(kind, app.addr()).await;
    let browser = proxy.client(None);

    // The page, over HTTP/2, and its stream, live.
    let page = browser.get(proxy.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200, "{kind:?}");
    assert_eq!(page.version(), reqwest::Version::HTTP_2, "{kind:?}");
    let mut tab = SseClient::new(proxy.open_tab(&browser).await);
    tab.read_initial_events().await;

    // A greet reaches the stream.
    let greeted = proxy.greet(&browser, "Ada").await;
    assert_eq!(greeted.status(), 200, "{kind:?}: a same-origin post passes");
    let greeting = tab.next_event().await;
    assert!(greeting.data.contains("Ada"), "{kind:?}: {greeting:?}");

    // A cross-site post is refused, visibly, and changes nothing.
    let forged = browser
        .post(proxy.url("/api/greet"))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&[("name", "Mallory")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "{kind:?}");
    let page = forged.text().await.unwrap();
    assert!(
        page.to_lowercase().contains("another site"),
        "{kind:?}: {page}"
    );
    let page = browser
        .get(proxy.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("Mallory") && page.contains("Ada"),
        "{kind:?}"
    );

    // Two browsers (two client addresses) each get their own two streams.
    let (one, two) = (
        proxy.client(Some([127, 0, 0, 2].into())),
        proxy.client(Some([127, 0, 0, 3].into())),
    );
    let mut held = Vec::new();
    for browser in [&one, &two] {
        for _ in 0..2 {
            let mut tab = SseClient::new(proxy.open_tab(browser).await);
            tab.read_initial_events().await;
            held.push(tab);
        }
    }
    let third = proxy.open_tab(&one).await.text().await.unwrap();
    assert!(
        third.contains("too many open streams from your address"),
        "{kind:?}: the third stream of one browser is refused: {third}"
    );
    app.wait_for_streams("page/home/*", 5).await;
}

/// What `gzip -dc` (a standard inflater) makes of `bytes`, and whether they were a whole gzip
/// member (its trailer checked). A member cut short still decodes as far as it goes.
fn gunzip(bytes: &[u8]) -> (String, bool) {
    use std::io::Write;
    let mut gzip = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gzip runs");
    gzip.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = gzip.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.success(),
    )
}

/// A stream asked for gzipped, through `kind` with its shipped configuration: the app's gzip
/// passes through as it is (compressed once: one inflater gives the events back, not another
/// gzip member), each event decodable the moment it is sent, and the member whole, trailer and
/// all, when the app ends the stream.
async fn a_gzipped_stream_passes_through_compressed_once(kind: Kind) {
    let mut app = app_behind_a_proxy(None).await;
    let proxy = Proxy::start(kind, app.addr()).await;
    let browser = proxy.client(None);
    let signals = serde_json::json!({ "sessionId": uuid::Uuid::new_v4() }).to_string();
    let mut stream = live::testing::stream_get(&browser, &proxy.url("/sse/home"), Some(&signals))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200, "{kind:?}");
    assert_eq!(stream.headers()["content-encoding"], "gzip", "{kind:?}");
    let mut wire = Vec::new();
    let mut read_until = async |wanted: &str, wire: &mut Vec<u8>| {
        let deadline = Instant::now() + PATIENCE;
        while !gunzip(wire).0.contains(wanted) {
            assert!(Instant::now() < deadline, "{kind:?}: no {wanted:?} yet");
            let chunk = tokio::time::timeout(PATIENCE, stream.chunk()).await;
            let chunk = chunk.expect("the stream sends").expect("the stream reads");
            wire.extend_from_slice(&chunk.expect("the stream is open"));
        }
    };
    read_until("\"connected\":true", &mut wire).await;
    assert_eq!(proxy.greet(&browser, "Ada").await.status(), 200, "{kind:?}");
    read_until("Ada", &mut wire).await;
    app.shut_down().await.unwrap();
    while let Some(chunk) = tokio::time::timeout(PATIENCE, stream.chunk())
        .await
        .expect("the stream ends")
        .expect("the stream reads")
    {
        wire.extend_from_slice(&chunk);
    }
    let (events, whole) = gunzip(&wire);
    assert!(whole, "{kind:?}: the gzip member ends whole: {events}");
    assert!(events.starts_with("event: "), "{kind:?}: {events}");
    assert_eq!(
        events.matches("<strong>Ada</strong>").count(),
        1,
        "{kind:?}: {events}"
    );
}

#[tokio::test]
#[ignore = "needs caddy (apt-get install caddy); run with -- --ignored, as .ci/run does"]
async fn through_caddy_a_gzipped_stream_passes_compressed_once() {
    a_gzipped_stream_passes_through_compressed_once(Kind::Caddy).await;
}

#[tokio::test]
#[ignore = "needs nginx (apt-get install nginx); run with -- --ignored, as .ci/run does"]
async fn through_nginx_a_gzipped_stream_passes_compressed_once() {
    a_gzipped_stream_passes_through_compressed_once(Kind::Nginx).await;
}

#[tokio::test]
#[ignore = "needs caddy (apt-get install caddy); run with -- --ignored, as .ci/run does"]
async fn through_caddy_the_page_its_stream_csrf_and_client_addresses_work() {
    what_an_app_needs_passes_through(Kind::Caddy).await;
}

#[tokio::test]
#[ignore = "needs nginx (apt-get install nginx); run with -- --ignored, as .ci/run does"]
async fn through_nginx_the_page_its_stream_csrf_and_client_addresses_work() {
    what_an_app_needs_passes_through(Kind::Nginx).await;
}

/// A stream with nothing to say for longer than the proxy's default read timeout (nginx's
/// 60 s) is still open, and still gets what comes next: the app's keep-alive comments and the
/// shipped timeouts keep it.
async fn a_quiet_stream_outlives_the_default_read_timeout(kind: Kind) {
    let app = app_behind_a_proxy(None).await;
    let proxy = Proxy::start(kind, app.addr()).await;
    let browser = proxy.client(None);
    let mut tab = SseClient::new(proxy.open_tab(&browser).await);
    tab.read_initial_events().await;

    tokio::time::sleep(Duration::from_secs(65)).await;
    proxy.greet(&browser, "Later").await;

    let mut seen = Vec::new();
    while !seen.iter().any(|data: &String| data.contains("Later")) {
        let event = tab
            .try_next_event(PATIENCE)
            .await
            .unwrap_or_else(|| panic!("{kind:?}: the stream ended or went silent: {seen:?}"));
        seen.push(event.data);
    }
}

#[tokio::test]
#[ignore = "needs caddy (apt-get install caddy); run with -- --ignored, as .ci/run does"]
async fn through_caddy_a_quiet_stream_outlives_the_default_read_timeout() {
    a_quiet_stream_outlives_the_default_read_timeout(Kind::Caddy).await;
}

#[tokio::test]
#[ignore = "needs nginx (apt-get install nginx); run with -- --ignored, as .ci/run does"]
async fn through_nginx_a_quiet_stream_outlives_the_default_read_timeout() {
    a_quiet_stream_outlives_the_default_read_timeout(Kind::Nginx).await;
}

/// A restart on a kept socket, behind the proxy: pages, greets and tabs through the proxy
/// without a pause, the app stopped and the next one started on the same socket. Nothing
/// fails, and every tab comes back.
async fn a_restart_behind_the_proxy_fails_no_request(kind: Kind) {
    // Arrange
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = socket.local_addr().unwrap();
    let mut first = app_behind_a_proxy(Some(socket.try_clone().unwrap())).await;
    let proxy = Arc::new(Proxy::start(kind, upstream).await);
    // What failed, said as "what: why", so that a failure names its request.
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let back = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let restarted = Arc::new(AtomicBool::new(false));
    const TABS: usize = 20;
    let mut tasks = Vec::new();
    for n in 0..TABS {
        // Ten browsers (client addresses), two tabs each.
        let browser = proxy.client(Some([127, 0, 1, (n / 2) as u8 + 1].into()));
        let (proxy, failed, back, stop, restarted) = (
            Arc::clone(&proxy),
            Arc::clone(&failed),
            Arc::clone(&back),
            Arc::clone(&stop),
            Arc::clone(&restarted),
        );
        tasks.push(tokio::spawn(async move {
            let mut counted = false;
            while !stop.load(Ordering::Relaxed) {
                let after = restarted.load(Ordering::Relaxed);
                let response = proxy.open_tab(&browser).await;
                if response.status() != 200 {
                    let status = response.status();
                    failed.lock().unwrap().push(format!("tab {n}: {status}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let mut tab = SseClient::new(response);
                while let Some(event) = tab.try_next_event(Duration::from_secs(60)).await {
                    if after && !counted && event.data.contains("\"connected\":true") {
                        counted = true;
                        back.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(live::events::RECONNECT_AFTER_RESTART).await;
            }
        }));
    }
    let load = {
        let (proxy, failed, stop) = (Arc::clone(&proxy), Arc::clone(&failed), Arc::clone(&stop));
        tokio::spawn(async move {
            let browser = proxy.client(None);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let outcome = match n % 5 {
                    0 => Ok(proxy.greet(&browser, &format!("g{n}")).await),
                    _ => browser.get(proxy.url("/")).send().await,
                };
                let what = if n % 5 == 0 { "greet" } else { "page" };
                match outcome {
                    Ok(response) if response.status() == 200 => {}
                    Ok(response) => {
                        let status = response.status();
                        let body = response.text().await.unwrap_or_default();
                        failed
                            .lock()
                            .unwrap()
                            .push(format!("{what} {n}: {status} {body}"));
                    }
                    Err(error) => failed.lock().unwrap().push(format!("{what} {n}: {error}")),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            n
        })
    };
    first.wait_for_streams("page/home/*", TABS).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Act: stop the app; once it has, the next on the same socket.
    restarted.store(true, Ordering::Relaxed);
    first.shut_down().await.unwrap();
    let second = app_behind_a_proxy(Some(socket.try_clone().unwrap())).await;
    let deadline = Instant::now() + PATIENCE;
    while back.load(Ordering::Relaxed) < TABS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let requests = load.await.unwrap();

    // Assert
    let failed = failed.lock().unwrap().clone();
    let back = back.load(Ordering::Relaxed);
    println!(
        "{kind:?}: restart behind the proxy: {} failed of {requests} requests; {back} of {TABS} tabs back",
        failed.len()
    );
    assert_eq!(failed, Vec::<String>::new(), "{kind:?}: no request failed");
    assert_eq!(back, TABS, "{kind:?}: every tab came back");
    drop(second);
}

#[tokio::test]
#[ignore = "needs caddy (apt-get install caddy); run with -- --ignored, as .ci/run does"]
async fn through_caddy_a_restart_on_a_kept_socket_fails_no_request() {
    a_restart_behind_the_proxy_fails_no_request(Kind::Caddy).await;
}

#[tokio::test]
#[ignore = "needs nginx (apt-get install nginx); run with -- --ignored, as .ci/run does"]
async fn through_nginx_a_restart_on_a_kept_socket_fails_no_request() {
    a_restart_behind_the_proxy_fails_no_request(Kind::Nginx).await;
}

/// Dropping a proxy stops every process it started, as a failing test does: nginx's workers
/// outlived a master killed alone (34 of them, listening on 0.0.0.0, after one run of these
/// tests).
async fn dropping_the_proxy_stops_its_processes(kind: Kind) {
    // Arrange
    let app = app_behind_a_proxy(None).await;
    let proxy = Proxy::start(kind, app.addr()).await;
    let first = proxy.pid();
    let tree = processes_under(first);
    if kind == Kind::Nginx {
        assert!(!tree.is_empty(), "nginx's workers run under its master");
    }

    // Act
    drop(proxy);

    // Assert
    let deadline = Instant::now() + PATIENCE;
    for pid in std::iter::once(first).chain(tree) {
        while running(pid) {
            assert!(
                Instant::now() < deadline,
                "{kind:?}: process {pid} outlived the proxy"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
#[ignore = "needs caddy (apt-get install caddy); run with -- --ignored, as .ci/run does"]
async fn dropping_caddy_stops_its_processes() {
    dropping_the_proxy_stops_its_processes(Kind::Caddy).await;
}

#[tokio::test]
#[ignore = "needs nginx (apt-get install nginx); run with -- --ignored, as .ci/run does"]
async fn dropping_nginx_stops_its_master_and_its_workers() {
    dropping_the_proxy_stops_its_processes(Kind::Nginx).await;
}

/// The processes under `root` (children, theirs, …), from `/proc`.
fn processes_under(root: u32) -> Vec<u32> {
    let mut found = vec![root];
    let mut at = 0;
    while at < found.len() {
        let parent = found[at];
        for entry in std::fs::read_dir("/proc").unwrap().map_while(Result::ok) {
            let Some(pid) = entry.file_name().to_str().and_then(|pid| pid.parse().ok()) else {
                continue;
            };
            if stat_field(pid, 1).is_some_and(|ppid| ppid == parent.to_string()) {
                found.push(pid);
            }
        }
        at += 1;
    }
    found.remove(0);
    found
}

/// Whether `pid` runs (exists, and is not a zombie waiting to be reaped).
fn running(pid: u32) -> bool {
    stat_field(pid, 0).is_some_and(|state| state != "Z")
}

/// Field `n` after the name in `/proc/<pid>/stat` (0: the state, 1: the parent).
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(n).map(str::to_owned)
}
