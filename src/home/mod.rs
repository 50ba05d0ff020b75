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

use live::{Page, Presence};

/// The home page, by the name its streams are stored under (`page/home/<tab>`); a greeting is
/// pushed to every open one (`HOME.tabs()`: `page/home/*`).
pub const HOME: Page = Page::new("home");

/// How many home pages are open: every home page shows it, live.
pub static HERE: Presence = HOME.presence("here");
