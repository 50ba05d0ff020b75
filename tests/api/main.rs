//! HTTP tests: a real server on an ephemeral port, real HTTP and SSE clients over TCP.

mod assets;
mod backpressure;
mod dev;
mod greet;
mod helpers;
mod hostile;
mod pages;
mod shutdown;
mod streams;
