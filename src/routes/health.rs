//! `GET /healthz`: a probe for load balancers and orchestrators.

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::state::AppState;

/// Readiness: `200 {"status":"ok","streams":N}` while serving; `503 {"status":"draining"}`
/// once shutdown has begun, so a load balancer stops sending new clients here.
///
/// With a Redis relay it also says `"redis": "connected"` or `"disconnected"`; the app keeps
/// serving either way (broadcasts then reach this instance's streams only), so that does not
/// change the status.
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let draining = state.registry.is_shut_down();
    let mut body = json!({
        "status": if draining { "draining" } else { "ok" },
        "streams": state.registry.len(),
    });
    if let Some(relay) = state.registry.relay() {
        body["redis"] = json!(if relay.is_connected() {
            "connected"
        } else {
            "disconnected"
        });
    }
    let status = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body))
}
