//! `GET /v1/status`: queue and per-state file counts.

use super::{ApiError, ApiState};
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

/// Queue length, retries, and files by state.
pub async fn show(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let store = state.engine.store();
    Ok(Json(json!({
        "queue": store.queue_stats().await?,
        "files": store.sync_counts().await?,
    })))
}
