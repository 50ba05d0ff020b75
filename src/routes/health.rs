//! `GET /healthz`: a probe for load balancers and orchestrators.

use axum::{Json, extract::State};
use serde_json::{Value, json};

use crate::state::AppState;

/// 200 while the server is serving, with the number of open streams.
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "status": "ok", "streams": state.registry.len() }))
}
