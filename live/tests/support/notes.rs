//! A small app on the kit, for the kit's tests and benchmark: one page whose stream follows a
//! latest-state topic (the latest note), an action that publishes a new note, and one that
//! broadcasts an ordinary event (a shout: every one delivered, in order), and one that
//! re-renders a region of 200 rows with one changed (a fat morph, for the benchmark's
//! compressed streams). It uses the kit the
//! way an app does: `Live`, `Stream`, `publish_latest`, `broadcast`, `actions`, `routes`,
//! `layers`.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::{
    Form, Router,
    extract::State,
    response::{Html, Response},
    routing::{get, post},
};
use live::{
    Caller, Error, Files, Frame, Live, Pattern, Presence, Settings, Signals, Site, Stream, Tab,
    Topic,
};
use minijinja::context;
use serde::{Deserialize, Serialize};

/// One note: what the page shows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub number: u64,
}

/// The latest note, shown on every notes page.
pub static NOTE: Topic<Note> = Topic::new("note");

#[derive(rust_embed::RustEmbed)]
#[folder = "tests/support/templates/"]
struct Templates;

#[derive(rust_embed::RustEmbed)]
#[folder = "tests/support/static/"]
struct Static;

/// The notes app's kit state under `settings`.
pub fn live(settings: &Settings) -> Live {
    let dir = |name: &str| format!("{}/tests/support/{name}", env!("CARGO_MANIFEST_DIR"));
    Live::new(
        settings,
        Site {
            name: "notes",
            templates: Files::new::<Templates>(dir("templates")),
            static_files: Files::new::<Static>(dir("static")),
        },
    )
}

/// Every route of the notes app.
pub fn router(live: Live) -> Router {
    let actions = Router::new()
        .route("/notes", post(publish))
        .route("/shouts", post(shout))
        .route("/rows", post(rows));
    let router = Router::new()
        .route("/", get(page))
        .route("/sse/notes", get(stream))
        .route("/sse/present", get(present))
        .merge(live::actions(actions, &live))
        .merge(live::routes());
    live::layers(router, &live).with_state(live)
}

/// Every open notes page.
pub fn pages() -> Pattern {
    Pattern::page("notes").unwrap()
}

/// `#note` showing `note`.
pub fn patch(live: &Live, note: Option<&Note>) -> Result<Frame, Error> {
    Ok(live.views.patch("partials/note.html", context! { note })?)
}

async fn page(State(live): State<Live>) -> Result<Html<String>, Error> {
    let note = live.registry.latest(&NOTE);
    Ok(Html(live.views.render("page.html", context! { note })?))
}

async fn stream(
    State(live): State<Live>,
    stream: Stream,
    Signals(tab): Signals<Tab>,
) -> Result<Response, Error> {
    stream
        .starting_with(&NOTE, patch(&live, None)?)
        .open_tab("notes", tab.session_id)
}

/// The streams of `/sse/present`: a page that shows only how many are open.
pub static PRESENT: Presence = Presence::new("present", "page/present/*");

/// `GET /sse/present`: a stream that shows [`PRESENT`], under `page/present/<tab>` (for the
/// benchmark's join storms).
async fn present(stream: Stream, Signals(tab): Signals<Tab>) -> Result<Response, Error> {
    stream
        .counting(&PRESENT)
        .open_tab("present", tab.session_id)
}

#[derive(Deserialize)]
struct NoteForm {
    text: String,
}

/// `POST /shouts`: the text, as an ordinary event to every notes page.
async fn shout(
    State(live): State<Live>,
    caller: Caller,
    Form(form): Form<NoteForm>,
) -> Result<Response, Error> {
    static SHOUTS: AtomicU64 = AtomicU64::new(0);
    let number = SHOUTS.fetch_add(1, Ordering::Relaxed) + 1;
    let patch = live.views.patch(
        "partials/shout.html",
        context! { number, text => form.text },
    )?;
    live.registry.broadcast(&pages(), &patch);
    caller.done(|| Ok::<_, Error>(Vec::new()), "/")
}

/// One row of the region `POST /rows` re-renders.
#[derive(Serialize)]
struct Row {
    id: u64,
    score: u64,
    text: Option<String>,
}

/// `POST /rows`: a region of 200 rows (about 20 KB) re-rendered whole, the text in one row
/// (the next each time) and the others as they were, to every notes page as an ordinary event
/// — what Datastar's "render big, morph, compress the stream" sends.
async fn rows(
    State(live): State<Live>,
    caller: Caller,
    Form(form): Form<NoteForm>,
) -> Result<Response, Error> {
    static CHANGES: AtomicU64 = AtomicU64::new(0);
    let changed = CHANGES.fetch_add(1, Ordering::Relaxed) % 200;
    let rows: Vec<Row> = (0..200)
        .map(|id| Row {
            id,
            score: id * 37 % 1000,
            text: (id == changed).then(|| form.text.clone()),
        })
        .collect();
    let patch = live.views.patch("partials/rows.html", context! { rows })?;
    live.registry.broadcast(&pages(), &patch);
    caller.done(|| Ok::<_, Error>(Vec::new()), "/")
}

async fn publish(
    State(live): State<Live>,
    caller: Caller,
    Form(form): Form<NoteForm>,
) -> Result<Response, Error> {
    live.registry
        .publish_latest(&NOTE, &pages(), |number| {
            let note = Note {
                text: form.text,
                number,
            };
            let patch = patch(&live, Some(&note))?;
            Ok::<_, Error>((note, patch))
        })
        .await?;
    caller.done(|| Ok::<_, Error>(Vec::new()), "/")
}
