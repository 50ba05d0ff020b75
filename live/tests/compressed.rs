//! Compressed streams on the wire, served for real: a client that accepts gzip gets its stream
//! gzipped — decoded as it arrives to exactly the events a plain stream carries, its trailer
//! written when the server ends it — over HTTP/1.1 and HTTP/2 and through `curl --compressed`;
//! a client that does not, or an app with `STREAM_COMPRESSION=off`, gets plain text.

mod support;

use std::{io::Write, time::Duration};

use flate2::write::GzDecoder;
use live::testing::stream_get;
use tokio::time::timeout;
use uuid::Uuid;

use support::{TestApp, spawn_app, spawn_app_with};

const PATIENCE: Duration = Duration::from_secs(10);

/// `GET /sse/notes` for a new tab, accepting gzip as browsers do, or not at all.
async fn open(app: &TestApp, accept_encoding: Option<&str>) -> reqwest::Response {
    let signals = serde_json::json!({ "sessionId": Uuid::new_v4() }).to_string();
    let mut request = stream_get(app.client(), &app.url("/sse/notes"), Some(&signals));
    if let Some(accept) = accept_encoding {
        request = request.header("accept-encoding", accept);
    }
    let response = request.send().await.expect("the stream answers");
    assert_eq!(response.status(), 200);
    response
}

/// A stream's body as its client reads it: raw, or gunzipped as it arrives.
struct Reader {
    response: reqwest::Response,
    gzip: Option<GzDecoder<Vec<u8>>>,
    plain: Vec<u8>,
    /// Bytes on the wire.
    wire: usize,
}

impl Reader {
    fn new(response: reqwest::Response) -> Self {
        let gzipped = response
            .headers()
            .get("content-encoding")
            .is_some_and(|encoding| encoding == "gzip");
        Reader {
            response,
            gzip: gzipped.then(|| GzDecoder::new(Vec::new())),
            plain: Vec::new(),
            wire: 0,
        }
    }

    fn text(&self) -> String {
        let decoded = match &self.gzip {
            Some(gzip) => gzip.get_ref(),
            None => &self.plain,
        };
        String::from_utf8(decoded.clone()).expect("UTF-8 events")
    }

    /// Reads until what it decoded contains `wanted`: each chunk must decode at once (a
    /// browser shows an event as soon as it arrives, not when the stream ends).
    async fn until(&mut self, wanted: &str) -> String {
        timeout(PATIENCE, async {
            while !self.text().contains(wanted) {
                let chunk = self.response.chunk().await.expect("the stream reads");
                let chunk = chunk.unwrap_or_else(|| panic!("the stream ended before {wanted:?}"));
                self.take(&chunk);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {wanted:?} in {:?}", self.text()));
        self.text()
    }

    fn take(&mut self, chunk: &[u8]) {
        self.wire += chunk.len();
        match &mut self.gzip {
            Some(gzip) => {
                gzip.write_all(chunk).expect("a valid gzip stream");
                gzip.flush().expect("a valid gzip stream");
            }
            None => self.plain.extend_from_slice(chunk),
        }
    }

    /// Reads to the end of the stream; a gzipped one must end its gzip member, with a CRC-32
    /// and length that match what it decoded to.
    async fn read_to_end(mut self) -> String {
        timeout(PATIENCE, async {
            while let Some(chunk) = self.response.chunk().await.expect("the stream reads") {
                self.take(&chunk);
            }
        })
        .await
        .expect("the stream ends");
        match self.gzip {
            Some(gzip) => {
                let decoded = gzip.finish().expect("a whole gzip member: trailer and all");
                String::from_utf8(decoded).unwrap()
            }
            None => String::from_utf8(self.plain).unwrap(),
        }
    }
}

/// Two tabs, one gzipped: both read what they are sent, until the server ends them.
async fn gzipped_and_plain_tabs_read_the_same_events(mut app: TestApp) {
    let mut gzipped = Reader::new(open(&app, Some("gzip, deflate, br, zstd")).await);
    let mut plain = Reader::new(open(&app, None).await);
    let headers = gzipped.response.headers();
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["vary"], "accept-encoding");
    assert_eq!(headers["content-type"], "text/event-stream");
    assert!(plain.response.headers().get("content-encoding").is_none());

    for reader in [&mut gzipped, &mut plain] {
        reader.until("\"connected\":true").await;
    }
    for note in ["first", "second", "<b>third & more"] {
        assert_eq!(app.publish_with_datastar(note).await.status(), 200);
        let escaped = note
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        for reader in [&mut gzipped, &mut plain] {
            reader.until(&escaped).await;
        }
    }
    app.shut_down().await.expect("the server shuts down");
    let (gzipped_wire, plain_wire) = (gzipped.wire, plain.wire);
    let (gzipped, plain) = (gzipped.read_to_end().await, plain.read_to_end().await);
    // Keep-alives aside (a comment on a plain stream, an empty block on a gzipped one), the
    // two carried the same events, the last of them the restart event.
    let events = |text: &str| text.replace(": keep-alive\n\n", "");
    assert_eq!(events(&gzipped), events(&plain));
    assert!(
        gzipped.contains("reconnect") || gzipped.contains("restart"),
        "{gzipped}"
    );
    assert!(
        gzipped_wire < plain_wire,
        "gzipped {gzipped_wire} bytes, plain {plain_wire}"
    );
}

#[tokio::test]
async fn a_stream_is_gzipped_for_a_client_that_accepts_it_over_http1() {
    gzipped_and_plain_tabs_read_the_same_events(spawn_app().await).await;
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn a_stream_is_gzipped_for_a_client_that_accepts_it_over_http2() {
    let app = support::spawn_https_app_with(|_| {}).await;
    let response = open(&app, Some("gzip")).await;
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    drop(response);
    gzipped_and_plain_tabs_read_the_same_events(app).await;
}

#[tokio::test]
async fn a_client_that_refuses_gzip_or_an_app_that_turns_it_off_gets_plain_text() {
    let app = spawn_app().await;
    for refuses in ["identity", "gzip;q=0", "br, zstd"] {
        let response = open(&app, Some(refuses)).await;
        assert!(
            response.headers().get("content-encoding").is_none(),
            "{refuses}"
        );
        Reader::new(response).until("\"connected\":true").await;
    }
    let off = spawn_app_with(|settings| settings.compress_streams = false).await;
    let response = open(&off, Some("gzip")).await;
    assert!(response.headers().get("content-encoding").is_none());
    Reader::new(response).until("\"connected\":true").await;
}

/// `curl --compressed`, as someone debugging a stream by hand runs it: it shows the events as
/// they come, and ends cleanly (its exit status checks the gzip trailer) when the server ends
/// the stream.
#[tokio::test]
async fn curl_compressed_shows_the_events_and_ends_cleanly() {
    let mut app = spawn_app().await;
    let signals = format!("{{\"sessionId\":\"{}\"}}", Uuid::new_v4());
    let url = format!(
        "{}?datastar={}",
        app.url("/sse/notes"),
        form_urlencoded::byte_serialize(signals.as_bytes()).collect::<String>()
    );
    let curl = std::process::Command::new("curl")
        .args(["--compressed", "--silent", "--show-error", "--no-buffer"])
        .args([
            "--max-time",
            "20",
            "-H",
            "datastar-request: true",
            "-D",
            "-",
            &url,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl runs");
    let curl = tokio::task::spawn_blocking(move || curl.wait_with_output());
    app.wait_for_streams("page/notes/*", 1).await;
    assert_eq!(app.publish_with_datastar("by curl").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.shut_down().await.expect("the server shuts down");
    let output = timeout(PATIENCE, curl)
        .await
        .expect("curl ends with the stream")
        .unwrap()
        .expect("curl ran");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "curl: {:?}\n{text}", output.status);
    assert!(
        text.to_ascii_lowercase().contains("content-encoding: gzip"),
        "{text}"
    );
    assert!(text.contains("by curl"), "{text}");
}
