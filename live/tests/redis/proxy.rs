//! A TCP proxy between an app instance and Redis that can misbehave on demand: hold what Redis
//! sends a subscription, cut connections, delay or cut a command in flight, refuse commands.
//! It injects the faults a network and a busy Redis cause, deterministically.
//!
//! In front of a Redis that speaks TLS it speaks TLS to both sides (a certificate from the
//! tests' CA toward the app, the CA trusted toward Redis), so that it still sees the commands
//! it misbehaves on, and the app's side goes through the same TLS as with Redis itself.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use live::testing::RedisServer;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf},
    net::{TcpListener, TcpStream},
    sync::Notify,
    task::JoinHandle,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};
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

/// Either side of a proxied connection: plain TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Stream = Box<dyn Io>;

/// TLS toward the app and toward Redis.
struct Tls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

struct Shared {
    upstream: SocketAddr,
    tls: Option<Tls>,
    rules: Mutex<Rules>,
    released: Notify,
    connections: Mutex<Vec<Arc<Connection>>>,
}

/// The proxy: listens on a free port and forwards to `upstream`.
pub struct Proxy {
    url: String,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy in front of `redis`, over TLS if it speaks TLS.
    pub async fn start(redis: &RedisServer) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls = redis.ca().is_some().then(|| {
            let ca = RedisServer::test_ca();
            let certificate = ca.issue();
            let key = PrivateKeyDer::from_pem_slice(certificate.key_pem.as_bytes()).unwrap();
            let chain: Vec<CertificateDer<'static>> = vec![certificate.der.clone()];
            let config = rustls::ServerConfig::builder_with_provider(live::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
            Tls {
                acceptor: TlsAcceptor::from(Arc::new(config)),
                connector: ca.connector(&[]),
            }
        });
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from(([127, 0, 0, 1], redis.port)),
            tls,
            rules: Mutex::default(),
            released: Notify::new(),
            connections: Mutex::default(),
        });
        let accept = tokio::spawn(accept(listener, Arc::clone(&shared)));
        Proxy {
            url: redis.url_via(port),
            shared,
            accept,
        }
    }

    /// The URL to give the app instead of Redis's.
    pub fn url(&self) -> String {
        self.url.clone()
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
        tokio::spawn(proxy(client, Arc::clone(&shared)));
    }
}

/// Connects `client` to Redis, over TLS on both sides if the proxy speaks it.
async fn connect(client: TcpStream, shared: &Shared) -> Option<(Stream, Stream)> {
    // Redis down: the client sees the connection close.
    let server = TcpStream::connect(shared.upstream).await.ok()?;
    Some(match &shared.tls {
        None => (Box::new(client), Box::new(server)),
        Some(tls) => {
            let client = tls.acceptor.accept(client).await.ok()?;
            let name = ServerName::from(std::net::IpAddr::from([127, 0, 0, 1]));
            let server = tls.connector.connect(name, server).await.ok()?;
            (Box::new(client), Box::new(server))
        }
    })
}

async fn proxy(client: TcpStream, shared: Arc<Shared>) {
    let Some((client, server)) = connect(client, &shared).await else {
        return;
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
    let (client_read, client_write) = tokio::io::split(client);
    let (server_read, server_write) = tokio::io::split(server);
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
    cut.cancelled().await;
    upstream.abort();
    downstream.abort();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

async fn to_redis(
    mut from: ReadHalf<Stream>,
    mut to: WriteHalf<Stream>,
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
    mut from: ReadHalf<Stream>,
    mut to: WriteHalf<Stream>,
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
