//! Reading a file an operator names (a certificate, a key, a CA, an ACME challenge), without
//! trusting it to be a small regular file on a disk that answers.
//!
//! Why not `std::fs::read`: a reload reads while the server serves. A key replaced by a named
//! pipe made `read` wait forever for a writer — on a runtime thread, so `/healthz` stopped
//! answering, and the runtime's shutdown waited on that thread forever after SIGTERM. A 1 GiB
//! file took 1 GiB of memory. So each read here
//!
//! - looks at what the path is first (`stat` never waits on a pipe): anything but a regular
//!   file (a pipe, a device, a socket, a folder) is refused, and so is a file over `limit`;
//! - reads at most `limit + 1` bytes, so a file that grows after the look is refused too;
//! - runs on a thread of its own, not a runtime thread nor tokio's blocking pool, and is waited
//!   for at most [`READ_TIMEOUT`]. A read that outlasts it (a file swapped for a pipe between
//!   the look and the open, a network file system that stopped answering) is given up: its
//!   thread is left to finish or block on its own, costing one parked thread, and — because
//!   tokio never waits for threads it did not start — it can hold up neither a request nor the
//!   shutdown. (A `spawn_blocking` task that never finishes does: the runtime waits for it when
//!   it is dropped.)

use std::{
    io::{self, Read},
    path::{Path, PathBuf},
    sync::mpsc,
    time::Duration,
};

/// The largest PEM file the kit reads: a certificate chain is a few KiB, a key less; 1 MiB
/// leaves room for any real chain or CA bundle (Mozilla's roots are about 200 KiB).
#[cfg_attr(not(any(feature = "tls", feature = "redis")), allow(dead_code))]
pub(crate) const PEM_LIMIT: u64 = 1024 * 1024;

/// How long a read of a small local file may take before it is given up: a disk answers in
/// milliseconds; this much means the file is not what it seems.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The file at `path`, if it is a regular file of at most `limit` bytes read within `timeout`,
/// waiting without blocking the runtime (see the [module docs](self)). The error says what is
/// wrong, for a message that names the setting.
pub(crate) async fn read(path: &Path, limit: u64, timeout: Duration) -> io::Result<Vec<u8>> {
    let path = path.to_owned();
    off_runtime(timeout, move || read_now(&path, limit)).await
}

/// `work`'s result, if it comes within `timeout`, from a thread nobody joins.
async fn off_runtime<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    detached(move || {
        let _ = done.send(work());
    })?;
    match tokio::time::timeout(timeout, result).await {
        Ok(Ok(read)) => read,
        Ok(Err(_)) => Err(io::Error::other(
            "the reading thread ended without an answer",
        )),
        Err(_) => Err(timed_out(timeout)),
    }
}

/// [`read`] for code that is not async (reading settings, building a configuration at start):
/// blocks the calling thread for at most `timeout`.
#[cfg_attr(not(any(feature = "tls", feature = "redis")), allow(dead_code))]
pub(crate) fn read_blocking(path: &Path, limit: u64, timeout: Duration) -> io::Result<Vec<u8>> {
    let (done, result) = mpsc::sync_channel(1);
    let path: PathBuf = path.to_owned();
    detached(move || {
        let _ = done.send(read_now(&path, limit));
    })?;
    match result.recv_timeout(timeout) {
        Ok(read) => read,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(timed_out(timeout)),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(io::Error::other(
            "the reading thread ended without an answer",
        )),
    }
}

/// Runs `work` on a thread nobody joins.
fn detached(work: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name("live-read-file".into())
        .spawn(work)
        .map(drop)
}

fn timed_out(timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "reading it took longer than {} s (is it on a file system that stopped answering?)",
            timeout.as_secs_f32()
        ),
    )
}

/// Looks, then reads at most `limit + 1` bytes (on the calling thread).
fn read_now(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let refused = |reason: String| io::Error::new(io::ErrorKind::InvalidInput, reason);
    let kind = std::fs::metadata(path)?.file_type();
    if !kind.is_file() {
        return Err(refused(format!(
            "it is {}, not a regular file",
            describe(&kind)
        )));
    }
    let file = std::fs::File::open(path)?;
    // Looked at again through the open file: the path may name another file by now.
    let meta = file.metadata()?;
    let too_large = |size: u64| refused(format!("it is larger than {limit} bytes ({size})"));
    if !meta.is_file() {
        return Err(refused("it is not a regular file".into()));
    }
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut content = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut content)?;
    if content.len() as u64 > limit {
        return Err(too_large(content.len() as u64));
    }
    Ok(content)
}

/// What a path that is not a regular file is, in words.
fn describe(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a named pipe";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        return "a folder";
    }
    "something else"
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("live-files-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn a_small_regular_file_is_read() {
        let path = dir().join("a.pem");
        std::fs::write(&path, "hello").unwrap();
        assert_eq!(read(&path, 5, READ_TIMEOUT).await.unwrap(), b"hello");
        assert_eq!(read_blocking(&path, 5, READ_TIMEOUT).unwrap(), b"hello");
    }

    #[tokio::test]
    async fn a_file_over_the_limit_a_folder_and_a_missing_file_are_refused() {
        let dir = dir();
        let big = dir.join("big.pem");
        std::fs::write(&big, "x".repeat(11)).unwrap();

        let error = read(&big, 10, READ_TIMEOUT).await.unwrap_err();
        assert!(
            error.to_string().contains("larger than 10 bytes"),
            "{error}"
        );
        let error = read(&dir, 10, READ_TIMEOUT).await.unwrap_err();
        assert!(error.to_string().contains("a folder"), "{error}");
        let error = read(&dir.join("missing"), 10, READ_TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_named_pipe_is_refused_at_once_rather_than_waited_on() {
        let fifo = dir().join("key.pem");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());

        let started = Instant::now();
        let error = read(&fifo, PEM_LIMIT, READ_TIMEOUT).await.unwrap_err();
        let blocking = read_blocking(&fifo, PEM_LIMIT, READ_TIMEOUT).unwrap_err();

        assert!(error.to_string().contains("a named pipe"), "{error}");
        assert!(blocking.to_string().contains("a named pipe"), "{blocking}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[cfg(unix)]
    #[test]
    fn a_read_that_never_ends_is_given_up_and_holds_up_no_runtime_shutdown() {
        // A pipe's open blocks until a writer comes: what `read_now` meets when the path is
        // swapped for a pipe between its look and its open. Called directly, past the look.
        let fifo = dir().join("key.pem");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let path = fifo.clone();

        let started = Instant::now();
        let error = runtime
            .block_on(off_runtime(Duration::from_millis(200), move || {
                std::fs::read(&path)
            }))
            .unwrap_err();
        drop(runtime);
        let took = started.elapsed();
        // Let the parked thread go.
        let _ = std::fs::OpenOptions::new().write(true).open(&fifo);

        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(
            took < Duration::from_secs(2),
            "the runtime was dropped after {took:?}"
        );
    }
}
