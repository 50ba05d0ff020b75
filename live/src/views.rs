//! HTML rendering: the minijinja environment and the app's templates.
//!
//! Release builds take the templates the app embedded and parse each one once, so the binary
//! runs with nothing beside it. Debug builds read them from disk on every render, so an edited
//! template shows on the next request without a rebuild (and a broken one recovers on the next
//! save).
//!
//! The kit has templates of its own (`live/templates/`: the notice, the refusal page, the
//! markup of a page's stream, the status badge, the dev loop), embedded in the kit. A template
//! is looked up in the app's `templates/` first, so an app overrides one of the kit's by
//! putting a file of the same name there; without one, the kit's is used.
//!
//! Every `.html` template is autoescaped: whatever a user typed is escaped wherever it is
//! printed, in full pages and in the partials that SSE patches carry alike.

use datastar::prelude::PatchElements;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;
use uuid::Uuid;

pub use crate::script::{DATASTAR_CDN_INTEGRITY, DATASTAR_CDN_URL, DatastarScript};
use crate::{
    assets::{Assets, Files},
    frame::Frame,
    markup,
};

/// The kit's own templates (`live/templates/`), the fallback for every name the app's
/// `templates/` lacks.
#[derive(rust_embed::RustEmbed)]
#[folder = "templates/"]
struct KitTemplates;

/// [`KitTemplates`], read from disk in debug builds like the app's.
fn kit_templates() -> Files {
    Files::new::<KitTemplates>(concat!(env!("CARGO_MANIFEST_DIR"), "/templates"))
}

/// What every template can use besides its own context.
#[derive(Debug, Clone)]
struct Globals {
    datastar: DatastarScript,
    assets: Assets,
    instance: Uuid,
    app_name: &'static str,
}

/// Renders templates by name (`home.html`, `partials/greeting.html`).
#[derive(Debug)]
pub struct Views {
    globals: Globals,
    /// Release builds parse each template once and keep it.
    #[cfg(not(debug_assertions))]
    env: Environment<'static>,
    /// The templates; debug builds read their folder on every render.
    templates: Files,
}

impl Views {
    /// Views of `templates` whose layout loads `datastar` and links `assets`. `instance` names
    /// this server process (dev builds reload a page rendered by another one); `app_name` is
    /// the app's, for page titles.
    pub fn new(
        datastar: DatastarScript,
        templates: Files,
        assets: Assets,
        instance: Uuid,
        app_name: &'static str,
    ) -> Self {
        let globals = Globals {
            datastar,
            assets,
            instance,
            app_name,
        };
        Views {
            #[cfg(not(debug_assertions))]
            env: environment(&globals, &templates),
            templates,
            globals,
        }
    }

    /// Renders template `name` with `ctx` (anything `Serialize`, or minijinja's `context!`).
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, minijinja::Error> {
        #[cfg(debug_assertions)]
        let env = environment(&self.globals, &self.templates);
        #[cfg(not(debug_assertions))]
        let env = &self.env;
        env.get_template(name)?.render(ctx)
    }

    /// Renders template `name` (a partial, usually) into an event that patches its elements into
    /// the page — the same template the full page includes, so a patch and a fresh page agree.
    pub fn patch(&self, name: &str, ctx: impl Serialize) -> Result<Frame, minijinja::Error> {
        Ok(PatchElements::new(self.render(name, ctx)?).into())
    }

    /// Where the layout loads Datastar from.
    pub fn datastar(&self) -> &DatastarScript {
        &self.globals.datastar
    }

    /// The static files the templates link to.
    pub fn assets(&self) -> &Assets {
        &self.globals.assets
    }

    /// The templates.
    pub fn templates(&self) -> &Files {
        &self.templates
    }
}

/// The shared set-up. In debug builds this runs per render: parsing a few small templates costs
/// well under a millisecond and leaves no stale cache to invalidate while editing.
fn environment(globals: &Globals, templates: &Files) -> Environment<'static> {
    let mut env = Environment::new();
    let (app, kit) = (templates.clone(), kit_templates());
    env.set_loader(move |name| {
        Ok(app
            .get(name)
            .or_else(|| kit.get(name))
            .and_then(|file| String::from_utf8(file.data.into_owned()).ok()))
    });
    // Catch misspelt variables instead of printing nothing; `{% if x %}` on a missing `x` still
    // works.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.add_global("datastar_url", Value::from(globals.datastar.url.as_str()));
    env.add_global(
        "datastar_integrity",
        Value::from(globals.datastar.integrity.clone()),
    );
    // The package name, so the generated project's pages carry its own name.
    env.add_global("app_name", globals.app_name);
    // Debug builds add the dev loop to every page (see `crate::dev`).
    env.add_global("dev", cfg!(debug_assertions));
    env.add_global("instance", globals.instance.to_string());
    // The longest wait between two attempts to reopen a stream (see `markup`).
    env.add_global("retry_max_wait", markup::RETRY_MAX_WAIT_MS);
    // `{{ asset_url("app.css") }}`: a URL with a content hash, cacheable for a year. Safe to
    // print unescaped: a path written in a template plus a hex hash.
    let assets = globals.assets.clone();
    env.add_function("asset_url", move |path: &str| {
        Value::from_safe_string(assets.url(path))
    });
    // `{{ new_id() }}`: a fresh UUID, e.g. for a tab's stream key.
    env.add_function("new_id", || Uuid::new_v4().to_string());
    // `{{ live_stream("/sse/home") }}`, `{{ live_status() }}`, `{{ live_dev() }}`.
    markup::add_functions(&mut env);
    env
}

#[cfg(test)]
mod tests {
    use minijinja::context;
    use rust_embed::RustEmbed;

    use super::*;

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
}
