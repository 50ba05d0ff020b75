use crate::helpers::spawn_app;

#[tokio::test]
async fn the_stylesheet_is_served_with_a_validator() {
    let app = spawn_app().await;

    let response = app.get("/static/app.css").await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/css");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let css = response.text().await.unwrap();
    assert_eq!(css, std::fs::read_to_string("static/app.css").unwrap());

    // A client holding the current copy gets 304 and no body.
    let revalidated = app
        .client
        .get(app.url("/static/app.css"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert!(revalidated.bytes().await.unwrap().is_empty());

    // A stale copy gets the file again.
    let stale = app
        .client
        .get(app.url("/static/app.css"))
        .header("if-none-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
}

#[tokio::test]
async fn missing_files_and_traversal_are_404() {
    let app = spawn_app().await;

    for path in [
        "/static/missing.css",
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/..%2fCargo.toml",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
    }
}
