//! Back-pressure under attack: bursts of simultaneous updates, and clients that stop reading.
//!
//! Thousands of clients are raw TCP sockets here (an HTTP client per stream would cost more
//! than the server under test).

mod support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    sync::Barrier,
};

use live::registry::CloseReason;
use support::{PATIENCE, raise_open_files_limit, raw_stream_request, spawn_app_with};

/// What the reading clients saw.
#[derive(Default)]
struct Readers {
    connected: AtomicUsize,
    ended: AtomicUsize,
    /// Readers that could not connect or send their request (the last error, for the report).
    failed: AtomicUsize,
    failure: std::sync::Mutex<Option<String>>,
    /// The highest note number each reader has shown.
    newest: Vec<AtomicU64>,
    /// How many note events each reader has been sent.
    notes: Vec<AtomicU64>,
}

impl Readers {
    fn new(count: usize) -> Arc<Readers> {
        Arc::new(Readers {
            newest: (0..count).map(|_| AtomicU64::new(0)).collect(),
            notes: (0..count).map(|_| AtomicU64::new(0)).collect(),
            ..Readers::default()
        })
    }

    fn all_show(&self, serial: u64) -> bool {
        self.newest
            .iter()
            .all(|newest| newest.load(Ordering::Relaxed) == serial)
    }
}

/// A client that reads its stream as fast as it arrives, noting the newest note it shows.
async fn reader(addr: SocketAddr, index: usize, readers: Arc<Readers>) {
    let connected = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(raw_stream_request(addr).as_bytes())
            .await?;
        Ok::<_, std::io::Error>(stream)
    };
    let mut stream = match connected.await {
        Ok(stream) => stream,
        Err(error) => {
            readers.failed.fetch_add(1, Ordering::Relaxed);
            *readers.failure.lock().unwrap() = Some(error.to_string());
            return;
        }
    };
    let mut buffer = vec![0; 16 * 1024];
    let mut text = String::new();
    let mut connected = false;
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        text.push_str(&String::from_utf8_lossy(&buffer[..n]));
        if text.contains("\r\n0\r\n\r\n") {
            break; // the server ended the stream (the last chunk of the response)
        }
        if !connected && text.contains("\"connected\":true") {
            connected = true;
            readers.connected.fetch_add(1, Ordering::Relaxed);
        }
        // Complete events only; keep an unfinished one for the next read.
        let Some(end) = text.rfind("\n\n") else {
            continue;
        };
        for serial in text[..end]
            .split("Note #")
            .skip(1)
            .filter_map(|rest| rest.split(':').next()?.parse::<u64>().ok())
        {
            readers.newest[index].fetch_max(serial, Ordering::Relaxed);
            readers.notes[index].fetch_add(1, Ordering::Relaxed);
        }
        text.drain(..end + 2);
    }
    readers.ended.fetch_add(1, Ordering::Relaxed);
}

/// A new note over its own connection, as Datastar sends it; returns the status line.
async fn publish(addr: SocketAddr, text: &str) -> String {
    let body = format!("text={text}");
    let request = format!(
        "POST /notes HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         datastar-request: true\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < PATIENCE * 3, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_simultaneous_updates_drops_no_reading_stream_and_all_end_on_the_newest() {
    // Arrange: 2 000 streams that read as fast as data comes.
    raise_open_files_limit();
    const STREAMS: usize = 2_000;
    const NOTES: usize = 128;
    let app = spawn_app_with(|config| {
        config.max_streams = STREAMS + 10;
        config.max_streams_per_client = STREAMS + 10; // every client is 127.0.0.1 here
        config.max_connections_per_client = STREAMS + NOTES + 10; // the posts too
        config.action_limit = None; // and so is every poster: 128 at once is the point
    })
    .await;
    let readers = Readers::new(STREAMS);
    for index in 0..STREAMS {
        tokio::spawn(reader(app.addr(), index, Arc::clone(&readers)));
    }
    let start = Instant::now();
    let counted =
        || readers.connected.load(Ordering::Relaxed) + readers.failed.load(Ordering::Relaxed);
    while counted() < STREAMS && start.elapsed() < PATIENCE * 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        readers.connected.load(Ordering::Relaxed) == STREAMS,
        "{} of {STREAMS} streams connected; {} could not connect (last error: {:?})",
        readers.connected.load(Ordering::Relaxed),
        readers.failed.load(Ordering::Relaxed),
        readers.failure.lock().unwrap(),
    );

    // Act: 128 new notes sent at the same instant, each on its own connection.
    let start = Arc::new(Barrier::new(NOTES));
    let posts: Vec<_> = (0..NOTES)
        .map(|i| {
            let start = Arc::clone(&start);
            let addr = app.addr();
            tokio::spawn(async move {
                start.wait().await;
                publish(addr, &format!("burst{i}")).await
            })
        })
        .collect();
    for post in posts {
        let status = post.await.unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    }

    // Assert: every stream shows the newest note, and none was dropped.
    let took = wait_until("every stream on the newest note", || {
        readers.all_show(NOTES as u64)
    })
    .await;
    assert_eq!(readers.ended.load(Ordering::Relaxed), 0, "no stream ended");
    assert_eq!(
        app.streams("page/notes/*"),
        STREAMS,
        "none left the registry"
    );
    // And the burst cost what the tabs needed, not notes × streams: a stream writes only the
    // newest note it has not sent, each time it gets to run. (How many times that is depends on
    // how the posts and the streams' tasks interleave, so the bound is loose: a quarter of what
    // queueing every note would write.)
    let sent: Vec<u64> = readers
        .notes
        .iter()
        .map(|notes| notes.load(Ordering::Relaxed))
        .collect();
    let total: u64 = sent.iter().sum();
    let most = sent.iter().copied().max().unwrap_or(0);
    eprintln!(
        "{STREAMS} streams on note #{NOTES} {took:?} after the last reply; {total} note events \
         written in all ({:.1} per stream, at most {most}), of {} if each note went to each",
        total as f64 / STREAMS as f64,
        STREAMS * NOTES
    );
    assert!(
        total <= (STREAMS * NOTES / 4) as u64,
        "{total} note events for {STREAMS} streams × {NOTES} notes"
    );
}

/// A client that asks for a stream and then never reads a byte, with a small receive buffer so
/// that its socket fills quickly.
async fn non_reader(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4 * 1024).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(raw_stream_request(addr).as_bytes())
        .await
        .unwrap();
    stream
}

/// Whether the server has closed `stream`: everything it sent is read, then the end (a reset
/// or an orderly close).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false, // open, nothing more to read
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_are_cut_off_within_the_send_timeout_and_readers_keep_up() {
    // Arrange
    raise_open_files_limit();
    const SEND_TIMEOUT: Duration = Duration::from_secs(1);
    let app = spawn_app_with(|config| {
        config.send_timeout = SEND_TIMEOUT;
        config.action_limit = None; // the test posts as fast as it can, from one address
    })
    .await;
    let readers = Readers::new(20);
    for index in 0..20 {
        tokio::spawn(reader(app.addr(), index, Arc::clone(&readers)));
    }
    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(non_reader(app.addr()).await);
    }
    app.wait_for_streams("page/notes/*", 40).await;

    // Act: publish until the non-readers' sockets are full and they are cut off.
    let name = "x".repeat(64);
    let start = Instant::now();
    let mut notes = 0u64;
    while app.streams("page/notes/*") > 20 {
        assert!(start.elapsed() < PATIENCE * 3, "non-readers never cut off");
        notes += 1;
        publish(app.addr(), &name).await;
    }
    let cut_off = start.elapsed();

    // Assert: the non-readers' sockets are closed by the server, the readers are all there,
    // and they have every note up to the last.
    eprintln!("{notes} notes; non-readers cut off {cut_off:?} after the first");
    for stream in &mut stalled {
        assert!(
            closed_by_server(stream).await,
            "a non-reader's socket is still open"
        );
    }
    wait_until("readers on the newest note", || readers.all_show(notes)).await;
    assert_eq!(readers.ended.load(Ordering::Relaxed), 0);
    assert_eq!(app.streams("page/notes/*"), 20);
    // Counted for metrics as cut off (a non-reader's queue may overflow before its send
    // timeout runs out, and both count as cut off), never as a client that left.
    let cut_off = || {
        let counts = app.live().registry.counts();
        counts.closed_by(CloseReason::SendTimeout) + counts.closed_by(CloseReason::QueueFull)
    };
    wait_until("20 streams counted as cut off", || cut_off() == 20).await;
    let counts = app.live().registry.counts();
    eprintln!(
        "send_timeout {}, queue_full {}",
        counts.closed_by(CloseReason::SendTimeout),
        counts.closed_by(CloseReason::QueueFull)
    );
    assert_eq!(counts.closed_by(CloseReason::ClientLeft), 0);
    assert_eq!(counts.opened, 40);
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_client_that_stopped_reading() {
    // Send timeout and grace far above the test's patience: only draining can end this soon.
    let mut app = spawn_app_with(|config| {
        config.send_timeout = Duration::from_secs(120);
        config.shutdown_timeout = Duration::from_secs(120);
        config.action_limit = None; // 400 posts in a row, from one address
    })
    .await;
    let mut stalled = non_reader(app.addr()).await;
    app.wait_for_streams("page/notes/*", 1).await;
    // Fill the stalled client's socket: the server's last write to it will block.
    let name = "x".repeat(64);
    for _ in 0..400 {
        publish(app.addr(), &name).await;
    }

    #[cfg(target_os = "linux")]
    {
        let client_port = stalled.local_addr().unwrap().port();
        let queued = unsent_bytes(app.addr().port(), client_port);
        assert!(queued > 0, "the server's writes to the client are blocked");
    }

    let start = Instant::now();
    app.shut_down().await.expect("a clean shutdown");

    eprintln!("shut down in {:?} with a stalled client", start.elapsed());
    assert!(closed_by_server(&mut stalled).await);
    let counts = app.live().registry.counts();
    assert_eq!(counts.closed_by(CloseReason::Shutdown), 1, "{counts:?}");
}

/// Bytes the server's socket from `local_port` to `remote_port` could not send yet (the
/// `tx_queue` column of `/proc/net/tcp`).
#[cfg(target_os = "linux")]
fn unsent_bytes(local_port: u16, remote_port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port =
        |address: &str| u16::from_str_radix(address.rsplit(':').next().unwrap(), 16).unwrap();
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| port(fields[1]) == local_port && port(fields[2]) == remote_port)
        .map(|fields| u64::from_str_radix(fields[4].split(':').next().unwrap(), 16).unwrap())
        .expect("the server's socket")
}

#[tokio::test]
async fn a_stream_cut_off_for_its_queue_limit_has_its_socket_closed_at_once() {
    // A send timeout far above the test's patience: only the cut-off can close the socket.
    let app = spawn_app_with(|config| {
        config.send_timeout = Duration::from_secs(120);
        config.queue_limit = 8;
    })
    .await;
    let mut stalled = non_reader(app.addr()).await;
    app.wait_for_streams("page/notes/*", 1).await;

    // Ordinary events, which do not coalesce, until the stream is over its limit.
    let home = support::notes::pages();
    let frame = live::Frame::from(datastar::prelude::PatchSignals::new(format!(
        "{{\"filler\":\"{}\"}}",
        "x".repeat(1_000)
    )));
    let start = Instant::now();
    while app.streams("page/notes/*") == 1 {
        assert!(start.elapsed() < PATIENCE, "never cut off");
        app.live().registry.broadcast(&home, &frame);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    assert!(
        closed_by_server(&mut stalled).await,
        "its socket is closed too"
    );
    wait_until("the stream counted as queue_full", || {
        app.live()
            .registry
            .counts()
            .closed_by(CloseReason::QueueFull)
            == 1
    })
    .await;
    eprintln!(
        "cut off and closed {:?} after the first event",
        start.elapsed()
    );
}
