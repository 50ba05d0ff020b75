//! Files a browser test fetches once and reads from the build's target directory: the Datastar
//! bundle and axe-core, never committed and never in the source tree.

use std::{path::PathBuf, sync::OnceLock};

/// Where a test keeps what it fetches: `name` in the build's target directory (a test binary
/// runs from `target/<profile>/deps/`), never in the source tree.
pub(super) fn scratch_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.ancestors().nth(3)?.to_path_buf())
        })
        .expect("a target directory");
    target.join(name)
}

/// The text of a file a test fetches, read once per test binary: from the path in the
/// environment variable `var` if it is set, else from where `fetch` puts it; it must start with
/// `start` (what `what` is).
pub(super) fn fetched(
    cell: &'static OnceLock<String>,
    var: &str,
    fetch: fn() -> PathBuf,
    start: &str,
    what: &str,
) -> &'static str {
    cell.get_or_init(|| {
        let path = std::env::var_os(var).map_or_else(fetch, PathBuf::from);
        let source = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {path:?}: {error}"));
        assert!(source.starts_with(start), "{path:?} is not {what}");
        source
    })
}
