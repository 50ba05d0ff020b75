//! The Datastar events the home page understands, each built (and encoded) in one place.
//!
//! The page, its stream and its actions all describe the same elements (`#greeting`,
//! `#greet-error`) and signals (`_draft`); keeping the events here means a renamed id or signal
//! is changed once. Partials are rendered through the same templates the full page includes, so
//! a patch and a fresh page always agree. (The events every page shares — `connected`,
//! `sessionId`, `#notice` — are the kit's: `live::events`.)

use datastar::prelude::PatchSignals;
use live::{Frame, views::Views};
use minijinja::context;
use serde_json::json;

use crate::greeting::Greeting;

/// Empties the name field after a successful greet.
pub fn clear_draft() -> Frame {
    PatchSignals::new(json!({ "_draft": "" }).to_string()).into()
}

/// Replaces `#greeting` with `greeting` (or the "nobody yet" text).
pub fn greeting(views: &Views, greeting: Option<&Greeting>) -> Result<Frame, minijinja::Error> {
    views.patch("partials/greeting.html", context! { greeting })
}

/// Replaces `#greet-error` with `error`, or empties it.
pub fn greet_error(views: &Views, error: Option<&str>) -> Result<Frame, minijinja::Error> {
    views.patch("partials/greet_error.html", context! { error })
}
