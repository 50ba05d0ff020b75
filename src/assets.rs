//! The files in `static/`, and the versioned URLs pages use for them.
//!
//! Release builds embed the folder (the binary needs nothing beside it). Debug builds read it
//! from disk on every request, so an edited stylesheet shows without a rebuild; the folder is
//! the crate's `static/` unless the dev settings say otherwise.
//!
//! Pages link assets through [`Assets::url`], which appends a short content hash (`?v=…`). A
//! request carrying the current hash may be cached for a year, because a changed file gets a
//! new URL; any other request is answered with `no-cache`, so browsers revalidate (cheaply, with
//! the ETag).

use std::borrow::Cow;
#[cfg(debug_assertions)]
use std::path::PathBuf;

use rust_embed::EmbeddedFile;

#[cfg(not(debug_assertions))]
#[derive(rust_embed::RustEmbed)]
#[folder = "static/"]
struct Embedded;

/// One static file with what its response headers need.
#[derive(Debug)]
pub struct Asset {
    /// The file's bytes.
    pub data: Cow<'static, [u8]>,
    /// Its MIME type, from the extension.
    pub mime: String,
    /// Short content hash: the `v` query parameter and the `ETag`.
    pub version: String,
    /// Modification time, seconds since the Unix epoch, when known.
    pub last_modified: Option<u64>,
}

/// Where static files come from.
#[derive(Debug, Clone)]
pub struct Assets {
    #[cfg(debug_assertions)]
    dir: PathBuf,
}

impl Default for Assets {
    /// The crate's own `static/`: embedded in release builds, on disk in debug builds.
    fn default() -> Self {
        Assets {
            #[cfg(debug_assertions)]
            dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/static")),
        }
    }
}

impl Assets {
    /// Files read from `dir` (debug builds only: release builds always embed).
    #[cfg(debug_assertions)]
    pub fn from_dir(dir: impl Into<PathBuf>) -> Self {
        Assets { dir: dir.into() }
    }

    /// The file at `path` (relative to `static/`), if there is one.
    pub fn get(&self, path: &str) -> Option<Asset> {
        let EmbeddedFile { data, metadata } = self.file(path)?;
        Some(Asset {
            data,
            mime: metadata.mimetype().to_owned(),
            version: version(&metadata.sha256_hash()),
            last_modified: metadata.last_modified(),
        })
    }

    /// The URL a page should use for `static/<path>`: `/static/<path>?v=<hash>`, or without the
    /// hash if the file does not exist (so the mistake shows as a 404 in the browser).
    pub fn url(&self, path: &str) -> String {
        match self.file(path) {
            Some(file) => format!("/static/{path}?v={}", version(&file.metadata.sha256_hash())),
            None => format!("/static/{path}"),
        }
    }

    fn file(&self, path: &str) -> Option<EmbeddedFile> {
        // Only plain relative paths: no `..`, no absolute paths, no Windows separators.
        let plain = !path.is_empty()
            && !path.starts_with('/')
            && !path.contains(['\\', ':', '\0'])
            && path
                .split('/')
                .all(|segment| !segment.is_empty() && segment != "..");
        if !plain {
            return None;
        }
        #[cfg(not(debug_assertions))]
        return <Embedded as rust_embed::RustEmbed>::get(path);
        #[cfg(debug_assertions)]
        return rust_embed::utils::read_file_from_fs(&self.dir.join(path)).ok();
    }
}

/// 12 hex digits of the SHA-256: plenty to tell versions of one file apart.
fn version(hash: &[u8; 32]) -> String {
    hash[..6].iter().map(|byte| format!("{byte:02x}")).collect()
}
