//! HTTP handlers, grouped by what they do with a connection.
//!
//! - [`pages`] answer a `GET` with a full HTML document.
//! - [`streams`] answer with a persistent SSE stream: they store their connection in the
//!   registry under a key and stay open for whatever actions push later.
//! - [`actions`] answer a form post: they validate, act, push effects to streams by key or
//!   pattern, answer the caller, and finish. They never store a connection.
//! - [`static_files`] and [`health`] are the plumbing around them.

pub mod actions;
pub mod health;
pub mod pages;
pub mod static_files;
pub mod streams;
