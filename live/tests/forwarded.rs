//! Behind proxies: the client's address comes from `CLIENT_IP_HEADER`, and a client must not be
//! able to choose it. Proxies add the address they see in two ways — merged into the header's
//! one line (nginx's `$proxy_add_x_forwarded_for`, Caddy, most load balancers) or as a line of
//! its own after the client's (HAProxy's `option forwardfor`) — and both are tested here, with
//! clients that send header lines of their own.
//!
//! The proxies are small ones of the test's own (`Proxy`): HAProxy is not installed here, and
//! what matters is the exact shape of the header each kind of proxy sends on.

mod support;

use std::net::{IpAddr, SocketAddr};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
};

use support::{PATIENCE, spawn_app_with};

/// How a proxy adds the address it sees to `X-Forwarded-For`.
#[derive(Clone, Copy, Debug)]
enum Adds {
    /// Merges every line the client sent into one and appends the address to it.
    Merged,
    /// Passes the client's lines on and adds a line of its own after them.
    OwnLine,
}

/// An HTTP/1.1 proxy for one request per connection: it adds the peer's address to the
/// request head as `adds` says, then passes bytes both ways.
struct Proxy {
    addr: SocketAddr,
}

impl Proxy {
    async fn start(upstream: SocketAddr, adds: Adds) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut client, peer)) = listener.accept().await {
                tokio::spawn(async move {
                    let head = read_head(&mut client).await;
                    let head = forward(&head, peer.ip(), adds);
                    let mut server = TcpStream::connect(upstream).await.unwrap();
                    server.write_all(head.as_bytes()).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Proxy { addr }
    }
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// `head` with `peer` added to its `X-Forwarded-For` as a proxy that `adds` would.
fn forward(head: &str, peer: IpAddr, adds: Adds) -> String {
    let mut lines: Vec<String> = head.trim_end().split("\r\n").map(str::to_owned).collect();
    let is_forwarded_for =
        |line: &String| line.to_ascii_lowercase().starts_with("x-forwarded-for:");
    match adds {
        Adds::Merged => {
            let mut addresses: Vec<String> = lines
                .iter()
                .filter(|line| is_forwarded_for(line))
                .map(|line| line.split_once(':').unwrap().1.trim().to_owned())
                .collect();
            addresses.push(peer.to_string());
            lines.retain(|line| !is_forwarded_for(line));
            lines.push(format!("X-Forwarded-For: {}", addresses.join(", ")));
        }
        Adds::OwnLine => lines.push(format!("X-Forwarded-For: {peer}")),
    }
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

/// What became of one stream request.
#[derive(Debug)]
enum Outcome {
    /// The stream, held open.
    Open {
        _stream: TcpStream,
    },
    Refused,
}

impl Outcome {
    fn is_open(&self) -> bool {
        matches!(self, Outcome::Open { .. })
    }
}

/// Asks for a notes stream through `to`, from the local address `from`, with the client's own
/// `X-Forwarded-For` lines `spoofed`.
async fn open_stream(to: SocketAddr, from: IpAddr, spoofed: &[String]) -> Outcome {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let signals = format!("%7B%22sessionId%22%3A%22{}%22%7D", uuid::Uuid::new_v4());
    let mut request = format!(
        "GET /sse/notes?datastar={signals} HTTP/1.1\r\nHost: {to}\r\nAccept: text/event-stream\r\n"
    );
    for line in spoofed {
        request.push_str(&format!("X-Forwarded-For: {line}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&seen);
            if text.contains("too many open streams from your address") {
                return false;
            }
            if text.contains("\"connected\":true") {
                return true;
            }
        }
    };
    let open = tokio::time::timeout(PATIENCE, read)
        .await
        .expect("an answer");
    if open {
        Outcome::Open { _stream: stream }
    } else {
        Outcome::Refused
    }
}

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn a_client_cannot_choose_its_address_with_header_lines_of_its_own() {
    for adds in [Adds::Merged, Adds::OwnLine] {
        // Arrange: at most two streams per client, behind a proxy that adds the client's
        // address to X-Forwarded-For.
        let app = spawn_app_with(|config| {
            config.max_streams_per_client = 2;
            config.client_ip_header = Some("x-forwarded-for".parse().unwrap());
        })
        .await;
        let proxy = Proxy::start(app.addr(), adds).await;

        // Act: one client asks for six streams, each time claiming other addresses, on one
        // line and on several.
        let mut outcomes = Vec::new();
        for i in 0..6 {
            let spoofed = [format!("6.6.6.{i}"), format!("7.7.7.{i}, 8.8.8.{i}")];
            outcomes.push(open_stream(proxy.addr, LOOPBACK, &spoofed).await);
        }

        // Assert: two streams, counted under the address the proxy saw.
        let open = outcomes.iter().filter(|o| o.is_open()).count();
        assert_eq!(open, 2, "{adds:?}: {open} streams for one client");
        assert!(outcomes[..2].iter().all(Outcome::is_open), "{adds:?}");
        assert_eq!(app.streams("page/notes/*"), 2, "{adds:?}");
    }
}

#[tokio::test]
async fn behind_a_load_balancer_and_a_proxy_each_client_is_counted_apart() {
    // Arrange: a load balancer that merges (it sees the clients) in front of a proxy that adds
    // a line of its own (it sees only the load balancer), so two hops.
    let app = spawn_app_with(|config| {
        config.max_streams_per_client = 2;
        config.client_ip_header = Some(live::client_addr::ClientIpHeader {
            name: "x-forwarded-for".parse().unwrap(),
            hops: 2,
        });
    })
    .await;
    let proxy = Proxy::start(app.addr(), Adds::OwnLine).await;
    let balancer = Proxy::start(proxy.addr, Adds::Merged).await;
    let (ada, grace): (IpAddr, IpAddr) =
        ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());

    // Act: each of two clients asks for three streams, claiming other addresses.
    let mut outcomes = Vec::new();
    for (i, client) in [ada, grace, ada, grace, ada, grace].into_iter().enumerate() {
        let spoofed = [format!("6.6.6.{i}")];
        outcomes.push((client, open_stream(balancer.addr, client, &spoofed).await));
    }

    // Assert: two each — counted by the address the load balancer saw, not the proxy's
    // (which is the same for everyone) and not what the clients claimed.
    for client in [ada, grace] {
        let open = outcomes
            .iter()
            .filter(|(from, outcome)| *from == client && outcome.is_open())
            .count();
        assert_eq!(open, 2, "{client}");
    }
    assert_eq!(app.streams("page/notes/*"), 4);
}

#[tokio::test]
async fn a_client_is_its_ipv6_64_or_its_ipv4_address_and_each_is_capped_apart() {
    // Arrange: at most three streams per client; the test presents its clients' addresses in
    // X-Forwarded-For (the loopback cannot send from arbitrary IPv6 addresses).
    let app = spawn_app_with(|config| {
        config.max_streams_per_client = 3;
        config.client_ip_header = Some("x-forwarded-for".parse().unwrap());
    })
    .await;
    let addr = app.addr();
    let from = move |address: String| async move { open_stream(addr, LOOPBACK, &[address]).await };

    // Act: six streams from six addresses of one /64; then three from another /64; six from
    // one IPv4 address (half written as IPv6, as a dual-stack socket reports it), and one
    // from the next IPv4 address.
    let mut one_64 = Vec::new();
    for host in 1..=6 {
        one_64.push(from(format!("2001:db8:0:1:{host:x}::{host:x}")).await);
    }
    let mut next_64 = Vec::new();
    for host in 1..=3 {
        next_64.push(from(format!("2001:db8:0:2::{host:x}")).await);
    }
    let mut one_ipv4 = Vec::new();
    for written in ["192.0.2.7", "::ffff:192.0.2.7"].repeat(3) {
        one_ipv4.push(from(written.to_owned()).await);
    }
    let next_ipv4 = from("192.0.2.8".to_owned()).await;

    // Assert: every address of a /64 shares the one cap; another /64 has its own; IPv4 is
    // counted per address, however it is written.
    let open = |outcomes: &[Outcome]| outcomes.iter().filter(|o| o.is_open()).count();
    assert_eq!(open(&one_64), 3, "one /64: {one_64:?}");
    assert!(one_64[..3].iter().all(Outcome::is_open), "{one_64:?}");
    assert_eq!(open(&next_64), 3, "another /64");
    assert_eq!(open(&one_ipv4), 3, "one IPv4 address: {one_ipv4:?}");
    assert!(next_ipv4.is_open(), "the next IPv4 address");
    assert_eq!(app.streams("page/notes/*"), 10);
}
