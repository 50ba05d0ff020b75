//! Views: the kit's templates are the fallback and an app's win, a page opens its stream with
//! one call, user text is escaped, and the layout loads Datastar from the configured URL,
//! pinned by its hash. Rendered with the kit's test templates (`tests/support/templates`,
//! which only the template repository has: hence here, not beside `views.rs`).

use minijinja::context;
use rust_embed::RustEmbed;

use live::{
    Files,
    assets::Assets,
    views::{DATASTAR_CDN_INTEGRITY, DATASTAR_CDN_URL, DatastarScript, Views},
};
use uuid::Uuid;

/// The kit's test templates (`tests/support/templates`), read from disk in debug builds.
#[derive(RustEmbed)]
#[folder = "tests/support/templates/"]
struct Fixture;

fn views(datastar: DatastarScript) -> Views {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/templates");
    let templates = Files::new::<Fixture>(dir);
    let assets = Assets::new(Files::new::<Fixture>(dir));
    Views::new(datastar, templates, assets, Uuid::new_v4(), "notes")
}

fn from(url: &str) -> DatastarScript {
    DatastarScript {
        url: url.to_owned(),
        integrity: None,
    }
}

#[test]
fn the_kits_templates_are_the_fallback_and_the_apps_win() {
    // The fixture has no notice of its own: the kit's is used.
    let views = views(from(DATASTAR_CDN_URL));
    let kits = views
        .render("partials/notice.html", context! { notice => "Hi" })
        .unwrap();
    assert_eq!(
        kits,
        r#"<div id="notice" class="notice" role="alert">Hi</div>"#
    );

    // An app that has one gets its own.
    let dir = std::env::temp_dir().join(format!("views-{}", Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("partials")).unwrap();
    std::fs::write(
        dir.join("partials/notice.html"),
        "<p id=\"notice\">{{ notice }}</p>",
    )
    .unwrap();
    let templates = Files::new::<Fixture>(&dir);
    let assets = Assets::new(Files::new::<Fixture>(&dir));
    let own = Views::new(
        from(DATASTAR_CDN_URL),
        templates,
        assets,
        Uuid::new_v4(),
        "x",
    );
    let html = own
        .render("partials/notice.html", context! { notice => "Hi" })
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(html, r#"<p id="notice">Hi</p>"#);
}

#[test]
fn a_page_opens_its_stream_with_one_call_and_keeps_one_connection() {
    let html = views(from(DATASTAR_CDN_URL))
        .render("page.html", context! { note => () })
        .unwrap();
    // Every `data-init` but the dev notice's own clean-up (`datastar_missing.html`).
    let opens =
        html.matches("data-init=").count() - html.matches(r#"data-init="el.remove()""#).count();
    assert_eq!(opens, 1, "{html}");
    assert!(
        html.contains(
            "data-init=\"document.hidden ? (el.__waitingToBeShown = true) : \
             @get('/sse/notes', {retry: 'always'"
        ),
        "{html}"
    );
    assert!(html.contains(r#""sessionId":"#), "{html}");
    if cfg!(debug_assertions) {
        assert!(html.contains(r#"id="dev-reload""#), "the dev loop: {html}");
    }
}

#[test]
fn user_text_is_escaped_in_partials() {
    let html = views(from(DATASTAR_CDN_URL))
        .render(
            "partials/note.html",
            context! { note => context! { text => "<img src=x onerror=alert(1)>", number => 1 } },
        )
        .unwrap();
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    assert!(!html.contains("<img"), "{html}");
}

#[test]
fn the_layout_loads_datastar_from_the_configured_url_with_the_app_name() {
    // minijinja's HTML escaping writes `/` as `&#x2f;`, which browsers read back as `/`.
    let html = views(from("/static/datastar.js"))
        .render(
            "refused.html",
            context! { title => "Busy", message => "Later." },
        )
        .unwrap()
        .replace("&#x2f;", "/");
    assert!(
        html.contains(r#"<script type="module" src="/static/datastar.js"></script>"#),
        "{html}"
    );
    assert!(html.contains("<title>Busy · notes</title>"), "{html}");
}

#[test]
fn a_refusal_page_leads_back_to_the_form_it_came_from() {
    let page = |ctx| views(from("/d.js")).render("refused.html", ctx).unwrap();
    let home = page(context! { title => "No", message => "Not now." });
    assert!(
        home.contains(r#"<a href="/">Back to the home page</a>"#),
        "{home}"
    );
    let board = page(context! { title => "No", message => "Not now.", back => "/board" });
    assert!(
        board.contains(r#"<a href="&#x2f;board">Back to the form</a>"#),
        "{board}"
    );
}

#[test]
fn a_known_hash_pins_the_script() {
    let html = views(DatastarScript {
        url: DATASTAR_CDN_URL.to_owned(),
        integrity: Some(DATASTAR_CDN_INTEGRITY.to_owned()),
    })
    .render("refused.html", context! { title => "t", message => "m" })
    .unwrap();
    assert!(
        html.contains(&format!(
            r#"integrity="{DATASTAR_CDN_INTEGRITY}" crossorigin="anonymous""#
        )),
        "{html}"
    );
}
