//! The lower bound: a tokio server that speaks just enough HTTP/1.1 for this benchmark, with no
//! HTTP library and no framework. Each stream is a task owning its socket; the latest note is a
//! `watch` channel (a stream that is behind skips to the newest), ordinary events an `mpsc`
//! queue per stream; each event is encoded once and its bytes shared by every stream.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    sync::{mpsc, watch},
};

struct Hub {
    /// The latest note's event, and how many notes there have been (the lock keeps the
    /// numbering and the publishing in one order).
    notes: Mutex<u64>,
    latest: watch::Sender<Option<Bytes>>,
    shouts: AtomicU64,
    streams: Mutex<Vec<mpsc::Sender<Bytes>>>,
}

pub async fn serve(port: u16) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(([127, 0, 0, 1], port).into()).unwrap();
    let listener = socket.listen(4096).unwrap();
    let hub = Arc::new(Hub {
        notes: Mutex::new(0),
        latest: watch::Sender::new(None),
        shouts: AtomicU64::new(0),
        streams: Mutex::default(),
    });
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(connection(socket, Arc::clone(&hub)));
    }
}

async fn connection(mut socket: TcpStream, hub: Arc<Hub>) {
    let mut request = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    let head_end = loop {
        let Ok(n) = socket.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buffer[..n]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    if request.starts_with(b"GET /sse/") {
        let (sender, mut shouts) = mpsc::channel::<Bytes>(32);
        let mut latest = hub.latest.subscribe();
        hub.streams.lock().unwrap().push(sender);
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\nevent: datastar-patch-signals\ndata: signals {\"connected\":true}\n\n";
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        loop {
            let event = tokio::select! {
                changed = latest.changed() => match changed {
                    Ok(()) => latest.borrow_and_update().clone(),
                    Err(_) => return,
                },
                shout = shouts.recv() => match shout {
                    Some(shout) => Some(shout),
                    None => return,
                },
            };
            if let Some(event) = event
                && socket.write_all(&event).await.is_err()
            {
                return;
            }
        }
    }
    let post_notes = request.starts_with(b"POST /notes");
    if !post_notes && !request.starts_with(b"POST /shouts") {
        return;
    }
    let head = String::from_utf8_lossy(&request[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let mut body = request[head_end..].to_vec();
    while body.len() < length {
        let Ok(n) = socket.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            return;
        }
        body.extend_from_slice(&buffer[..n]);
    }
    let text = String::from_utf8_lossy(&body)
        .trim_start_matches("text=")
        .to_owned();
    // The same events the app sends: the same HTML, the same encoding.
    if post_notes {
        let mut notes = hub.notes.lock().unwrap();
        *notes += 1;
        let event = Bytes::from(format!(
            "event: datastar-patch-elements\ndata: elements <p id=\"note\">Note #{}: <strong>{text}</strong></p>\n\n",
            *notes
        ));
        hub.latest.send_replace(Some(event));
    } else {
        let number = hub.shouts.fetch_add(1, Ordering::Relaxed) + 1;
        let event = Bytes::from(format!(
            "event: datastar-patch-elements\ndata: elements <p id=\"shout\">Shout #{number}: <strong>{text}</strong></p>\n\n"
        ));
        let mut streams = hub.streams.lock().unwrap();
        streams.retain(|stream| stream.try_send(event.clone()).is_ok());
    }
    let _ = socket
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await;
}
