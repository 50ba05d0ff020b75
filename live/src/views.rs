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
