//! The Datastar script every page loads: where it comes from, and the hash it must have.

/// Where pages load Datastar from unless `DATASTAR_URL` says otherwise: the 1.x release that the
/// `datastar` crate's events are written for.
pub const DATASTAR_CDN_URL: &str =
    "https://cdn.jsdelivr.net/gh/starfederation/datastar@1.0.4/bundles/datastar.js";

/// The subresource-integrity hash of the file at [`DATASTAR_CDN_URL`]: a browser runs that
/// file only if its bytes hash to this, so a compromised CDN cannot serve anything else. (The
/// file's SHA-256 is `727844ad…cac470cf91`.)
pub const DATASTAR_CDN_INTEGRITY: &str =
    "sha384-twbOvafhSBQ0rJDNPzJdUw6DRvthVgAVfSIG1BQVmCiNO7Qh2zeVn7T5qstgjJ9q";

/// Where the layout's `<script>` loads Datastar from, and the hash it must have.
#[derive(Debug, Clone, Default)]
pub struct DatastarScript {
    /// `DATASTAR_URL`.
    pub url: String,
    /// `DATASTAR_INTEGRITY`, or the known hash of the URL.
    pub integrity: Option<String>,
}
