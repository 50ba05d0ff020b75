//! A TCP proxy between an app instance and Redis that can misbehave on demand: hold what Redis
//! sends a subscription, cut connections, delay or cut a command in flight, refuse commands.
//! It injects the faults a network and a busy Redis cause, deterministically.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
    sync::Notify,
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

/// Redis commands that only a command connection sends (a subscription sends `SUBSCRIBE` and
/// `PING`).
const COMMANDS: [&[u8]; 7] = [
    b"EVALSHA",
    b"EVAL",
    b"HGET",
    b"SMEMBERS",
    b"PUBLISH",
    b"SCRIPT",
    b"\r\nGET\r\n",
];

/// What to do with a command in flight that contains a given needle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Send it on after the delay (Redis runs it late).
    Forward,
    /// Cut the connection after the delay, without sending it.
    Cut,
}

#[derive(Default)]
struct Rules {
    /// Stop passing on what Redis sends to subscriptions.
    hold_subscriptions: bool,
    /// Cut any command connection that sends a command.
    refuse_commands: bool,
    /// Delay the first command containing the needle, then forward it or cut.
    delay: Option<(Vec<u8>, Duration, Then)>,
}

struct Connection {
    subscription: AtomicBool,
    cut: CancellationToken,
}

struct Shared {
    upstream: SocketAddr,
    rules: Mutex<Rules>,
    released: Notify,
    connections: Mutex<Vec<Arc<Connection>>>,
}

/// The proxy: listens on a free port and forwards to `upstream`.
pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            rules: Mutex::default(),
            released: Notify::new(),
            connections: Mutex::default(),
        });
        let accept = tokio::spawn(accept(listener, Arc::clone(&shared)));
        Proxy {
            port,
            shared,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops passing on what Redis sends to subscriptions (messages pile up unseen).
    pub fn hold_subscriptions(&self) {
        self.shared.rules.lock().unwrap().hold_subscriptions = true;
    }

    /// Cuts every subscription connection (dropping whatever was held).
    pub fn cut_subscriptions(&self) {
        self.cut(|connection| connection.subscription.load(Ordering::Relaxed));
    }

    /// Passes everything on again.
    pub fn release(&self) {
        *self.shared.rules.lock().unwrap() = Rules::default();
        self.shared.released.notify_waiters();
    }

    /// Cuts every command connection, now and whenever one sends a command.
    pub fn refuse_commands(&self) {
        self.shared.rules.lock().unwrap().refuse_commands = true;
        self.cut(|connection| !connection.subscription.load(Ordering::Relaxed));
    }

    /// Delays the next command that contains `needle` by `delay`, then forwards it or cuts its
    /// connection.
    pub fn delay_command(&self, needle: &str, delay: Duration, then: Then) {
        self.shared.rules.lock().unwrap().delay = Some((needle.as_bytes().to_vec(), delay, then));
    }

    fn cut(&self, which: impl Fn(&Connection) -> bool) {
        let mut connections = self.shared.connections.lock().unwrap();
        connections.retain(|connection| !connection.cut.is_cancelled());
        for connection in connections.iter().filter(|c| which(c)) {
            connection.cut.cancel();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut(|_| true);
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let Ok(server) = TcpStream::connect(shared.upstream).await else {
            continue; // Redis is down: the client sees the connection close
        };
        let connection = Arc::new(Connection {
            subscription: AtomicBool::new(false),
            cut: CancellationToken::new(),
        });
        shared
            .connections
            .lock()
            .unwrap()
            .push(Arc::clone(&connection));
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let cut = connection.cut.clone();
        let upstream = tokio::spawn(to_redis(
            client_read,
            server_write,
            Arc::clone(&connection),
            Arc::clone(&shared),
        ));
        let downstream = tokio::spawn(to_client(
            server_read,
            client_write,
            Arc::clone(&connection),
            Arc::clone(&shared),
        ));
        tokio::spawn(async move {
            cut.cancelled().await;
            upstream.abort();
            downstream.abort();
        });
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

async fn to_redis(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    connection: Arc<Connection>,
    shared: Arc<Shared>,
) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let chunk = &buffer[..n];
        if contains(chunk, b"SUBSCRIBE") {
            connection.subscription.store(true, Ordering::Relaxed);
        }
        let is_command = !connection.subscription.load(Ordering::Relaxed)
            && COMMANDS.iter().any(|command| contains(chunk, command));
        let delay = {
            let mut rules = shared.rules.lock().unwrap();
            if is_command && rules.refuse_commands {
                connection.cut.cancel();
                return;
            }
            match &rules.delay {
                Some((needle, _, _)) if is_command && contains(chunk, needle) => rules.delay.take(),
                _ => None,
            }
        };
        if let Some((_, delay, then)) = delay {
            tokio::time::sleep(delay).await;
            if then == Then::Cut {
                connection.cut.cancel();
                return;
            }
        }
        if to.write_all(chunk).await.is_err() {
            connection.cut.cancel();
            return;
        }
    }
}

async fn to_client(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    connection: Arc<Connection>,
    shared: Arc<Shared>,
) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                connection.cut.cancel();
                return;
            }
            Ok(n) => n,
        };
        // Held: keep the chunk until released (or the connection is cut, dropping it).
        loop {
            let released = shared.released.notified();
            let held = connection.subscription.load(Ordering::Relaxed)
                && shared.rules.lock().unwrap().hold_subscriptions;
            if !held {
                break;
            }
            released.await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            connection.cut.cancel();
            return;
        }
    }
}
