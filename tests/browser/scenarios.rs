use serde_json::json;
use uuid::Uuid;

use app::home::HOME;

use live::testing::browser::Browser;

use crate::{app, helpers::elements};

/// Chromium's message for a request stopped by `Browser::block_urls`.
const BLOCKED: &str = "ERR_BLOCKED_BY_CLIENT";

#[tokio::test]
async fn a_greeting_in_one_tab_appears_live_in_both_without_navigating() {
    // Arrange
    let (app, _turn) = app().await;
    let tab_a = Browser::open_live("tab A", &app.url("/")).await;
    let tab_b = Browser::open_live("tab B", &app.url("/")).await;
    for tab in [&tab_a, &tab_b] {
        let visibility = tab.eval("return document.visibilityState", vec![]).await;
        assert_eq!(
            visibility, "visible",
            "a background tab would drop its stream"
        );
    }
    tab_a.eval("window.__marker = 'same page'", vec![]).await;

    // Act
    tab_a.type_and_enter("#name", "Ada").await;

    // Assert
    tab_a.wait_for_text("#greeting", "Hello, Ada!").await;
    tab_b.wait_for_text("#greeting", "Hello, Ada!").await;
    assert_eq!(
        tab_a.eval("return window.__marker", vec![]).await,
        "same page",
        "tab A did not navigate"
    );
    tab_a
        .wait_until(
            "the name field to be cleared",
            "document.querySelector('#name').value === ''",
        )
        .await;
    Browser::finish([tab_a, tab_b], &[]).await;
}

#[tokio::test]
async fn markup_in_a_name_shows_as_text_and_never_runs() {
    let (app, _turn) = app().await;
    let tab_a = Browser::open_live("tab A", &app.url("/")).await;
    let tab_b = Browser::open_live("tab B", &app.url("/")).await;
    let name = r#"<img src=x onerror="window.__pwned=1">"#;

    tab_a.type_and_enter("#name", name).await;

    for tab in [&tab_a, &tab_b] {
        tab.wait_for_text("#greeting", &format!("Hello, {name}!"))
            .await;
        let injected = tab
            .eval(
                "return [document.querySelector('#greeting img') !== null, window.__pwned ?? null]",
                vec![],
            )
            .await;
        assert_eq!(
            injected,
            json!([false, null]),
            "no element was created, nothing ran"
        );
    }
    Browser::finish([tab_a, tab_b], &[]).await;
}

#[tokio::test]
async fn without_javascript_the_form_posts_and_live_tabs_see_it() {
    let (app, _turn) = app().await;
    let live = Browser::launch("live tab", true).await;
    let no_js = Browser::launch("tab without JavaScript", false).await;
    live.goto(&app.url("/")).await;
    live.wait_live().await;
    no_js.goto(&app.url("/")).await;
    no_js.wait_for_text("#connection-status", "offline").await;

    no_js.type_and_enter("#name", "Grace").await;

    // The post answers 303 to the home page, which shows the greeting.
    no_js.wait_for_text("#greeting", "Hello, Grace!").await;
    live.wait_for_text("#greeting", "Hello, Grace!").await;
    assert_eq!(
        app.streams("page/home/*"),
        1,
        "the page without JavaScript opened no stream"
    );
    Browser::finish([live, no_js], &[]).await;
}

#[tokio::test]
async fn with_the_stream_down_the_form_falls_back_to_a_plain_post() {
    let (app, _turn) = app().await;
    let tab = Browser::launch("tab", true).await;
    tab.block_urls(&["*/sse/home*"]).await;

    tab.goto(&app.url("/")).await;
    tab.wait_until(
        "Datastar to try the stream and fail",
        "window.__fetchEvents.includes('retrying')",
    )
    .await;
    tab.wait_for_text("#connection-status", "offline").await;
    tab.eval("window.__marker = 'first page'", vec![]).await;
    tab.type_and_enter("#name", "Linus").await;

    tab.wait_for_text("#greeting", "Hello, Linus!").await;
    assert_eq!(
        tab.eval("return window.__marker ?? null", vec![]).await,
        json!(null),
        "the browser navigated: a plain form post"
    );
    assert_eq!(
        app.state
            .live
            .registry
            .latest(&app::greeting::GREETING)
            .unwrap()
            .name
            .as_str(),
        "Linus"
    );
    Browser::finish([tab], &[BLOCKED]).await;
}

#[tokio::test]
async fn when_the_server_ends_the_stream_the_tab_goes_offline_then_catches_up() {
    let (app, _turn) = app().await;
    let tab = Browser::open_live("tab", &app.url("/")).await;

    // The server ends the stream (as on a restart). Keep the tab from reconnecting for a
    // moment so the offline state can be seen, and greet meanwhile.
    tab.block_urls(&["*/sse/home*"]).await;
    assert_eq!(app.state.live.registry.close(&HOME.tabs()), 1);
    tab.wait_for_text("#connection-status", "offline").await;
    app.greet_with_form("Grace").await;
    tab.block_urls(&[]).await;

    // Datastar reconnects by itself; the first events bring it live and up to date.
    tab.wait_live().await;
    tab.wait_for_text("#greeting", "Hello, Grace!").await;
    Browser::finish([tab], &[BLOCKED]).await;
}

#[tokio::test]
async fn a_server_that_stops_for_good_shows_offline_despite_its_restart_notice() {
    let (mut app, _turn) = app().await;
    let tab = Browser::open_live("tab", &app.url("/")).await;

    // Its streams' last event says "restarting", but nothing takes over the port: the
    // reconnect fails, and that is offline.
    app.shut_down().await.unwrap();
    tab.wait_for_text("#connection-status", "offline").await;
    Browser::finish([tab], &["ERR_CONNECTION_REFUSED"]).await;
}

#[tokio::test]
async fn a_stream_the_server_ends_comes_back_by_itself() {
    let (app, _turn) = app().await;
    let tab = Browser::open_live("tab", &app.url("/")).await;
    let before = app.state.live.registry.keys(&HOME.tabs());

    app.state.live.registry.close(&HOME.tabs());
    tab.wait_until(
        "Datastar to notice the end and retry",
        "window.__fetchEvents.includes('retrying')",
    )
    .await;
    app.wait_for_streams("page/home/*", 1).await;

    assert_eq!(
        app.state.live.registry.keys(&HOME.tabs()),
        before,
        "same tab, same key"
    );
    tab.wait_live().await;
    app.greet_with_datastar("Ada").await;
    tab.wait_for_text("#greeting", "Hello, Ada!").await;
    Browser::finish([tab], &[]).await;
}

#[tokio::test]
async fn bad_input_shows_the_message_and_reaches_no_other_tab() {
    let (app, _turn) = app().await;
    let tab_a = Browser::open_live("tab A", &app.url("/")).await;
    let tab_b = Browser::open_live("tab B", &app.url("/")).await;

    tab_a.type_and_enter("#name", "   ").await;
    tab_a
        .wait_for_text("#greet-error", "Please enter a name.")
        .await;
    tab_a.type_and_enter("#name", "Ada\u{202E}nimda").await;
    tab_a
        .wait_for_text("#greet-error", "direction of text")
        .await;
    // The field itself takes no more than a name's worth.
    tab_a.type_and_enter("#name", &"x".repeat(65)).await;

    tab_b
        .wait_for_text("#greeting", &format!("Hello, {}!", "x".repeat(64)))
        .await;

    // The refused attempts were neither recorded nor broadcast: the next greeting is #2.
    tab_a.type_and_enter("#name", "Ada").await;
    tab_b.wait_for_text("#greeting", "Hello, Ada!").await;
    tab_b.wait_for_text("#greeting", "Greeting #2 ").await;
    tab_a
        .wait_until(
            "the error to be cleared",
            "document.querySelector('#greet-error').textContent === ''",
        )
        .await;
    Browser::finish([tab_a, tab_b], &[]).await;
}

#[tokio::test]
async fn about_renders_with_the_layout_and_no_page_logs_errors() {
    let (app, _turn) = app().await;
    let tab = Browser::launch("tab", true).await;

    tab.goto(&app.url("/about")).await;
    tab.wait_for_text("h1", "About this app").await;
    let layout = tab
        .eval(
            "return [getComputedStyle(document.querySelector('.site-header')).display,
                     [...document.querySelectorAll('nav a')].map(a => a.getAttribute('href'))]",
            vec![],
        )
        .await;
    assert_eq!(layout[0], "flex", "a styled layout");
    for link in ["/", "/about"] {
        assert!(
            layout[1].as_array().unwrap().contains(&json!(link)),
            "{link} in the navigation: {layout}"
        );
    }
    tab.assert_no_errors(&[]).await;

    tab.goto(&app.url("/")).await;
    tab.wait_live().await;
    Browser::finish([tab], &[]).await;
}

#[tokio::test]
async fn a_tab_whose_session_id_is_taken_moves_to_a_new_id_instead_of_fighting() {
    let (app, _turn) = app().await;
    let tab = Browser::open_live("tab", &app.url("/")).await;
    let signals = tab
        .eval(
            "return document.querySelector('#live-stream').dataset.signals",
            vec![],
        )
        .await;
    let signals: serde_json::Value = serde_json::from_str(signals.as_str().unwrap()).unwrap();
    let taken: Uuid = signals["sessionId"].as_str().unwrap().parse().unwrap();

    // Another client connects with the tab's session id, like a duplicated tab would.
    let mut duplicate = app.open_home_stream(taken).await;
    duplicate.read_initial_events().await;

    // The tab reconnects under a new id and leaves the duplicate alone.
    app.wait_for_streams("page/home/*", 2).await;
    tab.wait_live().await;
    let keys = app.state.live.registry.keys(&HOME.tabs());
    assert!(keys.contains(&HOME.tab(taken)), "{keys:?}");
    app.greet_with_datastar("Ada").await;
    assert!(
        elements(&duplicate.next_event().await).contains("Ada"),
        "duplicate still stored"
    );
    tab.wait_for_text("#greeting", "Hello, Ada!").await;
    assert_eq!(
        app.state.live.registry.keys(&HOME.tabs()),
        keys,
        "no further replacement"
    );
    Browser::finish([tab], &[]).await;
}

#[tokio::test]
async fn the_content_security_policy_refuses_inline_scripts() {
    let (app, _turn) = app().await;
    let tab = Browser::open_live("tab", &app.url("/")).await;

    // What an injection would try: an inline script element.
    tab.eval(
        "const s = document.createElement('script');
         s.textContent = 'window.__inline = 1';
         document.body.append(s);",
        vec![],
    )
    .await;

    assert_eq!(
        tab.eval("return window.__inline ?? null", vec![]).await,
        json!(null)
    );
    let log = tab.log().await;
    assert!(
        log.iter()
            .any(|entry| entry.message.contains("Content Security Policy")),
        "the browser reports the refusal: {log:?}"
    );
    // Datastar itself runs under the policy: the page is live and still works.
    app.greet_with_datastar("Ada").await;
    tab.wait_for_text("#greeting", "Hello, Ada!").await;
    Browser::finish([tab], &["Content Security Policy"]).await;
}

#[tokio::test]
async fn a_datastar_file_that_fails_its_hash_never_runs_and_the_form_still_posts() {
    let wrong = format!("sha384-{}", "A".repeat(64));
    let (app, _turn) = crate::app_with(|config| {
        config.datastar_integrity = live::settings::Integrity::Hash(wrong);
    })
    .await;
    let tab = Browser::launch("tab", true).await;
    tab.goto(&app.url("/")).await;

    // The browser refuses the script (its bytes do not match), so the page never goes live…
    tab.poll_log_for("integrity").await;
    assert_eq!(app.streams("page/home/*"), 0, "Datastar never ran");
    // (A debug build says so on the page.)
    #[cfg(debug_assertions)]
    tab.wait_until(
        "the Datastar notice to show",
        "!document.querySelector('#datastar-missing').hidden",
    )
    .await;

    // …and the form is a plain form: it posts, the page comes back with the greeting.
    tab.type_and_enter("#name", "Ada").await;
    tab.wait_for_text("#greeting", "Hello, Ada!").await;
    Browser::finish([tab], &["integrity"]).await;
}

#[tokio::test]
async fn a_refusal_from_the_server_is_shown_in_the_page() {
    let (app, _turn) = app().await;
    let tab = Browser::open_live("tab", &app.url("/")).await;

    // Far more than a name: the server refuses the body (413), which Datastar alone would
    // never show. (The field's maxlength stops typing it, so it is set from a script.)
    tab.eval(
        "const field = document.querySelector('#name');
         field.value = 'x'.repeat(8192);
         field.dispatchEvent(new Event('input', { bubbles: true }));
         document.querySelector('#greet-form button').click();",
        vec![],
    )
    .await;

    tab.wait_for_text("#greet-error", "far too long").await;
    assert!(
        app.state
            .live
            .registry
            .latest(&app::greeting::GREETING)
            .is_none(),
        "nothing was greeted"
    );
    Browser::finish([tab], &[]).await;
}

#[tokio::test]
async fn a_refused_stream_says_why_and_comes_back_when_there_is_room() {
    let (app, _turn) = crate::app_with(|config| config.max_streams = 1).await;
    let first = Browser::open_live("first tab", &app.url("/")).await;

    let second = Browser::launch("second tab", true).await;
    second.goto(&app.url("/")).await;
    second
        .wait_for_text("#notice", "too many open streams")
        .await;
    second.wait_for_text("#connection-status", "offline").await;

    // Room again: the second tab comes back by itself, at the time it was told (3–8 s).
    first.close().await;
    second
        .wait_live_within(std::time::Duration::from_secs(20))
        .await;
    Browser::finish([second], &[]).await;
}

#[tokio::test]
async fn the_pages_have_no_serious_accessibility_violations() {
    let (app, _turn) = app().await;
    let tab = Browser::open_live("tab", &app.url("/")).await;
    // The home page with everything it can show: a greeting (and its muted line) and a refusal.
    tab.type_and_enter("#name", "Ada").await;
    tab.wait_for_text("#greeting", "Hello, Ada!").await;
    tab.type_and_enter("#name", "   ").await;
    tab.wait_for_text("#greet-error", "Please enter a name.")
        .await;
    let home = tab.serious_accessibility_violations().await;

    tab.goto(&app.url("/about")).await;
    tab.wait_until("the about page", "document.querySelector('h1')")
        .await;
    let about = tab.serious_accessibility_violations().await;

    assert!(home.is_empty(), "/: {home:#?}");
    assert!(about.is_empty(), "/about: {about:#?}");
    Browser::finish([tab], &[]).await;
}

#[tokio::test]
async fn tabs_opened_in_the_background_over_http11_all_load_and_each_goes_live_when_shown() {
    // Arrange: plain HTTP/1.1, where a browser keeps six connections per site.
    let (app, _turn) = app().await;
    let browser = Browser::launch("background tabs", true).await;
    app.greet_with_datastar("Before").await;

    // Act: eight tabs opened in the background, as middle-clicks open them.
    let mut tabs = Vec::new();
    for _ in 0..8 {
        tabs.push(browser.open_in_background(&app.url("/")).await);
    }

    // Assert: every page loads, and none holds a stream while hidden: six would hold every
    // connection the browser has for the site, and nothing more from it would load. (The
    // pause gives a hidden tab the time to open its stream, if it would; nothing waits on it
    // when it does not.)
    for tab in &tabs {
        browser.wait_for_title(tab, "Home").await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        app.streams("page/home/*"),
        0,
        "no hidden tab holds a stream"
    );
    let about = app.url("/about");
    let front = tokio::time::timeout(live::testing::PATIENCE, browser.goto(&about));
    assert!(
        front.await.is_ok(),
        "the tab in front loads a page: the background tabs leave it a connection"
    );

    // Each tab, shown in turn, goes live and shows the newest greeting.
    for (n, tab) in tabs.iter().enumerate() {
        let name = format!("Tab {n}");
        assert_eq!(app.greet_with_datastar(&name).await.status(), 200);
        browser.show(tab).await;
        browser.wait_live().await;
        browser
            .wait_for_text("#greeting", &format!("Hello, {name}!"))
            .await;
    }
    Browser::finish([browser], &[]).await;
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn eight_windows_over_the_apps_own_https_all_load_go_live_and_get_a_greet() {
    use live::{settings::Integrity, testing::https::TestCa, tls::Tls};

    // Arrange: the app over HTTPS with a certificate of the test's own, which Chromium is told
    // to accept; Datastar served over HTTPS too (an HTTPS page loads no plain-HTTP script).
    let _turn = crate::turn().await;
    let ca = TestCa::new();
    let certificate = ca.issue();
    let dir = std::env::temp_dir().join(format!("browser-https-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = certificate.write(&dir);
    let bundle =
        live::testing::bundle::serve_tls(&Tls::load(cert.clone(), key.clone()).unwrap()).await;
    let app = crate::helpers::spawn_app_on(None, |settings| {
        settings.tls_cert = Some(cert);
        settings.tls_key = Some(key);
        settings.datastar_url = format!("https://{bundle}/datastar.js");
        settings.datastar_integrity = Integrity::Hash(live::testing::bundle::integrity());
    })
    .await;
    let browser = Browser::launch_trusting("HTTPS windows", certificate.spki_der()).await;

    // Act: eight windows side by side, each on the home page.
    let mut windows = Vec::new();
    for _ in 0..8 {
        windows.push(browser.open_window(&app.url("/")).await);
    }

    // Assert: all eight live at once over HTTP/2 (over HTTP/1.1 the browser would give them
    // six connections between them)...
    for window in &windows {
        browser.show(window).await;
        browser.wait_live().await;
        let protocol = browser
            .eval(
                "return performance.getEntriesByType('navigation')[0].nextHopProtocol",
                vec![],
            )
            .await;
        assert_eq!(protocol, "h2", "the page came over HTTP/2");
    }
    app.wait_for_streams("page/home/*", 8).await;
    // ... and a greet from the first reaches all eight.
    browser.show(&windows[0]).await;
    browser.type_and_enter("#name", "Grace").await;
    for window in &windows {
        browser.show(window).await;
        browser.wait_for_text("#greeting", "Hello, Grace!").await;
    }
    Browser::finish([browser], &[]).await;
}

#[tokio::test]
async fn two_tabs_show_two_people_here_and_when_one_closes_the_other_shows_one() {
    // Arrange
    let (app, _turn) = app().await;
    let tab_a = Browser::open_live("tab A", &app.url("/")).await;
    tab_a.wait_for_text("#presence-here", "1 person here").await;

    // Act
    let tab_b = Browser::open_live("tab B", &app.url("/")).await;

    // Assert
    for tab in [&tab_a, &tab_b] {
        tab.wait_for_text("#presence-here", "2 people here").await;
    }
    Browser::finish([tab_b], &[]).await;
    tab_a.wait_for_text("#presence-here", "1 person here").await;
    Browser::finish([tab_a], &[]).await;
}
