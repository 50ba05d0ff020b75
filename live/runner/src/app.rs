//! The app process: started on the runner's socket, told about builds, stopped gracefully.

use std::{
    io::Write,
    net::TcpListener,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::Path,
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::json;

/// Set in the app's environment: the kit then reads [`Message`]s from its stdin, and stops
/// when stdin ends (`live::dev::runner::ENV`).
const RUNNER_ENV: &str = "LIVE_DEV_RUNNER";

/// How long a stopping app may take to end its streams and exit before it is killed. The kit's
/// graceful stop takes milliseconds in development; this only bounds a hung app.
const STOP_PATIENCE: Duration = Duration::from_secs(5);

/// What the runner tells the app about a build (the kit's `live::dev::runner::Build`).
pub enum Message {
    Started { changed: Vec<String> },
    Failed { error: String },
    Ok,
}

pub struct App {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl App {
    /// Starts `executable` with `listener` as its descriptor 3 (`LISTEN_FDS=1`, no
    /// `LISTEN_PID`: the convention `listenfd` reads), and a pipe on its stdin.
    pub fn start(executable: &Path, listener: &TcpListener) -> anyhow::Result<App> {
        let fd = listener.as_raw_fd();
        let mut command = Command::new(executable);
        command
            .env("LISTEN_FDS", "1")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env(RUNNER_ENV, "1")
            .stdin(Stdio::piped());
        // `cargo run` described the runner's package to it; the app is another package.
        for (name, _) in std::env::vars_os() {
            if describes_a_package(&name.to_string_lossy()) {
                command.env_remove(name);
            }
        }
        // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl) on a
        // descriptor the runner keeps open for its whole life.
        unsafe {
            command.pre_exec(move || pass_as_descriptor_3(fd));
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", executable.display()))?;
        let stdin = child.stdin.take();
        Ok(App { child, stdin })
    }

    /// Tells the app about a build; an app that is gone (it exited, or is stopping) is not told.
    pub fn tell(&mut self, message: &Message) {
        let line = match message {
            Message::Started { changed } => json!({ "build": "started", "changed": changed }),
            Message::Failed { error } => json!({ "build": "failed", "error": error }),
            Message::Ok => json!({ "build": "ok" }),
        };
        if let Some(stdin) = &mut self.stdin
            && writeln!(stdin, "{line}")
                .and_then(|()| stdin.flush())
                .is_err()
        {
            self.stdin = None;
        }
    }

    /// The app's exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the app the way a service manager does: SIGTERM (the kit ends every stream with a
    /// "reconnect" event and exits), then, past [`STOP_PATIENCE`], SIGKILL.
    pub fn stop(mut self) {
        let Ok(pid) = i32::try_from(self.child.id()) else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        };
        // SAFETY: `pid` is our own child, not yet waited for, so not reused.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_PATIENCE;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        eprintln!(
            "cargo dev: the app did not stop within {} s of SIGTERM: killed",
            STOP_PATIENCE.as_secs()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Variables `cargo run` set for the runner, describing the runner's package.
fn describes_a_package(name: &str) -> bool {
    [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
        || name == "CARGO_PRIMARY_PACKAGE"
}

/// In the child, before exec: makes `fd` descriptor 3, open across exec.
fn pass_as_descriptor_3(fd: i32) -> std::io::Result<()> {
    const FIRST: i32 = 3;
    // SAFETY: plain descriptor calls; errors are read from errno right after.
    unsafe {
        if fd == FIRST {
            // dup2 onto itself would leave close-on-exec set: clear it instead.
            let flags = libc::fcntl(FIRST, libc::F_GETFD);
            if flags < 0 || libc::fcntl(FIRST, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        } else if libc::dup2(fd, FIRST) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
