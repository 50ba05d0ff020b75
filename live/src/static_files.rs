//! `GET /static/*`: the files in `static/` (see [`crate::assets`]).

use std::time::{Duration, UNIX_EPOCH};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::state::Live;

/// The `?v=` that [`crate::assets::Assets::url`] puts on links.
#[derive(Debug, Deserialize)]
pub(crate) struct Version {
    v: Option<String>,
}

/// Serves `static/<path>` with an `ETag` and `Last-Modified`, answering `304 Not Modified` when
/// the client's copy is current. Versioned URLs (the current `?v=`) are cacheable for a year.
pub(crate) async fn asset(
    State(live): State<Live>,
    Path(path): Path<String>,
    Query(version): Query<Version>,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = live.views.assets().get(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Weak: the compression layer may send these bytes gzipped, and a strong ETag promises
    // byte-identical bodies.
    let etag = format!("W/\"{}\"", asset.version);
    let last_modified = asset
        .last_modified
        .map(|secs| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs)));

    let mut response = if not_modified(&headers, &etag, asset.last_modified) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = asset.data.into_response();
        if let Ok(mime) = HeaderValue::from_str(&asset.mime) {
            response.headers_mut().insert(header::CONTENT_TYPE, mime);
        }
        response
    };
    let response_headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, etag);
    }
    if let Some(Ok(date)) = last_modified.map(|d| HeaderValue::from_str(&d)) {
        response_headers.insert(header::LAST_MODIFIED, date);
    }
    let cache_control = if version.v.as_deref() == Some(asset.version.as_str()) {
        // This URL names this exact content: it can never change.
        "public, max-age=31536000, immutable"
    } else {
        // An unversioned (or outdated) URL: use it, but check with us first.
        "no-cache"
    };
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response
}

/// Whether the request's validators say the client already has this version.
/// `If-None-Match` wins over `If-Modified-Since` when both are present (RFC 9110 13.2.2).
fn not_modified(headers: &HeaderMap, etag: &str, last_modified: Option<u64>) -> bool {
    if headers.contains_key(header::IF_NONE_MATCH) {
        return headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|candidate| candidate.trim().trim_start_matches("W/"))
            .any(|candidate| candidate == etag.trim_start_matches("W/") || candidate == "*");
    }
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| httpdate::parse_http_date(value).ok());
    match (since, last_modified) {
        (Some(since), Some(modified)) => since >= UNIX_EPOCH + Duration::from_secs(modified),
        _ => false,
    }
}
