//! `GET /healthz`: a probe for load balancers and orchestrators.

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::state::AppState;

/// Readiness: `200 {"status":"ok","streams":N}` while serving; `503 {"status":"draining"}`
/// once shutdown has begun, so a load balancer stops sending new clients here.
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let streams = state.registry.len();
    if state.registry.is_shut_down() {
        let body = json!({ "status": "draining", "streams": streams });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body))
    } else {
        (
            StatusCode::OK,
            Json(json!({ "status": "ok", "streams": streams })),
        )
    }
}
