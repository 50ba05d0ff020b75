//! The registry alone (`--registry`), without a server or a socket: what its broadcasts and
//! publishes cost in themselves, apart from the HTTP and the client that every other part
//! measures with them.

use std::{task::Context, time::Instant};

use datastar::prelude::PatchSignals;
use futures_util::StreamExt;
use live::{
    Frame,
    registry::{
        ConnectOptions, Key, LatestState, Limits, Outgoing, Pattern, Registry, RelayPort, Version,
    },
};

/// The registry alone: a broadcast's cost should follow the number of *matching* connections,
/// and a latest-state publish's the number of streams *waiting* for it.
pub fn benchmark() {
    // Nobody reads here: room for every frame the loop queues.
    let registry = Registry::new(Limits {
        queue_limit: 1 << 17,
        ..Limits::default()
    });
    let follow = ConnectOptions {
        topics: &["tick"],
        ..ConnectOptions::default()
    };
    let mut held = Vec::new();
    for i in 0..10_000 {
        let key = Key::new(&format!("page/home/{i}")).unwrap();
        held.push(registry.connect_with(key, follow.clone()).unwrap().0);
    }
    for i in 0..10 {
        let key = Key::new(&format!("page/other/{i}")).unwrap();
        held.push(registry.connect(key).unwrap().0);
    }
    let frame = Frame::from(PatchSignals::new(r#"{"tick":1}"#));
    for (pattern, iterations) in [("page/other/*", 20_000), ("page/home/*", 50)] {
        let pattern = Pattern::new(pattern).unwrap();
        let start = Instant::now();
        let mut reached = 0;
        for _ in 0..iterations {
            reached = registry.broadcast(&pattern, &frame);
        }
        let each = start.elapsed() / iterations;
        println!(
            "registry: broadcast to {pattern} reaches {reached} of {} connections in {each:?}",
            registry.len()
        );
    }
    // Every follower polls once, as a stream that has written everything does: it waits.
    let mut context = Context::from_waker(futures_util::task::noop_waker_ref());
    for connection in &mut held {
        while let std::task::Poll::Ready(Some(_)) = connection.poll_next_unpin(&mut context) {}
    }
    let home = Pattern::new("page/home/*").unwrap();
    let publish = |number: u64| Outgoing {
        pattern: home.clone(),
        except: Vec::new(),
        frame: frame.clone(),
        latest: Some(LatestState {
            topic: "tick".into(),
            version: Version::new(1, number),
            value: None,
        }),
    };
    let start = Instant::now();
    registry.deliver(&publish(1));
    let first = start.elapsed();
    let start = Instant::now();
    for number in 2..=1_024 {
        registry.deliver(&publish(number));
    }
    let each = start.elapsed() / 1_023;
    println!(
        "registry: a latest-state publish wakes 10000 waiting followers in {first:?}; \
         the next 1023 (nobody waiting) take {each:?} each"
    );
    drop(held);
}
