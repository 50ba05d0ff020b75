//! Response headers that make the browser refuse what the app never does.
//!
//! The Content-Security-Policy allows scripts from this origin and from wherever Datastar is
//! loaded, and nothing inline. It has to allow `'unsafe-eval'`: Datastar compiles its `data-*`
//! expressions with `Function()`. What keeps that safe is that no user text ever becomes an
//! attribute name or an unescaped attribute value — every template autoescapes.

use axum::http::{HeaderName, HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy for pages that load Datastar from `datastar_url` (an absolute URL or a path).
pub fn content_security_policy(datastar_url: &str) -> String {
    let script_origin = origin(datastar_url)
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{script_origin} 'unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
}

/// `https://cdn.example:8443` for `https://cdn.example:8443/x.js`; `None` for a path.
fn origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + host_end])
}

/// One layer per header, each set only if the handler did not set it already.
pub fn headers(datastar_url: &str) -> Vec<SetResponseHeaderLayer<HeaderValue>> {
    let csp = HeaderValue::from_str(&content_security_policy(datastar_url))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    let fixed: [(HeaderName, &'static str); 4] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    fixed
        .into_iter()
        .map(|(name, value)| {
            SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
        })
        .chain([SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            csp,
        )])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_may_come_from_the_datastar_origin_only() {
        let csp = content_security_policy(
            "https://cdn.jsdelivr.net/gh/starfederation/datastar@1.0.4/bundles/datastar.js",
        );
        assert!(
            csp.contains("script-src 'self' https://cdn.jsdelivr.net 'unsafe-eval';"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"));
        assert!(csp.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn a_self_hosted_datastar_needs_no_extra_origin() {
        let csp = content_security_policy("/static/datastar.js");
        assert!(csp.contains("script-src 'self' 'unsafe-eval';"), "{csp}");
    }

    #[test]
    fn origins_keep_their_port() {
        assert_eq!(
            origin("http://127.0.0.1:8080/datastar.js"),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("https://cdn.example"), Some("https://cdn.example"));
        assert_eq!(origin("//cdn.example/x.js"), None);
        assert_eq!(origin("data:text/javascript,1"), None);
    }
}
