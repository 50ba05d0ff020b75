//! Where Datastar comes from, offline: the default CDN unreachable (Chromium here reaches no
//! host but 127.0.0.1, as on a plane or behind a strict proxy), and a copy served by the app
//! itself (`DATASTAR_URL=/static/datastar.js`).
#![cfg(debug_assertions)]

use live::{settings::Integrity, testing::browser::Browser, views::DATASTAR_CDN_URL};

use crate::{app_with, helpers::Workspace};

/// What Chromium logs when the CDN's name does not resolve.
const UNREACHABLE: &str = "ERR_NAME_NOT_RESOLVED";

/// The notice, once the check has shown it: visible, and its words.
async fn shown_notice(tab: &Browser) -> String {
    tab.wait_until(
        "the Datastar notice to show",
        "!document.querySelector('#datastar-missing').hidden \
         && document.querySelector('#datastar-missing').checkVisibility()",
    )
    .await;
    let text = tab
        .eval(
            "return document.querySelector('#datastar-missing').textContent",
            vec![],
        )
        .await;
    text.as_str()
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn with_datastar_unreachable_a_debug_page_says_so_and_names_the_setting() {
    // Arrange: the settings as shipped — Datastar from the CDN, which is out of reach.
    let (app, _turn) = app_with(|config| {
        config.datastar_url = DATASTAR_CDN_URL.to_owned();
        config.datastar_integrity = Integrity::Known;
    })
    .await;
    let tab = Browser::launch("tab", true).await;

    for page in ["/", "/about"] {
        // Act
        tab.goto(&app.url(page)).await;

        // Assert: the page says what is wrong and what to change, at its top…
        let text = shown_notice(&tab).await;
        assert!(text.contains("Datastar has not loaded"), "{page}: {text}");
        assert!(
            text.contains(DATASTAR_CDN_URL),
            "{page}: the URL tried: {text}"
        );
        assert!(text.contains("DATASTAR_URL"), "{page}: the setting: {text}");
        let first = tab
            .eval("return document.body.firstElementChild.id", vec![])
            .await;
        assert_eq!(first, "datastar-missing", "{page}: at the top of the page");
    }
    // …and the page is indeed not live: no stream was opened.
    assert_eq!(app.streams("page/*/*"), 0);
    Browser::finish([tab], &[UNREACHABLE]).await;
}

#[tokio::test]
async fn with_a_local_copy_two_tabs_are_live_offline_and_no_notice_shows() {
    // Arrange: Datastar in the app's `static/`, as the README says to put it, and
    // `DATASTAR_URL` pointing there. Nothing but the app is reachable.
    let workspace = Workspace::new();
    std::fs::write(
        workspace.asset("datastar.js"),
        live::testing::bundle::datastar_js(),
    )
    .unwrap();
    let mut dev = workspace.settings.clone();
    dev.watch = false;
    let (app, _turn) = app_with(move |config| {
        config.dev = dev;
        config.datastar_url = "/static/datastar.js".to_owned();
        config.datastar_integrity = Integrity::Known;
    })
    .await;

    // Act
    let one = Browser::open_live("tab one", &app.url("/")).await;
    let two = Browser::open_live("tab two", &app.url("/")).await;
    one.type_and_enter("#name", "Ada").await;

    // Assert: both tabs live, and Datastar took the notice away as it started.
    one.wait_for_text("#greeting", "Hello, Ada!").await;
    two.wait_for_text("#greeting", "Hello, Ada!").await;
    for tab in [&one, &two] {
        let notice = tab
            .eval("return document.querySelector('#datastar-missing')", vec![])
            .await;
        assert!(notice.is_null(), "the notice is gone: {notice}");
    }
    Browser::finish([one, two], &[]).await;
}
