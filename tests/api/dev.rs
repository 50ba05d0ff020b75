//! The dev loop of debug builds: dev streams, the file watcher, error pages.
#![cfg(debug_assertions)]

use uuid::Uuid;

use crate::helpers::{SseClient, TestApp, Workspace, elements, signals, spawn_app, spawn_dev_app};

async fn open_dev_stream(app: &TestApp, tab: Uuid) -> SseClient {
    let response = app.get(&format!("/sse/dev?tab={tab}")).await;
    assert_eq!(response.status(), 200);
    SseClient::new(response)
}

#[tokio::test]
async fn pages_without_a_stream_get_a_dev_stream_and_home_keeps_one_connection() {
    let app = spawn_app().await;
    let instance = app.state.live.instance().to_string();

    let about = app.home_page_at("/about").await;
    let home = app.home_page().await;

    assert!(
        about.contains(
            r#"data-init="document.hidden ? (el.__waitingToBeShown = true) : @get('/sse/dev?tab="#
        ),
        "opened at once, unless the tab is in the background: {about}"
    );
    assert!(
        about.contains(&format!(r#""_devRendered":"{instance}""#)),
        "{about}"
    );
    assert!(
        home.contains(&format!(r#""_devRendered":"{instance}""#)),
        "{home}"
    );
    assert!(
        !home.contains("/sse/dev"),
        "the home stream carries dev events: {home}"
    );
    // Every `data-init` but the dev notice's own clean-up (`live/datastar_missing.html`).
    let opens =
        home.matches("data-init=").count() - home.matches(r#"data-init="el.remove()""#).count();
    assert_eq!(opens, 1, "one stream per tab");
}

#[tokio::test]
async fn every_stream_says_which_instance_serves_it() {
    let app = spawn_app().await;
    let tab = Uuid::new_v4();

    let mut dev = open_dev_stream(&app, tab).await;
    let mut home = app.open_home_stream(Uuid::new_v4()).await;

    let expected = serde_json::json!({ "_devServer": app.state.live.instance() });
    assert_eq!(
        signals(&dev.next_event().await)["connected"],
        true,
        "a stream's first event"
    );
    assert_eq!(signals(&dev.next_event().await), expected);
    assert_eq!(
        signals(&home.read_initial_events().await.dev_server.unwrap()),
        expected
    );
    assert_eq!(
        app.state.live.registry.keys(&live::dev::ALL_PAGES).len(),
        2,
        "both under page/*/*"
    );
    assert_ne!(
        spawn_app().await.state.live.instance(),
        app.state.live.instance(),
        "another server is another instance"
    );
}

#[tokio::test]
async fn a_dev_stream_needs_a_uuid_tab() {
    let app = spawn_app().await;
    for path in ["/sse/dev", "/sse/dev?tab=nope"] {
        assert_eq!(app.get(path).await.status(), 400, "{path}");
    }
}

#[tokio::test]
async fn a_stylesheet_change_swaps_stylesheets_and_a_template_change_reloads() {
    // Arrange
    let workspace = Workspace::new();
    let app = spawn_dev_app(&workspace).await;
    let mut home = app.open_live_home_stream().await;
    let mut about = open_dev_stream(&app, Uuid::new_v4()).await;
    about.next_event().await; // connected
    about.next_event().await; // the instance

    // Act: a stylesheet is saved.
    let css = workspace.asset("app.css");
    let mut text = std::fs::read_to_string(&css).unwrap();
    text.push_str("\nbody { outline: 1px solid red; }\n");
    std::fs::write(&css, &text).unwrap();

    // Assert: both tabs get the <link> patched to the new version, which serves the new file.
    for tab in [&mut home, &mut about] {
        let patch = elements(&tab.next_event().await);
        assert!(
            patch.starts_with(r#"<link id="stylesheet-app" rel="stylesheet""#),
            "{patch}"
        );
        let href = patch
            .split("href=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let served = app.get(href).await.text().await.unwrap();
        assert_eq!(served, text, "{href} is the saved stylesheet");
    }

    // Act: a template is saved.
    let template = workspace.template("about.html");
    let html = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        html.replace("About this app", "About this edited app"),
    )
    .unwrap();

    // Assert: both tabs are told to reload, and the page shows the edit. (On a loaded machine
    // the watcher may report the stylesheet's save twice: a repeated stylesheet patch first is
    // harmless, and skipped.)
    for tab in [&mut home, &mut about] {
        let mut event = tab.next_event().await;
        while event.event == "datastar-patch-elements" {
            assert!(
                elements(&event).starts_with(r#"<link id="stylesheet-app""#),
                "{event:?}"
            );
            event = tab.next_event().await;
        }
        let event = signals(&event);
        assert!(event["_devReload"].is_string(), "{event}");
    }
    assert!(
        app.home_page_at("/about")
            .await
            .contains("About this edited app")
    );
}

#[tokio::test]
async fn a_broken_template_shows_where_and_what_then_recovers_on_the_next_save() {
    let workspace = Workspace::new();
    let app = spawn_dev_app(&workspace).await;
    let template = workspace.template("about.html");
    let good = std::fs::read_to_string(&template).unwrap();
    std::fs::write(&template, good.replace("{% endblock %}", "{% endblok %}")).unwrap();

    let response = app.get("/about").await;

    assert_eq!(response.status(), 500);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    for expected in ["Template error", "about.html", "endblok", "syntax error"] {
        assert!(page.contains(expected), "{expected:?} missing:\n{page}");
    }
    assert!(
        page.contains(r#"data-init="@get('/sse/dev?tab="#),
        "it reloads by itself"
    );

    std::fs::write(&template, good).unwrap();
    let fixed = app.get("/about").await;
    assert_eq!(fixed.status(), 200);
}

#[tokio::test]
async fn error_details_are_escaped() {
    let workspace = Workspace::new();
    let app = spawn_dev_app(&workspace).await;
    std::fs::write(
        workspace.template("about.html"),
        "{% if <script>alert(1)</script> %}",
    )
    .unwrap();

    let page = app.get("/about").await.text().await.unwrap();

    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(page.contains("&lt;script&gt;"), "{page}");
}
