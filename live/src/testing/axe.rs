//! axe-core, the accessibility checker, run in the page (feature `browser`).
//!
//! It comes from the npm registry at test time (`npm pack axe-core@<version>`, unpacked next to
//! the build), so nothing is committed and no CDN is needed; `AXE_JS=/path/to/axe.min.js` skips
//! the download.

use std::{path::PathBuf, process::Command, sync::OnceLock};

/// The axe-core release the checks run with.
pub const AXE_VERSION: &str = "4.10.3";

/// axe-core's source, fetched once per test binary.
pub fn axe_js() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    super::fetched::fetched(&SOURCE, "AXE_JS", fetch, "/*! axe v4.", "axe-core 4")
}

fn fetch() -> PathBuf {
    let dir = super::fetched::scratch_dir(&format!("axe-core-{AXE_VERSION}"));
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
