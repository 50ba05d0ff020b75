//! HTTP tests: a real server on an ephemeral port, real HTTP and SSE clients over TCP.

mod assets;
mod dev;
mod greet;
mod helpers;
mod pages;
mod presence;
mod shutdown;
mod streams;
