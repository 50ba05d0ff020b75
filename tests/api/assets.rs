use crate::helpers::spawn_app;

/// The versioned URL the layout links the stylesheet with.
async fn stylesheet_url(app: &crate::helpers::TestApp) -> String {
    let page = app.home_page().await;
    let start = page
        .find("/static/app.css?v=")
        .expect("a versioned stylesheet link");
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

#[tokio::test]
async fn the_stylesheet_is_served_with_validators() {
    let app = spawn_app().await;

    let response = app.get("/static/app.css").await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/css");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\"") && etag.ends_with('"'), "{etag}");
    let last_modified = response.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();
    let css = response.text().await.unwrap();
    assert_eq!(css, std::fs::read_to_string("static/app.css").unwrap());

    // A client holding the current copy gets 304 and no body, by ETag or by date.
    for (name, value) in [
        ("if-none-match", &etag),
        ("if-modified-since", &last_modified),
    ] {
        let revalidated = app
            .client()
            .get(app.url("/static/app.css"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(revalidated.status(), 304, "{name}");
        assert!(revalidated.bytes().await.unwrap().is_empty());
    }

    // A stale copy gets the file again.
    let stale = app
        .client()
        .get(app.url("/static/app.css"))
        .header("if-none-match", "W/\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
}

#[tokio::test]
async fn versioned_urls_are_cached_for_a_year() {
    let app = spawn_app().await;
    let url = stylesheet_url(&app).await;

    let response = app.get(&url).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    // The version is the one in the ETag: a changed file gets a new URL.
    let version = url.split("?v=").nth(1).unwrap();
    assert_eq!(response.headers()["etag"], format!("W/\"{version}\""));

    // An outdated version is served, but not cached for long.
    let outdated = app.get("/static/app.css?v=000000000000").await;
    assert_eq!(outdated.status(), 200);
    assert_eq!(outdated.headers()["cache-control"], "no-cache");
}

#[tokio::test]
async fn the_stylesheet_is_gzipped_when_accepted() {
    let app = spawn_app().await;

    let response = app
        .client()
        .get(app.url("/static/app.css"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();

    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert!(
        response.headers()["etag"]
            .to_str()
            .unwrap()
            .starts_with("W/")
    );
}

#[tokio::test]
async fn missing_files_and_traversal_are_404() {
    let app = spawn_app().await;

    for path in [
        "/static/missing.css",
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/..%2fCargo.toml",
        "/static/..%5cCargo.toml",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
    }
}
