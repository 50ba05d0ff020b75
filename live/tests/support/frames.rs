//! HTTP/2 as raw frames over TLS: for the tests that play a hostile client, which no well-behaved
//! client library will (floods of resets, settings and pings, endless header blocks, windows
//! that never open, pings never answered). Only what those tests need: writing frames, an HPACK
//! header block of literals, and reading frame headers.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::client::TlsStream;

use super::{TestApp, https};

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// `SETTINGS_INITIAL_WINDOW_SIZE`.
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;

/// The client connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One frame read: its type, flags, stream and payload.
#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// An HTTP/2 connection driven frame by frame.
pub struct RawH2 {
    pub tls: TlsStream<TcpStream>,
    authority: String,
}

impl RawH2 {
    /// Connects over TLS with ALPN `h2` and sends the preface with `settings`.
    pub async fn connect(app: &TestApp, settings: &[(u16, u32)]) -> RawH2 {
        let mut raw = RawH2::handshake(app).await;
        raw.tls.write_all(PREFACE).await.unwrap();
        raw.tls.flush().await.unwrap();
        let payload: Vec<u8> = settings
            .iter()
            .flat_map(|(id, value)| {
                let mut entry = id.to_be_bytes().to_vec();
                entry.extend_from_slice(&value.to_be_bytes());
                entry
            })
            .collect();
        raw.send(SETTINGS, 0, 0, &payload).await;
        raw
    }

    /// Connects over TLS with ALPN `h2`, and sends nothing more.
    pub async fn handshake(app: &TestApp) -> RawH2 {
        RawH2 {
            tls: https::connect_h2(app).await,
            authority: app.addr().to_string(),
        }
    }

    /// Writes one frame. Errors are ignored: a hostile client keeps writing until the server
    /// has had enough, and the tests look at what the server does.
    pub async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> bool {
        let mut frame = Vec::with_capacity(9 + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        frame.push(kind);
        frame.push(flags);
        frame.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        frame.extend_from_slice(payload);
        // rustls holds what is written until a flush.
        self.tls.write_all(&frame).await.is_ok() && self.tls.flush().await.is_ok()
    }

    /// A request's header block: `GET path` with `extra` headers, as HPACK literals.
    pub fn request_block(&self, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        for (name, value) in [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", self.authority.as_str()),
            (":path", path),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        {
            literal(&mut block, name, value);
        }
        block
    }

    /// Sends `GET path` on `stream`, whole, with `extra` headers.
    pub async fn get(&mut self, stream: u32, path: &str, extra: &[(&str, &str)]) -> bool {
        let block = self.request_block(path, extra);
        self.send(HEADERS, END_HEADERS | END_STREAM, stream, &block)
            .await
    }

    /// The next frame, if one comes within `patience`; `None` once the connection has ended.
    pub async fn read(&mut self, patience: Duration) -> Option<Frame> {
        let read = async {
            let mut head = [0u8; 9];
            self.tls.read_exact(&mut head).await.ok()?;
            let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0; length];
            self.tls.read_exact(&mut payload).await.ok()?;
            Some(Frame {
                kind: head[3],
                flags: head[4],
                stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
                payload,
            })
        };
        tokio::time::timeout(patience, read).await.ok().flatten()
    }

    /// Reads frames until one `wanted` accepts, the connection ends, or `patience` runs out.
    pub async fn read_until(
        &mut self,
        patience: Duration,
        wanted: impl Fn(&Frame) -> bool,
    ) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.read(left).await?;
            if wanted(&frame) {
                return Some(frame);
            }
        }
    }
}

/// Appends a "literal header field without indexing — new name" (RFC 7541, 6.2.2), no Huffman.
fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0x00);
    for text in [name, value] {
        integer(block, text.len(), 7, 0x00);
        block.extend_from_slice(text.as_bytes());
    }
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541, 5.1).
fn integer(block: &mut Vec<u8>, mut value: usize, n: u32, first: u8) {
    let max = (1usize << n) - 1;
    if value < max {
        block.push(first | value as u8);
        return;
    }
    block.push(first | max as u8);
    value -= max;
    while value >= 128 {
        block.push((value % 128 + 128) as u8);
        value /= 128;
    }
    block.push(value as u8);
}

/// A GOAWAY's error code.
pub fn goaway_code(frame: &Frame) -> u32 {
    u32::from_be_bytes(frame.payload[4..8].try_into().unwrap())
}
