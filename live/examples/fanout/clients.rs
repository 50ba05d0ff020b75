//! The load generator's side of the wire: the stream readers (one task per stream, counting
//! the events it reads into [`Shared`]) and the posters that send the updates they wait for.
//! Raw TCP, not an HTTP client library, so that the client's cost per stream stays small
//! beside the server's on the one machine they share.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Instant,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

/// Per-round delivery bookkeeping, shared by every client task.
pub struct Round {
    pub delivered: AtomicUsize,
    /// Nanoseconds since `Shared::epoch` at which the last client got this round.
    pub last: AtomicU64,
}

/// The kinds of steady rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `POST /notes`: a new version of the latest-state note.
    Latest,
    /// `POST /shouts`: an ordinary event, every one delivered.
    Ordinary,
    /// `POST /rows`: a region of 200 rows re-rendered with one changed (about 20 KB), as an
    /// ordinary event: a fat morph.
    Fat,
}

impl Kind {
    /// The action its posts go to.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Latest => "/notes",
            Kind::Ordinary => "/shouts",
            Kind::Fat => "/rows",
        }
    }

    /// What tells this kind's rounds apart in the text: `<run>r<round>`, `<run>o<round>` or
    /// `<run>f<round>`.
    pub fn letter(self) -> char {
        match self {
            Kind::Latest => 'r',
            Kind::Ordinary => 'o',
            Kind::Fat => 'f',
        }
    }
}

/// What every client of one run counts into, and the run reads as it measures: atomics, so that
/// ten thousand client tasks count without waiting on each other.
pub struct Shared {
    epoch: Instant,
    pub run: u64,
    pub live: AtomicUsize,
    pub last_live: AtomicU64,
    pub ended: AtomicUsize,
    /// Clients whose stream never went live: refused, closed, or never connected.
    pub refused: AtomicUsize,
    /// Why they were, counted by reason: so that a refusal says whose it was.
    pub why_refused: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
    latest_rounds: Vec<Round>,
    ordinary_rounds: Vec<Round>,
    fat_rounds: Vec<Round>,
    /// The highest note number each client has seen ("Note #N").
    pub newest: Vec<AtomicU64>,
    /// How many note events each client has been written.
    pub notes_seen: Vec<AtomicU64>,
    /// What marks each kind's rounds in an event: `<strong><run>r`, `<strong><run>o`, …
    markers: [(Kind, String); 3],
    /// Whether the clients ask for gzipped streams (`Accept-Encoding: gzip`), and gunzip them.
    pub gzip: bool,
    /// Bytes the clients have read off the wire, HTTP framing included.
    pub wire: AtomicU64,
}

impl Shared {
    /// What the `n` clients of one run count into, with room for `rounds` rounds of each kind.
    /// The run's number (the process id and N) marks its events apart from any other run's.
    pub fn new(n: usize, rounds: usize) -> Shared {
        Shared::with_gzip(n, rounds, false)
    }

    /// [`Shared::new`], for clients that ask for gzipped streams if `gzip`.
    pub fn with_gzip(n: usize, rounds: usize, gzip: bool) -> Shared {
        let run = std::process::id() as u64 * 1000 + n as u64;
        let round = || Round {
            delivered: AtomicUsize::new(0),
            last: AtomicU64::new(0),
        };
        Shared {
            epoch: Instant::now(),
            run,
            live: AtomicUsize::new(0),
            last_live: AtomicU64::new(0),
            ended: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            why_refused: Default::default(),
            latest_rounds: (0..rounds).map(|_| round()).collect(),
            ordinary_rounds: (0..rounds).map(|_| round()).collect(),
            fat_rounds: (0..rounds).map(|_| round()).collect(),
            newest: (0..n).map(|_| AtomicU64::new(0)).collect(),
            notes_seen: (0..n).map(|_| AtomicU64::new(0)).collect(),
            markers: [
                (Kind::Latest, format!("<strong>{run}r")),
                (Kind::Ordinary, format!("<strong>{run}o")),
                (Kind::Fat, format!("<strong>{run}f")),
            ],
            gzip,
            wire: AtomicU64::new(0),
        }
    }
    /// Counts a client turned away, and why.
    fn refuse(&self, why: String) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        *self.why_refused.lock().unwrap().entry(why).or_default() += 1;
    }

    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn rounds(&self, kind: Kind) -> &[Round] {
        match kind {
            Kind::Latest => &self.latest_rounds,
            Kind::Ordinary => &self.ordinary_rounds,
            Kind::Fat => &self.fat_rounds,
        }
    }

    /// Counts one complete event for client `index`.
    fn event(&self, index: usize, event: &str) {
        if let Some((_, rest)) = event.split_once("Note #")
            && let Some((number, _)) = rest.split_once(':')
            && let Ok(number) = number.parse::<u64>()
        {
            self.newest[index].fetch_max(number, Ordering::Relaxed);
            self.notes_seen[index].fetch_add(1, Ordering::Relaxed);
        }
        for (kind, marker) in &self.markers {
            let kind = *kind;
            if let Some((_, rest)) = event.split_once(marker.as_str())
                && let Some((round, _)) = rest.split_once('<')
                && let Ok(round) = round.parse::<usize>()
                && let Some(slot) = self.rounds(kind).get(round)
            {
                slot.delivered.fetch_add(1, Ordering::Relaxed);
                slot.last.fetch_max(self.now(), Ordering::Relaxed);
            }
        }
    }
}

/// One request over a fresh connection; returns the whole response (`Connection: close`).
pub async fn http(addr: SocketAddr, request_line: &str, body_and_headers: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let request =
        format!("{request_line}\r\nHost: {addr}\r\nConnection: close\r\n{body_and_headers}");
    let request = if body_and_headers.is_empty() {
        format!("{request}\r\n")
    } else {
        request
    };
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// Where the rounds' posts go: a fresh plain connection each, or one kept HTTPS connection (a
/// handshake per post would be counted in the server's CPU per round).
pub enum Poster {
    Plain(SocketAddr),
    #[cfg(feature = "tls")]
    Https(reqwest::Client, SocketAddr),
}

impl Poster {
    pub async fn publish(&self, kind: Kind, text: &str) {
        match self {
            Poster::Plain(addr) => publish(*addr, kind, text).await,
            #[cfg(feature = "tls")]
            Poster::Https(client, addr) => {
                let response = client
                    .post(format!("https://{addr}{}", kind.path()))
                    .header("datastar-request", "true")
                    .form(&[("text", text)])
                    .send()
                    .await
                    .expect("publishing over HTTPS");
                assert_eq!(response.status(), 200, "publishing over HTTPS");
            }
        }
    }
}

/// One post over a fresh plain connection, as a browser's action is; fails the run if refused.
pub async fn publish(addr: SocketAddr, kind: Kind, text: &str) {
    let body = format!("text={text}");
    let rest = format!(
        "datastar-request: true\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = http(addr, &format!("POST {} HTTP/1.1", kind.path()), &rest).await;
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "publishing failed: {response}"
    );
}

/// One SSE client: connects, counts itself live at the first event, then counts every complete
/// event as it arrives, until the server ends the stream.
pub async fn client(addr: SocketAddr, index: usize, shared: Arc<Shared>) {
    let stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(error) => return shared.refuse(format!("connect: {}", error.kind())),
    };
    let _ = stream.set_nodelay(true);
    read_http1_stream(stream, addr, index, shared).await;
}

/// Sends a stream's request over `stream` (HTTP/1.1, plain or TLS) and reads its events.
pub async fn read_http1_stream<S>(
    mut stream: S,
    addr: SocketAddr,
    index: usize,
    shared: Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = format!(
        "GET /sse/notes?datastar=%7B%22sessionId%22%3A%22{}%22%7D HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\ndatastar-request: true\r\n{}\r\n",
        uuid::Uuid::new_v4(),
        if shared.gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        }
    );
    if let Err(error) = stream.write_all(request.as_bytes()).await {
        return shared.refuse(format!("sending the request: {}", error.kind()));
    }
    if let Err(error) = stream.flush().await {
        return shared.refuse(format!("sending the request: {}", error.kind()));
    }
    let mut events = Events::default();
    let mut gunzip = shared.gzip.then(Gunzip::new);
    let mut buffer = vec![0u8; 8192];
    let mut ended = "closed".to_owned();
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) => break,
            Err(error) => {
                ended = error.kind().to_string();
                break;
            }
            Ok(n) => n,
        };
        shared.wire.fetch_add(n as u64, Ordering::Relaxed);
        if !events.live && events.pending.is_empty() {
            // The status line, for a refusal's reason.
            let head = String::from_utf8_lossy(&buffer[..n.min(64)]);
            ended = head.lines().next().unwrap_or_default().to_owned();
        }
        match &mut gunzip {
            Some(gunzip) => {
                let plain = gunzip.feed(&buffer[..n]);
                events.feed(&plain, index, &shared);
                if gunzip.ended {
                    break;
                }
            }
            None => {
                events.feed(&buffer[..n], index, &shared);
                if events.pending.contains("\r\n0\r\n\r\n") {
                    break; // the server ended the stream: the response's last chunk
                }
            }
        }
    }
    if !events.live {
        shared.refuse(format!("ended before the first event: {ended}"));
    }
    shared.ended.fetch_add(1, Ordering::Relaxed);
}

/// A gzipped response's body as a browser reads it: HTTP/1.1 chunks taken apart, the gzip
/// header skipped, and the deflate stream inflated as it arrives (each event decodes at once:
/// the server ends every one with a sync flush).
pub struct Gunzip {
    pending: Vec<u8>,
    state: Chunked,
    /// Bytes of the gzip header still to skip.
    header: usize,
    inflate: flate2::Decompress,
    /// The server ended the response (its last chunk).
    pub ended: bool,
}

enum Chunked {
    Head,
    Size,
    Data(usize),
    DataEnd,
}

impl Gunzip {
    pub fn new() -> Self {
        Gunzip {
            pending: Vec::new(),
            state: Chunked::Head,
            header: 10,
            inflate: flate2::Decompress::new(false),
            ended: false,
        }
    }

    /// Takes what arrived; returns what it decodes to. A response that is not gzipped (a
    /// refusal) comes back as it is, for its reason to be read.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let mut plain = Vec::new();
        loop {
            match self.state {
                Chunked::Head => {
                    let Some(end) = find(&self.pending, b"\r\n\r\n") else {
                        return plain;
                    };
                    let head = String::from_utf8_lossy(&self.pending[..end]).to_lowercase();
                    if !head.contains("content-encoding: gzip") {
                        self.header = usize::MAX; // not gzipped: passed on as it is
                    }
                    plain.extend_from_slice(&self.pending[..end + 4]);
                    self.pending.drain(..end + 4);
                    self.state = Chunked::Size;
                }
                Chunked::Size => {
                    let Some(end) = find(&self.pending, b"\r\n") else {
                        return plain;
                    };
                    let line = String::from_utf8_lossy(&self.pending[..end]).into_owned();
                    self.pending.drain(..end + 2);
                    let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
                    if size == 0 {
                        self.ended = true;
                        return plain;
                    }
                    self.state = Chunked::Data(size);
                }
                Chunked::Data(left) => {
                    if self.pending.is_empty() {
                        return plain;
                    }
                    let take = left.min(self.pending.len());
                    let data: Vec<u8> = self.pending.drain(..take).collect();
                    self.inflate_into(&data, &mut plain);
                    self.state = match left - take {
                        0 => Chunked::DataEnd,
                        left => Chunked::Data(left),
                    };
                }
                Chunked::DataEnd => {
                    if self.pending.len() < 2 {
                        return plain;
                    }
                    self.pending.drain(..2);
                    self.state = Chunked::Size;
                }
            }
        }
    }

    fn inflate_into(&mut self, mut data: &[u8], plain: &mut Vec<u8>) {
        if self.header == usize::MAX {
            plain.extend_from_slice(data);
            return;
        }
        let skip = self.header.min(data.len());
        self.header -= skip;
        data = &data[skip..];
        let start = self.inflate.total_in();
        while ((self.inflate.total_in() - start) as usize) < data.len() {
            let taken = (self.inflate.total_in() - start) as usize;
            plain.reserve(32 * 1024);
            let before = self.inflate.total_in();
            let status =
                self.inflate
                    .decompress_vec(&data[taken..], plain, flate2::FlushDecompress::Sync);
            // The stream's end (its trailer follows), or nothing more to take.
            if matches!(status, Ok(flate2::Status::StreamEnd) | Err(_))
                || self.inflate.total_in() == before && plain.len() < plain.capacity()
            {
                break;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// What one client has read and not yet counted.
#[derive(Default)]
pub struct Events {
    live: bool,
    pending: String,
}

impl Events {
    /// Counts the complete events in what has arrived (an event ends with a blank line); the
    /// rest waits for the next read. Chunk-size lines between events do not matter to what is
    /// looked for.
    pub fn feed(&mut self, bytes: &[u8], index: usize, shared: &Shared) {
        self.pending.push_str(&String::from_utf8_lossy(bytes));
        if !self.live && self.pending.contains("\"connected\":true") {
            self.live = true;
            shared.live.fetch_add(1, Ordering::Relaxed);
            shared.last_live.fetch_max(shared.now(), Ordering::Relaxed);
        }
        let mut start = 0;
        while let Some(end) = self.pending[start..].find("\n\n") {
            shared.event(index, &self.pending[start..start + end]);
            start += end + 2;
        }
        self.pending.drain(..start);
    }
}
