//! Metrics for Prometheus (`METRICS_ADDR`): served on their own address and never on the public
//! port, counting what the app did, read by the real `prometheus` through its HTTP API, and
//! accepted by `promtool`; and the alerts the project ships (`deploy/alerts.yml`) through
//! `promtool test rules`.
//!
//! The tests that need `prometheus` or `promtool` (`apt-get install prometheus` brings both),
//! which a machine may lack, are `#[ignore]`d with their reason, counted as ignored rather than
//! passed by a plain `cargo test`; `cargo test --all-features --test ops -- --ignored` runs them
//! (`.ci/run` does), and fails them if the programs are missing.

#![cfg(unix)]

use live::testing::free_port;
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use live::testing::{PATIENCE, Process, SseClient, require};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app_with};

/// The app, with its metrics on a free port of the loopback.
async fn app_with_metrics() -> TestApp {
    spawn_app_with(|settings| {
        settings.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
        // Every tab comes from 127.0.0.1, and each counts in presence.
        settings.presence_per_client = 100;
    })
    .await
}

/// `GET /metrics` on the metrics address: the exposition.
async fn scrape(app: &TestApp) -> String {
    let addr = app.metrics_addr().expect("METRICS_ADDR is set");
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.unwrap()
}

/// The value of the sample `series` (its name and labels, exactly as exposed), if there is one.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.parse().expect("a sample's value is a number"))
    })
}

/// `n` home pages' streams, opened one after another, each past its first events.
async fn live_tabs(app: &TestApp, n: usize) -> Vec<SseClient> {
    let mut tabs = Vec::with_capacity(n);
    for _ in 0..n {
        tabs.push(app.open_live_home_stream().await);
    }
    tabs
}

/// Reads every tab until each shows how many tabs there are (the home page's presence): then
/// the server writes nothing more until the test acts.
async fn settle(tabs: &mut [SseClient]) {
    let count = tabs.len() as u64;
    for tab in tabs {
        tab.until_presence("here", count, PATIENCE).await;
    }
}

/// The events the tabs read, all told: once they have read everything, what the server wrote.
fn read(tabs: &[SseClient]) -> f64 {
    tabs.iter().map(SseClient::events_read).sum::<usize>() as f64
}

/// Scrapes until `series` reads `expected`: a count is handed over when its stream next waits,
/// a moment after the client read what it counts.
async fn until_sample(app: &TestApp, series: &str, expected: f64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let exposition = scrape(app).await;
        let found = sample(&exposition, series);
        if found == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {found:?}, not {expected}, after {PATIENCE:?}:\n{exposition}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_are_served_on_their_own_address_and_never_on_the_public_port() {
    // Arrange
    let app = app_with_metrics().await;
    let metrics = app.metrics_addr().unwrap();
    assert_ne!(metrics, app.addr());

    // Act
    let public = app.get("/metrics").await;
    let exposition = scrape(&app).await;
    let elsewhere = reqwest::get(format!("http://{metrics}/")).await.unwrap();

    // Assert
    assert_eq!(public.status(), 404, "the public port has no /metrics");
    assert!(
        exposition.contains("# TYPE live_streams_open gauge"),
        "{exposition}"
    );
    assert_eq!(
        elsewhere.status(),
        404,
        "the metrics port serves /metrics only"
    );
    drop(app);

    // Unset: no listener, no metrics kept.
    let plain = crate::helpers::spawn_app().await;
    assert_eq!(plain.metrics_addr(), None);
    assert!(plain.state.live.metrics().is_none());
    assert_eq!(plain.get("/metrics").await.status(), 404);
    drop(plain);
}

#[tokio::test]
async fn the_metrics_count_streams_events_refusals_and_requests() {
    // Arrange: three tabs, live.
    let app = app_with_metrics().await;
    let mut tabs = live_tabs(&app, 3).await;
    settle(&mut tabs).await;
    until_sample(&app, r#"live_streams_open{page="page/home"}"#, 3.0).await;
    until_sample(&app, "live_stream_events_written_total", read(&tabs)).await;

    // Act: a greet, which every tab gets.
    let greeted = app.greet_with_datastar("Ada").await;
    assert_eq!(greeted.status(), 200);
    for tab in &mut tabs {
        let greeting = tab.next_event().await;
        assert!(greeting.data.contains("Ada"), "{greeting:?}");
    }

    // Assert
    until_sample(&app, "live_stream_events_written_total", read(&tabs)).await;
    let exposition = scrape(&app).await;
    let expected = [
        ("live_streams_opened_total", 3.0),
        (r#"live_events_published_total{kind="latest"}"#, 1.0),
        (r#"live_events_published_total{kind="ordinary"}"#, 0.0),
        (
            r#"http_requests_total{route="/api/greet",method="POST",status="200"}"#,
            1.0,
        ),
        (
            r#"http_request_duration_seconds_count{route="/sse/home"}"#,
            3.0,
        ),
        (r#"live_refusals_total{reason="invalid"}"#, 0.0),
        ("live_streams_max", 10_000.0),
    ];
    for (series, value) in expected {
        assert_eq!(
            sample(&exposition, series),
            Some(value),
            "{series}:\n{exposition}"
        );
    }
    let written = sample(&exposition, "live_stream_written_bytes_total").unwrap();
    assert!(written > 3.0 * 100.0, "{written} bytes for 3 pages' events");

    // Refusals, by reason, whether Datastar's 200 or a plain form's status carried them.
    let empty = app.greet_with_datastar("").await;
    assert_eq!(empty.status(), 200, "Datastar sees its refusal in a 200");
    let huge = app.greet_with_form(&"x".repeat(100_000)).await;
    assert_eq!(huge.status(), 413);
    let forged = app
        .client()
        .post(app.url("/api/greet"))
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://evil.example")
        .form(&[("name", "Mallory")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let exposition = scrape(&app).await;
    for (reason, count) in [("invalid", 1.0), ("too_large", 1.0), ("cross_site", 1.0)] {
        let series = format!(r#"live_refusals_total{{reason="{reason}"}}"#);
        assert_eq!(
            sample(&exposition, &series),
            Some(count),
            "{series}:\n{exposition}"
        );
    }

    // Streams closed, by reason: a tab that leaves, and one replaced by a newer stream of
    // its session.
    drop(tabs.pop());
    until_sample(
        &app,
        r#"live_streams_closed_total{reason="client_left"}"#,
        1.0,
    )
    .await;
    until_sample(&app, r#"live_streams_open{page="page/home"}"#, 2.0).await;
    let session = Uuid::new_v4();
    let mut first = app.open_home_stream(session).await;
    first.read_initial_events().await;
    let mut second = app.open_home_stream(session).await;
    second.read_initial_events().await;
    until_sample(&app, r#"live_streams_closed_total{reason="replaced"}"#, 1.0).await;
    until_sample(&app, r#"live_streams_open{page="page/home"}"#, 3.0).await;
    drop(app);
}

#[tokio::test]
async fn the_time_from_a_greet_to_its_last_write_is_observed() {
    // Arrange: three tabs, live.
    let app = app_with_metrics().await;
    let mut tabs = live_tabs(&app, 3).await;

    // Act: a greet (the one sampled) that every tab reads, then a newer one, which replaces
    // it: no stream can write the first any more, so its time is final.
    let sent = Instant::now();
    assert_eq!(app.greet_with_datastar("Ada").await.status(), 200);
    for tab in &mut tabs {
        assert!(tab.next_event().await.data.contains("Ada"));
    }
    let all_read = sent.elapsed();
    assert_eq!(app.greet_with_datastar("Grace").await.status(), 200);

    // Assert: one observation, no longer than the test saw the greet take to reach every tab.
    let count = r#"live_delivery_seconds_count{kind="latest"}"#;
    until_sample(&app, count, 1.0).await;
    let exposition = scrape(&app).await;
    let took = sample(&exposition, r#"live_delivery_seconds_sum{kind="latest"}"#).unwrap();
    assert!(
        took > 0.0 && took <= all_read.as_secs_f64(),
        "{took} s to the last write; every tab had it {all_read:?} after the post was sent"
    );
    assert_eq!(
        sample(
            &exposition,
            r#"live_delivery_seconds_count{kind="ordinary"}"#
        ),
        Some(0.0),
        "{exposition}"
    );
    drop(app);
}

/// `promtool check metrics` on `exposition`.
fn promtool_accepts(exposition: &str) {
    use std::io::Write;
    let mut promtool = Process::spawn(
        Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

/// The real `prometheus`, scraping `target` every second, with its data in a folder of its
/// own; stopped and removed on drop.
struct Prometheus {
    /// Stopped with the test (before its folder is removed).
    child: Process,
    dir: PathBuf,
    api: String,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("prometheus-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: app\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let web = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Process::spawn(
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{web}"))
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        );
        Prometheus {
            child,
            dir,
            api: format!("http://127.0.0.1:{web}/api/v1/query"),
        }
    }

    /// The value of `query` (one series) now, if Prometheus has one.
    async fn query(&self, query: &str) -> Option<f64> {
        let response = reqwest::Client::new()
            .get(&self.api)
            .query(&[("query", query)])
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        let result = body["data"]["result"].as_array()?;
        let [series] = result.as_slice() else {
            return None;
        };
        series["value"][1].as_str()?.parse().ok()
    }

    /// Asks until `query` reads `expected`; fails with what it read last.
    async fn until(&self, query: &str, expected: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found = self.query(query).await;
            if found == Some(expected) {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("prometheus.log"));
                panic!("Prometheus reads {query} as {found:?}, not {expected}; its log:\n{log:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.child.kill_all();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
#[ignore = "needs prometheus (apt-get install prometheus); run with -- --ignored, as .ci/run does"]
async fn prometheus_reads_the_open_streams_and_the_events_written_and_promtool_accepts_them() {
    require("prometheus", "prometheus");
    require("promtool", "prometheus");
    // Arrange
    let app = app_with_metrics().await;
    let prometheus = Prometheus::start(app.metrics_addr().unwrap());
    const TABS: usize = 5;

    // Act: five tabs, and a greet they all get.
    let mut tabs = live_tabs(&app, TABS).await;
    settle(&mut tabs).await;
    assert_eq!(app.greet_with_datastar("Grace").await.status(), 200);
    for tab in &mut tabs {
        assert!(tab.next_event().await.data.contains("Grace"));
    }

    // Assert: what Prometheus scraped is what the test did.
    prometheus.until(r#"up{job="app"}"#, 1.0).await;
    prometheus
        .until(r#"sum(live_streams_open{job="app"})"#, TABS as f64)
        .await;
    prometheus
        .until(
            r#"live_stream_events_written_total{job="app"}"#,
            read(&tabs),
        )
        .await;
    prometheus
        .until(
            r#"live_events_published_total{job="app",kind="latest"}"#,
            1.0,
        )
        .await;
    // What promtool makes of the exposition (its linter: names, units, help).
    promtool_accepts(&scrape(&app).await);
    drop(app);
}

/// The project's `deploy/` folder.
fn deploy() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy"))
}

#[test]
#[ignore = "needs promtool (apt-get install prometheus); run with -- --ignored, as .ci/run does"]
fn the_shipped_alerts_pass_promtool_and_fire_when_their_tests_say() {
    require("promtool", "prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let output = Command::new("promtool")
            .args(args)
            .current_dir(deploy())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
