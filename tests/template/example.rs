//! "Remove the example": the generated project's `docs/remove-example.patch`, applied as its
//! README says, leaves a blank live app (the home page and its stream) that passes the
//! generated CI's checks and tests itself.
//!
//! The patch is a diff against the files as generated: a change to any file it touches (the
//! example's, the home page's, the app's tests) makes it fail to apply, and this test says so.
//! To make a new one: generate a project, `git init` and commit it, remove the example there
//! (this test's checks below say what must hold), then `git add -A` and
//! `git diff --cached --binary > docs/remove-example.patch` in this repository.

use std::{fs, io::Read};

use super::{TempDir, cargo, generate, run, shell, target_dir};

/// The README's commands, in order, run as written from the project's root.
pub(super) const COMMANDS: &[&str] = &[
    "git apply docs/remove-example.patch",
    "rm docs/remove-example.patch",
];

/// The example's files, which the patch deletes.
const EXAMPLE: &[&str] = &[
    "src/greeting.rs",
    "src/about.rs",
    "src/home/actions.rs",
    "src/home/events.rs",
    "templates/about.html",
    "templates/partials/greeting.html",
    "templates/partials/greet_error.html",
    "tests/api/greet.rs",
    "tests/api/presence.rs",
];

/// What the blank app keeps: one page and its stream, and its tests.
const BLANK_APP: &[&str] = &[
    "src/lib.rs",
    "src/main.rs",
    "src/home/mod.rs",
    "src/home/page.rs",
    "src/home/stream.rs",
    "templates/home.html",
    "templates/layout.html",
    "tests/api/main.rs",
    "tests/api/pages.rs",
    "tests/api/streams.rs",
    "tests/browser/main.rs",
    "tests/browser/scenarios.rs",
    "tests/colours.rs",
    "tests/settings.rs",
];

#[test]
fn removing_the_example_leaves_a_blank_live_app_that_passes_its_checks_and_tests() {
    // Arrange: a fresh project, outside any git repository (`git apply` works there too).
    let name = "blank-app";
    let dir = TempDir::new("example-test");
    let project = generate(name, &dir);
    // Builds into the shared target directory with a kit of its own, as `share_target_dir`
    // arranges, but numbered apart from the other template tests' kits (300, 301…): one built
    // at the same moment would otherwise be taken for this one's.
    let units = 500 + std::process::id() % 500;
    fs::create_dir_all(project.join(".cargo")).unwrap();
    fs::write(
        project.join(".cargo/config.toml"),
        format!(
            "[profile.dev.package.live-kit]\ncodegen-units = {units}\n\
             [profile.release.package.live-kit]\ncodegen-units = {units}\n"
        ),
    )
    .unwrap();

    // Act: the README's commands, as written.
    for command in COMMANDS {
        run(&mut shell(&project, command));
    }

    // Assert: the example is gone, and nothing in the app still speaks of it.
    for gone in EXAMPLE.iter().chain(&["docs/remove-example.patch"]) {
        assert!(!project.join(gone).exists(), "{gone} is still there");
    }
    for kept in BLANK_APP {
        assert!(project.join(kept).is_file(), "{kept} is gone");
    }
    for folder in ["src", "templates", "static", "tests"] {
        for file in super::files_under(&project.join(folder)) {
            let text = fs::read_to_string(&file).unwrap_or_default().to_lowercase();
            for word in ["greet", "/about", "people here"] {
                assert!(!text.contains(word), "{word:?} left in {file:?}");
            }
        }
    }
    let home = fs::read_to_string(project.join("templates/home.html")).unwrap();
    assert!(
        home.contains("live_stream(\"/sse/home\")") && home.contains("src/home/page.rs"),
        "the home page keeps its stream and says where to start: {home}"
    );

    // The generated CI's checks, and the app's own tests, which must run (not merely build).
    let in_project = |args: &[&str]| {
        let mut command = cargo();
        command
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", target_dir())
            .args(args);
        command
    };
    run(&mut in_project(&["fmt", "--all", "--check"]));
    run(&mut in_project(&[
        "clippy",
        "--all-targets",
        "--features",
        "browser-tests",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]));
    // (Both streams in one, in order: cargo names each test binary on stderr, and the binary
    // reports its results on stdout.)
    let mut test = in_project(&["test", "--locked"]);
    let (mut reader, writer) = std::io::pipe().unwrap();
    test.stdout(writer.try_clone().unwrap()).stderr(writer);
    let mut child = test.spawn().unwrap();
    drop(test); // its copies of the pipe's write end, or the read below never ends
    let mut report = String::new();
    reader.read_to_string(&mut report).unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the blank app's tests fail ({status}):\n{report}"
    );
    let passed = passed_by_target(&report);
    eprintln!("blank app tests passed: {passed:?}");
    for target in ["api", "colours", "settings"] {
        assert!(
            passed
                .iter()
                .any(|(name, count)| name == target && *count > 0),
            "no test of {target} ran: {passed:?}"
        );
    }
    let api = passed.iter().find(|(name, _)| name == "api").unwrap().1;
    assert!(api >= 15, "only {api} HTTP tests ran");
}

/// `(test target, tests passed)` for each target in a `cargo test` report, read from its
/// `Running tests/….rs (target/debug/deps/<name>-<hash>)` and `test result:` lines.
fn passed_by_target(report: &str) -> Vec<(String, usize)> {
    let mut passed = Vec::new();
    let mut target = None;
    for line in report.lines() {
        if let Some(binary) = line.trim().strip_prefix("Running ") {
            let binary = binary
                .trim_end_matches(')')
                .rsplit('/')
                .next()
                .unwrap_or(binary);
            target = Some(
                binary
                    .rsplit_once('-')
                    .map_or(binary, |(name, _)| name)
                    .to_owned(),
            );
        } else if let Some(result) = line.strip_prefix("test result: ok. ") {
            let count = result
                .split(" passed")
                .next()
                .and_then(|count| count.parse().ok())
                .unwrap_or(0);
            passed.push((target.take().unwrap_or_default(), count));
        }
    }
    passed
}
