//! Gzip for event streams at encode-once cost: each event is compressed once for every stream
//! it reaches, and no stream keeps a compressor.
//!
//! A compressor per stream (what a proxy's `encode gzip` does) costs each stream a few hundred
//! KiB of state and each event a compression per stream: it would undo the encode-once fan-out
//! the registry is built on. What makes sharing possible:
//!
//! - A raw deflate block ended by a sync flush stops on a byte boundary and is never the last,
//!   so such blocks, compressed separately, concatenate into one valid deflate stream.
//! - An inflater resolves a back-reference against *its own* output. A block compressed with
//!   the frame `P` as its preset dictionary refers back only into `P`'s bytes, so it decodes
//!   right on every stream whose output so far *ends with* `P`: most streams of a page, which
//!   got the same previous event. That block is computed once and shared by all of them.
//! - A stream whose last frame was another one (it skipped a version, joined late, or got an
//!   event of its own) gets a block compressed with that frame as dictionary, also cached on
//!   the frame, for a few distinct predecessors; past those, the self-contained block (no
//!   dictionary), computed once too. Every choice decodes right; they differ only in size.
//! - The gzip trailer's CRC-32 is combined per stream from each frame's own CRC, computed once,
//!   so a stream never hashes the bytes again either.
//!
//! A stream keeps only its last frame (a shared pointer) and its running CRC: under 40 bytes.

use std::{
    cell::RefCell,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};

/// The compression level of every block: zlib's default, where more effort buys little on
/// markup and costs the first stream to need a block its time.
const LEVEL: u32 = 6;

/// How many distinct predecessors a frame keeps a block for. Nearly every stream shares one
/// (the previous event of its page); a few more cover streams that skipped a version. Past
/// them the self-contained block serves, so no mix of histories grows a frame's memory.
const PREDECESSORS: usize = 4;

/// Deflate's window: a back-reference reaches this far at most, and zlib keeps only this much
/// of a preset dictionary.
const WINDOW: usize = 32 * 1024;

/// A gzip member's header: magic, deflate, no flags, no time, no extra flags, unknown system.
pub(crate) const HEADER: &[u8] = &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// An empty stored block that is not the last: on the wire (a keep-alive that proxies and
/// the client's socket see), while it decodes to nothing and leaves the history alone.
pub(crate) const EMPTY_BLOCK: &[u8] = &[0x00, 0x00, 0x00, 0xff, 0xff];

/// An empty last block (fixed codes: `BFINAL=1`, `BTYPE=01`, the end-of-block code), which a
/// stream's trailer starts with.
const LAST_BLOCK: &[u8] = &[0x03, 0x00];

/// Where the ids of compressed frames come from. Not the frame's address: a freed frame's
/// address is reused, and a block made for the old frame would then be taken for the new one.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A frame's compressed forms: each made by the first stream that needs it, then shared.
pub(crate) struct Forms {
    id: u64,
    crc: u32,
    alone: OnceLock<Bytes>,
    after: [After; PREDECESSORS],
}

/// The block of a frame for streams whose last frame was the frame `previous` (0: unclaimed).
/// Once claimed it never changes, so a block cannot reach a stream with another history.
struct After {
    previous: AtomicU64,
    block: OnceLock<Bytes>,
}

impl Forms {
    /// The forms of `plain` (one frame's bytes), none made yet but its CRC.
    pub(crate) fn new(plain: &[u8]) -> Forms {
        Forms {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            crc: crc32fast::hash(plain),
            alone: OnceLock::new(),
            after: std::array::from_fn(|_| After {
                previous: AtomicU64::new(0),
                block: OnceLock::new(),
            }),
        }
    }

    /// The deflate block of `plain` (this frame's bytes) for a stream whose output ends with
    /// `previous` (its forms and bytes); `None`: a stream with no history to build on.
    ///
    /// Looking a block up takes no lock; only streams that need the very block being made
    /// wait for it (they would otherwise make it too).
    fn block(&self, plain: &[u8], previous: Option<(&Forms, &[u8])>) -> Bytes {
        let Some((forms, bytes)) = previous.filter(|(_, bytes)| !bytes.is_empty()) else {
            return self.alone(plain);
        };
        for after in &self.after {
            // A load first: ten thousand streams looking up a claimed slot only read its cache
            // line, where a compare-and-swap would take it from the other cores each time.
            let mut owner = after.previous.load(Ordering::Acquire);
            if owner == 0 {
                owner = match after.previous.compare_exchange(
                    0,
                    forms.id,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => forms.id,
                    Err(owner) => owner,
                };
            }
            if owner == forms.id {
                return after.block.get_or_init(|| deflate(bytes, plain)).clone();
            }
        }
        self.alone(plain)
    }

    fn alone(&self, plain: &[u8]) -> Bytes {
        self.alone.get_or_init(|| deflate(&[], plain)).clone()
    }
}

/// Compresses `input` as raw deflate primed with (the end of) `dictionary`, ending with a sync
/// flush.
///
/// A deflate state is a few hundred KiB, and making one costs more than compressing an event,
/// so each thread keeps one and resets it for each block.
fn deflate(dictionary: &[u8], input: &[u8]) -> Bytes {
    thread_local! {
        static DEFLATE: RefCell<Compress> =
            RefCell::new(Compress::new(Compression::new(LEVEL), false));
    }
    DEFLATE.with(|deflate| {
        let mut deflate = deflate.borrow_mut();
        deflate.reset();
        if !dictionary.is_empty() {
            let end = &dictionary[dictionary.len().saturating_sub(WINDOW)..];
            deflate
                .set_dictionary(end)
                .expect("raw deflate takes a dictionary right after a reset");
        }
        // Deflate's worst case (stored blocks) and the flush's marker, so one call does.
        let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 64);
        loop {
            let taken = deflate.total_in() as usize;
            let status = deflate
                .compress_vec(&input[taken..], &mut out, FlushCompress::Sync)
                .expect("deflate does not fail on memory it was given");
            // Done when all input is taken and the flush finished with room to spare: a full
            // buffer may hide output still pending.
            let all_in = deflate.total_in() as usize == input.len();
            if all_in && (out.len() < out.capacity() || status == Status::BufError) {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        Bytes::from(out)
    })
}

/// What a stream compresses: a frame (the kit's `Frame`), its bytes and its forms.
pub(crate) trait Compressible: Clone {
    /// The frame's bytes.
    fn plain(&self) -> &[u8];
    /// Its compressed forms (made on first use, then shared).
    fn forms(&self) -> &Forms;
    /// Whether it is a keep-alive, which goes on the wire as an empty block instead.
    fn is_keep_alive(&self) -> bool;
}

/// One stream's gzip: its last frame, to choose the block that builds on it, and the sums of
/// its trailer. No compressor: the blocks are the frames' own, shared.
#[derive(Debug)]
pub(crate) struct Encoder<F> {
    last: Option<F>,
    sums: crc32fast::Hasher,
}

impl<F: Compressible> Encoder<F> {
    /// A stream that has sent nothing: the gzip header comes first ([`HEADER`]).
    pub(crate) fn new() -> Self {
        Encoder {
            last: None,
            sums: crc32fast::Hasher::new(),
        }
    }

    /// The bytes that carry `frame` on this stream: a lookup in the frame's forms and a CRC
    /// combined, the frame's bytes neither compressed nor read here (but by the first stream
    /// that needs a block, once for all). A keep-alive is an empty block, which reaches the
    /// wire but leaves the stream's history (and so the choice of the next block) alone.
    pub(crate) fn write(&mut self, frame: &F) -> Bytes {
        if frame.is_keep_alive() {
            return Bytes::from_static(EMPTY_BLOCK);
        }
        let previous = self.last.as_ref().map(|last| (last.forms(), last.plain()));
        let block = frame.forms().block(frame.plain(), previous);
        let (crc, len) = (frame.forms().crc, frame.plain().len() as u64);
        self.sums
            .combine(&crc32fast::Hasher::new_with_initial_len(crc, len));
        self.last = Some(frame.clone());
        block
    }

    /// The end of the gzip member, when the server ends the stream: an empty last block, the
    /// CRC-32 and the length (mod 2³²) of all it decoded to.
    pub(crate) fn finish(self) -> Bytes {
        let len = self.sums.total_len() as u32;
        let mut out = Vec::with_capacity(LAST_BLOCK.len() + 8);
        out.extend_from_slice(LAST_BLOCK);
        out.extend_from_slice(&self.sums.finalize().to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        Bytes::from(out)
    }
}

/// Whether a request's `Accept-Encoding` takes gzip: `gzip` (or `x-gzip`, or `*`) with a
/// nonzero weight, and gzip not refused by name.
pub(crate) fn accepted(headers: &axum::http::HeaderMap) -> bool {
    let mut named = None;
    let mut any = false;
    for value in headers.get_all(axum::http::header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let weight = parts
                .filter_map(|param| param.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                named = Some(named.unwrap_or(false) || weight > 0.0);
            } else if coding == "*" {
                any = weight > 0.0;
            }
        }
    }
    named.unwrap_or(any)
}

#[cfg(test)]
pub(crate) mod tests;
