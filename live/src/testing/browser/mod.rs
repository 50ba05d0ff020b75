//! Headless Chromium, driven through chromedriver with `fantoccini` (feature `browser`).
//!
//! Each [`Browser`] is its own chromedriver and Chromium with a fresh profile, so two of them
//! are two independent, visible tabs (background tabs in one browser count as hidden, and
//! Datastar closes a hidden tab's stream). Chromium reaches no host but 127.0.0.1. Pages get
//! the real Datastar 1.x bundle from [`bundle`](super::bundle): an app's browser test is
//! start the app with [`bundle::settings`](super::bundle::settings), open two tabs, act, and
//! assert:
//!
//! ```no_run
//! # async fn two_tabs(url: &str) {
//! use live::testing::browser::Browser;
//!
//! let one = Browser::open_live("one", url).await;
//! let two = Browser::open_live("two", url).await;
//! one.type_and_enter("#name", "Ada").await;
//! two.wait_for_text("#greeting", "Hello, Ada!").await;
//! Browser::finish([one, two], &[]).await;
//! # }
//! ```
//!
//! Needs Debian's `chromium` and `chromium-driver` (or `CHROMIUM` and `CHROMEDRIVER`).
//!
//! `tabs.rs`: tabs opened in the background, windows, and a Chromium that reaches a site under
//! its real name over HTTPS; `commands.rs`: the chromedriver endpoints WebDriver lacks.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, key::Key};
use serde_json::{Value, json};

pub use fantoccini;

use self::commands::{BrowserLog, Cdp};

mod commands;
mod tabs;

use super::waits::PATIENCE;

/// Recorded in every page before its own scripts run: Datastar's fetch events (started,
/// retrying, …), so tests can wait on what the stream did, not on time.
const RECORDER: &str = r#"
window.__fetchEvents = [];
document.addEventListener('datastar-fetch', (event) => {
  window.__fetchEvents.push(event.detail.type);
});
"#;

/// A Chromium with JavaScript on or off.
pub struct Browser {
    /// The WebDriver session, for what the helpers below do not cover.
    pub client: Client,
    name: &'static str,
    driver: super::process::Process,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. `name` labels failure output.
    pub async fn launch(name: &'static str, javascript: bool) -> Browser {
        Browser::launch_with(name, javascript, &[]).await
    }

    /// [`Browser::launch`], with more command-line flags for Chromium.
    pub async fn launch_with(name: &'static str, javascript: bool, flags: &[String]) -> Browser {
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or("/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into());
        let port = super::process::free_port();
        let mut command = Command::new(&chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Chromium and its helpers run under chromedriver: dropping it stops them all, when a
        // failing test never reaches `close` too.
        let driver = super::process::Process::try_spawn(&mut command).unwrap_or_else(|error| {
            panic!(
                "cannot start {chromedriver}: {error} \
                     (apt-get install chromium chromium-driver, or set CHROMEDRIVER)"
            )
        });
        let profile = std::env::temp_dir().join(format!("browser-test-{}", uuid::Uuid::new_v4()));

        let mut options = json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-renderer-backgrounding",
                "--disable-background-timer-throttling",
                "--disable-backgrounding-occluded-windows",
                "--window-size=1024,768",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        if let Some(args) = options["args"].as_array_mut() {
            // A flag given twice counts once in Chromium: a rule set here replaces the default.
            if flags
                .iter()
                .any(|flag| flag.starts_with("--host-resolver-rules="))
            {
                args.retain(|arg| {
                    !arg.as_str()
                        .is_some_and(|arg| arg.starts_with("--host-resolver-rules="))
                });
            }
            args.extend(flags.iter().map(|flag| json!(flag)));
        }
        if !javascript {
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!(),
        };

        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        let client = loop {
            let attempt =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities.clone())
                    .connect(&url)
                    .await;
            match attempt {
                Ok(client) => break client,
                Err(error) if Instant::now() < deadline => {
                    // chromedriver is still starting.
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("cannot start a Chromium session: {error}"),
            }
        };
        let browser = Browser {
            client,
            name,
            driver,
            profile,
        };
        if javascript {
            browser
                .cdp(
                    "Page.addScriptToEvaluateOnNewDocument",
                    json!({ "source": RECORDER }),
                )
                .await;
        }
        browser
    }

    /// A browser with JavaScript showing `url`, its home stream live.
    pub async fn open_live(name: &'static str, url: &str) -> Browser {
        let browser = Browser::launch(name, true).await;
        browser.goto(url).await;
        browser.wait_live().await;
        browser
    }

    /// Checks that none of `tabs` logged an error (other than `expected` ones), then closes
    /// them.
    pub async fn finish(tabs: impl IntoIterator<Item = Browser>, expected: &[&str]) {
        for tab in tabs {
            tab.assert_no_errors(expected).await;
            tab.close().await;
        }
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.client
            .issue_cmd(Cdp {
                cmd: cmd.to_owned(),
                params,
            })
            .await
            .unwrap_or_else(|error| panic!("CDP {cmd} failed: {error}"))
    }

    /// Makes requests whose URL matches one of `patterns` (`*` wildcards) fail, as if the
    /// network dropped them; an empty list lifts the block.
    pub async fn block_urls(&self, patterns: &[&str]) {
        self.cdp("Network.enable", json!({})).await;
        self.cdp("Network.setBlockedURLs", json!({ "urls": patterns }))
            .await;
    }

    /// Loads `url` in the tab.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|error| panic!("[{}] script failed: {error}\n{script}", self.name))
    }

    /// The page's serious and critical WCAG 2.1 A and AA violations, as axe-core finds them
    /// (`rule: help [elements]`); empty when there are none. axe-core runs through WebDriver,
    /// which the page's Content-Security-Policy does not govern.
    pub async fn serious_accessibility_violations(&self) -> Vec<String> {
        self.eval(super::axe::axe_js(), vec![]).await;
        let script = r#"
            const done = arguments[arguments.length - 1];
            const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
            axe.run(document, { runOnly: { type: 'tag', values: tags } })
              .then((result) => done(result.violations
                .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                .map((v) => `${v.id}: ${v.help} ${JSON.stringify(v.nodes.map((n) => n.target))}`)))
              .catch((error) => done([`axe-core failed: ${error}`]));
        "#;
        let found = self
            .client
            .execute_async(script, vec![])
            .await
            .unwrap_or_else(|error| panic!("[{}] axe-core failed: {error}", self.name));
        serde_json::from_value(found).expect("a list of violations")
    }

    /// Types `text` into the element matching `selector`, then presses Enter.
    pub async fn type_and_enter(&self, selector: &str, text: &str) {
        let field = self.client.find(Locator::Css(selector)).await.unwrap();
        field.clear().await.unwrap();
        field
            .send_keys(&format!("{text}{}", char::from(Key::Enter)))
            .await
            .unwrap();
    }

    /// Waits until `predicate` (a JavaScript expression) is true in the page; on timeout, fails
    /// the test with `what` and everything the page showed.
    pub async fn wait_until(&self, what: &str, predicate: &str) {
        let script = format!("try {{ return !!({predicate}); }} catch (e) {{ return false; }}");
        self.poll(&format!("{what} ({predicate})"), async || {
            self.eval(&script, vec![]).await == json!(true)
        })
        .await;
    }

    /// Waits until the element matching `selector` has text containing `needle`. Works with
    /// JavaScript off too (it reads the DOM through WebDriver, not through a page script).
    pub async fn wait_for_text(&self, selector: &str, needle: &str) {
        self.poll(&format!("{selector} to show {needle:?}"), async || {
            self.element_text(selector).await.is_some_and(|text| {
                text.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .contains(needle)
            })
        })
        .await;
    }

    /// Checks `ready` every 25 ms until it says yes; after [`PATIENCE`], fails the test with
    /// `what` and everything the page showed.
    pub(crate) async fn poll(&self, what: &str, ready: impl AsyncFnMut() -> bool) {
        self.poll_within(PATIENCE, what, ready).await;
    }

    /// [`Browser::wait_live`], for a page that may first wait `patience` to reconnect.
    pub async fn wait_live_within(&self, patience: Duration) {
        self.poll_within(
            patience,
            "#connection-status to show \"live\"",
            async || {
                self.element_text("#connection-status")
                    .await
                    .is_some_and(|text| text.contains("live"))
            },
        )
        .await;
    }

    async fn poll_within(
        &self,
        patience: Duration,
        what: &str,
        mut ready: impl AsyncFnMut() -> bool,
    ) {
        let deadline = Instant::now() + patience;
        while !ready().await {
            if Instant::now() > deadline {
                panic!(
                    "[{}] timed out waiting for {what}\n{}",
                    self.name,
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The text of the element matching `selector`, if there is one.
    async fn element_text(&self, selector: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(selector)).await.ok()?;
        element.text().await.ok()
    }

    /// Waits until the browser has logged a message containing `needle`.
    pub async fn poll_log_for(&self, needle: &str) {
        let mut seen = Vec::new();
        self.poll(
            &format!("a log message containing {needle:?}"),
            async || {
                seen.extend(self.log().await);
                seen.iter().any(|entry| entry.message.contains(needle))
            },
        )
        .await;
    }

    /// Waits for Datastar to have the home stream open (`$connected`, shown as "live").
    pub async fn wait_live(&self) {
        self.wait_for_text("#connection-status", "live").await;
    }

    /// What the page shows, for failure messages: URL, body, Datastar's fetch events, log.
    pub async fn describe(&self) -> String {
        let url = self.client.current_url().await.map(|u| u.to_string());
        let body = self.client.source().await;
        let events = self
            .client
            .execute("return window.__fetchEvents ?? null", vec![])
            .await;
        format!(
            "--- url: {url:?}\n--- datastar-fetch events: {events:?}\n--- log: {:?}\n--- body:\n{}",
            self.log().await,
            body.unwrap_or_else(|e| e.to_string())
        )
    }

    /// The browser's console and network log since the last call.
    pub async fn log(&self) -> Vec<LogEntry> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .unwrap_or_else(|error| panic!("cannot read the browser log: {error}"));
        entries
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| LogEntry {
                level: entry["level"].as_str().unwrap_or_default().to_owned(),
                message: entry["message"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// Fails the test if the page logged an error (a JavaScript exception, a Datastar error, a
    /// failed load), other than messages containing one of `expected`.
    pub async fn assert_no_errors(&self, expected: &[&str]) {
        let errors: Vec<_> = self
            .log()
            .await
            .into_iter()
            .filter(|entry| entry.level == "SEVERE")
            .filter(|entry| !expected.iter().any(|e| entry.message.contains(e)))
            .collect();
        assert!(
            errors.is_empty(),
            "[{}] the page logged errors: {errors:#?}",
            self.name
        );
    }

    /// Ends the session and the processes.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Dropping `self` stops chromedriver and removes the profile.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test does not reach `close`: never leave processes behind.
        self.driver.kill_all();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One line of the browser log.
#[derive(Debug)]
pub struct LogEntry {
    /// `SEVERE`, `WARNING`, `INFO`…
    pub level: String,
    /// What was logged.
    pub message: String,
}
