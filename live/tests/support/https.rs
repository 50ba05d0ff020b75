//! HTTPS for the kit's tests: a test authority and its certificate in a folder of the test's
//! own, and an HTTP/2 client (the h2 crate) that sets its own flow-control windows, to play a
//! tab that stops reading while its neighbours on the same connection keep going.

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;
use h2::{RecvStream, client::SendRequest};
use live::testing::https::{TestCa, TestCertificate};
use tokio::{net::TcpStream, task::JoinHandle};
use tokio_rustls::client::TlsStream;
use uuid::Uuid;

use super::{PATIENCE, TestApp};

/// A test authority, the certificate the server was given, and where its files are.
pub struct Https {
    pub ca: TestCa,
    pub certificate: TestCertificate,
    pub dir: PathBuf,
}

impl Https {
    pub fn new() -> Self {
        let ca = TestCa::new();
        let certificate = ca.issue();
        let dir = std::env::temp_dir().join(format!("live-https-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Https {
            ca,
            certificate,
            dir,
        }
    }
}

/// An HTTP/2 connection to the app.
pub struct H2Connection {
    pub send: SendRequest<Bytes>,
    authority: String,
    /// The connection's own task: how it ended (a GOAWAY and a clean close, or an error).
    pub task: JoinHandle<Result<(), h2::Error>>,
}

/// Connects to `app` over TLS with ALPN `h2`, which the server must choose.
pub async fn connect_h2(app: &TestApp) -> TlsStream<TcpStream> {
    let https = app.https.as_ref().expect("an HTTPS app");
    let tcp = TcpStream::connect(app.addr()).await.unwrap();
    let tls = https
        .ca
        .connector(&[b"h2"])
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .expect("the TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

impl H2Connection {
    /// Connects to `app` over TLS with ALPN `h2`, advertising `stream_window` for each stream
    /// and a large window for the connection (as browsers do: Chromium asks for 6 MiB and
    /// 15 MiB), so that one stream's window shuts without shutting the others'.
    pub async fn open(app: &TestApp, stream_window: u32) -> H2Connection {
        let tls = connect_h2(app).await;
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(stream_window)
            .initial_connection_window_size(16 * 1024 * 1024)
            .handshake(tls)
            .await
            .expect("the HTTP/2 handshake");
        H2Connection {
            send,
            authority: app.addr().to_string(),
            task: tokio::spawn(connection),
        }
    }

    /// Sends `GET path_and_query` with Datastar's header; returns the status and the body.
    pub async fn get(&mut self, path_and_query: &str) -> (u16, RecvStream) {
        let request =
            axum::http::Request::get(format!("https://{}{path_and_query}", self.authority))
                .header("datastar-request", "true")
                .body(())
                .unwrap();
        let send = self.send.clone().ready().await.expect("room for a stream");
        let (response, _) = { send }
            .send_request(request, true)
            .expect("the request is sent");
        let response = tokio::time::timeout(PATIENCE, response)
            .await
            .expect("an answer in time")
            .expect("an answer");
        let status = response.status().as_u16();
        (status, response.into_body())
    }

    /// Opens the notes stream as a new tab would.
    pub async fn open_tab(&mut self) -> H2Tab {
        let signals = serde_json::json!({ "sessionId": Uuid::new_v4(), "connected": false });
        let mut url = reqwest::Url::parse("https://app/sse/notes").unwrap();
        url.query_pairs_mut()
            .append_pair("datastar", &signals.to_string());
        let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        let (status, body) = self.get(&path).await;
        assert_eq!(status, 200, "the stream opens");
        H2Tab {
            body,
            text: String::new(),
        }
    }
}

/// A stream read over HTTP/2.
pub struct H2Tab {
    pub body: RecvStream,
    /// Everything read so far.
    pub text: String,
}

/// How an HTTP/2 stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// With its last frame (END_STREAM).
    Finished,
    /// Reset by the server, with this reason.
    Reset(h2::Reason),
    /// The connection failed.
    Failed(String),
}

impl H2Tab {
    /// Reads, giving the window back as a browser does, until the text contains `needle`.
    pub async fn read_until(&mut self, needle: &str) {
        let read = async {
            while !self.text.contains(needle) {
                match self.body.data().await {
                    Some(Ok(chunk)) => {
                        let _ = self.body.flow_control().release_capacity(chunk.len());
                        self.text.push_str(&String::from_utf8_lossy(&chunk));
                    }
                    other => panic!("the stream ended before {needle:?}: {other:?}"),
                }
            }
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} within {PATIENCE:?}: {}", self.text));
    }

    /// Reads what has arrived and what comes until the stream ends, within `patience`, giving
    /// back window only if `reading`; returns how it ended.
    pub async fn until_end(&mut self, reading: bool, patience: Duration) -> Ended {
        let read = async {
            loop {
                match self.body.data().await {
                    Some(Ok(chunk)) => {
                        if reading {
                            let _ = self.body.flow_control().release_capacity(chunk.len());
                        }
                        self.text.push_str(&String::from_utf8_lossy(&chunk));
                    }
                    None => return Ended::Finished,
                    Some(Err(error)) => {
                        return match error.reason() {
                            Some(reason) if error.is_reset() => Ended::Reset(reason),
                            _ => Ended::Failed(error.to_string()),
                        };
                    }
                }
            }
        };
        tokio::time::timeout(patience, read)
            .await
            .unwrap_or_else(|_| panic!("the stream did not end within {patience:?}"))
    }
}
