//! Presence under storms (`--presence-clients`, default 10 000): N tabs of the notes app's
//! `/sse/present` page join at once, then half of them leave at once. For each storm: how long
//! after the last stream opened (or the last tab left) every remaining tab shows the exact
//! count, and how many presence frames a tab was written — each tab should get a handful, not
//! one per join.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};

/// What the clients saw, shared with the run.
struct Seen {
    epoch: Instant,
    /// Streams open (their first event arrived), and when the last one did.
    live: AtomicUsize,
    last_live: AtomicU64,
    /// Each tab's newest count, and presence frames written to all tabs.
    counts: Vec<AtomicU64>,
    frames: AtomicU64,
    /// The count every tab must reach, and the last time a tab reached it.
    target: AtomicU64,
    reached: AtomicUsize,
    last_reached: AtomicU64,
}

impl Seen {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn count(&self, tab: usize, count: u64) {
        self.frames.fetch_add(1, Relaxed);
        self.counts[tab].store(count, Relaxed);
        if count == self.target.load(Relaxed) {
            self.reached.fetch_add(1, Relaxed);
            self.last_reached.fetch_max(self.now(), Relaxed);
        }
    }
}

/// One tab: opens its stream and notes every count it is written, until it is aborted.
async fn tab(addr: SocketAddr, index: usize, seen: Arc<Seen>) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let request = format!(
        "GET /sse/present?datastar=%7B%22sessionId%22%3A%22{}%22%7D HTTP/1.1\r\nHost: {addr}\r\n\
         Accept: text/event-stream\r\ndatastar-request: true\r\n\r\n",
        uuid::Uuid::new_v4()
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return;
    }
    let (mut pending, mut buffer, mut live) = (String::new(), vec![0u8; 8192], false);
    const MARK: &str = "\"_presence\":{\"present\":";
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.push_str(&String::from_utf8_lossy(&buffer[..n]));
        if !live && pending.contains("\"connected\":true") {
            live = true;
            seen.live.fetch_add(1, Relaxed);
            seen.last_live.fetch_max(seen.now(), Relaxed);
        }
        let mut start = 0;
        while let Some(end) = pending[start..].find("\n\n") {
            let event = &pending[start..start + end];
            if let Some(at) = event.find(MARK) {
                let digits: String = event[at + MARK.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(count) = digits.parse() {
                    seen.count(index, count);
                }
            }
            start += end + 2;
        }
        pending.drain(..start);
    }
}

/// Waits until the first `tabs` tabs show `target` (or a minute passed); how long after
/// `since` the last got there, and whether all did.
async fn until_all_show(seen: &Seen, tabs: usize, target: u64, since: u64) -> (Duration, bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let all = || {
        seen.counts[..tabs]
            .iter()
            .all(|count| count.load(Relaxed) == target)
    };
    while !all() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let last = seen.last_reached.load(Relaxed);
    (Duration::from_nanos(last.saturating_sub(since)), all())
}

/// One storm of `n` joins, then one of `n / 2` leaves, against the notes app at `addr`.
pub async fn storms(addr: SocketAddr, n: usize) {
    let seen = Arc::new(Seen {
        epoch: Instant::now(),
        live: AtomicUsize::new(0),
        last_live: AtomicU64::new(0),
        counts: (0..n).map(|_| AtomicU64::new(0)).collect(),
        frames: AtomicU64::new(0),
        target: AtomicU64::new(n as u64),
        reached: AtomicUsize::new(0),
        last_reached: AtomicU64::new(0),
    });

    // The join storm: every tab at once.
    let mut tabs: Vec<JoinHandle<()>> = (0..n)
        .map(|index| tokio::spawn(tab(addr, index, Arc::clone(&seen))))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.live.load(Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let live = seen.live.load(Relaxed);
    let last_live = seen.last_live.load(Relaxed);
    let (after, all) = until_all_show(&seen, n, n as u64, last_live).await;
    let joined_frames = seen.frames.load(Relaxed);
    println!("N = {n} (presence, one instance)");
    println!(
        "  join storm: {live}/{n} streams open in {:.0} ms; every tab showed {n} {} {:.1} ms \
         after the last opened; {:.2} presence frames per tab",
        Duration::from_nanos(last_live).as_secs_f64() * 1000.0,
        if all { "by" } else { "NOT within a minute:" },
        after.as_secs_f64() * 1000.0,
        joined_frames as f64 / n as f64
    );

    // The leave storm: half the tabs at once.
    let stay = n - n / 2;
    seen.target.store(stay as u64, Relaxed);
    seen.last_reached.store(0, Relaxed);
    let left_at = seen.now();
    for tab in tabs.drain(stay..) {
        tab.abort();
    }
    let (after, all) = until_all_show(&seen, stay, stay as u64, left_at).await;
    let left_frames = seen.frames.load(Relaxed) - joined_frames;
    println!(
        "  leave storm: {} tabs closed at once; every other tab showed {stay} {} {:.1} ms \
         after; {:.2} presence frames per remaining tab",
        n / 2,
        if all { "by" } else { "NOT within a minute:" },
        after.as_secs_f64() * 1000.0,
        left_frames as f64 / stay as f64
    );
    for tab in tabs {
        tab.abort();
    }
}
