//! Before a run against a server someone else started (`--addr`): is it the kit's notes app,
//! and does it answer? Within seconds either way, so that a wrong address fails at once with a
//! message that says what to start, instead of thousands of clients waiting a minute on
//! streams that never open. (Shared with the kit's tests, `tests/bench_probe.rs`.)

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

/// How long each step may take: a server that works answers well within it.
pub const STEP: Duration = Duration::from_secs(5);

/// What `--addr` needs, and how to start it: the end of every refusal.
pub const NEEDS: &str = "--addr needs the kit's notes app, the server this benchmark otherwise \
    starts by itself (a page stream at /sse/notes, actions at /notes and /shouts; a generated \
    app has other routes). Start it in another terminal, then run the benchmark against it:
  MAX_STREAMS=12000 cargo run --release -p live-kit --example fanout -- --serve-notes   # 127.0.0.1:3000 (HOST, PORT)
  cargo run --release -p live-kit --example fanout -- --addr 127.0.0.1:3000 --clients 10000";

/// Checks that `addr` serves the notes app: a stream opens at `/sse/notes` and gets its first
/// event, and a note posted to `/notes` reaches it. The error says what went wrong and what to
/// start instead.
pub async fn check(addr: SocketAddr) -> Result<(), String> {
    let fail = |what: String| Err(format!("{addr}: {what}.\n{NEEDS}"));
    let mut stream = match timeout(STEP, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return fail(format!("cannot connect ({error})")),
        Err(_) => return fail(format!("no connection within {STEP:?}")),
    };
    let request = format!(
        "GET /sse/notes?datastar=%7B%22sessionId%22%3A%22{}%22%7D HTTP/1.1\r\nHost: {addr}\r\n\
         Accept: text/event-stream\r\ndatastar-request: true\r\n\r\n",
        uuid::Uuid::new_v4()
    );
    if let Err(error) = stream.write_all(request.as_bytes()).await {
        return fail(format!("cannot send a request ({error})"));
    }
    let mut seen = String::new();
    if let Err(what) = read_until(&mut stream, &mut seen, |seen| seen.contains("\r\n\r\n")).await {
        return fail(format!("GET /sse/notes: {what}"));
    }
    let status = seen.lines().next().unwrap_or_default().to_owned();
    if !status.starts_with("HTTP/1.1 200") {
        return fail(format!("GET /sse/notes answered {status:?}"));
    }
    if let Err(what) = read_until(&mut stream, &mut seen, |seen| {
        seen.contains("\"connected\":true")
    })
    .await
    {
        return fail(format!(
            "GET /sse/notes answered 200, then {what} (no first event)"
        ));
    }

    // A note, posted as Datastar posts a form, must reach the stream.
    let text = format!("probe{}", uuid::Uuid::new_v4().simple());
    let answer = match timeout(STEP, post(addr, &text)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => return fail(format!("POST /notes failed ({error})")),
        Err(_) => return fail(format!("POST /notes: no answer within {STEP:?}")),
    };
    let status = answer.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") {
        return fail(format!("POST /notes answered {status:?}"));
    }
    if let Err(what) = read_until(&mut stream, &mut seen, |seen| seen.contains(&text)).await {
        return fail(format!(
            "the note posted to /notes never reached the stream: {what}"
        ));
    }
    Ok(())
}

/// Reads into `seen` until `done` says so; `Err` says why it stopped first.
async fn read_until(
    stream: &mut TcpStream,
    seen: &mut String,
    done: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let mut buffer = [0; 4096];
    while !done(seen) {
        match timeout(STEP, stream.read(&mut buffer)).await {
            Ok(Ok(0)) => return Err("the server closed the connection".into()),
            Ok(Ok(n)) => seen.push_str(&String::from_utf8_lossy(&buffer[..n])),
            Ok(Err(error)) => return Err(format!("the connection failed ({error})")),
            Err(_) => return Err(format!("nothing more within {STEP:?}")),
        }
    }
    Ok(())
}

/// `POST /notes` with `text`, on a connection of its own; the whole answer.
async fn post(addr: SocketAddr, text: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let body = format!("text={text}");
    let request = format!(
        "POST /notes HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\ndatastar-request: true\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}
