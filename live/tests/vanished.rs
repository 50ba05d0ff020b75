//! A tab whose machine vanishes without closing (a laptop lid shut, a phone out of reach): from
//! one moment on it sends nothing, not even the acknowledgements of what it is sent. Played
//! with a real firewall rule (`iptables`, as root) that drops every packet one client's port
//! sends on the loopback, and removed when the test ends. It needs `iptables` and root, which a
//! machine may not give: it is `#[ignore]`d with that reason, counted as ignored rather than
//! passed by a plain `cargo test`, and runs with
//! `cargo test -p live-kit --test vanished -- --ignored` (`.ci/run` installs `iptables` and
//! runs it as root), where a rule it cannot add fails it.

#![cfg(target_os = "linux")]

mod support;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use support::{raw_stream_request, spawn_app_with};

/// A rule dropping every packet sent from the loopback port `port`; removed when dropped.
struct Vanished {
    port: u16,
}

impl Vanished {
    fn rule(action: &str, port: u16) -> bool {
        let port = port.to_string();
        let args = ["-o", "lo", "-p", "tcp", "--sport", &port, "-j", "DROP"];
        Command::new("iptables")
            .args(["-w", action, "OUTPUT"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// The client at `port` vanishes; fails the test if this machine cannot play it.
    fn start(port: u16) -> Vanished {
        assert!(
            Vanished::rule("-I", port),
            "cannot add an iptables rule here: needs iptables (apt-get install iptables), as root"
        );
        Vanished { port }
    }
}

impl Drop for Vanished {
    fn drop(&mut self) {
        Vanished::rule("-D", self.port);
    }
}

#[tokio::test]
#[ignore = "needs iptables and root; run with -- --ignored, as .ci/run does"]
async fn a_tab_whose_machine_vanished_leaves_after_a_keep_alive_and_the_send_timeout() {
    // Arrange: short timeouts, so that the test takes seconds: a keep-alive comment to quiet
    // streams every second or two, a send timeout of two.
    let app = spawn_app_with(|config| {
        config.keep_alive = Duration::from_secs(1);
        config.send_timeout = Duration::from_secs(2);
    })
    .await;
    let mut healthy = app.open_live_stream().await;
    let mut tab = TcpStream::connect(app.addr()).await.unwrap();
    tab.write_all(raw_stream_request(app.addr()).as_bytes())
        .await
        .unwrap();
    let mut first = vec![0; 4096];
    let read = tab.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..read]).starts_with("HTTP/1.1 200"));
    app.wait_for_streams("page/notes/*", 2).await;

    // Act: the tab's machine vanishes; its socket stays open, unread, and says nothing.
    let _vanished = Vanished::start(tab.local_addr().unwrap().port());
    let gone = Instant::now();

    // Assert: the server gives its stream up once what it sent has gone unacknowledged for the
    // send timeout and a margin (TCP_USER_TIMEOUT), not after Linux's 15 minutes of
    // retransmissions; the healthy tab never notices.
    let patience = Duration::from_secs(60);
    let deadline = gone + patience;
    while app.streams("page/notes/*") != 1 {
        assert!(
            Instant::now() < deadline,
            "the vanished tab's stream is still open after {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "vanished tab: its stream was given up {:?} after it vanished (keep-alive 1 s, send \
         timeout 2 s)",
        gone.elapsed()
    );
    app.publish_with_datastar("still here").await;
    let note = healthy.next_event().await;
    assert!(note.data.contains("still here"), "{note:?}");
    drop(tab);
}
