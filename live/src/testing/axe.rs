//! axe-core, the accessibility checker, run in the page (feature `browser`).
//!
//! It comes from the npm registry at test time (`npm pack axe-core@<version>`, unpacked next to
//! the build), so nothing is committed and no CDN is needed; `AXE_JS=/path/to/axe.min.js` skips
//! the download.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// The axe-core release the checks run with.
pub const AXE_VERSION: &str = "4.10.3";

/// axe-core's source, fetched once per test binary.
pub fn axe_js() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = match std::env::var_os("AXE_JS") {
            Some(path) => PathBuf::from(path),
            None => fetch(),
        };
        let source = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {path:?}: {error}"));
        assert!(
            source.starts_with("/*! axe v4."),
            "{path:?} is not axe-core 4"
        );
        source
    })
}

fn fetch() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join(format!("axe-core-{AXE_VERSION}"));
    let script = dir.join("package").join("axe.min.js");
    if script.is_file() {
        return script;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let tarball = format!("axe-core-{AXE_VERSION}.tgz");
    let packed = Command::new("npm")
        .current_dir(&dir)
        .args(["pack", &format!("axe-core@{AXE_VERSION}"), "--silent"])
        .output()
        .expect("npm (Debian: npm) fetches axe-core");
    assert!(
        packed.status.success(),
        "npm pack axe-core failed: {}",
        String::from_utf8_lossy(&packed.stderr)
    );
    let unpacked = Command::new("tar")
        .current_dir(&dir)
        .args(["-xzf", &tarball])
        .status()
        .expect("tar unpacks axe-core");
    assert!(unpacked.success(), "tar -xzf {tarball} failed");
    script
}
