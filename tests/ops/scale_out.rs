//! Two app processes sharing a real Redis: the home page's "N people here" counts the tabs on
//! both, an instance killed with `kill -9` drops out of the count within `PRESENCE_EXPIRY_SECS`,
//! and one restarted in its place (the same address) takes its share over, counting no tab
//! twice while the old share would still be alive.

use live::testing::free_port;
use std::{
    net::SocketAddr,
    process::Stdio,
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use live::testing::{PATIENCE, Process, RedisServer, SseClient, app_command, open_tab};

const SECRET: &str = "the scale-out test's secret, 32+ characters";
/// A short expiry, so that the test waits seconds, not the default 15.
const EXPIRY: Duration = Duration::from_secs(5);
/// The presence the home page shows.
const HERE: &str = "here";

/// One app process on `addr`, killed (`kill -9`) when dropped.
struct Instance {
    child: Process,
    addr: SocketAddr,
    client: reqwest::Client,
}

impl Instance {
    async fn start(addr: SocketAddr, redis: &RedisServer) -> Instance {
        let child = Process::spawn(
            app_command(env!("CARGO_PKG_NAME"))
                .env("RUST_LOG", "warn")
                .env("HOST", addr.ip().to_string())
                .env("PORT", addr.port().to_string())
                .env("REDIS_URL", redis.url())
                .env("REDIS_SECRET", SECRET)
                .env("REDIS_PREFIX", prefix(redis))
                .env("PRESENCE_EXPIRY_SECS", EXPIRY.as_secs().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        );
        let instance = Instance {
            child,
            addr,
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let health = instance.client.get(instance.url("/healthz")).send().await;
            if let Ok(health) = health {
                let health: serde_json::Value = health.json().await.unwrap();
                if health["redis"] == "connected" {
                    return instance;
                }
            }
            assert!(Instant::now() < deadline, "the app at {addr} did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `count` home-page tabs, each past its first events.
    async fn tabs(&self, count: usize) -> Vec<SseClient> {
        join_all((0..count).map(|_| async {
            let mut tab = open_tab(&self.client, &self.url("/sse/home")).await;
            tab.read_initial_events().await;
            tab
        }))
        .await
    }

    /// `kill -9`: no shutdown, nothing withdrawn.
    fn kill(mut self) {
        self.child.kill_all();
        self.child.wait().unwrap();
    }
}

fn prefix(redis: &RedisServer) -> String {
    format!("scale-out-test-{}", redis.port)
}

/// Waits until every one of `tabs` shows `count`; returns how long that took.
async fn all_show(tabs: &mut [SseClient], count: u64, patience: Duration) -> Duration {
    let started = Instant::now();
    join_all(
        tabs.iter_mut()
            .map(|tab| tab.until_presence(HERE, count, patience)),
    )
    .await;
    started.elapsed()
}

#[tokio::test]
async fn a_killed_instance_drops_out_within_the_expiry_and_its_restart_counts_no_tab_twice() {
    // Arrange: three tabs on a, two on b.
    let redis = RedisServer::start().await;
    let b_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let a = Instance::start(SocketAddr::from(([127, 0, 0, 1], free_port())), &redis).await;
    let b = Instance::start(b_addr, &redis).await;
    let mut on_a = a.tabs(3).await;
    let on_b = b.tabs(2).await;
    all_show(&mut on_a, 5, PATIENCE).await;
    let listing = format!("{}:presence:{HERE}", prefix(&redis));

    // Act 1: b is killed, and started again in its place at once; its two tabs reconnect,
    // while the share the old b left is still alive in Redis.
    b.kill();
    drop(on_b);
    let b = Instance::start(b_addr, &redis).await;
    let mut on_b = b.tabs(2).await;

    // Assert 1: once the new b has written its count of 2, every tab shows 5, not 7: the new
    // b wrote over the old b's share, so Redis lists two instances, not three.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let listed: Vec<String> = redis.command(&["SMEMBERS", &listing]).await;
        let b_name = listed
            .iter()
            .find(|name| name.ends_with(&format!("/{b_addr}")));
        let key = format!("{listing}:{}", b_name.expect("b is listed"));
        let value: Option<String> = redis.command(&["GET", &key]).await;
        if value.is_some_and(|value| value.starts_with("2 ")) {
            break;
        }
        assert!(Instant::now() < deadline, "the new b never wrote its count");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    all_show(&mut on_b, 5, PATIENCE).await;
    all_show(&mut on_a, 5, PATIENCE).await;
    let listed: Vec<String> = redis.command(&["SMEMBERS", &listing]).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    for tab in &mut on_a {
        let read = tab.events_read();
        assert!(tab.try_next_event(Duration::from_secs(1)).await.is_none());
        assert_eq!(tab.events_read(), read, "a's tabs stay on 5");
    }

    // Act 2: b is killed, and nothing takes its place.
    b.kill();
    let killed = Instant::now();
    drop(on_b);

    // Assert 2: a's tabs drop b's share once it expires.
    all_show(&mut on_a, 3, EXPIRY + PATIENCE).await;
    let dropped = killed.elapsed();
    println!(
        "presence: after kill -9 of one instance, the other's tabs showed the right count \
         {dropped:?} later (PRESENCE_EXPIRY_SECS={})",
        EXPIRY.as_secs()
    );
    let listed: Vec<String> = redis.command(&["SMEMBERS", &listing]).await;
    assert_eq!(
        listed.len(),
        1,
        "the dead instance is off the list: {listed:?}"
    );
    let page = a.client.get(a.url("/")).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("4 people here"), "three tabs and this page");
}
