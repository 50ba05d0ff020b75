//! `cargo dev` in a freshly generated project, seen from a tab in headless Chromium: a Rust
//! edit changes the page, a broken edit shows the compiler's error in the tab while the last
//! good build keeps serving, and the fix brings the page back.

use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use live::testing::{Process, browser::Browser, bundle};

use super::{TempDir, cargo, generate, share_target_dir, target_dir};

/// A first build of a new project's kit, with the rest of the dependencies shared, on a busy
/// 2-core machine; and each rebuild after an edit.
const FIRST_BUILD: Duration = Duration::from_secs(900);
const REBUILD: Duration = Duration::from_secs(300);

/// The line of `src/home/page.rs` the test edits: the name field's `maxlength`.
const LINE: &str = "max_name_chars => MAX_NAME_CHARS,";

/// What `cargo dev` and the app print, kept for the test to wait on, and shown by it.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<String>>);

impl Output {
    fn follow(&self, from: impl Read + Send + 'static) {
        let output = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let mut all = output.0.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// Waits until a line holds `needle` after the first `skip` bytes; returns that line.
    async fn wait_for(&self, needle: &str, skip: usize, patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        loop {
            let text = self.text();
            if let Some(line) = text[skip..].lines().find(|line| line.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "cargo dev never printed {needle:?}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn edit(project: &Path, from: &str, to: &str) -> Instant {
    let path = project.join("src/home/page.rs");
    let source = std::fs::read_to_string(&path).unwrap();
    assert!(source.contains(from), "src/home/page.rs has no {from:?}");
    std::fs::write(&path, source.replace(from, to)).unwrap();
    Instant::now()
}

/// Waits until `predicate` (JavaScript) holds in the tab, for as long as a build may take.
async fn wait_until(tab: &Browser, what: &str, predicate: &str, patience: Duration) {
    let deadline = Instant::now() + patience;
    let script = format!("try {{ return !!({predicate}); }} catch (e) {{ return false; }}");
    while tab.eval(&script, vec![]).await != serde_json::json!(true) {
        assert!(
            Instant::now() < deadline,
            "the tab never showed {what} ({predicate}):\n{}",
            tab.describe().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn cargo_dev_rebuilds_on_a_rust_edit_shows_a_failed_build_in_the_tab_and_recovers() {
    // Arrange: a fresh project, its pages loading the test's copy of Datastar; `cargo dev` as
    // the README says, on a port of its choosing (PORT=0).
    let dir = TempDir::new("cargo-dev");
    let project = generate("dev-app", &dir);
    share_target_dir(&project);
    let datastar = bundle::serve().await;
    let mut command: Command = cargo();
    live::testing::without_settings(&mut command);
    command
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("PORT", "0")
        .env("DATASTAR_URL", format!("http://{datastar}/datastar.js"))
        .env("DATASTAR_INTEGRITY", bundle::integrity())
        .arg("dev")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut runner = Process::spawn(&mut command);
    let output = Output::default();
    output.follow(runner.stdout.take().unwrap());
    output.follow(runner.stderr.take().unwrap());
    let announced = output
        .wait_for("cargo dev: the app will listen on ", 0, FIRST_BUILD)
        .await;
    let address = announced
        .split("listen on ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    output
        .wait_for("cargo dev: built and started", 0, FIRST_BUILD)
        .await;
    let tab = Browser::launch("cargo dev tab", true).await;
    tab.goto(&format!("http://{address}/")).await;
    tab.wait_live().await;
    assert_eq!(
        tab.eval("return document.querySelector('#name').maxLength", vec![])
            .await,
        64
    );

    // Act 1: a one-line handler change.
    let mark = output.text().len();
    let saved = edit(&project, LINE, "max_name_chars => 7,");
    wait_until(
        &tab,
        "the page of the new build",
        "document.querySelector('#name').maxLength === 7",
        REBUILD,
    )
    .await;
    let rust_edit = saved.elapsed();
    let restarted = output.wait_for("built and started in", mark, REBUILD).await;
    eprintln!("Rust edit: the tab showed it {rust_edit:?} after the save ({restarted})");
    tab.wait_live().await;

    // Act 2: an edit that does not compile.
    let saved = edit(&project, "max_name_chars => 7,", "max_name_chars => 7 +,");
    wait_until(
        &tab,
        "the compiler's error",
        "document.querySelector('#dev-build pre')?.textContent.includes('src/home/page.rs:')",
        REBUILD,
    )
    .await;
    eprintln!(
        "broken edit: the error showed {:?} after the save",
        saved.elapsed()
    );
    let banner = tab
        .eval(
            "return document.querySelector('#dev-build').textContent",
            vec![],
        )
        .await;
    let banner = banner.as_str().unwrap();
    assert!(
        banner.contains("The build failed") && banner.contains("expected expression"),
        "{banner}"
    );
    assert!(!banner.contains('\u{1b}'), "no terminal colours: {banner}");
    // The last good build still serves, live.
    assert_eq!(
        tab.eval("return document.querySelector('#name').maxLength", vec![])
            .await,
        7
    );
    tab.wait_live().await;
    assert_eq!(
        tab.serious_accessibility_violations().await,
        Vec::<String>::new()
    );
    // A tab opened now gets the error too, on its stream.
    let late = Browser::launch("a tab opened while the build is broken", true).await;
    late.goto(&format!("http://{address}/")).await;
    wait_until(
        &late,
        "the compiler's error",
        "document.querySelector('#dev-build pre')?.textContent.includes('src/home/page.rs:')",
        REBUILD,
    )
    .await;

    // Act 3: the fix.
    edit(&project, "max_name_chars => 7 +,", "max_name_chars => 9,");

    // Assert: both tabs on the new build, the banner gone.
    for tab in [&tab, &late] {
        wait_until(
            tab,
            "the fixed build",
            "document.querySelector('#name').maxLength === 9",
            REBUILD,
        )
        .await;
        tab.wait_live().await;
        assert_eq!(
            tab.eval(
                "return document.querySelector('#dev-build').textContent.trim()",
                vec![]
            )
            .await,
            ""
        );
    }
    late.close().await;
    tab.close().await;

    // The runner killed outright (no Ctrl-C, no chance to stop the app): the app notices and
    // stops too, and nothing answers on its address any more.
    // (`cargo run` execs the runner: the process started is the runner.)
    runner.kill().unwrap();
    let _ = runner.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&address).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the app outlived cargo dev:\n{}",
            output.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
