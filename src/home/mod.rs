//! The home page: greet someone, and every open home page shows it live.
//!
//! - [`page`]: `GET /`, the page itself.
//! - [`stream`]: `GET /sse/home`, the page's stream, stored under `page/home/<tab>`.
//! - [`actions`]: `POST /api/greet`, which pushes the greeting to every home page.
//! - [`events`]: the Datastar events the page understands.
//!
//! A stream stores its connection and stays open; an action does its work, pushes events to the
//! streams it targets, answers, and finishes.

pub mod actions;
pub mod events;
pub mod page;
pub mod stream;

use live::{Pattern, Presence};
use std::sync::LazyLock;

/// Every open home page: what a greeting is pushed to.
pub static HOME_PAGES: LazyLock<Pattern> =
    LazyLock::new(|| Pattern::page("home").expect("a valid page name"));

/// How many home pages are open: every home page shows it, live.
pub static HERE: Presence = Presence::new("here", "page/home/*");
