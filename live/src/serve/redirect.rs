//! The plain-HTTP port of an HTTPS server (`HTTP_REDIRECT_PORT`, usually 80): every request is
//! answered with a permanent redirect to the same host and path over HTTPS, and nothing else.
//! Browsers that type a bare address land there first.

use axum::{
    Router,
    extract::Request,
    http::{StatusCode, header, uri::Authority},
    response::{IntoResponse, Response},
};

/// Redirects everything to `https://<host>[:https_port]<path>`.
pub(super) fn router(https_port: u16) -> Router {
    Router::new().fallback(move |request: Request| async move { redirect(&request, https_port) })
}

fn redirect(request: &Request, https_port: u16) -> Response {
    // The host the browser asked for, without the plain port. Only the requester's own
    // redirect depends on it, so it cannot send anyone else elsewhere.
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| host.parse::<Authority>().ok());
    let Some(host) = host else {
        return (
            StatusCode::BAD_REQUEST,
            "This port only redirects to HTTPS, and needs a Host header to know where.\n",
        )
            .into_response();
    };
    let port = match https_port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    let location = format!("https://{}{port}{path}", host.host());
    // 308 rather than 301: a form posted to the plain port is posted again over HTTPS, not
    // turned into a GET.
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location.clone())],
        format!("This site is served over HTTPS: {location}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: Option<&str>, uri: &str, port: u16) -> (StatusCode, Option<String>) {
        let mut request = Request::builder().uri(uri);
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        let response = redirect(&request.body(axum::body::Body::empty()).unwrap(), port);
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|value| value.to_str().unwrap().to_owned());
        (response.status(), location)
    }

    #[test]
    fn every_request_goes_to_the_same_place_over_https() {
        assert_eq!(
            location(Some("example.org"), "/a/b?c=d", 443),
            (
                StatusCode::PERMANENT_REDIRECT,
                Some("https://example.org/a/b?c=d".into())
            )
        );
        assert_eq!(
            location(Some("example.org:8080"), "/", 8443).1.as_deref(),
            Some("https://example.org:8443/"),
            "the plain port is dropped, the HTTPS one named"
        );
        assert_eq!(
            location(Some("[::1]:80"), "/x", 443).1.as_deref(),
            Some("https://[::1]/x")
        );
    }

    #[test]
    fn a_request_without_a_usable_host_is_refused() {
        assert_eq!(location(None, "/", 443), (StatusCode::BAD_REQUEST, None));
        assert_eq!(
            location(Some("evil.org/path"), "/", 443),
            (StatusCode::BAD_REQUEST, None)
        );
    }
}
