//! Taking a newer kit, as `docs/upgrade.md` (and `live/README.md`) says: a project generated
//! from an older template gets this template's `live/` with exactly the documented commands,
//! and builds and passes its tests on it.

use std::{fs, path::Path, process::Command, time::Instant};

use super::{
    REPO, TempDir, cargo, describes_this_package, generate, lock_entries, readme, run,
    share_target_dir, target_dir,
};

/// The template as it was at kit 0.4.0 (commit 5b1caa0), the last version whose projects carried
/// the kit's tests and benchmark (and had no `docs/upgrade.md`).
const OLD_TEMPLATE: &str = "5b1caa03efe7b128f1fe1aa9a539081b938cc87f";
const OLD_VERSION: &str = "0.4.0";

/// The upgrade, as the docs write it: the commands of their `sh` block, in order.
const UPGRADE: [&str; 3] = [
    r#"kit=$(mktemp -d) && cargo generate --git <the template repository> --name kit --vcs none --destination "$kit" --silent"#,
    r#"rm -r live && cp -R "$kit/kit/live" live && rm -r "$kit""#,
    "cargo build && cargo test",
];
/// What a test cannot have, replaced in the first command by the template it can.
const TEMPLATE_ADDRESS: &str = "--git <the template repository>";

/// A project generated from the template at kit 0.4.0 is upgraded to this template's kit with
/// the first two commands of `docs/upgrade.md`, run as written through the shell (`--path` to a
/// snapshot of this template in place of `--git` and its address): its `live/` is now this
/// repository's, at this version, without the kit's tests and benchmark; then, as the third
/// command says, it builds (every target, the old app's tests included, which also puts the new
/// version in `Cargo.lock`) and its HTTP tests pass.
#[test]
fn a_project_of_an_older_template_takes_this_kit_with_the_documented_commands() {
    let started = Instant::now();
    let dir = TempDir::new("upgrade-test");

    // The documented commands, in the guide and in the kit's README of a project generated now.
    let current = TempDir::new("upgrade-template");
    let fresh = generate("fresh", &current);
    let template = current.0.join("template");
    let guide = fs::read_to_string(fresh.join("docs/upgrade.md")).unwrap();
    let kit_readme = fs::read_to_string(fresh.join("live/README.md")).unwrap();
    for (document, text) in [("docs/upgrade.md", &guide), ("live/README.md", &kit_readme)] {
        assert_eq!(
            upgrade_commands(text),
            UPGRADE,
            "{document} no longer gives the upgrade this test runs: update one or the other"
        );
    }

    // A project generated from the template at kit 0.4.0.
    let old_template = dir.0.join("old-template");
    extract(OLD_TEMPLATE, &old_template);
    run(cargo()
        .current_dir(&dir.0)
        .args([
            "generate", "--name", "my-app", "--vcs", "none", "--silent", "--path",
        ])
        .arg(&old_template)
        .arg("--destination")
        .arg(&dir.0));
    let project = dir.0.join("my-app");
    assert_eq!(
        kit_version(&project),
        OLD_VERSION,
        "{OLD_TEMPLATE} is kit {OLD_VERSION}"
    );
    assert!(project.join("live/tests").is_dir() && project.join("live/benches").is_dir());
    share_target_dir(&project);
    let lockfile = fs::read_to_string(project.join("Cargo.lock")).unwrap();
    eprintln!("old project generated: {:?}", started.elapsed());

    // Act: the first two commands, as written, but for the template's address.
    let temp = dir.0.join("tmp");
    fs::create_dir_all(&temp).unwrap();
    let fetch = UPGRADE[0].replace(
        TEMPLATE_ADDRESS,
        &format!("--path '{}'", template.display()),
    );
    assert_ne!(
        fetch, UPGRADE[0],
        "the template's address is where the docs say"
    );
    let script = format!("set -e\n{fetch}\n{}\n", UPGRADE[1]);
    run(shell(&project, &script).env("TMPDIR", &temp));

    // Assert: this kit, whole, and nothing left behind.
    let new_version = kit_version(Path::new(REPO));
    assert_ne!(new_version, OLD_VERSION, "bump the kit's version");
    assert_eq!(kit_version(&project), new_version);
    for gone in ["live/tests", "live/benches", "live/examples"] {
        assert!(
            !project.join(gone).exists(),
            "{gone} is still in the project"
        );
    }
    for file in ["live/README.md", "live/CHANGELOG.md", "live/src/lib.rs"] {
        assert_eq!(
            fs::read(project.join(file)).unwrap(),
            fs::read(Path::new(REPO).join(file)).unwrap(),
            "{file} is not this kit's"
        );
    }
    assert!(
        fs::read_dir(&temp).unwrap().next().is_none(),
        "the throwaway project is left in the temporary directory"
    );
    eprintln!("kit replaced: {:?}", started.elapsed());

    // The third command: the project builds on the new kit, and cargo puts the new version in
    // its lockfile, with what the new kit needs besides (and drops what it no longer needs);
    // every package locked before and still needed stays at its version.
    assert_eq!(UPGRADE[2], "cargo build && cargo test");
    run(cargo()
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", target_dir())
        .args(["build", "--all-targets"]));
    let upgraded = fs::read_to_string(project.join("Cargo.lock")).unwrap();
    assert!(
        upgraded.contains(&format!(
            "name = \"live-kit\"\nversion = \"{new_version}\"\n"
        )),
        "Cargo.lock has not the new kit"
    );
    let (before, after) = (locked(&lockfile), locked(&upgraded));
    let moved: Vec<&(String, String)> = before
        .iter()
        .filter(|package| {
            package.0 != "live-kit"
                && !after.contains(package)
                && after.iter().any(|(name, _)| *name == package.0)
        })
        .collect();
    assert!(
        moved.is_empty(),
        "the upgrade moved packages the app had locked: {moved:?}"
    );
    // What the CHANGELOG asks of an app's tests between the two versions, made as a reader
    // makes it (0.6.0: tests that open hundreds of tabs from 127.0.0.1 and count each raise
    // the per-client caps as they raise `max_streams_per_client`).
    let presence = project.join("tests/api/presence.rs");
    let test = fs::read_to_string(&presence).unwrap();
    let roomy = "spawn_app_with(|settings| settings.max_streams_per_client = 10_000).await";
    assert!(
        test.contains(roomy),
        "the 0.4.0 presence test is not as it was"
    );
    let changelog = fs::read_to_string(project.join("live/CHANGELOG.md")).unwrap();
    assert!(
        changelog.contains("`max_connections_per_client`")
            && changelog.contains("`presence_per_client`"),
        "the CHANGELOG no longer names the change made here"
    );
    fs::write(
        &presence,
        test.replace(
            roomy,
            "spawn_app_with(|settings| {\n        settings.max_streams_per_client = 10_000;\n        \
             settings.max_connections_per_client = 10_000;\n        \
             settings.presence_per_client = 10_000;\n    })\n    .await",
        ),
    )
    .unwrap();
    // (0.6.0: a stream comes gzipped to a client that accepts gzip, which the old test of
    // stream headers asks for and said never happens.)
    let streams = project.join("tests/api/streams.rs");
    let test = fs::read_to_string(&streams).unwrap();
    let plain = r#"assert!(response.headers().get("content-encoding").is_none());"#;
    assert!(
        test.contains(plain),
        "the 0.4.0 stream headers test is not as it was"
    );
    assert!(
        changelog.contains("`streams_are_not_compressed_or_cached`"),
        "the CHANGELOG no longer names the change made here"
    );
    fs::write(
        &streams,
        test.replace(
            plain,
            r#"assert_eq!(response.headers()["content-encoding"], "gzip");"#,
        ),
    )
    .unwrap();
    eprintln!("built: {:?}", started.elapsed());
    // The old app's tests at HTTP level; the rest of `cargo test` (its operations tests) runs
    // the same binary under signals, restarts and proxies, and is covered by this repository's.
    run(cargo()
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", target_dir())
        .args(["test", "--test", "api"]));
    eprintln!("upgraded and tested in {:?}", started.elapsed());
}

/// The packages a lockfile locks, as (name, version).
fn locked(lockfile: &str) -> Vec<(String, String)> {
    lock_entries(lockfile)
        .into_iter()
        .filter_map(|entry| {
            let mut lines = entry.lines();
            lines.find(|line| *line == "[[package]]")?;
            let name = lines.next()?.strip_prefix("name = ")?.trim_matches('"');
            let version = lines.next()?.strip_prefix("version = ")?.trim_matches('"');
            Some((name.to_owned(), version.to_owned()))
        })
        .collect()
}

/// The commands of the `sh` block that runs `cargo generate`, without comments.
fn upgrade_commands(markdown: &str) -> Vec<String> {
    let blocks: Vec<Vec<String>> = readme::blocks(markdown)
        .into_iter()
        .filter(|block| {
            block.lang == "sh" && block.lines.iter().any(|l| l.contains("cargo generate"))
        })
        .map(|block| {
            block
                .lines
                .into_iter()
                .filter(|line| !line.trim().is_empty() && !line.trim().starts_with('#'))
                .collect()
        })
        .collect();
    assert_eq!(blocks.len(), 1, "one upgrade block: {blocks:?}");
    blocks.into_iter().next().unwrap()
}

/// `git archive` of `commit` of this repository, extracted into `into`; fails, saying why, if
/// the clone lacks that commit.
fn extract(commit: &str, into: &Path) {
    let known = Command::new("git")
        .current_dir(REPO)
        .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
        .status()
        .expect("git runs");
    assert!(
        known.success(),
        "this clone lacks commit {commit} (the template at kit {OLD_VERSION}), which the upgrade \
         test generates its old project from: a shallow clone? Fetch the history \
         (`git fetch --unshallow`, or `fetch-depth: 0` in CI)"
    );
    fs::create_dir_all(into).unwrap();
    let archive = into.with_extension("tar");
    run(Command::new("git")
        .current_dir(REPO)
        .args(["archive", "--output"])
        .arg(&archive)
        .arg(commit));
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(into));
    fs::remove_file(archive).unwrap();
}

/// The version in `live/Cargo.toml` under `root`.
fn kit_version(root: &Path) -> String {
    let manifest = fs::read_to_string(root.join("live/Cargo.toml")).unwrap();
    manifest
        .lines()
        .find_map(|line| line.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no version in {manifest}"))
        .to_owned()
}

/// `script`, as a reader runs it in `project`: `sh`, without what the outer `cargo test` set.
fn shell(project: &Path, script: &str) -> Command {
    let mut shell = Command::new("sh");
    shell.current_dir(project).arg("-c").arg(script);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if describes_this_package(&name) || name == "CARGO_TARGET_DIR" {
            shell.env_remove(&*name);
        }
    }
    shell
}
