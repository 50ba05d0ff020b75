//! Bursts (`--burst-clients`, `--bursts`): B notes posted at the same instant, each on its own
//! connection, to N open streams — a busy page, or many instances' updates arriving at once.
//! What matters is that no stream is dropped, that every stream soon shows the newest note, and
//! that a stream is written a handful of note events rather than B (a stream behind skips to the
//! newest version).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    clients::{Kind, Shared, publish},
    options::Options,
    report::Report,
    run::{Setup, Transport, run},
};

/// The burst part: for each N, the app's run, the baseline's (unless `--no-raw`), and with
/// `redis_url` the same across two instances — whose report the summary leaves out, as it has
/// no baseline to stand beside. None without bursts to post.
pub async fn measure(options: &Options, redis_url: Option<&str>) -> Vec<(Report, Option<Report>)> {
    let mut bursts = Vec::new();
    if !options.bursts.is_empty() {
        for &n in &options.burst_clients {
            let app = run(n, 0, &options.bursts, &Setup::Local, Transport::Plain).await;
            let raw = match options.raw {
                true => Some(run(n, 0, &options.bursts, &Setup::Raw, Transport::Plain).await),
                false => None,
            };
            bursts.push((app, raw));
            if let Some(url) = redis_url {
                let setup = Setup::CrossInstance(url.to_owned());
                run(n, 0, &options.bursts, &setup, Transport::Plain).await;
            }
        }
    }
    bursts
}

/// One burst of simultaneous posts.
pub struct Burst {
    pub greets: usize,
    replied: Duration,
    all_newest: Option<Duration>,
    dropped: usize,
    /// Note events written per stream during the burst: mean and most.
    frames: (f64, u64),
}

impl Burst {
    /// One line of the report: what the burst cost and whether every one of the `live`
    /// streams got to the newest note.
    pub fn describe(&self, live: usize) -> String {
        let newest = match self.all_newest {
            Some(took) => format!(
                "all {live} on the newest {:.0} ms after it began",
                took.as_secs_f64() * 1000.0
            ),
            None => "NOT all on the newest within 60 s".to_owned(),
        };
        format!(
            "replies in {:.0} ms, {newest}, {} streams dropped, {:.1} note frames per stream (at most {})",
            self.replied.as_secs_f64() * 1000.0,
            self.dropped,
            self.frames.0,
            self.frames.1
        )
    }
}

/// Each of `sizes` in turn, on the same `live` streams.
pub async fn bursts(
    shared: &Arc<Shared>,
    sizes: &[usize],
    live: usize,
    post_to: SocketAddr,
) -> Vec<Burst> {
    let mut results = Vec::new();
    for &greets in sizes {
        results.push(burst(shared, greets, live, post_to).await);
    }
    results
}

/// B notes posted at the same instant, each on its own connection; then the time until every
/// stream shows the newest, how many streams the burst ended, and what it cost them in frames.
async fn burst(shared: &Arc<Shared>, greets: usize, live: usize, post_to: SocketAddr) -> Burst {
    let base = shared.newest.iter().map(load).max().unwrap_or(0);
    let target = base + greets as u64;
    let ended_before = shared.ended.load(Ordering::Relaxed);
    let seen_before: Vec<u64> = shared.notes_seen.iter().map(load).collect();
    let release = Arc::new(tokio::sync::Barrier::new(greets + 1));
    let posts: Vec<_> = (0..greets)
        .map(|i| {
            let release = Arc::clone(&release);
            let text = format!("{}b{i}", shared.run);
            tokio::spawn(async move {
                release.wait().await;
                publish(post_to, Kind::Latest, &text).await;
            })
        })
        .collect();
    release.wait().await;
    let sent = Instant::now();
    for post in posts {
        let _ = post.await;
    }
    let replied = sent.elapsed();
    let all_newest = all_on(shared, live, target, sent).await;
    let frames = frames_written(shared, &seen_before, live);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Burst {
        greets,
        replied,
        all_newest,
        dropped: shared.ended.load(Ordering::Relaxed) - ended_before,
        frames,
    }
}

/// A client's counter, now.
fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// How long after `sent` every one of the `live` streams had note number `target` (the
/// burst's last), checked every millisecond; `None` if one had not within 60 s.
async fn all_on(shared: &Shared, live: usize, target: u64, sent: Instant) -> Option<Duration> {
    let deadline = sent + Duration::from_secs(60);
    loop {
        let behind = shared
            .newest
            .iter()
            .take(live)
            .filter(|client| load(client) < target)
            .count();
        if behind == 0 {
            break Some(sent.elapsed());
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The note events each of the `live` streams was written since `seen_before`: their mean,
/// and the most any one was.
fn frames_written(shared: &Shared, seen_before: &[u64], live: usize) -> (f64, u64) {
    let written: Vec<u64> = shared
        .notes_seen
        .iter()
        .zip(seen_before)
        .take(live)
        .map(|(now, before)| load(now) - before)
        .collect();
    (
        written.iter().sum::<u64>() as f64 / written.len().max(1) as f64,
        written.iter().copied().max().unwrap_or(0),
    )
}
