use crate::helpers::{session_id_in, spawn_app, spawn_app_with};

#[tokio::test]
async fn home_renders_the_layout_the_form_and_the_stream_anchor() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.get("/").await;

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let page = response.text().await.unwrap();
    for expected in [
        r#"rel="stylesheet" href="/static/app.css?v="#,
        r#"<script type="module" src="https:"#,
        r#"data-init="document.hidden ? (el.__waitingToBeShown = true) : @get('/sse/home'"#,
        r#"<form id="greet-form" method="post" action="/api/greet""#,
        r#"<input id="name" name="name""#,
        r#"data-text="$connected ? 'live' : 'offline'""#,
        r#"<section id="greeting""#,
        r#"<p id="greet-error""#,
        "Nobody has been greeted yet.",
    ] {
        assert!(page.contains(expected), "missing {expected:?} in:\n{page}");
    }
}

#[tokio::test]
async fn every_load_gets_a_fresh_v4_session_id() {
    let app = spawn_app().await;

    let first = session_id_in(&app.home_page().await);
    let second = session_id_in(&app.home_page().await);

    assert_ne!(first, second);
    assert_eq!(first.get_version_num(), 4);
}

#[tokio::test]
async fn datastar_url_overrides_the_cdn() {
    let app = spawn_app_with(|config| config.datastar_url = "/vendor/ds.js?v=1&x=<2>".into()).await;

    let page = app.home_page().await;

    // The URL is escaped like any other value: `&` and `<` cannot break out of the attribute.
    assert!(
        page.contains(
            r#"<script type="module" src="&#x2f;vendor&#x2f;ds.js?v=1&amp;x=&lt;2&gt;">"#
        ),
        "{page}"
    );
    assert!(!page.contains("cdn.jsdelivr.net"));
}

#[tokio::test]
async fn the_default_datastar_is_pinned_by_its_hash_and_the_csp_names_the_one_file() {
    let app = spawn_app().await;

    let response = app.get("/").await;

    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains(&format!(
            "script-src 'self' {} 'unsafe-eval';",
            live::views::DATASTAR_CDN_URL
        )),
        "{csp}"
    );
    let page = response.text().await.unwrap();
    assert!(
        page.contains(&format!(
            r#"integrity="{}" crossorigin="anonymous""#,
            live::views::DATASTAR_CDN_INTEGRITY
        )),
        "{page}"
    );
    // The name field refuses more than a name's worth before anything is sent.
    assert!(page.contains(r#"maxlength="64""#), "{page}");
}

#[tokio::test]
async fn about_renders_with_the_layout() {
    let app = spawn_app().await;

    let response = app.get("/about").await;

    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("<h1>About this app</h1>"), "{page}");
    assert!(page.contains(r#"rel="stylesheet" href="/static/app.css?v="#));
    assert!(page.contains(r#"<a href="/about">About</a>"#));
}

#[tokio::test]
async fn healthz_reports_ok_and_open_streams() {
    let app = spawn_app().await;

    let health: serde_json::Value = app.get("/healthz").await.json().await.unwrap();
    assert_eq!(
        health,
        serde_json::json!({ "status": "ok", "streams": 0, "log_lines_dropped": 0 })
    );

    let _stream = app.open_live_home_stream().await;
    let health: serde_json::Value = app.get("/healthz").await.json().await.unwrap();
    assert_eq!(health["streams"], 1);
}

#[tokio::test]
async fn healthz_says_draining_once_shutdown_begins() {
    let app = spawn_app().await;

    app.state
        .live
        .registry
        .shut_down(&live::events::restarting());

    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 503);
    let health: serde_json::Value = response.json().await.unwrap();
    assert_eq!(health["status"], "draining");
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let app = spawn_app_with(|config| {
        config.datastar_url = "https://cdn.example:8443/datastar.js".into();
    })
    .await;

    for path in ["/", "/about", "/static/app.css", "/nope"] {
        let response = app.get(path).await;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self' https://cdn.example:8443/datastar.js 'unsafe-eval';"),
            "the one file, not the whole CDN: {path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    }
}

#[tokio::test]
async fn pages_are_compressed_for_clients_that_accept_it() {
    let app = spawn_app().await;

    let response = app
        .client()
        .get(app.url("/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let plain = app.get("/").await;
    assert!(plain.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let app = spawn_app().await;
    assert_eq!(app.get("/nope").await.status(), 404);
}
