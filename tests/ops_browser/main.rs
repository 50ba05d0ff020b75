//! Browsers through the proxies the project ships configurations for: headless Chromium reaches
//! the site over HTTP/2 through the real `caddy` and `nginx` (`tests/ops/proxy.rs`), as a
//! visitor does.
//!
//! An operations test of the template repository, like `tests/ops/` (`cargo-generate.toml`
//! leaves it out of generated projects); a test binary of its own so that its Chromium never
//! shares the machine with the restart and scale-out tests. Runs with
//! `cargo test --features browser-tests` (which turns `tls` on).

#![cfg(all(unix, feature = "tls", feature = "browser-tests"))]

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../ops/proxy.rs"]
mod proxy;

use live::testing::browser::Browser;

/// Asks the page's own origin for a new tab's stream as Datastar does (`fetch`, with what
/// Chromium accepts by default), reads it until its first event decodes, and says how it came:
/// `[content-encoding, went live]`.
const FETCH_A_STREAM: &str = r#"return (async () => {
    const signals = encodeURIComponent(JSON.stringify({ sessionId: crypto.randomUUID() }));
    const stop = new AbortController();
    const response = await fetch('/sse/home?datastar=' + signals, {
        headers: { 'datastar-request': 'true' }, signal: stop.signal,
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('"connected":true')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
    }
    stop.abort();
    return [response.headers.get('content-encoding'), text.includes('"connected":true')];
})()"#;

/// Chromium's streams come gzipped, over HTTP/1.1 straight from the app (as every browser
/// test's do, so that those run on gzipped streams: events applied, a restart reconnecting
/// without the offline badge), and each event decodes as it arrives.
#[tokio::test]
async fn chromium_reads_a_gzipped_stream_over_http1() {
    let bundle = live::testing::bundle::serve().await;
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.datastar_url = format!("http://{bundle}/datastar.js");
        settings.datastar_integrity =
            live::settings::Integrity::Hash(live::testing::bundle::integrity());
    })
    .await;
    let browser = Browser::open_live("gzipped stream", &app.url("/")).await;
    let how = browser.eval(FETCH_A_STREAM, vec![]).await;
    assert_eq!(how, serde_json::json!(["gzip", true]));
    Browser::finish([browser], &[]).await;
}

/// Eight windows through each shipped proxy configuration (`deploy/Caddyfile`,
/// `deploy/nginx.conf`), as a browser reaches the site: HTTP/2 to the proxy, all eight live at
/// once, all greeted.
#[tokio::test]
#[ignore = "needs caddy and nginx (apt-get install caddy nginx); run with -- --ignored, as .ci/run does"]
async fn eight_windows_through_each_proxy_over_http2_all_go_live_and_get_a_greet() {
    use live::{settings::Integrity, tls::Tls};

    use crate::proxy::{Kind, Proxy, SITE, SiteCertificate};

    for kind in [Kind::Caddy, Kind::Nginx] {
        // Arrange: the app behind the proxy; Datastar served over HTTPS with the site's
        // certificate (which also names 127.0.0.1), so that one pinned key covers both.
        let site = SiteCertificate::new();
        let bundle = live::testing::bundle::serve_tls(
            &Tls::load(site.cert.clone(), site.key.clone()).unwrap(),
        )
        .await;
        let app = crate::helpers::spawn_app_on(None, |settings| {
            settings.client_ip_header = Some("x-forwarded-for".parse().unwrap());
            settings.datastar_url = format!("https://{bundle}/datastar.js");
            settings.datastar_integrity = Integrity::Hash(live::testing::bundle::integrity());
        })
        .await;
        let spki = site.certificate.spki_der().to_vec();
        let proxy = Proxy::start_with(kind, app.addr(), site).await;
        let browser = Browser::launch_with(
            "through a proxy",
            true,
            &[
                Browser::trusting(&spki),
                Browser::resolving_to_loopback(&[SITE]),
            ],
        )
        .await;

        // Act: eight windows on the site.
        let mut windows = Vec::new();
        for _ in 0..8 {
            windows.push(browser.open_window(&proxy.url("/")).await);
        }

        // Assert: all eight live at once over HTTP/2, and a greet from one reaches all.
        for window in &windows {
            browser.show(window).await;
            browser.wait_live().await;
            let protocol = browser
                .eval(
                    "return performance.getEntriesByType('navigation')[0].nextHopProtocol",
                    vec![],
                )
                .await;
            assert_eq!(protocol, "h2", "{kind:?}: the page came over HTTP/2");
        }
        app.wait_for_streams("page/home/*", 8).await;
        browser.show(&windows[0]).await;
        browser.type_and_enter("#name", "Grace").await;
        for window in &windows {
            browser.show(window).await;
            browser.wait_for_text("#greeting", "Hello, Grace!").await;
        }
        browser.show(&windows[0]).await;
        let how = browser.eval(FETCH_A_STREAM, vec![]).await;
        assert_eq!(
            how,
            serde_json::json!(["gzip", true]),
            "{kind:?}: a stream comes gzipped (once) over HTTP/2"
        );
        Browser::finish([browser], &[]).await;
    }
}
