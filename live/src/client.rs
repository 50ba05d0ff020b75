//! The client at the other end of a request, as the server found it.
//!
//! The kit's server puts a [`ClientAddr`] on every request (the TCP peer, or what
//! `CLIENT_IP_HEADER` says behind a proxy); a stream hands it to the registry, which caps the
//! streams one client may hold.

use std::net::IpAddr;

/// The client's address, on every request: the TCP peer's, or what `CLIENT_IP_HEADER` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);
