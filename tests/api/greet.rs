use crate::helpers::{elements, reply_events, session_id_in, signals, spawn_app};

#[tokio::test]
async fn one_greet_reaches_every_open_home_stream() {
    // Arrange
    let app = spawn_app().await;
    let mut tab_a = app.open_live_home_stream().await;
    let mut tab_b = app.open_live_home_stream().await;

    // Act
    let response = app.greet_with_datastar("Ada").await;

    // Assert
    let reply = reply_events(response).await;
    for tab in [&mut tab_a, &mut tab_b] {
        let greeting = elements(&tab.next_event().await);
        assert!(greeting.contains(r#"<section id="greeting""#), "{greeting}");
        assert!(
            greeting.contains("Hello, <strong>Ada</strong>!"),
            "{greeting}"
        );
    }
    // The caller's form is reset: no error, no notice, empty field.
    assert_eq!(reply.len(), 3, "{reply:?}");
    assert_eq!(
        elements(&reply[0]),
        r#"<p id="greet-error" class="error" role="alert"></p>"#
    );
    assert_eq!(
        elements(&reply[1]),
        r#"<div id="notice" class="notice" role="alert"></div>"#
    );
    assert_eq!(signals(&reply[2]), serde_json::json!({ "_draft": "" }));
}

#[tokio::test]
async fn a_datastar_greet_is_answered_without_a_redirect() {
    let app = spawn_app().await;

    let response = app.greet_with_datastar("Ada").await;

    assert_eq!(response.status(), 200);
    assert!(response.headers().get("location").is_none());
    assert_eq!(response.headers()["content-type"], "text/event-stream");
}

#[tokio::test]
async fn a_plain_form_post_redirects_to_a_page_showing_the_greeting() {
    let app = spawn_app().await;
    let mut live_tab = app.open_live_home_stream().await;

    let response = app.greet_with_form("  Grace  ").await;

    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    let page = app.home_page().await;
    assert!(page.contains("Hello, <strong>Grace</strong>!"), "{page}");
    // Live tabs see a plain post too.
    assert!(elements(&live_tab.next_event().await).contains("<strong>Grace</strong>"));
}

#[tokio::test]
async fn bad_names_show_a_message_to_datastar_callers_and_broadcast_nothing() {
    let app = spawn_app().await;
    let mut tab = app.open_live_home_stream().await;
    let cases = [
        ("", "Please enter a name."),
        ("   \t ", "Please enter a name."),
        (&*"x".repeat(65), "too long"),
        ("two\nlines", "line breaks"),
        ("\u{200B}\u{200D}\u{FEFF}", "Please enter a name."),
        ("Ada\u{202E}nimda", "direction of text"),
    ];

    for (name, message) in cases {
        let reply = reply_events(app.greet_with_datastar(name).await).await;

        assert_eq!(reply.len(), 1, "{name:?}: {reply:?}");
        let html = elements(&reply[0]);
        assert!(html.starts_with(r#"<p id="greet-error""#), "{html}");
        assert!(html.contains(message), "{name:?}: {html}");
    }

    // Nothing was broadcast: the next event the tab sees is the next valid greeting.
    app.greet_with_datastar("Ada").await;
    let next = elements(&tab.next_event().await);
    assert!(
        next.contains("Ada") && next.contains("Greeting #1"),
        "{next}"
    );
}

#[tokio::test]
async fn bad_names_in_a_plain_post_get_the_page_back_with_422() {
    let app = spawn_app().await;

    let response = app.greet_with_form("").await;

    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("Please enter a name."), "{page}");
    assert!(page.contains(r#"<form id="greet-form""#));
    session_id_in(&page); // a working page, with its own session id
    assert!(
        app.state
            .live
            .registry
            .latest(&app::greeting::GREETING)
            .is_none(),
        "nothing recorded"
    );
}

#[tokio::test]
async fn a_refused_draft_is_kept_and_escaped() {
    let app = spawn_app().await;
    let draft = format!("\"><script>alert(1)</script>{}", "x".repeat(64));

    let response = app.greet_with_form(&draft).await;

    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(
        page.contains(r#"value="&quot;&gt;&lt;script&gt;alert(1)&lt;&#x2f;script&gt;xxx"#),
        "{page}"
    );
}

#[tokio::test]
async fn markup_in_names_is_escaped_in_patches_and_pages() {
    let app = spawn_app().await;
    let mut tab = app.open_live_home_stream().await;
    let name = r#"<img src=x onerror="alert(1)">"#;

    app.greet_with_datastar(name).await;

    let patch = elements(&tab.next_event().await);
    assert!(!patch.contains("<img"), "{patch}");
    assert!(
        patch.contains("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"),
        "{patch}"
    );
    let page = app.home_page().await;
    assert!(!page.contains("<img"), "{page}");
    assert!(page.contains("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"));
}

#[tokio::test]
async fn oversize_bodies_are_refused_with_a_message_and_change_nothing() {
    let app = spawn_app().await;
    let mut tab = app.open_live_home_stream().await;
    let huge = "x".repeat(8 * 1024);

    // Datastar shows nothing of a non-200 answer: the refusal comes as a patch.
    let reply = reply_events(app.greet_with_datastar(&huge).await).await;
    assert!(elements(&reply[0]).contains("far too long"), "{reply:?}");
    // Without JavaScript: the page again, with the message, as 413.
    let response = app.greet_with_form(&huge).await;
    assert_eq!(response.status(), 413);
    assert!(response.text().await.unwrap().contains("far too long"));

    assert!(
        app.state
            .live
            .registry
            .latest(&app::greeting::GREETING)
            .is_none()
    );
    app.greet_with_datastar("Ada").await;
    assert!(elements(&tab.next_event().await).contains("Greeting #1"));
}

#[tokio::test]
async fn a_missing_name_field_counts_as_empty() {
    let app = spawn_app().await;

    let response = app
        .client()
        .post(app.url("/api/greet"))
        .header("datastar-request", "true")
        .form(&[("other", "x")])
        .send()
        .await
        .unwrap();

    let reply = reply_events(response).await;
    assert!(elements(&reply[0]).contains("Please enter a name."));
}

#[tokio::test]
async fn greetings_are_numbered() {
    let app = spawn_app().await;
    let mut tab = app.open_live_home_stream().await;

    for expected in 1..=3 {
        app.greet_with_datastar("Ada").await;
        let patch = elements(&tab.next_event().await);
        assert!(patch.contains(&format!("Greeting #{expected}")), "{patch}");
    }
}

#[tokio::test]
async fn refusals_show_through_the_kits_own_templates() {
    // Arrange: the app has no notice or refusal template of its own; the kit's are used.
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for kits in ["partials/notice.html", "refused.html"] {
        assert!(!templates.join(kits).exists(), "{kits} is the kit's");
    }
    let app = spawn_app().await;
    let cross_site = |request: reqwest::RequestBuilder| {
        request
            .header("sec-fetch-site", "cross-site")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("name=Eve")
    };

    // Act: a cross-site plain post, and the same through Datastar.
    let plain = cross_site(app.client().post(app.url("/api/greet")))
        .send()
        .await
        .unwrap();
    let datastar = cross_site(app.client().post(app.url("/api/greet")))
        .header("datastar-request", "true")
        .send()
        .await
        .unwrap();

    // Assert: a page in the app's layout for the one, the page's notice for the other.
    assert_eq!(plain.status(), 403);
    let page = plain.text().await.unwrap();
    assert!(page.contains("<h1>Refused</h1>"), "{page}");
    assert!(page.contains(r#"<header class="site-header">"#), "{page}");
    assert_eq!(datastar.status(), 200, "Datastar shows only a 200's events");
    let events = reply_events(datastar).await;
    let notice = elements(&events[0]);
    assert!(
        notice.starts_with(
            r#"<div id="notice" class="notice" role="alert">This form was sent from another site"#
        ),
        "{notice}"
    );
}
