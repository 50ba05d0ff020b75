//! Who sent an action's request, and so how to answer it: [`Caller`].

use std::convert::Infallible;

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
};

use crate::{error::Error, frame::Frame, sse};

/// Marks an answer as a refusal, with the status it stands for: a Datastar caller's is a `200`
/// (Datastar ignores any other), yet metrics count it as refused, by that status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refused(pub StatusCode);

/// Who sent an action's request, and so how to answer it.
///
/// Datastar (`@post`) applies the events of a `200` answer and ignores the body of any other:
/// a refusal must reach it as a `200` patch, and success as a short event stream (never a
/// redirect, which it would follow). A browser posting a plain form (no JavaScript, or the
/// stream down) shows whatever page it gets: a refusal is the page again with the message and
/// the right status, success a redirect to the page. [`Caller`] makes that choice once, so an
/// action's refusals are a line each:
///
/// ```
/// use axum::{http::StatusCode, response::{Html, Response}};
/// use datastar::prelude::PatchElements;
/// use live::{Caller, Error};
///
/// /// `POST /api/vote`: counts a vote, or says why it cannot.
/// async fn vote(caller: Caller) -> Result<Response, Error> {
///     let closed = true;
///     if closed {
///         let message = "Voting has closed.";
///         return caller.refuse(
///             StatusCode::CONFLICT,
///             || Ok::<_, Error>(PatchElements::new(format!(r#"<p id="vote-error">{message}</p>"#)).into()),
///             || Ok::<_, Error>(format!("<p>{message}</p>")),
///         );
///     }
///     caller.done(|| Ok::<_, Error>(vec![]), "/")
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Datastar (the request carries `datastar-request`).
    Datastar,
    /// A browser on its own: a plain form post or link.
    Browser,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Caller::of(&parts.headers))
    }
}

impl Caller {
    /// The caller of a request with these headers.
    pub fn of(headers: &axum::http::HeaderMap) -> Self {
        if sse::from_datastar(headers) {
            Caller::Datastar
        } else {
            Caller::Browser
        }
    }

    /// Refuses the request where its sender sees it: to Datastar, `patch` (the message in the
    /// page) in a `200` event stream; to a browser, `page` (the page again, with the message and
    /// what was typed) as `status`. Only the one needed is rendered.
    pub fn refuse<P, Q>(
        self,
        status: StatusCode,
        patch: impl FnOnce() -> Result<Frame, P>,
        page: impl FnOnce() -> Result<String, Q>,
    ) -> Result<Response, Error>
    where
        Error: From<P> + From<Q>,
    {
        let mut response = match self {
            Caller::Datastar => sse::reply([patch()?]),
            Caller::Browser => (status, Html(page()?)).into_response(),
        };
        response.extensions_mut().insert(Refused(status));
        Ok(response)
    }

    /// Answers a request that succeeded: to Datastar, `events` in a short event stream (the
    /// effects on the other tabs go through the registry); to a browser, `303 See Other` to
    /// `location`, whose page shows the result.
    pub fn done<E>(
        self,
        events: impl FnOnce() -> Result<Vec<Frame>, E>,
        location: &str,
    ) -> Result<Response, Error>
    where
        Error: From<E>,
    {
        Ok(match self {
            Caller::Datastar => sse::reply(events()?),
            Caller::Browser => Redirect::to(location).into_response(),
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};
    use datastar::prelude::PatchElements;

    use super::*;

    fn refused(caller: Caller) -> Response {
        caller
            .refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                || Ok::<_, Error>(PatchElements::new("<p id=\"e\">No.</p>").into()),
                || Ok::<_, Error>("<p>No.</p>".to_owned()),
            )
            .unwrap()
    }

    #[test]
    fn datastar_gets_a_200_patch_and_a_browser_the_page_with_the_status() {
        let mut headers = HeaderMap::new();
        assert_eq!(Caller::of(&headers), Caller::Browser);
        headers.insert(sse::DATASTAR_REQUEST, HeaderValue::from_static("true"));
        assert_eq!(Caller::of(&headers), Caller::Datastar);

        let to_datastar = refused(Caller::Datastar);
        assert_eq!(to_datastar.status(), StatusCode::OK);
        assert_eq!(
            to_datastar.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        let to_browser = refused(Caller::Browser);
        assert_eq!(to_browser.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            to_browser.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }

    #[test]
    fn success_is_a_short_stream_or_a_redirect() {
        let done = |caller: Caller| caller.done(|| Ok::<_, Error>(vec![]), "/").unwrap();
        assert_eq!(done(Caller::Datastar).status(), StatusCode::OK);
        let redirect = done(Caller::Browser);
        assert_eq!(redirect.status(), StatusCode::SEE_OTHER);
        assert_eq!(redirect.headers()[header::LOCATION], "/");
    }
}
