//! The app's folders of files — templates, static files — and the versioned URLs pages use for
//! static files.
//!
//! Release builds embed each folder (the binary needs nothing beside it): the app derives
//! `rust_embed::RustEmbed` for it, and [`Files::new`] takes that. Debug builds read the folder
//! from disk on every request instead, so an edited stylesheet or template shows without a
//! rebuild.
//!
//! Pages link assets through [`Assets::url`], which appends a short content hash (`?v=…`). A
//! request carrying the current hash may be cached for a year, because a changed file gets a
//! new URL; any other request is answered with `no-cache`, so browsers revalidate (cheaply, with
//! the ETag).

use std::{
    borrow::Cow,
    fmt,
    path::{Path, PathBuf},
};

use rust_embed::{EmbeddedFile, RustEmbed};

/// One folder of the app's files.
#[derive(Clone)]
pub struct Files {
    embedded: fn(&str) -> Option<EmbeddedFile>,
    dir: PathBuf,
}

impl fmt::Debug for Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Files").field("dir", &self.dir).finish()
    }
}

impl Files {
    /// The folder embedded as `E` in release builds, read from `dir` in debug builds (usually
    /// `concat!(env!("CARGO_MANIFEST_DIR"), "/templates")` for `#[folder = "templates/"]`).
    pub fn new<E: RustEmbed>(dir: impl Into<PathBuf>) -> Self {
        Files {
            embedded: E::get,
            dir: dir.into(),
        }
    }

    /// The same files, read from `dir` in debug builds (the dev settings' override).
    pub fn read_from(self, dir: impl Into<PathBuf>) -> Self {
        Files {
            dir: dir.into(),
            ..self
        }
    }

    /// Where debug builds read the files from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file at `path` (relative to the folder), if there is one. Only plain relative paths
    /// are looked up: no `..`, no absolute paths, no Windows separators.
    pub fn get(&self, path: &str) -> Option<EmbeddedFile> {
        let plain = !path.is_empty()
            && !path.starts_with('/')
            && !path.contains(['\\', ':', '\0'])
            && path
                .split('/')
                .all(|segment| !segment.is_empty() && segment != "..");
        if !plain {
            return None;
        }
        if cfg!(debug_assertions) {
            rust_embed::utils::read_file_from_fs(&self.dir.join(path)).ok()
        } else {
            (self.embedded)(path)
        }
    }
}

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

/// The app's static files.
#[derive(Debug, Clone)]
pub struct Assets {
    files: Files,
}

impl Assets {
    /// Static files from `files`.
    pub fn new(files: Files) -> Self {
        Assets { files }
    }

    /// Where debug builds read them from.
    pub fn dir(&self) -> &Path {
        self.files.dir()
    }

    /// The file at `path` (relative to `static/`), if there is one.
    pub fn get(&self, path: &str) -> Option<Asset> {
        let EmbeddedFile { data, metadata } = self.files.get(path)?;
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
        match self.files.get(path) {
            Some(file) => format!("/static/{path}?v={}", version(&file.metadata.sha256_hash())),
            None => format!("/static/{path}"),
        }
    }
}

/// 12 hex digits of the SHA-256: plenty to tell versions of one file apart.
fn version(hash: &[u8; 32]) -> String {
    hash[..6].iter().map(|byte| format!("{byte:02x}")).collect()
}
