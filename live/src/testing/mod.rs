//! What tests of a live app need to talk to it as a browser does (feature `testing`, for
//! dev-dependencies): the app served for real ([`TestServer`]), a real SSE client, readers for
//! Datastar's events, a wait on the registry, the app's own binary started apart from the
//! developer's settings and every started program stopped with the test ([`app_command`],
//! [`Process`]), with feature `redis` a `redis-server` of the test's own, and with feature
//! `browser` headless Chromium (`browser`) and the real Datastar bundle to serve it (`bundle`).
//!
//! The kit's tests, the app's tests and the guides' recipes all use these ([`TestServer`] is
//! the one harness; each adds helpers named for its routes), so a change to the wire format or
//! to how a stream starts is followed in one place.

#[cfg(feature = "browser")]
pub mod axe;
#[cfg(feature = "browser")]
pub mod browser;
#[cfg(feature = "browser")]
pub mod bundle;
#[cfg(feature = "browser")]
mod fetched;
#[cfg(feature = "tls")]
pub mod https;
/// The old name of [`https`], kept so the tests of apps made with kit 0.5.0 or older still
/// build after an upgrade.
#[cfg(feature = "tls")]
#[deprecated(since = "0.6.0", note = "renamed `live::testing::https`")]
pub mod tls {
    pub use super::https::*;
}
mod process;
mod programs;
#[cfg(feature = "redis")]
mod redis_server;
mod requests;
mod server;
mod sse_client;
mod waits;

pub use self::process::{
    Process, app_binary, app_command, empty_dir, free_port, hostile_dotenv, without_settings,
};
#[allow(deprecated)] // `installed`, kept for older apps' tests
pub use self::programs::{installed, require};
pub use self::{
    requests::{
        open_stream, open_tab, post_with_datastar, post_with_form, stream_get, stream_request,
    },
    server::{TestServer, client_settings},
    sse_client::{Event, InitialEvents, SseClient, elements, reply_events, signals},
    waits::{PATIENCE, wait_for_streams},
};

#[cfg(feature = "redis")]
pub use self::redis_server::RedisServer;
