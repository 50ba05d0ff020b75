//! Programs a test needs on the PATH: [`require`] fails a test whose program is missing (for
//! tests marked `#[ignore = "needs …"]`); [`installed`], deprecated, let it pass unrun.

/// Fails the test unless `binary` is on the PATH, naming the Debian `package` that brings it.
///
/// For tests marked `#[ignore = "needs …"]`: libtest cannot skip a test once it runs, so a
/// test that needs a program a machine may lack is ignored, and counted as such, unless asked
/// for (`cargo test -- --ignored`); asked for, it fails rather than pass without running.
pub fn require(binary: &str, package: &str) {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "no `{binary}` on the PATH: apt-get install {package}, or leave this ignored test out"
    );
}

/// Whether `binary` is on the PATH; if not, says so on stderr, naming the Debian `package`.
///
/// Kept for the tests of apps made with kit 0.5 or older, so that taking a newer kit does not
/// stop them compiling: a test that checks with it passes without running where the program
/// is missing, which a summary then counts as a pass. Mark such a test
/// `#[ignore = "needs …"]` and call [`require`] instead.
#[deprecated(
    since = "0.6.0",
    note = "mark the test #[ignore = \"needs …\"] and call live::testing::require"
)]
pub fn installed(binary: &str, package: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        eprintln!(
            "SKIPPED: no `{binary}` on the PATH (apt-get install {package}); the test did not run"
        );
    }
    found
}
