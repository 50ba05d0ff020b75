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
        Browser::finish([browser], &[]).await;
    }
}
