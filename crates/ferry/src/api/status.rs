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

/// Query of `GET /v1/log`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Only this record (`kind/key`).
    #[serde(default)]
    record: Option<String>,
    /// At most this many entries (default 100, at most 10000).
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /v1/log?record=kind/key&limit=N`: executed actions, newest first.
pub async fn log(
    State(state): State<ApiState>,
    super::extract::QueryParams(query): super::extract::QueryParams<LogQuery>,
) -> Result<Json<Value>, ApiError> {
    let store = state.engine.store();
    let record_id = match &query.record {
        Some(r) => {
            let Some((kind, key)) = r.split_once('/') else {
                return Err(ApiError::bad_request("record must be written kind/key"));
            };
            let record = store
                .record(kind, key)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no record {kind}/{key}")))?;
            Some(record.id)
        }
        None => None,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
    Ok(Json(
        json!({"entries": store.log_entries(record_id, limit).await?}),
    ))
}

/// `POST /v1/queue/dead/requeue`: every dead-lettered record back in the queue, due now,
/// with a fresh failure budget (after an outage, one call instead of one per record).
pub async fn requeue_dead(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"requeued": state.engine.requeue_dead().await?}),
    ))
}

/// `GET /v1/queue/dead`: records that failed too often; `POST .../sync` re-queues one.
pub async fn dead(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"dead": state.engine.store().dead_tasks().await?}),
    ))
}
