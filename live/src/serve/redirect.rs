//! The plain-HTTP port of an HTTPS server (`HTTP_REDIRECT_PORT`, usually 80): every request is
//! answered with a permanent redirect to the same host and path over HTTPS. Browsers that type a
//! bare address land there first.
//!
//! The one exception is ACME's HTTP-01 challenge (`/.well-known/acme-challenge/<token>`), served
//! from `ACME_CHALLENGE_DIR` when it is set: an ACME client such as `certbot --webroot` then
//! renews the certificate while the app keeps port 80, with no restart.

use std::{path::PathBuf, sync::Arc};

use axum::{
    Router,
    extract::{Path, Request},
    http::{StatusCode, header, uri::Authority},
    response::{IntoResponse, Response},
    routing::get,
};
use tower::ServiceExt;

/// The largest challenge file served: a token and a key thumbprint are under 200 bytes.
const MAX_CHALLENGE: u64 = 4 * 1024;

/// Whether HTTPS can answer yet.
pub(super) type Ready = Arc<dyn Fn() -> bool + Send + Sync>;

/// Redirects everything to `https://<host>[:https_port]<path>` — but ACME challenges found in
/// `challenges`, and, until HTTPS is `ready`, serves `app` instead (ACME has not got the first
/// certificate yet: there is nothing to redirect to).
pub(super) fn router(
    https_port: u16,
    challenges: Option<PathBuf>,
    app: Router,
    ready: Ready,
) -> Router {
    let router = Router::new().fallback(move |request: Request| {
        let (app, ready) = (app.clone(), Arc::clone(&ready));
        async move {
            if ready() {
                return redirect(&request, https_port);
            }
            match app.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    });
    match challenges {
        Some(dir) => router.route(
            "/.well-known/acme-challenge/{token}",
            get(move |Path(token): Path<String>| challenge(dir.clone(), token)),
        ),
        None => router,
    }
}

/// The file named `token` in `dir`, if the token is one (letters, digits, `-` and `_`: base64url,
/// so never a path) and the file is small.
async fn challenge(dir: PathBuf, token: String) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "No such challenge.\n").into_response();
    let is_token = !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !is_token {
        return not_found();
    }
    let path = dir.join(&token);
    match tokio::fs::metadata(&path).await {
        Ok(meta) if meta.is_file() && meta.len() <= MAX_CHALLENGE => {}
        _ => return not_found(),
    }
    match tokio::fs::read(&path).await {
        Ok(body) => ([(header::CONTENT_TYPE, "text/plain")], body).into_response(),
        Err(_) => not_found(),
    }
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

    #[tokio::test]
    async fn acme_challenges_are_served_from_their_folder_and_nothing_else_is() {
        let dir = std::env::temp_dir().join(format!("acme-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tok-EN_1"), "tok-EN_1.thumbprint").unwrap();
        std::fs::write(dir.join("big"), "x".repeat(5000)).unwrap();
        let get = |path: &str| {
            Request::builder()
                .uri(path)
                .header(header::HOST, "example.org")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let served = |path: &'static str| {
            let router = router(443, Some(dir.clone()), Router::new(), Arc::new(|| true));
            async move {
                let response = router.oneshot(get(path)).await.unwrap();
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 10_000)
                    .await
                    .unwrap();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };

        assert_eq!(
            served("/.well-known/acme-challenge/tok-EN_1").await,
            (StatusCode::OK, "tok-EN_1.thumbprint".into())
        );
        for refused in [
            "/.well-known/acme-challenge/missing",
            "/.well-known/acme-challenge/big",
            "/.well-known/acme-challenge/..%2Fetc%2Fpasswd",
            "/.well-known/acme-challenge/a.b",
        ] {
            assert_eq!(served(refused).await.0, StatusCode::NOT_FOUND, "{refused}");
        }
        assert_eq!(
            served("/elsewhere").await.0,
            StatusCode::PERMANENT_REDIRECT,
            "everything else is redirected"
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
