//! The events every live page understands, whatever the app: the signals and elements the kit
//! itself patches.
//!
//! - `connected` (signal): `true` with the first event of every (re)connected stream, `false`
//!   with a refusal; pages show it as their live/offline indicator.
//! - `_reconnecting` (signal): `true` with the last event of a stream the server ended to
//!   restart, so that a page takes that one end as expected rather than "offline" (the next
//!   process takes over the socket, and the reconnect waits for it). The page clears it on
//!   that end, and so does the next first event: a reconnect that then fails shows offline.
//! - `sessionId` (signal): the tab's id, under which its stream is stored (`page/<page>/<tab>`).
//! - `#notice` (element, in the layout, from `partials/notice.html`): where a refusal is shown
//!   to the person who caused it.

use datastar::prelude::PatchSignals;
use minijinja::context;
use serde_json::json;
use uuid::Uuid;

use crate::{frame::Frame, views::Views};

/// `{connected: true}`: the first event on every (re)connect, turning the indicator live.
pub fn connected() -> Frame {
    PatchSignals::new(json!({ "connected": true, "_reconnecting": false }).to_string()).into()
}

/// How soon a stream ended by a restart comes back: soon, since the next process takes over
/// the same socket at once (and the listen backlog holds the burst of reconnects).
pub const RECONNECT_AFTER_RESTART: std::time::Duration = std::time::Duration::from_millis(250);

/// The last event of every stream when the server shuts down: reconnect soon, and — with
/// `_reconnecting` set — do not take this end as "offline". A restart then goes unnoticed; if
/// nothing takes over the socket, the reconnect fails and the page shows offline as usual.
pub fn restarting() -> Frame {
    PatchSignals::new(json!({ "_reconnecting": true }).to_string())
        .retry(RECONNECT_AFTER_RESTART)
        .into()
}

/// `{connected: false}`: the page's stream is not live (sent with a refusal).
pub fn disconnected() -> Frame {
    PatchSignals::new(json!({ "connected": false }).to_string()).into()
}

/// Shows `message` in the page's notice area, or empties it. Datastar ignores the body of any
/// answer but a `200`, so this is how a refusal reaches the person who caused it. Rendered from
/// the app's `partials/notice.html`, which the layout includes too.
pub fn notice(views: &Views, message: Option<&str>) -> Result<Frame, minijinja::Error> {
    views.patch("partials/notice.html", context! { notice => message })
}

/// Which server process is serving (`_devServer`): debug builds send it first on every stream,
/// and the dev loop's markup reloads a page rendered by another process (the server
/// restarted after a change to its code).
pub fn serving(instance: Uuid) -> Frame {
    PatchSignals::new(json!({ "_devServer": instance }).to_string()).into()
}

/// The banner of `cargo dev`'s build (`#dev-build`: "rebuilding", or the compiler's error),
/// if one is showing: every stream opened now starts with it, so a tab opened meanwhile shows
/// what the open ones show. Set by the dev loop's [`crate::dev::runner`]; process-wide, as the
/// runner is (it talks to the process, not to one app in it).
pub fn build_banner() -> Option<Frame> {
    BUILD_BANNER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Sets what [`build_banner`] returns.
pub fn set_build_banner(banner: Option<Frame>) {
    *BUILD_BANNER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = banner;
}

static BUILD_BANNER: std::sync::Mutex<Option<Frame>> = std::sync::Mutex::new(None);

/// The last event for a stream replaced by another tab using the same session id: a fresh id,
/// which makes the page reopen its stream under it (instead of the two tabs replacing each
/// other forever).
pub fn new_session() -> Frame {
    PatchSignals::new(json!({ "sessionId": Uuid::new_v4(), "connected": false }).to_string()).into()
}
