//! Every stream decodes byte-exact, whatever it was sent: property-style, over seeded random
//! histories, decoded by two inflaters of their own (zlib-rs's through `flate2`, and
//! `miniz_oxide`) and checked event by event as a browser reads them.

use std::{io::Read, sync::Arc};

use super::*;

/// A frame as the kit's is, for these tests: shared bytes and their forms.
#[derive(Clone)]
struct TestFrame(Arc<(Vec<u8>, Forms)>);

impl TestFrame {
    fn new(bytes: impl Into<Vec<u8>>) -> Self {
        let bytes = bytes.into();
        let forms = Forms::new(&bytes);
        TestFrame(Arc::new((bytes, forms)))
    }

    fn keep_alive() -> Self {
        TestFrame::new(KEEP_ALIVE)
    }
}

const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

impl Compressible for TestFrame {
    fn plain(&self) -> &[u8] {
        &self.0.0
    }

    fn forms(&self) -> &Forms {
        &self.0.1
    }

    fn is_keep_alive(&self) -> bool {
        self.0.0 == KEEP_ALIVE
    }
}

/// A small seeded generator (xorshift64*), so a failure names the seed that finds it again.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const NAMES: [&str; 6] = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken"];

/// A greeting, as the template's app sends one (about 265 bytes, most of them shared).
fn greet(n: usize) -> TestFrame {
    TestFrame::new(format!(
        "event: datastar-patch-elements\ndata: selector #greetings\ndata: mode prepend\n\
         data: elements <li id=\"greeting-{n}\" class=\"greeting\">Hello, {}! <time \
         datetime=\"2026-12-07T16:{:02}:00Z\">16:{:02}</time></li>\n\n",
        NAMES[n % NAMES.len()],
        n % 60,
        n % 60
    ))
}

/// A re-rendered list of `rows` rows, row `changed` different: a fat morph.
fn list(rows: usize, changed: usize, version: usize) -> TestFrame {
    let mut text =
        String::from("event: datastar-patch-elements\ndata: elements <ul id=\"rows\">\n");
    for row in 0..rows {
        let score = if row == changed { version * 7 } else { row * 3 };
        text.push_str(&format!(
            "data: elements <li id=\"row-{row}\"><span class=\"name\">Player {row}</span> \
             <span class=\"score\">{score}</span></li>\n"
        ));
    }
    text.push_str("data: elements </ul>\n\n");
    TestFrame::new(text)
}

/// What a stream was sent, and its bytes on the wire.
struct Sent {
    plain: Vec<u8>,
    wire: Vec<Vec<u8>>,
    encoder: Encoder<TestFrame>,
}

impl Sent {
    fn new() -> Self {
        Sent {
            plain: Vec::new(),
            wire: vec![HEADER.to_vec()],
            encoder: Encoder::new(),
        }
    }

    fn send(&mut self, frame: &TestFrame) {
        if !frame.is_keep_alive() {
            self.plain.extend_from_slice(frame.plain());
        }
        self.wire.push(frame_bytes(&mut self.encoder, frame));
    }

    /// The whole stream, ended by the server.
    fn finish(self) -> (Vec<u8>, Vec<Vec<u8>>) {
        let Sent {
            plain,
            mut wire,
            encoder,
        } = self;
        wire.push(encoder.finish().to_vec());
        (plain, wire)
    }
}

fn frame_bytes(encoder: &mut Encoder<TestFrame>, frame: &TestFrame) -> Vec<u8> {
    encoder.write(frame).to_vec()
}

/// Checks one stream's pieces on the wire (its header first, and its trailer last if the
/// server `ended` it) against the `plain` bytes it was sent: as they arrive (each piece decodes
/// at once to exactly what was sent so far, as a browser shows events while the stream is
/// open), and, ended, whole through `flate2`'s gzip reader (which checks the CRC-32 and length)
/// and through `miniz_oxide`. `context` names the stream in a failure. For the registry's
/// tests too.
pub(crate) fn assert_decodes(plain: &[u8], wire: &[Vec<u8>], ended: bool, context: &str) {
    // As it arrives: a raw inflater fed piece by piece.
    let mut inflate = flate2::Decompress::new(false);
    let mut decoded = Vec::with_capacity(plain.len() + 64);
    let last = wire.len() - 1;
    for (at, piece) in wire.iter().enumerate() {
        let piece: &[u8] = if at == 0 {
            assert_eq!(piece, HEADER, "{context}");
            &[]
        } else if ended && at == last {
            &piece[..LAST_BLOCK.len()]
        } else {
            piece
        };
        let before = inflate.total_in();
        while (inflate.total_in() - before) < piece.len() as u64 {
            let taken = (inflate.total_in() - before) as usize;
            decoded.reserve(64 * 1024);
            inflate
                .decompress_vec(&piece[taken..], &mut decoded, flate2::FlushDecompress::Sync)
                .unwrap_or_else(|error| panic!("{context}, piece {at}: {error}"));
        }
        assert!(
            plain.starts_with(&decoded),
            "{context}: piece {at} decoded to other bytes"
        );
    }
    assert!(
        decoded == plain,
        "{context}: decoded as it arrived to other bytes"
    );
    if !ended {
        return;
    }

    // Whole, as a gzip file.
    let whole: Vec<u8> = wire.concat();
    let mut gunzipped = Vec::new();
    flate2::read::GzDecoder::new(&whole[..])
        .read_to_end(&mut gunzipped)
        .unwrap_or_else(|error| panic!("{context}: {error}"));
    assert!(gunzipped == plain, "{context}: gunzipped to other bytes");

    // By another inflater: the deflate stream between the header and the CRC and length.
    let deflated = &whole[HEADER.len()..whole.len() - 8];
    let inflated = miniz_oxide::inflate::decompress_to_vec(deflated)
        .unwrap_or_else(|error| panic!("{context}: miniz_oxide: {error:?}"));
    assert!(
        inflated == plain,
        "{context}: miniz_oxide inflated to other bytes"
    );
}

/// [`assert_decodes`] for a stream the server ended, of seed `seed`.
fn check(plain: &[u8], wire: &[Vec<u8>], seed: u64) {
    assert_decodes(plain, wire, true, &format!("seed {seed}"));
}

/// Random histories: a page's events go out in one order to many streams, which join late,
/// skip versions (as latest-state topics do), get events of their own (a presence count, a
/// replaced tab's farewell), get keep-alives between any two, and are written from several
/// threads at once, racing to make the same blocks.
#[test]
fn every_stream_decodes_to_exactly_what_it_was_sent() {
    for seed in 1..=120u64 {
        let mut random = Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let events: Vec<TestFrame> = (0..random.below(30) + 5)
            .map(|n| match random.below(10) {
                0 => list(20 + random.below(200), random.below(20), n),
                1 => TestFrame::new(format!(
                    "event: datastar-patch-signals\ndata: signals {{\"here\":{n}}}\n\n"
                )),
                2 => TestFrame::new(&b"retry: 1000\n\n"[..]),
                _ => greet(n),
            })
            .collect();
        let keep_alive = TestFrame::keep_alive();
        // Each stream's history: which events, and what else, in order.
        let histories: Vec<Vec<TestFrame>> = (0..12)
            .map(|_| {
                let joins = random.below(events.len());
                let skips = [0, 0, 10, 50][random.below(4)];
                let mut history = Vec::new();
                for event in &events[joins..] {
                    if random.chance(10) {
                        history.push(keep_alive.clone());
                    }
                    if random.chance(5) {
                        history.push(greet(1000 + random.below(1000))); // its own
                    }
                    if !random.chance(skips) {
                        history.push(event.clone());
                    }
                }
                history
            })
            .collect();
        // Four threads, three streams each, in lockstep over the shared events as far as the
        // scheduler lets them: they race for the same blocks.
        let sent: Vec<(Vec<u8>, Vec<Vec<u8>>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = histories
                .chunks(3)
                .map(|chunk| {
                    scope.spawn(move || {
                        let mut streams: Vec<Sent> = chunk.iter().map(|_| Sent::new()).collect();
                        let longest = chunk.iter().map(Vec::len).max().unwrap_or(0);
                        for at in 0..longest {
                            for (stream, history) in streams.iter_mut().zip(chunk) {
                                if let Some(frame) = history.get(at) {
                                    stream.send(frame);
                                }
                            }
                        }
                        streams.into_iter().map(Sent::finish).collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().unwrap())
                .collect()
        });
        for (plain, wire) in &sent {
            check(plain, wire, seed);
        }
    }
}

#[test]
fn a_block_made_for_one_history_never_reaches_another() {
    let (one, two, three) = (greet(1), greet(2), greet(3));
    // A: one, two, three (three is compressed against two); B: one, three.
    let mut a = Sent::new();
    for frame in [&one, &two, &three] {
        a.send(frame);
    }
    let mut b = Sent::new();
    for frame in [&one, &three] {
        b.send(frame);
    }
    assert_ne!(
        a.wire[3], b.wire[2],
        "three's block after two is not three's block after one"
    );
    for (plain, wire) in [a.finish(), b.finish()] {
        check(&plain, &wire, 0);
    }
}

#[test]
fn past_a_few_predecessors_the_self_contained_block_serves() {
    let shared = greet(100);
    let mut streams: Vec<Sent> = (0..PREDECESSORS + 3)
        .map(|n| {
            let mut stream = Sent::new();
            stream.send(&greet(n)); // each a history of its own
            stream.send(&shared);
            stream
        })
        .collect();
    let alone = shared.forms().alone(shared.plain());
    let took_alone = streams
        .iter()
        .filter(|stream| stream.wire[2] == alone.to_vec())
        .count();
    assert_eq!(took_alone, 3, "the streams past the first {PREDECESSORS}");
    for stream in streams.drain(..) {
        let (plain, wire) = stream.finish();
        check(&plain, &wire, 0);
    }
}

#[test]
fn events_larger_than_the_window_decode_too() {
    let big = |version| list(1_200, 7, version); // about 100 KiB each
    assert!(big(0).plain().len() > 3 * WINDOW);
    let mut stream = Sent::new();
    for version in 0..4 {
        stream.send(&big(version));
        stream.send(&greet(version));
    }
    let (plain, wire) = stream.finish();
    check(&plain, &wire, 0);
}

#[test]
fn a_repeated_region_costs_a_fraction_of_its_size() {
    let (first, second) = (list(200, 3, 1), list(200, 3, 2));
    let mut stream = Sent::new();
    stream.send(&first);
    stream.send(&second);
    let (plain, wire) = stream.finish();
    check(&plain, &wire, 0);
    assert!(second.plain().len() > 15_000, "{}", second.plain().len());
    assert!(
        wire[2].len() < second.plain().len() / 20,
        "a re-rendered list with one row changed took {} bytes for {}",
        wire[2].len(),
        second.plain().len()
    );
}

#[test]
fn a_wrong_trailer_is_caught_by_a_standard_decoder() {
    let mut stream = Sent::new();
    stream.send(&greet(1));
    let (_, mut wire) = stream.finish();
    let trailer = wire.last_mut().unwrap();
    let crc_at = trailer.len() - 8;
    trailer[crc_at] ^= 1;
    let mut out = Vec::new();
    let result = flate2::read::GzDecoder::new(&wire.concat()[..]).read_to_end(&mut out);
    assert!(result.is_err(), "a corrupt CRC-32 went unnoticed");
}

#[test]
fn keep_alives_reach_the_wire_and_decode_to_nothing() {
    let mut stream = Sent::new();
    stream.send(&greet(1));
    stream.send(&TestFrame::keep_alive());
    stream.send(&greet(2));
    assert_eq!(stream.wire[2], EMPTY_BLOCK);
    let (plain, wire) = stream.finish();
    check(&plain, &wire, 0);
}

#[test]
fn gzip_is_taken_when_accepted_and_not_refused() {
    use axum::http::{HeaderMap, HeaderValue, header::ACCEPT_ENCODING};
    let accepts = |values: &[&str]| {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        }
        accepted(&headers)
    };
    assert!(accepts(&["gzip, deflate, br, zstd"])); // Chromium
    assert!(accepts(&["deflate, gzip"])); // curl --compressed
    assert!(accepts(&["br;q=1.0, gzip;q=0.8, *;q=0.1"]));
    assert!(accepts(&["*"]));
    assert!(accepts(&["identity", "GZIP"]));
    assert!(accepts(&["x-gzip"]));
    assert!(!accepts(&[]));
    assert!(!accepts(&["identity"]));
    assert!(!accepts(&["br, zstd"]));
    assert!(!accepts(&["gzip;q=0"]));
    assert!(
        !accepts(&["gzip;q=0, *"]),
        "refused by name, whatever `*` says"
    );
    assert!(!accepts(&["*;q=0"]));
}
