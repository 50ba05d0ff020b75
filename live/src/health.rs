//! `GET /healthz`: a probe for load balancers and orchestrators.

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::{logging, state::Live};

/// Readiness: `200 {"status":"ok","streams":N}` while serving; `503 {"status":"draining"}`
/// once shutdown has begun, so a load balancer stops sending new clients here.
///
/// Also: `log_lines_dropped`, the log lines a slow reader of stdout made the app drop (it never
/// waits for one). With a relay to other instances, `"redis": "connected"` or
/// `"disconnected"` — the app keeps serving either way, so that does not change the status —
/// and `redis_rejected`: what it did not trust in Redis — messages unsigned, forged, too large,
/// malformed, for another app or channel, too old, or copies, and stored entries or counters it
/// had to put right.
pub(crate) async fn healthz(State(live): State<Live>) -> (StatusCode, Json<Value>) {
    let draining = live.registry.is_shut_down();
    let mut body = json!({
        "status": if draining { "draining" } else { "ok" },
        "streams": live.registry.len(),
        "log_lines_dropped": logging::dropped_lines(),
    });
    if let Some(relay) = live.registry.relay() {
        body["redis"] = json!(if relay.is_connected() {
            "connected"
        } else {
            "disconnected"
        });
        body["redis_rejected"] = json!(relay.rejected());
    }
    let status = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body))
}
