//! The events every live page understands, whatever the app: the signals and elements the kit
//! itself patches.
//!
//! - `connected` (signal): `true` with the first event of every (re)connected stream, `false`
//!   with a refusal; pages show it as their live/offline indicator.
//! - `sessionId` (signal): the tab's id, under which its stream is stored (`page/<page>/<tab>`).
//! - `#notice` (element, in the layout, from `partials/notice.html`): where a refusal is shown
//!   to the person who caused it.

use datastar::prelude::{PatchElements, PatchSignals};
use minijinja::context;
use serde_json::json;
use uuid::Uuid;

use crate::{sse::Frame, views::Views};

/// `{connected: true}`: the first event on every (re)connect, turning the indicator live.
pub fn connected() -> Frame {
    PatchSignals::new(json!({ "connected": true }).to_string()).into()
}

/// `{connected: false}`: the page's stream is not live (sent with a refusal).
pub fn disconnected() -> Frame {
    PatchSignals::new(json!({ "connected": false }).to_string()).into()
}

/// Shows `message` in the page's notice area, or empties it. Datastar ignores the body of any
/// answer but a `200`, so this is how a refusal reaches the person who caused it. Rendered from
/// the app's `partials/notice.html`, which the layout includes too.
pub fn notice(views: &Views, message: Option<&str>) -> Result<Frame, minijinja::Error> {
    let html = views.render("partials/notice.html", context! { notice => message })?;
    Ok(PatchElements::new(html).into())
}

/// The last event for a stream replaced by another tab using the same session id: a fresh id,
/// which makes the page reopen its stream under it (instead of the two tabs replacing each
/// other forever).
pub fn new_session() -> Frame {
    PatchSignals::new(json!({ "sessionId": Uuid::new_v4(), "connected": false }).to_string()).into()
}
