//! Response headers that make the browser refuse what the app never does.
//!
//! The Content-Security-Policy allows scripts from this origin and the one Datastar file the
//! layout loads — the exact URL, never a whole CDN, which would let any file on it run — and
//! nothing inline. It has to allow `'unsafe-eval'`: Datastar compiles its `data-*` expressions
//! with `Function()`. What keeps that safe is that no user text ever becomes an attribute name
//! or an unescaped attribute value — every template autoescapes — and that the file itself is
//! pinned by its integrity hash when one is known (see `views::DATASTAR_CDN_INTEGRITY`).

use axum::http::{HeaderName, HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy for pages that load Datastar from `datastar_url` (an absolute URL or a path).
pub(crate) fn content_security_policy(datastar_url: &str) -> String {
    let script = script_source(datastar_url)
        .map(|source| format!(" {source}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{script} 'unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
}

/// The CSP source that allows exactly the script at `url`: the URL without its query or
/// fragment (a source cannot name those). `None` for a path on this origin, which `'self'`
/// already allows.
fn script_source(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let end = url.find(['?', '#']).unwrap_or(url.len());
    Some(&url[..end])
}

/// One layer per header, each set only if the handler did not set it already.
pub(crate) fn headers(datastar_url: &str) -> Vec<SetResponseHeaderLayer<HeaderValue>> {
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
    fn scripts_may_come_from_the_one_datastar_file_only() {
        let url = "https://cdn.jsdelivr.net/gh/starfederation/datastar@1.0.4/bundles/datastar.js";
        let csp = content_security_policy(url);
        assert!(
            csp.contains(&format!("script-src 'self' {url} 'unsafe-eval';")),
            "{csp}"
        );
        assert!(
            !csp.contains("https://cdn.jsdelivr.net "),
            "not the whole CDN: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"));
        assert!(csp.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn a_self_hosted_datastar_needs_no_extra_source() {
        let csp = content_security_policy("/static/datastar.js");
        assert!(csp.contains("script-src 'self' 'unsafe-eval';"), "{csp}");
    }

    #[test]
    fn sources_keep_port_and_path_but_not_query() {
        assert_eq!(
            script_source("http://127.0.0.1:8080/datastar.js?v=2#x"),
            Some("http://127.0.0.1:8080/datastar.js")
        );
        assert_eq!(script_source("//cdn.example/x.js"), None);
        assert_eq!(script_source("data:text/javascript,1"), None);
    }
}
