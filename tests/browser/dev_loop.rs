//! The dev loop of debug builds, in the browser: edit, save, see it in every open tab.
#![cfg(debug_assertions)]

use std::time::{Duration, Instant};

use live::testing::browser::Browser;
use serde_json::json;
use tokio::sync::SemaphorePermit;

use crate::{
    app, app_on, app_with,
    helpers::{TestApp, Workspace, spawn_app_with},
    turn,
};

/// The app on a private copy of `templates/` and `static/`, with its file watcher on.
async fn dev_app() -> (Workspace, TestApp, SemaphorePermit<'static>) {
    let workspace = Workspace::new();
    let settings = workspace.settings.clone();
    let (app, turn) = app_with(move |config| config.dev = settings).await;
    (workspace, app, turn)
}

#[tokio::test]
async fn an_edited_stylesheet_applies_in_place_without_a_reload() {
    // Arrange
    let (workspace, app, _turn) = dev_app().await;
    let tab = Browser::open_live("tab", &app.url("/")).await;
    tab.eval("window.__marker = 'same page'", vec![]).await;
    let field = tab
        .client
        .find(live::testing::browser::fantoccini::Locator::Css("#name"))
        .await
        .unwrap();
    field.send_keys("half-typed").await.unwrap();

    // Act
    let css = workspace.asset("app.css");
    let mut text = std::fs::read_to_string(&css).unwrap();
    text.push_str("\nmain { outline: 3px solid rgb(1, 2, 3); }\n");
    let saved = Instant::now();
    std::fs::write(&css, text).unwrap();

    // Assert
    tab.wait_until(
        "the edited rule to apply",
        "getComputedStyle(document.querySelector('main')).outlineColor === 'rgb(1, 2, 3)'",
    )
    .await;
    eprintln!("stylesheet applied {:?} after the save", saved.elapsed());
    let state = tab
        .eval(
            "return [window.__marker ?? null, document.querySelector('#name').value]",
            vec![],
        )
        .await;
    assert_eq!(
        state,
        json!(["same page", "half-typed"]),
        "no reload, state kept"
    );
    Browser::finish([tab], &[]).await;
}

#[tokio::test]
async fn an_edited_template_reloads_every_open_tab() {
    let (workspace, app, _turn) = dev_app().await;
    let home = Browser::launch("home tab", true).await;
    let about = Browser::launch("about tab", true).await;
    home.goto(&app.url("/")).await;
    about.goto(&app.url("/about")).await;
    home.wait_live().await;
    app.wait_for_streams("page/*/*", 2).await; // the home stream and about's dev stream
    for tab in [&home, &about] {
        tab.eval("window.__marker = 'before'", vec![]).await;
    }

    let layout = workspace.template("layout.html");
    let html = std::fs::read_to_string(&layout).unwrap();
    let saved = Instant::now();
    std::fs::write(
        &layout,
        html.replace("Server-rendered with", "Edited, server-rendered with"),
    )
    .unwrap();

    for tab in [&home, &about] {
        tab.wait_for_text("footer", "Edited, server-rendered with")
            .await;
        assert_eq!(
            tab.eval("return window.__marker ?? null", vec![]).await,
            json!(null)
        );
        tab.assert_no_errors(&[]).await;
    }
    eprintln!("both tabs reloaded {:?} after the save", saved.elapsed());
    home.wait_live().await;
    home.close().await;
    about.close().await;
}

#[tokio::test]
async fn tabs_reload_when_a_restarted_server_answers() {
    let (mut first, _turn) = app().await;
    let tab = Browser::launch("tab", true).await;
    tab.goto(&first.url("/about")).await;
    first.wait_for_streams("page/dev/*", 1).await;
    tab.eval("window.__marker = 'old server'", vec![]).await;
    let datastar = first.state.live.views.datastar().clone();
    let port = first.addr().port();

    // The server restarts (as under `cargo watch`) on the same port.
    first.shut_down().await.unwrap();
    let second = spawn_app_with(move |config| {
        config.port = port;
        config.datastar_url = datastar.url;
        config.datastar_integrity = datastar.integrity.map_or(
            live::settings::Integrity::Off,
            live::settings::Integrity::Hash,
        );
    })
    .await;

    // The tab reconnects, learns the instance changed, and reloads from the new server.
    tab.wait_until("a reload", "window.__marker === undefined")
        .await;
    second.wait_for_streams("page/dev/*", 1).await;
    let rendered_by = tab
        .eval(
            "return document.querySelector('#dev-reload').dataset.signals",
            vec![],
        )
        .await;
    assert!(
        rendered_by
            .as_str()
            .unwrap()
            .contains(&second.state.live.instance().to_string()),
        "{rendered_by}"
    );
    tab.close().await;
}

#[tokio::test]
async fn a_restart_on_a_kept_socket_reloads_tabs_without_going_offline() {
    // The listening socket outlives both servers, as `systemfd` (or systemd) keeps it.
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let kept = socket.try_clone().unwrap();
    let _turn = turn().await;
    let mut first = app_on(Some(socket), |_| {}).await;
    let tab = Browser::open_live("tab", &first.url("/")).await;
    first.wait_for_streams("page/home/*", 1).await;
    // Anything that shows "offline" from now on is remembered across the reload.
    tab.eval(
        "window.__marker = 'old server';
         const status = document.querySelector('#connection-status');
         new MutationObserver(() => {
           if (status.textContent.includes('offline')) sessionStorage.setItem('offline', 'seen');
         }).observe(status, {childList: true, characterData: true, subtree: true});",
        vec![],
    )
    .await;

    // The server stops, and nothing accepts for a while (cargo rebuilding): the tab's
    // reconnect waits in the socket's queue.
    first.shut_down().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        tab.eval("return sessionStorage.getItem('offline')", vec![])
            .await,
        json!(null),
        "the tab showed offline while the server was down"
    );
    let second = app_on(Some(kept), |_| {}).await;

    // It reconnects to the new server, notices the new instance and reloads, never offline.
    tab.wait_until("a reload", "window.__marker === undefined")
        .await;
    second.wait_for_streams("page/home/*", 1).await;
    tab.wait_live().await;
    assert_eq!(
        tab.eval("return sessionStorage.getItem('offline')", vec![])
            .await,
        json!(null),
        "the tab showed offline across the restart"
    );
    Browser::finish([tab], &[]).await;
}

#[tokio::test]
async fn a_template_error_shows_in_the_browser_and_recovers_on_the_next_save() {
    let (workspace, app, _turn) = dev_app().await;
    let template = workspace.template("about.html");
    let good = std::fs::read_to_string(&template).unwrap();
    std::fs::write(&template, good.replace("{% endblock %}", "{% endblok %}")).unwrap();
    let tab = Browser::launch("tab", true).await;

    tab.goto(&app.url("/about")).await;
    tab.wait_for_text("h1", "Template error").await;
    tab.wait_for_text("#dev-error", "about.html").await;
    app.wait_for_streams("page/dev/*", 1).await;

    std::fs::write(&template, good).unwrap();
    tab.wait_for_text("h1", "About this app").await;
    Browser::finish([tab], &["status of 500"]).await;
}
