//! A `redis-server` of the test's own, for the scale-out tests (feature `redis`).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::waits::PATIENCE;

/// A `redis-server` of the test's own (Debian package `redis-server`; `REDIS_SERVER`
/// names another binary), without persistence, killed when dropped. Plain, or — with
/// feature `tls` — the way managed Redis is: TLS only, and a password
/// ([`RedisServer::start_tls`]).
#[derive(Debug)]
pub struct RedisServer {
    /// The port it listens on, on 127.0.0.1 (its TLS port, over TLS).
    pub port: u16,
    child: Option<super::process::Process>,
    tls: Option<TlsFiles>,
}

/// What a TLS server reads, and what its clients trust.
#[derive(Debug)]
struct TlsFiles {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// The test CA that signed `cert` (for `REDIS_CA`).
    ca: PathBuf,
}

/// The password of a TLS server (`requirepass`), in its URL.
const PASSWORD: &str = "the-test-redis-password";

impl RedisServer {
    /// Starts one on a free port and waits until it answers.
    pub async fn start() -> RedisServer {
        let mut server = RedisServer {
            port: port_outside_the_ephemeral_range(),
            child: None,
            tls: None,
        };
        server.restart().await;
        server
    }

    /// Starts one that speaks only TLS (`--port 0`, `--tls-port`) and wants a password,
    /// with a certificate for `127.0.0.1` from [`RedisServer::test_ca`].
    #[cfg(feature = "tls")]
    pub async fn start_tls() -> RedisServer {
        let port = port_outside_the_ephemeral_range();
        let dir = std::env::temp_dir().join(format!(
            "redis-tls-{}-{port}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("a folder for Redis's certificate");
        let (cert, key) = Self::test_ca().issue().write(&dir);
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, Self::test_ca().pem()).expect("write ca.pem");
        let mut server = RedisServer {
            port,
            child: None,
            tls: Some(TlsFiles { dir, cert, key, ca }),
        };
        server.restart().await;
        server
    }

    /// The CA every TLS server of this test process gets its certificate from: what a
    /// proxy in between needs to speak TLS to both sides.
    #[cfg(feature = "tls")]
    pub fn test_ca() -> &'static super::https::TestCa {
        static CA: std::sync::OnceLock<super::https::TestCa> = std::sync::OnceLock::new();
        CA.get_or_init(super::https::TestCa::new)
    }

    /// Its URL, for `REDIS_URL`: `rediss://` with the password when it speaks TLS.
    pub fn url(&self) -> String {
        self.url_via(self.port)
    }

    /// The URL of this server reached through another port of 127.0.0.1 (a proxy's).
    pub fn url_via(&self, port: u16) -> String {
        match self.tls {
            Some(_) => format!("rediss://default:{PASSWORD}@127.0.0.1:{port}"),
            None => format!("redis://127.0.0.1:{port}"),
        }
    }

    /// The PEM file of the CA its certificate is from (for `REDIS_CA`); `None` if plain.
    pub fn ca(&self) -> Option<&Path> {
        self.tls.as_ref().map(|tls| tls.ca.as_path())
    }

    /// A client of the test's own, over TLS if the server speaks it.
    pub fn client(&self) -> redis::Client {
        crate::redis::rediss::client(&self.url(), self.ca()).expect("a Redis client")
    }

    /// Starts (again) on the same port and waits until it answers.
    pub async fn restart(&mut self) {
        let binary = std::env::var("REDIS_SERVER").unwrap_or("redis-server".into());
        let port = self.port.to_string();
        let mut command = Command::new(&binary);
        command.args(["--bind", "127.0.0.1"]);
        match &self.tls {
            None => command.args(["--port", &port]),
            Some(tls) => command
                .args(["--port", "0", "--tls-port", &port])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .args(["--tls-auth-clients", "no", "--requirepass", PASSWORD]),
        };
        command
            .args(["--save", "", "--appendonly", "no"])
            // Fault tests make Redis sleep (`DEBUG SLEEP`).
            .args(["--enable-debug-command", "yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = super::process::Process::try_spawn(&mut command).unwrap_or_else(|error| {
            panic!("cannot start {binary}: {error} (apt-get install redis-server)")
        });
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while !self.answers().await {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("redis-server exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn answers(&self) -> bool {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)));
        let Ok(mut connection) = self
            .client()
            .get_multiplexed_async_connection_with_config(&config)
            .await
        else {
            return false;
        };
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .is_ok()
    }

    /// Runs one command on a connection of the test's own.
    pub async fn command<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut connection = self
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query_async(&mut connection).await.unwrap()
    }

    /// Kills it without warning (`kill -9`); it comes back empty on `restart`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill_all();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(tls) = &self.tls {
            let _ = std::fs::remove_dir_all(&tls.dir);
        }
    }
}

/// A free port below the kernel's ephemeral range (32768 and up). While Redis is down the
/// apps keep trying to connect to its port; were it an ephemeral port, one of those attempts
/// could be given that same port as its source and connect to itself, holding the port.
fn port_outside_the_ephemeral_range() -> u16 {
    // Spread the tests of this and other test processes apart.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let start = 20_000 + ((std::process::id() * 7 + call * 101) % 12_000) as u16;
    (start..32_000)
        .chain(20_000..start)
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port")
}
