//! A live, server-rendered web app: pages, streams and actions on the `live` kit.
//!
//! Each page opens one SSE stream when it loads; the kit keeps it in its registry under the
//! tab's key (`page/home/<tab>`), and every later action pushes its effects to the streams it
//! targets (`page/home/*`), so every open tab updates live. Without JavaScript the same forms
//! work as plain HTML posts.
//!
//! - [`home`]: the home page — its page, stream, actions and events.
//! - [`about`]: a page without a stream.
//! - [`greeting`]: the example domain.
//!
//! The machinery (the registry, SSE, serving, settings, the dev loop, Redis) is the kit's, in
//! `live/`; this crate is the app's own code.

pub mod about;
pub mod greeting;
pub mod home;

use axum::{
    Router,
    extract::FromRef,
    routing::{get, post},
};
use live::{Files, Live, Settings, Site};

/// What every handler can reach: the kit's state, and whatever the app adds (a database pool,
/// say) beside it.
#[derive(Clone, Debug)]
pub struct AppState {
    pub live: Live,
}

impl FromRef<AppState> for Live {
    fn from_ref(state: &AppState) -> Live {
        state.live.clone()
    }
}

/// `templates/`, inside the binary in release builds.
#[derive(rust_embed::RustEmbed)]
#[folder = "templates/"]
struct Templates;

/// `static/`, inside the binary in release builds.
#[derive(rust_embed::RustEmbed)]
#[folder = "static/"]
struct Static;

impl AppState {
    /// The app's state under `settings`.
    pub fn new(settings: &Settings) -> Self {
        let site = Site {
            name: env!("CARGO_PKG_NAME"),
            templates: Files::new::<Templates>(concat!(env!("CARGO_MANIFEST_DIR"), "/templates")),
            static_files: Files::new::<Static>(concat!(env!("CARGO_MANIFEST_DIR"), "/static")),
        };
        AppState {
            live: Live::new(settings, site),
        }
    }
}

/// Every route of the app. Actions go through [`live::actions`] (body limit, timeout, CSRF,
/// refusals shown to whoever caused them); the kit adds its own routes (static files, health,
/// the dev loop) and the layers every response gets.
pub fn router(state: AppState) -> Router {
    let actions = Router::new().route("/api/greet", post(home::actions::greet));
    let router = Router::new()
        .route("/", get(home::page::show))
        .route("/sse/home", get(home::stream::open))
        .route("/about", get(about::show))
        .merge(live::actions(actions, &state.live))
        .merge(live::routes());
    live::layers(router, &state.live).with_state(state)
}
