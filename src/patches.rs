//! The Datastar events the home page understands, each built (and encoded) in one place.
//!
//! Pages, streams and actions all describe the same elements (`#greeting`, `#greet-error`) and
//! signals (`connected`, `sessionId`, `_draft`); keeping the events here means a renamed id or
//! signal is changed once. Partials are rendered through the same templates the full page
//! includes, so a patch and a fresh page always agree.

use datastar::prelude::{PatchElements, PatchSignals};
use minijinja::context;
use serde_json::json;
use uuid::Uuid;

use crate::{greeting::Greeting, sse::Frame, views::Views};

/// `{connected: true}`: the first event on every (re)connect, turning the indicator live.
pub fn connected() -> Frame {
    PatchSignals::new(json!({ "connected": true }).to_string()).into()
}

/// `{connected: false}`: the page's stream is not live (sent with a refusal).
pub fn disconnected() -> Frame {
    PatchSignals::new(json!({ "connected": false }).to_string()).into()
}

/// Shows `message` in the page's notice area (every page has one, in the layout), or empties it.
/// What a refused request says to the person who made it: Datastar ignores the body of any
/// answer but a `200`, so a refusal is told this way.
pub fn notice(views: &Views, message: Option<&str>) -> Result<Frame, minijinja::Error> {
    let html = views.render("partials/notice.html", context! { notice => message })?;
    Ok(PatchElements::new(html).into())
}

/// The last event for a stream replaced by another tab using the same session id: a fresh id,
/// which makes the page reopen its stream under it.
pub fn new_session() -> Frame {
    PatchSignals::new(json!({ "sessionId": Uuid::new_v4(), "connected": false }).to_string()).into()
}

/// Empties the name field after a successful greet.
pub fn clear_draft() -> Frame {
    PatchSignals::new(json!({ "_draft": "" }).to_string()).into()
}

/// Replaces `#greeting` with `greeting` (or the "nobody yet" text).
pub fn greeting(views: &Views, greeting: Option<&Greeting>) -> Result<Frame, minijinja::Error> {
    let html = views.render("partials/greeting.html", context! { greeting })?;
    Ok(PatchElements::new(html).into())
}

/// Replaces `#greet-error` with `error`, or empties it.
pub fn greet_error(views: &Views, error: Option<&str>) -> Result<Frame, minijinja::Error> {
    let html = views.render("partials/greet_error.html", context! { error })?;
    Ok(PatchElements::new(html).into())
}
