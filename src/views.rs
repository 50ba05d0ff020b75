//! HTML rendering: the minijinja environment and the templates in `templates/`.
//!
//! Templates are embedded in release builds, so the binary runs with nothing beside it, and read
//! from disk in debug builds, so an edited template shows on the next request without a rebuild
//! (`rust-embed` does both from the same `#[folder]`).
//!
//! Every `.html` template is autoescaped: whatever a user typed is escaped wherever it is
//! printed, in full pages and in the partials that SSE patches carry alike.

use minijinja::{Environment, UndefinedBehavior, Value};
use rust_embed::RustEmbed;
use serde::Serialize;

/// Where pages load Datastar from unless `DATASTAR_URL` says otherwise: the 1.x release that the
/// `datastar` crate's events are written for.
pub const DATASTAR_CDN_URL: &str =
    "https://cdn.jsdelivr.net/gh/starfederation/datastar@1.0.4/bundles/datastar.js";

#[derive(RustEmbed)]
#[folder = "templates/"]
struct Templates;

/// Renders templates by name (`home.html`, `partials/greeting.html`).
#[derive(Debug)]
pub struct Views {
    datastar_url: String,
    /// Release builds parse each template once and keep it.
    #[cfg(not(debug_assertions))]
    env: Environment<'static>,
}

impl Views {
    /// Views whose layout loads Datastar from `datastar_url`.
    pub fn new(datastar_url: impl Into<String>) -> Self {
        let datastar_url = datastar_url.into();
        Views {
            #[cfg(not(debug_assertions))]
            env: environment(&datastar_url),
            datastar_url,
        }
    }

    /// Renders template `name` with `ctx` (anything `Serialize`, or minijinja's `context!`).
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, minijinja::Error> {
        #[cfg(debug_assertions)]
        let env = environment(&self.datastar_url);
        #[cfg(not(debug_assertions))]
        let env = &self.env;
        env.get_template(name)?.render(ctx)
    }

    /// The Datastar URL the layout uses.
    pub fn datastar_url(&self) -> &str {
        &self.datastar_url
    }
}

/// The shared set-up. In debug builds this runs per render: parsing a few small templates costs
/// well under a millisecond and means no stale cache to invalidate while editing.
fn environment(datastar_url: &str) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_loader(|name| {
        Ok(Templates::get(name).and_then(|file| String::from_utf8(file.data.into_owned()).ok()))
    });
    // Catch misspelt variables instead of printing nothing; `{% if x %}` on a missing `x` still
    // works.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.add_global("datastar_url", Value::from(datastar_url));
    // The package name, so the generated project's pages carry its own name.
    env.add_global("app_name", env!("CARGO_PKG_NAME"));
    // `{{ asset_url("app.css") }}`: a URL with a content hash, cacheable for a year.
    // Safe to print unescaped: a path written in a template plus a hex hash.
    env.add_function("asset_url", |path: &str| {
        Value::from_safe_string(crate::assets::url(path))
    });
    env
}

#[cfg(test)]
mod tests {
    use minijinja::context;

    use super::*;

    #[test]
    fn user_text_is_escaped_in_partials() {
        let views = Views::new(DATASTAR_CDN_URL);
        let html = views
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
        let views = Views::new("/static/datastar.js");
        // minijinja's HTML escaping writes `/` as `&#x2f;`, which browsers read back as `/`.
        let html = views
            .render("about.html", context! {})
            .unwrap()
            .replace("&#x2f;", "/");
        assert!(
            html.contains(r#"<script type="module" src="/static/datastar.js"></script>"#),
            "{html}"
        );
    }
}
