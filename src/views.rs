//! HTML rendering: the minijinja environment and the templates in `templates/`.
//!
//! Release builds embed the templates and parse each one once, so the binary runs with nothing
//! beside it. Debug builds read them from disk on every render, so an edited template shows on
//! the next request without a rebuild (and a broken one recovers on the next save).
//!
//! Every `.html` template is autoescaped: whatever a user typed is escaped wherever it is
//! printed, in full pages and in the partials that SSE patches carry alike.

#[cfg(debug_assertions)]
use std::path::PathBuf;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;
use uuid::Uuid;

use crate::assets::Assets;

/// Where pages load Datastar from unless `DATASTAR_URL` says otherwise: the 1.x release that the
/// `datastar` crate's events are written for.
pub const DATASTAR_CDN_URL: &str =
    "https://cdn.jsdelivr.net/gh/starfederation/datastar@1.0.4/bundles/datastar.js";

/// The subresource-integrity hash of the file at [`DATASTAR_CDN_URL`]: a browser runs that
/// file only if its bytes hash to this, so a compromised CDN cannot serve anything else. (The
/// file's SHA-256 is `727844ad…cac470cf91`.)
pub const DATASTAR_CDN_INTEGRITY: &str =
    "sha384-twbOvafhSBQ0rJDNPzJdUw6DRvthVgAVfSIG1BQVmCiNO7Qh2zeVn7T5qstgjJ9q";

#[cfg(not(debug_assertions))]
#[derive(rust_embed::RustEmbed)]
#[folder = "templates/"]
struct Embedded;

/// Where the layout's `<script>` loads Datastar from, and the hash it must have.
#[derive(Debug, Clone, Default)]
pub struct DatastarScript {
    /// `DATASTAR_URL`.
    pub url: String,
    /// `DATASTAR_INTEGRITY`, or the known hash of the URL.
    pub integrity: Option<String>,
}

/// What every template can use besides its own context.
#[derive(Debug, Clone)]
struct Globals {
    datastar: DatastarScript,
    assets: Assets,
    instance: Uuid,
}

/// Renders templates by name (`home.html`, `partials/greeting.html`).
#[derive(Debug)]
pub struct Views {
    globals: Globals,
    /// Release builds parse each template once and keep it.
    #[cfg(not(debug_assertions))]
    env: Environment<'static>,
    /// Debug builds read this folder on every render.
    #[cfg(debug_assertions)]
    templates_dir: PathBuf,
}

impl Views {
    /// Views whose layout loads `datastar` and links `assets`. `instance` names this server
    /// process (dev builds reload a page rendered by another one).
    pub fn new(datastar: DatastarScript, assets: Assets, instance: Uuid) -> Self {
        let globals = Globals {
            datastar,
            assets,
            instance,
        };
        Views {
            #[cfg(not(debug_assertions))]
            env: environment(&globals),
            #[cfg(debug_assertions)]
            templates_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/templates")),
            globals,
        }
    }

    /// Reads templates from `dir` instead of the crate's `templates/` (debug builds only).
    #[cfg(debug_assertions)]
    pub fn with_templates_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.templates_dir = dir.into();
        self
    }

    /// Renders template `name` with `ctx` (anything `Serialize`, or minijinja's `context!`).
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, minijinja::Error> {
        #[cfg(debug_assertions)]
        let env = {
            let mut env = environment(&self.globals);
            env.set_loader(minijinja::path_loader(&self.templates_dir));
            env
        };
        #[cfg(not(debug_assertions))]
        let env = &self.env;
        env.get_template(name)?.render(ctx)
    }

    /// Where the layout loads Datastar from.
    pub fn datastar(&self) -> &DatastarScript {
        &self.globals.datastar
    }

    /// The static files the templates link to.
    pub fn assets(&self) -> &Assets {
        &self.globals.assets
    }
}

/// The shared set-up. In debug builds this runs per render: parsing a few small templates costs
/// well under a millisecond and leaves no stale cache to invalidate while editing.
fn environment(globals: &Globals) -> Environment<'static> {
    let mut env = Environment::new();
    #[cfg(not(debug_assertions))]
    env.set_loader(|name| {
        Ok(<Embedded as rust_embed::RustEmbed>::get(name)
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
    env.add_global("app_name", env!("CARGO_PKG_NAME"));
    // Debug builds add the dev loop to every page (see `crate::dev`).
    env.add_global("dev", cfg!(debug_assertions));
    env.add_global("instance", globals.instance.to_string());
    // The longest wait between two attempts to reopen a stream: short while developing (the
    // server restarts often), 30 s in production (spreads out a reconnect storm).
    env.add_global(
        "retry_max_wait",
        if cfg!(debug_assertions) {
            2_000
        } else {
            30_000
        },
    );
    // `{{ asset_url("app.css") }}`: a URL with a content hash, cacheable for a year. Safe to
    // print unescaped: a path written in a template plus a hex hash.
    let assets = globals.assets.clone();
    env.add_function("asset_url", move |path: &str| {
        Value::from_safe_string(assets.url(path))
    });
    // `{{ new_id() }}`: a fresh UUID, e.g. for a tab's stream key.
    env.add_function("new_id", || Uuid::new_v4().to_string());
    env
}

#[cfg(test)]
mod tests {
    use minijinja::context;

    use super::*;

    fn views(datastar_url: &str) -> Views {
        let datastar = DatastarScript {
            url: datastar_url.to_owned(),
            integrity: None,
        };
        Views::new(datastar, Assets::default(), Uuid::new_v4())
    }

    #[test]
    fn user_text_is_escaped_in_partials() {
        let html = views(DATASTAR_CDN_URL)
            .render(
                "partials/greeting.html",
                context! { greeting => context! { name => "<img src=x onerror=alert(1)>", serial => 1 } },
            )
            .unwrap();
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
    }

    #[test]
    fn the_layout_loads_datastar_from_the_configured_url() {
        // minijinja's HTML escaping writes `/` as `&#x2f;`, which browsers read back as `/`.
        let html = views("/static/datastar.js")
            .render("about.html", context! {})
            .unwrap()
            .replace("&#x2f;", "/");
        assert!(
            html.contains(r#"<script type="module" src="/static/datastar.js"></script>"#),
            "{html}"
        );
    }

    #[test]
    fn a_known_hash_pins_the_script() {
        let datastar = DatastarScript {
            url: DATASTAR_CDN_URL.to_owned(),
            integrity: Some(DATASTAR_CDN_INTEGRITY.to_owned()),
        };
        let html = Views::new(datastar, Assets::default(), Uuid::new_v4())
            .render("about.html", context! {})
            .unwrap();
        assert!(
            html.contains(&format!(
                r#"integrity="{DATASTAR_CDN_INTEGRITY}" crossorigin="anonymous""#
            )),
            "{html}"
        );
    }
}
