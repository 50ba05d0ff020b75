//! `GET /static/*`: the files in `static/`.
//!
//! Embedded in release builds (the binary needs nothing beside it) and read from disk in debug
//! builds (an edited stylesheet shows on the next request), both through `rust-embed`.
//! Responses carry a strong `ETag` so browsers revalidate cheaply instead of downloading again.

use axum::{
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// Serves `static/<path>`, answering `304 Not Modified` when the client's copy is current.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // rust-embed refuses to leave its folder, but say no to traversal before it is asked.
    if path.split(['/', '\\']).any(|segment| segment == "..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(file) = Assets::get(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };

    let etag = etag(&file.metadata.sha256_hash());
    let mut response = if if_none_match(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        file.data.into_owned().into_response()
    };
    let response_headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(file.metadata.mimetype()) {
        response_headers.insert(header::CONTENT_TYPE, mime);
    }
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, etag);
    }
    // Revalidate on every use: file names carry no content hash, so a long max-age would keep
    // serving a stale stylesheet after a deploy.
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn etag(hash: &[u8]) -> String {
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|candidate| candidate == etag || candidate == "*")
}
