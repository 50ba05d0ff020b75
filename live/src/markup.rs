//! The markup the kit writes into pages, as template functions: a page opens its stream, shows
//! whether it is live, and gets the dev loop with one call each.
//!
//! - `{{ live_stream("/sse/home") }}` — the page's one persistent stream: a fresh session id,
//!   the element that opens the stream when Datastar starts and reopens it whenever it ends
//!   (restarts, deploys, a new session id after a duplicated tab), and the tracking of
//!   `$connected`, including the restart handover (`_reconnecting`, see [`crate::events`]).
//!   From the kit's `live/stream.html`.
//! - `{{ live_status() }}` — a badge that says "live" or "offline" (`live/status.html`).
//! - `data-on:submit="{{ live_submit('/api/greet') }}"` — on a plain HTML form: while the
//!   stream is up, submitting posts through Datastar (the page does not navigate, the answer
//!   comes over the stream); while it is down, the form posts the old way (`live/submit.html`).
//! - `{{ live_dev() }}` — debug builds only, once per page (the layout's end): the dev loop's
//!   markup (`live/dev.html`), with a dev-only stream for a page that opened none of its own,
//!   so that every tab keeps one connection, and a notice that shows when Datastar did not
//!   load (`live/datastar_missing.html`). Release builds: nothing.
//!
//! - `{{ live_presence("here", count) }}` — "N people here", rendered with the count a page
//!   got from [`crate::Registry::presence`], then kept live by the page's stream
//!   ([`crate::Stream::counting`]) through the signal `_presence.<name>`
//!   (`live/presence.html`).
//!
//! The expressions live once, in those templates; an app changes one for all its pages by
//! putting a file of the same name in its `templates/`.

use minijinja::{Environment, Error, ErrorKind, State, Value, context};
use uuid::Uuid;

/// Set (as a render's temp value) once the page has opened its stream.
const STREAM_OPENED: &str = "live_stream_opened";

/// The longest wait between two attempts to reopen a stream: short while developing (the
/// server restarts often), 30 s in production (spreads out a reconnect storm).
pub(crate) const RETRY_MAX_WAIT_MS: u64 = if cfg!(debug_assertions) {
    2_000
} else {
    30_000
};

/// Where the dev markup loads the script that shows its "Datastar has not loaded" notice
/// (served by the dev loop's routes, `dev::datastar_check`).
pub(crate) const DATASTAR_CHECK: &str = "/dev/datastar-check.js";

/// Registers the functions on `env`.
pub(crate) fn add_functions(env: &mut Environment<'static>) {
    env.add_function("live_stream", live_stream);
    env.add_function("live_status", live_status);
    env.add_function("live_submit", live_submit);
    env.add_function("live_dev", live_dev);
    env.add_function("live_presence", live_presence);
}

/// `live_stream(url, id="live-stream")`: see the [module docs](self).
fn live_stream(state: &State, url: &str, id: Option<&str>) -> Result<Value, Error> {
    plain_path("live_stream", url)?;
    let id = id.unwrap_or("live-stream");
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("live_stream: {id:?} is not an element id (letters, digits, - and _)"),
        ));
    }
    state.set_temp(STREAM_OPENED, Value::from(true));
    let url = attribute_path(url);
    let signals = context! {
        sessionId => Uuid::new_v4().to_string(),
        connected => false,
        _reconnecting => false,
    };
    render(
        state,
        "live/stream.html",
        context! { url, id, signals, retry_max_wait => RETRY_MAX_WAIT_MS },
    )
}

/// `live_status()`: see the [module docs](self).
fn live_status(state: &State) -> Result<Value, Error> {
    render(state, "live/status.html", context! {})
}

/// `live_submit(url)`: see the [module docs](self).
fn live_submit(state: &State, url: &str) -> Result<Value, Error> {
    plain_path("live_submit", url)?;
    let url = attribute_path(url);
    let expression = render(state, "live/submit.html", context! { url })?;
    Ok(Value::from_safe_string(
        expression.as_str().unwrap_or_default().trim().to_owned(),
    ))
}

/// `live_presence(name, count)`: see the [module docs](self).
fn live_presence(state: &State, name: &str, count: u64) -> Result<Value, Error> {
    if !crate::registry::is_presence_name(name) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("live_presence: {name:?} is not a presence's name (letters, digits and _)"),
        ));
    }
    render(state, "live/presence.html", context! { name, count })
}

/// `live_dev()`: see the [module docs](self).
fn live_dev(state: &State) -> Result<Value, Error> {
    #[cfg(not(debug_assertions))]
    {
        let _ = state;
        Ok(Value::from_safe_string(String::new()))
    }
    #[cfg(debug_assertions)]
    {
        let opened = state
            .get_temp(STREAM_OPENED)
            .is_some_and(|opened| opened.is_true());
        render(
            state,
            "live/dev.html",
            context! {
                own_stream => !opened,
                tab => Uuid::new_v4().to_string(),
                retry_max_wait => RETRY_MAX_WAIT_MS,
                datastar_check => DATASTAR_CHECK,
            },
        )
    }
}

/// Renders one of the kit's templates (or the app's of the same name) into the page.
fn render(state: &State, name: &str, ctx: Value) -> Result<Value, Error> {
    let html = state.env().get_template(name)?.render(ctx)?;
    Ok(Value::from_safe_string(html))
}

/// A plain path as it goes into an attribute: only `&` needs escaping (quotes, `<` and `>` are
/// refused), and the rest stays readable in the page's source.
fn attribute_path(url: &str) -> Value {
    Value::from_safe_string(url.replace('&', "&amp;"))
}

/// Refuses what is not a plain path (see [`is_plain_path`]), naming the function.
fn plain_path(function: &str, url: &str) -> Result<(), Error> {
    if is_plain_path(url) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("{function}: {url:?} is not a path on this site (`/…`, no quotes or spaces)"),
    ))
}

/// A path on this site that is safe inside a quoted Datastar expression in an attribute.
fn is_plain_path(url: &str) -> bool {
    url.starts_with('/')
        && !url.starts_with("//")
        && url
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"'\"\\<>`".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_make_a_stream() {
        assert!(is_plain_path("/sse/home"));
        assert!(is_plain_path("/sse/board?room=a&x=1"));
        for bad in [
            "sse/home",
            "//evil.example/sse",
            "/sse/home'",
            "/sse/\"x",
            "/a b",
            "/a<b",
        ] {
            assert!(!is_plain_path(bad), "{bad}");
        }
    }
}
