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
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tower::ServiceExt;

/// The largest challenge file served: a token and a key thumbprint are under 200 bytes.
const MAX_CHALLENGE: u64 = 4 * 1024;

/// Whether HTTPS can answer yet.
pub(super) type Ready = Arc<dyn Fn() -> bool + Send + Sync>;

/// Redirects everything to `https://<host>[:https_port]<path>` (for a host among `names`) — but
/// ACME challenges found in `challenges`, and, until HTTPS is `ready`, serves `app` instead (ACME
/// has not got the first certificate yet: there is nothing to redirect to).
pub(super) fn router(
    https_port: u16,
    names: Names,
    challenges: Option<PathBuf>,
    app: Router,
    ready: Ready,
) -> Router {
    let router = Router::new().fallback(move |request: Request| {
        let (app, ready, names) = (app.clone(), Arc::clone(&ready), names.clone());
        async move {
            if ready() {
                return redirect(&request, https_port, &names);
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
    // Off the runtime and bounded (see `files.rs`): a challenge folder holding a pipe under a
    // token's name must not park a thread that the shutdown then waits for.
    match crate::files::read(&dir.join(&token), MAX_CHALLENGE, crate::files::READ_TIMEOUT).await {
        Ok(body) => ([(header::CONTENT_TYPE, "text/plain")], body).into_response(),
        Err(_) => not_found(),
    }
}

/// The names a redirect may lead to: any well-formed host, or only those the server is known
/// to serve (`ACME_DOMAINS`).
#[derive(Clone, Debug, Default)]
pub(super) enum Names {
    /// Whatever well-formed name or address the request asked for.
    #[default]
    Any,
    /// Only these (lower case, without a final dot).
    Only(Arc<[String]>),
}

impl Names {
    /// Only `names` (compared without case or a final dot), or any when there are none.
    pub(super) fn only(names: &[String]) -> Self {
        if names.is_empty() {
            return Names::Any;
        }
        let names = names.iter().map(|name| normal(name)).collect();
        Names::Only(names)
    }

    fn allows(&self, host: &str) -> bool {
        match self {
            Names::Any => true,
            Names::Only(names) => names.iter().any(|name| *name == normal(host)),
        }
    }
}

fn normal(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Answers 308 to the HTTPS address of the host asked for, or 400.
///
/// The `Host` header is the client's to write, and the redirect puts it in `Location`: a host
/// read loosely sends a browser somewhere else. `good.example@evil.example` is an authority
/// whose *host* is `evil.example` (the rest is userinfo), so it led to
/// `https://evil.example/…`; a port such as `99999` was taken as it came. So the header must be
/// exactly a DNS name or an IP literal with at most a port in range, and, when the served names
/// are known, one of them. Only the requester's own redirect depends on it (a shared cache that
/// keyed on the path alone could hand it on: hence a strict reading rather than a loose one).
fn redirect(request: &Request, https_port: u16, names: &Names) -> Response {
    let refused = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            format!("This port only redirects to HTTPS, and {why}.\n"),
        )
            .into_response()
    };
    let Some(host) = request.headers().get(header::HOST) else {
        return refused("needs a Host header to know where");
    };
    let host = match host.to_str().ok().and_then(|host| host_of(host)) {
        Some(host) => host,
        None => return refused("the Host header is not a host name or an address (with a port)"),
    };
    if !names.allows(host) {
        return refused("this server does not serve the host asked for");
    }
    let port = match https_port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    let location = format!("https://{host}{port}{path}");
    // 308 rather than 301: a form posted to the plain port is posted again over HTTPS, not
    // turned into a GET.
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location.clone())],
        format!("This site is served over HTTPS: {location}\n"),
    )
        .into_response()
}

/// The host part of a `Host` header — `name`, `name:port`, `1.2.3.4:port`, `[v6]:port` — if
/// it is a DNS name or an IP literal and any port is one (1–65535); `None` for anything else
/// (userinfo, a path, an empty or out-of-range port, characters no host name has).
fn host_of(header: &str) -> Option<&str> {
    let (host, port) = match header.strip_prefix('[') {
        // An IPv6 literal, bracketed.
        Some(rest) => {
            let (inside, after) = rest.split_once(']')?;
            inside.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?),
            };
            (&header[..inside.len() + 2], port)
        }
        None => match header.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (header, None),
        },
    };
    if let Some(port) = port {
        let digits =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || !matches!(port.parse::<u16>(), Ok(1..)) {
            return None;
        }
    }
    if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() || is_dns_name(host) {
        Some(host)
    } else {
        None
    }
}

/// Whether `name` is a DNS host name: dot-separated labels of letters, digits and inner `-`,
/// 1–63 bytes each, 253 in all, a final dot allowed; and not one whose last label is a number
/// (`1.2.3`, `0x7f.1`), which a browser reads as an IPv4 address in a short form, not a name.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let label = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let last = name.rsplit('.').next().unwrap_or_default();
    let is_number = last.bytes().all(|b| b.is_ascii_digit())
        || last
            .strip_prefix("0x")
            .or_else(|| last.strip_prefix("0X"))
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label) && !is_number
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: Option<&str>, uri: &str, port: u16) -> (StatusCode, Option<String>) {
        location_among(&Names::Any, host, uri, port)
    }

    fn location_among(
        names: &Names,
        host: Option<&str>,
        uri: &str,
        port: u16,
    ) -> (StatusCode, Option<String>) {
        let mut request = Request::builder().uri(uri);
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        let response = redirect(
            &request.body(axum::body::Body::empty()).unwrap(),
            port,
            names,
        );
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
            let router = router(
                443,
                Names::Any,
                Some(dir.clone()),
                Router::new(),
                Arc::new(|| true),
            );
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

    #[test]
    fn a_host_with_userinfo_a_bad_port_or_no_host_name_is_refused() {
        for host in [
            "good.example@evil.example",
            "user:pass@evil.example",
            "@evil.example",
            "good.example:99999",
            "good.example:65536",
            "good.example:0",
            "good.example:",
            "good.example:+80",
            "good.example:80:80",
            "[::1]:99999",
            "[::1]x",
            "[evil.example]",
            "evil.example/x",
            "evil.example\\x",
            "evil.example?x",
            "evil.example#x",
            "evil_example.org",
            "-evil.example",
            "evil-.example",
            "evil..example",
            "",
            ".",
            "1.2.3",
            "0x7f.1",
            "127.1",
            "example.0x1F",
            &format!("{}.example", "a".repeat(64)),
            &format!("{}example", "a.".repeat(127)),
        ] {
            assert_eq!(
                location(Some(host), "/", 443),
                (StatusCode::BAD_REQUEST, None),
                "{host:?}"
            );
        }
    }

    #[test]
    fn names_and_addresses_with_ports_in_range_are_redirected() {
        for (host, expected) in [
            ("example.org:65535", "https://example.org/"),
            ("example.org:1", "https://example.org/"),
            ("Example.ORG.", "https://Example.ORG./"),
            ("xn--bcher-kva.example", "https://xn--bcher-kva.example/"),
            ("localhost", "https://localhost/"),
            ("192.0.2.7:80", "https://192.0.2.7/"),
            ("[2001:db8::1]", "https://[2001:db8::1]/"),
            (&format!("{}.example", "a".repeat(63)), ""),
        ] {
            let (status, location) = location(Some(host), "/", 443);
            assert_eq!(status, StatusCode::PERMANENT_REDIRECT, "{host:?}");
            if !expected.is_empty() {
                assert_eq!(location.as_deref(), Some(expected), "{host:?}");
            }
        }
    }

    #[test]
    fn with_the_served_names_known_only_they_are_redirected_to() {
        let names = Names::only(&["example.org".to_owned(), "www.example.org".to_owned()]);
        assert_eq!(
            location_among(&names, Some("WWW.example.org.:80"), "/a", 8443),
            (
                StatusCode::PERMANENT_REDIRECT,
                Some("https://WWW.example.org.:8443/a".into())
            )
        );
        for host in ["evil.example", "example.org.evil.example", "127.0.0.1"] {
            assert_eq!(
                location_among(&names, Some(host), "/", 443),
                (StatusCode::BAD_REQUEST, None),
                "{host}"
            );
        }
        assert!(matches!(Names::only(&[]), Names::Any), "no names: any");
    }
}
