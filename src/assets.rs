//! The files in `static/`, and the versioned URLs pages use for them.
//!
//! Embedded in release builds (the binary needs nothing beside it) and read from disk in debug
//! builds (an edited stylesheet shows on the next request), both through `rust-embed`.
//!
//! Pages link assets through [`url`], which appends a short content hash (`?v=…`). A request
//! carrying the current hash may be cached for a year, because a changed file gets a new URL;
//! any other request is answered with `no-cache` so browsers revalidate (cheaply, with the ETag).

use std::borrow::Cow;

use rust_embed::{EmbeddedFile, RustEmbed};

#[derive(RustEmbed)]
#[folder = "static/"]
struct Files;

/// One static file with what its response headers need.
#[derive(Debug)]
pub struct Asset {
    /// The file's bytes.
    pub data: Cow<'static, [u8]>,
    /// Its MIME type, from the extension.
    pub mime: String,
    /// Short content hash: the `v` query parameter and, quoted, the `ETag`.
    pub version: String,
    /// Modification time, seconds since the Unix epoch, when known.
    pub last_modified: Option<u64>,
}

/// The file at `path` (relative to `static/`), if there is one.
pub fn get(path: &str) -> Option<Asset> {
    // rust-embed stays inside its folder, but refuse traversal before asking it.
    if path.split(['/', '\\']).any(|segment| segment == "..") {
        return None;
    }
    let EmbeddedFile { data, metadata } = Files::get(path)?;
    Some(Asset {
        data,
        mime: metadata.mimetype().to_owned(),
        version: version(&metadata.sha256_hash()),
        last_modified: metadata.last_modified(),
    })
}

/// The URL a page should use for `static/<path>`: `/static/<path>?v=<hash>`, or without the
/// hash if the file does not exist (so the mistake shows as a 404 in the browser).
pub fn url(path: &str) -> String {
    match Files::get(path) {
        Some(file) => format!("/static/{path}?v={}", version(&file.metadata.sha256_hash())),
        None => format!("/static/{path}"),
    }
}

/// 12 hex digits of the SHA-256: plenty to tell versions of one file apart.
fn version(hash: &[u8; 32]) -> String {
    hash[..6].iter().map(|byte| format!("{byte:02x}")).collect()
}
