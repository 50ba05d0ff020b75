//! Process tests: the real binary, started the way an operator starts it, with real signals.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use live::testing::Process;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Generous: these bounds only have to catch a hang, not measure speed.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running app process (stopped with the test), its address, and its log lines.
struct AppProcess {
    child: Process,
    addr: String,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl AppProcess {
    fn start(env: &[(&str, &str)], dir: Option<&Path>) -> AppProcess {
        let mut child = Process::spawn(&mut Self::command(env, dir));
        let (sender, lines) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = AppProcess {
            child,
            addr: String::new(),
            lines,
            seen: Vec::new(),
        };
        let line = process.wait_for_line(|line| line.contains("listening on http"));
        process.addr = line.split("://").nth(1).unwrap().trim().to_owned();
        process
    }

    /// The app's binary (which cargo builds before running integration tests) with `env`, in
    /// `dir` for a test of `.env`, else in a folder of its own with none of the developer's
    /// settings ([`live::testing::app_command`]).
    fn command(env: &[(&str, &str)], dir: Option<&Path>) -> Command {
        let mut command = live::testing::app_command(env!("CARGO_PKG_NAME"));
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        command
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }

    /// The next log line matching `wanted`; fails with every line seen so far on timeout.
    fn wait_for_line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no such log line; the app logged:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its status and how long it took.
    fn wait_exit(&mut self) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            assert!(start.elapsed() < PATIENCE, "no exit within {PATIENCE:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    async fn get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(&self.addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }
}

/// Opens a home stream over raw TCP and reads until its first event has arrived.
async fn open_stream(addr: &str) -> TcpStream {
    open_stream_as(addr, uuid::Uuid::new_v4()).await
}

/// Opens the home stream of the tab with `session_id`, as [`open_stream`] does.
async fn open_stream_as(addr: &str, session_id: uuid::Uuid) -> TcpStream {
    let signals = format!("%7B%22sessionId%22%3A%22{session_id}%22%7D");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /sse/home?datastar={signals} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0; 4096];
    while !String::from_utf8_lossy(&seen).contains("\"connected\":true") {
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(n > 0, "stream closed before its first event");
        seen.extend_from_slice(&buffer[..n]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 200"));
    stream
}

/// Reads until the server closes the connection; returns what arrived.
async fn read_to_end(mut stream: TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest))
        .await
        .expect("the server ends the stream")
        .unwrap();
    rest
}

#[tokio::test]
async fn sigterm_ends_every_open_stream_and_exits_cleanly() {
    // Arrange
    let mut app = AppProcess::start(&[], None);
    let mut streams = Vec::new();
    for _ in 0..200 {
        streams.push(open_stream(&app.addr).await);
    }
    let health = app.get("/healthz").await;
    assert!(health.contains("\"streams\":200"), "{health}");

    // Act
    app.terminate();

    // Assert: every stream ends with the chunked body's last chunk, then the process exits.
    for stream in streams {
        let rest = read_to_end(stream).await;
        assert!(
            rest.ends_with(b"0\r\n\r\n"),
            "{:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    let (status, _) = app.wait_exit();
    assert!(status.success(), "{status}");
    app.wait_for_line(|line| line.contains("shutting down") && line.contains("closed=200"));
}

#[tokio::test]
async fn requests_in_flight_finish_during_shutdown() {
    // tower_http's debug line says when the server has started on a request.
    let mut app = AppProcess::start(&[("RUST_LOG", "info,tower_http=debug")], None);
    let body = "name=Ada";
    let mut request = TcpStream::connect(&app.addr).await.unwrap();
    let head = format!(
        "POST /api/greet HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        body.len()
    );
    request.write_all(head.as_bytes()).await.unwrap();
    request.write_all(&body.as_bytes()[..5]).await.unwrap();
    app.wait_for_line(|line| {
        line.contains("started processing request") && line.contains("/api/greet")
    });

    // Shutdown begins while the request is half sent: new connections are refused...
    app.terminate();
    app.wait_for_line(|line| line.contains("shutting down"));
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(&app.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // ...but the request in flight is completed and answered.
    request.write_all(&body.as_bytes()[5..]).await.unwrap();
    let response = String::from_utf8(read_to_end(request).await).unwrap();
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    let (status, _) = app.wait_exit();
    assert!(status.success(), "{status}");
}

#[test]
fn invalid_settings_stop_the_start_with_the_variable_named() {
    let mut invalid = vec![
        ("PORT", "http"),
        ("MAX_STREAMS", "0"),
        ("HOST", "nowhere"),
        // Parses, but overflowed the first timer that used it and killed every stream.
        ("SSE_KEEP_ALIVE_SECS", "18446744073709551615"),
        ("KEEP_ALIVE_TIMEOUT_SECS", "60"),
        ("MAX_CONNECTIONS", "999999999"),
    ];
    if cfg!(feature = "redis") {
        invalid.push(("REDIS_SECRET", "")); // REDIS_URL without a secret
    }
    for (name, value) in invalid {
        let mut env = vec![(name, value)];
        if name == "REDIS_SECRET" {
            env = vec![("REDIS_URL", "redis://127.0.0.1:1")];
        }
        let output = exit_of(AppProcess::command(&env, None), &format!("{env:?}"));

        assert!(!output.status.success(), "{name}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("invalid {name}=")), "{stderr}");
    }
}

#[cfg(feature = "tls")]
#[test]
fn https_settings_that_cannot_work_stop_the_start_with_the_setting_named() {
    let ca = live::testing::https::TestCa::new();
    let dir = std::env::temp_dir().join(format!("tls-settings-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = ca.issue().write(&dir);
    let other_key = dir.join("other-key.pem");
    std::fs::write(&other_key, ca.issue().key_pem).unwrap();
    let (cert, key, other_key) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        other_key.to_str().unwrap(),
    );
    for (env, expected) in [
        (vec![("TLS_CERT", cert)], "invalid TLS_CERT="),
        (vec![("TLS_KEY", key)], "invalid TLS_KEY="),
        (
            vec![("TLS_CERT", "/nonexistent/cert.pem"), ("TLS_KEY", key)],
            "invalid TLS_CERT=",
        ),
        (
            vec![("TLS_CERT", cert), ("TLS_KEY", other_key)],
            "is not the key of the certificate",
        ),
        (
            vec![("HTTP_REDIRECT_PORT", "8080")],
            "invalid HTTP_REDIRECT_PORT=",
        ),
    ] {
        let output = exit_of(AppProcess::command(&env, None), &format!("{env:?}"));

        assert!(!output.status.success(), "{env:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The socket unit of an HTTPS deploy: two `ListenStream=` lines, 443 then 80, passed as file
/// descriptors 3 and 4. The app serves HTTPS on the first and redirects to it on the second.
#[cfg(feature = "tls")]
#[tokio::test]
async fn two_passed_sockets_serve_https_and_redirect_plain_http_to_it() {
    use std::os::{fd::AsRawFd, unix::process::CommandExt};

    // Arrange: the two sockets, as systemd would hold them, and a certificate.
    let ca = live::testing::https::TestCa::new();
    let dir = std::env::temp_dir().join(format!("two-sockets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = ca.issue().write(&dir);
    let https = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (https_port, plain_port) = (
        https.local_addr().unwrap().port(),
        plain.local_addr().unwrap().port(),
    );
    let fds = [https.as_raw_fd(), plain.as_raw_fd()];
    let mut command = AppProcess::command(
        &[
            ("TLS_CERT", cert.to_str().unwrap()),
            ("TLS_KEY", key.to_str().unwrap()),
            ("LISTEN_FDS", "2"),
        ],
        None,
    );
    command.env_remove("LISTEN_PID");
    // SAFETY: between fork and exec only async-signal-safe calls: dup2 and fcntl.
    unsafe {
        command.pre_exec(move || {
            for (at, fd) in fds.into_iter().enumerate() {
                let target = 3 + at as i32;
                if fd != target && libc::dup2(fd, target) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::fcntl(target, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = Process::spawn(&mut command);
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (lines, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut app = AppProcess {
        child,
        addr: format!("127.0.0.1:{https_port}"),
        lines: log,
        seen: Vec::new(),
    };
    app.wait_for_line(|line| line.contains("redirecting http://"));

    // Act
    let secure = ca
        .client()
        .build()
        .unwrap()
        .get(format!("https://127.0.0.1:{https_port}/healthz"))
        .send()
        .await
        .unwrap();
    let mut redirect = TcpStream::connect(("127.0.0.1", plain_port)).await.unwrap();
    let request =
        format!("GET /about HTTP/1.1\r\nHost: 127.0.0.1:{plain_port}\r\nConnection: close\r\n\r\n");
    redirect.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    redirect.read_to_string(&mut answer).await.unwrap();

    // Assert
    assert_eq!(secure.status(), 200);
    assert!(answer.starts_with("HTTP/1.1 308"), "{answer}");
    assert!(
        answer.contains(&format!("location: https://127.0.0.1:{https_port}/about")),
        "{answer}"
    );
    app.terminate();
    let (status, _) = app.wait_exit();
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A renewal gone wrong, through a real `SIGHUP`: the key replaced by a named pipe. Before, the
/// reload waited on the pipe on a runtime thread: `/healthz` went unanswered for 55 s, and
/// after a second `SIGHUP` the process logged "stopped" on `SIGTERM` but never exited.
#[cfg(feature = "tls")]
#[tokio::test]
async fn a_sighup_with_the_key_replaced_by_a_pipe_keeps_serving_and_sigterm_still_exits() {
    // Arrange: HTTPS from files, then the key file replaced by a pipe no writer opens. (After
    // a while the watchdog opens it for reading and writing, which never waits, and closes
    // it: a read stuck on it then ends, and the code before the fix fails here, not hangs.)
    let ca = live::testing::https::TestCa::new();
    let dir = std::env::temp_dir().join(format!("sighup-pipe-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = ca.issue().write(&dir);
    let mut app = AppProcess::start(
        &[
            ("TLS_CERT", cert.to_str().unwrap()),
            ("TLS_KEY", key.to_str().unwrap()),
        ],
        None,
    );
    std::fs::remove_file(&key).unwrap();
    let made = Command::new("mkfifo").arg(&key).status().unwrap();
    assert!(made.success());
    let fifo = key.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(5));
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo);
    });
    let client = ca.client().build().unwrap();
    let hangup = |pid: u32| {
        let sent = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };

    // Act: two SIGHUPs, /healthz asked after each, then SIGTERM.
    let mut slowest = Duration::ZERO;
    for _ in 0..2 {
        hangup(app.child.id());
        app.wait_for_line(|line| line.contains("NOT reloaded"));
        for _ in 0..3 {
            let started = Instant::now();
            let health = tokio::time::timeout(
                PATIENCE,
                client.get(format!("https://{}/healthz", app.addr)).send(),
            )
            .await
            .expect("/healthz answers")
            .unwrap();
            assert_eq!(health.status(), 200);
            slowest = slowest.max(started.elapsed());
        }
    }
    app.terminate();
    let (status, took) = app.wait_exit();

    // Assert
    let log = app.seen.join("\n");
    println!("slowest /healthz after a SIGHUP on a pipe: {slowest:?}; exit {took:?} after SIGTERM");
    assert!(log.contains("named pipe"), "the log says why: {log}");
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?}"
    );
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_secs(3),
        "exited {took:?} after SIGTERM"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Tests never read the developer's settings. The app they start runs in a folder of its own
/// with no `.env` (not the project's, where a developer's `.env` with `METRICS_ADDR` made two
/// instances fight over one port), inherits none of the settings' variables, and reads no
/// `.env` above its folder either.
#[tokio::test]
async fn the_app_a_test_starts_reads_no_dotenv_of_the_project_nor_above_its_folder() {
    // The folder: apart from the project (neither in it nor above it), without a `.env`.
    let command = AppProcess::command(&[], None);
    let dir = command.get_current_dir().expect("a folder of its own");
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        !dir.starts_with(project) && !project.starts_with(dir),
        "{dir:?} is apart from {project:?}"
    );
    assert!(!dir.join(".env").exists());
    // The environment: every setting removed but the port the test asks for.
    for (name, ..) in live::settings::VARIABLES {
        let value = command
            .get_envs()
            .find(|(set, _)| set.to_str() == Some(name))
            .map(|(_, value)| value);
        match *name {
            "PORT" => assert_eq!(value, Some(Some("0".as_ref()))),
            _ => assert_eq!(value, Some(None), "{name} is not removed"),
        }
    }

    // A `.env` one folder up is not read…
    let above = std::env::temp_dir().join(format!("dotenv-above-{}", uuid::Uuid::new_v4()));
    let below = above.join("app");
    std::fs::create_dir_all(&below).unwrap();
    std::fs::write(above.join(".env"), live::testing::hostile_dotenv()).unwrap();
    let app = AppProcess::start(&[], Some(&below));
    assert!(app.get("/").await.starts_with("HTTP/1.1 200"));

    // …where the same file in the app's own folder stops it: it would have broken the tests.
    let output = exit_of(AppProcess::command(&[], Some(&above)), "a hostile .env");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("from a .env no test may read"), "{stderr}");
    let _ = std::fs::remove_dir_all(&above);
}

#[tokio::test]
async fn settings_can_come_from_a_dotenv_file_and_the_environment_wins() {
    let dir = std::env::temp_dir().join(format!("dotenv-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(".env"),
        "# local settings\nDATASTAR_URL=/from-dotenv.js\nSSE_KEEP_ALIVE_SECS=7\n",
    )
    .unwrap();

    let from_file = AppProcess::start(&[], Some(&dir));
    let page = from_file.get("/").await;
    assert!(page.contains(r#"src="&#x2f;from-dotenv.js""#), "{page}");

    let overridden = AppProcess::start(&[("DATASTAR_URL", "/from-env.js")], Some(&dir));
    let page = overridden.get("/").await;
    assert!(page.contains(r#"src="&#x2f;from-env.js""#), "{page}");

    std::fs::write(dir.join(".env"), "NOT A SETTING\n").unwrap();
    let output = exit_of(
        AppProcess::command(&[], Some(&dir)),
        "a .env that cannot be read",
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(".env"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `command` until it exits, which must be soon: a process still running after
/// [`PATIENCE`] started when it should not have, and is killed.
fn exit_of(mut command: Command, what: &str) -> std::process::Output {
    let mut child = Process::spawn(&mut command);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > PATIENCE {
            child.kill_all();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{what}: the app started and kept running; it logged:\n{}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn settings_that_are_not_utf8_stop_the_start_with_the_variable_named() {
    use std::{ffi::OsStr, os::unix::ffi::OsStrExt};

    // Before, each of these was read as unset: the default cap of 256, or no relay at all,
    // without a word.
    let mut invalid: Vec<(&str, &[u8])> = vec![
        ("MAX_STREAMS_PER_CLIENT", b"1\xff"),
        ("DATASTAR_URL", b"/static/datastar\xff.js"),
        // Read by the logging before the settings: before, taken for unset.
        ("RUST_LOG", b"debug\xff"),
    ];
    if cfg!(feature = "redis") {
        invalid.push(("REDIS_URL", b"redis://127.0.0.1:1/\xff"));
    }
    for (name, value) in invalid {
        let mut command = AppProcess::command(&[("REDIS_SECRET", &"s".repeat(32))], None);
        command.env(name, OsStr::from_bytes(value));

        let output = exit_of(command, name);

        assert!(!output.status.success(), "{name} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("invalid {name}=")), "{stderr}");
        assert!(stderr.contains("UTF-8"), "{stderr}");
    }
}

/// Everything a process wrote, once it has exited.
fn all_output(app: &mut AppProcess) -> String {
    let mut text = app.seen.join("\n");
    while let Ok(line) = app.lines.recv_timeout(Duration::from_secs(2)) {
        text.push('\n');
        text.push_str(&line);
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = app.child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    text.push('\n');
    text.push_str(&stderr);
    text
}

#[tokio::test]
async fn no_session_id_password_or_secret_is_logged_at_any_level() {
    let password = "pw-of-the-log-test-61a9";
    let secret = "the log test's REDIS_SECRET, 32+ characters";
    let mut logs = String::new();

    // A failed start: settings that cannot be used, with credentials in them.
    let mut failing: Vec<Vec<(&str, String)>> = vec![vec![
        ("MAX_STREAMS", "0".into()),
        ("REDIS_SECRET", secret.into()),
    ]];
    if cfg!(feature = "redis") {
        failing.push(vec![
            (
                "REDIS_URL",
                format!("redis2://user:{password}@127.0.0.1:1/"),
            ),
            ("REDIS_SECRET", secret.into()),
        ]);
        failing.push(vec![
            ("REDIS_URL", format!("redis://:{password}@127.0.0.1:1/")),
            ("REDIS_SECRET", format!("{password}-short")),
        ]);
    }
    for env in &failing {
        let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let mut command = AppProcess::command(&env, None);
        command.env("RUST_LOG", "trace");
        let output = exit_of(command, &format!("{env:?}"));
        assert!(!output.status.success());
        logs.push_str(&String::from_utf8_lossy(&output.stdout));
        logs.push_str(&String::from_utf8_lossy(&output.stderr));
    }

    // A running app, with a Redis that wants a password when the feature is on: a stream
    // opened, opened again by the same tab (replacing the first), and a greeting.
    #[cfg(feature = "redis")]
    let (_redis, redis_env) = {
        let redis = live::testing::RedisServer::start().await;
        let _: () = redis
            .command(&["CONFIG", "SET", "requirepass", password])
            .await;
        let url = format!("redis://:{password}@127.0.0.1:{}", redis.port);
        (
            redis,
            vec![("REDIS_URL", url), ("REDIS_SECRET", secret.to_owned())],
        )
    };
    #[cfg(not(feature = "redis"))]
    let redis_env: Vec<(&str, String)> = Vec::new();
    let env: Vec<(&str, &str)> = [("RUST_LOG", "trace")]
        .into_iter()
        .chain(redis_env.iter().map(|(n, v)| (*n, v.as_str())))
        .collect();
    let mut app = AppProcess::start(&env, None);
    let connected = |line: &str| line.contains("redis relay connected");
    if cfg!(feature = "redis") && !app.seen.iter().any(|line| connected(line)) {
        app.wait_for_line(connected);
    }
    let session = uuid::Uuid::new_v4();
    let first = open_stream_as(&app.addr, session).await;
    let second = open_stream_as(&app.addr, session).await;
    let mut greet = TcpStream::connect(&app.addr).await.unwrap();
    let body = "name=Ada";
    let request = format!(
        "POST /api/greet HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        app.addr,
        body.len()
    );
    greet.write_all(request.as_bytes()).await.unwrap();
    let answer = String::from_utf8(read_to_end(greet).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    app.wait_for_line(|line| line.contains("/api/greet") && line.contains("status=303"));
    drop((first, second));
    app.terminate();
    app.wait_exit();
    logs.push_str(&all_output(&mut app));

    // The logs say what happened...
    for expected in [
        "uri=/sse/home?datastar=",
        "stream opened",
        "stream closed",
        "invalid MAX_STREAMS=",
    ] {
        assert!(logs.contains(expected), "{expected:?} not logged:\n{logs}");
    }
    if cfg!(feature = "redis") {
        assert!(logs.contains("invalid REDIS_URL="), "{logs}");
        assert!(logs.contains("invalid REDIS_SECRET="), "{logs}");
    }
    // ...and nothing that would let the reader in.
    for (what, needle) in [
        ("session id", session.to_string()),
        ("session id", session.simple().to_string()),
        ("Redis password", password.to_owned()),
        ("REDIS_SECRET", secret.to_owned()),
    ] {
        let lines: Vec<&str> = logs.lines().filter(|l| l.contains(&needle)).collect();
        assert!(
            lines.is_empty(),
            "the {what} was logged:\n{}",
            lines.join("\n")
        );
    }
}

/// A managed Redis (TLS only, a password): a password it refuses, or a certificate the app
/// does not trust, is named in the log as what to fix — and the app serves on its own
/// meanwhile. With both right it connects. No password is in the log, even at `trace`.
#[cfg(all(feature = "redis", feature = "tls"))]
#[tokio::test]
async fn a_refused_redis_password_or_an_untrusted_redis_certificate_is_named_in_the_log() {
    let redis = live::testing::RedisServer::start_tls().await;
    let ca = redis.ca().unwrap().to_str().unwrap().to_owned();
    let secret = "s".repeat(32);
    let url = redis.url();
    let password = url
        .split_once("default:")
        .and_then(|(_, rest)| rest.split_once('@'))
        .unwrap()
        .0
        .to_owned();
    let wrong_url = url.replace(&password, "not-the-password");
    let mut logs = String::new();
    for (url, ca, expected) in [
        (
            &wrong_url,
            Some(&ca),
            "Redis refused the user or password in REDIS_URL",
        ),
        (
            &url,
            None,
            "Redis's TLS certificate is not trusted: set REDIS_CA",
        ),
        (&url, Some(&ca), "redis relay connected"),
    ] {
        let mut env = vec![
            ("REDIS_URL", url.as_str()),
            ("REDIS_SECRET", secret.as_str()),
            ("RUST_LOG", "trace"),
        ];
        env.extend(ca.map(|ca| ("REDIS_CA", ca.as_str())));
        let mut app = AppProcess::start(&env, None);
        if !app.seen.iter().any(|line| line.contains(expected)) {
            app.wait_for_line(|line| line.contains(expected));
        }
        assert!(app.get("/").await.starts_with("HTTP/1.1 200"));
        app.terminate();
        app.wait_exit();
        logs.push_str(&all_output(&mut app));
    }
    for secret in [password.as_str(), "not-the-password", secret.as_str()] {
        let lines: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).collect();
        assert!(lines.is_empty(), "logged:\n{}", lines.join("\n"));
    }
}

/// An empty value means unset, for every setting: given all at once as `NAME=`, the app starts
/// on its defaults, and so it does with `.env.example` copied to `.env` and every line
/// uncommented as shipped.
#[tokio::test]
async fn every_setting_may_be_empty_and_the_example_may_be_uncommented_as_shipped() {
    // `PORT=` would mean port 3000, which another program may hold: the kit's own test covers
    // it with the others; here the port stays 0.
    let empty: Vec<(&str, &str)> = live::settings::VARIABLES
        .iter()
        .map(|(name, ..)| (*name, ""))
        .filter(|(name, _)| *name != "PORT")
        .chain([("RUST_LOG", "")])
        .collect();
    let app = AppProcess::start(&empty, None);
    assert!(app.get("/").await.starts_with("HTTP/1.1 200"));

    let dir = std::env::temp_dir().join(format!("example-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    let uncommented: String = example
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(setting) if setting.contains('=') && !setting.starts_with(' ') => setting,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(
        uncommented.contains("\nMAX_CONNECTIONS=\n"),
        "{uncommented}"
    );
    std::fs::write(dir.join(".env"), uncommented).unwrap();
    // The environment's `PORT=0` wins over the file's `PORT=3000`.
    let app = AppProcess::start(&[], Some(&dir));
    assert!(app.get("/").await.starts_with("HTTP/1.1 200"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `RUST_LOG` is a setting like the others: read from `.env` too, although logging starts
/// before the settings are read.
#[test]
fn the_log_filter_can_come_from_a_dotenv_file() {
    let dir = std::env::temp_dir().join(format!("log-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".env"), "RUST_LOG=debug\n").unwrap();

    let mut app = AppProcess::start(&[], Some(&dir));

    // Logged at start, before the listening line, at debug level only.
    assert!(
        app.seen.iter().any(|line| line.contains("DEBUG")),
        "no debug line: {:?}",
        app.seen
    );
    app.terminate();
    app.wait_exit();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn each_request_logs_one_line_at_the_default_level() {
    let mut app = AppProcess::start(&[], None);

    let response = app.get("/about").await;
    assert!(response.starts_with("HTTP/1.1 200"));

    let line = app.wait_for_line(|line| line.contains("/about"));
    for part in ["INFO", "GET", "uri=/about", "status=200", "latency="] {
        assert!(line.contains(part), "{part} missing from {line:?}");
    }
}

#[tokio::test]
async fn a_stuck_log_reader_never_stops_the_app() {
    // Arrange: the app's stdout is a pipe that nobody reads after the first line.
    let mut child = Process::spawn(&mut AppProcess::command(&[], None));
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on http://") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no address logged"
        );
    }
    let addr = line
        .split("listening on http://")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let mut app = child;

    // Act: far more requests than the pipe and the log buffer hold lines for, each of them
    // logged, over a few kept-alive connections.
    const REQUESTS: usize = 20_000;
    const CONNECTIONS: usize = 4;
    let started = Instant::now();
    let clients = (0..CONNECTIONS).map(|_| {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(&addr).await.unwrap();
            let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            let mut buffer = vec![0; 4096];
            for _ in 0..REQUESTS / CONNECTIONS {
                stream.write_all(request.as_bytes()).await.unwrap();
                let n = tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
                    .await
                    .expect("an answer, not a stall")
                    .unwrap();
                assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
            }
        })
    });
    for client in clients {
        client.await.unwrap();
    }
    eprintln!(
        "{REQUESTS} requests answered in {:?} with stdout stuck",
        started.elapsed()
    );

    // Assert: lines were dropped and counted rather than waited for, and SIGTERM still ends
    // the process promptly.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut health = String::new();
    stream.read_to_string(&mut health).await.unwrap();
    let body: serde_json::Value =
        serde_json::from_str(health.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let dropped = body["log_lines_dropped"].as_u64().unwrap();
    assert!(dropped > 0, "{body}");
    eprintln!("{dropped} log lines dropped");
    let status = Command::new("kill")
        .args(["-TERM", &app.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    loop {
        if let Some(status) = app.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no exit within {PATIENCE:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(stdout);
}
