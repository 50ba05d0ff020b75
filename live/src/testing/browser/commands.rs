//! The chromedriver endpoints that WebDriver has no word for: the DevTools protocol, and the
//! browser's log.

use axum::http::Method;
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::json;

/// chromedriver's `goog/cdp/execute` endpoint.
#[derive(Debug)]
pub(super) struct Cdp {
    pub(super) cmd: String,
    pub(super) params: serde_json::Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (Method::POST, Some(body.to_string()))
    }
}

/// chromedriver's (pre-W3C, still supported) log endpoint.
#[derive(Debug)]
pub(super) struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(json!({ "type": "browser" }).to_string()))
    }
}
